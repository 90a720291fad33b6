//! The per-source and per-KME parts of `qgw status` (docs/protocol.md §6.3): each hybrid peer's
//! QKD sources with their KME and last result, and each KME's client counters under its name.

use serde::{Deserialize, Serialize};

use super::status::QkdStatus;

/// One QKD source of a hybrid peer (`qkd.sources`, or the one source of the single form).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// The KME of this site it goes through (`kme` with the single-KME form).
    pub kme: String,
    /// The peer's SAE ID behind it.
    pub peer_sae_id: String,
    /// Its last answer: `delivered`, `unavailable` or `not_found` (`None` before the first).
    pub last: Option<String>,
    /// Answers with key material.
    pub delivered: u64,
    /// Failed answers, and requests that got no answer in time.
    pub failed: u64,
}

/// One KME of this site: its name and its client's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmeStatus {
    /// `qkd.kmes[].name` (`kme` with the single-KME form).
    pub name: String,
    /// Its client's counters.
    #[serde(flatten)]
    pub client: QkdStatus,
}

/// The text lines of a peer's sources.
pub(super) fn render(sources: &[SourceStatus]) -> String {
    let mut s = String::new();
    for (n, src) in sources.iter().enumerate() {
        s += &format!(
            "  qkd source {n}: kme {}, peer SAE {}, last {} ({} delivered, {} failed)\n",
            src.kme,
            src.peer_sae_id,
            src.last.as_deref().unwrap_or("-"),
            src.delivered,
            src.failed
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_render_with_their_kme_and_last_result_and_round_trip_as_json() {
        let sources = vec![
            SourceStatus {
                kme: "east".into(),
                peer_sae_id: "SAE_H1".into(),
                last: Some("delivered".into()),
                delivered: 4,
                failed: 0,
            },
            SourceStatus {
                kme: "west".into(),
                peer_sae_id: "SAE_H2".into(),
                last: Some("unavailable".into()),
                delivered: 1,
                failed: 3,
            },
        ];
        let text = render(&sources);
        assert_eq!(
            text,
            "  qkd source 0: kme east, peer SAE SAE_H1, last delivered (4 delivered, 0 failed)\n  \
             qkd source 1: kme west, peer SAE SAE_H2, last unavailable (1 delivered, 3 failed)\n"
        );
        let json = serde_json::to_string(&sources).expect("json");
        let back: Vec<SourceStatus> = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, sources);
        let kme = KmeStatus {
            name: "east".into(),
            client: QkdStatus {
                requests: 2,
                ..QkdStatus::default()
            },
        };
        let json = serde_json::to_value(&kme).expect("json");
        assert_eq!(
            (json["name"].as_str(), json["requests"].as_u64()),
            (Some("east"), Some(2))
        );
    }
}
