//! VLANs through NORMAL: access ports, a trunk, native-tagged and
//! native-untagged trunks, checked with real traffic.
//!
//! The kernel here has no 802.1Q sub-interfaces (CONFIG_VLAN_8021Q unset),
//! so a trunk host is played by a [`RawSock`] in its namespace: it sends
//! hand-built tagged ARP and ICMP frames and reads the tags of what comes
//! back (put back from `PACKET_AUXDATA`). `tcpdump` on the trunk's veth end
//! shows the tags independently of our own parsing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;

/// h1, h2 access VLAN 10; h3 access VLAN 20 (same subnet, so only VLAN
/// isolation keeps it apart); `trunk` a trunk of VLANs 10 and 20 whose
/// host has no address (played by a raw socket as 10.3.0.4).
struct Topo {
    d: Rvsd,
    br: String,
    h1: Host,
    h2: Host,
    h3: Host,
    trunk: Host,
}

const TRUNK_IP: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 4);

fn topo() -> Topo {
    let d = Rvsd::start();
    let br = d.add_br();
    let h1 = tap_host(&d, &br, &["tag=10"], Some("10.3.0.1/24"));
    let h2 = tap_host(&d, &br, &["tag=10"], Some("10.3.0.2/24"));
    let h3 = tap_host(&d, &br, &["tag=20"], Some("10.3.0.3/24"));
    let trunk = veth_host(&d, &br, &["vlan_mode=trunk", "trunks=10,20"], None);
    Topo {
        d,
        br,
        h1,
        h2,
        h3,
        trunk,
    }
}

#[test]
fn vlan_access_ports_isolated() {
    if !require_root() {
        return;
    }
    let t = topo();
    t.h1.assert_ping(t.h2.ip());
    t.h2.assert_ping(t.h1.ip());
    t.h1.assert_no_ping(t.h3.ip());
    t.h3.assert_no_ping(t.h1.ip());
    t.h3.assert_no_ping(t.h2.ip());
    // h3's ARP requests were flooded in VLAN 20 only: nobody answered and
    // the VLAN 10 ports never sent them (h1/h2 only got VLAN 10 frames).
    let fdb = t.d.fdb(&t.br);
    let h3e: Vec<_> = fdb.iter().filter(|e| e.mac == t.h3.mac).collect();
    assert!(
        h3e.iter().all(|e| e.vlan == 20 && e.port_name == t.h3.port),
        "{fdb:?}"
    );
    assert!(!h3e.is_empty(), "{fdb:?}");
}

#[test]
fn vlan_trunk_tags_seen_with_tcpdump() {
    if !require_root() {
        return;
    }
    let t = topo();
    let dump = Tcpdump::start(&t.trunk.ns, &t.trunk.dev, &["vlan"]);
    // Pings to absent addresses: ARP requests flooded in each VLAN.
    let _ = t.h1.ping("10.3.0.99", 1);
    let _ = t.h3.ping("10.3.0.98", 1);
    let lines = dump.finish(Duration::from_millis(300));
    let req99: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("who-has 10.3.0.99"))
        .collect();
    let req98: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("who-has 10.3.0.98"))
        .collect();
    assert!(
        !req99.is_empty(),
        "no VLAN 10 ARP seen on the trunk: {lines:#?}"
    );
    assert!(
        !req98.is_empty(),
        "no VLAN 20 ARP seen on the trunk: {lines:#?}"
    );
    for l in &req99 {
        assert!(
            l.contains("802.1Q") && l.contains("vlan 10,") && l.contains(&t.h1.mac),
            "{l}"
        );
    }
    for l in &req98 {
        assert!(
            l.contains("802.1Q") && l.contains("vlan 20,") && l.contains(&t.h3.mac),
            "{l}"
        );
    }
}

