//! Golden frames for `extract`: hand-checked byte arrays and the full key
//! each must produce, truncation at every length, malformed headers, and
//! property tests (random bytes, mutated golden frames, frames built from
//! random valid headers).
//!
//! The frames live in `golden/frames.rs` (shared with the benchmark).

use flowtable::extract::{
    extract, extract_layout, extract_layout_vlans, L3Kind, L4Kind, Layout, Malformed,
};
use flowtable::key::{FlowKey, DL_TYPE_NONE, FRAG_ANY, FRAG_LATER};
use flowtable::PortNo;
use proptest::prelude::*;

mod golden {
    pub mod frames;
}
use golden::frames::*;

const IN_PORT: PortNo = PortNo(7);
const M1: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
const M2: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
/// 10.0.0.1
const A: u32 = 0x0a00_0001;
/// 192.168.123.45
const B: u32 = 0xc0a8_7b2d;
/// 2001:db8::1
const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// fe80::211:22ff:fe33:4455
const B6: [u8; 16] = [
    0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55,
];
/// ff02::1:ff33:4455
const SN6: [u8; 16] = [
    0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x33, 0x44, 0x55,
];

/// Ethernet-only part of a key.
fn eth(dst: [u8; 6], src: [u8; 6], dl_type: u16) -> FlowKey {
    FlowKey {
        in_port: IN_PORT.0,
        dl_dst: dst,
        dl_src: src,
        dl_type,
        ..FlowKey::ZERO
    }
}

fn lay(l3: u16, l3_kind: L3Kind, l4: u16, l4_kind: L4Kind, n_vlans: u8) -> Layout {
    Layout {
        l3,
        l4,
        l3_kind,
        l4_kind,
        n_vlans,
        l4_csum_partial: false,
        malformed: None,
    }
}

/// One well-formed golden frame.
struct Golden {
    name: &'static str,
    frame: &'static [u8],
    key: FlowKey,
    layout: Layout,
    /// Prefix lengths `n` (half-open ranges) at which `frame[..n]` must be
    /// flagged malformed: cut inside a header it claims, or inside the IP
    /// packet its length field announces.
    flagged: &'static [(usize, usize)],
}

