//! The printer: OVS's `match_format()` and `ofpacts_format()`, for the
//! fields and actions rvs has.

use super::{Flow, FlowStats, FlowView, PortNamer};
use crate::action::Action;
use crate::field::Field;
use crate::flowmatch::Match;
use crate::key::{FRAG_ANY, FRAG_LATER, TUN_FLAG_OAM, VLAN_PCP_MASK, VLAN_PRESENT, VLAN_VID_MASK};
use crate::types::{Mac, PortNo, Priority};
use std::fmt::Write;

/// Prints a port: through `namer` if it knows it, else by reserved name or
/// number (`ANY` for `NONE`, as OVS prints).
pub(super) fn fmt_port(p: PortNo, namer: Option<PortNamer>) -> String {
    let mut s = String::new();
    put_port(&mut s, p, namer);
    s
}

/// [`fmt_port`] appended to `s`.
fn put_port(s: &mut String, p: PortNo, namer: Option<PortNamer>) {
    if let Some(name) = namer.and_then(|n| n(p)) {
        s.push_str(&name);
    } else if p == PortNo::NONE {
        s.push_str("ANY");
    } else {
        let _ = write!(s, "{p}");
    }
}

/// Appends `v` in decimal (the formatting machinery is slow for the
/// millions of small numbers a journal or a dump prints).
fn put_u8(s: &mut String, v: u8) {
    if v >= 100 {
        s.push(char::from(b'0' + v / 100));
    }
    if v >= 10 {
        s.push(char::from(b'0' + (v / 10) % 10));
    }
    s.push(char::from(b'0' + v % 10));
}

/// Appends an IPv4 address in dotted quad.
fn put_ipv4(s: &mut String, v: u32) {
    for (i, b) in v.to_be_bytes().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        put_u8(s, b);
    }
}

fn mac(v: u128) -> Mac {
    let b = v.to_be_bytes();
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[10..16]);
    Mac(m)
}

/// IPv4 in dotted quad.
pub(super) fn fmt_ipv4(v: u32) -> String {
    let mut s = String::with_capacity(15);
    put_ipv4(&mut s, v);
    s
}

