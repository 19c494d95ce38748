//! OpenFlow wire codec (switch side): OpenFlow 1.3 and enough 1.0.
//!
//! # What?
//! Pure functions between bytes and typed messages, no I/O:
//! - [`frame`] finds the first complete message in a byte stream (by the
//!   header's length field, with a maximum length).
//! - [`decode`] turns one message into a [`Header`] and a [`Message`]; a
//!   [`DecodeError`] carries the OpenFlow ERROR type/code to answer with
//!   ([`error_reply`] builds that ERROR, with the first 64 bytes of the
//!   offending message), so nothing a peer sends needs to drop the
//!   connection.
//! - [`encode`] writes a message for version 0x01 or 0x04;
//!   [`encode_multipart_reply`] splits a large reply into several
//!   messages with the MORE flag; [`MultipartEncoder`] does the same one
//!   item at a time, for replies too large to build whole.
//! - [`Hello`] / [`negotiate`] handle version negotiation (bitmaps, and
//!   peers that send none).
//! - Flow mods decode straight into rvs types: [`msg::FlowMod::to_flow`]
//!   and [`msg::FlowMod::filter`] give the `flowtable` flow and filter;
//!   [`msg::PacketIn::from_frame`] builds a PACKET_IN.
//!
//! A connection handler's loop, in outline:
//! ```
//! use rvs::openflow::{self as of, Message};
//! let mut inbuf: Vec<u8> = vec![4, 2, 0, 8, 0, 0, 0, 7]; // bytes read so far
//! let version = of::OFP13_VERSION; // after HELLO negotiation
//! let mut out = Vec::new();
//! while let Ok(Some(n)) = of::frame(&inbuf, of::MAX_MSG_LEN) {
//!     let raw: Vec<u8> = inbuf.drain(..n).collect();
//!     match of::decode(&raw) {
//!         Ok((h, Message::EchoRequest(d))) => {
//!             out.push(of::encode(version, h.xid, &Message::EchoReply(d)).unwrap())
//!         }
//!         Ok((h, Message::FlowMod(fm))) => {
//!             // fm.command, fm.to_flow(), fm.filter() drive the flow table.
//!             let _ = (h, fm);
//!         }
//!         Ok(_) => {}
//!         Err(e) => out.push(of::error_reply(version, e.error, &raw)),
//!     }
//! }
//! assert_eq!(out, vec![vec![4, 3, 0, 8, 0, 0, 0, 7]]);
//! ```
//!
//! # Design
//! Message structs are version independent ([`msg`], [`multipart`]);
//! version differences live in the encode/decode functions. Matches
//! ([`oxm`]) and actions ([`action`]) map directly to
//! [`flowtable::Match`] and [`flowtable::Action`], rejecting what rvs
//! cannot do with the right ERROR, so the daemon never sees a flow it
//! cannot run. Ports: rvs uses OVS's 16-bit numbering (LOCAL = 0xfffe);
//! OpenFlow 1.3's 32-bit ports convert with [`port_from_of13`] /
//! [`port_to_of13`] (reserved 0xfffffff8..=0xffffffff ↔ 0xfff8..=0xffff).
//!
//! # Invariants
//! No input makes the decoder panic (a property test feeds random bytes).
//! For every message the decoder accepts, `decode(encode(m)) == m`, and
//! flows from [`msg::FlowMod::to_flow`] print and re-parse to themselves
//! with rvs's flow syntax. No encoder hands out a message longer than
//! [`MAX_MSG_LEN`], and every length field it writes is the length
//! written (what cannot fit is cut where OpenFlow allows it, left out and
//! counted, or refused: see [`encode`] and [`MultipartEncoder`]).
//!
//! # Thread-safety
//! Pure functions.
//!
//! # Limits
//! Meters: METER_MOD, the METER instruction, METER / METER_CONFIG /
//! METER_FEATURES multipart ([`meter`]).
//!
//! Not supported (answered with an ERROR): groups, queues,
//! PORT_MOD, TABLE_MOD, MPLS/PBB actions, COPY_TTL_*, NXM/experimenter
//! match fields, Nicira messages (the caller answers BAD_VENDOR /
//! BAD_EXPERIMENTER), buffered packets. See [`oxm`] and [`action`] for
//! what does not survive encoding of rvsctl-made flows.

pub mod action;
pub mod error;
pub mod meter;
pub mod msg;
pub mod multipart;
pub mod oxm;
mod wire;

pub use error::{DecodeError, EncodeError, ErrorType, FrameError, OfpError};
pub use msg::{Hello, Message, MsgType};
pub use multipart::{MpReply, MpRequest, MultipartReply, MultipartRequest};

