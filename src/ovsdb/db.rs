//! The in-memory database and the `transact` method (RFC 7047 §4.1.3, §5.2).
//!
//! # What?
//! A [`Db`] holds the rows of every table of one [`Schema`].
//! [`Db::transact`] runs the operations of one transact request atomically
//! and returns either the reply's result array plus the [`Change`] it made
//! (which monitors turn into notifications), or [`TxnOutcome::Blocked`]
//! when a `wait` with a timeout is not yet satisfied.
//! [`Db::snapshot`]/[`Db::restore`] persist and reload the durable columns.
//!
//! # Design
//! A transaction is an overlay over the committed tables: per table, a map
//! from uuid to the row's new state (`None` for deleted). Operations read
//! through the overlay, so later operations see earlier ones; nothing
//! touches the committed tables until every operation and every commit
//! check has passed, so rollback is dropping the overlay. Commit then runs
//! ovsdb-server's checks in its order: drop rows that did not really
//! change; strong referential integrity; garbage collection of unreferenced
//! rows of non-root tables (cascading); `maxRows`; removal of weak
//! references to missing rows (then size minimums); index uniqueness; new
//! `_version`s. Only then is the overlay applied.
//!
//! Each table keeps, besides its rows (a `BTreeMap` by uuid, so iteration
//! and JSON output are deterministic): the number of strong references to
//! each row, the referrers of each row through weak references, and one
//! `BTreeMap` per schema index from the indexed values to the row. These
//! make reference checks, garbage collection and weak-reference cleanup
//! proportional to the rows the transaction changed, and let `where`
//! clauses `_uuid == x`, or `==` on every column of an index, be lookups.
//!
//! # Invariants
//! Between transactions: every row has every declared column, each datum
//! satisfies its column type; every strong reference names an existing
//! row; no weak reference names a missing row; the reference counts and
//! index maps match the rows exactly; no two rows share an index key; no
//! table exceeds `maxRows`; `_version` differs after each change of a row.
//! A transaction that fails leaves the database untouched.
//!
//! # Thread-safety
//! `&mut self` for `transact`: the server serialises transactions (one
//! owner, e.g. a task holding the `Db`), readers take `&self` between them.
//!
//! # Limits
//! Work per transaction is proportional to the rows it touches plus the
//! rows its `where` clauses scan. Remaining O(table) paths and deviations:
//! - a `where` without a `_uuid ==` clause and without `==` on every
//!   column of some index scans the whole table (plus the overlay);
//! - `maxRows` uses the table's row count (O(1)); index uniqueness costs
//!   O(changed rows × indexes × log rows); GC and weak-reference cleanup
//!   visit only rows whose references changed and their referrers;
//! - weak-reference removal does not trigger a second round of garbage
//!   collection (nor does ovsdb-server's), so a row kept alive only by a
//!   map pair dropped for its weak half survives until the next change;
//! - named uuids (`["named-uuid", n]`) must be the `uuid-name` of some
//!   insert of the same transaction (forward references are fine); an
//!   unknown name is a "syntax error" where ovsdb-server would invent a
//!   uuid and fail (or drop it) at commit.

use super::condition::Condition;
use super::datum::{Atom, Datum, Uuid};
use super::error::OvsdbError;
use super::mutation::Mutation;
use super::schema::{RefType, Schema, TableSchema};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// One row: its uuid, version and the value of every declared column.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The row's `_uuid`.
    pub uuid: Uuid,
    /// The row's `_version`, new on every change.
    pub version: Uuid,
    /// Every declared column of the table (defaults filled in).
    pub cols: BTreeMap<String, Datum>,
}

impl Row {
    /// The value of declared column `col`.
    pub fn get(&self, col: &str) -> Option<&Datum> {
        self.cols.get(col)
    }

    /// The value of any column, including `_uuid` and `_version`.
    pub fn value(&self, col: &str) -> Option<Cow<'_, Datum>> {
        match col {
            "_uuid" => Some(Cow::Owned(Datum::uuid(self.uuid))),
            "_version" => Some(Cow::Owned(Datum::uuid(self.version))),
            _ => self.cols.get(col).map(Cow::Borrowed),
        }
    }

    /// The row as a JSON object of the named columns (unknown ones skipped).
    pub fn to_json<'a>(
        &self,
        table: &TableSchema,
        columns: impl IntoIterator<Item = &'a str>,
    ) -> Value {
        let mut m = Map::new();
        for c in columns {
            if let (Some(cs), Some(v)) = (table.column(c), self.value(c)) {
                m.insert(c.to_string(), v.to_json(&cs.ty));
            }
        }
        Value::Object(m)
    }

    fn same_content(&self, other: &Row) -> bool {
        self.cols == other.cols
    }
}

/// The result of [`Db::transact`].
#[derive(Clone, Debug)]
pub enum TxnOutcome {
    /// The transaction ran (successfully or not).
    Done {
        /// The "result" array of the transact reply: one entry per
        /// operation (an error object for the first failing one, `null` for
        /// those after it), plus one error object if the commit failed.
        results: Vec<Value>,
        /// What the transaction changed (empty if it failed).
        change: Change,
    },
    /// A `wait` with a nonzero timeout is unmet: nothing was applied. The
    /// server retries after later commits until its deadline, then answers
    /// with a "timed out" error.
    Blocked,
}

/// The rows a committed transaction changed, by table and uuid.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Change {
    /// Table name → uuid → change. Only rows whose values changed.
    pub tables: BTreeMap<String, BTreeMap<Uuid, RowChange>>,
}

impl Change {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.tables.values().all(BTreeMap::is_empty)
    }
}

/// One changed row.
#[derive(Clone, Debug, PartialEq)]
pub struct RowChange {
    /// The row before (`None` for an insert).
    pub old: Option<Row>,
    /// The row after (`None` for a delete).
    pub new: Option<Row>,
}

/// A column holding references (key or value side).
#[derive(Debug, Clone)]
struct RefCol {
    column: String,
    in_value: bool,
    target: usize,
    strong: bool,
}

#[derive(Debug, Default, Clone)]
struct Table {
    rows: BTreeMap<Uuid, Row>,
    /// Strong references to each row (counted per atom).
    strong: HashMap<Uuid, u32>,
    /// Weak referrers (table index, row) of each row, counted per atom.
    weak: HashMap<Uuid, HashMap<(usize, Uuid), u32>>,
    /// One map per schema index: indexed values → row.
    indexes: Vec<BTreeMap<Vec<Datum>, Uuid>>,
}

/// An OVSDB database: one schema's tables and rows.
#[derive(Debug, Clone)]
pub struct Db {
    schema: Arc<Schema>,
    names: Vec<String>,
    tables: Vec<Table>,
    refcols: Vec<Vec<RefCol>>,
}

enum OpError {
    Fail(OvsdbError),
    Blocked,
}

impl From<OvsdbError> for OpError {
    fn from(e: OvsdbError) -> Self {
        OpError::Fail(e)
    }
}

impl Db {
    /// An empty database of `schema`.
    pub fn new(schema: Arc<Schema>) -> Db {
        let names: Vec<String> = schema.tables.keys().cloned().collect();
        let idx = |n: &str| names.binary_search_by(|x| x.as_str().cmp(n)).ok();
        let mut refcols = Vec::new();
        let mut tables = Vec::new();
        for t in schema.tables.values() {
            let mut rc = Vec::new();
            for c in t.columns.values() {
                for (in_value, b) in [(false, Some(&c.ty.key)), (true, c.ty.value.as_ref())] {
                    if let Some(target) = b.and_then(|b| b.ref_table.as_deref()).and_then(idx) {
                        rc.push(RefCol {
                            column: c.name.clone(),
                            in_value,
                            target,
                            strong: b.is_some_and(|b| b.ref_type == RefType::Strong),
                        });
                    }
                }
            }
            refcols.push(rc);
            tables.push(Table {
                indexes: vec![BTreeMap::new(); t.indexes.len()],
                ..Table::default()
            });
        }
        Db {
            schema,
            names,
            tables,
            refcols,
        }
    }