/// IPv6 as glibc's `inet_ntop` prints it (which OVS uses): the longest run
/// of two or more zero groups (the first, on ties) becomes `::`, and
/// `::a.b.c.d` / `::ffff:a.b.c.d` keep the IPv4 part dotted.
pub(super) fn fmt_ipv6(v: u128) -> String {
    let b = v.to_be_bytes();
    let w: Vec<u16> = (0..8)
        .map(|i| u16::from_be_bytes([b[2 * i], b[2 * i + 1]]))
        .collect();
    let (mut best, mut best_len) = (usize::MAX, 0);
    let mut i = 0;
    while i < 8 {
        if w[i] == 0 {
            let start = i;
            while i < 8 && w[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best = usize::MAX;
    }
    let mut s = String::new();
    let mut i = 0;
    while i < 8 {
        if i == best {
            if i == 0 {
                s.push(':');
            }
            s.push(':');
            i += best_len;
            continue;
        }
        // Embedded IPv4: ::a.b.c.d or ::ffff:a.b.c.d.
        if i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
            let _ = write!(s, "{}.{}.{}.{}", b[12], b[13], b[14], b[15]);
            return s;
        }
        let _ = write!(s, "{:x}", w[i]);
        if i < 7 {
            s.push(':');
        }
        i += 1;
    }
    s
}

/// Prefix length if `mask` is a CIDR mask of `bits` bits.
fn cidr(mask: u128, bits: u32) -> Option<u32> {
    let m = mask << (128 - bits);
    let n = m.leading_ones();
    (m.checked_shl(n).unwrap_or(0) == 0).then_some(n)
}

fn put_ipv4_masked(s: &mut String, name: &str, v: u128, m: u128) {
    if m == 0 {
        return;
    }
    s.push_str(name);
    s.push('=');
    // Casts: IPv4 values are 32-bit by construction.
    put_ipv4(s, v as u32);
    if m != 0xffff_ffff {
        s.push('/');
        match cidr(m, 32) {
            // Cast: a prefix length is at most 32.
            Some(n) => put_u8(s, n as u8),
            None => put_ipv4(s, m as u32),
        }
    }
    s.push(',');
}

fn put_ipv6_masked(s: &mut String, name: &str, v: u128, m: u128) {
    if m == 0 {
        return;
    }
    let _ = write!(s, "{name}={}", fmt_ipv6(v));
    if m != u128::MAX {
        match cidr(m, 128) {
            Some(n) => {
                let _ = write!(s, "/{n}");
            }
            None => {
                let _ = write!(s, "/{}", fmt_ipv6(m));
            }
        }
    }
    s.push(',');
}

fn put_mac_masked(s: &mut String, name: &str, v: u128, m: u128) {
    if m == 0 {
        return;
    }
    let _ = write!(s, "{name}={}", mac(v));
    if m != 0xffff_ffff_ffff {
        let _ = write!(s, "/{}", mac(m));
    }
    s.push(',');
}

/// C's `%#x`, as OVS prints 64-bit fields: 0 is "0", not "0x0".
fn put_hex64(s: &mut String, v: u64) {
    if v == 0 {
        s.push('0');
    } else {
        let _ = write!(s, "{v:#x}");
    }
}

/// OVS's `format_be64_masked` (`metadata`, `tun_id`): hex, `/mask` unless
/// exact; nothing when wildcarded.
fn put_u64_masked(s: &mut String, name: &str, v: u64, m: u64) {
    if m == 0 {
        return;
    }
    s.push_str(name);
    s.push('=');
    put_hex64(s, v);
    if m != u64::MAX {
        s.push('/');
        put_hex64(s, m);
    }
    s.push(',');
}

/// OVS's `format_be16_masked`: decimal when exact, hex pair when masked.
fn put_u16_masked(s: &mut String, name: &str, v: u128, m: u128) {
    if m == 0 {
        return;
    }
    if m == 0xffff {
        let _ = write!(s, "{name}={v},");
    } else {
        let _ = write!(s, "{name}={v:#x}/{m:#x},");
    }
}

const TCP_FLAG_NAMES: [&str; 9] = ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns"];

/// Name of one TCP flag bit.
pub(super) fn tcp_flag_name(bit: u16) -> Option<&'static str> {
    TCP_FLAG_NAMES
        .get(bit.trailing_zeros() as usize)
        .copied()
        .filter(|_| bit.is_power_of_two())
}

/// Bits with names (`fin` … `ns`).
pub(super) const TCP_FLAGS_KNOWN: u16 = 0x01ff;

fn put_tcp_flags(s: &mut String, v: u16, m: u16) {
    s.push_str("tcp_flags=");
    if m == 0x0fff {
        if v == 0 {
            s.push('0');
        }
        let mut first = true;
        for i in 0..12 {
            let bit = 1u16 << i;
            if v & bit != 0 {
                if !first {
                    s.push('|');
                }
                first = false;
                match tcp_flag_name(bit) {
                    Some(n) => s.push_str(n),
                    None => {
                        let _ = write!(s, "[{bit:x}]");
                    }
                }
            }
        }
    } else {
        for i in 0..12 {
            let bit = 1u16 << i;
            if m & bit != 0 {
                s.push(if v & bit != 0 { '+' } else { '-' });
                s.push_str(tcp_flag_name(bit).unwrap_or("[Unknown]"));
            }
        }
    }
    s.push(',');
}

/// The match, as OVS prints it (`priority=N,` first when not 32768), without
/// a trailing comma. Empty for a catch-all at the default priority.
pub fn fmt_match(m: &Match, priority: Priority, namer: Option<PortNamer>) -> String {
    let mut s = String::new();
    put_match(&mut s, m, priority, namer);
    s
}

