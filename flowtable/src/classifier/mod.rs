//! Flow classifier: the rules of one OpenFlow table, and the lookup that
//! picks the rule a packet hits.
//!
//! # What?
//! A [`Classifier<T>`] holds [`Rule<T>`]s: a [`Match`], a [`Priority`], a
//! cookie, idle/hard timeouts, counters and caller data `T` (the actions).
//! [`Classifier::lookup`] returns the rule with the highest priority whose
//! match covers the packet's [`FlowKey`]. Among matching rules of equal
//! priority the one with the smallest [`RuleId`] wins: ids grow with every
//! insert, so the rule inserted earliest wins, deterministically (OpenFlow
//! leaves this case undefined; we only promise it is repeatable).
//!
//! Besides lookup the classifier offers what `ovs-ofctl` flow management
//! needs: OpenFlow ADD ([`Classifier::insert`], which replaces a rule with an
//! identical match and priority), strict and loose selection
//! ([`Classifier::select_strict`], [`Classifier::select_loose`]) with a
//! cookie mask and a caller predicate over `T` (for `out_port`),
//! [`Classifier::modify`], [`Classifier::remove_many`], a deterministic
//! [`Classifier::iter`] for `dump-flows`, counters folded in from the
//! datapath ([`Classifier::record_hits`]) and timeouts
//! ([`Classifier::expire`]). Time is always passed in as milliseconds.
//!
//! # Design
//! Tuple-space search, as in Open vSwitch's `lib/classifier.c`: rules are
//! grouped by mask into *subtables*; each subtable is a hash table keyed by
//! the masked packet key. A lookup probes each subtable once (mask the key,
//! hash, compare), so its cost is linear in the number of distinct masks and
//! independent of the number of rules.
//!
//! - Only the 64-bit words of [`FlowKey::words`] that a subtable's mask
//!   touches are masked, hashed and compared; their indices are computed
//!   once when the subtable is created. A mask on `dl_type` and `nw_src`
//!   costs two words, not twelve. The hash is FxHash over those words plus
//!   a folded multiply (FxHash alone leaves the low bits weak for fields in
//!   the high half of a word, such as `vlan_tci`). It is computed once per
//!   probe and handed to a `hashbrown::HashTable`, so nothing is hashed
//!   twice.
//! - Before probing the table, a lookup checks the subtable's one-bit
//!   Bloom filter (16–32 bits per key, a few percent false positives):
//!   misses, the common case in all but one subtable, rarely touch the
//!   table. The filter is rebuilt when it grows crowded or when removed
//!   keys outnumber live ones (amortized `O(1)` per insert or remove).
//! - A table node holds one masked key and every rule with that exact
//!   match: the highest-priority one inline, any others (same match at
//!   several priorities) in an overflow box, so the node is 48 bytes and
//!   aligned to one cache line. At most one rule per priority, since an ADD
//!   with the same match and priority replaces.
//! - Subtables live in a `Vec` sorted by the highest priority they hold.
//!   Lookup stops as soon as the best priority found exceeds the next
//!   subtable's maximum, so tables whose specific masks carry high
//!   priorities are cheap; with priorities spread evenly over all masks,
//!   every subtable is probed. Keeping the order costs an `O(masks)` move
//!   when a subtable's maximum changes, and a `BTreeMap` of priority counts
//!   per subtable.
//! - Rules are stored once, in a slab (`Vec` of slots with a free list) of
//!   `Arc<Rule<T>>`; nodes hold `(priority, RuleId, slot)`, so a lookup
//!   touches the slab only for the winner. A `RuleId → slot` map serves
//!   [`Classifier::get`] and friends.
//!
//! Measured on the 2-core development VM (see `benches/classifier.rs`):
//! a lookup costs about 4 ns per subtable it probes plus about 30 ns for a
//! hit; 100k inserts take about 60 ms.
//!
//! Cloning ([`Clone`]) copies the subtables' hash tables and the slab but
//! not the rules: each rule is an `Arc` whose count is bumped, and `T` is
//! never cloned (and need not be `Clone` for the classifier to be). A clone
//! of a 100k-rule table costs about 10 ms. Mutating a rule that is still
//! shared with another clone (e.g. [`Classifier::record_hit`] right after
//! publishing a copy) clones that one rule, `T` included (copy-on-write),
//! which is why the mutating methods need `T: Clone`.
//!
//! # Invariants
//! - `RuleId`s are unique over the classifier's lifetime and strictly
//!   increasing in insertion order (a replacing ADD gets a fresh id); clones
//!   continue from the same counter.
//! - No two rules have an identical match and priority.
//! - [`Classifier::lookup`] returns the matching rule with the greatest
//!   `(priority, Reverse(id))`; [`NaiveClassifier`] implements exactly the
//!   same rule by a linear scan, and a property test holds them equal.
//! - [`Classifier::iter`] and every selection return rules sorted by
//!   priority descending, then `RuleId` ascending.
//! - [`Classifier::version`] changes whenever the outcome of a lookup may
//!   change (insert, remove, modify, expire), not when counters change:
//!   caches of lookup results may be keyed on it.
//!
//! # Thread-safety
//! `Classifier<T>` is `Send + Sync` when `T` is. Lookups take `&self` and
//! may run concurrently from any number of threads; every mutation takes
//! `&mut self`. The intended use is copy-on-write: the control plane clones
//! the table, edits the clone and publishes it; datapath workers keep
//! per-worker counters keyed by [`RuleId`] and the control plane folds them
//! back with [`Classifier::record_hits`].
//!
//! # Limits
//! - Lookup work is bounded by the number of distinct masks (one filter
//!   check, rarely a hash probe, each) — there is no staged lookup or
//!   prefix tree yet, so a table with hundreds of masks gets proportionally
//!   slower lookups. An exact-match cache in front (the datapath's) hides
//!   this for established flows.
//! - Loose selection scans every subtable whose mask the filter does not
//!   wildcard beyond ([`Classifier::select_loose`] is `O(rules)` at worst);
//!   [`Classifier::iter`] sorts, `O(n log n)`.
//! - [`Classifier::expire`] and [`Classifier::next_expiry_ms`] are linear in
//!   the number of rules that have a timeout.
//! - The slab uses `u32` slots: at most `u32::MAX` rules at once.

mod naive;

#[doc(hidden)]
pub use naive::NaiveClassifier;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher;
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::flowmatch::Match;
use crate::key::FlowKey;
use crate::types::Priority;

/// Stable identity of a rule, assigned at insert, strictly increasing.
///
/// The datapath keys its per-worker counters by `RuleId`; smaller ids win
/// priority ties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleId(pub u64);

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A rule an insert replaced: its id and the rule as stored.
pub type Replaced<T> = (RuleId, Arc<Rule<T>>);

/// One flow rule of a table.
///
/// ```
/// use flowtable::classifier::{Classifier, CounterPolicy, Rule};
/// use flowtable::{FlowKey, Match, Priority};
///
/// let mut cls = Classifier::new();
/// let m = Match::new(
///     FlowKey { in_port: 1, ..FlowKey::ZERO },
///     FlowKey { in_port: u32::MAX, ..FlowKey::ZERO },
/// );
/// let rule = Rule::new(m, Priority(100), "output:2").with_idle_timeout(10);
/// let (id, replaced) = cls.insert(rule, 0, CounterPolicy::Reset);
/// assert!(replaced.is_none());
/// let pkt = FlowKey { in_port: 1, ..FlowKey::ZERO };
/// assert_eq!(cls.lookup(&pkt).map(|(i, r)| (i, r.data)), Some((id, "output:2")));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule<T> {
    /// Which packets the rule matches.
    pub m: Match,
    /// Higher wins.
    pub priority: Priority,
    /// Opaque controller cookie, used to select rules with a cookie mask.
    pub cookie: u64,
    /// Seconds without a hit before the rule expires; 0 = never.
    pub idle_timeout: u16,
    /// Seconds after insertion before the rule expires; 0 = never.
    pub hard_timeout: u16,
    /// When the rule was inserted (set by [`Classifier::insert`]).
    pub created_ms: u64,
    /// Last hit, or insertion if never hit (drives the idle timeout).
    pub last_used_ms: u64,
    /// Packets that hit the rule.
    pub n_packets: u64,
    /// Bytes of the packets that hit the rule.
    pub n_bytes: u64,
    /// Caller data, typically the action list.
    pub data: T,
}

impl<T> Rule<T> {
    /// A rule with cookie 0, no timeouts and zero counters.
    pub fn new(m: Match, priority: Priority, data: T) -> Rule<T> {
        Rule {
            m,
            priority,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            created_ms: 0,
            last_used_ms: 0,
            n_packets: 0,
            n_bytes: 0,
            data,
        }
    }

