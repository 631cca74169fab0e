//! Data-driven tests of the pure scheduler state machine, in the style of raft-rs: every file
//! under `tests/testdata/state/` is a script of directives, each followed by the text the
//! state answers. `REWRITE=1 cargo test --test state_cases` regenerates the expected text.
//!
//! Every file starts from a fresh [`SchedulerState`]; after every directive the runner checks
//! the state's invariants (and that no fencing token is used twice) and panics if one is
//! broken. Every command goes through [`apply_checked`], which checks the response against
//! what the command must have done: a refused command changes nothing but the clock, an
//! assignment takes fresh tokens above every earlier one, a report lands exactly as the retry
//! rules say (the retry time is recomputed with `retry_delay_ms`), and so on.
//!
//! Directives (`at=<ms>` is the leader time the command carries, 0 when left out):
//!
//! - `submit at=<ms>` with one spec per input line (one log entry, a batch), or with the spec
//!   as directive arguments when there is no input: `submit at=1000 name=a queue=q`;
//!   `submit at=<ms> empty` submits a batch of no specs.
//!   Prints one line per spec: `task <id> created`, `task <id> existing` or the error.
//! - `cancel at=<ms> task=<id> [reason=<word>]`; an input line `reason=<value>` gives any
//!   reason the directive line cannot spell. Prints `cancelled <id>`, with `, stop <worker>
//!   token=<t>` when an attempt was running, or the error.
//! - `get task=<id>`: the task, or `not found`. Pending tasks show `ready_at`; the dispatch
//!   fields of the spec are shown when they differ from the defaults; then one line per
//!   attempt (number, token, worker, times, outcome, exit code, error, output tails).
//! - `list [state=<status>] [queue=<q>] [after=<id>] [limit=<n>]`: one line per task, then
//!   `next=<id>` or `next=none`.
//! - `ready queue=<q>` or `ready queue=(a,b)`: the ready ids of each queue, dispatch order.
//! - `counts`: the number of tasks in total and per status.
//! - `clock`: the state's clock and the earliest time a delayed task becomes ready.
//! - `snapshot`: encodes the state, decodes it, checks both are equal and that the copy
//!   encodes to the same bytes, and carries on with the copy (so later directives run on
//!   indexes rebuilt by restore); prints `ok tasks=<n>` (and `workers=<n>` when there are any).
//! - `corrupt-snapshot [truncate=<n>] [byte=<i> value=<v>] [append=<n>] [garbage=<n>]`:
//!   damages the encoded state and prints the decode error (it must not decode).
//! - `register at=<ms> worker=<id> [session=<s>] [slots=<n>] [lease=<ms>] [cpu=<m>] [mem=<MiB>]
//!   [label.<k>=<v>] [labels=<n>]`, fields also accepted on an input line. Defaults: session
//!   s1, one slot, lease 5000, no resources. Prints `registered <id>` and the tasks whose
//!   attempts a new session voided, or the error.
//! - `drain at=<ms> worker=<id> [session=<s>]`: `drained <id>` or the error.
//! - `expire at=<ms> worker=<id> [session=<s>]`: the voided tasks and whether the worker was
//!   removed (an unknown worker or another session is ignored).
//! - `assign at=<ms> [seed=<n>]` with input lines `task=<id> worker=<id>` (one log entry):
//!   one line per pair, `task <id> -> <worker> attempt=<n> token=<t>` or the error.
//! - `report at=<ms> task=<id> token=<t> [outcome=<o>] [exit=<n>] [error=<text>]
//!   [retryable=true|false] [jitter=<n>] [stdout=<text>] [stderr=<text>]`, fields also accepted
//!   on an input line (for quoted text). Defaults: succeeded, retryable, jitter 0. Prints the
//!   task's status afterwards (with `ready_at` when pending, the reason when failed) or the
//!   error.
//! - `timeout at=<ms> task=<id> token=<t> [jitter=<n>]`: the leader's timeout of an attempt;
//!   prints like `report`.
//! - `queue-policy at=<ms> queue=<q> [weight=<n>] [placement=<p>]`, fields also accepted on
//!   an input line: `ok` or the error.
//! - `policies`: every queue policy set.
//! - `workers`: every worker with its running tasks, state, labels and resources.
//!
//! Spec fields (`key=value`, separated by spaces): `name`, `queue`, `priority`, `request`,
//! `attempts`, `timeout`, `cmd` (command line), `env.<KEY>`, `label.<key>`, `kind` and
//! `data` (an opaque payload instead of a command), the dispatch fields `constraint.<k>`,
//! `constraints=<k>:<v>,<k>:<v>` (input lines only), `cpu`, `mem`, `affinity`, `backoff`
//! (default 1000), `delay` and `not_before`, and the generators `labels=<n>` and `envs=<n>`
//! (that many distinct entries). A value may be double-quoted with the escapes `\n`, `\t`,
//! `\r`, `\0`, `\u{7f}`, `\"`, `\\`, or written `(<text>*<n>)` for `<text>` repeated n times;
//! the part of an `env.`/`label.`/`constraint.` key after the dot may use the same forms.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use datadriven::TestCase;
use raftsched_core::scheduling::Placement;
use raftsched_core::scheduling::QueuePolicy;
use raftsched_core::scheduling::retry_delay_ms;
use raftsched_core::state::AttemptOutcome;
use raftsched_core::state::AttemptReport;
use raftsched_core::state::Command;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::ListFilter;
use raftsched_core::state::MisfirePolicy;
use raftsched_core::state::Occurrence;
use raftsched_core::state::OccurrenceAction;
use raftsched_core::state::OverlapPolicy;
use raftsched_core::state::Payload;
use raftsched_core::state::Recurrence;
use raftsched_core::state::Resources;
use raftsched_core::state::RunOutcome;
use raftsched_core::state::ScheduleSpec;
use raftsched_core::state::SchedulerState;
use raftsched_core::state::StateError;
use raftsched_core::state::Task;
use raftsched_core::state::TaskId;
use raftsched_core::state::TaskOrigin;
use raftsched_core::state::TaskSpec;
use raftsched_core::state::TaskStatus;
use raftsched_core::state::WorkerRegistration;
use raftsched_core::state::WorkflowSpec;
use raftsched_core::state::WorkflowTaskSpec;

const PIN_LABEL: &str = raftsched_core::state::limits::PIN_LABEL;
const DEFAULT_BACKOFF_MS: u64 = raftsched_core::state::limits::DEFAULT_RETRY_BACKOFF_MS;

#[test]
fn state_cases() {
    datadriven::walk("tests/testdata/state", |file| {
        let mut state = SchedulerState::new();
        let filename = file.filename.clone();
        file.run(|case| -> String {
            let output = run_directive(&mut state, case);
            if let Err(violation) = check_state(&state) {
                panic!(
                    "{filename}: `{}` (input {:?}) broke a state invariant: {violation}",
                    case.directive, case.input
                );
            }
            output
        });
    });
}

/// The state's own invariants, and what the tests check independently of them.
fn check_state(state: &SchedulerState) -> Result<(), String> {
    state.check_invariants()?;
    let mut tokens = BTreeSet::new();
    for task in tasks(state) {
        for attempt in &task.attempts {
            if !tokens.insert(attempt.token) {
                return Err(format!("token {} is used twice", attempt.token));
            }
        }
    }
    Ok(())
}

