//! A token bucket kept as one number: the time at which it will be full.
//!
//! # What?
//! [`Bucket`] polices units (bytes or packets) against a rate and a
//! depth: a bucket of `depth` units, full at first, refilled at `rate`
//! units per second up to `depth`; a frame of `n` units passes if the
//! bucket holds `n` (they are taken) and is dropped otherwise (nothing is
//! taken, so a big frame that does not fit leaves the tokens for small
//! ones: small packets are not starved).
//!
//! # Design
//! The bucket's level is not stored; its *full time* `tat` is (the
//! "theoretical arrival time" of the generic cell rate algorithm): at time
//! `now` the bucket holds `depth - (max(tat, now) - now) * rate` units,
//! so refilling by elapsed time is implicit and costs nothing. A frame of
//! cost `c = n / rate` (as time) passes if `max(tat, now) - now + c <=
//! depth / rate`, and then `tat = max(tat, now) + c`. That is exactly the
//! token bucket above, with one word of state, which is what makes the
//! shared form ([`Bucket::admit_shared`]: one compare-and-swap, no lock)
//! possible for the egress policer that several workers use.
//!
//! Time is in ticks of 1/16 ns ([`TICKS_PER_NS`]): a frame's cost is
//! rounded *up* to a tick, so the bucket never passes more than its rate
//! (the rounding costs at most 1/16 ns per frame: 0.12 % for 64-byte
//! frames at 10 Gbit/s, less for anything slower or bigger). A `u64` of
//! ticks lasts 36 years of uptime.
//!
//! # Invariants
//! - Over any interval of length `t` starting with the bucket full, the
//!   units passed are at most `depth + rate * t` (plus the one oversized
//!   frame below).
//! - A frame costing more than the whole depth (a GSO super-frame through
//!   a bucket smaller than 64 KB) passes only when the bucket is full and
//!   leaves it in debt for its excess, so such frames are not starved
//!   forever and the long-run rate still holds.
//! - Nothing allocates; every operation is a few integer operations (one
//!   64-bit division for the cost).
//!
//! # Thread-safety
//! [`Bucket::admit`] takes `&mut self` (the polling worker's own ingress
//! buckets: plain loads and stores). [`Bucket::admit_shared`] takes
//! `&self` and may run on any number of threads at once (egress).

use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket time ticks per nanosecond.
pub const TICKS_PER_NS: u64 = 16;
/// Ticks per second.
const TICKS_PER_S: u128 = 1_000_000_000 * TICKS_PER_NS as u128;
/// Largest depth, in ticks (keeps every sum below `u64::MAX`).
const MAX_DEPTH: u64 = u64::MAX / 4;

/// A token bucket; see the module docs.
#[derive(Debug)]
pub struct Bucket {
    /// When the bucket is full again, in ticks (0: full).
    tat: AtomicU64,
    /// Ticks one unit costs = `num / den`.
    num: u64,
    /// Units per second (the rate).
    den: u64,
    /// The depth, in ticks.
    depth: u64,
}

impl Clone for Bucket {
    /// A copy with the same rate and depth, full.
    fn clone(&self) -> Bucket {
        Bucket {
            tat: AtomicU64::new(0),
            ..*self
        }
    }
}

impl Bucket {
    /// A bucket passing `rate` units per second with room for `depth`
    /// units; `None` if `rate` is 0 (off).
    pub fn new(rate: u64, depth: u64) -> Option<Bucket> {
        if rate == 0 {
            return None;
        }
        let depth_ticks = (u128::from(depth) * TICKS_PER_S).div_ceil(u128::from(rate));
        // Ticks per unit: TICKS_PER_S / rate, kept as a fraction so no
        // rate loses precision; a huge rate (≥ 16e9 units/s) gets a cost
        // of 1 tick minimum below.
        let (num, den) = (TICKS_PER_S as u64, rate);
        Some(Bucket {
            tat: AtomicU64::new(0),
            num,
            den,
            depth: depth_ticks.min(u128::from(MAX_DEPTH)) as u64,
        })
    }