/// [`fmt_match`] appended to `s`.
fn put_match(s: &mut String, m: &Match, priority: Priority, namer: Option<PortNamer>) {
    let start = s.len();
    let (k, mk) = (m.key(), m.mask());
    if priority != Priority::DEFAULT {
        let _ = write!(s, "priority={},", priority.0);
    }
    let dl_type = (mk.dl_type != 0).then_some(k.dl_type);
    let proto_set = mk.nw_proto != 0;
    let mut skip_type = false;
    let mut skip_proto = false;
    if let Some(t) = dl_type {
        skip_type = true;
        let l4 = |v6: bool| -> Option<&'static str> {
            if !proto_set {
                return None;
            }
            Some(match (k.nw_proto, v6) {
                (1, false) => "icmp",
                (6, false) => "tcp",
                (17, false) => "udp",
                (132, false) => "sctp",
                (58, true) => "icmp6",
                (6, true) => "tcp6",
                (17, true) => "udp6",
                (132, true) => "sctp6",
                _ => return None,
            })
        };
        match t {
            0x0800 | 0x86dd => {
                let v6 = t == 0x86dd;
                match l4(v6) {
                    Some(n) => {
                        skip_proto = true;
                        s.push_str(n);
                    }
                    None => s.push_str(if v6 { "ipv6" } else { "ip" }),
                }
                s.push(',');
            }
            0x0806 => s.push_str("arp,"),
            0x8035 => s.push_str("rarp,"),
            _ => skip_type = false,
        }
    }
    // Tunnel metadata comes first, as in OVS's match_format().
    put_u64_masked(s, "tun_id", k.tun_id, mk.tun_id);
    put_ipv4_masked(s, "tun_src", k.tun_src.into(), mk.tun_src.into());
    put_ipv4_masked(s, "tun_dst", k.tun_dst.into(), mk.tun_dst.into());
    if mk.tun_flags & TUN_FLAG_OAM != 0 {
        s.push_str(if k.tun_flags & TUN_FLAG_OAM != 0 {
            "tun_flags=+oam,"
        } else {
            "tun_flags=-oam,"
        });
    }
    put_u64_masked(s, "metadata", k.metadata, mk.metadata);
    if mk.in_port != 0 {
        s.push_str("in_port=");
        put_port(s, PortNo(k.in_port), namer);
        s.push(',');
    }
    if mk.vlan_tci != 0 {
        let (tci, tm) = (k.vlan_tci, mk.vlan_tci);
        let vid_mask = tm & VLAN_VID_MASK;
        let pcp_mask = tm & VLAN_PCP_MASK;
        if tm & VLAN_PRESENT != 0
            && tci & VLAN_PRESENT != 0
            && (vid_mask == 0 || vid_mask == VLAN_VID_MASK)
            && (pcp_mask == 0 || pcp_mask == VLAN_PCP_MASK)
            && (vid_mask != 0 || pcp_mask != 0)
        {
            if vid_mask != 0 {
                let _ = write!(s, "dl_vlan={},", tci & VLAN_VID_MASK);
            }
            if pcp_mask != 0 {
                let _ = write!(s, "dl_vlan_pcp={},", tci >> 13);
            }
        } else if tm == 0xffff {
            let _ = write!(s, "vlan_tci={tci:#06x},");
        } else {
            let _ = write!(s, "vlan_tci={tci:#06x}/{tm:#06x},");
        }
    }
    put_mac_masked(s, "dl_src", Field::DlSrc.get(k), Field::DlSrc.get(mk));
    put_mac_masked(s, "dl_dst", Field::DlDst.get(k), Field::DlDst.get(mk));
    if !skip_type && mk.dl_type != 0 {
        let _ = write!(s, "dl_type={:#06x},", k.dl_type);
    }
    let is_arp = matches!(dl_type, Some(0x0806 | 0x8035));
    let is_v6 = dl_type == Some(0x86dd);
    if is_v6 {
        put_ipv6_masked(s, "ipv6_src", Field::Ipv6Src.get(k), Field::Ipv6Src.get(mk));
        put_ipv6_masked(s, "ipv6_dst", Field::Ipv6Dst.get(k), Field::Ipv6Dst.get(mk));
        let (lv, lm) = (k.ipv6_label, mk.ipv6_label);
        if lm != 0 {
            if lm == 0x000f_ffff {
                let _ = write!(s, "ipv6_label={lv:#07x},");
            } else {
                let _ = write!(s, "ipv6_label={lv:#07x}/{lm:#07x},");
            }
        }
    } else if is_arp {
        put_ipv4_masked(s, "arp_spa", k.nw_src.into(), mk.nw_src.into());
        put_ipv4_masked(s, "arp_tpa", k.nw_dst.into(), mk.nw_dst.into());
    } else {
        put_ipv4_masked(s, "nw_src", k.nw_src.into(), mk.nw_src.into());
        put_ipv4_masked(s, "nw_dst", k.nw_dst.into(), mk.nw_dst.into());
    }
    if !skip_proto && proto_set {
        let name = if is_arp { "arp_op" } else { "nw_proto" };
        let _ = write!(s, "{name}={},", k.nw_proto);
    }
    if is_arp {
        put_mac_masked(s, "arp_sha", Field::ArpSha.get(k), Field::ArpSha.get(mk));
        put_mac_masked(s, "arp_tha", Field::ArpTha.get(k), Field::ArpTha.get(mk));
    }
    if mk.nw_tos & 0xfc != 0 {
        let _ = write!(s, "nw_tos={},", k.nw_tos & 0xfc);
    }
    if mk.nw_tos & 0x03 != 0 {
        let _ = write!(s, "nw_ecn={},", k.nw_tos & 0x03);
    }
    if mk.nw_ttl != 0 {
        let _ = write!(s, "nw_ttl={},", k.nw_ttl);
    }
    let (fv, fm) = (k.nw_frag, mk.nw_frag & (FRAG_ANY | FRAG_LATER));
    let frag = match fm {
        3 => Some(match (fv & FRAG_ANY != 0, fv & FRAG_LATER != 0) {
            (true, true) => "later",
            (true, false) => "first",
            (false, true) => "<error>",
            (false, false) => "no",
        }),
        FRAG_ANY => Some(if fv & FRAG_ANY != 0 { "yes" } else { "no" }),
        FRAG_LATER => Some(if fv & FRAG_LATER != 0 {
            "later"
        } else {
            "not_later"
        }),
        _ => None,
    };
    if let Some(fr) = frag {
        let _ = write!(s, "nw_frag={fr},");
    }
    let icmp = (dl_type == Some(0x0800) && k.nw_proto == 1) || (is_v6 && k.nw_proto == 58);
    let (a, b) = if icmp {
        ("icmp_type", "icmp_code")
    } else {
        ("tp_src", "tp_dst")
    };
    put_u16_masked(s, a, k.tp_src.into(), mk.tp_src.into());
    put_u16_masked(s, b, k.tp_dst.into(), mk.tp_dst.into());
    let ip_any = matches!(dl_type, Some(0x0800 | 0x86dd));
    if ip_any && k.nw_proto == 6 && mk.tcp_flags & 0x0fff != 0 {
        put_tcp_flags(s, k.tcp_flags & 0x0fff, mk.tcp_flags & 0x0fff);
    }
    if s.len() > start && s.ends_with(',') {
        s.pop();
    }
}

