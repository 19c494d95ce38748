//! `Match`: a value and a mask over [`FlowKey`].
//!
//! # Invariants
//! `key & mask == key` always holds (constructors mask the value), so two
//! matches that select the same packets compare equal.

use crate::key::FlowKey;

/// A flow match: which bits of which fields must equal which values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Match {
    /// Values; zero wherever `mask` is zero.
    key: FlowKey,
    /// One bits are compared, zero bits are wildcarded.
    mask: FlowKey,
}

impl Match {
    /// Matches every packet.
    pub const CATCHALL: Match = Match {
        key: FlowKey::ZERO,
        mask: FlowKey::ZERO,
    };

    /// Builds a match, clearing value bits the mask wildcards.
    pub fn new(key: FlowKey, mask: FlowKey) -> Match {
        Match {
            key: key.masked(&mask),
            mask,
        }
    }

    /// The (masked) values.
    pub fn key(&self) -> &FlowKey {
        &self.key
    }

    /// The mask.
    pub fn mask(&self) -> &FlowKey {
        &self.mask
    }

    /// True if `pkt` has the matched values in every masked bit.
    #[inline]
    pub fn matches(&self, pkt: &FlowKey) -> bool {
        pkt.words()
            .iter()
            .zip(self.mask.words())
            .zip(self.key.words())
            .all(|((p, m), k)| p & m == *k)
    }

    /// True if every packet `self` matches is also matched by `filter`
    /// (OpenFlow "loose" matching for `del-flows`/`mod-flows`/`dump-flows`):
    /// `filter` wildcards at least what `self` wildcards, and agrees on the
    /// bits it does compare.
    pub fn is_covered_by(&self, filter: &Match) -> bool {
        self.mask
            .words()
            .iter()
            .zip(filter.mask.words())
            .zip(self.key.words().iter().zip(filter.key.words()))
            .all(|((sm, fm), (sk, fk))| fm & !sm == 0 && sk & fm == *fk)
    }
}
