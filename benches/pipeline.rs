//! Per-packet cost of the datapath's pure stages: key extraction, flow
//! lookup in a published pipeline (1 flow; 10,000 flows beside NORMAL with
//! one mask; 10,000 flows over 16 masks), through the classifier alone
//! and through the exact-match cache, and the NORMAL decision with MAC
//! learning. I/O is measured by benches/peerbench.sh, not here.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flowtable::classifier::{CounterPolicy, Rule};
use flowtable::extract::extract_layout;
use flowtable::syntax::parse_flow;
use flowtable::{PortNo, Vid};
use rvs::bridge::{Bridge, NormalOutcome, VlanConfig};
use rvs::datapath::emc::Emc;
use rvs::datapath::pipeline::{FlowEntry, Pipeline};

/// An Ethernet/IPv4/UDP frame from `src` to `dst` (64 bytes).
fn frame(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&50u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    f[34..36].copy_from_slice(&5001u16.to_be_bytes());
    f[36..38].copy_from_slice(&5002u16.to_be_bytes());
    f[38..40].copy_from_slice(&30u16.to_be_bytes());
    f
}

fn pipeline(extra: usize, masks: usize) -> Pipeline {
    let mut p = Pipeline::new();
    let mut add = |text: &str| {
        let f = parse_flow(text, &|_| None).expect("flow");
        let e = Arc::new(FlowEntry::new(f.clone(), 0));
        let rule = Rule::new(f.m, f.priority, e);
        p.table_mut(0).insert(rule, 0, CounterPolicy::Reset);
    };
    add("priority=0,actions=NORMAL");
    for i in 0..extra {
        // Mask k: nw_src prefix /(32 - k); 172.16/12 never matches the
        // benchmark packet. Random-ish priorities defeat early exit.
        let k = i % masks;
        let ip = (172u32 << 24 | (16 + (i as u32 >> 16) % 16) << 16 | (i as u32 & 0xffff))
            & !((1u32 << k) - 1);
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

fn bench(c: &mut Criterion) {
    let a = [2, 0, 0, 0, 0, 1];
    let b = [2, 0, 0, 0, 0, 2];
    let pkt = frame(a, b);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    for (n, masks) in [(0usize, 1usize), (10_000, 1), (10_000, 16)] {
        let mut p = pipeline(n, masks);
        p.generation = Pipeline::next_generation();
        let mut br = Bridge::new();
        for port in [1, 2] {
            br.add_port(
                PortNo(port),
                VlanConfig::new(None, Some(Vid(10)), vec![]).expect("vlan"),
            )
            .expect("port");
        }
        let mut out = NormalOutcome::default();
        // Learn the destination first so NORMAL takes the unicast path.
        let (k, _) = extract_layout(&frame(b, a), PortNo(2));
        br.normal(&k, 0, &mut out);
        let mut emc = Emc::new();
        for cached in [false, true] {
            let name = format!(
                "extract+{}+normal/{}_flows_{}_masks",
                if cached { "emc" } else { "classifier" },
                n + 1,
                masks
            );
            g.bench_function(name, |bn| {
                bn.iter_batched_ref(
                    || (),
                    |_| {
                        let (key, layout) = extract_layout(std::hint::black_box(&pkt), PortNo(1));
                        let e = if cached {
                            emc.lookup(&p, 0, &key)
                        } else {
                            p.lookup(0, &key)
                        };
                        let e = e.expect("NORMAL matches");
                        e.hit(0, pkt.len(), 1);
                        br.normal(&key, 1, &mut out);
                        std::hint::black_box((layout, out.outputs.len()))
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
