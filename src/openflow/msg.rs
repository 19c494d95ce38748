//! OpenFlow messages: typed structs and their 1.0/1.3 wire forms.
//!
//! # What?
//! [`Message`] is every message rvs sends or receives, independent of the
//! wire version; [`decode_body`] and [`encode_body`] map one message body
//! (after the 8-byte header) to and from bytes for version 0x01 or 0x04.
//! Multipart (1.0: stats) bodies live in [`super::multipart`].
//!
//! # Design
//! Ports are [`PortNo`] in rvs's 16-bit numbering on both versions
//! (1.3's 32-bit reserved ports are converted, see
//! [`super::port_from_of13`]); OFPP_ANY/OFPP_NONE is [`PortNo::NONE`].
//! Matches are [`Match`]es and action lists are rvs [`Action`] lists,
//! checked as described in [`super::action`].

use super::action::{
    decode_actions10, decode_actions13, decode_instructions, encode_actions10, encode_actions13,
    encode_instructions, ActCtx,
};
use super::error::{bad_request, flow_mod_failed, DecodeError, EncodeError, ErrorType, OfpError};
use super::multipart::{MultipartReply, MultipartRequest};
use super::oxm::{decode_of10_match, decode_oxm_match, encode_of10_match, encode_oxm_match};
use super::wire::{len16, put_string, put_u16, put_u32, put_u64, put_u8, put_zeros, Reader};
use super::{port_from_of13, port_to_of13, HEADER_LEN, MAX_MSG_LEN, OFP10_VERSION, OFP13_VERSION};
use flowtable::syntax::{Flow, FlowFilter};
use flowtable::{Action, Match, PortNo, Priority, TableId};

/// Message type numbers (`ofp_type`) that differ between versions are
/// resolved by [`MsgType::wire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum MsgType {
    Hello,
    Error,
    EchoRequest,
    EchoReply,
    Experimenter,
    FeaturesRequest,
    FeaturesReply,
    GetConfigRequest,
    GetConfigReply,
    SetConfig,
    PacketIn,
    FlowRemoved,
    PortStatus,
    PacketOut,
    FlowMod,
    GroupMod,
    PortMod,
    TableMod,
    MultipartRequest,
    MultipartReply,
    BarrierRequest,
    BarrierReply,
    QueueGetConfigRequest,
    QueueGetConfigReply,
    RoleRequest,
    RoleReply,
    GetAsyncRequest,
    GetAsyncReply,
    SetAsync,
    MeterMod,
}

const TYPES13: [MsgType; 30] = {
    use MsgType::*;
    [
        Hello,
        Error,
        EchoRequest,
        EchoReply,
        Experimenter,
        FeaturesRequest,
        FeaturesReply,
        GetConfigRequest,
        GetConfigReply,
        SetConfig,
        PacketIn,
        FlowRemoved,
        PortStatus,
        PacketOut,
        FlowMod,
        GroupMod,
        PortMod,
        TableMod,
        MultipartRequest,
        MultipartReply,
        BarrierRequest,
        BarrierReply,
        QueueGetConfigRequest,
        QueueGetConfigReply,
        RoleRequest,
        RoleReply,
        GetAsyncRequest,
        GetAsyncReply,
        SetAsync,
        MeterMod,
    ]
};

const TYPES10: [MsgType; 22] = {
    use MsgType::*;
    [
        Hello,
        Error,
        EchoRequest,
        EchoReply,
        Experimenter,
        FeaturesRequest,
        FeaturesReply,
        GetConfigRequest,
        GetConfigReply,
        SetConfig,
        PacketIn,
        FlowRemoved,
        PortStatus,
        PacketOut,
        FlowMod,
        PortMod,
        MultipartRequest,
        MultipartReply,
        BarrierRequest,
        BarrierReply,
        QueueGetConfigRequest,
        QueueGetConfigReply,
    ]
};

impl MsgType {
    /// The `ofp_header.type` value in `version`, if the type exists there.
    pub fn wire(self, version: u8) -> Option<u8> {
        let table: &[MsgType] = if version == OFP10_VERSION {
            &TYPES10
        } else {
            &TYPES13
        };
        table.iter().position(|t| *t == self).map(|i| i as u8)
    }

    /// The type of wire value `t` in `version`.
    pub fn from_wire(version: u8, t: u8) -> Option<MsgType> {
        let table: &[MsgType] = if version == OFP10_VERSION {
            &TYPES10
        } else {
            &TYPES13
        };
        table.get(usize::from(t)).copied()
    }
}

/// HELLO: the versions the sender speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Bit `v` set if version `v` is supported (the OFPHET_VERSIONBITMAP
    /// element, or every version up to the header's when there is none).
    pub versions: u32,
}

/// ERROR, with wire type and code numbers as received or to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorMsg {
    /// `ofp_error_msg.type` (wire value of the connection's version).
    pub etype: u16,
    /// `ofp_error_msg.code`.
    pub code: u16,
    /// At least 64 bytes of the offending message, or ASCII for
    /// HELLO_FAILED.
    pub data: Vec<u8>,
}

/// EXPERIMENTER (1.0: VENDOR) message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Experimenter {
    /// Experimenter / vendor id (Nicira is 0x00002320).
    pub experimenter: u32,
    /// Experimenter type (1.0: the first 4 bytes after the vendor id, which
    /// is where Nicira puts its subtype).
    pub exp_type: u32,
    /// The rest.
    pub data: Vec<u8>,
}

