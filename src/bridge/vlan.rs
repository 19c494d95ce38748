//! Per-port VLAN configuration and the 802.1Q rules of the NORMAL pipeline.
//!
//! # What?
//! [`VlanConfig`] is what a user sets on a port (`tag`, `trunks`,
//! `vlan_mode`), with Open vSwitch's defaults and meaning:
//! - no `vlan_mode`, no `tag`: a trunk carrying every VLAN (untagged frames
//!   are VLAN 0);
//! - no `vlan_mode`, a `tag`: an access port in that VLAN;
//! - `trunk`: tagged frames of the `trunks` VLANs (empty = all), and
//!   untagged frames as VLAN 0 only if 0 is among the trunks (or trunks is
//!   empty);
//! - `native-tagged` / `native-untagged`: a trunk whose untagged frames
//!   belong to the native VLAN `tag`, which is always carried; VLAN 0 never
//!   is. On egress, `native-untagged` sends the native VLAN untagged.
//!
//! [`PortVlan`] is the compiled form the packet path uses, with OVS's
//! rules from `ofproto/ofproto-dpif-xlate.c`: [`PortVlan::input_vid_is_valid`],
//! [`PortVlan::input_translate`] (`xvlan_input_translate`),
//! [`PortVlan::includes_vlan`] (`xbundle_includes_vlan`) and
//! [`PortVlan::egress`] (`xvlan_output_translate` + `xvlan_put`).
//!
//! # Design
//! The effective trunk set is a 4096-bit bitmap (`None` = all VLANs), built
//! once per configuration change as `bundle_set` in
//! `ofproto/ofproto-dpif.c` does: for native modes the native VLAN is
//! forced in and VLAN 0 forced out.
//!
//! # Invariants
//! A `PortVlan` is only built from a `VlanConfig` that passed
//! [`VlanConfig::validate`]; for access and native modes its `vlan` is then
//! in 1..=4094.
//!
//! # Thread-safety
//! Plain data.
//!
//! # Limits
//! Validation is stricter than OVS where OVS silently ignores or
//! reinterprets a setting (it only logs a warning): a tag on a `trunk`
//! port, trunks on an access port, an access or native mode without a tag,
//! and tags 0 and 4095 are rejected with a [`VlanError`]. `dot1q-tunnel`
//! (QinQ) is not supported.

use std::fmt;
use std::str::FromStr;

use flowtable::Vid;

/// Highest VLAN id a VLAN bitmap holds (802.1Q: 0–4095; configured trunks
/// stop at 4094, 4095 being reserved).
pub const TRUNK_VID_MAX: u16 = 4095;

/// A port's VLAN mode (OVS `Port.vlan_mode`, without `dot1q-tunnel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VlanMode {
    /// Untagged frames only, all in the `tag` VLAN.
    Access,
    /// Tagged frames of the `trunks` VLANs; untagged frames are VLAN 0.
    #[default]
    Trunk,
    /// Like trunk; untagged frames belong to `tag`; `tag` leaves tagged.
    NativeTagged,
    /// Like trunk; untagged frames belong to `tag`; `tag` leaves untagged.
    NativeUntagged,
}

impl VlanMode {
    /// The OVS spelling (`native-untagged`…).
    pub fn as_str(self) -> &'static str {
        match self {
            VlanMode::Access => "access",
            VlanMode::Trunk => "trunk",
            VlanMode::NativeTagged => "native-tagged",
            VlanMode::NativeUntagged => "native-untagged",
        }
    }
}

impl fmt::Display for VlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VlanMode {
    type Err = VlanError;

    fn from_str(s: &str) -> Result<VlanMode, VlanError> {
        Ok(match s {
            "access" => VlanMode::Access,
            "trunk" => VlanMode::Trunk,
            "native-tagged" => VlanMode::NativeTagged,
            "native-untagged" => VlanMode::NativeUntagged,
            _ => return Err(VlanError::UnknownMode(s.to_owned())),
        })
    }
}

