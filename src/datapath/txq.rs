//! Per-worker transmit queues for ports with a batched send (AF_PACKET,
//! tunnels with a fixed destination).
//!
//! # What?
//! A system port can take many frames in one `sendmmsg`; a TAP cannot.
//! While a worker runs a batch of received frames, small frames bound for
//! such a port are copied into that port's queue, and the queue is sent in
//! one syscall when the batch is done (or when it fills up): up to 32
//! frames per syscall instead of one.
//!
//! # Design
//! Frames must be copied: the receive buffer may still change after an
//! output action (a later `mod_vlan_vid`, `set_field`, `strip_vlan`), and
//! the queue must send what the packet looked like at the output. Copies
//! of 64-byte frames are cheap next to a syscall; large frames (GSO
//! super-frames up to 64 KiB) are not worth copying and go out at once,
//! after flushing the port's queue so frames leave in order — unless the
//! port takes no virtio-net header: then the super-frame's segments are
//! queued as they are cut (a 64 KiB TCP frame to a tunnel: two
//! `sendmmsg`s instead of 45 `sendmsg`s). A frame with
//! a partial checksum bound for a port without `PACKET_VNET_HDR` has its
//! checksum completed in the copy.
//!
//! # Invariants
//! - Frames leave each port in the order the pipeline output them.
//! - The worker flushes every queue before it reads the next batch, before
//!   it sleeps, and after control commands that send (PACKET_OUT), so a
//!   lone frame (a ping) waits only for the rest of its own batch.
//! - Nothing allocates on the packet path: a queue is allocated when its
//!   port is added.
//!
//! # Thread-safety
//! Each worker has its own queues; the port's socket is shared (see
//! `crate::port`).
//!
//! # Limits
//! Frames up to [`TXQ_FRAME`] bytes are queued, at most [`TXQ_LEN`] per
//! port per worker.

use flowtable::offload::{self, VirtioNetHdr};

use super::counters::TxDrop;
use super::xlate::Slot;
use crate::port::PortError;

/// Frames per queue (one `sendmmsg`).
pub const TXQ_LEN: usize = 32;
/// Largest frame that is queued (bigger ones are sent at once).
pub const TXQ_FRAME: usize = 2048;

/// The queue of one port.
struct TxQueue {
    data: Box<[u8]>,
    lens: [usize; TXQ_LEN],
    hdrs: [VirtioNetHdr; TXQ_LEN],
    n: usize,
}

impl TxQueue {
    fn new() -> TxQueue {
        TxQueue {
            data: vec![0; TXQ_LEN * TXQ_FRAME].into_boxed_slice(),
            lens: [0; TXQ_LEN],
            hdrs: [VirtioNetHdr::NONE; TXQ_LEN],
            n: 0,
        }
    }
}

/// All queues of one worker, by port slot.
#[derive(Default)]
pub struct TxQueues {
    queues: Vec<Option<TxQueue>>,
    /// Slots with queued frames.
    dirty: Vec<usize>,
}

impl std::fmt::Debug for TxQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxQueues")
            .field("dirty", &self.dirty)
            .finish_non_exhaustive()
    }
}

impl TxQueues {
    /// Gives `slot` a queue (control path: allocates).
    pub fn add(&mut self, slot: usize) {
        if self.queues.len() <= slot {
            self.queues.resize_with(slot + 1, || None);
        }
        self.queues[slot] = Some(TxQueue::new());
        self.dirty.reserve(self.queues.len());
    }

    /// Drops `slot`'s queue and anything still in it.
    pub fn remove(&mut self, slot: usize) {
        if let Some(q) = self.queues.get_mut(slot) {
            *q = None;
        }
        self.dirty.retain(|&s| s != slot);
    }

    /// True when `slot` has a queue that can take a frame of `len` bytes
    /// with header `hdr`.
    #[inline]
    pub fn takes(&self, slot: usize, hdr: &VirtioNetHdr, len: usize) -> bool {
        len <= TXQ_FRAME && !hdr.is_gso() && matches!(self.queues.get(slot), Some(Some(_)))
    }

    /// True when `slot` has a queue (its port sends in batches).
    #[inline]
    pub fn has_queue(&self, slot: usize) -> bool {
        matches!(self.queues.get(slot), Some(Some(_)))
    }

