//! `dump-flows` of a large table through rvsctl: every flow is listed
//! once and parses, while rvsd's memory stays flat (the reply is
//! formatted and sent chunk by chunk). Alone in its file, so that its
//! minute is not shared with other tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;

#[test]
fn a_large_dump_streams_every_flow_in_bounded_memory() {
    if !require_root() {
        return;
    }
    // ~56 MB of flows: 14 times a protocol line, uploaded in pieces.
    let n = 200_000;
    let d = Rvsd::start();
    let br = d.add_br();
    let file = d.dir().join("big.flows");
    std::fs::write(&file, gen_flows(n)).unwrap();
    let t = Instant::now();
    d.ok_slow(&["add-flows", &br, file.to_str().unwrap()]);
    eprintln!(
        "add-flows of {n} flows ({} bytes): {:.1?}",
        std::fs::metadata(&file).unwrap().len(),
        t.elapsed()
    );
    std::fs::remove_file(&file).unwrap();

    // Reset rvsd's peak RSS, so that the dump's own peak can be read.
    std::fs::write(format!("/proc/{}/clear_refs", d.pid()), "5").unwrap();
    let (rss0, _) = d.rss_kib();
    let t = Instant::now();
    let mut c = Command::new(rvsctl_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(["--timeout", "120", "dump-flows", &br])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // One thread drains rvsctl as fast as it prints, this one parses (on
    // the other core), so that the parsing does not slow the dump down.
    let stdout = c.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<String>>();
    let reader = std::thread::spawn(move || {
        let mut rd = BufReader::with_capacity(1 << 20, stdout);
        let mut batch = Vec::with_capacity(4096);
        let mut line = String::new();
        while rd.read_line(&mut line).unwrap() > 0 {
            batch.push(std::mem::take(&mut line));
            if batch.len() == 4096 {
                tx.send(std::mem::take(&mut batch)).unwrap();
            }
        }
        tx.send(batch).unwrap();
    });
    let mut seen = vec![false; n];
    let (mut lines, mut bytes, mut normal) = (0usize, 0usize, 0usize);
    for line in rx.iter().flatten() {
        lines += 1;
        bytes += line.len();
        let text = line.trim_end();
        assert!(text.starts_with(" cookie=0x"), "line {lines}: {text}");
        let f = flowtable::syntax::parse_flow(text.trim_start(), &|_: &str| None)
            .unwrap_or_else(|e| panic!("line {lines} does not parse: {e}: {text}"));
        if f.priority.0 == 0 {
            normal += 1;
        } else {
            let i = f.cookie as usize;
            assert!(!seen[i], "flow {i} listed twice");
            seen[i] = true;
        }
    }
    reader.join().unwrap();
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let st = c.wait().unwrap();
    let took = t.elapsed();
    assert!(st.success(), "dump-flows failed: {err}");
    let (_, peak) = d.rss_kib();
    eprintln!(
        "dump-flows: {lines} lines, {bytes} bytes in {took:.1?}; rvsd RSS {rss0} KiB before, \
         peak {peak} KiB during"
    );
    assert_eq!(normal, 1, "the bridge's NORMAL flow");
    assert_eq!(lines, n + 1);
    assert!(seen.iter().all(|&s| s), "flows missing from the dump");
    // Without streaming the reply alone was ~2.5 times the output; now
    // rvsd holds a few chunks.
    assert!(
        peak.saturating_sub(rss0) < 96 * 1024,
        "rvsd grew from {rss0} to {peak} KiB during the dump"
    );
}
