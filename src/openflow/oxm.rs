//! Matches on the wire: OpenFlow 1.3 OXM (`ofp_match` of type OXM) and the
//! fixed OpenFlow 1.0 `ofp_match`, both to and from [`Match`].
//!
//! # What?
//! `decode_oxm_match` reads an `ofp_match` (type, length, OXM TLVs,
//! padding) into a [`Match`], checking what OpenFlow 1.3 requires: known
//! OXM class and field (BAD_MATCH/BAD_FIELD otherwise), exact payload
//! length (BAD_LEN), a mask only on maskable fields (BAD_MASK), no value
//! bits outside the mask (BAD_WILDCARDS), no duplicates (DUP_FIELD), legal
//! values (BAD_VALUE) and every field's prerequisite (BAD_PREREQ), checked
//! over the whole match so the order of TLVs does not matter (as OVS).
//! [`encode_oxm_match`] writes the canonical OXM form of a match.
//! `decode_of10_match` / [`encode_of10_match`] do the same for the
//! 40-byte OpenFlow 1.0 match.
//!
//! # Design
//! OXM fields map onto [`Field`]s of the flow key: `VLAN_VID` is the low
//! 13 bits of `vlan_tci` (OFPVID_PRESENT 0x1000 is the key's present bit),
//! `VLAN_PCP` its top 3 bits, `IP_DSCP`/`IP_ECN` the TOS byte, `ARP_OP`,
//! `ARP_SPA`, `ARP_TPA` share `nw_proto`/`nw_src`/`nw_dst` with
//! `IP_PROTO`/`IPV4_*`, and the TCP/UDP/SCTP ports and ICMP type/code share
//! `tp_src`/`tp_dst`. The encoder chooses the OXM by the matched
//! `dl_type`/`nw_proto`, so decode(encode(m)) == m for every match the
//! decoder can produce.
//!
//! OpenFlow 1.0 matches that set a field without its prerequisite (e.g. an
//! unwildcarded `nw_tos` without `dl_type=0x0800`) have that field
//! wildcarded, as OVS does (`ofputil_normalize_match`): 1.0 controllers
//! commonly send such matches.
//!
//! # Limits
//! Key fields without an OXM in OpenFlow 1.3 (`tcp_flags`, `nw_ttl`,
//! `ip_frag`, the inner VLAN) are not encoded, so a flow added through
//! rvsctl with them is reported without them; a partially masked VLAN PCP
//! is dropped likewise. Tunnel metadata: `TUNNEL_ID` (basic class) and,
//! as OVS sends them in OpenFlow 1.3, the Nicira NXM_NX class (0x0001)
//! `TUN_IPV4_SRC` (31), `TUN_IPV4_DST` (32) and `TUN_FLAGS` (104); no
//! other NXM or experimenter fields, no MPLS, PBB, IPv6 ND or extension
//! headers (BAD_FIELD). The 1.0 match has no tunnel fields: they are left
//! out of 1.0 replies like metadata.

use super::error::{bad_match, DecodeError, ErrorType, OfpError};
use super::wire::{pad8, patch_u16, put_u16, put_u32, put_u8, Reader};
use super::{port_from_of13, port_to_of13};
use flowtable::field::{Field, Prereq};
use flowtable::key::{FlowKey, TUN_FLAG_OAM, VLAN_PRESENT};
use flowtable::{Match, PortNo};

/// `ofp_match.type` for OXM matches.
pub const OFPMT_OXM: u16 = 1;
/// `ofp_match.type` of the OpenFlow 1.1 standard match (rejected).
pub const OFPMT_STANDARD: u16 = 0;
/// The OpenFlow basic OXM class.
pub const OFPXMC_OPENFLOW_BASIC: u16 = 0x8000;
/// Nicira's NXM_NX class (`NXM1`), which OVS uses in OpenFlow 1.3 for
/// fields without a basic OXM (tunnel endpoints and flags).
pub const OFPXMC_NXM_1: u16 = 0x0001;

/// NXM_NX field numbers (class [`OFPXMC_NXM_1`]) rvs supports.
#[allow(missing_docs)]
pub mod nxm {
    pub const TUN_IPV4_SRC: u8 = 31;
    pub const TUN_IPV4_DST: u8 = 32;
    pub const TUN_FLAGS: u8 = 104;
}

