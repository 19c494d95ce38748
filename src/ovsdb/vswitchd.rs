//! ovs-vswitchd's half of the OVSDB endpoint: keeps the `Open_vSwitch`
//! database and the switch one model.
//!
//! # What
//! - **Database → switch** ([`Vswitchd::apply`], after every client
//!   transaction): bridges, ports and their settings in the database are
//!   made so in the switch with ordinary switch requests (`add-br`,
//!   `add-port`, `set port`, `set-controller`, …), one per difference, so
//!   one port that cannot be created (no such netdev, an unsupported
//!   interface type) fails alone: its Interface row gets `ofport = -1` and
//!   the reason in `error`, as ovs-vswitchd reports it, and it is retried
//!   on every later sync ([`Vswitchd::tick`]).
//! - **Switch → database** ([`Vswitchd::pull`], when the switch changed
//!   behind the database's back — `rvsctl add-port`, `apply`, a restart):
//!   rows are inserted, updated and deleted so `ovs-vsctl show` and
//!   monitors see what `rvsctl show` sees.
//! - **Status** ([`Vswitchd::status`]): `Interface.ofport`, `error`,
//!   `admin_state`, `link_state`, `Bridge.datapath_id`, and
//!   `Open_vSwitch.cur_cfg = next_cfg` (what `ovs-vsctl` without
//!   `--no-wait` waits for); `Interface.statistics` every few seconds.
//!
//! # Design
//! The switch's own configuration ([`Config`] without flows) and the
//! database are compared in one shape: each database Port/Interface pair
//! is turned into the [`PortConfig`] it asks for. A memo per port and per
//! bridge remembers what the database asked for when it was last applied
//! and what the switch then reported, so a value the switch writes in its
//! canonical form (tunnel options with defaults left out) is neither
//! re-applied on each transaction nor written back over what the client
//! wrote; only a real change on either side moves anything.
//!
//! Columns rvs has no use for (external_ids, other_config keys it does
//! not read, QoS, Mirror, …) are kept in the database and persisted with
//! it ([`super::service`]).
//!
//! # Mapping
//! | database | switch |
//! |---|---|
//! | Bridge `name`, `fail_mode`, `controller` → Controller `target` | bridge, `set-fail-mode`, `set-controller` |
//! | Bridge `other_config:` `datapath-id`, `mac-aging-time`, `mac-table-size`; `vlan-limit` (Bridge, else Open_vSwitch `other_config`) | `set bridge` |
//! | Port `name`, `tag`, `trunks`, `vlan_mode`; its one Interface's `type`, `options`, `ofport_request` | `add-port`/`set port` |
//! | Interface `type` `""` / `internal` / `tap` / `patch` / `vxlan` / `geneve` / `gre` | `system` / `internal` / `tap` / `patch` (`options:peer`) / tunnels |
//! | the Port and internal Interface named after the bridge | the bridge's LOCAL port |
//!
//! # Invariants
//! - Called with the database and the switch both locked (database
//!   first), so nothing changes between reading one and writing the other.
//! - Every database write goes through [`Db::transact`]: schema checks,
//!   referential integrity and garbage collection hold for these writes
//!   as for a client's, and monitors see them as ordinary commits.
//!
//! # Limits
//! - Each sync reads the whole switch configuration and every Bridge,
//!   Port and Interface row: O(bridges + ports), not O(change). Fine for
//!   hundreds of ports; flows are never read.
//! - A Port with more than one Interface (a bond) is refused with an error
//!   on its Interfaces: rvs has no bonds yet.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rvs_ctl::proto::{PortInfo, PortStats, Reply, Request, Response};
use serde_json::{json, Value};

use super::datum::{Atom, Datum, Uuid};
use super::db::{Change, Db, Row, TxnOutcome};
use crate::config::{BridgeConfig, PortConfig};
use crate::control::switch::{
    port_settings, Switch, DEFAULT_AGING_S, DEFAULT_TABLE_SIZE, DEFAULT_VLAN_LIMIT,
};

/// What the database asked for and what the switch then reported.
#[derive(Debug, Clone, PartialEq)]
struct Memo<T> {
    want: T,
    seen: T,
}

/// A bridge's settings as the database and the switch are compared
/// (ports and flows left out).
#[derive(Debug, Clone, PartialEq, Default)]
struct BridgeWant {
    fail_secure: bool,
    controllers: Vec<String>,
    datapath_id: Option<u64>,
    aging: u32,
    table_size: u32,
    vlan_limit: u32,
}

/// A port as the database asks for it.
#[derive(Debug, Clone)]
struct DbPort {
    bridge: String,
    port: Uuid,
    iface: Option<Uuid>,
    /// The switch's form of it; `Err` when it cannot be one (a bond, an
    /// interface type rvs lacks).
    cfg: Result<PortConfig, String>,
}

/// A bridge as the database asks for it.
#[derive(Debug, Clone)]
struct DbBridge {
    uuid: Uuid,
    want: BridgeWant,
}

/// The database's Bridge/Port/Interface rows, by name.
#[derive(Debug, Default)]
struct DbView {
    root: Option<Uuid>,
    bridges: BTreeMap<String, DbBridge>,
    ports: BTreeMap<String, DbPort>,
}

/// ovs-vswitchd's state: memos and the errors of the last attempts.
#[derive(Debug, Default)]
pub struct Vswitchd {
    ports: HashMap<String, Memo<PortConfig>>,
    bridges: HashMap<String, Memo<BridgeWant>>,
    /// Interface name → why the switch could not make it so.
    errors: BTreeMap<String, String>,
    /// Switch generation the database last matched.
    synced: Option<u64>,
    /// Interface name → (link up when last looked, up-to-down changes).
    links: HashMap<String, (bool, i64)>,
}

