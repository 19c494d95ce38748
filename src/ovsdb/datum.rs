//! OVSDB values: UUIDs, atoms and datums, and their JSON notation.
//!
//! # What?
//! An [`Atom`] is one integer, real, boolean, string or [`Uuid`]. A
//! [`Datum`] is the value of one column: a set of atoms, or a map from atoms
//! to atoms, with as many elements as the column [`Type`] allows (a scalar
//! is a set of exactly one). [`Datum::from_json`] and [`Datum::to_json`]
//! translate the RFC 7047 §5.1 notation: a bare atom, `["set", [..]]`,
//! `["map", [[k, v], ..]]`, `["uuid", ".."]` and, inside a transaction,
//! `["named-uuid", "name"]`.
//!
//! # Design
//! A datum keeps its keys sorted and unique in a `Vec` (values, for maps,
//! in a parallel `Vec`), so equality, set operations and lookups are merges
//! and binary searches with no hashing. Atoms are totally ordered (reals by
//! `f64::total_cmp`), so datums can key `BTreeMap`s (the unique indexes).
//!
//! # Invariants
//! Every datum built by this module has sorted, unique keys and, for maps,
//! `values.len() == keys.len()`. A datum that passed [`Datum::from_json`] or
//! [`Datum::check`] for a type also has that type's atomic types, satisfies
//! its constraints (enum, ranges, lengths) and its size limits.
//! `to_json` writes what ovsdb-server writes: one-element sets as bare
//! atoms, everything else of a set type as `["set", ..]`, maps as `["map",
//! ..]` sorted by key.
//!
//! # Thread-safety
//! Plain values.
//!
//! # Limits
//! Sizes are bounded only by the column type; the JSON layer bounds the
//! request size.

use super::error::OvsdbError;
use super::schema::{AtomicType, BaseType, Type};
use serde_json::{json, Value};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A 128-bit UUID, stored big-endian as written.
///
/// ```
/// use rvs::ovsdb::Uuid;
/// let u = Uuid::parse("36BF1D2F-0D3B-4e8b-b0f1-4c6d1bd0d1a1").unwrap();
/// assert_eq!(u.to_string(), "36bf1d2f-0d3b-4e8b-b0f1-4c6d1bd0d1a1");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// A random (version 4) UUID.
    pub fn random() -> Uuid {
        let mut b = [0u8; 16];
        if getrandom::getrandom(&mut b).is_err() {
            // No OS randomness: fall back to std's randomly seeded hasher
            // plus a counter; uniqueness, not secrecy, is what matters here.
            use std::collections::hash_map::RandomState;
            use std::hash::BuildHasher;
            use std::sync::atomic::{AtomicU64, Ordering as AO};
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, AO::Relaxed);
            let s = RandomState::new();
            let hi = s.hash_one(n);
            let lo = s.hash_one(n ^ 0x9e37_79b9_7f4a_7c15);
            b[..8].copy_from_slice(&hi.to_be_bytes());
            b[8..].copy_from_slice(&lo.to_be_bytes());
        }
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid(b)
    }

    /// Parses the 8-4-4-4-12 hex form (either case).
    pub fn parse(s: &str) -> Option<Uuid> {
        let bytes = s.as_bytes();
        if bytes.len() != 36 {
            return None;
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                if bytes[i] != b'-' {
                    return None;
                }
                i += 1;
                continue;
            }
            let hex = |c: u8| (c as char).to_digit(16);
            let hi = hex(bytes[i])?;
            let lo = hex(*bytes.get(i + 1)?)?;
            out[n] = (hi * 16 + lo) as u8;
            n += 1;
            i += 2;
        }
        Some(Uuid(out))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One value of an atomic type.
