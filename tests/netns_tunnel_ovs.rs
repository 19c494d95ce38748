//! Tunnel ports against Open vSwitch's userspace tunnels: rvs on one
//! "host", OVS's netdev datapath on the other, the same tunnel type and
//! keys on both, tenants pinging and moving TCP across.
//!
//! # What?
//! For each tunnel type (VXLAN, Geneve, GRE, each with OVS's defaults:
//! VXLAN to UDP 4789, Geneve to UDP 6081, GRE as L2 GRE (TEB, 0x6558)
//! with `options:key`): ping both ways in VNI 42 and VNI 43, 64 MiB of TCP
//! each way in VNI 42, and no reachability between the VNIs (every tenant
//! has an address in one /24, so only the key keeps them apart).
//!
//! # Topology
//! ```text
//!  [root ns] rvsd                                  [OVS ns] ovs-vswitchd (netdev)
//!   bridge 42: tap ─ tunnel port key=42 ─┐          ┌─ br-phy: veth end + LOCAL (underlay IP B)
//!   bridge 43: tap ─ tunnel port key=43 ─┤ A/30     │    ▲ outer packets (tnl push/pop)
//!                  kernel UDP/IP socket ─┴── veth ──┘    │
//!                                                   bridge 42: tunnel key=42 ─ tap
//!                                                   bridge 43: tunnel key=43 ─ tap
//!   tenants (one namespace each), all in 10.51.0.0/24:
//!     rvs 42 .1   OVS 42 .2   rvs 43 .3   OVS 43 .4
//! ```
//! - rvs's side is as in `netns_vxlan`: rvsd runs in the root namespace,
//!   its underlay address A is a /30 (from 172.16.0.0/12, derived from
//!   the test's pid) on the root end of a veth the test creates, and the
//!   kernel routes the outer packets. Its tenants are TAP hosts.
//! - OVS's userspace tunnels do not use the kernel's IP stack: the
//!   datapath pushes and pops the outer headers itself and sends the
//!   outer packet out of the bridge whose LOCAL port holds the route to
//!   the remote. So OVS needs (in its own namespace, `common::ovs`) a
//!   netdev bridge `br-phy` with the underlay veth end as a port and the
//!   underlay address B on `br-phy`'s internal port (OVS learns the route
//!   from the kernel's table, `ovs/route/show`), plus, per key, a netdev
//!   bridge with the tunnel port (`remote_ip=A options:key=N`) and a
//!   `type=tap` port moved into the tenant's namespace. Without TSO
//!   (the default) OVS opens that tap without offloads, so the tenant's
//!   kernel segments and checksums in software.
//! - OVS resolves the remote's MAC by snooping ARP on `br-phy`
//!   (`tnl/arp/show`); until it has, it sends an ARP request instead of
//!   the encapsulated frame, which is dropped. The test warms every pair
//!   up with single pings both ways, retried for a bounded time, before
//!   it asserts anything.
//! - Tenant MTUs are the underlay's 1500 minus the encapsulation (50 for
//!   VXLAN and Geneve without options, 42 for GRE with a key): neither
//!   switch fragments (both set DF).
//!
//! Everything is removed on drop, also when a test fails: the OVS daemons
//! (by PID) and its namespace, rvsd, the tenants' namespaces, the veth.
//! On a failed check, the message carries OVS's tunnel neighbour and
//! route tables, its datapath flows and rvs's port counters.
//!
//! # Limits
//! IPv4 underlay only; no Geneve options, GRE checksums or sequence
//! numbers. OVS runs without userspace TSO (its default): OVS 3.1 with
//! `userspace-tso-enable=true` drops every frame with offload flags at
//! the tunnel push ("Tunneling packets with HW offload flags is not
//! supported"), i.e. all tenant TCP and UDP (`benches/overlay.sh`).
//! About 20 s for the VXLAN case with a debug rvsd.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::ovs::{have_ovs, Ovs};
use common::*;

const BYTES: u64 = 64 * 1024 * 1024;
/// The underlay's MTU (veth default).
const UNDERLAY_MTU: usize = 1500;
/// How long a tenant pair gets to reach each other the first time.
const WARM_LIMIT: Duration = Duration::from_secs(15);

