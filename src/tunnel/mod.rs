//! Tunnels (overlays): the configuration of a tunnel port and the
//! per-datagram receive decision.
//!
//! # What?
//! A tunnel port (`type=vxlan|geneve|gre`, [`TunnelKind`]) carries the
//! Ethernet frames a bridge sends to it to a remote endpoint — inside UDP
//! (VXLAN, Geneve) or GRE — and hands the bridge the frames that endpoint
//! sends back. This module is pure (no I/O): it parses and prints a port's
//! `options:` ([`TunnelConfig`]), encodes and decodes the headers
//! ([`vxlan`], [`geneve`], [`gre`]), and decides where a frame is sent
//! ([`TunnelConfig::destination`]). The socket, and which port a received
//! packet belongs to, is [`crate::port::TunnelPort`].
//!
//! # Design
//! The underlay is the kernel's own UDP/IP stack: tunnel ports use a
//! UDP socket bound to `local_ip:dst_port` (one socket for every port of
//! a type on the same address and port), or a raw IP socket for GRE (one
//! per `local_ip`); the kernel routes the outer
//! packet with the host's routing table, resolves neighbours, adds outer
//! Ethernet/IP/UDP headers and checksums. An address on any ordinary
//! interface (a veth in a namespace, a NIC) is all the setup — no extra
//! bridge carrying the IP (OVS's userspace datapath needs one).
//!
//! Tradeoffs of a bound socket, written down so they are chosen and not
//! discovered:
//! - the outer UDP source port comes from a few transmit-only sockets on
//!   kernel-chosen ephemeral ports, picked by a hash of the inner flow
//!   (RFC 7348 §5), so ECMP underlays spread a tunnel's flows; it takes
//!   a handful of values, not a full per-flow hash as Linux's vxlan.
//! - ports sharing a socket share its options (`tos`, `ttl`,
//!   `df_default`, `csum`): a port that differs is refused. A received
//!   datagram goes to the most specific port that takes it (fixed remote
//!   before `flow`, then fixed key before `flow`); one nobody takes is
//!   counted `tunnel_no_port`.
//! - IPv4 underlay only.
//!
//! # Invariants
//! A [`TunnelConfig`] that parsed is valid: the key fits its type (24-bit
//! VNI, 32-bit GRE key), a UDP type's port is non-zero (GRE's is 0), and
//! `options()` gives back text that parses to the same configuration.
//!
//! Flow-based tunnels (OVS's `remote_ip=flow`, `key=flow`): such a port
//! takes datagrams from any remote / with any VNI, and sends to the
//! flow key's `tun_dst` / with its `tun_id` (set by `set_field` or
//! `set_tunnel` in the flows). Every received frame carries its outer
//! source, destination and VNI into the key (`tun_src`, `tun_dst`,
//! `tun_id`), fixed-remote ports included, so flows can match them.
//!
//! # Limits
//! `local_ip=flow` takes packets to any local address and sends from the
//! flow key's `tun_src` (`IP_PKTINFO` on each send; the routing table's
//! choice when it is 0). No `tos=inherit`/`ttl=inherit`.

pub mod geneve;
pub mod gre;
pub mod vxlan;

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

/// The IANA VXLAN port (RFC 7348); OVS's default. Linux's `ip link add …
/// type vxlan` defaults to 8472 unless `dstport` is given.
pub const VXLAN_PORT: u16 = 4789;
/// The IANA Geneve port (RFC 8926); OVS's and Linux's default.
pub const GENEVE_PORT: u16 = 6081;
/// Bytes VXLAN adds over IPv4 in front of the inner frame: outer IPv4 (20)
/// + UDP (8) + VXLAN (8) + the inner Ethernet header (14) counted against
///   the underlay MTU, i.e. inner MTU = underlay MTU − 50.
pub const VXLAN_OVERHEAD: usize = 50;

