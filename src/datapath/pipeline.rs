//! Published flow tables of one bridge.
//!
//! # Design
//! The control plane owns the authoritative [`Pipeline`] of each bridge. A
//! change clones it, edits the clone and publishes it through an
//! `ArcSwap`; datapath workers load the current version once per batch.
//! Flow entries are `Arc`s shared between versions, so a flow's counters
//! survive unrelated edits (and `mod-flows`, which keeps the entry's
//! counters by moving them into the replacement).
//!
//! # Thread-safety
//! Flow counters are written only by the worker that owns the bridge (one
//! writer, relaxed load+store) and read by the control plane.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flowtable::classifier::Classifier;
use flowtable::syntax::Flow;
use flowtable::FlowKey;

/// One installed flow and its counters.
#[derive(Debug)]
pub struct FlowEntry {
    /// The flow as added (match, priority, actions, timeouts, cookie).
    pub flow: Flow,
    /// When it was added, ms since the daemon's epoch.
    pub created_ms: u64,
    /// Packets matched.
    pub n_packets: AtomicU64,
    /// Bytes matched.
    pub n_bytes: AtomicU64,
    /// Last match, ms since the daemon's epoch.
    pub last_used_ms: AtomicU64,
}

impl FlowEntry {
    /// A fresh entry with zero counters.
    pub fn new(flow: Flow, now_ms: u64) -> FlowEntry {
        FlowEntry {
            flow,
            created_ms: now_ms,
            n_packets: AtomicU64::new(0),
            n_bytes: AtomicU64::new(0),
            last_used_ms: AtomicU64::new(now_ms),
        }
    }

    /// A replacement with new contents that keeps this entry's counters.
    pub fn replaced(&self, flow: Flow) -> FlowEntry {
        FlowEntry {
            flow,
            created_ms: self.created_ms,
            n_packets: AtomicU64::new(self.n_packets.load(Ordering::Relaxed)),
            n_bytes: AtomicU64::new(self.n_bytes.load(Ordering::Relaxed)),
            last_used_ms: AtomicU64::new(self.last_used_ms.load(Ordering::Relaxed)),
        }
    }

    /// Counts one packet of `len` bytes (owning worker only).
    #[inline]
    pub fn hit(&self, len: usize, now_ms: u64) {
        let p = self.n_packets.load(Ordering::Relaxed);
        self.n_packets.store(p + 1, Ordering::Relaxed);
        let b = self.n_bytes.load(Ordering::Relaxed);
        self.n_bytes.store(b + len as u64, Ordering::Relaxed);
        self.last_used_ms.store(now_ms, Ordering::Relaxed);
    }
}

/// Per-table lookup counters, shared by all versions of a bridge's pipeline.
#[derive(Debug, Default)]
pub struct TableStats {
    /// Lookups per table.
    pub lookups: Vec<AtomicU64>,
    /// Lookups that found a flow, per table.
    pub matched: Vec<AtomicU64>,
}

impl TableStats {
    /// Counters for all 255 tables.
    pub fn new() -> TableStats {
        TableStats {
            lookups: (0..255).map(|_| AtomicU64::new(0)).collect(),
            matched: (0..255).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// All tables of one bridge, one immutable version.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// Tables by id; missing trailing tables are empty.
    pub tables: Vec<Classifier<Arc<FlowEntry>>>,
    /// Version number, increasing with every publish.
    pub version: u64,
    /// Shared per-table counters.
    pub stats: Arc<TableStats>,
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new() -> Pipeline {
        Pipeline {
            tables: Vec::new(),
            version: 0,
            stats: Arc::new(TableStats::new()),
        }
    }

    /// The table with `id`, created if needed.
    pub fn table_mut(&mut self, id: u8) -> &mut Classifier<Arc<FlowEntry>> {
        let i = id as usize;
        while self.tables.len() <= i {
            self.tables.push(Classifier::new());
        }
        &mut self.tables[i]
    }

    /// Looks up `key` in table `id`, counting the lookup.
    #[inline]
    pub fn lookup(&self, id: u8, key: &FlowKey) -> Option<&Arc<FlowEntry>> {
        let i = id as usize;
        if let Some(c) = self.stats.lookups.get(i) {
            c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        let hit = self.tables.get(i)?.lookup(key).map(|(_, r)| &r.data);
        if hit.is_some() {
            if let Some(c) = self.stats.matched.get(i) {
                c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            }
        }
        hit
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline::new()
    }
}
