//! The one summary a chaos run prints: as a table, or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::check::CheckReport;
use crate::check::FailoverSample;
use crate::check::Percentiles;
use crate::schedule::FaultKind;

/// Whether every replica holds the same state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplicaReport {
    pub identical: bool,
    /// The common applied index, and the digest every node reports at it.
    pub applied_index: u64,
    pub digest: String,
    /// What each node reported last, when they differ or never met.
    pub detail: String,
    /// When they differ: the checker's counts against each node's own state.
    pub per_node: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    pub worker_lease_ms: u64,
    pub snapshot_after_entries: u64,
    pub entries_kept_after_snapshot: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub duration_s: u64,
    /// Wall time of the whole run, start-up and drain included.
    pub ran_s: f64,
    pub dir: String,
    /// False when the data dirs were removed (a passing run without --keep).
    pub kept: bool,
    pub workers: u32,
    pub clients: u32,
    pub timings: Timings,
    /// Faults fired, by kind (every enabled kind is listed, fired or not).
    pub faults: BTreeMap<FaultKind, u64>,
    /// Enabled kinds the run was too short to schedule.
    pub faults_not_scheduled: Vec<FaultKind>,
    /// Scheduled faults that could not be injected, and why.
    pub faults_skipped: Vec<String>,
    pub check: CheckReport,
    pub replicas: ReplicaReport,
    pub writes_after_heal: bool,
    pub writes_after_heal_detail: String,
    /// Faults after which the cluster did not agree on a leader within the deadline.
    pub recovery_failures: Vec<String>,
    /// Processes that exited without being told to.
    pub crashes: Vec<String>,
    /// Whether every task was terminal before the drain deadline, and how long it took.
    pub drained: bool,
    pub drain_ms: u64,
    /// Fault → a leader in a newer term.
    pub failover_election: Option<Percentiles>,
    /// Fault → next committed dispatch (first attempt started after it).
    pub failover_dispatch: Option<Percentiles>,
    /// Fault → next committed submission (first task created after it).
    pub failover_submit: Option<Percentiles>,
    pub failover_samples: Vec<FailoverSample>,
    /// Notes on shutdown and the like: worth reading, not violations.
    pub notes: Vec<String>,
    pub violations: Vec<String>,
    pub passed: bool,
}

impl Summary {
    /// Fills `violations` and `passed` from the rest.
    pub fn judge(&mut self) {
        let mut violations = Vec::new();
        let check = &self.check;
        let counted = [
            ("lost", &check.lost),
            ("unexpected", &check.unexpected),
            ("duplicated", &check.duplicated),
            ("stale accepted", &check.stale_accepted),
            ("stuck", &check.stuck),
            ("failed but present", &check.failed_but_present),
            ("faults skipped", &self.faults_skipped),
            ("recovery failures", &self.recovery_failures),
            ("crashes", &self.crashes),
        ];
        for (name, found) in counted {
            if !found.is_empty() {
                violations.push(format!("{name} = {}", found.len()));
            }
        }
        if !self.replicas.identical {
            violations.push("replicas differ".to_string());
        }
        if !self.writes_after_heal {
            violations.push("no write after healing".to_string());
        }
        if !self.drained {
            violations.push("drain did not finish".to_string());
        }
        self.passed = violations.is_empty();
        self.violations = violations;
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the summary serializes")
    }