/// The encapsulation of a tunnel port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// VXLAN (RFC 7348) over UDP, 24-bit VNI.
    Vxlan,
    /// Geneve (RFC 8926) over UDP, 24-bit VNI; options skipped.
    Geneve,
    /// Ethernet over GRE (IP protocol 47, protocol type 0x6558), optional
    /// 32-bit key.
    Gre,
}

impl TunnelKind {
    /// The port type (`type=vxlan`).
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::Gre => "gre",
        }
    }

    /// The protocol's own spelling, for `trace`.
    pub fn label(self) -> &'static str {
        match self {
            TunnelKind::Vxlan => "VXLAN",
            TunnelKind::Geneve => "Geneve",
            TunnelKind::Gre => "GRE",
        }
    }

    /// True for the UDP encapsulations (a `dst_port`, a source port).
    pub fn is_udp(self) -> bool {
        self != TunnelKind::Gre
    }

    /// The default `dst_port` (0 for GRE, which has none).
    pub fn default_port(self) -> u16 {
        match self {
            TunnelKind::Vxlan => VXLAN_PORT,
            TunnelKind::Geneve => GENEVE_PORT,
            TunnelKind::Gre => 0,
        }
    }

    /// The largest key: a 24-bit VNI, or GRE's 32-bit key.
    pub fn max_key(self) -> u32 {
        match self {
            TunnelKind::Vxlan | TunnelKind::Geneve => vxlan::MAX_VNI,
            TunnelKind::Gre => u32::MAX,
        }
    }
}

impl fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The option keys a tunnel port takes.
pub const OPTION_KEYS: &[&str] = &[
    "remote_ip",
    "local_ip",
    "key",
    "in_key",
    "out_key",
    "dst_port",
    "tos",
    "ttl",
    "df_default",
    "csum",
];

/// A tunnel port's settings, from its `options:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelConfig {
    /// The encapsulation (the port's type).
    pub kind: TunnelKind,
    /// Where encapsulated frames go; received datagrams must come from it.
    /// `None`: `flow` (any remote; sends to the key's `tun_dst`).
    pub remote_ip: Option<Ipv4Addr>,
    /// The address the socket binds (`None`: any local address).
    pub local_ip: Option<Ipv4Addr>,
    /// `local_ip=flow`: bound to any address, sending from the flow key's
    /// `tun_src`.
    pub local_flow: bool,
    /// Key (VNI) that received packets must carry (`key` or `in_key`);
    /// `None`: `flow` (any key, seen in the flow key's `tun_id`). A GRE
    /// packet without a key field has key 0.
    pub in_key: Option<u32>,
    /// Key (VNI) put on transmitted packets (`key` or `out_key`); `None`:
    /// `flow` (the flow key's `tun_id`).
    pub out_key: Option<u32>,
    /// GRE: transmitted packets carry a key field (true when `key` or
    /// `out_key` is given, as OVS). Always true for VXLAN and Geneve, whose
    /// VNI is always there.
    pub key_field: bool,
    /// UDP port, both bound locally and sent to (0 for GRE).
    pub dst_port: u16,
    /// Outer IPv4 TOS byte (`None`: the kernel default, 0).
    pub tos: Option<u8>,
    /// Outer IPv4 TTL (`None`: the kernel default, usually 64).
    pub ttl: Option<u8>,
    /// Set DF on the outer packet (default true, as OVS): an inner frame
    /// too big for the underlay is dropped and counted `too_big` instead of
    /// being fragmented.
    pub df_default: bool,
    /// Checksum the outer packet (default false, as OVS): the UDP checksum
    /// (VXLAN, Geneve; zero otherwise), or GRE's checksum field.
    pub csum: bool,
}

/// Why a port's options were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    /// `remote_ip` is required.
    #[error(
        "a {0} port needs options:remote_ip=IP (the remote tunnel endpoint) or remote_ip=flow"
    )]
    MissingRemote(TunnelKind),
    /// An option this port type does not know.
    #[error("unknown option {0:?} (expected one of remote_ip, local_ip, key, in_key, out_key, dst_port, tos, ttl, df_default, csum)")]
    UnknownOption(String),
    /// A value that does not parse.
    #[error("options:{key}={value}: {why}")]
    BadValue {
        /// The option.
        key: String,
        /// The given value.
        value: String,
        /// What was expected.
        why: &'static str,
    },
}

