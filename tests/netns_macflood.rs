//! MAC flood: one host sends 100,000 frames with distinct random source
//! MACs; NORMAL's MAC table stays at its cap (`mac-table-size`), two hosts
//! learned before the flood keep exchanging unicast with no loss and no
//! frame of theirs is flooded to a third host, and rvsd's memory stays
//! bounded by the cap, not by the number of sources.
//!
//! Eviction is Open vSwitch's (`lib/mac-learning.c`,
//! `evict_mac_entry_fairly`): a full table evicts the least recently used
//! entry of the port that holds the most entries, so the flooding port only
//! ever evicts its own entries and the known hosts stay learned. (A plain
//! global LRU would push them out and turn their unicast into floods: the
//! classic CAM-overflow attack.)
//!
//! The flood frames go to the MAC of a fourth host, the sink, learned
//! before the flood, so NORMAL sends them to the sink only: the third host
//! receives nothing at all, and any frame from the known hosts there is a
//! flood. Neighbours are static (`nud permanent`): no ARP, so the known
//! hosts send only their ICMP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The MAC table cap set on the bridge.
const CAP: usize = 8192;
/// Distinct source MACs per flood.
const FLOOD: usize = 100_000;
/// Flood pace, frames per second (what a debug rvsd forwards comfortably).
const PPS: usize = 40_000;
/// IEEE 802 local experimental ethertype: the sink's kernel drops it.
const ETHERTYPE: u16 = 0x88b5;

/// Makes `a` and `b` know each other's MAC without ARP.
fn static_neigh(a: &Host, b: &Host) {
    for (x, y) in [(a, b), (b, a)] {
        run(&[
            "ip",
            "-n",
            &x.ns.name,
            "neigh",
            "replace",
            y.ip(),
            "lladdr",
            &y.mac,
            "dev",
            &x.dev,
            "nud",
            "permanent",
        ]);
    }
}

/// `n` frames to `dst` with distinct random unicast, locally administered
/// source MACs (none of them `avoid`).
fn flood_frames(
    rng: &mut impl FnMut() -> u64,
    dst: [u8; 6],
    n: usize,
    avoid: &HashSet<[u8; 6]>,
) -> Vec<Vec<u8>> {
    let mut seen = HashSet::with_capacity(n);
    let mut frames = Vec::with_capacity(n);
    while frames.len() < n {
        let r = rng().to_be_bytes();
        let mut src = [r[0], r[1], r[2], r[3], r[4], r[5]];
        src[0] = (src[0] & 0xfc) | 0x02;
        if avoid.contains(&src) || !seen.insert(src) {
            continue;
        }
        frames.push(eth(dst, src, None, ETHERTYPE, &[0u8; 46]));
    }
    frames
}

/// Sends `frames` from `raw` at about [`PPS`]; returns how many the
/// kernel took.
fn flood(raw: &RawSock, frames: &[Vec<u8>]) -> usize {
    let t0 = Instant::now();
    let mut sent = 0;
    for (i, chunk) in frames.chunks(1000).enumerate() {
        sent += raw.send_batch(chunk);
        let due = t0 + Duration::from_secs_f64(((i + 1) * 1000) as f64 / PPS as f64);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    eprintln!(
        "flood: {sent} of {} frames sent in {:.2?}",
        frames.len(),
        t0.elapsed()
    );
    sent
}

/// `ping -q -c COUNT -i 0.01 -W 1 DST` in the background.
fn ping_stream(from: &Host, dst: &str, count: u32) -> Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &from.ns.name,
            "ping",
            "-n",
            "-q",
            "-i",
            "0.01",
            "-W",
            "1",
            "-c",
        ])
        .arg(count.to_string())
        .arg(dst)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ping")
}

