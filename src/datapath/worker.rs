//! Datapath workers: plain threads that move frames between ports.
//!
//! # Design
//! A [`WorkerSet`] runs N workers (`rvsd --workers N`). Ports are spread
//! over them: each port is *polled* by one worker (its owner, chosen
//! round-robin as ports are added), and any worker may *send* on any port
//! (the port's I/O is an `Arc<PortIo>` with `&self` methods; the kernel
//! takes each `write`/`sendmsg` as one frame). So a frame is received,
//! looked up, rewritten and sent by one thread, with no hand-off between
//! threads, and the two directions of a conversation between two ports run
//! on two cores.
//!
//! Each worker waits in `epoll` (via mio) on its own ports' fds and on a
//! waker the control plane signals after queueing a [`Command`]. For each
//! readable port it reads up to [`BATCH`] frames into its preallocated
//! buffers, runs each through the bridge pipeline ([`super::xlate`]) and
//! sends the results (to TAPs straight away; to AF_PACKET ports through
//! [`super::txq`], one `sendmmsg` per port when the batch is done). A port
//! that still had data after a
//! full batch is revisited before the worker sleeps again (mio is
//! edge-triggered), so one busy port cannot starve the others.
//!
//! Every worker keeps its own view of all bridges and ports (same slot
//! indexes everywhere: all workers apply the same command sequence).
//! Shared between them: each bridge's flow tables (an `ArcSwap`, loaded
//! once per packet), its NORMAL state (VLAN rules and MAC table, behind a
//! mutex held only while NORMAL decides), and per-port/per-flow counters
//! with one block per worker. Worker 0 is the *primary*: it alone applies
//! changes to the shared NORMAL state, ages MAC entries, and answers FDB,
//! trace and PACKET_OUT commands.
//!
//! # Supervision
//! A worker ends only when told to ([`Command::Shutdown`], or its command
//! channel closing with the [`WorkerSet`]). One that ends by itself — its
//! loop returned a [`WorkerError`], or it panicked where panics unwind —
//! is reported as a [`WorkerExit`] on [`WorkerSet::exits`]; `rvsd` logs
//! it and exits non-zero, since a switch with a dead worker silently stops
//! forwarding on that worker's ports. (In `rvsd` a panic exits the process
//! from the panic hook before it unwinds: see `crate::logging`.)
//!
//! # Invariants
//! Nothing on the packet path allocates: buffers are allocated when the
//! worker starts, NORMAL's outputs are inline small vectors.
//!
//! # Limits
//! At most [`super::counters::MAX_WORKERS`] workers. A port is polled by
//! one worker, so a single busy port does not spread over cores (a
//! multiqueue TAP would be the way); NORMAL learning serialises on the
//! bridge's mutex.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use flowtable::PortNo;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::counters::{Counter, PortShared, RxDrop};
use super::emc::Emc;
use super::txq::TxQueues;
use super::xlate::{self, BridgeRt, Slot, XlateCtx};
use super::Command;
use crate::packet::PacketBuf;
use crate::port::{PortError, PortIo};
use crate::qos::Verdict;

/// Frames read from one port per turn.
pub const BATCH: usize = 32;
/// Token of the control-plane waker.
pub const WAKER: Token = Token(usize::MAX);
/// How long the worker keeps polling without sleeping after traffic.
const SPIN: Duration = Duration::from_micros(200);
/// How often MAC entries are aged.
const AGING_PERIOD: Duration = Duration::from_secs(1);
/// How long epoll may keep failing before the worker gives up.
const POLL_GIVE_UP: Duration = Duration::from_secs(1);

/// Why a worker stopped without being told to.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// `epoll_wait` kept failing (for [`POLL_GIVE_UP`]).
    #[error("polling its ports failed for 1 s: {0}")]
    Poll(#[source] std::io::Error),
    /// Injected by the debug-build fault request (`worker-error`).
    #[cfg(debug_assertions)]
    #[error("injected fault: the worker returned an error")]
    Injected,
}

/// How a worker ended, when it ended by itself.
#[derive(Debug)]
pub enum ExitCause {
    /// Its loop returned an error.
    Error(WorkerError),
    /// It panicked, with this message (only seen where panics unwind:
    /// `rvsd` exits from its panic hook first).
    Panic(String),
}

