//! Actions and instructions on the wire, to and from [`Action`] lists.
//!
//! # What?
//! OpenFlow 1.3 actions ([`decode_actions13`], [`encode_actions13`]) and
//! instructions ([`decode_instructions`], [`encode_instructions`]), and
//! OpenFlow 1.0 actions ([`decode_actions10`], [`encode_actions10`]). A flow's
//! instructions become one rvs action list:
//!
//! - APPLY_ACTIONS: its actions, in order.
//! - WRITE_ACTIONS: its actions are appended after the apply actions, in
//!   OpenFlow action-set order (pop, push, dec_ttl, set_field, output).
//!   rvs has no per-packet action set: this is exact for a flow that ends
//!   the pipeline (no GOTO_TABLE), and an approximation otherwise (the
//!   written actions run before, not after, the later tables).
//! - CLEAR_ACTIONS: accepted; a no-op, since no action set is kept.
//! - WRITE_METADATA with a full mask: `set_field:V->metadata`; other masks
//!   are BAD_INSTRUCTION/UNSUP_METADATA_MASK.
//! - GOTO_TABLE: a final [`Action::GotoTable`]; it must go forward
//!   (BAD_INSTRUCTION/BAD_TABLE_ID).
//! - METER: a first [`Action::Meter`] (meter 0 or above OFPM_MAX is
//!   METER_MOD_FAILED/INVALID_METER; whether the meter exists is the
//!   switch's check). Encoded as the first instruction.
//! - Experimenter instructions: BAD_INSTRUCTION/UNSUP_INST;
//!   unknown types BAD_INSTRUCTION/UNKNOWN_INST.
//!
//! Actions: OUTPUT to a port or a reserved port (CONTROLLER keeps its
//! `max_len`, other ports are encoded with [`OUTPUT_MAX_LEN`]; TABLE only
//! in a packet-out), PUSH_VLAN, POP_VLAN, SET_FIELD
//! for every supported OXM field except ETH_TYPE/IP_PROTO (read-only),
//! DEC_NW_TTL, SET_NW_TTL, and Nicira `resubmit`, `resubmit_table`,
//! `note`, `set_tunnel` and `set_tunnel64` (both versions). SET_FIELD to
//! the tunnel: `TUNNEL_ID` (basic class) and the NXM_NX class
//! `TUN_IPV4_SRC`/`TUN_IPV4_DST`/`TUN_FLAGS`, as OVS sends them; rvs
//! encodes `tun_id` as SET_FIELD in 1.3 and as `set_tunnel`(`64`) in 1.0.
//! OpenFlow 1.0: OUTPUT, SET_VLAN_VID/PCP,
//! STRIP_VLAN, SET_DL_SRC/DST, SET_NW_SRC/DST/TOS, SET_TP_SRC/DST.
//! Anything else is BAD_ACTION/BAD_TYPE (or BAD_EXPERIMENTER /
//! BAD_EXP_TYPE).
//!
//! # Invariants
//! For flow mods ([`ActCtx::flow`]) actions are checked as rvs's flow
//! parser checks them, so a decoded flow prints and re-parses to itself:
//! a SET_FIELD's prerequisite must hold in the match, setting the VLAN
//! VID/PCP needs a tag (matched, or pushed earlier), otherwise
//! BAD_ACTION/MATCH_INCONSISTENT. Packet-out actions are not checked
//! against a match (the daemon runs them on the packet).
//!
//! # Limits
//! Encoding is lossy where the wire cannot express rvs actions: in 1.3 a
//! `mod_vlan_vid` on an untagged packet (which pushes a tag in rvs) is
//! sent as SET_FIELD only; in 1.0, `push_vlan`, `goto_table` and
//! set-field to fields without a 1.0 action are left out.

use super::error::{bad_action, bad_instruction, DecodeError, ErrorType, OfpError};
use super::oxm::{
    field as oxf, nxm, oxm_info_c, put_oxm_c, read_oxm, OFPXMC_NXM_1, OFPXMC_OPENFLOW_BASIC,
};
use super::wire::{len16, pad8, patch_u16, put_u16, put_u32, put_u8, put_zeros, Reader};
use super::{port_from_of13, port_to_of13};
use flowtable::field::{Field, Prereq};
use flowtable::key::VLAN_PRESENT;
use flowtable::{Action, Match, PortNo, TableId};

/// Nicira's experimenter/vendor id.
pub const NX_VENDOR_ID: u32 = 0x0000_2320;
const NXAST_RESUBMIT: u16 = 1;
const NXAST_SET_TUNNEL: u16 = 2;
const NXAST_NOTE: u16 = 8;
const NXAST_SET_TUNNEL64: u16 = 9;
const NXAST_RESUBMIT_TABLE: u16 = 14;
const NXAST_DEC_TTL: u16 = 18;

