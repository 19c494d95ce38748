//! Actions: what a matched flow does to a packet, in the order written.
//!
//! The set is OVS's for OpenFlow 1.0/1.3 as written in `ovs-ofctl` flow
//! syntax (`ovs-actions(7)`). Parsing and printing live in [`crate::syntax`].

use crate::field::Field;
use crate::types::{PortNo, TableId};

/// One action of a flow's action list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `output:N` (also a bare port number, or a port name resolved by the
    /// caller). Reserved numbers are written with their own actions below.
    Output(PortNo),
    /// `NORMAL`: the L2 learning switch with VLANs.
    Normal,
    /// `FLOOD`: all ports except the input port (and non-flooding ports).
    Flood,
    /// `ALL`: all ports except the input port.
    All,
    /// `IN_PORT`: back out of the input port.
    InPort,
    /// `LOCAL`: the bridge's internal port.
    Local,
    /// `CONTROLLER[:max_len]`; OVS's default `max_len` is 65535.
    Controller {
        /// Bytes of the packet to send to the controller.
        max_len: u16,
    },
    /// `mod_vlan_vid:VID`: set the VID, pushing a tag if there is none.
    SetVlanVid(u16),
    /// `mod_vlan_pcp:PCP`: set the PCP, pushing a tag if there is none.
    SetVlanPcp(u8),
    /// `strip_vlan` / `pop_vlan`: remove the outer tag.
    StripVlan,
    /// `push_vlan:ETHERTYPE` (0x8100 or 0x88a8).
    PushVlan(u16),
    /// `set_field:VALUE->FIELD`, also `mod_dl_src:…` and friends, which the
    /// parser turns into this with the right field. `value` is right
    /// aligned (a MAC is its 48 low bits, an IPv6 address all 128).
    SetField {
        /// Destination field.
        field: Field,
        /// New value.
        value: u128,
    },
    /// `dec_ttl`: decrement IPv4 TTL / IPv6 hop limit; drop at zero.
    DecTtl,
    /// `resubmit([port],[table])`: run the pipeline again with `in_port`
    /// replaced (if given) in `table` (current table if not given).
    Resubmit {
        /// Port to pretend the packet came in on; `None` keeps it.
        port: Option<PortNo>,
        /// Table to look up; `None` is the current table.
        table: Option<TableId>,
    },
    /// `goto_table:N`: continue in a later table once this list is done.
    GotoTable(TableId),
    /// `note:hex`: carries bytes, does nothing.
    Note(Vec<u8>),
    /// `meter:N` (OpenFlow 1.3 OFPIT_METER): the frame goes through meter
    /// `N` of the bridge, which may drop it or raise its DSCP drop
    /// precedence. It is the first action of a list (OpenFlow runs the
    /// meter instruction before APPLY_ACTIONS); the parser enforces that.
    Meter(u32),
}
