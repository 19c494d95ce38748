//! Replies and requests of any size (the large dump has its own file,
//! `ctl_bigdump.rs`): `--format json` prints the same document for
//! one-line and chunked replies, flow files and configurations larger
//! than a protocol line are accepted (all or nothing, errors naming the
//! line), `export`/`apply` round-trip large states, and `fdb-show` lists
//! 100,000 MAC entries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rvs_ctl::proto::{Reply, MAX_LINE};
use serde_json::{json, Value};

/// Checks that `printed` (rvsctl `--format json` output) is exactly the
/// pretty JSON of the reply it holds, and returns that reply.
fn assert_pretty(printed: &str) -> Reply {
    let r: Reply = serde_json::from_str(printed).expect("rvsctl printed valid JSON");
    let want = serde_json::to_string_pretty(&r).unwrap() + "\n";
    assert!(printed == want, "the JSON document changed shape");
    r
}

/// Sends one raw request and returns its response lines: one, or the
/// whole stream from header to end line.
fn raw_lines(d: &Rvsd, req: &Value) -> Vec<Vec<u8>> {
    let s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut w = s.try_clone().unwrap();
    w.write_all(format!("{req}\n").as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut lines = Vec::new();
    loop {
        let mut l = Vec::new();
        r.read_until(b'\n', &mut l).unwrap();
        assert!(l.ends_with(b"\n"), "response line without a newline");
        let v: Value = serde_json::from_slice(&l).unwrap();
        let done = v.get("result").is_some() || v.get("end").is_some() || v["ok"] == false;
        lines.push(l);
        if done {
            return lines;
        }
    }
}

#[test]
fn json_output_keeps_its_shape_small_and_chunked() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    // Small: one line on the socket, the same document as always.
    d.ok(&["add-flow", &br, "priority=5,ip,actions=drop"]);
    let lines = raw_lines(&d, &json!({"type": "dump_flows", "bridge": br}));
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with(br#"{"ok":true,"result":{"flows":[{"#));
    match assert_pretty(&d.ok(&["--format", "json", "dump-flows", &br])) {
        Reply::Flows { flows } => assert_eq!(flows.len(), 2),
        r => panic!("{r:?}"),
    }
    assert_pretty(&d.ok(&["--format", "json", "dump-flows", &br, "table=7"]));
    assert_pretty(&d.ok(&["--format", "json", "dump-ports", &br]));
    assert_pretty(&d.ok(&["--format", "json", "export"]));

    // Chunked: 20,000 flows are ~15 MB of JSON.
    let n = 20_000;
    let file = d.dir().join("f.flows");
    std::fs::write(&file, gen_flows(n)).unwrap();
    d.ok_slow(&["replace-flows", &br, file.to_str().unwrap()]);
    let lines = raw_lines(&d, &json!({"type": "dump_flows", "bridge": br}));
    assert_eq!(lines[0], b"{\"ok\":true,\"stream\":{\"key\":\"flows\"}}\n");
    let mut items = 0;
    for l in &lines[1..lines.len() - 1] {
        assert!(l.len() <= MAX_LINE);
        let v: Value = serde_json::from_slice(l).unwrap();
        let k = v["chunk"]["flows"]
            .as_array()
            .expect("a chunk of flows")
            .len();
        assert!((1..=1000).contains(&k), "{k} flows in a chunk");
        items += k;
    }
    assert_eq!(items, n);
    let end: Value = serde_json::from_slice(lines.last().unwrap()).unwrap();
    assert_eq!(end["end"]["items"], n);
    assert_eq!(end["end"]["chunks"], lines.len() - 2);

    let printed = d.ok_slow(&["--format", "json", "dump-flows", &br]);
    let Reply::Flows { flows } = assert_pretty(&printed) else {
        panic!("not flows")
    };
    assert_eq!(flows.len(), n);
    let mut seen = vec![false; n];
    for f in &flows {
        let i = f.cookie as usize;
        assert!(!std::mem::replace(&mut seen[i], true), "flow {i} twice");
        let want = gen_flow(i);
        let prefix = format!("table={},priority={},", f.table, f.priority);
        assert!(want.starts_with(&prefix), "{f:?}");
    }
    // The table form prints one line per flow, --no-stats the flow alone.
    let table = d.ok_slow(&["dump-flows", &br, "--no-stats"]);
    assert_eq!(table.lines().count(), n);
    assert!(table.lines().all(|l| l.contains(" actions=")));

    // export: a TOML text of several MB, the same in both formats; apply
    // of it (uploaded in pieces) changes nothing.
    let toml = d.ok_slow(&["export"]);
    assert!(toml.len() > MAX_LINE, "{} bytes", toml.len());
    let Reply::Config { toml: t2 } = assert_pretty(&d.ok_slow(&["--format", "json", "export"]))
    else {
        panic!("not a config")
    };
    assert!(t2 == toml, "export differs between the formats");
    let sw = d.dir().join("sw.toml");
    std::fs::write(&sw, &toml).unwrap();
    assert_eq!(d.ok_slow(&["apply", sw.to_str().unwrap()]), "no changes\n");

    // A dry run that changes every flow: 40,000 change lines, streamed.
    std::fs::write(&sw, toml.replace("output:3", "output:4")).unwrap();
    let dry = d.ok_slow(&["apply", "--dry-run", sw.to_str().unwrap()]);
    assert_eq!(dry.lines().count(), 2 * n + 1, "{}", &dry[..200]);
    assert!(dry.ends_with("(dry run: nothing was changed)\n"));
    let Reply::Apply { changes, applied } = assert_pretty(&d.ok_slow(&[
        "--format",
        "json",
        "apply",
        "--dry-run",
        sw.to_str().unwrap(),
    ])) else {
        panic!("not an apply reply")
    };
    assert_eq!((changes.len(), applied), (2 * n, false));
    // Applied for real, then exported again: every flow changed.
    d.ok_slow(&["apply", sw.to_str().unwrap()]);
    let after = d.ok_slow(&["export"]);
    assert_eq!(after.matches("output:4\"").count(), n);
}

#[test]
fn flow_files_larger_than_a_line_are_all_or_nothing() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let n = 30_000; // ~8 MB
    let before = d.ok(&["dump-flows", &br, "--no-stats"]);
    let state = std::fs::read(d.state_file()).unwrap();
    let mut lines: Vec<String> = (0..n).map(gen_flow).collect();
    lines[24_999] = "priority=13,nw_src=10.0.0.1,actions=drop\n".into();
    let file = d.dir().join("bad.flows");
    std::fs::write(&file, lines.concat()).unwrap();
    let f = file.to_str().unwrap();
    for (verb, words) in [
        ("add-flows", "no flows were added"),
        ("replace-flows", "no flows were changed"),
    ] {
        let out = d.ctl_slow(&[verb, &br, f]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{verb}: {err}");
        assert!(
            err.contains("line 25000: nw_src=10.0.0.1: nw_src needs ip or arp")
                && err.contains(words),
            "{verb}: {err}"
        );
    }
    // From standard input too.
    let mut c = Command::new(rvsctl_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(["--timeout", "120", "add-flows", &br, "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(lines.concat().as_bytes())
        .unwrap();
    let out = c.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 25000"));
    // A text line longer than 1 MiB in an upload is refused by number.
    let mut long = lines[..5].concat();
    long.push_str(&format!("priority=1,actions=drop{}\n", " ".repeat(2 << 20)));
    long.push_str(&lines[5..].concat());
    std::fs::write(&file, &long).unwrap();
    let out = d.ctl_slow(&["add-flows", &br, f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("line 6 of the request text is longer than 1048576 bytes"),
        "{err}"
    );
    assert!(err.len() < 300, "{err}");
    assert_eq!(d.ok(&["dump-flows", &br, "--no-stats"]), before);
    assert_eq!(std::fs::read(d.state_file()).unwrap(), state);

    // The good file goes in whole, and again as a replacement.
    lines[24_999] = gen_flow(24_999);
    std::fs::write(&file, lines.concat()).unwrap();
    d.ok_slow(&["add-flows", &br, f]);
    let count = |d: &Rvsd| {
        d.ok_slow(&["dump-flows", &br, "--no-stats"])
            .lines()
            .count()
    };
    assert_eq!(count(&d), n + 1);
    d.ok_slow(&["replace-flows", &br, f]);
    assert_eq!(count(&d), n);
}

#[test]
fn fdb_show_lists_a_hundred_thousand_macs() {
    if !require_root() {
        return;
    }
    let n: u32 = 100_000;
    let d = Rvsd::start();
    let br = d.add_br();
    d.ok(&["set", "bridge", &br, "mac-table-size=200000"]);
    let h = tap_host(&d, &br, &[], None);
    let raw = h.raw();
    let mac_of = |i: u32| [0x02, 0x5a, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    let frame = |i: u32| {
        eth(
            [0x02, 0x5b, 0, 0, 0, 1],
            mac_of(i),
            None,
            0x88b5,
            &[0u8; 46],
        )
    };
    // The TAP queue holds ~1000 frames: send in bursts, and again what a
    // full queue dropped (learning is idempotent).
    let learned = |d: &Rvsd| -> usize {
        let out = d.ok_slow(&["fdb-show", &br]);
        out.lines().filter(|l| l.contains("02:5a:00:")).count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut have = 0;
    while have < n as usize {
        assert!(Instant::now() < deadline, "only {have} of {n} MACs learned");
        for i in 0..n {
            raw.send(&frame(i));
            if i % 256 == 255 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        have = learned(&d);
    }
    assert_eq!(have, n as usize);
    // The JSON document: every entry once, on the host's port.
    let fdb = assert_pretty(&d.ok_slow(&["--format", "json", "fdb-show", &br]));
    let Reply::Fdb { fdb } = fdb else {
        panic!("not an fdb")
    };
    let mut macs: Vec<&str> = fdb
        .iter()
        .filter(|e| e.mac.starts_with("02:5a:00:"))
        .map(|e| {
            assert_eq!(e.port_name, h.port);
            e.mac.as_str()
        })
        .collect();
    macs.sort_unstable();
    macs.dedup();
    assert_eq!(macs.len(), n as usize);
    // The table keeps its one header line.
    let table = d.ok_slow(&["fdb-show", &br]);
    assert_eq!(table.lines().filter(|l| l.contains("MAC")).count(), 1);
}

/// `memory-show` accounts for what rvsd holds: 20,000 flows add their
/// size to the allocated bytes, and deleting them gives it back, the
/// same way in each of three rounds (a leak would ratchet it up).
#[test]
fn memory_show_sees_flows_come_and_go_without_a_leak() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let file = d.dir().join("mem-flows.txt");
    std::fs::write(&file, gen_flows(20_000)).unwrap();
    let mem = |d: &Rvsd| {
        let v = d.json(&["memory-show"]);
        let m = &v["memory"];
        assert!(m["rss_bytes"].as_u64().unwrap() > 0, "{v}");
        assert!(m["threads"].as_u64().unwrap() >= 2, "{v}");
        let b = m["bridges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == br.as_str())
            .cloned()
            .unwrap();
        let alloc = m["allocated_bytes"]
            .as_u64()
            .expect("rvsd counts its allocations");
        assert!(m["committed_bytes"].as_u64().unwrap() >= alloc / 2, "{v}");
        (
            alloc,
            b["flows"].as_u64().unwrap(),
            b["counter_bytes_per_flow"].as_u64().unwrap(),
        )
    };
    let (base, flows, per_flow) = mem(&d);
    assert_eq!(
        (flows, per_flow),
        (1, 64),
        "one worker: one 64-byte counter block"
    );
    let mut after_delete = Vec::new();
    for round in 0..3 {
        d.ok(&["add-flows", &br, file.to_str().unwrap()]);
        let (full, flows, _) = mem(&d);
        assert_eq!(flows, 20_001);
        let grown = full.saturating_sub(base);
        assert!(
            grown > 20_000 * 200,
            "round {round}: 20,000 flows added {grown} bytes"
        );
        d.ok(&["del-flows", &br, "tcp"]);
        // The datapath may still hold the old table copy for a moment; the
        // control plane frees it within a second of letting go.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let (empty, flows) = loop {
            let (empty, flows, _) = mem(&d);
            if empty.saturating_sub(base) < grown / 4 || std::time::Instant::now() > deadline {
                break (empty, flows);
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        assert_eq!(flows, 1);
        // Tables keep some capacity; most of the flows' memory is back.
        assert!(
            empty.saturating_sub(base) < grown / 4,
            "round {round}: {} of {grown} bytes still held after deleting",
            empty.saturating_sub(base)
        );
        after_delete.push(empty);
    }
    let ratchet = after_delete[2].saturating_sub(after_delete[0]);
    assert!(
        ratchet < 256 * 1024,
        "held after delete grew by {ratchet} bytes over rounds: {after_delete:?}"
    );
    let text = d.ok(&["memory-show"]);
    assert!(
        text.contains("held by rvsd") && text.contains(&format!("bridge {br}: ")),
        "{text}"
    );
}
