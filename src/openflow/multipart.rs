//! MULTIPART (1.0: STATS) request and reply bodies.
//!
//! # What?
//! Requests: DESC, FLOW, AGGREGATE, TABLE, PORT_STATS, PORT_DESC (1.3),
//! TABLE_FEATURES (1.3) and EXPERIMENTER/VENDOR (kept raw so the caller
//! can answer BAD_EXPERIMENTER / BAD_VENDOR, which makes `ovs-ofctl` fall
//! back from Nicira stats). Any other type is BAD_REQUEST/BAD_MULTIPART.
//! Replies: the same kinds, built by the switch. A reply too large for
//! one message is split by [`super::encode_multipart_reply`] into several
//! with OFPMPF_REPLY_MORE set on all but the last.
//!
//! # Limits
//! METER, METER_CONFIG and METER_FEATURES (1.3) are in [`super::meter`].
//! No QUEUE or GROUP stats. TABLE_FEATURES requests that carry a
//! body (a controller setting features) decode to their table list; rvs
//! cannot change its tables, the caller should answer
//! TABLE_FEATURES_FAILED/EPERM.

use super::action::{
    decode_actions10, decode_instructions, encode_actions10, encode_instructions, ActCtx,
};
use super::error::{bad_request, DecodeError, EncodeError, ErrorType, OfpError};
use super::msg::{decode_ports, encode_port, PortDesc};
use super::oxm::{
    decode_of10_match, decode_oxm_match, encode_of10_match, encode_oxm_match, oxm_header,
    OFPXMC_OPENFLOW_BASIC, OXM_FIELDS,
};
use super::wire::{
    len16, patch_u16, put_string, put_u16, put_u32, put_u64, put_u8, put_zeros, Reader,
};
use super::{port_from_of13, port_to_of13, OFP10_VERSION};
use flowtable::{Action, Match, PortNo};

/// Multipart types (1.3 numbering; 1.0 uses 0..=4 the same, PORT for
/// PORT_STATS, and 0xffff VENDOR).
#[allow(missing_docs)]
pub mod mp_type {
    pub const DESC: u16 = 0;
    pub const FLOW: u16 = 1;
    pub const AGGREGATE: u16 = 2;
    pub const TABLE: u16 = 3;
    pub const PORT_STATS: u16 = 4;
    pub const QUEUE: u16 = 5;
    pub const METER: u16 = 9;
    pub const METER_CONFIG: u16 = 10;
    pub const METER_FEATURES: u16 = 11;
    pub const TABLE_FEATURES: u16 = 12;
    pub const PORT_DESC: u16 = 13;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// OFPMPF_REQ_MORE / OFPMPF_REPLY_MORE.
pub const MPF_MORE: u16 = 1;

/// A FLOW or AGGREGATE request: which flows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowStatsRequest {
    /// Table, or OFPTT_ALL.
    pub table_id: u8,
    /// Only flows outputting here; NONE for any.
    pub out_port: PortNo,
    /// Group filter (1.3), OFPG_ANY for any.
    pub out_group: u32,
    /// Cookie filter value (1.3).
    pub cookie: u64,
    /// Cookie filter mask (1.3).
    pub cookie_mask: u64,
    /// Loose match filter.
    pub m: Match,
}

impl FlowStatsRequest {
    /// The equivalent (loose) flow filter.
    pub fn filter(&self) -> flowtable::syntax::FlowFilter {
        flowtable::syntax::FlowFilter {
            table: (self.table_id <= flowtable::TableId::MAX.0)
                .then_some(flowtable::TableId(self.table_id)),
            priority: None,
            cookie: self.cookie,
            cookie_mask: self.cookie_mask,
            out_port: (self.out_port != PortNo::NONE).then_some(self.out_port),
            m: self.m,
        }
    }
}

/// A multipart request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MpRequest {
    /// Switch description.
    Desc,
    /// Individual flow statistics.
    Flow(FlowStatsRequest),
    /// Aggregate flow statistics.
    Aggregate(FlowStatsRequest),
    /// Table statistics.
    Table,
    /// Port statistics of one port, or all with [`PortNo::NONE`].
    PortStats(PortNo),
    /// Port descriptions (1.3).
    PortDesc,
    /// Table features; empty to query (1.3).
    TableFeatures(Vec<TableFeatures>),
    /// Meter statistics of one meter or OFPM_ALL (1.3).
    Meter(u32),
    /// Meter configurations of one meter or OFPM_ALL (1.3).
    MeterConfig(u32),
    /// Meter features (1.3).
    MeterFeatures,
    /// Experimenter (1.0: vendor) statistics, undecoded.
    Experimenter {
        /// Experimenter id.
        experimenter: u32,
        /// Experimenter type / Nicira subtype.
        exp_type: u32,
        /// The rest of the body.
        data: Vec<u8>,
    },
}

