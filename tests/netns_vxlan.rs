//! VXLAN tunnel ports against the Linux kernel's vxlan driver and against
//! another rvsd.
//!
//! Layout (rvsd runs in the root namespace, as in every test):
//! ```text
//!  [host ns] tap 10.x.0.1 ── rvs bridge ── vxlan port (local A, remote B)
//!                                              │ UDP 4789 over a veth /30
//!  [remote ns]  veth B ── vx42 (kernel, VNI 42) 10.x.0.2
//!                     └── vx43 (kernel, VNI 43, moved to [ns43]) 10.x.0.3
//! ```
//! The underlay addresses are a /30 from 172.16.0.0/12 derived from the
//! test process's pid, on a veth this test creates; the kernel routes the
//! outer packets (no extra setup). Everything is deleted on drop, also
//! when a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;

const BYTES: u64 = 64 * 1024 * 1024;
/// The kernel vxlan device's MTU over a 1500-byte underlay (1500 − 50).
const OVERLAY_MTU: &str = "1450";

static NET: AtomicU32 = AtomicU32::new(0);

/// A fresh /30 for this process: (rvs side, other side).
fn underlay_pair() -> (String, String) {
    let pid = std::process::id();
    let k = NET.fetch_add(1, Ordering::Relaxed);
    assert!(k < 64, "too many underlays");
    let base = format!("172.{}.{}", 16 + ((pid >> 8) & 15), pid & 255);
    (
        format!("{base}.{}", 4 * k + 1),
        format!("{base}.{}", 4 * k + 2),
    )
}

/// A veth between the root namespace (address `local`/30) and `ns`
/// (address `remote`/30).
fn underlay(ns: &Netns, local: &str, remote: &str) -> Veth {
    let v = Veth::new(ns);
    run(&["ip", "addr", "add", &format!("{local}/30"), "dev", &v.root]);
    ns.configure(&v.peer, Some(&format!("{remote}/30")));
    wait_link_up(None, &v.root);
    v
}

/// Tunnel endpoints that all live in the root namespace (each rvsd runs
/// there): `ips` as /32s on the root end of a veth into a spare
/// namespace; the kernel delivers between local addresses over loopback.
/// Both are deleted on drop.
fn local_endpoints(ips: &[&str]) -> (Netns, Veth) {
    let spare = Netns::new();
    let v = Veth::new(&spare);
    for ip in ips {
        run(&["ip", "addr", "add", &format!("{ip}/32"), "dev", &v.root]);
    }
    (spare, v)
}

fn set_mtu(ns: &Netns, dev: &str, mtu: &str) {
    ns.exec(&["ip", "link", "set", dev, "mtu", mtu]);
}

/// A kernel vxlan device in `ns` over `under` (the veth end in `ns`).
fn kernel_vxlan(ns: &Netns, name: &str, vni: u32, local: &str, remote: &str, under: &str) {
    ns.exec(&[
        "ip",
        "link",
        "add",
        name,
        "type",
        "vxlan",
        "id",
        &vni.to_string(),
        "remote",
        remote,
        "local",
        local,
        "dstport",
        "4789",
        "dev",
        under,
    ]);
}

fn drops(d: &Rvsd, br: &str, port: &str) -> (serde_json::Value, serde_json::Value) {
    let v = d.json(&["dump-ports", br, port]);
    let p = &v["ports"][0];
    (p["rx_dropped"].clone(), p["tx_dropped"].clone())
}

