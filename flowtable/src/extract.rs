//! Packet key extraction: one pass over a frame's headers into a [`FlowKey`].
//!
//! # What?
//! [`extract`] parses an Ethernet frame into the [`FlowKey`] the classifier
//! matches on. [`extract_layout`] also returns a [`Layout`]: where the network
//! and transport headers start (so actions can rewrite them in place, see
//! [`crate::rewrite`]) and, if the frame is malformed, why ([`Malformed`]).
//!
//! Parsed, with Open vSwitch's conventions (see [`crate::key`]):
//! - Ethernet II; up to two VLAN tags (TPID 0x8100 or 0x88a8, in either
//!   position). A third tag is not parsed: its TPID becomes `dl_type`.
//!   [`extract_layout_vlans`] parses fewer under a VLAN limit (OVS's
//!   `other_config:vlan-limit`, default 1): with limit 1 only the outer
//!   tag goes into the key, and a double-tagged frame has the inner TPID
//!   as `dl_type` and no L3 fields — the inner tag is payload.
//! - 802.3 length frames: `dl_type` is [`DL_TYPE_NONE`] unless an LLC/SNAP
//!   header `aa aa 03 00 00 00` follows carrying an Ethertype (≥ 0x600),
//!   which then becomes `dl_type`.
//! - ARP and RARP for Ethernet/IPv4 only (htype 1, ptype 0x0800, hlen 6,
//!   plen 4): opcode in `nw_proto` when it fits 8 bits (else 0), `nw_src` /
//!   `nw_dst` the protocol addresses, `arp_sha` / `arp_tha`.
//! - IPv4: addresses, proto, TOS, TTL, fragment bits. Transport headers are
//!   not parsed in later fragments.
//! - IPv6: addresses, traffic class (`nw_tos`), flow label, hop limit
//!   (`nw_ttl`), and the next header after hop-by-hop (0), routing (43),
//!   destination options (60), AH (51, length `(len + 2) * 4`) and fragment
//!   (44) headers. A fragment header with a non-zero offset/flags word sets
//!   [`FRAG_ANY`]; a non-zero offset also [`FRAG_LATER`], and parsing stops
//!   there with `nw_proto` = 44, as OVS does.
//! - TCP (ports, `tcp_flags` = low 12 bits of the offset/flags word), UDP,
//!   SCTP (ports), ICMPv4 in IPv4 and ICMPv6 in IPv6 (type in `tp_src`, code
//!   in `tp_dst`).
//!
//! # Design
//! One straight-line function, no allocation, no recursion. Each header is
//! read through a fixed-size array reference obtained with a checked
//! `get`, so the field reads inside it compile to plain loads with no
//! bounds checks and nothing can panic. The key's fields are local
//! variables, destructured from [`FlowKey::ZERO`] and put back together at
//! the end without `..`, so adding a field to `FlowKey` breaks the build
//! here.
//!
//! A header's fields are filled only once the whole header (including IPv4
//! options and the TCP data offset) is present: a frame cut short yields a
//! key as deep as the complete headers go. The IP length fields bound the
//! parse (Ethernet padding after the IP packet is never read as a header).
//!
//! # Invariants
//! - Never panics, for any input (property-tested with random bytes).
//! - `Layout::malformed` is `None` for a well-formed frame, including one
//!   with Ethernet padding, an unknown Ethertype, an unknown IP protocol, a
//!   non-Ethernet ARP, or a non-first fragment. It is `Some` exactly when a
//!   header the frame claims (by Ethertype, IP protocol or next-header
//!   chain) is cut short or has inconsistent lengths; see [`Malformed`].
//! - `Layout::l3 != 0` iff a complete ARP/IPv4/IPv6 header was parsed;
//!   `Layout::l4 != 0` iff a complete TCP/UDP/SCTP/ICMP/ICMPv6 header was
//!   parsed (then `tp_src`/`tp_dst` come from it).
//!
//! # Thread-safety
//! Pure functions.
//!
//! # Limits
//! Not parsed (fields stay zero, frame not flagged): MPLS, NSH, IGMP, IPv6
//! neighbor discovery targets and link-layer options, tunnels. The IPv4
//! version nibble is not checked (OVS doesn't either); neither are
//! checksums. The IPv6 extension chain loop is bounded by the packet length
//! (each header is at least 8 bytes). IPv4 "BIG TCP" packets (total length
//! 0) and IPv6 jumbograms (payload length 0 with a jumbo option) are
//! flagged, since their length fields do not describe the packet.
//!
//! Differences from OVS's `miniflow_extract`: OVS never flags a frame, it
//! just stops parsing; and it leaves all IP fields unset when the IP length
//! field exceeds the frame, where rvs fills in the complete headers and
//! flags the frame (`Ipv4BadTotalLen` / `Ipv6BadPayloadLen`).

