//! The oracle: what every command must have done to the state, checked against its response.

use crate::PIN_LABEL;
use raftsched_core::scheduling::retry_delay_ms;
use raftsched_core::state::AttemptOutcome;
use raftsched_core::state::AttemptReport;
use raftsched_core::state::Command;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::PlacedOutcome;
use raftsched_core::state::PurgeOutcome;
use raftsched_core::state::PurgeUnit;
use raftsched_core::state::RunOutcome;
use raftsched_core::state::SchedulerState;
use raftsched_core::state::Task;
use raftsched_core::state::TaskId;
use raftsched_core::state::TaskOrigin;
use raftsched_core::state::TaskStatus;
use std::collections::BTreeSet;

/// The state's own invariants, and what the tests check independently of them.
pub(crate) fn check_state(state: &SchedulerState) -> Result<(), String> {
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

/// Every task, in id order, without cloning. Ids are allocated densely from 1; an id that
/// is gone was purged.
pub(crate) fn tasks(state: &SchedulerState) -> impl Iterator<Item = &Task> {
    (1..state.next_task_id()).filter_map(|id| {
        let task = state.get(id);
        assert!(
            task.is_some() || state.was_purged(id),
            "task {id} is neither there nor purged"
        );
        task
    })
}

pub(crate) fn max_token(state: &SchedulerState) -> u64 {
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
pub(crate) fn apply_checked(state: &mut SchedulerState, command: Command) -> CommandResponse {
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
        (Command::SubmitAndAssign { .. }, CommandResponse::SubmittedAndAssigned(outcomes)) => {
            let (decomposed, expected) = submit_then_assign(&baseline, command.clone());
            assert_eq!(
                outcomes, &expected,
                "submit-and-assign answered unlike a submit then an assign"
            );
            assert_eq!(
                *state, decomposed,
                "submit-and-assign left another state than a submit then an assign"
            );
            assert_eq!(state.digest(), decomposed.digest());
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
                    worker_id: String::new(),
                    session: String::new(),
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
        (Command::PurgeTasks { units, .. }, CommandResponse::Purged(result)) => match result {
            Err(_) => refused(state, "purge"),
            Ok(outcome) => check_purge(before, state, units, outcome),
        },
        (command, response) => panic!("{command} answered {response:?}"),
    }
    response
}

/// Tasks whose attempt was voided with their worker: the attempt ended as `outcome`
/// (lease-expired, or worker-restarted for a new session), and the task is back in the queue
/// at once, or failed when it has no attempt left.
pub(crate) fn check_voided(state: &SchedulerState, voided: &[TaskId], outcome: AttemptOutcome) {
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
pub(crate) fn check_report(
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
    if !report.is_unbound() {
        let holder = &old.running_attempt().expect("checked above").worker_id;
        let session = before.worker(holder).map(|w| w.session.as_str());
        assert_eq!(
            (holder.as_str(), session),
            (report.worker_id.as_str(), Some(report.session.as_str())),
            "a report from another worker or session was accepted"
        );
    }
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
pub(crate) fn assert_only_changed(
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

/// The tasks of a purge unit in `state`, computed here independently of the state's own
/// bookkeeping: `None` when it is no unit (unknown, or a shard or workflow task alone).
fn unit_tasks(state: &SchedulerState, unit: PurgeUnit) -> Option<Vec<TaskId>> {
    match unit {
        PurgeUnit::Task(id) => {
            let task = state.get(id)?;
            if matches!(
                task.links.origin,
                Some(TaskOrigin::Shard { .. } | TaskOrigin::Workflow { .. })
            ) {
                return None;
            }
            Some(std::iter::once(id).chain(task.links.shards.iter().copied()).collect())
        }
        PurgeUnit::Workflow(id) => {
            let tasks: Vec<TaskId> = state.workflow(id)?.tasks.iter().map(|(_, t)| *t).collect();
            (!tasks.is_empty()).then_some(tasks)
        }
    }
}

/// A purge removed exactly the named units that were whole, finished and past their home
/// queue's retention at the state's clock, all of their tasks, and nothing else.
fn check_purge(before: &SchedulerState, state: &SchedulerState, units: &[PurgeUnit], outcome: &PurgeOutcome) {
    let now_ms = state.clock_ms();
    let mut gone = BTreeSet::new();
    let mut expected = Vec::new();
    for unit in units {
        let Some(ids) = unit_tasks(before, *unit) else { continue };
        if ids.iter().any(|id| gone.contains(id)) {
            continue;
        }
        let finished: Vec<&Task> = ids.iter().filter_map(|id| before.get(*id)).collect();
        if finished.len() != ids.len() || finished.iter().any(|t| !t.status.is_terminal()) {
            continue;
        }
        let finished_at_ms = finished.iter().map(|t| t.updated_at_ms).max().unwrap_or(0);
        let retention_ms = before.queue_policy(&finished[0].spec.queue).effective_retention_ms();
        if finished_at_ms + retention_ms > now_ms {
            continue;
        }
        gone.extend(ids);
        expected.push(*unit);
    }
    assert_eq!(outcome.purged, expected, "a purge removed other units than qualified");
    assert_eq!(outcome.tasks_removed, gone.len() as u64);
    assert_eq!(state.task_count(), before.task_count() - gone.len());
    for id in &gone {
        assert!(
            state.get(*id).is_none() && state.was_purged(*id),
            "purged task {id} is still there"
        );
    }
    for unit in &expected {
        if let PurgeUnit::Workflow(id) = unit {
            assert!(state.workflow(*id).is_none() && state.workflow_was_purged(*id));
        }
    }
    assert_only_changed(state, before, &gone, &[]);
}

/// What a `SubmitAndAssign` must do, one spec at a time through the plain commands (each
/// checked by [`apply_checked`]): a `SubmitTasks` of the spec, then, for a created task with
/// a worker named, an `AssignTasks` of it to that worker at the same time.
fn submit_then_assign(before: &SchedulerState, command: Command) -> (SchedulerState, Vec<PlacedOutcome>) {
    let Command::SubmitAndAssign {
        now_ms,
        seed,
        specs,
        workers,
    } = command
    else {
        unreachable!("only called for SubmitAndAssign");
    };
    let mut state = before.clone();
    let mut workers = workers.into_iter();
    let mut outcomes = Vec::new();
    for spec in specs {
        let worker = workers.next().flatten();
        let CommandResponse::Submitted(mut submitted) = apply_checked(
            &mut state,
            Command::SubmitTasks {
                now_ms,
                specs: vec![spec],
            },
        ) else {
            panic!("submit answered with another response");
        };
        let submitted = submitted.remove(0);
        let assigned = match (&submitted, worker) {
            (Ok(outcome), Some(worker_id)) if outcome.created => {
                let assign = Command::AssignTasks {
                    now_ms,
                    seed,
                    assignments: vec![(outcome.task_id, worker_id)],
                };
                let CommandResponse::Assigned(mut assigned) = apply_checked(&mut state, assign) else {
                    panic!("assign answered with another response");
                };
                Some(assigned.remove(0))
            }
            _ => None,
        };
        outcomes.push((submitted, assigned));
    }
    (state, outcomes)
}
