//! Test doubles (unit tests only): an in-memory port and a netdev
//! registry that creates such ports and fails on demand.
//!
//! # What?
//! [`MemPort`] is a port whose "wire" is one end of a `SOCK_DGRAM` unix
//! socket pair: each datagram is one frame. The other end, a [`MemHost`],
//! plays the host behind the port. The fd is real, so the datapath workers
//! poll it with epoll like any TAP, and no root is needed.
//!
//! [`FakeNetdevs`] implements [`Netdevs`] for the switch: it creates
//! `MemPort`s instead of TAPs and AF_PACKET sockets, keeps the names of
//! the netdevs that exist (a port's netdev exists while its `MemPort`
//! lives, as a switch-owned TAP goes away with its fd), and refuses to
//! create or attach names it was told to ([`FakeNetdevs::fail`]), with
//! the error the kernel would give.
//!
//! # Thread-safety
//! `MemPort` follows [`super::PortIo`]'s rules (`&self` I/O).
//! `FakeNetdevs` keeps its registry behind a mutex.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex, Weak};

use super::{Netdevs, PortError, PortIo};
use crate::packet::PacketBuf;

/// Marks a netdev as existing while any clone is alive.
#[derive(Debug)]
struct Alive;

/// A port over a unix datagram socket; see the module docs.
#[derive(Debug)]
pub struct MemPort {
    name: String,
    sock: UnixDatagram,
    /// Keeps the name registered in [`FakeNetdevs`] while the port lives.
    _alive: Arc<Alive>,
}

/// The far end of a [`MemPort`]: what a host behind the port sends and
/// receives.
#[derive(Debug)]
pub struct MemHost {
    /// The socket; one datagram per frame.
    pub sock: UnixDatagram,
}

impl MemHost {
    /// Sends one frame into the port.
    pub fn send(&self, frame: &[u8]) {
        self.sock.send(frame).expect("MemHost send");
    }

    /// Receives one frame the switch sent out of the port, waiting up to
    /// `limit`.
    pub fn recv(&self, limit: std::time::Duration) -> Option<Vec<u8>> {
        self.sock.set_read_timeout(Some(limit)).ok()?;
        let mut b = vec![0u8; crate::packet::MAX_FRAME];
        let n = self.sock.recv(&mut b).ok()?;
        b.truncate(n);
        Some(b)
    }
}

impl MemPort {
    fn pair(name: &str, alive: Arc<Alive>) -> io::Result<(MemPort, MemHost)> {
        let (a, b) = UnixDatagram::pair()?;
        a.set_nonblocking(true)?;
        Ok((
            MemPort {
                name: name.to_string(),
                sock: a,
                _alive: alive,
            },
            MemHost { sock: b },
        ))
    }

    /// The fd to poll.
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// The netdev name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Receives one frame; `Ok(false)` when none is waiting.
    pub fn recv(&self, buf: &mut PacketBuf) -> Result<bool, PortError> {
        match self.sock.recv(buf.rx_space()) {
            Ok(n) => {
                buf.set_received(n);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(PortError::Other(e)),
        }
    }

    /// Receives up to `bufs.len()` frames.
    pub fn recv_batch(&self, bufs: &mut [PacketBuf]) -> Result<usize, PortError> {
        let mut n = 0;
        while n < bufs.len() && self.recv(&mut bufs[n])? {
            n += 1;
        }
        Ok(n)
    }

    /// Sends one frame; a host that does not read makes the queue fill up.
    pub fn send(&self, frame: &[u8]) -> Result<(), PortError> {
        match self.sock.send(frame) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(PortError::TxFull),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Err(PortError::Gone(e)),
            Err(e) => Err(PortError::Other(e)),
        }
    }
}

