//! The OVSDB service state shared by every connection: the database, the
//! ovs-vswitchd role that keeps it and the switch one model, the
//! registered monitors, and the database file.
//!
//! # Design
//! Every commit — a client's transaction or a sync with the switch — goes
//! through [`Ovsdb::publish`], which hands each registered monitor its
//! notification for that commit, in commit order, on the connection's
//! outgoing queue. A client transaction is followed, under the same lock,
//! by [`Vswitchd::apply`] (the switch made so) and its status commit
//! (`cur_cfg = next_cfg`), so a client that waits for `cur_cfg` sees it
//! only once the switch did the work.
//!
//! Before any transaction runs, a switch that changed behind the
//! database's back (its generation moved) is pulled in first, so a client
//! never transacts against a stale view and never undoes an `rvsctl`
//! change it did not see.
//!
//! # Persistence
//! Every commit is appended to the database's log ([`super::store`]) and
//! synced before the client's reply: every non-ephemeral column of every
//! row (external_ids, other_config, QoS rows, …) survives a restart or a
//! `kill -9`. What the switch itself persists in `state.toml` is restored
//! from there and wins where the two differ.
//!
//! # Thread-safety
//! One [`Ovsdb`] behind a mutex; lock order: this mutex, then the
//! switch's.
//!
//! # Limits
//! Monitor queues are unbounded: a client that stops reading is dropped
//! by its connection's echo probe, not by queue size.

use std::path::Path;

use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use super::datum::Uuid;
use super::db::{Change, Db, TxnOutcome};
use super::error::OvsdbError;
use super::monitor::{Monitor, MonitorVersion};
use super::schema::Schema;
use super::store::Store;
use super::vswitchd::Vswitchd;
use crate::control::switch::Switch;

/// Which monitor method registered a monitor (and so which notification
/// it gets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorKind {
    /// `monitor` → `update`.
    Monitor,
    /// `monitor_cond` → `update2`.
    Cond,
    /// `monitor_cond_since` → `update3`.
    Since,
}

#[derive(Debug)]
struct Registered {
    conn: u64,
    id: Value,
    kind: MonitorKind,
    monitor: Monitor,
    tx: UnboundedSender<Value>,
}

/// The database and everything that follows its commits.
#[derive(Debug)]
pub struct Ovsdb {
    db: Db,
    vswitchd: Vswitchd,
    monitors: Vec<Registered>,
    /// The files (`None`: in memory only, unit tests).
    store: Option<Store>,
    /// The id of the last commit (`monitor_cond_since`'s last-txn-id).
    last_txn: Uuid,
    /// Bumped on every commit: blocked `wait`s retry when it moves.
    commits: tokio::sync::watch::Sender<u64>,
}

impl Ovsdb {
    /// Opens the database (from `<dir>/ovsdb.json` when there is one),
    /// drops transient ports, and pulls the switch in.
    pub fn open(dir: Option<&Path>, sw: &mut Switch) -> anyhow::Result<Ovsdb> {
        let schema = Schema::vswitch();
        let (db, store) = match dir {
            Some(d) => {
                let (db, store) = Store::open(d, schema).map_err(|e| anyhow::anyhow!("{e}"))?;
                (db, Some(store))
            }
            None => (Db::new(schema), None),
        };
        let (commits, _) = tokio::sync::watch::channel(0);
        let mut o = Ovsdb {
            db,
            vswitchd: Vswitchd::default(),
            monitors: Vec::new(),
            store,
            last_txn: Uuid::random(),
            commits,
        };
        o.vswitchd.seed_errors(&o.db);
        let mut changes = o.vswitchd.drop_transient(&mut o.db, sw);
        changes.extend(o.vswitchd.pull(&mut o.db, sw));
        o.publish(changes);
        o.save()?;
        Ok(o)
    }

    /// The database (read-only).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A receiver that sees every commit.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Makes the commits so far durable.
    fn save(&mut self) -> anyhow::Result<()> {
        if let Some(st) = &mut self.store {
            st.sync(&self.db)
                .map_err(|e| anyhow::anyhow!("saving the database: {e}"))?;
        }
        Ok(())
    }

    /// Pulls in switch changes made behind the database's back.
    fn catch_up(&mut self, sw: &mut Switch) -> bool {
        let generation = sw.generation().load(std::sync::atomic::Ordering::Acquire);
        if !self.vswitchd.stale(generation) {
            return false;
        }
        let changes = self.vswitchd.pull(&mut self.db, sw);
        let any = !changes.is_empty();
        self.publish(changes);
        any
    }

    /// A client's transaction: run, then the switch made so, then the
    /// status commit. `Err` only when the change could not be saved.
    pub fn transact(&mut self, sw: &mut Switch, ops: &[Value]) -> Result<TxnOutcome, OvsdbError> {
        if self.catch_up(sw) {
            self.save_or_log();
        }
        let outcome = self.db.transact(ops);
        // A transaction that changed nothing (reads, failed ones) leaves
        // the switch and the status columns to the periodic sync.
        if let TxnOutcome::Done { change, .. } = &outcome {
            if !change.is_empty() {
                self.publish(vec![change.clone()]);
                let status = self.vswitchd.apply(&mut self.db, sw);
                self.publish(status);
                if let Err(e) = self.save() {
                    log::error!("ovsdb: {e}");
                    return Err(OvsdbError::new("I/O error", e.to_string()));
                }
            }
        }
        Ok(outcome)
    }

