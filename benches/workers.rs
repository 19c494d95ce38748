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

use arc_swap::ArcSwap;
use flowtable::classifier::{CounterPolicy, Rule};
use flowtable::syntax::parse_flow;
use flowtable::PortNo;
use rvs::bridge::{Bridge, VlanConfig};
use rvs::datapath::counters::PortShared;
use rvs::datapath::emc::Emc;
use rvs::datapath::pipeline::{FlowEntry, Pipeline};
use rvs::datapath::txq::TxQueues;
use rvs::datapath::xlate::{self, BridgeRt, Slot, XlateCtx, SCRATCH};
use rvs::packet::PacketBuf;

const PACKETS: u64 = 2_000_000;

fn frame(src: u8, dst: u8) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, dst]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, src]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&50u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, src]);
    f[30..34].copy_from_slice(&[10, 0, 0, dst]);
    f[34..36].copy_from_slice(&5001u16.to_be_bytes());
    f[36..38].copy_from_slice(&5002u16.to_be_bytes());
    f[38..40].copy_from_slice(&30u16.to_be_bytes());
    f
}

fn pipeline(extra: usize) -> Pipeline {
    let mut p = Pipeline::new();
    let mut add = |text: &str| {
        let f = parse_flow(text, &|_| None).expect("flow");
        let e = Arc::new(FlowEntry::new(f.clone(), 0));
        p.table_mut(0)
            .insert(Rule::new(f.m, f.priority, e), 0, CounterPolicy::Reset);
    };
    add("priority=0,actions=NORMAL");
    for i in 0..extra {
        let k = i % 16;
        let ip = (172u32 << 24 | 16 << 16 | (i as u32 & 0xffff)) & !((1u32 << k) - 1);
        add(&format!(
            "priority={},udp,nw_src={}/{},tp_dst={},actions=drop",
            100 + (i * 7919) % 1000,
            std::net::Ipv4Addr::from(ip),
            32 - k,
            1000 + i % 1000
        ));
    }
    p
}

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
                        })
                    })
                    .collect();
                for i in 0..shared.len() {
                    rt.add_port(PortNo(i as u32 + 1), i, VlanConfig::default(), false);
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
                        let f = frame(s, d);
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
    let mut p = pipeline(flows);
    p.generation = Pipeline::next_generation();
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
