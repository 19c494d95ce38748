//! A private Open vSwitch for the tests that compare rvs with it or use
//! it as a tester switch: `ovsdb-server` and `ovs-vswitchd` in their own
//! network namespace, with database, run directory, pidfiles and logs in
//! a temp directory, killed by PID on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{poll, run, uniq, Netns, TempDir};

/// Open vSwitch binaries, or a skip (a failure in CI).
pub fn have_ovs() -> bool {
    let ok = ["ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"]
        .iter()
        .all(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Open vSwitch (openvswitch-switch) is not installed"
        );
        eprintln!("skipping: Open vSwitch (openvswitch-switch) is not installed");
    }
    ok
}

// ---- processes -------------------------------------------------------------

/// A child process that dies with the test thread that spawned it
/// (`PR_SET_PDEATHSIG`), and gets SIGTERM (SIGKILL after 5 s) on drop.
pub struct Proc {
    child: Child,
    what: String,
}

impl Proc {
    pub fn spawn(mut cmd: Command, what: &str, log: &Path) -> Proc {
        let logf = std::fs::File::create(log).unwrap();
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches
        // only the forked child's own state.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Proc {
            child,
            what: what.to_string(),
        }
    }

    /// Waits up to `limit` for the process to exit on its own.
    pub fn wait(&mut self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return true,
                _ if Instant::now() >= end => return false,
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill() on the PID of our own un-reaped child.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            if !self.wait(Duration::from_secs(5)) {
                eprintln!("{} ignored SIGTERM; killing it", self.what);
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

// ---- Open vSwitch ------------------------------------------------------------

/// A private Open vSwitch (ovsdb-server + ovs-vswitchd) inside its own
/// namespace. Field order is drop order: daemons first, then the
/// namespace (its veths and OVS's taps go with it), then the files.
pub struct Ovs {
    vswitchd: Option<Proc>,
    dbserver: Option<Proc>,
    /// Its namespace.
    pub ns: Netns,
    /// Database, sockets and logs.
    pub dir: TempDir,
}

impl Ovs {
    pub fn start() -> Ovs {
        let ns = Netns::new();
        let dir = TempDir::new();
        let db = dir.0.join("conf.db");
        run(&[
            "ovsdb-tool",
            "create",
            db.to_str().unwrap(),
            "/usr/share/openvswitch/vswitch.ovsschema",
        ]);
        let mut ovs = Ovs {
            vswitchd: None,
            dbserver: None,
            ns,
            dir,
        };
        ovs.spawn_dbserver();
        ovs.spawn_vswitchd();
        ovs
    }

    fn path(&self, name: &str) -> String {
        self.dir.0.join(name).to_str().unwrap().to_string()
    }

    /// Starts ovsdb-server on the database and waits (≤ 10 s) until it
    /// answers.
    fn spawn_dbserver(&mut self) {
        let p = |n: &str| self.path(n);
        let mut c = self.cmd("ovsdb-server");
        c.arg(p("conf.db")).args([
            format!("--remote=punix:{}", p("db.sock")),
            format!("--pidfile={}", p("ovsdb-server.pid")),
            format!("--unixctl={}", p("ovsdb-server.ctl")),
            format!("--log-file={}", p("ovsdb-server.log")),
        ]);
        let out = self.dir.0.join("ovsdb-server.out");
        self.dbserver = Some(Proc::spawn(c, "ovsdb-server", &out));
        let up = poll(Duration::from_secs(10), || {
            self.vsctl_quiet(&["--no-wait", "init"]).then_some(())
        });
        assert!(up.is_some(), "ovsdb-server did not start: {}", self.logs());
    }

    fn spawn_vswitchd(&mut self) {
        let p = |n: &str| self.path(n);
        let mut c = self.cmd("ovs-vswitchd");
        c.arg(format!("unix:{}", p("db.sock"))).args([
            format!("--pidfile={}", p("ovs-vswitchd.pid")),
            format!("--unixctl={}", p("ovs-vswitchd.ctl")),
            format!("--log-file={}", p("ovs-vswitchd.log")),
        ]);
        let out = self.dir.0.join("ovs-vswitchd.out");
        self.vswitchd = Some(Proc::spawn(c, "ovs-vswitchd", &out));
    }

    /// Stops both daemons (SIGTERM, by PID) and starts them again on the
    /// same database, as a host reboot would; with `delete_transient`,
    /// between the two starts it deletes the ports with
    /// `other_config:transient=true`, as `ovs-ctl --delete-transient-ports
    /// start` does.
    pub fn restart(&mut self, delete_transient: bool) {
        self.vswitchd = None;
        self.dbserver = None;
        self.spawn_dbserver();
        if delete_transient {
            let out = self
                .cmd("ovs-vsctl")
                .arg(format!("--db=unix:{}", self.path("db.sock")))
                .args(["--timeout=20", "--bare", "--", "--columns=name"])
                .args(["find", "port", "other_config:transient=true"])
                .stdin(Stdio::null())
                .output()
                .unwrap();
            for port in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                self.vsctl(&["--no-wait", "--", "del-port", port]);
            }
        }
        self.spawn_vswitchd();
    }

    /// `ip netns exec NS PROG` with OVS's directories pointed at ours.
    pub fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns.name, prog]);
        for v in ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"] {
            c.env(v, &self.dir.0);
        }
        c
    }

    pub fn vsctl_quiet(&self, args: &[&str]) -> bool {
        let db = format!("--db=unix:{}", self.dir.0.join("db.sock").display());
        self.cmd("ovs-vsctl")
            .args([db.as_str(), "--timeout=20"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success())
    }

    pub fn vsctl(&self, args: &[&str]) {
        let db = format!("--db=unix:{}", self.dir.0.join("db.sock").display());
        let out = self
            .cmd("ovs-vsctl")
            .args([db.as_str(), "--timeout=20"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ovs-vsctl {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
    }

    /// The database socket (`unix:` remote of ovsdb-server).
    pub fn db_sock(&self) -> std::path::PathBuf {
        self.dir.0.join("db.sock")
    }

    /// Runs `ovs-vsctl --db=unix:SOCK --timeout=20 ARGS…` inside the
    /// namespace and returns its output whatever its exit status (exit
    /// code, stdout, stderr), for tests that compare failures too. A
    /// `--timeout` in `args` overrides the default (the last one wins).
    pub fn vsctl_output(&self, args: &[&str]) -> std::process::Output {
        let db = format!("--db=unix:{}", self.db_sock().display());
        self.cmd("ovs-vsctl")
            .args([db.as_str(), "--timeout=20"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A veth pair with both ends inside the namespace, up.
    pub fn veth_inside(&self) -> (String, String) {
        let (a, b) = (uniq('v'), uniq('w'));
        run(&[
            "ip",
            "-n",
            &self.ns.name,
            "link",
            "add",
            &a,
            "type",
            "veth",
            "peer",
            "name",
            &b,
        ]);
        for d in [&a, &b] {
            run(&["ip", "-n", &self.ns.name, "link", "set", d, "up"]);
        }
        (a, b)
    }

    pub fn logs(&self) -> String {
        let r = |n: &str| std::fs::read_to_string(self.dir.0.join(n)).unwrap_or_default();
        format!(
            "----- ovsdb-server -----\n{}{}----- ovs-vswitchd -----\n{}{}",
            r("ovsdb-server.out"),
            r("ovsdb-server.log"),
            r("ovs-vswitchd.out"),
            r("ovs-vswitchd.log")
        )
    }
}
