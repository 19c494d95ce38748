//! What the datapath knows about a bridge's OpenFlow controllers.
//!
//! # What?
//! [`OfShared`] is shared by the control plane (which sets the fail mode
//! and whether controllers are configured), the OpenFlow channel (which
//! counts connected controllers and installs the PACKET_IN sink) and the
//! datapath worker (which reads them per packet that needs them: a
//! `CONTROLLER` action or a table miss).
//!
//! # Design
//! Plain atomics and an `ArcSwapOption` for the sink: the worker never
//! takes a lock. PACKET_INs travel over a bounded tokio channel with
//! `try_send`; when it is full the packet is dropped and counted
//! ([`OfShared::packet_in_dropped`]), so a slow controller never stalls
//! forwarding.
//!
//! # Thread-safety
//! Everything is `Sync`; writers are the control plane and channel tasks,
//! the reader is the worker.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use arc_swap::ArcSwapOption;

use crate::openflow::msg::PacketIn;

/// A PACKET_IN produced by the datapath for the bridge with id `bridge`.
#[derive(Debug)]
pub struct PacketInEvent {
    /// Bridge id.
    pub bridge: u32,
    /// The message (version independent).
    pub pin: PacketIn,
}

/// Where the worker sends PACKET_INs.
pub type PacketInSink = tokio::sync::mpsc::Sender<PacketInEvent>;

/// Per-bridge controller state; see the module docs.
#[derive(Debug, Default)]
pub struct OfShared {
    /// Controllers connected now (after HELLO).
    connected: AtomicU32,
    /// Peer addresses of the connected controllers, for `get-controller`.
    peers: Mutex<Vec<String>>,
    /// True when at least one controller target is configured.
    has_controllers: AtomicBool,
    /// Fail mode `secure` (false: `standalone`).
    secure: AtomicBool,
    /// Where PACKET_INs go.
    sink: ArcSwapOption<PacketInSink>,
    /// PACKET_INs sent to the channel.
    packet_in_sent: AtomicU64,
    /// PACKET_INs dropped because the channel was full or gone.
    packet_in_dropped: AtomicU64,
}

impl OfShared {
    /// Records the configuration: controllers configured, fail mode.
    pub fn configure(&self, has_controllers: bool, secure: bool) {
        self.has_controllers
            .store(has_controllers, Ordering::Relaxed);
        self.secure.store(secure, Ordering::Relaxed);
    }

    /// Installs the PACKET_IN sink.
    pub fn set_sink(&self, sink: Option<PacketInSink>) {
        self.sink.store(sink.map(std::sync::Arc::new));
    }

    /// A controller connected from `peer`.
    pub fn connect(&self, peer: &str) {
        self.connected.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut p) = self.peers.lock() {
            p.push(peer.to_string());
        }
    }

    /// The controller connected from `peer` went away.
    pub fn disconnect(&self, peer: &str) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut p) = self.peers.lock() {
            if let Some(i) = p.iter().position(|x| x == peer) {
                p.remove(i);
            }
        }
    }

    /// Connected controllers' addresses.
    pub fn peers(&self) -> Vec<String> {
        self.peers.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Number of connected controllers.
    pub fn n_connected(&self) -> u32 {
        self.connected.load(Ordering::Relaxed)
    }

    /// True when a table miss should behave as NORMAL: fail mode
    /// standalone, controllers configured, none connected.
    pub fn fail_open(&self) -> bool {
        self.has_controllers.load(Ordering::Relaxed)
            && !self.secure.load(Ordering::Relaxed)
            && self.n_connected() == 0
    }

    /// Sends a PACKET_IN if a controller is connected; false when it was
    /// not sent (no controller, or the queue is full).
    pub fn send_packet_in(&self, ev: PacketInEvent) -> bool {
        if self.n_connected() == 0 {
            return false;
        }
        let guard = self.sink.load();
        let ok = guard.as_ref().is_some_and(|s| s.try_send(ev).is_ok());
        if ok {
            self.packet_in_sent.fetch_add(1, Ordering::Relaxed);
        } else {
            self.packet_in_dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// PACKET_INs handed to the channel.
    pub fn packet_in_sent(&self) -> u64 {
        self.packet_in_sent.load(Ordering::Relaxed)
    }

    /// PACKET_INs dropped (queue full).
    pub fn packet_in_dropped(&self) -> u64 {
        self.packet_in_dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtable::PortNo;

    fn ev() -> PacketInEvent {
        PacketInEvent {
            bridge: 0,
            pin: PacketIn::from_frame(PortNo(1), 1, 0, 0, &[0u8; 60], 128),
        }
    }

    #[test]
    fn fail_open_needs_controllers_standalone_and_none_connected() {
        let s = OfShared::default();
        assert!(!s.fail_open());
        s.configure(true, false);
        assert!(s.fail_open());
        s.connect("a");
        assert!(!s.fail_open());
        s.disconnect("a");
        assert!(s.fail_open());
        s.configure(true, true);
        assert!(!s.fail_open());
    }

    #[test]
    fn packet_in_dropped_when_full() {
        let s = OfShared::default();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        s.set_sink(Some(tx));
        assert!(!s.send_packet_in(ev()), "no controller connected");
        s.connect("c");
        assert!(s.send_packet_in(ev()));
        assert!(!s.send_packet_in(ev()));
        assert_eq!((s.packet_in_sent(), s.packet_in_dropped()), (1, 1));
        assert!(rx.try_recv().is_ok());
        assert_eq!(s.peers(), vec!["c".to_string()]);
    }
}
