//! What Hawiya counts for operators, and how it is shown: counters and latency histograms
//! on relaxed atomics, and the Prometheus text exposition format (version 0.0.4) they are
//! rendered in.
//!
//! It exists so that the CA, the provider and the binary count the same way without
//! depending on one another (ARCHITECTURE.md): a foundation crate with no dependency at all.
//! Recording is a few relaxed atomic additions, never a lock or an allocation, because the
//! OCSP responder and the token endpoint record on every request at tens of thousands of
//! requests per second. It must never hold anything a request carried: only counts,
//! durations and labels fixed in code.

#![forbid(unsafe_code)]

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A count of events since the process started.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero.
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    /// Counts one event.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` events.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The upper bounds, in seconds, of the latency buckets every Hawiya histogram uses: from
/// half a millisecond (an OCSP answer from the cache) to ten seconds (a PAdES signature
/// with its timestamp and OCSP evidence on a loaded machine).
pub const LATENCY_BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A latency histogram over [`LATENCY_BUCKETS`]. Each observation adds one to its own
/// bucket and its duration to the sum (two relaxed atomic additions); the cumulative
/// buckets and the count are worked out when rendered.
#[derive(Debug)]
pub struct Histogram {
    /// Observations per bucket, not cumulative; the last is above every bound (+Inf).
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// The sum of the observations, in nanoseconds (584 years before it wraps).
    sum_nanos: AtomicU64,
}

/// The bounds in nanoseconds, for comparing without floating point.
const BOUNDS_NANOS: [u64; LATENCY_BUCKETS.len()] = {
    let mut out = [0u64; LATENCY_BUCKETS.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = (LATENCY_BUCKETS[i] * 1e9 + 0.5) as u64;
        i += 1;
    }
    out
};

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Histogram { buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS.len() + 1], sum_nanos: AtomicU64::new(0) }
    }

    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // The first bucket whose upper bound (inclusive, as Prometheus' `le`) holds it.
        let i = BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Records the time since `start`.
    pub fn observe_since(&self, start: Instant) {
        self.observe(start.elapsed());
    }

    /// How many observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
}

/// A metric family being written in the text exposition format: `# HELP`, `# TYPE`, then its
/// samples. Names and labels are fixed in code; label values are escaped all the same.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// Labels of a sample: `(name, value)` pairs.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: Labels<'_>, extra: Option<(&str, &str)>, value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() || extra.is_some() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().copied().chain(extra).enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A counter family: its samples as labels and values.
    pub fn counter(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, u64)]) {
        self.header(name, help, "counter");
        for (labels, value) in samples {
            self.sample(name, labels, None, *value as f64);
        }
    }

    /// A counter family of one unlabelled sample that is not a whole number (seconds).
    pub fn counter_seconds(&mut self, name: &str, help: &str, seconds: f64) {
        self.header(name, help, "counter");
        self.sample(name, &[], None, seconds);
    }

    /// A gauge family.
    pub fn gauge(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, f64)]) {
        self.header(name, help, "gauge");
        for (labels, value) in samples {
            self.sample(name, labels, None, *value);
        }
    }

    /// A histogram family (`name` ends in `_seconds`): for each sample, its cumulative
    /// `_bucket` series with `le`, `_sum` and `_count`.
    pub fn histogram(&mut self, name: &str, help: &str, samples: &[(Labels<'_>, &Histogram)]) {
        self.header(name, help, "histogram");
        let (bucket, sum, count) = (format!("{name}_bucket"), format!("{name}_sum"), format!("{name}_count"));
        for (labels, h) in samples {
            // One read of each bucket, so that the count is the +Inf bucket exactly.
            let counts: Vec<u64> = h.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
            let mut cumulative = 0;
            for (i, n) in counts.iter().enumerate() {
                cumulative += n;
                let le = LATENCY_BUCKETS.get(i).map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
                self.sample(&bucket, labels, Some(("le", &le)), cumulative as f64);
            }
            self.sample(&sum, labels, None, h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9);
            self.sample(&count, labels, None, cumulative as f64);
        }
    }

    /// Appends what another exposition wrote.
    pub fn append(&mut self, other: Exposition) {
        self.out.push_str(&other.out);
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_bucket_whose_bound_holds_them() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(500)); // exactly on the first bound: le="0.0005"
        h.observe(Duration::from_micros(501));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60)); // above every bound
        let mut e = Exposition::new();
        e.histogram("x_seconds", "X.", &[(&[("kind", "a")], &h)]);
        let text = e.finish();
        assert!(text.starts_with("# HELP x_seconds X.\n# TYPE x_seconds histogram\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{kind=\"a\",le=\"0.0005\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{kind=\"a\",le=\"0.001\"} 2\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{kind=\"a\",le=\"0.025\"} 2\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{kind=\"a\",le=\"0.05\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{kind=\"a\",le=\"10\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{kind=\"a\",le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("x_seconds_sum{kind=\"a\"} 60.031001\n"), "{text}");
        assert!(text.contains("x_seconds_count{kind=\"a\"} 4\n"), "{text}");
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn counters_and_label_values_are_written_escaped() {
        let c = Counter::new();
        c.inc();
        c.add(2);
        let mut e = Exposition::new();
        e.counter("y_total", "Y, with a \\ and\na newline.", &[(&[("why", "a \"quoted\" \\ value")], c.get()), (&[], 0)]);
        assert_eq!(
            e.finish(),
            "# HELP y_total Y, with a \\\\ and\\na newline.\n# TYPE y_total counter\ny_total{why=\"a \\\"quoted\\\" \\\\ value\"} 3\ny_total 0\n"
        );
    }
}
