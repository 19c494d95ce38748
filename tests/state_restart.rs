//! Restart: the state survives SIGTERM and SIGKILL, crashes in the middle
//! of a stream of changes, corrupt state files, and system netdevs that
//! vanish while rvsd is down.
//!
//! Traffic is checked with namespaces on both port kinds: switch-owned
//! TAPs (re-created by rvsd on restart, so the test moves the new TAPs
//! back into their namespaces) and `system` ports on veth ends (which
//! survive the restart untouched).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const TRUNK_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 5);

/// A bridge with VLAN ports of both kinds, knobs and flows:
/// - h1: TAP, access VLAN 10, 10.9.0.1
/// - h2: veth (system), access VLAN 10, 10.9.0.2
/// - h3: veth (system), access VLAN 10, 10.9.0.3 — its IP traffic is
///   dropped by a flow (cookie, idle and hard timeouts)
/// - h4: TAP, access VLAN 20, 10.9.0.4
/// - trunk: veth (system), trunk of 10 and 20, played by a raw socket
struct Topo {
    br: String,
    h1: Host,
    h2: Host,
    h3: Host,
    h4: Host,
    trunk: Host,
}

const FLOWS: &[&str] = &[
    "cookie=0x10,priority=100,idle_timeout=3000,hard_timeout=3600,ip,nw_src=10.9.0.3,actions=drop",
    "cookie=0x1234,priority=200,ip,nw_dst=10.9.0.99,actions=drop",
    "table=1,cookie=0x99,priority=5,dl_type=0x88cc,actions=drop",
    "priority=50,dl_type=0x88cc,actions=resubmit(,1)",
];

fn topo(d: &Rvsd) -> Topo {
    let br = d.add_br();
    d.ok(&[
        "set",
        "bridge",
        &br,
        "mac-aging-time=77",
        "mac-table-size=1234",
    ]);
    let h1 = tap_host(d, &br, &["tag=10"], Some("10.9.0.1/24"));
    let h2 = veth_host(d, &br, &["tag=10"], Some("10.9.0.2/24"));
    let h3 = veth_host(d, &br, &["tag=10"], Some("10.9.0.3/24"));
    let h4 = tap_host(d, &br, &["tag=20"], Some("10.9.0.4/24"));
    let trunk = veth_host(d, &br, &["vlan_mode=trunk", "trunks=10,20"], None);
    for f in FLOWS {
        d.ok(&["add-flow", &br, f]);
    }
    Topo {
        br,
        h1,
        h2,
        h3,
        h4,
        trunk,
    }
}

/// Forwarding, VLANs and flows work as configured.
fn check_traffic(t: &Topo) {
    // VLAN 10 between a TAP and a system port, both directions.
    t.h1.assert_ping(t.h2.ip());
    t.h2.assert_ping(t.h1.ip());
    // The flow drops h3's IP traffic.
    t.h3.assert_no_ping(t.h1.ip());
    // VLAN 20 is apart from VLAN 10.
    t.h4.assert_no_ping(t.h1.ip());
    // The trunk reaches both VLANs, tagged.
    let raw = t.trunk.raw();
    let (mac1, vid) = raw
        .arp(Some(10), TRUNK_IP, ip4(t.h1.ip()))
        .expect("ARP reply from h1 over the trunk");
    assert_eq!((mac_str(&mac1), vid), (t.h1.mac.clone(), Some(10)));
    let (mac4, vid) = raw
        .arp(Some(20), TRUNK_IP, ip4(t.h4.ip()))
        .expect("ARP reply from h4 over the trunk");
    assert_eq!((mac_str(&mac4), vid), (t.h4.mac.clone(), Some(20)));
    assert!(
        raw.arp(Some(20), TRUNK_IP, ip4(t.h1.ip())).is_none(),
        "h1 answered in VLAN 20"
    );
}

/// What must be identical across a restart.
fn snapshot(d: &Rvsd, br: &str) -> (String, String, String) {
    let show = d.json(&["show"]);
    let mut ports: Vec<String> = show["bridges"][0]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            format!(
                "{} {} {} {} {} {}",
                p["name"], p["ofport"], p["type"], p["tag"], p["trunks"], p["vlan_mode"]
            )
        })
        .collect();
    ports.sort();
    (
        d.ok(&["export"]),
        d.ok(&["dump-flows", br, "--no-stats"]),
        ports.join("\n"),
    )
}

