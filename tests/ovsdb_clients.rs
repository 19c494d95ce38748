//! Real OVSDB clients against rvsd's OVSDB endpoint (`--ovsdb-remote
//! punix:PATH`, RFC 7047, the `Open_vSwitch` schema), and the same checks
//! against a private Open vSwitch (ovsdb-server + ovs-vswitchd) to prove
//! the harness: every check runs through the [`Switch`] trait, which
//! hides only how a bridge or port is made with the switch's own CLI
//! (`rvsctl` / `ovs-vsctl`) and which netdev an empty-`type` Interface
//! attaches.
//!
//! - `*_ovsdb_client_*`: `ovsdb-client monitor … Interface
//!   name,ofport,external_ids --format=json` (what Neutron's OVS agent
//!   runs) sees a port added with the switch's CLI, with a valid ofport,
//!   and its delete; `dump`, `list-dbs`, `get-schema-version`, and
//!   `transact` of a raw read and a raw write (an add-br as ovs-vsctl
//!   writes it, which the CLI then shows).
//! - `*_ovsdbapp_*`: ovsdbapp (PyPI, in a venv under cargo's
//!   `CARGO_TARGET_TMPDIR`, as for os-ken and Faucet) runs
//!   `tests/ovsdbapp_client.py`: `add_br`, then `add_port` + `db_set`
//!   of `external_ids` in one transaction (os-vif's way), the Interface
//!   gets a valid ofport and the CLI lists the port; `del_port`, `del_br`.
//! - `*_bad_input`: raw JSON-RPC over the unix socket. Malformed JSON
//!   closes the connection and the server stays up; `echo` returns its
//!   params; back-to-back requests in one write get both replies; unknown
//!   database, table, column, operation and method, a constraint and a
//!   referential-integrity violation, a failed `wait` and an `abort`
//!   give the same `error` strings as a real ovsdb-server (a private one
//!   each test starts from `ovsdb-tool create` of the same schema), at the
//!   same place in the result array; none of those transactions, each of
//!   which starts with a valid add-br, applies anything; the socket is
//!   not world-accessible (rvsd: exactly 0600).
//!
//! The rvs tests fail until the endpoint lands; the OVS ones pass today.
//! Both need root and Open vSwitch (a failure in CI if missing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::ovs::{have_ovs, Ovs, Proc};
use common::*;
use serde_json::{json, Value};

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const DB: &str = "Open_vSwitch";

// ---- the switches -----------------------------------------------------------

/// Bridge name -> port names, as the switch's own CLI shows them.
type View = BTreeMap<String, BTreeSet<String>>;

/// What the checks need from a switch besides its OVSDB socket.
trait Switch {
    /// "rvs" or "OVS", for messages.
    fn what(&self) -> &'static str;
    /// The OVSDB unix socket.
    fn sock(&self) -> PathBuf;
    /// `unix:SOCK`.
    fn remote(&self) -> String {
        format!("unix:{}", self.sock().display())
    }
    /// A new bridge made with the switch's CLI.
    fn cli_add_br(&self) -> String;
    /// A new port on `br` made with the switch's CLI (rvs: a TAP port;
    /// OVS: an internal port); its name.
    fn cli_add_port(&self, br: &str) -> String;
    /// Deletes a port with the switch's CLI.
    fn cli_del_port(&self, br: &str, port: &str);
    /// Bridges and their ports, from the switch's CLI.
    fn cli_view(&self) -> View;
    /// An existing netdev an Interface with empty `type` can attach, and
    /// the guard that deletes it.
    fn netdev(&self) -> (String, Box<dyn Any>);
    /// `datapath_type` for new bridges.
    fn datapath_type(&self) -> &'static str {
        "netdev"
    }
    /// Whether the switch's processes still run.
    fn alive(&mut self) -> bool;
    /// Asserts the OVSDB socket's permission bits.
    fn check_socket_mode(&self, mode: u32);
    /// Logs, for failure messages.
    fn logs(&self) -> String;
}

/// rvsd with `--ovsdb-remote punix:DIR/db.sock`, in the root namespace
/// (as most rvs tests run it; every name it is given is unique).
struct RvsSwitch {
    d: Rvsd,
    _dir: TempDir,
    sock: PathBuf,
}

impl RvsSwitch {
    fn start() -> RvsSwitch {
        let dir = TempDir::new();
        let sock = dir.0.join("db.sock");
        let remote = format!("punix:{}", sock.display());
        let d = Rvsd::start_with(&["--ovsdb-remote", &remote]);
        let up = poll(Duration::from_secs(10), || sock.exists().then_some(()));
        assert!(
            up.is_some(),
            "rvsd made no OVSDB socket {}:\n{}",
            sock.display(),
            d.log_text()
        );
        RvsSwitch { d, _dir: dir, sock }
    }
}

