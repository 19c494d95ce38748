//! Database schemas (RFC 7047 §3.2).
//!
//! # What?
//! [`Schema::parse`] turns a `.ovsschema` JSON document into typed tables,
//! columns and column types; [`Schema::vswitch`] is the embedded
//! Open_vSwitch schema that rvsd serves. The parsed JSON is kept as given
//! and returned by [`Schema::json`] for `get_schema`.
//!
//! # Design
//! Tables and columns live in `BTreeMap`s keyed by name, so iteration (and
//! therefore every JSON the engine writes) has a stable order. The two
//! implicit columns every table has, `_uuid` and `_version`, are not stored
//! in [`TableSchema::columns`] (rows keep them as [`Row::uuid`] and
//! [`Row::version`]); [`TableSchema::column`] resolves them alongside the
//! declared columns, so conditions, `select` and monitors accept them.
//!
//! # Invariants
//! After `parse` succeeds: every `refTable` names a table of the schema, only
//! uuid base types carry a `refTable`, `min <= 1`, `1 <= max`, `min <= max`,
//! every index names declared columns, no declared column starts with `_`.
//! If no table is marked `isRoot`, every table is a root (the backward
//! compatibility rule of ovsdb-server: no garbage collection at all).
//!
//! # Thread-safety
//! Immutable once parsed; shared as `Arc<Schema>`.
//!
//! [`Row::uuid`]: super::db::Row::uuid
//! [`Row::version`]: super::db::Row::version

use super::datum::{Atom, Datum};
use super::error::OvsdbError;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

/// A parsed database schema.
#[derive(Debug, Clone)]
pub struct Schema {
    /// The database name, e.g. "Open_vSwitch".
    pub name: String,
    /// The schema version, e.g. "8.3.1" ("" if the schema has none).
    pub version: String,
    /// The tables by name.
    pub tables: BTreeMap<String, TableSchema>,
    /// The JSON the schema was parsed from, served by `get_schema`.
    json: Value,
}

/// One table of a schema.
#[derive(Debug, Clone)]
pub struct TableSchema {
    /// The table name.
    pub name: String,
    /// The declared columns by name (without `_uuid` and `_version`).
    pub columns: BTreeMap<String, ColumnSchema>,
    /// Root tables are exempt from garbage collection.
    pub is_root: bool,
    /// The most rows the table may hold, if limited.
    pub max_rows: Option<u64>,
    /// Sets of columns whose values must be unique across rows.
    pub indexes: Vec<Vec<String>>,
}

/// One column of a table.
#[derive(Debug, Clone)]
pub struct ColumnSchema {
    /// The column name.
    pub name: String,
    /// The column type.
    pub ty: Type,
    /// Ephemeral columns are not persisted ([`Db::snapshot`] skips them).
    ///
    /// [`Db::snapshot`]: super::db::Db::snapshot
    pub ephemeral: bool,
    /// Immutable columns may be set by `insert` only.
    pub mutable: bool,
}

/// A column type: a set of `min..=max` keys, or a map when `value` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Type {
    /// The key (or element) type.
    pub key: BaseType,
    /// The value type, for maps.
    pub value: Option<BaseType>,
    /// Fewest elements (0 or 1).
    pub min: usize,
    /// Most elements; `usize::MAX` stands for "unlimited".
    pub max: usize,
}

/// An atomic type with its constraints.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseType {
    /// The atomic type.
    pub atomic: AtomicType,
    /// If set, the only values allowed.
    pub enum_: Option<Vec<Atom>>,
    /// Smallest integer allowed.
    pub min_integer: Option<i64>,
    /// Largest integer allowed.
    pub max_integer: Option<i64>,
    /// Smallest real allowed.
    pub min_real: Option<f64>,
    /// Largest real allowed.
    pub max_real: Option<f64>,
    /// Shortest string allowed, in Unicode characters.
    pub min_length: Option<usize>,
    /// Longest string allowed, in Unicode characters.
    pub max_length: Option<usize>,
    /// For uuids: the table the uuid refers to.
    pub ref_table: Option<String>,
    /// For references: strong (the default) or weak.
    pub ref_type: RefType,
}

/// The OVSDB atomic types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AtomicType {
    /// 64-bit signed integer.
    Integer,
    /// IEEE double.
    Real,
    /// true/false.
    Boolean,
    /// UTF-8 string.
    String,
    /// 128-bit UUID.
    Uuid,
}

/// Strength of a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefType {
    /// The referenced row may not be deleted while referenced; unreferenced
    /// rows of non-root tables are garbage collected.
    #[default]
    Strong,
    /// References to deleted rows are removed from the referring row.
    Weak,
}

