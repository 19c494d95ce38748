//! Mutations: the `mutations` of the `mutate` operation (RFC 7047 §5.1).
//!
//! # What?
//! A [`Mutation`] is `[column, mutator, value]`. Arithmetic mutators (`+=
//! -= *= /= %=`) apply to every element of an integer or real scalar or
//! set; `insert` and `delete` add or remove elements of sets and maps (map
//! `delete` takes either a map, removing matching pairs, or a set of keys).
//!
//! # Design
//! Arguments are parsed once with the relaxed types ovsdb-server uses: no
//! constraints on arithmetic arguments, min 0 for insert, min 0 and no max
//! for delete. Results are checked against the column type after each
//! mutation.
//!
//! # Invariants
//! A mutation names a mutable, declared column; applying it leaves a datum
//! that satisfies the column type or returns an error: "domain error"
//! (division by zero), "range error" (integer overflow, non-finite real),
//! "constraint violation" (constraints, duplicates after arithmetic, size).
//!
//! # Thread-safety
//! Plain values.

use super::datum::{Atom, Datum, Uuid};
use super::error::OvsdbError;
use super::schema::{AtomicType, TableSchema, Type};
use serde_json::Value;
use std::collections::HashMap;

/// A mutator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutator {
    /// `+=`
    Add,
    /// `-=`
    Sub,
    /// `*=`
    Mul,
    /// `/=`
    Div,
    /// `%=`
    Mod,
    /// `insert`
    Insert,
    /// `delete`
    Delete,
}

impl Mutator {
    fn parse(s: &str) -> Option<Mutator> {
        Some(match s {
            "+=" => Mutator::Add,
            "-=" => Mutator::Sub,
            "*=" => Mutator::Mul,
            "/=" => Mutator::Div,
            "%=" => Mutator::Mod,
            "insert" => Mutator::Insert,
            "delete" => Mutator::Delete,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Mutator::Add => "+=",
            Mutator::Sub => "-=",
            Mutator::Mul => "*=",
            Mutator::Div => "/=",
            Mutator::Mod => "%=",
            Mutator::Insert => "insert",
            Mutator::Delete => "delete",
        }
    }
}

/// One parsed mutation.
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation {
    /// The column mutated.
    pub column: String,
    /// The mutator.
    pub mutator: Mutator,
    /// The argument.
    pub arg: Datum,
}

impl Mutation {
    /// Parses a JSON array of mutations for `table`.
    pub fn parse_all(
        table: &TableSchema,
        v: &Value,
        named: &HashMap<String, Uuid>,
    ) -> Result<Vec<Mutation>, OvsdbError> {
        let arr = v
            .as_array()
            .ok_or_else(|| OvsdbError::syntax("mutations must be an array"))?;
        arr.iter().map(|m| Self::parse(table, m, named)).collect()
    }

