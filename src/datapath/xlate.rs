//! Translation: run one packet through a bridge's flow tables and actions.
//!
//! # What?
//! [`receive`] takes a frame read from a port, extracts its key, looks it
//! up table by table and executes the matched flow's actions in order:
//! outputs (to ports, patch peers, FLOOD/ALL/IN_PORT/LOCAL), header
//! rewrites, VLAN push/pop, `resubmit`, `goto_table`, and NORMAL (the
//! learning switch in [`crate::bridge`]). [`trace`] runs the same code on a
//! synthetic key without sending or learning, recording each step in a
//! [`Trace`]; [`BridgeRt::fdb`] lists the MAC table as [`FdbRow`]s. These
//! are the datapath's own types: the control plane converts them to what
//! `rvsctl` prints (`control::convert`), and a `CONTROLLER` action punts a
//! [`ControllerPacket`] that the OpenFlow channel encodes.
//!
//! # Design
//! Rewrites edit the frame in place (headroom absorbs VLAN pushes) and keep
//! the key in step, so later tables match the rewritten packet. An output
//! whose egress VLAN differs from the frame's (NORMAL to an access port,
//! say) is sent from a scratch copy; everything else is sent from the
//! receive buffer. A patch port hands a copy of the frame to the peer
//! bridge's pipeline.
//!
//! # Invariants
//! - Every failure becomes a counted drop on the input port
//!   ([`RxDrop`]) or the output port ([`TxDrop`]); nothing panics.
//! - OpenFlow: output to the input port is skipped unless `IN_PORT`;
//!   `goto_table` only moves forward (the parser rejects the rest).
//!
//! Table lookups go through the worker's exact-match cache
//! ([`super::emc`]); sends to AF_PACKET ports through its transmit queues
//! ([`super::txq`]).
//!
//! # Thread-safety
//! Runs on one worker with that worker's [`XlateCtx`]. Shared with other
//! workers: the published pipeline (read-only), the bridge's NORMAL state
//! (locked only while NORMAL decides; outputs run after the lock is
//! dropped, so a patch port into another bridge never nests locks), the
//! ports' sockets (sends only) and the counters (per-worker blocks).
//!
//! # Limits
//! `resubmit` nests at most [`MAX_RESUBMIT`] deep; patch ports chain at
//! most [`MAX_PATCH_HOPS`] bridges; a bridge entered twice through patch
//! ports (a loop) drops the packet.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use flowtable::extract::{extract_layout_vlans, Layout};
use flowtable::key::{VLAN_PCP_MASK, VLAN_PRESENT, VLAN_VID_MASK};
use flowtable::{offload, rewrite, Action, Field, FlowKey, Mac, PortNo, Vid};

use super::controller::{self, ControllerPacket, OfShared, PuntReason};
use super::counters::{PortShared, RxDrop, TxDrop};
use super::emc::Emc;
use super::pipeline::Pipeline;
use super::txq::TxQueues;
use crate::bridge::{Bridge, EgressVlan, NormalOutcome, NormalTrace, VlanConfig};
use crate::packet::PacketBuf;
use crate::port::{PortError, PortIo};

/// Deepest `resubmit` nesting.
pub const MAX_RESUBMIT: u32 = 64;
/// Most bridges a packet crosses through patch ports.
pub const MAX_PATCH_HOPS: usize = 4;
/// Scratch buffers per worker: one per patch hop plus one for VLAN edits.
pub const SCRATCH: usize = MAX_PATCH_HOPS + 1;
/// Index of the scratch buffer used for egress VLAN edits.
const EDIT: usize = MAX_PATCH_HOPS;

/// A port as a worker holds it (every worker has a `Slot` for every port,
/// at the same index).
pub struct Slot {
    /// Bridge id.
    pub bridge: u32,
    /// OpenFlow port number.
    pub ofport: PortNo,
    /// Port name.
    pub name: String,
    /// The port's I/O; `None` for patch ports and ports that are down.
    pub io: Option<Arc<PortIo>>,
    /// Index of the worker that polls (receives from) the port.
    pub owner: usize,
    /// Counters and state.
    pub shared: Arc<PortShared>,
    /// Peer of a patch port: (bridge id, ofport).
    pub patch_peer: Option<(u32, PortNo)>,
    /// Ingress policer (used by the owner only) and egress policer
    /// (shared by all workers).
    pub policers: crate::qos::Policers,
}

/// A bridge as a worker holds it. Cloning gives another worker its own
/// view that shares the pipeline, the MAC-learning state and the
/// controller state.
#[derive(Clone)]
pub struct BridgeRt {
    /// Bridge name.
    pub name: String,
    /// Published flow tables, loaded once per packet run: `ArcSwap::load`
    /// takes a per-thread debt slot, no reference-count write on the
    /// shared `Arc`, and holds nothing between packets (the control
    /// plane reclaims the old copy once no packet runs on it).
    pub pipeline: Arc<ArcSwap<Pipeline>>,
    /// VLAN rules and MAC learning, shared by all workers; locked only
    /// while NORMAL decides (and by housekeeping and commands).
    pub normal: Arc<Mutex<Bridge>>,
    /// Ports: (ofport, slot), sorted by ofport.
    ports: Vec<(PortNo, usize)>,
    /// Reused NORMAL decision.
    outcome: NormalOutcome,
    /// OpenFlow controller state (fail mode, PACKET_IN sink).
    pub of: Arc<OfShared>,
    /// VLAN headers parsed into the key of a frame entering the bridge
    /// (`set bridge BR vlan-limit=N`; 0: all rvs parses, two): tags
    /// beyond it are payload, as OVS's `other_config:vlan-limit`.
    pub vlan_limit: u8,
    /// The bridge's OpenFlow meters, published by the control plane and
    /// loaded when a `meter:N` action runs (see [`crate::qos::meter`]).
    pub meters: Arc<ArcSwap<crate::qos::meter::MeterSet>>,
}