/// An `ofp_port` (1.3, 64 bytes) / `ofp_phy_port` (1.0, 48 bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortDesc {
    /// Port number.
    pub port_no: PortNo,
    /// MAC address.
    pub hw_addr: [u8; 6],
    /// Name (at most 15 bytes are sent).
    pub name: String,
    /// OFPPC_* bits.
    pub config: u32,
    /// OFPPS_* bits (1: link down).
    pub state: u32,
    /// OFPPF_* current features.
    pub curr: u32,
    /// Advertised features.
    pub advertised: u32,
    /// Supported features.
    pub supported: u32,
    /// Peer's advertised features.
    pub peer: u32,
    /// Current speed in kbps (1.3 only).
    pub curr_speed: u32,
    /// Max speed in kbps (1.3 only).
    pub max_speed: u32,
}

impl PortDesc {
    /// A port description with the usual values for an rvs port: a 10 Gb/s
    /// copper full-duplex link (what OVS reports for taps), up or down.
    /// `version` picks the feature bit numbering (1.0 and 1.3 differ).
    ///
    /// ```
    /// use rvs::openflow::msg::PortDesc;
    /// use flowtable::PortNo;
    /// let p = PortDesc::new(0x04, PortNo(1), "tap1", [2, 0, 0, 0, 0, 1], true);
    /// assert_eq!(p.curr_speed, 10_000_000);
    /// ```
    pub fn new(version: u8, port_no: PortNo, name: &str, hw_addr: [u8; 6], up: bool) -> PortDesc {
        let v10 = version == OFP10_VERSION;
        PortDesc {
            port_no,
            hw_addr,
            name: name.to_string(),
            config: 0,
            state: match (up, v10) {
                (false, _) => OFPPS_LINK_DOWN,
                (true, true) => 0,
                (true, false) => OFPPS_LIVE,
            },
            // 10GB_FD | COPPER: bits 6 and 7 in 1.0, 6 and 11 in 1.3.
            curr: if v10 {
                0xc0
            } else {
                OFPPF13_10GB_FD | OFPPF13_COPPER
            },
            advertised: 0,
            supported: 0,
            peer: 0,
            curr_speed: if v10 { 0 } else { 10_000_000 },
            max_speed: 0,
        }
    }
}

/// OFPPC_PORT_DOWN.
pub const OFPPC_PORT_DOWN: u32 = 1;
/// OFPPS_LINK_DOWN.
pub const OFPPS_LINK_DOWN: u32 = 1;
/// OFPPS_LIVE (1.3).
pub const OFPPS_LIVE: u32 = 4;
/// OFPPF_10GB_FD (1.3 bit; 1.0's is 1 << 6).
pub const OFPPF13_10GB_FD: u32 = 1 << 6;
/// OFPPF_COPPER (1.3 bit 11; 1.0 bit 7).
pub const OFPPF13_COPPER: u32 = 1 << 11;

/// FEATURES_REPLY.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeaturesReply {
    /// Datapath id: low 48 bits a MAC, high 16 implementer-defined.
    pub datapath_id: u64,
    /// Packets the switch can buffer (0: rvs never buffers).
    pub n_buffers: u32,
    /// Number of tables.
    pub n_tables: u8,
    /// Auxiliary connection id (1.3; 0 for the main connection).
    pub auxiliary_id: u8,
    /// OFPC_* capability bits.
    pub capabilities: u32,
    /// OFPAT10_* bits of supported actions (1.0 only).
    pub actions: u32,
    /// The ports (1.0 only; 1.3 uses the PORT_DESC multipart).
    pub ports: Vec<PortDesc>,
}

/// OFPC_FLOW_STATS | OFPC_TABLE_STATS | OFPC_PORT_STATS.
pub const CAPABILITIES: u32 = 1 | 2 | 4;
/// OFPAT10 bits of what rvs supports: OUTPUT..SET_TP_DST.
pub const OF10_ACTIONS: u32 = (1 << 11) - 1;

/// GET_CONFIG_REPLY / SET_CONFIG body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwitchConfig {
    /// OFPC_FRAG_* bits.
    pub flags: u16,
    /// Bytes of a table-miss packet sent to the controller.
    pub miss_send_len: u16,
}

/// No buffer: the whole packet is in the message.
pub const NO_BUFFER: u32 = 0xffff_ffff;

/// PACKET_IN reasons.
pub mod packet_in_reason {
    /// No matching flow (table-miss flow entry).
    pub const NO_MATCH: u8 = 0;
    /// Action explicitly output to controller.
    pub const ACTION: u8 = 1;
    /// Packet has invalid TTL.
    pub const INVALID_TTL: u8 = 2;
}

/// PACKET_IN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketIn {
    /// Buffer id, [`NO_BUFFER`] in rvs.
    pub buffer_id: u32,
    /// Full length of the frame (65535 for longer frames: the field is
    /// 16 bits in 1.0 and 1.3).
    pub total_len: u16,
    /// Why it was sent ([`packet_in_reason`]).
    pub reason: u8,
    /// Table that was looked up (1.3).
    pub table_id: u8,
    /// Cookie of the flow that sent it (1.3; all ones on table miss
    /// without a flow).
    pub cookie: u64,
    /// Ingress port (1.3: an IN_PORT OXM in the match).
    pub in_port: PortNo,
    /// The frame, possibly truncated to `max_len`. The encoder sends at
    /// most what fits in a 65535-byte message (65517 bytes in 1.0, 65493
    /// in 1.3).
    pub data: Vec<u8>,
}

impl PacketIn {
    /// A PACKET_IN carrying `frame` (truncated to `max_len` bytes, with
    /// `buffer_id` NO_BUFFER as rvs does not buffer).
    ///
    /// ```
    /// use rvs::openflow::msg::{packet_in_reason, PacketIn};
    /// use flowtable::PortNo;
    /// let p = PacketIn::from_frame(PortNo(1), packet_in_reason::ACTION, 0, 7, &[0u8; 100], 64);
    /// assert_eq!((p.total_len, p.data.len()), (100, 64));
    /// ```
    pub fn from_frame(
        in_port: PortNo,
        reason: u8,
        table_id: u8,
        cookie: u64,
        frame: &[u8],
        max_len: u16,
    ) -> PacketIn {
        let n = frame.len().min(usize::from(max_len));
        PacketIn::with_data(
            in_port,
            reason,
            table_id,
            cookie,
            frame[..n].to_vec(),
            frame.len(),
        )
    }

