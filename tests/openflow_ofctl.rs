//! The OpenFlow channel driven by real clients: `ovs-ofctl` (1.3 and 1.0)
//! against a `ptcp:` controller target, a minimal hub controller built on
//! rvs's codec behind a `tcp:` target (PACKET_IN / PACKET_OUT), and the
//! fail modes — with real traffic between namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use rvs::openflow::{self as of, msg, Message};

/// Runs `ovs-ofctl ARGS… TARGET [EXTRA…]` (bounded to 10 s); returns
/// (success, stdout + stderr).
fn ofctl(proto: Option<&str>, cmd: &str, target: &str, extra: &[&str]) -> (bool, String) {
    let mut c = Command::new("timeout");
    c.arg("10").arg("ovs-ofctl");
    if let Some(p) = proto {
        c.arg("-O").arg(p);
    }
    c.arg(cmd).arg(target).args(extra);
    let out = c
        .output()
        .expect("run ovs-ofctl (install openvswitch-common)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ofctl_ok(proto: Option<&str>, cmd: &str, target: &str, extra: &[&str]) -> String {
    let (ok, text) = ofctl(proto, cmd, target, extra);
    assert!(
        ok,
        "ovs-ofctl {proto:?} {cmd} {target} {extra:?} failed: {text}"
    );
    text
}

/// A bridge with two TAP hosts (10.7.0.1, .2) and a `ptcp:` controller
/// target; returns once `ovs-ofctl show` answers.
struct Topo {
    d: Rvsd,
    br: String,
    h: [Host; 2],
    target: String,
}

fn topo() -> Topo {
    let d = Rvsd::start();
    let br = d.add_br();
    let h = [1, 2].map(|i| tap_host(&d, &br, &[], Some(&format!("10.7.0.{i}/24"))));
    let port = free_port();
    d.ok(&["set-controller", &br, &format!("ptcp:{port}")]);
    let target = format!("tcp:127.0.0.1:{port}");
    let up = poll(Duration::from_secs(10), || {
        ofctl(Some("OpenFlow13"), "show", &target, &[])
            .0
            .then_some(())
    });
    assert!(
        up.is_some(),
        "ptcp:{port} never answered:\n{}",
        d.log_text()
    );
    Topo { d, br, h, target }
}

#[test]
fn ofctl13_programs_flows_that_forward() {
    if !require_root() || !have_ofctl() {
        return;
    }
    let t = topo();
    let of13 = Some("OpenFlow13");
    let [h1, h2] = &t.h;

    // show: datapath id as rvsctl reports it, both ports by name.
    let show = ofctl_ok(of13, "show", &t.target, &[]);
    let ctl = t.d.json(&["get-controller", &t.br]);
    let dpid = ctl["datapath_id"].as_str().unwrap().to_string();
    assert!(show.contains(&format!("dpid:{dpid}")), "{show}");
    assert!(show.contains(&format!("1({})", h1.port)), "{show}");
    assert!(show.contains(&format!("2({})", h2.port)), "{show}");
    assert!(show.contains(&format!("LOCAL({})", t.br)), "{show}");

    // Secure: without flows nothing passes, controller or not.
    t.d.ok(&["set-fail-mode", &t.br, "secure"]);
    ofctl_ok(of13, "del-flows", &t.target, &[]);
    assert!(t.d.flows(&t.br).is_empty());
    h1.assert_no_ping(h2.ip());

    // add-flow / add-flows from ovs-ofctl: the same flows rvsctl sees,
    // and they forward.
    ofctl_ok(
        of13,
        "add-flow",
        &t.target,
        &["priority=10,in_port=1,actions=output:2"],
    );
    let dir = TempDir::new();
    let file = dir.0.join("flows.txt");
    std::fs::write(
        &file,
        "priority=10,in_port=2,actions=output:1\ncookie=0x42,priority=5,udp,actions=drop\n",
    )
    .unwrap();
    ofctl_ok(of13, "add-flows", &t.target, &[file.to_str().unwrap()]);
    h1.assert_ping(h2.ip());
    let flows = t.d.flows(&t.br);
    assert_eq!(flows.len(), 3, "{flows:#?}");
    let f = t.d.flow(&t.br, "priority=10,in_port=1 actions=output:2");
    assert!(f.n_packets > 0, "{f:?}");
    assert!(flows.iter().any(|f| f.cookie == 0x42));

    let dump = ofctl_ok(of13, "dump-flows", &t.target, &[]);
    assert!(
        dump.contains("priority=10,in_port=1 actions=output:2"),
        "{dump}"
    );
    assert!(dump.contains("cookie=0x42"), "{dump}");
    let lines = dump.lines().filter(|l| l.contains("actions=")).count();
    assert_eq!(lines, 3, "{dump}");

    // dump-ports: the counters rvsctl has.
    let ports = ofctl_ok(of13, "dump-ports", &t.target, &[]);
    let rx1 = t.d.port_stats(&t.br, &h1.port).rx_packets;
    assert!(rx1 > 0);
    assert!(
        ports.contains("port  1: rx pkts=") || ports.contains("port 1: rx pkts="),
        "{ports}"
    );
    assert!(ports.contains("3 ports"), "{ports}");

    let tables = ofctl_ok(of13, "dump-tables", &t.target, &[]);
    assert!(
        tables.contains("table 0:") && tables.contains("active=3"),
        "{tables}"
    );
    let desc = ofctl_ok(of13, "dump-desc", &t.target, &[]);
    assert!(
        desc.contains(&format!("DP Description: {}", t.br)),
        "{desc}"
    );

    // del-flows by match (loose) and strict.
    ofctl_ok(
        of13,
        "del-flows",
        &t.target,
        &["--strict", "priority=5,udp"],
    );
    assert_eq!(t.d.flows(&t.br).len(), 2);
    ofctl_ok(of13, "del-flows", &t.target, &["in_port=2"]);
    let left = t.d.flows(&t.br);
    assert_eq!(left.len(), 1, "{left:#?}");
    h1.assert_no_ping(h2.ip());

    // Persisted like any other change.
    let export = t.d.ok(&["export"]);
    assert!(export.contains("in_port=1 actions=output:2"), "{export}");
    assert!(export.contains("fail_mode = \"secure\""), "{export}");
    assert!(export.contains("controller = [\"ptcp:"), "{export}");
}

#[test]
fn ofctl10_show_dump_add() {
    if !require_root() || !have_ofctl() {
        return;
    }
    let t = topo();
    let [h1, h2] = &t.h;
    let show = ofctl_ok(None, "show", &t.target, &[]);
    assert!(show.contains("OFPT_FEATURES_REPLY (xid="), "{show}");
    assert!(show.contains(&format!("1({})", h1.port)), "{show}");
    let dump = ofctl_ok(None, "dump-flows", &t.target, &[]);
    assert!(dump.contains("priority=0 actions=NORMAL"), "{dump}");
    ofctl_ok(
        None,
        "add-flow",
        &t.target,
        &["priority=100,icmp,actions=drop"],
    );
    t.d.flow(&t.br, "priority=100,icmp actions=drop");
    h1.assert_no_ping(h2.ip());
    ofctl_ok(None, "del-flows", &t.target, &["icmp"]);
    h1.assert_ping(h2.ip());
}

/// Tunnel metadata through `ovs-ofctl -O OpenFlow13`: flows that match
/// and set `tun_id`, `tun_src`, `tun_dst` and `tun_flags` go in (OXM
/// TUNNEL_ID, NXM TUN_IPV4_SRC/DST, TUN_FLAGS), rvsctl prints them in
/// rvs's (OVS default-protocol) form, and `ovs-ofctl dump-flows` prints
/// exactly what it printed for the same flow on OVS; flows added with
/// rvsctl dump the same way. `del-flows` by tunnel match works.
#[test]
fn ofctl13_tunnel_fields_round_trip() {
    if !require_root() || !have_ofctl() {
        return;
    }
    let t = topo();
    let of13 = Some("OpenFlow13");
    ofctl_ok(of13, "del-flows", &t.target, &[]);
    // (what ovs-ofctl sends, what rvsctl prints, what ovs-ofctl -O
    // OpenFlow13 dump-flows prints: OVS 3.1's own text for this flow).
    let cases = [
        (
            "priority=10,tun_id=0x5,tun_src=1.2.3.4,tun_dst=10.0.0.0/8,actions=output:1",
            "priority=10,tun_id=0x5,tun_src=1.2.3.4,tun_dst=10.0.0.0/8 actions=output:1",
            "priority=10,tun_id=0x5,tun_src=1.2.3.4,tun_dst=10.0.0.0/8 actions=output:1",
        ),
        (
            "priority=11,tcp,tp_dst=80,in_port=1,metadata=0x3,tun_id=0x5/0xff,tun_flags=+oam,tun_src=1.2.3.4/255.255.0.255,actions=drop",
            "priority=11,tcp,tun_id=0x5/0xff,tun_src=1.2.0.4/255.255.0.255,tun_flags=+oam,metadata=0x3,in_port=1,tp_dst=80 actions=drop",
            "priority=11,tcp,tun_id=0x5/0xff,tun_src=1.2.0.4/255.255.0.255,tun_flags=+oam,metadata=0x3,in_port=1,tp_dst=80 actions=drop",
        ),
        (
            "priority=12,tun_flags=-oam,actions=set_tunnel:5,set_tunnel64:0x123456789,set_field:1.2.3.4->tun_dst,set_field:5.6.7.8->tun_src,set_field:oam->tun_flags,output:2",
            "priority=12,tun_flags=-oam actions=set_tunnel:0x5,set_tunnel64:0x123456789,set_field:1.2.3.4->tun_dst,set_field:5.6.7.8->tun_src,set_field:oam->tun_flags,output:2",
            "priority=12,tun_flags=-oam actions=set_field:0x5->tun_id,set_field:0x123456789->tun_id,set_field:1.2.3.4->tun_dst,set_field:5.6.7.8->tun_src,set_field:oam->tun_flags,output:2",
        ),
    ];
    for (add, rvs_text, _) in cases {
        ofctl_ok(of13, "add-flow", &t.target, &[add]);
        t.d.flow(&t.br, rvs_text);
    }
    let dump = ofctl_ok(of13, "dump-flows", &t.target, &["--no-stats"]);
    for (_, _, ovs_text) in cases {
        assert!(
            dump.lines().any(|l| l.trim() == ovs_text),
            "{ovs_text:?} not in\n{dump}"
        );
    }
    // Added with rvsctl, dumped by ovs-ofctl: the same text.
    t.d.ok(&[
        "add-flow",
        &t.br,
        "priority=13,tunnel_id=0x1234567890,tun_dst=192.168.0.0/16,actions=set_field:0->tun_flags,set_tunnel:0x2a,NORMAL",
    ]);
    let dump = ofctl_ok(
        of13,
        "dump-flows",
        &t.target,
        &["--no-stats", "tun_dst=192.168.0.0/16"],
    );
    assert!(
        dump.contains(
            "priority=13,tun_id=0x1234567890,tun_dst=192.168.0.0/16 actions=set_field:0->tun_flags,set_field:0x2a->tun_id,NORMAL"
        ),
        "{dump}"
    );
    // del-flows by tunnel match (loose): both tun_id=0x5 flows go.
    ofctl_ok(of13, "del-flows", &t.target, &["tun_id=0x5/0xff"]);
    let left: Vec<String> = t.d.flows(&t.br).into_iter().map(|f| f.flow).collect();
    assert_eq!(left.len(), 2, "{left:#?}");
    assert!(left.iter().all(|f| !f.contains("tun_id=0x5")), "{left:#?}");
    ofctl_ok(
        of13,
        "del-flows",
        &t.target,
        &["--strict", "priority=12,tun_flags=-oam"],
    );
    let left: Vec<String> = t.d.flows(&t.br).into_iter().map(|f| f.flow).collect();
    assert_eq!(left.len(), 1, "{left:#?}");
    assert!(left[0].starts_with("priority=13,"), "{left:#?}");
    // OpenFlow 1.0 cannot carry tunnel matches (ovs-ofctl needs NXM, which
    // rvs does not speak), but it can send Nicira set_tunnel actions.
    ofctl_ok(
        None,
        "add-flow",
        &t.target,
        &["priority=14,in_port=2,actions=set_tunnel:0x7,set_tunnel:0x123456789,output:1"],
    );
    t.d.flow(
        &t.br,
        "priority=14,in_port=2 actions=set_tunnel:0x7,set_tunnel64:0x123456789,output:1",
    );
    let dump = ofctl_ok(None, "dump-flows", &t.target, &["--no-stats", "in_port=2"]);
    assert!(
        dump.contains(
            "priority=14,in_port=2 actions=set_tunnel:0x7,set_tunnel64:0x123456789,output:1"
        ),
        "{dump}"
    );
}

/// FLOW statistics of a large table arrive in many messages, OFPMPF_REPLY_MORE
/// on all but the last, every flow once: read raw and through `ovs-ofctl`
/// (1.3 and 1.0); AGGREGATE counts them all.
#[test]
fn flow_stats_of_a_large_table_span_many_messages() {
    if !require_root() || !have_ofctl() {
        return;
    }
    let t = topo();
    let n = 20_000;
    let text: String = (0..n)
        .map(|i| {
            format!(
                "cookie={i:#x},priority={},ip,nw_dst=10.{}.{}.{},actions=output:1\n",
                100 + i % 1000,
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255
            )
        })
        .collect();
    let dir = TempDir::new();
    let file = dir.0.join("flows.txt");
    std::fs::write(&file, text).unwrap();
    t.d.ok(&["add-flows", &t.br, file.to_str().unwrap()]);
    // All flows, the bridge's NORMAL included.
    let all = n + 1;
    let cookies = |dump: &str| {
        let mut seen = vec![0u32; n];
        let mut lines = 0;
        for l in dump.lines().filter(|l| l.starts_with(" cookie=")) {
            lines += 1;
            let c = l[" cookie=0x".len()..].split(',').next().unwrap();
            let c = usize::from_str_radix(c, 16).unwrap();
            if !l.contains("priority=0 actions=NORMAL") {
                seen[c] += 1;
            }
        }
        assert_eq!(lines, all);
        assert!(seen.iter().all(|&k| k == 1), "a flow missing or twice");
    };
    for proto in [Some("OpenFlow13"), None] {
        let dump = ofctl_ok(proto, "dump-flows", &t.target, &[]);
        cookies(&dump);
        let replies = dump.lines().filter(|l| l.contains("reply")).count();
        assert!(replies > 10, "{proto:?}: {replies} reply messages");
    }
    let agg = ofctl_ok(Some("OpenFlow13"), "dump-aggregate", &t.target, &[]);
    assert!(agg.contains(&format!("flow_count={all}")), "{agg}");

    // Raw: the messages, their flags and sizes.
    let addr = t.target.trim_start_matches("tcp:");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    send(&mut s, &Message::Hello(msg::Hello { versions: 1 << 4 }));
    let (_, hello) = read_msg(&mut s, &mut buf).expect("hello");
    assert!(matches!(hello, Message::Hello(_)), "{hello:?}");
    let req = of::MultipartRequest {
        flags: 0,
        body: of::MpRequest::Flow(of::multipart::FlowStatsRequest {
            table_id: 0xff,
            out_port: flowtable::PortNo::NONE,
            out_group: u32::MAX,
            cookie: 0,
            cookie_mask: 0,
            m: flowtable::Match::CATCHALL,
        }),
    };
    send(&mut s, &Message::MultipartRequest(req));
    let (mut msgs, mut entries) = (0, 0);
    loop {
        let (h, m) = read_msg(&mut s, &mut buf).expect("a multipart reply");
        let Message::MultipartReply(r) = m else {
            continue; // an echo request, say
        };
        assert!(usize::from(h.length) <= of::MAX_MSG_LEN);
        let of::MpReply::Flow(f) = r.body else {
            panic!("{:?}", r.body)
        };
        msgs += 1;
        entries += f.len();
        if r.flags & of::multipart::MPF_MORE == 0 {
            break;
        }
        assert!(!f.is_empty());
    }
    assert_eq!(entries, all);
    assert!(msgs > 10, "{msgs} messages");
}

#[test]
fn fail_mode_standalone_forwards_until_secure() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let h1 = tap_host(&d, &br, &[], Some("10.7.1.1/24"));
    let h2 = tap_host(&d, &br, &[], Some("10.7.1.2/24"));
    d.ok(&["del-flows", &br]);
    h1.assert_no_ping(h2.ip());
    // A controller that never answers: standalone falls back to NORMAL.
    let port = free_port();
    d.ok(&["set-controller", &br, &format!("tcp:127.0.0.1:{port}")]);
    assert_eq!(d.ok(&["get-fail-mode", &br]).trim(), "standalone");
    h1.assert_ping(h2.ip());
    d.ok(&["set-fail-mode", &br, "secure"]);
    h1.assert_no_ping(h2.ip());
    d.ok(&["set-fail-mode", &br, "standalone"]);
    h1.assert_ping(h2.ip());
    d.ok(&["del-controller", &br]);
    h1.assert_no_ping(h2.ip());
    let (code, err) = d.fails(&["set-controller", &br, "bogus:1"]);
    assert_eq!(code, 1, "{err}");
    // A passive target that cannot listen is refused at once, naming the
    // address; nothing changes.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let (code, err) = d.fails(&["set-controller", &br, &format!("ptcp:{busy_port}")]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{busy_port}")),
        "{err}"
    );
    assert!(d.ok(&["get-controller", &br]).trim().is_empty());
    // One bridge's listener is not another's; setting it again is fine.
    let lport = free_port();
    let ptcp = format!("ptcp:{lport}");
    d.ok(&["set-controller", &br, &ptcp]);
    d.ok(&["set-controller", &br, &ptcp]);
    let br2 = d.add_br();
    let (code, err) = d.fails(&["set-controller", &br2, &ptcp]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("already a controller of bridge {br}")),
        "{err}"
    );
    d.ok(&["del-controller", &br]);
    drop(busy);
    let (_, err) = d.fails(&["set", "bridge", &br, "datapath-id=12"]);
    assert!(err.contains("16 hex digits"), "{err}");
    d.ok(&["set", "bridge", &br, "datapath-id=00000000000000ab"]);
    let v = d.json(&["get-controller", &br]);
    assert_eq!(v["datapath_id"], "00000000000000ab");
}

