//! One bridge's flow tables as the control plane edits them: OpenFlow
//! ADD/MODIFY/DELETE semantics, the flow limit, timeouts, and the record of
//! changes that the journal and FLOW_REMOVED are fed from.
//!
//! # What?
//! [`BridgeFlows`] owns the bridge's [`PipelineWriter`]. Every request
//! edits the back copy in place and the caller publishes once per batch
//! (one `rvsctl` request, or every FLOW_MOD read from a connection in one
//! go), so the datapath sees a batch whole or not at all.
//!
//! # Design
//! - Selection (`mod-flows`, `del-flows`, OpenFlow MODIFY/DELETE) goes
//!   through the classifier's strict and loose selection, so a strict
//!   delete is one hash probe and a loose one visits only subtables whose
//!   mask the filter does not wildcard beyond.
//! - Timeouts live in a min-heap of `(deadline, table, id)`: a flow is
//!   looked at when its earliest possible expiry comes, and pushed back
//!   with its new deadline if it was hit since (idle timeout). Cost
//!   `O(log n)` per expiry or re-check, never a scan of every flow.
//! - Every change is appended to a list of [`FlowChange`]s that the
//!   switch drains after the request: it journals them and sends
//!   FLOW_REMOVED for removed flows that asked for it.
//!
//! # Invariants
//! - The number of flows never exceeds the limit because of an insert;
//!   a batch that would exceed it is rejected whole, before any change.
//! - A request that fails validation changes nothing.
//!
//! # Thread-safety
//! Owned by the switch model (behind its mutex); the datapath reads only
//! the published copy.
//!
//! # Limits
//! CHECK_OVERLAP scans the rules of equal priority in every subtable
//! (`O(rules at that priority)`), as the overlap of two masked matches
//! cannot be found by hashing.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use rustc_hash::FxHashMap;
use std::sync::Arc;

use flowtable::classifier::{CookieMatch, RuleId};
use flowtable::syntax::{Flow, FlowFilter};
use flowtable::{Match, TableId};

use crate::datapath::pipeline::{
    flow_of, replaced, Edit, FlowData, FlowEntry, FlowRule, Pipeline, PipelineWriter,
};

/// Default per-bridge flow limit (`set bridge BR flow-limit=N`).
pub const DEFAULT_FLOW_LIMIT: usize = 1_000_000;

/// OpenFlow's `OFPFF_SEND_FLOW_REM`.
pub const SEND_FLOW_REM: u16 = 1;
/// OpenFlow's `OFPFF_CHECK_OVERLAP`.
pub const CHECK_OVERLAP: u16 = 2;
/// OpenFlow's `OFPFF_RESET_COUNTS`.
pub const RESET_COUNTS: u16 = 4;

/// Why a flow left the table (OpenFlow's `OFPRR_*` numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveReason {
    /// Idle timeout.
    Idle = 0,
    /// Hard timeout.
    Hard = 1,
    /// Deleted by a request.
    Delete = 2,
}

/// One change to the tables, for the journal and FLOW_REMOVED.
#[derive(Clone, Debug)]
pub enum FlowChange {
    /// A flow was added or replaced (same table, match and priority).
    Added(Arc<FlowEntry>),
    /// A flow was removed.
    Removed(Arc<FlowEntry>, RemoveReason),
    /// Every flow was removed (followed by the new set's `Added`s).
    Cleared,
}

/// A removed flow whose controller asked for FLOW_REMOVED.
#[derive(Clone, Debug)]
pub struct FlowRemovedEvent {
    /// Bridge id.
    pub bridge: u32,
    /// The flow, with its final counters.
    pub entry: Arc<FlowEntry>,
    /// Why it was removed.
    pub reason: RemoveReason,
    /// How long it was installed.
    pub duration_ms: u64,
}

/// Where the switch hands FLOW_REMOVED events, while the change is being
/// made (it must not block: the OpenFlow channel queues them in its
/// bounded per-bridge broadcast).
pub type FlowRemovedSink = Arc<dyn Fn(FlowRemovedEvent) + Send + Sync>;

