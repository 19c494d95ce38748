//! rvs: the switch daemon's library.
//!
//! `rvsd` (src/main.rs) is a thin binary over these modules; integration
//! tests and benches use them directly.
//!
//! - [`port`]: TAP and AF_PACKET ports, the only code that touches fds
//!   (with [`netdev`]).
//! - [`datapath`]: worker threads, the pipeline and action execution.
//! - [`bridge`]: VLAN rules, MAC learning and NORMAL.
//! - [`control`]: the control socket and the switch model.
//! - [`config`]: the TOML schema.
//! - [`tunnel`]: tunnel port options and the VXLAN header (pure).
//! - [`openflow`]: the OpenFlow 1.3/1.0 wire codec.
//! - [`ovsdb`]: the OVSDB (RFC 7047) database engine (pure).
//! - [`alloc`]: the daemon's allocator and its tuning.
//! - [`fuzzing`]: the fuzz targets' entry points.
//!
//! `unsafe` is denied everywhere except the two modules that do fd and
//! ioctl work ([`netdev`], [`port`]) and the one FFI call that tunes the
//! allocator ([`alloc`]).
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod alloc;
pub mod bridge;
pub mod config;
pub mod control;
pub mod datapath;
pub mod fuzzing;
pub mod logging;
#[allow(unsafe_code)]
pub mod netdev;
pub mod openflow;
pub mod ovsdb;
pub mod packet;
#[allow(unsafe_code)]
pub mod port;
pub mod qos;
pub mod tunnel;