/// A MULTIPART_REQUEST (1.0: STATS_REQUEST).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartRequest {
    /// OFPMPF_REQ_* flags.
    pub flags: u16,
    /// The request.
    pub body: MpRequest,
}

/// OFPST_DESC / OFPMP_DESC reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// Manufacturer (255 bytes max).
    pub mfr_desc: String,
    /// Hardware description.
    pub hw_desc: String,
    /// Software description.
    pub sw_desc: String,
    /// Serial number (31 bytes max).
    pub serial_num: String,
    /// Datapath description.
    pub dp_desc: String,
}

/// One flow's statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowStats {
    /// Table.
    pub table_id: u8,
    /// Seconds alive.
    pub duration_sec: u32,
    /// Nanoseconds beyond that.
    pub duration_nsec: u32,
    /// Priority.
    pub priority: u16,
    /// Idle timeout.
    pub idle_timeout: u16,
    /// Hard timeout.
    pub hard_timeout: u16,
    /// Flow mod flags (1.3).
    pub flags: u16,
    /// Cookie.
    pub cookie: u64,
    /// Packets.
    pub packet_count: u64,
    /// Bytes.
    pub byte_count: u64,
    /// Match.
    pub m: Match,
    /// Actions (with a final `goto_table` as instruction in 1.3).
    pub actions: Vec<Action>,
}

impl FlowStats {
    /// Statistics of `flow`, alive for `duration_ms`.
    pub fn new(
        flow: &flowtable::syntax::Flow,
        duration_ms: u64,
        packets: u64,
        bytes: u64,
    ) -> FlowStats {
        FlowStats {
            table_id: flow.table.0,
            duration_sec: u32::try_from(duration_ms / 1000).unwrap_or(u32::MAX),
            duration_nsec: (duration_ms % 1000) as u32 * 1_000_000,
            priority: flow.priority.0,
            idle_timeout: flow.idle_timeout,
            hard_timeout: flow.hard_timeout,
            flags: 0,
            cookie: flow.cookie,
            packet_count: packets,
            byte_count: bytes,
            m: flow.m,
            actions: flow.actions.clone(),
        }
    }
}

/// Aggregate statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AggregateStats {
    /// Packets.
    pub packet_count: u64,
    /// Bytes.
    pub byte_count: u64,
    /// Flows.
    pub flow_count: u32,
}

/// One table's statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Table.
    pub table_id: u8,
    /// Name (1.0 only).
    pub name: String,
    /// Max entries (1.0 only).
    pub max_entries: u32,
    /// Flows in the table.
    pub active_count: u32,
    /// Lookups.
    pub lookup_count: u64,
    /// Lookups that hit.
    pub matched_count: u64,
}

/// One port's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct PortStats {
    pub port_no: PortNo,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_frame_err: u64,
    pub rx_over_err: u64,
    pub rx_crc_err: u64,
    pub collisions: u64,
    /// Seconds the port has existed (1.3).
    pub duration_sec: u32,
    /// Nanoseconds beyond that (1.3).
    pub duration_nsec: u32,
}

/// Table feature property types.
#[allow(missing_docs)]
pub mod tfp {
    pub const INSTRUCTIONS: u16 = 0;
    pub const INSTRUCTIONS_MISS: u16 = 1;
    pub const NEXT_TABLES: u16 = 2;
    pub const NEXT_TABLES_MISS: u16 = 3;
    pub const WRITE_ACTIONS: u16 = 4;
    pub const WRITE_ACTIONS_MISS: u16 = 5;
    pub const APPLY_ACTIONS: u16 = 6;
    pub const APPLY_ACTIONS_MISS: u16 = 7;
    pub const MATCH: u16 = 8;
    pub const WILDCARDS: u16 = 10;
    pub const WRITE_SETFIELD: u16 = 12;
    pub const WRITE_SETFIELD_MISS: u16 = 13;
    pub const APPLY_SETFIELD: u16 = 14;
    pub const APPLY_SETFIELD_MISS: u16 = 15;
}

/// One table feature property: its type and its list of ids
/// (instruction or action types, table ids, or OXM headers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableFeatureProp {
    /// [`tfp`] type.
    pub prop_type: u16,
    /// The ids, as the type says (an experimenter OXM header is followed
    /// by its experimenter id).
    pub ids: Vec<u32>,
}