/// A database write that the schema refused: a bug in this module.
fn commit(db: &mut Db, ops: Vec<Value>, out: &mut Vec<Change>) {
    if ops.is_empty() {
        return;
    }
    match db.transact(&ops) {
        TxnOutcome::Done { results, change } => {
            if let Some(e) = results.iter().find(|r| r.get("error").is_some()) {
                log::error!(
                    "ovsdb: internal update refused: {e} (ops {})",
                    Value::Array(ops)
                );
                return;
            }
            if !change.is_empty() {
                out.push(change);
            }
        }
        TxnOutcome::Blocked => log::error!("ovsdb: internal update blocked"),
    }
}

fn uuid_json(u: Uuid) -> Value {
    json!(["uuid", u.to_string()])
}

fn where_uuid(u: Uuid) -> Value {
    json!([["_uuid", "==", uuid_json(u)]])
}

fn update(table: &str, u: Uuid, row: Value) -> Value {
    json!({"op": "update", "table": table, "where": where_uuid(u), "row": row})
}

fn set_json(items: impl IntoIterator<Item = Value>) -> Value {
    json!(["set", items.into_iter().collect::<Vec<_>>()])
}

fn map_json(m: &BTreeMap<String, String>) -> Value {
    json!([
        "map",
        m.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()
    ])
}

fn col<'a>(r: &'a Row, c: &str) -> Option<&'a Datum> {
    r.get(c)
}

fn s<'a>(r: &'a Row, c: &str) -> &'a str {
    col(r, c).and_then(Datum::as_str).unwrap_or("")
}