    /// Sets the cookie.
    pub fn with_cookie(mut self, cookie: u64) -> Rule<T> {
        self.cookie = cookie;
        self
    }

    /// Sets the idle timeout, in seconds (0 = never).
    pub fn with_idle_timeout(mut self, secs: u16) -> Rule<T> {
        self.idle_timeout = secs;
        self
    }

    /// Sets the hard timeout, in seconds (0 = never).
    pub fn with_hard_timeout(mut self, secs: u16) -> Rule<T> {
        self.hard_timeout = secs;
        self
    }

    /// True if the rule has an idle or a hard timeout.
    pub fn has_timeout(&self) -> bool {
        self.idle_timeout != 0 || self.hard_timeout != 0
    }

    /// The earliest time at which the rule expires if it is not hit
    /// before; `None` for rules without timeouts.
    pub fn expiry_ms(&self) -> Option<u64> {
        let hard = (self.hard_timeout != 0).then(|| {
            self.created_ms
                .saturating_add(u64::from(self.hard_timeout) * 1000)
        });
        let idle = (self.idle_timeout != 0).then(|| {
            self.last_used_ms
                .saturating_add(u64::from(self.idle_timeout) * 1000)
        });
        match (hard, idle) {
            (Some(h), Some(i)) => Some(h.min(i)),
            (h, i) => h.or(i),
        }
    }

    /// Whether the rule has expired at `now_ms`, and why. The hard timeout
    /// is checked first (as OVS does).
    pub fn expired(&self, now_ms: u64) -> Option<ExpireReason> {
        if self.hard_timeout != 0
            && now_ms.saturating_sub(self.created_ms) >= u64::from(self.hard_timeout) * 1000
        {
            Some(ExpireReason::Hard)
        } else if self.idle_timeout != 0
            && now_ms.saturating_sub(self.last_used_ms) >= u64::from(self.idle_timeout) * 1000
        {
            Some(ExpireReason::Idle)
        } else {
            None
        }
    }
}

/// Why [`Classifier::expire`] removed a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpireReason {
    /// No hit for `idle_timeout` seconds.
    Idle,
    /// `hard_timeout` seconds since insertion.
    Hard,
}

/// What an insert that replaces a rule (same match and priority) does with
/// the old rule's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CounterPolicy {
    /// Start from zero (OpenFlow's `OFPFF_RESET_COUNTS`).
    #[default]
    Reset,
    /// Carry `n_packets` and `n_bytes` over from the replaced rule (OpenFlow
    /// 1.3's default for ADD). Times restart at `now_ms` either way.
    Keep,
}

/// A cookie filter: a rule is selected if
/// `rule.cookie & mask == value & mask`. [`CookieMatch::ANY`] selects all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CookieMatch {
    /// Cookie bits to compare.
    pub value: u64,
    /// Which bits of `value` matter.
    pub mask: u64,
}

impl CookieMatch {
    /// Selects every cookie.
    pub const ANY: CookieMatch = CookieMatch { value: 0, mask: 0 };

    /// Selects exactly `cookie`.
    pub fn exact(cookie: u64) -> CookieMatch {
        CookieMatch {
            value: cookie,
            mask: u64::MAX,
        }
    }

    /// True if `cookie` agrees with `value` on every bit of `mask`.
    #[inline]
    pub fn matches(&self, cookie: u64) -> bool {
        (cookie & self.mask) == (self.value & self.mask)
    }
}

/// Compact key of a subtable: the masked words its mask touches. Three
/// words inline covers most masks (e.g. `dl_type` + `nw_src` + `tp_dst`).
type CompactKey = SmallVec<[u64; 3]>;

/// One rule in a bucket. Buckets are sorted by `priority` descending, with
/// at most one entry per priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    /// The rule's priority.
    priority: u16,
    /// Index into [`Classifier::slots`].
    slot: u32,
    /// The rule's id.
    id: RuleId,
}

/// A hash table node: one masked key and the rules with exactly that
/// match. 48 bytes, aligned to a 64-byte cache line, so a probe that finds
/// it reads one line.
#[derive(Clone, Debug)]
#[repr(align(64))]
struct Node {
    /// Compact key words 0..3, zero-padded.
    head: [u64; 3],
    /// The highest-priority rule here: the bucket's winner.
    top: Entry,
    /// Key words beyond three and further rules, if any (rare).
    over: Option<Box<Overflow>>,
}

/// The rare parts of a [`Node`].
#[derive(Clone, Debug, Default)]
struct Overflow {
    /// Compact key words 3.., for masks touching more than three words.
    more: Vec<u64>,
    /// Rules other than `top`, by priority descending (same match at
    /// several priorities).
    rest: Vec<Entry>,
}

impl Node {
    fn new(key: &[u64], top: Entry) -> Node {
        let mut head = [0u64; 3];
        for (h, k) in head.iter_mut().zip(key) {
            *h = *k;
        }
        let more = key.get(3..).unwrap_or_default();
        Node {
            head,
            top,
            over: (!more.is_empty()).then(|| {
                Box::new(Overflow {
                    more: more.to_vec(),
                    rest: Vec::new(),
                })
            }),
        }
    }

    /// Key words beyond the third.
    fn more(&self) -> &[u64] {
        self.over.as_ref().map_or(&[], |o| &o.more)
    }

    /// Rules other than `top`.
    fn rest(&self) -> &[Entry] {
        self.over.as_ref().map_or(&[], |o| &o.rest)
    }

    /// The compact key, `n` words long.
    fn key(&self, n: usize) -> impl Iterator<Item = u64> + '_ {
        self.head[..n.min(3)].iter().chain(self.more()).copied()
    }

    /// True if the node's key is `words` (a compact key of this subtable).
    #[inline(always)]
    fn has_key(&self, mut words: impl Iterator<Item = u64>) -> bool {
        let mut head = [0u64; 3];
        for h in head.iter_mut() {
            *h = words.next().unwrap_or(0);
        }
        head == self.head && (self.over.is_none() || self.more().iter().copied().eq(words))
    }

    /// Every rule here, by priority descending.
    fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        std::iter::once(&self.top).chain(self.rest())
    }

    /// The rule with priority `priority`, for editing.
    fn with_priority(&mut self, priority: u16) -> Option<&mut Entry> {
        if self.top.priority == priority {
            return Some(&mut self.top);
        }
        let o = self.over.as_mut()?;
        o.rest.iter_mut().find(|e| e.priority == priority)
    }

    /// Adds `e` (whose priority no entry here has).
    fn insert(&mut self, e: Entry) {
        let o = self.over.get_or_insert_with(Default::default);
        if e.priority > self.top.priority {
            o.rest.insert(0, std::mem::replace(&mut self.top, e));
        } else {
            let pos = o.rest.partition_point(|x| x.priority > e.priority);
            o.rest.insert(pos, e);
        }
    }

    /// Removes rule `id`; returns false if that emptied the node (which the
    /// caller must then drop: `top` is stale).
    fn remove(&mut self, id: RuleId) -> bool {
        let Some(o) = self.over.as_mut() else {
            return self.top.id != id;
        };
        if self.top.id == id {
            if o.rest.is_empty() {
                return false;
            }
            self.top = o.rest.remove(0);
        } else {
            o.rest.retain(|e| e.id != id);
        }
        if o.rest.is_empty() && o.more.is_empty() {
            self.over = None;
        }
        true
    }
}

/// Hash of a compact key given as words: FxHash over the words, then a
/// folded multiply so that every output bit depends on every input bit
/// (the filter and the table use bits FxHash alone leaves weak).
#[inline(always)]
fn key_hash(words: impl Iterator<Item = u64>) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    for w in words {
        h.write_u64(w);
    }
    fold_hash(h.finish())
}

/// Folded multiply: mixes every bit of `h` into every output bit.
#[inline(always)]
fn fold_hash(h: u64) -> u64 {
    let p = u128::from(h) * 0x9e37_79b9_7f4a_7c15_u128;
    (p as u64) ^ ((p >> 64) as u64)
}

/// A key's words padded to 16, so that indexing by a word index `& 15`
/// needs no bounds check.
type PaddedKey = [u64; 16];
const _: () = assert!(FlowKey::WORDS <= 16);

/// `key`'s words, padded with zeros.
#[inline(always)]
fn padded(key: &FlowKey) -> PaddedKey {
    let mut kw = [0u64; 16];
    kw[..FlowKey::WORDS].copy_from_slice(key.words());
    kw
}

