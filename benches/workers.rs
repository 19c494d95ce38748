//! Does the datapath's shared state scale from one worker to two?
//!
//! Runs the real per-packet code (`xlate::receive`: extract, exact-match
//! cache / classifier, NORMAL with MAC learning under the bridge's shared
//! mutex, per-worker port and flow counters) on 1 and then 2 threads, each
//! thread being a worker with its own view of one bridge, as rvsd's
//! workers are. Worker `w` receives on port `w + 1`; with one worker, it
//! receives on both ports alternately. Ports have no I/O attached (the
//! send is counted as a `port_down` drop), so this measures the switch's
//! own work and its contention, not the kernel's: end-to-end numbers are
//! peerbench's job (on this 2-core machine the traffic endpoints need the
//! second core, see README).
//!
//! Run: `cargo bench -p rvs --bench workers` (prints Mpps per run; best of
//! 5 runs of 2 M packets per worker). `WORKERS_FLOWS=10000` adds 10,000
//! flows over 16 masks in front of NORMAL.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

mod common;

use arc_swap::ArcSwap;
use common::{pipeline, udp_frame};
use flowtable::PortNo;
use rvs::bridge::{Bridge, VlanConfig};
use rvs::datapath::counters::PortShared;
use rvs::datapath::emc::Emc;
use rvs::datapath::txq::TxQueues;
use rvs::datapath::xlate::{self, BridgeRt, Slot, XlateCtx, SCRATCH};
use rvs::packet::PacketBuf;

const PACKETS: u64 = 2_000_000;

/// One run with `n` workers; returns aggregate Mpps.
fn run(n: usize, rt: &BridgeRt, shared: &[Arc<PortShared>]) -> f64 {
    let start = Arc::new(Barrier::new(n + 1));
    let threads: Vec<_> = (0..n)
        .map(|w| {
            let mut rt = rt.clone();
            let shared = shared.to_vec();
            let start = start.clone();
            std::thread::spawn(move || {
                let mut slots: Vec<Option<Slot>> = shared
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        Some(Slot {
                            bridge: 0,
                            ofport: PortNo(i as u32 + 1),
                            name: format!("p{}", i + 1),
                            io: None,
                            owner: 0,
                            shared: s.clone(),
                            patch_peer: None,
                            policers: Default::default(),
                        })
                    })
                    .collect();
                for i in 0..shared.len() {
                    rt.add_port(PortNo(i as u32 + 1), i, VlanConfig::default(), false, false);
                }
                let mut bridges = vec![Some(rt)];
                let mut scratch: Vec<PacketBuf> = (0..SCRATCH).map(|_| PacketBuf::new()).collect();
                let mut seg = vec![0u8; rvs::packet::BUF_SIZE];
                let mut emc = Emc::new();
                let mut tx = TxQueues::default();
                // Frames from port 1 to port 2's host and back.
                let mut bufs: Vec<PacketBuf> = [(1u8, 2u8), (2, 1)]
                    .iter()
                    .map(|&(s, d)| {
                        let f = udp_frame(
                            [2, 0, 0, 0, 0, s],
                            [2, 0, 0, 0, 0, d],
                            [10, 0, 0, s],
                            [10, 0, 0, d],
                        );
                        let mut b = PacketBuf::new();
                        b.rx_space()[..f.len()].copy_from_slice(&f);
                        b.set_received(f.len());
                        b
                    })
                    .collect();
                start.wait();
                for i in 0..PACKETS {
                    // One worker alternates ports; two each keep to theirs.
                    let port = if n == 1 { (i & 1) as usize } else { w };
                    let mut ctx = XlateCtx {
                        slots: &mut slots,
                        bridges: &mut bridges,
                        scratch: &mut scratch,
                        seg: &mut seg,
                        now_ms: 1,
                        now_ns: 1_000_000,
                        w,
                        emc: &mut emc,
                        tx: &mut tx,
                    };
                    xlate::receive(&mut ctx, 0, port, &mut bufs[port]);
                }
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    for t in threads {
        t.join().expect("worker");
    }
    let dt = t0.elapsed().max(Duration::from_nanos(1));
    (n as u64 * PACKETS) as f64 / dt.as_secs_f64() / 1e6
}

fn main() {
    // `cargo bench` passes --bench; a `cargo test` run passes nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let flows: usize = std::env::var("WORKERS_FLOWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut p = pipeline(flows, 16);
    p.renew_all();
    let mut normal = Bridge::new();
    for port in [1, 2] {
        normal
            .add_port(PortNo(port), VlanConfig::default())
            .expect("port");
        normal.set_port_up(PortNo(port), true).expect("up");
    }
    let rt = BridgeRt::new("b".into(), Arc::new(ArcSwap::from_pointee(p)), normal);
    let shared: Vec<Arc<PortShared>> = (0..2).map(|_| Arc::new(PortShared::new(None))).collect();
    println!(
        "workers bench: {} flows, {PACKETS} packets per worker",
        flows + 1
    );
    for n in [1, 2] {
        let runs: Vec<f64> = (0..5).map(|_| run(n, &rt, &shared)).collect();
        let best = runs.iter().cloned().fold(0.0, f64::max);
        println!("  {n} worker(s): best {best:.2} Mpps (runs: {runs:.2?})");
    }
}
