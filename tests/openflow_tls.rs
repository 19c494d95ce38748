//! OpenFlow over TLS with real peers and `ovs-pki` certificates.
//!
//! A private PKI (`ovs-pki init`, then `req+sign` of a switch and a
//! controller certificate) and a second, unrelated one for a rogue
//! controller. rvsd runs with `--private-key/--certificate` of the switch
//! and `--ca-cert` of the controller CA, as `ovs-vswitchd` would.
//! - `pssl:`: the real `ovs-ofctl` with the controller certificate shows
//!   the switch and adds a flow; `ovs-ofctl` with the rogue certificate,
//!   and a client with no certificate at all, are refused and logged.
//! - `ssl:`: rvsd connects to os-ken listening for TLS
//!   (`--ofp-ssl-listen-port`), which sees the switch's features and
//!   installs a flow.
//! - Without certificates, `set-controller` refuses TLS targets with the
//!   options to use; half the options is a usage error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The PEM files of one `ovs-pki` directory.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// `ovs-pki init` in `dir`, then switch certificate `sw` and
    /// controller certificate `ctl`.
    fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let pki = |args: &[&str]| {
            let out = Command::new("ovs-pki")
                .arg(format!("--dir={}", dir.join("pki").display()))
                .arg(format!("--log={}", dir.join("ovs-pki.log").display()))
                .args(args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .output()
                .expect("ovs-pki (openvswitch-common)");
            assert!(
                out.status.success(),
                "ovs-pki {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        pki(&["init"]);
        pki(&["req+sign", "sw", "switch"]);
        pki(&["req+sign", "ctl", "controller"]);
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }

    /// rvsd's options: the switch's identity, trusting the controller CA.
    fn rvsd_args(&self) -> Vec<String> {
        vec![
            "--private-key".into(),
            self.path("sw-privkey.pem"),
            "--certificate".into(),
            self.path("sw-cert.pem"),
            "--ca-cert".into(),
            self.path("pki/controllerca/cacert.pem"),
        ]
    }

    /// ovs-ofctl's options as a controller of this PKI, trusting
    /// `switch_ca` (this PKI's own switch CA unless given).
    fn ofctl_args(&self, switch_ca: &str) -> Vec<String> {
        vec![
            "-p".into(),
            self.path("ctl-privkey.pem"),
            "-c".into(),
            self.path("ctl-cert.pem"),
            "-C".into(),
            switch_ca.into(),
        ]
    }
}

/// Whether rvsd's log says a peer certificate from the rogue PKI was
/// refused. `ovs-pki` names a CA after the second it was made in, so two
/// PKIs made in the same second have CAs of the same name: rustls then
/// finds an issuer by name whose signature does not match (BadSignature)
/// rather than no issuer (UnknownIssuer). Both are the right refusal.
fn refused_for_its_certificate(log: &str) -> bool {
    log.contains("invalid peer certificate: UnknownIssuer")
        || log.contains("invalid peer certificate: BadSignature")
}

fn ofctl(args: &[String], cmd: &[&str]) -> std::process::Output {
    Command::new("ovs-ofctl")
        .args(["-O", "OpenFlow13", "--timeout=10"])
        .args(args)
        .args(cmd)
        .stdin(Stdio::null())
        .output()
        .expect("ovs-ofctl")
}

#[test]
fn pssl_serves_ovs_ofctl_and_refuses_other_certificates() {
    if !require_root() || !have_ofctl() {
        return;
    }
    let tmp = TempDir::new();
    let pki = Pki::new(&tmp.0.join("good"));
    let rogue = Pki::new(&tmp.0.join("rogue"));
    let args = pki.rvsd_args();
    let d = Rvsd::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let br = d.add_br();
    let port = free_port();
    let target = format!("pssl:{port}:127.0.0.1");
    d.ok(&["set-controller", &br, &target]);
    let ssl = format!("ssl:127.0.0.1:{port}");
    let good = pki.ofctl_args(&pki.path("pki/switchca/cacert.pem"));

    let shown = poll(Duration::from_secs(10), || {
        let o = ofctl(&good, &["show", &ssl]);
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).to_string())
    })
    .unwrap_or_else(|| {
        let o = ofctl(&good, &["show", &ssl]);
        panic!(
            "ovs-ofctl show over TLS failed: {}\nrvsd:\n{}",
            String::from_utf8_lossy(&o.stderr),
            d.log_text()
        )
    });
    assert!(shown.contains("OFPT_FEATURES_REPLY"), "{shown}");
    let o = ofctl(
        &good,
        &[
            "add-flow",
            &ssl,
            "priority=77,ip,nw_dst=10.9.9.9,actions=drop",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        d.flows(&br)
            .iter()
            .any(|f| f.flow == "priority=77,ip,nw_dst=10.9.9.9 actions=drop"),
        "{:#?}",
        d.flows(&br)
    );

    // A controller certificate from another CA: refused by rvsd (the
    // client trusts rvsd's CA, so it is rvsd that says no).
    let bad = rogue.ofctl_args(&pki.path("pki/switchca/cacert.pem"));
    let o = ofctl(&bad, &["show", &ssl]);
    assert!(!o.status.success(), "rogue controller got in");
    // A client presenting no certificate at all.
    let py = format!(
        "import socket, ssl\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n\
         c.check_hostname = False\n\
         c.load_verify_locations('{}')\n\
         s = c.wrap_socket(socket.create_connection(('127.0.0.1', {port}), timeout=10))\n\
         s.sendall(bytes([4, 0, 0, 8, 0, 0, 0, 1]))\n\
         d = s.recv(8)\n\
         print('GOT', len(d))\n",
        pki.path("pki/switchca/cacert.pem")
    );
    let o = Command::new("python3")
        .args(["-c", &py])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() || text.contains("GOT 0"),
        "a client without a certificate got an answer: {text}"
    );
    let refused = poll(Duration::from_secs(5), || {
        let log = d.log_text();
        (log.matches("TLS handshake failed").count() >= 2).then_some(log)
    });
    let log = refused.unwrap_or_else(|| panic!("refusals not logged:\n{}", d.log_text()));
    assert!(refused_for_its_certificate(&log), "{log}");
    assert!(
        log.contains(&format!("pssl:127.0.0.1:{port}: refused 127.0.0.1:")),
        "{log}"
    );

    // The good controller still works after the refusals.
    let o = ofctl(&good, &["dump-flows", &ssl]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("nw_dst=10.9.9.9"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

const APP: &str = r#"
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3


class Tls(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def features(self, ev):
        dp = ev.msg.datapath
        p = dp.ofproto_parser
        print("FEATURES", "%016x" % ev.msg.datapath_id, flush=True)
        dp.send_msg(p.OFPFlowMod(
            datapath=dp, priority=66, match=p.OFPMatch(eth_type=0x0800, ipv4_dst="10.6.6.6"),
            instructions=[]))
        dp.send_msg(p.OFPBarrierRequest(dp))

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def barrier(self, ev):
        print("BARRIER", flush=True)
"#;

#[test]
fn ssl_connects_to_osken_with_mutual_authentication() {
    if !require_root() || !have_ofctl() {
        return;
    }
    let Some(mgr) = osken_manager() else { return };
    let tmp = TempDir::new();
    let pki = Pki::new(&tmp.0.join("good"));
    let args = pki.rvsd_args();
    let d = Rvsd::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let br = d.add_br();
    let app = tmp.0.join("tls_app.py");
    std::fs::write(&app, APP).unwrap();
    let log = tmp.0.join("osken.log");
    let logf = std::fs::File::create(&log).unwrap();
    let port = free_port();
    let child = Command::new(&mgr)
        .args(["--ofp-listen-host", "127.0.0.1"])
        .arg("--ofp-tcp-listen-port")
        .arg(free_port().to_string())
        .arg("--ofp-ssl-listen-port")
        .arg(port.to_string())
        .arg("--ctl-privkey")
        .arg(pki.path("ctl-privkey.pem"))
        .arg("--ctl-cert")
        .arg(pki.path("ctl-cert.pem"))
        .arg("--ca-certs")
        .arg(pki.path("pki/switchca/cacert.pem"))
        .arg(&app)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .expect("spawn osken-manager");
    let _m = Manager(child, log.clone());
    d.ok(&["set-controller", &br, &format!("ssl:127.0.0.1:{port}")]);
    let got = poll(Duration::from_secs(20), || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        t.contains("BARRIER").then_some(t)
    });
    let text = got.unwrap_or_else(|| {
        panic!(
            "os-ken saw no switch over TLS:\n{}\nrvsd:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            d.log_text()
        )
    });
    assert!(text.contains("FEATURES "), "{text}");
    assert!(
        d.flows(&br)
            .iter()
            .any(|f| f.flow == "priority=66,ip,nw_dst=10.6.6.6 actions=drop"),
        "{:#?}",
        d.flows(&br)
    );
    assert!(d
        .log_text()
        .contains(&format!("connected to controller ssl:127.0.0.1:{port}")));

    // A controller whose certificate comes from another CA: rvsd hangs up
    // during the handshake and says why.
    let rogue = Pki::new(&tmp.0.join("rogue"));
    let port2 = free_port();
    let py = format!(
        "import socket, ssl\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         c.load_cert_chain('{}', '{}')\n\
         l = socket.create_server(('127.0.0.1', {port2}))\n\
         l.settimeout(20)\n\
         s, _ = l.accept()\n\
         try:\n\
         \x20   c.wrap_socket(s, server_side=True).recv(8)\n\
         \x20   print('HANDSHAKE OK')\n\
         except ssl.SSLError as e:\n\
         \x20   print('REFUSED', e)\n",
        rogue.path("ctl-cert.pem"),
        rogue.path("ctl-privkey.pem")
    );
    let server = Command::new("python3")
        .args(["-c", &py])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    d.ok(&["set-controller", &br, &format!("ssl:127.0.0.1:{port2}")]);
    let out = server.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("REFUSED"), "rogue controller: {text}");
    let logged = poll(Duration::from_secs(5), || {
        let log = d.log_text();
        log.lines()
            .any(|l| {
                l.contains(&format!("ssl:127.0.0.1:{port2}: TLS handshake failed"))
                    && refused_for_its_certificate(l)
            })
            .then_some(())
    });
    assert!(logged.is_some(), "{}", d.log_text());
}

#[test]
fn tls_targets_need_certificates() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    for t in ["pssl:6653", "ssl:127.0.0.1:6653"] {
        let (code, err) = d.fails(&["set-controller", &br, t]);
        assert_ne!(code, 0);
        assert!(
            err.contains(&format!("{t}: TLS is not configured"))
                && err.contains("--private-key, --certificate and --ca-cert"),
            "{err}"
        );
    }
    // Half the options is a usage error, before anything starts.
    let o = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--private-key", "/nonexistent/key.pem", "--state-dir"])
        .arg(d.dir().join("other-state"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--certificate") && err.contains("--ca-cert"),
        "{err}"
    );
    // All three, but unreadable: the error names the option and file.
    let o = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args([
            "--private-key",
            "/nonexistent/key.pem",
            "--certificate",
            "/nonexistent/cert.pem",
            "--ca-cert",
            "/nonexistent/ca.pem",
            "--state-dir",
        ])
        .arg(d.dir().join("other-state"))
        .arg("--socket")
        .arg(d.dir().join("other.sock"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--private-key /nonexistent/key.pem"), "{err}");
}
