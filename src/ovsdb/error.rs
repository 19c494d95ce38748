//! The OVSDB error object.
//!
//! # What?
//! RFC 7047 reports failures as a JSON object `{"error": tag, "details":
//! text}` where the tag is one of a small fixed vocabulary ("syntax error",
//! "constraint violation", "referential integrity violation", "resources
//! exhausted", "domain error", "range error", "timed out", "aborted", "not
//! owner", "not supported", "unknown database", ...). [`OvsdbError`] is that
//! object as a Rust value; every fallible function of the engine returns it,
//! so the server can put it on the wire unchanged.
//!
//! # Design
//! The tag is a plain `String` rather than an enum: the vocabulary is open
//! (ovsdb-server adds "duplicate uuid", "duplicate uuid-name", ...), and the
//! tag is only ever compared by clients, never matched on by the engine.
//!
//! # Thread-safety
//! A plain value: `Send + Sync`.

use serde_json::{json, Value};
use std::fmt;

/// An OVSDB error: an RFC 7047 tag plus a human-readable explanation.
///
/// ```
/// use rvs::ovsdb::OvsdbError;
/// let e = OvsdbError::new("constraint violation", "too many rows");
/// assert_eq!(e.to_json()["error"], "constraint violation");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OvsdbError {
    /// The RFC 7047 error tag, e.g. "syntax error".
    pub error: String,
    /// Free-form explanation for a human.
    pub details: String,
}

impl OvsdbError {
    /// An error with tag `error` and explanation `details`.
    pub fn new(error: &str, details: impl Into<String>) -> Self {
        OvsdbError {
            error: error.to_string(),
            details: details.into(),
        }
    }

    /// Shorthand for a "syntax error".
    pub(crate) fn syntax(details: impl Into<String>) -> Self {
        Self::new("syntax error", details)
    }

    /// Shorthand for a "constraint violation".
    pub(crate) fn constraint(details: impl Into<String>) -> Self {
        Self::new("constraint violation", details)
    }

    /// The error object as it appears in a transact result or an RPC error:
    /// `{"error": .., "details": ..}`.
    pub fn to_json(&self) -> Value {
        json!({"error": self.error, "details": self.details})
    }
}

impl fmt::Display for OvsdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.details)
    }
}

impl std::error::Error for OvsdbError {}
