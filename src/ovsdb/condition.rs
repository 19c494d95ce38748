//! Conditions: the `where` of transact operations and of monitor_cond.
//!
//! # What?
//! A [`Condition`] is a list of clauses `[column, function, value]` (RFC
//! 7047 §5.1) or boolean literals `true`/`false` (ovsdb-server(7)). In a
//! transaction a row matches when it satisfies *all* clauses
//! ([`Condition::matches_all`]); in monitor_cond a row matches when it
//! satisfies *any* clause, and an empty condition matches every row
//! ([`Condition::matches_any`]), as ovsdb-server evaluates them.
//!
//! # Design
//! Clauses are parsed once against the table schema into typed datums, so
//! evaluation is datum comparison only. `_uuid` and `_version` are ordinary
//! (immutable) uuid columns here. [`Condition::uuid_eq`] and
//! [`Condition::eq_key`] expose `==` clauses so the database can answer
//! them with a row lookup or an index lookup instead of a scan.
//!
//! # Invariants
//! Every clause names a column of the table it was parsed for and its
//! argument has the column's atomic types.
//!
//! # Thread-safety
//! Plain values.

use super::datum::{Atom, Datum, Uuid};
use super::db::Row;
use super::error::OvsdbError;
use super::schema::{AtomicType, TableSchema, Type};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::HashMap;

/// A condition function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>=`
    Ge,
    /// `>`
    Gt,
    /// `includes`
    Includes,
    /// `excludes`
    Excludes,
}

impl Function {
    fn parse(s: &str) -> Option<Function> {
        Some(match s {
            "<" => Function::Lt,
            "<=" => Function::Le,
            "==" => Function::Eq,
            "!=" => Function::Ne,
            ">=" => Function::Ge,
            ">" => Function::Gt,
            "includes" => Function::Includes,
            "excludes" => Function::Excludes,
            _ => return None,
        })
    }

    fn is_ordering(self) -> bool {
        matches!(
            self,
            Function::Lt | Function::Le | Function::Ge | Function::Gt
        )
    }
}

/// One element of a condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Clause {
    /// A boolean literal.
    Const(bool),
    /// `[column, function, arg]`.
    Compare {
        /// The column (possibly `_uuid` or `_version`).
        column: String,
        /// The function.
        function: Function,
        /// The argument, typed after the column.
        arg: Datum,
    },
}

/// A parsed condition (list of clauses).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Condition {
    /// The clauses, in the order given.
    pub clauses: Vec<Clause>,
}

impl Clause {
    /// Evaluates the clause on `row`.
    pub fn eval(&self, row: &Row) -> bool {
        let (column, function, arg) = match self {
            Clause::Const(b) => return *b,
            Clause::Compare {
                column,
                function,
                arg,
            } => (column, *function, arg),
        };
        let Some(value) = row.value(column) else {
            return false;
        };
        let value: &Datum = &value;
        match function {
            Function::Eq => value == arg,
            Function::Ne => value != arg,
            Function::Includes => value.includes(arg),
            Function::Excludes => value.excludes(arg),
            Function::Lt | Function::Le | Function::Ge | Function::Gt => {
                let (Some(a), Some(b)) = (value.keys.first(), arg.keys.first()) else {
                    return false;
                };
                let ord = match (a, b) {
                    (Atom::Integer(x), Atom::Integer(y)) => x.cmp(y),
                    (Atom::Real(x), Atom::Real(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
                    _ => return false,
                };
                match function {
                    Function::Lt => ord == Ordering::Less,
                    Function::Le => ord != Ordering::Greater,
                    Function::Ge => ord != Ordering::Less,
                    _ => ord == Ordering::Greater,
                }
            }
        }
    }
}

impl Condition {
    /// Parses a JSON array of clauses for `table`.
    pub fn parse(
        table: &TableSchema,
        v: &Value,
        named: &HashMap<String, Uuid>,
    ) -> Result<Condition, OvsdbError> {
        let arr = v
            .as_array()
            .ok_or_else(|| OvsdbError::syntax("condition must be an array"))?;
        let mut clauses = Vec::with_capacity(arr.len());
        for c in arr {
            clauses.push(Self::parse_clause(table, c, named)?);
        }
        Ok(Condition { clauses })
    }

    fn parse_clause(
        table: &TableSchema,
        c: &Value,
        named: &HashMap<String, Uuid>,
    ) -> Result<Clause, OvsdbError> {
        if let Value::Bool(b) = c {
            return Ok(Clause::Const(*b));
        }
        let parts = c
            .as_array()
            .filter(|a| a.len() == 3)
            .ok_or_else(|| OvsdbError::syntax(format!("bad condition clause {c}")))?;
        let cname = parts[0]
            .as_str()
            .ok_or_else(|| OvsdbError::syntax(format!("bad condition clause {c}")))?;
        let column = table.column(cname).ok_or_else(|| {
            OvsdbError::new(
                "unknown column",
                format!("No column {cname} in table {}.", table.name),
            )
        })?;
        let fname = parts[1].as_str().unwrap_or_default();
        let function = Function::parse(fname)
            .ok_or_else(|| OvsdbError::syntax(format!("unknown function \"{fname}\"")))?;
        let ty = &column.ty;
        let arg_ty = if function.is_ordering() {
            if ty.is_map()
                || ty.max != 1
                || !matches!(ty.key.atomic, AtomicType::Integer | AtomicType::Real)
            {
                return Err(OvsdbError::syntax(format!(
                    "Type mismatch: \"{fname}\" operator may not be applied to column {cname}"
                )));
            }
            Type::scalar(ty.key.atomic)
        } else {
            ty.relaxed()
        };
        let arg = Datum::from_json(&arg_ty, &parts[2], named)?;
        Ok(Clause::Compare {
            column: cname.to_string(),
            function,
            arg,
        })
    }

    /// A condition that every row satisfies in either sense.
    pub fn always() -> Condition {
        Condition::default()
    }

    /// Transaction semantics: all clauses hold (true when empty).
    pub fn matches_all(&self, row: &Row) -> bool {
        self.clauses.iter().all(|c| c.eval(row))
    }

    /// monitor_cond semantics: some clause holds, or there are none.
    pub fn matches_any(&self, row: &Row) -> bool {
        self.clauses.is_empty() || self.clauses.iter().any(|c| c.eval(row))
    }

    /// Whether the transact condition can never hold (a `false` literal).
    pub fn is_false(&self) -> bool {
        self.clauses.contains(&Clause::Const(false))
    }

    /// The uuid of a `["_uuid", "==", uuid]` clause, if any: under
    /// [`Condition::matches_all`] at most that row can match.
    pub fn uuid_eq(&self) -> Option<Uuid> {
        self.clauses.iter().find_map(|c| match c {
            Clause::Compare {
                column,
                function: Function::Eq,
                arg,
            } if column == "_uuid" => Some(arg.as_uuid().unwrap_or_default()),
            _ => None,
        })
    }

    /// The values of `==` clauses on each of `columns`, if all have one.
    pub fn eq_key(&self, columns: &[String]) -> Option<Vec<Datum>> {
        columns
            .iter()
            .map(|col| {
                self.clauses.iter().find_map(|c| match c {
                    Clause::Compare {
                        column,
                        function: Function::Eq,
                        arg,
                    } if column == col => Some(arg.clone()),
                    _ => None,
                })
            })
            .collect()
    }
}
