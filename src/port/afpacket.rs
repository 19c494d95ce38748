//! System ports: an `AF_PACKET` socket bound to an existing netdev.
//!
//! # What?
//! [`AfPacketPort::open`] attaches to a netdev the switch does not own (a
//! veth end, a TAP that QEMU created, a NIC): it receives every frame the
//! device receives (promiscuous) and transmits frames out of it.
//!
//! # Design
//! - `socket(AF_PACKET, SOCK_RAW, 0)` (protocol 0: nothing is queued until
//!   the `bind` to the device with `ETH_P_ALL`, so no frame of another
//!   device slips in), non-blocking, close-on-exec.
//! - `PACKET_ADD_MEMBERSHIP`/`PACKET_MR_PROMISC`: promiscuous while the
//!   socket lives; the kernel drops the membership when it is closed.
//! - `PACKET_AUXDATA`: the kernel hands frames over with the outer VLAN tag
//!   stripped into `tpacket_auxdata` (`tp_vlan_tci` with
//!   `TP_STATUS_VLAN_VALID`, `tp_vlan_tpid` with `TP_STATUS_VLAN_TPID_VALID`,
//!   default 0x8100). The port puts it back: the 12 MAC bytes move 4 bytes
//!   into the headroom and the tag goes in between, so the frame is what was
//!   on the wire.
//! - `PACKET_IGNORE_OUTGOING` (Linux ≥ 4.20) so our own transmissions are
//!   not read back; without it, frames with `sll_pkttype == PACKET_OUTGOING`
//!   are skipped (they are also what other local senders, e.g. a `tcpdump
//!   -w -` replay, transmit — those are not "received" by the device either).
//! - 4 MiB socket buffers (`SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` when allowed,
//!   else `SO_RCVBUF`/`SO_SNDBUF`, capped by `net.core.[rw]mem_max`).
//! - Batches with `recvmmsg` straight into the caller's buffers; the
//!   `mmsghdr`/`iovec`/control arrays live on the stack of the call (≈ 5 KiB
//!   for 32 frames), so the port holds no raw pointers and is `Send`.
//!
//! # Invariants
//! The socket only ever sees the device it was bound to. `getsockname`
//! reports that device's ifindex until the device is unregistered from our
//! namespace (deleted, or moved away), after which the kernel resets it to
//! -1: that is [`AfPacketPort::check_alive`].
//!
//! # Thread-safety
//! Shared between workers: one receives, any may send; all methods take
//! `&self` (see the `port` module docs).
//!
//! # Limits
//! At most [`MAX_BATCH`] frames per `recv_batch` (longer slices are filled
//! up to that). Only the outer tag is in auxdata; an inner (QinQ) tag stays
//! in the frame as received. Frames larger than the buffer are dropped
//! ([`PortError::FrameTooBig`]). A socket never re-binds: if the device is
//! re-created, open a new port.

use flowtable::offload::{adjust_for_vlan, VirtioNetHdr};
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{classify, retry_eintr, set_sock_bufs, setsockopt, PortError};
use crate::netdev;
use crate::packet::{PacketBuf, HEADROOM};

/// Largest batch `recv_batch` reads with one `recvmmsg`.
pub const MAX_BATCH: usize = 32;
/// Default TPID when the kernel does not report one.
const TPID_8021Q: u16 = 0x8100;
/// Control buffer per message, enough for one `tpacket_auxdata` cmsg.
type CmsgBuf = [u64; 8];

/// An `AF_PACKET` socket on an existing netdev.
#[derive(Debug)]
pub struct AfPacketPort {
    /// The bound packet socket.
    fd: OwnedFd,
    /// The device name at open time.
    name: String,
    /// The device's ifindex at open time.
    ifindex: u32,
    /// Whether `PACKET_IGNORE_OUTGOING` is active (else we filter).
    ignore_outgoing: bool,
    /// An error held back from the end of a batch, returned next call.
    pending: super::PendingError,
    /// Frames whose VLAN tag was put back from auxdata.
    rx_vlan_restored: std::sync::atomic::AtomicU64,
    /// `PACKET_VNET_HDR` is on: frames carry a virtio-net header both ways
    /// (GSO frames and partial checksums pass through untouched).
    vnet: bool,
}

/// `PACKET_VNET_HDR` socket option (not in libc).
const PACKET_VNET_HDR: libc::c_int = 15;

impl AfPacketPort {
    /// Attaches to the existing netdev `name` and brings it up if it is
    /// down. Needs `CAP_NET_RAW` (and `CAP_NET_ADMIN` to set it up).
    pub fn open(name: &str) -> Result<AfPacketPort, PortError> {
        AfPacketPort::open_with(name, true)
    }

