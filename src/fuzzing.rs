//! Fuzzing entry points: each takes arbitrary bytes and must never panic.
//!
//! # What?
//! One function per input surface rvs exposes to the outside world. The
//! coverage-guided fuzzer (`benches/fuzz/`, AFL++ through `cargo afl`)
//! calls them in a loop; `tests/fuzz_regressions.rs` replays every input
//! kept under `benches/fuzz/regressions/<target>/` (crashes once found, and
//! seeds) through the same functions on every `cargo test`.
//!
//! | target | surface |
//! |---|---|
//! | [`openflow`] | a controller's byte stream: framing, decoding of each message, ERROR replies to it, and encode → decode → encode of what decoded |
//! | [`openflow_session`] | a controller session's message sequence against a bridge's flow table: negotiation, FLOW_MODs, bundles, expiry |
//! | [`flow_syntax`] | `add-flows` text: parse, print, parse again |
//! | [`packet`] | a received frame with its virtio-net header: key extraction, checksum completion, GSO segmentation, header rewrites and VLAN push/pop |
//! | [`control`] | a control-socket request line (`rvsctl`'s JSON protocol) |
//! | [`config`] | a TOML configuration / state file: parse, serialise, parse again |
//! | [`ovsdb`] | an OVSDB client's JSON-RPC stream: framing, `transact` on the Open_vSwitch database, monitors following each commit |
//!
//! # Design
//! Beyond "no panic", each target checks a property that a bug would
//! break: round trips give back what went in (flow text, OpenFlow
//! messages, configurations), a rewrite leaves a valid IPv4 header
//! checksum valid, segments fit the MTU. A violated property panics, which
//! the fuzzer reports as a crash.
//!
//! # Limits
//! The session target drives the flow table and bundle state machines the
//! connection task drives, not the task itself with a live switch (that
//! needs a bridge with a netdev; the os-ken and `ovs-ofctl` tests cover
//! it with real peers): no statistics, PACKET_OUT or async config.
//! The configuration target stops at the schema and its checks, before the
//! apply planner creates ports.

use flowtable::extract::{extract, extract_layout, L3Kind};
use flowtable::offload::{complete_checksum, segment, VirtioNetHdr};
use flowtable::rewrite;
use flowtable::syntax::{fmt_flow, parse_flows};
use flowtable::PortNo;

use crate::control::flows::BridgeFlows;
use crate::control::switch::{apply_flow_mod, apply_flow_mods_atomic};
use crate::openflow::{self as of, Message};
use flowtable::syntax::FlowFilter;

/// Longest input worth looking at (bigger inputs only slow the fuzzer).
const MAX_INPUT: usize = 1 << 17;

/// Ports known by name to the flow parser.
fn port_names(n: &str) -> Option<PortNo> {
    match n {
        "p1" => Some(PortNo(1)),
        "p2" => Some(PortNo(2)),
        "LOCAL" => Some(PortNo::LOCAL),
        _ => None,
    }
}

/// A controller's byte stream, message by message, as the channel frames
/// it; every message that decodes must encode to bytes that decode to a
/// message encoding to the same bytes.
pub fn openflow(data: &[u8]) {
    let data = &data[..data.len().min(MAX_INPUT)];
    let mut off = 0;
    while let Ok(Some(n)) = of::frame(&data[off..], of::MAX_MSG_LEN) {
        let raw = &data[off..off + n];
        off += n;
        let Ok((h, m)) = of::decode(raw) else {
            continue;
        };
        // What the switch would answer with must be well-formed too.
        let err = of::error_reply(
            h.version,
            of::error::OfpError::new(of::error::ErrorType::BadRequest, 0),
            raw,
        );
        assert!(matches!(of::frame(&err, of::MAX_MSG_LEN), Ok(Some(l)) if l == err.len()));
        let Ok(bytes) = of::encode(h.version, h.xid, &m) else {
            continue;
        };
        // Encoding may normalise (a lossy port name, a HELLO bitmap OVS
        // would omit), but once: what rvs writes decodes to a message that
        // encodes to the same bytes.
        let (h2, m2) = of::decode(&bytes)
            .unwrap_or_else(|e| panic!("re-decoding {m:?} (encoded {bytes:02x?}): {e}"));
        assert_eq!(h2.xid, h.xid);
        let again = of::encode(h2.version, h2.xid, &m2)
            .unwrap_or_else(|e| panic!("re-encoding {m2:?}: {e}"));
        assert_eq!(again, bytes, "encoding is not stable: {m:?} -> {m2:?}");
    }
}

