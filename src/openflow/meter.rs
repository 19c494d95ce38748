//! Meters on the wire (OpenFlow 1.3): METER_MOD, bands, and the METER,
//! METER_CONFIG and METER_FEATURES multipart bodies.
//!
//! # What?
//! [`MeterMod`] carries a [`MeterSpec`] (id, flags, bands) and a
//! command; decoding checks only the wire (lengths, band types: an
//! experimenter or unknown band is METER_MOD_FAILED/BAD_BAND), the switch
//! checks the rest ([`MeterSpec::validate`]) so `rvsctl` and OpenFlow
//! share one set of rules. A band's `burst_size` is kept only with the
//! BURST flag (Open vSwitch ignores it otherwise, and Ryu sends one by
//! default).
//!
//! Wire layouts: `ofp_meter_mod` (command u16, flags u16, meter_id u32,
//! bands), `ofp_meter_band_*` (type u16, len u16 = 16, rate u32,
//! burst_size u32, then 4 pad bytes, or prec_level u8 and 3 pad bytes),
//! `ofp_meter_multipart_request` (meter_id u32, 4 pad), `ofp_meter_stats`
//! (40 bytes, then 16 per band), `ofp_meter_config` (length u16, flags
//! u16, meter_id u32, bands), `ofp_meter_features` (16 bytes).

use super::error::{DecodeError, ErrorType, OfpError};
use super::wire::{len16, patch_u16, put_u16, put_u32, put_u64, put_u8, put_zeros, Reader};
use flowtable::meter::{code, flags, Band, BandKind, MeterSpec};

/// OFPMBT_DROP.
pub const BAND_DROP: u16 = 1;
/// OFPMBT_DSCP_REMARK.
pub const BAND_DSCP_REMARK: u16 = 2;
/// OFPMBT_EXPERIMENTER.
pub const BAND_EXPERIMENTER: u16 = 0xffff;

/// METER_MOD commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MeterModCommand {
    /// OFPMC_ADD.
    Add,
    /// OFPMC_MODIFY.
    Modify,
    /// OFPMC_DELETE (meter id OFPM_ALL: every meter).
    Delete,
}

impl MeterModCommand {
    fn wire(self) -> u16 {
        match self {
            MeterModCommand::Add => 0,
            MeterModCommand::Modify => 1,
            MeterModCommand::Delete => 2,
        }
    }
}

/// METER_MOD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterMod {
    /// What to do.
    pub command: MeterModCommand,
    /// The meter (a delete uses only its id).
    pub meter: MeterSpec,
}

/// One meter's statistics (`ofp_meter_stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeterStats {
    /// Meter id.
    pub meter_id: u32,
    /// Flows that use it.
    pub flow_count: u32,
    /// Frames that entered it.
    pub packet_in_count: u64,
    /// Bytes that entered it.
    pub byte_in_count: u64,
    /// Seconds since it was added.
    pub duration_sec: u32,
    /// Nanoseconds beyond that.
    pub duration_nsec: u32,
    /// Per band: (frames, bytes) it applied to.
    pub bands: Vec<(u64, u64)>,
}

/// What the switch's meters can do (`ofp_meter_features`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeterFeatures {
    /// Largest meter id.
    pub max_meter: u32,
    /// Band types, as bits `1 << type`.
    pub band_types: u32,
    /// Supported meter flags.
    pub capabilities: u32,
    /// Most bands per meter.
    pub max_bands: u8,
    /// Most colour values.
    pub max_color: u8,
}

fn mm_err(c: u16, what: impl Into<String>) -> DecodeError {
    DecodeError::new(OfpError::new(ErrorType::MeterModFailed, c), what)
}

/// Reads bands until the reader is empty.
fn decode_bands(r: &mut Reader<'_>, fl: u16) -> Result<Vec<Band>, DecodeError> {
    let mut out = Vec::new();
    while r.remaining() > 0 {
        let t = r.u16("band type")?;
        let len = usize::from(r.u16("band len")?);
        if len < 16 || len % 8 != 0 {
            return Err(mm_err(code::BAD_BAND, format!("band length {len}")));
        }
        let body = r.take(len - 4, "band")?;
        let mut b = Reader::new(
            body,
            OfpError::new(ErrorType::MeterModFailed, code::BAD_BAND),
        );
        let rate = b.u32("rate")?;
        let burst = b.u32("burst_size")?;
        let kind = match t {
            BAND_DROP => BandKind::Drop,
            BAND_DSCP_REMARK => BandKind::DscpRemark {
                prec_level: b.u8("prec_level")?,
            },
            _ => {
                return Err(mm_err(
                    code::BAD_BAND,
                    format!("band type {t} is not supported"),
                ))
            }
        };
        out.push(Band {
            kind,
            rate,
            burst_size: if fl & flags::BURST != 0 { burst } else { 0 },
        });
    }
    Ok(out)
}

fn encode_bands(b: &mut Vec<u8>, bands: &[Band]) {
    for band in bands {
        let (t, prec) = match band.kind {
            BandKind::Drop => (BAND_DROP, None),
            BandKind::DscpRemark { prec_level } => (BAND_DSCP_REMARK, Some(prec_level)),
        };
        put_u16(b, t);
        put_u16(b, 16);
        put_u32(b, band.rate);
        put_u32(b, band.burst_size);
        match prec {
            Some(p) => {
                put_u8(b, p);
                put_zeros(b, 3);
            }
            None => put_zeros(b, 4),
        }
    }
}

