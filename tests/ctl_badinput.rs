//! `rvsctl` under bad input: every verb with missing, extra or invalid
//! arguments exits 2 with usage help and sends nothing; names too long for
//! a netdev are refused before anything is created; a flow file with one
//! bad line is refused whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

/// (arguments after the global options, what must be in stderr besides
/// the usage line). `BR` and `P` stand for an existing bridge and port,
/// `F` for an existing flow file.
const USAGE: &[(&[&str], &str)] = &[
    // No verb, unknown verb, bad global options.
    (&[], "Commands:"),
    (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
    (
        &["--format", "xml", "show"],
        "invalid value 'xml' for '--format",
    ),
    (
        &["--timeout", "soon", "show"],
        "invalid value 'soon' for '--timeout",
    ),
    (
        &["--timeout=-1", "show"],
        "invalid value '-1' for '--timeout",
    ),
    (&["show", "--socket"], "a value is required for '--socket"),
    (&["--bogus", "show"], "unexpected argument '--bogus'"),
    // parse-flow FLOW, parse-flows FILE
    (&["parse-flow"], "<FLOW>"),
    (
        &["parse-flow", "actions=drop", "x"],
        "unexpected argument 'x'",
    ),
    (&["parse-flows"], "<FILE>"),
    (&["parse-flows", "F", "x"], "unexpected argument 'x'"),
    // add-br BR [--may-exist]
    (&["add-br"], "<BRIDGE>"),
    (&["add-br", "BR", "x"], "unexpected argument 'x'"),
    (
        &["add-br", "BR", "--may-exists"],
        "unexpected argument '--may-exists'",
    ),
    (
        &["add-br", "rvtbridgenameis16"],
        "17 bytes long; network device names are at most 15 bytes",
    ),
    (&["add-br", "ééééééééé"], "18 bytes long"),
    (&["add-br", ""], "a name cannot be empty"),
    (&["add-br", "a/b"], "not a valid network device name"),
    (&["add-br", "a b"], "not a valid network device name"),
    (&["add-br", "a:b"], "not a valid network device name"),
    (&["add-br", ".."], "not a valid network device name"),
    // del-br BR [--if-exists]
    (&["del-br"], "<BRIDGE>"),
    (&["del-br", "BR", "x"], "unexpected argument 'x'"),
    (
        &["del-br", "BR", "--if-exist"],
        "unexpected argument '--if-exist'",
    ),
    // list-br, show, export
    (&["list-br", "x"], "unexpected argument 'x'"),
    (&["show", "BR"], "unexpected argument"),
    (&["export", "x"], "unexpected argument 'x'"),
    // add-port BR PORT [key=value...] [--may-exist]
    (&["add-port"], "<BRIDGE>"),
    (&["add-port", "BR"], "<PORT>"),
    (&["add-port", "BR", "rvtportnameis16b"], "16 bytes long"),
    (&["add-port", "rvtbridgenameis16", "rvtq"], "17 bytes long"),
    (
        &["add-port", "BR", "rvtq", "tag"],
        "expected key=value, got \"tag\"",
    ),
    (
        &["add-port", "BR", "rvtq", "=5"],
        "expected key=value, got \"=5\"",
    ),
    (
        &["add-port", "BR", "rvtq", "--tag=5"],
        "unexpected argument '--tag'",
    ),
    // del-port [BR] PORT [--if-exists]
    (&["del-port"], "<NAMES>"),
    (&["del-port", "BR", "P", "x"], "unexpected value 'x'"),
    (
        &["del-port", "P", "--force"],
        "unexpected argument '--force'",
    ),
    // list-ports BR
    (&["list-ports"], "<BRIDGE>"),
    (&["list-ports", "BR", "x"], "unexpected argument 'x'"),
    // set port|bridge NAME key=value...
    (&["set"], "Usage: rvsctl set"),
    (
        &["set", "interface", "P"],
        "unrecognized subcommand 'interface'",
    ),
    (&["set", "port"], "<PORT>"),
    (&["set", "port", "P"], "<SETTINGS>"),
    (
        &["set", "port", "P", "tag"],
        "expected key=value, got \"tag\"",
    ),
    (&["set", "bridge"], "<BRIDGE>"),
    (&["set", "bridge", "BR"], "<SETTINGS>"),
    (
        &["set", "bridge", "BR", "mac-aging-time"],
        "expected key=value",
    ),
    // add-flow BR FLOW
    (&["add-flow"], "<BRIDGE>"),
    (&["add-flow", "BR"], "<FLOW>"),
    (
        &["add-flow", "BR", "actions=drop", "x"],
        "unexpected argument 'x'",
    ),
    // add-flows BR FILE, replace-flows BR FILE
    (&["add-flows", "BR"], "<FILE>"),
    (&["add-flows", "BR", "F", "x"], "unexpected argument 'x'"),
    (&["replace-flows", "BR"], "<FILE>"),
    (
        &["replace-flows", "BR", "F", "x"],
        "unexpected argument 'x'",
    ),
    // mod-flows BR FLOW [--strict]
    (&["mod-flows", "BR"], "<FLOW>"),
    (
        &["mod-flows", "BR", "actions=drop", "x"],
        "unexpected argument 'x'",
    ),
    (
        &["mod-flows", "BR", "actions=drop", "--stric"],
        "unexpected argument '--stric'",
    ),
    // del-flows BR [MATCH] [--strict]
    (&["del-flows"], "<BRIDGE>"),
    (&["del-flows", "BR", "ip", "x"], "unexpected argument 'x'"),
    // dump-flows BR [MATCH] [--no-stats]
    (&["dump-flows"], "<BRIDGE>"),
    (&["dump-flows", "BR", "ip", "x"], "unexpected argument 'x'"),
    (
        &["dump-flows", "BR", "--nostats"],
        "unexpected argument '--nostats'",
    ),
    // dump-ports BR [PORT]
    (&["dump-ports"], "<BRIDGE>"),
    (&["dump-ports", "BR", "P", "x"], "unexpected argument 'x'"),
    // add-meter/mod-meter BR METER, del-meters/dump-meters/meter-stats BR [METER]
    (&["add-meter"], "<BRIDGE>"),
    (&["add-meter", "BR"], "<METER>"),
    (
        &["add-meter", "BR", "meter=1", "x"],
        "unexpected argument 'x'",
    ),
    (&["mod-meter", "BR"], "<METER>"),
    (&["del-meters"], "<BRIDGE>"),
    (
        &["del-meters", "BR", "meter=1", "x"],
        "unexpected argument 'x'",
    ),
    (&["dump-meters"], "<BRIDGE>"),
    (
        &["meter-stats", "BR", "meter=1", "x"],
        "unexpected argument 'x'",
    ),
    // fdb-show BR, fdb-flush BR
    (&["fdb-show"], "<BRIDGE>"),
    (&["fdb-show", "BR", "x"], "unexpected argument 'x'"),
    // pmd-stats-show
    (&["pmd-stats-show", "x"], "unexpected argument 'x'"),
    // memory-show
    (&["memory-show", "x"], "unexpected argument 'x'"),
    (&["fdb-flush"], "<BRIDGE>"),
    (&["fdb-flush", "BR", "x"], "unexpected argument 'x'"),
    // trace BR FLOW
    (&["trace"], "<BRIDGE>"),
    (&["trace", "BR"], "<FLOW>"),
    (
        &["trace", "BR", "in_port=1", "x"],
        "unexpected argument 'x'",
    ),
    // set-controller BR TARGET..., get-/del-controller BR
    (&["set-controller"], "<BRIDGE>"),
    (&["set-controller", "BR"], "<TARGETS>"),
    (&["get-controller"], "<BRIDGE>"),
    (&["get-controller", "BR", "x"], "unexpected argument 'x'"),
    (&["del-controller"], "<BRIDGE>"),
    (&["del-controller", "BR", "x"], "unexpected argument 'x'"),
    // set-fail-mode BR MODE, get-/del-fail-mode BR
    (&["set-fail-mode"], "<BRIDGE>"),
    (&["set-fail-mode", "BR"], "<MODE>"),
    (
        &["set-fail-mode", "BR", "secure", "x"],
        "unexpected argument 'x'",
    ),
    (&["get-fail-mode"], "<BRIDGE>"),
    (&["get-fail-mode", "BR", "x"], "unexpected argument 'x'"),
    (&["del-fail-mode"], "<BRIDGE>"),
    (&["del-fail-mode", "BR", "x"], "unexpected argument 'x'"),
    // apply FILE [--dry-run]
    (&["apply"], "<FILE>"),
    (&["apply", "F", "x"], "unexpected argument 'x'"),
    (
        &["apply", "F", "--dryrun"],
        "unexpected argument '--dryrun'",
    ),
];

/// Every verb `rvsctl --help` lists.
const VERBS: &[&str] = &[
    "parse-flow",
    "parse-flows",
    "add-br",
    "del-br",
    "list-br",
    "show",
    "add-port",
    "del-port",
    "list-ports",
    "set",
    "set-controller",
    "get-controller",
    "del-controller",
    "set-fail-mode",
    "get-fail-mode",
    "del-fail-mode",
    "add-flow",
    "add-flows",
    "mod-flows",
    "del-flows",
    "replace-flows",
    "dump-flows",
    "dump-ports",
    "add-meter",
    "mod-meter",
    "del-meters",
    "dump-meters",
    "meter-stats",
    "fdb-show",
    "fdb-flush",
    "pmd-stats-show",
    "memory-show",
    "trace",
    "apply",
    "export",
];

fn links() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn every_verb_with_bad_arguments_exits_2_with_usage() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let tap = uniq('t');
    d.ok(&["add-port", &br, &tap]);
    d.ok(&["add-flow", &br, "priority=5,actions=drop"]);
    let flows = d.dir().join("flows.txt");
    std::fs::write(&flows, "priority=6,actions=drop\n").unwrap();
    let flows = flows.to_str().unwrap().to_string();

    // The list covers every verb rvsctl knows.
    let help = String::from_utf8_lossy(
        &Command::new(rvsctl_bin())
            .arg("--help")
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    for v in VERBS {
        assert!(
            help.contains(&format!("  {v} ")),
            "{v} not in --help: {help}"
        );
        assert!(
            USAGE.iter().any(|(a, _)| a.first() == Some(v)),
            "no bad-argument case for {v}"
        );
    }
    let n_verbs = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.trim_start().starts_with("help "))
        .count();
    assert_eq!(n_verbs, VERBS.len(), "{help}");

    let export = d.ok(&["export"]);
    // Other tests of this process create and delete their own uniq()
    // devices meanwhile; leave those out of the comparison.
    let own = format!("rvt{:x}", std::process::id());
    let links = || -> Vec<String> {
        links()
            .into_iter()
            .filter(|l| !l.starts_with(&own) || *l == br || *l == tap)
            .collect()
    };
    let before = links();
    for (args, want) in USAGE {
        let args: Vec<String> = args
            .iter()
            .map(|a| match *a {
                "BR" => br.clone(),
                "P" => tap.clone(),
                "F" => flows.clone(),
                a => a.to_string(),
            })
            .collect();
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        // No global options of our own: some cases are about them. The
        // daemon is found through RVS_SOCKET, should anything get through.
        let out = Command::new(rvsctl_bin())
            .args(&a)
            .env("RVS_SOCKET", &d.socket)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{a:?}: {err}");
        assert!(err.contains("Usage: rvsctl"), "{a:?}: no usage in {err}");
        assert!(err.contains(want), "{a:?}: {want:?} not in {err}");
        assert!(out.stdout.is_empty(), "{a:?} printed {:?}", out.stdout);
        let first = err.lines().next().unwrap_or("");
        eprintln!("rvsctl {} -> {first}", a.join(" "));
    }
    // Nothing was created or changed: no netdev, same state.
    assert_eq!(links(), before);
    assert_eq!(d.ok(&["export"]), export);
    assert!(!netdev_exists("rvtbridgenameis16") && !netdev_exists("rvtq"));
}

