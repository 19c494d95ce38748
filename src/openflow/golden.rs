//! Golden tests: messages captured from real `ovs-ofctl` (see the headers
//! of `testdata/*.txt`) decode into the flows rvs's own flow parser makes
//! of the same command line, and re-encode to the same bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::msg::{FlowMod, FlowModCommand};
use super::*;
use flowtable::syntax::{parse_flow, parse_flow_mod, parse_match_filter};
use flowtable::TableId;

/// `(command, argument, messages)` groups of a capture file.
fn groups(text: &str) -> Vec<(String, String, Vec<Vec<u8>>)> {
    let mut out: Vec<(String, String, Vec<Vec<u8>>)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ovs-ofctl ") {
            let rest = rest.trim_start_matches("-O OpenFlow13").trim_start();
            let (cmd, tail) = rest.split_once(" tcp:... ").unwrap();
            let arg = tail.split('\'').nth(1).unwrap().to_string();
            out.push((cmd.trim().to_string(), arg, Vec::new()));
        } else if !line.starts_with('#') && !line.is_empty() {
            let bytes = (0..line.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
                .collect();
            out.last_mut().unwrap().2.push(bytes);
        }
    }
    out
}

fn flow_mod(msgs: &[Vec<u8>]) -> Option<(Vec<u8>, FlowMod)> {
    msgs.iter().find_map(|m| match decode(m) {
        Ok((_, Message::FlowMod(f))) => Some((m.clone(), f)),
        _ => None,
    })
}

/// `m` with the `max_len` of every OUTPUT action to a port other than
/// CONTROLLER set to [`action::OUTPUT_MAX_LEN`] (ovs-ofctl sends 0 there,
/// rvs does not keep it). Actions are found by walking the decoded
/// message's layout: FLOW_MOD instructions (1.3) or actions (1.0), and
/// PACKET_OUT actions.
fn with_output_max_len(version: u8, m: &[u8]) -> Vec<u8> {
    let mut out = m.to_vec();
    let be16 = |b: &[u8], i: usize| usize::from(u16::from_be_bytes([b[i], b[i + 1]]));
    let be32 = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    // Patches the OUTPUT actions in out[start..end].
    let patch = |out: &mut Vec<u8>, mut i: usize, end: usize| {
        while i + 4 <= end {
            let (t, len) = (be16(out, i), be16(out, i + 2));
            if t == 0 && version == OFP13_VERSION && be32(out, i + 4) != 0xffff_fffd {
                out[i + 8..i + 10].copy_from_slice(&action::OUTPUT_MAX_LEN.to_be_bytes());
            }
            if t == 0 && version == OFP10_VERSION && be16(out, i + 4) != 0xfffd {
                out[i + 6..i + 8].copy_from_slice(&action::OUTPUT_MAX_LEN.to_be_bytes());
            }
            i += len.max(8);
        }
    };
    match (m[1], version) {
        // FLOW_MOD 1.3: header 8, fixed part 40, match (padded to 8).
        (14, OFP13_VERSION) => {
            let mlen = be16(m, 50);
            let mut i = 48 + mlen.div_ceil(8) * 8;
            while i + 4 <= m.len() {
                let (t, len) = (be16(m, i), be16(m, i + 2));
                // APPLY_ACTIONS / WRITE_ACTIONS carry actions after 8 bytes.
                if t == 3 || t == 4 {
                    patch(&mut out, i + 8, i + len);
                }
                i += len.max(8);
            }
        }
        // FLOW_MOD 1.0: header 8, match 40, fixed 24.
        (14, OFP10_VERSION) => patch(&mut out, 72, m.len()),
        // PACKET_OUT 1.3: actions_len at 16, actions from 24.
        (13, OFP13_VERSION) => patch(&mut out, 24, 24 + be16(m, 16)),
        // PACKET_OUT 1.0: actions_len at 14, actions from 16.
        (13, OFP10_VERSION) => patch(&mut out, 16, 16 + be16(m, 14)),
        _ => {}
    }
    out
}

#[test]
fn output_max_len_patch_touches_only_output_actions() {
    // ovs-ofctl -O OpenFlow13 add-flow 'in_port=1,actions=pop_vlan,output:2'
    let text = include_str!("testdata/ovs_ofctl_of13.txt");
    let (_, _, msgs) = groups(text)
        .into_iter()
        .find(|(c, a, _)| c == "add-flow" && a.contains("actions=pop_vlan,output:2"))
        .unwrap();
    let (m, _) = flow_mod(&msgs).unwrap();
    let p = with_output_max_len(OFP13_VERSION, &m);
    let diff: Vec<usize> = (0..m.len()).filter(|&i| m[i] != p[i]).collect();
    // Exactly the two max_len bytes of the one OUTPUT action changed.
    assert_eq!(diff.len(), 2, "{diff:?}");
    assert_eq!(&p[diff[0]..diff[0] + 2], &[0xff, 0xe5]);
    assert_eq!(&p[diff[0] - 8..diff[0] - 6], &[0, 0], "OUTPUT type");
}

fn none(_: &str) -> Option<flowtable::PortNo> {
    None
}

