//! Per-port counters and state shared between a datapath worker (the only
//! writer) and the control plane (readers).
//!
//! # Design
//! Each port has one block of counters per datapath worker ([`PortCounters`],
//! cache-line aligned). Worker `w` writes only block `w`, with relaxed
//! load+store (no locked read-modify-write, no cache line shared between
//! writers), and the control plane sums the blocks with relaxed loads. Totals may be momentarily
//! inconsistent with each other (rx vs tx), never torn.
//!
//! Readers get a [`PortSnapshot`] (plain numbers, drops by [`RxDrop`] /
//! [`TxDrop`] index); the control plane turns it into what `dump-ports`
//! and OpenFlow PORT_STATS report (`control::convert`).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

/// Why a received frame was not forwarded anywhere (counted on the input port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum RxDrop {
    /// The frame could not be parsed (runt, truncated header, bad IHL…).
    Malformed,
    /// No flow matched in some table.
    NoMatch,
    /// The flow's actions output nothing (explicit drop).
    Action,
    /// NORMAL: the VLAN is not allowed on the input port.
    VlanNotAllowed,
    /// NORMAL: reserved multicast (01:80:c2:00:00:0x) is not forwarded.
    Reserved,
    /// NORMAL: destination learned on the input port.
    LearnedOnInput,
    /// NORMAL: no port carries the VLAN.
    NoOutput,
    /// resubmit depth or patch-port hop limit exceeded.
    ResubmitLimit,
    /// `dec_ttl` reached zero.
    TtlExpired,
    /// CONTROLLER action with no controller connected.
    NoController,
    /// The frame was larger than the receive buffer.
    TooBig,
    /// A tunnel port got a datagram from another remote or with another
    /// key (VNI) than its own.
    TunnelNoPort,
    /// Over the port's ingress policing rate (`ingress_policing_*`).
    Policed,
    /// An OpenFlow meter's drop band dropped the frame.
    Meter,
}

impl RxDrop {
    /// Number of reasons.
    pub const COUNT: usize = 14;
    /// All reasons, in index order.
    pub const ALL: [RxDrop; RxDrop::COUNT] = [
        RxDrop::Malformed,
        RxDrop::NoMatch,
        RxDrop::Action,
        RxDrop::VlanNotAllowed,
        RxDrop::Reserved,
        RxDrop::LearnedOnInput,
        RxDrop::NoOutput,
        RxDrop::ResubmitLimit,
        RxDrop::TtlExpired,
        RxDrop::NoController,
        RxDrop::TooBig,
        RxDrop::TunnelNoPort,
        RxDrop::Policed,
        RxDrop::Meter,
    ];

    /// Name used in `dump-ports`.
    pub fn name(self) -> &'static str {
        match self {
            RxDrop::Malformed => "malformed",
            RxDrop::NoMatch => "no_match",
            RxDrop::Action => "action_drop",
            RxDrop::VlanNotAllowed => "vlan_not_allowed",
            RxDrop::Reserved => "reserved_multicast",
            RxDrop::LearnedOnInput => "learned_on_input",
            RxDrop::NoOutput => "no_output",
            RxDrop::ResubmitLimit => "resubmit_limit",
            RxDrop::TtlExpired => "ttl_expired",
            RxDrop::NoController => "no_controller",
            RxDrop::TooBig => "too_big",
            RxDrop::TunnelNoPort => "tunnel_no_port",
            RxDrop::Policed => "policed",
            RxDrop::Meter => "meter_drop",
        }
    }
}

/// Why a frame could not be sent (counted on the output port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum TxDrop {
    /// The kernel refused the write.
    TxError,
    /// The transmit queue was full.
    QueueFull,
    /// The port is down (netdev gone).
    PortDown,
    /// No headroom for a VLAN push, or a tag to pop was missing.
    VlanEdit,
    /// The frame is larger than the port (or, for a tunnel, the underlay
    /// after encapsulation) can carry.
    TooBig,
    /// A flow-based tunnel port (`remote_ip=flow`) got a frame without
    /// `tun_dst`.
    TunnelNoDst,
    /// Over the port's egress policing rate (`egress_rate`).
    Policed,
}

