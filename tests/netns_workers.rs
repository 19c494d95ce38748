//! rvsd with two datapath workers (`--workers 2`): ports are spread over
//! the two threads, so the two directions of a conversation are received
//! by different workers. Everything a user sees must be as with one
//! worker: pings and TCP get through, port counters equal the kernels'
//! own (summed over the per-worker blocks), flow counters count every
//! packet exactly once, and the MAC table learned by both workers is one.
//! `pmd-stats-show` tells which worker polls which port and what it did.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// Names of rvsd's threads.
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn two_workers_forward_with_exact_counters_and_one_mac_table() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start_with(&["--workers", "2"]);
    let names = thread_names(d.pid());
    assert!(
        names.iter().any(|n| n == "rvs-dp0") && names.iter().any(|n| n == "rvs-dp1"),
        "threads: {names:?}"
    );
    let br = d.add_br();
    // Round-robin owners: LOCAL → worker 0, h1 → worker 1, h2 → worker 0.
    let h1 = tap_host(&d, &br, &[], Some("10.7.0.1/24"));
    let h2 = veth_host(&d, &br, &[], Some("10.7.0.2/24"));
    d.ok(&["add-flow", &br, "priority=10,icmp,actions=NORMAL"]);

    // 5 requests + 5 replies each way; every ICMP frame crosses the flow
    // once, whichever worker received it.
    assert_pings_and_counters(&d, &br, &h1, &h2);
    let icmp = d.flow(&br, "priority=10,icmp actions=NORMAL");
    assert_eq!(icmp.n_packets, 20, "{icmp:?}");

    // Both hosts learned, each by the worker that polls its port, into the
    // bridge's one table.
    let fdb = d.fdb(&br);
    for h in [&h1, &h2] {
        let m = &h.mac;
        assert!(
            fdb.iter().any(|e| &e.mac == m && e.port_name == h.port),
            "{m} on {} missing: {fdb:?}",
            h.port
        );
    }

    // pmd-stats-show: each worker polls its ports and counted what it
    // received (together, what the ports received).
    let v = d.json(&["pmd-stats-show"]);
    let workers = v["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{v}");
    let polls = |w: usize, port: &str| {
        workers[w]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str() == Some(&format!("{br}/{port}")))
    };
    assert!(
        polls(0, &br) && polls(1, &h1.port) && polls(0, &h2.port),
        "{v}"
    );
    let rx: u64 = workers
        .iter()
        .map(|w| w["rx_packets"].as_u64().unwrap())
        .sum();
    let ports_rx: u64 = d.ports(&br).iter().map(|p| p.rx_packets).sum();
    assert_eq!(rx, ports_rx, "{v}");
    assert!(
        workers.iter().all(|w| w["batches"].as_u64().unwrap() > 0),
        "{v}"
    );

    // TCP with offloads, both workers busy (data one way, ACKs the other).
    // The client finishing means the stream was delivered; the server's
    // count is a snapshot that may trail the last segments (as in
    // netns_tcp).
    let bytes = 64 * 1024 * 1024;
    let (sent, got) = tcp_transfer(&h1, &h2, bytes);
    assert!(sent >= bytes && got >= bytes / 10 * 9, "{sent} {got}");
    assert_counters_mirror(&d, &br, &h1);
    assert_counters_mirror(&d, &br, &h2);
    // Table 0 has had 2 masks (NORMAL's and icmp's) so far: too few for the
    // exact-match cache. Two more flows (matching no traffic here) make 4;
    // then the TCP stream's packets are answered from the cache.
    let hits = |v: &serde_json::Value| -> u64 {
        v["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["emc_hits"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(hits(&d.json(&["pmd-stats-show"])), 0);
    d.ok(&["add-flow", &br, "priority=5,udp,tp_dst=9,actions=drop"]);
    d.ok(&[
        "add-flow",
        &br,
        "priority=6,tcp,nw_src=10.99.0.0/16,actions=drop",
    ]);
    let (sent, _) = tcp_transfer(&h1, &h2, bytes);
    assert!(sent >= bytes);
    let v = d.json(&["pmd-stats-show"]);
    assert!(hits(&v) > 100, "{v}");
}