/// rvs ↔ the kernel's vxlan: ping both ways, 64 MiB of TCP both ways,
/// VNI 43 isolated from VNI 42, an oversized inner frame counted
/// `too_big`, and `show` reporting the options.
#[test]
fn vxlan_kernel_interop() {
    if !require_root() {
        return;
    }
    let (a, b) = underlay_pair();
    let d = Rvsd::start();
    let br = d.add_br();
    let vx = uniq('x');
    let remote = Netns::new();
    let veth = underlay(&remote, &a, &b);
    kernel_vxlan(&remote, "vx42", 42, &b, &a, &veth.peer);
    remote.configure("vx42", Some("10.46.0.2/24"));
    d.ok(&[
        "add-port",
        &br,
        &vx,
        "type=vxlan",
        &format!("options:remote_ip={b}"),
        &format!("options:local_ip={a}"),
        "options:key=42",
    ]);
    let h = tap_host(&d, &br, &[], Some("10.46.0.1/24"));
    set_mtu(&h.ns, &h.dev, OVERLAY_MTU);

    let info = d.show_port(&br, &vx);
    assert_eq!(info.kind, "vxlan");
    assert!(info.up, "{info:?}");
    assert_eq!(info.options.get("remote_ip"), Some(&b));
    assert_eq!(info.options.get("local_ip"), Some(&a));
    assert_eq!(info.options.get("key").map(String::as_str), Some("42"));
    let text = d.ok(&["show"]);
    assert!(
        text.contains(&format!(
            "options: {{key=\"42\", local_ip=\"{a}\", remote_ip=\"{b}\"}}"
        )),
        "{text}"
    );

    // Ping both ways.
    h.assert_ping("10.46.0.2");
    let r = ping(&remote, "10.46.0.1", 3);
    assert!(r.received >= 1, "kernel vx42 cannot ping rvs: {}", r.output);
    // NORMAL learned the remote's MAC on the tunnel port.
    let fdb = d.fdb(&br);
    let vx_no = info.ofport;
    assert!(
        fdb.iter().any(|e| e.port == vx_no),
        "no MAC learned on the tunnel port: {fdb:?}"
    );

    // VNI 43 on the same remote endpoint, in its own namespace: isolated.
    kernel_vxlan(&remote, "vx43", 43, &b, &a, &veth.peer);
    let ns43 = Netns::new();
    remote.exec(&["ip", "link", "set", "vx43", "netns", &ns43.name]);
    ns43.configure("vx43", Some("10.46.0.3/24"));
    let r = ping(&ns43, "10.46.0.1", 2);
    assert_eq!(r.received, 0, "VNI 43 reached VNI 42: {}", r.output);
    h.assert_no_ping("10.46.0.3");
    let (rx, _) = drops(&d, &br, &vx);
    assert!(
        rx["tunnel_no_port"].as_u64().unwrap_or(0) > 0,
        "VNI 43 datagrams not counted: {rx}"
    );
    // VNI 42 still works.
    h.assert_ping("10.46.0.2");

    // TCP, 64 MiB each way, over the kernel's vxlan.
    let kernel_host = Host {
        mac: remote.mac("vx42"),
        ns: remote,
        dev: "vx42".to_string(),
        port: String::new(),
        ip: Some("10.46.0.2".to_string()),
        veth: Some(veth),
    };
    for (cli, srv, what) in [
        (&h, &kernel_host, "rvs -> kernel"),
        (&kernel_host, &h, "kernel -> rvs"),
    ] {
        let (sent, got) = tcp_transfer(cli, srv, BYTES);
        assert!(sent >= BYTES, "{what}: client sent {sent} of {BYTES} bytes");
        assert!(
            got >= BYTES / 10 * 9,
            "{what}: server received {got} of {BYTES}"
        );
    }

    // An inner frame that does not fit the underlay after 50 bytes of
    // encapsulation is a counted drop (DF set, no fragmentation).
    set_mtu(&h.ns, &h.dev, "1500");
    let out = h.ns.exec_quiet(&[
        "ping",
        "-n",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        "1",
        "-M",
        "do",
        "-s",
        "1472",
        "10.46.0.2",
    ]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(" 0% packet loss"),
        "an oversized frame crossed the tunnel"
    );
    let (_, tx) = drops(&d, &br, &vx);
    assert!(tx["too_big"].as_u64().unwrap_or(0) >= 1, "{tx}");
    // show says by how much: a 1514-byte frame, 1464 fit over 1500.
    let info = d.show_port(&br, &vx);
    let note = info.too_big.unwrap_or_default();
    assert!(
        note.contains("last refused frame 1514 bytes, 50 over")
            && note.contains(&format!("MTU toward {b} is 1500"))
            && note.contains("inner MTU 1450"),
        "{note}"
    );
    let text = d.ok(&["show"]);
    assert!(text.contains("too_big: last refused frame 1514"), "{text}");
    drop(kernel_host);
    drop(ns43);
}

