//! Conversions at the control plane's edges: datapath values to the
//! `rvsctl` protocol and to OpenFlow messages.
//!
//! # What?
//! The datapath answers in its own plain types (see [`crate::datapath`]):
//! a punted [`ControllerPacket`], a [`Trace`], [`FdbRow`]s and port
//! [`PortSnapshot`]s. Here they become a PACKET_IN ([`PacketIn`], whose
//! version-specific encoding stays in [`crate::openflow`]) and the JSON
//! types of [`rvs_ctl::proto`] that `trace`, `fdb-show` and `dump-ports`
//! print (and that OpenFlow PORT_STATS is built from).
//!
//! # Design
//! Small `From` impls and functions, nothing else: no state, no I/O. The
//! PACKET_IN conversion takes the punted packet by value and moves its
//! frame into the message, so a punt still allocates only once.
//!
//! # Invariants
//! The output is exactly what the datapath built before it had its own
//! types: drop reasons by [`RxDrop::name`] / [`TxDrop::name`] with zero
//! counts omitted, MACs lower-case, total lengths above 65535 sent as
//! 65535. (The PACKET_IN keeps the whole punted frame; its encoder sends
//! what fits in a 65535-byte message, see [`crate::openflow::encode`].)
//!
//! [`RxDrop::name`]: crate::datapath::counters::RxDrop::name
//! [`TxDrop::name`]: crate::datapath::counters::TxDrop::name

use flowtable::PortNo;
use rvs_ctl::proto;

use crate::datapath::controller::{ControllerPacket, PuntReason};
use crate::datapath::counters::PortSnapshot;
use crate::datapath::xlate::{FdbRow, Trace, TraceOutput, TraceStep};
use crate::openflow::msg::{packet_in_reason, PacketIn};

/// The OpenFlow PACKET_IN reason (the same number in 1.0 and 1.3).
fn of_reason(r: PuntReason) -> u8 {
    match r {
        PuntReason::NoMatch => packet_in_reason::NO_MATCH,
        PuntReason::Action => packet_in_reason::ACTION,
    }
}

impl From<ControllerPacket> for PacketIn {
    /// The PACKET_IN for a punted packet (never buffered); the frame is
    /// moved, not copied.
    fn from(p: ControllerPacket) -> PacketIn {
        PacketIn::with_data(
            p.in_port,
            of_reason(p.reason),
            p.table,
            p.cookie,
            p.frame,
            p.total_len,
        )
    }
}

impl From<FdbRow> for proto::FdbEntry {
    fn from(r: FdbRow) -> proto::FdbEntry {
        proto::FdbEntry {
            port: r.port.0,
            port_name: r.port_name,
            vlan: r.vlan.0,
            mac: r.mac.to_string(),
            age: r.age_s,
        }
    }
}

impl From<TraceStep> for proto::TraceStep {
    fn from(s: TraceStep) -> proto::TraceStep {
        proto::TraceStep {
            table: s.table,
            rule: s.rule,
            detail: s.detail,
            depth: s.depth,
        }
    }
}

impl From<TraceOutput> for proto::TraceOutput {
    fn from(o: TraceOutput) -> proto::TraceOutput {
        proto::TraceOutput {
            port: o.port.0,
            name: o.name,
            vlan: o.vlan,
        }
    }
}

/// The `trace` reply for the datapath's trace of `packet` (the packet in
/// flow syntax, as the reply shows it).
pub fn trace_result(packet: String, t: Trace) -> proto::TraceResult {
    proto::TraceResult {
        packet,
        steps: t.steps.into_iter().map(Into::into).collect(),
        outputs: t.outputs.into_iter().map(Into::into).collect(),
        drop_reason: t.drop_reason.map(|r| r.name().to_string()),
    }
}