/// Errors in a port's VLAN configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VlanError {
    /// `tag` is not a usable VLAN id.
    #[error("tag {0} is out of range (1-4094)")]
    TagOutOfRange(u16),
    /// A `trunks` entry is not a VLAN id.
    #[error("trunk VLAN {0} is out of range (1-4094, or 0 for untagged frames)")]
    TrunkOutOfRange(u16),
    /// Access and native modes need the VLAN they put untagged frames in.
    #[error("vlan_mode={0} needs a tag")]
    MissingTag(VlanMode),
    /// A trunk port has no VLAN of its own (OVS ignores the tag).
    #[error("a trunk port takes no tag (use vlan_mode=native-tagged or native-untagged)")]
    TagOnTrunk,
    /// An access port carries only its tag (OVS ignores the trunks).
    #[error("an access port takes no trunks (use vlan_mode=native-tagged or native-untagged)")]
    TrunksOnAccess,
    /// Not one of the four mode names.
    #[error("unknown vlan_mode {0:?} (expected access, trunk, native-tagged or native-untagged)")]
    UnknownMode(String),
}

/// A port's VLAN settings, as configured. The default is a trunk carrying
/// every VLAN.
///
/// ```text
/// VlanConfig::new(None, Some(Vid(10)), vec![])?          // access, VLAN 10
/// VlanConfig::new(None, None, vec![Vid(10), Vid(20)])?   // trunk 10,20
/// VlanConfig::new(Some(VlanMode::NativeUntagged), Some(Vid(5)), vec![Vid(10)])?
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct VlanConfig {
    /// The mode, after defaults were applied.
    pub mode: VlanMode,
    /// Access VLAN, or native VLAN of a native-* port; `None` for trunks.
    pub tag: Option<Vid>,
    /// VLANs carried tagged, sorted and without duplicates; empty = all.
    pub trunks: Vec<Vid>,
}

impl VlanConfig {
    /// Builds and validates a configuration with OVS's defaults for a
    /// missing `vlan_mode` (`port_configure` in `vswitchd/bridge.c`): access
    /// if a tag is given, else trunk. Trunks are sorted and deduplicated.
    pub fn new(
        mode: Option<VlanMode>,
        tag: Option<Vid>,
        mut trunks: Vec<Vid>,
    ) -> Result<VlanConfig, VlanError> {
        let mode = mode.unwrap_or(if tag.is_some() {
            VlanMode::Access
        } else {
            VlanMode::Trunk
        });
        trunks.sort_unstable();
        trunks.dedup();
        let cfg = VlanConfig { mode, tag, trunks };
        cfg.validate()?;
        Ok(cfg)
    }

    /// An access port in `tag`.
    pub fn access(tag: Vid) -> Result<VlanConfig, VlanError> {
        VlanConfig::new(Some(VlanMode::Access), Some(tag), Vec::new())
    }

    /// A trunk carrying `trunks` (empty: all VLANs).
    pub fn trunk(trunks: Vec<Vid>) -> Result<VlanConfig, VlanError> {
        VlanConfig::new(Some(VlanMode::Trunk), None, trunks)
    }

    /// Checks ranges and combinations (see the module's Limits).
    pub fn validate(&self) -> Result<(), VlanError> {
        if let Some(t) = self.tag {
            if !(1..=Vid::MAX.0).contains(&t.0) {
                return Err(VlanError::TagOutOfRange(t.0));
            }
        }
        // 4095 is reserved by 802.1Q; 0 stands for untagged frames.
        if let Some(t) = self.trunks.iter().find(|t| t.0 > Vid::MAX.0) {
            return Err(VlanError::TrunkOutOfRange(t.0));
        }
        match self.mode {
            VlanMode::Access => {
                if self.tag.is_none() {
                    return Err(VlanError::MissingTag(self.mode));
                }
                if !self.trunks.is_empty() {
                    return Err(VlanError::TrunksOnAccess);
                }
            }
            VlanMode::Trunk => {
                if self.tag.is_some() {
                    return Err(VlanError::TagOnTrunk);
                }
            }
            VlanMode::NativeTagged | VlanMode::NativeUntagged => {
                if self.tag.is_none() {
                    return Err(VlanError::MissingTag(self.mode));
                }
            }
        }
        Ok(())
    }
}

/// A set of VLAN ids 0..=4095.
#[derive(Clone, PartialEq, Eq)]
struct VlanBitmap([u64; 64]);