/// OXM field numbers of the OpenFlow basic class.
#[allow(missing_docs)]
pub mod field {
    pub const IN_PORT: u8 = 0;
    pub const IN_PHY_PORT: u8 = 1;
    pub const METADATA: u8 = 2;
    pub const ETH_DST: u8 = 3;
    pub const ETH_SRC: u8 = 4;
    pub const ETH_TYPE: u8 = 5;
    pub const VLAN_VID: u8 = 6;
    pub const VLAN_PCP: u8 = 7;
    pub const IP_DSCP: u8 = 8;
    pub const IP_ECN: u8 = 9;
    pub const IP_PROTO: u8 = 10;
    pub const IPV4_SRC: u8 = 11;
    pub const IPV4_DST: u8 = 12;
    pub const TCP_SRC: u8 = 13;
    pub const TCP_DST: u8 = 14;
    pub const UDP_SRC: u8 = 15;
    pub const UDP_DST: u8 = 16;
    pub const SCTP_SRC: u8 = 17;
    pub const SCTP_DST: u8 = 18;
    pub const ICMPV4_TYPE: u8 = 19;
    pub const ICMPV4_CODE: u8 = 20;
    pub const ARP_OP: u8 = 21;
    pub const ARP_SPA: u8 = 22;
    pub const ARP_TPA: u8 = 23;
    pub const ARP_SHA: u8 = 24;
    pub const ARP_THA: u8 = 25;
    pub const IPV6_SRC: u8 = 26;
    pub const IPV6_DST: u8 = 27;
    pub const IPV6_FLABEL: u8 = 28;
    pub const ICMPV6_TYPE: u8 = 29;
    pub const ICMPV6_CODE: u8 = 30;
    pub const TUNNEL_ID: u8 = 38;
}

/// What one OXM field is in rvs terms.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OxmInfo {
    /// OXM class ([`OFPXMC_OPENFLOW_BASIC`] or [`OFPXMC_NXM_1`]).
    pub(crate) class: u16,
    /// OXM field number.
    pub(crate) oxm: u8,
    /// The flow-key field it reads and writes.
    pub(crate) field: Field,
    /// Payload width in bytes.
    pub(crate) width: usize,
    /// May carry a mask.
    pub(crate) maskable: bool,
    /// Largest legal value.
    pub(crate) max: u128,
    /// Prerequisite on the rest of the match.
    pub(crate) prereq: Prereq,
}

const fn info(
    oxm: u8,
    field: Field,
    width: usize,
    maskable: bool,
    max: u128,
    prereq: Prereq,
) -> OxmInfo {
    info_c(
        OFPXMC_OPENFLOW_BASIC,
        oxm,
        field,
        width,
        maskable,
        max,
        prereq,
    )
}

const fn info_c(
    class: u16,
    oxm: u8,
    field: Field,
    width: usize,
    maskable: bool,
    max: u128,
    prereq: Prereq,
) -> OxmInfo {
    OxmInfo {
        class,
        oxm,
        field,
        width,
        maskable,
        max,
        prereq,
    }
}

const U8: u128 = 0xff;
const U16: u128 = 0xffff;
const U32: u128 = 0xffff_ffff;
const U48: u128 = 0xffff_ffff_ffff;
const U64: u128 = u64::MAX as u128;