/// A flow change that was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// The bridge holds its limit of flows.
    #[error("flow table full ({limit} flows; raise with set bridge {bridge} flow-limit=N)")]
    TableFull {
        /// The limit.
        limit: usize,
        /// The bridge.
        bridge: String,
    },
    /// CHECK_OVERLAP found a flow of equal priority that overlaps.
    #[error("the flow overlaps an existing flow of the same priority in table {0}")]
    Overlap(u8),
    /// The flow's `meter:N` names a meter the bridge does not have.
    #[error("meter {0} does not exist (add it first: add-meter)")]
    UnknownMeter(u32),
}

/// Why a meter change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeterChangeError {
    /// The configuration breaks OpenFlow's rules.
    #[error("{0}")]
    Invalid(#[from] flowtable::meter::MeterError),
    /// ADD of a meter that exists.
    #[error("meter {0} already exists (use mod-meter)")]
    Exists(u32),
    /// MODIFY of a meter that does not exist.
    #[error("meter {0} does not exist")]
    Unknown(u32),
    /// The bridge holds [`crate::qos::meter::MAX_METERS`] meters.
    #[error("the bridge has {0} meters, the most it holds")]
    OutOfMeters(u32),
}

impl MeterChangeError {
    /// The OpenFlow METER_MOD_FAILED code.
    pub fn code(&self) -> u16 {
        use flowtable::meter::code;
        match self {
            MeterChangeError::Invalid(e) => e.code(),
            MeterChangeError::Exists(_) => code::METER_EXISTS,
            MeterChangeError::Unknown(_) => code::UNKNOWN_METER,
            MeterChangeError::OutOfMeters(_) => code::OUT_OF_METERS,
        }
    }
}

/// The flow tables of one bridge.
#[derive(Debug)]
pub struct BridgeFlows {
    name: String,
    tables: PipelineWriter,
    limit: usize,
    /// Earliest possible expiry of each flow with a timeout.
    timers: BinaryHeap<Reverse<(u64, u8, RuleId)>>,
    changes: Vec<FlowChange>,
    /// While a transaction is open ([`BridgeFlows::begin`]): how to undo
    /// each edit since, and how many changes there were before it.
    undo: Option<(Vec<Undo>, usize)>,
    /// The bridge's meters as the control plane edits them; each change
    /// publishes a copy to `meters_pub` (an `Arc` per meter: cheap).
    meters: crate::qos::meter::MeterSet,
    /// Meters published to the datapath workers.
    meters_pub: Arc<arc_swap::ArcSwap<crate::qos::meter::MeterSet>>,
}

/// A slot (table, priority, match) and the rule it held before an edit.
type Undo = ((u8, flowtable::Priority, Match), Option<Arc<FlowRule>>);

/// True if some packet matches both `a` and `b`.
fn overlaps(a: &Match, b: &Match) -> bool {
    let (ka, ma) = (a.key().words(), a.mask().words());
    let (kb, mb) = (b.key().words(), b.mask().words());
    (0..ka.len()).all(|i| (ka[i] ^ kb[i]) & ma[i] & mb[i] == 0)
}

/// The earliest time `e` may expire (its hard timeout, or its idle
/// timeout counted from the last hit).
fn deadline(e: &FlowEntry) -> Option<u64> {
    let (hard, idle) = timeouts(e);
    hard.into_iter().chain(idle).min()
}

/// When `e`'s hard timeout and its idle timeout (from its last hit) fall
/// due.
fn timeouts(e: &FlowEntry) -> (Option<u64>, Option<u64>) {
    let hard = (e.hard_timeout != 0).then(|| e.created_ms + u64::from(e.hard_timeout) * 1000);
    let idle =
        (e.idle_timeout != 0).then(|| e.data.last_used_ms() + u64::from(e.idle_timeout) * 1000);
    (hard, idle)
}

/// Key of a flow's slot: table, priority and match.
type Slot = (u8, u16, Match);

fn slot(f: &Flow) -> Slot {
    (f.table.0, f.priority.0, f.m)
}

impl BridgeFlows {
    /// Empty tables of bridge `name` for `workers` datapath workers.
    pub fn new(name: &str, workers: usize) -> BridgeFlows {
        BridgeFlows {
            name: name.to_string(),
            tables: PipelineWriter::new(Pipeline::new(workers)),
            limit: DEFAULT_FLOW_LIMIT,
            timers: BinaryHeap::new(),
            changes: Vec::new(),
            undo: None,
            meters: Default::default(),
            meters_pub: Default::default(),
        }
    }

