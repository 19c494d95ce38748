//! Netdev helpers: look up and configure Linux network devices by name.
//!
//! # What?
//! Small synchronous wrappers around the classic `SIOC*IF*` ioctls:
//! [`ifindex`], [`name_of`], [`exists`], [`is_up`], [`set_up`], [`mtu`],
//! [`mac`], plus [`validate_name`] for interface names. No netlink.
//!
//! Also the few process-level calls rvsd needs that std does not offer
//! on its minimum Rust version, kept here so that `unsafe` stays in the
//! modules that already do fd work: [`set_thread_nice`],
//! [`try_lock_exclusive`] (the state directory's lock) and [`group_id`]
//! (`--socket-group`).
//!
//! # Design
//! Each call opens a throw-away `AF_INET`/`SOCK_DGRAM` control socket, issues
//! one or two ioctls on a `struct ifreq`, and closes the socket. That costs a
//! few microseconds, which is fine for the control plane (port add/remove,
//! liveness checks after an error); nothing here is on the packet path.
//!
//! # Invariants
//! Every function validates the name first (non-empty, at most 15 bytes, no
//! `/`, whitespace or NUL), so an ioctl never sees a truncated name. Errors
//! name the device and the operation.
//!
//! # Thread-safety
//! All functions are free functions without shared state; any thread may
//! call them. They act in the network namespace of the calling thread (the
//! control socket is created there).
//!
//! # Limits
//! Names are resolved in the caller's namespace only: a device that was moved
//! to another namespace looks "gone" from here (see `port` for how ports
//! detect liveness without names).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use flowtable::Mac;

/// Longest interface name in bytes (`IFNAMSIZ - 1`).
pub const MAX_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// Errors from netdev lookups and configuration.
#[derive(Debug, thiserror::Error)]
pub enum NetdevError {
    /// The name can never be a Linux interface name.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// No device of that name exists (in the caller's namespace).
    #[error("no such network device {name:?}")]
    NotFound {
        /// The device name.
        name: String,
    },
    /// No device with that index exists (in the caller's namespace).
    #[error("no network device with ifindex {ifindex}")]
    IndexNotFound {
        /// The interface index.
        ifindex: u32,
    },
    /// An ioctl or socket call failed.
    #[error("{op} on {name:?} failed")]
    Io {
        /// The device name (or `#<ifindex>`).
        name: String,
        /// The operation, e.g. `"SIOCSIFFLAGS"`.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Checks that `name` can be a Linux interface name: non-empty, at most
/// [`MAX_NAME_LEN`] bytes, not `.`/`..`, and without `/`, `:`, whitespace or
/// NUL (the kernel's `dev_valid_name` rules).
///
/// ```ignore
/// assert!(validate_name("veth0").is_ok());
/// assert!(validate_name("a/b").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<(), NetdevError> {
    let bad = |reason| {
        Err(NetdevError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return bad("reserved name");
    }
    if name.contains('/') {
        return bad("contains '/'");
    }
    if name.contains(':') {
        return bad("contains ':'");
    }
    if name.chars().any(|c| c.is_whitespace() || c == '\0') {
        return bad("contains whitespace or NUL");
    }
    Ok(())
}

/// A zeroed `ifreq` carrying `name` (which must be validated).
pub(crate) fn ifreq_for(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is a plain C struct (name array + union of integers,
    // sockaddrs and a pointer); all-zero bytes is a valid value of it.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr
}

/// The name held in an `ifreq`'s name field.
pub(crate) fn ifreq_name(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Opens a control socket for interface ioctls.
fn control_socket(name: &str) -> Result<OwnedFd, NetdevError> {
    // SAFETY: socket() has no memory-safety preconditions.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(NetdevError::Io {
            name: name.to_owned(),
            op: "socket",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: fd is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Runs one `ifreq` ioctl on a fresh control socket, mapping ENODEV to
/// `NotFound`.
fn ifreq_ioctl(
    name: &str,
    op: &'static str,
    request: libc::Ioctl,
    ifr: &mut libc::ifreq,
) -> Result<(), NetdevError> {
    let sock = control_socket(name)?;
    // SAFETY: `request` is one of the SIOC*IF* requests, all of which read
    // and/or write a `struct ifreq`; `ifr` is a valid, exclusively borrowed
    // ifreq that outlives the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request, ifr as *mut libc::ifreq) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENODEV) {
            return Err(NetdevError::NotFound {
                name: name.to_owned(),
            });
        }
        return Err(NetdevError::Io {
            name: name.to_owned(),
            op,
            source: err,
        });
    }
    Ok(())
}

/// The interface index of `name`.
pub fn ifindex(name: &str) -> Result<u32, NetdevError> {
    validate_name(name)?;
    let mut ifr = ifreq_for(name);
    ifreq_ioctl(name, "SIOCGIFINDEX", libc::SIOCGIFINDEX, &mut ifr)?;
    // SAFETY: SIOCGIFINDEX filled in the ifindex member of the union.
    let idx = unsafe { ifr.ifr_ifru.ifru_ifindex };
    Ok(idx as u32)
}

/// The name of the device with index `ifindex`.
pub fn name_of(ifindex: u32) -> Result<String, NetdevError> {
    let label = format!("#{ifindex}");
    let mut ifr = ifreq_for("");
    ifr.ifr_ifru.ifru_ifindex = ifindex as libc::c_int;
    let sock = control_socket(&label)?;
    // SAFETY: SIOCGIFNAME reads ifr_ifindex and writes ifr_name of the valid
    // ifreq we exclusively borrow for the call.
    let rc = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFNAME,
            &mut ifr as *mut libc::ifreq,
        )
    };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENODEV) {
            return Err(NetdevError::IndexNotFound { ifindex });
        }
        return Err(NetdevError::Io {
            name: label,
            op: "SIOCGIFNAME",
            source: err,
        });
    }
    Ok(ifreq_name(&ifr))
}

