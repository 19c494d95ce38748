//! The flow key: every header field a flow can match, extracted once per packet.
//!
//! # What?
//! [`FlowKey`] is a fixed-size, plain-old-data record of the fields rvs
//! matches on (OVS's `struct flow`, trimmed to what OpenFlow 1.3 and the
//! NORMAL pipeline need). A [`crate::Match`] is a pair of `FlowKey`s: value and
//! mask. The same struct serves as both.
//!
//! # Design
//! The struct is `#[repr(C)]`, 8-byte aligned and has no padding, so it can be
//! viewed as `[u64; FlowKey::WORDS]` (via `bytemuck`, no `unsafe`). The
//! classifier masks and hashes keys word by word, skipping the words a mask
//! leaves at zero. Multi-byte fields are stored in host order as integers
//! (`nw_src` is `u32::from(Ipv4Addr)`), addresses as byte arrays in wire order.
//!
//! Field conventions follow OVS so that printed flows read the same:
//! - `vlan_tci`: the outer 802.1Q/802.1ad tag's TCI with bit 0x1000 (`CFI`)
//!   set when a tag is present; 0 means untagged. `inner_vlan_tci` likewise
//!   for a second tag.
//! - `dl_type`: the Ethertype after the VLAN tags; `0x05ff` for 802.3 frames
//!   that carry a length instead of a type.
//! - ARP: `nw_proto` holds the opcode (low 8 bits), `nw_src`/`nw_dst` the
//!   sender/target protocol addresses, `arp_sha`/`arp_tha` the hardware ones.
//! - ICMP/ICMPv6: `tp_src` is the type, `tp_dst` the code.
//! - Tunnel metadata (`tun_id`, `tun_src`, `tun_dst`, `tun_flags`) is not
//!   in the frame: the port that decapsulated it sets it, flows may
//!   rewrite it, and a tunnel port with `flow` options sends by it. Zero
//!   for frames that did not come from a tunnel.
//! - `nw_frag`: [`FRAG_ANY`] for any fragment, plus [`FRAG_LATER`] for a
//!   non-first fragment (whose L4 fields are then absent and stay zero).
//!
//! # Invariants
//! Fields not present in the packet are zero. Adding a field changes
//! `WORDS`; code that must handle every field destructures `FlowKey` without
//! `..` so that the build breaks where the new field needs handling.
//!
//! # Thread-safety
//! Plain `Copy` data.

use bytemuck::{Pod, Zeroable};

/// `nw_frag` bit: the packet is a fragment (first or later).
pub const FRAG_ANY: u8 = 1;
/// `nw_frag` bit: the packet is a later (non-first) fragment.
pub const FRAG_LATER: u8 = 2;
/// `dl_type` of an 802.3 frame (length field instead of Ethertype).
pub const DL_TYPE_NONE: u16 = 0x05ff;
/// `vlan_tci` bit marking that a tag is present (OVS's `VLAN_CFI`).
pub const VLAN_PRESENT: u16 = 0x1000;
/// `vlan_tci` bits holding the VLAN id.
pub const VLAN_VID_MASK: u16 = 0x0fff;
/// `vlan_tci` bits holding the priority code point.
pub const VLAN_PCP_MASK: u16 = 0xe000;
/// `vlan_tci` shift of the priority code point.
pub const VLAN_PCP_SHIFT: u16 = 13;
/// `tun_flags` bit: an OAM frame (VXLAN-GPE/Geneve "O" bit), as OVS's
/// `FLOW_TNL_F_OAM`.
pub const TUN_FLAG_OAM: u16 = 1;

