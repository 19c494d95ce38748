//! The state directory's lock: one rvsd per state directory.
//!
//! # What?
//! [`StateLock::acquire`] takes an exclusive `flock(2)` on
//! `STATE_DIR/lock` (created if missing) and writes the daemon's pid into
//! it; a second rvsd on the same directory gets [`LockError::InUse`] with
//! the holder's pid and must exit before it touches anything else (no
//! netdevs, no journal, no control socket).
//!
//! # Design
//! `flock`, not a pid file checked for liveness: the kernel drops the lock
//! when the holder's last descriptor closes, so a daemon killed with
//! `kill -9` leaves no stale lock, and a recycled pid can never keep a
//! directory locked. The pid written into the file is for people (and
//! the error message) only. The file is opened without truncation and
//! emptied only once the lock is ours, so a refused daemon never erases
//! the holder's pid. The descriptor is close-on-exec.
//!
//! # Invariants
//! While a [`StateLock`] lives, no other process holding a `StateLock`
//! for the same directory exists. Drop it last (rvsd keeps it for its
//! whole run).
//!
//! # Limits
//! `flock` locks are advisory and local: a state directory on NFS shared
//! by two hosts is not protected.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name of the lock file inside the state directory.
pub const LOCK_FILE: &str = "lock";

/// Why the state directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("state dir {} is in use by {}", dir.display(), holder(*pid))]
    InUse {
        /// The state directory.
        dir: PathBuf,
        /// Pid the holder wrote into the lock file, if it did yet.
        pid: Option<u32>,
    },
    /// Creating, opening, locking or writing the lock file failed.
    #[error("locking state dir {}: {}: {source}", dir.display(), path.display())]
    Io {
        /// The state directory.
        dir: PathBuf,
        /// The file or directory concerned.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("pid {p}"),
        None => "another process (it has not written its pid yet)".to_string(),
    }
}

/// The held lock of a state directory; released when dropped (or when
/// the process dies).
#[derive(Debug)]
pub struct StateLock {
    /// The locked file; the lock lives as long as this descriptor.
    _file: File,
}

impl StateLock {
    /// Locks `dir` (creating it if missing) for this process, or says
    /// which pid holds it.
    pub fn acquire(dir: &Path) -> Result<StateLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |p: &Path| {
            let (dir, path) = (dir.to_path_buf(), p.to_path_buf());
            move |source| LockError::Io { dir, path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io(&path))?;
        if !crate::netdev::try_lock_exclusive(&file).map_err(io(&path))? {
            return Err(LockError::InUse {
                dir: dir.to_path_buf(),
                pid: holder_pid(&mut file),
            });
        }
        file.set_len(0).map_err(io(&path))?;
        file.rewind().map_err(io(&path))?;
        writeln!(file, "{}", std::process::id()).map_err(io(&path))?;
        Ok(StateLock { _file: file })
    }
}

/// The pid the holder wrote into the lock file. A holder that has just
/// taken the lock may not have written it yet: wait a little for it.
fn holder_pid(file: &mut File) -> Option<u32> {
    for _ in 0..10 {
        let mut s = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut s).is_ok() {
            if let Ok(p) = s.trim().parse() {
                return Some(p);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_until_the_first_is_dropped() {
        let d = std::env::temp_dir().join(format!("rvs-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let first = StateLock::acquire(&d.join("state")).unwrap();
        let lock = d.join("state").join(LOCK_FILE);
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap(),
            format!("{}\n", std::process::id())
        );
        // flock is per open file: a second open in this process is
        // refused like another process would be.
        let e = StateLock::acquire(&d.join("state")).unwrap_err();
        assert!(
            matches!(e, LockError::InUse { pid: Some(p), .. } if p == std::process::id()),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "state dir {} is in use by pid {}",
                d.join("state").display(),
                std::process::id()
            )
        );
        // The refusal left the holder's pid in place.
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(first);
        let _again = StateLock::acquire(&d.join("state")).unwrap();
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_unusable_directory_is_an_error_naming_it() {
        let f = std::env::temp_dir().join(format!("rvs-lock-file-{}", std::process::id()));
        std::fs::write(&f, "not a directory").unwrap();
        let e = StateLock::acquire(&f).unwrap_err().to_string();
        assert!(e.contains(&f.display().to_string()), "{e}");
        let _ = std::fs::remove_file(&f);
    }
}