fn goldens() -> Vec<Golden> {
    let ip4 = |k: FlowKey, proto: u8, tos: u8, ttl: u8| FlowKey {
        nw_src: A,
        nw_dst: B,
        nw_proto: proto,
        nw_tos: tos,
        nw_ttl: ttl,
        ..k
    };
    let ip6 = |k: FlowKey, proto: u8, tos: u8, label: u32, ttl: u8| FlowKey {
        ipv6_src: A6,
        ipv6_dst: B6,
        nw_proto: proto,
        nw_tos: tos,
        ipv6_label: label,
        nw_ttl: ttl,
        ..k
    };
    let ports = |k: FlowKey, src: u16, dst: u16| FlowKey {
        tp_src: src,
        tp_dst: dst,
        ..k
    };
    vec![
        Golden {
            name: "untagged unknown ethertype",
            frame: ETH_LLDP,
            key: eth([0x01, 0x80, 0xc2, 0, 0, 0x0e], M2, 0x88cc),
            layout: Layout::NONE,
            flagged: &[(0, 14)],
        },
        Golden {
            name: "802.1Q ipv4 udp",
            frame: VLAN_IPV4_UDP,
            key: ports(
                ip4(
                    FlowKey {
                        vlan_tci: 0x1000 | 0x600a,
                        ..eth(M1, M2, 0x0800)
                    },
                    17,
                    0,
                    64,
                ),
                5353,
                53,
            ),
            layout: lay(18, L3Kind::Ipv4, 38, L4Kind::Udp, 1),
            flagged: &[(0, 18 + 46)],
        },
        Golden {
            name: "802.1ad+802.1Q ipv4 tcp",
            frame: QINQ_IPV4_TCP,
            key: FlowKey {
                tcp_flags: 0x002,
                ..ports(
                    ip4(
                        FlowKey {
                            vlan_tci: 0x1000 | 0xa064,
                            inner_vlan_tci: 0x1000 | 0x0014,
                            ..eth(M1, M2, 0x0800)
                        },
                        6,
                        0x10,
                        128,
                    ),
                    40000,
                    443,
                )
            },
            layout: lay(22, L3Kind::Ipv4, 42, L4Kind::Tcp, 2),
            flagged: &[(0, 62)],
        },
        Golden {
            name: "arp request",
            frame: ARP_REQUEST,
            key: FlowKey {
                nw_proto: 1,
                nw_src: A,
                nw_dst: B,
                arp_sha: M2,
                arp_tha: [0; 6],
                ..eth([0xff; 6], M2, 0x0806)
            },
            layout: lay(14, L3Kind::Arp, 0, L4Kind::None, 0),
            flagged: &[(0, 42)],
        },
        Golden {
            name: "arp reply",
            frame: ARP_REPLY,
            key: FlowKey {
                nw_proto: 2,
                nw_src: B,
                nw_dst: A,
                arp_sha: M1,
                arp_tha: M2,
                ..eth(M2, M1, 0x0806)
            },
            layout: lay(14, L3Kind::Arp, 0, L4Kind::None, 0),
            flagged: &[(0, 42)],
        },
        Golden {
            name: "ipv4 tcp with flags",
            frame: IPV4_TCP,
            key: FlowKey {
                tcp_flags: 0x118,
                ..ports(ip4(eth(M1, M2, 0x0800), 6, 0xb9, 63), 1234, 80)
            },
            layout: lay(14, L3Kind::Ipv4, 34, L4Kind::Tcp, 0),
            flagged: &[(0, 72)],
        },
        Golden {
            name: "ipv4 udp",
            frame: IPV4_UDP,
            key: ports(ip4(eth(M1, M2, 0x0800), 17, 0, 64), 68, 67),
            layout: lay(14, L3Kind::Ipv4, 34, L4Kind::Udp, 0),
            flagged: &[(0, 60)],
        },
        Golden {
            name: "ipv4 icmp echo",
            frame: IPV4_ICMP_ECHO,
            key: ports(ip4(eth(M1, M2, 0x0800), 1, 0, 64), 8, 0),
            layout: lay(14, L3Kind::Ipv4, 34, L4Kind::Icmp, 0),
            flagged: &[(0, 60)],
        },
        Golden {
            name: "ipv4 first fragment",
            frame: IPV4_FRAG_FIRST,
            key: FlowKey {
                nw_frag: FRAG_ANY,
                ..ports(ip4(eth(M1, M2, 0x0800), 17, 0, 64), 5000, 6000)
            },
            layout: lay(14, L3Kind::Ipv4, 34, L4Kind::Udp, 0),
            // A first fragment cut inside its UDP header is still flagged,
            // because the IPv4 total length is not reached.
            flagged: &[(0, 66)],
        },
        Golden {
            name: "ipv4 later fragment",
            frame: IPV4_FRAG_LATER,
            key: FlowKey {
                nw_frag: FRAG_ANY | FRAG_LATER,
                ..ip4(eth(M1, M2, 0x0800), 17, 0, 64)
            },
            layout: lay(14, L3Kind::Ipv4, 0, L4Kind::None, 0),
            flagged: &[(0, 50)],
        },
        Golden {
            name: "ipv4 options (IHL 6)",
            frame: IPV4_OPTIONS_TCP,
            key: FlowKey {
                tcp_flags: 0x010,
                ..ports(ip4(eth(M1, M2, 0x0800), 6, 0, 1), 22, 51000)
            },
            layout: lay(14, L3Kind::Ipv4, 38, L4Kind::Tcp, 0),
            flagged: &[(0, 58)],
        },
        Golden {
            name: "ipv6 tcp",
            frame: IPV6_TCP,
            key: FlowKey {
                tcp_flags: 0x0c1,
                ..ports(ip6(eth(M1, M2, 0x86dd), 6, 0x2e, 0xabcde, 255), 33000, 8080)
            },
            layout: lay(14, L3Kind::Ipv6, 54, L4Kind::Tcp, 0),
            flagged: &[(0, 74)],
        },
        Golden {
            name: "ipv6 hop-by-hop + first fragment + udp",
            frame: IPV6_HBH_FRAG_UDP,
            key: FlowKey {
                nw_frag: FRAG_ANY,
                ..ports(ip6(eth(M1, M2, 0x86dd), 17, 0, 0, 64), 546, 547)
            },
            layout: lay(14, L3Kind::Ipv6, 70, L4Kind::Udp, 0),
            flagged: &[(0, 96)],
        },
        Golden {
            name: "ipv6 later fragment",
            frame: IPV6_FRAG_LATER,
            key: FlowKey {
                nw_frag: FRAG_ANY | FRAG_LATER,
                ..ip6(eth(M1, M2, 0x86dd), 44, 0, 0, 64)
            },
            layout: lay(14, L3Kind::Ipv6, 0, L4Kind::None, 0),
            flagged: &[(0, 78)],
        },
        Golden {
            name: "ipv6 dstopts + routing + AH + tcp",
            frame: IPV6_EXT_CHAIN_TCP,
            key: FlowKey {
                tcp_flags: 0x004,
                ..ports(ip6(eth(M1, M2, 0x86dd), 6, 0, 0, 64), 7, 9)
            },
            layout: lay(14, L3Kind::Ipv6, 102, L4Kind::Tcp, 0),
            flagged: &[(0, 122)],
        },
        Golden {
            name: "icmpv6 echo",
            frame: ICMPV6_ECHO,
            key: ports(ip6(eth(M1, M2, 0x86dd), 58, 0, 0, 64), 128, 0),
            layout: lay(14, L3Kind::Ipv6, 54, L4Kind::Icmpv6, 0),
            flagged: &[(0, 80)],
        },
        Golden {
            name: "icmpv6 neighbor solicitation",
            frame: ICMPV6_NS,
            key: FlowKey {
                ipv6_dst: SN6,
                ..ports(
                    ip6(
                        eth([0x33, 0x33, 0xff, 0x33, 0x44, 0x55], M2, 0x86dd),
                        58,
                        0,
                        0,
                        255,
                    ),
                    135,
                    0,
                )
            },
            layout: lay(14, L3Kind::Ipv6, 54, L4Kind::Icmpv6, 0),
            flagged: &[(0, 86)],
        },
        Golden {
            name: "802.3 llc (stp)",
            frame: LLC_STP,
            key: eth([0x01, 0x80, 0xc2, 0, 0, 0], M2, DL_TYPE_NONE),
            layout: Layout::NONE,
            flagged: &[(0, 14)],
        },
        Golden {
            name: "802.3 llc/snap ipv4 udp",
            frame: SNAP_IPV4_UDP,
            key: ports(ip4(eth(M1, M2, 0x0800), 17, 0, 64), 1, 2),
            layout: lay(22, L3Kind::Ipv4, 42, L4Kind::Udp, 0),
            // Shorter than the SNAP header, it is a plain 802.3 frame.
            flagged: &[(0, 14), (22, 50)],
        },
        Golden {
            name: "ipv4 sctp",
            frame: IPV4_SCTP,
            key: ports(ip4(eth(M1, M2, 0x0800), 132, 0, 64), 36412, 2905),
            layout: lay(14, L3Kind::Ipv4, 34, L4Kind::Sctp, 0),
            flagged: &[(0, 66)],
        },
        Golden {
            name: "three tags",
            frame: TRIPLE_TAGGED,
            key: FlowKey {
                vlan_tci: 0x1001,
                inner_vlan_tci: 0x1002,
                ..eth(M1, M2, 0x8100)
            },
            layout: lay(0, L3Kind::None, 0, L4Kind::None, 2),
            flagged: &[(0, 22)],
        },
    ]
}