impl AtomicType {
    /// The type's name in schema JSON.
    pub fn name(self) -> &'static str {
        match self {
            AtomicType::Integer => "integer",
            AtomicType::Real => "real",
            AtomicType::Boolean => "boolean",
            AtomicType::String => "string",
            AtomicType::Uuid => "uuid",
        }
    }

    fn from_name(s: &str) -> Option<AtomicType> {
        Some(match s {
            "integer" => AtomicType::Integer,
            "real" => AtomicType::Real,
            "boolean" => AtomicType::Boolean,
            "string" => AtomicType::String,
            "uuid" => AtomicType::Uuid,
            _ => return None,
        })
    }
}

impl BaseType {
    /// An unconstrained base type.
    pub fn new(atomic: AtomicType) -> BaseType {
        BaseType {
            atomic,
            enum_: None,
            min_integer: None,
            max_integer: None,
            min_real: None,
            max_real: None,
            min_length: None,
            max_length: None,
            ref_table: None,
            ref_type: RefType::Strong,
        }
    }

    /// The same atomic type without any constraint (nor reference).
    pub fn unconstrained(&self) -> BaseType {
        BaseType::new(self.atomic)
    }

    /// Whether this is a strong reference to some table.
    pub fn is_strong_ref(&self) -> bool {
        self.ref_table.is_some() && self.ref_type == RefType::Strong
    }

    fn parse(v: &Value, what: &str) -> Result<BaseType, OvsdbError> {
        let obj = match v {
            Value::String(s) => {
                return AtomicType::from_name(s)
                    .map(BaseType::new)
                    .ok_or_else(|| OvsdbError::syntax(format!("{what}: unknown type \"{s}\"")));
            }
            Value::Object(o) => o,
            _ => return Err(OvsdbError::syntax(format!("{what}: base type expected"))),
        };
        let atomic = obj
            .get("type")
            .and_then(Value::as_str)
            .and_then(AtomicType::from_name)
            .ok_or_else(|| OvsdbError::syntax(format!("{what}: missing or bad \"type\"")))?;
        let mut b = BaseType::new(atomic);
        let int = |k: &str| -> Result<Option<i64>, OvsdbError> {
            match obj.get(k) {
                None => Ok(None),
                Some(x) => x
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| OvsdbError::syntax(format!("{what}: {k} must be an integer"))),
            }
        };
        let real = |k: &str| -> Result<Option<f64>, OvsdbError> {
            match obj.get(k) {
                None => Ok(None),
                Some(x) => x
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| OvsdbError::syntax(format!("{what}: {k} must be a number"))),
            }
        };
        let len = |k: &str| -> Result<Option<usize>, OvsdbError> {
            match obj.get(k) {
                None => Ok(None),
                Some(x) => x
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| OvsdbError::syntax(format!("{what}: bad {k}"))),
            }
        };
        match atomic {
            AtomicType::Integer => {
                b.min_integer = int("minInteger")?;
                b.max_integer = int("maxInteger")?;
            }
            AtomicType::Real => {
                b.min_real = real("minReal")?;
                b.max_real = real("maxReal")?;
            }
            AtomicType::String => {
                b.min_length = len("minLength")?;
                b.max_length = len("maxLength")?;
            }
            AtomicType::Uuid => {
                if let Some(t) = obj.get("refTable") {
                    let t = t
                        .as_str()
                        .ok_or_else(|| OvsdbError::syntax(format!("{what}: bad refTable")))?;
                    b.ref_table = Some(t.to_string());
                    b.ref_type = match obj.get("refType").and_then(Value::as_str) {
                        None | Some("strong") => RefType::Strong,
                        Some("weak") => RefType::Weak,
                        Some(o) => {
                            return Err(OvsdbError::syntax(format!(
                                "{what}: refType must be \"strong\" or \"weak\", not \"{o}\""
                            )))
                        }
                    };
                }
            }
            AtomicType::Boolean => {}
        }
        if let Some(e) = obj.get("enum") {
            let ety = Type {
                key: BaseType::new(atomic),
                value: None,
                min: 0,
                max: usize::MAX,
            };
            let d = Datum::from_json(&ety, e, &HashMap::new())
                .map_err(|err| OvsdbError::syntax(format!("{what}: bad enum: {}", err.details)))?;
            b.enum_ = Some(d.keys);
        }
        Ok(b)
    }
}

impl Type {
    /// A scalar (exactly one element) of `atomic`.
    pub fn scalar(atomic: AtomicType) -> Type {
        Type {
            key: BaseType::new(atomic),
            value: None,
            min: 1,
            max: 1,
        }
    }

    /// Whether the type is a map (has a value type).
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    /// Whether the type holds exactly one element (min = max = 1, no value).
    pub fn is_scalar(&self) -> bool {
        self.min == 1 && self.max == 1 && self.value.is_none()
    }

