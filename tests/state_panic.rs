//! Crash handling: a panic anywhere in rvsd (request handler, tokio task,
//! datapath worker) and a datapath worker that stops with an error end
//! the process non-zero within seconds, with the cause in the log, and a
//! restart on the same state directory restores everything acknowledged.
//!
//! The failures are injected with the debug-build-only `debug_fault`
//! request, which rvsd serves only when started with `--debug-faults`
//! (release builds have neither; see `src/main.rs`). Before issue 11, a
//! panicking request handler poisoned the switch lock and left a daemon
//! that answered every request with an error and never exited, and a dead
//! worker left a switch that no longer forwarded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

const FLOWS: &[&str] = &[
    "cookie=0x7,priority=100,ip,nw_dst=10.7.0.9,actions=drop",
    "table=1,priority=5,dl_type=0x88cc,actions=drop",
    "priority=50,dl_type=0x88cc,actions=resubmit(,1)",
];

fn fault_request(fault: &str) -> String {
    format!(r#"{{"type":"debug_fault","fault":"{fault}"}}"#)
}

fn flow_texts(d: &Rvsd, br: &str) -> Vec<String> {
    let mut v: Vec<String> = d.flows(br).into_iter().map(|f| f.flow).collect();
    v.sort();
    v
}

#[test]
fn panics_and_dead_workers_exit_and_a_restart_restores_the_state() {
    if !require_root() {
        return;
    }
    let mut d = Rvsd::start_with(&["--debug-faults", "--workers", "2"]);
    let br = d.add_br();
    d.ok(&["set", "bridge", &br, "mac-aging-time=99", "vlan-limit=2"]);
    let port = uniq('p');
    d.ok(&["add-port", &br, &port, "tag=10"]);
    for f in FLOWS {
        d.ok(&["add-flow", &br, f]);
    }
    let mut want = flow_texts(&d, &br);
    assert_eq!(want.len(), FLOWS.len() + 1, "{want:?}");

    // (fault, exit status, what the log must say)
    let cases = [
        (
            "control-panic",
            101,
            "at src/control/switch/mod.rs:",
            "injected fault: control-plane panic; exiting with status 101",
        ),
        (
            "task-panic",
            101,
            "at src/control/switch/mod.rs:",
            "injected fault: tokio task panic; exiting with status 101",
        ),
        (
            "worker-panic",
            101,
            "panic in thread rvs-dp0 at src/datapath/worker.rs:",
            "injected fault: datapath worker 0 panics; exiting with status 101",
        ),
        (
            "worker-error",
            1,
            "ERROR datapath worker rvs-dp0 stopped:",
            "injected fault: the worker returned an error; exiting with status 1",
        ),
    ];
    for (i, (fault, status, where_, what)) in cases.into_iter().enumerate() {
        let before = d.log_text().len();
        let mut c = d.conn();
        c.send_raw(format!("{}\n", fault_request(fault)).as_bytes())
            .expect("send the fault request");
        let t0 = Instant::now();
        let st = d.wait_exit(Duration::from_secs(5)).unwrap_or_else(|| {
            panic!(
                "{fault}: rvsd still runs 5 s later:\n{}",
                &d.log_text()[before..]
            )
        });
        let log = d.log_text()[before..].to_string();
        assert_eq!(st.code(), Some(status), "{fault}: {st}\n{log}");
        assert!(log.contains(where_), "{fault}: no {where_:?} in\n{log}");
        assert!(log.contains(what), "{fault}: no {what:?} in\n{log}");
        eprintln!("{fault}: exited {st} after {:?}", t0.elapsed());
        if fault == "control-panic" {
            // The handler died under the switch lock, before replying.
            assert!(c.recv().is_none(), "{fault}: the request was answered");
        }

        d.restart();
        assert_eq!(flow_texts(&d, &br), want, "{fault}: flows after restart");
        assert_eq!(d.show_port(&br, &port).tag, Some(10));
        let export = d.ok(&["export"]);
        assert!(export.contains("mac_aging_time = 99"), "{export}");
        assert!(export.contains("vlan_limit = 2"), "{export}");
        // The restarted daemon takes changes (nothing is left poisoned).
        let f = format!("priority=7,ip,nw_dst=10.7.1.{i},actions=drop");
        d.ok(&["add-flow", &br, &f]);
        want = flow_texts(&d, &br);
    }

    // A debug build started without --debug-faults refuses the request.
    let plain = Rvsd::start();
    let r = plain.conn().call_raw(&fault_request("control-panic"));
    assert!(resp_err(&r).contains("debug faults are off"), "{r}");
    assert!(plain.ctl(&["list-br"]).status.success());
}
