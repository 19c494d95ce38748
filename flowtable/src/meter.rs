//! OpenFlow 1.3 meter configurations and their ovs-ofctl syntax.
//!
//! # What?
//! A [`MeterSpec`] is one meter as a controller configures it (METER_MOD,
//! `ovs-ofctl add-meter`, `rvsctl add-meter`, the state file): its id,
//! [`flags`] and up to [`MAX_BANDS`] [`Band`]s. [`MeterSpec::validate`]
//! applies OpenFlow's rules and names the METER_MOD_FAILED code a
//! violation maps to ([`MeterError::code`]). [`parse_meter`] reads
//! ovs-ofctl's syntax (`meter=1,kbps,burst,stats,bands=type=drop,rate=10000,burst_size=1000`);
//! `Display` writes the same syntax back, so `parse(print(m)) == m`.
//!
//! # Invariants
//! A validated spec has an id in `1..=OFPM_MAX`, exactly one of `KBPS` /
//! `PKTPS` (a spec that names neither is kbps, as in ovs-ofctl), no
//! unknown flag bits, 1..=[`MAX_BANDS`] bands, each with a rate above 0,
//! and a `burst_size` of 0 unless the `BURST` flag is set.
//!
//! ```
//! use flowtable::meter::{parse_meter, flags};
//! let m = parse_meter("meter=1,kbps,burst,bands=type=drop,rate=10000,burst_size=1000").unwrap();
//! assert_eq!(m.id, 1);
//! assert_eq!(m.flags, flags::KBPS | flags::BURST);
//! assert_eq!(m.to_string(), "meter=1,kbps,burst,bands=type=drop,rate=10000,burst_size=1000");
//! ```

use std::fmt;

/// Largest meter id a controller may configure (OFPM_MAX).
pub const OFPM_MAX: u32 = 0xffff_0000;
/// Every meter, in deletes and stats requests (OFPM_ALL).
pub const OFPM_ALL: u32 = 0xffff_ffff;
/// Most bands a meter has.
pub const MAX_BANDS: usize = 8;

/// METER_MOD flag bits (`ofp_meter_flags`).
pub mod flags {
    /// Rates in kbit/s (1000 bits), bursts in kbit.
    pub const KBPS: u16 = 1;
    /// Rates in packets/s, bursts in packets.
    pub const PKTPS: u16 = 2;
    /// The bands' `burst_size` applies.
    pub const BURST: u16 = 4;
    /// Keep statistics (rvs always does).
    pub const STATS: u16 = 8;
    /// Every defined bit.
    pub const ALL: u16 = KBPS | PKTPS | BURST | STATS;
}

/// What a band does to a frame above its rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BandKind {
    /// OFPMBT_DROP: drop the frame.
    Drop,
    /// OFPMBT_DSCP_REMARK: raise the DSCP drop precedence by
    /// `prec_level` (saturating at 3).
    DscpRemark {
        /// Drop precedence levels added.
        prec_level: u8,
    },
}

/// One band.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Band {
    /// What it does.
    pub kind: BandKind,
    /// Rate above which it applies (kbit/s or packets/s).
    pub rate: u32,
    /// Bucket depth (kbit or packets); 0 without the BURST flag.
    pub burst_size: u32,
}

/// One meter's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MeterSpec {
    /// Meter id, 1..=[`OFPM_MAX`].
    pub id: u32,
    /// [`flags`] bits.
    pub flags: u16,
    /// Bands, in the order given.
    pub bands: Vec<Band>,
}

/// Why a meter configuration is refused; each maps to an OpenFlow
/// METER_MOD_FAILED code ([`MeterError::code`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MeterError {
    /// The id is 0 or above OFPM_MAX (INVALID_METER).
    InvalidMeter(u32),
    /// Unknown flag bits, or both kbps and pktps (BAD_FLAGS).
    BadFlags(u16),
    /// A band's rate is 0 (BAD_RATE).
    BadRate,
    /// A burst size without the BURST flag (BAD_BURST).
    BadBurst,
    /// A band type rvs does not implement (BAD_BAND).
    BadBand(u16),
    /// A dscp_remark band with prec_level 0 (BAD_BAND_VALUE).
    BadBandValue,
    /// No bands, or more than [`MAX_BANDS`] (OUT_OF_BANDS).
    OutOfBands(usize),
}

