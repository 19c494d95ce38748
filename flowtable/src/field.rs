//! Matchable fields: names, widths, prerequisites, and where each lives in a
//! [`FlowKey`].
//!
//! # What?
//! [`Field`] names one field as `ovs-fields(7)` does. For each field this
//! module knows its canonical name and aliases ([`Field::name`],
//! [`Field::lookup`]), the kind of value it holds ([`ValueKind`], bit width),
//! whether it may be masked or written by `set_field`, its prerequisite
//! ([`Prereq`]) and how to read and write its value and mask in a
//! [`FlowKey`] pair ([`Field::get_masked`], [`Field::set_masked`]).
//!
//! # Design
//! Values cross this API as `u128`, right aligned: a MAC is its 48 low bits,
//! an IPv4 address 32, an IPv6 address all 128, `dl_vlan` the 12-bit VID.
//! Several fields share storage, as in OVS: `dl_vlan`, `dl_vlan_pcp`,
//! `vlan_vid`, `vlan_pcp` are views of `vlan_tci`; `nw_tos`, `ip_dscp` and
//! `nw_ecn` of the TOS byte; `arp_op`/`arp_spa`/`arp_tpa` of
//! `nw_proto`/`nw_src`/`nw_dst`; `icmp_type`/`icmp_code` of
//! `tp_src`/`tp_dst`. Setting `dl_vlan` or a PCP field also sets the
//! "tag present" bit (0x1000) in value and mask, exactly as OVS does.
//!
//! A name may carry a stricter prerequisite than its field: `tcp_src` is
//! [`Field::TpSrc`] but needs TCP, while `tp_src` accepts TCP, UDP or SCTP;
//! [`Field::lookup`] returns the prerequisite of the name used.
//!
//! # Invariants
//! `set_masked` never touches bits outside the field's storage (plus the
//! present bit for VLAN views), and stores `value & mask`.
//!
//! # Thread-safety
//! Pure functions over `Copy` data.
//!
//! Tunnel metadata (`tun_id`, `tun_src`, `tun_dst`, `tun_flags`) is not
//! in the frame: matching reads what the receiving tunnel port put in the
//! key, and `set_field` writes only the key (see `rewrite`). `tun_flags`
//! is one bit wide (`oam`), as OVS's flow syntax allows no other.
//!
//! # Limits
//! Only the fields of [`FlowKey`]; no registers, IPv6 tunnel endpoints,
//! Geneve options, MPLS, conntrack.

use crate::flowmatch::Match;
use crate::key::{FlowKey, TUN_FLAG_OAM, VLAN_PRESENT};

/// A named field, as `ovs-fields(7)` calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// `in_port`
    InPort,
    /// `metadata`
    Metadata,
    /// `dl_src` / `eth_src`
    DlSrc,
    /// `dl_dst` / `eth_dst`
    DlDst,
    /// `dl_type` / `eth_type`
    DlType,
    /// `vlan_tci`
    VlanTci,
    /// `dl_vlan` (12-bit VID of the outer tag)
    DlVlan,
    /// `dl_vlan_pcp`
    DlVlanPcp,
    /// `vlan_vid` (OF1.3: VID with the present bit 0x1000)
    VlanVid,
    /// `vlan_pcp`
    VlanPcp,
    /// `nw_src` / `ip_src`
    NwSrc,
    /// `nw_dst` / `ip_dst`
    NwDst,
    /// `nw_proto` / `ip_proto`
    NwProto,
    /// `nw_tos` (full TOS byte, DSCP bits only as in OVS)
    NwTos,
    /// `ip_dscp` (6-bit DSCP value)
    IpDscp,
    /// `nw_ecn` / `ip_ecn`
    NwEcn,
    /// `nw_ttl`
    NwTtl,
    /// `ip_frag` / `nw_frag`
    IpFrag,
    /// `arp_op`
    ArpOp,
    /// `arp_spa`
    ArpSpa,
    /// `arp_tpa`
    ArpTpa,
    /// `arp_sha`
    ArpSha,
    /// `arp_tha`
    ArpTha,
    /// `ipv6_src`
    Ipv6Src,
    /// `ipv6_dst`
    Ipv6Dst,
    /// `ipv6_label`
    Ipv6Label,
    /// `tp_src` (and `tcp_src`, `udp_src`, `sctp_src`)
    TpSrc,
    /// `tp_dst` (and `tcp_dst`, `udp_dst`, `sctp_dst`)
    TpDst,
    /// `tcp_flags`
    TcpFlags,
    /// `icmp_type` / `icmpv6_type`
    IcmpType,
    /// `icmp_code` / `icmpv6_code`
    IcmpCode,
    /// `tun_id` / `tunnel_id` (64-bit tunnel key)
    TunId,
    /// `tun_src` (outer IPv4 source of a tunnel packet)
    TunSrc,
    /// `tun_dst` (outer IPv4 destination of a tunnel packet)
    TunDst,
    /// `tun_flags` (only the `oam` bit)
    TunFlags,
}

