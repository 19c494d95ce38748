//! The control protocol between `rvsctl` (or any client) and `rvsd`.
//!
//! # Wire format
//! JSON lines over a unix stream socket: the client writes one [`Request`]
//! as a single line of JSON, the daemon answers with one [`Response`] line.
//! A connection may carry many requests, one at a time. Lines longer than
//! [`MAX_LINE`] bytes are rejected and the connection is closed.
//!
//! # Replies of any size
//! A reply whose line fits in [`MAX_LINE`] is one line, as above. A larger
//! one (`dump-flows`, `export`, `dump-ports`, `fdb-show`, `apply`) is
//! streamed (see [`crate::stream`]): a header line
//! `{"ok":true,"stream":{"key":"flows"}}`, then chunk lines
//! `{"chunk":{"flows":[...]}}` of at most [`crate::stream::CHUNK_ITEMS`]
//! items or about [`crate::stream::CHUNK_BYTES`] bytes, each a complete
//! [`Reply`] of the same variant holding the next items (for `export` the
//! next piece of the TOML text), then an end line
//! `{"end":{"items":N,"chunks":M}}` with which the client checks that
//! nothing was lost. An error line (`{"ok":false,...}`) may end a stream
//! early.
//!
//! # Requests of any size
//! A request carrying a flow file or configuration whose line would not
//! fit in [`MAX_LINE`] is sent in pieces: [`Request::Upload`] lines append
//! the text to a per-connection buffer (each names the offset it starts
//! at, so a lost or repeated piece is noticed; offset 0 starts afresh),
//! and [`Request::WithUpload`] carries the request itself with the last
//! piece: the daemon puts the uploaded text before the request's own and
//! runs it as one request, all or nothing. Uploads are capped at
//! [`MAX_UPLOAD`] bytes, and lines of uploaded text at [`MAX_TEXT_LINE`].
//!
//! Requests are internally tagged by `"type"`, e.g.
//! `{"type":"add_br","name":"br0","may_exist":false}`; responses are
//! `{"ok":true,"result":{...}}` or
//! `{"ok":false,"error":{"kind":"not_found","message":"no bridge named br9"}}`.
//!
//! Flows travel as OVS flow-syntax text and are parsed by the daemon, which
//! knows the port names (`output:tap0`).

use serde::{Deserialize, Serialize};

/// Longest request or response line accepted, in bytes.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// Most text one request may carry through [`Request::Upload`], in bytes.
pub const MAX_UPLOAD: u64 = 2 << 30;

/// Longest line of uploaded text (a flow or a TOML line), in bytes.
pub const MAX_TEXT_LINE: usize = 1024 * 1024;