/// `key` with only its Ethernet and VLAN fields.
fn l2_only(key: &FlowKey) -> FlowKey {
    FlowKey {
        in_port: key.in_port,
        dl_dst: key.dl_dst,
        dl_src: key.dl_src,
        dl_type: key.dl_type,
        vlan_tci: key.vlan_tci,
        inner_vlan_tci: key.inner_vlan_tci,
        ..FlowKey::ZERO
    }
}

/// `key` without its transport fields.
fn l3_only(key: &FlowKey) -> FlowKey {
    FlowKey {
        tp_src: 0,
        tp_dst: 0,
        tcp_flags: 0,
        ..*key
    }
}

fn runt_key() -> FlowKey {
    FlowKey {
        in_port: IN_PORT.0,
        ..FlowKey::ZERO
    }
}

#[test]
fn golden_keys_and_layouts() {
    for g in goldens() {
        let (key, layout) = extract_layout(g.frame, IN_PORT);
        assert_eq!(key, g.key, "{}", g.name);
        assert_eq!(layout, g.layout, "{}", g.name);
        assert_eq!(extract(g.frame, IN_PORT), g.key, "{}", g.name);
    }
}

#[test]
fn golden_prefixes_flagged_exactly_inside_claimed_headers() {
    for g in goldens() {
        let full = g.key.as_bytes_for_test();
        for n in 0..=g.frame.len() {
            let (key, layout) = extract_layout(&g.frame[..n], IN_PORT);
            let want = g.flagged.iter().any(|&(a, b)| (a..b).contains(&n));
            assert_eq!(
                layout.malformed.is_some(),
                want,
                "{} cut at {n}: {:?}",
                g.name,
                layout.malformed
            );
            // As deep as parsed: every byte is either unset or the full
            // key's (dl_type and nw_proto may name a cut header instead).
            let exempt = FlowKey {
                dl_type: 0xffff,
                nw_proto: 0xff,
                ..FlowKey::ZERO
            }
            .as_bytes_for_test();
            let got = key.as_bytes_for_test();
            for i in 0..got.len() {
                if exempt[i] == 0 {
                    assert!(
                        got[i] == 0 || got[i] == full[i],
                        "{} cut at {n}: byte {i}",
                        g.name
                    );
                }
            }
            assert_eq!(key.in_port, IN_PORT.0);
        }
    }
}

