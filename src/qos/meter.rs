//! OpenFlow 1.3 meters as the datapath runs them.
//!
//! # What?
//! A [`Meter`] is one configured meter ([`MeterSpec`]) with a token
//! bucket per band and its counters; a [`MeterSet`] is one bridge's
//! meters by id, published to the workers like the flow tables (the
//! control plane builds a new set and swaps it in; workers `load` it when
//! a `meter:N` action runs). [`Meter::apply`] decides one frame:
//! [`Verdict::Pass`], [`Verdict::Drop`] or [`Verdict::Remark`] (raise the
//! DSCP drop precedence by that many levels).
//!
//! # Design
//! Each band has a [`Bucket`] of its rate (kbit/s as bytes, or packets/s)
//! and depth: the band's `burst_size` with the BURST flag, else
//! [`DEFAULT_BURST_MS`] of its rate (at least one packet). A frame is
//! offered to every band's bucket; the bands that refuse it are the ones
//! whose rate it exceeds, and of those the one with the highest rate
//! applies (OpenFlow 1.3 §5.7.1), as Open vSwitch's userspace datapath
//! does. A frame a band refuses takes no tokens from it.
//!
//! What is counted: the L2 frame as sent and received on the wire without
//! the FCS (Ethernet header, VLAN tags, payload; no virtio-net header). A
//! GSO/TSO super-frame counts as the segments it becomes: `n` packets and
//! the bytes of the `n` frames (headers repeated), and is passed or
//! refused whole.
//!
//! # Thread-safety
//! Meters are shared by all workers: a band's bucket is one atomic word
//! updated by compare-and-swap ([`Bucket::admit_shared`]), so the rate is
//! the bridge's, not a per-worker share, and no lock is taken. Counters
//! are per worker (worker `w` writes block `w` with a relaxed load and
//! store; the control plane sums them), so they are exact: a band's
//! packet count is the number of frames it dropped or remarked.
//!
//! # Limits
//! [`MAX_METERS`] per bridge, [`flowtable::meter::MAX_BANDS`] bands each.
//! Modifying a meter replaces it: buckets start full and counters at 0
//! (as in Open vSwitch's userspace datapath); its age is kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use flowtable::meter::{BandKind, MeterSpec, MAX_BANDS};
use rustc_hash::FxHashMap;

use super::bucket::Bucket;
use crate::datapath::counters::MAX_WORKERS;

/// Most meters a bridge holds.
pub const MAX_METERS: u32 = 65536;
/// Bucket depth of a band without the BURST flag, in milliseconds of its
/// rate.
pub const DEFAULT_BURST_MS: u64 = 100;

/// What a meter does to one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Under every band's rate.
    Pass,
    /// A drop band applies.
    Drop,
    /// A dscp_remark band applies: raise the drop precedence by this.
    Remark(u8),
}

/// Nanoseconds on the clock all meters share.
#[inline]
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The DSCP `dscp` with its drop precedence (bits 1–2) raised by
/// `levels`, saturating at 3 (AF11 + 1 = AF12, AF12 + 2 = AF13).
pub fn raise_drop_precedence(dscp: u8, levels: u8) -> u8 {
    let drop = (dscp >> 1) & 3;
    let raised = drop.saturating_add(levels).min(3);
    (dscp & !0b110) | raised << 1
}

/// One worker's counters of one meter, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Counts {
    in_packets: AtomicU64,
    in_bytes: AtomicU64,
    band_packets: [AtomicU64; MAX_BANDS],
    band_bytes: [AtomicU64; MAX_BANDS],
}

/// Adds `n` to a counter only this worker writes.
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// A band as the datapath runs it.
#[derive(Debug)]
struct BandRt {
    kind: BandKind,
    rate: u32,
    bucket: Bucket,
}

