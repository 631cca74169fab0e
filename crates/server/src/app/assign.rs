//! Starting attempts on the leader: its pick of workers for a submission (the one-commit
//! path of issue 14), and telling workers of committed assignments, whichever command
//! committed them (a submission's own entry or the dispatcher's `AssignTasks`).

use std::collections::BTreeMap;

use openraft::ServerState;
use raftsched_client::task_span;
use raftsched_client::trace;
use rand::Rng;

use super::App;
use crate::decide;
use crate::decide::Liveness;
use crate::decide::WorkerLiveness;
use crate::hub::Instruction;
use raftsched_core::state::AssignOutcome;
use raftsched_core::state::Command;
use raftsched_core::state::PlacedOutcome;
use raftsched_core::state::StateError;
use raftsched_core::state::SubmitOutcome;
use raftsched_core::state::TaskId;
use raftsched_core::state::TaskSpec;

impl App {
    /// The command for a submission at `now_ms`: a `SubmitAndAssign` naming a connected
    /// worker with a free slot for each spec that can start at once and waits behind
    /// nothing ([`decide::place_submissions`]), else a plain `SubmitTasks`. Off the leader,
    /// or with no worker connected here, always the plain one.
    pub(super) fn submission(&self, specs: Vec<TaskSpec>, now_ms: u64) -> Command {
        if self.metrics_state() != ServerState::Leader || !self.hub.any_connected() {
            return Command::SubmitTasks { now_ms, specs };
        }
        let seed: u64 = rand::rng().random();
        // Only `connected` counts for placement; the lease times are the dispatcher's.
        let liveness = Liveness {
            workers: self
                .hub
                .connected()
                .into_iter()
                .map(|id| {
                    (
                        id,
                        WorkerLiveness {
                            connected: true,
                            last_heard_ms: now_ms,
                        },
                    )
                })
                .collect(),
        };
        let workers = {
            let state = self.state.read();
            decide::place_submissions(&state.scheduler, &liveness, &specs, now_ms, seed)
        };
        if workers.iter().all(Option::is_none) {
            return Command::SubmitTasks { now_ms, specs };
        }
        Command::SubmitAndAssign {
            now_ms,
            seed,
            specs,
            workers,
        }
    }

    /// An "assign" span per traced spec the command starts, keyed by the spec's index, open
    /// until the command commits; none unless this node exports traces.
    pub(super) fn submission_assign_spans(command: &Command) -> BTreeMap<usize, tracing::Span> {
        let Command::SubmitAndAssign { specs, workers, .. } = command else {
            return BTreeMap::new();
        };
        if !trace::exporting() {
            return BTreeMap::new();
        }
        specs
            .iter()
            .zip(workers)
            .enumerate()
            .filter_map(|(index, (spec, worker))| {
                let parent = spec.trace_parent.as_deref().filter(|_| worker.is_some())?;
                Some((index, task_span!("assign", Some(parent), tracing::field::Empty)))
            })
            .collect()
    }

    /// The outcomes of a committed `SubmitAndAssign`, as a plain submission's, after telling
    /// the workers of the tasks it started; and whether it started every task it created (if
    /// not, the dispatcher has work). `spans` are [`Self::submission_assign_spans`]'.
    pub(super) fn started_at_submit(
        &self,
        placed: Vec<PlacedOutcome>,
        mut spans: BTreeMap<usize, tracing::Span>,
    ) -> (Vec<Result<SubmitOutcome, StateError>>, bool) {
        let mut all_started = true;
        let mut started = Vec::new();
        let mut started_spans = BTreeMap::new();
        let mut outcomes = Vec::with_capacity(placed.len());
        for (index, (submitted, assigned)) in placed.into_iter().enumerate() {
            let created = submitted.as_ref().is_ok_and(|o| o.created);
            match assigned {
                Some(Ok(assigned)) => {
                    if let Some(span) = spans.remove(&index) {
                        span.record("task_id", assigned.task_id);
                        started_spans.insert(assigned.task_id, span);
                    }
                    started.push(assigned);
                }
                Some(Err(refused)) => {
                    tracing::debug!("assignment at submit refused by apply, the dispatcher will place it: {refused}");
                    all_started = false;
                }
                None => all_started &= !created,
            }
            outcomes.push(submitted);
        }
        self.node_metrics.tasks_started_at_submit(started.len() as u64);
        self.push_assigned(started, started_spans);
        (outcomes, all_started)
    }

    /// Tells each worker of its committed assignments: the task, its fencing token and
    /// attempt, and the trace context of a "push" span under the task's "assign" span (from
    /// `spans`, by task id). Records the first attempts' submit→start wait.
    pub(crate) fn push_assigned(&self, assigned: Vec<AssignOutcome>, mut spans: BTreeMap<TaskId, tracing::Span>) {
        let state = self.state.read();
        for assigned in assigned {
            let Some(task) = state.scheduler.get(assigned.task_id) else {
                continue;
            };
            if assigned.attempt == 1 {
                // Both times are the leader's, from the commands: the wait a user sees.
                let waited_ms = task.updated_at_ms.saturating_sub(task.created_at_ms);
                self.node_metrics.task_started(waited_ms);
            }
            let assign = spans.remove(&assigned.task_id).unwrap_or_else(tracing::Span::none);
            let push = if assign.is_disabled() {
                tracing::Span::none()
            } else {
                tracing::info_span!(target: trace::TARGET, parent: &assign, "push", task_id = assigned.task_id)
            };
            drop(assign);
            let instruction = Instruction::Assign {
                trace_parent: trace::traceparent_of(&push, task.spec.trace_parent.as_deref()),
                task: Box::new(task.clone()),
                token: assigned.token,
                attempt: assigned.attempt,
            };
            push.in_scope(|| self.hub.send(&assigned.worker_id, instruction));
        }
    }
}
