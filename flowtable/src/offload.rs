//! Software fallback for virtio-net offloads: header codec, checksum
//! completion, TSO/USO/UFO segmentation.
//!
//! # What?
//! A TAP opened with `IFF_VNET_HDR` (and an AF_PACKET socket with
//! `PACKET_VNET_HDR`) prefixes every frame with a [`VirtioNetHdr`]. With
//! offloads on, a frame may be a *GSO* frame (up to 64 KiB of TCP or UDP
//! to be cut into MTU-sized packets) and may carry a *partial* L4 checksum
//! (`NEEDS_CSUM`: the checksum field holds the pseudo-header sum, the
//! device finishes it). When such a frame must leave on a port that cannot
//! take it, rvs does the device's work here:
//! - [`VirtioNetHdr::parse`] / [`VirtioNetHdr::write`] (10-byte header) and
//!   [`VirtioNetHdr::parse_mrg`] / [`VirtioNetHdr::write_mrg`] (12 bytes,
//!   with `num_buffers`, the `virtio_net_hdr_v1` / `_mrg_rxbuf` layout).
//! - [`complete_checksum`]: finish a `NEEDS_CSUM` checksum in place.
//! - [`Segmenter`] (and the convenience [`segment`]): cut a GSO frame into
//!   self-contained frames, written one at a time into a caller's buffer:
//!   TCPv4/TCPv6 (TSO), UDP datagrams (USO, `GSO_UDP_L4`), and IPv4
//!   fragments (UFO, `GSO_UDP`).
//! - [`adjust_for_vlan`]: keep `csum_start` / `hdr_len` right when a VLAN
//!   tag is pushed (+4) or popped (-4) in front of the L3 header.
//!
//! # Design
//! Headers are located with [`extract_layout`], so 0, 1 or 2 VLAN tags,
//! IPv4 options and IPv6 extension headers are handled the same way as
//! everywhere else. The header's own `hdr_len` is only a hint (Linux
//! senders are allowed to understate it): it is checked to lie inside the
//! frame but the copied headers are always the ones the frame really has.
//!
//! Every segment's checksums are computed from scratch: the IPv4 header
//! checksum over the header, the TCP/UDP checksum over a pseudo-header built
//! from the addresses and the segment's own length plus the L4 header and
//! payload. This does not depend on which length the sender folded into the
//! partial sum (Linux uses the full length, some drivers 0), and costs one
//! pass over a segment that the copy just brought into cache.
//!
//! Segment by segment, as Linux's `tcp_gso_segment` / `__udp_gso_segment`
//! / `inet_gso_segment` do:
//! - TSO: payload in chunks of `min(gso_size, mtu - L3/L4 headers)`;
//!   IPv4 id +1 per segment, total length and header checksum; IPv6 payload
//!   length; TCP sequence number + payload offset; FIN and PSH kept only on
//!   the last segment, CWR only on the first.
//! - USO: payload in `gso_size` chunks, each a UDP datagram with its own
//!   length and checksum (0 written as 0xffff); IPv4 id +1 per datagram.
//! - UFO (IPv4 only): the UDP checksum is completed over the whole
//!   datagram, which is then split into IP fragments of `gso_size` bytes
//!   rounded down to a multiple of 8 (and to fit the MTU), all sharing the
//!   IPv4 id, with MF on all but the last.
//!
//! Checksums are summed as native-endian 32-bit words into a 64-bit
//! accumulator (no carry handling in the loop, so it vectorizes), then
//! folded and byte-swapped (RFC 1071: the one's complement sum is
//! byte-order independent up to a swap).
//!
//! # Invariants
//! - Nothing panics, for any bytes and any header (property-tested):
//!   inconsistent input yields an [`OffloadError`] or `false`.
//! - Every segment [`Segmenter`] yields is a complete Ethernet frame with
//!   valid IPv4 header and L4 checksums, at most `mtu` bytes of IP packet
//!   and at most [`Segmenter::max_segment_len`] bytes in all.
//! - Concatenating the payloads of the segments gives the original payload.
//! - No allocation: segments are written into the caller's buffer.
//!
//! # Thread-safety
//! Pure functions and a per-frame iterator on caller-owned buffers.
//!
//! # Limits
//! - Little-endian headers only (what the kernel uses on x86 hosts, and on
//!   any host after `TUNSETVNETLE`).
//! - IPv6 UFO (it needs a fragment header inserted) is
//!   [`OffloadError::UnsupportedGsoType`]; so are unknown GSO types.
//! - USO datagrams larger than the MTU are refused
//!   ([`OffloadError::MtuTooSmall`]); datagram boundaries cannot move.
//! - The IPv6 pseudo-header uses the destination in the fixed header (a
//!   routing header's final destination is not looked up).
//! - IPv6 jumbograms (payload length 0) are malformed here.

use thiserror::Error;

use crate::extract::{extract_layout, L3Kind, L4Kind, Layout, Malformed};
use crate::types::PortNo;

/// Errors from decoding a virtio-net header or segmenting a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum OffloadError {
    /// Fewer bytes than the header needs.
    #[error("virtio-net header needs {need} bytes, got {got}")]
    HdrTruncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        got: usize,
    },
    /// The frame is not a GSO frame (`gso_type` is `GSO_NONE`).
    #[error("not a GSO frame")]
    NotGso,
    /// `gso_size` is 0 in a GSO frame.
    #[error("gso_size is 0")]
    GsoSizeZero,
    /// A GSO type rvs does not segment (the ECN bit masked off).
    #[error("unsupported gso_type {0:#04x}")]
    UnsupportedGsoType(u8),
    /// `hdr_len` lies beyond the end of the frame.
    #[error("hdr_len {hdr_len} beyond the {frame_len}-byte frame")]
    HdrLenBeyondFrame {
        /// The header's `hdr_len`.
        hdr_len: u16,
        /// The frame's length.
        frame_len: usize,
    },
    /// `NEEDS_CSUM` with `csum_start + csum_offset + 2` beyond the frame.
    #[error(
        "csum_start {csum_start} + csum_offset {csum_offset} beyond the {frame_len}-byte frame"
    )]
    CsumOutOfRange {
        /// The header's `csum_start`.
        csum_start: u16,
        /// The header's `csum_offset`.
        csum_offset: u16,
        /// The frame's length.
        frame_len: usize,
    },
    /// The frame's headers are cut short or inconsistent.
    #[error("malformed frame: {0}")]
    Malformed(Malformed),
    /// The frame's L3/L4 headers are not those `gso_type` announces (for
    /// example `GSO_TCPV4` on an IPv6 or UDP frame).
    #[error("headers do not match gso_type {0:#04x}")]
    HeadersMismatch(u8),
    /// The IP packet is already a fragment.
    #[error("IP packet is already a fragment")]
    Fragment,
    /// The MTU leaves no room for payload after the headers, or a USO
    /// datagram does not fit it.
    #[error("MTU {mtu} too small for {need}-byte packets")]
    MtuTooSmall {
        /// The MTU passed in.
        mtu: usize,
        /// Bytes of IP packet that would be needed.
        need: usize,
    },
    /// The output buffer is shorter than the segment.
    #[error("segment needs {need} bytes, buffer has {got}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes in the buffer.
        got: usize,
    },
}