impl Switch for RvsSwitch {
    fn what(&self) -> &'static str {
        "rvs"
    }
    fn sock(&self) -> PathBuf {
        self.sock.clone()
    }
    fn cli_add_br(&self) -> String {
        self.d.add_br()
    }
    fn cli_add_port(&self, br: &str) -> String {
        let p = uniq('t');
        self.d.ok(&["add-port", br, &p]);
        p
    }
    fn cli_del_port(&self, br: &str, port: &str) {
        self.d.ok(&["del-port", br, port]);
    }
    fn cli_view(&self) -> View {
        let v = self.d.json(&["show"]);
        let mut out = View::new();
        for b in v["bridges"].as_array().expect("bridges") {
            let ports = b["ports"]
                .as_array()
                .expect("ports")
                .iter()
                .map(|p| p["name"].as_str().expect("port name").to_string())
                .collect();
            out.insert(b["name"].as_str().expect("name").to_string(), ports);
        }
        out
    }
    fn netdev(&self) -> (String, Box<dyn Any>) {
        // Tuple fields drop in order: the veth, then its peer's namespace.
        let ns = Netns::new();
        let v = Veth::new(&ns);
        (v.root.clone(), Box::new((v, ns)))
    }
    fn alive(&mut self) -> bool {
        self.d.running()
    }
    fn check_socket_mode(&self, mode: u32) {
        assert_eq!(mode, 0o600, "rvsd's OVSDB socket mode is {mode:o}");
    }
    fn logs(&self) -> String {
        self.d.log_text()
    }
}

/// A private Open vSwitch; bridges use the userspace (`netdev`)
/// datapath, so no kernel module is needed.
struct OvsSwitch {
    ovs: Ovs,
}

impl OvsSwitch {
    fn start() -> OvsSwitch {
        OvsSwitch { ovs: Ovs::start() }
    }

    /// `ovs-vsctl ARGS` inside OVS's namespace; stdout.
    fn vsctl_out(&self, args: &[&str]) -> String {
        let out = self.ovs.vsctl_output(args);
        assert!(
            out.status.success(),
            "ovs-vsctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Switch for OvsSwitch {
    fn what(&self) -> &'static str {
        "OVS"
    }
    fn sock(&self) -> PathBuf {
        self.ovs.dir.0.join("db.sock")
    }
    fn cli_add_br(&self) -> String {
        let br = uniq('r');
        self.ovs.vsctl(&[
            "add-br",
            &br,
            "--",
            "set",
            "bridge",
            &br,
            "datapath_type=netdev",
        ]);
        br
    }
    fn cli_add_port(&self, br: &str) -> String {
        let p = uniq('t');
        self.ovs.vsctl(&[
            "add-port",
            br,
            &p,
            "--",
            "set",
            "interface",
            &p,
            "type=internal",
        ]);
        p
    }
    fn cli_del_port(&self, br: &str, port: &str) {
        self.ovs.vsctl(&["del-port", br, port]);
    }
    fn cli_view(&self) -> View {
        let mut out = View::new();
        for br in self.vsctl_out(&["list-br"]).lines() {
            let mut ports: BTreeSet<String> = self
                .vsctl_out(&["list-ports", br])
                .lines()
                .map(String::from)
                .collect();
            // rvs lists a bridge's LOCAL port among its ports; so does this.
            ports.insert(br.to_string());
            out.insert(br.to_string(), ports);
        }
        out
    }
    fn netdev(&self) -> (String, Box<dyn Any>) {
        // Both ends in OVS's namespace, deleted with it.
        let (a, _b) = self.ovs.veth_inside();
        (a, Box::new(()))
    }
    fn alive(&mut self) -> bool {
        // ovsdb-server answers (a Proc that died would show here).
        Rpc::open(&self.sock()).call("echo", json!([])).is_ok()
    }
    fn check_socket_mode(&self, mode: u32) {
        // ovsdb-server makes it 0750; what matters is no world access.
        assert_eq!(mode & 0o007, 0, "OVS's OVSDB socket mode is {mode:o}");
    }
    fn logs(&self) -> String {
        self.ovs.logs()
    }
}

// ---- a plain ovsdb-server to compare answers with ----------------------------

/// ovsdb-server on a fresh database from `ovsdb-tool create` of the
/// installed vswitch schema, with the one `Open_vSwitch` row ovs-vsctl's
/// `init` would make; no ovs-vswitchd. Killed by PID on drop.
struct RefDb {
    _p: Proc,
    dir: TempDir,
}

impl RefDb {
    fn start() -> RefDb {
        let dir = TempDir::new();
        let d = &dir.0;
        let db = d.join("conf.db");
        run(&["ovsdb-tool", "create", db.to_str().unwrap(), SCHEMA]);
        let mut c = Command::new("ovsdb-server");
        c.arg(&db).args([
            format!("--remote=punix:{}", d.join("db.sock").display()),
            format!("--unixctl={}", d.join("ovsdb-server.ctl").display()),
            format!("--log-file={}", d.join("ovsdb-server.log").display()),
        ]);
        let p = Proc::spawn(c, "ovsdb-server", &d.join("ovsdb-server.out"));
        let r = RefDb { _p: p, dir };
        let up = poll(Duration::from_secs(10), || {
            UnixStream::connect(r.sock()).ok().map(|_| ())
        });
        assert!(up.is_some(), "reference ovsdb-server did not start");
        let v = Rpc::open(&r.sock())
            .transact(json!([{"op": "insert", "table": "Open_vSwitch", "row": {}}]))
            .unwrap();
        assert!(v[0]["uuid"].is_array(), "init: {v}");
        r
    }

