//! Naive reference classifier: a `Vec` of rules scanned linearly.
//!
//! # What?
//! [`NaiveClassifier<T>`] has the same semantics as
//! [`Classifier<T>`](super::Classifier) for the operations it offers — the
//! same lookup tie rule, the same id assignment, the same ADD replacement,
//! selection and expiry rules — written as plainly as possible, so that a
//! property test can hold the fast classifier to it.
//!
//! # Design
//! Rules in a `Vec` in insertion order (hence id order). Every operation is
//! a linear scan. No sharing, no indices.
//!
//! # Invariants
//! Same as the real classifier: ids strictly increasing from 1, at most one
//! rule per (match, priority), lookup returns the maximum of
//! `(priority, Reverse(id))` over matching rules.
//!
//! # Thread-safety
//! Plain data; `&self` methods may run concurrently.
//!
//! # Limits
//! Everything is `O(n)`; for tests only.

use std::cmp::Reverse;

use super::{CookieMatch, CounterPolicy, ExpireReason, Rule, RuleId};
use crate::flowmatch::Match;
use crate::key::FlowKey;
use crate::types::Priority;

/// Linear-scan classifier with the semantics of
/// [`Classifier`](super::Classifier). Test reference.
///
/// ```
/// use flowtable::classifier::{CounterPolicy, NaiveClassifier, Rule};
/// use flowtable::{FlowKey, Match, Priority};
///
/// let mut n = NaiveClassifier::new();
/// let (id, _) = n.insert(Rule::new(Match::CATCHALL, Priority(0), ()), 0, CounterPolicy::Reset);
/// assert_eq!(n.lookup(&FlowKey::ZERO).map(|(i, _)| i), Some(id));
/// ```
#[derive(Clone, Debug)]
pub struct NaiveClassifier<T> {
    /// Rules in insertion (= id) order.
    rules: Vec<(RuleId, Rule<T>)>,
    /// Next id to assign.
    next_id: u64,
}

impl<T> Default for NaiveClassifier<T> {
    fn default() -> Self {
        NaiveClassifier {
            rules: Vec::new(),
            next_id: 1,
        }
    }
}

impl<T> NaiveClassifier<T> {
    /// An empty classifier; the first rule gets `RuleId(1)`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True if there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Same contract as [`Classifier::insert`](super::Classifier::insert).
    pub fn insert(
        &mut self,
        mut rule: Rule<T>,
        now_ms: u64,
        counters: CounterPolicy,
    ) -> (RuleId, Option<(RuleId, Rule<T>)>) {
        let id = RuleId(self.next_id);
        self.next_id += 1;
        rule.created_ms = now_ms;
        rule.last_used_ms = now_ms;
        rule.n_packets = 0;
        rule.n_bytes = 0;
        let old = self
            .rules
            .iter()
            .position(|(_, r)| r.m == rule.m && r.priority == rule.priority)
            .map(|i| self.rules.remove(i));
        if let (Some((_, o)), CounterPolicy::Keep) = (&old, counters) {
            rule.n_packets = o.n_packets;
            rule.n_bytes = o.n_bytes;
        }
        self.rules.push((id, rule));
        (id, old)
    }

    /// The matching rule with the greatest `(priority, Reverse(id))`.
    pub fn lookup(&self, key: &FlowKey) -> Option<(RuleId, &Rule<T>)> {
        self.rules
            .iter()
            .filter(|(_, r)| r.m.matches(key))
            .max_by_key(|(id, r)| (r.priority, Reverse(*id)))
            .map(|(id, r)| (*id, r))
    }

    /// The rule with id `id`.
    pub fn get(&self, id: RuleId) -> Option<&Rule<T>> {
        self.rules.iter().find(|(i, _)| *i == id).map(|(_, r)| r)
    }

    /// Removes rule `id`.
    pub fn remove(&mut self, id: RuleId) -> Option<Rule<T>> {
        let i = self.rules.iter().position(|(i, _)| *i == id)?;
        Some(self.rules.remove(i).1)
    }

    /// The rule with identical match and priority.
    pub fn find_strict(&self, m: &Match, priority: Priority) -> Option<RuleId> {
        self.rules
            .iter()
            .find(|(_, r)| r.m == *m && r.priority == priority)
            .map(|(id, _)| *id)
    }

