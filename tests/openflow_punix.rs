//! `punix:` controller targets never destroy what is at their path:
//! `set-controller` refuses a regular file (kept intact), rvsd's own
//! control socket, another bridge's listener and a stale socket of
//! unknown origin, rejecting the whole command; a fresh path serves
//! `ovs-ofctl` and survives restarts (`kill -9` included: the stale
//! socket is the bridge's own); and a saved target whose path became
//! unusable leaves rvsd starting and manageable, the target reported as
//! not running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// `ovs-ofctl -O OpenFlow13 show unix:PATH` (bounded to 10 s):
/// (success, output).
fn ofctl_show(path: &Path) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["10", "ovs-ofctl", "-O", "OpenFlow13", "show"])
        .arg(format!("unix:{}", path.display()))
        .output()
        .expect("run ovs-ofctl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Waits (≤ 10 s) until `ovs-ofctl show` answers on `path` for `br`.
fn assert_serves(d: &Rvsd, path: &Path, br: &str) {
    let r = poll(Duration::from_secs(10), || {
        let (ok, text) = ofctl_show(path);
        (ok && text.contains(&format!("LOCAL({br})"))).then_some(())
    });
    assert!(
        r.is_some(),
        "punix:{} does not serve ovs-ofctl: {}\n{}",
        path.display(),
        ofctl_show(path).1,
        d.log_text()
    );
}

fn is_socket(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

fn controllers(d: &Rvsd, br: &str) -> Vec<String> {
    d.ok(&["get-controller", br])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn punix_refuses_what_it_would_destroy_and_serves_a_fresh_path() {
    if !require_root() || !have_ofctl() {
        return;
    }
    let mut d = Rvsd::start();
    let br = d.add_br();
    let br2 = d.add_br();
    let dir = d.dir().to_path_buf();

    // A regular file: refused, whole command rejected, content intact.
    let file = dir.join("precious.txt");
    std::fs::write(&file, "do not lose me\n").unwrap();
    let t = format!("punix:{}", file.display());
    let (code, err) = d.fails(&["set-controller", &br, &t]);
    assert_eq!(code, 1, "{err}");
    let want = format!(
        "set-controller {br}: {t}: {} exists and is not a socket (a regular file); refusing to replace it; nothing was changed",
        file.display()
    );
    assert!(err.contains(&want), "{want:?} not in {err:?}");
    let port = free_port();
    let (_, err) = d.fails(&["set-controller", &br, &format!("ptcp:{port}"), &t]);
    assert!(err.contains("is not a socket"), "{err}");
    assert!(controllers(&d, &br).is_empty(), "nothing was changed");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "do not lose me\n");

    // rvsd's control socket, however spelled: refused, rvsctl still works.
    for spelling in [
        d.socket.clone(),
        dir.join(".").join("rvsd.sock"),
        dir.join("state").join("..").join("rvsd.sock"),
    ] {
        let t = format!("punix:{}", spelling.display());
        let (code, err) = d.fails(&["set-controller", &br, &t]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("is rvsd's control socket"), "{t}: {err}");
    }
    assert!(is_socket(&d.socket));
    assert!(d.ok(&["list-br"]).contains(&br));
    // Nor anything in the state directory.
    let t = format!("punix:{}", d.state_dir().join("x.sock").display());
    let (_, err) = d.fails(&["set-controller", &br, &t]);
    assert!(err.contains("inside rvsd's state directory"), "{err}");

    // A stale socket nobody claims: refused and left alone.
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let (_, err) = d.fails(&["set-controller", &br, &format!("punix:{}", stale.display())]);
    assert!(err.contains("nobody listens on"), "{err}");
    assert!(is_socket(&stale));

    // A fresh path works with ovs-ofctl.
    let mgmt = dir.join("br.mgmt");
    let t = format!("punix:{}", mgmt.display());
    d.ok(&["set-controller", &br, &t]);
    assert_serves(&d, &mgmt, &br);
    d.ok(&["set-controller", &br, &t]);
    assert_eq!(controllers(&d, &br), std::slice::from_ref(&t));
    // It is not another bridge's, however spelled.
    for spelling in [mgmt.clone(), dir.join(".").join("br.mgmt")] {
        let t2 = format!("punix:{}", spelling.display());
        let (_, err) = d.fails(&["set-controller", &br2, &t2]);
        assert!(
            err.contains(&format!("already a controller of bridge {br}")),
            "{err}"
        );
    }

    // A clean restart removes and re-creates it.
    d.stop();
    assert!(!mgmt.exists(), "a clean stop removes the listener's socket");
    d.restart();
    assert_serves(&d, &mgmt, &br);
    // kill -9 leaves it behind, stale: it is this bridge's (saved in its
    // state), so the restart takes it over.
    d.kill9();
    assert!(is_socket(&mgmt));
    d.restart();
    assert_serves(&d, &mgmt, &br);
    assert!(d.ok(&["list-br"]).contains(&br));
    // del-controller removes the socket.
    d.ok(&["del-controller", &br]);
    assert!(
        poll(Duration::from_secs(5), || (!mgmt.exists()).then_some(())).is_some(),
        "del-controller left {}",
        mgmt.display()
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "do not lose me\n");
}

#[test]
fn saved_punix_targets_that_became_unusable_leave_rvsd_manageable() {
    if !require_root() || !have_ofctl() {
        return;
    }
    let mut d = Rvsd::start();
    let br = d.add_br();
    let dir = d.dir().to_path_buf();
    let (p1, p2) = (dir.join("one.mgmt"), dir.join("two.mgmt"));
    let (t1, t2) = (
        format!("punix:{}", p1.display()),
        format!("punix:{}", p2.display()),
    );
    d.ok(&["set-controller", &br, &t1, &t2]);
    assert_serves(&d, &p1, &br);
    d.stop();
    // While rvsd is down: a regular file appears at one path, and the
    // state (as an older rvsd could have saved it) points the other at
    // the control socket.
    std::fs::write(&p1, "someone else's file\n").unwrap();
    let state = std::fs::read_to_string(d.state_file()).unwrap();
    assert!(state.contains(&t2), "{state}");
    let tc = format!("punix:{}", d.socket.display());
    std::fs::write(d.state_file(), state.replace(&t2, &tc)).unwrap();

    d.restart();
    // Give the channel time to start its listeners: the control socket
    // must still be rvsd's own and answer.
    std::thread::sleep(Duration::from_secs(2));
    assert!(is_socket(&d.socket));
    assert!(d.ok(&["list-br"]).contains(&br));
    assert_eq!(
        std::fs::read_to_string(&p1).unwrap(),
        "someone else's file\n"
    );
    // Both are still configured (and saved), reported as not running.
    assert_eq!(controllers(&d, &br), [t1.clone(), tc.clone()]);
    let out = d.ctl(&["get-controller", &br]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("controller {t1} is not running"))
            && err.contains("(a regular file)"),
        "{err}"
    );
    assert!(err.contains("rvsd's control socket"), "{err}");
    let v = d.json(&["get-controller", &br]);
    assert_eq!(v["failing"].as_array().map(Vec::len), Some(2), "{v}");
    let log = d.log_text();
    assert!(
        log.contains(&format!(
            "controller {t1} from the saved state cannot listen"
        )),
        "{log}"
    );

    // Setting them again checks again: still refused while unusable, and
    // a usable path runs.
    let (_, err) = d.fails(&["set-controller", &br, &t1]);
    assert!(err.contains("is not a socket"), "{err}");
    std::fs::remove_file(&p1).unwrap();
    d.ok(&["set-controller", &br, &t1]);
    assert_serves(&d, &p1, &br);
    let v = d.json(&["get-controller", &br]);
    assert_eq!(v["failing"].as_array().map(Vec::len), Some(0), "{v}");
    d.ok(&["del-controller", &br]);
}