#[test]
fn vlan_trunk_host_reaches_its_vlans_only() {
    if !require_root() {
        return;
    }
    let t = topo();
    let raw = t.trunk.raw();
    let h1_ip = ip4(t.h1.ip());
    let h3_ip = ip4(t.h3.ip());

    // VID 10: h1 answers ARP and ICMP, with tagged replies.
    let (m, vid) = raw
        .arp(Some(10), TRUNK_IP, h1_ip)
        .expect("ARP reply from h1 in VLAN 10");
    assert_eq!((mac_str(&m), vid), (t.h1.mac.clone(), Some(10)));
    let vid = raw
        .echo(m, Some(10), TRUNK_IP, h1_ip, 1)
        .expect("echo reply from h1");
    assert_eq!(vid, Some(10));
    // VID 20: h1's address is not there; h3's is.
    assert_eq!(
        raw.arp(Some(20), TRUNK_IP, h1_ip),
        None,
        "h1 answered in VLAN 20"
    );
    let (m, vid) = raw
        .arp(Some(20), TRUNK_IP, h3_ip)
        .expect("ARP reply from h3 in VLAN 20");
    assert_eq!((mac_str(&m), vid), (t.h3.mac.clone(), Some(20)));

    // The other direction: h2 (access 10) pings the trunk host; the echo
    // request reaches the trunk tagged 10 and the tagged reply gets back.
    let _ = raw
        .arp(Some(10), TRUNK_IP, ip4(t.h2.ip()))
        .expect("ARP reply from h2");
    raw.drain();
    let ping = ping_spawn(&t.h2.ns, "10.3.0.4");
    let req = raw
        .recv_until(Duration::from_secs(3), |f| {
            let (ty, s, dst, _, _) = f.icmp()?;
            (ty == 8 && dst == TRUNK_IP && s == ip4(t.h2.ip())).then(|| f.clone())
        })
        .expect("h2's echo request on the trunk");
    assert_eq!(req.vid, Some(10), "{req:?}");
    raw.send(&icmp_reply_to(&req, raw.mac, Some(10)));
    assert!(ping_wait(ping), "h2 did not get the trunk host's reply");

    // VLAN 30 is not trunked, and untagged frames (VLAN 0) are not either.
    assert_eq!(raw.arp(Some(30), TRUNK_IP, h1_ip), None);
    assert_eq!(raw.arp(None, TRUNK_IP, h1_ip), None);
    assert_rx_dropped(&t.d, &t.br, &t.trunk.port, "vlan_not_allowed", 2);
}

#[test]
fn vlan_tagged_frame_on_access_port_dropped() {
    if !require_root() {
        return;
    }
    let t = topo();
    t.h1.assert_ping(t.h2.ip());
    let before = t.d.port_stats(&t.br, &t.h1.port);
    assert_eq!(
        before.rx_dropped.get("vlan_not_allowed"),
        None,
        "{before:?}"
    );
    let raw = t.h1.raw();
    let h2raw = t.h2.raw();
    // Tagged with the port's own VLAN: still dropped (OVS: access ports
    // drop tagged frames).
    raw.send(&arp_request(
        raw.mac,
        Some(10),
        ip4(t.h1.ip()),
        ip4(t.h2.ip()),
    ));
    assert_rx_dropped(&t.d, &t.br, &t.h1.port, "vlan_not_allowed", 1);
    raw.send(&arp_request(
        raw.mac,
        Some(20),
        ip4(t.h1.ip()),
        ip4(t.h3.ip()),
    ));
    assert_rx_dropped(&t.d, &t.br, &t.h1.port, "vlan_not_allowed", 2);
    // Nothing of it reached h2.
    let seen = h2raw.collect(Duration::from_millis(500));
    assert!(
        !seen
            .iter()
            .any(|f| f.arp_request().is_some_and(|(s, _)| s == ip4(t.h1.ip()))),
        "{seen:?}"
    );
    // The port still forwards untagged traffic.
    t.h1.assert_ping(t.h2.ip());
}

