//! OpenFlow bundles from the real `ovs-ofctl -O OpenFlow13 --bundle`
//! (the ONF bundle extension): a bundle applies whole, and a bundle one
//! of whose flow mods fails (table full) changes nothing — the error
//! names the failing flow mod and the commit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn ofctl(args: &[&str]) -> (bool, String) {
    let out = Command::new("timeout")
        .arg("30")
        .arg("ovs-ofctl")
        .args(["-O", "OpenFlow13"])
        .args(args)
        .output()
        .expect("run ovs-ofctl (install openvswitch-common)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn flows_file(d: &Rvsd, name: &str, range: std::ops::Range<u32>, port: u32) -> String {
    let text: String = range
        .map(|i| {
            format!(
                "priority={},ip,nw_dst=10.{}.{}.{},actions=output:{port}\n",
                100 + i % 1000,
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255
            )
        })
        .collect();
    let p = d.state_dir().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn bundles_apply_whole_or_not_at_all() {
    if !require_root() || !have_ofctl() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let port = free_port();
    d.ok(&["set-controller", &br, &format!("ptcp:{port}")]);
    let target = format!("tcp:127.0.0.1:{port}");
    poll(Duration::from_secs(10), || {
        ofctl(&["show", &target]).0.then_some(())
    })
    .expect("ovs-ofctl reaches rvsd");

    // 3,000 flows in one bundle: all there.
    let f = flows_file(&d, "a.txt", 0..3000, 2);
    let (ok, text) = ofctl(&["--bundle", "add-flows", &target, &f]);
    assert!(ok, "{text}");
    assert_eq!(d.flows(&br).len(), 3001);

    // A bundle that passes the flow limit half way: nothing of it stays,
    // not even its deletes.
    d.ok(&["set", "bridge", &br, "flow-limit=4000"]);
    let g = flows_file(&d, "b.txt", 3000..5000, 3);
    let mut text_b = String::from("delete_strict priority=100,ip,nw_dst=10.0.0.0\n");
    text_b.push_str(&std::fs::read_to_string(&g).unwrap());
    std::fs::write(&g, text_b).unwrap();
    let (ok, text) = ofctl(&["--bundle", "add-flows", &target, &g]);
    assert!(!ok, "the bundle must fail: {text}");
    assert!(text.contains("OFPFMFC_TABLE_FULL"), "{text}");
    assert!(text.contains("OFPBFC_MSG_FAILED"), "{text}");
    let flows = d.flows(&br);
    assert_eq!(flows.len(), 3001, "a failed bundle changed the table");
    assert!(
        flows.iter().any(|f| f.flow.contains("nw_dst=10.0.0.0 ")),
        "the bundle's delete was not rolled back"
    );
    assert!(flows.iter().all(|f| !f.flow.contains("output:3")));

    // The same bundle with room: applied, and it survives a restart.
    d.ok(&["set", "bridge", &br, "flow-limit=10000"]);
    let (ok, text) = ofctl(&["--bundle", "add-flows", &target, &g]);
    assert!(ok, "{text}");
    assert_eq!(d.flows(&br).len(), 5000);
    let mut d = d;
    d.kill9();
    d.restart();
    assert_eq!(d.flows(&br).len(), 5000, "bundle lost by kill -9");
}