    /// True when `slot` has frames waiting.
    #[inline]
    pub fn has_queued(&self, slot: usize) -> bool {
        matches!(self.queues.get(slot), Some(Some(q)) if q.n > 0)
    }

    /// Queues a copy of `frame` for `slot` (check [`TxQueues::takes`]
    /// first), completing a partial checksum when the port takes no
    /// virtio-net header. Sends the queue first when it is full.
    pub fn push(
        &mut self,
        slots: &[Option<Slot>],
        slot: usize,
        hdr: &VirtioNetHdr,
        frame: &[u8],
        vnet: bool,
        w: usize,
    ) {
        if matches!(self.queues.get(slot), Some(Some(q)) if q.n == TXQ_LEN) {
            self.flush_slot(slots, slot, w);
        }
        let Some(Some(q)) = self.queues.get_mut(slot) else {
            return;
        };
        let i = q.n;
        let Some(dst) = q.data.get_mut(i * TXQ_FRAME..i * TXQ_FRAME + frame.len()) else {
            return;
        };
        dst.copy_from_slice(frame);
        let mut h = *hdr;
        if !vnet && h.needs_csum() {
            offload::complete_checksum(dst, &h);
            h = VirtioNetHdr::NONE;
        }
        q.lens[i] = frame.len();
        q.hdrs[i] = h;
        q.n += 1;
        if i == 0 {
            self.dirty.push(slot);
        }
    }

    /// Sends every queued frame.
    pub fn flush(&mut self, slots: &[Option<Slot>], w: usize) {
        while let Some(slot) = self.dirty.pop() {
            self.send(slots, slot, w);
        }
    }

    /// Sends `slot`'s queued frames (before a frame that bypasses the
    /// queue, to keep the order).
    pub fn flush_slot(&mut self, slots: &[Option<Slot>], slot: usize, w: usize) {
        if self.has_queued(slot) {
            self.dirty.retain(|&s| s != slot);
            self.send(slots, slot, w);
        }
    }

    /// One or more `sendmmsg`s for `slot`'s queue; counts each frame's
    /// outcome on the port.
    fn send(&mut self, slots: &[Option<Slot>], slot: usize, w: usize) {
        let Some(Some(q)) = self.queues.get_mut(slot) else {
            return;
        };
        let n = std::mem::take(&mut q.n);
        let Some(Some(s)) = slots.get(slot) else {
            return;
        };
        let c = s.shared.w(w);
        let Some(io) = s.io.as_deref() else {
            for _ in 0..n {
                c.tx_drop(TxDrop::PortDown);
            }
            return;
        };
        let mut frames: [&[u8]; TXQ_LEN] = [&[]; TXQ_LEN];
        for (i, f) in frames.iter_mut().enumerate().take(n) {
            *f = q
                .data
                .get(i * TXQ_FRAME..i * TXQ_FRAME + q.lens[i])
                .unwrap_or(&[]);
        }
        let mut at = 0;
        while at < n {
            match io.send_batch(&q.hdrs[at..n], &frames[at..n]) {
                Ok(0) => {
                    // Nothing taken and no error: count the rest as queue full.
                    for _ in at..n {
                        c.tx_drop(TxDrop::QueueFull);
                    }
                    return;
                }
                Ok(k) => {
                    c.tx_packets.add(k as u64);
                    c.tx_bytes
                        .add(q.lens[at..at + k].iter().map(|&l| l as u64).sum());
                    at += k;
                }
                Err(PortError::TxFull) => {
                    for _ in at..n {
                        c.tx_drop(TxDrop::QueueFull);
                    }
                    return;
                }
                Err(e) => {
                    // The first frame failed: count it, go on with the rest.
                    let gone = e.is_gone();
                    match e {
                        PortError::LinkDown => c.tx_drop(TxDrop::PortDown),
                        // The frame's own length (the error's is the
                        // batch's first).
                        PortError::FrameTooBig { .. } => s.shared.too_big(w, q.lens[at]),
                        _ if gone => c.tx_drop(TxDrop::PortDown),
                        _ => c.tx_drop(TxDrop::TxError),
                    }
                    if gone {
                        s.shared.set_down(format!("netdev vanished: {e}"));
                        for _ in at + 1..n {
                            c.tx_drop(TxDrop::PortDown);
                        }
                        return;
                    }
                    at += 1;
                }
            }
        }
    }
}