    /// `open`, optionally without `PACKET_IGNORE_OUTGOING` (to test the
    /// fallback filter).
    fn open_with(name: &str, try_ignore_outgoing: bool) -> Result<AfPacketPort, PortError> {
        let ifindex = netdev::ifindex(name)?;
        netdev::set_up(name)?;
        let open_err = |op, source| PortError::Open {
            name: name.to_owned(),
            op,
            source,
        };

        // SAFETY: socket() has no memory-safety preconditions.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(open_err("socket(AF_PACKET)", io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();

        let one: libc::c_int = 1;
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_AUXDATA, &one)
            .map_err(|e| open_err("PACKET_AUXDATA", e))?;
        let ignore_outgoing = try_ignore_outgoing
            && setsockopt(s, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one).is_ok();
        // Offloads: without this, a veth peer's 64 KiB TSO frames arrive
        // with partial checksums and no way to tell.
        let vnet = setsockopt(s, libc::SOL_PACKET, PACKET_VNET_HDR, &one).is_ok();
        set_sock_bufs(s).map_err(|e| open_err("SO_RCVBUF/SO_SNDBUF", e))?;

        // SAFETY: sockaddr_ll is a plain C struct; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its
        // size.
        let rc = unsafe {
            libc::bind(
                s,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::ENODEV | libc::ENXIO) => PortError::Gone(err),
                _ => open_err("bind", err),
            });
        }

        // SAFETY: packet_mreq is a plain C struct; all-zero is valid.
        let mut mreq: libc::packet_mreq = unsafe { zeroed() };
        mreq.mr_ifindex = ifindex as libc::c_int;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(|e| open_err("PACKET_ADD_MEMBERSHIP", e))?;

        Ok(AfPacketPort {
            fd,
            name: name.to_owned(),
            ifindex,
            ignore_outgoing,
            pending: super::PendingError::default(),
            rx_vlan_restored: std::sync::atomic::AtomicU64::new(0),
            vnet,
        })
    }

    /// The fd to poll.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The device name at open time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device's ifindex at open time.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// How many received frames had their VLAN tag put back from auxdata.
    pub fn rx_vlan_restored(&self) -> u64 {
        self.rx_vlan_restored
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether `PACKET_IGNORE_OUTGOING` is in effect.
    pub fn ignores_outgoing(&self) -> bool {
        self.ignore_outgoing
    }

    /// The ifindex the socket is bound to now (-1 after the device was
    /// unregistered from our namespace).
    fn bound_ifindex(&self) -> io::Result<i32> {
        // SAFETY: sockaddr_ll is a plain C struct; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `sll` is writable for `len` bytes and `len` is a valid
        // in/out length; the fd is open.
        let rc = unsafe {
            libc::getsockname(
                self.fd.as_raw_fd(),
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sll.sll_ifindex)
    }

    /// Whether the device the socket was bound to still exists in our
    /// namespace.
    pub fn check_alive(&self) -> bool {
        matches!(self.bound_ifindex(), Ok(i) if i == self.ifindex as i32)
    }

    /// Classifies an I/O error; `ENETDOWN` becomes `Gone` when the device
    /// was unregistered (the kernel reports both with `ENETDOWN`).
    fn refine(&self, err: io::Error, len: usize) -> PortError {
        match classify(err, len) {
            PortError::LinkDown if !self.check_alive() => {
                PortError::Gone(io::Error::from_raw_os_error(libc::ENETDOWN))
            }
            other => other,
        }
    }

    /// Receives one frame; `Ok(false)` when none is waiting.
    pub fn recv(&self, buf: &mut PacketBuf) -> Result<bool, PortError> {
        Ok(self.recv_batch(std::slice::from_mut(buf))? == 1)
    }

    /// Receives up to `min(bufs.len(), MAX_BATCH)` frames into `bufs[0..n]`.
    pub fn recv_batch(&self, bufs: &mut [PacketBuf]) -> Result<usize, PortError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        // Retry while a whole batch was skipped (our own outgoing frames or
        // oversized ones), so `Ok(0)` always means "nothing waiting".
        loop {
            let (kept, read) = self.recv_mmsg(bufs)?;
            if kept > 0 || read == 0 {
                return Ok(kept);
            }
        }
    }

    /// One `recvmmsg`: returns (frames kept in `bufs[0..kept]`, messages
    /// read).
    fn recv_mmsg(&self, bufs: &mut [PacketBuf]) -> Result<(usize, usize), PortError> {
        let want = bufs.len().min(MAX_BATCH);
        if want == 0 {
            return Ok((0, 0));
        }
        // SAFETY: iovec is a plain C struct; all-zero bytes are valid.
        let mut iov: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
        // SAFETY: mmsghdr is a plain C struct (null pointers, zero lengths
        // when zeroed); all-zero bytes are valid.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        // SAFETY: sockaddr_ll is a plain C struct; all-zero bytes are valid.
        let mut addrs: [libc::sockaddr_ll; MAX_BATCH] = unsafe { zeroed() };
        let mut cmsgs: [CmsgBuf; MAX_BATCH] = [[0; 8]; MAX_BATCH];
        for i in 0..want {
            let space = bufs[i].rx_space();
            iov[i].iov_base = space.as_mut_ptr().cast();
            iov[i].iov_len = space.len();
            let h = &mut msgs[i].msg_hdr;
            h.msg_iov = &mut iov[i];
            h.msg_iovlen = 1;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_ll).cast();
            h.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            h.msg_control = cmsgs[i].as_mut_ptr().cast();
            h.msg_controllen = size_of::<CmsgBuf>();
        }
        let got = loop {
            // SAFETY: msgs[..want] point at iovecs, addresses and control
            // buffers that live on this stack frame, and the iovecs at the
            // callers' buffers (borrowed mutably for this call); every length
            // matches its buffer. The fd is open.
            let rc = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    want as libc::c_uint,
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
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
                _ => return Err(self.refine(err, 0)),
            }
        };

        // Post-process: drop outgoing and oversized frames, re-insert VLAN
        // tags, and compact the survivors to bufs[0..n].
        let mut n = 0;
        for i in 0..got {
            let len = msgs[i].msg_len as usize;
            let h = &msgs[i].msg_hdr;
            if !self.ignore_outgoing && addrs[i].sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let max = crate::packet::MAX_FRAME + if self.vnet { VirtioNetHdr::LEN } else { 0 };
            if h.msg_flags & libc::MSG_TRUNC != 0 || len > max {
                self.pending.hold(PortError::FrameTooBig { len });
                continue;
            }
            let tag = vlan_from_cmsgs(h);
            if !self.vnet {
                bufs[i].set_received(len);
            } else if !bufs[i].set_received_vnet(len) {
                continue;
            }
            if let Some((tpid, tci)) = tag {
                reinsert_vlan(&mut bufs[i], tpid, tci);
                // The kernel computed csum_start/hdr_len without the tag.
                adjust_for_vlan(&mut bufs[i].vnet, 4);
                self.rx_vlan_restored
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

    /// Sends one frame out of the device without blocking.
    /// True when frames carry a virtio-net header (offloads on).
    pub fn vnet(&self) -> bool {
        self.vnet
    }

    /// Sends one frame with its offload metadata; the kernel segments GSO
    /// frames and completes partial checksums. Without `PACKET_VNET_HDR`
    /// the frame must be complete.
    pub fn send_vnet(&self, hdr: &VirtioNetHdr, frame: &[u8]) -> Result<(), PortError> {
        if !self.vnet {
            return self.send_plain(frame);
        }
        let mut h = [0u8; VirtioNetHdr::LEN];
        if hdr.write(&mut h).is_err() {
            return Err(PortError::Other(io::Error::from(
                io::ErrorKind::InvalidInput,
            )));
        }
        let mut iov = [
            libc::iovec {
                iov_base: h.as_mut_ptr().cast(),
                iov_len: h.len(),
            },
            libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            },
        ];
        // SAFETY: msghdr is a plain C struct; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = 2;
        // SAFETY: `msg` points at two iovecs describing live buffers
        // the kernel only reads; the socket is open and bound, so no
        // address is needed.
        retry_eintr(
            || unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) } as isize,
        )
        .map_err(|err| self.refine(err, frame.len()))
    }

    /// Sends up to `MAX_BATCH` frames (with their offload metadata when
    /// the socket has `PACKET_VNET_HDR`; otherwise they must be complete)
    /// in one `sendmmsg`. Returns how many the kernel took, from the
    /// front; `Err` only when it took none (the error is the first
    /// frame's).
    pub fn send_batch(&self, hdrs: &[VirtioNetHdr], frames: &[&[u8]]) -> Result<usize, PortError> {
        let n = frames.len().min(hdrs.len()).min(MAX_BATCH);
        if n == 0 {
            return Ok(0);
        }
        let mut hbufs = [[0u8; VirtioNetHdr::LEN]; MAX_BATCH];
        // SAFETY: iovec is a plain C struct; all-zero bytes are valid.
        let mut iov: [[libc::iovec; 2]; MAX_BATCH] = unsafe { zeroed() };
        // SAFETY: mmsghdr is a plain C struct; all-zero bytes are valid.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        for i in 0..n {
            let data = libc::iovec {
                iov_base: frames[i].as_ptr() as *mut libc::c_void,
                iov_len: frames[i].len(),
            };
            let parts = if self.vnet {
                if hdrs[i].write(&mut hbufs[i]).is_err() {
                    return Err(PortError::Other(io::Error::from(
                        io::ErrorKind::InvalidInput,
                    )));
                }
                iov[i][0] = libc::iovec {
                    iov_base: hbufs[i].as_mut_ptr().cast(),
                    iov_len: VirtioNetHdr::LEN,
                };
                iov[i][1] = data;
                2
            } else {
                iov[i][0] = data;
                1
            };
            msgs[i].msg_hdr.msg_iov = iov[i].as_mut_ptr();
            msgs[i].msg_hdr.msg_iovlen = parts;
        }
        let mut sent = 0isize;
        retry_eintr(|| {
            // SAFETY: msgs[..n] point at iovecs on this stack frame, which
            // point at header buffers on this stack frame and at the callers'
            // frames; the kernel only reads them. The socket is open and bound.
            sent = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            } as isize;
            sent
        })
        .map_err(|err| self.refine(err, frames[0].len()))?;
        Ok(sent.max(0) as usize)
    }

    /// Sends one complete frame.
    pub fn send(&self, frame: &[u8]) -> Result<(), PortError> {
        if self.vnet {
            return self.send_vnet(&VirtioNetHdr::NONE, frame);
        }
        self.send_plain(frame)
    }

    fn send_plain(&self, frame: &[u8]) -> Result<(), PortError> {
        // SAFETY: `frame` is readable for its whole length; the fd is
        // open and bound, so no address is needed.
        retry_eintr(|| unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        } as isize)
        .map_err(|err| self.refine(err, frame.len()))
    }
}