/// OpenFlow 1.3 action types.
#[allow(missing_docs)]
pub mod act13 {
    pub const OUTPUT: u16 = 0;
    pub const COPY_TTL_OUT: u16 = 11;
    pub const COPY_TTL_IN: u16 = 12;
    pub const SET_MPLS_TTL: u16 = 15;
    pub const DEC_MPLS_TTL: u16 = 16;
    pub const PUSH_VLAN: u16 = 17;
    pub const POP_VLAN: u16 = 18;
    pub const PUSH_MPLS: u16 = 19;
    pub const POP_MPLS: u16 = 20;
    pub const SET_QUEUE: u16 = 21;
    pub const GROUP: u16 = 22;
    pub const SET_NW_TTL: u16 = 23;
    pub const DEC_NW_TTL: u16 = 24;
    pub const SET_FIELD: u16 = 25;
    pub const PUSH_PBB: u16 = 26;
    pub const POP_PBB: u16 = 27;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// OpenFlow 1.0 action types.
#[allow(missing_docs)]
pub mod act10 {
    pub const OUTPUT: u16 = 0;
    pub const SET_VLAN_VID: u16 = 1;
    pub const SET_VLAN_PCP: u16 = 2;
    pub const STRIP_VLAN: u16 = 3;
    pub const SET_DL_SRC: u16 = 4;
    pub const SET_DL_DST: u16 = 5;
    pub const SET_NW_SRC: u16 = 6;
    pub const SET_NW_DST: u16 = 7;
    pub const SET_NW_TOS: u16 = 8;
    pub const SET_TP_SRC: u16 = 9;
    pub const SET_TP_DST: u16 = 10;
    pub const ENQUEUE: u16 = 11;
    pub const VENDOR: u16 = 0xffff;
}

/// OpenFlow 1.3 instruction types.
#[allow(missing_docs)]
pub mod inst {
    pub const GOTO_TABLE: u16 = 1;
    pub const WRITE_METADATA: u16 = 2;
    pub const WRITE_ACTIONS: u16 = 3;
    pub const APPLY_ACTIONS: u16 = 4;
    pub const CLEAR_ACTIONS: u16 = 5;
    pub const METER: u16 = 6;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// What actions are checked against while decoding.
#[derive(Clone, Copy, Debug)]
pub struct ActCtx<'a> {
    /// The flow's match; `None` for a packet-out (no checks).
    m: Option<&'a Match>,
    /// The flow's table, for GOTO_TABLE's "forward only" rule.
    table: Option<u8>,
    /// A VLAN tag is known to be present at this point.
    vlan_present: bool,
}

impl<'a> ActCtx<'a> {
    /// Actions of a flow in `table` (`None`: OFPTT_ALL) matching `m`.
    pub fn flow(m: &'a Match, table: Option<u8>) -> ActCtx<'a> {
        let vlan_present =
            m.mask().vlan_tci & VLAN_PRESENT != 0 && m.key().vlan_tci & VLAN_PRESENT != 0;
        ActCtx {
            m: Some(m),
            table,
            vlan_present,
        }
    }

    /// Actions of a packet-out.
    pub fn packet_out() -> ActCtx<'static> {
        ActCtx {
            m: None,
            table: None,
            vlan_present: true,
        }
    }

    fn prereq(&self, p: Prereq, what: &str) -> Result<(), DecodeError> {
        match self.m {
            Some(m) if !p.is_met(m) => Err(ba(
                bad_action::MATCH_INCONSISTENT,
                format!("{what} needs {} in the match", p.describe()),
            )),
            _ => Ok(()),
        }
    }

    fn need_vlan(&self, what: &str) -> Result<(), DecodeError> {
        if self.vlan_present {
            Ok(())
        } else {
            Err(ba(
                bad_action::MATCH_INCONSISTENT,
                format!("{what} needs a VLAN tag (matched, or pushed before)"),
            ))
        }
    }
}

fn ba(code: u16, what: impl Into<String>) -> DecodeError {
    DecodeError::new(OfpError::new(ErrorType::BadAction, code), what)
}

fn bi(code: u16, what: impl Into<String>) -> DecodeError {
    DecodeError::new(OfpError::new(ErrorType::BadInstruction, code), what)
}

/// The rvs action for output to `p` (reserved ports have their own).
fn output_to(p: PortNo, max_len: u16, ctx: &ActCtx<'_>) -> Result<Action, DecodeError> {
    Ok(match p {
        PortNo::IN_PORT => Action::InPort,
        PortNo::NORMAL => Action::Normal,
        PortNo::FLOOD => Action::Flood,
        PortNo::ALL => Action::All,
        PortNo::LOCAL => Action::Local,
        PortNo::CONTROLLER => Action::Controller { max_len },
        PortNo::TABLE if ctx.m.is_none() => Action::Output(PortNo::TABLE),
        p if p.0 == 0 || p > PortNo::MAX => {
            return Err(ba(
                bad_action::BAD_OUT_PORT,
                format!("output to port {p} is not allowed here"),
            ))
        }
        p => Action::Output(p),
    })
}

/// Splits an action list into (type, whole action bytes), checking lengths.
fn split_tlvs(bytes: &[u8], bad_len: DecodeError) -> Result<Vec<(u16, &[u8])>, DecodeError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 8 {
            return Err(bad_len);
        }
        let t = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if len < 8 || len % 8 != 0 || len > rest.len() {
            return Err(bad_len);
        }
        out.push((t, &rest[..len]));
        rest = &rest[len..];
    }
    Ok(out)
}

