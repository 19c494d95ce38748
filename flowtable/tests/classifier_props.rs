//! Property test: the tuple-space `Classifier` agrees with the linear
//! `NaiveClassifier` on random rule sets.
//!
//! Rules use a handful of masks (fixed ones such as `in_port`,
//! `ip,nw_src=/24`, `tcp,tp_dst`, `dl_vlan`, catchall, plus a few random bit
//! masks per case) over small value domains, with priorities from a small
//! set, so that overlaps, priority ties and ADD replacements are common.
//! Inserts, removals by id, strict and loose deletes, modifications, hits
//! and expiry are interleaved; after every operation both classifiers must
//! return the same rule (id and data) for a batch of random keys, the same
//! loose and strict selections, and the same dump order.
#![allow(clippy::unwrap_used)] // Test code: a None is a failure.

use flowtable::classifier::{
    Classifier, CookieMatch, CounterPolicy, NaiveClassifier, Rule, RuleId,
};
use flowtable::{FlowKey, Match, Priority};
use proptest::prelude::*;

const IN_PORTS: [u32; 3] = [1, 2, 3];
const DL_TYPES: [u16; 2] = [0x0800, 0x0806];
const NW_SRCS: [u32; 4] = [0x0a00_0001, 0x0a00_0002, 0x0a00_0101, 0x0a01_0001];
const NW_PROTOS: [u8; 2] = [6, 17];
const TP_DSTS: [u16; 3] = [22, 80, 443];
const VLAN_TCIS: [u16; 3] = [0, 0x1000 | 10, 0x1000 | 20];
const METADATAS: [u64; 3] = [0, 1, 0x8000_0000_0000_0000];
const PRIORITIES: [u16; 5] = [0, 1, 5, 10, 32768];

/// Masks every case uses.
fn fixed_masks() -> Vec<FlowKey> {
    vec![
        // in_port only.
        FlowKey {
            in_port: u32::MAX,
            ..FlowKey::ZERO
        },
        // ip,nw_src=x/24
        FlowKey {
            dl_type: 0xffff,
            nw_src: 0xffff_ff00,
            ..FlowKey::ZERO
        },
        // ip,nw_src=x (exact)
        FlowKey {
            dl_type: 0xffff,
            nw_src: u32::MAX,
            ..FlowKey::ZERO
        },
        // tcp,tp_dst=x
        FlowKey {
            dl_type: 0xffff,
            nw_proto: 0xff,
            tp_dst: 0xffff,
            ..FlowKey::ZERO
        },
        // dl_vlan=x (vid + present bit)
        FlowKey {
            vlan_tci: 0x1fff,
            ..FlowKey::ZERO
        },
        // in_port + dl_vlan
        FlowKey {
            in_port: u32::MAX,
            vlan_tci: 0x1fff,
            ..FlowKey::ZERO
        },
        // catchall
        FlowKey::ZERO,
    ]
}

/// A random bit mask over the fields the domains vary in.
fn arb_mask() -> impl Strategy<Value = FlowKey> {
    (
        any::<u32>(),
        any::<u16>(),
        any::<u32>(),
        any::<u16>(),
        any::<u16>(),
        any::<u64>(),
        any::<u8>(),
    )
        .prop_map(|(p, t, s, d, v, md, pr)| FlowKey {
            in_port: p & 0x3,
            dl_type: t & 0x000e,
            nw_src: s & 0x0001_0103,
            tp_dst: d & 0x01df,
            vlan_tci: v & 0x101e,
            metadata: md & 0x8000_0000_0000_0001,
            nw_proto: pr & 0x17,
            ..FlowKey::ZERO
        })
}

/// A packet key from the small domains.
fn arb_key() -> impl Strategy<Value = FlowKey> {
    (
        0..IN_PORTS.len(),
        0..DL_TYPES.len(),
        0..NW_SRCS.len(),
        0..NW_PROTOS.len(),
        0..TP_DSTS.len(),
        0..VLAN_TCIS.len(),
        0..METADATAS.len(),
    )
        .prop_map(|(p, t, s, pr, d, v, md)| FlowKey {
            in_port: IN_PORTS[p],
            dl_type: DL_TYPES[t],
            nw_src: NW_SRCS[s],
            nw_proto: NW_PROTOS[pr],
            tp_dst: TP_DSTS[d],
            vlan_tci: VLAN_TCIS[v],
            metadata: METADATAS[md],
            ..FlowKey::ZERO
        })
}

/// A match: a mask from the pool (by index) applied to a key.
#[derive(Clone, Debug)]
struct MatchSpec {
    mask: usize,
    key: FlowKey,
}

