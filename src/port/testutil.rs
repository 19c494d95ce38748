//! Test helpers for ports: root check, network-namespace guards, and a fake
//! host that answers ARP and ICMP echo by hand-built frames.
//!
//! Everything created here carries the prefix `rvsp<pid>` and is removed by
//! [`NetGuard`]'s `Drop`, also when a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::PortIo;
use crate::packet::PacketBuf;

/// True when running as root. Without root: skips (returns false) with a
/// message, unless `CI=true`, where it panics — CI must never skip these.
pub fn require_root() -> bool {
    // SAFETY: geteuid() has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("port I/O tests need root (CAP_NET_ADMIN, netns); CI=true forbids skipping");
    }
    eprintln!("skipping: port I/O tests need root to create TAP/veth devices and namespaces");
    false
}

/// A name unique to this process and test: `rvsp<pid><tag>` (≤ 15 bytes).
pub fn uniq(tag: &str) -> String {
    let n = format!("rvsp{}{}", std::process::id(), tag);
    assert!(n.len() <= 15, "test name {n} too long");
    n
}

/// Runs a command, panicking with its stderr when it fails.
pub fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e} (apt-get install iproute2?)"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes the namespaces and root-namespace links it holds when dropped.
#[derive(Debug, Default)]
pub struct NetGuard {
    /// Namespaces to delete.
    pub netns: Vec<String>,
    /// Links (in the test's namespace) to delete.
    pub links: Vec<String>,
}

impl NetGuard {
    /// Creates namespace `name` and remembers to delete it.
    pub fn add_netns(&mut self, name: &str) {
        run(&["ip", "netns", "add", name]);
        self.netns.push(name.to_owned());
        run(&["ip", "-n", name, "link", "set", "lo", "up"]);
    }
}