use flowtable::PortNo;
use wire::{len16, patch_u16, put_u16, put_u32, put_u8};

/// OpenFlow 1.0 wire version.
pub const OFP10_VERSION: u8 = 0x01;
/// OpenFlow 1.3 wire version.
pub const OFP13_VERSION: u8 = 0x04;
/// Versions rvs speaks, as a HELLO bitmap (1.0 and 1.3).
pub const SUPPORTED_VERSIONS: u32 = 1 << OFP10_VERSION | 1 << OFP13_VERSION;
/// Size of the OpenFlow header.
pub const HEADER_LEN: usize = 8;
/// Largest OpenFlow message (the length field is 16 bits).
pub const MAX_MSG_LEN: usize = 65535;
/// Bytes of an offending message quoted in an ERROR.
pub const ERROR_DATA_LEN: usize = 64;

/// The OpenFlow header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Wire version.
    pub version: u8,
    /// `ofp_type` wire value.
    pub msg_type: u8,
    /// Total length, header included.
    pub length: u16,
    /// Transaction id; replies echo the request's.
    pub xid: u32,
}

impl Header {
    /// Reads a header from the first 8 bytes of `b`.
    pub fn parse(b: &[u8]) -> Option<Header> {
        let h = b.first_chunk::<8>()?;
        Some(Header {
            version: h[0],
            msg_type: h[1],
            length: u16::from_be_bytes([h[2], h[3]]),
            xid: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        })
    }
}

/// Length of the first complete message at the start of `buf`, `None` if
/// more bytes are needed. `max_len` bounds the announced length.
///
/// ```
/// use rvs::openflow::frame;
/// let hello = [4u8, 0, 0, 8, 0, 0, 0, 1, 4, 5];
/// assert_eq!(frame(&hello, 65535), Ok(Some(8)));
/// assert_eq!(frame(&hello[..5], 65535), Ok(None));
/// ```
pub fn frame(buf: &[u8], max_len: usize) -> Result<Option<usize>, FrameError> {
    let Some(len) = buf.get(2..4) else {
        return Ok(None);
    };
    let len16 = u16::from_be_bytes([len[0], len[1]]);
    let len = usize::from(len16);
    if len < HEADER_LEN {
        return Err(FrameError::TooShort(len16));
    }
    if len > max_len {
        return Err(FrameError::TooLong { len, max: max_len });
    }
    Ok((buf.len() >= len).then_some(len))
}

/// Converts an OpenFlow 1.3 32-bit port number to rvs numbering; `None`
/// for numbers in the invalid gap (0xff00 < p < 0xffffff00).
///
/// ```
/// use rvs::openflow::port_from_of13;
/// use flowtable::PortNo;
/// assert_eq!(port_from_of13(0xfffffffe), Some(PortNo::LOCAL));
/// assert_eq!(port_from_of13(0xffffffff), Some(PortNo::NONE)); // OFPP_ANY
/// assert_eq!(port_from_of13(7), Some(PortNo(7)));
/// assert_eq!(port_from_of13(0x10000), None);
/// ```
pub fn port_from_of13(p: u32) -> Option<PortNo> {
    if p <= PortNo::MAX.0 {
        Some(PortNo(p))
    } else if p >= 0xffff_ff00 {
        Some(PortNo(p - 0xffff_0000))
    } else {
        None
    }
}

/// Converts an rvs port number to OpenFlow 1.3's 32-bit numbering.
pub fn port_to_of13(p: PortNo) -> u32 {
    if p.0 > PortNo::MAX.0 && p.0 <= 0xffff {
        p.0 + 0xffff_0000
    } else {
        p.0
    }
}

/// The version to speak with a peer whose HELLO said `peer`: the highest
/// version in both `ours` and the peer's bitmap.
///
/// ```
/// use rvs::openflow::{negotiate, Hello, SUPPORTED_VERSIONS};
/// // A 1.4 peer without bitmap speaks 1.0..=1.4: we pick 1.3.
/// assert_eq!(negotiate(SUPPORTED_VERSIONS, &Hello { versions: 0x1e }), Some(4));
/// assert_eq!(negotiate(SUPPORTED_VERSIONS, &Hello { versions: 1 << 2 }), None);
/// ```
pub fn negotiate(ours: u32, peer: &Hello) -> Option<u8> {
    let common = ours & peer.versions;
    (common != 0).then(|| (31 - common.leading_zeros()) as u8)
}