fn run_directive(state: &mut SchedulerState, case: &TestCase) -> String {
    let mut out = match case.directive.as_str() {
        "submit" => submit(state, case),
        "cancel" => cancel(state, case),
        "get" => get(state, case),
        "list" => list(state, case),
        "ready" => ready(state, case),
        "counts" => counts(state),
        "clock" => clock(state),
        "snapshot" => snapshot(state),
        "corrupt-snapshot" => corrupt_snapshot(state, case),
        "register" => register(state, case),
        "drain" => drain(state, case),
        "expire" => expire(state, case),
        "assign" => assign(state, case),
        "report" => report(state, case),
        "timeout" => timeout(state, case),
        "queue-policy" => queue_policy(state, case),
        "policies" => policies(state),
        "workers" => workers(state),
        "schedule-create" => schedule_define(state, case, true),
        "schedule-update" => schedule_define(state, case, false),
        "schedule-pause" => schedule_simple(state, case, "pause"),
        "schedule-resume" => schedule_simple(state, case, "resume"),
        "schedule-delete" => schedule_simple(state, case, "delete"),
        "fire" => fire(state, case),
        "trigger" => schedule_simple(state, case, "trigger"),
        "schedule" => show_schedule(state, case),
        "plan" => plan(state, case),
        "workflow" => workflow(state, case),
        "workflow-get" => workflow_get(state, case),
        "shards" => shards(state, case),
        other => panic!("unknown directive {other:?}"),
    };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Every task, in id order, without cloning. Ids are allocated densely from 1 and tasks are
/// never removed.
fn tasks(state: &SchedulerState) -> impl Iterator<Item = &Task> {
    (1..=state.task_count() as TaskId).map(|id| state.get(id).expect("task ids are dense"))
}

fn max_token(state: &SchedulerState) -> u64 {
    tasks(state)
        .flat_map(|t| t.attempts.iter().map(|a| a.token))
        .max()
        .unwrap_or(0)
}

/// Applies `command` and checks the response against what it must have done to the state.
///
/// The baseline is the state before, with only the clock moved to the command's time (an
/// empty submission does exactly that): every refused command must leave the state equal to
/// it, and an accepted one may change only the tasks and workers it names.
fn apply_checked(state: &mut SchedulerState, command: Command) -> CommandResponse {
    let clock_before = state.clock_ms();
    let mut baseline = state.clone();
    baseline.apply(Command::SubmitTasks {
        now_ms: command.now_ms(),
        specs: Vec::new(),
    });
    assert_eq!(
        baseline.clock_ms(),
        clock_before.max(command.now_ms()),
        "the clock does not follow the latest leader time"
    );
    // The tasks and workers before the command: the baseline's, which only the clock moved.
    let before = &baseline;
    let response = state.apply(command.clone());
    let now_ms = state.clock_ms();
    assert_eq!(
        now_ms,
        baseline.clock_ms(),
        "the clock moved differently for different commands"
    );
    let refused = |state: &SchedulerState, what: &str| {
        assert_eq!(*state, baseline, "a refused {what} changed the state");
    };
    match (&command, &response) {
        (Command::SubmitTasks { .. }, CommandResponse::Submitted(outcomes)) => {
            let created = outcomes.iter().filter(|o| matches!(o, Ok(o) if o.created)).count();
            assert_eq!(
                state.task_count(),
                before.task_count() + created,
                "submit created a different number of tasks than it reported"
            );
            if created == 0 {
                refused(state, "submit");
            }
            for outcome in outcomes.iter().flatten() {
                let task = state.get(outcome.task_id).expect("a submitted task exists");
                if outcome.created {
                    assert_eq!(task.status, TaskStatus::Pending);
                    assert!(task.attempts.is_empty());
                    let ready_at = task.spec.not_before_ms.max(now_ms.saturating_add(task.spec.delay_ms));
                    assert_eq!(task.ready_at_ms, ready_at, "task {} has the wrong ready time", task.id);
                }
            }
            assert_only_changed(
                state,
                &baseline,
                &outcomes.iter().flatten().map(|o| o.task_id).collect(),
                &[],
            );
        }
        (Command::CancelTask { task_id, .. }, CommandResponse::Cancelled(result)) => match result {
            Err(_) => refused(state, "cancel"),
            Ok(outcome) => {
                assert_eq!(outcome.task_id, *task_id);
                let old = before.get(*task_id).expect("a cancelled task existed");
                let task = state.get(*task_id).expect("a cancelled task exists");
                assert_eq!(task.status, TaskStatus::Cancelled);
                let was_running = old.running_attempt().map(|a| (a.worker_id.clone(), a.token));
                assert_eq!(outcome.stopped, was_running, "cancel named the wrong attempt to stop");
                if was_running.is_some() {
                    assert_eq!(task.attempts.last().map(|a| a.outcome), Some(AttemptOutcome::Cancelled));
                }
                assert_eq!(task.attempts.len(), old.attempts.len());
                assert_only_changed(state, &baseline, &BTreeSet::from([*task_id]), &[]);
            }
        },
        (Command::RegisterWorker { registration, .. }, CommandResponse::Registered(result)) => match result {
            Err(_) => refused(state, "registration"),
            Ok(voided) => {
                let worker = state.worker(&registration.id).expect("a registered worker exists");
                assert_eq!(
                    (
                        &worker.session,
                        worker.slots,
                        &worker.labels,
                        worker.resources,
                        worker.lease_ms
                    ),
                    (
                        &registration.session,
                        registration.slots,
                        &registration.labels,
                        registration.resources,
                        registration.lease_ms
                    )
                );
                let old = before.worker(&registration.id);
                let restarted = old.is_some_and(|w| w.session != registration.session);
                let ran: Vec<TaskId> = before.running_on(&registration.id).map(|t| t.id).collect();
                let expected: Vec<TaskId> = if restarted { ran } else { Vec::new() };
                assert_eq!(*voided, expected, "registration voided the wrong attempts");
                assert_eq!(worker.draining, old.is_some_and(|w| w.draining) && !restarted);
                check_voided(state, voided, AttemptOutcome::WorkerRestarted);
                assert_only_changed(state, &baseline, &voided.iter().copied().collect(), &[&registration.id]);
            }
        },
        (Command::DrainWorker { worker_id, .. }, CommandResponse::Drained(result)) => match result {
            Err(_) => refused(state, "drain"),
            Ok(()) => {
                assert!(state.worker(worker_id).expect("a drained worker exists").draining);
                assert_only_changed(state, &baseline, &BTreeSet::new(), &[worker_id]);
            }
        },
        (Command::ExpireWorker { worker_id, session, .. }, CommandResponse::Expired(voided)) => {
            if before.worker(worker_id).is_some_and(|w| &w.session == session) {
                let ran: Vec<TaskId> = before.running_on(worker_id).map(|t| t.id).collect();
                assert_eq!(*voided, ran, "expiry voided the wrong attempts");
                assert!(
                    state.worker(worker_id).is_none(),
                    "an expired worker is still registered"
                );
                assert_eq!(state.running_count(worker_id), 0);
                check_voided(state, voided, AttemptOutcome::LeaseExpired);
                // Pending tasks pinned to the worker fail with it.
                let pinned: BTreeSet<TaskId> = tasks(before)
                    .filter(|t| {
                        t.status == TaskStatus::Pending
                            && t.spec.constraints.get(PIN_LABEL).map(String::as_str) == Some(worker_id.as_str())
                    })
                    .map(|t| t.id)
                    .collect();
                for task_id in &pinned {
                    assert_eq!(state.get(*task_id).map(|t| t.status), Some(TaskStatus::Failed));
                }
                let changed = voided.iter().copied().chain(pinned).collect();
                assert_only_changed(state, &baseline, &changed, &[worker_id]);
            } else {
                assert!(voided.is_empty());
                refused(state, "expiry");
            }
        }
        (Command::AssignTasks { assignments, .. }, CommandResponse::Assigned(outcomes)) => {
            assert_eq!(outcomes.len(), assignments.len(), "one outcome per assignment");
            if outcomes.iter().all(Result::is_err) {
                refused(state, "assignment");
            }
            let mut last_token = max_token(before);
            for ((task_id, worker_id), outcome) in assignments
                .iter()
                .zip(outcomes)
                .filter_map(|(a, o)| Some((a, o.as_ref().ok()?)))
            {
                assert_eq!((&outcome.task_id, &outcome.worker_id), (task_id, worker_id));
                assert!(
                    outcome.token > last_token,
                    "token {} is not above {last_token}",
                    outcome.token
                );
                last_token = outcome.token;
                let old = before.get(*task_id).expect("an assigned task existed");
                assert_eq!(
                    old.status,
                    TaskStatus::Pending,
                    "a task that was not pending was assigned"
                );
                assert!(old.ready_at_ms <= now_ms, "a task was assigned before its ready time");
                let task = state.get(*task_id).expect("an assigned task exists");
                let attempt = task.running_attempt().expect("an assigned task runs");
                assert_eq!(
                    (attempt.number, attempt.token, &attempt.worker_id, attempt.started_at_ms),
                    (outcome.attempt, outcome.token, worker_id, now_ms)
                );
                assert_eq!(outcome.attempt as usize, old.attempts.len() + 1);
                for earlier in &task.attempts[..task.attempts.len() - 1] {
                    assert!(
                        earlier.stdout_tail.is_empty() && earlier.stderr_tail.is_empty(),
                        "task {task_id}: an earlier attempt kept its output"
                    );
                }
                let worker = state
                    .worker(worker_id)
                    .expect("an assignment went to a registered worker");
                assert!(!worker.draining, "a draining worker got an assignment");
                assert!(
                    state.running_count(worker_id) <= worker.slots as usize,
                    "worker {worker_id} is over its slots"
                );
            }
            let assigned: BTreeSet<TaskId> = outcomes.iter().flatten().map(|o| o.task_id).collect();
            assert_only_changed(state, &baseline, &assigned, &[]);
        }
        (Command::ReportResult { report, jitter, .. }, CommandResponse::Reported(result)) => match result {
            Err(_) => refused(state, "report"),
            Ok(status) => check_report(before, state, report, *jitter, *status),
        },
        (
            Command::TimeOutAttempt {
                task_id, token, jitter, ..
            },
            CommandResponse::Reported(result),
        ) => match result {
            Err(_) => refused(state, "timeout"),
            Ok(status) => {
                let report = AttemptReport {
                    task_id: *task_id,
                    token: *token,
                    outcome: AttemptOutcome::TimedOut,
                    exit_code: None,
                    error: None,
                    retryable: true,
                    stdout_tail: String::new(),
                    stderr_tail: String::new(),
                };
                check_report(before, state, &report, *jitter, *status);
            }
        },
        (Command::SetQueuePolicy { queue, policy, .. }, CommandResponse::QueuePolicySet(result)) => match result {
            Err(_) => refused(state, "queue policy"),
            Ok(()) => assert_eq!(state.queue_policy(queue), *policy),
        },
        (Command::CreateSchedule { name, spec, .. }, CommandResponse::ScheduleCreated(result)) => match result {
            Err(_) | Ok(false) => refused(state, "schedule creation"),
            Ok(true) => {
                let schedule = state.schedule(name).expect("a created schedule exists");
                assert_eq!(&schedule.spec, spec);
                assert_eq!(
                    schedule.cursor_ms, now_ms,
                    "a new schedule fires only after its creation"
                );
                assert_only_changed(state, &baseline, &BTreeSet::new(), &[]);
            }
        },
        (
            Command::UpdateSchedule { .. } | Command::PauseSchedule { .. } | Command::DeleteSchedule { .. },
            CommandResponse::ScheduleChanged(result),
        ) => {
            if result.is_err() {
                refused(state, "schedule change");
            }
            assert_only_changed(state, &baseline, &BTreeSet::new(), &[]);
        }
        (
            Command::FireSchedule { name, .. } | Command::TriggerSchedule { name, .. },
            CommandResponse::ScheduleFired(result),
        ) => {
            let accepted = result
                .as_ref()
                .map_or(0, |o| o.results.iter().filter(|r| r.is_ok()).count());
            if accepted == 0 && !matches!(command, Command::TriggerSchedule { .. }) {
                refused(state, "firing");
            }
            if let Ok(outcome) = result {
                let old = before.schedule(name).expect("a fired schedule existed");
                let new = state.schedule(name).expect("a fired schedule exists");
                assert!(new.cursor_ms >= old.cursor_ms, "a firing moved the cursor back");
                let mut created = BTreeSet::new();
                let mut replaced = BTreeSet::new();
                for run in outcome.results.iter().flatten() {
                    match run {
                        RunOutcome::Fired { task_id, replaced: r } => {
                            created.insert(*task_id);
                            replaced.extend(*r);
                        }
                        RunOutcome::Triggered { task_id } => {
                            created.insert(*task_id);
                        }
                        RunOutcome::Skipped { .. } => {}
                    }
                }
                assert_eq!(
                    state.task_count(),
                    before.task_count() + created.len(),
                    "a firing created a different number of tasks than it recorded"
                );
                for task_id in &replaced {
                    assert_eq!(state.get(*task_id).map(|t| t.status), Some(TaskStatus::Cancelled));
                }
                created.extend(replaced);
                assert_only_changed(state, &baseline, &created, &[]);
            }
        }
        (Command::SubmitWorkflow { .. }, CommandResponse::WorkflowSubmitted(result)) => match result {
            Ok(outcome) if outcome.created => {
                let workflow = state
                    .workflow(outcome.workflow_id)
                    .expect("a submitted workflow exists");
                let ids: BTreeSet<TaskId> = workflow.tasks.iter().map(|(_, id)| *id).collect();
                assert_eq!(state.task_count(), before.task_count() + ids.len());
                for id in &ids {
                    let task = state.get(*id).expect("a workflow task exists");
                    let expected = if task.links.parents.is_empty() {
                        TaskStatus::Pending
                    } else {
                        TaskStatus::Waiting
                    };
                    assert_eq!(task.status, expected, "workflow task {id}");
                }
                assert_only_changed(state, &baseline, &ids, &[]);
            }
            _ => refused(state, "workflow"),
        },
        (Command::SubmitShards { pins, .. }, CommandResponse::ShardsSubmitted(result)) => match result {
            Ok(outcome) if outcome.created => {
                let parent = state.get(outcome.task_id).expect("a broadcast parent exists");
                assert_eq!(parent.status, TaskStatus::Waiting);
                assert_eq!(parent.links.shards.len(), pins.len());
                assert_eq!(state.task_count(), before.task_count() + pins.len() + 1);
                let ids: BTreeSet<TaskId> = parent.links.shards.iter().copied().chain([parent.id]).collect();
                assert_only_changed(state, &baseline, &ids, &[]);
            }
            _ => refused(state, "broadcast"),
        },
        (command, response) => panic!("{command} answered {response:?}"),
    }
    response
}

/// Tasks whose attempt was voided with their worker: the attempt ended as `outcome`
/// (lease-expired, or worker-restarted for a new session), and the task is back in the queue
/// at once, or failed when it has no attempt left.
fn check_voided(state: &SchedulerState, voided: &[TaskId], outcome: AttemptOutcome) {
    for task_id in voided {
        let task = state.get(*task_id).expect("a voided task exists");
        let attempt = task.attempts.last().expect("a voided task has an attempt");
        assert_eq!(attempt.outcome, outcome);
        if task.attempts_used() >= task.spec.max_attempts {
            assert_eq!(task.status, TaskStatus::Failed, "task {task_id} is out of attempts");
        } else {
            assert_eq!(task.status, TaskStatus::Pending);
            assert_eq!(task.ready_at_ms, state.clock_ms(), "a voided task is ready at once");
        }
    }
}

/// A report landed as the retry rules say.
fn check_report(
    before: &SchedulerState,
    state: &SchedulerState,
    report: &AttemptReport,
    jitter: u64,
    status: TaskStatus,
) {
    let now_ms = state.clock_ms();
    let old = before.get(report.task_id).expect("a reported task existed");
    assert_eq!(
        old.running_attempt().map(|a| a.token),
        Some(report.token),
        "a stale report was accepted"
    );
    let task = state.get(report.task_id).expect("a reported task exists");
    assert_eq!(task.status, status);
    assert_eq!(task.attempts.len(), old.attempts.len());
    let attempt = task.attempts.last().expect("a reported task has an attempt");
    assert_eq!(
        (attempt.token, attempt.outcome, attempt.ended_at_ms),
        (report.token, report.outcome, Some(now_ms))
    );
    let used = task.attempts_used();
    let exhausted = used >= task.spec.max_attempts;
    let reason = task.reason.as_deref().unwrap_or_default();
    let expected_ready_at = match report.outcome {
        AttemptOutcome::Succeeded => {
            assert_eq!(status, TaskStatus::Succeeded);
            None
        }
        AttemptOutcome::HandedBack => {
            assert_eq!(used + 1, old.attempts_used(), "a handed-back attempt counted");
            Some(now_ms)
        }
        AttemptOutcome::Cancelled if !exhausted => Some(now_ms),
        _ if report.retryable && !exhausted => Some(now_ms + retry_delay_ms(used, task.spec.retry_backoff_ms, jitter)),
        _ if report.retryable || report.outcome == AttemptOutcome::Cancelled => {
            assert_eq!(status, TaskStatus::Failed);
            assert!(
                reason.ends_with(&format!("(after {used} attempt{})", if used == 1 { "" } else { "s" })),
                "reason {reason:?}"
            );
            None
        }
        _ => {
            assert_eq!(status, TaskStatus::Failed);
            assert!(reason.ends_with("(not retryable)"), "reason {reason:?}");
            None
        }
    };
    if let Some(ready_at) = expected_ready_at {
        assert_eq!(status, TaskStatus::Pending);
        assert_eq!(task.ready_at_ms, ready_at, "task {} has the wrong retry time", task.id);
    }
    assert_only_changed(state, before, &BTreeSet::from([report.task_id]), &[]);
}

/// Everything but the named tasks and workers is as in `baseline`.
fn assert_only_changed(
    state: &SchedulerState,
    baseline: &SchedulerState,
    task_ids: &BTreeSet<TaskId>,
    worker_ids: &[&String],
) {
    // A task that finished moves the tasks linked to it (workflow children, a shard's
    // parent), and those move theirs.
    let mut task_ids = task_ids.clone();
    let mut frontier: Vec<TaskId> = task_ids.iter().copied().collect();
    while let Some(id) = frontier.pop() {
        let Some(task) = state.get(id) else { continue };
        let parent = match &task.links.origin {
            Some(TaskOrigin::Shard { parent, .. }) => Some(*parent),
            _ => None,
        };
        for linked in task
            .links
            .children
            .iter()
            .chain(&task.links.shards)
            .chain(parent.as_ref())
        {
            if task_ids.insert(*linked) {
                frontier.push(*linked);
            }
        }
    }
    for task in tasks(baseline) {
        if !task_ids.contains(&task.id) {
            assert_eq!(state.get(task.id), Some(task), "task {} changed", task.id);
        }
    }
    for worker in baseline.workers() {
        if !worker_ids.contains(&&worker.id) {
            assert_eq!(state.worker(&worker.id), Some(worker), "worker {} changed", worker.id);
        }
    }
    let added: Vec<&str> = state
        .workers()
        .filter(|w| baseline.worker(&w.id).is_none() && !worker_ids.contains(&&w.id))
        .map(|w| w.id.as_str())
        .collect();
    assert!(added.is_empty(), "workers {added:?} appeared");
    let policies = |s: &SchedulerState| s.queue_policies().map(|(q, p)| (q.to_string(), *p)).collect::<Vec<_>>();
    assert_eq!(policies(state), policies(baseline), "queue policies changed");
}

fn submit(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let specs: Vec<TaskSpec> = if case.args.contains_key("empty") {
        Vec::new()
    } else if case.input.trim().is_empty() {
        vec![parse_spec(directive_fields(case))]
    } else {
        case.input
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| parse_spec(tokenize(line)))
            .collect()
    };
    let CommandResponse::Submitted(outcomes) = apply_checked(state, Command::SubmitTasks { now_ms, specs }) else {
        panic!("submit answered with another response");
    };
    if outcomes.is_empty() {
        return "no outcomes".to_string();
    }
    outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok(o) if o.created => format!("task {} created\n", o.task_id),
            Ok(o) => format!("task {} existing\n", o.task_id),
            Err(e) => format!("{}\n", fmt_err(e)),
        })
        .collect()
}