fn restart_keeps_everything(kill9: bool) {
    let mut d = Rvsd::start();
    let t = topo(&d);
    check_traffic(&t);
    let before = snapshot(&d, &t.br);
    assert!(before.0.contains("mac_aging_time = 77"), "{}", before.0);
    assert!(before
        .1
        .contains("cookie=0x10, idle_timeout=3000, hard_timeout=3600"));

    if kill9 {
        d.kill9();
    } else {
        d.stop();
    }
    // The TAPs went away with rvsd; the veth ends stayed.
    assert!(!netdev_exists(&t.br));
    assert!(
        t.h1.ns
            .exec_quiet(&["ip", "link", "show", &t.h1.dev])
            .status
            .code()
            != Some(0)
    );
    assert!(netdev_exists(&t.h2.port));
    d.restart();
    // Every port is back up; the TAPs are new devices in the root
    // namespace again.
    for h in [&t.h1, &t.h2, &t.h3, &t.h4, &t.trunk] {
        let p = d.show_port(&t.br, &h.port);
        assert!(
            p.up,
            "{} is down after restart: {:?}",
            h.port, p.down_reason
        );
    }
    disable_ipv6_root(&t.br);
    t.h1.retake_tap(Some("10.9.0.1/24"));
    t.h4.retake_tap(Some("10.9.0.4/24"));
    let after = snapshot(&d, &t.br);
    assert_eq!(before.0, after.0, "export differs after restart");
    assert_eq!(before.1, after.1, "dump-flows differs after restart");
    assert_eq!(before.2, after.2, "ports differ after restart");
    check_traffic(&t);
    // The knobs are in force, not only printed.
    let b = &d.json(&["show"])["bridges"][0];
    assert_eq!(b["mac_aging_time"], 77);
    assert_eq!(b["mac_table_size"], 1234);
    // Flow counters are not state, but the flows count again.
    let f = d.flow(
        &t.br,
        "cookie=0x10, idle_timeout=3000, hard_timeout=3600, priority=100,ip,nw_src=10.9.0.3 actions=drop",
    );
    assert!(f.n_packets > 0, "{f:?}");
}

#[test]
fn restart_after_sigterm_restores_state_and_traffic() {
    if !require_root() {
        return;
    }
    restart_keeps_everything(false);
}

#[test]
fn restart_after_sigkill_restores_state_and_traffic() {
    if !require_root() {
        return;
    }
    restart_keeps_everything(true);
}

const N_FLOWS: usize = 1000;

fn flow_text(i: usize) -> String {
    format!(
        "priority={},ip,nw_dst=10.{}.{}.1,actions=drop",
        i + 1,
        i / 256,
        i % 256
    )
}

fn dumped_text(i: usize) -> String {
    format!(
        "priority={},ip,nw_dst=10.{}.{}.1 actions=drop",
        i + 1,
        i / 256,
        i % 256
    )
}

#[test]
fn crash_during_add_flow_stream_keeps_a_prefix() {
    if !require_root() {
        return;
    }
    let mut next = rng();
    let mut d = Rvsd::start();
    let br = d.add_br();
    for round in 0..3 {
        // Start from no flows but NORMAL.
        d.ok(&["del-flows", &br]);
        d.ok(&["add-flow", &br, "priority=0,actions=NORMAL"]);
        let kill_after = 1 + (next() as usize) % (N_FLOWS - 2);
        let delay_us = next() % 3000;
        let acked = Arc::new(AtomicUsize::new(0));
        let sender = {
            let acked = acked.clone();
            let mut c = d.conn();
            let br = br.clone();
            std::thread::spawn(move || {
                for i in 0..N_FLOWS {
                    let req = json!({"type": "add_flows", "bridge": br, "text": flow_text(i)});
                    if c.send_raw(format!("{req}\n").as_bytes()).is_err() {
                        return;
                    }
                    match c.recv() {
                        Some(v) => {
                            assert!(resp_ok(&v), "add-flow {i}: {v}");
                            acked.store(i + 1, Ordering::SeqCst);
                        }
                        None => return,
                    }
                }
            })
        };
        let end = Instant::now() + Duration::from_secs(120);
        while acked.load(Ordering::SeqCst) < kill_after {
            assert!(Instant::now() < end, "stream too slow");
            assert!(!sender.is_finished(), "sender stopped early");
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_micros(delay_us));
        d.kill9();
        sender.join().expect("sender thread");
        let n_acked = acked.load(Ordering::SeqCst);
        assert!(
            n_acked < N_FLOWS,
            "round {round}: the stream ended before the kill"
        );
        d.restart();
        let flows: Vec<String> = d
            .flows(&br)
            .into_iter()
            .map(|f| f.flow)
            .filter(|f| f != "priority=0 actions=NORMAL")
            .collect();
        let n = flows.len();
        eprintln!(
            "round {round}: killed after {kill_after}+{delay_us}us; {n_acked} acknowledged, {n} restored"
        );
        assert!(
            n == n_acked || n == n_acked + 1,
            "round {round}: {n_acked} flows acknowledged, {n} restored"
        );
        // Exactly the first n flows of the sequence (dump order is by
        // priority, highest first).
        let want: Vec<String> = (0..n).rev().map(dumped_text).collect();
        assert_eq!(flows, want, "round {round}: not a prefix of what was sent");
        // The state file is whole and the daemon keeps saving.
        d.ok(&["add-flow", &br, "priority=5000,arp,actions=NORMAL"]);
    }
}

