//! Malformed frames: counted as `malformed` rx drops on the port they came
//! in on, and never forwarded as something else.
//!
//! Frames are injected with `AF_PACKET` sockets from namespaces:
//! - into a switch-owned TAP (the namespace end transmits, rvsd reads the
//!   frame unchanged from its TAP fd), for every case;
//! - into a `system` port on a veth, for the cases the kernel passes on.
//!   A veth's receive path strips VLAN tags into metadata before packet
//!   sockets see the frame and drops frames whose tag is cut short, so
//!   truncated VLAN headers only reach rvsd through a TAP;
//! - runts (shorter than an Ethernet header) cannot be sent on an Ethernet
//!   device at all (`AF_PACKET` refuses them with EINVAL); they reach rvsd
//!   from a `system` port on a layer-3 TUN device, whose packets carry no
//!   Ethernet header, written by the test through the TUN fd.
//!
//! A capture host on a third port must see none of them, and no port's
//! `tx_packets` may move, while a well-formed frame sent afterwards from
//! each injector is forwarded (so the capture would have seen them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use common::*;

const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;

/// An IPv4 header with the given IHL (in 32-bit words) and total length,
/// followed by `extra` zero bytes.
fn ipv4(ihl: u8, total: u16, extra: usize) -> Vec<u8> {
    let mut ip = vec![0x40 | ihl, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&[10, 7, 0, 1, 10, 7, 0, 2]);
    ip.extend(std::iter::repeat_n(0u8, extra));
    ip
}

/// An IPv6 header (`payload_len`, first next-header `next`) and `rest`.
fn ipv6(payload_len: u16, next: u8, rest: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&payload_len.to_be_bytes());
    ip.extend_from_slice(&[next, 64]);
    ip.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ip.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    ip.extend_from_slice(rest);
    ip
}

/// The malformed frames from `src`: (name, frame, reaches rvsd over a
/// veth). All are broadcast, so NORMAL would flood them.
fn frames(src: [u8; 6]) -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut hdr = BROADCAST.to_vec();
    hdr.extend_from_slice(&src);
    let with = |ty: &[u8], rest: &[u8]| {
        let mut f = hdr.clone();
        f.extend_from_slice(ty);
        f.extend_from_slice(rest);
        f
    };
    vec![
        // 802.1Q TPID and nothing after it.
        ("vlan_tpid_only", with(&[0x81, 0x00], &[]), false),
        // TPID and TCI, but no inner Ethertype.
        (
            "vlan_no_ethertype",
            with(&[0x81, 0x00], &[0x00, 0x0a]),
            false,
        ),
        // 802.1ad outer tag complete, inner 802.1Q tag cut after its TPID.
        (
            "qinq_inner_cut",
            with(&[0x88, 0xa8], &[0x00, 0x0a, 0x81, 0x00]),
            false,
        ),
        // IPv4 with IHL 3 (< 5 words).
        (
            "ipv4_ihl_3",
            eth(BROADCAST, src, None, IPV4, &ipv4(3, 40, 20)),
            true,
        ),
        // IPv4 with IHL 15 (60 bytes) but a total length of 40.
        (
            "ipv4_ihl_past_total",
            eth(BROADCAST, src, None, IPV4, &ipv4(15, 40, 60)),
            true,
        ),
        // IPv4 header cut to 12 bytes.
        (
            "ipv4_cut",
            eth(BROADCAST, src, None, IPV4, &ipv4(5, 40, 0)[..12]),
            true,
        ),
        // IPv6 hop-by-hop header claiming 48 bytes, 8 present.
        (
            "ipv6_hopopts_past_end",
            eth(
                BROADCAST,
                src,
                None,
                IPV6,
                &ipv6(8, 0, &[17, 5, 0, 0, 0, 0, 0, 0]),
            ),
            true,
        ),
        // IPv6 hop-by-hop (8 bytes, complete) then a routing header with
        // only 4 of its 8 bytes.
        (
            "ipv6_chain_cut_in_second",
            eth(
                BROADCAST,
                src,
                None,
                IPV6,
                &ipv6(12, 0, &[43, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0]),
            ),
            true,
        ),
        // IPv6 with a destination-options header whose length runs past
        // the payload length (the frame itself is longer).
        (
            "ipv6_dstopts_past_payload_len",
            eth(
                BROADCAST,
                src,
                None,
                IPV6,
                &ipv6(8, 60, &[17, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            ),
            true,
        ),
        // IPv6 header cut to 30 bytes.
        (
            "ipv6_cut",
            eth(BROADCAST, src, None, IPV6, &ipv6(0, 59, &[])[..30]),
            true,
        ),
    ]
}

/// A layer-3 TUN device in the root namespace (no packet information
/// header), removed when dropped (its fd closes).
struct Tun {
    fd: OwnedFd,
    name: String,
}

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

impl Tun {
    fn new() -> Tun {
        let name = uniq('u');
        // SAFETY: plain open() of a constant NUL-terminated path.
        let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        assert!(
            raw >= 0,
            "/dev/net/tun: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: raw is a fresh fd that we own from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut ifr = IfReq {
            name: [0; 16],
            flags: IFF_TUN | IFF_NO_PI,
            _pad: [0; 22],
        };
        ifr.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: valid fd; ifr is a struct ifreq-sized buffer.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut ifr) };
        assert_eq!(r, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
        disable_ipv6_root(&name);
        run(&["ip", "link", "set", &name, "up"]);
        Tun { fd, name }
    }

    /// Injects one packet as received by the device.
    fn write(&self, pkt: &[u8]) {
        // SAFETY: valid fd; the buffer is valid for pkt.len() bytes.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), pkt.as_ptr().cast(), pkt.len()) };
        assert_eq!(n, pkt.len() as isize, "{}", std::io::Error::last_os_error());
    }
}

