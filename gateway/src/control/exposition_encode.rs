//! How the families of [`super`] become an exposition: [`Text`] collects them from a status
//! (names as exported, counters with `_total`), and a `prometheus-client` `Collector`
//! ([`Snapshot`]) hands them to the library's encoder for the format asked for, which writes
//! `# HELP`/`# TYPE`, escapes label values, adds the registry's `interface` label, suffixes
//! counters and accumulates histogram buckets.

use std::borrow::Cow;
use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::collect;
use crate::control::status::{PeerStatus, Status};

/// The exposition formats served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (what `promtool check metrics` lints).
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The format an HTTP `Accept` header asks for: OpenMetrics when it names it (Prometheus
    /// does), else text 0.0.4.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            true => Self::OpenMetrics,
            false => Self::Text,
        }
    }

    /// The answer's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The exposition of `st` in `format`.
pub fn render(st: Status, format: Format) -> String {
    let interface = (Cow::Borrowed("interface"), Cow::Owned(st.interface.clone()));
    let mut registry = Registry::with_labels(std::iter::once(interface));
    registry.register_collector(Box::new(Snapshot(st)));
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail.
    let _ = match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    out
}

/// A published status as a collector of metric families.
#[derive(Debug)]
struct Snapshot(Status);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let mut t = Text::default();
        collect(&mut t, &self.0);
        for family in &t.families {
            family.encode(&mut encoder)?;
        }
        Ok(())
    }
}

/// A sample's value.
#[derive(Clone, Copy, Debug)]
pub(super) enum Value {
    Int(u64),
    Float(f64),
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Self::Int(v as u64)
            }
        }
    )*};
}
int_value!(u8, u32, u64, usize);

impl From<&u64> for Value {
    fn from(v: &u64) -> Self {
        Self::Int(*v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}

/// One sample of a family: its labels after `interface`, and its value.
#[derive(Debug)]
pub(super) enum Sample {
    Point(Vec<(&'static str, String)>, Value),
    /// Labels after `interface`; cumulative `(upper bound in seconds, count)` buckets (the last
    /// one `+Inf`), sum, count.
    Histogram(Vec<(&'static str, String)>, Vec<(f64, u64)>, f64, u64),
}

/// One family: its exposition name (counters with `_total`), type, help and samples.
#[derive(Debug)]
struct Family {
    name: &'static str,
    kind: MetricType,
    help: &'static str,
    samples: Vec<Sample>,
}

impl Family {
    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
        // prometheus-client appends `_total` to a counter's samples itself.
        let name = match self.kind {
            MetricType::Counter => self.name.strip_suffix("_total").unwrap_or(self.name),
            _ => self.name,
        };
        let mut family = encoder.encode_descriptor(name, self.help, None, self.kind)?;
        for sample in &self.samples {
            match sample {
                Sample::Point(labels, value) => {
                    let labels: Vec<(&str, &str)> =
                        labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    let one = family.encode_family(&labels)?;
                    match (self.kind, *value) {
                        (MetricType::Counter, Value::Int(n)) => ConstCounter::new(n).encode(one),
                        (MetricType::Counter, Value::Float(x)) => ConstCounter::new(x).encode(one),
                        (_, Value::Int(n)) => ConstGauge::new(n).encode(one),
                        (_, Value::Float(x)) => ConstGauge::new(x).encode(one),
                    }?;
                }
                Sample::Histogram(labels, cumulative, sum, count) => {
                    let labels: Vec<(&str, &str)> =
                        labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    // The encoder takes each bucket's own count and accumulates.
                    let mut below = 0;
                    let buckets: Vec<(f64, u64)> = (cumulative.iter())
                        .map(|&(le, n)| (le, n.saturating_sub(std::mem::replace(&mut below, n))))
                        .collect();
                    family
                        .encode_family(&labels)?
                        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                            *sum, *count, &buckets, None,
                        )?;
                }
            }
        }
        Ok(())
    }
}

/// The families of one status, in exposition order.
#[derive(Debug, Default)]
pub(super) struct Text {
    families: Vec<Family>,
}

/// A family's name, type and help.
type Declaration = (&'static str, &'static str, &'static str);

impl Text {
    /// Starts family `name` of `kind` (`counter`, `gauge`, `histogram`).
    pub(super) fn family(&mut self, name: &'static str, kind: &str, help: &'static str) {
        let kind = match kind {
            "counter" => MetricType::Counter,
            "histogram" => MetricType::Histogram,
            _ => MetricType::Gauge,
        };
        self.families.push(Family {
            name,
            kind,
            help,
            samples: Vec::new(),
        });
    }

    /// Adds a sample to the family started last; `labels` come after `interface`.
    pub(super) fn sample(&mut self, labels: &[(&'static str, &str)], value: impl Into<Value>) {
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        self.push(Sample::Point(labels, value.into()));
    }

    pub(super) fn push(&mut self, sample: Sample) {
        if let Some(family) = self.families.last_mut() {
            family.samples.push(sample);
        }
    }

    /// A family with one sample per peer.
    pub(super) fn per_peer<V: Into<Value>>(
        &mut self,
        peers: &[&PeerStatus],
        (name, kind, help): Declaration,
        get: impl Fn(&PeerStatus) -> V,
    ) {
        self.family(name, kind, help);
        for p in peers {
            self.sample(&[("peer", &p.name)], get(p));
        }
    }

    /// A family with one sample per peer and map entry, the key labelled `label`.
    pub(super) fn per_peer_map(
        &mut self,
        peers: &[&PeerStatus],
        (name, kind, help): Declaration,
        label: &'static str,
        get: impl Fn(&PeerStatus) -> &std::collections::BTreeMap<String, u64>,
    ) {
        self.family(name, kind, help);
        for p in peers {
            for (k, n) in get(p) {
                self.sample(&[("peer", &p.name), (label, k)], n);
            }
        }
    }
}
