//! The switch model: bridges, ports and flows as the control plane keeps
//! them, and the requests that change them.
//!
//! # What?
//! [`Switch`] validates every request completely before changing anything
//! (a rejected request leaves the configuration as it was), then applies it:
//! it creates TAPs and AF_PACKET sockets, hands their fds to the datapath
//! worker, edits and publishes flow tables.
//!
//! # Design
//! Each bridge keeps its authoritative [`Pipeline`]; a flow change clones
//! it, edits the clone and stores it in the bridge's `ArcSwap`, from where
//! workers load it. MAC tables live in the worker; `fdb-show`, `fdb-flush`
//! and `trace` are answered by the worker over a reply channel, in
//! datapath types that [`crate::control::convert`] turns into replies.
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
use crate::control::journal::{Durable, Journal, Record, Snapshot};
use crate::control::ofchannel::Target;
use crate::control::state::StateStore;
use crate::datapath::controller::{OfShared, PacketInSink};
use crate::datapath::counters::PortShared;
use crate::datapath::pipeline::{FlowEntry, Pipeline};
use crate::datapath::worker::WorkerSet;
use crate::datapath::xlate::BridgeRt;
use crate::datapath::Command;
use crate::netdev;
use crate::port::{AfPacketPort, PortIo, PortKind, TapPort};

/// Journal records after which a snapshot is written, at least (else:
/// once the journal holds more records than the tables hold flows).
const COMPACT_MIN: u64 = 100_000;

/// Largest per-bridge flow limit accepted.
pub const MAX_FLOW_LIMIT: usize = 100_000_000;

/// Default MAC aging time, seconds.
pub const DEFAULT_AGING_S: u32 = 300;
/// Default MAC table size, entries.
pub const DEFAULT_TABLE_SIZE: u32 = 8192;

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
    /// Fail mode `secure` (false: `standalone`).
    secure: bool,
    /// Datapath id set with `set bridge BR datapath-id=`.
    datapath_id: Option<u64>,
    /// Controller state shared with the channel and the worker.
    of: Arc<OfShared>,
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

/// A bridge as the OpenFlow channel sees it.
#[derive(Debug, Clone)]
pub struct OfBridge {
    /// Bridge name.
    pub name: String,
    /// Bridge id (as in PACKET_IN events).
    pub id: u32,
    /// Datapath id.
    pub dpid: u64,
    /// Controller targets (validated).
    pub targets: Vec<Target>,
    /// Controller state.
    pub of: Arc<OfShared>,
    /// Ports (LOCAL included).
    pub ports: Vec<OfPort>,
}

/// A port as the OpenFlow channel sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfPort {
    /// Port number.
    pub ofport: PortNo,
    /// Name.
    pub name: String,
    /// MAC address (zero when unknown).
    pub mac: [u8; 6],
    /// Carrying traffic.
    pub up: bool,
}

/// Counters of one table, for OpenFlow TABLE stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OfTableCounts {
    /// Table id.
    pub table: u8,
    /// Flows in the table.
    pub active: u32,
    /// Packets looked up in it.
    pub lookups: u64,
    /// Lookups that found a flow.
    pub matched: u64,
}

/// [`OfTableCounts`] of all 255 tables of `p` (the lookup counters are
/// shared by every version of the bridge's pipeline).
fn table_counts(p: &Pipeline) -> Vec<OfTableCounts> {
    (0..255usize)
        .map(|i| {
            let (lookups, matched) = p.stats.get(i as u8);
            OfTableCounts {
                table: i as u8,
                active: p.tables.get(i).map_or(0, |t| t.len() as u32),
                lookups,
                matched,
            }
        })
        .collect()
}

