//! Open vSwitch flow syntax: parse and print flows as `ovs-ofctl` does.
//!
//! # What?
//! [`parse_flow`] reads one flow as `ovs-ofctl add-flow` takes it
//! (`ovs-fields(7)`, `ovs-actions(7)`, `ovs-ofctl(8)`), [`parse_flows`] a
//! file of them, [`parse_match_filter`] the match argument of
//! `del-flows`/`dump-flows`/`trace`, and [`parse_flow_mod`] the argument of
//! `mod-flows`. [`Flow`]'s `Display` (and [`fmt_flow`]) prints exactly what
//! `ovs-ofctl dump-flows --no-stats` prints for the same flow (without the
//! leading space), [`fmt_with_stats`] what plain `dump-flows` prints.
//!
//! # Design
//! The parser reads `key=value` items separated by commas or white space
//! (`key:value` is accepted too, as OVS does); `actions=` takes the rest of
//! the string. Field values go into a [`Match`] through
//! [`Field::set_masked`](crate::field::Field::set_masked); the printer then
//! works from the match alone, following OVS's `match_format()`: which
//! names it prints (`arp_spa` rather than `nw_src` for ARP, `dl_vlan` when
//! `vlan_tci` allows, the `tcp`/`ip`/`arp`… shorthands) depends only on
//! the value and mask, so `parse(print(f)) == f` for every valid flow.
//!
//! Actions are normalized while parsing so that each behaviour has one
//! [`Action`]: `set_field:…->eth_src` and `mod_dl_src:…` both become
//! `SetField { field: DlSrc, .. }`; `set_field:4106->vlan_vid` becomes
//! `SetVlanVid(10)`; `set_field:10->ip_dscp` becomes `SetField { NwTos, 40 }`;
//! `note:` bytes are zero padded as OVS pads them.
//!
//! Printed forms are those of OVS 3.1 `ovs-ofctl` with its default
//! protocol (OpenFlow 1.0 + Nicira extensions), which prints `strip_vlan`,
//! `mod_dl_src:…`, `mod_nw_tos:…`, `mod_vlan_vid:…`. Actions that default
//! protocol cannot carry are printed as `ovs-ofctl -O OpenFlow13` prints
//! them: `push_vlan:0x8100`, `goto_table:N`, and `set_field:V->F` for
//! fields without an OpenFlow 1.0 action (`nw_ttl`, `nw_ecn`, `ipv6_*`,
//! `arp_*`, `icmp_*`, `metadata`, `in_port`, `tun_src`, `tun_dst`,
//! `tun_flags`; OpenFlow 1.0 would print these as `load:…->NXM_…[]`).
//! `set_field` to `tun_id` (and `set_tunnel64`) prints as Nicira's
//! `set_tunnel:0x5`, or `set_tunnel64:0x…` for a key above 32 bits, as
//! OVS prints `set_tunnel`.
//!
//! Tunnel fields print first in a match (after the `ip`/`tcp`…
//! shorthand), as OVS orders them: `tun_id` (hex), `tun_src`, `tun_dst`
//! (IPv4, CIDR when possible), `tun_flags=+oam`/`-oam`.
//!
//! # Invariants
//! Where OVS silently changes what was written (`dl_vlan=4096` becomes 0,
//! an IPv4 octet of 300 wraps, `table=255` means table 0, `nw_tos=17`
//! loses its low bits, a field without its prerequisite is dropped, a field
//! given twice keeps the last value), the parser rejects the flow instead,
//! with a [`ParseError`] that names the token and its byte offset.
//! Masked values are masked (`nw_src=10.1.2.3/8` is `10.0.0.0/8`), as in OVS.
//!
//! # Thread-safety
//! Pure functions.
//!
//! # Limits
//! Only the fields of [`FlowKey`](crate::FlowKey) and the actions of
//! [`Action`]; no registers, `load`/`move`, learn, conntrack, groups, meters.
//!
//! ```
//! use flowtable::syntax::parse_flow;
//! let f = parse_flow("priority=100,in_port=1,dl_vlan=10,actions=strip_vlan,output:2", &|_| None)
//!     .unwrap();
//! assert_eq!(f.to_string(), "priority=100,in_port=1,dl_vlan=10 actions=strip_vlan,output:2");
//! ```

mod parse;
mod print;

pub use parse::{parse_flow, parse_flow_mod, parse_flows, parse_match_filter};
pub use print::{fmt_actions, fmt_flow, fmt_match, fmt_with_stats, put_flow};

use crate::action::Action;
use crate::flowmatch::Match;
use crate::types::{PortNo, Priority, TableId};
use std::fmt;

/// A flow's parts, borrowed: what the printer needs, without copying
/// the action list out of wherever the flow is stored.
#[derive(Clone, Copy, Debug)]
pub struct FlowView<'a> {
    /// Table.
    pub table: TableId,
    /// Priority.
    pub priority: Priority,
    /// Cookie.
    pub cookie: u64,
    /// Idle timeout, seconds.
    pub idle_timeout: u16,
    /// Hard timeout, seconds.
    pub hard_timeout: u16,
    /// Match.
    pub m: &'a Match,
    /// Actions.
    pub actions: &'a [Action],
}

