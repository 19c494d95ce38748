//! libvirt attaches a VM to the switch through the OVSDB endpoint.
//!
//! # What?
//! The real thing end to end: Debian's `libvirtd` starts a domain whose
//! interface is `<interface type='bridge'><source bridge='br0'/>
//! <virtualport type='openvswitch'/><vlan><tag id='10'/></vlan>` and so
//! runs the real `ovs-vsctl` (no `--db`: `$OVS_RUNDIR/db.sock`) against
//! the switch. The test checks that
//! - `virsh start` adds the VM's TAP to br0 with tag 10 and the
//!   `external_ids` libvirt sets (`attached-mac`, `iface-id`, `vm-id`,
//!   `iface-status`), with libvirt having given the TAP br0's MTU;
//! - the guest (a busybox initramfs, tests/guest/) pings a namespace host
//!   on a veth port of br0 in VLAN 10, and the host pings it back;
//! - restarting the switch keeps the VM's port (libvirt's ports are not
//!   transient) and the host-side port, and drops a port marked
//!   `other_config:transient=true`, and the guest is reachable again;
//! - `virsh destroy` removes the port.
//!
//! The same body runs against rvs ([`libvirt_attaches_vm_to_rvs`]: rvsd
//! with `--ovsdb-remote punix:DIR/db.sock`, br0 made with `rvsctl
//! add-br`) and against the real Open vSwitch as the reference
//! ([`libvirt_attaches_vm_to_ovs`]: ovsdb-server + ovs-vswitchd, netdev
//! datapath, tests/common/ovs.rs).
//!
//! # Design
//! - Switch, libvirtd and QEMU share one network namespace: libvirt
//!   creates the TAP and reads br0's MTU (`SIOCGIFMTU` on the netdev
//!   `br0`, rvs's LOCAL port or OVS's internal port) in its own
//!   namespace, and the switch must see that TAP. So "br0" is a private
//!   name there, and the TAP is named by the test (`<target dev=…>`).
//! - libvirtd is private: `ip netns exec` gives it a mount namespace of
//!   its own, where a small shell bind-mounts the test's directories over
//!   /etc/libvirt, /run/libvirt, /var/lib/libvirt and /var/log/libvirt
//!   (QEMU's capability cache, /var/cache/libvirt, is shared by the tests
//!   under cargo's target tmpdir: probing QEMU costs ~8 s). Its sockets
//!   are in the test's directory (`unix_sock_dir`), so a system libvirtd,
//!   if one runs, is not disturbed. qemu.conf: root, no security driver,
//!   no cgroups, no private /dev, stdio to files (no virtlogd).
//! - libvirtd's log keeps `util.command` at debug level: every
//!   `ovs-vsctl` command line libvirt ran is printed at the end.
//! - The guest is TCG (`<domain type='qemu'>`), 96 MiB, direct kernel
//!   boot of the Debian cloud kernel with the virtio-net modules in a
//!   busybox initramfs (tests/guest/build.sh, cached in
//!   /var/cache/rvs-test-guest or `$RVS_GUEST_DIR`); it reports on the
//!   serial console, a file.
//! - Open vSwitch's restart is what a reboot with `ovs-ctl
//!   --delete-transient-ports start` does: both daemons stop and start
//!   again on the same database, and ports with
//!   `other_config:transient=true` are deleted before ovs-vswitchd runs.
//!
//! # What libvirt 9.0 runs
//! Seen in its log (`util.command`), the only OVSDB clients are, on
//! `virsh start` (after `TUNSETIFF`, `SIOCGIFMTU` of br0 and `SIOCSIFMTU`
//! of the TAP to that value):
//! `ovs-vsctl --timeout=5 -- --may-exist add-port br0 TAP tag=10 -- set
//! Interface TAP 'external-ids:attached-mac="MAC"' -- set Interface TAP
//! 'external-ids:iface-id="UUID"' -- set Interface TAP
//! 'external-ids:vm-id="UUID"' -- set Interface TAP
//! external-ids:iface-status=active`, and on `virsh destroy`
//! `ovs-vsctl --timeout=5 -- --if-exists del-port TAP`; both without
//! `--no-wait` (they wait for `cur_cfg` to catch up with `next_cfg`). No
//! `other_config:transient`; nothing at a libvirtd restart (reconnect);
//! `virsh domifstat` reads the kernel's TAP counters, not `Interface
//! statistics`.
//!
//! # Limits
//! Every wait is bounded (the guest gets 120 s to boot and ping, which on
//! an idle 2-core machine takes ~5 s). Missing libvirt, QEMU, busybox or
//! the guest kernel skip the test with a message, except in CI
//! (`CI=true`), where they fail it. Run `cargo build --workspace --bins`
//! first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::ovs::{have_ovs, Ovs, Proc};
use common::{link_json, ping, poll, require_root, run, uniq, Netns, Rvsd, TempDir};

