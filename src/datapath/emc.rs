//! Exact-match cache: per-worker memory of recent classifier lookups.
//!
//! # What?
//! A table lookup costs one hash probe per distinct mask in the table (the
//! tuple-space classifier), so a table whose flows use many masks costs
//! hundreds of nanoseconds per packet. Most traffic is a few long-lived
//! conversations whose packets all carry the same [`FlowKey`]; the cache
//! remembers, per (pipeline generation, table, exact key), which rule
//! matched (or that none did), so the next packet of the conversation is
//! one hash of its key and one compare.
//!
//! # Design
//! Direct-mapped, [`EMC_ENTRIES`] entries, indexed by a multiplicative hash
//! of the key's 12 words and the table id; a colliding insert overwrites.
//! Tables with fewer than [`MIN_MASKS`] masks bypass the cache (measured:
//! the classifier's one or two probes beat hashing the whole key).
//! An entry stores the rule's [`RuleId`], not the rule, so it borrows
//! nothing: a hit is resolved through the pipeline's id index (one more
//! small hash probe), which also makes a cached id of a deleted rule
//! harmless. Entries carry the table's [`Pipeline::generation`], unique
//! across every table of every published version of every bridge;
//! publishing a change to a table therefore invalidates all its entries at
//! once, without a sweep, and leaves the other tables' entries valid.
//!
//! # Invariants
//! A hit returns exactly what [`Pipeline::lookup`] would return for the
//! same table generation and key (a published table is immutable).
//!
//! # Thread-safety
//! One cache per worker, owned and used by that thread only.
//!
//! # Limits
//! About 0.5 MiB per worker. Keys that change on every packet (a port scan)
//! miss every time and cost one extra hash and store over the classifier.

use flowtable::classifier::RuleId;
use flowtable::FlowKey;

use super::pipeline::{FlowEntry, Pipeline};

/// Entries per cache (a power of two).
pub const EMC_ENTRIES: usize = 4096;

#[derive(Clone, Copy)]
struct Entry {
    /// Pipeline generation; 0 = empty.
    generation: u64,
    table: u8,
    /// Matched rule; `None` caches a miss.
    rule: Option<RuleId>,
    key: FlowKey,
}

/// Hit/miss counts of one cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmcStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that went to the classifier.
    pub misses: u64,
}

/// The cache; see the module docs.
pub struct Emc {
    entries: Box<[Entry]>,
    stats: EmcStats,
}

impl std::fmt::Debug for Emc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emc").field("stats", &self.stats).finish()
    }
}

impl Default for Emc {
    fn default() -> Self {
        Emc::new()
    }
}

/// Tables with at most this many masks skip the cache: probing them
/// directly costs less than hashing and comparing the whole key.
pub const MIN_MASKS: usize = 3;

const SEED: [u64; FlowKey::WORDS + FlowKey::WORDS % 2] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
    0x4528_21e6_38d0_1377,
    0xbe54_66cf_34e9_0c6c,
    0xc0ac_29b7_c97c_50dd,
    0x3f84_d5b5_b547_0917,
    0x9216_d5d9_8979_fb1b,
    0xd131_0ba6_98df_b5ac,
    0x2ffd_72db_d01a_dfb7,
    0xb8e1_afed_6a26_7e96,
    0xba7c_9045_f12c_7f99,
    0x24a1_9947_b391_6cf7,
    0x0801_f2e2_858e_fc16,
    0x6369_20d8_7157_4e69,
];

/// Cache index of (`table`, `key`): independent 64×64→128-bit
/// multiplies of seeded word pairs (an odd last word paired with a seed
/// alone), summed and folded (no long dependency chain), then a final
/// multiply whose high bits pick the entry.
#[inline]
fn index(table: u8, key: &FlowKey) -> usize {
    let w = key.words();
    let mut acc = u64::from(table);
    for i in 0..FlowKey::WORDS / 2 {
        let x = u128::from(w[2 * i] ^ SEED[2 * i]) * u128::from(w[2 * i + 1] ^ SEED[2 * i + 1]);
        acc = acc.wrapping_add(x as u64 ^ (x >> 64) as u64);
    }
    if FlowKey::WORDS % 2 == 1 {
        let last = FlowKey::WORDS - 1;
        let x = u128::from(w[last] ^ SEED[last]) * u128::from(SEED[last + 1]);
        acc = acc.wrapping_add(x as u64 ^ (x >> 64) as u64);
    }
    (acc.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - EMC_ENTRIES.trailing_zeros())) as usize
}