    /// The meters published to the datapath (shared with the workers).
    pub fn meters_shared(&self) -> Arc<arc_swap::ArcSwap<crate::qos::meter::MeterSet>> {
        self.meters_pub.clone()
    }

    /// The bridge's meters.
    pub fn meters(&self) -> &crate::qos::meter::MeterSet {
        &self.meters
    }

    /// Refuses `actions` that use a meter the bridge lacks.
    pub fn check_actions(&self, actions: &[flowtable::Action]) -> Result<(), FlowError> {
        match actions.first() {
            Some(flowtable::Action::Meter(id)) if self.meters.get(*id).is_none() => {
                Err(FlowError::UnknownMeter(*id))
            }
            _ => Ok(()),
        }
    }

    /// Adds (`modify` false) or replaces meter `spec.id`; published at
    /// once. A replaced meter keeps its age, not its buckets or counters.
    pub fn set_meter(
        &mut self,
        spec: flowtable::meter::MeterSpec,
        modify: bool,
    ) -> Result<(), MeterChangeError> {
        use crate::qos::meter::{Meter, MAX_METERS};
        let spec = spec.normalized();
        spec.validate()?;
        let old = self.meters.get(spec.id).cloned();
        let created = match (&old, modify) {
            (Some(_), false) => return Err(MeterChangeError::Exists(spec.id)),
            (None, true) => return Err(MeterChangeError::Unknown(spec.id)),
            (Some(o), true) => o.created,
            (None, false) => {
                if self.meters.len() >= MAX_METERS as usize {
                    return Err(MeterChangeError::OutOfMeters(MAX_METERS));
                }
                std::time::Instant::now()
            }
        };
        self.meters.insert(Arc::new(Meter::new(spec, created)));
        self.meters_pub.store(Arc::new(self.meters.clone()));
        Ok(())
    }

    /// Deletes meter `id` (every meter with OFPM_ALL) and the flows that
    /// use it, as OpenFlow says; returns the meters deleted. Deleting a
    /// meter that does not exist is not an error (Open vSwitch).
    pub fn del_meters(&mut self, id: u32) -> usize {
        let ids: Vec<u32> = if id == flowtable::meter::OFPM_ALL {
            self.meters.sorted().iter().map(|m| m.spec.id).collect()
        } else if self.meters.get(id).is_some() {
            vec![id]
        } else {
            Vec::new()
        };
        if ids.is_empty() {
            return 0;
        }
        let mut gone = Vec::new();
        for (t, c) in self.view().tables.iter().enumerate() {
            for (rid, r) in c.iter_unordered() {
                if let Some(flowtable::Action::Meter(m)) = r.data.actions.first() {
                    if ids.contains(m) {
                        gone.push((t as u8, rid));
                    }
                }
            }
        }
        for (t, rid) in gone {
            self.remove(t, rid, RemoveReason::Delete);
        }
        for i in &ids {
            self.meters.remove(*i);
        }
        self.meters_pub.store(Arc::new(self.meters.clone()));
        ids.len()
    }

    /// Flows whose actions use meter `id`, by meter id.
    pub fn meter_flow_counts(&self) -> rustc_hash::FxHashMap<u32, u32> {
        let mut n = rustc_hash::FxHashMap::default();
        if self.meters.is_empty() {
            return n;
        }
        for c in self.view().tables.iter() {
            for (_, r) in c.iter_unordered() {
                if let Some(flowtable::Action::Meter(m)) = r.data.actions.first() {
                    *n.entry(*m).or_insert(0) += 1;
                }
            }
        }
        n
    }

    /// Applies `e`, remembering what its slot held before while a
    /// transaction is open.
    fn edit(&mut self, e: Edit) -> crate::datapath::pipeline::Applied {
        let slot_of = |r: &FlowRule| (r.data.table.0, r.priority, r.m);
        let new_slot = match &e {
            Edit::Insert(r) | Edit::Replace(_, _, r) => Some(slot_of(r)),
            Edit::Remove(..) => None,
        };
        let applied = self.tables.edit(e);
        if let Some((undo, _)) = &mut self.undo {
            let slot = new_slot.or_else(|| applied.old.as_deref().map(slot_of));
            if let Some(slot) = slot {
                undo.push((slot, applied.old.clone()));
            }
        }
        applied
    }