/// A request from a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Liveness check; returns the daemon version.
    Ping {},
    /// Create a bridge.
    AddBr {
        /// Bridge name (also the name of its LOCAL tap).
        name: String,
        /// Succeed if it already exists.
        #[serde(default)]
        may_exist: bool,
    },
    /// Delete a bridge and all its ports and flows.
    DelBr {
        /// Bridge name.
        name: String,
        /// Succeed if it does not exist.
        #[serde(default)]
        if_exists: bool,
    },
    /// Bridge names.
    ListBr {},
    /// Everything: bridges, ports, state.
    Show {},
    /// Add a port to a bridge.
    AddPort {
        /// Bridge name.
        bridge: String,
        /// Port (and netdev) name.
        name: String,
        /// `key=value` settings: `type`, `tag`, `trunks`, `vlan_mode`,
        /// `ofport_request`, `peer`, `options:KEY` (tunnel ports).
        #[serde(default)]
        settings: Vec<(String, String)>,
        /// Succeed if the port already exists on that bridge.
        #[serde(default)]
        may_exist: bool,
    },
    /// Remove a port.
    DelPort {
        /// Bridge the port must be on, if given.
        bridge: Option<String>,
        /// Port name.
        name: String,
        /// Succeed if it does not exist.
        #[serde(default)]
        if_exists: bool,
    },
    /// Ports of one bridge.
    ListPorts {
        /// Bridge name.
        bridge: String,
    },
    /// Change a port's settings (`tag`, `trunks`, `vlan_mode`; empty value clears).
    SetPort {
        /// Port name.
        name: String,
        /// `key=value` settings.
        settings: Vec<(String, String)>,
    },
    /// Change a bridge's knobs (`mac-aging-time`, `mac-table-size`,
    /// `datapath-id`, `flow-limit`, `vlan-limit`).
    SetBridge {
        /// Bridge name.
        name: String,
        /// `key=value` settings.
        settings: Vec<(String, String)>,
    },
    /// Replace a bridge's OpenFlow controller targets.
    SetController {
        /// Bridge name.
        bridge: String,
        /// Targets: `ptcp:PORT[:IP]`, `pssl:PORT[:IP]`, `punix:PATH`,
        /// `tcp:IP[:PORT]`, `ssl:IP[:PORT]`, `unix:PATH`.
        targets: Vec<String>,
    },
    /// A bridge's controller targets, fail mode and datapath id.
    GetController {
        /// Bridge name.
        bridge: String,
    },
    /// Remove all of a bridge's controllers.
    DelController {
        /// Bridge name.
        bridge: String,
    },
    /// Set the fail mode (`standalone` or `secure`; empty: default).
    SetFailMode {
        /// Bridge name.
        bridge: String,
        /// The mode.
        mode: String,
    },
    /// Add flows (one or many); all or nothing.
    AddFlows {
        /// Bridge name.
        bridge: String,
        /// Flow file text: one flow per line, `#` comments allowed.
        text: String,
    },
    /// Modify the actions of matching flows.
    ModFlows {
        /// Bridge name.
        bridge: String,
        /// Flow with match and new actions.
        flow: String,
        /// Match exactly (match and priority) instead of loosely.
        #[serde(default)]
        strict: bool,
    },
    /// Delete matching flows (all when `filter` is empty).
    DelFlows {
        /// Bridge name.
        bridge: String,
        /// Match filter in flow syntax.
        #[serde(default)]
        filter: String,
        /// Match exactly (match and priority) instead of loosely.
        #[serde(default)]
        strict: bool,
    },
    /// Replace all flows with the given set, atomically.
    ReplaceFlows {
        /// Bridge name.
        bridge: String,
        /// Flow file text.
        text: String,
    },
    /// List flows matching a filter.
    DumpFlows {
        /// Bridge name.
        bridge: String,
        /// Match filter in flow syntax; empty = all.
        #[serde(default)]
        filter: String,
    },
    /// Port counters.
    DumpPorts {
        /// Bridge name.
        bridge: String,
        /// One port only.
        port: Option<String>,
    },
    /// MAC learning table.
    FdbShow {
        /// Bridge name.
        bridge: String,
    },
    /// Empty the MAC learning table.
    FdbFlush {
        /// Bridge name.
        bridge: String,
    },
    /// Add a meter, or with `modify` replace one (`add-meter`,
    /// `mod-meter`; ovs-ofctl's syntax:
    /// `meter=1,kbps,burst,bands=type=drop,rate=10000,burst_size=1000`).
    AddMeter {
        /// Bridge name.
        bridge: String,
        /// The meter in ovs-ofctl's syntax.
        meter: String,
        /// Replace an existing meter instead of adding a new one.
        #[serde(default)]
        modify: bool,
    },
    /// Delete meters and the flows that use them (`del-meters`).
    DelMeters {
        /// Bridge name.
        bridge: String,
        /// `meter=N`, `N` or `all`; empty: all.
        #[serde(default)]
        meter: String,
    },
    /// Meters with their configuration and statistics (`dump-meters`,
    /// `meter-stats`).
    DumpMeters {
        /// Bridge name.
        bridge: String,
        /// `meter=N`, `N` or `all`; empty: all.
        #[serde(default)]
        meter: String,
    },
    /// Datapath worker statistics (`pmd-stats-show`).
    PmdStatsShow {},
    /// The daemon's memory: resident, in use, per bridge (`memory-show`,
    /// like `ovs-appctl memory/show`).
    MemoryShow {},
    /// Make the running state equal to a whole TOML configuration.
    Apply {
        /// The TOML text.
        text: String,
        /// File name, for error messages.
        #[serde(default)]
        origin: String,
        /// Only compute and report the difference.
        #[serde(default)]
        dry_run: bool,
    },
    /// The running state as TOML.
    Export {},
    /// Run a synthetic packet through the pipeline.
    Trace {
        /// Bridge name.
        bridge: String,
        /// Packet description in flow syntax.
        flow: String,
    },
    /// Appends a piece of text to this connection's upload buffer, for the
    /// [`Request::WithUpload`] that follows. Answered with
    /// [`Reply::Done`] whose `count` is the bytes buffered so far.
    Upload {
        /// Where this piece starts: the bytes already buffered (0 starts a
        /// new upload, discarding an unfinished one).
        offset: u64,
        /// The piece.
        text: String,
    },
    /// Runs `request` (`add_flows`, `replace_flows` or `apply`) with the
    /// uploaded text put before its own `text`, and empties the buffer.
    WithUpload {
        /// Bytes uploaded before, which must equal what was buffered.
        bytes: u64,
        /// The request.
        request: Box<Request>,
    },
    /// Debug builds only, and only when rvsd was started with
    /// `--debug-faults`: makes the daemon fail on purpose, for the tests
    /// of its crash handling (`tests/state_panic.rs`). `fault` is
    /// `control-panic` (a panic in the request handler, under the switch
    /// lock), `task-panic` (in a tokio task), `worker-panic` or
    /// `worker-error` (datapath worker 0 panics, or its loop returns an
    /// error). Release builds have no such request: it is rejected as
    /// unknown like any other.
    #[cfg(debug_assertions)]
    DebugFault {
        /// Which failure.
        fault: String,
    },
}