#[derive(Debug, Default)]
struct Registry {
    /// Netdevs that exist: the switch's ports while they live.
    devs: HashMap<String, Weak<Alive>>,
    /// Netdevs that exist outside the switch (`system` ports attach to
    /// them), with the host end of the last port attached to each.
    external: HashSet<String>,
    /// Names whose creation or attachment fails.
    fail: HashSet<String>,
    /// Host ends of the ports created, by name (the latest port).
    hosts: HashMap<String, MemHost>,
}

/// A netdev registry for switch unit tests; see the module docs.
#[derive(Debug, Default, Clone)]
pub struct FakeNetdevs {
    reg: Arc<Mutex<Registry>>,
}

impl FakeNetdevs {
    /// An empty registry.
    pub fn new() -> FakeNetdevs {
        FakeNetdevs::default()
    }

    /// Creating (TAP) or attaching (system) `name` fails from now on.
    pub fn fail(&self, name: &str) {
        self.reg.lock().unwrap().fail.insert(name.to_string());
    }

    /// `name` works again.
    pub fn heal(&self, name: &str) {
        self.reg.lock().unwrap().fail.remove(name);
    }

    /// A netdev `name` exists outside the switch (a veth end, a VM's tap).
    pub fn add_external(&self, name: &str) {
        self.reg.lock().unwrap().external.insert(name.to_string());
    }

    /// The host end of the latest port created for `name`.
    pub fn take_host(&self, name: &str) -> Option<MemHost> {
        self.reg.lock().unwrap().hosts.remove(name)
    }

    fn make(&self, name: &str, op: &'static str) -> Result<PortIo, PortError> {
        let mut r = self.reg.lock().unwrap();
        if r.fail.contains(name) {
            return Err(PortError::Open {
                name: name.to_string(),
                op,
                source: io::Error::from_raw_os_error(libc::EBUSY),
            });
        }
        let alive = Arc::new(Alive);
        let (port, host) =
            MemPort::pair(name, alive.clone()).map_err(|source| PortError::Open {
                name: name.to_string(),
                op: "socketpair",
                source,
            })?;
        r.devs.insert(name.to_string(), Arc::downgrade(&alive));
        r.hosts.insert(name.to_string(), host);
        Ok(PortIo::Mem(port))
    }
}

impl Netdevs for FakeNetdevs {
    fn exists(&self, name: &str) -> bool {
        let r = self.reg.lock().unwrap();
        r.external.contains(name) || r.devs.get(name).is_some_and(|w| w.strong_count() > 0)
    }

    fn mac(&self, _name: &str) -> Option<[u8; 6]> {
        None
    }

    fn create_tap(&self, name: &str) -> Result<PortIo, PortError> {
        self.make(name, "TUNSETIFF")
    }

    fn open_system(&self, name: &str) -> Result<PortIo, PortError> {
        if !self.reg.lock().unwrap().external.contains(name) {
            return Err(PortError::Open {
                name: name.to_string(),
                op: "bind",
                source: io::Error::from_raw_os_error(libc::ENODEV),
            });
        }
        self.make(name, "bind")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn frames_cross_and_names_live_with_their_port() {
        let n = FakeNetdevs::new();
        assert!(!n.exists("t0"));
        let io = n.create_tap("t0").unwrap();
        assert!(n.exists("t0"));
        let host = n.take_host("t0").unwrap();
        host.send(b"hello");
        let mut b = PacketBuf::new();
        assert!(io.recv(&mut b).unwrap());
        assert_eq!(b.frame(), b"hello");
        assert!(!io.recv(&mut b).unwrap());
        io.send(b"back").unwrap();
        assert_eq!(host.recv(Duration::from_secs(1)).unwrap(), b"back");
        drop(io);
        assert!(!n.exists("t0"));
        n.fail("t1");
        let e = n.create_tap("t1").unwrap_err();
        assert!(
            matches!(
                e,
                PortError::Open {
                    op: "TUNSETIFF",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(n.open_system("nope").is_err());
        n.add_external("veth0");
        assert!(n.exists("veth0") && n.open_system("veth0").is_ok());
    }
}