    /// A byte bucket: `rate_kbps` kbit/s (1 kbit = 1000 bits, so 125
    /// bytes), depth `burst_kbit` kbit; units are bytes. `None` if the
    /// rate is 0.
    pub fn bytes(rate_kbps: u32, burst_kbit: u32) -> Option<Bucket> {
        Bucket::new(u64::from(rate_kbps) * 125, u64::from(burst_kbit) * 125)
    }

    /// A packet bucket: `kpps` thousand packets per second, depth
    /// `kpkts` thousand packets; units are packets. `None` if the rate
    /// is 0.
    pub fn packets(kpps: u32, kpkts: u32) -> Option<Bucket> {
        Bucket::new(u64::from(kpps) * 1000, u64::from(kpkts) * 1000)
    }

    /// The ticks `units` cost, rounded up (at least 1).
    #[inline]
    fn cost(&self, units: u64) -> u64 {
        let c = (u128::from(units) * u128::from(self.num)).div_ceil(u128::from(self.den));
        (c as u64).clamp(1, MAX_DEPTH)
    }

    /// The full time after a frame costing `cost` ticks at `now_t` ticks,
    /// if the bucket `tat` lets it pass.
    #[inline]
    fn next(&self, tat: u64, now_t: u64, cost: u64) -> Option<u64> {
        let base = tat.max(now_t);
        let backlog = base - now_t;
        (backlog + cost.min(self.depth) <= self.depth).then_some(base + cost)
    }

    /// Whether a frame of `units` at `now_ns` passes; takes its tokens if
    /// it does. For the one thread that owns the bucket.
    #[inline]
    pub fn admit(&mut self, now_ns: u64, units: u64) -> bool {
        let cost = self.cost(units);
        let now_t = now_ns.saturating_mul(TICKS_PER_NS);
        let tat = *self.tat.get_mut();
        match self.next(tat, now_t, cost) {
            Some(t) => {
                *self.tat.get_mut() = t;
                true
            }
            None => false,
        }
    }

