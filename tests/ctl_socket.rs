//! The control socket under bad input: malformed JSON, unknown request
//! types, oversized lines, silent clients, many clients at once — each
//! gets an error or is timed out, and the daemon keeps serving the others.
//! And its access: mode 0600 from the moment it appears (0660 and a
//! group with `--socket-group`), nothing but a stale socket replaced.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// `MAX_LINE` of the protocol.
const MAX_LINE: usize = rvs_ctl::proto::MAX_LINE;

fn ping(c: &mut Conn) {
    let v = c.call(&json!({"type": "ping"}));
    assert!(resp_ok(&v), "{v}");
}

fn kind(v: &Value) -> &str {
    v["error"]["kind"].as_str().unwrap_or("")
}

#[test]
fn malformed_requests_get_errors_and_the_connection_keeps_working() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let mut c = d.conn();
    ping(&mut c);
    let cases: &[(&str, &str, &str)] = &[
        ("not JSON", "hello", "malformed request"),
        ("truncated JSON", "{\"type\":\"ping\"", "malformed request"),
        ("a JSON array", "[1,2,3]", "malformed request"),
        ("a JSON string", "\"ping\"", "malformed request"),
        ("no type", "{\"name\":\"x\"}", "missing field `type`"),
        (
            "unknown request type",
            "{\"type\":\"frobnicate\"}",
            "unknown variant `frobnicate`",
        ),
        (
            "unknown field",
            "{\"type\":\"add_br\",\"name\":\"x\",\"colour\":\"red\"}",
            "unknown field `colour`",
        ),
        (
            "missing field",
            "{\"type\":\"add_br\"}",
            "missing field `name`",
        ),
        (
            "wrong type",
            "{\"type\":\"add_br\",\"name\":42}",
            "invalid type: integer `42`",
        ),
        (
            "nested garbage",
            "{\"type\":\"add_port\",\"bridge\":\"b\",\"name\":\"p\",\"settings\":[[1]]}",
            "malformed request",
        ),
    ];
    for (what, line, want) in cases {
        let v = c.call_raw(line);
        let msg = resp_err(&v);
        assert_eq!(kind(&v), "bad_request", "{what}: {v}");
        assert!(msg.contains(want), "{what}: {want:?} not in {msg:?}");
        eprintln!("{what}: {line} -> {msg}");
        // The same connection still answers.
        ping(&mut c);
    }
    // Bytes that are not UTF-8.
    c.send_raw(b"\xff\xfe{\x00}\n").unwrap();
    let v = c.recv().expect("answer to binary junk");
    assert!(resp_err(&v).contains("malformed request"), "{v}");
    eprintln!("binary junk -> {}", resp_err(&v));
    ping(&mut c);
    // Blank lines are skipped, not answered.
    c.send_raw(b"\n\n   \n").unwrap();
    ping(&mut c);
    // Requests the daemon rejects on their merits come back as errors too.
    let long = "x".repeat(16);
    let v = c.call(&json!({"type": "add_br", "name": long}));
    let msg = resp_err(&v);
    assert!(msg.contains("longer than 15 bytes"), "{msg}");
    assert!(!netdev_exists(&long));
    eprintln!("add_br with a 16-byte name -> {msg}");
    assert_eq!(d.ok(&["list-br"]).trim(), "");
}

