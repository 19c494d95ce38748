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
//! `&mut Bridge`: called by the single worker that owns the bridge.
//!
//! # Limits
//! Not modelled (OVS features rvs lacks): bonds, mirrors, multicast
//! snooping, dot1q-tunnel, flood-VLANs, STP/RSTP states, `NO_FLOOD` ports,
//! the gratuitous-ARP learning lock, static FDB entries. Partial VLAN headers
//! cannot be seen in a `FlowKey` and are left to key extraction. For an
//! access output port, OVS strips every tag; [`EgressVlan::Untagged`]
//! strips the outer one (a double-tagged frame can reach an access port
//! only through a learned unicast entry).

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
}

impl Exclusion {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Exclusion::InputPort => "input_port",
            Exclusion::VlanNotCarried => "vlan_not_carried",
            Exclusion::PortDown => "port_down",
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
        let inner_vid = if in_vlan.mode() != VlanMode::Access
            && tagged
            && key.inner_vlan_tci & VLAN_PRESENT != 0
        {
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
            // output_normal → xvlan_output_translate.
            let o = NormalOutput {
                port: p,
                vlan: port.vlan.egress(vlan, in_pcp),
            };
            out.outputs.push(o);
            tracer.event(TraceEvent::Output(o));
            return;
        }

        // xlate_normal_flood: every other port carrying the VLAN.
        out.flooded = true;
        for (i, port) in self.ports.iter().enumerate() {
            let reason = if i == in_idx {
                Exclusion::InputPort
            } else if !port.vlan.includes_vlan(vlan, inner_vid) {
                Exclusion::VlanNotCarried
            } else if !port.up {
                Exclusion::PortDown
            } else {
                let o = NormalOutput {
                    port: port.port,
                    vlan: port.vlan.egress(vlan, in_pcp),
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