    /// Opens a transaction: [`BridgeFlows::rollback`] undoes every change
    /// made after this (nothing is published in between).
    pub fn begin(&mut self) {
        self.undo = Some((Vec::new(), self.changes.len()));
    }

    /// Closes the transaction, keeping its changes.
    pub fn commit(&mut self) {
        self.undo = None;
    }

    /// Undoes every change since [`BridgeFlows::begin`], last first: each
    /// slot (table, priority, match) gets back the rule it held. A rule
    /// put back gets a new id (among flows of equal priority it now sorts
    /// after those added before it).
    pub fn rollback(&mut self) {
        let Some((undo, n_changes)) = self.undo.take() else {
            return;
        };
        for ((t, prio, m), old) in undo.into_iter().rev() {
            let cur = self
                .view()
                .tables
                .get(t as usize)
                .and_then(|c| c.find_strict(&m, prio));
            if let Some(id) = cur {
                self.tables.edit(Edit::Remove(t, id));
            }
            if let Some(old) = old {
                let deadline = deadline(&old);
                if let (Some(d), Some(id)) = (deadline, self.tables.edit(Edit::Insert(old)).id) {
                    self.timers.push(Reverse((d, t, id)));
                }
            }
        }
        self.changes.truncate(n_changes);
    }

    /// The handle the datapath loads the published tables from.
    pub fn shared(&self) -> Arc<arc_swap::ArcSwap<Pipeline>> {
        self.tables.shared()
    }

    /// The newest state of the tables (including unpublished edits).
    pub fn view(&self) -> &Pipeline {
        self.tables.view()
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.view().n_flows()
    }

    /// True if there are no flows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The flow limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Sets the flow limit; flows beyond it stay (new ones are refused).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Counter bytes per flow (per-worker blocks).
    pub fn counter_bytes_per_flow(&self) -> usize {
        std::mem::size_of::<[u64; 8]>() * self.view().workers
    }

    /// Times the writer had to copy the table because the datapath held
    /// the old copy too long.
    pub fn copies(&self) -> u64 {
        self.tables.clones()
    }

    /// Makes every edit so far visible to the datapath, at once.
    pub fn publish(&mut self) {
        self.tables.publish();
    }

    /// Brings the unpublished copy up to date if the datapath has let go
    /// of it, so deleted flows are freed without waiting for the next edit.
    pub fn settle(&mut self) {
        self.tables.settle();
    }

    /// Takes the changes recorded since the last call.
    pub fn take_changes(&mut self) -> Vec<FlowChange> {
        std::mem::take(&mut self.changes)
    }

    fn full(&self) -> FlowError {
        FlowError::TableFull {
            limit: self.limit,
            bridge: self.name.clone(),
        }
    }

    fn find(&self, f: &Flow) -> Option<RuleId> {
        self.view()
            .tables
            .get(f.table.0 as usize)?
            .find_strict(&f.m, f.priority)
    }

    fn insert_entry(&mut self, e: Arc<FlowEntry>) {
        let deadline = deadline(&e);
        let table = e.data.table.0;
        let applied = self.edit(Edit::Insert(e.clone()));
        if let (Some(d), Some(id)) = (deadline, applied.id) {
            self.timers.push(Reverse((d, table, id)));
        }
        self.changes.push(FlowChange::Added(e));
    }

    /// OpenFlow ADD of one flow with FLOW_MOD `flags`: replaces a flow with
    /// the same table, match and priority (keeping its counters unless
    /// RESET_COUNTS, as OpenFlow 1.3 says).
    pub fn add(&mut self, f: Flow, flags: u16, now_ms: u64) -> Result<(), FlowError> {
        self.check_actions(&f.actions)?;
        let old = self.find(&f);
        if flags & CHECK_OVERLAP != 0 {
            let t = f.table.0;
            let hit = self.view().tables.get(t as usize).is_some_and(|c| {
                c.iter_unordered().any(|(id, r)| {
                    Some(id) != old && r.priority == f.priority && overlaps(&r.m, &f.m)
                })
            });
            if hit {
                return Err(FlowError::Overlap(t));
            }
        }
        if old.is_none() && self.len() >= self.limit {
            return Err(self.full());
        }
        let table = f.table.0;
        let mut e = match old.and_then(|id| self.get(table, id)) {
            Some(old) if flags & RESET_COUNTS == 0 => {
                let mut e = replaced(&old, f, false);
                e.created_ms = now_ms;
                e.last_used_ms = now_ms;
                e
            }
            _ => self.view().new_entry(f, now_ms),
        };
        e.data.flags = flags;
        self.insert_entry(Arc::new(e));
        Ok(())
    }

