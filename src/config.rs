//! Declarative configuration: the TOML schema of DESIGN §3.
//!
//! # What?
//! [`Config`] is the whole desired state of a switch: bridges with their
//! knobs, ports with VLAN settings, and flows in OVS syntax. It is what
//! `--config FILE` seeds and what the embedded default (`config/default.toml`)
//! holds.
//!
//! # Invariants
//! Unknown keys are errors (`deny_unknown_fields`); TOML errors carry the
//! line and column. Semantic checks (VLAN ranges, duplicate names, flows
//! that don't parse) happen when the config is applied, with the same
//! messages the CLI gets.

use serde::{Deserialize, Serialize};

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// A whole switch configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// State file format version (written by rvsd into its state file;
    /// optional in config files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_version: Option<u32>,
    /// First journal file that applies on top of this state (written by
    /// rvsd into its state file; see `control::journal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<u64>,
    /// OVSDB endpoints rvsd serves, as `--ovsdb-remote` (`punix:PATH`,
    /// `ptcp:PORT[:IP]`); added to the command line's. A change (by
    /// `apply`) takes effect when rvsd restarts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ovsdb_remote: Vec<String>,
    /// Bridges, in order of creation.
    #[serde(default)]
    pub bridge: Vec<BridgeConfig>,
}

/// One bridge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// Bridge name (≤ 15 bytes; also its LOCAL netdev).
    pub name: String,
    /// MAC learning aging time, seconds (15–3600, default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_aging_time: Option<u32>,
    /// MAC learning table size, entries (10–1,000,000, default 8192).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_table_size: Option<u32>,
    /// OpenFlow controller targets (`ptcp:6653`, `tcp:127.0.0.1:6653`,
    /// `punix:/run/rvs/br0.mgmt`); empty: no controller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controller: Vec<String>,
    /// `standalone` (default: NORMAL forwarding while no controller is
    /// connected) or `secure` (only the flow table, always).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<String>,
    /// OpenFlow datapath id, 16 hex digits; default: derived from the
    /// bridge name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapath_id: Option<String>,
    /// Most flows the bridge holds (all tables), default 1,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_limit: Option<u64>,
    /// VLAN headers parsed into flow keys (OVS's `other_config:vlan-limit`):
    /// 0 = all rvs parses (two), default 1; further tags are payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_limit: Option<u32>,
    /// Ports other than LOCAL.
    #[serde(default)]
    pub port: Vec<PortConfig>,
    /// OpenFlow meters, created before the flows that use them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub meter: Vec<MeterConfig>,
    /// Flows; when absent, the bridge has `priority=0,actions=NORMAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Vec<FlowConfig>>,
}

/// One OpenFlow meter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterConfig {
    /// The meter in ovs-ofctl syntax:
    /// `meter=1,kbps,burst,bands=type=drop,rate=10000,burst_size=1000`.
    pub meter: String,
}

