//! A frame too large for one OpenFlow message reaches the controller as a
//! PACKET_IN cut to fit, and the stream stays framed: a PACKET_OUT of a
//! 65,495-byte frame (the most a 1.3 PACKET_OUT carries) through a flow
//! `actions=CONTROLLER:65535` (NO_BUFFER: the whole frame) comes back as a
//! PACKET_IN of exactly 65,535 bytes with `total_len` 65,495 and 65,493
//! bytes of the frame, and an ECHO sent after it is answered in step. It
//! used to come back 2 bytes longer than its saturated length field said,
//! which desynchronized the controller's stream.
//!
//! A namespace's TCP stream on a TAP reaches rvs as 64 KiB GSO frames with
//! partial checksums; a flow punting it to the controller sends the
//! segments a wire would carry, each at most an MTU and with correct
//! checksums (as OVS's kernel datapath does for upcalls), never a
//! super-frame with a saturated length or a half-done checksum.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::*;
use rvs::openflow::{self as of, msg, Message};

/// Reads the next whole message, checking the framing by hand (not with
/// rvs's codec): the length field must describe a message that then
/// decodes.
fn read_msg(s: &mut UnixStream, buf: &mut Vec<u8>) -> (of::Header, Message, usize) {
    loop {
        if buf.len() >= 8 {
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            assert!(len >= 8, "length field {len}: the stream is broken");
            assert!(
                buf[0] == of::OFP13_VERSION,
                "version byte {:#x}: the stream is desynchronized",
                buf[0]
            );
            if buf.len() >= len {
                let raw: Vec<u8> = buf.drain(..len).collect();
                let (h, m) = of::decode(&raw)
                    .unwrap_or_else(|e| panic!("a {len}-byte message does not decode: {e:?}"));
                return (h, m, len);
            }
        }
        let mut tmp = vec![0u8; 128 * 1024];
        let n = s.read(&mut tmp).expect("read from rvsd");
        assert!(n > 0, "rvsd closed the connection");
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn send(s: &mut UnixStream, xid: u32, m: &Message) {
    s.write_all(&of::encode(of::OFP13_VERSION, xid, m).unwrap())
        .unwrap();
}

/// One's complement sum of `data` (big-endian words), folded.
fn sum16(data: &[u8]) -> u16 {
    let mut acc: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// For an untagged IPv4 TCP frame: (TCP payload length, IPv4 and TCP
/// checksums both verify); None for anything else.
fn tcp4_check(f: &[u8]) -> Option<(usize, bool)> {
    if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
        return None;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let ip_len = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let l4 = 14 + ihl;
    let end = 14 + ip_len;
    if end > f.len() || l4 + 20 > end {
        return Some((0, false));
    }
    let doff = usize::from(f[l4 + 12] >> 4) * 4;
    let mut ph = f[26..34].to_vec();
    ph.extend_from_slice(&[0, 6]);
    ph.extend_from_slice(&((end - l4) as u16).to_be_bytes());
    ph.extend_from_slice(&f[l4..end]);
    let ok = sum16(&f[14..l4]) == 0xffff && sum16(&ph) == 0xffff;
    Some((end - l4 - doff, ok))
}

#[test]
fn a_tso_stream_from_a_tap_is_punted_as_wire_segments_with_checksums() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let a = tap_host(&d, &br, &[], Some("10.37.0.1/24"));
    let b = tap_host(&d, &br, &[], Some("10.37.0.2/24"));
    let sock = d.dir().join("tso.mgmt");
    d.ok(&["set-controller", &br, &format!("punix:{}", sock.display())]);
    d.ok(&[
        "add-flow",
        &br,
        "priority=100,tcp,nw_src=10.37.0.1,actions=NORMAL,CONTROLLER:65535",
    ]);
    let mut s = poll(Duration::from_secs(10), || UnixStream::connect(&sock).ok())
        .expect("the punix listener never came up");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    send(&mut s, 1, &Message::Hello(msg::Hello { versions: 1 << 4 }));
    send(&mut s, 2, &Message::BarrierRequest);
    loop {
        if let (_, Message::BarrierReply, _) = read_msg(&mut s, &mut buf) {
            break;
        }
    }
    // The controller reads everything until the ECHO sent after the
    // transfer comes back: (PACKET_INs, TCP payload bytes in them, largest
    // frame, frames with a bad checksum or a cut).
    let mut w = s.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut n, mut payload, mut largest, mut bad) = (0usize, 0usize, 0usize, 0usize);
        loop {
            match read_msg(&mut s, &mut buf) {
                (_, Message::PacketIn(p), _) => {
                    n += 1;
                    largest = largest.max(p.data.len());
                    if usize::from(p.total_len) != p.data.len() {
                        bad += 1;
                    }
                    match tcp4_check(&p.data) {
                        Some((len, true)) => payload += len,
                        _ => bad += 1,
                    }
                }
                (h, Message::EchoReply(_), _) if h.xid == 99 => return (n, payload, largest, bad),
                (_, Message::Error(e), _) => panic!("rvsd sent an error: {e:?}"),
                _ => {}
            }
        }
    });
    const BYTES: u64 = 16 * 1024 * 1024;
    let (sent, got) = tcp_transfer(&a, &b, BYTES);
    // (iperf3's server may stop counting before the last bytes; the
    // delivery itself is tests/netns_tcp.rs's subject.)
    assert!(sent >= BYTES && got >= BYTES / 2, "sent {sent}, got {got}");
    send(&mut w, 99, &Message::EchoRequest(b"end".to_vec()));
    let (n, payload, largest, bad) = reader.join().expect("the controller's reader failed");
    let rx = d.port_stats(&br, &a.port).rx_packets;
    // The kernel sent GSO frames: far fewer frames than 1448-byte segments.
    assert!(
        rx < BYTES / 1448 / 2,
        "{rx} frames for {BYTES} bytes: the TAP did not hand rvs GSO frames"
    );
    assert_eq!(
        bad, 0,
        "{bad} of {n} PACKET_INs were not whole, checksummed TCP segments"
    );
    assert!(
        largest <= 1514,
        "a PACKET_IN carried a {largest}-byte frame"
    );
    // Some punts may be dropped when the channel's queue is full; most
    // of the stream arrives, as segments.
    assert!(
        n as u64 > rx,
        "{n} PACKET_INs for {rx} frames: not segmented"
    );
    assert!(
        payload as u64 >= BYTES / 16,
        "{payload} payload bytes punted"
    );
}

