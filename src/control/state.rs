//! The state store: the running configuration, persisted atomically.
//!
//! # What?
//! `<state-dir>/state.toml` holds a snapshot of the whole configuration in
//! the same TOML schema as `--config` files and `rvsctl export` (plus
//! `format_version` and `journal`); the changes accepted since are in the
//! journal files next to it ([`super::journal`]), replayed on load. Every
//! accepted change is durable before the request is acknowledged.
//!
//! # Design
//! A save writes `state.toml.tmp`, fsyncs it, renames it over
//! `state.toml` and fsyncs the directory, so after a crash at any moment
//! the file is either the previous or the new state, never a mix.
//!
//! # Invariants
//! A state file that cannot be read is never overwritten: rvsd refuses to
//! start and names the file and the problem.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Version of the state file format this rvsd writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// File name inside the state directory.
pub const STATE_FILE: &str = "state.toml";

/// A state file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid state.
    #[error("{path}: {message}; the file was left untouched for inspection (move it away to start from scratch)")]
    Corrupt {
        /// File concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// A store in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<StateStore, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(StateStore {
            dir: dir.to_path_buf(),
        })
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the state file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The saved state, or `None` when there is none yet.
    pub fn load(&self) -> Result<Option<Config>, StateError> {
        let path = self.path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let corrupt = |message: String| StateError::Corrupt {
            path: path.clone(),
            message,
        };
        let text = String::from_utf8(text).map_err(|_| corrupt("not UTF-8 text".into()))?;
        let cfg = Config::parse(&text, STATE_FILE).map_err(|e| corrupt(e.message))?;
        match cfg.format_version {
            Some(v) if v > FORMAT_VERSION => Err(corrupt(format!(
                "written by a newer rvs (format_version {v}; this rvsd reads up to {FORMAT_VERSION})"
            ))),
            None => Err(corrupt("missing format_version".into())),
            Some(_) => {
                let Some(from) = cfg.journal else {
                    return Ok(Some(cfg));
                };
                let records = crate::control::journal::read_journals(&self.dir, from)?;
                crate::control::journal::replay(cfg, records)
                    .map(Some)
                    .map_err(|message| StateError::Corrupt {
                        path: crate::control::journal::journal_path(&self.dir, from),
                        message,
                    })
            }
        }
    }

    /// Writes `cfg` atomically (temp file, fsync, rename, fsync dir).
    pub fn save(&self, cfg: &Config) -> Result<(), StateError> {
        let mut cfg = cfg.clone();
        cfg.format_version = Some(FORMAT_VERSION);
        let text = cfg.to_toml().map_err(|e| StateError::Corrupt {
            path: self.path(),
            message: format!("cannot serialize state: {e}"),
        })?;
        write_state(&self.dir, &text)
    }
}

/// Writes `text` as `dir/state.toml` atomically (temp file, fsync,
/// rename, fsync the directory): after a crash the file is the old or the
/// new one, never a mix.
pub fn write_state(dir: &Path, text: &str) -> Result<(), StateError> {
    write_state_with(dir, &mut |w| w.write_all(text.as_bytes()))
}

/// [`write_state`] of whatever `fill` writes, streamed to the file (a
/// large snapshot is never held as one string).
pub fn write_state_with(
    dir: &Path,
    fill: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), StateError> {
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let io = |p: &Path| {
        let path = p.to_path_buf();
        move |source| StateError::Io { path, source }
    };
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io(&tmp))?;
    let mut w = std::io::BufWriter::new(f);
    fill(&mut w).map_err(io(&tmp))?;
    let f = w.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn save_then_load_round_trips() {
        let d = tempdir("rt");
        let s = StateStore::open(&d).expect("open");
        assert!(s.load().expect("load").is_none());
        let cfg = Config::embedded_default().expect("default");
        s.save(&cfg).expect("save");
        let back = s.load().expect("load").expect("some");
        assert_eq!(back.bridge, cfg.bridge);
        assert_eq!(back.format_version, Some(FORMAT_VERSION));
        assert!(!d.join("state.toml.tmp").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn corrupt_and_newer_files_are_refused_and_kept() {
        let d = tempdir("bad");
        let s = StateStore::open(&d).expect("open");
        std::fs::write(s.path(), "[[bridge]\nname=").expect("write");
        let e = s.load().expect_err("corrupt").to_string();
        assert!(e.contains("state.toml") && e.contains("line"), "{e}");
        std::fs::write(s.path(), "format_version = 99\n").expect("write");
        let e = s.load().expect_err("newer").to_string();
        assert!(e.contains("newer rvs"), "{e}");
        assert_eq!(
            std::fs::read_to_string(s.path()).expect("kept"),
            "format_version = 99\n"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
