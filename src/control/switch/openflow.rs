//! The OpenFlow channel's view of the switch: bridges and ports as the
//! channel needs them, FLOW_MOD batches and bundles, statistics, PACKET_OUT.
//!
//! # Design
//! The channel calls these methods under the switch lock; they go through
//! the same flow tables ([`BridgeFlows`]) as `rvsctl`, and a batch is
//! published and journaled once.
//!
//! # Thread-safety
//! Part of [`Switch`], behind its mutex.

use super::*;

/// Applies one OpenFlow FLOW_MOD to `flows` (not published).
pub fn apply_flow_mod(
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
        // Open vSwitch's answer to a flow using a meter it lacks.
        FlowError::UnknownMeter(_) => OfpError::new(
            ErrorType::MeterModFailed,
            flowtable::meter::code::INVALID_METER,
        ),
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
            flows.check_actions(&fm.actions).map_err(flow_err)?;
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

/// Applies `fms` to `flows` all or none (not published): on the first
/// failure, at message `i`, everything before it is rolled back.
pub fn apply_flow_mods_atomic(
    flows: &mut BridgeFlows,
    fms: &[crate::openflow::msg::FlowMod],
    of10: bool,
    now: u64,
) -> std::result::Result<(), (usize, crate::openflow::error::OfpError)> {
    flows.begin();
    for (i, fm) in fms.iter().enumerate() {
        if let Err(e) = apply_flow_mod(flows, fm, of10, now) {
            flows.rollback();
            return Err((i, e));
        }
    }
    flows.commit();
    Ok(())
}

/// [`OfTableCounts`] of all 255 tables of `p` (the lookup counters are
/// shared by every version of the bridge's pipeline).
pub(super) fn table_counts(p: &Pipeline) -> Vec<OfTableCounts> {
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

/// A bridge as the OpenFlow channel sees it.
#[derive(Debug, Clone)]
pub struct OfBridge {
    /// Bridge name.
    pub name: String,
    /// Bridge id (as in PACKET_IN events).
    pub id: u32,
    /// Datapath id.
    pub dpid: u64,
    /// Controller targets to run (validated; failing ones left out).
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

impl Switch {
    /// Installs the sink of PACKET_INs for every bridge, present and
    /// future.
    pub fn set_packet_in_sink(&mut self, sink: PacketInSink) {
        for b in self.bridges.values() {
            b.of.set_sink(Some(sink.clone()));
        }
        self.packet_in_sink = Some(sink);
    }

    /// Records rvsd's control socket, which no `punix:` target may take.
    pub fn set_control_socket(&mut self, path: &std::path::Path) {
        self.punix.set_control_socket(path);
    }

    /// The sockets the `punix:` listeners hold (the channel registers
    /// them; targets check against them).
    pub fn punix_bound(&self) -> crate::control::punix::Bound {
        self.punix.bound()
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
                    .filter(|t| !b.failing.contains_key(*t))
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
        let r = apply_flow_mods_atomic(&mut b.flows, fms, of10, now);
        self.commit_flows(bridge);
        r
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

    /// Installs the sink of FLOW_REMOVED events.
    pub fn set_flow_removed_sink(&mut self, sink: FlowRemovedSink) {
        self.flow_removed = Some(sink);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn table_counts_report_the_datapath_lookups() {
        use flowtable::classifier::CounterPolicy;
        use flowtable::key::FlowKey;
        let mut p = Pipeline::new(2);
        let flow =
            syntax::parse_flow("table=1,priority=5,actions=drop", &|_: &str| None).expect("flow");
        let rule = crate::datapath::pipeline::new_entry(flow, 0, 2);
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
}
