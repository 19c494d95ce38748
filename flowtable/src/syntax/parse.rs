//! The parser: tokens, values, prerequisites, actions.

use super::print::{tcp_flag_name, TCP_FLAGS_KNOWN};
use super::{Flow, FlowFilter, FlowsError, ParseError};
use crate::action::Action;
use crate::field::{Field, Prereq, ValueKind};
use crate::flowmatch::Match;
use crate::key::{FlowKey, VLAN_PRESENT};
use crate::types::{PortNo, Priority, TableId};

type Ports<'a> = &'a dyn Fn(&str) -> Option<PortNo>;

fn err(pos: usize, token: &str, msg: impl Into<String>) -> ParseError {
    ParseError {
        pos,
        token: token.to_string(),
        msg: msg.into(),
    }
}

fn is_sep(c: u8) -> bool {
    matches!(c, b',' | b' ' | b'\t' | b'\r' | b'\n')
}

/// One `key[=value]` item of the match part.
#[derive(Debug)]
struct Item<'s> {
    key: &'s str,
    value: Option<&'s str>,
    /// Offset of the value (meaningful when `value` is `Some`).
    value_pos: usize,
    pos: usize,
    token: &'s str,
}

/// Reads the next item at or after `*i`; `None` at the end.
fn next_item<'s>(s: &'s str, i: &mut usize) -> Option<Item<'s>> {
    let b = s.as_bytes();
    while *i < b.len() && is_sep(b[*i]) {
        *i += 1;
    }
    if *i >= b.len() {
        return None;
    }
    let start = *i;
    while *i < b.len() && !is_sep(b[*i]) && !matches!(b[*i], b'=' | b':' | b'(') {
        *i += 1;
    }
    let key = &s[start..*i];
    let mut j = *i;
    while j < b.len() && matches!(b[j], b' ' | b'\t') {
        j += 1;
    }
    let mut value = None;
    let mut value_pos = j;
    if j < b.len() && matches!(b[j], b'=' | b':') {
        j += 1;
        while j < b.len() && matches!(b[j], b' ' | b'\t') {
            j += 1;
        }
        value_pos = j;
        if key == "actions" {
            *i = s.len();
            value = Some(s[j..].trim_end());
        } else {
            let vstart = j;
            while j < b.len() && !is_sep(b[j]) {
                j += 1;
            }
            value = Some(&s[vstart..j]);
            *i = j;
        }
    } else if key.is_empty() {
        // A stray `=`, `:` or `(`: swallow up to the next separator.
        while *i < b.len() && !is_sep(b[*i]) {
            *i += 1;
        }
    }
    let end = value
        .map_or(*i, |v| value_pos + v.len())
        .max(start + key.len());
    let end = if key.is_empty() { *i } else { end };
    Some(Item {
        key,
        value,
        value_pos,
        pos: start,
        token: &s[start..end],
    })
}

/// Shorthands: name, dl_type, nw_proto.
const SHORTHANDS: &[(&str, u16, Option<u8>)] = &[
    ("ip", 0x0800, None),
    ("ipv6", 0x86dd, None),
    ("arp", 0x0806, None),
    ("rarp", 0x8035, None),
    ("icmp", 0x0800, Some(1)),
    ("tcp", 0x0800, Some(6)),
    ("udp", 0x0800, Some(17)),
    ("sctp", 0x0800, Some(132)),
    ("icmp6", 0x86dd, Some(58)),
    ("tcp6", 0x86dd, Some(6)),
    ("udp6", 0x86dd, Some(17)),
    ("sctp6", 0x86dd, Some(132)),
];

const META_KEYS: &[&str] = &[
    "table",
    "priority",
    "cookie",
    "idle_timeout",
    "hard_timeout",
    "out_port",
    "actions",
];

/// Keys `dump-flows` prints that a flow line may carry and that are ignored,
/// so that `dump-flows` output can be fed back (as OVS allows).
const STATS_KEYS: &[&str] = &["duration", "n_packets", "n_bytes", "idle_age", "hard_age"];

/// Edit distance counting a swap of two neighbours as one edit (optimal
/// string alignment), so `nw_scr` is closest to `nw_src`. Three rows of
/// `b.len() + 1` cells: O(`a.len()` × `b.len()`) time, O(`b.len()`) space.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    // What `suggest` guarantees by skipping candidates too far in length:
    // the cost is bounded by the candidate's length, not the word's.
    debug_assert!(
        a.len() <= 2 * b.len() + 2,
        "{} chars against {}",
        a.len(),
        b.len()
    );
    // Rows i - 2, i - 1 and i of the full table.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(before[j - 2] + 1);
            }
            cur[j] = v;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Close keywords for an unknown one, for "did you mean": those within
/// an edit distance of a quarter of its length (at least 2), or that it
/// begins (when it has 3 characters or more).
///
/// Costs O(`word.len()`) plus O(candidate length²) per candidate, however
/// long the word: a distance is at least the difference in length, so a
/// candidate whose length is too far from the word's is skipped without
/// computing it (which for a word of n characters is n × its length).
fn suggest(word: &str, candidates: &[&str]) -> String {
    let lower: Vec<char> = word.to_ascii_lowercase().chars().collect();
    let limit = 2.max(lower.len() / 4);
    let mut cand: Vec<char> = Vec::new();
    let mut best: Vec<(usize, &str)> = candidates
        .iter()
        .filter_map(|c| {
            cand.clear();
            cand.extend(c.chars());
            let prefix = lower.len() >= 3 && cand.starts_with(&lower);
            if !prefix && lower.len().abs_diff(cand.len()) > limit {
                return None;
            }
            let d = edit_distance(&lower, &cand);
            (d <= limit || prefix).then_some((d, *c))
        })
        .collect();
    best.sort();
    best.dedup_by(|a, b| a.1 == b.1);
    let names: Vec<&str> = best.iter().take(3).map(|(_, c)| *c).collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", names.join(" or "))
    }
}

fn match_keywords() -> Vec<&'static str> {
    let mut v: Vec<&str> = Field::names().iter().map(|(n, _, _)| *n).collect();
    v.extend(SHORTHANDS.iter().map(|(n, _, _)| *n));
    v.extend(META_KEYS);
    v
}

enum NumError {
    NotANumber,
    TooLarge,
}

/// Decimal or `0x` hex, unsigned.
fn parse_uint(s: &str) -> Result<u128, NumError> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (s, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(NumError::NotANumber);
    }
    u128::from_str_radix(digits, radix).map_err(|_| NumError::TooLarge)
}

