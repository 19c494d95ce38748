//! The datapath worker: a plain thread that owns ports and bridges.
//!
//! # Design
//! The worker waits in `epoll` (via mio) on its ports' fds and on a waker
//! the control plane signals after queueing a [`Command`]. For each
//! readable port it reads up to [`BATCH`] frames into its preallocated
//! buffers, runs each through the bridge pipeline ([`super::xlate`]) and
//! sends the results straight away. A port that still had data after a
//! full batch is revisited before the worker sleeps again (mio is
//! edge-triggered), so one busy port cannot starve the others.
//!
//! The worker owns whole bridges: their MAC tables live here, so NORMAL
//! learns without locks; the control plane reads them by sending a command
//! and waiting for the reply. Flow tables are read through an `ArcSwap`
//! loaded once per batch.
//!
//! # Invariants
//! Nothing on the packet path allocates: buffers are allocated when the
//! worker starts, NORMAL's outputs are inline small vectors.
//!
//! # Limits
//! One worker serves every bridge today (patch ports then never cross
//! threads); spreading bridges over workers is the performance issue's job.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use flowtable::PortNo;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::counters::{PortShared, RxDrop};
use super::xlate::{self, BridgeRt, Slot, XlateCtx};
use super::Command;
use crate::packet::PacketBuf;
use crate::port::PortError;

/// Frames read from one port per turn.
pub const BATCH: usize = 32;
/// Token of the control-plane waker.
pub const WAKER: Token = Token(usize::MAX);
/// How long the worker keeps polling without sleeping after traffic.
const SPIN: Duration = Duration::from_micros(200);
/// How often MAC entries are aged.
const AGING_PERIOD: Duration = Duration::from_secs(1);