fn smap(r: &Row, c: &str) -> BTreeMap<String, String> {
    col(r, c)
        .map(|d| {
            d.pairs()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn uuids(r: &Row, c: &str) -> Vec<Uuid> {
    col(r, c)
        .map(|d| d.keys.iter().filter_map(Atom::as_uuid).collect())
        .unwrap_or_default()
}

fn ints(r: &Row, c: &str) -> Vec<i64> {
    col(r, c)
        .map(|d| d.keys.iter().filter_map(Atom::as_integer).collect())
        .unwrap_or_default()
}

/// The rvs port type of an Interface `type`.
fn rvs_kind(ovs: &str) -> Result<&'static str, String> {
    Ok(match ovs {
        "" | "system" => "system",
        "internal" => "internal",
        "tap" => "tap",
        "patch" => "patch",
        "vxlan" => "vxlan",
        "geneve" => "geneve",
        "gre" => "gre",
        other => {
            return Err(format!(
                "could not add network device {{}} to ofproto (interface type {other} is not supported by rvs: use \"\", internal, tap, patch, vxlan, geneve or gre)"
            ))
        }
    })
}

/// The Interface `type` of an rvs port type.
fn ovs_kind(rvs: &str) -> &str {
    match rvs {
        "system" => "",
        other => other,
    }
}

/// The comparable part of a port configuration: what the database
/// controls (not the assigned ofport, not split_horizon).
fn port_key(p: &PortConfig) -> PortConfig {
    PortConfig {
        ofport: None,
        split_horizon: None,
        ..p.clone()
    }
}

impl DbView {
    fn read(db: &Db) -> DbView {
        let mut v = DbView::default();
        let root = db.rows("Open_vSwitch").next();
        v.root = root.map(|r| r.uuid);
        let global_vlan_limit = root
            .and_then(|r| smap(r, "other_config").get("vlan-limit").cloned())
            .and_then(|x| x.parse().ok());
        let bridge_uuids: Vec<Uuid> = root.map(|r| uuids(r, "bridges")).unwrap_or_default();
        for bu in bridge_uuids {
            let Some(b) = db.row("Bridge", &bu) else {
                continue;
            };
            let name = s(b, "name").to_string();
            let oc = smap(b, "other_config");
            let mut controllers: Vec<String> = uuids(b, "controller")
                .iter()
                .filter_map(|c| db.row("Controller", c))
                .map(|c| s(c, "target").to_string())
                .collect();
            controllers.sort();
            let want = BridgeWant {
                fail_secure: s(b, "fail_mode") == "secure",
                controllers,
                datapath_id: oc
                    .get("datapath-id")
                    .and_then(|d| crate::control::switch::parse_dpid(d)),
                aging: oc
                    .get("mac-aging-time")
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(DEFAULT_AGING_S),
                table_size: oc
                    .get("mac-table-size")
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(DEFAULT_TABLE_SIZE),
                vlan_limit: oc
                    .get("vlan-limit")
                    .and_then(|x| x.parse().ok())
                    .or(global_vlan_limit)
                    .unwrap_or(DEFAULT_VLAN_LIMIT),
            };
            for pu in uuids(b, "ports") {
                let Some(p) = db.row("Port", &pu) else {
                    continue;
                };
                let pname = s(p, "name").to_string();
                if pname == name {
                    continue; // the LOCAL port
                }
                let ifaces = uuids(p, "interfaces");
                let iface = ifaces.first().and_then(|i| db.row("Interface", i));
                let cfg = if ifaces.len() != 1 {
                    Err(format!(
                        "port {pname} has {} interfaces: rvs has no bonds yet",
                        ifaces.len()
                    ))
                } else if let Some(i) = iface {
                    port_cfg(db, &pname, p, i)
                } else {
                    Err("no interface row".to_string())
                };
                v.ports.insert(
                    pname,
                    DbPort {
                        bridge: name.clone(),
                        port: pu,
                        iface: iface.map(|i| i.uuid),
                        cfg,
                    },
                );
            }
            v.bridges.insert(name, DbBridge { uuid: bu, want });
        }
        v
    }
}

/// The switch configuration a Port row with its Interface asks for.
/// An Interface integer column clamped to what the switch takes.
fn uint(r: &Row, c: &str) -> u32 {
    ints(r, c)
        .first()
        .map_or(0, |&v| v.clamp(0, i64::from(u32::MAX)) as u32)
}

/// The egress policer a Port's QoS row asks for (kbit/s, kbit): OVS's
/// `egress-policer` with `other_config:cir` (bytes/s) and `cbs` (bytes).
/// Other QoS types (`linux-noop`, `linux-htb`, …) police nothing.
fn egress_policer(db: &Db, p: &Row) -> (u32, u32) {
    let Some(q) = uuids(p, "qos").first().and_then(|u| db.row("QoS", u)) else {
        return (0, 0);
    };
    if s(q, "type") != "egress-policer" {
        return (0, 0);
    }
    let oc = smap(q, "other_config");
    let kbit = |k: &str| -> u32 {
        oc.get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |bytes| {
                (bytes * 8).div_ceil(1000).min(u64::from(u32::MAX)) as u32
            })
    };
    (kbit("cir"), kbit("cbs"))
}

fn port_cfg(db: &Db, name: &str, p: &Row, i: &Row) -> Result<PortConfig, String> {
    if s(i, "name") != name {
        return Err(format!(
            "port {name}: its interface is named {} (rvs ports have one interface of the same name)",
            s(i, "name")
        ));
    }
    let kind = rvs_kind(s(i, "type")).map_err(|e| e.replace("{}", name))?;
    let mut options = smap(i, "options");
    let peer = if kind == "patch" {
        options.remove("peer")
    } else {
        None
    };
    let tag = ints(p, "tag").first().map(|&t| t as u16);
    let trunks = ints(p, "trunks").iter().map(|&t| t as u16).collect();
    let vlan_mode = col(p, "vlan_mode")
        .and_then(Datum::as_str)
        .map(str::to_string);
    let ofport = ints(i, "ofport_request").first().map(|&o| o as u32);
    let (egress_rate, egress_burst) = egress_policer(db, p);
    Ok(PortConfig {
        name: name.to_string(),
        kind: Some(kind.to_string()),
        tag,
        trunks,
        vlan_mode,
        ofport,
        peer,
        split_horizon: None,
        options,
        external_ids: smap(i, "external_ids"),
        ingress_policing_rate: uint(i, "ingress_policing_rate"),
        ingress_policing_burst: uint(i, "ingress_policing_burst"),
        ingress_policing_kpkts_rate: uint(i, "ingress_policing_kpkts_rate"),
        ingress_policing_kpkts_burst: uint(i, "ingress_policing_kpkts_burst"),
        egress_rate,
        egress_burst,
    })
}

fn bridge_want(b: &BridgeConfig) -> BridgeWant {
    let mut controllers = b.controller.clone();
    controllers.sort();
    BridgeWant {
        fail_secure: b.fail_mode.as_deref() == Some("secure"),
        controllers,
        datapath_id: b
            .datapath_id
            .as_deref()
            .and_then(crate::control::switch::parse_dpid),
        aging: b.mac_aging_time.unwrap_or(DEFAULT_AGING_S),
        table_size: b.mac_table_size.unwrap_or(DEFAULT_TABLE_SIZE),
        vlan_limit: b.vlan_limit.unwrap_or(DEFAULT_VLAN_LIMIT),
    }
}

/// Sends `req` to the switch; the error text on failure.
fn ask(sw: &mut Switch, req: Request) -> Result<Reply, String> {
    match sw.handle(req) {
        Response::Ok { result, .. } => Ok(result),
        Response::Err { error, .. } => Err(error.message),
        Response::Stream { .. } => Err("unexpected streamed reply".to_string()),
    }
}

/// `set port` settings that turn `cur` into `want` (same type and peer).
fn set_settings(cur: &PortConfig, want: &PortConfig) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if cur.tag != want.tag {
        v.push((
            "tag".into(),
            want.tag.map(|t| t.to_string()).unwrap_or_default(),
        ));
    }
    if cur.trunks != want.trunks {
        let t: Vec<String> = want.trunks.iter().map(u16::to_string).collect();
        v.push(("trunks".into(), t.join(",")));
    }
    if cur.vlan_mode != want.vlan_mode {
        v.push((
            "vlan_mode".into(),
            want.vlan_mode.clone().unwrap_or_default(),
        ));
    }
    for (k, c, w) in [
        (
            "ingress_policing_rate",
            cur.ingress_policing_rate,
            want.ingress_policing_rate,
        ),
        (
            "ingress_policing_burst",
            cur.ingress_policing_burst,
            want.ingress_policing_burst,
        ),
        (
            "ingress_policing_kpkts_rate",
            cur.ingress_policing_kpkts_rate,
            want.ingress_policing_kpkts_rate,
        ),
        (
            "ingress_policing_kpkts_burst",
            cur.ingress_policing_kpkts_burst,
            want.ingress_policing_kpkts_burst,
        ),
        ("egress_rate", cur.egress_rate, want.egress_rate),
        ("egress_burst", cur.egress_burst, want.egress_burst),
    ] {
        if c != w {
            v.push((k.to_string(), w.to_string()));
        }
    }
    for (what, c, w) in [
        ("options", &cur.options, &want.options),
        ("external_ids", &cur.external_ids, &want.external_ids),
    ] {
        let keys: BTreeSet<&String> = c.keys().chain(w.keys()).collect();
        for k in keys {
            if c.get(k) != w.get(k) {
                v.push((format!("{what}:{k}"), w.get(k).cloned().unwrap_or_default()));
            }
        }
    }
    v
}

impl Vswitchd {
    /// Interfaces the database records as failed (`ofport = -1` with an
    /// `error`): kept by the first [`Vswitchd::pull`] and retried, rather
    /// than dropped because the switch lacks them.
    pub fn seed_errors(&mut self, db: &Db) {
        for i in db.rows("Interface") {
            if ints(i, "ofport") == [-1] {
                if let Some(e) = col(i, "error").and_then(Datum::as_str) {
                    self.errors.insert(s(i, "name").to_string(), e.to_string());
                }
            }
        }
    }

    /// Whether the switch changed since the database last matched it.
    pub fn stale(&self, generation: u64) -> bool {
        self.synced != Some(generation)
    }

    /// Database → switch: makes the switch what the database says.
    /// Returns the database commits it made (status columns).
    pub fn apply(&mut self, db: &mut Db, sw: &mut Switch) -> Vec<Change> {
        self.reconcile(db, sw);
        let mut out = Vec::new();
        self.status(db, sw, false, &mut out);
        out
    }