/// Two rvsd daemons joined by a VXLAN tunnel: ping and 64 MiB of TCP.
#[test]
fn vxlan_rvs_to_rvs() {
    rvs_to_rvs("vxlan", &["options:key=7"], OVERLAY_MTU);
}

/// Geneve between two rvsd: as VXLAN, on UDP 6081, VNI 7.
#[test]
fn geneve_rvs_to_rvs() {
    rvs_to_rvs("geneve", &["options:key=7"], OVERLAY_MTU);
}

/// Ethernet over GRE between two rvsd (a raw IP socket of protocol 47):
/// with a checksummed key field (1500 − 46 bytes of overhead), and
/// without a key (38).
#[test]
fn gre_rvs_to_rvs() {
    rvs_to_rvs("gre", &["options:key=0x7", "options:csum=true"], "1454");
    rvs_to_rvs("gre", &[], "1462");
}

/// Two rvsd joined by a `kind` tunnel with `options`: ping both ways and
/// 64 MiB of TCP across, the tunnel ports count it, `show` has the
/// options, `trace` says how a frame is encapsulated.
fn rvs_to_rvs(kind: &str, options: &[&str], mtu: &str) {
    if !require_root() {
        return;
    }
    let (a, b) = underlay_pair();
    // Both tunnel endpoints live in the root namespace (both daemons run
    // there): two addresses on one veth end; the kernel delivers between
    // local addresses over loopback.
    let (_spare, v) = local_endpoints(&[&a, &b]);
    let d1 = Rvsd::start();
    let d2 = Rvsd::start();
    let (br1, br2) = (d1.add_br(), d2.add_br());
    let (x1, x2) = (uniq('x'), uniq('x'));
    for (d, br, x, local, remote) in [(&d1, &br1, &x1, &a, &b), (&d2, &br2, &x2, &b, &a)] {
        let mut args = vec![
            "add-port".to_string(),
            br.to_string(),
            x.to_string(),
            format!("type={kind}"),
            format!("options:remote_ip={remote}"),
            format!("options:local_ip={local}"),
        ];
        args.extend(options.iter().map(|o| o.to_string()));
        d.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let h1 = tap_host(&d1, &br1, &[], Some("10.47.0.1/24"));
    let h2 = tap_host(&d2, &br2, &[], Some("10.47.0.2/24"));
    for h in [&h1, &h2] {
        set_mtu(&h.ns, &h.dev, mtu);
    }
    h1.assert_ping("10.47.0.2");
    h2.assert_ping("10.47.0.1");
    let (sent, got) = tcp_transfer(&h1, &h2, BYTES);
    assert!(
        sent >= BYTES && got >= BYTES / 10 * 9,
        "{kind}: sent {sent}, got {got}"
    );
    let st = d1.port_stats(&br1, &x1);
    assert!(
        st.tx_packets > 1000 && st.rx_packets > 1000,
        "{kind}: {st:?}"
    );
    // New options on both ends (`set port`): the ports carry on with them.
    for (d, br, x) in [(&d1, &br1, &x1), (&d2, &br2, &x2)] {
        d.ok(&["set", "port", x, "options:key=9", "options:ttl=17"]);
        let info = d.show_port(br, x);
        assert_eq!(info.options.get("key").map(String::as_str), Some("9"));
        assert!(info.up, "{info:?}");
    }
    h1.assert_ping("10.47.0.2");
    let info = d1.show_port(&br1, &x1);
    assert_eq!(info.kind, kind);
    assert_eq!(info.options.get("remote_ip"), Some(&b));
    // The tap is OpenFlow port 2 (the tunnel came first).
    let tr = d1.ok(&["trace", &br1, "in_port=2,arp"]);
    let want = match kind {
        "vxlan" => format!("encapsulated in VXLAN to {b}:4789 with VNI 9"),
        "geneve" => format!("encapsulated in Geneve to {b}:6081 with VNI 9"),
        _ => format!("encapsulated in GRE to {b} with key 9"),
    };
    assert!(tr.contains(&want), "{tr}");
    drop(v);
}

/// Bad tunnel options are refused with a message that says what is
/// wrong, and change nothing; good ones are persisted, exported and
/// restored after a restart. Loopback only, no underlay needed.
#[test]
fn vxlan_options_validation_and_persistence() {
    if !require_root() {
        return;
    }
    let mut d = Rvsd::start();
    let br = d.add_br();
    let vx = uniq('x');
    let port = (40000 + std::process::id() % 20000).to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["type=vxlan"], "needs options:remote_ip"),
        (
            &["type=vxlan", "options:remote_ip=10.0.0.300"],
            "IPv4 address",
        ),
        (
            &[
                "type=vxlan",
                "options:remote_ip=127.0.0.2",
                "options:key=16777216",
            ],
            "24 bits",
        ),
        (
            &[
                "type=vxlan",
                "options:remote_ip=flow",
                "options:local_ip=0.0.0.0",
            ],
            "unicast",
        ),
        (
            &[
                "type=vxlan",
                "options:remote_ip=127.0.0.2",
                "options:colour=red",
            ],
            "unknown option",
        ),
        (&["options:remote_ip=127.0.0.2"], "only for tunnel ports"),
        (
            &[
                "type=vxlan",
                "options:remote_ip=127.0.0.2",
                "options:local_ip=192.0.2.77",
            ],
            "not an address of this host",
        ),
    ];
    for (settings, want) in cases {
        let mut args = vec!["add-port", &br, &vx];
        args.extend_from_slice(settings);
        let (code, err) = d.fails(&args);
        assert_eq!(code, 1, "{settings:?}: {err}");
        assert!(err.contains(want), "{settings:?}: {err:?} lacks {want:?}");
        let ports = d.ok(&["list-ports", &br]);
        assert!(
            !ports.contains(&vx),
            "{settings:?} left a port behind: {ports}"
        );
    }
    let opts = [
        "type=vxlan".to_string(),
        "options:remote_ip=127.0.0.2".to_string(),
        "options:local_ip=127.0.0.1".to_string(),
        "options:key=0x2b".to_string(),
        format!("options:dst_port={port}"),
        "options:ttl=9".to_string(),
    ];
    let mut args = vec!["add-port", br.as_str(), vx.as_str()];
    args.extend(opts.iter().map(String::as_str));
    d.ok(&args);
    // The same (local_ip, dst_port, remote, key) twice: refused, says why.
    let vx2 = uniq('x');
    let mut args2 = vec!["add-port", br.as_str(), vx2.as_str()];
    args2.extend(opts.iter().map(String::as_str));
    let (_, err) = d.fails(&args2);
    assert!(
        err.contains("already receives remote_ip=127.0.0.2 key=43"),
        "{err}"
    );
    // set port changes options of the running port; a bad value changes
    // nothing; an empty value removes an option.
    d.ok(&["set", "port", &vx, "options:key=5", "options:ttl=12"]);
    let info = d.show_port(&br, &vx);
    assert_eq!(info.options.get("key").map(String::as_str), Some("5"));
    assert_eq!(info.options.get("ttl").map(String::as_str), Some("12"));
    assert!(info.up, "{info:?}");
    let (_, err) = d.fails(&["set", "port", &vx, "options:key=16777216", "options:ttl=1"]);
    assert!(err.contains("24 bits"), "{err}");
    let (_, err) = d.fails(&["set", "port", &vx, "options:colour=red"]);
    assert!(err.contains("unknown option"), "{err}");
    d.ok(&["set", "port", &vx, "options:ttl="]);
    let info = d.show_port(&br, &vx);
    assert_eq!(info.options.get("ttl"), None, "{info:?}");
    assert_eq!(info.options.get("key").map(String::as_str), Some("5"));
    // Back to what the rest of the test expects.
    d.ok(&["set", "port", &vx, "options:key=0x2b", "options:ttl=9"]);

    let export = d.ok(&["export"]);
    assert!(export.contains("type = \"vxlan\""), "{export}");
    assert!(export.contains("key = \"43\""), "{export}");
    assert!(
        export.contains(&format!("dst_port = \"{port}\"")),
        "{export}"
    );
    d.stop();
    d.restart();
    let info = d.show_port(&br, &vx);
    assert_eq!(info.kind, "vxlan");
    assert!(info.up, "{info:?}");
    assert_eq!(info.options.get("key").map(String::as_str), Some("43"));
    assert_eq!(info.options.get("ttl").map(String::as_str), Some("9"));

    // apply with changed options re-creates the port (shown in the diff).
    let cfg = export.replace("key = \"43\"", "key = \"44\"");
    let dir = TempDir::new();
    let file = dir.0.join("want.toml");
    std::fs::write(&file, &cfg).unwrap();
    let diff = d.ok(&["apply", file.to_str().unwrap()]);
    assert!(diff.contains(&vx), "{diff}");
    let info = poll(Duration::from_secs(5), || {
        let i = d.show_port(&br, &vx);
        (i.options.get("key").map(String::as_str) == Some("44") && i.up).then_some(i)
    });
    assert!(info.is_some(), "apply did not change the key: {diff}");
}