/// Every OXM field rvs supports (`IN_PORT` is converted separately).
pub(crate) const OXM_FIELDS: &[OxmInfo] = {
    use field::*;
    use Prereq as P;
    &[
        info(IN_PORT, Field::InPort, 4, false, U32, P::None),
        info(METADATA, Field::Metadata, 8, true, U64, P::None),
        info(ETH_DST, Field::DlDst, 6, true, U48, P::None),
        info(ETH_SRC, Field::DlSrc, 6, true, U48, P::None),
        info(ETH_TYPE, Field::DlType, 2, false, U16, P::None),
        info(VLAN_VID, Field::VlanVid, 2, true, 0x1fff, P::None),
        info(VLAN_PCP, Field::VlanPcp, 1, false, 7, P::None),
        info(IP_DSCP, Field::IpDscp, 1, false, 63, P::Ip),
        info(IP_ECN, Field::NwEcn, 1, false, 3, P::Ip),
        info(IP_PROTO, Field::NwProto, 1, false, U8, P::Ip),
        info(IPV4_SRC, Field::NwSrc, 4, true, U32, P::Ipv4),
        info(IPV4_DST, Field::NwDst, 4, true, U32, P::Ipv4),
        info(TCP_SRC, Field::TpSrc, 2, true, U16, P::Tcp),
        info(TCP_DST, Field::TpDst, 2, true, U16, P::Tcp),
        info(UDP_SRC, Field::TpSrc, 2, true, U16, P::Udp),
        info(UDP_DST, Field::TpDst, 2, true, U16, P::Udp),
        info(SCTP_SRC, Field::TpSrc, 2, true, U16, P::Sctp),
        info(SCTP_DST, Field::TpDst, 2, true, U16, P::Sctp),
        info(ICMPV4_TYPE, Field::IcmpType, 1, false, U8, P::Icmp4),
        info(ICMPV4_CODE, Field::IcmpCode, 1, false, U8, P::Icmp4),
        info(ARP_OP, Field::ArpOp, 2, false, U8, P::Arp),
        info(ARP_SPA, Field::ArpSpa, 4, true, U32, P::Arp),
        info(ARP_TPA, Field::ArpTpa, 4, true, U32, P::Arp),
        info(ARP_SHA, Field::ArpSha, 6, true, U48, P::Arp),
        info(ARP_THA, Field::ArpTha, 6, true, U48, P::Arp),
        info(IPV6_SRC, Field::Ipv6Src, 16, true, u128::MAX, P::Ipv6),
        info(IPV6_DST, Field::Ipv6Dst, 16, true, u128::MAX, P::Ipv6),
        info(IPV6_FLABEL, Field::Ipv6Label, 4, true, 0xf_ffff, P::Ipv6),
        info(ICMPV6_TYPE, Field::IcmpType, 1, false, U8, P::Icmp6),
        info(ICMPV6_CODE, Field::IcmpCode, 1, false, U8, P::Icmp6),
        info(TUNNEL_ID, Field::TunId, 8, true, U64, P::None),
        info_c(NX, nxm::TUN_IPV4_SRC, Field::TunSrc, 4, true, U32, P::None),
        info_c(NX, nxm::TUN_IPV4_DST, Field::TunDst, 4, true, U32, P::None),
        // 16 bits on the wire; only the oam bit (1) exists, as in OVS.
        info_c(NX, nxm::TUN_FLAGS, Field::TunFlags, 2, true, 1, P::None),
    ]
};
const NX: u16 = OFPXMC_NXM_1;

/// The OXM info of field `oxm` of `class`.
pub(crate) fn oxm_info_c(class: u16, oxm: u8) -> Option<&'static OxmInfo> {
    OXM_FIELDS.iter().find(|i| i.class == class && i.oxm == oxm)
}

/// An OXM header word.
pub(crate) fn oxm_header(class: u16, oxm: u8, hasmask: bool, len: usize) -> u32 {
    (u32::from(class) << 16) | u32::from(oxm) << 9 | u32::from(hasmask) << 8 | (len as u32 & 0xff)
}

fn bm(code: u16, what: impl Into<String>) -> DecodeError {
    DecodeError::new(OfpError::new(ErrorType::BadMatch, code), what)
}

fn be_value(b: &[u8]) -> u128 {
    b.iter().fold(0u128, |a, x| a << 8 | u128::from(*x))
}

/// One OXM TLV read off the wire.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawOxm {
    /// Info of the (supported) field.
    pub(crate) info: &'static OxmInfo,
    /// Value, right aligned.
    pub(crate) value: u128,
    /// Mask, all ones of the width when absent.
    pub(crate) mask: Option<u128>,
}

