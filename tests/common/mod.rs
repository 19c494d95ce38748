//! Shared harness of the `netns_*` integration tests.
//!
//! # What?
//! Guards that start a private `rvsd`, create network namespaces, veth
//! pairs and hosts, and remove all of it again on drop — also when the test
//! panics. Helpers to ping, to read kernel and rvs counters, and a raw
//! `AF_PACKET` endpoint ([`RawSock`]) that plays a host which speaks
//! 802.1Q itself (this kernel has no VLAN sub-interfaces).
//!
//! # Design
//! - Every kernel object carries the prefix `rvt<pid hex><tag letter>`
//!   followed by a counter ([`uniq`]), at most 15 bytes, so tests running
//!   in parallel threads and processes never collide. The tag letter is
//!   never a hex digit, so the PID can be read back: the first [`Rvsd`] of
//!   a process sweeps namespaces and links left behind by dead test
//!   processes (killed by a timeout before their guards ran).
//! - IPv6 is disabled in every namespace and on every root-namespace device
//!   the tests create, so after a ping the only frames that crossed a port
//!   are ARP and ICMP: counters can be compared exactly.
//! - `rvsctl` is not a binary of this package, so `CARGO_BIN_EXE_rvsctl`
//!   does not exist; it is taken from the same target directory as `rvsd`.
//!   Run `cargo build --workspace --bins` before `cargo test`.
//!
//! # Limits
//! Every wait is bounded: pings use `-c` and `-W`, polls give up after a
//! few seconds, a daemon that ignores SIGTERM for 5 s is killed.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Once};
use std::time::{Duration, Instant};

use rvs_ctl::proto::{FdbEntry, FlowInfo, PortInfo, PortStats};

pub mod ovs;
use serde_json::Value;

// ---- root and names ------------------------------------------------------

/// True when running as root. Otherwise: panics when `CI=true` (CI must
/// never skip these tests), else prints why the test is skipped and
/// returns false.
pub fn require_root() -> bool {
    // SAFETY: geteuid() has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("integration tests need root in CI (network namespaces, TAP and veth devices)");
    }
    eprintln!("skipping: this test needs root to create network namespaces, TAP and veth devices");
    false
}

static COUNTER: AtomicU32 = AtomicU32::new(0);
const PREFIX: &str = "rvt";

/// A name unique to this process: `rvt<pid hex><tag><n>`, ≤ 15 bytes.
/// `tag` must be one lower-case letter that is not a hex digit.
pub fn uniq(tag: char) -> String {
    assert!(
        tag.is_ascii_lowercase() && !tag.is_ascii_hexdigit(),
        "bad tag {tag}"
    );
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{PREFIX}{:x}{tag}{n}", std::process::id());
    assert!(name.len() <= 15, "name {name} is longer than 15 bytes");
    name
}

/// The PID encoded in a name made by [`uniq`], if it is one.
fn pid_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let hex: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    let tag = rest[hex.len()..].chars().next()?;
    if hex.is_empty() || !tag.is_ascii_lowercase() {
        return None;
    }
    u32::from_str_radix(&hex, 16).ok()
}

/// Deletes namespaces and root links of test processes that no longer run.
fn sweep_stale() {
    let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if pid_of(name).is_some_and(|p| !alive(p)) {
                eprintln!("removing stale namespace {name}");
                let _ = quiet(&["ip", "netns", "del", name]);
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir("/sys/class/net") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if pid_of(&name).is_some_and(|p| !alive(p)) {
                eprintln!("removing stale link {name}");
                let _ = quiet(&["ip", "link", "del", &name]);
            }
        }
    }
}

// ---- commands ------------------------------------------------------------