/// One action, as OVS prints it. `m` is the flow's match (it decides
/// between `icmp_type` and `icmpv6_type`).
fn put_action(s: &mut String, a: &Action, m: &Match, namer: Option<PortNamer>) {
    match a {
        Action::Output(p) => {
            s.push_str("output:");
            put_port(s, *p, namer);
        }
        Action::Normal => s.push_str("NORMAL"),
        Action::Flood => s.push_str("FLOOD"),
        Action::All => s.push_str("ALL"),
        Action::InPort => s.push_str("IN_PORT"),
        Action::Local => s.push_str("LOCAL"),
        Action::Controller { max_len } => {
            let _ = write!(s, "CONTROLLER:{max_len}");
        }
        Action::SetVlanVid(v) => {
            let _ = write!(s, "mod_vlan_vid:{v}");
        }
        Action::SetVlanPcp(v) => {
            let _ = write!(s, "mod_vlan_pcp:{v}");
        }
        Action::StripVlan => s.push_str("strip_vlan"),
        Action::PushVlan(t) => {
            let _ = write!(s, "push_vlan:{t:#x}");
        }
        Action::SetField { field, value } => put_set_field(s, *field, *value, m, namer),
        Action::DecTtl => s.push_str("dec_ttl"),
        Action::Resubmit { port, table } => match (port, table) {
            (Some(p), None) => {
                let _ = write!(s, "resubmit:{}", fmt_port(*p, namer));
            }
            (p, t) => {
                let p = p.map(|p| fmt_port(p, namer)).unwrap_or_default();
                let t = t.map(|t| t.0.to_string()).unwrap_or_default();
                let _ = write!(s, "resubmit({p},{t})");
            }
        },
        Action::GotoTable(t) => {
            let _ = write!(s, "goto_table:{}", t.0);
        }
        Action::Meter(id) => {
            let _ = write!(s, "meter:{id}");
        }
        Action::Note(bytes) => {
            s.push_str("note:");
            for (i, b) in bytes.iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                let _ = write!(s, "{b:02x}");
            }
        }
    }
}

