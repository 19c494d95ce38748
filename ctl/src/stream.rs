//! Framing of replies of any size: one line when small, chunk lines when
//! large.
//!
//! # What?
//! [`Framer`] turns the items of one reply (flows, ports, MAC entries,
//! `apply` changes, or pieces of `export`'s TOML text) into the output
//! lines of the control protocol, as they are produced: the daemon never
//! holds the whole serialized reply, and the client can print each chunk
//! as it arrives.
//!
//! # Design
//! Items are serialized one at a time and collected into chunk bodies of
//! at most [`CHUNK_ITEMS`] items or about [`CHUNK_BYTES`] bytes. While the
//! chunks seen so far fit in one line, they are held; if the reply ends
//! then, it goes out as the single line `{"ok":true,"result":{...}}`,
//! byte for byte what `serde_json` makes of the whole [`Response`]. Once
//! they no longer fit, the header line, the held chunks and every later
//! chunk go out as [`StreamLine`]s, then the end line with the totals.
//! Every chunk is a complete [`Reply`] of the reply's variant: fields other
//! than the streamed one (`apply`'s `applied`) are repeated in each.
//!
//! # Invariants
//! No line is longer than [`MAX_LINE`]: a single item that would not fit
//! in a chunk line ends the reply with an error line instead. Every item
//! given to the framer is in exactly one chunk, in order, and the end line
//! counts them.
//!
//! # Thread-safety
//! A `Framer` is used by one thread; the sink it writes to decides where
//! lines go (the daemon sends them over a bounded channel, so a slow
//! client slows the producer down instead of growing a buffer).
//!
//! # Limits
//! At most [`MAX_LINE`] bytes are held before the framer knows whether the
//! reply is small, plus one chunk being filled.
//!
//! [`Response`]: crate::proto::Response
//! [`Reply`]: crate::proto::Reply

use serde::Serialize;

use crate::proto::{ErrorBody, ErrorKind, Response, StreamEnd, StreamHead, StreamLine, MAX_LINE};

/// Most items in one chunk line.
pub const CHUNK_ITEMS: usize = 1000;
/// A chunk line is closed once its body reaches this many bytes.
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// Room kept in a line for the framing around the items.
const OVERHEAD: usize = 1024;
/// Pieces of text longer than this are split (at character boundaries)
/// before escaping, so that a chunk stays near [`CHUNK_BYTES`].
const TEXT_PIECE: usize = 64 * 1024;

/// The receiver of the lines is gone (the client disconnected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// Where lines go: each call gets one line, ending in `\n`, and whether it
/// is the last line of the reply. Returns false when nobody listens any
/// more.
pub type Sink<'a> = dyn FnMut(Vec<u8>, bool) -> bool + 'a;

/// Turns the items of one reply into protocol lines (see the module docs).
#[derive(Debug)]
pub struct Framer {
    key: &'static str,
    /// Items are pieces of one string, not list elements.
    text: bool,
    /// Serialized fields after the streamed one, each `,"name":value`.
    rest: String,
    /// Completed chunk bodies (items joined by `,`), while not streaming.
    held: Vec<Vec<u8>>,
    held_bytes: usize,
    /// The chunk being filled.
    cur: Vec<u8>,
    cur_items: usize,
    items: u64,
    chunks: u64,
    streaming: bool,
    /// The reply was ended early by an error line.
    failed: bool,
}

impl Framer {
    /// A framer for a reply whose field `key` is a list (`flows`, `ports`,
    /// `fdb`, `changes`).
    pub fn list(key: &'static str) -> Framer {
        Framer::new(key, false)
    }

    /// A framer for a reply whose field `key` is a string (`toml`).
    pub fn text(key: &'static str) -> Framer {
        Framer::new(key, true)
    }

    fn new(key: &'static str, text: bool) -> Framer {
        Framer {
            key,
            text,
            rest: String::new(),
            held: Vec::new(),
            held_bytes: 0,
            cur: Vec::new(),
            cur_items: 0,
            items: 0,
            chunks: 0,
            streaming: false,
            failed: false,
        }
    }

    /// Adds a field that follows the streamed one in the reply (and is
    /// repeated in every chunk), e.g. `apply`'s `applied`.
    pub fn with_field(mut self, name: &str, value: &impl Serialize) -> Framer {
        // Serializing a string key and a plain value cannot fail.
        let k = serde_json::to_string(name).unwrap_or_default();
        let v = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
        self.rest.push(',');
        self.rest.push_str(&k);
        self.rest.push(':');
        self.rest.push_str(&v);
        self
    }

