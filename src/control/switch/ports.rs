//! Port requests: `add-port` (TAPs, AF_PACKET system ports, internal,
//! patch and vxlan ports), `del-port`, `set port`, `dump-ports`, and
//! re-attaching system ports whose netdev appeared (and tunnel ports whose
//! socket could not be bound when the state was restored).
//!
//! # Thread-safety
//! Part of [`Switch`], behind its mutex.

use super::*;

/// Port settings given to `add-port` / `set port`.
#[derive(Debug, Default)]
pub(super) struct PortSettings {
    kind: Option<PortKind>,
    tag: Option<Option<Vid>>,
    trunks: Option<Vec<Vid>>,
    vlan_mode: Option<Option<VlanMode>>,
    ofport: Option<PortNo>,
    peer: Option<String>,
    /// `split_horizon=true|false`.
    split_horizon: Option<bool>,
    /// Policing settings (`ingress_policing_rate=…`, `egress_rate=…`),
    /// validated, in the order given.
    qos: Vec<(String, String)>,
    /// `options:KEY=VALUE` other than `options:peer`, without the prefix.
    options: BTreeMap<String, String>,
    /// `external_ids:KEY=VALUE`, without the prefix (empty: remove).
    external_ids: BTreeMap<String, String>,
}

/// The whole error chain of `e`, for messages about OS failures.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Opens a tunnel port's socket (or joins the one another tunnel port
/// bound on the same address and UDP port) as `ofport` of bridge id
/// `bridge`, with a message that says what to check.
pub(super) fn open_tunnel(
    name: &str,
    t: &TunnelConfig,
    bridge: u32,
    ofport: PortNo,
) -> std::result::Result<PortIo, String> {
    TunnelPort::open(name, t, bridge, ofport.0).map(PortIo::Tunnel).map_err(|e| {
        if let crate::port::PortError::Conflict(m) = &e {
            return m.clone();
        }
        let local = t
            .local_ip
            .map_or_else(|| "0.0.0.0".to_string(), |l| l.to_string());
        let hint = match &e {
            crate::port::PortError::Open { source, .. } => match source.raw_os_error() {
                Some(libc::EADDRINUSE) => " (a kernel tunnel device or another program already uses this UDP port on this address, or a tunnel port bound to a different local_ip overlaps it)",
                Some(libc::EADDRNOTAVAIL) => " (local_ip is not an address of this host)",
                _ => "",
            },
            _ => "",
        };
        if t.kind.is_udp() {
            format!("binding UDP {local}:{}: {}{hint}", t.dst_port, chain(&e))
        } else {
            format!("opening a GRE socket on {local}: {}{hint}", chain(&e))
        }
    })
}

/// The tunnel configuration of a port of `kind` with `options`; options
/// on a port that is not a tunnel are refused.
pub(super) fn tunnel_from(
    kind: PortKind,
    options: &BTreeMap<String, String>,
    who: &str,
) -> Result<Option<TunnelConfig>> {
    if let Some(t) = kind.tunnel() {
        return TunnelConfig::parse(t, options)
            .map(Some)
            .map_err(|e| invalid(format!("{who}: {e}")));
    }
    match options.keys().next() {
        Some(k) => Err(invalid(format!(
            "{who}: options:{k} is only for tunnel ports (type=vxlan, geneve or gre)"
        ))),
        None => Ok(None),
    }
}

pub(super) fn parse_vid(key: &str, v: &str) -> Result<Vid> {
    let n: u16 = v
        .trim()
        .parse()
        .map_err(|_| invalid(format!("{key}={v}: expected a VLAN id (1-4094)")))?;
    Ok(Vid(n))
}