fn put_set_field(s: &mut String, field: Field, v: u128, m: &Match, namer: Option<PortNamer>) {
    use Field::*;
    let is_v6 = m.mask().dl_type != 0 && m.key().dl_type == 0x86dd;
    // Fields with an OpenFlow 1.0 action print as that action.
    let _ = match field {
        DlSrc => write!(s, "mod_dl_src:{}", mac(v)),
        DlDst => write!(s, "mod_dl_dst:{}", mac(v)),
        NwSrc => write!(s, "mod_nw_src:{}", fmt_ipv4(v as u32)),
        NwDst => write!(s, "mod_nw_dst:{}", fmt_ipv4(v as u32)),
        NwTos => write!(s, "mod_nw_tos:{v}"),
        IpDscp => write!(s, "mod_nw_tos:{}", v << 2),
        TpSrc => write!(s, "mod_tp_src:{v}"),
        TpDst => write!(s, "mod_tp_dst:{v}"),
        DlVlan | VlanVid => write!(s, "mod_vlan_vid:{}", v & 0xfff),
        DlVlanPcp | VlanPcp => write!(s, "mod_vlan_pcp:{v}"),
        // Nicira's set_tunnel (32-bit key) or set_tunnel64, as OVS picks.
        TunId => {
            s.push_str(if v > u128::from(u32::MAX) {
                "set_tunnel64:"
            } else {
                "set_tunnel:"
            });
            // Cast: tun_id is 64 bits.
            put_hex64(s, v as u64);
            Ok(())
        }
        // The rest as OpenFlow 1.3 prints them.
        _ => {
            let val = match field.kind() {
                crate::field::ValueKind::Port => fmt_port(PortNo(v as u32), namer),
                crate::field::ValueKind::Mac => mac(v).to_string(),
                crate::field::ValueKind::Ipv4 => fmt_ipv4(v as u32),
                crate::field::ValueKind::Ipv6 => fmt_ipv6(v),
                crate::field::ValueKind::TunFlags if v & 1 != 0 => "oam".to_string(),
                _ if matches!(field, Metadata | Ipv6Label) => {
                    if v == 0 {
                        "0".to_string()
                    } else {
                        format!("{v:#x}")
                    }
                }
                _ => v.to_string(),
            };
            let name = match field {
                IcmpType if is_v6 => "icmpv6_type",
                IcmpCode if is_v6 => "icmpv6_code",
                f => f.name(),
            };
            write!(s, "set_field:{val}->{name}")
        }
    };
}

/// The action list as OVS prints it after `actions=` (`drop` when empty).
pub fn fmt_actions(actions: &[Action], m: &Match, namer: Option<PortNamer>) -> String {
    let mut s = String::new();
    put_actions(&mut s, actions, m, namer);
    s
}

