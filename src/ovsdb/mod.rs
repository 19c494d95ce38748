//! OVSDB (RFC 7047): the database engine rvsd serves to `ovs-vsctl`,
//! libvirt, ovsdbapp and `ovsdb-client`.
//!
//! # What?
//! A pure engine, no I/O, clocks or logging: [`schema`] parses `.ovsschema`
//! documents (and embeds the Open_vSwitch schema), [`datum`] holds values
//! and their JSON notation, [`db`] stores rows and runs `transact`
//! atomically, [`monitor`] turns committed [`Change`]s into `update` /
//! `update2` notifications. [`condition`] and [`mutation`] parse and apply
//! `where` clauses and `mutate` operations. On top of the engine:
//! [`server`] (the JSON-RPC endpoint), [`service`] (the shared database
//! and its monitors), [`store`] (its files) and [`vswitchd`] (ovs-vswitchd's part: the
//! database and the switch kept one model).
//!
//! # Design
//! The server owns one [`Db`] per database and calls [`Db::transact`] with
//! the params of each transact request; the returned [`Change`] goes to
//! every [`Monitor`] of the database, whose [`Monitor::update`] gives the
//! notification to send, if any. Wait timeouts and locks are the server's
//! business: a `wait` that cannot be satisfied yet yields
//! [`TxnOutcome::Blocked`].
//!
//! # Invariants
//! See [`db`]: a failed transaction changes nothing; between transactions
//! the database satisfies every schema constraint.
//!
//! # Thread-safety
//! All types are plain data (`Send + Sync`); `transact` takes `&mut Db`.
//!
//! # Limits
//! See [`db`] and [`monitor`] for the remaining O(table) paths.

pub mod condition;
pub mod datum;
pub mod db;
pub mod error;
pub mod monitor;
pub mod mutation;
pub mod schema;
pub mod server;
pub mod service;
pub mod store;
pub mod vswitchd;

pub use datum::{Atom, Datum, Uuid};
pub use db::{Change, Db, Row, RowChange, TxnOutcome};
pub use error::OvsdbError;
pub use monitor::{Monitor, MonitorVersion};
pub use schema::{AtomicType, BaseType, ColumnSchema, RefType, Schema, TableSchema, Type};
