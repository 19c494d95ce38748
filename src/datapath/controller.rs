//! What the datapath knows about a bridge's controllers, and the frames
//! it punts to them.
//!
//! # What?
//! [`OfShared`] is shared by the control plane (which sets the fail mode
//! and whether controllers are configured), the OpenFlow channel (which
//! counts connected controllers and installs the punt sink) and the
//! datapath worker (which reads them per packet that needs them: a
//! `CONTROLLER` action or a table miss). [`ControllerPacket`] is what the
//! worker punts: the frame (already truncated to the action's `max_len`)
//! with its bridge, input port, reason, table and cookie.
//!
//! # Design
//! The datapath knows no OpenFlow wire types: a [`ControllerPacket`] is a
//! plain value, and the OpenFlow channel (`control::ofchannel`) turns it
//! into a PACKET_IN of the connection's version (`control::convert`). Plain
//! atomics and an `ArcSwapOption` for the sink: the worker never takes a
//! lock. Punted packets travel over a bounded tokio channel with
//! `try_send`; when it is full the packet is dropped and counted
//! ([`OfShared::packet_in_dropped`]), so a slow controller never stalls
//! forwarding.
//!
//! Offloaded frames are punted as they would be on the wire, as the
//! kernel's OVS datapath does for upcalls: [`wire_frames`] cuts a GSO
//! frame (a guest's or a namespace's 64 KiB TSO frame from a TAP) into
//! its segments and completes a partial checksum, so a controller sees
//! frames it can parse and forward again, and no PACKET_IN has to carry
//! more than a frame.
//!
//! # Invariants
//! A punt allocates once per frame the controller gets: the (truncated)
//! frame copy in [`ControllerPacket::from_frame`], or the segment
//! [`wire_frames`] writes; the channel moves it into the message it
//! encodes.
//!
//! # Thread-safety
//! Everything is `Sync`; writers are the control plane and channel tasks,
//! the reader is the worker.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use arc_swap::ArcSwapOption;
use flowtable::offload::{self, OffloadError, Segmenter, VirtioNetHdr};
use flowtable::PortNo;

/// Why a packet was punted to the controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PuntReason {
    /// No flow matched (not produced yet: a table miss drops or, in fail
    /// mode standalone without a connected controller, runs NORMAL).
    NoMatch,
    /// A flow's `CONTROLLER` action.
    Action,
}

/// A frame the datapath punts to the controllers of bridge `bridge`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerPacket {
    /// Bridge id.
    pub bridge: u32,
    /// Port the packet came in on.
    pub in_port: PortNo,
    /// Why it is punted.
    pub reason: PuntReason,
    /// Table whose flow punted it.
    pub table: u8,
    /// Cookie of that flow (all ones: none).
    pub cookie: u64,
    /// The frame as it is at that point, truncated to the action's
    /// `max_len`.
    pub frame: Vec<u8>,
    /// Length of the whole frame, before truncation.
    pub total_len: usize,
}

impl ControllerPacket {
    /// A punt of `frame`, keeping at most `max_len` bytes of it (the one
    /// allocation of the punt path).
    ///
    /// ```
    /// use flowtable::PortNo;
    /// use rvs::datapath::controller::{ControllerPacket, PuntReason};
    /// let p = ControllerPacket::from_frame(0, PortNo(1), PuntReason::Action, 0, 7, &[0u8; 100], 64);
    /// assert_eq!((p.total_len, p.frame.len()), (100, 64));
    /// ```
    pub fn from_frame(
        bridge: u32,
        in_port: PortNo,
        reason: PuntReason,
        table: u8,
        cookie: u64,
        frame: &[u8],
        max_len: u16,
    ) -> ControllerPacket {
        let n = frame.len().min(usize::from(max_len));
        ControllerPacket {
            bridge,
            in_port,
            reason,
            table,
            cookie,
            frame: frame[..n].to_vec(),
            total_len: frame.len(),
        }
    }
}

/// Hands `out` the frames a controller gets for `frame` (with virtio-net
/// header `hdr`), each as a fresh copy of at most `max_len` bytes and the
/// frame's whole length: the segments of a GSO frame, each with complete
/// checksums; a frame with a partial checksum, completed; any other frame
/// as it is. Returns how many frames `out` got; a GSO frame that cannot
/// be cut (malformed headers) gives none and the error.
pub fn wire_frames(
    frame: &[u8],
    hdr: &VirtioNetHdr,
    max_len: u16,
    mut out: impl FnMut(Vec<u8>, usize),
) -> Result<usize, OffloadError> {
    let max_len = usize::from(max_len);
    if hdr.is_gso() {
        let mut seg = Segmenter::new(frame, hdr, usize::MAX)?;
        let mut n = 0;
        loop {
            let mut buf = vec![0u8; seg.max_segment_len()];
            match seg.next_into(&mut buf)? {
                Some(len) => {
                    buf.truncate(len.min(max_len));
                    out(buf, len);
                    n += 1;
                }
                None => return Ok(n),
            }
        }
    }
    if hdr.needs_csum() {
        let mut copy = frame.to_vec();
        // A checksum field outside the frame leaves the frame as it is:
        // the controller sees what a port would have sent.
        offload::complete_checksum(&mut copy, hdr);
        copy.truncate(max_len);
        out(copy, frame.len());
    } else {
        out(frame[..frame.len().min(max_len)].to_vec(), frame.len());
    }
    Ok(1)
}

