//! OpenFlow ERROR types and codes, and the codec's error types.
//!
//! # What?
//! [`OfpError`] is one OpenFlow error (type and code) in OpenFlow 1.3
//! numbering; [`OfpError::wire`] gives the numbers to send on a 1.0 or 1.3
//! connection. [`DecodeError`] is what the decoder returns for anything it
//! refuses: it carries the [`OfpError`] to answer with, so the caller
//! replies with an ERROR (see [`super::error_reply`]) instead of dropping
//! the connection. [`EncodeError`] is returned when a message has no form
//! in the requested version, or would not fit in 65535 bytes.
//!
//! # Limits
//! OpenFlow 1.0 has no BAD_MATCH or BAD_INSTRUCTION type: those are sent as
//! FLOW_MOD_FAILED/UNSUPPORTED and BAD_ACTION/BAD_TYPE there, and 1.3-only
//! codes are folded into the nearest 1.0 code (`EPERM` or `BAD_ARGUMENT`).

use super::{OFP10_VERSION, OFP13_VERSION};

/// An OpenFlow error type (`ofp_error_type`, OpenFlow 1.3 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// OFPET_HELLO_FAILED: version negotiation failed.
    HelloFailed,
    /// OFPET_BAD_REQUEST: the request was not understood.
    BadRequest,
    /// OFPET_BAD_ACTION: error in an action.
    BadAction,
    /// OFPET_BAD_INSTRUCTION: error in an instruction (1.3).
    BadInstruction,
    /// OFPET_BAD_MATCH: error in a match (1.3).
    BadMatch,
    /// OFPET_FLOW_MOD_FAILED.
    FlowModFailed,
    /// OFPET_PORT_MOD_FAILED.
    PortModFailed,
    /// OFPET_SWITCH_CONFIG_FAILED (1.3).
    SwitchConfigFailed,
    /// OFPET_ROLE_REQUEST_FAILED (1.3).
    RoleRequestFailed,
    /// OFPET_TABLE_FEATURES_FAILED (1.3).
    TableFeaturesFailed,
    /// OFPET_METER_MOD_FAILED (1.3); codes in [`flowtable::meter::code`].
    MeterModFailed,
}

impl ErrorType {
    /// The OpenFlow 1.3 wire value.
    pub fn of13(self) -> u16 {
        match self {
            ErrorType::HelloFailed => 0,
            ErrorType::BadRequest => 1,
            ErrorType::BadAction => 2,
            ErrorType::BadInstruction => 3,
            ErrorType::BadMatch => 4,
            ErrorType::FlowModFailed => 5,
            ErrorType::PortModFailed => 7,
            ErrorType::SwitchConfigFailed => 10,
            ErrorType::RoleRequestFailed => 11,
            ErrorType::MeterModFailed => 12,
            ErrorType::TableFeaturesFailed => 13,
        }
    }
}

/// OFPHFC_* codes.
pub mod hello_failed {
    /// No compatible version.
    pub const INCOMPATIBLE: u16 = 0;
    /// Permissions error.
    pub const EPERM: u16 = 1;
}

/// OFPBRC_* codes (1.0 uses the same numbers for 0..=8, `BAD_STAT` and
/// `BAD_VENDOR` being 1.0's names for `BAD_MULTIPART`, `BAD_EXPERIMENTER`).
pub mod bad_request {
    /// ofp_header.version not supported.
    pub const BAD_VERSION: u16 = 0;
    /// ofp_header.type not supported.
    pub const BAD_TYPE: u16 = 1;
    /// Multipart (1.0: stats) type not supported.
    pub const BAD_MULTIPART: u16 = 2;
    /// Experimenter (1.0: vendor) id not supported.
    pub const BAD_EXPERIMENTER: u16 = 3;
    /// Experimenter type not supported.
    pub const BAD_EXP_TYPE: u16 = 4;
    /// Permissions error.
    pub const EPERM: u16 = 5;
    /// Wrong request length for type.
    pub const BAD_LEN: u16 = 6;
    /// Specified buffer has already been used.
    pub const BUFFER_EMPTY: u16 = 7;
    /// Specified buffer does not exist.
    pub const BUFFER_UNKNOWN: u16 = 8;
    /// Specified table-id invalid or does not exist.
    pub const BAD_TABLE_ID: u16 = 9;
    /// Denied because controller is slave.
    pub const IS_SLAVE: u16 = 10;
    /// Invalid port.
    pub const BAD_PORT: u16 = 11;
    /// Invalid packet in packet-out.
    pub const BAD_PACKET: u16 = 12;
    /// Multipart request overflowed the assigned buffer.
    pub const MULTIPART_BUFFER_OVERFLOW: u16 = 13;
}