/// All rules that share one mask. `repr(C)` keeps the fields a lookup
/// reads (priority, word indices, the first mask words, the filter and the
/// table) in the first two cache lines.
#[derive(Clone, Debug)]
#[repr(C)]
struct Subtable {
    /// Highest priority of any rule here (hot: read first by lookup).
    max_priority: u16,
    /// Number of words the mask touches.
    n_words: u8,
    /// Indices (into `FlowKey::words()`) of the touched words, first `n_words`.
    word_idx: [u8; FlowKey::WORDS],
    /// Which compact keys may be present: checked before the hash table.
    filter: KeyFilter,
    /// The mask's touched words, in the same order.
    mask_words: [u64; FlowKey::WORDS],
    /// The buckets, hashed by [`key_hash`] of their compact key.
    table: HashTable<Node>,
    /// The full mask.
    mask: FlowKey,
    /// Priority → number of rules here with it (to maintain `max_priority`).
    prio_counts: BTreeMap<u16, u32>,
}

impl Subtable {
    fn new(mask: FlowKey) -> Subtable {
        let mut word_idx = [0u8; FlowKey::WORDS];
        let mut mask_words = [0u64; FlowKey::WORDS];
        let mut n = 0usize;
        for (i, &w) in mask.words().iter().enumerate() {
            if w != 0 {
                // FlowKey::WORDS is 15 (≤ 16, the padded key), so `i` fits in a u8.
                word_idx[n] = i as u8;
                mask_words[n] = w;
                n += 1;
            }
        }
        Subtable {
            max_priority: 0,
            n_words: n as u8,
            word_idx,
            mask_words,
            filter: KeyFilter::with_capacity(0),
            table: HashTable::new(),
            mask,
            prio_counts: BTreeMap::new(),
        }
    }

    /// The masked touched words of `key`, in order.
    #[inline(always)]
    fn masked<'a>(&'a self, key: &'a FlowKey) -> impl Iterator<Item = u64> + 'a {
        let w = key.words();
        let n = usize::from(self.n_words);
        self.word_idx[..n]
            .iter()
            .zip(&self.mask_words[..n])
            .map(move |(&i, &m)| w[usize::from(i)] & m)
    }

    /// The compact key of `key`.
    fn compact(&self, key: &FlowKey) -> CompactKey {
        self.masked(key).collect()
    }

    /// [`key_hash`] of the compact key of the padded key words `kw`,
    /// written out for the lookup path: the padding to 16 words lets the
    /// word indices go unchecked (`& 15`).
    #[inline(always)]
    fn hash_of(&self, kw: &PaddedKey) -> u64 {
        let n = usize::from(self.n_words);
        let mut h = rustc_hash::FxHasher::default();
        for (j, (&i, &m)) in self.word_idx.iter().zip(&self.mask_words).enumerate() {
            if j == n {
                break;
            }
            h.write_u64(kw[usize::from(i) & 15] & m);
        }
        fold_hash(h.finish())
    }

    /// The node whose rules match the padded key `kw`, if any.
    #[inline(always)]
    fn find(&self, kw: &PaddedKey) -> Option<&Node> {
        let hash = self.hash_of(kw);
        if !self.filter.may_contain(hash) {
            return None;
        }
        let n = usize::from(self.n_words);
        let masked = self.word_idx[..n]
            .iter()
            .zip(&self.mask_words[..n])
            .map(|(&i, &m)| kw[usize::from(i) & 15] & m);
        self.table.find(hash, |node| node.has_key(masked.clone()))
    }

    /// The node of `key` (a rule's masked key), for editing.
    fn find_mut(&mut self, key: &FlowKey) -> Option<&mut Node> {
        let ck = self.compact(key);
        let hash = key_hash(ck.iter().copied());
        self.table
            .find_mut(hash, |node| node.has_key(ck.iter().copied()))
    }

    /// Adds `e` to the node of `key` (a rule's masked key), creating it.
    fn insert_entry(&mut self, key: &FlowKey, e: Entry) {
        let ck = self.compact(key);
        let hash = key_hash(ck.iter().copied());
        *self.prio_counts.entry(e.priority).or_default() += 1;
        if let Some(node) = self
            .table
            .find_mut(hash, |node| node.has_key(ck.iter().copied()))
        {
            node.insert(e);
            return;
        }
        self.filter.insert(hash);
        let n = usize::from(self.n_words);
        if self.filter.is_crowded(self.table.len() + 1) {
            let keys = self.table.iter().map(|node| key_hash(node.key(n)));
            self.filter = KeyFilter::build(keys.chain([hash]));
        }
        self.table
            .insert_unique(hash, Node::new(&ck, e), |node| key_hash(node.key(n)));
    }

    /// Removes rule `id` (priority `priority`) from the node of `key`.
    fn remove_entry(&mut self, key: &FlowKey, id: RuleId, priority: u16) {
        let ck = self.compact(key);
        let hash = key_hash(ck.iter().copied());
        let found = self
            .table
            .find_entry(hash, |node| node.has_key(ck.iter().copied()));
        if let Ok(mut occupied) = found {
            if !occupied.get_mut().remove(id) {
                occupied.remove();
                self.filter.stale += 1;
                if self.filter.is_stale(self.table.len()) {
                    let n = usize::from(self.n_words);
                    let keys = self.table.iter().map(|node| key_hash(node.key(n)));
                    self.filter = KeyFilter::build(keys);
                }
            }
        }
        if let Some(c) = self.prio_counts.get_mut(&priority) {
            *c -= 1;
            if *c == 0 {
                self.prio_counts.remove(&priority);
            }
        }
    }

    /// All rules of the subtable, bucket by bucket.
    fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.table.iter().flat_map(Node::iter)
    }

    #[cfg(test)]
    fn n_rules(&self) -> usize {
        self.prio_counts.values().map(|&c| c as usize).sum()
    }
}

/// A one-hash Bloom filter over a subtable's bucket keys: each key sets one
/// bit. It answers "certainly absent" for most keys that
/// miss the subtable from a small bit array that stays in cache, so a miss
/// rarely touches the (much larger) hash table.
///
/// Sized at 16 to 32 bits per key (3 to 6% false positives; a second bit
/// per key halves that but costs more instructions than the extra probes
/// it saves); rebuilt when
/// it gets more crowded than that, and when removed keys (whose bits cannot
/// be cleared) outnumber live ones. Both rebuilds are amortized `O(1)` per
/// insert or remove.
#[derive(Clone, Debug)]
struct KeyFilter {
    /// `words.len() - 1`: the word index mask.
    index_mask: usize,
    /// The bits; length a power of two.
    words: Vec<u64>,
    /// Keys removed since the last rebuild (their bits are still set).
    stale: usize,
}

impl KeyFilter {
    /// An empty filter sized for `n` keys at 32 bits each.
    fn with_capacity(n: usize) -> KeyFilter {
        let len = (n / 2).max(1).next_power_of_two();
        KeyFilter {
            index_mask: len - 1,
            words: vec![0; len],
            stale: 0,
        }
    }

    /// A filter holding exactly the keys with hashes `hashes`.
    fn build(hashes: impl Iterator<Item = u64>) -> KeyFilter {
        let hashes: Vec<u64> = hashes.collect();
        let mut f = KeyFilter::with_capacity(hashes.len());
        for h in hashes {
            f.insert(h);
        }
        f
    }

    /// The word index and the bit of hash `h`.
    #[inline(always)]
    fn slot(&self, h: u64) -> (usize, u32) {
        ((h >> 12) as usize & self.index_mask, (h & 63) as u32)
    }

    fn insert(&mut self, h: u64) {
        let (w, bit) = self.slot(h);
        self.words[w] |= 1 << bit;
    }

    #[inline(always)]
    fn may_contain(&self, h: u64) -> bool {
        let (w, bit) = self.slot(h);
        match self.words.get(w) {
            Some(x) => (x >> bit) & 1 != 0,
            None => true,
        }
    }

    /// True when `n_keys` live keys (plus stale ones) leave fewer than 16
    /// bits per key.
    fn is_crowded(&self, n_keys: usize) -> bool {
        (n_keys + self.stale) * 16 > self.words.len() * 64
    }

    /// True when stale keys outnumber live ones (and are more than a few).
    fn is_stale(&self, n_keys: usize) -> bool {
        self.stale > n_keys.max(32)
    }
}

/// A rule in the slab.
#[derive(Debug)]
struct Slot<T> {
    /// Its id.
    id: RuleId,
    /// The rule, shared with clones of the classifier until mutated.
    rule: Arc<Rule<T>>,
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Slot {
            id: self.id,
            rule: Arc::clone(&self.rule),
        }
    }
}

