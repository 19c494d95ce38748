//! `punix:` controller targets: which paths a bridge may listen on, and
//! the sockets its listeners own.
//!
//! # What?
//! A `punix:PATH` listener binds a unix socket at `PATH`, which means
//! first removing whatever is there. [`Punix::check`] decides, before a
//! target is accepted, whether that is safe; [`listen`] binds (removing
//! only a stale socket) and returns a [`Listening`] guard that removes the
//! socket again when the listener ends.
//!
//! # Design
//! The rule: a path is refused when it
//! - is relative (rvsd's working directory is no place to name sockets);
//! - is rvsd's control socket, or lies inside its state directory,
//!   however it is spelled (`/run/rvs/./rvsd.sock`, a symlinked
//!   directory: paths are compared after resolving their directory, and
//!   existing sockets by inode too);
//! - has no existing parent directory;
//! - exists and is not a socket (a regular file, a directory, a symbolic
//!   link, …): nothing but a socket is ever removed;
//! - is a socket someone listens on (a connection succeeds), unless it is
//!   one this rvsd's listeners bound ([`Bound`]);
//! - is a socket nobody listens on that this bridge did not create. A
//!   stale socket counts as this bridge's only when the target comes from
//!   the saved state (`stale_ok`: the socket was left by this bridge's
//!   listener in a previous run that was killed); at run time a stale
//!   socket of unknown origin is the user's to remove.
//!
//! Other bridges' listeners are the switch model's to check (it knows
//! every bridge's targets; it compares [`normalize`]d paths).
//!
//! # Invariants
//! Nothing here removes anything but a socket nobody listens on; a
//! [`Listening`] guard removes its path only while it still is the socket
//! its listener bound (same device, inode and ctime).
//!
//! # Thread-safety
//! [`Bound`] is shared (a mutex around a small map) by the listener tasks
//! and the switch model; the rest is plain functions.
//!
//! # Limits
//! Checks and binding are separate steps: a file created at the path
//! between them makes the listener fail and retry (it never removes a
//! file that is not a stale socket).

use std::collections::HashMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::control::server::{file_id, file_kind};