/// One meter: its configuration, buckets and counters.
#[derive(Debug)]
pub struct Meter {
    /// The configuration it runs.
    pub spec: MeterSpec,
    /// When it was first added (kept across modifications).
    pub created: Instant,
    /// Rates count packets (else bytes).
    pktps: bool,
    bands: Box<[BandRt]>,
    /// Counters by worker index.
    counts: Box<[Counts]>,
}

/// A meter's counters, summed over the workers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeterCounts {
    /// Frames (segments) that entered the meter.
    pub in_packets: u64,
    /// Their bytes.
    pub in_bytes: u64,
    /// Per band: (frames, bytes) it dropped or remarked.
    pub bands: Vec<(u64, u64)>,
}

impl Meter {
    /// The runtime form of a validated `spec`, created at `created`.
    pub fn new(spec: MeterSpec, created: Instant) -> Meter {
        let pktps = spec.pktps();
        let burst = spec.flags & flowtable::meter::flags::BURST != 0;
        let bands = spec
            .bands
            .iter()
            .filter_map(|b| {
                let rate = u64::from(b.rate);
                // Units per second and bucket depth in units (bytes or
                // packets).
                let (per_s, depth) = if pktps {
                    let d = if burst && b.burst_size > 0 {
                        u64::from(b.burst_size)
                    } else {
                        (rate * DEFAULT_BURST_MS / 1000).max(1)
                    };
                    (rate, d)
                } else {
                    let per_s = rate * 125;
                    let d = if burst && b.burst_size > 0 {
                        u64::from(b.burst_size) * 125
                    } else {
                        (per_s * DEFAULT_BURST_MS / 1000).max(1)
                    };
                    (per_s, d)
                };
                Some(BandRt {
                    kind: b.kind,
                    rate: b.rate,
                    bucket: Bucket::new(per_s, depth)?,
                })
            })
            .collect();
        Meter {
            spec,
            created,
            pktps,
            bands,
            counts: (0..MAX_WORKERS).map(|_| Counts::default()).collect(),
        }
    }

    /// Runs one frame of `packets` segments and `bytes` bytes through the
    /// meter on worker `w` at `now_ns` ([`now_ns`]).
    #[inline]
    pub fn apply(&self, w: usize, now_ns: u64, packets: u64, bytes: u64) -> Verdict {
        let c = &self.counts[w.min(MAX_WORKERS - 1)];
        bump(&c.in_packets, packets);
        bump(&c.in_bytes, bytes);
        let units = if self.pktps { packets } else { bytes };
        let mut hit: Option<usize> = None;
        for (i, b) in self.bands.iter().enumerate() {
            if !b.bucket.admit_shared(now_ns, units)
                && hit.is_none_or(|h| self.bands[h].rate < b.rate)
            {
                hit = Some(i);
            }
        }
        let Some(h) = hit else {
            return Verdict::Pass;
        };
        bump(&c.band_packets[h], packets);
        bump(&c.band_bytes[h], bytes);
        match self.bands[h].kind {
            BandKind::Drop => Verdict::Drop,
            BandKind::DscpRemark { prec_level } => Verdict::Remark(prec_level),
        }
    }

    /// The counters summed over the workers.
    pub fn counts(&self) -> MeterCounts {
        let sum = |f: &dyn Fn(&Counts) -> u64| self.counts.iter().map(f).sum::<u64>();
        MeterCounts {
            in_packets: sum(&|c| c.in_packets.load(Ordering::Relaxed)),
            in_bytes: sum(&|c| c.in_bytes.load(Ordering::Relaxed)),
            bands: (0..self.bands.len())
                .map(|i| {
                    (
                        sum(&|c| c.band_packets[i].load(Ordering::Relaxed)),
                        sum(&|c| c.band_bytes[i].load(Ordering::Relaxed)),
                    )
                })
                .collect(),
        }
    }
}

/// One bridge's meters by id, as published to the workers.
#[derive(Debug, Default, Clone)]
pub struct MeterSet {
    meters: FxHashMap<u32, Arc<Meter>>,
}

impl MeterSet {
    /// Meter `id`.
    #[inline]
    pub fn get(&self, id: u32) -> Option<&Arc<Meter>> {
        self.meters.get(&id)
    }