/// The whole switch.
pub struct Switch {
    bridges: BTreeMap<String, BridgeState>,
    /// Port name → bridge name (LOCAL ports included).
    owner: HashMap<String, String>,
    worker: WorkerSet,
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
    records: Vec<Record>,
    /// Where FLOW_REMOVED events go (set by the OpenFlow channel).
    flow_removed: Option<FlowRemovedSink>,
}

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch")
            .field("bridges", &self.bridges.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Port settings given to `add-port` / `set port`.
#[derive(Debug, Default)]
struct PortSettings {
    kind: Option<PortKind>,
    tag: Option<Option<Vid>>,
    trunks: Option<Vec<Vid>>,
    vlan_mode: Option<Option<VlanMode>>,
    ofport: Option<PortNo>,
    peer: Option<String>,
}

fn parse_vid(key: &str, v: &str) -> Result<Vid> {
    let n: u16 = v
        .trim()
        .parse()
        .map_err(|_| invalid(format!("{key}={v}: expected a VLAN id (1-4094)")))?;
    Ok(Vid(n))
}

fn parse_settings(
    verb: &str,
    items: &[(String, String)],
    allow_create: bool,
) -> Result<PortSettings> {
    let mut s = PortSettings::default();
    for (k, v) in items {
        let key = k.replace('-', "_");
        match key.as_str() {
            "type" if allow_create => {
                s.kind = Some(v.parse::<PortKind>().map_err(|_| {
                    invalid(format!(
                        "{verb}: type={v}: expected tap, system, internal or patch"
                    ))
                })?)
            }
            "tag" => {
                s.tag = Some(if v.is_empty() || v == "[]" {
                    None
                } else {
                    Some(parse_vid("tag", v)?)
                })
            }
            "trunks" => {
                let v = v.trim_start_matches('[').trim_end_matches(']');
                s.trunks = Some(
                    v.split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(|x| parse_vid("trunks", x))
                        .collect::<Result<_>>()?,
                )
            }
            "vlan_mode" => {
                s.vlan_mode = Some(if v.is_empty() || v == "[]" {
                    None
                } else {
                    Some(v.parse::<VlanMode>().map_err(|_| {
                        invalid(format!(
                            "{verb}: vlan_mode={v}: expected access, trunk, native-tagged or native-untagged"
                        ))
                    })?)
                })
            }
            "ofport_request" | "ofport" if allow_create => {
                let n: u32 = v.parse().map_err(|_| {
                    invalid(format!(
                        "{verb}: ofport_request={v}: expected a port number"
                    ))
                })?;
                if n == 0 || n > PortNo::MAX.0 {
                    return Err(invalid(format!(
                        "{verb}: ofport_request={v}: must be between 1 and {}",
                        PortNo::MAX.0
                    )));
                }
                s.ofport = Some(PortNo(n));
            }
            "peer" | "options:peer" => s.peer = Some(v.clone()),
            _ => {
                return Err(invalid(format!(
                    "{verb}: unknown setting \"{k}\" (expected {})",
                    if allow_create {
                        "type, tag, trunks, vlan_mode, ofport_request or peer"
                    } else {
                        "tag, trunks, vlan_mode or peer"
                    }
                )))
            }
        }
    }
    Ok(s)
}

fn vlan_from(
    mode: Option<VlanMode>,
    tag: Option<Vid>,
    trunks: Vec<Vid>,
    who: &str,
) -> Result<VlanConfig> {
    VlanConfig::new(mode, tag, trunks).map_err(|e| invalid(format!("{who}: {e}")))
}

impl Switch {
    /// A switch with no bridges, with `workers` datapath workers running.
    pub fn new(
        epoch: Instant,
        store: Option<StateStore>,
        workers: usize,
    ) -> std::io::Result<Switch> {
        Ok(Switch {
            bridges: BTreeMap::new(),
            owner: HashMap::new(),
            worker: WorkerSet::spawn(epoch, workers)?,
            next_bridge_id: 0,
            epoch,
            store,
            restoring: false,
            packet_in_sink: None,
            changed: Arc::new(tokio::sync::Notify::new()),
            journal: None,
            records: Vec::new(),
            flow_removed: None,
        })
    }

    /// A snapshot of the whole state as of now: the configuration and
    /// each bridge's flow entries (pointers; formatted later).
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            cfg: self.export_config(false),
            flows: self
                .bridges
                .values()
                .map(|b| b.flows.entries(&FlowFilter::default()))
                .collect(),
            journal: 0,
        }
    }

    /// Writes the complete state (snapshot) and starts the journal after
    /// it; called once the initial configuration is loaded. Without a
    /// store, does nothing.
    pub fn save(&mut self) -> std::result::Result<(), String> {
        let Some(st) = &self.store else {
            return Ok(());
        };
        let dir = st.dir().to_path_buf();
        let gen = crate::control::journal::journal_gens(&dir)
            .last()
            .map_or(1, |g| g + 1);
        self.journal = None;
        let mut snap = self.snapshot();
        snap.journal = gen;
        self.journal = Some(Journal::start(&dir, &snap).map_err(|e| e.to_string())?);
        self.records.clear();
        Ok(())
    }

    /// Starts the journal after a restore from the state directory,
    /// extending its chain of journal files instead of rewriting the
    /// snapshot (restarting with many flows does not rewrite them all).
    /// Falls back to [`Switch::save`] for a state file without a journal.
    pub fn resume(&mut self, cfg: &Config) -> std::result::Result<(), String> {
        let (Some(st), Some(_)) = (&self.store, cfg.journal) else {
            return self.save();
        };
        let since = self.bridges.values().map(|b| b.flows.len() as u64).sum();
        self.journal = Some(Journal::resume(st.dir(), since).map_err(|e| e.to_string())?);
        self.records.clear();
        Ok(())
    }

    /// Appends the records of the changes so far as one batch; returns
    /// what a caller must wait on for them to be durable
    /// ([`Durable::wait`]), and compacts the journal into a new snapshot
    /// when it has outgrown the tables.
    pub fn flush_journal(&mut self) -> std::result::Result<Option<(Arc<Durable>, u64)>, String> {
        let records = std::mem::take(&mut self.records);
        let Some(j) = self.journal.as_mut() else {
            return Ok(None);
        };
        let seq = j.append(&records)?;
        let flows: u64 = self.bridges.values().map(|b| b.flows.len() as u64).sum();
        let j = self
            .journal
            .as_ref()
            .map(|j| (j.since_snapshot(), j.compacting()));
        if let Some((since, false)) = j {
            if since > COMPACT_MIN.max(flows) {
                let snap = self.snapshot();
                if let Some(j) = self.journal.as_mut() {
                    j.compact(snap)?;
                }
            }
        }
        Ok(self.journal.as_ref().map(|j| (j.durable(), seq)))
    }

    /// What to wait on for everything appended to the journal so far to
    /// be durable (`None` without a journal).
    pub fn durable_ticket(&self) -> Option<(Arc<Durable>, u64)> {
        self.journal.as_ref().map(|j| (j.durable(), j.ticket()))
    }

    /// Installs the sink of FLOW_REMOVED events.
    pub fn set_flow_removed_sink(&mut self, sink: FlowRemovedSink) {
        self.flow_removed = Some(sink);
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
                | Request::FdbFlush { .. }
                | Request::PmdStatsShow {}
                | Request::Trace { .. }
                | Request::Export {}
                | Request::GetController { .. }
                | Request::Apply { dry_run: true, .. }
        );
        let flows_only = matches!(
            req,
            Request::AddFlows { .. }
                | Request::ModFlows { .. }
                | Request::DelFlows { .. }
                | Request::ReplaceFlows { .. }
        );
        let r = self.dispatch(req);
        if r.is_ok() && mutating {
            self.changed.notify_one();
            if !flows_only && self.journal.is_some() {
                self.records.push(Record::Config {
                    cfg: Box::new(self.export_config(false)),
                });
            }
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
            Request::PmdStatsShow {} => Ok(Reply::Workers {
                workers: self.workers_info(),
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
            // The connection assembles uploads (control::server).
            Request::Upload { .. } | Request::WithUpload { .. } => Err(reject(
                ErrorKind::BadRequest,
                "uploads are taken apart by the connection, not the switch",
            )),
        }
    }

    // ---- bridges -------------------------------------------------------

    fn check_new_netdev_name(&self, name: &str, what: &str) -> Result<()> {
        netdev::validate_name(name).map_err(|e| invalid(format!("{what}: {e}")))?;
        if let Some(b) = self.owner.get(name) {
            return Err(reject(
                ErrorKind::Exists,
                if b == name {
                    format!("{what}: {name} is a bridge")
                } else {
                    format!("{what}: {name} is already a port of {b}")
                },
            ));
        }
        Ok(())
    }

    fn add_br(&mut self, name: &str, may_exist: bool) -> Result<Reply> {
        if self.bridges.contains_key(name) {
            if may_exist {
                return Ok(Self::done("", 0));
            }
            return Err(reject(
                ErrorKind::Exists,
                format!("add-br {name}: bridge {name} already exists"),
            ));
        }
        self.check_new_netdev_name(name, &format!("add-br {name}"))?;
        if netdev::exists(name) {
            return Err(reject(
                ErrorKind::Exists,
                format!("add-br {name}: a network device named {name} already exists"),
            ));
        }
        let local = TapPort::create(name).map_err(|e| {
            reject(
                ErrorKind::System,
                format!("add-br {name}: creating its LOCAL tap: {e}"),
            )
        })?;
        let id = self.next_bridge_id;
        self.next_bridge_id += 1;
        let now = self.now_ms();
        let mut flows = BridgeFlows::new(name, self.worker.len());
        let normal_flow = syntax::parse_flow("priority=0,actions=NORMAL", &|_| None)
            .map_err(|e| reject(ErrorKind::Internal, e.to_string()))?;
        flows
            .add(normal_flow, 0, now)
            .map_err(|e| reject(ErrorKind::Internal, e.to_string()))?;
        flows.publish();
        let published = flows.shared();
        let normal = Bridge::new();
        let of = Arc::new(OfShared::default());
        of.set_sink(self.packet_in_sink.clone());
        self.worker.send(Command::AddBridge {
            id,
            rt: Box::new(BridgeRt::new(name.to_string(), published, normal).with_of(of.clone())),
        });
        let shared = Arc::new(PortShared::new(None));
        let vlan = VlanConfig::default();
        let worker = self.worker.pick_owner();
        self.worker.send(Command::AddPort {
            bridge: id,
            ofport: PortNo::LOCAL,
            name: name.to_string(),
            io: Some(Arc::new(PortIo::Tap(local))),
            owner: worker,
            shared: shared.clone(),
            vlan: vlan.clone(),
        });
        let mut ports = BTreeMap::new();
        ports.insert(
            PortNo::LOCAL,
            PortState {
                name: name.to_string(),
                ofport: PortNo::LOCAL,
                kind: PortKind::Internal,
                vlan,
                vlan_mode_set: false,
                peer: None,
                shared,
                mac: netdev::mac(name).map(|m| m.0).unwrap_or_default(),
                worker,
            },
        );
        self.bridges.insert(
            name.to_string(),
            BridgeState {
                id,
                name: name.to_string(),
                aging_s: DEFAULT_AGING_S,
                table_size: DEFAULT_TABLE_SIZE,
                ports,
                flows,
                controllers: Vec::new(),
                secure: false,
                datapath_id: None,
                of,
            },
        );
        self.owner.insert(name.to_string(), name.to_string());
        self.commit_flows(name);
        log::info!("added bridge {name}");
        Ok(Self::done("", 1))
    }

    fn del_br(&mut self, name: &str, if_exists: bool) -> Result<Reply> {
        let Some(b) = self.bridges.remove(name) else {
            if if_exists {
                return Ok(Self::done("", 0));
            }
            return Err(reject(
                ErrorKind::NotFound,
                format!("del-br {name}: no bridge named {name}"),
            ));
        };
        for p in b.ports.values() {
            self.owner.remove(&p.name);
        }
        self.worker.send(Command::DelBridge { id: b.id });
        // Acknowledge only once the TAPs are gone, so that the same names
        // can be created again right away (del-br + add-br, apply).
        self.sync_worker();
        // Re-link patch peers on other bridges now that this side is gone.
        for p in b.ports.values() {
            if let Some(peer) = &p.peer {
                self.link_patch(peer);
            }
        }
        log::info!("deleted bridge {name}");
        Ok(Self::done("", 1))
    }

    fn show(&self, only: Option<&str>) -> Reply {
        let bridges = self
            .bridges
            .values()
            .filter(|b| only.is_none_or(|o| o == b.name))
            .map(|b| BridgeInfo {
                name: b.name.clone(),
                mac_aging_time: b.aging_s,
                mac_table_size: b.table_size,
                ports: b.ports_local_first().map(port_info).collect(),
            })
            .collect();
        Reply::Bridges { bridges }
    }

    fn set_bridge(&mut self, name: &str, settings: &[(String, String)]) -> Result<Reply> {
        let b = self.bridge(name)?;
        let (mut aging, mut size) = (b.aging_s, b.table_size);
        let mut dpid = b.datapath_id;
        let mut flow_limit = b.flows.limit();
        for (k, v) in settings {
            let key = k.replace('_', "-");
            let key = key.strip_prefix("other-config:").unwrap_or(&key);
            if key == "datapath-id" {
                dpid = if v.is_empty() {
                    None
                } else {
                    Some(parse_dpid(v).ok_or_else(|| {
                        invalid(format!(
                            "set bridge {name}: datapath-id={v}: expected 16 hex digits"
                        ))
                    })?)
                };
                continue;
            }
            if key == "flow-limit" {
                flow_limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_FLOW_LIMIT).contains(n))
                    .ok_or_else(|| {
                        invalid(format!(
                            "set bridge {name}: flow-limit={v}: expected a number of flows, 1-{MAX_FLOW_LIMIT}"
                        ))
                    })?;
                continue;
            }
            let n: u32 = v
                .parse()
                .map_err(|_| invalid(format!("set bridge {name}: {k}={v}: expected a number")))?;
            match key {
                "mac-aging-time" => {
                    if !(15..=3600).contains(&n) {
                        return Err(invalid(format!(
                            "set bridge {name}: mac-aging-time={n}: must be 15-3600 seconds"
                        )));
                    }
                    aging = n;
                }
                "mac-table-size" => {
                    if !(10..=1_000_000).contains(&n) {
                        return Err(invalid(format!(
                            "set bridge {name}: mac-table-size={n}: must be 10-1000000 entries"
                        )));
                    }
                    size = n;
                }
                _ => {
                    return Err(invalid(format!(
                        "set bridge {name}: unknown setting \"{k}\" (expected mac-aging-time, mac-table-size, datapath-id or flow-limit)"
                    )))
                }
            }
        }
        let id = b.id;
        let b = self.bridge_mut(name)?;
        b.aging_s = aging;
        b.table_size = size;
        b.datapath_id = dpid;
        b.flows.set_limit(flow_limit);
        self.worker.send(Command::SetBridgeKnobs {
            bridge: id,
            aging_s: aging,
            table_size: size,
        });
        Ok(Self::done("", 1))
    }

    fn set_controller(&mut self, name: &str, targets: &[String]) -> Result<Reply> {
        for t in targets {
            t.parse::<Target>()
                .map_err(|e| invalid(format!("set-controller {name}: {e}")))?;
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(d) = targets.iter().find(|t| !seen.insert(t.as_str())) {
            return Err(invalid(format!(
                "set-controller {name}: {d} is given twice"
            )));
        }
        self.check_listeners(name, targets)?;
        let b = self.bridge_mut(name)?;
        b.controllers = targets.to_vec();
        b.of.configure(!b.controllers.is_empty(), b.secure);
        Ok(Self::done("", targets.len() as u64))
    }

    /// A new passive target must be free: not another bridge's, and (for
    /// `ptcp:`) bindable now, so a busy or foreign address is an error for
    /// the user instead of a listener retrying in the background. Restoring
    /// saved state skips the bind (the listener retries and logs).
    fn check_listeners(&self, name: &str, targets: &[String]) -> Result<()> {
        let current = &self.bridge(name)?.controllers;
        for t in targets.iter().filter(|t| !current.contains(t)) {
            let target = t.parse::<Target>();
            if !matches!(target, Ok(Target::PTcp(_) | Target::PUnix(_))) {
                continue;
            }
            if let Some(other) = self
                .bridges
                .values()
                .find(|b| b.name != name && b.controllers.contains(t))
            {
                return Err(invalid(format!(
                    "set-controller {name}: {t} is already a controller of bridge {}",
                    other.name
                )));
            }
            if let (Ok(Target::PTcp(addr)), false) = (target, self.restoring) {
                std::net::TcpListener::bind(addr).map_err(|e| {
                    invalid(format!(
                        "set-controller {name}: {t}: cannot listen on {addr}: {e}"
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// What each datapath worker polls and did (`pmd-stats-show`).
    fn workers_info(&self) -> Vec<rvs_ctl::proto::WorkerInfo> {
        (0..self.worker.len())
            .map(|i| {
                let mut info = rvs_ctl::proto::WorkerInfo {
                    id: i as u32,
                    ..Default::default()
                };
                for b in self.bridges.values() {
                    for p in b.ports_local_first() {
                        if p.worker == i && p.kind != PortKind::Patch {
                            info.ports.push(format!("{}/{}", b.name, p.name));
                        }
                    }
                }
                if let Some(s) = self.worker.stats(i) {
                    info.rx_packets = s.rx_packets.get();
                    info.batches = s.batches.get();
                    info.emc_hits = s.emc_hits.load(std::sync::atomic::Ordering::Relaxed);
                    info.emc_misses = s.emc_misses.load(std::sync::atomic::Ordering::Relaxed);
                }
                info
            })
            .collect()
    }

    /// Installs the sink of PACKET_INs for every bridge, present and
    /// future.
    pub fn set_packet_in_sink(&mut self, sink: PacketInSink) {
        for b in self.bridges.values() {
            b.of.set_sink(Some(sink.clone()));
        }
        self.packet_in_sink = Some(sink);
    }

    /// Notified after every accepted change.
    pub fn changed(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    /// The bridges as the OpenFlow channel needs them.
    pub fn of_bridges(&self) -> Vec<OfBridge> {
        self.bridges
            .values()
            .map(|b| OfBridge {
                name: b.name.clone(),
                id: b.id,
                dpid: b.dpid(),
                targets: b
                    .controllers
                    .iter()
                    .filter_map(|t| t.parse().ok())
                    .collect(),
                of: b.of.clone(),
                ports: b
                    .ports
                    .values()
                    .map(|p| OfPort {
                        ofport: p.ofport,
                        name: p.name.clone(),
                        mac: p.mac,
                        up: p.shared.is_up(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// One bridge for the OpenFlow channel.
    pub fn of_bridge(&self, name: &str) -> Option<OfBridge> {
        self.of_bridges().into_iter().find(|b| b.name == name)
    }

    /// Applies OpenFlow FLOW_MODs to `bridge`, in order, through the same
    /// tables as `rvsctl`, and publishes them to the datapath at once.
    /// Returns one result per message. `of10` selects OpenFlow 1.0's
    /// MODIFY, which adds the flow when nothing matches. The changes are
    /// journaled; [`Switch::sync`] makes them durable (BARRIER).
    pub fn of_flow_mods(
        &mut self,
        bridge: &str,
        fms: &[crate::openflow::msg::FlowMod],
        of10: bool,
    ) -> Vec<std::result::Result<(), crate::openflow::error::OfpError>> {
        let now = self.now_ms();
        let Some(b) = self.bridges.get_mut(bridge) else {
            return fms.iter().map(|_| Ok(())).collect();
        };
        let out = fms
            .iter()
            .map(|fm| apply_flow_mod(&mut b.flows, fm, of10, now))
            .collect();
        self.commit_flows(bridge);
        out
    }

    /// Applies `fms` atomically (an OpenFlow bundle commit): all of them,
    /// or — when message `i` fails — none, with `i` and its error.
    pub fn of_flow_mods_atomic(
        &mut self,
        bridge: &str,
        fms: &[crate::openflow::msg::FlowMod],
        of10: bool,
    ) -> std::result::Result<(), (usize, crate::openflow::error::OfpError)> {
        let now = self.now_ms();
        let Some(b) = self.bridges.get_mut(bridge) else {
            return Ok(());
        };
        b.flows.begin();
        let mut failed = None;
        for (i, fm) in fms.iter().enumerate() {
            if let Err(e) = apply_flow_mod(&mut b.flows, fm, of10, now) {
                failed = Some((i, e));
                break;
            }
        }
        match failed {
            Some(_) => b.flows.rollback(),
            None => b.flows.commit(),
        }
        self.commit_flows(bridge);
        failed.map_or(Ok(()), Err)
    }

    /// Flows of `bridge` that `filter` selects (loosely), in `dump-flows`
    /// order: pointers only, to be formatted without the switch lock.
    pub fn flow_entries(&self, bridge: &str, filter: &FlowFilter) -> Vec<Arc<FlowEntry>> {
        match self.bridges.get(bridge) {
            Some(b) => b.flows.entries(filter),
            None => Vec::new(),
        }
    }

    /// Counters of every table of `bridge` (all 255; an unknown bridge
    /// has none): flows, and the datapath's lookups and matches.
    pub fn of_table_counts(&self, bridge: &str) -> Vec<OfTableCounts> {
        let Some(b) = self.bridges.get(bridge) else {
            return Vec::new();
        };
        table_counts(b.flows.view())
    }

    /// Port counters of `bridge` (all ports, or only `port`).
    pub fn of_port_stats(
        &self,
        bridge: &str,
        port: Option<PortNo>,
    ) -> Vec<rvs_ctl::proto::PortStats> {
        let Some(b) = self.bridges.get(bridge) else {
            return Vec::new();
        };
        b.ports
            .values()
            .filter(|p| port.is_none_or(|n| n == p.ofport))
            .map(|p| convert::port_stats(&p.name, p.ofport, &p.shared.snapshot()))
            .collect()
    }

    /// Runs a PACKET_OUT on `bridge`'s datapath.
    pub fn of_packet_out(&self, bridge: &str, po: crate::openflow::msg::PacketOut) {
        if let Some(b) = self.bridges.get(bridge) {
            self.worker.send(Command::PacketOut {
                bridge: b.id,
                in_port: po.in_port,
                actions: po.actions,
                data: po.data,
            });
        }
    }

    // ---- ports ---------------------------------------------------------

    fn add_port(
        &mut self,
        bridge: &str,
        name: &str,
        settings: &[(String, String)],
        may_exist: bool,
    ) -> Result<Reply> {
        let verb = format!("add-port {bridge} {name}");
        self.bridge(bridge)?;
        if let Some(owner) = self.owner.get(name) {
            if owner == bridge && may_exist && owner != name {
                return Ok(Self::done("", 0));
            }
        }
        self.check_new_netdev_name(name, &verb)?;
        let s = parse_settings(&verb, settings, true)?;
        let vlan_mode_set = matches!(s.vlan_mode, Some(Some(_)));
        let vlan = vlan_from(
            s.vlan_mode.flatten(),
            s.tag.flatten(),
            s.trunks.clone().unwrap_or_default(),
            &verb,
        )?;
        let b = self.bridge(bridge)?;
        let ofport = match s.ofport {
            Some(p) => {
                if b.ports.contains_key(&p) {
                    return Err(reject(
                        ErrorKind::Exists,
                        format!("{verb}: ofport {p} is already used by {}", b.ports[&p].name),
                    ));
                }
                p
            }
            None => (1..=PortNo::MAX.0)
                .map(PortNo)
                .find(|p| !b.ports.contains_key(p))
                .ok_or_else(|| invalid(format!("{verb}: no free port number")))?,
        };
        let kind = match s.kind {
            Some(k) => k,
            None if s.peer.is_some() => PortKind::Patch,
            None if netdev::exists(name) => PortKind::System,
            None => PortKind::Tap,
        };
        if kind == PortKind::Patch && s.peer.is_none() {
            return Err(invalid(format!("{verb}: a patch port needs peer=PORT")));
        }
        if kind != PortKind::Patch && s.peer.is_some() {
            return Err(invalid(format!("{verb}: peer= is only for type=patch")));
        }
        if let Some(peer) = &s.peer {
            if peer == name {
                return Err(invalid(format!(
                    "{verb}: a patch port cannot be its own peer"
                )));
            }
        }
        let io = match kind {
            PortKind::Tap | PortKind::Internal => {
                if netdev::exists(name) {
                    return Err(reject(
                        ErrorKind::Exists,
                        format!("{verb}: a network device named {name} already exists (omit type= to attach it as a system port)"),
                    ));
                }
                Some(PortIo::Tap(TapPort::create(name).map_err(|e| {
                    reject(ErrorKind::System, format!("{verb}: creating tap: {e}"))
                })?))
            }
            PortKind::System if self.restoring && !netdev::exists(name) => None,
            PortKind::System => {
                if !netdev::exists(name) {
                    return Err(reject(
                        ErrorKind::NotFound,
                        format!("{verb}: no network device named {name} to attach (use type=tap to create one)"),
                    ));
                }
                Some(PortIo::AfPacket(AfPacketPort::open(name).map_err(|e| {
                    reject(ErrorKind::System, format!("{verb}: attaching: {e}"))
                })?))
            }
            PortKind::Patch => None,
        };
        let down = (kind == PortKind::System && io.is_none())
            .then(|| format!("netdev {name} not found; it is attached when it appears"));
        let mac = if io.is_some() {
            netdev::mac(name).map(|m| m.0).unwrap_or_default()
        } else {
            [0; 6]
        };
        // A port without I/O yet (netdev missing) is polled by worker 0
        // once it appears.
        let worker = if io.is_some() {
            self.worker.pick_owner()
        } else {
            0
        };
        let b = self.bridge_mut(bridge)?;
        let id = b.id;
        let shared = Arc::new(PortShared::new(down));
        b.ports.insert(
            ofport,
            PortState {
                name: name.to_string(),
                ofport,
                kind,
                vlan: vlan.clone(),
                vlan_mode_set,
                peer: s.peer.clone(),
                shared: shared.clone(),
                mac,
                worker,
            },
        );
        self.owner.insert(name.to_string(), bridge.to_string());
        self.worker.send(Command::AddPort {
            bridge: id,
            ofport,
            name: name.to_string(),
            owner: worker,
            io: io.map(Arc::new),
            shared,
            vlan,
        });
        if kind == PortKind::Patch {
            self.link_patch(name);
            if let Some(peer) = &s.peer {
                self.link_patch(peer);
            }
        }
        log::info!("{verb}: added as {kind} port {ofport}");
        Ok(Self::done("", 1))
    }

    /// Where a port lives: (bridge name, ofport).
    fn locate(&self, port: &str) -> Option<(String, PortNo)> {
        let b = self.owner.get(port)?;
        let no = self.bridges.get(b)?.port_no(port)?;
        Some((b.clone(), no))
    }

    /// Tells the worker where patch port `name` leads (if both ends exist
    /// and name each other).
    fn link_patch(&self, name: &str) {
        let Some((b, no)) = self.locate(name) else {
            return;
        };
        let Some(bs) = self.bridges.get(&b) else {
            return;
        };
        let Some(p) = bs.ports.get(&no) else { return };
        let peer = p.peer.as_deref().and_then(|peer| {
            let (pb, pno) = self.locate(peer)?;
            let pbs = self.bridges.get(&pb)?;
            let pp = pbs.ports.get(&pno)?;
            (pp.kind == PortKind::Patch && pp.peer.as_deref() == Some(name))
                .then_some((pbs.id, pno))
        });
        if peer.is_none() {
            p.shared.set_down("patch peer missing".to_string());
        } else {
            p.shared.set_up();
        }
        self.worker.send(Command::SetPatchPeer {
            bridge: bs.id,
            ofport: no,
            peer,
        });
    }

    fn del_port(&mut self, bridge: Option<&str>, name: &str, if_exists: bool) -> Result<Reply> {
        let verb = match bridge {
            Some(b) => format!("del-port {b} {name}"),
            None => format!("del-port {name}"),
        };
        let Some((b, no)) = self.locate(name) else {
            if if_exists {
                return Ok(Self::done("", 0));
            }
            return Err(reject(
                ErrorKind::NotFound,
                format!("{verb}: no port named {name}"),
            ));
        };
        if let Some(want) = bridge {
            self.bridge(want)?;
            if want != b {
                return Err(reject(
                    ErrorKind::NotFound,
                    format!("{verb}: {name} is a port of {b}, not {want}"),
                ));
            }
        }
        if no == PortNo::LOCAL {
            return Err(invalid(format!(
                "{verb}: {name} is the bridge's LOCAL port; use del-br"
            )));
        }
        let bs = self.bridge_mut(&b)?;
        let id = bs.id;
        let p = bs.ports.remove(&no);
        self.owner.remove(name);
        self.worker.send(Command::DelPort {
            bridge: id,
            ofport: no,
        });
        self.sync_worker();
        if let Some(peer) = p.and_then(|p| p.peer) {
            self.link_patch(&peer);
        }
        Ok(Self::done("", 1))
    }

    fn set_port(&mut self, name: &str, settings: &[(String, String)]) -> Result<Reply> {
        let verb = format!("set port {name}");
        let (b, no) = self
            .locate(name)
            .ok_or_else(|| reject(ErrorKind::NotFound, format!("{verb}: no port named {name}")))?;
        let s = parse_settings(&verb, settings, false)?;
        let bs = self.bridge(&b)?;
        let p = &bs.ports[&no];
        let cur = &p.vlan;
        let mut mode = if p.vlan_mode_set {
            Some(cur.mode)
        } else {
            None
        };
        if let Some(m) = s.vlan_mode {
            mode = m;
        }
        let tag = s.tag.unwrap_or(cur.tag);
        let trunks = s.trunks.clone().unwrap_or_else(|| cur.trunks.clone());
        let vlan = vlan_from(mode, tag, trunks, &verb)?;
        if s.peer.is_some() && p.kind != PortKind::Patch {
            return Err(invalid(format!("{verb}: peer= is only for patch ports")));
        }
        let id = bs.id;
        let bs = self.bridge_mut(&b)?;
        let Some(p) = bs.ports.get_mut(&no) else {
            return Err(reject(ErrorKind::Internal, "port vanished"));
        };
        p.vlan = vlan.clone();
        p.vlan_mode_set = mode.is_some();
        let old_peer = if s.peer.is_some() {
            std::mem::replace(&mut p.peer, s.peer.clone())
        } else {
            None
        };
        self.worker.send(Command::SetPortVlan {
            bridge: id,
            ofport: no,
            vlan,
        });
        if s.peer.is_some() {
            self.link_patch(name);
            for n in old_peer.iter().chain(s.peer.iter()) {
                self.link_patch(n);
            }
        }
        Ok(Self::done("", 1))
    }

    fn dump_ports(&self, bridge: &str, port: Option<&str>) -> Result<Reply> {
        let b = self.bridge(bridge)?;
        if let Some(p) = port {
            if b.port_by_name(p).is_none() {
                return Err(reject(
                    ErrorKind::NotFound,
                    format!("dump-ports {bridge} {p}: no port named {p} on {bridge}"),
                ));
            }
        }
        let ports: Vec<_> = b
            .ports_local_first()
            .filter(|p| port.is_none_or(|n| n == p.name))
            .map(|p| convert::port_stats(&p.name, p.ofport, &p.shared.snapshot()))
            .collect();
        Ok(Reply::Ports { ports })
    }

    // ---- flows ---------------------------------------------------------

    /// Publishes `bridge`'s pending flow edits to the datapath and hands
    /// the recorded changes to the journal and to FLOW_REMOVED.
    fn commit_flows(&mut self, bridge: &str) {
        let now = self.now_ms();
        let Some(b) = self.bridges.get_mut(bridge) else {
            return;
        };
        b.flows.publish();
        let changes = b.flows.take_changes();
        if changes.is_empty() {
            return;
        }
        let id = b.id;
        if let Some(tx) = &self.flow_removed {
            for c in &changes {
                if let FlowChange::Removed(e, why) = c {
                    if e.flags & crate::control::flows::SEND_FLOW_REM != 0 {
                        let ev = crate::control::flows::FlowRemovedEvent {
                            bridge: id,
                            entry: e.clone(),
                            reason: *why,
                            duration_ms: now.saturating_sub(e.created_ms),
                        };
                        tx(ev);
                    }
                }
            }
        }
        self.journal_flows(bridge, changes);
    }

    /// Queues journal records for `changes` of `bridge`'s flows.
    fn journal_flows(&mut self, bridge: &str, changes: Vec<FlowChange>) {
        if self.journal.is_none() {
            return;
        }
        let b = bridge.to_string();
        self.records.extend(changes.into_iter().map(|c| match c {
            FlowChange::Added(e) => Record::Add {
                b: b.clone(),
                f: syntax::fmt_flow(&e.flow, None),
            },
            FlowChange::Removed(e, _) => Record::Del {
                b: b.clone(),
                f: syntax::fmt_flow(&e.flow, None),
            },
            FlowChange::Cleared => Record::Clear { b: b.clone() },
        }));
    }

    fn flow_error(e: FlowError, verb: &str) -> Reject {
        match e {
            FlowError::TableFull { .. } => reject(ErrorKind::Invalid, format!("{verb}: {e}")),
            FlowError::Overlap(_) => invalid(format!("{verb}: {e}")),
        }
    }

    fn add_flows(&mut self, bridge: &str, text: &str) -> Result<Reply> {
        let b = self.bridge(bridge)?;
        let lookup = |n: &str| b.port_no(n);
        let single = text.lines().filter(|l| !l.trim().is_empty()).count() <= 1;
        let verb = if single { "add-flow" } else { "add-flows" };
        let flows = syntax::parse_flows(text, &lookup).map_err(|e| {
            if single {
                invalid(format!("add-flow: {}", e.source))
            } else {
                invalid(format!("add-flows: {e}; no flows were added"))
            }
        })?;
        let now = self.now_ms();
        let b = self.bridge_mut(bridge)?;
        let n = b
            .flows
            .add_many(flows, now)
            .map_err(|e| Self::flow_error(e, verb))?;
        self.commit_flows(bridge);
        Ok(Self::done("", n as u64))
    }

    fn mod_flows(&mut self, bridge: &str, text: &str, strict: bool) -> Result<Reply> {
        let b = self.bridge(bridge)?;
        let lookup = |n: &str| b.port_no(n);
        let (filter, new) = syntax::parse_flow_mod(text, &lookup)
            .map_err(|e| invalid(format!("mod-flows: {e}")))?;
        let cookie = (filter.cookie_mask == 0 && new.cookie != 0).then_some(new.cookie);
        let b = self.bridge_mut(bridge)?;
        let n = b.flows.modify(&filter, strict, &new.actions, cookie, false);
        self.commit_flows(bridge);
        Ok(Self::done(format!("modified {n} flows"), n as u64))
    }

    fn del_flows(&mut self, bridge: &str, text: &str, strict: bool) -> Result<Reply> {
        let b = self.bridge(bridge)?;
        let lookup = |n: &str| b.port_no(n);
        let filter = syntax::parse_match_filter(text, &lookup)
            .map_err(|e| invalid(format!("del-flows: {e}")))?;
        let b = self.bridge_mut(bridge)?;
        let n = b.flows.delete(&filter, strict);
        self.commit_flows(bridge);
        Ok(Self::done(format!("deleted {n} flows"), n as u64))
    }

    fn replace_flows(&mut self, bridge: &str, text: &str) -> Result<Reply> {
        let b = self.bridge(bridge)?;
        let lookup = |n: &str| b.port_no(n);
        let flows = syntax::parse_flows(text, &lookup)
            .map_err(|e| invalid(format!("replace-flows: {e}; no flows were changed")))?;
        let now = self.now_ms();
        let b = self.bridge_mut(bridge)?;
        let n = b
            .flows
            .replace_all(flows, now)
            .map_err(|e| Self::flow_error(e, "replace-flows"))?;
        self.commit_flows(bridge);
        Ok(Self::done("", n as u64))
    }

    fn dump_flows(&self, bridge: &str, text: &str) -> Result<Reply> {
        let filter = self.flow_filter(bridge, "dump-flows", text)?;
        let now = self.now_ms();
        let flows = self.flow_entries(bridge, &filter);
        Ok(Reply::Flows {
            flows: flows
                .iter()
                .map(|e| crate::control::dump::flow_info(e, now))
                .collect(),
        })
    }

    /// Parses a match filter against `bridge`'s port names; errors start
    /// with `verb`.
    pub fn flow_filter(&self, bridge: &str, verb: &str, text: &str) -> Result<FlowFilter> {
        let b = self.bridge(bridge)?;
        let lookup = |n: &str| b.port_no(n);
        syntax::parse_match_filter(text, &lookup).map_err(|e| invalid(format!("{verb}: {e}")))
    }

    /// Removes flows whose idle or hard timeout has passed (a heap of
    /// deadlines: only flows that are due are looked at). Returns the time
    /// of the next deadline, if any.
    pub fn expire_flows(&mut self) -> Option<u64> {
        let now = self.now_ms();
        let due: Vec<String> = self
            .bridges
            .values()
            .filter(|b| b.flows.next_deadline().is_some_and(|d| d <= now))
            .map(|b| b.name.clone())
            .collect();
        for name in due {
            if let Some(b) = self.bridges.get_mut(&name) {
                b.flows.expire(now);
            }
            self.commit_flows(&name);
        }
        self.bridges
            .values()
            .filter_map(|b| b.flows.next_deadline())
            .min()
    }

    fn trace(&mut self, bridge: &str, text: &str) -> Result<Reply> {
        let b = self.bridge(bridge)?;
        let lookup = |n: &str| b.port_no(n);
        let filter = syntax::parse_match_filter(text, &lookup)
            .map_err(|e| invalid(format!("trace: {e}")))?;
        let key = *filter.m.key();
        if filter.m.mask().in_port == 0 {
            return Err(invalid(
                "trace: the packet needs an input port (in_port=N or in_port=NAME)",
            ));
        }
        if !b.ports.contains_key(&PortNo(key.in_port)) {
            return Err(invalid(format!(
                "trace: in_port={} is not a port of {bridge}",
                key.in_port
            )));
        }
        let id = b.id;
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.worker.send(Command::Trace {
            bridge: id,
            key,
            reply: tx,
        });
        let trace = rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| reject(ErrorKind::Internal, "datapath did not answer"))?;
        let packet = syntax::fmt_match(&filter.m, flowtable::Priority::DEFAULT, None);
        let trace = convert::trace_result(packet, trace);
        Ok(Reply::Trace { trace })
    }

    // ---- config --------------------------------------------------------

    /// Creates what `cfg` describes on an empty switch; stops at the first
    /// error.
    pub fn load(&mut self, cfg: &Config, restoring: bool) -> std::result::Result<(), String> {
        self.restoring = restoring;
        let r = self.load_inner(cfg);
        self.restoring = false;
        r
    }

    fn load_inner(&mut self, cfg: &Config) -> std::result::Result<(), String> {
        let err = |e: Reject| e.message;
        for b in &cfg.bridge {
            self.add_br(&b.name, false).map_err(err)?;
            let mut knobs = Vec::new();
            if let Some(a) = b.mac_aging_time {
                knobs.push(("mac-aging-time".to_string(), a.to_string()));
            }
            if let Some(s) = b.mac_table_size {
                knobs.push(("mac-table-size".to_string(), s.to_string()));
            }
            if let Some(d) = &b.datapath_id {
                knobs.push(("datapath-id".to_string(), d.clone()));
            }
            if let Some(l) = b.flow_limit {
                knobs.push(("flow-limit".to_string(), l.to_string()));
            }
            if !knobs.is_empty() {
                self.set_bridge(&b.name, &knobs).map_err(err)?;
            }
            if !b.controller.is_empty() {
                self.set_controller(&b.name, &b.controller).map_err(err)?;
            }
            if let Some(m) = &b.fail_mode {
                self.dispatch(Request::SetFailMode {
                    bridge: b.name.clone(),
                    mode: m.clone(),
                })
                .map_err(err)?;
            }
            for p in &b.port {
                self.add_port(&b.name, &p.name, &port_settings(p), false)
                    .map_err(err)?;
            }
            if let Some(flows) = &b.flow {
                let text: Vec<&str> = flows.iter().map(|f| f.flow.as_str()).collect();
                self.replace_flows(&b.name, &text.join("\n")).map_err(err)?;
            }
        }
        Ok(())
    }

    /// The running configuration.
    pub fn export(&self) -> Config {
        self.export_config(true)
    }

    /// The running configuration, with or without flows (`flow` unset).
    fn export_config(&self, with_flows: bool) -> Config {
        Config {
            format_version: None,
            journal: None,
            bridge: self
                .bridges
                .values()
                .map(|b| BridgeConfig {
                    name: b.name.clone(),
                    mac_aging_time: Some(b.aging_s),
                    mac_table_size: Some(b.table_size),
                    controller: b.controllers.clone(),
                    fail_mode: b.secure.then(|| "secure".to_string()),
                    datapath_id: b.datapath_id.map(|d| format!("{d:016x}")),
                    flow_limit: (b.flows.limit() != crate::control::flows::DEFAULT_FLOW_LIMIT)
                        .then_some(b.flows.limit() as u64),
                    port: b
                        .ports
                        .values()
                        .filter(|p| p.ofport != PortNo::LOCAL)
                        .map(|p| PortConfig {
                            name: p.name.clone(),
                            kind: Some(p.kind.to_string()),
                            tag: p.vlan.tag.map(|v| v.0),
                            trunks: p.vlan.trunks.iter().map(|v| v.0).collect(),
                            vlan_mode: p.vlan_mode_set.then(|| p.vlan.mode.to_string()),
                            ofport: Some(p.ofport.0),
                            peer: p.peer.clone(),
                        })
                        .collect(),
                    flow: with_flows.then(|| {
                        b.flows
                            .view()
                            .tables
                            .iter()
                            .flat_map(|t| t.iter())
                            .map(|(_, r)| FlowConfig {
                                flow: syntax::fmt_flow(&r.data.flow, None),
                            })
                            .collect()
                    }),
                })
                .collect(),
        }
    }
}

fn port_settings(p: &PortConfig) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if let Some(k) = &p.kind {
        v.push(("type".into(), k.clone()));
    }
    if let Some(t) = p.tag {
        v.push(("tag".into(), t.to_string()));
    }
    if !p.trunks.is_empty() {
        let t: Vec<String> = p.trunks.iter().map(u16::to_string).collect();
        v.push(("trunks".into(), t.join(",")));
    }
    if let Some(m) = &p.vlan_mode {
        v.push(("vlan_mode".into(), m.clone()));
    }
    if let Some(o) = p.ofport {
        v.push(("ofport_request".into(), o.to_string()));
    }
    if let Some(peer) = &p.peer {
        v.push(("peer".into(), peer.clone()));
    }
    v
}

fn port_info(p: &PortState) -> PortInfo {
    PortInfo {
        name: p.name.clone(),
        ofport: p.ofport.0,
        kind: p.kind.to_string(),
        tag: p.vlan.tag.map(|v| v.0),
        trunks: p.vlan.trunks.iter().map(|v| v.0).collect(),
        vlan_mode: p.vlan.mode.to_string(),
        peer: p.peer.clone(),
        up: p.shared.is_up(),
        down_reason: p.shared.down_reason(),
    }
}

/// Applies one OpenFlow FLOW_MOD to `flows` (not published).
fn apply_flow_mod(
    flows: &mut BridgeFlows,
    fm: &crate::openflow::msg::FlowMod,
    of10: bool,
    now: u64,
) -> std::result::Result<(), crate::openflow::error::OfpError> {
    use crate::control::flows::RESET_COUNTS;
    use crate::openflow::error::{flow_mod_failed, ErrorType, OfpError};
    use crate::openflow::msg::FlowModCommand as C;
    let flow_err = |e: FlowError| match e {
        FlowError::TableFull { .. } => {
            OfpError::new(ErrorType::FlowModFailed, flow_mod_failed::TABLE_FULL)
        }
        FlowError::Overlap(_) => OfpError::new(ErrorType::FlowModFailed, flow_mod_failed::OVERLAP),
    };
    match fm.command {
        C::Add => {
            let f = fm.to_flow().map_err(|e| e.error)?;
            flows.add(f, fm.flags, now).map_err(flow_err)
        }
        C::Modify | C::ModifyStrict => {
            let filter = fm.filter();
            let strict = fm.command.is_strict();
            let reset = fm.flags & RESET_COUNTS != 0;
            let n = flows.modify(&filter, strict, &fm.actions, None, reset);
            if n == 0 && of10 {
                // 1.0 has no table id in flow mods: add to table 0.
                let mut add = fm.clone();
                if add.table_id > TableId::MAX.0 {
                    add.table_id = 0;
                }
                let f = add.to_flow().map_err(|e| e.error)?;
                flows.add(f, fm.flags, now).map_err(flow_err)?;
            }
            Ok(())
        }
        C::Delete | C::DeleteStrict => {
            flows.delete(&fm.filter(), fm.command.is_strict());
            Ok(())
        }
    }
}

/// One step of an `apply`.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    DelPort {
        bridge: String,
        name: String,
    },
    DelBr(String),
    AddBr(String),
    SetBridge {
        bridge: String,
        settings: Vec<(String, String)>,
    },
    AddPort {
        bridge: String,
        name: String,
        settings: Vec<(String, String)>,
    },
    SetPort {
        name: String,
        settings: Vec<(String, String)>,
    },
    ReplaceFlows {
        bridge: String,
        flows: Vec<String>,
        added: Vec<String>,
        removed: Vec<String>,
    },
    SetController {
        bridge: String,
        targets: Vec<String>,
    },
    SetFailMode {
        bridge: String,
        mode: String,
    },
}

fn kv_text(settings: &[(String, String)]) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Change {
    /// The change as diff lines.
    fn describe(&self) -> Vec<String> {
        match self {
            Change::DelPort { bridge, name } => vec![format!("- del-port {bridge} {name}")],
            Change::DelBr(b) => vec![format!("- del-br {b}")],
            Change::AddBr(b) => vec![format!("+ add-br {b}")],
            Change::SetBridge { bridge, settings } => {
                vec![format!("~ set bridge {bridge} {}", kv_text(settings))]
            }
            Change::AddPort {
                bridge,
                name,
                settings,
            } => {
                vec![format!("+ add-port {bridge} {name} {}", kv_text(settings))
                    .trim_end()
                    .to_string()]
            }
            Change::SetPort { name, settings } => {
                vec![format!("~ set port {name} {}", kv_text(settings))]
            }
            Change::ReplaceFlows {
                bridge,
                added,
                removed,
                ..
            } => removed
                .iter()
                .map(|f| format!("- flow {bridge}: {f}"))
                .chain(added.iter().map(|f| format!("+ flow {bridge}: {f}")))
                .collect(),
            Change::SetController { bridge, targets } => {
                vec![format!("~ set-controller {bridge} {}", targets.join(" "))
                    .trim_end()
                    .to_string()]
            }
            Change::SetFailMode { bridge, mode } => {
                vec![format!("~ set-fail-mode {bridge} {mode}")]
            }
        }
    }
}

/// Where in a config text an error lies: the `bridge`-th `[[bridge]]`
/// table, optionally its `n`-th `[[bridge.port]]` or `[[bridge.flow]]`
/// table, optionally a key in that table.
#[derive(Debug, Clone, Copy)]
struct Spot<'k> {
    bridge: usize,
    sub: Option<(&'static str, usize)>,
    key: Option<&'k str>,
}

/// Line (1-based) of `spot` in `text`, written in the usual layout (one
/// `[[bridge]]` / `[[bridge.port]]` / `[[bridge.flow]]` header per table,
/// one `key = value` per line, as `export` writes it). Falls back to the
/// table's header line when the key is not on a line of its own, and to
/// `None` when the tables are not found (e.g. inline tables).
fn line_of(text: &str, spot: Spot<'_>) -> Option<usize> {
    let header = |l: &str| -> Option<String> {
        let l = l.trim();
        let inner = l.strip_prefix("[[")?.split("]]").next()?;
        Some(inner.trim().to_string())
    };
    let mut bridge = None::<usize>;
    // Tables of each kind seen so far in the current bridge.
    let (mut n_port, mut n_flow) = (0usize, 0usize);
    let mut cur_sub: Option<&str>;
    let mut table_line = None;
    for (i, l) in text.lines().enumerate() {
        if let Some(h) = header(l) {
            if table_line.is_some() {
                // Left the table we were in without finding the key.
                break;
            }
            match h.as_str() {
                "bridge" => {
                    bridge = Some(bridge.map_or(0, |b| b + 1));
                    (n_port, n_flow) = (0, 0);
                    cur_sub = None;
                }
                "bridge.port" => {
                    cur_sub = Some("port");
                    n_port += 1;
                }
                "bridge.flow" => {
                    cur_sub = Some("flow");
                    n_flow += 1;
                }
                _ => cur_sub = Some("other"),
            }
            let sub_n = if cur_sub == Some("port") {
                n_port
            } else {
                n_flow
            };
            let here = bridge == Some(spot.bridge)
                && match spot.sub {
                    None => cur_sub.is_none(),
                    Some((kind, n)) => cur_sub == Some(kind) && sub_n == n + 1,
                };
            if here {
                table_line = Some(i + 1);
                if spot.key.is_none() {
                    return table_line;
                }
            }
            continue;
        }
        if let (Some(_), Some(key)) = (table_line, spot.key) {
            let t = l.trim_start();
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return Some(i + 1);
                }
            }
        }
    }
    table_line
}
/// A desired bridge: name, ports, flows.
type WantBridge<'a> = (String, Vec<WantPort<'a>>, Vec<Flow>);

/// A desired port with its resolved settings.
struct WantPort<'a> {
    cfg: &'a PortConfig,
    kind: Option<PortKind>,
    vlan: VlanConfig,
    ofport: PortNo,
}

impl Switch {
    /// Re-attaches system ports whose netdev was missing or vanished and
    /// exists again.
    pub fn reattach(&mut self) {
        for b in self.bridges.values() {
            for p in b.ports.values() {
                if p.kind != PortKind::System || p.shared.is_up() || !netdev::exists(&p.name) {
                    continue;
                }
                match AfPacketPort::open(&p.name) {
                    Ok(io) => {
                        p.shared.set_up();
                        self.worker.send(Command::AttachIo {
                            bridge: b.id,
                            ofport: p.ofport,
                            io: Arc::new(PortIo::AfPacket(io)),
                        });
                    }
                    Err(e) => log::debug!("port {}: not attached yet: {e}", p.name),
                }
            }
        }
    }

    /// Checks `want` completely and resolves port numbers; errors name the
    /// file, line and key.
    fn resolve<'a>(
        &self,
        want: &'a Config,
        text: &str,
        origin: &str,
    ) -> Result<Vec<WantBridge<'a>>> {
        let at = |spot: Spot<'_>| match line_of(text, spot) {
            Some(l) => format!("{origin}: line {l}"),
            None => origin.to_string(),
        };
        let br_at = |bi: usize, key: &'static str| {
            at(Spot {
                bridge: bi,
                sub: None,
                key: Some(key),
            })
        };
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (bi, b) in want.bridge.iter().enumerate() {
            netdev::validate_name(&b.name)
                .map_err(|e| invalid(format!("{}: bridge name: {e}", br_at(bi, "name"))))?;
            if seen.insert(&b.name, &b.name).is_some() {
                return Err(invalid(format!(
                    "{}: bridge {} is defined twice",
                    br_at(bi, "name"),
                    b.name
                )));
            }
        }
        let mut out = Vec::new();
        for (bi, b) in want.bridge.iter().enumerate() {
            if let Some(a) = b.mac_aging_time {
                if !(15..=3600).contains(&a) {
                    return Err(invalid(format!(
                        "{}: bridge {}: mac_aging_time = {a} is outside 15-3600 seconds",
                        br_at(bi, "mac_aging_time"),
                        b.name
                    )));
                }
            }
            if let Some(n) = b.mac_table_size {
                if !(10..=1_000_000).contains(&n) {
                    return Err(invalid(format!(
                        "{}: bridge {}: mac_table_size = {n} is outside 10-1000000",
                        br_at(bi, "mac_table_size"),
                        b.name
                    )));
                }
            }
            for t in &b.controller {
                t.parse::<Target>().map_err(|e| {
                    invalid(format!(
                        "{}: bridge {}: controller = \"{t}\": {e}",
                        br_at(bi, "controller"),
                        b.name
                    ))
                })?;
            }
            if let Some(m) = &b.fail_mode {
                if parse_fail_mode(m).is_none() {
                    return Err(invalid(format!(
                        "{}: bridge {}: fail_mode = \"{m}\": expected standalone or secure",
                        br_at(bi, "fail_mode"),
                        b.name
                    )));
                }
            }
            if let Some(d) = &b.datapath_id {
                if parse_dpid(d).is_none() {
                    return Err(invalid(format!(
                        "{}: bridge {}: datapath_id = \"{d}\": expected 16 hex digits",
                        br_at(bi, "datapath_id"),
                        b.name
                    )));
                }
            }
            let cur = self.bridges.get(&b.name);
            let mut ports = Vec::new();
            let mut taken: HashMap<PortNo, &str> = HashMap::new();
            for (pi, p) in b.port.iter().enumerate() {
                let ctx = |key: &str| {
                    let where_ = at(Spot {
                        bridge: bi,
                        sub: Some(("port", pi)),
                        key: Some(key),
                    });
                    format!("{where_}: bridge {} port {}", b.name, p.name)
                };
                netdev::validate_name(&p.name)
                    .map_err(|e| invalid(format!("{}: {e}", ctx("name"))))?;
                if let Some(other) = seen.insert(&p.name, &b.name) {
                    let ctx = ctx("name");
                    return Err(invalid(if other == p.name {
                        format!("{ctx}: {} is a bridge name", p.name)
                    } else if other == b.name {
                        format!("{ctx}: duplicate port name")
                    } else {
                        format!("{ctx}: {} is also a port of bridge {other}", p.name)
                    }));
                }
                let kind = match &p.kind {
                    Some(k) => Some(k.parse::<PortKind>().map_err(|_| {
                        invalid(format!(
                            "{}: type = \"{k}\": expected tap, system, internal or patch",
                            ctx("type")
                        ))
                    })?),
                    None => None,
                };
                let mode = match &p.vlan_mode {
                    Some(m) => Some(m.parse::<VlanMode>().map_err(|_| {
                        invalid(format!(
                            "{}: vlan_mode = \"{m}\": expected access, trunk, native-tagged or native-untagged",
                            ctx("vlan_mode")
                        ))
                    })?),
                    None => None,
                };
                let vlan = VlanConfig::new(
                    mode,
                    p.tag.map(Vid),
                    p.trunks.iter().copied().map(Vid).collect(),
                )
                .map_err(|e| {
                    let key = match e {
                        VlanError::TrunkOutOfRange(_) | VlanError::TrunksOnAccess => "trunks",
                        VlanError::UnknownMode(_) => "vlan_mode",
                        VlanError::MissingTag(_) if p.vlan_mode.is_some() => "vlan_mode",
                        _ => "tag",
                    };
                    invalid(format!("{}: {e}", ctx(key)))
                })?;
                let is_patch =
                    kind == Some(PortKind::Patch) || (kind.is_none() && p.peer.is_some());
                if is_patch && p.peer.is_none() {
                    return Err(invalid(format!("{}: a patch port needs peer", ctx("type"))));
                }
                if !is_patch && p.peer.is_some() {
                    return Err(invalid(format!(
                        "{}: peer is only for type = \"patch\"",
                        ctx("peer")
                    )));
                }
                if let Some(o) = p.ofport {
                    if o == 0 || o > PortNo::MAX.0 {
                        return Err(invalid(format!(
                            "{}: ofport = {o} is outside 1-{}",
                            ctx("ofport"),
                            PortNo::MAX.0
                        )));
                    }
                    if let Some(prev) = taken.insert(PortNo(o), &p.name) {
                        return Err(invalid(format!(
                            "{}: ofport {o} is also requested by {prev}",
                            ctx("ofport")
                        )));
                    }
                }
                ports.push(WantPort {
                    cfg: p,
                    kind,
                    vlan,
                    ofport: PortNo(p.ofport.unwrap_or(0)),
                });
            }
            // Unnumbered ports keep their current number, else get the
            // lowest free one.
            for wp in ports.iter_mut().filter(|w| w.ofport.0 == 0) {
                if let Some(no) = cur.and_then(|c| c.port_no(&wp.cfg.name)) {
                    if let std::collections::hash_map::Entry::Vacant(e) = taken.entry(no) {
                        wp.ofport = no;
                        e.insert(&wp.cfg.name);
                    }
                }
            }
            for wp in ports.iter_mut().filter(|w| w.ofport.0 == 0) {
                let no = (1..=PortNo::MAX.0)
                    .map(PortNo)
                    .find(|n| !taken.contains_key(n))
                    .ok_or_else(|| {
                        invalid(format!("{origin}: bridge {}: no free port number", b.name))
                    })?;
                wp.ofport = no;
                taken.insert(no, &wp.cfg.name);
            }
            let names: HashMap<&str, PortNo> = ports
                .iter()
                .map(|w| (w.cfg.name.as_str(), w.ofport))
                .collect();
            let lookup = |n: &str| names.get(n).copied();
            let mut flows = Vec::new();
            match &b.flow {
                Some(fs) => {
                    for (i, f) in fs.iter().enumerate() {
                        let fl = syntax::parse_flow(&f.flow, &lookup).map_err(|e| {
                            invalid(format!(
                                "{}: bridge {} flow {}: {e}",
                                at(Spot {
                                    bridge: bi,
                                    sub: Some(("flow", i)),
                                    key: Some("flow"),
                                }),
                                b.name,
                                i + 1
                            ))
                        })?;
                        flows.push(fl);
                    }
                }
                None => flows.push(
                    syntax::parse_flow("priority=0,actions=NORMAL", &|_| None)
                        .map_err(|e| reject(ErrorKind::Internal, e.to_string()))?,
                ),
            }
            out.push((b.name.clone(), ports, flows));
        }
        Ok(out)
    }

    /// The steps from the running state to `want`.
    fn plan(&self, want: &Config, text: &str, origin: &str) -> Result<Vec<Change>> {
        let resolved = self.resolve(want, text, origin)?;
        let mut dels = Vec::new();
        let mut del_brs = Vec::new();
        let mut adds = Vec::new();
        let wanted_port: HashMap<&str, (&str, &WantPort<'_>)> = resolved
            .iter()
            .flat_map(|(b, ps, _)| {
                ps.iter()
                    .map(move |p| (p.cfg.name.as_str(), (b.as_str(), p)))
            })
            .collect();
        // Ports that go away or must be re-created.
        for (bname, b) in &self.bridges {
            for p in b.ports.values().filter(|p| p.ofport != PortNo::LOCAL) {
                let recreate = match wanted_port.get(p.name.as_str()) {
                    None => true,
                    Some((wb, wp)) => {
                        *wb != bname
                            || wp.ofport != p.ofport
                            || wp.kind.is_some_and(|k| k != p.kind)
                            || (wp.kind.is_none()
                                && p.kind == PortKind::Patch
                                && wp.cfg.peer.is_none())
                    }
                };
                let bridge_goes = !resolved.iter().any(|(n, _, _)| n == bname);
                if recreate && !bridge_goes {
                    dels.push(Change::DelPort {
                        bridge: bname.clone(),
                        name: p.name.clone(),
                    });
                }
            }
            if !resolved.iter().any(|(n, _, _)| n == bname) {
                del_brs.push(Change::DelBr(bname.clone()));
            }
        }
        for (bname, ports, flows) in &resolved {
            let wb = want.bridge.iter().find(|b| &b.name == bname);
            let cur = self.bridges.get(bname);
            if cur.is_none() {
                adds.push(Change::AddBr(bname.clone()));
            }
            let aging = wb.and_then(|b| b.mac_aging_time).unwrap_or(DEFAULT_AGING_S);
            let size = wb
                .and_then(|b| b.mac_table_size)
                .unwrap_or(DEFAULT_TABLE_SIZE);
            let (ca, cs) = cur.map_or((DEFAULT_AGING_S, DEFAULT_TABLE_SIZE), |c| {
                (c.aging_s, c.table_size)
            });
            let mut knobs = Vec::new();
            if aging != ca {
                knobs.push(("mac-aging-time".to_string(), aging.to_string()));
            }
            if size != cs {
                knobs.push(("mac-table-size".to_string(), size.to_string()));
            }
            let want_dpid = wb
                .and_then(|b| b.datapath_id.as_deref())
                .and_then(parse_dpid);
            if want_dpid != cur.and_then(|c| c.datapath_id) {
                knobs.push((
                    "datapath-id".to_string(),
                    want_dpid.map(|d| format!("{d:016x}")).unwrap_or_default(),
                ));
            }
            let want_limit = wb
                .and_then(|b| b.flow_limit)
                .map_or(crate::control::flows::DEFAULT_FLOW_LIMIT, |l| l as usize);
            let cur_limit = cur.map_or(crate::control::flows::DEFAULT_FLOW_LIMIT, |c| {
                c.flows.limit()
            });
            if want_limit != cur_limit {
                knobs.push(("flow-limit".to_string(), want_limit.to_string()));
            }
            let want_ctl = wb.map(|b| b.controller.clone()).unwrap_or_default();
            if cur.map_or(!want_ctl.is_empty(), |c| c.controllers != want_ctl) {
                adds.push(Change::SetController {
                    bridge: bname.clone(),
                    targets: want_ctl,
                });
            }
            let want_secure = wb
                .and_then(|b| b.fail_mode.as_deref())
                .and_then(parse_fail_mode)
                .unwrap_or(false);
            if cur.map_or(want_secure, |c| c.secure != want_secure) {
                adds.push(Change::SetFailMode {
                    bridge: bname.clone(),
                    mode: if want_secure { "secure" } else { "standalone" }.to_string(),
                });
            }
            if !knobs.is_empty() {
                adds.push(Change::SetBridge {
                    bridge: bname.clone(),
                    settings: knobs,
                });
            }
            for wp in ports {
                let existing = cur
                    .and_then(|c| c.ports.get(&wp.ofport))
                    .filter(|p| p.name == wp.cfg.name)
                    .filter(|p| {
                        !dels
                            .iter()
                            .any(|d| matches!(d, Change::DelPort { name, .. } if *name == p.name))
                    });
                let mut vlan_settings = vec![
                    (
                        "tag".to_string(),
                        wp.vlan.tag.map(|v| v.0.to_string()).unwrap_or_default(),
                    ),
                    (
                        "trunks".to_string(),
                        wp.vlan
                            .trunks
                            .iter()
                            .map(|v| v.0.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    (
                        "vlan_mode".to_string(),
                        wp.cfg.vlan_mode.clone().unwrap_or_default(),
                    ),
                ];
                match existing {
                    Some(p) => {
                        let mut settings = Vec::new();
                        if p.vlan != wp.vlan || p.vlan_mode_set != wp.cfg.vlan_mode.is_some() {
                            settings.append(&mut vlan_settings);
                        }
                        if p.kind == PortKind::Patch
                            && wp.cfg.peer.is_some()
                            && p.peer != wp.cfg.peer
                        {
                            settings.push((
                                "peer".to_string(),
                                wp.cfg.peer.clone().unwrap_or_default(),
                            ));
                        }
                        if !settings.is_empty() {
                            adds.push(Change::SetPort {
                                name: wp.cfg.name.clone(),
                                settings,
                            });
                        }
                    }
                    None => {
                        let mut settings: Vec<(String, String)> = port_settings(wp.cfg)
                            .into_iter()
                            .filter(|(k, _)| k != "ofport_request")
                            .collect();
                        settings.push(("ofport_request".to_string(), wp.ofport.0.to_string()));
                        vlan_settings.clear();
                        adds.push(Change::AddPort {
                            bridge: bname.clone(),
                            name: wp.cfg.name.clone(),
                            settings,
                        });
                    }
                }
            }
            let want_text: Vec<String> = flows.iter().map(|f| syntax::fmt_flow(f, None)).collect();
            let cur_text: Vec<String> = match cur {
                Some(c) => c
                    .flows
                    .view()
                    .tables
                    .iter()
                    .flat_map(|t| t.iter())
                    .map(|(_, r)| syntax::fmt_flow(&r.data.flow, None))
                    .collect(),
                None => vec![syntax::fmt_flow(
                    &syntax::parse_flow("priority=0,actions=NORMAL", &|_| None)
                        .map_err(|e| reject(ErrorKind::Internal, e.to_string()))?,
                    None,
                )],
            };
            let (mut ws, mut cs) = (want_text.clone(), cur_text.clone());
            ws.sort();
            cs.sort();
            if ws != cs {
                // Sets, not `contains` on the lists: linear, not quadratic.
                let (want_set, cur_set): (HashSet<&String>, HashSet<&String>) =
                    (want_text.iter().collect(), cur_text.iter().collect());
                let added = want_text
                    .iter()
                    .filter(|f| !cur_set.contains(f))
                    .cloned()
                    .collect();
                let removed = cur_text
                    .iter()
                    .filter(|f| !want_set.contains(f))
                    .cloned()
                    .collect();
                adds.push(Change::ReplaceFlows {
                    bridge: bname.clone(),
                    flows: want_text,
                    added,
                    removed,
                });
            }
        }
        let mut all = dels;
        all.append(&mut del_brs);
        all.append(&mut adds);
        Ok(all)
    }

    fn exec(&mut self, c: &Change) -> Result<()> {
        match c {
            Change::DelPort { bridge, name } => self.del_port(Some(bridge), name, false),
            Change::DelBr(b) => self.del_br(b, false),
            Change::AddBr(b) => self.add_br(b, false),
            Change::SetBridge { bridge, settings } => self.set_bridge(bridge, settings),
            Change::AddPort {
                bridge,
                name,
                settings,
            } => self.add_port(bridge, name, settings, false),
            Change::SetPort { name, settings } => self.set_port(name, settings),
            Change::ReplaceFlows { bridge, flows, .. } => {
                self.replace_flows(bridge, &flows.join("\n"))
            }
            Change::SetController { bridge, targets } => self.set_controller(bridge, targets),
            Change::SetFailMode { bridge, mode } => self.dispatch(Request::SetFailMode {
                bridge: bridge.clone(),
                mode: mode.clone(),
            }),
        }
        .map(|_| ())
    }

    /// Checks `want` (parsed from `text`, read from `origin`) as `apply`
    /// would, without changing anything; the error names file, line and key.
    pub fn check(
        &self,
        want: &Config,
        text: &str,
        origin: &str,
    ) -> std::result::Result<(), String> {
        self.resolve(want, text, origin)
            .map(|_| ())
            .map_err(|e| e.message)
    }

    /// `apply`: makes the running state equal to `want` (parsed from
    /// `text`, which error messages point into), all or nothing.
    fn apply_text(
        &mut self,
        want: &Config,
        text: &str,
        origin: &str,
        dry_run: bool,
    ) -> Result<Reply> {
        let plan = self.plan(want, text, origin)?;
        let changes: Vec<String> = plan.iter().flat_map(Change::describe).collect();
        if dry_run || plan.is_empty() {
            return Ok(Reply::Apply {
                changes,
                applied: false,
            });
        }
        let before = self.export();
        for c in &plan {
            if let Err(e) = self.exec(c) {
                // Roll back to where we started, best effort.
                let before_text = toml::to_string(&before).unwrap_or_default();
                match self.plan(&before, &before_text, "<rollback>") {
                    Ok(undo) => {
                        for u in &undo {
                            if let Err(ue) = self.exec(u) {
                                log::error!(
                                    "apply rollback: {}: {}",
                                    u.describe().join("; "),
                                    ue.message
                                );
                            }
                        }
                    }
                    Err(pe) => log::error!("apply rollback: {}", pe.message),
                }
                return Err(reject(
                    e.kind,
                    format!(
                        "{origin}: {}: {}; the previous state was restored",
                        c.describe().join("; "),
                        e.message
                    ),
                ));
            }
        }
        Ok(Reply::Apply {
            changes,
            applied: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
[[bridge]]
name = \"a\"
[[bridge.port]]
name = \"p1\"
[[bridge.flow]]
flow = \"actions=drop\"
[[bridge.port]]
name = \"p2\"
tag = 5000

[[bridge]]
name = \"b\"
mac_aging_time = 1
[[bridge.port]]
name = \"p1\"
";

    fn spot(bridge: usize, sub: Option<(&'static str, usize)>, key: &str) -> Option<usize> {
        line_of(
            TEXT,
            Spot {
                bridge,
                sub,
                key: Some(key),
            },
        )
    }

    #[test]
    fn table_counts_report_the_datapath_lookups() {
        use flowtable::classifier::{CounterPolicy, Rule};
        use flowtable::key::FlowKey;
        let mut p = Pipeline::new(2);
        let flow =
            syntax::parse_flow("table=1,priority=5,actions=drop", &|_: &str| None).expect("flow");
        let rule = Rule::new(flow.m, flow.priority, Arc::new(FlowEntry::new(flow, 0, 2)));
        p.table_mut(1).insert(rule, 0, CounterPolicy::Reset);
        let k = FlowKey::default();
        // Lookups as the datapath counts them, on two workers.
        for (w, t) in [(0, 0u8), (1, 1), (0, 1)] {
            let hit = p.lookup(t, &k).is_some();
            assert_eq!(hit, t == 1);
            p.stats.count(w, t, hit);
        }
        let c = table_counts(&p);
        assert_eq!(c.len(), 255);
        assert_eq!(
            c[0],
            OfTableCounts {
                table: 0,
                active: 0,
                lookups: 1,
                matched: 0
            }
        );
        assert_eq!(
            c[1],
            OfTableCounts {
                table: 1,
                active: 1,
                lookups: 2,
                matched: 2
            }
        );
        assert_eq!(
            c[254],
            OfTableCounts {
                table: 254,
                ..Default::default()
            }
        );
    }

    #[test]
    fn line_of_finds_the_key_in_its_own_table() {
        assert_eq!(spot(0, None, "name"), Some(2));
        assert_eq!(spot(1, None, "name"), Some(12));
        assert_eq!(spot(1, None, "mac_aging_time"), Some(13));
        // Port tables are counted apart from flow tables.
        assert_eq!(spot(0, Some(("port", 1)), "tag"), Some(9));
        assert_eq!(spot(0, Some(("flow", 0)), "flow"), Some(6));
        // The second bridge's p1, not the first's.
        assert_eq!(spot(1, Some(("port", 0)), "name"), Some(15));
        // A key that is absent: the table header.
        assert_eq!(spot(0, Some(("port", 0)), "tag"), Some(3));
        assert_eq!(spot(2, None, "name"), None);
    }
}