/// Why a path cannot be a `punix:` listener.
#[derive(Debug, thiserror::Error)]
pub enum PunixError {
    /// The path is relative.
    #[error("the path must be absolute")]
    Relative,
    /// The path is rvsd's control socket.
    #[error("{} is rvsd's control socket", .0.display())]
    ControlSocket(PathBuf),
    /// The path is inside rvsd's state directory.
    #[error("{} is inside rvsd's state directory {}", .path.display(), .dir.display())]
    StateDir {
        /// The path.
        path: PathBuf,
        /// The state directory.
        dir: PathBuf,
    },
    /// The parent directory is missing or not a directory.
    #[error("directory {} {why}", .dir.display())]
    NoDir {
        /// The parent directory.
        dir: PathBuf,
        /// "does not exist", "is not a directory", …
        why: String,
    },
    /// Something that is not a socket is there.
    #[error("{} exists and is not a socket ({kind}); refusing to replace it", .path.display())]
    NotSocket {
        /// The path.
        path: PathBuf,
        /// What is there.
        kind: &'static str,
    },
    /// A socket someone listens on is there.
    #[error("{} is a socket in use (something listens on it)", .0.display())]
    InUse(PathBuf),
    /// A socket nobody listens on, not known to be this bridge's.
    #[error("{} is a socket nobody listens on, but not one this bridge's listener created; remove it if it is stale", .0.display())]
    Stale(PathBuf),
    /// Looking at the path failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// `p` made absolute, with its directory resolved (symlinks, `.`, `..`)
/// when it exists, else cleaned up lexically: two spellings of one
/// socket path normalize to the same path.
pub fn normalize(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    if let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) {
        if let Ok(d) = dir.canonicalize() {
            return d.join(name);
        }
    }
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// Which file a socket is ([`file_id`]).
type FileId = (u64, u64, i64, i64);

/// The [`FileId`] of the socket at `p`, if there is one.
fn socket_id(p: &Path) -> Option<FileId> {
    std::fs::symlink_metadata(p)
        .ok()
        .filter(|m| m.file_type().is_socket())
        .map(|m| file_id(&m))
}

/// The sockets this rvsd's listeners have bound and still hold: path
/// (normalized) → which file.
#[derive(Debug, Clone, Default)]
pub struct Bound(Arc<Mutex<HashMap<PathBuf, FileId>>>);

impl Bound {
    /// Whether the socket at `path` is one of ours.
    fn holds(&self, path: &Path) -> bool {
        let Some(id) = socket_id(path) else {
            return false;
        };
        self.0
            .lock()
            .is_ok_and(|m| m.get(&normalize(path)) == Some(&id))
    }
}

/// A bound listener's socket file: registered in [`Bound`] while it
/// lives, removed (if it still is ours) when dropped.
#[derive(Debug)]
pub struct Listening {
    path: PathBuf,
    key: PathBuf,
    id: FileId,
    bound: Bound,
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Ok(mut m) = self.bound.0.lock() {
            if m.get(&self.key) == Some(&self.id) {
                m.remove(&self.key);
            }
        }
        if socket_id(&self.path) == Some(self.id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What `punix:` paths may not be: rvsd's own files.
#[derive(Debug, Clone, Default)]
pub struct Punix {
    /// rvsd's control socket (as given; normalized when checked, once
    /// its directory exists).
    control_socket: Option<PathBuf>,
    /// rvsd's state directory.
    state_dir: Option<PathBuf>,
    /// Sockets this rvsd's listeners hold.
    bound: Bound,
}

impl Punix {
    /// Rules for an rvsd whose state is in `state_dir`.
    pub fn new(state_dir: Option<&Path>) -> Punix {
        Punix {
            state_dir: state_dir.map(Path::to_path_buf),
            ..Punix::default()
        }
    }

    /// Records rvsd's control socket path.
    pub fn set_control_socket(&mut self, p: &Path) {
        self.control_socket = Some(p.to_path_buf());
    }

    /// The registry of bound listener sockets (for the listener tasks).
    pub fn bound(&self) -> Bound {
        self.bound.clone()
    }

    /// Whether `path` may become a listener (see the module docs);
    /// `stale_ok`: the target comes from this bridge's saved state, so a
    /// stale socket there is its own.
    pub fn check(&self, path: &Path, stale_ok: bool) -> Result<(), PunixError> {
        if !path.is_absolute() {
            return Err(PunixError::Relative);
        }
        let n = normalize(path);
        if let Some(c) = &self.control_socket {
            let same_inode = socket_id(path).is_some() && socket_id(path) == socket_id(c);
            if normalize(c) == n || same_inode {
                return Err(PunixError::ControlSocket(path.to_path_buf()));
            }
        }
        if let Some(d) = &self.state_dir {
            let d = d.canonicalize().unwrap_or_else(|_| normalize(d));
            if n.starts_with(&d) {
                return Err(PunixError::StateDir {
                    path: path.to_path_buf(),
                    dir: d,
                });
            }
        }
        let dir = path.parent().unwrap_or(Path::new("/"));
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(PunixError::NoDir {
                    dir: dir.to_path_buf(),
                    why: "is not a directory".into(),
                })
            }
            Err(e) => {
                return Err(PunixError::NoDir {
                    dir: dir.to_path_buf(),
                    why: if e.kind() == std::io::ErrorKind::NotFound {
                        "does not exist".into()
                    } else {
                        format!("cannot be read: {e}")
                    },
                })
            }
        }
        match inspect(path)? {
            Found::Nothing => Ok(()),
            Found::Stale if stale_ok => Ok(()),
            Found::Stale => Err(PunixError::Stale(path.to_path_buf())),
            Found::Live if self.bound.holds(path) => Ok(()),
            Found::Live => Err(PunixError::InUse(path.to_path_buf())),
        }
    }
}

/// What is at a listener's path.
enum Found {
    Nothing,
    /// A socket nobody listens on.
    Stale,
    /// A socket someone listens on.
    Live,
}

/// Looks at `path`: an error for anything that is not a socket.
fn inspect(path: &Path) -> Result<Found, PunixError> {
    let io = |source| PunixError::Io {
        path: path.to_path_buf(),
        source,
    };
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(e) => return Err(io(e)),
    };
    if !m.file_type().is_socket() {
        return Err(PunixError::NotSocket {
            path: path.to_path_buf(),
            kind: file_kind(&m),
        });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Ok(Found::Live),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(Found::Stale),
        Err(e) => Err(io(e)),
    }
}

