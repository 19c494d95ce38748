//! The `NORMAL` action: Open vSwitch's L2 learning switch with VLANs.
//!
//! # What?
//! [`Bridge::normal`] takes a packet's [`FlowKey`] and fills a reusable
//! [`NormalOutcome`]: the ports to send it to, each with the [`EgressVlan`]
//! the frame must carry there, or why NORMAL outputs nothing. It follows
//! `xlate_normal` in `ofproto/ofproto-dpif-xlate.c`, step by step:
//! 1. the input port must be a port of the bridge (`lookup_input_bundle`);
//! 2. the outer VID must be allowed on it (`input_vid_is_valid`), and gives
//!    the bridge VLAN (`xvlan_input_translate`);
//! 3. frames to reserved multicast (`01:80:c2:00:00:0x` and the Cisco and
//!    Extreme protocol addresses of `eth_addr_is_reserved`) are dropped
//!    unless the bridge forwards BPDUs (`is_admissible`);
//! 4. the source MAC is learned in the bridge VLAN (`update_learning_table`);
//! 5. a destination learned in that VLAN gets the packet on that port, unless
//!    it is the input port; anything else is flooded (`xlate_normal_flood`) to
//!    every other port that carries the VLAN (`xbundle_includes_vlan`) and is
//!    up;
//! 6. each output port's tag comes from `xvlan_output_translate`.
//!
//! [`Bridge::trace_normal`] runs the same code without learning (as
//! `ofproto/trace`, which has no side effects) and records every decision in
//! a [`NormalTrace`] for `rvsctl trace`.
//!
//! # Design
//! The steps are one generic function over a [`NormalTracer`]; the packet
//! path instantiates it with `()`, whose methods are empty and inline away,
//! so tracing costs nothing there. Outputs go into a `SmallVec` with inline
//! room for [`INLINE_OUTPUTS`] ports inside a caller-owned outcome that
//! is cleared, not rebuilt, per packet: no allocation unless a flood exceeds
//! the inline room once (the spilled buffer is then kept).
//!
//! # Invariants
//! `outcome.outputs` is empty iff `outcome.drop_reason` is `Some`. Outputs
//! are in ascending port order and never include the input port. PCP of a
//! pushed or rewritten tag is the input tag's PCP (0 if untagged).
//!
//! # Thread-safety
//! `&mut Bridge`: the datapath workers serialise on a mutex around it
//! (`datapath::xlate::BridgeRt::normal`), held only for the decision.
//!
//! # Limits
//! Not modelled (OVS features rvs lacks): bonds, mirrors, multicast
//! snooping, dot1q-tunnel, flood-VLANs, STP/RSTP states, `NO_FLOOD` ports,
//! the gratuitous-ARP learning lock, static FDB entries. Partial VLAN headers
//! cannot be seen in a `FlowKey` and are left to key extraction.
//!
//! # Double-tagged frames and `vlan-limit`
//! NORMAL sees the VLAN tags that key extraction parsed, which the
//! bridge's `vlan-limit` bounds (OVS's `other_config:vlan-limit`,
//! default 1). With the default only the outer tag is in the key: a
//! double-tagged frame is a frame of the outer VLAN whose Ethertype is
//! the inner TPID, so it floods to access ports of that VLAN too, which
//! receive it with the outer tag removed and the inner one as payload.
//! With `vlan-limit` 2 (or 0, no limit) the inner tag is in the key as
//! well: access ports then carry only frames without a second tag
//! (`xbundle_includes_vlan`), a second tag arriving on an access port
//! (behind a priority tag: any other outer tag is refused there) is
//! dropped from the frame, and one leaving through an access port (to a
//! learned MAC) is removed ([`NormalOutput::pop_inner`]), as OVS does.
//! On an access port a frame with a nonzero outer VID is refused under
//! every limit (`input_vid_is_valid`), so a double-tagged frame never
//! enters another VLAN through one.

use std::fmt;

use flowtable::key::{VLAN_PCP_MASK, VLAN_PCP_SHIFT, VLAN_PRESENT, VLAN_VID_MASK};
use flowtable::{FlowKey, Mac, PortNo, Vid};
use smallvec::SmallVec;

use super::mac_learning::Learn;
use super::vlan::{EgressVlan, VlanMode};
use super::Bridge;

/// Outputs held without allocating.
pub const INLINE_OUTPUTS: usize = 8;

/// One output of NORMAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NormalOutput {
    /// Port to send the frame to.
    pub port: PortNo,
    /// Tag the frame must carry there.
    pub vlan: EgressVlan,
    /// Remove the frame's second tag before applying `vlan`: an access
    /// port keeps no VLAN header beyond its own, on the way in
    /// (`xvlan_input_translate`) and out (`xvlan_output_translate`).
    /// Only ever set when the key has a second tag, i.e. under a
    /// `vlan-limit` of 2 or none; with OVS's default of 1 the second tag
    /// is payload and stays.
    pub pop_inner: bool,
}

/// Why NORMAL sent a packet nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NormalDrop {
    /// The input port is not a port of this bridge.
    NoInputPort,
    /// The input port does not accept the frame's VLAN (access port and a
    /// tagged frame, or a VID not in the trunks).
    VlanNotAllowed,
    /// Destination is a reserved multicast address (`01:80:c2:00:00:0x`…).
    ReservedMulticast,
    /// The destination was learned on the input port.
    LearnedOnInputPort,
    /// The destination was learned on a port that is down.
    LearnedPortDown,
    /// The destination was learned on a port the bridge does not have
    /// (cannot happen while ports are removed through [`Bridge`]).
    LearnedPortUnknown,
    /// Flooding found no port that carries the VLAN, is up and is not the
    /// input port.
    NoFloodPorts,
    /// The destination was learned on a port in the input port's
    /// split-horizon group (tunnel to tunnel).
    SplitHorizon,
}

impl NormalDrop {
    /// Stable snake_case name, for counters and JSON (`"drop_reason"`).
    pub fn as_str(self) -> &'static str {
        match self {
            NormalDrop::NoInputPort => "no_input_port",
            NormalDrop::VlanNotAllowed => "vlan_not_allowed",
            NormalDrop::ReservedMulticast => "reserved_multicast",
            NormalDrop::LearnedOnInputPort => "learned_on_input_port",
            NormalDrop::LearnedPortDown => "learned_port_down",
            NormalDrop::LearnedPortUnknown => "learned_port_unknown",
            NormalDrop::NoFloodPorts => "no_flood_ports",
            NormalDrop::SplitHorizon => "split_horizon",
        }
    }
}