#[test]
fn long_names_are_refused_before_anything_is_created() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let before = links();
    let show = d.ok(&["show"]);
    let long16 = format!("{}xxxxxxxxxxxxxxxxxx", uniq('t'))[..16].to_string();
    let long15 = &long16[..15];
    for args in [
        vec!["add-br", long16.as_str()],
        vec!["add-port", &br, &long16],
        vec!["add-port", &br, &long16, "type=tap"],
        vec!["add-port", &br, &long16, "type=internal"],
        vec!["add-port", &long16, long15],
    ] {
        let (code, err) = d.fails(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("16 bytes long"), "{err}");
    }
    assert_eq!(links(), before, "a netdev appeared");
    assert_eq!(d.ok(&["show"]), show);
    // 15 bytes is fine.
    d.ok(&["add-port", &br, long15]);
    assert!(netdev_exists(long15));
    // The daemon checks too (for clients other than rvsctl), and names
    // the port and the problem.
    let mut c = d.conn();
    let v = c.call(&serde_json::json!({"type": "add_port", "bridge": br, "name": long16}));
    let msg = resp_err(&v);
    assert!(
        msg.contains("longer than 15 bytes") && msg.contains(&long16),
        "{msg}"
    );
    eprintln!("add_port over the socket with a 16-byte name -> {msg}");
    assert!(!netdev_exists(&long16));
}

