//! The journal: accepted changes appended to a log, made durable in
//! groups, and folded into the state snapshot in the background.
//!
//! # What?
//! `<state-dir>/journal.<G>` files hold one JSON [`Record`] per line: a
//! flow added or replaced, a flow deleted, a bridge's flows cleared, or
//! the whole non-flow configuration (bridges, ports, knobs: small) after
//! any other change. `state.toml` (see [`super::state`]) is a snapshot;
//! its `journal = G` key names the first journal file that applies on top
//! of it. Restoring reads the snapshot and replays journals `G, G+1, …`
//! in order ([`replay`]).
//!
//! # Design
//! - Records are written (one `write` per committed batch) while the
//!   switch lock is held, so file order is acceptance order, and a
//!   `kill -9` at any moment leaves a prefix of the accepted changes (a
//!   torn last line is dropped on restore).
//! - Durability is group commit: a syncer thread `fdatasync`s the file
//!   when anyone waits ([`Durable::wait`]), and otherwise within
//!   [`SYNC_DELAY`] of a write; everyone waiting for a record written
//!   before the sync shares it. `rvsctl` requests are acknowledged after
//!   the fsync. An OpenFlow BARRIER is answered once everything before it
//!   is published and written to the journal: it survives a crash of
//!   rvsd (kill -9 included) at once, and a power loss after the next
//!   sync (≤ [`SYNC_DELAY`]). Waiting for an fsync per barrier would cost
//!   a disk flush per flow-mod with `ovs-ofctl`, which sends a barrier
//!   after each.
//! - Compaction: when the journal has grown past the table size, the
//!   switch starts a new journal file and hands a snapshot (flow entry
//!   pointers, the configuration without flows) to a background thread,
//!   which formats and writes `state.toml` atomically and then deletes the
//!   journal files it covers. A crash in between leaves the old snapshot
//!   and every journal, which replay to the same state.
//!
//! # Invariants
//! Journal files are only deleted after a snapshot that covers them is
//! renamed into place and its directory fsynced.
//!
//! # Thread-safety
//! [`Journal`] is owned by the switch (under its mutex); [`Durable`] is
//! shared with the threads that wait for durability; the syncer and the
//! compactor are plain threads.
//!
//! # Limits
//! A snapshot costs `O(flows)` on the compactor thread (formatting every
//! flow), not under the switch lock; the lock is held for copying the
//! flow pointers.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use flowtable::syntax::{self, Flow};
use flowtable::Match;
use serde::{Deserialize, Serialize};

use crate::config::{flow_table_toml, Config, FlowConfig};
use crate::control::state::{write_state_with, StateError, FORMAT_VERSION, STATE_FILE};
use crate::datapath::pipeline::{flow_of, FlowEntry};

/// Longest time a written record waits for its fsync when nobody waits
/// for it (group commit).
pub const SYNC_DELAY: Duration = Duration::from_millis(10);

/// Capacity of the write buffer kept between batches (a larger one, from
/// a big batch, is freed).
const BUF_KEEP: usize = 1 << 20;

/// One accepted change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Record {
    /// Flow `f` (printed in full) added to bridge `b`, replacing one with
    /// the same table, priority and match.
    Add {
        /// Bridge.
        b: String,
        /// The flow.
        f: String,
    },
    /// The flow with `f`'s table, priority and match removed from `b`.
    Del {
        /// Bridge.
        b: String,
        /// The flow (its actions do not matter).
        f: String,
    },
    /// Every flow of `b` removed.
    Clear {
        /// Bridge.
        b: String,
    },
    /// The whole configuration apart from flows; bridges it lacks are
    /// gone (with their flows).
    Config {
        /// The configuration (`flow` unset in every bridge).
        cfg: Box<Config>,
    },
}

