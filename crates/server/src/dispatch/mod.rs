//! The leader's dispatch loop and its live view of workers.
//!
//! Architecture invariant: the dispatcher decides, the log records, and only then is a worker
//! told. Every assignment, expiry and timeout is a committed command before any worker hears
//! of it; a deposed leader's writes fail to commit, so two leaders can never both record an
//! assignment of the same attempt.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::time::Duration;

use openraft::ServerState;
use rand::Rng;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::app::AppError;
use crate::app::Consistency;
use crate::app::now_ms;
use crate::hub::Instruction;
use crate::hub::WorkerHub;
use crate::recurrence;
use crate::recurrence::Compiled;
use raftsched_core::scheduling;
use raftsched_core::scheduling::QueueInput;
use raftsched_core::scheduling::placement::TaskNeeds;
use raftsched_core::scheduling::placement::WorkerView;
use raftsched_core::state::Command;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::SchedulerState;
use raftsched_core::state::TaskId;
use raftsched_core::state::limits;

/// How often the loop looks at leases, timeouts and delayed tasks when nothing wakes it.
const TICK: Duration = Duration::from_millis(100);
/// Ready tasks the planner looks at per queue and round.
const SCAN_PER_QUEUE: usize = 2 * limits::MAX_ASSIGNMENTS_PER_ENTRY;
/// Expiries and timeouts proposed per round; the rest wait for the next.
const MAX_EXPIRIES_PER_ROUND: usize = 100;
/// Schedule firings proposed per round; the rest wait for the next.
const MAX_FIRINGS_PER_ROUND: usize = 100;

/// The leader's cache of a schedule's next due time, valid while the schedule's revision and
/// cursor stay the same.
struct NextFiring {
    revision: u64,
    cursor_ms: u64,
    compiled: Option<Compiled>,
    next_ms: Option<u64>,
}

/// Runs on every node; acts only while its node leads.
pub struct Dispatcher {
    app: App,
    shutdown: CancellationToken,
    /// The term this node leads in, once it has caught up and granted workers their grace.
    leading_term: Option<u64>,
    /// Per schedule, when it is next due.
    next_firings: BTreeMap<String, NextFiring>,
}

impl Dispatcher {
    pub fn spawn(app: App, shutdown: CancellationToken) -> JoinHandle<()> {
        let dispatcher = Dispatcher {
            app,
            shutdown,
            leading_term: None,
            next_firings: BTreeMap::new(),
        };
        tokio::spawn(dispatcher.run())
    }

