//! Bridge state: VLAN port configuration, MAC learning and `NORMAL`.
//!
//! # What?
//! A [`Bridge`] is the L2 state of one bridge that the `NORMAL` action
//! needs: each port's VLAN configuration ([`VlanConfig`]) and link state,
//! the MAC learning table ([`MacTable`]), and the bridge knobs
//! (`mac-aging-time`, `mac-table-size`, `forward-bpdu`). Datapath workers
//! call [`Bridge::normal`] for each packet whose actions say `NORMAL`
//! (under the bridge's mutex, which they share), then do the VLAN push/pop
//! and the transmission themselves; the primary worker calls
//! [`Bridge::expire`] about once a second. The control plane reaches the
//! table only through that worker (`fdb-show`, `fdb-flush`, port changes).
//!
//! The semantics are Open vSwitch's (`ofproto/ofproto-dpif-xlate.c`
//! `xlate_normal` and `lib/mac-learning.c`); each rule cites the OVS function
//! it follows. See [`vlan`], [`mac_learning`] and [`normal`].
//!
//! # Design
//! Pure logic: no I/O, no clocks (the caller passes `now_ms`, a monotonic
//! millisecond clock), no locks, no `unsafe`. Ports are kept in a vector
//! sorted by port number: lookups are binary searches and floods visit
//! ports in a deterministic order. As in OVS (`bundle_set`,
//! `bundle_destroy`), changing a port's VLAN configuration or removing the
//! port forgets the MACs learned on it.
//!
//! Example (also the unit test `doc_example`):
//! ```text
//! let mut br = Bridge::new();
//! br.add_port(PortNo(1), VlanConfig::access(Vid(10))?)?;
//! br.add_port(PortNo(2), VlanConfig::trunk(vec![Vid(10), Vid(20)])?)?;
//! let mut out = NormalOutcome::default();
//! br.normal(&key, now_ms, &mut out);   // key.in_port = 1, untagged
//! // out.outputs == [NormalOutput { port: PortNo(2), vlan: EgressVlan::Tagged(Vid(10)) }]
//! ```
//!
//! # Invariants
//! - Every port in the MAC table is a port of the bridge.
//! - Every stored `VlanConfig` passed [`VlanConfig::validate`].
//!
//! # Thread-safety
//! Owned by one datapath worker; `&mut self` for everything that learns.
//!
//! # Limits
//! Port numbers are `1..=PortNo::MAX` or `PortNo::LOCAL`. See the modules
//! for what each part does not model.

pub mod mac_learning;
pub mod normal;
pub mod vlan;

// Re-exports for the datapath and control plane (unused until integrated).
#[allow(unused_imports)]
pub use mac_learning::{FdbEntry, Learn, MacTable, MacTableError, MacTableStats};
#[allow(unused_imports)]
pub use normal::{
    DstLookup, Exclusion, NormalDrop, NormalOutcome, NormalOutput, NormalTrace, NormalTracer,
    TraceEvent,
};
#[allow(unused_imports)]
pub use vlan::{EgressVlan, PortVlan, VlanConfig, VlanError, VlanMode};

use flowtable::{PortNo, Vid};