fn reader(a: &[u8]) -> Reader<'_> {
    Reader::new(a, OfpError::new(ErrorType::BadAction, bad_action::BAD_LEN))
}

fn want_len(a: &[u8], n: usize, what: &str) -> Result<(), DecodeError> {
    if a.len() == n {
        Ok(())
    } else {
        Err(ba(
            bad_action::BAD_LEN,
            format!("{what} action has length {}, expected {n}", a.len()),
        ))
    }
}

/// A Nicira vendor/experimenter action (header already split off).
fn decode_nx(a: &[u8], ctx: &ActCtx<'_>) -> Result<Action, DecodeError> {
    let mut r = reader(a);
    r.skip(4, "action header")?;
    let vendor = r.u32("experimenter")?;
    if vendor != NX_VENDOR_ID {
        return Err(ba(
            bad_action::BAD_EXPERIMENTER,
            format!("experimenter {vendor:#x} actions are not supported"),
        ));
    }
    let sub = r.u16("subtype")?;
    match sub {
        NXAST_RESUBMIT | NXAST_RESUBMIT_TABLE => {
            want_len(a, 16, "resubmit")?;
            let port = PortNo(u32::from(r.u16("in_port")?));
            let table = r.u8("table")?;
            let port = (port != PortNo::IN_PORT).then_some(port);
            let table = (sub == NXAST_RESUBMIT_TABLE && table != 0xff).then_some(TableId(table));
            if table.is_some_and(|t| t > TableId::MAX) || port.is_none() && table.is_none() {
                return Err(ba(
                    bad_action::BAD_ARGUMENT,
                    "resubmit needs a port or table",
                ));
            }
            let _ = ctx;
            Ok(Action::Resubmit { port, table })
        }
        NXAST_NOTE => Ok(Action::Note(r.rest().to_vec())),
        NXAST_SET_TUNNEL => {
            want_len(a, 16, "set_tunnel")?;
            r.skip(2, "pad")?;
            Ok(Action::SetField {
                field: Field::TunId,
                value: u128::from(r.u32("tun_id")?),
            })
        }
        NXAST_SET_TUNNEL64 => {
            want_len(a, 24, "set_tunnel64")?;
            r.skip(6, "pad")?;
            Ok(Action::SetField {
                field: Field::TunId,
                value: u128::from(r.u64("tun_id")?),
            })
        }
        NXAST_DEC_TTL => Ok(Action::DecTtl),
        _ => Err(ba(
            bad_action::BAD_EXP_TYPE,
            format!("Nicira action subtype {sub} is not supported"),
        )),
    }
}