/// Three rvsd on local underlay addresses, a VXLAN tunnel (with `extra`
/// options) between each of `pairs` (one UDP port per pair), and a TAP
/// host on each bridge at `NET.{i+1}/24` with the overlay MTU. Fields drop
/// hosts first, then the underlay, then the daemons.
struct Three {
    hosts: Vec<Host>,
    _v: Veth,
    _spare: Netns,
    ds: Vec<Rvsd>,
    brs: Vec<String>,
    /// (daemon index, tunnel port name).
    tunnels: Vec<(usize, String)>,
}

static UDP_PORTS: AtomicU32 = AtomicU32::new(0);

fn three_rvsd(pairs: &[(usize, usize)], extra: &[&str], net: &str) -> Three {
    let (a, b) = underlay_pair();
    let (c, _) = underlay_pair();
    let (spare, v) = local_endpoints(&[&a, &b, &c]);
    let ips = [a, b, c];
    let ds: Vec<Rvsd> = (0..3).map(|_| Rvsd::start()).collect();
    let brs: Vec<String> = ds.iter().map(Rvsd::add_br).collect();
    let mut tunnels = Vec::new();
    for &(i, j) in pairs {
        let k = UDP_PORTS.fetch_add(1, Ordering::Relaxed);
        let port = (30000 + (std::process::id() % 5000) * 6 + k).to_string();
        for (me, other) in [(i, j), (j, i)] {
            let x = uniq('x');
            let mut args = vec![
                "add-port".to_string(),
                brs[me].clone(),
                x.clone(),
                "type=vxlan".to_string(),
                format!("options:remote_ip={}", ips[other]),
                format!("options:local_ip={}", ips[me]),
                format!("options:dst_port={port}"),
            ];
            args.extend(extra.iter().map(|o| o.to_string()));
            ds[me].ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
            tunnels.push((me, x));
        }
    }
    let hosts = (0..3)
        .map(|i| {
            let h = tap_host(&ds[i], &brs[i], &[], Some(&format!("{net}.{}/24", i + 1)));
            set_mtu(&h.ns, &h.dev, OVERLAY_MTU);
            h
        })
        .collect();
    Three {
        hosts,
        _v: v,
        _spare: spare,
        ds,
        brs,
        tunnels,
    }
}

