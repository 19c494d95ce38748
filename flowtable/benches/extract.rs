//! Key extraction cost per golden frame type, in ns/frame.
//!
//! Run: `cargo bench -p flowtable --bench extract -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flowtable::extract::{extract, extract_layout};
use flowtable::PortNo;

#[allow(dead_code)]
#[path = "../tests/golden/frames.rs"]
mod frames;
use frames::*;

fn bench_extract(c: &mut Criterion) {
    let cases: &[(&str, &[u8])] = &[
        ("eth_unknown", ETH_LLDP),
        ("vlan_ipv4_udp", VLAN_IPV4_UDP),
        ("qinq_ipv4_tcp", QINQ_IPV4_TCP),
        ("arp_request", ARP_REQUEST),
        ("ipv4_tcp", IPV4_TCP),
        ("ipv4_udp", IPV4_UDP),
        ("ipv4_icmp", IPV4_ICMP_ECHO),
        ("ipv4_frag_first", IPV4_FRAG_FIRST),
        ("ipv4_frag_later", IPV4_FRAG_LATER),
        ("ipv4_options_tcp", IPV4_OPTIONS_TCP),
        ("ipv4_sctp", IPV4_SCTP),
        ("ipv6_tcp", IPV6_TCP),
        ("ipv6_hbh_frag_udp", IPV6_HBH_FRAG_UDP),
        ("ipv6_ext_chain_tcp", IPV6_EXT_CHAIN_TCP),
        ("icmpv6_ns", ICMPV6_NS),
        ("llc_stp", LLC_STP),
        ("snap_ipv4_udp", SNAP_IPV4_UDP),
        ("runt", &IPV4_TCP[..10]),
        ("ipv4_tcp_truncated", &IPV4_TCP[..40]),
    ];
    // Each iteration extracts the frame 32 times (a batch), so the
    // per-iteration harness overhead is amortized; read the per-element
    // time from the throughput line, or divide `time` by 32.
    let mut g = c.benchmark_group("extract_x32");
    g.throughput(Throughput::Elements(32));
    // What the loop costs with a trivial body: subtract it.
    g.bench_function("baseline_copy_zero_key", |b| {
        b.iter(|| {
            for _ in 0..32 {
                let f: &[u8] = black_box(IPV4_TCP);
                let mut k = flowtable::FlowKey::ZERO;
                k.in_port = f.len() as u32;
                black_box(k);
            }
        })
    });
    for &(name, frame) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..32 {
                    black_box(extract(black_box(frame), black_box(PortNo(1))));
                }
            })
        });
    }
    g.finish();

    // A batch of 32 mixed frames, as a datapath worker sees them.
    let batch: Vec<&[u8]> = cases.iter().map(|c| c.1).cycle().take(32).collect();
    let mut g = c.benchmark_group("extract_layout_batch32");
    g.throughput(Throughput::Elements(32));
    g.bench_function("mixed", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for f in &batch {
                let (k, l) = extract_layout(black_box(f), PortNo(1));
                acc = acc.wrapping_add(u32::from(k.tp_dst) ^ u32::from(l.l4));
            }
            acc
        })
    });
    g.finish();
}

criterion_group!(benches, bench_extract);
criterion_main!(benches);
