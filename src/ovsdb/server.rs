//! The OVSDB JSON-RPC endpoint (RFC 7047 §4): listeners on `punix:PATH`
//! and `ptcp:PORT[:IP]`, one task per connection.
//!
//! # What
//! Methods: `list_dbs`, `get_schema`, `transact`, `monitor`,
//! `monitor_cond`, `monitor_cond_since`, `monitor_cond_change`,
//! `monitor_cancel`, `echo`, `set_db_change_aware`; `lock`, `steal`,
//! `unlock` and `cancel` are answered with errors (no locks are served;
//! a `wait` is cancelled when its connection closes). The `_Server`
//! database is absent: clients (ovsdb-idl, ovsdbapp) then monitor
//! `Open_vSwitch` directly.
//!
//! # Design
//! Messages are JSON values back to back on the stream (no framing), as
//! Open vSwitch's jsonrpc writes them. Each connection has one outgoing
//! queue: replies and monitor notifications are written in the order they
//! were queued, so a client sees a commit's `update` before the reply to
//! the transaction that made it, as ovsdb-server sends them. A
//! transaction runs on the blocking pool (it takes the switch's lock); a
//! transaction blocked on a `wait` with a timeout gets its own task that
//! retries it after each commit until the timeout, then answers with the
//! "timed out" error the database gives when the wait still fails.
//!
//! Liveness: after 5 s without a message the server sends an `echo`
//! request; a client silent for another 5 s is disconnected (and its
//! monitors dropped).
//!
//! # Limits
//! A message larger than 64 MiB closes the connection. Unix sockets are
//! mode 0600 (root only) from the moment they exist
//! ([`crate::control::server::bind`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::db::TxnOutcome;
use super::error::OvsdbError;
use super::service::{MonitorKind, Ovsdb};
use crate::control::switch::Switch;

/// The one database served.
pub const DB_NAME: &str = "Open_vSwitch";

/// Largest message accepted.
const MAX_MESSAGE: usize = 64 << 20;

/// Silence after which the server probes a client with `echo`.
const PROBE: Duration = Duration::from_secs(5);

/// A listening address: `punix:PATH` or `ptcp:PORT[:IP]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A unix socket at this path.
    Unix(PathBuf),
    /// TCP on this address.
    Tcp(std::net::SocketAddr),
}

impl std::str::FromStr for Remote {
    type Err = String;
    fn from_str(s: &str) -> Result<Remote, String> {
        if let Some(p) = s.strip_prefix("punix:") {
            if p.is_empty() {
                return Err(format!("{s}: punix: needs a path"));
            }
            return Ok(Remote::Unix(PathBuf::from(p)));
        }
        if let Some(rest) = s.strip_prefix("ptcp:") {
            let (port, ip) = match rest.split_once(':') {
                Some((p, ip)) => (p, ip.trim_start_matches('[').trim_end_matches(']')),
                None => (rest, "0.0.0.0"),
            };
            let port: u16 = port
                .parse()
                .map_err(|_| format!("{s}: ptcp:PORT[:IP]: {port:?} is not a port number"))?;
            let ip: std::net::IpAddr = ip
                .parse()
                .map_err(|_| format!("{s}: ptcp:PORT[:IP]: {ip:?} is not an IP address"))?;
            return Ok(Remote::Tcp(std::net::SocketAddr::new(ip, port)));
        }
        Err(format!(
            "{s}: expected punix:PATH or ptcp:PORT[:IP] (the OVSDB endpoint only listens)"
        ))
    }
}

/// What every connection shares.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The database and its followers.
    pub ovsdb: Arc<Mutex<Ovsdb>>,
    /// The switch.
    pub switch: Arc<Mutex<Switch>>,
    next_conn: Arc<AtomicU64>,
}