/// Whether a device called `name` exists in the caller's namespace. Invalid
/// names never exist.
pub fn exists(name: &str) -> bool {
    ifindex(name).is_ok()
}

/// The `IFF_*` flags of `name`.
fn flags(name: &str) -> Result<libc::c_short, NetdevError> {
    validate_name(name)?;
    let mut ifr = ifreq_for(name);
    ifreq_ioctl(name, "SIOCGIFFLAGS", libc::SIOCGIFFLAGS, &mut ifr)?;
    // SAFETY: SIOCGIFFLAGS filled in the flags member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_flags })
}

/// Whether `name` is administratively up (`IFF_UP`).
pub fn is_up(name: &str) -> Result<bool, NetdevError> {
    Ok(flags(name)? & libc::IFF_UP as libc::c_short != 0)
}

/// Brings `name` administratively up; a no-op if it already is. Needs
/// `CAP_NET_ADMIN` when it changes anything.
pub fn set_up(name: &str) -> Result<(), NetdevError> {
    let cur = flags(name)?;
    if cur & libc::IFF_UP as libc::c_short != 0 {
        return Ok(());
    }
    let mut ifr = ifreq_for(name);
    ifr.ifr_ifru.ifru_flags = cur | libc::IFF_UP as libc::c_short;
    ifreq_ioctl(name, "SIOCSIFFLAGS", libc::SIOCSIFFLAGS, &mut ifr)
}

/// The MTU of `name` in bytes (L3, without the Ethernet header).
pub fn mtu(name: &str) -> Result<u32, NetdevError> {
    validate_name(name)?;
    let mut ifr = ifreq_for(name);
    ifreq_ioctl(name, "SIOCGIFMTU", libc::SIOCGIFMTU, &mut ifr)?;
    // SAFETY: SIOCGIFMTU filled in the mtu member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
}

/// The hardware (MAC) address of `name`.
pub fn mac(name: &str) -> Result<Mac, NetdevError> {
    validate_name(name)?;
    let mut ifr = ifreq_for(name);
    ifreq_ioctl(name, "SIOCGIFHWADDR", libc::SIOCGIFHWADDR, &mut ifr)?;
    // SAFETY: SIOCGIFHWADDR filled in the hwaddr (sockaddr) member.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut m = [0u8; 6];
    for (dst, &src) in m.iter_mut().zip(sa.sa_data.iter()) {
        *dst = src as u8;
    }
    Ok(Mac(m))
}