/// `vlan-limit` of a new bridge: OVS's default, the outer tag only.
pub const DEFAULT_VLAN_LIMIT: u8 = 1;

impl BridgeRt {
    /// A bridge with no ports.
    pub fn new(name: String, pipeline: Arc<ArcSwap<Pipeline>>, normal: Bridge) -> BridgeRt {
        BridgeRt {
            name,
            pipeline,
            normal: Arc::new(Mutex::new(normal)),
            ports: Vec::new(),
            outcome: NormalOutcome::default(),
            of: Arc::new(OfShared::default()),
            vlan_limit: DEFAULT_VLAN_LIMIT,
            meters: Arc::default(),
        }
    }

    /// The same bridge running the meters published in `meters`.
    pub fn with_meters(mut self, meters: Arc<ArcSwap<crate::qos::meter::MeterSet>>) -> BridgeRt {
        self.meters = meters;
        self
    }

    /// The same bridge sharing controller state `of`.
    pub fn with_of(mut self, of: Arc<OfShared>) -> BridgeRt {
        self.of = of;
        self
    }

    /// The shared NORMAL state, locked.
    #[inline]
    pub fn normal(&self) -> MutexGuard<'_, Bridge> {
        // A poisoned lock means a panic elsewhere; the table stays usable.
        self.normal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a port in this worker's view; `primary` (worker 0) also
    /// adds it to the shared NORMAL state.
    pub fn add_port(
        &mut self,
        ofport: PortNo,
        slot: usize,
        vlan: VlanConfig,
        split_horizon: bool,
        primary: bool,
    ) {
        self.ports.retain(|(p, _)| *p != ofport);
        let at = self.ports.partition_point(|(p, _)| *p < ofport);
        self.ports.insert(at, (ofport, slot));
        if primary {
            let mut n = self.normal();
            let _ = n.remove_port(ofport);
            if let Err(e) = n.add_port(ofport, vlan) {
                log::error!("bridge {}: port {ofport}: {e}", self.name);
            }
            let _ = n.set_port_split_horizon(ofport, split_horizon);
        }
    }

    /// Forgets a port; `primary` also drops it (and its learned MACs) from
    /// the shared NORMAL state.
    pub fn del_port(&mut self, ofport: PortNo, primary: bool) {
        self.ports.retain(|(p, _)| *p != ofport);
        if primary {
            let _ = self.normal().remove_port(ofport);
        }
    }

    /// Changes a port's VLAN rules.
    pub fn set_port_split_horizon(&self, ofport: PortNo, on: bool) {
        if let Err(e) = self.normal().set_port_split_horizon(ofport, on) {
            log::error!("bridge {}: port {ofport}: {e}", self.name);
        }
    }

    /// Changes a port's VLAN configuration in the shared NORMAL state.
    pub fn set_port_vlan(&self, ofport: PortNo, vlan: VlanConfig) {
        if let Err(e) = self.normal().set_port_vlan(ofport, vlan) {
            log::error!("bridge {}: port {ofport}: {e}", self.name);
        }
    }

    /// Slot of `ofport`.
    #[inline]
    fn slot_of(&self, ofport: PortNo) -> Option<usize> {
        self.ports
            .binary_search_by_key(&ofport, |(p, _)| *p)
            .ok()
            .map(|i| self.ports[i].1)
    }

    /// The MAC table for `fdb-show`.
    pub fn fdb(&self, slots: &[Option<Slot>], now_ms: u64) -> Vec<FdbRow> {
        self.normal()
            .fdb_show(now_ms)
            .into_iter()
            .map(|e| FdbRow {
                port: e.port,
                port_name: self
                    .slot_of(e.port)
                    .and_then(|s| slots.get(s).and_then(Option::as_ref))
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
                vlan: e.vlan,
                mac: e.mac,
                age_s: e.age_s,
            })
            .collect()
    }
}

/// One MAC table entry with the name of its port (`fdb-show`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdbRow {
    /// Port the MAC was last seen on.
    pub port: PortNo,
    /// That port's name (empty if it is gone).
    pub port_name: String,
    /// VLAN it was learned in (0: the untagged VLAN of trunk ports).
    pub vlan: Vid,
    /// The learned MAC.
    pub mac: Mac,
    /// Whole seconds since it was last seen.
    pub age_s: u64,
}

/// What [`trace`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// Steps in order: table lookups, actions, NORMAL decisions.
    pub steps: Vec<TraceStep>,
    /// Where the packet would leave.
    pub outputs: Vec<TraceOutput>,
    /// Why it is dropped; set exactly when `outputs` is empty.
    pub drop_reason: Option<RxDrop>,
}

/// One step of a [`Trace`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceStep {
    /// Table looked up, if this step is a lookup.
    pub table: Option<u8>,
    /// The matched flow in `--no-stats` form (`None` on a miss or for an
    /// action step).
    pub rule: Option<String>,
    /// What happened, for people (one line).
    pub detail: String,
    /// Nesting depth (resubmits plus patch-port hops).
    pub depth: u32,
}

/// One output of a [`Trace`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceOutput {
    /// OpenFlow port number.
    pub port: PortNo,
    /// Port name.
    pub name: String,
    /// Egress VLAN id, `None` when sent untagged.
    pub vlan: Option<u16>,
}