/// Waits (bounded) for a [`ping_stream`]; returns (sent, received, output).
fn ping_result(mut c: Child, limit: Duration) -> (u32, u32, String) {
    let end = Instant::now() + limit;
    while c.try_wait().expect("wait ping").is_none() {
        if Instant::now() >= end {
            let _ = c.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = c.wait_with_output().expect("ping output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("");
    let num = |what: &str| -> u32 {
        summary
            .split(',')
            .find(|p| p.contains(what))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (num("transmitted"), num("received"), text)
}

/// Frames on the third host's interface from either known host.
fn leaked(frames: &[Frame], macs: &[[u8; 6]]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| macs.contains(&f.src))
        .map(|f| format!("{f:?}"))
        .collect()
}

#[test]
fn mac_flood_keeps_table_at_cap_and_known_hosts_forwarding() {
    if !require_root() {
        return;
    }
    let t_test = Instant::now();
    let mut rng = rng();
    let d = Rvsd::start();
    let br = d.add_br();
    d.ok(&["set", "bridge", &br, &format!("mac-table-size={CAP}")]);
    let h1 = tap_host(&d, &br, &[], Some("10.13.0.1/24"));
    let h2 = tap_host(&d, &br, &[], Some("10.13.0.2/24"));
    let h3 = tap_host(&d, &br, &[], Some("10.13.0.3/24"));
    let sink = tap_host(&d, &br, &[], None);
    let attacker = veth_host(&d, &br, &[], None);
    static_neigh(&h1, &h2);

    // Learn h1, h2 (a ping) and the sink (one frame of its own).
    h1.assert_ping(h2.ip());
    let sink_raw = sink.raw();
    sink_raw.send(&eth(BROADCAST, sink_raw.mac, None, ETHERTYPE, &[0u8; 46]));
    let known = |d: &Rvsd| {
        let fdb = d.fdb(&br);
        let has = |h: &Host| fdb.iter().any(|e| e.mac == h.mac && e.port_name == h.port);
        (fdb.len(), has(&h1), has(&h2), has(&sink))
    };
    let learned = poll(Duration::from_secs(5), || {
        let k = known(&d);
        (k.1 && k.2 && k.3).then_some(k)
    });
    assert!(
        learned.is_some(),
        "h1, h2, sink not learned: {:?}",
        d.fdb(&br)
    );
    let (rss0, _) = d.rss_kib();

    let h3_raw = h3.raw();
    h3_raw.drain();
    let macs = [mac(&h1.mac), mac(&h2.mac)];
    let avoid: HashSet<[u8; 6]> = [macs[0], macs[1], sink_raw.mac, mac(&h3.mac)].into();
    let raw = attacker.raw();
    let frames = flood_frames(&mut rng, sink_raw.mac, FLOOD, &avoid);
    let rx0 = d.port_stats(&br, &attacker.port).rx_packets;

    // Flood 1, with h1 <-> h2 pinging every 10 ms through it and after it.
    let ping = ping_stream(&h1, h2.ip(), 400);
    let sent = flood(&raw, &frames);
    let (tx, rx, out) = ping_result(ping, Duration::from_secs(15));
    let arrived = d.port_stats(&br, &attacker.port).rx_packets - rx0;
    eprintln!("flood 1: {arrived} frames reached rvsd; ping {rx}/{tx}");
    assert!(
        arrived as usize > CAP + CAP / 2,
        "only {arrived} of {sent} flood frames reached rvsd: too few to fill the table"
    );
    assert_eq!(
        (tx, rx),
        (400, 400),
        "h1 <-> h2 lost pings during the flood:\n{out}"
    );
    let (n, k1, k2, ks) = known(&d);
    assert!(
        n <= CAP,
        "fdb-show lists {n} entries, more than the cap {CAP}"
    );
    assert_eq!(
        n, CAP,
        "the table is not full after {arrived} distinct sources"
    );
    assert!(
        k1 && k2 && ks,
        "a known host was evicted: h1 {k1}, h2 {k2}, sink {ks}"
    );
    let seen = h3_raw.collect(Duration::from_millis(200));
    let bad = leaked(&seen, &macs);
    assert!(
        bad.is_empty(),
        "h1/h2 frames flooded to h3 during the flood: {bad:#?}"
    );
    assert!(
        seen.len() < 10,
        "h3 received {} frames during the flood (the flood goes to the sink only): {:?}",
        seen.len(),
        &seen[..seen.len().min(5)]
    );
    let (rss1, _) = d.rss_kib();

    // Flood 2: another 100,000 sources. The table stays at the cap and
    // memory does not follow the number of sources.
    let mut avoid2 = avoid.clone();
    avoid2.extend(frames.iter().map(|f| {
        let mut m = [0u8; 6];
        m.copy_from_slice(&f[6..12]);
        m
    }));
    let frames2 = flood_frames(&mut rng, sink_raw.mac, FLOOD, &avoid2);
    drop(frames);
    let ping = ping_stream(&h2, h1.ip(), 300);
    flood(&raw, &frames2);
    let (tx, rx, out) = ping_result(ping, Duration::from_secs(15));
    assert_eq!(
        (tx, rx),
        (300, 300),
        "h2 <-> h1 lost pings during flood 2:\n{out}"
    );
    let (n, k1, k2, ks) = known(&d);
    assert_eq!(
        n, CAP,
        "fdb-show lists {n} entries after flood 2, cap {CAP}"
    );
    assert!(
        k1 && k2 && ks,
        "a known host was evicted by flood 2: h1 {k1}, h2 {k2}, sink {ks}"
    );
    let (rss2, hwm2) = d.rss_kib();
    eprintln!(
        "rvsd RSS: {rss0} KiB before, {rss1} after flood 1, {rss2} after flood 2 (peak {hwm2})"
    );
    assert!(
        rss1 < rss0 + 32 * 1024,
        "RSS grew from {rss0} to {rss1} KiB with a table of {CAP} entries"
    );
    assert!(
        rss2 < rss1 + 4 * 1024,
        "RSS grew from {rss1} to {rss2} KiB in a second flood at the same table size"
    );

    // After the flood: unicast between the known hosts, still not flooded.
    h3_raw.drain();
    let (tx, rx, out) = ping_result(ping_stream(&h1, h2.ip(), 100), Duration::from_secs(10));
    assert_eq!(
        (tx, rx),
        (100, 100),
        "h1 <-> h2 lost pings after the flood:\n{out}"
    );
    let seen = h3_raw.collect(Duration::from_millis(200));
    let bad = leaked(&seen, &macs);
    assert!(
        bad.is_empty(),
        "h1/h2 frames flooded to h3 after the flood: {bad:#?}"
    );
    eprintln!("test took {:.1?}", t_test.elapsed());
}