fn check_file(text: &str, version: u8) -> usize {
    let mut checked = 0;
    for (cmd, arg, msgs) in groups(text) {
        for m in &msgs {
            let (h, msg) = decode(m).unwrap_or_else(|e| panic!("{cmd} {arg}: {e}"));
            assert_eq!(h.version, version);
            // Everything ovs-ofctl sends re-encodes to the same bytes, up to
            // the max_len of OUTPUT to non-CONTROLLER ports.
            assert_eq!(
                encode(version, h.xid, &msg).unwrap(),
                with_output_max_len(version, m),
                "{cmd} '{arg}' re-encoding {msg:?}"
            );
        }
        match cmd.as_str() {
            "add-flow" => {
                let Some((_, fm)) = flow_mod(&msgs) else {
                    // ovs-ofctl gave up (1.0 without Nicira extensions).
                    assert_eq!(version, OFP10_VERSION, "{arg}");
                    continue;
                };
                assert_eq!(fm.command, FlowModCommand::Add);
                let want = parse_flow(&arg, &none).unwrap();
                let got = fm.to_flow().unwrap();
                assert_eq!(got, want, "add-flow {arg}");
                // The decoded flow survives rvs's print/parse (persistence).
                assert_eq!(parse_flow(&got.to_string(), &none).unwrap(), got);
                checked += 1;
            }
            "mod-flows" | "mod-flows --strict" => {
                let Some((_, fm)) = flow_mod(&msgs) else {
                    continue;
                };
                let strict = cmd.ends_with("--strict");
                assert_eq!(
                    fm.command,
                    if strict {
                        FlowModCommand::ModifyStrict
                    } else {
                        FlowModCommand::Modify
                    }
                );
                let (filter, flow) = parse_flow_mod(&arg, &none).unwrap();
                let got = fm.filter();
                assert_eq!(got.m, filter.m, "{arg}");
                // OpenFlow 1.3 has no "all tables" for modify: ovs-ofctl
                // sends table 0 there.
                let all = if version == OFP10_VERSION {
                    None
                } else {
                    Some(TableId(0))
                };
                assert_eq!(got.table, filter.table.or(all));
                if strict {
                    assert_eq!(got.priority, filter.priority);
                }
                assert_eq!(fm.actions, flow.actions, "{arg}");
                checked += 1;
            }
            "del-flows" | "del-flows --strict" => {
                let Some((_, fm)) = flow_mod(&msgs) else {
                    continue;
                };
                // rvs's parser does not take OVS's `/-1` mask shorthand.
                let arg = arg.replace("/-1", "/0xffffffffffffffff");
                let want = parse_match_filter(&arg, &none).unwrap();
                let got = fm.filter();
                assert_eq!(got.m, want.m, "{arg}");
                assert_eq!(got.out_port, want.out_port, "{arg}");
                if version == OFP13_VERSION {
                    assert_eq!(got.table, want.table, "{arg}");
                    assert_eq!(
                        (got.cookie, got.cookie_mask),
                        (want.cookie, want.cookie_mask),
                        "{arg}"
                    );
                }
                assert!(matches!(
                    fm.command,
                    FlowModCommand::Delete | FlowModCommand::DeleteStrict
                ));
                checked += 1;
            }
            "dump-flows" => {
                let want = parse_match_filter(&arg, &none).unwrap();
                let req = msgs
                    .iter()
                    .find_map(|m| match decode(m).unwrap().1 {
                        Message::MultipartRequest(MultipartRequest {
                            body: MpRequest::Flow(f),
                            ..
                        }) => Some(f),
                        _ => None,
                    })
                    .expect("flow stats request");
                assert_eq!(req.m, want.m);
                assert_eq!(req.filter().table, want.table);
                checked += 1;
            }
            _ => {}
        }
    }
    checked
}

#[test]
fn ovs_ofctl_of13_messages() {
    let n = check_file(include_str!("testdata/ovs_ofctl_of13.txt"), OFP13_VERSION);
    assert_eq!(n, 31);
}

#[test]
fn ovs_ofctl_of10_messages() {
    let n = check_file(include_str!("testdata/ovs_ofctl_of10.txt"), OFP10_VERSION);
    assert_eq!(n, 17);
}

#[test]
fn of10_nicira_probes_decode_as_experimenter() {
    let text = include_str!("testdata/ovs_ofctl_of10.txt");
    let mut vendor = 0;
    for (_, _, msgs) in groups(text) {
        for m in msgs {
            match decode(&m).unwrap().1 {
                Message::Experimenter(e) => {
                    assert_eq!(e.experimenter, action::NX_VENDOR_ID);
                    vendor += 1;
                    // The answer ovs-ofctl falls back on.
                    let err = error_reply(
                        OFP10_VERSION,
                        OfpError::new(ErrorType::BadRequest, error::bad_request::BAD_EXPERIMENTER),
                        &m,
                    );
                    assert_eq!(&err[8..12], &[0, 1, 0, 3]);
                    assert_eq!(&err[4..8], &m[4..8]);
                }
                Message::MultipartRequest(MultipartRequest {
                    body: MpRequest::Experimenter { experimenter, .. },
                    ..
                }) => {
                    assert_eq!(experimenter, action::NX_VENDOR_ID);
                    vendor += 1;
                }
                _ => {}
            }
        }
    }
    assert!(vendor > 0);
}

