//! OpenFlow 1.3 meters driven by the real `ovs-ofctl`: add-meter,
//! dump-meters, meter-stats, meter-features, del-meters, OpenFlow's
//! errors, and a `meter:1` flow policing iperf3 UDP between two TAP hosts
//! (the band's drop count must equal what iperf3 lost).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn ofctl(cmd: &str, target: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["10", "ovs-ofctl", "-O", "OpenFlow13", cmd, target])
        .args(extra)
        .output()
        .expect("run ovs-ofctl (install openvswitch-common)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ofctl_ok(cmd: &str, target: &str, extra: &[&str]) -> String {
    let (ok, text) = ofctl(cmd, target, extra);
    assert!(ok, "ovs-ofctl {cmd} {extra:?} failed: {text}");
    text
}

struct Topo {
    d: Rvsd,
    br: String,
    h: [Host; 2],
    target: String,
}

fn topo() -> Topo {
    let d = Rvsd::start();
    let br = d.add_br();
    let h = [1, 2].map(|i| tap_host(&d, &br, &[], Some(&format!("10.7.1.{i}/24"))));
    let port = free_port();
    d.ok(&["set-controller", &br, &format!("ptcp:{port}")]);
    let target = format!("tcp:127.0.0.1:{port}");
    let up = poll(Duration::from_secs(10), || {
        ofctl("show", &target, &[]).0.then_some(())
    });
    assert!(
        up.is_some(),
        "ptcp:{port} never answered:\n{}",
        d.log_text()
    );
    Topo { d, br, h, target }
}

