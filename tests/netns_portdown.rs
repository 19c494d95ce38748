//! A port's netdev disappears while other ports carry traffic: the others
//! keep forwarding, the daemon keeps answering, and `show` reports the lost
//! port down with a reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn portdown_netdev_deleted_while_traffic_flows() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let h1 = tap_host(&d, &br, &[], Some("10.7.0.1/24"));
    let h2 = tap_host(&d, &br, &[], Some("10.7.0.2/24"));
    let h3 = tap_host(&d, &br, &[], Some("10.7.0.3/24"));
    let h4 = veth_host(&d, &br, &[], Some("10.7.0.4/24"));
    h1.assert_ping(h2.ip());
    h1.assert_ping(h3.ip());
    h1.assert_ping(h4.ip());
    let (p3, p4) = (h3.port.clone(), h4.port.clone());

    // 40 echo requests over 4 s between h1 and h2 while the others vanish.
    let bg = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &h1.ns.name,
            "ping",
            "-n",
            "-c",
            "40",
            "-i",
            "0.1",
            "-W",
            "1",
            h2.ip(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // The TAP deleted inside its namespace.
    run(&["ip", "-n", &h3.ns.name, "link", "del", &h3.dev]);
    std::thread::sleep(Duration::from_millis(800));
    // The veth peer's namespace deleted (both veth ends go with it).
    drop(h4);
    let out = bg.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("40 packets transmitted, 40 received"),
        "h1 -> h2 lost packets while other ports went away: {text}"
    );
    h2.assert_ping(h1.ip());

    for p in [&p3, &p4] {
        let info = poll(Duration::from_secs(3), || {
            let i = d.show_port(&br, p);
            (!i.up).then_some(i)
        })
        .unwrap_or_else(|| panic!("port {p} still up: {:?}", d.show_port(&br, p)));
        let reason = info.down_reason.clone().unwrap_or_default();
        assert!(!reason.is_empty(), "{info:?}");
        let st = d.port_stats(&br, p);
        assert!(!st.up, "{st:?}");
    }
    let table = d.ok(&["show"]);
    assert!(
        table.contains(&format!("Port {p3} (ofport 3, tap, down: ")),
        "{table}"
    );

    // The dead ports can be removed and a port of the same name re-added.
    d.ok(&["del-port", &br, &p3]);
    d.ok(&["del-port", &p4]);
    let ports = d.ok(&["list-ports", &br]);
    assert_eq!(ports.lines().count(), 2, "{ports}");
    d.ok(&["add-port", &br, &p3]);
    assert!(d.show_port(&br, &p3).up);
    h1.assert_ping(h2.ip());
}

#[test]
fn portdown_link_down_and_up_again() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let h1 = veth_host(&d, &br, &[], Some("10.7.1.1/24"));
    let h2 = veth_host(&d, &br, &[], Some("10.7.1.2/24"));
    h1.assert_ping(h2.ip());
    // Administratively down inside the namespace: carrier lost on the
    // root end; traffic stops and resumes when the link comes back.
    run(&["ip", "-n", &h2.ns.name, "link", "set", &h2.dev, "down"]);
    h1.assert_no_ping(h2.ip());
    run(&["ip", "-n", &h2.ns.name, "link", "set", &h2.dev, "up"]);
    wait_link_up(Some(&h2.ns), &h2.dev);
    wait_link_up(None, &h2.port);
    let ok = poll(Duration::from_secs(5), || {
        (h1.ping(h2.ip(), 1).received == 1).then_some(())
    });
    assert!(ok.is_some(), "no traffic after the link came back");
    assert!(d.show_port(&br, &h2.port).up);
}
