//! What the datapath knows about a bridge's controllers, and the frames
//! it punts to them.
//!
//! # What?
//! [`OfShared`] is shared by the control plane (which sets the fail mode
//! and whether controllers are configured), the OpenFlow channel (which
//! counts connected controllers and installs the punt sink) and the
//! datapath worker (which reads them per packet that needs them: a
//! `CONTROLLER` action or a table miss). [`ControllerPacket`] is what the
//! worker punts: the frame (already truncated to the action's `max_len`)
//! with its bridge, input port, reason, table and cookie.
//!
//! # Design
//! The datapath knows no OpenFlow wire types: a [`ControllerPacket`] is a
//! plain value, and the OpenFlow channel (`control::ofchannel`) turns it
//! into a PACKET_IN of the connection's version (`control::convert`). Plain
//! atomics and an `ArcSwapOption` for the sink: the worker never takes a
//! lock. Punted packets travel over a bounded tokio channel with
//! `try_send`; when it is full the packet is dropped and counted
//! ([`OfShared::packet_in_dropped`]), so a slow controller never stalls
//! forwarding.
//!
//! # Invariants
//! A punt allocates once: the (truncated) frame copy in
//! [`ControllerPacket::from_frame`]; the channel moves it into the message
//! it encodes.
//!
//! # Thread-safety
//! Everything is `Sync`; writers are the control plane and channel tasks,
//! the reader is the worker.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use arc_swap::ArcSwapOption;
use flowtable::PortNo;

/// Why a packet was punted to the controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PuntReason {
    /// No flow matched (not produced yet: a table miss drops or, in fail
    /// mode standalone without a connected controller, runs NORMAL).
    NoMatch,
    /// A flow's `CONTROLLER` action.
    Action,
}

/// A frame the datapath punts to the controllers of bridge `bridge`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerPacket {
    /// Bridge id.
    pub bridge: u32,
    /// Port the packet came in on.
    pub in_port: PortNo,
    /// Why it is punted.
    pub reason: PuntReason,
    /// Table whose flow punted it.
    pub table: u8,
    /// Cookie of that flow (all ones: none).
    pub cookie: u64,
    /// The frame as it is at that point, truncated to the action's
    /// `max_len`.
    pub frame: Vec<u8>,
    /// Length of the whole frame, before truncation.
    pub total_len: usize,
}

impl ControllerPacket {
    /// A punt of `frame`, keeping at most `max_len` bytes of it (the one
    /// allocation of the punt path).
    ///
    /// ```
    /// use flowtable::PortNo;
    /// use rvs::datapath::controller::{ControllerPacket, PuntReason};
    /// let p = ControllerPacket::from_frame(0, PortNo(1), PuntReason::Action, 0, 7, &[0u8; 100], 64);
    /// assert_eq!((p.total_len, p.frame.len()), (100, 64));
    /// ```
    pub fn from_frame(
        bridge: u32,
        in_port: PortNo,
        reason: PuntReason,
        table: u8,
        cookie: u64,
        frame: &[u8],
        max_len: u16,
    ) -> ControllerPacket {
        let n = frame.len().min(usize::from(max_len));
        ControllerPacket {
            bridge,
            in_port,
            reason,
            table,
            cookie,
            frame: frame[..n].to_vec(),
            total_len: frame.len(),
        }
    }
}

/// Where the worker sends punted packets.
pub type PacketInSink = tokio::sync::mpsc::Sender<ControllerPacket>;

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
    /// Where punted packets go.
    sink: ArcSwapOption<PacketInSink>,
    /// Packets handed to the channel.
    packet_in_sent: AtomicU64,
    /// Packets dropped because the channel was full or gone.
    packet_in_dropped: AtomicU64,
}

impl OfShared {
    /// Records the configuration: controllers configured, fail mode.
    pub fn configure(&self, has_controllers: bool, secure: bool) {
        self.has_controllers
            .store(has_controllers, Ordering::Relaxed);
        self.secure.store(secure, Ordering::Relaxed);
    }

    /// Installs the sink for punted packets.
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

    /// Punts `p` to the channel if a controller is connected; false when
    /// it was not sent (no controller, or the queue is full).
    pub fn send_packet_in(&self, p: ControllerPacket) -> bool {
        if self.n_connected() == 0 {
            return false;
        }
        let guard = self.sink.load();
        let ok = guard.as_ref().is_some_and(|s| s.try_send(p).is_ok());
        if ok {
            self.packet_in_sent.fetch_add(1, Ordering::Relaxed);
        } else {
            self.packet_in_dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Punted packets handed to the channel.
    pub fn packet_in_sent(&self) -> u64 {
        self.packet_in_sent.load(Ordering::Relaxed)
    }

    /// Punted packets dropped (queue full).
    pub fn packet_in_dropped(&self) -> u64 {
        self.packet_in_dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> ControllerPacket {
        ControllerPacket::from_frame(0, PortNo(1), PuntReason::Action, 0, 0, &[0u8; 60], 128)
    }

    #[test]
    fn from_frame_truncates_to_max_len() {
        let p = ControllerPacket::from_frame(3, PortNo(2), PuntReason::Action, 5, 9, &[7; 60], 16);
        assert_eq!(
            (p.bridge, p.in_port, p.table, p.cookie),
            (3, PortNo(2), 5, 9)
        );
        assert_eq!((p.frame.len(), p.total_len), (16, 60));
        let p = ControllerPacket::from_frame(0, PortNo(1), PuntReason::Action, 0, 0, &[7; 60], 128);
        assert_eq!((p.frame.len(), p.total_len), (60, 60));
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
