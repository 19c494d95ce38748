//! Per-port policing: ingress (`ingress_policing_*`, as Open vSwitch's
//! Interface columns) and egress (`egress_rate` / `egress_burst`).
//!
//! # What?
//! A policer drops the frames that exceed a rate; it never queues or
//! delays (it is not a shaper). Settings, per port:
//! - `ingress_policing_rate` (kbit/s, 0 = off) and `ingress_policing_burst`
//!   (kbit, 0 = 8000): frames *received* on the port beyond the rate are
//!   dropped before any lookup, counted as `rx_dropped.policed`.
//! - `ingress_policing_kpkts_rate` (kpkts/s, 0 = off) and
//!   `ingress_policing_kpkts_burst` (kpkts, 0 = 16): the same in packets.
//!   With both rates set both apply: a frame passes only if both buckets
//!   hold its tokens, so the stricter limit wins (OVS's rule).
//! - `egress_rate` (kbit/s, 0 = off) and `egress_burst` (kbit, 0 = 8000):
//!   frames *sent* to the port beyond the rate are dropped, counted as
//!   `tx_dropped.policed`.
//!
//! 1 kbit is 1000 bits (as OVS's rate and its DPDK burst; Linux tc's
//! burst, which OVS programs with 1024-bit kbits, is 2.4 % larger).
//!
//! What is counted: the L2 frame as the port carries it, from the
//! destination MAC to the end of the payload, VLAN tags included; no
//! preamble, inter-frame gap or FCS (as Linux tc counts `skb->len` at
//! ingress). A GSO/TSO super-frame counts as the segments it stands for
//! ([`frame_cost`]): a 64 KB TSO frame costs ~45 packets and ~45 copies
//! of its headers, as the wire would carry it.
//!
//! # Design
//! [`bucket::Bucket`] is the token bucket (bytes or packets, refilled by
//! elapsed time, the burst as its depth; one word of state). The worker
//! that polls a port owns its [`Ingress`] policer (in its slot, no
//! sharing; the other workers' copies stay idle) and checks each received
//! frame right after the batch is read, with the time read once per
//! batch. The egress bucket is shared by every worker that sends to the
//! port (any worker may), so it lives behind an `Arc` and is charged with
//! one compare-and-swap per frame ([`bucket::Bucket::admit_shared`]).
//! New settings replace the buckets (they start full); the port is not
//! re-created.
//!
//! # Invariants
//! - Nothing here allocates per frame or makes a system call: the clock
//!   is the worker's, read once per batch (`Instant`, vDSO).
//! - A frame that does not fit takes no tokens (small frames are not
//!   starved by big ones).
//! - [`QosConfig`] holds what the user set (0 = off / default), so
//!   `show` and `export` give back exactly that.
//!
//! # Thread-safety
//! [`Ingress`] is used by one worker (`&mut`); [`Egress`] by any number
//! at once (`&self`). Configuration reaches workers as commands.
//!
//! # Limits
//! - Frames in one receive batch (up to 32) share one timestamp: tokens
//!   refill between batches, not within one.
//! - Frames between patch ports are not policed (neither side has I/O);
//!   frames redirected to a tunnel port by the shared socket are policed
//!   on that port's ingress.
//! - Egress policing drops; there are no queues, priorities or shaping
//!   (OVS's `QoS`/`Queue` tables).

pub mod bucket;
pub mod meter;

use std::sync::Arc;

use flowtable::offload::{truncate_tso, Segmenter, VirtioNetHdr};

use crate::packet::PacketBuf;

use bucket::Bucket;

/// Default `ingress_policing_burst` / `egress_burst`, kbit (OVS's).
pub const DEFAULT_BURST_KBIT: u32 = 8000;
/// Default `ingress_policing_kpkts_burst`, kpkts (OVS's).
pub const DEFAULT_BURST_KPKTS: u32 = 16;