    /// Adds `flows` (`add-flows`): all or, if the limit would be passed,
    /// none. Returns how many were given.
    pub fn add_many(&mut self, flows: Vec<Flow>, now_ms: u64) -> Result<usize, FlowError> {
        let mut seen: HashSet<Slot> = HashSet::with_capacity(flows.len());
        let new = flows
            .iter()
            .filter(|f| seen.insert(slot(f)) && self.find(f).is_none())
            .count();
        if self.len() + new > self.limit {
            return Err(self.full());
        }
        let n = flows.len();
        for f in flows {
            let e = self.view().new_entry(f, now_ms);
            self.insert_entry(Arc::new(e));
        }
        Ok(n)
    }

    fn get(&self, table: u8, id: RuleId) -> Option<Arc<FlowEntry>> {
        self.view()
            .tables
            .get(table as usize)?
            .get_shared(id)
            .cloned()
    }

    /// Flows `filter` selects (`strict` as `--strict`), by table, then
    /// priority descending.
    pub fn select(&self, filter: &FlowFilter, strict: bool) -> Vec<(u8, RuleId)> {
        let p = self.view();
        let cookie = CookieMatch {
            value: filter.cookie,
            mask: filter.cookie_mask,
        };
        let mut out = Vec::new();
        for (t, c) in p.tables.iter().enumerate() {
            if filter.table.is_some_and(|x| x.0 as usize != t) || c.is_empty() {
                continue;
            }
            // Match, priority and cookie are the classifier's to check.
            let pred = |d: &FlowData| filter.selects_actions(&d.actions);
            let ids = if strict {
                c.select_strict(&filter.m, filter.priority.unwrap_or_default(), cookie, pred)
            } else {
                c.select_loose(&filter.m, cookie, pred)
            };
            out.extend(ids.into_iter().map(|id| (t as u8, id)));
        }
        out
    }

    /// The entries `filter` selects (loosely), in `dump-flows` order.
    pub fn entries(&self, filter: &FlowFilter) -> Vec<Arc<FlowEntry>> {
        let p = self.view();
        if *filter == FlowFilter::default() {
            // Everything (a snapshot, a plain dump-flows): no per-flow test.
            return p
                .tables
                .iter()
                .flat_map(|c| c.iter_shared().map(|(_, r)| r.clone()))
                .collect();
        }
        self.select(filter, false)
            .into_iter()
            .filter_map(|(t, id)| p.tables.get(t as usize)?.get_shared(id).cloned())
            .collect()
    }

    /// Gives the selected flows `actions` (and `cookie`, if given);
    /// counters are kept unless `reset`. Returns how many changed.
    pub fn modify(
        &mut self,
        filter: &FlowFilter,
        strict: bool,
        actions: &[flowtable::Action],
        cookie: Option<u64>,
        reset: bool,
    ) -> usize {
        let sel = self.select(filter, strict);
        for (t, id) in &sel {
            let Some(old) = self.get(*t, *id) else {
                continue;
            };
            let mut f = flow_of(&old);
            f.actions = actions.to_vec();
            if let Some(c) = cookie {
                f.cookie = c;
            }
            let e = Arc::new(replaced(&old, f, reset));
            self.edit(Edit::Replace(*t, *id, e.clone()));
            self.changes.push(FlowChange::Added(e));
        }
        sel.len()
    }

    fn remove(&mut self, t: u8, id: RuleId, why: RemoveReason) {
        if let Some(old) = self.edit(Edit::Remove(t, id)).old {
            self.changes.push(FlowChange::Removed(old, why));
        }
    }