trait KeyBytes {
    fn as_bytes_for_test(&self) -> Vec<u8>;
}

impl KeyBytes for FlowKey {
    fn as_bytes_for_test(&self) -> Vec<u8> {
        self.words().iter().flat_map(|w| w.to_ne_bytes()).collect()
    }
}

#[test]
fn ipv4_tcp_truncated_at_every_length() {
    let full = extract(IPV4_TCP, IN_PORT);
    for n in 0..=IPV4_TCP.len() {
        let (key, layout) = extract_layout(&IPV4_TCP[..n], IN_PORT);
        let (want_key, want_bad, l3, l4) = match n {
            0..14 => (runt_key(), Some(Malformed::Runt), 0, 0),
            14..34 => (l2_only(&full), Some(Malformed::Ipv4Truncated), 0, 0),
            34..54 => (l3_only(&full), Some(Malformed::L4Truncated), 14, 0),
            54..72 => (full, Some(Malformed::Ipv4BadTotalLen), 14, 34),
            _ => (full, None, 14, 34),
        };
        assert_eq!(key, want_key, "cut at {n}");
        assert_eq!(layout.malformed, want_bad, "cut at {n}");
        assert_eq!((layout.l3, layout.l4), (l3, l4), "cut at {n}");
    }
}

#[test]
fn qinq_tcp_truncated_at_every_length() {
    let full = extract(QINQ_IPV4_TCP, IN_PORT);
    for n in 0..=QINQ_IPV4_TCP.len() {
        let (key, layout) = extract_layout(&QINQ_IPV4_TCP[..n], IN_PORT);
        let (want_key, want_bad) = match n {
            0..14 => (runt_key(), Some(Malformed::Runt)),
            // Outer tag cut: its TPID is all we know.
            14..18 => (eth(M1, M2, 0x88a8), Some(Malformed::VlanTruncated)),
            18..22 => (
                FlowKey {
                    vlan_tci: full.vlan_tci,
                    ..eth(M1, M2, 0x8100)
                },
                Some(Malformed::VlanTruncated),
            ),
            22..42 => (l2_only(&full), Some(Malformed::Ipv4Truncated)),
            42..62 => (l3_only(&full), Some(Malformed::L4Truncated)),
            _ => (full, None),
        };
        assert_eq!(key, want_key, "cut at {n}");
        assert_eq!(layout.malformed, want_bad, "cut at {n}");
        let want_vlans = match n {
            0..18 => 0,
            18..22 => 1,
            _ => 2,
        };
        assert_eq!(layout.n_vlans, want_vlans, "cut at {n}");
    }
}