/// A QoS setting that could not be taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{key}={value}: expected {what} (0 to {max})", max = u32::MAX)]
pub struct QosError {
    /// The setting.
    pub key: &'static str,
    /// The value given.
    pub value: String,
    /// What it should be.
    pub what: &'static str,
}

/// A port's policing settings as the user gave them (0 = off / default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QosConfig {
    /// kbit/s; 0 = no byte-rate ingress policing.
    pub ingress_policing_rate: u32,
    /// kbit; 0 = [`DEFAULT_BURST_KBIT`].
    pub ingress_policing_burst: u32,
    /// kpkts/s; 0 = no packet-rate ingress policing.
    pub ingress_policing_kpkts_rate: u32,
    /// kpkts; 0 = [`DEFAULT_BURST_KPKTS`].
    pub ingress_policing_kpkts_burst: u32,
    /// kbit/s; 0 = no egress policing.
    pub egress_rate: u32,
    /// kbit; 0 = [`DEFAULT_BURST_KBIT`].
    pub egress_burst: u32,
}

impl QosConfig {
    /// The setting names, as `set port` and the TOML take them.
    pub const KEYS: [&'static str; 6] = [
        "ingress_policing_rate",
        "ingress_policing_burst",
        "ingress_policing_kpkts_rate",
        "ingress_policing_kpkts_burst",
        "egress_rate",
        "egress_burst",
    ];

    fn field(&mut self, key: &str) -> Option<(&'static str, &mut u32, &'static str)> {
        let (k, f, what) = match key {
            "ingress_policing_rate" => (
                Self::KEYS[0],
                &mut self.ingress_policing_rate,
                "a rate in kbit/s",
            ),
            "ingress_policing_burst" => (
                Self::KEYS[1],
                &mut self.ingress_policing_burst,
                "a burst in kbit",
            ),
            "ingress_policing_kpkts_rate" => (
                Self::KEYS[2],
                &mut self.ingress_policing_kpkts_rate,
                "a rate in kpkts/s",
            ),
            "ingress_policing_kpkts_burst" => (
                Self::KEYS[3],
                &mut self.ingress_policing_kpkts_burst,
                "a burst in kpkts",
            ),
            "egress_rate" => (Self::KEYS[4], &mut self.egress_rate, "a rate in kbit/s"),
            "egress_burst" => (Self::KEYS[5], &mut self.egress_burst, "a burst in kbit"),
            _ => return None,
        };
        Some((k, f, what))
    }

    /// True if `key` is one of [`QosConfig::KEYS`].
    pub fn is_key(key: &str) -> bool {
        Self::KEYS.contains(&key)
    }

    /// Sets `key` to `value` (a non-negative integer; empty = 0). `Ok(false)`
    /// if `key` is not a QoS setting.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, QosError> {
        let Some((k, f, what)) = self.field(key) else {
            return Ok(false);
        };
        let v = value.trim();
        *f = if v.is_empty() {
            0
        } else {
            v.parse().map_err(|_| QosError {
                key: k,
                value: value.to_string(),
                what,
            })?
        };
        Ok(true)
    }

    /// The values in [`QosConfig::KEYS`] order.
    pub fn values(&self) -> [u32; 6] {
        [
            self.ingress_policing_rate,
            self.ingress_policing_burst,
            self.ingress_policing_kpkts_rate,
            self.ingress_policing_kpkts_burst,
            self.egress_rate,
            self.egress_burst,
        ]
    }

    /// The settings that are not 0, as `(key, value)`.
    pub fn settings(&self) -> impl Iterator<Item = (&'static str, u32)> {
        Self::KEYS
            .into_iter()
            .zip(self.values())
            .filter(|(_, v)| *v != 0)
    }

    /// The runtime policers for these settings.
    pub fn policers(&self) -> Policers {
        let or = |v: u32, d: u32| if v == 0 { d } else { v };
        let ingress = Ingress {
            bytes: Bucket::bytes(
                self.ingress_policing_rate,
                or(self.ingress_policing_burst, DEFAULT_BURST_KBIT),
            ),
            packets: Bucket::packets(
                self.ingress_policing_kpkts_rate,
                or(self.ingress_policing_kpkts_burst, DEFAULT_BURST_KPKTS),
            ),
        };
        Policers {
            ingress: (ingress.bytes.is_some() || ingress.packets.is_some()).then_some(ingress),
            egress: Bucket::bytes(self.egress_rate, or(self.egress_burst, DEFAULT_BURST_KBIT))
                .map(|b| Arc::new(Egress(b))),
        }
    }
}