    /// [`Vswitchd::apply`] without the status commit.
    fn reconcile(&mut self, db: &Db, sw: &mut Switch) {
        sw.begin_batch();
        self.apply_batch(db, sw);
        if let Err(e) = sw.end_batch() {
            log::error!("ovsdb: saving the switch's state: {e}");
        }
        self.synced = Some(sw.generation().load(std::sync::atomic::Ordering::Acquire));
    }

    /// The switch requests of [`Vswitchd::apply`], in one batch.
    fn apply_batch(&mut self, db: &Db, sw: &mut Switch) {
        let view = DbView::read(db);
        let cfg = sw.config_view();
        let cur_bridges: BTreeMap<&str, &BridgeConfig> =
            cfg.bridge.iter().map(|b| (b.name.as_str(), b)).collect();
        let mut cur_ports: BTreeMap<&str, (&str, &PortConfig)> = BTreeMap::new();
        for b in &cfg.bridge {
            for p in &b.port {
                cur_ports.insert(p.name.as_str(), (b.name.as_str(), p));
            }
        }
        // Errors are found afresh; each is logged when it first appears
        // (a failed port is retried every second).
        let before = std::mem::take(&mut self.errors);
        // Ports that go away or move first (a port may move to a new
        // bridge, a bridge may be replaced by one of its ports' name).
        for (name, (br, _)) in &cur_ports {
            let keep = view
                .ports
                .get(*name)
                .is_some_and(|p| p.bridge == *br && view.bridges.contains_key(*br));
            if !keep && view.bridges.contains_key(*br) {
                if let Err(e) = ask(
                    sw,
                    Request::DelPort {
                        bridge: Some(br.to_string()),
                        name: name.to_string(),
                        if_exists: true,
                    },
                ) {
                    log::warn!("ovsdb: del-port {name}: {e}");
                }
                self.ports.remove(*name);
            }
        }
        for name in cur_bridges.keys() {
            if !view.bridges.contains_key(*name) {
                if let Err(e) = ask(
                    sw,
                    Request::DelBr {
                        name: name.to_string(),
                        if_exists: true,
                    },
                ) {
                    log::warn!("ovsdb: del-br {name}: {e}");
                }
                self.bridges.remove(*name);
                for (p, (br, _)) in &cur_ports {
                    if br == name {
                        self.ports.remove(*p);
                    }
                }
            }
        }
        for (name, b) in &view.bridges {
            let cur = cur_bridges.get(name.as_str()).map(|c| bridge_want(c));
            if cur.is_none() {
                if let Err(e) = ask(
                    sw,
                    Request::AddBr {
                        name: name.clone(),
                        may_exist: true,
                    },
                ) {
                    log::warn!("ovsdb: add-br {name}: {e}");
                    self.errors.insert(name.clone(), e);
                    continue;
                }
            }
            let cur = cur.unwrap_or_else(|| BridgeWant {
                aging: DEFAULT_AGING_S,
                table_size: DEFAULT_TABLE_SIZE,
                vlan_limit: DEFAULT_VLAN_LIMIT,
                ..BridgeWant::default()
            });
            if self.bridges.get(name).is_some_and(|m| m.want == b.want) {
                continue;
            }
            self.set_bridge(sw, name, &cur, &b.want);
            self.bridges.insert(
                name.clone(),
                Memo {
                    want: b.want.clone(),
                    seen: b.want.clone(),
                },
            );
        }
        for (name, p) in &view.ports {
            if self.errors.contains_key(&p.bridge) {
                continue;
            }
            let want = match &p.cfg {
                Ok(c) => c,
                Err(e) => {
                    if before.get(name) != Some(e) {
                        log::warn!("ovsdb: port {name}: {e}");
                    }
                    self.errors.insert(name.clone(), e.clone());
                    continue;
                }
            };
            let cur = cur_ports
                .get(name.as_str())
                .filter(|(br, _)| *br == p.bridge)
                .map(|(_, c)| *c);
            let add = || Request::AddPort {
                bridge: p.bridge.clone(),
                name: name.clone(),
                settings: port_settings(want),
                may_exist: false,
            };
            let result = match cur {
                None => ask(sw, add()),
                Some(_)
                    if self
                        .ports
                        .get(name)
                        .is_some_and(|m| port_key(&m.want) == port_key(want)) =>
                {
                    continue;
                }
                Some(c) if c.kind != want.kind || c.peer != want.peer => ask(
                    sw,
                    Request::DelPort {
                        bridge: Some(p.bridge.clone()),
                        name: name.clone(),
                        if_exists: true,
                    },
                )
                .and_then(|_| ask(sw, add())),
                Some(c) => {
                    let settings = set_settings(c, want);
                    if settings.is_empty() {
                        Ok(Reply::Done {
                            message: String::new(),
                            count: 0,
                        })
                    } else {
                        ask(
                            sw,
                            Request::SetPort {
                                name: name.clone(),
                                settings,
                            },
                        )
                    }
                }
            };
            match result {
                Ok(_) => {
                    self.ports.insert(
                        name.clone(),
                        Memo {
                            want: want.clone(),
                            seen: want.clone(),
                        },
                    );
                }
                Err(e) => {
                    // ovs-vswitchd's words for the common case, which
                    // ovs-vsctl then prints ("Error detected while
                    // setting up ...").
                    let e = if e.contains("no network device named") {
                        format!("could not open network device {name} (No such device)")
                    } else {
                        e
                    };
                    if before.get(name) != Some(&e) {
                        log::warn!("ovsdb: port {name}: {e}");
                    }
                    self.errors.insert(name.clone(), e);
                    self.ports.remove(name);
                }
            }
        }
        // What the switch now reports is what the memos have seen.
        let cfg = sw.config_view();
        for b in &cfg.bridge {
            if let Some(m) = self.bridges.get_mut(&b.name) {
                m.seen = bridge_want(b);
            }
            for p in &b.port {
                if let Some(m) = self.ports.get_mut(&p.name) {
                    m.seen = port_key(p);
                }
            }
        }
    }

