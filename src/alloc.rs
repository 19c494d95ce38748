//! The daemon's memory allocator: mimalloc, tuned to give memory back.
//!
//! # What?
//! `rvsd` declares [`Allocator`] its global allocator and calls [`tune`]
//! first thing in `main`.
//!
//! # Design
//! The packet path allocates nothing per packet; the control plane
//! allocates and frees small objects (decoded flow mods, rules, journal
//! records) tens of thousands of times a second under controller churn.
//! With glibc malloc a third of the control plane's CPU went to fastbin
//! consolidation and chunk unlinking; mimalloc cut its CPU per flow mod by
//! ~30 % (benches/results/flowmod-2026-12-02-alloc.md). mimalloc keeps
//! freed pages for a second by default and purges them only when the
//! owning thread allocates again, so a 100k-flow `rvsctl add-flows`
//! (whose parse buffers are freed on an idle blocking-pool thread) left
//! ~1.9 kB per flow resident instead of ~0.9 kB; [`tune`] makes purging
//! immediate, which costs no measurable CPU under churn.
//!
//! [`Allocator`] also counts the bytes the program holds (one relaxed
//! atomic add per allocation and per free; the packet path allocates
//! nothing per packet), so `rvsctl memory-show` can tell memory in use
//! ([`allocated_bytes`]) from memory the allocator keeps for reuse
//! ([`committed_bytes`]) and from what the kernel counts (VmRSS): a leak
//! grows the first, fragmentation and caching only the others.
//!
//! # Thread-safety
//! [`tune`] only sets a process-wide option; call it before threads start.
//! The counter is one process-wide atomic.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes held by the program through [`Allocator`] (requested sizes).
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

/// The global allocator of `rvsd` (`#[global_allocator]`): mimalloc, with
/// the bytes in use counted.
#[allow(missing_debug_implementations)]
pub struct Allocator(pub mimalloc::MiMalloc);

// SAFETY: every method forwards to mimalloc's GlobalAlloc with the same
// arguments and returns its result; the counter is bookkeeping only and
// never touches the memory.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on unchanged.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for alloc.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout` (caller's
        // contract), i.e. from mimalloc.
        unsafe { self.0.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for dealloc; on failure the old block stays valid and
        // counted.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
            ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

/// Bytes the program holds now, when [`Allocator`] is the global allocator
/// (`None` otherwise, e.g. in unit tests).
pub fn allocated_bytes() -> Option<u64> {
    match ALLOCATED.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n as u64),
    }
}

/// Bytes mimalloc has committed (in use plus kept for reuse), `None` when
/// it reports nothing (it is not the global allocator).
pub fn committed_bytes() -> Option<u64> {
    let mut v = [0usize; 8];
    // SAFETY: mi_process_info writes one size_t through each non-null
    // pointer; all eight point into `v`, which outlives the call.
    unsafe {
        let [a, b, c, d, e, f, g, h] = &mut v;
        libmimalloc_sys::mi_process_info(a, b, c, d, e, f, g, h);
    }
    // Order: elapsed, user, system (ms), current_rss, peak_rss,
    // current_commit, peak_commit, page_faults.
    allocated_bytes().map(|_| v[5] as u64)
}

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (mimalloc.h; the
/// binding names only some of the options).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Gives freed pages back to the kernel at once (purge delay 0 ms).
pub fn tune() {
    // SAFETY: mi_option_set only stores an integer in mimalloc's option
    // table; the option index is a valid `mi_option_e` value and 0 is a
    // documented value for it ("0 for immediate purging").
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// VmRSS in bytes and the thread count, from `/proc/self/status`.
pub fn rss_and_threads() -> Option<(u64, u32)> {
    parse_status(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// (VmRSS bytes, Threads) from the text of a `/proc/PID/status`.
fn parse_status(text: &str) -> Option<(u64, u32)> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((
        field("VmRSS:")? * 1024,
        u32::try_from(field("Threads:")?).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_gives_rss_in_bytes_and_threads() {
        let t = "Name:\trvsd\nVmPeak:\t  100 kB\nVmRSS:\t   2048 kB\nThreads:\t7\n";
        assert_eq!(parse_status(t), Some((2048 * 1024, 7)));
        assert_eq!(parse_status("VmRSS: x kB\nThreads: 1\n"), None);
        assert!(rss_and_threads().is_some_and(|(rss, n)| rss > 0 && n > 0));
    }
}