    /// The schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    fn tidx(&self, name: &str) -> Option<usize> {
        self.names.binary_search_by(|x| x.as_str().cmp(name)).ok()
    }

    fn tschema(&self, t: usize) -> &TableSchema {
        // Invariant: `names` are exactly the schema's table names.
        &self.schema.tables[&self.names[t]]
    }

    /// The rows of `table` in uuid order (none for an unknown table).
    pub fn rows<'a>(&'a self, table: &str) -> impl Iterator<Item = &'a Row> + 'a {
        self.tidx(table)
            .into_iter()
            .flat_map(move |t| self.tables[t].rows.values())
    }

    /// Row `uuid` of `table`.
    pub fn row(&self, table: &str, uuid: &Uuid) -> Option<&Row> {
        self.tables[self.tidx(table)?].rows.get(uuid)
    }

    /// Number of rows of `table`.
    pub fn n_rows(&self, table: &str) -> usize {
        self.tidx(table).map_or(0, |t| self.tables[t].rows.len())
    }

    /// Runs the operations of one transact request (the params after the
    /// database name) atomically.
    pub fn transact(&mut self, ops: &[Value]) -> TxnOutcome {
        let mut results = Vec::with_capacity(ops.len() + 1);
        let plan = {
            let mut txn = Txn::new(self, ops);
            for op in ops {
                match txn.execute(op) {
                    Ok(r) => results.push(r),
                    Err(OpError::Blocked) => return TxnOutcome::Blocked,
                    Err(OpError::Fail(e)) => {
                        results.push(e.to_json());
                        results.resize(ops.len(), Value::Null);
                        return TxnOutcome::Done {
                            results,
                            change: Change::default(),
                        };
                    }
                }
            }
            match txn.commit() {
                Ok(plan) => plan,
                Err(e) => {
                    results.push(e.to_json());
                    return TxnOutcome::Done {
                        results,
                        change: Change::default(),
                    };
                }
            }
        };
        let change = self.apply(plan);
        TxnOutcome::Done { results, change }
    }

    /// All rows' non-ephemeral columns: `{table: {uuid: {column: json}}}`.
    pub fn snapshot(&self) -> Value {
        let mut out = Map::new();
        for (t, table) in self.tables.iter().enumerate() {
            if table.rows.is_empty() {
                continue;
            }
            let ts = self.tschema(t);
            let mut rows = Map::new();
            for row in table.rows.values() {
                let mut cols = Map::new();
                for (name, c) in &ts.columns {
                    if !c.ephemeral {
                        if let Some(d) = row.cols.get(name) {
                            cols.insert(name.clone(), d.to_json(&c.ty));
                        }
                    }
                }
                rows.insert(row.uuid.to_string(), Value::Object(cols));
            }
            out.insert(self.names[t].clone(), Value::Object(rows));
        }
        Value::Object(out)
    }

    /// Rebuilds a database from [`Db::snapshot`] output, with the checks of
    /// a transaction inserting every row (weak references to missing rows
    /// are dropped; anything else wrong rejects the whole snapshot).
    pub fn restore(schema: Arc<Schema>, v: &Value) -> Result<Db, OvsdbError> {
        let mut db = Db::new(schema);
        let tables = v
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("snapshot must be an object"))?;
        let plan = {
            let mut txn = Txn::new(&db, &[]);
            let named = HashMap::new();
            for (tname, rows) in tables {
                let t = db
                    .tidx(tname)
                    .ok_or_else(|| OvsdbError::syntax(format!("No table named {tname}.")))?;
                let ts = db.tschema(t);
                let rows = rows
                    .as_object()
                    .ok_or_else(|| OvsdbError::syntax(format!("table {tname}: object expected")))?;
                for (u, cols) in rows {
                    let uuid = Uuid::parse(u).ok_or_else(|| {
                        OvsdbError::syntax(format!("\"{u}\" is not a valid UUID"))
                    })?;
                    let mut row = new_row(ts, uuid);
                    let cols = cols
                        .as_object()
                        .ok_or_else(|| OvsdbError::syntax(format!("row {u}: object expected")))?;
                    for (c, val) in cols {
                        let cs = ts.columns.get(c).ok_or_else(|| {
                            OvsdbError::syntax(format!("No column {c} in table {tname}."))
                        })?;
                        row.cols
                            .insert(c.clone(), Datum::from_json(&cs.ty, val, &named)?);
                    }
                    check_defaults(ts, &row)?;
                    txn.rows[t].insert(uuid, Some(row));
                }
            }
            txn.commit()?
        };
        db.apply(plan);
        Ok(db)
    }

    /// Applies a checked plan: updates rows, reference counts and indexes.
    fn apply(&mut self, plan: Plan) -> Change {
        // First remove every old row's contributions, then add the new
        // rows', so rows swapping index keys never collide.
        let mut staged: Vec<(usize, Uuid, Option<Row>, Option<Row>)> = Vec::new();
        for (t, rows) in plan.rows.into_iter().enumerate() {
            for (uuid, new) in rows {
                let old = self.tables[t].rows.remove(&uuid);
                if let Some(o) = &old {
                    self.account(t, o, -1);
                }
                staged.push((t, uuid, old, new));
            }
        }
        let mut change = Change::default();
        for (t, uuid, old, new) in staged {
            if let Some(n) = &new {
                self.account(t, n, 1);
                self.tables[t].rows.insert(uuid, n.clone());
            }
            change
                .tables
                .entry(self.names[t].clone())
                .or_default()
                .insert(uuid, RowChange { old, new });
        }
        change
    }

    /// Adds (`sign` 1) or removes (-1) `row`'s references and index keys.
    fn account(&mut self, t: usize, row: &Row, sign: i32) {
        for (rc, target) in refs_of(&self.refcols[t], row) {
            let tt = &mut self.tables[rc.target];
            if rc.strong {
                let n = tt.strong.entry(target).or_insert(0);
                *n = n.saturating_add_signed(sign);
                if *n == 0 {
                    tt.strong.remove(&target);
                }
            } else {
                let m = tt.weak.entry(target).or_default();
                let n = m.entry((t, row.uuid)).or_insert(0);
                *n = n.saturating_add_signed(sign);
                if *n == 0 {
                    m.remove(&(t, row.uuid));
                }
                if m.is_empty() {
                    tt.weak.remove(&target);
                }
            }
        }
        let ts = &self.schema.tables[&self.names[t]];
        for (i, cols) in ts.indexes.iter().enumerate() {
            let key = index_key(row, cols);
            let ix = &mut self.tables[t].indexes[i];
            if sign > 0 {
                ix.insert(key, row.uuid);
            } else if ix.get(&key) == Some(&row.uuid) {
                ix.remove(&key);
            }
        }
    }
}