/// A worker that stopped without a [`Command::Shutdown`]: the datapath is
/// no longer whole, so `rvsd` exits (see `src/main.rs`).
#[derive(Debug)]
pub struct WorkerExit {
    /// Its index (thread `rvs-dp<index>`).
    pub index: usize,
    /// Why.
    pub cause: ExitCause,
}

impl std::fmt::Display for WorkerExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cause {
            ExitCause::Error(e) => write!(f, "datapath worker rvs-dp{} stopped: {e}", self.index),
            ExitCause::Panic(m) => write!(f, "datapath worker rvs-dp{} panicked: {m}", self.index),
        }
    }
}

/// What a worker did, for `pmd-stats-show`; written by that worker only
/// (once per batch), read by the control plane.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Frames received.
    pub rx_packets: Counter,
    /// Non-empty receive batches.
    pub batches: Counter,
    /// Exact-match cache hits (absolute, copied from the cache).
    pub emc_hits: AtomicU64,
    /// Exact-match cache misses (absolute).
    pub emc_misses: AtomicU64,
    /// PACKET_OUTs refused because the command queue was full.
    pub packet_out_dropped: AtomicU64,
}

/// Worker state; see the module docs.
pub struct Worker {
    /// Published statistics.
    stats: Arc<WorkerStats>,
    /// This worker's index (0 = primary).
    index: usize,
    poll: Poll,
    cmds: Receiver<Command>,
    /// Ports by slot (= mio token).
    slots: Vec<Option<Slot>>,
    /// Bridges by id.
    bridges: Vec<Option<BridgeRt>>,
    /// Slot lookup by (bridge id, ofport).
    by_port: HashMap<(u32, PortNo), usize>,
    /// Receive buffers.
    rx: Vec<PacketBuf>,
    /// Scratch buffers for VLAN edits and patch hops.
    scratch: Vec<PacketBuf>,
    /// Software segmentation output buffer.
    seg: Vec<u8>,
    /// Buffer for PACKET_OUT frames.
    pout: PacketBuf,
    /// Exact-match cache.
    emc: Box<Emc>,
    /// Transmit queues of ports with batched sends.
    tx: TxQueues,
    /// Slots that may still have frames queued.
    pending: Vec<usize>,
    epoch: Instant,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl Worker {
    /// Worker `index` reading commands from `cmds`; `poll` owns the waker.
    pub fn new(
        index: usize,
        poll: Poll,
        cmds: Receiver<Command>,
        epoch: Instant,
        stats: Arc<WorkerStats>,
    ) -> Worker {
        Worker {
            stats,
            index,
            poll,
            cmds,
            slots: Vec::new(),
            bridges: Vec::new(),
            by_port: HashMap::new(),
            rx: (0..BATCH).map(|_| PacketBuf::new()).collect(),
            scratch: (0..xlate::SCRATCH).map(|_| PacketBuf::new()).collect(),
            seg: vec![0; crate::packet::BUF_SIZE],
            pout: PacketBuf::new(),
            emc: Box::new(Emc::new()),
            tx: TxQueues::default(),
            pending: Vec::with_capacity(64),
            epoch,
        }
    }

    /// Nanoseconds since the epoch (monotonic; a vDSO read, no system
    /// call). Read once per batch or command.
    fn now_ns(&self) -> u64 {
        // Truncation: u64 nanoseconds last 584 years.
        self.epoch.elapsed().as_nanos() as u64
    }

    fn now_ms(&self) -> u64 {
        self.now_ns() / 1_000_000
    }

    fn primary(&self) -> bool {
        self.index == 0
    }

    fn ctx(&mut self, now_ns: u64) -> XlateCtx<'_> {
        XlateCtx {
            slots: &mut self.slots,
            bridges: &mut self.bridges,
            scratch: &mut self.scratch,
            seg: &mut self.seg,
            now_ms: now_ns / 1_000_000,
            now_ns,
            w: self.index,
            emc: &mut self.emc,
            tx: &mut self.tx,
        }
    }

