//! FLOW_REMOVED as a real controller sees it: an os-ken app (written by
//! the test) installs flows with and without `OFPFF_SEND_FLOW_REM` when
//! rvsd connects to it, deletes two of them later, and logs every
//! FLOW_REMOVED it receives as one JSON line.
//!
//! Expected: exactly three FLOW_REMOVEDs — IDLE_TIMEOUT (0) for the idle
//! flow, HARD_TIMEOUT (1) for the hard-timeout flow in table 3, DELETE
//! (2) for the flow deleted with DELETE_STRICT, carrying the frames that
//! hit it — and none for the idle flow without the flag, nor for a
//! flagged flow deleted after the app masked OFPRR_DELETE out of its
//! async configuration (SET_ASYNC).
//!
//! os-ken is installed with pip into the venv `openflow_osken.rs` uses
//! (`pip install 'os-ken<4'`, cached under `CARGO_TARGET_TMPDIR`).
//! Without network access the test is skipped, except in CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The os-ken app. `GO_FILE` is where the test signals that it has sent
/// its frames to the flow that is deleted later.
const APP: &str = r#"
import json
import os
import time

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3

GO_FILE = os.environ["RVS_FLOWREM_GO"]


def say(*parts):
    print(*parts, flush=True)


class FlowRem(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.removed = set()
        self.started = False

    def flow(self, dp, cookie, table, prio, dst, idle=0, hard=0, flags=0,
             command=None):
        ofp, p = dp.ofproto, dp.ofproto_parser
        dp.send_msg(p.OFPFlowMod(
            datapath=dp, cookie=cookie, table_id=table,
            command=ofp.OFPFC_ADD if command is None else command,
            idle_timeout=idle, hard_timeout=hard, priority=prio,
            out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, flags=flags,
            match=p.OFPMatch(eth_type=0x0800, ipv4_dst=dst),
            instructions=[]))

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def features(self, ev):
        dp = ev.msg.datapath
        if self.started:
            say("RECONNECTED")
            return
        self.started = True
        ofp = dp.ofproto
        rem = ofp.OFPFF_SEND_FLOW_REM
        self.flow(dp, 0x11, 0, 11, "10.7.9.1", idle=1, flags=rem)
        self.flow(dp, 0x22, 3, 22, "10.7.9.2", hard=2, flags=rem)
        self.flow(dp, 0x33, 0, 33, "10.7.9.3", flags=rem)
        self.flow(dp, 0x44, 0, 44, "10.7.9.4", idle=1)
        self.flow(dp, 0x55, 0, 55, "10.7.9.5", flags=rem)
        dp.send_msg(dp.ofproto_parser.OFPBarrierRequest(dp))
        say("INSTALLED", time.time())
        hub.spawn(self.later, dp)

    def later(self, dp):
        ofp, p = dp.ofproto, dp.ofproto_parser
        end = time.time() + 30
        while not os.path.exists(GO_FILE):
            if time.time() > end:
                say("NO_GO")
                return
            hub.sleep(0.05)
        hub.sleep(1)
        say("DELETE", time.time())
        self.flow(dp, 0x33, 0, 33, "10.7.9.3", command=ofp.OFPFC_DELETE_STRICT)
        dp.send_msg(p.OFPBarrierRequest(dp))
        end = time.time() + 5
        while 0x33 not in self.removed and time.time() < end:
            hub.sleep(0.05)
        # From now on no FLOW_REMOVED for deletes on this connection.
        mask = 1 << ofp.OFPRR_IDLE_TIMEOUT | 1 << ofp.OFPRR_HARD_TIMEOUT
        dp.send_msg(p.OFPSetAsync(dp, [7, 0], [7, 7], [mask, 0]))
        self.flow(dp, 0x55, 0, 55, "10.7.9.5", command=ofp.OFPFC_DELETE_STRICT)
        dp.send_msg(p.OFPBarrierRequest(dp))
        hub.sleep(1.5)
        say("DONE", time.time())

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def flow_removed(self, ev):
        m = ev.msg
        self.removed.add(m.cookie)
        say("FLOWREM", json.dumps({
            "cookie": m.cookie, "priority": m.priority, "reason": m.reason,
            "table_id": m.table_id,
            "duration": m.duration_sec + m.duration_nsec / 1e9,
            "idle_timeout": m.idle_timeout, "hard_timeout": m.hard_timeout,
            "packet_count": m.packet_count, "byte_count": m.byte_count,
            "ipv4_dst": m.match.get("ipv4_dst"), "at": time.time()}))

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def barrier(self, ev):
        say("BARRIER", time.time())

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def error(self, ev):
        say("OFERROR", ev.msg.type, ev.msg.code)
"#;

/// Lines of the manager's log that start with `tag`, without the tag.
fn tagged(log: &str, tag: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.strip_prefix(tag))
        .filter_map(|l| l.strip_prefix(' '))
        .map(str::to_string)
        .collect()
}

