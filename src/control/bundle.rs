//! OpenFlow bundles: flow mods collected on a connection and applied
//! atomically on commit (`ovs-ofctl --bundle`).
//!
//! # What?
//! OpenFlow 1.3 has bundles only as the ONF extension 230
//! (`ONFT_BUNDLE_CONTROL` 2300 and `ONFT_BUNDLE_ADD_MESSAGE` 2301 in an
//! EXPERIMENTER message with the ONF id), which is what `ovs-ofctl
//! -O OpenFlow13 --bundle` sends; OpenFlow 1.4's BUNDLE_CONTROL and
//! BUNDLE_ADD_MESSAGE carry the same bodies. [`Bundles`] keeps one
//! connection's open bundles; a commit hands their FLOW_MODs to
//! [`crate::control::switch::Switch::of_flow_mods_atomic`], which applies
//! all or none and publishes them at once.
//!
//! # Design
//! Messages are decoded when added (a bad or unsupported one is refused
//! then, with its own error), so a commit only meets table-level
//! failures (table full, overlap). Every bundle is applied atomically and
//! in order, whatever its flags ask.
//!
//! # Limits
//! FLOW_MOD is the only message a bundle may carry (others get
//! OFPBFC_MSG_UNSUP); at most [`MAX_BUNDLES`] open bundles and
//! [`MAX_MESSAGES`] messages per bundle per connection; no bundle
//! timeout, no scheduled commits.

use std::collections::HashMap;

use crate::openflow::msg::{ErrorMsg, Experimenter, FlowMod};
use crate::openflow::{self as of, Message};

/// The ONF experimenter id.
pub const ONF_ID: u32 = 0x4f4e_4600;
/// `ONFT_BUNDLE_CONTROL`.
pub const BUNDLE_CONTROL: u32 = 2300;
/// `ONFT_BUNDLE_ADD_MESSAGE`.
pub const BUNDLE_ADD: u32 = 2301;
/// Open bundles per connection, at most.
pub const MAX_BUNDLES: usize = 16;
/// Messages per bundle, at most.
pub const MAX_MESSAGES: usize = 1_000_000;

/// `OFPBCT_*` control types.
mod ctl {
    pub const OPEN: u16 = 0;
    pub const CLOSE: u16 = 2;
    pub const COMMIT: u16 = 4;
    pub const DISCARD: u16 = 6;
}

/// `OFPBFC_*` error codes.
pub mod bfc {
    /// Unknown bundle id.
    pub const BAD_ID: u16 = 2;
    /// A bundle with this id is open already.
    pub const BUNDLE_EXIST: u16 = 3;
    /// The bundle is closed.
    pub const BUNDLE_CLOSED: u16 = 4;
    /// Too many bundles.
    pub const OUT_OF_BUNDLES: u16 = 5;
    /// Unknown control type.
    pub const BAD_TYPE: u16 = 6;
    /// Bad message length.
    pub const MSG_BAD_LEN: u16 = 8;
    /// Message type not supported in bundles.
    pub const MSG_UNSUP: u16 = 10;
    /// Too many messages.
    pub const MSG_TOO_MANY: u16 = 12;
    /// A message of the bundle failed.
    pub const MSG_FAILED: u16 = 13;
}

#[derive(Debug, Default)]
struct Bundle {
    closed: bool,
    msgs: Vec<FlowMod>,
    /// Each message as received, for its error reply.
    raws: Vec<Vec<u8>>,
}

/// What the channel must do for a bundle message.
#[derive(Debug)]
pub enum Outcome {
    /// Send these replies.
    Reply(Vec<Vec<u8>>),
    /// Apply these FLOW_MODs atomically, then answer with
    /// [`Bundles::committed`].
    Commit(Commit),
}

/// A bundle being committed.
#[derive(Debug)]
pub struct Commit {
    /// The FLOW_MODs in order.
    pub msgs: Vec<FlowMod>,
    raws: Vec<Vec<u8>>,
    bundle_id: u32,
    flags: u16,
    xid: u32,
    request: Vec<u8>,
}

/// One connection's open bundles.
#[derive(Debug, Default)]
pub struct Bundles {
    open: HashMap<u32, Bundle>,
}

