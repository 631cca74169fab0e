//! The history checker: Jepsen's total-queue check plus fencing, over the recorded client
//! history and the final state of the cluster. Pure functions, so that crafted histories
//! can show it catches each violation.
//!
//! - **lost**: an acknowledged submission whose task is missing, is another task than the
//!   one acknowledged, or is not terminal after the drain.
//! - **unexpected**: a task whose request id no client ever submitted.
//! - **duplicated**: a request id that maps to more than one task, or was acknowledged with
//!   two different task ids.
//! - **stale accepted**: a task with more than one succeeded attempt, a succeeded attempt that
//!   is not the last, a final state that disagrees with its last attempt, a finished task
//!   with an attempt still running, tokens not increasing or reused, or a recorded output
//!   that was printed under another attempt's token or worker (every chaos task echoes
//!   `RAFTSCHED_TOKEN` and `RAFTSCHED_WORKER_ID` first, so a result accepted for a
//!   non-current token shows).
//! - **stuck**: a task (acknowledged or not) still pending or running after the drain.
//! - **failed but present**: a submission the cluster definitely refused, whose task exists.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use crate::history::Event;
use crate::history::Record;
use crate::schedule::FaultKind;
use raftsched_api::v1 as api;

/// What the checker needs of a task (also what `tasks.jsonl` holds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: u64,
    pub request_id: String,
    pub state: String,
    pub created_at_ms: u64,
    pub attempts: Vec<AttemptRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub number: u32,
    pub token: u64,
    pub worker_id: String,
    pub started_at_ms: u64,
    pub ended_at_ms: u64,
    pub outcome: String,
    pub exit_code: Option<i32>,
    pub error: String,
    pub stdout_tail: String,
}

impl TaskRecord {
    pub fn from_api(task: &api::Task) -> TaskRecord {
        let request_id = task
            .spec
            .as_ref()
            .map(|s| s.client_request_id.clone())
            .unwrap_or_default();
        TaskRecord {
            id: task.id,
            request_id,
            state: state_name(task.state).to_string(),
            created_at_ms: task.created_at_ms,
            attempts: task
                .attempts
                .iter()
                .map(|a| AttemptRecord {
                    number: a.number,
                    token: a.token,
                    worker_id: a.worker_id.clone(),
                    started_at_ms: a.started_at_ms,
                    ended_at_ms: a.ended_at_ms,
                    outcome: outcome_name(a.outcome).to_string(),
                    exit_code: a.has_exit_code.then_some(a.exit_code),
                    error: a.error.clone(),
                    stdout_tail: a.stdout_tail.clone(),
                })
                .collect(),
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.state.as_str(), "succeeded" | "failed" | "cancelled" | "skipped")
    }
}

pub fn state_name(state: i32) -> &'static str {
    match api::TaskState::try_from(state) {
        Ok(api::TaskState::Pending) => "pending",
        Ok(api::TaskState::Running) => "running",
        Ok(api::TaskState::Succeeded) => "succeeded",
        Ok(api::TaskState::Failed) => "failed",
        Ok(api::TaskState::Cancelled) => "cancelled",
        // Workflow states, by number so this builds with or without them.
        _ if state == 6 => "waiting",
        _ if state == 7 => "skipped",
        _ => "unspecified",
    }
}

pub fn outcome_name(outcome: i32) -> &'static str {
    match api::AttemptOutcome::try_from(outcome) {
        Ok(api::AttemptOutcome::Running) => "running",
        Ok(api::AttemptOutcome::Succeeded) => "succeeded",
        Ok(api::AttemptOutcome::Failed) => "failed",
        Ok(api::AttemptOutcome::TimedOut) => "timed-out",
        Ok(api::AttemptOutcome::LeaseExpired) => "lease-expired",
        Ok(api::AttemptOutcome::Cancelled) => "cancelled",
        Ok(api::AttemptOutcome::HandedBack) => "handed-back",
        Ok(api::AttemptOutcome::WorkerRestarted) => "worker-restarted",
        _ => "unspecified",
    }
}