/// A SET_FIELD's OXM as an rvs action.
fn set_field(a: &[u8], ctx: &mut ActCtx<'_>) -> Result<Action, DecodeError> {
    let mut r = reader(&a[4..]);
    let o = read_oxm(&mut r).map_err(|e| {
        let code = match e.error.code {
            super::error::bad_match::BAD_LEN => bad_action::BAD_SET_LEN,
            super::error::bad_match::BAD_MASK => bad_action::BAD_SET_ARGUMENT,
            _ => bad_action::BAD_SET_TYPE,
        };
        ba(code, format!("set_field: {}", e.what))
    })?;
    if r.rest().iter().any(|b| *b != 0) || a.len() != (4 + 4 + o.info.width).next_multiple_of(8) {
        return Err(ba(bad_action::BAD_SET_LEN, "set_field has a bad length"));
    }
    if o.mask.is_some() {
        return Err(ba(bad_action::BAD_SET_ARGUMENT, "set_field takes no mask"));
    }
    let f = o.info.field;
    let basic = o.info.class == OFPXMC_OPENFLOW_BASIC;
    // VLAN_VID/VLAN_PCP write vlan_tci's views, which set_field allows.
    let vlan = basic && matches!(o.info.oxm, oxf::VLAN_VID | oxf::VLAN_PCP);
    if !f.writable() && !vlan {
        return Err(ba(
            bad_action::BAD_SET_ARGUMENT,
            format!("{} is read-only", f.name()),
        ));
    }
    let v = o.value;
    if v > o.info.max {
        return Err(ba(
            bad_action::BAD_SET_ARGUMENT,
            format!("set_field value {v:#x} out of range for {}", f.name()),
        ));
    }
    ctx.prereq(o.info.prereq, "set_field")?;
    if !basic {
        return Ok(Action::SetField { field: f, value: v });
    }
    Ok(match o.info.oxm {
        oxf::VLAN_VID => {
            ctx.need_vlan("set_field to vlan_vid")?;
            // OFPVID_PRESENT is optional here, as in OVS.
            Action::SetVlanVid((v & 0xfff) as u16)
        }
        oxf::VLAN_PCP => {
            ctx.need_vlan("set_field to vlan_pcp")?;
            Action::SetVlanPcp(v as u8)
        }
        oxf::IP_DSCP => Action::SetField {
            field: Field::NwTos,
            value: v << 2,
        },
        oxf::IN_PORT => {
            let p = u32::try_from(v)
                .ok()
                .and_then(port_from_of13)
                .ok_or_else(|| {
                    ba(
                        bad_action::BAD_SET_ARGUMENT,
                        "set_field in_port out of range",
                    )
                })?;
            Action::SetField {
                field: Field::InPort,
                value: u128::from(p.0),
            }
        }
        _ => Action::SetField { field: f, value: v },
    })
}

/// Decodes an OpenFlow 1.3 action list.
pub fn decode_actions13(bytes: &[u8], ctx: &mut ActCtx<'_>) -> Result<Vec<Action>, DecodeError> {
    let mut out = Vec::new();
    for (t, a) in split_tlvs(bytes, ba(bad_action::BAD_LEN, "bad action length"))? {
        let mut r = reader(a);
        r.skip(4, "action header")?;
        let act = match t {
            act13::OUTPUT => {
                want_len(a, 16, "output")?;
                let p = r.u32("port")?;
                let max_len = r.u16("max_len")?;
                let p = port_from_of13(p).ok_or_else(|| {
                    ba(
                        bad_action::BAD_OUT_PORT,
                        format!("output port {p:#x} is invalid"),
                    )
                })?;
                output_to(p, max_len, ctx)?
            }
            act13::PUSH_VLAN => {
                want_len(a, 8, "push_vlan")?;
                let tpid = r.u16("ethertype")?;
                if tpid != 0x8100 && tpid != 0x88a8 {
                    return Err(ba(
                        bad_action::BAD_ARGUMENT,
                        format!("push_vlan ethertype {tpid:#06x}"),
                    ));
                }
                ctx.vlan_present = true;
                Action::PushVlan(tpid)
            }
            act13::POP_VLAN => {
                want_len(a, 8, "pop_vlan")?;
                ctx.vlan_present = false;
                Action::StripVlan
            }
            act13::DEC_NW_TTL => {
                want_len(a, 8, "dec_nw_ttl")?;
                Action::DecTtl
            }
            act13::SET_NW_TTL => {
                want_len(a, 8, "set_nw_ttl")?;
                ctx.prereq(Prereq::Ip, "set_nw_ttl")?;
                Action::SetField {
                    field: Field::NwTtl,
                    value: u128::from(r.u8("ttl")?),
                }
            }
            act13::SET_FIELD => set_field(a, ctx)?,
            act13::EXPERIMENTER => decode_nx(a, ctx)?,
            _ => {
                return Err(ba(
                    bad_action::BAD_TYPE,
                    format!("action type {t} is not supported"),
                ))
            }
        };
        out.push(act);
    }
    Ok(out)
}

/// Action-set position of an action (OpenFlow 1.3 §5.10 order).
fn set_order(a: &Action) -> u8 {
    match a {
        Action::StripVlan => 0,
        Action::PushVlan(_) => 1,
        Action::DecTtl => 2,
        Action::SetField { .. } | Action::SetVlanVid(_) | Action::SetVlanPcp(_) => 3,
        _ => 4,
    }
}