use crate::key::{FlowKey, DL_TYPE_NONE, FRAG_ANY, FRAG_LATER, VLAN_PRESENT};
use crate::types::PortNo;

/// Ethertype of IPv4.
pub const ETH_TYPE_IP: u16 = 0x0800;
/// Ethertype of ARP.
pub const ETH_TYPE_ARP: u16 = 0x0806;
/// Ethertype of RARP.
pub const ETH_TYPE_RARP: u16 = 0x8035;
/// Ethertype of IPv6.
pub const ETH_TYPE_IPV6: u16 = 0x86dd;
/// TPID of an 802.1Q (customer) VLAN tag.
pub const ETH_TYPE_VLAN: u16 = 0x8100;
/// TPID of an 802.1ad (service) VLAN tag.
pub const ETH_TYPE_VLAN_8021AD: u16 = 0x88a8;
/// Smallest value of the Ethernet type/length field that is an Ethertype.
pub const ETH_TYPE_MIN: u16 = 0x0600;
/// Length of an Ethernet header without tags.
pub const ETH_HEADER_LEN: usize = 14;

/// IP protocol numbers used here.
pub mod ipproto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 hop-by-hop options.
    pub const HOPOPTS: u8 = 0;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// IPv6 destination options.
    pub const DSTOPTS: u8 = 60;
    /// Authentication header.
    pub const AH: u8 = 51;
}

/// Why a frame is malformed. Every variant means a header the frame claims
/// is cut short or self-contradictory; the daemon counts these as
/// `malformed` drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Shorter than an Ethernet header (14 bytes). The key holds only
    /// `in_port`.
    Runt,
    /// A VLAN TPID with fewer than 4 bytes (TCI + Ethertype) after it.
    /// `dl_type` is that TPID.
    VlanTruncated,
    /// ARP/RARP shorter than its 8-byte fixed part plus the addresses its
    /// `hlen`/`plen` announce.
    ArpTruncated,
    /// IPv4 with fewer than 20 bytes, or fewer than `IHL * 4` bytes.
    Ipv4Truncated,
    /// IPv4 IHL < 5, or `IHL * 4` larger than the total length.
    Ipv4BadIhl,
    /// IPv4 total length larger than the bytes present, with every header
    /// up to and including the transport one complete (the frame is cut
    /// inside the payload).
    Ipv4BadTotalLen,
    /// IPv6 with fewer than 40 bytes.
    Ipv6Truncated,
    /// IPv6 payload length larger than the bytes present, with every header
    /// complete (the frame is cut inside the payload).
    Ipv6BadPayloadLen,
    /// An IPv6 extension header runs past the end of the packet (payload
    /// length or frame, whichever is shorter). `nw_proto` is the type of
    /// the header that was cut.
    Ipv6ExtChainTruncated,
    /// TCP data offset below 5.
    TcpBadOffset,
    /// The transport header (TCP incl. options, UDP 8, SCTP 12, ICMP 8,
    /// ICMPv6 8 bytes) is cut short in a packet that is not a fragment.
    /// A first fragment too short for it is legal and not flagged.
    L4Truncated,
}