/// An unsigned number no larger than `max`, with an error naming `what`.
fn parse_num(s: &str, max: u128, what: &str) -> Result<u128, String> {
    match parse_uint(s) {
        Ok(v) if v <= max => Ok(v),
        Ok(_) | Err(NumError::TooLarge) => {
            Err(format!("{what} value {s} is out of range (0 to {max})"))
        }
        Err(NumError::NotANumber) => Err(format!(
            "bad {what} value \"{s}\": expected a number (decimal or 0x hex)"
        )),
    }
}

fn parse_mac(s: &str) -> Option<u128> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut v = 0u128;
    for p in parts {
        if p.is_empty() || p.len() > 2 || !p.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        v = v << 8 | u128::from(u8::from_str_radix(p, 16).ok()?);
    }
    Some(v)
}

/// Strict dotted quad: four decimal octets, each 0-255.
fn parse_ipv4(s: &str) -> Option<u32> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut v = 0u32;
    for p in parts {
        if p.is_empty() || p.len() > 3 || !p.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let o: u32 = p.parse().ok()?;
        if o > 255 {
            return None;
        }
        v = v << 8 | o;
    }
    Some(v)
}

fn parse_ipv6(s: &str) -> Option<u128> {
    s.parse::<std::net::Ipv6Addr>().ok().map(u128::from)
}

fn prefix_mask(n: u32, bits: u32) -> u128 {
    if n == 0 {
        0
    } else {
        (u128::MAX << (128 - n)) >> (128 - bits)
    }
}

/// A port number or name. Reserved names are case-insensitive; numbers are
/// decimal, `1..=65280` or a reserved number (`65534` is `LOCAL`).
fn parse_port(s: &str, ports: Ports) -> Result<PortNo, String> {
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        if s.starts_with("0x") || s.starts_with("0X") {
            return Err(format!("port numbers are decimal, not \"{s}\""));
        }
        let n: u32 = s
            .parse()
            .map_err(|_| format!("bad port \"{s}\": expected a port number or name"))?;
        let p = PortNo(n);
        return if n == 0 {
            Err("port 0 is not a valid port (ports are 1 to 65280)".to_string())
        } else if p <= PortNo::MAX || (p.reserved_name().is_some() && p != PortNo::NONE) {
            if p == PortNo::TABLE {
                Err("port TABLE is only valid in packet-out".to_string())
            } else {
                Ok(p)
            }
        } else {
            Err(format!(
                "port {n} is not a valid port (ports are 1 to 65280, or a reserved name such as LOCAL)"
            ))
        };
    }
    if s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("any") {
        return Err(format!("port {s} is not a valid port here"));
    }
    if s.eq_ignore_ascii_case("table") {
        return Err("port TABLE is only valid in packet-out".to_string());
    }
    if let Some(p) = PortNo::from_reserved_name(s) {
        return Ok(p);
    }
    if s.is_empty() {
        return Err("missing port".to_string());
    }
    ports(s).ok_or_else(|| format!("unknown port \"{s}\""))
}

fn frag_value(s: &str) -> Option<(u128, u128)> {
    Some(match s {
        "no" => (0, 1),
        "yes" => (1, 1),
        "first" => (1, 3),
        "later" => (3, 3),
        "not_later" => (0, 2),
        _ => return None,
    })
}

fn tcp_flag_bit(name: &str) -> Option<u16> {
    (0..9)
        .map(|i| 1u16 << i)
        .find(|b| tcp_flag_name(*b) == Some(name))
}

/// `tcp_flags` value: a number (`0x012`, `0x012/0x0ff`), `+syn-ack`, or
/// `syn|ack` (exact match).
fn parse_tcp_flags(s: &str) -> Result<(u128, u128), String> {
    const FORMS: &str = "expected flags like +syn-ack, syn|ack, or a number like 0x012/0x0ff";
    let check = |v: u128, m: u128| -> Result<(u128, u128), String> {
        let known = u128::from(TCP_FLAGS_KNOWN);
        if v & !known != 0 || (m != 0xfff && m & !known != 0) {
            return Err(format!(
                "tcp_flags bits 0x200-0x800 are reserved ({s}); named flags are fin syn rst psh ack urg ece cwr ns"
            ));
        }
        Ok((v, m))
    };
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        let (v, m) = match s.split_once('/') {
            Some((v, m)) => (
                parse_num(v, 0xfff, "tcp_flags")?,
                parse_num(m, 0xfff, "tcp_flags mask")?,
            ),
            None => (parse_num(s, 0xfff, "tcp_flags")?, 0xfff),
        };
        return check(v & m, m);
    }
    if s.starts_with(['+', '-']) {
        let (mut v, mut m) = (0u16, 0u16);
        let mut rest = s;
        while !rest.is_empty() {
            let plus = rest.starts_with('+');
            let body = &rest[1..];
            let end = body.find(['+', '-']).unwrap_or(body.len());
            let name = &body[..end];
            let bit = tcp_flag_bit(name)
                .ok_or_else(|| format!("unknown TCP flag \"{name}\"; {FORMS}"))?;
            if m & bit != 0 {
                return Err(format!("TCP flag \"{name}\" given twice"));
            }
            m |= bit;
            if plus {
                v |= bit;
            }
            rest = &body[end..];
        }
        return check(v.into(), m.into());
    }
    let mut v = 0u16;
    for name in s.split('|') {
        v |= tcp_flag_bit(name).ok_or_else(|| format!("unknown TCP flag \"{name}\"; {FORMS}"))?;
    }
    check(v.into(), 0xfff)
}

fn value_hint(f: Field) -> String {
    match f.kind() {
        ValueKind::Mac => "expected a MAC address like 00:11:22:33:44:55".to_string(),
        ValueKind::Ipv4 => "expected an IPv4 address like 10.0.0.1".to_string(),
        ValueKind::Ipv6 => "expected an IPv6 address like 2001:db8::1".to_string(),
        _ => "expected a number".to_string(),
    }
}