/// Reads one OpenFlow message (blocking, with the stream's timeout).
fn read_msg(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(of::Header, Message)> {
    loop {
        if let Ok(Some(n)) = of::frame(buf, of::MAX_MSG_LEN) {
            let raw: Vec<u8> = buf.drain(..n).collect();
            return of::decode(&raw).ok();
        }
        let mut tmp = [0u8; 4096];
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

fn send(s: &mut TcpStream, m: &Message) {
    s.write_all(&of::encode(of::OFP13_VERSION, 1, m).unwrap())
        .unwrap();
}

/// rvsd connects out to a hub controller made of rvs's codec: it installs
/// a table-miss flow to CONTROLLER and floods every PACKET_IN back with
/// PACKET_OUT. Hosts reach each other only through the controller.
#[test]
fn packet_in_and_packet_out_through_an_active_controller() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let h1 = tap_host(&d, &br, &[], Some("10.7.2.1/24"));
    let h2 = tap_host(&d, &br, &[], Some("10.7.2.2/24"));
    d.ok(&["set-fail-mode", &br, "secure"]);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    d.ok(&["set-controller", &br, &format!("tcp:127.0.0.1:{port}")]);
    let (mut s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    send(&mut s, &Message::Hello(msg::Hello { versions: 1 << 4 }));
    let (_, hello) = read_msg(&mut s, &mut buf).expect("hello");
    assert!(matches!(hello, Message::Hello(_)), "{hello:?}");
    // Replace NORMAL with a table-miss to the controller.
    let (_, del) = of::decode(&[
        4, 14, 0, 56, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 3, 0, 0, 0,
        0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0,
        0, 0, 1, 0, 4, 0, 0, 0, 0,
    ])
    .expect("delete-all flow mod");
    send(&mut s, &del);
    let flow =
        flowtable::syntax::parse_flow("cookie=0x77,priority=0,actions=CONTROLLER:65535", &|_| None)
            .unwrap();
    send(
        &mut s,
        &Message::FlowMod(msg::FlowMod {
            cookie: flow.cookie,
            cookie_mask: 0,
            table_id: 0,
            command: msg::FlowModCommand::Add,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: 0,
            buffer_id: msg::NO_BUFFER,
            out_port: flowtable::PortNo::NONE,
            out_group: u32::MAX,
            flags: 0,
            m: flow.m,
            actions: flow.actions.clone(),
        }),
    );
    send(&mut s, &Message::BarrierRequest);
    let t0 = Instant::now();
    loop {
        let (_, m) = read_msg(&mut s, &mut buf).expect("barrier reply");
        if matches!(m, Message::BarrierReply) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10));
    }
    let flows = d.flows(&br);
    assert_eq!(flows.len(), 1, "{flows:#?}");
    assert_eq!(
        flows[0].flow,
        "cookie=0x77, priority=0 actions=CONTROLLER:65535"
    );

    let pinger = ping_spawn(&h1.ns, h2.ip());
    let mut n_in = 0;
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        let Some((_, m)) = read_msg(&mut s, &mut buf) else {
            break;
        };
        match m {
            Message::PacketIn(p) => {
                assert_eq!(p.reason, msg::packet_in_reason::ACTION);
                assert_eq!(p.cookie, 0x77);
                assert_eq!(p.table_id, 0);
                assert!(p.in_port == flowtable::PortNo(1) || p.in_port == flowtable::PortNo(2));
                assert_eq!(usize::from(p.total_len), p.data.len());
                n_in += 1;
                send(
                    &mut s,
                    &Message::PacketOut(msg::PacketOut {
                        buffer_id: msg::NO_BUFFER,
                        in_port: p.in_port,
                        actions: vec![flowtable::Action::Flood],
                        data: p.data,
                    }),
                );
            }
            Message::EchoRequest(d) => send(&mut s, &Message::EchoReply(d)),
            _ => {}
        }
        if n_in >= 6 {
            break;
        }
    }
    assert!(
        ping_wait(pinger),
        "ping through the hub controller failed\n{}",
        d.log_text()
    );
    assert!(n_in >= 4, "only {n_in} PACKET_INs");
    let v = d.json(&["get-controller", &br]);
    assert_eq!(v["connected"].as_array().map(Vec::len), Some(1), "{v}");
}