/// The `dump-ports` row of port `name` (`ofport`) with counters `s`.
pub fn port_stats(name: &str, ofport: PortNo, s: &PortSnapshot) -> proto::PortStats {
    proto::PortStats {
        name: name.to_string(),
        ofport: ofport.0,
        up: s.up,
        rx_packets: s.rx_packets,
        rx_bytes: s.rx_bytes,
        tx_packets: s.tx_packets,
        tx_bytes: s.tx_bytes,
        rx_dropped: s
            .rx_drops()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.name().to_string(), n))
            .collect(),
        tx_dropped: s
            .tx_drops()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.name().to_string(), n))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::counters::{PortShared, RxDrop, TxDrop};
    use crate::openflow::{encode, Message};
    use flowtable::{Mac, Vid};

    #[test]
    fn packet_in_is_what_from_frame_built() {
        let frame: Vec<u8> = (0..200u8).collect();
        for (max_len, reason, of_reason) in [
            (64, PuntReason::Action, packet_in_reason::ACTION),
            (0xffff, PuntReason::NoMatch, packet_in_reason::NO_MATCH),
        ] {
            let p = ControllerPacket::from_frame(4, PortNo(3), reason, 7, 0xabcd, &frame, max_len);
            let want = PacketIn::from_frame(PortNo(3), of_reason, 7, 0xabcd, &frame, max_len);
            let got = PacketIn::from(p);
            assert_eq!(got, want);
            for v in [1, 4] {
                assert_eq!(
                    encode(v, 9, &Message::PacketIn(got.clone())).expect("encode"),
                    encode(v, 9, &Message::PacketIn(want.clone())).expect("encode")
                );
            }
        }
    }

    #[test]
    fn packet_in_total_len_saturates() {
        let p = ControllerPacket {
            bridge: 0,
            in_port: PortNo(1),
            reason: PuntReason::Action,
            table: 0,
            cookie: u64::MAX,
            frame: vec![0; 128],
            total_len: 70_000,
        };
        let pin = PacketIn::from(p);
        assert_eq!((pin.total_len, pin.data.len()), (u16::MAX, 128));
    }

    #[test]
    fn port_stats_names_nonzero_drops() {
        let s = PortShared::new(None);
        s.w(0).rx_packets.add(3);
        s.w(0).tx_bytes.add(180);
        s.w(0).rx_drop(RxDrop::NoMatch);
        s.w(1).rx_drop(RxDrop::NoMatch);
        s.w(0).tx_drop(TxDrop::QueueFull);
        let j = serde_json::to_value(port_stats("p1", PortNo(1), &s.snapshot())).expect("json");
        assert_eq!(
            j,
            serde_json::json!({
                "name": "p1", "ofport": 1, "up": true,
                "rx_packets": 3, "rx_bytes": 0, "tx_packets": 0, "tx_bytes": 180,
                "rx_dropped": {"no_match": 2},
                "tx_dropped": {"queue_full": 1},
            })
        );
    }

    #[test]
    fn fdb_and_trace_convert_field_by_field() {
        let e = proto::FdbEntry::from(FdbRow {
            port: PortNo(2),
            port_name: "tap2".into(),
            vlan: Vid(10),
            mac: Mac([0x02, 0, 0, 0, 0, 0xab]),
            age_s: 5,
        });
        assert_eq!(
            e,
            proto::FdbEntry {
                port: 2,
                port_name: "tap2".into(),
                vlan: 10,
                mac: "02:00:00:00:00:ab".into(),
                age: 5,
            }
        );
        let t = trace_result(
            "in_port=1".into(),
            Trace {
                steps: vec![TraceStep {
                    table: Some(0),
                    rule: None,
                    detail: "no flow matched: drop".into(),
                    depth: 1,
                }],
                outputs: vec![],
                drop_reason: Some(RxDrop::NoMatch),
            },
        );
        assert_eq!(t.packet, "in_port=1");
        assert_eq!(t.drop_reason.as_deref(), Some("no_match"));
        assert_eq!(t.steps[0].detail, "no flow matched: drop");
        assert_eq!((t.steps[0].table, t.steps[0].depth), (Some(0), 1));
        let t = trace_result(
            String::new(),
            Trace {
                steps: vec![],
                outputs: vec![TraceOutput {
                    port: PortNo(3),
                    name: "p3".into(),
                    vlan: Some(20),
                }],
                drop_reason: None,
            },
        );
        assert_eq!(
            t.outputs,
            vec![proto::TraceOutput {
                port: 3,
                name: "p3".into(),
                vlan: Some(20)
            }]
        );
        assert_eq!(t.drop_reason, None);
    }
}