#[test]
fn oversized_line_is_rejected_and_closed() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let mut c = d.conn();
    ping(&mut c);
    // A valid-looking request whose line is longer than MAX_LINE.
    let mut big = b"{\"type\":\"add_flows\",\"bridge\":\"b\",\"text\":\"".to_vec();
    big.resize(MAX_LINE + 4096, b'a');
    big.extend_from_slice(b"\"}\n");
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        // The daemon stops reading and closes: EPIPE is expected.
        let _ = w.write_all(&big);
    });
    let v = c.recv().expect("an answer before the close");
    let msg = resp_err(&v);
    assert!(
        msg.contains(&format!("longer than {MAX_LINE} bytes")),
        "{msg}"
    );
    eprintln!("oversized line -> {msg}");
    assert!(c.recv().is_none(), "connection stays open");
    writer.join().unwrap();
    // A line of exactly MAX_LINE bytes is still read (and rejected as a
    // request, not as too long).
    let mut c = d.conn();
    let mut line = b"{\"type\":\"ping\",\"pad\":\"".to_vec();
    line.resize(MAX_LINE - 2, b' ');
    line.extend_from_slice(b"\"}");
    assert_eq!(line.len(), MAX_LINE);
    line.push(b'\n');
    c.send_raw(&line).unwrap();
    let v = c.recv().expect("answer");
    assert!(resp_err(&v).contains("unknown field `pad`"), "{v}");
    ping(&mut c);
    // Without a newline at all.
    let mut c = d.conn();
    let blob = vec![b'{'; MAX_LINE + 1];
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&blob);
    });
    let v = c.recv().expect("answer");
    assert!(resp_err(&v).contains("longer than"), "{v}");
    assert!(c.recv().is_none());
    writer.join().unwrap();
    // Others were never affected.
    let mut c = d.conn();
    ping(&mut c);
}

#[test]
fn silent_clients_are_timed_out_while_others_are_served() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start_with(&["--client-timeout", "1"]);
    let t0 = Instant::now();
    // Connects and sends nothing.
    let mut silent = UnixStream::connect(&d.socket).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Sends half a request and stalls.
    let mut half = UnixStream::connect(&d.socket).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    half.write_all(b"{\"type\":\"pi").unwrap();
    // Meanwhile a busy client is served, again and again.
    let mut busy = d.conn();
    let mut served = 0;
    while t0.elapsed() < Duration::from_millis(800) {
        ping(&mut busy);
        served += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(served > 5);
    for (what, s) in [("silent", &mut silent), ("half a line", &mut half)] {
        let mut buf = String::new();
        s.read_to_string(&mut buf)
            .unwrap_or_else(|e| panic!("{what}: not closed within 10 s: {e}"));
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(900),
            "{what}: closed after {took:?}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{what}: closed after {took:?}"
        );
        let v: Value = serde_json::from_str(buf.trim()).unwrap();
        let msg = resp_err(&v);
        assert!(
            msg.contains("timed out waiting for a request"),
            "{what}: {msg}"
        );
        eprintln!("{what} client, after {took:?} -> {msg}");
    }
    // The busy client went quiet while we waited: it is gone too, but a
    // new one is served.
    let mut fresh = d.conn();
    ping(&mut fresh);
}

#[test]
fn a_hundred_concurrent_clients_all_get_answers() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let socket = d.socket.clone();
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let socket = socket.clone();
            let br = br.clone();
            std::thread::spawn(move || {
                let mut c = Conn::open(&socket);
                let mut answers = 0;
                for j in 0..10 {
                    let req = match j % 5 {
                        0 => json!({"type": "ping"}),
                        1 => json!({"type": "show"}),
                        2 => json!({"type": "add_flows", "bridge": br,
                                     "text": format!("priority={},ip,nw_dst=10.1.{}.{},actions=drop", 10 + i, i, j)}),
                        3 => json!({"type": "dump_flows", "bridge": br}),
                        _ => json!({"type": "nonsense"}),
                    };
                    let v = c.call(&req);
                    if j % 5 == 4 {
                        assert_eq!(kind(&v), "bad_request", "{v}");
                    } else {
                        assert!(resp_ok(&v), "client {i} request {j}: {v}");
                    }
                    answers += 1;
                }
                answers
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 1000);
    // Every acknowledged flow is there: 100 clients × 2 flows + NORMAL.
    assert_eq!(d.flows(&br).len(), 201);
    // And the daemon keeps serving.
    d.ok(&["show"]);
}

