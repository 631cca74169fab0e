//! The soak verdict: is every node's memory and data dir flat after the first retention
//! period, and does the submit→start p99 not trend upward?
//!
//! Definitions (printed with the verdict, and in BENCHMARKS.md):
//! - the *steady window* is every sample taken at or after retention + warm-up: before the
//!   first retention period nothing can be purged, so the state can only grow;
//! - a series' *level* is the median of its samples in the steady window (the median, not
//!   the mean, so one snapshot spike does not move it);
//! - a series is *flat* when every steady sample lies within ±15% of the level (a data dir
//!   sample that finds a snapshot being written waits for it to land, at most 2 s, and
//!   prints the transient it saw: see `sampler.rs`);
//! - the p99 *trend* is the least-squares slope of p99 over time in the steady window; it
//!   fails when the rise it predicts over the whole window exceeds 25% of the p99 level or
//!   2 ms, whichever is larger. 25% (not 15%): one 10 s interval's p99 rests on its slowest
//!   1% (100 of 10,000 tasks at 1000/s), so one snapshot or election in an interval moves it
//!   far more than it moves RSS; 2 ms: below that a p99 of a few ms is timer noise.

use serde::Serialize;

use super::sample::Sample;
use super::series::node_names;

/// Allowed deviation of a resource series from its level, as a fraction (±15%).
pub const FLAT_BAND: f64 = 0.15;
/// A p99 trend fails past this fraction of the p99 level over the window...
pub const TREND_SHARE: f64 = 0.25;
/// ...or past this many ms, whichever is larger.
pub const TREND_FLOOR_MS: f64 = 2.0;
/// Fewer steady samples than this give no verdict (a median and a slope of 2 points say
/// nothing).
pub const MIN_STEADY_SAMPLES: usize = 3;
/// Slack for float rounding at the band's edges (85 / 100 - 1 is -0.15000000000000002).
const EDGE_EPSILON: f64 = 1e-9;

/// PASS, FAIL, or too few samples to say.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Inconclusive,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Inconclusive => "INCONCLUSIVE",
        }
    }
}

/// How flat one series is in the steady window.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Flatness {
    pub level: f64,
    /// Lowest and highest sample relative to the level (-0.04 = 4% below).
    pub min_dev: f64,
    pub max_dev: f64,
    pub samples: usize,
    pub outcome: Outcome,
}

/// The p99 trend in the steady window.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Trend {
    pub level_ms: f64,
    pub slope_ms_per_s: f64,
    /// slope × length of the window: the rise the fit predicts from its first sample to its last.
    pub rise_ms: f64,
    pub limit_ms: f64,
    pub samples: usize,
    /// Steady intervals in which no task started at all: a stall has no p99 to fit, so it
    /// fails the target on its own instead of vanishing from the fit.
    pub stalled_samples: usize,
    pub outcome: Outcome,
}

/// Median of `values` (0 for none).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Least-squares slope of y over x; None with fewer than 2 points or all x equal.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Flatness of the steady samples `values` (already cut to the steady window).
pub fn flatness(values: &[f64]) -> Flatness {
    let level = median(values);
    let devs: Vec<f64> = values
        .iter()
        .map(|v| if level > 0.0 { v / level - 1.0 } else { 0.0 })
        .collect();
    let min_dev = devs.iter().copied().fold(0.0, f64::min);
    let max_dev = devs.iter().copied().fold(0.0, f64::max);
    let outcome = if values.len() < MIN_STEADY_SAMPLES || level <= 0.0 {
        Outcome::Inconclusive
    } else if min_dev >= -FLAT_BAND - EDGE_EPSILON && max_dev <= FLAT_BAND + EDGE_EPSILON {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    Flatness {
        level,
        min_dev,
        max_dev,
        samples: values.len(),
        outcome,
    }
}

/// Trend of the steady p99 samples `(t_s, p99_ms)`.
pub fn trend(points: &[(f64, f64)]) -> Trend {
    let level_ms = median(&points.iter().map(|p| p.1).collect::<Vec<_>>());
    let slope_ms_per_s = slope(points).unwrap_or(0.0);
    let first = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let last = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let window_s = if points.is_empty() { 0.0 } else { last - first };
    let rise_ms = slope_ms_per_s * window_s;
    let limit_ms = (TREND_SHARE * level_ms).max(TREND_FLOOR_MS);
    let outcome = if points.len() < MIN_STEADY_SAMPLES {
        Outcome::Inconclusive
    } else if rise_ms <= limit_ms + EDGE_EPSILON {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    Trend {
        level_ms,
        slope_ms_per_s,
        rise_ms,
        limit_ms,
        samples: points.len(),
        stalled_samples: 0,
        outcome,
    }
}

/// One node's series against the band.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct NodeFlatness {
    pub node: String,
    /// rss_mib or data_mib.
    pub metric: &'static str,
    #[serde(flatten)]
    pub flatness: Flatness,
}

/// Every target of the soak.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Verdict {
    pub steady_from_s: f64,
    pub flat: Vec<NodeFlatness>,
    pub p99: Trend,
}