/// Three rvsd in a full mesh of tunnels (one UDP port per pair) with
/// NORMAL: every host reaches every other, and floods do not loop (split
/// horizon between tunnel ports): the tunnels carry a bounded number of
/// frames, not a broadcast storm.
#[test]
fn vxlan_full_mesh_no_loop() {
    if !require_root() {
        return;
    }
    let t = three_rvsd(&[(0, 1), (0, 2), (1, 2)], &["options:key=9"], "10.48.0");
    let (ds, brs, hosts) = (&t.ds, &t.brs, &t.hosts);
    hosts[0].assert_ping("10.48.0.2");
    hosts[0].assert_ping("10.48.0.3");
    hosts[1].assert_ping("10.48.0.3");
    std::thread::sleep(Duration::from_millis(500));
    let total = |tunnels: &[(usize, String)]| -> u64 {
        tunnels
            .iter()
            .map(|(i, x)| ds[*i].port_stats(&brs[*i], x).tx_packets)
            .sum()
    };
    let t1 = total(&t.tunnels);
    std::thread::sleep(Duration::from_secs(1));
    let t2 = total(&t.tunnels);
    // Idle (a few stray IPv6/ARP frames at most): a loop would send
    // thousands per second.
    assert!(
        t2 - t1 < 50,
        "tunnels still busy after the pings: {t1} -> {t2}"
    );
    assert!(t1 < 500, "{t1} frames on the tunnels for 9 pings");
}