/// The ONF 1.3 encoding of an `OFPBFC_*` error: an experimenter error
/// (type 0xffff) with code 2300 + `code`, as Open vSwitch sends it.
fn bundle_error(version: u8, xid: u32, code: u16, offending: &[u8]) -> Vec<u8> {
    let mut data = ONF_ID.to_be_bytes().to_vec();
    data.extend_from_slice(&offending[..offending.len().min(64)]);
    let m = Message::Error(ErrorMsg {
        etype: 0xffff,
        code: 2300 + code,
        data,
    });
    of::encode(version, xid, &m).unwrap_or_default()
}

fn control_reply(version: u8, xid: u32, bundle_id: u32, ctype: u16, flags: u16) -> Vec<u8> {
    let mut data = bundle_id.to_be_bytes().to_vec();
    data.extend_from_slice(&(ctype + 1).to_be_bytes());
    data.extend_from_slice(&flags.to_be_bytes());
    let m = Message::Experimenter(Experimenter {
        experimenter: ONF_ID,
        exp_type: BUNDLE_CONTROL,
        data,
    });
    of::encode(version, xid, &m).unwrap_or_default()
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        *b.get(i + 3)?,
    ]))
}

impl Bundles {
    /// Handles an ONF bundle message (`e`, the whole message `raw` with
    /// `xid`); `None` if `e` is not one.
    pub fn handle(
        &mut self,
        version: u8,
        xid: u32,
        e: &Experimenter,
        raw: &[u8],
    ) -> Option<Outcome> {
        if e.experimenter != ONF_ID {
            return None;
        }
        let err = |code| Some(Outcome::Reply(vec![bundle_error(version, xid, code, raw)]));
        match e.exp_type {
            BUNDLE_CONTROL => {
                let (Some(id), Some(ctype), Some(flags)) =
                    (u32_at(&e.data, 0), u16_at(&e.data, 4), u16_at(&e.data, 6))
                else {
                    return err(bfc::MSG_BAD_LEN);
                };
                let ok = || {
                    Some(Outcome::Reply(vec![control_reply(
                        version, xid, id, ctype, flags,
                    )]))
                };
                match ctype {
                    ctl::OPEN => {
                        if self.open.contains_key(&id) {
                            return err(bfc::BUNDLE_EXIST);
                        }
                        if self.open.len() >= MAX_BUNDLES {
                            return err(bfc::OUT_OF_BUNDLES);
                        }
                        self.open.insert(id, Bundle::default());
                        ok()
                    }
                    ctl::CLOSE => match self.open.get_mut(&id) {
                        None => err(bfc::BAD_ID),
                        Some(b) if b.closed => err(bfc::BUNDLE_CLOSED),
                        Some(b) => {
                            b.closed = true;
                            ok()
                        }
                    },
                    ctl::COMMIT => match self.open.remove(&id) {
                        None => err(bfc::BAD_ID),
                        Some(b) => Some(Outcome::Commit(Commit {
                            msgs: b.msgs,
                            raws: b.raws,
                            bundle_id: id,
                            flags,
                            xid,
                            request: raw.to_vec(),
                        })),
                    },
                    ctl::DISCARD => match self.open.remove(&id) {
                        None => err(bfc::BAD_ID),
                        Some(_) => ok(),
                    },
                    _ => err(bfc::BAD_TYPE),
                }
            }
            BUNDLE_ADD => {
                let Some(id) = u32_at(&e.data, 0) else {
                    return err(bfc::MSG_BAD_LEN);
                };
                let inner = e.data.get(8..).unwrap_or_default();
                let len = u16_at(inner, 2).map_or(0, usize::from);
                if len < 8 || len > inner.len() || inner.first() != Some(&version) {
                    return err(bfc::MSG_BAD_LEN);
                }
                let inner = &inner[..len];
                let Some(b) = self.open.get_mut(&id) else {
                    return err(bfc::BAD_ID);
                };
                if b.closed {
                    return err(bfc::BUNDLE_CLOSED);
                }
                if b.msgs.len() >= MAX_MESSAGES {
                    return err(bfc::MSG_TOO_MANY);
                }
                match of::decode(inner) {
                    Ok((_, Message::FlowMod(fm))) => {
                        b.msgs.push(fm);
                        b.raws.push(inner.to_vec());
                        Some(Outcome::Reply(Vec::new()))
                    }
                    Ok(_) => err(bfc::MSG_UNSUP),
                    // The message's own error, for its own xid.
                    Err(d) => Some(Outcome::Reply(vec![of::error_reply(
                        version, d.error, inner,
                    )])),
                }
            }
            _ => None,
        }
    }