/// A change waiting to be appended: flow records keep the entry itself
/// and are formatted straight into the write buffer by
/// [`Journal::append`], which writes the same line that serializing the
/// equivalent [`Record`] would.
#[derive(Debug)]
pub enum Pending {
    /// A flow of bridge `.0` added or replaced ([`Record::Add`]).
    Add(Arc<str>, Arc<FlowEntry>),
    /// A flow of bridge `.0` deleted ([`Record::Del`]; written with
    /// `actions=drop`, since replay ignores a deleted flow's actions).
    Del(Arc<str>, Arc<FlowEntry>),
    /// Any other record.
    Other(Record),
}

/// Appends `text` as a JSON string: copied as is when nothing in it
/// needs escaping (flow text rarely does), else through serde_json.
fn put_json_str(buf: &mut Vec<u8>, text: &str) -> Result<(), String> {
    if text.bytes().all(|c| c >= 0x20 && c != b'"' && c != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(buf, text).map_err(|e| e.to_string())
    }
}

/// Journal file `gen` in `dir`.
pub fn journal_path(dir: &Path, gen: u64) -> PathBuf {
    dir.join(format!("journal.{gen}"))
}

/// Journal generations present in `dir`, ascending.
pub fn journal_gens(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("journal.")?
                .parse()
                .ok()
        })
        .collect();
    v.sort_unstable();
    v
}

/// Reads the records of journals `from..` in `dir`. A torn last line of
/// the last file (a crash while writing) is dropped; any other bad line
/// is an error naming the file and line.
pub fn read_journals(dir: &Path, from: u64) -> Result<Vec<Record>, StateError> {
    let gens: Vec<u64> = journal_gens(dir)
        .into_iter()
        .filter(|&g| g >= from)
        .collect();
    let mut out = Vec::new();
    for (k, &g) in gens.iter().enumerate() {
        let path = journal_path(dir, g);
        let bytes = std::fs::read(&path).map_err(|source| StateError::Io {
            path: path.clone(),
            source,
        })?;
        let last_file = k + 1 == gens.len();
        let complete = bytes.last().is_none_or(|&b| b == b'\n');
        let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        let n = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            match serde_json::from_slice::<Record>(line) {
                Ok(r) => out.push(r),
                Err(_) if last_file && i + 1 == n && !complete => {
                    log::warn!(
                        "{}: dropping a torn last record (a crash while writing it)",
                        path.display()
                    );
                }
                Err(e) => {
                    return Err(StateError::Corrupt {
                        path,
                        message: format!("line {}: {e}", i + 1),
                    })
                }
            }
        }
    }
    Ok(out)
}

/// Records (lines) in journals `from..` in `dir`; unreadable files count 0.
pub fn count_records(dir: &Path, from: u64) -> u64 {
    journal_gens(dir)
        .into_iter()
        .filter(|&g| g >= from)
        .filter_map(|g| std::fs::read(journal_path(dir, g)).ok())
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .sum()
}

/// Table, priority and match: where a flow sits.
type Slot = (u8, u16, Match);

/// One bridge's flows during replay, in insertion order.
#[derive(Default)]
struct FlowSet {
    order: Vec<Option<String>>,
    at: HashMap<Slot, usize>,
}

impl FlowSet {
    fn add(&mut self, f: &Flow, text: String) {
        let k = (f.table.0, f.priority.0, f.m);
        if let Some(i) = self.at.remove(&k) {
            self.order[i] = None;
        }
        self.at.insert(k, self.order.len());
        self.order.push(Some(text));
    }

    fn del(&mut self, f: &Flow) {
        if let Some(i) = self.at.remove(&(f.table.0, f.priority.0, f.m)) {
            self.order[i] = None;
        }
    }

    fn into_flows(self) -> Vec<FlowConfig> {
        self.order
            .into_iter()
            .flatten()
            .map(|flow| FlowConfig { flow })
            .collect()
    }
}

fn parse(text: &str, what: &str) -> Result<Flow, String> {
    syntax::parse_flow(text, &|_| None).map_err(|e| format!("{what} {text:?}: {e}"))
}