impl Malformed {
    /// A short snake_case name, for counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            Malformed::Runt => "runt",
            Malformed::VlanTruncated => "vlan_truncated",
            Malformed::ArpTruncated => "arp_truncated",
            Malformed::Ipv4Truncated => "ipv4_truncated",
            Malformed::Ipv4BadIhl => "ipv4_bad_ihl",
            Malformed::Ipv4BadTotalLen => "ipv4_bad_total_len",
            Malformed::Ipv6Truncated => "ipv6_truncated",
            Malformed::Ipv6BadPayloadLen => "ipv6_bad_payload_len",
            Malformed::Ipv6ExtChainTruncated => "ipv6_ext_chain_truncated",
            Malformed::TcpBadOffset => "tcp_bad_offset",
            Malformed::L4Truncated => "l4_truncated",
        }
    }
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Kind of the network header at [`Layout::l3`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum L3Kind {
    /// No complete network header that rvs parses (`l3 == 0`).
    #[default]
    None,
    /// Ethernet/IPv4 ARP or RARP (28 bytes).
    Arp,
    /// IPv4, header length `IHL * 4`.
    Ipv4,
    /// IPv6 (40-byte fixed header).
    Ipv6,
}

/// Kind of the transport header at [`Layout::l4`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum L4Kind {
    /// No complete transport header that rvs parses (`l4 == 0`).
    #[default]
    None,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
    /// ICMP (in IPv4).
    Icmp,
    /// ICMPv6 (in IPv6).
    Icmpv6,
}

/// Where the headers of a frame are, for in-place rewrites.
///
/// Offsets are from the first byte of the frame (the destination MAC).
/// After a VLAN push the offsets grow by 4, after a pop they shrink by 4
/// ([`Layout::pushed_vlan`], [`Layout::popped_vlan`]); after any other
/// rewrite they are unchanged.
///
/// ```
/// use flowtable::extract::{extract_layout, L3Kind, L4Kind};
/// use flowtable::PortNo;
/// let mut f = [0u8; 54];
/// f[12..14].copy_from_slice(&[0x08, 0x00]); // IPv4
/// f[14] = 0x45; // version 4, IHL 5
/// f[16..18].copy_from_slice(&40u16.to_be_bytes()); // total length
/// f[23] = 6; // TCP
/// f[46] = 0x50; // data offset 5
/// let (key, layout) = extract_layout(&f, PortNo(1));
/// assert_eq!((layout.l3, layout.l3_kind), (14, L3Kind::Ipv4));
/// assert_eq!((layout.l4, layout.l4_kind), (34, L4Kind::Tcp));
/// assert_eq!(layout.malformed, None);
/// assert_eq!(key.nw_proto, 6);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Layout {
    /// Start of the network header (after VLAN tags and any LLC/SNAP
    /// header); 0 when `l3_kind` is `None`.
    pub l3: u16,
    /// Start of the transport header; 0 when `l4_kind` is `None`.
    pub l4: u16,
    /// What is at `l3`.
    pub l3_kind: L3Kind,
    /// What is at `l4`.
    pub l4_kind: L4Kind,
    /// Number of VLAN tags parsed (0..=2).
    pub n_vlans: u8,
    /// The L4 checksum field holds only the pseudo-header sum, to be
    /// completed by an offloading device (virtio `NEEDS_CSUM` /
    /// `CHECKSUM_PARTIAL`). Never set by extraction; the daemon sets it from
    /// the virtio-net header so that [`crate::rewrite`] updates the field
    /// the right way.
    pub l4_csum_partial: bool,
    /// Why the frame is malformed, if it is.
    pub malformed: Option<Malformed>,
}

impl Layout {
    /// The layout with no headers found.
    pub const NONE: Layout = Layout {
        l3: 0,
        l4: 0,
        l3_kind: L3Kind::None,
        l4_kind: L4Kind::None,
        n_vlans: 0,
        l4_csum_partial: false,
        malformed: None,
    };

    /// The layout after a VLAN tag was pushed: offsets +4, one more tag.
    pub fn pushed_vlan(self) -> Layout {
        Layout {
            l3: if self.l3 == 0 {
                0
            } else {
                self.l3.saturating_add(4)
            },
            l4: if self.l4 == 0 {
                0
            } else {
                self.l4.saturating_add(4)
            },
            n_vlans: self.n_vlans.saturating_add(1),
            ..self
        }
    }

    /// The layout after the outer VLAN tag was popped: offsets -4, one tag
    /// fewer.
    pub fn popped_vlan(self) -> Layout {
        Layout {
            l3: self.l3.saturating_sub(4),
            l4: self.l4.saturating_sub(4),
            n_vlans: self.n_vlans.saturating_sub(1),
            ..self
        }
    }
}

/// `N` bytes of `b` at `off`, if present.
#[inline(always)]
fn chunk<const N: usize>(b: &[u8], off: usize) -> Option<&[u8; N]> {
    b.get(off..)?.first_chunk::<N>()
}