/// What translation may touch besides the packet.
pub struct XlateCtx<'a> {
    /// Ports by slot.
    pub slots: &'a mut [Option<Slot>],
    /// Bridges by id (taken out while a bridge runs).
    pub bridges: &'a mut [Option<BridgeRt>],
    /// Scratch buffers (`SCRATCH` of them).
    pub scratch: &'a mut [PacketBuf],
    /// Scratch bytes for software segmentation (`packet::BUF_SIZE`).
    pub seg: &'a mut [u8],
    /// Current time, ms.
    pub now_ms: u64,
    /// Current time, ns (read once per batch; the policers' clock).
    pub now_ns: u64,
    /// Index of the running worker (selects its counter blocks).
    pub w: usize,
    /// The worker's exact-match cache in front of the classifier.
    pub emc: &'a mut Emc,
    /// The worker's transmit queues (batched sends).
    pub tx: &'a mut TxQueues,
}

/// Forwards one frame received on `in_slot` of `bridge`.
pub fn receive(ctx: &mut XlateCtx<'_>, bridge: u32, in_slot: usize, buf: &mut PacketBuf) {
    let Some(Some(slot)) = ctx.slots.get(in_slot) else {
        return;
    };
    let in_port = slot.ofport;
    let shared = slot.shared.clone();
    let w = ctx.w;
    let limit = vlan_limit(ctx, bridge);
    let (mut key, mut layout) = extract_layout_vlans(buf.frame(), in_port, limit);
    layout.l4_csum_partial = buf.vnet.needs_csum();
    if layout.malformed.is_some() {
        shared.w(w).rx_drop(RxDrop::Malformed);
        return;
    }
    let t = buf.tunnel;
    key.tun_id = t.id;
    key.tun_src = t.src;
    key.tun_dst = t.dst;
    key.tun_flags = t.flags;
    let verdict = run_bridge(ctx, bridge, Some(buf), key, layout, 0, None, None);
    if let Some(why) = verdict {
        shared.w(w).rx_drop(why);
    }
}

/// The slot of OpenFlow port `ofport` of bridge id `bridge`, if both
/// exist (every worker numbers slots alike).
#[inline]
pub fn slot_of(ctx: &XlateCtx<'_>, bridge: u32, ofport: PortNo) -> Option<usize> {
    ctx.bridges
        .get(bridge as usize)
        .and_then(Option::as_ref)
        .and_then(|b| b.slot_of(ofport))
}

/// Runs an OpenFlow PACKET_OUT: `actions` on the frame in `buf` as if it
/// arrived on `in_port`; `Output(TABLE)` runs the flow tables from table 0.
/// Returns the drop reason when nothing was output.
pub fn packet_out(
    ctx: &mut XlateCtx<'_>,
    bridge: u32,
    buf: &mut PacketBuf,
    in_port: PortNo,
    actions: &[Action],
) -> Option<RxDrop> {
    let limit = vlan_limit(ctx, bridge);
    let (key, mut layout) = extract_layout_vlans(buf.frame(), in_port, limit);
    layout.l4_csum_partial = buf.vnet.needs_csum();
    if layout.malformed.is_some() {
        return Some(RxDrop::Malformed);
    }
    run_bridge(ctx, bridge, Some(buf), key, layout, 0, None, Some(actions))
}

/// The `vlan-limit` of `bridge` (a bridge that is gone or running drops
/// the packet anyway).
#[inline]
fn vlan_limit(ctx: &XlateCtx<'_>, bridge: u32) -> u8 {
    ctx.bridges
        .get(bridge as usize)
        .and_then(Option::as_ref)
        .map_or(DEFAULT_VLAN_LIMIT, |b| b.vlan_limit)
}

/// Traces a synthetic packet with `key` through `bridge`.
pub fn trace(ctx: &mut XlateCtx<'_>, bridge: u32, key: FlowKey) -> Trace {
    let mut t = Trace::default();
    // A frame "from" a tunnel port: say what decapsulation gave it.
    let slot = slot_of(ctx, bridge, PortNo(key.in_port)).and_then(|i| ctx.slots.get(i)?.as_ref());
    if let Some(slot) = slot {
        if let Some(crate::port::PortIo::Tunnel(p)) = slot.io.as_deref() {
            let kind = p.config().kind;
            let what = if kind.is_udp() { "VNI" } else { "key" };
            let ip = |a: u32| std::net::Ipv4Addr::from(a).to_string();
            t.steps.push(TraceStep {
                table: None,
                rule: None,
                detail: format!(
                    "{}: decapsulated from {}: outer {} -> {}, {what} {} (tun_src, tun_dst, tun_id in the key)",
                    slot.name,
                    kind.label(),
                    ip(key.tun_src),
                    ip(key.tun_dst),
                    key.tun_id
                ),
                depth: 0,
            });
        }
    }
    let verdict = run_bridge(ctx, bridge, None, key, Layout::NONE, 0, Some(&mut t), None);
    if t.outputs.is_empty() {
        t.drop_reason = Some(verdict.unwrap_or(RxDrop::Action));
    }
    t
}

/// Runs `bridge`'s pipeline from table 0, or `actions` when given (a
/// PACKET_OUT, where `Output(TABLE)` runs the pipeline); returns the drop
/// reason if nothing was output.
#[allow(clippy::too_many_arguments)]
fn run_bridge(
    ctx: &mut XlateCtx<'_>,
    bridge: u32,
    buf: Option<&mut PacketBuf>,
    key: FlowKey,
    layout: Layout,
    hops: usize,
    trace: Option<&mut Trace>,
    actions: Option<&[Action]>,
) -> Option<RxDrop> {
    let Some(mut rt) = ctx.bridges.get_mut(bridge as usize).and_then(Option::take) else {
        return Some(RxDrop::ResubmitLimit);
    };
    let mut outcome = std::mem::take(&mut rt.outcome);
    let guard = rt.pipeline.load();
    let pipe: &Pipeline = &guard;
    let mut x = Exec {
        ctx,
        rt: &rt,
        outcome: &mut outcome,
        pipe,
        buf,
        key,
        layout,
        hops,
        n_out: 0,
        drop: None,
        abort: false,
        trace,
        depth: 0,
        bridge,
        cookie: u64::MAX,
    };
    match actions {
        None => x.run_tables(0),
        Some(actions) => {
            for a in actions {
                if x.abort {
                    break;
                }
                match a {
                    Action::Output(p) if *p == PortNo::TABLE => x.run_tables(0),
                    Action::GotoTable(_) => {}
                    a => x.action(a, 0),
                }
            }
        }
    }
    let verdict = (x.n_out == 0).then(|| x.drop.unwrap_or(RxDrop::Action));
    drop(guard);
    rt.outcome = outcome;
    if let Some(b) = ctx.bridges.get_mut(bridge as usize) {
        *b = Some(rt);
    }
    verdict
}