/// One table's features.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableFeatures {
    /// Table.
    pub table_id: u8,
    /// Name (31 bytes max).
    pub name: String,
    /// Metadata bits the table can match.
    pub metadata_match: u64,
    /// Metadata bits the table can write.
    pub metadata_write: u64,
    /// OFPTC_* config.
    pub config: u32,
    /// Max flows.
    pub max_entries: u32,
    /// Properties.
    pub properties: Vec<TableFeatureProp>,
}

impl TableFeatures {
    /// What rvs's table `table_id` (of `n_tables`) supports: the
    /// instructions, actions and OXM fields this codec decodes, and every
    /// later table as a goto target. Miss properties are the same.
    pub fn rvs(table_id: u8, n_tables: u8, max_entries: u32) -> TableFeatures {
        use super::action::{act13, inst};
        let insts: Vec<u32> = [
            inst::GOTO_TABLE,
            inst::WRITE_METADATA,
            inst::WRITE_ACTIONS,
            inst::APPLY_ACTIONS,
            inst::CLEAR_ACTIONS,
        ]
        .into_iter()
        .map(u32::from)
        .collect();
        let acts: Vec<u32> = [
            act13::OUTPUT,
            act13::PUSH_VLAN,
            act13::POP_VLAN,
            act13::SET_NW_TTL,
            act13::DEC_NW_TTL,
            act13::SET_FIELD,
        ]
        .into_iter()
        .map(u32::from)
        .collect();
        let fields: Vec<u32> = OXM_FIELDS
            .iter()
            .map(|i| oxm_header(i.class, i.oxm, false, i.width))
            .collect();
        let setfields: Vec<u32> = OXM_FIELDS
            .iter()
            .filter(|i| {
                i.field.writable() || i.class == OFPXMC_OPENFLOW_BASIC && matches!(i.oxm, 6 | 7)
            })
            .map(|i| oxm_header(i.class, i.oxm, false, i.width))
            .collect();
        let next: Vec<u32> = (u32::from(table_id) + 1..u32::from(n_tables)).collect();
        let mut props = Vec::new();
        for (t, ids) in [
            (tfp::INSTRUCTIONS, &insts),
            (tfp::NEXT_TABLES, &next),
            (tfp::WRITE_ACTIONS, &acts),
            (tfp::APPLY_ACTIONS, &acts),
            (tfp::WRITE_SETFIELD, &setfields),
            (tfp::APPLY_SETFIELD, &setfields),
        ] {
            props.push(TableFeatureProp {
                prop_type: t,
                ids: ids.clone(),
            });
            props.push(TableFeatureProp {
                prop_type: t + 1,
                ids: ids.clone(),
            });
        }
        props.push(TableFeatureProp {
            prop_type: tfp::MATCH,
            ids: fields.clone(),
        });
        props.push(TableFeatureProp {
            prop_type: tfp::WILDCARDS,
            ids: fields,
        });
        TableFeatures {
            table_id,
            name: format!("table{table_id}"),
            metadata_match: u64::MAX,
            metadata_write: u64::MAX,
            config: 0,
            max_entries,
            properties: props,
        }
    }
}

/// A multipart reply body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum MpReply {
    Desc(Desc),
    Flow(Vec<FlowStats>),
    Aggregate(AggregateStats),
    Table(Vec<TableStats>),
    PortStats(Vec<PortStats>),
    PortDesc(Vec<PortDesc>),
    TableFeatures(Vec<TableFeatures>),
    Meter(Vec<super::meter::MeterStats>),
    MeterConfig(Vec<flowtable::meter::MeterSpec>),
    MeterFeatures(super::meter::MeterFeatures),
}

/// A MULTIPART_REPLY (1.0: STATS_REPLY).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartReply {
    /// OFPMPF_REPLY_MORE when more replies follow.
    pub flags: u16,
    /// The reply.
    pub body: MpReply,
}

fn bad_mp(what: impl Into<String>) -> DecodeError {
    DecodeError::new(
        OfpError::new(ErrorType::BadRequest, bad_request::BAD_MULTIPART),
        what,
    )
}

fn mp_header(version: u8, r: &mut Reader<'_>) -> Result<(u16, u16), DecodeError> {
    let t = r.u16("multipart type")?;
    let flags = r.u16("multipart flags")?;
    if version != OFP10_VERSION {
        r.skip(4, "pad")?;
    }
    Ok((t, flags))
}