impl Shared {
    /// Shares `ovsdb` and `switch` with the connections.
    pub fn new(ovsdb: Arc<Mutex<Ovsdb>>, switch: Arc<Mutex<Switch>>) -> Shared {
        Shared {
            ovsdb,
            switch,
            next_conn: Arc::new(AtomicU64::new(1)),
        }
    }
}

/// Binds `remote`; starts accepting on the current runtime. The returned
/// guard removes a unix socket file.
pub fn listen(
    remote: &Remote,
    shared: Shared,
) -> anyhow::Result<Option<crate::control::server::SocketFile>> {
    match remote {
        Remote::Unix(path) => {
            // Refuses a live socket or a non-socket at the path; bound
            // with mode 0600 from the start (no window).
            let (listener, file) = crate::control::server::bind(path, None)
                .map_err(|e| anyhow::anyhow!("--ovsdb-remote punix:{}: {e}", path.display()))?;
            log::info!("ovsdb: listening on punix:{} (mode 0600)", path.display());
            tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((s, _)) => {
                            let (r, w) = s.into_split();
                            tokio::spawn(connection(r, w, shared.clone()));
                        }
                        Err(e) => {
                            log::warn!("ovsdb: accept: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
            Ok(Some(file))
        }
        Remote::Tcp(addr) => {
            let std_l = std::net::TcpListener::bind(addr)
                .map_err(|e| anyhow::anyhow!("--ovsdb-remote ptcp: binding {addr}: {e}"))?;
            std_l.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(std_l)?;
            log::info!("ovsdb: listening on ptcp:{addr}");
            tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((s, peer)) => {
                            log::debug!("ovsdb: connection from {peer}");
                            let _ = s.set_nodelay(true);
                            let (r, w) = s.into_split();
                            tokio::spawn(connection(r, w, shared.clone()));
                        }
                        Err(e) => {
                            log::warn!("ovsdb: accept: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
            Ok(None)
        }
    }
}

fn reply(id: &Value, result: Value) -> Value {
    json!({"id": id, "result": result, "error": null})
}

fn error_reply(id: &Value, e: &OvsdbError) -> Value {
    // ovsdb-server answers an unknown method with the bare string, and
    // clients compare it so (ovsdb-idl falls back from
    // monitor_cond_since on exactly that).
    let error = if e.error == UNKNOWN_METHOD {
        json!(UNKNOWN_METHOD)
    } else {
        e.to_json()
    };
    json!({"id": id, "result": null, "error": error})
}

const UNKNOWN_METHOD: &str = "unknown method";

/// Splits the complete JSON values off the front of `buf` (what is left
/// is an incomplete message); `Err` when the stream is not JSON.
pub fn split_messages(buf: &mut Vec<u8>) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let mut used = 0;
    {
        let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<Value>();
        loop {
            match it.next() {
                Some(Ok(v)) => {
                    out.push(v);
                    used = it.byte_offset();
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => return Err(e.to_string()),
                None => {
                    used = buf.len();
                    break;
                }
            }
        }
    }
    buf.drain(..used);
    Ok(out)
}

/// Serves one client until it closes, errs or goes silent.
async fn connection<R, W>(mut rd: R, mut wr: W, shared: Shared)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let writer = tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            let mut bytes = match serde_json::to_vec(&v) {
                Ok(b) => b,
                Err(_) => continue,
            };
            // Drain whatever else is queued into the same write.
            while let Ok(more) = rx.try_recv() {
                if let Ok(b) = serde_json::to_vec(&more) {
                    bytes.extend_from_slice(&b);
                }
            }
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut probed = false;
    loop {
        let n = match tokio::time::timeout(PROBE, rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => n,
            Err(_) if probed => {
                log::info!("ovsdb: connection {conn}: no reply to echo within 5 s; closing");
                break;
            }
            Err(_) => {
                probed = true;
                let _ = tx.send(json!({"method": "echo", "params": [], "id": "echo"}));
                continue;
            }
        };
        probed = false;
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_MESSAGE {
            log::warn!("ovsdb: connection {conn}: message over 64 MiB; closing");
            break;
        }
        let msgs = match split_messages(&mut buf) {
            Ok(m) => m,
            Err(e) => {
                // As ovsdb-server: a stream that is not JSON is closed.
                log::warn!("ovsdb: connection {conn}: not JSON: {e}; closing");
                break;
            }
        };
        let mut ok = true;
        for m in msgs {
            if let Err(why) = handle(conn, m, &shared, &tx).await {
                log::warn!("ovsdb: connection {conn}: {why}; closing");
                ok = false;
                break;
            }
        }
        if !ok {
            break;
        }
    }
    if let Ok(mut o) = shared.ovsdb.lock() {
        o.disconnect(conn);
    }
    drop(tx);
    let _ = writer.await;
}

/// Answers one message (requests; replies to our echo are taken as
/// signs of life). `Err` when it is not a JSON-RPC message: the
/// connection is then closed, as ovsdb-server does.
async fn handle(
    conn: u64,
    msg: Value,
    shared: &Shared,
    tx: &mpsc::UnboundedSender<Value>,
) -> Result<(), String> {
    let Some(obj) = msg.as_object() else {
        return Err("a message that is not a JSON object".to_string());
    };
    let Some(method) = obj.get("method") else {
        if obj.contains_key("result") || obj.contains_key("error") {
            return Ok(()); // a reply (to our echo)
        }
        return Err("a JSON-RPC message with neither method nor result".to_string());
    };
    let Some(method) = method.as_str() else {
        return Err("a method that is not a string".to_string());
    };
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let params = match msg.get("params") {
        Some(Value::Array(p)) => p.clone(),
        _ => return Err(format!("{method}: params that are not an array")),
    };
    let db_param = |i: usize| -> Result<(), OvsdbError> {
        match params.get(i).and_then(Value::as_str) {
            Some(DB_NAME) => Ok(()),
            Some(other) => Err(OvsdbError::new(
                "unknown database",
                format!("{other}: this server has only {DB_NAME}"),
            )),
            None => Err(OvsdbError::new(
                "syntax error",
                format!("{method}: the first parameter must be a database name"),
            )),
        }
    };
    if method == "transact" {
        match db_param(0) {
            Ok(()) => {
                transact(id, params[1..].to_vec(), shared.clone(), tx.clone()).await;
            }
            Err(e) => {
                let _ = tx.send(error_reply(&id, &e));
            }
        }
        return Ok(());
    }
    let checked = db_param(0);
    let method = method.to_string();
    let (s, t) = (shared.clone(), tx.clone());
    // Off the async thread: the database lock may be held by a
    // transaction that waits for the switch's.
    let rid = id.clone();
    let answer =
        tokio::task::spawn_blocking(move || answer(conn, &rid, &method, &params, checked, &s, &t))
            .await
            .unwrap_or_else(|e| Err(OvsdbError::new("internal error", e.to_string())));
    if id.is_null() {
        return Ok(()); // a notification: no reply
    }
    match answer {
        Ok(Some(v)) => {
            let _ = tx.send(reply(&id, v));
        }
        Ok(None) => {}
        Err(e) => {
            let _ = tx.send(error_reply(&id, &e));
        }
    }
    Ok(())
}

/// The answer to a request other than `transact` (on the blocking pool).
fn answer(
    conn: u64,
    id: &Value,
    method: &str,
    params: &[Value],
    db_param: Result<(), OvsdbError>,
    shared: &Shared,
    tx: &mpsc::UnboundedSender<Value>,
) -> Result<Option<Value>, OvsdbError> {
    let v = match method {
        "echo" => Ok(Value::Array(params.to_vec())),
        "list_dbs" => Ok(json!([DB_NAME])),
        "get_schema" => db_param.and_then(|()| {
            let o = shared.ovsdb.lock().map_err(|_| poisoned())?;
            Ok(o.db().schema().json().clone())
        }),
        "set_db_change_aware" => Ok(json!({})),
        "monitor" | "monitor_cond" | "monitor_cond_since" => {
            let kind = match method {
                "monitor" => MonitorKind::Monitor,
                "monitor_cond" => MonitorKind::Cond,
                _ => MonitorKind::Since,
            };
            return db_param
                .and_then(|()| {
                    let mid = params.get(1).cloned().unwrap_or(Value::Null);
                    let req = params.get(2).cloned().unwrap_or_else(|| json!({}));
                    let mut o = shared.ovsdb.lock().map_err(|_| poisoned())?;
                    let mut sw = shared.switch.lock().map_err(|_| poisoned())?;
                    let initial = o.monitor(&mut sw, conn, mid, &req, kind, tx.clone())?;
                    // Queued under the lock: no update can overtake it.
                    if !id.is_null() {
                        let _ = tx.send(reply(id, initial));
                    }
                    Ok(Value::Null)
                })
                .map(|_| None);
        }
        "monitor_cond_change" => {
            let old = params.first().cloned().unwrap_or(Value::Null);
            let new = params.get(1).cloned().unwrap_or(Value::Null);
            let req = params.get(2).cloned().unwrap_or_else(|| json!({}));
            shared
                .ovsdb
                .lock()
                .map_err(|_| poisoned())
                .and_then(|mut o| o.monitor_cond_change(conn, &old, new, &req))
                .map(|()| json!({}))
        }
        "monitor_cancel" => {
            let mid = params.first().cloned().unwrap_or(Value::Null);
            shared
                .ovsdb
                .lock()
                .map_err(|_| poisoned())
                .and_then(|mut o| o.monitor_cancel(conn, &mid))
                .map(|()| json!({}))
        }
        "lock" | "steal" | "unlock" => Err(OvsdbError::new(
            "not supported",
            "this server does not serve locks",
        )),
        "cancel" => Err(OvsdbError::new("not supported", "cancel is not supported")),
        other => Err(OvsdbError::new(
            UNKNOWN_METHOD,
            format!("{other} is not an OVSDB method this server knows"),
        )),
    };
    v.map(Some)
}

fn poisoned() -> OvsdbError {
    OvsdbError::new("internal error", "the database lock is poisoned")
}

/// The smallest positive `timeout` of the `wait` operations in `ops`, in
/// milliseconds.
fn wait_timeout(ops: &[Value]) -> Option<u64> {
    ops.iter()
        .filter(|o| o.get("op").and_then(Value::as_str) == Some("wait"))
        .filter_map(|o| o.get("timeout").and_then(Value::as_u64))
        .filter(|&t| t > 0)
        .min()
}

/// `ops` with every wait's timeout 0 (the last try of a blocked one).
fn without_timeouts(ops: &[Value]) -> Vec<Value> {
    ops.iter()
        .map(|o| {
            let mut o = o.clone();
            if o.get("op").and_then(Value::as_str) == Some("wait") {
                o["timeout"] = json!(0);
            }
            o
        })
        .collect()
}

/// Runs a transaction on the blocking pool.
async fn run_txn(shared: &Shared, ops: Vec<Value>) -> Result<TxnOutcome, OvsdbError> {
    let s = shared.clone();
    tokio::task::spawn_blocking(move || {
        let (outcome, ticket) = {
            let mut o = s.ovsdb.lock().map_err(|_| poisoned())?;
            let mut sw = s.switch.lock().map_err(|_| poisoned())?;
            let outcome = o.transact(&mut sw, &ops)?;
            (outcome, sw.durable_ticket())
        };
        // Answer only once the switch's own state is on disk too (the
        // database's log was synced by transact): a restart after the
        // reply finds both.
        if let Some((d, seq)) = ticket {
            d.wait(seq).map_err(|e| {
                OvsdbError::new("I/O error", format!("saving the switch's state: {e}"))
            })?;
        }
        Ok(outcome)
    })
    .await
    .map_err(|e| OvsdbError::new("internal error", e.to_string()))?
}

async fn transact(id: Value, ops: Vec<Value>, shared: Shared, tx: mpsc::UnboundedSender<Value>) {
    let mut commits = match shared.ovsdb.lock() {
        Ok(o) => o.commits(),
        Err(_) => {
            let _ = tx.send(error_reply(&id, &poisoned()));
            return;
        }
    };
    match run_txn(&shared, ops.clone()).await {
        Ok(TxnOutcome::Done { results, .. }) => {
            let _ = tx.send(reply(&id, Value::Array(results)));
        }
        Ok(TxnOutcome::Blocked) => {
            // Retry after each commit until the first wait's timeout.
            let limit = Duration::from_millis(wait_timeout(&ops).unwrap_or(0));
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + limit;
                loop {
                    let woke = tokio::time::timeout_at(deadline, commits.changed()).await;
                    let last = !matches!(woke, Ok(Ok(())));
                    let try_ops = if last {
                        without_timeouts(&ops)
                    } else {
                        ops.clone()
                    };
                    match run_txn(&shared, try_ops).await {
                        Ok(TxnOutcome::Done { results, .. }) => {
                            let _ = tx.send(reply(&id, Value::Array(results)));
                            return;
                        }
                        Ok(TxnOutcome::Blocked) if !last && !tx.is_closed() => continue,
                        Ok(TxnOutcome::Blocked) => return,
                        Err(e) => {
                            let _ = tx.send(error_reply(&id, &e));
                            return;
                        }
                    }
                }
            });
        }
        Err(e) => {
            let _ = tx.send(error_reply(&id, &e));
        }
    }
}

/// The periodic sync of the database with the switch: every 100 ms a
/// look at the switch's generation (pulled when it moved), every second
/// status and retries, every 5 s `Interface.statistics` (as
/// ovs-vswitchd's default `stats-update-interval`).
pub async fn sync_loop(shared: Shared) {
    let generation = match shared.switch.lock() {
        Ok(sw) => sw.generation(),
        Err(_) => return,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        let g = generation.load(Ordering::Acquire);
        // try_lock: never block the async thread on a transaction.
        let stale = shared.ovsdb.try_lock().map(|o| o.stale(g)).unwrap_or(false);
        if !stale && n % 10 != 0 {
            continue;
        }
        let s = shared.clone();
        let stats = n % 50 == 0;
        let _ = tokio::task::spawn_blocking(move || {
            if let (Ok(mut o), Ok(mut sw)) = (s.ovsdb.lock(), s.switch.lock()) {
                o.tick(&mut sw, stats);
            }
        })
        .await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn remotes_parse() {
        assert_eq!(
            "punix:/run/x.sock".parse::<Remote>().unwrap(),
            Remote::Unix("/run/x.sock".into())
        );
        assert_eq!(
            "ptcp:6640:127.0.0.1".parse::<Remote>().unwrap(),
            Remote::Tcp("127.0.0.1:6640".parse().unwrap())
        );
        assert_eq!(
            "ptcp:6640".parse::<Remote>().unwrap(),
            Remote::Tcp("0.0.0.0:6640".parse().unwrap())
        );
        assert!("tcp:1.2.3.4:6640".parse::<Remote>().is_err());
        assert!("ptcp:x".parse::<Remote>().is_err());
    }

    #[test]
    fn messages_split_back_to_back() {
        let mut buf = br#"{"a":1}{"b":2} {"c":"#.to_vec();
        let m = split_messages(&mut buf).unwrap();
        assert_eq!(m, vec![json!({"a":1}), json!({"b":2})]);
        assert_eq!(buf, br#" {"c":"#.to_vec());
        buf.extend_from_slice(b"3}");
        assert_eq!(split_messages(&mut buf).unwrap(), vec![json!({"c":3})]);
        assert!(buf.is_empty());
        let mut bad = b"{]".to_vec();
        assert!(split_messages(&mut bad).is_err());
    }
}
