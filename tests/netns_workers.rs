//! rvsd with two datapath workers (`--workers 2`): ports are spread over
//! the two threads, so the two directions of a conversation are received
//! by different workers. Everything a user sees must be as with one
//! worker: pings and TCP get through, port counters equal the kernels'
//! own (summed over the per-worker blocks), flow counters count every
//! packet exactly once, and the MAC table learned by both workers is one.
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

    // TCP with offloads, both workers busy (data one way, ACKs the other).
    // The client finishing means the stream was delivered; the server's
    // count is a snapshot that may trail the last segments (as in
    // netns_tcp).
    let bytes = 64 * 1024 * 1024;
    let (sent, got) = tcp_transfer(&h1, &h2, bytes);
    assert!(sent >= bytes && got >= bytes / 10 * 9, "{sent} {got}");
    assert_counters_mirror(&d, &br, &h1);
    assert_counters_mirror(&d, &br, &h2);
}