/// A single value of `f` (no mask), for matches and `set_field`.
fn parse_value(f: Field, s: &str, ports: Ports) -> Result<u128, String> {
    let name = f.name();
    match f.kind() {
        ValueKind::Port => parse_port(s, ports).map(|p| u128::from(p.0)),
        ValueKind::Mac => {
            parse_mac(s).ok_or_else(|| format!("bad {name} value \"{s}\": {}", value_hint(f)))
        }
        ValueKind::Ipv4 => parse_ipv4(s)
            .map(u128::from)
            .ok_or_else(|| format!("bad {name} value \"{s}\": {}", value_hint(f))),
        ValueKind::Ipv6 => {
            parse_ipv6(s).ok_or_else(|| format!("bad {name} value \"{s}\": {}", value_hint(f)))
        }
        ValueKind::Int(_) => {
            let max = match f {
                Field::NwTos => 0xff,
                _ => f.full_mask(),
            };
            let v = parse_num(s, max, name)?;
            if f == Field::NwTos && v & 3 != 0 {
                return Err(format!(
                    "nw_tos value {s} has ECN bits set; nw_tos holds the DSCP bits only (a multiple of 4), use nw_ecn for the low 2 bits"
                ));
            }
            Ok(v)
        }
        ValueKind::TunFlags => match s {
            "oam" => Ok(1),
            _ if s.starts_with(['+', '-']) => Err(format!(
                "set_field to {name} takes oam, 0 or 1, not the +/- match syntax"
            )),
            _ => parse_tun_flags_num(s),
        },
        ValueKind::Frag | ValueKind::TcpFlags => Err(format!("{name} cannot be written")),
    }
}

/// A numeric `tun_flags` value or mask: only the `oam` bit (1) exists.
fn parse_tun_flags_num(s: &str) -> Result<u128, String> {
    match parse_uint(s) {
        Ok(v) if v <= 1 => Ok(v),
        Ok(_) | Err(NumError::TooLarge) => Err(format!(
            "tun_flags value {s} has unknown flags (only oam, 0x1, exists)"
        )),
        Err(NumError::NotANumber) => Err(format!(
            "bad tun_flags value \"{s}\": expected +oam, -oam, oam, or a number like 0x1/0x1"
        )),
    }
}

/// `tun_flags` in a match: `+oam`, `-oam`, `oam` (the same as `+oam`), or
/// a number with an optional mask (`0x1/0x1`), as OVS takes it.
fn parse_tun_flags(s: &str) -> Result<(u128, u128), String> {
    match s {
        "+oam" | "oam" => return Ok((1, 1)),
        "-oam" => return Ok((0, 1)),
        _ => {}
    }
    if s.starts_with(['+', '-']) {
        return Err(format!(
            "unknown tunnel flag in \"{s}\" (the only flag is oam: +oam or -oam, given once)"
        ));
    }
    match s.split_once('/') {
        Some((v, m)) => {
            let m = parse_tun_flags_num(m)?;
            Ok((parse_tun_flags_num(v)? & m, m))
        }
        None => Ok((parse_tun_flags_num(s)?, 1)),
    }
}

/// A match value with optional mask, for field `f`.
fn parse_masked(f: Field, s: &str, ports: Ports) -> Result<(u128, u128), String> {
    let name = f.name();
    match f.kind() {
        ValueKind::Frag => {
            return frag_value(s).ok_or_else(|| {
                format!("bad {name} value \"{s}\": expected no, yes, first, later or not_later")
            })
        }
        ValueKind::TcpFlags => return parse_tcp_flags(s),
        ValueKind::TunFlags => return parse_tun_flags(s),
        _ => {}
    }
    let (vs, ms) = match s.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (s, None),
    };
    if let Some(ms) = ms {
        if !f.maskable() {
            return Err(format!("{name} cannot be masked"));
        }
        if ms.contains('/') {
            return Err(format!("bad mask syntax in \"{s}\""));
        }
    }
    // dl_vlan=0xffff (OpenFlow 1.0's "no VLAN") is handled by the caller.
    let v = match f {
        Field::DlVlan => {
            let v = parse_num(vs, 0xffff, name)?;
            if v > 0xfff && v != 0xffff {
                return Err(format!(
                    "dl_vlan value {vs} is out of range (0 to 4095, or 0xffff for untagged)"
                ));
            }
            v
        }
        _ => parse_value(f, vs, ports)?,
    };
    let m = match (f.kind(), ms) {
        (_, None) => f.full_mask(),
        (ValueKind::Ipv4, Some(m)) if !m.contains('.') => {
            let n = parse_num(m, 32, "prefix length")?;
            prefix_mask(n as u32, 32)
        }
        (ValueKind::Ipv4, Some(m)) => parse_ipv4(m)
            .map(u128::from)
            .ok_or_else(|| format!("bad {name} mask \"{m}\": expected /N or /255.255.255.0"))?,
        (ValueKind::Ipv6, Some(m)) if !m.contains(':') => {
            let n = parse_num(m, 128, "prefix length")?;
            prefix_mask(n as u32, 128)
        }
        (ValueKind::Ipv6, Some(m)) => parse_ipv6(m)
            .ok_or_else(|| format!("bad {name} mask \"{m}\": expected /N or an IPv6 mask"))?,
        (ValueKind::Mac, Some(m)) => parse_mac(m).ok_or_else(|| {
            format!("bad {name} mask \"{m}\": expected a MAC-style mask like ff:ff:ff:00:00:00")
        })?,
        (_, Some(m)) => parse_num(m, f.full_mask(), &format!("{name} mask"))?,
    };
    Ok((v, m))
}

/// One thing written into the match, remembered for conflict and
/// prerequisite checks.
struct Setting {
    token: String,
    pos: usize,
    mask: FlowKey,
    field: Option<Field>,
    name: String,
    prereq: Prereq,
}

#[derive(Default)]
struct MatchBuilder {
    key: FlowKey,
    mask: FlowKey,
    settings: Vec<Setting>,
}

