//! Flows in the datapath: drop, redirect, VLAN push/pop and ordered
//! actions, deleting and restoring NORMAL, flow counters — with real
//! traffic between namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;
use rvs_ctl::proto::FlowInfo;

/// Three hosts on TAP ports 1, 2, 3 of one bridge, 10.5.0.{1,2,3}/24.
struct Topo {
    d: Rvsd,
    br: String,
    h: [Host; 3],
}

fn topo() -> Topo {
    let d = Rvsd::start();
    let br = d.add_br();
    let h = [1, 2, 3].map(|i| tap_host(&d, &br, &[], Some(&format!("10.5.0.{i}/24"))));
    for (i, h) in h.iter().enumerate() {
        assert_eq!(d.show_port(&br, &h.port).ofport, i as u32 + 1);
    }
    Topo { d, br, h }
}

/// The single flow with this priority in table 0.
fn by_priority(d: &Rvsd, br: &str, prio: u16) -> FlowInfo {
    let flows = d.flows(br);
    let v: Vec<&FlowInfo> = flows.iter().filter(|f| f.priority == prio).collect();
    assert_eq!(v.len(), 1, "want one flow at priority {prio}: {flows:#?}");
    v[0].clone()
}

#[test]
fn flows_drop_rule_for_one_pair() {
    if !require_root() {
        return;
    }
    let t = topo();
    let [h1, h2, h3] = &t.h;
    h1.assert_ping(h2.ip());
    let normal_before = by_priority(&t.d, &t.br, 0);
    assert!(normal_before.n_packets > 0, "{normal_before:?}");

    let rule = "priority=100,ip,nw_src=10.5.0.1,nw_dst=10.5.0.2,actions=drop";
    t.d.ok(&["add-flow", &t.br, rule]);
    let normalized = t.d.ok(&["parse-flow", rule]);
    assert_eq!(t.d.flows(&t.br).len(), 2);
    assert_eq!(by_priority(&t.d, &t.br, 100).flow, normalized.trim());

    let r = h1.ping(h2.ip(), 3);
    assert_eq!(r.received, 0, "h1 -> h2 should be dropped: {}", r.output);
    // h2 -> h1: the requests pass, h1's replies (.1 -> .2) are dropped.
    h2.assert_no_ping(h1.ip());
    h1.assert_ping(h3.ip());
    h3.assert_ping(h1.ip());
    h2.assert_ping(h3.ip());

    // 3 requests from h1 and 2 replies from h1 hit the drop rule.
    let drop = by_priority(&t.d, &t.br, 100);
    assert_eq!(drop.n_packets, 5, "{drop:?}");
    assert!(drop.n_bytes >= 5 * 98, "{drop:?}");
    assert!(drop.text.contains("n_packets=5"), "{}", drop.text);
    let p1 = t.d.port_stats(&t.br, &h1.port);
    assert_eq!(p1.rx_dropped.get("action_drop"), Some(&5), "{p1:?}");
    let normal_after = by_priority(&t.d, &t.br, 0);
    assert!(
        normal_after.n_packets >= normal_before.n_packets + 12,
        "{normal_before:?} {normal_after:?}"
    );
    assert!(normal_after.n_bytes > normal_before.n_bytes);

    // Deleting exactly that rule restores the pair.
    t.d.ok(&[
        "del-flows",
        &t.br,
        "--strict",
        "priority=100,ip,nw_src=10.5.0.1,nw_dst=10.5.0.2",
    ]);
    assert_eq!(t.d.flows(&t.br).len(), 1);
    h1.assert_ping(h2.ip());
    h2.assert_ping(h1.ip());
}

#[test]
fn flows_redirect_output() {
    if !require_root() {
        return;
    }
    let t = topo();
    let [h1, h2, h3] = &t.h;
    h1.assert_ping(h2.ip());
    // h1's IP traffic for h2 goes to h3 instead (ports named, not numbered).
    let rule = format!(
        "priority=100,in_port={},ip,nw_dst=10.5.0.2,actions=output:{}",
        h1.port, h3.port
    );
    t.d.ok(&["add-flow", &t.br, &rule]);
    let r2 = h2.raw();
    let r3 = h3.raw();
    let r = h1.ping(h2.ip(), 3);
    assert_eq!(r.received, 0, "{}", r.output);
    let to_h2 = |f: &Frame| {
        f.icmp()
            .is_some_and(|(ty, s, dst, _, _)| ty == 8 && s == ip4(h1.ip()) && dst == ip4(h2.ip()))
    };
    let at3 = r3.collect(Duration::from_millis(300));
    let at2 = r2.collect(Duration::from_millis(0));
    let n3 = at3.iter().filter(|f| to_h2(f)).count();
    assert_eq!(n3, 3, "h3 should get h1's 3 echo requests for h2: {at3:?}");
    assert!(at3
        .iter()
        .filter(|f| to_h2(f))
        .all(|f| f.dst == mac(&h2.mac) && f.vid.is_none()));
    assert!(!at2.iter().any(to_h2), "h2 got a redirected frame: {at2:?}");
    assert_eq!(by_priority(&t.d, &t.br, 100).n_packets, 3);
    // Other traffic is unaffected.
    h2.assert_ping(h3.ip());
    h3.assert_ping(h1.ip());
}