/// The number after `key` in `text` (`packet_count:12`).
fn field(text: &str, key: &str) -> Vec<u64> {
    text.match_indices(key)
        .filter_map(|(i, _)| {
            let rest = &text[i + key.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect()
}

#[test]
fn ofctl_meter_config_features_errors() {
    if !require_root() || !have_ofctl() {
        return;
    }
    let t = topo();
    let tg = &t.target;
    ofctl_ok(
        "add-meter",
        tg,
        &["meter=1,kbps,burst,stats,bands=type=drop,rate=10000,burst_size=1000"],
    );
    ofctl_ok(
        "add-meter",
        tg,
        &["meter=2,pktps,bands=type=dscp_remark,rate=100,prec_level=1"],
    );
    let dump = ofctl_ok("dump-meters", tg, &[]);
    assert!(
        dump.contains("meter=1 kbps burst stats bands=\ntype=drop rate=10000 burst_size=1000"),
        "{dump}"
    );
    assert!(
        dump.contains("meter=2 pktps bands=\ntype=dscp_remark rate=100 prec_level=1"),
        "{dump}"
    );
    let feat = ofctl_ok("meter-features", tg, &[]);
    assert!(feat.contains("max_meter:65536"), "{feat}");
    assert!(
        feat.contains("drop") && feat.contains("dscp_remark"),
        "{feat}"
    );
    // Errors as OpenFlow names them.
    let (ok, e) = ofctl("add-meter", tg, &["meter=1,kbps,bands=type=drop,rate=5"]);
    assert!(!ok && e.contains("OFPMMFC_METER_EXISTS"), "{e}");
    let (ok, e) = ofctl("mod-meter", tg, &["meter=9,kbps,bands=type=drop,rate=5"]);
    assert!(!ok && e.contains("OFPMMFC_UNKNOWN_METER"), "{e}");
    let (ok, e) = ofctl("add-flow", tg, &["priority=5,actions=meter:7,output:2"]);
    assert!(!ok && e.contains("OFPMMFC_INVALID_METER"), "{e}");
    // A flow using meter 1 is counted, and goes with the meter.
    ofctl_ok("add-flow", tg, &["priority=5,ip,actions=meter:1,output:2"]);
    let flows = ofctl_ok("dump-flows", tg, &[]);
    assert!(flows.contains("actions=meter:1,output:2"), "{flows}");
    let st = ofctl_ok("meter-stats", tg, &["meter=1"]);
    assert!(st.contains("flow_count:1"), "{st}");
    ofctl_ok(
        "mod-meter",
        tg,
        &["meter=1,kbps,bands=type=drop,rate=20000"],
    );
    let dump = ofctl_ok("dump-meters", tg, &["meter=1"]);
    assert!(dump.contains("type=drop rate=20000"), "{dump}");
    ofctl_ok("del-meters", tg, &["meter=1"]);
    let flows = ofctl_ok("dump-flows", tg, &[]);
    assert!(!flows.contains("meter:1"), "{flows}");
    let dump = ofctl_ok("dump-meters", tg, &[]);
    assert!(
        !dump.contains("meter=1 ") && dump.contains("meter=2 "),
        "{dump}"
    );
    // Meters survive a restart (state file and journal).
    let Topo { mut d, h, .. } = t;
    d.stop();
    d.restart();
    let exported = d.ok(&["export"]);
    assert!(
        exported.contains("meter=2,pktps,bands=type=dscp_remark,rate=100,prec_level=1"),
        "{exported}"
    );
    drop(h);
}

/// iperf3 UDP at `mbps` from h0 to h1 for `secs`; returns the client's
/// JSON summary.
fn iperf_udp(cli: &Host, srv: &Host, mbps: u32, len: u32, secs: u32) -> serde_json::Value {
    cli.assert_ping(srv.ip());
    let port = 25000 + (std::process::id() % 20000) as u16;
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
        "-u",
        "-b",
        &format!("{mbps}M"),
        "-l",
        &len.to_string(),
        "-t",
        &secs.to_string(),
        "-J",
    ]);
    let _ = server.kill();
    let _ = server.wait();
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3: {e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn drop_band_polices_udp_to_its_rate() {
    if !require_root() || !have_ofctl() {
        return;
    }
    let t = topo();
    let tg = &t.target;
    let p0 = t.d.show_port(&t.br, &t.h[0].port).ofport;
    let p1 = t.d.show_port(&t.br, &t.h[1].port).ofport;
    ofctl_ok(
        "add-meter",
        tg,
        &["meter=1,kbps,burst,stats,bands=type=drop,rate=10000,burst_size=100"],
    );
    ofctl_ok(
        "add-flow",
        tg,
        &[&format!(
            "priority=10,udp,in_port={p0},actions=meter:1,output:{p1}"
        )],
    );
    let secs = 4;
    let v = iperf_udp(&t.h[0], &t.h[1], 20, 1400, secs);
    let sum = &v["end"]["sum"];
    let lost = sum["lost_packets"].as_u64().unwrap();
    let packets = sum["packets"].as_u64().unwrap();
    let st = ofctl_ok("meter-stats", tg, &["meter=1"]);
    let band_pkts = field(&st, "packet_count:");
    let in_pkts = field(&st, "packet_in_count:");
    // Delivered L2 rate: (packets - lost) frames of 1400 + 42 bytes.
    let got = (packets - lost) as f64 * 1442.0 * 8.0 / f64::from(secs);
    eprintln!("iperf3 sent {packets}, lost {lost}; meter: {st}; delivered {got:.0} bit/s");
    assert!(
        (got / 10e6 - 1.0).abs() < 0.15,
        "delivered {got} bit/s, not 10 Mbit/s ±15 %: {st}"
    );
    // iperf3's count leaves out datagrams sent after the test's last
    // interval, which the meter sees: within a few frames (10 on a
    // loaded machine, where iperf3's last interval ends late).
    let metered = in_pkts.first().copied().unwrap_or(0);
    assert!(
        metered.abs_diff(packets) <= 10,
        "metered {metered}, iperf3 sent {packets}: {st}"
    );
    // The band's count is what iperf3 lost, within a few frames: iperf3
    // counts loss from gaps in its sequence numbers, so drops after the
    // last datagram its server received (the tail of the run, and the
    // final datagram above) are not in its count.
    let dropped = band_pkts.first().copied().unwrap_or(0);
    assert!(
        dropped.abs_diff(lost) <= 10,
        "band dropped {dropped}, iperf3 lost {lost}: {st}"
    );
}

#[test]
fn rvsctl_meter_verbs() {
    if !require_root() {
        return;
    }
    let d = common::Rvsd::start();
    let br = d.add_br();
    d.ok(&[
        "add-meter",
        &br,
        "meter=1,kbps,burst,stats,bands=type=drop,rate=10000,burst_size=1000",
    ]);
    d.ok(&["add-meter", &br, "meter=2,pktps,bands=type=drop,rate=10000"]);
    // Same id twice: refused, nothing changed.
    let (code, err) = d.fails(&["add-meter", &br, "meter=1,kbps,bands=type=drop,rate=5"]);
    assert_ne!(code, 0);
    assert!(err.contains("add-meter"), "{err}");
    let dump = d.ok(&["dump-meters", &br]);
    assert!(
        dump.contains("meter=1") && dump.contains("rate=10000"),
        "{dump}"
    );
    assert!(dump.contains("meter=2") && dump.contains("pktps"), "{dump}");
    d.ok(&[
        "mod-meter",
        &br,
        "meter=1,kbps,bands=type=dscp_remark,rate=2000,prec_level=1",
    ]);
    let one = d.ok(&["dump-meters", &br, "meter=1"]);
    assert!(
        one.contains("dscp_remark") && !one.contains("meter=2"),
        "{one}"
    );
    d.ok(&["add-flow", &br, "priority=5,ip,actions=meter:1,NORMAL"]);
    let stats = d.ok(&["meter-stats", &br, "meter=1"]);
    assert!(stats.starts_with("meter:1 flow_count:1 "), "{stats}");
    let j = d.json(&["dump-meters", &br]);
    assert_eq!(j["meters"].as_array().map(Vec::len), Some(2), "{j}");
    // Meters persist (export carries them) and deleting one deletes its flows.
    assert!(d.ok(&["export"]).contains("meter=2"));
    d.ok(&["del-meters", &br, "meter=1"]);
    assert!(!d.ok(&["dump-flows", &br]).contains("meter:1"));
    let (code, err) = d.fails(&["dump-meters", &br, "meter=1"]);
    assert_ne!(code, 0);
    assert!(err.contains("no meter 1"), "{err}");
    d.ok(&["del-meters", &br]);
    assert_eq!(d.ok(&["dump-meters", &br]), "");
}

#[test]
fn pktps_band_polices_small_udp_to_its_packet_rate() {
    if !require_root() || !have_ofctl() {
        return;
    }
    let t = topo();
    let tg = &t.target;
    let p0 = t.d.show_port(&t.br, &t.h[0].port).ofport;
    let p1 = t.d.show_port(&t.br, &t.h[1].port).ofport;
    ofctl_ok(
        "add-meter",
        tg,
        &["meter=1,pktps,stats,bands=type=drop,rate=10000"],
    );
    ofctl_ok(
        "add-flow",
        tg,
        &[&format!(
            "priority=10,udp,in_port={p0},actions=meter:1,output:{p1}"
        )],
    );
    // 64-byte datagrams at 10 Mbit/s of payload: ~19.5 kpps offered,
    // twice the band's 10 kpps.
    let secs = 4;
    let v = iperf_udp(&t.h[0], &t.h[1], 10, 64, secs);
    let sum = &v["end"]["sum"];
    let lost = sum["lost_packets"].as_u64().unwrap();
    let packets = sum["packets"].as_u64().unwrap();
    let pps = (packets - lost) as f64 / f64::from(secs);
    let st = ofctl_ok("meter-stats", tg, &["meter=1"]);
    eprintln!("iperf3 sent {packets}, lost {lost}: {pps:.0} pps delivered; meter: {st}");
    assert!(
        packets as f64 / f64::from(secs) > 14_000.0,
        "iperf3 offered only {packets} datagrams in {secs} s: the machine is too busy to test the band"
    );
    assert!(
        (pps / 10_000.0 - 1.0).abs() < 0.15,
        "delivered {pps:.0} pps, not 10 kpps ±15 %: {st}"
    );
}

#[test]
fn dscp_remark_band_raises_drop_precedence() {
    if !require_root() || !have_ofctl() {
        return;
    }
    let t = topo();
    let tg = &t.target;
    let p0 = t.d.show_port(&t.br, &t.h[0].port).ofport;
    let p1 = t.d.show_port(&t.br, &t.h[1].port).ofport;
    ofctl_ok(
        "add-meter",
        tg,
        &["meter=2,kbps,bands=type=dscp_remark,rate=1000,prec_level=1"],
    );
    ofctl_ok(
        "add-flow",
        tg,
        &[&format!(
            "priority=10,icmp,in_port={p0},actions=meter:2,output:{p1}"
        )],
    );
    t.h[0].assert_ping(t.h[1].ip());
    // Echo requests arriving at h1, printed with their TOS byte.
    let cap = Command::new("ip")
        .args(["netns", "exec", &t.h[1].ns.name, "timeout", "15", "tcpdump"])
        .args(["-i", &t.h[1].dev, "-n", "-v", "-l", "-c", "300"])
        .args(["icmp[icmptype] == 8"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(700));
    // AF11 (DSCP 10, TOS 0x28), 1000-byte pings every 2 ms: ~4 Mbit/s
    // against the band's 1 Mbit/s.
    let _ = t.h[0].ns.exec_quiet(&[
        "ping",
        "-q",
        "-Q",
        "0x28",
        "-s",
        "1000",
        "-i",
        "0.002",
        "-c",
        "300",
        "-W",
        "1",
        t.h[1].ip(),
    ]);
    let out = cap.wait_with_output().expect("tcpdump output");
    let text = String::from_utf8_lossy(&out.stdout);
    let kept = text.matches("tos 0x28").count();
    let remarked = text.matches("tos 0x30").count();
    let st = ofctl_ok("meter-stats", tg, &["meter=2"]);
    eprintln!("AF11 kept {kept}, remarked to AF12 {remarked}; meter: {st}");
    assert!(kept > 0, "no AF11 frame came through unchanged:\n{text}");
    assert!(
        remarked > kept,
        "the band should remark most of ~4 Mbit/s against 1 Mbit/s: kept {kept}, remarked {remarked}\n{st}"
    );
    // The band counted exactly what it remarked (plus what tcpdump missed
    // before it started or after its -c).
    let band = field(&st, "packet_count:");
    assert!(
        band.first().copied().unwrap_or(0) >= remarked as u64,
        "band counts {band:?} < {remarked} remarked\n{st}"
    );
}

#[test]
fn apply_adds_changes_and_removes_meters() {
    if !require_root() {
        return;
    }
    let d = common::Rvsd::start();
    let br = d.add_br();
    let dir = TempDir::new();
    let f = dir.0.join("c.toml");
    let cfg = |meters: &[&str], flow: &str| {
        let mut t = format!("[[bridge]]\nname = \"{br}\"\n");
        for m in meters {
            t.push_str(&format!("[[bridge.meter]]\nmeter = \"{m}\"\n"));
        }
        t.push_str(&format!("[[bridge.flow]]\nflow = \"{flow}\"\n"));
        std::fs::write(&f, t).unwrap();
    };
    let file = f.to_str().unwrap();
    // A meter and the flow that uses it, in one apply.
    cfg(
        &["meter=3,kbps,bands=type=drop,rate=5000"],
        "priority=5,ip,actions=meter:3,NORMAL",
    );
    let out = d.ok(&["apply", file]);
    assert!(out.contains("meter=3"), "{out}");
    assert!(d.ok(&["dump-meters", &br]).contains("rate=5000"));
    assert!(d.ok(&["dump-flows", &br]).contains("meter:3"));
    // Applying the export changes nothing.
    let export = d.ok(&["export"]);
    std::fs::write(&f, &export).unwrap();
    let out = d.ok(&["apply", "--dry-run", file]);
    assert!(
        !out.contains("meter"),
        "export does not apply cleanly:\n{out}"
    );
    // A changed rate, then no meter at all (and a flow without it).
    cfg(
        &["meter=3,kbps,bands=type=drop,rate=7000"],
        "priority=5,ip,actions=meter:3,NORMAL",
    );
    d.ok(&["apply", file]);
    assert!(d.ok(&["dump-meters", &br]).contains("rate=7000"));
    cfg(&[], "priority=0,actions=NORMAL");
    d.ok(&["apply", file]);
    assert_eq!(d.ok(&["dump-meters", &br]), "");
    assert!(!d.ok(&["dump-flows", &br]).contains("meter:3"));
}