/// Execution state of one packet in one bridge.
struct Exec<'a, 'c, 'b> {
    ctx: &'a mut XlateCtx<'c>,
    rt: &'a BridgeRt,
    /// The bridge's reused NORMAL decision (taken out of `rt`).
    outcome: &'a mut NormalOutcome,
    pipe: &'a Pipeline,
    /// The frame; `None` when tracing.
    buf: Option<&'b mut PacketBuf>,
    key: FlowKey,
    layout: Layout,
    hops: usize,
    /// Outputs performed.
    n_out: u32,
    /// Last reason to drop, if nothing gets output.
    drop: Option<RxDrop>,
    /// Stop executing actions (dec_ttl expiry, limits).
    abort: bool,
    trace: Option<&'a mut Trace>,
    /// resubmit depth.
    depth: u32,
    /// Bridge id.
    bridge: u32,
    /// Cookie of the flow whose actions run (all ones: none).
    cookie: u64,
}

impl Exec<'_, '_, '_> {
    fn step(&mut self, table: Option<u8>, rule: Option<String>, detail: String) {
        let depth = self.depth + self.hops as u32;
        if let Some(t) = self.trace.as_deref_mut() {
            t.steps.push(TraceStep {
                table,
                rule,
                detail,
                depth,
            });
        }
    }

    fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// Looks up `table` and runs the matched flow, following goto_table.
    fn run_tables(&mut self, mut table: u8) {
        loop {
            if self.abort {
                return;
            }
            let pipe = self.pipe;
            let hit = self.ctx.emc.lookup(pipe, table, &self.key);
            pipe.stats.count(self.ctx.w, table, hit.is_some());
            let Some(entry) = hit else {
                if self.rt.of.fail_open() {
                    // Fail mode standalone, no controller connected: a
                    // miss behaves as priority=0,actions=NORMAL.
                    if self.tracing() {
                        self.step(
                            Some(table),
                            None,
                            "no flow matched; fail mode standalone without a connected controller: NORMAL".into(),
                        );
                    }
                    self.normal();
                    return;
                }
                self.drop = Some(RxDrop::NoMatch);
                if self.tracing() {
                    self.step(Some(table), None, "no flow matched: drop".into());
                }
                return;
            };
            if let Some(b) = self.buf.as_deref() {
                entry.data.hit(self.ctx.w, b.len, self.ctx.now_ms);
            }
            if self.tracing() {
                let text = super::pipeline::flow_of(entry).to_string();
                self.step(Some(table), Some(text), String::new());
            }
            let mut goto = None;
            self.cookie = entry.cookie;
            if entry.data.actions.is_empty() {
                self.drop = Some(RxDrop::Action);
            }
            for a in &entry.data.actions {
                if self.abort {
                    return;
                }
                match a {
                    Action::GotoTable(t) => goto = Some(t.0),
                    a => self.action(a, table),
                }
            }
            match goto {
                Some(t) if t > table => table = t,
                _ => return,
            }
        }
    }

    fn action(&mut self, a: &Action, table: u8) {
        let in_port = PortNo(self.key.in_port);
        match a {
            Action::Output(p) => {
                if *p == in_port {
                    if self.tracing() {
                        self.step(
                            None,
                            None,
                            format!("output:{p}: skipped, it is the input port"),
                        );
                    }
                } else {
                    self.output(*p, None);
                }
            }
            Action::Normal => self.normal(),
            Action::Flood | Action::All => {
                let ports: smallvec::SmallVec<[PortNo; 16]> = self
                    .rt
                    .ports
                    .iter()
                    .map(|(p, _)| *p)
                    .filter(|p| *p != in_port)
                    .collect();
                for p in ports {
                    self.output(p, None);
                }
            }
            Action::InPort => self.output(in_port, None),
            Action::Local => {
                if in_port != PortNo::LOCAL {
                    self.output(PortNo::LOCAL, None);
                }
            }
            Action::Controller { max_len } => self.controller(*max_len, table),
            Action::SetVlanVid(vid) => self.set_vlan(Some(*vid), None),
            Action::SetVlanPcp(pcp) => self.set_vlan(None, Some(*pcp)),
            Action::StripVlan => self.pop_vlan(),
            Action::PushVlan(tpid) => self.push_vlan(*tpid),
            Action::SetField { field, value } => self.set_field(*field, *value),
            Action::DecTtl => self.dec_ttl(),
            Action::Resubmit { port, table: t } => {
                self.resubmit(*port, t.map(|t| t.0).unwrap_or(table))
            }
            Action::Meter(id) => self.meter(*id),
            Action::GotoTable(_) | Action::Note(_) => {}
        }
    }

    /// `meter:N`: runs the frame through the bridge's meter `id` (as the
    /// segments it becomes, for a GSO frame); a drop band ends the
    /// packet's actions, a dscp_remark band raises its IP drop
    /// precedence. A meter that is gone (deleted while the flow was
    /// cached) passes the frame: its flows are being deleted with it.
    fn meter(&mut self, id: u32) {
        use crate::qos::meter::{self, Verdict};
        let set = self.rt.meters.load();
        let Some(m) = set.get(id) else {
            if self.tracing() {
                self.step(None, None, format!("meter:{id}: no such meter, passed"));
            }
            return;
        };
        let Some(b) = self.buf.as_deref() else {
            if self.tracing() {
                self.step(
                    None,
                    None,
                    format!("meter:{id}: not applied to a traced packet"),
                );
            }
            return;
        };
        let (packets, bytes) = meter_units(b);
        match m.apply(self.ctx.w, meter::now_ns(), packets, bytes) {
            Verdict::Pass => {}
            Verdict::Drop => {
                self.drop = Some(RxDrop::Meter);
                self.abort = true;
            }
            Verdict::Remark(levels) => {
                if matches!(self.key.dl_type, 0x0800 | 0x86dd) {
                    let dscp = self.key.nw_tos >> 2;
                    let new = meter::raise_drop_precedence(dscp, levels);
                    if new != dscp {
                        self.set_field(Field::NwTos, u128::from(new) << 2);
                    }
                }
            }
        }
    }

    /// CONTROLLER: punts the frame as it is now (reason ACTION, the
    /// flow's cookie and table) to the connected controllers.
    fn controller(&mut self, max_len: u16, table: u8) {
        let connected = self.rt.of.n_connected() > 0;
        if self.tracing() {
            let d = if connected {
                "CONTROLLER: sent to the controller"
            } else {
                "CONTROLLER: no controller connected, dropped"
            };
            self.step(None, None, d.into());
        }
        if !connected {
            self.drop = Some(RxDrop::NoController);
            return;
        }
        let Some(b) = self.buf.as_deref() else {
            self.n_out += 1;
            return;
        };
        let (of, bridge, in_port, cookie) = (
            &self.rt.of,
            self.bridge,
            PortNo(self.key.in_port),
            self.cookie,
        );
        let (mut sent, mut refused) = (0usize, 0usize);
        let r = controller::wire_frames(b.frame(), &b.vnet, max_len, |frame, total_len| {
            let p = ControllerPacket {
                bridge,
                in_port,
                reason: PuntReason::Action,
                table,
                cookie,
                frame,
                total_len,
            };
            if of.send_packet_in(p) {
                sent += 1;
            } else {
                refused += 1;
            }
        });
        if r.is_err() {
            self.drop = Some(RxDrop::Malformed);
        } else if sent > 0 {
            self.n_out += 1;
        } else if refused > 0 {
            self.drop = Some(RxDrop::NoController);
        }
    }

    fn resubmit(&mut self, port: Option<PortNo>, table: u8) {
        if self.depth >= MAX_RESUBMIT {
            self.drop = Some(RxDrop::ResubmitLimit);
            self.abort = true;
            self.step(None, None, "resubmit depth limit reached: drop".into());
            return;
        }
        let saved = self.key.in_port;
        if let Some(p) = port {
            self.key.in_port = p.0;
        }
        self.step(None, None, format!("resubmit(,{table})"));
        self.depth += 1;
        self.run_tables(table);
        self.depth -= 1;
        self.key.in_port = saved;
    }

    fn normal(&mut self) {
        let now = self.ctx.now_ms;
        let key = self.key;
        if self.tracing() {
            let mut nt = NormalTrace::default();
            self.rt
                .normal()
                .trace_normal(&key, now, self.outcome, &mut nt);
            self.step(
                None,
                None,
                format!("NORMAL: {}", nt.to_string().trim_end().replace('\n', "; ")),
            );
        } else {
            // The lock covers only the decision (and learning); outputs
            // run after it is released.
            self.rt.normal().normal(&key, now, self.outcome);
        }
        if let Some(d) = self.outcome.drop_reason {
            self.drop = Some(match d {
                crate::bridge::NormalDrop::VlanNotAllowed => RxDrop::VlanNotAllowed,
                crate::bridge::NormalDrop::ReservedMulticast => RxDrop::Reserved,
                crate::bridge::NormalDrop::LearnedOnInputPort => RxDrop::LearnedOnInput,
                _ => RxDrop::NoOutput,
            });
            return;
        }
        for i in 0..self.outcome.outputs.len() {
            let o = self.outcome.outputs[i];
            self.output_normal(o.port, o.vlan, o.pop_inner);
        }
    }

    /// Sends the current frame to `port` as it is (an OpenFlow output).
    fn output(&mut self, port: PortNo, egress: Option<EgressVlan>) {
        self.output_edit(port, egress, false);
    }

    /// Sends the current frame to `port` as NORMAL decided: retagged for
    /// `egress`, without its second tag when `pop_inner`.
    fn output_normal(&mut self, port: PortNo, egress: EgressVlan, pop_inner: bool) {
        self.output_edit(port, Some(egress), pop_inner);
    }

    /// Sends the current frame to `port`, first retagging it for `egress`
    /// (and removing its second tag if `pop_inner` and the key has one).
    fn output_edit(&mut self, port: PortNo, egress: Option<EgressVlan>, pop_inner: bool) {
        let Some(slot_i) = self.rt.slot_of(port) else {
            self.step(None, None, format!("output:{port}: no such port, skipped"));
            return;
        };
        let cur_tci = self.key.vlan_tci;
        let tagged = cur_tci & VLAN_PRESENT != 0;
        let pop_inner = pop_inner && tagged && self.key.inner_vlan_tci & VLAN_PRESENT != 0;
        // The VLAN the frame will carry there: None = untagged.
        let want: Option<u16> = match egress {
            None => tagged.then_some(cur_tci & VLAN_VID_MASK),
            Some(EgressVlan::Untagged) => None,
            Some(EgressVlan::Tagged(v)) => Some(v.0),
        };
        let needs_edit = pop_inner
            || match (want, tagged) {
                (None, false) => false,
                (None, true) => true,
                (Some(_), false) => true,
                (Some(v), true) => v != cur_tci & VLAN_VID_MASK,
            };
        let Some(slot) = self.ctx.slots.get(slot_i).and_then(Option::as_ref) else {
            return;
        };
        let peer = slot.patch_peer;
        self.n_out += 1;
        if let Some(t) = self.trace.as_deref_mut() {
            t.outputs.push(TraceOutput {
                port,
                name: slot.name.clone(),
                vlan: want,
            });
            if let Some(crate::port::PortIo::Tunnel(v)) = slot.io.as_deref() {
                let cfg = v.config();
                let detail = match cfg.destination(self.key.tun_dst, self.key.tun_id) {
                    Some((dst, vni)) if cfg.kind.is_udp() => format!(
                        "{}: encapsulated in {} to {dst}:{} with VNI {vni}",
                        slot.name,
                        cfg.kind.label(),
                        cfg.dst_port
                    ),
                    Some((dst, key)) if cfg.key_field => {
                        format!("{}: encapsulated in GRE to {dst} with key {key}", slot.name)
                    }
                    Some((dst, _)) => {
                        format!("{}: encapsulated in GRE to {dst} without a key", slot.name)
                    }
                    None => format!(
                        "{}: remote_ip=flow and no tun_dst: dropped (tunnel_no_dst)",
                        slot.name
                    ),
                };
                let depth = self.hops as u32;
                t.steps.push(TraceStep {
                    table: None,
                    rule: None,
                    detail,
                    depth,
                });
            }
        }
        if let Some((pb, pport)) = peer {
            self.patch(slot_i, pb, pport, want, needs_edit, pop_inner);
            return;
        }
        let Some(buf) = self.buf.as_deref() else {
            return;
        };
        let pkt: &PacketBuf = if needs_edit {
            let Some(scratch) = self.ctx.scratch.get_mut(EDIT) else {
                return;
            };
            scratch.copy_from(buf);
            if !retag(scratch, want, tagged, cur_tci & VLAN_PCP_MASK, pop_inner) {
                if let Some(Some(s)) = self.ctx.slots.get(slot_i) {
                    s.shared.w(self.ctx.w).tx_drop(TxDrop::VlanEdit);
                }
                return;
            }
            scratch
        } else {
            buf
        };
        let tun = (self.key.tun_src, self.key.tun_dst, self.key.tun_id);
        send(
            self.ctx.slots,
            self.ctx.tx,
            self.ctx.seg,
            (self.ctx.w, self.ctx.now_ns),
            (slot_i, tun),
            pkt,
        );
    }

    /// Hands a copy of the frame to the peer of a patch port.
    fn patch(
        &mut self,
        slot_i: usize,
        pb: u32,
        pport: PortNo,
        want: Option<u16>,
        edit: bool,
        pop_inner: bool,
    ) {
        let hop = self.hops;
        if hop + 1 >= MAX_PATCH_HOPS {
            self.drop = Some(RxDrop::ResubmitLimit);
            return;
        }
        if let Some(t) = self.trace.as_deref_mut() {
            t.steps.push(TraceStep {
                table: None,
                rule: None,
                detail: format!("patch port: continuing in bridge id {pb} as in_port={pport}"),
                depth: (hop + 1) as u32,
            });
        }
        // The peer port's slot: its rx side counts what crosses (and drops).
        let peer_slot = self
            .ctx
            .bridges
            .get(pb as usize)
            .and_then(Option::as_ref)
            .and_then(|b| b.slot_of(pport));
        // Swap the hop's scratch buffer out so the peer can borrow ctx.
        let mut tmp = match self.ctx.scratch.get_mut(hop) {
            Some(s) => std::mem::replace(s, PacketBuf::empty()),
            None => return,
        };
        let (key, layout, buf) = match self.buf.as_deref() {
            Some(b) => {
                tmp.copy_from(b);
                let tagged = self.key.vlan_tci & VLAN_PRESENT != 0;
                let pcp = self.key.vlan_tci & VLAN_PCP_MASK;
                if edit && !retag(&mut tmp, want, tagged, pcp, pop_inner) {
                    if let Some(Some(s)) = self.ctx.slots.get(slot_i) {
                        s.shared.w(self.ctx.w).tx_drop(TxDrop::VlanEdit);
                    }
                    restore(self.ctx.scratch, hop, tmp);
                    return;
                }
                // The frame leaves through this patch port and enters the
                // peer bridge through its peer, as it now is (retagged).
                // Only real frames count: a trace has no buffer.
                let len = tmp.len as u64;
                if let Some(Some(s)) = self.ctx.slots.get(slot_i) {
                    s.shared.w(self.ctx.w).tx_packets.add(1);
                    s.shared.w(self.ctx.w).tx_bytes.add(len);
                }
                if let Some(Some(s)) = peer_slot.and_then(|i| self.ctx.slots.get(i)) {
                    s.shared.w(self.ctx.w).rx_packets.add(1);
                    s.shared.w(self.ctx.w).rx_bytes.add(len);
                }
                let limit = vlan_limit(self.ctx, pb);
                let (mut k, mut l) = extract_layout_vlans(tmp.frame(), pport, limit);
                l.l4_csum_partial = tmp.vnet.needs_csum();
                // Tunnel metadata crosses patch ports, as in OVS.
                k.tun_id = self.key.tun_id;
                k.tun_src = self.key.tun_src;
                k.tun_dst = self.key.tun_dst;
                k.tun_flags = self.key.tun_flags;
                (k, l, Some(&mut tmp))
            }
            None => {
                let mut k = self.key;
                k.in_port = pport.0;
                let pcp = self.key.vlan_tci & VLAN_PCP_MASK;
                let inner = if pop_inner {
                    0
                } else {
                    self.key.inner_vlan_tci
                };
                (k.vlan_tci, k.inner_vlan_tci) = match want {
                    Some(v) => (v | VLAN_PRESENT | pcp, inner),
                    // Popping the outer tag uncovers the inner one, if any.
                    None => (inner, 0),
                };
                (k, Layout::NONE, None)
            }
        };
        let trace = self.trace.as_deref_mut();
        // Patch drops are counted on the peer port's rx side.
        let verdict = run_bridge(self.ctx, pb, buf, key, layout, hop + 1, trace, None);
        if let Some(why) = verdict {
            if let Some(Some(s)) = peer_slot.and_then(|i| self.ctx.slots.get(i)) {
                s.shared.w(self.ctx.w).rx_drop(why);
            }
        }
        restore(self.ctx.scratch, hop, tmp);
    }

    fn set_vlan(&mut self, vid: Option<u16>, pcp: Option<u8>) {
        let tagged = self.key.vlan_tci & VLAN_PRESENT != 0;
        if !tagged {
            self.push_vlan(0x8100);
        }
        let mut tci = self.key.vlan_tci;
        if let Some(v) = vid {
            tci = (tci & !VLAN_VID_MASK) | (v & VLAN_VID_MASK);
            if let Some(b) = self.buf.as_deref_mut() {
                rewrite::set_vlan_vid(b.frame_mut(), v);
            }
        }
        if let Some(p) = pcp {
            tci = (tci & !VLAN_PCP_MASK) | ((u16::from(p) << 13) & VLAN_PCP_MASK);
            if let Some(b) = self.buf.as_deref_mut() {
                rewrite::set_vlan_pcp(b.frame_mut(), p);
            }
        }
        self.key.vlan_tci = tci | VLAN_PRESENT;
    }

    fn push_vlan(&mut self, tpid: u16) {
        // OpenFlow 1.3: the new tag copies the VID/PCP of an existing one.
        let tci = self.key.vlan_tci;
        if let Some(b) = self.buf.as_deref_mut() {
            let (data, start, len) = b.raw_mut();
            if !rewrite::push_vlan(data, start, len, tpid, tci & !VLAN_PRESENT) {
                self.abort = true;
                self.drop = Some(RxDrop::Action);
                return;
            }
            offload::adjust_for_vlan(&mut b.vnet, 4);
            self.layout = self.layout.pushed_vlan();
        }
        self.key.inner_vlan_tci = tci;
        self.key.vlan_tci = tci | VLAN_PRESENT;
    }

    fn pop_vlan(&mut self) {
        if self.key.vlan_tci & VLAN_PRESENT == 0 {
            return;
        }
        if let Some(b) = self.buf.as_deref_mut() {
            let (data, start, len) = b.raw_mut();
            if rewrite::pop_vlan(data, start, len) {
                offload::adjust_for_vlan(&mut b.vnet, -4);
                self.layout = self.layout.popped_vlan();
            }
        }
        self.key.vlan_tci = self.key.inner_vlan_tci;
        self.key.inner_vlan_tci = 0;
    }

    fn dec_ttl(&mut self) {
        let ok = match self.buf.as_deref_mut() {
            Some(b) => rewrite::dec_ttl(b.frame_mut(), &self.layout),
            None => self.key.nw_ttl > 1,
        };
        if ok {
            self.key.nw_ttl = self.key.nw_ttl.saturating_sub(1);
        } else {
            self.drop = Some(RxDrop::TtlExpired);
            self.abort = true;
            self.step(None, None, "dec_ttl: TTL expired, dropping".into());
        }
    }

    fn set_field(&mut self, field: Field, value: u128) {
        match field {
            // VLAN fields may push a tag first; see set_vlan.
            Field::DlVlan | Field::VlanVid => {
                self.set_vlan(Some(value as u16 & VLAN_VID_MASK), None)
            }
            Field::DlVlanPcp | Field::VlanPcp => self.set_vlan(None, Some(value as u8)),
            Field::VlanTci => {
                let v = value as u16;
                if v & VLAN_PRESENT == 0 {
                    self.pop_vlan();
                } else {
                    self.set_vlan(Some(v & VLAN_VID_MASK), Some((v >> 13) as u8));
                }
            }
            _ => {
                // Key first, so later tables match the rewritten packet;
                // the frame edit fixes checksums as it goes.
                field.set(&mut self.key, value);
                if let Some(b) = self.buf.as_deref_mut() {
                    rewrite::set_field(b.frame_mut(), &self.layout, field, value);
                }
            }
        }
    }
}