impl VlanBitmap {
    #[inline]
    fn contains(&self, vid: u16) -> bool {
        let v = usize::from(vid & 0x0fff);
        self.0[v / 64] & (1 << (v % 64)) != 0
    }

    fn set(&mut self, vid: u16, on: bool) {
        let v = usize::from(vid & 0x0fff);
        if on {
            self.0[v / 64] |= 1 << (v % 64);
        } else {
            self.0[v / 64] &= !(1 << (v % 64));
        }
    }
}

impl fmt::Debug for VlanBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries((0..=TRUNK_VID_MAX).filter(|&v| self.contains(v)))
            .finish()
    }
}

/// How a frame leaves a port: the outer 802.1Q tag it must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EgressVlan {
    /// No tag for the bridge VLAN: pop the outer tag if the frame has one.
    /// (An inner tag of a double-tagged frame stays.)
    Untagged,
    /// Outer tag with this VID: push one, or rewrite the VID of the outer
    /// tag. PCP is the input tag's PCP (0 if the frame arrived untagged).
    /// `Vid(0)` is a priority tag: only when a priority-tagged frame with a
    /// nonzero PCP leaves a trunk in VLAN 0, as OVS's `xvlan_put` does.
    Tagged(Vid),
}

/// A port's VLAN rules, compiled from a valid [`VlanConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortVlan {
    /// The mode.
    mode: VlanMode,
    /// Access or native VLAN (OVS `xbundle->vlan`); 0 for trunks.
    vlan: u16,
    /// Effective trunked VLANs (OVS `xbundle->trunks`); `None` = all.
    trunks: Option<Box<VlanBitmap>>,
}

impl PortVlan {
    /// Compiles `cfg`, which must be valid (checked again here).
    pub fn new(cfg: &VlanConfig) -> Result<PortVlan, VlanError> {
        cfg.validate()?;
        let vlan = match cfg.mode {
            VlanMode::Trunk => 0,
            _ => cfg.tag.map_or(0, |t| t.0),
        };
        let user = if cfg.trunks.is_empty() {
            None
        } else {
            let mut b = VlanBitmap([0; 64]);
            for t in &cfg.trunks {
                b.set(t.0, true);
            }
            Some(b)
        };
        // bundle_set (ofproto-dpif.c): access ports have no trunks; native
        // ports always trunk their native VLAN and never VLAN 0.
        let trunks = match cfg.mode {
            VlanMode::Access => None,
            VlanMode::Trunk => user,
            VlanMode::NativeTagged | VlanMode::NativeUntagged => {
                let mut b = user.unwrap_or(VlanBitmap([u64::MAX; 64]));
                b.set(vlan, true);
                b.set(0, false);
                Some(b)
            }
        };
        Ok(PortVlan {
            mode: cfg.mode,
            vlan,
            trunks: trunks.map(Box::new),
        })
    }

    /// The mode.
    pub fn mode(&self) -> VlanMode {
        self.mode
    }

    /// `xbundle_trunks_vlan`: a non-access port whose trunks include `vid`.
    #[inline]
    fn trunks_vlan(&self, vid: u16) -> bool {
        self.mode != VlanMode::Access && self.trunks.as_ref().is_none_or(|b| b.contains(vid))
    }

    /// `input_vid_is_valid`: may a frame whose outer tag has `vid` (0 if
    /// untagged or priority-tagged) enter this port? Access ports take only
    /// VID 0; native ports take untagged frames and their trunks; trunks
    /// take their trunks (VID 0 included only if trunked).
    #[inline]
    pub fn input_vid_is_valid(&self, vid: u16) -> bool {
        match self.mode {
            VlanMode::Access => vid == 0,
            VlanMode::NativeTagged | VlanMode::NativeUntagged if vid == 0 => true,
            _ => self.trunks_vlan(vid),
        }
    }

    /// `xvlan_input_translate`: the bridge VLAN of a valid input frame whose
    /// outer VID is `vid`.
    #[inline]
    pub fn input_translate(&self, vid: u16) -> u16 {
        match self.mode {
            VlanMode::Access => self.vlan,
            VlanMode::Trunk => vid,
            VlanMode::NativeTagged | VlanMode::NativeUntagged => {
                if vid == 0 {
                    self.vlan
                } else {
                    vid
                }
            }
        }
    }

