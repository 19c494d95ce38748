//! Classifier benchmarks: lookup latency by rule count and mask count (keys
//! that hit and keys that miss), insert rate, and clone cost.
//!
//! Rules get random values and random priorities in `0..1000`, so every
//! subtable's maximum priority is near the top and a lookup rarely exits
//! early: this measures close to the worst case (one probe per mask).
//! Masks mix fields over different key words (in_port, ip+nw_src/24,
//! tcp+tp_dst, dl_vlan, dl_dst, in_port+dl_src, ip+src+dst, ipv6_dst/64),
//! times variants with a few `metadata` bits, up to 64 distinct masks.
//!
//! `lookup_banded` gives each mask its own priority band instead, the
//! friendlier shape of real tables, where early exit pays.
//!
//! Run: `cargo bench -p flowtable --bench classifier -- --warm-up-time 1
//! --measurement-time 2`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flowtable::classifier::{Classifier, CounterPolicy, Rule};
use flowtable::{FlowKey, Match, Priority};

/// SplitMix64: a small deterministic generator (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn key(&mut self) -> FlowKey {
        let mut k = FlowKey::ZERO;
        for w in k.words_mut() {
            *w = self.next();
        }
        k
    }
}

/// Mask number `i` (distinct for `i < 64`).
fn mask(i: usize) -> FlowKey {
    let base = match i % 8 {
        0 => FlowKey {
            in_port: u32::MAX,
            ..FlowKey::ZERO
        },
        1 => FlowKey {
            dl_type: 0xffff,
            nw_src: 0xffff_ff00,
            ..FlowKey::ZERO
        },
        2 => FlowKey {
            dl_type: 0xffff,
            nw_proto: 0xff,
            tp_dst: 0xffff,
            ..FlowKey::ZERO
        },
        3 => FlowKey {
            vlan_tci: 0x1fff,
            ..FlowKey::ZERO
        },
        4 => FlowKey {
            dl_dst: [0xff; 6],
            ..FlowKey::ZERO
        },
        5 => FlowKey {
            in_port: u32::MAX,
            dl_src: [0xff; 6],
            ..FlowKey::ZERO
        },
        6 => FlowKey {
            dl_type: 0xffff,
            nw_src: u32::MAX,
            nw_dst: u32::MAX,
            ..FlowKey::ZERO
        },
        _ => FlowKey {
            dl_type: 0xffff,
            ipv6_dst: [
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            ..FlowKey::ZERO
        },
    };
    FlowKey {
        metadata: (i / 8) as u64,
        ..base
    }
}

/// `n` random rules spread round-robin over `n_masks` masks.
fn rules(n: usize, n_masks: usize, rng: &mut Rng) -> Vec<Rule<u32>> {
    (0..n)
        .map(|i| {
            // dl_vlan rules match tagged frames only; miss keys are untagged.
            let mut k = rng.key();
            k.vlan_tci |= 0x1000;
            let m = Match::new(k, mask(i % n_masks));
            Rule::new(m, Priority((rng.next() % 1000) as u16), i as u32)
        })
        .collect()
}

fn build(rules: &[Rule<u32>]) -> Classifier<u32> {
    let mut c = Classifier::new();
    for r in rules {
        c.insert(r.clone(), 0, CounterPolicy::Reset);
    }
    c
}

/// 1024 keys that each hit some rule, and 1024 that (almost surely) miss.
fn keys(rules: &[Rule<u32>], rng: &mut Rng) -> (Vec<FlowKey>, Vec<FlowKey>) {
    let hits = (0..1024)
        .map(|_| {
            let r = &rules[(rng.next() % rules.len() as u64) as usize];
            let mut k = rng.key();
            for ((w, m), v) in k
                .words_mut()
                .iter_mut()
                .zip(r.m.mask().words())
                .zip(r.m.key().words())
            {
                *w = (*w & !m) | v;
            }
            k
        })
        .collect();
    let misses = (0..1024)
        .map(|_| FlowKey {
            vlan_tci: 0,
            ..rng.key()
        })
        .collect();
    (hits, misses)
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    for n in [1usize, 100, 10_000, 100_000] {
        for n_masks in [1usize, 4, 16, 64] {
            if n_masks > n {
                continue;
            }
            let mut rng = Rng(n as u64 * 1000 + n_masks as u64);
            let rs = rules(n, n_masks, &mut rng);
            let cls = build(&rs);
            assert_eq!(cls.n_subtables(), n_masks);
            let (hits, misses) = keys(&rs, &mut rng);
            assert!(hits.iter().all(|k| cls.lookup(k).is_some()));
            let n_missed = misses.iter().filter(|k| cls.lookup(k).is_none()).count();
            assert!(n_missed > 1000, "miss keys hit");
            for (kind, ks) in [("hit", &hits), ("miss", &misses)] {
                let id = BenchmarkId::new(format!("{kind}/{n_masks}masks"), n);
                g.bench_with_input(id, ks, |b, ks| {
                    let mut i = 0usize;
                    b.iter(|| {
                        i = (i + 1) & 1023;
                        black_box(cls.lookup(black_box(&ks[i])).map(|(id, _)| id))
                    })
                });
            }
        }
    }
    g.finish();
}

/// Like [`lookup`], but each mask gets its own priority band (more specific
/// masks higher, as real tables tend to be): a hit in a high band lets the
/// lookup skip the subtables below.
fn lookup_banded(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup_banded");
    g.throughput(Throughput::Elements(1));
    for n in [10_000usize, 100_000] {
        for n_masks in [16usize, 64] {
            let mut rng = Rng(n as u64 * 1000 + n_masks as u64 + 1);
            let mut rs = rules(n, n_masks, &mut rng);
            for (i, r) in rs.iter_mut().enumerate() {
                let band = (n_masks - i % n_masks) as u16 * 100;
                r.priority = Priority(band + r.priority.0 % 100);
            }
            let cls = build(&rs);
            let (hits, _) = keys(&rs, &mut rng);
            let id = BenchmarkId::new(format!("hit/{n_masks}masks"), n);
            g.bench_with_input(id, &hits, |b, ks| {
                let mut i = 0usize;
                b.iter(|| {
                    i = (i + 1) & 1023;
                    black_box(cls.lookup(black_box(&ks[i])).map(|(id, _)| id))
                })
            });
        }
    }
    g.finish();
}

fn insert(c: &mut Criterion) {
    let mut g = c.benchmark_group("insert");
    g.sample_size(10);
    for n_masks in [1usize, 16, 64] {
        let n = 100_000;
        let rs = rules(n, n_masks, &mut Rng(7));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new(format!("{n_masks}masks"), n), |b| {
            b.iter_batched(
                || rs.clone(),
                |rs| {
                    let mut c = Classifier::new();
                    for r in rs {
                        c.insert(r, 0, CounterPolicy::Reset);
                    }
                    c
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn clone(c: &mut Criterion) {
    let mut g = c.benchmark_group("clone");
    g.sample_size(10);
    let cls = build(&rules(100_000, 16, &mut Rng(9)));
    g.bench_function("16masks/100000", |b| b.iter(|| black_box(cls.clone())));
    g.finish();
}

criterion_group!(benches, lookup, lookup_banded, insert, clone);
criterion_main!(benches);