fn decode_flow_req(version: u8, r: &mut Reader<'_>) -> Result<FlowStatsRequest, DecodeError> {
    if version == OFP10_VERSION {
        let m = decode_of10_match(r)?;
        let table_id = r.u8("table_id")?;
        r.skip(1, "pad")?;
        let out_port = PortNo(u32::from(r.u16("out_port")?));
        return Ok(FlowStatsRequest {
            table_id,
            out_port,
            out_group: u32::MAX,
            cookie: 0,
            cookie_mask: 0,
            m,
        });
    }
    let table_id = r.u8("table_id")?;
    r.skip(3, "pad")?;
    let p = r.u32("out_port")?;
    let out_port = port_from_of13(p).ok_or_else(|| {
        DecodeError::new(
            OfpError::new(ErrorType::BadRequest, bad_request::BAD_PORT),
            format!("out_port {p:#x}"),
        )
    })?;
    let out_group = r.u32("out_group")?;
    r.skip(4, "pad")?;
    let cookie = r.u64("cookie")?;
    let cookie_mask = r.u64("cookie_mask")?;
    let m = decode_oxm_match(r)?;
    Ok(FlowStatsRequest {
        table_id,
        out_port,
        out_group,
        cookie,
        cookie_mask,
        m,
    })
}

fn encode_flow_req(version: u8, b: &mut Vec<u8>, f: &FlowStatsRequest) {
    if version == OFP10_VERSION {
        encode_of10_match(b, &f.m);
        put_u8(b, f.table_id);
        put_u8(b, 0);
        put_u16(b, f.out_port.0 as u16);
        return;
    }
    put_u8(b, f.table_id);
    put_zeros(b, 3);
    put_u32(b, port_to_of13(f.out_port));
    put_u32(b, f.out_group);
    put_zeros(b, 4);
    put_u64(b, f.cookie);
    put_u64(b, f.cookie_mask);
    encode_oxm_match(b, &f.m);
}

/// Decodes a multipart/stats request body.
pub(crate) fn decode_request(
    version: u8,
    r: &mut Reader<'_>,
) -> Result<MultipartRequest, DecodeError> {
    let (t, flags) = mp_header(version, r)?;
    let v10 = version == OFP10_VERSION;
    let body = match t {
        mp_type::DESC => MpRequest::Desc,
        mp_type::FLOW => MpRequest::Flow(decode_flow_req(version, r)?),
        mp_type::AGGREGATE => MpRequest::Aggregate(decode_flow_req(version, r)?),
        mp_type::TABLE => MpRequest::Table,
        mp_type::PORT_STATS => {
            let p = if v10 {
                let p = PortNo(u32::from(r.u16("port_no")?));
                r.skip(6, "pad")?;
                p
            } else {
                let p = r.u32("port_no")?;
                r.skip(4, "pad")?;
                port_from_of13(p).ok_or_else(|| {
                    DecodeError::new(
                        OfpError::new(ErrorType::BadRequest, bad_request::BAD_PORT),
                        format!("port {p:#x}"),
                    )
                })?
            };
            MpRequest::PortStats(p)
        }
        mp_type::PORT_DESC if !v10 => MpRequest::PortDesc,
        mp_type::TABLE_FEATURES if !v10 => MpRequest::TableFeatures(decode_table_features(r)?),
        mp_type::METER if !v10 => MpRequest::Meter(super::meter::decode_meter_request(r)?),
        mp_type::METER_CONFIG if !v10 => {
            MpRequest::MeterConfig(super::meter::decode_meter_request(r)?)
        }
        mp_type::METER_FEATURES if !v10 => MpRequest::MeterFeatures,
        mp_type::EXPERIMENTER => {
            let experimenter = r.u32("experimenter")?;
            let exp_type = if r.remaining() >= 4 {
                r.u32("exp_type")?
            } else {
                0
            };
            MpRequest::Experimenter {
                experimenter,
                exp_type,
                data: r.rest().to_vec(),
            }
        }
        _ => return Err(bad_mp(format!("multipart type {t} is not supported"))),
    };
    Ok(MultipartRequest { flags, body })
}

fn req_type(body: &MpRequest) -> u16 {
    match body {
        MpRequest::Desc => mp_type::DESC,
        MpRequest::Flow(_) => mp_type::FLOW,
        MpRequest::Aggregate(_) => mp_type::AGGREGATE,
        MpRequest::Table => mp_type::TABLE,
        MpRequest::PortStats(_) => mp_type::PORT_STATS,
        MpRequest::PortDesc => mp_type::PORT_DESC,
        MpRequest::TableFeatures(_) => mp_type::TABLE_FEATURES,
        MpRequest::Meter(_) => mp_type::METER,
        MpRequest::MeterConfig(_) => mp_type::METER_CONFIG,
        MpRequest::MeterFeatures => mp_type::METER_FEATURES,
        MpRequest::Experimenter { .. } => mp_type::EXPERIMENTER,
    }
}

fn put_mp_header(version: u8, b: &mut Vec<u8>, t: u16, flags: u16) {
    put_u16(b, t);
    put_u16(b, flags);
    if version != OFP10_VERSION {
        put_zeros(b, 4);
    }
}