/// Decodes a flow's OpenFlow 1.3 instructions into one action list.
pub fn decode_instructions(bytes: &[u8], ctx: &mut ActCtx<'_>) -> Result<Vec<Action>, DecodeError> {
    let mut apply = Vec::new();
    let mut write = Vec::new();
    let mut meta = None;
    let mut goto = None;
    let mut meter = None;
    let mut seen = 0u32;
    for (t, ib) in split_tlvs(
        bytes,
        bi(bad_instruction::BAD_LEN, "bad instruction length"),
    )? {
        let mut r = Reader::new(
            ib,
            OfpError::new(ErrorType::BadInstruction, bad_instruction::BAD_LEN),
        );
        r.skip(4, "instruction header")?;
        if t < 32 {
            if seen & 1 << t != 0 {
                return Err(bi(
                    bad_instruction::UNSUP_INST,
                    format!("instruction {t} given twice"),
                ));
            }
            seen |= 1 << t;
        }
        match t {
            inst::GOTO_TABLE => {
                let tid = r.u8("table_id")?;
                if tid > TableId::MAX.0 || ctx.table.is_some_and(|cur| tid <= cur) {
                    return Err(bi(
                        bad_instruction::BAD_TABLE_ID,
                        format!("goto_table {tid} does not go forward"),
                    ));
                }
                goto = Some(Action::GotoTable(TableId(tid)));
            }
            inst::WRITE_METADATA => {
                r.skip(4, "pad")?;
                let v = r.u64("metadata")?;
                let m = r.u64("metadata_mask")?;
                if m != u64::MAX {
                    return Err(bi(
                        bad_instruction::UNSUP_METADATA_MASK,
                        "write_metadata supports only a full mask",
                    ));
                }
                meta = Some(Action::SetField {
                    field: Field::Metadata,
                    value: u128::from(v),
                });
            }
            inst::APPLY_ACTIONS | inst::WRITE_ACTIONS => {
                r.skip(4, "pad")?;
                let acts = decode_actions13(r.rest(), ctx)?;
                if t == inst::APPLY_ACTIONS {
                    apply = acts;
                } else {
                    write = acts;
                }
            }
            inst::CLEAR_ACTIONS => {}
            inst::METER => {
                let id = r.u32("meter_id")?;
                if id == 0 || id > flowtable::meter::OFPM_MAX {
                    return Err(DecodeError::new(
                        OfpError::new(
                            ErrorType::MeterModFailed,
                            flowtable::meter::code::INVALID_METER,
                        ),
                        format!("meter instruction to meter {id}"),
                    ));
                }
                meter = Some(Action::Meter(id));
            }
            inst::EXPERIMENTER => {
                return Err(bi(
                    bad_instruction::UNSUP_INST,
                    format!("instruction {t} is not supported"),
                ))
            }
            _ => {
                return Err(bi(
                    bad_instruction::UNKNOWN_INST,
                    format!("unknown instruction {t}"),
                ))
            }
        }
    }
    write.sort_by_key(set_order);
    if let Some(m) = meter {
        apply.insert(0, m);
    }
    apply.extend(write);
    apply.extend(meta);
    apply.extend(goto);
    Ok(apply)
}

/// `max_len` written for OUTPUT to a port other than CONTROLLER, where
/// it means nothing and rvs does not keep it: OFPCML_MAX, what Ryu,
/// os-ken and Faucet send by default, so their flow-stats comparisons of
/// the actions they installed hold (`ovs-ofctl` prints no `max_len` for
/// these ports).
pub const OUTPUT_MAX_LEN: u16 = 0xffe5;

fn put_output13(b: &mut Vec<u8>, port: PortNo, max_len: u16) {
    put_u16(b, act13::OUTPUT);
    put_u16(b, 16);
    put_u32(b, port_to_of13(port));
    put_u16(b, max_len);
    put_zeros(b, 6);
}

fn put_nx_header(b: &mut Vec<u8>, sub: u16) -> usize {
    let start = b.len();
    put_u16(b, 0xffff);
    put_u16(b, 0);
    put_u32(b, NX_VENDOR_ID);
    put_u16(b, sub);
    start
}

fn finish_len(b: &mut Vec<u8>, start: usize) {
    pad8(b);
    let len = len16(b.len() - start);
    patch_u16(b, start + 2, len);
}

/// Nicira actions shared by both versions; false if `a` is not one.
fn encode_nx(b: &mut Vec<u8>, a: &Action) -> bool {
    match a {
        Action::Resubmit { port, table } => {
            let s = put_nx_header(b, NXAST_RESUBMIT_TABLE);
            put_u16(b, port.unwrap_or(PortNo::IN_PORT).0 as u16);
            put_u8(b, table.map_or(0xff, |t| t.0));
            put_zeros(b, 3);
            finish_len(b, s);
        }
        Action::Note(bytes) => {
            let s = put_nx_header(b, NXAST_NOTE);
            b.extend_from_slice(bytes);
            finish_len(b, s);
        }
        _ => return false,
    }
    true
}