#[test]
fn a_packet_in_of_a_64k_frame_is_cut_to_fit_and_the_stream_stays_framed() {
    if !require_root() {
        return;
    }
    let d = Rvsd::start();
    let br = d.add_br();
    let sock = d.dir().join("pin.mgmt");
    d.ok(&["set-controller", &br, &format!("punix:{}", sock.display())]);
    d.ok(&["add-flow", &br, "priority=100,actions=CONTROLLER:65535"]);
    let mut s = poll(Duration::from_secs(10), || UnixStream::connect(&sock).ok())
        .expect("the punix listener never came up");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    send(&mut s, 1, &Message::Hello(msg::Hello { versions: 1 << 4 }));
    let (_, hello, _) = read_msg(&mut s, &mut buf);
    assert!(matches!(hello, Message::Hello(_)), "{hello:?}");
    // A round trip so that the connection is registered before the punt.
    send(&mut s, 2, &Message::BarrierRequest);
    loop {
        if let (_, Message::BarrierReply, _) = read_msg(&mut s, &mut buf) {
            break;
        }
    }

    // The largest frame a 1.3 PACKET_OUT carries (24-byte header, a
    // 16-byte OUTPUT:TABLE action).
    let n = of::MAX_MSG_LEN - 24 - 16;
    let mut frame = vec![0x52, 0x54, 0, 0, 0, 9, 0x52, 0x54, 0, 0, 0, 8, 0x88, 0xb5];
    frame.extend((0..n - 14).map(|i| (i % 251) as u8));
    let po = Message::PacketOut(msg::PacketOut {
        buffer_id: msg::NO_BUFFER,
        in_port: flowtable::PortNo::CONTROLLER,
        actions: vec![flowtable::Action::Output(flowtable::PortNo::TABLE)],
        data: frame.clone(),
    });
    let raw = of::encode(of::OFP13_VERSION, 3, &po).unwrap();
    assert_eq!(raw.len(), of::MAX_MSG_LEN);
    s.write_all(&raw).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < deadline,
            "no PACKET_IN for the 64 KiB frame:\n{}",
            d.log_text()
        );
        let (_, m, len) = read_msg(&mut s, &mut buf);
        match m {
            Message::PacketIn(p) => {
                assert_eq!(len, of::MAX_MSG_LEN, "PACKET_IN length");
                assert_eq!(usize::from(p.total_len), n, "total_len");
                assert_eq!(p.data.len(), of::MAX_MSG_LEN - 42);
                assert_eq!(p.data[..], frame[..p.data.len()]);
                assert_eq!(p.reason, msg::packet_in_reason::ACTION);
                break;
            }
            Message::Error(e) => panic!("rvsd answered with an error: {e:?}"),
            _ => {}
        }
    }
    // What follows the PACKET_IN is framed where its length said.
    send(&mut s, 77, &Message::EchoRequest(b"after".to_vec()));
    loop {
        let (h, m, _) = read_msg(&mut s, &mut buf);
        if let Message::EchoReply(data) = m {
            assert_eq!((h.xid, data.as_slice()), (77, &b"after"[..]));
            break;
        }
    }
    let v = d.json(&["get-controller", &br]);
    assert_eq!(v["connected"].as_array().map(Vec::len), Some(1), "{v}");
}