/// Applies `records` to the snapshot `cfg`: the configuration they
/// describe. Flows are matched by table, priority and match, as the
/// switch does.
pub fn replay(mut cfg: Config, records: Vec<Record>) -> Result<Config, String> {
    if records.is_empty() {
        return Ok(cfg);
    }
    let mut sets: HashMap<String, FlowSet> = HashMap::new();
    for b in &mut cfg.bridge {
        let mut set = FlowSet::default();
        let flows = b.flow.take().unwrap_or_else(|| {
            vec![FlowConfig {
                flow: "priority=0,actions=NORMAL".into(),
            }]
        });
        for f in flows {
            let parsed = parse(&f.flow, "state flow")?;
            set.add(&parsed, f.flow);
        }
        sets.insert(b.name.clone(), set);
    }
    for r in records {
        match r {
            Record::Add { b, f } => {
                let parsed = parse(&f, "journal flow")?;
                sets.entry(b).or_default().add(&parsed, f);
            }
            Record::Del { b, f } => {
                let parsed = parse(&f, "journal flow")?;
                if let Some(s) = sets.get_mut(&b) {
                    s.del(&parsed);
                }
            }
            Record::Clear { b } => {
                sets.insert(b, FlowSet::default());
            }
            Record::Config { cfg: c } => {
                let keep: std::collections::HashSet<&str> =
                    c.bridge.iter().map(|b| b.name.as_str()).collect();
                sets.retain(|name, _| keep.contains(name.as_str()));
                let format_version = cfg.format_version;
                let journal = cfg.journal;
                cfg = *c;
                cfg.format_version = format_version;
                cfg.journal = journal;
            }
        }
    }
    for b in &mut cfg.bridge {
        b.flow = Some(sets.remove(&b.name).unwrap_or_default().into_flows());
    }
    Ok(cfg)
}

/// A snapshot to write: the configuration without flows, and each
/// bridge's flow entries (in `dump-flows` order).
#[derive(Debug)]
pub struct Snapshot {
    /// Configuration; its bridges' `flow` lists are ignored.
    pub cfg: Config,
    /// Flow entries per bridge, same order as `cfg.bridge`.
    pub flows: Vec<Vec<Arc<FlowEntry>>>,
    /// First journal generation not covered by the snapshot.
    pub journal: u64,
}

impl Snapshot {
    /// Writes the state file text to `w`: the same TOML as `rvsctl
    /// export` plus `format_version` and `journal`, each flow formatted
    /// straight into the output ([`flow_table_toml`]), so neither the
    /// text of every flow nor the whole file is held in memory at once.
    pub fn write_toml(&self, w: &mut dyn Write) -> std::io::Result<()> {
        let toml_err = |e: toml::ser::Error| std::io::Error::other(e.to_string());
        write!(
            w,
            "format_version = {FORMAT_VERSION}\njournal = {}\n",
            self.journal
        )?;
        if !self.cfg.ovsdb_remote.is_empty() {
            // Top-level keys before the first table.
            #[derive(serde::Serialize)]
            struct Head<'a> {
                ovsdb_remote: &'a [String],
            }
            let head = toml::to_string(&Head {
                ovsdb_remote: &self.cfg.ovsdb_remote,
            })
            .map_err(toml_err)?;
            w.write_all(head.as_bytes())?;
        }
        for (i, b) in self.cfg.bridge.iter().enumerate() {
            let flows = self.flows.get(i).map(Vec::as_slice).unwrap_or_default();
            let mut one = b.clone();
            // Absent means "the default flow": an empty table is `flow = []`.
            one.flow = flows.is_empty().then(Vec::new);
            let head = Config {
                bridge: vec![one],
                ..Config::default()
            };
            w.write_all(b"\n")?;
            w.write_all(head.to_toml().map_err(toml_err)?.as_bytes())?;
            for e in flows {
                let text = syntax::fmt_flow(&flow_of(e), None);
                w.write_all(flow_table_toml(&text).map_err(toml_err)?.as_bytes())?;
            }
        }
        Ok(())
    }
}