/// Every matchable header field of one packet (or, as a mask, which bits of
/// each field matter). See the module docs for the conventions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
#[repr(C)]
pub struct FlowKey {
    /// OpenFlow metadata register, carried between tables (0 at ingress).
    pub metadata: u64,
    /// Ingress OpenFlow port number (a `PortNo` value).
    pub in_port: u32,
    /// Ethertype after VLAN tags.
    pub dl_type: u16,
    /// Outer VLAN TCI, with [`VLAN_PRESENT`] set when tagged; 0 if untagged.
    pub vlan_tci: u16,
    /// Destination MAC.
    pub dl_dst: [u8; 6],
    /// Source MAC.
    pub dl_src: [u8; 6],
    /// Inner VLAN TCI of a double-tagged frame, with [`VLAN_PRESENT`].
    pub inner_vlan_tci: u16,
    /// TCP flags (low 12 bits of the TCP header's offset/flags word).
    pub tcp_flags: u16,
    /// IPv4 source, or ARP sender protocol address.
    pub nw_src: u32,
    /// IPv4 destination, or ARP target protocol address.
    pub nw_dst: u32,
    /// IP protocol / IPv6 next header after extension headers / ARP opcode.
    pub nw_proto: u8,
    /// IP TOS / IPv6 traffic class byte (DSCP in the high 6 bits, ECN low 2).
    pub nw_tos: u8,
    /// IPv4 TTL / IPv6 hop limit.
    pub nw_ttl: u8,
    /// Fragment bits, [`FRAG_ANY`] | [`FRAG_LATER`].
    pub nw_frag: u8,
    /// L4 source port; ICMP type.
    pub tp_src: u16,
    /// L4 destination port; ICMP code.
    pub tp_dst: u16,
    /// IPv6 source address.
    pub ipv6_src: [u8; 16],
    /// IPv6 destination address.
    pub ipv6_dst: [u8; 16],
    /// IPv6 flow label (low 20 bits).
    pub ipv6_label: u32,
    /// ARP sender hardware address.
    pub arp_sha: [u8; 6],
    /// ARP target hardware address.
    pub arp_tha: [u8; 6],
    /// Tunnel key (VXLAN/Geneve VNI, GRE key) the frame arrived with, or
    /// the key a tunnel port with `key=flow` sends with; 0 off tunnels.
    pub tun_id: u64,
    /// Outer IPv4 source of the received tunnel packet (the remote).
    pub tun_src: u32,
    /// Outer IPv4 destination of the received tunnel packet (this host),
    /// or where a tunnel port with `remote_ip=flow` sends.
    pub tun_dst: u32,
    /// Tunnel flags as OVS's `tun_flags` (only [`TUN_FLAG_OAM`] exists).
    pub tun_flags: u16,
    /// Padding (always zero): keeps the key a whole number of words.
    pub tun_pad: [u8; 6],
}

impl FlowKey {
    /// Size of the key in 64-bit words.
    pub const WORDS: usize = std::mem::size_of::<FlowKey>() / 8;

    /// A key (or mask) with every field zero.
    pub const ZERO: FlowKey = FlowKey {
        metadata: 0,
        in_port: 0,
        dl_type: 0,
        vlan_tci: 0,
        dl_dst: [0; 6],
        dl_src: [0; 6],
        inner_vlan_tci: 0,
        tcp_flags: 0,
        nw_src: 0,
        nw_dst: 0,
        nw_proto: 0,
        nw_tos: 0,
        nw_ttl: 0,
        nw_frag: 0,
        tp_src: 0,
        tp_dst: 0,
        ipv6_src: [0; 16],
        ipv6_dst: [0; 16],
        ipv6_label: 0,
        arp_sha: [0; 6],
        arp_tha: [0; 6],
        tun_id: 0,
        tun_src: 0,
        tun_dst: 0,
        tun_flags: 0,
        tun_pad: [0; 6],
    };

    /// The key as 64-bit words, for masking and hashing.
    #[inline]
    pub fn words(&self) -> &[u64; FlowKey::WORDS] {
        bytemuck::cast_ref(self)
    }

    /// Mutable word view.
    #[inline]
    pub fn words_mut(&mut self) -> &mut [u64; FlowKey::WORDS] {
        bytemuck::cast_mut(self)
    }

    /// `self & mask`, field by field.
    #[inline]
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        let mut out = *self;
        for (o, m) in out.words_mut().iter_mut().zip(mask.words()) {
            *o &= *m;
        }
        out
    }
}

// The word view needs a padding-free, 8-byte-multiple layout.
const _: () = assert!(std::mem::size_of::<FlowKey>() % 8 == 0);
const _: () = assert!(std::mem::align_of::<FlowKey>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_cover_key() {
        assert_eq!(FlowKey::WORDS, 15);
        let mut k = FlowKey::ZERO;
        k.tun_pad = [0xff; 6];
        assert_ne!(k.words()[FlowKey::WORDS - 1], 0);
    }

    #[test]
    fn masked_keeps_only_mask_bits() {
        let k = FlowKey {
            nw_src: 0x0a00_0001,
            tp_dst: 80,
            ..FlowKey::ZERO
        };
        let m = FlowKey {
            nw_src: 0xff00_0000,
            ..FlowKey::ZERO
        };
        let r = k.masked(&m);
        assert_eq!(r.nw_src, 0x0a00_0000);
        assert_eq!(r.tp_dst, 0);
    }
}
