//! Ports: the only place in the datapath that touches file descriptors.
//!
//! # What?
//! A [`PortIo`] moves Ethernet frames between a Linux netdev and
//! [`PacketBuf`]s. Two kinds of I/O exist:
//! - [`TapPort`]: the switch creates a TAP device and owns its
//!   `/dev/net/tun` fd (`type=tap`, and the bridge's `internal` LOCAL port).
//! - [`AfPacketPort`]: an `AF_PACKET` socket bound to an existing netdev (a
//!   veth end, a TAP that QEMU created, a NIC) — `type=system`.
//!
//! - [`TunnelPort`]: a UDP (VXLAN, Geneve) or raw IP (GRE) socket carrying
//!   frames to and from remote tunnel endpoints (`type=vxlan|geneve|gre`);
//!   the kernel's IP stack is the underlay.
//!
//! `patch` ports have no fd; [`PortKind`] names all seven kinds.
//!
//! The switch creates and attaches ports through [`Netdevs`]: [`Kernel`]
//! does it for real; unit tests use `mem::FakeNetdevs`, whose in-memory
//! ports (`PortIo::Mem`, compiled in tests only) need no root and whose
//! creation fails on demand.
//!
//! # Design
//! `PortIo` is an enum, not a trait object: the datapath dispatches with one
//! `match` per batch and the compiler sees through it. All fds are
//! non-blocking; callers poll them (epoll, level-triggered) and then call
//! [`PortIo::recv_batch`] until it returns 0, or at most one batch per turn.
//! Frames go straight into the caller's buffers at `HEADROOM`; nothing
//! allocates on the packet path.
//!
//! Errors are classified so that the worker can act without looking at
//! errno values:
//! - would block: `recv` → `Ok(false)`, `recv_batch` → `Ok(0)`;
//!   `send` → [`PortError::TxFull`] (count a tx drop, never wait);
//! - [`PortError::FrameTooBig`]: the frame did not fit the buffer (rx) or
//!   the device MTU (tx); it is dropped, count it;
//! - [`PortError::LinkDown`]: the netdev exists but is administratively down;
//!   transient, count a drop and keep the port;
//! - [`PortError::Gone`]: the netdev was deleted (directly or with its
//!   network namespace) or moved out of our namespace. Permanent: remove the
//!   fd from epoll and drop the port; [`PortIo::check_alive`] tells the
//!   same thing without doing I/O;
//! - [`PortError::Other`]: anything else, with the OS error.
//!
//! # Linux behaviour (observed on 6.18; see the tests in `tap.rs` and
//! `afpacket.rs`, which assert each of these)
//!
//! TAP (we own the `/dev/net/tun` fd):
//! - Moved into another namespace: the fd keeps working (read, write,
//!   `TUNGETIFF`); the name just disappears from ours.
//! - Link down (wherever it lives): `read` → `EAGAIN` (frames queued before
//!   may still come out), `write` → `EIO` → `LinkDown`; `poll` reports
//!   neither `POLLIN` nor `POLLOUT`. Back up: writes work again.
//! - `ip link del`: `read`, `write` and `TUNGETIFF` → `EBADFD` → `Gone`, on
//!   every call; `poll` reports `POLLERR` for good, so a level-triggered
//!   epoll spins until the fd is removed — act on the first `Gone`.
//! - Namespace deleted: the TAP is destroyed with it (tun devices are not
//!   moved back to the initial namespace), asynchronously: frames may still
//!   be read for a moment, then `EBADFD` as above.
//! - Dropping the port deletes a non-persistent TAP at once — unless a
//!   `fork()`ed child that has not yet `exec`ed holds a copy of the fd
//!   (`O_CLOEXEC` closes it at `exec`), which delays it briefly.
//! - A TAP's maximum MTU is 65521 (65535 − 14), so its largest frame
//!   (65535 bytes) fits `MAX_FRAME`; without a vnet header `FrameTooBig`
//!   cannot happen on TAP rx.
//!
//! AF_PACKET (bound to an existing netdev):
//! - Link down: the socket gets a pending `ENETDOWN`: one `recv` returns it
//!   (`poll` shows `POLLERR` until then), later ones `EAGAIN`; every `send`
//!   → `ENETDOWN`. → `LinkDown`. Back up: rx and tx resume on the same
//!   socket.
//! - veth peer down: sends still succeed; the veth drops them silently.
//! - Deleted (`ip link del`), deleted with a namespace (deleting the
//!   namespace of a veth peer deletes both ends), or moved into another
//!   namespace: the kernel unbinds the socket (`getsockname` no longer
//!   reports the ifindex), one `recv` → `ENETDOWN` (→ `Gone`, because the
//!   binding is lost), then `EAGAIN` forever; `send` → `ENXIO` → `Gone`.
//!   `POLLERR` shows only until the error is read, after which the fd is
//!   merely silent: act on the first `Gone`, or poll `check_alive`.
//! - A veth end that comes up before its peer gets a real qdisc only when
//!   linkwatch runs (up to ~1 s later); frames sent before that are dropped
//!   while `send` reports success.
//! - The core strips the outer 802.1Q/802.1ad tag into skb metadata on rx
//!   (also without the `8021q` module); auxdata gives it back and the port
//!   re-inserts it byte for byte (QinQ included).
//! - `send` of a frame over MTU + 14 (+ 4 when it carries a VLAN tag) →
//!   `EMSGSIZE` → `FrameTooBig`.
//!
//! # Invariants
//! After `recv`/`recv_batch` returns frames, each buffer's frame is a whole
//! Ethernet frame as it was on the wire, including any 802.1Q/802.1ad tag
//! the kernel had moved into metadata. An error that happens after some
//! frames of a batch were received is held back and returned by the next
//! call, so no error is lost and no received frame is thrown away.
//!
//! # Thread-safety
//! A port is `Send + Sync` and every method takes `&self`: the worker that
//! polls a port is the only one that receives from it, while every worker
//! may send on it (each `write`/`sendmsg` is one whole frame). The receive
//! side's small state (a held-back error) sits behind an uncontended mutex.
//!
//! # Limits
//! Frames up to [`crate::packet::MAX_FRAME`] bytes (plus a re-inserted VLAN
//! tag). No offloads yet (`IFF_VNET_HDR` / `PACKET_VNET_HDR` are for later).