    /// Deletes the selected flows; returns how many.
    pub fn delete(&mut self, filter: &FlowFilter, strict: bool) -> usize {
        let sel = self.select(filter, strict);
        for (t, id) in &sel {
            self.remove(*t, *id, RemoveReason::Delete);
        }
        sel.len()
    }

    /// Makes `flows` the whole flow set (`replace-flows`, a restore):
    /// unchanged flows keep their entries and counters, the rest is
    /// deleted or added. All or nothing with respect to the limit.
    pub fn replace_all(&mut self, flows: Vec<Flow>, now_ms: u64) -> Result<usize, FlowError> {
        // The last flow given for a slot wins, as a sequence of ADDs would.
        let mut last: FxHashMap<Slot, usize> = FxHashMap::default();
        last.reserve(flows.len());
        for (i, f) in flows.iter().enumerate() {
            last.insert(slot(f), i);
        }
        if last.len() > self.limit {
            return Err(self.full());
        }
        for f in &flows {
            self.check_actions(&f.actions)?;
        }
        let n = last.len();
        let mut keep = vec![false; flows.len()];
        let mut gone = Vec::new();
        for (t, c) in self.view().tables.iter().enumerate() {
            for (id, r) in c.iter_unordered() {
                let f = flow_of(r);
                match last.get(&slot(&f)) {
                    Some(&i) if flows[i] == f => keep[i] = true,
                    _ => gone.push((t as u8, id)),
                }
            }
        }
        for (t, id) in gone {
            self.remove(t, id, RemoveReason::Delete);
        }
        // New flows in the order given (ids decide priority ties).
        for (i, f) in flows.into_iter().enumerate() {
            if !keep[i] && last.get(&slot(&f)) == Some(&i) {
                let e = self.view().new_entry(f, now_ms);
                self.insert_entry(Arc::new(e));
            }
        }
        Ok(n)
    }

