//! rvs control: the protocol spoken between `rvsctl` and `rvsd`, and a client.
//!
//! The daemon depends on this crate too, so both ends share one set of
//! types ([`proto`]) and the framing of large replies ([`stream`]); the
//! `rvsctl` binary is a thin layer of argument parsing and output
//! formatting ([`pretty`] for `--format json`) over [`client::Client`].
#![deny(unsafe_code)]

pub mod client;
pub mod pretty;
pub mod proto;
pub mod stream;

pub use client::{Client, ClientError};
pub use proto::{Reply, Request, Response};