    /// Runs until a `Shutdown` command arrives or the channel closes
    /// (`Ok`), or until the worker cannot go on (`Err`: the
    /// [`WorkerSet`] reports it, see [`WorkerExit`]).
    pub fn run(mut self) -> Result<(), WorkerError> {
        let mut events = Events::with_capacity(256);
        let mut next_aging = Instant::now() + AGING_PERIOD;
        let mut ready: Vec<usize> = Vec::with_capacity(256);
        // When traffic was just forwarded, poll without sleeping for a short
        // while: the answer to what we forwarded (a ping reply, a TCP ACK)
        // usually comes back within tens of microseconds, and catching it
        // without a scheduler wake-up halves the added latency. Idle, the
        // worker sleeps in epoll (no busy loop).
        let mut last_rx = Instant::now() - SPIN;
        // Since when epoll has been failing (None: it works).
        let mut failing: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let timeout = if !self.pending.is_empty() || now.duration_since(last_rx) < SPIN {
                Duration::ZERO
            } else {
                next_aging.saturating_duration_since(now)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    let since = *failing.get_or_insert(now);
                    if now.duration_since(since) >= POLL_GIVE_UP {
                        return Err(WorkerError::Poll(e));
                    }
                    log::error!("datapath worker {}: poll failed: {e}", self.index);
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            failing = None;
            ready.clear();
            ready.append(&mut self.pending);
            let mut wake = false;
            for ev in events.iter() {
                if ev.token() == WAKER {
                    wake = true;
                } else if !ready.contains(&ev.token().0) {
                    ready.push(ev.token().0);
                }
            }
            if wake && !self.commands()? {
                return Ok(());
            }
            for &slot in &ready {
                self.service(slot);
            }
            if !ready.is_empty() {
                last_rx = Instant::now();
            }
            if Instant::now() >= next_aging {
                self.housekeeping();
                next_aging = Instant::now() + AGING_PERIOD;
            }
        }
    }

    /// Once a second: ages MAC entries and notices netdevs that vanished
    /// without an error on their fd (AF_PACKET reports it only once).
    fn housekeeping(&mut self) {
        let now_ms = self.now_ms();
        if self.primary() {
            for b in self.bridges.iter().flatten() {
                b.normal().expire(now_ms);
            }
        }
        self.check_ports();
    }