impl Request {
    /// This request with `text` in place of its file text; `None` for
    /// requests without one (see [`Request::text_mut`]).
    pub fn with_text(&self, text: String) -> Option<Request> {
        Some(match self {
            Request::AddFlows { bridge, .. } => Request::AddFlows {
                bridge: bridge.clone(),
                text,
            },
            Request::ReplaceFlows { bridge, .. } => Request::ReplaceFlows {
                bridge: bridge.clone(),
                text,
            },
            Request::Apply {
                origin, dry_run, ..
            } => Request::Apply {
                text,
                origin: origin.clone(),
                dry_run: *dry_run,
            },
            _ => return None,
        })
    }

    /// The file text this request carries (see [`Request::text_mut`]).
    pub fn text(&self) -> Option<&str> {
        match self {
            Request::AddFlows { text, .. }
            | Request::ReplaceFlows { text, .. }
            | Request::Apply { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The file text this request carries, for the requests whose text
    /// may be uploaded in pieces (`add_flows`, `replace_flows`, `apply`).
    pub fn text_mut(&mut self) -> Option<&mut String> {
        match self {
            Request::AddFlows { text, .. }
            | Request::ReplaceFlows { text, .. }
            | Request::Apply { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// The daemon's answer to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    /// Success.
    Ok {
        /// Always true.
        ok: bool,
        /// Command-specific result.
        result: Reply,
    },
    /// Rejected.
    Err {
        /// Always false.
        ok: bool,
        /// What went wrong.
        error: ErrorBody,
    },
    /// Success, with a reply too large for one line: [`StreamLine`]s follow.
    Stream {
        /// Always true.
        ok: bool,
        /// What the chunks carry.
        stream: StreamHead,
    },
}

/// The header of a streamed reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamHead {
    /// The field of [`Reply`] whose items the chunks carry (`flows`,
    /// `ports`, `fdb`, `changes`, `toml`).
    pub key: String,
}

/// A line after a [`Response::Stream`] header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StreamLine {
    /// The next items, as a reply of the stream's variant.
    Chunk {
        /// The items.
        chunk: Reply,
    },
    /// The last line of a complete stream.
    End {
        /// Totals to check against.
        end: StreamEnd,
    },
    /// The stream broke off; what was received is incomplete.
    Err {
        /// Always false.
        ok: bool,
        /// What went wrong.
        error: ErrorBody,
    },
}

/// The totals in the end line of a streamed reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEnd {
    /// Items sent: list elements, or bytes of text for `toml`.
    pub items: u64,
    /// Chunk lines sent.
    pub chunks: u64,
}

impl Response {
    /// A success response.
    pub fn ok(result: Reply) -> Response {
        Response::Ok { ok: true, result }
    }

    /// An error response.
    pub fn err(kind: ErrorKind, message: impl Into<String>) -> Response {
        Response::Err {
            ok: false,
            error: ErrorBody {
                kind,
                message: message.into(),
            },
        }
    }
}

/// Why a request was rejected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Category.
    pub kind: ErrorKind,
    /// Human-readable sentence naming what was wrong.
    pub message: String,
}

/// Error categories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request line was not valid JSON or not a known request.
    BadRequest,
    /// A named bridge, port or flow does not exist.
    NotFound,
    /// The thing to create exists already.
    Exists,
    /// An argument is invalid (flow syntax, VLAN id, setting).
    Invalid,
    /// The kernel refused (TAP creation, netdev attach).
    System,
    /// Anything else.
    Internal,
}

/// A configured controller target that is not running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailingController {
    /// The target, as configured.
    pub target: String,
    /// Why it does not run.
    pub error: String,
}

