//! Round trips for every message type in both versions, error cases, and
//! random bytes into the decoder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::error::{bad_action, bad_instruction, bad_match, bad_request, flow_mod_failed};
use super::msg::*;
use super::multipart::*;
use super::*;
use flowtable::syntax::parse_flow;
use flowtable::{Action, Match, PortNo};
use proptest::prelude::*;

fn none(_: &str) -> Option<PortNo> {
    None
}

fn flow(s: &str) -> flowtable::syntax::Flow {
    parse_flow(s, &none).unwrap()
}

fn m(s: &str) -> Match {
    flow(&format!("{s},actions=drop")).m
}

/// A 60-byte ARP request frame.
pub(crate) fn arp_frame() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x52, 0x54, 0, 0, 0, 1, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 0x52, 0x54, 0, 0, 0, 1, 10, 0, 0, 1]);
    f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    f.resize(60, 0);
    f
}

pub(crate) fn port(no: u32, name: &str, version: u8) -> PortDesc {
    PortDesc::new(
        version,
        PortNo(no),
        name,
        [0x52, 0x54, 0, 0, 0, no as u8],
        true,
    )
}

/// Flows used in flow stats: one per interesting action/match kind.
pub(crate) fn sample_flows() -> Vec<flowtable::syntax::Flow> {
    [
        "priority=0,actions=NORMAL",
        "cookie=0x10,priority=100,in_port=1,dl_vlan=10,actions=strip_vlan,output:2",
        "priority=200,ip,nw_src=10.0.0.0/8,nw_dst=192.168.1.1,actions=dec_ttl,mod_dl_dst:00:11:22:33:44:55,output:3",
        "idle_timeout=30,hard_timeout=60,tcp,tp_dst=80,actions=CONTROLLER:128",
        "arp,arp_tpa=10.0.0.1,actions=FLOOD",
        "in_port=LOCAL,actions=push_vlan:0x8100,mod_vlan_vid:10,output:1,goto_table:2",
        "icmp6,ipv6_src=2001:db8::/32,icmpv6_type=135,actions=ALL",
        "vlan_tci=0,actions=IN_PORT",
        "udp,nw_tos=32,tp_src=53,actions=mod_tp_dst:5353,mod_nw_src:1.2.3.4,LOCAL",
        "table=3,metadata=0x5/0xff,dl_type=0x88cc,actions=drop",
        "table=4,tun_id=0x5/0xff,tun_src=1.2.3.4,tun_dst=10.0.0.0/8,tun_flags=+oam,actions=set_tunnel64:0x123456789,set_field:5.6.7.8->tun_dst,set_field:1.1.1.1->tun_src,set_field:oam->tun_flags,set_tunnel:0x7,output:1",
        "in_port=2,actions=set_tunnel:0x5,set_tunnel64:0x123456789,output:1",
    ]
    .iter()
    .map(|s| flow(s))
    .collect()
}

