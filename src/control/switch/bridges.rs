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
        if self.netdevs.exists(name) {
            return Err(reject(
                ErrorKind::Exists,
                format!("add-br {name}: a network device named {name} already exists"),
            ));
        }
        let local = self.netdevs.create_tap(name).map_err(|e| {
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
        let meters = flows.meters_shared();
        let normal = Bridge::new();
        let of = Arc::new(OfShared::default());
        of.set_sink(self.packet_in_sink.clone());
        self.worker.send(Command::AddBridge {
            id,
            rt: Box::new(
                BridgeRt::new(name.to_string(), published, normal)
                    .with_of(of.clone())
                    .with_meters(meters),
            ),
        });
        let shared = Arc::new(PortShared::new(None));
        let vlan = VlanConfig::default();
        let worker = self.worker.pick_owner();
        self.worker.send(Command::AddPort {
            bridge: id,
            ofport: PortNo::LOCAL,
            name: name.to_string(),
            io: Some(Arc::new(local)),
            owner: worker,
            shared: shared.clone(),
            vlan: vlan.clone(),
            split_horizon: false,
            policers: Default::default(),
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
                split_horizon: false,
                qos: QosConfig::default(),
                external_ids: BTreeMap::new(),
                shared,
                mac: self.netdevs.mac(name).unwrap_or_default(),
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
                vlan_limit: DEFAULT_VLAN_LIMIT,
                of,
                next_ofport: 1,
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
        let mut vlan_limit = b.vlan_limit;
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
            if key == "vlan-limit" {
                vlan_limit = v.parse::<u32>().map_err(|_| {
                    invalid(format!(
                        "set bridge {name}: vlan-limit={v}: expected a number of VLAN headers (0 = no limit)"
                    ))
                })?;
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
                        "set bridge {name}: unknown setting \"{k}\" (expected mac-aging-time, mac-table-size, datapath-id, flow-limit or vlan-limit)"
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
        if b.vlan_limit != vlan_limit {
            b.vlan_limit = vlan_limit;
            self.worker.send(Command::SetVlanLimit {
                bridge: id,
                limit: u8::try_from(vlan_limit).unwrap_or(u8::MAX),
            });
        }
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

    /// `memory-show`: the process's figures and each bridge's share.
    pub(super) fn memory_info(&self) -> rvs_ctl::proto::MemoryInfo {
        let (rss_bytes, threads) = crate::alloc::rss_and_threads().unwrap_or((0, 0));
        rvs_ctl::proto::MemoryInfo {
            rss_bytes,
            allocated_bytes: crate::alloc::allocated_bytes(),
            committed_bytes: crate::alloc::committed_bytes(),
            threads,
            workers: self.worker.len() as u32,
            bridges: self
                .bridges
                .values()
                .map(|b| rvs_ctl::proto::BridgeMemory {
                    name: b.name.clone(),
                    ports: b.ports.len() as u32,
                    flows: b.flows.len() as u64,
                    counter_bytes_per_flow: b.flows.counter_bytes_per_flow() as u64,
                })
                .collect(),
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::port::mem::{FakeNetdevs, MemHost};

    fn ok(sw: &mut Switch, req: Request) -> Reply {
        match sw.handle(req) {
            Response::Ok { result, .. } => result,
            other => panic!("{other:?}"),
        }
    }

    fn err(sw: &mut Switch, req: Request) -> String {
        match sw.handle(req) {
            Response::Err { error, .. } => error.message,
            other => panic!("expected an error: {other:?}"),
        }
    }

    fn kv(s: &[&str]) -> Vec<(String, String)> {
        s.iter()
            .map(|x| {
                let (k, v) = x.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    fn set_bridge(sw: &mut Switch, settings: &[&str]) -> Response {
        sw.handle(Request::SetBridge {
            name: "br0".into(),
            settings: kv(settings),
        })
    }

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    const BCAST: [u8; 6] = [0xff; 6];
    const PAYLOAD: [u8; 22] = [
        0x08, 0x00, 0x45, 0, 0, 20, 0, 0, 0, 0, 64, 253, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];

    /// A frame with 802.1Q `tags` (TCIs) and a small IPv4 packet.
    fn frame(dst: [u8; 6], src: [u8; 6], tags: &[u16]) -> Vec<u8> {
        let mut f = [dst, src].concat();
        for t in tags {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&t.to_be_bytes());
        }
        f.extend_from_slice(&PAYLOAD);
        f
    }

    /// What `h` receives within 300 ms, if anything.
    fn got(h: &MemHost) -> Option<Vec<u8>> {
        h.recv(Duration::from_millis(300))
    }

    /// br0: acc (access 10), trunk (all VLANs), nu (native-untagged 10),
    /// all in-memory ports.
    fn topo(fake: &FakeNetdevs) -> (Switch, MemHost, MemHost, MemHost) {
        let mut sw = Switch::with_netdevs(Instant::now(), None, 1, Arc::new(fake.clone())).unwrap();
        ok(
            &mut sw,
            Request::AddBr {
                name: "br0".into(),
                may_exist: false,
            },
        );
        for (name, s) in [
            ("acc", &["tag=10"][..]),
            ("trunk", &[][..]),
            ("nu", &["tag=10", "vlan_mode=native-untagged"][..]),
        ] {
            ok(
                &mut sw,
                Request::AddPort {
                    bridge: "br0".into(),
                    name: name.into(),
                    settings: kv(s),
                    may_exist: false,
                },
            );
        }
        let h = |n| fake.take_host(n).unwrap();
        (sw, h("acc"), h("trunk"), h("nu"))
    }

    /// The datapath end to end (extraction under the bridge's limit,
    /// NORMAL, egress edits): a double-tagged frame from the trunk
    /// reaches the access port of its outer VLAN with the inner tag as
    /// payload under the default vlan-limit=1, and not under 2; one to a
    /// learned MAC on the access port leaves with every parsed tag gone.
    #[test]
    fn vlan_limit_decides_where_double_tagged_frames_go() {
        let fake = FakeNetdevs::new();
        let (mut sw, acc, trunk, nu) = topo(&fake);
        let dbl = frame(BCAST, A, &[10, 20]);
        trunk.send(&dbl);
        let inner_only = frame(BCAST, A, &[20]);
        assert_eq!(got(&acc), Some(inner_only.clone()), "limit 1: access");
        assert_eq!(got(&nu), Some(inner_only), "limit 1: native-untagged");

        assert!(matches!(
            set_bridge(&mut sw, &["vlan-limit=2"]),
            Response::Ok { .. }
        ));
        assert!(sw.worker.barrier(Duration::from_secs(5)));
        trunk.send(&dbl);
        assert_eq!(
            got(&nu),
            Some(frame(BCAST, A, &[20])),
            "limit 2: native-untagged"
        );
        assert_eq!(got(&acc), None, "limit 2: access ports carry no second tag");
        // B speaks on the access port; a double-tagged frame to B arrives
        // there without either tag (OVS empties the VLAN stack).
        // (A was learned on the trunk from the broadcasts above.)
        acc.send(&frame(A, B, &[]));
        assert_eq!(got(&trunk), Some(frame(A, B, &[10])));
        trunk.send(&frame(B, A, &[10, 20]));
        assert_eq!(
            got(&acc),
            Some(frame(B, A, &[])),
            "limit 2: learned unicast"
        );
        // A priority tag over a second tag on the access port: the second
        // tag is dropped on the way in (limit 2)...
        acc.send(&frame(BCAST, B, &[0x6000, 30]));
        assert_eq!(got(&trunk), Some(frame(BCAST, B, &[0x600a])));
        assert_eq!(got(&nu), Some(frame(BCAST, B, &[])));
        // ...and is payload under limit 1.
        assert!(matches!(
            set_bridge(&mut sw, &["vlan-limit=1"]),
            Response::Ok { .. }
        ));
        assert!(sw.worker.barrier(Duration::from_secs(5)));
        acc.send(&frame(BCAST, B, &[0x6000, 30]));
        assert_eq!(got(&trunk), Some(frame(BCAST, B, &[0x600a, 30])));
        assert_eq!(got(&nu), Some(frame(BCAST, B, &[30])));
        // A tagged frame on the access port goes nowhere, under any limit.
        for limit in ["vlan-limit=1", "vlan-limit=0"] {
            assert!(matches!(set_bridge(&mut sw, &[limit]), Response::Ok { .. }));
            assert!(sw.worker.barrier(Duration::from_secs(5)));
            acc.send(&frame(BCAST, B, &[20, 30]));
            assert_eq!(got(&trunk), None, "{limit}");
            assert_eq!(got(&nu), None, "{limit}");
        }
        sw.shutdown();
    }

    /// `set bridge BR vlan-limit=N`: checked, exported and applied like
    /// the other knobs; a bad value changes nothing.
    #[test]
    fn vlan_limit_is_a_bridge_knob() {
        let fake = FakeNetdevs::new();
        let (mut sw, ..) = topo(&fake);
        let export = |sw: &Switch| sw.export().to_toml().unwrap();
        assert!(
            !export(&sw).contains("vlan_limit"),
            "the default is not written"
        );
        let e = err(
            &mut sw,
            Request::SetBridge {
                name: "br0".into(),
                settings: kv(&["mac-aging-time=60", "vlan-limit=two"]),
            },
        );
        assert_eq!(
            e,
            "set bridge br0: vlan-limit=two: expected a number of VLAN headers (0 = no limit)"
        );
        assert_eq!(
            sw.bridges["br0"].aging_s, DEFAULT_AGING_S,
            "nothing changed"
        );
        assert!(matches!(
            set_bridge(&mut sw, &["other-config:vlan-limit=0"]),
            Response::Ok { .. }
        ));
        let text = export(&sw);
        assert!(text.contains("vlan_limit = 0"), "{text}");
        // apply of the export is a no-op; without the key, back to 1.
        let r = ok(
            &mut sw,
            Request::Apply {
                text: text.clone(),
                origin: "x".into(),
                dry_run: true,
            },
        );
        assert!(
            matches!(&r, Reply::Apply { changes, .. } if changes.is_empty()),
            "{r:?}"
        );
        let r = ok(
            &mut sw,
            Request::Apply {
                text: text.replace("vlan_limit = 0\n", ""),
                origin: "x".into(),
                dry_run: false,
            },
        );
        assert!(
            matches!(&r, Reply::Apply { changes, .. } if changes == &["~ set bridge br0 vlan-limit=1"]),
            "{r:?}"
        );
        assert_eq!(sw.bridges["br0"].vlan_limit, 1);
        sw.shutdown();
    }
}