    /// A PACKET_IN carrying `data`, a frame of `total_len` bytes already
    /// truncated (`buffer_id` NO_BUFFER; a `total_len` above 65535 is sent
    /// as 65535).
    pub fn with_data(
        in_port: PortNo,
        reason: u8,
        table_id: u8,
        cookie: u64,
        data: Vec<u8>,
        total_len: usize,
    ) -> PacketIn {
        PacketIn {
            buffer_id: NO_BUFFER,
            total_len: len16(total_len),
            reason,
            table_id,
            cookie,
            in_port,
            data,
        }
    }
}

/// FLOW_REMOVED.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRemoved {
    /// Flow cookie.
    pub cookie: u64,
    /// Flow priority.
    pub priority: u16,
    /// OFPRR_IDLE_TIMEOUT 0, HARD_TIMEOUT 1, DELETE 2.
    pub reason: u8,
    /// Table (1.3).
    pub table_id: u8,
    /// Seconds the flow was alive.
    pub duration_sec: u32,
    /// Nanoseconds beyond `duration_sec`.
    pub duration_nsec: u32,
    /// Idle timeout of the flow.
    pub idle_timeout: u16,
    /// Hard timeout (1.3).
    pub hard_timeout: u16,
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
    /// The flow's match.
    pub m: Match,
}

/// PORT_STATUS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortStatus {
    /// OFPPR_ADD 0, DELETE 1, MODIFY 2.
    pub reason: u8,
    /// The port.
    pub desc: PortDesc,
}

/// PACKET_OUT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketOut {
    /// Buffer id; anything but [`NO_BUFFER`] is BUFFER_UNKNOWN for rvs.
    pub buffer_id: u32,
    /// Port the packet is taken to have arrived on (CONTROLLER or NONE
    /// when none).
    pub in_port: PortNo,
    /// Actions; `Action::Output(PortNo::TABLE)` runs the flow table.
    pub actions: Vec<Action>,
    /// The frame.
    pub data: Vec<u8>,
}

/// FLOW_MOD commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowModCommand {
    /// OFPFC_ADD.
    Add,
    /// OFPFC_MODIFY: change the actions of all matching flows.
    Modify,
    /// OFPFC_MODIFY_STRICT.
    ModifyStrict,
    /// OFPFC_DELETE.
    Delete,
    /// OFPFC_DELETE_STRICT.
    DeleteStrict,
}

impl FlowModCommand {
    fn from_wire(c: u16) -> Option<FlowModCommand> {
        Some(match c {
            0 => FlowModCommand::Add,
            1 => FlowModCommand::Modify,
            2 => FlowModCommand::ModifyStrict,
            3 => FlowModCommand::Delete,
            4 => FlowModCommand::DeleteStrict,
            _ => return None,
        })
    }

    fn wire(self) -> u8 {
        match self {
            FlowModCommand::Add => 0,
            FlowModCommand::Modify => 1,
            FlowModCommand::ModifyStrict => 2,
            FlowModCommand::Delete => 3,
            FlowModCommand::DeleteStrict => 4,
        }
    }

    /// True for the `_STRICT` commands.
    pub fn is_strict(self) -> bool {
        matches!(
            self,
            FlowModCommand::ModifyStrict | FlowModCommand::DeleteStrict
        )
    }
}

/// OFPTT_ALL: every table (deletes, modifies, stats requests).
pub const OFPTT_ALL: u8 = 0xff;

/// FLOW_MOD flag bits (1.3).
pub mod flow_mod_flags {
    /// Send FLOW_REMOVED when the flow expires or is deleted.
    pub const SEND_FLOW_REM: u16 = 1;
    /// Check for overlapping entries first.
    pub const CHECK_OVERLAP: u16 = 2;
    /// Reset counters (on modify).
    pub const RESET_COUNTS: u16 = 4;
    /// Don't keep packet counts.
    pub const NO_PKT_COUNTS: u16 = 8;
    /// Don't keep byte counts.
    pub const NO_BYT_COUNTS: u16 = 16;
}

/// FLOW_MOD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowMod {
    /// Cookie of a new flow; filter value for modify/delete (1.3).
    pub cookie: u64,
    /// Cookie bits a modify/delete compares (1.3; 0 in 1.0).
    pub cookie_mask: u64,
    /// Table, or [`OFPTT_ALL`] (modify/delete).
    pub table_id: u8,
    /// What to do.
    pub command: FlowModCommand,
    /// Idle timeout in seconds (0: none).
    pub idle_timeout: u16,
    /// Hard timeout in seconds (0: none).
    pub hard_timeout: u16,
    /// Priority.
    pub priority: u16,
    /// Buffered packet to apply to, or [`NO_BUFFER`].
    pub buffer_id: u32,
    /// Delete filter: only flows outputting here; NONE for any.
    pub out_port: PortNo,
    /// Delete filter on group (1.3; OFPG_ANY 0xffffffff for any).
    pub out_group: u32,
    /// [`flow_mod_flags`] bits.
    pub flags: u16,
    /// The match.
    pub m: Match,
    /// The instructions (1.3) or actions (1.0) as one rvs action list.
    pub actions: Vec<Action>,
}