/// Where the worker sends punted packets.
pub type PacketInSink = tokio::sync::mpsc::Sender<ControllerPacket>;

/// Per-bridge controller state; see the module docs.
#[derive(Debug, Default)]
pub struct OfShared {
    /// Controllers connected now (after HELLO).
    connected: AtomicU32,
    /// Peer addresses of the connected controllers, for `get-controller`.
    peers: Mutex<Vec<String>>,
    /// True when at least one controller target is configured.
    has_controllers: AtomicBool,
    /// Fail mode `secure` (false: `standalone`).
    secure: AtomicBool,
    /// Where punted packets go.
    sink: ArcSwapOption<PacketInSink>,
    /// Packets handed to the channel.
    packet_in_sent: AtomicU64,
    /// Packets dropped because the channel was full or gone.
    packet_in_dropped: AtomicU64,
}

impl OfShared {
    /// Records the configuration: controllers configured, fail mode.
    pub fn configure(&self, has_controllers: bool, secure: bool) {
        self.has_controllers
            .store(has_controllers, Ordering::Relaxed);
        self.secure.store(secure, Ordering::Relaxed);
    }

    /// Installs the sink for punted packets.
    pub fn set_sink(&self, sink: Option<PacketInSink>) {
        self.sink.store(sink.map(std::sync::Arc::new));
    }

