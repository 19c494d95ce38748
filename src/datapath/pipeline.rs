//! Published flow tables of one bridge.
//!
//! # Design
//! The control plane owns the authoritative [`Pipeline`] of each bridge. A
//! change clones it, edits the clone and publishes it through an
//! `ArcSwap`; each datapath worker reads it through its own
//! `arc_swap::Cache` (one atomic load per packet to notice a new version, no
//! reference-count traffic between workers).
//! Flow entries are `Arc`s shared between versions, so a flow's counters
//! survive unrelated edits (and `mod-flows`, which keeps the entry's
//! counters by moving them into the replacement).
//!
//! # Thread-safety
//! Flow and table counters have one cache-line-aligned block per worker;
//! worker `w` writes only block `w` (relaxed load+store, no locked
//! read-modify-write) and the control plane sums the blocks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flowtable::classifier::Classifier;
use flowtable::syntax::Flow;
use flowtable::FlowKey;

use super::counters::MAX_WORKERS;

/// One worker's counters of one flow, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct FlowCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    last_used_ms: AtomicU64,
}

/// One installed flow and its counters.
#[derive(Debug)]
pub struct FlowEntry {
    /// The flow as added (match, priority, actions, timeouts, cookie).
    pub flow: Flow,
    /// When it was added, ms since the daemon's epoch.
    pub created_ms: u64,
    /// Counters by worker index (worker `w` writes only its own).
    per_worker: Box<[FlowCounters]>,
}

impl FlowEntry {
    /// A fresh entry with zero counters.
    pub fn new(flow: Flow, now_ms: u64) -> FlowEntry {
        FlowEntry::with_counts(flow, now_ms, 0, 0, now_ms)
    }

    fn with_counts(flow: Flow, created_ms: u64, p: u64, b: u64, used: u64) -> FlowEntry {
        let per_worker: Box<[FlowCounters]> =
            (0..MAX_WORKERS).map(|_| FlowCounters::default()).collect();
        per_worker[0].packets.store(p, Ordering::Relaxed);
        per_worker[0].bytes.store(b, Ordering::Relaxed);
        per_worker[0].last_used_ms.store(used, Ordering::Relaxed);
        FlowEntry {
            flow,
            created_ms,
            per_worker,
        }
    }

    /// A replacement with new contents that keeps this entry's counters.
    pub fn replaced(&self, flow: Flow) -> FlowEntry {
        FlowEntry::with_counts(
            flow,
            self.created_ms,
            self.n_packets(),
            self.n_bytes(),
            self.last_used_ms(),
        )
    }

    /// Counts one packet of `len` bytes on worker `w`.
    #[inline]
    pub fn hit(&self, w: usize, len: usize, now_ms: u64) {
        let c = &self.per_worker[w.min(MAX_WORKERS - 1)];
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
            .unwrap_or(self.created_ms)
    }
}

/// One worker's lookup counters for all 255 tables: `[lookups, matched]`.
#[derive(Debug)]
struct WorkerTableStats(Box<[[AtomicU64; 2]]>);

/// Per-table lookup counters, shared by all versions of a bridge's pipeline.
#[derive(Debug)]
pub struct TableStats {
    per_worker: Box<[WorkerTableStats]>,
}

impl Default for TableStats {
    fn default() -> Self {
        TableStats::new()
    }
}

impl TableStats {
    /// Counters for all 255 tables.
    pub fn new() -> TableStats {
        TableStats {
            per_worker: (0..MAX_WORKERS)
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
        let Some(c) = self.per_worker[w.min(MAX_WORKERS - 1)]
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

/// All tables of one bridge, one immutable version.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// Tables by id; missing trailing tables are empty.
    pub tables: Vec<Classifier<Arc<FlowEntry>>>,
    /// Version number, increasing with every publish.
    pub version: u64,
    /// Identity of this published version, unique across all bridges and
    /// versions ([`Pipeline::next_generation`]); keys the workers' caches.
    pub generation: u64,
    /// Shared per-table counters.
    pub stats: Arc<TableStats>,
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new() -> Pipeline {
        Pipeline {
            tables: Vec::new(),
            version: 0,
            generation: Pipeline::next_generation(),
            stats: Arc::new(TableStats::new()),
        }
    }

    /// A generation number never handed out before (never 0).
    pub fn next_generation() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// The table with `id`, created if needed.
    pub fn table_mut(&mut self, id: u8) -> &mut Classifier<Arc<FlowEntry>> {
        let i = id as usize;
        while self.tables.len() <= i {
            self.tables.push(Classifier::new());
        }
        &mut self.tables[i]
    }

    /// Looks up `key` in table `id` (the classifier; not counted).
    #[inline]
    pub fn lookup(&self, id: u8, key: &FlowKey) -> Option<&Arc<FlowEntry>> {
        self.tables
            .get(id as usize)?
            .lookup(key)
            .map(|(_, r)| &r.data)
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline::new()
    }
}