impl FlowMod {
    /// The flow an ADD installs (or a MODIFY's new actions), or
    /// FLOW_MOD_FAILED/BAD_TABLE_ID when the table is OFPTT_ALL.
    pub fn to_flow(&self) -> Result<Flow, DecodeError> {
        if self.table_id > TableId::MAX.0 {
            return Err(DecodeError::new(
                OfpError::new(ErrorType::FlowModFailed, flow_mod_failed::BAD_TABLE_ID),
                format!("flow_mod to table {}", self.table_id),
            ));
        }
        Ok(Flow {
            table: TableId(self.table_id),
            priority: Priority(self.priority),
            cookie: self.cookie,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            m: self.m,
            actions: self.actions.clone(),
        })
    }

    /// The flows a MODIFY/DELETE (or ADD's overlap check) selects; use
    /// with `FlowFilter::selects(flow, self.command.is_strict())`.
    pub fn filter(&self) -> FlowFilter {
        FlowFilter {
            table: (self.table_id <= TableId::MAX.0).then_some(TableId(self.table_id)),
            priority: Some(Priority(self.priority)),
            cookie: self.cookie,
            cookie_mask: self.cookie_mask,
            out_port: (self.out_port != PortNo::NONE).then_some(self.out_port),
            m: self.m,
        }
    }
}

/// ROLE_REQUEST / ROLE_REPLY body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Role {
    /// OFPCR_ROLE_NOCHANGE 0, EQUAL 1, MASTER 2, SLAVE 3.
    pub role: u32,
    /// Master election generation id.
    pub generation_id: u64,
}

/// SET_ASYNC / GET_ASYNC_REPLY body: `[master/equal, slave]` masks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AsyncConfig {
    /// PACKET_IN reasons wanted.
    pub packet_in_mask: [u32; 2],
    /// PORT_STATUS reasons wanted.
    pub port_status_mask: [u32; 2],
    /// FLOW_REMOVED reasons wanted.
    pub flow_removed_mask: [u32; 2],
}

/// Every message rvs understands, version independent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Message {
    Hello(Hello),
    Error(ErrorMsg),
    EchoRequest(Vec<u8>),
    EchoReply(Vec<u8>),
    Experimenter(Experimenter),
    FeaturesRequest,
    FeaturesReply(FeaturesReply),
    GetConfigRequest,
    GetConfigReply(SwitchConfig),
    SetConfig(SwitchConfig),
    PacketIn(PacketIn),
    FlowRemoved(FlowRemoved),
    PortStatus(PortStatus),
    PacketOut(PacketOut),
    FlowMod(FlowMod),
    MultipartRequest(MultipartRequest),
    MultipartReply(MultipartReply),
    BarrierRequest,
    BarrierReply,
    RoleRequest(Role),
    RoleReply(Role),
    GetAsyncRequest,
    GetAsyncReply(AsyncConfig),
    SetAsync(AsyncConfig),
    MeterMod(super::meter::MeterMod),
}

impl Message {
    /// The message's type.
    pub fn msg_type(&self) -> MsgType {
        match self {
            Message::Hello(_) => MsgType::Hello,
            Message::Error(_) => MsgType::Error,
            Message::EchoRequest(_) => MsgType::EchoRequest,
            Message::EchoReply(_) => MsgType::EchoReply,
            Message::Experimenter(_) => MsgType::Experimenter,
            Message::FeaturesRequest => MsgType::FeaturesRequest,
            Message::FeaturesReply(_) => MsgType::FeaturesReply,
            Message::GetConfigRequest => MsgType::GetConfigRequest,
            Message::GetConfigReply(_) => MsgType::GetConfigReply,
            Message::SetConfig(_) => MsgType::SetConfig,
            Message::PacketIn(_) => MsgType::PacketIn,
            Message::FlowRemoved(_) => MsgType::FlowRemoved,
            Message::PortStatus(_) => MsgType::PortStatus,
            Message::PacketOut(_) => MsgType::PacketOut,
            Message::FlowMod(_) => MsgType::FlowMod,
            Message::MultipartRequest(_) => MsgType::MultipartRequest,
            Message::MultipartReply(_) => MsgType::MultipartReply,
            Message::BarrierRequest => MsgType::BarrierRequest,
            Message::BarrierReply => MsgType::BarrierReply,
            Message::RoleRequest(_) => MsgType::RoleRequest,
            Message::RoleReply(_) => MsgType::RoleReply,
            Message::GetAsyncRequest => MsgType::GetAsyncRequest,
            Message::GetAsyncReply(_) => MsgType::GetAsyncReply,
            Message::SetAsync(_) => MsgType::SetAsync,
            Message::MeterMod(_) => MsgType::MeterMod,
        }
    }
}

fn br(code: u16, what: impl Into<String>) -> DecodeError {
    DecodeError::new(OfpError::new(ErrorType::BadRequest, code), what)
}

/// BAD_REQUEST/BAD_LEN.
pub(crate) fn bad_len(what: impl Into<String>) -> DecodeError {
    br(bad_request::BAD_LEN, what)
}

/// A reader over a body whose short reads are BAD_REQUEST/BAD_LEN.
pub(crate) fn body_reader(body: &[u8]) -> Reader<'_> {
    Reader::new(
        body,
        OfpError::new(ErrorType::BadRequest, bad_request::BAD_LEN),
    )
}

fn port13(p: u32, what: &str) -> Result<PortNo, DecodeError> {
    port_from_of13(p).ok_or_else(|| br(bad_request::BAD_PORT, format!("{what} {p:#x} is invalid")))
}

/// OFPHET_VERSIONBITMAP.
const HELLO_ELEM_VERSIONBITMAP: u16 = 1;

