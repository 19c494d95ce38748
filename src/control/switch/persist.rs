//! Persistence of the switch model: the snapshot of the whole state, the
//! journal records of each request, restoring a configuration, and
//! `export`.
//!
//! # Design
//! Every request's changes become journal records ([`Record`]) appended as
//! one batch after the request ([`Switch::flush_journal`]); a snapshot is
//! pointer copies of the flow entries plus the small non-flow
//! configuration, formatted by the journal's compactor thread.
//!
//! # Thread-safety
//! Part of [`Switch`], behind its mutex.

use super::*;

/// The `add-port` settings that create the port `p` describes (its
/// `ofport` as `ofport_request`).
pub fn port_settings(p: &PortConfig) -> Vec<(String, String)> {
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
    if let Some(on) = p.split_horizon {
        v.push(("split_horizon".into(), on.to_string()));
    }
    for (k, val) in p.qos().settings() {
        v.push((k.into(), val.to_string()));
    }
    for (k, val) in &p.options {
        v.push((format!("options:{k}"), val.clone()));
    }
    for (k, val) in &p.external_ids {
        v.push((format!("external_ids:{k}"), val.clone()));
    }
    v
}

impl Switch {
    /// A snapshot of the whole state as of now: the configuration and
    /// each bridge's flow entries (pointers; formatted later).
    pub(super) fn snapshot(&self) -> Snapshot {
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
        let (Some(st), Some(from)) = (&self.store, cfg.journal) else {
            return self.save();
        };
        // The records already in the chain count towards the next
        // compaction, so restarts cannot grow it without bound.
        let since = crate::control::journal::count_records(st.dir(), from);
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

    /// Queues journal records for `changes` of `bridge`'s flows.
    pub(super) fn journal_flows(&mut self, bridge: &str, changes: Vec<FlowChange>) {
        if self.journal.is_none() {
            return;
        }
        let b: Arc<str> = bridge.into();
        self.records.extend(changes.into_iter().map(|c| match c {
            FlowChange::Added(e) => Pending::Add(b.clone(), e),
            FlowChange::Removed(e, _) => Pending::Del(b.clone(), e),
            FlowChange::Cleared => Pending::Other(Record::Clear { b: bridge.into() }),
        }));
    }

    /// Creates what `cfg` describes on an empty switch; stops at the first
    /// error.
    pub fn load(&mut self, cfg: &Config, restoring: bool) -> std::result::Result<(), String> {
        self.restoring = restoring;
        let r = self.load_inner(cfg);
        self.restoring = false;
        r
    }

    pub(super) fn load_inner(&mut self, cfg: &Config) -> std::result::Result<(), String> {
        let err = |e: Reject| e.message;
        self.ovsdb_remote = cfg.ovsdb_remote.clone();
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
            if let Some(l) = b.vlan_limit {
                knobs.push(("vlan-limit".to_string(), l.to_string()));
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
            for m in &b.meter {
                let spec = flowtable::meter::parse_meter(&m.meter)
                    .map_err(|e| format!("bridge {}: meter {:?}: {e}", b.name, m.meter))?;
                self.set_meter(&b.name, spec, false).map_err(err)?;
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
    /// The configuration without flows: bridges, ports and their settings
    /// as `export` writes them (O(bridges + ports)).
    pub fn config_view(&self) -> Config {
        self.export_config(false)
    }

    /// The counter bumped after each accepted change of bridges, ports or
    /// their settings (flow changes do not move it).
    pub fn generation(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.generation.clone()
    }

    pub(super) fn export_config(&self, with_flows: bool) -> Config {
        Config {
            format_version: None,
            journal: None,
            ovsdb_remote: self.ovsdb_remote.clone(),
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
                    vlan_limit: (b.vlan_limit != DEFAULT_VLAN_LIMIT).then_some(b.vlan_limit),
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
                            split_horizon: (p.split_horizon != p.kind.is_tunnel())
                                .then_some(p.split_horizon),
                            options: p
                                .tunnel
                                .as_ref()
                                .map(TunnelConfig::options)
                                .unwrap_or_default(),
                            external_ids: p.external_ids.clone(),
                            ingress_policing_rate: p.qos.ingress_policing_rate,
                            ingress_policing_burst: p.qos.ingress_policing_burst,
                            ingress_policing_kpkts_rate: p.qos.ingress_policing_kpkts_rate,
                            ingress_policing_kpkts_burst: p.qos.ingress_policing_kpkts_burst,
                            egress_rate: p.qos.egress_rate,
                            egress_burst: p.qos.egress_burst,
                        })
                        .collect(),
                    meter: b
                        .flows
                        .meters()
                        .sorted()
                        .iter()
                        .map(|m| crate::config::MeterConfig {
                            meter: m.spec.to_string(),
                        })
                        .collect(),
                    flow: with_flows.then(|| {
                        b.flows
                            .view()
                            .tables
                            .iter()
                            .flat_map(|t| t.iter())
                            .map(|(_, r)| FlowConfig {
                                flow: syntax::fmt_flow(
                                    &crate::datapath::pipeline::flow_of(r),
                                    None,
                                ),
                            })
                            .collect()
                    }),
                })
                .collect(),
        }
    }
}