/// Flows a session's table may hold: small, so that TABLE_FULL is met.
const SESSION_FLOW_LIMIT: usize = 64;

/// Every flow of `flows`, printed and sorted: the table's observable state.
fn table_text(flows: &BridgeFlows) -> Vec<String> {
    let mut v: Vec<String> = flows
        .entries(&FlowFilter::default())
        .iter()
        .map(|e| fmt_flow(&crate::datapath::pipeline::flow_of(e), None))
        .collect();
    v.sort_unstable();
    v
}

/// A controller session against one bridge's flow table, message by
/// message: HELLO negotiation first (as the channel does), then FLOW_MODs
/// applied in place and published per message, ONF bundles (open, add,
/// close, commit, discard) committed atomically, flow expiry on a clock
/// that advances with every message. Checks: a bundle whose commit fails
/// leaves the table exactly as before; the published pipeline always
/// holds as many flows as the table says; the limit is never exceeded.
pub fn openflow_session(data: &[u8]) {
    let data = &data[..data.len().min(MAX_INPUT)];
    let mut flows = BridgeFlows::new("fuzz", 1);
    flows.set_limit(SESSION_FLOW_LIMIT);
    let mut bundles = crate::control::bundle::Bundles::default();
    let mut version = None;
    let mut now = 0u64;
    let mut off = 0;
    while let Ok(Some(n)) = of::frame(&data[off..], of::MAX_MSG_LEN) {
        let raw = &data[off..off + n];
        off += n;
        now += u64::from(raw[n - 1]) * 16;
        flows.expire(now);
        let Ok((h, m)) = of::decode(raw) else {
            continue;
        };
        let Some(v) = version else {
            if let Message::Hello(hello) = &m {
                version = of::negotiate(of::SUPPORTED_VERSIONS, hello);
            }
            continue;
        };
        if h.version != v {
            continue;
        }
        let of10 = v == of::OFP10_VERSION;
        match &m {
            Message::FlowMod(fm) => {
                let _ = apply_flow_mod(&mut flows, fm, of10, now);
            }
            Message::Experimenter(e) => {
                if let Some(crate::control::bundle::Outcome::Commit(c)) =
                    bundles.handle(v, h.xid, e, raw)
                {
                    let before = table_text(&flows);
                    let r = apply_flow_mods_atomic(&mut flows, &c.msgs, of10, now);
                    if r.is_err() {
                        assert_eq!(
                            table_text(&flows),
                            before,
                            "a failed bundle changed the table"
                        );
                    }
                    let replies = crate::control::bundle::Bundles::committed(v, &c, r);
                    for b in replies {
                        assert!(
                            matches!(of::frame(&b, of::MAX_MSG_LEN), Ok(Some(l)) if l == b.len())
                        );
                    }
                }
            }
            _ => {}
        }
        flows.publish();
        let _ = flows.take_changes();
        assert!(
            flows.len() <= SESSION_FLOW_LIMIT,
            "{} flows over the limit",
            flows.len()
        );
        let published = flows.shared().load().n_flows();
        assert_eq!(
            published,
            flows.len(),
            "published pipeline disagrees with the table"
        );
    }
}

/// Flow text: whatever parses prints as text that parses to the same flows.
pub fn flow_syntax(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(&data[..data.len().min(MAX_INPUT)]) else {
        return;
    };
    let Ok(flows) = parse_flows(text, &port_names) else {
        return;
    };
    for f in flows {
        let printed = fmt_flow(&f, None);
        let again = parse_flows(&printed, &port_names)
            .unwrap_or_else(|e| panic!("{printed:?} (printed from {f:?}) does not parse: {e}"));
        assert_eq!(again.len(), 1, "{printed:?}");
        assert_eq!(again[0], f, "{printed:?} parses to another flow");
    }
}