/// METER_MOD_FAILED codes (`ofp_meter_mod_failed_code`).
pub mod code {
    #![allow(missing_docs)]
    pub const UNKNOWN: u16 = 0;
    pub const METER_EXISTS: u16 = 1;
    pub const INVALID_METER: u16 = 2;
    pub const UNKNOWN_METER: u16 = 3;
    pub const BAD_COMMAND: u16 = 4;
    pub const BAD_FLAGS: u16 = 5;
    pub const BAD_RATE: u16 = 6;
    pub const BAD_BURST: u16 = 7;
    pub const BAD_BAND: u16 = 8;
    pub const BAD_BAND_VALUE: u16 = 9;
    pub const OUT_OF_METERS: u16 = 10;
    pub const OUT_OF_BANDS: u16 = 11;
}

impl MeterError {
    /// The METER_MOD_FAILED code.
    pub fn code(&self) -> u16 {
        match self {
            MeterError::InvalidMeter(_) => code::INVALID_METER,
            MeterError::BadFlags(_) => code::BAD_FLAGS,
            MeterError::BadRate => code::BAD_RATE,
            MeterError::BadBurst => code::BAD_BURST,
            MeterError::BadBand(_) => code::BAD_BAND,
            MeterError::BadBandValue => code::BAD_BAND_VALUE,
            MeterError::OutOfBands(_) => code::OUT_OF_BANDS,
        }
    }
}

impl fmt::Display for MeterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeterError::InvalidMeter(id) => {
                write!(f, "meter id {id} is invalid (1 to {OFPM_MAX})")
            }
            MeterError::BadFlags(x) => write!(
                f,
                "meter flags {x:#x} are invalid (kbps or pktps, burst, stats)"
            ),
            MeterError::BadRate => write!(f, "a band's rate must be above 0"),
            MeterError::BadBurst => write!(f, "burst_size needs the burst flag"),
            MeterError::BadBand(t) => {
                write!(f, "band type {t} is not supported (drop, dscp_remark)")
            }
            MeterError::BadBandValue => write!(f, "dscp_remark needs prec_level 1 or more"),
            MeterError::OutOfBands(n) => {
                write!(f, "a meter has 1 to {MAX_BANDS} bands, not {n}")
            }
        }
    }
}

impl std::error::Error for MeterError {}

impl MeterSpec {
    /// True when rates count packets (else kbit).
    pub fn pktps(&self) -> bool {
        self.flags & flags::PKTPS != 0
    }

    /// Checks OpenFlow's rules (see the module docs).
    pub fn validate(&self) -> Result<(), MeterError> {
        if self.id == 0 || self.id > OFPM_MAX {
            return Err(MeterError::InvalidMeter(self.id));
        }
        let both = flags::KBPS | flags::PKTPS;
        if self.flags & !flags::ALL != 0 || self.flags & both == both {
            return Err(MeterError::BadFlags(self.flags));
        }
        if self.bands.is_empty() || self.bands.len() > MAX_BANDS {
            return Err(MeterError::OutOfBands(self.bands.len()));
        }
        for b in &self.bands {
            if b.rate == 0 {
                return Err(MeterError::BadRate);
            }
            if b.burst_size != 0 && self.flags & flags::BURST == 0 {
                return Err(MeterError::BadBurst);
            }
            if b.kind == (BandKind::DscpRemark { prec_level: 0 }) {
                return Err(MeterError::BadBandValue);
            }
        }
        Ok(())
    }

    /// The spec with kbps set when neither unit is (ovs-ofctl's default).
    pub fn normalized(mut self) -> MeterSpec {
        if self.flags & (flags::KBPS | flags::PKTPS) == 0 {
            self.flags |= flags::KBPS;
        }
        self
    }
}

