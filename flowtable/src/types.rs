//! Newtypes shared by every layer: port numbers, table ids, priorities, VLAN ids.
//!
//! Port numbers follow Open vSwitch's 16-bit OpenFlow 1.0 numbering: physical
//! ports are `1..=0xff00`, and the reserved ports (`LOCAL` = 65534, `NORMAL`,
//! `FLOOD`, …) sit at the top of the range, so `in_port=LOCAL` and
//! `in_port=65534` mean the same thing, as in `ovs-ofctl`.

use std::fmt;

/// An OpenFlow port number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortNo(pub u32);

impl PortNo {
    /// Highest number a real port may have.
    pub const MAX: PortNo = PortNo(0xff00);
    /// Send back out of the input port.
    pub const IN_PORT: PortNo = PortNo(0xfff8);
    /// Submit to the flow table (packet-out only).
    pub const TABLE: PortNo = PortNo(0xfff9);
    /// The traditional L2 learning switch.
    pub const NORMAL: PortNo = PortNo(0xfffa);
    /// All ports except the input port and those with flooding disabled.
    pub const FLOOD: PortNo = PortNo(0xfffb);
    /// All ports except the input port.
    pub const ALL: PortNo = PortNo(0xfffc);
    /// The controller.
    pub const CONTROLLER: PortNo = PortNo(0xfffd);
    /// The bridge's internal port.
    pub const LOCAL: PortNo = PortNo(0xfffe);
    /// No port.
    pub const NONE: PortNo = PortNo(0xffff);

    /// The OVS name of a reserved port (`LOCAL`, `NORMAL`, …), if this is one.
    pub fn reserved_name(self) -> Option<&'static str> {
        Some(match self {
            PortNo::IN_PORT => "IN_PORT",
            PortNo::TABLE => "TABLE",
            PortNo::NORMAL => "NORMAL",
            PortNo::FLOOD => "FLOOD",
            PortNo::ALL => "ALL",
            PortNo::CONTROLLER => "CONTROLLER",
            PortNo::LOCAL => "LOCAL",
            PortNo::NONE => "NONE",
            _ => return None,
        })
    }

    /// Parses a reserved port name, case-insensitively (`local`, `LOCAL`).
    pub fn from_reserved_name(name: &str) -> Option<PortNo> {
        let all = [
            PortNo::IN_PORT,
            PortNo::TABLE,
            PortNo::NORMAL,
            PortNo::FLOOD,
            PortNo::ALL,
            PortNo::CONTROLLER,
            PortNo::LOCAL,
            PortNo::NONE,
        ];
        all.into_iter().find(|p| {
            p.reserved_name()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    }
}

impl fmt::Display for PortNo {
    /// Reserved ports print by name (`LOCAL`), others as decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reserved_name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

/// An OpenFlow table id, `0..=254` (255 means "all tables" on the wire and is
/// never a valid table here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId(pub u8);

impl TableId {
    /// Highest usable table.
    pub const MAX: TableId = TableId(254);
    /// Number of usable tables.
    pub const COUNT: usize = 255;
}

/// A flow priority; higher wins. OVS's default for new flows is 32768.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub u16);

impl Priority {
    /// Priority of a flow that does not give one.
    pub const DEFAULT: Priority = Priority(32768);
}

impl Default for Priority {
    fn default() -> Self {
        Priority::DEFAULT
    }
}

/// An 802.1Q VLAN id. Valid tagged ids are `1..=4094`; 0 means "priority
/// tagged / untagged" in the NORMAL pipeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vid(pub u16);

impl Vid {
    /// Highest valid VLAN id.
    pub const MAX: Vid = Vid(4094);
}

/// An Ethernet MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// True for group (multicast and broadcast) addresses.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    /// Lower-case, colon separated, as OVS prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}