/// A port's policers as the datapath holds them. Cloning gives each
/// worker its own (full) ingress buckets and the same egress bucket.
#[derive(Clone, Debug, Default)]
pub struct Policers {
    /// Checked by the worker that polls the port.
    pub ingress: Option<Ingress>,
    /// Checked by every worker that sends to the port.
    pub egress: Option<Arc<Egress>>,
}

/// The ingress policer of one port: a byte bucket, a packet bucket, or
/// both.
#[derive(Clone, Debug)]
pub struct Ingress {
    bytes: Option<Bucket>,
    packets: Option<Bucket>,
}

/// What the ingress policer did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It fits: forward it.
    Pass,
    /// A TSO super-frame of which only the first segments fit: it was cut
    /// to those (forward it; the rest counts as policed).
    Trimmed,
    /// Over the rate: drop it.
    Drop,
}

impl Ingress {
    /// Charges `n` packets and `len` bytes at `now_ns` if both buckets
    /// hold them.
    #[inline]
    fn charge(&mut self, now_ns: u64, n: u64, len: u64) -> bool {
        match (&mut self.bytes, &mut self.packets) {
            (Some(b), Some(p)) => Bucket::admit_both(b, len, p, n, now_ns),
            (Some(b), None) => b.admit(now_ns, len),
            (None, Some(p)) => p.admit(now_ns, n),
            (None, None) => true,
        }
    }

    /// Polices a frame received at `now_ns`: takes its tokens if it fits.
    /// A TSO super-frame that does not fit whole keeps the segments that
    /// do (it is cut in place, as the wire would have carried them one by
    /// one and the policer dropped the rest); other frames are all or
    /// nothing.
    #[inline]
    pub fn admit(&mut self, now_ns: u64, buf: &mut PacketBuf) -> Verdict {
        let vnet = buf.vnet;
        let mut per_seg = None;
        let (n, len) = if vnet.is_gso() {
            match Segmenter::new(buf.frame(), &vnet, usize::MAX) {
                Ok(s) => {
                    if s.is_tcp() {
                        per_seg = Some((s.header_len() + s.segment_size()) as u64);
                    }
                    (s.n_segments() as u64, s.wire_len() as u64)
                }
                Err(_) => (1, buf.len as u64),
            }
        } else {
            (1, buf.len as u64)
        };
        if self.charge(now_ns, n, len) {
            return Verdict::Pass;
        }
        let Some(per_seg) = per_seg else {
            return Verdict::Drop;
        };
        let mut k = n - 1;
        if let Some(b) = &self.bytes {
            k = k.min(b.tokens(now_ns) / per_seg.max(1));
        }
        if let Some(p) = &self.packets {
            k = k.min(p.tokens(now_ns));
        }
        if k == 0 {
            return Verdict::Drop;
        }
        // Cast: k < n, a segment count of a 64 KiB frame.
        match truncate_tso(buf.frame_mut(), &vnet, k as usize) {
            Ok(new_len) if self.charge(now_ns, k, k * per_seg) => {
                buf.len = new_len;
                Verdict::Trimmed
            }
            _ => Verdict::Drop,
        }
    }
}

/// The egress policer of one port, shared by the workers.
#[derive(Debug)]
pub struct Egress(Bucket);