#[test]
fn ipv6_ext_chain_truncated_at_every_length() {
    let full = extract(IPV6_EXT_CHAIN_TCP, IN_PORT);
    for n in 0..=IPV6_EXT_CHAIN_TCP.len() {
        let (key, layout) = extract_layout(&IPV6_EXT_CHAIN_TCP[..n], IN_PORT);
        let chain = |proto: u8| {
            (
                FlowKey {
                    nw_proto: proto,
                    ..l3_only(&full)
                },
                Some(Malformed::Ipv6ExtChainTruncated),
            )
        };
        let (want_key, want_bad) = match n {
            0..14 => (runt_key(), Some(Malformed::Runt)),
            14..54 => (l2_only(&full), Some(Malformed::Ipv6Truncated)),
            54..70 => chain(60),
            70..78 => chain(43),
            78..102 => chain(51),
            102..122 => (l3_only(&full), Some(Malformed::L4Truncated)),
            _ => (full, None),
        };
        assert_eq!(key, want_key, "cut at {n}");
        assert_eq!(layout.malformed, want_bad, "cut at {n}");
    }
}

#[test]
fn bogus_ihl() {
    let (key, layout) = extract_layout(IPV4_BAD_IHL, IN_PORT);
    assert_eq!(key, eth(M1, M2, 0x0800));
    assert_eq!(layout.malformed, Some(Malformed::Ipv4BadIhl));
    assert_eq!(layout.l3_kind, L3Kind::None);

    // IHL 15 (60 bytes) in a 40-byte packet: header longer than the packet.
    let mut f = QINQ_IPV4_TCP.to_vec();
    f[22] = 0x4f;
    let (key, layout) = extract_layout(&f, IN_PORT);
    assert_eq!(layout.malformed, Some(Malformed::Ipv4BadIhl));
    assert_eq!(key, l2_only(&extract(QINQ_IPV4_TCP, IN_PORT)));

    // Total length below the header length.
    let mut f = IPV4_TCP.to_vec();
    f[16..18].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(
        extract_layout(&f, IN_PORT).1.malformed,
        Some(Malformed::Ipv4BadIhl)
    );

    // Total length beyond the frame, headers complete.
    let mut f = IPV4_TCP.to_vec();
    f[16..18].copy_from_slice(&1500u16.to_be_bytes());
    let (key, layout) = extract_layout(&f, IN_PORT);
    assert_eq!(layout.malformed, Some(Malformed::Ipv4BadTotalLen));
    assert_eq!(key, extract(IPV4_TCP, IN_PORT));

    // IHL 6 frame cut inside its options.
    let (_, layout) = extract_layout(&IPV4_OPTIONS_TCP[..36], IN_PORT);
    assert_eq!(layout.malformed, Some(Malformed::Ipv4Truncated));
}

#[test]
fn tcp_bad_data_offset() {
    let mut f = IPV4_TCP.to_vec();
    f[46] = 0x41; // data offset 4, NS
    let (key, layout) = extract_layout(&f, IN_PORT);
    assert_eq!(layout.malformed, Some(Malformed::TcpBadOffset));
    assert_eq!(key, l3_only(&extract(IPV4_TCP, IN_PORT)));
    // Data offset 15 (60 bytes) with only 38 bytes of TCP.
    f[46] = 0xf1;
    let (_, layout) = extract_layout(&f, IN_PORT);
    assert_eq!(layout.malformed, Some(Malformed::L4Truncated));
    assert_eq!(layout.l4, 0);
}

