//! Per-packet cost of the datapath's pure stages: key extraction, flow
//! lookup in a published pipeline (1 flow; 10,000 flows beside NORMAL with
//! one mask; 10,000 flows over 16 masks), through the classifier alone
//! and through the exact-match cache, and the NORMAL decision with MAC
//! learning. I/O is measured by benches/peerbench.sh, not here.

mod common;

use common::{pipeline, udp_frame};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flowtable::extract::extract_layout;
use flowtable::{PortNo, Vid};
use rvs::bridge::{Bridge, NormalOutcome, VlanConfig};
use rvs::datapath::emc::Emc;

/// A 64-byte UDP frame from `src` to `dst` (10.0.0.1 → 10.0.0.2).
fn frame(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    udp_frame(src, dst, [10, 0, 0, 1], [10, 0, 0, 2])
}

fn bench(c: &mut Criterion) {
    let a = [2, 0, 0, 0, 0, 1];
    let b = [2, 0, 0, 0, 0, 2];
    let pkt = frame(a, b);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    for (n, masks) in [(0usize, 1usize), (10_000, 1), (10_000, 16)] {
        let mut p = pipeline(n, masks);
        p.renew_all();
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
                        e.data.hit(0, pkt.len(), 1);
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