/// Command-specific results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    /// Bridges with their ports (`show`, `list-br`, `list-ports`).
    Bridges {
        /// The bridges.
        bridges: Vec<BridgeInfo>,
    },
    /// Flows (`dump-flows`).
    Flows {
        /// The flows in dump order.
        flows: Vec<FlowInfo>,
    },
    /// Port counters (`dump-ports`).
    Ports {
        /// The ports.
        ports: Vec<PortStats>,
    },
    /// MAC table (`fdb-show`).
    Fdb {
        /// The entries.
        fdb: Vec<FdbEntry>,
    },
    /// Meters (`dump-meters`, `meter-stats`), in id order.
    Meters {
        /// The meters.
        meters: Vec<MeterInfo>,
    },
    /// Datapath workers (`pmd-stats-show`).
    Workers {
        /// One entry per worker, by index.
        workers: Vec<WorkerInfo>,
    },
    /// The daemon's memory (`memory-show`).
    Memory {
        /// The figures.
        memory: MemoryInfo,
    },
    /// Trace result.
    Trace {
        /// The trace.
        trace: TraceResult,
    },
    /// The difference `apply` computed (and applied unless dry-run).
    Apply {
        /// One line per change, e.g. `+ add-port br0 vm3 tag=20`.
        changes: Vec<String>,
        /// Whether the changes were applied.
        applied: bool,
    },
    /// Running configuration (`export`).
    Config {
        /// TOML text that `apply` accepts.
        toml: String,
    },
    /// Controller settings (`get-controller`).
    Controller {
        /// Configured targets.
        controllers: Vec<String>,
        /// Configured targets that cannot run (restored from state with a
        /// `punix:` path that is no longer usable), with why.
        #[serde(default)]
        failing: Box<[FailingController]>,
        /// Targets with a connected controller, one entry per connection.
        connected: Vec<String>,
        /// `standalone` or `secure`.
        fail_mode: String,
        /// Datapath id, 16 hex digits.
        datapath_id: String,
    },
    /// A count of affected things plus a message (`add-flow`, `del-flows`…).
    Done {
        /// What was done, for people.
        message: String,
        /// How many items were affected.
        count: u64,
    },
}

impl Reply {
    /// How many items this reply holds in its streamable field (list
    /// elements, or bytes of `toml` text); `None` for replies that are
    /// never streamed.
    pub fn items(&self) -> Option<u64> {
        Some(match self {
            Reply::Flows { flows } => flows.len() as u64,
            Reply::Ports { ports } => ports.len() as u64,
            Reply::Fdb { fdb } => fdb.len() as u64,
            Reply::Apply { changes, .. } => changes.len() as u64,
            Reply::Config { toml } => toml.len() as u64,
            _ => return None,
        })
    }