    fn sorted(mut v: Vec<(Priority, RuleId)>) -> Vec<RuleId> {
        v.sort_by_key(|&(p, id)| (Reverse(p), id));
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// Same contract as
    /// [`Classifier::select_loose`](super::Classifier::select_loose).
    pub fn select_loose(
        &self,
        filter: &Match,
        cookie: CookieMatch,
        mut pred: impl FnMut(&T) -> bool,
    ) -> Vec<RuleId> {
        Self::sorted(
            self.rules
                .iter()
                .filter(|(_, r)| {
                    r.m.is_covered_by(filter) && cookie.matches(r.cookie) && pred(&r.data)
                })
                .map(|(id, r)| (r.priority, *id))
                .collect(),
        )
    }

    /// Same contract as
    /// [`Classifier::select_strict`](super::Classifier::select_strict).
    pub fn select_strict(
        &self,
        m: &Match,
        priority: Priority,
        cookie: CookieMatch,
        mut pred: impl FnMut(&T) -> bool,
    ) -> Vec<RuleId> {
        Self::sorted(
            self.rules
                .iter()
                .filter(|(_, r)| {
                    r.m == *m && r.priority == priority && cookie.matches(r.cookie) && pred(&r.data)
                })
                .map(|(id, r)| (r.priority, *id))
                .collect(),
        )
    }

    /// Every rule, by priority descending then id ascending.
    pub fn iter(&self) -> impl Iterator<Item = (RuleId, &Rule<T>)> + '_ {
        let mut v: Vec<&(RuleId, Rule<T>)> = self.rules.iter().collect();
        v.sort_by_key(|(id, r)| (Reverse(r.priority), *id));
        v.into_iter().map(|(id, r)| (*id, r))
    }

    /// Same contract as [`Classifier::modify`](super::Classifier::modify).
    pub fn modify<R>(&mut self, id: RuleId, f: impl FnOnce(&mut Rule<T>) -> R) -> Option<R> {
        let (_, r) = self.rules.iter_mut().find(|(i, _)| *i == id)?;
        let (m, priority) = (r.m, r.priority);
        let out = f(r);
        r.m = m;
        r.priority = priority;
        Some(out)
    }

    /// Same contract as
    /// [`Classifier::record_hit`](super::Classifier::record_hit).
    pub fn record_hit(&mut self, id: RuleId, packets: u64, bytes: u64, now_ms: u64) -> bool {
        let Some((_, r)) = self.rules.iter_mut().find(|(i, _)| *i == id) else {
            return false;
        };
        r.n_packets = r.n_packets.wrapping_add(packets);
        r.n_bytes = r.n_bytes.wrapping_add(bytes);
        if packets > 0 {
            r.last_used_ms = r.last_used_ms.max(now_ms);
        }
        true
    }

    /// Same contract as [`Classifier::expire`](super::Classifier::expire).
    pub fn expire(&mut self, now_ms: u64) -> Vec<(RuleId, Rule<T>, ExpireReason)> {
        let mut out = Vec::new();
        let mut keep = Vec::with_capacity(self.rules.len());
        for (id, r) in self.rules.drain(..) {
            match r.expired(now_ms) {
                Some(why) => out.push((id, r, why)),
                None => keep.push((id, r)),
            }
        }
        self.rules = keep;
        out
    }

    /// Same contract as
    /// [`Classifier::next_expiry_ms`](super::Classifier::next_expiry_ms).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.rules.iter().filter_map(|(_, r)| r.expiry_ms()).min()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may panic on None.
mod tests {
    use super::*;

    fn port(p: u32) -> Match {
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

    #[test]
    fn tie_goes_to_first_inserted_and_add_replaces() {
        let mut n = NaiveClassifier::new();
        let (a, _) = n.insert(
            Rule::new(port(1), Priority(5), 'a'),
            0,
            CounterPolicy::Reset,
        );
        let (b, _) = n.insert(
            Rule::new(Match::CATCHALL, Priority(5), 'b'),
            0,
            CounterPolicy::Reset,
        );
        let k = FlowKey {
            in_port: 1,
            ..FlowKey::ZERO
        };
        assert_eq!(n.lookup(&k).map(|(i, _)| i), Some(a));
        let (c, old) = n.insert(
            Rule::new(port(1), Priority(5), 'c'),
            0,
            CounterPolicy::Reset,
        );
        assert_eq!(old.map(|(i, r)| (i, r.data)), Some((a, 'a')));
        // The replacement has a newer id than b, so b now wins the tie.
        assert_eq!(n.lookup(&k).map(|(i, _)| i), Some(b));
        assert_eq!(n.iter().map(|(i, _)| i).collect::<Vec<_>>(), vec![b, c]);
    }

    #[test]
    fn expire_reports_reason() {
        let mut n = NaiveClassifier::new();
        n.insert(
            Rule::new(port(1), Priority(5), ()).with_hard_timeout(1),
            0,
            CounterPolicy::Reset,
        );
        assert_eq!(n.next_expiry_ms(), Some(1000));
        assert!(n.expire(999).is_empty());
        assert_eq!(n.expire(1000)[0].2, ExpireReason::Hard);
        assert!(n.is_empty());
    }
}