    fn set_bridge(&mut self, sw: &mut Switch, name: &str, cur: &BridgeWant, want: &BridgeWant) {
        let fail = |what: &str, e: String| log::warn!("ovsdb: bridge {name}: {what}: {e}");
        if cur.fail_secure != want.fail_secure {
            if let Err(e) = ask(
                sw,
                Request::SetFailMode {
                    bridge: name.to_string(),
                    mode: if want.fail_secure {
                        "secure"
                    } else {
                        "standalone"
                    }
                    .to_string(),
                },
            ) {
                fail("fail_mode", e);
            }
        }
        if cur.controllers != want.controllers {
            if let Err(e) = ask(
                sw,
                Request::SetController {
                    bridge: name.to_string(),
                    targets: want.controllers.clone(),
                },
            ) {
                fail("controller", e);
            }
        }
        let mut settings = Vec::new();
        if cur.datapath_id != want.datapath_id {
            settings.push((
                "datapath-id".to_string(),
                want.datapath_id
                    .map(|d| format!("{d:016x}"))
                    .unwrap_or_default(),
            ));
        }
        if cur.aging != want.aging {
            settings.push(("mac-aging-time".to_string(), want.aging.to_string()));
        }
        if cur.table_size != want.table_size {
            settings.push(("mac-table-size".to_string(), want.table_size.to_string()));
        }
        if cur.vlan_limit != want.vlan_limit {
            settings.push(("vlan-limit".to_string(), want.vlan_limit.to_string()));
        }
        if !settings.is_empty() {
            if let Err(e) = ask(
                sw,
                Request::SetBridge {
                    name: name.to_string(),
                    settings,
                },
            ) {
                fail("other_config", e);
            }
        }
    }

    /// Switch → database: the switch changed (rvsctl, apply, restart);
    /// rows follow it. Ports the database asks for that the switch could
    /// not make (they have an error) stay.
    pub fn pull(&mut self, db: &mut Db, sw: &mut Switch) -> Vec<Change> {
        let mut out = Vec::new();
        let generation = sw.generation().load(std::sync::atomic::Ordering::Acquire);
        let cfg = sw.config_view();
        let mut view = DbView::read(db);
        let root = match view.root {
            Some(r) => r,
            None => {
                let ops = vec![json!({"op": "insert", "table": "Open_vSwitch", "row": {}})];
                commit(db, ops, &mut out);
                view = DbView::read(db);
                match view.root {
                    Some(r) => r,
                    None => return out,
                }
            }
        };
        let mut ops = Vec::new();
        let mut n = 0usize;
        let mut named = |prefix: &str| {
            n += 1;
            format!("{prefix}{n}")
        };
        // Bridges.
        let cur_names: BTreeSet<&str> = cfg.bridge.iter().map(|b| b.name.as_str()).collect();
        let mut gone_bridges = Vec::new();
        for (name, b) in &view.bridges {
            if !cur_names.contains(name.as_str()) && !self.errors.contains_key(name) {
                gone_bridges.push(uuid_json(b.uuid));
                self.bridges.remove(name);
            }
        }
        if !gone_bridges.is_empty() {
            ops.push(
                json!({"op": "mutate", "table": "Open_vSwitch", "where": where_uuid(root),
                "mutations": [["bridges", "delete", set_json(gone_bridges)]]}),
            );
        }
        for b in &cfg.bridge {
            let want = bridge_want(b);
            let bref = match view.bridges.get(&b.name) {
                Some(db_b) => {
                    let seen_same = self.bridges.get(&b.name).is_some_and(|m| m.seen == want);
                    if !seen_same && db_b.want != want {
                        let keep = db
                            .row("Bridge", &db_b.uuid)
                            .map(|r| smap(r, "other_config"))
                            .unwrap_or_default();
                        ops.extend(bridge_ops(
                            &uuid_json(db_b.uuid),
                            &want,
                            keep,
                            db_b.want.controllers != want.controllers,
                            &mut named,
                        ));
                    }
                    uuid_json(db_b.uuid)
                }
                None => {
                    let iname = named("i");
                    let pname = named("p");
                    let bname = named("b");
                    ops.push(
                        json!({"op": "insert", "table": "Interface", "uuid-name": iname,
                        "row": {"name": b.name, "type": "internal"}}),
                    );
                    ops.push(json!({"op": "insert", "table": "Port", "uuid-name": pname,
                        "row": {"name": b.name, "interfaces": ["named-uuid", iname]}}));
                    ops.push(
                        json!({"op": "insert", "table": "Bridge", "uuid-name": bname,
                        "row": {"name": b.name, "ports": ["named-uuid", pname]}}),
                    );
                    ops.push(json!({"op": "mutate", "table": "Open_vSwitch", "where": where_uuid(root),
                        "mutations": [["bridges", "insert", set_json([json!(["named-uuid", bname])])]]}));
                    let target = json!(["named-uuid", bname]);
                    ops.extend(bridge_ops(
                        &target,
                        &want,
                        BTreeMap::new(),
                        true,
                        &mut named,
                    ));
                    target
                }
            };
            self.bridges.insert(
                b.name.clone(),
                Memo {
                    want: want.clone(),
                    seen: want,
                },
            );
            // Ports of this bridge.
            let mut add_ports = Vec::new();
            let mut del_ports = Vec::new();
            let cur_ports: BTreeSet<&str> = b.port.iter().map(|p| p.name.as_str()).collect();
            for (pname, p) in &view.ports {
                let moved_or_gone = p.bridge == b.name && !cur_ports.contains(pname.as_str());
                if moved_or_gone && !self.errors.contains_key(pname) {
                    del_ports.push(uuid_json(p.port));
                    self.ports.remove(pname);
                }
            }
            for p in &b.port {
                let key = port_key(p);
                match view.ports.get(&p.name) {
                    Some(dp) if dp.bridge == b.name => {
                        let seen_same = self.ports.get(&p.name).is_some_and(|m| m.seen == key);
                        let db_same = dp.cfg.as_ref().is_ok_and(|c| port_key(c) == key);
                        if !seen_same && !db_same {
                            ops.extend(port_ops(dp, p));
                        }
                    }
                    other => {
                        if let Some(dp) = other {
                            // On another bridge in the database: move it.
                            if let Some(ob) = view.bridges.get(&dp.bridge) {
                                ops.push(json!({"op": "mutate", "table": "Bridge", "where": where_uuid(ob.uuid),
                                    "mutations": [["ports", "delete", set_json([uuid_json(dp.port)])]]}));
                            }
                        }
                        let iname = named("i");
                        let pname = named("p");
                        ops.push(
                            json!({"op": "insert", "table": "Interface", "uuid-name": iname,
                            "row": iface_row(p)}),
                        );
                        let mut row = port_row(p);
                        row["name"] = json!(p.name);
                        row["interfaces"] = json!(["named-uuid", iname]);
                        ops.push(json!({"op": "insert", "table": "Port", "uuid-name": pname, "row": row}));
                        add_ports.push(json!(["named-uuid", pname]));
                    }
                }
                self.errors.remove(&p.name);
                self.ports.insert(
                    p.name.clone(),
                    Memo {
                        want: key.clone(),
                        seen: key,
                    },
                );
            }
            if !del_ports.is_empty() {
                ops.push(json!({"op": "mutate", "table": "Bridge", "where": [["_uuid", "==", bref.clone()]],
                    "mutations": [["ports", "delete", set_json(del_ports)]]}));
            }
            if !add_ports.is_empty() {
                ops.push(
                    json!({"op": "mutate", "table": "Bridge", "where": [["_uuid", "==", bref]],
                    "mutations": [["ports", "insert", set_json(add_ports)]]}),
                );
            }
        }
        commit(db, ops, &mut out);
        // The memos' `want` is what the database says now, read back:
        // settings it has no column for (an egress policer set with
        // rvsctl, split_horizon) then do not look like a change the
        // database asks for at the next transaction.
        let after = DbView::read(db);
        for (name, m) in self.ports.iter_mut() {
            if let Some(Ok(c)) = after.ports.get(name).map(|p| &p.cfg) {
                m.want = c.clone();
            }
        }
        for (name, m) in self.bridges.iter_mut() {
            if let Some(b) = after.bridges.get(name) {
                m.want = b.want.clone();
            }
        }
        self.synced = Some(generation);
        self.status(db, sw, false, &mut out);
        out
    }