const BR: &str = "br0";
const MAC: &str = "52:54:00:72:76:0a";
const HOST_CIDR: &str = "10.77.10.1/24";
const HOST_IP: &str = "10.77.10.1";
const GUEST_CIDR: &str = "10.77.10.2/24";
const GUEST_IP: &str = "10.77.10.2";
const VLAN: &str = "10";
const OTHER_CIDR: &str = "10.77.10.3/24";

// ---- prerequisites -----------------------------------------------------------

/// Fails the test in CI, else prints why it is skipped; returns false.
fn skip(why: &str) -> bool {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    eprintln!("skipping: {why}");
    false
}

/// libvirtd, virsh, QEMU and what builds the guest are installed.
fn have_libvirt() -> bool {
    let missing: Vec<&str> = [
        "libvirtd",
        "virsh",
        "qemu-system-x86_64",
        "busybox",
        "cpio",
        "dpkg-deb",
        "apt-get",
        "flock",
    ]
    .into_iter()
    .filter(|b| {
        !Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
    .collect();
    if !missing.is_empty() {
        return skip(&format!(
            "{missing:?} not installed (libvirt-daemon-system, qemu-system-x86, busybox-static, cpio: tests/run.sh installs them)"
        ));
    }
    true
}

/// The guest's kernel and initramfs (tests/guest/build.sh, cached).
struct Guest {
    kernel: PathBuf,
    initrd: PathBuf,
}

fn guest() -> Option<Guest> {
    let dir = std::env::var("RVS_GUEST_DIR").unwrap_or_else(|_| "/var/cache/rvs-test-guest".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guest/build.sh");
    let t = Instant::now();
    let out = Command::new("timeout")
        .arg("300")
        .arg("bash")
        .arg(&script)
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("run tests/guest/build.sh");
    if !out.status.success() {
        skip(&format!(
            "tests/guest/build.sh {dir} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
        return None;
    }
    eprintln!("guest image in {dir} ({:.1?})", t.elapsed());
    let d = Path::new(&dir);
    Some(Guest {
        kernel: d.join("vmlinuz"),
        initrd: d.join("initrd.img"),
    })
}

// ---- the switch --------------------------------------------------------------

/// What the test needs of a switch: a namespace for its netdevs (and
/// libvirt's TAP), an OVSDB socket at `rundir()/db.sock`, bridges, and a
/// restart.
trait Switch {
    /// For messages.
    fn what(&self) -> &'static str;
    /// The namespace of its bridges' netdevs; libvirtd and QEMU run here.
    fn ns(&self) -> &Netns;
    /// `OVS_RUNDIR` of its OVSDB socket.
    fn rundir(&self) -> PathBuf;
    /// Creates a bridge (its LOCAL/internal netdev appears in `ns()`).
    fn add_br(&mut self, br: &str);
    /// Stops the switch and starts it again on the same configuration,
    /// as after a reboot: transient ports are gone.
    fn restart(&mut self);
    /// Its logs, for failures.
    fn logs(&self) -> String;
    /// Checks `port` as the switch itself reports it (beyond OVSDB).
    fn check_port(&self, _port: &str) {}
}

/// rvsd in its own namespace with its OVSDB endpoint on `DIR/db.sock`
/// (`DIR` its private directory). Field order is drop order: the daemon,
/// then the namespace.
struct Rvs {
    d: Rvsd,
    ns: Netns,
}

impl Rvs {
    fn start() -> Rvs {
        let ns = Netns::new();
        let d = Rvsd::start_in_with(&ns, |dir| {
            vec![
                "--ovsdb-remote".to_string(),
                format!("punix:{}", dir.join("db.sock").display()),
            ]
        });
        let sock = d.dir().join("db.sock");
        let ok = poll(Duration::from_secs(10), || sock.exists().then_some(()));
        assert!(
            ok.is_some(),
            "rvsd --ovsdb-remote punix:{}: no socket after 10 s:\n{}",
            sock.display(),
            d.log_text()
        );
        Rvs { d, ns }
    }
}

impl Switch for Rvs {
    fn what(&self) -> &'static str {
        "rvs"
    }
    fn ns(&self) -> &Netns {
        &self.ns
    }
    fn rundir(&self) -> PathBuf {
        self.d.dir().to_path_buf()
    }
    fn add_br(&mut self, br: &str) {
        self.d.ok(&["add-br", br]);
    }
    fn restart(&mut self) {
        self.d.stop();
        self.d.restart();
    }
    fn logs(&self) -> String {
        format!("----- rvsd -----\n{}", self.d.log_text())
    }
    /// `rvsctl show`: a system port in VLAN 10 that is up, with libvirt's
    /// MAC among its external_ids.
    fn check_port(&self, port: &str) {
        let p = self.d.show_port(BR, port);
        assert_eq!(p.kind, "system", "{p:?}");
        assert_eq!(p.tag.map(|t| t.to_string()).as_deref(), Some(VLAN), "{p:?}");
        assert!(p.up, "{p:?}");
        assert_eq!(
            p.external_ids.get("attached-mac").map(String::as_str),
            Some(MAC),
            "{p:?}"
        );
    }
}

/// The real Open vSwitch, netdev datapath.
struct RealOvs(Ovs);

impl Switch for RealOvs {
    fn what(&self) -> &'static str {
        "Open vSwitch"
    }
    fn ns(&self) -> &Netns {
        &self.0.ns
    }
    fn rundir(&self) -> PathBuf {
        self.0.dir.0.clone()
    }
    fn add_br(&mut self, br: &str) {
        self.0.vsctl(&[
            "add-br",
            br,
            "--",
            "set",
            "bridge",
            br,
            "datapath_type=netdev",
        ]);
    }
    fn restart(&mut self) {
        self.0.restart(true);
    }
    fn logs(&self) -> String {
        self.0.logs()
    }
}

/// `ovs-vsctl --timeout=20 ARGS…` with `OVS_RUNDIR` only, as libvirt runs
/// it (it waits for the switch to apply the change, no `--no-wait`).
fn vsctl_out(sw: &dyn Switch, args: &[&str]) -> Output {
    Command::new("ovs-vsctl")
        .arg("--timeout=20")
        .args(args)
        .env("OVS_RUNDIR", sw.rundir())
        .stdin(Stdio::null())
        .output()
        .expect("run ovs-vsctl (openvswitch-common)")
}

/// [`vsctl_out`], asserting success; returns stdout, trimmed.
fn vsctl(sw: &dyn Switch, args: &[&str]) -> String {
    let o = vsctl_out(sw, args);
    assert!(
        o.status.success(),
        "{}: ovs-vsctl {args:?} failed ({}): {}{}\n{}",
        sw.what(),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        sw.logs()
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn ports(sw: &dyn Switch) -> Vec<String> {
    vsctl(sw, &["list-ports", BR])
        .lines()
        .map(str::to_string)
        .collect()
}

/// `ovs-vsctl get TABLE REC COLUMN[:KEY]`, without the quotes of a string.
fn get(sw: &dyn Switch, table: &str, rec: &str, col: &str) -> String {
    vsctl(sw, &["get", table, rec, col])
        .trim_matches('"')
        .to_string()
}

fn mtu(ns: &Netns, dev: &str) -> u64 {
    link_json(Some(ns), dev)["mtu"].as_u64().expect("mtu")
}

// ---- libvirt -----------------------------------------------------------------

/// A private libvirtd inside the switch's namespace (see the module
/// comment), with at most one domain, which is destroyed and undefined on
/// drop before libvirtd gets SIGTERM (by PID).
struct Libvirt {
    domain: Option<String>,
    proc: Option<Proc>,
    dir: TempDir,
    uri: String,
    /// The switch's namespace and `OVS_RUNDIR`.
    ns: String,
    rundir: PathBuf,
}

const QEMU_CONF: &str = r#"# tests/libvirt_ovs.rs: a private libvirtd in a container
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = []
cgroup_controllers = []
stdio_handler = "file"
"#;

/// Runs as `sh -c SCRIPT sh DIR CACHE` under `ip netns exec` (a mount
/// namespace of its own whose mounts do not propagate back).
const LIBVIRTD_SH: &str = r#"set -e
for d in etc run lib log; do mkdir -p "$1/$d"; done
mkdir -p "$2" /etc/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt
mount --bind "$1/etc" /etc/libvirt
mount --bind "$1/run" /run/libvirt
mount --bind "$1/lib" /var/lib/libvirt
mount --bind "$1/log" /var/log/libvirt
mount --bind "$2" /var/cache/libvirt
exec libvirtd --config "$1/etc/libvirtd.conf" --pid-file "$1/libvirtd.pid"
"#;

impl Libvirt {
    fn start(sw: &dyn Switch) -> Libvirt {
        let dir = TempDir::new();
        let d = dir.0.clone();
        std::fs::create_dir_all(d.join("etc")).unwrap();
        std::fs::create_dir_all(d.join("sock")).unwrap();
        std::fs::write(
            d.join("etc/libvirtd.conf"),
            format!(
                r#"unix_sock_dir = "{sock}"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_filters = "1:util.command 1:util.netdevopenvswitch 1:util.netdevtap 3:util 3:rpc 3:event 3:object 3:conf 2:qemu"
log_outputs = "1:file:{log}"
"#,
                sock = d.join("sock").display(),
                log = d.join("libvirtd.log").display()
            ),
        )
        .unwrap();
        std::fs::write(d.join("etc/qemu.conf"), QEMU_CONF).unwrap();
        let uri = format!(
            "qemu:///system?socket={}",
            d.join("sock/libvirt-sock").display()
        );
        let mut lv = Libvirt {
            domain: None,
            proc: None,
            dir,
            uri,
            ns: sw.ns().name.clone(),
            rundir: sw.rundir(),
        };
        lv.spawn();
        lv
    }

    /// Starts libvirtd and waits (≤ 60 s) until it answers.
    fn spawn(&mut self) {
        let d = &self.dir.0;
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libvirt-cache");
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, "sh", "-c", LIBVIRTD_SH, "sh"])
            .arg(d)
            .arg(&cache)
            .env("OVS_RUNDIR", &self.rundir);
        self.proc = Some(Proc::spawn(c, "libvirtd", &d.join("libvirtd.out")));
        let t = Instant::now();
        let up = poll(Duration::from_secs(60), || {
            if self.proc.as_mut().is_some_and(|p| p.wait(Duration::ZERO)) {
                panic!("libvirtd exited:\n{}", self.logs());
            }
            self.virsh_out(&["version"]).status.success().then_some(())
        });
        assert!(
            up.is_some(),
            "libvirtd did not answer in 60 s:\n{}",
            self.logs()
        );
        eprintln!("libvirtd up ({:.1?})", t.elapsed());
    }

    /// Stops libvirtd (SIGTERM, by PID; the domain keeps running) and
    /// starts it again: it reconnects to the running QEMU.
    fn restart(&mut self) {
        self.proc = None;
        self.spawn();
    }

    fn virsh_out(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["120", "virsh", "-q", "-c", &self.uri])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run virsh")
    }

    fn virsh(&self, args: &[&str]) -> String {
        let o = self.virsh_out(args);
        assert!(
            o.status.success(),
            "virsh {args:?} failed ({}): {}{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("console.log")).unwrap_or_default()
    }

    /// Every `ovs-vsctl` command line libvirt ran so far.
    fn vsctl_commands(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.0.join("libvirtd.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once("About to run ").map(|(_, c)| c))
            .filter(|c| c.contains("ovs-vsctl"))
            .map(str::to_string)
            .collect()
    }

    fn logs(&self) -> String {
        let r = |p: &str| std::fs::read_to_string(self.dir.0.join(p)).unwrap_or_default();
        let log = r("libvirtd.log");
        let interesting: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" error : ") || l.contains("About to run ovs-vsctl"))
            .collect();
        let qemu = self
            .domain
            .as_ref()
            .map(|n| r(&format!("log/qemu/{n}.log")))
            .unwrap_or_default();
        format!(
            "----- libvirtd stdout/stderr -----\n{}----- libvirtd log (errors, ovs-vsctl) -----\n{}\n----- QEMU log -----\n{qemu}----- guest console -----\n{}",
            r("libvirtd.out"),
            interesting.join("\n"),
            self.console()
        )
    }

    /// Defines and starts the domain; returns (TAP name, domain name).
    fn start_domain(&mut self, g: &Guest) -> (String, String) {
        let name = uniq('g');
        let tap = uniq('q');
        let xml = format!(
            r#"<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>96</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 panic=-1 rvs.ip={GUEST_CIDR} rvs.peer={HOST_IP}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='bridge'>
      <mac address='{MAC}'/>
      <source bridge='{BR}'/>
      <virtualport type='openvswitch'/>
      <vlan><tag id='{VLAN}'/></vlan>
      <target dev='{tap}'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='{console}'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
"#,
            kernel = g.kernel.display(),
            initrd = g.initrd.display(),
            console = self.dir.0.join("console.log").display(),
        );
        let file = self.dir.0.join("domain.xml");
        std::fs::write(&file, xml).unwrap();
        self.virsh(&["define", file.to_str().unwrap()]);
        self.domain = Some(name.clone());
        let t = Instant::now();
        self.virsh(&["start", &name]);
        eprintln!("virsh start {name} ({:.1?})", t.elapsed());
        (tap, name)
    }

    /// Waits (≤ `limit`) for `marker` on the guest console; panics on a
    /// guest failure line or when the domain stops.
    fn wait_console(&self, marker: &str, limit: Duration) {
        let name = self.domain.clone().expect("domain");
        let mut n = 0u32;
        let seen = poll(limit, || {
            let c = self.console();
            if c.contains(marker) {
                return Some(());
            }
            assert!(
                !c.contains("RVS-GUEST-PING-FAIL") && !c.contains("RVS-GUEST-FAIL"),
                "the guest failed:\n{}",
                self.logs()
            );
            n += 1;
            if n % 20 == 0 {
                let st = self.virsh(&["domstate", &name]);
                assert!(st == "running", "domain is {st}:\n{}", self.logs());
            }
            None
        });
        assert!(
            seen.is_some(),
            "no {marker:?} on the guest console within {limit:?}:\n{}",
            self.logs()
        );
    }

    /// QEMU's PID, from libvirt's pidfile, if it still runs.
    fn qemu_pid(&self, name: &str) -> Option<i32> {
        let s = std::fs::read_to_string(self.dir.0.join(format!("run/qemu/{name}.pid"))).ok()?;
        let pid: i32 = s.trim().parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmd)
            .contains(&format!("guest={name}"))
            .then_some(pid)
    }
}

impl Drop for Libvirt {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        if let Some(name) = self.domain.take() {
            let pid = self.qemu_pid(&name);
            let _ = self.virsh_out(&["destroy", &name]);
            let _ = self.virsh_out(&["undefine", &name]);
            if let Some(pid) = pid {
                if poll(Duration::from_secs(5), || {
                    self.qemu_pid(&name).is_none().then_some(())
                })
                .is_none()
                {
                    eprintln!("QEMU {pid} outlived virsh destroy; killing it");
                    // SAFETY: kill() on the QEMU of our own libvirtd, whose
                    // command line names our domain (checked just above).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        self.proc = None;
    }
}

// ---- the test body -----------------------------------------------------------

fn attach_vm(sw: &mut dyn Switch, g: &Guest) {
    let t0 = Instant::now();
    sw.add_br(BR);

    // The host: a namespace on a veth whose other end is a VLAN 10 access
    // port of br0.
    let host = Netns::new();
    let (sw_end, host_end) = (uniq('v'), uniq('w'));
    run(&[
        "ip",
        "-n",
        &sw.ns().name,
        "link",
        "add",
        &sw_end,
        "type",
        "veth",
        "peer",
        "name",
        &host_end,
        "netns",
        &host.name,
    ]);
    run(&["ip", "-n", &sw.ns().name, "link", "set", &sw_end, "up"]);
    host.configure(&host_end, Some(HOST_CIDR));
    vsctl(sw, &["add-port", BR, &sw_end, &format!("tag={VLAN}")]);
    // And one in VLAN 20 with an address of the same subnet: it must not
    // reach the guest.
    let other = Netns::new();
    let (o_end, o_host) = (uniq('v'), uniq('w'));
    run(&[
        "ip",
        "-n",
        &sw.ns().name,
        "link",
        "add",
        &o_end,
        "type",
        "veth",
        "peer",
        "name",
        &o_host,
        "netns",
        &other.name,
    ]);
    run(&["ip", "-n", &sw.ns().name, "link", "set", &o_end, "up"]);
    other.configure(&o_host, Some(OTHER_CIDR));
    vsctl(sw, &["add-port", BR, &o_end, "tag=20"]);

    let mut lv = Libvirt::start(sw);
    let (tap, name) = lv.start_domain(g);

    // libvirt added the TAP with tag 10 and its external_ids.
    let uuid = lv.virsh(&["domuuid", &name]);
    let xml = lv.virsh(&["dumpxml", &name]);
    let iface_id = xml
        .split_once("interfaceid='")
        .and_then(|(_, r)| r.split_once('\''))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("no interfaceid in\n{xml}"));
    let cmds = lv.vsctl_commands();
    assert!(
        cmds.iter()
            .any(|c| c.contains(&format!("add-port {BR} {tap} tag={VLAN}"))),
        "libvirt did not run add-port {BR} {tap} tag={VLAN}: {cmds:#?}"
    );
    assert!(
        ports(sw).contains(&tap),
        "{tap} not on {BR}: {:?}",
        ports(sw)
    );
    assert_eq!(get(sw, "Port", &tap, "tag"), VLAN);
    for (k, v) in [
        ("attached-mac", MAC),
        ("iface-id", &iface_id),
        ("vm-id", &uuid),
        ("iface-status", "active"),
    ] {
        assert_eq!(
            get(sw, "Interface", &tap, &format!("external_ids:{k}")),
            v,
            "Interface {tap} external_ids:{k}"
        );
    }
    // libvirt gave the TAP br0's MTU (it reads the netdev br0).
    assert_eq!(mtu(sw.ns(), &tap), mtu(sw.ns(), BR), "MTU of {tap} vs {BR}");

    // The guest reaches the host in VLAN 10, and back.
    lv.wait_console("RVS-GUEST-PING-OK", Duration::from_secs(120));
    eprintln!(
        "guest pinged the host ({:.1?} since the start)",
        t0.elapsed()
    );
    let r = ping(&host, GUEST_IP, 3);
    assert!(r.received >= 1, "host cannot ping the guest: {}", r.output);
    let r = ping(&other, GUEST_IP, 2);
    assert_eq!(r.received, 0, "VLAN 20 reaches the guest: {}", r.output);
    sw.check_port(&tap);

    // A transient port, as `ovs-vsctl` users mark them (libvirt does not).
    let (tr, tr_peer) = (uniq('v'), uniq('w'));
    run(&[
        "ip",
        "-n",
        &sw.ns().name,
        "link",
        "add",
        &tr,
        "type",
        "veth",
        "peer",
        "name",
        &tr_peer,
    ]);
    for d in [&tr, &tr_peer] {
        run(&["ip", "-n", &sw.ns().name, "link", "set", d, "up"]);
    }
    vsctl(
        sw,
        &[
            "add-port",
            BR,
            &tr,
            "--",
            "set",
            "Port",
            &tr,
            "other_config:transient=true",
        ],
    );
    assert_eq!(get(sw, "Port", &tr, "other_config:transient"), "true");
    assert_eq!(get(sw, "Port", &tap, "other_config"), "{}");

    // A restart keeps libvirt's port and the host's, drops the transient
    // one, and the guest is reachable again.
    let t = Instant::now();
    sw.restart();
    let ok = poll(Duration::from_secs(20), || {
        let o = vsctl_out(sw, &["list-ports", BR]);
        o.status.success().then_some(())
    });
    assert!(
        ok.is_some(),
        "{}: no OVSDB after restart:\n{}",
        sw.what(),
        sw.logs()
    );
    let p = ports(sw);
    assert!(
        p.contains(&tap) && p.contains(&sw_end),
        "ports after restart: {p:?}"
    );
    assert!(
        !p.contains(&tr),
        "transient port {tr} survived the restart: {p:?}"
    );
    assert_eq!(get(sw, "Port", &tap, "tag"), VLAN);
    assert_eq!(get(sw, "Interface", &tap, "external_ids:attached-mac"), MAC);
    let back = poll(Duration::from_secs(30), || {
        (ping(&host, GUEST_IP, 1).received == 1).then_some(())
    });
    assert!(
        back.is_some(),
        "{}: the guest is unreachable after the restart:\n{}",
        sw.what(),
        sw.logs()
    );
    eprintln!(
        "guest reachable again {:.1?} after the restart",
        t.elapsed()
    );
    sw.check_port(&tap);

    // libvirtd restarts and reconnects to the running guest; the port
    // stays.
    let n = lv.vsctl_commands().len();
    lv.restart();
    assert_eq!(lv.virsh(&["domstate", &name]), "running");
    let r = ping(&host, GUEST_IP, 3);
    assert!(r.received >= 1, "after a libvirtd restart: {}", r.output);
    assert!(ports(sw).contains(&tap), "{:?}", ports(sw));
    let again = lv.vsctl_commands()[n..].to_vec();
    eprintln!("ovs-vsctl commands of libvirtd's reconnect: {again:?}");

    // virsh destroy removes the port.
    lv.virsh(&["destroy", &name]);
    let gone = poll(Duration::from_secs(10), || {
        (!ports(sw).contains(&tap)).then_some(())
    });
    assert!(
        gone.is_some(),
        "{tap} still on {BR} after destroy: {:?}",
        ports(sw)
    );
    assert!(ports(sw).contains(&sw_end), "{:?}", ports(sw));

    let cmds = lv.vsctl_commands();
    eprintln!("ovs-vsctl commands libvirt ran:");
    for c in &cmds {
        eprintln!("  {c}");
    }
    assert!(
        cmds.iter().any(|c| c.contains(&format!("del-port {tap}"))),
        "libvirt did not run del-port {tap}: {cmds:#?}"
    );
    eprintln!("{}: done in {:.1?}", sw.what(), t0.elapsed());
}

fn prerequisites() -> Option<Guest> {
    if !require_root() || !have_ovs() || !have_libvirt() {
        return None;
    }
    guest()
}

/// rvsd's OVSDB endpoint serves libvirt's `ovs-vsctl`.
#[test]
fn libvirt_attaches_vm_to_rvs() {
    let Some(g) = prerequisites() else { return };
    let mut sw = Rvs::start();
    attach_vm(&mut sw, &g);
}

/// The same against the real Open vSwitch: the reference that proves the
/// libvirt, QEMU and guest side.
#[test]
fn libvirt_attaches_vm_to_ovs() {
    let Some(g) = prerequisites() else { return };
    let mut sw = RealOvs(Ovs::start());
    attach_vm(&mut sw, &g);
}