/// Runs a command and returns its output (never panics on failure status).
pub fn quiet(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Runs a command, panicking with its output when it fails; returns stdout.
pub fn run(args: &[&str]) -> String {
    let out = quiet(args);
    assert!(
        out.status.success(),
        "{args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `limit`.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---- the daemon ----------------------------------------------------------

/// A private directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates a fresh directory.
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(uniq('y'));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

static SWEEP: Once = Once::new();

/// A running `rvsd` with a private socket and state directory and no
/// bridges. SIGTERM on drop (SIGKILL after 5 s); prints the daemon log if
/// the test panicked; fails the test if the daemon died on its own or did
/// not stop cleanly.
///
/// It can be stopped ([`Rvsd::stop`], [`Rvsd::kill9`]) and started again
/// on the same state directory and socket ([`Rvsd::restart`]); the log
/// file collects the output of every run.
#[derive(Debug)]
pub struct Rvsd {
    child: Option<Child>,
    dir: TempDir,
    /// Control socket.
    pub socket: PathBuf,
    log: PathBuf,
    ctl_bin: PathBuf,
    /// Extra arguments given to every run.
    args: Vec<String>,
    /// Extra environment variables of every run.
    env: Vec<(String, String)>,
    /// Network namespace every run is started in (`ip netns exec`), if
    /// not the root namespace.
    netns: Option<String>,
}

/// Path of `rvsctl` in the target directory of `rvsd`.
pub fn rvsctl_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_rvsd")).with_file_name("rvsctl");
    assert!(
        p.exists(),
        "{} not found: run `cargo build --workspace --bins` before `cargo test`",
        p.display()
    );
    p
}

/// Sends `sig` to our own child `c` (not reaped yet).
fn signal_child(c: &Child, sig: libc::c_int) {
    // SAFETY: kill() on the PID of our own child, which has not been
    // reaped yet (callers hold the un-waited `Child`), so the PID cannot
    // have been reused.
    unsafe { libc::kill(c.id() as libc::pid_t, sig) };
}

/// Waits up to `limit` for `c` to exit.
fn wait_child(c: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        match c.try_wait() {
            Ok(Some(st)) => return Some(st),
            _ if Instant::now() >= end => return None,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

impl Rvsd {
    /// Starts a daemon with an empty configuration and waits (≤ 10 s) until
    /// it answers on its socket.
    pub fn start() -> Rvsd {
        Rvsd::start_with(&[])
    }

    /// Like [`Rvsd::start`], with extra rvsd arguments (kept for restarts).
    pub fn start_with(args: &[&str]) -> Rvsd {
        let mut d = Rvsd::spawn_with_env(args, &[]);
        d.wait_ready();
        d
    }

    /// Like [`Rvsd::start`], but the daemon runs inside `ns` (`ip netns
    /// exec NS rvsd …`, which execs, so [`Rvsd::pid`] is rvsd's own), now
    /// and on every restart: its TAPs, bridges' LOCAL ports and tunnel
    /// sockets live there, and `system` ports name netdevs there. Its
    /// socket and state directory are private files as usual, so `rvsctl`
    /// reaches it from the root namespace. `ns` must outlive the daemon.
    pub fn start_in(ns: &Netns) -> Rvsd {
        Rvsd::start_in_with(ns, |_| Vec::new())
    }

    /// Like [`Rvsd::start_in`], with extra rvsd arguments (kept for
    /// restarts) computed from the daemon's private directory, e.g.
    /// `--ovsdb-remote punix:DIR/db.sock`.
    pub fn start_in_with(ns: &Netns, args: impl FnOnce(&Path) -> Vec<String>) -> Rvsd {
        SWEEP.call_once(sweep_stale);
        let mut d = Rvsd::new_stopped(&[], &[]);
        d.args = args(d.dir());
        d.netns = Some(ns.name.clone());
        d.launch();
        d
    }

    /// Spawns a daemon with extra arguments and environment variables
    /// (kept for restarts) and returns at once, without waiting for its
    /// socket: the caller watches the start, then calls
    /// [`Rvsd::wait_ready`].
    pub fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Rvsd {
        SWEEP.call_once(sweep_stale);
        let mut d = Rvsd::new_stopped(args, env);
        d.spawn();
        d
    }

    /// The guard of a daemon that is not running yet: a fresh private
    /// directory with the socket path, log and empty config.
    fn new_stopped(args: &[&str], env: &[(&str, &str)]) -> Rvsd {
        let dir = TempDir::new();
        let socket = dir.0.join("rvsd.sock");
        let log = dir.0.join("rvsd.log");
        let config = dir.0.join("empty.toml");
        std::fs::write(&config, "# no bridges: tests create their own\n").expect("config");
        Rvsd {
            child: None,
            dir,
            socket,
            log,
            ctl_bin: rvsctl_bin(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            netns: None,
        }
    }

    /// The rvsd command line of this daemon (without spawning it).
    pub fn command(&self) -> Command {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns])
                    .arg(env!("CARGO_BIN_EXE_rvsd"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_rvsd")),
        };
        c.arg("--socket")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--config")
            .arg(self.dir.0.join("empty.toml"))
            .arg("--log-level")
            .arg("debug")
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        c
    }

    /// Spawns the daemon and waits (≤ 10 s) until it answers.
    fn launch(&mut self) {
        self.spawn();
        self.wait_ready();
    }

    /// Spawns the daemon (output to the log file).
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "rvsd is already running");
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = self
            .command()
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf)
            .spawn()
            .expect("spawn rvsd");
        self.child = Some(child);
    }

    /// Waits (≤ 10 s) until the daemon answers on its socket; panics with
    /// its log if it exits or does not answer.
    pub fn wait_ready(&mut self) {
        let ready = poll(Duration::from_secs(10), || {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    panic!("rvsd exited at start ({st}):\n{}", self.log_text());
                }
            }
            (self.socket.exists() && self.ctl(&["list-br"]).status.success()).then_some(())
        });
        if ready.is_none() {
            panic!("rvsd did not answer within 10 s:\n{}", self.log_text());
        }
    }

    /// Stops the daemon with SIGTERM; panics unless it exits with status 0
    /// within 5 s.
    pub fn stop(&mut self) {
        let mut c = self.child.take().expect("rvsd is not running");
        signal_child(&c, libc::SIGTERM);
        match wait_child(&mut c, STOP_TIMEOUT) {
            Some(st) if st.success() => {}
            Some(st) => panic!("rvsd exited with {st} after SIGTERM:\n{}", self.log_text()),
            None => {
                let _ = c.kill();
                let _ = c.wait();
                panic!("rvsd did not stop within {STOP_TIMEOUT:?} of SIGTERM");
            }
        }
    }

    /// Kills the daemon with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("rvsd is not running");
        signal_child(&c, libc::SIGKILL);
        let _ = c.wait();
    }

    /// Starts the daemon again on the same state directory and socket
    /// (after [`Rvsd::stop`] or [`Rvsd::kill9`]).
    pub fn restart(&mut self) {
        self.launch();
    }

    /// Waits (≤ `limit`) for the daemon to exit by itself and reaps it:
    /// its exit status, or `None` (and it keeps running) at the deadline.
    /// It can be started again with [`Rvsd::restart`].
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut().expect("rvsd is not running");
        let st = wait_child(c, limit)?;
        self.child = None;
        Some(st)
    }

    /// Whether the daemon process is still running.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The private directory (socket, log, state dir live in it).
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.0.join("state")
    }

    /// The state file.
    pub fn state_file(&self) -> PathBuf {
        self.state_dir().join("state.toml")
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// PID of the daemon.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Runs rvsd once more on this state directory while it is stopped,
    /// expecting it to exit by itself within `limit` (e.g. refusing to
    /// start); returns (exit status, stderr). Panics (after killing it) if
    /// it is still running at the deadline.
    pub fn run_once(&self, limit: Duration) -> (std::process::ExitStatus, String) {
        assert!(self.child.is_none(), "rvsd is running");
        let mut c = self
            .command()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rvsd");
        let mut err = c.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let st = wait_child(&mut c, limit);
        if st.is_none() {
            signal_child(&c, libc::SIGKILL);
            let _ = c.wait();
        }
        let text = reader.join().unwrap_or_default();
        match st {
            Some(st) => (st, text),
            None => panic!("rvsd still running after {limit:?}: {text}"),
        }
    }

    /// A raw control connection (JSON lines) to the daemon.
    pub fn conn(&self) -> Conn {
        Conn::open(&self.socket)
    }

    /// Runs `rvsctl --socket S ARGS…`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(&self.ctl_bin)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--timeout")
            .arg("10")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run rvsctl")
    }

    /// Runs `rvsctl --timeout 120 ARGS…` (for large requests and replies,
    /// slow in debug builds), reporting how long it took.
    pub fn ctl_slow(&self, args: &[&str]) -> Output {
        let t = Instant::now();
        let out = Command::new(&self.ctl_bin)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--timeout")
            .arg("120")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run rvsctl");
        eprintln!("rvsctl {args:?}: {:.1?}", t.elapsed());
        out
    }

    /// [`Rvsd::ctl_slow`], asserting success; returns stdout.
    pub fn ok_slow(&self, args: &[&str]) -> String {
        let out = self.ctl_slow(args);
        assert!(
            out.status.success(),
            "rvsctl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// (VmRSS, VmHWM) of the daemon, in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let get = |k: &str| {
            s.lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (get("VmRSS:"), get("VmHWM:"))
    }

    /// Runs rvsctl and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "rvsctl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs rvsctl, asserts it fails, returns (exit code, stderr).
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.ctl(args);
        assert!(
            !out.status.success(),
            "rvsctl {args:?} should have failed but printed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `rvsctl --format json ARGS…` and parses the document.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut v = vec!["--format", "json"];
        v.extend_from_slice(args);
        let s = self.ok(&v);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("rvsctl {args:?}: bad JSON ({e}): {s}"))
    }

    /// Creates a bridge with a unique name (IPv6 off on its LOCAL tap, so
    /// the root namespace sends nothing into it).
    pub fn add_br(&self) -> String {
        let br = uniq('r');
        self.ok(&["add-br", &br]);
        disable_ipv6_root(&br);
        br
    }

    /// `dump-ports BR --format json`, all ports.
    pub fn ports(&self, br: &str) -> Vec<PortStats> {
        let v = self.json(&["dump-ports", br]);
        serde_json::from_value(v["ports"].clone()).expect("ports")
    }

    /// Counters of one port.
    pub fn port_stats(&self, br: &str, port: &str) -> PortStats {
        let v = self.json(&["dump-ports", br, port]);
        let mut p: Vec<PortStats> = serde_json::from_value(v["ports"].clone()).expect("ports");
        assert_eq!(p.len(), 1, "dump-ports {br} {port}: {v}");
        p.remove(0)
    }

    /// `fdb-show BR --format json`.
    pub fn fdb(&self, br: &str) -> Vec<FdbEntry> {
        let v = self.json(&["fdb-show", br]);
        serde_json::from_value(v["fdb"].clone()).expect("fdb")
    }

    /// `dump-flows BR --format json`.
    pub fn flows(&self, br: &str) -> Vec<FlowInfo> {
        let v = self.json(&["dump-flows", br]);
        serde_json::from_value(v["flows"].clone()).expect("flows")
    }

    /// The flow whose `--no-stats` text is `text`.
    pub fn flow(&self, br: &str, text: &str) -> FlowInfo {
        let flows = self.flows(br);
        flows
            .iter()
            .find(|f| f.flow == text)
            .cloned()
            .unwrap_or_else(|| panic!("no flow {text:?} in {flows:#?}"))
    }

    /// A port as `show --format json` reports it.
    pub fn show_port(&self, br: &str, port: &str) -> PortInfo {
        let v = self.json(&["show"]);
        let bridges = v["bridges"].as_array().expect("bridges");
        let b = bridges
            .iter()
            .find(|b| b["name"] == br)
            .unwrap_or_else(|| panic!("no bridge {br} in {v}"));
        let p = b["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["name"] == port)
            .unwrap_or_else(|| panic!("no port {port} in {b}"));
        serde_json::from_value(p.clone()).expect("port info")
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        let mut problem = None;
        if let Some(mut c) = self.child.take() {
            match c.try_wait() {
                Ok(Some(st)) => problem = Some(format!("rvsd died during the test ({st})")),
                _ => {
                    signal_child(&c, libc::SIGTERM);
                    match wait_child(&mut c, STOP_TIMEOUT) {
                        Some(st) if st.success() => {}
                        Some(st) => problem = Some(format!("rvsd exited with {st} after SIGTERM")),
                        None => {
                            let _ = c.kill();
                            let _ = c.wait();
                            problem = Some(format!(
                                "rvsd did not stop within {STOP_TIMEOUT:?} of SIGTERM"
                            ));
                        }
                    }
                }
            }
        }
        if panicking || problem.is_some() {
            eprintln!(
                "----- rvsd log ({}) -----\n{}----- end of rvsd log -----",
                self.socket.display(),
                self.log_text()
            );
        }
        if let Some(p) = problem {
            if !panicking {
                panic!("{p}");
            }
        }
    }
}