/// Worker state; see the module docs.
pub struct Worker {
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
    /// A worker reading commands from `cmds`; `poll` owns the waker.
    pub fn new(poll: Poll, cmds: Receiver<Command>, epoch: Instant) -> Worker {
        Worker {
            poll,
            cmds,
            slots: Vec::new(),
            bridges: Vec::new(),
            by_port: HashMap::new(),
            rx: (0..BATCH).map(|_| PacketBuf::new()).collect(),
            scratch: (0..xlate::SCRATCH).map(|_| PacketBuf::new()).collect(),
            seg: vec![0; crate::packet::BUF_SIZE],
            pout: PacketBuf::new(),
            pending: Vec::with_capacity(64),
            epoch,
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Runs until a `Shutdown` command arrives or the channel closes.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut next_aging = Instant::now() + AGING_PERIOD;
        let mut ready: Vec<usize> = Vec::with_capacity(256);
        // When traffic was just forwarded, poll without sleeping for a short
        // while: the answer to what we forwarded (a ping reply, a TCP ACK)
        // usually comes back within tens of microseconds, and catching it
        // without a scheduler wake-up halves the added latency. Idle, the
        // worker sleeps in epoll (no busy loop).
        let mut last_rx = Instant::now() - SPIN;
        loop {
            let now = Instant::now();
            let timeout = if !self.pending.is_empty() || now.duration_since(last_rx) < SPIN {
                Duration::ZERO
            } else {
                next_aging.saturating_duration_since(now)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    log::error!("datapath poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
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
            if wake && !self.commands() {
                return;
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
        for b in self.bridges.iter_mut().flatten() {
            b.normal.expire(now_ms);
        }
        self.check_ports();
    }

    /// Drains the command queue; false on shutdown.
    fn commands(&mut self) -> bool {
        loop {
            match self.cmds.try_recv() {
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return false,
                Ok(cmd) => self.command(cmd),
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let now_ms = self.now_ms();
        match cmd {
            Command::Shutdown => {}
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
                shared,
                vlan,
            } => {
                let slot = match self.slots.iter().position(Option::is_none) {
                    Some(i) => i,
                    None => {
                        self.slots.push(None);
                        self.slots.len() - 1
                    }
                };
                if let Some(io) = &io {
                    let fd = io.fd();
                    let r = self.poll.registry().register(
                        &mut SourceFd(&fd),
                        Token(slot),
                        Interest::READABLE,
                    );
                    if let Err(e) = r {
                        shared.set_down(format!("cannot poll netdev: {e}"));
                    }
                }
                if let Some(b) = self
                    .bridges
                    .get_mut(bridge as usize)
                    .and_then(Option::as_mut)
                {
                    b.add_port(ofport, slot, vlan, now_ms);
                    let _ = b.normal.set_port_up(ofport, io.is_some() && shared.is_up());
                }
                self.slots[slot] = Some(Slot {
                    bridge,
                    ofport,
                    name,
                    io,
                    shared,
                    patch_peer: None,
                });
                self.by_port.insert((bridge, ofport), slot);
                // Frames may have queued before registration.
                self.pending.push(slot);
            }
            Command::AttachIo { bridge, ofport, io } => {
                let Some(slot) = self.by_port.get(&(bridge, ofport)).copied() else {
                    return;
                };
                let fd = io.fd();
                if let Err(e) = self.poll.registry().register(
                    &mut SourceFd(&fd),
                    Token(slot),
                    Interest::READABLE,
                ) {
                    log::error!("cannot poll re-attached port: {e}");
                    return;
                }
                if let Some(Some(sl)) = self.slots.get_mut(slot) {
                    if let Some(old) = sl.io.replace(io) {
                        let ofd = old.fd();
                        let _ = self.poll.registry().deregister(&mut SourceFd(&ofd));
                    }
                    sl.shared.set_up();
                    log::info!("port {}: netdev attached", sl.name);
                }
                if let Some(b) = self
                    .bridges
                    .get_mut(bridge as usize)
                    .and_then(Option::as_mut)
                {
                    let _ = b.normal.set_port_up(ofport, true);
                }
                self.pending.push(slot);
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
                if let Some(b) = self
                    .bridges
                    .get_mut(bridge as usize)
                    .and_then(Option::as_mut)
                {
                    b.set_port_vlan(ofport, vlan);
                }
            }
            Command::SetPatchPeer {
                bridge,
                ofport,
                peer,
            } => {
                let peer_slot = peer.and_then(|(b, p)| self.by_port.get(&(b, p)).copied());
                if let Some(s) = self.by_port.get(&(bridge, ofport)).copied() {
                    if let Some(slot) = self.slots[s].as_mut() {
                        slot.patch_peer = peer.zip(peer_slot).map(|((b, p), _)| (b, p));
                        let up = slot.patch_peer.is_some();
                        if let Some(b) = self
                            .bridges
                            .get_mut(bridge as usize)
                            .and_then(Option::as_mut)
                        {
                            let _ = b.normal.set_port_up(ofport, up);
                        }
                    }
                }
            }
            Command::SetBridgeKnobs {
                bridge,
                aging_s,
                table_size,
            } => {
                if let Some(b) = self
                    .bridges
                    .get_mut(bridge as usize)
                    .and_then(Option::as_mut)
                {
                    if let Err(e) = b.normal.set_mac_aging_time(aging_s) {
                        log::error!("bridge {}: {e}", b.name);
                    }
                    if let Err(e) = b.normal.set_mac_table_size(table_size) {
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
                    .get_mut(bridge as usize)
                    .and_then(Option::as_mut)
                    .map(|b| b.normal.fdb_flush())
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
                    let mut ctx = XlateCtx {
                        slots: &mut self.slots,
                        bridges: &mut self.bridges,
                        scratch: &mut self.scratch,
                        seg: &mut self.seg,
                        now_ms,
                    };
                    if let Some(why) =
                        xlate::packet_out(&mut ctx, bridge, &mut buf, in_port, &actions)
                    {
                        log::debug!("packet_out on bridge {bridge}: dropped ({})", why.name());
                    }
                }
                self.pout = buf;
            }
            Command::Trace { bridge, key, reply } => {
                let mut ctx = XlateCtx {
                    slots: &mut self.slots,
                    bridges: &mut self.bridges,
                    scratch: &mut self.scratch,
                    seg: &mut self.seg,
                    now_ms,
                };
                let _ = reply.send(xlate::trace(&mut ctx, bridge, key));
            }
        }
    }

    fn remove_slot(&mut self, s: usize) {
        if let Some(slot) = self.slots.get_mut(s).and_then(Option::take) {
            if let Some(io) = &slot.io {
                let fd = io.fd();
                let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
            }
            self.by_port.remove(&(slot.bridge, slot.ofport));
            if let Some(b) = self
                .bridges
                .get_mut(slot.bridge as usize)
                .and_then(Option::as_mut)
            {
                b.del_port(slot.ofport);
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
        let now_ms = self.now_ms();
        let Some(Some(sl)) = self.slots.get_mut(slot) else {
            return;
        };
        let Some(io) = sl.io.as_mut() else {
            return;
        };
        let shared: Arc<PortShared> = sl.shared.clone();
        let mut gone: Option<String> = None;
        let mut more = false;
        let n = match io.recv_batch(&mut self.rx) {
            Ok(n) => {
                more = n == BATCH;
                n
            }
            Err(PortError::FrameTooBig { len }) => {
                shared.rx_packets.add(1);
                shared.rx_bytes.add(len as u64);
                shared.rx_drop(RxDrop::TooBig);
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
        for b in &self.rx[..n] {
            shared.rx_packets.add(1);
            shared.rx_bytes.add(b.len as u64);
        }
        if let Some(reason) = gone {
            self.port_gone(slot, reason);
        } else if more {
            self.pending.push(slot);
        }
        let bridge = sl_bridge(&self.slots, slot);
        let Some(bridge) = bridge else { return };
        for i in 0..n {
            let mut ctx = XlateCtx {
                slots: &mut self.slots,
                bridges: &mut self.bridges,
                scratch: &mut self.scratch,
                seg: &mut self.seg,
                now_ms,
            };
            xlate::receive(&mut ctx, bridge, slot, &mut self.rx[i]);
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
    fn check_ports(&mut self) {
        let dead: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let io = s.as_ref()?.io.as_ref()?;
                (!io.check_alive()).then_some(i)
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
            if let Some(b) = self
                .bridges
                .get_mut(bridge as usize)
                .and_then(Option::as_mut)
            {
                let _ = b.normal.set_port_up(ofport, false);
            }
            let Some(Some(sl)) = self.slots.get_mut(slot) else {
                return;
            };
            if let Some(io) = sl.io.take() {
                let fd = io.fd();
                let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
            }
        }
        self.pending.retain(|&p| p != slot);
    }
}

fn sl_bridge(slots: &[Option<Slot>], slot: usize) -> Option<u32> {
    slots.get(slot).and_then(Option::as_ref).map(|s| s.bridge)
}

/// Handle used by the control plane to reach a running worker.
pub struct WorkerHandle {
    /// Command queue.
    pub tx: crossbeam_channel::Sender<Command>,
    /// Wakes the worker after a send.
    pub waker: Arc<mio::Waker>,
    /// The thread.
    pub thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle").finish_non_exhaustive()
    }
}

impl WorkerHandle {
    /// Starts a worker thread.
    pub fn spawn(epoch: Instant) -> std::io::Result<WorkerHandle> {
        let poll = Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        let worker = Worker::new(poll, rx, epoch);
        let thread = std::thread::Builder::new()
            .name("rvs-dp0".into())
            .spawn(move || worker.run())?;
        Ok(WorkerHandle {
            tx,
            waker,
            thread: Some(thread),
        })
    }

    /// Queues a command and wakes the worker.
    pub fn send(&self, cmd: Command) {
        if self.tx.send(cmd).is_ok() {
            if let Err(e) = self.waker.wake() {
                log::error!("cannot wake datapath worker: {e}");
            }
        }
    }

    /// Waits (at most `limit`) until the worker has carried out every
    /// command sent so far; false if it did not answer in time.
    pub fn barrier(&self, limit: std::time::Duration) -> bool {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Barrier { reply: tx });
        rx.recv_timeout(limit).is_ok()
    }

    /// Stops the worker and waits for it.
    pub fn shutdown(&mut self) {
        self.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