fn decode_hello(version: u8, r: &mut Reader<'_>) -> Hello {
    // Elements are optional and malformed ones are ignored, as OVS does.
    while r.remaining() >= 4 {
        let (Ok(t), Ok(len)) = (r.u16("elem type"), r.u16("elem len")) else {
            break;
        };
        let len = usize::from(len);
        if len < 4 {
            break;
        }
        let Ok(body) = r.take(len - 4, "elem") else {
            break;
        };
        let _ = r.skip(len.next_multiple_of(8) - len, "elem pad");
        if t == HELLO_ELEM_VERSIONBITMAP && body.len() >= 4 {
            // Bit 0 would be version 0, which does not exist.
            let versions = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) & !1;
            return Hello { versions };
        }
    }
    Hello {
        versions: versions_upto(u32::from(version)),
    }
}

/// The bitmap of versions 1..=`v`.
fn versions_upto(v: u32) -> u32 {
    if v >= 31 {
        !1
    } else {
        ((1u32 << (v + 1)) - 1) & !1
    }
}

fn decode_port(version: u8, r: &mut Reader<'_>) -> Result<PortDesc, DecodeError> {
    let mut p = PortDesc::default();
    if version == OFP10_VERSION {
        p.port_no = PortNo(u32::from(r.u16("port_no")?));
        p.hw_addr = r.array("hw_addr")?;
        p.name = r.string(16, "name")?;
    } else {
        p.port_no = port13(r.u32("port_no")?, "port")?;
        r.skip(4, "pad")?;
        p.hw_addr = r.array("hw_addr")?;
        r.skip(2, "pad")?;
        p.name = r.string(16, "name")?;
    }
    p.config = r.u32("config")?;
    p.state = r.u32("state")?;
    p.curr = r.u32("curr")?;
    p.advertised = r.u32("advertised")?;
    p.supported = r.u32("supported")?;
    p.peer = r.u32("peer")?;
    if version != OFP10_VERSION {
        p.curr_speed = r.u32("curr_speed")?;
        p.max_speed = r.u32("max_speed")?;
    }
    Ok(p)
}

/// Writes an `ofp_port` (1.3) or `ofp_phy_port` (1.0).
pub(crate) fn encode_port(version: u8, b: &mut Vec<u8>, p: &PortDesc) {
    if version == OFP10_VERSION {
        put_u16(b, p.port_no.0 as u16);
        b.extend_from_slice(&p.hw_addr);
        put_string(b, &p.name, 16);
    } else {
        put_u32(b, port_to_of13(p.port_no));
        put_zeros(b, 4);
        b.extend_from_slice(&p.hw_addr);
        put_zeros(b, 2);
        put_string(b, &p.name, 16);
    }
    for v in [p.config, p.state, p.curr, p.advertised, p.supported, p.peer] {
        put_u32(b, v);
    }
    if version != OFP10_VERSION {
        put_u32(b, p.curr_speed);
        put_u32(b, p.max_speed);
    }
}

/// Reads a list of port descriptions filling the reader.
pub(crate) fn decode_ports(version: u8, r: &mut Reader<'_>) -> Result<Vec<PortDesc>, DecodeError> {
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push(decode_port(version, r)?);
    }
    Ok(out)
}

fn decode_flow_mod(version: u8, r: &mut Reader<'_>) -> Result<FlowMod, DecodeError> {
    let bad_cmd = |c: u16| {
        DecodeError::new(
            OfpError::new(ErrorType::FlowModFailed, flow_mod_failed::BAD_COMMAND),
            format!("flow_mod command {c}"),
        )
    };
    if version == OFP10_VERSION {
        let m = decode_of10_match(r)?;
        let cookie = r.u64("cookie")?;
        let cmd = r.u16("command")?;
        let command = FlowModCommand::from_wire(cmd & 0xff).ok_or_else(|| bad_cmd(cmd))?;
        let idle_timeout = r.u16("idle_timeout")?;
        let hard_timeout = r.u16("hard_timeout")?;
        let priority = r.u16("priority")?;
        let buffer_id = r.u32("buffer_id")?;
        let out_port = PortNo(u32::from(r.u16("out_port")?));
        let flags = r.u16("flags")?;
        // OVS's flow_mod_table_id extension puts the table in the high byte.
        let table_id = if command == FlowModCommand::Add {
            (cmd >> 8) as u8
        } else {
            OFPTT_ALL
        };
        let table = (command == FlowModCommand::Add).then_some(table_id);
        let actions = match command {
            FlowModCommand::Delete | FlowModCommand::DeleteStrict => Vec::new(),
            _ => decode_actions10(r.rest(), &mut ActCtx::flow(&m, table))?,
        };
        return Ok(FlowMod {
            cookie,
            cookie_mask: 0,
            table_id,
            command,
            idle_timeout,
            hard_timeout,
            priority,
            buffer_id,
            out_port,
            out_group: u32::MAX,
            flags,
            m,
            actions,
        });
    }
    let cookie = r.u64("cookie")?;
    let cookie_mask = r.u64("cookie_mask")?;
    let table_id = r.u8("table_id")?;
    let cmd = r.u8("command")?;
    let command = FlowModCommand::from_wire(u16::from(cmd)).ok_or_else(|| bad_cmd(cmd.into()))?;
    let idle_timeout = r.u16("idle_timeout")?;
    let hard_timeout = r.u16("hard_timeout")?;
    let priority = r.u16("priority")?;
    let buffer_id = r.u32("buffer_id")?;
    let out_port = port13(r.u32("out_port")?, "out_port")?;
    let out_group = r.u32("out_group")?;
    let flags = r.u16("flags")?;
    r.skip(2, "pad")?;
    let m = decode_oxm_match(r)?;
    if command == FlowModCommand::Add && table_id == OFPTT_ALL {
        return Err(DecodeError::new(
            OfpError::new(ErrorType::FlowModFailed, flow_mod_failed::BAD_TABLE_ID),
            "flow_mod ADD to OFPTT_ALL",
        ));
    }
    let table = (table_id != OFPTT_ALL).then_some(table_id);
    let actions = match command {
        FlowModCommand::Delete | FlowModCommand::DeleteStrict => Vec::new(),
        _ => decode_instructions(r.rest(), &mut ActCtx::flow(&m, table))?,
    };
    Ok(FlowMod {
        cookie,
        cookie_mask,
        table_id,
        command,
        idle_timeout,
        hard_timeout,
        priority,
        buffer_id,
        out_port,
        out_group,
        flags,
        m,
        actions,
    })
}

