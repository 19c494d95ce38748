//! `rvsctl apply` / `rvsctl export`: round trips, dry-run diffs checked
//! against committed goldens (`tests/golden/apply_*.txt`), real changes,
//! and rejected files that change nothing.
//!
//! Device names carry the test process's PID, so configs are written as
//! templates with placeholders (`{br}`, `{p1}`…) and outputs are compared
//! after the real names are put back to placeholders. `RVS_BLESS=1`
//! rewrites the goldens from the current output (review the diff!).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;

/// Placeholder → real name for one test.
struct Names(BTreeMap<&'static str, String>);

impl Names {
    fn new() -> Names {
        let mut m = BTreeMap::new();
        m.insert("br", uniq('r'));
        m.insert("br2", uniq('r'));
        m.insert("br3", uniq('r'));
        for p in ["p1", "p2", "p3", "p4", "p5"] {
            m.insert(p, uniq('t'));
        }
        Names(m)
    }

    fn get(&self, k: &str) -> &str {
        &self.0[k]
    }

    /// `{br}` → real name, in a template.
    fn fill(&self, template: &str) -> String {
        let mut s = template.to_string();
        for (k, v) in &self.0 {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        assert!(
            !s.contains('{') || s.contains("{{"),
            "unfilled template: {s}"
        );
        s
    }

    /// Real names → `{br}`, in an output.
    fn unfill(&self, text: &str) -> String {
        let mut by_len: Vec<(&&str, &String)> = self.0.iter().collect();
        by_len.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        let mut s = text.to_string();
        for (k, v) in by_len {
            s = s.replace(v.as_str(), &format!("{{{k}}}"));
        }
        s
    }
}

const BASE: &str = r#"# base configuration of the apply tests
[[bridge]]
name = "{br}"
mac_aging_time = 300

[[bridge.port]]
name = "{p1}"
type = "tap"
tag = 10

[[bridge.port]]
name = "{p2}"
type = "tap"
vlan_mode = "trunk"
trunks = [10, 20]

[[bridge.flow]]
flow = "priority=100,dl_type=0x88cc,actions=drop"

[[bridge.flow]]
flow = "priority=0,actions=NORMAL"

[[bridge]]
name = "{br2}"

[[bridge.port]]
name = "{p4}"
type = "tap"
"#;

/// One edit of `BASE`: (golden name, text to replace, replacement).
const EDITS: &[(&str, &str, &str)] = &[
    (
        "add_port",
        "[[bridge.flow]]\nflow = \"priority=100",
        "[[bridge.port]]\nname = \"{p3}\"\ntype = \"tap\"\ntag = 20\n\n[[bridge.flow]]\nflow = \"priority=100",
    ),
    (
        "del_port",
        "[[bridge.port]]\nname = \"{p2}\"\ntype = \"tap\"\nvlan_mode = \"trunk\"\ntrunks = [10, 20]\n",
        "",
    ),
    (
        "change_vlan",
        "tag = 10\n",
        "tag = 20\n",
    ),
    (
        "change_trunks",
        "trunks = [10, 20]\n",
        "trunks = [10, 20, 30]\n",
    ),
    (
        "access_to_trunk",
        "type = \"tap\"\ntag = 10\n",
        "type = \"tap\"\nvlan_mode = \"trunk\"\ntrunks = [10]\n",
    ),
    (
        "add_flow",
        "[[bridge.flow]]\nflow = \"priority=0,actions=NORMAL\"",
        "[[bridge.flow]]\nflow = \"cookie=0x42,priority=90,ip,nw_src=10.0.0.66,actions=drop\"\n\n[[bridge.flow]]\nflow = \"table=1,priority=7,idle_timeout=30,udp,tp_dst=53,actions=output:{p2}\"\n\n[[bridge.flow]]\nflow = \"priority=0,actions=NORMAL\"",
    ),
    (
        "del_flow",
        "[[bridge.flow]]\nflow = \"priority=100,dl_type=0x88cc,actions=drop\"\n",
        "",
    ),
    (
        "change_knob",
        "mac_aging_time = 300\n",
        "mac_aging_time = 600\nmac_table_size = 2048\n",
    ),
    (
        "del_bridge",
        "[[bridge]]\nname = \"{br2}\"\n\n[[bridge.port]]\nname = \"{p4}\"\ntype = \"tap\"\n",
        "",
    ),
    (
        "move_port",
        "[[bridge]]\nname = \"{br2}\"\n\n[[bridge.port]]\nname = \"{p4}\"\ntype = \"tap\"\n",
        "[[bridge]]\nname = \"{br2}\"\n\n[[bridge]]\nname = \"{br3}\"\n[[bridge.port]]\nname = \"{p4}\"\ntype = \"tap\"\ntag = 5\n",
    ),
];

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("apply_{name}.txt"))
}