/// Access hosts a (VLAN 10) and b (VLAN 20); raw hosts on a
/// native-untagged and a native-tagged trunk, both with native VLAN 10 and
/// trunks=20 (the native VLAN is carried without being listed, as in OVS).
#[test]
fn vlan_native_untagged_and_native_tagged() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let a = tap_host(&d, &br, &["tag=10"], Some("10.4.0.1/24"));
    let b = tap_host(&d, &br, &["tag=20"], Some("10.4.0.2/24"));
    let nu = veth_host(
        &d,
        &br,
        &["vlan_mode=native-untagged", "tag=10", "trunks=20"],
        None,
    );
    let nt = veth_host(
        &d,
        &br,
        &["vlan_mode=native-tagged", "tag=10", "trunks=20"],
        None,
    );
    let (a_ip, b_ip) = (ip4(a.ip()), ip4(b.ip()));
    let nu_ip = Ipv4Addr::new(10, 4, 0, 5);
    let nt_ip = Ipv4Addr::new(10, 4, 0, 6);
    let nur = nu.raw();
    let ntr = nt.raw();

    // native-untagged: untagged ingress is VLAN 10; VLAN 10 leaves untagged.
    let (m, vid) = nur
        .arp(None, nu_ip, a_ip)
        .expect("a answers untagged ARP on native-untagged");
    assert_eq!((mac_str(&m), vid), (a.mac.clone(), None));
    assert_eq!(nur.echo(m, None, nu_ip, a_ip, 1), Some(None));
    // A frame tagged with the native VLAN is accepted; the reply is untagged.
    let (_, vid) = nur
        .arp(Some(10), nu_ip, a_ip)
        .expect("a answers VID 10 ARP");
    assert_eq!(vid, None);
    // Other trunked VLANs stay tagged both ways.
    let (m, vid) = nur
        .arp(Some(20), nu_ip, b_ip)
        .expect("b answers VID 20 ARP");
    assert_eq!((mac_str(&m), vid), (b.mac.clone(), Some(20)));
    // Untagged is VLAN 10, so b (VLAN 20) does not answer it.
    assert_eq!(nur.arp(None, nu_ip, b_ip), None);

    // native-tagged: untagged ingress is VLAN 10, but VLAN 10 leaves tagged.
    let (m, vid) = ntr
        .arp(None, nt_ip, a_ip)
        .expect("a answers untagged ARP on native-tagged");
    assert_eq!((mac_str(&m), vid), (a.mac.clone(), Some(10)));
    assert_eq!(ntr.echo(m, None, nt_ip, a_ip, 2), Some(Some(10)));
    let (_, vid) = ntr
        .arp(Some(10), nt_ip, a_ip)
        .expect("a answers VID 10 ARP");
    assert_eq!(vid, Some(10));
    let (_, vid) = ntr
        .arp(Some(20), nt_ip, b_ip)
        .expect("b answers VID 20 ARP");
    assert_eq!(vid, Some(20));
    // VLAN 30 is carried by neither.
    assert_eq!(ntr.arp(Some(30), nt_ip, a_ip), None);
    assert_rx_dropped(&d, &br, &nt.port, "vlan_not_allowed", 1);

    // A broadcast in VLAN 10 from a: untagged on nu, tagged 10 on nt,
    // absent on b.
    nur.drain();
    ntr.drain();
    let braw = b.raw();
    let _ = a.ping("10.4.0.99", 1);
    let is_req = |f: &Frame| {
        f.arp_request()
            .is_some_and(|(_, t)| t == Ipv4Addr::new(10, 4, 0, 99))
    };
    let on_nu = nur.recv_until(Duration::from_secs(1), |f| is_req(f).then_some(f.vid));
    let on_nt = ntr.recv_until(Duration::from_secs(1), |f| is_req(f).then_some(f.vid));
    assert_eq!(on_nu, Some(None), "native-untagged egress of VLAN 10");
    assert_eq!(on_nt, Some(Some(10)), "native-tagged egress of VLAN 10");
    assert!(!braw.collect(Duration::from_millis(300)).iter().any(is_req));

    // Between the two trunks, VLAN 20 stays tagged 20 and VLAN 10 changes
    // form: nt's tagged-10 ARP request reaches nu untagged.
    nur.drain();
    ntr.send(&arp_request(
        ntr.mac,
        Some(10),
        nt_ip,
        Ipv4Addr::new(10, 4, 0, 77),
    ));
    let got = nur.recv_until(Duration::from_secs(1), |f| {
        f.arp_request()
            .is_some_and(|(s, _)| s == nt_ip)
            .then_some(f.vid)
    });
    assert_eq!(got, Some(None));
    ntr.send(&arp_request(
        ntr.mac,
        Some(20),
        nt_ip,
        Ipv4Addr::new(10, 4, 0, 78),
    ));
    let got = nur.recv_until(Duration::from_secs(1), |f| {
        f.arp_request()
            .is_some_and(|(s, t)| s == nt_ip && t == Ipv4Addr::new(10, 4, 0, 78))
            .then_some(f.vid)
    });
    assert_eq!(got, Some(Some(20)));
}