    /// `xbundle_includes_vlan`: does this port carry bridge VLAN `vlan`?
    /// `inner` is the VID of a second tag (0 if none): access ports take
    /// only single-tagged traffic.
    #[inline]
    pub fn includes_vlan(&self, vlan: u16, inner: u16) -> bool {
        match self.mode {
            VlanMode::Access => vlan == self.vlan && inner == 0,
            _ => self.trunks_vlan(vlan),
        }
    }

    /// `xvlan_output_translate` + `xvlan_put`: the tag a frame in bridge
    /// VLAN `vlan` gets on this port. `pcp` is the input tag's PCP (0 if the
    /// frame arrived untagged): a VLAN 0 frame stays priority-tagged when it
    /// is nonzero.
    #[inline]
    pub fn egress(&self, vlan: u16, pcp: u16) -> EgressVlan {
        let tagged = match self.mode {
            VlanMode::Access => false,
            VlanMode::Trunk | VlanMode::NativeTagged => vlan != 0 || pcp != 0,
            VlanMode::NativeUntagged => vlan != self.vlan && (vlan != 0 || pcp != 0),
        };
        if tagged {
            EgressVlan::Tagged(Vid(vlan))
        } else {
            EgressVlan::Untagged
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn compile(mode: Option<VlanMode>, tag: Option<u16>, trunks: &[u16]) -> PortVlan {
        let cfg =
            VlanConfig::new(mode, tag.map(Vid), trunks.iter().map(|&t| Vid(t)).collect()).unwrap();
        PortVlan::new(&cfg).unwrap()
    }

    /// port_configure (bridge.c): no vlan_mode → access with a tag, trunk
    /// without.
    #[test]
    fn defaults_follow_ovs() {
        let c = VlanConfig::new(None, None, vec![]).unwrap();
        assert_eq!(c, VlanConfig::default());
        assert_eq!(c.mode, VlanMode::Trunk);
        let c = VlanConfig::new(None, Some(Vid(10)), vec![]).unwrap();
        assert_eq!(c.mode, VlanMode::Access);
        let c = VlanConfig::new(None, None, vec![Vid(20), Vid(10), Vid(20)]).unwrap();
        assert_eq!(c.mode, VlanMode::Trunk);
        assert_eq!(c.trunks, vec![Vid(10), Vid(20)]);
    }

    #[test]
    fn validation_errors() {
        use VlanError::*;
        assert_eq!(VlanConfig::access(Vid(0)), Err(TagOutOfRange(0)));
        assert_eq!(VlanConfig::access(Vid(4095)), Err(TagOutOfRange(4095)));
        assert!(VlanConfig::access(Vid(4094)).is_ok());
        assert_eq!(
            VlanConfig::trunk(vec![Vid(4096)]),
            Err(TrunkOutOfRange(4096))
        );
        assert!(VlanConfig::trunk(vec![Vid(0), Vid(4094)]).is_ok());
        assert_eq!(
            VlanConfig::trunk(vec![Vid(4095)]),
            Err(VlanError::TrunkOutOfRange(4095))
        );
        assert_eq!(
            VlanConfig::new(Some(VlanMode::Access), None, vec![]),
            Err(MissingTag(VlanMode::Access))
        );
        assert_eq!(
            VlanConfig::new(Some(VlanMode::NativeUntagged), None, vec![]),
            Err(MissingTag(VlanMode::NativeUntagged))
        );
        assert_eq!(
            VlanConfig::new(Some(VlanMode::Trunk), Some(Vid(5)), vec![]),
            Err(TagOnTrunk)
        );
        assert_eq!(
            VlanConfig::new(None, Some(Vid(5)), vec![Vid(6)]),
            Err(TrunksOnAccess)
        );
        assert_eq!(
            "bogus".parse::<VlanMode>(),
            Err(UnknownMode("bogus".into()))
        );
        for m in [
            VlanMode::Access,
            VlanMode::Trunk,
            VlanMode::NativeTagged,
            VlanMode::NativeUntagged,
        ] {
            assert_eq!(m.as_str().parse::<VlanMode>(), Ok(m));
        }
        assert_eq!(
            MissingTag(VlanMode::NativeTagged).to_string(),
            "vlan_mode=native-tagged needs a tag"
        );
    }

    /// input_vid_is_valid, PORT_VLAN_ACCESS: any nonzero VID is dropped,
    /// even the port's own; VID 0 (priority tag) counts as untagged.
    #[test]
    fn access_ingress_takes_only_untagged() {
        let p = compile(None, Some(10), &[]);
        assert!(p.input_vid_is_valid(0));
        assert!(!p.input_vid_is_valid(10));
        assert!(!p.input_vid_is_valid(11));
        assert_eq!(p.input_translate(0), 10);
        assert!(p.includes_vlan(10, 0));
        assert!(!p.includes_vlan(10, 7));
        assert!(!p.includes_vlan(11, 0));
        assert_eq!(p.egress(10, 5), EgressVlan::Untagged);
    }

    /// input_vid_is_valid, PORT_VLAN_TRUNK via xbundle_trunks_vlan: VID 0
    /// (untagged) is allowed only when trunked or trunks is empty.
    #[test]
    fn trunk_filters_vids() {
        let all = compile(None, None, &[]);
        assert!(all.input_vid_is_valid(0));
        assert!(all.input_vid_is_valid(4095));
        let some = compile(None, None, &[10, 20]);
        assert!(some.input_vid_is_valid(10));
        assert!(!some.input_vid_is_valid(30));
        assert!(!some.input_vid_is_valid(0));
        assert_eq!(some.input_translate(20), 20);
        let with0 = compile(None, None, &[0, 10]);
        assert!(with0.input_vid_is_valid(0));
        assert!(with0.includes_vlan(0, 0));
        // xvlan_put: VLAN 0 leaves untagged unless it had a PCP.
        assert_eq!(all.egress(0, 0), EgressVlan::Untagged);
        assert_eq!(all.egress(0, 3), EgressVlan::Tagged(Vid(0)));
        assert_eq!(all.egress(10, 0), EgressVlan::Tagged(Vid(10)));
    }

    /// bundle_set: native ports trunk their native VLAN even when the
    /// trunks omit it, and never VLAN 0; empty trunks = all but 0.
    #[test]
    fn native_trunk_set_follows_bundle_set() {
        let p = compile(Some(VlanMode::NativeUntagged), Some(5), &[0, 10]);
        assert!(p.includes_vlan(5, 0));
        assert!(p.includes_vlan(10, 0));
        assert!(!p.includes_vlan(0, 0));
        assert!(!p.includes_vlan(11, 0));
        let p = compile(Some(VlanMode::NativeTagged), Some(5), &[]);
        assert!(p.includes_vlan(4000, 0));
        assert!(!p.includes_vlan(0, 0));
    }

    /// input_vid_is_valid + xvlan_input_translate for native modes:
    /// untagged → native VLAN; tagged must be trunked (native included).
    #[test]
    fn native_ingress() {
        for mode in [VlanMode::NativeTagged, VlanMode::NativeUntagged] {
            let p = compile(Some(mode), Some(5), &[10]);
            assert!(p.input_vid_is_valid(0));
            assert_eq!(p.input_translate(0), 5);
            assert!(p.input_vid_is_valid(5));
            assert_eq!(p.input_translate(5), 5);
            assert!(p.input_vid_is_valid(10));
            assert_eq!(p.input_translate(10), 10);
            assert!(!p.input_vid_is_valid(20));
        }
    }

    /// xvlan_output_translate: native-untagged pops the native VLAN,
    /// native-tagged keeps it.
    #[test]
    fn native_egress() {
        let u = compile(Some(VlanMode::NativeUntagged), Some(5), &[10]);
        assert_eq!(u.egress(5, 0), EgressVlan::Untagged);
        assert_eq!(u.egress(10, 0), EgressVlan::Tagged(Vid(10)));
        let t = compile(Some(VlanMode::NativeTagged), Some(5), &[10]);
        assert_eq!(t.egress(5, 0), EgressVlan::Tagged(Vid(5)));
        assert_eq!(t.egress(10, 0), EgressVlan::Tagged(Vid(10)));
    }
}