/// How a field's value is written and read in flow syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// An unsigned integer of this many bits (decimal or `0x` hex).
    Int(u32),
    /// An OpenFlow port: a number or a name (`LOCAL`, `tap0`).
    Port,
    /// A MAC address `xx:xx:xx:xx:xx:xx`.
    Mac,
    /// A dotted-quad IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// Fragment state: `no`, `yes`, `first`, `later`, `not_later`.
    Frag,
    /// TCP flags: a number, `+syn-ack`, or `syn|ack`.
    TcpFlags,
    /// Tunnel flags: `+oam`, `-oam`, `oam`, or a number (`0x1/0x1`).
    TunFlags,
}

/// What a match must already say before a field may be matched or set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prereq {
    /// No prerequisite.
    None,
    /// IPv4 or IPv6 (`ip` or `ipv6`).
    Ip,
    /// IPv4 (`ip`).
    Ipv4,
    /// IPv6 (`ipv6`).
    Ipv6,
    /// IPv4, ARP or RARP (`nw_src` means `arp_spa` for ARP).
    Ipv4OrArp,
    /// IPv4, IPv6, ARP or RARP (`nw_proto` is the opcode for ARP).
    IpOrArp,
    /// ARP or RARP.
    Arp,
    /// TCP, UDP or SCTP over IPv4 or IPv6.
    L4,
    /// TCP over IPv4 or IPv6.
    Tcp,
    /// UDP over IPv4 or IPv6.
    Udp,
    /// SCTP over IPv4 or IPv6.
    Sctp,
    /// ICMP over IPv4, or ICMPv6.
    Icmp,
    /// ICMP over IPv4.
    Icmp4,
    /// ICMPv6.
    Icmp6,
}

const ETH_IP: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_RARP: u16 = 0x8035;
const ETH_IPV6: u16 = 0x86dd;

impl Prereq {
    /// True if `m` satisfies the prerequisite (it pins `dl_type`, and
    /// `nw_proto` where needed, to an accepted value).
    pub fn is_met(self, m: &Match) -> bool {
        let (k, mk) = (m.key(), m.mask());
        let ty = (mk.dl_type == 0xffff).then_some(k.dl_type);
        let proto = (mk.nw_proto == 0xff).then_some(k.nw_proto);
        let ip = matches!(ty, Some(ETH_IP | ETH_IPV6));
        let l4 = |p: &[u8]| ip && proto.is_some_and(|x| p.contains(&x));
        match self {
            Prereq::None => true,
            Prereq::Ip => ip,
            Prereq::Ipv4 => ty == Some(ETH_IP),
            Prereq::Ipv6 => ty == Some(ETH_IPV6),
            Prereq::Ipv4OrArp => matches!(ty, Some(ETH_IP | ETH_ARP | ETH_RARP)),
            Prereq::IpOrArp => matches!(ty, Some(ETH_IP | ETH_IPV6 | ETH_ARP | ETH_RARP)),
            Prereq::Arp => matches!(ty, Some(ETH_ARP | ETH_RARP)),
            Prereq::L4 => l4(&[6, 17, 132]),
            Prereq::Tcp => l4(&[6]),
            Prereq::Udp => l4(&[17]),
            Prereq::Sctp => l4(&[132]),
            Prereq::Icmp => {
                (ty == Some(ETH_IP) && proto == Some(1))
                    || (ty == Some(ETH_IPV6) && proto == Some(58))
            }
            Prereq::Icmp4 => ty == Some(ETH_IP) && proto == Some(1),
            Prereq::Icmp6 => ty == Some(ETH_IPV6) && proto == Some(58),
        }
    }