/// The marker every chaos task prints first; see [`expected_output`].
pub fn output_marker_command() -> &'static str {
    r#"echo "chaos token=$RAFTSCHED_TOKEN worker=$RAFTSCHED_WORKER_ID""#
}

/// What the marker prints under one attempt.
pub fn expected_output(attempt: &AttemptRecord) -> String {
    format!("chaos token={} worker={}", attempt.token, attempt.worker_id)
}

/// Counts and, for every violation, one line that says which task and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CheckReport {
    /// Operations invoked (distinct request ids).
    pub submitted: u64,
    /// Of those, acknowledged (at least one ok).
    pub acknowledged: u64,
    /// Definitely refused.
    pub failed: u64,
    /// Never answered ok or fail: of these, how many the cluster has anyway.
    pub unknown: u64,
    pub unknown_present: u64,
    pub unknown_absent: u64,
    /// Unknown answers later resolved by an ok (retries with the same request id).
    pub unknown_resolved: u64,
    pub tasks_in_cluster: u64,
    /// Terminal tasks, by state.
    pub completed: u64,
    pub succeeded: u64,
    pub failed_tasks: u64,
    pub cancelled: u64,
    /// Tasks with more than one attempt (at-least-once: info, not a failure).
    pub redelivered: u64,
    /// Attempts by outcome, over every task.
    pub attempts_by_outcome: BTreeMap<String, u64>,
    pub lost: Vec<String>,
    pub unexpected: Vec<String>,
    pub duplicated: Vec<String>,
    pub stale_accepted: Vec<String>,
    pub stuck: Vec<String>,
    pub failed_but_present: Vec<String>,
}

impl CheckReport {
    pub fn violations(&self) -> u64 {
        [
            &self.lost,
            &self.unexpected,
            &self.duplicated,
            &self.stale_accepted,
            &self.stuck,
            &self.failed_but_present,
        ]
        .iter()
        .map(|v| v.len() as u64)
        .sum()
    }
}

#[derive(Default)]
struct Op {
    invoked: bool,
    acked: Vec<u64>,
    failed: bool,
    unknowns: u32,
}

