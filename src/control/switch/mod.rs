//! The switch model: bridges, ports and flows as the control plane keeps
//! them, and the requests that change them.
//!
//! # What?
//! [`Switch`] validates every request completely before changing anything
//! (a rejected request leaves the configuration as it was), then applies it:
//! it creates TAPs and AF_PACKET sockets (through [`Netdevs`]: the kernel,
//! or an in-memory fake in unit tests), hands their fds to the datapath
//! worker, edits and publishes flow tables. The one request that can fail
//! after changing something is an `apply` whose rollback the kernel
//! refuses; it says so, and the configuration it leaves is saved
//! ([`apply`]).
//!
//! # Design
//! This module holds the model (bridges, ports, the request dispatch);
//! each kind of request lives in its own submodule: [`bridges`],
//! [`ports`], flow requests ([`flow_requests`], over each bridge's
//! [`BridgeFlows`]), the OpenFlow channel's facade ([`openflow`]),
//! persistence ([`persist`]: journal records, snapshots, restore, export),
//! `apply` planning and rollback ([`apply`]) and TOML line finding
//! ([`toml_lines`]). Flow tables are edited in place and published in
//! batches ([`crate::datapath::pipeline::PipelineWriter`]). MAC tables
//! live in the worker; `fdb-show`, `fdb-flush` and `trace` are answered by
//! the worker over a reply channel, in datapath types that
//! [`crate::control::convert`] turns into replies.
//!
//! # Thread-safety
//! One `Switch` behind a mutex: requests are applied one at a time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowtable::syntax::{self, Flow, FlowFilter};
use flowtable::{PortNo, TableId, Vid};
use rvs_ctl::proto::{BridgeInfo, ErrorKind, PortInfo, Reply, Request, Response};

use crate::bridge::{Bridge, VlanConfig, VlanError, VlanMode};
use crate::config::{BridgeConfig, Config, FlowConfig, PortConfig};
use crate::control::convert;
use crate::control::flows::{BridgeFlows, FlowChange, FlowError, FlowRemovedSink};
use crate::control::journal::{Durable, Journal, Pending, Record, Snapshot};
use crate::control::ofchannel::Target;
use crate::control::punix::Punix;
use crate::control::state::StateStore;
use crate::datapath::controller::{OfShared, PacketInSink};
use crate::datapath::counters::PortShared;
use crate::datapath::pipeline::{FlowEntry, Pipeline};
use crate::datapath::worker::WorkerSet;
use crate::datapath::xlate::BridgeRt;
use crate::datapath::Command;
use crate::netdev;
use crate::port::{Kernel, Netdevs, PortIo, PortKind, TunnelPort};
use crate::qos::QosConfig;
use crate::tunnel::TunnelConfig;
use meters::meter_filter;

mod apply;
mod bridges;
mod flow_requests;
mod meters;
pub use meters::METER_FEATURES;
mod openflow;
pub use openflow::{apply_flow_mod, apply_flow_mods_atomic};
mod persist;
mod ports;
mod toml_lines;

pub use openflow::{OfBridge, OfPort, OfTableCounts};
pub use persist::port_settings;
use ports::*;
use toml_lines::*;

/// Journal records after which a snapshot is written, at least (else:
/// once the journal holds more records than the tables hold flows).
const COMPACT_MIN: u64 = 100_000;

/// Largest per-bridge flow limit accepted.
pub const MAX_FLOW_LIMIT: usize = 100_000_000;

/// Default MAC aging time, seconds.
pub const DEFAULT_AGING_S: u32 = 300;
/// Default MAC table size, entries.
pub const DEFAULT_TABLE_SIZE: u32 = 8192;
/// Default `vlan-limit` (OVS's): the outer VLAN tag only.
pub const DEFAULT_VLAN_LIMIT: u32 = 1;

/// A rejected request: category and message.
#[derive(Debug, Clone)]
pub struct Reject {
    /// Category.
    pub kind: ErrorKind,
    /// Message for the user.
    pub message: String,
}

