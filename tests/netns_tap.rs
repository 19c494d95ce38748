//! Two namespaces on switch-owned TAPs ping each other through rvs; the
//! port counters of `dump-ports` equal what the namespaces' kernels counted
//! on their side of each TAP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

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

#[test]
fn tap_ping_both_ways_and_counters() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let h1 = tap_host(&d, &br, &[], Some("10.1.0.1/24"));
    let h2 = tap_host(&d, &br, &[], Some("10.1.0.2/24"));
    let r = h1.ping(h2.ip(), 5);
    assert_eq!(r.received, 5, "h1 -> h2: {}", r.output);
    let r = h2.ping(h1.ip(), 5);
    assert_eq!(r.received, 5, "h2 -> h1: {}", r.output);

    // Each side sent at least its 5 echo requests and 5 replies.
    let p1 = d.port_stats(&br, &h1.port);
    let p2 = d.port_stats(&br, &h2.port);
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
    assert_counters_mirror(&d, &br, &h1);
    assert_counters_mirror(&d, &br, &h2);
    // Once learned, unicast goes to the one port that has the address:
    // LOCAL saw only the flooded ARP requests, far fewer than the 20 ICMP
    // frames each host port received and sent.
    let local = d.port_stats(&br, &br);
    assert!(local.tx_packets < 10, "LOCAL {local:?} vs {p1:?}");
}

#[test]
fn tap_port_show_and_list() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let h1 = tap_host(&d, &br, &["tag=7"], None);
    let p = d.show_port(&br, &h1.port);
    assert_eq!(p.kind, "tap");
    assert_eq!(p.ofport, 1);
    assert_eq!(p.tag, Some(7));
    assert_eq!(p.vlan_mode, "access");
    assert!(p.up, "{p:?}");
    let ports = d.ok(&["list-ports", &br]);
    assert_eq!(ports.lines().collect::<Vec<_>>(), vec![h1.port.as_str()]);
    let local = d.show_port(&br, &br);
    assert_eq!(local.ofport, 65534);
}
