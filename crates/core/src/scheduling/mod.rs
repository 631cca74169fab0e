//! Scheduling strategies and algorithms, as pure functions the leader's dispatcher calls:
//!
//! - ordering within a queue: priority, then age (the state's ready index);
//! - fairness across queues: weighted fair share of running slots ([`plan`]);
//! - placement of a task on a worker ([`placement`]);
//! - retry backoff ([`retry_delay_ms`]);
//!   (occurrence times of recurring schedules need a calendar: `raftsched_server::recurrence`).
//!
//! Architecture invariant: nothing here reads a clock or an OS random source; randomness
//! comes from a seed the leader writes into the log, so a plan can be replayed.

pub mod placement;

use std::collections::BTreeMap;

pub use crate::state::MAX_QUEUE_WEIGHT;
pub use crate::state::Placement;
pub use crate::state::QueuePolicy;
pub use crate::state::retry_delay_ms;
use placement::TaskNeeds;
use placement::WorkerView;

pub use crate::state::Resources;
use crate::state::TaskId;

/// One queue as the planner sees it.
pub struct QueueInput<'a> {
    pub name: &'a str,
    pub policy: QueuePolicy,
    /// Tasks of this queue running now.
    pub running: u32,
    /// Ready tasks in dispatch order (priority, then age), as many as the planner may look at.
    pub ready: Vec<TaskId>,
}

/// The outcome of one planning round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub assignments: Vec<(TaskId, String)>,
    /// Ready tasks no worker could take, with why.
    pub unplaced: BTreeMap<TaskId, String>,
}

/// Matches ready tasks to workers with free slots.
///
/// Queues take turns by weighted fair share: the next slot goes to the queue with the
/// lowest (running + assigned) / weight, so a busy queue cannot starve another. Within a
/// queue, tasks go in ready order; one that fits no worker is skipped (and reported) so it
/// does not block the tasks behind it. `workers` must be sorted by id.
pub fn plan<'a>(
    queues: Vec<QueueInput<'_>>,
    mut workers: Vec<WorkerView>,
    needs_of: &dyn Fn(TaskId) -> TaskNeeds<'a>,
    max_assignments: usize,
    seed: u64,
) -> Plan {
    let mut plan = Plan::default();
    let mut rng_state = seed;
    let mut draw = move || {
        rng_state = rng_state.wrapping_add(1);
        placement::splitmix64(rng_state)
    };
    let mut turns: Vec<QueueTurn> = queues
        .into_iter()
        .map(|q| QueueTurn {
            name: q.name.to_string(),
            policy: q.policy,
            load: q.running,
            ready: q.ready,
            next: 0,
            cursor: 0,
        })
        .collect();
    let mut free_slots: u64 = workers.iter().map(|w| u64::from(w.free_slots())).sum();
    while plan.assignments.len() < max_assignments && free_slots > 0 {
        let Some(turn) = next_turn(&mut turns) else { break };
        let task_id = turn.ready[turn.next];
        turn.next += 1;
        let needs = needs_of(task_id);
        match placement::place(turn.policy.placement, &needs, &workers, &mut turn.cursor, &mut draw) {
            Some(i) => {
                let worker = &mut workers[i];
                worker.running += 1;
                worker.free = worker.free.saturating_sub(&needs.resources);
                free_slots -= 1;
                turn.load += 1;
                plan.assignments.push((task_id, worker.id.clone()));
            }
            None => {
                plan.unplaced
                    .insert(task_id, placement::no_fit_reason(&needs, &workers));
            }
        }
    }
    plan
}

struct QueueTurn {
    name: String,
    policy: QueuePolicy,
    /// Running plus assigned in this round.
    load: u32,
    ready: Vec<TaskId>,
    /// Position of the next ready task to consider.
    next: usize,
    /// Round-robin position among workers.
    cursor: usize,
}

/// The queue with work left and the lowest load per weight; ties go to the queue name.
fn next_turn(turns: &mut [QueueTurn]) -> Option<&mut QueueTurn> {
    let mut best: Option<usize> = None;
    for (i, turn) in turns.iter().enumerate() {
        if turn.next >= turn.ready.len() {
            continue;
        }
        let better = match best {
            None => true,
            Some(b) => {
                let current = &turns[b];
                // load/weight < current.load/current.weight, compared without division.
                let lhs = u64::from(turn.load) * u64::from(current.policy.weight.max(1));
                let rhs = u64::from(current.load) * u64::from(turn.policy.weight.max(1));
                lhs < rhs || (lhs == rhs && turn.name < current.name)
            }
        };
        if better {
            best = Some(i);
        }
    }
    best.map(move |i| &mut turns[i])
}