/// Reads one OXM TLV (header and payload). Unsupported fields are
/// BAD_FIELD; `err_type` chooses the error type for length problems.
pub(crate) fn read_oxm(r: &mut Reader<'_>) -> Result<RawOxm, DecodeError> {
    let h = r.u32("oxm header")?;
    let class = (h >> 16) as u16;
    let fnum = ((h >> 9) & 0x7f) as u8;
    let hasmask = h & 0x100 != 0;
    let len = (h & 0xff) as usize;
    let payload = r
        .take(len, "oxm payload")
        .map_err(|_| bm(bad_match::BAD_LEN, "OXM payload runs past the match"))?;
    if class != OFPXMC_OPENFLOW_BASIC && class != OFPXMC_NXM_1 {
        return Err(bm(
            bad_match::BAD_FIELD,
            format!("OXM class {class:#06x} is not supported"),
        ));
    }
    let Some(info) = oxm_info_c(class, fnum) else {
        return Err(bm(
            bad_match::BAD_FIELD,
            format!("OXM field {fnum} of class {class:#06x} is not supported"),
        ));
    };
    let want = info.width * if hasmask { 2 } else { 1 };
    if len != want {
        return Err(bm(
            bad_match::BAD_LEN,
            format!("OXM field {fnum} has length {len}, expected {want}"),
        ));
    }
    if hasmask && !info.maskable {
        return Err(bm(
            bad_match::BAD_MASK,
            format!("OXM field {fnum} cannot be masked"),
        ));
    }
    let value = be_value(&payload[..info.width]);
    let mask = hasmask.then(|| be_value(&payload[info.width..]));
    Ok(RawOxm { info, value, mask })
}

/// Reads an `ofp_match` (with its padding) into a [`Match`].
pub(crate) fn decode_oxm_match(r: &mut Reader<'_>) -> Result<Match, DecodeError> {
    let mtype = r
        .u16("match type")
        .map_err(|_| bm(bad_match::BAD_LEN, "truncated match"))?;
    let mlen = usize::from(
        r.u16("match length")
            .map_err(|_| bm(bad_match::BAD_LEN, "truncated match"))?,
    );
    if mtype != OFPMT_OXM {
        return Err(bm(
            bad_match::BAD_TYPE,
            format!("match type {mtype} is not OXM"),
        ));
    }
    if mlen < 4 {
        return Err(bm(bad_match::BAD_LEN, format!("match length {mlen}")));
    }
    let body = r
        .take(mlen - 4, "match")
        .map_err(|_| bm(bad_match::BAD_LEN, "match runs past the message"))?;
    let padded = mlen.next_multiple_of(8) - mlen;
    r.take(padded, "match padding")
        .map_err(|_| bm(bad_match::BAD_LEN, "match padding runs past the message"))?;
    let mut br = Reader::new(body, OfpError::new(ErrorType::BadMatch, bad_match::BAD_LEN));
    let mut oxms = Vec::new();
    while br.remaining() > 0 {
        oxms.push(read_oxm(&mut br)?);
    }
    oxms_to_match(&oxms)
}

/// Builds a match from OXM TLVs, checking duplicates, values and
/// prerequisites.
pub(crate) fn oxms_to_match(oxms: &[RawOxm]) -> Result<Match, DecodeError> {
    let (mut k, mut m) = (FlowKey::ZERO, FlowKey::ZERO);
    let mut seen: Vec<(u16, u8)> = Vec::with_capacity(oxms.len());
    let mut vlan_present = false;
    let mut has_pcp = false;
    for o in oxms {
        let id = (o.info.class, o.info.oxm);
        if seen.contains(&id) {
            return Err(bm(
                bad_match::DUP_FIELD,
                format!("OXM field {} given twice", o.info.oxm),
            ));
        }
        seen.push(id);
        let full = if o.info.width == 16 {
            u128::MAX
        } else {
            (1u128 << (o.info.width * 8)) - 1
        };
        let mask = o.mask.unwrap_or(full);
        if o.value & !mask != 0 {
            return Err(bm(
                bad_match::BAD_WILDCARDS,
                format!("OXM field {} has value bits outside its mask", o.info.oxm),
            ));
        }
        if o.value > o.info.max || mask > o.info.max && o.mask.is_some() {
            return Err(bm(
                bad_match::BAD_VALUE,
                format!("OXM field {} value {:#x} out of range", o.info.oxm, o.value),
            ));
        }
        let basic = o.info.class == OFPXMC_OPENFLOW_BASIC;
        match o.info.oxm {
            field::IN_PORT if basic => {
                let Some(p) = u32::try_from(o.value).ok().and_then(port_from_of13) else {
                    return Err(bm(
                        bad_match::BAD_VALUE,
                        format!("in_port {:#x} is not a valid port", o.value),
                    ));
                };
                Field::InPort.set_masked(&mut k, &mut m, u128::from(p.0), 0xffff);
            }
            field::VLAN_VID if basic => {
                vlan_present =
                    mask & u128::from(VLAN_PRESENT) != 0 && o.value & u128::from(VLAN_PRESENT) != 0;
                if o.value == 0 && mask & 0x1fff == 0x1fff {
                    // OFPVID_NONE: untagged, which rvs (and OpenFlow 1.0's
                    // dl_vlan=0xffff) writes as vlan_tci=0/0xffff.
                    Field::VlanTci.set_masked(&mut k, &mut m, 0, 0xffff);
                } else {
                    Field::VlanVid.set_masked(&mut k, &mut m, o.value, mask);
                }
            }
            field::VLAN_PCP if basic => {
                has_pcp = true;
                o.info.field.set_masked(&mut k, &mut m, o.value, mask);
            }
            _ => o.info.field.set_masked(&mut k, &mut m, o.value, mask),
        }
    }
    if has_pcp && !vlan_present {
        return Err(bm(
            bad_match::BAD_PREREQ,
            "VLAN_PCP needs VLAN_VID with OFPVID_PRESENT",
        ));
    }
    let out = Match::new(k, m);
    for o in oxms {
        if !o.info.prereq.is_met(&out) {
            return Err(bm(
                bad_match::BAD_PREREQ,
                format!(
                    "OXM field {} needs {} in the match",
                    o.info.oxm,
                    o.info.prereq.describe()
                ),
            ));
        }
    }
    Ok(out)
}