/// Encodes a multipart/stats request body.
pub(crate) fn encode_request(
    version: u8,
    b: &mut Vec<u8>,
    m: &MultipartRequest,
) -> Result<(), EncodeError> {
    let v10 = version == OFP10_VERSION;
    if v10
        && matches!(
            m.body,
            MpRequest::PortDesc
                | MpRequest::TableFeatures(_)
                | MpRequest::Meter(_)
                | MpRequest::MeterConfig(_)
                | MpRequest::MeterFeatures
        )
    {
        return Err(EncodeError::NotInVersion {
            what: "PORT_DESC/TABLE_FEATURES",
            version,
        });
    }
    put_mp_header(version, b, req_type(&m.body), m.flags);
    match &m.body {
        MpRequest::Desc | MpRequest::Table | MpRequest::PortDesc | MpRequest::MeterFeatures => {}
        MpRequest::Meter(id) | MpRequest::MeterConfig(id) => {
            super::meter::encode_meter_request(b, *id)
        }
        MpRequest::Flow(f) | MpRequest::Aggregate(f) => encode_flow_req(version, b, f),
        MpRequest::PortStats(p) => {
            if v10 {
                put_u16(b, p.0 as u16);
                put_zeros(b, 6);
            } else {
                put_u32(b, port_to_of13(*p));
                put_zeros(b, 4);
            }
        }
        MpRequest::TableFeatures(t) => {
            for tf in t {
                encode_table_features(b, tf);
            }
        }
        MpRequest::Experimenter {
            experimenter,
            exp_type,
            data,
        } => {
            put_u32(b, *experimenter);
            put_u32(b, *exp_type);
            b.extend_from_slice(data);
        }
    }
    Ok(())
}

fn decode_props(r: &mut Reader<'_>) -> Result<Vec<TableFeatureProp>, DecodeError> {
    let mut out = Vec::new();
    while r.remaining() > 0 {
        let t = r.u16("property type")?;
        let len = usize::from(r.u16("property length")?);
        if len < 4 {
            return Err(bad_mp("table feature property too short"));
        }
        let body = r.take(len - 4, "property")?;
        r.take(len.next_multiple_of(8) - len, "property padding")?;
        let mut pr = super::msg::body_reader(body);
        let mut ids = Vec::new();
        match t {
            tfp::INSTRUCTIONS..=tfp::INSTRUCTIONS_MISS
            | tfp::WRITE_ACTIONS..=tfp::APPLY_ACTIONS_MISS => {
                while pr.remaining() >= 4 {
                    let id = pr.u16("id")?;
                    let l = usize::from(pr.u16("len")?);
                    pr.skip(l.saturating_sub(4), "id body")?;
                    ids.push(u32::from(id));
                }
            }
            tfp::NEXT_TABLES..=tfp::NEXT_TABLES_MISS => {
                ids = pr.rest().iter().map(|x| u32::from(*x)).collect();
            }
            tfp::MATCH..=tfp::APPLY_SETFIELD_MISS => {
                while pr.remaining() >= 4 {
                    let h = pr.u32("oxm")?;
                    ids.push(h);
                    // Experimenter OXMs carry a 4-byte experimenter id:
                    // kept as the next id, so the list encodes back as it
                    // came.
                    if h >> 16 == 0xffff {
                        ids.push(pr.u32("experimenter")?);
                    }
                }
            }
            // Experimenter properties are ignored.
            _ => continue,
        }
        out.push(TableFeatureProp { prop_type: t, ids });
    }
    Ok(out)
}

fn decode_table_features(r: &mut Reader<'_>) -> Result<Vec<TableFeatures>, DecodeError> {
    let mut out = Vec::new();
    while r.remaining() > 0 {
        let len = usize::from(r.u16("length")?);
        if len < 64 {
            return Err(bad_mp(format!("table features length {len}")));
        }
        let body = r.take(len - 2, "table features")?;
        let mut tr = super::msg::body_reader(body);
        let table_id = tr.u8("table_id")?;
        tr.skip(5, "pad")?;
        let name = tr.string(32, "name")?;
        let metadata_match = tr.u64("metadata_match")?;
        let metadata_write = tr.u64("metadata_write")?;
        let config = tr.u32("config")?;
        let max_entries = tr.u32("max_entries")?;
        let properties = decode_props(&mut tr)?;
        out.push(TableFeatures {
            table_id,
            name,
            metadata_match,
            metadata_write,
            config,
            max_entries,
            properties,
        });
    }
    Ok(out)
}