    /// The same type with min 0, max unlimited and no constraints: the type
    /// of the argument of a set/map mutation or an `includes` condition.
    pub fn relaxed(&self) -> Type {
        Type {
            key: self.key.unconstrained(),
            value: self.value.as_ref().map(BaseType::unconstrained),
            min: 0,
            max: usize::MAX,
        }
    }

    fn parse(v: &Value, what: &str) -> Result<Type, OvsdbError> {
        let obj = match v {
            Value::String(_) => {
                return Ok(Type {
                    key: BaseType::parse(v, what)?,
                    value: None,
                    min: 1,
                    max: 1,
                })
            }
            Value::Object(o) => o,
            _ => return Err(OvsdbError::syntax(format!("{what}: type expected"))),
        };
        let key = BaseType::parse(
            obj.get("key")
                .ok_or_else(|| OvsdbError::syntax(format!("{what}: type has no key")))?,
            what,
        )?;
        let value = obj
            .get("value")
            .map(|v| BaseType::parse(v, what))
            .transpose()?;
        let min = match obj.get("min") {
            None => 1,
            Some(m) => m
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| OvsdbError::syntax(format!("{what}: bad min")))?,
        };
        let max = match obj.get("max") {
            None => 1,
            Some(Value::String(s)) if s == "unlimited" => usize::MAX,
            Some(m) => m
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| OvsdbError::syntax(format!("{what}: bad max")))?,
        };
        if min > 1 || max < 1 || min > max {
            return Err(OvsdbError::syntax(format!(
                "{what}: min {min} and max {max} are not valid (0 <= min <= 1 <= max)"
            )));
        }
        Ok(Type {
            key,
            value,
            min,
            max,
        })
    }
}

static IMPLICIT: OnceLock<[ColumnSchema; 2]> = OnceLock::new();

/// The implicit `_uuid` and `_version` columns.
fn implicit_columns() -> &'static [ColumnSchema; 2] {
    IMPLICIT.get_or_init(|| {
        let col = |name: &str| ColumnSchema {
            name: name.to_string(),
            ty: Type::scalar(AtomicType::Uuid),
            ephemeral: false,
            mutable: false,
        };
        [col("_uuid"), col("_version")]
    })
}

impl TableSchema {
    /// A declared column, or one of the implicit `_uuid`/`_version`.
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        match name {
            "_uuid" => Some(&implicit_columns()[0]),
            "_version" => Some(&implicit_columns()[1]),
            _ => self.columns.get(name),
        }
    }

    /// Names of all columns including `_uuid` and `_version`, as `select`
    /// without `columns` returns them.
    pub fn all_column_names(&self) -> impl Iterator<Item = &str> {
        ["_uuid", "_version"]
            .into_iter()
            .chain(self.columns.keys().map(String::as_str))
    }

    fn parse(name: &str, v: &Value) -> Result<TableSchema, OvsdbError> {
        let obj = v
            .as_object()
            .ok_or_else(|| OvsdbError::syntax(format!("table {name}: object expected")))?;
        let cols = obj
            .get("columns")
            .and_then(Value::as_object)
            .ok_or_else(|| OvsdbError::syntax(format!("table {name}: no columns")))?;
        let mut columns = BTreeMap::new();
        for (cname, cv) in cols {
            if cname.starts_with('_') {
                return Err(OvsdbError::syntax(format!(
                    "table {name}: column name {cname} is reserved"
                )));
            }
            let what = format!("{name}.{cname}");
            let ty = Type::parse(
                cv.get("type")
                    .ok_or_else(|| OvsdbError::syntax(format!("{what}: no type")))?,
                &what,
            )?;
            let flag = |k: &str, default: bool| -> Result<bool, OvsdbError> {
                match cv.get(k) {
                    None => Ok(default),
                    Some(Value::Bool(b)) => Ok(*b),
                    Some(_) => Err(OvsdbError::syntax(format!("{what}: {k} must be a boolean"))),
                }
            };
            columns.insert(
                cname.clone(),
                ColumnSchema {
                    name: cname.clone(),
                    ty,
                    ephemeral: flag("ephemeral", false)?,
                    mutable: flag("mutable", true)?,
                },
            );
        }
        let is_root = match obj.get("isRoot") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(OvsdbError::syntax(format!(
                    "table {name}: isRoot must be a boolean"
                )))
            }
        };
        let max_rows = match obj.get("maxRows") {
            None => None,
            Some(m) => Some(
                m.as_u64()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| OvsdbError::syntax(format!("table {name}: bad maxRows")))?,
            ),
        };
        let mut indexes = Vec::new();
        if let Some(ix) = obj.get("indexes") {
            let arr = ix
                .as_array()
                .ok_or_else(|| OvsdbError::syntax(format!("table {name}: bad indexes")))?;
            for one in arr {
                let cols_of = one
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| OvsdbError::syntax(format!("table {name}: bad index")))?;
                let mut index = Vec::new();
                for c in cols_of {
                    let c = c
                        .as_str()
                        .filter(|c| columns.contains_key(*c))
                        .ok_or_else(|| {
                            OvsdbError::syntax(format!(
                                "table {name}: index names an unknown column"
                            ))
                        })?;
                    index.push(c.to_string());
                }
                indexes.push(index);
            }
        }
        Ok(TableSchema {
            name: name.to_string(),
            columns,
            is_root,
            max_rows,
            indexes,
        })
    }
}