/// Compares `got` with the golden file (or rewrites it with RVS_BLESS=1).
fn check_golden(name: &str, got: &str) {
    let p = golden_path(name);
    if std::env::var("RVS_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e} (RVS_BLESS=1 creates it)", p.display()));
    assert_eq!(got, want, "dry-run diff differs from {}", p.display());
}

fn write(d: &Rvsd, file: &str, text: &str) -> String {
    let p = d.dir().join(file);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn ifindex(dev: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/ifindex"))
        .unwrap_or_else(|e| panic!("{dev}: {e}"))
}

/// Makes the switch equal to BASE and returns its export.
fn reset(d: &Rvsd, n: &Names) -> String {
    let f = write(d, "base.toml", &n.fill(BASE));
    d.ok(&["apply", &f]);
    assert_eq!(d.ok(&["apply", &f]).trim(), "no changes");
    d.ok(&["export"])
}

#[test]
fn apply_dry_run_diffs_match_goldens_and_apply_applies_them() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let n = Names::new();
    let base_export = reset(&d, &n);
    // export round trip: applying the export changes nothing.
    let ef = write(&d, "export.toml", &base_export);
    assert_eq!(d.ok(&["apply", &ef]).trim(), "no changes");
    assert_eq!(d.ok(&["apply", "--dry-run", &ef]).trim(), "no changes");

    for (name, from, to) in EDITS {
        let export0 = reset(&d, &n);
        assert_eq!(export0, base_export, "reset before {name}");
        let p1_index = ifindex(n.get("p1"));
        let base = n.fill(BASE);
        let from = n.fill(from);
        assert!(base.contains(&from), "{name}: edit does not apply");
        let edited = base.replacen(&from, &n.fill(to), 1);
        let f = write(&d, &format!("{name}.toml"), &edited);

        // Dry run: the diff, and nothing changes.
        let dry = d.ok(&["apply", "--dry-run", &f]);
        check_golden(name, &n.unfill(&dry));
        assert!(dry.ends_with("(dry run: nothing was changed)\n"), "{dry}");
        assert_eq!(
            d.ok(&["export"]),
            base_export,
            "{name}: dry run changed state"
        );

        // For real: the same diff, then the state is the file's.
        let real = d.ok(&["apply", &f]);
        assert_eq!(
            real,
            dry.replace("(dry run: nothing was changed)\n", ""),
            "{name}"
        );
        assert_ne!(d.ok(&["export"]), base_export, "{name}: nothing changed");
        assert_eq!(
            d.ok(&["apply", &f]).trim(),
            "no changes",
            "{name}: second apply"
        );
        let ef = write(&d, "export.toml", &d.ok(&["export"]));
        assert_eq!(d.ok(&["apply", &ef]).trim(), "no changes", "{name}: export");
        // The state (snapshot + journal, as a restart reads it) holds it too.
        let norm = |mut c: rvs::config::Config| {
            c.format_version = None;
            c.journal = None;
            for b in &mut c.bridge {
                if let Some(f) = &mut b.flow {
                    f.sort_by(|a, b| a.flow.cmp(&b.flow));
                }
            }
            c
        };
        let saved = rvs::control::state::StateStore::open(&d.state_dir())
            .unwrap()
            .load()
            .unwrap()
            .unwrap();
        let exported = rvs::config::Config::parse(&d.ok(&["export"]), "export").unwrap();
        assert_eq!(norm(saved), norm(exported), "{name}: state file");
        check_effect(&d, &n, name);
        // Ports the edit does not touch keep their netdev (and traffic).
        if !["change_vlan", "access_to_trunk"].contains(name) {
            assert_eq!(ifindex(n.get("p1")), p1_index, "{name}: p1 was re-created");
        }
    }
}