impl MatchBuilder {
    fn add(&mut self, tk: FlowKey, tm: FlowKey, set: Setting) -> Result<(), ParseError> {
        if let Some(f) = set.field {
            if let Some(prev) = self.settings.iter().find(|p| p.field == Some(f)) {
                return Err(err(
                    set.pos,
                    &set.token,
                    format!(
                        "duplicate field {} (already set by \"{}\" at column {})",
                        f.name(),
                        prev.token,
                        prev.pos + 1
                    ),
                ));
            }
        }
        let words = |k: &FlowKey| *k.words();
        let (k, m, tkw, tmw) = (words(&self.key), words(&self.mask), words(&tk), words(&tm));
        let conflict = (0..FlowKey::WORDS).any(|w| {
            let ov = tmw[w] & m[w];
            tkw[w] & ov != k[w] & ov
        });
        if conflict {
            let prev = self.settings.iter().find(|p| {
                let pm = words(&p.mask);
                (0..FlowKey::WORDS).any(|w| pm[w] & tmw[w] != 0)
            });
            let (pt, pp) = prev.map_or(("?", 0), |p| (p.token.as_str(), p.pos));
            return Err(err(
                set.pos,
                &set.token,
                format!("conflicts with \"{pt}\" at column {}", pp + 1),
            ));
        }
        for (a, b) in self.key.words_mut().iter_mut().zip(tkw) {
            *a |= b;
        }
        for (a, b) in self.mask.words_mut().iter_mut().zip(tmw) {
            *a |= b;
        }
        self.settings.push(Setting { mask: tm, ..set });
        Ok(())
    }

    fn finish(self) -> Result<Match, ParseError> {
        let m = Match::new(self.key, self.mask);
        for s in &self.settings {
            if !s.prereq.is_met(&m) {
                return Err(err(
                    s.pos,
                    &s.token,
                    format!(
                        "{} needs {} (e.g. \"{},{}=...\")",
                        s.name,
                        s.prereq.describe(),
                        s.prereq.example(),
                        s.name
                    ),
                ));
            }
        }
        let (tci, tm) = (m.key().vlan_tci, m.mask().vlan_tci);
        if tm & VLAN_PRESENT != 0 && tci & VLAN_PRESENT == 0 && tci != 0 {
            let s = self.settings.iter().find(|s| s.mask.vlan_tci != 0);
            let (t, p) = s.map_or(("", 0), |s| (s.token.as_str(), s.pos));
            return Err(err(
                p,
                t,
                format!(
                    "matches VLAN id or priority {tci:#06x} without the 0x1000 \"tag present\" bit, which no packet can have (use dl_vlan=N, or vlan_vid=0x1000|N)"
                ),
            ));
        }
        Ok(m)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Flow,
    Filter,
    FlowMod,
}

struct Parsed {
    table: Option<TableId>,
    priority: Option<Priority>,
    cookie: Option<(u64, Option<u64>)>,
    idle_timeout: u16,
    hard_timeout: u16,
    out_port: Option<PortNo>,
    m: Match,
    actions: Option<Vec<Action>>,
}

fn parse_all(s: &str, ports: Ports, mode: Mode) -> Result<Parsed, ParseError> {
    let mut mb = MatchBuilder::default();
    let mut table = None;
    let mut priority = None;
    let mut cookie = None;
    let mut idle = None;
    let mut hard = None;
    let mut out_port = None;
    let mut actions_at: Option<(&str, usize)> = None;
    let mut seen_meta: Vec<(&str, usize)> = Vec::new();
    let mut i = 0;
    while let Some(it) = next_item(s, &mut i) {
        let tok = it.token;
        let e = |msg: String| err(it.pos, tok, msg);
        if it.key.is_empty() {
            return Err(e(
                "expected a field name, a shorthand like ip, or actions=".into()
            ));
        }
        // Shorthands.
        if let Some(&(name, ty, proto)) = SHORTHANDS.iter().find(|(n, _, _)| *n == it.key) {
            if it.value.is_some() {
                return Err(e(format!("{name} is a shorthand and takes no value")));
            }
            let (mut tk, mut tm) = (FlowKey::ZERO, FlowKey::ZERO);
            Field::DlType.set_masked(&mut tk, &mut tm, ty.into(), 0xffff);
            if let Some(p) = proto {
                Field::NwProto.set_masked(&mut tk, &mut tm, p.into(), 0xff);
            }
            mb.add(
                tk,
                tm,
                Setting {
                    token: tok.to_string(),
                    pos: it.pos,
                    mask: FlowKey::ZERO,
                    field: None,
                    name: name.to_string(),
                    prereq: Prereq::None,
                },
            )?;
            continue;
        }
        // Keys other than fields.
        if META_KEYS.contains(&it.key) || STATS_KEYS.contains(&it.key) {
            let Some(v) = it.value else {
                return Err(e(format!("{} needs a value", it.key)));
            };
            if let Some((_, p)) = seen_meta.iter().find(|(k, _)| *k == it.key) {
                return Err(e(format!(
                    "duplicate {} (already given at column {})",
                    it.key,
                    p + 1
                )));
            }
            seen_meta.push((it.key, it.pos));
            match it.key {
                "actions" => {
                    if mode == Mode::Filter {
                        return Err(e("actions are not allowed in a match".into()));
                    }
                    actions_at = Some((v, it.value_pos));
                }
                "table" => {
                    let t = parse_num(v, 255, "table").map_err(e)?;
                    if t == 255 {
                        return Err(e(
                            "table 255 is not a table (OVS reads it as \"all tables\"); tables are 0 to 254".into(),
                        ));
                    }
                    table = Some(TableId(t as u8));
                }
                "priority" => {
                    priority = Some(Priority(parse_num(v, 0xffff, "priority").map_err(e)? as u16))
                }
                "idle_timeout" | "hard_timeout" if mode == Mode::Filter => {
                    return Err(e(format!("{} is not allowed in a match", it.key)));
                }
                "idle_timeout" => {
                    idle = Some(parse_num(v, 0xffff, "idle_timeout").map_err(e)? as u16)
                }
                "hard_timeout" => {
                    hard = Some(parse_num(v, 0xffff, "hard_timeout").map_err(e)? as u16)
                }
                "cookie" => {
                    let (cv, cm) = match v.split_once('/') {
                        Some((cv, cm)) => {
                            if mode == Mode::Flow {
                                return Err(e(
                                    "a cookie mask is only allowed in mod-flows, del-flows and dump-flows".into(),
                                ));
                            }
                            (cv, Some(cm))
                        }
                        None => (v, None),
                    };
                    let cv = parse_num(cv, u64::MAX.into(), "cookie").map_err(e)? as u64;
                    let cm = cm
                        .map(|m| parse_num(m, u64::MAX.into(), "cookie mask").map(|m| m as u64))
                        .transpose()
                        .map_err(e)?;
                    cookie = Some((cv, cm));
                }
                "out_port" => {
                    if mode != Mode::Filter {
                        return Err(e(
                            "out_port is only allowed in a match (del-flows, dump-flows)".into(),
                        ));
                    }
                    out_port = Some(parse_port(v, ports).map_err(e)?);
                }
                // Statistics from dump-flows output: ignored.
                _ => {
                    if mode == Mode::Filter {
                        return Err(e(format!("{} is not allowed in a match", it.key)));
                    }
                }
            }
            continue;
        }
        // Fields.
        let Some((field, prereq)) = Field::lookup(it.key) else {
            return Err(e(format!(
                "unknown field \"{}\"{}",
                it.key,
                suggest(it.key, &match_keywords())
            )));
        };
        let Some(v) = it.value else {
            return Err(e(format!(
                "field {} needs a value ({}=...)",
                it.key, it.key
            )));
        };
        if v.is_empty() {
            return Err(e(format!(
                "field {} needs a value ({}=...)",
                it.key, it.key
            )));
        }
        let (val, mask) = parse_masked(field, v, ports).map_err(e)?;
        let (mut tk, mut tm) = (FlowKey::ZERO, FlowKey::ZERO);
        if field == Field::DlVlan && val == 0xffff {
            // OpenFlow 1.0 "no VLAN": match vlan_tci=0 exactly.
            tm.vlan_tci = 0xffff;
        } else {
            field.set_masked(&mut tk, &mut tm, val, mask);
        }
        mb.add(
            tk,
            tm,
            Setting {
                token: tok.to_string(),
                pos: it.pos,
                mask: FlowKey::ZERO,
                field: Some(field),
                name: it.key.to_string(),
                prereq,
            },
        )?;
    }
    let m = mb.finish()?;
    let actions = match actions_at {
        None if mode == Mode::Filter => None,
        None => {
            let start = s.len() - s.trim_start().len();
            return Err(err(
                start,
                s.trim(),
                "missing actions= (e.g. \"...,actions=drop\")",
            ));
        }
        Some((a, apos)) => {
            let t = table.unwrap_or_default();
            Some(parse_actions(a, apos, &m, t, ports)?)
        }
    };
    Ok(Parsed {
        table,
        priority,
        cookie,
        idle_timeout: idle.unwrap_or(0),
        hard_timeout: hard.unwrap_or(0),
        out_port,
        m,
        actions,
    })
}

/// One action item: `name`, `name:arg`, `name=arg` or `name(arg)`.
struct ActItem<'s> {
    name: &'s str,
    arg: Option<&'s str>,
    paren: bool,
    pos: usize,
    token: &'s str,
}