impl Egress {
    /// Whether a frame to send passes at `now_ns`; takes its tokens if it
    /// does.
    #[inline]
    pub fn admit(&self, now_ns: u64, frame: &[u8], vnet: &VirtioNetHdr) -> bool {
        let (_, len) = frame_cost(frame, vnet);
        self.0.admit_shared(now_ns, len)
    }
}

/// What a frame costs: (packets, bytes) on the wire, FCS and preamble
/// excluded. A GSO super-frame counts as its segments, each with its own
/// copy of the headers; one whose headers do not parse counts as one
/// frame of its length (it is dropped later as malformed).
#[inline]
pub fn frame_cost(frame: &[u8], vnet: &VirtioNetHdr) -> (u64, u64) {
    if vnet.is_gso() {
        if let Ok(s) = Segmenter::new(frame, vnet, usize::MAX) {
            return (s.n_segments() as u64, s.wire_len() as u64);
        }
    }
    (1, frame.len() as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may panic.
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_round_trip() {
        let mut q = QosConfig::default();
        assert_eq!(q.set("ingress_policing_rate", "10000"), Ok(true));
        assert_eq!(q.set("egress_burst", " 500 "), Ok(true));
        assert_eq!(q.set("tag", "5"), Ok(false));
        let e = q.set("ingress_policing_kpkts_burst", "-1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ingress_policing_kpkts_burst=-1: expected a burst in kpkts (0 to 4294967295)"
        );
        assert!(q.set("egress_rate", "1.5").is_err());
        assert!(q.set("egress_rate", "4294967296").is_err());
        let s: Vec<_> = q.settings().collect();
        assert_eq!(s, [("ingress_policing_rate", 10000), ("egress_burst", 500)]);
        // Empty resets.
        assert_eq!(q.set("egress_burst", ""), Ok(true));
        assert_eq!(q.settings().count(), 1);
    }

    #[test]
    fn zero_rates_build_no_policers() {
        let p = QosConfig {
            ingress_policing_burst: 100,
            egress_burst: 100,
            ..QosConfig::default()
        }
        .policers();
        assert!(p.ingress.is_none() && p.egress.is_none());
    }

    #[test]
    fn default_bursts_are_ovs_defaults() {
        let q = QosConfig {
            ingress_policing_rate: 1000,
            ingress_policing_kpkts_rate: 1,
            egress_rate: 1000,
            ..QosConfig::default()
        };
        let p = q.policers();
        let i = p.ingress.unwrap();
        assert_eq!(i.bytes.unwrap().tokens(0), 8000 * 125);
        assert_eq!(i.packets.unwrap().tokens(0), 16_000);
        assert_eq!(p.egress.unwrap().0.tokens(0), 8000 * 125);
    }

    /// An IPv4 TCP frame of `payload` bytes with a TSO header cutting it
    /// into `mss`-byte segments.
    fn tso_frame(payload: usize, mss: u16) -> (Vec<u8>, VirtioNetHdr) {
        let mut f = vec![0u8; 14 + 20 + 20 + payload];
        f[12] = 0x08; // IPv4
        f[14] = 0x45;
        let ip_len = (20 + 20 + payload) as u16;
        f[16..18].copy_from_slice(&ip_len.to_be_bytes());
        f[22] = 64;
        f[23] = 6; // TCP
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[46] = 0x50; // data offset 5
        f[47] = 0x10; // ACK
        let hdr = VirtioNetHdr {
            flags: VirtioNetHdr::F_NEEDS_CSUM,
            gso_type: VirtioNetHdr::GSO_TCPV4,
            hdr_len: 54,
            gso_size: mss,
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 0,
        };
        (f, hdr)
    }

    #[test]
    fn gso_frames_count_their_segments() {
        // 64,000 bytes of TCP at MSS 1448: 45 segments, each with its 54
        // bytes of headers.
        let (f, hdr) = tso_frame(64_000, 1448);
        assert_eq!(frame_cost(&f, &hdr), (45, 64_000 + 45 * 54));
        // Not GSO: the frame itself.
        assert_eq!(frame_cost(&f, &VirtioNetHdr::NONE), (1, f.len() as u64));
        // A GSO header on a frame that does not parse: one frame.
        assert_eq!(frame_cost(&f[..20], &hdr), (1, 20));
    }

    fn buf(frame: &[u8], hdr: VirtioNetHdr) -> PacketBuf {
        let mut b = PacketBuf::new();
        b.rx_space()[..frame.len()].copy_from_slice(frame);
        b.set_received(frame.len());
        b.vnet = hdr;
        b
    }

    #[test]
    fn a_packet_policer_sees_a_tso_frame_as_its_segments() {
        // 1 kpps, 1 kpkts deep: 45-segment TSO frames take 45 tokens
        // each; the 23rd finds 10 left and is cut to 10 segments.
        let q = QosConfig {
            ingress_policing_kpkts_rate: 1,
            ingress_policing_kpkts_burst: 1,
            ..QosConfig::default()
        };
        let mut i = q.policers().ingress.unwrap();
        let (f, hdr) = tso_frame(64_000, 1448);
        let v: Vec<Verdict> = (0..30).map(|_| i.admit(0, &mut buf(&f, hdr))).collect();
        assert!(v[..22].iter().all(|v| *v == Verdict::Pass));
        assert_eq!(v[22], Verdict::Trimmed);
        assert!(v[23..].iter().all(|v| *v == Verdict::Drop));
        let mut b = buf(&f, hdr);
        let mut i = q.policers().ingress.unwrap();
        for _ in 0..22 {
            i.admit(0, &mut buf(&f, hdr));
        }
        assert_eq!(i.admit(0, &mut b), Verdict::Trimmed);
        assert_eq!(b.len, 54 + 10 * 1448);
    }

    #[test]
    fn a_byte_policer_trims_tso_but_not_plain_frames() {
        // 100 kbit/s (12,500 B/s), 100 kbit (12,500 bytes) deep: a 64 KB
        // TSO frame (66,430 bytes as segments) passes by the oversized
        // rule when the bucket is full and leaves 5.31 s of debt; 5.2 s
        // later 11,070 bytes are back: the next one is cut to the 7
        // segments (1502 bytes each) that fit.
        let q = QosConfig {
            ingress_policing_rate: 100,
            ingress_policing_burst: 100,
            ..QosConfig::default()
        };
        let mut i = q.policers().ingress.unwrap();
        let (f, hdr) = tso_frame(64_000, 1448);
        let s = 1_000_000_000;
        assert_eq!(i.admit(s, &mut buf(&f, hdr)), Verdict::Pass);
        assert_eq!(i.admit(s, &mut buf(&f, hdr)), Verdict::Drop);
        let later = s + 5_200_000_000;
        let mut b = buf(&f, hdr);
        assert_eq!(i.admit(later, &mut b), Verdict::Trimmed);
        assert_eq!(b.len, 54 + 7 * 1448);
        // A plain frame bigger than what is left: dropped whole.
        let plain = [0u8; 1500];
        assert_eq!(
            i.admit(later, &mut buf(&plain, VirtioNetHdr::NONE)),
            Verdict::Drop
        );
    }

    #[test]
    fn egress_is_shared_between_clones() {
        let q = QosConfig {
            egress_rate: 8,
            egress_burst: 8, // 1000 bytes
            ..QosConfig::default()
        };
        let a = q.policers();
        let b = a.clone();
        let f = [0u8; 600];
        assert!(a.egress.as_ref().unwrap().admit(0, &f, &VirtioNetHdr::NONE));
        // The clone sees the same bucket: 400 bytes left.
        assert!(!b.egress.as_ref().unwrap().admit(0, &f, &VirtioNetHdr::NONE));
    }
}
