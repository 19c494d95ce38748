//! Published flow tables of one bridge, and the double buffer that edits
//! them in place.
//!
//! # What?
//! A [`Pipeline`] is one bridge's 255 tables (classifiers of
//! [`FlowEntry`]s). Datapath workers read the published version through an
//! `ArcSwap` (one `load` per packet run, no reference-count write); the
//! control plane changes it through a [`PipelineWriter`].
//!
//! # Design
//! Left-right double buffering over two `Arc<Pipeline>` copies, in safe
//! code: the writer edits the *back* copy in place (`Arc::get_mut`: no
//! reader can see it), and [`PipelineWriter::publish`] swaps it in, so a
//! batch of edits becomes visible to the workers at once, atomically. The
//! old front copy becomes the new back copy; it lags by the batch just
//! published, which is replayed onto it ([`Edit`] log) once the workers
//! that were still running a packet on it have dropped it: right after
//! the publish if they already have, else from the control plane's
//! once-a-second [`PipelineWriter::settle`] or at the next edit (a reader
//! holds it for one packet; an edit spins briefly, and after
//! [`RECLAIM_WAIT`] gives up and clones the front instead). Catching up
//! promptly is what frees deleted flows: until then the back copy holds
//! them. A
//! flow-mod therefore costs O(1) classifier work twice, never a copy of
//! the table. A flow is one [`FlowEntry`]: the classifier rule (match,
//! priority, cookie, timeouts, creation time) carrying [`FlowData`]
//! (table, actions, flags, per-worker counters), stored once as an `Arc`
//! that both copies share, so nothing about a flow is kept twice and its
//! counters never diverge.
//!
//! Each table has its own generation number, unique across all tables of
//! all bridges and renewed when a publish changed that table; the
//! workers' exact-match caches are keyed on it, so editing table 5 keeps
//! table 0's cached lookups.
//!
//! # Invariants
//! - Replaying the same edits in the same order on two equal pipelines
//!   yields equal pipelines (same rule ids: the classifier assigns ids
//!   deterministically).
//! - The back copy is either behind the front by `lag` (nothing edited
//!   since the last publish) or ahead by the unpublished edits, never
//!   both; [`PipelineWriter::view`] is always the newest state.
//!
//! # Thread-safety
//! Flow and table counters have one cache-line-aligned block per worker;
//! worker `w` writes only block `w` (relaxed load+store, no locked
//! read-modify-write) and the control plane sums the blocks. The writer
//! is owned by the control plane (`&mut self`); readers only `load`.
//!
//! # Limits
//! Two copies of the index structures (hash nodes, slab, id map: about
//! 100 bytes per flow each); rules, matches and actions are stored once.
//! The rule's own `n_packets`/`n_bytes`/`last_used_ms` fields (the
//! classifier's generic counters) are unused by rvsd.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use flowtable::classifier::{Classifier, Rule, RuleId};
use flowtable::syntax::{Flow, FlowView};
use flowtable::{Action, FlowKey, TableId};

use super::counters::MAX_WORKERS;

/// How long the writer waits for workers to leave the old copy before it
/// clones the front copy instead.
pub const RECLAIM_WAIT: Duration = Duration::from_millis(200);

/// One worker's counters of one flow, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct FlowCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    last_used_ms: AtomicU64,
}

/// What a flow holds besides what the classifier rule holds (match,
/// priority, cookie, timeouts, creation time): its table, actions, FLOW_MOD
/// flags and per-worker counters. A flow is one [`FlowEntry`], a
/// classifier rule carrying this, so nothing about it is stored twice.
#[derive(Debug)]
pub struct FlowData {
    /// Table the flow is in.
    pub table: TableId,
    /// What it does, in order; empty means drop.
    pub actions: Vec<Action>,
    /// OpenFlow FLOW_MOD flags it was added with (`OFPFF_*`; only
    /// `SEND_FLOW_REM` matters after insertion).
    pub flags: u16,
    /// Counters by worker index (worker `w` writes only its own).
    per_worker: Box<[FlowCounters]>,
}

