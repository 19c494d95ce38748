//! The GRE header (RFC 2784, key and sequence number from RFC 2890) for
//! Ethernet payloads (protocol type 0x6558, as OVS's `type=gre`).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |C| |K|S| Reserved0       | Ver |         Protocol Type         |
//! |      Checksum (optional)      |       Reserved1 (Optional)    |
//! |                         Key (optional)                        |
//! |                 Sequence Number (Optional)                    |
//! ```
//!
//! # Invariants
//! [`Header::parse`] never panics; it accepts version 0 with protocol
//! type 0x6558 and no routing (RFC 1701's R bit). A header with the C bit
//! is only trusted after [`checksum_ok`] over the whole packet (the
//! receiver has it in two pieces). [`Header::emit`] writes exactly
//! [`Header::size`] bytes. Sequence numbers are accepted and ignored on
//! receipt (as OVS), never sent.

use flowtable::offload::csum_sum;

/// Bytes of the base header (flags, version, protocol).
pub const BASE_LEN: usize = 4;
/// Longest header: base, checksum, key and sequence number.
pub const MAX_LEN: usize = 16;
/// Transparent Ethernet Bridging (an Ethernet frame follows).
pub const PROTO_TEB: u16 = 0x6558;
const FLAG_C: u8 = 0x80;
const FLAG_R: u8 = 0x40;
const FLAG_K: u8 = 0x20;
const FLAG_S: u8 = 0x10;

/// A GRE header's variable parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The key, when the K bit is set.
    pub key: Option<u32>,
    /// The C bit: a checksum over header and payload follows.
    pub csum: bool,
    /// The S bit (receive only).
    pub seq: bool,
}

impl Header {
    /// The header's length in bytes.
    #[inline]
    pub fn size(&self) -> usize {
        BASE_LEN
            + 4 * (usize::from(self.csum) + usize::from(self.key.is_some()) + usize::from(self.seq))
    }

    /// Decodes the header at the start of `packet`, or `None` when it is
    /// truncated, not version 0 Ethernet, or routed. The checksum (C bit)
    /// is not checked here: see [`checksum_ok`].
    pub fn parse(packet: &[u8]) -> Option<Header> {
        let b = packet.get(..BASE_LEN)?;
        if b[0] & FLAG_R != 0 || b[0] & 0x0f != 0 || b[1] & 0x07 != 0 {
            return None;
        }
        if u16::from_be_bytes([b[2], b[3]]) != PROTO_TEB {
            return None;
        }
        let csum = b[0] & FLAG_C != 0;
        let mut at = BASE_LEN + if csum { 4 } else { 0 };
        let key = if b[0] & FLAG_K != 0 {
            let k = packet.get(at..at + 4)?;
            at += 4;
            Some(u32::from_be_bytes([k[0], k[1], k[2], k[3]]))
        } else {
            None
        };
        let seq = b[0] & FLAG_S != 0;
        if seq {
            packet.get(at..at + 4)?;
        }
        Some(Header { key, csum, seq })
    }

    /// Encodes into `out[..self.size()]`; with `csum`, `payload` is what
    /// follows the header (the checksum covers both).
    pub fn emit(&self, out: &mut [u8], payload: &[u8]) -> usize {
        let n = self.size();
        let out = &mut out[..n];
        out.fill(0);
        let p = PROTO_TEB.to_be_bytes();
        out[0] = if self.csum { FLAG_C } else { 0 }
            | if self.key.is_some() { FLAG_K } else { 0 }
            | if self.seq { FLAG_S } else { 0 };
        out[2..4].copy_from_slice(&p);
        let at = BASE_LEN + if self.csum { 4 } else { 0 };
        if let Some(k) = self.key {
            out[at..at + 4].copy_from_slice(&k.to_be_bytes());
        }
        if self.csum {
            let c = !csum_pair(out, payload);
            out[4..6].copy_from_slice(&c.to_be_bytes());
        }
        n
    }
}

/// True when the GRE packet `head` followed by `rest` (`head` of even
/// length) carries a correct checksum: the whole packet sums to 0xffff.
pub fn checksum_ok(head: &[u8], rest: &[u8]) -> bool {
    csum_pair(head, rest) == 0xffff
}

/// The folded one's-complement sum of `a` followed by `b` (`a` has an
/// even length).
fn csum_pair(a: &[u8], b: &[u8]) -> u16 {
    debug_assert!(a.len() % 2 == 0);
    let s = u32::from(csum_sum(a)) + u32::from(csum_sum(b));
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_form() {
        let payload = b"an inner ethernet frame, odd length";
        for key in [None, Some(0), Some(0xdead_beef)] {
            for csum in [false, true] {
                let h = Header {
                    key,
                    csum,
                    seq: false,
                };
                let mut p = vec![0u8; MAX_LEN];
                let n = h.emit(&mut p, payload);
                assert_eq!(n, h.size());
                p.truncate(n);
                p.extend_from_slice(payload);
                assert_eq!(Header::parse(&p), Some(h), "{h:?}");
                // The checksum, over any split at an even offset.
                assert!(checksum_ok(&p[..2], &p[2..]) || !csum);
                assert!(checksum_ok(&p[..n], &p[n..]) || !csum);
                if csum {
                    p[n] ^= 1;
                    assert!(!checksum_ok(&p[..n], &p[n..]), "bad checksum is refused");
                }
            }
        }
        // OVS's form with a key: flags 0x2000, protocol 0x6558.
        let mut p = [0u8; 8];
        Header {
            key: Some(42),
            csum: false,
            seq: false,
        }
        .emit(&mut p, &[]);
        assert_eq!(p, [0x20, 0, 0x65, 0x58, 0, 0, 0, 42]);
    }

    #[test]
    fn refuses_what_it_cannot_carry() {
        let ok = [0x20, 0, 0x65, 0x58, 0, 0, 0, 42, 0xff];
        assert!(Header::parse(&ok).is_some());
        let with = |i: usize, v: u8| {
            let mut x = ok;
            x[i] = v;
            Header::parse(&x)
        };
        assert_eq!(with(0, 0x60), None, "routing");
        assert_eq!(with(1, 0x01), None, "version 1 (PPTP)");
        assert_eq!(with(3, 0x00), None, "not Ethernet");
        assert_eq!(Header::parse(&ok[..6]), None, "key cut short");
        // Sequence numbers are accepted and skipped.
        let s = [0x30, 0, 0x65, 0x58, 0, 0, 0, 42, 0, 0, 0, 1];
        assert_eq!(Header::parse(&s).unwrap().size(), 12);
    }
}