/// Whether `frame`'s IPv4 header (at `l3`) has a valid checksum.
fn ipv4_csum_ok(frame: &[u8], l3: usize) -> Option<bool> {
    let ihl = usize::from(*frame.get(l3)? & 0x0f) * 4;
    let hdr = frame.get(l3..l3 + ihl)?;
    if ihl < 20 || hdr[0] >> 4 != 4 {
        return None;
    }
    Some(flowtable::offload::csum_sum(hdr) == 0xffff)
}

/// A received frame: `data` is one control byte, a 10-byte virtio-net
/// header, then the frame. The frame is extracted, its checksum completed,
/// segmented if it is GSO, and rewritten by the field the control byte
/// picks; rewrites keep a valid IPv4 header checksum valid.
pub fn packet(data: &[u8]) {
    let data = &data[..data.len().min(MAX_INPUT)];
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let (hdr_bytes, frame) = rest.split_at(rest.len().min(VirtioNetHdr::LEN));
    let mut buf = vec![0u8; frame.len() + 8];
    buf[8..].copy_from_slice(frame);
    let key = extract(frame, PortNo(1));
    let (key2, layout) = extract_layout(frame, PortNo(1));
    assert_eq!(key, key2, "extract and extract_layout disagree");

    if let Ok(hdr) = VirtioNetHdr::parse(hdr_bytes) {
        let mut f = frame.to_vec();
        let _ = complete_checksum(&mut f, &hdr);
        let mtu = 576 + usize::from(ctl) * 8;
        let mut scratch = vec![0u8; 65_600];
        let _ = segment(&f, &hdr, mtu, &mut scratch, |seg| {
            assert!(
                seg.len() <= mtu + 14 + 8,
                "segment of {} bytes for MTU {mtu}",
                seg.len()
            );
            let _ = extract(seg, PortNo(1));
        });
    }

    // One rewrite, chosen by the control byte, with a value from it too.
    let (mut start, mut len) = (8usize, frame.len());
    let v = u32::from(ctl).wrapping_mul(0x0101_0101);
    let l3 = usize::from(layout.l3);
    let before = (layout.l3_kind == L3Kind::Ipv4)
        .then(|| ipv4_csum_ok(frame, l3))
        .flatten();
    let f = &mut buf[start..start + len];
    match ctl % 12 {
        0 => drop(rewrite::set_nw_src(f, &layout, v)),
        1 => drop(rewrite::set_nw_dst(f, &layout, v)),
        2 => drop(rewrite::set_nw_tos(f, &layout, ctl & 0xfc)),
        3 => drop(rewrite::set_nw_ttl(f, &layout, ctl)),
        4 => drop(rewrite::dec_ttl(f, &layout)),
        5 => drop(rewrite::set_tp_src(f, &layout, v as u16)),
        6 => drop(rewrite::set_tp_dst(f, &layout, v as u16)),
        7 => drop(rewrite::set_ipv6_src(f, &layout, [ctl; 16])),
        8 => drop(rewrite::set_nw_ecn(f, &layout, ctl & 3)),
        9 => drop(rewrite::set_vlan_vid(f, u16::from(ctl))),
        10 => {
            let _ = rewrite::push_vlan(&mut buf, &mut start, &mut len, 0x8100, u16::from(ctl));
        }
        _ => {
            let _ = rewrite::pop_vlan(&mut buf, &mut start, &mut len);
        }
    }
    let after_frame = &buf[start..start + len];
    if ctl % 12 <= 8 && before == Some(true) {
        assert_eq!(
            ipv4_csum_ok(after_frame, l3),
            Some(true),
            "rewrite {} broke the IPv4 header checksum",
            ctl % 12
        );
    }
    let _ = extract(after_frame, PortNo(1));
}

/// A control-socket request line: whatever deserialises serialises and
/// deserialises to the same request.
pub fn control(data: &[u8]) {
    let data = &data[..data.len().min(MAX_INPUT)];
    let Ok(req) = serde_json::from_slice::<rvs_ctl::proto::Request>(data) else {
        return;
    };
    let line = serde_json::to_vec(&req).unwrap_or_else(|e| panic!("{req:?}: {e}"));
    let again: rvs_ctl::proto::Request =
        serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{req:?} re-read: {e}"));
    assert_eq!(again, req, "request changed in a round trip");
}