/// Decodes one whole message (as [`frame`] delimits it).
///
/// Versions other than 1.0 and 1.3 are BAD_REQUEST/BAD_VERSION, except
/// for HELLO, which every version may send.
pub fn decode(msg: &[u8]) -> Result<(Header, Message), DecodeError> {
    let bad = |code: u16, what: String| {
        DecodeError::new(OfpError::new(ErrorType::BadRequest, code), what)
    };
    let Some(h) = Header::parse(msg) else {
        return Err(bad(error::bad_request::BAD_LEN, "short header".into()));
    };
    if usize::from(h.length) != msg.len() {
        return Err(bad(
            error::bad_request::BAD_LEN,
            format!("length field {} but {} bytes", h.length, msg.len()),
        ));
    }
    let body = &msg[HEADER_LEN..];
    if h.msg_type == 0 {
        // HELLO's layout is the same in every version.
        return msg::decode_body(h.version, MsgType::Hello, body).map(|m| (h, m));
    }
    if h.version != OFP10_VERSION && h.version != OFP13_VERSION {
        return Err(bad(
            error::bad_request::BAD_VERSION,
            format!("OpenFlow version {:#04x} is not supported", h.version),
        ));
    }
    let Some(t) = MsgType::from_wire(h.version, h.msg_type) else {
        return Err(bad(
            error::bad_request::BAD_TYPE,
            format!("message type {}", h.msg_type),
        ));
    };
    msg::decode_body(h.version, t, body).map(|m| (h, m))
}

fn check_version(version: u8) -> Result<(), EncodeError> {
    if version == OFP10_VERSION || version == OFP13_VERSION {
        Ok(())
    } else {
        Err(EncodeError::BadVersion(version))
    }
}

fn put_header(b: &mut Vec<u8>, version: u8, t: u8, xid: u32) {
    put_u8(b, version);
    put_u8(b, t);
    put_u16(b, 0);
    put_u32(b, xid);
}

/// Encodes `msg` for `version` with transaction id `xid`. A HELLO's
/// header carries the highest version of its bitmap instead.
///
/// No message is longer than [`MAX_MSG_LEN`]: a PACKET_IN's frame and a
/// 1.0 FEATURES_REPLY's port list are cut to fit ([`msg::encode_body`]);
/// any other message that would be longer is [`EncodeError::TooLong`]
/// (use [`encode_multipart_reply`] for large replies).
pub fn encode(version: u8, xid: u32, msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let version = match msg {
        Message::Hello(h) if h.versions != 0 => (31 - h.versions.leading_zeros()) as u8,
        _ => version,
    };
    if !matches!(msg, Message::Hello(_)) {
        check_version(version)?;
    }
    let t = msg
        .msg_type()
        .wire(if version == OFP10_VERSION {
            version
        } else {
            OFP13_VERSION
        })
        .ok_or(EncodeError::NotInVersion {
            what: "message type",
            version,
        })?;
    let mut b = Vec::with_capacity(64);
    put_header(&mut b, version, t, xid);
    msg::encode_body(version, msg, &mut b)?;
    let Ok(len) = u16::try_from(b.len()) else {
        return Err(EncodeError::TooLong {
            msg_type: msg.msg_type(),
            len: b.len(),
        });
    };
    patch_u16(&mut b, 2, len);
    Ok(b)
}

/// Encodes a multipart reply as one or more messages of at most
/// `max_len` bytes (at least 1024), each but the last flagged
/// OFPMPF_REPLY_MORE. An item larger than `max_len` on its own goes
/// alone; one that does not fit in a [`MAX_MSG_LEN`] message at all makes
/// the reply [`EncodeError::TooLong`].
pub fn encode_multipart_reply(
    version: u8,
    xid: u32,
    body: &MpReply,
    max_len: usize,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let mut enc = MultipartEncoder::new(version, xid, body, max_len)?;
    let mut out = Vec::new();
    for i in multipart::encode_reply_items(version, body)? {
        out.extend(enc.push(&i));
        if enc.n_skipped() > 0 {
            return Err(EncodeError::TooLong {
                msg_type: MsgType::MultipartReply,
                len: enc.empty.len() + i.len(),
            });
        }
    }
    out.push(enc.finish());
    Ok(out)
}

