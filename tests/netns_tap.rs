//! Two namespaces on switch-owned TAPs ping each other through rvs; the
//! port counters of `dump-ports` equal what the namespaces' kernels counted
//! on their side of each TAP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

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