    /// The replies to a commit that `result` says succeeded, or failed at
    /// message `i` with `e` (its error, then OFPBFC_MSG_FAILED).
    pub fn committed(
        version: u8,
        c: &Commit,
        result: Result<(), (usize, crate::openflow::error::OfpError)>,
    ) -> Vec<Vec<u8>> {
        match result {
            Ok(()) => vec![control_reply(
                version,
                c.xid,
                c.bundle_id,
                ctl::COMMIT,
                c.flags,
            )],
            Err((i, e)) => {
                let inner = c.raws.get(i).map(Vec::as_slice).unwrap_or_default();
                vec![
                    of::error_reply(version, e, inner),
                    bundle_error(version, c.xid, bfc::MSG_FAILED, &c.request),
                ]
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::openflow::OFP13_VERSION;

    fn ctl_msg(id: u32, ctype: u16) -> Experimenter {
        let mut data = id.to_be_bytes().to_vec();
        data.extend_from_slice(&ctype.to_be_bytes());
        data.extend_from_slice(&3u16.to_be_bytes());
        Experimenter {
            experimenter: ONF_ID,
            exp_type: BUNDLE_CONTROL,
            data,
        }
    }

    fn replies(o: Option<Outcome>) -> Vec<Vec<u8>> {
        match o.unwrap() {
            Outcome::Reply(r) => r,
            Outcome::Commit(_) => panic!("commit"),
        }
    }

    #[test]
    fn open_add_commit_and_errors() {
        let v = OFP13_VERSION;
        let mut b = Bundles::default();
        let r = replies(b.handle(v, 1, &ctl_msg(7, ctl::OPEN), &[]));
        // OPEN_REPLY: experimenter header + id 7, type 1.
        assert_eq!(r.len(), 1);
        assert_eq!(&r[0][8..16], &[0x4f, 0x4e, 0x46, 0, 0, 0, 0x08, 0xfc]);
        assert_eq!(&r[0][16..22], &[0, 0, 0, 7, 0, 1]);
        // A second OPEN of the same id is refused with BUNDLE_EXIST.
        let r = replies(b.handle(v, 2, &ctl_msg(7, ctl::OPEN), &[]));
        assert_eq!(u16_at(&r[0], 8), Some(0xffff));
        assert_eq!(u16_at(&r[0], 10), Some(2303));
        // An ADD of something that is not a FLOW_MOD: MSG_UNSUP.
        let mut data = 7u32.to_be_bytes().to_vec();
        data.extend_from_slice(&[0, 0, 0, 0]);
        data.extend_from_slice(&[v, 20, 0, 8, 0, 0, 0, 9]); // BARRIER_REQUEST
        let add = Experimenter {
            experimenter: ONF_ID,
            exp_type: BUNDLE_ADD,
            data,
        };
        let r = replies(b.handle(v, 3, &add, &[]));
        assert_eq!(u16_at(&r[0], 10), Some(2310));
        match b.handle(v, 4, &ctl_msg(7, ctl::COMMIT), &[]).unwrap() {
            Outcome::Commit(c) => assert!(c.msgs.is_empty()),
            Outcome::Reply(_) => panic!("reply"),
        }
        let r = replies(b.handle(v, 5, &ctl_msg(7, ctl::COMMIT), &[]));
        assert_eq!(u16_at(&r[0], 10), Some(2302), "gone after commit");
        let other = Experimenter {
            experimenter: 0x2320,
            exp_type: 1,
            data: vec![],
        };
        assert!(b.handle(v, 6, &other, &[]).is_none());
    }
}