    async fn run(mut self) {
        let hub = self.app.hub().clone();
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = hub.woken() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
            // A write waits for a quorum, which a node being stopped may never see again
            // (the rest of the cluster stopping too): shutdown must not wait for it. A write
            // abandoned here may still commit; the state then says so, and the next leader
            // acts on it (workers learn of assignments on attach and heartbeat).
            let shutdown = self.shutdown.clone();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.step() => {}
            }
        }
        hub.disconnect_all();
    }

    async fn step(&mut self) {
        if !self.still_leading().await {
            return;
        }
        if let Err(e) = self.round().await {
            tracing::debug!("dispatch round stopped: {e}");
        }
    }

    /// Tracks leadership. On a new term: catch up with everything committed before it, then
    /// give every worker a full lease to re-attach. On losing it: drop every stream.
    async fn still_leading(&mut self) -> bool {
        let metrics = self.app.metrics();
        // Cut off from the majority counts as not leading: its writes cannot commit, and the
        // others are electing a new leader. Closing the streams sends the workers looking for
        // it now rather than when the partition heals.
        let not_leading = match metrics.state {
            ServerState::Leader => self.app.check_quorum_contact(&metrics).err().map(|e| e.to_string()),
            _ => Some("no longer leader".to_string()),
        };
        if let Some(why) = not_leading {
            if self.leading_term.take().is_some() {
                tracing::info!("{why}: closing worker streams");
                self.app.hub().disconnect_all();
            }
            return false;
        }
        if self.leading_term == Some(metrics.current_term) {
            return true;
        }
        if self.app.ensure_consistency(Consistency::Linearizable).await.is_err() {
            return false;
        }
        let workers: Vec<String> = self
            .app
            .state()
            .read()
            .scheduler
            .workers()
            .map(|w| w.id.clone())
            .collect();
        // Streams already open were attached to this node as leader (attach checks): keep them.
        self.app.hub().grant_grace(workers.into_iter());
        tracing::info!(term = metrics.current_term, "leading: dispatch starts");
        self.leading_term = Some(metrics.current_term);
        true
    }

    async fn round(&mut self) -> Result<(), AppError> {
        self.expire_silent_workers().await?;
        self.time_out_overdue_attempts().await?;
        self.fire_due_schedules().await?;
        while self.assign_ready_tasks().await? == limits::MAX_ASSIGNMENTS_PER_ENTRY {}
        Ok(())
    }

    /// Workers not heard from within their lease lose their attempts.
    async fn expire_silent_workers(&self) -> Result<(), AppError> {
        let hub = self.app.hub();
        let silent: Vec<(String, String)> = {
            let state = self.app.state().read();
            state
                .scheduler
                .workers()
                .filter(|w| {
                    let silence = hub.silence(&w.id);
                    if silence.is_none() {
                        hub.heard_from(&w.id); // registered before we led and never heard since
                    }
                    silence.is_some_and(|s| s > Duration::from_millis(w.lease_ms))
                })
                .take(MAX_EXPIRIES_PER_ROUND)
                .map(|w| (w.id.clone(), w.session.clone()))
                .collect()
        };
        for (worker_id, session) in silent {
            let command = Command::ExpireWorker {
                now_ms: self.now_ms(),
                worker_id: worker_id.clone(),
                session: session.clone(),
            };
            if let CommandResponse::Expired(voided) = self.app.write(command).await? {
                tracing::warn!(worker = %worker_id, ?voided, "worker lease expired; its attempts go back to the queue");
            }
            hub.forget(&worker_id, &session);
        }
        Ok(())
    }

    /// The backstop for a worker that did not enforce an attempt's timeout: past the timeout
    /// plus the worker's lease, the leader times the attempt out itself.
    async fn time_out_overdue_attempts(&self) -> Result<(), AppError> {
        let now = self.now_ms();
        let overdue: Vec<(TaskId, u64)> = {
            let state = self.app.state().read();
            let scheduler = &state.scheduler;
            scheduler
                .running_tasks()
                .filter_map(|task| {
                    let attempt = task.running_attempt()?;
                    let lease_ms = scheduler.worker(&attempt.worker_id).map_or(0, |w| w.lease_ms);
                    let deadline = attempt
                        .started_at_ms
                        .saturating_add(task.spec.attempt_timeout_ms)
                        .saturating_add(lease_ms);
                    (deadline < now).then_some((task.id, attempt.token))
                })
                .take(MAX_EXPIRIES_PER_ROUND)
                .collect()
        };
        for (task_id, token) in overdue {
            let command = Command::TimeOutAttempt {
                now_ms: now,
                task_id,
                token,
                jitter: rand::rng().random(),
            };
            self.app.write(command).await?;
        }
        Ok(())
    }

    /// Commits the decisions for every schedule occurrence that is due: fire, or skip as the
    /// misfire policy says. Apply refuses any occurrence already decided, so a retry, a
    /// failover or a restart can never fire one twice; the cursor in the state means a new
    /// leader resumes exactly after the last decided occurrence.
    async fn fire_due_schedules(&mut self) -> Result<(), AppError> {
        let now = self.now_ms();
        let firings: Vec<Command> = {
            let state = self.app.state().read();
            let scheduler = &state.scheduler;
            self.next_firings.retain(|name, _| scheduler.schedule(name).is_some());
            let mut firings = Vec::new();
            for schedule in scheduler.schedules().filter(|s| !s.paused) {
                let cached = self
                    .next_firings
                    .entry(schedule.name.clone())
                    .or_insert_with(|| NextFiring {
                        revision: 0,
                        cursor_ms: 0,
                        compiled: None,
                        next_ms: None,
                    });
                if cached.revision != schedule.revision {
                    cached.compiled = recurrence::compile(&schedule.spec.recurrence, schedule.anchor_ms)
                        .inspect_err(|e| tracing::warn!(schedule = %schedule.name, "cannot evaluate: {e}"))
                        .ok();
                    cached.revision = schedule.revision;
                    cached.cursor_ms = schedule.cursor_ms.wrapping_add(1); // force the next-time lookup
                }
                if cached.cursor_ms != schedule.cursor_ms {
                    cached.cursor_ms = schedule.cursor_ms;
                    cached.next_ms = cached
                        .compiled
                        .as_ref()
                        .and_then(|c| recurrence::next_in_bounds(schedule, c, schedule.cursor_ms));
                }
                let (Some(next_ms), Some(compiled)) = (cached.next_ms, cached.compiled.as_ref()) else {
                    continue;
                };
                if next_ms > now {
                    continue;
                }
                let occurrences = recurrence::plan_firing(schedule, compiled, now);
                if occurrences.is_empty() {
                    continue;
                }
                firings.push(Command::FireSchedule {
                    now_ms: now,
                    name: schedule.name.clone(),
                    revision: schedule.revision,
                    occurrences,
                });
                if firings.len() == MAX_FIRINGS_PER_ROUND {
                    break;
                }
            }
            firings
        };
        for command in firings {
            let name = match &command {
                Command::FireSchedule { name, .. } => name.clone(),
                _ => unreachable!("only firings are planned here"),
            };
            match self.app.write(command).await? {
                CommandResponse::ScheduleFired(Ok(outcome)) => {
                    tracing::debug!(schedule = %name, results = ?outcome.results, "schedule fired");
                    self.app.stop_attempts(&outcome.stopped);
                }
                CommandResponse::ScheduleFired(Err(refused)) => {
                    tracing::debug!(schedule = %name, "firing refused by apply: {refused}")
                }
                other => return Err(AppError::Internal(format!("firing answered {other:?}"))),
            }
        }
        Ok(())
    }

    /// Plans one batch of assignments, commits it, then tells the workers. Returns how many
    /// were committed.
    async fn assign_ready_tasks(&self) -> Result<usize, AppError> {
        let now = self.now_ms();
        let seed: u64 = rand::rng().random();
        let plan = {
            let state = self.app.state().read();
            plan_round(&state.scheduler, self.app.hub(), now, seed)
        };
        self.app.hub().set_pending_reasons(plan.unplaced);
        let planned = plan.assignments.len();
        if planned == 0 {
            return Ok(0);
        }
        let command = Command::AssignTasks {
            now_ms: now,
            seed,
            assignments: plan.assignments,
        };
        let CommandResponse::Assigned(outcomes) = self.app.write(command).await? else {
            return Err(AppError::Internal("assign answered with another response".into()));
        };
        let state = self.app.state().read();
        let mut accepted = 0;
        for outcome in outcomes {
            match outcome {
                Ok(assigned) => {
                    accepted += 1;
                    let Some(task) = state.scheduler.get(assigned.task_id) else {
                        continue;
                    };
                    let instruction = Instruction::Assign {
                        task: Box::new(task.clone()),
                        token: assigned.token,
                        attempt: assigned.attempt,
                    };
                    self.app.hub().send(&assigned.worker_id, instruction);
                }
                Err(refused) => tracing::debug!("assignment refused by apply: {refused}"),
            }
        }
        Ok(accepted)
    }

    /// The leader's time, never behind the state's.
    fn now_ms(&self) -> u64 {
        now_ms().max(self.app.state().read().scheduler.clock_ms())
    }
}

