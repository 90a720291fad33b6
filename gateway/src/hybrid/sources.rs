//! Several QKD sources per peer (docs/protocol.md §6.3): which sources an epoch needs
//! (`qkd.require`), the index that tags each key ID in the Init (§5.1), and what a set of
//! per-source KME answers yields under the peer's policy. keymix takes every delivered source's
//! key IDs and bytes, concatenated in source order, as its one QKD input: the epoch is secret if
//! any one of them is (§6.3, the combiner argument of §9.1).

use keymix::{QkdMaterial, SecretVec};

use super::{QkdFailure, QkdPolicy, QkdResult};

/// Most QKD sources a peer may name (`qkd.sources`; the Init's source index is 0..=3).
pub const MAX_SOURCES: usize = 4;

/// Most KMEs a site may name in the top-level `qkd.kmes` (each is one mutual-TLS client).
pub const MAX_KMES: usize = 16;

/// The position of a source in the peer's `qkd.sources` (the same order at both gateways), as
/// the Init tags the key IDs it delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceIndex(u8);

impl SourceIndex {
    /// The first (with one source, the only) source.
    pub const FIRST: Self = Self(0);

    /// The index `i`, if it is below [`MAX_SOURCES`].
    pub fn new(i: usize) -> Option<Self> {
        u8::try_from(i).ok().filter(|_| i < MAX_SOURCES).map(Self)
    }

    /// As a position in the peer's source list.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }

    /// The wire byte (§5.1).
    pub fn byte(self) -> u8 {
        self.0
    }
}

/// `qkd.require` (§6.3): how many of a peer's sources an epoch needs under `required`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Require {
    /// Every source must deliver (fail closed; the default).
    #[default]
    All,
    /// At least one source must deliver; every one that did is mixed.
    Any,
}

impl Require {
    /// `all` or `any` (status).
    pub fn label(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Any => "any",
        }
    }
}

/// A peer's QKD sources as its state machine sees them: how many, and which must deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QkdSources {
    /// Sources in `qkd.sources` (1 for the single-KME form).
    pub count: usize,
    /// `qkd.require`.
    pub require: Require,
}

impl Default for QkdSources {
    fn default() -> Self {
        Self {
            count: 1,
            require: Require::All,
        }
    }
}

impl QkdSources {
    /// The sources, in order.
    pub fn indices(self) -> impl Iterator<Item = SourceIndex> {
        (0..self.count.min(MAX_SOURCES)).filter_map(SourceIndex::new)
    }

    /// Whether an Init whose key IDs come from `named` (distinct source indices) is acceptable to
    /// a slave with `policy` (§6.2 step 3).
    pub fn admits(self, policy: QkdPolicy, named: usize) -> bool {
        match policy {
            QkdPolicy::Off => named == 0,
            QkdPolicy::Preferred => named <= self.count,
            QkdPolicy::Required => match self.require {
                Require::All => named == self.count,
                Require::Any => (1..=self.count).contains(&named),
            },
        }
    }

    /// The master's decision once every source answered or the deadline passed (§6.1 step 2):
    /// the material to mix (every delivered source's, in source order) with the source of each
    /// of its key IDs, `Ok(None)` for an epoch without QKD (only under `preferred`), or `Err`
    /// when the policy forbids an epoch.
    pub fn decide(
        self,
        policy: QkdPolicy,
        answers: Vec<(SourceIndex, QkdResult)>,
    ) -> Result<Option<(Vec<SourceIndex>, QkdMaterial)>, QkdFailure> {
        let total = answers.len();
        let mut delivered = Vec::new();
        let mut failure = QkdFailure::Unavailable;
        for (source, result) in answers {
            match result {
                Ok(m) => delivered.push((source, m)),
                Err(e) => failure = e,
            }
        }
        let enough = match (policy, self.require) {
            (QkdPolicy::Required, Require::All) => {
                delivered.len() == self.count && total == self.count
            }
            _ => !delivered.is_empty(),
        };
        if !enough {
            return match policy {
                QkdPolicy::Preferred if delivered.is_empty() => Ok(None),
                _ => Err(failure),
            };
        }
        delivered.sort_by_key(|(source, _)| *source);
        let tags = (delivered.iter())
            .flat_map(|(s, m)| std::iter::repeat_n(*s, m.key_ids().len()))
            .collect();
        let material = concat(delivered.into_iter().map(|(_, m)| m).collect())?;
        Ok(Some((tags, material)))
    }
}

/// Joins several sources' material into keymix's one QKD input: key IDs and bytes in the same
/// order. One part is returned as it is; a total keymix refuses (over 8192 bits) is no key.
pub fn concat(mut parts: Vec<QkdMaterial>) -> Result<QkdMaterial, QkdFailure> {
    if parts.len() == 1 {
        return parts.pop().ok_or(QkdFailure::Unavailable);
    }
    let ids = parts
        .iter()
        .flat_map(|m| m.key_ids().iter().copied())
        .collect();
    let len = parts.iter().map(|m| m.key().len()).sum();
    // Exactly the capacity needed: no reallocation leaves a copy of key bytes behind.
    let mut bytes = Vec::with_capacity(len);
    for m in &parts {
        bytes.extend_from_slice(m.key().expose());
    }
    QkdMaterial::new(ids, SecretVec::new(bytes)).map_err(|_| QkdFailure::Unavailable)
}