    /// Items given so far.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Adds one list element.
    pub fn item(&mut self, v: &impl Serialize, out: &mut Sink<'_>) -> Result<(), Gone> {
        if self.failed {
            return Err(Gone);
        }
        let j = match serde_json::to_vec(v) {
            Ok(j) => j,
            Err(e) => {
                return self.fail(
                    out,
                    format!("cannot serialize item {} of the reply: {e}", self.items + 1),
                )
            }
        };
        if j.len() + self.rest.len() + OVERHEAD > MAX_LINE {
            return self.fail(
                out,
                format!(
                    "item {} of the reply is {} bytes of JSON, more than a line of {MAX_LINE} bytes may carry",
                    self.items + 1,
                    j.len()
                ),
            );
        }
        if self.cur_items >= CHUNK_ITEMS || self.cur.len() + j.len() > CHUNK_BYTES {
            self.close_chunk(out)?;
        }
        if self.cur_items > 0 {
            self.cur.push(b',');
        }
        self.cur.extend_from_slice(&j);
        self.cur_items += 1;
        self.items += 1;
        Ok(())
    }

    /// Adds a piece of the text (the next bytes of the string field).
    pub fn text_piece(&mut self, s: &str, out: &mut Sink<'_>) -> Result<(), Gone> {
        let mut s = s;
        while !s.is_empty() {
            let mut cut = s.len().min(TEXT_PIECE);
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            let (piece, tail) = s.split_at(cut);
            s = tail;
            let q = serde_json::to_string(piece).unwrap_or_default();
            // Without the quotes: escaped pieces concatenate.
            let esc = &q.as_bytes()[1..q.len() - 1];
            if self.cur.len() + esc.len() > CHUNK_BYTES {
                self.close_chunk(out)?;
            }
            self.cur.extend_from_slice(esc);
            self.cur_items += 1;
            self.items += piece.len() as u64;
        }
        Ok(())
    }

    /// Ends the reply: the single line, or the last chunk and the end line.
    pub fn finish(mut self, out: &mut Sink<'_>) -> Result<(), Gone> {
        if self.failed {
            return Err(Gone);
        }
        if !self.streaming
            && self.held_bytes + self.cur.len() + self.rest.len() + OVERHEAD <= MAX_LINE
        {
            let mut body = Vec::with_capacity(self.held_bytes + self.cur.len() + 64);
            let held = std::mem::take(&mut self.held);
            let cur = std::mem::take(&mut self.cur);
            let parts = held.iter().chain((!cur.is_empty()).then_some(&cur));
            for (i, p) in parts.enumerate() {
                if i > 0 && !self.text {
                    body.push(b',');
                }
                body.extend_from_slice(p);
            }
            let mut line = br#"{"ok":true,"result":"#.to_vec();
            self.body_into(&mut line, &body);
            line.extend_from_slice(b"}\n");
            return send(out, line, true);
        }
        if self.cur_items > 0 {
            self.close_chunk(out)?;
        }
        self.start_streaming(out)?;
        let end = StreamLine::End {
            end: StreamEnd {
                items: self.items,
                chunks: self.chunks,
            },
        };
        send(out, json_line(&end), true)
    }

    /// Ends the reply early with an error line.
    pub fn fail(&mut self, out: &mut Sink<'_>, message: String) -> Result<(), Gone> {
        self.failed = true;
        let line = json_line(&Response::Err {
            ok: false,
            error: ErrorBody {
                kind: ErrorKind::Internal,
                message,
            },
        });
        let _ = out(line, true);
        Err(Gone)
    }

    /// `{"key":[body],rest}` (or `{"key":"body",rest}` for text).
    fn body_into(&self, line: &mut Vec<u8>, body: &[u8]) {
        line.extend_from_slice(b"{\"");
        line.extend_from_slice(self.key.as_bytes());
        line.extend_from_slice(if self.text { b"\":\"" } else { b"\":[" });
        line.extend_from_slice(body);
        line.extend_from_slice(if self.text { b"\"" } else { b"]" });
        line.extend_from_slice(self.rest.as_bytes());
        line.push(b'}');
    }

    fn close_chunk(&mut self, out: &mut Sink<'_>) -> Result<(), Gone> {
        let body = std::mem::take(&mut self.cur);
        self.cur_items = 0;
        if !self.streaming {
            self.held_bytes += body.len() + 1;
            self.held.push(body);
            if self.held_bytes + self.rest.len() + OVERHEAD > MAX_LINE {
                self.start_streaming(out)?;
            }
            return Ok(());
        }
        self.send_chunk(out, &body)
    }

    fn start_streaming(&mut self, out: &mut Sink<'_>) -> Result<(), Gone> {
        if self.streaming {
            return Ok(());
        }
        self.streaming = true;
        let head = Response::Stream {
            ok: true,
            stream: StreamHead {
                key: self.key.to_string(),
            },
        };
        send(out, json_line(&head), false)?;
        for body in std::mem::take(&mut self.held) {
            self.send_chunk(out, &body)?;
        }
        self.held_bytes = 0;
        Ok(())
    }

