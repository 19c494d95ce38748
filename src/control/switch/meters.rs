//! Meter requests: `rvsctl add-meter|mod-meter|del-meters|dump-meters|
//! meter-stats` and OpenFlow METER_MOD and meter multipart, over each
//! bridge's meters (kept with its flows, [`BridgeFlows`]).
//!
//! # Design
//! A meter change publishes the bridge's new meter set at once and is
//! journaled as a configuration record (meters are part of the non-flow
//! configuration, `[[bridge.meter]]`); deleting a meter deletes the
//! flows that use it, journaled as flow removals.
//!
//! # Thread-safety
//! Part of [`Switch`], behind its mutex.

use super::*;
use crate::control::flows::MeterChangeError;
use crate::openflow::meter::{MeterFeatures, MeterMod, MeterModCommand, MeterStats};
use flowtable::meter::{flags, MeterSpec, MAX_BANDS, OFPM_ALL};

/// What rvs's meters support (METER_FEATURES).
pub const METER_FEATURES: MeterFeatures = MeterFeatures {
    max_meter: crate::qos::meter::MAX_METERS,
    band_types: 1 << crate::openflow::meter::BAND_DROP
        | 1 << crate::openflow::meter::BAND_DSCP_REMARK,
    capabilities: flags::ALL as u32,
    max_bands: MAX_BANDS as u8,
    max_color: 0,
};

fn meter_reject(e: MeterChangeError, verb: &str) -> Reject {
    let kind = match e {
        MeterChangeError::Exists(_) => ErrorKind::Exists,
        MeterChangeError::Unknown(_) => ErrorKind::NotFound,
        _ => ErrorKind::Invalid,
    };
    reject(kind, format!("{verb}: {e}"))
}

/// The meter id a `del-meters`/`dump-meters` filter names: `meter=N`,
/// `N` or `all`; empty: all.
pub(super) fn meter_filter(verb: &str, filter: &str) -> Result<u32> {
    let f = filter.trim();
    if f.is_empty() {
        return Ok(OFPM_ALL);
    }
    let v = f.strip_prefix("meter=").unwrap_or(f);
    flowtable::meter::parse_meter_id(v).map_err(|e| invalid(format!("{verb} {filter}: {e}")))
}

impl Switch {
    /// `dump-meters` / `meter-stats`: configuration and statistics.
    pub(super) fn dump_meters(&self, bridge: &str, filter: &str) -> Result<Reply> {
        let id = meter_filter("dump-meters", filter)?;
        self.bridge(bridge)?;
        let configs = self.meter_configs(bridge, id).unwrap_or_default();
        let stats = self.meter_stats(bridge, id).unwrap_or_default();
        if id != OFPM_ALL && configs.is_empty() {
            return Err(reject(
                ErrorKind::NotFound,
                format!("bridge {bridge} has no meter {id}"),
            ));
        }
        let meters = configs
            .iter()
            .zip(stats.iter())
            .map(|(c, s)| rvs_ctl::proto::MeterInfo {
                id: c.id,
                meter: c.to_string(),
                flow_count: s.flow_count,
                packet_in_count: s.packet_in_count,
                byte_in_count: s.byte_in_count,
                duration_ms: u64::from(s.duration_sec) * 1000
                    + u64::from(s.duration_nsec) / 1_000_000,
                bands: s
                    .bands
                    .iter()
                    .map(|&(packets, bytes)| rvs_ctl::proto::BandCount { packets, bytes })
                    .collect(),
            })
            .collect();
        Ok(Reply::Meters { meters })
    }

    /// Adds (or with `modify`, replaces) a meter of `bridge`.
    pub fn set_meter(&mut self, bridge: &str, spec: MeterSpec, modify: bool) -> Result<()> {
        let verb = if modify { "mod-meter" } else { "add-meter" };
        self.bridge_mut(bridge)?
            .flows
            .set_meter(spec, modify)
            .map_err(|e| meter_reject(e, verb))
    }

    /// Deletes meter `id` of `bridge` (all with OFPM_ALL) and the flows
    /// using it; returns how many meters went.
    pub fn del_meters(&mut self, bridge: &str, id: u32) -> Result<usize> {
        let n = self.bridge_mut(bridge)?.flows.del_meters(id);
        self.commit_flows(bridge);
        Ok(n)
    }

    /// Configurations of meter `id` (all with OFPM_ALL) of `bridge`, in
    /// id order; `None` when the bridge or the meter does not exist.
    pub fn meter_configs(&self, bridge: &str, id: u32) -> Option<Vec<MeterSpec>> {
        let b = self.bridges.get(bridge)?;
        let set = b.flows.meters();
        if id == OFPM_ALL {
            return Some(set.sorted().iter().map(|m| m.spec.clone()).collect());
        }
        set.get(id).map(|m| vec![m.spec.clone()])
    }

    /// Statistics of meter `id` (all with OFPM_ALL) of `bridge`, in id
    /// order; `None` when the bridge or the meter does not exist.
    pub fn meter_stats(&self, bridge: &str, id: u32) -> Option<Vec<MeterStats>> {
        let b = self.bridges.get(bridge)?;
        let set = b.flows.meters();
        let meters: Vec<_> = if id == OFPM_ALL {
            set.sorted().into_iter().cloned().collect()
        } else {
            vec![set.get(id)?.clone()]
        };
        let flows = b.flows.meter_flow_counts();
        Some(
            meters
                .iter()
                .map(|m| {
                    let c = m.counts();
                    let age = m.created.elapsed();
                    MeterStats {
                        meter_id: m.spec.id,
                        flow_count: flows.get(&m.spec.id).copied().unwrap_or(0),
                        packet_in_count: c.in_packets,
                        byte_in_count: c.in_bytes,
                        duration_sec: u32::try_from(age.as_secs()).unwrap_or(u32::MAX),
                        duration_nsec: age.subsec_nanos(),
                        bands: c.bands,
                    }
                })
                .collect(),
        )
    }

    /// Applies an OpenFlow METER_MOD to `bridge`, journaled.
    pub fn of_meter_mod(
        &mut self,
        bridge: &str,
        mm: &MeterMod,
    ) -> std::result::Result<(), crate::openflow::error::OfpError> {
        use crate::openflow::error::{ErrorType, OfpError};
        let mmf = |c: u16| OfpError::new(ErrorType::MeterModFailed, c);
        let Some(b) = self.bridges.get_mut(bridge) else {
            return Err(mmf(flowtable::meter::code::UNKNOWN));
        };
        match mm.command {
            MeterModCommand::Add | MeterModCommand::Modify => {
                let modify = mm.command == MeterModCommand::Modify;
                b.flows
                    .set_meter(mm.meter.clone(), modify)
                    .map_err(|e| mmf(e.code()))?;
            }
            MeterModCommand::Delete => {
                b.flows.del_meters(mm.meter.id);
                self.commit_flows(bridge);
            }
        }
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        self.changed.notify_one();
        if self.journal.is_some() {
            self.records.push(Pending::Other(Record::Config {
                cfg: Box::new(self.export_config(false)),
            }));
        }
        Ok(())
    }
}
