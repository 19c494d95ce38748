//! Matchable fields: names, widths, prerequisites, and where each lives in a
//! [`FlowKey`](crate::FlowKey).
//!
//! (Being filled in by the flow-syntax work: name table, prerequisites,
//! get/set of values in a key.)

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
}