/// One flow: where it lives, what it matches, what it does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Table the flow is in (`table=`, default 0).
    pub table: TableId,
    /// Priority (`priority=`, default 32768).
    pub priority: Priority,
    /// Opaque controller cookie (`cookie=`, default 0).
    pub cookie: u64,
    /// Seconds without a hit before removal; 0 means never.
    pub idle_timeout: u16,
    /// Seconds after installation before removal; 0 means never.
    pub hard_timeout: u16,
    /// What the flow matches.
    pub m: Match,
    /// What it does, in order; empty means drop.
    pub actions: Vec<Action>,
}

impl Flow {
    /// The flow, borrowed, for [`put_flow`].
    pub fn view(&self) -> FlowView<'_> {
        FlowView {
            table: self.table,
            priority: self.priority,
            cookie: self.cookie,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            m: &self.m,
            actions: &self.actions,
        }
    }
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            table: TableId(0),
            priority: Priority::DEFAULT,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            m: Match::CATCHALL,
            actions: Vec::new(),
        }
    }
}

impl fmt::Display for Flow {
    /// `ovs-ofctl dump-flows --no-stats` form, ports as numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_flow(self, None))
    }
}

/// Counters printed by `dump-flows` without `--no-stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowStats {
    /// Time since the flow was added, in milliseconds.
    pub duration_ms: u64,
    /// Packets matched.
    pub n_packets: u64,
    /// Bytes matched.
    pub n_bytes: u64,
    /// Whole seconds since the last hit (or since added).
    pub idle_age_s: u64,
}

/// Names ports for printing; `None` prints the number.
pub type PortNamer<'a> = &'a dyn Fn(PortNo) -> Option<String>;

/// Which flows a `del-flows`, `dump-flows`, `mod-flows` or `--strict`
/// request selects.
///
/// - Loose (default): a flow is selected when every packet it matches is
///   matched by [`FlowFilter::m`] ([`Match::is_covered_by`]), so an empty
///   filter selects all flows.
/// - Strict: the flow's match equals `m` and its priority equals
///   `priority` (32768 when not given).
///
/// In both modes `table` (when given) must equal the flow's table, the
/// flow's cookie must agree with `cookie` on the bits of `cookie_mask`,
/// and when `out_port` is given the flow must have an action that outputs
/// there (`output:N`, or `NORMAL`, `FLOOD`, `ALL`, `IN_PORT`, `LOCAL`,
/// `CONTROLLER` for the reserved port numbers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowFilter {
    /// Table to look in; `None` is all tables.
    pub table: Option<TableId>,
    /// Priority for strict matching; `None` if not given.
    pub priority: Option<Priority>,
    /// Cookie value, compared under `cookie_mask`.
    pub cookie: u64,
    /// Cookie bits that must agree; 0 ignores the cookie.
    pub cookie_mask: u64,
    /// Only flows that output to this port.
    pub out_port: Option<PortNo>,
    /// The match.
    pub m: Match,
}

impl FlowFilter {
    /// True if `flow` is selected; `strict` as in `--strict`.
    pub fn selects(&self, flow: &Flow, strict: bool) -> bool {
        if self.table.is_some_and(|t| t != flow.table) {
            return false;
        }
        if (flow.cookie ^ self.cookie) & self.cookie_mask != 0 {
            return false;
        }
        if let Some(p) = self.out_port {
            if !flow.actions.iter().any(|a| outputs_to(a, p)) {
                return false;
            }
        }
        if strict {
            flow.m == self.m && flow.priority == self.priority.unwrap_or_default()
        } else {
            flow.m.is_covered_by(&self.m)
        }
    }
}

impl FlowFilter {
    /// The part of [`FlowFilter::selects`] about actions: with `out_port`,
    /// only flows that output there.
    pub fn selects_actions(&self, actions: &[Action]) -> bool {
        self.out_port
            .is_none_or(|p| actions.iter().any(|a| outputs_to(a, p)))
    }
}

fn outputs_to(a: &Action, p: PortNo) -> bool {
    match a {
        Action::Output(q) => *q == p,
        Action::Normal => p == PortNo::NORMAL,
        Action::Flood => p == PortNo::FLOOD,
        Action::All => p == PortNo::ALL,
        Action::InPort => p == PortNo::IN_PORT,
        Action::Local => p == PortNo::LOCAL,
        Action::Controller { .. } => p == PortNo::CONTROLLER,
        _ => false,
    }
}

/// A flow string that could not be parsed.
///
/// `Display` reads like
/// `nw_src=10.0.0.1: nw_src needs ip or arp (e.g. "ip,nw_src=...") (at column 1)`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{token}: {msg} (at column {col})", col = .pos + 1)]
pub struct ParseError {
    /// 0-based byte offset of `token` in the input.
    pub pos: usize,
    /// The offending token (`key=value`, an action, or a value).
    pub token: String,
    /// What is wrong, and what would be right.
    pub msg: String,
}

/// An error in a file of flows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {source}")]
pub struct FlowsError {
    /// 1-based line number.
    pub line: usize,
    /// The error in that line (its `pos` is within the line).
    pub source: ParseError,
}