impl Drop for NetGuard {
    fn drop(&mut self) {
        for l in &self.links {
            let _ = Command::new("ip")
                .args(["link", "del", l])
                .stderr(Stdio::null())
                .status();
        }
        for ns in &self.netns {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Kills and reaps a child process it holds when dropped.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Starts `ping` in namespace `ns`.
pub fn ping_in(ns: &str, dst: &str, count: u32) -> ChildGuard {
    let count = count.to_string();
    let child = Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-n", "-c", &count, "-i", "0.2", "-W", "2", dst,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run ping (apt-get install iputils-ping)");
    ChildGuard(child)
}

pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IP: u16 = 0x0800;

/// Offset of the L3 header and the VLAN TCI if the frame carries one tag.
pub fn l3(frame: &[u8]) -> Option<(usize, u16, Option<u16>)> {
    if frame.len() < 14 {
        return None;
    }
    let et = u16::from_be_bytes([frame[12], frame[13]]);
    if et == ETH_P_8021Q {
        if frame.len() < 18 {
            return None;
        }
        let tci = u16::from_be_bytes([frame[14], frame[15]]);
        let et = u16::from_be_bytes([frame[16], frame[17]]);
        Some((18, et, Some(tci)))
    } else {
        Some((14, et, None))
    }
}

/// Ethernet header (with an optional 802.1Q tag) followed by `payload`.
pub fn eth(
    dst: [u8; 6],
    src: [u8; 6],
    tci: Option<u16>,
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(18 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(tci) = tci {
        f.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The Internet checksum of `data`.
pub fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ARP request for `target_ip`, if `frame` is one: returns
/// (sender MAC, sender IP, VLAN TCI).
pub fn arp_request_for(
    frame: &[u8],
    target_ip: [u8; 4],
) -> Option<([u8; 6], [u8; 4], Option<u16>)> {
    let (off, et, tci) = l3(frame)?;
    let a = frame.get(off..off + 28)?;
    if et != ETH_P_ARP || a[6..8] != [0, 1] || a[24..28] != target_ip {
        return None;
    }
    // htype Ethernet, ptype IPv4, hlen 6, plen 4.
    assert_eq!(&a[0..6], &[0, 1, 8, 0, 6, 4], "ARP header");
    Some((
        a[8..14].try_into().unwrap(),
        a[14..18].try_into().unwrap(),
        tci,
    ))
}

/// An ARP reply `mac is-at ip` to (`to_mac`, `to_ip`).
pub fn arp_reply(
    mac: [u8; 6],
    ip: [u8; 4],
    to_mac: [u8; 6],
    to_ip: [u8; 4],
    tci: Option<u16>,
) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 2];
    a.extend_from_slice(&mac);
    a.extend_from_slice(&ip);
    a.extend_from_slice(&to_mac);
    a.extend_from_slice(&to_ip);
    eth(to_mac, mac, tci, ETH_P_ARP, &a)
}

/// The echo reply to `frame` if it is an ICMP echo request to `ip`: same
/// VLAN tag, swapped addresses, fresh checksums.
pub fn echo_reply_for(frame: &[u8], mac: [u8; 6], ip: [u8; 4]) -> Option<Vec<u8>> {
    let (off, et, tci) = l3(frame)?;
    if et != ETH_P_IP {
        return None;
    }
    let ipv4 = frame.get(off..)?;
    let ihl = usize::from(ipv4.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ipv4.get(2)?, *ipv4.get(3)?]));
    if ipv4.len() < total || ipv4[9] != 1 || ipv4[16..20] != ip || ipv4[ihl] != 8 {
        return None;
    }
    let mut p = ipv4[..total].to_vec();
    p.copy_within(12..16, 16);
    p[12..16].copy_from_slice(&ip);
    p[8] = 64;
    p[10..12].fill(0);
    let c = csum(&p[..ihl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[ihl] = 0; // echo reply
    p[ihl + 2..ihl + 4].fill(0);
    let c = csum(&p[ihl..]);
    p[ihl + 2..ihl + 4].copy_from_slice(&c.to_be_bytes());
    let src: [u8; 6] = frame[6..12].try_into().unwrap();
    Some(eth(src, mac, tci, ETH_P_IP, &p))
}

/// What a [`fake_host`] run saw.
#[derive(Debug, Default)]
pub struct FakeHostLog {
    /// ARP requests for the host, verbatim.
    pub arp_requests: Vec<Vec<u8>>,
    /// ICMP echo requests to the host, verbatim.
    pub echo_requests: Vec<Vec<u8>>,
    /// Exit status of the child (None: still running at the deadline).
    pub child_ok: Option<bool>,
}

/// Emulates host (`mac`, `ip`) behind `port`: answers ARP requests and ICMP
/// echo requests until `child` exits or `timeout` passes.
pub fn fake_host(
    port: &mut PortIo,
    mac: [u8; 6],
    ip: [u8; 4],
    child: &mut ChildGuard,
    timeout: Duration,
) -> FakeHostLog {
    let mut log = FakeHostLog::default();
    let mut bufs: Vec<PacketBuf> = (0..4).map(|_| PacketBuf::new()).collect();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(st) = child.0.try_wait().unwrap() {
            log.child_ok = Some(st.success());
            break;
        }
        let n = port.recv_batch(&mut bufs).unwrap();
        if n == 0 {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        for b in &bufs[..n] {
            let f = b.frame();
            if let Some((smac, sip, tci)) = arp_request_for(f, ip) {
                log.arp_requests.push(f.to_vec());
                port.send(&arp_reply(mac, ip, smac, sip, tci)).unwrap();
            } else if let Some(r) = echo_reply_for(f, mac, ip) {
                log.echo_requests.push(f.to_vec());
                port.send(&r).unwrap();
            }
        }
    }
    log
}

/// Receives on `port` until `pred` accepts a frame or `timeout` passes.
pub fn recv_until(
    port: &mut PortIo,
    timeout: Duration,
    mut pred: impl FnMut(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let mut buf = PacketBuf::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if port.recv(&mut buf).unwrap() {
            if pred(buf.frame()) {
                return Some(buf.frame().to_vec());
            }
        } else {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    None
}

#[test]
fn checksum_golden() {
    // RFC 1071 example bytes.
    let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    assert_eq!(csum(&d), !0xddf2);
    // A real IPv4 header (checksum field zeroed) from a capture: 0xb861.
    let h = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];
    assert_eq!(csum(&h), 0xb861);
}

/// The `poll` events pending on `fd` right now (POLLIN/POLLOUT/POLLERR).
pub fn revents(fd: std::os::fd::RawFd) -> libc::c_short {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
    assert!(rc >= 0, "poll: {}", std::io::Error::last_os_error());
    pfd.revents
}

/// Receives on `port` (discarding frames) until it reports an error or
/// `timeout` passes; returns the error.
pub fn recv_until_error(port: &mut PortIo, timeout: Duration) -> Option<super::PortError> {
    let mut bufs: Vec<PacketBuf> = (0..4).map(|_| PacketBuf::new()).collect();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match port.recv_batch(&mut bufs) {
            Err(e) => return Some(e),
            Ok(0) => std::thread::sleep(Duration::from_millis(5)),
            Ok(_) => {}
        }
    }
    None
}