/// Writes `content` as the state file of a stopped daemon, runs rvsd on it
/// and returns its stderr after checking that it refused to start and left
/// the file alone.
fn refused(d: &Rvsd, content: &[u8]) -> String {
    std::fs::write(d.state_file(), content).expect("write state");
    let (st, err) = d.run_once(Duration::from_secs(10));
    assert!(!st.success(), "rvsd started on a bad state file: {err}");
    assert_eq!(st.code(), Some(1), "{err}");
    let path = d.state_file().display().to_string();
    assert!(err.contains(&path), "stderr does not name {path}: {err}");
    assert_eq!(
        std::fs::read(d.state_file()).expect("state file kept"),
        content,
        "the state file was changed"
    );
    assert!(!d.socket.exists(), "a socket was left behind");
    eprintln!("bad state {:?} -> {err}", String::from_utf8_lossy(content));
    err
}

#[test]
fn corrupt_or_newer_state_file_refuses_to_start() {
    if !require_root() {
        return;
    }
    let mut d = Rvsd::start();
    let br = d.add_br();
    let good = d.ok(&["export"]);
    d.stop();
    let saved = std::fs::read_to_string(d.state_file()).expect("state");
    assert!(saved.contains(&br) && saved.contains("format_version = 1"));

    // TOML syntax error: named with its line.
    let e = refused(&d, b"format_version = 1\n[[bridge]\nname = \"x\"\n");
    assert!(e.contains("line 2"), "{e}");
    assert!(e.contains("left untouched"), "{e}");
    // Cut off in the middle of a string.
    let cut = &saved.as_bytes()[..saved.len() / 2];
    let cut_text = format!("{}\"unterminated", String::from_utf8_lossy(cut));
    let e = refused(&d, cut_text.as_bytes());
    assert!(e.contains("line"), "{e}");
    // Not text at all.
    let e = refused(&d, &[0xff, 0xfe, 0x00, 0x13, 0x37]);
    assert!(e.contains("not UTF-8"), "{e}");
    // An empty file (truncated to nothing).
    let e = refused(&d, b"");
    assert!(e.contains("missing format_version"), "{e}");
    // Written by a newer rvs.
    let newer = saved.replace("format_version = 1", "format_version = 2");
    let e = refused(&d, newer.as_bytes());
    assert!(
        e.contains("newer rvs") && e.contains("format_version 2"),
        "{e}"
    );
    // A key this version does not know.
    let e = refused(&d, format!("{saved}\nfuture_knob = true\n").as_bytes());
    assert!(e.contains("future_knob"), "{e}");
    // Valid TOML but not a valid switch: a VLAN id out of range. The
    // first bridge is created and must be removed again.
    let bad = format!(
        "format_version = 1\n[[bridge]]\nname = \"{br}\"\n[[bridge]]\nname = \"{}\"\n[[bridge.port]]\nname = \"{}\"\ntag = 5000\n",
        uniq('r'),
        uniq('t')
    );
    let e = refused(&d, bad.as_bytes());
    assert!(e.contains("5000") || e.contains("tag"), "{e}");
    assert!(!netdev_exists(&br), "{br} was left behind");

    // Putting the good file back: it starts and holds what it held.
    std::fs::write(d.state_file(), saved.as_bytes()).expect("restore");
    d.restart();
    assert_eq!(d.ok(&["export"]), good);
}

#[test]
fn missing_system_netdev_at_restart_is_attached_when_it_appears() {
    if !require_root() {
        return;
    }
    let mut d = Rvsd::start();
    let br = d.add_br();
    let h1 = veth_host(&d, &br, &["tag=10"], Some("10.9.1.1/24"));
    let h2 = veth_host(&d, &br, &["tag=10"], Some("10.9.1.2/24"));
    h1.assert_ping(h2.ip());
    let export = d.ok(&["export"]);
    d.stop();
    let veth = h2.veth.as_ref().expect("veth");
    veth.delete();
    d.restart();
    // Still configured, down, with a reason.
    let p = d.show_port(&br, &h2.port);
    assert!(!p.up, "{p:?}");
    let reason = p.down_reason.clone().unwrap_or_default();
    assert!(reason.contains("not found"), "{reason}");
    let table = d.ok(&["show"]);
    assert!(
        table.contains(&format!(
            "Port {} (ofport 2, system, down: netdev {} not found",
            h2.port, h2.port
        )),
        "{table}"
    );
    assert_eq!(
        d.ok(&["export"]),
        export,
        "a down port must stay in the state"
    );
    h1.assert_no_ping(h2.ip());
    // The netdev comes back: attached within a few seconds.
    veth.recreate(&h2.ns);
    // Same MAC as before, so h1's ARP cache stays right.
    run(&[
        "ip",
        "-n",
        &h2.ns.name,
        "link",
        "set",
        &veth.peer,
        "address",
        &h2.mac,
    ]);
    h2.ns.configure(&veth.peer, Some("10.9.1.2/24"));
    let up = poll(Duration::from_secs(5), || {
        d.show_port(&br, &h2.port).up.then_some(())
    });
    assert!(up.is_some(), "{:?}", d.show_port(&br, &h2.port));
    h1.assert_ping(h2.ip());
    h2.assert_ping(h1.ip());
    assert_eq!(d.ok(&["export"]), export);
}