#[test]
fn clients_that_vanish_mid_request_do_not_hurt() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    for i in 0..50 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        // A full request whose answer nobody reads, or half of one.
        let req = if i % 2 == 0 {
            format!(
                "{}\n",
                json!({"type": "add_flows", "bridge": br, "text": format!("priority={},actions=drop", 100 + i)})
            )
        } else {
            "{\"type\":\"show".to_string()
        };
        s.write_all(req.as_bytes()).unwrap();
        drop(s);
    }
    // Everything sent in full was applied; the daemon still answers.
    let n = poll(Duration::from_secs(5), || {
        (d.flows(&br).len() == 26).then_some(())
    });
    assert!(n.is_some(), "{:?}", d.flows(&br).len());
    let mut c = d.conn();
    ping(&mut c);
}

#[test]
fn delete_and_recreate_back_to_back() {
    if !require_root() {
        return;
    }
    // Regression: del-br/del-port used to return before the datapath had
    // closed the TAPs, so re-creating the same name right away failed with
    // "a network device named … already exists".
    let d = Rvsd::start();
    let br = uniq('r');
    let tap = uniq('t');
    let mut c = d.conn();
    for round in 0..20 {
        for req in [
            json!({"type": "add_br", "name": br}),
            json!({"type": "add_port", "bridge": br, "name": tap}),
            json!({"type": "del_port", "bridge": br, "name": tap}),
            json!({"type": "add_port", "bridge": br, "name": tap}),
            json!({"type": "del_br", "name": br}),
        ] {
            let v = c.call(&req);
            assert!(resp_ok(&v), "round {round}: {req} -> {v}");
        }
        assert!(!netdev_exists(&br) && !netdev_exists(&tap));
    }
}

#[test]
fn uploads_in_pieces_run_as_one_request_per_connection() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let mut c = d.conn();
    let up = |c: &mut Conn, offset: usize, text: &str| {
        c.call(&json!({"type": "upload", "offset": offset, "text": text}))
    };
    let with = |c: &mut Conn, bytes: usize, text: &str| {
        c.call(&json!({"type": "with_upload", "bytes": bytes,
            "request": {"type": "add_flows", "bridge": br, "text": text}}))
    };
    // Pieces may cut a line anywhere.
    let v = up(&mut c, 0, "priority=10,actions=dr");
    assert_eq!(v["result"]["count"], 22, "{v}");
    let v = up(&mut c, 22, "op\npriority=11,ac");
    assert_eq!(v["result"]["count"], 39, "{v}");
    let v = with(&mut c, 39, "tions=drop\n");
    assert!(resp_ok(&v), "{v}");
    assert_eq!(v["result"]["count"], 2);
    assert_eq!(d.flows(&br).len(), 3);

    // A lost piece is noticed, and empties the buffer.
    up(&mut c, 0, "priority=12,actions=drop\n");
    let v = up(&mut c, 99, "x");
    assert_eq!(kind(&v), "bad_request", "{v}");
    assert!(resp_err(&v).contains("offset 99, but 25 bytes"), "{v}");
    let v = with(&mut c, 25, "");
    assert!(resp_err(&v).contains("but 0 were uploaded"), "{v}");

    // A bad line in the joined text: named by its number, nothing added.
    up(&mut c, 0, "priority=13,actions=drop\n");
    let v = with(&mut c, 25, "priority=14,nw_src=1.2.3.4,actions=drop\n");
    let msg = resp_err(&v);
    assert!(
        msg.contains("line 2") && msg.contains("no flows were added"),
        "{v}"
    );
    assert_eq!(d.flows(&br).len(), 3);

    // Uploads belong to their connection.
    let mut other = d.conn();
    up(&mut other, 0, "priority=15,actions=drop\n");
    let v = with(&mut c, 25, "");
    assert!(resp_err(&v).contains("but 0 were uploaded"), "{v}");
    let v = with(&mut other, 25, "");
    assert!(resp_ok(&v), "{v}");
    assert_eq!(d.flows(&br).len(), 4);
    ping(&mut c);
}

