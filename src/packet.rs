//! Packet buffers: one frame with headroom, owned by a datapath worker's pool.
//!
//! # Design
//! A buffer is a fixed `BUF_SIZE` byte array; the frame occupies
//! `data[start..start + len]`. Ports receive at `start = HEADROOM`, which
//! leaves room to push VLAN tags (or, later, a tunnel header) in place by
//! moving `start` back, without copying the payload. Buffers are allocated
//! once when a worker starts and reused; nothing on the packet path
//! allocates.
//!
//! Ports with offloads (TAP with `IFF_VNET_HDR`, AF_PACKET with
//! `PACKET_VNET_HDR`) receive a virtio-net header in front of the frame; it
//! is parsed into [`PacketBuf::vnet`] and the frame starts after it. VLAN
//! edits keep `vnet` consistent (`offload::adjust_for_vlan`).
//!
//! # Invariants
//! `start + len <= BUF_SIZE`. A received frame starts near `HEADROOM`: a
//! virtio-net header or a tunnel header longer than usual (Geneve options,
//! GRE checksum) moves it forward, a keyless GRE header 4 bytes back, so at
//! least 56 bytes of headroom remain for pushing tags.

/// Bytes reserved in front of a received frame.
pub const HEADROOM: usize = 64;
/// Largest frame a buffer holds (64 KiB of offloaded TCP plus headroom).
pub const MAX_FRAME: usize = 65536;
/// Room for a virtio-net header received in front of the frame.
pub const VNET_ROOM: usize = 16;
/// Total buffer size.
pub const BUF_SIZE: usize = HEADROOM + VNET_ROOM + MAX_FRAME;

/// Tunnel metadata of a frame: set by the tunnel port that decapsulated
/// it (zero otherwise), seeded into the flow key's `tun_*` fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelMeta {
    /// The key (VNI) it carried.
    pub id: u64,
    /// Outer source address (the remote endpoint), host order.
    pub src: u32,
    /// Outer destination address (this host), host order.
    pub dst: u32,
    /// Tunnel flags (`tun_flags`: OAM from a Geneve O bit).
    pub flags: u16,
    /// (bridge id, OpenFlow port) of the tunnel port the frame belongs
    /// to when that is not the port that read it (several tunnel ports
    /// share one socket); `None`: the reader's own.
    pub redirect: Option<(u32, u32)>,
}

/// One packet buffer.
pub struct PacketBuf {
    /// Backing storage, `BUF_SIZE` bytes.
    data: Box<[u8]>,
    /// Offset of the first frame byte.
    pub start: usize,
    /// Frame length in bytes.
    pub len: usize,
    /// Offload metadata that came with the frame (GSO, partial checksum);
    /// `VirtioNetHdr::NONE` for ports without offloads.
    pub vnet: VirtioNetHdr,
    /// Tunnel metadata (all zero unless a tunnel port received it).
    pub tunnel: TunnelMeta,
}

use flowtable::offload::VirtioNetHdr;

impl std::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketBuf")
            .field("start", &self.start)
            .field("len", &self.len)
            .finish()
    }
}

impl Default for PacketBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketBuf {
    /// A zeroed buffer with an empty frame at `HEADROOM`.
    pub fn new() -> PacketBuf {
        PacketBuf {
            data: vec![0u8; BUF_SIZE].into_boxed_slice(),
            start: HEADROOM,
            len: 0,
            vnet: VirtioNetHdr::NONE,
            tunnel: TunnelMeta::default(),
        }
    }

    /// A placeholder with no storage (does not allocate); holds no frame.
    pub fn empty() -> PacketBuf {
        PacketBuf {
            data: Box::new([]),
            start: 0,
            len: 0,
            vnet: VirtioNetHdr::NONE,
            tunnel: TunnelMeta::default(),
        }
    }

    /// Resets to an empty frame at `HEADROOM`.
    #[inline]
    pub fn reset(&mut self) {
        self.start = HEADROOM;
        self.len = 0;
        self.vnet = VirtioNetHdr::NONE;
        self.tunnel = TunnelMeta::default();
    }

    /// The frame bytes.
    #[inline]
    pub fn frame(&self) -> &[u8] {
        &self.data[self.start..self.start + self.len]
    }

    /// The frame bytes, mutable.
    #[inline]
    pub fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.start + self.len]
    }

    /// Space to receive into: everything from `HEADROOM` on. After a
    /// receive of `n` bytes call `set_received(n)`.
    #[inline]
    pub fn rx_space(&mut self) -> &mut [u8] {
        &mut self.data[HEADROOM..]
    }

    /// Marks `n` bytes received at `HEADROOM`.
    #[inline]
    pub fn set_received(&mut self, n: usize) {
        self.start = HEADROOM;
        self.len = n.min(MAX_FRAME + VNET_ROOM);
        self.vnet = VirtioNetHdr::NONE;
        self.tunnel = TunnelMeta::default();
    }

    /// Marks `n` bytes received at `HEADROOM` that begin with a
    /// `VirtioNetHdr::LEN`-byte virtio-net header; false (frame unusable)
    /// if they are too few.
    #[inline]
    pub fn set_received_vnet(&mut self, n: usize) -> bool {
        let h = VirtioNetHdr::LEN;
        let n = n.min(h + MAX_FRAME);
        match self
            .data
            .get(HEADROOM..HEADROOM + n)
            .filter(|_| n >= h)
            .map(VirtioNetHdr::parse)
        {
            Some(Ok(v)) => {
                self.vnet = v;
                self.tunnel = TunnelMeta::default();
                self.start = HEADROOM + h;
                self.len = n - h;
                true
            }
            _ => {
                self.len = 0;
                false
            }
        }
    }

    /// The whole backing storage and the frame's current start, for edits
    /// that move the frame start (VLAN push/pop).
    #[inline]
    pub fn raw_mut(&mut self) -> (&mut [u8], &mut usize, &mut usize) {
        (&mut self.data, &mut self.start, &mut self.len)
    }

    /// Copies another buffer's frame into this one (for fan-out).
    pub fn copy_from(&mut self, other: &PacketBuf) {
        self.start = other.start;
        self.len = other.len;
        self.vnet = other.vnet;
        self.tunnel = other.tunnel;
        let r = other.start..other.start + other.len;
        self.data[r.clone()].copy_from_slice(&other.data[r]);
    }
}