#[derive(Clone, Debug)]
pub enum Atom {
    /// An integer.
    Integer(i64),
    /// A real; never NaN or infinite once checked against a type.
    Real(f64),
    /// A boolean.
    Boolean(bool),
    /// A string.
    String(String),
    /// A UUID (possibly a reference).
    Uuid(Uuid),
}

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
        }
    }

    /// The atom's type.
    pub fn atomic_type(&self) -> AtomicType {
        match self {
            Atom::Integer(_) => AtomicType::Integer,
            Atom::Real(_) => AtomicType::Real,
            Atom::Boolean(_) => AtomicType::Boolean,
            Atom::String(_) => AtomicType::String,
            Atom::Uuid(_) => AtomicType::Uuid,
        }
    }

    /// The default atom of a type: 0, 0.0, false, "" or the all-zero uuid.
    pub fn default_for(t: AtomicType) -> Atom {
        match t {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Real => Atom::Real(0.0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(String::new()),
            AtomicType::Uuid => Atom::Uuid(Uuid::default()),
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The real, if this is one.
    pub fn as_real(&self) -> Option<f64> {
        match self {
            Atom::Real(r) => Some(*r),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The uuid, if this is one.
    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }

    /// The atom in OVSDB JSON notation (uuids as `["uuid", ".."]`).
    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => json!(["uuid", u.to_string()]),
        }
    }

    /// Parses one atom of type `base` (type only; constraints are checked by
    /// [`Atom::check`]). `named` resolves `["named-uuid", name]`.
    pub fn from_json(
        base: &BaseType,
        v: &Value,
        named: &HashMap<String, Uuid>,
    ) -> Result<Atom, OvsdbError> {
        let bad = || {
            OvsdbError::syntax(format!(
                "expected {}, not {}",
                base.atomic.name(),
                short_json(v)
            ))
        };
        Ok(match base.atomic {
            AtomicType::Integer => Atom::Integer(v.as_i64().ok_or_else(bad)?),
            AtomicType::Real => {
                let r = v.as_f64().ok_or_else(bad)?;
                if !r.is_finite() {
                    return Err(bad());
                }
                Atom::Real(r)
            }
            AtomicType::Boolean => Atom::Boolean(v.as_bool().ok_or_else(bad)?),
            AtomicType::String => Atom::String(v.as_str().ok_or_else(bad)?.to_string()),
            AtomicType::Uuid => {
                let arr = v.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
                let s = arr[1].as_str().ok_or_else(bad)?;
                match arr[0].as_str() {
                    Some("uuid") => Atom::Uuid(Uuid::parse(s).ok_or_else(|| {
                        OvsdbError::syntax(format!("\"{s}\" is not a valid UUID"))
                    })?),
                    Some("named-uuid") => Atom::Uuid(*named.get(s).ok_or_else(|| {
                        OvsdbError::syntax(format!(
                            "named-uuid \"{s}\" is not the uuid-name of an insert in this transaction"
                        ))
                    })?),
                    _ => return Err(bad()),
                }
            }
        })
    }

    /// Checks the atom's type and `base`'s constraints (enum, range,
    /// length). References are not checked here.
    pub fn check(&self, base: &BaseType) -> Result<(), OvsdbError> {
        if self.atomic_type() != base.atomic {
            return Err(OvsdbError::constraint(format!(
                "expected {}, not {}",
                base.atomic.name(),
                self.atomic_type().name()
            )));
        }
        if let Some(e) = &base.enum_ {
            if e.binary_search(self).is_err() {
                let allowed: Vec<Value> = e.iter().map(Atom::to_json).collect();
                return Err(OvsdbError::constraint(format!(
                    "{} is not one of the allowed values ({})",
                    self.to_json(),
                    Value::Array(allowed)
                )));
            }
        }
        match self {
            Atom::Integer(i) => {
                let lo = base.min_integer.unwrap_or(i64::MIN);
                let hi = base.max_integer.unwrap_or(i64::MAX);
                if *i < lo || *i > hi {
                    return Err(OvsdbError::constraint(format!(
                        "{i} is not in the valid range {lo} to {hi} (inclusive)"
                    )));
                }
            }
            Atom::Real(r) => {
                if !r.is_finite() {
                    return Err(OvsdbError::new("range error", "real is not finite"));
                }
                let lo = base.min_real.unwrap_or(f64::MIN);
                let hi = base.max_real.unwrap_or(f64::MAX);
                if *r < lo || *r > hi {
                    return Err(OvsdbError::constraint(format!(
                        "{r} is not in the valid range {lo} to {hi} (inclusive)"
                    )));
                }
            }
            Atom::String(s) => {
                let n = s.chars().count();
                if let Some(min) = base.min_length {
                    if n < min {
                        return Err(OvsdbError::constraint(format!(
                            "\"{s}\" length {n} is less than minimum allowed length {min}"
                        )));
                    }
                }
                if let Some(max) = base.max_length {
                    if n > max {
                        return Err(OvsdbError::constraint(format!(
                            "\"{s}\" length {n} is greater than maximum allowed length {max}"
                        )));
                    }
                }
            }
            Atom::Boolean(_) | Atom::Uuid(_) => {}
        }
        Ok(())
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Atom {}
impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}
impl Hash for Atom {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.rank().hash(h);
        match self {
            Atom::Integer(i) => i.hash(h),
            Atom::Real(r) => r.to_bits().hash(h),
            Atom::Boolean(b) => b.hash(h),
            Atom::String(s) => s.hash(h),
            Atom::Uuid(u) => u.hash(h),
        }
    }
}

/// A column value: sorted unique keys, plus parallel values for maps.
///
/// ```
/// use rvs::ovsdb::{Atom, Datum};
/// let d = Datum::map([(Atom::String("b".into()), Atom::Integer(2)),
///                     (Atom::String("a".into()), Atom::Integer(1))]);
/// assert_eq!(d.map_get("a").and_then(Atom::as_integer), Some(1));
/// assert_eq!(d.keys[0].as_str(), Some("a"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Datum {
    /// The keys (set elements), sorted and unique.
    pub keys: Vec<Atom>,
    /// For maps, the value of each key (same length as `keys`).
    pub values: Option<Vec<Atom>>,
}

fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 64 {
        let mut cut = 64;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

fn size_ok(n: usize, ty: &Type) -> bool {
    n >= ty.min && n <= ty.max
}

fn size_msg(n: usize, ty: &Type) -> String {
    if ty.max == usize::MAX {
        format!(
            "datum has {n} elements but at least {} are required",
            ty.min
        )
    } else if ty.min == ty.max {
        format!("datum has {n} elements but exactly {} are required", ty.min)
    } else {
        format!(
            "datum has {n} elements but {} to {} are required",
            ty.min, ty.max
        )
    }
}

impl Datum {
    /// The empty set (or map, with `map` true).
    pub fn empty(map: bool) -> Datum {
        Datum {
            keys: Vec::new(),
            values: map.then(Vec::new),
        }
    }

    /// The default of a column type: one default atom (pair) if `min` is 1,
    /// else empty.
    pub fn default_for(ty: &Type) -> Datum {
        if ty.min >= 1 {
            Datum {
                keys: vec![Atom::default_for(ty.key.atomic)],
                values: ty.value.as_ref().map(|v| vec![Atom::default_for(v.atomic)]),
            }
        } else {
            Datum::empty(ty.is_map())
        }
    }

    /// Whether this is the default value of `ty`.
    pub fn is_default(&self, ty: &Type) -> bool {
        *self == Datum::default_for(ty)
    }

    /// Parses a datum of type `ty` from OVSDB JSON notation, resolving
    /// named uuids through `named`, and checks it against `ty`.
    pub fn from_json(
        ty: &Type,
        v: &Value,
        named: &HashMap<String, Uuid>,
    ) -> Result<Datum, OvsdbError> {
        let tagged = v
            .as_array()
            .filter(|a| a.len() == 2)
            .and_then(|a| a[0].as_str().map(|t| (t, &a[1])));
        let d = if let Some(vt) = &ty.value {
            let items = match tagged {
                Some(("map", Value::Array(items))) => items,
                _ => {
                    return Err(OvsdbError::syntax(format!(
                        "expected [\"map\", [..]], not {}",
                        short_json(v)
                    )))
                }
            };
            let mut pairs = Vec::with_capacity(items.len());
            for it in items {
                let kv = it.as_array().filter(|a| a.len() == 2).ok_or_else(|| {
                    OvsdbError::syntax(format!("expected [key, value], not {}", short_json(it)))
                })?;
                pairs.push((
                    Atom::from_json(&ty.key, &kv[0], named)?,
                    Atom::from_json(vt, &kv[1], named)?,
                ));
            }
            let n = pairs.len();
            let d = Datum::map(pairs);
            if d.keys.len() != n {
                return Err(OvsdbError::syntax("map contains duplicate key"));
            }
            d
        } else {
            match tagged {
                Some(("set", Value::Array(items))) => {
                    let mut atoms = Vec::with_capacity(items.len());
                    for it in items {
                        atoms.push(Atom::from_json(&ty.key, it, named)?);
                    }
                    let n = atoms.len();
                    let d = Datum::set(atoms);
                    if d.keys.len() != n {
                        return Err(OvsdbError::syntax("set contains duplicate"));
                    }
                    d
                }
                _ => Datum {
                    keys: vec![Atom::from_json(&ty.key, v, named)?],
                    values: None,
                },
            }
        };
        if !size_ok(d.keys.len(), ty) {
            return Err(OvsdbError::syntax(size_msg(d.keys.len(), ty)));
        }
        d.check_atoms(ty)?;
        Ok(d)
    }

    /// The datum in the notation ovsdb-server writes for type `ty`.
    pub fn to_json(&self, ty: &Type) -> Value {
        if ty.is_map() {
            let pairs: Vec<Value> = self
                .pairs()
                .map(|(k, v)| json!([k.to_json(), v.to_json()]))
                .collect();
            json!(["map", pairs])
        } else if self.keys.len() == 1 {
            self.keys[0].to_json()
        } else {
            json!([
                "set",
                self.keys.iter().map(Atom::to_json).collect::<Vec<_>>()
            ])
        }
    }

    fn check_atoms(&self, ty: &Type) -> Result<(), OvsdbError> {
        for k in &self.keys {
            k.check(&ty.key)?;
        }
        if let (Some(vals), Some(vt)) = (&self.values, &ty.value) {
            for v in vals {
                v.check(vt)?;
            }
        }
        Ok(())
    }

    /// Checks shape, atom types, constraints and size against `ty`
    /// ("constraint violation" on failure).
    pub fn check(&self, ty: &Type) -> Result<(), OvsdbError> {
        if self.values.is_some() != ty.is_map()
            || self
                .values
                .as_ref()
                .is_some_and(|v| v.len() != self.keys.len())
        {
            return Err(OvsdbError::constraint("datum is not of the column's kind"));
        }
        if self.keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err(OvsdbError::constraint(
                "datum keys are not sorted and unique",
            ));
        }
        if !size_ok(self.keys.len(), ty) {
            return Err(OvsdbError::constraint(size_msg(self.keys.len(), ty)));
        }
        self.check_atoms(ty)
    }

    /// Checks only the size against `ty`.
    pub fn check_size(&self, ty: &Type) -> Result<(), OvsdbError> {
        if size_ok(self.keys.len(), ty) {
            Ok(())
        } else {
            Err(OvsdbError::constraint(size_msg(self.keys.len(), ty)))
        }
    }

    /// A one-string datum.
    pub fn string(s: &str) -> Datum {
        Datum::set([Atom::String(s.to_string())])
    }

    /// A one-integer datum.
    pub fn integer(i: i64) -> Datum {
        Datum::set([Atom::Integer(i)])
    }

    /// A one-boolean datum.
    pub fn boolean(b: bool) -> Datum {
        Datum::set([Atom::Boolean(b)])
    }

    /// A one-uuid datum.
    pub fn uuid(u: Uuid) -> Datum {
        Datum::set([Atom::Uuid(u)])
    }

    /// A set; duplicates collapse.
    pub fn set(atoms: impl IntoIterator<Item = Atom>) -> Datum {
        let mut keys: Vec<Atom> = atoms.into_iter().collect();
        keys.sort();
        keys.dedup();
        Datum { keys, values: None }
    }

    /// A map; of pairs with equal keys the first one given wins.
    pub fn map(pairs: impl IntoIterator<Item = (Atom, Atom)>) -> Datum {
        let mut pairs: Vec<(Atom, Atom)> = pairs.into_iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, earlier| later.0 == earlier.0);
        let (keys, values) = pairs.into_iter().unzip();
        Datum {
            keys,
            values: Some(values),
        }
    }

    fn single(&self) -> Option<&Atom> {
        match self.keys.as_slice() {
            [a] => Some(a),
            _ => None,
        }
    }

    /// The string, if the datum has exactly one key and it is a string.
    pub fn as_str(&self) -> Option<&str> {
        self.single().and_then(Atom::as_str)
    }

    /// The integer, if the datum has exactly one key and it is an integer.
    pub fn as_integer(&self) -> Option<i64> {
        self.single().and_then(Atom::as_integer)
    }

    /// The boolean, if the datum has exactly one key and it is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        self.single().and_then(Atom::as_bool)
    }

    /// The uuid, if the datum has exactly one key and it is a uuid.
    pub fn as_uuid(&self) -> Option<Uuid> {
        self.single().and_then(Atom::as_uuid)
    }

    /// The value for string key `key` of a map.
    pub fn map_get(&self, key: &str) -> Option<&Atom> {
        let vals = self.values.as_ref()?;
        let probe = Atom::String(key.to_string());
        self.keys.binary_search(&probe).ok().map(|i| &vals[i])
    }

    /// The index of `key` among the keys.
    pub fn find(&self, key: &Atom) -> Option<usize> {
        self.keys.binary_search(key).ok()
    }

    /// Whether `key` is one of the keys.
    pub fn contains(&self, key: &Atom) -> bool {
        self.find(key).is_some()
    }

    /// The (key, value) pairs of a map (nothing for a set).
    pub fn pairs(&self) -> impl Iterator<Item = (&Atom, &Atom)> {
        self.keys
            .iter()
            .zip(self.values.iter().flat_map(|v| v.iter()))
    }

    /// Whether the datum has no elements.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Keeps only the elements (pairs) for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Atom, Option<&Atom>) -> bool) {
        let keys = std::mem::take(&mut self.keys);
        match self.values.take() {
            Some(vals) => {
                let (k, v): (Vec<Atom>, Vec<Atom>) = keys
                    .into_iter()
                    .zip(vals)
                    .filter(|(k, v)| keep(k, Some(v)))
                    .unzip();
                self.keys = k;
                self.values = Some(v);
            }
            None => self.keys = keys.into_iter().filter(|k| keep(k, None)).collect(),
        }
    }

    /// Whether every element (pair) of `sub` is in `self`.
    pub fn includes(&self, sub: &Datum) -> bool {
        match (&self.values, &sub.values) {
            (Some(vals), Some(svals)) => sub
                .keys
                .iter()
                .zip(svals)
                .all(|(k, v)| self.find(k).is_some_and(|i| vals[i] == *v)),
            _ => sub.keys.iter().all(|k| self.contains(k)),
        }
    }

    /// Whether no element (pair) of `other` is in `self`.
    pub fn excludes(&self, other: &Datum) -> bool {
        match (&self.values, &other.values) {
            (Some(vals), Some(ovals)) => other
                .keys
                .iter()
                .zip(ovals)
                .all(|(k, v)| self.find(k).is_none_or(|i| vals[i] != *v)),
            _ => other.keys.iter().all(|k| !self.contains(k)),
        }
    }

    /// The monitor_cond ("update2") difference from `self` to `new` for a
    /// column of type `ty`: `new` itself for scalars; the symmetric
    /// difference for sets; for maps, the pairs added or changed (with the
    /// new value) plus the pairs removed (with the old value).
    pub fn diff(&self, new: &Datum, ty: &Type) -> Datum {
        if ty.min == 1 && ty.max == 1 {
            return new.clone();
        }
        match (&self.values, &new.values) {
            (Some(ov), Some(nv)) => {
                let mut pairs = Vec::new();
                for (k, v) in new.keys.iter().zip(nv) {
                    match self.find(k) {
                        Some(i) if ov[i] == *v => {}
                        _ => pairs.push((k.clone(), v.clone())),
                    }
                }
                for (k, v) in self.keys.iter().zip(ov) {
                    if !new.contains(k) {
                        pairs.push((k.clone(), v.clone()));
                    }
                }
                Datum::map(pairs)
            }
            _ => Datum::set(
                self.keys
                    .iter()
                    .filter(|k| !new.contains(k))
                    .chain(new.keys.iter().filter(|k| !self.contains(k)))
                    .cloned(),
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ty(v: Value) -> Type {
        let s = super::super::schema::Schema::parse(&json!({"name": "t", "tables": {"T": {
            "columns": {"c": {"type": v}}}}}))
        .unwrap();
        s.tables["T"].columns["c"].ty.clone()
    }

    fn none() -> HashMap<String, Uuid> {
        HashMap::new()
    }

    #[test]
    fn uuid_parse_print() {
        let u = Uuid::random();
        assert_eq!(Uuid::parse(&u.to_string()), Some(u));
        assert_eq!(u.0[6] >> 4, 4);
        assert!(Uuid::parse("not-a-uuid").is_none());
        assert!(Uuid::parse("36bf1d2f-0d3b-4e8b-b0f1-4c6d1bd0d1a").is_none());
        assert!(Uuid::parse("36bf1d2f+0d3b-4e8b-b0f1-4c6d1bd0d1a1").is_none());
        assert_ne!(Uuid::random(), Uuid::random());
    }

    #[test]
    fn notation_round_trips() {
        let cases = [
            (json!("integer"), json!(5)),
            (
                json!({"key": "string", "min": 0, "max": 1}),
                json!(["set", []]),
            ),
            (json!({"key": "string", "min": 0, "max": 1}), json!("x")),
            (
                json!({"key": "integer", "min": 0, "max": "unlimited"}),
                json!(["set", [1, 2, 3]]),
            ),
            (
                json!({"key": "integer", "min": 0, "max": "unlimited"}),
                json!(7),
            ),
            (
                json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"}),
                json!(["map", [["a", "1"], ["b", "2"]]]),
            ),
            (
                json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"}),
                json!(["map", []]),
            ),
            (
                json!("uuid"),
                json!(["uuid", "36bf1d2f-0d3b-4e8b-b0f1-4c6d1bd0d1a1"]),
            ),
            (json!("real"), json!(1.5)),
            (json!("boolean"), json!(true)),
        ];
        for (t, v) in cases {
            let t = ty(t);
            let d = Datum::from_json(&t, &v, &none()).unwrap();
            assert_eq!(d.to_json(&t), v, "{t:?}");
        }
        // A one-element set written as a set comes back bare; sets sort.
        let t = ty(json!({"key": "integer", "min": 0, "max": "unlimited"}));
        let d = Datum::from_json(&t, &json!(["set", [3, 1]]), &none()).unwrap();
        assert_eq!(d.to_json(&t), json!(["set", [1, 3]]));
        let d = Datum::from_json(&t, &json!(["set", [3]]), &none()).unwrap();
        assert_eq!(d.to_json(&t), json!(3));
        // Integers are accepted for reals.
        let t = ty(json!("real"));
        assert_eq!(
            Datum::from_json(&t, &json!(2), &none()).unwrap().keys[0],
            Atom::Real(2.0)
        );
    }

    #[test]
    fn named_uuids() {
        let u = Uuid::random();
        let mut named = HashMap::new();
        named.insert("row1".to_string(), u);
        let t = ty(json!({"key": "uuid", "min": 0, "max": "unlimited"}));
        let d = Datum::from_json(&t, &json!(["set", [["named-uuid", "row1"]]]), &named).unwrap();
        assert_eq!(d.as_uuid(), Some(u));
        let e = Datum::from_json(&t, &json!(["named-uuid", "nope"]), &named).unwrap_err();
        assert_eq!(e.error, "syntax error");
    }

    #[test]
    fn constraint_errors() {
        let t = ty(json!({"key": {"type": "integer", "minInteger": 0, "maxInteger": 10}}));
        assert_eq!(
            Datum::from_json(&t, &json!(11), &none()).unwrap_err().error,
            "constraint violation"
        );
        let t = ty(json!({"key": {"type": "string", "enum": ["set", ["a", "b"]]}}));
        assert!(Datum::from_json(&t, &json!("a"), &none()).is_ok());
        assert_eq!(
            Datum::from_json(&t, &json!("c"), &none())
                .unwrap_err()
                .error,
            "constraint violation"
        );
        let t = ty(json!({"key": {"type": "string", "maxLength": 2}}));
        assert!(Datum::from_json(&t, &json!("abc"), &none()).is_err());
        let t = ty(json!({"key": "integer", "min": 0, "max": 2}));
        assert_eq!(
            Datum::from_json(&t, &json!(["set", [1, 2, 3]]), &none())
                .unwrap_err()
                .error,
            "syntax error"
        );
        assert!(Datum::from_json(&t, &json!(["set", [1, 1]]), &none()).is_err());
        assert!(Datum::from_json(&t, &json!("x"), &none()).is_err());
        let t = ty(json!("integer"));
        assert!(Datum::from_json(&t, &json!(["set", []]), &none()).is_err());
        assert!(Datum::from_json(&t, &json!(1.5), &none()).is_err());
        let t = ty(json!({"key": "string", "value": "integer", "min": 0, "max": "unlimited"}));
        assert!(Datum::from_json(&t, &json!(["map", [["a", 1], ["a", 2]]]), &none()).is_err());
        assert!(Datum::from_json(&t, &json!(["set", []]), &none()).is_err());
        assert!(Datum::integer(5).check(&t).is_err());
    }

    #[test]
    fn defaults_and_accessors() {
        assert_eq!(Datum::default_for(&ty(json!("integer"))), Datum::integer(0));
        assert!(Datum::default_for(&ty(json!({"key": "string", "min": 0}))).is_empty());
        let m = Datum::map([
            (Atom::String("k".into()), Atom::String("v".into())),
            (Atom::String("a".into()), Atom::String("b".into())),
        ]);
        assert_eq!(m.map_get("k").and_then(Atom::as_str), Some("v"));
        assert_eq!(m.pairs().count(), 2);
        assert_eq!(Datum::string("x").as_str(), Some("x"));
        assert_eq!(Datum::boolean(true).as_bool(), Some(true));
        assert!(Datum::set([Atom::Integer(1), Atom::Integer(2)])
            .as_integer()
            .is_none());
    }

    #[test]
    fn diffs() {
        let st = ty(json!({"key": "integer", "min": 0, "max": "unlimited"}));
        let a = Datum::set([1, 2, 3].map(Atom::Integer));
        let b = Datum::set([2, 3, 4].map(Atom::Integer));
        assert_eq!(a.diff(&b, &st), Datum::set([1, 4].map(Atom::Integer)));
        let mt = ty(json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"}));
        let s = |x: &str| Atom::String(x.into());
        let old = Datum::map([(s("a"), s("1")), (s("b"), s("2")), (s("c"), s("3"))]);
        let new = Datum::map([(s("a"), s("1")), (s("b"), s("9")), (s("d"), s("4"))]);
        assert_eq!(
            old.diff(&new, &mt),
            Datum::map([(s("b"), s("9")), (s("c"), s("3")), (s("d"), s("4"))])
        );
        let it = ty(json!("integer"));
        assert_eq!(
            Datum::integer(1).diff(&Datum::integer(2), &it),
            Datum::integer(2)
        );
    }

    #[test]
    fn includes_excludes() {
        let s = |x: &str| Atom::String(x.into());
        let m = Datum::map([(s("a"), s("1")), (s("b"), s("2"))]);
        assert!(m.includes(&Datum::map([(s("a"), s("1"))])));
        assert!(!m.includes(&Datum::map([(s("a"), s("2"))])));
        assert!(m.excludes(&Datum::map([(s("a"), s("2"))])));
        let set = Datum::set([1, 2].map(Atom::Integer));
        assert!(set.includes(&Datum::integer(2)));
        assert!(set.excludes(&Datum::integer(3)));
    }
}