/// One of every message, as the switch or a controller would send it.
pub(crate) fn sample_messages(version: u8) -> Vec<(&'static str, Message)> {
    let v10 = version == OFP10_VERSION;
    let ports = vec![
        port(1, "tap1", version),
        port(2, "veth-b", version),
        port(0xfffe, "br0", version),
    ];
    let flows = sample_flows();
    let fstats: Vec<FlowStats> = flows
        .iter()
        .filter(|f| {
            // What OpenFlow 1.0 can express: table 0, no IPv6, no
            // push_vlan or goto_table.
            !v10 || f.table.0 == 0
                && f.m.key().dl_type != 0x86dd
                && !f
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::PushVlan(_) | Action::GotoTable(_)))
        })
        .enumerate()
        .map(|(i, f)| FlowStats::new(f, 1500 * i as u64, 3 * i as u64, 180 * i as u64))
        .collect();
    let fm = |s: &str, command, out_port| {
        let f = flow(s);
        FlowMod {
            cookie: f.cookie,
            cookie_mask: 0,
            table_id: f.table.0,
            command,
            idle_timeout: f.idle_timeout,
            hard_timeout: f.hard_timeout,
            priority: f.priority.0,
            buffer_id: NO_BUFFER,
            out_port,
            out_group: u32::MAX,
            flags: flow_mod_flags::SEND_FLOW_REM,
            m: f.m,
            actions: f.actions,
        }
    };
    let mut v = vec![
        (
            "hello",
            Message::Hello(Hello {
                versions: SUPPORTED_VERSIONS,
            }),
        ),
        (
            "error",
            Message::Error(if v10 {
                // BAD_VENDOR for an NXT_SET_FLOW_FORMAT, as ovs-ofctl sends it.
                ErrorMsg {
                    etype: 1,
                    code: 3,
                    data: vec![
                        1, 4, 0, 20, 0, 0, 0, 9, 0, 0, 0x23, 0x20, 0, 0, 0, 12, 0, 0, 0, 2,
                    ],
                }
            } else {
                // BAD_TYPE for a GROUP_MOD (only its header, for brevity).
                ErrorMsg {
                    etype: 1,
                    code: 1,
                    data: vec![4, 2, 0, 8, 0, 0, 0, 9],
                }
            }),
        ),
        ("echo_request", Message::EchoRequest(vec![1, 2, 3])),
        ("echo_reply", Message::EchoReply(vec![])),
        (
            "experimenter",
            Message::Experimenter(Experimenter {
                experimenter: action::NX_VENDOR_ID,
                // NXT_SET_FLOW_FORMAT(NXM) / NXT_SET_PACKET_IN_FORMAT(NXT).
                exp_type: if v10 { 12 } else { 16 },
                data: vec![0, 0, 0, if v10 { 2 } else { 1 }],
            }),
        ),
        ("features_request", Message::FeaturesRequest),
        (
            "features_reply",
            Message::FeaturesReply(FeaturesReply {
                datapath_id: 0x0000_5254_0000_00aa,
                n_buffers: 0,
                n_tables: 254,
                auxiliary_id: 0,
                capabilities: CAPABILITIES,
                actions: if v10 { OF10_ACTIONS } else { 0 },
                ports: if v10 { ports.clone() } else { vec![] },
            }),
        ),
        ("get_config_request", Message::GetConfigRequest),
        (
            "get_config_reply",
            Message::GetConfigReply(SwitchConfig {
                flags: 0,
                miss_send_len: 128,
            }),
        ),
        (
            "set_config",
            Message::SetConfig(SwitchConfig {
                flags: 0,
                miss_send_len: 0xffff,
            }),
        ),
        (
            "packet_in",
            Message::PacketIn(PacketIn::from_frame(
                PortNo(2),
                packet_in_reason::ACTION,
                if v10 { 0 } else { 3 },
                if v10 { u64::MAX } else { 0x1234 },
                &arp_frame(),
                0xffff,
            )),
        ),
        (
            "flow_removed",
            Message::FlowRemoved(FlowRemoved {
                cookie: 7,
                priority: 100,
                reason: 0,
                table_id: 0,
                duration_sec: 31,
                duration_nsec: 5000,
                idle_timeout: 30,
                hard_timeout: if v10 { 0 } else { 60 },
                packet_count: 10,
                byte_count: 1000,
                m: m("tcp,nw_dst=10.0.0.0/24,tp_dst=22"),
            }),
        ),
        (
            "port_status",
            Message::PortStatus(PortStatus {
                reason: 0,
                desc: port(3, "tap3", version),
            }),
        ),
        (
            "packet_out",
            Message::PacketOut(PacketOut {
                buffer_id: NO_BUFFER,
                in_port: PortNo::CONTROLLER,
                actions: vec![Action::Flood, Action::Output(PortNo(3))],
                data: arp_frame(),
            }),
        ),
        (
            "packet_out_table",
            Message::PacketOut(PacketOut {
                buffer_id: NO_BUFFER,
                in_port: PortNo(1),
                actions: vec![Action::Output(PortNo::TABLE)],
                data: arp_frame(),
            }),
        ),
        (
            "flow_mod_add",
            Message::FlowMod(fm(
                "priority=200,ip,nw_src=10.0.0.0/8,actions=dec_ttl,output:3",
                FlowModCommand::Add,
                PortNo::NONE,
            )),
        ),
        (
            "flow_mod_delete",
            Message::FlowMod(FlowMod {
                table_id: msg::OFPTT_ALL,
                actions: vec![],
                ..fm("in_port=1,actions=drop", FlowModCommand::Delete, PortNo(2))
            }),
        ),
        (
            "flow_mod_modify_strict",
            Message::FlowMod(FlowMod {
                table_id: if v10 { msg::OFPTT_ALL } else { 0 },
                ..fm(
                    "priority=5,dl_vlan=10,actions=mod_vlan_pcp:3,NORMAL",
                    FlowModCommand::ModifyStrict,
                    PortNo::NONE,
                )
            }),
        ),
        ("barrier_request", Message::BarrierRequest),
        ("barrier_reply", Message::BarrierReply),
    ];
    let mp = |flags, body| Message::MultipartRequest(MultipartRequest { flags, body });
    let mr = |body| Message::MultipartReply(MultipartReply { flags: 0, body });
    let fsr = FlowStatsRequest {
        table_id: if v10 { 0xff } else { 1 },
        out_port: PortNo::NONE,
        out_group: u32::MAX,
        cookie: 0,
        cookie_mask: 0,
        m: m("ip"),
    };
    v.extend([
        ("desc_request", mp(0, MpRequest::Desc)),
        ("flow_stats_request", mp(0, MpRequest::Flow(fsr.clone()))),
        ("aggregate_request", mp(0, MpRequest::Aggregate(fsr))),
        ("table_stats_request", mp(0, MpRequest::Table)),
        (
            "port_stats_request",
            mp(0, MpRequest::PortStats(PortNo::NONE)),
        ),
        (
            "vendor_stats_request",
            mp(
                0,
                MpRequest::Experimenter {
                    experimenter: action::NX_VENDOR_ID,
                    exp_type: 0,
                    // NXST_FLOW: pad, out_port NONE, match_len 0, all tables.
                    data: vec![0, 0, 0, 0, 0xff, 0xff, 0, 0, 0xff, 0, 0, 0],
                },
            ),
        ),
        (
            "desc_reply",
            mr(MpReply::Desc(Desc {
                mfr_desc: "rvs".into(),
                hw_desc: "rvs userspace switch".into(),
                sw_desc: "0.1.0".into(),
                serial_num: "None".into(),
                dp_desc: "br0".into(),
            })),
        ),
        ("flow_stats_reply", mr(MpReply::Flow(fstats))),
        (
            "aggregate_reply",
            mr(MpReply::Aggregate(AggregateStats {
                packet_count: 12,
                byte_count: 3400,
                flow_count: 5,
            })),
        ),
        (
            "table_stats_reply",
            mr(MpReply::Table(
                (0..2)
                    .map(|t| TableStats {
                        table_id: t,
                        name: if v10 {
                            format!("table{t}")
                        } else {
                            String::new()
                        },
                        max_entries: if v10 { 1_000_000 } else { 0 },
                        active_count: 3 - u32::from(t),
                        lookup_count: 100,
                        matched_count: 90,
                    })
                    .collect(),
            )),
        ),
        (
            "port_stats_reply",
            mr(MpReply::PortStats(vec![PortStats {
                port_no: PortNo(1),
                rx_packets: 5,
                tx_packets: 6,
                rx_bytes: 500,
                tx_bytes: 600,
                rx_dropped: 1,
                duration_sec: if v10 { 0 } else { 42 },
                ..PortStats::default()
            }])),
        ),
    ]);
    if !v10 {
        v.extend([
            ("port_desc_request", mp(0, MpRequest::PortDesc)),
            (
                "table_features_request",
                mp(0, MpRequest::TableFeatures(vec![])),
            ),
            ("port_desc_reply", mr(MpReply::PortDesc(ports))),
            (
                "table_features_reply",
                mr(MpReply::TableFeatures(vec![TableFeatures::rvs(
                    0, 2, 1_000_000,
                )])),
            ),
            (
                "role_request",
                Message::RoleRequest(Role {
                    role: 2,
                    generation_id: 9,
                }),
            ),
            (
                "role_reply",
                Message::RoleReply(Role {
                    role: 2,
                    generation_id: 9,
                }),
            ),
            ("get_async_request", Message::GetAsyncRequest),
            (
                "get_async_reply",
                Message::GetAsyncReply(AsyncConfig {
                    packet_in_mask: [3, 0],
                    port_status_mask: [7, 7],
                    flow_removed_mask: [15, 0],
                }),
            ),
            (
                "set_async",
                Message::SetAsync(AsyncConfig {
                    packet_in_mask: [3, 0],
                    port_status_mask: [7, 7],
                    flow_removed_mask: [15, 0],
                }),
            ),
        ]);
    }
    // NXST_* stats requests exist in OpenFlow 1.0 only.
    v.retain(|(n, _)| v10 || *n != "vendor_stats_request");
    v
}

