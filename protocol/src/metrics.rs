//! Metrics in Prometheus' text exposition format (version 0.0.4): counters,
//! gauges and histograms kept in memory by the process that serves them
//! (the control plane at `GET /metrics`, the agent on its metrics port).
//! Names are stable (the README lists them); label values are bounded by
//! their callers (route templates, task kinds, statuses), never ids.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

/// The upper bounds (seconds) of every histogram's buckets.
pub const BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 3600.0,
];

/// Labels of a series, as name and value pairs.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Clone)]
enum Series {
    Value(f64),
    Histogram {
        counts: [u64; BUCKETS.len()],
        sum: f64,
        count: u64,
    },
}

#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: Kind,
    series: BTreeMap<Vec<(String, String)>, Series>,
}

/// A set of metric families.
#[derive(Debug, Default)]
pub struct Metrics {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

/// The process's own metrics.
pub fn global() -> &'static Metrics {
    static GLOBAL: OnceLock<Metrics> = OnceLock::new();
    GLOBAL.get_or_init(Metrics::default)
}

impl Metrics {
    fn with(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: Labels<'_>,
        update: impl FnOnce(&mut Series),
        fresh: impl FnOnce() -> Series,
    ) {
        let Ok(mut families) = self.families.lock() else {
            return;
        };
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            series: BTreeMap::new(),
        });
        if family.kind != kind {
            return;
        }
        let key = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        update(family.series.entry(key).or_insert_with(fresh));
    }

    /// Adds `by` to a counter.
    pub fn add(&self, name: &'static str, help: &'static str, labels: Labels<'_>, by: f64) {
        self.with(
            name,
            help,
            Kind::Counter,
            labels,
            |s| {
                if let Series::Value(v) = s {
                    *v += by;
                }
            },
            || Series::Value(0.0),
        );
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, help: &'static str, labels: Labels<'_>) {
        self.add(name, help, labels, 1.0);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, help: &'static str, labels: Labels<'_>, value: f64) {
        self.with(
            name,
            help,
            Kind::Gauge,
            labels,
            |s| *s = Series::Value(value),
            || Series::Value(0.0),
        );
    }

    /// Counts one observation of `seconds` in a histogram.
    pub fn observe(
        &self,
        name: &'static str,
        help: &'static str,
        labels: Labels<'_>,
        seconds: f64,
    ) {
        self.with(
            name,
            help,
            Kind::Histogram,
            labels,
            |s| {
                if let Series::Histogram { counts, sum, count } = s {
                    if let Some(first) = BUCKETS.iter().position(|b| seconds <= *b) {
                        counts[first] += 1;
                    }
                    *sum += seconds;
                    *count += 1;
                }
            },
            || Series::Histogram {
                counts: [0; BUCKETS.len()],
                sum: 0.0,
                count: 0,
            },
        );
    }

    /// A counter's or gauge's value now (0 when it was never set).
    pub fn value(&self, name: &str, labels: Labels<'_>) -> f64 {
        let Ok(families) = self.families.lock() else {
            return 0.0;
        };
        let key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match families.get(name).and_then(|f| f.series.get(&key)) {
            Some(Series::Value(v)) => *v,
            Some(Series::Histogram { count, .. }) => *count as f64,
            None => 0.0,
        }
    }

    /// Every family in the text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(families) = self.families.lock() else {
            return out;
        };
        for (name, family) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
            for (labels, series) in &family.series {
                match series {
                    Series::Value(v) => {
                        let _ = writeln!(out, "{name}{} {}", label_text(labels, None), number(*v));
                    }
                    Series::Histogram { counts, sum, count } => {
                        let mut cumulative = 0;
                        for (bound, n) in BUCKETS.iter().zip(counts) {
                            cumulative += n;
                            let le = number(*bound);
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {cumulative}",
                                label_text(labels, Some(&le))
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {count}",
                            label_text(labels, Some("+Inf"))
                        );
                        let plain = label_text(labels, None);
                        let _ = writeln!(out, "{name}_sum{plain} {}", number(*sum));
                        let _ = writeln!(out, "{name}_count{plain} {count}");
                    }
                }
            }
        }
        out
    }
}

/// `{a="b",le="0.5"}`, or nothing without labels.
fn label_text(labels: &[(String, String)], le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// A label value with `\`, `"` and line ends escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// A sample value as Prometheus writes it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_histograms_render_in_the_text_format() {
        let m = Metrics::default();
        m.inc(
            "sp_requests_total",
            "Requests.",
            &[("route", "/a"), ("status", "200")],
        );
        m.add(
            "sp_requests_total",
            "Requests.",
            &[("route", "/a"), ("status", "200")],
            2.0,
        );
        m.set("sp_nodes", "Nodes.", &[("status", "online")], 3.0);
        m.set("sp_nodes", "Nodes.", &[("status", "online")], 4.0);
        m.observe("sp_seconds", "Time.", &[("kind", "x\"y")], 0.003);
        m.observe("sp_seconds", "Time.", &[("kind", "x\"y")], 7200.0);
        // Another kind under a taken name is ignored.
        m.set("sp_requests_total", "Requests.", &[], 9.0);
        let text = m.render();
        assert!(
            text.contains("# TYPE sp_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("sp_requests_total{route=\"/a\",status=\"200\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("sp_nodes{status=\"online\"} 4\n"), "{text}");
        assert!(
            text.contains("sp_seconds_bucket{kind=\"x\\\"y\",le=\"0.001\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("sp_seconds_bucket{kind=\"x\\\"y\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("sp_seconds_bucket{kind=\"x\\\"y\",le=\"3600\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("sp_seconds_bucket{kind=\"x\\\"y\",le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("sp_seconds_count{kind=\"x\\\"y\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("sp_seconds_sum{kind=\"x\\\"y\"} 7200.003\n"),
            "{text}"
        );
        assert_eq!(
            m.value("sp_requests_total", &[("route", "/a"), ("status", "200")]),
            3.0
        );
        assert_eq!(m.value("sp_missing", &[]), 0.0);
    }
}