    fn sock(&self) -> PathBuf {
        self.dir.0.join("db.sock")
    }
}

// ---- JSON-RPC ---------------------------------------------------------------

/// Why no reply came.
#[derive(Debug, PartialEq)]
enum RpcEnd {
    Closed,
    Timeout,
}

/// A JSON-RPC connection over a unix socket: JSON values back to back,
/// with or without whitespace between them (RFC 7047 has no framing).
struct Rpc {
    s: UnixStream,
    buf: Vec<u8>,
    next_id: u64,
}

impl Rpc {
    fn open(sock: &Path) -> Rpc {
        let s =
            UnixStream::connect(sock).unwrap_or_else(|e| panic!("connect {}: {e}", sock.display()));
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Rpc {
            s,
            buf: Vec::new(),
            next_id: 1,
        }
    }

    fn send_raw(&mut self, b: &[u8]) {
        self.s.write_all(b).expect("write to the OVSDB socket");
    }

    fn send(&mut self, v: &Value) {
        self.send_raw(v.to_string().as_bytes());
    }

    /// The next JSON value from the server, within `limit`.
    fn next(&mut self, limit: Duration) -> Result<Value, RpcEnd> {
        let end = Instant::now() + limit;
        loop {
            let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            match it.next() {
                Some(Ok(v)) => {
                    let off = it.byte_offset();
                    self.buf.drain(..off);
                    return Ok(v);
                }
                Some(Err(e)) if e.is_eof() => {}
                Some(Err(e)) => panic!(
                    "the server sent invalid JSON ({e}): {}",
                    String::from_utf8_lossy(&self.buf)
                ),
                None => self.buf.clear(),
            }
            let mut tmp = [0u8; 65536];
            match self.s.read(&mut tmp) {
                Ok(0) => return Err(RpcEnd::Closed),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= end {
                        return Err(RpcEnd::Timeout);
                    }
                }
                Err(_) => return Err(RpcEnd::Closed),
            }
        }
    }

    /// The reply to request `id`; answers the server's own `echo`
    /// requests and skips notifications on the way.
    fn reply_to(&mut self, id: &Value) -> Result<Value, RpcEnd> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.next(end.saturating_duration_since(Instant::now()))?;
            if v.get("method").and_then(Value::as_str) == Some("echo") && !v["id"].is_null() {
                let r = json!({"id": v["id"], "result": v["params"], "error": null});
                self.send(&r);
                continue;
            }
            if v.get("id") == Some(id) && v.get("method").is_none() {
                return Ok(v);
            }
        }
    }

    /// Sends a request and returns the whole reply object.
    fn request(&mut self, method: &str, params: Value) -> Result<Value, RpcEnd> {
        let id = json!(self.next_id);
        self.next_id += 1;
        self.send(&json!({"method": method, "params": params, "id": id}));
        self.reply_to(&id)
    }

    /// Sends a request and returns its `result`, or the `error` as Err.
    fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let r = self
            .request(method, params)
            .unwrap_or_else(|e| panic!("{method}: no reply ({e:?})"));
        match r.get("error") {
            Some(e) if !e.is_null() => Err(e.clone()),
            _ => Ok(r["result"].clone()),
        }
    }

    /// `transact` on `Open_vSwitch` with `ops`; the result array.
    fn transact(&mut self, ops: Value) -> Result<Value, Value> {
        let mut params = vec![json!(DB)];
        params.extend(ops.as_array().expect("ops").iter().cloned());
        self.call("transact", Value::Array(params))
    }
}

// ---- transactions -------------------------------------------------------------

/// The operations of an `ovs-vsctl add-br BR`: an internal Interface and
/// a Port named BR, the Bridge, and its uuid added to
/// `Open_vSwitch.bridges`. Named uuids get `tag` so two can share a
/// transaction.
fn add_br_ops(br: &str, dp: &str, tag: &str) -> Vec<Value> {
    vec![
        json!({"op": "insert", "table": "Interface", "uuid-name": format!("i{tag}"),
               "row": {"name": br, "type": "internal"}}),
        json!({"op": "insert", "table": "Port", "uuid-name": format!("p{tag}"),
               "row": {"name": br, "interfaces": ["named-uuid", format!("i{tag}")]}}),
        json!({"op": "insert", "table": "Bridge", "uuid-name": format!("b{tag}"),
               "row": {"name": br, "datapath_type": dp,
                       "ports": ["named-uuid", format!("p{tag}")]}}),
        json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
               "mutations": [["bridges", "insert", ["named-uuid", format!("b{tag}")]]]}),
    ]
}