/// Flow `i` of a generated table: about 280 bytes, distinct for every
/// `i` (its cookie is `i`), spread over tables 0-3.
pub fn gen_flow(i: usize) -> String {
    let (a, b, c) = ((i >> 16) & 255, (i >> 8) & 255, i & 255);
    format!(
        "table={},priority={},cookie={i:#x},tcp,in_port={},dl_src=02:00:00:{a:02x}:{b:02x}:{c:02x},\
         dl_dst=02:00:01:{a:02x}:{b:02x}:{c:02x},nw_src=10.{a}.{b}.{c},nw_dst=192.168.{b}.{c},\
         tp_dst={},actions=mod_nw_tos:4,mod_dl_src:02:aa:bb:cc:dd:ee,mod_dl_dst:02:11:22:33:44:55,\
         mod_vlan_vid:{},output:1,output:2,output:3\n",
        i % 4,
        100 + i % 1000,
        1 + i % 3,
        1 + i % 60000,
        1 + i % 4000
    )
}

/// Flows `0..n` of [`gen_flow`], as a flow file.
pub fn gen_flows(n: usize) -> String {
    (0..n).map(gen_flow).collect()
}

// ---- namespaces and links ------------------------------------------------

/// Writes 1 to `/proc/sys/net/ipv6/conf/DEV/disable_ipv6` in the root
/// namespace (only for devices the tests created).
pub fn disable_ipv6_root(dev: &str) {
    assert!(dev.starts_with(PREFIX), "{dev} is not ours");
    let p = format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6");
    if Path::new(&p).exists() {
        std::fs::write(&p, "1").unwrap_or_else(|e| panic!("{p}: {e}"));
    }
}

/// A network namespace, deleted on drop (its virtual devices go with it).
#[derive(Debug)]
pub struct Netns {
    /// Its name.
    pub name: String,
}

