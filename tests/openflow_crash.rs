//! `kill -9` in the middle of a large OpenFlow install: after the restart
//! the flow table holds exactly a prefix of the FLOW_MODs sent, and that
//! prefix covers every FLOW_MOD a BARRIER_REPLY acknowledged.
//!
//! The controller is written here against the OpenFlow 1.3 wire format
//! (not rvs's codec): HELLO, then `N` FLOW_MODs
//! `priority=P,ip,nw_dst=10.a.b.c` in order, a BARRIER_REQUEST after every
//! `K` of them, pipelined with at most `WINDOW` barriers unanswered. The
//! kill comes once at least a random number of flows is acknowledged
//! (plus a random few milliseconds), so it lands anywhere in the install
//! whatever the build's speed. The restored table is read back in slices
//! of 4096 flows (`dump-flows BR ip,nw_dst=PREFIX/20`) to keep every reply
//! small.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// FLOW_MODs per round (override with `RVS_CRASH_FLOWS`; 100,000 passes
/// too, but restoring 90,000 flows takes a debug rvsd up to 10 s on this
/// VM, the limit `Rvsd::restart` waits).
const N: usize = 50_000;
/// FLOW_MODs per BARRIER_REQUEST.
const K: usize = 500;
/// Barriers in flight at most.
const WINDOW: usize = 8;
/// Flows per dump slice (a /20 of nw_dst).
const SLICE: usize = 4096;
const ROUNDS: usize = 3;

const OFP13: u8 = 4;
const OFPT_HELLO: u8 = 0;
const OFPT_ERROR: u8 = 1;
const OFPT_ECHO_REQUEST: u8 = 2;
const OFPT_ECHO_REPLY: u8 = 3;
const OFPT_FLOW_MOD: u8 = 14;
const OFPT_BARRIER_REQUEST: u8 = 20;
const OFPT_BARRIER_REPLY: u8 = 21;

fn header(out: &mut Vec<u8>, t: u8, len: usize, xid: u32) {
    out.push(OFP13);
    out.push(t);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&xid.to_be_bytes());
}

fn nw_dst(i: usize) -> [u8; 4] {
    [10, (i >> 16) as u8, (i >> 8) as u8, i as u8]
}

fn priority(i: usize) -> u16 {
    1 + (i / SLICE) as u16
}

/// OFPT_FLOW_MOD ADD of flow `i`: `priority=P,ip,nw_dst=10.a.b.c`, no
/// instructions (drop).
fn flow_mod(out: &mut Vec<u8>, i: usize) {
    let start = out.len();
    header(out, OFPT_FLOW_MOD, 72, 0x4000_0000 | i as u32);
    out.extend_from_slice(&(0x1000_0000u64 + i as u64).to_be_bytes()); // cookie
    out.extend_from_slice(&0u64.to_be_bytes()); // cookie_mask
    out.push(0); // table_id
    out.push(0); // OFPFC_ADD
    out.extend_from_slice(&0u16.to_be_bytes()); // idle_timeout
    out.extend_from_slice(&0u16.to_be_bytes()); // hard_timeout
    out.extend_from_slice(&priority(i).to_be_bytes());
    out.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // buffer_id: none
    out.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // out_port: any
    out.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // out_group: any
    out.extend_from_slice(&0u16.to_be_bytes()); // flags
    out.extend_from_slice(&[0, 0]);
    // ofp_match: OXM, eth_type=0x0800, ipv4_dst; 4 + 6 + 8 = 18, padded to 24.
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&18u16.to_be_bytes());
    out.extend_from_slice(&[0x80, 0x00, 5 << 1, 2, 0x08, 0x00]);
    out.extend_from_slice(&[0x80, 0x00, 12 << 1, 4]);
    out.extend_from_slice(&nw_dst(i));
    out.extend_from_slice(&[0; 6]);
    debug_assert_eq!(out.len() - start, 72);
}

fn cookie(i: usize) -> u64 {
    0x1000_0000 + i as u64
}