/// OFPBAC_* codes (1.0 uses the same numbers for 0..=8).
pub mod bad_action {
    /// Unknown action type.
    pub const BAD_TYPE: u16 = 0;
    /// Length problem in actions.
    pub const BAD_LEN: u16 = 1;
    /// Unknown experimenter id.
    pub const BAD_EXPERIMENTER: u16 = 2;
    /// Unknown action for experimenter id.
    pub const BAD_EXP_TYPE: u16 = 3;
    /// Problem validating output port.
    pub const BAD_OUT_PORT: u16 = 4;
    /// Bad action argument.
    pub const BAD_ARGUMENT: u16 = 5;
    /// Permissions error.
    pub const EPERM: u16 = 6;
    /// Can't handle this many actions.
    pub const TOO_MANY: u16 = 7;
    /// Problem validating output queue.
    pub const BAD_QUEUE: u16 = 8;
    /// Invalid group id.
    pub const BAD_OUT_GROUP: u16 = 9;
    /// Action can't apply for this match, or set_field missing prerequisite.
    pub const MATCH_INCONSISTENT: u16 = 10;
    /// Action order is unsupported.
    pub const UNSUPPORTED_ORDER: u16 = 11;
    /// Actions uses an unsupported tag/encap.
    pub const BAD_TAG: u16 = 12;
    /// Unsupported type in SET_FIELD action.
    pub const BAD_SET_TYPE: u16 = 13;
    /// Length problem in SET_FIELD action.
    pub const BAD_SET_LEN: u16 = 14;
    /// Bad argument in SET_FIELD action.
    pub const BAD_SET_ARGUMENT: u16 = 15;
}

/// OFPBIC_* codes.
pub mod bad_instruction {
    /// Unknown instruction.
    pub const UNKNOWN_INST: u16 = 0;
    /// Switch or table does not support the instruction.
    pub const UNSUP_INST: u16 = 1;
    /// Invalid Table-ID specified.
    pub const BAD_TABLE_ID: u16 = 2;
    /// Metadata value unsupported by datapath.
    pub const UNSUP_METADATA: u16 = 3;
    /// Metadata mask value unsupported by datapath.
    pub const UNSUP_METADATA_MASK: u16 = 4;
    /// Unknown experimenter id specified.
    pub const BAD_EXPERIMENTER: u16 = 5;
    /// Unknown instruction for experimenter id.
    pub const BAD_EXP_TYPE: u16 = 6;
    /// Length problem in instructions.
    pub const BAD_LEN: u16 = 7;
    /// Permissions error.
    pub const EPERM: u16 = 8;
}

/// OFPBMC_* codes.
pub mod bad_match {
    /// Unsupported match type.
    pub const BAD_TYPE: u16 = 0;
    /// Length problem in match.
    pub const BAD_LEN: u16 = 1;
    /// Match uses an unsupported tag/encap.
    pub const BAD_TAG: u16 = 2;
    /// Unsupported datalink addr mask.
    pub const BAD_DL_ADDR_MASK: u16 = 3;
    /// Unsupported network addr mask.
    pub const BAD_NW_ADDR_MASK: u16 = 4;
    /// Unsupported combination of fields masked or omitted.
    pub const BAD_WILDCARDS: u16 = 5;
    /// Unsupported field type in the match.
    pub const BAD_FIELD: u16 = 6;
    /// Unsupported value in a match field.
    pub const BAD_VALUE: u16 = 7;
    /// Unsupported mask specified in the match.
    pub const BAD_MASK: u16 = 8;
    /// A prerequisite was not met.
    pub const BAD_PREREQ: u16 = 9;
    /// A field type was duplicated.
    pub const DUP_FIELD: u16 = 10;
    /// Permissions error.
    pub const EPERM: u16 = 11;
}