fn bad(key: &str, value: &str, why: &'static str) -> TunnelError {
    TunnelError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        why,
    }
}

fn parse_ip(key: &str, v: &str) -> Result<Ipv4Addr, TunnelError> {
    let ip: Ipv4Addr = v
        .parse()
        .map_err(|_| bad(key, v, "expected an IPv4 address"))?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(bad(key, v, "expected a unicast IPv4 address"));
    }
    Ok(ip)
}

/// A key of `kind`, or `None` for `flow`.
fn parse_key(kind: TunnelKind, key: &str, v: &str) -> Result<Option<u32>, TunnelError> {
    if v == "flow" {
        return Ok(None);
    }
    let n = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse::<u64>(),
    }
    .map_err(|_| bad(key, v, "expected a number"))?;
    if n > u64::from(kind.max_key()) {
        return Err(bad(
            key,
            v,
            match kind {
                TunnelKind::Vxlan => "a VXLAN VNI is 24 bits (0-16777215)",
                TunnelKind::Geneve => "a Geneve VNI is 24 bits (0-16777215)",
                TunnelKind::Gre => "a GRE key is 32 bits (0-4294967295)",
            },
        ));
    }
    // Cast: checked against a u32 maximum above.
    Ok(Some(n as u32))
}

fn parse_bool(key: &str, v: &str) -> Result<bool, TunnelError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(key, v, "expected true or false")),
    }
}

fn parse_u8(key: &str, v: &str, min: u8, why: &'static str) -> Result<u8, TunnelError> {
    if v == "inherit" {
        return Err(bad(key, v, "inherit is not supported yet"));
    }
    match v.parse::<u8>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(bad(key, v, why)),
    }
}

impl TunnelConfig {
    /// Parses the options of a port of `kind` (keys without the
    /// `options:` prefix).
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// use rvs::tunnel::{TunnelConfig, TunnelKind};
    /// let mut o = BTreeMap::new();
    /// o.insert("remote_ip".to_string(), "192.0.2.2".to_string());
    /// o.insert("key".to_string(), "42".to_string());
    /// let t = TunnelConfig::parse(TunnelKind::Vxlan, &o).unwrap();
    /// assert_eq!((t.in_key, t.out_key, t.dst_port), (Some(42), Some(42), 4789));
    /// ```
    pub fn parse(
        kind: TunnelKind,
        options: &BTreeMap<String, String>,
    ) -> Result<TunnelConfig, TunnelError> {
        let mut remote = None;
        let mut t = TunnelConfig {
            kind,
            remote_ip: None,
            local_ip: None,
            local_flow: false,
            in_key: Some(0),
            out_key: Some(0),
            key_field: kind.is_udp(),
            dst_port: kind.default_port(),
            tos: None,
            ttl: None,
            df_default: true,
            csum: false,
        };
        let (mut key, mut in_key, mut out_key) = (None, None, None);
        for (k, v) in options {
            let v = v.trim();
            match k.as_str() {
                "remote_ip" if v == "flow" => remote = Some(None),
                "remote_ip" => remote = Some(Some(parse_ip(k, v)?)),
                "local_ip" if v == "flow" => (t.local_ip, t.local_flow) = (None, true),
                "local_ip" => (t.local_ip, t.local_flow) = (Some(parse_ip(k, v)?), false),
                "key" => key = Some(parse_key(kind, k, v)?),
                "in_key" => in_key = Some(parse_key(kind, k, v)?),
                "out_key" => out_key = Some(parse_key(kind, k, v)?),
                "dst_port" if !kind.is_udp() => {
                    return Err(bad(
                        k,
                        v,
                        "GRE has no ports (dst_port is for vxlan and geneve)",
                    ))
                }
                "dst_port" => {
                    t.dst_port = match v.parse::<u16>() {
                        Ok(p) if p != 0 => p,
                        _ => return Err(bad(k, v, "expected a UDP port (1-65535)")),
                    }
                }
                "tos" => t.tos = Some(parse_u8(k, v, 0, "expected a TOS byte (0-255)")?),
                "ttl" => t.ttl = Some(parse_u8(k, v, 1, "expected a TTL (1-255)")?),
                "df_default" => t.df_default = parse_bool(k, v)?,
                "csum" => t.csum = parse_bool(k, v)?,
                other => return Err(TunnelError::UnknownOption(other.to_string())),
            }
        }
        t.remote_ip = remote.ok_or(TunnelError::MissingRemote(kind))?;
        t.in_key = in_key.or(key).unwrap_or(Some(0));
        t.out_key = out_key.or(key).unwrap_or(Some(0));
        t.key_field |= out_key.or(key).is_some();
        Ok(t)
    }