fn put_be(b: &mut Vec<u8>, v: u128, width: usize) {
    b.extend_from_slice(&v.to_be_bytes()[16 - width..]);
}

/// Writes one basic-class OXM TLV; `mask` is omitted when it is all ones.
pub(crate) fn put_oxm(b: &mut Vec<u8>, oxm: u8, value: u128, mask: Option<u128>) {
    put_oxm_c(b, OFPXMC_OPENFLOW_BASIC, oxm, value, mask);
}

/// [`put_oxm`] for field `oxm` of `class`.
pub(crate) fn put_oxm_c(b: &mut Vec<u8>, class: u16, oxm: u8, value: u128, mask: Option<u128>) {
    let Some(i) = oxm_info_c(class, oxm) else {
        return;
    };
    let full = if i.width == 16 {
        u128::MAX
    } else {
        (1u128 << (i.width * 8)) - 1
    };
    let mask = mask.filter(|m| *m & full != full && i.maskable);
    put_u32(
        b,
        oxm_header(
            class,
            oxm,
            mask.is_some(),
            i.width * (1 + usize::from(mask.is_some())),
        ),
    );
    put_be(b, value, i.width);
    if let Some(m) = mask {
        put_be(b, m, i.width);
    }
}

/// The OXM TLVs of `m`, in the order OVS writes them (`nx_put_raw`), so
/// that re-encoding what `ovs-ofctl` sent gives the same bytes: in_port,
/// Ethernet, VLAN, then IPv4/IPv6 (addresses, DSCP, ECN, flow label,
/// protocol, L4) or ARP, then the tunnel (`TUNNEL_ID`, then NXM
/// `TUN_FLAGS`, `TUN_IPV4_SRC`, `TUN_IPV4_DST`), and metadata last.
/// `TUN_FLAGS` always carries its mask (0x0001: the one flag of 16 bits),
/// as OVS sends it.
pub(crate) fn encode_oxms(b: &mut Vec<u8>, m: &Match) {
    use field::*;
    let (k, mk) = (m.key(), m.mask());
    let emit = |b: &mut Vec<u8>, oxm: u8, f: Field, maskbits: u128| {
        let (v, msk) = f.get_masked(m);
        if msk != 0 {
            // A partial mask carries only the field's own bits (a 20-bit
            // flow label's mask is not 0xfff.....).
            let full = msk & maskbits == maskbits;
            put_oxm(b, oxm, v, (!full).then_some(msk & maskbits));
        }
    };
    if mk.in_port != 0 {
        put_oxm(
            b,
            IN_PORT,
            u128::from(port_to_of13(PortNo(k.in_port))),
            None,
        );
    }
    emit(b, ETH_SRC, Field::DlSrc, U48);
    emit(b, ETH_DST, Field::DlDst, U48);
    if mk.dl_type != 0 {
        put_oxm(b, ETH_TYPE, u128::from(k.dl_type), None);
    }
    let vid_mask = mk.vlan_tci & 0x1fff;
    let pcp = mk.vlan_tci & 0xe000 == 0xe000 && k.vlan_tci & VLAN_PRESENT != 0;
    if vid_mask != 0 {
        put_oxm(
            b,
            VLAN_VID,
            u128::from(k.vlan_tci & 0x1fff),
            // OXM_OF_VLAN_VID is 13 bits: its mask never has PCP bits.
            (vid_mask != 0x1fff).then_some(u128::from(vid_mask)),
        );
    }
    if pcp {
        put_oxm(b, VLAN_PCP, u128::from(k.vlan_tci >> 13), None);
    }
    let ty = (mk.dl_type == 0xffff).then_some(k.dl_type);
    match ty {
        Some(0x0800 | 0x86dd) => {
            let v6 = ty == Some(0x86dd);
            if v6 {
                emit(b, IPV6_SRC, Field::Ipv6Src, u128::MAX);
                emit(b, IPV6_DST, Field::Ipv6Dst, u128::MAX);
            } else {
                emit(b, IPV4_SRC, Field::NwSrc, U32);
                emit(b, IPV4_DST, Field::NwDst, U32);
            }
            if mk.nw_tos & 0xfc != 0 {
                put_oxm(b, IP_DSCP, u128::from(k.nw_tos >> 2), None);
            }
            if mk.nw_tos & 0x03 != 0 {
                put_oxm(b, IP_ECN, u128::from(k.nw_tos & 3), None);
            }
            if v6 {
                emit(b, IPV6_FLABEL, Field::Ipv6Label, 0xf_ffff);
            }
            if mk.nw_proto != 0 {
                put_oxm(b, IP_PROTO, u128::from(k.nw_proto), None);
                let l4 = match k.nw_proto {
                    6 => Some((TCP_SRC, TCP_DST)),
                    17 => Some((UDP_SRC, UDP_DST)),
                    132 => Some((SCTP_SRC, SCTP_DST)),
                    _ => None,
                };
                let icmp = match k.nw_proto {
                    1 if !v6 => Some((ICMPV4_TYPE, ICMPV4_CODE)),
                    58 if v6 => Some((ICMPV6_TYPE, ICMPV6_CODE)),
                    _ => None,
                };
                if let Some((src, dst)) = l4 {
                    emit(b, src, Field::TpSrc, U16);
                    emit(b, dst, Field::TpDst, U16);
                } else if let Some((ty, code)) = icmp {
                    if mk.tp_src != 0 {
                        put_oxm(b, ty, u128::from(k.tp_src & 0xff), None);
                    }
                    if mk.tp_dst != 0 {
                        put_oxm(b, code, u128::from(k.tp_dst & 0xff), None);
                    }
                }
            }
        }
        Some(0x0806 | 0x8035) => {
            if mk.nw_proto != 0 {
                put_oxm(b, ARP_OP, u128::from(k.nw_proto), None);
            }
            emit(b, ARP_SPA, Field::ArpSpa, U32);
            emit(b, ARP_TPA, Field::ArpTpa, U32);
            emit(b, ARP_SHA, Field::ArpSha, U48);
            emit(b, ARP_THA, Field::ArpTha, U48);
        }
        _ => {}
    }
    emit(b, TUNNEL_ID, Field::TunId, U64);
    if mk.tun_flags & TUN_FLAG_OAM != 0 {
        put_oxm_c(
            b,
            OFPXMC_NXM_1,
            nxm::TUN_FLAGS,
            u128::from(k.tun_flags & TUN_FLAG_OAM),
            Some(u128::from(TUN_FLAG_OAM)),
        );
    }
    let (v, msk) = Field::TunSrc.get_masked(m);
    if msk != 0 {
        put_oxm_c(b, OFPXMC_NXM_1, nxm::TUN_IPV4_SRC, v, Some(msk));
    }
    let (v, msk) = Field::TunDst.get_masked(m);
    if msk != 0 {
        put_oxm_c(b, OFPXMC_NXM_1, nxm::TUN_IPV4_DST, v, Some(msk));
    }
    emit(b, METADATA, Field::Metadata, U64);
}