/// OFPFMFC_* codes (1.3 numbering).
pub mod flow_mod_failed {
    /// Unspecified error.
    pub const UNKNOWN: u16 = 0;
    /// Flow not added because table was full.
    pub const TABLE_FULL: u16 = 1;
    /// Table does not exist.
    pub const BAD_TABLE_ID: u16 = 2;
    /// Attempted to add overlapping flow with CHECK_OVERLAP set.
    pub const OVERLAP: u16 = 3;
    /// Permissions error.
    pub const EPERM: u16 = 4;
    /// Flow not added because of unsupported idle/hard timeout.
    pub const BAD_TIMEOUT: u16 = 5;
    /// Unsupported or unknown command.
    pub const BAD_COMMAND: u16 = 6;
    /// Unsupported or unknown flags.
    pub const BAD_FLAGS: u16 = 7;
}

/// OFPPMFC_* codes.
pub mod port_mod_failed {
    /// Specified port number does not exist.
    pub const BAD_PORT: u16 = 0;
    /// Specified hardware address does not match the port number.
    pub const BAD_HW_ADDR: u16 = 1;
    /// Specified config is invalid.
    pub const BAD_CONFIG: u16 = 2;
}

/// OFPSCFC_* codes.
pub mod switch_config_failed {
    /// Specified flags is invalid.
    pub const BAD_FLAGS: u16 = 0;
    /// Specified len is invalid.
    pub const BAD_LEN: u16 = 1;
}

/// OFPRRFC_* codes.
pub mod role_request_failed {
    /// Stale message: old generation_id.
    pub const STALE: u16 = 0;
    /// Controller role change unsupported.
    pub const UNSUP: u16 = 1;
    /// Invalid role.
    pub const BAD_ROLE: u16 = 2;
}

/// OFPTFFC_* codes.
pub mod table_features_failed {
    /// Specified table does not exist.
    pub const BAD_TABLE: u16 = 0;
    /// Invalid metadata mask.
    pub const BAD_METADATA: u16 = 1;
    /// Unknown property type.
    pub const BAD_TYPE: u16 = 2;
    /// Length problem in properties.
    pub const BAD_LEN: u16 = 3;
    /// Unsupported property value.
    pub const BAD_ARGUMENT: u16 = 4;
    /// Permissions error.
    pub const EPERM: u16 = 5;
}

/// One OpenFlow error: a type and a code in 1.3 numbering.
///
/// ```
/// use rvs::openflow::error::{bad_request, ErrorType, OfpError};
/// let e = OfpError::new(ErrorType::BadRequest, bad_request::BAD_EXPERIMENTER);
/// assert_eq!(e.wire(0x04), (1, 3));
/// assert_eq!(e.wire(0x01), (1, 3)); // OFPBRC_BAD_VENDOR
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OfpError {
    /// The error type.
    pub etype: ErrorType,
    /// The code, in OpenFlow 1.3 numbering for `etype`.
    pub code: u16,
}

impl OfpError {
    /// An error of type `etype` with 1.3 code `code`.
    pub const fn new(etype: ErrorType, code: u16) -> OfpError {
        OfpError { etype, code }
    }

