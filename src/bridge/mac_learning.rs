//! MAC learning table: which port a (VLAN, MAC) was last seen on.
//!
//! # What?
//! [`MacTable`] maps a (VLAN, unicast source MAC) to the port it was last
//! received on, with an idle timeout ("aging", default 300 s, 15–3600 s) and
//! a cap on the number of entries (default 8192, 10–1,000,000). It is Open
//! vSwitch's `lib/mac-learning.c` without static entries, flood VLANs and the
//! gratuitous-ARP lock:
//! - [`MacTable::learn`] is `mac_learning_update`: multicast sources are never
//!   learned (`mac_learning_may_learn`); a known entry is refreshed, at most
//!   once a second (`is_mac_learning_update_needed`: `age > 0`); a MAC seen on
//!   another port moves to it (counted in `moved`, no flap damping).
//! - When the table is full, inserting evicts the least recently refreshed
//!   entry of the port that holds the most entries (`mac_learning_insert__` →
//!   `evict_mac_entry_fairly`), so one port flooding random source MACs
//!   cannot push every other port's hosts out.
//! - [`MacTable::expire`] is `mac_learning_run`: removes entries idle for the
//!   aging time, and trims the table if its size was lowered.
//! - [`MacTable::lookup`] is `mac_learning_lookup`: multicast destinations
//!   are never found.
//!
//! # Design
//! Entries live in a slab (`Vec<Entry>` with a free list) indexed by `u32`;
//! a hash map with a keyed multiply-fold hash maps the packed
//! `(vlan << 48) | mac` key to the slot. Each entry is on two intrusive
//! doubly linked lists, like OVS's `lru_node` and `port_lru_node`: the global
//! LRU (oldest first, used by aging) and its port's LRU (used by fair
//! eviction). Refreshing an entry moves it to the tail of both lists and
//! gives it a new `stamp` from a counter, so both lists stay sorted by stamp.
//! Per-port bookkeeping (list ends, entry count) sits in a small slot vector;
//! eviction scans it for the largest count (OVS uses a heap; the number of
//! ports per bridge is small, and eviction only happens when the table is
//! full). Ties between equally loaded ports go to the port whose oldest entry
//! is oldest, so eviction is deterministic.
//!
//! # Invariants
//! - `map.len()` == number of live entries == sum of port counts <= `max_entries`
//!   (after every public call).
//! - Both lists hold exactly the live entries, sorted by ascending `stamp`.
//! - A port slot exists iff its count is > 0.
//! - `now_ms` passed to successive calls never decreases (the caller's
//!   monotonic clock); if it does, aging is merely less precise.
//!
//! # Thread-safety
//! None needed: the table is owned by the single datapath worker that owns
//! the bridge. The control plane asks that worker for snapshots and flushes.
//!
//! # Limits
//! `learn` and `lookup` are O(1), except eviction, which is O(ports).
//! `expire` is O(expired entries), `flush_port` O(entries of that port),
//! `flush_vlan` and `snapshot` O(entries).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use flowtable::{Mac, PortNo, Vid};

/// Default maximum number of entries (OVS `MAC_DEFAULT_MAX`).
pub const MAC_TABLE_SIZE_DEFAULT: u32 = 8192;
/// Smallest allowed table size (OVS `mac_learning_set_max_entries`).
pub const MAC_TABLE_SIZE_MIN: u32 = 10;
/// Largest allowed table size (OVS `mac_learning_set_max_entries`).
pub const MAC_TABLE_SIZE_MAX: u32 = 1_000_000;
/// Default aging time in seconds (OVS `MAC_ENTRY_DEFAULT_IDLE_TIME`).
pub const MAC_AGING_TIME_DEFAULT_S: u32 = 300;
/// Shortest allowed aging time in seconds (OVS `normalize_idle_time`).
pub const MAC_AGING_TIME_MIN_S: u32 = 15;
/// Longest allowed aging time in seconds (OVS `normalize_idle_time`).
pub const MAC_AGING_TIME_MAX_S: u32 = 3600;

/// An entry is refreshed (moved to the LRU tail) at most this often, like
/// OVS, whose `is_mac_learning_update_needed` refreshes only when the
/// entry's age in whole seconds is above zero.
const REFRESH_MS: u64 = 1000;

/// Slab index meaning "no entry".
const NIL: u32 = u32::MAX;

/// Errors from configuring a [`MacTable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacTableError {
    /// The aging time is outside 15–3600 s.
    #[error(
        "mac-aging-time {0} s is out of range ({MAC_AGING_TIME_MIN_S}-{MAC_AGING_TIME_MAX_S})"
    )]
    AgingTimeOutOfRange(u32),
    /// The table size is outside 10–1,000,000 entries.
    #[error("mac-table-size {0} is out of range ({MAC_TABLE_SIZE_MIN}-{MAC_TABLE_SIZE_MAX})")]
    TableSizeOutOfRange(u32),
}

