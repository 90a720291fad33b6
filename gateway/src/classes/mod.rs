//! Clinical traffic classes at the tunnel's egress: which class an inner packet belongs to
//! (`rules`), the per-peer egress scheduler that honours them while the inner flows are still
//! visible (`scheduler`, `flows`, `codel`, `bucket`), ECN between the inner and outer headers
//! (`ecn`, RFC 6040) and what each class did (`stats`). The design, and why it lives in qgw's
//! encrypt path rather than in a kernel qdisc, is in docs/gateway-decisions.md, "Traffic classes".
//!
//! The four classes are fixed, in priority order; an administrator's `classes:` rules only
//! decide which class traffic falls into.

pub mod bucket;
pub mod codel;
pub mod delay;
pub mod ecn;
pub mod flows;
pub mod rules;
pub mod scheduler;
pub mod stats;
pub mod store;

use std::fmt;

/// One of the four traffic classes, in priority order (the scheduler serves a lower index first
/// or with a larger share).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClassId {
    /// ICU vital signs and alarms (MQTT/MQTTS, HL7 MLLP, small EF/CS5 traffic): strict priority,
    /// up to a cap.
    Telemonitoring,
    /// Teleconsultation voice and video (SIP, RTP, AF4x): the largest weighted share.
    Telemedicine,
    /// DICOM studies: bulk, a weighted share.
    Imaging,
    /// Everything else: the smallest weighted share.
    Default,
}

impl ClassId {
    /// Every class, in priority order.
    pub const ALL: [ClassId; 4] = [
        ClassId::Telemonitoring,
        ClassId::Telemedicine,
        ClassId::Imaging,
        ClassId::Default,
    ];

    /// Its position in [`ClassId::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Its name in the configuration, `qgw status`, metrics (`class` label) and logs.
    pub const fn name(self) -> &'static str {
        match self {
            ClassId::Telemonitoring => "telemonitoring",
            ClassId::Telemedicine => "telemedicine",
            ClassId::Imaging => "imaging",
            ClassId::Default => "default",
        }
    }

    /// The class named `name` in a configuration.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for ClassId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A peer's egress settings (`egress_rate`, `outer_dscp` in its configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerEgress {
    /// The WAN rate toward the peer in bits per second, counting outer (wire) bytes; `Some`
    /// turns class scheduling on for the peer, `None` leaves its data path as without classes.
    pub rate_bps: Option<u64>,
    /// Mark the outer UDP header with the class's DSCP (off by default: it tells an observer
    /// which class a packet is).
    pub outer_dscp: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_priority_order() {
        for (i, c) in ClassId::ALL.into_iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(ClassId::from_name(c.name()), Some(c));
        }
        assert_eq!(ClassId::from_name("video"), None);
    }
}
