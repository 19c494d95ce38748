//! The OVSDB endpoint across restarts and failures, driven by the real
//! `ovs-vsctl`: the `ovsdb_remote` configuration key, an interface whose
//! netdev is missing (ofport -1 with ovs-vswitchd's error, attached once
//! the netdev appears), and columns rvs does not use surviving a restart
//! and a `kill -9`.
//!
//! rvsd runs in its own namespace, so bridge and netdev names are private.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{poll, require_root, Netns, Rvsd};

/// `ovs-vsctl --db=unix:DB --timeout=5 ARGS` inside `ns`.
fn vsctl(ns: &Netns, db: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &ns.name, "ovs-vsctl"])
        .arg(format!("--db=unix:{db}"))
        .arg("--timeout=5")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ovs-vsctl")
}

fn ok(ns: &Netns, db: &str, args: &[&str]) -> String {
    let o = vsctl(ns, db, args);
    assert!(
        o.status.success(),
        "ovs-vsctl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Starts rvsd in `ns` with its OVSDB socket given by the configuration
/// key (not the command line); returns it and the socket's path.
fn start(ns: &Netns) -> (Rvsd, String) {
    let mut db = String::new();
    let d = Rvsd::start_in_with(ns, |dir| {
        db = dir.join("db.sock").display().to_string();
        std::fs::write(
            dir.join("empty.toml"),
            format!("ovsdb_remote = [\"punix:{db}\"]\n"),
        )
        .unwrap();
        Vec::new()
    });
    (d, db)
}

#[test]
fn config_key_missing_netdev_and_restarts() {
    if !require_root() || !common::ovs::have_ovs() {
        return;
    }
    let ns = Netns::new();
    let (mut d, db) = start(&ns);
    // The key is served and kept in the state (export).
    assert!(d.ok(&["export"]).contains("ovsdb_remote"));
    ok(&ns, &db, &["add-br", "br0"]);
    // A port whose netdev does not exist: committed, ofport -1, the
    // reason in Interface.error, and ovs-vsctl says so (exit 0, as OVS).
    let o = vsctl(&ns, &db, &["add-port", "br0", "nodev0"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("Error detected while setting up 'nodev0': could not open network device nodev0 (No such device)"),
        "{err}"
    );
    assert_eq!(
        ok(&ns, &db, &["get", "Interface", "nodev0", "ofport"]),
        "-1"
    );
    // The netdev appears: attached within a few seconds, error cleared.
    ns.exec(&[
        "ip", "link", "add", "nodev0", "type", "veth", "peer", "name", "nodev0p",
    ]);
    ns.exec(&["ip", "link", "set", "nodev0", "up"]);
    let got = poll(Duration::from_secs(5), || {
        let of = ok(&ns, &db, &["get", "Interface", "nodev0", "ofport"]);
        (of != "-1").then_some(of)
    });
    assert_eq!(got.as_deref(), Some("1"), "{}", d.log_text());
    assert_eq!(ok(&ns, &db, &["get", "Interface", "nodev0", "error"]), "[]");
    assert!(d.ok(&["show"]).contains("nodev0"));
    // Columns rvs does not use, on every table ovs-vsctl touches.
    ok(
        &ns,
        &db,
        &[
            "set",
            "Port",
            "nodev0",
            "other_config:foo=bar",
            "--",
            "set",
            "Bridge",
            "br0",
            "external_ids:bridge-id=b0",
            "--",
            "set",
            "Open_vSwitch",
            ".",
            "external_ids:system-id=host-1",
        ],
    );
    ok(&ns, &db, &["create", "QoS", "type=linux-noop"]);
    // A port rvsctl adds is a row too.
    d.ok(&["add-port", "br0", "tp0", "type=internal", "tag=7"]);
    let seen = poll(Duration::from_secs(3), || {
        ok(&ns, &db, &["--if-exists", "get", "Port", "tp0", "tag"])
            .eq("7")
            .then_some(())
    });
    assert!(seen.is_some());
    let check = |d: &Rvsd, when: &str| {
        assert_eq!(
            ok(&ns, &db, &["get", "Port", "nodev0", "other_config:foo"]),
            "bar",
            "{when}"
        );
        assert_eq!(
            ok(&ns, &db, &["br-get-external-id", "br0", "bridge-id"]),
            "b0",
            "{when}"
        );
        assert_eq!(
            ok(
                &ns,
                &db,
                &["get", "Open_vSwitch", ".", "external_ids:system-id"]
            ),
            "host-1",
            "{when}"
        );
        assert_eq!(
            ok(
                &ns,
                &db,
                &["--columns=type", "find", "QoS", "type=linux-noop"]
            ),
            "type                : linux-noop",
            "{when}"
        );
        assert_eq!(
            ok(&ns, &db, &["list-ports", "br0"]),
            "nodev0\ntp0",
            "{when}"
        );
        assert_eq!(ok(&ns, &db, &["get", "Port", "tp0", "tag"]), "7", "{when}");
        assert_eq!(
            ok(&ns, &db, &["get", "Interface", "nodev0", "ofport"]),
            "1",
            "{when}"
        );
        assert!(d.ok(&["show"]).contains("tp0"), "{when}");
    };
    check(&d, "before restart");
    d.stop();
    d.restart();
    check(&d, "after a restart");
    d.kill9();
    d.restart();
    check(&d, "after kill -9");
}

#[test]
fn bad_ovsdb_remote_in_config_is_refused() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    // A configuration with a bad remote is refused whole by apply.
    let dir = common::TempDir::new();
    let f = dir.0.join("c.toml");
    std::fs::write(&f, "ovsdb_remote = [\"tcp:1.2.3.4:6640\"]\n").unwrap();
    let (code, err) = d.fails(&["apply", f.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("ovsdb_remote") && err.contains("punix:PATH or ptcp"),
        "{err}"
    );
    assert!(!d.ok(&["export"]).contains("ovsdb_remote"));
}

#[test]
fn ptcp_remote_serves_ovs_vsctl_and_a_second_unix_remote() {
    if !require_root() || !common::ovs::have_ovs() {
        return;
    }
    let ns = Netns::new();
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    let mut unix = String::new();
    let d = Rvsd::start_in_with(&ns, |dir| {
        unix = dir.join("db2.sock").display().to_string();
        vec![
            "--ovsdb-remote".to_string(),
            "ptcp:16640:127.0.0.1".to_string(),
            "--ovsdb-remote".to_string(),
            format!("punix:{unix}"),
        ]
    });
    let tcp = |args: &[&str]| {
        let o = Command::new("ip")
            .args(["netns", "exec", &ns.name, "ovs-vsctl"])
            .args(["--db=tcp:127.0.0.1:16640", "--timeout=5"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ovs-vsctl");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    tcp(&["add-br", "brt"]);
    assert!(d.ok(&["list-br"]).contains("brt"));
    // Both remotes are the same database.
    assert_eq!(ok(&ns, &unix, &["list-br"]), "brt");
    assert_eq!(tcp(&["br-exists", "brt"]), "");
    // The socket is root's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&unix).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn policing_columns_and_egress_policer_qos_reach_the_port() {
    if !require_root() || !common::ovs::have_ovs() {
        return;
    }
    let ns = Netns::new();
    let (d, db) = start(&ns);
    ok(&ns, &db, &["add-br", "br0"]);
    ok(
        &ns,
        &db,
        &[
            "add-port",
            "br0",
            "pq0",
            "--",
            "set",
            "Interface",
            "pq0",
            "type=internal",
            "ingress_policing_rate=10000",
            "ingress_policing_burst=1000",
        ],
    );
    // OVS's egress-policer: cir in bytes/s, cbs in bytes.
    ok(
        &ns,
        &db,
        &[
            "set",
            "Port",
            "pq0",
            "qos=@q",
            "--",
            "--id=@q",
            "create",
            "QoS",
            "type=egress-policer",
            "other_config:cir=2500000",
            "other_config:cbs=250000",
        ],
    );
    let export = d.ok(&["export"]);
    for want in [
        "ingress_policing_rate = 10000",
        "ingress_policing_burst = 1000",
        "egress_rate = 20000",
        "egress_burst = 2000",
    ] {
        assert!(export.contains(want), "{want} not in\n{export}");
    }
    // Clearing the QoS and the rate in the database clears them in rvs.
    ok(
        &ns,
        &db,
        &[
            "clear",
            "Port",
            "pq0",
            "qos",
            "--",
            "set",
            "Interface",
            "pq0",
            "ingress_policing_rate=0",
        ],
    );
    let export = d.ok(&["export"]);
    assert!(!export.contains("egress_rate"), "{export}");
    assert!(!export.contains("ingress_policing_rate"), "{export}");
    // rvsctl's own setting shows in the Interface row.
    d.ok(&["set", "port", "pq0", "ingress_policing_rate=5000"]);
    let seen = poll(Duration::from_secs(3), || {
        (ok(
            &ns,
            &db,
            &["get", "Interface", "pq0", "ingress_policing_rate"],
        ) == "5000")
            .then_some(())
    });
    assert!(seen.is_some());
}
