//! Two bridges joined by a patch-port pair carry traffic between their
//! hosts, with VLANs kept across the pair.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[test]
fn patch_pair_joins_two_bridges() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br1 = d.add_br();
    let br2 = d.add_br();
    let h1 = tap_host(&d, &br1, &[], Some("10.8.0.1/24"));
    let h2 = veth_host(&d, &br2, &[], Some("10.8.0.2/24"));
    // Not joined yet.
    h1.assert_no_ping(h2.ip());
    let (p1, p2) = (uniq('p'), uniq('p'));
    d.ok(&["add-port", &br1, &p1, "type=patch", &format!("peer={p2}")]);
    // One side alone is down: its peer does not exist yet.
    let i = d.show_port(&br1, &p1);
    assert_eq!((i.kind.as_str(), i.up), ("patch", false), "{i:?}");
    d.ok(&["add-port", &br2, &p2, "type=patch", &format!("peer={p1}")]);
    for (b, p, peer) in [(&br1, &p1, &p2), (&br2, &p2, &p1)] {
        let i = d.show_port(b, p);
        assert!(i.up, "{i:?}");
        assert_eq!(i.peer.as_deref(), Some(peer.as_str()));
    }
    let r = h1.ping(h2.ip(), 5);
    assert_eq!(r.received, 5, "{}", r.output);
    h2.assert_ping(h1.ip());
    let s1 = d.port_stats(&br1, &p1);
    let s2 = d.port_stats(&br2, &p2);
    // What left br1 through p1 entered br2 through p2, and back.
    assert!(s1.tx_packets >= 5 && s1.rx_packets >= 5, "{s1:?}");
    assert_eq!(
        (s1.tx_packets, s1.rx_packets),
        (s2.rx_packets, s2.tx_packets),
        "{s1:?} {s2:?}"
    );
    // Each bridge learned the far host behind its patch port.
    assert!(d
        .fdb(&br1)
        .iter()
        .any(|e| e.mac == h2.mac && e.port_name == p1));
    assert!(d
        .fdb(&br2)
        .iter()
        .any(|e| e.mac == h1.mac && e.port_name == p2));

    // A trace crosses the pair but sends nothing and counts nothing.
    let flow = format!(
        "in_port={},dl_src={},dl_dst={},ip,nw_src=10.8.0.1,nw_dst=10.8.0.2",
        h1.port, h1.mac, h2.mac
    );
    let tr = d.json(&["trace", &br1, &flow]);
    let outs = tr["trace"]["outputs"].as_array().expect("outputs").clone();
    assert!(outs.iter().any(|o| o["name"] == p1.as_str()), "{tr:#}");
    assert!(outs.iter().any(|o| o["name"] == h2.port.as_str()), "{tr:#}");
    assert_eq!(d.port_stats(&br1, &p1), s1);
    assert_eq!(d.port_stats(&br2, &p2), s2);

    // Removing one side cuts the path and marks the other side down.
    d.ok(&["del-port", &br2, &p2]);
    h1.assert_no_ping(h2.ip());
    let i = d.show_port(&br1, &p1);
    assert!(!i.up && i.down_reason.is_some(), "{i:?}");
}

#[test]
fn patch_pair_keeps_vlans() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br1 = d.add_br();
    let br2 = d.add_br();
    let (p1, p2) = (uniq('p'), uniq('p'));
    d.ok(&["add-port", &br1, &p1, "type=patch", &format!("peer={p2}")]);
    d.ok(&["add-port", &br2, &p2, "type=patch", &format!("peer={p1}")]);
    let a = tap_host(&d, &br1, &["tag=10"], Some("10.8.1.1/24"));
    let b = tap_host(&d, &br2, &["tag=10"], Some("10.8.1.2/24"));
    let c = tap_host(&d, &br2, &["tag=20"], Some("10.8.1.3/24"));
    a.assert_ping(b.ip());
    b.assert_ping(a.ip());
    a.assert_no_ping(c.ip());
    c.assert_no_ping(a.ip());
    assert!(d
        .fdb(&br2)
        .iter()
        .any(|e| e.mac == a.mac && e.port_name == p2 && e.vlan == 10));
}
