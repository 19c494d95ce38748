//! rvsd under systemd: `READY=1` reaches `$NOTIFY_SOCKET` (a path, or an
//! abstract socket for `@name`) only once `rvsctl` works and the saved
//! state is restored, `STOPPING=1` when it stops; and
//! `config/rvsd.service` is a valid `Type=notify` unit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// The next notification, within 10 s.
fn recv(rx: &UnixDatagram) -> String {
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let n = rx
        .recv(&mut buf)
        .expect("no notification from rvsd within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Waits for READY=1 and checks, at once, that rvsctl is served and
/// lists `bridges`.
fn assert_ready(d: &Rvsd, rx: &UnixDatagram, bridges: &[&str]) {
    assert_eq!(recv(rx), "READY=1", "{}", d.log_text());
    let out = d.ctl(&["list-br"]);
    assert!(
        out.status.success(),
        "READY=1 came before rvsctl worked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    for b in bridges {
        assert!(
            listed.contains(b),
            "READY=1 before {b} was restored: {listed}"
        );
    }
}

#[test]
fn ready_once_rvsctl_works_and_stopping_on_stop() {
    if !require_root() {
        return;
    }
    let t = TempDir::new();
    let path = t.0.join("notify.sock");
    let rx = UnixDatagram::bind(&path).unwrap();
    let mut d = Rvsd::spawn_with_env(&[], &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    assert_ready(&d, &rx, &[]);
    let br = d.add_br();
    d.ok(&["add-flow", &br, "priority=5,actions=drop"]);
    d.stop();
    assert_eq!(recv(&rx), "STOPPING=1");
    // A restart restores the bridge before it says READY=1.
    d.restart();
    assert_ready(&d, &rx, &[&br]);
    assert!(d
        .flows(&br)
        .iter()
        .any(|f| f.flow == "priority=5 actions=drop"));
    d.ok(&["del-br", &br]);
}

#[test]
fn abstract_notify_sockets_work_too() {
    if !require_root() {
        return;
    }
    let name = uniq('n');
    let rx =
        UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    let mut d = Rvsd::spawn_with_env(&[], &[("NOTIFY_SOCKET", &format!("@{name}"))]);
    assert_ready(&d, &rx, &[]);
    d.stop();
    assert_eq!(recv(&rx), "STOPPING=1");
}

#[test]
fn the_unit_file_is_a_valid_notify_service() {
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rvsd.service"))
            .expect("config/rvsd.service");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for want in [
        "Type=notify",
        "Restart=on-failure",
        "ExecStart=/usr/local/bin/rvsd --state-dir /var/lib/rvs --socket /run/rvs/rvsd.sock",
        "WantedBy=multi-user.target",
    ] {
        assert!(lines.contains(&want), "{want} missing from the unit");
    }
    // systemd's own parser, on a copy that runs this build's rvsd (verify
    // checks that the binary exists). It warns, but exits 0, on unknown
    // keys and bad values: any output is a failure.
    let have = Command::new("systemd-analyze").arg("--version").output();
    if !have.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing in CI (package systemd)"
        );
        eprintln!("skipping the systemd-analyze check: not installed");
        return;
    }
    let t = TempDir::new();
    let copy = t.0.join("rvsd.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/rvsd", env!("CARGO_BIN_EXE_rvsd")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify: {text}"
    );
}