/// The names of the Bridge rows named `br` (select).
fn bridge_rows(rpc: &mut Rpc, br: &str) -> Vec<Value> {
    let r = rpc
        .transact(json!([{"op": "select", "table": "Bridge",
                          "where": [["name", "==", br]], "columns": ["name"]}]))
        .unwrap_or_else(|e| panic!("select: {e}"));
    r[0]["rows"].as_array().expect("rows").clone()
}

/// What each entry of a transact result is: "uuid", "rows", "count",
/// "empty" (`{}`), "null" or "error:<error string>". Comparable between
/// servers where the values (uuids, `details`) are not.
fn shape(result: &Value) -> Vec<String> {
    result
        .as_array()
        .unwrap_or_else(|| panic!("result is not an array: {result}"))
        .iter()
        .map(|e| {
            if e.is_null() {
                "null".into()
            } else if let Some(err) = e.get("error") {
                format!("error:{}", err.as_str().unwrap_or("?"))
            } else if e.get("uuid").is_some() {
                "uuid".into()
            } else if e.get("rows").is_some() {
                "rows".into()
            } else if e.get("count").is_some() {
                "count".into()
            } else if e.as_object().is_some_and(|o| o.is_empty()) {
                "empty".into()
            } else {
                format!("other:{e}")
            }
        })
        .collect()
}

// ---- ovsdb-client --------------------------------------------------------------