    /// What the prerequisite asks for, in words ("ip or arp").
    pub fn describe(self) -> &'static str {
        match self {
            Prereq::None => "nothing",
            Prereq::Ip => "ip or ipv6",
            Prereq::Ipv4 => "ip",
            Prereq::Ipv6 => "ipv6",
            Prereq::Ipv4OrArp => "ip or arp",
            Prereq::IpOrArp => "ip, ipv6 or arp",
            Prereq::Arp => "arp or rarp",
            Prereq::L4 => "tcp, udp or sctp (or tcp6, udp6, sctp6)",
            Prereq::Tcp => "tcp or tcp6",
            Prereq::Udp => "udp or udp6",
            Prereq::Sctp => "sctp or sctp6",
            Prereq::Icmp => "icmp or icmp6",
            Prereq::Icmp4 => "icmp",
            Prereq::Icmp6 => "icmp6",
        }
    }

    /// A shorthand that satisfies the prerequisite, for error hints.
    pub fn example(self) -> &'static str {
        match self {
            Prereq::None => "",
            Prereq::Ip | Prereq::Ipv4 | Prereq::Ipv4OrArp | Prereq::IpOrArp => "ip",
            Prereq::Ipv6 => "ipv6",
            Prereq::Arp => "arp",
            Prereq::L4 | Prereq::Tcp => "tcp",
            Prereq::Udp => "udp",
            Prereq::Sctp => "sctp",
            Prereq::Icmp | Prereq::Icmp4 => "icmp",
            Prereq::Icmp6 => "icmp6",
        }
    }
}