#[test]
fn every_message_round_trips() {
    for version in [OFP10_VERSION, OFP13_VERSION] {
        let msgs = sample_messages(version);
        assert!(msgs.len() >= if version == OFP10_VERSION { 31 } else { 39 });
        for (i, (name, msg)) in msgs.into_iter().enumerate() {
            let bytes = encode(version, i as u32, &msg).unwrap();
            assert_eq!(frame(&bytes, MAX_MSG_LEN), Ok(Some(bytes.len())), "{name}");
            let (h, back) = decode(&bytes).unwrap_or_else(|e| panic!("{name} v{version}: {e}"));
            assert_eq!(h.xid, i as u32, "{name}");
            if name != "hello" {
                assert_eq!(h.version, version);
            }
            assert_eq!(back, msg, "{name} v{version}");
            // And bytes → message → bytes.
            assert_eq!(encode(version, i as u32, &back).unwrap(), bytes, "{name}");
        }
    }
}

#[test]
fn one_three_only_messages_refuse_one_zero() {
    let e = encode(OFP10_VERSION, 1, &Message::RoleRequest(Role::default()));
    assert!(matches!(e, Err(EncodeError::NotInVersion { .. })));
    let e = encode(
        OFP10_VERSION,
        1,
        &Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MpReply::PortDesc(vec![]),
        }),
    );
    assert!(matches!(e, Err(EncodeError::NotInVersion { .. })));
    // A 1.0 peer sending ROLE_REQUEST's type number gets BAD_TYPE.
    let bytes = [1u8, 24, 0, 8, 0, 0, 0, 1];
    assert_eq!(
        decode(&bytes).unwrap_err().error,
        OfpError::new(ErrorType::BadRequest, bad_request::BAD_TYPE)
    );
    assert_eq!(
        encode(7, 1, &Message::BarrierRequest),
        Err(EncodeError::BadVersion(7))
    );
}

#[test]
fn hello_negotiation() {
    // OVS 1.3-only hello with a bitmap element.
    let b = [4u8, 0, 0, 16, 0, 0, 0, 1, 0, 1, 0, 8, 0, 0, 0, 0x10];
    let Message::Hello(h) = decode(&b).unwrap().1 else {
        panic!()
    };
    assert_eq!(negotiate(SUPPORTED_VERSIONS, &h), Some(4));
    // A 1.0 peer (no elements): versions 1..=1.
    let Message::Hello(h) = decode(&[1u8, 0, 0, 8, 0, 0, 0, 1]).unwrap().1 else {
        panic!()
    };
    assert_eq!(h.versions, 0b10);
    assert_eq!(negotiate(SUPPORTED_VERSIONS, &h), Some(1));
    // A 1.5 peer without bitmap speaks everything up to 1.5.
    let Message::Hello(h) = decode(&[6u8, 0, 0, 8, 0, 0, 0, 1]).unwrap().1 else {
        panic!()
    };
    assert_eq!(negotiate(SUPPORTED_VERSIONS, &h), Some(4));
    // Only 1.4 and 1.5: nothing in common.
    let b = [6u8, 0, 0, 16, 0, 0, 0, 1, 0, 1, 0, 8, 0, 0, 0, 0x60];
    let Message::Hello(h) = decode(&b).unwrap().1 else {
        panic!()
    };
    assert_eq!(negotiate(SUPPORTED_VERSIONS, &h), None);
    let e = hello_failed(6, 1);
    assert_eq!(&e[..2], &[4, 1]);
    assert_eq!(&e[8..12], &[0, 0, 0, 0]);
    // Our hello: version 4 with the 1.0+1.3 bitmap, as OVS sends it.
    let ours = encode(
        4,
        1,
        &Message::Hello(Hello {
            versions: SUPPORTED_VERSIONS,
        }),
    )
    .unwrap();
    assert_eq!(ours, [4, 0, 0, 16, 0, 0, 0, 1, 0, 1, 0, 8, 0, 0, 0, 0x12]);
}

/// Regression (found by `mutated_messages_never_panic`): a HELLO from a
/// version >= 31 overflowed a shift.
#[test]
fn hello_from_far_future_versions() {
    for v in [30u8, 31, 32, 255] {
        let Message::Hello(h) = decode(&[v, 0, 0, 8, 0, 0, 0, 1]).unwrap().1 else {
            panic!()
        };
        assert_eq!(negotiate(SUPPORTED_VERSIONS, &h), Some(4));
        let b = encode(4, 1, &Message::Hello(h)).unwrap();
        assert_eq!(decode(&b).unwrap().1, Message::Hello(h));
    }
}

#[test]
fn framing() {
    let mut stream = encode(4, 1, &Message::EchoRequest(vec![9; 10])).unwrap();
    stream.extend(encode(4, 2, &Message::BarrierRequest).unwrap());
    assert_eq!(frame(&stream, 100), Ok(Some(18)));
    assert_eq!(frame(&stream[18..], 100), Ok(Some(8)));
    assert_eq!(frame(&stream[..17], 100), Ok(None));
    assert_eq!(frame(&stream[..3], 100), Ok(None));
    assert_eq!(
        frame(&stream, 10),
        Err(FrameError::TooLong { len: 18, max: 10 })
    );
    assert_eq!(frame(&[4, 0, 0, 4], 100), Err(FrameError::TooShort(4)));
}