pub mod afpacket;
#[cfg(test)]
pub mod mem;
pub mod tap;
#[cfg(test)]
mod testutil;
pub mod tunnel;

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::str::FromStr;

use crate::netdev::NetdevError;
use crate::packet::PacketBuf;

pub use afpacket::AfPacketPort;
#[allow(unused_imports)] // part of the API; the datapath wiring uses it
pub use tap::{TapConfig, TapPort};
pub use tunnel::TunnelPort;

/// The kind of a port, as written in config and on the `rvsctl` command line.
///
/// ```ignore
/// assert_eq!("system".parse::<PortKind>().unwrap(), PortKind::System);
/// assert_eq!(PortKind::Tap.to_string(), "tap");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// A TAP device the switch creates and owns (`type=tap`).
    Tap,
    /// An existing netdev attached with `AF_PACKET` (`type=system`).
    System,
    /// The bridge's own LOCAL port: a switch-owned TAP named after the bridge.
    Internal,
    /// A link to a port on another bridge; no netdev.
    Patch,
    /// A VXLAN tunnel (UDP; no netdev).
    Vxlan,
    /// A Geneve tunnel (UDP; no netdev).
    Geneve,
    /// An Ethernet-over-GRE tunnel (IP protocol 47; no netdev).
    Gre,
}

impl PortKind {
    /// All kinds, in declaration order.
    pub const ALL: [PortKind; 7] = [
        PortKind::Tap,
        PortKind::System,
        PortKind::Internal,
        PortKind::Patch,
        PortKind::Vxlan,
        PortKind::Geneve,
        PortKind::Gre,
    ];

