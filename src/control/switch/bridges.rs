//! Bridge requests: `add-br`, `del-br`, `show`, `set bridge`,
//! `set-controller`, and the datapath worker summary.
//!
//! # Thread-safety
//! Part of [`Switch`], behind its mutex.

use super::*;

impl Switch {
    pub(super) fn check_new_netdev_name(&self, name: &str, what: &str) -> Result<()> {
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

    pub(super) fn add_br(&mut self, name: &str, may_exist: bool) -> Result<Reply> {
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
            split_horizon: false,
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
                tunnel: None,
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
                failing: BTreeMap::new(),
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

    pub(super) fn del_br(&mut self, name: &str, if_exists: bool) -> Result<Reply> {
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

    pub(super) fn show(&self, only: Option<&str>) -> Reply {
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

    pub(super) fn set_bridge(
        &mut self,
        name: &str,
        settings: &[(String, String)],
    ) -> Result<Reply> {
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

    pub(super) fn set_controller(&mut self, name: &str, targets: &[String]) -> Result<Reply> {
        for t in targets {
            let target = t
                .parse::<Target>()
                .map_err(|e| invalid(format!("set-controller {name}: {e}")))?;
            // Saved state from a run with certificates is restored anyway
            // (the target logs why it stays down).
            if target.is_tls() && !self.tls && !self.restoring {
                return Err(invalid(format!(
                    "set-controller {name}: {t}: TLS is not configured \
                     (start rvsd with --private-key, --certificate and --ca-cert)"
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(d) = targets.iter().find(|t| !seen.insert(t.as_str())) {
            return Err(invalid(format!(
                "set-controller {name}: {d} is given twice"
            )));
        }
        let failing = self.check_listeners(name, targets)?;
        let b = self.bridge_mut(name)?;
        b.controllers = targets.to_vec();
        b.failing = failing;
        b.of.configure(!b.controllers.is_empty(), b.secure);
        Ok(Self::done("", targets.len() as u64))
    }

    /// A new passive target must be free: not another bridge's, and (for
    /// `ptcp:`) bindable now, so a busy or foreign address is an error for
    /// the user instead of a listener retrying in the background; a
    /// `punix:` path must pass [`Punix::check`] (nothing but this bridge's
    /// stale socket is ever replaced). Restoring saved state skips the
    /// `ptcp:` bind (the listener retries and logs) and does not fail on a
    /// `punix:` path that became unusable: that target is returned as
    /// failing (logged, kept configured, not started), so that rvsd
    /// still starts and can be managed. Targets failing before count as
    /// new: they are checked again.
    pub(super) fn check_listeners(
        &self,
        name: &str,
        targets: &[String],
    ) -> Result<BTreeMap<String, String>> {
        use crate::control::punix::normalize;
        let b = self.bridge(name)?;
        let mut failing = BTreeMap::new();
        let mut paths: Vec<(std::path::PathBuf, &String)> = Vec::new();
        for t in targets {
            let target = t.parse::<Target>();
            let new = !b.controllers.contains(t) || b.failing.contains_key(t);
            if let Ok(Target::PUnix(p)) = &target {
                let n = normalize(p);
                if let Some((_, other)) = paths.iter().find(|(q, _)| *q == n) {
                    return Err(invalid(format!(
                        "set-controller {name}: {t} and {other} are the same socket; nothing was changed"
                    )));
                }
                paths.push((n.clone(), t));
                if !new {
                    continue;
                }
                let other = self.bridges.values().find(|o| {
                    o.name != name
                        && o.controllers.iter().any(
                            |c| matches!(c.parse(), Ok(Target::PUnix(q)) if normalize(&q) == n),
                        )
                });
                let problem = match other {
                    Some(o) => Some(format!("is already a controller of bridge {}", o.name)),
                    None => self
                        .punix
                        .check(p, self.restoring)
                        .err()
                        .map(|e| e.to_string()),
                };
                let Some(problem) = problem else { continue };
                if !self.restoring {
                    return Err(invalid(format!(
                        "set-controller {name}: {t}: {problem}; nothing was changed"
                    )));
                }
                log::error!(
                    "bridge {name}: controller {t} from the saved state cannot listen: {problem}; \
                     it stays configured but does not run (set-controller again once the path is usable)"
                );
                failing.insert(t.clone(), problem);
                continue;
            }
            if !new || !matches!(target, Ok(Target::PTcp(_) | Target::PSsl(_))) {
                continue;
            }
            if let Some(other) = self
                .bridges
                .values()
                .find(|o| o.name != name && o.controllers.contains(t))
            {
                return Err(invalid(format!(
                    "set-controller {name}: {t} is already a controller of bridge {}",
                    other.name
                )));
            }
            if let (Ok(Target::PTcp(addr) | Target::PSsl(addr)), false) = (target, self.restoring) {
                std::net::TcpListener::bind(addr).map_err(|e| {
                    invalid(format!(
                        "set-controller {name}: {t}: cannot listen on {addr}: {e}"
                    ))
                })?;
            }
        }
        Ok(failing)
    }

    /// What each datapath worker polls and did (`pmd-stats-show`).
    pub(super) fn workers_info(&self) -> Vec<rvs_ctl::proto::WorkerInfo> {
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
}