impl Schema {
    /// Parses and validates a schema document.
    pub fn parse(v: &Value) -> Result<Schema, OvsdbError> {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| OvsdbError::syntax("schema has no name"))?
            .to_string();
        let version = v
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let tables_json = v
            .get("tables")
            .and_then(Value::as_object)
            .ok_or_else(|| OvsdbError::syntax("schema has no tables"))?;
        let mut tables = BTreeMap::new();
        for (tname, tv) in tables_json {
            if tname.starts_with('_') {
                return Err(OvsdbError::syntax(format!(
                    "table name {tname} is reserved"
                )));
            }
            tables.insert(tname.clone(), TableSchema::parse(tname, tv)?);
        }
        for t in tables.values() {
            for c in t.columns.values() {
                for b in std::iter::once(&c.ty.key).chain(c.ty.value.as_ref()) {
                    if let Some(rt) = &b.ref_table {
                        if !tables.contains_key(rt) {
                            return Err(OvsdbError::syntax(format!(
                                "{}.{}: refTable {rt} is not a table",
                                t.name, c.name
                            )));
                        }
                    }
                }
            }
        }
        if !tables.values().any(|t| t.is_root) {
            for t in tables.values_mut() {
                t.is_root = true;
            }
        }
        Ok(Schema {
            name,
            version,
            tables,
            json: v.clone(),
        })
    }

    /// The Open_vSwitch schema (src/ovsdb/vswitch.ovsschema), parsed once.
    pub fn vswitch() -> Arc<Schema> {
        static VSWITCH: OnceLock<Arc<Schema>> = OnceLock::new();
        VSWITCH
            .get_or_init(|| {
                let text = include_str!("vswitch.ovsschema");
                // Invariant: the embedded schema is valid JSON and a valid
                // schema; the unit tests parse it.
                #[allow(clippy::expect_used)]
                let v: Value = serde_json::from_str(text).expect("embedded schema is JSON");
                #[allow(clippy::expect_used)]
                let s = Schema::parse(&v).expect("embedded schema is valid");
                Arc::new(s)
            })
            .clone()
    }

    /// The schema as served by `get_schema`.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<&TableSchema> {
        self.tables.get(name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vswitch_parses() {
        let s = Schema::vswitch();
        assert_eq!(s.name, "Open_vSwitch");
        assert_eq!(s.version, "8.3.1");
        let ovs = s.table("Open_vSwitch").unwrap();
        assert!(ovs.is_root);
        assert_eq!(ovs.max_rows, Some(1));
        let bridges = &ovs.columns["bridges"].ty;
        assert_eq!(bridges.key.ref_table.as_deref(), Some("Bridge"));
        assert_eq!((bridges.min, bridges.max), (0, usize::MAX));
        assert!(ovs.columns["statistics"].ephemeral);
        let port = s.table("Port").unwrap();
        assert!(!port.is_root);
        assert_eq!(port.indexes, vec![vec!["name".to_string()]]);
        let fm = &s.table("Bridge").unwrap().columns["fail_mode"].ty;
        assert_eq!(fm.key.enum_.as_ref().unwrap().len(), 2);
        assert!(port.column("_uuid").is_some());
        assert!(!port.column("_version").unwrap().mutable);
        assert_eq!(s.json()["name"], "Open_vSwitch");
    }

    #[test]
    fn rejects_bad_schemas() {
        let bad_ref = json!({"name": "x", "tables": {"T": {"columns": {
            "r": {"type": {"key": {"type": "uuid", "refTable": "Nope"}}}}}}});
        assert_eq!(Schema::parse(&bad_ref).unwrap_err().error, "syntax error");
        let bad_minmax = json!({"name": "x", "tables": {"T": {"columns": {
            "r": {"type": {"key": "integer", "min": 2, "max": 1}}}}}});
        assert!(Schema::parse(&bad_minmax).is_err());
        let reserved = json!({"name": "x", "tables": {"T": {"columns": {
            "_x": {"type": "integer"}}}}});
        assert!(Schema::parse(&reserved).is_err());
    }

    #[test]
    fn no_root_means_all_roots() {
        let s = Schema::parse(&json!({"name": "x", "tables": {
            "A": {"columns": {"i": {"type": "integer"}}},
            "B": {"columns": {"i": {"type": "integer"}}}}}))
        .unwrap();
        assert!(s.tables.values().all(|t| t.is_root));
    }
}
