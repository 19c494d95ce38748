//! os-ken's `simple_switch_13` learning switch drives rvs: rvsd connects
//! out to `osken-manager` (`tcp:` target), two namespaces ping through it
//! and the learned flows show up in `dump-flows`.
//!
//! os-ken is installed with pip into a venv cached under cargo's
//! `CARGO_TARGET_TMPDIR` (`pip install 'os-ken<4'`; `simple_switch_13.py`
//! comes from the os-ken 1.4.1 wheel, as 3.x dropped the sample apps).
//! Without network access the test is skipped, except in CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The venv's `osken-manager` and `simple_switch_13.py`, installing them
/// on first use.
fn osken() -> Option<(PathBuf, PathBuf)> {
    let mgr = |d: &Path| d.join("venv/bin/osken-manager");
    let app = |d: &Path| d.join("simple_switch_13.py");
    let dir = pip_venv(
        "osken",
        "os-ken<4",
        |d| mgr(d).exists() && app(d).exists(),
        |d| {
            let pip = d.join("venv/bin/pip");
            let Some(pip) = pip.to_str() else {
                return false;
            };
            // The 1.4.1 wheel still has the sample apps 3.x dropped.
            let wheel = "import glob,zipfile; \
                z=zipfile.ZipFile(glob.glob('wheel/os_ken-1.4.1-*.whl')[0]); \
                open('simple_switch_13.py','wb').write(z.read('os_ken/app/simple_switch_13.py'))";
            sh(
                &[
                    pip,
                    "download",
                    "-q",
                    "--no-deps",
                    "-d",
                    "wheel",
                    "os-ken==1.4.1",
                ],
                d,
            ) && sh(&["python3", "-c", wheel], d)
        },
    )?;
    Some((mgr(&dir), app(&dir)))
}

#[test]
fn osken_simple_switch_13_learns_and_forwards() {
    if !require_root() {
        return;
    }
    let Some((mgr, app)) = osken() else { return };
    let d = Rvsd::start();
    let br = d.add_br();
    let h1 = tap_host(&d, &br, &[], Some("10.7.3.1/24"));
    let h2 = tap_host(&d, &br, &[], Some("10.7.3.2/24"));
    d.ok(&["set-fail-mode", &br, "secure"]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let tmp = TempDir::new();
    let log = tmp.0.join("osken.log");
    let logf = std::fs::File::create(&log).unwrap();
    let child = Command::new(&mgr)
        .args(["--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port"])
        .arg(port.to_string())
        .arg(&app)
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .expect("spawn osken-manager");
    let _m = Manager(child, log);
    d.ok(&["set-controller", &br, &format!("tcp:127.0.0.1:{port}")]);
    let connected = poll(Duration::from_secs(30), || {
        let v = d.json(&["get-controller", &br]);
        (v["connected"].as_array().map(Vec::len) == Some(1)).then_some(())
    });
    assert!(
        connected.is_some(),
        "os-ken never connected:\n{}",
        d.log_text()
    );
    // simple_switch_13 installs its table-miss flow on connection.
    let miss = poll(Duration::from_secs(10), || {
        d.flows(&br)
            .into_iter()
            .find(|f| f.flow == "priority=0 actions=CONTROLLER:65535")
    });
    assert!(miss.is_some(), "no table-miss flow: {:#?}", d.flows(&br));
    let ok = poll(Duration::from_secs(20), || {
        (h1.ping(h2.ip(), 2).received > 0).then_some(())
    });
    assert!(ok.is_some(), "no ping through os-ken:\n{}", d.log_text());
    h2.assert_ping(h1.ip());
    // Learned flows: priority=1,in_port=..,dl_src=..,dl_dst=.. actions=output:..
    let flows = d.flows(&br);
    let learned: Vec<_> = flows.iter().filter(|f| f.priority == 1).collect();
    assert!(
        learned
            .iter()
            .any(|f| f.flow.contains(&format!("dl_dst={}", h2.mac))
                && f.flow.contains("actions=output:2")),
        "no learned flow to h2: {flows:#?}"
    );
    assert!(
        learned
            .iter()
            .any(|f| f.flow.contains(&format!("dl_dst={}", h1.mac))
                && f.flow.contains("actions=output:1")),
        "no learned flow to h1: {flows:#?}"
    );
}