/// One installed flow: the classifier rule with its [`FlowData`]. The
/// rule's own `n_packets`/`n_bytes`/`last_used_ms` are unused (the
/// per-worker counters in [`FlowData`] are the flow's counters); its
/// `created_ms` is the flow's creation time.
pub type FlowEntry = Rule<FlowData>;

impl Clone for FlowData {
    /// A copy whose counters start from this one's sums.
    fn clone(&self) -> Self {
        FlowData::with_counts(
            self.table,
            self.actions.clone(),
            self.per_worker.len(),
            self.n_packets(),
            self.n_bytes(),
            self.last_used_ms(),
        )
        .with_flags(self.flags)
    }
}

impl FlowData {
    fn with_counts(
        table: TableId,
        actions: Vec<Action>,
        workers: usize,
        p: u64,
        b: u64,
        used: u64,
    ) -> FlowData {
        let per_worker: Box<[FlowCounters]> = (0..workers.clamp(1, MAX_WORKERS))
            .map(|_| FlowCounters::default())
            .collect();
        per_worker[0].packets.store(p, Ordering::Relaxed);
        per_worker[0].bytes.store(b, Ordering::Relaxed);
        per_worker[0].last_used_ms.store(used, Ordering::Relaxed);
        FlowData {
            table,
            actions,
            flags: 0,
            per_worker,
        }
    }

    /// The same data with FLOW_MOD `flags`.
    pub fn with_flags(mut self, flags: u16) -> FlowData {
        self.flags = flags;
        self
    }

    /// Counter memory of one flow, bytes.
    pub fn counter_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.per_worker)
    }

    /// Counts one packet of `len` bytes on worker `w`.
    #[inline]
    pub fn hit(&self, w: usize, len: usize, now_ms: u64) {
        let c = &self.per_worker[w.min(self.per_worker.len() - 1)];
        let p = c.packets.load(Ordering::Relaxed);
        c.packets.store(p + 1, Ordering::Relaxed);
        let b = c.bytes.load(Ordering::Relaxed);
        c.bytes.store(b + len as u64, Ordering::Relaxed);
        c.last_used_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Packets matched, all workers.
    pub fn n_packets(&self) -> u64 {
        self.per_worker
            .iter()
            .map(|c| c.packets.load(Ordering::Relaxed))
            .sum()
    }

    /// Bytes matched, all workers.
    pub fn n_bytes(&self) -> u64 {
        self.per_worker
            .iter()
            .map(|c| c.bytes.load(Ordering::Relaxed))
            .sum()
    }

    /// Last match (or creation), ms since the daemon's epoch.
    pub fn last_used_ms(&self) -> u64 {
        self.per_worker
            .iter()
            .map(|c| c.last_used_ms.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }
}

/// A fresh flow from `flow` with zero counters for `workers` workers,
/// created (and last used) at `now_ms`.
pub fn new_entry(flow: Flow, now_ms: u64, workers: usize) -> FlowEntry {
    let data = FlowData::with_counts(flow.table, flow.actions, workers, 0, 0, now_ms);
    let mut r = Rule::new(flow.m, flow.priority, data)
        .with_cookie(flow.cookie)
        .with_idle_timeout(flow.idle_timeout)
        .with_hard_timeout(flow.hard_timeout);
    r.created_ms = now_ms;
    r.last_used_ms = now_ms;
    r
}

/// The flow `e` is, as the flow syntax prints and parses it.
pub fn flow_of(e: &FlowEntry) -> Flow {
    Flow {
        table: e.data.table,
        priority: e.priority,
        cookie: e.cookie,
        idle_timeout: e.idle_timeout,
        hard_timeout: e.hard_timeout,
        m: e.m,
        actions: e.data.actions.clone(),
    }
}

/// `e` borrowed for printing ([`flowtable::syntax::put_flow`]): no copy
/// of its actions.
pub fn view_of(e: &FlowEntry) -> FlowView<'_> {
    FlowView {
        table: e.data.table,
        priority: e.priority,
        cookie: e.cookie,
        idle_timeout: e.idle_timeout,
        hard_timeout: e.hard_timeout,
        m: &e.m,
        actions: &e.data.actions,
    }
}