#[test]
fn osken_receives_flow_removed_for_timeouts_and_deletes() {
    if !require_root() {
        return;
    }
    let Some(mgr) = osken_manager() else { return };
    let started = Instant::now();
    let d = Rvsd::start();
    let br = d.add_br();
    // A host whose frames to 10.7.9.3 hit the flow that is deleted later
    // (a static neighbour: no ARP, which no flow would answer).
    let h = tap_host(&d, &br, &[], Some("10.7.9.9/24"));
    h.ns.exec(&[
        "ip",
        "neigh",
        "add",
        "10.7.9.3",
        "lladdr",
        "02:00:00:07:09:03",
        "dev",
        &h.dev,
    ]);
    d.ok(&["set-fail-mode", &br, "secure"]);
    // Only the app's flows (no default NORMAL flow).
    d.ok(&["del-flows", &br]);

    let tmp = TempDir::new();
    let app = tmp.0.join("flowrem_app.py");
    std::fs::write(&app, APP).unwrap();
    let go = tmp.0.join("go");
    let log = tmp.0.join("osken.log");
    let logf = std::fs::File::create(&log).unwrap();
    let port = free_port();
    let child = Command::new(&mgr)
        .args(["--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port"])
        .arg(port.to_string())
        .arg(&app)
        .env("RVS_FLOWREM_GO", &go)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .expect("spawn osken-manager");
    let _m = Manager(child, log.clone());
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    d.ok(&["set-controller", &br, &format!("tcp:127.0.0.1:{port}")]);

    // The app installs its five flows when rvsd connects (the idle ones
    // live for 1-2 s: every flow seen while polling counts).
    let want = [
        "cookie=0x11, idle_timeout=1, priority=11,ip,nw_dst=10.7.9.1 actions=drop",
        "cookie=0x22, table=3, hard_timeout=2, priority=22,ip,nw_dst=10.7.9.2 actions=drop",
        "cookie=0x33, priority=33,ip,nw_dst=10.7.9.3 actions=drop",
        "cookie=0x44, idle_timeout=1, priority=44,ip,nw_dst=10.7.9.4 actions=drop",
        "cookie=0x55, priority=55,ip,nw_dst=10.7.9.5 actions=drop",
    ];
    let mut seen = std::collections::BTreeSet::new();
    let installed = poll(Duration::from_secs(20), || {
        seen.extend(d.flows(&br).into_iter().map(|f| f.flow));
        want.iter().all(|w| seen.contains(*w)).then_some(())
    });
    assert!(
        installed.is_some(),
        "the app's flows never all appeared; seen: {seen:#?}\nosken:\n{}\nrvsd:\n{}",
        log_text(),
        d.log_text()
    );
    assert_eq!(seen.len(), 5, "unexpected flows: {seen:#?}");

    // Three frames hit the flow that will be deleted; then the app may go.
    let r = h.ping("10.7.9.3", 3);
    assert_eq!(r.received, 0, "{}", r.output);
    let hit = poll(Duration::from_secs(5), || {
        let f = d.flows(&br).into_iter().find(|f| f.cookie == 0x33)?;
        (f.n_packets == 3).then_some(f)
    });
    assert!(hit.is_some(), "0x33 not hit 3 times: {:#?}", d.flows(&br));
    std::fs::write(&go, "go").unwrap();

    let done = poll(Duration::from_secs(15), || {
        let t = log_text();
        (t.contains("DONE ") || t.contains("NO_GO")).then_some(())
    });
    let text = log_text();
    assert!(
        done.is_some() && text.contains("DONE "),
        "the app did not finish:\n{text}\nrvsd:\n{}",
        d.log_text()
    );
    assert!(tagged(&text, "OFERROR").is_empty(), "errors:\n{text}");
    assert!(
        tagged(&text, "RECONNECTED").is_empty(),
        "reconnected:\n{text}"
    );
    assert!(!text.contains("Traceback"), "the app failed:\n{text}");

    let rems: Vec<Value> = tagged(&text, "FLOWREM")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    eprintln!("the app's timeline:");
    for l in text.lines().filter(|l| {
        ["INSTALLED", "BARRIER", "DELETE", "FLOWREM", "DONE"]
            .iter()
            .any(|t| l.starts_with(t))
    }) {
        eprintln!("  {l}");
    }
    let cookies: Vec<u64> = rems.iter().map(|r| r["cookie"].as_u64().unwrap()).collect();
    let mut sorted = cookies.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        vec![0x11, 0x22, 0x33],
        "want exactly the FLOW_REMOVEDs of 0x11, 0x22, 0x33:\n{text}"
    );
    let get = |c: u64| rems.iter().find(|r| r["cookie"] == c).unwrap();
    let installed_at: f64 = tagged(&text, "INSTALLED")[0].parse().unwrap();
    let deleted_at: f64 = tagged(&text, "DELETE")[0].parse().unwrap();
    let (idle, hard, del) = (get(0x11), get(0x22), get(0x33));
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap();
    let u = |v: &Value, k: &str| v[k].as_u64().unwrap();

    // (reason, priority, table, idle, hard, packets, bytes)
    let fields = |v: &Value| {
        (
            u(v, "reason"),
            u(v, "priority"),
            u(v, "table_id"),
            u(v, "idle_timeout"),
            u(v, "hard_timeout"),
            u(v, "packet_count"),
            u(v, "byte_count"),
        )
    };
    assert_eq!(fields(idle), (0, 11, 0, 1, 0, 0, 0), "idle: {idle}");
    assert_eq!(fields(hard), (1, 22, 3, 0, 2, 0, 0), "hard: {hard}");
    // Three ICMP echo requests of 98 bytes (14 + 20 + 8 + 56).
    assert_eq!(fields(del), (2, 33, 0, 0, 0, 3, 3 * 98), "delete: {del}");
    for (v, ip) in [(idle, "10.7.9.1"), (hard, "10.7.9.2"), (del, "10.7.9.3")] {
        assert_eq!(v["ipv4_dst"], ip, "match of {v}");
    }

    // Durations: expiry runs once a second, so a timeout of T seconds
    // removes the flow T to T+1 s after it was installed (plus slack for
    // a loaded machine); never before T.
    let d_idle = f(idle, "duration");
    let d_hard = f(hard, "duration");
    let d_del = f(del, "duration");
    assert!((1.0..3.5).contains(&d_idle), "idle duration {d_idle}");
    assert!((2.0..4.0).contains(&d_hard), "hard duration {d_hard}");
    let lived = deleted_at - installed_at;
    assert!(
        d_del >= lived - 0.5 && d_del <= lived + 1.0,
        "deleted flow lived {d_del} s; the app deleted it {lived} s after installing"
    );
    // And when they arrived, on the app's clock.
    let at = |v: &Value| f(v, "at") - installed_at;
    assert!(
        (1.0..4.0).contains(&at(idle)),
        "idle arrived at {}",
        at(idle)
    );
    assert!(
        (2.0..4.5).contains(&at(hard)),
        "hard arrived at {}",
        at(hard)
    );
    assert!(at(del) >= lived, "delete arrived before it was sent");

    // Every flow is gone: expired (with or without FLOW_REMOVED) or
    // deleted (0x55 silently: its reason was masked out).
    let left = d.flows(&br);
    assert!(left.is_empty(), "flows left: {left:#?}");
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}