pub(super) fn parse_settings(
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
                    "{verb}: type={v}: expected tap, system, internal, patch, vxlan, geneve or gre"
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
            "split_horizon" | "other_config:split_horizon" => {
                s.split_horizon = Some(match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(invalid(format!(
                            "{verb}: split_horizon={v}: expected true or false"
                        )))
                    }
                })
            }
            _ if QosConfig::is_key(&key) => {
                QosConfig::default()
                    .set(&key, v)
                    .map_err(|e| invalid(format!("{verb}: {e}")))?;
                s.qos.push((key.clone(), v.clone()));
            }
            _ if k.starts_with("external_ids:") || k.starts_with("external-ids:") => {
                let o = &k["external_ids:".len()..];
                if o.is_empty() {
                    return Err(invalid(format!(
                        "{verb}: {k}: an external_ids key must not be empty"
                    )));
                }
                if s.external_ids.insert(o.to_string(), v.clone()).is_some() {
                    return Err(invalid(format!("{verb}: external_ids:{o} given twice")));
                }
            }
            _ if k.starts_with("options:") => {
                let o = &k["options:".len()..];
                if s.options.insert(o.to_string(), v.clone()).is_some() {
                    return Err(invalid(format!("{verb}: options:{o} given twice")));
                }
            }
            _ => {
                return Err(invalid(format!(
                    "{verb}: unknown setting \"{k}\" (expected {})",
                    if allow_create {
                        "type, tag, trunks, vlan_mode, ofport_request, peer, split_horizon, ingress_policing_rate, ingress_policing_burst, ingress_policing_kpkts_rate, ingress_policing_kpkts_burst, egress_rate, egress_burst, options:KEY or external_ids:KEY"
                    } else {
                        "tag, trunks, vlan_mode, peer, split_horizon, ingress_policing_rate, ingress_policing_burst, ingress_policing_kpkts_rate, ingress_policing_kpkts_burst, egress_rate, egress_burst, options:KEY or external_ids:KEY"
                    }
                )))
            }
        }
    }
    Ok(s)
}

/// `cur` with the policing settings of `s` applied (validated when
/// parsed).
fn qos_with(cur: QosConfig, s: &PortSettings, verb: &str) -> Result<QosConfig> {
    let mut q = cur;
    for (k, v) in &s.qos {
        q.set(k, v).map_err(|e| invalid(format!("{verb}: {e}")))?;
    }
    Ok(q)
}

pub(super) fn vlan_from(
    mode: Option<VlanMode>,
    tag: Option<Vid>,
    trunks: Vec<Vid>,
    who: &str,
) -> Result<VlanConfig> {
    VlanConfig::new(mode, tag, trunks).map_err(|e| invalid(format!("{who}: {e}")))
}

pub(super) fn port_info(p: &PortState) -> PortInfo {
    PortInfo {
        name: p.name.clone(),
        ofport: p.ofport.0,
        kind: p.kind.to_string(),
        tag: p.vlan.tag.map(|v| v.0),
        trunks: p.vlan.trunks.iter().map(|v| v.0).collect(),
        vlan_mode: p.vlan.mode.to_string(),
        peer: p.peer.clone(),
        options: p
            .tunnel
            .as_ref()
            .map(TunnelConfig::options)
            .unwrap_or_default(),
        split_horizon: p.split_horizon,
        qos: p.qos.settings().map(|(k, v)| (k.to_string(), v)).collect(),
        external_ids: p.external_ids.clone(),
        up: p.shared.is_up(),
        down_reason: p.shared.down_reason(),
        too_big: p.shared.last_too_big().map(|len| too_big_note(p, len)),
    }
}

/// What `show` says about a port that refused frames as too big: the last
/// one's length and, for a tunnel, the underlay's MTU, the overhead and by
/// how much the frame is over.
fn too_big_note(p: &PortState, len: usize) -> String {
    let Some(t) = &p.tunnel else {
        return format!("last refused frame {len} bytes (over the netdev's MTU)");
    };
    let oh = t.overhead();
    let kind = t.kind.label();
    let Some(remote) = t.remote_ip else {
        return format!(
            "last refused frame {len} bytes; {kind} adds {oh} bytes (remote_ip=flow: the limit depends on the destination)"
        );
    };
    match crate::port::tunnel::path_mtu(remote, t.local_ip) {
        // Frames up to MTU - overhead + 14 (the inner Ethernet header is
        // part of the overhead) fit.
        Some(mtu) => {
            let fit = (mtu as usize + 14).saturating_sub(oh);
            format!(
                "last refused frame {len} bytes, {} over: the underlay MTU toward {remote} is {mtu} and {kind} adds {oh} bytes, so frames up to {fit} bytes fit (inner MTU {})",
                len.saturating_sub(fit),
                fit.saturating_sub(14)
            )
        }
        None => format!(
            "last refused frame {len} bytes; {kind} adds {oh} bytes (no route toward {remote} now)"
        ),
    }
}

