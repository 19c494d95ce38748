//! TAP ports: a TAP netdev the switch creates and whose fd it owns.
//!
//! # What?
//! [`TapPort::create`] opens `/dev/net/tun`, attaches it to a new (or
//! existing persistent) TAP device with `TUNSETIFF`, and brings the link up.
//! Reading the fd yields the frames the kernel transmits on the TAP; writing
//! a frame makes the TAP receive it.
//!
//! # Design
//! One `read`/`write` per frame, straight into/out of the caller's buffer
//! (TAP has no batched syscall; `recv_batch` loops until the fd would
//! block). The fd is non-blocking and close-on-exec. Closing it (dropping the
//! port) deletes a non-persistent TAP.
//!
//! # Invariants
//! The fd stays attached to the device it was created for; liveness is
//! checked on the fd itself (`TUNGETIFF`), so it keeps working after the
//! netdev was moved into another network namespace.
//!
//! # Thread-safety
//! Shared between workers: one receives, any may send; all methods take
//! `&self` (see the `port` module docs).
//!
//! # Limits
//! No `IFF_MULTI_QUEUE`. With [`TapConfig::vnet_hdr`] set, every frame read
//! or written starts with a 12-byte `virtio_net_hdr_v1`; the datapath does
//! not handle that yet, so it is off by default.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{classify, retry_eintr, PortError};
use crate::netdev;
use crate::packet::PacketBuf;
use flowtable::offload::VirtioNetHdr;

/// Size of the virtio-net header used with `IFF_VNET_HDR` (the kernel's
/// default, `struct virtio_net_hdr` without `num_buffers`).
pub const VNET_HDR_LEN: usize = VirtioNetHdr::LEN;

/// `TUNSETOFFLOAD` (`_IOW('T', 208, unsigned int)`), not in libc.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
/// `TUN_F_*` offload flags.
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_TSO_ECN: libc::c_uint = 0x08;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;

/// Options for creating a TAP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapConfig {
    /// Open with `IFF_VNET_HDR` and enable checksum and segmentation
    /// offloads (`TUNSETOFFLOAD`): frames carry a virtio-net header and may
    /// be up to 64 KiB of TCP. On by default.
    pub vnet_hdr: bool,
}

impl Default for TapConfig {
    fn default() -> Self {
        TapConfig { vnet_hdr: true }
    }
}

/// A switch-owned TAP device.
#[derive(Debug)]
pub struct TapPort {
    /// The `/dev/net/tun` fd attached to the device.
    fd: OwnedFd,
    /// The device name (as the kernel confirmed it).
    name: String,
    /// The ifindex in the namespace the device was created in.
    ifindex: u32,
    /// The options it was created with.
    config: TapConfig,
    /// An error held back from the end of a batch, returned next call.
    pending: super::PendingError,
}

impl TapPort {
    /// Creates (or attaches to a persistent) TAP device `name`, non-blocking,
    /// and brings it up. Needs `CAP_NET_ADMIN`.
    pub fn create(name: &str) -> Result<TapPort, PortError> {
        TapPort::create_with(name, &TapConfig::default())
    }