impl fmt::Display for NormalDrop {
    /// The sentence `ofproto/trace` would print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NormalDrop::NoInputPort => "no input bundle, dropping",
            NormalDrop::VlanNotAllowed => "disallowed VLAN VID for this input port, dropping",
            NormalDrop::ReservedMulticast => "packet has reserved destination MAC, dropping",
            NormalDrop::LearnedOnInputPort => "learned port is input port, dropping",
            NormalDrop::LearnedPortDown => "learned port is down, dropping",
            NormalDrop::LearnedPortUnknown => "learned port is unknown, dropping",
            NormalDrop::NoFloodPorts => "no port to flood to, dropping",
            NormalDrop::SplitHorizon => {
                "learned port is in the input port's split-horizon group, dropping"
            }
        })
    }
}

/// The decision for one packet. Reuse one per worker: [`Bridge::normal`]
/// clears it first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NormalOutcome {
    /// Where to send the frame, in ascending port order.
    pub outputs: SmallVec<[NormalOutput; INLINE_OUTPUTS]>,
    /// Why nothing was output; `Some` iff `outputs` is empty.
    pub drop_reason: Option<NormalDrop>,
    /// The bridge VLAN of the frame, once the input VLAN was accepted.
    pub vlan: Option<Vid>,
    /// What learning did with the source MAC.
    pub learn: Learn,
    /// True if the destination was not learned and the frame was flooded.
    pub flooded: bool,
}

impl NormalOutcome {
    /// Resets to "nothing decided", keeping the output buffer.
    #[inline]
    pub fn clear(&mut self) {
        self.outputs.clear();
        self.drop_reason = None;
        self.vlan = None;
        self.learn = Learn::Off;
        self.flooded = false;
    }
}

/// How the destination MAC was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DstLookup {
    /// Learned on this port in the frame's VLAN.
    Learned(PortNo),
    /// Not in the MAC table (for this VLAN): flood.
    Unknown,
    /// Multicast or broadcast destination: flood.
    Multicast,
}

/// Why a port got no copy of a flooded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exclusion {
    /// It is the input port.
    InputPort,
    /// It does not carry the frame's VLAN.
    VlanNotCarried,
    /// It is down.
    PortDown,
    /// It and the input port are both in the split-horizon group.
    SplitHorizon,
}

impl Exclusion {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Exclusion::InputPort => "input_port",
            Exclusion::VlanNotCarried => "vlan_not_carried",
            Exclusion::PortDown => "port_down",
            Exclusion::SplitHorizon => "split_horizon",
        }
    }
}

/// One step of NORMAL, as recorded by a [`NormalTracer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceEvent {
    /// The frame arrived on `port` with outer VID `vid` (`None`: untagged).
    Input {
        /// Input port.
        port: PortNo,
        /// Outer VID, `Some(Vid(0))` for a priority tag.
        vid: Option<Vid>,
        /// VLAN mode of the input port (absent if it is not a bridge port).
        mode: Option<VlanMode>,
    },
    /// The frame belongs to bridge VLAN `vlan`.
    Vlan {
        /// Bridge VLAN (0: untagged VLAN of trunks).
        vlan: Vid,
    },
    /// Source learning (with `Learn::Off` when tracing).
    Learn {
        /// Source MAC.
        mac: Mac,
        /// What happened.
        result: Learn,
    },
    /// Destination lookup result.
    Destination {
        /// Destination MAC.
        mac: Mac,
        /// Where it was found, if anywhere.
        lookup: DstLookup,
    },
    /// A port left out of a flood.
    Excluded {
        /// The port.
        port: PortNo,
        /// Why.
        reason: Exclusion,
    },
    /// An output.
    Output(NormalOutput),
    /// NORMAL output nothing.
    Drop(NormalDrop),
}

/// Receives the steps of NORMAL. `()` ignores them (the packet path).
pub trait NormalTracer {
    /// Called for each step, in order.
    fn event(&mut self, ev: TraceEvent);
}

impl NormalTracer for () {
    #[inline(always)]
    fn event(&mut self, _ev: TraceEvent) {}
}

/// Every step of one NORMAL decision, for `rvsctl trace`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NormalTrace {
    /// The steps, in order.
    pub events: Vec<TraceEvent>,
}

impl NormalTracer for NormalTrace {
    fn event(&mut self, ev: TraceEvent) {
        self.events.push(ev);
    }
}

impl fmt::Display for EgressVlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EgressVlan::Untagged => f.write_str("untagged"),
            EgressVlan::Tagged(v) => write!(f, "VLAN {}", v.0),
        }
    }
}

impl fmt::Display for NormalTrace {
    /// One line per step, worded like `ofproto/trace`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for ev in &self.events {
            match ev {
                TraceEvent::Input { port, vid, mode } => {
                    let tag = match vid {
                        None => "untagged".to_owned(),
                        Some(v) => format!("VLAN {} tagged", v.0),
                    };
                    match mode {
                        Some(m) => writeln!(f, "{tag} packet received on port {port} ({m})")?,
                        None => writeln!(f, "{tag} packet received on port {port}")?,
                    }
                }
                TraceEvent::Vlan { vlan } => writeln!(f, "bridge VLAN {}", vlan.0)?,
                TraceEvent::Learn { mac, result } => match result {
                    Learn::Off => writeln!(f, "not learning {mac} (trace)")?,
                    Learn::MulticastSource => writeln!(f, "not learning multicast source {mac}")?,
                    Learn::New => writeln!(f, "learned that {mac} is on the input port")?,
                    Learn::Known => writeln!(f, "{mac} already learned on the input port")?,
                    Learn::Moved { from } => writeln!(
                        f,
                        "learned that {mac} moved from port {from} to the input port"
                    )?,
                },
                TraceEvent::Destination { mac, lookup } => match lookup {
                    DstLookup::Learned(p) => writeln!(f, "{mac} learned on port {p}")?,
                    DstLookup::Unknown => {
                        writeln!(f, "no learned MAC for destination {mac}, flooding")?
                    }
                    DstLookup::Multicast => writeln!(f, "multicast destination {mac}, flooding")?,
                },
                TraceEvent::Excluded { port, reason } => {
                    let why = match reason {
                        Exclusion::InputPort => "input port",
                        Exclusion::VlanNotCarried => "does not carry the VLAN",
                        Exclusion::PortDown => "port down",
                        Exclusion::SplitHorizon => "split horizon (tunnel to tunnel)",
                    };
                    writeln!(f, "skipping port {port}: {why}")?
                }
                TraceEvent::Output(o) => writeln!(f, "output to port {} ({})", o.port, o.vlan)?,
                TraceEvent::Drop(d) => writeln!(f, "{d}")?,
            }
        }
        Ok(())
    }
}