/// A replacement of `e` with `flow`'s contents (same table, match and
/// priority) that keeps `e`'s age and counters, or zeroes the counters
/// (`reset`: OpenFlow's RESET_COUNTS).
pub fn replaced(e: &FlowEntry, flow: Flow, reset: bool) -> FlowEntry {
    let (p, b) = if reset {
        (0, 0)
    } else {
        (e.data.n_packets(), e.data.n_bytes())
    };
    let data = FlowData::with_counts(
        flow.table,
        flow.actions,
        e.data.per_worker.len(),
        p,
        b,
        e.data.last_used_ms(),
    )
    .with_flags(e.data.flags);
    let mut r = Rule::new(flow.m, flow.priority, data)
        .with_cookie(flow.cookie)
        .with_idle_timeout(flow.idle_timeout)
        .with_hard_timeout(flow.hard_timeout);
    r.created_ms = e.created_ms;
    r.last_used_ms = e.last_used_ms;
    r
}

/// One worker's lookup counters for all 255 tables: `[lookups, matched]`.
#[derive(Debug)]
struct WorkerTableStats(Box<[[AtomicU64; 2]]>);

/// Per-table lookup counters, shared by all versions of a bridge's pipeline.
#[derive(Debug)]
pub struct TableStats {
    per_worker: Box<[WorkerTableStats]>,
}

impl TableStats {
    /// Counters for all 255 tables and `workers` workers.
    pub fn new(workers: usize) -> TableStats {
        TableStats {
            per_worker: (0..workers.clamp(1, MAX_WORKERS))
                .map(|_| {
                    WorkerTableStats(
                        (0..255)
                            .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                            .collect(),
                    )
                })
                .collect(),
        }
    }

    /// Counts a lookup in `table` on worker `w`.
    #[inline]
    pub fn count(&self, w: usize, table: u8, matched: bool) {
        let Some(c) = self.per_worker[w.min(self.per_worker.len() - 1)]
            .0
            .get(table as usize)
        else {
            return;
        };
        let l = c[0].load(Ordering::Relaxed);
        c[0].store(l + 1, Ordering::Relaxed);
        if matched {
            let m = c[1].load(Ordering::Relaxed);
            c[1].store(m + 1, Ordering::Relaxed);
        }
    }

    /// (lookups, matched) of `table`, all workers.
    pub fn get(&self, table: u8) -> (u64, u64) {
        self.per_worker
            .iter()
            .fold((0, 0), |(l, m), w| match w.0.get(table as usize) {
                Some(c) => (
                    l + c[0].load(Ordering::Relaxed),
                    m + c[1].load(Ordering::Relaxed),
                ),
                None => (l, m),
            })
    }
}

/// A flow rule as the tables store it (the same as [`FlowEntry`]).
pub type FlowRule = FlowEntry;

/// All tables of one bridge, one version.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// Tables by id; missing trailing tables are empty.
    pub tables: Vec<Classifier<FlowData>>,
    /// Generation of each table in `tables` (same index): unique across
    /// every table of every bridge and version
    /// ([`Pipeline::next_generation`]), renewed when the table changes;
    /// keys the workers' exact-match caches.
    gens: Vec<u64>,
    /// Version number, increasing with every publish.
    pub version: u64,
    /// Shared per-table counters.
    pub stats: Arc<TableStats>,
    /// Datapath workers, which sizes each flow's counter block.
    pub workers: usize,
}

/// One change to a pipeline, kept to be replayed on the other copy.
#[derive(Clone, Debug)]
pub enum Edit {
    /// OpenFlow ADD into `flow.table`: replaces a rule with the same match
    /// and priority.
    Insert(Arc<FlowRule>),
    /// Remove rule `id` of a table.
    Remove(u8, RuleId),
    /// Give rule `id` of a table new contents, same match and priority.
    Replace(u8, RuleId, Arc<FlowRule>),
}

