//! Adaptive busy-polling of a request/response connection.
//!
//! # What?
//! A controller that waits for each answer before it sends the next
//! request (`ovs-ofctl add-flows` sends FLOW_MOD + BARRIER and waits for
//! the BARRIER_REPLY, 100,000 times) is bound by round-trip latency, not
//! by work: rvs spends ~10 µs of CPU on a flow mod, but when its thread
//! sleeps in `epoll_wait` between requests, waking it again on a VM
//! costs tens of µs (the vCPU halted). [`BusyPoll`] decides, per
//! connection, whether to keep polling the socket for a short window
//! after a reply instead of sleeping.
//!
//! # Design
//! Like the guest kernel's haltpoll governor: poll only where it has
//! paid off. The connection reports when it finished writing replies
//! ([`BusyPoll::replied`]) and when the next request arrived
//! ([`BusyPoll::arrived`]). The gap between the two decides the next
//! window:
//! - the peer answered within [`ENABLE_GAP`] while we slept (the gap
//!   includes our own wake-up), or within the [`WINDOW`] we polled:
//!   poll after the next reply;
//! - a polled window ran out without a request: stop polling until a
//!   gap measured asleep is short again.
//!
//! So a peer that is not in lock-step costs at most one [`WINDOW`] of
//! CPU per reply, on every other reply at worst, and a quiet connection
//! none. The caller polls by yielding to the runtime (which then polls
//! its I/O driver without blocking) while [`BusyPoll::polling`] holds.
//!
//! # Invariants
//! [`BusyPoll::polling`] is false once [`WINDOW`] has passed since the
//! last reply, whatever the peer does.
//!
//! # Limits
//! Pure policy on the caller's clock readings; it does not poll itself.

use std::time::{Duration, Instant};

/// How long to keep polling after a reply.
pub const WINDOW: Duration = Duration::from_micros(100);
/// A gap (reply written to next request read) measured while asleep at
/// or below which polling is worth trying.
pub const ENABLE_GAP: Duration = Duration::from_micros(200);

/// Per-connection busy-poll state.
#[derive(Debug, Default)]
pub struct BusyPoll {
    /// When the last replies were written, until the next request.
    replied_at: Option<Instant>,
    /// End of the current polling window.
    until: Option<Instant>,
    /// Poll after the next reply.
    enabled: bool,
}

impl BusyPoll {
    /// Replies were written at `now`; a window opens if polling paid off.
    pub fn replied(&mut self, now: Instant) {
        self.replied_at = Some(now);
        self.until = self.enabled.then(|| now + WINDOW);
    }

    /// A request was read at `now`.
    pub fn arrived(&mut self, now: Instant) {
        if let Some(t) = self.replied_at.take() {
            let gap = now.saturating_duration_since(t);
            self.enabled = if self.until.is_some() {
                gap <= WINDOW
            } else {
                gap <= ENABLE_GAP
            };
        }
        self.until = None;
    }

    /// Whether to keep polling at `now`; closes the window (and stops
    /// polling until a short gap again) once it has run out.
    pub fn polling(&mut self, now: Instant) -> bool {
        match self.until {
            Some(end) if now < end => true,
            Some(_) => {
                self.until = None;
                self.enabled = false;
                false
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn lock_step_peer_is_polled_for() {
        let t0 = Instant::now();
        let mut b = BusyPoll::default();
        // First exchange: nothing known, no window.
        b.replied(t0);
        assert!(!b.polling(t0));
        // The peer answered 120 µs later while we slept (wake-up included).
        b.arrived(t0 + us(120));
        b.replied(t0 + us(130));
        assert!(b.polling(t0 + us(140)));
        // It answers within the window: keep polling.
        b.arrived(t0 + us(150));
        assert!(
            !b.polling(t0 + us(151)),
            "no window between request and reply"
        );
        b.replied(t0 + us(160));
        assert!(b.polling(t0 + us(200)));
    }

    #[test]
    fn window_is_bounded_and_a_miss_stops_polling() {
        let t0 = Instant::now();
        let mut b = BusyPoll::default();
        b.replied(t0);
        b.arrived(t0 + us(10));
        b.replied(t0 + us(20));
        assert!(b.polling(t0 + us(20) + WINDOW - us(1)));
        assert!(!b.polling(t0 + us(20) + WINDOW));
        // The request comes late: asleep, so the next reply opens none.
        b.arrived(t0 + us(5000));
        b.replied(t0 + us(5010));
        assert!(!b.polling(t0 + us(5011)));
        // A short gap while asleep turns it back on.
        b.arrived(t0 + us(5100));
        b.replied(t0 + us(5110));
        assert!(b.polling(t0 + us(5111)));
    }

    #[test]
    fn slow_peer_never_polled() {
        let t0 = Instant::now();
        let mut b = BusyPoll::default();
        for i in 0..100u64 {
            let t = t0 + us(i * 1000);
            b.replied(t);
            assert!(!b.polling(t));
            b.arrived(t + ENABLE_GAP + us(1));
        }
    }

    #[test]
    fn a_window_that_caught_a_late_answer_still_disables() {
        // Polled, but the request came after the window (we were asleep
        // by then): counts as a miss even if within ENABLE_GAP.
        let t0 = Instant::now();
        let mut b = BusyPoll::default();
        b.replied(t0);
        b.arrived(t0 + us(10));
        b.replied(t0 + us(20));
        b.arrived(t0 + us(20) + WINDOW + us(30));
        b.replied(t0 + us(200));
        assert!(!b.polling(t0 + us(201)));
    }
}