fn cancel(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let task_id = arg_u64(case, "task").expect("cancel needs task=<id>");
    let mut reason = arg(case, "reason").unwrap_or_else(|| "no reason".to_string());
    for (key, value) in tokenize(&case.input) {
        assert_eq!(key, "reason", "cancel input takes only reason=<value>");
        reason = value;
    }
    let command = Command::CancelTask {
        now_ms,
        task_id,
        reason,
    };
    match apply_checked(state, command) {
        CommandResponse::Cancelled(Ok(outcome)) => match outcome.stopped {
            Some((worker_id, token)) => format!("cancelled {}, stop {worker_id} token={token}", outcome.task_id),
            None => format!("cancelled {}", outcome.task_id),
        },
        CommandResponse::Cancelled(Err(e)) => fmt_err(&e),
        other => panic!("cancel answered {other:?}"),
    }
}

fn get(state: &SchedulerState, case: &TestCase) -> String {
    let task_id = arg_u64(case, "task").expect("get needs task=<id>");
    let Some(task) = state.get(task_id) else {
        return "not found".to_string();
    };
    let spec = &task.spec;
    let mut out = format!(
        "task {} {:?} queue={} priority={} status={} created={} updated={}\n",
        task.id, spec.name, spec.queue, spec.priority, task.status, task.created_at_ms, task.updated_at_ms
    );
    out += &format!("  attempts={} timeout={}", spec.max_attempts, spec.attempt_timeout_ms);
    if let Some(request_id) = &spec.client_request_id {
        out += &format!(" request={request_id:?}");
    }
    if let Some(reason) = &task.reason {
        out += &format!(" reason={reason:?}");
    }
    if task.status == TaskStatus::Pending {
        out += &format!(" ready_at={}", task.ready_at_ms);
    }
    out.push('\n');
    match &spec.payload {
        Payload::Command { command_line, env } => {
            out += &format!("  cmd={command_line:?}");
            for (key, value) in env {
                out += &format!(" env.{key}={value:?}");
            }
        }
        Payload::Opaque { kind, data } => out += &format!("  kind={kind} data={} bytes", data.len()),
    }
    for (key, value) in &spec.labels {
        out += &format!(" label.{key}={value:?}");
    }
    let mut dispatch = String::new();
    for (key, value) in &spec.constraints {
        dispatch += &format!(" constraint.{key}={value:?}");
    }
    if spec.resources != Resources::default() {
        dispatch += &format!(" cpu={} mem={}", spec.resources.cpu_millis, spec.resources.memory_mb);
    }
    if let Some(key) = &spec.affinity_key {
        dispatch += &format!(" affinity={key:?}");
    }
    if spec.retry_backoff_ms != DEFAULT_BACKOFF_MS {
        dispatch += &format!(" backoff={}", spec.retry_backoff_ms);
    }
    if spec.delay_ms != 0 {
        dispatch += &format!(" delay={}", spec.delay_ms);
    }
    if spec.not_before_ms != 0 {
        dispatch += &format!(" not_before={}", spec.not_before_ms);
    }
    if !dispatch.is_empty() {
        out += &format!("\n  dispatch:{dispatch}");
    }
    let links = &task.links;
    if links.origin.is_some() || !links.parents.is_empty() || !links.children.is_empty() || !links.shards.is_empty() {
        out += "\n  links:";
        if let Some(origin) = &links.origin {
            out += &format!(" origin={}", origin.key());
        }
        if !links.parents.is_empty() {
            out += &format!(" parents={}", fmt_ids(&links.parents));
        }
        if !links.children.is_empty() {
            out += &format!(" children={}", fmt_ids(&links.children));
        }
        if !links.shards.is_empty() {
            out += &format!(" shards={}", fmt_ids(&links.shards));
        }
    }
    for a in &task.attempts {
        out += &format!(
            "\n  attempt {} token={} worker={} started={}",
            a.number, a.token, a.worker_id, a.started_at_ms
        );
        if let Some(ended) = a.ended_at_ms {
            out += &format!(" ended={ended}");
        }
        out += &format!(" outcome={}", a.outcome.as_str());
        if let Some(code) = a.exit_code {
            out += &format!(" exit={code}");
        }
        if let Some(error) = &a.error {
            out += &format!(" error={error:?}");
        }
        if !a.stdout_tail.is_empty() {
            out += &format!(" stdout={:?}", a.stdout_tail);
        }
        if !a.stderr_tail.is_empty() {
            out += &format!(" stderr={:?}", a.stderr_tail);
        }
    }
    out
}

fn list(state: &SchedulerState, case: &TestCase) -> String {
    let filter = ListFilter {
        status: arg(case, "state").map(|s| TaskStatus::parse(&s).unwrap_or_else(|| panic!("unknown state {s:?}"))),
        queue: arg(case, "queue"),
    };
    let after = arg_u64(case, "after").unwrap_or(0);
    let limit = arg_u64(case, "limit").unwrap_or(100) as usize;
    let (tasks, next) = state.list(&filter, after, limit);
    let mut out: String = tasks
        .iter()
        .map(|t| {
            format!(
                "{} {} queue={} priority={} {:?}\n",
                t.id, t.status, t.spec.queue, t.spec.priority, t.spec.name
            )
        })
        .collect();
    match next {
        Some(id) => out += &format!("next={id}"),
        None => out += "next=none",
    }
    out
}