/// What `show` / `dump-flows` say after each edit was applied.
fn check_effect(d: &Rvsd, n: &Names, name: &str) {
    let br = n.get("br");
    let flows = d.ok(&["dump-flows", br, "--no-stats"]);
    let ports = d.ok(&["list-ports", br]);
    match name {
        "add_port" => {
            let p = d.show_port(br, n.get("p3"));
            assert_eq!((p.ofport, p.tag, p.kind.as_str()), (3, Some(20), "tap"));
            assert!(netdev_exists(n.get("p3")));
        }
        "del_port" => {
            assert!(!ports.contains(n.get("p2")), "{ports}");
            assert!(!netdev_exists(n.get("p2")));
        }
        "change_vlan" => assert_eq!(d.show_port(br, n.get("p1")).tag, Some(20)),
        "change_trunks" => {
            assert_eq!(d.show_port(br, n.get("p2")).trunks, vec![10, 20, 30])
        }
        "access_to_trunk" => {
            let p = d.show_port(br, n.get("p1"));
            assert_eq!((p.vlan_mode.as_str(), p.tag), ("trunk", None));
            assert_eq!(p.trunks, vec![10]);
        }
        "add_flow" => {
            assert!(
                flows.contains("cookie=0x42, priority=90,ip,nw_src=10.0.0.66 actions=drop"),
                "{flows}"
            );
            assert!(
                flows.contains(
                    "table=1, idle_timeout=30, priority=7,udp,tp_dst=53 actions=output:2"
                ),
                "{flows}"
            );
        }
        "del_flow" => assert!(!flows.contains("0x88cc"), "{flows}"),
        "change_knob" => {
            let v = d.json(&["show"]);
            let b = v["bridges"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["name"] == br)
                .unwrap()
                .clone();
            assert_eq!(
                (b["mac_aging_time"].as_u64(), b["mac_table_size"].as_u64()),
                (Some(600), Some(2048))
            );
        }
        "del_bridge" => {
            let list = d.ok(&["list-br"]);
            assert!(!list.contains(n.get("br2")), "{list}");
            assert!(!netdev_exists(n.get("br2")) && !netdev_exists(n.get("p4")));
        }
        "move_port" => {
            assert_eq!(d.ok(&["list-ports", n.get("br2")]).trim(), "");
            let p = d.show_port(n.get("br3"), n.get("p4"));
            assert_eq!(p.tag, Some(5));
        }
        _ => panic!("no check for {name}"),
    }
}