/// What the client saw.
#[derive(Default)]
struct Progress {
    /// Flows covered by the last BARRIER_REPLY.
    acked: AtomicUsize,
    /// Flows handed to `write` (the last call may have written part).
    attempted: AtomicUsize,
    /// Set when the reader has stopped (EOF or error).
    closed: AtomicBool,
    /// ERROR messages received (type, code, xid).
    errors: Mutex<Vec<(u16, u16, u32)>>,
}

/// Connects to the `ptcp:` target (retrying ≤ 10 s) and runs the install
/// on two threads; returns them.
fn install(
    port: u16,
    n: usize,
    p: Arc<Progress>,
) -> (std::thread::JoinHandle<()>, std::thread::JoinHandle<()>) {
    let s = poll(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("connect to the ptcp: target");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut rd = s.try_clone().unwrap();
    let wr = Arc::new(Mutex::new(s));
    let reader = {
        let p = p.clone();
        let wr = wr.clone();
        std::thread::spawn(move || {
            let mut buf: Vec<u8> = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let got = match rd.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => k,
                };
                buf.extend_from_slice(&chunk[..got]);
                let mut off = 0;
                while buf.len() - off >= 8 {
                    let len = u16::from_be_bytes([buf[off + 2], buf[off + 3]]) as usize;
                    assert!(len >= 8, "bad length {len} from rvsd");
                    if buf.len() - off < len {
                        break;
                    }
                    let m = &buf[off..off + len];
                    let xid = u32::from_be_bytes([m[4], m[5], m[6], m[7]]);
                    match m[1] {
                        OFPT_BARRIER_REPLY => {
                            p.acked.fetch_max(xid as usize, Ordering::SeqCst);
                        }
                        OFPT_ERROR => {
                            let t = u16::from_be_bytes([m[8], m[9]]);
                            let c = u16::from_be_bytes([m[10], m[11]]);
                            p.errors.lock().unwrap().push((t, c, xid));
                        }
                        OFPT_ECHO_REQUEST => {
                            let mut r = m.to_vec();
                            r[1] = OFPT_ECHO_REPLY;
                            let _ = wr.lock().unwrap().write_all(&r);
                        }
                        _ => {}
                    }
                    off += len;
                }
                buf.drain(..off);
            }
            p.closed.store(true, Ordering::SeqCst);
        })
    };
    let writer = std::thread::spawn(move || {
        let mut out = Vec::with_capacity(K * 72 + 16);
        header(&mut out, OFPT_HELLO, 8, 1);
        let mut next = 0;
        while next < n {
            // Stay within the window of unanswered barriers.
            while next - p.acked.load(Ordering::SeqCst) >= WINDOW * K {
                if p.closed.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            let end = (next + K).min(n);
            for i in next..end {
                flow_mod(&mut out, i);
            }
            // The barrier's xid is the number of flows it covers.
            header(&mut out, OFPT_BARRIER_REQUEST, 8, end as u32);
            p.attempted.store(end, Ordering::SeqCst);
            // Not under the lock for long: the reader only echoes.
            if wr.lock().unwrap().write_all(&out).is_err() {
                return;
            }
            out.clear();
            next = end;
        }
    });
    (reader, writer)
}

/// Index of the flow with this `--no-stats` text, checking that it is
/// exactly what was sent.
fn index_of(text: &str) -> usize {
    let dst = text
        .split(",nw_dst=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected flow {text:?}"));
    let o: Vec<usize> = dst.split('.').map(|x| x.parse().unwrap()).collect();
    assert_eq!(o.len(), 4, "{text}");
    assert_eq!(o[0], 10, "{text}");
    let i = o[1] << 16 | o[2] << 8 | o[3];
    let want = format!(
        "cookie={:#x}, priority={},ip,nw_dst={dst} actions=drop",
        cookie(i),
        priority(i)
    );
    assert_eq!(text, want, "flow {i} restored differently");
    i
}