fn encode_flow_mod(version: u8, b: &mut Vec<u8>, f: &FlowMod) {
    if version == OFP10_VERSION {
        encode_of10_match(b, &f.m);
        put_u64(b, f.cookie);
        let table = if f.command == FlowModCommand::Add {
            u16::from(f.table_id) << 8
        } else {
            0
        };
        put_u16(b, table | u16::from(f.command.wire()));
        put_u16(b, f.idle_timeout);
        put_u16(b, f.hard_timeout);
        put_u16(b, f.priority);
        put_u32(b, f.buffer_id);
        put_u16(b, f.out_port.0 as u16);
        put_u16(b, f.flags);
        encode_actions10(b, &f.actions);
        return;
    }
    put_u64(b, f.cookie);
    put_u64(b, f.cookie_mask);
    put_u8(b, f.table_id);
    put_u8(b, f.command.wire());
    put_u16(b, f.idle_timeout);
    put_u16(b, f.hard_timeout);
    put_u16(b, f.priority);
    put_u32(b, f.buffer_id);
    put_u32(b, port_to_of13(f.out_port));
    put_u32(b, f.out_group);
    put_u16(b, f.flags);
    put_zeros(b, 2);
    encode_oxm_match(b, &f.m);
    encode_instructions(b, &f.actions, &f.m);
}

fn in_port_match(p: PortNo) -> Match {
    let (mut k, mut m) = (flowtable::FlowKey::ZERO, flowtable::FlowKey::ZERO);
    flowtable::Field::InPort.set_masked(&mut k, &mut m, u128::from(p.0), 0xffff);
    Match::new(k, m)
}

fn decode_async(r: &mut Reader<'_>) -> Result<AsyncConfig, DecodeError> {
    let mut a = AsyncConfig::default();
    for v in a
        .packet_in_mask
        .iter_mut()
        .chain(a.port_status_mask.iter_mut())
        .chain(a.flow_removed_mask.iter_mut())
    {
        *v = r.u32("async mask")?;
    }
    Ok(a)
}

fn encode_async(b: &mut Vec<u8>, a: &AsyncConfig) {
    for v in a
        .packet_in_mask
        .iter()
        .chain(&a.port_status_mask)
        .chain(&a.flow_removed_mask)
    {
        put_u32(b, *v);
    }
}

