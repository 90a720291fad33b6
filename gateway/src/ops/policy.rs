//! The per-peer policy state exported as `qgw_peer_policy_state{state}` and audited on change
//! (docs/design.md §"QKD outage policy").
//!
//! | state | meaning | traffic |
//! |---|---|---|
//! | `normal` | the keys in force use every configured source | flows |
//! | `fallback` | QKD is configured (`preferred`) but the epoch in force was made without it | flows, protected by X25519 + ML-KEM |
//! | `fail_closed` | no session may send (before the first handshake, or keys expired while no new epoch could be made, e.g. `required` with the KME down) | refused, never sent in clear |

use serde::{Deserialize, Serialize};

/// Where a peer stands with respect to its key policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyState {
    /// Keys from every configured source.
    Normal,
    /// QKD configured but the keys in force lack it.
    Fallback,
    /// No usable keys: traffic to this peer is dropped.
    FailClosed,
}

impl PolicyState {
    /// Every state, in the order the metrics list them.
    pub const ALL: [Self; 3] = [Self::Normal, Self::Fallback, Self::FailClosed];

    /// The metrics and audit label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Fallback => "fallback",
            Self::FailClosed => "fail_closed",
        }
    }

    /// Classifies a peer: `usable` = a session that may send exists; `qkd_configured` = its
    /// policy asks for QKD; `current_has_qkd` = whether the epoch in force used QKD (`None`: no
    /// hybrid epoch, i.e. a plain WireGuard peer).
    pub fn classify(usable: bool, qkd_configured: bool, current_has_qkd: Option<bool>) -> Self {
        match (usable, qkd_configured, current_has_qkd) {
            (false, _, _) => Self::FailClosed,
            (true, true, Some(false)) => Self::Fallback,
            _ => Self::Normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PolicyState::{self, *};

    #[test]
    fn no_usable_session_is_fail_closed_whatever_the_sources() {
        for qkd in [false, true] {
            for has in [None, Some(false), Some(true)] {
                assert_eq!(PolicyState::classify(false, qkd, has), FailClosed);
            }
        }
    }

    #[test]
    fn an_epoch_without_qkd_is_fallback_only_when_qkd_is_configured() {
        assert_eq!(PolicyState::classify(true, true, Some(false)), Fallback);
        assert_eq!(PolicyState::classify(true, false, Some(false)), Normal);
        assert_eq!(PolicyState::classify(true, true, Some(true)), Normal);
        assert_eq!(PolicyState::classify(true, false, None), Normal);
    }

    #[test]
    fn labels_are_the_documented_ones() {
        let labels: Vec<_> = PolicyState::ALL.iter().map(|s| s.label()).collect();
        assert_eq!(labels, ["normal", "fallback", "fail_closed"]);
    }
}