    /// Drains the command queue; false on shutdown.
    fn commands(&mut self) -> Result<bool, WorkerError> {
        loop {
            match self.cmds.try_recv() {
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return Ok(false),
                #[cfg(debug_assertions)]
                Ok(Command::DebugFault { fault }) => match fault {
                    super::WorkerFault::Panic => {
                        panic!("injected fault: datapath worker {} panics", self.index)
                    }
                    super::WorkerFault::Error => return Err(WorkerError::Injected),
                },
                Ok(cmd) => self.command(cmd),
                Err(TryRecvError::Empty) => return Ok(true),
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let now_ns = self.now_ns();
        let now_ms = now_ns / 1_000_000;
        match cmd {
            Command::Shutdown => {}
            #[cfg(debug_assertions)]
            Command::DebugFault { .. } => {}
            Command::AddBridge { id, rt } => {
                let i = id as usize;
                if self.bridges.len() <= i {
                    self.bridges.resize_with(i + 1, || None);
                }
                self.bridges[i] = Some(*rt);
            }
            Command::DelBridge { id } => {
                let slots: Vec<usize> = self
                    .by_port
                    .iter()
                    .filter(|((b, _), _)| *b == id)
                    .map(|(_, s)| *s)
                    .collect();
                for s in slots {
                    self.remove_slot(s);
                }
                if let Some(b) = self.bridges.get_mut(id as usize) {
                    *b = None;
                }
            }
            Command::AddPort {
                bridge,
                ofport,
                name,
                io,
                owner,
                shared,
                vlan,
                split_horizon,
                policers,
            } => {
                // Deterministic: every worker picks the same slot.
                let slot = match self.slots.iter().position(Option::is_none) {
                    Some(i) => i,
                    None => {
                        self.slots.push(None);
                        self.slots.len() - 1
                    }
                };
                let mine = owner == self.index;
                if let Some(io) = io.as_ref().filter(|_| mine) {
                    if let Err(e) = watch(&self.poll, io, slot) {
                        shared.set_down(format!("cannot poll netdev: {e}"));
                    }
                }
                let primary = self.primary();
                if let Some(b) = self
                    .bridges
                    .get_mut(bridge as usize)
                    .and_then(Option::as_mut)
                {
                    b.add_port(ofport, slot, vlan, split_horizon, primary);
                    if primary {
                        let _ = b
                            .normal()
                            .set_port_up(ofport, io.is_some() && shared.is_up());
                    }
                }
                if io.as_ref().is_some_and(|io| io.batches_tx()) {
                    self.tx.add(slot);
                }
                self.slots[slot] = Some(Slot {
                    bridge,
                    ofport,
                    name,
                    io,
                    owner,
                    shared,
                    patch_peer: None,
                    policers,
                });
                self.by_port.insert((bridge, ofport), slot);
                if mine {
                    // Frames may have queued before registration.
                    self.pending.push(slot);
                }
            }
            Command::AttachIo { bridge, ofport, io } => {
                let Some(slot) = self.by_port.get(&(bridge, ofport)).copied() else {
                    return;
                };
                let Some(Some(sl)) = self.slots.get_mut(slot) else {
                    return;
                };
                let mine = sl.owner == self.index;
                if let Some(old) = sl.io.take().filter(|_| mine) {
                    unwatch(&self.poll, &old);
                }
                if mine {
                    if let Err(e) = watch(&self.poll, &io, slot) {
                        log::error!("cannot poll re-attached port {}: {e}", sl.name);
                        return;
                    }
                    sl.shared.set_up();
                    log::info!("port {}: netdev attached", sl.name);
                    self.pending.push(slot);
                }
                // Queued frames were for the old I/O (a tunnel port given new
                // options): they go, with the queue if the new one does
                // not batch.
                if io.batches_tx() {
                    self.tx.add(slot);
                } else {
                    self.tx.remove(slot);
                }
                sl.io = Some(io);
                if self.primary() {
                    if let Some(b) = self.bridges.get(bridge as usize).and_then(Option::as_ref) {
                        let _ = b.normal().set_port_up(ofport, true);
                    }
                }
            }
            Command::DelPort { bridge, ofport } => {
                if let Some(s) = self.by_port.get(&(bridge, ofport)).copied() {
                    self.remove_slot(s);
                }
            }
            Command::SetPortVlan {
                bridge,
                ofport,
                vlan,
            } => {
                if let Some(b) = self.bridges.get(bridge as usize).and_then(Option::as_ref) {
                    b.set_port_vlan(ofport, vlan);
                }
            }
            Command::SetSplitHorizon { bridge, ofport, on } => {
                if let Some(b) = self.bridges.get(bridge as usize).and_then(Option::as_ref) {
                    b.set_port_split_horizon(ofport, on);
                }
            }
            Command::SetPolicers {
                bridge,
                ofport,
                policers,
            } => {
                if let Some(s) = self.by_port.get(&(bridge, ofport)).copied() {
                    if let Some(Some(slot)) = self.slots.get_mut(s) {
                        slot.policers = policers;
                    }
                }
            }
            Command::SetPatchPeer {
                bridge,
                ofport,
                peer,
            } => {
                let peer_slot = peer.and_then(|(b, p)| self.by_port.get(&(b, p)).copied());
                let primary = self.primary();
                if let Some(s) = self.by_port.get(&(bridge, ofport)).copied() {
                    if let Some(slot) = self.slots[s].as_mut() {
                        slot.patch_peer = peer.zip(peer_slot).map(|((b, p), _)| (b, p));
                        let up = slot.patch_peer.is_some();
                        if let Some(b) = self
                            .bridges
                            .get(bridge as usize)
                            .and_then(Option::as_ref)
                            .filter(|_| primary)
                        {
                            let _ = b.normal().set_port_up(ofport, up);
                        }
                    }
                }
            }
            Command::SetVlanLimit { bridge, limit } => {
                if let Some(b) = self
                    .bridges
                    .get_mut(bridge as usize)
                    .and_then(Option::as_mut)
                {
                    b.vlan_limit = limit;
                }
            }
            Command::SetBridgeKnobs {
                bridge,
                aging_s,
                table_size,
            } => {
                if let Some(b) = self.bridges.get(bridge as usize).and_then(Option::as_ref) {
                    let mut n = b.normal();
                    if let Err(e) = n.set_mac_aging_time(aging_s) {
                        log::error!("bridge {}: {e}", b.name);
                    }
                    if let Err(e) = n.set_mac_table_size(table_size) {
                        log::error!("bridge {}: {e}", b.name);
                    }
                }
            }
            Command::FdbShow { bridge, reply } => {
                let out = self
                    .bridges
                    .get(bridge as usize)
                    .and_then(Option::as_ref)
                    .map(|b| b.fdb(&self.slots, now_ms))
                    .unwrap_or_default();
                let _ = reply.send(out);
            }
            Command::FdbFlush { bridge, reply } => {
                let n = self
                    .bridges
                    .get(bridge as usize)
                    .and_then(Option::as_ref)
                    .map(|b| b.normal().fdb_flush())
                    .unwrap_or(0);
                let _ = reply.send(n);
            }
            Command::Barrier { reply } => {
                let _ = reply.send(());
            }
            Command::PacketOut {
                bridge,
                in_port,
                actions,
                data,
            } => {
                let mut buf = std::mem::replace(&mut self.pout, PacketBuf::empty());
                buf.reset();
                let room = buf.rx_space();
                if data.len() <= room.len() && data.len() <= crate::packet::MAX_FRAME {
                    room[..data.len()].copy_from_slice(&data);
                    buf.set_received(data.len());
                    let mut ctx = self.ctx(now_ns);
                    if let Some(why) =
                        xlate::packet_out(&mut ctx, bridge, &mut buf, in_port, &actions)
                    {
                        log::debug!("packet_out on bridge {bridge}: dropped ({})", why.name());
                    }
                    self.tx.flush(&self.slots, self.index);
                }
                self.pout = buf;
            }
            Command::Trace { bridge, key, reply } => {
                let mut ctx = self.ctx(now_ns);
                let _ = reply.send(xlate::trace(&mut ctx, bridge, key));
            }
        }
    }

    fn remove_slot(&mut self, s: usize) {
        let primary = self.primary();
        self.tx.remove(s);
        if let Some(slot) = self.slots.get_mut(s).and_then(Option::take) {
            if let Some(io) = slot.io.as_ref().filter(|_| slot.owner == self.index) {
                unwatch(&self.poll, io);
            }
            self.by_port.remove(&(slot.bridge, slot.ofport));
            if let Some(b) = self
                .bridges
                .get_mut(slot.bridge as usize)
                .and_then(Option::as_mut)
            {
                b.del_port(slot.ofport, primary);
            }
            // Peers that patched into this port lose their link.
            for other in self.slots.iter_mut().flatten() {
                if other.patch_peer == Some((slot.bridge, slot.ofport)) {
                    other.patch_peer = None;
                }
            }
        }
        self.pending.retain(|&p| p != s);
    }

    /// Reads one batch from `slot` and forwards it.
    fn service(&mut self, slot: usize) {
        let now_ns = self.now_ns();
        let Some(Some(sl)) = self.slots.get_mut(slot) else {
            return;
        };
        let Some(io) = sl.io.as_deref() else {
            return;
        };
        let shared: Arc<PortShared> = sl.shared.clone();
        let c = shared.w(self.index);
        let mut gone: Option<String> = None;
        let mut more = false;
        let n = match io.recv_batch(&mut self.rx) {
            Ok(n) => {
                more = n == BATCH;
                n
            }
            Err(PortError::FrameTooBig { len }) => {
                c.rx_packets.add(1);
                c.rx_bytes.add(len as u64);
                c.rx_drop(RxDrop::TooBig);
                more = true;
                0
            }
            Err(e) if e.is_gone() => {
                gone = Some(format!("netdev vanished: {e}"));
                0
            }
            Err(PortError::LinkDown) => 0,
            Err(e) => {
                log::debug!("port {} receive error: {e}", sl.name);
                0
            }
        };
        // Frames for another tunnel port on the same socket are counted
        // on that port below.
        for b in self.rx[..n].iter().filter(|b| b.tunnel.redirect.is_none()) {
            c.rx_packets.add(1);
            c.rx_bytes.add(b.len as u64);
        }
        // Datagrams a tunnel port skipped (not VXLAN, other remote or VNI).
        let (malformed, no_port) = io.take_rx_rejects();
        for (count, why) in [
            (malformed, RxDrop::Malformed),
            (no_port, RxDrop::TunnelNoPort),
        ] {
            if count > 0 {
                c.rx_packets.add(count);
                c.rx_dropped[why as usize].add(count);
            }
        }
        if let Some(reason) = gone {
            self.port_gone(slot, reason);
        } else if more {
            self.pending.push(slot);
        }
        let bridge = sl_bridge(&self.slots, slot);
        let Some(bridge) = bridge else { return };
        // The buffers leave `self` for the loop (a move, no allocation) so
        // the context can borrow the rest.
        let mut rx = std::mem::take(&mut self.rx);
        let mut ctx = self.ctx(now_ns);
        for buf in &mut rx[..n] {
            match buf.tunnel.redirect {
                None => {
                    if policed(ctx.slots, slot, buf, now_ns, ctx.w) {
                        continue;
                    }
                    xlate::receive(&mut ctx, bridge, slot, buf)
                }
                Some((b, p)) => match xlate::slot_of(&ctx, b, PortNo(p)) {
                    Some(s) => {
                        if let Some(Some(sl)) = ctx.slots.get(s) {
                            let c = sl.shared.w(ctx.w);
                            c.rx_packets.add(1);
                            c.rx_bytes.add(buf.len as u64);
                        }
                        if policed(ctx.slots, s, buf, now_ns, ctx.w) {
                            continue;
                        }
                        xlate::receive(&mut ctx, b, s, buf);
                    }
                    // Its port was just deleted.
                    None => {
                        c.rx_packets.add(1);
                        c.rx_dropped[RxDrop::TunnelNoPort as usize].add(1);
                    }
                },
            }
        }
        self.rx = rx;
        self.tx.flush(&self.slots, self.index);
        if n > 0 {
            self.stats.rx_packets.add(n as u64);
            self.stats.batches.add(1);
            let e = self.emc.stats();
            self.stats.emc_hits.store(e.hits, Ordering::Relaxed);
            self.stats.emc_misses.store(e.misses, Ordering::Relaxed);
        }
    }

    /// Marks ports whose netdev no longer exists as down.
    ///
    /// Reads alone do not always tell: a device being deleted (or torn
    /// down with its namespace) first goes down, and an AF_PACKET socket
    /// reports that as a single `ENETDOWN`. If the worker reads it before
    /// the device is unregistered, it is taken for a link-down, and the
    /// unregistration that follows raises no further error — the socket
    /// just stays silent. So once per housekeeping period every port is
    /// asked directly (one `getsockname`/`TUNGETIFF` each).
    /// Ports this worker does not poll only drop their handle once the
    /// owner marked the port down, so the fd closes.
    fn check_ports(&mut self) {
        let me = self.index;
        for s in self.slots.iter_mut().flatten() {
            if s.owner != me && s.io.is_some() && !s.shared.is_up() {
                s.io = None;
            }
        }
        let dead: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let s = s.as_ref()?;
                let io = s.io.as_ref()?;
                (s.owner == me && !io.check_alive()).then_some(i)
            })
            .collect();
        for slot in dead {
            self.port_gone(slot, "netdev vanished: network device is gone".to_string());
        }
    }