    /// Like [`TapPort::create`], with options.
    pub fn create_with(name: &str, config: &TapConfig) -> Result<TapPort, PortError> {
        netdev::validate_name(name)?;
        let open_err = |op, source| PortError::Open {
            name: name.to_owned(),
            op,
            source,
        };
        // SAFETY: the path is a NUL-terminated static string; open() has no
        // other preconditions.
        let raw = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(open_err("open /dev/net/tun", io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let mut ifr = netdev::ifreq_for(name);
        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
        if config.vnet_hdr {
            flags |= libc::IFF_VNET_HDR;
        }
        ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`; `ifr` is a
        // valid ifreq exclusively borrowed for the call.
        let rc = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::TUNSETIFF,
                &mut ifr as *mut libc::ifreq,
            )
        };
        if rc < 0 {
            return Err(open_err("TUNSETIFF", io::Error::last_os_error()));
        }
        let name = netdev::ifreq_name(&ifr);
        if config.vnet_hdr {
            let sz: libc::c_int = VNET_HDR_LEN as libc::c_int;
            // SAFETY: TUNSETVNETHDRSZ reads one c_int through the pointer,
            // which points at a live local.
            let rc = unsafe {
                libc::ioctl(
                    fd.as_raw_fd(),
                    libc::TUNSETVNETHDRSZ,
                    &sz as *const libc::c_int,
                )
            };
            if rc < 0 {
                return Err(open_err("TUNSETVNETHDRSZ", io::Error::last_os_error()));
            }
            // Offer every offload the kernel knows; fall back to the ones
            // older kernels have (USO is 6.2+).
            let base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
            let mut ok = false;
            for flags in [base | TUN_F_USO4 | TUN_F_USO6, base] {
                // SAFETY: TUNSETOFFLOAD takes the flags by value as the
                // ioctl argument; the fd is open.
                let rc = unsafe {
                    libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD as _, flags as libc::c_ulong)
                };
                if rc == 0 {
                    ok = true;
                    break;
                }
            }
            if !ok {
                return Err(open_err("TUNSETOFFLOAD", io::Error::last_os_error()));
            }
        }
        netdev::set_up(&name)?;
        let ifindex = netdev::ifindex(&name)?;
        Ok(TapPort {
            fd,
            name,
            ifindex,
            config: *config,
            pending: super::PendingError::default(),
        })
    }

    /// The fd to poll.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ifindex in the namespace the device was created in.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The options the port was created with.
    pub fn config(&self) -> TapConfig {
        self.config
    }

    /// The `IFF_*` flags the fd is attached with, or the OS error
    /// (`EBADFD` once the device is gone).
    pub fn attached_flags(&self) -> io::Result<libc::c_short> {
        let mut ifr = netdev::ifreq_for("");
        // SAFETY: TUNGETIFF writes a `struct ifreq` through the pointer,
        // which points at a valid local ifreq exclusively borrowed.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::TUNGETIFF,
                &mut ifr as *mut libc::ifreq,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: TUNGETIFF filled in the flags member of the union.
        Ok(unsafe { ifr.ifr_ifru.ifru_flags })
    }

    /// Whether the fd is still attached to a live device. Works wherever
    /// the device lives (it asks the fd, not the namespace).
    pub fn check_alive(&self) -> bool {
        self.attached_flags().is_ok()
    }

    /// Receives one frame; `Ok(false)` when none is waiting.
    pub fn recv(&self, buf: &mut PacketBuf) -> Result<bool, PortError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        self.read_one(buf)
    }

    /// Receives up to `bufs.len()` frames into `bufs[0..n]`.
    pub fn recv_batch(&self, bufs: &mut [PacketBuf]) -> Result<usize, PortError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let mut n = 0;
        while n < bufs.len() {
            match self.read_one(&mut bufs[n]) {
                Ok(true) => n += 1,
                Ok(false) => break,
                Err(e) if n == 0 => return Err(e),
                Err(e) => {
                    self.pending.hold(e);
                    break;
                }
            }
        }
        Ok(n)
    }

    fn read_one(&self, buf: &mut PacketBuf) -> Result<bool, PortError> {
        loop {
            let space = buf.rx_space();
            // SAFETY: `space` is a valid writable slice for its whole length
            // and the fd is open (owned by self).
            let rc =
                unsafe { libc::read(self.fd.as_raw_fd(), space.as_mut_ptr().cast(), space.len()) };
            if rc >= 0 {
                let n = rc as usize;
                if n > space.len() {
                    // tun reports the full length of a frame it could not copy.
                    return Err(PortError::FrameTooBig { len: n });
                }
                if !self.config.vnet_hdr {
                    buf.set_received(n);
                } else if !buf.set_received_vnet(n) {
                    continue; // shorter than its header: nothing to forward
                }
                return Ok(true);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(false),
                Some(libc::EINTR) => continue,
                _ => return Err(self.refine(err, 0)),
            }
        }
    }

    /// True when frames carry a virtio-net header (offloads on).
    pub fn vnet(&self) -> bool {
        self.config.vnet_hdr
    }

    /// Sends one frame with its offload metadata. Without a vnet header the
    /// frame must be complete (no GSO, no partial checksum).
    pub fn send_vnet(&self, hdr: &VirtioNetHdr, frame: &[u8]) -> Result<(), PortError> {
        if !self.config.vnet_hdr {
            return self.send_plain(frame);
        }
        let mut h = [0u8; VNET_HDR_LEN];
        if hdr.write(&mut h).is_err() {
            return Err(PortError::Other(io::Error::from(
                io::ErrorKind::InvalidInput,
            )));
        }
        let iov = [
            libc::iovec {
                iov_base: h.as_ptr() as *mut libc::c_void,
                iov_len: h.len(),
            },
            libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            },
        ];
        // SAFETY: both iovecs point at live readable buffers of the
        // given lengths (the kernel only reads them); the fd is open.
        retry_eintr(|| unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), 2) } as isize)
            .map_err(|err| self.refine(err, frame.len()))
    }

    /// Sends one complete frame (the TAP device receives it).
    pub fn send(&self, frame: &[u8]) -> Result<(), PortError> {
        if self.config.vnet_hdr {
            return self.send_vnet(&VirtioNetHdr::NONE, frame);
        }
        self.send_plain(frame)
    }

    fn send_plain(&self, frame: &[u8]) -> Result<(), PortError> {
        // SAFETY: `frame` is a valid readable slice for its whole length
        // and the fd is open (owned by self).
        retry_eintr(|| unsafe {
            libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len())
        } as isize)
        .map_err(|err| self.refine(err, frame.len()))
    }

    /// Classifies an I/O error, telling a dead device from a down one.
    fn refine(&self, err: io::Error, len: usize) -> PortError {
        match classify(err, len) {
            // A TAP whose link is down refuses writes with EIO.
            PortError::Other(e) if e.raw_os_error() == Some(libc::EIO) => {
                if self.check_alive() {
                    PortError::LinkDown
                } else {
                    PortError::Gone(e)
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::packet::PacketBuf;
    use crate::port::testutil::*;
    use crate::port::PortIo;
    use std::time::Duration;

    #[test]
    fn invalid_name_is_rejected_before_any_syscall() {
        let err = TapPort::create("bad name").unwrap_err();
        assert!(matches!(err, PortError::Netdev(_)), "{err:?}");
        assert!(err.to_string().contains("bad name"));
    }

    const HOST_MAC: [u8; 6] = [0x02, 0x52, 0x56, 0, 0, 0x02];

    /// A TAP moved into a namespace: returns (guard, ns, port).
    fn tap_in_netns(tag: &str, addr: &str) -> (NetGuard, String, PortIo) {
        let mut g = NetGuard::default();
        let name = uniq(tag);
        let port = TapPort::create(&name).unwrap();
        assert_eq!(port.name(), name);
        assert!(netdev::is_up(&name).unwrap(), "create brings the link up");
        assert_eq!(netdev::ifindex(&name).unwrap(), port.ifindex());
        let flags = port.attached_flags().unwrap();
        assert_eq!(
            flags & (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short,
            (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short,
            "offloads are on by default"
        );
        g.add_netns(&name);
        run(&["ip", "link", "set", "dev", &name, "netns", &name]);
        run(&["ip", "-n", &name, "addr", "add", addr, "dev", &name]);
        run(&["ip", "-n", &name, "link", "set", &name, "up"]);
        assert!(!netdev::exists(&name), "moved out of our namespace");
        assert!(port.check_alive(), "fd works across namespaces");
        (g, name, PortIo::Tap(port))
    }

    #[test]
    fn tap_ping_from_namespace_gets_answers() {
        if !require_root() {
            return;
        }
        let (_g, ns, mut port) = tap_in_netns("t", "10.99.1.1/24");
        let mut ping = ping_in(&ns, "10.99.1.2", 3);
        let log = fake_host(
            &mut port,
            HOST_MAC,
            [10, 99, 1, 2],
            &mut ping,
            Duration::from_secs(15),
        );
        let arp = log
            .arp_requests
            .first()
            .expect("ARP request seen on the tap fd");
        // Broadcast, from the namespace's TAP MAC, ARP request who-has
        // 10.99.1.2 tell 10.99.1.1, untagged.
        assert_eq!(&arp[0..6], &[0xff; 6]);
        assert_eq!(&arp[12..14], &[0x08, 0x06]);
        assert_eq!(&arp[14..22], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&arp[22..28], &arp[6..12], "sender hw = eth src");
        assert_eq!(&arp[28..32], &[10, 99, 1, 1]);
        assert_eq!(&arp[38..42], &[10, 99, 1, 2]);
        assert_eq!(log.echo_requests.len(), 3);
        assert_eq!(
            log.child_ok,
            Some(true),
            "ping in the namespace got replies"
        );
    }

    #[test]
    fn tap_link_down_then_deleted() {
        if !require_root() {
            return;
        }
        let (_g, ns, port) = tap_in_netns("d", "10.99.4.1/24");
        let frame = arp_reply(HOST_MAC, [10, 99, 4, 2], [0xff; 6], [10, 99, 4, 1], None);
        port.send(&frame).unwrap();

        // Link down (in the other namespace): writes fail with EIO, which we
        // report as LinkDown; the fd stays attached; nothing is readable.
        run(&["ip", "-n", &ns, "link", "set", &ns, "down"]);
        assert!(matches!(port.send(&frame), Err(PortError::LinkDown)));
        assert!(port.check_alive());
        // Frames queued before the link went down may still be read; then
        // nothing more arrives.
        let mut b = PacketBuf::new();
        let mut left = 0;
        while port.recv(&mut b).unwrap() {
            left += 1;
            assert!(left < 100, "frames keep arriving on a down TAP");
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(!port.recv(&mut b).unwrap());
        assert_eq!(revents(port.fd()) & (libc::POLLERR | libc::POLLOUT), 0);
        run(&["ip", "-n", &ns, "link", "set", &ns, "up"]);
        port.send(&frame).unwrap();

        // Deleted: every call fails with EBADFD (Gone), and poll reports
        // POLLERR for good — the worker must drop the fd.
        run(&["ip", "-n", &ns, "link", "del", &ns]);
        for _ in 0..2 {
            let e = port.recv(&mut PacketBuf::new()).unwrap_err();
            assert!(e.is_gone(), "{e:?}");
            let e = port.send(&frame).unwrap_err();
            assert!(e.is_gone(), "{e:?}");
            let mut bufs = [PacketBuf::new(), PacketBuf::new()];
            assert!(port.recv_batch(&mut bufs).unwrap_err().is_gone());
            assert!(!port.check_alive());
            assert_ne!(revents(port.fd()) & libc::POLLERR, 0);
        }
    }

    #[test]
    fn tap_netns_deleted_is_gone() {
        if !require_root() {
            return;
        }
        let (g, _ns, mut port) = tap_in_netns("n", "10.99.5.1/24");
        drop(g); // ip netns del: the TAP is destroyed with it (asynchronously)
        let e = recv_until_error(&mut port, Duration::from_secs(5))
            .expect("an error after netns deletion");
        assert!(e.is_gone(), "{e:?}");
        assert!(!port.check_alive());
        let frame = arp_reply(HOST_MAC, [10, 99, 5, 2], [0xff; 6], [10, 99, 5, 1], None);
        assert!(port.send(&frame).unwrap_err().is_gone());
    }

    #[test]
    fn tap_is_deleted_when_port_dropped() {
        if !require_root() {
            return;
        }
        let name = uniq("r");
        let mut g = NetGuard::default();
        g.links.push(name.clone());
        let port = TapPort::create(&name).unwrap();
        assert!(netdev::exists(&name));
        assert_eq!(netdev::mtu(&name).unwrap(), 1500);
        let mac = netdev::mac(&name).unwrap();
        assert_ne!(mac.0, [0; 6], "kernel assigns a random MAC");
        assert_eq!(mac.0[0] & 0x03, 0x02, "locally administered unicast");
        // A second create with the same name while the first fd holds it.
        assert!(TapPort::create(&name).is_err());
        drop(port);
        // Immediate when run alone; other test threads forking `ip` can hold
        // a copy of the fd for a moment (until their exec closes it).
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while netdev::exists(&name) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!netdev::exists(&name));
    }

    #[test]
    fn tap_vnet_hdr_flag() {
        if !require_root() {
            return;
        }
        let name = uniq("v");
        let mut g = NetGuard::default();
        g.links.push(name.clone());
        let cfg = TapConfig { vnet_hdr: true };
        let port = TapPort::create_with(&name, &cfg).unwrap();
        assert_eq!(port.config(), cfg);
        let flags = port.attached_flags().unwrap();
        assert_ne!(flags & libc::IFF_VNET_HDR as libc::c_short, 0);
    }

    #[test]
    fn tap_largest_frame_fits_the_buffer() {
        if !require_root() {
            return;
        }
        // A TAP's max MTU is 65535 - 14, so its largest frame (65535 bytes)
        // fits MAX_FRAME; FrameTooBig cannot happen without a vnet header.
        let (_g, ns, mut port) = tap_in_netns("o", "10.99.6.1/24");
        assert!(std::process::Command::new("ip")
            .args(["-n", &ns, "link", "set", &ns, "mtu", "65522"])
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap());
        run(&["ip", "-n", &ns, "link", "set", &ns, "mtu", "65521"]);
        run(&[
            "ip",
            "-n",
            &ns,
            "neigh",
            "replace",
            "10.99.6.2",
            "lladdr",
            "02:52:56:00:00:02",
            "dev",
            &ns,
        ]);
        // 65493 bytes of ICMP payload: a 65521-byte IP packet in a
        // 65535-byte frame.
        let _ping = ChildGuard(
            std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "ping",
                    "-n",
                    "-c",
                    "1",
                    "-s",
                    "65493",
                    "10.99.6.2",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let f = recv_until(&mut port, Duration::from_secs(5), |f| {
            l3(f).is_some_and(|(_, et, _)| et == ETH_P_IP)
        })
        .expect("the big echo request");
        assert_eq!(f.len(), 65535);
        assert_eq!(&f[14 + 2..14 + 4], &65521u16.to_be_bytes());
        assert_eq!(f[14 + 20], 8, "ICMP echo request");
        // ping fills payload byte i (after a 16-byte timestamp) with i as u8:
        // the tail arrived intact.
        let payload = &f[14 + 28..];
        assert_eq!(payload.len(), 65493);
        assert!(payload[16..]
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i + 16) as u8));
    }
}