/// Encodes a multipart reply one item at a time, handing out each
/// message as soon as it is full, so that a reply of any size is encoded
/// in the memory of one message: what [`encode_multipart_reply`] makes of
/// the whole reply, message by message.
///
/// ```
/// use rvs::openflow::{multipart::FlowStats, MpReply, MultipartEncoder, OFP13_VERSION};
/// let mut enc = MultipartEncoder::new(OFP13_VERSION, 7, &MpReply::Flow(vec![]), 1024).unwrap();
/// let flow = flowtable::syntax::parse_flow("actions=drop", &|_: &str| None).unwrap();
/// let mut msgs = Vec::new();
/// for _ in 0..100 {
///     msgs.extend(enc.push_flow(&FlowStats::new(&flow, 0, 0, 0)));
/// }
/// msgs.push(enc.finish());
/// assert!(msgs.len() > 1 && msgs.iter().all(|m| m.len() <= 1024));
/// ```
///
/// An item that does not fit in a [`MAX_MSG_LEN`] message even alone (a
/// flow whose actions take more than 64 KiB, which `rvsctl` can add) has
/// no OpenFlow form: it is left out and counted ([`Self::n_skipped`]).
#[derive(Debug)]
pub struct MultipartEncoder {
    version: u8,
    /// An empty message: header and multipart header, flags 0.
    empty: Vec<u8>,
    max_len: usize,
    cur: Vec<u8>,
    /// Items left out because they cannot fit in any message.
    skipped: usize,
}

impl MultipartEncoder {
    /// An encoder for a reply of `kind`'s type (its items are ignored),
    /// in messages of at most `max_len` bytes (at least 1024).
    pub fn new(
        version: u8,
        xid: u32,
        kind: &MpReply,
        max_len: usize,
    ) -> Result<MultipartEncoder, EncodeError> {
        check_version(version)?;
        let t = MsgType::MultipartReply
            .wire(version)
            .ok_or(EncodeError::BadVersion(version))?;
        let mut empty = Vec::new();
        put_header(&mut empty, version, t, xid);
        empty.extend_from_slice(&multipart::reply_header(version, kind, 0));
        Ok(MultipartEncoder {
            version,
            cur: empty.clone(),
            empty,
            max_len: max_len.clamp(1024, MAX_MSG_LEN),
            skipped: 0,
        })
    }

    /// Items left out so far because they are too large for any message.
    pub fn n_skipped(&self) -> usize {
        self.skipped
    }

    /// Adds one FLOW stats entry; returns the previous message, complete
    /// and flagged MORE, when the entry did not fit in it.
    pub fn push_flow(&mut self, f: &multipart::FlowStats) -> Option<Vec<u8>> {
        let mut b = Vec::with_capacity(128);
        multipart::encode_flow_stats(self.version, &mut b, f);
        self.push(&b)
    }

    /// Adds one encoded item (see [`Self::push_flow`]).
    fn push(&mut self, item: &[u8]) -> Option<Vec<u8>> {
        if self.empty.len() + item.len() > MAX_MSG_LEN {
            self.skipped += 1;
            return None;
        }
        let mut full = None;
        if self.cur.len() > self.empty.len() && self.cur.len() + item.len() > self.max_len {
            let mut m = std::mem::replace(&mut self.cur, self.empty.clone());
            Self::seal(&mut m, multipart::MPF_MORE);
            full = Some(m);
        }
        self.cur.extend_from_slice(item);
        full
    }

    /// The last message (MORE clear).
    pub fn finish(mut self) -> Vec<u8> {
        Self::seal(&mut self.cur, 0);
        self.cur
    }

    fn seal(m: &mut [u8], flags: u16) {
        let len = len16(m.len());
        patch_u16(m, 2, len);
        if flags != 0 {
            patch_u16(m, HEADER_LEN + 2, flags);
        }
    }
}

/// The ERROR message answering `offending` (a whole received message)
/// with `err`, on a connection of `version`: same xid, and the first 64
/// bytes of the offending message as data.
pub fn error_reply(version: u8, err: OfpError, offending: &[u8]) -> Vec<u8> {
    let xid = Header::parse(offending).map_or(0, |h| h.xid);
    let version = if version == OFP10_VERSION {
        OFP10_VERSION
    } else {
        OFP13_VERSION
    };
    let (etype, code) = err.wire(version);
    let data = offending[..offending.len().min(ERROR_DATA_LEN)].to_vec();
    let m = Message::Error(msg::ErrorMsg { etype, code, data });
    // ERROR exists in both versions, which check_version accepts.
    encode(version, xid, &m).unwrap_or_default()
}

/// The HELLO_FAILED/INCOMPATIBLE error sent before closing a connection
/// whose peer shares no version with us (data: a readable reason).
pub fn hello_failed(peer_version: u8, xid: u32) -> Vec<u8> {
    let version = if peer_version == OFP10_VERSION {
        OFP10_VERSION
    } else {
        OFP13_VERSION
    };
    let m = Message::Error(msg::ErrorMsg {
        etype: 0,
        code: error::hello_failed::INCOMPATIBLE,
        data: b"rvs supports OpenFlow 1.0 and 1.3".to_vec(),
    });
    encode(version, xid, &m).unwrap_or_default()
}

#[cfg(test)]
mod golden;

#[cfg(test)]
pub(crate) mod tests;
