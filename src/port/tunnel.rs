//! Tunnel ports over kernel sockets: VXLAN and Geneve over UDP, GRE over
//! a raw IP socket (`type=vxlan|geneve|gre`).
//!
//! # Design
//! The port owns one non-blocking IPv4 socket: UDP bound to
//! `local_ip:dst_port` (or `0.0.0.0:dst_port`), or for GRE a raw socket of
//! IP protocol 47 bound to `local_ip` (or any). The kernel is the
//! underlay: it routes the outer packet with the host's routing table,
//! resolves the neighbour, adds the outer Ethernet/IPv4(/UDP) headers and
//! the UDP checksum (or a zero one, `csum=false`, `SO_NO_CHECK`).
//! - Transmit: one `sendmsg` per frame with two iovecs, the tunnel header
//!   (8 bytes of VXLAN or Geneve, 4–12 of GRE, on the stack) and the frame
//!   where it lies in the caller's buffer, to `remote_ip(:dst_port)` — for
//!   `remote_ip=flow`/`key=flow`, to the flow key's `tun_dst` with its
//!   `tun_id` ([`TunnelConfig::destination`]; no `tun_dst` →
//!   `PortError::NoTunnelDst`). Nothing is copied or allocated; a GRE
//!   checksum (`csum=true`) is one pass over the frame.
//! - Receive: `recvmmsg` of up to [`MAX_BATCH`] packets, each scattered
//!   into a header slot on the stack (8 bytes for UDP, 28 for GRE: the
//!   IPv4 header a raw socket returns plus a keyed GRE header) and the
//!   caller's buffer at `HEADROOM`, so in the usual case the inner frame
//!   lands where every other port puts its frames (decapsulation is
//!   free). A longer header (Geneve options, GRE checksum or sequence
//!   number, IP options) moves the frame start forward; a shorter one (GRE
//!   without a key) puts the slot's last bytes into the headroom — never a
//!   copy of the frame. The source address comes from the message's
//!   `sockaddr_in`, the local one from `local_ip`, the IPv4 header (GRE)
//!   or, on a UDP socket bound to any address, from `IP_PKTINFO`; with the
//!   key they are the frame's tunnel metadata ([`PacketBuf::tunnel`]). A
//!   packet from another address or with another key, or not the
//!   encapsulation at all, is skipped and counted
//!   ([`TunnelPort::take_rx_rejects`]; the worker adds them to the port's
//!   drops as `tunnel_no_port` / `malformed`).
//! - A kernel sender on the same host (a vxlan device over a veth) leaves
//!   inner TCP/UDP checksums partial; such frames are marked `NEEDS_CSUM`
//!   ([`crate::tunnel::partial_csum_hint`]) and completed downstream like
//!   any offloaded frame. Without that, ping works and TCP stalls.
//! - `df_default=true` (the default) sets `IP_PMTUDISC_DO`: a frame that
//!   does not fit the underlay's MTU after the encapsulation
//!   ([`TunnelConfig::overhead`]: 50 bytes for VXLAN) fails
//!   with `EMSGSIZE` → [`PortError::FrameTooBig`] (counted `too_big`)
//!   instead of being fragmented. `df_default=false` lets the kernel
//!   fragment (`IP_PMTUDISC_DONT`). `tos`/`ttl` set `IP_TOS`/`IP_TTL`.
//!
//! - Sharing: every tunnel port of one encapsulation on one
//!   `(local_ip, dst_port)` uses the same socket (a process-wide registry
//!   holds it while a port does); all GRE ports on one `local_ip` share one
//!   raw socket.
//!   Each port polls its own `dup` of it, so any of them may read a
//!   datagram that belongs to another; the reader picks the most specific
//!   member ([`Member::score`]) and marks the buffer
//!   ([`TunnelMeta::redirect`]), and the worker runs it as received on
//!   that port (every worker numbers slots alike).
//!
//! - Source port (UDP): frames leave through one of [`TX_SOCKETS`] transmit-only
//!   sockets bound to kernel-chosen ephemeral ports, picked by
//!   [`flow_hash`] of the inner frame, so one inner flow keeps one outer
//!   source port and different flows spread over ECMP paths.
//!
//! Limits of a bound socket (see also [`crate::tunnel`]): the source port
//! takes only [`TX_SOCKETS`] values, and a kernel vxlan or geneve device
//! in the same namespace cannot use the same port (`bind` → `EADDRINUSE`,
//! reported by `add-port`). A raw GRE socket sees every GRE packet to the
//! host; a kernel gretap device (absent here) would see them too. Geneve
//! options are skipped (a packet with the critical bit is refused); none
//! are sent. GRE sequence numbers are ignored on receipt, never sent.
//!
//! # Linux behaviour (observed on 6.18)
//! - An unconnected UDP socket does not report ICMP errors (port
//!   unreachable from a remote without a VXLAN listener): sends succeed.
//! - Unreachable remote (no route): `sendmsg` → `ENETUNREACH`, counted as
//!   a transmit error; the port stays up.
//! - Neighbour resolution happens in the kernel; the first frames to a new
//!   remote wait in the neighbour queue (bounded), then go out.
//!
//! # Thread-safety
//! As every port: one worker receives, any may send (`&self`).

use std::collections::HashMap;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use arc_swap::ArcSwap;

use super::{classify, retry_eintr, set_sock_bufs, setsockopt, PendingError, PortError};
use crate::packet::{PacketBuf, TunnelMeta, HEADROOM, MAX_FRAME};
use crate::tunnel::{geneve, gre, vxlan, TunnelConfig, TunnelKind};

/// Most datagrams per `recvmmsg`.
pub const MAX_BATCH: usize = 32;

/// Transmit sockets per shared socket: source ports an inner flow hashes
/// to (RFC 7348 §5: "a hash of fields from the inner packet").
const TX_SOCKETS: usize = 8;

/// A hash of the inner frame's addresses (MACs, and for untagged IPv4 the
/// IP addresses, protocol and the first 4 bytes after the IP header: the
/// L4 ports), so one inner flow keeps one outer source port.
#[inline]
fn flow_hash(frame: &[u8]) -> u64 {
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        let n = b.len().min(8);
        w[..n].copy_from_slice(&b[..n]);
        u64::from_le_bytes(w)
    };
    let mut h = 0u64;
    let mut mix = |v: u64| h = (h ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(23);
    mix(word(frame.get(..8).unwrap_or(&[])));
    mix(word(frame.get(8..12).unwrap_or(&[])));
    if frame.get(12..14) == Some(&[0x08, 0x00][..]) {
        if let Some(ip) = frame.get(14..34) {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            mix(word(&ip[12..20]) ^ u64::from(ip[9]) << 56);
            mix(word(frame.get(14 + ihl..18 + ihl).unwrap_or(&[])));
        }
    }
    h ^ (h >> 29)
}

/// Words of control buffer per datagram: room for one `IP_PKTINFO`
/// message (`CMSG_SPACE(12)` = 32 bytes on 64-bit Linux) and slack.
const CTRL_WORDS: usize = 8;