fn encode_table_features(b: &mut Vec<u8>, t: &TableFeatures) {
    let s = b.len();
    put_u16(b, 0);
    put_u8(b, t.table_id);
    put_zeros(b, 5);
    put_string(b, &t.name, 32);
    put_u64(b, t.metadata_match);
    put_u64(b, t.metadata_write);
    put_u32(b, t.config);
    put_u32(b, t.max_entries);
    for p in &t.properties {
        let ps = b.len();
        put_u16(b, p.prop_type);
        put_u16(b, 0);
        for id in &p.ids {
            match p.prop_type {
                tfp::NEXT_TABLES..=tfp::NEXT_TABLES_MISS => put_u8(b, *id as u8),
                tfp::MATCH..=tfp::APPLY_SETFIELD_MISS => put_u32(b, *id),
                _ => {
                    put_u16(b, *id as u16);
                    put_u16(b, 4);
                }
            }
        }
        let l = len16(b.len() - ps);
        patch_u16(b, ps + 2, l);
        super::wire::pad8(b);
    }
    let l = len16(b.len() - s);
    patch_u16(b, s, l);
}

fn decode_flow_stats(version: u8, r: &mut Reader<'_>) -> Result<FlowStats, DecodeError> {
    let len = usize::from(r.u16("length")?);
    if len < 4 {
        return Err(bad_mp("flow stats entry too short"));
    }
    let body = r.take(len - 2, "flow stats")?;
    let mut r = super::msg::body_reader(body);
    let r = &mut r;
    let table_id = r.u8("table_id")?;
    r.skip(1, "pad")?;
    if version == OFP10_VERSION {
        let m = decode_of10_match(r)?;
        let duration_sec = r.u32("duration_sec")?;
        let duration_nsec = r.u32("duration_nsec")?;
        let priority = r.u16("priority")?;
        let idle_timeout = r.u16("idle_timeout")?;
        let hard_timeout = r.u16("hard_timeout")?;
        r.skip(6, "pad")?;
        let cookie = r.u64("cookie")?;
        let packet_count = r.u64("packet_count")?;
        let byte_count = r.u64("byte_count")?;
        let actions = decode_actions10(r.rest(), &mut ActCtx::flow(&m, Some(table_id)))?;
        return Ok(FlowStats {
            table_id,
            duration_sec,
            duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            flags: 0,
            cookie,
            packet_count,
            byte_count,
            m,
            actions,
        });
    }
    let duration_sec = r.u32("duration_sec")?;
    let duration_nsec = r.u32("duration_nsec")?;
    let priority = r.u16("priority")?;
    let idle_timeout = r.u16("idle_timeout")?;
    let hard_timeout = r.u16("hard_timeout")?;
    let flags = r.u16("flags")?;
    r.skip(4, "pad")?;
    let cookie = r.u64("cookie")?;
    let packet_count = r.u64("packet_count")?;
    let byte_count = r.u64("byte_count")?;
    let m = decode_oxm_match(r)?;
    let actions = decode_instructions(r.rest(), &mut ActCtx::flow(&m, Some(table_id)))?;
    Ok(FlowStats {
        table_id,
        duration_sec,
        duration_nsec,
        priority,
        idle_timeout,
        hard_timeout,
        flags,
        cookie,
        packet_count,
        byte_count,
        m,
        actions,
    })
}

pub(crate) fn encode_flow_stats(version: u8, b: &mut Vec<u8>, f: &FlowStats) {
    let s = b.len();
    put_u16(b, 0);
    put_u8(b, f.table_id);
    put_u8(b, 0);
    if version == OFP10_VERSION {
        encode_of10_match(b, &f.m);
        put_u32(b, f.duration_sec);
        put_u32(b, f.duration_nsec);
        put_u16(b, f.priority);
        put_u16(b, f.idle_timeout);
        put_u16(b, f.hard_timeout);
        put_zeros(b, 6);
        put_u64(b, f.cookie);
        put_u64(b, f.packet_count);
        put_u64(b, f.byte_count);
        encode_actions10(b, &f.actions);
    } else {
        put_u32(b, f.duration_sec);
        put_u32(b, f.duration_nsec);
        put_u16(b, f.priority);
        put_u16(b, f.idle_timeout);
        put_u16(b, f.hard_timeout);
        put_u16(b, f.flags);
        put_zeros(b, 4);
        put_u64(b, f.cookie);
        put_u64(b, f.packet_count);
        put_u64(b, f.byte_count);
        encode_oxm_match(b, &f.m);
        encode_instructions(b, &f.actions, &f.m);
    }
    let l = len16(b.len() - s);
    patch_u16(b, s, l);
}