/// The virtio-net header (`struct virtio_net_hdr`, plus `num_buffers` of
/// `virtio_net_hdr_mrg_rxbuf` / `virtio_net_hdr_v1`), little-endian on the
/// wire.
///
/// ```
/// use flowtable::offload::VirtioNetHdr;
/// let h = VirtioNetHdr {
///     flags: VirtioNetHdr::F_NEEDS_CSUM,
///     gso_type: VirtioNetHdr::GSO_TCPV4,
///     hdr_len: 54,
///     gso_size: 1448,
///     csum_start: 34,
///     csum_offset: 16,
///     num_buffers: 0,
/// };
/// let mut b = [0u8; VirtioNetHdr::LEN_MRG];
/// h.write_mrg(&mut b).unwrap();
/// assert_eq!(&b[..4], &[1, 1, 54, 0]);
/// assert_eq!(VirtioNetHdr::parse_mrg(&b), Ok(h));
/// assert!(h.needs_csum() && h.is_gso());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VirtioNetHdr {
    /// `F_NEEDS_CSUM`, `F_DATA_VALID`, `F_RSC_INFO` bits.
    pub flags: u8,
    /// `GSO_*` type, optionally with the `GSO_ECN` bit.
    pub gso_type: u8,
    /// Length of the headers (Ethernet through L4) in a GSO frame; a hint.
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS for TCP).
    pub gso_size: u16,
    /// Offset of the first byte the L4 checksum covers (`NEEDS_CSUM`).
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start` (16 for TCP, 6 for
    /// UDP).
    pub csum_offset: u16,
    /// Merged receive buffers (12-byte header only; 0 otherwise).
    pub num_buffers: u16,
}

impl VirtioNetHdr {
    /// Length of `struct virtio_net_hdr`.
    pub const LEN: usize = 10;
    /// Length with `num_buffers` (`virtio_net_hdr_mrg_rxbuf`, `_v1`).
    pub const LEN_MRG: usize = 12;

    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the L4 checksum is partial.
    pub const F_NEEDS_CSUM: u8 = 1;
    /// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was verified.
    pub const F_DATA_VALID: u8 = 2;
    /// `VIRTIO_NET_HDR_F_RSC_INFO`.
    pub const F_RSC_INFO: u8 = 4;

    /// `VIRTIO_NET_HDR_GSO_NONE`.
    pub const GSO_NONE: u8 = 0;
    /// `VIRTIO_NET_HDR_GSO_TCPV4`: TSO over IPv4.
    pub const GSO_TCPV4: u8 = 1;
    /// `VIRTIO_NET_HDR_GSO_UDP`: UFO (IP fragmentation of one datagram).
    pub const GSO_UDP: u8 = 3;
    /// `VIRTIO_NET_HDR_GSO_TCPV6`: TSO over IPv6.
    pub const GSO_TCPV6: u8 = 4;
    /// `VIRTIO_NET_HDR_GSO_UDP_L4`: USO (one datagram per segment).
    pub const GSO_UDP_L4: u8 = 5;
    /// `VIRTIO_NET_HDR_GSO_ECN`: TCP with ECN (CWR may be set).
    pub const GSO_ECN: u8 = 0x80;

    /// The header with no offload: no flags, `GSO_NONE`.
    pub const NONE: VirtioNetHdr = VirtioNetHdr {
        flags: 0,
        gso_type: 0,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
        num_buffers: 0,
    };

    /// Decodes the 10-byte header at the start of `bytes` (`num_buffers`
    /// is 0).
    pub fn parse(bytes: &[u8]) -> Result<VirtioNetHdr, OffloadError> {
        let Some(b) = bytes.first_chunk::<{ Self::LEN }>() else {
            return Err(OffloadError::HdrTruncated {
                need: Self::LEN,
                got: bytes.len(),
            });
        };
        Ok(VirtioNetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16::from_le_bytes([b[2], b[3]]),
            gso_size: u16::from_le_bytes([b[4], b[5]]),
            csum_start: u16::from_le_bytes([b[6], b[7]]),
            csum_offset: u16::from_le_bytes([b[8], b[9]]),
            num_buffers: 0,
        })
    }

    /// Decodes the 12-byte header at the start of `bytes`.
    pub fn parse_mrg(bytes: &[u8]) -> Result<VirtioNetHdr, OffloadError> {
        let Some(b) = bytes.first_chunk::<{ Self::LEN_MRG }>() else {
            return Err(OffloadError::HdrTruncated {
                need: Self::LEN_MRG,
                got: bytes.len(),
            });
        };
        let mut h = Self::parse(b)?;
        h.num_buffers = u16::from_le_bytes([b[10], b[11]]);
        Ok(h)
    }

    /// Encodes the 10-byte header into the start of `out`.
    pub fn write(&self, out: &mut [u8]) -> Result<(), OffloadError> {
        let got = out.len();
        let Some(b) = out.first_chunk_mut::<{ Self::LEN }>() else {
            return Err(OffloadError::HdrTruncated {
                need: Self::LEN,
                got,
            });
        };
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        Ok(())
    }

    /// Encodes the 12-byte header into the start of `out`.
    pub fn write_mrg(&self, out: &mut [u8]) -> Result<(), OffloadError> {
        let got = out.len();
        let Some(b) = out.first_chunk_mut::<{ Self::LEN_MRG }>() else {
            return Err(OffloadError::HdrTruncated {
                need: Self::LEN_MRG,
                got,
            });
        };
        self.write(b)?;
        b[10..12].copy_from_slice(&self.num_buffers.to_le_bytes());
        Ok(())
    }

    /// `F_NEEDS_CSUM` is set.
    pub fn needs_csum(&self) -> bool {
        self.flags & Self::F_NEEDS_CSUM != 0
    }

    /// The GSO type without the ECN bit.
    pub fn gso_kind(&self) -> u8 {
        self.gso_type & !Self::GSO_ECN
    }

    /// The frame is a GSO frame (`gso_type` other than `GSO_NONE`).
    pub fn is_gso(&self) -> bool {
        self.gso_kind() != Self::GSO_NONE
    }
}

/// Updates `hdr` for a VLAN tag pushed (`delta` = +4) or popped (-4) in
/// front of the L3 header: `csum_start` moves when `F_NEEDS_CSUM` is set,
/// `hdr_len` when it is non-zero. False (nothing changed) if a field would
/// leave `0..=u16::MAX`, or a pop would move `csum_start` into the
/// Ethernet header.
///
/// ```
/// use flowtable::offload::{adjust_for_vlan, VirtioNetHdr};
/// let mut h = VirtioNetHdr { flags: 1, csum_start: 34, hdr_len: 66, ..VirtioNetHdr::NONE };
/// assert!(adjust_for_vlan(&mut h, 4));
/// assert_eq!((h.csum_start, h.hdr_len), (38, 70));
/// ```
pub fn adjust_for_vlan(hdr: &mut VirtioNetHdr, delta: i32) -> bool {
    let shift = |v: u16| u16::try_from(i32::from(v) + delta).ok();
    let csum_start = if hdr.needs_csum() {
        match shift(hdr.csum_start) {
            Some(v) if usize::from(v) >= crate::extract::ETH_HEADER_LEN => v,
            _ => return false,
        }
    } else {
        hdr.csum_start
    };
    let hdr_len = if hdr.hdr_len != 0 {
        match shift(hdr.hdr_len) {
            Some(v) => v,
            None => return false,
        }
    } else {
        0
    };
    hdr.csum_start = csum_start;
    hdr.hdr_len = hdr_len;
    true
}

/// Folds a one's complement accumulator to 16 bits.
#[inline(always)]
fn fold(mut s: u64) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The one's complement sum of `data` read as big-endian 16-bit words (an
/// odd last byte padded with zero), folded to 16 bits, not complemented.
#[inline]
pub fn csum_sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        // Native-endian words: no swap in the loop; fixed once at the end.
        acc += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rem = chunks.remainder();
    let mut tail = [0u8; 4];
    if let Some(t) = tail.get_mut(..rem.len()) {
        t.copy_from_slice(rem);
    }
    acc += u64::from(u32::from_ne_bytes(tail));
    let s = fold(acc);
    if cfg!(target_endian = "little") {
        s.swap_bytes()
    } else {
        s
    }
}

/// Adds two folded one's complement sums.
#[inline(always)]
fn add(a: u16, b: u16) -> u16 {
    fold(u64::from(a) + u64::from(b))
}

/// Completes a `NEEDS_CSUM` checksum in place: the one's complement of the
/// sum from `csum_start` to the end of `frame` (the field at `csum_start +
/// csum_offset` holds the pseudo-header sum, as the kernel leaves it) is
/// stored at `csum_start + csum_offset`; a result of 0 is stored as 0xffff,
/// as the kernel does. True if the checksum is now complete (also when
/// `F_NEEDS_CSUM` is not set: nothing to do); false, with nothing changed,
/// if the field lies outside the frame.
///
/// The caller clears `F_NEEDS_CSUM` (or drops the header) afterwards.
/// `frame` must end where the L4 packet ends (no Ethernet padding), as
/// frames from a TAP or `PACKET_VNET_HDR` socket do.
pub fn complete_checksum(frame: &mut [u8], hdr: &VirtioNetHdr) -> bool {
    if !hdr.needs_csum() {
        return true;
    }
    let start = usize::from(hdr.csum_start);
    let field = start + usize::from(hdr.csum_offset);
    if field + 2 > frame.len() {
        return false;
    }
    let Some(data) = frame.get(start..) else {
        return false;
    };
    let c = !csum_sum(data);
    let c = if c == 0 { 0xffff } else { c };
    match frame.get_mut(field..field + 2) {
        Some(f) => {
            f.copy_from_slice(&c.to_be_bytes());
            true
        }
        None => false,
    }
}

