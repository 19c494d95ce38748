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
//! # Thread-safety
//! [`tune`] only sets a process-wide option; call it before threads start.

/// The global allocator type (`#[global_allocator]` in `rvsd`).
pub type Allocator = mimalloc::MiMalloc;

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
