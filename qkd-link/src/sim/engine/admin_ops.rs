//! Fault injection and inspection on the engine, used by the admin API and by tests: link down
//! or QBER above threshold (no new key), KME or trusted node down, slow replies (reference §9).
//! The state shows per link its stock, bits consumed and keys relayed, per node its relay count.

use std::time::Instant;

use serde_json::{Value, json};

use super::{Engine, EngineStats};
use crate::ids::SaeId;

impl Engine {
    /// Index of a KME by ID.
    pub fn kme_index(&self, id: &SaeId) -> Option<usize> {
        self.kmes.iter().position(|k| &k.id == id)
    }

    /// Whether KME `kme` is set down.
    pub fn kme_is_down(&self, kme: usize) -> bool {
        self.kmes.get(kme).is_some_and(|k| k.down)
    }

    /// Counters since start.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Changes a KME's faults; returns its index.
    pub fn set_kme(
        &mut self,
        id: &SaeId,
        down: Option<bool>,
        extra_latency_ms: Option<u64>,
    ) -> Result<usize, String> {
        let idx = self
            .kme_index(id)
            .ok_or_else(|| format!("unknown KME {id}"))?;
        if let Some(ms) = extra_latency_ms
            && ms > 600_000
        {
            return Err("extra_latency_ms must be at most 600000".into());
        }
        let k = &mut self.kmes[idx];
        if let Some(d) = down {
            k.down = d;
        }
        if let Some(ms) = extra_latency_ms {
            k.extra_latency_ms = ms;
        }
        Ok(idx)
    }

    /// Changes a link's faults. Production up to `now` is accounted under the old state first.
    pub fn set_link(
        &mut self,
        now: Instant,
        a: &SaeId,
        b: &SaeId,
        down: Option<bool>,
        qber: Option<f64>,
    ) -> Result<(), String> {
        let ia = self
            .kme_index(a)
            .ok_or_else(|| format!("unknown KME {a}"))?;
        let ib = self
            .kme_index(b)
            .ok_or_else(|| format!("unknown KME {b}"))?;
        if let Some(q) = qber
            && !(0.0..=0.5).contains(&q)
        {
            return Err("qber must lie in 0..=0.5".into());
        }
        let l = self
            .links
            .iter_mut()
            .find(|l| l.ends.contains(&ia) && l.ends.contains(&ib) && ia != ib)
            .ok_or_else(|| format!("no link between {a} and {b}"))?;
        l.link.advance(now);
        if let Some(d) = down {
            l.link.set_down(d);
        }
        if let Some(q) = qber {
            l.link.set_qber(q);
        }
        Ok(())
    }

    /// A JSON view of every KME and link (no key material, no key IDs).
    pub fn state(&mut self, now: Instant) -> Value {
        let kmes: Vec<Value> = self
            .kmes
            .iter()
            .map(|k| {
                json!({
                    "id": k.id.as_str(),
                    "saes": k.saes.iter().map(SaeId::as_str).collect::<Vec<_>>(),
                    "down": k.down,
                    "latency_ms": {"min": k.latency.min, "max": k.latency.max},
                    "extra_latency_ms": k.extra_latency_ms,
                    "trusted_node": k.trusted,
                    "relayed_keys": k.relayed,
                })
            })
            .collect();
        let key_size = u64::from(self.limits.key_size);
        let mut links = Vec::new();
        for l in &mut self.links {
            l.link.advance(now);
            let (qber, threshold) = l.link.qber();
            links.push(json!({
                "kmes": [self.kmes[l.ends[0]].id.as_str(), self.kmes[l.ends[1]].id.as_str()],
                "secret_key_rate_bps": l.link.rate_bps(),
                "down": l.link.is_down(),
                "generating": l.link.generating(),
                "qber": qber,
                "qber_threshold": threshold,
                "stored_key_count": l.link.available_bits() / key_size,
                "pending_key_bits": l.link.pending_bits(),
                "max_key_count": l.link.capacity_bits() / key_size,
                "produced_bits": l.link.produced_bits(),
                "consumed_bits": l.link.consumed_bits(),
                "keys_relayed": l.keys_relayed,
                "length_km": l.length_km,
                "relay_latency_ms": u64::try_from(l.relay_latency.as_millis()).unwrap_or(u64::MAX),
            }));
        }
        json!({ "kmes": kmes, "links": links, "pending_keys": self.pending.len(), "stats": self.stats })
    }
}