/// The frames and bytes a meter counts for `b`: the L2 frame without FCS,
/// and a GSO super-frame as the segments it becomes (headers repeated),
/// as the port policers count ([`crate::qos::frame_cost`]).
fn meter_units(b: &PacketBuf) -> (u64, u64) {
    crate::qos::frame_cost(b.frame(), &b.vnet)
}

fn restore(scratch: &mut [PacketBuf], i: usize, buf: PacketBuf) {
    if let Some(s) = scratch.get_mut(i) {
        *s = buf;
    }
}

/// Gives `buf` the outer tag `want` (None = untagged), after removing its
/// outer and second tag when `pop_inner`; false on failure.
fn retag(buf: &mut PacketBuf, want: Option<u16>, tagged: bool, pcp: u16, pop_inner: bool) -> bool {
    if pop_inner {
        let (d, s, l) = buf.raw_mut();
        let popped = rewrite::pop_vlan(d, s, l) && rewrite::pop_vlan(d, s, l);
        if !(popped && offload::adjust_for_vlan(&mut buf.vnet, -8)) {
            return false;
        }
        return retag(buf, want, false, pcp, false);
    }
    match (want, tagged) {
        (None, true) => {
            let (d, s, l) = buf.raw_mut();
            rewrite::pop_vlan(d, s, l) && offload::adjust_for_vlan(&mut buf.vnet, -4)
        }
        (Some(v), false) => {
            let (d, s, l) = buf.raw_mut();
            rewrite::push_vlan(d, s, l, 0x8100, v | pcp)
                && offload::adjust_for_vlan(&mut buf.vnet, 4)
        }
        (Some(v), true) => rewrite::set_vlan_vid(buf.frame_mut(), v),
        (None, false) => true,
    }
}