/// Lowers the calling thread's CPU scheduling priority to nice `nice`
/// (0–19). Threads it creates afterwards inherit it (Linux semantics):
/// rvsd calls this on its control thread once the datapath workers run,
/// so that on a busy host flow-mod processing yields to forwarding.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    // SAFETY: gettid() has no preconditions; setpriority() takes plain
    // integers (which = PRIO_PROCESS, who = this thread's id) and touches
    // no memory of ours.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes an exclusive `flock(2)` lock on `f` without waiting: `Ok(false)`
/// when another open file description holds one. The lock lasts until
/// every descriptor of this open file is closed — also when the process
/// is killed.
pub fn try_lock_exclusive(f: &std::fs::File) -> io::Result<bool> {
    // SAFETY: flock() takes a descriptor that `f` keeps open for the
    // duration of the call, and plain flags; it touches no memory of ours.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// The id of the group named `name` (through NSS, as `getent group`
/// resolves it); `None` when there is no such group.
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    let cname = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the name contains NUL"))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `group` is a plain C struct of pointers and integers;
        // all-zero bytes (null pointers) is a valid value of it.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `cname` is a
        // NUL-terminated string, `grp` and `found` are exclusively
        // borrowed locals, and `buf` is writable for `buf.len()` bytes.
        // getgrnam_r only writes into them, and we read `grp` (not the
        // strings it points into `buf`) only when `found` is non-null.
        let r = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if r == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        return Ok((!found.is_null()).then_some(grp.gr_gid));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn groups_resolve_by_name() {
        assert_eq!(group_id("root").unwrap(), Some(0));
        assert_eq!(group_id("rvs-no-such-group").unwrap(), None);
        assert!(group_id("a\u{0}b").is_err());
    }

    #[test]
    fn exclusive_locks_exclude_other_open_files() {
        let p = std::env::temp_dir().join(format!("rvs-flock-{}", std::process::id()));
        let a = std::fs::File::create(&p).unwrap();
        let b = std::fs::File::open(&p).unwrap();
        assert!(try_lock_exclusive(&a).unwrap());
        assert!(!try_lock_exclusive(&b).unwrap(), "held through a");
        drop(a);
        assert!(try_lock_exclusive(&b).unwrap(), "released with a");
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn name_validation() {
        assert!(validate_name("eth0").is_ok());
        assert!(validate_name("a23456789012345").is_ok());
        for bad in [
            "",
            "a234567890123456",
            "a/b",
            "a b",
            "a\tb",
            "a:1",
            ".",
            "..",
            "a\0",
        ] {
            let err = validate_name(bad).unwrap_err();
            assert!(
                matches!(err, NetdevError::InvalidName { .. }),
                "{bad:?}: {err}"
            );
        }
        let msg = validate_name("x/y").unwrap_err().to_string();
        assert!(msg.contains("x/y") && msg.contains('/'), "{msg}");
    }

    #[test]
    fn loopback_lookups() {
        // Every network namespace has lo at index 1, up, MTU 65536.
        assert_eq!(ifindex("lo").unwrap(), 1);
        assert_eq!(name_of(1).unwrap(), "lo");
        assert!(exists("lo"));
        assert!(is_up("lo").unwrap());
        assert_eq!(mtu("lo").unwrap(), 65536);
        assert_eq!(mac("lo").unwrap(), Mac([0; 6]));
    }

    #[test]
    fn missing_device_errors_name_it() {
        let err = ifindex("rvsnosuchdev0").unwrap_err();
        assert!(matches!(err, NetdevError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("rvsnosuchdev0"));
        assert!(!exists("rvsnosuchdev0"));
        assert!(!exists("bad/name"));
        assert!(matches!(
            is_up("rvsnosuchdev0"),
            Err(NetdevError::NotFound { .. })
        ));
        assert!(matches!(
            mtu("rvsnosuchdev0"),
            Err(NetdevError::NotFound { .. })
        ));
        assert!(matches!(
            name_of(0x7fff_fff0),
            Err(NetdevError::IndexNotFound { .. })
        ));
    }
}