/// Writes `m` as an OXM `ofp_match`, padded to 8 bytes.
pub fn encode_oxm_match(b: &mut Vec<u8>, m: &Match) {
    let start = b.len();
    put_u16(b, OFPMT_OXM);
    put_u16(b, 0);
    encode_oxms(b, m);
    let len = b.len() - start;
    patch_u16(b, start + 2, super::wire::len16(len));
    pad8(b);
}

/// OpenFlow 1.0 `ofp_match` wildcard bits.
#[allow(missing_docs)]
pub mod wc10 {
    pub const IN_PORT: u32 = 1 << 0;
    pub const DL_VLAN: u32 = 1 << 1;
    pub const DL_SRC: u32 = 1 << 2;
    pub const DL_DST: u32 = 1 << 3;
    pub const DL_TYPE: u32 = 1 << 4;
    pub const NW_PROTO: u32 = 1 << 5;
    pub const TP_SRC: u32 = 1 << 6;
    pub const TP_DST: u32 = 1 << 7;
    pub const NW_SRC_SHIFT: u32 = 8;
    pub const NW_DST_SHIFT: u32 = 14;
    pub const DL_VLAN_PCP: u32 = 1 << 20;
    pub const NW_TOS: u32 = 1 << 21;
    pub const ALL: u32 = (1 << 22) - 1;
}