/// Checks the history against the final tasks. `extra_request_ids` are request ids
/// submitted outside the history (none normally).
pub fn check(records: &[Record], tasks: &[TaskRecord], extra_request_ids: &[String]) -> CheckReport {
    let mut ops: BTreeMap<&str, Op> = BTreeMap::new();
    for record in records {
        match &record.event {
            Event::Invoke { request_id, .. } => ops.entry(request_id).or_default().invoked = true,
            Event::Ok {
                request_id, task_id, ..
            } => ops.entry(request_id).or_default().acked.push(*task_id),
            Event::Fail { request_id, .. } => ops.entry(request_id).or_default().failed = true,
            Event::Unknown { request_id, .. } => ops.entry(request_id).or_default().unknowns += 1,
            _ => {}
        }
    }
    let mut by_request: BTreeMap<&str, Vec<&TaskRecord>> = BTreeMap::new();
    for task in tasks {
        by_request.entry(task.request_id.as_str()).or_default().push(task);
    }
    let by_id: BTreeMap<u64, &TaskRecord> = tasks.iter().map(|t| (t.id, t)).collect();
    let mut report = CheckReport {
        tasks_in_cluster: tasks.len() as u64,
        ..CheckReport::default()
    };

    for (request_id, op) in &ops {
        if op.invoked {
            report.submitted += 1;
        }
        let present = by_request.get(request_id).map_or(&[][..], Vec::as_slice);
        let distinct_acks: BTreeSet<u64> = op.acked.iter().copied().collect();
        if distinct_acks.len() > 1 {
            report.duplicated.push(format!(
                "request {request_id} was acknowledged as different tasks {distinct_acks:?}"
            ));
        }
        if let Some(&acked) = op.acked.first() {
            report.acknowledged += 1;
            if op.unknowns > 0 {
                report.unknown_resolved += 1;
            }
            match by_id.get(&acked) {
                None => report.lost.push(format!(
                    "request {request_id}: acknowledged task {acked} does not exist"
                )),
                Some(task) if task.request_id != *request_id => report.lost.push(format!(
                    "request {request_id}: acknowledged task {acked} belongs to request {:?}",
                    task.request_id
                )),
                Some(task) if !task.is_terminal() => report.lost.push(format!(
                    "request {request_id}: acknowledged task {acked} is still {} after the drain",
                    task.state
                )),
                Some(_) => {}
            }
        } else if op.failed {
            report.failed += 1;
            if let Some(task) = present.first() {
                report
                    .failed_but_present
                    .push(format!("request {request_id} was refused, yet task {} has it", task.id));
            }
        } else if op.invoked {
            report.unknown += 1;
            if present.is_empty() {
                report.unknown_absent += 1;
            } else {
                report.unknown_present += 1;
            }
        }
    }

    let extra: BTreeSet<&str> = extra_request_ids.iter().map(String::as_str).collect();
    for (request_id, present) in &by_request {
        let submitted = ops.get(request_id).is_some_and(|op| op.invoked) || extra.contains(request_id);
        if !submitted {
            for task in present {
                report.unexpected.push(format!(
                    "task {} has request id {request_id:?}, which no client submitted",
                    task.id
                ));
            }
        }
        if present.len() > 1 {
            let ids: Vec<u64> = present.iter().map(|t| t.id).collect();
            report
                .duplicated
                .push(format!("request {request_id:?} has {} tasks: {ids:?}", present.len()));
        }
    }

    let mut tokens: BTreeMap<u64, u64> = BTreeMap::new();
    for task in tasks {
        match task.state.as_str() {
            "succeeded" => report.succeeded += 1,
            "failed" => report.failed_tasks += 1,
            "cancelled" | "skipped" => report.cancelled += 1,
            _ => report.stuck.push(format!(
                "task {} (request {}) is still {} after the drain",
                task.id, task.request_id, task.state
            )),
        }
        if task.attempts.len() > 1 {
            report.redelivered += 1;
        }
        for attempt in &task.attempts {
            *report.attempts_by_outcome.entry(attempt.outcome.clone()).or_default() += 1;
            if let Some(other) = tokens.insert(attempt.token, task.id) {
                report.stale_accepted.push(format!(
                    "token {} is used by task {other} and by task {}",
                    attempt.token, task.id
                ));
            }
        }
        report.stale_accepted.extend(fencing_violations(task));
    }
    report.completed = report.succeeded + report.failed_tasks + report.cancelled;
    report
}

/// Everything about one task's attempts that only a result accepted for a non-current
/// token (or a second completion) could produce.
fn fencing_violations(task: &TaskRecord) -> Vec<String> {
    let mut found = Vec::new();
    let id = task.id;
    let succeeded: Vec<&AttemptRecord> = task.attempts.iter().filter(|a| a.outcome == "succeeded").collect();
    if succeeded.len() > 1 {
        let tokens: Vec<u64> = succeeded.iter().map(|a| a.token).collect();
        found.push(format!(
            "task {id}: {} succeeded attempts (tokens {tokens:?})",
            succeeded.len()
        ));
    }
    for pair in task.attempts.windows(2) {
        if pair[1].token <= pair[0].token {
            found.push(format!(
                "task {id}: attempt {} has token {} after token {}",
                pair[1].number, pair[1].token, pair[0].token
            ));
        }
        if pair[0].outcome == "succeeded" {
            found.push(format!(
                "task {id}: attempt {} (token {}) succeeded but attempt {} came after it",
                pair[0].number, pair[0].token, pair[1].number
            ));
        }
        if pair[0].outcome == "running" {
            found.push(format!(
                "task {id}: attempt {} (token {}) is still running behind attempt {}",
                pair[0].number, pair[0].token, pair[1].number
            ));
        }
    }
    let Some(last) = task.attempts.last() else {
        if task.state == "succeeded" || task.state == "running" {
            found.push(format!("task {id} is {} without any attempt", task.state));
        }
        return found;
    };
    let consistent = match task.state.as_str() {
        "succeeded" => last.outcome == "succeeded",
        "running" => last.outcome == "running",
        "pending" | "waiting" | "failed" | "cancelled" | "skipped" => {
            last.outcome != "running" && last.outcome != "succeeded"
        }
        _ => false,
    };
    if !consistent {
        found.push(format!(
            "task {id} is {} but its last attempt {} (token {}) is {}",
            task.state, last.number, last.token, last.outcome
        ));
    }
    // The recorded output must have been printed under this very attempt.
    let reported = last.outcome == "succeeded" || (last.outcome == "failed" && last.exit_code.is_some());
    if reported {
        let expected = expected_output(last);
        let printed = last.stdout_tail.lines().find(|line| line.starts_with("chaos token="));
        if printed != Some(expected.as_str()) {
            found.push(format!(
                "task {id}: attempt {} (token {}, worker {}) recorded the output {:?}, printed under another attempt",
                last.number,
                last.token,
                last.worker_id,
                printed.unwrap_or("")
            ));
        }
    }
    found
}