/// Decodes a message body (after the header) of type `t` in `version`.
pub fn decode_body(version: u8, t: MsgType, body: &[u8]) -> Result<Message, DecodeError> {
    let mut r = body_reader(body);
    let r = &mut r;
    let v10 = version == OFP10_VERSION;
    let only13 = |m: Message| {
        if v10 {
            Err(br(
                bad_request::BAD_TYPE,
                format!("{t:?} is not OpenFlow 1.0"),
            ))
        } else {
            Ok(m)
        }
    };
    Ok(match t {
        MsgType::Hello => Message::Hello(decode_hello(version, r)),
        MsgType::Error => Message::Error(ErrorMsg {
            etype: r.u16("type")?,
            code: r.u16("code")?,
            data: r.rest().to_vec(),
        }),
        MsgType::EchoRequest => Message::EchoRequest(r.rest().to_vec()),
        MsgType::EchoReply => Message::EchoReply(r.rest().to_vec()),
        MsgType::Experimenter => {
            let experimenter = r.u32("experimenter")?;
            let exp_type = if v10 && r.remaining() < 4 {
                0
            } else {
                r.u32("exp_type")?
            };
            Message::Experimenter(Experimenter {
                experimenter,
                exp_type,
                data: r.rest().to_vec(),
            })
        }
        MsgType::FeaturesRequest => Message::FeaturesRequest,
        MsgType::FeaturesReply => {
            let mut f = FeaturesReply {
                datapath_id: r.u64("datapath_id")?,
                n_buffers: r.u32("n_buffers")?,
                n_tables: r.u8("n_tables")?,
                ..FeaturesReply::default()
            };
            if v10 {
                r.skip(3, "pad")?;
                f.capabilities = r.u32("capabilities")?;
                f.actions = r.u32("actions")?;
                f.ports = decode_ports(version, r)?;
            } else {
                f.auxiliary_id = r.u8("auxiliary_id")?;
                r.skip(2, "pad")?;
                f.capabilities = r.u32("capabilities")?;
                r.skip(4, "reserved")?;
            }
            Message::FeaturesReply(f)
        }
        MsgType::GetConfigRequest => Message::GetConfigRequest,
        MsgType::GetConfigReply | MsgType::SetConfig => {
            let c = SwitchConfig {
                flags: r.u16("flags")?,
                miss_send_len: r.u16("miss_send_len")?,
            };
            if t == MsgType::SetConfig {
                Message::SetConfig(c)
            } else {
                Message::GetConfigReply(c)
            }
        }
        MsgType::PacketIn => {
            let buffer_id = r.u32("buffer_id")?;
            let total_len = r.u16("total_len")?;
            if v10 {
                let in_port = PortNo(u32::from(r.u16("in_port")?));
                let reason = r.u8("reason")?;
                r.skip(1, "pad")?;
                Message::PacketIn(PacketIn {
                    buffer_id,
                    total_len,
                    reason,
                    table_id: 0,
                    cookie: u64::MAX,
                    in_port,
                    data: r.rest().to_vec(),
                })
            } else {
                let reason = r.u8("reason")?;
                let table_id = r.u8("table_id")?;
                let cookie = r.u64("cookie")?;
                let m = decode_oxm_match(r)?;
                r.skip(2, "pad")?;
                Message::PacketIn(PacketIn {
                    buffer_id,
                    total_len,
                    reason,
                    table_id,
                    cookie,
                    in_port: PortNo(m.key().in_port),
                    data: r.rest().to_vec(),
                })
            }
        }
        MsgType::FlowRemoved => {
            if v10 {
                let m = decode_of10_match(r)?;
                let cookie = r.u64("cookie")?;
                let priority = r.u16("priority")?;
                let reason = r.u8("reason")?;
                r.skip(1, "pad")?;
                let duration_sec = r.u32("duration_sec")?;
                let duration_nsec = r.u32("duration_nsec")?;
                let idle_timeout = r.u16("idle_timeout")?;
                r.skip(2, "pad")?;
                Message::FlowRemoved(FlowRemoved {
                    cookie,
                    priority,
                    reason,
                    table_id: 0,
                    duration_sec,
                    duration_nsec,
                    idle_timeout,
                    hard_timeout: 0,
                    packet_count: r.u64("packet_count")?,
                    byte_count: r.u64("byte_count")?,
                    m,
                })
            } else {
                let cookie = r.u64("cookie")?;
                let priority = r.u16("priority")?;
                let reason = r.u8("reason")?;
                let table_id = r.u8("table_id")?;
                let duration_sec = r.u32("duration_sec")?;
                let duration_nsec = r.u32("duration_nsec")?;
                let idle_timeout = r.u16("idle_timeout")?;
                let hard_timeout = r.u16("hard_timeout")?;
                let packet_count = r.u64("packet_count")?;
                let byte_count = r.u64("byte_count")?;
                let m = decode_oxm_match(r)?;
                Message::FlowRemoved(FlowRemoved {
                    cookie,
                    priority,
                    reason,
                    table_id,
                    duration_sec,
                    duration_nsec,
                    idle_timeout,
                    hard_timeout,
                    packet_count,
                    byte_count,
                    m,
                })
            }
        }
        MsgType::PortStatus => {
            let reason = r.u8("reason")?;
            r.skip(7, "pad")?;
            Message::PortStatus(PortStatus {
                reason,
                desc: decode_port(version, r)?,
            })
        }
        MsgType::PacketOut => {
            let buffer_id = r.u32("buffer_id")?;
            let (in_port, alen) = if v10 {
                (PortNo(u32::from(r.u16("in_port")?)), r.u16("actions_len")?)
            } else {
                let p = port13(r.u32("in_port")?, "in_port")?;
                let l = r.u16("actions_len")?;
                r.skip(6, "pad")?;
                (p, l)
            };
            let ab = r.take(usize::from(alen), "actions")?;
            let mut ctx = ActCtx::packet_out();
            let actions = if v10 {
                decode_actions10(ab, &mut ctx)?
            } else {
                decode_actions13(ab, &mut ctx)?
            };
            Message::PacketOut(PacketOut {
                buffer_id,
                in_port,
                actions,
                data: r.rest().to_vec(),
            })
        }
        MsgType::FlowMod => Message::FlowMod(decode_flow_mod(version, r)?),
        MsgType::MultipartRequest => {
            Message::MultipartRequest(super::multipart::decode_request(version, r)?)
        }
        MsgType::MultipartReply => {
            Message::MultipartReply(super::multipart::decode_reply(version, r)?)
        }
        MsgType::BarrierRequest => Message::BarrierRequest,
        MsgType::BarrierReply => Message::BarrierReply,
        MsgType::RoleRequest | MsgType::RoleReply => {
            let role = r.u32("role")?;
            r.skip(4, "pad")?;
            let rr = Role {
                role,
                generation_id: r.u64("generation_id")?,
            };
            only13(if t == MsgType::RoleRequest {
                Message::RoleRequest(rr)
            } else {
                Message::RoleReply(rr)
            })?
        }
        MsgType::GetAsyncRequest => only13(Message::GetAsyncRequest)?,
        MsgType::GetAsyncReply => only13(Message::GetAsyncReply(decode_async(r)?))?,
        MsgType::SetAsync => only13(Message::SetAsync(decode_async(r)?))?,
        MsgType::MeterMod => only13(Message::MeterMod(super::meter::decode_meter_mod(r)?))?,
        MsgType::GroupMod
        | MsgType::PortMod
        | MsgType::TableMod
        | MsgType::QueueGetConfigRequest
        | MsgType::QueueGetConfigReply => {
            return Err(br(bad_request::BAD_TYPE, format!("{t:?} is not supported")))
        }
    })
}