/// What [`MacTable::learn`] did with a source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Learn {
    /// Learning was not attempted (dropped before learning, or a trace).
    #[default]
    Off,
    /// The source is a multicast address, which is never learned.
    MulticastSource,
    /// A new entry was added (possibly after evicting another one).
    New,
    /// The entry existed on this port; its idle timer restarted.
    Known,
    /// The entry existed on another port and now points here.
    Moved {
        /// The port the MAC was learned on before.
        from: PortNo,
    },
}

/// One row of `fdb-show` (OVS `ovs-appctl fdb/show`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    /// Port the MAC was last seen on.
    pub port: PortNo,
    /// VLAN the MAC was learned in (0: the untagged VLAN of trunk ports).
    pub vlan: Vid,
    /// The learned source MAC.
    pub mac: Mac,
    /// Whole seconds since the entry was last refreshed.
    pub age_s: u64,
}

/// Lifetime counters, as OVS's `total_learned` etc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MacTableStats {
    /// New entries added.
    pub learned: u64,
    /// Entries removed because they aged out (or the table was shrunk).
    pub expired: u64,
    /// Entries removed to make room for a new one.
    pub evicted: u64,
    /// Entries whose port changed.
    pub moved: u64,
}

/// One learned (VLAN, MAC) → port binding, a slab slot.
#[derive(Debug, Clone)]
struct Entry {
    /// Packed `(vlan << 48) | mac`; meaningless while on the free list.
    key: u64,
    /// Index of the owning port slot in `MacTable::ports`.
    port_slot: u32,
    /// `now_ms` of the last refresh.
    last_seen_ms: u64,
    /// Refresh order: larger is more recent.
    stamp: u64,
    /// Global LRU links (the free list reuses `lru_next`).
    lru_prev: u32,
    lru_next: u32,
    /// Port LRU links.
    port_prev: u32,
    port_next: u32,
}

/// Per-port bookkeeping (OVS `struct mac_learning_port`).
#[derive(Debug, Clone)]
struct PortSlot {
    /// The port, or `PortNo::NONE` while the slot is free.
    port: PortNo,
    /// Oldest entry of this port.
    head: u32,
    /// Newest entry of this port.
    tail: u32,
    /// Number of entries on this port (0 iff the slot is free).
    count: u32,
}

/// Keyed hasher for the packed `u64` keys: one 64×64→128 multiply, folded.
/// Keyed with a random seed so that sources cannot aim collisions.
#[derive(Debug, Clone, Copy)]
struct MacHashBuilder {
    /// Random per-table seed.
    seed: u64,
}

/// The hasher built by [`MacHashBuilder`].
#[derive(Debug, Clone, Copy)]
struct MacHasher {
    /// Running state.
    state: u64,
}