#[test]
fn of13_goto_and_table() {
    let text = include_str!("testdata/ovs_ofctl_of13.txt");
    let g = groups(text);
    let (_, _, msgs) = g
        .iter()
        .find(|(_, a, _)| a.contains("goto_table:2"))
        .unwrap();
    let (_, fm) = flow_mod(msgs).unwrap();
    assert_eq!(
        fm.actions.last(),
        Some(&flowtable::Action::GotoTable(TableId(2)))
    );
}

/// Every sample message of both versions, plus a TABLE_FEATURES reply
/// split over several messages, as `(name, bytes)`.
fn switch_samples() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for version in [OFP10_VERSION, OFP13_VERSION] {
        for (i, (name, msg)) in super::tests::sample_messages(version)
            .into_iter()
            .enumerate()
        {
            let b = encode(version, i as u32 + 1, &msg).unwrap();
            out.push((format!("{name} v{version}"), b));
        }
    }
    let tf: Vec<_> = (0..3)
        .map(|t| multipart::TableFeatures::rvs(t, 3, 1_000_000))
        .collect();
    let parts =
        encode_multipart_reply(OFP13_VERSION, 99, &MpReply::TableFeatures(tf), 1200).unwrap();
    assert!(parts.len() > 1);
    for (i, b) in parts.into_iter().enumerate() {
        out.push((format!("table_features_reply_part{i} v4"), b));
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const SWITCH_FIXTURE: &str = "src/openflow/testdata/rvs_messages_ofp_print.txt";

/// `(name, hex, ofp-print text)` of the committed fixture.
fn read_fixture() -> Vec<(String, String, String)> {
    let text = include_str!("testdata/rvs_messages_ofp_print.txt");
    let mut out: Vec<(String, String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("## ") {
            out.push((name.to_string(), String::new(), String::new()));
        } else if let Some(p) = line.strip_prefix("#| ") {
            let e = out.last_mut().unwrap();
            e.2.push_str(p);
            e.2.push('\n');
        } else if line == "#|" {
            out.last_mut().unwrap().2.push('\n');
        } else if !line.starts_with('#') && !line.is_empty() {
            out.last_mut().unwrap().1 = line.to_string();
        }
    }
    out
}

/// The encoder still produces exactly the bytes whose `ovs-ofctl
/// ofp-print` output is committed next to them.
#[test]
fn encoder_matches_ofp_print_fixture() {
    let fixture = read_fixture();
    let now = switch_samples();
    assert_eq!(fixture.len(), now.len());
    for ((name, hexs, text), (n2, b)) in fixture.iter().zip(&now) {
        assert_eq!(name, n2);
        assert_eq!(
            hexs,
            &hex(b),
            "{name}: encoding changed; rerun the ofp-print test to bless"
        );
        assert!(!text.is_empty(), "{name}");
        assert!(
            !text.contains("***"),
            "{name}: ofp-print reported an error:\n{text}"
        );
    }
}

/// Runs the real `ovs-ofctl ofp-print` on every message (needs
/// `openvswitch-common`; skipped without it, except in CI). With
/// `RVS_BLESS=1` it rewrites the fixture instead of comparing.
#[test]
fn ovs_ofctl_ofp_print_decodes_our_messages() {
    let have = std::process::Command::new("ovs-ofctl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ovs-ofctl is missing in CI (openvswitch-common)"
        );
        eprintln!("skipping: ovs-ofctl not installed (apt-get install openvswitch-common)");
        return;
    }
    let bless = std::env::var_os("RVS_BLESS").is_some();
    let mut file = String::from(
        "# Messages encoded by rvs's OpenFlow codec (src/openflow/tests.rs\n\
         # sample_messages), each followed by what `ovs-ofctl ofp-print HEX`\n\
         # (Open vSwitch 3.1.0) prints for it, on `#| ` lines. Regenerate with\n\
         # RVS_BLESS=1 cargo test -p rvs --lib ofp_print\n",
    );
    let fixture = if bless { Vec::new() } else { read_fixture() };
    for (i, (name, b)) in switch_samples().iter().enumerate() {
        let out = std::process::Command::new("ovs-ofctl")
            .args(["ofp-print", &hex(b)])
            .output()
            .expect("ovs-ofctl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {text}");
        assert!(!text.contains("***"), "{name}: {text}");
        assert!(!text.contains("WARN"), "{name}: {text}");
        if !bless {
            assert_eq!(fixture[i].2, text, "{name}");
        }
        file.push_str(&format!("## {name}\n{}\n", hex(b)));
        for l in text.lines() {
            if l.is_empty() {
                file.push_str("#|\n");
            } else {
                file.push_str(&format!("#| {l}\n"));
            }
        }
    }
    if bless {
        std::fs::write(SWITCH_FIXTURE, file).unwrap();
    }
}