/// Sends `pkt` on `slot`, counting the outcome there; `tun` is the flow
/// key's (`tun_src`, `tun_dst`, `tun_id`), which a flow-based tunnel port
/// sends by.
///
/// Offloaded frames (GSO, partial checksum) go out with their virtio-net
/// header to ports that take one; for a port that does not, a GSO frame is
/// segmented (and each segment checksummed) in software into `seg`, and a
/// partial checksum is completed on a copy in `seg`.
#[inline]
fn send(
    slots: &[Option<Slot>],
    tx: &mut TxQueues,
    seg: &mut [u8],
    (w, now_ns): (usize, u64),
    (slot, tun): (usize, (u32, u32, u64)),
    pkt: &PacketBuf,
) {
    let Some(Some(s)) = slots.get(slot) else {
        return;
    };
    let Some(io) = s.io.as_deref() else {
        s.shared.w(w).tx_drop(TxDrop::PortDown);
        return;
    };
    let frame = pkt.frame();
    let hdr = &pkt.vnet;
    // The egress policer sees the frame as it leaves (after VLAN edits),
    // a super-frame as its segments.
    if let Some(e) = s.policers.egress.as_deref() {
        if !e.admit(now_ns, frame, hdr) {
            s.shared.w(w).tx_drop(TxDrop::Policed);
            return;
        }
    }
    if tx.takes(slot, hdr, frame.len()) {
        tx.push(slots, slot, hdr, frame, io.vnet(), w);
        return;
    }
    // A super-frame for a batching port without offloads: its segments
    // join the queue as they are cut.
    if hdr.is_gso() && !io.vnet() && tx.has_queue(slot) {
        let none = offload::VirtioNetHdr::NONE;
        let r = offload::segment(frame, hdr, usize::MAX, seg, |segment| {
            if tx.takes(slot, &none, segment.len()) {
                tx.push(slots, slot, &none, segment, false, w);
                return;
            }
            // Bigger than a queue entry (a jumbo MSS): in order, at once.
            tx.flush_slot(slots, slot, w);
            let len = segment.len() as u64;
            count_sent(s, w, io.send_tunnel(segment, tun), 1, len);
        });
        if r.is_err() {
            s.shared.w(w).tx_drop(TxDrop::TxError);
        }
        return;
    }
    // Frames leave in order: whatever is queued for the port goes first.
    tx.flush_slot(slots, slot, w);
    let (mut n_ok, mut bytes) = (0u64, 0u64);
    let result = if io.vnet() {
        n_ok = 1;
        bytes = frame.len() as u64;
        io.send_vnet(hdr, frame)
    } else if hdr.is_gso() {
        let mut res = Ok(());
        let r = offload::segment(frame, hdr, usize::MAX, seg, |segment| {
            if res.is_ok() {
                res = io.send_tunnel(segment, tun);
                if res.is_ok() {
                    n_ok += 1;
                    bytes += segment.len() as u64;
                }
            }
        });
        match r {
            Ok(_) => res,
            Err(_) => Err(PortError::Other(std::io::Error::from(
                std::io::ErrorKind::InvalidData,
            ))),
        }
    } else if hdr.needs_csum() {
        match seg.get_mut(..frame.len()) {
            Some(copy) => {
                copy.copy_from_slice(frame);
                offload::complete_checksum(copy, hdr);
                n_ok = 1;
                bytes = frame.len() as u64;
                io.send_tunnel(copy, tun)
            }
            None => Err(PortError::FrameTooBig { len: frame.len() }),
        }
    } else {
        n_ok = 1;
        bytes = frame.len() as u64;
        io.send_tunnel(frame, tun)
    };
    count_sent(s, w, result, n_ok, bytes);
}