/// Builds the planner's inputs from the state and the hub, and plans.
fn plan_round(scheduler: &SchedulerState, hub: &WorkerHub, now_ms: u64, seed: u64) -> scheduling::Plan {
    let workers: Vec<WorkerView> = scheduler
        .workers()
        .filter(|w| !w.draining && hub.is_connected(&w.id))
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
            running: scheduler.running_count(&w.id) as u32,
            free: scheduler.free_resources(&w.id),
            total: w.resources,
        })
        .collect();
    let running = scheduler.running_per_queue();
    let mut candidates: BTreeMap<&str, Vec<TaskId>> = BTreeMap::new();
    for queue in scheduler.ready_queues() {
        candidates.insert(queue, scheduler.ready_in_queue(queue).take(SCAN_PER_QUEUE).collect());
    }
    for task_id in scheduler.due_delayed(now_ms).take(SCAN_PER_QUEUE) {
        let Some(task) = scheduler.get(task_id) else { continue };
        candidates.entry(task.spec.queue.as_str()).or_default().push(task_id);
    }
    let queues: Vec<QueueInput<'_>> = candidates
        .into_iter()
        .map(|(queue, mut ready)| {
            // Due delayed tasks join the ready ones in dispatch order.
            ready.sort_by_key(|id| scheduler.get(*id).map(|t| (Reverse(t.spec.priority), t.id)));
            QueueInput {
                name: queue,
                policy: scheduler.queue_policy(queue),
                running: running.get(queue).copied().unwrap_or(0),
                ready,
            }
        })
        .collect();
    let needs_of = |task_id: TaskId| {
        let spec = &scheduler.get(task_id).expect("planned tasks exist").spec;
        TaskNeeds {
            constraints: &spec.constraints,
            resources: spec.resources,
            affinity_key: spec.affinity(),
        }
    };
    scheduling::plan(queues, workers, &needs_of, limits::MAX_ASSIGNMENTS_PER_ENTRY, seed)
}