impl MatchSpec {
    fn build(&self, masks: &[FlowKey]) -> Match {
        Match::new(self.key, masks[self.mask % masks.len()])
    }
}

fn arb_match() -> impl Strategy<Value = MatchSpec> {
    (0usize..32, arb_key()).prop_map(|(mask, key)| MatchSpec { mask, key })
}

fn arb_cookie_match() -> impl Strategy<Value = CookieMatch> {
    prop_oneof![
        Just(CookieMatch::ANY),
        (0u64..4).prop_map(CookieMatch::exact),
        (0u64..4, 0u64..4).prop_map(|(value, mask)| CookieMatch { value, mask }),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Insert {
        m: MatchSpec,
        prio: usize,
        cookie: u64,
        idle: u16,
        hard: u16,
        data: u8,
        keep: bool,
    },
    RemoveId(usize),
    DeleteStrict {
        m: MatchSpec,
        prio: usize,
        cookie: CookieMatch,
        parity: Option<u8>,
    },
    DeleteLoose {
        m: MatchSpec,
        cookie: CookieMatch,
        parity: Option<u8>,
    },
    Modify(usize, u8),
    Hit(FlowKey, u64),
    Expire(u64),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (arb_match(), 0..PRIORITIES.len(), 0u64..4, 0u16..3, 0u16..3, any::<u8>(), any::<bool>())
            .prop_map(|(m, prio, cookie, idle, hard, data, keep)| Op::Insert {
                m, prio, cookie, idle, hard, data, keep
            }),
        2 => any::<usize>().prop_map(Op::RemoveId),
        2 => (arb_match(), 0..PRIORITIES.len(), arb_cookie_match(), proptest::option::of(0u8..2))
            .prop_map(|(m, prio, cookie, parity)| Op::DeleteStrict { m, prio, cookie, parity }),
        1 => (arb_match(), arb_cookie_match(), proptest::option::of(0u8..2))
            .prop_map(|(m, cookie, parity)| Op::DeleteLoose { m, cookie, parity }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, d)| Op::Modify(i, d)),
        2 => (arb_key(), 0u64..1500).prop_map(|(k, dt)| Op::Hit(k, dt)),
        1 => (0u64..2500).prop_map(Op::Expire),
    ]
}

fn parity_pred(parity: Option<u8>) -> impl Fn(&u8) -> bool {
    move |d| parity.is_none_or(|p| d % 2 == p)
}

/// Both classifiers, stepped together.
struct Pair {
    fast: Classifier<u8>,
    naive: NaiveClassifier<u8>,
    masks: Vec<FlowKey>,
    now: u64,
}

