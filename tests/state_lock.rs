//! One rvsd per state directory: a second daemon started on the same
//! `--state-dir` exits at once with an error naming the first one's pid,
//! without touching the first one's socket, state or bridges; `kill -9`
//! of the first releases the lock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_second_rvsd_on_the_same_state_dir_is_refused() {
    if !require_root() {
        return;
    }
    let mut d = Rvsd::start();
    let br = d.add_br();
    d.ok(&["add-flow", &br, "priority=7,actions=drop"]);
    let state = std::fs::read(d.state_file()).expect("state file");
    let journals = |d: &Rvsd| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(d.state_dir())
            .unwrap()
            .flatten()
            .map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                (n, std::fs::read(e.path()).unwrap_or_default())
            })
            .collect();
        v.sort();
        v
    };
    let before = journals(&d);
    let socket_ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&d.socket).unwrap());

    // The same command line: same state dir, socket and config.
    let t = Instant::now();
    let out = d
        .command()
        .output()
        .expect("run a second rvsd on the same state dir");
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("second rvsd ({took:?}, {}): {err}", out.status);
    assert!(!out.status.success(), "the second rvsd must fail: {err}");
    assert!(took < Duration::from_secs(5), "refused only after {took:?}");
    let want = format!(
        "rvsd: state dir {} is in use by pid {}",
        d.state_dir().display(),
        d.pid()
    );
    assert!(err.contains(&want), "{want:?} not in {err:?}");

    // The first one is unaffected: same socket file, same state, same
    // bridge and flows, still answering.
    assert!(d.running());
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&d.socket).unwrap()),
        socket_ino,
        "the control socket was replaced"
    );
    assert_eq!(std::fs::read(d.state_file()).unwrap(), state);
    assert_eq!(journals(&d), before, "the state dir changed");
    assert!(d.ok(&["list-br"]).contains(&br));
    assert!(d
        .flows(&br)
        .iter()
        .any(|f| f.flow == "priority=7 actions=drop"));
    assert!(netdev_exists(&br));

    // kill -9 releases the lock: the next start restores the bridge.
    d.kill9();
    d.restart();
    assert!(d.ok(&["list-br"]).contains(&br));
    d.ok(&["del-br", &br]);
}
