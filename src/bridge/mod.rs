//! Bridge state: VLAN port configuration, MAC learning, NORMAL (being written).