impl TxDrop {
    /// Number of reasons.
    pub const COUNT: usize = 7;
    /// All reasons, in index order.
    pub const ALL: [TxDrop; TxDrop::COUNT] = [
        TxDrop::TxError,
        TxDrop::QueueFull,
        TxDrop::PortDown,
        TxDrop::VlanEdit,
        TxDrop::TooBig,
        TxDrop::TunnelNoDst,
        TxDrop::Policed,
    ];

    /// Name used in `dump-ports`.
    pub fn name(self) -> &'static str {
        match self {
            TxDrop::TxError => "tx_error",
            TxDrop::QueueFull => "queue_full",
            TxDrop::PortDown => "port_down",
            TxDrop::VlanEdit => "vlan_edit",
            TxDrop::TooBig => "too_big",
            TxDrop::TunnelNoDst => "tunnel_no_dst",
            TxDrop::Policed => "policed",
        }
    }
}

/// Most datapath workers (per-worker counter slots).
pub const MAX_WORKERS: usize = 8;

/// A single-writer counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only one thread writes a given counter (its worker).
    #[inline]
    pub fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    /// Current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One worker's counters of one port, alone on its cache lines so workers
/// never write the same line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct PortCounters {
    /// Frames received.
    pub rx_packets: Counter,
    /// Bytes received.
    pub rx_bytes: Counter,
    /// Frames sent.
    pub tx_packets: Counter,
    /// Bytes sent.
    pub tx_bytes: Counter,
    /// Received-frame drops by [`RxDrop`] index.
    pub rx_dropped: [Counter; RxDrop::COUNT],
    /// Send failures by [`TxDrop`] index.
    pub tx_dropped: [Counter; TxDrop::COUNT],
}

impl PortCounters {
    /// Counts a dropped received frame.
    #[inline]
    pub fn rx_drop(&self, why: RxDrop) {
        self.rx_dropped[why as usize].add(1);
    }

    /// Counts a failed send.
    #[inline]
    pub fn tx_drop(&self, why: TxDrop) {
        self.tx_dropped[why as usize].add(1);
    }
}

/// Counters and liveness of one port.
#[derive(Debug)]
pub struct PortShared {
    /// Counters by worker index: worker `w` writes only `per_worker[w]`;
    /// readers sum them.
    per_worker: Box<[PortCounters]>,
    /// False once the netdev vanished.
    up: AtomicBool,
    /// Why the port is down.
    down_reason: Mutex<Option<String>>,
    /// Length of the last frame refused as too big (0: none yet).
    last_too_big: AtomicU32,
}

impl Default for PortShared {
    fn default() -> Self {
        PortShared {
            per_worker: (0..MAX_WORKERS).map(|_| PortCounters::default()).collect(),
            up: AtomicBool::new(false),
            down_reason: Mutex::new(None),
            last_too_big: AtomicU32::new(0),
        }
    }
}

impl PortShared {
    /// A port that starts up (or down with `reason`).
    pub fn new(down: Option<String>) -> PortShared {
        let s = PortShared::default();
        s.up.store(down.is_none(), Ordering::Relaxed);
        if let Ok(mut r) = s.down_reason.lock() {
            *r = down;
        }
        s
    }

    /// The counters worker `w` writes (`w < MAX_WORKERS`; larger indexes
    /// share the last slot, which the worker set never creates).
    #[inline]
    pub fn w(&self, w: usize) -> &PortCounters {
        &self.per_worker[w.min(MAX_WORKERS - 1)]
    }

    fn sum(&self, f: impl Fn(&PortCounters) -> &Counter) -> u64 {
        self.per_worker.iter().map(|c| f(c).get()).sum()
    }