impl Netns {
    /// Creates a namespace with `lo` up and IPv6 disabled.
    pub fn new() -> Netns {
        let ns = Netns { name: uniq('n') };
        run(&["ip", "netns", "add", &ns.name]);
        ns.exec(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace; panics on failure.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Runs a command inside the namespace and returns its output.
    pub fn exec_quiet(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        quiet(&v)
    }

    /// Moves root-namespace device `dev` in here.
    pub fn take(&self, dev: &str) {
        run(&["ip", "link", "set", dev, "netns", &self.name]);
    }

    /// Adds an address (`10.0.0.1/24`) to `dev`, brings it up, waits until
    /// its carrier is up.
    pub fn configure(&self, dev: &str, cidr: Option<&str>) {
        self.exec(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
        ]);
        if let Some(c) = cidr {
            run(&["ip", "-n", &self.name, "addr", "add", c, "dev", dev]);
        }
        run(&["ip", "-n", &self.name, "link", "set", dev, "up"]);
        wait_link_up(Some(self), dev);
    }

    /// The MAC address of `dev`.
    pub fn mac(&self, dev: &str) -> String {
        link_json(Some(self), dev)["address"]
            .as_str()
            .expect("address")
            .to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = quiet(&["ip", "netns", "del", &self.name]);
        if !out.status.success() {
            eprintln!(
                "warning: ip netns del {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// `ip [-n NS] -s -j link show dev DEV`, the single object.
pub fn link_json(ns: Option<&Netns>, dev: &str) -> Value {
    let mut v = vec!["ip"];
    if let Some(ns) = ns {
        v.extend_from_slice(&["-n", &ns.name]);
    }
    v.extend_from_slice(&["-s", "-j", "link", "show", "dev", dev]);
    let s = run(&v);
    let j: Value = serde_json::from_str(&s).expect("ip -j");
    j[0].clone()
}

/// Waits (≤ 5 s) until `dev` is administratively up with a carrier.
pub fn wait_link_up(ns: Option<&Netns>, dev: &str) {
    let up = poll(Duration::from_secs(5), || {
        let j = link_json(ns, dev);
        let flags: Vec<&str> = j["flags"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        (flags.contains(&"UP") && flags.contains(&"LOWER_UP")).then_some(())
    });
    assert!(
        up.is_some(),
        "{dev} did not come up: {}",
        link_json(ns, dev)
    );
}

/// Kernel counters of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames received by the device.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted by the device.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
}

/// The kernel counters of `dev`.
pub fn link_stats(ns: Option<&Netns>, dev: &str) -> LinkStats {
    let j = link_json(ns, dev);
    let s = &j["stats64"];
    let n = |d: &str, k: &str| {
        s[d][k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {d}.{k} in {j}"))
    };
    LinkStats {
        rx_packets: n("rx", "packets"),
        rx_bytes: n("rx", "bytes"),
        tx_packets: n("tx", "packets"),
        tx_bytes: n("tx", "bytes"),
    }
}

/// A veth pair: `root` stays in the root namespace, `peer` is created in
/// a namespace. Deleted on drop (deleting either end deletes both).
#[derive(Debug)]
pub struct Veth {
    /// The root-namespace end (the rvs system port).
    pub root: String,
    /// The end inside the namespace.
    pub peer: String,
}

impl Veth {
    /// Creates the pair with `peer` in `ns`; the root end is up with IPv6
    /// off.
    pub fn new(ns: &Netns) -> Veth {
        let root = uniq('v');
        let peer = uniq('w');
        run(&[
            "ip", "link", "add", &root, "type", "veth", "peer", "name", &peer, "netns", &ns.name,
        ]);
        let v = Veth { root, peer };
        disable_ipv6_root(&v.root);
        run(&["ip", "link", "set", &v.root, "up"]);
        v
    }
}

impl Veth {
    /// Creates the pair again with the same names (after it was deleted).
    pub fn recreate(&self, ns: &Netns) {
        run(&[
            "ip", "link", "add", &self.root, "type", "veth", "peer", "name", &self.peer, "netns",
            &ns.name,
        ]);
        disable_ipv6_root(&self.root);
        run(&["ip", "link", "set", &self.root, "up"]);
    }

    /// Deletes the pair (both ends).
    pub fn delete(&self) {
        run(&["ip", "link", "del", &self.root]);
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        if Path::new(&format!("/sys/class/net/{}", self.root)).exists() {
            let _ = quiet(&["ip", "link", "del", &self.root]);
        }
    }
}

/// A host: a namespace with one interface attached to an rvs port.
/// Drop order: namespace first, then the veth (if any).
#[derive(Debug)]
pub struct Host {
    /// Its namespace.
    pub ns: Netns,
    /// Interface name inside the namespace.
    pub dev: String,
    /// rvs port name (the TAP itself, or the root end of the veth).
    pub port: String,
    /// IPv4 address without prefix, if configured.
    pub ip: Option<String>,
    /// MAC address of `dev`.
    pub mac: String,
    /// The veth pair, for system ports.
    pub veth: Option<Veth>,
}

impl Host {
    /// Address, panicking when the host has none.
    pub fn ip(&self) -> &str {
        self.ip.as_deref().expect("host has an address")
    }

    /// Ping from this host (see [`ping`]).
    pub fn ping(&self, dst: &str, count: u32) -> PingResult {
        ping(&self.ns, dst, count)
    }

    /// Asserts that this host reaches `dst` (≥ 1 of 3 replies; the first
    /// may wait for ARP).
    pub fn assert_ping(&self, dst: &str) {
        let r = ping(&self.ns, dst, 3);
        assert!(
            r.received >= 1,
            "{} ({:?}) cannot ping {dst}: {}",
            self.dev,
            self.ip,
            r.output
        );
    }

    /// Asserts that this host does not reach `dst` (0 of 2 replies).
    pub fn assert_no_ping(&self, dst: &str) {
        let r = ping(&self.ns, dst, 2);
        assert_eq!(
            r.received, 0,
            "{} ({:?}) can ping {dst} but should not: {}",
            self.dev, self.ip, r.output
        );
    }

    /// A raw endpoint on this host's interface.
    pub fn raw(&self) -> RawSock {
        RawSock::open(&self.ns, &self.dev)
    }

    /// Kernel counters of the host's interface.
    pub fn stats(&self) -> LinkStats {
        link_stats(Some(&self.ns), &self.dev)
    }
}

impl Host {
    /// For a host on a switch-owned TAP after rvsd re-created it (restart):
    /// moves the new TAP into the host's namespace again, gives it the
    /// host's old MAC and addresses it with `cidr`.
    pub fn retake_tap(&self, cidr: Option<&str>) {
        assert!(self.veth.is_none(), "{} is not a TAP host", self.dev);
        wait_exists(None, &self.dev);
        disable_ipv6_root(&self.dev);
        self.ns.take(&self.dev);
        run(&[
            "ip",
            "-n",
            &self.ns.name,
            "link",
            "set",
            &self.dev,
            "address",
            &self.mac,
        ]);
        self.ns.configure(&self.dev, cidr);
    }
}

/// Waits (≤ 5 s) until `dev` exists.
pub fn wait_exists(ns: Option<&Netns>, dev: &str) {
    let found = poll(Duration::from_secs(5), || {
        let mut v = vec!["ip"];
        if let Some(ns) = ns {
            v.extend_from_slice(&["-n", &ns.name]);
        }
        v.extend_from_slice(&["link", "show", "dev", dev]);
        quiet(&v).status.success().then_some(())
    });
    assert!(found.is_some(), "{dev} did not appear");
}

/// Whether a root-namespace netdev named `dev` exists.
pub fn netdev_exists(dev: &str) -> bool {
    Path::new(&format!("/sys/class/net/{dev}")).exists()
}

fn strip_prefix_len(cidr: &str) -> String {
    cidr.split('/').next().unwrap_or(cidr).to_string()
}

/// A host on a switch-owned TAP: `add-port BR tap SETTINGS…`, TAP moved
/// into a new namespace, addressed with `cidr` (if any), up.
pub fn tap_host(d: &Rvsd, br: &str, settings: &[&str], cidr: Option<&str>) -> Host {
    let tap = uniq('t');
    let mut args = vec!["add-port", br, &tap];
    args.extend_from_slice(settings);
    d.ok(&args);
    let ns = Netns::new();
    ns.take(&tap);
    ns.configure(&tap, cidr);
    let mac = ns.mac(&tap);
    Host {
        ns,
        dev: tap.clone(),
        port: tap,
        ip: cidr.map(strip_prefix_len),
        mac,
        veth: None,
    }
}

/// A host on a veth pair whose root end is attached as a `system` port
/// (no `type=`: an existing netdev is attached as system).
pub fn veth_host(d: &Rvsd, br: &str, settings: &[&str], cidr: Option<&str>) -> Host {
    let ns = Netns::new();
    let veth = Veth::new(&ns);
    let mut args = vec!["add-port", br, &veth.root];
    args.extend_from_slice(settings);
    d.ok(&args);
    ns.configure(&veth.peer, cidr);
    wait_link_up(None, &veth.root);
    let mac = ns.mac(&veth.peer);
    Host {
        dev: veth.peer.clone(),
        port: veth.root.clone(),
        ip: cidr.map(strip_prefix_len),
        mac,
        ns,
        veth: Some(veth),
    }
}

// ---- ping ----------------------------------------------------------------

/// What a ping run reported.
#[derive(Debug, Clone)]
pub struct PingResult {
    /// Echo requests sent.
    pub sent: u32,
    /// Replies received.
    pub received: u32,
    /// Full output.
    pub output: String,
}

/// `ip netns exec NS ping -c COUNT -i 0.2 -W 1 DST`.
pub fn ping(ns: &Netns, dst: &str, count: u32) -> PingResult {
    let c = count.to_string();
    let out = ns.exec_quiet(&["ping", "-n", "-c", &c, "-i", "0.2", "-W", "1", dst]);
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut sent, mut received) = (0, 0);
    for line in output.lines() {
        if let Some((a, rest)) = line.split_once(" packets transmitted, ") {
            sent = a.trim().parse().unwrap_or(0);
            received = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    PingResult {
        sent,
        received,
        output,
    }
}

// ---- raw frames ----------------------------------------------------------

/// A MAC address from text.
pub fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).expect("mac byte"))
        .collect();
    v.try_into().expect("6 bytes")
}

/// Text of a MAC address, lower case.
pub fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Broadcast MAC.
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// An Ethernet frame, with an 802.1Q tag when `vid` is given.
pub fn eth(
    dst: [u8; 6],
    src: [u8; 6],
    vid: Option<u16>,
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(18 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(v) = vid {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&(v & 0x0fff).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An ARP request frame: `src_ip` (`src`) asks who has `dst_ip`.
pub fn arp_request(src: [u8; 6], vid: Option<u16>, src_ip: Ipv4Addr, dst_ip: Ipv4Addr) -> Vec<u8> {
    let mut a = Vec::with_capacity(28);
    a.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    a.extend_from_slice(&src);
    a.extend_from_slice(&src_ip.octets());
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&dst_ip.octets());
    eth(BROADCAST, src, vid, 0x0806, &a)
}

/// Internet checksum.
pub fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request frame.
#[allow(clippy::too_many_arguments)]
pub fn icmp_echo(
    dst: [u8; 6],
    src: [u8; 6],
    vid: Option<u16>,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    id: u16,
    seq: u16,
) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(b"rvs integration test payload");
    let c = csum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 1, 0, 0]);
    ip.extend_from_slice(&src_ip.octets());
    ip.extend_from_slice(&dst_ip.octets());
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    eth(dst, src, vid, 0x0800, &ip)
}

/// A received frame taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// VID of the outer 802.1Q tag, if tagged.
    pub vid: Option<u16>,
    /// Ethertype after the tag.
    pub ethertype: u16,
    /// Everything after the ethertype.
    pub payload: Vec<u8>,
}

impl Frame {
    /// Parses a frame (as on the wire, tag included).
    pub fn parse(b: &[u8]) -> Option<Frame> {
        if b.len() < 14 {
            return None;
        }
        let mut et = u16::from_be_bytes([b[12], b[13]]);
        let mut off = 14;
        let mut vid = None;
        if et == 0x8100 || et == 0x88a8 {
            if b.len() < 18 {
                return None;
            }
            vid = Some(u16::from_be_bytes([b[14], b[15]]) & 0x0fff);
            et = u16::from_be_bytes([b[16], b[17]]);
            off = 18;
        }
        Some(Frame {
            dst: b[0..6].try_into().ok()?,
            src: b[6..12].try_into().ok()?,
            vid,
            ethertype: et,
            payload: b[off..].to_vec(),
        })
    }

    /// For an ARP reply: (sender MAC, sender IP, target IP).
    pub fn arp_reply(&self) -> Option<([u8; 6], Ipv4Addr, Ipv4Addr)> {
        let a = &self.payload;
        if self.ethertype != 0x0806 || a.len() < 28 || a[6..8] != [0, 2] {
            return None;
        }
        let sha: [u8; 6] = a[8..14].try_into().ok()?;
        let spa = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
        let tpa = Ipv4Addr::new(a[24], a[25], a[26], a[27]);
        Some((sha, spa, tpa))
    }

    /// For an ARP request: (sender IP, target IP).
    pub fn arp_request(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        let a = &self.payload;
        if self.ethertype != 0x0806 || a.len() < 28 || a[6..8] != [0, 1] {
            return None;
        }
        Some((
            Ipv4Addr::new(a[14], a[15], a[16], a[17]),
            Ipv4Addr::new(a[24], a[25], a[26], a[27]),
        ))
    }

    /// For ICMP: (type, source IP, destination IP, id, seq).
    pub fn icmp(&self) -> Option<(u8, Ipv4Addr, Ipv4Addr, u16, u16)> {
        let p = &self.payload;
        if self.ethertype != 0x0800 || p.len() < 28 || p[9] != 1 {
            return None;
        }
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let icmp = p.get(ihl..ihl + 8)?;
        Some((
            icmp[0],
            Ipv4Addr::new(p[12], p[13], p[14], p[15]),
            Ipv4Addr::new(p[16], p[17], p[18], p[19]),
            u16::from_be_bytes([icmp[4], icmp[5]]),
            u16::from_be_bytes([icmp[6], icmp[7]]),
        ))
    }
}

const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_OUTGOING: u8 = 4;
const TP_STATUS_VLAN_VALID: u32 = 0x10;
const TP_STATUS_VLAN_TPID_VALID: u32 = 0x40;

/// `struct tpacket_auxdata` of `<linux/if_packet.h>`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

/// An `AF_PACKET` socket on one device inside a namespace: sends raw
/// frames and receives what the device receives, with the 802.1Q tag that
/// the kernel strips into `PACKET_AUXDATA` put back. Our own (outgoing)
/// frames are not returned.
#[derive(Debug)]
pub struct RawSock {
    fd: OwnedFd,
    /// The device's MAC.
    pub mac: [u8; 6],
}

impl RawSock {
    /// Opens the socket inside `ns` (on a short-lived thread that enters
    /// the namespace; the socket stays bound to it afterwards).
    pub fn open(ns: &Netns, dev: &str) -> RawSock {
        let path = format!("/run/netns/{}", ns.name);
        let devc = std::ffi::CString::new(dev).expect("name");
        let fd = std::thread::spawn(move || -> std::io::Result<OwnedFd> {
            let nsf = File::open(&path)?;
            // SAFETY: setns with a valid namespace fd; it changes only the
            // network namespace of this thread, which ends right after.
            if unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: devc is a valid NUL-terminated string.
            let ifindex = unsafe { libc::if_nametoindex(devc.as_ptr()) };
            if ifindex == 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Protocol 0: nothing is queued before bind() narrows the
            // socket to this device.
            // SAFETY: plain socket() call.
            let raw =
                unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
            if raw < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: raw is a fresh fd that we own from here on.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let one: libc::c_int = 1;
            // SAFETY: valid fd, option value points to a c_int of the given size.
            let r = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    PACKET_AUXDATA,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: sockaddr_ll is plain data; all-zero is valid.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: valid fd; sll is a sockaddr_ll of the size passed.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(fd)
        })
        .join()
        .expect("netns thread")
        .unwrap_or_else(|e| panic!("AF_PACKET socket on {dev} in {}: {e}", ns.name));
        RawSock {
            fd,
            mac: mac(&ns.mac(dev)),
        }
    }

    /// Sends one frame as is.
    pub fn send(&self, frame: &[u8]) {
        // SAFETY: valid fd; the buffer is valid for frame.len() bytes.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Sends `frames` with `sendmmsg`, up to 64 per call; returns how many
    /// the kernel took. A frame it refused (`ENOBUFS`: the device queue is
    /// full) is skipped and not retried: this is for floods, where what
    /// arrived is counted at the other end.
    pub fn send_batch(&self, frames: &[Vec<u8>]) -> usize {
        let mut sent = 0;
        for chunk in frames.chunks(64) {
            let mut iovs: Vec<libc::iovec> = chunk
                .iter()
                .map(|f| libc::iovec {
                    iov_base: f.as_ptr() as *mut libc::c_void,
                    iov_len: f.len(),
                })
                .collect();
            let mut off = 0;
            while off < iovs.len() {
                let mut msgs: Vec<libc::mmsghdr> = iovs[off..]
                    .iter_mut()
                    .map(|iov| {
                        // SAFETY: mmsghdr is plain data; all-zero is valid.
                        let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                        m.msg_hdr.msg_iov = iov;
                        m.msg_hdr.msg_iovlen = 1;
                        m
                    })
                    .collect();
                // SAFETY: valid fd; each mmsghdr points to one iovec over a
                // live frame buffer, all valid for the duration of the call.
                let n = unsafe {
                    libc::sendmmsg(
                        self.fd.as_raw_fd(),
                        msgs.as_mut_ptr(),
                        msgs.len() as libc::c_uint,
                        0,
                    )
                };
                if n > 0 {
                    sent += n as usize;
                    off += n as usize;
                } else {
                    let e = std::io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::ENOBUFS) | Some(libc::EAGAIN) => off += 1,
                        Some(libc::EINTR) => {}
                        _ => panic!("sendmmsg: {e}"),
                    }
                }
            }
        }
        sent
    }

    /// Receives the next incoming frame, waiting until `deadline`.
    pub fn recv(&self, deadline: Instant) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65536 + 4];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as libc::c_int) };
            if r == 0 {
                return None;
            }
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                panic!("poll: {e}");
            }
            // Leave 4 bytes at the front to put a tag back.
            let mut iov = libc::iovec {
                iov_base: buf[4..].as_mut_ptr().cast(),
                iov_len: buf.len() - 4,
            };
            // SAFETY: sockaddr_ll is plain data; all-zero is valid.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut cbuf = [0u64; 16];
            // SAFETY: msghdr is plain data; all-zero is valid.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cbuf);
            // SAFETY: msg points to live buffers (iov, sll, cbuf) of the sizes given.
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) {
                    continue;
                }
                panic!("recvmsg: {e}");
            }
            if sll.sll_pkttype == PACKET_OUTGOING {
                continue;
            }
            let n = n as usize;
            let mut aux = None;
            // SAFETY: msg was filled by recvmsg; CMSG_* walk within msg_controllen.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                        aux = Some(std::ptr::read_unaligned(
                            libc::CMSG_DATA(c).cast::<TpacketAuxdata>(),
                        ));
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            let mut frame = buf[4..4 + n].to_vec();
            if let Some(a) = aux {
                if a.tp_status & TP_STATUS_VLAN_VALID != 0 && n >= 12 {
                    let tpid = if a.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                        a.tp_vlan_tpid
                    } else {
                        0x8100
                    };
                    let mut tag = tpid.to_be_bytes().to_vec();
                    tag.extend_from_slice(&a.tp_vlan_tci.to_be_bytes());
                    frame.splice(12..12, tag);
                }
            }
            return Some(frame);
        }
    }

    /// Receives frames until one satisfies `f` (returning its result) or
    /// `wait` passes.
    pub fn recv_until<T>(
        &self,
        wait: Duration,
        mut f: impl FnMut(&Frame) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + wait;
        while let Some(b) = self.recv(deadline) {
            if let Some(fr) = Frame::parse(&b) {
                if let Some(v) = f(&fr) {
                    return Some(v);
                }
            }
        }
        None
    }

    /// All frames received during `wait`.
    pub fn collect(&self, wait: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + wait;
        let mut v = Vec::new();
        while let Some(b) = self.recv(deadline) {
            if let Some(fr) = Frame::parse(&b) {
                v.push(fr);
            }
        }
        v
    }

    /// Drops whatever is queued.
    pub fn drain(&self) {
        let _ = self.collect(Duration::from_millis(0));
    }

    /// Sends an ARP request (tagged with `vid` if given) from `my_ip` for
    /// `target` and waits (≤ 2 s) for the reply addressed to us; returns
    /// (replier MAC, VID of the reply).
    pub fn arp(
        &self,
        vid: Option<u16>,
        my_ip: Ipv4Addr,
        target: Ipv4Addr,
    ) -> Option<([u8; 6], Option<u16>)> {
        self.drain();
        self.send(&arp_request(self.mac, vid, my_ip, target));
        let me = self.mac;
        self.recv_until(Duration::from_secs(2), |f| {
            let (sha, spa, tpa) = f.arp_reply()?;
            (spa == target && tpa == my_ip && f.dst == me).then_some((sha, f.vid))
        })
    }

    /// Sends an ICMP echo request to (`dst`, `dst_ip`) and waits (≤ 2 s)
    /// for the echo reply; returns the VID of the reply.
    pub fn echo(
        &self,
        dst: [u8; 6],
        vid: Option<u16>,
        my_ip: Ipv4Addr,
        dst_ip: Ipv4Addr,
        seq: u16,
    ) -> Option<Option<u16>> {
        self.drain();
        let id = (std::process::id() & 0xffff) as u16;
        self.send(&icmp_echo(dst, self.mac, vid, my_ip, dst_ip, id, seq));
        self.recv_until(Duration::from_secs(2), |f| {
            let (ty, s, d, fid, fseq) = f.icmp()?;
            (ty == 0 && s == dst_ip && d == my_ip && fid == id && fseq == seq).then_some(f.vid)
        })
    }
}