fn reject(kind: ErrorKind, message: impl Into<String>) -> Reject {
    Reject {
        kind,
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> Reject {
    reject(ErrorKind::Invalid, message)
}

type Result<T> = std::result::Result<T, Reject>;

/// One port as configured.
#[derive(Debug)]
struct PortState {
    name: String,
    ofport: PortNo,
    kind: PortKind,
    vlan: VlanConfig,
    /// Whether `vlan_mode` was given explicitly (for show/export).
    vlan_mode_set: bool,
    peer: Option<String>,
    /// A tunnel port's options (`None` for other kinds).
    tunnel: Option<TunnelConfig>,
    /// In NORMAL's split-horizon group (default: tunnel ports).
    split_horizon: bool,
    /// Policing settings as given (0 = off / default).
    qos: QosConfig,
    /// `external_ids:KEY=VALUE`: kept for management clients (libvirt,
    /// OpenStack, the OVSDB Interface row); no effect on forwarding.
    external_ids: BTreeMap<String, String>,
    shared: Arc<PortShared>,
    /// MAC address when the port was added (zero if unknown).
    mac: [u8; 6],
    /// The datapath worker that polls it.
    worker: usize,
}

/// One bridge as configured.
#[derive(Debug)]
struct BridgeState {
    id: u32,
    name: String,
    aging_s: u32,
    table_size: u32,
    ports: BTreeMap<PortNo, PortState>,
    /// Flow tables (published to the datapath in batches).
    flows: BridgeFlows,
    /// OpenFlow controller targets, as given.
    controllers: Vec<String>,
    /// Targets restored from saved state that cannot run (a `punix:`
    /// path that became unusable), with why: kept configured, not
    /// started, reported by `get-controller`.
    failing: BTreeMap<String, String>,
    /// Fail mode `secure` (false: `standalone`).
    secure: bool,
    /// Datapath id set with `set bridge BR datapath-id=`.
    datapath_id: Option<u64>,
    /// `vlan-limit` as configured (0: unlimited).
    vlan_limit: u32,
    /// Controller state shared with the channel and the worker.
    of: Arc<OfShared>,
    /// Where the search for the next unrequested port number starts: one
    /// past the last one handed out, so a number just freed is not given
    /// to the next port at once (as Open vSwitch allocates; a
    /// controller's state about the old port cannot leak to a new one).
    next_ofport: u32,
}

impl BridgeState {
    fn port_by_name(&self, name: &str) -> Option<&PortState> {
        self.ports.values().find(|p| p.name == name)
    }

    /// Ports in the order `show` and `dump-ports` list them: LOCAL first,
    /// then by port number.
    fn ports_local_first(&self) -> impl Iterator<Item = &PortState> {
        let local = self.ports.get(&PortNo::LOCAL);
        local
            .into_iter()
            .chain(self.ports.values().filter(|p| p.ofport != PortNo::LOCAL))
    }

    fn port_no(&self, name: &str) -> Option<PortNo> {
        self.port_by_name(name).map(|p| p.ofport)
    }

    fn dpid(&self) -> u64 {
        self.datapath_id.unwrap_or_else(|| default_dpid(&self.name))
    }
}

/// The datapath id of a bridge named `name` unless one is set: a locally
/// administered unicast MAC derived from the name (FNV-1a), so it is
/// stable across restarts.
pub fn default_dpid(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mac = h & 0xffff_ffff_ffff;
    // First octet: locally administered (0x02), not multicast (0x01).
    (mac & !(0x01 << 40)) | (0x02 << 40)
}

/// Parses a datapath id: exactly 16 hex digits (an optional `0x` prefix
/// is accepted).
pub fn parse_dpid(v: &str) -> Option<u64> {
    let h = v.strip_prefix("0x").unwrap_or(v);
    (h.len() == 16 && h.bytes().all(|c| c.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(h, 16).ok())
        .flatten()
}

fn parse_fail_mode(v: &str) -> Option<bool> {
    match v {
        "secure" => Some(true),
        "standalone" | "" => Some(false),
        _ => None,
    }
}

/// Whether `req` is the debug-build fault request (which changes nothing).
fn is_debug_fault(req: &Request) -> bool {
    #[cfg(debug_assertions)]
    if matches!(req, Request::DebugFault { .. }) {
        return true;
    }
    let _ = req;
    false
}

/// The whole switch.
pub struct Switch {
    bridges: BTreeMap<String, BridgeState>,
    /// Port name → bridge name (LOCAL ports included).
    owner: HashMap<String, String>,
    worker: WorkerSet,
    /// Where ports come from (the kernel; a fake in unit tests).
    netdevs: Arc<dyn Netdevs>,
    next_bridge_id: u32,
    epoch: Instant,
    /// Where accepted changes are persisted (`None` in unit tests).
    store: Option<StateStore>,
    /// True while restoring saved state: a missing system netdev then
    /// leaves its port configured and down instead of failing.
    restoring: bool,
    /// Where the datapath sends PACKET_INs (set by the OpenFlow channel).
    packet_in_sink: Option<PacketInSink>,
    /// Woken after every accepted change (the OpenFlow channel waits on it).
    changed: Arc<tokio::sync::Notify>,
    /// Where accepted changes are appended (started after the initial
    /// load; `None` without a store).
    journal: Option<Journal>,
    /// Records of the request being handled, appended as one batch.
    records: Vec<Pending>,
    /// Where FLOW_REMOVED events go (set by the OpenFlow channel).
    flow_removed: Option<FlowRemovedSink>,
    /// rvsd has TLS certificates: `ssl:`/`pssl:` targets are accepted.
    tls: bool,
    /// What `punix:` listeners may not take, and the sockets they hold.
    punix: Punix,
    /// Set by a request that changed the configuration even though it
    /// failed (an `apply` whose rollback ran): it is journaled as is.
    config_touched: bool,
    /// Debug builds: whether [`Request::DebugFault`] is served.
    #[cfg(debug_assertions)]
    debug_faults: bool,
    /// Bumped after every accepted change of bridges, ports or their
    /// settings (not flows): the OVSDB endpoint syncs when it moves.
    generation: Arc<std::sync::atomic::AtomicU64>,
    /// The configuration's `ovsdb_remote` (used by rvsd at start; kept
    /// here so state and `export` carry it).
    ovsdb_remote: Vec<String>,
    /// Inside [`Switch::begin_batch`]: requests journal nothing until
    /// [`Switch::end_batch`]; set when one of them changed the
    /// configuration.
    batch: Option<bool>,
}

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch")
            .field("bridges", &self.bridges.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Switch {
    /// A switch with no bridges, with `workers` datapath workers running.
    pub fn new(
        epoch: Instant,
        store: Option<StateStore>,
        workers: usize,
    ) -> std::io::Result<Switch> {
        Switch::with_netdevs(epoch, store, workers, Arc::new(Kernel))
    }

    /// [`Switch::new`] with ports made by `netdevs` (a test double).
    pub fn with_netdevs(
        epoch: Instant,
        store: Option<StateStore>,
        workers: usize,
        netdevs: Arc<dyn Netdevs>,
    ) -> std::io::Result<Switch> {
        let punix = Punix::new(store.as_ref().map(StateStore::dir));
        Ok(Switch {
            bridges: BTreeMap::new(),
            owner: HashMap::new(),
            worker: WorkerSet::spawn(epoch, workers)?,
            netdevs,
            next_bridge_id: 0,
            epoch,
            store,
            restoring: false,
            packet_in_sink: None,
            changed: Arc::new(tokio::sync::Notify::new()),
            journal: None,
            punix,
            records: Vec::new(),
            flow_removed: None,
            tls: false,
            config_touched: false,
            #[cfg(debug_assertions)]
            debug_faults: false,
            generation: Arc::default(),
            ovsdb_remote: Vec::new(),
            batch: None,
        })
    }

    /// Whether `ssl:`/`pssl:` controller targets can be served (rvsd was
    /// given certificates).
    pub fn set_tls(&mut self, on: bool) {
        self.tls = on;
    }

    /// Datapath workers that stopped by themselves (see
    /// [`WorkerSet::exits`]); `rvsd` exits on the first.
    pub fn worker_exits(&self) -> crossbeam_channel::Receiver<crate::datapath::worker::WorkerExit> {
        self.worker.exits()
    }

    /// Debug builds: serve [`Request::DebugFault`] (`rvsd --debug-faults`).
    #[cfg(debug_assertions)]
    pub fn enable_debug_faults(&mut self) {
        self.debug_faults = true;
    }

    /// Debug builds: the failure [`Request::DebugFault`] asks for.
    #[cfg(debug_assertions)]
    fn debug_fault(&mut self, fault: &str) -> Result<Reply> {
        use crate::datapath::WorkerFault;
        if !self.debug_faults {
            return Err(invalid(
                "debug faults are off (start a debug build of rvsd with --debug-faults)",
            ));
        }
        log::warn!("injecting fault {fault} (debug request)");
        match fault {
            "control-panic" => panic!("injected fault: control-plane panic"),
            "task-panic" => {
                let rt = tokio::runtime::Handle::try_current().map_err(|e| {
                    reject(ErrorKind::Internal, format!("task-panic: no runtime: {e}"))
                })?;
                rt.spawn(async { panic!("injected fault: tokio task panic") });
            }
            "worker-panic" => self.worker.send(Command::DebugFault {
                fault: WorkerFault::Panic,
            }),
            "worker-error" => self.worker.send(Command::DebugFault {
                fault: WorkerFault::Error,
            }),
            other => {
                return Err(invalid(format!(
                    "debug fault {other:?}: expected control-panic, task-panic, worker-panic or worker-error"
                )))
            }
        }
        Ok(Self::done(format!("fault {fault} injected"), 1))
    }

    /// Waits until the datapath carried out what was sent to it.
    fn sync_worker(&self) {
        if !self.worker.barrier(Duration::from_secs(5)) {
            log::warn!("datapath did not answer within 5 s");
        }
    }

    /// Milliseconds since the switch started (the clock of flow entries).
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Stops the datapath; switch-owned TAPs go away with their fds.
    pub fn shutdown(&mut self) {
        // Fold the journal into a complete snapshot, then stop recording:
        // removing the bridges below tears down the datapath, not state.
        if self.journal.is_some() {
            if let Err(e) = self.save() {
                log::error!("writing the final state snapshot: {e}");
            }
        }
        self.journal = None;
        let names: Vec<String> = self.bridges.keys().cloned().collect();
        for b in names {
            let _ = self.del_br(&b, true);
        }
        self.worker.shutdown();
    }

    /// Answers one request.
    pub fn handle(&mut self, req: Request) -> Response {
        let mutating = !matches!(
            req,
            Request::Ping {}
                | Request::ListBr {}
                | Request::Show {}
                | Request::ListPorts { .. }
                | Request::DumpFlows { .. }
                | Request::DumpPorts { .. }
                | Request::FdbShow { .. }
                | Request::DumpMeters { .. }
                | Request::FdbFlush { .. }
                | Request::PmdStatsShow {}
                | Request::MemoryShow {}
                | Request::Trace { .. }
                | Request::Export {}
                | Request::GetController { .. }
                | Request::Apply { dry_run: true, .. }
        ) && !is_debug_fault(&req);
        let flows_only = matches!(
            req,
            Request::AddFlows { .. }
                | Request::ModFlows { .. }
                | Request::DelFlows { .. }
                | Request::ReplaceFlows { .. }
        );
        // Journal replay drops a deleted bridge's flows at the next
        // configuration record: one is written right after a del-br even
        // inside a batch (a re-added bridge of the same name must not
        // inherit the old flows).
        let removes_bridge = matches!(req, Request::DelBr { .. });
        self.config_touched = false;
        let r = self.dispatch(req);
        // A failed apply may have left changes (a rollback step the kernel
        // refused): what runs is what must be saved.
        let touched = std::mem::take(&mut self.config_touched);
        if (r.is_ok() && mutating) || touched {
            self.changed.notify_one();
            if !flows_only {
                self.generation
                    .fetch_add(1, std::sync::atomic::Ordering::Release);
            }
            if !flows_only && self.journal.is_some() {
                match &mut self.batch {
                    Some(dirty) if !removes_bridge => *dirty = true,
                    _ => {
                        if let Some(dirty) = &mut self.batch {
                            *dirty = false;
                        }
                        self.records.push(Pending::Other(Record::Config {
                            cfg: Box::new(self.export_config(false)),
                        }))
                    }
                }
            }
        }
        if self.batch.is_some() {
            // Journaled once, by end_batch.
            return match r {
                Ok(r) => Response::ok(r),
                Err(e) => Response::err(e.kind, e.message),
            };
        }
        // Even a rejected request may have journaled (an apply that
        // failed and rolled back): the records say what happened.
        if let Err(e) = self.flush_journal() {
            log::error!("saving state: {e}");
            return Response::err(
                ErrorKind::System,
                format!("the change was applied but could not be saved: {e}"),
            );
        }
        match r {
            Ok(r) => Response::ok(r),
            Err(e) => Response::err(e.kind, e.message),
        }
    }

    /// Starts a batch of requests (one OVSDB transaction's): until
    /// [`Switch::end_batch`] they are journaled as one record of the
    /// resulting configuration, not one each (each would hold the whole
    /// non-flow configuration: O(ports) per request).
    pub fn begin_batch(&mut self) {
        if self.batch.is_none() {
            self.batch = Some(false);
        }
    }

    /// Ends a batch: journals what its requests changed.
    pub fn end_batch(&mut self) -> std::result::Result<(), String> {
        if self.batch.take() == Some(true) && self.journal.is_some() {
            self.records.push(Pending::Other(Record::Config {
                cfg: Box::new(self.export_config(false)),
            }));
        }
        self.flush_journal().map(|_| ())
    }

    fn bridge(&self, name: &str) -> Result<&BridgeState> {
        self.bridges
            .get(name)
            .ok_or_else(|| reject(ErrorKind::NotFound, format!("no bridge named {name}")))
    }

    fn bridge_mut(&mut self, name: &str) -> Result<&mut BridgeState> {
        self.bridges
            .get_mut(name)
            .ok_or_else(|| reject(ErrorKind::NotFound, format!("no bridge named {name}")))
    }

    fn done(message: impl Into<String>, count: u64) -> Reply {
        Reply::Done {
            message: message.into(),
            count,
        }
    }

    fn dispatch(&mut self, req: Request) -> Result<Reply> {
        match req {
            Request::Ping {} => Ok(Self::done(format!("rvsd {}", env!("CARGO_PKG_VERSION")), 0)),
            Request::AddBr { name, may_exist } => self.add_br(&name, may_exist),
            Request::DelBr { name, if_exists } => self.del_br(&name, if_exists),
            Request::ListBr {} | Request::Show {} => Ok(self.show(None)),
            Request::ListPorts { bridge } => {
                self.bridge(&bridge)?;
                Ok(self.show(Some(&bridge)))
            }
            Request::AddPort {
                bridge,
                name,
                settings,
                may_exist,
            } => self.add_port(&bridge, &name, &settings, may_exist),
            Request::DelPort {
                bridge,
                name,
                if_exists,
            } => self.del_port(bridge.as_deref(), &name, if_exists),
            Request::SetPort { name, settings } => self.set_port(&name, &settings),
            Request::SetBridge { name, settings } => self.set_bridge(&name, &settings),
            Request::SetController { bridge, targets } => self.set_controller(&bridge, &targets),
            Request::DelController { bridge } => self.set_controller(&bridge, &[]),
            Request::GetController { bridge } => {
                let b = self.bridge(&bridge)?;
                Ok(Reply::Controller {
                    controllers: b.controllers.clone(),
                    failing: b
                        .failing
                        .iter()
                        .map(|(target, error)| rvs_ctl::proto::FailingController {
                            target: target.clone(),
                            error: error.clone(),
                        })
                        .collect(),
                    connected: b.of.peers(),
                    fail_mode: if b.secure { "secure" } else { "standalone" }.to_string(),
                    datapath_id: format!("{:016x}", b.dpid()),
                })
            }
            Request::SetFailMode { bridge, mode } => {
                let secure = parse_fail_mode(&mode).ok_or_else(|| {
                    invalid(format!(
                        "set-fail-mode {bridge} {mode}: expected standalone or secure"
                    ))
                })?;
                let b = self.bridge_mut(&bridge)?;
                b.secure = secure;
                b.of.configure(!b.controllers.is_empty(), secure);
                Ok(Self::done("", 1))
            }
            Request::AddFlows { bridge, text } => self.add_flows(&bridge, &text),
            Request::ModFlows {
                bridge,
                flow,
                strict,
            } => self.mod_flows(&bridge, &flow, strict),
            Request::DelFlows {
                bridge,
                filter,
                strict,
            } => self.del_flows(&bridge, &filter, strict),
            Request::ReplaceFlows { bridge, text } => self.replace_flows(&bridge, &text),
            Request::DumpFlows { bridge, filter } => self.dump_flows(&bridge, &filter),
            Request::DumpPorts { bridge, port } => self.dump_ports(&bridge, port.as_deref()),
            Request::FdbShow { bridge } => {
                let id = self.bridge(&bridge)?.id;
                let (tx, rx) = crossbeam_channel::bounded(1);
                self.worker.send(Command::FdbShow {
                    bridge: id,
                    reply: tx,
                });
                let fdb = rx
                    .recv_timeout(Duration::from_secs(5))
                    .map_err(|_| reject(ErrorKind::Internal, "datapath did not answer"))?;
                let fdb = fdb.into_iter().map(Into::into).collect();
                Ok(Reply::Fdb { fdb })
            }
            Request::AddMeter {
                bridge,
                meter,
                modify,
            } => {
                let verb = if modify { "mod-meter" } else { "add-meter" };
                let spec = flowtable::meter::parse_meter(&meter)
                    .map_err(|e| invalid(format!("{verb} {bridge} {meter}: {e}")))?;
                self.set_meter(&bridge, spec, modify)?;
                Ok(Self::done("", 1))
            }
            Request::DelMeters { bridge, meter } => {
                let id = meter_filter("del-meters", &meter)?;
                let n = self.del_meters(&bridge, id)?;
                Ok(Self::done(format!("deleted {n} meters"), n as u64))
            }
            Request::DumpMeters { bridge, meter } => self.dump_meters(&bridge, &meter),
            Request::PmdStatsShow {} => Ok(Reply::Workers {
                workers: self.workers_info(),
            }),
            Request::MemoryShow {} => Ok(Reply::Memory {
                memory: self.memory_info(),
            }),
            Request::FdbFlush { bridge } => {
                let id = self.bridge(&bridge)?.id;
                let (tx, rx) = crossbeam_channel::bounded(1);
                self.worker.send(Command::FdbFlush {
                    bridge: id,
                    reply: tx,
                });
                let n = rx
                    .recv_timeout(Duration::from_secs(5))
                    .map_err(|_| reject(ErrorKind::Internal, "datapath did not answer"))?;
                Ok(Self::done(format!("flushed {n} MAC entries"), n as u64))
            }
            Request::Trace { bridge, flow } => self.trace(&bridge, &flow),
            Request::Export {} => {
                let toml = self
                    .export()
                    .to_toml()
                    .map_err(|e| reject(ErrorKind::Internal, e.to_string()))?;
                Ok(Reply::Config { toml })
            }
            Request::Apply {
                text,
                origin,
                dry_run,
            } => {
                let origin = if origin.is_empty() {
                    "<apply>".to_string()
                } else {
                    origin
                };
                let cfg = Config::parse(&text, &origin).map_err(|e| invalid(e.to_string()))?;
                self.apply_text(&cfg, &text, &origin, dry_run)
            }
            #[cfg(debug_assertions)]
            Request::DebugFault { fault } => self.debug_fault(&fault),
            // The connection assembles uploads (control::server).
            Request::Upload { .. } | Request::WithUpload { .. } => Err(reject(
                ErrorKind::BadRequest,
                "uploads are taken apart by the connection, not the switch",
            )),
        }
    }
}
