//! The leader's decisions as a pure function: [`decide`] looks at the replicated state, what
//! the leader knows of its workers ([`Liveness`]), the time and a seed, and returns the
//! commands to propose ([`Plan`]).
//!
//! Architecture invariant: no async, no clock, no randomness, no hub, no App. Every input is
//! an argument, so the same arguments give the same plan; the dispatch loop only builds the
//! inputs, commits the commands and tells the workers. Its data-driven tests
//! (tests/testdata/decide/) run without a cluster or a clock.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::collections::BTreeSet;

use crate::recurrence;
use crate::recurrence::Compiled;
use raftsched_core::scheduling;
use raftsched_core::scheduling::QueueInput;
use raftsched_core::scheduling::placement::TaskNeeds;
use raftsched_core::scheduling::placement::WorkerView;
use raftsched_core::scheduling::placement::splitmix64;
use raftsched_core::state::Command;
use raftsched_core::state::Recurrence;
use raftsched_core::state::Schedule;
use raftsched_core::state::SchedulerState;
use raftsched_core::state::TaskId;
use raftsched_core::state::TaskSpec;
use raftsched_core::state::limits;

#[cfg(test)]
mod tests;

/// Ready tasks the planner looks at per queue and round (2,000): twice a full batch, so tasks
/// that fit no worker do not starve a batch of the ones behind them.
pub const SCAN_PER_QUEUE: usize = 2 * limits::MAX_ASSIGNMENTS_PER_ENTRY;
/// Worker expiries proposed per round (100); the rest wait for the next round, so one round's
/// commits stay short however many workers went silent at once.
pub const MAX_EXPIRIES_PER_ROUND: usize = 100;
/// Attempt timeouts proposed per round (100), bounded like expiries.
pub const MAX_TIMEOUTS_PER_ROUND: usize = MAX_EXPIRIES_PER_ROUND;
/// Schedule firings proposed per round (100); the rest wait for the next.
pub const MAX_FIRINGS_PER_ROUND: usize = 100;

const _: () = assert!(SCAN_PER_QUEUE >= limits::MAX_ASSIGNMENTS_PER_ENTRY);

/// What the leader knows of one worker that the replicated state does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerLiveness {
    /// Its assignment stream to this leader is open: only then may it get assignments.
    pub connected: bool,
    /// Leader time (ms) the leader last heard from it (register, attach, heartbeat, report).
    /// For a worker not heard from since this node was elected it is the election time: the
    /// grace that gives every worker a full lease to re-attach to a new leader.
    pub last_heard_ms: u64,
}

/// A plain snapshot of the leader's live view of its workers, keyed by worker id. A worker of
/// the state missing here counts as heard from just now and not connected (the loop starts
/// its lease when it first sees it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Liveness {
    pub workers: BTreeMap<String, WorkerLiveness>,
}

impl Liveness {
    pub fn is_connected(&self, worker_id: &str) -> bool {
        self.workers.get(worker_id).is_some_and(|w| w.connected)
    }

    /// How long the leader has not heard from a worker, as of `now_ms`.
    pub fn silence_ms(&self, worker_id: &str, now_ms: u64) -> u64 {
        self.workers
            .get(worker_id)
            .map_or(0, |w| now_ms.saturating_sub(w.last_heard_ms))
    }
}

/// The commands of one dispatch round, to propose in this order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// `ExpireWorker`s, then `TimeOutAttempt`s, then `FireSchedule`s, then at most one
    /// `PurgeTasks`, then at most one `AssignTasks` (none when nothing can be placed).
    pub commands: Vec<Command>,
    /// Ready tasks no worker could take, with why (what `task get` shows as pending reason).
    pub unplaced: BTreeMap<TaskId, String>,
}

impl Plan {
    /// Whether the plan holds anything besides its assignment: after committing those, the
    /// state has changed under the assignment, which should be planned again.
    pub fn has_maintenance(&self) -> bool {
        // A purge removes finished tasks only: the planned assignment still holds after it.
        self.commands
            .iter()
            .any(|c| !matches!(c, Command::AssignTasks { .. } | Command::PurgeTasks { .. }))
    }
}

/// The random draws of one round: splitmix64 iterated from the round's seed, so the draws
/// of two seeds do not overlap the way counting up from each would.
struct Draws {
    last: u64,
}

impl Draws {
    fn next(&mut self) -> u64 {
        self.last = splitmix64(self.last);
        self.last
    }
}