    /// Marks a port whose netdev vanished as down and stops polling it.
    fn port_gone(&mut self, slot: usize, reason: String) {
        if let Some(Some(sl)) = self.slots.get_mut(slot) {
            log::warn!("port {}: {reason}; marking it down", sl.name);
            sl.shared.set_down(reason);
            let (bridge, ofport) = (sl.bridge, sl.ofport);
            if let Some(b) = self.bridges.get(bridge as usize).and_then(Option::as_ref) {
                let _ = b.normal().set_port_up(ofport, false);
            }
            let Some(Some(sl)) = self.slots.get_mut(slot) else {
                return;
            };
            if let Some(io) = sl.io.take() {
                unwatch(&self.poll, &io);
            }
        }
        self.pending.retain(|&p| p != slot);
    }
}

/// True (and counted as `rx_dropped.policed`) if the ingress policer of
/// `slot` drops `buf`, received at `now_ns` by worker `w`.
///
/// A TSO super-frame of which only some segments fit is cut to those and
/// forwarded; it counts once as `policed` too.
#[inline]
fn policed(
    slots: &mut [Option<Slot>],
    slot: usize,
    buf: &mut PacketBuf,
    now_ns: u64,
    w: usize,
) -> bool {
    let Some(Some(sl)) = slots.get_mut(slot) else {
        return false;
    };
    let Some(ing) = sl.policers.ingress.as_mut() else {
        return false;
    };
    let v = ing.admit(now_ns, buf);
    if v != Verdict::Pass {
        sl.shared.w(w).rx_drop(RxDrop::Policed);
    }
    v == Verdict::Drop
}