/// One port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Port and netdev name.
    pub name: String,
    /// `tap`, `system`, `internal`, `patch`, `vxlan`, `geneve` or `gre`;
    /// default: `system` if the netdev exists, else `tap`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Access VLAN (or native VLAN for native-* modes), 1–4094.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<u16>,
    /// VLANs a trunk carries; empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trunks: Vec<u16>,
    /// `access`, `trunk`, `native-tagged` or `native-untagged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_mode: Option<String>,
    /// Requested OpenFlow port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ofport: Option<u32>,
    /// Peer port of a patch port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// In NORMAL's split-horizon group: never forwards a frame from one
    /// member to another (default: true for tunnel ports, false for
    /// others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_horizon: Option<bool>,
    /// Ingress policing rate, kbit/s (1 kbit = 1000 bits); 0 = off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ingress_policing_rate: u32,
    /// Ingress policing burst, kbit; 0 = 8000.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ingress_policing_burst: u32,
    /// Ingress policing rate in thousands of packets per second; 0 = off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ingress_policing_kpkts_rate: u32,
    /// Ingress policing burst in thousands of packets; 0 = 16.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ingress_policing_kpkts_burst: u32,
    /// Egress policing rate, kbit/s (frames beyond it are dropped, not queued); 0 = off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub egress_rate: u32,
    /// Egress policing burst, kbit; 0 = 8000.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub egress_burst: u32,
    /// Tunnel options of a `vxlan`, `geneve` or `gre` port (`remote_ip`,
    /// `local_ip`, `key`,
    /// `dst_port`, …; values as strings, as OVS writes them):
    /// `options = { remote_ip = "192.0.2.2", key = "42" }`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub options: std::collections::BTreeMap<String, String>,
    /// `external_ids`: free-form keys for management clients (libvirt's
    /// `attached-mac`, `iface-id`, `vm-id`; OpenStack's); no effect on
    /// forwarding.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub external_ids: std::collections::BTreeMap<String, String>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl PortConfig {
    /// The policing settings (see [`crate::qos`]).
    pub fn qos(&self) -> crate::qos::QosConfig {
        crate::qos::QosConfig {
            ingress_policing_rate: self.ingress_policing_rate,
            ingress_policing_burst: self.ingress_policing_burst,
            ingress_policing_kpkts_rate: self.ingress_policing_kpkts_rate,
            ingress_policing_kpkts_burst: self.ingress_policing_kpkts_burst,
            egress_rate: self.egress_rate,
            egress_burst: self.egress_burst,
        }
    }
}

/// One flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    /// The flow in OVS syntax, e.g. `priority=100,dl_type=0x88cc,actions=drop`.
    pub flow: String,
}

/// A configuration file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    /// File name (or `<embedded default>`).
    pub origin: String,
    /// What is wrong, with line and column where known.
    pub message: String,
}

impl Config {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let message = match e.span() {
                Some(span) => {
                    let start = span.start.min(text.len());
                    let line = text[..start].matches('\n').count() + 1;
                    // Name the key when the error is in its value and the
                    // parser's message does not (e.g. wrong types).
                    let src = text.lines().nth(line - 1).unwrap_or("");
                    let key = src.split_once('=').map(|(k, _)| k.trim()).filter(|k| {
                        !k.is_empty()
                            && !k.starts_with('[')
                            && !k.starts_with('#')
                            && !e.message().contains(&format!("`{k}`"))
                    });
                    match key {
                        Some(k) => format!("line {line}: {k}: {}", e.message()),
                        None => format!("line {line}: {}", e.message()),
                    }
                }
                None => e.message().to_string(),
            };
            ConfigError {
                origin: origin.to_string(),
                message,
            }
        })
    }

    /// TOML text of this configuration.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// The embedded default.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Config::parse(DEFAULT_TOML, "<embedded default config/default.toml>")
    }
}

/// Why [`Config::write_pieces`] stopped.
#[derive(Debug)]
pub enum PiecesError<E> {
    /// The sink refused a piece.
    Sink(E),
    /// A part could not be serialized.
    Toml(toml::ser::Error),
}

impl Config {
    /// Writes [`Config::to_toml`] as a sequence of pieces: each bridge
    /// with at most its first flow (serialized whole, so its keys, ports
    /// and inline empty lists come out exactly as `to_toml` writes them),
    /// then each further flow as its own `[[bridge.flow]]` table, so that
    /// no more than one bridge's settings are serialized at once (the
    /// streamed `export`, the state snapshot).
    pub fn write_pieces<E>(
        &self,
        piece: &mut dyn FnMut(&str) -> Result<(), E>,
    ) -> Result<(), PiecesError<E>> {
        let sink = PiecesError::Sink;
        if self.bridge.is_empty() {
            return piece(&self.to_toml().map_err(PiecesError::Toml)?).map_err(sink);
        }
        for (i, b) in self.bridge.iter().enumerate() {
            let (first, rest) = match &b.flow {
                Some(f) if !f.is_empty() => (Some(f[..1].to_vec()), &f[1..]),
                other => (other.clone(), &[][..]),
            };
            let head = Config {
                format_version: if i == 0 { self.format_version } else { None },
                journal: if i == 0 { self.journal } else { None },
                ovsdb_remote: if i == 0 {
                    self.ovsdb_remote.clone()
                } else {
                    Vec::new()
                },
                bridge: vec![BridgeConfig {
                    name: b.name.clone(),
                    mac_aging_time: b.mac_aging_time,
                    mac_table_size: b.mac_table_size,
                    controller: b.controller.clone(),
                    fail_mode: b.fail_mode.clone(),
                    datapath_id: b.datapath_id.clone(),
                    flow_limit: b.flow_limit,
                    vlan_limit: b.vlan_limit,
                    port: b.port.clone(),
                    meter: b.meter.clone(),
                    flow: first,
                }],
            };
            if i > 0 {
                piece("\n").map_err(sink)?;
            }
            piece(&toml::to_string(&head).map_err(PiecesError::Toml)?).map_err(sink)?;
            for fl in rest {
                piece(&flow_table_toml(&fl.flow).map_err(PiecesError::Toml)?).map_err(sink)?;
            }
        }
        Ok(())
    }
}