    /// Retries what failed and refreshes status (and, with `stats`,
    /// `Interface.statistics`): the periodic sync.
    pub fn tick(&mut self, db: &mut Db, sw: &mut Switch, stats: bool) -> Vec<Change> {
        if !self.errors.is_empty() {
            // A netdev may have appeared: apply again (cheap when nothing
            // else differs; ports already made are left alone).
            self.reconcile(db, sw);
        }
        let mut out = Vec::new();
        self.status(db, sw, stats, &mut out);
        out
    }

    /// Status columns from the switch; `Open_vSwitch.cur_cfg = next_cfg`.
    fn status(&mut self, db: &mut Db, sw: &mut Switch, stats: bool, out: &mut Vec<Change>) {
        let mut info: HashMap<String, PortInfo> = HashMap::new();
        let mut dpids: HashMap<String, u64> = HashMap::new();
        if let Ok(Reply::Bridges { bridges }) = ask(sw, Request::Show {}) {
            for b in bridges {
                for p in b.ports {
                    info.insert(p.name.clone(), p);
                }
            }
        }
        // Port counters, per bridge, fetched only when some interface of
        // it needs statistics now.
        let mut port_bridge: HashMap<String, String> = HashMap::new();
        for b in sw.config_view().bridge {
            let d = b
                .datapath_id
                .as_deref()
                .and_then(crate::control::switch::parse_dpid)
                .unwrap_or_else(|| crate::control::switch::default_dpid(&b.name));
            port_bridge.insert(b.name.clone(), b.name.clone());
            for p in b.port {
                port_bridge.insert(p.name, b.name.clone());
            }
            dpids.insert(b.name, d);
        }
        let mut counters: HashMap<String, PortStats> = HashMap::new();
        let mut fetched: BTreeSet<String> = BTreeSet::new();
        let mut ops = Vec::new();
        for i in db.rows("Interface") {
            let name = s(i, "name");
            let mut row = serde_json::Map::new();
            let (ofport, error, admin, link) = match info.get(name) {
                Some(p) => (
                    i64::from(p.ofport),
                    None,
                    "up",
                    if p.up { "up" } else { "down" },
                ),
                None => (
                    -1,
                    Some(self.errors.get(name).cloned().unwrap_or_else(|| {
                        format!("could not open network device {name} (No such device)")
                    })),
                    "",
                    "",
                ),
            };
            if ints(i, "ofport") != [ofport] {
                row.insert("ofport".into(), json!(ofport));
            }
            let cur_err = col(i, "error").and_then(Datum::as_str).map(str::to_string);
            if cur_err != error {
                row.insert(
                    "error".into(),
                    error.map_or_else(|| set_json([]), Value::String),
                );
            }
            for (c, v) in [("admin_state", admin), ("link_state", link)] {
                let cur = col(i, c).and_then(Datum::as_str).unwrap_or("");
                if cur != v {
                    row.insert(c.into(), if v.is_empty() { set_json([]) } else { json!(v) });
                }
            }
            let Some(p) = info.get(name) else {
                self.links.remove(name);
                if !ints(i, "link_resets").is_empty() {
                    row.insert("link_resets".into(), set_json([]));
                }
                if !row.is_empty() {
                    ops.push(update("Interface", i.uuid, Value::Object(row)));
                }
                continue;
            };
            // Link resets: up-to-down changes seen since the port appeared.
            let resets = {
                let e = self.links.entry(name.to_string()).or_insert((p.up, 0));
                if e.0 && !p.up {
                    e.1 += 1;
                }
                e.0 = p.up;
                e.1
            };
            if ints(i, "link_resets") != [resets] {
                row.insert("link_resets".into(), json!(resets));
            }
            let fresh = stats || col(i, "statistics").is_none_or(Datum::is_empty);
            if fresh {
                let netdev = !matches!(p.kind.as_str(), "patch" | "vxlan" | "geneve" | "gre");
                if let Some(br) = port_bridge.get(name) {
                    if fetched.insert(br.clone()) {
                        if let Ok(Reply::Ports { ports }) = ask(
                            sw,
                            Request::DumpPorts {
                                bridge: br.clone(),
                                port: None,
                            },
                        ) {
                            for p in ports {
                                counters.insert(p.name.clone(), p);
                            }
                        }
                    }
                }
                let new = counters
                    .get(name)
                    .map(|c| statistics(c, netdev.then_some(name)))
                    .unwrap_or_default();
                let cur: BTreeMap<String, i64> = col(i, "statistics")
                    .map(|d| {
                        d.pairs()
                            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_integer()?)))
                            .collect()
                    })
                    .unwrap_or_default();
                if !new.is_empty() && cur != new {
                    row.insert(
                        "statistics".into(),
                        json!([
                            "map",
                            new.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()
                        ]),
                    );
                }
                if netdev {
                    netdev_columns(i, name, &mut row);
                }
            }
            if !row.is_empty() {
                ops.push(update("Interface", i.uuid, Value::Object(row)));
            }
        }
        for b in db.rows("Bridge") {
            if let Some(d) = dpids.get(s(b, "name")) {
                let want = format!("{d:016x}");
                if col(b, "datapath_id").and_then(Datum::as_str) != Some(want.as_str()) {
                    ops.push(update(
                        "Bridge",
                        b.uuid,
                        json!({"datapath_id": want, "datapath_version": "<built-in>"}),
                    ));
                }
            }
        }
        if let Some(r) = db.rows("Open_vSwitch").next() {
            let next = ints(r, "next_cfg").first().copied().unwrap_or(0);
            let mut row = serde_json::Map::new();
            if ints(r, "cur_cfg").first().copied().unwrap_or(0) != next {
                row.insert("cur_cfg".into(), json!(next));
            }
            // As ovs-vswitchd: the types it supports (ovs_version and
            // db_version are the init script's, not the switch's).
            let types = [
                "geneve", "gre", "internal", "patch", "system", "tap", "vxlan",
            ];
            let have: Vec<&str> = col(r, "iface_types")
                .map(|d| d.keys.iter().filter_map(Atom::as_str).collect())
                .unwrap_or_default();
            if have != types {
                row.insert(
                    "iface_types".into(),
                    set_json(types.into_iter().map(Value::from)),
                );
                row.insert(
                    "datapath_types".into(),
                    set_json(["netdev", "system"].into_iter().map(Value::from)),
                );
            }
            if !row.is_empty() {
                ops.push(update("Open_vSwitch", r.uuid, Value::Object(row)));
            }
        }
        commit(db, ops, out);
    }

    /// Ports and bridges the switch should not restore: Ports with
    /// `other_config:transient=true` (OVS's `--delete-transient-ports`),
    /// removed from the database and the switch at start-up.
    pub fn drop_transient(&mut self, db: &mut Db, sw: &mut Switch) -> Vec<Change> {
        let mut out = Vec::new();
        let mut ops = Vec::new();
        for b in db.rows("Bridge") {
            let gone: Vec<(Uuid, String)> = uuids(b, "ports")
                .iter()
                .filter_map(|u| db.row("Port", u))
                .filter(|p| {
                    smap(p, "other_config").get("transient").map(String::as_str) == Some("true")
                })
                .map(|p| (p.uuid, s(p, "name").to_string()))
                .collect();
            if gone.is_empty() {
                continue;
            }
            for (_, name) in &gone {
                log::info!("ovsdb: removing transient port {name}");
                let _ = ask(
                    sw,
                    Request::DelPort {
                        bridge: Some(s(b, "name").to_string()),
                        name: name.clone(),
                        if_exists: true,
                    },
                );
            }
            ops.push(json!({"op": "mutate", "table": "Bridge", "where": where_uuid(b.uuid),
                "mutations": [["ports", "delete", set_json(gone.iter().map(|(u, _)| uuid_json(*u)))]]}));
        }
        commit(db, ops, &mut out);
        out
    }
}

