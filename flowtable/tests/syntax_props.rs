//! Property tests for the flow syntax: random valid flows survive
//! print → parse unchanged, and no input makes the parser panic.
#![allow(clippy::unwrap_used)]

use flowtable::field::Field;
use flowtable::syntax::{
    fmt_flow, fmt_with_stats, parse_flow, parse_flows, parse_match_filter, Flow, FlowStats,
};
use flowtable::{Action, FlowKey, Match, PortNo, Priority, TableId};
use proptest::prelude::*;

fn no_ports(_: &str) -> Option<PortNo> {
    None
}

/// Deterministic source of choices drawn from proptest's random words.
struct Pick<'a> {
    words: &'a [u64],
    i: usize,
}

impl Pick<'_> {
    fn next(&mut self) -> u64 {
        let w = self.words[self.i % self.words.len()];
        self.i += 1;
        // Mix in the index so that a short pool still varies.
        w.rotate_left((self.i % 64) as u32) ^ (self.i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn coin(&mut self) -> bool {
        self.below(2) == 0
    }
    fn u128(&mut self) -> u128 {
        u128::from(self.next()) << 64 | u128::from(self.next())
    }
    /// A mask for a field of `bits`: exact, a prefix, random, or none.
    fn mask(&mut self, bits: u32, maskable: bool) -> u128 {
        let full = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        if !maskable {
            return full;
        }
        match self.below(4) {
            0 | 1 => full,
            2 => {
                let n = self.below(u64::from(bits) + 1) as u32;
                if n == 0 {
                    0
                } else {
                    (full << (bits - n)) & full
                }
            }
            _ => self.u128() & full,
        }
    }
    fn port(&mut self) -> PortNo {
        match self.below(8) {
            0 => PortNo::LOCAL,
            _ => PortNo(1 + self.below(0xff00) as u32),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum L3 {
    None,
    Ip,
    Ipv6,
    Arp,
    Other,
}

struct Gen {
    key: FlowKey,
    mask: FlowKey,
}

impl Gen {
    fn set(&mut self, f: Field, v: u128, m: u128) {
        f.set_masked(&mut self.key, &mut self.mask, v, m);
    }
    fn field(&mut self, p: &mut Pick, f: Field) {
        if p.coin() {
            let m = p.mask(f.bits(), f.maskable());
            let v = p.u128() & f.full_mask();
            self.set(f, v, m);
        }
    }
}

fn random_flow(words: &[u64]) -> Flow {
    let mut p = Pick { words, i: 0 };
    let mut g = Gen {
        key: FlowKey::ZERO,
        mask: FlowKey::ZERO,
    };
    let l3 = match p.below(6) {
        0 | 5 => L3::None,
        1 => L3::Ip,
        2 => L3::Ipv6,
        3 => L3::Arp,
        _ => L3::Other,
    };
    let dl_type = match l3 {
        L3::Ip => 0x0800,
        L3::Ipv6 => 0x86dd,
        L3::Arp => [0x0806, 0x8035][p.below(2) as usize],
        L3::Other => [0x88cc, 0x05ff, 0x8847, 0x1234][p.below(4) as usize],
        L3::None => 0,
    };
    if l3 != L3::None {
        g.set(Field::DlType, dl_type, 0xffff);
    }
    let v6 = l3 == L3::Ipv6;
    let proto = if matches!(l3, L3::Ip | L3::Ipv6) {
        let icmp: u8 = if v6 { 58 } else { 1 };
        [None, Some(6), Some(17), Some(132), Some(icmp), Some(47)][p.below(6) as usize]
    } else {
        None
    };
    if let Some(pr) = proto {
        g.set(Field::NwProto, pr.into(), 0xff);
    }
    if p.coin() {
        g.set(Field::InPort, p.port().0.into(), 0xffff);
    }
    g.field(&mut p, Field::Metadata);
    for f in [Field::TunId, Field::TunSrc, Field::TunDst, Field::TunFlags] {
        g.field(&mut p, f);
    }
    g.field(&mut p, Field::DlSrc);
    g.field(&mut p, Field::DlDst);
    match p.below(6) {
        0 => g.set(Field::DlVlan, p.below(4096).into(), 0xfff),
        1 => g.set(Field::DlVlanPcp, p.below(8).into(), 7),
        2 => {
            g.set(Field::DlVlan, p.below(4096).into(), 0xfff);
            g.set(Field::VlanPcp, p.below(8).into(), 7);
        }
        3 => {
            let m = p.below(0x10000) as u16;
            let mut v = p.below(0x10000) as u16 & m;
            if m & 0x1000 != 0 && v & 0x1000 == 0 {
                v = 0;
            }
            g.set(Field::VlanTci, v.into(), m.into());
        }
        4 => g.set(Field::VlanTci, 0, 0xffff),
        _ => {}
    }
    match l3 {
        L3::Ip | L3::Ipv6 => {
            if v6 {
                g.field(&mut p, Field::Ipv6Src);
                g.field(&mut p, Field::Ipv6Dst);
                g.field(&mut p, Field::Ipv6Label);
            } else {
                g.field(&mut p, Field::NwSrc);
                g.field(&mut p, Field::NwDst);
            }
            g.field(&mut p, Field::IpDscp);
            g.field(&mut p, Field::NwEcn);
            g.field(&mut p, Field::NwTtl);
            if p.coin() {
                let (v, m) = [(0, 1), (1, 1), (1, 3), (3, 3), (0, 2)][p.below(5) as usize];
                g.set(Field::IpFrag, v, m);
            }
            match proto {
                Some(6 | 17 | 132) => {
                    g.field(&mut p, Field::TpSrc);
                    g.field(&mut p, Field::TpDst);
                    if proto == Some(6) && p.coin() {
                        let (v, m) = if p.coin() {
                            (p.below(0x200), 0xfff)
                        } else {
                            let m = p.below(0x200);
                            (p.below(0x200) & m, m)
                        };
                        g.set(Field::TcpFlags, v.into(), m.into());
                    }
                }
                Some(1 | 58) => {
                    g.field(&mut p, Field::IcmpType);
                    g.field(&mut p, Field::IcmpCode);
                }
                _ => {}
            }
        }
        L3::Arp => {
            g.field(&mut p, Field::ArpOp);
            g.field(&mut p, Field::ArpSpa);
            g.field(&mut p, Field::ArpTpa);
            g.field(&mut p, Field::ArpSha);
            g.field(&mut p, Field::ArpTha);
        }
        _ => {}
    }
    let m = Match::new(g.key, g.mask);
    let table = TableId(p.below(254) as u8);

    // Fields set_field may write given this match.
    let mut writable = vec![
        Field::DlSrc,
        Field::DlDst,
        Field::Metadata,
        Field::InPort,
        Field::TunId,
        Field::TunSrc,
        Field::TunDst,
        Field::TunFlags,
    ];
    match l3 {
        L3::Ip => writable.extend([Field::NwSrc, Field::NwDst]),
        L3::Ipv6 => writable.extend([Field::Ipv6Src, Field::Ipv6Dst, Field::Ipv6Label]),
        L3::Arp => writable.extend([
            Field::ArpOp,
            Field::ArpSpa,
            Field::ArpTpa,
            Field::ArpSha,
            Field::ArpTha,
        ]),
        _ => {}
    }
    if matches!(l3, L3::Ip | L3::Ipv6) {
        writable.extend([Field::NwTos, Field::NwEcn, Field::NwTtl]);
        match proto {
            Some(6 | 17 | 132) => writable.extend([Field::TpSrc, Field::TpDst]),
            Some(1 | 58) => writable.extend([Field::IcmpType, Field::IcmpCode]),
            _ => {}
        }
    }
    let n = p.below(6);
    let mut actions = Vec::new();
    for _ in 0..n {
        let a = match p.below(16) {
            0 => Action::Output(PortNo(1 + p.below(0xff00) as u32)),
            1 => Action::Normal,
            2 => Action::Flood,
            3 => Action::All,
            4 => Action::InPort,
            5 => Action::Local,
            6 => Action::Controller {
                max_len: p.below(0x10000) as u16,
            },
            7 => Action::SetVlanVid(p.below(4096) as u16),
            8 => Action::SetVlanPcp(p.below(8) as u8),
            9 => Action::StripVlan,
            10 => Action::PushVlan([0x8100, 0x88a8][p.below(2) as usize]),
            11 => Action::DecTtl,
            12 => {
                let port = p.coin().then(|| p.port());
                let table = (port.is_none() || p.coin()).then(|| TableId(p.below(255) as u8));
                Action::Resubmit { port, table }
            }
            13 => {
                let len = p.below(20) as usize;
                let mut b: Vec<u8> = (0..len).map(|_| p.below(256) as u8).collect();
                let padded = (10 + b.len()).div_ceil(8) * 8 - 10;
                b.resize(padded, 0);
                Action::Note(b)
            }
            _ => {
                let f = writable[p.below(writable.len() as u64) as usize];
                let value = match f {
                    Field::InPort => p.port().0.into(),
                    Field::NwTos => u128::from(p.below(64) << 2),
                    _ => p.u128() & f.full_mask(),
                };
                Action::SetField { field: f, value }
            }
        };
        actions.push(a);
    }
    if table.0 < 254 && p.below(4) == 0 {
        let t = table.0 + 1 + p.below(u64::from(254 - table.0)) as u8;
        actions.push(Action::GotoTable(TableId(t)));
    }
    Flow {
        table,
        priority: if p.coin() {
            Priority::DEFAULT
        } else {
            Priority(p.below(0x10000) as u16)
        },
        cookie: if p.coin() { 0 } else { p.next() },
        idle_timeout: if p.coin() { 0 } else { p.below(0x10000) as u16 },
        hard_timeout: if p.coin() { 0 } else { p.below(0x10000) as u16 },
        m,
        actions,
    }
}

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz_0123456789xX:=,./()->+-| \t\n#";

fn mutate(s: &str, ops: &[(u8, usize, u8)]) -> String {
    let mut b: Vec<u8> = s.bytes().collect();
    for &(op, at, c) in ops {
        let at = if b.is_empty() { 0 } else { at % (b.len() + 1) };
        let ch = ALPHABET[c as usize % ALPHABET.len()];
        match op % 4 {
            0 => b.insert(at, ch),
            1 if at < b.len() => {
                b.remove(at);
            }
            2 if at < b.len() => b[at] = ch,
            _ => {
                let end = (at + usize::from(c % 8)).min(b.len());
                b.drain(at..end);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn print_then_parse_is_identity(words in proptest::collection::vec(any::<u64>(), 64)) {
        let f = random_flow(&words);
        let s = f.to_string();
        let g = parse_flow(&s, &no_ports);
        prop_assert!(g.is_ok(), "{s}: {:?}", g.err());
        let g = g.unwrap();
        prop_assert_eq!(&g, &f, "{}", s);
        prop_assert_eq!(g.to_string(), s);
        // With statistics too (dump-flows output is accepted back).
        let st = FlowStats { duration_ms: words[0] % 1_000_000, n_packets: words[1], n_bytes: words[2], idle_age_s: words[3] % 100_000 };
        let ws = fmt_with_stats(&f, &st, None);
        prop_assert_eq!(parse_flow(&ws, &no_ports).unwrap(), f.clone(), "{}", ws);
        // The match alone is a filter that strictly selects the flow.
        let fl = format!("table={},priority={},{}", f.table.0, f.priority.0,
            flowtable::syntax::fmt_match(&f.m, Priority::DEFAULT, None));
        let filter = parse_match_filter(&fl, &no_ports).unwrap();
        prop_assert!(filter.selects(&f, true), "{}", fl);
        prop_assert!(filter.selects(&f, false), "{}", fl);
    }

    #[test]
    fn random_strings_never_panic(s in ".{0,80}") {
        let _ = parse_flow(&s, &no_ports);
        let _ = parse_match_filter(&s, &no_ports);
        let _ = parse_flows(&s, &no_ports);
    }

    #[test]
    fn flowish_strings_never_panic(b in proptest::collection::vec(proptest::sample::select(ALPHABET.to_vec()), 0..60)) {
        let s = String::from_utf8(b).unwrap();
        let _ = parse_flow(&s, &no_ports);
        let _ = parse_match_filter(&s, &no_ports);
    }

    #[test]
    fn mutated_flows_never_panic(
        words in proptest::collection::vec(any::<u64>(), 64),
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..6),
    ) {
        let f = random_flow(&words);
        let s = mutate(&fmt_flow(&f, None), &ops);
        // Whatever parses must print and reparse to itself.
        if let Ok(g) = parse_flow(&s, &no_ports) {
            let t = g.to_string();
            prop_assert_eq!(parse_flow(&t, &no_ports).unwrap(), g, "{} -> {}", s, t);
        }
        let _ = parse_match_filter(&s, &no_ports);
    }
}