/// The leader's decisions at `now_ms`: expire workers silent past their lease, time out
/// attempts overdue past their timeout plus their worker's lease, fire or skip due schedule
/// occurrences, purge finished tasks past their queue's retention, and place ready tasks on
/// connected workers.
///
/// Deterministic in its arguments: `cache` only saves recompiling recurrences, the plan does
/// not depend on what it holds. The placement seed is the first draw from `seed`, then one
/// jitter per timeout, so the placement does not change with the number of timeouts.
pub fn decide(state: &SchedulerState, liveness: &Liveness, now_ms: u64, seed: u64, cache: &mut FiringCache) -> Plan {
    let mut draws = Draws { last: seed };
    let placement_seed = draws.next();
    let expiries = expire_silent_workers(state, liveness, now_ms);
    let expiring: BTreeSet<&str> = expiries
        .iter()
        .filter_map(|c| match c {
            Command::ExpireWorker { worker_id, .. } => Some(worker_id.as_str()),
            _ => None,
        })
        .collect();
    let timeouts = time_out_overdue_attempts(state, &expiring, now_ms, &mut draws);
    let firings = fire_due_schedules(state, cache, now_ms);
    let purge = purge_expired(state, now_ms);
    let assignments = plan_assignments(state, liveness, &expiring, now_ms, placement_seed);
    let mut commands = Vec::with_capacity(expiries.len() + timeouts.len() + firings.len() + 2);
    commands.extend(expiries.iter().cloned());
    commands.extend(timeouts);
    commands.extend(firings);
    commands.extend(purge);
    commands.extend(assignments.command);
    Plan {
        commands,
        unplaced: assignments.unplaced,
    }
}

/// At most one purge a round: the finished units past their queue's retention, oldest first
/// per queue, at most [`limits::MAX_PURGES_PER_ENTRY`] units and (a unit is never split)
/// about as many tasks. O(queues with finished units + expired · log n), from the state's
/// purge index; none when nothing has expired. A backlog drains one entry per round.
fn purge_expired(state: &SchedulerState, now_ms: u64) -> Option<Command> {
    let units = state.expired_units(now_ms, limits::MAX_PURGES_PER_ENTRY, limits::MAX_PURGES_PER_ENTRY);
    (!units.is_empty()).then_some(Command::PurgeTasks { now_ms, units })
}

/// Workers not heard from within their lease lose their attempts.
fn expire_silent_workers(state: &SchedulerState, liveness: &Liveness, now_ms: u64) -> Vec<Command> {
    state
        .workers()
        .filter(|w| liveness.silence_ms(&w.id, now_ms) > w.lease_ms)
        .take(MAX_EXPIRIES_PER_ROUND)
        .map(|w| Command::ExpireWorker {
            now_ms,
            worker_id: w.id.clone(),
            session: w.session.clone(),
        })
        .collect()
}

/// The backstop for a worker that did not enforce an attempt's timeout: past the timeout
/// plus the worker's lease, the leader times the attempt out itself. Attempts of workers
/// expired in the same plan are left out: the expiry voids them.
fn time_out_overdue_attempts(
    state: &SchedulerState,
    expiring: &BTreeSet<&str>,
    now_ms: u64,
    draws: &mut Draws,
) -> Vec<Command> {
    let overdue: Vec<(TaskId, u64)> = state
        .running_tasks()
        .filter_map(|task| {
            let attempt = task.running_attempt()?;
            if expiring.contains(attempt.worker_id.as_str()) {
                return None;
            }
            let lease_ms = state.worker(&attempt.worker_id).map_or(0, |w| w.lease_ms);
            let deadline = attempt
                .started_at_ms
                .saturating_add(task.spec.attempt_timeout_ms)
                .saturating_add(lease_ms);
            (deadline < now_ms).then_some((task.id, attempt.token))
        })
        .take(MAX_TIMEOUTS_PER_ROUND)
        .collect();
    overdue
        .into_iter()
        .map(|(task_id, token)| Command::TimeOutAttempt {
            now_ms,
            task_id,
            token,
            jitter: draws.next(),
        })
        .collect()
}

/// The decisions for every schedule occurrence that is due: fire, or skip as the misfire
/// policy says. Apply refuses any occurrence already decided, so a retry, a failover or a
/// restart can never fire one twice; the cursor in the state means a new leader resumes
/// exactly after the last decided occurrence.
fn fire_due_schedules(state: &SchedulerState, cache: &mut FiringCache, now_ms: u64) -> Vec<Command> {
    cache.entries.retain(|name, _| state.schedule(name).is_some());
    let mut firings = Vec::new();
    for schedule in state.schedules().filter(|s| !s.paused) {
        let entry = cache.entry(schedule);
        let (Some(next_ms), Some(compiled)) = (entry.next_ms, entry.compiled.as_ref()) else {
            continue;
        };
        if next_ms > now_ms {
            continue;
        }
        let occurrences = recurrence::plan_firing(schedule, compiled, now_ms);
        if occurrences.is_empty() {
            continue;
        }
        firings.push(Command::FireSchedule {
            now_ms,
            name: schedule.name.clone(),
            revision: schedule.revision,
            occurrences,
        });
        if firings.len() == MAX_FIRINGS_PER_ROUND {
            break;
        }
    }
    firings
}