// ---- tcpdump -------------------------------------------------------------

/// `tcpdump -i DEV -nn -e -l FILTER` running inside a namespace, stopped
/// with SIGTERM by [`Tcpdump::finish`] (or on drop).
#[derive(Debug)]
pub struct Tcpdump {
    child: Option<Child>,
    stderr: mpsc::Receiver<String>,
}

impl Tcpdump {
    /// Starts tcpdump and waits (≤ 10 s) until it is capturing.
    pub fn start(ns: &Netns, dev: &str, filter: &[&str]) -> Tcpdump {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns", "exec", &ns.name, "tcpdump", "-i", dev, "-nn", "-e", "-l", "-Q", "in",
        ])
        .args(filter)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run tcpdump ({e}): apt-get install -y tcpdump"));
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut t = Tcpdump {
            child: Some(child),
            stderr: rx,
        };
        let end = Instant::now() + Duration::from_secs(10);
        let mut seen = String::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match t.stderr.recv_timeout(left) {
                Ok(l) if l.contains("listening on") => break,
                Ok(l) => {
                    seen.push_str(&l);
                    seen.push('\n');
                }
                Err(_) => {
                    let out = t.stop();
                    panic!("tcpdump did not start on {dev}: {seen}{out}");
                }
            }
        }
        t
    }

    fn stop(&mut self) -> String {
        let Some(mut c) = self.child.take() else {
            return String::new();
        };
        // SAFETY: kill() on our own un-reaped child (`ip netns exec` execs
        // tcpdump, so this PID is tcpdump's).
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = c.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        let mut out = String::new();
        if let Some(mut so) = c.stdout.take() {
            let _ = so.read_to_string(&mut out);
        }
        out
    }

    /// Waits `settle` for late frames, stops tcpdump, returns its lines.
    pub fn finish(mut self, settle: Duration) -> Vec<String> {
        std::thread::sleep(settle);
        self.stop().lines().map(str::to_string).collect()
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// An IPv4 address from text.
pub fn ip4(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4 address")
}

/// The echo reply to an ICMP echo request frame `req`, sent from `me`
/// with the given tag: addresses swapped, same id, seq and payload.
pub fn icmp_reply_to(req: &Frame, me: [u8; 6], vid: Option<u16>) -> Vec<u8> {
    let p = &req.payload;
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    let mut ip = p[..total].to_vec();
    let (src, dst) = (ip[12..16].to_vec(), ip[16..20].to_vec());
    ip[12..16].copy_from_slice(&dst);
    ip[16..20].copy_from_slice(&src);
    ip[8] = 64;
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = csum(&ip[..ihl]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip[ihl] = 0;
    ip[ihl + 2..ihl + 4].copy_from_slice(&[0, 0]);
    let c = csum(&ip[ihl..]);
    ip[ihl + 2..ihl + 4].copy_from_slice(&c.to_be_bytes());
    eth(req.src, me, vid, 0x0800, &ip)
}

/// Starts `ping -c 1 -W 3 DST` in the background inside `ns`.
pub fn ping_spawn(ns: &Netns, dst: &str) -> Child {
    Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ping", "-n", "-c", "1", "-W", "3", dst,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ping")
}

/// Waits (≤ 5 s) for a background ping; true if it got its reply.
pub fn ping_wait(mut c: Child) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(Some(st)) = c.try_wait() {
            return st.success();
        }
        if Instant::now() >= end {
            let _ = c.kill();
            let _ = c.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls (≤ 3 s) until the port's `rx_dropped[reason]` reaches `want`,
/// then checks it stays there; panics otherwise.
pub fn assert_rx_dropped(d: &Rvsd, br: &str, port: &str, reason: &str, want: u64) {
    let get = || {
        d.port_stats(br, port)
            .rx_dropped
            .get(reason)
            .copied()
            .unwrap_or(0)
    };
    let got = poll(Duration::from_secs(3), || (get() >= want).then_some(()));
    std::thread::sleep(Duration::from_millis(200));
    let now = get();
    assert!(
        got.is_some() && now == want,
        "port {port}: rx_dropped.{reason} = {now}, want {want}: {:?}",
        d.port_stats(br, port)
    );
}

// ---- raw control connection ----------------------------------------------

/// A control-socket connection speaking JSON lines directly (no rvsctl).
#[derive(Debug)]
pub struct Conn {
    /// The stream (for tests that write odd bytes themselves).
    pub stream: std::os::unix::net::UnixStream,
    rd: BufReader<std::os::unix::net::UnixStream>,
}

impl Conn {
    /// Connects; reads time out after 10 s.
    pub fn open(socket: &Path) -> Conn {
        let stream = std::os::unix::net::UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let rd = BufReader::new(stream.try_clone().expect("clone"));
        Conn { stream, rd }
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.stream.write_all(bytes)
    }

    /// Reads one response line; `None` at EOF (or on a read error).
    pub fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.rd.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(
                serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("bad response line ({e}): {line}")),
            ),
        }
    }

    /// Sends one request line (`line` without the newline) and reads the
    /// response.
    pub fn call_raw(&mut self, line: &str) -> Value {
        self.send_raw(format!("{line}\n").as_bytes())
            .expect("write request");
        self.recv().expect("no response (connection closed)")
    }

    /// Sends a request given as JSON and reads the response.
    pub fn call(&mut self, req: &Value) -> Value {
        self.call_raw(&req.to_string())
    }
}