/// Errors from configuring a [`Bridge`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgeError {
    /// Invalid VLAN settings.
    #[error(transparent)]
    Vlan(#[from] VlanError),
    /// Invalid MAC table settings.
    #[error(transparent)]
    MacTable(#[from] MacTableError),
    /// The port number is already in use on this bridge.
    #[error("port {0} already exists")]
    PortExists(PortNo),
    /// The bridge has no such port.
    #[error("no port {0}")]
    NoSuchPort(PortNo),
    /// Not a number a bridge port can have.
    #[error("port number {0} is reserved")]
    InvalidPortNo(PortNo),
}

/// One port of a bridge, as NORMAL sees it.
#[derive(Debug, Clone)]
struct BridgePort {
    /// OpenFlow port number.
    port: PortNo,
    /// Configured VLAN settings (as given, normalized).
    config: VlanConfig,
    /// Compiled VLAN rules.
    vlan: PortVlan,
    /// Link up: floods skip ports that are down.
    up: bool,
    /// Member of the bridge's split-horizon group (tunnel ports): NORMAL
    /// never forwards a frame from one member to another.
    split_horizon: bool,
}

/// The L2 state of one bridge. See the module docs.
#[derive(Debug, Clone)]
pub struct Bridge {
    /// Ports, sorted by port number.
    ports: Vec<BridgePort>,
    /// Learned MACs.
    mac: MacTable,
    /// Forward reserved multicast (OVS `other_config:forward-bpdu`).
    forward_bpdu: bool,
}

impl Default for Bridge {
    fn default() -> Self {
        Bridge::new()
    }
}

impl Bridge {
    /// A bridge with no ports and OVS's defaults (8192 MACs, 300 s aging,
    /// reserved multicast not forwarded).
    pub fn new() -> Bridge {
        Bridge::with_mac_table(MacTable::new())
    }

    /// A bridge using `mac` (for a seeded table in tests, or preset knobs).
    pub fn with_mac_table(mac: MacTable) -> Bridge {
        Bridge {
            ports: Vec::new(),
            mac,
            forward_bpdu: false,
        }
    }

    /// Index of `port` in `ports`.
    #[inline]
    fn port_index(&self, port: PortNo) -> Option<usize> {
        self.ports.binary_search_by_key(&port, |p| p.port).ok()
    }

    /// Adds a port (link up) with the given VLAN settings.
    pub fn add_port(&mut self, port: PortNo, config: VlanConfig) -> Result<(), BridgeError> {
        if port.0 == 0 || (port > PortNo::MAX && port != PortNo::LOCAL) {
            return Err(BridgeError::InvalidPortNo(port));
        }
        let vlan = PortVlan::new(&config)?;
        match self.ports.binary_search_by_key(&port, |p| p.port) {
            Ok(_) => Err(BridgeError::PortExists(port)),
            Err(at) => {
                self.ports.insert(
                    at,
                    BridgePort {
                        port,
                        config,
                        vlan,
                        up: true,
                        split_horizon: false,
                    },
                );
                Ok(())
            }
        }
    }

    /// Removes a port and the MACs learned on it (`bundle_destroy` →
    /// `bundle_flush_macs`). Returns its VLAN settings.
    pub fn remove_port(&mut self, port: PortNo) -> Result<VlanConfig, BridgeError> {
        let i = self.port_index(port).ok_or(BridgeError::NoSuchPort(port))?;
        self.mac.flush_port(port);
        Ok(self.ports.remove(i).config)
    }

    /// Changes a port's VLAN settings. If they differ, the MACs learned on
    /// the port are forgotten (`bundle_set` → `bundle_flush_macs`).
    pub fn set_port_vlan(&mut self, port: PortNo, config: VlanConfig) -> Result<(), BridgeError> {
        let i = self.port_index(port).ok_or(BridgeError::NoSuchPort(port))?;
        let vlan = PortVlan::new(&config)?;
        let p = &mut self.ports[i];
        if p.vlan != vlan {
            p.vlan = vlan;
            self.mac.flush_port(port);
        }
        p.config = config;
        Ok(())
    }

    /// Sets a port's link state; floods skip ports that are down.
    pub fn set_port_up(&mut self, port: PortNo, up: bool) -> Result<(), BridgeError> {
        let i = self.port_index(port).ok_or(BridgeError::NoSuchPort(port))?;
        self.ports[i].up = up;
        Ok(())
    }

    /// Puts a port in (or takes it out of) the split-horizon group: NORMAL
    /// does not forward between two members (tunnel ports, so that a full
    /// mesh of tunnels does not loop floods).
    pub fn set_port_split_horizon(&mut self, port: PortNo, on: bool) -> Result<(), BridgeError> {
        let i = self.port_index(port).ok_or(BridgeError::NoSuchPort(port))?;
        self.ports[i].split_horizon = on;
        Ok(())
    }

    /// A port's VLAN settings.
    pub fn port_vlan(&self, port: PortNo) -> Option<&VlanConfig> {
        self.port_index(port).map(|i| &self.ports[i].config)
    }

    /// A port's link state.
    pub fn port_is_up(&self, port: PortNo) -> Option<bool> {
        self.port_index(port).map(|i| self.ports[i].up)
    }

    /// The ports, in ascending order: (number, VLAN settings, link up).
    pub fn ports(&self) -> impl Iterator<Item = (PortNo, &VlanConfig, bool)> {
        self.ports.iter().map(|p| (p.port, &p.config, p.up))
    }

    /// Number of ports.
    pub fn n_ports(&self) -> usize {
        self.ports.len()
    }

    /// The MAC table (read-only; changes go through the bridge so that it
    /// only ever names existing ports).
    pub fn mac_table(&self) -> &MacTable {
        &self.mac
    }

    /// Sets `mac-aging-time` (15–3600 s).
    pub fn set_mac_aging_time(&mut self, s: u32) -> Result<(), BridgeError> {
        Ok(self.mac.set_aging_time_s(s)?)
    }

    /// Sets `mac-table-size` (10–1,000,000 entries); shrinking drops the
    /// least recently refreshed entries.
    pub fn set_mac_table_size(&mut self, n: u32) -> Result<(), BridgeError> {
        Ok(self.mac.set_max_entries(n)?)
    }

    /// Whether reserved multicast (`01:80:c2:00:00:0x`…) is forwarded.
    pub fn forward_bpdu(&self) -> bool {
        self.forward_bpdu
    }

    /// Sets OVS's `other_config:forward-bpdu` (default false).
    pub fn set_forward_bpdu(&mut self, on: bool) {
        self.forward_bpdu = on;
    }

    /// Ages out idle MACs; call about once a second. Returns how many went.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        self.mac.expire(now_ms)
    }

    /// Forgets every learned MAC (`fdb-flush`). Returns how many.
    pub fn fdb_flush(&mut self) -> usize {
        self.mac.flush()
    }

    /// Forgets the MACs learned on `port`.
    pub fn fdb_flush_port(&mut self, port: PortNo) -> usize {
        self.mac.flush_port(port)
    }

    /// Forgets the MACs learned in `vlan`.
    pub fn fdb_flush_vlan(&mut self, vlan: Vid) -> usize {
        self.mac.flush_vlan(vlan)
    }

    /// The MAC table for `fdb-show`, oldest first.
    pub fn fdb_show(&self, now_ms: u64) -> Vec<FdbEntry> {
        self.mac.snapshot(now_ms)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use flowtable::key::VLAN_PRESENT;
    use flowtable::{FlowKey, Mac};

    fn key(in_port: u32, src: u8, dst: u8, vid: Option<u16>) -> FlowKey {
        FlowKey {
            in_port,
            dl_src: [2, 0, 0, 0, 0, src],
            dl_dst: [2, 0, 0, 0, 0, dst],
            vlan_tci: vid.map_or(0, |v| VLAN_PRESENT | v),
            ..FlowKey::ZERO
        }
    }

    /// The module doc's example.
    #[test]
    fn doc_example() {
        let mut br = Bridge::new();
        br.add_port(PortNo(1), VlanConfig::access(Vid(10)).unwrap())
            .unwrap();
        br.add_port(
            PortNo(2),
            VlanConfig::trunk(vec![Vid(10), Vid(20)]).unwrap(),
        )
        .unwrap();
        let mut out = NormalOutcome::default();
        br.normal(&key(1, 0xa, 0xb, None), 0, &mut out);
        assert_eq!(
            out.outputs.as_slice(),
            &[NormalOutput {
                port: PortNo(2),
                vlan: EgressVlan::Tagged(Vid(10)),
                pop_inner: false,
            }]
        );
    }

    #[test]
    fn port_management_errors() {
        let mut br = Bridge::new();
        br.add_port(PortNo(1), VlanConfig::default()).unwrap();
        assert_eq!(
            br.add_port(PortNo(1), VlanConfig::default()),
            Err(BridgeError::PortExists(PortNo(1)))
        );
        for bad in [PortNo(0), PortNo::NORMAL, PortNo(0xff01)] {
            assert_eq!(
                br.add_port(bad, VlanConfig::default()),
                Err(BridgeError::InvalidPortNo(bad))
            );
        }
        br.add_port(PortNo::LOCAL, VlanConfig::default()).unwrap();
        let bad = VlanConfig {
            mode: VlanMode::Access,
            tag: None,
            trunks: vec![],
        };
        assert_eq!(
            br.add_port(PortNo(2), bad.clone()),
            Err(BridgeError::Vlan(VlanError::MissingTag(VlanMode::Access)))
        );
        assert!(br.set_port_vlan(PortNo(1), bad).is_err());
        assert_eq!(
            br.remove_port(PortNo(7)),
            Err(BridgeError::NoSuchPort(PortNo(7)))
        );
        assert_eq!(
            br.set_mac_aging_time(5).unwrap_err().to_string(),
            "mac-aging-time 5 s is out of range (15-3600)"
        );
        assert!(br.set_mac_table_size(5).is_err());
        let ports: Vec<_> = br.ports().map(|(p, _, up)| (p, up)).collect();
        assert_eq!(ports, vec![(PortNo(1), true), (PortNo::LOCAL, true)]);
    }

    /// bundle_destroy / bundle_set → bundle_flush_macs: removing a port or
    /// changing its VLAN settings forgets its MACs; other ports keep theirs.
    #[test]
    fn flush_port_on_remove_and_vlan_change() {
        let mut br = Bridge::with_mac_table(MacTable::with_seed(3));
        for p in 1..=3 {
            br.add_port(PortNo(p), VlanConfig::access(Vid(10)).unwrap())
                .unwrap();
        }
        let mut out = NormalOutcome::default();
        for (p, src) in [(1, 0xa), (2, 0xb), (2, 0xc), (3, 0xd)] {
            br.normal(&key(p, src, 0xff, None), 0, &mut out);
        }
        assert_eq!(br.mac_table().len(), 4);
        // Same settings again: nothing forgotten.
        br.set_port_vlan(PortNo(2), VlanConfig::access(Vid(10)).unwrap())
            .unwrap();
        assert_eq!(br.mac_table().port_count(PortNo(2)), 2);
        // New settings: port 2's MACs go.
        br.set_port_vlan(PortNo(2), VlanConfig::access(Vid(20)).unwrap())
            .unwrap();
        assert_eq!(br.mac_table().port_count(PortNo(2)), 0);
        assert_eq!(br.mac_table().len(), 2);
        assert_eq!(br.port_vlan(PortNo(2)).unwrap().tag, Some(Vid(20)));
        // Removing port 3 forgets 0xd; traffic to it floods again.
        assert_eq!(
            br.remove_port(PortNo(3)).unwrap(),
            VlanConfig::access(Vid(10)).unwrap()
        );
        let fdb = br.fdb_show(0);
        assert_eq!(fdb.len(), 1);
        assert_eq!(fdb[0].mac, Mac([2, 0, 0, 0, 0, 0xa]));
        assert_eq!(fdb[0].port, PortNo(1));
        assert_eq!(br.fdb_flush_port(PortNo(1)), 1);
        assert!(br.mac_table().is_empty());
    }

    #[test]
    fn fdb_flush_and_flush_vlan() {
        let mut br = Bridge::new();
        br.add_port(PortNo(1), VlanConfig::default()).unwrap();
        br.add_port(PortNo(2), VlanConfig::default()).unwrap();
        let mut out = NormalOutcome::default();
        br.normal(&key(1, 0xa, 0xff, Some(10)), 0, &mut out);
        br.normal(&key(1, 0xb, 0xff, Some(20)), 0, &mut out);
        br.normal(&key(2, 0xc, 0xff, None), 0, &mut out);
        let fdb = br.fdb_show(2500);
        let vlans: Vec<_> = fdb.iter().map(|e| (e.vlan.0, e.age_s)).collect();
        assert_eq!(vlans, vec![(10, 2), (20, 2), (0, 2)]);
        assert_eq!(br.fdb_flush_vlan(Vid(20)), 1);
        assert_eq!(br.fdb_flush(), 2);
        assert!(br.fdb_show(2500).is_empty());
    }
}
