//! `rvsctl apply`: resolving a desired configuration against the running
//! one, planning the steps (with the diff `--dry-run` prints), executing
//! them, and rolling back when the kernel refuses one.
//!
//! # Rollback
//! When a step fails, the steps back to the previous configuration are
//! planned the same way (`plan(previous)`) and executed; then the running
//! state is compared with the previous one once more (`plan(previous)`
//! again, which must be empty). The error names the step that failed, the
//! steps applied before it, and either "the previous state was restored"
//! — only when every rollback step succeeded *and* nothing differs — or
//! each rollback step that failed (with its error) and what still differs
//! from the previous state. Whatever happened, the state that is saved is
//! what is running: a failed apply journals the configuration it left.
//!
//! # Invariants
//! Everything is validated before the first step; the kernel's refusals
//! are the only failures after it.
//!
//! # Thread-safety
//! Part of [`Switch`], behind its mutex.

use super::*;

/// One step of an `apply`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Change {
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
    /// Make the bridge's meters `want` (ids in `del` go; deleting a meter
    /// deletes the flows that use it, so this runs before the flows are
    /// replaced).
    SetMeters {
        bridge: String,
        want: Vec<flowtable::meter::MeterSpec>,
        del: Vec<u32>,
    },
    SetFailMode {
        bridge: String,
        mode: String,
    },
}

pub(super) fn kv_text(settings: &[(String, String)]) -> String {
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
            Change::SetMeters { bridge, want, del } => want
                .iter()
                .map(|m| format!("~ meter {bridge}: {m}"))
                .chain(del.iter().map(|id| format!("- meter {bridge}: meter={id}")))
                .collect(),
        }
    }
}

/// A desired port with its resolved settings.
pub(super) struct WantPort<'a> {
    cfg: &'a PortConfig,
    kind: Option<PortKind>,
    vlan: VlanConfig,
    ofport: PortNo,
    /// Tunnel options, for tunnel ports.
    tunnel: Option<TunnelConfig>,
}

/// A desired bridge: name, ports, flows.
pub(super) type WantBridge<'a> = (String, Vec<WantPort<'a>>, Vec<Flow>);