/// What applying an [`Edit`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Id of an inserted rule.
    pub id: Option<RuleId>,
    /// The rule an insert replaced or a remove/replace took out.
    pub old: Option<Arc<FlowRule>>,
}

impl Pipeline {
    /// An empty pipeline for `workers` datapath workers.
    pub fn new(workers: usize) -> Pipeline {
        Pipeline {
            tables: Vec::new(),
            gens: Vec::new(),
            version: 0,
            stats: Arc::new(TableStats::new(workers)),
            workers: workers.clamp(1, MAX_WORKERS),
        }
    }

    /// A generation number never handed out before (never 0).
    pub fn next_generation() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh entry for `flow` with counters sized for this pipeline.
    pub fn new_entry(&self, flow: Flow, now_ms: u64) -> FlowEntry {
        new_entry(flow, now_ms, self.workers)
    }

    /// The generation of table `id` (0 for a table that never existed).
    #[inline]
    pub fn generation(&self, id: u8) -> u64 {
        self.gens.get(id as usize).copied().unwrap_or(0)
    }

    /// Gives table `id` a new generation (its lookups may have changed).
    pub fn renew(&mut self, id: u8) {
        self.table_mut(id);
        if let Some(g) = self.gens.get_mut(id as usize) {
            *g = Pipeline::next_generation();
        }
    }

    /// Gives every table a new generation.
    pub fn renew_all(&mut self) {
        for g in &mut self.gens {
            *g = Pipeline::next_generation();
        }
    }

    /// The table with `id`, created if needed.
    pub fn table_mut(&mut self, id: u8) -> &mut Classifier<FlowData> {
        let i = id as usize;
        while self.tables.len() <= i {
            self.tables.push(Classifier::new());
            self.gens.push(Pipeline::next_generation());
        }
        &mut self.tables[i]
    }

    /// Number of flows in all tables.
    pub fn n_flows(&self) -> usize {
        self.tables.iter().map(Classifier::len).sum()
    }

    /// Looks up `key` in table `id` (the classifier; not counted).
    #[inline]
    pub fn lookup(&self, id: u8, key: &FlowKey) -> Option<&FlowEntry> {
        self.tables.get(id as usize)?.lookup(key).map(|(_, r)| r)
    }

    /// Applies `e` (generations are not renewed here).
    pub fn apply(&mut self, e: &Edit) -> Applied {
        match e {
            Edit::Insert(r) => {
                let (id, old) = self.table_mut(r.data.table.0).insert_shared(r.clone());
                Applied {
                    id: Some(id),
                    old: old.map(|(_, r)| r),
                }
            }
            Edit::Remove(t, id) => Applied {
                id: None,
                old: self.table_mut(*t).remove_shared(*id),
            },
            Edit::Replace(t, id, r) => Applied {
                id: Some(*id),
                old: self
                    .table_mut(*t)
                    .replace_shared(*id, r.clone())
                    .ok()
                    .flatten(),
            },
        }
    }
}

/// The table an edit changes.
fn edit_table(e: &Edit) -> u8 {
    match e {
        Edit::Insert(r) => r.data.table.0,
        Edit::Remove(t, _) | Edit::Replace(t, _, _) => *t,
    }
}

/// The control plane's handle on one bridge's published tables: edits in
/// place, publishes in batches (see the [module docs](self)).
#[derive(Debug)]
pub struct PipelineWriter {
    /// What the workers load.
    shared: Arc<ArcSwap<Pipeline>>,
    /// The published copy (the same `Arc` as in `shared`).
    front: Arc<Pipeline>,
    /// The copy being edited; unique once caught up.
    back: Arc<Pipeline>,
    /// Edits in `front` that `back` lacks.
    lag: Vec<Edit>,
    /// Edits in `back` not yet published.
    pending: Vec<Edit>,
    /// Tables `pending` touches (generation renewed at publish).
    dirty: Vec<u8>,
    /// Times the back copy had to be cloned (readers did not let go).
    clones: u64,
}