fn ready(state: &SchedulerState, case: &TestCase) -> String {
    let queues = case.args.get("queue").expect("ready needs queue=<q> or queue=(a,b)");
    queues
        .iter()
        .map(|queue| {
            let ids: Vec<String> = state.ready_in_queue(queue).map(|id| id.to_string()).collect();
            format!("{queue}: [{}]\n", ids.join(" "))
        })
        .collect()
}

fn counts(state: &SchedulerState) -> String {
    let mut out = format!("total={}", state.task_count());
    for status in TaskStatus::ALL {
        let count = state.count_by_status(status);
        // Waiting and skipped (workflows, broadcasts) only when there are any.
        if count > 0 || !matches!(status, TaskStatus::Waiting | TaskStatus::Skipped) {
            out += &format!(" {status}={count}");
        }
    }
    out
}

fn clock(state: &SchedulerState) -> String {
    match state.next_ready_at_ms() {
        Some(at) => format!("clock={} next_ready={at}", state.clock_ms()),
        None => format!("clock={} next_ready=none", state.clock_ms()),
    }
}

fn snapshot(state: &mut SchedulerState) -> String {
    let bytes = state.to_snapshot_bytes();
    let restored = match SchedulerState::from_snapshot_bytes(&bytes) {
        Ok(restored) => restored,
        Err(e) => panic!("a snapshot of a valid state does not decode: {e}"),
    };
    assert_eq!(&restored, state, "the restored state differs from the original");
    assert_eq!(
        restored.to_snapshot_bytes(),
        bytes,
        "the restored state encodes differently"
    );
    *state = restored;
    match state.workers().count() {
        0 => format!("ok tasks={}", state.task_count()),
        workers => format!("ok tasks={} workers={workers}", state.task_count()),
    }
}

fn corrupt_snapshot(state: &SchedulerState, case: &TestCase) -> String {
    let mut bytes = state.to_snapshot_bytes();
    if let Some(n) = arg_u64(case, "truncate") {
        bytes.truncate(bytes.len().saturating_sub(n as usize));
    }
    if let Some(index) = arg_u64(case, "byte") {
        let value = arg_u64(case, "value").expect("byte=<i> needs value=<v>");
        bytes[index as usize] = u8::try_from(value).expect("value is a byte");
    }
    if let Some(n) = arg_u64(case, "append") {
        bytes.extend(std::iter::repeat_n(0u8, n as usize));
    }
    if let Some(n) = arg_u64(case, "garbage") {
        bytes = std::iter::repeat_n(0xffu8, n as usize).collect();
    }
    match SchedulerState::from_snapshot_bytes(&bytes) {
        Ok(_) => panic!("a corrupted snapshot decoded: {:?}", case.args),
        Err(e) => format!("error: {e}"),
    }
}

fn register(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let mut registration = WorkerRegistration {
        id: String::new(),
        session: "s1".to_string(),
        slots: 1,
        labels: BTreeMap::new(),
        resources: Resources::default(),
        lease_ms: 5000,
    };
    for (key, value) in all_fields(case) {
        let number = || -> u64 {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{key}={value:?} is not a number"))
        };
        match key.as_str() {
            "worker" => registration.id = value.clone(),
            "session" => registration.session = value.clone(),
            "slots" => registration.slots = number() as u32,
            "lease" => registration.lease_ms = number(),
            "cpu" => registration.resources.cpu_millis = number() as u32,
            "mem" => registration.resources.memory_mb = number() as u32,
            "labels" => {
                for i in 0..number() {
                    registration.labels.insert(format!("k{i}"), "v".to_string());
                }
            }
            _ => match key.strip_prefix("label.") {
                Some(label) => {
                    registration.labels.insert(parse_value(label), value.clone());
                }
                None => panic!("unknown register field {key:?}"),
            },
        }
    }
    let id = registration.id.clone();
    match apply_checked(state, Command::RegisterWorker { now_ms, registration }) {
        CommandResponse::Registered(Ok(voided)) if voided.is_empty() => format!("registered {id}"),
        CommandResponse::Registered(Ok(voided)) => format!("registered {id}, voided {}", fmt_ids(&voided)),
        CommandResponse::Registered(Err(e)) => fmt_err(&e),
        other => panic!("register answered {other:?}"),
    }
}

fn drain(state: &mut SchedulerState, case: &TestCase) -> String {
    let command = Command::DrainWorker {
        now_ms: arg_u64(case, "at").unwrap_or(0),
        worker_id: arg(case, "worker").expect("drain needs worker=<id>"),
        session: arg(case, "session").unwrap_or_else(|| "s1".to_string()),
    };
    let worker_id = arg(case, "worker").unwrap_or_default();
    match apply_checked(state, command) {
        CommandResponse::Drained(Ok(())) => format!("drained {worker_id}"),
        CommandResponse::Drained(Err(e)) => fmt_err(&e),
        other => panic!("drain answered {other:?}"),
    }
}

fn expire(state: &mut SchedulerState, case: &TestCase) -> String {
    let worker_id = arg(case, "worker").expect("expire needs worker=<id>");
    let command = Command::ExpireWorker {
        now_ms: arg_u64(case, "at").unwrap_or(0),
        worker_id: worker_id.clone(),
        session: arg(case, "session").unwrap_or_else(|| "s1".to_string()),
    };
    let known = state.worker(&worker_id).is_some();
    let CommandResponse::Expired(voided) = apply_checked(state, command) else {
        panic!("expire answered with another response");
    };
    let fate = match (known, state.worker(&worker_id).is_some()) {
        (false, _) => "not registered",
        (true, true) => "kept (another session)",
        (true, false) => "removed",
    };
    format!("voided {}, worker {worker_id} {fate}", fmt_ids(&voided))
}

fn assign(state: &mut SchedulerState, case: &TestCase) -> String {
    let assignments: Vec<(TaskId, String)> = case
        .input
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: BTreeMap<String, String> = tokenize(line).into_iter().collect();
            let task_id = fields["task"].parse().expect("task=<id> is a number");
            (task_id, fields["worker"].clone())
        })
        .collect();
    let command = Command::AssignTasks {
        now_ms: arg_u64(case, "at").unwrap_or(0),
        seed: arg_u64(case, "seed").unwrap_or(0),
        assignments,
    };
    let CommandResponse::Assigned(outcomes) = apply_checked(state, command) else {
        panic!("assign answered with another response");
    };
    if outcomes.is_empty() {
        return "no outcomes".to_string();
    }
    outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok(o) => format!(
                "task {} -> {} attempt={} token={}\n",
                o.task_id, o.worker_id, o.attempt, o.token
            ),
            Err(e) => format!("{}\n", fmt_err(e)),
        })
        .collect()
}

fn report(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let mut report = AttemptReport {
        task_id: 0,
        token: 0,
        outcome: AttemptOutcome::Succeeded,
        exit_code: None,
        error: None,
        retryable: true,
        stdout_tail: String::new(),
        stderr_tail: String::new(),
    };
    let mut jitter = 0;
    for (key, value) in all_fields(case) {
        let number = || -> u64 {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{key}={value:?} is not a number"))
        };
        match key.as_str() {
            "at" => {}
            "task" => report.task_id = number(),
            "token" => report.token = number(),
            "jitter" => jitter = number(),
            "outcome" => report.outcome = parse_outcome(&value),
            "exit" => report.exit_code = Some(value.parse().expect("exit=<n> is a number")),
            "error" => report.error = Some(value.clone()),
            "retryable" => report.retryable = value.parse().expect("retryable=true|false"),
            "stdout" => report.stdout_tail = value.clone(),
            "stderr" => report.stderr_tail = value.clone(),
            _ => panic!("unknown report field {key:?}"),
        }
    }
    let task_id = report.task_id;
    let response = apply_checked(state, Command::ReportResult { now_ms, report, jitter });
    fmt_reported(state, task_id, response)
}

fn timeout(state: &mut SchedulerState, case: &TestCase) -> String {
    let task_id = arg_u64(case, "task").expect("timeout needs task=<id>");
    let command = Command::TimeOutAttempt {
        now_ms: arg_u64(case, "at").unwrap_or(0),
        task_id,
        token: arg_u64(case, "token").expect("timeout needs token=<t>"),
        jitter: arg_u64(case, "jitter").unwrap_or(0),
    };
    let response = apply_checked(state, command);
    fmt_reported(state, task_id, response)
}

fn fmt_reported(state: &SchedulerState, task_id: TaskId, response: CommandResponse) -> String {
    match response {
        CommandResponse::Reported(Ok(status)) => {
            let task = state.get(task_id).expect("a reported task exists");
            match status {
                TaskStatus::Pending => format!("status=pending ready_at={}", task.ready_at_ms),
                TaskStatus::Failed => format!("status=failed reason={:?}", task.reason.as_deref().unwrap_or_default()),
                other => format!("status={other}"),
            }
        }
        CommandResponse::Reported(Err(e)) => fmt_err(&e),
        other => panic!("report answered {other:?}"),
    }
}

fn queue_policy(state: &mut SchedulerState, case: &TestCase) -> String {
    let mut policy = QueuePolicy::default();
    let mut queue = None;
    for (key, value) in all_fields(case) {
        match key.as_str() {
            "queue" => queue = Some(value),
            "weight" => policy.weight = value.parse().expect("weight=<n> is a number"),
            "placement" => {
                policy.placement = Placement::parse(&value).unwrap_or_else(|| panic!("unknown placement {value:?}"))
            }
            _ => panic!("unknown queue-policy field {key:?}"),
        }
    }
    let command = Command::SetQueuePolicy {
        now_ms: arg_u64(case, "at").unwrap_or(0),
        queue: queue.expect("queue-policy needs queue=<q>"),
        policy,
    };
    match apply_checked(state, command) {
        CommandResponse::QueuePolicySet(Ok(())) => "ok".to_string(),
        CommandResponse::QueuePolicySet(Err(e)) => fmt_err(&e),
        other => panic!("queue-policy answered {other:?}"),
    }
}

fn policies(state: &SchedulerState) -> String {
    let lines: Vec<String> = state
        .queue_policies()
        .map(|(queue, p)| format!("{queue} weight={} placement={}", p.weight, p.placement.as_str()))
        .collect();
    if lines.is_empty() {
        return "no policies".to_string();
    }
    lines.join("\n")
}

fn workers(state: &SchedulerState) -> String {
    let lines: Vec<String> = state
        .workers()
        .map(|w| {
            let running: Vec<TaskId> = state.running_on(&w.id).map(|t| t.id).collect();
            let mut line = format!(
                "{} session={} slots={} running={} lease={} registered={}",
                w.id,
                w.session,
                w.slots,
                fmt_ids(&running),
                w.lease_ms,
                w.registered_at_ms
            );
            if w.draining {
                line += " draining";
            }
            for (key, value) in &w.labels {
                line += &format!(" label.{key}={value:?}");
            }
            if w.resources != Resources::default() {
                let free = state.free_resources(&w.id);
                line += &format!(
                    " cpu={} mem={} free: cpu={} mem={}",
                    w.resources.cpu_millis, w.resources.memory_mb, free.cpu_millis, free.memory_mb
                );
            }
            line
        })
        .collect();
    if lines.is_empty() {
        return "no workers".to_string();
    }
    lines.join("\n")
}