/// Counts on `s` the outcome of a send by worker `w`: `n_ok` frames of
/// `bytes` in all, or the drop the error stands for (a vanished netdev
/// also marks the port down).
fn count_sent(s: &Slot, w: usize, result: Result<(), PortError>, n_ok: u64, bytes: u64) {
    match result {
        Ok(()) => {
            s.shared.w(w).tx_packets.add(n_ok);
            s.shared.w(w).tx_bytes.add(bytes);
        }
        Err(PortError::TxFull) => s.shared.w(w).tx_drop(TxDrop::QueueFull),
        Err(PortError::LinkDown) => s.shared.w(w).tx_drop(TxDrop::PortDown),
        Err(PortError::FrameTooBig { len }) => s.shared.too_big(w, len),
        Err(PortError::NoTunnelDst) => s.shared.w(w).tx_drop(TxDrop::TunnelNoDst),
        Err(e) if e.is_gone() => {
            s.shared.w(w).tx_drop(TxDrop::PortDown);
            s.shared.set_down(format!("netdev vanished: {e}"));
        }
        Err(_) => s.shared.w(w).tx_drop(TxDrop::TxError),
    }
}

macro_rules! opaque_debug {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t)).finish_non_exhaustive()
            }
        }
    )*};
}
opaque_debug!(Slot, BridgeRt, XlateCtx<'_>);
