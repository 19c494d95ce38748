//! Policing through rvs (`ingress_policing_*`, `egress_rate`): two or
//! three namespace hosts on TAP ports, iperf3 between them for 3 s, the
//! rate seen at the receiver compared with the configured one.
//!
//! Rates are L2 rates (what the policer counts: Ethernet header to end of
//! payload): a UDP datagram of `LEN` payload bytes is a frame of `LEN +
//! 42`. The bounds are generous (±15 %) because the machine is shared;
//! `benches/qos.sh` reports the precise numbers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

/// UDP payload per datagram.
const LEN: u64 = 1400;
/// UDP/IPv4/Ethernet headers.
const HDRS: u64 = 42;
/// Seconds of traffic per run.
const SECS: &str = "3";

/// Runs an iperf3 client in `cli` toward `srv` on `port` with `extra`
/// arguments (a server must be listening); its JSON report.
fn client(cli: &Host, srv: &Host, port: u16, extra: &[&str]) -> serde_json::Value {
    let port = port.to_string();
    let mut args = vec![
        "timeout",
        "15",
        "iperf3",
        "-c",
        srv.ip(),
        "-p",
        &port,
        "-t",
        SECS,
        "-J",
    ];
    args.extend_from_slice(extra);
    let o = cli.ns.exec_quiet(&args);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert!(
        o.status.success() && v["end"].is_object(),
        "iperf3 {extra:?} failed: {} {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    v
}

/// iperf3 from `cli` to `srv` (server started, client run, server
/// reaped); the client's report.
fn iperf(cli: &Host, srv: &Host, port: u16, extra: &[&str]) -> serde_json::Value {
    cli.assert_ping(srv.ip());
    let mut s = iperf3_server(srv, port);
    std::thread::sleep(Duration::from_millis(300));
    let v = client(cli, srv, port, extra);
    let _ = s.kill();
    let _ = s.wait();
    v
}

/// The L2 rate (bit/s) a UDP run delivered: datagrams that arrived, as
/// frames, over the run.
fn udp_delivered(v: &serde_json::Value) -> f64 {
    let s = &v["end"]["sum"];
    let pkts = s["packets"].as_u64().expect("packets");
    let lost = s["lost_packets"].as_u64().expect("lost_packets");
    let secs = s["seconds"].as_f64().expect("seconds");
    ((pkts - lost) * (LEN + HDRS) * 8) as f64 / secs
}

fn policed(d: &Rvsd, br: &str, port: &str, dir: &str) -> u64 {
    let p = d.port_stats(br, port);
    let m = if dir == "rx" {
        &p.rx_dropped
    } else {
        &p.tx_dropped
    };
    m.get("policed").copied().unwrap_or(0)
}

fn assert_near(what: &str, got: f64, want: f64, tol: f64) {
    let err = (got - want) / want;
    eprintln!(
        "{what}: {:.2} Mbit/s for {:.2} configured ({:+.1} %)",
        got / 1e6,
        want / 1e6,
        err * 100.0
    );
    assert!(
        err.abs() <= tol,
        "{what}: {:.2} Mbit/s delivered, configured {:.2} (±{:.0} %)",
        got / 1e6,
        want / 1e6,
        tol * 100.0
    );
}

/// UDP at twice `kbps` into a port policed at `kbps` (burst 50 ms of
/// traffic, so the initial burst barely counts over 3 s).
fn udp_ingress(kbps: u32, subnet: u8) {
    let d = Rvsd::start();
    let br = d.add_br();
    let rate = format!("ingress_policing_rate={kbps}");
    let burst = format!("ingress_policing_burst={}", kbps / 20);
    let a = tap_host(
        &d,
        &br,
        &[&rate, &burst],
        Some(&format!("10.{subnet}.0.1/24")),
    );
    let b = tap_host(&d, &br, &[], Some(&format!("10.{subnet}.0.2/24")));
    // Offered: 2x the L2 rate, as UDP payload.
    let offered = u64::from(kbps) * 2000 * LEN / (LEN + HDRS);
    let v = iperf(
        &a,
        &b,
        5201,
        &["-u", "-l", &LEN.to_string(), "-b", &offered.to_string()],
    );
    let got = udp_delivered(&v);
    assert_near(
        &format!("udp ingress {kbps} kbit/s"),
        got,
        f64::from(kbps) * 1000.0,
        0.15,
    );
    assert!(policed(&d, &br, &a.port, "rx") > 0, "policed counter moved");
}

#[test]
fn udp_ingress_policing_10_mbit() {
    if !require_root() {
        return;
    }
    udp_ingress(10_000, 61);
}

#[test]
fn udp_ingress_policing_100_mbit() {
    if !require_root() {
        return;
    }
    udp_ingress(100_000, 62);
}

/// TCP through a 100 Mbit/s ingress policer with the default burst
/// (8000 kbit): the sender's TSO super-frames count as their segments
/// (one that does not fit whole is cut to the segments that do).
///
/// TCP gets 42–48 % of the rate here (goodput, 3 s): namespaces have
/// RTTs of tens of µs, so every window leaves in one line-rate burst and
/// each loss costs a loss-probe timeout (≥ 10 ms). With a 16,000 kbit
/// burst it gets ~80 %, with 40,000 kbit the full rate. The bound is a
/// regression guard, not the 85 % target (see README, QoS).
#[test]
fn tcp_through_100_mbit_ingress_policer() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let a = tap_host(
        &d,
        &br,
        &["ingress_policing_rate=100000"],
        Some("10.63.0.1/24"),
    );
    let b = tap_host(&d, &br, &[], Some("10.63.0.2/24"));
    let v = iperf(&a, &b, 5201, &[]);
    let goodput = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("sum_received");
    for i in v["intervals"].as_array().into_iter().flatten() {
        eprintln!(
            "  sender {:.1} Mbit/s, {} retransmits",
            i["sum"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e6,
            i["sum"]["retransmits"]
        );
    }
    // Goodput is TCP payload: 1448 of each 1514-byte frame at most.
    let l2 = goodput * 1514.0 / 1448.0;
    eprintln!(
        "tcp through 100 Mbit/s: {:.1} Mbit/s goodput ({:.1} L2)",
        goodput / 1e6,
        l2 / 1e6
    );
    assert!(l2 >= 30e6, "TCP reached {:.1} Mbit/s (L2)", l2 / 1e6);
    assert!(l2 <= 115e6, "TCP exceeded the rate: {:.1} Mbit/s", l2 / 1e6);
    assert!(policed(&d, &br, &a.port, "rx") > 0, "policed counter moved");
}

/// Two senders at 50 Mbit/s each toward a port whose egress is policed
/// at 50 Mbit/s: together they get 50.
#[test]
fn egress_policer_with_two_senders() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let a = tap_host(&d, &br, &[], Some("10.64.0.1/24"));
    let b = tap_host(&d, &br, &[], Some("10.64.0.2/24"));
    let c = tap_host(
        &d,
        &br,
        &["egress_rate=50000", "egress_burst=2500"],
        Some("10.64.0.3/24"),
    );
    a.assert_ping(c.ip());
    b.assert_ping(c.ip());
    let offered = (50_000_000 * LEN / (LEN + HDRS)).to_string();
    let args = ["-u", "-l", "1400", "-b", &offered];
    let mut s1 = iperf3_server(&c, 5201);
    let mut s2 = iperf3_server(&c, 5202);
    std::thread::sleep(Duration::from_millis(300));
    let (va, vb) = std::thread::scope(|s| {
        let ta = s.spawn(|| client(&a, &c, 5201, &args));
        let tb = s.spawn(|| client(&b, &c, 5202, &args));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    for s in [&mut s1, &mut s2] {
        let _ = s.kill();
        let _ = s.wait();
    }
    let total = udp_delivered(&va) + udp_delivered(&vb);
    assert_near("egress 50 Mbit/s, two senders", total, 50e6, 0.15);
    assert!(policed(&d, &br, &c.port, "tx") > 0, "policed counter moved");
}

/// Settings: shown, exported, persisted, changed live (the port and its
/// TAP stay), reset, and bad values rejected naming the key.
#[test]
fn policing_settings_show_persist_and_reject() {
    if !require_root() {
        return;
    }
    let mut d = Rvsd::start();
    let br = d.add_br();
    let a = tap_host(
        &d,
        &br,
        &["ingress_policing_rate=10000", "egress_rate=20000"],
        Some("10.65.0.1/24"),
    );
    let b = tap_host(&d, &br, &[], Some("10.65.0.2/24"));
    let p = d.show_port(&br, &a.port);
    assert_eq!(p.qos.get("ingress_policing_rate"), Some(&10000));
    assert_eq!(p.qos.get("egress_rate"), Some(&20000));
    assert_eq!(p.qos.len(), 2, "{:?}", p.qos);
    let text = d.ok(&["show"]);
    assert!(text.contains("ingress_policing_rate: 10000"), "{text}");
    assert!(!d
        .ok(&["show"])
        .contains(&format!("{}\n        ingress", b.port)));

    // Live change: same port number, the TAP stays in its namespace.
    let ofport = p.ofport;
    d.ok(&[
        "set",
        "port",
        &a.port,
        "ingress_policing_rate=100000",
        "ingress_policing_burst=1000",
        "ingress_policing_kpkts_rate=10",
        "ingress_policing_kpkts_burst=2",
        "egress_rate=0",
        "egress_burst=500",
    ]);
    let p = d.show_port(&br, &a.port);
    assert_eq!(p.ofport, ofport);
    let want: Vec<(&str, u32)> = vec![
        ("egress_burst", 500),
        ("ingress_policing_burst", 1000),
        ("ingress_policing_kpkts_burst", 2),
        ("ingress_policing_kpkts_rate", 10),
        ("ingress_policing_rate", 100000),
    ];
    let got: Vec<(&str, u32)> = p.qos.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(got, want);
    a.assert_ping(b.ip());

    let export = d.ok(&["export"]);
    assert!(
        export.contains("ingress_policing_rate = 100000"),
        "{export}"
    );
    assert!(
        export.contains("ingress_policing_kpkts_burst = 2"),
        "{export}"
    );
    assert!(!export.contains("egress_rate"), "{export}");

    for (arg, key) in [
        ("ingress_policing_rate=fast", "ingress_policing_rate"),
        ("ingress_policing_burst=-5", "ingress_policing_burst"),
        (
            "ingress_policing_kpkts_rate=1.5",
            "ingress_policing_kpkts_rate",
        ),
        ("egress_rate=99999999999", "egress_rate"),
    ] {
        let (code, err) = d.fails(&["set", "port", &a.port, arg]);
        assert_eq!(code, 1, "{arg}: {err}");
        assert!(err.contains(key), "{arg}: {err}");
    }
    let (_, err) = d.fails(&["add-port", &br, &uniq('t'), "egress_burst=x"]);
    assert!(err.contains("egress_burst=x"), "{err}");
    // A rejected request changed nothing.
    assert_eq!(d.show_port(&br, &a.port).qos.len(), 5);

    // Persisted across a restart.
    d.stop();
    d.restart();
    let p = d.show_port(&br, &a.port);
    assert_eq!(p.qos.get("ingress_policing_kpkts_rate"), Some(&10));
    assert_eq!(p.qos.get("egress_burst"), Some(&500));

    // apply: the TOML keys of the same names, diffed against the port.
    let toml = d.ok(&["export"]).replace(
        "ingress_policing_rate = 100000",
        "ingress_policing_rate = 5000",
    );
    let f = TempDir::new();
    let path = f.0.join("want.toml");
    std::fs::write(&path, toml).unwrap();
    d.ok(&["apply", path.to_str().unwrap()]);
    let p = d.show_port(&br, &a.port);
    assert_eq!(p.qos.get("ingress_policing_rate"), Some(&5000));
    assert_eq!(p.qos.get("ingress_policing_burst"), Some(&1000));

    // Reset to off.
    d.ok(&[
        "set",
        "port",
        &a.port,
        "ingress_policing_rate=0",
        "ingress_policing_burst=0",
        "ingress_policing_kpkts_rate=0",
        "ingress_policing_kpkts_burst=0",
        "egress_burst=0",
    ]);
    assert!(d.show_port(&br, &a.port).qos.is_empty());
}