/// Tuple-space search classifier for one OpenFlow table. See the
/// [module docs](self) for semantics and costs.
///
/// ```
/// use flowtable::classifier::{Classifier, CookieMatch, CounterPolicy, Rule};
/// use flowtable::{FlowKey, Match, Priority};
///
/// let mut cls: Classifier<&str> = Classifier::new();
/// let ip = Match::new(
///     FlowKey { dl_type: 0x0800, ..FlowKey::ZERO },
///     FlowKey { dl_type: 0xffff, ..FlowKey::ZERO },
/// );
/// let (low, _) = cls.insert(Rule::new(Match::CATCHALL, Priority(0), "NORMAL"), 0, CounterPolicy::Reset);
/// let (high, _) = cls.insert(Rule::new(ip, Priority(10), "drop"), 0, CounterPolicy::Reset);
///
/// let pkt = FlowKey { dl_type: 0x0800, ..FlowKey::ZERO };
/// assert_eq!(cls.lookup(&pkt).map(|(id, _)| id), Some(high));
/// let arp = FlowKey { dl_type: 0x0806, ..FlowKey::ZERO };
/// assert_eq!(cls.lookup(&arp).map(|(id, _)| id), Some(low));
///
/// // del-flows ip: loose selection covers the ip rule only.
/// let ids = cls.select_loose(&ip, CookieMatch::ANY, |_| true);
/// assert_eq!(ids, vec![high]);
/// ```
#[derive(Debug)]
pub struct Classifier<T> {
    /// Sorted by `max_priority` descending.
    subtables: Vec<Subtable>,
    /// Mask → index into `subtables`.
    by_mask: FxHashMap<FlowKey, usize>,
    /// Rule storage; `None` slots are on `free`.
    slots: Vec<Option<Slot<T>>>,
    /// Free slot indices.
    free: Vec<u32>,
    /// Id → slot index.
    ids: FxHashMap<RuleId, u32>,
    /// Ids of rules that have a timeout.
    timed: BTreeSet<RuleId>,
    /// Next id to assign.
    next_id: u64,
    /// Bumped on every change that can alter a lookup.
    version: u64,
}

impl<T> Clone for Classifier<T> {
    fn clone(&self) -> Self {
        Classifier {
            subtables: self.subtables.clone(),
            by_mask: self.by_mask.clone(),
            slots: self.slots.clone(),
            free: self.free.clone(),
            ids: self.ids.clone(),
            timed: self.timed.clone(),
            next_id: self.next_id,
            version: self.version,
        }
    }
}

impl<T> Default for Classifier<T> {
    fn default() -> Self {
        Classifier {
            subtables: Vec::new(),
            by_mask: FxHashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            ids: FxHashMap::default(),
            timed: BTreeSet::new(),
            next_id: 1,
            version: 0,
        }
    }
}

/// True if every bit `inner` compares is compared by `outer` too.
#[inline]
fn mask_subset(inner: &FlowKey, outer: &FlowKey) -> bool {
    inner
        .words()
        .iter()
        .zip(outer.words())
        .all(|(i, o)| i & !o == 0)
}

// Read-only operations: no bound on `T`.
impl<T> Classifier<T> {
    /// An empty classifier. The first rule gets `RuleId(1)`.
    pub fn new() -> Classifier<T> {
        Classifier::default()
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True if there are no rules.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of subtables (distinct masks).
    pub fn n_subtables(&self) -> usize {
        self.subtables.len()
    }

    /// A number that changes whenever a lookup result may change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The highest-priority rule matching `key` (ties: smallest id).
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(RuleId, &Rule<T>)> {
        // The best entry so far, as scalars so they stay in registers:
        // `rank` is priority + 1, 0 while nothing matched.
        let mut best_rank = 0u32;
        let mut best_id = RuleId(u64::MAX);
        let mut best_slot = 0u32;
        let kw = padded(key);
        for st in &self.subtables {
            if u32::from(st.max_priority) + 1 < best_rank {
                break;
            }
            if let Some(node) = st.find(&kw) {
                let e = &node.top;
                let rank = u32::from(e.priority) + 1;
                if rank > best_rank || (rank == best_rank && e.id < best_id) {
                    (best_rank, best_id, best_slot) = (rank, e.id, e.slot);
                }
            }
        }
        if best_rank == 0 {
            return None;
        }
        let slot = self.slots.get(best_slot as usize)?.as_ref()?;
        Some((best_id, &*slot.rule))
    }

    /// The rule with id `id`.
    pub fn get(&self, id: RuleId) -> Option<&Rule<T>> {
        let slot = *self.ids.get(&id)?;
        self.slots.get(slot as usize)?.as_ref().map(|s| &*s.rule)
    }

    /// True if a rule with id `id` exists.
    pub fn contains(&self, id: RuleId) -> bool {
        self.ids.contains_key(&id)
    }

    /// The rule with exactly match `m` and `priority` (OpenFlow "strict").
    pub fn find_strict(&self, m: &Match, priority: Priority) -> Option<RuleId> {
        let st = &self.subtables[*self.by_mask.get(m.mask())?];
        st.find(&padded(m.key()))?
            .iter()
            .find(|e| e.priority == priority.0)
            .map(|e| e.id)
    }

    /// Rules selected the way `ovs-ofctl del-flows/mod-flows/dump-flows`
    /// select without `--strict`: the rule's match is covered by `filter`
    /// (see [`Match::is_covered_by`]), its cookie agrees with `cookie`, and
    /// `pred(&rule.data)` holds (use it for `out_port`; `|_| true` for none).
    /// Priority is ignored. Sorted as [`Classifier::iter`].
    pub fn select_loose(
        &self,
        filter: &Match,
        cookie: CookieMatch,
        mut pred: impl FnMut(&T) -> bool,
    ) -> Vec<RuleId> {
        let mut out: Vec<(Reverse<u16>, RuleId)> = Vec::new();
        let mut consider = |e: &Entry, out: &mut Vec<(Reverse<u16>, RuleId)>| {
            if let Some(Some(s)) = self.slots.get(e.slot as usize) {
                let r = &s.rule;
                if r.m.is_covered_by(filter) && cookie.matches(r.cookie) && pred(&r.data) {
                    out.push((Reverse(e.priority), e.id));
                }
            }
        };
        for st in &self.subtables {
            // A rule is covered only if it compares every bit the filter does.
            if !mask_subset(filter.mask(), &st.mask) {
                continue;
            }
            if st.mask == *filter.mask() {
                for e in st
                    .find(&padded(filter.key()))
                    .into_iter()
                    .flat_map(Node::iter)
                {
                    consider(e, &mut out);
                }
            } else {
                for e in st.entries() {
                    consider(e, &mut out);
                }
            }
        }
        out.sort_unstable();
        out.into_iter().map(|(_, id)| id).collect()
    }

    /// Rules selected with `--strict`: identical match and priority, cookie
    /// agreeing with `cookie`, and `pred(&rule.data)`. At most one rule.
    pub fn select_strict(
        &self,
        m: &Match,
        priority: Priority,
        cookie: CookieMatch,
        mut pred: impl FnMut(&T) -> bool,
    ) -> Vec<RuleId> {
        self.find_strict(m, priority)
            .filter(|&id| {
                self.get(id)
                    .is_some_and(|r| cookie.matches(r.cookie) && pred(&r.data))
            })
            .into_iter()
            .collect()
    }

    /// Every rule, by priority descending, then id ascending (the order of
    /// `dump-flows`). Sorts: `O(n log n)`.
    pub fn iter(&self) -> impl Iterator<Item = (RuleId, &Rule<T>)> + '_ {
        let mut all: Vec<(Reverse<Priority>, RuleId, &Rule<T>)> = self
            .slots
            .iter()
            .flatten()
            .map(|s| (Reverse(s.rule.priority), s.id, &*s.rule))
            .collect();
        all.sort_unstable_by_key(|&(p, id, _)| (p, id));
        all.into_iter().map(|(_, id, r)| (id, r))
    }