    /// The options in canonical form (defaults left out), as `show`,
    /// `export` and the state file write them.
    pub fn options(&self) -> BTreeMap<String, String> {
        let mut o = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            o.insert(k.to_string(), v);
        };
        let key = |k: Option<u32>| k.map_or("flow".to_string(), |k| k.to_string());
        put(
            "remote_ip",
            self.remote_ip.map_or("flow".to_string(), |r| r.to_string()),
        );
        if let Some(l) = self.local_ip {
            put("local_ip", l.to_string());
        } else if self.local_flow {
            put("local_ip", "flow".to_string());
        }
        // A GRE key field given as 0 is written, as it changes what is sent.
        let gre_key = !self.kind.is_udp() && self.key_field;
        if self.in_key == self.out_key {
            if self.in_key != Some(0) || gre_key {
                put("key", key(self.in_key));
            }
        } else {
            put("in_key", key(self.in_key));
            if self.kind.is_udp() || gre_key {
                put("out_key", key(self.out_key));
            }
        }
        if self.dst_port != self.kind.default_port() {
            put("dst_port", self.dst_port.to_string());
        }
        if let Some(t) = self.tos {
            put("tos", t.to_string());
        }
        if let Some(t) = self.ttl {
            put("ttl", t.to_string());
        }
        if !self.df_default {
            put("df_default", "false".to_string());
        }
        if self.csum {
            put("csum", "true".to_string());
        }
        o
    }

    /// Bytes the encapsulation adds in front of the inner frame, inner
    /// Ethernet header included, counted against the underlay MTU: 50 for
    /// VXLAN and Geneve (without options), 38 for GRE plus 4 each for a key
    /// and a checksum.
    pub fn overhead(&self) -> usize {
        match self.kind {
            TunnelKind::Vxlan | TunnelKind::Geneve => VXLAN_OVERHEAD,
            TunnelKind::Gre => {
                20 + gre::BASE_LEN + 4 * (usize::from(self.key_field) + usize::from(self.csum)) + 14
            }
        }
    }

    /// The source address to send from for a frame whose key has
    /// `tun_src`: that address on a `local_ip=flow` port (when set), else
    /// `None` (the bound address or the routing table's choice).
    #[inline]
    pub fn source(&self, tun_src: u32) -> Option<Ipv4Addr> {
        (self.local_flow && tun_src != 0).then(|| Ipv4Addr::from(tun_src))
    }

    /// Where a frame whose key has `tun_dst`/`tun_id` goes, and with which
    /// key: the port's fixed values, else the flow key's (`flow`). `None`
    /// when the port is `remote_ip=flow` and the key has no `tun_dst`.
    #[inline]
    pub fn destination(&self, tun_dst: u32, tun_id: u64) -> Option<(Ipv4Addr, u32)> {
        let dst = match self.remote_ip {
            Some(r) => r,
            None if tun_dst != 0 => Ipv4Addr::from(tun_dst),
            None => return None,
        };
        // Cast: a key is the low 24 (VNI) or 32 (GRE) bits of tun_id, as
        // OVS sends it.
        let key = self
            .out_key
            .unwrap_or((tun_id as u32) & self.kind.max_key());
        Some((dst, key))
    }
}