fn ctl_stdin(d: &Rvsd, args: &[&str], input: &str) -> (i32, String) {
    let mut c = Command::new(rvsctl_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_flow_file_with_one_bad_line_installs_nothing() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let p = uniq('t');
    d.ok(&["add-port", &br, &p]);
    d.ok(&[
        "add-flow",
        &br,
        "cookie=0x5,priority=300,arp,actions=NORMAL",
    ]);
    let flows_before = d.ok(&["dump-flows", &br, "--no-stats"]);
    let export = d.ok(&["export"]);
    let state = std::fs::read(d.state_file()).unwrap();
    let good = [
        "# good flows first",
        "priority=10,ip,nw_src=10.0.0.1,actions=drop",
        "",
        &format!("priority=11,in_port={p},actions=NORMAL"),
        "table=1,priority=12,udp,tp_dst=53,actions=drop",
    ];
    // (bad line, words of the message)
    let bad: &[(&str, &[&str])] = &[
        (
            "priority=13,nw_src=10.0.0.1,actions=drop",
            &["nw_src needs ip or arp"],
        ),
        (
            "priority=13,ip,nw_src=10.0.0.300,actions=drop",
            &["10.0.0.300"],
        ),
        (
            "priority=13,actions=output:nosuchport",
            &["unknown port \"nosuchport\""],
        ),
        ("priority=99999,actions=drop", &["priority"]),
        ("priority=13,frobnicate=1,actions=drop", &["frobnicate"]),
        ("priority=13,ip", &["actions"]),
        ("table=255,actions=drop", &["table"]),
        ("priority=13,actions=goto_table:0", &["goto_table"]),
    ];
    for (at, (line, words)) in bad.iter().enumerate() {
        // The bad line in the middle, or last.
        for pos in [2, good.len()] {
            let mut v: Vec<&str> = good.to_vec();
            v.insert(pos, line);
            let text = v.join("\n") + "\n";
            let lineno = pos + 1;
            let file = d.dir().join(format!("bad{at}.flows"));
            std::fs::write(&file, &text).unwrap();
            let f = file.to_str().unwrap();
            for verb in ["add-flows", "replace-flows"] {
                let (code, err) = d.fails(&[verb, &br, f]);
                assert_eq!(code, 1, "{verb} {line}: {err}");
                assert!(
                    err.contains(&format!("line {lineno}")),
                    "{verb} {line}: {err}"
                );
                for w in *words {
                    assert!(err.contains(w), "{verb} {line}: {w:?} not in {err}");
                }
                assert!(
                    err.contains("no flows were added") || err.contains("no flows were changed"),
                    "{err}"
                );
                if pos == 2 {
                    eprintln!("{verb} with line {lineno} = {line:?} -> {}", err.trim_end());
                }
            }
            // Same from stdin.
            let (code, err) = ctl_stdin(&d, &["add-flows", &br, "-"], &text);
            assert_eq!(code, 1, "{err}");
            assert!(err.contains(&format!("line {lineno}")), "{err}");
            assert_eq!(d.ok(&["dump-flows", &br, "--no-stats"]), flows_before);
        }
    }
    assert_eq!(d.ok(&["export"]), export);
    assert_eq!(std::fs::read(d.state_file()).unwrap(), state);
    // The good lines alone are accepted: the failures were the bad line's.
    let file = d.dir().join("good.flows");
    std::fs::write(&file, good.join("\n")).unwrap();
    d.ok(&["add-flows", &br, file.to_str().unwrap()]);
    assert_eq!(d.flows(&br).len(), 2 + 3);
    // A missing file is a rejected request (exit 1), not a usage error.
    let (code, err) = d.fails(&["add-flows", &br, "/nonexistent/rvs.flows"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/rvs.flows"), "{err}");
}
