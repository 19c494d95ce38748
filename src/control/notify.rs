//! Readiness notification for systemd (`sd_notify`), for `Type=notify`
//! units (`config/rvsd.service`).
//!
//! # What?
//! [`notify`] sends one state string (`READY=1`, `STOPPING=1`) to the
//! datagram socket named by `$NOTIFY_SOCKET`, if the variable is set: a
//! path, or an abstract socket when it starts with `@`. rvsd sends
//! `READY=1` once its state is restored and the control socket listens
//! (an `rvsctl` started after it is served), and `STOPPING=1` when it
//! begins to shut down.
//!
//! # Design
//! The protocol is one datagram of `KEY=VALUE` lines; a std
//! `UnixDatagram` does it, no crate or libsystemd needed. Without
//! `$NOTIFY_SOCKET` (not started by systemd) nothing is sent.
//!
//! # Limits
//! No watchdog (`WATCHDOG=1`), no fd store, no credentials passing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` to `$NOTIFY_SOCKET`; `Ok(false)` when it is not set.
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(target) = std::env::var_os(NOTIFY_SOCKET) else {
        return Ok(false);
    };
    send(&target, state)?;
    Ok(true)
}

/// Sends `state` to the socket `target` names (`@name`: abstract).
fn send(target: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let sock = UnixDatagram::unbound()?;
    let b = target.as_bytes();
    let addr = match b.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(target)?,
    };
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn path_and_abstract_sockets_get_the_state() {
        let p = std::env::temp_dir().join(format!("rvs-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let rx = UnixDatagram::bind(&p).unwrap();
        send(p.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_file(&p);

        let name = format!("rvs-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
            .unwrap();
        send(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");

        assert!(send(std::ffi::OsStr::new("/nonexistent/rvs-notify"), "READY=1").is_err());
    }
}
