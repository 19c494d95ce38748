//! The datapath: worker threads that move frames between ports.
//!
//! # What?
//! [`worker`] owns ports and bridges and runs the receive → extract →
//! pipeline → transmit loop; [`xlate`] executes flow tables and actions
//! (including NORMAL) for one packet; [`pipeline`] holds the published flow
//! tables; [`counters`] the per-port counters the control plane reads;
//! [`controller`] the state shared with the OpenFlow channel and the
//! frames punted to it.
//!
//! # Design
//! The datapath answers in its own plain types — [`xlate::Trace`],
//! [`xlate::FdbRow`], [`counters::PortSnapshot`],
//! [`controller::ControllerPacket`] — and depends neither on the OpenFlow
//! wire codec nor on the `rvsctl` protocol: the control plane converts at
//! its edges (`control::convert`, `control::ofchannel`).
//!
//! # Thread-safety
//! The control plane talks to workers only through [`Command`]s (plus the
//! lock-free `ArcSwap` of each bridge's pipeline, the per-worker atomic
//! counters and each bridge's MAC-learning state, which all workers share
//! behind a mutex held only while NORMAL decides).

pub mod controller;
pub mod counters;
pub mod emc;
pub mod pipeline;
pub mod txq;
pub mod worker;
pub mod xlate;

use std::sync::Arc;

use flowtable::{FlowKey, PortNo};

use crate::bridge::VlanConfig;
use crate::port::PortIo;
use crate::qos::Policers;
use counters::PortShared;

/// A one-shot reply channel.
pub type Reply<T> = crossbeam_channel::Sender<T>;