/// A netdev attribute from sysfs (in rvsd's network namespace).
fn sysfs(name: &str, attr: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/{attr}"))
        .ok()
        .map(|v| v.trim().to_string())
}

/// `Interface.statistics`: rvs's own packet, byte and drop counters; for
/// a port with a netdev (`netdev`), the kernel's error counters of that
/// netdev too, under the names ovs-vswitchd uses.
fn statistics(c: &PortStats, netdev: Option<&str>) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    m.insert("rx_packets".to_string(), c.rx_packets as i64);
    m.insert("rx_bytes".to_string(), c.rx_bytes as i64);
    m.insert("tx_packets".to_string(), c.tx_packets as i64);
    m.insert("tx_bytes".to_string(), c.tx_bytes as i64);
    let Some(name) = netdev else {
        return m;
    };
    m.insert(
        "rx_dropped".to_string(),
        c.rx_dropped.values().sum::<u64>() as i64,
    );
    m.insert(
        "tx_dropped".to_string(),
        c.tx_dropped.values().sum::<u64>() as i64,
    );
    for (ovs, kernel) in [
        ("collisions", "collisions"),
        ("rx_crc_err", "rx_crc_errors"),
        ("rx_errors", "rx_errors"),
        ("rx_frame_err", "rx_frame_errors"),
        ("rx_missed_errors", "rx_missed_errors"),
        ("rx_multicast_packets", "multicast"),
        ("rx_over_err", "rx_over_errors"),
        ("tx_errors", "tx_errors"),
    ] {
        if let Some(v) = sysfs(name, &format!("statistics/{kernel}")).and_then(|v| v.parse().ok()) {
            m.insert(ovs.to_string(), v);
        }
    }
    m
}