/// `tx_packets` of every port.
fn tx_all(d: &Rvsd, br: &str) -> BTreeMap<String, u64> {
    d.ports(br)
        .into_iter()
        .map(|p| (p.name, p.tx_packets))
        .collect()
}

#[test]
fn malformed_frames_are_counted_and_never_forwarded() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    // Both VLAN tags parsed, so that a cut inner tag is malformed (under
    // the default vlan-limit=1 it is payload and the frame is forwarded,
    // as by OVS; see flowtable's extract tests).
    d.ok(&["set", "bridge", &br, "vlan-limit=2"]);
    let via_tap = tap_host(&d, &br, &[], None);
    let via_veth = veth_host(&d, &br, &[], None);
    let cap = veth_host(&d, &br, &[], None);
    let tun = Tun::new();
    d.ok(&["add-port", &br, &tun.name]);
    assert_eq!(d.show_port(&br, &tun.name).kind, "system");

    let tap_raw = via_tap.raw();
    let veth_raw = via_veth.raw();
    let cap_raw = cap.raw();
    std::thread::sleep(Duration::from_millis(200));
    cap_raw.drain();
    let tx_before = tx_all(&d, &br);

    let mut n_tap = 0;
    let mut n_veth = 0;
    let mut sent = Vec::new();
    for (name, f, _) in frames(tap_raw.mac) {
        tap_raw.send(&f);
        sent.push((name, f));
        n_tap += 1;
    }
    for (name, f, over_veth) in frames(veth_raw.mac) {
        if over_veth {
            veth_raw.send(&f);
            sent.push((name, f));
            n_veth += 1;
        }
    }
    // Runts: 4 to 13 bytes (an IPv4 version nibble first, which TUN wants).
    let runts: Vec<Vec<u8>> = [4usize, 10, 13]
        .iter()
        .map(|&n| {
            let mut r = vec![0x45u8; n];
            r[n - 1] = 0x99;
            r
        })
        .collect();
    for r in &runts {
        tun.write(r);
    }

    assert_rx_dropped(&d, &br, &via_tap.port, "malformed", n_tap);
    assert_rx_dropped(&d, &br, &via_veth.port, "malformed", n_veth);
    assert_rx_dropped(&d, &br, &tun.name, "malformed", runts.len() as u64);
    // Nothing went out anywhere.
    let seen = cap_raw.collect(Duration::from_millis(300));
    assert!(seen.is_empty(), "the capture port got {seen:?}");
    assert_eq!(tx_all(&d, &br), tx_before, "a port transmitted");
    // Not counted as anything else.
    for p in [&via_tap.port, &via_veth.port, &tun.name] {
        let s = d.port_stats(&br, p);
        let other: Vec<_> = s
            .rx_dropped
            .iter()
            .filter(|(k, _)| *k != "malformed")
            .collect();
        assert!(other.is_empty(), "{p}: {:?}", s.rx_dropped);
    }
    eprintln!(
        "malformed: {n_tap} via TAP, {n_veth} via veth, {} runts via TUN: {:?}",
        runts.len(),
        sent.iter().map(|(n, _)| *n).collect::<Vec<_>>()
    );

    // Well-formed frames from the same injectors are forwarded: the
    // capture works, and the switch kept working.
    for raw in [&tap_raw, &veth_raw] {
        let arp = arp_request(raw.mac, None, ip4("10.7.0.1"), ip4("10.7.0.2"));
        raw.send(&arp);
        let src = raw.mac;
        let got = cap_raw.recv_until(Duration::from_secs(2), |f| {
            (f.src == src && f.arp_request().is_some()).then_some(())
        });
        assert!(
            got.is_some(),
            "a good frame from {} was not forwarded",
            mac_str(&src)
        );
    }
    assert_rx_dropped(&d, &br, &via_tap.port, "malformed", n_tap);
    assert_rx_dropped(&d, &br, &via_veth.port, "malformed", n_veth);
}