    /// The earliest time at which [`Classifier::expire`] would remove a rule
    /// (if nothing is hit before), or `None` if no rule has a timeout.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.timed
            .iter()
            .filter_map(|id| self.get(*id)?.expiry_ms())
            .min()
    }

    /// Checks the internal invariants, panicking with a description on the
    /// first violation. Test aid; `O(n log n)`.
    #[doc(hidden)]
    pub fn assert_invariants(&self) {
        let mut seen = 0usize;
        let mut seen_timed = 0usize;
        for (i, st) in self.subtables.iter().enumerate() {
            assert_eq!(self.by_mask.get(&st.mask), Some(&i), "by_mask index");
            assert!(!st.prio_counts.is_empty(), "empty subtable kept");
            assert_eq!(
                st.prio_counts.keys().next_back().copied(),
                Some(st.max_priority),
                "max_priority"
            );
            if i > 0 {
                assert!(
                    self.subtables[i - 1].max_priority >= st.max_priority,
                    "subtable order"
                );
            }
            let mut counts: BTreeMap<u16, u32> = BTreeMap::new();
            let n = usize::from(st.n_words);
            for node in st.table.iter() {
                let bucket: Vec<Entry> = node.iter().copied().collect();
                assert!(
                    node.over
                        .as_ref()
                        .is_none_or(|o| !o.rest.is_empty() || n > 3),
                    "empty overflow kept"
                );
                for w in bucket.windows(2) {
                    assert!(w[0].priority > w[1].priority, "bucket order");
                }
                assert_eq!(node.head[n.min(3)..], [0, 0, 0][n.min(3)..], "head padding");
                assert_eq!(node.more().len(), n.saturating_sub(3), "more words");
                for e in &bucket {
                    *counts.entry(e.priority).or_default() += 1;
                    let s = self.slots[e.slot as usize].as_ref();
                    let s = s.unwrap_or_else(|| panic!("entry points at a free slot"));
                    assert_eq!(s.id, e.id, "slot id");
                    assert_eq!(self.ids.get(&e.id), Some(&e.slot), "ids map");
                    assert_eq!(s.rule.priority.0, e.priority, "entry priority");
                    assert_eq!(s.rule.m.mask(), &st.mask, "rule in wrong subtable");
                    assert!(node.has_key(st.masked(s.rule.m.key())), "bucket key");
                    let h = key_hash(node.key(n));
                    assert!(st.filter.may_contain(h), "filter lost a key");
                    assert!(e.id.0 < self.next_id, "id from the future");
                    assert_eq!(
                        self.timed.contains(&e.id),
                        s.rule.has_timeout(),
                        "timed set"
                    );
                    seen_timed += usize::from(s.rule.has_timeout());
                    seen += 1;
                }
            }
            assert_eq!(counts, st.prio_counts, "prio_counts");
        }
        assert_eq!(self.by_mask.len(), self.subtables.len(), "by_mask size");
        assert_eq!(seen, self.ids.len(), "rule count");
        assert_eq!(seen_timed, self.timed.len(), "timed count");
        assert_eq!(
            self.slots.iter().flatten().count() + self.free.len(),
            self.slots.len(),
            "slab accounting"
        );
    }
}

// Mutations that share rules as `Arc`s: no bound on `T`.
impl<T> Classifier<T> {
    /// [`Classifier::insert`] of a rule that may be shared with another
    /// classifier (the two copies of a double-buffered table hold the same
    /// `Arc`s): times and counters are left as they are. Replaces and
    /// returns a rule with the identical match and priority.
    pub fn insert_shared(&mut self, rule: Arc<Rule<T>>) -> (RuleId, Option<Replaced<T>>) {
        let id = RuleId(self.next_id);
        self.next_id += 1;
        self.version += 1;
        let timed = rule.has_timeout();
        let priority = rule.priority.0;

        if let Some(&si) = self.by_mask.get(rule.m.mask()) {
            let st = &mut self.subtables[si];
            let key = *rule.m.key();
            if let Some(e) = st
                .find_mut(&key)
                .and_then(|node| node.with_priority(priority))
            {
                // Replace in place: same bucket position, same slot.
                let old_id = e.id;
                e.id = id;
                let slot_idx = e.slot;
                let slot = self.slots[slot_idx as usize].replace(Slot { id, rule });
                self.ids.remove(&old_id);
                self.ids.insert(id, slot_idx);
                self.timed.remove(&old_id);
                if timed {
                    self.timed.insert(id);
                }
                return (id, slot.map(|s| (old_id, s.rule)));
            }
        }

        // A new rule.
        let mask = *rule.m.mask();
        let key = *rule.m.key();
        let slot = Slot { id, rule };
        let slot_idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                // Limits: at most u32::MAX slots.
                (self.slots.len() - 1) as u32
            }
        };
        self.ids.insert(id, slot_idx);
        if timed {
            self.timed.insert(id);
        }

        let si = match self.by_mask.get(&mask) {
            Some(&si) => si,
            None => {
                let mut st = Subtable::new(mask);
                st.max_priority = priority;
                // Append after every subtable with max >= ours: stays sorted.
                let pos = self
                    .subtables
                    .partition_point(|s| s.max_priority >= priority);
                self.subtables.insert(pos, st);
                self.reindex(pos, self.subtables.len());
                pos
            }
        };
        let st = &mut self.subtables[si];
        st.insert_entry(
            &key,
            Entry {
                priority,
                slot: slot_idx,
                id,
            },
        );
        if priority > st.max_priority {
            st.max_priority = priority;
            self.reposition(si);
        }
        (id, None)
    }

    /// Removes rule `id`, returning it as stored (possibly shared).
    pub fn remove_shared(&mut self, id: RuleId) -> Option<Arc<Rule<T>>> {
        let slot_idx = self.ids.remove(&id)?;
        let slot = self.slots.get_mut(slot_idx as usize)?.take()?;
        self.free.push(slot_idx);
        self.timed.remove(&id);
        self.version += 1;
        let rule = slot.rule;
        let priority = rule.priority.0;

        if let Some(&si) = self.by_mask.get(rule.m.mask()) {
            let st = &mut self.subtables[si];
            st.remove_entry(rule.m.key(), id, priority);
            match st.prio_counts.keys().next_back() {
                None => {
                    self.by_mask.remove(rule.m.mask());
                    self.subtables.remove(si);
                    self.reindex(si, self.subtables.len());
                }
                Some(&max) if max != st.max_priority => {
                    st.max_priority = max;
                    self.reposition(si);
                }
                Some(_) => {}
            }
        }
        Some(rule)
    }

    /// Swaps the stored rule `id` for `rule`, keeping the id (a modify that
    /// shares the new rule with another copy). The match and priority must
    /// be the old rule's; otherwise nothing changes and `rule` is handed
    /// back as the error. Returns the old rule (`Ok(None)`: no rule `id`).
    pub fn replace_shared(
        &mut self,
        id: RuleId,
        rule: Arc<Rule<T>>,
    ) -> Result<Option<Arc<Rule<T>>>, Arc<Rule<T>>> {
        let Some(&slot_idx) = self.ids.get(&id) else {
            return Ok(None);
        };
        let Some(Some(slot)) = self.slots.get_mut(slot_idx as usize) else {
            return Ok(None);
        };
        if slot.rule.m != rule.m || slot.rule.priority != rule.priority {
            return Err(rule);
        }
        if rule.has_timeout() {
            self.timed.insert(id);
        } else {
            self.timed.remove(&id);
        }
        self.version += 1;
        Ok(Some(std::mem::replace(&mut slot.rule, rule)))
    }

    /// The stored rule `id` (possibly shared).
    pub fn get_shared(&self, id: RuleId) -> Option<&Arc<Rule<T>>> {
        let slot = *self.ids.get(&id)?;
        self.slots.get(slot as usize)?.as_ref().map(|s| &s.rule)
    }

    /// [`Classifier::iter`] yielding the stored (shared) rules.
    pub fn iter_shared(&self) -> impl Iterator<Item = (RuleId, &Arc<Rule<T>>)> + '_ {
        type Sorted<'a, T> = (Reverse<Priority>, RuleId, &'a Arc<Rule<T>>);
        let mut all: Vec<Sorted<'_, T>> = self
            .slots
            .iter()
            .flatten()
            .map(|s| (Reverse(s.rule.priority), s.id, &s.rule))
            .collect();
        all.sort_unstable_by_key(|&(p, id, _)| (p, id));
        all.into_iter().map(|(_, id, r)| (id, r))
    }

    /// Every rule in storage order (unsorted, `O(n)`): for snapshots and
    /// counts where [`Classifier::iter`]'s sort is not needed.
    pub fn iter_unordered(&self) -> impl Iterator<Item = (RuleId, &Arc<Rule<T>>)> + '_ {
        self.slots.iter().flatten().map(|s| (s.id, &s.rule))
    }
}