/// A tunnel type, with the same name as rvs's and OVS's `type=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Vxlan,
    Geneve,
    Gre,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Vxlan => "vxlan",
            Kind::Geneve => "geneve",
            Kind::Gre => "gre",
        }
    }

    /// Bytes in front of the inner frame counted against the underlay
    /// MTU: outer IPv4 (20) + UDP (8) + VXLAN/Geneve (8), or GRE with a
    /// key (8), + the inner Ethernet header (14).
    fn overhead(self) -> usize {
        match self {
            Kind::Vxlan | Kind::Geneve => 20 + 8 + 8 + 14,
            Kind::Gre => 20 + 8 + 14,
        }
    }

    fn tenant_mtu(self) -> String {
        (UNDERLAY_MTU - self.overhead()).to_string()
    }
}

static NET: AtomicU32 = AtomicU32::new(0);

/// A fresh /30 for this process: (rvs side, OVS side). The same
/// 172.16.0.0/12 scheme as `netns_vxlan`, from the top of the pid's /24
/// (that file counts from the bottom), so the two never overlap.
fn underlay_pair() -> (String, String) {
    let pid = std::process::id();
    let k = 63 - NET.fetch_add(1, Ordering::Relaxed);
    assert!(k >= 32, "too many underlays");
    let base = format!("172.{}.{}", 16 + ((pid >> 8) & 15), pid & 255);
    (
        format!("{base}.{}", 4 * k + 1),
        format!("{base}.{}", 4 * k + 2),
    )
}

/// One side's view of a VNI: its bridge, tunnel port and tenant.
struct Segment {
    vni: u32,
    br: String,
    tunnel: String,
    tenant: Host,
}

/// The OVS "host": daemons, `br-phy` with the underlay address, and the
/// per-VNI bridges.
struct OvsHost {
    ovs: Ovs,
    segments: Vec<Segment>,
}