/// Time from one leader-affecting fault to the cluster's next progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverSample {
    pub seq: u32,
    pub kind: FaultKind,
    pub fault_at_ms: u64,
    /// To the first status answer naming a leader in a newer term (None: no new term seen,
    /// e.g. the old leader came back and kept leading).
    pub election_ms: Option<u64>,
    /// To the first attempt started (a committed dispatch) after the fault.
    pub dispatch_ms: Option<u64>,
    /// To the first task created (a committed submission) after the fault.
    pub submit_ms: Option<u64>,
}

/// One sample per fault that took the leader away: the leader-targeting kinds, and a
/// restart that hit the leader.
pub fn failover_samples(records: &[Record], tasks: &[TaskRecord]) -> Vec<FailoverSample> {
    let mut starts: Vec<u64> = tasks
        .iter()
        .flat_map(|t| t.attempts.iter().map(|a| a.started_at_ms))
        .collect();
    starts.sort_unstable();
    let mut creations: Vec<u64> = tasks.iter().map(|t| t.created_at_ms).collect();
    creations.sort_unstable();
    let elections: BTreeMap<u32, u64> = records
        .iter()
        .filter_map(|r| match r.event {
            Event::Elected { seq, after_ms, .. } => Some((seq, after_ms)),
            _ => None,
        })
        .collect();
    let first_after = |sorted: &[u64], t: u64| -> Option<u64> {
        let index = sorted.partition_point(|&x| x <= t);
        sorted.get(index).map(|&x| x - t)
    };
    records
        .iter()
        .filter_map(|record| match &record.event {
            Event::Fault {
                seq,
                kind,
                target,
                leader,
                ..
            } if kind.targets_leader()
                || (*kind == FaultKind::RestartNode && *leader != 0 && *target == format!("node{leader}")) =>
            {
                Some(FailoverSample {
                    seq: *seq,
                    kind: *kind,
                    fault_at_ms: record.t_ms,
                    election_ms: elections.get(seq).copied(),
                    dispatch_ms: first_after(&starts, record.t_ms),
                    submit_ms: first_after(&creations, record.t_ms),
                })
            }
            _ => None,
        })
        .collect()
}

/// p50, p99 and max (nearest rank) of `values`; None when empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

