//! Batched sends to system (AF_PACKET) ports: frames bound for such a port
//! are copied into the worker's transmit queue and leave in one
//! `sendmmsg` when the batch is done. The copy must be taken at the
//! output action — later actions edit the same packet — and frames must
//! leave in the order the actions output them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn queued_outputs_keep_their_contents_and_order() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let h1 = veth_host(&d, &br, &[], Some("10.8.0.1/24"));
    let h2 = veth_host(&d, &br, &[], Some("10.8.0.2/24"));
    h1.assert_ping(h2.ip());
    // One echo request becomes three frames on h2's port, each a
    // different edit of the same packet.
    d.ok(&[
        "add-flow",
        &br,
        &format!(
            "priority=100,in_port={},icmp,actions=output:{p},mod_vlan_vid:42,output:{p},mod_vlan_vid:43,output:{p},strip_vlan,output:{p}",
            h1.port,
            p = h2.port
        ),
    ]);
    let r2 = h2.raw();
    r2.drain();
    let _ = h1.ping(h2.ip(), 1);
    let from_h1: Vec<Option<u16>> = r2
        .collect(Duration::from_millis(500))
        .into_iter()
        .filter(|f| {
            f.icmp()
                .is_some_and(|(ty, s, _, _, _)| ty == 8 && s == ip4(h1.ip()))
        })
        .map(|f| f.vid)
        .collect();
    assert_eq!(
        from_h1,
        vec![None, Some(42), Some(43), None],
        "each output carries the packet as it was at that action, in order"
    );
    let p2 = d.port_stats(&br, &h2.port);
    assert!(p2.tx_dropped.is_empty(), "{p2:?}");
}
