//! flowtable: the pure core of rvs.
//!
//! Packet key extraction ([`extract()`]), matches ([`Match`]), actions
//! ([`Action`]), the tuple-space [`Classifier`] and OVS flow syntax
//! ([`syntax`]). No I/O, no clocks (time is passed in as milliseconds), no
//! logging: everything here is deterministic and testable alone.
#![deny(unsafe_code)]

pub mod action;
pub mod classifier;
pub mod extract;
pub mod field;
pub mod flowmatch;
pub mod key;
pub mod meter;
pub mod offload;
pub mod rewrite;
pub mod syntax;
pub mod types;

pub use action::Action;
pub use classifier::Classifier;
pub use extract::extract;
pub use field::Field;
pub use flowmatch::Match;
pub use key::FlowKey;
pub use types::{Mac, PortNo, Priority, TableId, Vid};