// Mutations: may copy a rule shared with a clone, so `T: Clone`.
impl<T: Clone> Classifier<T> {
    /// OpenFlow ADD. Inserts `rule` with a fresh id, setting `created_ms`
    /// and `last_used_ms` to `now_ms` and its counters to zero. If a rule
    /// with the identical match and priority exists it is replaced (its
    /// slot is reused, the new rule still gets a new id) and returned with
    /// its id; `counters` says whether its packet and byte counts carry
    /// over.
    pub fn insert(
        &mut self,
        mut rule: Rule<T>,
        now_ms: u64,
        counters: CounterPolicy,
    ) -> (RuleId, Option<(RuleId, Rule<T>)>) {
        rule.created_ms = now_ms;
        rule.last_used_ms = now_ms;
        rule.n_packets = 0;
        rule.n_bytes = 0;
        let (id, old) = self.insert_shared(Arc::new(rule));
        let old = old.map(|(old_id, r)| (old_id, Arc::unwrap_or_clone(r)));
        if let (Some((_, old)), CounterPolicy::Keep) = (&old, counters) {
            if let Some(slot) = self.ids.get(&id).copied() {
                if let Some(Some(s)) = self.slots.get_mut(slot as usize) {
                    let r = Arc::make_mut(&mut s.rule);
                    r.n_packets = old.n_packets;
                    r.n_bytes = old.n_bytes;
                }
            }
        }
        (id, old)
    }

    /// Removes rule `id`, returning it.
    pub fn remove(&mut self, id: RuleId) -> Option<Rule<T>> {
        self.remove_shared(id).map(Arc::unwrap_or_clone)
    }
    /// Removes every rule in `ids` that exists, returning them in the order
    /// given.
    pub fn remove_many(&mut self, ids: impl IntoIterator<Item = RuleId>) -> Vec<(RuleId, Rule<T>)> {
        ids.into_iter()
            .filter_map(|id| self.remove(id).map(|r| (id, r)))
            .collect()
    }

    /// Edits rule `id` in place (`mod-flows`: new actions, cookie, timeouts,
    /// counter reset). The match and priority cannot change this way — any
    /// change the closure makes to `m` or `priority` is undone; remove and
    /// insert to move a rule. Returns `None` if there is no such rule.
    pub fn modify<R>(&mut self, id: RuleId, f: impl FnOnce(&mut Rule<T>) -> R) -> Option<R> {
        let slot_idx = *self.ids.get(&id)?;
        let slot = self.slots.get_mut(slot_idx as usize)?.as_mut()?;
        let rule = Arc::make_mut(&mut slot.rule);
        let (m, priority) = (rule.m, rule.priority);
        let out = f(rule);
        rule.m = m;
        rule.priority = priority;
        if rule.has_timeout() {
            self.timed.insert(id);
        } else {
            self.timed.remove(&id);
        }
        self.version += 1;
        Some(out)
    }

    /// Adds a hit of `packets` packets and `bytes` bytes to rule `id`,
    /// marking it used at `now_ms` if `packets > 0`. Returns false (and does
    /// nothing) for an unknown id, e.g. one removed since the datapath
    /// counted it.
    pub fn record_hit(&mut self, id: RuleId, packets: u64, bytes: u64, now_ms: u64) -> bool {
        let Some(&slot_idx) = self.ids.get(&id) else {
            return false;
        };
        let Some(Some(slot)) = self.slots.get_mut(slot_idx as usize) else {
            return false;
        };
        let rule = Arc::make_mut(&mut slot.rule);
        rule.n_packets = rule.n_packets.wrapping_add(packets);
        rule.n_bytes = rule.n_bytes.wrapping_add(bytes);
        if packets > 0 {
            rule.last_used_ms = rule.last_used_ms.max(now_ms);
        }
        true
    }

    /// [`Classifier::record_hit`] for each `(id, packets, bytes)`; returns
    /// how many ids were known.
    pub fn record_hits(
        &mut self,
        hits: impl IntoIterator<Item = (RuleId, u64, u64)>,
        now_ms: u64,
    ) -> usize {
        hits.into_iter()
            .filter(|&(id, p, b)| self.record_hit(id, p, b, now_ms))
            .count()
    }

    /// Removes and returns every rule whose timeout has passed at `now_ms`
    /// (idle: `now - last_used >= idle_timeout * 1000`; hard:
    /// `now - created >= hard_timeout * 1000`; hard wins when both hold), in
    /// id order.
    pub fn expire(&mut self, now_ms: u64) -> Vec<(RuleId, Rule<T>, ExpireReason)> {
        let due: Vec<(RuleId, ExpireReason)> = self
            .timed
            .iter()
            .filter_map(|&id| Some((id, self.get(id)?.expired(now_ms)?)))
            .collect();
        due.into_iter()
            .filter_map(|(id, why)| Some((id, self.remove(id)?, why)))
            .collect()
    }
}

impl<T> Classifier<T> {
    /// Moves subtable `si` (whose `max_priority` changed) to keep the order.
    fn reposition(&mut self, si: usize) {
        let st = self.subtables.remove(si);
        let p = st.max_priority;
        let pos = self.subtables.partition_point(|s| s.max_priority >= p);
        self.subtables.insert(pos, st);
        self.reindex(si.min(pos), si.max(pos) + 1);
    }

    /// Refreshes `by_mask` for subtables `from..to` (clamped).
    fn reindex(&mut self, from: usize, to: usize) {
        let to = to.min(self.subtables.len());
        for (i, st) in self.subtables.iter().enumerate().take(to).skip(from) {
            self.by_mask.insert(st.mask, i);
        }
    }