/// The (TPID, TCI) of the VLAN tag the kernel stripped, from a received
/// message's `PACKET_AUXDATA` control message.
fn vlan_from_cmsgs(h: &libc::msghdr) -> Option<(u16, u16)> {
    // SAFETY: `h` was filled by recvmmsg; msg_control/msg_controllen
    // describe our control buffer and the kernel-written cmsg chain in it,
    // which CMSG_FIRSTHDR/CMSG_NXTHDR walk within those bounds.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(h) };
    while !c.is_null() {
        // SAFETY: `c` is non-null and points at a cmsghdr inside the buffer.
        let cm = unsafe { &*c };
        if cm.cmsg_level == libc::SOL_PACKET
            && cm.cmsg_type == libc::PACKET_AUXDATA
            && cm.cmsg_len as usize
                // SAFETY: CMSG_LEN is a pure size computation.
                >= unsafe { libc::CMSG_LEN(size_of::<libc::tpacket_auxdata>() as u32) } as usize
        {
            // SAFETY: the cmsg carries a whole tpacket_auxdata (length checked
            // above); CMSG_DATA may be unaligned for it, hence read_unaligned.
            let aux: libc::tpacket_auxdata = unsafe {
                std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::tpacket_auxdata>())
            };
            if aux.tp_status & libc::TP_STATUS_VLAN_VALID == 0 {
                return None;
            }
            let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                aux.tp_vlan_tpid
            } else {
                TPID_8021Q
            };
            return Some((tpid, aux.tp_vlan_tci));
        }
        // SAFETY: `c` is a valid cmsg of chain `h`.
        c = unsafe { libc::CMSG_NXTHDR(h, c) };
    }
    None
}