/// Every rejected file: (what, template, line, words the message must
/// contain).
const BAD: &[(&str, &str, u32, &[&str])] = &[
    (
        "flow with an unknown port name",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p1}\"\ntype = \"tap\"\n[[bridge.flow]]\nflow = \"actions=output:nosuchport\"\n",
        7,
        &["flow 1", "unknown port \"nosuchport\""],
    ),
    (
        "flow that does not parse",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.flow]]\nflow = \"priority=0,actions=NORMAL\"\n[[bridge.flow]]\nflow = \"priority=10,nw_src=10.0.0.1,actions=drop\"\n",
        6,
        &["flow 2", "nw_src needs ip or arp"],
    ),
    (
        "VLAN id 5000",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p5}\"\ntype = \"tap\"\ntag = 5000\n",
        6,
        &["tag 5000 is out of range (1-4094)"],
    ),
    (
        "VLAN id 0",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p5}\"\ntag = 0\n",
        5,
        &["tag 0 is out of range"],
    ),
    (
        "trunk VLAN 4096",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p5}\"\nvlan_mode = \"trunk\"\ntrunks = [10, 4096]\n",
        6,
        &["trunk VLAN 4096"],
    ),
    (
        "tag on a trunk",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p5}\"\nvlan_mode = \"trunk\"\ntag = 4\n",
        6,
        &["a trunk port takes no tag"],
    ),
    (
        "port on two bridges",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p1}\"\n[[bridge]]\nname = \"{br2}\"\n[[bridge.port]]\nname = \"{p1}\"\n",
        8,
        &["{p1} is also a port of bridge {br}"],
    ),
    (
        "duplicate port names",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p5}\"\n[[bridge.port]]\nname = \"{p5}\"\n",
        6,
        &["duplicate port name"],
    ),
    (
        "port named like a bridge",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{br}\"\n",
        4,
        &["is a bridge name"],
    ),
    (
        "bridge defined twice",
        "[[bridge]]\nname = \"{br}\"\n[[bridge]]\nname = \"{br}\"\n",
        4,
        &["bridge {br} is defined twice"],
    ),
    (
        "unknown key",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p5}\"\ntagg = 5\n",
        5,
        &["unknown field `tagg`"],
    ),
    (
        "unknown top-level key",
        "bridges = []\n",
        1,
        &["unknown field `bridges`"],
    ),
    (
        "wrong type: string for a VLAN id",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p5}\"\ntag = \"ten\"\n",
        5,
        &["tag: invalid type: string \"ten\""],
    ),
    (
        "wrong type: negative VLAN id",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p5}\"\ntag = -1\n",
        5,
        &["tag: invalid value: integer `-1`"],
    ),
    (
        "wrong type: string for seconds",
        "[[bridge]]\nname = \"{br}\"\nmac_aging_time = \"5m\"\n",
        3,
        &["mac_aging_time: invalid type: string \"5m\""],
    ),
    (
        "wrong type: flow as a table",
        "[[bridge]]\nname = \"{br}\"\nflow = \"actions=drop\"\n",
        3,
        &["flow: invalid type"],
    ),
    (
        "aging time out of range",
        "[[bridge]]\nname = \"{br}\"\n[[bridge]]\nname = \"{br2}\"\nmac_aging_time = 5\n",
        5,
        &["mac_aging_time = 5 is outside 15-3600 seconds"],
    ),
    (
        "table size out of range",
        "[[bridge]]\nname = \"{br}\"\nmac_table_size = 2000000\n",
        3,
        &["mac_table_size = 2000000 is outside 10-1000000"],
    ),
    (
        "unknown vlan_mode",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p5}\"\nvlan_mode = \"sideways\"\n",
        5,
        &["vlan_mode = \"sideways\""],
    ),
    (
        "unknown port type",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p5}\"\ntype = \"gretap\"\n",
        5,
        &["type = \"gretap\""],
    ),
    (
        "vxlan port without remote_ip",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p5}\"\ntype = \"vxlan\"\n",
        5,
        &["needs options:remote_ip"],
    ),
    (
        "patch port without peer",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p5}\"\ntype = \"patch\"\n",
        5,
        &["a patch port needs peer"],
    ),
    (
        "two ports asking for one ofport",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{p1}\"\nofport = 3\n[[bridge.port]]\nname = \"{p5}\"\nofport = 3\n",
        8,
        &["ofport 3 is also requested by {p1}"],
    ),
    (
        "name longer than 15 bytes",
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"averyveryverylongname\"\n",
        4,
        &["longer than 15 bytes"],
    ),
    (
        "TOML syntax error",
        "[[bridge]\nname = \"{br}\"\n",
        1,
        &["unclosed array table"],
    ),
    (
        "bridge without a name",
        "[[bridge]]\nmac_aging_time = 30\n",
        1,
        &["missing field `name`"],
    ),
];

