//! The database on disk: a snapshot plus an append-only log of commits,
//! so a commit costs what it changed, not the size of the database.
//!
//! # Files (in rvsd's state directory)
//! - `ovsdb.json`: a [`Db::snapshot`] (every non-ephemeral column of every
//!   row), replaced atomically (write, fsync, rename, fsync of the
//!   directory).
//! - `ovsdb.log`: one JSON object per line, `{table: {uuid: row | null}}`
//!   — each row a commit wrote, whole (non-ephemeral columns), or `null`
//!   for a row it deleted.
//!
//! # Design
//! Opening reads the snapshot, replays the log over it (later lines win)
//! and checks the result whole ([`Db::restore`]); then it writes a fresh
//! snapshot and empties the log. A commit appends one line; [`Store::sync`]
//! (fdatasync) runs before a client is answered. When the log outgrows
//! both 4 MiB and twice the last snapshot, the next sync compacts: a new
//! snapshot, then an empty log (a crash in between replays lines the
//! snapshot already holds, which changes nothing).
//!
//! # Invariants
//! A torn last line (a crash mid-append) is ignored: it was never synced,
//! so no client was told it committed. Any other unreadable line stops
//! the start with its line number, and the files are left as they are.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::db::{Change, Db};
use super::schema::Schema;

/// Snapshot file name.
pub const SNAPSHOT: &str = "ovsdb.json";
/// Log file name.
pub const LOG: &str = "ovsdb.log";
/// The log is compacted once it is over this and over twice the snapshot.
const COMPACT_MIN: u64 = 4 << 20;

/// The open database files.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    log: BufWriter<File>,
    log_bytes: u64,
    snap_bytes: u64,
    /// Lines appended since the last sync.
    dirty: bool,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// Writes `db`'s snapshot atomically; its size.
fn write_snapshot(dir: &Path, db: &Db) -> Result<u64, String> {
    let path = dir.join(SNAPSHOT);
    let tmp = dir.join(format!("{SNAPSHOT}.tmp"));
    let bytes = (|| -> std::io::Result<u64> {
        let f = File::create(&tmp)?;
        let mut w = BufWriter::new(f);
        serde_json::to_writer(&mut w, &db.snapshot())?;
        w.write_all(b"\n")?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        let n = f.metadata()?.len();
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()?;
        Ok(n)
    })()
    .map_err(|e| io_err(&path, e))?;
    Ok(bytes)
}

