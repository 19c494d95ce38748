//! Monitors (RFC 7047 §4.1.5, and `monitor_cond` of ovsdb-server(7)).
//!
//! # What?
//! A [`Monitor`] is one client's monitor request, parsed: per table, the
//! columns to report, which kinds of change to report (`select`: initial,
//! insert, delete, modify) and, for [`MonitorVersion::V2`], a condition on
//! the rows. [`Monitor::initial`] gives the reply's initial contents,
//! [`Monitor::update`] the params of the notification for one committed
//! [`Change`], [`Monitor::cond_change`] handles `monitor_cond_change`.
//!
//! # Design
//! The monitor keeps no copy of the data: a [`Change`] carries the old and
//! new rows, from which both notification formats follow.
//! - V1 (`monitor` → `update`): `{"new": row}` for initial rows and
//!   inserts, `{"old": row}` for deletes, and for a modify `"new"` with
//!   every monitored column plus `"old"` with the monitored columns that
//!   changed.
//! - V2 (`monitor_cond` → `update2`): `{"initial": row}` / `{"insert":
//!   row}` omitting columns at their default value, `{"delete": null}`,
//!   and `{"modify": diff}` with, per changed column, the new value
//!   (scalars), the symmetric difference (sets), or the pairs added or
//!   changed (new value) and removed (old value) (maps). A modify that
//!   moves a row into the condition is reported as an insert, out of it as
//!   a delete.
//!
//! Without `columns`, a request monitors every declared column and
//! `_version` (not `_uuid`), as ovsdb-server does. V2 conditions of one
//! table are ORed: a row is reported when any clause holds, and a request
//! without `where` (or with an empty one) selects every row.
//!
//! # Invariants
//! `update` reports a row only if some monitored column changed (or it
//! entered or left the condition) and the kind of change is selected.
//!
//! # Thread-safety
//! Plain data; the server keeps one per monitor and calls it after each
//! commit, in commit order.
//!
//! # Limits
//! `initial` and `cond_change` scan the monitored tables (O(table), as
//! they must); `update` is O(changed rows × monitored columns).

use super::condition::Condition;
use super::db::{Change, Db, Row};
use super::error::OvsdbError;
use super::schema::TableSchema;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The monitor protocol flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorVersion {
    /// `monitor`, notifications are `update`.
    V1,
    /// `monitor_cond`, notifications are `update2`.
    V2,
}

/// Which kinds of change a request reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Select {
    initial: bool,
    insert: bool,
    delete: bool,
    modify: bool,
}

impl Select {
    const ALL: Select = Select {
        initial: true,
        insert: true,
        delete: true,
        modify: true,
    };

    fn union(self, o: Select) -> Select {
        Select {
            initial: self.initial || o.initial,
            insert: self.insert || o.insert,
            delete: self.delete || o.delete,
            modify: self.modify || o.modify,
        }
    }