#[test]
fn ipv6_ext_chain_runs_off_the_end() {
    let (key, layout) = extract_layout(IPV6_EXT_OVERRUN, IN_PORT);
    assert_eq!(layout.malformed, Some(Malformed::Ipv6ExtChainTruncated));
    assert_eq!(
        key,
        FlowKey {
            ipv6_src: A6,
            ipv6_dst: B6,
            nw_ttl: 64,
            nw_proto: 0,
            ..eth(M1, M2, 0x86dd)
        }
    );
    assert_eq!((layout.l3, layout.l3_kind), (14, L3Kind::Ipv6));
    assert_eq!(layout.l4, 0);
    // Padding after the payload length does not make the chain whole.
    let mut f = IPV6_EXT_OVERRUN.to_vec();
    f.extend_from_slice(&[0; 100]);
    assert_eq!(
        extract_layout(&f, IN_PORT).1.malformed,
        Some(Malformed::Ipv6ExtChainTruncated)
    );
    // The same chain that fits is fine.
    let mut f = IPV6_EXT_OVERRUN.to_vec();
    f[55] = 1; // hop-by-hop len 1: 16 bytes, exactly the payload
    let (key, layout) = extract_layout(&f, IN_PORT);
    assert_eq!(layout.malformed, Some(Malformed::L4Truncated));
    assert_eq!(key.nw_proto, 6);
}

#[test]
fn ipv6_payload_length_beyond_frame() {
    let mut f = IPV6_TCP.to_vec();
    f.extend_from_slice(b"some payload");
    f[18..20].copy_from_slice(&200u16.to_be_bytes());
    let (key, layout) = extract_layout(&f, IN_PORT);
    assert_eq!(layout.malformed, Some(Malformed::Ipv6BadPayloadLen));
    assert_eq!(key, extract(IPV6_TCP, IN_PORT));
}

#[test]
fn arp_variants() {
    // Non-Ethernet/IPv4 ARP: not parsed, not malformed.
    let mut f = ARP_REQUEST.to_vec();
    f[15] = 6; // htype 6 (IEEE 802)
    let (key, layout) = extract_layout(&f, IN_PORT);
    assert_eq!(key, eth([0xff; 6], M2, 0x0806));
    assert_eq!(layout, Layout::NONE);
    // Opcode above 0xff: addresses parsed, nw_proto left 0.
    let mut f = ARP_REPLY.to_vec();
    f[20..22].copy_from_slice(&0x0102u16.to_be_bytes());
    let (key, _) = extract_layout(&f, IN_PORT);
    assert_eq!(key.nw_proto, 0);
    assert_eq!(key.nw_src, B);
    // RARP is parsed like ARP.
    let mut f = ARP_REPLY.to_vec();
    f[12..14].copy_from_slice(&0x8035u16.to_be_bytes());
    let (key, _) = extract_layout(&f, IN_PORT);
    assert_eq!(key.arp_tha, M2);
    assert_eq!(key.dl_type, 0x8035);
    // Announced address lengths larger than the frame.
    let mut f = ARP_REQUEST[..42].to_vec();
    f[18] = 16;
    assert_eq!(
        extract_layout(&f, IN_PORT).1.malformed,
        Some(Malformed::ArpTruncated)
    );
}

#[test]
fn icmp_is_tied_to_its_ip_version() {
    // Next header 1 (ICMPv4) inside IPv6 is not parsed as ICMP.
    let mut f = ICMPV6_ECHO.to_vec();
    f[20] = 1;
    let (key, layout) = extract_layout(&f, IN_PORT);
    assert_eq!((key.nw_proto, key.tp_src, layout.l4), (1, 0, 0));
    assert_eq!(layout.malformed, None);
}

#[test]
fn small_first_fragment_is_not_malformed() {
    // A first fragment that ends inside its UDP header: legal.
    let mut f = IPV4_FRAG_FIRST[..38].to_vec();
    f[16..18].copy_from_slice(&24u16.to_be_bytes());
    let csum = ipv4_header_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&csum.to_be_bytes());
    let (key, layout) = extract_layout(&f, IN_PORT);
    assert_eq!(layout.malformed, None);
    assert_eq!((key.nw_frag, key.tp_src, layout.l4), (FRAG_ANY, 0, 0));
}