#[test]
fn error_reply_quotes_64_bytes() {
    let big = encode(4, 77, &Message::EchoRequest(vec![0xab; 200])).unwrap();
    let e = error_reply(
        4,
        OfpError::new(ErrorType::BadRequest, bad_request::BAD_TYPE),
        &big,
    );
    let (h, m) = decode(&e).unwrap();
    assert_eq!(h.xid, 77);
    let Message::Error(em) = m else { panic!() };
    assert_eq!((em.etype, em.code), (1, 1));
    assert_eq!(em.data, big[..64].to_vec());
}

#[test]
fn multipart_reply_splits_with_more() {
    let tf: Vec<TableFeatures> = (0..254u8)
        .map(|t| TableFeatures::rvs(t, 254, 1_000_000))
        .collect();
    let msgs =
        encode_multipart_reply(4, 5, &MpReply::TableFeatures(tf.clone()), MAX_MSG_LEN).unwrap();
    assert!(msgs.len() > 1);
    let mut back = Vec::new();
    for (i, b) in msgs.iter().enumerate() {
        assert!(b.len() <= MAX_MSG_LEN);
        let (h, m) = decode(b).unwrap();
        assert_eq!(h.xid, 5);
        let Message::MultipartReply(r) = m else {
            panic!()
        };
        assert_eq!(r.flags == MPF_MORE, i + 1 < msgs.len());
        let MpReply::TableFeatures(t) = r.body else {
            panic!()
        };
        back.extend(t);
    }
    assert_eq!(back, tf);
    // A small reply is one message without MORE.
    let one = encode_multipart_reply(1, 5, &MpReply::Table(vec![]), 0).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(&one[0][8..12], &[0, 3, 0, 0]);
}

/// A FLOW_MOD ADD in 1.3 with the given match TLVs and instructions.
fn raw_flow_mod(table: u8, oxms: &[u8], insts: &[u8]) -> Vec<u8> {
    let mut b = vec![4, 14, 0, 0, 0, 0, 0, 1];
    b.extend([0; 16]); // cookie, mask
    b.extend([table, 0, 0, 0, 0, 0, 0x80, 0]);
    b.extend([0xff; 12]); // buffer, out_port, out_group
    b.extend([0, 0, 0, 0]);
    let mlen = 4 + oxms.len();
    b.extend([0, 1, 0, mlen as u8]);
    b.extend(oxms);
    b.resize(b.len() + (mlen.next_multiple_of(8) - mlen), 0);
    b.extend(insts);
    let l = b.len() as u16;
    b[2..4].copy_from_slice(&l.to_be_bytes());
    b
}

fn apply(actions: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 4, 0, (8 + actions.len()) as u8, 0, 0, 0, 0];
    b.extend(actions);
    b
}

