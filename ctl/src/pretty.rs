//! Pretty-printed JSON of a reply that arrives in pieces.
//!
//! # What?
//! [`PrettyJson`] writes, piece by piece, exactly what
//! `serde_json::to_string_pretty` makes of the whole reply (plus a final
//! newline), so `rvsctl --format json` prints the same document whether
//! the daemon sent one line or a stream of chunks, without holding all of
//! it.
//!
//! # Design
//! The list (or string) field a reply is streamed by is opened at the
//! first piece, each element is pretty-printed alone and indented by two
//! levels, and the field and document are closed at [`PrettyJson::finish`].
//! Replies that are never streamed are kept whole and printed at the end.
//!
//! # Invariants
//! Output equals `to_string_pretty(merged reply) + "\n"` (unit tests
//! compare them); JSON strings hold no raw newlines, so indenting by
//! line is safe.
//!
//! # Thread-safety
//! Plain data; one writer per reply.
//!
//! # Limits
//! Pieces must come in order and be of one variant (what
//! [`crate::Client::call_each`] hands over); a piece of another variant
//! replaces the document.

use std::io::{self, Write};

use serde::Serialize;

use crate::proto::Reply;

#[derive(Debug, Default)]
enum State {
    #[default]
    Start,
    List {
        /// Elements printed.
        n: u64,
        /// Fields after the list, printed at the end (`apply`'s `applied`).
        tail: String,
    },
    Text,
    Whole(Reply),
}

/// Pretty JSON writer for one reply (see the module docs).
#[derive(Debug, Default)]
pub struct PrettyJson {
    state: State,
}

impl PrettyJson {
    /// A writer that has printed nothing yet.
    pub fn new() -> PrettyJson {
        PrettyJson::default()
    }

    /// Prints the elements of the next piece of the reply.
    pub fn part(&mut self, w: &mut dyn Write, r: Reply) -> io::Result<()> {
        match r {
            Reply::Flows { flows } => self.list(w, "flows", &flows, String::new()),
            Reply::Ports { ports } => self.list(w, "ports", &ports, String::new()),
            Reply::Fdb { fdb } => self.list(w, "fdb", &fdb, String::new()),
            Reply::Apply { changes, applied } => self.list(
                w,
                "changes",
                &changes,
                format!(",\n  \"applied\": {applied}"),
            ),
            Reply::Config { toml } => {
                if matches!(self.state, State::Start) {
                    w.write_all(b"{\n  \"toml\": \"")?;
                    self.state = State::Text;
                }
                let q = serde_json::to_string(&toml).map_err(io::Error::other)?;
                w.write_all(&q.as_bytes()[1..q.len() - 1])
            }
            other => {
                self.state = State::Whole(other);
                Ok(())
            }
        }
    }

    /// Closes the document.
    pub fn finish(self, w: &mut dyn Write) -> io::Result<()> {
        match self.state {
            State::Start => Ok(()),
            State::List { n, tail } => {
                w.write_all(if n == 0 { b"]" } else { b"\n  ]" })?;
                w.write_all(tail.as_bytes())?;
                w.write_all(b"\n}\n")
            }
            State::Text => w.write_all(b"\"\n}\n"),
            State::Whole(r) => {
                let s = serde_json::to_string_pretty(&r).map_err(io::Error::other)?;
                w.write_all(s.as_bytes())?;
                w.write_all(b"\n")
            }
        }
    }

    fn list<T: Serialize>(
        &mut self,
        w: &mut dyn Write,
        key: &str,
        items: &[T],
        new_tail: String,
    ) -> io::Result<()> {
        if !matches!(self.state, State::List { .. }) {
            write!(w, "{{\n  \"{key}\": [")?;
            self.state = State::List {
                n: 0,
                tail: String::new(),
            };
        }
        let State::List { n, tail } = &mut self.state else {
            return Ok(());
        };
        *tail = new_tail;
        for it in items {
            let s = serde_json::to_string_pretty(it).map_err(io::Error::other)?;
            w.write_all(if *n == 0 { b"\n    " } else { b",\n    " })?;
            w.write_all(s.replace('\n', "\n    ").as_bytes())?;
            *n += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::proto::{FdbEntry, PortStats};

    /// Prints `parts` piecewise and checks the result against serde's
    /// pretty JSON of `whole`.
    fn check(whole: Reply, parts: Vec<Reply>) {
        let mut out = Vec::new();
        let mut p = PrettyJson::new();
        for r in parts {
            p.part(&mut out, r).unwrap();
        }
        p.finish(&mut out).unwrap();
        let want = serde_json::to_string_pretty(&whole).unwrap() + "\n";
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    fn port(i: u32) -> PortStats {
        let mut p = PortStats {
            name: format!("p{i}"),
            ofport: i,
            ..PortStats::default()
        };
        if i % 2 == 0 {
            p.rx_dropped.insert("malformed".into(), 3);
        }
        p
    }

    #[test]
    fn pieces_print_as_the_whole_reply() {
        let ports: Vec<PortStats> = (0..7).map(port).collect();
        check(
            Reply::Ports {
                ports: ports.clone(),
            },
            vec![
                Reply::Ports {
                    ports: ports[..3].to_vec(),
                },
                Reply::Ports { ports: vec![] },
                Reply::Ports {
                    ports: ports[3..].to_vec(),
                },
            ],
        );
        check(
            Reply::Ports { ports: vec![] },
            vec![Reply::Ports { ports: vec![] }],
        );
        let fdb = vec![FdbEntry {
            port: 1,
            port_name: "a\"b".into(),
            vlan: 0,
            mac: "00:00:00:00:00:01".into(),
            age: 5,
        }];
        check(Reply::Fdb { fdb: fdb.clone() }, vec![Reply::Fdb { fdb }]);
        let toml = "[[bridge]]\nname = \"é\\t\"\n".to_string();
        check(
            Reply::Config { toml: toml.clone() },
            vec![
                Reply::Config {
                    toml: toml[..5].into(),
                },
                Reply::Config {
                    toml: toml[5..].into(),
                },
            ],
        );
        for (changes, applied) in [
            (vec![], false),
            (vec!["+ a".to_string(), "- b".into()], true),
        ] {
            check(
                Reply::Apply {
                    changes: changes.clone(),
                    applied,
                },
                changes
                    .iter()
                    .map(|c| Reply::Apply {
                        changes: vec![c.clone()],
                        applied,
                    })
                    .chain([Reply::Apply {
                        changes: vec![],
                        applied,
                    }])
                    .collect(),
            );
        }
        let done = Reply::Done {
            message: "x".into(),
            count: 1,
        };
        check(done.clone(), vec![done]);
    }
}