fn split_actions(s: &str, base: usize) -> Result<Vec<ActItem<'_>>, ParseError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && is_sep(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && !is_sep(b[i]) && !matches!(b[i], b':' | b'=' | b'(' | b')') {
            i += 1;
        }
        let name = &s[start..i];
        let mut arg = None;
        let mut paren = false;
        if i < b.len() && matches!(b[i], b':' | b'=') {
            i += 1;
            let a = i;
            while i < b.len() && !is_sep(b[i]) {
                i += 1;
            }
            arg = Some(&s[a..i]);
        } else if i < b.len() && b[i] == b'(' {
            paren = true;
            let a = i + 1;
            let mut depth = 0usize;
            let mut close = None;
            for (j, c) in b.iter().enumerate().skip(i) {
                match c {
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            close = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(c) = close else {
                return Err(err(base + start, &s[start..], "missing \")\""));
            };
            arg = Some(&s[a..c]);
            i = c + 1;
            if i < b.len() && !is_sep(b[i]) {
                let mut j = i;
                while j < b.len() && !is_sep(b[j]) {
                    j += 1;
                }
                return Err(err(
                    base + start,
                    &s[start..j],
                    "unexpected text after \")\"",
                ));
            }
        } else if i < b.len() && !is_sep(b[i]) {
            // A stray ')'.
            while i < b.len() && !is_sep(b[i]) {
                i += 1;
            }
            return Err(err(base + start, &s[start..i], "unexpected \")\""));
        }
        out.push(ActItem {
            name,
            arg,
            paren,
            pos: base + start,
            token: &s[start..i],
        });
    }
    Ok(out)
}

const ACTION_NAMES: &[&str] = &[
    "output",
    "normal",
    "flood",
    "all",
    "in_port",
    "local",
    "controller",
    "drop",
    "mod_vlan_vid",
    "mod_vlan_pcp",
    "strip_vlan",
    "pop_vlan",
    "push_vlan",
    "set_field",
    "mod_dl_src",
    "mod_dl_dst",
    "mod_nw_src",
    "mod_nw_dst",
    "mod_nw_tos",
    "mod_tp_src",
    "mod_tp_dst",
    "set_tunnel",
    "set_tunnel64",
    "dec_ttl",
    "resubmit",
    "goto_table",
    "note",
    "meter",
];

/// `output:PORT` and bare ports: reserved ports become their own actions.
fn output_action(p: PortNo) -> Action {
    match p {
        PortNo::IN_PORT => Action::InPort,
        PortNo::NORMAL => Action::Normal,
        PortNo::FLOOD => Action::Flood,
        PortNo::ALL => Action::All,
        PortNo::CONTROLLER => Action::Controller { max_len: 0xffff },
        PortNo::LOCAL => Action::Local,
        p => Action::Output(p),
    }
}

/// Zero pads note bytes the way OVS does (the NXAST_NOTE action is padded
/// to a multiple of 8 bytes, and `dump-flows` prints the padding).
fn pad_note(mut b: Vec<u8>) -> Vec<u8> {
    let total = (10 + b.len()).div_ceil(8) * 8;
    b.resize(total - 10, 0);
    b
}

fn parse_note(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' {
            i += 1;
            continue;
        }
        let hex = |c: u8| (c as char).to_digit(16);
        match (hex(b[i]), b.get(i + 1).and_then(|c| hex(*c))) {
            // Digits are < 16, so the byte fits.
            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
            _ => {
                return Err(
                    "note needs pairs of hex digits, optionally separated by dots (note:01.02.ab)"
                        .into(),
                )
            }
        }
        i += 2;
    }
    Ok(out)
}

