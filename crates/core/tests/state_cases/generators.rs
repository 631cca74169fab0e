//! Seeded random specs and commands for the property tests.

use crate::oracle::max_token;
use crate::parser::parse_spec;
use raftsched_core::scheduling::Placement;
use raftsched_core::scheduling::QueuePolicy;
use raftsched_core::state::AttemptOutcome;
use raftsched_core::state::AttemptReport;
use raftsched_core::state::Command;
use raftsched_core::state::MisfirePolicy;
use raftsched_core::state::Occurrence;
use raftsched_core::state::OccurrenceAction;
use raftsched_core::state::OverlapPolicy;
use raftsched_core::state::PurgeUnit;
use raftsched_core::state::Recurrence;
use raftsched_core::state::Resources;
use raftsched_core::state::ScheduleSpec;
use raftsched_core::state::SchedulerState;
use raftsched_core::state::Task;
use raftsched_core::state::TaskId;
use raftsched_core::state::TaskSpec;
use raftsched_core::state::WorkerRegistration;
use raftsched_core::state::WorkflowSpec;
use raftsched_core::state::WorkflowTaskSpec;
use raftsched_core::state::limits;
use std::collections::BTreeMap;

/// xorshift64*: a tiny deterministic generator, so a failing run can be replayed by seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        // xorshift must not start at 0; mix the seed so small seeds differ from the start.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A spec drawn from small pools, so request ids repeat (idempotent retries and conflicts),
/// queues and priorities collide (ready order ties), and some specs are invalid. A spec
/// with a request id is usually the one spec that id stands for (a retry), sometimes
/// another (a conflict). Dispatch fields are drawn too: short delays and backoffs (the clock
/// moves 10 ms a step), resources and a label constraint some workers cannot meet.
pub(crate) fn random_spec(rng: &mut Rng) -> TaskSpec {
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

pub(crate) const WORKER_IDS: [&str; 3] = ["w1", "w2", "w3"];

/// A command drawn at random, aimed mostly at what `state` holds (ready tasks, running
/// attempts and their tokens, registered workers and their sessions) so that most commands
/// are carried out, and sometimes at what it does not (stale tokens, unknown tasks and
/// workers, other sessions, invalid values) so that refusals are exercised too.
pub(crate) fn random_command(rng: &mut Rng, now_ms: u64, state: &SchedulerState) -> Command {
    if rng.below(15) == 0 {
        return random_purge(rng, now_ms, state);
    }
    if rng.below(12) == 0 {
        return random_submit_and_assign(rng, now_ms, state);
    }
    random_base_command(rng, now_ms, state)
}

/// A submission with the leader's pick of worker for some specs: mostly registered workers
/// (full, draining or not), sometimes unknown ones, sometimes fewer or more picks than specs.
fn random_submit_and_assign(rng: &mut Rng, now_ms: u64, state: &SchedulerState) -> Command {
    let registered: Vec<&str> = state.workers().map(|w| w.id.as_str()).collect();
    let count = 1 + rng.below(3) as usize;
    let specs: Vec<TaskSpec> = (0..count).map(|_| random_spec(rng)).collect();
    let picks = count + rng.below(3) as usize - 1;
    let workers = (0..picks)
        .map(|_| match rng.below(5) {
            0 => None,
            1 => Some(rng.pick(&["w1", "nobody"]).to_string()),
            _ if registered.is_empty() => None,
            _ => Some(rng.pick(&registered).to_string()),
        })
        .collect();
    Command::SubmitAndAssign {
        now_ms,
        seed: rng.next(),
        specs,
        workers,
    }
}

/// [`random_command`] without purges: the command stream the seeds of
/// `damaged_snapshots_never_panic` were chosen for (its cost is quadratic in the state it
/// reaches).
pub(crate) fn random_base_command(rng: &mut Rng, now_ms: u64, state: &SchedulerState) -> Command {
    if rng.below(6) == 0 {
        return random_composite(rng, now_ms, state);
    }
    let max_id = state.next_task_id() - 1;
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
            // The draws in the order they always were (the chosen seeds' streams stay).
            let exit_code = (outcome == AttemptOutcome::Failed).then_some(1);
            let error = (rng.below(2) == 0).then(|| "boom".to_string());
            let retryable = rng.below(4) != 0;
            let stdout_tail = "o".repeat(rng.below(3) as usize);
            let stderr_tail = "e".repeat(rng.below(3) as usize);
            let jitter = rng.next();
            let (worker_id, session) = reporter_of(state, task_id, token, jitter);
            Command::ReportResult {
                now_ms,
                report: AttemptReport {
                    task_id,
                    token,
                    outcome,
                    exit_code,
                    error,
                    retryable,
                    stdout_tail,
                    stderr_tail,
                    worker_id,
                    session,
                },
                jitter,
            }
        }
        _ => {
            let queue = rng.pick(&["q1", "q2", "q3", "bad queue"]).to_string();
            let weight = *rng.pick(&[1, 2, 3, 0]);
            let placement = *rng.pick(&Placement::ALL);
            // Derived from the placement rather than drawn, so the stream of draws (and the
            // states the fixed seeds reach) stays as it was: 1 s and 1.5 s expire within a
            // run (300 steps of 10 ms), 0 is refused.
            let retention_ms = match placement {
                Placement::RoundRobin | Placement::BinPack => Some(1000),
                Placement::Random => Some(1500),
                Placement::Spread => Some(0),
                Placement::LeastLoaded | Placement::ConsistentHash => None,
            };
            Command::SetQueuePolicy {
                now_ms,
                queue,
                policy: QueuePolicy {
                    weight,
                    placement,
                    retention_ms,
                },
            }
        }
    }
}