    /// The table: one line per figure, then the first details of every violation.
    pub fn to_table(&self) -> String {
        let check = &self.check;
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |name: &str, value: String| rows.push((name.to_string(), value));
        row("seed", self.seed.to_string());
        row(
            "duration",
            format!("{} s of faults ({:.1} s in all)", self.duration_s, self.ran_s),
        );
        row(
            "cluster",
            format!(
                "3 nodes (heartbeat {} ms, election {}-{} ms, snapshot every {} entries), {} workers (lease {} ms), {} clients",
                self.timings.heartbeat_ms,
                self.timings.election_min_ms,
                self.timings.election_max_ms,
                self.timings.snapshot_after_entries,
                self.workers,
                self.timings.worker_lease_ms,
                self.clients
            ),
        );
        let fired: u64 = self.faults.values().sum();
        let by_kind: Vec<String> = self.faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
        row("faults", format!("{fired}: {}", by_kind.join(", ")));
        if !self.faults_not_scheduled.is_empty() {
            let names: Vec<&str> = self.faults_not_scheduled.iter().map(|k| k.as_str()).collect();
            row(
                "not scheduled",
                format!("{} (run longer to reach them)", names.join(", ")),
            );
        }
        row("faults skipped", self.faults_skipped.len().to_string());
        row("submitted", check.submitted.to_string());
        row("acknowledged", check.acknowledged.to_string());
        row("refused", check.failed.to_string());
        row(
            "unknown",
            format!(
                "{} ({} in the cluster, {} absent; {} more resolved by a retry)",
                check.unknown, check.unknown_present, check.unknown_absent, check.unknown_resolved
            ),
        );
        row(
            "completed",
            format!(
                "{} of {} tasks (succeeded {}, failed {}, cancelled {}) in {} ms of drain",
                check.completed,
                check.tasks_in_cluster,
                check.succeeded,
                check.failed_tasks,
                check.cancelled,
                self.drain_ms
            ),
        );
        let outcomes: Vec<String> = check
            .attempts_by_outcome
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        row(
            "redelivered",
            format!("{} (attempts: {})", check.redelivered, outcomes.join(", ")),
        );
        row("lost", check.lost.len().to_string());
        row("unexpected", check.unexpected.len().to_string());
        row("duplicated", check.duplicated.len().to_string());
        row("stale accepted", check.stale_accepted.len().to_string());
        row("stuck", check.stuck.len().to_string());
        row("failed but present", check.failed_but_present.len().to_string());
        row(
            "replicas identical",
            if self.replicas.identical {
                format!(
                    "yes (digest {} at applied index {})",
                    self.replicas.digest, self.replicas.applied_index
                )
            } else {
                format!("NO: {}", self.replicas.detail)
            },
        );
        row(
            "writes after heal",
            format!(
                "{} ({})",
                if self.writes_after_heal { "yes" } else { "NO" },
                self.writes_after_heal_detail
            ),
        );
        row("recovery failures", self.recovery_failures.len().to_string());
        row("crashes", self.crashes.len().to_string());
        let unmeasured = self.failover_samples.iter().filter(|s| s.election_ms.is_none()).count();
        row(
            "failover election",
            format_percentiles(self.failover_election, unmeasured, "without a new term"),
        );
        let unmeasured = self.failover_samples.iter().filter(|s| s.dispatch_ms.is_none()).count();
        row(
            "failover dispatch",
            format_percentiles(self.failover_dispatch, unmeasured, "without any later dispatch"),
        );
        let unmeasured = self.failover_samples.iter().filter(|s| s.submit_ms.is_none()).count();
        row(
            "failover submit",
            format_percentiles(self.failover_submit, unmeasured, "without any later submission"),
        );
        row(
            "data",
            format!("{}{}", self.dir, if self.kept { "" } else { " (removed)" }),
        );
        row(
            "result",
            if self.passed {
                "PASS".to_string()
            } else {
                format!("FAIL: {}", self.violations.join(", "))
            },
        );

        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (name, value) in &rows {
            let _ = writeln!(out, "{name:<width$}  {value}");
        }
        let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
        let samples: Vec<String> = self
            .failover_samples
            .iter()
            .map(|s| {
                format!(
                    "fault {} {}: election {}, dispatch {}, submit {}",
                    s.seq,
                    s.kind,
                    ms(s.election_ms),
                    ms(s.dispatch_ms),
                    ms(s.submit_ms)
                )
            })
            .collect();
        let mut kinds: Vec<FaultKind> = self.failover_samples.iter().map(|s| s.kind).collect();
        kinds.sort();
        kinds.dedup();
        let by_kind: Vec<String> = kinds
            .iter()
            .map(|kind| {
                let of_kind: Vec<&FailoverSample> = self.failover_samples.iter().filter(|s| s.kind == *kind).collect();
                let figure = |values: Vec<Option<u64>>| match crate::check::percentiles(values.into_iter().flatten()) {
                    Some(p) => format!("p50 {} / max {} ms", p.p50, p.max),
                    None => "-".to_string(),
                };
                format!(
                    "{kind} (n={}): election {}, dispatch {}, submit {}",
                    of_kind.len(),
                    figure(of_kind.iter().map(|s| s.election_ms).collect()),
                    figure(of_kind.iter().map(|s| s.dispatch_ms).collect()),
                    figure(of_kind.iter().map(|s| s.submit_ms).collect()),
                )
            })
            .collect();
        let details = [
            ("failover by kind", &by_kind),
            ("failover samples", &samples),
            ("lost", &check.lost),
            ("unexpected", &check.unexpected),
            ("duplicated", &check.duplicated),
            ("stale accepted", &check.stale_accepted),
            ("stuck", &check.stuck),
            ("failed but present", &check.failed_but_present),
            ("faults skipped", &self.faults_skipped),
            ("recovery failures", &self.recovery_failures),
            ("crashes", &self.crashes),
            ("replicas, each checked on its own", &self.replicas.per_node),
            ("notes", &self.notes),
        ];
        for (name, lines) in details {
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{name}:");
            for line in lines.iter().take(20) {
                let _ = writeln!(out, "  {line}");
            }
            if lines.len() > 20 {
                let _ = writeln!(out, "  ... and {} more (summary.json has all)", lines.len() - 20);
            }
        }
        out
    }
}

fn format_percentiles(p: Option<Percentiles>, unmeasured: usize, what: &str) -> String {
    let extra = if unmeasured > 0 {
        format!(", {unmeasured} {what}")
    } else {
        String::new()
    };
    match p {
        Some(p) => format!(
            "p50 {} ms, p99 {} ms, max {} ms (n={}{extra})",
            p.p50, p.p99, p.max, p.count
        ),
        None => format!("no leader-affecting fault measured{extra}"),
    }
}