fn fmt_ids(ids: &[TaskId]) -> String {
    let ids: Vec<String> = ids.iter().map(TaskId::to_string).collect();
    format!("[{}]", ids.join(" "))
}

fn parse_outcome(text: &str) -> AttemptOutcome {
    [
        AttemptOutcome::Running,
        AttemptOutcome::Succeeded,
        AttemptOutcome::Failed,
        AttemptOutcome::TimedOut,
        AttemptOutcome::LeaseExpired,
        AttemptOutcome::Cancelled,
        AttemptOutcome::HandedBack,
        AttemptOutcome::WorkerRestarted,
    ]
    .into_iter()
    .find(|o| o.as_str() == text)
    .unwrap_or_else(|| panic!("unknown outcome {text:?}"))
}

/// One line per error variant, naming the field for invalid arguments.
fn fmt_err(e: &StateError) -> String {
    match e {
        StateError::InvalidArgument { field, problem } => format!("InvalidArgument {field}: {problem}"),
        StateError::TaskNotFound(id) => format!("TaskNotFound {id}"),
        StateError::AlreadyFinished { task_id, status } => format!("AlreadyFinished task={task_id} status={status}"),
        StateError::RequestIdConflict { request_id, task_id } => {
            format!("RequestIdConflict request={request_id:?} task={task_id}")
        }
        StateError::WorkerNotFound(worker_id) => format!("WorkerNotFound {worker_id}"),
        StateError::WorkerSessionMismatch { worker_id } => format!("WorkerSessionMismatch {worker_id}"),
        StateError::StaleToken {
            task_id,
            token,
            current,
        } => format!("StaleToken task={task_id} token={token}: {current}"),
        StateError::NotAssignable { task_id, why } => format!("NotAssignable task={task_id}: {why}"),
        StateError::ScheduleNotFound(name) => format!("ScheduleNotFound {name}"),
        StateError::ScheduleExists(name) => format!("ScheduleExists {name}"),
        StateError::AlreadyFired {
            schedule,
            scheduled_ms,
            cursor_ms,
        } => format!("AlreadyFired {schedule} at={scheduled_ms} cursor={cursor_ms}"),
        StateError::ScheduleNotFireable { schedule, why } => format!("ScheduleNotFireable {schedule}: {why}"),
        StateError::WorkflowNotFound(id) => format!("WorkflowNotFound {id}"),
    }
}

fn arg(case: &TestCase, key: &str) -> Option<String> {
    case.args.get(key).map(|values| values.join(","))
}

fn arg_u64(case: &TestCase, key: &str) -> Option<u64> {
    arg(case, key).map(|v| v.parse().unwrap_or_else(|_| panic!("{key}={v:?} is not a number")))
}

/// The directive's arguments but `at`, by key, as `key=value` fields.
fn directive_fields(case: &TestCase) -> Vec<(String, String)> {
    case.args
        .iter()
        .filter(|(key, _)| key.as_str() != "at")
        .map(|(key, values)| (key.clone(), values.join(",")))
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect()
}

/// The directive's arguments, then the fields of every input line.
fn all_fields(case: &TestCase) -> Vec<(String, String)> {
    let mut fields = directive_fields(case);
    fields.extend(case.input.lines().flat_map(tokenize));
    fields
}

/// Builds a spec from `key=value` fields; fields not given take a valid default.
fn parse_spec(fields: Vec<(String, String)>) -> TaskSpec {
    let mut spec = TaskSpec {
        name: "task".to_string(),
        queue: "default".to_string(),
        priority: 0,
        payload: Payload::Command {
            command_line: "true".to_string(),
            env: BTreeMap::new(),
        },
        labels: BTreeMap::new(),
        max_attempts: 3,
        attempt_timeout_ms: 60_000,
        client_request_id: None,
        constraints: BTreeMap::new(),
        resources: Resources::default(),
        affinity_key: None,
        retry_backoff_ms: DEFAULT_BACKOFF_MS,
        not_before_ms: 0,
        delay_ms: 0,
    };
    let mut command_line = "true".to_string();
    let mut env = BTreeMap::new();
    let mut opaque: Option<(String, Vec<u8>)> = None;
    for (key, value) in fields {
        let number = || -> i64 {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{key}={value:?} is not a number"))
        };
        let unsigned = || -> u64 {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{key}={value:?} is not a number"))
        };
        match key.as_str() {
            "name" => spec.name = value.clone(),
            "queue" => spec.queue = value.clone(),
            "priority" => spec.priority = number() as i32,
            "request" => spec.client_request_id = Some(value.clone()),
            "attempts" => spec.max_attempts = unsigned() as u32,
            "timeout" => spec.attempt_timeout_ms = unsigned(),
            "cmd" => command_line = value.clone(),
            "kind" => opaque.get_or_insert_with(Default::default).0 = value.clone(),
            "data" => opaque.get_or_insert_with(Default::default).1 = value.clone().into_bytes(),
            "cpu" => spec.resources.cpu_millis = unsigned() as u32,
            "mem" => spec.resources.memory_mb = unsigned() as u32,
            "affinity" => spec.affinity_key = Some(value.clone()),
            "backoff" => spec.retry_backoff_ms = unsigned(),
            "delay" => spec.delay_ms = unsigned(),
            "not_before" => spec.not_before_ms = unsigned(),
            "constraints" => {
                for pair in value.split(',').filter(|p| !p.is_empty()) {
                    let (k, v) = pair
                        .split_once(':')
                        .unwrap_or_else(|| panic!("expected k:v, got {pair:?}"));
                    spec.constraints.insert(k.to_string(), parse_value(v));
                }
            }
            "labels" => {
                for i in 0..number() {
                    spec.labels.insert(format!("k{i}"), "v".to_string());
                }
            }
            "envs" => {
                for i in 0..number() {
                    env.insert(format!("E{i}"), "v".to_string());
                }
            }
            _ => {
                if let Some(label) = key.strip_prefix("label.") {
                    spec.labels.insert(parse_value(label), value.clone());
                } else if let Some(name) = key.strip_prefix("env.") {
                    env.insert(parse_value(name), value.clone());
                } else if let Some(constraint) = key.strip_prefix("constraint.") {
                    spec.constraints.insert(parse_value(constraint), value.clone());
                } else {
                    panic!("unknown spec field {key:?}");
                }
            }
        }
    }
    spec.payload = match opaque {
        Some((kind, data)) => Payload::Opaque { kind, data },
        None => Payload::Command { command_line, env },
    };
    spec
}

/// Splits a spec line into `key=value` pairs. A token is quoted as a whole value
/// (`name="a b"`), or is a bare word up to the next space; see [`parse_value`].
fn tokenize(line: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut chars = line.trim().chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ').is_some() {}
        if chars.peek().is_none() {
            return fields;
        }
        let mut token = String::new();
        let mut in_quotes = false;
        while let Some(c) = chars.next() {
            match c {
                ' ' if !in_quotes => break,
                '"' => {
                    in_quotes = !in_quotes;
                    token.push(c);
                }
                '\\' if in_quotes => {
                    token.push(c);
                    token.extend(chars.next());
                }
                _ => token.push(c),
            }
        }
        assert!(!in_quotes, "unterminated quote in {line:?}");
        // The key ends at the first `=` that is not inside a generator or quotes.
        let split = split_key(&token).unwrap_or_else(|| panic!("expected key=value, got {token:?}"));
        let (key, value) = token.split_at(split);
        fields.push((key.to_string(), parse_value(&value[1..])));
    }
}

fn split_key(token: &str) -> Option<usize> {
    let mut depth = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in token.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '(' if !in_quotes => depth += 1,
            ')' if !in_quotes => depth -= 1,
            '=' if depth == 0 && !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// `"quoted with escapes"`, `(text*n)` for text repeated n times, or the text itself.
fn parse_value(raw: &str) -> String {
    if let Some(quoted) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let mut out = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            out.push(match chars.next() {
                Some('n') => '\n',
                Some('t') => '\t',
                Some('r') => '\r',
                Some('0') => '\0',
                Some('u') => {
                    let hex: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                    let code = u32::from_str_radix(&hex, 16).unwrap_or_else(|_| panic!("bad \\u{{}} in {raw:?}"));
                    char::from_u32(code).unwrap_or_else(|| panic!("bad \\u{{}} in {raw:?}"))
                }
                Some(other) => other,
                None => panic!("dangling escape in {raw:?}"),
            });
        }
        return out;
    }
    if let Some(generator) = raw.strip_prefix('(').and_then(|r| r.strip_suffix(')'))
        && let Some((text, count)) = generator.rsplit_once('*')
    {
        let count: usize = count.parse().unwrap_or_else(|_| panic!("bad repeat count in {raw:?}"));
        return text.repeat(count);
    }
    raw.to_string()
}

/// xorshift64*: a tiny deterministic generator, so a failing run can be replayed by seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // xorshift must not start at 0; mix the seed so small seeds differ from the start.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A spec drawn from small pools, so request ids repeat (idempotent retries and conflicts),
/// queues and priorities collide (ready order ties), and some specs are invalid. A spec
/// with a request id is usually the one spec that id stands for (a retry), sometimes
/// another (a conflict). Dispatch fields are drawn too: short delays and backoffs (the clock
/// moves 10 ms a step), resources and a label constraint some workers cannot meet.
fn random_spec(rng: &mut Rng) -> TaskSpec {
    let request = (rng.below(2) == 0).then(|| rng.below(12));
    let mut fields_rng = match request {
        Some(request) if rng.below(4) != 0 => Rng::new(1000 + request),
        _ => Rng::new(rng.next()),
    };
    let r = &mut fields_rng;
    let mut fields = vec![
        (
            "name".to_string(),
            r.pick(&["a", "b", "c", "d", "e", "f", "g", ""]).to_string(),
        ),
        (
            "queue".to_string(),
            r.pick(&["q1", "q2", "q3", "q1", "q2", "q3", "bad queue"]).to_string(),
        ),
        ("priority".to_string(), (r.below(5) as i64 - 2).to_string()),
        (
            "attempts".to_string(),
            r.pick(&["1", "2", "3", "3", "1", "2", "3", "3", "100", "0"])
                .to_string(),
        ),
        (
            "backoff".to_string(),
            r.pick(&["10", "20", "50", "10", "20", "50", "10", "20", "50", "5"])
                .to_string(),
        ),
        ("delay".to_string(), r.pick(&["0", "0", "0", "30", "120"]).to_string()),
    ];
    if let Some(request) = request {
        fields.push(("request".to_string(), format!("r{request}")));
    }
    if r.below(4) == 0 {
        fields.push(("kind".to_string(), "blob".to_string()));
        fields.push(("data".to_string(), "x".repeat(r.below(64) as usize)));
    }
    if r.below(4) == 0 {
        fields.push((format!("label.l{}", r.below(3)), "v".to_string()));
    }
    if r.below(8) == 0 {
        fields.push(("not_before".to_string(), (1000 + r.below(3000)).to_string()));
    }
    if r.below(4) == 0 {
        fields.push(("cpu".to_string(), "500".to_string()));
        fields.push(("mem".to_string(), r.pick(&["512", "2048"]).to_string()));
    }
    if r.below(5) == 0 {
        fields.push(("constraint.gpu".to_string(), "true".to_string()));
    }
    parse_spec(fields)
}