fn parse_actions(
    s: &str,
    base: usize,
    m: &Match,
    table: TableId,
    ports: Ports,
) -> Result<Vec<Action>, ParseError> {
    let items = split_actions(s, base)?;
    let mut out = Vec::new();
    let mut vlan_present =
        m.mask().vlan_tci & VLAN_PRESENT != 0 && m.key().vlan_tci & VLAN_PRESENT != 0;
    let n = items.len();
    for (idx, it) in items.iter().enumerate() {
        let tok = it.token;
        let e = |msg: String| err(it.pos, tok, msg);
        let lname = it.name.to_ascii_lowercase();
        let no_arg = |a: Action| -> Result<Action, ParseError> {
            if it.arg.is_some() {
                Err(err(it.pos, tok, format!("{} takes no argument", it.name)))
            } else {
                Ok(a)
            }
        };
        let need_arg = || -> Result<&str, ParseError> {
            match it.arg {
                Some(a) if !a.is_empty() => Ok(a),
                _ => Err(err(
                    it.pos,
                    tok,
                    format!("{} needs an argument ({}:...)", lname, lname),
                )),
            }
        };
        let prereq = |p: Prereq, what: &str| -> Result<(), ParseError> {
            if p.is_met(m) {
                Ok(())
            } else {
                Err(err(
                    it.pos,
                    tok,
                    format!(
                        "{what} needs {} in the match (e.g. \"{},actions={tok}\")",
                        p.describe(),
                        p.example()
                    ),
                ))
            }
        };
        if it.paren && !matches!(lname.as_str(), "controller" | "resubmit") {
            return Err(e(format!("{} does not take (...) arguments", it.name)));
        }
        let a = match lname.as_str() {
            "drop" => {
                if n != 1 || it.arg.is_some() {
                    return Err(e("drop must be the only action".into()));
                }
                continue;
            }
            "output" => output_action(parse_port(need_arg()?, ports).map_err(e)?),
            "normal" => no_arg(Action::Normal)?,
            "flood" => no_arg(Action::Flood)?,
            "all" => no_arg(Action::All)?,
            "in_port" => no_arg(Action::InPort)?,
            "local" => no_arg(Action::Local)?,
            "controller" => {
                let max_len = match it.arg {
                    None => 0xffff,
                    Some(a) if it.paren => {
                        let mut ml = 0xffff;
                        for kv in a.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                            match kv.split_once('=') {
                                Some(("max_len", v)) => {
                                    ml = parse_num(v, 0xffff, "max_len").map_err(e)?
                                }
                                _ => {
                                    return Err(e(format!(
                                        "unsupported controller option \"{kv}\" (only max_len=N)"
                                    )))
                                }
                            }
                        }
                        ml
                    }
                    Some(a) => parse_num(a, 0xffff, "max_len").map_err(e)?,
                };
                // max_len <= 0xffff was checked.
                Action::Controller {
                    max_len: max_len as u16,
                }
            }
            "mod_vlan_vid" => {
                vlan_present = true;
                Action::SetVlanVid(parse_num(need_arg()?, 4095, "VLAN id").map_err(e)? as u16)
            }
            "mod_vlan_pcp" => {
                vlan_present = true;
                Action::SetVlanPcp(parse_num(need_arg()?, 7, "VLAN PCP").map_err(e)? as u8)
            }
            "strip_vlan" | "pop_vlan" => {
                vlan_present = false;
                no_arg(Action::StripVlan)?
            }
            "push_vlan" => {
                let t = parse_num(need_arg()?, 0xffff, "push_vlan ethertype").map_err(e)?;
                if t != 0x8100 && t != 0x88a8 {
                    return Err(e("push_vlan takes ethertype 0x8100 or 0x88a8".into()));
                }
                vlan_present = true;
                Action::PushVlan(t as u16)
            }
            "mod_dl_src" | "mod_dl_dst" => {
                let f = if lname == "mod_dl_src" {
                    Field::DlSrc
                } else {
                    Field::DlDst
                };
                Action::SetField {
                    field: f,
                    value: parse_value(f, need_arg()?, ports).map_err(e)?,
                }
            }
            "mod_nw_src" | "mod_nw_dst" => {
                let f = if lname == "mod_nw_src" {
                    Field::NwSrc
                } else {
                    Field::NwDst
                };
                prereq(Prereq::Ipv4, &lname)?;
                Action::SetField {
                    field: f,
                    value: parse_value(f, need_arg()?, ports).map_err(e)?,
                }
            }
            "mod_nw_tos" => {
                prereq(Prereq::Ip, &lname)?;
                Action::SetField {
                    field: Field::NwTos,
                    value: parse_value(Field::NwTos, need_arg()?, ports).map_err(e)?,
                }
            }
            "mod_tp_src" | "mod_tp_dst" => {
                let f = if lname == "mod_tp_src" {
                    Field::TpSrc
                } else {
                    Field::TpDst
                };
                prereq(Prereq::L4, &lname)?;
                Action::SetField {
                    field: f,
                    value: parse_value(f, need_arg()?, ports).map_err(e)?,
                }
            }
            // OVS writes set_tunnel64 for a key above 32 bits whichever
            // was given; both are set_field to tun_id.
            "set_tunnel" | "set_tunnel64" => Action::SetField {
                field: Field::TunId,
                value: parse_num(need_arg()?, u64::MAX.into(), "tunnel id").map_err(e)?,
            },
            "dec_ttl" => no_arg(Action::DecTtl)?,
            "set_field" => {
                let a = need_arg()?;
                let Some((v, fname)) = a.rsplit_once("->") else {
                    return Err(e(
                        "set_field needs VALUE->FIELD (e.g. set_field:10.0.0.1->ip_src)".into(),
                    ));
                };
                let Some((f, p)) = Field::lookup(fname) else {
                    let names: Vec<&str> = Field::names().iter().map(|(n, _, _)| *n).collect();
                    return Err(e(format!(
                        "unknown field \"{fname}\"{}",
                        suggest(fname, &names)
                    )));
                };
                if !f.writable() {
                    return Err(e(format!(
                        "{fname} is read-only (set_field cannot write it)"
                    )));
                }
                if v.contains('/') {
                    return Err(e("set_field does not take a mask here".into()));
                }
                let val = parse_value(f, v, ports).map_err(e)?;
                // OVS checks set_field strictly: icmp_type/icmp_code are
                // ICMPv4 only there (icmpv6_type/icmpv6_code for ICMPv6).
                let p = if matches!(fname, "icmp_type" | "icmp_code") {
                    Prereq::Icmp4
                } else {
                    p
                };
                prereq(p, fname)?;
                match f {
                    Field::VlanVid | Field::VlanPcp => {
                        if !vlan_present {
                            return Err(e(format!(
                                "set_field to {fname} needs a VLAN tag: match one (e.g. dl_vlan=N or vlan_tci=0x1000/0x1000) or push_vlan first"
                            )));
                        }
                        if f == Field::VlanVid {
                            if val & 0x1000 == 0 {
                                return Err(e(format!(
                                    "vlan_vid value {v} lacks the 0x1000 present bit (VLAN 10 is 4106 or 0x100a)"
                                )));
                            }
                            Action::SetVlanVid((val & 0xfff) as u16)
                        } else {
                            Action::SetVlanPcp(val as u8)
                        }
                    }
                    Field::IpDscp => Action::SetField {
                        field: Field::NwTos,
                        value: val << 2,
                    },
                    _ => Action::SetField {
                        field: f,
                        value: val,
                    },
                }
            }
            "resubmit" => {
                let a = need_arg()?;
                let (ps, ts) = if it.paren {
                    match a.split_once(',') {
                        Some((p, t)) => (p.trim(), t.trim()),
                        None => (a.trim(), ""),
                    }
                } else {
                    (a, "")
                };
                let port = if ps.is_empty() || ps.eq_ignore_ascii_case("in_port") {
                    None
                } else {
                    Some(parse_port(ps, ports).map_err(e)?)
                };
                let table = if ts.is_empty() {
                    None
                } else {
                    let t = parse_num(ts, 254, "resubmit table").map_err(e)?;
                    Some(TableId(t as u8))
                };
                if port.is_none() && table.is_none() {
                    return Err(e(
                        "resubmit needs a port or a table (resubmit:PORT or resubmit(,TABLE))"
                            .into(),
                    ));
                }
                Action::Resubmit { port, table }
            }
            "goto_table" => {
                let t = TableId(parse_num(need_arg()?, 254, "goto_table table").map_err(e)? as u8);
                if t <= table {
                    return Err(e(format!(
                        "goto_table must go forward: table {} is not after this flow's table {}",
                        t.0, table.0
                    )));
                }
                if idx + 1 != n {
                    return Err(e("goto_table must be the last action".into()));
                }
                Action::GotoTable(t)
            }
            "meter" => {
                // OpenFlow 1.3: 1..=OFPM_MAX (0xffff0000); the meter runs
                // before the apply actions, so it comes first (ovs-ofctl:
                // "instruction meter must be specified before
                // apply_actions").
                let id = parse_num(need_arg()?, 0xffff_0000, "meter id").map_err(e)?;
                if id == 0 {
                    return Err(e("meter id 0 is invalid (meters are 1..=4294901760)".into()));
                }
                if idx != 0 {
                    return Err(e("meter must be the first action (OpenFlow runs the meter instruction before the others)".into()));
                }
                Action::Meter(id as u32)
            }
            "note" => Action::Note(pad_note(parse_note(it.arg.unwrap_or("")).map_err(e)?)),
            _ => {
                // A bare port number or name means output to it.
                if it.arg.is_none() && !it.paren {
                    if it.name.starts_with(|c: char| c.is_ascii_digit()) {
                        output_action(parse_port(it.name, ports).map_err(e)?)
                    } else if let Some(p) = ports(it.name) {
                        Action::Output(p)
                    } else {
                        return Err(e(format!(
                            "unknown action \"{}\"{}",
                            it.name,
                            suggest(it.name, ACTION_NAMES)
                        )));
                    }
                } else {
                    return Err(e(format!(
                        "unknown action \"{}\"{}",
                        it.name,
                        suggest(it.name, ACTION_NAMES)
                    )));
                }
            }
        };
        out.push(a);
    }
    Ok(out)
}

