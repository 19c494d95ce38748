//! The VXLAN header (RFC 7348 §5).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! ```
//!
//! # Invariants
//! [`Header::parse`] never panics; it accepts any 8 bytes with the I flag
//! set, and ignores the reserved bits (RFC 7348: "MUST be ignored on receipt"). [`Header::emit`] writes
//! exactly [`HEADER_LEN`] bytes and panics only when given fewer.

/// Bytes of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;
/// The "VNI valid" flag in the first byte.
const FLAG_I: u8 = 0x08;
/// Smallest inner frame accepted (an Ethernet header).
pub const MIN_INNER: usize = 14;

/// A decoded VXLAN header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The 24-bit VNI.
    pub vni: u32,
}

impl Header {
    /// Decodes the header at the start of a UDP payload; `None` when the
    /// payload is too short for a header or the I flag is clear.
    #[inline]
    pub fn parse(payload: &[u8]) -> Option<Header> {
        let h = payload.get(..HEADER_LEN)?;
        if h[0] & FLAG_I == 0 {
            return None;
        }
        Some(Header {
            vni: u32::from_be_bytes([0, h[4], h[5], h[6]]),
        })
    }

    /// Encodes into `out[..8]` (the VNI's top 8 bits are ignored).
    #[inline]
    pub fn emit(&self, out: &mut [u8]) {
        let v = (self.vni & MAX_VNI).to_be_bytes();
        out[..HEADER_LEN].copy_from_slice(&[FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0]);
    }

    /// The encoded header.
    #[inline]
    pub fn bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0; HEADER_LEN];
        self.emit(&mut b);
        b
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// VNI 42 as Linux's vxlan driver sends it (captured header bytes).
    const GOLDEN_42: [u8; 8] = [0x08, 0, 0, 0, 0x00, 0x00, 0x2a, 0];

    #[test]
    fn emit_golden() {
        assert_eq!(Header { vni: 42 }.bytes(), GOLDEN_42);
        assert_eq!(
            Header { vni: 0x123456 }.bytes(),
            [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]
        );
    }

    #[test]
    fn parse_golden() {
        let mut p = [0u8; 8 + 14];
        p[..8].copy_from_slice(&GOLDEN_42);
        assert_eq!(Header::parse(&p), Some(Header { vni: 42 }));
        // Reserved bits are ignored.
        p[0] |= 0x80;
        p[7] = 0xff;
        p[1] = 0xff;
        assert_eq!(Header::parse(&p), Some(Header { vni: 42 }));
    }

    #[test]
    fn parse_rejects() {
        let mut p = [0u8; 8 + 14];
        p[..8].copy_from_slice(&GOLDEN_42);
        assert_eq!(Header::parse(&p[..3]), None);
        assert_eq!(Header::parse(&[]), None);
        p[0] = 0;
        assert_eq!(Header::parse(&p), None, "I flag clear");
    }

    #[test]
    fn round_trip_all_vni_bits() {
        for vni in [0, 1, 0xff, 0x100, 0xffff, 0x10000, MAX_VNI] {
            let mut p = [0u8; 8 + 14];
            Header { vni }.emit(&mut p);
            assert_eq!(Header::parse(&p).unwrap().vni, vni);
        }
    }
}
