//! Two namespaces on veth pairs whose root ends are `system` ports (an
//! AF_PACKET socket on an existing netdev) ping each other through rvs;
//! the port counters equal the kernel's counters of the veth ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[test]
fn system_ping_both_ways_and_counters() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let h1 = veth_host(&d, &br, &[], Some("10.2.0.1/24"));
    let h2 = veth_host(&d, &br, &[], Some("10.2.0.2/24"));
    assert_eq!(d.show_port(&br, &h1.port).kind, "system");
    assert_eq!(d.show_port(&br, &h2.port).kind, "system");
    assert_pings_and_counters(&d, &br, &h1, &h2);
}

#[test]
fn system_and_tap_ports_mix() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let h1 = veth_host(&d, &br, &[], Some("10.2.1.1/24"));
    let h2 = tap_host(&d, &br, &[], Some("10.2.1.2/24"));
    h1.assert_ping(h2.ip());
    h2.assert_ping(h1.ip());
    // A large ICMP payload (well above one 1500-byte frame: fragmented by
    // the sender) crosses both port kinds.
    let out = h1.ns.exec_quiet(&[
        "ping",
        "-n",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        "1",
        "-s",
        "3000",
        h2.ip(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