/// `mtu`, `duplex`, `ifindex`, `mac_in_use` of a port's netdev, where
/// they differ from the row.
fn netdev_columns(i: &Row, name: &str, row: &mut serde_json::Map<String, Value>) {
    let int = |attr: &str| sysfs(name, attr).and_then(|v| v.parse::<i64>().ok());
    for (c, v) in [("mtu", int("mtu")), ("ifindex", int("ifindex"))] {
        if let Some(v) = v {
            if ints(i, c) != [v] {
                row.insert(c.into(), json!(v));
            }
        }
    }
    let strs = [
        (
            "duplex",
            sysfs(name, "duplex").filter(|d| d == "full" || d == "half"),
        ),
        ("mac_in_use", sysfs(name, "address")),
    ];
    for (c, v) in strs {
        if let Some(v) = v {
            if col(i, c).and_then(Datum::as_str) != Some(v.as_str()) {
                row.insert(c.into(), json!(v));
            }
        }
    }
}

/// The other_config keys rvs manages on a Bridge row.
const MANAGED_OTHER_CONFIG: [&str; 4] = [
    "datapath-id",
    "mac-aging-time",
    "mac-table-size",
    "vlan-limit",
];

/// The Bridge row `target` (a uuid or named-uuid) set to what the switch
/// has: `fail_mode`, `other_config` (`keep`: its keys rvs does not
/// manage) and, with `controllers`, new Controller rows for `want`'s
/// targets.
fn bridge_ops(
    target: &Value,
    want: &BridgeWant,
    keep: BTreeMap<String, String>,
    controllers: bool,
    named: &mut dyn FnMut(&str) -> String,
) -> Vec<Value> {
    let mut ops = Vec::new();
    let mut other_config = keep;
    other_config.retain(|k, _| !MANAGED_OTHER_CONFIG.contains(&k.as_str()));
    other_config.extend(managed_other_config(want));
    let mut row = serde_json::Map::new();
    row.insert(
        "fail_mode".into(),
        if want.fail_secure {
            json!("secure")
        } else {
            set_json([])
        },
    );
    row.insert("other_config".into(), map_json(&other_config));
    if controllers {
        let mut refs = Vec::new();
        for t in &want.controllers {
            let c = named("c");
            ops.push(
                json!({"op": "insert", "table": "Controller", "uuid-name": c, "row": {"target": t}}),
            );
            refs.push(json!(["named-uuid", c]));
        }
        row.insert("controller".into(), set_json(refs));
    }
    ops.push(
        json!({"op": "update", "table": "Bridge", "where": [["_uuid", "==", target]], "row": row}),
    );
    ops
}

fn managed_other_config(want: &BridgeWant) -> BTreeMap<String, String> {
    let mut oc = BTreeMap::new();
    if let Some(d) = want.datapath_id {
        oc.insert("datapath-id".to_string(), format!("{d:016x}"));
    }
    if want.aging != DEFAULT_AGING_S {
        oc.insert("mac-aging-time".to_string(), want.aging.to_string());
    }
    if want.table_size != DEFAULT_TABLE_SIZE {
        oc.insert("mac-table-size".to_string(), want.table_size.to_string());
    }
    if want.vlan_limit != DEFAULT_VLAN_LIMIT {
        oc.insert("vlan-limit".to_string(), want.vlan_limit.to_string());
    }
    oc
}

/// The Port row columns of a switch port.
fn port_row(p: &PortConfig) -> Value {
    json!({
        "tag": p.tag.map_or_else(|| set_json([]), |t| json!(t)),
        "trunks": set_json(p.trunks.iter().map(|t| json!(t))),
        "vlan_mode": p.vlan_mode.as_ref().map_or_else(|| set_json([]), |m| json!(m)),
    })
}

/// The Interface row columns of a switch port.
fn iface_row(p: &PortConfig) -> Value {
    let mut options = p.options.clone();
    if let Some(peer) = &p.peer {
        options.insert("peer".to_string(), peer.clone());
    }
    json!({
        "name": p.name,
        "type": ovs_kind(p.kind.as_deref().unwrap_or("system")),
        "options": map_json(&options),
        "external_ids": map_json(&p.external_ids),
        "ingress_policing_rate": p.ingress_policing_rate,
        "ingress_policing_burst": p.ingress_policing_burst,
        "ingress_policing_kpkts_rate": p.ingress_policing_kpkts_rate,
        "ingress_policing_kpkts_burst": p.ingress_policing_kpkts_burst,
    })
}

/// Updates of an existing Port/Interface pair to what the switch has.
fn port_ops(dp: &DbPort, p: &PortConfig) -> Vec<Value> {
    let mut ops = vec![update("Port", dp.port, port_row(p))];
    if let Some(i) = dp.iface {
        let mut row = iface_row(p);
        if let Some(o) = row.as_object_mut() {
            o.remove("name");
        }
        ops.push(update("Interface", i, row));
    }
    ops
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in [
            "system", "internal", "tap", "patch", "vxlan", "geneve", "gre",
        ] {
            assert_eq!(rvs_kind(ovs_kind(k)).unwrap(), k);
        }
        assert!(rvs_kind("dpdk").unwrap_err().contains("dpdk"));
    }

    #[test]
    fn set_settings_clears_and_sets() {
        let cur = PortConfig {
            name: "p".into(),
            kind: Some("vxlan".into()),
            tag: Some(5),
            trunks: vec![],
            vlan_mode: None,
            ofport: Some(1),
            peer: None,
            split_horizon: None,
            options: [
                ("remote_ip".to_string(), "10.0.0.1".to_string()),
                ("key".into(), "5".into()),
            ]
            .into_iter()
            .collect(),
            external_ids: BTreeMap::new(),
            ..PortConfig::default()
        };
        let mut want = cur.clone();
        want.tag = None;
        want.options.remove("key");
        let s = set_settings(&cur, &want);
        assert_eq!(
            s,
            vec![
                ("tag".to_string(), String::new()),
                ("options:key".to_string(), String::new())
            ]
        );
    }
}