/// Parses one flow as `ovs-ofctl add-flow` takes it.
///
/// `ports` resolves port names (`output:tap0`, `in_port=tap0`); reserved
/// names (`LOCAL`, `IN_PORT`, …) are known without it. Keys that
/// `dump-flows` prints with statistics (`duration`, `n_packets`,
/// `n_bytes`, `idle_age`, `hard_age`) are accepted and ignored, so its
/// output can be fed back.
pub fn parse_flow(s: &str, ports: &dyn Fn(&str) -> Option<PortNo>) -> Result<Flow, ParseError> {
    let p = parse_all(s, ports, Mode::Flow)?;
    Ok(Flow {
        table: p.table.unwrap_or_default(),
        priority: p.priority.unwrap_or_default(),
        cookie: p.cookie.map_or(0, |c| c.0),
        idle_timeout: p.idle_timeout,
        hard_timeout: p.hard_timeout,
        m: p.m,
        actions: p.actions.unwrap_or_default(),
    })
}

/// Parses a file of flows: one per line; blank lines and lines whose first
/// non-blank character is `#` are skipped.
pub fn parse_flows(
    text: &str,
    ports: &dyn Fn(&str) -> Option<PortNo>,
) -> Result<Vec<Flow>, FlowsError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        out.push(parse_flow(line, ports).map_err(|source| FlowsError {
            line: n + 1,
            source,
        })?);
    }
    Ok(out)
}

/// Parses the match argument of `del-flows`, `dump-flows`, `trace` (and
/// `mod-flows` without actions): match fields plus optional `table=`,
/// `priority=` (for `--strict`), `cookie=V[/MASK]` (no mask means an exact
/// cookie) and `out_port=`. `actions=` is an error. An empty string
/// selects every flow.
pub fn parse_match_filter(
    s: &str,
    ports: &dyn Fn(&str) -> Option<PortNo>,
) -> Result<FlowFilter, ParseError> {
    let p = parse_all(s, ports, Mode::Filter)?;
    let (cookie, cookie_mask) = match p.cookie {
        None => (0, 0),
        Some((v, m)) => (v, m.unwrap_or(u64::MAX)),
    };
    Ok(FlowFilter {
        table: p.table,
        priority: p.priority,
        cookie,
        cookie_mask,
        out_port: p.out_port,
        m: p.m,
    })
}