/// Every name the parser accepts, with its field and the prerequisite of
/// that name. The first name listed for a field is its canonical name.
const NAMES: &[(&str, Field, Prereq)] = &[
    ("in_port", Field::InPort, Prereq::None),
    ("metadata", Field::Metadata, Prereq::None),
    ("tun_id", Field::TunId, Prereq::None),
    ("tunnel_id", Field::TunId, Prereq::None),
    ("tun_src", Field::TunSrc, Prereq::None),
    ("tun_dst", Field::TunDst, Prereq::None),
    ("tun_flags", Field::TunFlags, Prereq::None),
    ("dl_src", Field::DlSrc, Prereq::None),
    ("eth_src", Field::DlSrc, Prereq::None),
    ("dl_dst", Field::DlDst, Prereq::None),
    ("eth_dst", Field::DlDst, Prereq::None),
    ("dl_type", Field::DlType, Prereq::None),
    ("eth_type", Field::DlType, Prereq::None),
    ("vlan_tci", Field::VlanTci, Prereq::None),
    ("dl_vlan", Field::DlVlan, Prereq::None),
    ("dl_vlan_pcp", Field::DlVlanPcp, Prereq::None),
    ("vlan_vid", Field::VlanVid, Prereq::None),
    ("vlan_pcp", Field::VlanPcp, Prereq::None),
    ("nw_src", Field::NwSrc, Prereq::Ipv4OrArp),
    ("ip_src", Field::NwSrc, Prereq::Ipv4),
    ("nw_dst", Field::NwDst, Prereq::Ipv4OrArp),
    ("ip_dst", Field::NwDst, Prereq::Ipv4),
    ("nw_proto", Field::NwProto, Prereq::IpOrArp),
    ("ip_proto", Field::NwProto, Prereq::Ip),
    ("nw_tos", Field::NwTos, Prereq::Ip),
    ("ip_dscp", Field::IpDscp, Prereq::Ip),
    ("nw_ecn", Field::NwEcn, Prereq::Ip),
    ("ip_ecn", Field::NwEcn, Prereq::Ip),
    ("nw_ttl", Field::NwTtl, Prereq::Ip),
    ("ip_frag", Field::IpFrag, Prereq::Ip),
    ("nw_frag", Field::IpFrag, Prereq::Ip),
    ("arp_op", Field::ArpOp, Prereq::Arp),
    ("arp_spa", Field::ArpSpa, Prereq::Arp),
    ("arp_tpa", Field::ArpTpa, Prereq::Arp),
    ("arp_sha", Field::ArpSha, Prereq::Arp),
    ("arp_tha", Field::ArpTha, Prereq::Arp),
    ("ipv6_src", Field::Ipv6Src, Prereq::Ipv6),
    ("ipv6_dst", Field::Ipv6Dst, Prereq::Ipv6),
    ("ipv6_label", Field::Ipv6Label, Prereq::Ipv6),
    ("tp_src", Field::TpSrc, Prereq::L4),
    ("tcp_src", Field::TpSrc, Prereq::Tcp),
    ("udp_src", Field::TpSrc, Prereq::Udp),
    ("sctp_src", Field::TpSrc, Prereq::Sctp),
    ("tp_dst", Field::TpDst, Prereq::L4),
    ("tcp_dst", Field::TpDst, Prereq::Tcp),
    ("udp_dst", Field::TpDst, Prereq::Udp),
    ("sctp_dst", Field::TpDst, Prereq::Sctp),
    ("tcp_flags", Field::TcpFlags, Prereq::Tcp),
    ("icmp_type", Field::IcmpType, Prereq::Icmp),
    ("icmpv6_type", Field::IcmpType, Prereq::Icmp6),
    ("icmp_code", Field::IcmpCode, Prereq::Icmp),
    ("icmpv6_code", Field::IcmpCode, Prereq::Icmp6),
];

impl Field {
    /// Every field, in declaration order.
    pub const ALL: [Field; 35] = [
        Field::InPort,
        Field::Metadata,
        Field::DlSrc,
        Field::DlDst,
        Field::DlType,
        Field::VlanTci,
        Field::DlVlan,
        Field::DlVlanPcp,
        Field::VlanVid,
        Field::VlanPcp,
        Field::NwSrc,
        Field::NwDst,
        Field::NwProto,
        Field::NwTos,
        Field::IpDscp,
        Field::NwEcn,
        Field::NwTtl,
        Field::IpFrag,
        Field::ArpOp,
        Field::ArpSpa,
        Field::ArpTpa,
        Field::ArpSha,
        Field::ArpTha,
        Field::Ipv6Src,
        Field::Ipv6Dst,
        Field::Ipv6Label,
        Field::TpSrc,
        Field::TpDst,
        Field::TcpFlags,
        Field::IcmpType,
        Field::IcmpCode,
        Field::TunId,
        Field::TunSrc,
        Field::TunDst,
        Field::TunFlags,
    ];