/// The leader's cache of each schedule's compiled recurrence and next due time. Only an
/// optimisation: an entry is used only while everything it was computed from is unchanged.
#[derive(Debug, Default)]
pub struct FiringCache {
    entries: BTreeMap<String, NextFiring>,
}

/// What a schedule's cached values were computed from. A schedule deleted and created again
/// under the same name starts at revision 1 again, so the revision alone does not tell.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FiringKey {
    revision: u64,
    created_at_ms: u64,
    anchor_ms: u64,
    start_ms: u64,
    end_ms: u64,
    recurrence: Recurrence,
}

#[derive(Debug)]
struct NextFiring {
    key: FiringKey,
    compiled: Option<Compiled>,
    cursor_ms: u64,
    next_ms: Option<u64>,
}

impl FiringCache {
    /// The schedule's entry, recomputed where the schedule changed.
    fn entry(&mut self, schedule: &Schedule) -> &NextFiring {
        let key = FiringKey {
            revision: schedule.revision,
            created_at_ms: schedule.created_at_ms,
            anchor_ms: schedule.anchor_ms,
            start_ms: schedule.spec.start_ms,
            end_ms: schedule.spec.end_ms,
            recurrence: schedule.spec.recurrence.clone(),
        };
        let stale = self.entries.get(&schedule.name).is_none_or(|e| e.key != key);
        if stale {
            let compiled = recurrence::compile(&schedule.spec.recurrence, schedule.anchor_ms)
                .inspect_err(|e| tracing::warn!(schedule = %schedule.name, "cannot evaluate: {e}"))
                .ok();
            let next_ms = next_due(schedule, compiled.as_ref());
            let entry = NextFiring {
                key,
                compiled,
                cursor_ms: schedule.cursor_ms,
                next_ms,
            };
            self.entries.insert(schedule.name.clone(), entry);
        }
        let entry = self.entries.get_mut(&schedule.name).expect("inserted above");
        if entry.cursor_ms != schedule.cursor_ms {
            entry.cursor_ms = schedule.cursor_ms;
            entry.next_ms = next_due(schedule, entry.compiled.as_ref());
        }
        entry
    }
}

fn next_due(schedule: &Schedule, compiled: Option<&Compiled>) -> Option<u64> {
    compiled.and_then(|c| recurrence::next_in_bounds(schedule, c, schedule.cursor_ms))
}

/// One batch of assignments: the `AssignTasks` to propose (None when nothing can be placed)
/// and why the tasks left out wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignments {
    pub command: Option<Command>,
    pub unplaced: BTreeMap<TaskId, String>,
}

/// Plans one batch of at most [`limits::MAX_ASSIGNMENTS_PER_ENTRY`] assignments: ready and
/// due delayed tasks onto connected workers that are not draining and not in `excluded`
/// (the workers expired in the same plan). What [`decide`] does last; the loop calls it alone
/// for the next batch after a full one, and the benchmark measures it.
pub fn plan_assignments(
    state: &SchedulerState,
    liveness: &Liveness,
    excluded: &BTreeSet<&str>,
    now_ms: u64,
    seed: u64,
) -> Assignments {
    let workers = worker_views(state, liveness, excluded);
    let queues = candidate_queues(state, now_ms);
    let needs_of = |task_id: TaskId| {
        let spec = &state.get(task_id).expect("planned tasks exist").spec;
        TaskNeeds {
            namespace: spec.namespace(),
            constraints: &spec.constraints,
            resources: spec.resources,
            affinity_key: spec.affinity(),
        }
    };
    let plan = scheduling::plan(queues, workers, &needs_of, limits::MAX_ASSIGNMENTS_PER_ENTRY, seed);
    let command = (!plan.assignments.is_empty()).then_some(Command::AssignTasks {
        now_ms,
        seed,
        assignments: plan.assignments,
    });
    Assignments {
        command,
        unplaced: plan.unplaced,
    }
}