/// Whether a response says ok.
pub fn resp_ok(v: &Value) -> bool {
    v["ok"] == Value::Bool(true)
}

/// The error message of a failed response (panics on success).
pub fn resp_err(v: &Value) -> String {
    assert!(!resp_ok(v), "expected an error, got {v}");
    v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {v}"))
        .to_string()
}

/// Waits (≤ 5 s) until rvs's counters of `h`'s port mirror the kernel's
/// counters of `h`'s interface: what the host transmitted, rvs received,
/// and vice versa — packets and bytes.
pub fn assert_counters_mirror(d: &Rvsd, br: &str, h: &Host) {
    let mut last = None;
    let same = poll(Duration::from_secs(5), || {
        let p = d.port_stats(br, &h.port);
        let k = h.stats();
        let ok = p.rx_packets == k.tx_packets
            && p.rx_bytes == k.tx_bytes
            && p.tx_packets == k.rx_packets
            && p.tx_bytes == k.rx_bytes;
        last = Some((p, k));
        ok.then_some(())
    });
    assert!(
        same.is_some(),
        "rvs port {} counters do not mirror the host's {}: (rvs, kernel) = {last:#?}",
        h.port,
        h.dev
    );
}

/// `h1` and `h2` ping each other 5 times each way, all answered; each of
/// their ports counted at least the 5 requests and 5 replies it carried each
/// way, dropped nothing, and (exactly) mirrors the host kernel's counters.
pub fn assert_pings_and_counters(d: &Rvsd, br: &str, h1: &Host, h2: &Host) {
    let r = h1.ping(h2.ip(), 5);
    assert_eq!(r.received, 5, "h1 -> h2: {}", r.output);
    let r = h2.ping(h1.ip(), 5);
    assert_eq!(r.received, 5, "h2 -> h1: {}", r.output);

    // Each side sent at least its 5 echo requests and 5 replies.
    let p1 = d.port_stats(br, &h1.port);
    let p2 = d.port_stats(br, &h2.port);
    assert!(p1.rx_packets >= 10 && p2.rx_packets >= 10, "{p1:?} {p2:?}");
    assert!(p1.tx_packets >= 10 && p2.tx_packets >= 10, "{p1:?} {p2:?}");
    assert!(
        p1.rx_dropped.is_empty() && p2.rx_dropped.is_empty(),
        "{p1:?} {p2:?}"
    );
    assert!(
        p1.tx_dropped.is_empty() && p2.tx_dropped.is_empty(),
        "{p1:?} {p2:?}"
    );
    // Exact: rvs received what each kernel sent, and sent what it received.
    assert_counters_mirror(d, br, h1);
    assert_counters_mirror(d, br, h2);
}