    fn save_or_log(&mut self) {
        if let Err(e) = self.save() {
            log::error!("ovsdb: {e}");
        }
    }

    /// The periodic sync: switch changes pulled in, failed ports retried,
    /// status refreshed (statistics too with `stats`).
    pub fn tick(&mut self, sw: &mut Switch, stats: bool) {
        if self.catch_up(sw) {
            self.save_or_log();
        }
        let changes = self.vswitchd.tick(&mut self.db, sw, stats);
        self.publish(changes);
    }

    /// Whether the switch changed since the last sync (cheap: no lock of
    /// the database needed by the caller beyond this one).
    pub fn stale(&self, generation: u64) -> bool {
        self.vswitchd.stale(generation)
    }

    /// Hands each commit to every monitor, in order.
    fn publish(&mut self, changes: Vec<Change>) {
        for change in changes {
            if let Some(st) = &mut self.store {
                if let Err(e) = st.append(&self.db, &change) {
                    log::error!("ovsdb: {e}");
                }
            }
            self.last_txn = Uuid::random();
            self.commits.send_modify(|n| *n += 1);
            let txn = self.last_txn.to_string();
            self.monitors.retain(|m| {
                let Some(updates) = m.monitor.update(&change) else {
                    return !m.tx.is_closed();
                };
                let msg = match m.kind {
                    MonitorKind::Monitor => {
                        json!({"method": "update", "params": [m.id, updates], "id": null})
                    }
                    MonitorKind::Cond => {
                        json!({"method": "update2", "params": [m.id, updates], "id": null})
                    }
                    MonitorKind::Since => {
                        json!({"method": "update3", "params": [m.id, txn, updates], "id": null})
                    }
                };
                m.tx.send(msg).is_ok()
            });
        }
    }

    /// Registers a monitor; the initial contents (the reply's result).
    /// A switch change not yet pulled in is pulled first, so a client
    /// that connects right after `rvsctl add-br` sees the bridge.
    pub fn monitor(
        &mut self,
        sw: &mut Switch,
        conn: u64,
        id: Value,
        requests: &Value,
        kind: MonitorKind,
        tx: UnboundedSender<Value>,
    ) -> Result<Value, OvsdbError> {
        if self.monitors.iter().any(|m| m.conn == conn && m.id == id) {
            return Err(OvsdbError::new("duplicate monitor ID", id.to_string()));
        }
        if self.catch_up(sw) {
            self.save_or_log();
        }
        let version = match kind {
            MonitorKind::Monitor => MonitorVersion::V1,
            MonitorKind::Cond | MonitorKind::Since => MonitorVersion::V2,
        };
        let monitor = Monitor::new(&self.db, requests, version)?;
        let initial = monitor.initial(&self.db);
        self.monitors.push(Registered {
            conn,
            id,
            kind,
            monitor,
            tx,
        });
        Ok(match kind {
            MonitorKind::Since => json!([false, self.last_txn.to_string(), initial]),
            _ => initial,
        })
    }

    /// `monitor_cancel`.
    pub fn monitor_cancel(&mut self, conn: u64, id: &Value) -> Result<(), OvsdbError> {
        let before = self.monitors.len();
        self.monitors.retain(|m| !(m.conn == conn && &m.id == id));
        if self.monitors.len() == before {
            return Err(OvsdbError::new("unknown monitor", id.to_string()));
        }
        Ok(())
    }

    /// `monitor_cond_change`: new conditions (and id) for a monitor; the
    /// rows that enter or leave are sent as an update.
    pub fn monitor_cond_change(
        &mut self,
        conn: u64,
        old: &Value,
        new: Value,
        requests: &Value,
    ) -> Result<(), OvsdbError> {
        let db = &self.db;
        let txn = self.last_txn.to_string();
        let m = self
            .monitors
            .iter_mut()
            .find(|m| m.conn == conn && &m.id == old)
            .ok_or_else(|| OvsdbError::new("unknown monitor", old.to_string()))?;
        if m.kind == MonitorKind::Monitor {
            return Err(OvsdbError::new(
                "not supported",
                "monitor_cond_change of a monitor registered with monitor",
            ));
        }
        let updates = m.monitor.cond_change(db, requests)?;
        m.id = new;
        if let Some(u) = updates {
            let msg = match m.kind {
                MonitorKind::Since => {
                    json!({"method": "update3", "params": [m.id, txn, u], "id": null})
                }
                _ => json!({"method": "update2", "params": [m.id, u], "id": null}),
            };
            let _ = m.tx.send(msg);
        }
        Ok(())
    }

    /// Forgets a closed connection's monitors.
    pub fn disconnect(&mut self, conn: u64) {
        self.monitors.retain(|m| m.conn != conn);
    }
}