    fn send_chunk(&mut self, out: &mut Sink<'_>, body: &[u8]) -> Result<(), Gone> {
        let mut line = Vec::with_capacity(body.len() + 64);
        line.extend_from_slice(br#"{"chunk":"#);
        self.body_into(&mut line, body);
        line.extend_from_slice(b"}\n");
        self.chunks += 1;
        send(out, line, false)
    }
}

fn send(out: &mut Sink<'_>, line: Vec<u8>, last: bool) -> Result<(), Gone> {
    if out(line, last) {
        Ok(())
    } else {
        Err(Gone)
    }
}

/// `v` as one line of JSON.
pub fn json_line(v: &impl Serialize) -> Vec<u8> {
    // The protocol types serialize infallibly (string keys, no maps with
    // non-string keys).
    let mut l = serde_json::to_vec(v).unwrap_or_default();
    l.push(b'\n');
    l
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::proto::{FlowInfo, Reply};

    fn flow(i: usize) -> FlowInfo {
        FlowInfo {
            table: (i % 3) as u8,
            priority: i as u16,
            cookie: i as u64,
            n_packets: 1,
            n_bytes: 2,
            duration_ms: 3,
            idle_age: 4,
            flow: format!("priority={i},actions=drop"),
            text: format!("cookie=0x0, priority={i},actions=drop \"q\""),
        }
    }

    fn frame_flows(n: usize) -> Vec<(Vec<u8>, bool)> {
        let mut lines = Vec::new();
        let mut out = |l: Vec<u8>, last: bool| {
            lines.push((l, last));
            true
        };
        let mut f = Framer::list("flows");
        for i in 0..n {
            f.item(&flow(i), &mut out).unwrap();
        }
        f.finish(&mut out).unwrap();
        lines
    }

    #[test]
    fn small_replies_are_the_single_line_serde_makes() {
        for n in [0, 1, 2, CHUNK_ITEMS, CHUNK_ITEMS + 1, 3 * CHUNK_ITEMS + 7] {
            let lines = frame_flows(n);
            assert_eq!(lines.len(), 1, "{n}");
            assert!(lines[0].1);
            let whole = Response::ok(Reply::Flows {
                flows: (0..n).map(flow).collect(),
            });
            assert_eq!(lines[0].0, json_line(&whole), "{n}");
        }
    }

    #[test]
    fn large_replies_stream_every_item_once_in_order() {
        let n = 40_000;
        let lines = frame_flows(n);
        assert!(lines.len() > 3);
        let head: Response = serde_json::from_slice(&lines[0].0).unwrap();
        assert!(matches!(head, Response::Stream { stream, .. } if stream.key == "flows"));
        let mut all = Vec::new();
        let mut chunks = 0;
        for (i, (l, last)) in lines.iter().enumerate().skip(1) {
            assert!(l.len() <= MAX_LINE && l.ends_with(b"\n"));
            assert_eq!(*last, i == lines.len() - 1);
            match serde_json::from_slice::<StreamLine>(l).unwrap() {
                StreamLine::Chunk {
                    chunk: Reply::Flows { flows },
                } => {
                    assert!(flows.len() <= CHUNK_ITEMS);
                    chunks += 1;
                    all.extend(flows);
                }
                StreamLine::End { end } => {
                    assert_eq!(end.items, n as u64);
                    assert_eq!(end.chunks, chunks);
                    assert!(*last);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(all == (0..n).map(flow).collect::<Vec<_>>());
    }

    #[test]
    fn text_and_extra_fields() {
        let text: String = (0..400_000).map(|i| format!("line {i} \"é\"\n")).collect();
        let mut lines = Vec::new();
        let mut out = |l: Vec<u8>, _| {
            lines.push(l);
            true
        };
        let mut f = Framer::text("toml");
        for l in text.split_inclusive('\n') {
            f.text_piece(l, &mut out).unwrap();
        }
        f.finish(&mut out).unwrap();
        let mut got = String::new();
        for l in &lines[1..] {
            match serde_json::from_slice::<StreamLine>(l).unwrap() {
                StreamLine::Chunk {
                    chunk: Reply::Config { toml },
                } => got.push_str(&toml),
                StreamLine::End { end } => assert_eq!(end.items, text.len() as u64),
                other => panic!("{other:?}"),
            }
        }
        assert!(lines.len() > 2);
        assert!(got == text, "{} bytes of {}", got.len(), text.len());

        // A small apply reply with its second field.
        let mut lines = Vec::new();
        let mut out = |l: Vec<u8>, _| {
            lines.push(l);
            true
        };
        let mut f = Framer::list("changes").with_field("applied", &true);
        f.item(&"+ add-br x", &mut out).unwrap();
        f.finish(&mut out).unwrap();
        let whole = Response::ok(Reply::Apply {
            changes: vec!["+ add-br x".into()],
            applied: true,
        });
        assert_eq!(lines, vec![json_line(&whole)]);
    }

    #[test]
    fn an_item_too_large_for_a_line_ends_the_reply_with_an_error() {
        let mut lines = Vec::new();
        let mut out = |l: Vec<u8>, last| {
            lines.push((l, last));
            true
        };
        let mut f = Framer::list("changes");
        f.item(&"small", &mut out).unwrap();
        assert_eq!(f.item(&"x".repeat(MAX_LINE), &mut out), Err(Gone));
        assert_eq!(f.finish(&mut out), Err(Gone));
        assert_eq!(lines.len(), 1);
        let r: Response = serde_json::from_slice(&lines[0].0).unwrap();
        assert!(matches!(r, Response::Err { .. }), "{r:?}");
    }
}