/// Starts polling `io`'s fd as `slot`.
fn watch(poll: &Poll, io: &PortIo, slot: usize) -> std::io::Result<()> {
    poll.registry()
        .register(&mut SourceFd(&io.fd()), Token(slot), Interest::READABLE)
}

/// Stops polling `io`'s fd (an error only means it was not polled).
fn unwatch(poll: &Poll, io: &PortIo) {
    let _ = poll.registry().deregister(&mut SourceFd(&io.fd()));
}

fn sl_bridge(slots: &[Option<Slot>], slot: usize) -> Option<u32> {
    slots.get(slot).and_then(Option::as_ref).map(|s| s.bridge)
}

/// Commands queued to one worker, at most.
pub const COMMAND_QUEUE: usize = 4096;

/// Handle of one running worker.
struct WorkerHandle {
    /// Its statistics.
    stats: Arc<WorkerStats>,
    /// Command queue.
    tx: crossbeam_channel::Sender<Command>,
    /// Wakes the worker after a send.
    waker: Arc<mio::Waker>,
    /// The thread.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WorkerHandle {
    fn spawn(
        index: usize,
        epoch: Instant,
        exits: crossbeam_channel::Sender<WorkerExit>,
    ) -> std::io::Result<WorkerHandle> {
        let poll = Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::bounded(COMMAND_QUEUE);
        let stats = Arc::new(WorkerStats::default());
        let worker = Worker::new(index, poll, rx, epoch, stats.clone());
        let thread = std::thread::Builder::new()
            .name(format!("rvs-dp{index}"))
            .spawn(move || {
                // A panic is caught only where it unwinds (unit tests);
                // rvsd's panic hook exits before that.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run()));
                let cause = match r {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => ExitCause::Error(e),
                    Err(p) => ExitCause::Panic(crate::logging::panic_payload(&*p).to_string()),
                };
                let _ = exits.send(WorkerExit { index, cause });
            })?;
        Ok(WorkerHandle {
            stats,
            tx,
            waker,
            thread: Some(thread),
        })
    }