/// Writes the flag words (`kbps,burst,stats`), each followed by `sep`.
pub fn fmt_flags(flags_: u16, sep: char) -> String {
    let mut s = String::new();
    for (bit, name) in [
        (flags::KBPS, "kbps"),
        (flags::PKTPS, "pktps"),
        (flags::BURST, "burst"),
        (flags::STATS, "stats"),
    ] {
        if flags_ & bit != 0 {
            s.push_str(name);
            s.push(sep);
        }
    }
    s
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            BandKind::Drop => write!(f, "type=drop,rate={}", self.rate)?,
            BandKind::DscpRemark { .. } => write!(f, "type=dscp_remark,rate={}", self.rate)?,
        }
        if self.burst_size != 0 {
            write!(f, ",burst_size={}", self.burst_size)?;
        }
        if let BandKind::DscpRemark { prec_level } = self.kind {
            write!(f, ",prec_level={prec_level}")?;
        }
        Ok(())
    }
}

impl fmt::Display for MeterSpec {
    /// ovs-ofctl's input syntax; bands separated by a space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "meter={},{}bands=", self.id, fmt_flags(self.flags, ','))?;
        for (i, b) in self.bands.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b}")?;
        }
        Ok(())
    }
}

fn num(v: &str, what: &str) -> Result<u32, String> {
    let r = match v.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => v.parse(),
    };
    r.map_err(|_| format!("bad {what} value \"{v}\": expected a number"))
}

/// Parses a meter id as `meter=` takes it: a number or `all`.
pub fn parse_meter_id(v: &str) -> Result<u32, String> {
    if v.eq_ignore_ascii_case("all") {
        Ok(OFPM_ALL)
    } else {
        num(v, "meter")
    }
}

/// Splits `s` on commas and spaces, skipping empty words.
fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', ' ', '\t', '\n'])
        .map(str::trim)
        .filter(|w| !w.is_empty())
}