/// The destination address of a received datagram from its `IP_PKTINFO`
/// control message (host order), 0 when there is none.
fn pktinfo_dst(h: &libc::msghdr) -> u32 {
    if h.msg_control.is_null() {
        return 0;
    }
    // SAFETY: `h` is a msghdr the kernel filled by recvmmsg: msg_control
    // points at our control buffer and msg_controllen says how much of it
    // holds messages; CMSG_FIRSTHDR/CMSG_NXTHDR stay within that length.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(h) };
    while !c.is_null() {
        // SAFETY: `c` is non-null and points at a cmsghdr inside the buffer.
        let hdr = unsafe { &*c };
        if hdr.cmsg_level == libc::IPPROTO_IP && hdr.cmsg_type == libc::IP_PKTINFO {
            // SAFETY: an IP_PKTINFO message carries an in_pktinfo as its
            // data; read_unaligned because CMSG_DATA's alignment is only
            // that of the header.
            let info: libc::in_pktinfo =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
            return u32::from_be(info.ipi_addr.s_addr);
        }
        // SAFETY: as above; NXTHDR returns null past the end.
        c = unsafe { libc::CMSG_NXTHDR(h, c) };
    }
    0
}

/// Header slot of a GRE receive: the IPv4 header a raw socket returns (20
/// bytes without options) and a GRE header with a key (8).
const GRE_SLOT: usize = 28;

/// What a received packet's tunnel header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decap {
    /// The VNI or GRE key (0 without one).
    key: u32,
    /// `tun_flags`.
    flags: u16,
    /// Bytes in front of the inner frame (of the whole packet read).
    hlen: usize,
    /// The outer destination, when the packet says it (GRE's IPv4 header).
    dst: Option<u32>,
}

/// A VXLAN datagram of `len` bytes whose first 8 are `slot`.
fn decap_vxlan(slot: &[u8], len: usize) -> Option<Decap> {
    let h = vxlan::Header::parse(slot.get(..len.min(slot.len()))?)?;
    Some(Decap {
        key: h.vni,
        flags: 0,
        hlen: vxlan::HEADER_LEN,
        dst: None,
    })
}

/// A Geneve datagram of `len` bytes whose first 8 are `slot`; options
/// (in the frame space) are skipped.
fn decap_geneve(slot: &[u8], len: usize) -> Option<Decap> {
    let h = geneve::Header::parse(slot.get(..len.min(slot.len()))?)?;
    Some(Decap {
        key: h.vni,
        flags: if h.oam {
            flowtable::key::TUN_FLAG_OAM
        } else {
            0
        },
        hlen: h.len,
        dst: None,
    })
}

/// An IPv4 packet carrying GRE, `len` bytes read as `slot` (the first
/// [`GRE_SLOT`]) followed by `rest`.
fn decap_gre(slot: &[u8], rest: &[u8], len: usize) -> Option<Decap> {
    let at = |i: usize| {
        if i < slot.len() {
            slot[i]
        } else {
            rest[i - slot.len()]
        }
    };
    if len < 20 || slot[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(slot[0] & 0x0f) * 4;
    if ihl < 20 || len < ihl + gre::BASE_LEN {
        return None;
    }
    let mut g = [0u8; gre::MAX_LEN];
    let n = (len - ihl).min(gre::MAX_LEN);
    for (j, b) in g[..n].iter_mut().enumerate() {
        *b = at(ihl + j);
    }
    let h = gre::Header::parse(&g[..n])?;
    if h.csum {
        // The packet from the GRE header on, in its two pieces; the first
        // has an even length (IHL is a multiple of 4).
        let cut = slot.len().min(len);
        let head = slot.get(ihl.min(cut)..cut)?;
        let tail = rest.get(ihl.saturating_sub(slot.len())..)?;
        if !gre::checksum_ok(head, tail) {
            return None;
        }
    }
    Some(Decap {
        key: h.key.unwrap_or(0),
        flags: 0,
        hlen: ihl + h.size(),
        dst: Some(u32::from_be_bytes([slot[16], slot[17], slot[18], slot[19]])),
    })
}

/// Writes an `IP_PKTINFO` control message asking for source address
/// `src` into `ctrl`; returns the control length.
fn pktinfo_src(ctrl: &mut [u64; CTRL_WORDS], src: Ipv4Addr) -> usize {
    // SAFETY: CMSG_SPACE/CMSG_LEN only compute sizes.
    let (space, len) = unsafe {
        let n = size_of::<libc::in_pktinfo>() as u32;
        (libc::CMSG_SPACE(n) as usize, libc::CMSG_LEN(n) as usize)
    };
    debug_assert!(space <= size_of::<[u64; CTRL_WORDS]>());
    // SAFETY: msghdr is a plain C struct; all-zero bytes are valid.
    let mut h: libc::msghdr = unsafe { zeroed() };
    h.msg_control = ctrl.as_mut_ptr().cast();
    h.msg_controllen = space;
    // SAFETY: `h` describes `ctrl`, which has room for one message of
    // `space` bytes (checked above), so CMSG_FIRSTHDR is non-null and
    // its data fits; u64 words align the header.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&h);
        (*c).cmsg_level = libc::IPPROTO_IP;
        (*c).cmsg_type = libc::IP_PKTINFO;
        (*c).cmsg_len = len;
        let info = libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(src).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), info);
    }
    space
}

/// The path MTU the kernel's routing gives toward `remote` (from `local`
/// when given): a UDP socket connected there, asked `IP_MTU`. `None` when
/// there is no route (or the address is not ours). For `show`, not the
/// packet path.
pub fn path_mtu(remote: Ipv4Addr, local: Option<Ipv4Addr>) -> Option<u32> {
    // SAFETY: socket() has no memory preconditions.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if let Some(l) = local {
        addr_call(fd.as_raw_fd(), l, 0, libc::bind).ok()?;
    }
    // Any port: connecting a UDP socket only picks the route.
    addr_call(fd.as_raw_fd(), remote, 9, libc::connect).ok()?;
    let mut mtu: libc::c_int = 0;
    let mut ol = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `mtu` and `ol` are valid for writes of an int and its size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU,
            (&mut mtu as *mut libc::c_int).cast(),
            &mut ol,
        )
    };
    (rc == 0 && mtu > 0).then_some(mtu as u32)
}

/// A tunnel port: see the module docs.
#[derive(Debug)]
pub struct TunnelPort {
    /// Port name (no netdev of that name exists).
    name: String,
    /// This port's descriptor of the shared socket.
    fd: OwnedFd,
    /// The socket, shared with the other tunnel ports on the same
    /// `(local_ip, dst_port)`.
    sock: Arc<SharedSocket>,
    /// Member id in `sock`.
    id: u64,
    /// (bridge id, OpenFlow port): where its own frames go.
    at: (u32, u32),
    /// The port's options.
    cfg: TunnelConfig,
    /// `local_ip` (host order), or 0 when bound to any address (then
    /// `IP_PKTINFO` tells each datagram's destination).
    local: u32,
    /// An error held back by a receive that returned frames.
    pending: PendingError,
    /// Packets skipped as not the encapsulation (or too short) since the
    /// last take.
    rx_malformed: AtomicU64,
    /// Datagrams skipped as another remote's or VNI's since the last take.
    rx_no_port: AtomicU64,
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is a plain C struct; all-zero bytes are valid.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = port.to_be();
    sa.sin_addr.s_addr = u32::from(ip).to_be();
    sa
}