    /// Appends the items of `part`, a later chunk of the same reply.
    /// Returns `part` back when it is of another variant.
    pub fn append(&mut self, part: Reply) -> Result<(), Reply> {
        match (self, part) {
            (Reply::Flows { flows }, Reply::Flows { flows: more }) => flows.extend(more),
            (Reply::Ports { ports }, Reply::Ports { ports: more }) => ports.extend(more),
            (Reply::Fdb { fdb }, Reply::Fdb { fdb: more }) => fdb.extend(more),
            (
                Reply::Apply { changes, applied },
                Reply::Apply {
                    changes: more,
                    applied: a,
                },
            ) => {
                changes.extend(more);
                *applied = a;
            }
            (Reply::Config { toml }, Reply::Config { toml: more }) => toml.push_str(&more),
            (_, part) => return Err(part),
        }
        Ok(())
    }
}

/// A bridge, as `show` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BridgeInfo {
    /// Name.
    pub name: String,
    /// MAC aging time in seconds.
    pub mac_aging_time: u32,
    /// MAC table capacity.
    pub mac_table_size: u32,
    /// Ports, LOCAL first then by ofport.
    pub ports: Vec<PortInfo>,
}

/// A meter with its statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeterInfo {
    /// Meter id.
    pub id: u32,
    /// Its configuration in ovs-ofctl's syntax.
    pub meter: String,
    /// Flows that use it.
    pub flow_count: u32,
    /// Frames that entered it.
    pub packet_in_count: u64,
    /// Bytes that entered it.
    pub byte_in_count: u64,
    /// Milliseconds since it was added.
    pub duration_ms: u64,
    /// Per band, in order: frames and bytes it applied to.
    pub bands: Vec<BandCount>,
}

/// What one meter band applied to.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BandCount {
    /// Frames.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// A port, as `show` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortInfo {
    /// Name.
    pub name: String,
    /// OpenFlow port number.
    pub ofport: u32,
    /// `tap`, `system`, `internal` or `patch`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Access VLAN / native VLAN.
    pub tag: Option<u16>,
    /// Trunked VLANs (empty = all).
    pub trunks: Vec<u16>,
    /// VLAN mode, when set explicitly or implied.
    pub vlan_mode: String,
    /// Patch peer name.
    pub peer: Option<String>,
    /// Tunnel options (`remote_ip`, `key`, …), canonical; empty for other
    /// port types.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub options: std::collections::BTreeMap<String, String>,
    /// In NORMAL's split-horizon group (by default the tunnel ports).
    #[serde(default)]
    pub split_horizon: bool,
    /// Policing settings that are set (not 0): `ingress_policing_rate`,
    /// `ingress_policing_burst`, `ingress_policing_kpkts_rate`,
    /// `ingress_policing_kpkts_burst`, `egress_rate`, `egress_burst`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub qos: std::collections::BTreeMap<String, u32>,
    /// `external_ids` (management clients' keys, e.g. libvirt's).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub external_ids: std::collections::BTreeMap<String, String>,
    /// True when the port can carry traffic.
    pub up: bool,
    /// Why the port is down, when it is.
    pub down_reason: Option<String>,
    /// The last frame refused as too big, and by how much (for a tunnel:
    /// against the underlay MTU and the encapsulation overhead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub too_big: Option<String>,
}

/// One flow in `dump-flows`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowInfo {
    /// Table id.
    pub table: u8,
    /// Priority.
    pub priority: u16,
    /// Cookie.
    pub cookie: u64,
    /// Packets matched.
    pub n_packets: u64,
    /// Bytes matched.
    pub n_bytes: u64,
    /// Milliseconds since the flow was added.
    pub duration_ms: u64,
    /// Seconds since the flow last matched a packet.
    pub idle_age: u64,
    /// `ovs-ofctl dump-flows --no-stats` text of the flow.
    pub flow: String,
    /// `ovs-ofctl dump-flows` text of the flow, with statistics.
    pub text: String,
}

/// Counters of one port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PortStats {
    /// Port name.
    pub name: String,
    /// OpenFlow port number.
    pub ofport: u32,
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
    /// Received frames dropped, by reason (`malformed`, `no_match`, …).
    pub rx_dropped: std::collections::BTreeMap<String, u64>,
    /// Frames that could not be sent, by reason (`tx_error`, `port_down`, …).
    pub tx_dropped: std::collections::BTreeMap<String, u64>,
}