    /// A controller connected from `peer`.
    pub fn connect(&self, peer: &str) {
        self.connected.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut p) = self.peers.lock() {
            p.push(peer.to_string());
        }
    }

    /// The controller connected from `peer` went away.
    pub fn disconnect(&self, peer: &str) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut p) = self.peers.lock() {
            if let Some(i) = p.iter().position(|x| x == peer) {
                p.remove(i);
            }
        }
    }

    /// Connected controllers' addresses.
    pub fn peers(&self) -> Vec<String> {
        self.peers.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Number of connected controllers.
    pub fn n_connected(&self) -> u32 {
        self.connected.load(Ordering::Relaxed)
    }

    /// True when a table miss should behave as NORMAL: fail mode
    /// standalone, controllers configured, none connected.
    pub fn fail_open(&self) -> bool {
        self.has_controllers.load(Ordering::Relaxed)
            && !self.secure.load(Ordering::Relaxed)
            && self.n_connected() == 0
    }

    /// Punts `p` to the channel if a controller is connected; false when
    /// it was not sent (no controller, or the queue is full).
    pub fn send_packet_in(&self, p: ControllerPacket) -> bool {
        if self.n_connected() == 0 {
            return false;
        }
        let guard = self.sink.load();
        let ok = guard.as_ref().is_some_and(|s| s.try_send(p).is_ok());
        if ok {
            self.packet_in_sent.fetch_add(1, Ordering::Relaxed);
        } else {
            self.packet_in_dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Punted packets handed to the channel.
    pub fn packet_in_sent(&self) -> u64 {
        self.packet_in_sent.load(Ordering::Relaxed)
    }

    /// Punted packets dropped (queue full).
    pub fn packet_in_dropped(&self) -> u64 {
        self.packet_in_dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ev() -> ControllerPacket {
        ControllerPacket::from_frame(0, PortNo(1), PuntReason::Action, 0, 0, &[0u8; 60], 128)
    }

    #[test]
    fn from_frame_truncates_to_max_len() {
        let p = ControllerPacket::from_frame(3, PortNo(2), PuntReason::Action, 5, 9, &[7; 60], 16);
        assert_eq!(
            (p.bridge, p.in_port, p.table, p.cookie),
            (3, PortNo(2), 5, 9)
        );
        assert_eq!((p.frame.len(), p.total_len), (16, 60));
        let p = ControllerPacket::from_frame(0, PortNo(1), PuntReason::Action, 0, 0, &[7; 60], 128);
        assert_eq!((p.frame.len(), p.total_len), (60, 60));
    }

    /// An IPv4 TCP frame of `n` payload bytes with a partial checksum
    /// (the pseudo-header sum, as Linux leaves it) and its virtio-net
    /// header: GSO TCPv4 with `gso_size` 1448 when `gso`.
    fn tcp4(n: usize, gso: bool) -> (Vec<u8>, VirtioNetHdr) {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let ip_len = (20 + 20 + n) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&ip_len.to_be_bytes());
        f.extend_from_slice(&[0, 7, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let c = !offload::csum_sum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18]);
        f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        f.extend((0..n).map(|i| (i % 253) as u8));
        // Pseudo-header: addresses, protocol, TCP length.
        let mut ph = f[26..34].to_vec();
        ph.extend_from_slice(&[0, 6]);
        ph.extend_from_slice(&((20 + n) as u16).to_be_bytes());
        f[50..52].copy_from_slice(&offload::csum_sum(&ph).to_be_bytes());
        let hdr = VirtioNetHdr {
            flags: VirtioNetHdr::F_NEEDS_CSUM,
            gso_type: if gso {
                VirtioNetHdr::GSO_TCPV4
            } else {
                VirtioNetHdr::GSO_NONE
            },
            hdr_len: 54,
            gso_size: if gso { 1448 } else { 0 },
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 0,
        };
        (f, hdr)
    }

    /// True when the IPv4 header and TCP checksums of `f` verify.
    fn checksums_ok(f: &[u8]) -> bool {
        let l4_len = f.len() - 34;
        let mut ph = f[26..34].to_vec();
        ph.extend_from_slice(&[0, 6]);
        ph.extend_from_slice(&(l4_len as u16).to_be_bytes());
        ph.extend_from_slice(&f[34..]);
        offload::csum_sum(&f[14..34]) == 0xffff && offload::csum_sum(&ph) == 0xffff
    }

    #[test]
    fn a_gso_frame_is_punted_as_its_segments_with_checksums() {
        let (f, hdr) = tcp4(64_000, true);
        let mut got = Vec::new();
        let n = wire_frames(&f, &hdr, u16::MAX, |frame, total| got.push((frame, total))).unwrap();
        assert_eq!(n, 64_000usize.div_ceil(1448));
        assert_eq!(got.len(), n);
        let mut payload = Vec::new();
        for (frame, total) in &got {
            assert_eq!(frame.len(), *total);
            assert!(frame.len() <= 14 + 40 + 1448, "{}", frame.len());
            assert!(checksums_ok(frame), "bad checksum in a segment");
            payload.extend_from_slice(&frame[54..]);
        }
        assert_eq!(payload, f[54..]);
        // max_len cuts each segment; total_len stays the segment's.
        let mut cut = Vec::new();
        wire_frames(&f, &hdr, 100, |frame, total| cut.push((frame.len(), total))).unwrap();
        assert!(cut.iter().all(|&(len, total)| len == 100 && total > 100));
    }

    #[test]
    fn a_partial_checksum_is_completed_and_plain_frames_pass_as_they_are() {
        let (f, hdr) = tcp4(500, false);
        assert!(!checksums_ok(&f));
        let mut got = Vec::new();
        assert_eq!(
            wire_frames(&f, &hdr, u16::MAX, |frame, _| got.push(frame)).unwrap(),
            1
        );
        assert!(checksums_ok(&got[0]));
        assert_eq!((got[0].len(), &got[0][..50]), (f.len(), &f[..50]));
        got.clear();
        wire_frames(&f, &VirtioNetHdr::NONE, 64, |frame, total| {
            assert_eq!(total, f.len());
            got.push(frame)
        })
        .unwrap();
        assert_eq!(got[0], f[..64]);
        // A GSO header that does not fit the frame: nothing is punted.
        let mut bad = hdr;
        bad.gso_type = VirtioNetHdr::GSO_TCPV4;
        bad.gso_size = 100;
        bad.hdr_len = 54;
        let short = &f[..40];
        assert!(wire_frames(short, &bad, u16::MAX, |_, _| panic!("punted")).is_err());
    }

    #[test]
    fn fail_open_needs_controllers_standalone_and_none_connected() {
        let s = OfShared::default();
        assert!(!s.fail_open());
        s.configure(true, false);
        assert!(s.fail_open());
        s.connect("a");
        assert!(!s.fail_open());
        s.disconnect("a");
        assert!(s.fail_open());
        s.configure(true, true);
        assert!(!s.fail_open());
    }

    #[test]
    fn packet_in_dropped_when_full() {
        let s = OfShared::default();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        s.set_sink(Some(tx));
        assert!(!s.send_packet_in(ev()), "no controller connected");
        s.connect("c");
        assert!(s.send_packet_in(ev()));
        assert!(!s.send_packet_in(ev()));
        assert_eq!((s.packet_in_sent(), s.packet_in_dropped()), (1, 1));
        assert!(rx.try_recv().is_ok());
        assert_eq!(s.peers(), vec!["c".to_string()]);
    }
}