fn decode_port_stats(version: u8, r: &mut Reader<'_>) -> Result<PortStats, DecodeError> {
    let mut p = PortStats::default();
    if version == OFP10_VERSION {
        p.port_no = PortNo(u32::from(r.u16("port_no")?));
        r.skip(6, "pad")?;
    } else {
        let n = r.u32("port_no")?;
        p.port_no = port_from_of13(n).ok_or_else(|| bad_mp(format!("port {n:#x}")))?;
        r.skip(4, "pad")?;
    }
    for v in [
        &mut p.rx_packets,
        &mut p.tx_packets,
        &mut p.rx_bytes,
        &mut p.tx_bytes,
        &mut p.rx_dropped,
        &mut p.tx_dropped,
        &mut p.rx_errors,
        &mut p.tx_errors,
        &mut p.rx_frame_err,
        &mut p.rx_over_err,
        &mut p.rx_crc_err,
        &mut p.collisions,
    ] {
        *v = r.u64("counter")?;
    }
    if version != OFP10_VERSION {
        p.duration_sec = r.u32("duration_sec")?;
        p.duration_nsec = r.u32("duration_nsec")?;
    }
    Ok(p)
}

fn encode_port_stats(version: u8, b: &mut Vec<u8>, p: &PortStats) {
    if version == OFP10_VERSION {
        put_u16(b, p.port_no.0 as u16);
        put_zeros(b, 6);
    } else {
        put_u32(b, port_to_of13(p.port_no));
        put_zeros(b, 4);
    }
    for v in [
        p.rx_packets,
        p.tx_packets,
        p.rx_bytes,
        p.tx_bytes,
        p.rx_dropped,
        p.tx_dropped,
        p.rx_errors,
        p.tx_errors,
        p.rx_frame_err,
        p.rx_over_err,
        p.rx_crc_err,
        p.collisions,
    ] {
        put_u64(b, v);
    }
    if version != OFP10_VERSION {
        put_u32(b, p.duration_sec);
        put_u32(b, p.duration_nsec);
    }
}

/// OFPFW10 wildcards rvs's tables support: all of them.
const OF10_TABLE_WILDCARDS: u32 = (1 << 22) - 1;

fn decode_table_stats(version: u8, r: &mut Reader<'_>) -> Result<TableStats, DecodeError> {
    let mut t = TableStats {
        table_id: r.u8("table_id")?,
        ..TableStats::default()
    };
    r.skip(3, "pad")?;
    if version == OFP10_VERSION {
        t.name = r.string(32, "name")?;
        r.skip(4, "wildcards")?;
        t.max_entries = r.u32("max_entries")?;
    }
    t.active_count = r.u32("active_count")?;
    t.lookup_count = r.u64("lookup_count")?;
    t.matched_count = r.u64("matched_count")?;
    Ok(t)
}

fn encode_table_stats(version: u8, b: &mut Vec<u8>, t: &TableStats) {
    put_u8(b, t.table_id);
    put_zeros(b, 3);
    if version == OFP10_VERSION {
        put_string(b, &t.name, 32);
        put_u32(b, OF10_TABLE_WILDCARDS);
        put_u32(b, t.max_entries);
    }
    put_u32(b, t.active_count);
    put_u64(b, t.lookup_count);
    put_u64(b, t.matched_count);
}

fn rep_type(body: &MpReply) -> u16 {
    match body {
        MpReply::Desc(_) => mp_type::DESC,
        MpReply::Flow(_) => mp_type::FLOW,
        MpReply::Aggregate(_) => mp_type::AGGREGATE,
        MpReply::Table(_) => mp_type::TABLE,
        MpReply::PortStats(_) => mp_type::PORT_STATS,
        MpReply::PortDesc(_) => mp_type::PORT_DESC,
        MpReply::TableFeatures(_) => mp_type::TABLE_FEATURES,
        MpReply::Meter(_) => mp_type::METER,
        MpReply::MeterConfig(_) => mp_type::METER_CONFIG,
        MpReply::MeterFeatures(_) => mp_type::METER_FEATURES,
    }
}