/// The OXM class, field (and value) a set-field action writes, given the
/// flow's match (which tells TCP from UDP ports and ICMPv4 from ICMPv6).
fn set_field_oxm(field: Field, value: u128, m: &Match) -> Option<(u16, u8, u128)> {
    use oxf::*;
    let ty = m.key().dl_type;
    let proto = m.key().nw_proto;
    let v6 = ty == 0x86dd;
    let nx = match field {
        Field::TunSrc => Some(nxm::TUN_IPV4_SRC),
        Field::TunDst => Some(nxm::TUN_IPV4_DST),
        Field::TunFlags => Some(nxm::TUN_FLAGS),
        _ => None,
    };
    if let Some(nx) = nx {
        return Some((OFPXMC_NXM_1, nx, value));
    }
    let (oxm, value) = match field {
        Field::InPort => (IN_PORT, u128::from(port_to_of13(PortNo(value as u32)))),
        Field::Metadata => (METADATA, value),
        Field::TunId => (TUNNEL_ID, value),
        Field::DlSrc => (ETH_SRC, value),
        Field::DlDst => (ETH_DST, value),
        Field::VlanVid => (VLAN_VID, value | 0x1000),
        Field::VlanPcp => (VLAN_PCP, value),
        Field::NwTos => (IP_DSCP, value >> 2),
        Field::IpDscp => (IP_DSCP, value),
        Field::NwEcn => (IP_ECN, value),
        Field::NwSrc => (IPV4_SRC, value),
        Field::NwDst => (IPV4_DST, value),
        Field::ArpOp => (ARP_OP, value),
        Field::ArpSpa => (ARP_SPA, value),
        Field::ArpTpa => (ARP_TPA, value),
        Field::ArpSha => (ARP_SHA, value),
        Field::ArpTha => (ARP_THA, value),
        Field::Ipv6Src => (IPV6_SRC, value),
        Field::Ipv6Dst => (IPV6_DST, value),
        Field::Ipv6Label => (IPV6_FLABEL, value),
        Field::TpSrc | Field::TpDst => {
            let src = field == Field::TpSrc;
            let o = match proto {
                17 => (UDP_SRC, UDP_DST),
                132 => (SCTP_SRC, SCTP_DST),
                _ => (TCP_SRC, TCP_DST),
            };
            (if src { o.0 } else { o.1 }, value)
        }
        Field::IcmpType => (if v6 { ICMPV6_TYPE } else { ICMPV4_TYPE }, value),
        Field::IcmpCode => (if v6 { ICMPV6_CODE } else { ICMPV4_CODE }, value),
        _ => return None,
    };
    Some((OFPXMC_OPENFLOW_BASIC, oxm, value))
}

fn put_set_field(b: &mut Vec<u8>, class: u16, oxm: u8, value: u128) {
    if oxm_info_c(class, oxm).is_none() {
        return;
    }
    let s = b.len();
    put_u16(b, act13::SET_FIELD);
    put_u16(b, 0);
    put_oxm_c(b, class, oxm, value, None);
    finish_len(b, s);
}

/// Encodes actions as an OpenFlow 1.3 action list (GOTO_TABLE is not an
/// action and is skipped; see [`encode_instructions`]). `m` is the flow's
/// match, used to pick the OXM of port and ICMP set-fields.
pub fn encode_actions13(b: &mut Vec<u8>, actions: &[Action], m: &Match) {
    for a in actions {
        match a {
            Action::Output(p) => put_output13(b, *p, OUTPUT_MAX_LEN),
            Action::Normal => put_output13(b, PortNo::NORMAL, OUTPUT_MAX_LEN),
            Action::Flood => put_output13(b, PortNo::FLOOD, OUTPUT_MAX_LEN),
            Action::All => put_output13(b, PortNo::ALL, OUTPUT_MAX_LEN),
            Action::InPort => put_output13(b, PortNo::IN_PORT, OUTPUT_MAX_LEN),
            Action::Local => put_output13(b, PortNo::LOCAL, OUTPUT_MAX_LEN),
            Action::Controller { max_len } => put_output13(b, PortNo::CONTROLLER, *max_len),
            Action::SetVlanVid(v) => put_set_field(
                b,
                OFPXMC_OPENFLOW_BASIC,
                oxf::VLAN_VID,
                u128::from(*v | 0x1000),
            ),
            Action::SetVlanPcp(p) => {
                put_set_field(b, OFPXMC_OPENFLOW_BASIC, oxf::VLAN_PCP, u128::from(*p))
            }
            Action::StripVlan => {
                put_u16(b, act13::POP_VLAN);
                put_u16(b, 8);
                put_zeros(b, 4);
            }
            Action::PushVlan(t) => {
                put_u16(b, act13::PUSH_VLAN);
                put_u16(b, 8);
                put_u16(b, *t);
                put_zeros(b, 2);
            }
            Action::SetField {
                field: Field::NwTtl,
                value,
            } => {
                put_u16(b, act13::SET_NW_TTL);
                put_u16(b, 8);
                put_u8(b, *value as u8);
                put_zeros(b, 3);
            }
            Action::SetField { field, value } => {
                if let Some((class, oxm, v)) = set_field_oxm(*field, *value, m) {
                    put_set_field(b, class, oxm, v);
                }
            }
            Action::DecTtl => {
                put_u16(b, act13::DEC_NW_TTL);
                put_u16(b, 8);
                put_zeros(b, 4);
            }
            Action::GotoTable(_) => {}
            a => {
                encode_nx(b, a);
            }
        }
    }
}