/// A purge: mostly what the leader would propose (the expired units), sometimes with units
/// that do not qualify (unexpired, unfinished, shards alone, unknown) mixed in, and rarely
/// more than an entry may carry.
pub(crate) fn random_purge(rng: &mut Rng, now_ms: u64, state: &SchedulerState) -> Command {
    if rng.below(50) == 0 {
        let units = vec![PurgeUnit::Task(1); limits::MAX_PURGES_PER_ENTRY + 1];
        return Command::PurgeTasks { now_ms, units };
    }
    let mut units = state.expired_units(now_ms, 1 + rng.below(4) as usize, limits::MAX_PURGES_PER_ENTRY);
    for _ in 0..rng.below(3) {
        let id = rng.below(state.next_task_id() + 1);
        units.push(if rng.below(4) == 0 {
            PurgeUnit::Workflow(id % 4)
        } else {
            PurgeUnit::Task(id)
        });
    }
    Command::PurgeTasks { now_ms, units }
}

/// Schedules (create, fire with duplicates and stale revisions, trigger, pause), small
/// workflows (some with cycles or unknown parents) and broadcasts, so that propagation
/// (children released or skipped, parents finished by their shards) interleaves with
/// reports, cancels and expiries.
pub(crate) fn random_composite(rng: &mut Rng, now_ms: u64, state: &SchedulerState) -> Command {
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
/// Who sends a report, picked by the top bits of `pick` (the report's jitter, so no draw is
/// added): 2 in 8 unbound (a v0-v2 entry), 4 in 8 the attempt's holder, 1 in 8 another
/// worker with the holder's session, 1 in 8 the holder in a session it does not have.
fn reporter_of(state: &SchedulerState, task_id: TaskId, token: u64, pick: u64) -> (String, String) {
    let holder = state
        .get(task_id)
        .and_then(|task| task.running_attempt())
        .filter(|attempt| attempt.token == token)
        .and_then(|attempt| state.worker(&attempt.worker_id))
        .map(|worker| (worker.id.clone(), worker.session.clone()))
        .unwrap_or_else(|| ("w1".to_string(), "s1".to_string()));
    match pick >> 61 {
        0 | 1 => (String::new(), String::new()),
        6 => (format!("{}-other", holder.0), holder.1),
        7 => (holder.0, "forged-session".to_string()),
        _ => holder,
    }
}

pub(crate) fn random_target(rng: &mut Rng, state: &SchedulerState, running: &[&Task]) -> (TaskId, u64) {
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