impl Emc {
    /// An empty cache.
    pub fn new() -> Emc {
        let empty = Entry {
            generation: 0,
            table: 0,
            rule: None,
            key: FlowKey::default(),
        };
        Emc {
            entries: vec![empty; EMC_ENTRIES].into_boxed_slice(),
            stats: EmcStats::default(),
        }
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> EmcStats {
        self.stats
    }

    /// Looks up `key` in table `table` of `pipe`: from the cache when this
    /// generation of the pipeline answered it before, else from the
    /// classifier (and remembers the answer).
    #[inline]
    pub fn lookup<'p>(
        &mut self,
        pipe: &'p Pipeline,
        table: u8,
        key: &FlowKey,
    ) -> Option<&'p FlowEntry> {
        let cls = pipe.tables.get(table as usize)?;
        if cls.n_subtables() < MIN_MASKS {
            return cls.lookup(key).map(|(_, r)| r);
        }
        let i = index(table, key);
        // `index` yields values below EMC_ENTRIES by construction.
        let e = &mut self.entries[i];
        let generation = pipe.generation(table);
        if e.generation == generation && e.table == table && e.key.words() == key.words() {
            self.stats.hits += 1;
            return match e.rule {
                Some(id) => cls.get(id),
                None => None,
            };
        }
        self.stats.misses += 1;
        let hit = cls.lookup(key);
        *e = Entry {
            generation,
            table,
            rule: hit.map(|(id, _)| id),
            key: *key,
        };
        hit.map(|(_, r)| r)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::pipeline::{flow_of, new_entry};
    use super::*;
    use flowtable::classifier::CounterPolicy;
    use flowtable::extract::extract;
    use flowtable::syntax::parse_flow;
    use flowtable::PortNo;

    fn add(p: &mut Pipeline, text: &str) {
        let f = parse_flow(text, &|_| None).unwrap();
        p.table_mut(0)
            .insert(new_entry(f, 0, 1), 0, CounterPolicy::Reset);
    }

    fn udp(src: [u8; 4], dport: u16) -> FlowKey {
        let mut f = vec![0u8; 64];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&50u16.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&5001u16.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[38..40].copy_from_slice(&30u16.to_be_bytes());
        extract(&f, PortNo(1))
    }

    fn text(e: Option<&FlowEntry>) -> Option<String> {
        e.map(|e| flow_of(e).to_string())
    }

    #[test]
    fn hits_agree_with_the_classifier_and_generations_invalidate() {
        let mut p = Pipeline::new(1);
        add(&mut p, "priority=0,actions=NORMAL");
        add(&mut p, "priority=10,udp,nw_src=10.0.0.0/8,actions=drop");
        add(&mut p, "priority=20,udp,tp_dst=53,actions=output:2");
        let mut emc = Emc::new();
        let keys = [
            udp([10, 1, 2, 3], 80),
            udp([192, 0, 2, 1], 53),
            udp([192, 0, 2, 1], 80),
        ];
        for round in 0..3 {
            for k in &keys {
                assert_eq!(text(emc.lookup(&p, 0, k)), text(p.lookup(0, k)));
            }
            assert_eq!(emc.stats().hits, round * 3);
        }
        // Table 1 does not exist: never cached, never a hit.
        assert!(emc.lookup(&p, 1, &keys[0]).is_none());
        // A table with fewer masks goes straight to the classifier.
        let mut few = Pipeline::new(1);
        add(&mut few, "priority=0,actions=NORMAL");
        let before = emc.stats();
        assert_eq!(
            text(emc.lookup(&few, 0, &keys[0])),
            text(few.lookup(0, &keys[0]))
        );
        assert_eq!(emc.stats(), before);

        // A new generation (what publish does) changes the answer at once.
        let mut q = p.clone();
        q.renew(0);
        add(&mut q, "priority=30,udp,actions=drop");
        let before = emc.stats().hits;
        for k in &keys {
            let got = text(emc.lookup(&q, 0, k));
            assert_eq!(got, text(q.lookup(0, k)));
            assert!(got.unwrap().starts_with("priority=30"));
        }
        assert_eq!(emc.stats().hits, before, "old generation must not hit");
    }

    #[test]
    fn cached_misses_and_collisions_stay_correct() {
        let mut p = Pipeline::new(1);
        add(&mut p, "priority=10,udp,tp_dst=7,actions=drop");
        add(&mut p, "priority=11,udp,nw_src=0.0.0.9,actions=drop");
        add(&mut p, "priority=12,ip,actions=drop");
        assert!(p.tables[0].n_subtables() >= MIN_MASKS);
        let mut emc = Emc::new();
        // More keys than entries: collisions overwrite, answers stay right.
        for i in 0..(EMC_ENTRIES as u32 * 2) {
            let k = udp(i.to_be_bytes(), (i % 16) as u16);
            for _ in 0..2 {
                assert_eq!(text(emc.lookup(&p, 0, &k)), text(p.lookup(0, &k)));
            }
        }
        let s = emc.stats();
        assert!(s.hits >= EMC_ENTRIES as u64, "{s:?}");
    }
}
