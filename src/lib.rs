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

pub mod bridge;
pub mod config;
pub mod control;
pub mod datapath;
pub mod logging;
pub mod netdev;
pub mod openflow;
pub mod packet;
pub mod port;