/// The log line of `change`: rows whose non-ephemeral columns changed.
fn change_line(db: &Db, change: &Change) -> Option<Value> {
    let mut out = Map::new();
    for (table, rows) in &change.tables {
        let Some(ts) = db.schema().table(table) else {
            continue;
        };
        let persisted = |r: &super::db::Row| -> Map<String, Value> {
            ts.columns
                .iter()
                .filter(|(_, c)| !c.ephemeral)
                .filter_map(|(n, c)| r.cols.get(n).map(|d| (n.clone(), d.to_json(&c.ty))))
                .collect()
        };
        let mut m = Map::new();
        for (uuid, rc) in rows {
            match (&rc.old, &rc.new) {
                (_, None) => {
                    m.insert(uuid.to_string(), Value::Null);
                }
                (Some(old), Some(new)) => {
                    let n = persisted(new);
                    if persisted(old) != n {
                        m.insert(uuid.to_string(), Value::Object(n));
                    }
                }
                (None, Some(new)) => {
                    m.insert(uuid.to_string(), Value::Object(persisted(new)));
                }
            }
        }
        if !m.is_empty() {
            out.insert(table.clone(), Value::Object(m));
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

impl Store {
    /// Opens (or creates) the files in `dir`: the database they hold, and
    /// the store, compacted.
    pub fn open(dir: &Path, schema: std::sync::Arc<Schema>) -> Result<(Db, Store), String> {
        let snap_path = dir.join(SNAPSHOT);
        let log_path = dir.join(LOG);
        let mut state: Map<String, Value> = match std::fs::read_to_string(&snap_path) {
            Ok(text) => match serde_json::from_str(&text) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(io_err(&snap_path, "not a JSON object")),
                Err(e) => return Err(io_err(&snap_path, format!("not JSON: {e}"))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(io_err(&snap_path, e)),
        };
        match File::open(&log_path) {
            Ok(f) => {
                let lines: Vec<String> = BufReader::new(f)
                    .lines()
                    .collect::<Result<_, _>>()
                    .map_err(|e| io_err(&log_path, e))?;
                let last = lines.len();
                for (i, line) in lines.iter().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let entry: Map<String, Value> = match serde_json::from_str(line) {
                        Ok(Value::Object(m)) => m,
                        _ if i + 1 == last => {
                            log::warn!(
                                "{}: ignoring a torn last line (a crash while appending)",
                                log_path.display()
                            );
                            break;
                        }
                        _ => {
                            return Err(io_err(
                                &log_path,
                                format!("line {}: not a JSON object", i + 1),
                            ))
                        }
                    };
                    for (table, rows) in entry {
                        let Value::Object(rows) = rows else {
                            return Err(io_err(&log_path, format!("line {}: bad table", i + 1)));
                        };
                        let t = state
                            .entry(table)
                            .or_insert_with(|| Value::Object(Map::new()));
                        let Some(t) = t.as_object_mut() else {
                            return Err(io_err(&snap_path, "a table that is not an object"));
                        };
                        for (uuid, row) in rows {
                            if row.is_null() {
                                t.remove(&uuid);
                            } else {
                                t.insert(uuid, row);
                            }
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&log_path, e)),
        }
        let db = Db::restore(schema, &Value::Object(state)).map_err(|e| {
            format!(
                "{}: {e} (the files were left untouched; move {SNAPSHOT} and {LOG} away to start the database afresh)",
                dir.display()
            )
        })?;
        let snap_bytes = write_snapshot(dir, &db)?;
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| io_err(&log_path, e))?;
        f.sync_all().map_err(|e| io_err(&log_path, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, e))?;
        Ok((
            db,
            Store {
                dir: dir.to_path_buf(),
                log: BufWriter::new(f),
                log_bytes: 0,
                snap_bytes,
                dirty: false,
            },
        ))
    }

    /// Appends what `change` (committed to `db`) persists.
    pub fn append(&mut self, db: &Db, change: &Change) -> Result<(), String> {
        let Some(line) = change_line(db, change) else {
            return Ok(());
        };
        let mut bytes = serde_json::to_vec(&line).map_err(|e| e.to_string())?;
        bytes.push(b'\n');
        self.log
            .write_all(&bytes)
            .map_err(|e| io_err(&self.dir.join(LOG), e))?;
        self.log_bytes += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Makes every appended line durable; compacts a log grown large.
    pub fn sync(&mut self, db: &Db) -> Result<(), String> {
        if !self.dirty {
            return Ok(());
        }
        let path = self.dir.join(LOG);
        self.log.flush().map_err(|e| io_err(&path, e))?;
        self.log
            .get_ref()
            .sync_data()
            .map_err(|e| io_err(&path, e))?;
        self.dirty = false;
        if self.log_bytes > COMPACT_MIN && self.log_bytes > 2 * self.snap_bytes {
            self.snap_bytes = write_snapshot(&self.dir, db)?;
            let f = self.log.get_mut();
            f.set_len(0).map_err(|e| io_err(&path, e))?;
            // The file is opened without O_APPEND: write from the start.
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Start(0))
                .map_err(|e| io_err(&path, e))?;
            f.sync_all().map_err(|e| io_err(&path, e))?;
            self.log_bytes = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-ovsdb-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn commit(db: &mut Db, store: &mut Store, ops: Value) {
        let super::super::db::TxnOutcome::Done { results, change } =
            db.transact(ops.as_array().unwrap())
        else {
            panic!("blocked")
        };
        assert!(
            results.iter().all(|r| r.get("error").is_none()),
            "{results:?}"
        );
        store.append(db, &change).unwrap();
        store.sync(db).unwrap();
    }

    #[test]
    fn log_replays_over_snapshot_and_torn_line_is_ignored() {
        let d = tempdir("replay");
        let (mut db, mut store) = Store::open(&d, Schema::vswitch()).unwrap();
        commit(
            &mut db,
            &mut store,
            json!([{"op": "insert", "table": "Open_vSwitch", "row": {}},
                   {"op": "insert", "table": "QoS", "row": {"type": "linux-noop"}}]),
        );
        commit(
            &mut db,
            &mut store,
            json!([{"op": "update", "table": "QoS", "where": [], "row": {"type": "linux-htb"}},
                   {"op": "mutate", "table": "Open_vSwitch", "where": [],
                    "mutations": [["external_ids", "insert", ["map", [["a", "b"]]]]]}]),
        );
        let before = db.snapshot();
        drop(store);
        // A crash mid-append leaves half a line.
        let mut f = OpenOptions::new().append(true).open(d.join(LOG)).unwrap();
        f.write_all(b"{\"QoS\":{\"").unwrap();
        drop(f);
        let (db2, mut store2) = Store::open(&d, Schema::vswitch()).unwrap();
        assert_eq!(db2.snapshot(), before);
        // Opening compacted: the log is empty, the snapshot complete.
        assert_eq!(std::fs::metadata(d.join(LOG)).unwrap().len(), 0);
        let mut db2 = db2;
        commit(
            &mut db2,
            &mut store2,
            json!([{"op": "delete", "table": "QoS", "where": []}]),
        );
        drop(store2);
        let (db3, _) = Store::open(&d, Schema::vswitch()).unwrap();
        assert_eq!(db3.n_rows("QoS"), 0);
        assert_eq!(db3.n_rows("Open_vSwitch"), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_bad_line_in_the_middle_stops_the_start() {
        let d = tempdir("bad");
        std::fs::write(d.join(LOG), "nonsense\n{}\n").unwrap();
        let e = Store::open(&d, Schema::vswitch()).unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        // Left untouched.
        assert_eq!(
            std::fs::read_to_string(d.join(LOG)).unwrap(),
            "nonsense\n{}\n"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