    /// Queues `cmd`. Configuration waits for room (the worker drains the
    /// queue without ever waiting for the control plane); a PACKET_OUT
    /// finding the queue full is dropped and counted, so a controller
    /// cannot grow it without bound.
    fn send(&self, cmd: Command) {
        let sent = if matches!(cmd, Command::PacketOut { .. }) {
            match self.tx.try_send(cmd) {
                Ok(()) => true,
                Err(crossbeam_channel::TrySendError::Full(_)) => {
                    self.stats
                        .packet_out_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    false
                }
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => false,
            }
        } else {
            self.tx.send(cmd).is_ok()
        };
        if sent {
            if let Err(e) = self.waker.wake() {
                log::error!("cannot wake datapath worker: {e}");
            }
        }
    }
}

/// The datapath workers, as the control plane reaches them.
pub struct WorkerSet {
    workers: Vec<WorkerHandle>,
    /// Round-robin cursor for [`WorkerSet::pick_owner`].
    next_owner: std::sync::atomic::AtomicUsize,
    /// Workers that stopped by themselves ([`WorkerSet::exits`]).
    exits: crossbeam_channel::Receiver<WorkerExit>,
}

impl std::fmt::Debug for WorkerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerSet")
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl WorkerSet {
    /// Starts `n` worker threads (clamped to 1..=MAX_WORKERS).
    pub fn spawn(epoch: Instant, n: usize) -> std::io::Result<WorkerSet> {
        let n = n.clamp(1, super::counters::MAX_WORKERS);
        let (exit_tx, exits) = crossbeam_channel::unbounded();
        let workers = (0..n)
            .map(|i| WorkerHandle::spawn(i, epoch, exit_tx.clone()))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(WorkerSet {
            workers,
            next_owner: std::sync::atomic::AtomicUsize::new(0),
            exits,
        })
    }

    /// Where a worker that stops by itself (an error, or a panic that
    /// unwinds) is reported, once per worker. Workers told to stop
    /// ([`WorkerSet::shutdown`]) report nothing; once every worker has
    /// ended the channel is disconnected.
    pub fn exits(&self) -> crossbeam_channel::Receiver<WorkerExit> {
        self.exits.clone()
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Statistics of worker `i`.
    pub fn stats(&self, i: usize) -> Option<&WorkerStats> {
        self.workers.get(i).map(|w| &*w.stats)
    }

    /// Always false: a set has at least one worker.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// The worker that will poll the next port with I/O (round-robin).
    pub fn pick_owner(&self) -> usize {
        let n = self
            .next_owner
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        n % self.workers.len().max(1)
    }

    /// Queues a command: to worker 0 alone for commands on shared state
    /// or with one reply, to every worker otherwise.
    pub fn send(&self, cmd: Command) {
        #[cfg(debug_assertions)]
        if matches!(cmd, Command::DebugFault { .. }) {
            if let Some(w) = self.workers.first() {
                w.send(cmd);
            }
            return;
        }
        let primary_only = matches!(
            cmd,
            Command::SetPortVlan { .. }
                | Command::SetBridgeKnobs { .. }
                | Command::FdbShow { .. }
                | Command::FdbFlush { .. }
                | Command::PacketOut { .. }
                | Command::Trace { .. }
        );
        let Some((last, rest)) = self.workers.split_last() else {
            return;
        };
        if primary_only {
            self.workers[0].send(cmd);
            return;
        }
        for w in rest {
            w.send(cmd.clone());
        }
        last.send(cmd);
    }

    /// Waits (at most `limit`) until every worker has carried out every
    /// command sent so far; false if one did not answer in time.
    pub fn barrier(&self, limit: std::time::Duration) -> bool {
        let (tx, rx) = crossbeam_channel::bounded(self.workers.len());
        for w in &self.workers {
            w.send(Command::Barrier { reply: tx.clone() });
        }
        let deadline = Instant::now() + limit;
        (0..self.workers.len()).all(|_| rx.recv_deadline(deadline).is_ok())
    }

    /// Stops the workers and waits for them.
    pub fn shutdown(&mut self) {
        for w in &self.workers {
            w.send(Command::Shutdown);
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Workers told to stop report nothing; the channel then disconnects.
    #[test]
    fn ordered_shutdown_is_not_an_exit() {
        let mut set = WorkerSet::spawn(Instant::now(), 2).unwrap();
        let exits = set.exits();
        assert!(set.barrier(Duration::from_secs(5)));
        set.shutdown();
        assert!(matches!(
            exits.recv_timeout(Duration::from_secs(5)),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        ));
    }

    /// A worker whose loop fails, or that panics (unit tests unwind; rvsd
    /// exits from its panic hook first), is reported with its index and
    /// cause; the others keep answering.
    #[cfg(debug_assertions)]
    #[test]
    fn a_worker_that_dies_is_reported() {
        use crate::datapath::WorkerFault;
        for (fault, want) in [
            (
                WorkerFault::Error,
                "datapath worker rvs-dp0 stopped: injected fault",
            ),
            (
                WorkerFault::Panic,
                "datapath worker rvs-dp0 panicked: injected fault",
            ),
        ] {
            let mut set = WorkerSet::spawn(Instant::now(), 2).unwrap();
            let exits = set.exits();
            set.send(Command::DebugFault { fault });
            let exit = exits.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(exit.index, 0);
            assert!(exit.to_string().starts_with(want), "{exit}");
            match (&exit.cause, fault) {
                (ExitCause::Error(WorkerError::Injected), WorkerFault::Error) => {}
                (ExitCause::Panic(m), WorkerFault::Panic) => {
                    assert_eq!(m, "injected fault: datapath worker 0 panics")
                }
                other => panic!("{other:?}"),
            }
            // Worker 0 is gone: a barrier cannot complete.
            assert!(!set.barrier(Duration::from_millis(200)));
            set.shutdown();
            assert!(exits.recv_timeout(Duration::from_secs(1)).is_err());
        }
    }
}
