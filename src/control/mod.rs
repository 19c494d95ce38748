//! The control plane: the socket server and the switch model it drives.
//!
//! The datapath answers in its own types; [`convert`] turns them into the
//! `rvsctl` protocol and OpenFlow messages at the control plane's edges.

pub mod bundle;
pub mod convert;
pub mod flows;
pub mod journal;
pub mod ofchannel;
pub mod server;
pub mod state;
pub mod switch;

use std::sync::{Arc, Mutex};

use rvs_ctl::proto::{ErrorKind, Request, Response};

/// Serves requests by running them on the blocking pool against the model.
#[derive(Debug, Clone)]
pub struct SwitchHandler {
    /// The switch.
    pub switch: Arc<Mutex<switch::Switch>>,
}

impl server::Handler for SwitchHandler {
    async fn handle(&self, req: Request) -> Response {
        let sw = self.switch.clone();
        let r = tokio::task::spawn_blocking(move || {
            let (resp, ticket) = match sw.lock() {
                Ok(mut s) => {
                    let resp = s.handle(req);
                    (resp, s.durable_ticket())
                }
                Err(_) => (
                    Response::err(ErrorKind::Internal, "switch state is poisoned"),
                    None,
                ),
            };
            // Acknowledge only what is on disk; the fsync is shared with
            // every other waiter and happens without the switch lock.
            if let Some((d, seq)) = ticket {
                if let Err(e) = d.wait(seq) {
                    return Response::err(
                        ErrorKind::System,
                        format!("the change was applied but could not be saved: {e}"),
                    );
                }
            }
            resp
        })
        .await;
        r.unwrap_or_else(|e| Response::err(ErrorKind::Internal, format!("request failed: {e}")))
    }
}