/// Encodes a flow's action list as OpenFlow 1.3 instructions:
/// APPLY_ACTIONS with every action but a final `goto_table`, then
/// GOTO_TABLE. An empty list (drop) has no instructions.
pub fn encode_instructions(b: &mut Vec<u8>, actions: &[Action], m: &Match) {
    let actions = match actions.first() {
        Some(Action::Meter(id)) => {
            put_u16(b, inst::METER);
            put_u16(b, 8);
            put_u32(b, *id);
            &actions[1..]
        }
        _ => actions,
    };
    let (body, goto) = match actions.last() {
        Some(Action::GotoTable(t)) => (&actions[..actions.len() - 1], Some(*t)),
        _ => (actions, None),
    };
    if !body.is_empty() {
        let s = b.len();
        put_u16(b, inst::APPLY_ACTIONS);
        put_u16(b, 0);
        put_zeros(b, 4);
        encode_actions13(b, body, m);
        let len = len16(b.len() - s);
        patch_u16(b, s + 2, len);
    }
    if let Some(t) = goto {
        put_u16(b, inst::GOTO_TABLE);
        put_u16(b, 8);
        put_u8(b, t.0);
        put_zeros(b, 3);
    }
}

/// Decodes an OpenFlow 1.0 action list.
pub fn decode_actions10(bytes: &[u8], ctx: &mut ActCtx<'_>) -> Result<Vec<Action>, DecodeError> {
    let mut out = Vec::new();
    for (t, a) in split_tlvs(bytes, ba(bad_action::BAD_LEN, "bad action length"))? {
        let mut r = reader(a);
        r.skip(4, "action header")?;
        let mac = |r: &mut Reader<'_>| -> Result<u128, DecodeError> {
            let m: [u8; 6] = r.array("mac")?;
            Ok(m.iter().fold(0u128, |acc, x| acc << 8 | u128::from(*x)))
        };
        let act = match t {
            act10::OUTPUT => {
                let p = PortNo(u32::from(r.u16("port")?));
                let max_len = r.u16("max_len")?;
                output_to(p, max_len, ctx)?
            }
            act10::SET_VLAN_VID => {
                let v = r.u16("vid")?;
                if v > 0xfff {
                    return Err(ba(bad_action::BAD_ARGUMENT, format!("VLAN id {v}")));
                }
                ctx.vlan_present = true;
                Action::SetVlanVid(v)
            }
            act10::SET_VLAN_PCP => {
                let p = r.u8("pcp")?;
                if p > 7 {
                    return Err(ba(bad_action::BAD_ARGUMENT, format!("VLAN PCP {p}")));
                }
                ctx.vlan_present = true;
                Action::SetVlanPcp(p)
            }
            act10::STRIP_VLAN => {
                ctx.vlan_present = false;
                Action::StripVlan
            }
            act10::SET_DL_SRC | act10::SET_DL_DST => {
                want_len(a, 16, "set_dl")?;
                Action::SetField {
                    field: if t == act10::SET_DL_SRC {
                        Field::DlSrc
                    } else {
                        Field::DlDst
                    },
                    value: mac(&mut r)?,
                }
            }
            act10::SET_NW_SRC | act10::SET_NW_DST => {
                ctx.prereq(Prereq::Ipv4, "set_nw_src/dst")?;
                Action::SetField {
                    field: if t == act10::SET_NW_SRC {
                        Field::NwSrc
                    } else {
                        Field::NwDst
                    },
                    value: u128::from(r.u32("addr")?),
                }
            }
            act10::SET_NW_TOS => {
                ctx.prereq(Prereq::Ip, "set_nw_tos")?;
                let tos = r.u8("tos")?;
                if tos & 3 != 0 {
                    return Err(ba(
                        bad_action::BAD_ARGUMENT,
                        format!("nw_tos {tos} has ECN bits"),
                    ));
                }
                Action::SetField {
                    field: Field::NwTos,
                    value: u128::from(tos),
                }
            }
            act10::SET_TP_SRC | act10::SET_TP_DST => {
                ctx.prereq(Prereq::L4, "set_tp_src/dst")?;
                Action::SetField {
                    field: if t == act10::SET_TP_SRC {
                        Field::TpSrc
                    } else {
                        Field::TpDst
                    },
                    value: u128::from(r.u16("port")?),
                }
            }
            act10::VENDOR => decode_nx(a, ctx)?,
            _ => {
                return Err(ba(
                    bad_action::BAD_TYPE,
                    format!("action type {t} is not supported"),
                ))
            }
        };
        out.push(act);
    }
    Ok(out)
}