impl Switch {
    /// Checks `want` completely and resolves port numbers; errors name the
    /// file, line and key.
    pub(super) fn resolve<'a>(
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
                            "{}: type = \"{k}\": expected tap, system, internal, patch, vxlan, geneve or gre",
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
                let tunnel = match kind {
                    Some(k) => tunnel_from(
                        k,
                        &p.options,
                        &ctx(if p.options.is_empty() {
                            "type"
                        } else {
                            "options"
                        }),
                    )?,
                    None if !p.options.is_empty() => {
                        return Err(invalid(format!(
                            "{}: options are only for tunnel ports (type = \"vxlan\", \"geneve\" or \"gre\")",
                            ctx("options")
                        )))
                    }
                    None => None,
                };
                ports.push(WantPort {
                    cfg: p,
                    kind,
                    tunnel,
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
    pub(super) fn plan(&self, want: &Config, text: &str, origin: &str) -> Result<Vec<Change>> {
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
                            || wp.tunnel != p.tunnel
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
            let want_vlans = wb.and_then(|b| b.vlan_limit).unwrap_or(DEFAULT_VLAN_LIMIT);
            if want_vlans != cur.map_or(DEFAULT_VLAN_LIMIT, |c| c.vlan_limit) {
                knobs.push(("vlan-limit".to_string(), want_vlans.to_string()));
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
                        let keys: HashSet<&String> = p
                            .external_ids
                            .keys()
                            .chain(wp.cfg.external_ids.keys())
                            .collect();
                        let mut keys: Vec<&String> = keys.into_iter().collect();
                        keys.sort();
                        for k in keys {
                            let want = wp.cfg.external_ids.get(k);
                            if p.external_ids.get(k) != want {
                                settings.push((
                                    format!("external_ids:{k}"),
                                    want.cloned().unwrap_or_default(),
                                ));
                            }
                        }
                        let want_qos = wp.cfg.qos();
                        for ((k, want), cur) in QosConfig::KEYS
                            .into_iter()
                            .zip(want_qos.values())
                            .zip(p.qos.values())
                        {
                            if want != cur {
                                settings.push((k.to_string(), want.to_string()));
                            }
                        }
                        let horizon = wp.cfg.split_horizon.unwrap_or(p.kind.is_tunnel());
                        if horizon != p.split_horizon {
                            settings.push(("split_horizon".to_string(), horizon.to_string()));
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
            // Meters before the flows that use them.
            let mut want_meters = Vec::new();
            for m in wb.map(|b| b.meter.as_slice()).unwrap_or_default() {
                want_meters.push(flowtable::meter::parse_meter(&m.meter).map_err(|e| {
                    invalid(format!("{origin}: bridge {bname}: meter {}: {e}", m.meter))
                })?);
            }
            want_meters.sort_by_key(|m| m.id);
            let cur_meters: Vec<flowtable::meter::MeterSpec> = cur
                .map(|c| {
                    c.flows
                        .meters()
                        .sorted()
                        .iter()
                        .map(|m| m.spec.clone())
                        .collect()
                })
                .unwrap_or_default();
            if want_meters != cur_meters {
                let del = cur_meters
                    .iter()
                    .map(|m| m.id)
                    .filter(|id| !want_meters.iter().any(|w| w.id == *id))
                    .collect();
                let changed = want_meters
                    .iter()
                    .filter(|w| !cur_meters.contains(w))
                    .cloned()
                    .collect();
                adds.push(Change::SetMeters {
                    bridge: bname.clone(),
                    want: changed,
                    del,
                });
            }
            let want_text: Vec<String> = flows.iter().map(|f| syntax::fmt_flow(f, None)).collect();
            let cur_text: Vec<String> = match cur {
                Some(c) => c
                    .flows
                    .view()
                    .tables
                    .iter()
                    .flat_map(|t| t.iter())
                    .map(|(_, r)| syntax::fmt_flow(&crate::datapath::pipeline::flow_of(r), None))
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

    pub(super) fn exec(&mut self, c: &Change) -> Result<()> {
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
            Change::SetMeters { bridge, want, del } => {
                for m in want {
                    let exists = self.bridge(bridge)?.flows.meters().get(m.id).is_some();
                    self.set_meter(bridge, m.clone(), exists)?;
                }
                for id in del {
                    self.del_meters(bridge, *id)?;
                }
                Ok(Self::done("", 1))
            }
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
        for r in &want.ovsdb_remote {
            r.parse::<crate::ovsdb::server::Remote>()
                .map_err(|e| format!("{origin}: ovsdb_remote: {e}"))?;
        }
        self.resolve(want, text, origin)
            .map(|_| ())
            .map_err(|e| e.message)
    }

    /// `apply`: makes the running state equal to `want` (parsed from
    /// `text`, which error messages point into), all or nothing.
    pub(super) fn apply_text(
        &mut self,
        want: &Config,
        text: &str,
        origin: &str,
        dry_run: bool,
    ) -> Result<Reply> {
        for r in &want.ovsdb_remote {
            r.parse::<crate::ovsdb::server::Remote>()
                .map_err(|e| invalid(format!("{origin}: ovsdb_remote: {e}")))?;
        }
        let plan = self.plan(want, text, origin)?;
        let mut changes: Vec<String> = plan.iter().flat_map(Change::describe).collect();
        let remote = want.ovsdb_remote != self.ovsdb_remote;
        if remote {
            changes.push(format!(
                "set ovsdb_remote = {:?} (takes effect when rvsd restarts)",
                want.ovsdb_remote
            ));
        }
        if dry_run || (plan.is_empty() && !remote) {
            return Ok(Reply::Apply {
                changes,
                applied: false,
            });
        }
        if remote {
            self.ovsdb_remote = want.ovsdb_remote.clone();
            self.config_touched = true;
        }
        let before = self.export();
        // From here on the configuration may change even if apply fails:
        // the switch journals what is left (see `Switch::handle`).
        self.config_touched = true;
        for (i, c) in plan.iter().enumerate() {
            if let Err(e) = self.exec(c) {
                return Err(self.roll_back(origin, &before, &plan[..i], c, e));
            }
        }
        Ok(Reply::Apply {
            changes,
            applied: true,
        })
    }

    /// Undoes a failed apply: back to `before` as far as the kernel lets
    /// us. Returns the error for the user (see the module docs).
    fn roll_back(
        &mut self,
        origin: &str,
        before: &Config,
        applied: &[Change],
        failed: &Change,
        e: Reject,
    ) -> Reject {
        let before_text = toml::to_string(before).unwrap_or_default();
        let mut undo_failed: Vec<String> = Vec::new();
        match self.plan(before, &before_text, "<rollback>") {
            Ok(undo) => {
                for u in &undo {
                    if let Err(ue) = self.exec(u) {
                        let line = format!("{}: {}", brief(&u.describe()), ue.message);
                        log::error!("apply rollback: {line}");
                        undo_failed.push(line);
                    }
                }
            }
            Err(pe) => {
                log::error!("apply rollback: {}", pe.message);
                undo_failed.push(format!("planning the rollback: {}", pe.message));
            }
        }
        // What still differs, whatever the steps reported.
        let left: Vec<String> = match self.plan(before, &before_text, "<rollback>") {
            Ok(rest) => rest.iter().flat_map(Change::describe).collect(),
            Err(pe) => vec![format!("(cannot compare: {})", pe.message)],
        };
        let done = if applied.is_empty() {
            "nothing had been applied before it".to_string()
        } else {
            let lines: Vec<String> = applied.iter().flat_map(Change::describe).collect();
            format!("applied before it: {}", brief(&lines))
        };
        let mut msg = format!(
            "{origin}: {}: {}; {done}; ",
            brief(&failed.describe()),
            e.message
        );
        if undo_failed.is_empty() && left.is_empty() {
            msg.push_str("rolled back: the previous state was restored");
        } else {
            msg.push_str("the previous state could NOT be restored");
            if !undo_failed.is_empty() {
                msg.push_str(&format!(
                    "; rollback steps that failed: {}",
                    undo_failed.join("; ")
                ));
            }
            if !left.is_empty() {
                msg.push_str(&format!(
                    "; still different from the previous state: {}",
                    brief(&left)
                ));
            }
            msg.push_str("; the running state (rvsctl export) is what was saved");
        }
        reject(e.kind, msg)
    }
}

/// Most diff lines an apply error lists; the rest are counted.
const BRIEF_LINES: usize = 10;

/// `lines` joined with "; ", the first [`BRIEF_LINES`] only.
fn brief(lines: &[String]) -> String {
    let mut s = lines
        .iter()
        .take(BRIEF_LINES)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if lines.len() > BRIEF_LINES {
        s.push_str(&format!(" (and {} more)", lines.len() - BRIEF_LINES));
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::port::mem::FakeNetdevs;

    fn switch(fake: &FakeNetdevs, store: Option<StateStore>) -> Switch {
        Switch::with_netdevs(Instant::now(), store, 1, Arc::new(fake.clone())).unwrap()
    }

    fn apply(sw: &mut Switch, text: &str) -> Response {
        sw.handle(Request::Apply {
            text: text.into(),
            origin: "want.toml".into(),
            dry_run: false,
        })
    }

    fn error(r: Response) -> String {
        match r {
            Response::Err { error, .. } => error.message,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// br0 with taps a (VLAN 10) and b.
    const START: &str = r#"
[[bridge]]
name = "br0"
[[bridge.port]]
name = "a"
tag = 10
[[bridge.port]]
name = "b"
"#;

    fn start(sw: &mut Switch) {
        let r = apply(sw, START);
        assert!(matches!(r, Response::Ok { .. }), "{r:?}");
    }

    fn port_names(cfg: &Config) -> Vec<(String, Option<u16>)> {
        cfg.bridge
            .iter()
            .flat_map(|b| b.port.iter().map(|p| (p.name.clone(), p.tag)))
            .collect()
    }

    /// A step the kernel refuses (creating TAP c) after two that worked:
    /// both are undone, and only then does the error say so.
    #[test]
    fn a_failed_step_is_rolled_back_and_reported_step_by_step() {
        let fake = FakeNetdevs::new();
        let mut sw = switch(&fake, None);
        start(&mut sw);
        let before = sw.export();
        fake.fail("c");
        let want = r#"
[[bridge]]
name = "br0"
[[bridge.port]]
name = "a"
tag = 20
[[bridge.port]]
name = "c"
"#;
        let msg = error(apply(&mut sw, want));
        assert!(
            msg.starts_with("want.toml: + add-port br0 c ofport_request=2: add-port br0 c:"),
            "{msg}"
        );
        assert!(
            msg.contains("creating tap: TUNSETIFF for port \"c\" failed"),
            "{msg}"
        );
        assert!(
            msg.contains("applied before it: - del-port br0 b; ~ set port a tag=20"),
            "{msg}"
        );
        assert!(
            msg.ends_with("rolled back: the previous state was restored"),
            "{msg}"
        );
        assert_eq!(sw.export(), before);
        assert!(fake.exists("b"), "b was re-created");
        sw.shutdown();
    }

    /// The first step fails: nothing to undo.
    #[test]
    fn a_failure_before_any_change_says_nothing_was_applied() {
        let fake = FakeNetdevs::new();
        let mut sw = switch(&fake, None);
        start(&mut sw);
        let before = sw.export();
        fake.fail("br1");
        let want = format!("{START}\n[[bridge]]\nname = \"br1\"\n");
        let msg = error(apply(&mut sw, &want));
        assert_eq!(
            msg,
            "want.toml: + add-br br1: add-br br1: creating its LOCAL tap: TUNSETIFF for port \
             \"br1\" failed; nothing had been applied before it; rolled back: the previous \
             state was restored"
        );
        assert_eq!(sw.export(), before);
        sw.shutdown();
    }

    /// Deleting b worked, creating c failed, and re-creating b fails too:
    /// the error says b could not be restored (never "restored"), and the
    /// state on disk is what runs (a, no b), not the previous or the
    /// requested configuration.
    #[test]
    fn a_failed_rollback_is_reported_and_the_real_state_is_saved() {
        let dir = std::env::temp_dir().join(format!("rvs-apply-rollback-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = StateStore::open(&dir).unwrap();
        let fake = FakeNetdevs::new();
        let mut sw = switch(&fake, Some(store.clone()));
        sw.save().unwrap();
        start(&mut sw);
        fake.fail("c");
        fake.fail("b");
        let want = r#"
[[bridge]]
name = "br0"
[[bridge.port]]
name = "a"
tag = 10
[[bridge.port]]
name = "c"
"#;
        let msg = error(apply(&mut sw, want));
        assert!(!msg.contains("was restored"), "{msg}");
        assert!(
            msg.contains("applied before it: - del-port br0 b;"),
            "{msg}"
        );
        assert!(
            msg.contains(
                "the previous state could NOT be restored; rollback steps that failed: \
                 + add-port br0 b type=tap ofport_request=2: add-port br0 b: creating tap: \
                 TUNSETIFF for port \"b\" failed"
            ),
            "{msg}"
        );
        assert!(
            msg.contains("still different from the previous state: + add-port br0 b"),
            "{msg}"
        );
        let running = sw.export();
        assert_eq!(port_names(&running), vec![("a".to_string(), Some(10))]);
        // What a restart would restore: the running state.
        let saved = store.load().unwrap().unwrap();
        assert_eq!(port_names(&saved), port_names(&running));
        // Once the kernel cooperates, the same apply goes through.
        fake.heal("b");
        fake.heal("c");
        assert!(matches!(apply(&mut sw, want), Response::Ok { .. }));
        let saved = store.load().unwrap().unwrap();
        assert_eq!(
            port_names(&saved),
            vec![("a".to_string(), Some(10)), ("c".to_string(), None)]
        );
        sw.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