/// Size of an OpenFlow 1.0 `ofp_match`.
pub const OFP10_MATCH_LEN: usize = 40;
/// `dl_vlan` value meaning "no VLAN tag" in OpenFlow 1.0.
pub const OFP10_VLAN_NONE: u16 = 0xffff;

fn prefix_mask(wildcard_bits: u32) -> u32 {
    if wildcard_bits >= 32 {
        0
    } else {
        u32::MAX << wildcard_bits
    }
}

/// Reads a 40-byte OpenFlow 1.0 `ofp_match`.
pub(crate) fn decode_of10_match(r: &mut Reader<'_>) -> Result<Match, DecodeError> {
    let w = r.u32("match wildcards")?;
    let in_port = r.u16("in_port")?;
    let dl_src: [u8; 6] = r.array("dl_src")?;
    let dl_dst: [u8; 6] = r.array("dl_dst")?;
    let dl_vlan = r.u16("dl_vlan")?;
    let pcp = r.u8("dl_vlan_pcp")?;
    r.skip(1, "pad")?;
    let dl_type = r.u16("dl_type")?;
    let nw_tos = r.u8("nw_tos")?;
    let nw_proto = r.u8("nw_proto")?;
    r.skip(2, "pad")?;
    let nw_src = r.u32("nw_src")?;
    let nw_dst = r.u32("nw_dst")?;
    let tp_src = r.u16("tp_src")?;
    let tp_dst = r.u16("tp_dst")?;
    let (mut k, mut m) = (FlowKey::ZERO, FlowKey::ZERO);
    let on = |bit: u32| w & bit == 0;
    if on(wc10::IN_PORT) {
        Field::InPort.set_masked(&mut k, &mut m, u128::from(in_port), 0xffff);
    }
    if on(wc10::DL_SRC) {
        Field::DlSrc.set_masked(&mut k, &mut m, be_value(&dl_src), U48);
    }
    if on(wc10::DL_DST) {
        Field::DlDst.set_masked(&mut k, &mut m, be_value(&dl_dst), U48);
    }
    if on(wc10::DL_VLAN) && dl_vlan == OFP10_VLAN_NONE {
        Field::VlanTci.set_masked(&mut k, &mut m, 0, 0xffff);
    } else {
        if on(wc10::DL_VLAN) {
            Field::DlVlan.set_masked(&mut k, &mut m, u128::from(dl_vlan & 0xfff), 0xfff);
        }
        if on(wc10::DL_VLAN_PCP) {
            Field::DlVlanPcp.set_masked(&mut k, &mut m, u128::from(pcp & 7), 7);
        }
    }
    if on(wc10::DL_TYPE) {
        Field::DlType.set_masked(&mut k, &mut m, u128::from(dl_type), U16);
    }
    let ty = on(wc10::DL_TYPE).then_some(dl_type);
    let ip = ty == Some(0x0800);
    let arp = matches!(ty, Some(0x0806 | 0x8035));
    if ip && on(wc10::NW_TOS) {
        Field::NwTos.set_masked(&mut k, &mut m, u128::from(nw_tos & 0xfc), 0xfc);
    }
    if (ip || arp) && on(wc10::NW_PROTO) {
        Field::NwProto.set_masked(&mut k, &mut m, u128::from(nw_proto), U8);
    }
    if ip || arp {
        let sm = prefix_mask((w >> wc10::NW_SRC_SHIFT) & 0x3f);
        let dm = prefix_mask((w >> wc10::NW_DST_SHIFT) & 0x3f);
        Field::NwSrc.set_masked(&mut k, &mut m, u128::from(nw_src), u128::from(sm));
        Field::NwDst.set_masked(&mut k, &mut m, u128::from(nw_dst), u128::from(dm));
    }
    let proto = (ip && on(wc10::NW_PROTO)).then_some(nw_proto);
    match proto {
        Some(6 | 17 | 132) => {
            if on(wc10::TP_SRC) {
                Field::TpSrc.set_masked(&mut k, &mut m, u128::from(tp_src), U16);
            }
            if on(wc10::TP_DST) {
                Field::TpDst.set_masked(&mut k, &mut m, u128::from(tp_dst), U16);
            }
        }
        Some(1) => {
            if on(wc10::TP_SRC) {
                Field::IcmpType.set_masked(&mut k, &mut m, u128::from(tp_src & 0xff), U8);
            }
            if on(wc10::TP_DST) {
                Field::IcmpCode.set_masked(&mut k, &mut m, u128::from(tp_dst & 0xff), U8);
            }
        }
        _ => {}
    }
    Ok(Match::new(k, m))
}