/// Encodes a message body for `version`, appending it to `b`, which
/// holds the message's header (and nothing else) already: the body is
/// fitted to what remains of the [`MAX_MSG_LEN`] bytes a message holds
/// (a PACKET_IN's frame is cut short, a 1.0 FEATURES_REPLY lists the
/// ports that fit, as Open vSwitch does); other bodies are encoded whole
/// and [`super::encode`] refuses one that is too long.
pub fn encode_body(version: u8, msg: &Message, b: &mut Vec<u8>) -> Result<(), EncodeError> {
    let v10 = version == OFP10_VERSION;
    // Where the message started, for what still fits (see above).
    let start = b.len().saturating_sub(HEADER_LEN);
    let not_in = |what: &'static str| EncodeError::NotInVersion { what, version };
    match msg {
        Message::Hello(h) => {
            // OVS omits the bitmap when it is exactly 1..=version. An
            // empty set (no version at all) always says so explicitly:
            // without a bitmap the header version would imply some.
            let top = 31 - h.versions.leading_zeros().min(31);
            let contiguous = h.versions != 0 && h.versions == versions_upto(top);
            if !contiguous && (version >= OFP13_VERSION || h.versions == 0) {
                put_u16(b, HELLO_ELEM_VERSIONBITMAP);
                put_u16(b, 8);
                put_u32(b, h.versions);
            }
        }
        Message::Error(e) => {
            put_u16(b, e.etype);
            put_u16(b, e.code);
            b.extend_from_slice(&e.data);
        }
        Message::EchoRequest(d) | Message::EchoReply(d) => b.extend_from_slice(d),
        Message::Experimenter(e) => {
            put_u32(b, e.experimenter);
            put_u32(b, e.exp_type);
            b.extend_from_slice(&e.data);
        }
        Message::FeaturesRequest
        | Message::GetConfigRequest
        | Message::BarrierRequest
        | Message::BarrierReply => {}
        Message::GetAsyncRequest => {
            if v10 {
                return Err(not_in("GET_ASYNC_REQUEST"));
            }
        }
        Message::FeaturesReply(f) => {
            put_u64(b, f.datapath_id);
            put_u32(b, f.n_buffers);
            put_u8(b, f.n_tables);
            if v10 {
                put_zeros(b, 3);
                put_u32(b, f.capabilities);
                put_u32(b, f.actions);
                // Ports beyond 65535 bytes are left out (a controller
                // then asks for PORT_DESC, as with Open vSwitch).
                for p in &f.ports {
                    let at = b.len();
                    encode_port(version, b, p);
                    if b.len() - start > MAX_MSG_LEN {
                        b.truncate(at);
                        break;
                    }
                }
            } else {
                put_u8(b, f.auxiliary_id);
                put_zeros(b, 2);
                put_u32(b, f.capabilities);
                put_u32(b, 0);
            }
        }
        Message::GetConfigReply(c) | Message::SetConfig(c) => {
            put_u16(b, c.flags);
            put_u16(b, c.miss_send_len);
        }
        Message::PacketIn(p) => {
            put_u32(b, p.buffer_id);
            put_u16(b, p.total_len);
            if v10 {
                put_u16(b, p.in_port.0 as u16);
                put_u8(b, p.reason);
                put_u8(b, 0);
            } else {
                put_u8(b, p.reason);
                put_u8(b, p.table_id);
                put_u64(b, p.cookie);
                encode_oxm_match(b, &in_port_match(p.in_port));
                put_zeros(b, 2);
            }
            // The frame is cut to what fits in the message (total_len
            // still says how long it was): a 64 KiB TSO frame sent with
            // max_len NO_BUFFER loses its last bytes, not the stream its
            // framing.
            let room = MAX_MSG_LEN.saturating_sub(b.len() - start);
            b.extend_from_slice(&p.data[..p.data.len().min(room)]);
        }
        Message::FlowRemoved(f) => {
            if v10 {
                encode_of10_match(b, &f.m);
                put_u64(b, f.cookie);
                put_u16(b, f.priority);
                put_u8(b, f.reason);
                put_u8(b, 0);
                put_u32(b, f.duration_sec);
                put_u32(b, f.duration_nsec);
                put_u16(b, f.idle_timeout);
                put_zeros(b, 2);
                put_u64(b, f.packet_count);
                put_u64(b, f.byte_count);
            } else {
                put_u64(b, f.cookie);
                put_u16(b, f.priority);
                put_u8(b, f.reason);
                put_u8(b, f.table_id);
                put_u32(b, f.duration_sec);
                put_u32(b, f.duration_nsec);
                put_u16(b, f.idle_timeout);
                put_u16(b, f.hard_timeout);
                put_u64(b, f.packet_count);
                put_u64(b, f.byte_count);
                encode_oxm_match(b, &f.m);
            }
        }
        Message::PortStatus(p) => {
            put_u8(b, p.reason);
            put_zeros(b, 7);
            encode_port(version, b, &p.desc);
        }
        Message::PacketOut(p) => {
            put_u32(b, p.buffer_id);
            let mut acts = Vec::new();
            if v10 {
                encode_actions10(&mut acts, &p.actions);
                put_u16(b, p.in_port.0 as u16);
                put_u16(b, len16(acts.len()));
            } else {
                encode_actions13(&mut acts, &p.actions, &Match::CATCHALL);
                put_u32(b, port_to_of13(p.in_port));
                put_u16(b, len16(acts.len()));
                put_zeros(b, 6);
            }
            b.extend_from_slice(&acts);
            b.extend_from_slice(&p.data);
        }
        Message::FlowMod(f) => encode_flow_mod(version, b, f),
        Message::MultipartRequest(m) => super::multipart::encode_request(version, b, m)?,
        Message::MultipartReply(m) => super::multipart::encode_reply(version, b, m)?,
        Message::RoleRequest(r) | Message::RoleReply(r) => {
            if v10 {
                return Err(not_in("ROLE_REQUEST/REPLY"));
            }
            put_u32(b, r.role);
            put_zeros(b, 4);
            put_u64(b, r.generation_id);
        }
        Message::GetAsyncReply(a) | Message::SetAsync(a) => {
            if v10 {
                return Err(not_in("GET_ASYNC_REPLY/SET_ASYNC"));
            }
            encode_async(b, a);
        }
        Message::MeterMod(m) => {
            if v10 {
                return Err(not_in("METER_MOD"));
            }
            super::meter::encode_meter_mod(b, m);
        }
    }
    Ok(())
}