const WORKER_IDS: [&str; 3] = ["w1", "w2", "w3"];

/// A command drawn at random, aimed mostly at what `state` holds (ready tasks, running
/// attempts and their tokens, registered workers and their sessions) so that most commands
/// are carried out, and sometimes at what it does not (stale tokens, unknown tasks and
/// workers, other sessions, invalid values) so that refusals are exercised too.
fn random_command(rng: &mut Rng, now_ms: u64, state: &SchedulerState) -> Command {
    if rng.below(6) == 0 {
        return random_composite(rng, now_ms, state);
    }
    let max_id = state.task_count() as u64;
    let running: Vec<&Task> = state.running_tasks().collect();
    let session_of = |rng: &mut Rng, worker_id: &str| match state.worker(worker_id) {
        Some(worker) if rng.below(4) != 0 => worker.session.clone(),
        _ => rng.pick(&["s1", "s2", "s3"]).to_string(),
    };
    match rng.below(20) {
        0..=3 => {
            let count = 1 + rng.below(3) as usize;
            Command::SubmitTasks {
                now_ms,
                specs: (0..count).map(|_| random_spec(rng)).collect(),
            }
        }
        4 | 5 => {
            let task_id = match running.is_empty() || rng.below(2) == 0 {
                true => rng.below(max_id + 3),
                false => rng.pick(&running).id,
            };
            Command::CancelTask {
                now_ms,
                task_id,
                reason: rng.pick(&["stop", "", "operator request"]).to_string(),
            }
        }
        6 | 7 => {
            let worker_id = *rng.pick(&WORKER_IDS);
            let mut labels = BTreeMap::new();
            if rng.below(2) == 0 {
                labels.insert("gpu".to_string(), "true".to_string());
            }
            let resources = match rng.below(3) {
                0 => Resources {
                    cpu_millis: 1000,
                    memory_mb: 1024,
                },
                _ => Resources::default(),
            };
            Command::RegisterWorker {
                now_ms,
                registration: WorkerRegistration {
                    id: worker_id.to_string(),
                    session: session_of(rng, worker_id),
                    slots: *rng.pick(&[1, 2, 2, 3, 3, 0]),
                    labels,
                    resources,
                    lease_ms: *rng.pick(&[5000, 5000, 5000, 100]),
                },
            }
        }
        8 if rng.below(3) == 0 => {
            let worker_id = *rng.pick(&WORKER_IDS);
            Command::DrainWorker {
                now_ms,
                worker_id: worker_id.to_string(),
                session: session_of(rng, worker_id),
            }
        }
        8 | 9 => {
            let worker_id = *rng.pick(&WORKER_IDS);
            Command::ExpireWorker {
                now_ms,
                worker_id: worker_id.to_string(),
                session: session_of(rng, worker_id),
            }
        }
        10..=12 => {
            let ready: Vec<TaskId> = ["q1", "q2", "q3"]
                .iter()
                .flat_map(|q| state.ready_in_queue(q))
                .collect();
            let registered: Vec<&str> = state.workers().map(|w| w.id.as_str()).collect();
            let count = 1 + rng.below(4) as usize;
            let assignments = (0..count)
                .map(|_| {
                    let task_id = match ready.is_empty() || rng.below(4) == 0 {
                        true => rng.below(max_id + 2),
                        false => *rng.pick(&ready),
                    };
                    let worker_id = match registered.is_empty() || rng.below(6) == 0 {
                        true => rng.pick(&["w1", "w2", "w3", "nobody"]).to_string(),
                        false => rng.pick(&registered).to_string(),
                    };
                    (task_id, worker_id)
                })
                .collect();
            Command::AssignTasks {
                now_ms,
                seed: rng.next(),
                assignments,
            }
        }
        13..=18 => {
            let (task_id, token) = random_target(rng, state, &running);
            let outcome = *rng.pick(&[
                AttemptOutcome::Succeeded,
                AttemptOutcome::Succeeded,
                AttemptOutcome::Failed,
                AttemptOutcome::Failed,
                AttemptOutcome::TimedOut,
                AttemptOutcome::Cancelled,
                AttemptOutcome::HandedBack,
                AttemptOutcome::Running,
            ]);
            if rng.below(5) == 0 {
                return Command::TimeOutAttempt {
                    now_ms,
                    task_id,
                    token,
                    jitter: rng.next(),
                };
            }
            Command::ReportResult {
                now_ms,
                report: AttemptReport {
                    task_id,
                    token,
                    outcome,
                    exit_code: (outcome == AttemptOutcome::Failed).then_some(1),
                    error: (rng.below(2) == 0).then(|| "boom".to_string()),
                    retryable: rng.below(4) != 0,
                    stdout_tail: "o".repeat(rng.below(3) as usize),
                    stderr_tail: "e".repeat(rng.below(3) as usize),
                },
                jitter: rng.next(),
            }
        }
        _ => Command::SetQueuePolicy {
            now_ms,
            queue: rng.pick(&["q1", "q2", "q3", "bad queue"]).to_string(),
            policy: QueuePolicy {
                weight: *rng.pick(&[1, 2, 3, 0]),
                placement: *rng.pick(&Placement::ALL),
            },
        },
    }
}

/// Schedules (create, fire with duplicates and stale revisions, trigger, pause), small
/// workflows (some with cycles or unknown parents) and broadcasts, so that propagation
/// (children released or skipped, parents finished by their shards) interleaves with
/// reports, cancels and expiries.
fn random_composite(rng: &mut Rng, now_ms: u64, state: &SchedulerState) -> Command {
    let name = rng.pick(&["s1", "s2"]).to_string();
    match rng.below(8) {
        0 => Command::CreateSchedule {
            now_ms,
            name,
            spec: ScheduleSpec {
                recurrence: Recurrence::Every {
                    interval_ms: *rng.pick(&[1000, 2000, 10]),
                },
                template: parse_spec(vec![("attempts".into(), "1".into())]),
                start_ms: 0,
                end_ms: 0,
                misfire: MisfirePolicy::FireOnce,
                overlap: *rng.pick(&[OverlapPolicy::Allow, OverlapPolicy::Forbid, OverlapPolicy::Replace]),
            },
        },
        1 | 2 => {
            let (revision, cursor) = state.schedule(&name).map_or((1, 0), |s| (s.revision, s.cursor_ms));
            let count = 1 + rng.below(3);
            let occurrences = (0..count)
                .map(|i| {
                    let scheduled_ms = match rng.below(5) {
                        0 => cursor,
                        _ => cursor + 1 + i * 7,
                    };
                    let action = if rng.below(4) == 0 {
                        OccurrenceAction::Skip {
                            first_ms: scheduled_ms,
                            count: 1,
                            reason: "misfired".into(),
                        }
                    } else {
                        OccurrenceAction::Fire
                    };
                    Occurrence { scheduled_ms, action }
                })
                .collect();
            Command::FireSchedule {
                now_ms,
                name,
                revision: if rng.below(8) == 0 { revision + 1 } else { revision },
                occurrences,
            }
        }
        3 => Command::TriggerSchedule { now_ms, name },
        4 => Command::PauseSchedule {
            now_ms,
            name,
            paused: rng.below(2) == 0,
        },
        5 | 6 => {
            let count = 1 + rng.below(4) as usize;
            let tasks = (0..count)
                .map(|i| {
                    let after = (0..count)
                        .filter(|j| *j != i && (*j < i || rng.below(10) == 0) && rng.below(2) == 0)
                        .map(|j| format!("k{j}"))
                        .collect();
                    WorkflowTaskSpec {
                        key: format!("k{i}"),
                        spec: parse_spec(vec![
                            ("queue".into(), rng.pick(&["q1", "q2"]).to_string()),
                            ("attempts".into(), rng.pick(&["1", "2"]).to_string()),
                        ]),
                        after,
                    }
                })
                .collect();
            Command::SubmitWorkflow {
                now_ms,
                workflow: WorkflowSpec {
                    name: "wf".into(),
                    request_id: (rng.below(3) == 0).then(|| format!("w{}", rng.below(4))),
                    tasks,
                },
            }
        }
        _ => {
            let pins = match rng.below(2) {
                0 => (0..1 + rng.below(3))
                    .map(|_| Some(rng.pick(&WORKER_IDS).to_string()))
                    .collect(),
                _ => vec![None; 1 + rng.below(3) as usize],
            };
            Command::SubmitShards {
                now_ms,
                spec: parse_spec(vec![("queue".into(), "q3".into()), ("attempts".into(), "1".into())]),
                pins,
            }
        }
    }
}

/// A task and a token to report for: mostly a running attempt's own token; sometimes an
/// earlier token of the same task, another task's token, or any task and number (stale).
fn random_target(rng: &mut Rng, state: &SchedulerState, running: &[&Task]) -> (TaskId, u64) {
    if running.is_empty() || rng.below(6) == 0 {
        let task_id = rng.below(state.task_count() as u64 + 2);
        return (task_id, rng.below(max_token(state) + 2));
    }
    let task = *rng.pick(running);
    let current = task.attempts.last().expect("a running task has an attempt").token;
    match rng.below(6) {
        0 => (task.id, rng.pick(&task.attempts).token.saturating_sub(rng.below(2))),
        1 => (task.id, current + 1),
        _ => (task.id, current),
    }
}