/// [`fmt_actions`] appended to `s`.
fn put_actions(s: &mut String, actions: &[Action], m: &Match, namer: Option<PortNamer>) {
    if actions.is_empty() {
        s.push_str("drop");
    }
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        put_action(s, a, m, namer);
    }
}

/// `ovs-ofctl dump-flows --no-stats` form of a flow, without OVS's leading
/// space: `cookie=0x5, table=1, idle_timeout=60, hard_timeout=120,
/// priority=10,ip actions=drop`. `namer` names ports; `None` prints numbers.
pub fn fmt_flow(flow: &Flow, namer: Option<PortNamer>) -> String {
    let mut s = String::new();
    put_flow(&mut s, &flow.view(), namer);
    s
}

/// [`fmt_flow`] of a borrowed flow, appended to `s` (no allocation once
/// `s` has grown to fit).
pub fn put_flow(s: &mut String, flow: &FlowView<'_>, namer: Option<PortNamer>) {
    if flow.cookie != 0 {
        let _ = write!(s, "cookie={:#x}, ", flow.cookie);
    }
    if flow.table.0 != 0 {
        let _ = write!(s, "table={}, ", flow.table.0);
    }
    put_timeouts(s, flow);
    put_match_actions(s, flow, namer);
}

fn put_timeouts(s: &mut String, flow: &FlowView<'_>) {
    if flow.idle_timeout != 0 {
        let _ = write!(s, "idle_timeout={}, ", flow.idle_timeout);
    }
    if flow.hard_timeout != 0 {
        let _ = write!(s, "hard_timeout={}, ", flow.hard_timeout);
    }
}

fn put_match_actions(s: &mut String, flow: &FlowView<'_>, namer: Option<PortNamer>) {
    let start = s.len();
    put_match(s, flow.m, flow.priority, namer);
    if s.len() > start {
        s.push(' ');
    }
    s.push_str("actions=");
    put_actions(s, flow.actions, flow.m, namer);
}

/// `ovs-ofctl dump-flows` form with statistics (OpenFlow 1.0 layout,
/// without the leading space):
/// `cookie=0x5, duration=1.234s, table=0, n_packets=0, n_bytes=0,
/// idle_timeout=10, idle_age=1, priority=10,ip actions=drop`.
pub fn fmt_with_stats(flow: &Flow, stats: &FlowStats, namer: Option<PortNamer>) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "cookie={:#x}, duration={}.{:03}s, table={}, n_packets={}, n_bytes={}, ",
        flow.cookie,
        stats.duration_ms / 1000,
        stats.duration_ms % 1000,
        flow.table.0,
        stats.n_packets,
        stats.n_bytes
    );
    let view = flow.view();
    put_timeouts(&mut s, &view);
    let _ = write!(s, "idle_age={}, ", stats.idle_age_s);
    put_match_actions(&mut s, &view, namer);
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_like_inet_ntop() {
        let p = |s: &str| u128::from(s.parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(fmt_ipv6(0), "::");
        assert_eq!(fmt_ipv6(1), "::1");
        assert_eq!(fmt_ipv6(p("::1.2.3.4")), "::1.2.3.4");
        assert_eq!(fmt_ipv6(p("::ffff:1.2.3.4")), "::ffff:1.2.3.4");
        assert_eq!(fmt_ipv6(p("1:0:0:1:0:0:0:1")), "1:0:0:1::1");
        assert_eq!(fmt_ipv6(p("1:0:1:0:1:0:1:0")), "1:0:1:0:1:0:1:0");
        assert_eq!(fmt_ipv6(p("2001:db8::")), "2001:db8::");
        assert_eq!(fmt_ipv6(p("ffff:0:ffff::")), "ffff:0:ffff::");
    }

    #[test]
    fn cidr_detection() {
        assert_eq!(cidr(0xffff_ff00, 32), Some(24));
        assert_eq!(cidr(0xffff_ffff, 32), Some(32));
        assert_eq!(cidr(0xff00_ff00, 32), None);
        assert_eq!(cidr(u128::MAX << 64, 128), Some(64));
    }
}