    /// The earliest time a flow may expire, if any has a timeout.
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((d, _, _))| *d)
    }

    /// Removes the flows whose timeout passed by `now_ms`; returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let mut n = 0;
        while let Some(&Reverse((d, t, id))) = self.timers.peek() {
            if d > now_ms {
                break;
            }
            self.timers.pop();
            let Some(e) = self.get(t, id) else {
                continue; // removed or replaced since
            };
            match timeouts(&e) {
                (Some(h), _) if h <= now_ms => {
                    self.remove(t, id, RemoveReason::Hard);
                    n += 1;
                }
                (_, Some(i)) if i <= now_ms => {
                    self.remove(t, id, RemoveReason::Idle);
                    n += 1;
                }
                (h, i) => {
                    if let Some(next) = h.into_iter().chain(i).min() {
                        self.timers.push(Reverse((next, t, id)));
                    }
                }
            }
        }
        n
    }

    /// Flows per table (for `show --stats` and TABLE stats).
    pub fn table_len(&self, t: TableId) -> usize {
        self.view().tables.get(t.0 as usize).map_or(0, |c| c.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use flowtable::classifier::{CounterPolicy, NaiveClassifier, Rule};
    use flowtable::syntax::{parse_flow, parse_match_filter};
    use std::collections::HashMap;

    fn flow(s: &str) -> Flow {
        parse_flow(s, &|_| None).unwrap()
    }

    fn filter(s: &str) -> FlowFilter {
        parse_match_filter(s, &|_| None).unwrap()
    }

    #[test]
    fn limit_overlap_and_replacement() {
        let mut b = BridgeFlows::new("br0", 1);
        b.set_limit(2);
        b.add(flow("priority=5,ip,actions=drop"), 0, 0).unwrap();
        b.add(flow("priority=5,arp,actions=drop"), 0, 0).unwrap();
        // Replacing an existing flow is fine at the limit; a new one is not.
        b.add(flow("priority=5,ip,actions=output:1"), 0, 0).unwrap();
        let e = b.add(flow("priority=6,ip,actions=drop"), 0, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "flow table full (2 flows; raise with set bridge br0 flow-limit=N)"
        );
        assert!(b
            .add_many(
                vec![
                    flow("priority=1,actions=drop"),
                    flow("priority=2,actions=drop")
                ],
                0
            )
            .is_err());
        assert_eq!(b.len(), 2, "rejected batch changed nothing");
        b.set_limit(10);
        let e = b
            .add(
                flow("priority=5,ip,nw_dst=10.0.0.1,actions=drop"),
                CHECK_OVERLAP,
                0,
            )
            .unwrap_err();
        assert_eq!(e, FlowError::Overlap(0));
        b.add(flow("priority=5,ipv6,actions=drop"), CHECK_OVERLAP, 0)
            .unwrap();
        b.publish();
        assert_eq!(b.shared().load().n_flows(), 3);
    }

    #[test]
    fn replace_all_keeps_the_order_of_equal_priority_flows() {
        let texts = [
            "priority=5,ip,actions=output:1",
            "priority=5,arp,actions=drop",
            "priority=5,ip,nw_dst=10.0.0.1,actions=output:2",
            "priority=5,tcp,actions=output:3",
            "priority=5,ip,nw_src=10.0.0.2,actions=output:4",
            "priority=5,udp,actions=output:5",
            "priority=5,actions=NORMAL",
            "priority=5,ip,nw_dst=10.0.0.0/8,actions=output:6",
        ];
        let want: Vec<String> = texts.iter().map(|t| flow(t).to_string()).collect();
        for _ in 0..16 {
            let mut b = BridgeFlows::new("br0", 1);
            b.add(flow("priority=9,actions=drop"), 0, 0).unwrap();
            b.replace_all(texts.iter().map(|t| flow(t)).collect(), 0)
                .unwrap();
            let got: Vec<String> = b.view().tables[0]
                .iter()
                .map(|(_, r)| flow_of(r).to_string())
                .collect();
            assert_eq!(got, want);
        }
        // A later duplicate replaces the earlier flow as a later ADD would:
        // with a new id, after the flows given before it (as add-flows).
        let mut b = BridgeFlows::new("br0", 1);
        let dup = [
            "priority=5,ip,actions=drop",
            "priority=5,arp,actions=drop",
            "priority=5,ip,actions=output:1",
        ];
        b.replace_all(dup.iter().map(|t| flow(t)).collect(), 0)
            .unwrap();
        let got: Vec<String> = b.view().tables[0]
            .iter()
            .map(|(_, r)| flow_of(r).to_string())
            .collect();
        assert_eq!(
            got,
            vec![flow(dup[1]).to_string(), flow(dup[2]).to_string()]
        );
    }

    #[test]
    fn rollback_restores_every_slot() {
        let mut b = BridgeFlows::new("br0", 1);
        b.add(flow("priority=5,ip,actions=drop"), 0, 0).unwrap();
        b.add(flow("priority=6,arp,actions=drop"), 0, 0).unwrap();
        b.publish();
        b.take_changes();
        let before: Vec<String> = b
            .entries(&FlowFilter::default())
            .iter()
            .map(|e| flow_of(e).to_string())
            .collect();
        b.begin();
        b.add(flow("priority=5,ip,actions=output:1"), 0, 1).unwrap(); // replaces
        b.add(flow("priority=7,ip,actions=drop"), 0, 1).unwrap(); // new
        b.delete(&filter("arp"), false);
        b.add(flow("priority=7,ip,actions=output:2"), 0, 1).unwrap(); // replaces the new one
        b.delete(&filter("priority=7,ip"), true);
        b.add(flow("priority=7,ip,actions=output:3"), 0, 1).unwrap();
        b.rollback();
        assert!(
            b.take_changes().is_empty(),
            "rolled-back changes are not journaled"
        );
        let after: Vec<String> = b
            .entries(&FlowFilter::default())
            .iter()
            .map(|e| flow_of(e).to_string())
            .collect();
        assert_eq!(after, before);
        b.publish();
        assert_eq!(b.shared().load().n_flows(), 2);
    }

    #[test]
    fn expiry_follows_hits_and_hard_timeouts() {
        let mut b = BridgeFlows::new("br0", 1);
        b.add(
            flow("priority=1,hard_timeout=2,actions=drop"),
            SEND_FLOW_REM,
            0,
        )
        .unwrap();
        b.add(flow("priority=2,idle_timeout=1,actions=drop"), 0, 0)
            .unwrap();
        b.take_changes();
        assert_eq!(b.next_deadline(), Some(1000));
        // The idle flow is hit at 900 ms: it survives 1000 ms.
        let id = b.select(&filter("priority=2"), true)[0].1;
        b.view().tables[0].get(id).unwrap().data.hit(0, 60, 900);
        assert_eq!(b.expire(1000), 0);
        assert_eq!(b.next_deadline(), Some(1900));
        assert_eq!(b.expire(1900), 1);
        assert_eq!(b.expire(2000), 1);
        let why: Vec<_> = b
            .take_changes()
            .into_iter()
            .map(|c| match c {
                FlowChange::Removed(e, r) => (e.priority.0, e.data.flags, r),
                c => panic!("{c:?}"),
            })
            .collect();
        assert_eq!(
            why,
            vec![
                (2, 0, RemoveReason::Idle),
                (1, SEND_FLOW_REM, RemoveReason::Hard)
            ]
        );
        assert!(b.is_empty());
    }

    /// Random adds, strict and loose deletes and modifies, published at
    /// random points, agree with a naive model at every publish; the two
    /// copies of the double buffer stay equal.
    #[test]
    fn interleaved_edits_agree_with_the_naive_classifier() {
        let mut b = BridgeFlows::new("br0", 2);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut model: HashMap<(u16, Match), Flow> = HashMap::new();
        for step in 0..3000 {
            let r = next();
            let prio = (r % 8) as u16;
            let dst = (r >> 8) % 16;
            let text = match (r >> 16) % 4 {
                0 => format!(
                    "priority={prio},ip,nw_dst=10.0.0.{dst},actions=output:{}",
                    r % 5 + 1
                ),
                1 => format!("priority={prio},ip,nw_dst=10.0.{dst}.0/24,actions=drop"),
                2 => format!("priority={prio},tcp,tp_dst={dst},actions=output:3"),
                _ => format!("priority={prio},actions=NORMAL"),
            };
            let f = flow(&text);
            match (r >> 24) % 5 {
                0 | 1 => {
                    b.add(f.clone(), 0, step).unwrap();
                    model.insert((f.priority.0, f.m), f);
                }
                2 => {
                    let fl = FlowFilter {
                        priority: Some(f.priority),
                        m: f.m,
                        ..FlowFilter::default()
                    };
                    b.delete(&fl, true);
                    model.remove(&(f.priority.0, f.m));
                }
                3 => {
                    let fl = FlowFilter {
                        m: f.m,
                        ..FlowFilter::default()
                    };
                    b.delete(&fl, false);
                    model.retain(|_, g| !g.m.is_covered_by(&f.m));
                }
                _ => {
                    let fl = FlowFilter {
                        m: f.m,
                        ..FlowFilter::default()
                    };
                    let acts = flow("actions=output:9").actions;
                    b.modify(&fl, false, &acts, None, false);
                    for g in model.values_mut() {
                        if g.m.is_covered_by(&f.m) {
                            g.actions = acts.clone();
                        }
                    }
                }
            }
            if r % 7 == 0 {
                b.publish();
                let pubd = b.shared().load_full();
                let mut naive = NaiveClassifier::new();
                for g in model.values() {
                    naive.insert(Rule::new(g.m, g.priority, ()), 0, CounterPolicy::Reset);
                }
                let mut have: Vec<String> = pubd.tables[0]
                    .iter()
                    .map(|(_, r)| flow_of(r).to_string())
                    .collect();
                let mut want: Vec<String> = model.values().map(|g| g.to_string()).collect();
                have.sort();
                want.sort();
                assert_eq!(have, want, "step {step}");
                for probe in 0..40u32 {
                    let mut frame = vec![0u8; 64];
                    frame[12] = 8;
                    frame[14] = 0x45;
                    frame[23] = 6;
                    frame[30..34].copy_from_slice(&[10, 0, (probe % 16) as u8, (probe % 17) as u8]);
                    frame[36..38].copy_from_slice(&((probe % 16) as u16).to_be_bytes());
                    let key = flowtable::extract::extract(&frame, flowtable::PortNo(1));
                    let got = pubd.lookup(0, &key).map(|e| e.priority);
                    let want = naive.lookup(&key).map(|(_, r)| r.priority);
                    assert_eq!(got, want, "step {step} probe {probe}");
                }
            }
        }
    }
}