#[test]
fn flows_vlan_push_pop_and_action_order() {
    if !require_root() {
        return;
    }
    let t = topo();
    let [h1, h2, h3] = &t.h;
    // Neighbours learned first, so later steps need no ARP.
    h1.assert_ping(h3.ip());
    h1.assert_ping(h2.ip());
    let r2 = h2.raw();
    let r3 = h3.raw();
    let echo_from_h1 = |f: &Frame| {
        f.icmp()
            .is_some_and(|(ty, s, _, _, _)| ty == 8 && s == ip4(h1.ip()))
    };

    // Ordered actions: output before retagging leaves untagged, after
    // retagging leaves tagged.
    t.d.ok(&[
        "add-flow",
        &t.br,
        &format!(
            "priority=100,in_port={},icmp,actions=output:{},mod_vlan_vid:42,output:{}",
            h1.port, h3.port, h2.port
        ),
    ]);
    let _ = h1.ping(h2.ip(), 1);
    let at3: Vec<Frame> = r3
        .collect(Duration::from_millis(300))
        .into_iter()
        .filter(|f| echo_from_h1(f))
        .collect();
    let at2: Vec<Frame> = r2
        .collect(Duration::from_millis(0))
        .into_iter()
        .filter(|f| echo_from_h1(f))
        .collect();
    assert_eq!(at3.len(), 1, "{at3:?}");
    assert_eq!(
        at3[0].vid, None,
        "output before mod_vlan_vid must be untagged"
    );
    assert_eq!(at2.len(), 1, "{at2:?}");
    assert_eq!(
        at2[0].vid,
        Some(42),
        "output after mod_vlan_vid must carry VID 42"
    );

    // strip_vlan: a frame tagged 42 from h3 reaches h1 untagged; h1's
    // reply is tagged 42 by the rule above and goes to h3 and h2.
    t.d.ok(&[
        "add-flow",
        &t.br,
        &format!(
            "priority=100,in_port={},dl_vlan=42,actions=strip_vlan,output:{}",
            h3.port, h1.port
        ),
    ]);
    let r1 = h1.raw();
    let h3_ip: Ipv4Addr = ip4(h3.ip());
    r3.drain();
    r3.send(&icmp_echo(
        mac(&h1.mac),
        r3.mac,
        Some(42),
        h3_ip,
        ip4(h1.ip()),
        7,
        1,
    ));
    let at1 = r1.recv_until(Duration::from_secs(2), |f| {
        f.icmp()
            .is_some_and(|(ty, s, _, id, _)| ty == 8 && s == h3_ip && id == 7)
            .then_some(f.vid)
    });
    assert_eq!(
        at1,
        Some(None),
        "strip_vlan must deliver the frame untagged"
    );
    let reply = r2.recv_until(Duration::from_secs(2), |f| {
        f.icmp()
            .is_some_and(|(ty, _, dst, id, _)| ty == 0 && dst == h3_ip && id == 7)
            .then_some(f.vid)
    });
    assert_eq!(reply, Some(Some(42)), "h1's reply must carry VID 42 to h2");
    let flows = t.d.flows(&t.br);
    assert!(
        flows
            .iter()
            .filter(|f| f.priority == 100)
            .all(|f| f.n_packets >= 1),
        "{flows:#?}"
    );
}

#[test]
fn flows_del_and_mod_restore_normal() {
    if !require_root() {
        return;
    }
    let t = topo();
    let [h1, h2, _] = &t.h;
    h1.assert_ping(h2.ip());

    // No flows at all: every frame is a table miss, dropped and counted.
    let out = t.d.ok(&["del-flows", &t.br]);
    assert!(out.contains("deleted 1 flows"), "{out}");
    assert!(t.d.flows(&t.br).is_empty());
    let before =
        t.d.port_stats(&t.br, &h1.port)
            .rx_dropped
            .get("no_match")
            .copied()
            .unwrap_or(0);
    h1.assert_no_ping(h2.ip());
    let after =
        t.d.port_stats(&t.br, &h1.port)
            .rx_dropped
            .get("no_match")
            .copied()
            .unwrap_or(0);
    assert!(after >= before + 2, "no_match {before} -> {after}");

    t.d.ok(&["add-flow", &t.br, "priority=0,actions=NORMAL"]);
    h1.assert_ping(h2.ip());
    let n0 = by_priority(&t.d, &t.br, 0).n_packets;
    assert!(n0 >= 2, "{n0}");

    // mod-flows (loose, empty match = all flows) turns NORMAL into drop and back.
    t.d.ok(&["mod-flows", &t.br, "actions=drop"]);
    h1.assert_no_ping(h2.ip());
    t.d.ok(&["mod-flows", &t.br, "actions=NORMAL"]);
    h1.assert_ping(h2.ip());
    assert_eq!(
        by_priority(&t.d, &t.br, 0).flow,
        "priority=0 actions=NORMAL"
    );

    // replace-flows from a file, atomically: a drop rule plus NORMAL.
    let dir = TempDir::new();
    let file = dir.0.join("flows.txt");
    std::fs::write(
        &file,
        "# h1 may not reach h2 by ICMP\npriority=50,icmp,nw_src=10.5.0.1,nw_dst=10.5.0.2,actions=drop\npriority=0,actions=NORMAL\n",
    )
    .unwrap();
    t.d.ok(&["replace-flows", &t.br, file.to_str().unwrap()]);
    assert_eq!(t.d.flows(&t.br).len(), 2);
    // Unchanged NORMAL flow kept its counters.
    assert!(by_priority(&t.d, &t.br, 0).n_packets >= n0);
    h1.assert_no_ping(h2.ip());
    t.d.ok(&["del-flows", &t.br, "icmp"]);
    h1.assert_ping(h2.ip());
}
