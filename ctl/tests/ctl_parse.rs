//! `rvsctl` without a daemon: parse-flow / parse-flows output and exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn rvsctl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rvsctl"));
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn rvsctl");
    if let Some(s) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(s.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("wait rvsctl")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn parse_flow_prints_normalized() {
    let o = rvsctl(
        &[
            "parse-flow",
            "priority=100,in_port=1,dl_vlan=10,actions=strip_vlan,output:2",
        ],
        None,
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        out(&o),
        "priority=100,in_port=1,dl_vlan=10 actions=strip_vlan,output:2\n"
    );
}

#[test]
fn parse_flow_missing_prerequisite_exits_1() {
    let o = rvsctl(&["parse-flow", "nw_src=10.0.0.1,actions=drop"], None);
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(e.contains("nw_src"), "{e}");
    assert!(e.contains("ip") && e.contains("arp"), "{e}");
    assert!(e.contains("column 1"), "{e}");
}

#[test]
fn parse_flow_unknown_port_name_is_named() {
    let o = rvsctl(&["parse-flow", "actions=output:tapX"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("tapX"), "{}", err(&o));
}

#[test]
fn parse_flows_from_stdin_with_comments() {
    let text = "# a comment\n\n table=1,actions=NORMAL\ndl_type=0x0800,nw_proto=6,tp_dst=22,actions=drop\n";
    let o = rvsctl(&["parse-flows", "-"], Some(text));
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        out(&o),
        "table=1, actions=NORMAL\ntcp,tp_dst=22 actions=drop\n"
    );
}

#[test]
fn parse_flows_bad_line_names_line() {
    let text = "actions=drop\nip,nw_src=10.0.0.300,actions=drop\n";
    let o = rvsctl(&["parse-flows", "-"], Some(text));
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(e.contains("line 2"), "{e}");
    assert!(o.stdout.is_empty(), "nothing printed on error");
}

#[test]
fn parse_flow_json() {
    let o = rvsctl(
        &[
            "--format",
            "json",
            "parse-flow",
            "idle_timeout=60,hard_timeout=120,actions=drop",
        ],
        None,
    );
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        v["flows"][0],
        "idle_timeout=60, hard_timeout=120, actions=drop"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["add-br"],
        vec!["add-port", "br0"],
        vec!["set", "port", "p1"],
        vec!["del-port", "a", "b", "c"],
        vec!["--format", "yaml", "list-br"],
        vec!["add-br", "a-name-that-is-too-long"],
        vec!["add-port", "br0", "port/with/slash"],
        vec!["add-port", "br0", "sixteen-bytes-xx"],
        vec!["add-flow", "br0"],
        vec!["dump-flows"],
        vec!["trace", "br0"],
        vec!["apply"],
        vec!["fdb-show", "br0", "extra"],
    ] {
        let o = rvsctl(&args, None);
        assert_eq!(o.status.code(), Some(2), "args {args:?}: {}", err(&o));
        let e = err(&o);
        assert!(
            e.contains("Usage") || e.contains("--help"),
            "usage help for {args:?}: {e}"
        );
    }
}

#[test]
fn unreachable_daemon_exits_3() {
    let o = rvsctl(&["--socket", "/nonexistent/rvs-test.sock", "list-br"], None);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(
        err(&o).contains("/nonexistent/rvs-test.sock"),
        "{}",
        err(&o)
    );
}