/// The verdict over the samples taken at or after `steady_from_s`.
pub fn judge(samples: &[Sample], steady_from_s: f64) -> Verdict {
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.t_s >= steady_from_s).collect();
    let mut flat = Vec::new();
    for node in node_names(samples) {
        let series = |f: fn(&super::sample::NodeSample) -> f64| -> Vec<f64> {
            steady
                .iter()
                .filter_map(|s| s.nodes.iter().find(|n| n.name == node).map(f))
                .collect()
        };
        for (metric, values) in [("rss_mib", series(|n| n.rss_mib)), ("data_mib", series(|n| n.data_mib))] {
            flat.push(NodeFlatness {
                node: node.clone(),
                metric,
                flatness: flatness(&values),
            });
        }
    }
    let points: Vec<(f64, f64)> = steady.iter().filter_map(|s| Some((s.t_s, s.start_p99_ms?))).collect();
    let mut p99 = trend(&points);
    p99.stalled_samples = steady.len() - points.len();
    if p99.stalled_samples > 0 {
        p99.outcome = Outcome::Fail;
    }
    Verdict {
        steady_from_s,
        flat,
        p99,
    }
}

impl Verdict {
    /// The verdict as printed: the definitions first, then one line per target.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "steady window: samples from t = {:.0} s (first retention period + warm-up); level = median of \
             the window's samples; flat = every sample within ±{:.0}% of the level",
            self.steady_from_s,
            FLAT_BAND * 100.0
        )];
        for f in &self.flat {
            let unit = "MiB";
            let what = if f.metric == "rss_mib" { "RSS" } else { "data dir" };
            lines.push(format!(
                "{} {} {:<8} level {:.1} {unit}, samples {:+.1}%..{:+.1}% of it ({} samples)",
                f.flatness.outcome.label(),
                f.node,
                what,
                f.flatness.level,
                f.flatness.min_dev * 100.0,
                f.flatness.max_dev * 100.0,
                f.flatness.samples
            ));
        }
        let t = &self.p99;
        lines.push(format!(
            "{} submit→start p99 trend: level {:.1} ms, slope {:+.3} ms/min, rise over the window {:+.1} ms \
             (limit {:.1} ms = max({:.0}% of the level, {TREND_FLOOR_MS} ms); {} samples, {} intervals with no start)",
            t.outcome.label(),
            t.level_ms,
            t.slope_ms_per_s * 60.0,
            t.rise_ms,
            t.limit_ms,
            TREND_SHARE * 100.0,
            t.samples,
            t.stalled_samples
        ));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_none_one_odd_even() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[7.0]), 7.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn slope_of_a_line_and_of_degenerate_inputs() {
        let line: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64 * 10.0, 5.0 + 0.5 * i as f64 * 10.0))
            .collect();
        assert!((slope(&line).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(slope(&[]), None);
        assert_eq!(slope(&[(1.0, 2.0)]), None);
        assert_eq!(slope(&[(1.0, 2.0), (1.0, 5.0)]), None, "all x equal");
        let flat: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, 3.0)).collect();
        assert_eq!(slope(&flat), Some(0.0));
    }

    #[test]
    fn flat_band_edges() {
        // Level 100: 85 and 115 are on the band's edges (pass), 84.9 and 115.1 just past.
        assert_eq!(flatness(&[85.0, 100.0, 100.0, 100.0, 115.0]).outcome, Outcome::Pass);
        let low = flatness(&[84.9, 100.0, 100.0, 100.0, 100.0]);
        assert_eq!(low.outcome, Outcome::Fail);
        assert!((low.min_dev + 0.151).abs() < 1e-9, "{low:?}");
        let high = flatness(&[100.0, 100.0, 100.0, 100.0, 115.1]);
        assert_eq!(high.outcome, Outcome::Fail);
        assert_eq!(high.level, 100.0);
    }

    #[test]
    fn a_growing_series_fails_and_one_spike_moves_no_level() {
        let growing: Vec<f64> = (0..20).map(|i| 100.0 + 10.0 * i as f64).collect();
        assert_eq!(flatness(&growing).outcome, Outcome::Fail);
        // A single spike of 10× fails the band but leaves the median where it was.
        let spiky = flatness(&[100.0, 101.0, 1000.0, 99.0, 100.0]);
        assert_eq!(spiky.level, 100.0);
        assert_eq!(spiky.outcome, Outcome::Fail);
    }

    #[test]
    fn too_few_samples_or_a_zero_level_is_inconclusive() {
        assert_eq!(flatness(&[]).outcome, Outcome::Inconclusive);
        assert_eq!(flatness(&[1.0, 1.0]).outcome, Outcome::Inconclusive);
        assert_eq!(flatness(&[0.0, 0.0, 0.0]).outcome, Outcome::Inconclusive);
        assert_eq!(trend(&[(0.0, 1.0), (10.0, 100.0)]).outcome, Outcome::Inconclusive);
        assert_eq!(trend(&[]).outcome, Outcome::Inconclusive);
    }

    #[test]
    fn trend_limit_is_a_share_of_the_level_or_the_floor() {
        // Level 100 ms: the limit is 25 ms over the window. 0..100 s, slope 0.2 ms/s → rise 20 ms.
        let rising = |per_s: f64, base: f64| -> Vec<(f64, f64)> {
            (0..=10)
                .map(|i| (i as f64 * 10.0, base + per_s * i as f64 * 10.0))
                .collect()
        };
        let under = trend(&rising(0.2, 90.0));
        assert_eq!(under.outcome, Outcome::Pass, "{under:?}");
        assert!((under.rise_ms - 20.0).abs() < 1e-9);
        let over = trend(&rising(0.3, 85.0));
        assert_eq!(over.outcome, Outcome::Fail, "{over:?}");
        // Level 1 ms: 25% would be 0.25 ms; the floor of 2 ms applies.
        let small = trend(&rising(0.019, 0.1));
        assert_eq!(small.limit_ms, TREND_FLOOR_MS);
        assert_eq!(small.outcome, Outcome::Pass, "{small:?}");
        assert_eq!(trend(&rising(0.021, 0.1)).outcome, Outcome::Fail);
    }

    #[test]
    fn a_falling_p99_passes() {
        let falling: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 500.0 - 40.0 * i as f64)).collect();
        let t = trend(&falling);
        assert!(t.slope_ms_per_s < 0.0);
        assert_eq!(t.outcome, Outcome::Pass);
    }

    fn sample(t_s: f64, rss: [f64; 2], p99: Option<f64>) -> Sample {
        Sample {
            t_s,
            start_p99_ms: p99,
            nodes: rss
                .iter()
                .enumerate()
                .map(|(i, &r)| super::super::sample::NodeSample {
                    name: format!("node{}", i + 1),
                    rss_mib: r,
                    data_mib: 50.0,
                    ..Default::default()
                })
                .collect(),
            ..Sample::default()
        }
    }

    #[test]
    fn judge_ignores_samples_before_the_steady_window() {
        // Growth before t = 30 s (no purge yet) does not count; node2 grows after it.
        let samples: Vec<Sample> = (1..=10)
            .map(|i| {
                let t = i as f64 * 10.0;
                let node1 = if t < 30.0 { 10.0 * t } else { 400.0 };
                sample(t, [node1, 100.0 + 20.0 * t], Some(50.0))
            })
            .collect();
        let v = judge(&samples, 30.0);
        assert_eq!(v.flat.len(), 4);
        let get = |node: &str, metric: &str| {
            v.flat
                .iter()
                .find(|f| f.node == node && f.metric == metric)
                .unwrap()
                .flatness
                .clone()
        };
        assert_eq!(get("node1", "rss_mib").outcome, Outcome::Pass);
        assert_eq!(get("node1", "rss_mib").samples, 8);
        assert_eq!(get("node2", "rss_mib").outcome, Outcome::Fail);
        assert_eq!(get("node2", "data_mib").outcome, Outcome::Pass);
        assert_eq!(v.p99.outcome, Outcome::Pass);
        assert_eq!(v.p99.samples, 8);
        let lines = v.lines();
        assert_eq!(lines.len(), 1 + 4 + 1);
        assert!(
            lines[0].contains("t = 30 s") && lines[0].contains("±15%"),
            "{}",
            lines[0]
        );
        assert!(lines.iter().any(|l| l.starts_with("FAIL node2 RSS")), "{lines:?}");
    }

    #[test]
    fn a_stalled_interval_fails_the_p99_target() {
        let mut samples: Vec<Sample> = (1..=6)
            .map(|i| sample(i as f64 * 10.0, [1.0, 1.0], Some(5.0)))
            .collect();
        assert_eq!(judge(&samples, 0.0).p99.outcome, Outcome::Pass);
        samples[4].start_p99_ms = None;
        let v = judge(&samples, 0.0);
        assert_eq!(v.p99.stalled_samples, 1);
        assert_eq!(v.p99.outcome, Outcome::Fail);
        assert!(v.lines().last().unwrap().contains("1 intervals with no start"));
    }

    #[test]
    fn judge_of_a_run_shorter_than_the_window_is_inconclusive() {
        let samples = vec![sample(10.0, [1.0, 1.0], Some(1.0)), sample(20.0, [1.0, 1.0], None)];
        let v = judge(&samples, 60.0);
        assert!(v.flat.iter().all(|f| f.flatness.outcome == Outcome::Inconclusive));
        assert_eq!(v.p99.outcome, Outcome::Inconclusive);
    }
}