    fn parse(
        table: &TableSchema,
        m: &Value,
        named: &HashMap<String, Uuid>,
    ) -> Result<Mutation, OvsdbError> {
        let parts = m
            .as_array()
            .filter(|a| a.len() == 3)
            .ok_or_else(|| OvsdbError::syntax("Parse error in mutation."))?;
        let cname = parts[0]
            .as_str()
            .ok_or_else(|| OvsdbError::syntax("Parse error in mutation."))?;
        let column = table.column(cname).ok_or_else(|| {
            OvsdbError::new(
                "unknown column",
                format!("No column {cname} in table {}.", table.name),
            )
        })?;
        if !column.mutable {
            return Err(OvsdbError::constraint(format!(
                "Cannot mutate immutable column {cname} in table {}.",
                table.name
            )));
        }
        let mname = parts[1].as_str().unwrap_or_default();
        let mutator = Mutator::parse(mname)
            .ok_or_else(|| OvsdbError::syntax(format!("Unknown mutator \"{mname}\".")))?;
        let ty = &column.ty;
        let mismatch = || {
            OvsdbError::syntax(format!(
                "Type mismatch: \"{mname}\" operator may not be applied to column {cname}."
            ))
        };
        let arg = match mutator {
            Mutator::Add | Mutator::Sub | Mutator::Mul | Mutator::Div | Mutator::Mod => {
                let numeric = match ty.key.atomic {
                    AtomicType::Integer => true,
                    AtomicType::Real => mutator != Mutator::Mod,
                    _ => false,
                };
                if ty.is_map() || !numeric {
                    return Err(mismatch());
                }
                Datum::from_json(&Type::scalar(ty.key.atomic), &parts[2], named)?
            }
            Mutator::Insert | Mutator::Delete => {
                if ty.max == 1 && ty.min == 1 {
                    return Err(mismatch());
                }
                let mut aty = ty.clone();
                aty.min = 0;
                if mutator == Mutator::Delete {
                    aty.max = usize::MAX;
                    aty.key = aty.key.unconstrained();
                    aty.value = aty.value.map(|v| v.unconstrained());
                }
                match Datum::from_json(&aty, &parts[2], named) {
                    Ok(d) => d,
                    Err(e) if mutator == Mutator::Delete && ty.is_map() => {
                        aty.value = None;
                        Datum::from_json(&aty, &parts[2], named).map_err(|_| e)?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        Ok(Mutation {
            column: cname.to_string(),
            mutator,
            arg,
        })
    }

    /// Applies the mutation to `d`, a datum of type `ty`.
    pub fn apply(&self, d: &mut Datum, ty: &Type) -> Result<(), OvsdbError> {
        match self.mutator {
            Mutator::Insert => {
                let mut keys = std::mem::take(&mut d.keys);
                match d.values.take() {
                    Some(vals) => {
                        let mut pairs: Vec<(Atom, Atom)> = keys.into_iter().zip(vals).collect();
                        pairs.extend(self.arg.pairs().map(|(k, v)| (k.clone(), v.clone())));
                        // Existing keys keep their values: `map` keeps the
                        // first of equal keys (the sort is stable).
                        *d = Datum::map(pairs);
                    }
                    None => {
                        keys.extend(self.arg.keys.iter().cloned());
                        *d = Datum::set(keys);
                    }
                }
            }
            Mutator::Delete => {
                let arg = &self.arg;
                match &arg.values {
                    Some(avals) => {
                        d.retain(|k, v| arg.find(k).is_none_or(|i| Some(&avals[i]) != v))
                    }
                    None => d.retain(|k, _| !arg.contains(k)),
                }
            }
            _ => return self.apply_arith(d, ty),
        }
        d.check_size(ty).map_err(|_| {
            OvsdbError::constraint(format!(
                "Attempted to store {} elements in column {} ({} to {} allowed).",
                d.len(),
                self.column,
                ty.min,
                if ty.max == usize::MAX {
                    "unlimited".to_string()
                } else {
                    ty.max.to_string()
                }
            ))
        })
    }

    fn apply_arith(&self, d: &mut Datum, ty: &Type) -> Result<(), OvsdbError> {
        let range = || {
            OvsdbError::new(
                "range error",
                format!(
                    "Result of \"{}\" operation is out of range.",
                    self.mutator.name()
                ),
            )
        };
        let domain = || OvsdbError::new("domain error", "Division by zero.");
        let Some(arg) = self.arg.keys.first() else {
            return Ok(());
        };
        let n = d.keys.len();
        for atom in d.keys.iter_mut() {
            match (atom, arg) {
                (Atom::Integer(x), Atom::Integer(y)) => {
                    let y = *y;
                    let r = match self.mutator {
                        Mutator::Add => x.checked_add(y),
                        Mutator::Sub => x.checked_sub(y),
                        Mutator::Mul => x.checked_mul(y),
                        Mutator::Div | Mutator::Mod if y == 0 => return Err(domain()),
                        Mutator::Div => x.checked_div(y),
                        _ => x.checked_rem(y),
                    };
                    *x = r.ok_or_else(range)?;
                }
                (Atom::Real(x), Atom::Real(y)) => {
                    let y = *y;
                    let r = match self.mutator {
                        Mutator::Add => *x + y,
                        Mutator::Sub => *x - y,
                        Mutator::Mul => *x * y,
                        Mutator::Div if y == 0.0 => return Err(domain()),
                        _ => *x / y,
                    };
                    if !r.is_finite() {
                        return Err(range());
                    }
                    *x = r;
                }
                _ => return Err(OvsdbError::syntax("mutation type mismatch")),
            }
        }
        for atom in &d.keys {
            atom.check(&ty.key)?;
        }
        let keys = std::mem::take(&mut d.keys);
        *d = Datum::set(keys);
        if d.keys.len() != n {
            return Err(OvsdbError::constraint(format!(
                "Result of \"{}\" operation contains duplicates.",
                self.mutator.name()
            )));
        }
        Ok(())
    }
}