    /// Adds or replaces a meter.
    pub fn insert(&mut self, m: Arc<Meter>) {
        self.meters.insert(m.spec.id, m);
    }

    /// Removes meter `id`.
    pub fn remove(&mut self, id: u32) -> Option<Arc<Meter>> {
        self.meters.remove(&id)
    }

    /// Number of meters.
    pub fn len(&self) -> usize {
        self.meters.len()
    }

    /// True with no meters.
    pub fn is_empty(&self) -> bool {
        self.meters.is_empty()
    }

    /// Meters in id order.
    pub fn sorted(&self) -> Vec<&Arc<Meter>> {
        let mut v: Vec<&Arc<Meter>> = self.meters.values().collect();
        v.sort_by_key(|m| m.spec.id);
        v
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may panic.
mod tests {
    use super::*;
    use flowtable::meter::parse_meter;

    const S: u64 = 1_000_000_000;

    /// Offers `n` frames of `len` bytes evenly over `secs` seconds at
    /// `offered` times the rate; returns the bytes passed.
    fn run(m: &Meter, len: u64, frames: u64, secs: u64) -> u64 {
        let mut passed = 0;
        for i in 0..frames {
            let t = 1 + i * secs * S / frames;
            if m.apply(0, t, 1, len) == Verdict::Pass {
                passed += len;
            }
        }
        passed
    }

    #[test]
    fn drop_band_delivers_its_rate_for_small_and_big_frames() {
        for len in [64u64, 1442] {
            let m = Meter::new(
                parse_meter("meter=1,kbps,burst,bands=type=drop,rate=10000,burst_size=100")
                    .unwrap(),
                Instant::now(),
            );
            // 20 Mbit/s offered for 10 s.
            let frames = 20_000_000 / 8 * 10 / len;
            let passed = run(&m, len, frames, 10);
            let rate = passed as f64 * 8.0 / 10.0;
            assert!((rate / 10e6 - 1.0).abs() < 0.01, "{len}: {rate}");
            let c = m.counts();
            assert_eq!(c.in_packets, frames);
            assert_eq!(c.bands[0].0 * len, frames * len - passed);
            assert_eq!(c.bands[0].1, frames * len - passed);
        }
    }

    #[test]
    fn pktps_and_highest_exceeded_band() {
        let m = Meter::new(
            parse_meter(
                "meter=2,pktps,bands=type=dscp_remark,rate=1000,prec_level=1 type=drop,rate=2000",
            )
            .unwrap(),
            Instant::now(),
        );
        // 4000 pps for 2 s: the drop band (the highest rate exceeded)
        // takes what is above 2000 pps; the rest passes, remarked when
        // the 1000 pps band refused it too.
        let (mut pass, mut remark, mut drop) = (0, 0, 0);
        for i in 0..8000u64 {
            match m.apply(1, 1 + i * S / 4000, 1, 100) {
                Verdict::Pass => pass += 1,
                Verdict::Remark(1) => remark += 1,
                Verdict::Drop => drop += 1,
                v => panic!("{v:?}"),
            }
        }
        assert!((3900..=4300).contains(&(pass + remark)), "{pass} {remark}");
        assert!(remark > 0 && pass > 0, "{pass} {remark}");
        assert_eq!(pass + remark + drop, 8000);
        let c = m.counts();
        assert_eq!(c.bands, vec![(remark, remark * 100), (drop, drop * 100)]);
    }

    #[test]
    fn drop_precedence() {
        assert_eq!(raise_drop_precedence(10, 1), 12); // AF11 -> AF12
        assert_eq!(raise_drop_precedence(12, 2), 14); // AF12 -> AF13
        assert_eq!(raise_drop_precedence(14, 1), 14);
        assert_eq!(raise_drop_precedence(0, 1), 2);
        assert_eq!(raise_drop_precedence(46, 1), 46 | 6);
    }
}
