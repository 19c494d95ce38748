//! Replies of any size: `dump-flows`, `export`, `dump-ports`, `fdb-show`
//! and `apply`, formatted after the switch lock and streamed.
//!
//! # What?
//! [`answer`] runs one control request. The requests whose replies can be
//! large are answered with [`Answer::Lines`]: a producer on the blocking
//! pool formats the reply item by item and frames it with
//! [`rvs_ctl::stream::Framer`] (one line when it is small, chunk lines
//! when not), handing lines to the connection over a bounded channel.
//!
//! # Design
//! Under the switch lock only what is needed is collected: for
//! `dump-flows` the matching `Arc<FlowEntry>`s and the clock
//! ([`Switch::flow_entries`], pointer copies); for `export` the running
//! configuration; `dump-ports`, `fdb-show` and `apply` run as before.
//! Formatting flows to text, TOML and JSON happens after the lock is
//! released, one chunk at a time, so a dump of a million flows holds the
//! entries and one or two chunks of text, never the whole reply.
//! Counters are read while formatting: a flow's packet count may be a few
//! milliseconds younger than the `duration` next to it.
//!
//! # Invariants
//! The output is byte for byte what the one-line reply was before (the
//! framer's single line equals `serde_json` of the whole [`Response`];
//! the streamed TOML equals [`Config::to_toml`]). Every collected item is
//! sent once, in order, or the reply ends with an error line.
//!
//! # Thread-safety
//! Producers run on tokio's blocking pool, each with its own clones of the
//! entries; the lock is taken once per request, for the collection only.
//! A slow client blocks its producer on the bounded channel
//! ([`LINES_IN_FLIGHT`]); a client that goes away ends it.
//!
//! # Limits
//! `export` still formats the flows' text under the lock (as the state
//! file's save after every change does); only the TOML and JSON are built
//! afterwards. `fdb-show`, `dump-ports` and `apply` collect their items
//! (not their JSON) whole before streaming them.

use std::sync::{Arc, Mutex};

use flowtable::syntax::{self, FlowStats};
use rvs_ctl::proto::{ErrorKind, FlowInfo, Reply, Request, Response};
use rvs_ctl::stream::{json_line, Framer, Gone, CHUNK_ITEMS};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::PiecesError;
use crate::control::server::Answer;
use crate::control::switch::Switch;
use crate::datapath::pipeline::{flow_of, FlowEntry};

/// Lines a producer may be ahead of the connection writing them.
pub const LINES_IN_FLIGHT: usize = 4;

/// Answers `req` against the switch.
pub async fn answer(sw: Arc<Mutex<Switch>>, req: Request) -> Answer {
    match req {
        Request::DumpFlows { bridge, filter } => {
            produce(move |out| dump_flows(&sw, &bridge, &filter, out))
        }
        Request::Export {} => produce(move |out| export(&sw, out)),
        req => {
            let r = tokio::task::spawn_blocking(move || {
                let (resp, ticket) = match sw.lock() {
                    Ok(mut s) => {
                        let resp = s.handle(req);
                        (resp, s.durable_ticket())
                    }
                    Err(_) => (
                        Response::err(ErrorKind::Internal, "switch state is poisoned"),
                        None,
                    ),
                };
                // Acknowledge only what is on disk; the fsync is shared
                // with every other waiter and happens without the lock.
                if let Some((d, seq)) = ticket {
                    if let Err(e) = d.wait(seq) {
                        return Response::err(
                            ErrorKind::System,
                            format!("the change was applied but could not be saved: {e}"),
                        );
                    }
                }
                resp
            })
            .await;
            let resp = r.unwrap_or_else(|e| {
                Response::err(ErrorKind::Internal, format!("request failed: {e}"))
            });
            frame_large(resp)
        }
    }
}