/// Runs an iperf3 server in `srv` and a client in `cli` sending `bytes`;
/// returns (bytes sent, bytes the server reported received). The client
/// only succeeds once the server acknowledged the end of the test, i.e. the
/// TCP stream was delivered; the server's byte count is a snapshot taken
/// at that moment and may trail the last few segments.
/// A one-shot iperf3 server in `srv`'s namespace on its address and
/// `port`, output discarded.
pub fn iperf3_server(srv: &Host, port: u16) -> std::process::Child {
    std::process::Command::new("ip")
        .args(["netns", "exec", &srv.ns.name, "iperf3", "-s", "-1", "-B"])
        .arg(srv.ip())
        .args(["-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 server (apt-get install iperf3)")
}

pub fn tcp_transfer(cli: &Host, srv: &Host, bytes: u64) -> (u64, u64) {
    // Both directions need ARP first.
    cli.assert_ping(srv.ip());
    let port = 20000 + (std::process::id() % 20000) as u16;
    let mut last = String::new();
    // A few attempts, each with a fresh one-shot server: the client may
    // race the server's listen, and a failed attempt ends the server.
    for _ in 0..3 {
        let mut server = iperf3_server(srv, port);
        std::thread::sleep(Duration::from_millis(300));
        let o = cli.ns.exec_quiet(&[
            "timeout",
            "30",
            "iperf3",
            "-c",
            srv.ip(),
            "-p",
            &port.to_string(),
            "-n",
            &bytes.to_string(),
            "-J",
        ]);
        let _ = server.kill();
        let _ = server.wait();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        let sent = v["end"]["sum_sent"]["bytes"].as_u64();
        let got = v["end"]["sum_received"]["bytes"].as_u64();
        if let (true, Some(sent), Some(got)) = (o.status.success(), sent, got) {
            return (sent, got);
        }
        last = format!(
            "status {:?}, stdout {}, stderr {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("iperf3 never completed a transfer: {last}");
}

/// Runs `args` in `dir` (stdin closed, at most 600 s); true on success.
/// For the slow set-up steps of the controller tests (venvs, pip).
pub fn sh(args: &[&str], dir: &Path) -> bool {
    Command::new("timeout")
        .arg("600")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A TCP port on 127.0.0.1 nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A Python venv under cargo's `CARGO_TARGET_TMPDIR/<name>` with `spec`
/// pip-installed, made on first use; `ready(dir)` says whether what the
/// caller needs is there, `setup(dir)` runs any extra step after the
/// install. Without it (no network) the caller skips — except in CI, where
/// this fails.
pub fn pip_venv(
    name: &str,
    spec: &str,
    ready: impl Fn(&Path) -> bool,
    setup: impl FnOnce(&Path) -> bool,
) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    if ready(&dir) {
        return Some(dir);
    }
    std::fs::create_dir_all(&dir).ok()?;
    let pip = dir.join("venv/bin/pip");
    let ok = (pip.exists() || sh(&["python3", "-m", "venv", "venv"], &dir))
        && sh(&[pip.to_str()?, "install", "-q", spec], &dir)
        && setup(&dir);
    if ok && ready(&dir) {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "cannot install {spec} into {}",
        dir.display()
    );
    eprintln!("skipping: {spec} could not be installed (no network?)");
    None
}

/// True if the real `ovs-ofctl` is installed; in CI its absence fails the
/// test instead of skipping it.
pub fn have_ofctl() -> bool {
    let ok = std::process::Command::new("ovs-ofctl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ovs-ofctl is missing in CI (openvswitch-common)"
        );
        eprintln!("skipping: ovs-ofctl not installed");
    }
    ok
}

/// A small deterministic generator (xorshift), seeded from the clock; the
/// seed is printed so a failure can be replayed with `RVS_TEST_SEED`.
pub fn rng() -> impl FnMut() -> u64 {
    let mut x = std::env::var("RVS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1;
    eprintln!("RVS_TEST_SEED={x}");
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// osken-manager (or any child process logging to a file), killed (by
/// PID) on drop; its log is printed if the test failed.
/// The venv's `osken-manager`, installing os-ken on first use.
pub fn osken_manager() -> Option<PathBuf> {
    let mgr = |d: &Path| d.join("venv/bin/osken-manager");
    let dir = pip_venv("osken", "os-ken<4", |d| mgr(d).exists(), |_| true)?;
    Some(mgr(&dir))
}

/// How long a SIGTERM'd rvsd may take to stop: a clean shutdown writes
/// the full snapshot, which for the 200k-flow tests in a debug build on a
/// loaded 2-core machine takes several seconds.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Manager(pub std::process::Child, pub std::path::PathBuf);

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- osken-manager log -----\n{}",
                std::fs::read_to_string(&self.1).unwrap_or_default()
            );
        }
    }
}