/// Requests from the control plane to the workers.
///
/// [`worker::WorkerSet::send`] gives each command to every worker (they
/// all keep the same view of bridges and ports) except the ones that act
/// on shared state or need one answer (FDB, trace, PACKET_OUT, knobs),
/// which only worker 0 runs.
#[derive(Clone)]
pub enum Command {
    /// Stop the worker thread.
    Shutdown,
    /// Start serving a bridge.
    AddBridge {
        /// Bridge id.
        id: u32,
        /// Its runtime state.
        rt: Box<xlate::BridgeRt>,
    },
    /// Stop serving a bridge; its ports are closed.
    DelBridge {
        /// Bridge id.
        id: u32,
    },
    /// Attach a port. `io` is `None` for patch ports and ports whose netdev
    /// is missing (then `shared` says why it is down).
    AddPort {
        /// Bridge id.
        bridge: u32,
        /// OpenFlow port number.
        ofport: PortNo,
        /// Port name.
        name: String,
        /// The port's I/O, shared by all workers for sending.
        io: Option<Arc<PortIo>>,
        /// The worker that polls it (receives from it).
        owner: usize,
        /// Counters and state.
        shared: Arc<PortShared>,
        /// In the bridge's split-horizon group (tunnel ports): NORMAL does
        /// not forward between two such ports.
        split_horizon: bool,
        /// VLAN configuration for NORMAL.
        vlan: VlanConfig,
        /// Its policers (each worker keeps its own ingress copy).
        policers: Policers,
    },
    /// Give a port that was down (netdev missing) its I/O and mark it up.
    AttachIo {
        /// Bridge id.
        bridge: u32,
        /// OpenFlow port number.
        ofport: PortNo,
        /// The new I/O.
        io: Arc<PortIo>,
    },
    /// Detach a port (its fd is closed).
    DelPort {
        /// Bridge id.
        bridge: u32,
        /// OpenFlow port number.
        ofport: PortNo,
    },
    /// Change a port's VLAN configuration (flushes its MAC entries).
    SetPortVlan {
        /// Bridge id.
        bridge: u32,
        /// OpenFlow port number.
        ofport: PortNo,
        /// New configuration.
        vlan: VlanConfig,
    },
    /// Put a port in or out of NORMAL's split-horizon group.
    SetSplitHorizon {
        /// Bridge id.
        bridge: u32,
        /// OpenFlow port number.
        ofport: PortNo,
        /// In the group.
        on: bool,
    },
    /// Replace a port's policers (new settings; the buckets start full).
    SetPolicers {
        /// Bridge id.
        bridge: u32,
        /// OpenFlow port number.
        ofport: PortNo,
        /// The new policers.
        policers: Policers,
    },
    /// Link a patch port to its peer (or unlink with `None`).
    SetPatchPeer {
        /// Bridge id.
        bridge: u32,
        /// OpenFlow port number.
        ofport: PortNo,
        /// Peer (bridge id, ofport).
        peer: Option<(u32, PortNo)>,
    },
    /// Set a bridge's `vlan-limit` (every worker keeps its own copy).
    SetVlanLimit {
        /// Bridge id.
        bridge: u32,
        /// VLAN headers parsed into flow keys (0: all).
        limit: u8,
    },
    /// MAC learning knobs.
    SetBridgeKnobs {
        /// Bridge id.
        bridge: u32,
        /// Aging time, seconds.
        aging_s: u32,
        /// Table capacity.
        table_size: u32,
    },
    /// Snapshot the MAC table.
    FdbShow {
        /// Bridge id.
        bridge: u32,
        /// Where to send it.
        reply: Reply<Vec<xlate::FdbRow>>,
    },
    /// Empty the MAC table; replies with the number of entries removed.
    FdbFlush {
        /// Bridge id.
        bridge: u32,
        /// Where to send the count.
        reply: Reply<usize>,
    },
    /// Replies once every command sent before it was carried out (e.g.
    /// the fds of deleted ports are closed, so their TAPs are gone).
    Barrier {
        /// Where to say so.
        reply: Reply<()>,
    },
    /// Run an OpenFlow PACKET_OUT: `actions` on `data` as if it arrived
    /// on `in_port` (CONTROLLER or NONE when it did not).
    PacketOut {
        /// Bridge id.
        bridge: u32,
        /// Input port.
        in_port: PortNo,
        /// Actions; `Output(PortNo::TABLE)` runs the flow tables.
        actions: Vec<flowtable::Action>,
        /// The frame.
        data: Vec<u8>,
    },
    /// Debug builds only: make worker 0 fail (for the supervision tests;
    /// see `rvsd --debug-faults`).
    #[cfg(debug_assertions)]
    DebugFault {
        /// What to do.
        fault: WorkerFault,
    },
    /// Trace a synthetic packet.
    Trace {
        /// Bridge id.
        bridge: u32,
        /// The packet's key.
        key: FlowKey,
        /// Where to send the result.
        reply: Reply<xlate::Trace>,
    },
}

/// A failure a debug build can inject into a worker.
#[cfg(debug_assertions)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerFault {
    /// `panic!` in the worker thread.
    Panic,
    /// The worker loop returns an error.
    Error,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Shutdown => "Shutdown",
            Command::AddBridge { .. } => "AddBridge",
            Command::DelBridge { .. } => "DelBridge",
            Command::AddPort { .. } => "AddPort",
            Command::DelPort { .. } => "DelPort",
            Command::AttachIo { .. } => "AttachIo",
            Command::SetPortVlan { .. } => "SetPortVlan",
            Command::SetSplitHorizon { .. } => "SetSplitHorizon",
            Command::SetPolicers { .. } => "SetPolicers",
            Command::SetPatchPeer { .. } => "SetPatchPeer",
            Command::SetBridgeKnobs { .. } => "SetBridgeKnobs",
            Command::SetVlanLimit { .. } => "SetVlanLimit",
            Command::FdbShow { .. } => "FdbShow",
            Command::FdbFlush { .. } => "FdbFlush",
            Command::Trace { .. } => "Trace",
            Command::Barrier { .. } => "Barrier",
            Command::PacketOut { .. } => "PacketOut",
            #[cfg(debug_assertions)]
            Command::DebugFault { .. } => "DebugFault",
        })
    }
}