/// The uuids `row` references, with the column each comes from.
fn refs_of<'a>(
    refcols: &'a [RefCol],
    row: &'a Row,
) -> impl Iterator<Item = (&'a RefCol, Uuid)> + 'a {
    refcols.iter().flat_map(move |rc| {
        let d = row.cols.get(&rc.column);
        let atoms: &[Atom] = match d {
            Some(d) if rc.in_value => d.values.as_deref().unwrap_or_default(),
            Some(d) => &d.keys,
            None => &[],
        };
        atoms
            .iter()
            .filter_map(move |a| a.as_uuid().map(|u| (rc, u)))
    })
}

fn index_key(row: &Row, cols: &[String]) -> Vec<Datum> {
    cols.iter()
        .map(|c| {
            row.cols
                .get(c)
                .cloned()
                .unwrap_or_else(|| Datum::empty(false))
        })
        .collect()
}

/// A row of `ts` with every column at its default.
fn new_row(ts: &TableSchema, uuid: Uuid) -> Row {
    Row {
        uuid,
        version: Uuid::default(),
        cols: ts
            .columns
            .iter()
            .map(|(n, c)| (n.clone(), Datum::default_for(&c.ty)))
            .collect(),
    }
}

/// Default values may violate constraints (an enum without ""): check the
/// one-element ones, as ovsdb-server does on insert.
fn check_defaults(ts: &TableSchema, row: &Row) -> Result<(), OvsdbError> {
    for (n, c) in &ts.columns {
        if let Some(d) = row.cols.get(n) {
            if d.len() == 1 {
                d.check(&c.ty).map_err(|e| {
                    OvsdbError::new(
                        &e.error,
                        format!("column {n} of table {}: {}", ts.name, e.details),
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// A checked transaction, ready to apply: per table, uuid → new row.
struct Plan {
    rows: Vec<BTreeMap<Uuid, Option<Row>>>,
}

/// A transaction in progress: an overlay over `db`.
struct Txn<'a> {
    db: &'a Db,
    /// Per table: uuid → new state (`None` = deleted).
    rows: Vec<BTreeMap<Uuid, Option<Row>>>,
    /// uuid-name → uuid, pre-assigned from every insert of the request.
    named: HashMap<String, Uuid>,
    /// uuid-names already used by an executed insert.
    created: HashSet<String>,
}

fn member<'v>(op: &'v Map<String, Value>, name: &str) -> Result<&'v Value, OvsdbError> {
    op.get(name)
        .ok_or_else(|| OvsdbError::syntax(format!("Required '{name}' member is missing.")))
}

impl<'a> Txn<'a> {
    fn new(db: &'a Db, ops: &[Value]) -> Txn<'a> {
        let mut named = HashMap::new();
        for op in ops {
            let is_insert = op.get("op").and_then(Value::as_str) == Some("insert");
            if let (true, Some(name)) = (is_insert, op.get("uuid-name").and_then(Value::as_str)) {
                let uuid = op
                    .get("uuid")
                    .and_then(Value::as_str)
                    .and_then(Uuid::parse)
                    .unwrap_or_else(Uuid::random);
                named.entry(name.to_string()).or_insert(uuid);
            }
        }
        Txn {
            db,
            rows: vec![BTreeMap::new(); db.tables.len()],
            named,
            created: HashSet::new(),
        }
    }

    fn get(&self, t: usize, uuid: &Uuid) -> Option<&Row> {
        match self.rows[t].get(uuid) {
            Some(state) => state.as_ref(),
            None => self.db.tables[t].rows.get(uuid),
        }
    }

    fn table(&self, op: &Map<String, Value>) -> Result<(usize, &'a TableSchema), OvsdbError> {
        let name = member(op, "table")?
            .as_str()
            .ok_or_else(|| OvsdbError::syntax("'table' must be a string"))?;
        let db: &'a Db = self.db;
        let t = db
            .tidx(name)
            .ok_or_else(|| OvsdbError::syntax(format!("No table named {name}.")))?;
        Ok((t, db.tschema(t)))
    }

    fn condition(
        &self,
        ts: &TableSchema,
        op: &Map<String, Value>,
    ) -> Result<Condition, OvsdbError> {
        Condition::parse(ts, member(op, "where")?, &self.named)
    }

    /// The uuids of the current rows of table `t` matching `cond`.
    fn query(&self, t: usize, cond: &Condition) -> Vec<Uuid> {
        if cond.is_false() {
            return Vec::new();
        }
        let table = &self.db.tables[t];
        let overlay = &self.rows[t];
        let candidates: Vec<Uuid> = if let Some(u) = cond.uuid_eq() {
            vec![u]
        } else if let Some(hit) = self
            .db
            .tschema(t)
            .indexes
            .iter()
            .enumerate()
            .find_map(|(i, cols)| cond.eq_key(cols).map(|k| table.indexes[i].get(&k).copied()))
        {
            let set: BTreeSet<Uuid> = hit.into_iter().chain(overlay.keys().copied()).collect();
            set.into_iter().collect()
        } else {
            let mut all: Vec<Uuid> = table
                .rows
                .keys()
                .copied()
                .filter(|u| !overlay.contains_key(u))
                .collect();
            all.extend(overlay.iter().filter(|(_, r)| r.is_some()).map(|(u, _)| *u));
            return all
                .into_iter()
                .filter(|u| self.get(t, u).is_some_and(|r| cond.matches_all(r)))
                .collect();
        };
        candidates
            .into_iter()
            .filter(|u| self.get(t, u).is_some_and(|r| cond.matches_all(r)))
            .collect()
    }

    /// Row `uuid` of table `t`, copied into the overlay for modification.
    fn modify(&mut self, t: usize, uuid: Uuid) -> Option<&mut Row> {
        if !self.rows[t].contains_key(&uuid) {
            let row = self.db.tables[t].rows.get(&uuid)?.clone();
            self.rows[t].insert(uuid, Some(row));
        }
        self.rows[t].get_mut(&uuid).and_then(Option::as_mut)
    }

    /// Parses a `row` object of `ts`; returns the columns set.
    fn parse_row(
        &self,
        ts: &TableSchema,
        v: &Value,
        for_update: bool,
    ) -> Result<Vec<(String, Datum)>, OvsdbError> {
        let obj = v
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("'row' must be an object"))?;
        let mut out = Vec::with_capacity(obj.len());
        for (c, val) in obj {
            let cs = ts.column(c).ok_or_else(|| {
                OvsdbError::new(
                    "unknown column",
                    format!("No column {c} in table {}.", ts.name),
                )
            })?;
            if c.starts_with('_') || (for_update && !cs.mutable) {
                return Err(OvsdbError::constraint(format!(
                    "Cannot update immutable column {c} in table {}.",
                    ts.name
                )));
            }
            out.push((c.clone(), Datum::from_json(&cs.ty, val, &self.named)?));
        }
        Ok(out)
    }

    fn execute(&mut self, op: &Value) -> Result<Value, OpError> {
        let op = op
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("operation must be an object"))?;
        let name = member(op, "op")?
            .as_str()
            .ok_or_else(|| OvsdbError::syntax("'op' must be a string"))?;
        match name {
            "insert" => self.insert(op),
            "select" => self.select(op),
            "update" => self.update(op),
            "mutate" => self.mutate(op),
            "delete" => self.delete(op),
            "wait" => self.wait(op),
            "commit" => {
                match op.get("durable") {
                    None | Some(Value::Bool(_)) => {}
                    Some(_) => return Err(OvsdbError::syntax("'durable' must be a boolean").into()),
                }
                Ok(json!({}))
            }
            "abort" => Err(OvsdbError::new("aborted", "aborted by request").into()),
            "comment" => Ok(json!({})),
            "assert" => {
                let lock = member(op, "lock")?.as_str().unwrap_or_default();
                Err(
                    OvsdbError::new("not owner", format!("Asserted lock {lock} not acquired."))
                        .into(),
                )
            }
            _ => Err(OvsdbError::syntax(format!("No operation \"{name}\"")).into()),
        }
    }

    fn insert(&mut self, op: &Map<String, Value>) -> Result<Value, OpError> {
        let (t, ts) = self.table(op)?;
        let uuid_name = match op.get("uuid-name") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(OvsdbError::syntax("'uuid-name' must be a string").into()),
        };
        let given = match op.get("uuid") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .and_then(Uuid::parse)
                    .ok_or_else(|| OvsdbError::syntax("bad uuid"))?,
            ),
        };
        if let Some(u) = given {
            if self.db.tables[t].rows.contains_key(&u) || self.rows[t].contains_key(&u) {
                return Err(OvsdbError::new(
                    "duplicate uuid",
                    format!(
                        "This UUID would duplicate a UUID already present within the {} table or deleted from it within the same transaction.",
                        ts.name
                    ),
                )
                .into());
            }
        }
        let uuid = match &uuid_name {
            Some(n) => {
                if !self.created.insert(n.clone()) {
                    return Err(OvsdbError::new(
                        "duplicate uuid-name",
                        format!(
                            "This \"uuid-name\" ({n}) appeared on an earlier \"insert\" operation."
                        ),
                    )
                    .into());
                }
                // Invariant: `Txn::new` named every insert's uuid-name.
                self.named.get(n).copied().unwrap_or_else(Uuid::random)
            }
            None => given.unwrap_or_else(Uuid::random),
        };
        if self.get(t, &uuid).is_some() {
            return Err(
                OvsdbError::new("duplicate uuid", format!("row {uuid} already exists")).into(),
            );
        }
        let mut row = new_row(ts, uuid);
        let empty = Value::Object(Map::new());
        for (c, d) in self.parse_row(ts, op.get("row").unwrap_or(&empty), false)? {
            row.cols.insert(c, d);
        }
        check_defaults(ts, &row)?;
        self.rows[t].insert(uuid, Some(row));
        Ok(json!({"uuid": ["uuid", uuid.to_string()]}))
    }

    fn columns_of(
        ts: &'a TableSchema,
        op: &Map<String, Value>,
    ) -> Result<Vec<&'a str>, OvsdbError> {
        match op.get("columns") {
            None => Ok(ts.all_column_names().collect()),
            Some(Value::Array(cols)) => {
                let mut out = Vec::with_capacity(cols.len());
                for c in cols {
                    let c = c
                        .as_str()
                        .ok_or_else(|| OvsdbError::syntax("array of column names expected"))?;
                    let cs = ts.column(c).ok_or_else(|| {
                        OvsdbError::syntax(format!("No column {c} in table {}.", ts.name))
                    })?;
                    if out.contains(&cs.name.as_str()) {
                        return Err(OvsdbError::syntax(format!(
                            "column {c} mentioned more than once"
                        )));
                    }
                    out.push(cs.name.as_str());
                }
                Ok(out)
            }
            Some(_) => Err(OvsdbError::syntax("array of column names expected")),
        }
    }

    fn select(&mut self, op: &Map<String, Value>) -> Result<Value, OpError> {
        let (t, ts) = self.table(op)?;
        let cond = self.condition(ts, op)?;
        let cols = Self::columns_of(ts, op)?;
        let rows: Vec<Value> = self
            .query(t, &cond)
            .iter()
            .filter_map(|u| self.get(t, u))
            .map(|r| r.to_json(ts, cols.iter().copied()))
            .collect();
        Ok(json!({"rows": rows}))
    }

    fn update(&mut self, op: &Map<String, Value>) -> Result<Value, OpError> {
        let (t, ts) = self.table(op)?;
        let row = self.parse_row(ts, member(op, "row")?, true)?;
        let cond = self.condition(ts, op)?;
        let matched = self.query(t, &cond);
        for u in &matched {
            let needs = self
                .get(t, u)
                .is_some_and(|r| row.iter().any(|(c, d)| r.cols.get(c) != Some(d)));
            if needs {
                if let Some(r) = self.modify(t, *u) {
                    for (c, d) in &row {
                        r.cols.insert(c.clone(), d.clone());
                    }
                }
            }
        }
        Ok(json!({"count": matched.len()}))
    }

    fn mutate(&mut self, op: &Map<String, Value>) -> Result<Value, OpError> {
        let (t, ts) = self.table(op)?;
        let cond = self.condition(ts, op)?;
        let muts = Mutation::parse_all(ts, member(op, "mutations")?, &self.named)?;
        let matched = self.query(t, &cond);
        for u in &matched {
            let Some(cur) = self.get(t, u) else { continue };
            let mut cols: BTreeMap<&str, Datum> = BTreeMap::new();
            for m in &muts {
                let cs = &ts.columns[&m.column];
                let d = match cols.get_mut(m.column.as_str()) {
                    Some(d) => d,
                    None => cols.entry(m.column.as_str()).or_insert(
                        cur.cols
                            .get(&m.column)
                            .cloned()
                            .unwrap_or_else(|| Datum::default_for(&cs.ty)),
                    ),
                };
                m.apply(d, &cs.ty)?;
            }
            let changed: Vec<(String, Datum)> = cols
                .into_iter()
                .filter(|(c, d)| cur.cols.get(*c) != Some(d))
                .map(|(c, d)| (c.to_string(), d))
                .collect();
            if !changed.is_empty() {
                if let Some(r) = self.modify(t, *u) {
                    r.cols.extend(changed);
                }
            }
        }
        Ok(json!({"count": matched.len()}))
    }

    fn delete(&mut self, op: &Map<String, Value>) -> Result<Value, OpError> {
        let (t, ts) = self.table(op)?;
        let cond = self.condition(ts, op)?;
        let matched = self.query(t, &cond);
        for u in &matched {
            self.rows[t].insert(*u, None);
        }
        Ok(json!({"count": matched.len()}))
    }

    fn wait(&mut self, op: &Map<String, Value>) -> Result<Value, OpError> {
        let (t, ts) = self.table(op)?;
        let timeout = match op.get("timeout") {
            None => None,
            Some(v) => Some(
                v.as_i64()
                    .filter(|&n| n >= 0)
                    .ok_or_else(|| OvsdbError::syntax("timeout must be nonnegative"))?,
            ),
        };
        let cond = self.condition(ts, op)?;
        let cols = Self::columns_of(ts, op)?;
        let equal = match member(op, "until")?.as_str() {
            Some("==") => true,
            Some("!=") => false,
            _ => return Err(OvsdbError::syntax("\"until\" must be \"==\" or \"!=\"").into()),
        };
        let rows = member(op, "rows")?
            .as_array()
            .ok_or_else(|| OvsdbError::syntax("'rows' must be an array"))?;
        let mut expected = Vec::with_capacity(rows.len());
        for r in rows {
            let obj = r
                .as_object()
                .ok_or_else(|| OvsdbError::syntax("row must be an object"))?;
            let mut vals = Vec::with_capacity(cols.len());
            for (c, _) in obj {
                if ts.column(c).is_none() {
                    return Err(
                        OvsdbError::syntax(format!("No column {c} in table {}.", ts.name)).into(),
                    );
                }
            }
            for c in &cols {
                // Invariant: `columns_of` returned only columns of `ts`.
                let Some(cs) = ts.column(c) else { continue };
                vals.push(match obj.get(*c) {
                    Some(v) => Datum::from_json(&cs.ty, v, &self.named)?,
                    None => Datum::default_for(&cs.ty),
                });
            }
            expected.push(vals);
        }
        let mut actual: Vec<Vec<Datum>> = self
            .query(t, &cond)
            .iter()
            .filter_map(|u| self.get(t, u))
            .map(|r| {
                cols.iter()
                    .map(|c| {
                        r.value(c)
                            .map(Cow::into_owned)
                            .unwrap_or_else(|| Datum::empty(false))
                    })
                    .collect()
            })
            .collect();
        actual.sort();
        expected.sort();
        if (actual == expected) == equal {
            return Ok(json!({}));
        }
        match timeout {
            Some(0) => Err(OvsdbError::new("timed out", "\"wait\" timed out").into()),
            _ => Err(OpError::Blocked),
        }
    }

    /// The commit-time checks; on success the overlay to apply.
    fn commit(mut self) -> Result<Plan, OvsdbError> {
        let db = self.db;
        // Rows that did not really change are not part of the transaction.
        for (t, rows) in self.rows.iter_mut().enumerate() {
            rows.retain(|u, new| match (db.tables[t].rows.get(u), new.as_ref()) {
                (None, None) => false,
                (Some(o), Some(n)) => !o.same_content(n),
                _ => true,
            });
        }

        // Strong references: added ones must name rows that exist after the
        // transaction; deleted rows must be left unreferenced.
        let mut delta: HashMap<(usize, Uuid), i64> = HashMap::new();
        for (t, rows) in self.rows.iter().enumerate() {
            let ts = db.tschema(t);
            for (u, new) in rows {
                if let Some(old) = db.tables[t].rows.get(u) {
                    for (rc, target) in refs_of(&db.refcols[t], old).filter(|(rc, _)| rc.strong) {
                        *delta.entry((rc.target, target)).or_default() -= 1;
                    }
                }
                if let Some(new) = new {
                    for (rc, target) in refs_of(&db.refcols[t], new).filter(|(rc, _)| rc.strong) {
                        *delta.entry((rc.target, target)).or_default() += 1;
                        if self.get(rc.target, &target).is_none() {
                            return Err(OvsdbError::new(
                                "referential integrity violation",
                                format!(
                                    "Table {} column {} row {u} references nonexistent row {target} in table {}.",
                                    ts.name, rc.column, db.names[rc.target]
                                ),
                            ));
                        }
                    }
                }
            }
        }
        let strong_count = |delta: &HashMap<(usize, Uuid), i64>, t: usize, u: &Uuid| {
            i64::from(db.tables[t].strong.get(u).copied().unwrap_or(0))
                + delta.get(&(t, *u)).copied().unwrap_or(0)
        };
        for (t, rows) in self.rows.iter().enumerate() {
            for (u, new) in rows {
                if new.is_none() && db.tables[t].rows.contains_key(u) {
                    let n = strong_count(&delta, t, u);
                    if n > 0 {
                        return Err(OvsdbError::new(
                            "referential integrity violation",
                            format!(
                                "cannot delete {} row {u} because of {n} remaining reference(s)",
                                db.names[t]
                            ),
                        ));
                    }
                }
            }
        }

        // Garbage collection: rows of non-root tables nobody references.
        let mut work: Vec<(usize, Uuid)> = delta
            .iter()
            .filter(|(_, d)| **d < 0)
            .map(|(k, _)| *k)
            .collect();
        for (t, rows) in self.rows.iter().enumerate() {
            for (u, new) in rows {
                if new.is_some() && !db.tables[t].rows.contains_key(u) {
                    work.push((t, *u));
                }
            }
        }
        while let Some((t, u)) = work.pop() {
            if db.tschema(t).is_root || strong_count(&delta, t, &u) > 0 {
                continue;
            }
            let Some(row) = self.get(t, &u).cloned() else {
                continue;
            };
            for (rc, target) in refs_of(&db.refcols[t], &row).filter(|(rc, _)| rc.strong) {
                *delta.entry((rc.target, target)).or_default() -= 1;
                work.push((rc.target, target));
            }
            if db.tables[t].rows.contains_key(&u) {
                self.rows[t].insert(u, None);
            } else {
                self.rows[t].remove(&u);
            }
        }

        // maxRows.
        for (t, rows) in self.rows.iter().enumerate() {
            let ts = db.tschema(t);
            let Some(max) = ts.max_rows else { continue };
            let mut n = db.tables[t].rows.len() as i64;
            for (u, new) in rows {
                match (db.tables[t].rows.contains_key(u), new.is_some()) {
                    (false, true) => n += 1,
                    (true, false) => n -= 1,
                    _ => {}
                }
            }
            if n > max as i64 {
                return Err(OvsdbError::constraint(format!(
                    "Transaction causes \"{}\" table to contain {n} rows, greater than the schema-defined limit of {max} row(s).",
                    ts.name
                )));
            }
        }

        // Weak references to rows that do not exist after the transaction
        // are removed, from changed rows and from referrers of deleted rows.
        let mut assess: BTreeSet<(usize, Uuid)> = BTreeSet::new();
        for (t, rows) in self.rows.iter().enumerate() {
            for (u, new) in rows {
                if new.is_some() {
                    assess.insert((t, *u));
                } else if let Some(refs) = db.tables[t].weak.get(u) {
                    assess.extend(refs.keys().copied());
                }
            }
        }
        for (t, u) in assess {
            let weak: Vec<&RefCol> = db.refcols[t].iter().filter(|rc| !rc.strong).collect();
            if weak.is_empty() {
                continue;
            }
            let Some(row) = self.get(t, &u) else { continue };
            let mut fixed: Vec<(String, Datum)> = Vec::new();
            for rc in &weak {
                let Some(d) = row.cols.get(&rc.column) else {
                    continue;
                };
                let dangling = |a: &Atom| {
                    a.as_uuid()
                        .is_some_and(|x| self.get(rc.target, &x).is_none())
                };
                let mut nd = fixed
                    .iter()
                    .find(|(c, _)| *c == rc.column)
                    .map(|(_, d)| d.clone())
                    .unwrap_or_else(|| d.clone());
                let before = nd.len();
                nd.retain(|k, v| {
                    let a = if rc.in_value { v } else { Some(k) };
                    !a.is_some_and(dangling)
                });
                if nd.len() != before {
                    let ts = db.tschema(t);
                    let ty = &ts.columns[&rc.column].ty;
                    if nd.len() < ty.min {
                        return Err(OvsdbError::constraint(format!(
                            "Deletion of {} weak reference(s) to deleted (or never-existing) rows from column \"{}\" in \"{}\" row {u} caused this column to have too few elements.",
                            before - nd.len(),
                            rc.column,
                            ts.name
                        )));
                    }
                    fixed.retain(|(c, _)| *c != rc.column);
                    fixed.push((rc.column.clone(), nd));
                }
            }
            if !fixed.is_empty() {
                if let Some(r) = self.modify(t, u) {
                    r.cols.extend(fixed);
                }
            }
        }

        // Index uniqueness.
        for (t, rows) in self.rows.iter().enumerate() {
            let ts = db.tschema(t);
            for (i, cols) in ts.indexes.iter().enumerate() {
                let mut seen: BTreeMap<Vec<Datum>, Uuid> = BTreeMap::new();
                for (u, new) in rows {
                    let Some(new) = new else { continue };
                    let key = index_key(new, cols);
                    let other = match seen.get(&key) {
                        Some(o) => Some(*o),
                        None => db.tables[t].indexes[i]
                            .get(&key)
                            .copied()
                            .filter(|o| o != u && !rows.contains_key(o)),
                    };
                    if let Some(o) = other {
                        let vals: Vec<String> = key
                            .iter()
                            .zip(cols)
                            .map(|(d, c)| d.to_json(&ts.columns[c].ty).to_string())
                            .collect();
                        return Err(OvsdbError::constraint(format!(
                            "Transaction causes multiple rows in \"{}\" table to have identical values ({}) for index on column(s) {}. First row, with UUID {o}, and second row, with UUID {u}.",
                            ts.name,
                            vals.join(", "),
                            cols.join(", ")
                        )));
                    }
                    seen.insert(key, *u);
                }
            }
        }

        // New versions.
        for rows in &mut self.rows {
            for row in rows.values_mut().flatten() {
                row.version = Uuid::random();
            }
        }
        Ok(Plan { rows: self.rows })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A small schema exercising every feature.
    pub(crate) fn test_schema() -> Arc<Schema> {
        Arc::new(
            Schema::parse(&json!({"name": "T", "version": "1.0.0", "tables": {
                "Root": {"isRoot": true, "indexes": [["name"]], "columns": {
                    "name": {"type": "string"},
                    "i": {"type": "integer"},
                    "r": {"type": "real"},
                    "s": {"type": {"key": "integer", "min": 0, "max": "unlimited"}},
                    "s2": {"type": {"key": "string", "min": 0, "max": 2}},
                    "m": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
                    "fixed": {"type": "string", "mutable": false},
                    "lim": {"type": {"key": {"type": "integer", "minInteger": 0, "maxInteger": 10}}},
                    "kids": {"type": {"key": {"type": "uuid", "refTable": "Kid"}, "min": 0, "max": "unlimited"}},
                    "weak": {"type": {"key": {"type": "uuid", "refTable": "Other", "refType": "weak"}, "min": 0, "max": "unlimited"}},
                    "eph": {"type": "integer", "ephemeral": true}}},
                "Kid": {"columns": {
                    "n": {"type": "integer"},
                    "sub": {"type": {"key": {"type": "uuid", "refTable": "Kid"}, "min": 0, "max": 1}}}},
                "Other": {"isRoot": true, "maxRows": 2, "columns": {"n": {"type": "integer"}}},
                "Must": {"isRoot": true, "columns": {
                    "o": {"type": {"key": {"type": "uuid", "refTable": "Other", "refType": "weak"}}}}}
            }}))
            .unwrap(),
        )
    }

    pub(crate) fn run(db: &mut Db, ops: Value) -> (Vec<Value>, Change) {
        match db.transact(ops.as_array().unwrap()) {
            TxnOutcome::Done { results, change } => (results, change),
            TxnOutcome::Blocked => panic!("blocked"),
        }
    }

    /// Runs `ops`, asserting that nothing failed.
    pub(crate) fn ok(db: &mut Db, ops: Value) -> (Vec<Value>, Change) {
        let n = ops.as_array().unwrap().len();
        let (r, c) = run(db, ops);
        assert_eq!(r.len(), n, "{r:?}");
        assert!(r.iter().all(|x| x.get("error").is_none()), "{r:?}");
        (r, c)
    }

    /// Runs `ops`, asserting failure with `tag`; returns the results.
    fn fails(db: &mut Db, ops: Value, tag: &str) -> Vec<Value> {
        let before = db.snapshot();
        let (r, c) = run(db, ops);
        let err = r
            .iter()
            .find(|x| x.get("error").is_some())
            .unwrap_or_else(|| panic!("{r:?}"));
        assert_eq!(err["error"], tag, "{r:?}");
        assert!(c.is_empty());
        assert_eq!(db.snapshot(), before);
        r
    }

    pub(crate) fn uuid_in(v: &Value) -> Uuid {
        Uuid::parse(v["uuid"][1].as_str().unwrap()).unwrap()
    }

    /// An Open_vSwitch row with bridge `br0` (port and interface `br0`),
    /// as `ovs-vsctl add-br br0` leaves it. Returns (ovs, bridge, port).
    pub(crate) fn vswitch_with_bridge(db: &mut Db) -> (Uuid, Uuid, Uuid) {
        let (r, _) = ok(
            db,
            json!([
                {"op": "insert", "table": "Open_vSwitch", "uuid-name": "ovs",
                 "row": {"bridges": ["named-uuid", "br"]}},
                {"op": "insert", "table": "Bridge", "uuid-name": "br",
                 "row": {"name": "br0", "ports": ["named-uuid", "port"]}},
                {"op": "insert", "table": "Port", "uuid-name": "port",
                 "row": {"name": "br0", "interfaces": ["named-uuid", "iface"]}},
                {"op": "insert", "table": "Interface", "uuid-name": "iface",
                 "row": {"name": "br0", "type": "internal"}},
            ]),
        );
        (uuid_in(&r[0]), uuid_in(&r[1]), uuid_in(&r[2]))
    }

    fn u(x: Uuid) -> Value {
        json!(["uuid", x.to_string()])
    }

    /// The transaction `ovs-vsctl add-port br0 p1` sends, verbatim in shape.
    fn add_port(db: &mut Db, ovs: Uuid, br: Uuid, old_ports: &[Uuid]) -> Vec<Value> {
        let ports: Vec<Value> = old_ports.iter().map(|p| u(*p)).collect();
        let mut new_ports = ports.clone();
        new_ports.push(json!(["named-uuid", "row2"]));
        let bridges = json!(["set", [u(br)]]);
        let (r, _) = ok(
            db,
            json!([
                {"op": "wait", "timeout": 0, "table": "Open_vSwitch",
                 "where": [["_uuid", "==", u(ovs)]], "columns": ["bridges"], "until": "==",
                 "rows": [{"bridges": bridges}]},
                {"op": "insert", "table": "Interface", "uuid-name": "row1a2b", "row": {"name": "p1"}},
                {"op": "insert", "table": "Port", "uuid-name": "row2",
                 "row": {"name": "p1", "interfaces": ["named-uuid", "row1a2b"]}},
                {"op": "update", "table": "Bridge", "where": [["_uuid", "==", u(br)]],
                 "row": {"ports": ["set", new_ports]}},
                {"op": "mutate", "table": "Open_vSwitch", "where": [["_uuid", "==", u(ovs)]],
                 "mutations": [["next_cfg", "+=", 1]]},
                {"op": "select", "table": "Open_vSwitch", "where": [["_uuid", "==", u(ovs)]],
                 "columns": ["next_cfg"]},
                {"op": "comment", "comment": "ovs-vsctl: ovs-vsctl add-port br0 p1"},
            ]),
        );
        r
    }

    #[test]
    fn ovs_vsctl_add_port_end_to_end() {
        let mut db = Db::new(Schema::vswitch());
        let (ovs, br, port0) = vswitch_with_bridge(&mut db);
        let r = add_port(&mut db, ovs, br, &[port0]);
        assert_eq!(r[0], json!({}));
        assert_eq!(r[3], json!({"count": 1}));
        assert_eq!(r[4], json!({"count": 1}));
        assert_eq!(r[5], json!({"rows": [{"next_cfg": 1}]}));
        assert_eq!(r[6], json!({}));
        let port = uuid_in(&r[2]);
        let iface = uuid_in(&r[1]);
        assert_eq!(
            db.row("Port", &port).unwrap().get("name").unwrap().as_str(),
            Some("p1")
        );
        assert_eq!(
            db.row("Port", &port)
                .unwrap()
                .get("interfaces")
                .unwrap()
                .as_uuid(),
            Some(iface)
        );
        assert_eq!(
            db.row("Bridge", &br).unwrap().get("ports").unwrap().len(),
            2
        );
        assert_eq!(db.n_rows("Interface"), 2);
        // The same wait again, now stale: bridges still equal, so it passes;
        // a wait on a different bridges set fails with "timed out".
        let stale = json!([{"op": "wait", "timeout": 0, "table": "Open_vSwitch",
            "where": [["_uuid", "==", u(ovs)]], "columns": ["bridges"], "until": "==",
            "rows": [{"bridges": ["set", []]}]}]);
        fails(&mut db, stale, "timed out");
    }

    #[test]
    fn removing_port_collects_port_and_interface() {
        let mut db = Db::new(Schema::vswitch());
        let (ovs, br, port0) = vswitch_with_bridge(&mut db);
        let r = add_port(&mut db, ovs, br, &[port0]);
        let (port, iface) = (uuid_in(&r[2]), uuid_in(&r[1]));
        // ovs-vsctl del-port: rewrite Bridge.ports without the port.
        let (_, change) = ok(
            &mut db,
            json!([{"op": "update", "table": "Bridge", "where": [["_uuid", "==", u(br)]],
                    "row": {"ports": ["set", [u(port0)]]}}]),
        );
        assert!(db.row("Port", &port).is_none());
        assert!(db.row("Interface", &iface).is_none());
        assert!(db.row("Port", &port0).is_some());
        let pc = &change.tables["Port"][&port];
        assert!(pc.old.is_some() && pc.new.is_none());
        assert!(change.tables["Interface"][&iface].new.is_none());
        // Deleting the bridge from Open_vSwitch collects all of it.
        ok(
            &mut db,
            json!([{"op": "mutate", "table": "Open_vSwitch", "where": [],
                    "mutations": [["bridges", "delete", ["set", [u(br)]]]]}]),
        );
        assert_eq!(
            db.n_rows("Bridge") + db.n_rows("Port") + db.n_rows("Interface"),
            0
        );
        assert_eq!(db.n_rows("Open_vSwitch"), 1);
        // Unreferenced inserts of non-root tables vanish at commit.
        let (_, change) = ok(
            &mut db,
            json!([{"op": "insert", "table": "Bridge", "row": {"name": "x"}}]),
        );
        assert!(change.is_empty());
        assert_eq!(db.n_rows("Bridge"), 0);
    }

    #[test]
    fn failed_op_rolls_back_and_pads() {
        let mut db = Db::new(test_schema());
        let r = fails(
            &mut db,
            json!([
                {"op": "insert", "table": "Root", "row": {"name": "a"}},
                {"op": "insert", "table": "Root", "row": {"nope": 1}},
                {"op": "comment", "comment": "x"},
            ]),
            "unknown column",
        );
        assert_eq!(r.len(), 3);
        assert!(r[0].get("uuid").is_some());
        assert_eq!(r[2], Value::Null);
        assert_eq!(db.n_rows("Root"), 0);
        fails(&mut db, json!([{"op": "frobnicate"}]), "syntax error");
        fails(
            &mut db,
            json!([{"op": "select", "table": "Nope", "where": []}]),
            "syntax error",
        );
        fails(
            &mut db,
            json!([{"op": "select", "table": "Root"}]),
            "syntax error",
        );
        fails(&mut db, json!([{"op": "abort"}]), "aborted");
        fails(&mut db, json!([{"op": "assert", "lock": "l"}]), "not owner");
        ok(
            &mut db,
            json!([{"op": "commit", "durable": true}, {"op": "comment", "comment": "c"}]),
        );
        // Values (and defaults) are checked against column constraints.
        fails(
            &mut db,
            json!([{"op": "insert", "table": "Root", "row": {"lim": 11}}]),
            "constraint violation",
        );
    }

    #[test]
    fn strong_references() {
        let mut db = Db::new(test_schema());
        let bogus = Uuid::random();
        let r = fails(
            &mut db,
            json!([{"op": "insert", "table": "Root", "row": {"name": "a", "kids": u(bogus)}}]),
            "referential integrity violation",
        );
        assert_eq!(r.len(), 2, "commit error follows the op results");
        assert!(r[1]["details"]
            .as_str()
            .unwrap()
            .contains(&bogus.to_string()));
        let (r, _) = ok(
            &mut db,
            json!([
                {"op": "insert", "table": "Root", "row": {"name": "a", "kids": ["named-uuid", "k"]}},
                {"op": "insert", "table": "Kid", "uuid-name": "k", "row": {"n": 1}},
            ]),
        );
        let kid = uuid_in(&r[1]);
        fails(
            &mut db,
            json!([{"op": "delete", "table": "Kid", "where": [["_uuid", "==", u(kid)]]}]),
            "referential integrity violation",
        );
        // Deleting the referrer too is fine (and the kid would be collected).
        let (r, change) = ok(
            &mut db,
            json!([{"op": "delete", "table": "Root", "where": []},
                   {"op": "delete", "table": "Kid", "where": []}]),
        );
        assert_eq!(r, vec![json!({"count": 1}), json!({"count": 1})]);
        assert_eq!(change.tables["Kid"].len(), 1);
        assert_eq!(db.n_rows("Kid"), 0);
    }

    #[test]
    fn gc_cascades_through_chains() {
        let mut db = Db::new(test_schema());
        ok(
            &mut db,
            json!([
                {"op": "insert", "table": "Root", "row": {"name": "a", "kids": ["named-uuid", "k1"]}},
                {"op": "insert", "table": "Kid", "uuid-name": "k1", "row": {"n": 1, "sub": ["named-uuid", "k2"]}},
                {"op": "insert", "table": "Kid", "uuid-name": "k2", "row": {"n": 2}},
            ]),
        );
        assert_eq!(db.n_rows("Kid"), 2);
        ok(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [["name", "==", "a"]],
                    "row": {"kids": ["set", []]}}]),
        );
        assert_eq!(db.n_rows("Kid"), 0);
    }

    #[test]
    fn weak_references() {
        let mut db = Db::new(test_schema());
        let (r, _) = ok(
            &mut db,
            json!([
                {"op": "insert", "table": "Other", "uuid-name": "o1", "row": {"n": 1}},
                {"op": "insert", "table": "Other", "uuid-name": "o2", "row": {"n": 2}},
                {"op": "insert", "table": "Root",
                 "row": {"name": "a", "weak": ["set", [["named-uuid", "o1"], ["named-uuid", "o2"],
                                                      ["uuid", Uuid::random().to_string()]]]}},
            ]),
        );
        let (o1, o2, root) = (uuid_in(&r[0]), uuid_in(&r[1]), uuid_in(&r[2]));
        // The dangling one was dropped at commit.
        assert_eq!(db.row("Root", &root).unwrap().get("weak").unwrap().len(), 2);
        let (_, change) = ok(
            &mut db,
            json!([{"op": "delete", "table": "Other", "where": [["_uuid", "==", u(o1)]]}]),
        );
        let w = db.row("Root", &root).unwrap().get("weak").unwrap();
        assert_eq!(w.as_uuid(), Some(o2));
        assert!(change.tables["Root"].contains_key(&root));
        // A weak reference with min 1 cannot lose its target.
        ok(
            &mut db,
            json!([{"op": "insert", "table": "Must", "row": {"o": u(o2)}}]),
        );
        fails(
            &mut db,
            json!([{"op": "delete", "table": "Other", "where": [["_uuid", "==", u(o2)]]}]),
            "constraint violation",
        );
    }

    #[test]
    fn indexes_and_max_rows() {
        let mut db = Db::new(test_schema());
        ok(
            &mut db,
            json!([{"op": "insert", "table": "Root", "row": {"name": "a"}},
                           {"op": "insert", "table": "Root", "row": {"name": "b"}}]),
        );
        fails(
            &mut db,
            json!([{"op": "insert", "table": "Root", "row": {"name": "a"}}]),
            "constraint violation",
        );
        fails(
            &mut db,
            json!([{"op": "insert", "table": "Root", "row": {"name": "c"}},
                   {"op": "insert", "table": "Root", "row": {"name": "c"}}]),
            "constraint violation",
        );
        // Swapping names within one transaction is fine.
        ok(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [["name", "==", "a"]], "row": {"name": "t"}},
                   {"op": "update", "table": "Root", "where": [["name", "==", "b"]], "row": {"name": "a"}},
                   {"op": "update", "table": "Root", "where": [["name", "==", "t"]], "row": {"name": "b"}}]),
        );
        // Index lookups see the overlay.
        let (r, _) = ok(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [["name", "==", "a"]], "row": {"name": "z"}},
                   {"op": "select", "table": "Root", "where": [["name", "==", "z"]], "columns": ["name"]},
                   {"op": "select", "table": "Root", "where": [["name", "==", "a"]], "columns": ["name"]}]),
        );
        assert_eq!(r[1], json!({"rows": [{"name": "z"}]}));
        assert_eq!(r[2], json!({"rows": []}));
        ok(
            &mut db,
            json!([{"op": "insert", "table": "Other", "row": {}},
                           {"op": "insert", "table": "Other", "row": {}}]),
        );
        fails(
            &mut db,
            json!([{"op": "insert", "table": "Other", "row": {}}]),
            "constraint violation",
        );
        ok(
            &mut db,
            json!([{"op": "delete", "table": "Other", "where": [["n", "==", 0]]}]),
        );
    }

    #[test]
    fn select_and_conditions() {
        let mut db = Db::new(test_schema());
        ok(
            &mut db,
            json!([
                {"op": "insert", "table": "Root", "row": {"name": "a", "i": 1, "r": 0.5, "s": ["set", [1, 2]],
                  "m": ["map", [["k", "v"]]]}},
                {"op": "insert", "table": "Root", "row": {"name": "b", "i": 5, "s": 3}},
            ]),
        );
        let names = |db: &mut Db, w: Value| -> Vec<String> {
            let (r, _) = ok(
                db,
                json!([{"op": "select", "table": "Root", "where": w, "columns": ["name"]}]),
            );
            let mut v: Vec<String> = r[0]["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["name"].as_str().unwrap().to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&mut db, json!([["i", "<", 3]])), ["a"]);
        assert_eq!(
            names(&mut db, json!([["i", ">=", 1], ["i", "<=", 5]])),
            ["a", "b"]
        );
        assert_eq!(names(&mut db, json!([["i", "!=", 1]])), ["b"]);
        assert_eq!(names(&mut db, json!([["r", ">", 0.1]])), ["a"]);
        assert_eq!(names(&mut db, json!([["s", "includes", 2]])), ["a"]);
        assert_eq!(
            names(&mut db, json!([["s", "excludes", ["set", [1, 2]]]])),
            ["b"]
        );
        assert_eq!(
            names(&mut db, json!([["m", "includes", ["map", [["k", "v"]]]]])),
            ["a"]
        );
        assert_eq!(names(&mut db, json!([["s", "==", ["set", [1, 2]]]])), ["a"]);
        assert_eq!(names(&mut db, json!([true])), ["a", "b"]);
        assert!(names(&mut db, json!([false])).is_empty());
        fails(
            &mut db,
            json!([{"op": "select", "table": "Root", "where": [["s", "<", 1]]}]),
            "syntax error",
        );
        // Without columns, select returns _uuid, _version and every column.
        let (r, _) = ok(
            &mut db,
            json!([{"op": "select", "table": "Root", "where": [["name", "==", "b"]]}]),
        );
        let row = &r[0]["rows"][0];
        assert!(row["_uuid"][1].is_string() && row["_version"][1].is_string());
        assert_eq!(row["s"], json!(3));
        assert_eq!(row["m"], json!(["map", []]));
        assert_eq!(row.as_object().unwrap().len(), 13);
        let uuid = Uuid::parse(row["_uuid"][1].as_str().unwrap()).unwrap();
        assert_eq!(names(&mut db, json!([["_uuid", "==", u(uuid)]])), ["b"]);
        assert_eq!(names(&mut db, json!([["_uuid", "!=", u(uuid)]])), ["a"]);
    }

    #[test]
    fn update_semantics() {
        let mut db = Db::new(test_schema());
        let (r, _) = ok(
            &mut db,
            json!([{"op": "insert", "table": "Root", "row": {"name": "a", "fixed": "f"}}]),
        );
        let root = uuid_in(&r[0]);
        let v0 = db.row("Root", &root).unwrap().version;
        fails(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [], "row": {"fixed": "g"}}]),
            "constraint violation",
        );
        fails(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [], "row": {"_uuid": u(root)}}]),
            "constraint violation",
        );
        // Same value: counted, but not a change.
        let (r, change) = ok(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [], "row": {"name": "a"}}]),
        );
        assert_eq!(r[0], json!({"count": 1}));
        assert!(change.is_empty());
        assert_eq!(db.row("Root", &root).unwrap().version, v0);
        let (_, change) = ok(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [], "row": {"i": 7}}]),
        );
        let rc = &change.tables["Root"][&root];
        assert_ne!(rc.new.as_ref().unwrap().version, v0);
        assert_eq!(rc.old.as_ref().unwrap().version, v0);
        // Caller-chosen uuids.
        let mine = Uuid::random();
        let (r, _) = ok(
            &mut db,
            json!([{"op": "insert", "table": "Root", "uuid": mine.to_string(), "row": {"name": "m"}}]),
        );
        assert_eq!(uuid_in(&r[0]), mine);
        fails(
            &mut db,
            json!([{"op": "insert", "table": "Root", "uuid": mine.to_string(), "row": {"name": "n"}}]),
            "duplicate uuid",
        );
        fails(
            &mut db,
            json!([{"op": "insert", "table": "Root", "uuid-name": "x", "row": {"name": "p"}},
                   {"op": "insert", "table": "Root", "uuid-name": "x", "row": {"name": "q"}}]),
            "duplicate uuid-name",
        );
    }

    #[test]
    fn mutations() {
        let mut db = Db::new(test_schema());
        ok(
            &mut db,
            json!([{"op": "insert", "table": "Root", "row": {"name": "a", "i": 10, "r": 1.5,
                    "s": ["set", [1, 2]], "m": ["map", [["a", "1"], ["b", "2"]]], "lim": 5}}]),
        );
        let get = |db: &Db, c: &str| db.rows("Root").next().unwrap().get(c).unwrap().clone();
        let m = |db: &mut Db, muts: Value| {
            ok(
                db,
                json!([{"op": "mutate", "table": "Root", "where": [], "mutations": muts}]),
            )
        };
        m(
            &mut db,
            json!([
                ["i", "+=", 5],
                ["i", "*=", 2],
                ["i", "-=", 1],
                ["i", "/=", 2],
                ["i", "%=", 4]
            ]),
        );
        assert_eq!(get(&db, "i"), Datum::integer(2)); // ((10+5)*2-1)/2 % 4
        m(&mut db, json!([["r", "*=", 2]]));
        assert_eq!(get(&db, "r"), Datum::set([Atom::Real(3.0)]));
        m(&mut db, json!([["s", "+=", 10]]));
        assert_eq!(
            get(&db, "s"),
            Datum::set([Atom::Integer(11), Atom::Integer(12)])
        );
        m(
            &mut db,
            json!([["s", "insert", ["set", [1, 11]]], ["s", "delete", 12]]),
        );
        assert_eq!(
            get(&db, "s"),
            Datum::set([Atom::Integer(1), Atom::Integer(11)])
        );
        m(
            &mut db,
            json!([["m", "insert", ["map", [["a", "X"], ["c", "3"]]]]]),
        );
        let s = |x: &str| Atom::String(x.into());
        assert_eq!(
            get(&db, "m"),
            Datum::map([(s("a"), s("1")), (s("b"), s("2")), (s("c"), s("3"))])
        );
        m(
            &mut db,
            json!([
                ["m", "delete", ["set", ["a"]]],
                ["m", "delete", ["map", [["b", "2"], ["c", "9"]]]]
            ]),
        );
        assert_eq!(get(&db, "m"), Datum::map([(s("c"), s("3"))]));
        let fail = |db: &mut Db, muts: Value, tag: &str| {
            fails(
                db,
                json!([{"op": "mutate", "table": "Root", "where": [], "mutations": muts}]),
                tag,
            )
        };
        fail(&mut db, json!([["i", "/=", 0]]), "domain error");
        fail(&mut db, json!([["i", "+=", i64::MAX]]), "range error");
        fail(&mut db, json!([["lim", "+=", 6]]), "constraint violation");
        fail(
            &mut db,
            json!([["s2", "insert", ["set", ["a", "b", "c"]]]]),
            "syntax error",
        );
        m(&mut db, json!([["s2", "insert", ["set", ["a", "b"]]]]));
        fail(
            &mut db,
            json!([["s2", "insert", "c"]]),
            "constraint violation",
        );
        fail(
            &mut db,
            json!([["s", "+=", 10], ["s", "*=", 0]]),
            "constraint violation",
        );
        fail(
            &mut db,
            json!([["fixed", "insert", "x"]]),
            "constraint violation",
        );
        fail(&mut db, json!([["name", "+=", 1]]), "syntax error");
        fail(&mut db, json!([["r", "%=", 1]]), "syntax error");
    }

    #[test]
    fn wait_outcomes() {
        let mut db = Db::new(test_schema());
        ok(
            &mut db,
            json!([{"op": "insert", "table": "Root", "row": {"name": "a", "i": 1}},
                           {"op": "insert", "table": "Root", "row": {"name": "b", "i": 1}}]),
        );
        let wait = |timeout: Option<i64>, until: &str, rows: Value| {
            let mut w = json!({"op": "wait", "table": "Root", "where": [["i", "==", 1]],
                               "columns": ["i"], "until": until, "rows": rows});
            if let Some(t) = timeout {
                w["timeout"] = json!(t);
            }
            json!([w, {"op": "insert", "table": "Root", "row": {"name": Uuid::random().to_string()}}])
        };
        // Multiset: two rows with i = 1.
        ok(&mut db, wait(Some(0), "==", json!([{"i": 1}, {"i": 1}])));
        fails(&mut db, wait(Some(0), "==", json!([{"i": 1}])), "timed out");
        ok(&mut db, wait(Some(0), "!=", json!([{"i": 1}])));
        let ops = wait(Some(1000), "==", json!([]));
        assert!(matches!(
            db.transact(ops.as_array().unwrap()),
            TxnOutcome::Blocked
        ));
        let ops = wait(None, "==", json!([]));
        assert!(matches!(
            db.transact(ops.as_array().unwrap()),
            TxnOutcome::Blocked
        ));
        assert_eq!(db.n_rows("Root"), 4);
        fails(&mut db, wait(Some(0), "<", json!([])), "syntax error");
    }

    #[test]
    fn snapshot_round_trip() {
        let mut db = Db::new(Schema::vswitch());
        let (ovs, br, port0) = vswitch_with_bridge(&mut db);
        add_port(&mut db, ovs, br, &[port0]);
        ok(
            &mut db,
            json!([{"op": "mutate", "table": "Open_vSwitch", "where": [],
                    "mutations": [["external_ids", "insert", ["map", [["system-id", "x"]]]],
                                  ["statistics", "insert", ["map", [["cpu", "2"]]]]]}]),
        );
        let snap = db.snapshot();
        assert!(snap["Open_vSwitch"][ovs.to_string()]
            .get("statistics")
            .is_none());
        let back = Db::restore(Schema::vswitch(), &snap).unwrap();
        assert_eq!(back.snapshot(), snap);
        assert_eq!(back.n_rows("Interface"), 2);
        assert!(back
            .row("Open_vSwitch", &ovs)
            .unwrap()
            .get("statistics")
            .unwrap()
            .is_empty());
        // The restored database keeps its invariants: GC still works.
        let mut back = back;
        ok(
            &mut back,
            json!([{"op": "update", "table": "Bridge", "where": [], "row": {"ports": ["set", [u(port0)]]}}]),
        );
        assert_eq!(back.n_rows("Port"), 1);
        // A dangling strong reference rejects the snapshot.
        let mut bad = snap.clone();
        bad["Bridge"][br.to_string()]["ports"] = json!(["uuid", Uuid::random().to_string()]);
        assert_eq!(
            Db::restore(Schema::vswitch(), &bad).unwrap_err().error,
            "referential integrity violation"
        );
        let mut bad = snap;
        bad["Nope"] = json!({});
        assert!(Db::restore(Schema::vswitch(), &bad).is_err());
    }

    #[test]
    fn named_uuid_forward_reference_and_unknown() {
        let mut db = Db::new(test_schema());
        let (r, _) = ok(
            &mut db,
            json!([
                {"op": "insert", "table": "Root", "row": {"name": "a"}},
                {"op": "update", "table": "Root", "where": [["name", "==", "a"]],
                 "row": {"kids": ["named-uuid", "later"]}},
                {"op": "insert", "table": "Kid", "uuid-name": "later", "row": {}},
            ]),
        );
        let kid = uuid_in(&r[2]);
        assert_eq!(
            db.rows("Root")
                .next()
                .unwrap()
                .get("kids")
                .unwrap()
                .as_uuid(),
            Some(kid)
        );
        fails(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [], "row": {"kids": ["named-uuid", "nope"]}}]),
            "syntax error",
        );
        assert_eq!(db.rows("Nope").count(), 0);
    }
}