/// Checks `hdr`'s offsets against a frame of `frame_len` bytes: `hdr_len`
/// inside it and, with `F_NEEDS_CSUM`, the checksum field inside it.
pub fn check_hdr(hdr: &VirtioNetHdr, frame_len: usize) -> Result<(), OffloadError> {
    if usize::from(hdr.hdr_len) > frame_len {
        return Err(OffloadError::HdrLenBeyondFrame {
            hdr_len: hdr.hdr_len,
            frame_len,
        });
    }
    if hdr.needs_csum()
        && usize::from(hdr.csum_start) + usize::from(hdr.csum_offset) + 2 > frame_len
    {
        return Err(OffloadError::CsumOutOfRange {
            csum_start: hdr.csum_start,
            csum_offset: hdr.csum_offset,
            frame_len,
        });
    }
    Ok(())
}

/// What a [`Segmenter`] cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// TSO: TCP segments.
    Tcp,
    /// USO: UDP datagrams.
    Udp,
    /// UFO: IPv4 fragments of one UDP datagram.
    Ufo,
}

fn rd16(b: &[u8], off: usize) -> u16 {
    match b.get(off..).and_then(|s| s.first_chunk::<2>()) {
        Some(a) => u16::from_be_bytes(*a),
        None => 0,
    }
}

fn rd32(b: &[u8], off: usize) -> u32 {
    match b.get(off..).and_then(|s| s.first_chunk::<4>()) {
        Some(a) => u32::from_be_bytes(*a),
        None => 0,
    }
}

fn wr16(b: &mut [u8], off: usize, v: u16) {
    if let Some(a) = b.get_mut(off..).and_then(|s| s.first_chunk_mut::<2>()) {
        *a = v.to_be_bytes();
    }
}

fn wr32(b: &mut [u8], off: usize, v: u32) {
    if let Some(a) = b.get_mut(off..).and_then(|s| s.first_chunk_mut::<4>()) {
        *a = v.to_be_bytes();
    }
}

/// Cuts one GSO frame into segments, written one at a time into a
/// caller's buffer. See the module docs for what each segment gets.
///
/// ```
/// # use flowtable::offload::{Segmenter, VirtioNetHdr};
/// # fn demo(frame: &[u8], hdr: &VirtioNetHdr) -> Result<(), flowtable::offload::OffloadError> {
/// let mut seg = Segmenter::new(frame, hdr, 1500)?;
/// let mut buf = [0u8; 1600]; // at least seg.max_segment_len()
/// while let Some(n) = seg.next_into(&mut buf)? {
///     let _frame = &buf[..n]; // send it
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Segmenter<'a> {
    /// The GSO frame (without virtio-net header).
    frame: &'a [u8],
    /// What is cut.
    kind: Kind,
    /// Start of the IP header.
    l3: usize,
    /// Start of the L4 header.
    l4: usize,
    /// IPv4 (else IPv6).
    v4: bool,
    /// Bytes copied in front of each segment's payload: through the L4
    /// header (TCP, USO) or the L3 header (UFO).
    hdr_end: usize,
    /// End of the IP packet (Ethernet padding excluded).
    end: usize,
    /// Payload bytes per segment.
    seg_size: usize,
    /// Pseudo-header sum of addresses and protocol (no length).
    pseudo: u16,
    /// UFO: the completed UDP checksum of the whole datagram.
    ufo_csum: u16,
    /// Offset in `frame` of the next segment's payload.
    off: usize,
    /// Index of the next segment.
    index: u16,
    /// All segments were yielded.
    done: bool,
}

impl<'a> Segmenter<'a> {
    /// Prepares to cut `frame` (Ethernet onwards, no virtio-net header)
    /// as `hdr` says, into IP packets of at most `mtu` bytes (pass
    /// `usize::MAX` for `gso_size` alone to decide). TCP payload per
    /// segment is `min(gso_size, mtu - IP and TCP headers)`; USO
    /// datagrams must fit `mtu` whole; UFO fragments carry `min(gso_size,
    /// mtu - IP header)` rounded down to a multiple of 8.
    pub fn new(frame: &'a [u8], hdr: &VirtioNetHdr, mtu: usize) -> Result<Self, OffloadError> {
        let gso = hdr.gso_kind();
        if gso == VirtioNetHdr::GSO_NONE {
            return Err(OffloadError::NotGso);
        }
        if !matches!(
            gso,
            VirtioNetHdr::GSO_TCPV4
                | VirtioNetHdr::GSO_TCPV6
                | VirtioNetHdr::GSO_UDP_L4
                | VirtioNetHdr::GSO_UDP
        ) {
            return Err(OffloadError::UnsupportedGsoType(gso));
        }
        if hdr.gso_size == 0 {
            return Err(OffloadError::GsoSizeZero);
        }
        check_hdr(hdr, frame.len())?;
        let (_, layout): (_, Layout) = extract_layout(frame, PortNo(0));
        if let Some(m) = layout.malformed {
            return Err(OffloadError::Malformed(m));
        }
        let kind = match (gso, layout.l3_kind, layout.l4_kind) {
            (VirtioNetHdr::GSO_TCPV4, L3Kind::Ipv4, L4Kind::Tcp)
            | (VirtioNetHdr::GSO_TCPV6, L3Kind::Ipv6, L4Kind::Tcp) => Kind::Tcp,
            (VirtioNetHdr::GSO_UDP_L4, L3Kind::Ipv4 | L3Kind::Ipv6, L4Kind::Udp) => Kind::Udp,
            (VirtioNetHdr::GSO_UDP, L3Kind::Ipv4, L4Kind::Udp) => Kind::Ufo,
            (VirtioNetHdr::GSO_UDP, L3Kind::Ipv6, L4Kind::Udp) => {
                return Err(OffloadError::UnsupportedGsoType(gso))
            }
            _ => return Err(OffloadError::HeadersMismatch(gso)),
        };
        let l3 = usize::from(layout.l3);
        let l4 = usize::from(layout.l4);
        let v4 = layout.l3_kind == L3Kind::Ipv4;
        // Extraction checked that the IP length fits the frame and covers
        // the L4 header.
        let end = if v4 {
            if rd16(frame, l3 + 6) & 0x3fff != 0 {
                return Err(OffloadError::Fragment);
            }
            l3 + usize::from(rd16(frame, l3 + 2))
        } else {
            l3 + 40 + usize::from(rd16(frame, l3 + 4))
        };
        if end > frame.len() {
            return Err(OffloadError::Malformed(if v4 {
                Malformed::Ipv4BadTotalLen
            } else {
                Malformed::Ipv6BadPayloadLen
            }));
        }
        let l4_len = match kind {
            Kind::Tcp => usize::from(rd16(frame, l4 + 12) >> 12) * 4,
            Kind::Udp | Kind::Ufo => 8,
        };
        let hdr_end = match kind {
            Kind::Tcp | Kind::Udp => l4 + l4_len,
            Kind::Ufo => l4,
        };
        if hdr_end > end {
            return Err(OffloadError::Malformed(Malformed::L4Truncated));
        }
        // Bytes of IP packet in front of the payload.
        let ip_hdrs = hdr_end - l3;
        let gso_size = usize::from(hdr.gso_size);
        let room = mtu.saturating_sub(ip_hdrs);
        let seg_size = match kind {
            Kind::Tcp => gso_size.min(room),
            Kind::Udp => {
                let biggest = gso_size.min(end - hdr_end);
                if biggest > room {
                    return Err(OffloadError::MtuTooSmall {
                        mtu,
                        need: ip_hdrs + biggest,
                    });
                }
                gso_size
            }
            Kind::Ufo => gso_size.min(room) & !7,
        };
        if seg_size == 0 {
            return Err(OffloadError::MtuTooSmall {
                mtu,
                need: ip_hdrs + 8,
            });
        }

        let proto = if kind == Kind::Tcp { 6u8 } else { 17 };
        let addrs = if v4 {
            frame.get(l3 + 12..l3 + 20)
        } else {
            frame.get(l3 + 8..l3 + 40)
        };
        let pseudo = add(csum_sum(addrs.unwrap_or_default()), u16::from(proto));
        let ufo_csum = if kind == Kind::Ufo {
            // The whole datagram's checksum, with the field taken as 0.
            let dgram = frame.get(l4..end).unwrap_or_default();
            let len = end - l4;
            let s = add(add(pseudo, len as u16), csum_sum(dgram));
            let c = !add(s, !rd16(frame, l4 + 6));
            if c == 0 {
                0xffff
            } else {
                c
            }
        } else {
            0
        };
        Ok(Segmenter {
            frame,
            kind,
            l3,
            l4,
            v4,
            hdr_end,
            end,
            seg_size,
            pseudo,
            ufo_csum,
            off: hdr_end,
            index: 0,
            done: false,
        })
    }