    fn parse(v: Option<&Value>, table: &str) -> Result<Select, OvsdbError> {
        let Some(v) = v else { return Ok(Select::ALL) };
        let obj = v.as_object().ok_or_else(|| {
            OvsdbError::syntax(format!("table {table}: select must be an object"))
        })?;
        let flag = |k: &str| match obj.get(k) {
            None => Ok(true),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(OvsdbError::syntax(format!(
                "table {table}: select {k} must be a boolean"
            ))),
        };
        Ok(Select {
            initial: flag("initial")?,
            insert: flag("insert")?,
            delete: flag("delete")?,
            modify: flag("modify")?,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Initial,
    Insert,
    Delete,
    Modify,
}

impl Kind {
    fn selected(self, s: Select) -> bool {
        match self {
            Kind::Initial => s.initial,
            Kind::Insert => s.insert,
            Kind::Delete => s.delete,
            Kind::Modify => s.modify,
        }
    }
}

#[derive(Clone, Debug)]
struct MonColumn {
    name: String,
    select: Select,
}

#[derive(Clone, Debug)]
struct MonTable {
    columns: Vec<MonColumn>,
    select: Select,
    /// V2 only; `None` selects every row.
    cond: Option<Condition>,
}

/// One monitor: what a client asked to be told about.
///
/// ```
/// use rvs::ovsdb::{Db, Monitor, MonitorVersion, Schema};
/// use serde_json::json;
/// let mut db = Db::new(Schema::vswitch());
/// let m = Monitor::new(&db, &json!({"Bridge": {"columns": ["name"]}}), MonitorVersion::V2).unwrap();
/// let ops = [json!({"op": "insert", "table": "Bridge", "row": {"name": "br0"}})];
/// let rvs::ovsdb::TxnOutcome::Done { change, .. } = db.transact(&ops) else { panic!() };
/// // Bridge is not a root table: an unreferenced bridge is collected at once.
/// assert!(m.update(&change).is_none());
/// ```
#[derive(Clone, Debug)]
pub struct Monitor {
    version: MonitorVersion,
    schema: Arc<super::schema::Schema>,
    tables: BTreeMap<String, MonTable>,
}

fn requests_of(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

/// The combined (ORed) condition of a table's requests.
fn parse_where(ts: &TableSchema, reqs: &[&Value]) -> Result<Option<Condition>, OvsdbError> {
    let mut all = Condition::default();
    let named = HashMap::new();
    let mut any_unconditional = false;
    for r in reqs {
        match r.get("where") {
            None => any_unconditional = true,
            Some(w) => {
                let c = Condition::parse(ts, w, &named)?;
                if c.clauses.is_empty() {
                    any_unconditional = true;
                }
                all.clauses.extend(c.clauses);
            }
        }
    }
    Ok((!any_unconditional).then_some(all))
}

impl Monitor {
    /// Parses `<monitor-requests>`: table name → request or array of
    /// requests, each with optional `columns`, `select` and (V2) `where`.
    pub fn new(db: &Db, requests: &Value, version: MonitorVersion) -> Result<Monitor, OvsdbError> {
        let schema = db.schema().clone();
        let obj = requests
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("monitor requests must be an object"))?;
        let mut tables = BTreeMap::new();
        for (tname, reqv) in obj {
            let ts = schema
                .table(tname)
                .ok_or_else(|| OvsdbError::syntax(format!("no table named {tname}")))?;
            let reqs = requests_of(reqv);
            let mut columns: Vec<MonColumn> = Vec::new();
            let mut select = Select::default();
            for r in &reqs {
                if !r.is_object() {
                    return Err(OvsdbError::syntax(format!(
                        "table {tname}: monitor request must be an object"
                    )));
                }
                let s = Select::parse(r.get("select"), tname)?;
                select = select.union(s);
                let names: Vec<String> = match r.get("columns") {
                    None => ts
                        .columns
                        .keys()
                        .cloned()
                        .chain(std::iter::once("_version".to_string()))
                        .collect(),
                    Some(Value::Array(cols)) => {
                        let mut out = Vec::new();
                        for c in cols {
                            let c = c.as_str().ok_or_else(|| {
                                OvsdbError::syntax("array of column names expected")
                            })?;
                            if ts.column(c).is_none() {
                                return Err(OvsdbError::syntax(format!(
                                    "{c} is not a valid column name"
                                )));
                            }
                            out.push(c.to_string());
                        }
                        out
                    }
                    Some(_) => return Err(OvsdbError::syntax("array of column names expected")),
                };
                for n in names {
                    if columns.iter().any(|c| c.name == n) {
                        return Err(OvsdbError::syntax(format!(
                            "column {n} mentioned more than once"
                        )));
                    }
                    columns.push(MonColumn { name: n, select: s });
                }
            }
            let cond = match version {
                MonitorVersion::V1 => None,
                MonitorVersion::V2 => parse_where(ts, &reqs)?,
            };
            tables.insert(
                tname.clone(),
                MonTable {
                    columns,
                    select,
                    cond,
                },
            );
        }
        Ok(Monitor {
            version,
            schema,
            tables,
        })
    }

    /// The protocol flavour.
    pub fn version(&self) -> MonitorVersion {
        self.version
    }

    /// Whether `table` is monitored.
    pub fn monitors(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    fn matches(mt: &MonTable, row: &Row) -> bool {
        mt.cond.as_ref().is_none_or(|c| c.matches_any(row))
    }

    /// A whole row: the monitored columns selected for `kind`; for V2
    /// without those at their default value.
    fn row_json(&self, ts: &TableSchema, mt: &MonTable, row: &Row, kind: Kind) -> Value {
        let mut m = Map::new();
        for c in mt.columns.iter().filter(|c| kind.selected(c.select)) {
            let (Some(cs), Some(v)) = (ts.column(&c.name), row.value(&c.name)) else {
                continue;
            };
            if self.version == MonitorVersion::V2 && v.is_default(&cs.ty) {
                continue;
            }
            m.insert(c.name.clone(), v.to_json(&cs.ty));
        }
        Value::Object(m)
    }

    /// The initial `<table-updates>` (V1) or `<table-updates2>` (V2):
    /// every row matching, for tables whose `select` has `initial`.
    pub fn initial(&self, db: &Db) -> Value {
        let mut out = Map::new();
        for (tname, mt) in &self.tables {
            if !mt.select.initial {
                continue;
            }
            let Some(ts) = self.schema.table(tname) else {
                continue;
            };
            let mut rows = Map::new();
            for row in db.rows(tname).filter(|r| Self::matches(mt, r)) {
                let r = self.row_json(ts, mt, row, Kind::Initial);
                let upd = match self.version {
                    MonitorVersion::V1 => json!({"new": r}),
                    MonitorVersion::V2 => json!({"initial": r}),
                };
                rows.insert(row.uuid.to_string(), upd);
            }
            if !rows.is_empty() {
                out.insert(tname.clone(), Value::Object(rows));
            }
        }
        Value::Object(out)
    }

    /// The `update`/`update2` params object for a commit, or `None` if the
    /// commit changed nothing this monitor reports.
    pub fn update(&self, change: &Change) -> Option<Value> {
        let mut out = Map::new();
        for (tname, rows) in &change.tables {
            let (Some(mt), Some(ts)) = (self.tables.get(tname), self.schema.table(tname)) else {
                continue;
            };
            let mut tout = Map::new();
            for (uuid, rc) in rows {
                if let Some(u) = self.row_update(ts, mt, rc.old.as_ref(), rc.new.as_ref()) {
                    tout.insert(uuid.to_string(), u);
                }
            }
            if !tout.is_empty() {
                out.insert(tname.clone(), Value::Object(tout));
            }
        }
        (!out.is_empty()).then_some(Value::Object(out))
    }

    fn row_update(
        &self,
        ts: &TableSchema,
        mt: &MonTable,
        old: Option<&Row>,
        new: Option<&Row>,
    ) -> Option<Value> {
        let mut kind = match (old, new) {
            (None, Some(_)) => Kind::Insert,
            (Some(_), None) => Kind::Delete,
            (Some(_), Some(_)) => Kind::Modify,
            (None, None) => return None,
        };
        if self.version == MonitorVersion::V2 {
            let om = old.is_some_and(|r| Self::matches(mt, r));
            let nm = new.is_some_and(|r| Self::matches(mt, r));
            kind = match (kind, om, nm) {
                (_, false, false) => return None,
                (Kind::Insert, _, false) | (Kind::Delete, false, _) => return None,
                (Kind::Modify, false, true) => Kind::Insert,
                (Kind::Modify, true, false) => Kind::Delete,
                (k, _, _) => k,
            };
        }
        if !kind.selected(mt.select) {
            return None;
        }
        match (self.version, kind) {
            (MonitorVersion::V1, Kind::Insert) => {
                Some(json!({"new": self.row_json(ts, mt, new?, kind)}))
            }
            (MonitorVersion::V1, Kind::Delete) => {
                Some(json!({"old": self.row_json(ts, mt, old?, kind)}))
            }
            (MonitorVersion::V2, Kind::Insert) => {
                Some(json!({"insert": self.row_json(ts, mt, new?, kind)}))
            }
            (MonitorVersion::V2, Kind::Delete) => Some(json!({"delete": null})),
            (_, Kind::Modify) => {
                let (old, new) = (old?, new?);
                let mut olds = Map::new();
                let mut news = Map::new();
                let mut diffs = Map::new();
                for c in mt.columns.iter().filter(|c| c.select.modify) {
                    let Some(cs) = ts.column(&c.name) else {
                        continue;
                    };
                    let (Some(o), Some(n)) = (old.value(&c.name), new.value(&c.name)) else {
                        continue;
                    };
                    if self.version == MonitorVersion::V1 {
                        news.insert(c.name.clone(), n.to_json(&cs.ty));
                    }
                    if o != n {
                        olds.insert(c.name.clone(), o.to_json(&cs.ty));
                        diffs.insert(c.name.clone(), o.diff(&n, &cs.ty).to_json(&cs.ty));
                    }
                }
                if olds.is_empty() {
                    return None;
                }
                Some(match self.version {
                    MonitorVersion::V1 => json!({"old": olds, "new": news}),
                    MonitorVersion::V2 => json!({"modify": diffs}),
                })
            }
            (_, Kind::Initial) => None,
        }
    }

    /// `monitor_cond_change`: replaces the conditions of the tables named
    /// in `requests` (table → request or array of requests with `where`)
    /// and returns the `update2` for rows entering (as inserts) or leaving
    /// (as deletes) the monitored set, `None` if there are none.
    pub fn cond_change(&mut self, db: &Db, requests: &Value) -> Result<Option<Value>, OvsdbError> {
        if self.version != MonitorVersion::V2 {
            return Err(OvsdbError::new(
                "not supported",
                "monitor_cond_change requires a monitor_cond monitor",
            ));
        }
        let obj = requests
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("monitor_cond_change requests must be an object"))?;
        // Parse everything before changing anything.
        let mut new_conds = Vec::with_capacity(obj.len());
        for (tname, reqv) in obj {
            if !self.tables.contains_key(tname) {
                return Err(OvsdbError::syntax(format!(
                    "table {tname} is not monitored"
                )));
            }
            let ts = self
                .schema
                .table(tname)
                .ok_or_else(|| OvsdbError::syntax(format!("no table named {tname}")))?;
            new_conds.push((tname.clone(), parse_where(ts, &requests_of(reqv))?));
        }
        let mut out = Map::new();
        for (tname, cond) in new_conds {
            let Some(ts) = self.schema.table(&tname) else {
                continue;
            };
            let Some(mt) = self.tables.get_mut(&tname) else {
                continue;
            };
            let old = std::mem::replace(&mut mt.cond, cond);
            let mt = &self.tables[&tname];
            let mut tout = Map::new();
            for row in db.rows(&tname) {
                let was = old.as_ref().is_none_or(|c| c.matches_any(row));
                let is = Self::matches(mt, row);
                let upd = match (was, is) {
                    (false, true) if mt.select.insert => {
                        json!({"insert": self.row_json(ts, mt, row, Kind::Insert)})
                    }
                    (true, false) if mt.select.delete => json!({"delete": null}),
                    _ => continue,
                };
                tout.insert(row.uuid.to_string(), upd);
            }
            if !tout.is_empty() {
                out.insert(tname, Value::Object(tout));
            }
        }
        Ok((!out.is_empty()).then_some(Value::Object(out)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::datum::Uuid;
    use super::super::db::tests::{ok, test_schema, uuid_in};
    use super::*;
    use serde_json::json;

    fn setup() -> (Db, Uuid) {
        let mut db = Db::new(test_schema());
        let (r, _) = ok(
            &mut db,
            json!([{"op": "insert", "table": "Root",
                    "row": {"name": "a", "i": 1, "s": ["set", [1, 2]], "m": ["map", [["x", "1"], ["y", "2"]]]}}]),
        );
        (db, uuid_in(&r[0]))
    }

    #[test]
    fn v1_initial_insert_modify_delete() {
        let (mut db, a) = setup();
        let req = json!({"Root": {"columns": ["name", "i", "s"]}});
        let m = Monitor::new(&db, &req, MonitorVersion::V1).unwrap();
        let a_s = a.to_string();
        assert_eq!(
            m.initial(&db),
            json!({"Root": {a_s.clone(): {"new": {"name": "a", "i": 1, "s": ["set", [1, 2]]}}}})
        );
        let (_, c) = ok(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [], "row": {"i": 2}}]),
        );
        assert_eq!(
            m.update(&c).unwrap(),
            json!({"Root": {a_s.clone(): {"old": {"i": 1}, "new": {"name": "a", "i": 2, "s": ["set", [1, 2]]}}}})
        );
        // A change of an unmonitored column is not reported.
        let (_, c) = ok(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [], "row": {"r": 2.5}}]),
        );
        assert!(!c.is_empty());
        assert!(m.update(&c).is_none());
        let (r, c) = ok(
            &mut db,
            json!([{"op": "insert", "table": "Root", "row": {"name": "b"}}]),
        );
        let b = uuid_in(&r[0]).to_string();
        assert_eq!(
            m.update(&c).unwrap(),
            json!({"Root": {b.clone(): {"new": {"name": "b", "i": 0, "s": ["set", []]}}}})
        );
        let (_, c) = ok(
            &mut db,
            json!([{"op": "delete", "table": "Root", "where": [["name", "==", "b"]]}]),
        );
        assert_eq!(
            m.update(&c).unwrap(),
            json!({"Root": {b: {"old": {"name": "b", "i": 0, "s": ["set", []]}}}})
        );
    }

