//! The control plane: the socket server and the switch model it drives.
//!
//! The datapath answers in its own types; [`convert`] turns them into the
//! `rvsctl` protocol and OpenFlow messages at the control plane's edges.

pub mod bundle;
pub mod busypoll;
pub mod convert;
pub mod dump;
pub mod flows;
pub mod journal;
pub mod lockfile;
pub mod notify;
pub mod ofchannel;
pub mod punix;
pub mod server;
pub mod state;
pub mod switch;
pub mod tls;

use std::sync::{Arc, Mutex};

use rvs_ctl::proto::Request;

/// Serves requests against the model: on the blocking pool, with large
/// replies formatted after the lock and streamed ([`dump`]).
#[derive(Debug, Clone)]
pub struct SwitchHandler {
    /// The switch.
    pub switch: Arc<Mutex<switch::Switch>>,
}

impl server::Handler for SwitchHandler {
    async fn handle(&self, req: Request) -> server::Answer {
        dump::answer(self.switch.clone(), req).await
    }
}