    /// Every accepted name: `(name, field, prerequisite of that name)`.
    pub fn names() -> &'static [(&'static str, Field, Prereq)] {
        NAMES
    }

    /// Looks a field name up (exact, lower case as in OVS), returning the
    /// field and the prerequisite of that spelling.
    ///
    /// ```
    /// use flowtable::field::{Field, Prereq};
    /// assert_eq!(Field::lookup("tcp_dst"), Some((Field::TpDst, Prereq::Tcp)));
    /// assert_eq!(Field::lookup("eth_src"), Some((Field::DlSrc, Prereq::None)));
    /// ```
    pub fn lookup(name: &str) -> Option<(Field, Prereq)> {
        NAMES
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(_, f, p)| (f, p))
    }

    /// Canonical name (the one `ovs-ofctl` prints for matches).
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, f, _)| *f == self)
            .map_or("?", |(n, _, _)| n)
    }

    /// Other accepted names.
    pub fn aliases(self) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(_, f, _)| *f == self)
            .skip(1)
            .map(|(n, _, _)| *n)
            .collect()
    }

    /// Prerequisite of the canonical name.
    pub fn prereq(self) -> Prereq {
        NAMES
            .iter()
            .find(|(_, f, _)| *f == self)
            .map_or(Prereq::None, |(_, _, p)| *p)
    }

    /// The kind of value the field holds.
    pub fn kind(self) -> ValueKind {
        use Field::*;
        match self {
            InPort => ValueKind::Port,
            DlSrc | DlDst | ArpSha | ArpTha => ValueKind::Mac,
            NwSrc | NwDst | ArpSpa | ArpTpa | TunSrc | TunDst => ValueKind::Ipv4,
            Ipv6Src | Ipv6Dst => ValueKind::Ipv6,
            IpFrag => ValueKind::Frag,
            TcpFlags => ValueKind::TcpFlags,
            TunFlags => ValueKind::TunFlags,
            f => ValueKind::Int(f.bits()),
        }
    }

    /// Width of the value in bits.
    pub fn bits(self) -> u32 {
        use Field::*;
        match self {
            InPort => 16,
            Metadata | TunId => 64,
            DlSrc | DlDst | ArpSha | ArpTha => 48,
            DlType | VlanTci | TpSrc | TpDst => 16,
            DlVlan => 12,
            VlanVid => 13,
            DlVlanPcp | VlanPcp => 3,
            NwSrc | NwDst | ArpSpa | ArpTpa | TunSrc | TunDst => 32,
            NwProto | NwTos | NwTtl | ArpOp | IcmpType | IcmpCode => 8,
            IpDscp => 6,
            NwEcn | IpFrag => 2,
            Ipv6Src | Ipv6Dst => 128,
            Ipv6Label => 20,
            TcpFlags => 12,
            // The storage is 16 bits, but only `oam` exists (as in OVS,
            // whose parser rejects other bits).
            TunFlags => 1,
        }
    }

    /// All-ones value of the field's width.
    pub fn full_mask(self) -> u128 {
        if self.bits() == 128 {
            u128::MAX
        } else {
            (1u128 << self.bits()) - 1
        }
    }

    /// True if the field accepts a `/mask` in a match.
    pub fn maskable(self) -> bool {
        use Field::*;
        matches!(
            self,
            Metadata
                | DlSrc
                | DlDst
                | VlanTci
                | VlanVid
                | NwSrc
                | NwDst
                | IpFrag
                | ArpSpa
                | ArpTpa
                | ArpSha
                | ArpTha
                | Ipv6Src
                | Ipv6Dst
                | Ipv6Label
                | TpSrc
                | TpDst
                | TcpFlags
                | TunId
                | TunSrc
                | TunDst
                | TunFlags
        )
    }

    /// True if `set_field` may write the field (OVS marks `eth_type`,
    /// `nw_proto`, `ip_frag` and `tcp_flags` read-only; `vlan_tci`,
    /// `dl_vlan` and `dl_vlan_pcp` are written with `mod_vlan_*` or
    /// `vlan_vid`/`vlan_pcp` here).
    pub fn writable(self) -> bool {
        use Field::*;
        !matches!(
            self,
            DlType | NwProto | IpFrag | TcpFlags | VlanTci | DlVlan | DlVlanPcp
        )
    }

    /// Reads the field's value from a key (right aligned).
    pub fn get(self, key: &FlowKey) -> u128 {
        use Field::*;
        let mac = |m: [u8; 6]| m.iter().fold(0u128, |a, b| a << 8 | u128::from(*b));
        match self {
            InPort => u128::from(key.in_port),
            Metadata => u128::from(key.metadata),
            DlSrc => mac(key.dl_src),
            DlDst => mac(key.dl_dst),
            DlType => u128::from(key.dl_type),
            VlanTci => u128::from(key.vlan_tci),
            DlVlan => u128::from(key.vlan_tci & 0x0fff),
            VlanVid => u128::from(key.vlan_tci & 0x1fff),
            DlVlanPcp | VlanPcp => u128::from(key.vlan_tci >> 13),
            NwSrc | ArpSpa => u128::from(key.nw_src),
            NwDst | ArpTpa => u128::from(key.nw_dst),
            NwProto | ArpOp => u128::from(key.nw_proto),
            NwTos => u128::from(key.nw_tos & 0xfc),
            IpDscp => u128::from(key.nw_tos >> 2),
            NwEcn => u128::from(key.nw_tos & 0x03),
            NwTtl => u128::from(key.nw_ttl),
            IpFrag => u128::from(key.nw_frag & 0x03),
            ArpSha => mac(key.arp_sha),
            ArpTha => mac(key.arp_tha),
            Ipv6Src => u128::from_be_bytes(key.ipv6_src),
            Ipv6Dst => u128::from_be_bytes(key.ipv6_dst),
            Ipv6Label => u128::from(key.ipv6_label & 0x000f_ffff),
            TpSrc | IcmpType => u128::from(key.tp_src),
            TpDst | IcmpCode => u128::from(key.tp_dst),
            TcpFlags => u128::from(key.tcp_flags & 0x0fff),
            TunId => u128::from(key.tun_id),
            TunSrc => u128::from(key.tun_src),
            TunDst => u128::from(key.tun_dst),
            TunFlags => u128::from(key.tun_flags & TUN_FLAG_OAM),
        }
    }

    /// Writes `v` (truncated to the field's width) into the field's bits
    /// of `key`, leaving other bits alone. Unlike [`Field::set_masked`] this
    /// does not set the VLAN present bit.
    pub fn set(self, key: &mut FlowKey, v: u128) {
        use Field::*;
        let v = v & self.full_mask();
        let mac = |v: u128| {
            let b = v.to_be_bytes();
            let mut m = [0u8; 6];
            m.copy_from_slice(&b[10..16]);
            m
        };
        // Truncating casts below are exact: `v` fits the field's width.
        match self {
            InPort => key.in_port = v as u32,
            Metadata => key.metadata = v as u64,
            DlSrc => key.dl_src = mac(v),
            DlDst => key.dl_dst = mac(v),
            DlType => key.dl_type = v as u16,
            VlanTci => key.vlan_tci = v as u16,
            DlVlan => key.vlan_tci = (key.vlan_tci & !0x0fff) | v as u16,
            VlanVid => key.vlan_tci = (key.vlan_tci & !0x1fff) | v as u16,
            DlVlanPcp | VlanPcp => key.vlan_tci = (key.vlan_tci & 0x1fff) | (v as u16) << 13,
            NwSrc | ArpSpa => key.nw_src = v as u32,
            NwDst | ArpTpa => key.nw_dst = v as u32,
            NwProto | ArpOp => key.nw_proto = v as u8,
            NwTos => key.nw_tos = (key.nw_tos & 0x03) | (v as u8 & 0xfc),
            IpDscp => key.nw_tos = (key.nw_tos & 0x03) | (v as u8) << 2,
            NwEcn => key.nw_tos = (key.nw_tos & 0xfc) | v as u8,
            NwTtl => key.nw_ttl = v as u8,
            IpFrag => key.nw_frag = v as u8,
            ArpSha => key.arp_sha = mac(v),
            ArpTha => key.arp_tha = mac(v),
            Ipv6Src => key.ipv6_src = v.to_be_bytes(),
            Ipv6Dst => key.ipv6_dst = v.to_be_bytes(),
            Ipv6Label => key.ipv6_label = v as u32,
            TpSrc => key.tp_src = v as u16,
            TpDst => key.tp_dst = v as u16,
            IcmpType => key.tp_src = v as u16,
            IcmpCode => key.tp_dst = v as u16,
            TcpFlags => key.tcp_flags = v as u16,
            TunId => key.tun_id = v as u64,
            TunSrc => key.tun_src = v as u32,
            TunDst => key.tun_dst = v as u32,
            TunFlags => key.tun_flags = v as u16,
        }
    }

    /// Reads the field's value and mask from a match.
    pub fn get_masked(self, m: &Match) -> (u128, u128) {
        (self.get(m.key()), self.get(m.mask()))
    }

    /// Sets the field's value and mask in a key/mask pair, as OVS's
    /// `mf_set` does: the value is masked; `dl_vlan`, `dl_vlan_pcp` and
    /// `vlan_pcp` also match the VLAN present bit; `icmp_type`/`icmp_code`
    /// match all 16 bits of their storage.
    pub fn set_masked(self, key: &mut FlowKey, mask: &mut FlowKey, v: u128, m: u128) {
        let m = m & self.full_mask();
        self.set(key, v & m);
        self.set(mask, m);
        match self {
            Field::DlVlan | Field::DlVlanPcp | Field::VlanPcp if m != 0 => {
                key.vlan_tci |= VLAN_PRESENT;
                mask.vlan_tci |= VLAN_PRESENT;
            }
            Field::IcmpType if m != 0 => mask.tp_src = 0xffff,
            Field::IcmpCode if m != 0 => mask.tp_dst = 0xffff,
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_a_name_that_looks_up_to_itself() {
        for f in Field::ALL {
            let (g, _) = Field::lookup(f.name()).unwrap();
            assert_eq!(f, g);
        }
        assert_eq!(
            Field::TpSrc.aliases(),
            vec!["tcp_src", "udp_src", "sctp_src"]
        );
    }

    #[test]
    fn dl_vlan_sets_present_bit() {
        let (mut k, mut m) = (FlowKey::ZERO, FlowKey::ZERO);
        Field::DlVlan.set_masked(&mut k, &mut m, 10, 0xfff);
        assert_eq!((k.vlan_tci, m.vlan_tci), (0x100a, 0x1fff));
        Field::DlVlanPcp.set_masked(&mut k, &mut m, 5, 7);
        assert_eq!((k.vlan_tci, m.vlan_tci), (0xb00a, 0xffff));
    }

    #[test]
    fn get_set_roundtrip_on_every_field() {
        for f in Field::ALL {
            let mut k = FlowKey::ZERO;
            let v = 0x5a5a_5a5a_5a5a_5a5a_5a5a_5a5a_5a5a_5a5a & f.full_mask();
            let v = if f == Field::NwTos { v & 0xfc } else { v };
            f.set(&mut k, v);
            assert_eq!(f.get(&k), v, "{f:?}");
        }
    }

    #[test]
    fn prereqs() {
        let mut k = FlowKey::ZERO;
        let mut m = FlowKey::ZERO;
        Field::DlType.set_masked(&mut k, &mut m, 0x0806, 0xffff);
        let arp = Match::new(k, m);
        assert!(Prereq::Ipv4OrArp.is_met(&arp));
        assert!(!Prereq::Ipv4.is_met(&arp));
        assert!(!Prereq::L4.is_met(&arp));
        assert!(!Prereq::Ipv4.is_met(&Match::CATCHALL));
    }
}
