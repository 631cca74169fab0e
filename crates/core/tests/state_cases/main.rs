//! Data-driven tests of the pure scheduler state machine, in the style of raft-rs: every file
//! under `crates/core/tests/testdata/state/` is a script of directives, each followed by the text the
//! state answers. `REWRITE=1 cargo test -p raftsched-core --test state_cases` regenerates the expected text.
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
//! - `list [state=<status>] [queue=<q>] [namespace=<n>] [after=<id>] [limit=<n>]`: one line per task, then
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
//! - `submit-assign at=<ms> [seed=<n>]` with input lines `worker=<id> <spec fields>` (or
//!   `worker=-` for none): the leader's submission with its pick of worker per spec, one log
//!   entry. One line per spec: `task <id> created`, with `-> <worker> attempt=<n> token=<t>`
//!   or `unassigned: <error>` when a worker was named, `task <id> existing`, or the error.
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

mod generators;
mod oracle;
mod parser;
mod runner;
mod schedules;
use std::collections::BTreeMap;

use generators::Rng;
use generators::random_base_command;
use generators::random_command;
use oracle::apply_checked;
use oracle::check_state;
use oracle::tasks;
use raftsched_core::state::Command;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::RunOutcome;
use raftsched_core::state::SchedulerState;
use raftsched_core::state::StateError;
use raftsched_core::state::TaskStatus;
use runner::run_directive;

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
                assert_eq!(
                    restored.digest(),
                    left.digest(),
                    "seed {seed} step {step}: digests differ"
                );
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
            "NotAttemptHolder",
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
            "purged",
            "purged-none",
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
        Err(StateError::NotAttemptHolder { .. }) => "NotAttemptHolder",
        Err(StateError::NotAssignable { .. }) => "NotAssignable",
        Err(StateError::ScheduleNotFound(_)) => "ScheduleNotFound",
        Err(StateError::ScheduleExists(_)) => "ScheduleExists",
        Err(StateError::AlreadyFired { .. }) => "AlreadyFired",
        Err(StateError::ScheduleNotFireable { .. }) => "ScheduleNotFireable",
        Err(StateError::WorkflowNotFound(_)) => "WorkflowNotFound",
        // Read paths only: apply never answers these.
        Err(StateError::TaskExpired(_)) => "TaskExpired",
        Err(StateError::WorkflowExpired(_)) => "WorkflowExpired",
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
        CommandResponse::SubmittedAndAssigned(outcomes) => outcomes
            .iter()
            .map(|(submitted, assigned)| match (submitted, assigned) {
                (Err(_), _) => kind(submitted.as_ref().map(|_| "")),
                (Ok(_), Some(Ok(_))) => "created-assigned",
                (Ok(_), Some(Err(_))) => "created-unassigned",
                (Ok(o), None) if o.created => "created",
                (Ok(_), None) => "existing",
            })
            .collect(),
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
        CommandResponse::Purged(result) => vec![kind(result.as_ref().map(|outcome| {
            if outcome.purged.is_empty() {
                "purged-none"
            } else {
                "purged"
            }
        }))],
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
        let command = random_base_command(&mut rng, 1000 + step * 10, &state);
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