/// Writes `snap` and deletes the journals it covers.
fn write_snapshot(dir: &Path, snap: &Snapshot) -> Result<(), String> {
    write_state_with(dir, &mut |w| snap.write_toml(w)).map_err(|e| e.to_string())?;
    for g in journal_gens(dir) {
        if g < snap.journal {
            let _ = std::fs::remove_file(journal_path(dir, g));
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct SyncState {
    /// Batches written so far.
    written: u64,
    /// Highest batch someone waits for.
    wanted: u64,
    /// Batches known to be on disk.
    durable: u64,
    /// The file being appended to.
    file: Option<Arc<File>>,
    /// Last sync error, reported to waiters.
    error: Option<String>,
    stop: bool,
}

/// The waiting side of group commit, shared with the threads that must
/// not answer before their changes are on disk.
#[derive(Debug, Default)]
pub struct Durable {
    state: Mutex<SyncState>,
    cv: Condvar,
}

impl Durable {
    fn lock(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until batch `seq` is on disk (one fsync shared by every
    /// waiter). Returns the sync error if there was one.
    pub fn wait(&self, seq: u64) -> Result<(), String> {
        let mut s = self.lock();
        if s.durable >= seq {
            return Ok(());
        }
        s.wanted = s.wanted.max(seq);
        self.cv.notify_all();
        while s.durable < seq {
            if let Some(e) = &s.error {
                return Err(e.clone());
            }
            if s.stop {
                return Err("the journal is closed".into());
            }
            s = self
                .cv
                .wait_timeout(s, Duration::from_secs(1))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Ok(())
    }

    fn syncer(self: Arc<Self>) {
        let mut s = self.lock();
        loop {
            // Sync at once for a waiter; otherwise within SYNC_DELAY of a
            // write (power-loss durability for what nobody waits on).
            while !s.stop && s.wanted <= s.durable {
                if s.written > s.durable {
                    let (g, t) = self
                        .cv
                        .wait_timeout(s, SYNC_DELAY)
                        .unwrap_or_else(PoisonError::into_inner);
                    s = g;
                    if t.timed_out() {
                        break;
                    }
                } else {
                    s = self.cv.wait(s).unwrap_or_else(PoisonError::into_inner);
                }
            }
            if s.stop {
                return;
            }
            let target = s.written;
            let file = s.file.clone();
            drop(s);
            let r = file.map_or(Ok(()), |f| f.sync_data());
            s = self.lock();
            match r {
                Ok(()) => {
                    s.durable = s.durable.max(target);
                    s.error = None;
                }
                Err(e) => s.error = Some(format!("syncing the journal: {e}")),
            }
            self.cv.notify_all();
        }
    }
}

/// The append side, owned by the switch.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    gen: u64,
    file: Arc<File>,
    /// Records in the journal files since the last snapshot.
    since_snapshot: u64,
    durable: Arc<Durable>,
    syncer: Option<std::thread::JoinHandle<()>>,
    compactor: Option<std::thread::JoinHandle<()>>,
    buf: Vec<u8>,
    /// Scratch for one flow's text.
    text: String,
}

fn open_append(path: &Path) -> Result<File, StateError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| StateError::Io {
            path: path.to_path_buf(),
            source,
        })
}

impl Journal {
    /// Writes `snap` (the complete state) synchronously and starts journal
    /// `snap.journal` after it; older journals are deleted.
    pub fn start(dir: &Path, snap: &Snapshot) -> Result<Journal, StateError> {
        write_snapshot(dir, snap).map_err(|message| StateError::Corrupt {
            path: dir.join(STATE_FILE),
            message,
        })?;
        // A leftover file of this generation was covered by nothing: empty it.
        let _ = std::fs::remove_file(journal_path(dir, snap.journal));
        Journal::open(dir, snap.journal, 0)
    }

    /// Continues after a restore without rewriting the snapshot: the
    /// state file already names the first journal of the chain, so a new
    /// file after the last one extends it. `since_snapshot` is the number
    /// of records replayed (they count towards the next compaction).
    pub fn resume(dir: &Path, since_snapshot: u64) -> Result<Journal, StateError> {
        let gen = journal_gens(dir).last().map_or(1, |g| g + 1);
        Journal::open(dir, gen, since_snapshot)
    }

    /// Appends to journal `gen` with a syncer thread.
    fn open(dir: &Path, gen: u64, since_snapshot: u64) -> Result<Journal, StateError> {
        let path = journal_path(dir, gen);
        let file = Arc::new(open_append(&path)?);
        let durable = Arc::new(Durable::default());
        durable.lock().file = Some(file.clone());
        let d = durable.clone();
        let syncer = std::thread::Builder::new()
            .name("rvs-journal".into())
            .spawn(move || d.syncer())
            .map_err(|source| StateError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            gen,
            file,
            since_snapshot,
            durable,
            syncer: Some(syncer),
            compactor: None,
            buf: Vec::new(),
            text: String::new(),
        })
    }

    /// The shared durability handle.
    pub fn durable(&self) -> Arc<Durable> {
        self.durable.clone()
    }

    /// The batch number a waiter must wait for to cover everything
    /// appended so far.
    pub fn ticket(&self) -> u64 {
        self.durable.lock().written
    }

    /// Records since the last snapshot.
    pub fn since_snapshot(&self) -> u64 {
        self.since_snapshot
    }

    /// Appends `records` as one batch (one `write`). Returns the batch
    /// number to wait for.
    pub fn append(&mut self, records: &[Pending]) -> Result<u64, String> {
        if records.is_empty() {
            return Ok(self.ticket());
        }
        self.buf.clear();
        for r in records {
            let (tag, b, e) = match r {
                Pending::Add(b, e) => ("{\"add\":{\"b\":", b, e),
                Pending::Del(b, e) => ("{\"del\":{\"b\":", b, e),
                Pending::Other(r) => {
                    serde_json::to_writer(&mut self.buf, r).map_err(|e| e.to_string())?;
                    self.buf.push(b'\n');
                    continue;
                }
            };
            self.text.clear();
            let mut view = crate::datapath::pipeline::view_of(e);
            if matches!(r, Pending::Del(..)) {
                view.actions = &[];
            }
            syntax::put_flow(&mut self.text, &view, None);
            self.buf.extend_from_slice(tag.as_bytes());
            serde_json::to_writer(&mut self.buf, &**b).map_err(|e| e.to_string())?;
            self.buf.extend_from_slice(b",\"f\":");
            put_json_str(&mut self.buf, &self.text)?;
            self.buf.extend_from_slice(b"}}\n");
        }
        (&*self.file).write_all(&self.buf).map_err(|e| {
            format!(
                "writing {}: {e}",
                journal_path(&self.dir, self.gen).display()
            )
        })?;
        self.since_snapshot += records.len() as u64;
        if self.buf.capacity() > BUF_KEEP {
            self.buf = Vec::new();
        }
        let mut s = self.durable.lock();
        s.written += 1;
        Ok(s.written)
    }

    /// True while a background snapshot is being written.
    pub fn compacting(&self) -> bool {
        self.compactor.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Starts a new journal file and writes `snap` (which must describe
    /// the state as of now) in the background; the files it covers are
    /// deleted when it is on disk. `snap.journal` is set here.
    pub fn compact(&mut self, mut snap: Snapshot) -> Result<(), String> {
        if let Some(h) = self.compactor.take() {
            let _ = h.join();
        }
        // Everything in the old file must be durable before a waiter can
        // be told so by syncs of the new file only.
        let _ = self.file.sync_data();
        let gen = self.gen + 1;
        let path = journal_path(&self.dir, gen);
        let file = Arc::new(open_append(&path).map_err(|e| e.to_string())?);
        {
            let mut s = self.durable.lock();
            s.durable = s.written;
            s.file = Some(file.clone());
        }
        self.file = file;
        self.gen = gen;
        self.since_snapshot = 0;
        snap.journal = gen;
        let dir = self.dir.clone();
        self.compactor = std::thread::Builder::new()
            .name("rvs-snapshot".into())
            .spawn(move || {
                let start = std::time::Instant::now();
                match write_snapshot(&dir, &snap) {
                    Ok(()) => log::debug!(
                        "state snapshot written in {} ms",
                        start.elapsed().as_millis()
                    ),
                    Err(e) => log::error!("writing the state snapshot: {e}"),
                }
            })
            .ok();
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Some(h) = self.compactor.take() {
            let _ = h.join();
        }
        let _ = self.file.sync_data();
        {
            let mut s = self.durable.lock();
            s.durable = s.written;
            s.stop = true;
        }
        self.durable.cv.notify_all();
        if let Some(h) = self.syncer.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::BridgeConfig;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-journal-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn bridge(name: &str) -> BridgeConfig {
        Config::parse(&format!("[[bridge]]\nname = \"{name}\"\n"), "t")
            .unwrap()
            .bridge
            .remove(0)
    }

    fn add(b: &str, f: &str) -> Record {
        Record::Add {
            b: b.into(),
            f: f.into(),
        }
    }

    #[test]
    fn replay_follows_flows_and_configs_in_order() {
        let cfg = Config {
            bridge: vec![bridge("br0")],
            ..Config::default()
        };
        let recs = vec![
            add("br0", "priority=5,ip,actions=drop"),
            add("br0", "priority=5,ip,actions=output:1"),
            Record::Del {
                b: "br0".into(),
                f: "priority=0,actions=drop".into(),
            },
            add("br1", "priority=1,actions=drop"),
            Record::Config {
                cfg: Box::new(Config {
                    bridge: vec![bridge("br1")],
                    ..Config::default()
                }),
            },
        ];
        let out = replay(cfg.clone(), recs).unwrap();
        assert_eq!(out.bridge.len(), 1);
        assert_eq!(out.bridge[0].name, "br1");
        let flows: Vec<&str> = out.bridge[0]
            .flow
            .iter()
            .flatten()
            .map(|f| f.flow.as_str())
            .collect();
        assert_eq!(flows, vec!["priority=1,actions=drop"]);
        let out = replay(cfg, vec![add("br0", "priority=5,ip,actions=drop")]).unwrap();
        let flows: Vec<&str> = out.bridge[0]
            .flow
            .iter()
            .flatten()
            .map(|f| f.flow.as_str())
            .collect();
        assert_eq!(
            flows,
            vec!["priority=0,actions=NORMAL", "priority=5,ip,actions=drop"]
        );
    }

    #[test]
    fn flow_records_are_written_as_their_records_would_serialize() {
        let d = tempdir("lines");
        let snap = Snapshot {
            cfg: Config::default(),
            flows: Vec::new(),
            journal: 1,
        };
        let mut j = Journal::start(&d, &snap).unwrap();
        let text = "cookie=0x5, table=3, idle_timeout=9, priority=7,ip,nw_src=10.0.0.0/8,nw_dst=192.168.1.250 actions=output:2,note:22.5c.00.00.00.00";
        let flow = syntax::parse_flow(text, &|_| None).unwrap();
        assert_eq!(syntax::fmt_flow(&flow, None), text);
        let e = Arc::new(crate::datapath::pipeline::new_entry(flow, 0, 1));
        let b: Arc<str> = "br\"0".into();
        j.append(&[Pending::Add(b.clone(), e.clone()), Pending::Del(b, e)])
            .unwrap();
        let got = std::fs::read_to_string(journal_path(&d, 1)).unwrap();
        let want = |r: Record| serde_json::to_string(&r).unwrap();
        let del = "cookie=0x5, table=3, idle_timeout=9, priority=7,ip,nw_src=10.0.0.0/8,nw_dst=192.168.1.250 actions=drop";
        let expect = format!(
            "{}\n{}\n",
            want(add("br\"0", text)),
            want(Record::Del {
                b: "br\"0".into(),
                f: del.into()
            })
        );
        assert_eq!(got, expect);
        // Replay finds the deleted flow by its table, priority and match.
        let cfg = Config {
            bridge: vec![bridge("br0")],
            ..Config::default()
        };
        let mut recs = vec![
            add("br0", text),
            serde_json::from_str(expect.lines().nth(1).unwrap()).unwrap(),
        ];
        if let Record::Del { b, .. } = &mut recs[1] {
            *b = "br0".into();
        }
        let out = replay(cfg, recs).unwrap();
        assert_eq!(out.bridge[0].flow.as_ref().unwrap().len(), 1);
        drop(j);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn torn_tail_is_dropped_but_corruption_elsewhere_is_refused() {
        let d = tempdir("torn");
        let good = serde_json::to_string(&add("br0", "priority=1,actions=drop")).unwrap();
        std::fs::write(
            journal_path(&d, 3),
            format!("{good}\n{good}\n{{\"add\":{{\"b\""),
        )
        .unwrap();
        assert_eq!(read_journals(&d, 3).unwrap().len(), 2);
        assert_eq!(read_journals(&d, 4).unwrap().len(), 0);
        std::fs::write(journal_path(&d, 3), format!("{good}\nxx\n{good}\n")).unwrap();
        let e = read_journals(&d, 0).unwrap_err().to_string();
        assert!(e.contains("journal.3") && e.contains("line 2"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn appends_become_durable_and_compaction_keeps_everything() {
        let d = tempdir("dur");
        let snap = Snapshot {
            cfg: Config {
                bridge: vec![bridge("br0")],
                ..Config::default()
            },
            flows: vec![Vec::new()],
            journal: 1,
        };
        let mut j = Journal::start(&d, &snap).unwrap();
        let dur = j.durable();
        let seq = j
            .append(&[Pending::Other(add("br0", "priority=7,actions=drop"))])
            .unwrap();
        dur.wait(seq).unwrap();
        let t = std::thread::spawn(move || dur.wait(seq));
        t.join().unwrap().unwrap();
        // Restore = snapshot + journals.
        let load = |d: &Path| {
            let text = std::fs::read_to_string(d.join(STATE_FILE)).unwrap();
            let cfg = Config::parse(&text, "state").unwrap();
            let from = cfg.journal.unwrap();
            replay(cfg, read_journals(d, from).unwrap()).unwrap()
        };
        let flows = |c: &Config| -> Vec<String> {
            c.bridge[0]
                .flow
                .iter()
                .flatten()
                .map(|f| f.flow.clone())
                .collect()
        };
        assert_eq!(flows(&load(&d)), vec!["priority=7,actions=drop"]);
        // Compaction with an entry list standing for the live table.
        let f = syntax::parse_flow("priority=7,actions=drop", &|_| None).unwrap();
        let e = Arc::new(crate::datapath::pipeline::new_entry(f, 0, 1));
        j.compact(Snapshot {
            cfg: load(&d),
            flows: vec![vec![e]],
            journal: 0,
        })
        .unwrap();
        j.append(&[Pending::Other(add("br0", "priority=8,actions=drop"))])
            .unwrap();
        drop(j);
        assert_eq!(journal_gens(&d), vec![2], "covered journal deleted");
        assert_eq!(
            flows(&load(&d)),
            vec!["priority=7 actions=drop", "priority=8,actions=drop"]
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