    /// `(type, code)` as sent on a connection of `version`.
    pub fn wire(self, version: u8) -> (u16, u16) {
        if version != OFP10_VERSION {
            return (self.etype.of13(), self.code);
        }
        let c = self.code;
        match self.etype {
            ErrorType::HelloFailed => (0, c),
            ErrorType::BadRequest => (1, if c <= 8 { c } else { bad_request::EPERM }),
            ErrorType::BadAction => (2, if c <= 8 { c } else { bad_action::BAD_ARGUMENT }),
            ErrorType::BadInstruction => (2, bad_action::BAD_TYPE),
            // OFPFMFC_UNSUPPORTED in 1.0.
            ErrorType::BadMatch => (3, 5),
            ErrorType::FlowModFailed => (
                3,
                match c {
                    flow_mod_failed::TABLE_FULL => 0,
                    flow_mod_failed::OVERLAP => 1,
                    flow_mod_failed::EPERM => 2,
                    flow_mod_failed::BAD_TIMEOUT => 3,
                    flow_mod_failed::BAD_COMMAND => 4,
                    _ => 5,
                },
            ),
            ErrorType::PortModFailed => (4, c.min(1)),
            _ => (1, bad_request::EPERM),
        }
    }

    /// Maps a received `(type, code)` back, if it is one this module knows.
    pub fn from_wire(version: u8, etype: u16, code: u16) -> Option<OfpError> {
        let t = if version == OFP13_VERSION {
            [
                ErrorType::HelloFailed,
                ErrorType::BadRequest,
                ErrorType::BadAction,
                ErrorType::BadInstruction,
                ErrorType::BadMatch,
                ErrorType::FlowModFailed,
                ErrorType::PortModFailed,
                ErrorType::SwitchConfigFailed,
                ErrorType::RoleRequestFailed,
                ErrorType::MeterModFailed,
                ErrorType::TableFeaturesFailed,
            ]
            .into_iter()
            .find(|t| t.of13() == etype)?
        } else {
            match etype {
                0 => ErrorType::HelloFailed,
                1 => ErrorType::BadRequest,
                2 => ErrorType::BadAction,
                _ => return None,
            }
        };
        Some(OfpError::new(t, code))
    }
}

/// A received message the decoder refuses, with the ERROR to answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} ({error:?})")]
pub struct DecodeError {
    /// The OpenFlow error to send back.
    pub error: OfpError,
    /// What was wrong, for logs.
    pub what: String,
}

impl DecodeError {
    /// A decode error answering `error`.
    pub fn new(error: OfpError, what: impl Into<String>) -> DecodeError {
        DecodeError {
            error,
            what: what.into(),
        }
    }
}

/// A message that cannot be put on the wire.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message type does not exist in this OpenFlow version.
    #[error("{what} does not exist in OpenFlow version {version:#04x}")]
    NotInVersion {
        /// The message or body kind.
        what: &'static str,
        /// The requested wire version.
        version: u8,
    },
    /// The version is not one this codec speaks.
    #[error("unsupported OpenFlow version {0:#04x}")]
    BadVersion(u8),
    /// The message would be longer than its 16-bit length field can say.
    #[error("{msg_type:?} would be {len} bytes, more than an OpenFlow message holds (65535)")]
    TooLong {
        /// The message type.
        msg_type: super::MsgType,
        /// Its encoded length.
        len: usize,
    },
}

/// Framing errors on the byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length field is below the 8-byte header.
    #[error("message length {0} is shorter than the OpenFlow header")]
    TooShort(u16),
    /// The length field exceeds the caller's limit.
    #[error("message length {len} exceeds the limit of {max} bytes")]
    TooLong {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of10_mapping() {
        let e = OfpError::new(ErrorType::FlowModFailed, flow_mod_failed::BAD_COMMAND);
        assert_eq!(e.wire(OFP10_VERSION), (3, 4));
        assert_eq!(e.wire(OFP13_VERSION), (5, 6));
        let e = OfpError::new(ErrorType::BadMatch, bad_match::BAD_PREREQ);
        assert_eq!(e.wire(OFP13_VERSION), (4, 9));
        assert_eq!(e.wire(OFP10_VERSION), (3, 5));
        assert_eq!(
            OfpError::from_wire(OFP13_VERSION, 4, 9),
            Some(OfpError::new(ErrorType::BadMatch, bad_match::BAD_PREREQ))
        );
        assert_eq!(OfpError::from_wire(OFP13_VERSION, 99, 0), None);
    }
}