impl OvsHost {
    fn appctl(&self, args: &[&str]) -> String {
        let ctl = self.ovs.dir.0.join("ovs-vswitchd.ctl");
        let out = self
            .ovs
            .cmd("ovs-appctl")
            .arg("-t")
            .arg(&ctl)
            .arg("--timeout=10")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn ofctl(&self, args: &[&str]) -> String {
        let out = self.ovs.cmd("ovs-ofctl").args(args).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// `br-phy` in OVS's namespace with `peer` (the underlay veth end) as a
/// port and `ip`/30 on its internal port.
fn ovs_underlay(ovs: &Ovs, peer: &str, ip: &str) {
    run(&["ip", "-n", &ovs.ns.name, "link", "set", peer, "up"]);
    ovs.vsctl(&[
        "add-br",
        "br-phy",
        "--",
        "set",
        "bridge",
        "br-phy",
        "datapath_type=netdev",
        "--",
        "add-port",
        "br-phy",
        peer,
    ]);
    run(&[
        "ip",
        "-n",
        &ovs.ns.name,
        "addr",
        "add",
        &format!("{ip}/30"),
        "dev",
        "br-phy",
    ]);
    run(&["ip", "-n", &ovs.ns.name, "link", "set", "br-phy", "up"]);
}

/// A netdev bridge in OVS with a tunnel port of `kind` to `remote` with
/// key `vni` (OVS's default UDP port for the type), and a `type=tap`
/// tenant in a namespace of its own, addressed `cidr`.
fn ovs_segment(ovs: &Ovs, kind: Kind, remote: &str, vni: u32, cidr: &str) -> Segment {
    let (br, tunnel, tap) = (uniq('o'), uniq('p'), uniq('p'));
    ovs.vsctl(&[
        "add-br",
        &br,
        "--",
        "set",
        "bridge",
        &br,
        "datapath_type=netdev",
        "--",
        "add-port",
        &br,
        &tunnel,
        "--",
        "set",
        "interface",
        &tunnel,
        &format!("type={}", kind.name()),
        &format!("options:remote_ip={remote}"),
        &format!("options:key={vni}"),
        "--",
        "add-port",
        &br,
        &tap,
        "--",
        "set",
        "interface",
        &tap,
        "type=tap",
    ]);
    // ovs-vswitchd created the tap in its namespace (ovs-vsctl waited for
    // it); it keeps the fd when the device moves.
    let ns = Netns::new();
    run(&[
        "ip",
        "-n",
        &ovs.ns.name,
        "link",
        "set",
        &tap,
        "netns",
        &ns.name,
    ]);
    run(&[
        "ip",
        "-n",
        &ns.name,
        "link",
        "set",
        &tap,
        "mtu",
        &kind.tenant_mtu(),
    ]);
    ns.configure(&tap, Some(cidr));
    let mac = ns.mac(&tap);
    Segment {
        vni,
        br,
        tunnel,
        tenant: Host {
            ns,
            dev: tap.clone(),
            port: tap,
            ip: Some(cidr.split('/').next().unwrap().to_string()),
            mac,
            veth: None,
        },
    }
}

/// An rvs bridge with a tunnel port of `kind` from `local` to `remote`
/// with key `vni`, and a TAP tenant addressed `cidr`.
fn rvs_segment(d: &Rvsd, kind: Kind, local: &str, remote: &str, vni: u32, cidr: &str) -> Segment {
    let br = d.add_br();
    let tunnel = uniq('x');
    d.ok(&[
        "add-port",
        &br,
        &tunnel,
        &format!("type={}", kind.name()),
        &format!("options:remote_ip={remote}"),
        &format!("options:local_ip={local}"),
        &format!("options:key={vni}"),
    ]);
    let tenant = tap_host(d, &br, &[], Some(cidr));
    tenant
        .ns
        .exec(&["ip", "link", "set", &tenant.dev, "mtu", &kind.tenant_mtu()]);
    Segment {
        vni,
        br,
        tunnel,
        tenant,
    }
}

/// What both switches know about the tunnels, for failure messages.
fn diag(o: &OvsHost, d: &Rvsd, rvs: &[Segment]) -> String {
    let mut s = String::new();
    s += "----- OVS tnl/arp/show -----\n";
    s += &o.appctl(&["tnl/arp/show"]);
    s += "----- OVS ovs/route/show -----\n";
    s += &o.appctl(&["ovs/route/show"]);
    s += "----- OVS dpctl/dump-flows -----\n";
    s += &o.appctl(&["dpctl/dump-flows"]);
    for seg in &o.segments {
        let mgmt = format!(
            "unix:{}",
            o.ovs.dir.0.join(format!("{}.mgmt", seg.br)).display()
        );
        s += &format!("----- OVS dump-ports {} (VNI {}) -----\n", seg.br, seg.vni);
        s += &o.ofctl(&["dump-ports", &mgmt]);
    }
    for seg in rvs {
        s += &format!("----- rvs dump-ports {} (VNI {}) -----\n", seg.br, seg.vni);
        s += &String::from_utf8_lossy(&d.ctl(&["dump-ports", &seg.br]).stdout);
    }
    s += "----- OVS log (tail) -----\n";
    let log = std::fs::read_to_string(o.ovs.dir.0.join("ovs-vswitchd.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    for l in &lines[lines.len().saturating_sub(30)..] {
        s += l;
        s += "\n";
    }
    s
}

/// Single pings from `from` to `to`, retried until one is answered (true)
/// or until `limit` (false): the first frames across may be lost while
/// OVS learns the remote's MAC on br-phy and both tenants resolve ARP.
fn warm(from: &Host, to: &str, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    loop {
        if ping(&from.ns, to, 1).received == 1 {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
    }
}

fn interop(kind: Kind) {
    if !require_root() || !have_ovs() {
        return;
    }
    let (a, b) = underlay_pair();
    let ovs = Ovs::start();
    // The underlay: A on the root end (rvs's side, as in netns_vxlan), the
    // other end a port of OVS's br-phy, B on br-phy.
    let veth = Veth::new(&ovs.ns);
    run(&["ip", "addr", "add", &format!("{a}/30"), "dev", &veth.root]);
    ovs_underlay(&ovs, &veth.peer, &b);
    wait_link_up(None, &veth.root);

    let d = Rvsd::start();
    let mut o = OvsHost {
        ovs,
        segments: Vec::new(),
    };
    let mut rvs = Vec::new();
    // rvs 42 .1, OVS 42 .2, rvs 43 .3, OVS 43 .4: one subnet.
    for (i, vni) in [42, 43].into_iter().enumerate() {
        let n = 2 * i as u32;
        rvs.push(rvs_segment(
            &d,
            kind,
            &a,
            &b,
            vni,
            &format!("10.51.0.{}/24", n + 1),
        ));
        o.segments.push(ovs_segment(
            &o.ovs,
            kind,
            &a,
            vni,
            &format!("10.51.0.{}/24", n + 2),
        ));
    }
    for seg in &rvs {
        let info = d.show_port(&seg.br, &seg.tunnel);
        assert_eq!(info.kind, kind.name(), "{info:?}");
        assert!(info.up, "{info:?}");
        assert_eq!(
            info.options.get("key").map(String::as_str),
            Some(seg.vni.to_string().as_str())
        );
    }

    // Warm up each VNI both ways (OVS's tunnel neighbour cache, ARP).
    for (r, s) in rvs.iter().zip(&o.segments) {
        for (from, to, what) in [
            (&r.tenant, &s.tenant, "rvs -> OVS"),
            (&s.tenant, &r.tenant, "OVS -> rvs"),
        ] {
            assert!(
                warm(from, to.ip(), WARM_LIMIT),
                "{} VNI {}: {what}: no reply from {} within {WARM_LIMIT:?}\n{}",
                kind.name(),
                r.vni,
                to.ip(),
                diag(&o, &d, &rvs)
            );
        }
    }
    // OVS resolved rvs's underlay address on br-phy.
    let arp = o.appctl(&["tnl/arp/show"]);
    assert!(
        arp.lines()
            .any(|l| l.starts_with(&format!("{a} ")) && l.contains("br-phy")),
        "{a} not in OVS's tunnel neighbour table:\n{arp}"
    );

    // Ping both ways in both VNIs, now with no loss allowed beyond one.
    for (r, s) in rvs.iter().zip(&o.segments) {
        for (from, to) in [(&r.tenant, &s.tenant), (&s.tenant, &r.tenant)] {
            let p = from.ping(to.ip(), 5);
            assert!(
                p.received >= 4,
                "{} VNI {}: {} -> {}: {}\n{}",
                kind.name(),
                r.vni,
                from.ip(),
                to.ip(),
                p.output,
                diag(&o, &d, &rvs)
            );
        }
    }

    // No reachability across VNIs, either direction, either switch.
    let (r42, r43) = (&rvs[0].tenant, &rvs[1].tenant);
    let (o42, o43) = (&o.segments[0].tenant, &o.segments[1].tenant);
    for (from, to, vni) in [
        (r42, o43, 42),
        (o43, r42, 43),
        (r43, o42, 43),
        (o42, r43, 42),
    ] {
        let p = from.ping(to.ip(), 2);
        assert_eq!(
            p.received,
            0,
            "{}: {} (VNI {vni}) reached {} across VNIs: {}",
            kind.name(),
            from.ip(),
            to.ip(),
            p.output
        );
    }
    // Each rvs bridge learned only its own VNI's remote tenant, on its
    // tunnel port.
    for (k, seg) in rvs.iter().enumerate() {
        let fdb = d.fdb(&seg.br);
        let own = &o.segments[k].tenant.mac;
        let other = &o.segments[1 - k].tenant.mac;
        assert!(
            fdb.iter()
                .any(|e| &e.mac == own && e.port_name == seg.tunnel),
            "VNI {}: {own} not learned on {}: {fdb:?}",
            seg.vni,
            seg.tunnel
        );
        assert!(
            !fdb.iter().any(|e| &e.mac == other),
            "VNI {}: learned VNI {}'s {other}: {fdb:?}",
            seg.vni,
            o.segments[1 - k].vni
        );
    }

    // 64 MiB of TCP each way in VNI 42.
    for (cli, srv, what) in [(r42, o42, "rvs -> OVS"), (o42, r42, "OVS -> rvs")] {
        let (sent, got) = tcp_transfer(cli, srv, BYTES);
        assert!(
            sent >= BYTES,
            "{} {what}: client sent {sent} of {BYTES} bytes\n{}",
            kind.name(),
            diag(&o, &d, &rvs)
        );
        assert!(
            got >= BYTES / 10 * 9,
            "{} {what}: server received {got} of {BYTES}\n{}",
            kind.name(),
            diag(&o, &d, &rvs)
        );
    }
    // And VNI 43 still works after the load.
    r43.assert_ping(o43.ip());

    // Tenants and OVS (namespace with br-phy's veth end) before rvsd.
    drop(rvs);
    drop(o);
    drop(veth);
}

/// rvs `type=vxlan` ↔ OVS userspace `type=vxlan` (UDP 4789).
#[test]
fn ovs_vxlan_interop() {
    interop(Kind::Vxlan);
}

/// rvs `type=geneve` ↔ OVS userspace `type=geneve` (UDP 6081).
#[test]
fn ovs_geneve_interop() {
    interop(Kind::Geneve);
}

/// rvs `type=gre` ↔ OVS userspace `type=gre` (L2 GRE, key).
#[test]
fn ovs_gre_interop() {
    interop(Kind::Gre);
}