    /// Like [`Bucket::admit`], for a bucket several threads use: a
    /// compare-and-swap loop (retried only when another thread took
    /// tokens in between).
    #[inline]
    pub fn admit_shared(&self, now_ns: u64, units: u64) -> bool {
        let cost = self.cost(units);
        let now_t = now_ns.saturating_mul(TICKS_PER_NS);
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let Some(t) = self.next(tat, now_t, cost) else {
                return false;
            };
            match self
                .tat
                .compare_exchange_weak(tat, t, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(cur) => tat = cur,
            }
        }
    }

    /// Passes a frame only if both buckets let it: `a` charged `units_a`
    /// and `b` charged `units_b`; neither is charged if either refuses.
    #[inline]
    pub fn admit_both(
        a: &mut Bucket,
        units_a: u64,
        b: &mut Bucket,
        units_b: u64,
        now_ns: u64,
    ) -> bool {
        let now_t = now_ns.saturating_mul(TICKS_PER_NS);
        let (ca, cb) = (a.cost(units_a), b.cost(units_b));
        let (tat_a, tat_b) = (*a.tat.get_mut(), *b.tat.get_mut());
        let (Some(ta), Some(tb)) = (a.next(tat_a, now_t, ca), b.next(tat_b, now_t, cb)) else {
            return false;
        };
        *a.tat.get_mut() = ta;
        *b.tat.get_mut() = tb;
        true
    }

    /// The units in the bucket at `now_ns` (rounded down); 0 while in debt.
    pub fn tokens(&self, now_ns: u64) -> u64 {
        let now_t = now_ns.saturating_mul(TICKS_PER_NS);
        let backlog = self.tat.load(Ordering::Relaxed).saturating_sub(now_t);
        let left = self.depth.saturating_sub(backlog);
        (u128::from(left) * u128::from(self.den) / u128::from(self.num)) as u64
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may panic.
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    /// Offers `frame` units every `gap_ns` for `dur_ns` starting at
    /// `start` (the injected clock); returns the units passed.
    fn offer(b: &mut Bucket, start: u64, dur_ns: u64, gap_ns: u64, frame: u64) -> u64 {
        let mut passed = 0;
        let mut t = start;
        while t < start + dur_ns {
            if b.admit(t, frame) {
                passed += frame;
            }
            t += gap_ns;
        }
        passed
    }

    #[test]
    fn zero_rate_is_off() {
        assert!(Bucket::bytes(0, 8000).is_none());
        assert!(Bucket::packets(0, 16).is_none());
    }

    #[test]
    fn starts_full_and_holds_the_burst() {
        // 1000 kbit/s = 125,000 B/s, 80 kbit = 10,000 bytes deep.
        let mut b = Bucket::bytes(1000, 80).unwrap();
        assert_eq!(b.tokens(5 * S), 10_000);
        // Back to back at one instant: exactly the depth passes.
        let passed = (0..100).filter(|_| b.admit(5 * S, 1000)).count();
        assert_eq!(passed, 10);
        assert_eq!(b.tokens(5 * S), 0);
        // 8 ms later 1000 bytes are back: one more frame.
        assert!(b.admit(5 * S + 8 * MS, 1000));
        assert!(!b.admit(5 * S + 8 * MS, 1000));
        // Idle for long: full again, never more.
        assert_eq!(b.tokens(100 * S), 10_000);
    }

    #[test]
    fn long_run_rate_is_the_configured_rate() {
        for rate_kbps in [10_000u32, 100_000, 1_000_000, 10_000_000] {
            // 1500-byte frames offered at twice the rate for 2 s, burst
            // 120 kbit (10 frames).
            let mut b = Bucket::bytes(rate_kbps, 120).unwrap();
            let gap = 1500 * 8 * 1_000_000 / u64::from(rate_kbps) / 2;
            let passed = offer(&mut b, S, 2 * S, gap, 1500);
            let want = u64::from(rate_kbps) * 125 * 2 + 15_000;
            let err = (passed as f64 - want as f64).abs() / want as f64;
            assert!(err < 0.002, "{rate_kbps} kbit/s: {passed} vs {want}");
            assert!(passed <= want, "never above rate + burst");
        }
    }

    #[test]
    fn tiny_frames_at_high_rate_keep_their_precision() {
        // 64-byte frames against 10 Gbit/s (51.2 ns each), offered every
        // 25 ns for 10 ms, burst 1 kbit (125 bytes).
        let mut b = Bucket::bytes(10_000_000, 1).unwrap();
        let passed = offer(&mut b, 0, 10 * MS, 25, 64);
        let want = 10_000_000_000u64 / 8 / 100;
        let err = (passed as f64 - want as f64) / want as f64;
        assert!(err.abs() < 0.002, "{passed} vs {want}: {err}");
    }

    #[test]
    fn small_packets_are_not_starved_by_big_ones() {
        // 1 Mbit/s (125 B/ms), 2000 bytes deep. 1500-byte frames offered
        // every ms (12x the rate) and a 64-byte frame every 10 ms: the
        // big ones that do not fit take nothing, so the small ones find
        // the tokens the big ones are still waiting for.
        let mut b = Bucket::bytes(1000, 16).unwrap();
        let (mut big, mut small) = (0u64, 0u64);
        for ms in 0..10_000u64 {
            let t = S + ms * MS;
            if b.admit(t, 1500) {
                big += 1500;
            }
            if ms % 10 == 5 && b.admit(t, 64) {
                small += 1;
            }
        }
        // Of the big ones, ~8 % pass (the rate's share); of the small
        // ones, most.
        let big_n = big / 1500;
        assert!(big_n < 900, "{big_n} of 10,000 big frames passed");
        assert!(small >= 800, "{small} of 1000 small frames passed");
        let total = big + small * 64;
        let want = 125_000 * 10 + 2000;
        assert!(total <= want && total >= want - 1500, "{total} vs {want}");
    }

    #[test]
    fn an_oversized_frame_passes_when_full_and_leaves_debt() {
        // Depth 100 kbit (12,500 B), rate 1 Mbit/s (125 B/ms); a 64 KiB
        // GSO super-frame costs 524 ms.
        let mut b = Bucket::bytes(1000, 100).unwrap();
        let big = 65_536;
        assert!(b.admit(S, big));
        // In debt for 424 ms: nothing passes until it is repaid.
        assert_eq!(b.tokens(S + 100 * MS), 0);
        assert!(!b.admit(S + 420 * MS, 1));
        assert!(b.admit(S + 425 * MS, 1));
        // Full again after 524 ms: another one passes, not before.
        assert!(!b.admit(S + 500 * MS, big));
        assert!(b.admit(S + 526 * MS, big));
    }

    #[test]
    fn packet_bucket_counts_packets() {
        // 1 kpps, 16 kpkts deep: 16,000 at once, then 1 per ms.
        let mut b = Bucket::packets(1, 16).unwrap();
        let burst = (0..20_000).filter(|_| b.admit(S, 1)).count();
        assert_eq!(burst, 16_000);
        let after = offer(&mut b, S + MS, S, 100_000, 1);
        assert_eq!(after, 1000);
    }

    #[test]
    fn both_buckets_charge_only_when_both_pass() {
        let mut bytes = Bucket::bytes(1000, 8).unwrap(); // 1000 bytes
        let mut pkts = Bucket::packets(1, 1).unwrap(); // 1000 packets
        let now = S;
        // The byte bucket refuses 1001 bytes... only when not full: drain
        // it a little first.
        assert!(Bucket::admit_both(&mut bytes, 1, &mut pkts, 1, now));
        assert!(!Bucket::admit_both(&mut bytes, 1000, &mut pkts, 1, now));
        assert_eq!(pkts.tokens(now), 999);
        assert!(Bucket::admit_both(&mut bytes, 999, &mut pkts, 1, now));
        assert_eq!((bytes.tokens(now), pkts.tokens(now)), (0, 998));
        // The packet bucket refusing leaves the byte bucket untouched.
        let mut bytes = Bucket::bytes(1000, 80).unwrap(); // 10,000 bytes
        let mut pkts = Bucket::packets(1, 1).unwrap();
        let n = (0..2000)
            .filter(|_| Bucket::admit_both(&mut pkts, 1, &mut bytes, 1, now))
            .count();
        assert_eq!(n, 1000);
        assert_eq!(bytes.tokens(now), 9000);
    }

    #[test]
    fn shared_bucket_holds_the_rate_across_threads() {
        // 4 threads offer 1500-byte frames at 4x the rate each for a
        // simulated second (their own clocks, interleaved).
        let b = std::sync::Arc::new(Bucket::bytes(100_000, 120).unwrap());
        let total: u64 = (0..4)
            .map(|i| {
                let b = b.clone();
                std::thread::spawn(move || {
                    let mut passed = 0;
                    let mut t = S + i * 1000;
                    while t < 2 * S {
                        if b.admit_shared(t, 1500) {
                            passed += 1500;
                        }
                        t += 30_000;
                    }
                    passed
                })
            })
            .map(|h| h.join().unwrap())
            .sum();
        // One thread may see a time another already passed: still never
        // more than rate + burst (+ one frame of clock skew).
        let want = 100_000 * 125 + 15_000;
        assert!(total <= want + 1500, "{total}");
        assert!(total >= want * 95 / 100, "{total}");
    }

    #[test]
    fn clone_is_full() {
        let mut b = Bucket::bytes(1000, 8).unwrap();
        assert!(b.admit(S, 1000));
        assert_eq!(b.tokens(S), 0);
        assert_eq!(b.clone().tokens(S), 1000);
    }

    #[test]
    fn extreme_settings_do_not_overflow() {
        let mut b = Bucket::bytes(u32::MAX, u32::MAX).unwrap();
        assert!(b.admit(u64::MAX / 32, 65_536));
        let mut b = Bucket::bytes(1, u32::MAX).unwrap();
        assert!(b.admit(0, 65_536));
        assert!(b.tokens(u64::MAX) > 0);
        // Depth 0: a frame passes only by the oversized rule, when full.
        let mut b = Bucket::packets(u32::MAX, 0).unwrap();
        assert!(b.admit(S, 1));
        assert!(!b.admit(S, 1));
    }
}