fn put_output10(b: &mut Vec<u8>, port: PortNo, max_len: u16) {
    put_u16(b, act10::OUTPUT);
    put_u16(b, 8);
    put_u16(b, port.0 as u16);
    put_u16(b, max_len);
}

/// Encodes actions as an OpenFlow 1.0 action list (see Limits for what is
/// left out).
pub fn encode_actions10(b: &mut Vec<u8>, actions: &[Action]) {
    for a in actions {
        let simple = |b: &mut Vec<u8>, t: u16, len: u16| {
            put_u16(b, t);
            put_u16(b, len);
        };
        match a {
            Action::Output(p) => put_output10(b, *p, OUTPUT_MAX_LEN),
            Action::Normal => put_output10(b, PortNo::NORMAL, OUTPUT_MAX_LEN),
            Action::Flood => put_output10(b, PortNo::FLOOD, OUTPUT_MAX_LEN),
            Action::All => put_output10(b, PortNo::ALL, OUTPUT_MAX_LEN),
            Action::InPort => put_output10(b, PortNo::IN_PORT, OUTPUT_MAX_LEN),
            Action::Local => put_output10(b, PortNo::LOCAL, OUTPUT_MAX_LEN),
            Action::Controller { max_len } => put_output10(b, PortNo::CONTROLLER, *max_len),
            Action::SetVlanVid(v) => {
                simple(b, act10::SET_VLAN_VID, 8);
                put_u16(b, *v);
                put_zeros(b, 2);
            }
            Action::SetVlanPcp(p) => {
                simple(b, act10::SET_VLAN_PCP, 8);
                put_u8(b, *p);
                put_zeros(b, 3);
            }
            Action::StripVlan => {
                simple(b, act10::STRIP_VLAN, 8);
                put_zeros(b, 4);
            }
            Action::SetField { field, value } => {
                let v = *value;
                match field {
                    Field::DlSrc | Field::DlDst => {
                        let t = if *field == Field::DlSrc {
                            act10::SET_DL_SRC
                        } else {
                            act10::SET_DL_DST
                        };
                        simple(b, t, 16);
                        b.extend_from_slice(&v.to_be_bytes()[10..16]);
                        put_zeros(b, 6);
                    }
                    Field::NwSrc | Field::NwDst => {
                        let t = if *field == Field::NwSrc {
                            act10::SET_NW_SRC
                        } else {
                            act10::SET_NW_DST
                        };
                        simple(b, t, 8);
                        put_u32(b, v as u32);
                    }
                    Field::NwTos | Field::IpDscp => {
                        simple(b, act10::SET_NW_TOS, 8);
                        let tos = if *field == Field::IpDscp { v << 2 } else { v };
                        put_u8(b, tos as u8 & 0xfc);
                        put_zeros(b, 3);
                    }
                    Field::TpSrc | Field::TpDst => {
                        let t = if *field == Field::TpSrc {
                            act10::SET_TP_SRC
                        } else {
                            act10::SET_TP_DST
                        };
                        simple(b, t, 8);
                        put_u16(b, v as u16);
                        put_zeros(b, 2);
                    }
                    // Nicira's, as OVS writes them: 32-bit when it fits.
                    Field::TunId => {
                        if let Ok(v32) = u32::try_from(v) {
                            let s = put_nx_header(b, NXAST_SET_TUNNEL);
                            put_zeros(b, 2);
                            put_u32(b, v32);
                            finish_len(b, s);
                        } else {
                            let s = put_nx_header(b, NXAST_SET_TUNNEL64);
                            put_zeros(b, 6);
                            // Cast: tun_id is 64 bits.
                            b.extend_from_slice(&(v as u64).to_be_bytes());
                            finish_len(b, s);
                        }
                    }
                    _ => {}
                }
            }
            Action::DecTtl => {
                let s = put_nx_header(b, NXAST_DEC_TTL);
                finish_len(b, s);
            }
            a => {
                encode_nx(b, a);
            }
        }
    }
}
