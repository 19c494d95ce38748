//! The control protocol between `rvsctl` (or any client) and `rvsd`.
//!
//! # Wire format
//! JSON lines over a unix stream socket: the client writes one [`Request`]
//! as a single line of JSON, the daemon answers with one [`Response`] line.
//! A connection may carry many requests, one at a time. Lines longer than
//! [`MAX_LINE`] bytes are rejected and the connection is closed.
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
        /// `ofport_request`, `peer`.
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
    /// Change a bridge's knobs (`mac-aging-time`, `mac-table-size`).
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
        /// Targets: `ptcp:PORT[:IP]`, `punix:PATH`, `tcp:IP[:PORT]`,
        /// `unix:PATH`.
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
    /// Datapath worker statistics (`pmd-stats-show`).
    PmdStatsShow {},
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
    /// Datapath workers (`pmd-stats-show`).
    Workers {
        /// One entry per worker, by index.
        workers: Vec<WorkerInfo>,
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
    /// True when the port can carry traffic.
    pub up: bool,
    /// Why the port is down, when it is.
    pub down_reason: Option<String>,
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