/// Binds a new socket for `cfg`'s `local_ip` and UDP `port` (0: one the
/// kernel picks from its ephemeral range; always 0 for GRE's raw socket)
/// with its options.
fn bind_socket(
    cfg: &TunnelConfig,
    port: u16,
    open_err: &dyn Fn(&'static str, io::Error) -> PortError,
) -> Result<OwnedFd, PortError> {
    let udp = cfg.kind.is_udp();
    let (ty, proto, what) = if udp {
        (libc::SOCK_DGRAM, 0, "socket(AF_INET, SOCK_DGRAM)")
    } else {
        (
            libc::SOCK_RAW,
            libc::IPPROTO_GRE,
            "socket(AF_INET, SOCK_RAW, IPPROTO_GRE)",
        )
    };
    // SAFETY: socket() has no memory preconditions.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET,
            ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto,
        )
    };
    if raw < 0 {
        return Err(open_err(what, io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let s = fd.as_raw_fd();
    set_opts(s, sock_opts(cfg), udp).map_err(|(op, e)| open_err(op, e))?;
    if udp && cfg.local_ip.is_none() && port != 0 {
        setsockopt(
            s,
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            &libc::c_int::from(true),
        )
        .map_err(|e| open_err("IP_PKTINFO", e))?;
    }
    set_sock_bufs(s).map_err(|e| open_err("SO_RCVBUF/SO_SNDBUF", e))?;
    let local = cfg.local_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    addr_call(s, local, port, libc::bind).map_err(|e| open_err("bind", e))?;
    Ok(fd)
}

/// `bind` or `connect` (`op`) of socket `s` to `ip:port`.
fn addr_call(
    s: RawFd,
    ip: Ipv4Addr,
    port: u16,
    op: unsafe extern "C" fn(libc::c_int, *const libc::sockaddr, libc::socklen_t) -> libc::c_int,
) -> io::Result<()> {
    let sa = sockaddr(ip, port);
    // SAFETY: `sa` is a valid sockaddr_in and the length is its size;
    // `op` only reads it.
    let rc = unsafe {
        op(
            s,
            (&sa as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Puts `opts` on socket `s` (a fresh one, or one whose only port is
/// being reconfigured); `None` TOS/TTL restore the defaults.
fn set_opts(s: RawFd, opts: SockOpts, udp: bool) -> Result<(), (&'static str, io::Error)> {
    let (tos, ttl, df, csum) = opts;
    let pmtu = if df {
        libc::IP_PMTUDISC_DO
    } else {
        libc::IP_PMTUDISC_DONT
    };
    setsockopt(s, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, &pmtu)
        .map_err(|e| ("IP_MTU_DISCOVER", e))?;
    // -1: the kernel's default TTL.
    let ttl = ttl.map_or(-1, libc::c_int::from);
    setsockopt(s, libc::IPPROTO_IP, libc::IP_TTL, &ttl).map_err(|e| ("IP_TTL", e))?;
    let tos = libc::c_int::from(tos.unwrap_or(0));
    setsockopt(s, libc::IPPROTO_IP, libc::IP_TOS, &tos).map_err(|e| ("IP_TOS", e))?;
    if udp {
        let no_check: libc::c_int = (!csum).into();
        setsockopt(s, libc::SOL_SOCKET, libc::SO_NO_CHECK, &no_check)
            .map_err(|e| ("SO_NO_CHECK", e))?;
    }
    Ok(())
}

/// The socket options a port's configuration puts on the shared socket;
/// ports sharing a socket must agree on them. (GRE's checksum is in its
/// header, per packet, not a socket option.)
fn sock_opts(cfg: &TunnelConfig) -> SockOpts {
    (
        cfg.tos,
        cfg.ttl,
        cfg.df_default,
        cfg.csum && cfg.kind.is_udp(),
    )
}

/// (tos, ttl, df_default, csum).
type SockOpts = (Option<u8>, Option<u8>, bool, bool);

/// One port receiving on a shared socket: what it accepts, and where its
/// frames go (the bridge and OpenFlow port, which every worker maps to
/// the same slot).
#[derive(Clone, Copy, Debug)]
struct Member {
    /// Unique per port (for leaving).
    id: u64,
    remote: Option<Ipv4Addr>,
    key: Option<u32>,
    bridge: u32,
    ofport: u32,
}

impl Member {
    /// How specific the member is: a fixed remote counts more than a
    /// fixed key; `None` when it does not take the datagram.
    #[inline]
    fn score(&self, src: Ipv4Addr, vni: u32) -> Option<u8> {
        let r = match self.remote {
            Some(r) if r != src => return None,
            Some(_) => 2,
            None => 0,
        };
        let k = match self.key {
            Some(k) if k != vni => return None,
            Some(_) => 1,
            None => 0,
        };
        Some(r + k)
    }
}

/// A socket shared by every tunnel port of one encapsulation on one
/// `(local_ip, dst_port)`.
#[derive(Debug)]
struct SharedSocket {
    fd: OwnedFd,
    /// Transmit sockets bound to kernel-chosen source ports, picked by
    /// inner-flow hash ([`flow_hash`]); empty: send from `fd`.
    tx: Vec<OwnedFd>,
    /// Its options (changed only while one port alone uses it).
    opts: Mutex<SockOpts>,
    /// The ports receiving on it; read per batch by the workers.
    members: ArcSwap<Vec<Member>>,
    /// Serialises joins and leaves (readers never take it).
    edit: Mutex<()>,
}

/// Sockets by `(encapsulation, local_ip, dst_port)` (0 = any address; GRE
/// has no port); an entry whose socket is gone is replaced at the next
/// open.
type Registry = Mutex<HashMap<(TunnelKind, u32, u16), Weak<SharedSocket>>>;

fn registry() -> &'static Registry {
    static SOCKETS: OnceLock<Registry> = OnceLock::new();
    SOCKETS.get_or_init(Registry::default)
}

impl SharedSocket {
    /// Adds `m`; refused when another port already takes exactly the same
    /// (remote, key). The same port (bridge and OpenFlow port) re-opened
    /// while its old I/O lingers is not another port: both deliver to the
    /// same place until the old one leaves.
    fn join(&self, m: Member, name: &str) -> Result<(), PortError> {
        let _g = self.edit.lock().unwrap_or_else(PoisonError::into_inner);
        let cur = self.members.load();
        if cur.iter().any(|o| {
            o.remote == m.remote && o.key == m.key && (o.bridge, o.ofport) != (m.bridge, m.ofport)
        }) {
            let what = |v: Option<String>| v.unwrap_or_else(|| "flow".to_string());
            return Err(PortError::Conflict(format!(
                "port {name}: another tunnel port on this local_ip and dst_port already receives remote_ip={} key={}",
                what(m.remote.map(|r| r.to_string())),
                what(m.key.map(|k| k.to_string()))
            )));
        }
        let mut next = Vec::with_capacity(cur.len() + 1);
        next.extend(cur.iter().copied());
        next.push(m);
        self.members.store(Arc::new(next));
        Ok(())
    }

    fn leave(&self, id: u64) {
        let _g = self.edit.lock().unwrap_or_else(PoisonError::into_inner);
        let next: Vec<Member> = self
            .members
            .load()
            .iter()
            .filter(|m| m.id != id)
            .copied()
            .collect();
        self.members.store(Arc::new(next));
    }
}

impl TunnelPort {
    /// Opens port `name` with `cfg`, as OpenFlow port `ofport` of bridge
    /// id `bridge`: binds `local_ip:dst_port`, or joins the socket another
    /// tunnel port already bound there.
    pub fn open(
        name: &str,
        cfg: &TunnelConfig,
        bridge: u32,
        ofport: u32,
    ) -> Result<TunnelPort, PortError> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let open_err = |op: &'static str, source: io::Error| PortError::Open {
            name: name.to_string(),
            op,
            source,
        };
        let at = (cfg.kind, cfg.local_ip.map_or(0, u32::from), cfg.dst_port);
        let sock = {
            let mut reg = registry().lock().unwrap_or_else(PoisonError::into_inner);
            match reg.get(&at).and_then(Weak::upgrade) {
                Some(sock) => {
                    let want = sock_opts(cfg);
                    let mut opts = sock.opts.lock().unwrap_or_else(PoisonError::into_inner);
                    if *opts != want {
                        // The same port re-opened with new options (`set
                        // port`, `apply`) while its old I/O lingers may
                        // change them; another port's socket is shared.
                        let alone = sock
                            .members
                            .load()
                            .iter()
                            .all(|m| (m.bridge, m.ofport) == (bridge, ofport));
                        if !alone {
                            return Err(PortError::Conflict(format!(
                                "port {name}: shares local_ip and dst_port with another tunnel port but has different tos, ttl, df_default or csum (they are options of the one socket)"
                            )));
                        }
                        for fd in std::iter::once(&sock.fd).chain(sock.tx.iter()) {
                            set_opts(fd.as_raw_fd(), want, cfg.kind.is_udp())
                                .map_err(|(op, e)| open_err(op, e))?;
                        }
                        *opts = want;
                    }
                    drop(opts);
                    sock
                }
                None => {
                    let fd = bind_socket(cfg, cfg.dst_port, &open_err)?;
                    // Transmit-only sockets on ephemeral ports: the outer
                    // source port then varies with the inner flow (ECMP).
                    // Without them (fd limits) everything leaves from `fd`.
                    let n_tx = if cfg.kind.is_udp() { TX_SOCKETS } else { 0 };
                    let tx: Vec<OwnedFd> = (0..n_tx)
                        .map_while(|_| bind_socket(cfg, 0, &open_err).ok())
                        .collect();
                    let sock = Arc::new(SharedSocket {
                        fd,
                        tx,
                        opts: Mutex::new(sock_opts(cfg)),
                        members: ArcSwap::from_pointee(Vec::new()),
                        edit: Mutex::new(()),
                    });
                    reg.insert(at, Arc::downgrade(&sock));
                    sock
                }
            }
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        sock.join(
            Member {
                id,
                remote: cfg.remote_ip,
                key: cfg.in_key,
                bridge,
                ofport,
            },
            name,
        )?;
        // Each port polls its own descriptor of the shared socket (epoll
        // takes one registration per descriptor).
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) on an open fd has no memory
        // preconditions.
        let raw = unsafe { libc::fcntl(sock.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if raw < 0 {
            sock.leave(id);
            return Err(open_err("F_DUPFD_CLOEXEC", io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(TunnelPort {
            name: name.to_string(),
            fd,
            sock,
            id,
            at: (bridge, ofport),
            cfg: cfg.clone(),
            local: cfg.local_ip.map_or(0, u32::from),
            pending: PendingError::default(),
            rx_malformed: AtomicU64::new(0),
            rx_no_port: AtomicU64::new(0),
        })
    }

    /// The socket fd (for epoll).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The port name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port's options.
    pub fn config(&self) -> &TunnelConfig {
        &self.cfg
    }

    /// Datagrams skipped since the last call: (malformed, for no port).
    /// Called by the receiving worker after each batch.
    #[inline]
    pub fn take_rx_rejects(&self) -> (u64, u64) {
        // Only the receiving worker adds and takes; swap keeps it exact
        // anyway.
        let m = self.rx_malformed.load(Ordering::Relaxed);
        let n = self.rx_no_port.load(Ordering::Relaxed);
        if m == 0 && n == 0 {
            return (0, 0);
        }
        (
            self.rx_malformed.swap(0, Ordering::Relaxed),
            self.rx_no_port.swap(0, Ordering::Relaxed),
        )
    }

    /// Receives one inner frame; `Ok(false)` when none is waiting.
    pub fn recv(&self, buf: &mut PacketBuf) -> Result<bool, PortError> {
        self.recv_batch(std::slice::from_mut(buf)).map(|n| n > 0)
    }

    /// Receives up to `bufs.len()` (at most [`MAX_BATCH`]) inner frames
    /// into `bufs[0..n]`; `Ok(0)` when nothing is waiting.
    pub fn recv_batch(&self, bufs: &mut [PacketBuf]) -> Result<usize, PortError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        // Retry while a whole batch was skipped, so `Ok(0)` always means
        // "nothing waiting".
        loop {
            let (kept, read) = self.recv_mmsg(bufs)?;
            if kept > 0 || read == 0 {
                return Ok(kept);
            }
        }
    }

    fn recv_mmsg(&self, bufs: &mut [PacketBuf]) -> Result<(usize, usize), PortError> {
        let want = bufs.len().min(MAX_BATCH);
        if want == 0 {
            return Ok((0, 0));
        }
        let slot_len = if self.cfg.kind.is_udp() {
            vxlan::HEADER_LEN
        } else {
            GRE_SLOT
        };
        let mut hdrs = [[0u8; GRE_SLOT]; MAX_BATCH];
        // SAFETY: iovec is a plain C struct; all-zero bytes are valid.
        let mut iov: [[libc::iovec; 2]; MAX_BATCH] = unsafe { zeroed() };
        // SAFETY: mmsghdr is a plain C struct (null pointers, zero lengths
        // when zeroed); all-zero bytes are valid.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        // SAFETY: sockaddr_in is a plain C struct; all-zero bytes are valid.
        let mut addrs: [libc::sockaddr_in; MAX_BATCH] = unsafe { zeroed() };
        // Control buffers (IP_PKTINFO), u64 words for cmsghdr alignment.
        let mut ctrl = [[0u64; CTRL_WORDS]; MAX_BATCH];
        let want_pktinfo = self.local == 0 && self.cfg.kind.is_udp();
        let members = self.sock.members.load();
        for (i, (hdr, buf)) in hdrs.iter_mut().zip(bufs.iter_mut()).enumerate().take(want) {
            let space = buf.rx_space();
            let room = space.len().min(MAX_FRAME);
            iov[i][0].iov_base = hdr.as_mut_ptr().cast();
            iov[i][0].iov_len = slot_len;
            iov[i][1].iov_base = space.as_mut_ptr().cast();
            iov[i][1].iov_len = room;
            let h = &mut msgs[i].msg_hdr;
            h.msg_iov = iov[i].as_mut_ptr();
            h.msg_iovlen = 2;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if want_pktinfo {
                h.msg_control = ctrl[i].as_mut_ptr().cast();
                h.msg_controllen = size_of::<[u64; CTRL_WORDS]>();
            }
        }
        let got = loop {
            // SAFETY: msgs[..want] point at iovecs, header slots and
            // addresses on this stack frame and at the callers' buffers
            // (borrowed mutably for this call); every length matches its
            // buffer. The fd is open.
            let rc = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    want as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc >= 0 {
                break rc as usize;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN) => return Ok((0, 0)),
                Some(libc::EINTR) => continue,
                _ => return Err(classify(err, 0)),
            }
        };
        let mut n = 0;
        for i in 0..got {
            let len = msgs[i].msg_len as usize;
            if msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                self.pending.hold(PortError::FrameTooBig { len });
                continue;
            }
            let src = Ipv4Addr::from(u32::from_be(addrs[i].sin_addr.s_addr));
            let slot = &hdrs[i][..slot_len];
            let space = &bufs[i].rx_space()[..len.saturating_sub(slot_len)];
            let decap = match self.cfg.kind {
                TunnelKind::Vxlan => decap_vxlan(slot, len),
                TunnelKind::Geneve => decap_geneve(slot, len),
                TunnelKind::Gre => decap_gre(slot, space, len),
            };
            let Some(d) = decap.filter(|d| len >= d.hlen + vxlan::MIN_INNER) else {
                self.rx_malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            // The most specific port on the socket takes it.
            let best = members
                .iter()
                .filter_map(|m| m.score(src, d.key).map(|s| (s, m)))
                .max_by_key(|(s, _)| *s);
            let redirect = match best {
                None => {
                    self.rx_no_port.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Some((_, m)) if m.id == self.id => None,
                Some((_, m)) => Some((m.bridge, m.ofport)),
            };
            let dst = match d.dst {
                Some(dst) => dst,
                None if want_pktinfo => pktinfo_dst(&msgs[i].msg_hdr),
                None => self.local,
            };
            let inner = len - d.hlen;
            let buf = &mut bufs[i];
            buf.set_received(inner);
            // Where the inner frame begins relative to the buffer's space:
            // after a longer header, forward; after a shorter one, its
            // first bytes are the slot's tail, put in the headroom.
            let (data, start, _) = buf.raw_mut();
            if d.hlen >= slot_len {
                *start = HEADROOM + (d.hlen - slot_len);
            } else {
                let back = slot_len - d.hlen;
                data[HEADROOM - back..HEADROOM].copy_from_slice(&hdrs[i][d.hlen..slot_len]);
                *start = HEADROOM - back;
            }
            buf.tunnel = TunnelMeta {
                id: u64::from(d.key),
                src: u32::from(src),
                dst,
                flags: d.flags,
                redirect,
            };
            if let Some(h) = crate::tunnel::partial_csum_hint(buf.frame()) {
                buf.vnet = h;
            }
            if n != i {
                bufs.swap(n, i);
            }
            n += 1;
        }
        if n == 0 {
            if let Some(e) = self.pending.take() {
                return Err(e);
            }
        }
        Ok((n, got))
    }

    /// Writes the tunnel header for a frame with `key` into `hdr`; returns
    /// its length.
    #[inline]
    fn encap_header(&self, key: u32, frame: &[u8], hdr: &mut [u8; gre::MAX_LEN]) -> usize {
        match self.cfg.kind {
            TunnelKind::Vxlan => {
                hdr[..vxlan::HEADER_LEN].copy_from_slice(&vxlan::Header { vni: key }.bytes());
                vxlan::HEADER_LEN
            }
            TunnelKind::Geneve => {
                hdr[..geneve::HEADER_LEN].copy_from_slice(&geneve::Header::bytes(key, false));
                geneve::HEADER_LEN
            }
            TunnelKind::Gre => gre::Header {
                key: self.cfg.key_field.then_some(key),
                csum: self.cfg.csum,
                seq: false,
            }
            .emit(hdr, frame),
        }
    }

    /// The socket `frame` leaves from: a transmit socket by inner-flow
    /// hash (UDP), else the port's own.
    #[inline]
    fn tx_fd(&self, frame: &[u8]) -> RawFd {
        let tx = &self.sock.tx;
        match tx.len() {
            0 => self.fd.as_raw_fd(),
            // Cast: the hash's low bits pick one of a few sockets.
            n => tx[(flow_hash(frame) as usize) % n].as_raw_fd(),
        }
    }

    /// A send error as the datapath counts it.
    fn send_error(err: io::Error, len: usize) -> PortError {
        match err.raw_os_error() {
            // A socket has no device to lose: unreachable remotes and full
            // queues are per-frame failures.
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN) => PortError::Other(err),
            _ => classify(err, len),
        }
    }

    /// Encapsulates and sends one frame to the port's remote (and key)
    /// without blocking; a port with `flow` options sends to `tun_dst`
    /// with `tun_id`, from `tun_src` (the frame's flow key).
    pub fn send_tunnel(
        &self,
        frame: &[u8],
        tun_src: u32,
        tun_dst: u32,
        tun_id: u64,
    ) -> Result<(), PortError> {
        let Some((dst, key)) = self.cfg.destination(tun_dst, tun_id) else {
            return Err(PortError::NoTunnelDst);
        };
        let mut hdr = [0u8; gre::MAX_LEN];
        let hlen = self.encap_header(key, frame, &mut hdr);
        let remote = sockaddr(dst, self.cfg.dst_port);
        let fd = self.tx_fd(frame);
        let mut iov = [
            libc::iovec {
                iov_base: hdr.as_ptr() as *mut libc::c_void,
                iov_len: hlen,
            },
            libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            },
        ];
        // SAFETY: msghdr is a plain C struct; all-zero bytes are valid.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&remote as *const libc::sockaddr_in as *mut libc::sockaddr_in).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len();
        // local_ip=flow: the source address rides along as IP_PKTINFO.
        let mut ctrl = [0u64; CTRL_WORDS];
        if let Some(src) = self.cfg.source(tun_src) {
            msg.msg_control = ctrl.as_mut_ptr().cast();
            msg.msg_controllen = pktinfo_src(&mut ctrl, src);
        }
        // SAFETY: `msg` points at the remote address, at two iovecs over
        // the header and `frame`, and at `ctrl` (or no control data), all
        // alive for the call; sendmsg only reads through them. The fd is
        // open.
        retry_eintr(|| unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT) })
            .map_err(|err| Self::send_error(err, frame.len()))
    }

    /// True when every frame goes to one place (a fixed remote and key):
    /// the datapath may then queue frames for [`TunnelPort::send_batch`].
    pub fn batches_tx(&self) -> bool {
        self.cfg.remote_ip.is_some() && self.cfg.out_key.is_some() && !self.cfg.local_flow
    }

    /// Encapsulates and sends frames from the front of `frames` in one
    /// `sendmmsg` — as many (up to [`MAX_BATCH`]) as leave from the same
    /// source port as the first, so each inner flow keeps its port. Returns
    /// how many the kernel took; `Err` only when it took none (the error
    /// is the first frame's). A port with `flow` options sends one frame.
    pub fn send_batch(&self, frames: &[&[u8]]) -> Result<usize, PortError> {
        let Some(first) = frames.first() else {
            return Ok(0);
        };
        let Some((dst, key)) = self.cfg.destination(0, 0).filter(|_| self.batches_tx()) else {
            return self.send(first).map(|()| 1);
        };
        let fd = self.tx_fd(first);
        let n = frames
            .iter()
            .take(MAX_BATCH)
            .take_while(|f| self.tx_fd(f) == fd)
            .count();
        let remote = sockaddr(dst, self.cfg.dst_port);
        let mut hdrs = [[0u8; gre::MAX_LEN]; MAX_BATCH];
        // SAFETY: iovec is a plain C struct; all-zero bytes are valid.
        let mut iov: [[libc::iovec; 2]; MAX_BATCH] = unsafe { zeroed() };
        // SAFETY: mmsghdr is a plain C struct; all-zero bytes are valid.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        for i in 0..n {
            let hlen = self.encap_header(key, frames[i], &mut hdrs[i]);
            iov[i][0] = libc::iovec {
                iov_base: hdrs[i].as_mut_ptr().cast(),
                iov_len: hlen,
            };
            iov[i][1] = libc::iovec {
                iov_base: frames[i].as_ptr() as *mut libc::c_void,
                iov_len: frames[i].len(),
            };
            let h = &mut msgs[i].msg_hdr;
            h.msg_name = (&remote as *const libc::sockaddr_in as *mut libc::sockaddr_in).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = iov[i].as_mut_ptr();
            h.msg_iovlen = 2;
        }
        let mut sent = 0isize;
        retry_eintr(|| {
            // SAFETY: msgs[..n] point at the remote address and iovecs on
            // this stack frame, which point at header buffers on this
            // stack frame and at the callers' frames; the kernel only
            // reads them. The fd is open.
            sent = unsafe {
                libc::sendmmsg(fd, msgs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT)
            } as isize;
            sent
        })
        .map_err(|err| Self::send_error(err, first.len()))?;
        Ok(sent.max(0) as usize)
    }

    /// [`TunnelPort::send_tunnel`] without tunnel metadata (a port with
    /// `remote_ip=flow` then has nowhere to send).
    pub fn send(&self, frame: &[u8]) -> Result<(), PortError> {
        self.send_tunnel(frame, 0, 0, 0)
    }

    /// (bridge id, OpenFlow port) of this port.
    pub fn at(&self) -> (u32, u32) {
        self.at
    }

    /// A bound socket stays usable whatever happens to interfaces.
    pub fn check_alive(&self) -> bool {
        true
    }
}

impl Drop for TunnelPort {
    fn drop(&mut self) {
        self.sock.leave(self.id);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::net::UdpSocket;

    fn cfg(remote: &str, port: u16, key: u32) -> TunnelConfig {
        let mut o = BTreeMap::new();
        o.insert("remote_ip".to_string(), remote.to_string());
        o.insert("local_ip".to_string(), "127.0.0.1".to_string());
        o.insert("dst_port".to_string(), port.to_string());
        o.insert("key".to_string(), key.to_string());
        TunnelConfig::parse(TunnelKind::Vxlan, &o).unwrap()
    }

    fn wait_recv(p: &TunnelPort, bufs: &mut [PacketBuf]) -> usize {
        for _ in 0..200 {
            let n = p.recv_batch(bufs).unwrap();
            if n > 0 {
                return n;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        0
    }

    /// Two ports on loopback (no root needed): encapsulation on one side
    /// is decapsulated on the other; a foreign VNI and a non-VXLAN
    /// datagram are skipped and counted.
    #[test]
    fn loopback_encap_decap_and_demux() {
        // Pick two free ports.
        let (pa, pb) = {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            (
                a.local_addr().unwrap().port(),
                b.local_addr().unwrap().port(),
            )
        };
        let a = TunnelPort::open("a", &cfg("127.0.0.1", pa, 42), 1, 1).unwrap();
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        frame[59] = 0x5a;
        // a sends to 127.0.0.1:pa, i.e. to itself.
        a.send(&frame).unwrap();
        let mut bufs: Vec<PacketBuf> = (0..4).map(|_| PacketBuf::new()).collect();
        assert_eq!(wait_recv(&a, &mut bufs), 1);
        assert_eq!(bufs[0].frame(), &frame[..]);
        assert_eq!(a.take_rx_rejects(), (0, 0));

        // Foreign VNI and junk from a plain socket.
        let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut d = vec![0u8; 8 + 60];
        vxlan::Header { vni: 43 }.emit(&mut d);
        junk.send_to(&d, ("127.0.0.1", pa)).unwrap();
        junk.send_to(b"hello", ("127.0.0.1", pa)).unwrap();
        vxlan::Header { vni: 42 }.emit(&mut d);
        d[8 + 59] = 0x77;
        junk.send_to(&d, ("127.0.0.1", pa)).unwrap();
        assert_eq!(wait_recv(&a, &mut bufs), 1);
        assert_eq!(bufs[0].frame()[59], 0x77);
        assert_eq!(a.take_rx_rejects(), (1, 1));
        assert_eq!(a.take_rx_rejects(), (0, 0));

        // A second port on the same (local_ip, dst_port) shares the
        // socket: VNI 43 now belongs to it, whichever port reads.
        let b = TunnelPort::open("b", &cfg("127.0.0.1", pa, 43), 1, 2).unwrap();
        vxlan::Header { vni: 43 }.emit(&mut d);
        junk.send_to(&d, ("127.0.0.1", pa)).unwrap();
        assert_eq!(wait_recv(&a, &mut bufs), 1);
        assert_eq!(bufs[0].tunnel.redirect, Some((1, 2)));
        assert_eq!(bufs[0].tunnel.id, 43);
        junk.send_to(&d, ("127.0.0.1", pa)).unwrap();
        assert_eq!(wait_recv(&b, &mut bufs), 1);
        assert_eq!(bufs[0].tunnel.redirect, None, "b reads its own");
        // The same (remote, key) twice, or other socket options, are refused.
        let e = TunnelPort::open("c", &cfg("127.0.0.1", pa, 43), 1, 3).unwrap_err();
        assert!(e.to_string().contains("already receives"), "{e}");
        let mut other = cfg("127.0.0.1", pa, 44);
        other.ttl = Some(3);
        let e = TunnelPort::open("c", &other, 1, 3).unwrap_err();
        assert!(e.to_string().contains("different tos"), "{e}");
        // b re-opened (as `set port` does) with a new TTL while the old
        // one lingers: the same port, not a conflict — but a TTL that
        // another port's socket would have to change is refused above.
        let mut b_ttl = cfg("127.0.0.1", pa, 43);
        b_ttl.ttl = Some(5);
        assert!(
            TunnelPort::open("b", &b_ttl, 1, 2).is_err(),
            "a shares the socket"
        );
        let b2 = TunnelPort::open("b", &cfg("127.0.0.1", pa, 43), 1, 2).unwrap();
        drop(b2);
        // b gone: its VNI is nobody's again.
        drop(b);
        junk.send_to(&d, ("127.0.0.1", pa)).unwrap();
        assert_eq!(wait_recv(&a, &mut bufs), 0);
        assert_eq!(a.take_rx_rejects(), (0, 1));
        // Another UDP port is another socket; its only port may change
        // the socket's options by re-opening.
        let c = TunnelPort::open("b", &cfg("127.0.0.1", pb, 43), 1, 2).unwrap();
        let mut c_ttl = cfg("127.0.0.1", pb, 44);
        c_ttl.ttl = Some(5);
        let c2 = TunnelPort::open("b", &c_ttl, 1, 2).unwrap();
        drop(c);
        c2.send(&frame).unwrap();
        assert_eq!(wait_recv(&c2, &mut bufs), 1);
        assert_eq!(bufs[0].tunnel.id, 44);
    }

    /// The outer source port follows the inner flow: one flow keeps one
    /// port, many flows spread over several, all from the kernel's
    /// ephemeral range (RFC 7348 §5's 49152–65535 is a SHOULD; Linux and
    /// OVS use 32768–61000 too).
    #[test]
    fn source_port_follows_the_inner_flow() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let port = rx.local_addr().unwrap().port();
        let mut o = BTreeMap::new();
        o.insert("remote_ip".to_string(), "127.0.0.1".to_string());
        o.insert("local_ip".to_string(), "127.0.0.2".to_string());
        o.insert("dst_port".to_string(), port.to_string());
        let a = TunnelPort::open(
            "s",
            &TunnelConfig::parse(TunnelKind::Vxlan, &o).unwrap(),
            1,
            1,
        )
        .unwrap();
        let frame = |i: u8| {
            let mut f = [0u8; 60];
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14] = 0x45;
            f[23] = 17;
            f[26..30].copy_from_slice(&[10, 0, 0, 1]);
            f[30..34].copy_from_slice(&[10, 0, 0, 2]);
            f[34..36].copy_from_slice(&u16::from(i).to_be_bytes());
            f
        };
        let src = |f: &[u8]| {
            a.send(f).unwrap();
            let mut b = [0u8; 128];
            let (_, from) = rx.recv_from(&mut b).unwrap();
            from.port()
        };
        let mut ports = std::collections::BTreeSet::new();
        for i in 0..64 {
            let p = src(&frame(i));
            assert_eq!(src(&frame(i)), p, "flow {i} changed its source port");
            assert!((32768..61000).contains(&p), "{p}");
            ports.insert(p);
        }
        assert!(
            ports.len() >= 4,
            "64 flows over {} source ports",
            ports.len()
        );
    }

    /// The most specific port takes a datagram: fixed remote over flow,
    /// then fixed key over flow.
    #[test]
    fn most_specific_member_wins() {
        let m = |remote: Option<[u8; 4]>, key: Option<u32>| Member {
            id: 0,
            remote: remote.map(Ipv4Addr::from),
            key,
            bridge: 0,
            ofport: 0,
        };
        let src = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(m(None, None).score(src, 7), Some(0));
        assert_eq!(m(None, Some(7)).score(src, 7), Some(1));
        assert_eq!(m(Some([10, 0, 0, 2]), None).score(src, 7), Some(2));
        assert_eq!(m(Some([10, 0, 0, 2]), Some(7)).score(src, 7), Some(3));
        assert_eq!(m(Some([10, 0, 0, 3]), None).score(src, 7), None);
        assert_eq!(m(None, Some(8)).score(src, 7), None);
    }

    /// `remote_ip=flow,key=flow` on a socket bound to any address: sends
    /// to the given `tun_dst` with `tun_id`; receives from anyone with any
    /// VNI, and the frame carries the outer addresses (the local one from
    /// IP_PKTINFO) and the VNI; without `tun_dst` nothing is sent.
    #[test]
    fn flow_port_sends_by_the_key_and_reports_metadata() {
        let port = {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let mut o = BTreeMap::new();
        for (k, v) in [("remote_ip", "flow"), ("key", "flow")] {
            o.insert(k.to_string(), v.to_string());
        }
        o.insert("dst_port".to_string(), port.to_string());
        let a = TunnelPort::open(
            "f",
            &TunnelConfig::parse(TunnelKind::Vxlan, &o).unwrap(),
            1,
            1,
        )
        .unwrap();
        let mut frame = [0u8; 60];
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(matches!(a.send(&frame), Err(PortError::NoTunnelDst)));
        // 127.0.0.2 is loopback too: the datagram arrives addressed to it.
        // tun_src is ignored: the port's local_ip is not flow.
        a.send_tunnel(&frame, 0x7f00_0009, 0x7f00_0002, 0xab_cdef_0077)
            .unwrap();
        let mut bufs: Vec<PacketBuf> = (0..4).map(|_| PacketBuf::new()).collect();
        assert_eq!(wait_recv(&a, &mut bufs), 1);
        assert_eq!(bufs[0].frame(), &frame[..]);
        assert_eq!(
            bufs[0].tunnel,
            TunnelMeta {
                id: 0xef_0077,
                src: 0x7f00_0001,
                dst: 0x7f00_0002,
                flags: 0,
                redirect: None
            }
        );
        drop(a);
        // local_ip=flow: sent from the key's tun_src.
        o.insert("local_ip".to_string(), "flow".to_string());
        let cfg = TunnelConfig::parse(TunnelKind::Vxlan, &o).unwrap();
        let b = TunnelPort::open("f", &cfg, 1, 1).unwrap();
        assert!(!b.batches_tx());
        b.send_tunnel(&frame, 0x7f00_0009, 0x7f00_0002, 5).unwrap();
        assert_eq!(wait_recv(&b, &mut bufs), 1);
        assert_eq!(
            (bufs[0].tunnel.src, bufs[0].tunnel.dst),
            (0x7f00_0009, 0x7f00_0002)
        );
        // No tun_src: the routing table's choice.
        b.send_tunnel(&frame, 0, 0x7f00_0002, 5).unwrap();
        assert_eq!(wait_recv(&b, &mut bufs), 1);
        assert_eq!(bufs[0].tunnel.src, 0x7f00_0001);
    }

    fn opts(kind: TunnelKind, kv: &[(&str, &str)]) -> TunnelConfig {
        let o: BTreeMap<String, String> = kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TunnelConfig::parse(kind, &o).unwrap()
    }

    /// A free UDP port on loopback.
    fn free_port() -> u16 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    }

    /// Geneve on loopback: a frame sent comes back with its VNI; options
    /// are skipped (the frame still lands whole), the O bit becomes
    /// `tun_flags=+oam`, critical options and non-Ethernet payloads are
    /// counted malformed.
    #[test]
    fn geneve_loopback_skips_options_and_refuses_critical_ones() {
        let port = free_port();
        let p = port.to_string();
        let cfg = opts(
            TunnelKind::Geneve,
            &[
                ("remote_ip", "127.0.0.1"),
                ("local_ip", "127.0.0.1"),
                ("dst_port", &p),
                ("key", "77"),
            ],
        );
        let a = TunnelPort::open("g", &cfg, 1, 1).unwrap();
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        frame[59] = 0x5a;
        a.send(&frame).unwrap();
        let mut bufs: Vec<PacketBuf> = (0..4).map(|_| PacketBuf::new()).collect();
        assert_eq!(wait_recv(&a, &mut bufs), 1);
        assert_eq!(bufs[0].frame(), &frame[..]);
        assert_eq!((bufs[0].tunnel.id, bufs[0].tunnel.flags), (77, 0));

        let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Two words of options and the O bit.
        let mut d = geneve::Header::bytes(77, true).to_vec();
        d[0] = 2;
        d.extend_from_slice(&[0xee; 8]);
        d.extend_from_slice(&frame);
        junk.send_to(&d, ("127.0.0.1", port)).unwrap();
        assert_eq!(wait_recv(&a, &mut bufs), 1);
        assert_eq!(bufs[0].frame(), &frame[..], "options skipped");
        assert_eq!(bufs[0].tunnel.flags, flowtable::key::TUN_FLAG_OAM);
        // Critical options; an IPv4 payload; options longer than the packet.
        let mut crit = d.clone();
        crit[1] |= 0x40;
        let mut l3 = d.clone();
        l3[2..4].copy_from_slice(&[0x08, 0x00]);
        let mut long = geneve::Header::bytes(77, false).to_vec();
        long[0] = 0x3f;
        long.extend_from_slice(&frame);
        for x in [&crit, &l3, &long] {
            junk.send_to(x, ("127.0.0.1", port)).unwrap();
        }
        junk.send_to(&d, ("127.0.0.1", port)).unwrap();
        assert_eq!(wait_recv(&a, &mut bufs), 1);
        assert_eq!(a.take_rx_rejects(), (3, 0));
        // VXLAN and Geneve are separate sockets: the same port is taken.
        let v = opts(
            TunnelKind::Vxlan,
            &[
                ("remote_ip", "127.0.0.1"),
                ("local_ip", "127.0.0.1"),
                ("dst_port", &p),
            ],
        );
        assert!(TunnelPort::open("v", &v, 1, 2).is_err());
    }

    /// An IPv4 header (20 bytes, protocol GRE) from 10.0.0.2 to 10.0.0.1
    /// in front of `gre`.
    fn ip_gre(gre: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 47, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1,
        ];
        let tot = (20 + gre.len()) as u16;
        p[2..4].copy_from_slice(&tot.to_be_bytes());
        p.extend_from_slice(gre);
        p
    }

    /// Splits a packet as the receive path reads it: the slot, then the
    /// frame space.
    fn gre_split(pkt: &[u8]) -> ([u8; GRE_SLOT], Vec<u8>) {
        let mut slot = [0u8; GRE_SLOT];
        let n = pkt.len().min(GRE_SLOT);
        slot[..n].copy_from_slice(&pkt[..n]);
        (slot, pkt[n..].to_vec())
    }

    /// GRE decapsulation over every header form: where the inner frame
    /// starts, the key, the outer destination, the checksum check.
    #[test]
    fn gre_decap_finds_the_frame_in_every_header_form() {
        let frame: Vec<u8> = (0..60u8).collect();
        for key in [None, Some(0), Some(0xdead_beef)] {
            for csum in [false, true] {
                let h = gre::Header {
                    key,
                    csum,
                    seq: false,
                };
                let mut g = [0u8; gre::MAX_LEN];
                let n = h.emit(&mut g, &frame);
                let mut pkt = ip_gre(&g[..n]);
                pkt.extend_from_slice(&frame);
                let (slot, rest) = gre_split(&pkt);
                let d = decap_gre(&slot, &rest, pkt.len()).unwrap();
                assert_eq!(d.hlen, 20 + n, "{h:?}");
                assert_eq!(&pkt[d.hlen..], &frame[..]);
                assert_eq!(d.key, key.unwrap_or(0));
                assert_eq!(d.dst, Some(0x0a00_0001));
                if csum {
                    let mut bad = pkt.clone();
                    *bad.last_mut().unwrap() ^= 0x10;
                    let (slot, rest) = gre_split(&bad);
                    assert_eq!(decap_gre(&slot, &rest, bad.len()), None, "bad checksum");
                }
            }
        }
        // IP options push the GRE header into the frame space.
        let mut g = [0u8; gre::MAX_LEN];
        let n = gre::Header {
            key: Some(5),
            csum: true,
            seq: false,
        }
        .emit(&mut g, &frame);
        let mut pkt = ip_gre(&[]);
        pkt[0] = 0x46;
        pkt.extend_from_slice(&[1, 1, 1, 0]);
        pkt.extend_from_slice(&g[..n]);
        pkt.extend_from_slice(&frame);
        let (slot, rest) = gre_split(&pkt);
        let d = decap_gre(&slot, &rest, pkt.len()).unwrap();
        assert_eq!((d.hlen, d.key), (24 + 12, 5));
        // Truncated and non-IPv4 packets.
        for cut in [0, 10, 20, 23] {
            let (slot, rest) = gre_split(&pkt[..cut]);
            assert_eq!(decap_gre(&slot, &rest, cut), None, "cut at {cut}");
        }
        let mut v6 = pkt.clone();
        v6[0] = 0x60;
        let (slot, rest) = gre_split(&v6);
        assert_eq!(decap_gre(&slot, &rest, v6.len()), None);
    }

    /// GRE over a raw socket on loopback (needs root): keyed and keyless
    /// ports share the socket, each frame reaches its port whole, and a
    /// frame too big for a datagram is `FrameTooBig`.
    #[test]
    fn gre_loopback_keyed_and_keyless() {
        if !super::super::testutil::require_root() {
            return;
        }
        // 127.0.0.3 is ours alone: no other test's GRE lands on it.
        let keyed = opts(
            TunnelKind::Gre,
            &[
                ("remote_ip", "127.0.0.3"),
                ("local_ip", "127.0.0.3"),
                ("key", "0x1234"),
                ("csum", "true"),
            ],
        );
        let plain = opts(
            TunnelKind::Gre,
            &[("remote_ip", "127.0.0.3"), ("local_ip", "127.0.0.3")],
        );
        let a = TunnelPort::open("k", &keyed, 1, 1).unwrap();
        let b = TunnelPort::open("p", &plain, 1, 2).unwrap();
        let mut bufs: Vec<PacketBuf> = (0..4).map(|_| PacketBuf::new()).collect();
        for (tx, len, want) in [(&a, 60, Some(1)), (&b, 61, Some(2)), (&a, 1400, Some(1))] {
            let frame: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            tx.send(&frame).unwrap();
            assert_eq!(wait_recv(&a, &mut bufs), 1);
            assert_eq!(bufs[0].frame(), &frame[..]);
            let own = bufs[0].tunnel.redirect.map_or(1, |(_, p)| p);
            assert_eq!(Some(own), want);
            assert_eq!(bufs[0].tunnel.dst, 0x7f00_0003);
        }
        assert_eq!(a.take_rx_rejects(), (0, 0));
        let big = vec![0u8; 65536 - 20 - 12];
        assert!(matches!(a.send(&big), Err(PortError::FrameTooBig { .. })));
    }

    #[test]
    fn path_mtu_of_loopback() {
        let lo = Ipv4Addr::LOCALHOST;
        // lo's MTU is 65536; IP_MTU caps it at 65535.
        let m = path_mtu(lo, None).unwrap();
        assert!(m >= 65535, "{m}");
        assert_eq!(path_mtu(lo, Some(lo)), Some(m));
        // Not a local address: nothing to bind.
        assert_eq!(path_mtu(lo, Some(Ipv4Addr::new(192, 0, 2, 77))), None);
    }

    #[test]
    fn oversized_frame_is_too_big() {
        let port = {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let a = TunnelPort::open("a", &cfg("127.0.0.1", port, 1), 1, 1).unwrap();
        // Over the largest UDP payload: EMSGSIZE.
        let big = vec![0u8; 65507 - 8 + 1];
        assert!(matches!(a.send(&big), Err(PortError::FrameTooBig { .. })));
    }
}