/// A chain A — B — C (tunnels A↔B and B↔C only): with split horizon (the
/// default) B does not relay between its tunnels, so A cannot reach C;
/// `set port … split_horizon=false` on B's tunnels makes B a hub, and it
/// is exported, persisted and shown.
#[test]
fn vxlan_hub_relays_without_split_horizon() {
    if !require_root() {
        return;
    }
    let t = three_rvsd(&[(0, 1), (1, 2)], &[], "10.52.0");
    let (ds, brs, hosts) = (&t.ds, &t.brs, &t.hosts);
    let hub_ports: Vec<&String> = t
        .tunnels
        .iter()
        .filter(|(i, _)| *i == 1)
        .map(|(_, x)| x)
        .collect();
    hosts[0].assert_ping("10.52.0.2");
    hosts[2].assert_ping("10.52.0.2");
    assert_eq!(
        hosts[0].ping("10.52.0.3", 2).received,
        0,
        "B relayed between tunnels"
    );
    for x in &hub_ports {
        ds[1].ok(&["set", "port", x, "split_horizon=false"]);
        assert!(!ds[1].show_port(&brs[1], x).split_horizon);
    }
    hosts[0].assert_ping("10.52.0.3");
    let export = ds[1].ok(&["export"]);
    assert!(export.contains("split_horizon = false"), "{export}");
    let text = ds[1].ok(&["show"]);
    assert!(text.contains("split_horizon: false"), "{text}");
    let (_, err) = ds[1].fails(&["set", "port", hub_ports[0], "split_horizon=maybe"]);
    assert!(err.contains("expected true or false"), "{err}");
}