/// One more `[[bridge.flow]]` table holding `flow`, as
/// [`Config::to_toml`] writes it after the bridge's previous table.
pub fn flow_table_toml(flow: &str) -> Result<String, toml::ser::Error> {
    #[derive(Serialize)]
    struct One<'a> {
        flow: &'a str,
    }
    Ok(format!(
        "\n[[bridge.flow]]\n{}",
        toml::to_string(&One { flow })?
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_parses() {
        let c = Config::embedded_default().expect("default config");
        assert!(!c.bridge.is_empty());
    }

    #[test]
    fn unknown_key_names_line() {
        let err = Config::parse("[[bridge]]\nname = \"br0\"\nmac_agin_time = 5\n", "x.toml")
            .expect_err("unknown key");
        let s = err.to_string();
        assert!(s.starts_with("x.toml: line 3:"), "{s}");
        assert!(s.contains("mac_agin_time"), "{s}");
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let err = Config::parse(
            "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p\"\ntag = \"ten\"\n",
            "x.toml",
        )
        .expect_err("wrong type");
        let s = err.to_string();
        assert!(s.starts_with("x.toml: line 5: tag: invalid type"), "{s}");
    }

    #[test]
    fn every_example_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
        let mut n = 0;
        for e in std::fs::read_dir(dir).expect("config dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&p).expect("read");
                Config::parse(&text, &p.display().to_string()).expect("example parses");
                n += 1;
            }
        }
        assert!(n >= 1);
    }

    fn pieces(cfg: &Config) -> String {
        let mut s = String::new();
        cfg.write_pieces(&mut |p| {
            s.push_str(p);
            Ok::<(), ()>(())
        })
        .unwrap();
        s
    }

    #[test]
    fn streamed_toml_is_to_toml() {
        let text = r#"
[[bridge]]
name = "a"
controller = ["ptcp:6653"]
fail_mode = "secure"
[[bridge.port]]
name = "p1"
trunks = [1, 2]
[[bridge.port]]
name = "p2"
tag = 5
[[bridge.flow]]
flow = "actions=drop"
[[bridge.flow]]
flow = "priority=5,actions=output:p1 # it's \"quoted\""

[[bridge]]
name = "b"
flow = []
[[bridge.port]]
name = "p3"

[[bridge]]
name = "c"
mac_aging_time = 20

[[bridge]]
name = "d"
[[bridge.flow]]
flow = "actions=NORMAL"

[[bridge]]
name = "e"
port = []
[[bridge.flow]]
flow = "actions=drop"
[[bridge.flow]]
flow = 'x"y\'
[[bridge.flow]]
flow = """it's "x" '''"""
"#;
        let mut cfg = Config::parse(text, "t").unwrap();
        assert_eq!(pieces(&cfg), cfg.to_toml().unwrap());
        cfg.format_version = Some(1);
        assert_eq!(pieces(&cfg), cfg.to_toml().unwrap());
        let empty = Config::parse("", "t").unwrap();
        assert_eq!(pieces(&empty), empty.to_toml().unwrap());
    }
}
