//! MAC learning through real traffic: `fdb-show` lists each host's MAC on
//! its port and VLAN, `fdb-flush` empties the table, and a short
//! `mac-aging-time` removes entries on time.
//!
//! Neighbours are static (`nud permanent`) so the kernels send no ARP of
//! their own: after a ping, nothing refreshes the MAC table, and the aging
//! time can be measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

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

/// (port name, VLAN, MAC) of every entry not on the LOCAL port.
fn entries(d: &Rvsd, br: &str) -> BTreeSet<(String, u16, String)> {
    d.fdb(br)
        .into_iter()
        .filter(|e| e.port_name != br)
        .map(|e| (e.port_name, e.vlan, e.mac))
        .collect()
}

#[test]
fn fdb_learns_per_port_and_vlan_then_flushes() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let h1 = tap_host(&d, &br, &["tag=10"], Some("10.6.0.1/24"));
    let h2 = tap_host(&d, &br, &["tag=10"], Some("10.6.0.2/24"));
    let h3 = tap_host(&d, &br, &[], Some("10.6.1.3/24"));
    let h4 = veth_host(&d, &br, &[], Some("10.6.1.4/24"));
    h1.assert_ping(h2.ip());
    h3.assert_ping(h4.ip());
    let want: BTreeSet<(String, u16, String)> = [
        (h1.port.clone(), 10, h1.mac.clone()),
        (h2.port.clone(), 10, h2.mac.clone()),
        (h3.port.clone(), 0, h3.mac.clone()),
        (h4.port.clone(), 0, h4.mac.clone()),
    ]
    .into();
    assert_eq!(entries(&d, &br), want);
    for e in d.fdb(&br) {
        assert!(e.age <= 5, "{e:?}");
        assert_eq!(e.mac, e.mac.to_lowercase());
    }
    let table = d.ok(&["fdb-show", &br]);
    assert!(
        table.contains(&h1.mac) && table.contains(&h1.port),
        "{table}"
    );

    let out = d.ok(&["fdb-flush", &br]);
    assert!(out.starts_with("flushed "), "{out}");
    assert!(d.fdb(&br).is_empty(), "{:?}", d.fdb(&br));

    // Learned again from new traffic; unknown unicast was flooded in
    // between (the ping still works right after a flush).
    h2.assert_ping(h1.ip());
    let again = entries(&d, &br);
    assert!(
        again.contains(&(h1.port.clone(), 10, h1.mac.clone())),
        "{again:?}"
    );
    assert!(
        again.contains(&(h2.port.clone(), 10, h2.mac.clone())),
        "{again:?}"
    );
}

#[test]
fn fdb_aging_removes_idle_entries() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let h1 = tap_host(&d, &br, &[], Some("10.6.2.1/24"));
    let h2 = tap_host(&d, &br, &[], Some("10.6.2.2/24"));
    static_neigh(&h1, &h2);
    d.ok(&["set", "bridge", &br, "mac-aging-time=15"]);
    let v = d.json(&["show"]);
    let b = v["bridges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == br.as_str())
        .unwrap()
        .clone();
    assert_eq!(b["mac_aging_time"], 15, "{b}");
    // Below the minimum: rejected.
    let (code, err) = d.fails(&["set", "bridge", &br, "mac-aging-time=5"]);
    assert_eq!(code, 1);
    assert!(err.contains("15-3600"), "{err}");

    let r = h1.ping(h2.ip(), 2);
    assert_eq!(r.received, 2, "{}", r.output);
    let idle_since = Instant::now();
    let rx_before = d.port_stats(&br, &h1.port).rx_packets;
    let learned = |d: &Rvsd| {
        let e = entries(d, &br);
        e.contains(&(h1.port.clone(), 0, h1.mac.clone()))
            && e.contains(&(h2.port.clone(), 0, h2.mac.clone()))
    };
    assert!(learned(&d), "{:?}", d.fdb(&br));
    // Poll once a second for at most 22 s.
    let mut gone_after = None;
    while idle_since.elapsed() < Duration::from_secs(22) {
        std::thread::sleep(Duration::from_secs(1));
        if entries(&d, &br).is_empty() {
            gone_after = Some(idle_since.elapsed());
            break;
        }
    }
    let gone_after =
        gone_after.unwrap_or_else(|| panic!("entries not aged out after 22 s: {:?}", d.fdb(&br)));
    assert!(
        gone_after >= Duration::from_secs(13),
        "entries aged out after {gone_after:?}, before the 15 s aging time"
    );
    // No frame crossed the bridge meanwhile (the neighbours are static), so
    // nothing was relearned.
    let p = d.port_stats(&br, &h1.port);
    assert_eq!(p.rx_packets, rx_before, "{p:?}");
    eprintln!("MAC entries aged out {gone_after:?} after the last frame (mac-aging-time=15)");
}