/// `N` bytes of `b` at `off`, zeros if absent. Used on fixed-size header
/// arrays with constant offsets, where the check folds away.
#[inline(always)]
fn arr<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    match chunk::<N>(b, off) {
        Some(a) => *a,
        None => [0; N],
    }
}

#[inline(always)]
fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes(arr(b, off))
}

#[inline(always)]
fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(arr(b, off))
}

#[inline(always)]
fn is_vlan_tpid(t: u16) -> bool {
    t == ETH_TYPE_VLAN || t == ETH_TYPE_VLAN_8021AD
}

/// Offset as `u16`; 0 ("absent") if it does not fit, which cannot happen
/// for a complete header inside a frame of at most 64 KiB.
#[inline(always)]
fn off16(off: usize) -> u16 {
    u16::try_from(off).unwrap_or(0)
}

/// Transport fields parsed from one L4 header.
struct L4 {
    tp_src: u16,
    tp_dst: u16,
    tcp_flags: u16,
    kind: L4Kind,
    malformed: Option<Malformed>,
}

/// Parses the transport header at the start of `data` (which ends where the
/// IP packet ends). `fragment`: the packet is a first fragment, so a short
/// transport header is legal.
#[inline(always)]
fn parse_l4(proto: u8, icmp_proto: u8, data: &[u8], fragment: bool) -> L4 {
    let mut r = L4 {
        tp_src: 0,
        tp_dst: 0,
        tcp_flags: 0,
        kind: L4Kind::None,
        malformed: None,
    };
    let need = match proto {
        ipproto::TCP => {
            if let Some(t) = chunk::<20>(data, 0) {
                let ctl = be16(t, 12);
                let hlen = usize::from(ctl >> 12) * 4;
                if hlen < 20 {
                    r.malformed = Some(Malformed::TcpBadOffset);
                    return r;
                }
                if hlen <= data.len() {
                    r.tp_src = be16(t, 0);
                    r.tp_dst = be16(t, 2);
                    r.tcp_flags = ctl & 0x0fff;
                    r.kind = L4Kind::Tcp;
                    return r;
                }
            }
            true
        }
        ipproto::UDP | ipproto::SCTP => {
            let n = if proto == ipproto::UDP { 8 } else { 12 };
            if let Some(t) = chunk::<4>(data, 0) {
                if data.len() >= n {
                    r.tp_src = be16(t, 0);
                    r.tp_dst = be16(t, 2);
                    r.kind = if proto == ipproto::UDP {
                        L4Kind::Udp
                    } else {
                        L4Kind::Sctp
                    };
                    return r;
                }
            }
            true
        }
        p if p == icmp_proto => {
            if let Some(t) = chunk::<8>(data, 0) {
                r.tp_src = u16::from(t[0]);
                r.tp_dst = u16::from(t[1]);
                r.kind = if p == ipproto::ICMP {
                    L4Kind::Icmp
                } else {
                    L4Kind::Icmpv6
                };
                return r;
            }
            true
        }
        _ => false,
    };
    if need && !fragment {
        r.malformed = Some(Malformed::L4Truncated);
    }
    r
}

/// Parses `frame` into a key with `in_port` set. See the module docs.
///
/// ```
/// use flowtable::{extract, PortNo};
/// let key = extract(&[0u8; 10], PortNo(3)); // a runt: only in_port
/// assert_eq!(key.in_port, 3);
/// assert_eq!(key.dl_type, 0);
/// ```
#[inline]
pub fn extract(frame: &[u8], in_port: PortNo) -> FlowKey {
    extract_layout(frame, in_port).0
}

/// Most VLAN headers extraction parses (OVS userspace's limit too).
pub const MAX_VLAN_HEADERS: u8 = 2;

/// Parses `frame` into a key with `in_port` set, plus the header offsets and
/// the malformation verdict, with every VLAN tag rvs can parse (two). See
/// the module docs.
#[inline]
pub fn extract_layout(frame: &[u8], in_port: PortNo) -> (FlowKey, Layout) {
    extract_layout_vlans(frame, in_port, 0)
}