/// Offload metadata for an inner frame whose L4 checksum was left partial
/// by the sender, or `None` when it is complete (or not IPv4 TCP/UDP).
///
/// A kernel sender on this host (a vxlan device over a veth) hands the
/// datagram to our socket with the inner TCP/UDP checksum still
/// `CHECKSUM_PARTIAL`: the field holds only the pseudo-header sum, and a
/// UDP socket has no way to say so. Such a field is recognised by value
/// (it equals the folded pseudo-header sum) and the frame gets a
/// `NEEDS_CSUM` header, so it is completed like any offloaded frame (by the
/// TAP's kernel, or in software for other ports). A complete checksum that
/// happens to have that value (1 in 65536) is recomputed to the same value.
/// Only untagged IPv4 frames that end where their IP packet ends are
/// considered.
#[inline]
pub fn partial_csum_hint(frame: &[u8]) -> Option<flowtable::offload::VirtioNetHdr> {
    use flowtable::offload::{csum_sum, VirtioNetHdr};
    let ip = frame.get(14..34)?;
    if frame[12..14] != [0x08, 0x00] || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let tot = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
    if ihl < 20 || frag != 0 || 14 + tot != frame.len() || tot < ihl {
        return None;
    }
    let (proto, off) = match ip[9] {
        6 => (6u8, 16u16),
        17 => (17u8, 6u16),
        _ => return None,
    };
    let start = 14 + ihl;
    let field = start + usize::from(off);
    let stored = u16::from_be_bytes([*frame.get(field)?, *frame.get(field + 1)?]);
    let l4_len = (tot - ihl) as u16;
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&ip[12..20]);
    pseudo[9] = proto;
    pseudo[10..].copy_from_slice(&l4_len.to_be_bytes());
    if stored != csum_sum(&pseudo) {
        return None;
    }
    Some(VirtioNetHdr {
        flags: VirtioNetHdr::F_NEEDS_CSUM,
        csum_start: start as u16,
        csum_offset: off,
        ..VirtioNetHdr::NONE
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_defaults_and_round_trips() {
        let t =
            TunnelConfig::parse(TunnelKind::Vxlan, &opts(&[("remote_ip", "10.0.0.2")])).unwrap();
        assert_eq!(t.remote_ip, Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!((t.in_key, t.out_key, t.dst_port), (Some(0), Some(0), 4789));
        assert!(t.df_default && !t.csum);
        assert_eq!(t.options(), opts(&[("remote_ip", "10.0.0.2")]));

        let all = opts(&[
            ("remote_ip", "10.0.0.2"),
            ("local_ip", "10.0.0.1"),
            ("in_key", "7"),
            ("out_key", "0x2a"),
            ("dst_port", "8472"),
            ("tos", "16"),
            ("ttl", "9"),
            ("df_default", "false"),
            ("csum", "true"),
        ]);
        let t = TunnelConfig::parse(TunnelKind::Vxlan, &all).unwrap();
        assert_eq!((t.in_key, t.out_key), (Some(7), Some(42)));
        assert_eq!(
            TunnelConfig::parse(TunnelKind::Vxlan, &t.options()).unwrap(),
            t
        );
        // key sets both; in_key/out_key win over it.
        let t = TunnelConfig::parse(
            TunnelKind::Vxlan,
            &opts(&[("remote_ip", "10.0.0.2"), ("key", "5"), ("out_key", "6")]),
        )
        .unwrap();
        assert_eq!((t.in_key, t.out_key), (Some(5), Some(6)));
        // flow values round-trip too.
        for kv in [
            &[("remote_ip", "flow"), ("key", "flow")][..],
            &[("remote_ip", "flow"), ("in_key", "flow"), ("out_key", "9")][..],
            &[("remote_ip", "10.0.0.2"), ("key", "flow")][..],
            &[("remote_ip", "flow"), ("local_ip", "flow"), ("key", "flow")][..],
        ] {
            let t = TunnelConfig::parse(TunnelKind::Vxlan, &opts(kv)).unwrap();
            assert_eq!(t.options(), opts(kv), "{kv:?}");
        }
    }

    #[test]
    fn rejects_bad_options_clearly() {
        let e = |kv: &[(&str, &str)]| {
            TunnelConfig::parse(TunnelKind::Vxlan, &opts(kv))
                .unwrap_err()
                .to_string()
        };
        assert!(e(&[("key", "42")]).contains("needs options:remote_ip"));
        assert!(e(&[("remote_ip", "10.0.0.300")]).contains("IPv4 address"));
        assert!(e(&[("remote_ip", "224.0.0.1")]).contains("unicast"));
        assert!(e(&[("remote_ip", "flow"), ("local_ip", "0.0.0.0")]).contains("unicast"));
        assert!(e(&[("remote_ip", "10.0.0.2"), ("key", "16777216")]).contains("24 bits"));
        assert!(e(&[("remote_ip", "10.0.0.2"), ("dst_port", "0")]).contains("UDP port"));
        assert!(e(&[("remote_ip", "10.0.0.2"), ("ttl", "0")]).contains("TTL"));
        assert!(e(&[("remote_ip", "10.0.0.2"), ("csum", "yes")]).contains("true or false"));
        assert!(e(&[("remote_ip", "10.0.0.2"), ("colour", "red")]).contains("unknown option"));
    }

    /// A TCP segment as a kernel sender leaves it with a partial checksum
    /// (pseudo-header sum in the field) is recognised; once completed it
    /// is not.
    #[test]
    fn partial_checksum_is_recognised() {
        use flowtable::offload::{complete_checksum, csum_sum};
        let mut f = vec![0u8; 14 + 20 + 20 + 5];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let tot = (20 + 20 + 5) as u16;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&tot.to_be_bytes());
        f[14 + 8] = 64;
        f[14 + 9] = 6;
        f[14 + 12..14 + 16].copy_from_slice(&[10, 0, 0, 1]);
        f[14 + 16..14 + 20].copy_from_slice(&[10, 0, 0, 2]);
        f[34 + 12] = 0x50;
        f[54..].copy_from_slice(b"hello");
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&f[26..34]);
        pseudo[9] = 6;
        pseudo[10..].copy_from_slice(&25u16.to_be_bytes());
        let p = csum_sum(&pseudo);
        f[34 + 16..34 + 18].copy_from_slice(&p.to_be_bytes());
        let h = partial_csum_hint(&f).unwrap();
        assert_eq!((h.csum_start, h.csum_offset), (34, 16));
        assert!(h.needs_csum());
        assert!(complete_checksum(&mut f, &h));
        assert_eq!(partial_csum_hint(&f), None);
        // Now complete: pseudo-header plus segment sum to 0xffff.
        let mut all = pseudo.to_vec();
        all.extend_from_slice(&f[34..]);
        assert_eq!(csum_sum(&all), 0xffff);
        // Padded or non-IP frames are left alone.
        let mut padded = f.clone();
        padded.push(0);
        assert_eq!(partial_csum_hint(&padded), None);
        assert_eq!(partial_csum_hint(&f[..20]), None);
    }

    #[test]
    fn geneve_and_gre_options() {
        let g =
            TunnelConfig::parse(TunnelKind::Geneve, &opts(&[("remote_ip", "10.0.0.2")])).unwrap();
        assert_eq!((g.dst_port, g.key_field, g.overhead()), (6081, true, 50));
        assert_eq!(g.options(), opts(&[("remote_ip", "10.0.0.2")]));
        let e = TunnelConfig::parse(
            TunnelKind::Geneve,
            &opts(&[("remote_ip", "10.0.0.2"), ("key", "16777216")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("Geneve VNI is 24 bits"), "{e}");

        let gre = |kv: &[(&str, &str)]| TunnelConfig::parse(TunnelKind::Gre, &opts(kv));
        // No key option: no key field sent, key 0 accepted.
        let t = gre(&[("remote_ip", "10.0.0.2")]).unwrap();
        assert_eq!(
            (t.dst_port, t.key_field, t.in_key, t.overhead()),
            (0, false, Some(0), 38)
        );
        assert_eq!(t.destination(0, 9), Some((Ipv4Addr::new(10, 0, 0, 2), 0)));
        // key=0 given: a key field of 0 is sent, and written back.
        let t = gre(&[("remote_ip", "10.0.0.2"), ("key", "0")]).unwrap();
        assert!(t.key_field);
        assert_eq!(
            t.options(),
            opts(&[("remote_ip", "10.0.0.2"), ("key", "0")])
        );
        // 32-bit keys, flow keys keep all 32 bits of tun_id.
        let t = gre(&[("remote_ip", "flow"), ("key", "flow"), ("csum", "true")]).unwrap();
        assert_eq!(t.overhead(), 46);
        assert_eq!(
            t.destination(0x0a00_0003, 0x1_dead_beef),
            Some((Ipv4Addr::new(10, 0, 0, 3), 0xdead_beef))
        );
        assert!(gre(&[("remote_ip", "10.0.0.2"), ("key", "4294967295")]).is_ok());
        let e = gre(&[("remote_ip", "10.0.0.2"), ("key", "4294967296")]).unwrap_err();
        assert!(e.to_string().contains("GRE key is 32 bits"), "{e}");
        let e = gre(&[("remote_ip", "10.0.0.2"), ("dst_port", "4789")]).unwrap_err();
        assert!(e.to_string().contains("GRE has no ports"), "{e}");
        let e = gre(&[("key", "1")]).unwrap_err();
        assert!(e.to_string().contains("a gre port needs"), "{e}");
        // Every form round-trips through options().
        for kv in [
            &[("remote_ip", "10.0.0.2")][..],
            &[("remote_ip", "10.0.0.2"), ("in_key", "5")][..],
            &[("remote_ip", "10.0.0.2"), ("in_key", "5"), ("out_key", "0")][..],
            &[("remote_ip", "10.0.0.2"), ("out_key", "7")][..],
            &[("remote_ip", "flow"), ("key", "flow")][..],
        ] {
            let t = gre(kv).unwrap();
            assert_eq!(
                gre(&t
                    .options()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>())
                .unwrap(),
                t,
                "{kv:?}"
            );
        }
    }

    #[test]
    fn flow_ports_send_by_the_key() {
        let f = TunnelConfig::parse(
            TunnelKind::Vxlan,
            &opts(&[("remote_ip", "flow"), ("key", "flow")]),
        )
        .unwrap();
        assert_eq!(f.destination(0, 5), None, "no tun_dst: nowhere to send");
        assert_eq!(f.source(0x0a00_0001), None, "fixed or routed source");
        let lf = TunnelConfig::parse(
            TunnelKind::Vxlan,
            &opts(&[("remote_ip", "flow"), ("local_ip", "flow")]),
        )
        .unwrap();
        assert_eq!((lf.local_ip, lf.local_flow), (None, true));
        assert_eq!(lf.source(0x0a00_0001), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(lf.source(0), None);
        assert_eq!(
            f.destination(0x0a00_0002, 0x1_0000_0007),
            Some((Ipv4Addr::new(10, 0, 0, 2), 7))
        );
        let fixed = TunnelConfig::parse(
            TunnelKind::Vxlan,
            &opts(&[("remote_ip", "10.0.0.2"), ("key", "42")]),
        )
        .unwrap();
        assert_eq!(
            fixed.destination(0x0a00_0009, 7),
            Some((Ipv4Addr::new(10, 0, 0, 2), 42)),
            "fixed options win over the key"
        );
    }
}