/// Odd multiplier (from the fractional digits of pi).
const MULT: u64 = 0x243f_6a88_85a3_08d3;

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for MacHasher {
    #[inline]
    fn finish(&self) -> u64 {
        fold_mul(self.state, MULT ^ 0x1319_8a2e_0370_7344)
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.state = fold_mul(self.state ^ v, MULT);
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
}

impl BuildHasher for MacHashBuilder {
    type Hasher = MacHasher;

    #[inline]
    fn build_hasher(&self) -> MacHasher {
        MacHasher { state: self.seed }
    }
}

/// Packs a (VLAN, MAC) pair into one word: VLAN in bits 48..60.
#[inline]
fn pack(mac: Mac, vlan: u16) -> u64 {
    let m = mac.0;
    (u64::from(vlan & 0x0fff) << 48)
        | u64::from(m[0]) << 40
        | u64::from(m[1]) << 32
        | u64::from(m[2]) << 24
        | u64::from(m[3]) << 16
        | u64::from(m[4]) << 8
        | u64::from(m[5])
}

/// Inverse of [`pack`].
#[inline]
fn unpack(key: u64) -> (Mac, Vid) {
    let b = key.to_be_bytes();
    (
        Mac([b[2], b[3], b[4], b[5], b[6], b[7]]),
        Vid(((key >> 48) & 0x0fff) as u16),
    )
}

/// The MAC learning table of one bridge. See the module docs.
#[derive(Debug, Clone)]
pub struct MacTable {
    /// (VLAN, MAC) → slab index.
    map: HashMap<u64, u32, MacHashBuilder>,
    /// Entry slab; free slots are chained through `lru_next` from `free`.
    entries: Vec<Entry>,
    /// First free slab slot, or `NIL`.
    free: u32,
    /// Oldest live entry, or `NIL`.
    lru_head: u32,
    /// Newest live entry, or `NIL`.
    lru_tail: u32,
    /// Port bookkeeping; free slots have `count == 0`.
    ports: Vec<PortSlot>,
    /// Free port slots.
    free_ports: Vec<u32>,
    /// Next refresh stamp.
    next_stamp: u64,
    /// Maximum number of entries.
    max_entries: u32,
    /// Idle time after which an entry expires, in milliseconds.
    aging_ms: u64,
    /// Lifetime counters.
    stats: MacTableStats,
}

impl Default for MacTable {
    fn default() -> Self {
        MacTable::new()
    }
}

impl MacTable {
    /// An empty table with OVS's defaults (8192 entries, 300 s aging) and a
    /// random hash seed.
    pub fn new() -> MacTable {
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        MacTable::with_seed(seed)
    }

    /// An empty table with OVS's defaults and the given hash seed (for
    /// reproducible tests).
    pub fn with_seed(seed: u64) -> MacTable {
        MacTable {
            map: HashMap::with_hasher(MacHashBuilder { seed }),
            entries: Vec::new(),
            free: NIL,
            lru_head: NIL,
            lru_tail: NIL,
            ports: Vec::new(),
            free_ports: Vec::new(),
            next_stamp: 0,
            max_entries: MAC_TABLE_SIZE_DEFAULT,
            aging_ms: u64::from(MAC_AGING_TIME_DEFAULT_S) * 1000,
            stats: MacTableStats::default(),
        }
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is learned.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Maximum number of entries.
    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }

    /// Aging time in seconds.
    pub fn aging_time_s(&self) -> u32 {
        (self.aging_ms / 1000) as u32
    }

    /// Lifetime counters.
    pub fn stats(&self) -> MacTableStats {
        self.stats
    }

    /// Number of entries learned on `port`.
    pub fn port_count(&self, port: PortNo) -> usize {
        self.find_port_slot(port)
            .map_or(0, |s| self.ports[s as usize].count as usize)
    }

    /// Changes the maximum number of entries (10–1,000,000). A smaller size
    /// than the current count removes the least recently refreshed entries
    /// at once (OVS does it on its next `mac_learning_run`).
    pub fn set_max_entries(&mut self, n: u32) -> Result<(), MacTableError> {
        if !(MAC_TABLE_SIZE_MIN..=MAC_TABLE_SIZE_MAX).contains(&n) {
            return Err(MacTableError::TableSizeOutOfRange(n));
        }
        self.max_entries = n;
        while self.map.len() > n as usize && self.lru_head != NIL {
            self.stats.expired += 1;
            self.remove(self.lru_head);
        }
        Ok(())
    }

    /// Changes the aging time (15–3600 s). Existing entries keep their last
    /// refresh time, so they expire relative to the new value, as OVS's
    /// `mac_learning_set_idle_time` shifts their deadlines.
    pub fn set_aging_time_s(&mut self, s: u32) -> Result<(), MacTableError> {
        if !(MAC_AGING_TIME_MIN_S..=MAC_AGING_TIME_MAX_S).contains(&s) {
            return Err(MacTableError::AgingTimeOutOfRange(s));
        }
        self.aging_ms = u64::from(s) * 1000;
        Ok(())
    }

    #[inline]
    fn is_expired(&self, e: &Entry, now_ms: u64) -> bool {
        now_ms >= e.last_seen_ms.saturating_add(self.aging_ms)
    }

    /// The port `mac` was learned on in `vlan`, if any (OVS
    /// `mac_learning_lookup`). Multicast addresses are never found, nor are
    /// entries already past their aging time that `expire` has not yet
    /// removed.
    #[inline]
    pub fn lookup(&self, mac: Mac, vlan: Vid, now_ms: u64) -> Option<PortNo> {
        if mac.is_multicast() {
            return None;
        }
        let idx = *self.map.get(&pack(mac, vlan.0))?;
        let e = &self.entries[idx as usize];
        if self.is_expired(e, now_ms) {
            return None;
        }
        Some(self.ports[e.port_slot as usize].port)
    }

    /// Records that `mac` was received on `port` in `vlan` (OVS
    /// `mac_learning_update` for a non-bond port, without the gratuitous ARP
    /// lock). See [`Learn`] for the outcomes.
    #[inline]
    pub fn learn(&mut self, mac: Mac, vlan: Vid, port: PortNo, now_ms: u64) -> Learn {
        // mac_learning_may_learn: never learn group addresses.
        if mac.is_multicast() {
            return Learn::MulticastSource;
        }
        let key = pack(mac, vlan.0);
        let Some(&idx) = self.map.get(&key) else {
            self.insert(key, port, now_ms);
            return Learn::New;
        };
        let (old_slot, last_seen, expired) = {
            let e = &self.entries[idx as usize];
            (e.port_slot, e.last_seen_ms, self.is_expired(e, now_ms))
        };
        let old_port = self.ports[old_slot as usize].port;
        if old_port == port {
            // is_mac_learning_update_needed: refresh only if age > 0 s.
            if expired || now_ms.saturating_sub(last_seen) >= REFRESH_MS {
                self.touch(idx, now_ms);
            }
            // An entry that had aged out but was not yet expired counts as
            // newly learned: OVS would have removed it already.
            if expired {
                self.stats.learned += 1;
                return Learn::New;
            }
            return Learn::Known;
        }
        // update_learning_table__: the MAC moved to another port.
        self.port_unlink(idx);
        let slot = self.port_slot_for(port);
        self.entries[idx as usize].port_slot = slot;
        self.port_push_back(idx);
        self.lru_unlink(idx);
        self.lru_push_back(idx);
        self.stamp(idx, now_ms);
        if expired {
            self.stats.learned += 1;
            Learn::New
        } else {
            self.stats.moved += 1;
            Learn::Moved { from: old_port }
        }
    }

    /// Removes entries idle for at least the aging time (and any above the
    /// size limit). Returns how many were removed. Call it periodically
    /// (e.g. once a second) with the current time.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let mut n = 0;
        while self.lru_head != NIL {
            let e = &self.entries[self.lru_head as usize];
            if self.map.len() <= self.max_entries as usize && !self.is_expired(e, now_ms) {
                break;
            }
            self.remove(self.lru_head);
            self.stats.expired += 1;
            n += 1;
        }
        n
    }

    /// Removes every entry (OVS `mac_learning_flush`). Returns the count.
    pub fn flush(&mut self) -> usize {
        let n = self.map.len();
        self.map.clear();
        self.entries.clear();
        self.free = NIL;
        self.lru_head = NIL;
        self.lru_tail = NIL;
        self.ports.clear();
        self.free_ports.clear();
        n
    }

    /// Removes the entries learned on `port` (OVS `bundle_flush_macs`), for
    /// a deleted port or one whose VLAN configuration changed.
    pub fn flush_port(&mut self, port: PortNo) -> usize {
        let Some(slot) = self.find_port_slot(port) else {
            return 0;
        };
        let mut n = 0;
        // The slot is freed when its last entry goes; read head each time.
        while self.ports[slot as usize].port == port && self.ports[slot as usize].count > 0 {
            let head = self.ports[slot as usize].head;
            self.remove(head);
            n += 1;
        }
        n
    }

    /// Removes the entries learned in `vlan`.
    pub fn flush_vlan(&mut self, vlan: Vid) -> usize {
        let mut n = 0;
        let mut i = self.lru_head;
        while i != NIL {
            let next = self.entries[i as usize].lru_next;
            if unpack(self.entries[i as usize].key).1 == vlan {
                self.remove(i);
                n += 1;
            }
            i = next;
        }
        n
    }

    /// The table for `fdb-show`, least recently refreshed first (the order
    /// `ovs-appctl fdb/show` prints). Entries past their aging time that
    /// `expire` has not removed yet are left out.
    pub fn snapshot(&self, now_ms: u64) -> Vec<FdbEntry> {
        let mut out = Vec::with_capacity(self.map.len());
        let mut i = self.lru_head;
        while i != NIL {
            let e = &self.entries[i as usize];
            if !self.is_expired(e, now_ms) {
                let (mac, vlan) = unpack(e.key);
                out.push(FdbEntry {
                    port: self.ports[e.port_slot as usize].port,
                    vlan,
                    mac,
                    age_s: now_ms.saturating_sub(e.last_seen_ms) / 1000,
                });
            }
            i = e.lru_next;
        }
        out
    }

    // ---- internals ------------------------------------------------------

    fn find_port_slot(&self, port: PortNo) -> Option<u32> {
        self.ports
            .iter()
            .position(|p| p.count > 0 && p.port == port)
            .map(|i| i as u32)
    }

    /// The slot of `port`, allocating one if it has no entries yet.
    fn port_slot_for(&mut self, port: PortNo) -> u32 {
        if let Some(s) = self.find_port_slot(port) {
            return s;
        }
        let slot = PortSlot {
            port,
            head: NIL,
            tail: NIL,
            count: 0,
        };
        if let Some(s) = self.free_ports.pop() {
            self.ports[s as usize] = slot;
            s
        } else {
            self.ports.push(slot);
            (self.ports.len() - 1) as u32
        }
    }

    /// Adds a new entry, evicting one first if the table is full
    /// (`mac_learning_insert__`).
    fn insert(&mut self, key: u64, port: PortNo, now_ms: u64) {
        if self.map.len() >= self.max_entries as usize {
            self.evict_fairly();
        }
        // Allocate the port slot after eviction: eviction may free slots.
        let slot = self.port_slot_for(port);
        let entry = Entry {
            key,
            port_slot: slot,
            last_seen_ms: now_ms,
            stamp: 0,
            lru_prev: NIL,
            lru_next: NIL,
            port_prev: NIL,
            port_next: NIL,
        };
        let idx = if self.free != NIL {
            let i = self.free;
            self.free = self.entries[i as usize].lru_next;
            self.entries[i as usize] = entry;
            i
        } else {
            self.entries.push(entry);
            (self.entries.len() - 1) as u32
        };
        self.map.insert(key, idx);
        self.lru_push_back(idx);
        self.port_push_back(idx);
        self.stamp(idx, now_ms);
        self.stats.learned += 1;
    }

    /// `evict_mac_entry_fairly`: remove the oldest entry of the port with
    /// the most entries; ties go to the port whose oldest entry is oldest.
    fn evict_fairly(&mut self) {
        let mut best: Option<(u32, u64, u32)> = None; // (count, head stamp, slot)
        for (s, p) in self.ports.iter().enumerate() {
            if p.count == 0 {
                continue;
            }
            let stamp = self.entries[p.head as usize].stamp;
            let better = match best {
                None => true,
                Some((c, st, _)) => p.count > c || (p.count == c && stamp < st),
            };
            if better {
                best = Some((p.count, stamp, s as u32));
            }
        }
        if let Some((_, _, slot)) = best {
            let head = self.ports[slot as usize].head;
            self.remove(head);
            self.stats.evicted += 1;
        }
    }

    /// Marks `idx` as just refreshed: new stamp, tail of both lists.
    fn touch(&mut self, idx: u32, now_ms: u64) {
        self.lru_unlink(idx);
        self.lru_push_back(idx);
        self.port_detach(idx);
        self.port_attach(idx);
        self.stamp(idx, now_ms);
    }

    fn stamp(&mut self, idx: u32, now_ms: u64) {
        let e = &mut self.entries[idx as usize];
        e.last_seen_ms = now_ms;
        e.stamp = self.next_stamp;
        self.next_stamp += 1;
    }

    /// Unlinks and frees entry `idx` (`mac_learning_expire`).
    fn remove(&mut self, idx: u32) {
        self.lru_unlink(idx);
        self.port_unlink(idx);
        let key = self.entries[idx as usize].key;
        self.map.remove(&key);
        self.entries[idx as usize].lru_next = self.free;
        self.free = idx;
    }

    fn lru_push_back(&mut self, idx: u32) {
        let tail = self.lru_tail;
        {
            let e = &mut self.entries[idx as usize];
            e.lru_prev = tail;
            e.lru_next = NIL;
        }
        if tail == NIL {
            self.lru_head = idx;
        } else {
            self.entries[tail as usize].lru_next = idx;
        }
        self.lru_tail = idx;
    }

    fn lru_unlink(&mut self, idx: u32) {
        let (prev, next) = {
            let e = &self.entries[idx as usize];
            (e.lru_prev, e.lru_next)
        };
        if prev == NIL {
            self.lru_head = next;
        } else {
            self.entries[prev as usize].lru_next = next;
        }
        if next == NIL {
            self.lru_tail = prev;
        } else {
            self.entries[next as usize].lru_prev = prev;
        }
    }

    /// Appends `idx` to the LRU of the port slot it names and counts it.
    fn port_push_back(&mut self, idx: u32) {
        self.port_attach(idx);
        let slot = self.entries[idx as usize].port_slot as usize;
        self.ports[slot].count += 1;
    }

    /// Removes `idx` from its port's LRU and count; frees the slot when it
    /// empties.
    fn port_unlink(&mut self, idx: u32) {
        self.port_detach(idx);
        let slot = self.entries[idx as usize].port_slot as usize;
        self.ports[slot].count -= 1;
        if self.ports[slot].count == 0 {
            self.ports[slot].port = PortNo::NONE;
            self.free_ports.push(slot as u32);
        }
    }

    /// Appends `idx` to the LRU list of its port slot (count unchanged).
    fn port_attach(&mut self, idx: u32) {
        let slot = self.entries[idx as usize].port_slot as usize;
        let tail = self.ports[slot].tail;
        {
            let e = &mut self.entries[idx as usize];
            e.port_prev = tail;
            e.port_next = NIL;
        }
        if tail == NIL {
            self.ports[slot].head = idx;
        } else {
            self.entries[tail as usize].port_next = idx;
        }
        self.ports[slot].tail = idx;
    }

    /// Removes `idx` from the LRU list of its port slot (count unchanged).
    fn port_detach(&mut self, idx: u32) {
        let (slot, prev, next) = {
            let e = &self.entries[idx as usize];
            (e.port_slot as usize, e.port_prev, e.port_next)
        };
        if prev == NIL {
            self.ports[slot].head = next;
        } else {
            self.entries[prev as usize].port_next = next;
        }
        if next == NIL {
            self.ports[slot].tail = prev;
        } else {
            self.entries[next as usize].port_prev = prev;
        }
    }

    /// Checks every structural invariant (tests only).
    #[cfg(test)]
    fn check_invariants(&self) {
        // Global list: all live entries, ascending stamps.
        let mut n = 0;
        let mut i = self.lru_head;
        let mut prev = NIL;
        let mut last_stamp = None;
        while i != NIL {
            let e = &self.entries[i as usize];
            assert_eq!(e.lru_prev, prev);
            assert_eq!(self.map.get(&e.key), Some(&i));
            if let Some(s) = last_stamp {
                assert!(e.stamp > s);
            }
            last_stamp = Some(e.stamp);
            prev = i;
            i = e.lru_next;
            n += 1;
        }
        assert_eq!(self.lru_tail, prev);
        assert_eq!(n, self.map.len());
        assert!(n <= self.max_entries as usize);
        // Port lists: counts add up, each entry points at its slot.
        let mut total = 0;
        for (s, p) in self.ports.iter().enumerate() {
            if p.count == 0 {
                assert!(self.free_ports.contains(&(s as u32)));
                continue;
            }
            let mut c = 0;
            let mut i = p.head;
            let mut prev = NIL;
            while i != NIL {
                let e = &self.entries[i as usize];
                assert_eq!(e.port_slot as usize, s);
                assert_eq!(e.port_prev, prev);
                prev = i;
                i = e.port_next;
                c += 1;
            }
            assert_eq!(p.tail, prev);
            assert_eq!(c, p.count);
            total += c;
        }
        assert_eq!(total as usize, n);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mac(n: u32) -> Mac {
        let b = n.to_be_bytes();
        Mac([0x02, 0, b[0], b[1], b[2], b[3]])
    }

    const P1: PortNo = PortNo(1);
    const P2: PortNo = PortNo(2);
    const P3: PortNo = PortNo(3);
    const V10: Vid = Vid(10);

    #[test]
    fn pack_round_trips() {
        let m = Mac([0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54]);
        assert_eq!(unpack(pack(m, 4095)), (m, Vid(4095)));
        assert_eq!(unpack(pack(m, 0)), (m, Vid(0)));
    }

    #[test]
    fn learns_and_looks_up_per_vlan() {
        let mut t = MacTable::with_seed(1);
        assert_eq!(t.learn(mac(1), V10, P1, 0), Learn::New);
        assert_eq!(t.lookup(mac(1), V10, 0), Some(P1));
        // Per (VLAN, MAC): the same MAC in another VLAN is unknown.
        assert_eq!(t.lookup(mac(1), Vid(20), 0), None);
        assert_eq!(t.learn(mac(1), Vid(20), P2, 0), Learn::New);
        assert_eq!(t.lookup(mac(1), Vid(20), 0), Some(P2));
        assert_eq!(t.lookup(mac(1), V10, 0), Some(P1));
        assert_eq!(t.learn(mac(1), V10, P1, 10), Learn::Known);
        assert_eq!(t.len(), 2);
        assert_eq!(t.stats().learned, 2);
        t.check_invariants();
    }

    /// mac_learning_may_learn: never learn a multicast source.
    #[test]
    fn never_learns_multicast_source() {
        let mut t = MacTable::with_seed(1);
        let mcast = Mac([0x01, 0x00, 0x5e, 0, 0, 1]);
        assert_eq!(t.learn(mcast, V10, P1, 0), Learn::MulticastSource);
        assert_eq!(t.learn(Mac::BROADCAST, V10, P1, 0), Learn::MulticastSource);
        assert!(t.is_empty());
        assert_eq!(t.lookup(mcast, V10, 0), None);
    }

    /// update_learning_table__: a MAC seen on another port moves there.
    #[test]
    fn mac_move_updates_port() {
        let mut t = MacTable::with_seed(1);
        t.learn(mac(1), V10, P1, 0);
        t.learn(mac(2), V10, P1, 0);
        assert_eq!(t.learn(mac(1), V10, P2, 500), Learn::Moved { from: P1 });
        assert_eq!(t.lookup(mac(1), V10, 500), Some(P2));
        assert_eq!(t.port_count(P1), 1);
        assert_eq!(t.port_count(P2), 1);
        assert_eq!(t.stats().moved, 1);
        assert_eq!(t.len(), 2);
        t.check_invariants();
    }

    /// mac_learning_run: entries idle for the aging time go away; a refresh
    /// (at most once a second, is_mac_learning_update_needed) keeps them.
    #[test]
    fn aging_removes_idle_entries() {
        let mut t = MacTable::with_seed(1);
        t.set_aging_time_s(15).unwrap();
        t.learn(mac(1), V10, P1, 0);
        t.learn(mac(2), V10, P1, 0);
        // Refreshed after 10 s: lives until 25 s.
        assert_eq!(t.learn(mac(2), V10, P1, 10_000), Learn::Known);
        assert_eq!(t.expire(14_999), 0);
        // Expired but not yet removed: lookup no longer finds it.
        assert_eq!(t.lookup(mac(1), V10, 15_000), None);
        assert_eq!(t.expire(15_000), 1);
        assert_eq!(t.lookup(mac(2), V10, 15_000), Some(P1));
        assert_eq!(t.expire(24_999), 0);
        assert_eq!(t.expire(25_000), 1);
        assert!(t.is_empty());
        assert_eq!(t.stats().expired, 2);
        t.check_invariants();
    }

    /// OVS refreshes a live entry only when its age is at least a second,
    /// so a burst of packets does not keep restarting its timer.
    #[test]
    fn refresh_is_rate_limited_to_once_a_second() {
        let mut t = MacTable::with_seed(1);
        t.set_aging_time_s(15).unwrap();
        t.learn(mac(1), V10, P1, 0);
        t.learn(mac(1), V10, P1, 999); // not a refresh
        assert_eq!(t.expire(15_000), 1);
        t.learn(mac(1), V10, P1, 20_000);
        t.learn(mac(1), V10, P1, 21_000); // a refresh
        assert_eq!(t.expire(35_000), 0);
        assert_eq!(t.expire(36_000), 1);
    }

    #[test]
    fn changing_aging_time_applies_to_existing_entries() {
        let mut t = MacTable::with_seed(1);
        t.learn(mac(1), V10, P1, 0);
        assert_eq!(t.expire(100_000), 0);
        t.set_aging_time_s(60).unwrap();
        assert_eq!(t.expire(60_000), 1);
    }

    /// evict_mac_entry_fairly: when full, the oldest entry of the port with
    /// the most entries goes, not the globally oldest one.
    #[test]
    fn full_table_evicts_oldest_of_busiest_port() {
        let mut t = MacTable::with_seed(1);
        t.set_max_entries(10).unwrap();
        // P2's entry is the oldest overall.
        t.learn(mac(100), V10, P2, 0);
        for i in 0..6 {
            t.learn(mac(i), V10, P1, 1000 + u64::from(i));
        }
        for i in 10..13 {
            t.learn(mac(i), V10, P3, 2000 + u64::from(i));
        }
        assert_eq!(t.len(), 10);
        // Refresh P1's oldest: now mac(1) is P1's oldest.
        t.learn(mac(0), V10, P1, 5000);
        assert_eq!(t.learn(mac(50), V10, P3, 6000), Learn::New);
        assert_eq!(t.len(), 10);
        assert_eq!(t.stats().evicted, 1);
        assert_eq!(t.lookup(mac(1), V10, 6000), None);
        assert_eq!(t.lookup(mac(0), V10, 6000), Some(P1));
        assert_eq!(t.lookup(mac(100), V10, 6000), Some(P2));
        assert_eq!(t.port_count(P1), 5);
        assert_eq!(t.port_count(P3), 4);
        t.check_invariants();
    }

    #[test]
    fn eviction_ties_go_to_the_port_with_the_oldest_entry() {
        let mut t = MacTable::with_seed(1);
        t.set_max_entries(10).unwrap();
        for i in 0..5 {
            t.learn(mac(10 + i), V10, P2, 0);
        }
        for i in 0..5 {
            t.learn(mac(20 + i), V10, P1, 0);
        }
        t.learn(mac(99), V10, P3, 0);
        // P1 and P2 both had 5; P2's oldest (mac 10) was older.
        assert_eq!(t.lookup(mac(10), V10, 0), None);
        assert_eq!(t.port_count(P1), 5);
        assert_eq!(t.port_count(P2), 4);
        t.check_invariants();
    }

    #[test]
    fn shrinking_the_table_drops_oldest() {
        let mut t = MacTable::with_seed(1);
        for i in 0..20 {
            t.learn(mac(i), V10, P1, u64::from(i));
        }
        t.set_max_entries(10).unwrap();
        assert_eq!(t.len(), 10);
        assert_eq!(t.lookup(mac(9), V10, 20), None);
        assert_eq!(t.lookup(mac(10), V10, 20), Some(P1));
        t.check_invariants();
    }

    #[test]
    fn knob_ranges_are_enforced() {
        let mut t = MacTable::with_seed(1);
        assert_eq!(
            t.set_max_entries(9),
            Err(MacTableError::TableSizeOutOfRange(9))
        );
        assert!(t.set_max_entries(1_000_001).is_err());
        assert!(t.set_max_entries(1_000_000).is_ok());
        assert_eq!(
            t.set_aging_time_s(14),
            Err(MacTableError::AgingTimeOutOfRange(14))
        );
        assert!(t.set_aging_time_s(3601).is_err());
        assert!(t.set_aging_time_s(3600).is_ok());
        assert_eq!(t.aging_time_s(), 3600);
    }

    /// bundle_flush_macs: only the given port's entries go.
    #[test]
    fn flush_port_removes_only_that_port() {
        let mut t = MacTable::with_seed(1);
        for i in 0..5 {
            t.learn(mac(i), V10, P1, 0);
            t.learn(mac(100 + i), V10, P2, 0);
        }
        assert_eq!(t.flush_port(P1), 5);
        assert_eq!(t.flush_port(P1), 0);
        assert_eq!(t.len(), 5);
        assert_eq!(t.lookup(mac(0), V10, 0), None);
        assert_eq!(t.lookup(mac(100), V10, 0), Some(P2));
        t.check_invariants();
        // The freed slots are reused.
        t.learn(mac(7), V10, P3, 0);
        t.check_invariants();
    }

    #[test]
    fn flush_vlan_and_flush_all() {
        let mut t = MacTable::with_seed(1);
        t.learn(mac(1), V10, P1, 0);
        t.learn(mac(1), Vid(20), P1, 0);
        t.learn(mac(2), Vid(20), P2, 0);
        assert_eq!(t.flush_vlan(Vid(20)), 2);
        assert_eq!(t.lookup(mac(1), V10, 0), Some(P1));
        t.check_invariants();
        assert_eq!(t.flush(), 1);
        assert!(t.is_empty());
        assert_eq!(t.learn(mac(1), V10, P1, 0), Learn::New);
        t.check_invariants();
    }

    #[test]
    fn snapshot_lists_oldest_first_with_age() {
        let mut t = MacTable::with_seed(1);
        t.learn(mac(1), V10, P1, 1_000);
        t.learn(mac(2), Vid(0), P2, 3_500);
        let s = t.snapshot(10_000);
        assert_eq!(
            s,
            vec![
                FdbEntry {
                    port: P1,
                    vlan: V10,
                    mac: mac(1),
                    age_s: 9
                },
                FdbEntry {
                    port: P2,
                    vlan: Vid(0),
                    mac: mac(2),
                    age_s: 6
                },
            ]
        );
    }

    /// A straightforward model of OVS's table: a list of entries, eviction
    /// and expiry by scanning. Entry: (mac, vlan, port, last_seen, stamp).
    #[derive(Default)]
    struct Model {
        entries: Vec<(Mac, Vid, PortNo, u64, u64)>,
        stamp: u64,
        max: usize,
        aging_ms: u64,
    }

    impl Model {
        fn oldest(&self, port: Option<PortNo>) -> Option<usize> {
            (0..self.entries.len())
                .filter(|&i| port.is_none_or(|p| self.entries[i].2 == p))
                .min_by_key(|&i| self.entries[i].4)
        }

        fn learn(&mut self, m: Mac, v: Vid, p: PortNo, now: u64) {
            if m.is_multicast() {
                return;
            }
            self.stamp += 1;
            let stamp = self.stamp;
            let aging = self.aging_ms;
            if let Some(e) = self.entries.iter_mut().find(|e| e.0 == m && e.1 == v) {
                let expired = now >= e.3 + aging;
                if e.2 != p || expired || now - e.3 >= 1000 {
                    e.2 = p;
                    e.3 = now;
                    e.4 = stamp;
                }
                return;
            }
            if self.entries.len() >= self.max {
                // Busiest port; ties: the one whose oldest entry is oldest.
                let victim = self
                    .entries
                    .iter()
                    .map(|e| e.2)
                    .max_by_key(|&port| {
                        let n = self.entries.iter().filter(|e| e.2 == port).count();
                        let oldest = self.entries[self.oldest(Some(port)).unwrap()].4;
                        (n, std::cmp::Reverse(oldest))
                    })
                    .unwrap();
                let i = self.oldest(Some(victim)).unwrap();
                self.entries.remove(i);
            }
            self.entries.push((m, v, p, now, stamp));
        }

        fn expire(&mut self, now: u64) {
            while let Some(i) = self.oldest(None) {
                if self.entries.len() > self.max || now >= self.entries[i].3 + self.aging_ms {
                    self.entries.remove(i);
                } else {
                    break;
                }
            }
        }

        fn snapshot(&self, now: u64) -> Vec<FdbEntry> {
            let mut e: Vec<_> = self
                .entries
                .iter()
                .filter(|e| now < e.3 + self.aging_ms)
                .collect();
            e.sort_by_key(|e| e.4);
            e.iter()
                .map(|e| FdbEntry {
                    port: e.2,
                    vlan: e.1,
                    mac: e.0,
                    age_s: (now - e.3) / 1000,
                })
                .collect()
        }
    }

    /// Random sequences of operations keep every invariant and agree with
    /// the model on the whole table (what, where, in which order).
    #[test]
    fn random_operations_match_model() {
        for seed in 1..=20u64 {
            let mut t = MacTable::with_seed(seed);
            t.set_max_entries(16).unwrap();
            t.set_aging_time_s(15).unwrap();
            let mut model = Model {
                max: 16,
                aging_ms: 15_000,
                ..Model::default()
            };
            let mut rng: u64 = 0x1234_5678 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut now = 0u64;
            for _ in 0..3000 {
                let r = next();
                now += r % 900;
                let mut m = mac((r >> 8) as u32 % 40);
                if (r >> 40) % 16 == 0 {
                    m.0[0] |= 1; // sometimes multicast
                }
                let v = Vid(((r >> 16) % 3) as u16);
                let p = PortNo(((r >> 20) % 4) as u32 + 1);
                match (r >> 32) % 20 {
                    0 => {
                        t.expire(now);
                        model.expire(now);
                    }
                    1 => {
                        t.flush_port(p);
                        model.entries.retain(|e| e.2 != p);
                    }
                    2 => {
                        t.flush_vlan(v);
                        model.entries.retain(|e| e.1 != v);
                    }
                    _ => {
                        t.learn(m, v, p, now);
                        model.learn(m, v, p, now);
                        if !m.is_multicast() {
                            assert_eq!(t.lookup(m, v, now), Some(p));
                        }
                    }
                }
                t.check_invariants();
                assert_eq!(t.snapshot(now), model.snapshot(now), "seed {seed}");
                assert_eq!(t.len(), model.entries.len());
            }
        }
    }
}