impl Pair {
    fn ids(&self) -> Vec<RuleId> {
        self.naive.iter().map(|(id, _)| id).collect()
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Insert {
                m,
                prio,
                cookie,
                idle,
                hard,
                data,
                keep,
            } => {
                let mut rule = Rule::new(m.build(&self.masks), Priority(PRIORITIES[*prio]), *data)
                    .with_cookie(*cookie)
                    .with_idle_timeout(*idle)
                    .with_hard_timeout(*hard);
                // Insert must reset whatever counters the caller passes.
                rule.n_packets = u64::from(*data);
                rule.n_bytes = 1;
                let policy = if *keep {
                    CounterPolicy::Keep
                } else {
                    CounterPolicy::Reset
                };
                let a = self.fast.insert(rule.clone(), self.now, policy);
                let b = self.naive.insert(rule, self.now, policy);
                assert_eq!(a, b, "insert");
            }
            Op::RemoveId(i) => {
                let ids = self.ids();
                // Sometimes an id that does not exist (any more).
                let id = if ids.is_empty() || i % 5 == 0 {
                    RuleId((*i % 100) as u64)
                } else {
                    ids[i % ids.len()]
                };
                assert_eq!(self.fast.remove(id), self.naive.remove(id), "remove");
            }
            Op::DeleteStrict {
                m,
                prio,
                cookie,
                parity,
            } => {
                let m = m.build(&self.masks);
                let p = Priority(PRIORITIES[*prio]);
                let a = self
                    .fast
                    .select_strict(&m, p, *cookie, parity_pred(*parity));
                let b = self
                    .naive
                    .select_strict(&m, p, *cookie, parity_pred(*parity));
                assert_eq!(a, b, "select_strict");
                assert_eq!(
                    self.fast.find_strict(&m, p),
                    self.naive.find_strict(&m, p),
                    "find_strict"
                );
                self.remove_both(&a);
            }
            Op::DeleteLoose { m, cookie, parity } => {
                let m = m.build(&self.masks);
                let a = self.fast.select_loose(&m, *cookie, parity_pred(*parity));
                let b = self.naive.select_loose(&m, *cookie, parity_pred(*parity));
                assert_eq!(a, b, "select_loose");
                self.remove_both(&a);
            }
            Op::Modify(i, data) => {
                let ids = self.ids();
                if !ids.is_empty() {
                    let id = ids[i % ids.len()];
                    let set = |r: &mut Rule<u8>| {
                        r.data = *data;
                        r.cookie = u64::from(*data % 4);
                        r.idle_timeout = u16::from(*data % 3);
                        // Ignored: match and priority cannot change.
                        r.priority = Priority(7);
                        r.m = Match::CATCHALL;
                    };
                    assert_eq!(self.fast.modify(id, set), Some(()));
                    assert_eq!(self.naive.modify(id, set), Some(()));
                }
            }
            Op::Hit(key, dt) => {
                self.now += dt;
                let a = self.fast.lookup(key).map(|(id, r)| (id, r.data));
                let b = self.naive.lookup(key).map(|(id, r)| (id, r.data));
                assert_eq!(a, b, "lookup");
                if let Some((id, _)) = a {
                    assert!(self.fast.record_hit(id, 1, 64, self.now));
                    assert!(self.naive.record_hit(id, 1, 64, self.now));
                }
            }
            Op::Expire(dt) => {
                self.now += dt;
                assert_eq!(
                    self.fast.next_expiry_ms(),
                    self.naive.next_expiry_ms(),
                    "next_expiry_ms"
                );
                let a = self.fast.expire(self.now);
                let b = self.naive.expire(self.now);
                assert_eq!(a, b, "expire");
            }
        }
    }

    fn remove_both(&mut self, ids: &[RuleId]) {
        let a = self.fast.remove_many(ids.iter().copied());
        let b: Vec<(RuleId, Rule<u8>)> = ids
            .iter()
            .filter_map(|&id| self.naive.remove(id).map(|r| (id, r)))
            .collect();
        assert_eq!(a.len(), ids.len());
        assert_eq!(a, b, "remove_many");
    }

    fn check(&self, keys: &[FlowKey], filters: &[MatchSpec]) {
        self.fast.assert_invariants();
        assert_eq!(self.fast.len(), self.naive.len(), "len");
        assert_eq!(self.fast.is_empty(), self.naive.is_empty(), "is_empty");
        for k in keys {
            let a = self.fast.lookup(k).map(|(id, r)| (id, r.data));
            let b = self.naive.lookup(k).map(|(id, r)| (id, r.data));
            assert_eq!(a, b, "lookup {k:?}");
        }
        for f in filters {
            let m = f.build(&self.masks);
            assert_eq!(
                self.fast.select_loose(&m, CookieMatch::ANY, |_| true),
                self.naive.select_loose(&m, CookieMatch::ANY, |_| true),
                "select_loose {m:?}"
            );
            for p in PRIORITIES {
                assert_eq!(
                    self.fast
                        .select_strict(&m, Priority(p), CookieMatch::ANY, |_| true),
                    self.naive
                        .select_strict(&m, Priority(p), CookieMatch::ANY, |_| true),
                    "select_strict"
                );
            }
        }
        let a: Vec<(RuleId, &Rule<u8>)> = self.fast.iter().collect();
        let b: Vec<(RuleId, &Rule<u8>)> = self.naive.iter().collect();
        assert_eq!(a, b, "iter");
        for (id, r) in &b {
            assert_eq!(self.fast.get(*id), Some(*r), "get");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn classifier_matches_naive(
        extra_masks in prop::collection::vec(arb_mask(), 1..4),
        ops in prop::collection::vec(arb_op(), 1..60),
        keys in prop::collection::vec(arb_key(), 24),
        filters in prop::collection::vec(arb_match(), 3),
    ) {
        let mut masks = fixed_masks();
        masks.extend(extra_masks);
        let mut pair = Pair {
            fast: Classifier::new(),
            naive: NaiveClassifier::new(),
            masks,
            now: 0,
        };
        for op in &ops {
            pair.apply(op);
            pair.check(&keys, &filters);
        }
        // A clone is a snapshot: later edits of the original do not show.
        let snapshot = pair.fast.clone();
        let snapshot_naive = pair.naive.clone();
        for op in ops.iter().take(20) {
            pair.apply(op);
        }
        snapshot.assert_invariants();
        for k in &keys {
            prop_assert_eq!(
                snapshot.lookup(k).map(|(id, r)| (id, r.clone())),
                snapshot_naive.lookup(k).map(|(id, r)| (id, r.clone()))
            );
        }
    }
}