    /// True while the port can carry traffic.
    #[inline]
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Marks the port down with a reason (not on the fast path: once).
    pub fn set_down(&self, reason: String) {
        self.up.store(false, Ordering::Relaxed);
        if let Ok(mut r) = self.down_reason.lock() {
            *r = Some(reason);
        }
    }

    /// Marks the port up.
    pub fn set_up(&self) {
        self.up.store(true, Ordering::Relaxed);
        if let Ok(mut r) = self.down_reason.lock() {
            *r = None;
        }
    }

    /// Counts a frame of `len` bytes not sent as too big (for the port's
    /// MTU, or its tunnel's underlay) on worker `w`, and remembers its
    /// length so `show` can say by how much.
    #[inline]
    pub fn too_big(&self, w: usize, len: usize) {
        self.w(w).tx_drop(TxDrop::TooBig);
        // Cast: frames are at most 64 KiB.
        self.last_too_big.store(len as u32, Ordering::Relaxed);
    }

    /// The length of the last frame refused as too big, if any.
    pub fn last_too_big(&self) -> Option<usize> {
        match self.last_too_big.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n as usize),
        }
    }

    /// Why the port is down, if it is.
    pub fn down_reason(&self) -> Option<String> {
        if self.is_up() {
            return None;
        }
        self.down_reason.lock().ok().and_then(|r| r.clone())
    }

    /// The counters summed over workers, and whether the port is up (for
    /// `dump-ports` and PORT_STATS).
    pub fn snapshot(&self) -> PortSnapshot {
        PortSnapshot {
            up: self.is_up(),
            rx_packets: self.sum(|c| &c.rx_packets),
            rx_bytes: self.sum(|c| &c.rx_bytes),
            tx_packets: self.sum(|c| &c.tx_packets),
            tx_bytes: self.sum(|c| &c.tx_bytes),
            rx_dropped: RxDrop::ALL.map(|r| self.sum(|c| &c.rx_dropped[r as usize])),
            tx_dropped: TxDrop::ALL.map(|r| self.sum(|c| &c.tx_dropped[r as usize])),
        }
    }
}

/// A port's counters at one moment, summed over workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortSnapshot {
    /// True when the port can carry traffic.
    pub up: bool,
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Received frames dropped, by [`RxDrop`] index.
    pub rx_dropped: [u64; RxDrop::COUNT],
    /// Frames not sent, by [`TxDrop`] index.
    pub tx_dropped: [u64; TxDrop::COUNT],
}

impl PortSnapshot {
    /// Receive drops by reason, in [`RxDrop::ALL`] order (zeros included).
    pub fn rx_drops(&self) -> impl Iterator<Item = (RxDrop, u64)> {
        RxDrop::ALL.into_iter().zip(self.rx_dropped)
    }

    /// Transmit drops by reason, in [`TxDrop::ALL`] order (zeros included).
    pub fn tx_drops(&self) -> impl Iterator<Item = (TxDrop, u64)> {
        TxDrop::ALL.into_iter().zip(self.tx_dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sums_workers_by_reason() {
        let s = PortShared::new(None);
        s.w(0).rx_packets.add(2);
        s.w(1).rx_packets.add(3);
        s.w(0).rx_drop(RxDrop::NoMatch);
        s.w(1).rx_drop(RxDrop::NoMatch);
        s.w(1).tx_drop(TxDrop::PortDown);
        let n = s.snapshot();
        assert!(n.up);
        assert_eq!(n.rx_packets, 5);
        assert_eq!(n.rx_dropped[RxDrop::NoMatch as usize], 2);
        assert_eq!(n.rx_drops().filter(|(_, c)| *c > 0).count(), 1);
        assert_eq!(
            n.tx_drops().find(|(_, c)| *c > 0),
            Some((TxDrop::PortDown, 1))
        );
        s.set_down("gone".into());
        assert!(!s.snapshot().up);
    }
}