/// Runs `ovsdb-client ARGS` (at most 20 s); stdout.
fn ovsdb_client(args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("20")
        .arg("ovsdb-client")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ovsdb-client");
    assert!(
        out.status.success(),
        "ovsdb-client {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ovsdb-client monitor REMOTE Open_vSwitch Interface
/// name,ofport,external_ids --format=json`, as Neutron's agent runs it,
/// line-buffered (`stdbuf -oL`: to a pipe ovsdb-client buffers its
/// output). Every row it printed is kept as `heading -> value` (with
/// `row` and `action`). Killed by PID on drop.
struct Monitor {
    child: Child,
    rows: Arc<Mutex<Vec<BTreeMap<String, Value>>>>,
    raw: Arc<Mutex<String>>,
    err: PathBuf,
    _dir: TempDir,
}

impl Monitor {
    fn start(remote: &str) -> Monitor {
        let dir = TempDir::new();
        let err = dir.0.join("monitor.err");
        let mut c = Command::new("stdbuf");
        c.args(["-oL", "ovsdb-client", "monitor", remote, DB, "Interface"])
            .args(["name,ofport,external_ids", "--format=json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).unwrap());
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches
        // only the forked child's own state.
        unsafe {
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = c.spawn().expect("spawn ovsdb-client monitor");
        let out = child.stdout.take().unwrap();
        let rows = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(String::new()));
        let (r2, raw2) = (rows.clone(), raw.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                raw2.lock().unwrap().push_str(&line);
                raw2.lock().unwrap().push('\n');
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let heads: Vec<String> = v["headings"]
                    .as_array()
                    .map(|h| {
                        h.iter()
                            .map(|s| s.as_str().unwrap_or("").to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                for row in v["data"].as_array().into_iter().flatten() {
                    let m = heads
                        .iter()
                        .cloned()
                        .zip(row.as_array().into_iter().flatten().cloned())
                        .collect();
                    r2.lock().unwrap().push(m);
                }
            }
        });
        Monitor {
            child,
            rows,
            raw,
            err,
            _dir: dir,
        }
    }

    /// Waits (≤ `limit`) for a printed row matching `f`.
    fn wait_row(
        &self,
        limit: Duration,
        f: impl Fn(&BTreeMap<String, Value>) -> bool,
    ) -> Option<BTreeMap<String, Value>> {
        poll(limit, || {
            self.rows.lock().unwrap().iter().find(|r| f(r)).cloned()
        })
    }

    fn text(&self) -> String {
        format!(
            "{}\n(stderr: {})",
            self.raw.lock().unwrap(),
            std::fs::read_to_string(&self.err).unwrap_or_default()
        )
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A valid OpenFlow port number of a switch port (not -1, not LOCAL).
fn valid_ofport(v: &Value) -> bool {
    v.as_i64().is_some_and(|n| (1..=0xfeff).contains(&n))
}

// ---- 1: ovsdb-client ----------------------------------------------------------

fn ovsdb_client_checks(sw: &mut dyn Switch) {
    let remote = sw.remote();
    let br = sw.cli_add_br();

    // list-dbs: Open_vSwitch (ovsdb-server also has _Server; rvsd not).
    let dbs = ovsdb_client(&["list-dbs", &remote]);
    assert!(
        dbs.lines().any(|l| l == DB),
        "{}: list-dbs printed {dbs:?}",
        sw.what()
    );
    // get-schema-version: the installed schema's version.
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(SCHEMA).unwrap()).unwrap();
    let ver = ovsdb_client(&["get-schema-version", &remote, DB]);
    assert_eq!(
        ver.trim(),
        schema["version"].as_str().unwrap(),
        "{}",
        sw.what()
    );

    // monitor: a CLI-added port shows with a valid ofport, then its delete.
    // A first port, seen in the initial rows or as an insert, shows that
    // the monitor is registered; the second must then come as an update.
    let mon = Monitor::start(&remote);
    let first = sw.cli_add_port(&br);
    let seen = mon.wait_row(Duration::from_secs(10), |r| {
        r.get("name") == Some(&json!(first))
    });
    assert!(
        seen.is_some(),
        "{}: the monitor never showed {first}:\n{}\n{}",
        sw.what(),
        mon.text(),
        sw.logs()
    );
    let port = sw.cli_add_port(&br);
    let row = mon.wait_row(Duration::from_secs(10), |r| {
        r.get("name") == Some(&json!(port))
            && matches!(r["action"].as_str(), Some("insert" | "new"))
            && valid_ofport(&r["ofport"])
    });
    assert!(
        row.is_some(),
        "{}: the monitor never showed {port} with a valid ofport:\n{}\n{}",
        sw.what(),
        mon.text(),
        sw.logs()
    );
    let row = row.unwrap();
    eprintln!("{}: the monitor showed {row:?}", sw.what());
    sw.cli_del_port(&br, &port);
    let gone = mon.wait_row(Duration::from_secs(10), |r| {
        r.get("action") == Some(&json!("delete")) && r.get("name") == Some(&json!(port))
    });
    assert!(
        gone.is_some(),
        "{}: the monitor never showed {port}'s delete:\n{}",
        sw.what(),
        mon.text()
    );
    drop(mon);

    // dump, in ovsdb-client's table and JSON formats.
    let text = ovsdb_client(&["dump", &remote, DB, "Bridge", "name"]);
    assert!(
        text.starts_with("Bridge table") && text.lines().any(|l| l.trim_matches('"') == br),
        "{}: dump printed {text}",
        sw.what()
    );
    let v: Value = serde_json::from_str(&ovsdb_client(&[
        "dump",
        &remote,
        DB,
        "Bridge",
        "name",
        "--format=json",
    ]))
    .unwrap();
    assert_eq!(v["headings"], json!(["name"]), "{}: {v}", sw.what());
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == &json!([br])),
        "{}: dump --format=json printed {v}",
        sw.what()
    );

    // transact: a raw read...
    let sel = json!([DB, {"op": "select", "table": "Bridge",
                          "where": [["name", "==", br]], "columns": ["name"]}]);
    let v: Value =
        serde_json::from_str(&ovsdb_client(&["transact", &remote, &sel.to_string()])).unwrap();
    assert_eq!(v, json!([{"rows": [{"name": br}]}]), "{}", sw.what());
    // ... and a raw write: ovs-vsctl's add-br, which the CLI then shows.
    let br2 = uniq('r');
    let mut txn = vec![json!(DB)];
    txn.extend(add_br_ops(&br2, sw.datapath_type(), "1"));
    let v: Value = serde_json::from_str(&ovsdb_client(&[
        "transact",
        &remote,
        &Value::Array(txn).to_string(),
    ]))
    .unwrap();
    assert_eq!(
        shape(&v),
        ["uuid", "uuid", "uuid", "count"],
        "{}: {v}",
        sw.what()
    );
    let shown = poll(Duration::from_secs(10), || {
        sw.cli_view().contains_key(&br2).then_some(())
    });
    assert!(
        shown.is_some(),
        "{}: bridge {br2} added by ovsdb-client transact is not in the CLI: {:?}\n{}",
        sw.what(),
        sw.cli_view(),
        sw.logs()
    );
    assert!(sw.alive(), "{} died", sw.what());
}

#[test]
fn ovs_ovsdb_client_monitor_dump_transact() {
    if !require_root() || !have_ovs() {
        return;
    }
    ovsdb_client_checks(&mut OvsSwitch::start());
}

#[test]
fn rvs_ovsdb_client_monitor_dump_transact() {
    if !require_root() || !have_ovs() {
        return;
    }
    ovsdb_client_checks(&mut RvsSwitch::start());
}

// ---- 2: ovsdbapp ----------------------------------------------------------------

/// The venv's python with ovsdbapp installed, made on first use. A lock
/// file keeps two tests (or test processes) from building it at once.
fn ovsdbapp_python() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(dir).unwrap();
    let lock = std::fs::File::create(dir.join("ovsdbapp.lock")).unwrap();
    // SAFETY: flock() on a descriptor we own; released when it closes.
    unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    let py = |d: &Path| d.join("venv/bin/python");
    let ready = |d: &Path| {
        py(d).exists()
            && Command::new(py(d))
                .args(["-c", "import ovsdbapp.schema.open_vswitch.impl_idl"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    };
    let d = pip_venv("ovsdbapp", "ovsdbapp<4", ready, |_| true)?;
    drop(lock);
    Some(py(&d))
}

/// Runs `tests/ovsdbapp_client.py REMOTE ARGS…`; its JSON report.
fn ovsdbapp_run(py: &Path, sw: &dyn Switch, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ovsdbapp_client.py");
    let out = Command::new("timeout")
        .arg("50")
        .arg(py)
        .arg(script)
        .arg(sw.remote())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: ovsdbapp {args:?} failed ({}):\n{stdout}\n{}\n{}",
        sw.what(),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        sw.logs()
    );
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("ovsdbapp printed no JSON ({e}): {stdout}"))
}

fn ovsdbapp_checks(py: &Path, sw: &mut dyn Switch) {
    let br = uniq('r');
    let (port, _netdev) = sw.netdev();
    let r = ovsdbapp_run(py, sw, &["add", &br, &port, sw.datapath_type()]);
    eprintln!("{}: ovsdbapp add: {r}", sw.what());
    assert_eq!(r["br_exists"], json!(true), "{}: {r}", sw.what());
    assert!(
        valid_ofport(&r["ofport"]),
        "{}: Interface {port} got no valid ofport: {r}\n{}",
        sw.what(),
        sw.logs()
    );
    assert_eq!(
        r["external_ids"],
        r["expected_external_ids"],
        "{}",
        sw.what()
    );
    assert!(
        r["ports"].as_array().unwrap().contains(&json!(port)),
        "{}: list_ports: {r}",
        sw.what()
    );
    assert_eq!(r["iface_to_br"], json!(br), "{}: {r}", sw.what());
    let view = sw.cli_view();
    assert!(
        view.get(&br).is_some_and(|p| p.contains(&port)),
        "{}: the CLI does not list {br}/{port}: {view:?}",
        sw.what()
    );

    let r = ovsdbapp_run(py, sw, &["del", &br, &port]);
    eprintln!("{}: ovsdbapp del: {r}", sw.what());
    assert_eq!(r["ports_after_del_port"], json!([]), "{}: {r}", sw.what());
    assert_eq!(
        r["br_exists_after_del_br"],
        json!(false),
        "{}: {r}",
        sw.what()
    );
    let gone = poll(Duration::from_secs(10), || {
        (!sw.cli_view().contains_key(&br)).then_some(())
    });
    assert!(
        gone.is_some(),
        "{}: {br} still in the CLI after del_br: {:?}",
        sw.what(),
        sw.cli_view()
    );
    assert!(sw.alive(), "{} died", sw.what());
}

#[test]
fn ovs_ovsdbapp_add_port_the_os_vif_way() {
    if !require_root() || !have_ovs() {
        return;
    }
    let Some(py) = ovsdbapp_python() else { return };
    ovsdbapp_checks(&py, &mut OvsSwitch::start());
}

#[test]
fn rvs_ovsdbapp_add_port_the_os_vif_way() {
    if !require_root() || !have_ovs() {
        return;
    }
    let Some(py) = ovsdbapp_python() else { return };
    ovsdbapp_checks(&py, &mut RvsSwitch::start());
}

// ---- 3: bad input ----------------------------------------------------------------

/// The `error` strings real ovsdb-server (3.1) answers, checked against
/// the reference server before rvsd is compared with it.
const UNKNOWN_DATABASE: &str = "unknown database";
const UNKNOWN_METHOD: &str = "unknown method";

/// The rejected transactions: a name and the bad operations that follow
/// a valid add-br of `br` (named uuids `*0`), with the result shape real
/// ovsdb-server gives.
fn bad_cases(br: &str, dp: &str) -> Vec<(&'static str, Vec<Value>, Vec<&'static str>)> {
    let missing = "11111111-2222-3333-4444-555555555555";
    let br2 = format!("{br}x");
    let mut refint = add_br_ops(&br2, dp, "2");
    // Bridge 2's ports: a strong reference to a Port that does not exist.
    refint[2]["row"]["ports"] = json!(["set", [["uuid", missing]]]);
    let ok4 = ["uuid", "uuid", "uuid", "count"];
    let with = |tail: &[&'static str]| ok4.iter().chain(tail).copied().collect::<Vec<_>>();
    vec![
        (
            "unknown table",
            vec![json!({"op": "select", "table": "Nope", "where": []})],
            with(&["error:syntax error"]),
        ),
        (
            "unknown column in an insert's row",
            vec![json!({"op": "insert", "table": "Bridge", "row": {"name": br2, "nope": 1}})],
            with(&["error:unknown column"]),
        ),
        (
            "unknown column in a where clause",
            vec![json!({"op": "select", "table": "Bridge", "where": [["nope", "==", 1]]})],
            with(&["error:unknown column"]),
        ),
        (
            "unknown column in a select's columns",
            vec![json!({"op": "select", "table": "Bridge", "where": [], "columns": ["nope"]})],
            with(&["error:syntax error"]),
        ),
        (
            "unknown operation",
            vec![json!({"op": "nope", "table": "Bridge"})],
            with(&["error:syntax error"]),
        ),
        (
            "Port tag 5000 (constraint violation), then one more op",
            vec![
                json!({"op": "insert", "table": "Interface", "uuid-name": "ix",
                       "row": {"name": br2}}),
                json!({"op": "insert", "table": "Port",
                       "row": {"name": br2, "interfaces": ["named-uuid", "ix"], "tag": 5000}}),
                json!({"op": "comment", "comment": "never reached"}),
            ],
            with(&["uuid", "error:constraint violation", "null"]),
        ),
        (
            "strong reference to a missing row",
            refint,
            with(&[
                "uuid",
                "uuid",
                "uuid",
                "count",
                "error:referential integrity violation",
            ]),
        ),
        (
            "wait that does not hold (timeout 0)",
            vec![json!({"op": "wait", "table": "Bridge", "timeout": 0,
                        "where": [["name", "==", br]], "columns": ["name"],
                        "until": "==", "rows": []})],
            with(&["error:timed out"]),
        ),
        (
            "abort",
            vec![json!({"op": "abort"})],
            with(&["error:aborted"]),
        ),
    ]
}

/// Sends `ops` in a transaction to both servers; asserts rvsd's result
/// has the reference's shape (so the same `error` strings in the same
/// places) and `want`; returns the switch's result.
fn same_answer(sw: &mut Rpc, rf: &mut Rpc, what: &str, ops: &[Value], want: &[&str]) -> Value {
    let ops = Value::Array(ops.to_vec());
    let r = rf
        .transact(ops.clone())
        .unwrap_or_else(|e| panic!("{what}: reference error {e}"));
    assert_eq!(shape(&r), want, "{what}: reference ovsdb-server: {r}");
    let s = sw
        .transact(ops)
        .unwrap_or_else(|e| panic!("{what}: JSON-RPC error {e} (ovsdb-server: {r})"));
    assert_eq!(
        shape(&s),
        shape(&r),
        "{what}: switch answered {s}\novsdb-server answered {r}"
    );
    s
}

fn bad_input_checks(sw: &mut dyn Switch) {
    let refdb = RefDb::start();
    let mut rf = Rpc::open(&refdb.sock());
    let sock = sw.sock();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o7777;
    sw.check_socket_mode(mode);
    let before = sw.cli_view();

    // Malformed JSON, invalid UTF-8, and JSON that is no JSON-RPC message
    // close the connection (ovsdb-server answers none of them); the
    // server stays up.
    let bad: [&[u8]; 5] = [
        b"{\"method\":\"echo\",,,",
        b"]",
        b"\"\xff\xfe\"",
        b"[1,2]",
        br#"{"method":"transact","params":"x","id":6}"#,
    ];
    for bad in bad {
        let shown = String::from_utf8_lossy(bad);
        let mut rc = Rpc::open(&refdb.sock());
        rc.send_raw(bad);
        let rend = rc.next(Duration::from_secs(5));
        assert_eq!(rend, Err(RpcEnd::Closed), "reference on {shown}");
        let mut c = Rpc::open(&sock);
        c.send_raw(bad);
        let end = c.next(Duration::from_secs(5));
        assert_eq!(
            end,
            Err(RpcEnd::Closed),
            "{}: after {shown} the connection gave",
            sw.what()
        );
        assert!(sw.alive(), "{} died on {shown}:\n{}", sw.what(), sw.logs());
    }

    let mut c = Rpc::open(&sock);
    // echo returns its params.
    let params = json!(["a", 1, {"x": [], "y": null}]);
    let r = c.request("echo", params.clone()).unwrap();
    assert_eq!(r["result"], params, "{}: echo: {r}", sw.what());
    assert!(r["error"].is_null(), "{}: echo: {r}", sw.what());
    // Two requests in one write, string and number ids: both answered.
    c.send_raw(
        br#"{"method":"echo","params":[1],"id":"one"}{"method":"echo","params":[2],"id":2}"#,
    );
    let a = c.reply_to(&json!("one")).unwrap();
    let b = c.reply_to(&json!(2)).unwrap();
    assert_eq!((&a["result"], &b["result"]), (&json!([1]), &json!([2])));
    // list_dbs has Open_vSwitch.
    let dbs = c.call("list_dbs", json!([])).unwrap();
    assert!(
        dbs.as_array().unwrap().contains(&json!(DB)),
        "{}: {dbs}",
        sw.what()
    );
    // An unknown method: the same JSON-RPC error.
    let want = rf.call("nope", json!([])).unwrap_err();
    assert_eq!(want, json!(UNKNOWN_METHOD));
    let got = c.call("nope", json!([])).unwrap_err();
    assert_eq!(got, want, "{}: unknown method", sw.what());

    // Requests on an unknown database, and a transact without one: the
    // same JSON-RPC errors. (The IDLs ask for `_Server` first and fall
    // back on such an error.)
    for (method, params) in [
        ("get_schema", json!(["Nope"])),
        ("monitor", json!(["Nope", null, {"Bridge": {}}])),
        ("monitor_cond", json!(["Nope", null, {"Bridge": {}}])),
        (
            "monitor_cond_since",
            json!(["Nope", null, {"Bridge": {}}, null]),
        ),
        ("transact", json!([])),
    ] {
        let want = rf.call(method, params.clone()).unwrap_err();
        let got = c.call(method, params.clone()).unwrap_err();
        assert_eq!(
            got["error"],
            want["error"],
            "{}: {method} {params}: {got}, ovsdb-server: {want}",
            sw.what()
        );
    }

    let br = uniq('r');
    let dp = sw.datapath_type();
    // An unknown database: a JSON-RPC error, nothing applied.
    let mut p = vec![json!("Nope")];
    p.extend(add_br_ops(&br, dp, "0"));
    let want = rf.call("transact", Value::Array(p.clone())).unwrap_err();
    assert_eq!(want["error"], json!(UNKNOWN_DATABASE), "reference: {want}");
    let got = c.call("transact", Value::Array(p)).unwrap_err();
    assert_eq!(got["error"], want["error"], "{}: {got}", sw.what());

    // Each rejected transaction: the reference's error in the same place,
    // and neither its valid add-br nor anything else is applied.
    for (what, bad, want) in bad_cases(&br, dp) {
        let mut ops = add_br_ops(&br, dp, "0");
        ops.extend(bad);
        let what = format!("{}: {what}", sw.what());
        let s = same_answer(&mut c, &mut rf, &what, &ops, &want);
        eprintln!("{what}: {}", s.as_array().unwrap().last().unwrap());
        for b in [br.clone(), format!("{br}x")] {
            assert_eq!(
                bridge_rows(&mut c, &b),
                Vec::<Value>::new(),
                "{what}: {b} is in the db"
            );
            assert_eq!(
                bridge_rows(&mut rf, &b),
                Vec::<Value>::new(),
                "reference: {what}"
            );
        }
        assert_eq!(sw.cli_view(), before, "{what}: the CLI shows a change");
    }
    assert!(sw.alive(), "{} died:\n{}", sw.what(), sw.logs());

    // The control: the same add-br alone commits, the CLI shows it, and
    // deleting it through the db removes it again. (So the checks above
    // would have seen the bridge.)
    let ops = add_br_ops(&br, dp, "0");
    same_answer(
        &mut c,
        &mut rf,
        sw.what(),
        &ops,
        &["uuid", "uuid", "uuid", "count"],
    );
    assert_eq!(bridge_rows(&mut c, &br), vec![json!({"name": br})]);
    let shown = poll(Duration::from_secs(10), || {
        sw.cli_view().contains_key(&br).then_some(())
    });
    assert!(
        shown.is_some(),
        "{}: committed bridge {br} not in the CLI: {:?}",
        sw.what(),
        sw.cli_view()
    );
    let del = json!([{"op": "select", "table": "Bridge", "where": [["name", "==", br]],
                      "columns": ["_uuid"]}]);
    let u = c.transact(del).unwrap()[0]["rows"][0]["_uuid"].clone();
    let r = c
        .transact(
            json!([{"op": "mutate", "table": "Open_vSwitch", "where": [],
                          "mutations": [["bridges", "delete", u]]}]),
        )
        .unwrap();
    assert_eq!(r, json!([{"count": 1}]), "{}", sw.what());
    let gone = poll(Duration::from_secs(10), || {
        (sw.cli_view() == before).then_some(())
    });
    assert!(
        gone.is_some(),
        "{}: after deleting {br}: {:?}, before: {before:?}",
        sw.what(),
        sw.cli_view()
    );
    assert!(bridge_rows(&mut c, &br).is_empty(), "{}", sw.what());
    assert!(sw.alive(), "{} died:\n{}", sw.what(), sw.logs());
}

#[test]
fn ovs_bad_input() {
    if !require_root() || !have_ovs() {
        return;
    }
    bad_input_checks(&mut OvsSwitch::start());
}

#[test]
fn rvs_bad_input() {
    if !require_root() || !have_ovs() {
        return;
    }
    bad_input_checks(&mut RvsSwitch::start());
}
