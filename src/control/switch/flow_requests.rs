//! Flow requests from `rvsctl`: `add-flows`, `mod-flows`, `del-flows`,
//! `replace-flows`, `dump-flows`, `trace`, and flow expiry; and the commit
//! step every flow change ends with (publish, FLOW_REMOVED, journal).
//!
//! # Thread-safety
//! Part of [`Switch`], behind its mutex.

use super::*;

impl Switch {
    /// Publishes `bridge`'s pending flow edits to the datapath and hands
    /// the recorded changes to the journal and to FLOW_REMOVED.
    pub(super) fn commit_flows(&mut self, bridge: &str) {
        let now = self.now_ms();
        let Some(b) = self.bridges.get_mut(bridge) else {
            return;
        };
        b.flows.publish();
        let changes = b.flows.take_changes();
        if changes.is_empty() {
            return;
        }
        let id = b.id;
        if let Some(tx) = &self.flow_removed {
            for c in &changes {
                if let FlowChange::Removed(e, why) = c {
                    if e.data.flags & crate::control::flows::SEND_FLOW_REM != 0 {
                        let ev = crate::control::flows::FlowRemovedEvent {
                            bridge: id,
                            entry: e.clone(),
                            reason: *why,
                            duration_ms: now.saturating_sub(e.created_ms),
                        };
                        tx(ev);
                    }
                }
            }
        }
        self.journal_flows(bridge, changes);
    }

    pub(super) fn flow_error(e: FlowError, verb: &str) -> Reject {
        invalid(format!("{verb}: {e}"))
    }

    pub(super) fn add_flows(&mut self, bridge: &str, text: &str) -> Result<Reply> {
        let b = self.bridge(bridge)?;
        let lookup = |n: &str| b.port_no(n);
        let single = text.lines().filter(|l| !l.trim().is_empty()).count() <= 1;
        let verb = if single { "add-flow" } else { "add-flows" };
        let flows = syntax::parse_flows(text, &lookup).map_err(|e| {
            if single {
                invalid(format!("add-flow: {}", e.source))
            } else {
                invalid(format!("add-flows: {e}; no flows were added"))
            }
        })?;
        let now = self.now_ms();
        let b = self.bridge_mut(bridge)?;
        let n = b
            .flows
            .add_many(flows, now)
            .map_err(|e| Self::flow_error(e, verb))?;
        self.commit_flows(bridge);
        Ok(Self::done("", n as u64))
    }

    pub(super) fn mod_flows(&mut self, bridge: &str, text: &str, strict: bool) -> Result<Reply> {
        let b = self.bridge(bridge)?;
        let lookup = |n: &str| b.port_no(n);
        let (filter, new) = syntax::parse_flow_mod(text, &lookup)
            .map_err(|e| invalid(format!("mod-flows: {e}")))?;
        let cookie = (filter.cookie_mask == 0 && new.cookie != 0).then_some(new.cookie);
        let b = self.bridge_mut(bridge)?;
        let n = b.flows.modify(&filter, strict, &new.actions, cookie, false);
        self.commit_flows(bridge);
        Ok(Self::done(format!("modified {n} flows"), n as u64))
    }

    pub(super) fn del_flows(&mut self, bridge: &str, text: &str, strict: bool) -> Result<Reply> {
        let b = self.bridge(bridge)?;
        let lookup = |n: &str| b.port_no(n);
        let filter = syntax::parse_match_filter(text, &lookup)
            .map_err(|e| invalid(format!("del-flows: {e}")))?;
        let b = self.bridge_mut(bridge)?;
        let n = b.flows.delete(&filter, strict);
        self.commit_flows(bridge);
        Ok(Self::done(format!("deleted {n} flows"), n as u64))
    }

    pub(super) fn replace_flows(&mut self, bridge: &str, text: &str) -> Result<Reply> {
        let b = self.bridge(bridge)?;
        let lookup = |n: &str| b.port_no(n);
        let flows = syntax::parse_flows(text, &lookup)
            .map_err(|e| invalid(format!("replace-flows: {e}; no flows were changed")))?;
        let now = self.now_ms();
        let b = self.bridge_mut(bridge)?;
        let n = b
            .flows
            .replace_all(flows, now)
            .map_err(|e| Self::flow_error(e, "replace-flows"))?;
        self.commit_flows(bridge);
        Ok(Self::done("", n as u64))
    }

    pub(super) fn dump_flows(&self, bridge: &str, text: &str) -> Result<Reply> {
        let filter = self.flow_filter(bridge, "dump-flows", text)?;
        let now = self.now_ms();
        let flows = self.flow_entries(bridge, &filter);
        Ok(Reply::Flows {
            flows: flows
                .iter()
                .map(|e| crate::control::dump::flow_info(e, now))
                .collect(),
        })
    }

    /// Parses a match filter against `bridge`'s port names; errors start
    /// with `verb`.
    pub fn flow_filter(&self, bridge: &str, verb: &str, text: &str) -> Result<FlowFilter> {
        let b = self.bridge(bridge)?;
        let lookup = |n: &str| b.port_no(n);
        syntax::parse_match_filter(text, &lookup).map_err(|e| invalid(format!("{verb}: {e}")))
    }

    /// Removes flows whose idle or hard timeout has passed (a heap of
    /// deadlines: only flows that are due are looked at). Returns the time
    /// of the next deadline, if any.
    pub fn expire_flows(&mut self) -> Option<u64> {
        let now = self.now_ms();
        let due: Vec<String> = self
            .bridges
            .values()
            .filter(|b| b.flows.next_deadline().is_some_and(|d| d <= now))
            .map(|b| b.name.clone())
            .collect();
        for name in due {
            if let Some(b) = self.bridges.get_mut(&name) {
                b.flows.expire(now);
            }
            self.commit_flows(&name);
        }
        self.bridges
            .values()
            .filter_map(|b| b.flows.next_deadline())
            .min()
    }

    /// Frees what the unpublished table copies still hold of deleted
    /// flows, where the datapath has let go of them (never waits).
    pub fn settle_flows(&mut self) {
        for b in self.bridges.values_mut() {
            b.flows.settle();
        }
    }

    pub(super) fn trace(&mut self, bridge: &str, text: &str) -> Result<Reply> {
        let b = self.bridge(bridge)?;
        let lookup = |n: &str| b.port_no(n);
        let filter = syntax::parse_match_filter(text, &lookup)
            .map_err(|e| invalid(format!("trace: {e}")))?;
        let key = *filter.m.key();
        if filter.m.mask().in_port == 0 {
            return Err(invalid(
                "trace: the packet needs an input port (in_port=N or in_port=NAME)",
            ));
        }
        if !b.ports.contains_key(&PortNo(key.in_port)) {
            return Err(invalid(format!(
                "trace: in_port={} is not a port of {bridge}",
                key.in_port
            )));
        }
        let id = b.id;
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.worker.send(Command::Trace {
            bridge: id,
            key,
            reply: tx,
        });
        let trace = rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| reject(ErrorKind::Internal, "datapath did not answer"))?;
        let packet = syntax::fmt_match(&filter.m, flowtable::Priority::DEFAULT, None);
        let trace = convert::trace_result(packet, trace);
        Ok(Reply::Trace { trace })
    }
}