/// Parses the argument of `mod-flows`: a full flow with actions, where
/// `cookie=V/MASK` selects flows by cookie (and leaves their cookies
/// alone) while `cookie=V` without a mask is the new cookie.
///
/// Returns the filter selecting the flows to modify (`table` only when
/// given; `priority` only when given, for `--strict`) and the new flow
/// contents (`Flow::cookie` is the new cookie: `V`, or 0 when a mask was
/// given — callers keep the old cookie then).
pub fn parse_flow_mod(
    s: &str,
    ports: &dyn Fn(&str) -> Option<PortNo>,
) -> Result<(FlowFilter, Flow), ParseError> {
    let p = parse_all(s, ports, Mode::FlowMod)?;
    let (fc, fm, new_cookie) = match p.cookie {
        Some((v, Some(m))) => (v, m, 0),
        Some((v, None)) => (0, 0, v),
        None => (0, 0, 0),
    };
    let filter = FlowFilter {
        table: p.table,
        priority: p.priority,
        cookie: fc,
        cookie_mask: fm,
        out_port: None,
        m: p.m,
    };
    let flow = Flow {
        table: p.table.unwrap_or_default(),
        priority: p.priority.unwrap_or_default(),
        cookie: new_cookie,
        idle_timeout: p.idle_timeout,
        hard_timeout: p.hard_timeout,
        m: p.m,
        actions: p.actions.unwrap_or_default(),
    };
    Ok((filter, flow))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<PortNo> {
        None
    }

    #[test]
    fn items_split_on_commas_and_spaces() {
        let s = "priority=5 ip, nw_src=1.2.3.4 actions=drop";
        let mut i = 0;
        let mut keys = Vec::new();
        while let Some(it) = next_item(s, &mut i) {
            keys.push((it.key, it.value, it.pos));
        }
        assert_eq!(
            keys,
            vec![
                ("priority", Some("5"), 0),
                ("ip", None, 11),
                ("nw_src", Some("1.2.3.4"), 15),
                ("actions", Some("drop"), 30)
            ]
        );
    }

    #[test]
    fn numbers_and_addresses() {
        assert!(matches!(parse_uint("0x1f"), Ok(31)));
        assert!(parse_uint("-1").is_err());
        assert_eq!(parse_ipv4("10.0.0.1"), Some(0x0a00_0001));
        assert_eq!(parse_ipv4("300.0.0.1"), None);
        assert_eq!(parse_ipv4("1.2.3"), None);
        assert_eq!(parse_mac("0:1:2:3:4:5"), Some(0x0001_0203_0405));
        assert_eq!(prefix_mask(24, 32), 0xffff_ff00);
        assert_eq!(prefix_mask(32, 32), 0xffff_ffff);
    }

    #[test]
    fn note_padding() {
        assert_eq!(pad_note(vec![]).len(), 6);
        assert_eq!(pad_note(vec![1, 2]).len(), 6);
        assert_eq!(pad_note(vec![0; 7]).len(), 14);
        assert_eq!(pad_note(vec![0; 14]).len(), 14);
    }

    #[test]
    fn suggestions() {
        assert!(suggest("nw_scr", &match_keywords()).contains("nw_src"));
        assert!(suggest("IP", &match_keywords()).contains("ip"));
        assert!(suggest("outptu", ACTION_NAMES).contains("output"));
    }

    /// The distance as it was first written: the whole table.
    fn full_table_distance(a: &str, b: &str) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for (i, row) in d.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, cell) in d[0].iter_mut().enumerate() {
            *cell = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut v = (d[i - 1][j] + 1)
                    .min(d[i][j - 1] + 1)
                    .min(d[i - 1][j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[i - 2][j - 2] + 1);
                }
                d[i][j] = v;
            }
        }
        d[a.len()][b.len()]
    }

    #[test]
    fn suggestions_skip_only_keywords_out_of_reach() {
        // Every pair suggest() computes gives the full table's distance,
        // and what it skips is too far in length to have been suggested.
        let words = [
            "nw_scr",
            "ip",
            "IP",
            "outptu",
            "tcp_flag",
            "dl",
            "x",
            "mod_nw_tos_x",
            "in_prt",
            "icmp6_typ",
            "arp_op",
            "tun_src_dst",
            "priorty",
            "actions]]]]]]]]",
            "set_fieldd",
        ];
        let kw = match_keywords();
        for w in words {
            for cands in [&kw[..], ACTION_NAMES] {
                let lower = w.to_ascii_lowercase();
                let limit = 2.max(lower.len() / 4);
                let mut expect: Vec<(usize, &str)> = cands
                    .iter()
                    .map(|c| (full_table_distance(&lower, c), *c))
                    .filter(|(d, c)| *d <= limit || c.starts_with(&lower) && lower.len() >= 3)
                    .collect();
                expect.sort();
                let names: Vec<&str> = expect.iter().take(3).map(|(_, c)| *c).collect();
                let want = if names.is_empty() {
                    String::new()
                } else {
                    format!(" (did you mean {}?)", names.join(" or "))
                };
                assert_eq!(suggest(w, cands), want, "{w}");
                for c in cands {
                    let (a, b): (Vec<char>, Vec<char>) =
                        (lower.chars().collect(), c.chars().collect());
                    if a.len() <= 2 * b.len() + 2 {
                        assert_eq!(edit_distance(&a, &b), full_table_distance(&lower, c));
                    }
                }
            }
        }
    }

    #[test]
    fn suggestions_for_a_long_word_cost_its_length() {
        // A distance costs the word's length times the keyword's: for a
        // key of 128 KiB (the fuzzer's longest input) against every
        // keyword that was a quarter of a second per parse. Keywords too
        // far in length are skipped (edit_distance asserts it in debug
        // builds), so this is one pass over the word.
        let key = "actions]".repeat(1 << 14);
        let e = parse_flow(&format!("{key},actions=drop"), &none).unwrap_err();
        assert_eq!(e.msg, format!("unknown field \"{key}\""));
        let e = parse_flow(&format!("actions={key}"), &none).unwrap_err();
        assert_eq!(e.msg, format!("unknown action \"{key}\""));
        let e = parse_flow(&format!("actions=set_field:1->{key}"), &none).unwrap_err();
        assert_eq!(e.msg, format!("unknown field \"{key}\""));
    }

    #[test]
    fn suggestion_distance_limit_counts_characters() {
        // Four 4-byte characters are 4 edits from "ip", not within a
        // quarter of 16 bytes.
        assert_eq!(
            suggest("\u{1f642}".repeat(4).as_str(), &match_keywords()),
            ""
        );
        assert!(suggest("nw_src\u{e9}", &match_keywords()).contains("nw_src"));
    }

    #[test]
    fn filter_rejects_actions() {
        assert!(parse_match_filter("ip,actions=drop", &none).is_err());
        let f = parse_match_filter("table=3,cookie=0x1/0xf,ip", &none).unwrap();
        assert_eq!(
            (f.table, f.cookie, f.cookie_mask),
            (Some(TableId(3)), 1, 0xf)
        );
    }
}