    /// The longest segment this will write, in bytes (Ethernet onwards):
    /// the size a buffer passed to [`Segmenter::next_into`] needs.
    pub fn max_segment_len(&self) -> usize {
        self.hdr_end + self.seg_size.min(self.end - self.hdr_end)
    }

    /// Payload bytes per segment (the last may carry fewer).
    pub fn segment_size(&self) -> usize {
        self.seg_size
    }

    /// How many segments the frame yields in all (at least 1: a frame
    /// with no payload yields its headers once).
    pub fn n_segments(&self) -> usize {
        (self.end - self.hdr_end).div_ceil(self.seg_size).max(1)
    }

    /// Bytes copied in front of each segment's payload (Ethernet through
    /// the L4 header; through L3 for UFO).
    pub fn header_len(&self) -> usize {
        self.hdr_end
    }

    /// True for TSO (TCP) frames, the ones [`truncate_tso`] shortens.
    pub fn is_tcp(&self) -> bool {
        self.kind == Kind::Tcp
    }

    /// Bytes of all segments together (Ethernet onwards): what the frame
    /// weighs on the wire once cut, each segment carrying its own copy
    /// of the headers.
    pub fn wire_len(&self) -> usize {
        self.n_segments() * self.hdr_end + (self.end - self.hdr_end)
    }

    /// Writes the next segment into the start of `out` and returns its
    /// length, or `None` when all were written. On `BufferTooSmall`
    /// nothing is consumed: retry with a larger buffer.
    pub fn next_into(&mut self, out: &mut [u8]) -> Result<Option<usize>, OffloadError> {
        if self.done {
            return Ok(None);
        }
        let frame = self.frame;
        let chunk = self.seg_size.min(self.end - self.off);
        let last = self.off + chunk >= self.end;
        let len = self.hdr_end + chunk;
        let got = out.len();
        let (Some(o), Some(hdrs), Some(payload)) = (
            out.get_mut(..len),
            frame.get(..self.hdr_end),
            frame.get(self.off..self.off + chunk),
        ) else {
            return Err(OffloadError::BufferTooSmall { need: len, got });
        };
        let (oh, op) = o.split_at_mut(self.hdr_end);
        oh.copy_from_slice(hdrs);
        op.copy_from_slice(payload);

        let (l3, l4) = (self.l3, self.l4);
        let ip_len = len - l3;
        // Offset of this segment's payload in the L4 (TCP, USO) or IP
        // (UFO) payload.
        let pay_off = self.off - self.hdr_end;
        if self.v4 {
            wr16(o, l3 + 2, ip_len as u16);
            match self.kind {
                Kind::Tcp | Kind::Udp => {
                    let id = rd16(o, l3 + 4).wrapping_add(self.index);
                    wr16(o, l3 + 4, id);
                }
                Kind::Ufo => {
                    let df = rd16(o, l3 + 6) & 0x4000;
                    let mf = if last { 0 } else { 0x2000 };
                    wr16(o, l3 + 6, df | mf | ((pay_off / 8) as u16 & 0x1fff));
                }
            }
            wr16(o, l3 + 10, 0);
            let ihl = usize::from(o.get(l3).copied().unwrap_or(0) & 0x0f) * 4;
            let c = !csum_sum(o.get(l3..l3 + ihl).unwrap_or_default());
            wr16(o, l3 + 10, c);
        } else {
            wr16(o, l3 + 4, (ip_len - 40) as u16);
        }

        let l4_len = (len - l4) as u16;
        match self.kind {
            Kind::Tcp => {
                let seq = rd32(o, l4 + 4).wrapping_add(pay_off as u32);
                wr32(o, l4 + 4, seq);
                let mut flags = o.get(l4 + 13).copied().unwrap_or(0);
                if !last {
                    flags &= !0x09; // FIN, PSH
                }
                if self.index != 0 {
                    flags &= !0x80; // CWR
                }
                if let Some(f) = o.get_mut(l4 + 13) {
                    *f = flags;
                }
                wr16(o, l4 + 16, 0);
                let s = add(
                    add(self.pseudo, l4_len),
                    csum_sum(o.get(l4..).unwrap_or_default()),
                );
                wr16(o, l4 + 16, !s);
            }
            Kind::Udp => {
                wr16(o, l4 + 4, l4_len);
                wr16(o, l4 + 6, 0);
                let s = add(
                    add(self.pseudo, l4_len),
                    csum_sum(o.get(l4..).unwrap_or_default()),
                );
                wr16(o, l4 + 6, if s == 0xffff { 0xffff } else { !s });
            }
            Kind::Ufo => {
                if self.index == 0 {
                    wr16(o, l4 + 6, self.ufo_csum);
                }
            }
        }

        self.off += chunk;
        self.index = self.index.wrapping_add(1);
        self.done = last;
        Ok(Some(len))
    }
}

/// Shortens a TSO frame in place to its first `n` segments (as if the
/// rest had been cut and dropped): the IP length and IPv4 header checksum
/// are rewritten, and a partial TCP checksum (`NEEDS_CSUM`: the
/// pseudo-header sum, which Linux senders take over the L4 length) is
/// moved by the length change; FIN and PSH, which belong to the last
/// segment, are cleared. Returns the new frame length; a frame with
/// `n` or fewer segments is left alone (its length is returned).
pub fn truncate_tso(frame: &mut [u8], hdr: &VirtioNetHdr, n: usize) -> Result<usize, OffloadError> {
    let seg = Segmenter::new(frame, hdr, usize::MAX)?;
    if seg.kind != Kind::Tcp {
        return Err(OffloadError::UnsupportedGsoType(hdr.gso_kind()));
    }
    let (l3, l4, v4, end) = (seg.l3, seg.l4, seg.v4, seg.end);
    let new_end = seg.hdr_end + n.max(1) * seg.seg_size;
    if new_end >= end {
        return Ok(frame.len());
    }
    let (old_l4, new_l4) = ((end - l4) as u16, (new_end - l4) as u16);
    if v4 {
        wr16(frame, l3 + 2, (new_end - l3) as u16);
        wr16(frame, l3 + 10, 0);
        let ihl = usize::from(frame.get(l3).copied().unwrap_or(0) & 0x0f) * 4;
        let c = !csum_sum(frame.get(l3..l3 + ihl).unwrap_or_default());
        wr16(frame, l3 + 10, c);
    } else {
        wr16(frame, l3 + 4, (new_end - l3 - 40) as u16);
    }
    // The segments kept are not the last: FIN and PSH belonged to it.
    if let Some(f) = frame.get_mut(l4 + 13) {
        *f &= !0x09;
    }
    if hdr.needs_csum() {
        let at = usize::from(hdr.csum_start) + usize::from(hdr.csum_offset);
        // One's complement: remove the old length, add the new one.
        let c = add(add(rd16(frame, at), !old_l4), new_l4);
        wr16(frame, at, c);
    }
    Ok(new_end)
}