impl PipelineWriter {
    /// Publishes `p` as the first version.
    pub fn new(p: Pipeline) -> PipelineWriter {
        let front = Arc::new(p.clone());
        PipelineWriter {
            shared: Arc::new(ArcSwap::new(front.clone())),
            front,
            back: Arc::new(p),
            lag: Vec::new(),
            pending: Vec::new(),
            dirty: Vec::new(),
            clones: 0,
        }
    }

    /// The handle workers load from.
    pub fn shared(&self) -> Arc<ArcSwap<Pipeline>> {
        self.shared.clone()
    }

    /// The newest state, published or not.
    pub fn view(&self) -> &Pipeline {
        if self.pending.is_empty() {
            &self.front
        } else {
            &self.back
        }
    }

    /// The published version (what the workers see).
    pub fn published(&self) -> &Pipeline {
        &self.front
    }

    /// True if there are edits not yet published.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Times the writer gave up waiting for readers and cloned.
    pub fn clones(&self) -> u64 {
        self.clones
    }

    /// Brings `back` up to date with `front` and returns it, mutable.
    fn back_mut(&mut self) -> &mut Pipeline {
        // Wait (bounded) for the workers still running a packet on the old
        // copy, catching it up as soon as they let go.
        let start = Instant::now();
        let mut spins = 0u32;
        while !self.settle() && start.elapsed() < RECLAIM_WAIT {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        if !self.lag.is_empty() || Arc::get_mut(&mut self.back).is_none() {
            // A reader kept the old copy: start over from the front (which
            // holds every edit, the lag included).
            log::debug!("pipeline: readers held the old copy; cloning");
            self.back = Arc::new((*self.front).clone());
            self.lag.clear();
            self.clones += 1;
        }
        // Caught up or freshly cloned: nothing else holds `back`.
        Arc::get_mut(&mut self.back).expect("back copy is unique after catching up")
    }

    /// Applies `e` to the back copy (visible to the workers at the next
    /// [`PipelineWriter::publish`]).
    pub fn edit(&mut self, e: Edit) -> Applied {
        let t = edit_table(&e);
        let out = self.back_mut().apply(&e);
        if !self.dirty.contains(&t) {
            self.dirty.push(t);
        }
        self.pending.push(e);
        out
    }

    /// Replaces every table at once (a restore, `replace-flows` of a
    /// whole new set): the next publish shows exactly `p`'s flows.
    pub fn reset(&mut self, mut p: Pipeline) {
        p.stats = self.front.stats.clone();
        p.version = self.front.version + 1;
        p.renew_all();
        self.back = Arc::new(p);
        self.lag.clear();
        // The other copy is rebuilt from the new one after the publish.
        self.pending.clear();
        self.dirty.clear();
        let front = Arc::new((*self.back).clone());
        self.shared.store(front.clone());
        self.front = front;
    }

    /// Makes every pending edit visible to the workers, atomically.
    pub fn publish(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        let version = self.front.version + 1;
        let b = self.back_mut();
        for t in dirty {
            b.renew(t);
        }
        b.version = version;
        self.shared.store(self.back.clone());
        std::mem::swap(&mut self.front, &mut self.back);
        self.lag = std::mem::take(&mut self.pending);
        self.settle();
    }

    /// Replays the lag onto the back copy now if no worker still holds it
    /// (never waits). Without this, the flows a batch deleted would stay
    /// alive in the back copy until the next edit; the control plane calls
    /// it after every publish and once a second. Returns true when the
    /// back copy is up to date.
    pub fn settle(&mut self) -> bool {
        if self.lag.is_empty() {
            return true;
        }
        let Some(b) = Arc::get_mut(&mut self.back) else {
            return false;
        };
        for e in &self.lag {
            b.apply(e);
        }
        b.gens = self.front.gens.clone();
        b.version = self.front.version;
        self.lag = Vec::new();
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use flowtable::syntax::parse_flow;

    fn rule(p: &Pipeline, text: &str) -> Arc<FlowRule> {
        let f = parse_flow(text, &|_| None).unwrap();
        Arc::new(p.new_entry(f, 0))
    }

    fn flows(p: &Pipeline) -> Vec<(u8, RuleId, String)> {
        let mut v: Vec<_> = p
            .tables
            .iter()
            .enumerate()
            .flat_map(|(t, c)| {
                c.iter()
                    .map(move |(id, r)| (t as u8, id, flow_of(r).to_string()))
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn both_copies_converge_and_readers_see_whole_batches() {
        let mut w = PipelineWriter::new(Pipeline::new(1));
        let shared = w.shared();
        let r1 = rule(w.view(), "priority=10,ip,actions=drop");
        let a = w.edit(Edit::Insert(r1));
        assert!(w.has_pending());
        assert_eq!(shared.load().n_flows(), 0, "not visible before publish");
        assert_eq!(w.view().n_flows(), 1, "the writer sees its edit");
        let r2 = rule(w.view(), "table=3,priority=5,arp,actions=drop");
        w.edit(Edit::Insert(r2));
        w.publish();
        assert_eq!(shared.load().n_flows(), 2);
        // A reader still on the old copy: the next edit waits, then clones.
        let held = shared.load_full();
        w.edit(Edit::Remove(0, a.id.unwrap()));
        drop(held);
        w.publish();
        // Several rounds: the copies replay each other's batches.
        for i in 0..20u32 {
            let r = rule(
                w.view(),
                &format!("priority={i},tcp,tp_dst={i},actions=drop"),
            );
            w.edit(Edit::Insert(r));
            if i % 3 == 0 {
                w.publish();
            }
        }
        w.publish();
        let front = flows(&shared.load());
        assert_eq!(front.len(), 21);
        // Catch the back copy up and compare it with the front.
        let r = rule(w.view(), "priority=1,udp,actions=drop");
        let id = w.edit(Edit::Insert(r)).id.unwrap();
        w.edit(Edit::Remove(0, id));
        assert_eq!(
            flows(w.view()),
            front,
            "back copy equals front after replay"
        );
    }

    #[test]
    fn a_deleted_flow_is_freed_once_the_readers_let_go_without_another_edit() {
        let mut w = PipelineWriter::new(Pipeline::new(1));
        let shared = w.shared();
        let r = rule(w.view(), "priority=10,ip,actions=drop");
        let weak = Arc::downgrade(&r);
        let id = w.edit(Edit::Insert(r)).id.unwrap();
        w.publish();
        // No reader: the publish catches the other copy up at once.
        w.edit(Edit::Remove(0, id));
        w.publish();
        assert!(weak.upgrade().is_none(), "freed right after the publish");

        let r = rule(w.view(), "priority=10,ip,actions=drop");
        let weak = Arc::downgrade(&r);
        let id = w.edit(Edit::Insert(r)).id.unwrap();
        w.publish();
        w.edit(Edit::Remove(0, id));
        // A worker mid-packet on the copy that still has the flow.
        let held = shared.load_full();
        w.publish();
        assert!(!w.settle(), "cannot catch up while a reader holds it");
        drop(held);
        assert!(weak.upgrade().is_some(), "the lagging copy still has it");
        assert!(w.settle());
        assert!(weak.upgrade().is_none(), "freed by settle, no edit needed");
        assert_eq!(w.view().n_flows(), 0);
    }

    #[test]
    fn generations_change_only_for_edited_tables() {
        let mut w = PipelineWriter::new(Pipeline::new(2));
        let r = rule(w.view(), "priority=1,actions=drop");
        w.edit(Edit::Insert(r));
        w.publish();
        let g0 = w.published().generation(0);
        let f5 = parse_flow("table=5,priority=1,actions=drop", &|_| None).unwrap();
        w.edit(Edit::Insert(Arc::new(w.view().new_entry(f5, 0))));
        w.publish();
        assert_eq!(w.published().generation(0), g0, "table 0 untouched");
        assert_ne!(w.published().generation(5), 0);
        assert_eq!(w.published().stats.per_worker.len(), 2);
    }
}