/// `eth_addr_is_reserved` (lib/packets.c): addresses a bridge must not
/// forward unless configured to forward BPDUs.
#[inline]
pub fn is_reserved_mac(mac: Mac) -> bool {
    let m = mac.0;
    if m[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && m[5] <= 0x0f {
        return true; // STP, pause, LLDP, other 802.1 protocols.
    }
    matches!(
        m,
        [0x00, 0xe0, 0x2b, 0x00, 0x00, 0x00 | 0x04 | 0x06] // Extreme EDP, EAPS.
            | [0x01, 0x00, 0x0c, 0x00, 0x00, 0x00] // Cisco ISL.
            | [0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcc | 0xcd] // CDP, VTP…, PVST+.
            | [0x01, 0x00, 0x0c, 0xcd, 0xcd, 0xcd] // STP UplinkFast.
            | [0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xc0..=0xc7] // Cisco CFM.
    )
}

/// Decision ending: records a drop in both the outcome and the trace.
#[inline]
fn drop<T: NormalTracer>(out: &mut NormalOutcome, tracer: &mut T, reason: NormalDrop) {
    out.drop_reason = Some(reason);
    tracer.event(TraceEvent::Drop(reason));
}

impl Bridge {
    /// Runs NORMAL for a packet with key `key` at time `now_ms`, learning
    /// its source, and writes the decision into `out` (cleared first).
    #[inline]
    pub fn normal(&mut self, key: &FlowKey, now_ms: u64, out: &mut NormalOutcome) {
        self.normal_with(key, now_ms, true, out, &mut ());
    }

    /// Runs NORMAL without learning and records each step in `trace` (for
    /// `rvsctl trace`). The decision in `out` is the one [`Bridge::normal`]
    /// would make, except that the source is not learned first.
    pub fn trace_normal(
        &mut self,
        key: &FlowKey,
        now_ms: u64,
        out: &mut NormalOutcome,
        trace: &mut NormalTrace,
    ) {
        self.normal_with(key, now_ms, false, out, trace);
    }

    /// The NORMAL pipeline, generic over the tracer; `learn` says whether
    /// the source MAC may be learned (`allow_side_effects` in OVS).
    pub fn normal_with<T: NormalTracer>(
        &mut self,
        key: &FlowKey,
        now_ms: u64,
        learn: bool,
        out: &mut NormalOutcome,
        tracer: &mut T,
    ) {
        out.clear();
        let in_port = PortNo(key.in_port);
        let tagged = key.vlan_tci & VLAN_PRESENT != 0;
        let in_vid = if tagged {
            key.vlan_tci & VLAN_VID_MASK
        } else {
            0
        };
        let in_pcp = if tagged {
            (key.vlan_tci & VLAN_PCP_MASK) >> VLAN_PCP_SHIFT
        } else {
            0
        };

        // lookup_input_bundle.
        let Some(in_idx) = self.port_index(in_port) else {
            tracer.event(TraceEvent::Input {
                port: in_port,
                vid: tagged.then_some(Vid(in_vid)),
                mode: None,
            });
            return drop(out, tracer, NormalDrop::NoInputPort);
        };
        let in_vlan = &self.ports[in_idx].vlan;
        tracer.event(TraceEvent::Input {
            port: in_port,
            vid: tagged.then_some(Vid(in_vid)),
            mode: Some(in_vlan.mode()),
        });

        // input_vid_is_valid: VID 0 (untagged or priority-tagged) is fine on
        // access ports; anything else must be trunked.
        if !in_vlan.input_vid_is_valid(in_vid) {
            return drop(out, tracer, NormalDrop::VlanNotAllowed);
        }
        // xvlan_input_translate: access ports put frames in their VLAN and
        // drop any inner tag; native ports put untagged frames in theirs.
        let vlan = in_vlan.input_translate(in_vid);
        // A second tag is in the key only under vlan-limit 2 (or none).
        let has_inner = tagged && key.inner_vlan_tci & VLAN_PRESENT != 0;
        let in_access = in_vlan.mode() == VlanMode::Access;
        let inner_vid = if !in_access && has_inner {
            key.inner_vlan_tci & VLAN_VID_MASK
        } else {
            0
        };
        out.vlan = Some(Vid(vlan));
        tracer.event(TraceEvent::Vlan { vlan: Vid(vlan) });

        // is_admissible: reserved multicast is neither learned nor forwarded.
        let dst = Mac(key.dl_dst);
        if !self.forward_bpdu && is_reserved_mac(dst) {
            return drop(out, tracer, NormalDrop::ReservedMulticast);
        }

        // update_learning_table (only with side effects allowed).
        let src = Mac(key.dl_src);
        if learn {
            out.learn = self.mac.learn(src, Vid(vlan), in_port, now_ms);
        }
        tracer.event(TraceEvent::Learn {
            mac: src,
            result: out.learn,
        });

        // mac_learning_lookup: multicast never matches, so it floods.
        let lookup = match self.mac.lookup(dst, Vid(vlan), now_ms) {
            Some(p) => DstLookup::Learned(p),
            None if dst.is_multicast() => DstLookup::Multicast,
            None => DstLookup::Unknown,
        };
        tracer.event(TraceEvent::Destination { mac: dst, lookup });

        if let DstLookup::Learned(p) = lookup {
            // xlate_normal: "forwarding to learned port" unless it is the
            // input port or unknown.
            if p == in_port {
                return drop(out, tracer, NormalDrop::LearnedOnInputPort);
            }
            let Some(idx) = self.port_index(p) else {
                return drop(out, tracer, NormalDrop::LearnedPortUnknown);
            };
            let port = &self.ports[idx];
            if !port.up {
                return drop(out, tracer, NormalDrop::LearnedPortDown);
            }
            if port.split_horizon && self.ports[in_idx].split_horizon {
                return drop(out, tracer, NormalDrop::SplitHorizon);
            }
            // output_normal → xvlan_output_translate.
            let o = NormalOutput {
                port: p,
                vlan: port.vlan.egress(vlan, in_pcp),
                pop_inner: has_inner && (in_access || port.vlan.mode() == VlanMode::Access),
            };
            out.outputs.push(o);
            tracer.event(TraceEvent::Output(o));
            return;
        }

        // xlate_normal_flood: every other port carrying the VLAN.
        out.flooded = true;
        let in_horizon = self.ports[in_idx].split_horizon;
        for (i, port) in self.ports.iter().enumerate() {
            let reason = if i == in_idx {
                Exclusion::InputPort
            } else if !port.vlan.includes_vlan(vlan, inner_vid) {
                Exclusion::VlanNotCarried
            } else if !port.up {
                Exclusion::PortDown
            } else if in_horizon && port.split_horizon {
                Exclusion::SplitHorizon
            } else {
                let o = NormalOutput {
                    port: port.port,
                    vlan: port.vlan.egress(vlan, in_pcp),
                    pop_inner: has_inner && (in_access || port.vlan.mode() == VlanMode::Access),
                };
                out.outputs.push(o);
                tracer.event(TraceEvent::Output(o));
                continue;
            };
            tracer.event(TraceEvent::Excluded {
                port: port.port,
                reason,
            });
        }
        if out.outputs.is_empty() {
            drop(out, tracer, NormalDrop::NoFloodPorts);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::bridge::{MacTable, VlanConfig};

    const fn mac(n: u8) -> Mac {
        Mac([0x02, 0, 0, 0, 0, n])
    }
    const A: Mac = mac(0xa);
    const B: Mac = mac(0xb);
    const C: Mac = mac(0xc);

    fn key(in_port: u32, src: Mac, dst: Mac, vid: Option<u16>) -> FlowKey {
        FlowKey {
            in_port,
            dl_src: src.0,
            dl_dst: dst.0,
            vlan_tci: vid.map_or(0, |v| VLAN_PRESENT | v),
            dl_type: 0x0800,
            ..FlowKey::ZERO
        }
    }

    fn vids(v: &[u16]) -> Vec<Vid> {
        v.iter().map(|&v| Vid(v)).collect()
    }

    fn access(tag: u16) -> VlanConfig {
        VlanConfig::access(Vid(tag)).unwrap()
    }

    fn trunk(v: &[u16]) -> VlanConfig {
        VlanConfig::trunk(vids(v)).unwrap()
    }

    fn native(mode: VlanMode, tag: u16, v: &[u16]) -> VlanConfig {
        VlanConfig::new(Some(mode), Some(Vid(tag)), vids(v)).unwrap()
    }

    fn bridge(ports: &[(u32, VlanConfig)]) -> Bridge {
        let mut br = Bridge::with_mac_table(MacTable::with_seed(42));
        for (p, c) in ports {
            br.add_port(PortNo(*p), c.clone()).unwrap();
        }
        br
    }

    fn run(br: &mut Bridge, k: &FlowKey, now_ms: u64) -> NormalOutcome {
        let mut out = NormalOutcome::default();
        br.normal(k, now_ms, &mut out);
        assert_eq!(out.outputs.is_empty(), out.drop_reason.is_some());
        out
    }

    fn outs(o: &NormalOutcome) -> Vec<(u32, EgressVlan)> {
        o.outputs.iter().map(|o| (o.port.0, o.vlan)).collect()
    }

    use EgressVlan::{Tagged, Untagged};

    fn t(v: u16) -> EgressVlan {
        Tagged(Vid(v))
    }

    /// input_vid_is_valid (PORT_VLAN_ACCESS): tagged frames are dropped,
    /// even with the port's own VID, and nothing is learned from them.
    #[test]
    fn access_ingress_drops_tagged() {
        let mut br = bridge(&[(1, access(10)), (2, access(10)), (3, trunk(&[]))]);
        for vid in [10, 20] {
            let o = run(&mut br, &key(1, A, B, Some(vid)), 0);
            assert_eq!(o.drop_reason, Some(NormalDrop::VlanNotAllowed));
            assert_eq!(o.vlan, None);
            assert_eq!(o.learn, Learn::Off);
        }
        assert!(br.mac_table().is_empty());
        // A priority tag (VID 0) counts as untagged (vid == 0 is valid).
        let o = run(&mut br, &key(1, A, B, Some(0)), 0);
        assert_eq!(o.vlan, Some(Vid(10)));
        assert_eq!(outs(&o), vec![(2, Untagged), (3, t(10))]);
        // Untagged: VLAN 10.
        let o = run(&mut br, &key(1, A, B, None), 0);
        assert_eq!(o.vlan, Some(Vid(10)));
        assert_eq!(outs(&o), vec![(2, Untagged), (3, t(10))]);
    }

    /// input_vid_is_valid (PORT_VLAN_TRUNK) via xbundle_trunks_vlan.
    #[test]
    fn trunk_filters_vids() {
        let mut br = bridge(&[(1, trunk(&[10, 20])), (2, trunk(&[])), (3, access(20))]);
        let o = run(&mut br, &key(1, A, B, Some(30)), 0);
        assert_eq!(o.drop_reason, Some(NormalDrop::VlanNotAllowed));
        // Untagged is VLAN 0, not in the trunks.
        let o = run(&mut br, &key(1, A, B, None), 0);
        assert_eq!(o.drop_reason, Some(NormalDrop::VlanNotAllowed));
        let o = run(&mut br, &key(1, A, B, Some(20)), 0);
        assert_eq!(o.vlan, Some(Vid(20)));
        assert_eq!(outs(&o), vec![(2, t(20)), (3, Untagged)]);
        // The all-VLAN trunk takes untagged frames as VLAN 0; port 1 does
        // not carry VLAN 0, access port 3 neither: nowhere to flood.
        let o = run(&mut br, &key(2, A, B, None), 0);
        assert_eq!(o.vlan, Some(Vid(0)));
        assert_eq!(o.drop_reason, Some(NormalDrop::NoFloodPorts));
        assert!(o.flooded);
    }

    /// xvlan_input_translate / xvlan_output_translate for native modes.
    #[test]
    fn native_untagged_ingress_and_egress() {
        let nu = native(VlanMode::NativeUntagged, 5, &[10]);
        let mut br = bridge(&[(1, nu.clone()), (2, nu), (3, trunk(&[]))]);
        // Untagged in → native VLAN 5 → untagged on the other native port.
        let o = run(&mut br, &key(1, A, B, None), 0);
        assert_eq!(o.vlan, Some(Vid(5)));
        assert_eq!(outs(&o), vec![(2, Untagged), (3, t(5))]);
        // Tagged with the native VID is accepted, same VLAN.
        let o = run(&mut br, &key(1, A, B, Some(5)), 0);
        assert_eq!(o.vlan, Some(Vid(5)));
        assert_eq!(outs(&o), vec![(2, Untagged), (3, t(5))]);
        // A trunked VLAN stays tagged.
        let o = run(&mut br, &key(3, C, B, Some(10)), 0);
        assert_eq!(outs(&o), vec![(1, t(10)), (2, t(10))]);
        // Not trunked: dropped.
        let o = run(&mut br, &key(1, A, B, Some(11)), 0);
        assert_eq!(o.drop_reason, Some(NormalDrop::VlanNotAllowed));
        // VLAN 0 (trunk's untagged) is never carried by native ports.
        let o = run(&mut br, &key(3, C, B, None), 0);
        assert_eq!(o.drop_reason, Some(NormalDrop::NoFloodPorts));
    }

    #[test]
    fn native_tagged_ingress_and_egress() {
        let mut br = bridge(&[
            (1, native(VlanMode::NativeTagged, 5, &[10])),
            (2, native(VlanMode::NativeTagged, 5, &[])),
            (3, access(5)),
        ]);
        // Untagged in → native VLAN 5 → native-tagged sends it tagged.
        let o = run(&mut br, &key(1, A, B, None), 0);
        assert_eq!(o.vlan, Some(Vid(5)));
        assert_eq!(outs(&o), vec![(2, t(5)), (3, Untagged)]);
        // From the access port: tagged 5 on both native-tagged ports.
        let o = run(&mut br, &key(3, C, B, None), 0);
        assert_eq!(outs(&o), vec![(1, t(5)), (2, t(5))]);
        let o = run(&mut br, &key(2, C, B, Some(10)), 0);
        assert_eq!(outs(&o), vec![(1, t(10))]);
        let o = run(&mut br, &key(1, A, B, Some(20)), 0);
        assert_eq!(o.drop_reason, Some(NormalDrop::VlanNotAllowed));
    }

    /// xlate_normal_flood: not the input port, not ports without the
    /// VLAN (xbundle_includes_vlan), and (rvs) not ports that are down.
    /// Tunnel ports form a split-horizon group: a flood from one skips
    /// the others (so a full mesh does not loop), and a MAC learned on
    /// one is not reached from another; other ports are unaffected.
    #[test]
    fn split_horizon_between_tunnel_ports() {
        let mut br = Bridge::new();
        for p in 1..=4 {
            br.add_port(PortNo(p), VlanConfig::default()).unwrap();
        }
        br.set_port_split_horizon(PortNo(2), true).unwrap();
        br.set_port_split_horizon(PortNo(3), true).unwrap();
        let mut out = NormalOutcome::default();
        br.normal(&key(2, mac(9), Mac([0xff; 6]), None), 0, &mut out);
        let ports: Vec<u32> = out.outputs.iter().map(|o| o.port.0).collect();
        assert_eq!(
            ports,
            [1, 4],
            "flood from a tunnel reaches only non-tunnel ports"
        );
        // From a plain port, every tunnel gets the flood.
        br.normal(&key(1, mac(8), Mac([0xff; 6]), None), 0, &mut out);
        let ports: Vec<u32> = out.outputs.iter().map(|o| o.port.0).collect();
        assert_eq!(ports, [2, 3, 4]);
        // mac(9) was learned on tunnel 2: tunnel 3 does not reach it,
        // port 1 does.
        br.normal(&key(3, mac(7), mac(9), None), 0, &mut out);
        assert_eq!(out.drop_reason, Some(NormalDrop::SplitHorizon));
        br.normal(&key(1, mac(8), mac(9), None), 0, &mut out);
        assert_eq!(out.outputs.len(), 1);
        assert_eq!(out.outputs[0].port, PortNo(2));
    }

    #[test]
    fn flood_excludes_input_vlan_and_down_ports() {
        let mut br = bridge(&[
            (1, access(10)),
            (2, access(10)),
            (3, access(20)),
            (4, trunk(&[20])),
            (5, trunk(&[])),
            (6, access(10)),
        ]);
        br.set_port_up(PortNo(6), false).unwrap();
        let k = key(1, A, Mac::BROADCAST, None);
        let mut out = NormalOutcome::default();
        let mut trace = NormalTrace::default();
        br.trace_normal(&k, 0, &mut out, &mut trace);
        assert!(out.flooded);
        assert_eq!(outs(&out), vec![(2, Untagged), (5, t(10))]);
        let excluded: Vec<_> = trace
            .events
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Excluded { port, reason } => Some((port.0, *reason)),
                _ => None,
            })
            .collect();
        assert_eq!(
            excluded,
            vec![
                (1, Exclusion::InputPort),
                (3, Exclusion::VlanNotCarried),
                (4, Exclusion::VlanNotCarried),
                (6, Exclusion::PortDown),
            ]
        );
        assert!(trace.events.contains(&TraceEvent::Destination {
            mac: Mac::BROADCAST,
            lookup: DstLookup::Multicast
        }));
        // The packet path decides the same.
        let o = run(&mut br, &k, 0);
        assert_eq!(o.outputs, out.outputs);
        br.set_port_up(PortNo(6), true).unwrap();
        let o = run(&mut br, &k, 0);
        assert_eq!(outs(&o), vec![(2, Untagged), (5, t(10)), (6, Untagged)]);
    }

    /// xlate_normal: a destination learned in the VLAN goes to its port
    /// only, tagged per output_normal.
    #[test]
    fn learned_unicast_goes_to_one_port_with_egress_vlan() {
        let mut br = bridge(&[(1, access(10)), (2, trunk(&[])), (3, access(10))]);
        // B speaks from the trunk in VLAN 10: learned on port 2.
        let o = run(&mut br, &key(2, B, A, Some(10)), 0);
        assert_eq!(o.learn, Learn::New);
        assert!(o.flooded);
        let o = run(&mut br, &key(1, A, B, None), 1);
        assert!(!o.flooded);
        assert_eq!(o.learn, Learn::New);
        assert_eq!(outs(&o), vec![(2, t(10))]);
        // And back: A was learned on access port 1.
        let o = run(&mut br, &key(2, B, A, Some(10)), 2);
        assert_eq!(o.learn, Learn::Known);
        assert_eq!(outs(&o), vec![(1, Untagged)]);
        // Learning is per VLAN: in VLAN 20, B is unknown, so flood (only the
        // trunk carries 20, and it is the input port).
        let o = run(&mut br, &key(2, C, B, Some(20)), 3);
        assert!(o.flooded);
        assert_eq!(o.drop_reason, Some(NormalDrop::NoFloodPorts));
    }

    #[test]
    fn learned_on_input_port_or_down_port_is_dropped() {
        let mut br = bridge(&[(1, access(10)), (2, access(10)), (3, access(10))]);
        run(&mut br, &key(1, A, C, None), 0);
        run(&mut br, &key(1, B, C, None), 0);
        let o = run(&mut br, &key(1, A, B, None), 0);
        assert_eq!(o.drop_reason, Some(NormalDrop::LearnedOnInputPort));
        run(&mut br, &key(2, C, A, None), 0);
        br.set_port_up(PortNo(2), false).unwrap();
        let o = run(&mut br, &key(1, A, C, None), 0);
        assert_eq!(o.drop_reason, Some(NormalDrop::LearnedPortDown));
    }

    #[test]
    fn unknown_input_port_is_dropped() {
        let mut br = bridge(&[(1, access(10))]);
        let o = run(&mut br, &key(9, A, B, None), 0);
        assert_eq!(o.drop_reason, Some(NormalDrop::NoInputPort));
        assert!(br.mac_table().is_empty());
    }

    /// mac_learning_may_learn: multicast sources are never learned, and the
    /// frame is still forwarded.
    #[test]
    fn no_learning_from_multicast_source() {
        let mut br = bridge(&[(1, access(10)), (2, access(10))]);
        let mcast = Mac([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]);
        let o = run(&mut br, &key(1, mcast, B, None), 0);
        assert_eq!(o.learn, Learn::MulticastSource);
        assert_eq!(outs(&o), vec![(2, Untagged)]);
        assert!(br.mac_table().is_empty());
        // Traffic to that address still floods (lookup ignores multicast).
        let o = run(&mut br, &key(2, B, mcast, None), 0);
        assert!(o.flooded);
        assert_eq!(outs(&o), vec![(1, Untagged)]);
    }

    /// is_admissible / eth_addr_is_reserved: not forwarded, not learned,
    /// unless forward-bpdu is on.
    #[test]
    fn reserved_multicast_not_forwarded() {
        let mut br = bridge(&[(1, access(10)), (2, access(10))]);
        for last in [0x00, 0x02, 0x0e, 0x0f] {
            let dst = Mac([0x01, 0x80, 0xc2, 0, 0, last]);
            let o = run(&mut br, &key(1, A, dst, None), 0);
            assert_eq!(o.drop_reason, Some(NormalDrop::ReservedMulticast));
            assert_eq!(o.learn, Learn::Off);
        }
        assert!(br.mac_table().is_empty());
        for dst in [
            Mac([0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcc]),
            Mac([0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xc7]),
            Mac([0x00, 0xe0, 0x2b, 0x00, 0x00, 0x00]),
        ] {
            assert!(is_reserved_mac(dst), "{dst}");
        }
        // 01:80:c2:00:00:10 and 01:00:0c:cc:cc:c8 are ordinary multicast.
        for dst in [
            Mac([0x01, 0x80, 0xc2, 0, 0, 0x10]),
            Mac([0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xc8]),
        ] {
            assert!(!is_reserved_mac(dst), "{dst}");
            let o = run(&mut br, &key(1, A, dst, None), 0);
            assert_eq!(outs(&o), vec![(2, Untagged)]);
        }
        br.set_forward_bpdu(true);
        let o = run(
            &mut br,
            &key(1, A, Mac([0x01, 0x80, 0xc2, 0, 0, 0]), None),
            0,
        );
        assert_eq!(outs(&o), vec![(2, Untagged)]);
    }

    /// mac_learning_run: once aged out, the destination floods again.
    #[test]
    fn aging_removes_entries() {
        let mut br = bridge(&[(1, access(10)), (2, access(10)), (3, access(10))]);
        br.set_mac_aging_time(15).unwrap();
        run(&mut br, &key(2, B, A, None), 1_000);
        let o = run(&mut br, &key(1, A, B, None), 2_000);
        assert_eq!(outs(&o), vec![(2, Untagged)]);
        assert_eq!(br.expire(15_999), 0);
        assert_eq!(br.expire(16_000), 1); // B, learned at 1 s
        let o = run(&mut br, &key(1, A, B, None), 16_000);
        assert!(o.flooded);
        assert_eq!(outs(&o), vec![(2, Untagged), (3, Untagged)]);
    }

    /// evict_mac_entry_fairly through the bridge: a port spraying source
    /// MACs loses its own entries first.
    #[test]
    fn full_table_evicts_from_busiest_port() {
        let mut br = bridge(&[(1, access(10)), (2, access(10))]);
        br.set_mac_table_size(10).unwrap();
        run(&mut br, &key(2, B, Mac::BROADCAST, None), 0);
        for i in 0x20..0x52u8 {
            run(&mut br, &key(1, mac(i), Mac::BROADCAST, None), u64::from(i));
        }
        assert_eq!(br.mac_table().len(), 10);
        assert_eq!(br.mac_table().port_count(PortNo(2)), 1);
        assert_eq!(br.mac_table().stats().evicted, 41);
        let o = run(&mut br, &key(1, mac(0x51), B, None), 100);
        assert_eq!(outs(&o), vec![(2, Untagged)]);
        // Port 1 keeps its 9 most recent MACs.
        let fdb = br.fdb_show(100);
        let p1: Vec<_> = fdb
            .iter()
            .filter(|e| e.port == PortNo(1))
            .map(|e| e.mac)
            .collect();
        assert_eq!(p1, (0x49..0x52).map(mac).collect::<Vec<_>>());
    }

    /// update_learning_table__: a host that moves is followed.
    #[test]
    fn mac_move() {
        let mut br = bridge(&[(1, access(10)), (2, access(10)), (3, access(10))]);
        run(&mut br, &key(2, B, A, None), 0);
        let o = run(&mut br, &key(1, A, B, None), 0);
        assert_eq!(outs(&o), vec![(2, Untagged)]);
        let o = run(&mut br, &key(3, B, A, None), 10);
        assert_eq!(o.learn, Learn::Moved { from: PortNo(2) });
        let o = run(&mut br, &key(1, A, B, None), 20);
        assert_eq!(outs(&o), vec![(3, Untagged)]);
    }

    /// Access ports carry only single-tagged traffic when the second tag
    /// is in the key (xbundle_includes_vlan checks v[1].vid == 0).
    #[test]
    fn double_tagged_frames_do_not_flood_to_access_ports() {
        let mut br = bridge(&[(1, trunk(&[])), (2, access(10)), (3, trunk(&[10]))]);
        let mut k = key(1, A, Mac::BROADCAST, Some(10));
        k.inner_vlan_tci = VLAN_PRESENT | 20;
        let o = run(&mut br, &k, 0);
        assert_eq!(outs(&o), vec![(3, t(10))]);
    }

    // ---- double-tagged frames under vlan-limit 1, 2 and 0 -------------
    //
    // The limit acts through key extraction (flow_limit_vlans): these
    // tests build real frames, extract them as the datapath does under
    // each limit, and run NORMAL on the key. Expected outputs are OVS
    // 3.1's (xlate_normal with the same vlan-limit).

    const S8021AD: u16 = 0x88a8;
    const C8021Q: u16 = 0x8100;

    /// A frame with `tags` (TPID, TCI) and an IPv4 header after them.
    fn frame(src: Mac, dst: Mac, tags: &[(u16, u16)]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        for (tpid, tci) in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 20, 0, 0, 0, 0, 64, 253, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f
    }

    fn key_of(f: &[u8], in_port: u32, limit: u8) -> FlowKey {
        let (k, l) = flowtable::extract::extract_layout_vlans(f, PortNo(in_port), limit);
        assert_eq!(l.malformed, None);
        k
    }

    /// Outputs with the second-tag flag: (port, egress, pop_inner).
    fn outs_pop(o: &NormalOutcome) -> Vec<(u32, EgressVlan, bool)> {
        o.outputs
            .iter()
            .map(|o| (o.port.0, o.vlan, o.pop_inner))
            .collect()
    }

    /// Every VLAN mode on one bridge:
    /// 1 access 10, 2 access 20, 3 trunk (all), 4 trunk 10,20,
    /// 5 native-tagged 10 (+20), 6 native-untagged 10 (+20), 7 access 10.
    fn all_modes() -> Bridge {
        bridge(&[
            (1, access(10)),
            (2, access(20)),
            (3, trunk(&[])),
            (4, trunk(&[10, 20])),
            (5, native(VlanMode::NativeTagged, 10, &[20])),
            (6, native(VlanMode::NativeUntagged, 10, &[20])),
            (7, access(10)),
        ])
    }

    /// The 32 cases of the differential run: a double-tagged broadcast on a
    /// trunk reaches the access ports of its outer VLAN under OVS's default
    /// vlan-limit=1 (the inner tag is payload and stays), and does not
    /// under vlan-limit 2 or 0.
    #[test]
    fn double_tagged_on_trunks_follow_the_vlan_limit() {
        for (tags, in_port) in [
            (vec![(C8021Q, 10), (C8021Q, 20)], 3),
            (vec![(S8021AD, 10), (C8021Q, 20)], 3),
            (vec![(C8021Q, 10), (C8021Q, 20)], 4),
            (vec![(S8021AD, 10), (C8021Q, 30)], 5),
            (vec![(C8021Q, 10), (C8021Q, 30)], 6),
        ] {
            let f = frame(A, Mac::BROADCAST, &tags);
            let limit1 = run(&mut all_modes(), &key_of(&f, in_port, 1), 0);
            let want1: Vec<_> = [
                (1, Untagged),
                (3, t(10)),
                (4, t(10)),
                (5, t(10)),
                (6, Untagged),
                (7, Untagged),
            ]
            .into_iter()
            .filter(|(p, _)| *p != in_port)
            .map(|(p, v)| (p, v, false))
            .collect();
            assert_eq!(outs_pop(&limit1), want1, "{tags:x?} on {in_port}, limit 1");
            let want2: Vec<_> = want1
                .iter()
                .filter(|(p, ..)| ![1, 7].contains(p))
                .copied()
                .collect();
            for limit in [2, 0] {
                let o = run(&mut all_modes(), &key_of(&f, in_port, limit), 0);
                assert_eq!(outs_pop(&o), want2, "{tags:x?} on {in_port}, limit {limit}");
            }
        }
        // A trunked VLAN other than the native one, from a native port.
        let f = frame(A, Mac::BROADCAST, &[(C8021Q, 20), (C8021Q, 30)]);
        let o = run(&mut all_modes(), &key_of(&f, 6, 1), 0);
        let want = vec![
            (2, Untagged, false),
            (3, t(20), false),
            (4, t(20), false),
            (5, t(20), false),
        ];
        assert_eq!(outs_pop(&o), want);
        let o = run(&mut all_modes(), &key_of(&f, 6, 2), 0);
        assert_eq!(outs_pop(&o), want[1..].to_vec());
    }

    /// A tagged frame on an access port is refused under every limit
    /// (input_vid_is_valid), double-tagged or not: it never reaches
    /// another VLAN, nor its own. Nothing is learned from it.
    #[test]
    fn double_tagged_on_access_ports_never_leak() {
        for tags in [
            vec![(C8021Q, 20), (C8021Q, 30)],
            vec![(C8021Q, 10), (C8021Q, 20)],
            vec![(S8021AD, 20), (C8021Q, 10)],
            vec![(C8021Q, 20)],
        ] {
            for limit in [1, 2, 0] {
                let mut br = all_modes();
                let o = run(
                    &mut br,
                    &key_of(&frame(A, Mac::BROADCAST, &tags), 1, limit),
                    0,
                );
                assert_eq!(
                    o.drop_reason,
                    Some(NormalDrop::VlanNotAllowed),
                    "{tags:x?} {limit}"
                );
                assert!(br.mac_table().is_empty());
            }
        }
    }

    /// Behind a priority tag (VID 0) a second tag does enter an access
    /// port, into the port's VLAN and no other. vlan-limit 1: it is
    /// payload and travels on (OVS does the same). vlan-limit 2/0: OVS's
    /// xvlan_input_translate drops it, so every output pops it.
    #[test]
    fn priority_tag_over_a_second_tag_on_an_access_port() {
        let f = frame(A, Mac::BROADCAST, &[(C8021Q, 0x6000), (C8021Q, 20)]);
        let ports = [
            (3, t(10)),
            (4, t(10)),
            (5, t(10)),
            (6, Untagged),
            (7, Untagged),
        ];
        let o = run(&mut all_modes(), &key_of(&f, 1, 1), 0);
        assert_eq!(o.vlan, Some(Vid(10)));
        let want: Vec<_> = ports.iter().map(|&(p, v)| (p, v, false)).collect();
        assert_eq!(outs_pop(&o), want);
        for limit in [2, 0] {
            let o = run(&mut all_modes(), &key_of(&f, 1, limit), 0);
            let want: Vec<_> = ports.iter().map(|&(p, v)| (p, v, true)).collect();
            assert_eq!(outs_pop(&o), want, "limit {limit}");
        }
    }

    /// A double-tagged frame to a MAC learned on an access port
    /// (xvlan_output_translate empties the VLAN stack there): limit 1
    /// pops the outer tag (the only one OVS sees), limit 2/0 both.
    #[test]
    fn learned_unicast_to_an_access_port_strips_what_the_limit_parsed() {
        for (limit, pop) in [(1, false), (2, true), (0, true)] {
            let mut br = all_modes();
            run(&mut br, &key_of(&frame(B, A, &[]), 1, limit), 0);
            let f = frame(A, B, &[(C8021Q, 10), (C8021Q, 20)]);
            let o = run(&mut br, &key_of(&f, 3, limit), 1);
            assert!(!o.flooded);
            assert_eq!(outs_pop(&o), vec![(1, Untagged, pop)], "limit {limit}");
            // Learning is by the outer VLAN under every limit.
            assert_eq!(br.mac_table().lookup(A, Vid(10), 1), Some(PortNo(3)));
        }
    }

    /// xvlan_put: a priority-tagged VLAN 0 frame with a PCP keeps a VID 0
    /// tag on trunks; without PCP it leaves untagged.
    #[test]
    fn priority_tag_on_trunk_vlan_zero() {
        let mut br = bridge(&[(1, trunk(&[])), (2, trunk(&[])), (3, trunk(&[0, 7]))]);
        let mut k = key(1, A, Mac::BROADCAST, Some(0));
        k.vlan_tci |= 5 << VLAN_PCP_SHIFT;
        let o = run(&mut br, &k, 0);
        assert_eq!(o.vlan, Some(Vid(0)));
        assert_eq!(outs(&o), vec![(2, t(0)), (3, t(0))]);
        let o = run(&mut br, &key(1, A, Mac::BROADCAST, Some(0)), 0);
        assert_eq!(outs(&o), vec![(2, Untagged), (3, Untagged)]);
    }

    /// ofproto/trace has no side effects: tracing does not learn, and the
    /// trace reads like OVS's.
    #[test]
    fn trace_does_not_learn_and_explains() {
        let mut br = bridge(&[(1, access(10)), (2, trunk(&[10]))]);
        let mut out = NormalOutcome::default();
        let mut trace = NormalTrace::default();
        br.trace_normal(&key(1, A, B, None), 0, &mut out, &mut trace);
        assert!(br.mac_table().is_empty());
        assert_eq!(out.learn, Learn::Off);
        assert_eq!(
            trace.to_string(),
            "untagged packet received on port 1 (access)\n\
             bridge VLAN 10\n\
             not learning 02:00:00:00:00:0a (trace)\n\
             no learned MAC for destination 02:00:00:00:00:0b, flooding\n\
             skipping port 1: input port\n\
             output to port 2 (VLAN 10)\n"
        );
        let mut trace = NormalTrace::default();
        br.trace_normal(&key(1, A, B, Some(10)), 0, &mut out, &mut trace);
        assert_eq!(
            trace.to_string(),
            "VLAN 10 tagged packet received on port 1 (access)\n\
             disallowed VLAN VID for this input port, dropping\n"
        );
        assert_eq!(
            out.drop_reason.map(NormalDrop::as_str),
            Some("vlan_not_allowed")
        );
    }

    /// The outcome is reused: up to INLINE_OUTPUTS outputs stay inline, and
    /// a buffer that spilled once keeps its capacity.
    #[test]
    fn outcome_reuse_does_not_reallocate() {
        let ports: Vec<_> = (1..=12).map(|p| (p, access(10))).collect();
        let mut br = bridge(&ports[..9]);
        let mut out = NormalOutcome::default();
        br.normal(&key(1, A, Mac::BROADCAST, None), 0, &mut out);
        assert_eq!(out.outputs.len(), 8);
        assert!(!out.outputs.spilled());
        let mut br = bridge(&ports);
        br.normal(&key(1, A, Mac::BROADCAST, None), 0, &mut out);
        assert_eq!(out.outputs.len(), 11);
        let (ptr, cap) = (out.outputs.as_ptr(), out.outputs.capacity());
        br.normal(&key(2, B, Mac::BROADCAST, None), 0, &mut out);
        assert_eq!(out.outputs.len(), 11);
        assert_eq!((out.outputs.as_ptr(), out.outputs.capacity()), (ptr, cap));
    }
}