fn ipv4_header_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h
        .chunks(2)
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .map(|(_, c)| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

#[test]
fn golden_checksums_are_valid() {
    // The frames double as rewrite inputs in other tests; keep them honest.
    for g in goldens() {
        if g.layout.l3_kind == L3Kind::Ipv4 {
            let l3 = usize::from(g.layout.l3);
            let ihl = usize::from(g.frame[l3] & 15) * 4;
            let h = &g.frame[l3..l3 + ihl];
            assert_eq!(
                ipv4_header_checksum(h),
                u16::from_be_bytes([h[10], h[11]]),
                "{}",
                g.name
            );
        }
    }
}

#[test]
fn padding_is_never_parsed() {
    for g in goldens() {
        let mut f = g.frame.to_vec();
        f.extend_from_slice(&[0xff; 40]);
        assert_eq!(extract_layout(&f, IN_PORT), (g.key, g.layout), "{}", g.name);
    }
}

/// Layout invariants that hold for every input.
fn check_invariants(frame: &[u8], key: &FlowKey, layout: &Layout) {
    assert_eq!(layout.l3 == 0, layout.l3_kind == L3Kind::None);
    assert_eq!(layout.l4 == 0, layout.l4_kind == L4Kind::None);
    if layout.l4 != 0 {
        assert!(layout.l4 > layout.l3 && layout.l3 != 0);
        assert!(usize::from(layout.l4) + 8 <= frame.len());
    }
    if layout.l3 != 0 {
        assert!(usize::from(layout.l3) + 20 <= frame.len());
    }
    assert_eq!(key.vlan_tci != 0, layout.n_vlans >= 1);
    assert_eq!(key.inner_vlan_tci != 0, layout.n_vlans == 2);
    assert_eq!(key.in_port, IN_PORT.0);
    assert_eq!(key.metadata, 0);
    assert!(!layout.l4_csum_partial);
    if frame.len() < 14 {
        assert_eq!(layout.malformed, Some(Malformed::Runt));
    }
    if key.nw_frag & FRAG_LATER != 0 {
        assert_eq!(layout.l4, 0);
    }
}

/// A frame built from random valid header values, and the key it must give.
fn valid_frame() -> impl Strategy<Value = (Vec<u8>, FlowKey)> {
    (
        any::<[u8; 6]>(),
        any::<[u8; 6]>(),
        prop::collection::vec(
            (prop::sample::select(vec![0x8100u16, 0x88a8]), any::<u16>()),
            0..=2,
        ),
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
        1u8..=255,
        any::<u16>(),
        any::<u16>(),
        0u8..3,
        prop::collection::vec(any::<u8>(), 0..40),
        0usize..8,
    )
        .prop_map(
            |(dst, src, tags, s, d, tos, ttl, sp, dp, l4, payload, pad)| {
                let mut f = Vec::new();
                f.extend_from_slice(&dst);
                f.extend_from_slice(&src);
                for (tpid, tci) in &tags {
                    f.extend_from_slice(&tpid.to_be_bytes());
                    f.extend_from_slice(&tci.to_be_bytes());
                }
                f.extend_from_slice(&[0x08, 0x00]);
                let (proto, mut seg) = match l4 {
                    0 => (6u8, vec![0u8; 20]),
                    1 => (17, vec![0u8; 8]),
                    _ => (132, vec![0u8; 12]),
                };
                seg[0..2].copy_from_slice(&sp.to_be_bytes());
                seg[2..4].copy_from_slice(&dp.to_be_bytes());
                if proto == 6 {
                    seg[12] = 0x50 | (tos & 1);
                    seg[13] = ttl;
                }
                seg.extend_from_slice(&payload);
                let tot = (20 + seg.len()) as u16;
                f.extend_from_slice(&[0x45, tos]);
                f.extend_from_slice(&tot.to_be_bytes());
                f.extend_from_slice(&[0, 0, 0x40, 0, ttl, proto, 0, 0]);
                f.extend_from_slice(&s.to_be_bytes());
                f.extend_from_slice(&d.to_be_bytes());
                f.extend_from_slice(&seg);
                f.extend(std::iter::repeat_n(0xee, pad));
                let key = FlowKey {
                    in_port: IN_PORT.0,
                    dl_dst: dst,
                    dl_src: src,
                    dl_type: 0x0800,
                    vlan_tci: tags.first().map_or(0, |t| t.1 | 0x1000),
                    inner_vlan_tci: tags.get(1).map_or(0, |t| t.1 | 0x1000),
                    nw_src: s,
                    nw_dst: d,
                    nw_proto: proto,
                    nw_tos: tos,
                    nw_ttl: ttl,
                    tp_src: sp,
                    tp_dst: dp,
                    tcp_flags: if proto == 6 {
                        (u16::from(tos & 1) << 8) | u16::from(ttl)
                    } else {
                        0
                    },
                    ..FlowKey::ZERO
                };
                (f, key)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(f in prop::collection::vec(any::<u8>(), 0..300)) {
        let (key, layout) = extract_layout(&f, IN_PORT);
        prop_assert_eq!(extract(&f, IN_PORT), key);
        check_invariants(&f, &key, &layout);
        // vlan-limit 1: at most the outer tag; the same key as without a
        // limit unless a second tag was there to parse.
        let (k1, l1) = extract_layout_vlans(&f, IN_PORT, 1);
        check_invariants(&f, &k1, &l1);
        prop_assert!(l1.n_vlans <= 1);
        if layout.n_vlans < 2 && layout.malformed != Some(Malformed::VlanTruncated) {
            prop_assert_eq!((k1, l1), (key, layout));
        }
    }

    /// Random bytes behind a fixed Ethernet type, so the IP/ARP parsers see
    /// plenty of input.
    #[test]
    fn random_l3_never_panic(ty in prop::sample::select(vec![0x0800u16, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x0040]),
                             ext in prop::sample::select(vec![0u8, 43, 44, 51, 60, 6, 17, 58]),
                             f in prop::collection::vec(any::<u8>(), 14..300)) {
        let mut f = f;
        f[12..14].copy_from_slice(&ty.to_be_bytes());
        if ty == 0x86dd && f.len() > 20 {
            f[14] = 0x60;
            f[20] = ext;
        }
        if ty == 0x0800 && f.len() > 14 {
            f[14] = 0x40 | (f[14] & 0x0f);
        }
        let (key, layout) = extract_layout(&f, IN_PORT);
        check_invariants(&f, &key, &layout);
    }

    /// Golden frames with random byte changes, truncation and extension.
    #[test]
    fn mutated_goldens_never_panic(which in any::<prop::sample::Index>(),
                                   edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
                                   cut in any::<prop::sample::Index>(),
                                   tail in prop::collection::vec(any::<u8>(), 0..20)) {
        let gs = goldens();
        let g = &gs[which.index(gs.len())];
        let mut f = g.frame.to_vec();
        for (i, b) in edits {
            let i = i.index(f.len());
            f[i] = b;
        }
        f.truncate(cut.index(f.len() + 1));
        let (key, layout) = extract_layout(&f, IN_PORT);
        check_invariants(&f, &key, &layout);
        f.extend_from_slice(&tail);
        let (key, layout) = extract_layout(&f, IN_PORT);
        check_invariants(&f, &key, &layout);
    }

    /// Frames built from random valid headers parse to exactly those
    /// values, unflagged.
    #[test]
    fn valid_frames_parse_exactly((f, want) in valid_frame()) {
        let (key, layout) = extract_layout(&f, IN_PORT);
        prop_assert_eq!(key, want);
        prop_assert_eq!(layout.malformed, None);
        prop_assert!(layout.l4 != 0);
        check_invariants(&f, &key, &layout);
        // Any strict prefix that cuts the IP packet is flagged.
        let end = f.len() - f.iter().rev().take_while(|&&b| b == 0xee).count().min(7);
        for n in [0, 13, 14, end.saturating_sub(1)] {
            if n < end {
                prop_assert!(extract_layout(&f[..n], IN_PORT).1.malformed.is_some(), "cut at {}", n);
            }
        }
    }
}
