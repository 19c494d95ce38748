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
    assert_pings_and_counters(&d, &br, &h1, &h2);
    // Once learned, unicast goes to the one port that has the address:
    // LOCAL saw only the flooded ARP requests, far fewer than the 20 ICMP
    // frames each host port received and sent.
    let local = d.port_stats(&br, &br);
    assert!(local.tx_packets < 10, "LOCAL {local:?}");
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
