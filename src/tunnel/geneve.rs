//! The Geneve header (RFC 8926 §3.4), Ethernet payloads only.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//! |        Virtual Network Identifier (VNI)       |    Reserved   |
//! |                    Variable-Length Options                    |
//! ```
//!
//! # Invariants
//! [`Header::parse`] never panics. It accepts version 0 with protocol
//! type 0x6558 (Transparent Ethernet Bridging) and reports how long the
//! header is with its options, which are skipped: rvs understands no
//! option, so a packet with the C (critical options present) bit set is
//! refused, as RFC 8926 §3.5.1 requires of an endpoint that does not
//! understand them. [`Header::bytes`] writes a header without options.

/// Bytes of the fixed part of the header.
pub const HEADER_LEN: usize = 8;
/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;
/// Transparent Ethernet Bridging (an Ethernet frame follows).
pub const PROTO_TEB: u16 = 0x6558;
/// The OAM flag (byte 1).
const FLAG_O: u8 = 0x80;
/// The critical-options flag (byte 1).
const FLAG_C: u8 = 0x40;

/// A decoded Geneve header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The 24-bit VNI.
    pub vni: u32,
    /// The O bit: an OAM frame (OVS's `tun_flags=+oam`).
    pub oam: bool,
    /// Header length with options, in bytes (8 + 4 × Opt Len).
    pub len: usize,
}

impl Header {
    /// Decodes the header at the start of a UDP payload; `None` when it is
    /// too short, another version, not Ethernet, or has critical options.
    /// Only the fixed 8 bytes are read: the caller checks that `len`
    /// bytes (the options) are there.
    #[inline]
    pub fn parse(payload: &[u8]) -> Option<Header> {
        let h = payload.get(..HEADER_LEN)?;
        if h[0] >> 6 != 0 || h[1] & FLAG_C != 0 {
            return None;
        }
        if u16::from_be_bytes([h[2], h[3]]) != PROTO_TEB {
            return None;
        }
        Some(Header {
            vni: u32::from_be_bytes([0, h[4], h[5], h[6]]),
            oam: h[1] & FLAG_O != 0,
            len: HEADER_LEN + usize::from(h[0] & 0x3f) * 4,
        })
    }

    /// The encoded header (no options; the VNI's top 8 bits are ignored).
    #[inline]
    pub fn bytes(vni: u32, oam: bool) -> [u8; HEADER_LEN] {
        let v = (vni & MAX_VNI).to_be_bytes();
        let p = PROTO_TEB.to_be_bytes();
        let o = if oam { FLAG_O } else { 0 };
        [0, o, p[0], p[1], v[1], v[2], v[3], 0]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_skips_options() {
        let b = Header::bytes(0x12_3456, false);
        assert_eq!(b, [0, 0, 0x65, 0x58, 0x12, 0x34, 0x56, 0]);
        let h = Header::parse(&b).unwrap();
        assert_eq!((h.vni, h.oam, h.len), (0x12_3456, false, 8));
        assert!(Header::parse(&Header::bytes(7, true)).unwrap().oam);
        // Two words of (non-critical) options.
        let mut o = b;
        o[0] = 2;
        assert_eq!(Header::parse(&o).unwrap().len, 16);
    }

    #[test]
    fn refuses_what_it_cannot_carry() {
        let b = Header::bytes(1, false);
        let with = |i: usize, v: u8| {
            let mut x = b;
            x[i] = v;
            Header::parse(&x)
        };
        assert_eq!(with(0, 0x40), None, "version 1");
        assert_eq!(with(1, 0x40), None, "critical options");
        assert_eq!(with(3, 0x00), None, "not Ethernet (0x6500)");
        assert_eq!(Header::parse(&b[..7]), None);
    }
}