/// The same command sequence applied to two fresh states gives the same responses and equal
/// states (so equal snapshot bytes) at every step; a third state, restored from a snapshot
/// halfway, continues identically. Every command is checked by [`apply_checked`] and every state by
/// [`check_state`], so the invariants hold across many interleavings of submissions,
/// cancels, registrations, drains, expiries, assignments, reports and timeouts. The leader
/// time moves 10 ms a step, and sometimes goes back (a new leader with a slower clock).
/// Seeds are fixed; `STATE_SEED=<n>` replays one.
#[test]
fn same_log_same_state() {
    let seeds: Vec<u64> = match std::env::var("STATE_SEED") {
        Ok(seed) => vec![seed.parse().expect("STATE_SEED is a number")],
        Err(_) => (1..=20).collect(),
    };
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for seed in &seeds {
        let seed = *seed;
        eprintln!("same_log_same_state: seed {seed} (replay with STATE_SEED={seed})");
        let mut rng = Rng::new(seed);
        let mut left = SchedulerState::new();
        let mut right = SchedulerState::new();
        let mut restored: Option<SchedulerState> = None;
        let steps = 300;
        for step in 0..steps {
            let mut now_ms = 1000 + step * 10;
            if rng.below(10) == 0 {
                now_ms -= rng.below(200);
            }
            let command = random_command(&mut rng, now_ms, &left);
            let left_response = apply_checked(&mut left, command.clone());
            let right_response = apply_checked(&mut right, command.clone());
            assert_eq!(
                left_response, right_response,
                "seed {seed} step {step}: responses differ for {command}"
            );
            for kind in response_kinds(&left_response) {
                *seen.entry(kind).or_default() += 1;
            }
            if let Some(restored) = restored.as_mut() {
                let response = apply_checked(restored, command.clone());
                assert_eq!(
                    response, left_response,
                    "seed {seed} step {step}: restored state answered differently to {command}"
                );
                assert_eq!(*restored, left, "seed {seed} step {step}: restored state diverged");
            }
            // Equal states (indexes included) encode to equal snapshots, and one check of the
            // invariants covers both; the bytes are compared now and then all the same.
            assert!(
                left == right,
                "seed {seed} step {step}: the states differ after {command}"
            );
            if let Err(violation) = check_state(&left) {
                panic!("seed {seed} step {step}: the state broke an invariant after {command}: {violation}");
            }
            if step % 50 == 0 || step == steps / 2 || step == steps - 1 {
                let bytes = left.to_snapshot_bytes();
                assert_eq!(
                    bytes,
                    right.to_snapshot_bytes(),
                    "seed {seed} step {step}: snapshots differ"
                );
                if step == steps / 2 {
                    restored = Some(SchedulerState::from_snapshot_bytes(&bytes).expect("a valid snapshot decodes"));
                }
            }
        }
        assert!(left.task_count() > 0, "seed {seed}: the sequence created no task");
    }
    eprintln!("same_log_same_state: outcomes {seen:?}");
    if seeds.len() > 1 {
        for kind in [
            "created",
            "existing",
            "InvalidArgument",
            "RequestIdConflict",
            "cancelled",
            "cancelled-running",
            "TaskNotFound",
            "AlreadyFinished",
            "registered",
            "registered-voided",
            "drained",
            "expired",
            "expired-voided",
            "WorkerNotFound",
            "WorkerSessionMismatch",
            "assigned",
            "NotAssignable",
            "reported-pending",
            "reported-succeeded",
            "reported-failed",
            "StaleToken",
            "policy-set",
            "schedule-created",
            "fired",
            "fired-replacing",
            "skipped",
            "triggered",
            "AlreadyFired",
            "ScheduleNotFireable",
            "workflow",
            "shards",
        ] {
            assert!(seen.contains_key(kind), "the random commands never produced {kind}");
        }
    }
}

/// The leader groups concurrent writes into one `Batch` entry: applying the batch must give
/// the same responses and the same state as applying its commands one entry each, and a
/// nested batch (which no leader writes) must change nothing.
#[test]
fn a_batch_applies_like_its_commands_one_by_one() {
    for seed in 1..=10_u64 {
        eprintln!("batch equivalence: seed {seed}");
        let mut rng = Rng::new(seed);
        let mut one_by_one = SchedulerState::new();
        let mut batched = SchedulerState::new();
        let mut step = 0_u64;
        while step < 300 {
            let size = 1 + rng.below(8);
            let mut commands = Vec::new();
            let mut responses = Vec::new();
            for _ in 0..size {
                let command = random_command(&mut rng, 1000 + step * 10, &one_by_one);
                responses.push(apply_checked(&mut one_by_one, command.clone()));
                commands.push(command);
                step += 1;
            }
            let response = batched.apply(Command::Batch {
                commands: commands.clone(),
            });
            assert_eq!(response, CommandResponse::Batch(responses), "seed {seed} step {step}");
            assert!(batched == one_by_one, "seed {seed} step {step}: states differ");
            if let Err(violation) = check_state(&batched) {
                panic!("seed {seed} step {step}: a batch broke an invariant: {violation}");
            }
            let nested = Command::Batch {
                commands: vec![Command::Batch { commands }],
            };
            let before = batched.to_snapshot_bytes();
            let response = batched.apply(nested);
            assert_eq!(response, CommandResponse::Batch(vec![CommandResponse::Empty]));
            assert_eq!(
                batched.to_snapshot_bytes(),
                before,
                "seed {seed}: a nested batch changed the state"
            );
        }
    }
}

fn response_kinds(response: &CommandResponse) -> Vec<&'static str> {
    let kind = |result: Result<&'static str, &StateError>| match result {
        Ok(kind) => kind,
        Err(StateError::InvalidArgument { .. }) => "InvalidArgument",
        Err(StateError::TaskNotFound(_)) => "TaskNotFound",
        Err(StateError::AlreadyFinished { .. }) => "AlreadyFinished",
        Err(StateError::RequestIdConflict { .. }) => "RequestIdConflict",
        Err(StateError::WorkerNotFound(_)) => "WorkerNotFound",
        Err(StateError::WorkerSessionMismatch { .. }) => "WorkerSessionMismatch",
        Err(StateError::StaleToken { .. }) => "StaleToken",
        Err(StateError::NotAssignable { .. }) => "NotAssignable",
        Err(StateError::ScheduleNotFound(_)) => "ScheduleNotFound",
        Err(StateError::ScheduleExists(_)) => "ScheduleExists",
        Err(StateError::AlreadyFired { .. }) => "AlreadyFired",
        Err(StateError::ScheduleNotFireable { .. }) => "ScheduleNotFireable",
        Err(StateError::WorkflowNotFound(_)) => "WorkflowNotFound",
    };
    match response {
        CommandResponse::Submitted(outcomes) => outcomes
            .iter()
            .map(|o| kind(o.as_ref().map(|o| if o.created { "created" } else { "existing" })))
            .collect(),
        CommandResponse::Cancelled(result) => vec![kind(result.as_ref().map(|o| {
            if o.stopped.is_some() {
                "cancelled-running"
            } else {
                "cancelled"
            }
        }))],
        CommandResponse::Registered(result) => vec![kind(result.as_ref().map(|voided| {
            if voided.is_empty() {
                "registered"
            } else {
                "registered-voided"
            }
        }))],
        CommandResponse::Drained(result) => vec![kind(result.as_ref().map(|()| "drained"))],
        CommandResponse::Expired(voided) if voided.is_empty() => vec!["expired"],
        CommandResponse::Expired(_) => vec!["expired-voided"],
        CommandResponse::Assigned(outcomes) => outcomes.iter().map(|o| kind(o.as_ref().map(|_| "assigned"))).collect(),
        CommandResponse::Reported(result) => vec![kind(result.as_ref().map(|status| match status {
            TaskStatus::Pending => "reported-pending",
            TaskStatus::Succeeded => "reported-succeeded",
            TaskStatus::Failed => "reported-failed",
            _ => "reported-other",
        }))],
        CommandResponse::QueuePolicySet(result) => vec![kind(result.as_ref().map(|()| "policy-set"))],
        CommandResponse::ScheduleCreated(result) => vec![kind(result.as_ref().map(|_| "schedule-created"))],
        CommandResponse::ScheduleChanged(result) => vec![kind(result.as_ref().map(|()| "schedule-changed"))],
        CommandResponse::ScheduleFired(Ok(outcome)) => outcome
            .results
            .iter()
            .map(|r| {
                kind(r.as_ref().map(|run| match run {
                    RunOutcome::Fired { replaced: Some(_), .. } => "fired-replacing",
                    RunOutcome::Fired { .. } => "fired",
                    RunOutcome::Triggered { .. } => "triggered",
                    RunOutcome::Skipped { .. } => "skipped",
                }))
            })
            .collect(),
        CommandResponse::ScheduleFired(Err(e)) => vec![kind(Err(e))],
        CommandResponse::WorkflowSubmitted(result) => vec![kind(result.as_ref().map(|_| "workflow"))],
        CommandResponse::ShardsSubmitted(result) => vec![kind(result.as_ref().map(|_| "shards"))],
        CommandResponse::Empty => vec![],
        CommandResponse::Batch(responses) => responses.iter().flat_map(response_kinds).collect(),
    }
}

/// Every truncation and every single-byte change of a snapshot either decodes to a state
/// that keeps its invariants or is refused with an error; decoding never panics. The state
/// has workers, running and finished attempts, queue policies, a schedule, a workflow and a
/// broadcast. The seed (`DAMAGE_SEED`) is one that reaches that state in few steps: the check
/// is quadratic in the snapshot's size.
#[test]
fn damaged_snapshots_never_panic() {
    let seed = std::env::var("DAMAGE_SEED").map_or(12, |s| s.parse().expect("DAMAGE_SEED is a number"));
    let mut rng = Rng::new(seed);
    let mut state = SchedulerState::new();
    let has_dispatch = |state: &SchedulerState| {
        state.running_tasks().count() > 0
            && tasks(state).any(|t| t.attempts.len() > 1)
            && state.queue_policies().count() > 0
            && state.workflow(1).is_some()
            && state.schedules().next().is_some()
            && tasks(state).any(|t| !t.links.shards.is_empty())
    };
    let mut step = 0;
    while step < 60 || !has_dispatch(&state) {
        assert!(step < 2000, "2000 random commands left no dispatch state to damage");
        let command = random_command(&mut rng, 1000 + step * 10, &state);
        state.apply(command);
        step += 1;
    }
    let bytes = state.to_snapshot_bytes();
    let check = |damaged: &[u8]| {
        if let Ok(decoded) = SchedulerState::from_snapshot_bytes(damaged)
            && let Err(violation) = decoded.check_invariants()
        {
            panic!("a damaged snapshot decoded to a broken state: {violation}");
        }
    };
    for len in 0..bytes.len() {
        check(&bytes[..len]);
    }
    for index in 0..bytes.len() {
        for value in [0u8, 1, 0x7f, 0x80, 0xff, bytes[index].wrapping_add(1)] {
            let mut damaged = bytes.clone();
            damaged[index] = value;
            check(&damaged);
        }
    }
}

// --- Schedules, workflows, broadcasts ----------------------------------------------------------