/// Runs rvsd with `args` (on a fresh state dir in `dir`), expecting it to
/// refuse to start within 10 s; returns its stderr.
fn refused_start(dir: &std::path::Path, args: &[&str]) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn rvsd");
    let st = poll(Duration::from_secs(10), || c.try_wait().ok().flatten());
    let Some(st) = st else {
        let _ = c.kill();
        let _ = c.wait();
        panic!("rvsd {args:?} did not exit");
    };
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!st.success(), "rvsd {args:?} should refuse to start: {err}");
    err
}

#[test]
fn the_socket_is_0600_from_the_moment_it_appears() {
    if !require_root() {
        return;
    }
    let mut d = Rvsd::spawn_with_env(&[], &[]);
    // Watch the socket path from the start: whenever it exists, its mode
    // is final already (it used to be chmod-ed after bind).
    let mut seen = 0;
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if let Ok(m) = std::fs::symlink_metadata(&d.socket) {
            assert_eq!(m.permissions().mode() & 0o777, 0o600, "mode as it appeared");
            seen += 1;
            if d.ctl(&["list-br"]).status.success() {
                break;
            }
        }
        // The private directory it is bound in is never open to others.
        for e in std::fs::read_dir(d.dir()).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let (true, Ok(m)) = (name.starts_with(".rvsd."), e.metadata()) {
                assert_eq!(
                    m.permissions().mode() & 0o077,
                    0,
                    "{name} is open to others"
                );
            }
        }
    }
    assert!(seen > 0, "the socket never appeared");
    d.wait_ready();
    let m = std::fs::symlink_metadata(&d.socket).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    assert_eq!((m.uid(), m.gid()), (0, 0));
    let leftovers: Vec<_> = std::fs::read_dir(d.dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".rvsd."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A restart over the socket left by kill -9 (stale) works too.
    d.kill9();
    assert!(d.socket.exists());
    d.restart();
    let m = std::fs::symlink_metadata(&d.socket).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o600);
}

#[test]
fn socket_group_opens_the_socket_to_that_group_only() {
    if !require_root() {
        return;
    }
    // "daemon" (gid 1) exists on every Debian system; nobody (65534) is
    // not in it.
    let d = Rvsd::start_with(&["--socket-group", "daemon"]);
    let m = std::fs::symlink_metadata(&d.socket).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o660);
    assert_eq!((m.uid(), m.gid()), (0, 1));
    let as_nobody = |groups: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534"])
            .args(groups)
            .arg(rvsctl_bin())
            .arg("--socket")
            .arg(&d.socket)
            .args(["--timeout", "10", "list-br"])
            .output()
            .expect("run setpriv")
    };
    let out = as_nobody(&["--groups=1"]);
    assert!(
        out.status.success(),
        "a member of the group is served: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_nobody(&["--clear-groups"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "others are not");
    assert!(err.to_lowercase().contains("permission denied"), "{err}");
}

#[test]
fn unknown_socket_group_and_non_socket_paths_are_clear_errors() {
    if !require_root() {
        return;
    }
    let t = TempDir::new();
    let sock = t.0.join("rvsd.sock");
    let s = sock.to_str().unwrap();
    let err = refused_start(
        &t.0,
        &["--socket", s, "--socket-group", "rvs-no-such-group"],
    );
    assert!(
        err.contains("rvsd: --socket-group rvs-no-such-group: no such group"),
        "{err}"
    );
    assert!(
        !sock.exists() && !t.0.join("state").exists(),
        "nothing is created"
    );

    // A regular file where the socket should be is not replaced.
    std::fs::write(&sock, "precious\n").unwrap();
    let err = refused_start(&t.0, &["--socket", s]);
    assert!(
        err.contains(&format!(
            "cannot listen on {s}: it exists and is not a socket (a regular file); refusing to replace it"
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "precious\n");
}