/// One datapath worker (`pmd-stats-show`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Worker index (thread `rvs-dpN`).
    pub id: u32,
    /// Ports this worker polls, as `bridge/port`.
    pub ports: Vec<String>,
    /// Frames it received.
    pub rx_packets: u64,
    /// Non-empty receive batches (`rx_packets / batches` = frames per batch).
    pub batches: u64,
    /// Table lookups answered by its exact-match cache.
    pub emc_hits: u64,
    /// Cache lookups that went to the classifier (tables with fewer than
    /// three masks skip the cache and count as neither).
    pub emc_misses: u64,
}

/// The daemon's memory (`memory-show`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryInfo {
    /// Resident set size (VmRSS), bytes.
    pub rss_bytes: u64,
    /// Bytes the program holds through its allocator (null when the
    /// allocator does not count).
    pub allocated_bytes: Option<u64>,
    /// Bytes the allocator has committed: in use plus kept for reuse.
    pub committed_bytes: Option<u64>,
    /// Threads of the process.
    pub threads: u32,
    /// Datapath workers running.
    pub workers: u32,
    /// Per bridge.
    pub bridges: Vec<BridgeMemory>,
}

/// One bridge's share of `memory-show`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BridgeMemory {
    /// Bridge name.
    pub name: String,
    /// Ports.
    pub ports: u32,
    /// Flows in all tables.
    pub flows: u64,
    /// Counter bytes per flow (one block per running worker).
    pub counter_bytes_per_flow: u64,
}

/// One MAC learning entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FdbEntry {
    /// OpenFlow port number.
    pub port: u32,
    /// Port name.
    pub port_name: String,
    /// VLAN (0 = untagged on a trunk).
    pub vlan: u16,
    /// MAC address, lower-case.
    pub mac: String,
    /// Seconds since last seen.
    pub age: u64,
}

/// The result of `trace`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceResult {
    /// The packet as parsed from the request, in flow syntax.
    pub packet: String,
    /// Steps in order: table lookups, actions, NORMAL decisions.
    pub steps: Vec<TraceStep>,
    /// Where the packet would leave.
    pub outputs: Vec<TraceOutput>,
    /// Why it is dropped, when no output results.
    pub drop_reason: Option<String>,
}

/// One step of a trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceStep {
    /// Table looked up, if this step is a lookup.
    pub table: Option<u8>,
    /// Matched flow in `--no-stats` form, or null on a table miss.
    pub rule: Option<String>,
    /// What happened, for people (one line).
    pub detail: String,
    /// Nesting depth (resubmit).
    pub depth: u32,
}

/// One output of a trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceOutput {
    /// OpenFlow port number.
    pub port: u32,
    /// Port name.
    pub name: String,
    /// Egress VLAN id, or null when sent untagged.
    pub vlan: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_shape() {
        let r = Request::AddBr {
            name: "br0".into(),
            may_exist: false,
        };
        let s = serde_json::to_string(&r).expect("serialize");
        assert_eq!(s, r#"{"type":"add_br","name":"br0","may_exist":false}"#);
        let back: Request =
            serde_json::from_str(r#"{"type":"add_br","name":"br0"}"#).expect("parse");
        assert_eq!(
            back,
            Request::AddBr {
                name: "br0".into(),
                may_exist: false
            }
        );
    }

    #[test]
    fn unknown_request_rejected() {
        assert!(serde_json::from_str::<Request>(r#"{"type":"frobnicate"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"type":"list_br","x":1}"#).is_err());
    }

    #[test]
    fn response_roundtrip() {
        let r = Response::err(ErrorKind::NotFound, "no bridge named br9");
        let s = serde_json::to_string(&r).expect("serialize");
        assert_eq!(
            s,
            r#"{"ok":false,"error":{"kind":"not_found","message":"no bridge named br9"}}"#
        );
        let back: Response = serde_json::from_str(&s).expect("parse");
        assert_eq!(back, r);
    }
}
