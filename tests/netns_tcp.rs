//! TCP through rvs between every pair of port kinds, with offloads on: a
//! fixed amount of data (`iperf3 -n`, bounded by a timeout, never timed)
//! must arrive whole. The kernel hands rvs 64 KiB GSO frames with partial
//! checksums; rvs must pass them on intact (virtio-net header) or segment
//! them, including across a VLAN push and pop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const BYTES: u64 = 64 * 1024 * 1024;

/// Runs an iperf3 server in `srv` and a client in `cli` sending `BYTES`;
/// returns (bytes sent, bytes the server reported received). The client
/// only succeeds once the server acknowledged the end of the test, i.e. the
/// TCP stream was delivered; the server's byte count is a snapshot taken
/// at that moment and may trail the last few segments.
fn tcp_transfer(cli: &Host, srv: &Host) -> (u64, u64) {
    // Both directions need ARP first.
    cli.assert_ping(srv.ip());
    let port = 20000 + (std::process::id() % 20000) as u16;
    let mut last = String::new();
    // A few attempts, each with a fresh one-shot server: the client may
    // race the server's listen, and a failed attempt ends the server.
    for _ in 0..3 {
        let mut server = Command::new("ip")
            .args(["netns", "exec", &srv.ns.name, "iperf3", "-s", "-1", "-B"])
            .arg(srv.ip())
            .args(["-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("iperf3 server (apt-get install iperf3)");
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
            &BYTES.to_string(),
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

fn check(cli: &Host, srv: &Host, what: &str) {
    let (sent, got) = tcp_transfer(cli, srv);
    assert!(sent >= BYTES, "{what}: client sent {sent} of {BYTES} bytes");
    assert!(
        got >= BYTES / 10 * 9,
        "{what}: server received {got} of {BYTES} bytes"
    );
}

#[test]
fn tcp_tap_to_tap() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let a = tap_host(&d, &br, &[], Some("10.31.0.1/24"));
    let b = tap_host(&d, &br, &[], Some("10.31.0.2/24"));
    check(&a, &b, "tap -> tap");
}

#[test]
fn tcp_tap_to_system_and_back() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let a = tap_host(&d, &br, &[], Some("10.32.0.1/24"));
    let b = veth_host(&d, &br, &[], Some("10.32.0.2/24"));
    check(&a, &b, "tap -> system");
    check(&b, &a, "system -> tap");
}

#[test]
fn tcp_system_to_system() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let a = veth_host(&d, &br, &[], Some("10.33.0.1/24"));
    let b = veth_host(&d, &br, &[], Some("10.33.0.2/24"));
    check(&a, &b, "system -> system");
}

/// h1 (access VLAN 10, tap) on br1, h2 (access VLAN 10, system) on br2; the
/// bridges are joined by a patch pair that trunks VLAN 10, so every frame is
/// tagged on the way out of br1 and untagged on the way out of br2.
#[test]
fn tcp_across_vlan_push_and_pop() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br1 = d.add_br();
    let br2 = d.add_br();
    let h1 = tap_host(&d, &br1, &["tag=10"], Some("10.34.0.1/24"));
    let h2 = veth_host(&d, &br2, &["tag=10"], Some("10.34.0.2/24"));
    let (p1, p2) = (uniq('p'), uniq('p'));
    d.ok(&[
        "add-port",
        &br1,
        &p1,
        "type=patch",
        &format!("peer={p2}"),
        "trunks=10",
    ]);
    d.ok(&[
        "add-port",
        &br2,
        &p2,
        "type=patch",
        &format!("peer={p1}"),
        "trunks=10",
    ]);
    check(&h1, &h2, "access 10 -> trunk -> access 10");
    check(&h2, &h1, "and back");
    let t = d.json(&[
        "trace",
        &br1,
        &format!("in_port={},dl_dst=ff:ff:ff:ff:ff:ff", 1),
    ]);
    let tagged = t["trace"]["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .any(|o| o["name"] == p1.as_str() && o["vlan"] == 10);
    assert!(tagged, "br1 sends VLAN 10 tagged on the patch trunk: {t}");
}