/// The indexes of the restored flows, read in /20 slices; panics on any
/// flow that is not one the client sent.
fn restored(d: &Rvsd, br: &str, n: usize) -> Vec<bool> {
    let mut present = vec![false; n];
    for s in 0..n.div_ceil(SLICE) {
        let first = nw_dst(s * SLICE);
        let filter = format!("ip,nw_dst={}.{}.{}.0/20", first[0], first[1], first[2]);
        let v = d.json(&["dump-flows", br, &filter]);
        for f in v["flows"].as_array().expect("flows") {
            let text = f["flow"].as_str().expect("flow text");
            let i = index_of(text);
            assert!(i < n && i / SLICE == s, "flow {i} in slice {s}: {text}");
            assert!(!present[i], "flow {i} twice");
            present[i] = true;
        }
    }
    present
}

#[test]
fn kill9_during_openflow_install_restores_an_acknowledged_prefix() {
    if !require_root() {
        return;
    }
    let n: usize = std::env::var("RVS_CRASH_FLOWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(N);
    let mut next = rng();
    let started = Instant::now();
    let mut d = Rvsd::start();
    let br = d.add_br();
    let port = free_port();
    d.ok(&["set-controller", &br, &format!("ptcp:{port}")]);
    let mut last = 0;
    for round in 0..ROUNDS {
        let t0 = Instant::now();
        d.ok(&["del-flows", &br]);
        // Kill once 10-90 % of the flows are acknowledged, plus 0-30 ms (a batch of
        // K flow mods takes about that long in a debug build).
        let kill_at = n / 10 + (next() as usize) % (n * 8 / 10);
        let delay_us = next() % 30_000;
        let p = Arc::new(Progress::default());
        let (reader, writer) = install(port, n, p.clone());
        let end = Instant::now() + Duration::from_secs(60);
        while p.acked.load(Ordering::SeqCst) < kill_at {
            assert!(
                Instant::now() < end,
                "round {round}: only {} of {kill_at} flows acknowledged in 60 s",
                p.acked.load(Ordering::SeqCst)
            );
            assert!(
                !p.closed.load(Ordering::SeqCst),
                "round {round}: rvsd closed the connection:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_micros(delay_us));
        d.kill9();
        let t_kill = t0.elapsed();
        writer.join().expect("writer");
        reader.join().expect("reader");
        let acked = p.acked.load(Ordering::SeqCst);
        let attempted = p.attempted.load(Ordering::SeqCst);
        let errors = p.errors.lock().unwrap().clone();
        assert!(
            errors.is_empty(),
            "round {round}: OpenFlow errors {errors:x?}"
        );
        assert!(
            acked < n,
            "round {round}: the install ended before the kill"
        );

        let t1 = Instant::now();
        d.restart();
        let t_restore = t1.elapsed();
        let t2 = Instant::now();
        let present = restored(&d, &br, n);
        let count = present.iter().filter(|&&x| x).count();
        eprintln!(
            "round {round}: kill at >= {kill_at} acked + {delay_us} us ({:.1} s in); \
             {acked} acknowledged, {attempted} sent, {count} restored; \
             restart took {:.1} s, reading the table back {:.1} s",
            t_kill.as_secs_f64(),
            t_restore.as_secs_f64(),
            t2.elapsed().as_secs_f64()
        );
        // A prefix: flow i present => every j < i present.
        if let Some(hole) = present.iter().position(|&x| !x) {
            let after = present[hole..].iter().position(|&x| x);
            assert!(
                after.is_none(),
                "round {round}: flow {hole} missing but flow {} restored",
                hole + after.unwrap_or(0)
            );
        }
        assert!(
            count >= acked,
            "round {round}: {acked} flows acknowledged by BARRIER_REPLY, only {count} restored"
        );
        assert!(
            count <= attempted,
            "round {round}: {count} restored but only {attempted} sent"
        );
        last = count;
    }
    // A clean restart on what the crashes left keeps the same table.
    d.stop();
    d.restart();
    let present = restored(&d, &br, n);
    assert_eq!(present.iter().filter(|&&x| x).count(), last);
    assert!(present[..last].iter().all(|&x| x));
    eprintln!(
        "{ROUNDS} rounds in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