/// Binds a listener at `path`, first removing a stale socket there (and
/// nothing else), and registers it in `bound`.
pub fn listen(
    path: &Path,
    bound: &Bound,
) -> Result<(tokio::net::UnixListener, Listening), PunixError> {
    let io = |source| PunixError::Io {
        path: path.to_path_buf(),
        source,
    };
    match inspect(path)? {
        Found::Nothing => {}
        Found::Stale => std::fs::remove_file(path).map_err(io)?,
        Found::Live => return Err(PunixError::InUse(path.to_path_buf())),
    }
    let l = tokio::net::UnixListener::bind(path).map_err(io)?;
    let id = file_id(&std::fs::symlink_metadata(path).map_err(io)?);
    let key = normalize(path);
    if let Ok(mut m) = bound.0.lock() {
        m.insert(key.clone(), id);
    }
    Ok((
        l,
        Listening {
            path: path.to_path_buf(),
            key,
            id,
            bound: bound.clone(),
        },
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A fresh directory, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("rvs-punix-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn files_that_are_not_sockets_are_refused_and_kept() {
        let d = Dir::new("files");
        let p = Punix::new(None);
        let file = d.0.join("file");
        std::fs::write(&file, "precious").unwrap();
        let e = p.check(&file, true).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{} exists and is not a socket (a regular file); refusing to replace it",
                file.display()
            )
        );
        let sub = d.0.join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(p
            .check(&sub, true)
            .unwrap_err()
            .to_string()
            .contains("(a directory)"));
        let link = d.0.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(p
            .check(&link, true)
            .unwrap_err()
            .to_string()
            .contains("(a symbolic link)"));
        // listen() refuses the same, even without a check first.
        let r = rt();
        let _g = r.enter();
        assert!(matches!(
            listen(&file, &Bound::default()),
            Err(PunixError::NotSocket { .. })
        ));
        assert!(matches!(
            listen(&link, &Bound::default()),
            Err(PunixError::NotSocket { .. })
        ));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");
    }

    #[test]
    fn rvsds_own_files_are_refused_however_spelled() {
        let d = Dir::new("own");
        let state = d.0.join("state");
        std::fs::create_dir(&state).unwrap();
        let mut p = Punix::new(Some(&state));
        let ctl = d.0.join("rvsd.sock");
        p.set_control_socket(&ctl);
        // Not there yet (rvsd restores state before it binds).
        for spelling in [
            ctl.clone(),
            d.0.join(".").join("rvsd.sock"),
            d.0.join("state").join("..").join("rvsd.sock"),
        ] {
            assert!(
                matches!(p.check(&spelling, true), Err(PunixError::ControlSocket(_))),
                "{}",
                spelling.display()
            );
        }
        // A symlinked directory, and a hard link to the bound socket.
        let _l = std::os::unix::net::UnixListener::bind(&ctl).unwrap();
        let alias = d.0.join("alias");
        std::os::unix::fs::symlink(&d.0, &alias).unwrap();
        assert!(matches!(
            p.check(&alias.join("rvsd.sock"), true),
            Err(PunixError::ControlSocket(_))
        ));
        let hard = d.0.join("hard.sock");
        std::fs::hard_link(&ctl, &hard).unwrap();
        assert!(matches!(
            p.check(&hard, true),
            Err(PunixError::ControlSocket(_))
        ));
        let e = p.check(&state.join("x.sock"), true).unwrap_err();
        assert!(
            e.to_string().contains("inside rvsd's state directory"),
            "{e}"
        );
        assert!(matches!(
            p.check(Path::new("rel.sock"), true),
            Err(PunixError::Relative)
        ));
        let e = p
            .check(&d.0.join("nodir").join("x.sock"), true)
            .unwrap_err();
        assert!(e.to_string().ends_with("nodir does not exist"), "{e}");
    }

    #[test]
    fn stale_sockets_are_replaced_only_when_they_are_this_bridges() {
        let d = Dir::new("stale");
        let p = Punix::new(None);
        let s = d.0.join("br0.mgmt");
        assert!(p.check(&s, false).is_ok(), "a free path");
        // A socket someone listens on.
        let live = std::os::unix::net::UnixListener::bind(&s).unwrap();
        assert!(matches!(p.check(&s, true), Err(PunixError::InUse(_))));
        // The same socket once nobody listens: stale.
        drop(live);
        assert!(matches!(p.check(&s, false), Err(PunixError::Stale(_))));
        assert!(p.check(&s, true).is_ok(), "saved as this bridge's");
        // The listener replaces it, and removes it when it ends.
        let r = rt();
        let _g = r.enter();
        let bound = p.bound();
        let (l, guard) = listen(&s, &bound).unwrap();
        assert!(p.check(&s, false).is_ok(), "our own listener's socket");
        drop(l);
        drop(guard);
        assert!(!s.exists(), "removed with the listener");
        // A guard never removes a socket that replaced its own.
        let (l, guard) = listen(&s, &bound).unwrap();
        drop(l);
        std::fs::remove_file(&s).unwrap();
        let other = std::os::unix::net::UnixListener::bind(&s).unwrap();
        drop(guard);
        assert!(s.exists());
        drop(other);
    }

    #[test]
    fn spellings_of_one_path_normalize_alike() {
        let d = Dir::new("norm");
        let a = normalize(&d.0.join("x.sock"));
        assert_eq!(normalize(&d.0.join(".").join("x.sock")), a);
        assert_eq!(normalize(&d.0.join("sub").join("..").join("x.sock")), a);
        assert_eq!(
            normalize(Path::new("/nonexistent-rvs/a/../b.sock")),
            Path::new("/nonexistent-rvs/b.sock")
        );
    }
}