    /// The config/CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Tap => "tap",
            PortKind::System => "system",
            PortKind::Internal => "internal",
            PortKind::Patch => "patch",
            PortKind::Vxlan => "vxlan",
            PortKind::Geneve => "geneve",
            PortKind::Gre => "gre",
        }
    }

    /// True for tunnel kinds (ports configured by `options:`).
    pub fn is_tunnel(self) -> bool {
        self.tunnel().is_some()
    }

    /// The encapsulation of a tunnel kind.
    pub fn tunnel(self) -> Option<crate::tunnel::TunnelKind> {
        use crate::tunnel::TunnelKind;
        match self {
            PortKind::Vxlan => Some(TunnelKind::Vxlan),
            PortKind::Geneve => Some(TunnelKind::Geneve),
            PortKind::Gre => Some(TunnelKind::Gre),
            _ => None,
        }
    }
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a port kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown port type {given:?} (expected tap, system, internal, patch, vxlan, geneve or gre)"
)]
pub struct PortKindError {
    /// The rejected text.
    pub given: String,
}

impl FromStr for PortKind {
    type Err = PortKindError;

    fn from_str(s: &str) -> Result<PortKind, PortKindError> {
        PortKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| PortKindError {
                given: s.to_owned(),
            })
    }
}

/// Errors from opening a port or doing I/O on it.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Looking up or configuring the netdev failed.
    #[error(transparent)]
    Netdev(#[from] NetdevError),
    /// A setup call (open, ioctl, setsockopt, bind) failed.
    #[error("{op} for port {name:?} failed")]
    Open {
        /// The netdev name.
        name: String,
        /// The failing call, e.g. `"TUNSETIFF"`.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The transmit queue is full; the frame was not sent.
    #[error("transmit queue full")]
    TxFull,
    /// The frame is larger than the receive buffer or the device MTU; it
    /// was dropped.
    #[error("frame of {len} bytes is too big")]
    FrameTooBig {
        /// The frame length in bytes (as reported by the kernel on rx).
        len: usize,
    },
    /// The netdev is administratively down.
    #[error("network device is down")]
    LinkDown,
    /// A tunnel port's settings clash with another port's on the same
    /// socket.
    #[error("{0}")]
    Conflict(String),
    /// A tunnel port with `remote_ip=flow` got a frame whose flow key has
    /// no `tun_dst`.
    #[error("no tunnel destination (remote_ip=flow and tun_dst unset)")]
    NoTunnelDst,
    /// The netdev no longer exists (or left our namespace); the port is dead.
    #[error("network device is gone")]
    Gone(#[source] io::Error),
    /// Any other I/O error.
    #[error("port I/O failed")]
    Other(#[source] io::Error),
}

impl PortError {
    /// Whether the port is permanently unusable and should be removed.
    pub fn is_gone(&self) -> bool {
        matches!(self, PortError::Gone(_))
    }
}

/// Maps an OS error from a port read/write to a `PortError`. `EAGAIN` is
/// handled by the callers before this (it means different things on rx and
/// tx). `ENETDOWN` means "down" here; ports that can tell "down" from
/// "deleted" refine it.
pub(crate) fn classify(err: io::Error, len: usize) -> PortError {
    match err.raw_os_error() {
        Some(libc::ENODEV | libc::ENXIO | libc::EBADFD) => PortError::Gone(err),
        Some(libc::ENETDOWN) => PortError::LinkDown,
        Some(libc::EMSGSIZE) => PortError::FrameTooBig { len },
        Some(libc::EAGAIN | libc::ENOBUFS) => PortError::TxFull,
        _ => PortError::Other(err),
    }
}

/// Runs a send-type syscall until it is not interrupted: `Ok` when it
/// returned a non-negative count, the OS error otherwise.
pub(crate) fn retry_eintr(mut call: impl FnMut() -> isize) -> io::Result<()> {
    loop {
        if call() >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// `setsockopt` with an integer-like (or plain C struct) value.
pub(crate) fn setsockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points at a live `T` of `size_of::<T>()` bytes; every
    // caller passes the option's expected type (an int or a C struct).
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Socket buffer size asked for by ports' sockets (capped by
/// `net.core.[rw]mem_max` unless we may force it).
const SOCK_BUF_LEN: libc::c_int = 4 << 20;

/// Gives socket `fd` [`SOCK_BUF_LEN`]-byte receive and send buffers,
/// forced past the sysctl caps when we may.
pub(crate) fn set_sock_bufs(fd: RawFd) -> io::Result<()> {
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if setsockopt(fd, libc::SOL_SOCKET, force, &SOCK_BUF_LEN).is_err() {
            setsockopt(fd, libc::SOL_SOCKET, plain, &SOCK_BUF_LEN)?;
        }
    }
    Ok(())
}

/// An error held back by a receive that already returned frames; the next
/// receive returns it. Behind a mutex so ports can be shared (`&self` I/O);
/// only the worker polling the port receives, so it is never contended.
#[derive(Debug, Default)]
pub(crate) struct PendingError(std::sync::Mutex<Option<PortError>>);

impl PendingError {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<PortError>> {
        // A poisoned lock only means a panic elsewhere; the Option is valid.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the held error, if any.
    pub(crate) fn take(&self) -> Option<PortError> {
        self.slot().take()
    }

    /// Holds `e` unless an error is already held.
    pub(crate) fn hold(&self, e: PortError) {
        let mut s = self.slot();
        if s.is_none() {
            *s = Some(e);
        }
    }
}

/// Where the switch gets its ports from: which netdevs exist, new TAPs,
/// AF_PACKET sockets on existing netdevs.
pub trait Netdevs: Send + Sync + fmt::Debug {
    /// Whether a netdev named `name` exists (in our namespace).
    fn exists(&self, name: &str) -> bool;
    /// Its MAC address, if it can be read.
    fn mac(&self, name: &str) -> Option<[u8; 6]>;
    /// Creates a TAP device `name` owned by the switch (`type=tap`, and a
    /// bridge's LOCAL port).
    fn create_tap(&self, name: &str) -> Result<PortIo, PortError>;
    /// Attaches to the existing netdev `name` (`type=system`).
    fn open_system(&self, name: &str) -> Result<PortIo, PortError>;
}

/// The real thing: TAPs through `/dev/net/tun`, AF_PACKET sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel;

impl Netdevs for Kernel {
    fn exists(&self, name: &str) -> bool {
        crate::netdev::exists(name)
    }

    fn mac(&self, name: &str) -> Option<[u8; 6]> {
        crate::netdev::mac(name).ok().map(|m| m.0)
    }

    fn create_tap(&self, name: &str) -> Result<PortIo, PortError> {
        TapPort::create(name).map(PortIo::Tap)
    }

    fn open_system(&self, name: &str) -> Result<PortIo, PortError> {
        AfPacketPort::open(name).map(PortIo::AfPacket)
    }
}

/// A port's I/O endpoint. One datapath worker polls and receives from it;
/// any worker may send on it (the kernel serialises writes per frame).
#[derive(Debug)]
pub enum PortIo {
    /// A switch-owned TAP device.
    Tap(TapPort),
    /// An `AF_PACKET` socket on an existing netdev.
    AfPacket(AfPacketPort),
    /// Unit tests: an in-memory port ([`mem::MemPort`]).
    #[cfg(test)]
    Mem(mem::MemPort),
    /// A tunnel port's socket (VXLAN, Geneve, GRE).
    Tunnel(TunnelPort),
}

impl PortIo {
    /// The fd to register with epoll (readable = frames waiting).
    pub fn fd(&self) -> RawFd {
        match self {
            PortIo::Tap(p) => p.fd(),
            PortIo::AfPacket(p) => p.fd(),
            #[cfg(test)]
            PortIo::Mem(p) => p.fd(),
            PortIo::Tunnel(p) => p.fd(),
        }
    }

    /// The netdev name the port was opened with.
    pub fn name(&self) -> &str {
        match self {
            PortIo::Tap(p) => p.name(),
            PortIo::AfPacket(p) => p.name(),
            #[cfg(test)]
            PortIo::Mem(p) => p.name(),
            PortIo::Tunnel(p) => p.name(),
        }
    }

    /// Receives one frame into `buf`. `Ok(false)` when none is waiting.
    pub fn recv(&self, buf: &mut PacketBuf) -> Result<bool, PortError> {
        match self {
            PortIo::Tap(p) => p.recv(buf),
            PortIo::AfPacket(p) => p.recv(buf),
            #[cfg(test)]
            PortIo::Mem(p) => p.recv(buf),
            PortIo::Tunnel(p) => p.recv(buf),
        }
    }

    /// Receives up to `bufs.len()` frames into `bufs[0..n]`; `Ok(0)` when
    /// none is waiting.
    pub fn recv_batch(&self, bufs: &mut [PacketBuf]) -> Result<usize, PortError> {
        match self {
            PortIo::Tap(p) => p.recv_batch(bufs),
            PortIo::AfPacket(p) => p.recv_batch(bufs),
            #[cfg(test)]
            PortIo::Mem(p) => p.recv_batch(bufs),
            PortIo::Tunnel(p) => p.recv_batch(bufs),
        }
    }

    /// Sends one complete frame without blocking.
    pub fn send(&self, frame: &[u8]) -> Result<(), PortError> {
        match self {
            PortIo::Tap(p) => p.send(frame),
            PortIo::AfPacket(p) => p.send(frame),
            #[cfg(test)]
            PortIo::Mem(p) => p.send(frame),
            PortIo::Tunnel(p) => p.send(frame),
        }
    }

    /// [`PortIo::send`] with the frame's tunnel key fields (`tun_src`,
    /// `tun_dst`, `tun_id`), which a tunnel port with `flow` options sends
    /// by (other ports ignore them).
    #[inline]
    pub fn send_tunnel(&self, frame: &[u8], tun: (u32, u32, u64)) -> Result<(), PortError> {
        match self {
            PortIo::Tunnel(p) => p.send_tunnel(frame, tun.0, tun.1, tun.2),
            _ => self.send(frame),
        }
    }

    /// True when the port takes offloaded frames (GSO, partial checksums)
    /// with a virtio-net header.
    #[inline]
    pub fn vnet(&self) -> bool {
        match self {
            PortIo::Tap(p) => p.vnet(),
            PortIo::AfPacket(p) => p.vnet(),
            #[cfg(test)]
            PortIo::Mem(_) => false,
            PortIo::Tunnel(_) => false,
        }
    }

    /// Sends one frame with its offload metadata without blocking; only
    /// for ports where [`PortIo::vnet`] is true (others get the frame as
    /// is, so the caller must complete it first).
    #[inline]
    pub fn send_vnet(
        &self,
        hdr: &flowtable::offload::VirtioNetHdr,
        frame: &[u8],
    ) -> Result<(), PortError> {
        match self {
            PortIo::Tap(p) => p.send_vnet(hdr, frame),
            PortIo::AfPacket(p) => p.send_vnet(hdr, frame),
            #[cfg(test)]
            PortIo::Mem(p) => p.send(frame),
            // Never offloaded: `vnet()` is false, callers complete frames.
            PortIo::Tunnel(p) => p.send(frame),
        }
    }

    /// True when [`PortIo::send_batch`] sends many frames per syscall
    /// (AF_PACKET's and fixed-destination tunnels' `sendmmsg`); TAPs have
    /// no batched write.
    #[inline]
    pub fn batches_tx(&self) -> bool {
        match self {
            PortIo::AfPacket(_) => true,
            PortIo::Tunnel(p) => p.batches_tx(),
            _ => false,
        }
    }

    /// Sends frames (with offload metadata, see [`PortIo::send_vnet`]);
    /// returns how many were taken from the front, `Err` only when none
    /// was (the error is the first frame's).
    pub fn send_batch(
        &self,
        hdrs: &[flowtable::offload::VirtioNetHdr],
        frames: &[&[u8]],
    ) -> Result<usize, PortError> {
        match self {
            PortIo::AfPacket(p) => p.send_batch(hdrs, frames),
            PortIo::Tap(p) => match (hdrs.first(), frames.first()) {
                (Some(h), Some(f)) => p.send_vnet(h, f).map(|()| 1),
                _ => Ok(0),
            },
            #[cfg(test)]
            PortIo::Mem(p) => match frames.first() {
                Some(f) => p.send(f).map(|()| 1),
                None => Ok(0),
            },
            // Never offloaded (`vnet()` is false): frames are complete.
            PortIo::Tunnel(p) => p.send_batch(frames),
        }
    }

    /// Datagrams a tunnel port skipped since the last call, as (malformed,
    /// for no port); zeros for other ports.
    #[inline]
    pub fn take_rx_rejects(&self) -> (u64, u64) {
        match self {
            PortIo::Tunnel(p) => p.take_rx_rejects(),
            _ => (0, 0),
        }
    }

    /// Whether the netdev behind the port still exists (works across
    /// namespaces; no I/O on the frame path).
    pub fn check_alive(&self) -> bool {
        match self {
            PortIo::Tap(p) => p.check_alive(),
            PortIo::AfPacket(p) => p.check_alive(),
            #[cfg(test)]
            PortIo::Mem(_) => true,
            PortIo::Tunnel(p) => p.check_alive(),
        }
    }
}

impl From<TapPort> for PortIo {
    fn from(p: TapPort) -> PortIo {
        PortIo::Tap(p)
    }
}

impl From<TunnelPort> for PortIo {
    fn from(p: TunnelPort) -> PortIo {
        PortIo::Tunnel(p)
    }
}

impl From<AfPacketPort> for PortIo {
    fn from(p: AfPacketPort) -> PortIo {
        PortIo::AfPacket(p)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_send() {
        fn send<T: Send + Sync>() {}
        send::<PortIo>();
        send::<PortError>();
    }

    #[test]
    fn port_kind_round_trip() {
        for k in PortKind::ALL {
            assert_eq!(k.to_string().parse::<PortKind>().unwrap(), k);
        }
        assert_eq!("tap".parse::<PortKind>().unwrap(), PortKind::Tap);
        assert_eq!("system".parse::<PortKind>().unwrap(), PortKind::System);
        assert_eq!("internal".parse::<PortKind>().unwrap(), PortKind::Internal);
        assert_eq!("patch".parse::<PortKind>().unwrap(), PortKind::Patch);
        assert_eq!("vxlan".parse::<PortKind>().unwrap(), PortKind::Vxlan);
        assert_eq!("geneve".parse::<PortKind>().unwrap(), PortKind::Geneve);
        assert_eq!("gre".parse::<PortKind>().unwrap(), PortKind::Gre);
        let err = "gretap".parse::<PortKind>().unwrap_err();
        assert_eq!(err.given, "gretap");
        assert!(err.to_string().contains("geneve or gre"));
        assert!("Tap".parse::<PortKind>().is_err());
    }

    #[test]
    fn errno_classification() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert!(classify(e(libc::ENODEV), 0).is_gone());
        assert!(classify(e(libc::ENXIO), 0).is_gone());
        assert!(classify(e(libc::EBADFD), 0).is_gone());
        assert!(matches!(
            classify(e(libc::ENETDOWN), 0),
            PortError::LinkDown
        ));
        assert!(matches!(
            classify(e(libc::EMSGSIZE), 9000),
            PortError::FrameTooBig { len: 9000 }
        ));
        assert!(matches!(classify(e(libc::ENOBUFS), 0), PortError::TxFull));
        assert!(matches!(classify(e(libc::EAGAIN), 0), PortError::TxFull));
        assert!(matches!(classify(e(libc::EPERM), 0), PortError::Other(_)));
    }
}