    #[test]
    fn default_columns_include_version() {
        let (mut db, a) = setup();
        let m = Monitor::new(&db, &json!({"Root": {}}), MonitorVersion::V1).unwrap();
        let init = m.initial(&db);
        let row = &init["Root"][a.to_string()]["new"];
        assert!(row.get("_version").is_some() && row.get("_uuid").is_none());
        assert_eq!(row.as_object().unwrap().len(), 12);
        let (_, c) = ok(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [], "row": {"i": 9}}]),
        );
        let old = &m.update(&c).unwrap()["Root"][a.to_string()]["old"];
        assert_eq!(old.as_object().unwrap().len(), 2, "{old}");
    }

    #[test]
    fn select_flags() {
        let (mut db, _) = setup();
        let req =
            json!({"Root": [{"columns": ["name"], "select": {"initial": false, "modify": false}}]});
        let m = Monitor::new(&db, &req, MonitorVersion::V1).unwrap();
        assert_eq!(m.initial(&db), json!({}));
        let (_, c) = ok(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [], "row": {"name": "z"}}]),
        );
        assert!(m.update(&c).is_none());
        let (_, c) = ok(
            &mut db,
            json!([{"op": "delete", "table": "Root", "where": []}]),
        );
        assert!(m.update(&c).is_some());
        assert!(Monitor::new(&db, &json!({"Nope": {}}), MonitorVersion::V1).is_err());
        assert!(Monitor::new(
            &db,
            &json!({"Root": {"columns": ["zz"]}}),
            MonitorVersion::V1
        )
        .is_err());
        assert!(Monitor::new(
            &db,
            &json!({"Root": [{"columns": ["i"]}, {"columns": ["i"]}]}),
            MonitorVersion::V1
        )
        .is_err());
    }

    #[test]
    fn v2_rows_and_diffs() {
        let (mut db, a) = setup();
        let req = json!({"Root": {"columns": ["name", "i", "r", "s", "m"]}});
        let m = Monitor::new(&db, &req, MonitorVersion::V2).unwrap();
        let a_s = a.to_string();
        // Defaults (r = 0.0) omitted.
        assert_eq!(
            m.initial(&db),
            json!({"Root": {a_s.clone(): {"initial": {"name": "a", "i": 1, "s": ["set", [1, 2]],
                                                      "m": ["map", [["x", "1"], ["y", "2"]]]}}}})
        );
        let (_, c) = ok(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [],
                    "row": {"i": 0, "s": ["set", [2, 3]], "m": ["map", [["x", "1"], ["y", "9"], ["z", "3"]]]}}]),
        );
        assert_eq!(
            m.update(&c).unwrap(),
            json!({"Root": {a_s.clone(): {"modify": {"i": 0, "s": ["set", [1, 3]],
                                                     "m": ["map", [["y", "9"], ["z", "3"]]]}}}})
        );
        let (_, c) = ok(
            &mut db,
            json!([{"op": "mutate", "table": "Root", "where": [],
                    "mutations": [["m", "delete", ["set", ["x"]]], ["s", "delete", 3]]}]),
        );
        assert_eq!(
            m.update(&c).unwrap(),
            json!({"Root": {a_s.clone(): {"modify": {"s": 3, "m": ["map", [["x", "1"]]]}}}})
        );
        let (r, c) = ok(
            &mut db,
            json!([{"op": "insert", "table": "Root", "row": {"name": "b", "r": 1.5}}]),
        );
        let b = uuid_in(&r[0]).to_string();
        assert_eq!(
            m.update(&c).unwrap(),
            json!({"Root": {b.clone(): {"insert": {"name": "b", "r": 1.5}}}})
        );
        let (_, c) = ok(
            &mut db,
            json!([{"op": "delete", "table": "Root", "where": []}]),
        );
        assert_eq!(
            m.update(&c).unwrap(),
            json!({"Root": {a_s: {"delete": null}, b: {"delete": null}}})
        );
    }

    #[test]
    fn v2_conditions_and_cond_change() {
        let (mut db, a) = setup();
        let (r, _) = ok(
            &mut db,
            json!([{"op": "insert", "table": "Root", "row": {"name": "b", "i": 5}}]),
        );
        let b = uuid_in(&r[0]).to_string();
        let a_s = a.to_string();
        let req = json!({"Root": {"columns": ["name", "i"], "where": [["i", ">", 3]]}});
        let mut m = Monitor::new(&db, &req, MonitorVersion::V2).unwrap();
        assert_eq!(
            m.initial(&db),
            json!({"Root": {b.clone(): {"initial": {"name": "b", "i": 5}}}})
        );
        // a enters the condition: reported as an insert; b leaves: a delete.
        let (_, c) = ok(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [["name", "==", "a"]], "row": {"i": 4}},
                   {"op": "update", "table": "Root", "where": [["name", "==", "b"]], "row": {"i": 0}}]),
        );
        assert_eq!(
            m.update(&c).unwrap(),
            json!({"Root": {a_s.clone(): {"insert": {"name": "a", "i": 4}}, b.clone(): {"delete": null}}})
        );
        // Changes to rows outside the condition are not reported.
        let (_, c) = ok(
            &mut db,
            json!([{"op": "update", "table": "Root", "where": [["name", "==", "b"]], "row": {"i": 1}}]),
        );
        assert!(m.update(&c).is_none());
        // New condition: b (i = 1) enters, a (i = 4) leaves.
        let u = m
            .cond_change(&db, &json!({"Root": [{"where": [["i", "<", 2]]}]}))
            .unwrap()
            .unwrap();
        assert_eq!(
            u,
            json!({"Root": {a_s.clone(): {"delete": null}, b.clone(): {"insert": {"name": "b", "i": 1}}}})
        );
        // `false` matches nothing, `true` / [] everything.
        let u = m
            .cond_change(&db, &json!({"Root": [{"where": [false]}]}))
            .unwrap()
            .unwrap();
        assert_eq!(u, json!({"Root": {b.clone(): {"delete": null}}}));
        let u = m
            .cond_change(&db, &json!({"Root": [{"where": []}]}))
            .unwrap()
            .unwrap();
        assert_eq!(u["Root"].as_object().unwrap().len(), 2);
        assert!(m
            .cond_change(&db, &json!({"Root": [{"where": [true]}]}))
            .unwrap()
            .is_none());
        assert!(m
            .cond_change(&db, &json!({"Kid": [{"where": []}]}))
            .is_err());
        let mut v1 = Monitor::new(&db, &json!({"Root": {}}), MonitorVersion::V1).unwrap();
        assert_eq!(
            v1.cond_change(&db, &json!({})).unwrap_err().error,
            "not supported"
        );
    }

    #[test]
    fn vswitch_idl_style_monitor() {
        // ovsdb-idl asks monitor_cond with explicit columns per table.
        let mut db = Db::new(super::super::schema::Schema::vswitch());
        let req = json!({
            "Open_vSwitch": [{"columns": ["bridges", "cur_cfg", "next_cfg"]}],
            "Bridge": [{"columns": ["name", "ports"]}],
            "Port": [{"columns": ["interfaces", "name"]}],
            "Interface": [{"columns": ["name", "ofport"]}]});
        let m = Monitor::new(&db, &req, MonitorVersion::V2).unwrap();
        assert_eq!(m.initial(&db), json!({}));
        let (_, c) = super::super::db::tests::run(
            &mut db,
            json!([{"op": "insert", "table": "Open_vSwitch", "row": {"bridges": ["named-uuid", "b"]}},
                   {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": "br0"}}]),
        );
        let u = m.update(&c).unwrap();
        assert_eq!(
            u["Bridge"].as_object().unwrap().values().next().unwrap(),
            &json!({"insert": {"name": "br0"}})
        );
        let ovs = u["Open_vSwitch"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap();
        assert_eq!(ovs["insert"]["bridges"][0], "uuid");
        assert!(ovs["insert"].get("next_cfg").is_none());
    }
}