/// `schedule-create|schedule-update at=<ms> name=<s> (every=<ms> | cron=<expr> [tz=<zone>])
/// [misfire=skip|fire-once|catch-up window=<ms>] [overlap=allow|forbid|replace] [start=<ms>]
/// [end=<ms>]`, the template's spec fields on an input line.
fn schedule_define(state: &mut SchedulerState, case: &TestCase, create: bool) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    // An input line `schedule=<name>` gives a name the directive line cannot spell.
    let input: Vec<(String, String)> = case.input.lines().flat_map(tokenize).collect();
    let name = input
        .iter()
        .find(|(k, _)| k == "schedule")
        .map(|(_, v)| v.clone())
        .or_else(|| arg(case, "name"))
        .expect("needs name=<schedule>");
    let recurrence = match (arg(case, "every"), arg(case, "cron")) {
        (Some(every), _) => Recurrence::Every {
            interval_ms: every.parse().expect("every=<ms>"),
        },
        (None, Some(expression)) => Recurrence::Cron {
            expression,
            time_zone: arg(case, "tz").unwrap_or_else(|| "UTC".into()),
        },
        (None, None) => panic!("needs every=<ms> or cron=<expr>"),
    };
    let misfire = match arg(case, "misfire").as_deref() {
        None | Some("fire-once") => MisfirePolicy::FireOnce,
        Some("skip") => MisfirePolicy::Skip,
        Some("catch-up") => MisfirePolicy::CatchUp {
            window_ms: arg_u64(case, "window").expect("catch-up needs window=<ms>"),
        },
        Some(other) => panic!("unknown misfire {other:?}"),
    };
    let overlap = arg(case, "overlap").map_or(OverlapPolicy::Allow, |o| {
        OverlapPolicy::parse(&o).unwrap_or_else(|| panic!("unknown overlap {o:?}"))
    });
    let template = parse_spec(input.into_iter().filter(|(k, _)| k != "schedule").collect());
    let spec = ScheduleSpec {
        recurrence,
        template,
        start_ms: arg_u64(case, "start").unwrap_or(0),
        end_ms: arg_u64(case, "end").unwrap_or(0),
        misfire,
        overlap,
    };
    let command = if create {
        Command::CreateSchedule { now_ms, name, spec }
    } else {
        Command::UpdateSchedule { now_ms, name, spec }
    };
    match apply_checked(state, command) {
        CommandResponse::ScheduleCreated(Ok(true)) => "created".into(),
        CommandResponse::ScheduleCreated(Ok(false)) => "exists with the same spec".into(),
        CommandResponse::ScheduleCreated(Err(e)) | CommandResponse::ScheduleChanged(Err(e)) => fmt_err(&e),
        CommandResponse::ScheduleChanged(Ok(())) => "ok".into(),
        other => panic!("schedule answered {other:?}"),
    }
}

/// `schedule-pause|schedule-resume|schedule-delete|trigger at=<ms> name=<s>`.
fn schedule_simple(state: &mut SchedulerState, case: &TestCase, what: &str) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let name = arg(case, "name").expect("needs name=<schedule>");
    let command = match what {
        "pause" => Command::PauseSchedule {
            now_ms,
            name,
            paused: true,
        },
        "resume" => Command::PauseSchedule {
            now_ms,
            name,
            paused: false,
        },
        "delete" => Command::DeleteSchedule { now_ms, name },
        _ => Command::TriggerSchedule { now_ms, name },
    };
    fmt_schedule_response(apply_checked(state, command))
}

fn fmt_schedule_response(response: CommandResponse) -> String {
    match response {
        CommandResponse::ScheduleChanged(Ok(())) => "ok".into(),
        CommandResponse::ScheduleChanged(Err(e)) | CommandResponse::ScheduleFired(Err(e)) => fmt_err(&e),
        CommandResponse::ScheduleFired(Ok(outcome)) => {
            let mut out: String = outcome
                .results
                .iter()
                .map(|r| match r {
                    Ok(run) => format!("{}\n", fmt_run(run)),
                    Err(e) => format!("{}\n", fmt_err(e)),
                })
                .collect();
            for stop in &outcome.stopped {
                out += &format!("stop {} token={} (task {})\n", stop.worker_id, stop.token, stop.task_id);
            }
            out
        }
        other => panic!("schedule answered {other:?}"),
    }
}

fn fmt_run(run: &RunOutcome) -> String {
    match run {
        RunOutcome::Fired {
            task_id,
            replaced: None,
        } => format!("fired task {task_id}"),
        RunOutcome::Fired {
            task_id,
            replaced: Some(old),
        } => format!("fired task {task_id}, replaced task {old}"),
        RunOutcome::Triggered { task_id } => format!("triggered task {task_id}"),
        RunOutcome::Skipped {
            first_ms,
            count,
            reason,
        } => format!("skipped {count} from {first_ms}: {reason}"),
    }
}

/// `fire at=<ms> name=<s> [revision=<n>]` with input lines `fire at=<ms>` or
/// `skip at=<ms> first=<ms> count=<n> reason=<text>`: the leader's decisions, one log entry.
/// The revision defaults to the schedule's current one.
fn fire(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let name = arg(case, "name").expect("fire needs name=<schedule>");
    let revision = arg_u64(case, "revision").unwrap_or_else(|| state.schedule(&name).map_or(0, |s| s.revision));
    let occurrences = case
        .input
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (word, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
            let fields: BTreeMap<String, String> = tokenize(rest).into_iter().collect();
            let number = |key: &str| -> u64 {
                fields
                    .get(key)
                    .unwrap_or_else(|| panic!("{line:?} needs {key}="))
                    .parse()
                    .expect("a number")
            };
            let action = match word {
                "fire" => OccurrenceAction::Fire,
                "skip" => OccurrenceAction::Skip {
                    first_ms: number("first"),
                    count: number("count"),
                    reason: fields.get("reason").cloned().unwrap_or_else(|| "misfired".into()),
                },
                other => panic!("unknown occurrence action {other:?}"),
            };
            Occurrence {
                scheduled_ms: number("at"),
                action,
            }
        })
        .collect();
    let command = Command::FireSchedule {
        now_ms,
        name,
        revision,
        occurrences,
    };
    fmt_schedule_response(apply_checked(state, command))
}

/// `schedule name=<s>`: the schedule's replicated record and its runs.
fn show_schedule(state: &SchedulerState, case: &TestCase) -> String {
    let name = arg(case, "name").expect("schedule needs name=<s>");
    let Some(s) = state.schedule(&name) else {
        return "not found".into();
    };
    let mut out = format!(
        "schedule {} revision={} paused={} cursor={} anchor={} last_task={} fired={} skipped={} manual={}",
        s.name,
        s.revision,
        s.paused,
        s.cursor_ms,
        s.anchor_ms,
        s.last_task.map_or("none".to_string(), |t| t.to_string()),
        s.fired_count,
        s.skipped_count,
        s.manual_runs
    );
    for run in &s.runs {
        out += &format!(
            "\n  run scheduled={} decided={} {}",
            run.scheduled_ms,
            run.decided_at_ms,
            fmt_run(&run.outcome)
        );
    }
    out
}

/// `plan at=<now> name=<s> [apply=true]`: what the leader decides for the schedule's due
/// occurrences at `now` (misfire tolerance and policy included); with apply, it proposes them.
fn plan(state: &mut SchedulerState, case: &TestCase) -> String {
    use raftsched_server::recurrence;
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let name = arg(case, "name").expect("plan needs name=<s>");
    let schedule = state.schedule(&name).expect("plan of a known schedule").clone();
    let compiled = recurrence::compile(&schedule.spec.recurrence, schedule.anchor_ms).expect("a valid recurrence");
    let occurrences = recurrence::plan_firing(&schedule, &compiled, now_ms);
    if occurrences.is_empty() {
        return "nothing due".into();
    }
    let mut out: String = occurrences
        .iter()
        .map(|o| match &o.action {
            OccurrenceAction::Fire => format!("fire {}\n", o.scheduled_ms),
            OccurrenceAction::Skip {
                first_ms,
                count,
                reason,
            } => format!("skip {count} from {first_ms} to {}: {reason}\n", o.scheduled_ms),
        })
        .collect();
    if arg(case, "apply").is_some_and(|a| a == "true") {
        let command = Command::FireSchedule {
            now_ms,
            name,
            revision: schedule.revision,
            occurrences,
        };
        out += "applied:\n";
        out += &fmt_schedule_response(apply_checked(state, command));
    }
    out
}

/// `workflow at=<ms> name=<w> [request=<id>]` with one input line per task:
/// `key=<k> [after=<k>,<k>] <spec fields>`.
fn workflow(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let tasks = case
        .input
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut key = String::new();
            let mut after = Vec::new();
            let mut fields = Vec::new();
            for (k, v) in tokenize(line) {
                match k.as_str() {
                    "key" => key = v,
                    "after" => after = v.split(',').filter(|p| !p.is_empty()).map(String::from).collect(),
                    _ => fields.push((k, v)),
                }
            }
            if !fields.iter().any(|(k, _)| k == "name") {
                fields.push(("name".into(), key.clone()));
            }
            WorkflowTaskSpec {
                key,
                spec: parse_spec(fields),
                after,
            }
        })
        .collect();
    let workflow = WorkflowSpec {
        name: arg(case, "name").unwrap_or_else(|| "wf".into()),
        request_id: arg(case, "request"),
        tasks,
    };
    match apply_checked(state, Command::SubmitWorkflow { now_ms, workflow }) {
        CommandResponse::WorkflowSubmitted(Ok(outcome)) => {
            let ids: Vec<TaskId> = state
                .workflow(outcome.workflow_id)
                .map(|w| w.tasks.iter().map(|(_, id)| *id).collect())
                .unwrap_or_default();
            let verb = if outcome.created { "created" } else { "existing" };
            format!("workflow {} {verb} tasks {}", outcome.workflow_id, fmt_ids(&ids))
        }
        CommandResponse::WorkflowSubmitted(Err(e)) => fmt_err(&e),
        other => panic!("workflow answered {other:?}"),
    }
}

/// `workflow-get id=<n>`: the overall status and each task's.
fn workflow_get(state: &SchedulerState, case: &TestCase) -> String {
    let id = arg_u64(case, "id").expect("workflow-get needs id=<n>");
    let Some(workflow) = state.workflow(id) else {
        return "not found".into();
    };
    let mut out = format!(
        "workflow {} {:?} status={}",
        workflow.id,
        workflow.name,
        state.workflow_status(workflow).as_str()
    );
    for (key, task_id) in &workflow.tasks {
        let task = state.get(*task_id).expect("a workflow task exists");
        out += &format!("\n  {key} task={task_id} status={}", task.status);
        if let Some(reason) = &task.reason {
            out += &format!(" reason={reason:?}");
        }
    }
    out
}

/// `shards at=<ms> (pins=<w>,<w> | count=<n>) <spec fields>`: a broadcast (pinned shards) or
/// sharded run.
fn shards(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let pins: Vec<Option<String>> = match (arg(case, "pins"), arg_u64(case, "count")) {
        (Some(pins), _) => pins.split(',').map(|w| Some(w.to_string())).collect(),
        (None, Some(count)) => vec![None; count as usize],
        (None, None) => panic!("shards needs pins=<w>,<w> or count=<n>"),
    };
    let fields: Vec<(String, String)> = directive_fields(case)
        .into_iter()
        .filter(|(k, _)| k != "pins" && k != "count")
        .chain(case.input.lines().flat_map(tokenize))
        .collect();
    let spec = parse_spec(fields);
    match apply_checked(state, Command::SubmitShards { now_ms, spec, pins }) {
        CommandResponse::ShardsSubmitted(Ok(outcome)) => {
            let shards = state
                .get(outcome.task_id)
                .map(|t| t.links.shards.clone())
                .unwrap_or_default();
            let verb = if outcome.created { "created" } else { "existing" };
            format!("parent {} {verb} shards {}", outcome.task_id, fmt_ids(&shards))
        }
        CommandResponse::ShardsSubmitted(Err(e)) => fmt_err(&e),
        other => panic!("shards answered {other:?}"),
    }
}