    #[cfg(test)]
    fn subtable_sizes(&self) -> Vec<(u16, usize)> {
        self.subtables
            .iter()
            .map(|s| (s.max_priority, s.n_rules()))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may panic on None.
mod tests {
    use super::*;

    fn in_port(p: u32) -> Match {
        Match::new(
            FlowKey {
                in_port: p,
                ..FlowKey::ZERO
            },
            FlowKey {
                in_port: u32::MAX,
                ..FlowKey::ZERO
            },
        )
    }

    fn ip_src(addr: u32, plen: u32) -> Match {
        let mask = if plen == 0 {
            0
        } else {
            u32::MAX << (32 - plen)
        };
        Match::new(
            FlowKey {
                dl_type: 0x0800,
                nw_src: addr,
                ..FlowKey::ZERO
            },
            FlowKey {
                dl_type: 0xffff,
                nw_src: mask,
                ..FlowKey::ZERO
            },
        )
    }

    fn pkt(port: u32, src: u32) -> FlowKey {
        FlowKey {
            in_port: port,
            dl_type: 0x0800,
            nw_src: src,
            ..FlowKey::ZERO
        }
    }

    fn add<T: Clone>(c: &mut Classifier<T>, m: Match, p: u16, data: T) -> RuleId {
        c.insert(Rule::new(m, Priority(p), data), 0, CounterPolicy::Reset)
            .0
    }

    fn hit<T>(c: &Classifier<T>, k: &FlowKey) -> Option<RuleId> {
        c.lookup(k).map(|(id, _)| id)
    }

    #[test]
    fn empty_lookup_misses() {
        let c: Classifier<()> = Classifier::new();
        assert!(c.is_empty());
        assert_eq!(c.len(), 0);
        assert_eq!(hit(&c, &FlowKey::ZERO), None);
        c.assert_invariants();
    }

    #[test]
    fn highest_priority_wins_across_subtables() {
        let mut c = Classifier::new();
        let any = add(&mut c, Match::CATCHALL, 0, "normal");
        let port = add(&mut c, in_port(1), 100, "port1");
        let net = add(&mut c, ip_src(0x0a00_0000, 8), 200, "net10");
        c.assert_invariants();
        assert_eq!(c.n_subtables(), 3);
        assert_eq!(hit(&c, &pkt(1, 0x0a01_0203)), Some(net));
        assert_eq!(hit(&c, &pkt(1, 0x0b01_0203)), Some(port));
        assert_eq!(hit(&c, &pkt(2, 0x0b01_0203)), Some(any));
        let (_, r) = c.lookup(&pkt(2, 0x0a00_0001)).unwrap();
        assert_eq!(r.data, "net10");
        // Subtables sorted by max priority.
        assert_eq!(c.subtable_sizes(), vec![(200, 1), (100, 1), (0, 1)],);
    }

    #[test]
    fn equal_priority_tie_goes_to_smallest_id() {
        let mut c = Classifier::new();
        // Insert the narrower one second: it still loses the tie.
        let first = add(&mut c, ip_src(0x0a00_0000, 8), 50, 1);
        let second = add(&mut c, in_port(3), 50, 2);
        assert!(first < second);
        assert_eq!(hit(&c, &pkt(3, 0x0a00_0001)), Some(first));
        // Same in the other subtable order.
        let mut c = Classifier::new();
        let first = add(&mut c, in_port(3), 50, 1);
        let second = add(&mut c, ip_src(0x0a00_0000, 8), 50, 2);
        assert!(first < second);
        assert_eq!(hit(&c, &pkt(3, 0x0a00_0001)), Some(first));
        // Remove the winner: the other takes over.
        c.remove(first);
        assert_eq!(hit(&c, &pkt(3, 0x0a00_0001)), Some(second));
        c.assert_invariants();
    }

    #[test]
    fn same_match_different_priorities_share_a_bucket() {
        let mut c = Classifier::new();
        let lo = add(&mut c, in_port(1), 10, "lo");
        let hi = add(&mut c, in_port(1), 20, "hi");
        assert_eq!(c.len(), 2);
        assert_eq!(c.n_subtables(), 1);
        assert_eq!(hit(&c, &pkt(1, 0)), Some(hi));
        c.remove(hi).unwrap();
        assert_eq!(hit(&c, &pkt(1, 0)), Some(lo));
        assert_eq!(c.subtable_sizes(), vec![(10, 1)]);
        c.assert_invariants();
    }

    #[test]
    fn add_replaces_identical_match_and_priority() {
        let mut c = Classifier::new();
        let (old, none) = c.insert(
            Rule::new(in_port(1), Priority(5), "a").with_cookie(7),
            1000,
            CounterPolicy::Reset,
        );
        assert!(none.is_none());
        assert!(c.record_hit(old, 3, 300, 1500));
        let (new, replaced) = c.insert(
            Rule::new(in_port(1), Priority(5), "b"),
            2000,
            CounterPolicy::Keep,
        );
        let (rid, r) = replaced.unwrap();
        assert_eq!(rid, old);
        assert_eq!((r.data, r.cookie, r.n_packets, r.n_bytes), ("a", 7, 3, 300));
        assert!(new > old);
        assert_eq!(c.len(), 1);
        assert!(c.get(old).is_none());
        let n = c.get(new).unwrap();
        assert_eq!(
            (n.data, n.n_packets, n.n_bytes, n.created_ms),
            ("b", 3, 300, 2000)
        );
        // Reset policy zeroes the counters.
        let (newer, _) = c.insert(
            Rule::new(in_port(1), Priority(5), "c"),
            3000,
            CounterPolicy::Reset,
        );
        assert_eq!(c.get(newer).unwrap().n_packets, 0);
        assert_eq!(hit(&c, &pkt(1, 0)), Some(newer));
        // Same match, other priority: no replacement.
        let (_, none) = c.insert(
            Rule::new(in_port(1), Priority(6), "d"),
            3000,
            CounterPolicy::Reset,
        );
        assert!(none.is_none());
        assert_eq!(c.len(), 2);
        c.assert_invariants();
    }

    #[test]
    fn ids_increase_and_slots_are_reused() {
        let mut c = Classifier::new();
        let a = add(&mut c, in_port(1), 1, ());
        let b = add(&mut c, in_port(2), 1, ());
        assert_eq!((a, b), (RuleId(1), RuleId(2)));
        c.remove(a).unwrap();
        assert!(c.remove(a).is_none());
        let d = add(&mut c, in_port(1), 1, ());
        assert_eq!(d, RuleId(3));
        assert_eq!(c.slots.len(), 2);
        c.assert_invariants();
    }

    #[test]
    fn removing_last_rule_drops_subtable_and_reorders() {
        let mut c = Classifier::new();
        let a = add(&mut c, in_port(1), 300, ());
        let _b = add(&mut c, ip_src(1, 32), 200, ());
        let c3 = add(&mut c, Match::CATCHALL, 250, ());
        assert_eq!(c.subtable_sizes(), vec![(300, 1), (250, 1), (200, 1)]);
        c.remove(a).unwrap();
        assert_eq!(c.subtable_sizes(), vec![(250, 1), (200, 1)]);
        // Lower the catchall subtable's max: it moves below.
        add(&mut c, Match::CATCHALL, 10, ());
        c.remove(c3).unwrap();
        assert_eq!(c.subtable_sizes(), vec![(200, 1), (10, 1)]);
        c.assert_invariants();
    }

    #[test]
    fn early_exit_does_not_skip_better_rules() {
        let mut c = Classifier::new();
        // Subtable A: max 100 (rule for port 9), but a port-1 rule at 1.
        add(&mut c, in_port(9), 100, "a9");
        let a1 = add(&mut c, in_port(1), 1, "a1");
        // Subtable B (catchall): 50.
        let b = add(&mut c, Match::CATCHALL, 50, "b");
        assert_eq!(hit(&c, &pkt(1, 0)), Some(b));
        c.remove(b).unwrap();
        assert_eq!(hit(&c, &pkt(1, 0)), Some(a1));
    }

    #[test]
    fn find_strict_and_select_strict() {
        let mut c = Classifier::new();
        let a = add(&mut c, in_port(1), 10, 1);
        c.modify(a, |r| r.cookie = 0xab).unwrap();
        assert_eq!(c.find_strict(&in_port(1), Priority(10)), Some(a));
        assert_eq!(c.find_strict(&in_port(1), Priority(11)), None);
        assert_eq!(c.find_strict(&in_port(2), Priority(10)), None);
        assert_eq!(c.find_strict(&Match::CATCHALL, Priority(10)), None);
        let sel = |cm: CookieMatch, want: i32| {
            c.select_strict(&in_port(1), Priority(10), cm, |d| *d == want)
        };
        assert_eq!(sel(CookieMatch::ANY, 1), vec![a]);
        assert_eq!(sel(CookieMatch::exact(0xab), 1), vec![a]);
        assert_eq!(sel(CookieMatch::exact(0xac), 1), vec![]);
        assert_eq!(
            sel(
                CookieMatch {
                    value: 0xa0,
                    mask: 0xf0
                },
                1
            ),
            vec![a]
        );
        assert_eq!(sel(CookieMatch::ANY, 2), vec![]);
    }

    #[test]
    fn select_loose_covers_narrower_rules_only() {
        let mut c = Classifier::new();
        let net8 = add(&mut c, ip_src(0x0a00_0000, 8), 10, 1);
        let net16 = add(&mut c, ip_src(0x0a01_0000, 16), 20, 2);
        let other16 = add(&mut c, ip_src(0x0b01_0000, 16), 30, 3);
        let host = add(&mut c, ip_src(0x0a01_0203, 32), 5, 4);
        let port = add(&mut c, in_port(1), 40, 5);
        let all = add(&mut c, Match::CATCHALL, 0, 6);
        let any = CookieMatch::ANY;
        // The catchall filter selects everything, in dump order.
        assert_eq!(
            c.select_loose(&Match::CATCHALL, any, |_| true),
            vec![port, other16, net16, net8, host, all]
        );
        // nw_src=10.0.0.0/8 covers /8, /16 and /32 inside 10/8.
        assert_eq!(
            c.select_loose(&ip_src(0x0a00_0000, 8), any, |_| true),
            vec![net16, net8, host]
        );
        // /16 filter: the /8 rule is wider than the filter, not covered.
        assert_eq!(
            c.select_loose(&ip_src(0x0a01_0000, 16), any, |_| true),
            vec![net16, host]
        );
        // ip (dl_type only).
        let ip = Match::new(
            FlowKey {
                dl_type: 0x0800,
                ..FlowKey::ZERO
            },
            FlowKey {
                dl_type: 0xffff,
                ..FlowKey::ZERO
            },
        );
        assert_eq!(
            c.select_loose(&ip, any, |_| true),
            vec![other16, net16, net8, host]
        );
        // Predicate over data (out_port stand-in).
        assert_eq!(c.select_loose(&ip, any, |d| d % 2 == 0), vec![net16, host]);
        // Cookie mask.
        c.modify(net8, |r| r.cookie = 0x1234).unwrap();
        c.modify(host, |r| r.cookie = 0x1299).unwrap();
        let cm = CookieMatch {
            value: 0x1200,
            mask: 0xff00,
        };
        assert_eq!(c.select_loose(&ip, cm, |_| true), vec![net8, host]);
        assert_eq!(
            c.select_loose(&ip, CookieMatch::exact(0x1234), |_| true),
            vec![net8]
        );
    }

    #[test]
    fn remove_many_and_version() {
        let mut c = Classifier::new();
        let v0 = c.version();
        let a = add(&mut c, in_port(1), 1, ());
        let b = add(&mut c, in_port(2), 1, ());
        let d = add(&mut c, in_port(3), 1, ());
        assert!(c.version() > v0);
        let v1 = c.version();
        assert!(c.record_hit(a, 1, 1, 5));
        assert_eq!(c.version(), v1, "counters do not change the version");
        let gone = c.remove_many([b, RuleId(999), a]);
        assert_eq!(
            gone.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![b, a]
        );
        assert!(c.version() > v1);
        assert_eq!(c.len(), 1);
        assert!(c.contains(d));
        c.assert_invariants();
    }

    #[test]
    fn modify_keeps_match_and_counters() {
        let mut c = Classifier::new();
        let a = add(&mut c, in_port(1), 10, "old");
        c.record_hit(a, 2, 200, 10);
        let out = c.modify(a, |r| {
            r.data = "new";
            r.priority = Priority(99); // ignored
            r.m = Match::CATCHALL; // ignored
            r.idle_timeout = 5;
            7
        });
        assert_eq!(out, Some(7));
        let r = c.get(a).unwrap();
        assert_eq!(
            (r.data, r.priority, r.n_packets, r.n_bytes),
            ("new", Priority(10), 2, 200)
        );
        assert_eq!(r.m, in_port(1));
        assert_eq!(hit(&c, &pkt(2, 0)), None);
        assert_eq!(c.modify(RuleId(42), |_| ()), None);
        c.assert_invariants();
    }

    #[test]
    fn iter_is_priority_then_id() {
        let mut c = Classifier::new();
        let a = add(&mut c, in_port(1), 5, ());
        let b = add(&mut c, in_port(2), 9, ());
        let d = add(&mut c, ip_src(1, 32), 5, ());
        let e = add(&mut c, Match::CATCHALL, 9, ());
        let order: Vec<RuleId> = c.iter().map(|(id, _)| id).collect();
        assert_eq!(order, vec![b, e, a, d]);
    }

    #[test]
    fn record_hits_counts_and_marks_used() {
        let mut c = Classifier::new();
        let (a, _) = c.insert(
            Rule::new(in_port(1), Priority(1), ()).with_idle_timeout(10),
            1_000,
            CounterPolicy::Reset,
        );
        let known = c.record_hits([(a, 2, 128), (RuleId(77), 1, 1), (a, 1, 64)], 4_000);
        assert_eq!(known, 2);
        let r = c.get(a).unwrap();
        assert_eq!((r.n_packets, r.n_bytes, r.last_used_ms), (3, 192, 4_000));
        // Zero packets does not refresh the idle timer; time never goes back.
        c.record_hit(a, 0, 0, 9_000);
        c.record_hit(a, 1, 1, 2_000);
        assert_eq!(c.get(a).unwrap().last_used_ms, 4_000);
    }

    #[test]
    fn idle_and_hard_timeouts() {
        let mut c = Classifier::new();
        let ins = |c: &mut Classifier<u8>, port, idle, hard, d| {
            c.insert(
                Rule::new(in_port(port), Priority(1), d)
                    .with_idle_timeout(idle)
                    .with_hard_timeout(hard),
                1_000,
                CounterPolicy::Reset,
            )
            .0
        };
        let idle = ins(&mut c, 1, 10, 0, 1);
        let hard = ins(&mut c, 2, 0, 5, 2);
        let both = ins(&mut c, 3, 2, 3, 3);
        let never = ins(&mut c, 4, 0, 0, 4);
        c.assert_invariants();
        assert_eq!(c.next_expiry_ms(), Some(3_000));
        assert!(c.expire(2_999).is_empty());
        // 'both' hit at 2_500: idle deadline moves to 4_500, hard stays 4_000.
        c.record_hit(both, 1, 60, 2_500);
        assert!(c.expire(3_999).is_empty());
        let gone = c.expire(4_000);
        assert_eq!(
            gone.iter()
                .map(|(id, _, why)| (*id, *why))
                .collect::<Vec<_>>(),
            vec![(both, ExpireReason::Hard)]
        );
        assert_eq!(c.next_expiry_ms(), Some(6_000));
        c.record_hit(idle, 1, 60, 5_000);
        let gone = c.expire(6_000);
        assert_eq!(
            gone.iter()
                .map(|(id, r, why)| (*id, r.data, *why))
                .collect::<Vec<_>>(),
            vec![(hard, 2, ExpireReason::Hard)]
        );
        assert!(c.expire(14_999).is_empty());
        let gone = c.expire(15_000);
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].0, gone[0].2), (idle, ExpireReason::Idle));
        assert_eq!(c.next_expiry_ms(), None);
        assert!(c.expire(u64::MAX).is_empty());
        assert!(c.contains(never));
        // Removing a timeout via modify takes the rule off the timed set.
        let t = ins(&mut c, 5, 1, 0, 5);
        assert_eq!(c.next_expiry_ms(), Some(2_000));
        c.modify(t, |r| r.idle_timeout = 0);
        assert_eq!(c.next_expiry_ms(), None);
        c.assert_invariants();
    }

    #[test]
    fn clone_is_independent_and_shares_rules() {
        let mut c = Classifier::new();
        let a = add(&mut c, in_port(1), 1, vec![1u8]);
        let snapshot = c.clone();
        c.modify(a, |r| r.data.push(2));
        c.record_hit(a, 1, 1, 1);
        add(&mut c, in_port(2), 1, vec![3]);
        assert_eq!(snapshot.get(a).unwrap().data, vec![1]);
        assert_eq!(snapshot.get(a).unwrap().n_packets, 0);
        assert_eq!(snapshot.len(), 1);
        assert_eq!(c.get(a).unwrap().data, vec![1, 2]);
        // The clone keeps assigning ids from the same counter.
        let mut s2 = snapshot.clone();
        let next = add(&mut s2, in_port(9), 1, vec![]);
        assert_eq!(next, RuleId(2));
        snapshot.assert_invariants();
        c.assert_invariants();
    }

    #[test]
    fn filter_grows_and_forgets_removed_keys() {
        let mut c = Classifier::new();
        let ids: Vec<RuleId> = (0..2000).map(|p| add(&mut c, in_port(p), 1, p)).collect();
        c.assert_invariants();
        let words_full = c.subtables[0].filter.words.len();
        assert!(words_full >= 2000 * 16 / 64, "filter grew with the keys");
        for p in 0..2000 {
            assert_eq!(hit(&c, &pkt(p, 0)), Some(ids[p as usize]));
        }
        c.remove_many(ids[..1900].iter().copied());
        c.assert_invariants();
        let st = &c.subtables[0];
        assert!(st.filter.words.len() < words_full, "rebuilt smaller");
        assert!(st.filter.stale <= 100);
        for p in 0..2000 {
            let want = (p >= 1900).then(|| ids[p as usize]);
            assert_eq!(hit(&c, &pkt(p, 0)), want);
        }
        // Most removed keys are now rejected by the filter alone.
        let passed = (0..1900)
            .filter(|&p| st.filter.may_contain(key_hash(st.masked(&pkt(p, 0)))))
            .count();
        assert!(passed < 1900 / 10, "{passed} of 1900 removed keys pass");
    }

    #[test]
    fn arbitrary_bit_masks_and_words() {
        // A mask touching several words, with odd bits.
        let mask = FlowKey {
            metadata: 0x8000_0000_0000_0001,
            dl_dst: [0x01, 0, 0, 0, 0, 0],
            tp_dst: 0x00f0,
            arp_tha: [0, 0, 0, 0, 0, 0x80],
            ..FlowKey::ZERO
        };
        let key = FlowKey {
            metadata: 1,
            dl_dst: [0x01, 0xaa, 0, 0, 0, 0],
            tp_dst: 0x0050,
            ..FlowKey::ZERO
        };
        let m = Match::new(key, mask);
        let mut c = Classifier::new();
        let id = add(&mut c, m, 7, ());
        let mut p = FlowKey {
            metadata: 0x0fff_0000_0000_0001,
            dl_dst: [0xff, 1, 2, 3, 4, 5],
            tp_dst: 0xff5f,
            arp_tha: [0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            ..FlowKey::ZERO
        };
        assert!(m.matches(&p));
        assert_eq!(hit(&c, &p), Some(id));
        // Four words: the key spills past the node's inline head. More
        // priorities on the same match share the node.
        let hi = add(&mut c, m, 9, ());
        let lo = add(&mut c, m, 3, ());
        c.assert_invariants();
        assert_eq!(hit(&c, &p), Some(hi));
        c.remove(hi).unwrap();
        assert_eq!(hit(&c, &p), Some(id));
        c.remove(id).unwrap();
        c.assert_invariants();
        assert_eq!(hit(&c, &p), Some(lo));
        p.arp_tha[5] = 0x80;
        assert_eq!(hit(&c, &p), None);
        c.remove(lo).unwrap();
        assert!(c.is_empty());
        assert_eq!(c.n_subtables(), 0);
        c.assert_invariants();
    }
}