#[test]
fn apply_rejects_bad_files_whole_and_changes_nothing() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let n = Names::new();
    let before = reset(&d, &n);
    let state_before = std::fs::read(d.state_file()).unwrap();
    for (i, (what, template, line, words)) in BAD.iter().enumerate() {
        let f = write(&d, &format!("bad{i}.toml"), &n.fill(template));
        for dry in [true, false] {
            let mut args = vec!["apply", f.as_str()];
            if dry {
                args.push("--dry-run");
            }
            let (code, err) = d.fails(&args);
            assert_eq!(code, 1, "{what}: {err}");
            let want = format!("rvsctl: {f}: line {line}: ");
            assert!(
                err.starts_with(&want),
                "{what}: want {want:?}..., got {err}"
            );
            for w in *words {
                let w = n.fill(w);
                assert!(err.contains(&w), "{what}: {w:?} not in {err}");
            }
            if !dry {
                eprintln!("{what}: {}", n.unfill(err.trim_end()));
            }
        }
        assert_eq!(d.ok(&["export"]), before, "{what}: state changed");
        assert!(
            !netdev_exists(n.get("p5")),
            "{what}: {} created",
            n.get("p5")
        );
    }
    assert_eq!(std::fs::read(d.state_file()).unwrap(), state_before);
}

#[test]
fn apply_failing_midway_rolls_back_everything() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let n = Names::new();
    let before = reset(&d, &n);
    // Valid on paper; fails when the system port is attached, after a new
    // bridge, a new TAP, a changed VLAN, a changed knob, a deleted bridge
    // and new flows were already applied.
    let edited = n.fill(BASE)
        .replace("tag = 10\n", "tag = 11\n")
        .replace("mac_aging_time = 300\n", "mac_aging_time = 900\n")
        .replace(
            &n.fill("[[bridge]]\nname = \"{br2}\"\n\n[[bridge.port]]\nname = \"{p4}\"\ntype = \"tap\"\n"),
            "",
        )
        + &n.fill(
            "\n[[bridge]]\nname = \"{br3}\"\n[[bridge.port]]\nname = \"{p3}\"\ntype = \"tap\"\n\
             [[bridge.port]]\nname = \"{p5}\"\ntype = \"system\"\n\
             [[bridge.flow]]\nflow = \"priority=5,actions=drop\"\n",
        );
    let f = write(&d, "midway.toml", &edited);
    let (code, err) = d.fails(&["apply", &f]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&f), "{err}");
    assert!(
        err.contains(&format!(
            "no network device named {} to attach",
            n.get("p5")
        )),
        "{err}"
    );
    assert!(err.contains("the previous state was restored"), "{err}");
    eprintln!("midway: {}", n.unfill(err.trim_end()));
    assert_eq!(d.ok(&["export"]), before);
    assert!(!netdev_exists(n.get("br3")) && !netdev_exists(n.get("p3")));
    assert!(netdev_exists(n.get("br2")) && netdev_exists(n.get("p4")));
}

#[test]
fn every_example_config_is_accepted_by_apply_dry_run() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let out = d.ok(&["apply", "--dry-run", p.to_str().unwrap()]);
        assert!(out.contains("+ add-br"), "{}: {out}", p.display());
        assert!(out.ends_with("(dry run: nothing was changed)\n"), "{out}");
        n += 1;
    }
    assert!(n >= 3, "only {n} files in config/");
    assert_eq!(d.ok(&["list-br"]).trim(), "");
}

#[test]
fn apply_from_stdin_names_stdin_in_errors() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let n = Names::new();
    // apply - reads stdin and names it <stdin> in errors.
    let mut c = std::process::Command::new(rvsctl_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(["apply", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut i = c.stdin.take().unwrap();
        i.write_all(n.fill("[[bridge]]\nname = \"{br}\"\ntypo = 1\n").as_bytes())
            .unwrap();
    }
    let out = c.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("rvsctl: <stdin>: line 3: unknown field `typo`"),
        "{err}"
    );
    assert_eq!(d.ok(&["list-br"]).trim(), "");
}