/// The connected workers that are not draining and not in `excluded`, as the planner sees
/// them, sorted by id (the state's order).
fn worker_views(state: &SchedulerState, liveness: &Liveness, excluded: &BTreeSet<&str>) -> Vec<WorkerView> {
    state
        .workers()
        .filter(|w| !w.draining && liveness.is_connected(&w.id) && !excluded.contains(w.id.as_str()))
        .map(|w| WorkerView {
            id: w.id.clone(),
            labels: {
                // Every worker matches the pin of its own id (broadcast shards), whatever
                // labels it declared.
                let mut labels = w.labels.clone();
                labels.insert(limits::PIN_LABEL.to_string(), w.id.clone());
                labels
            },
            slots: w.slots,
            running: state.running_count(&w.id) as u32,
            free: state.free_resources(&w.id),
            total: w.resources,
        })
        .collect()
}

/// The leader's pick of a worker for each spec of a submission, so that a task that can start
/// at once starts in its submission's own log entry (`Command::SubmitAndAssign`): one commit
/// from submit to push instead of two in a row plus a dispatch round (issue 14). `None` for
/// a spec that waits for the dispatcher.
///
/// Only while nothing waits: with a ready task or a due delayed one in any queue, every spec
/// gets `None`, so a new task never overtakes older ones or another queue's fair share; the
/// dispatcher's round decides as it always did. A spec not ready at `now_ms` (a delay, a
/// not-before) waits too. The picks are the planner's own on the specs alone (constraints,
/// resources, affinity, the queue's placement), and apply checks each again: two
/// submissions that picked the same last slot leave the later task pending, not refused.
///
/// O(workers) to find no free slot; O(workers · labels + specs · workers) when there is one.
pub fn place_submissions(
    state: &SchedulerState,
    liveness: &Liveness,
    specs: &[TaskSpec],
    now_ms: u64,
    seed: u64,
) -> Vec<Option<String>> {
    let mut picks = vec![None; specs.len()];
    let backlog = state.ready_queues().next().is_some() || state.due_delayed(now_ms).next().is_some();
    let free_slot = state
        .workers()
        .any(|w| !w.draining && (state.running_count(&w.id) as u32) < w.slots && liveness.is_connected(&w.id));
    if backlog || !free_slot {
        return picks;
    }
    // Each spec is named by its index in `specs` (the tasks have no ids before apply).
    let mut by_queue: BTreeMap<&str, Vec<TaskId>> = BTreeMap::new();
    for (index, spec) in specs.iter().enumerate() {
        if spec.delay_ms == 0 && spec.not_before_ms <= now_ms {
            by_queue.entry(spec.queue.as_str()).or_default().push(index as TaskId);
        }
    }
    let queues = by_queue
        .into_iter()
        .map(|(queue, mut ready)| {
            ready.sort_by_key(|&index| (Reverse(specs[index as usize].priority), index));
            QueueInput {
                name: queue,
                policy: state.queue_policy(queue),
                // No queue has work waiting, so shares are even: only these specs compete.
                running: 0,
                ready,
            }
        })
        .collect();
    let needs_of = |index: TaskId| {
        let spec = &specs[index as usize];
        TaskNeeds {
            namespace: spec.namespace(),
            constraints: &spec.constraints,
            resources: spec.resources,
            affinity_key: spec.affinity(),
        }
    };
    let workers = worker_views(state, liveness, &BTreeSet::new());
    let plan = scheduling::plan(queues, workers, &needs_of, limits::MAX_ASSIGNMENTS_PER_ENTRY, seed);
    for (index, worker_id) in plan.assignments {
        picks[index as usize] = Some(worker_id);
    }
    picks
}

/// Per queue, the first [`SCAN_PER_QUEUE`] ready tasks and the due delayed ones, in dispatch
/// order.
fn candidate_queues(state: &SchedulerState, now_ms: u64) -> Vec<QueueInput<'_>> {
    let running = state.running_per_queue();
    let mut candidates: BTreeMap<&str, Vec<TaskId>> = BTreeMap::new();
    for queue in state.ready_queues() {
        candidates.insert(queue, state.ready_in_queue(queue).take(SCAN_PER_QUEUE).collect());
    }
    for task_id in state.due_delayed(now_ms).take(SCAN_PER_QUEUE) {
        let Some(task) = state.get(task_id) else { continue };
        candidates.entry(task.spec.queue.as_str()).or_default().push(task_id);
    }
    candidates
        .into_iter()
        .map(|(queue, mut ready)| {
            // Due delayed tasks join the ready ones in dispatch order.
            ready.sort_by_key(|id| state.get(*id).map(|t| (Reverse(t.spec.priority), t.id)));
            QueueInput {
                name: queue,
                policy: state.queue_policy(queue),
                running: running.get(queue).copied().unwrap_or(0),
                ready,
            }
        })
        .collect()
}