/// Puts a VLAN tag back into a frame received at `HEADROOM`: the MAC
/// addresses move 4 bytes into the headroom and the tag goes after them.
fn reinsert_vlan(buf: &mut PacketBuf, tpid: u16, tci: u16) {
    let (data, start, len) = buf.raw_mut();
    if *start < HEADROOM || *len < 12 {
        return;
    }
    let s = *start;
    data.copy_within(s..s + 12, s - 4);
    data[s + 8..s + 10].copy_from_slice(&tpid.to_be_bytes());
    data[s + 10..s + 12].copy_from_slice(&tci.to_be_bytes());
    *start = s - 4;
    *len += 4;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::port::testutil::*;
    use crate::port::PortIo;
    use std::time::Duration;

    #[test]
    fn reinsert_vlan_golden() {
        let untagged = eth([1; 6], [2; 6], None, ETH_P_IP, &[0x45, 0, 0, 20]);
        let mut b = PacketBuf::new();
        b.rx_space()[..untagged.len()].copy_from_slice(&untagged);
        b.set_received(untagged.len());
        reinsert_vlan(&mut b, 0x8100, 0x200a);
        assert_eq!(
            b.frame(),
            eth([1; 6], [2; 6], Some(0x200a), ETH_P_IP, &[0x45, 0, 0, 20]).as_slice()
        );
        assert_eq!(b.start, HEADROOM - 4);
    }

    #[test]
    fn open_missing_device_is_not_found() {
        let err = AfPacketPort::open("rvsnosuchdev1").unwrap_err();
        assert!(
            matches!(err, PortError::Netdev(netdev::NetdevError::NotFound { .. })),
            "{err:?}"
        );
    }

    /// A veth pair: `uniq(tag)` here, `eth0` in namespace `uniq(tag)`.
    fn veth_to_netns(tag: &str) -> (NetGuard, String) {
        let mut g = NetGuard::default();
        let name = uniq(tag);
        g.add_netns(&name);
        run(&[
            "ip", "link", "add", &name, "type", "veth", "peer", "name", "eth0", "netns", &name,
        ]);
        g.links.push(name.clone());
        run(&["ip", "-n", &name, "link", "set", "eth0", "up"]);
        (g, name)
    }

    const HOST_MAC: [u8; 6] = [0x02, 0x52, 0x56, 0, 0, 0x03];

    /// The `promiscuity` counter of a device in our namespace.
    fn promiscuity(name: &str) -> u32 {
        let out = std::process::Command::new("ip")
            .args(["-d", "link", "show", name])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut words = text.split_whitespace();
        while let Some(w) = words.next() {
            if w == "promiscuity" {
                return words.next().unwrap().parse().unwrap();
            }
        }
        panic!("no promiscuity in {text}");
    }

    /// Runs `ping` from the namespace end of a veth pair (over VLAN 10 when
    /// `vid` is set) against a fake host behind an `AfPacketPort` on our end.
    fn ping_through_veth(tag: &str, vid: Option<u16>) {
        let (_g, ns) = veth_to_netns(tag);
        let dev = match vid {
            Some(v) => {
                let vs = v.to_string();
                run(&[
                    "ip", "-n", &ns, "link", "add", "link", "eth0", "name", "vl", "type", "vlan",
                    "id", &vs,
                ]);
                "vl"
            }
            None => "eth0",
        };
        run(&["ip", "-n", &ns, "addr", "add", "10.99.2.1/24", "dev", dev]);
        run(&["ip", "-n", &ns, "link", "set", dev, "up"]);
        assert!(!netdev::is_up(&ns).unwrap());
        assert_eq!(promiscuity(&ns), 0);

        let port = AfPacketPort::open(&ns).unwrap();
        assert!(netdev::is_up(&ns).unwrap(), "open brings the link up");
        assert_eq!(promiscuity(&ns), 1);
        assert!(port.ignores_outgoing());
        assert!(port.check_alive());
        let mut port = PortIo::AfPacket(port);

        // The fake host answers with frames tagged like the requests; the
        // ping only succeeds if they reach the namespace's device (with a
        // VLAN: if the tag we send is kept on the wire).
        let mut ping = ping_in(&ns, "10.99.2.2", 3);
        let log = fake_host(
            &mut port,
            HOST_MAC,
            [10, 99, 2, 2],
            &mut ping,
            Duration::from_secs(15),
        );
        let arp = log
            .arp_requests
            .first()
            .expect("ARP request seen on the socket");
        assert_eq!(&arp[0..6], &[0xff; 6]);
        let off = match vid {
            Some(v) => {
                assert_eq!(&arp[12..14], &[0x81, 0x00], "802.1Q tag put back");
                assert_eq!(u16::from_be_bytes([arp[14], arp[15]]) & 0x0fff, v);
                4
            }
            None => 0,
        };
        assert_eq!(&arp[off + 12..off + 14], &[0x08, 0x06]);
        assert_eq!(&arp[off + 28..off + 32], &[10, 99, 2, 1], "sender IP");
        assert_eq!(&arp[off + 38..off + 42], &[10, 99, 2, 2], "target IP");
        assert_eq!(log.echo_requests.len(), 3);
        for e in &log.echo_requests {
            assert_eq!(l3(e).unwrap().2.map(|t| t & 0x0fff), vid);
        }
        assert_eq!(log.child_ok, Some(true), "ping got replies");

        drop(port);
        assert_eq!(promiscuity(&ns), 0, "membership dropped with the socket");
    }

    /// Whether the kernel can create VLAN devices (CONFIG_VLAN_8021Q).
    fn kernel_has_vlan_devices() -> bool {
        let (_g, a, _b) = quiet_veth_pair("k", "j");
        let ok = std::process::Command::new("ip")
            .args([
                "link",
                "add",
                "link",
                &a,
                "name",
                &uniq("kv"),
                "type",
                "vlan",
                "id",
                "10",
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        ok
    }

    #[test]
    fn afpacket_ping_through_veth() {
        if !require_root() {
            return;
        }
        ping_through_veth("p", None);
    }

    #[test]
    fn afpacket_vlan_tags_are_reinserted_and_tagged_tx_arrives() {
        if !require_root() {
            return;
        }
        if !kernel_has_vlan_devices() {
            // Tag stripping/re-insertion is still covered by
            // afpacket_frames_cross_byte_exact_in_batches (the core strips
            // tags without the 8021q module).
            eprintln!("skipping: this kernel has no VLAN devices (CONFIG_VLAN_8021Q unset)");
            return;
        }
        ping_through_veth("q", Some(10));
    }

    /// Waits until `name` is operationally up. A veth end that came up
    /// before its peer gets its qdisc only when linkwatch runs (up to ~1 s
    /// later); until then the kernel drops what we send and reports success.
    fn wait_oper_up(name: &str) {
        let path = format!("/sys/class/net/{name}/operstate");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&path).unwrap().trim() != "up" {
            assert!(std::time::Instant::now() < deadline, "{name} not up");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A veth pair in our namespace, IPv6 off so nothing else talks on it.
    fn quiet_veth_pair(tag_a: &str, tag_b: &str) -> (NetGuard, String, String) {
        let mut g = NetGuard::default();
        let (a, b) = (uniq(tag_a), uniq(tag_b));
        run(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
        g.links.push(a.clone());
        for n in [&a, &b] {
            run(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{n}.disable_ipv6=1"),
            ]);
        }
        (g, a, b)
    }

    #[test]
    fn afpacket_frames_cross_byte_exact_in_batches() {
        if !require_root() {
            return;
        }
        let (_g, a, b) = quiet_veth_pair("a", "b");
        let pa = PortIo::AfPacket(AfPacketPort::open(&a).unwrap());
        let pb = PortIo::AfPacket(AfPacketPort::open(&b).unwrap());
        wait_oper_up(&a);
        wait_oper_up(&b);
        let src = [0x02, 0x52, 0x56, 0xaa, 0xbb, 0xcc];
        let dst = [0x02, 0x52, 0x56, 0xdd, 0xee, 0xff];
        let payload: Vec<u8> = (0..100u8).collect();

        let mut sent = vec![
            eth(dst, src, None, 0x88b5, &payload),
            // 802.1Q with PCP 5, DEI 0, VID 10.
            eth(dst, src, Some(0xa00a), 0x88b5, &payload),
            // 802.1ad outer VID 100, 802.1Q inner VID 20.
            {
                let mut p = vec![0x81, 0x00, 0x00, 20, 0x88, 0xb5];
                p.extend_from_slice(&payload);
                let mut f = eth(dst, src, None, 0x88a8, &[0x00, 100]);
                f.extend_from_slice(&p);
                f
            },
            // VID 0 (priority tag).
            eth(dst, src, Some(0x6000), 0x88b5, &payload),
        ];
        for i in 0..40u8 {
            sent.push(eth(dst, src, None, 0x88b5, &[i; 60]));
        }
        // The tagged frames one by one, the 40 others with sendmmsg.
        for f in &sent[..4] {
            pb.send(f).unwrap();
        }
        let rest: Vec<&[u8]> = sent[4..].iter().map(Vec::as_slice).collect();
        let hdrs = [VirtioNetHdr::NONE; MAX_BATCH];
        let mut at = 0;
        let mut calls = 0;
        while at < rest.len() {
            let k = pb
                .send_batch(&hdrs[..(rest.len() - at).min(MAX_BATCH)], &rest[at..])
                .unwrap();
            assert!(k > 0);
            at += k;
            calls += 1;
        }
        assert_eq!(calls, 2, "40 frames in two sendmmsg calls");
        std::thread::sleep(Duration::from_millis(100));

        let mut bufs: Vec<PacketBuf> = (0..MAX_BATCH + 8).map(|_| PacketBuf::new()).collect();
        let mut got = Vec::new();
        let mut batches = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while got.len() < sent.len() && std::time::Instant::now() < deadline {
            let n = pa.recv_batch(&mut bufs).unwrap();
            if n == 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            batches.push(n);
            got.extend(
                bufs[..n]
                    .iter()
                    .filter(|b| b.frame()[6..12] == src)
                    .map(|b| b.frame().to_vec()),
            );
        }
        assert_eq!(
            got, sent,
            "frames arrive in order, tags restored byte for byte"
        );
        let PortIo::AfPacket(inner) = &pa else {
            unreachable!()
        };
        assert!(
            inner.rx_vlan_restored() >= 3,
            "tags came via auxdata, not inline"
        );
        assert_eq!(
            batches[0], MAX_BATCH,
            "one recvmmsg fills a whole batch: {batches:?}"
        );

        // PACKET_IGNORE_OUTGOING: the sender does not read its own frames.
        let n = pb.recv_batch(&mut bufs).unwrap();
        assert!(bufs[..n].iter().all(|b| b.frame()[6..12] != src));

        // Over the MTU (1500): refused with EMSGSIZE -> FrameTooBig. A tagged
        // frame may carry 4 bytes more.
        let big = eth(dst, src, None, 0x88b5, &[0; 1501]);
        assert!(matches!(
            pb.send(&big),
            Err(PortError::FrameTooBig { len: 1515 })
        ));
        pb.send(&eth(dst, src, Some(10), 0x88b5, &[0; 1500]))
            .unwrap();
    }

    #[test]
    fn afpacket_link_down_up_then_deleted() {
        if !require_root() {
            return;
        }
        let (_g, a, b) = quiet_veth_pair("c", "e");
        netdev::set_up(&b).unwrap();
        let mut pa = PortIo::AfPacket(AfPacketPort::open(&a).unwrap());
        let mut pb = PortIo::AfPacket(AfPacketPort::open(&b).unwrap());
        let frame = eth([2; 6], [0x02, 0, 0, 0, 0, 1], None, 0x88b5, &[7; 50]);
        let mut buf = PacketBuf::new();

        // Our device down: the kernel reports ENETDOWN once on rx (socket
        // error) and on every send; the port stays alive.
        run(&["ip", "link", "set", &a, "down"]);
        assert!(matches!(pa.recv(&mut buf), Err(PortError::LinkDown)));
        assert!(!pa.recv(&mut buf).unwrap(), "the error is reported once");
        assert!(matches!(pa.send(&frame), Err(PortError::LinkDown)));
        assert!(pa.check_alive());

        // Up again: traffic flows both ways without reopening.
        run(&["ip", "link", "set", &a, "up"]);
        wait_oper_up(&a);
        pa.send(&frame).unwrap();
        let got = recv_until(&mut pb, Duration::from_secs(5), |f| f == frame.as_slice());
        assert!(got.is_some(), "tx after link up");
        pb.send(&frame).unwrap();
        let got = recv_until(&mut pa, Duration::from_secs(5), |f| f == frame.as_slice());
        assert!(got.is_some(), "rx after link up");

        // Peer down: sends still succeed (veth drops them silently).
        run(&["ip", "link", "set", &b, "down"]);
        pa.send(&frame).unwrap();

        // Deleted: ENETDOWN once on rx (Gone, since the socket lost its
        // ifindex), ENXIO on send; poll shows POLLERR until it is read.
        run(&["ip", "link", "del", &a]);
        assert!(!pa.check_alive());
        assert!(!pb.check_alive(), "the peer went with it");
        assert_ne!(revents(pa.fd()) & libc::POLLERR, 0);
        let e = pa.recv(&mut buf).unwrap_err();
        assert!(e.is_gone(), "{e:?}");
        assert!(!pa.recv(&mut buf).unwrap());
        assert_eq!(revents(pa.fd()) & libc::POLLERR, 0);
        let e = pa.send(&frame).unwrap_err();
        assert!(e.is_gone(), "{e:?}");
        let mut bufs = [PacketBuf::new(), PacketBuf::new()];
        let e = pb.recv_batch(&mut bufs).unwrap_err();
        assert!(e.is_gone(), "{e:?}");
    }

    #[test]
    fn afpacket_netns_deleted_is_gone() {
        if !require_root() {
            return;
        }
        let (g, ns) = veth_to_netns("g");
        let mut port = PortIo::AfPacket(AfPacketPort::open(&ns).unwrap());
        drop(g); // deletes the peer in the namespace, and with it our end
        let e = recv_until_error(&mut port, Duration::from_secs(5))
            .expect("an error after netns deletion");
        assert!(e.is_gone(), "{e:?}");
        assert!(!port.check_alive());
        let frame = eth([2; 6], [0x02, 0, 0, 0, 0, 1], None, 0x88b5, &[7; 50]);
        assert!(port.send(&frame).unwrap_err().is_gone());
    }

    #[test]
    fn afpacket_device_moved_away_is_gone() {
        if !require_root() {
            return;
        }
        let (_g, ns) = veth_to_netns("m");
        let port = PortIo::AfPacket(AfPacketPort::open(&ns).unwrap());
        run(&["ip", "link", "set", &ns, "netns", &ns]);
        assert!(!port.check_alive());
        let e = port.recv(&mut PacketBuf::new()).unwrap_err();
        assert!(e.is_gone(), "{e:?}");
    }

    #[test]
    fn afpacket_outgoing_filter_without_ignore_outgoing() {
        if !require_root() {
            return;
        }
        let (_g, a, b) = quiet_veth_pair("f", "h");
        let pa = PortIo::AfPacket(AfPacketPort::open_with(&a, false).unwrap());
        let mut pb = PortIo::AfPacket(AfPacketPort::open(&b).unwrap());
        wait_oper_up(&a);
        let PortIo::AfPacket(inner) = &pa else {
            unreachable!()
        };
        assert!(!inner.ignores_outgoing());
        let src = [0x02, 0x52, 0x56, 0x11, 0x22, 0x33];
        // 40 of our own transmissions are queued as PACKET_OUTGOING copies,
        // more than one batch: all skipped, and Ok(0) means nothing left.
        for i in 0..40u8 {
            pa.send(&eth([0xff; 6], src, None, 0x88b5, &[i; 50]))
                .unwrap();
        }
        let back = eth([0xff; 6], [0x02, 0, 0, 0, 0, 9], None, 0x88b5, &[1; 50]);
        pb.send(&back).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let mut bufs: Vec<PacketBuf> = (0..8).map(|_| PacketBuf::new()).collect();
        let mut got = Vec::new();
        loop {
            let n = pa.recv_batch(&mut bufs).unwrap();
            if n == 0 {
                break;
            }
            got.extend(bufs[..n].iter().map(|b| b.frame().to_vec()));
        }
        assert_eq!(got, vec![back], "only the peer's frame, none of ours");
        // The peer did receive ours.
        let mut n_seen = 0;
        while let Some(_f) = recv_until(&mut pb, Duration::from_millis(200), |f| f[6..12] == src) {
            n_seen += 1;
        }
        assert_eq!(n_seen, 40);
    }

    #[test]
    fn afpacket_oversized_rx_is_dropped_and_reported_after_the_batch() {
        if !require_root() {
            return;
        }
        let (_g, a, b) = quiet_veth_pair("s", "t");
        for n in [&a, &b] {
            run(&["ip", "link", "set", n, "mtu", "65535"]);
        }
        let pa = PortIo::AfPacket(AfPacketPort::open(&a).unwrap());
        let pb = PortIo::AfPacket(AfPacketPort::open(&b).unwrap());
        wait_oper_up(&a);
        wait_oper_up(&b);
        let src = [0x02, 0x52, 0x56, 0x44, 0x55, 0x66];
        let small1 = eth([0xff; 6], src, None, 0x88b5, &[1; 50]);
        let big = eth([0xff; 6], src, None, 0x88b5, &vec![2; 65535]);
        let small2 = eth([0xff; 6], src, None, 0x88b5, &[3; 50]);
        for f in [&small1, &big, &small2] {
            pb.send(f).unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut bufs: Vec<PacketBuf> = (0..8).map(|_| PacketBuf::new()).collect();
        // The frames that fit come first; the drop is reported next call.
        let n = pa.recv_batch(&mut bufs).unwrap();
        let got: Vec<&[u8]> = bufs[..n].iter().map(|b| b.frame()).collect();
        assert_eq!(got, vec![small1.as_slice(), small2.as_slice()]);
        let e = pa.recv_batch(&mut bufs).unwrap_err();
        // The reported length includes the virtio-net header when offloads
        // are on.
        assert!(
            matches!(e, PortError::FrameTooBig { len } if len == 65549 || len == 65549 + VirtioNetHdr::LEN),
            "{e:?}"
        );
        assert_eq!(pa.recv_batch(&mut bufs).unwrap(), 0);
    }
}
