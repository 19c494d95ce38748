//! TCP through rvs between every pair of port kinds, with offloads on: a
//! fixed amount of data (`iperf3 -n`, bounded by a timeout, never timed)
//! must arrive whole. The kernel hands rvs 64 KiB GSO frames with partial
//! checksums; rvs must pass them on intact (virtio-net header) or segment
//! them, including across a VLAN push and pop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

const BYTES: u64 = 64 * 1024 * 1024;

fn check(cli: &Host, srv: &Host, what: &str) {
    let (sent, got) = tcp_transfer(cli, srv, BYTES);
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