pub fn percentiles(values: impl IntoIterator<Item = u64>) -> Option<Percentiles> {
    let mut values: Vec<u64> = values.into_iter().collect();
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = |q: f64| {
        let index = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
        values[index]
    };
    Some(Percentiles {
        count: values.len(),
        p50: rank(0.50),
        p99: rank(0.99),
        max: *values.last().expect("not empty"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(t_ms: u64, event: Event) -> Record {
        Record {
            t_ms,
            elapsed_ms: t_ms,
            event,
        }
    }

    fn invoke(request_id: &str) -> Record {
        record(
            1,
            Event::Invoke {
                client: 0,
                op: 0,
                request_id: request_id.into(),
                command: "true".into(),
            },
        )
    }

    fn ok(request_id: &str, task_id: u64) -> Record {
        record(
            2,
            Event::Ok {
                client: 0,
                op: 0,
                request_id: request_id.into(),
                task_id,
                created: true,
                latency_ms: 1,
            },
        )
    }

    fn unknown(request_id: &str) -> Record {
        record(
            2,
            Event::Unknown {
                client: 0,
                op: 0,
                request_id: request_id.into(),
                attempt: 1,
                error: "deadline".into(),
            },
        )
    }

    fn fail(request_id: &str) -> Record {
        record(
            2,
            Event::Fail {
                client: 0,
                op: 0,
                request_id: request_id.into(),
                code: "InvalidArgument".into(),
                error: "no".into(),
            },
        )
    }

    fn attempt(number: u32, token: u64, outcome: &str) -> AttemptRecord {
        let mut attempt = AttemptRecord {
            number,
            token,
            worker_id: "w1".into(),
            started_at_ms: 100 + u64::from(number) * 10,
            ended_at_ms: 0,
            outcome: outcome.into(),
            exit_code: (outcome == "succeeded").then_some(0),
            error: String::new(),
            stdout_tail: String::new(),
        };
        attempt.stdout_tail = format!("{}\n", expected_output(&attempt));
        attempt
    }

    fn task(id: u64, request_id: &str, state: &str, attempts: Vec<AttemptRecord>) -> TaskRecord {
        TaskRecord {
            id,
            request_id: request_id.into(),
            state: state.into(),
            created_at_ms: 50 + id,
            attempts,
        }
    }

    fn done(id: u64, request_id: &str, token: u64) -> TaskRecord {
        task(id, request_id, "succeeded", vec![attempt(1, token, "succeeded")])
    }

    #[test]
    fn a_clean_history_passes() {
        let records = vec![
            invoke("a"),
            ok("a", 1),
            invoke("b"),
            unknown("b"),
            ok("b", 2),
            invoke("c"),
            unknown("c"),
        ];
        let mut redelivered = done(2, "b", 5);
        redelivered.attempts.insert(0, attempt(1, 3, "lease-expired"));
        redelivered.attempts[1].number = 2;
        redelivered.attempts[1].stdout_tail = format!("{}\n", expected_output(&redelivered.attempts[1]));
        let tasks = vec![done(1, "a", 1), redelivered, done(3, "c", 7)];
        let report = check(&records, &tasks, &[]);
        assert_eq!(report.violations(), 0, "{report:#?}");
        assert_eq!(report.submitted, 3);
        assert_eq!(report.acknowledged, 2);
        assert_eq!(report.unknown, 1);
        assert_eq!(report.unknown_present, 1);
        assert_eq!(report.unknown_resolved, 1);
        assert_eq!(report.redelivered, 1);
        assert_eq!(report.completed, 3);
    }

    #[test]
    fn an_acknowledged_task_missing_or_unfinished_is_lost() {
        let records = vec![
            invoke("a"),
            ok("a", 1),
            invoke("b"),
            ok("b", 2),
            invoke("c"),
            ok("c", 9),
        ];
        let tasks = vec![
            done(1, "a", 1),
            task(2, "b", "running", vec![attempt(1, 2, "running")]),
            done(3, "c", 3),
        ];
        let report = check(&records, &tasks, &[]);
        assert_eq!(report.lost.len(), 2, "{report:#?}");
        assert_eq!(report.stuck.len(), 1);
    }

    #[test]
    fn tasks_nobody_submitted_are_unexpected_and_repeats_are_duplicated() {
        let records = vec![invoke("a"), ok("a", 1)];
        let tasks = vec![done(1, "a", 1), done(2, "a", 2), done(3, "zz", 3), done(4, "probe", 4)];
        let report = check(&records, &tasks, &["probe".to_string()]);
        assert_eq!(report.unexpected.len(), 1, "{report:#?}");
        assert_eq!(report.duplicated.len(), 1);
    }

    #[test]
    fn a_refused_submission_must_not_exist() {
        let records = vec![invoke("a"), fail("a")];
        let report = check(&records, &[done(1, "a", 1)], &[]);
        assert_eq!(report.failed_but_present.len(), 1);
    }

    #[test]
    fn stale_results_are_caught() {
        let records: Vec<Record> = (1..=6)
            .flat_map(|i| [invoke(&format!("r{i}")), ok(&format!("r{i}"), i)])
            .collect();
        // Two succeeded attempts.
        let twice = task(
            1,
            "r1",
            "succeeded",
            vec![attempt(1, 1, "succeeded"), attempt(2, 2, "succeeded")],
        );
        // Succeeded, but the last attempt is another one still running.
        let behind = task(
            2,
            "r2",
            "succeeded",
            vec![attempt(1, 3, "succeeded"), attempt(2, 4, "running")],
        );
        // The output of the voided attempt (token 5) recorded on the current one (token 6).
        let mut wrong_output = task(
            3,
            "r3",
            "succeeded",
            vec![attempt(1, 5, "lease-expired"), attempt(2, 6, "succeeded")],
        );
        wrong_output.attempts[1].stdout_tail = "chaos token=5 worker=w1\n".into();
        // Failed while its attempt runs.
        let failed_running = task(4, "r4", "failed", vec![attempt(1, 7, "running")]);
        // Tokens going backwards.
        let backwards = task(
            5,
            "r5",
            "succeeded",
            vec![attempt(1, 9, "lease-expired"), attempt(2, 8, "succeeded")],
        );
        // A token shared with another task.
        let shared = done(6, "r6", 1);
        let tasks = vec![twice, behind, wrong_output, failed_running, backwards, shared];
        let report = check(&records, &tasks, &[]);
        let flagged: BTreeSet<String> = report
            .stale_accepted
            .iter()
            .map(|line| {
                line.split(':')
                    .next()
                    .unwrap()
                    .split(' ')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        for id in 1..=5 {
            assert!(
                flagged.contains(&format!("task {id}")),
                "task {id} not flagged: {report:#?}"
            );
        }
        assert!(
            report.stale_accepted.iter().any(|l| l.starts_with("token 1 ")),
            "{report:#?}"
        );
    }

    #[test]
    fn failover_is_measured_to_the_next_dispatch_and_submission() {
        let fault = |t_ms, seq, kind, target: &str, leader| {
            record(
                t_ms,
                Event::Fault {
                    seq,
                    kind,
                    target: target.into(),
                    detail: String::new(),
                    leader,
                },
            )
        };
        let records = vec![
            fault(100, 1, FaultKind::KillLeader, "node1", 1),
            fault(200, 2, FaultKind::KillFollower, "node3", 2),
            fault(300, 3, FaultKind::RestartNode, "node2", 2),
            fault(400, 4, FaultKind::RestartNode, "node1", 2),
            record(
                650,
                Event::Elected {
                    seq: 1,
                    leader: 2,
                    term: 2,
                    after_ms: 30,
                },
            ),
        ];
        let mut first = done(1, "a", 1);
        first.created_at_ms = 90;
        first.attempts[0].started_at_ms = 150;
        let mut second = done(2, "b", 2);
        second.created_at_ms = 320;
        second.attempts[0].started_at_ms = 350;
        let samples = failover_samples(&records, &[first, second]);
        assert_eq!(samples.len(), 2);
        assert_eq!((samples[0].dispatch_ms, samples[0].submit_ms), (Some(50), Some(220)));
        assert_eq!((samples[0].election_ms, samples[1].election_ms), (Some(30), None));
        assert_eq!((samples[1].dispatch_ms, samples[1].submit_ms), (Some(50), Some(20)));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentiles(Vec::<u64>::new()), None);
        let p = percentiles((1..=100).rev()).unwrap();
        assert_eq!((p.count, p.p50, p.p99, p.max), (100, 50, 99, 100));
        let p = percentiles([7]).unwrap();
        assert_eq!((p.p50, p.p99, p.max), (7, 7, 7));
    }
}