const OUTPUT_1: [u8; 16] = [0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
const ETH_TYPE_IP: [u8; 6] = [0x80, 0, 0x0a, 2, 0x08, 0x00];

fn err_of(b: &[u8]) -> OfpError {
    decode(b).unwrap_err().error
}

#[test]
fn unsupported_things_get_the_right_error() {
    use ErrorType::*;
    // Unknown action type (GROUP).
    let b = raw_flow_mod(0, &[], &apply(&[0, 22, 0, 8, 0, 0, 0, 1]));
    assert_eq!(err_of(&b), OfpError::new(BadAction, bad_action::BAD_TYPE));
    // Unknown instruction.
    let b = raw_flow_mod(0, &[], &[0, 9, 0, 8, 0, 0, 0, 0]);
    assert_eq!(
        err_of(&b),
        OfpError::new(BadInstruction, bad_instruction::UNKNOWN_INST)
    );
    // METER instruction: meter 1 runs first; meter 0 is invalid.
    let mut insts = vec![0, 6, 0, 8, 0, 0, 0, 1];
    insts.extend(apply(&OUTPUT_1));
    let b = raw_flow_mod(0, &[], &insts);
    match decode(&b).unwrap().1 {
        Message::FlowMod(fm) => assert_eq!(
            fm.actions,
            vec![Action::Meter(1), Action::Output(PortNo(1))]
        ),
        m => panic!("{m:?}"),
    }
    let b = raw_flow_mod(0, &[], &[0, 6, 0, 8, 0, 0, 0, 0]);
    assert_eq!(
        err_of(&b),
        OfpError::new(MeterModFailed, flowtable::meter::code::INVALID_METER)
    );
    // goto_table backwards.
    let b = raw_flow_mod(3, &[], &[0, 1, 0, 8, 2, 0, 0, 0]);
    assert_eq!(
        err_of(&b),
        OfpError::new(BadInstruction, bad_instruction::BAD_TABLE_ID)
    );
    // MPLS_LABEL match field.
    let b = raw_flow_mod(0, &[0x80, 0, 0x44, 4, 0, 0, 0, 1], &[]);
    assert_eq!(err_of(&b), OfpError::new(BadMatch, bad_match::BAD_FIELD));
    // NXM class field.
    let b = raw_flow_mod(0, &[0, 1, 0x00, 4, 0, 0, 0, 1], &[]);
    assert_eq!(err_of(&b), OfpError::new(BadMatch, bad_match::BAD_FIELD));
    // IPV4_SRC without eth_type.
    let b = raw_flow_mod(0, &[0x80, 0, 0x16, 4, 10, 0, 0, 1], &[]);
    assert_eq!(err_of(&b), OfpError::new(BadMatch, bad_match::BAD_PREREQ));
    // ...which is fine after ETH_TYPE=0x0800, even in that order.
    let mut ok = vec![0x80, 0, 0x16, 4, 10, 0, 0, 1];
    ok.extend(ETH_TYPE_IP);
    let (_, Message::FlowMod(f)) = decode(&raw_flow_mod(0, &ok, &[])).unwrap() else {
        panic!()
    };
    assert_eq!(f.m, m("ip,nw_src=10.0.0.1"));
    // Duplicate field.
    let mut dup = ETH_TYPE_IP.to_vec();
    dup.extend(ETH_TYPE_IP);
    assert_eq!(
        err_of(&raw_flow_mod(0, &dup, &[])),
        OfpError::new(BadMatch, bad_match::DUP_FIELD)
    );
    // Value bits outside the mask.
    let b = raw_flow_mod(
        0,
        &[0x80, 0, 0x07, 12, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0, 0, 0],
        &[],
    );
    assert_eq!(
        err_of(&b),
        OfpError::new(BadMatch, bad_match::BAD_WILDCARDS)
    );
    // Mask on a non-maskable field (ETH_TYPE).
    let b = raw_flow_mod(0, &[0x80, 0, 0x0b, 4, 8, 0, 0xff, 0xff], &[]);
    assert_eq!(err_of(&b), OfpError::new(BadMatch, bad_match::BAD_MASK));
    // VLAN_PCP without VLAN_VID.
    let b = raw_flow_mod(0, &[0x80, 0, 0x0e, 1, 3], &[]);
    assert_eq!(err_of(&b), OfpError::new(BadMatch, bad_match::BAD_PREREQ));
    // set_field ipv4_src without ip in the match.
    let sf = [0, 25, 0, 16, 0x80, 0, 0x16, 4, 1, 2, 3, 4, 0, 0, 0, 0];
    let b = raw_flow_mod(0, &[], &apply(&sf));
    assert_eq!(
        err_of(&b),
        OfpError::new(BadAction, bad_action::MATCH_INCONSISTENT)
    );
    let (_, Message::FlowMod(f)) = decode(&raw_flow_mod(0, &ETH_TYPE_IP, &apply(&sf))).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        f.to_flow().unwrap().to_string(),
        "ip actions=mod_nw_src:1.2.3.4"
    );
    // set_field eth_type is read-only.
    let sf = [0, 25, 0, 16, 0x80, 0, 0x0a, 2, 0x08, 0, 0, 0, 0, 0, 0, 0];
    let b = raw_flow_mod(0, &[], &apply(&sf));
    assert_eq!(
        err_of(&b),
        OfpError::new(BadAction, bad_action::BAD_SET_ARGUMENT)
    );
    // Output to a port in the invalid gap, and to OFPP_ANY.
    let mut out = OUTPUT_1;
    out[4..8].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    let b = raw_flow_mod(0, &[], &apply(&out));
    assert_eq!(
        err_of(&b),
        OfpError::new(BadAction, bad_action::BAD_OUT_PORT)
    );
    out[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    let b = raw_flow_mod(0, &[], &apply(&out));
    assert_eq!(
        err_of(&b),
        OfpError::new(BadAction, bad_action::BAD_OUT_PORT)
    );
    // Bad action length.
    let b = raw_flow_mod(0, &[], &apply(&OUTPUT_1[..12]));
    assert_eq!(err_of(&b).etype, BadInstruction);
    let mut short = OUTPUT_1;
    short[3] = 8;
    let b = raw_flow_mod(0, &[], &apply(&short));
    assert_eq!(err_of(&b), OfpError::new(BadAction, bad_action::BAD_LEN));
    // Unknown Nicira action subtype, unknown experimenter.
    let nx = [0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 99, 0, 0, 0, 0, 0, 0];
    let b = raw_flow_mod(0, &[], &apply(&nx));
    assert_eq!(
        err_of(&b),
        OfpError::new(BadAction, bad_action::BAD_EXP_TYPE)
    );
    let xx = [0xff, 0xff, 0, 16, 0, 0, 0x99, 0x20, 0, 1, 0, 0, 0, 0, 0, 0];
    let b = raw_flow_mod(0, &[], &apply(&xx));
    assert_eq!(
        err_of(&b),
        OfpError::new(BadAction, bad_action::BAD_EXPERIMENTER)
    );
    // ADD to OFPTT_ALL.
    let b = raw_flow_mod(0xff, &[], &[]);
    assert_eq!(
        err_of(&b),
        OfpError::new(FlowModFailed, flow_mod_failed::BAD_TABLE_ID)
    );
    // Bad command.
    let mut b = raw_flow_mod(0, &[], &[]);
    b[25] = 9;
    assert_eq!(
        err_of(&b),
        OfpError::new(FlowModFailed, flow_mod_failed::BAD_COMMAND)
    );
    // Unsupported message types and multipart types.
    assert_eq!(
        err_of(&[4, 15, 0, 8, 0, 0, 0, 1]),
        OfpError::new(BadRequest, bad_request::BAD_TYPE)
    );
    assert_eq!(
        err_of(&[4, 18, 0, 16, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]),
        OfpError::new(BadRequest, bad_request::BAD_MULTIPART)
    );
    assert_eq!(
        err_of(&[5, 2, 0, 8, 0, 0, 0, 1]),
        OfpError::new(BadRequest, bad_request::BAD_VERSION)
    );
    // Truncated body.
    assert_eq!(
        err_of(&[4, 14, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0]),
        OfpError::new(BadRequest, bad_request::BAD_LEN)
    );
    // Length field disagreeing with the buffer.
    assert_eq!(
        err_of(&[4, 2, 0, 9, 0, 0, 0, 1]),
        OfpError::new(BadRequest, bad_request::BAD_LEN)
    );
}

#[test]
fn write_actions_and_metadata_map_to_the_action_list() {
    // WRITE_ACTIONS(output:1) + APPLY_ACTIONS(pop_vlan) + WRITE_METADATA + GOTO 5.
    let mut insts = vec![0, 3, 0, 24, 0, 0, 0, 0];
    insts.extend(OUTPUT_1);
    insts.extend(apply(&[0, 18, 0, 8, 0, 0, 0, 0]));
    insts.extend([0, 2, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
    insts.extend([0xff; 8]);
    insts.extend([0, 1, 0, 8, 5, 0, 0, 0]);
    let (_, Message::FlowMod(f)) = decode(&raw_flow_mod(1, &[], &insts)).unwrap() else {
        panic!()
    };
    assert_eq!(
        f.to_flow().unwrap().to_string(),
        "table=1, actions=strip_vlan,output:1,set_field:0x7->metadata,goto_table:5"
    );
    // A partial metadata mask is refused.
    let mut insts = vec![0, 2, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    insts.extend([0, 0, 0, 0, 0, 0, 0, 0xff]);
    assert_eq!(
        err_of(&raw_flow_mod(0, &[], &insts)),
        OfpError::new(
            ErrorType::BadInstruction,
            bad_instruction::UNSUP_METADATA_MASK
        )
    );
}

#[test]
fn ports_convert_both_ways() {
    for p in [
        1, 2, 0xff00, 0xfff8, 0xfff9, 0xfffa, 0xfffb, 0xfffc, 0xfffd, 0xfffe, 0xffff,
    ] {
        let w = port_to_of13(PortNo(p));
        assert_eq!(port_from_of13(w), Some(PortNo(p)));
    }
    assert_eq!(port_to_of13(PortNo::LOCAL), 0xffff_fffe);
    assert_eq!(port_to_of13(PortNo::CONTROLLER), 0xffff_fffd);
    assert_eq!(port_to_of13(PortNo(5)), 5);
    assert_eq!(port_from_of13(0xff01), None);
    assert_eq!(port_from_of13(0xffff_feff), None);
}

#[test]
fn packet_in_carries_in_port_match() {
    let p = PacketIn::from_frame(
        PortNo::LOCAL,
        packet_in_reason::NO_MATCH,
        0,
        u64::MAX,
        &arp_frame(),
        128,
    );
    let b = encode(4, 0, &Message::PacketIn(p)).unwrap();
    // match: type 1, length 12, IN_PORT = 0xfffffffe, 4 bytes pad, then 2 pad.
    assert_eq!(
        &b[24..40],
        &[0, 1, 0, 12, 0x80, 0, 0, 4, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0]
    );
    assert_eq!(&b[42..], &arp_frame()[..]);
}

#[test]
fn flow_stats_encode_every_sample_flow_losslessly() {
    for f in sample_flows() {
        let s = FlowStats::new(&f, 0, 0, 0);
        let b = encode(
            4,
            0,
            &Message::MultipartReply(MultipartReply {
                flags: 0,
                body: MpReply::Flow(vec![s]),
            }),
        )
        .unwrap();
        let Message::MultipartReply(MultipartReply {
            body: MpReply::Flow(back),
            ..
        }) = decode(&b).unwrap().1
        else {
            panic!()
        };
        let g = &back[0];
        assert_eq!((g.m, &g.actions), (f.m, &f.actions), "{f}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(mut b in proptest::collection::vec(any::<u8>(), 0..300), v in prop_oneof![Just(1u8), Just(4u8)], t in 0u8..32) {
        if b.len() >= 8 {
            b[0] = v;
            b[1] = t;
            let l = b.len() as u16;
            b[2..4].copy_from_slice(&l.to_be_bytes());
        }
        let _ = decode(&b);
        let _ = frame(&b, MAX_MSG_LEN);
    }

    #[test]
    fn mutated_messages_never_panic(idx in 0usize..60, pos in any::<prop::sample::Index>(), val in any::<u8>(), cut in any::<prop::sample::Index>(), v in prop_oneof![Just(1u8), Just(4u8)]) {
        let msgs = sample_messages(v);
        let (_, msg) = &msgs[idx % msgs.len()];
        let mut b = encode(v, 1, msg).unwrap();
        let p = pos.index(b.len());
        b[p] = val;
        let n = 8.max(cut.index(b.len() + 1));
        let mut b = b[..n.min(b.len())].to_vec();
        let l = b.len() as u16;
        b[2..4].copy_from_slice(&l.to_be_bytes());
        if let Ok((h, m)) = decode(&b) {
            // Whatever decodes re-encodes and decodes to the same message.
            let again = encode(h.version, h.xid, &m).unwrap();
            prop_assert_eq!(decode(&again).unwrap().1, m);
        }
    }
}

/// The OXM TLVs `encode_oxms` writes for the match of `flow`.
fn oxms_of(text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    super::oxm::encode_oxms(&mut b, &flow(text).m);
    b
}

#[test]
fn partial_oxm_masks_carry_only_the_fields_bits() {
    // vlan_vid=96/0xf0 (os-ken's 06_VLAN_VID_Mask): mask 0x00f0, no PCP bits.
    assert_eq!(
        oxms_of("vlan_tci=0x0060/0x00f0,actions=drop"),
        [0x80, 0x00, 0x0d, 0x04, 0x00, 0x60, 0x00, 0xf0]
    );
    // Any tag (vlan_vid=0x1000/0x1000): mask 0x1000.
    assert_eq!(
        oxms_of("vlan_tci=0x1000/0x1000,actions=drop"),
        [0x80, 0x00, 0x0d, 0x04, 0x10, 0x00, 0x10, 0x00]
    );
    // An exact VID has no mask.
    assert_eq!(
        oxms_of("dl_vlan=5,actions=drop"),
        [0x80, 0x00, 0x0c, 0x02, 0x10, 0x05]
    );
    // ipv6_label=0x60/0xffff0: a 20-bit mask.
    let b = oxms_of("ipv6,ipv6_label=0x60/0xffff0,actions=drop");
    let label = [
        0x80, 0x00, 0x39, 0x08, 0x00, 0x00, 0x00, 0x60, 0x00, 0x0f, 0xff, 0xf0,
    ];
    assert!(b.ends_with(&label), "{b:02x?}");
}

// ---- message length limits -------------------------------------------------

/// Splits a byte stream into messages with [`frame`] and decodes each, as
/// a controller would; panics if the stream does not frame exactly.
fn decode_stream(mut s: &[u8]) -> Vec<(Header, Message)> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let n = frame(s, MAX_MSG_LEN)
            .expect("framing")
            .expect("a whole message");
        out.push(decode(&s[..n]).expect("decodes"));
        s = &s[n..];
    }
    out
}

/// A frame of `n` bytes: an Ethernet header, then a counting pattern.
fn big_frame(n: usize) -> Vec<u8> {
    let mut f = arp_frame()[..14].to_vec();
    f.extend((0..n - 14).map(|i| (i % 251) as u8));
    f
}

#[test]
fn packet_in_of_a_70000_byte_frame_fits_and_the_stream_still_frames() {
    let f = big_frame(70_000);
    // What a CONTROLLER action with max_len NO_BUFFER (0xffff) punts.
    let p = PacketIn::from_frame(PortNo(3), packet_in_reason::ACTION, 2, 9, &f, 0xffff);
    for (v, room) in [(OFP10_VERSION, 65_535 - 18), (OFP13_VERSION, 65_535 - 42)] {
        let mut stream = encode(v, 0, &Message::PacketIn(p.clone())).unwrap();
        assert_eq!(stream.len(), MAX_MSG_LEN, "version {v}");
        stream.extend(encode(v, 5, &Message::EchoRequest(b"after".to_vec())).unwrap());
        let msgs = decode_stream(&stream);
        assert_eq!(msgs.len(), 2, "version {v}");
        let Message::PacketIn(back) = &msgs[0].1 else {
            panic!("{:?}", msgs[0].1.msg_type())
        };
        assert_eq!(usize::from(msgs[0].0.length), MAX_MSG_LEN);
        assert_eq!(back.total_len, u16::MAX, "saturated, version {v}");
        assert_eq!(back.data.len(), room, "version {v}");
        assert_eq!(back.data[..], f[..room], "version {v}");
        assert_eq!(back.in_port, PortNo(3));
        assert_eq!(
            msgs[1],
            (msgs[1].0, Message::EchoRequest(b"after".to_vec()))
        );
        assert_eq!(msgs[1].0.xid, 5);
    }
}

#[test]
fn packet_in_data_is_cut_exactly_at_the_message_limit() {
    for (v, room) in [(OFP10_VERSION, 65_517), (OFP13_VERSION, 65_493)] {
        for n in [room - 1, room, room + 1, 65_535, 65_536] {
            let f = big_frame(n);
            let p = PacketIn::from_frame(PortNo(1), packet_in_reason::ACTION, 0, 0, &f, 0xffff);
            let b = encode(v, 0, &Message::PacketIn(p)).unwrap();
            assert_eq!(b.len(), (n.min(room) + MAX_MSG_LEN - room), "v{v} n={n}");
            let Message::PacketIn(back) = decode(&b).unwrap().1 else {
                panic!()
            };
            assert_eq!(back.data.len(), n.min(room).min(65_535), "v{v} n={n}");
            assert_eq!(usize::from(back.total_len), n.min(65_535), "v{v} n={n}");
        }
    }
}

#[test]
fn features_reply_of10_lists_the_ports_that_fit() {
    let ports: Vec<PortDesc> = (1..=2000).map(|i| port(i, "p", OFP10_VERSION)).collect();
    let fr = FeaturesReply {
        datapath_id: 1,
        n_buffers: 0,
        n_tables: 255,
        auxiliary_id: 0,
        capabilities: CAPABILITIES,
        actions: OF10_ACTIONS,
        ports,
    };
    let b = encode(OFP10_VERSION, 1, &Message::FeaturesReply(fr)).unwrap();
    assert!(b.len() <= MAX_MSG_LEN);
    let Message::FeaturesReply(back) = decode(&b).unwrap().1 else {
        panic!()
    };
    // 32 bytes of header and fields, 48 per port.
    assert_eq!(back.ports.len(), (MAX_MSG_LEN - 32) / 48);
    assert_eq!(back.ports.last().unwrap().port_no, PortNo(1364));
}

#[test]
fn oversized_messages_are_refused_not_sent_with_a_wrong_length() {
    let e = Message::Error(ErrorMsg {
        etype: 1,
        code: 0,
        data: vec![0; 70_000],
    });
    for v in [OFP10_VERSION, OFP13_VERSION] {
        assert!(matches!(
            encode(v, 0, &e),
            Err(EncodeError::TooLong {
                msg_type: MsgType::Error,
                len: 70_012
            })
        ));
        // An ERROR answering a maximal request quotes its first 64 bytes.
        let req = encode(v, 7, &Message::EchoRequest(vec![1; MAX_MSG_LEN - 8])).unwrap();
        assert_eq!(req.len(), MAX_MSG_LEN);
        let err = error_reply(v, OfpError::new(ErrorType::BadRequest, 0), &req);
        assert_eq!(err.len(), 8 + 4 + ERROR_DATA_LEN);
        // An ECHO_REPLY to it is as long as the request, not longer.
        let Message::EchoRequest(d) = decode(&req).unwrap().1 else {
            panic!()
        };
        assert_eq!(
            encode(v, 7, &Message::EchoReply(d)).unwrap().len(),
            MAX_MSG_LEN
        );
    }
}

#[test]
fn flow_stats_too_large_for_any_message_are_left_out_and_counted() {
    let huge = flowtable::syntax::Flow {
        actions: vec![Action::Note(vec![7; 70_000])],
        ..flow("priority=5,actions=drop")
    };
    for v in [OFP10_VERSION, OFP13_VERSION] {
        let mut enc = MultipartEncoder::new(v, 3, &MpReply::Flow(Vec::new()), MAX_MSG_LEN).unwrap();
        let mut msgs = Vec::new();
        for f in [
            flow("priority=1,actions=drop"),
            huge.clone(),
            flow("priority=2,actions=drop"),
        ] {
            msgs.extend(enc.push_flow(&FlowStats::new(&f, 0, 0, 0)));
        }
        assert_eq!(enc.n_skipped(), 1);
        msgs.push(enc.finish());
        let stream: Vec<u8> = msgs.concat();
        let mut prios = Vec::new();
        for (h, m) in decode_stream(&stream) {
            assert!(usize::from(h.length) <= MAX_MSG_LEN);
            let Message::MultipartReply(MultipartReply {
                body: MpReply::Flow(fs),
                ..
            }) = m
            else {
                panic!()
            };
            prios.extend(fs.iter().map(|f| f.priority));
        }
        assert_eq!(prios, [1, 2], "version {v}");
        // Built whole, the same reply is refused.
        let body = MpReply::Flow(vec![FlowStats::new(&huge, 0, 0, 0)]);
        assert!(matches!(
            encode_multipart_reply(v, 3, &body, MAX_MSG_LEN),
            Err(EncodeError::TooLong { .. })
        ));
    }
}

#[test]
fn tunnel_fields_encode_as_ovs_sends_them() {
    // ovs-ofctl -O OpenFlow13 add-flow 'tcp,tp_dst=80,...,tun_id=0x5,
    // tun_flags=-oam,tun_src=1.2.3.4,tun_dst=5.6.7.8': after L4, OXM
    // TUNNEL_ID, then NXM_NX TUN_FLAGS (always masked), TUN_IPV4_SRC,
    // TUN_IPV4_DST; metadata last.
    let b = oxms_of(
        "tcp,tp_dst=80,metadata=0x3,tun_id=0x5,tun_flags=-oam,tun_src=1.2.3.4,tun_dst=5.6.7.8/8,actions=drop",
    );
    let tail = [
        0x80, 0x00, 0x4c, 0x08, 0, 0, 0, 0, 0, 0, 0, 5, // TUNNEL_ID
        0x00, 0x01, 0xd1, 0x04, 0, 0, 0, 1, // TUN_FLAGS 0/1
        0x00, 0x01, 0x3e, 0x04, 1, 2, 3, 4, // TUN_IPV4_SRC
        0x00, 0x01, 0x41, 0x08, 5, 0, 0, 0, 0xff, 0, 0, 0, // TUN_IPV4_DST/8
        0x80, 0x00, 0x04, 0x08, 0, 0, 0, 0, 0, 0, 0, 3, // METADATA
    ];
    assert!(b.ends_with(&tail), "{b:02x?}");
}

#[test]
fn tunnel_fields_decode_and_are_checked() {
    use ErrorType::*;
    let out = |b: &[u8]| match decode(b) {
        Ok((_, Message::FlowMod(f))) => f.to_flow().unwrap().to_string(),
        r => panic!("{r:?}"),
    };
    // Unmasked TUN_FLAGS (value 1) is +oam.
    let b = raw_flow_mod(0, &[0x00, 0x01, 0xd0, 0x02, 0, 1], &[]);
    assert_eq!(out(&b), "tun_flags=+oam actions=drop");
    // A flag other than oam: BAD_VALUE.
    let b = raw_flow_mod(0, &[0x00, 0x01, 0xd0, 0x02, 0, 2], &[]);
    assert_eq!(err_of(&b), OfpError::new(BadMatch, bad_match::BAD_VALUE));
    // Other NXM_NX fields (NXM_NX_REG0 is field 0 of class 1): BAD_FIELD.
    let b = raw_flow_mod(0, &[0x00, 0x01, 0x00, 0x04, 0, 0, 0, 1], &[]);
    assert_eq!(err_of(&b), OfpError::new(BadMatch, bad_match::BAD_FIELD));
    // TUNNEL_ID twice: DUP_FIELD.
    let t = [0x80, 0x00, 0x4c, 0x08, 0, 0, 0, 0, 0, 0, 0, 5];
    let b = raw_flow_mod(0, &[t, t].concat(), &[]);
    assert_eq!(err_of(&b), OfpError::new(BadMatch, bad_match::DUP_FIELD));
    // SET_FIELD to TUN_FLAGS with value 2: BAD_SET_ARGUMENT.
    let sf = [0, 25, 0, 16, 0x00, 0x01, 0xd0, 0x02, 0, 2, 0, 0, 0, 0, 0, 0];
    let b = raw_flow_mod(0, &[], &apply(&sf));
    assert_eq!(
        err_of(&b),
        OfpError::new(BadAction, bad_action::BAD_SET_ARGUMENT)
    );
    // Nicira set_tunnel (1.0 and 1.3): set_field to tun_id.
    let st = [0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 2, 0, 0, 0, 0, 0, 9];
    let b = raw_flow_mod(0, &[], &apply(&st));
    assert_eq!(out(&b), "actions=set_tunnel:0x9");
}

/// METER_MOD as `ovs-ofctl -O OpenFlow13 add-meter BR
/// meter=1,kbps,burst,bands=type=drop,rate=10000,burst_size=1000` sends
/// it, and a dscp_remark band: decode, and encode back to the same bytes.
#[test]
fn meter_mod_golden() {
    use crate::openflow::meter::{MeterMod, MeterModCommand};
    use flowtable::meter::{flags, Band, BandKind, MeterSpec};
    let wire: Vec<u8> = vec![
        4, 29, 0, 48, 0, 0, 0, 9, // header: METER_MOD, len 48, xid 9
        0, 0, 0, 5, 0, 0, 0, 1, // ADD, kbps|burst, meter 1
        0, 1, 0, 16, 0, 0, 0x27, 0x10, 0, 0, 3, 0xe8, 0, 0, 0, 0, // drop 10000/1000
        0, 2, 0, 16, 0, 0, 0x13, 0x88, 0, 0, 0, 0x64, 2, 0, 0, 0, // dscp_remark 5000/100/2
    ];
    let mm = MeterMod {
        command: MeterModCommand::Add,
        meter: MeterSpec {
            id: 1,
            flags: flags::KBPS | flags::BURST,
            bands: vec![
                Band {
                    kind: BandKind::Drop,
                    rate: 10000,
                    burst_size: 1000,
                },
                Band {
                    kind: BandKind::DscpRemark { prec_level: 2 },
                    rate: 5000,
                    burst_size: 100,
                },
            ],
        },
    };
    let (h, m) = decode(&wire).unwrap();
    assert_eq!(h.xid, 9);
    assert_eq!(m, Message::MeterMod(mm.clone()));
    assert_eq!(
        encode(OFP13_VERSION, 9, &Message::MeterMod(mm)).unwrap(),
        wire
    );
    // An experimenter band is BAD_BAND.
    let mut bad = wire.clone();
    bad[17] = 0xff;
    bad[16] = 0xff;
    assert_eq!(
        err_of(&bad),
        OfpError::new(ErrorType::MeterModFailed, flowtable::meter::code::BAD_BAND)
    );
}