impl Switch {
    pub(super) fn add_port(
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
            None => {
                let start = b.next_ofport.clamp(1, PortNo::MAX.0);
                (start..=PortNo::MAX.0)
                    .chain(1..start)
                    .map(PortNo)
                    .find(|p| !b.ports.contains_key(p))
                    .ok_or_else(|| invalid(format!("{verb}: no free port number")))?
            }
        };
        let kind = match s.kind {
            Some(k) => k,
            None if s.peer.is_some() => PortKind::Patch,
            None if self.netdevs.exists(name) => PortKind::System,
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
        let tunnel = tunnel_from(kind, &s.options, &verb)?;
        let split_horizon = s.split_horizon.unwrap_or(kind.is_tunnel());
        let qos = qos_with(QosConfig::default(), &s, &verb)?;
        let mut down = None;
        let io = match kind {
            PortKind::Tap | PortKind::Internal => {
                if self.netdevs.exists(name) {
                    return Err(reject(
                        ErrorKind::Exists,
                        format!("{verb}: a network device named {name} already exists (omit type= to attach it as a system port)"),
                    ));
                }
                Some(
                    self.netdevs.create_tap(name).map_err(|e| {
                        reject(ErrorKind::System, format!("{verb}: creating tap: {e}"))
                    })?,
                )
            }
            PortKind::System if self.restoring && !self.netdevs.exists(name) => None,
            PortKind::System => {
                if !self.netdevs.exists(name) {
                    return Err(reject(
                        ErrorKind::NotFound,
                        format!("{verb}: no network device named {name} to attach (use type=tap to create one)"),
                    ));
                }
                Some(
                    self.netdevs.open_system(name).map_err(|e| {
                        reject(ErrorKind::System, format!("{verb}: attaching: {e}"))
                    })?,
                )
            }
            PortKind::Patch => None,
            PortKind::Vxlan | PortKind::Geneve | PortKind::Gre => {
                let Some(t) = &tunnel else {
                    return Err(reject(ErrorKind::Internal, "tunnel port without options"));
                };
                let bid = self.bridge_mut(bridge)?.id;
                match open_tunnel(name, t, bid, ofport) {
                    Ok(io) => Some(io),
                    // Restoring: the address may come later; retried by
                    // `reattach`.
                    Err(e) if self.restoring => {
                        down = Some(format!("{e}; retried every second"));
                        None
                    }
                    Err(e) => return Err(reject(ErrorKind::System, format!("{verb}: {e}"))),
                }
            }
        };
        if kind == PortKind::System && io.is_none() {
            down = Some(format!(
                "netdev {name} not found; it is attached when it appears"
            ));
        }
        let mac = if io.is_some() && !kind.is_tunnel() {
            self.netdevs.mac(name).unwrap_or_default()
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
        if s.ofport.is_none() && ofport != PortNo::LOCAL {
            b.next_ofport = ofport.0 % PortNo::MAX.0 + 1;
        }
        b.ports.insert(
            ofport,
            PortState {
                name: name.to_string(),
                ofport,
                kind,
                vlan: vlan.clone(),
                vlan_mode_set,
                peer: s.peer.clone(),
                tunnel,
                split_horizon,
                qos,
                external_ids: s
                    .external_ids
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
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
            split_horizon,
            policers: qos.policers(),
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
    pub(super) fn locate(&self, port: &str) -> Option<(String, PortNo)> {
        let b = self.owner.get(port)?;
        let no = self.bridges.get(b)?.port_no(port)?;
        Some((b.clone(), no))
    }

    /// Tells the worker where patch port `name` leads (if both ends exist
    /// and name each other).
    pub(super) fn link_patch(&self, name: &str) {
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

    pub(super) fn del_port(
        &mut self,
        bridge: Option<&str>,
        name: &str,
        if_exists: bool,
    ) -> Result<Reply> {
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

    pub(super) fn set_port(&mut self, name: &str, settings: &[(String, String)]) -> Result<Reply> {
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
        let qos = qos_with(p.qos, &s, &verb)?;
        let qos_changed = qos != p.qos;
        if s.peer.is_some() && p.kind != PortKind::Patch {
            return Err(invalid(format!("{verb}: peer= is only for patch ports")));
        }
        let id = bs.id;
        // New tunnel options: the port's current ones with these set (an
        // empty value removes one), validated and opened before anything
        // changes; the datapath swaps the port's I/O.
        let tunnel = match (&p.tunnel, s.options.is_empty()) {
            (_, true) => None,
            (None, false) => {
                return Err(invalid(format!(
                    "{verb}: options are only for tunnel ports (type=vxlan, geneve or gre)"
                )))
            }
            (Some(old), false) => {
                let mut o = old.options();
                for (k, v) in &s.options {
                    if v.is_empty() {
                        o.remove(k);
                    } else {
                        o.insert(k.clone(), v.clone());
                    }
                }
                let new = TunnelConfig::parse(old.kind, &o)
                    .map_err(|e| invalid(format!("{verb}: {e}")))?;
                if new == *old {
                    None
                } else {
                    let io = open_tunnel(name, &new, id, no)
                        .map_err(|e| reject(ErrorKind::System, format!("{verb}: {e}")))?;
                    Some((new, io))
                }
            }
        };
        let bs = self.bridge_mut(&b)?;
        let Some(p) = bs.ports.get_mut(&no) else {
            return Err(reject(ErrorKind::Internal, "port vanished"));
        };
        p.vlan = vlan.clone();
        p.vlan_mode_set = mode.is_some();
        p.qos = qos;
        let new_io = tunnel.map(|(cfg, io)| {
            p.tunnel = Some(cfg);
            io
        });
        for (k, v) in &s.external_ids {
            if v.is_empty() {
                p.external_ids.remove(k);
            } else {
                p.external_ids.insert(k.clone(), v.clone());
            }
        }
        let horizon = s.split_horizon.filter(|&on| on != p.split_horizon);
        if let Some(on) = horizon {
            p.split_horizon = on;
        }
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
        if let Some(on) = horizon {
            self.worker.send(Command::SetSplitHorizon {
                bridge: id,
                ofport: no,
                on,
            });
        }
        if qos_changed {
            self.worker.send(Command::SetPolicers {
                bridge: id,
                ofport: no,
                policers: qos.policers(),
            });
        }
        if let Some(io) = new_io {
            self.worker.send(Command::AttachIo {
                bridge: id,
                ofport: no,
                io: Arc::new(io),
            });
        }
        if s.peer.is_some() {
            self.link_patch(name);
            for n in old_peer.iter().chain(s.peer.iter()) {
                self.link_patch(n);
            }
        }
        Ok(Self::done("", 1))
    }

    pub(super) fn dump_ports(&self, bridge: &str, port: Option<&str>) -> Result<Reply> {
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

    /// Re-attaches system ports whose netdev was missing or vanished and
    /// exists again.
    pub fn reattach(&mut self) {
        for b in self.bridges.values() {
            for p in b.ports.values() {
                if let (Some(t), false) = (&p.tunnel, p.shared.is_up()) {
                    match open_tunnel(&p.name, t, b.id, p.ofport) {
                        Ok(io) => {
                            p.shared.set_up();
                            self.worker.send(Command::AttachIo {
                                bridge: b.id,
                                ofport: p.ofport,
                                io: Arc::new(io),
                            });
                        }
                        Err(e) => log::debug!("port {}: not bound yet: {e}", p.name),
                    }
                    continue;
                }
                if p.kind != PortKind::System || p.shared.is_up() || !self.netdevs.exists(&p.name) {
                    continue;
                }
                match self.netdevs.open_system(&p.name) {
                    Ok(io) => {
                        p.shared.set_up();
                        self.worker.send(Command::AttachIo {
                            bridge: b.id,
                            ofport: p.ofport,
                            io: Arc::new(io),
                        });
                    }
                    Err(e) => log::debug!("port {}: not attached yet: {e}", p.name),
                }
            }
        }
    }
}
