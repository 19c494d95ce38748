//! The flow limit and CHECK_OVERLAP as clients see them: `ovs-ofctl`
//! (OpenFlow 1.3, `ptcp:` target) gets OFPFMFC_TABLE_FULL and
//! OFPFMFC_OVERLAP, `rvsctl` gets the limit's message and its batches
//! stay all-or-nothing, and the limit survives a restart and an
//! export/apply round trip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const OF13: &str = "OpenFlow13";

/// Runs `ovs-ofctl -O OpenFlow13 CMD TARGET EXTRA…` (bounded to 10 s);
/// returns (success, stdout, stderr).
fn ofctl(cmd: &str, target: &str, extra: &[&str]) -> (bool, String, String) {
    let out = Command::new("timeout")
        .args(["10", "ovs-ofctl", "-O", OF13, cmd, target])
        .args(extra)
        .output()
        .expect("run ovs-ofctl (install openvswitch-common)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ofctl_ok(cmd: &str, target: &str, extra: &[&str]) -> String {
    let (ok, out, err) = ofctl(cmd, target, extra);
    assert!(ok, "ovs-ofctl {cmd} {target} {extra:?} failed: {out}{err}");
    out
}

/// Listens on a fresh `ptcp:` port and waits until `ovs-ofctl show`
/// answers; returns the `tcp:` target.
fn listen(d: &Rvsd, br: &str) -> String {
    let port = free_port();
    d.ok(&["set-controller", br, &format!("ptcp:{port}")]);
    let target = format!("tcp:127.0.0.1:{port}");
    let up = poll(Duration::from_secs(10), || {
        ofctl("show", &target, &[]).0.then_some(())
    });
    assert!(
        up.is_some(),
        "ptcp:{port} never answered:\n{}",
        d.log_text()
    );
    target
}

fn flow_line(i: usize) -> String {
    format!("priority={},ip,nw_dst=10.0.0.{i},actions=drop", 100 + i)
}

fn dumped(i: usize) -> String {
    format!("priority={},ip,nw_dst=10.0.0.{i} actions=drop", 100 + i)
}

/// The flows of `br` as `--no-stats` text, sorted.
fn texts(d: &Rvsd, br: &str) -> Vec<String> {
    let mut v: Vec<String> = d.flows(br).into_iter().map(|f| f.flow).collect();
    v.sort();
    v
}

fn sorted(v: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().collect();
    v.sort();
    v
}

#[test]
fn flow_limit_and_overlap_over_openflow_and_rvsctl() {
    if !require_root() || !have_ofctl() {
        return;
    }
    let mut d = Rvsd::start();
    let br = d.add_br();
    let target = listen(&d, &br);
    d.ok(&["del-flows", &br]);
    d.ok(&["set", "bridge", &br, "flow-limit=10"]);
    let tmp = TempDir::new();

    // ---- ovs-ofctl add-flows of 20 flows: the first 10 go in, the rest
    // get OFPFMFC_TABLE_FULL.
    let file = tmp.0.join("twenty.txt");
    let lines: Vec<String> = (1..=20).map(flow_line).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (ok, out, err) = ofctl("add-flows", &target, &[file.to_str().unwrap()]);
    eprintln!("ovs-ofctl add-flows of 20 at limit 10: ok={ok}\n{out}{err}");
    assert!(
        !ok,
        "ovs-ofctl add-flows succeeded past the limit: {out}{err}"
    );
    assert!(
        err.contains("OFPFMFC_TABLE_FULL"),
        "no OFPFMFC_TABLE_FULL in ovs-ofctl's stderr: {err}"
    );
    assert_eq!(
        texts(&d, &br),
        sorted((1..=10).map(dumped)),
        "want the first 10 flows of the file"
    );
    let agg = ofctl_ok("dump-aggregate", &target, &[]);
    assert!(agg.contains("flow_count=10"), "{agg}");
    // A single add-flow past the limit, and a replacement at the limit
    // (same match and priority: not a new flow, so allowed).
    let (ok, _, err) = ofctl("add-flow", &target, &[&flow_line(11)]);
    assert!(!ok && err.contains("OFPFMFC_TABLE_FULL"), "{err}");
    ofctl_ok(
        "add-flow",
        &target,
        &["priority=101,ip,nw_dst=10.0.0.1,actions=output:1"],
    );
    assert_eq!(d.flows(&br).len(), 10);
    ofctl_ok(
        "add-flow",
        &target,
        &["priority=101,ip,nw_dst=10.0.0.1,actions=drop"],
    );

    // ---- rvsctl past the limit: the exact message, nothing added.
    let want_msg = format!("flow table full (10 flows; raise with set bridge {br} flow-limit=N)");
    let (code, err) = d.fails(&["add-flow", &br, &flow_line(11)]);
    eprintln!("rvsctl add-flow at the limit: {err}");
    assert_eq!(code, 1, "{err}");
    assert!(err.trim_end().ends_with(&want_msg), "{err}");
    // Down to 8, then a batch of 5 new ones (would make 13): refused
    // whole, the 8 stay as they were.
    d.ok(&[
        "del-flows",
        &br,
        "priority=109,ip,nw_dst=10.0.0.9",
        "--strict",
    ]);
    d.ok(&[
        "del-flows",
        &br,
        "--strict",
        "priority=110,ip,nw_dst=10.0.0.10",
    ]);
    let eight = texts(&d, &br);
    assert_eq!(eight, sorted((1..=8).map(dumped)));
    let batch = tmp.0.join("five.txt");
    let five: Vec<String> = (11..=15).map(flow_line).collect();
    std::fs::write(&batch, five.join("\n") + "\n").unwrap();
    let (code, err) = d.fails(&["add-flows", &br, batch.to_str().unwrap()]);
    eprintln!("rvsctl add-flows past the limit: {err}");
    assert_eq!(code, 1, "{err}");
    assert!(err.trim_end().ends_with(&want_msg), "{err}");
    assert_eq!(texts(&d, &br), eight, "a refused batch added flows");
    // Two fit exactly.
    let two = tmp.0.join("two.txt");
    std::fs::write(&two, format!("{}\n{}\n", flow_line(11), flow_line(12))).unwrap();
    d.ok(&["add-flows", &br, two.to_str().unwrap()]);
    assert_eq!(d.flows(&br).len(), 10);

    // ---- CHECK_OVERLAP: same priority and some packet matches both.
    d.ok(&["del-flows", &br]);
    d.ok(&["add-flow", &br, "priority=5,ip,actions=drop"]);
    let (ok, out, err) = ofctl(
        "add-flow",
        &target,
        &["check_overlap,priority=5,ip,nw_dst=10.0.0.1,actions=drop"],
    );
    eprintln!("ovs-ofctl check_overlap: ok={ok}\n{out}{err}");
    assert!(!ok, "overlapping add succeeded: {out}{err}");
    assert!(err.contains("OFPFMFC_OVERLAP"), "{err}");
    assert_eq!(texts(&d, &br), vec!["priority=5,ip actions=drop"]);
    // No overlap: another priority, a disjoint match, another table.
    for f in [
        "check_overlap,priority=6,ip,nw_dst=10.0.0.1,actions=drop",
        "check_overlap,priority=5,arp,actions=drop",
        "check_overlap,table=1,priority=5,ip,nw_dst=10.0.0.1,actions=drop",
    ] {
        ofctl_ok("add-flow", &target, &[f]);
    }
    // Without the flag the same flow is simply added.
    ofctl_ok(
        "add-flow",
        &target,
        &["priority=5,ip,nw_dst=10.0.0.1,actions=drop"],
    );
    assert_eq!(
        texts(&d, &br),
        sorted(
            [
                "priority=5,ip actions=drop",
                "priority=6,ip,nw_dst=10.0.0.1 actions=drop",
                "priority=5,arp actions=drop",
                "table=1, priority=5,ip,nw_dst=10.0.0.1 actions=drop",
                "priority=5,ip,nw_dst=10.0.0.1 actions=drop",
            ]
            .map(String::from)
        )
    );

    // ---- The limit is state: it survives SIGKILL and SIGTERM restarts.
    let export = d.ok(&["export"]);
    assert!(export.contains("flow_limit = 10"), "{export}");
    for kill9 in [true, false] {
        if kill9 {
            d.kill9();
        } else {
            d.stop();
        }
        d.restart();
        let again = d.ok(&["export"]);
        assert_eq!(
            again, export,
            "export differs after restart (kill9={kill9})"
        );
        // ... and is enforced, not only printed: 5 flows + 5 fit, 1 more not.
        let fill = tmp.0.join("fill.txt");
        let more: Vec<String> = (1..=5)
            .map(|i| format!("priority=9,ip,nw_src=10.1.0.{i},actions=drop"))
            .collect();
        std::fs::write(&fill, more.join("\n") + "\n").unwrap();
        d.ok(&["add-flows", &br, fill.to_str().unwrap()]);
        let (_, err) = d.fails(&["add-flow", &br, "priority=9,arp,actions=drop"]);
        assert!(err.contains(&want_msg), "{err}");
        // The ptcp: target is state too: ovs-ofctl reaches it again.
        let up = poll(Duration::from_secs(10), || {
            ofctl("show", &target, &[]).0.then_some(())
        });
        assert!(up.is_some(), "{target} not back:\n{}", d.log_text());
        let (ok, _, err) = ofctl("add-flow", &target, &["priority=9,arp,actions=drop"]);
        assert!(!ok && err.contains("OFPFMFC_TABLE_FULL"), "{err}");
        d.ok(&["del-flows", &br, "ip,nw_src=10.1.0.0/16"]);
    }

    // ---- apply of an exported file is a no-op, and the export keeps
    // the limit.
    let ef = tmp.0.join("export.toml");
    std::fs::write(&ef, d.ok(&["export"])).unwrap();
    let ef = ef.to_str().unwrap();
    assert_eq!(d.ok(&["apply", "--dry-run", ef]).trim(), "no changes");
    assert_eq!(d.ok(&["apply", ef]).trim(), "no changes");
    assert!(d.ok(&["export"]).contains("flow_limit = 10"));
    // Raising it in the file is a knob change, applied.
    let raised = std::fs::read_to_string(ef)
        .unwrap()
        .replace("flow_limit = 10", "flow_limit = 20");
    let rf = tmp.0.join("raised.toml");
    std::fs::write(&rf, raised).unwrap();
    let dry = d.ok(&["apply", "--dry-run", rf.to_str().unwrap()]);
    assert!(
        dry.contains("flow-limit") || dry.contains("flow_limit"),
        "{dry}"
    );
    d.ok(&["apply", rf.to_str().unwrap()]);
    assert!(d.ok(&["export"]).contains("flow_limit = 20"));
    // 5 + 20 = 25 > 20: refused whole, with the new limit in the message.
    let (_, err) = d.fails(&["add-flows", &br, file.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "flow table full (20 flows; raise with set bridge {br} flow-limit=N)"
        )),
        "{err}"
    );
    assert_eq!(d.flows(&br).len(), 5);
    d.ok(&["del-flows", &br]);
    d.ok(&["add-flows", &br, file.to_str().unwrap()]);
    assert_eq!(d.flows(&br).len(), 20);
}