/// Flow-based tunnels (`remote_ip=flow`, `key=flow`): a hub rvsd with one
/// tunnel port serves two spokes (fixed ports, VNIs 7 and 8) through one
/// socket. The hub's flows pick the remote and VNI per destination with
/// `set_field:…->tun_dst` / `set_tunnel`, and tell the spokes apart on
/// receive by `tun_src` and `tun_id`; a frame with no `tun_dst` is a
/// counted `tunnel_no_dst` drop; the flows read back as written.
#[test]
fn vxlan_flow_based_hub() {
    if !require_root() {
        return;
    }
    let (a, b) = underlay_pair();
    let (c, _) = underlay_pair();
    let (_spare, v) = local_endpoints(&[&a, &b, &c]);
    let port = (40000 + (std::process::id() % 10000) as u16).to_string();
    let hub = Rvsd::start();
    let spokes = [Rvsd::start(), Rvsd::start()];
    let hbr = hub.add_br();
    let xf = uniq('x');
    hub.ok(&[
        "add-port",
        &hbr,
        &xf,
        "type=vxlan",
        "options:remote_ip=flow",
        "options:key=flow",
        &format!("options:local_ip={a}"),
        &format!("options:dst_port={port}"),
        "ofport_request=10",
    ]);
    let shown = hub.show_port(&hbr, &xf);
    assert_eq!(
        shown.options.get("remote_ip").map(String::as_str),
        Some("flow")
    );
    assert_eq!(shown.options.get("key").map(String::as_str), Some("flow"));
    let h0 = tap_host(&hub, &hbr, &["ofport_request=1"], Some("10.49.0.1/24"));
    set_mtu(&h0.ns, &h0.dev, OVERLAY_MTU);
    let mut hosts = Vec::new();
    for (i, (d, (local, vni))) in spokes.iter().zip([(&b, 7), (&c, 8)]).enumerate() {
        let br = d.add_br();
        d.ok(&[
            "add-port",
            &br,
            &uniq('x'),
            "type=vxlan",
            &format!("options:remote_ip={a}"),
            &format!("options:local_ip={local}"),
            &format!("options:dst_port={port}"),
            &format!("options:key={vni}"),
        ]);
        let h = tap_host(d, &br, &[], Some(&format!("10.49.0.{}/24", i + 2)));
        set_mtu(&h.ns, &h.dev, OVERLAY_MTU);
        hosts.push(h);
    }
    let flows = [
        format!("priority=10,arp,arp_tpa=10.49.0.2,actions=set_field:{b}->tun_dst,set_tunnel:7,output:10"),
        format!("priority=10,ip,nw_dst=10.49.0.2,actions=set_field:{b}->tun_dst,set_field:0x7->tun_id,output:10"),
        format!("priority=10,arp,arp_tpa=10.49.0.3,actions=set_field:{c}->tun_dst,set_tunnel:8,output:10"),
        format!("priority=10,ip,nw_dst=10.49.0.3,actions=set_field:{c}->tun_dst,set_tunnel:8,output:10"),
        "priority=10,arp,arp_tpa=10.49.0.9,actions=output:10".to_string(),
        format!("priority=20,tun_id=0x7,tun_src={b},in_port=10,actions=output:1"),
        format!("priority=20,tun_id=0x8,tun_src={c},in_port=10,actions=output:1"),
        "priority=5,in_port=1,actions=drop".to_string(),
        "priority=5,in_port=10,actions=drop".to_string(),
    ];
    hub.ok(&["del-flows", &hbr]);
    for f in &flows {
        hub.ok(&["add-flow", &hbr, f]);
    }
    h0.assert_ping("10.49.0.2");
    h0.assert_ping("10.49.0.3");
    hosts[0].assert_ping("10.49.0.1");
    hosts[1].assert_ping("10.49.0.1");
    // The receive flows saw both spokes, told apart by tun_src/tun_id.
    let dump = hub.ok(&["dump-flows", &hbr]);
    for (src, id) in [(&b, "0x7"), (&c, "0x8")] {
        let line = dump
            .lines()
            .find(|l| l.contains(&format!("tun_id={id}")) && l.contains(&format!("tun_src={src}")))
            .unwrap_or_else(|| panic!("no tun_id={id},tun_src={src} flow in\n{dump}"));
        assert!(!line.contains("n_packets=0,"), "{line}");
    }
    // trace shows the encapsulation the flows chose (and sends nothing).
    let tr = hub.ok(&["trace", &hbr, "in_port=1,arp,arp_tpa=10.49.0.3"]);
    assert!(
        tr.contains(&format!("encapsulated in VXLAN to {c}:{port} with VNI 8")),
        "{tr}"
    );
    // A frame from a spoke, as the hub's port would see it.
    let tr = hub.ok(&[
        "trace",
        &hbr,
        &format!("in_port=10,tun_id=0x7,tun_src={b},tun_dst={a},arp"),
    ]);
    assert!(tr.contains(&h0.port), "{tr}");
    assert!(
        tr.contains(&format!("decapsulated from VXLAN: outer {b} -> {a}, VNI 7")),
        "{tr}"
    );
    // Nowhere to send: counted, not sent.
    let r = h0.ping("10.49.0.9", 2);
    assert_eq!(r.received, 0);
    let (_, tx) = drops(&hub, &hbr, &xf);
    assert!(
        tx["tunnel_no_dst"].as_u64().unwrap_or(0) > 0,
        "tx_dropped: {tx}"
    );
    drop(hosts);
    drop(h0);
    drop(v);
}