/// A configuration or state file: whatever parses serialises to TOML
/// that parses to the same configuration.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(&data[..data.len().min(MAX_INPUT)]) else {
        return;
    };
    let Ok(cfg) = crate::config::Config::parse(text, "fuzz.toml") else {
        return;
    };
    let Ok(out) = cfg.to_toml() else {
        return;
    };
    let again = crate::config::Config::parse(&out, "fuzz-again.toml")
        .unwrap_or_else(|e| panic!("serialised config does not parse: {e}\n{out}"));
    assert_eq!(again, cfg, "config changed in a round trip:\n{out}");
}

/// An OVSDB client's byte stream: split into JSON-RPC messages as the
/// endpoint does; monitor requests register monitors, transactions run
/// against an Open_vSwitch database (one root row, one bridge) and every
/// commit goes to the monitors. Properties: a transaction whose result
/// holds an error changes nothing; after each commit the database
/// survives its own persistence (snapshot → restore → the same snapshot).
pub fn ovsdb(data: &[u8]) {
    use crate::ovsdb::{Db, Monitor, MonitorVersion, Schema, TxnOutcome};
    use serde_json::{json, Value};
    let mut buf = data[..data.len().min(MAX_INPUT)].to_vec();
    let Ok(msgs) = crate::ovsdb::server::split_messages(&mut buf) else {
        return;
    };
    let schema = Schema::vswitch();
    let mut db = Db::new(schema.clone());
    let seed = json!([
        {"op": "insert", "table": "Open_vSwitch", "row": {"bridges": ["named-uuid", "b"]}},
        {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": "br0", "ports": ["named-uuid", "p"]}},
        {"op": "insert", "table": "Port", "uuid-name": "p", "row": {"name": "br0", "interfaces": ["named-uuid", "i"]}},
        {"op": "insert", "table": "Interface", "uuid-name": "i", "row": {"name": "br0", "type": "internal"}},
    ]);
    let ops = seed.as_array().cloned().unwrap_or_default();
    assert!(matches!(db.transact(&ops), TxnOutcome::Done { .. }));
    let mut monitors = Vec::new();
    for m in msgs.iter().take(64) {
        let method = m.get("method").and_then(Value::as_str).unwrap_or("");
        let Some(params) = m.get("params").and_then(Value::as_array) else {
            continue;
        };
        match method {
            "monitor" | "monitor_cond" | "monitor_cond_since" => {
                let v = if method == "monitor" {
                    MonitorVersion::V1
                } else {
                    MonitorVersion::V2
                };
                if let Some(req) = params.get(2) {
                    if let Ok(mon) = Monitor::new(&db, req, v) {
                        let _ = mon.initial(&db);
                        monitors.push(mon);
                    }
                }
            }
            "monitor_cond_change" => {
                if let (Some(mon), Some(req)) = (monitors.last_mut(), params.get(2)) {
                    let _ = mon.cond_change(&db, req);
                }
            }
            "transact" if params.len() > 1 => {
                let before = db.snapshot();
                match db.transact(&params[1..]) {
                    TxnOutcome::Blocked => {
                        assert_eq!(db.snapshot(), before, "a blocked wait changed the database")
                    }
                    TxnOutcome::Done { results, change } => {
                        let failed = results.iter().any(|r| r.get("error").is_some());
                        let after = db.snapshot();
                        if failed {
                            assert_eq!(
                                after, before,
                                "a failed transaction changed the database: {results:?}"
                            );
                            assert!(change.is_empty());
                        }
                        for mon in &monitors {
                            let _ = mon.update(&change);
                        }
                        let back = Db::restore(schema.clone(), &after).unwrap_or_else(|e| {
                            panic!("a committed database does not restore: {e}\n{after}")
                        });
                        assert_eq!(back.snapshot(), after, "restore changed the database");
                    }
                }
            }
            _ => {}
        }
    }
}

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// The targets by name, for the regression test and the fuzz binaries.
pub const TARGETS: &[(&str, Target)] = &[
    ("openflow", openflow),
    ("openflow_session", openflow_session),
    ("flow_syntax", flow_syntax),
    ("packet", packet),
    ("control", control),
    ("config", config),
    ("ovsdb", ovsdb),
];