/// A flow as `dump-flows` reports it; `now` is the switch clock
/// ([`Switch::now_ms`]).
pub fn flow_info(e: &FlowEntry, now: u64) -> FlowInfo {
    let n_packets = e.data.n_packets();
    let n_bytes = e.data.n_bytes();
    let stats = FlowStats {
        duration_ms: now.saturating_sub(e.created_ms),
        n_packets,
        n_bytes,
        idle_age_s: now.saturating_sub(e.data.last_used_ms()) / 1000,
    };
    let flow = flow_of(e);
    FlowInfo {
        table: flow.table.0,
        priority: flow.priority.0,
        cookie: flow.cookie,
        n_packets,
        n_bytes,
        duration_ms: stats.duration_ms,
        idle_age: stats.idle_age_s,
        text: syntax::fmt_with_stats(&flow, &stats, None),
        flow: syntax::fmt_flow(&flow, None),
    }
}

type Out<'a> = rvs_ctl::stream::Sink<'a>;

/// Runs `f` on the blocking pool, its lines going to the returned answer.
fn produce(f: impl FnOnce(&mut Out<'_>) -> Result<(), Gone> + Send + 'static) -> Answer {
    let (tx, rx) = mpsc::channel(LINES_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut out = |l: Vec<u8>, last: bool| tx.blocking_send((l, last)).is_ok();
        if f(&mut out).is_err() {
            log::debug!("control: reply abandoned (client gone or reply failed)");
        }
    });
    Answer::Lines(rx)
}

/// One error line (the whole reply).
fn reject(out: &mut Out<'_>, kind: ErrorKind, message: String) -> Result<(), Gone> {
    if out(json_line(&Response::err(kind, message)), true) {
        Ok(())
    } else {
        Err(Gone)
    }
}

fn dump_flows(
    sw: &Mutex<Switch>,
    bridge: &str,
    filter: &str,
    out: &mut Out<'_>,
) -> Result<(), Gone> {
    let collected = match sw.lock() {
        Ok(s) => s
            .flow_filter(bridge, "dump-flows", filter)
            .map(|f| (s.flow_entries(bridge, &f), s.now_ms())),
        Err(_) => return reject(out, ErrorKind::Internal, "switch state is poisoned".into()),
    };
    // The lock is released: format from here on.
    let (entries, now) = match collected {
        Ok(x) => x,
        Err(e) => return reject(out, e.kind, e.message),
    };
    let mut f = Framer::list("flows");
    for e in &entries {
        f.item(&flow_info(e, now), out)?;
    }
    f.finish(out)
}

fn export(sw: &Mutex<Switch>, out: &mut Out<'_>) -> Result<(), Gone> {
    let cfg = match sw.lock() {
        Ok(s) => s.export(),
        Err(_) => return reject(out, ErrorKind::Internal, "switch state is poisoned".into()),
    };
    let mut f = Framer::text("toml");
    let r = cfg.write_pieces(&mut |piece| f.text_piece(piece, out));
    match r {
        Ok(()) => f.finish(out),
        Err(PiecesError::Sink(gone)) => Err(gone),
        Err(PiecesError::Toml(e)) => reject(out, ErrorKind::Internal, e.to_string()),
    }
}

/// `resp` as is, or streamed when it carries many items.
fn frame_large(resp: Response) -> Answer {
    let Response::Ok { result, .. } = &resp else {
        return Answer::One(resp);
    };
    if result.items().unwrap_or(0) <= CHUNK_ITEMS as u64 || matches!(result, Reply::Config { .. }) {
        return Answer::One(resp);
    }
    let Response::Ok { result, .. } = resp else {
        return Answer::One(resp);
    };
    match result {
        Reply::Flows { flows } => produce(move |out| list(Framer::list("flows"), &flows, out)),
        Reply::Ports { ports } => produce(move |out| list(Framer::list("ports"), &ports, out)),
        Reply::Fdb { fdb } => produce(move |out| list(Framer::list("fdb"), &fdb, out)),
        Reply::Apply { changes, applied } => produce(move |out| {
            list(
                Framer::list("changes").with_field("applied", &applied),
                &changes,
                out,
            )
        }),
        other => Answer::One(Response::ok(other)),
    }
}

fn list<T: Serialize>(mut f: Framer, items: &[T], out: &mut Out<'_>) -> Result<(), Gone> {
    for i in items {
        f.item(i, out)?;
    }
    f.finish(out)
}