/// Encodes each item of a reply body separately (one element for DESC
/// and AGGREGATE), for splitting into several messages.
pub(crate) fn encode_reply_items(version: u8, body: &MpReply) -> Result<Vec<Vec<u8>>, EncodeError> {
    let v10 = version == OFP10_VERSION;
    if v10
        && matches!(
            body,
            MpReply::PortDesc(_)
                | MpReply::TableFeatures(_)
                | MpReply::Meter(_)
                | MpReply::MeterConfig(_)
                | MpReply::MeterFeatures(_)
        )
    {
        return Err(EncodeError::NotInVersion {
            what: "PORT_DESC/TABLE_FEATURES",
            version,
        });
    }
    fn each<T>(items: &[T], f: impl Fn(&mut Vec<u8>, &T)) -> Vec<Vec<u8>> {
        items
            .iter()
            .map(|i| {
                let mut b = Vec::new();
                f(&mut b, i);
                b
            })
            .collect()
    }
    Ok(match body {
        MpReply::Desc(d) => {
            let mut b = Vec::new();
            put_string(&mut b, &d.mfr_desc, 256);
            put_string(&mut b, &d.hw_desc, 256);
            put_string(&mut b, &d.sw_desc, 256);
            put_string(&mut b, &d.serial_num, 32);
            put_string(&mut b, &d.dp_desc, 256);
            vec![b]
        }
        MpReply::Aggregate(a) => {
            let mut b = Vec::new();
            put_u64(&mut b, a.packet_count);
            put_u64(&mut b, a.byte_count);
            put_u32(&mut b, a.flow_count);
            put_zeros(&mut b, 4);
            vec![b]
        }
        MpReply::Flow(f) => each(f, |b, x| encode_flow_stats(version, b, x)),
        MpReply::Table(t) => each(t, |b, x| encode_table_stats(version, b, x)),
        MpReply::PortStats(p) => each(p, |b, x| encode_port_stats(version, b, x)),
        MpReply::PortDesc(p) => each(p, |b, x| encode_port(version, b, x)),
        MpReply::TableFeatures(t) => each(t, encode_table_features),
        MpReply::Meter(m) => each(m, super::meter::encode_meter_stats),
        MpReply::MeterConfig(m) => each(m, super::meter::encode_meter_config),
        MpReply::MeterFeatures(f) => {
            let mut b = Vec::new();
            super::meter::encode_meter_features(&mut b, f);
            vec![b]
        }
    })
}

/// Encodes a reply body with its multipart header (one message's worth).
pub(crate) fn encode_reply(
    version: u8,
    b: &mut Vec<u8>,
    m: &MultipartReply,
) -> Result<(), EncodeError> {
    let items = encode_reply_items(version, &m.body)?;
    put_mp_header(version, b, rep_type(&m.body), m.flags);
    for i in items {
        b.extend_from_slice(&i);
    }
    Ok(())
}

/// The multipart type of a reply and the size of its header in `version`.
pub(crate) fn reply_header(version: u8, body: &MpReply, flags: u16) -> Vec<u8> {
    let mut b = Vec::new();
    put_mp_header(version, &mut b, rep_type(body), flags);
    b
}

/// Decodes a multipart/stats reply body.
pub(crate) fn decode_reply(version: u8, r: &mut Reader<'_>) -> Result<MultipartReply, DecodeError> {
    let (t, flags) = mp_header(version, r)?;
    let v10 = version == OFP10_VERSION;
    fn list<T>(
        r: &mut Reader<'_>,
        f: impl Fn(&mut Reader<'_>) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let mut out = Vec::new();
        while r.remaining() > 0 {
            out.push(f(r)?);
        }
        Ok(out)
    }
    let body = match t {
        mp_type::DESC => MpReply::Desc(Desc {
            mfr_desc: r.string(256, "mfr_desc")?,
            hw_desc: r.string(256, "hw_desc")?,
            sw_desc: r.string(256, "sw_desc")?,
            serial_num: r.string(32, "serial_num")?,
            dp_desc: r.string(256, "dp_desc")?,
        }),
        mp_type::AGGREGATE => {
            let a = AggregateStats {
                packet_count: r.u64("packet_count")?,
                byte_count: r.u64("byte_count")?,
                flow_count: r.u32("flow_count")?,
            };
            r.skip(4, "pad")?;
            MpReply::Aggregate(a)
        }
        mp_type::FLOW => MpReply::Flow(list(r, |r| decode_flow_stats(version, r))?),
        mp_type::TABLE => MpReply::Table(list(r, |r| decode_table_stats(version, r))?),
        mp_type::PORT_STATS => MpReply::PortStats(list(r, |r| decode_port_stats(version, r))?),
        mp_type::PORT_DESC if !v10 => MpReply::PortDesc(decode_ports(version, r)?),
        mp_type::TABLE_FEATURES if !v10 => MpReply::TableFeatures(decode_table_features(r)?),
        mp_type::METER if !v10 => MpReply::Meter(list(r, super::meter::decode_meter_stats)?),
        mp_type::METER_CONFIG if !v10 => {
            MpReply::MeterConfig(list(r, super::meter::decode_meter_config)?)
        }
        mp_type::METER_FEATURES if !v10 => {
            MpReply::MeterFeatures(super::meter::decode_meter_features(r)?)
        }
        _ => return Err(bad_mp(format!("multipart reply type {t} is not supported"))),
    };
    Ok(MultipartReply { flags, body })
}
