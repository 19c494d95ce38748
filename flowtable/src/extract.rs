//! Packet key extraction (being written).

use crate::key::FlowKey;
use crate::types::PortNo;

/// Parses `frame` into a key with `in_port` set (stub).
pub fn extract(frame: &[u8], in_port: PortNo) -> FlowKey {
    let _ = frame;
    FlowKey {
        in_port: in_port.0,
        ..FlowKey::ZERO
    }
}