/// Two fixed tunnel ports on one local address and UDP port (as Neutron's
/// OVS agent makes them: a port per remote, all on 4789) share its
/// socket: each spoke's datagrams reach its own port (its counters, its
/// MAC in `fdb-show`), whichever port's descriptor the worker read them
/// from.
#[test]
fn vxlan_ports_share_a_socket() {
    if !require_root() {
        return;
    }
    let (a, b) = underlay_pair();
    let (c, _) = underlay_pair();
    let (_spare, v) = local_endpoints(&[&a, &b, &c]);
    let port = (45000 + (std::process::id() % 10000) as u16).to_string();
    let hub = Rvsd::start();
    let hbr = hub.add_br();
    let spokes = [Rvsd::start(), Rvsd::start()];
    let mut xs = Vec::new();
    let mut hosts = Vec::new();
    for (i, (d, remote)) in spokes.iter().zip([&b, &c]).enumerate() {
        let x = uniq('x');
        hub.ok(&[
            "add-port",
            &hbr,
            &x,
            "type=vxlan",
            &format!("options:remote_ip={remote}"),
            &format!("options:local_ip={a}"),
            &format!("options:dst_port={port}"),
            "options:key=9",
        ]);
        xs.push(x);
        let br = d.add_br();
        d.ok(&[
            "add-port",
            &br,
            &uniq('x'),
            "type=vxlan",
            &format!("options:remote_ip={a}"),
            &format!("options:local_ip={remote}"),
            &format!("options:dst_port={port}"),
            "options:key=9",
        ]);
        let h = tap_host(d, &br, &[], Some(&format!("10.50.0.{}/24", i + 2)));
        set_mtu(&h.ns, &h.dev, OVERLAY_MTU);
        hosts.push(h);
    }
    let h0 = tap_host(&hub, &hbr, &[], Some("10.50.0.1/24"));
    set_mtu(&h0.ns, &h0.dev, OVERLAY_MTU);
    h0.assert_ping("10.50.0.2");
    h0.assert_ping("10.50.0.3");
    let fdb = hub.fdb(&hbr);
    for (h, x) in hosts.iter().zip(&xs) {
        assert!(
            fdb.iter().any(|e| e.mac == h.mac && &e.port_name == x),
            "{} not learned on {x}: {fdb:?}",
            h.mac
        );
        assert!(hub.port_stats(&hbr, x).rx_packets > 0);
    }
    // Deleting one keeps the other's traffic flowing on the shared socket.
    hub.ok(&["del-port", &hbr, &xs[0]]);
    h0.assert_ping("10.50.0.3");
    drop(hosts);
    drop(h0);
    drop(v);
}