/// Cuts `frame` as `hdr` says (see [`Segmenter::new`] for `mtu`), writing
/// each segment into `scratch` and handing it to `out`. Returns the number
/// of segments. `scratch` must hold [`Segmenter::max_segment_len`] bytes
/// (65535 + 14 always suffices); nothing is handed out if it does not.
pub fn segment(
    frame: &[u8],
    hdr: &VirtioNetHdr,
    mtu: usize,
    scratch: &mut [u8],
    mut out: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    let mut seg = Segmenter::new(frame, hdr, mtu)?;
    let need = seg.max_segment_len();
    if scratch.len() < need {
        return Err(OffloadError::BufferTooSmall {
            need,
            got: scratch.len(),
        });
    }
    let mut n = 0;
    while let Some(len) = seg.next_into(scratch)? {
        out(scratch.get(..len).unwrap_or_default());
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may panic.
mod tests {
    use super::*;
    use crate::rewrite::{pop_vlan, push_vlan};
    use proptest::prelude::*;

    // ---- A from-scratch frame builder and verifier. ----

    /// Naive one's complement sum of big-endian byte pairs, unfolded.
    fn sum16(data: &[u8]) -> u64 {
        data.chunks(2)
            .map(|c| u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum()
    }

    fn fold_naive(mut s: u64) -> u16 {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    const SRC4: [u8; 4] = [10, 0, 0, 1];
    const DST4: [u8; 4] = [192, 168, 77, 250];
    const SRC6: [u8; 16] = [
        0x20, 0x01, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd,
    ];
    const DST6: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    const SEQ: u32 = 0xffff_f000; // wraps within a 64 KiB frame
    const IP_ID: u16 = 0xfffe; // wraps after two segments
    const TCP_ACK: u8 = 0x10;
    const TCP_PSH: u8 = 0x08;
    const TCP_FIN: u8 = 0x01;
    const TCP_CWR: u8 = 0x80;

    #[derive(Clone, Debug)]
    struct Spec {
        /// Number of VLAN tags (0..=2).
        vlans: usize,
        v6: bool,
        /// UDP (else TCP).
        udp: bool,
        /// IPv4 options bytes (multiple of 4) or, for IPv6, one hop-by-hop
        /// header of this many bytes (multiple of 8, 0 = none).
        ip_opts: usize,
        /// TCP option bytes (multiple of 4).
        tcp_opts: usize,
        tcp_flags: u8,
        payload: Vec<u8>,
        gso_type: u8,
        gso_size: u16,
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn tcp4(n: usize) -> Spec {
        Spec {
            vlans: 0,
            v6: false,
            udp: false,
            ip_opts: 0,
            tcp_opts: 0,
            tcp_flags: TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR,
            payload: payload(n),
            gso_type: VirtioNetHdr::GSO_TCPV4 | VirtioNetHdr::GSO_ECN,
            gso_size: 1448,
        }
    }

    /// Builds the frame with a partial L4 checksum (pseudo-header sum with
    /// the full length, uncomplemented, as Linux leaves it) and its header.
    /// Returns (frame, hdr, l3, l4).
    fn build(s: &Spec) -> (Vec<u8>, VirtioNetHdr, usize, usize) {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        for i in 0..s.vlans {
            let tpid: u16 = if i + 1 < s.vlans { 0x88a8 } else { 0x8100 };
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&(100 + i as u16).to_be_bytes());
        }
        f.extend_from_slice(&(if s.v6 { 0x86ddu16 } else { 0x0800 }).to_be_bytes());
        let l3 = f.len();
        let proto: u8 = if s.udp { 17 } else { 6 };
        let l4_hlen = if s.udp { 8 } else { 20 + s.tcp_opts };
        let l4_len = l4_hlen + s.payload.len();
        if s.v6 {
            f.extend_from_slice(&0x6012_3456u32.to_be_bytes());
            f.extend_from_slice(&((s.ip_opts + l4_len) as u16).to_be_bytes());
            f.push(if s.ip_opts > 0 { 0 } else { proto });
            f.push(64);
            f.extend_from_slice(&SRC6);
            f.extend_from_slice(&DST6);
            if s.ip_opts > 0 {
                f.push(proto);
                f.push((s.ip_opts / 8 - 1) as u8);
                f.extend_from_slice(&[1, 4, 0, 0, 0, 0]); // PadN
                f.resize(f.len() + s.ip_opts - 8, 0);
            }
        } else {
            let ihl = 20 + s.ip_opts;
            f.push(0x40 | (ihl / 4) as u8);
            f.push(0x02); // ECT(0)
            f.extend_from_slice(&((ihl + l4_len) as u16).to_be_bytes());
            f.extend_from_slice(&IP_ID.to_be_bytes());
            f.extend_from_slice(&0x4000u16.to_be_bytes()); // DF
            f.extend_from_slice(&[64, proto, 0, 0]);
            f.extend_from_slice(&SRC4);
            f.extend_from_slice(&DST4);
            f.resize(f.len() + s.ip_opts, 1); // NOPs
            let c = !fold_naive(sum16(&f[l3..l3 + ihl]));
            f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let l4 = f.len();
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&5201u16.to_be_bytes());
        if s.udp {
            f.extend_from_slice(&(l4_len as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
        } else {
            f.extend_from_slice(&SEQ.to_be_bytes());
            f.extend_from_slice(&0x0102_0304u32.to_be_bytes());
            f.push(((l4_hlen / 4) as u8) << 4);
            f.push(s.tcp_flags);
            f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
            for i in 0..s.tcp_opts {
                f.push(if i % 4 < 2 { 1 } else { 8 });
            }
        }
        f.extend_from_slice(&s.payload);
        let pseudo = pseudo_sum(&f, l3, s.v6, proto, l4_len);
        let off = if s.udp { 6 } else { 16 };
        f[l4 + off..l4 + off + 2].copy_from_slice(&fold_naive(pseudo).to_be_bytes());
        let hdr = VirtioNetHdr {
            flags: VirtioNetHdr::F_NEEDS_CSUM,
            gso_type: s.gso_type,
            hdr_len: (l4 + l4_hlen) as u16,
            gso_size: s.gso_size,
            csum_start: l4 as u16,
            csum_offset: off as u16,
            num_buffers: 0,
        };
        (f, hdr, l3, l4)
    }

    /// A TSO frame shortened to its first k segments is byte for byte the
    /// frame built with that much payload (IP length, IPv4 checksum and
    /// the partial TCP checksum included).
    #[test]
    fn truncate_tso_equals_the_shorter_frame() {
        for v6 in [false, true] {
            for vlans in [0, 1] {
                for k in [1usize, 2, 5] {
                    let mut long = tcp4(10_000);
                    long.v6 = v6;
                    long.vlans = vlans;
                    if v6 {
                        long.gso_type = VirtioNetHdr::GSO_TCPV6;
                    }
                    let (mut f, hdr, _, _) = build(&long);
                    let mut short = long.clone();
                    short.payload.truncate(k * 1448);
                    short.tcp_flags &= !(TCP_FIN | TCP_PSH);
                    let (want, _, _, _) = build(&short);
                    let n = truncate_tso(&mut f, &hdr, k).unwrap();
                    assert_eq!(&f[..n], &want[..], "v6={v6} vlans={vlans} k={k}");
                }
                // As many segments as it has, or more: unchanged.
                let (mut f, hdr, _, _) = build(&tcp4(3000));
                let len = f.len();
                assert_eq!(truncate_tso(&mut f, &hdr, 3).unwrap(), len);
            }
        }
        let mut udp = tcp4(5000);
        udp.udp = true;
        udp.gso_type = VirtioNetHdr::GSO_UDP_L4;
        let (mut f, hdr, _, _) = build(&udp);
        assert!(truncate_tso(&mut f, &hdr, 1).is_err(), "only TSO");
    }

    fn pseudo_sum(f: &[u8], l3: usize, v6: bool, proto: u8, l4_len: usize) -> u64 {
        let addrs = if v6 {
            &f[l3 + 8..l3 + 40]
        } else {
            &f[l3 + 12..l3 + 20]
        };
        sum16(addrs) + u64::from(proto) + l4_len as u64
    }

    /// What the verifier read from one segment.
    #[derive(Debug)]
    struct Seg {
        ip_id: u16,
        frag: u16,
        seq: u32,
        tcp_flags: u8,
        /// L4 payload (TCP/USO) or IP payload (UFO).
        payload: Vec<u8>,
    }

    /// Verifies one output frame from scratch: IP lengths, IPv4 header
    /// checksum, and (unless `ip_payload`, a UFO fragment) the TCP/UDP
    /// checksum over the pseudo-header.
    fn verify(seg: &[u8], l3: usize, l4: usize, v6: bool, udp: bool, ip_payload: bool) -> Seg {
        let mut r = Seg {
            ip_id: 0,
            frag: 0,
            seq: 0,
            tcp_flags: 0,
            payload: vec![],
        };
        let ip_len = seg.len() - l3;
        if v6 {
            assert_eq!(
                usize::from(rd16(seg, l3 + 4)),
                ip_len - 40,
                "IPv6 payload length"
            );
        } else {
            let ihl = usize::from(seg[l3] & 0xf) * 4;
            assert_eq!(usize::from(rd16(seg, l3 + 2)), ip_len, "IPv4 total length");
            assert_eq!(
                fold_naive(sum16(&seg[l3..l3 + ihl])),
                0xffff,
                "IPv4 header checksum"
            );
            r.ip_id = rd16(seg, l3 + 4);
            r.frag = rd16(seg, l3 + 6);
        }
        if ip_payload {
            let ihl = usize::from(seg[l3] & 0xf) * 4;
            r.payload = seg[l3 + ihl..].to_vec();
            return r;
        }
        let l4_len = seg.len() - l4;
        let proto = if udp { 17 } else { 6 };
        let s = pseudo_sum(seg, l3, v6, proto, l4_len) + sum16(&seg[l4..]);
        assert_eq!(fold_naive(s), 0xffff, "L4 checksum");
        if udp {
            assert_eq!(usize::from(rd16(seg, l4 + 4)), l4_len, "UDP length");
            assert_ne!(rd16(seg, l4 + 6), 0, "UDP checksum 0 is 'none'");
            r.payload = seg[l4 + 8..].to_vec();
        } else {
            let hlen = usize::from(seg[l4 + 12] >> 4) * 4;
            r.seq = rd32(seg, l4 + 4);
            r.tcp_flags = seg[l4 + 13];
            r.payload = seg[l4 + hlen..].to_vec();
        }
        // The segment parses cleanly.
        let (_, layout) = extract_layout(seg, PortNo(1));
        assert_eq!(layout.malformed, None);
        assert_eq!((usize::from(layout.l3), usize::from(layout.l4)), (l3, l4));
        r
    }

    fn collect(frame: &[u8], hdr: &VirtioNetHdr, mtu: usize) -> Result<Vec<Vec<u8>>, OffloadError> {
        let mut segs = vec![];
        let mut scratch = vec![0u8; 70000];
        let n = segment(frame, hdr, mtu, &mut scratch, |s| segs.push(s.to_vec()))?;
        assert_eq!(n, segs.len());
        Ok(segs)
    }

    /// Segments a TCP spec and checks every segment; returns them verified.
    fn check_tso(s: &Spec, mtu: usize) -> Vec<Seg> {
        let (f, hdr, l3, l4) = build(s);
        let segs = collect(&f, &hdr, mtu).unwrap();
        let seg = Segmenter::new(&f, &hdr, mtu).unwrap();
        assert_eq!(seg.n_segments(), segs.len());
        let size = seg.segment_size();
        assert!(size <= usize::from(s.gso_size));
        let v: Vec<Seg> = segs
            .iter()
            .map(|x| verify(x, l3, l4, s.v6, false, false))
            .collect();
        let mut off = 0u32;
        for (i, (g, raw)) in v.iter().zip(&segs).enumerate() {
            let last = i + 1 == v.len();
            assert!(raw.len() - l3 <= mtu);
            assert!(raw.len() <= seg.max_segment_len());
            if !last {
                assert_eq!(g.payload.len(), size);
            }
            assert_eq!(g.seq, SEQ.wrapping_add(off), "seq of segment {i}");
            off += g.payload.len() as u32;
            if !s.v6 {
                assert_eq!(g.ip_id, IP_ID.wrapping_add(i as u16), "id of segment {i}");
                assert_eq!(g.frag, 0x4000, "DF kept");
            }
            let mut want = s.tcp_flags;
            if !last {
                want &= !(TCP_FIN | TCP_PSH);
            }
            if i != 0 {
                want &= !TCP_CWR;
            }
            assert_eq!(g.tcp_flags, want, "flags of segment {i}");
            // Everything but the fixed fields equals the original headers.
            let hlen = raw.len() - g.payload.len();
            let mut a = raw[..hlen].to_vec();
            let mut b = f[..hlen].to_vec();
            for r in [&mut a, &mut b] {
                if s.v6 {
                    r[l3 + 4..l3 + 6].fill(0);
                } else {
                    r[l3 + 2..l3 + 6].fill(0);
                    r[l3 + 10..l3 + 12].fill(0);
                }
                r[l4 + 4..l4 + 8].fill(0);
                r[l4 + 13] = 0;
                r[l4 + 16..l4 + 18].fill(0);
            }
            assert_eq!(a, b, "headers of segment {i}");
        }
        let all: Vec<u8> = v.iter().flat_map(|g| g.payload.clone()).collect();
        assert_eq!(all, s.payload);
        v
    }

    // ---- Header codec. ----

    #[test]
    fn hdr_golden_parse_and_write() {
        let bytes = [
            0x01, 0x81, 0x42, 0x00, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00, 0x02, 0x01,
        ];
        let h = VirtioNetHdr {
            flags: VirtioNetHdr::F_NEEDS_CSUM,
            gso_type: VirtioNetHdr::GSO_TCPV4 | VirtioNetHdr::GSO_ECN,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 0x0102,
        };
        assert_eq!(VirtioNetHdr::parse_mrg(&bytes), Ok(h));
        assert_eq!(
            VirtioNetHdr::parse(&bytes),
            Ok(VirtioNetHdr {
                num_buffers: 0,
                ..h
            })
        );
        let mut out = [0xeeu8; 13];
        h.write_mrg(&mut out).unwrap();
        assert_eq!(&out[..12], &bytes);
        assert_eq!(out[12], 0xee);
        let mut out = [0xeeu8; 12];
        h.write(&mut out).unwrap();
        assert_eq!(&out[..10], &bytes[..10]);
        assert_eq!(&out[10..], &[0xee, 0xee]);
        assert!(h.needs_csum() && h.is_gso());
        assert_eq!(h.gso_kind(), VirtioNetHdr::GSO_TCPV4);
        assert!(!VirtioNetHdr::NONE.is_gso() && !VirtioNetHdr::NONE.needs_csum());
    }

    #[test]
    fn hdr_truncated() {
        let e = OffloadError::HdrTruncated { need: 10, got: 9 };
        assert_eq!(VirtioNetHdr::parse(&[0; 9]), Err(e));
        assert_eq!(VirtioNetHdr::NONE.write(&mut [0; 9]), Err(e));
        let e = OffloadError::HdrTruncated { need: 12, got: 11 };
        assert_eq!(VirtioNetHdr::parse_mrg(&[0; 11]), Err(e));
        assert_eq!(VirtioNetHdr::NONE.write_mrg(&mut [0; 11]), Err(e));
    }

    #[test]
    fn adjust_for_vlan_shifts_and_refuses() {
        let base = VirtioNetHdr {
            flags: VirtioNetHdr::F_NEEDS_CSUM,
            hdr_len: 66,
            csum_start: 34,
            csum_offset: 16,
            ..VirtioNetHdr::NONE
        };
        let mut h = base;
        assert!(adjust_for_vlan(&mut h, 4));
        assert_eq!((h.csum_start, h.hdr_len, h.csum_offset), (38, 70, 16));
        assert!(adjust_for_vlan(&mut h, -4));
        assert_eq!(h, base);
        // Without NEEDS_CSUM csum_start stays; hdr_len 0 stays 0.
        let mut h = VirtioNetHdr {
            csum_start: 7,
            ..VirtioNetHdr::NONE
        };
        assert!(adjust_for_vlan(&mut h, 4));
        assert_eq!((h.csum_start, h.hdr_len), (7, 0));
        // csum_start would land inside the Ethernet header: refused.
        let mut h = VirtioNetHdr {
            csum_start: 16,
            ..base
        };
        assert!(!adjust_for_vlan(&mut h, -4));
        assert_eq!(h.csum_start, 16);
        // Overflow: refused, unchanged.
        let mut h = VirtioNetHdr {
            hdr_len: u16::MAX,
            ..base
        };
        assert!(!adjust_for_vlan(&mut h, 4));
        assert_eq!((h.csum_start, h.hdr_len), (34, u16::MAX));
    }

    // ---- Checksum completion. ----

    #[test]
    fn csum_sum_matches_naive_odd_and_even() {
        let d = payload(1001);
        for n in [0, 1, 2, 3, 4, 5, 7, 8, 9, 1000, 1001] {
            assert_eq!(csum_sum(&d[..n]), fold_naive(sum16(&d[..n])), "len {n}");
        }
        assert_eq!(csum_sum(&[0xff; 64]), 0xffff);
        assert_eq!(csum_sum(&[0x12, 0x34, 0x56]), 0x6834);
    }

    #[test]
    fn complete_checksum_tcp_and_udp_v4_v6_vlan() {
        for (v6, udp, vlans, n) in [
            (false, false, 0, 1000),
            (false, true, 1, 777),
            (true, false, 2, 65000),
            (true, true, 0, 1),
            (false, false, 0, 0),
        ] {
            let s = Spec {
                vlans,
                v6,
                udp,
                gso_type: VirtioNetHdr::GSO_NONE,
                ..tcp4(n)
            };
            let (mut f, hdr, l3, l4) = build(&s);
            assert!(complete_checksum(&mut f, &hdr));
            let g = verify(&f, l3, l4, v6, udp, false);
            assert_eq!(g.payload, s.payload);
        }
    }

    #[test]
    fn complete_checksum_writes_zero_as_ffff() {
        // Choose two payload bytes so that the checksum comes out 0.
        let s = Spec {
            udp: true,
            ..tcp4(10)
        };
        let (mut f, hdr, _, l4) = build(&s);
        let n = f.len();
        f[n - 2..].fill(0);
        let rest = fold_naive(sum16(&f[l4..]));
        // sum + x must be 0xffff (complement 0).
        let x = 0xffff - rest;
        f[n - 2..].copy_from_slice(&x.to_be_bytes());
        assert!(complete_checksum(&mut f, &hdr));
        assert_eq!(rd16(&f, l4 + 6), 0xffff);
    }

    #[test]
    fn complete_checksum_refuses_out_of_range() {
        let (f, hdr, _, _) = build(&tcp4(100));
        for (start, off) in [
            (f.len() as u16, 0),
            (f.len() as u16 - 17, 16),
            (u16::MAX, u16::MAX),
        ] {
            let mut g = f.clone();
            let h = VirtioNetHdr {
                csum_start: start,
                csum_offset: off,
                ..hdr
            };
            assert!(!complete_checksum(&mut g, &h));
            assert_eq!(g, f);
        }
        // The last possible place is fine.
        let mut g = f.clone();
        let h = VirtioNetHdr {
            csum_start: f.len() as u16 - 2,
            csum_offset: 0,
            ..hdr
        };
        assert!(complete_checksum(&mut g, &h));
        // No NEEDS_CSUM: nothing to do, nothing changed.
        let mut g = f.clone();
        let h = VirtioNetHdr {
            flags: VirtioNetHdr::F_DATA_VALID,
            csum_start: u16::MAX,
            ..hdr
        };
        assert!(complete_checksum(&mut g, &h));
        assert_eq!(g, f);
    }

    #[test]
    fn vlan_push_pop_keeps_header_consistent() {
        // A partial-checksum frame gets a tag pushed, the header adjusted,
        // then the checksum completed; then popped again.
        let s = Spec {
            gso_type: VirtioNetHdr::GSO_NONE,
            ..tcp4(500)
        };
        let (f, mut hdr, l3, l4) = build(&s);
        let mut buf = vec![0u8; 4 + f.len()];
        buf[4..].copy_from_slice(&f);
        let (mut start, mut len) = (4, f.len());
        assert!(push_vlan(&mut buf, &mut start, &mut len, 0x8100, 42));
        assert!(adjust_for_vlan(&mut hdr, 4));
        let mut tagged = buf[start..start + len].to_vec();
        assert!(complete_checksum(&mut tagged, &hdr));
        verify(&tagged, l3 + 4, l4 + 4, false, false, false);
        assert!(pop_vlan(&mut buf, &mut start, &mut len));
        assert!(adjust_for_vlan(&mut hdr, -4));
        let mut untagged = buf[start..start + len].to_vec();
        assert!(complete_checksum(&mut untagged, &hdr));
        verify(&untagged, l3, l4, false, false, false);
    }

    // ---- Segmentation: golden frames. ----

    #[test]
    fn tso_v4_3000_bytes() {
        let v = check_tso(&tcp4(3000), 1500);
        let lens: Vec<usize> = v.iter().map(|g| g.payload.len()).collect();
        assert_eq!(lens, [1448, 1448, 104]);
        let flags: Vec<u8> = v.iter().map(|g| g.tcp_flags).collect();
        assert_eq!(
            flags,
            [TCP_ACK | TCP_CWR, TCP_ACK, TCP_ACK | TCP_PSH | TCP_FIN]
        );
        // IPv4 id wraps from 0xfffe.
        let ids: Vec<u16> = v.iter().map(|g| g.ip_id).collect();
        assert_eq!(ids, [0xfffe, 0xffff, 0]);
    }

    #[test]
    fn tso_v4_exact_multiple_and_options() {
        let s = Spec {
            ip_opts: 8,
            tcp_opts: 12,
            ..tcp4(1448 * 3)
        };
        let v = check_tso(&s, usize::MAX);
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn tso_v6_with_extension_header() {
        let s = Spec {
            v6: true,
            ip_opts: 8,
            tcp_opts: 12,
            gso_type: VirtioNetHdr::GSO_TCPV6,
            ..tcp4(3000)
        };
        // 40 + 8 + 32 header bytes leave 1420 of a 1500 MTU.
        let v = check_tso(&s, 1500);
        let lens: Vec<usize> = v.iter().map(|g| g.payload.len()).collect();
        assert_eq!(lens, [1420, 1420, 160]);
        let v = check_tso(&s, usize::MAX);
        let lens: Vec<usize> = v.iter().map(|g| g.payload.len()).collect();
        assert_eq!(lens, [1448, 1448, 104]);
    }

    #[test]
    fn tso_vlan_tagged_one_and_two_tags() {
        for vlans in [1, 2] {
            for v6 in [false, true] {
                let s = Spec {
                    vlans,
                    v6,
                    gso_type: if v6 {
                        VirtioNetHdr::GSO_TCPV6
                    } else {
                        VirtioNetHdr::GSO_TCPV4
                    },
                    ..tcp4(3000)
                };
                assert_eq!(check_tso(&s, 1500).len(), 3);
            }
        }
    }

    #[test]
    fn tso_64k_mtu_smaller_than_mss() {
        // gso_size 8948 (9000 MTU sender) out through a 1500 MTU port.
        let s = Spec {
            gso_size: 8948,
            tcp_opts: 12,
            ..tcp4(65535 - 20 - 32)
        };
        let v = check_tso(&s, 1500);
        assert!(v[..v.len() - 1].iter().all(|g| g.payload.len() == 1448));
        assert_eq!(v.len(), (65535 - 52usize).div_ceil(1448));
    }

    #[test]
    fn tso_no_payload_yields_headers_once() {
        let v = check_tso(&tcp4(0), 1500);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].tcp_flags, tcp4(0).tcp_flags);
    }

    #[test]
    fn uso_v4_v6_vlan() {
        for (v6, vlans) in [(false, 0), (true, 0), (false, 1), (true, 2)] {
            let s = Spec {
                v6,
                vlans,
                udp: true,
                gso_type: VirtioNetHdr::GSO_UDP_L4,
                gso_size: 1200,
                ..tcp4(3000)
            };
            let (f, hdr, l3, l4) = build(&s);
            let segs = collect(&f, &hdr, 1500).unwrap();
            let v: Vec<Seg> = segs
                .iter()
                .map(|x| verify(x, l3, l4, v6, true, false))
                .collect();
            let lens: Vec<usize> = v.iter().map(|g| g.payload.len()).collect();
            assert_eq!(lens, [1200, 1200, 600]);
            if !v6 {
                let ids: Vec<u16> = v.iter().map(|g| g.ip_id).collect();
                assert_eq!(ids, [0xfffe, 0xffff, 0]);
            }
            let all: Vec<u8> = v.iter().flat_map(|g| g.payload.clone()).collect();
            assert_eq!(all, s.payload);
        }
    }

    #[test]
    fn uso_datagram_larger_than_mtu_is_refused() {
        let s = Spec {
            udp: true,
            gso_type: VirtioNetHdr::GSO_UDP_L4,
            gso_size: 1472,
            ..tcp4(3000)
        };
        let (f, hdr, _, _) = build(&s);
        assert!(collect(&f, &hdr, 1500).is_ok());
        assert_eq!(
            Segmenter::new(&f, &hdr, 1499).err(),
            Some(OffloadError::MtuTooSmall {
                mtu: 1499,
                need: 1500
            })
        );
    }

    #[test]
    fn ufo_v4_fragments_reassemble() {
        let s = Spec {
            udp: true,
            vlans: 1,
            gso_type: VirtioNetHdr::GSO_UDP,
            gso_size: 1000, // rounded down to 1000 (a multiple of 8)
            ..tcp4(3000)
        };
        let (f, hdr, l3, l4) = build(&s);
        let segs = collect(&f, &hdr, 1500).unwrap();
        let v: Vec<Seg> = segs
            .iter()
            .map(|x| verify(x, l3, l4, false, true, true))
            .collect();
        let lens: Vec<usize> = v.iter().map(|g| g.payload.len()).collect();
        assert_eq!(lens, [1000, 1000, 1000, 8]);
        let mut off = 0;
        for (i, g) in v.iter().enumerate() {
            assert_eq!(g.ip_id, IP_ID, "fragments share the id");
            let mf = if i + 1 < v.len() { 0x2000 } else { 0 };
            assert_eq!(g.frag, 0x4000 | mf | (off / 8) as u16);
            off += g.payload.len();
        }
        // Reassembled: a datagram with a complete, valid checksum.
        let mut whole = f.clone();
        let dgram: Vec<u8> = v.iter().flat_map(|g| g.payload.clone()).collect();
        whole.truncate(l4);
        whole.extend_from_slice(&dgram);
        verify(&whole, l3, l4, false, true, false);
        assert_eq!(&dgram[8..], &s.payload[..]);
        // A smaller MTU rounds the fragment size down to a multiple of 8.
        let seg = Segmenter::new(&f, &hdr, 600).unwrap();
        assert_eq!(seg.segment_size(), 576);
    }

    #[test]
    fn ufo_v6_unsupported() {
        let s = Spec {
            udp: true,
            v6: true,
            gso_type: VirtioNetHdr::GSO_UDP,
            ..tcp4(3000)
        };
        let (f, hdr, _, _) = build(&s);
        assert_eq!(
            Segmenter::new(&f, &hdr, 1500).err(),
            Some(OffloadError::UnsupportedGsoType(VirtioNetHdr::GSO_UDP))
        );
    }

    #[test]
    fn segmenter_rejects_inconsistent_headers() {
        let (f, hdr, _, _) = build(&tcp4(3000));
        let err = |h: VirtioNetHdr, f: &[u8], mtu: usize| Segmenter::new(f, &h, mtu).err();
        assert_eq!(
            err(VirtioNetHdr { gso_size: 0, ..hdr }, &f, 1500),
            Some(OffloadError::GsoSizeZero)
        );
        assert_eq!(
            err(VirtioNetHdr { gso_type: 0, ..hdr }, &f, 1500),
            Some(OffloadError::NotGso)
        );
        assert_eq!(
            err(VirtioNetHdr { gso_type: 2, ..hdr }, &f, 1500),
            Some(OffloadError::UnsupportedGsoType(2))
        );
        assert_eq!(
            err(
                VirtioNetHdr {
                    hdr_len: f.len() as u16 + 1,
                    ..hdr
                },
                &f,
                1500
            ),
            Some(OffloadError::HdrLenBeyondFrame {
                hdr_len: f.len() as u16 + 1,
                frame_len: f.len()
            })
        );
        assert!(matches!(
            err(
                VirtioNetHdr {
                    csum_start: f.len() as u16 - 1,
                    ..hdr
                },
                &f,
                1500
            ),
            Some(OffloadError::CsumOutOfRange { .. })
        ));
        assert_eq!(
            err(
                VirtioNetHdr {
                    gso_type: VirtioNetHdr::GSO_TCPV6,
                    ..hdr
                },
                &f,
                1500
            ),
            Some(OffloadError::HeadersMismatch(VirtioNetHdr::GSO_TCPV6))
        );
        assert_eq!(
            err(
                VirtioNetHdr {
                    gso_type: VirtioNetHdr::GSO_UDP_L4,
                    ..hdr
                },
                &f,
                1500
            ),
            Some(OffloadError::HeadersMismatch(VirtioNetHdr::GSO_UDP_L4))
        );
        // MTU leaving no room after IP + TCP headers.
        assert_eq!(
            err(hdr, &f, 40),
            Some(OffloadError::MtuTooSmall { mtu: 40, need: 48 })
        );
        // Cut short: the IPv4 total length exceeds the frame.
        assert_eq!(
            err(hdr, &f[..f.len() - 1], 1500),
            Some(OffloadError::Malformed(Malformed::Ipv4BadTotalLen))
        );
        // Already a fragment (MF set; header checksum not checked).
        let mut g = f.clone();
        g[14 + 6] |= 0x20;
        assert_eq!(err(hdr, &g, 1500), Some(OffloadError::Fragment));
    }

    #[test]
    fn next_into_small_buffer_consumes_nothing() {
        let (f, hdr, _, _) = build(&tcp4(3000));
        let mut seg = Segmenter::new(&f, &hdr, 1500).unwrap();
        let need = seg.max_segment_len();
        assert_eq!(need, 14 + 20 + 20 + 1448);
        let mut small = vec![0u8; need - 1];
        assert_eq!(
            seg.next_into(&mut small),
            Err(OffloadError::BufferTooSmall {
                need,
                got: need - 1
            })
        );
        let mut big = vec![0u8; need];
        let mut n = 0;
        while let Some(len) = seg.next_into(&mut big).unwrap() {
            assert!(len <= need);
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!(seg.next_into(&mut big), Ok(None));
        // `segment` checks the scratch size before handing anything out.
        let mut calls = 0;
        assert!(segment(&f, &hdr, 1500, &mut small, |_| calls += 1).is_err());
        assert_eq!(calls, 0);
    }

    // ---- Properties. ----

    fn any_hdr() -> impl Strategy<Value = VirtioNetHdr> {
        (
            any::<u8>(),
            prop_oneof![
                Just(1u8),
                Just(3),
                Just(4),
                Just(5),
                Just(0x81),
                any::<u8>()
            ],
            0u16..300,
            prop_oneof![0u16..3, 1u16..2000, any::<u16>()],
            0u16..300,
            0u16..40,
        )
            .prop_map(
                |(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)| VirtioNetHdr {
                    flags,
                    gso_type,
                    hdr_len,
                    gso_size,
                    csum_start,
                    csum_offset,
                    num_buffers: 0,
                },
            )
    }

    /// Drives everything over `f` and `h`; checks the basic promises of
    /// whatever succeeds.
    fn drive(f: &[u8], h: &VirtioNetHdr, mtu: usize, buf_len: usize) {
        let _ = VirtioNetHdr::parse(f);
        let _ = VirtioNetHdr::parse_mrg(f);
        let mut g = f.to_vec();
        let _ = complete_checksum(&mut g, h);
        let mut h2 = *h;
        let _ = adjust_for_vlan(&mut h2, -4);
        let _ = adjust_for_vlan(&mut h2, 4);
        if let Ok(mut seg) = Segmenter::new(f, h, mtu) {
            let max = seg.max_segment_len();
            let mut buf = vec![0u8; buf_len];
            let mut n = 0;
            while let Ok(Some(len)) = seg.next_into(&mut buf) {
                assert!(len <= max && len <= buf_len);
                n += 1;
                assert!(n <= seg.n_segments());
            }
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(f in proptest::collection::vec(any::<u8>(), 0..300),
                                    h in any_hdr(), mtu in 0usize..2000, buf in 0usize..400) {
            drive(&f, &h, mtu, buf);
        }

        #[test]
        fn mutated_valid_frames_never_panic(n in 0usize..3000, v6 in any::<bool>(),
                                            udp in any::<bool>(), vlans in 0usize..3,
                                            h in any_hdr(), mtu in 0usize..2000,
                                            flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..4),
                                            cut in any::<u16>()) {
            let s = Spec { v6, udp, vlans, ..tcp4(n) };
            let (mut f, hdr, _, _) = build(&s);
            for (at, v) in flips {
                let i = usize::from(at) % f.len();
                f[i] = v;
            }
            if cut % 4 == 0 {
                f.truncate(usize::from(cut) % (f.len() + 1));
            }
            let h = VirtioNetHdr { gso_type: h.gso_type, gso_size: h.gso_size, ..hdr };
            drive(&f, &h, mtu, 2000);
        }

        #[test]
        fn csum_sum_equals_naive(d in proptest::collection::vec(any::<u8>(), 0..600)) {
            prop_assert_eq!(csum_sum(&d), fold_naive(sum16(&d)));
        }

        #[test]
        fn tso_concatenates_to_payload(n in 0usize..9000, v6 in any::<bool>(), vlans in 0usize..3,
                                       ip_opts in 0usize..3, tcp_opts in 0usize..4,
                                       gso_size in 1u16..3000, mtu_room in 1usize..9000,
                                       flags in any::<u8>(), seed in any::<u8>()) {
            let mut s = Spec {
                v6,
                vlans,
                ip_opts: if v6 { ip_opts * 8 } else { ip_opts * 4 },
                tcp_opts: tcp_opts * 4,
                tcp_flags: flags,
                gso_type: if v6 { VirtioNetHdr::GSO_TCPV6 } else { VirtioNetHdr::GSO_TCPV4 },
                gso_size,
                ..tcp4(0)
            };
            s.payload = (0..n).map(|i| (i as u8).wrapping_mul(seed | 1)).collect();
            // An MTU leaving at least one payload byte after the headers.
            let ip_hdrs = if v6 { 40 } else { 20 } + s.ip_opts + 20 + s.tcp_opts;
            check_tso(&s, ip_hdrs + mtu_room);
        }

        #[test]
        fn uso_concatenates_to_payload(n in 0usize..5000, v6 in any::<bool>(), vlans in 0usize..3,
                                       gso_size in 1u16..1400) {
            let s = Spec {
                v6,
                vlans,
                udp: true,
                gso_type: VirtioNetHdr::GSO_UDP_L4,
                gso_size,
                ..tcp4(n)
            };
            let (f, hdr, l3, l4) = build(&s);
            let segs = collect(&f, &hdr, 1500).unwrap();
            let all: Vec<u8> = segs
                .iter()
                .flat_map(|x| verify(x, l3, l4, v6, true, false).payload)
                .collect();
            prop_assert_eq!(all, s.payload);
        }
    }
}