/// Decodes a METER_MOD body.
pub(crate) fn decode_meter_mod(r: &mut Reader<'_>) -> Result<MeterMod, DecodeError> {
    let c = r.u16("command")?;
    let command = match c {
        0 => MeterModCommand::Add,
        1 => MeterModCommand::Modify,
        2 => MeterModCommand::Delete,
        _ => return Err(mm_err(code::BAD_COMMAND, format!("meter_mod command {c}"))),
    };
    let fl = r.u16("flags")?;
    let id = r.u32("meter_id")?;
    let bands = decode_bands(r, fl)?;
    Ok(MeterMod {
        command,
        meter: MeterSpec {
            id,
            flags: fl,
            bands,
        },
    })
}

/// Encodes a METER_MOD body.
pub(crate) fn encode_meter_mod(b: &mut Vec<u8>, m: &MeterMod) {
    put_u16(b, m.command.wire());
    put_u16(b, m.meter.flags);
    put_u32(b, m.meter.id);
    encode_bands(b, &m.meter.bands);
}

/// Decodes the meter id of a METER / METER_CONFIG request.
pub(crate) fn decode_meter_request(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    let id = r.u32("meter_id")?;
    r.skip(4, "pad")?;
    Ok(id)
}

/// Encodes a METER / METER_CONFIG request body.
pub(crate) fn encode_meter_request(b: &mut Vec<u8>, id: u32) {
    put_u32(b, id);
    put_zeros(b, 4);
}

/// Encodes one `ofp_meter_stats`.
pub(crate) fn encode_meter_stats(b: &mut Vec<u8>, s: &MeterStats) {
    let start = b.len();
    put_u32(b, s.meter_id);
    put_u16(b, 0);
    put_zeros(b, 6);
    put_u32(b, s.flow_count);
    put_u64(b, s.packet_in_count);
    put_u64(b, s.byte_in_count);
    put_u32(b, s.duration_sec);
    put_u32(b, s.duration_nsec);
    for (p, by) in &s.bands {
        put_u64(b, *p);
        put_u64(b, *by);
    }
    let len = len16(b.len() - start);
    patch_u16(b, start + 4, len);
}

/// Decodes one `ofp_meter_stats`.
pub(crate) fn decode_meter_stats(r: &mut Reader<'_>) -> Result<MeterStats, DecodeError> {
    let meter_id = r.u32("meter_id")?;
    let len = usize::from(r.u16("len")?);
    if len < 40 || (len - 40) % 16 != 0 {
        return Err(super::msg::bad_len(format!("meter stats length {len}")));
    }
    r.skip(6, "pad")?;
    let mut s = MeterStats {
        meter_id,
        flow_count: r.u32("flow_count")?,
        packet_in_count: r.u64("packet_in_count")?,
        byte_in_count: r.u64("byte_in_count")?,
        duration_sec: r.u32("duration_sec")?,
        duration_nsec: r.u32("duration_nsec")?,
        bands: Vec::new(),
    };
    for _ in 0..(len - 40) / 16 {
        s.bands
            .push((r.u64("packet_band_count")?, r.u64("byte_band_count")?));
    }
    Ok(s)
}

/// Encodes one `ofp_meter_config`.
pub(crate) fn encode_meter_config(b: &mut Vec<u8>, m: &MeterSpec) {
    let start = b.len();
    put_u16(b, 0);
    put_u16(b, m.flags);
    put_u32(b, m.id);
    encode_bands(b, &m.bands);
    let len = len16(b.len() - start);
    patch_u16(b, start, len);
}

/// Decodes one `ofp_meter_config`.
pub(crate) fn decode_meter_config(r: &mut Reader<'_>) -> Result<MeterSpec, DecodeError> {
    let len = usize::from(r.u16("length")?);
    if len < 8 {
        return Err(super::msg::bad_len(format!("meter config length {len}")));
    }
    let fl = r.u16("flags")?;
    let id = r.u32("meter_id")?;
    let body = r.take(len - 8, "bands")?;
    let mut br = super::msg::body_reader(body);
    Ok(MeterSpec {
        id,
        flags: fl,
        bands: decode_bands(&mut br, fl)?,
    })
}

/// Encodes `ofp_meter_features`.
pub(crate) fn encode_meter_features(b: &mut Vec<u8>, f: &MeterFeatures) {
    put_u32(b, f.max_meter);
    put_u32(b, f.band_types);
    put_u32(b, f.capabilities);
    put_u8(b, f.max_bands);
    put_u8(b, f.max_color);
    put_zeros(b, 2);
}

/// Decodes `ofp_meter_features`.
pub(crate) fn decode_meter_features(r: &mut Reader<'_>) -> Result<MeterFeatures, DecodeError> {
    let f = MeterFeatures {
        max_meter: r.u32("max_meter")?,
        band_types: r.u32("band_types")?,
        capabilities: r.u32("capabilities")?,
        max_bands: r.u8("max_bands")?,
        max_color: r.u8("max_color")?,
    };
    r.skip(2, "pad")?;
    Ok(f)
}