/// [`extract_layout`] under a VLAN limit, as OVS's `flow_limit_vlans`:
/// `vlan_limit` 0 parses every tag rvs can ([`MAX_VLAN_HEADERS`]), `n`
/// at most `n`. Tags beyond the limit are payload: the first one's TPID
/// becomes `dl_type` and nothing after it is parsed.
///
/// ```
/// use flowtable::extract::{extract_layout_vlans, ETH_TYPE_VLAN};
/// use flowtable::PortNo;
/// let mut f = vec![0u8; 12];
/// for tag in [[0x81, 0x00, 0x00, 0x0a], [0x81, 0x00, 0x00, 0x14]] {
///     f.extend_from_slice(&tag); // VLAN 10 outside, 20 inside
/// }
/// f.extend_from_slice(&[0x08, 0x00]);
/// let (k, l) = extract_layout_vlans(&f, PortNo(1), 1);
/// assert_eq!((k.vlan_tci, k.inner_vlan_tci, k.dl_type), (0x100a, 0, ETH_TYPE_VLAN));
/// assert_eq!(l.n_vlans, 1);
/// let (k, _) = extract_layout_vlans(&f, PortNo(1), 0);
/// assert_eq!((k.inner_vlan_tci, k.dl_type), (0x1014, 0x0800));
/// ```
#[inline]
pub fn extract_layout_vlans(frame: &[u8], in_port: PortNo, vlan_limit: u8) -> (FlowKey, Layout) {
    // Whether a second tag may be parsed.
    let inner_ok = vlan_limit == 0 || vlan_limit >= 2;
    // Every field a local, so the construction below names them all.
    let FlowKey {
        metadata,
        in_port: _,
        mut dl_type,
        mut vlan_tci,
        mut dl_dst,
        mut dl_src,
        mut inner_vlan_tci,
        mut tcp_flags,
        mut nw_src,
        mut nw_dst,
        mut nw_proto,
        mut nw_tos,
        mut nw_ttl,
        mut nw_frag,
        mut tp_src,
        mut tp_dst,
        mut ipv6_src,
        mut ipv6_dst,
        mut ipv6_label,
        mut arp_sha,
        mut arp_tha,
        // Not in the frame: the receiving tunnel port sets them.
        tun_id,
        tun_src,
        tun_dst,
        tun_flags,
        tun_pad,
    } = FlowKey::ZERO;
    let mut layout = Layout::NONE;

    let malformed: Option<Malformed> = 'parse: {
        // Ethernet.
        let Some(eth) = chunk::<ETH_HEADER_LEN>(frame, 0) else {
            break 'parse Some(Malformed::Runt);
        };
        dl_dst = arr(eth, 0);
        dl_src = arr(eth, 6);
        let mut ty = be16(eth, 12);
        // Offset just past the type/length field.
        let mut l3 = ETH_HEADER_LEN;

        // VLAN tags: TPID (already read as `ty`), TCI, next type.
        if is_vlan_tpid(ty) {
            let Some(tag) = chunk::<4>(frame, l3) else {
                dl_type = ty;
                break 'parse Some(Malformed::VlanTruncated);
            };
            vlan_tci = be16(tag, 0) | VLAN_PRESENT;
            ty = be16(tag, 2);
            l3 += 4;
            layout.n_vlans = 1;
            if inner_ok && is_vlan_tpid(ty) {
                let Some(tag) = chunk::<4>(frame, l3) else {
                    dl_type = ty;
                    break 'parse Some(Malformed::VlanTruncated);
                };
                inner_vlan_tci = be16(tag, 0) | VLAN_PRESENT;
                ty = be16(tag, 2);
                l3 += 4;
                layout.n_vlans = 2;
            }
        }

        // 802.3 length frames, with or without LLC/SNAP.
        if ty < ETH_TYPE_MIN {
            ty = DL_TYPE_NONE;
            if let Some(llc) = chunk::<8>(frame, l3) {
                let snap_type = be16(llc, 6);
                if llc[..6] == [0xaa, 0xaa, 0x03, 0, 0, 0] && snap_type >= ETH_TYPE_MIN {
                    ty = snap_type;
                    l3 += 8;
                }
            }
        }
        dl_type = ty;

        match ty {
            ETH_TYPE_IP => {
                let Some(h) = chunk::<20>(frame, l3) else {
                    break 'parse Some(Malformed::Ipv4Truncated);
                };
                let ihl = usize::from(h[0] & 0x0f) * 4;
                let tot_len = usize::from(be16(h, 2));
                if ihl < 20 || ihl > tot_len {
                    break 'parse Some(Malformed::Ipv4BadIhl);
                }
                let avail = frame.len() - l3;
                if ihl > avail {
                    break 'parse Some(Malformed::Ipv4Truncated);
                }
                nw_tos = h[1];
                nw_ttl = h[8];
                nw_proto = h[9];
                nw_src = be32(h, 12);
                nw_dst = be32(h, 16);
                let frag = be16(h, 6);
                if frag & 0x3fff != 0 {
                    nw_frag = FRAG_ANY;
                    if frag & 0x1fff != 0 {
                        nw_frag |= FRAG_LATER;
                    }
                }
                layout.l3 = off16(l3);
                layout.l3_kind = L3Kind::Ipv4;
                let short = (tot_len > avail).then_some(Malformed::Ipv4BadTotalLen);
                if nw_frag & FRAG_LATER != 0 {
                    break 'parse short;
                }
                let l4 = l3 + ihl;
                let end = l3 + tot_len.min(avail);
                let data = frame.get(l4..end).unwrap_or_default();
                let t = parse_l4(nw_proto, ipproto::ICMP, data, nw_frag != 0);
                tp_src = t.tp_src;
                tp_dst = t.tp_dst;
                tcp_flags = t.tcp_flags;
                if t.kind != L4Kind::None {
                    layout.l4 = off16(l4);
                    layout.l4_kind = t.kind;
                }
                break 'parse t.malformed.or(short);
            }
            ETH_TYPE_IPV6 => {
                let Some(h) = chunk::<40>(frame, l3) else {
                    break 'parse Some(Malformed::Ipv6Truncated);
                };
                let vtf = be32(h, 0);
                nw_tos = (vtf >> 20) as u8;
                ipv6_label = vtf & 0x000f_ffff;
                let plen = usize::from(be16(h, 4));
                let mut next = h[6];
                nw_ttl = h[7];
                ipv6_src = arr(h, 8);
                ipv6_dst = arr(h, 24);
                layout.l3 = off16(l3);
                layout.l3_kind = L3Kind::Ipv6;
                let avail = frame.len() - l3 - 40;
                let short = (plen > avail).then_some(Malformed::Ipv6BadPayloadLen);
                let end = l3 + 40 + plen.min(avail);
                // The packet without Ethernet padding; every read below is
                // bounded by it.
                let pkt = frame.get(..end).unwrap_or_default();
                let mut off = l3 + 40;
                loop {
                    let cur = next;
                    let len = match cur {
                        ipproto::HOPOPTS
                        | ipproto::ROUTING
                        | ipproto::DSTOPTS
                        | ipproto::AH
                        | ipproto::FRAGMENT => {
                            // Every extension header is at least 8 bytes.
                            let Some(e) = chunk::<8>(pkt, off) else {
                                nw_proto = cur;
                                break 'parse Some(Malformed::Ipv6ExtChainTruncated);
                            };
                            next = e[0];
                            match cur {
                                ipproto::AH => (usize::from(e[1]) + 2) * 4,
                                ipproto::FRAGMENT => {
                                    let offlg = be16(e, 2);
                                    if offlg != 0 {
                                        nw_frag = FRAG_ANY;
                                        if offlg & 0xfff8 != 0 {
                                            // Later fragment: no L4 here.
                                            nw_frag |= FRAG_LATER;
                                            nw_proto = ipproto::FRAGMENT;
                                            break 'parse short;
                                        }
                                    }
                                    8
                                }
                                _ => (usize::from(e[1]) + 1) * 8,
                            }
                        }
                        _ => break,
                    };
                    if pkt.len() - off < len {
                        nw_proto = cur;
                        break 'parse Some(Malformed::Ipv6ExtChainTruncated);
                    }
                    off += len;
                }
                nw_proto = next;
                let data = pkt.get(off..).unwrap_or_default();
                let t = parse_l4(next, ipproto::ICMPV6, data, nw_frag != 0);
                tp_src = t.tp_src;
                tp_dst = t.tp_dst;
                tcp_flags = t.tcp_flags;
                if t.kind != L4Kind::None {
                    layout.l4 = off16(off);
                    layout.l4_kind = t.kind;
                }
                break 'parse t.malformed.or(short);
            }
            ETH_TYPE_ARP | ETH_TYPE_RARP => {
                let Some(fixed) = chunk::<8>(frame, l3) else {
                    break 'parse Some(Malformed::ArpTruncated);
                };
                let need = 8 + 2 * (usize::from(fixed[4]) + usize::from(fixed[5]));
                if frame.len() - l3 < need {
                    break 'parse Some(Malformed::ArpTruncated);
                }
                if be16(fixed, 0) != 1
                    || be16(fixed, 2) != ETH_TYPE_IP
                    || fixed[4] != 6
                    || fixed[5] != 4
                {
                    break 'parse None;
                }
                let Some(a) = chunk::<28>(frame, l3) else {
                    // Unreachable: `need` is 28 here.
                    break 'parse Some(Malformed::ArpTruncated);
                };
                let op = be16(a, 6);
                if op <= 0xff {
                    nw_proto = op as u8;
                }
                arp_sha = arr(a, 8);
                nw_src = be32(a, 14);
                arp_tha = arr(a, 18);
                nw_dst = be32(a, 24);
                layout.l3 = off16(l3);
                layout.l3_kind = L3Kind::Arp;
                break 'parse None;
            }
            _ => break 'parse None,
        }
    };
    layout.malformed = malformed;

    let key = FlowKey {
        metadata,
        in_port: in_port.0,
        dl_type,
        vlan_tci,
        dl_dst,
        dl_src,
        inner_vlan_tci,
        tcp_flags,
        nw_src,
        nw_dst,
        nw_proto,
        nw_tos,
        nw_ttl,
        nw_frag,
        tp_src,
        tp_dst,
        ipv6_src,
        ipv6_dst,
        ipv6_label,
        arp_sha,
        arp_tha,
        tun_id,
        tun_src,
        tun_dst,
        tun_flags,
        tun_pad,
    };
    (key, layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Malformed; 11] = [
        Malformed::Runt,
        Malformed::VlanTruncated,
        Malformed::ArpTruncated,
        Malformed::Ipv4Truncated,
        Malformed::Ipv4BadIhl,
        Malformed::Ipv4BadTotalLen,
        Malformed::Ipv6Truncated,
        Malformed::Ipv6BadPayloadLen,
        Malformed::Ipv6ExtChainTruncated,
        Malformed::TcpBadOffset,
        Malformed::L4Truncated,
    ];

    #[test]
    fn malformed_names_are_unique_snake_case() {
        let mut names: Vec<&str> = ALL.iter().map(|m| m.name()).collect();
        assert!(names.iter().all(|n| n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(Malformed::L4Truncated.to_string(), "l4_truncated");
    }

    #[test]
    fn layout_shifts_keep_absent_offsets_zero() {
        let l = Layout {
            l3: 14,
            l3_kind: L3Kind::Arp,
            ..Layout::NONE
        };
        let p = l.pushed_vlan();
        assert_eq!((p.l3, p.l4, p.n_vlans), (18, 0, 1));
        assert_eq!(p.popped_vlan(), l);
    }

    /// Ethernet header with the given tags and type.
    fn eth(tags: &[(u16, u16)], ty: u16) -> Vec<u8> {
        let mut f = vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        for (tpid, tci) in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ty.to_be_bytes());
        f
    }

    #[test]
    fn tpids_in_either_position() {
        let f = eth(
            &[(ETH_TYPE_VLAN, 0x0005), (ETH_TYPE_VLAN_8021AD, 0xe006)],
            0x1234,
        );
        let (k, l) = extract_layout(&f, PortNo(2));
        assert_eq!(
            (k.vlan_tci, k.inner_vlan_tci, k.dl_type),
            (0x1005, 0xf006, 0x1234)
        );
        assert_eq!((l.n_vlans, l.malformed), (2, None));
        assert_eq!(k.in_port, 2);
    }

    /// flow_limit_vlans: 0 = all (two), 1 = the outer tag only (the
    /// inner is payload: its TPID is dl_type, nothing after it parsed, a
    /// truncated inner tag is no error), 2 and more = two.
    #[test]
    fn vlan_limit_bounds_the_tags_parsed() {
        let mut f = eth(
            &[(ETH_TYPE_VLAN_8021AD, 0x000a), (ETH_TYPE_VLAN, 0x2014)],
            ETH_TYPE_IP,
        );
        f.extend_from_slice(&[
            0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ]);
        for limit in [0, 2, 3, 255] {
            let (k, l) = extract_layout_vlans(&f, PortNo(1), limit);
            assert_eq!((k.vlan_tci, k.inner_vlan_tci), (0x100a, 0x3014), "{limit}");
            assert_eq!(
                (k.dl_type, k.nw_src, l.n_vlans, l.l3),
                (ETH_TYPE_IP, 0x0102_0304, 2, 22)
            );
            assert_eq!((k, l), extract_layout(&f, PortNo(1)));
        }
        let (k, l) = extract_layout_vlans(&f, PortNo(1), 1);
        assert_eq!((k.vlan_tci, k.inner_vlan_tci), (0x100a, 0));
        assert_eq!((k.dl_type, k.nw_src, k.nw_proto), (ETH_TYPE_VLAN, 0, 0));
        assert_eq!(
            (l.n_vlans, l.l3, l.l3_kind, l.malformed),
            (1, 0, L3Kind::None, None)
        );
        // Single-tagged frames are the same under every limit.
        let mut g = eth(&[(ETH_TYPE_VLAN, 0x0005)], ETH_TYPE_IP);
        g.extend_from_slice(&f[22..]);
        assert_eq!(
            extract_layout_vlans(&g, PortNo(1), 1),
            extract_layout_vlans(&g, PortNo(1), 0)
        );
        // An inner tag cut short is payload under limit 1, an error above.
        let cut = &eth(&[(ETH_TYPE_VLAN, 0x0005)], ETH_TYPE_VLAN)[..];
        assert_eq!(extract_layout_vlans(cut, PortNo(1), 1).1.malformed, None);
        assert_eq!(
            extract_layout_vlans(cut, PortNo(1), 2).1.malformed,
            Some(Malformed::VlanTruncated)
        );
    }

    #[test]
    fn snap_needs_ethertype_and_full_header() {
        // SNAP with a type below 0x600 is not taken.
        let mut f = eth(&[], 8);
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x05, 0xdc]);
        assert_eq!(extract(&f, PortNo(1)).dl_type, DL_TYPE_NONE);
        // Non-zero OUI: not Ethernet-encapsulated.
        let mut f = eth(&[], 8);
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0x0c, 0x20, 0x00]);
        assert_eq!(extract(&f, PortNo(1)).dl_type, DL_TYPE_NONE);
        // SNAP carrying ARP with nothing after it: an ARP that is cut.
        let mut f = eth(&[], 8);
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x06]);
        let (k, l) = extract_layout(&f, PortNo(1));
        assert_eq!(k.dl_type, ETH_TYPE_ARP);
        assert_eq!(l.malformed, Some(Malformed::ArpTruncated));
    }

    fn ipv6(next: u8, ext: &[u8]) -> Vec<u8> {
        let mut f = eth(&[], ETH_TYPE_IPV6);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        f.extend_from_slice(&[next, 64]);
        f.extend_from_slice(&[0; 32]);
        f.extend_from_slice(ext);
        f
    }

    #[test]
    fn ipv6_atomic_fragment_is_not_a_fragment() {
        let mut ext = vec![ipproto::UDP, 0, 0, 0, 0, 0, 0, 1];
        ext.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        let (k, l) = extract_layout(&ipv6(ipproto::FRAGMENT, &ext), PortNo(1));
        assert_eq!((k.nw_frag, k.nw_proto, k.tp_src, k.tp_dst), (0, 17, 1, 2));
        assert_eq!((l.l4, l.l4_kind, l.malformed), (62, L4Kind::Udp, None));
    }

    #[test]
    fn ipv6_unknown_next_header_is_final() {
        // No Next Header (59) with an empty payload: well-formed.
        let (k, l) = extract_layout(&ipv6(59, &[]), PortNo(1));
        assert_eq!(
            (k.nw_proto, l.l3_kind, l.l4, l.malformed),
            (59, L3Kind::Ipv6, 0, None)
        );
    }

    #[test]
    fn ipv4_version_is_not_checked() {
        // As in OVS: only IHL and lengths are validated.
        let mut f = eth(&[], ETH_TYPE_IP);
        f.extend_from_slice(&[
            0x65, 0, 0, 20, 0, 0, 0, 0, 9, 99, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ]);
        let (k, l) = extract_layout(&f, PortNo(1));
        assert_eq!(
            (k.nw_src, k.nw_dst, k.nw_proto, k.nw_ttl),
            (0x0102_0304, 0x0506_0708, 99, 9)
        );
        assert_eq!(l.malformed, None);
    }
}