/// Writes `m` as a 40-byte OpenFlow 1.0 `ofp_match`. Fields 1.0 cannot
/// express (IPv6, ARP hardware addresses, metadata, ECN, partial masks
/// other than IPv4 prefixes) are left out, i.e. wildcarded.
pub fn encode_of10_match(b: &mut Vec<u8>, m: &Match) {
    let (k, mk) = (m.key(), m.mask());
    let mut w = wc10::ALL;
    let mut clear = |bit: u32, cond: bool| {
        if cond {
            w &= !bit;
        }
    };
    clear(wc10::IN_PORT, mk.in_port != 0);
    clear(wc10::DL_SRC, mk.dl_src == [0xff; 6]);
    clear(wc10::DL_DST, mk.dl_dst == [0xff; 6]);
    let untagged = mk.vlan_tci == 0xffff && k.vlan_tci == 0
        || mk.vlan_tci & 0x1000 != 0 && k.vlan_tci & 0x1000 == 0;
    let dl_vlan = if untagged {
        // OVS also clears the PCP wildcard here.
        clear(wc10::DL_VLAN, true);
        clear(wc10::DL_VLAN_PCP, true);
        OFP10_VLAN_NONE
    } else {
        clear(wc10::DL_VLAN, mk.vlan_tci & 0x0fff == 0x0fff);
        clear(wc10::DL_VLAN_PCP, mk.vlan_tci & 0xe000 == 0xe000);
        k.vlan_tci & 0x0fff
    };
    clear(wc10::DL_TYPE, mk.dl_type != 0);
    clear(wc10::NW_TOS, mk.nw_tos & 0xfc == 0xfc);
    clear(wc10::NW_PROTO, mk.nw_proto != 0);
    clear(wc10::TP_SRC, mk.tp_src != 0);
    clear(wc10::TP_DST, mk.tp_dst != 0);
    let src_bits = 32 - mk.nw_src.leading_ones();
    let dst_bits = 32 - mk.nw_dst.leading_ones();
    w = (w & !(0x3f << wc10::NW_SRC_SHIFT) & !(0x3f << wc10::NW_DST_SHIFT))
        | src_bits << wc10::NW_SRC_SHIFT
        | dst_bits << wc10::NW_DST_SHIFT;
    put_u32(b, w);
    put_u16(b, k.in_port as u16);
    b.extend_from_slice(&k.dl_src);
    b.extend_from_slice(&k.dl_dst);
    put_u16(b, dl_vlan);
    put_u8(b, (k.vlan_tci >> 13) as u8);
    put_u8(b, 0);
    put_u16(b, k.dl_type);
    put_u8(b, k.nw_tos & 0xfc);
    put_u8(b, k.nw_proto);
    put_u16(b, 0);
    put_u32(b, k.nw_src & prefix_mask(src_bits));
    put_u32(b, k.nw_dst & prefix_mask(dst_bits));
    put_u16(b, k.tp_src);
    put_u16(b, k.tp_dst);
}
