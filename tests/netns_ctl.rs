//! rvsctl against a real daemon: error messages and exit codes end to end
//! (0 success, 1 rejected, 2 usage, 3 daemon unreachable).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::*;

#[test]
fn ctl_rejections_name_what_is_wrong() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let bra = d.add_br();
    let brb = d.add_br();
    let tap = uniq('t');
    d.ok(&["add-port", &bra, &tap]);

    // A port already on another bridge.
    let (code, err) = d.fails(&["add-port", &brb, &tap]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{tap} is already a port of {bra}")),
        "{err}"
    );
    // Unknown bridge.
    let (code, err) = d.fails(&["add-port", "rvtnosuchbr", "rvtnosuchport"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no bridge named rvtnosuchbr"), "{err}");
    let (code, err) = d.fails(&["dump-flows", "rvtnosuchbr"]);
    assert_eq!(code, 1);
    assert!(err.contains("rvtnosuchbr"), "{err}");
    // A bridge that exists.
    let (code, err) = d.fails(&["add-br", &bra]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    d.ok(&["add-br", &bra, "--may-exist"]);
    // Unknown port name in an action.
    let (code, err) = d.fails(&["add-flow", &bra, "actions=output:rvtnosuchtap"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("rvtnosuchtap"), "{err}");
    // Bad VLAN settings.
    let (code, err) = d.fails(&["add-port", &bra, &uniq('t'), "tag=5000"]);
    assert_eq!(code, 1);
    assert!(err.contains("tag"), "{err}");
    let (code, err) = d.fails(&["add-port", &bra, &uniq('t'), "vlan_mode=sideways"]);
    assert_eq!(code, 1);
    assert!(err.contains("vlan_mode"), "{err}");
    // Removing what is not there; --if-exists makes it fine.
    let (code, err) = d.fails(&["del-port", &bra, "rvtnosuchport"]);
    assert_eq!(code, 1);
    assert!(err.contains("rvtnosuchport"), "{err}");
    d.ok(&["del-port", &bra, "rvtnosuchport", "--if-exists"]);
    let (code, err) = d.fails(&["del-port", &brb, &tap]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{tap} is a port of {bra}")), "{err}");
    // A flow that does not parse: nothing added.
    let n = d.flows(&bra).len();
    let (code, err) = d.fails(&["add-flow", &bra, "priority=10,nw_src=10.0.0.1,actions=drop"]);
    assert_eq!(code, 1);
    assert!(!err.is_empty());
    assert_eq!(d.flows(&bra).len(), n);

    // Usage errors exit 2 without asking the daemon.
    let (code, _) = d.fails(&["add-port", &bra]);
    assert_eq!(code, 2);
    let (code, _) = d.fails(&["frobnicate"]);
    assert_eq!(code, 2);
    let (code, err) = d.fails(&["set", "port", &tap, "tag"]);
    assert_eq!(code, 2, "{err}");

    // The rejected requests changed nothing.
    let ports = d.ok(&["list-ports", &bra]);
    assert_eq!(ports.trim(), tap);
    assert_eq!(d.ok(&["list-ports", &brb]).trim(), "");
}

#[test]
fn ctl_unreachable_daemon_exits_3() {
    // No root needed: no daemon, no devices.
    let dir = TempDir::new();
    let bin = rvsctl_bin();
    let missing = dir.0.join("nobody.sock");
    let out = Command::new(&bin)
        .arg("--socket")
        .arg(&missing)
        .arg("list-br")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stderr.is_empty());
    // A socket file whose listener is gone: connection refused.
    let stale = dir.0.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let out = Command::new(&bin)
        .arg("--socket")
        .arg(&stale)
        .arg("show")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