/// Parses ovs-ofctl's meter syntax: `meter=ID`, the flag words `kbps`,
/// `pktps`, `burst`, `stats`, then `bands=` and bands each starting with
/// `type=drop|dscp_remark` followed by `rate=N`, `burst_size=N`,
/// `prec_level=N`. The result is normalized (kbps when no unit is given)
/// and validated.
pub fn parse_meter(s: &str) -> Result<MeterSpec, String> {
    let (head, bands) = match s.find("bands=") {
        Some(i) => (&s[..i], Some(&s[i + "bands=".len()..])),
        None => (s, None),
    };
    let mut id = None;
    let mut fl = 0u16;
    for w in words(head) {
        let (k, v) = match w.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (w, None),
        };
        match (k, v) {
            ("meter", Some(v)) => id = Some(parse_meter_id(v)?),
            ("kbps", None) => fl |= flags::KBPS,
            ("pktps", None) => fl |= flags::PKTPS,
            ("burst", None) => fl |= flags::BURST,
            ("stats", None) => fl |= flags::STATS,
            _ => {
                return Err(format!(
                    "unknown meter setting \"{w}\" (meter=ID, kbps, pktps, burst, stats, bands=...)"
                ))
            }
        }
    }
    let id = id.ok_or("a meter needs meter=ID")?;
    let mut out: Vec<Band> = Vec::new();
    // Type, rate, burst, prec_level of the band being read.
    let mut cur: Option<(Option<u16>, u32, u32, Option<u8>)> = None;
    let finish = |cur: Option<(Option<u16>, u32, u32, Option<u8>)>,
                  out: &mut Vec<Band>|
     -> Result<(), String> {
        let Some((t, rate, burst_size, prec)) = cur else {
            return Ok(());
        };
        let kind = match t {
            Some(1) => {
                if prec.is_some() {
                    return Err("prec_level applies to dscp_remark bands only".into());
                }
                BandKind::Drop
            }
            Some(2) => BandKind::DscpRemark {
                prec_level: prec.unwrap_or(1),
            },
            _ => return Err("a band needs type=drop or type=dscp_remark".into()),
        };
        out.push(Band {
            kind,
            rate,
            burst_size,
        });
        Ok(())
    };
    for w in bands.into_iter().flat_map(words) {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!("band setting \"{w}\" needs a value"));
        };
        match k {
            "type" => {
                finish(cur.take(), &mut out)?;
                let t = match v {
                    "drop" => 1,
                    "dscp_remark" => 2,
                    _ => return Err(format!("unknown band type \"{v}\" (drop, dscp_remark)")),
                };
                cur = Some((Some(t), 0, 0, None));
            }
            "rate" | "burst_size" | "prec_level" => {
                let c = cur.get_or_insert((None, 0, 0, None));
                let n = num(v, k)?;
                match k {
                    "rate" => c.1 = n,
                    "burst_size" => c.2 = n,
                    _ => {
                        c.3 =
                            Some(u8::try_from(n).map_err(|_| {
                                format!("prec_level {n} is out of range (1 to 255)")
                            })?)
                    }
                }
            }
            _ => {
                return Err(format!(
                    "unknown band setting \"{k}\" (type, rate, burst_size, prec_level)"
                ))
            }
        }
    }
    finish(cur.take(), &mut out)?;
    let m = MeterSpec {
        id,
        flags: fl,
        bands: out,
    }
    .normalized();
    m.validate().map_err(|e| e.to_string())?;
    Ok(m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may panic.
mod tests {
    use super::*;

    #[test]
    fn parses_ovs_ofctl_examples() {
        let m =
            parse_meter("meter=1,kbps,burst,bands=type=drop,rate=10000,burst_size=1000").unwrap();
        assert_eq!(
            m,
            MeterSpec {
                id: 1,
                flags: flags::KBPS | flags::BURST,
                bands: vec![Band {
                    kind: BandKind::Drop,
                    rate: 10000,
                    burst_size: 1000
                }]
            }
        );
        let m = parse_meter(
            "meter=7 pktps stats bands=type=drop rate=10000 type=dscp_remark,rate=5000,prec_level=2",
        )
        .unwrap();
        assert_eq!(m.flags, flags::PKTPS | flags::STATS);
        assert_eq!(m.bands.len(), 2);
        assert_eq!(m.bands[1].kind, BandKind::DscpRemark { prec_level: 2 });
        // No unit: kbps.
        let m = parse_meter("meter=2,bands=type=drop,rate=5").unwrap();
        assert_eq!(m.flags, flags::KBPS);
    }

    #[test]
    fn round_trips() {
        for s in [
            "meter=1,kbps,burst,bands=type=drop,rate=10000,burst_size=1000",
            "meter=4294901760,pktps,stats,bands=type=drop,rate=1 type=dscp_remark,rate=5,prec_level=1",
        ] {
            let m = parse_meter(s).unwrap();
            assert_eq!(m.to_string(), s);
            assert_eq!(parse_meter(&m.to_string()).unwrap(), m);
        }
    }

    #[test]
    fn rejects_what_openflow_rejects() {
        let e = |s: &str| parse_meter(s).unwrap_err();
        assert!(e("meter=0,bands=type=drop,rate=1").contains("invalid"));
        assert!(e("meter=1,kbps,pktps,bands=type=drop,rate=1").contains("flags"));
        assert!(e("meter=1,bands=type=drop,rate=0").contains("rate"));
        assert!(e("meter=1,bands=type=drop,rate=1,burst_size=3").contains("burst"));
        assert!(e("meter=1,bands=type=foo,rate=1").contains("band type"));
        assert!(e("meter=1,kbps").contains("bands"));
        assert!(e("bands=type=drop,rate=1").contains("meter=ID"));
        assert!(e("meter=1,fast,bands=type=drop,rate=1").contains("unknown"));
        let spec = MeterSpec {
            id: 1,
            flags: flags::KBPS,
            bands: vec![
                Band {
                    kind: BandKind::Drop,
                    rate: 1,
                    burst_size: 0
                };
                9
            ],
        };
        assert_eq!(spec.validate().unwrap_err().code(), code::OUT_OF_BANDS);
    }
}
