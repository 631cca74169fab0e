//! The leader's dispatch loop and its live view of workers.
//!
//! Architecture invariant: the dispatcher decides, the log records, and only then is a worker
//! told. Every assignment, expiry and timeout is a committed command before any worker hears
//! of it; a deposed leader's writes fail to commit, so two leaders can never both record an
//! assignment of the same attempt.
//!
//! The decisions themselves are [`crate::decide::decide`], a pure function of the state, the hub's
//! view of the workers, the time and one random seed per round; this loop only builds those
//! inputs, commits the commands in order and tells the workers.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ServerState;
use raftsched_client::task_span;
use raftsched_client::trace;
use rand::Rng;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::app::AppError;
use crate::app::Consistency;
use crate::app::now_ms;
use crate::decide;
use crate::decide::FiringCache;
use crate::decide::Liveness;
use crate::decide::WorkerLiveness;
use raftsched_core::scheduling::placement::splitmix64;
use raftsched_core::state::Command;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::SchedulerState;
use raftsched_core::state::TaskId;
use raftsched_core::state::limits;

/// How often the loop looks at leases, timeouts and delayed tasks when nothing wakes it.
const TICK: Duration = Duration::from_millis(100);

/// Runs on every node; acts only while its node leads.
pub struct Dispatcher {
    app: App,
    shutdown: CancellationToken,
    /// The term this node leads in, once it has caught up and granted workers their grace.
    leading_term: Option<u64>,
    /// Per schedule, its compiled recurrence and when it is next due.
    firings: FiringCache,
    /// Why schedule firings are deferred (a cap reached or an alarm), while they are: logged
    /// when it starts and ends, not every round.
    firings_deferred: Option<String>,
}

impl Dispatcher {
    pub fn spawn(app: App, shutdown: CancellationToken) -> JoinHandle<()> {
        let dispatcher = Dispatcher {
            app,
            shutdown,
            leading_term: None,
            firings: FiringCache::default(),
            firings_deferred: None,
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
        let started = std::time::Instant::now();
        if let Err(e) = self.round().await {
            tracing::debug!("dispatch round stopped: {e}");
        }
        self.app.node_metrics().dispatch_round(started.elapsed());
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

    /// One round: decide on the state as it is, commit the decisions in order, tell the
    /// workers of their assignments. After expiries, timeouts or firings the state has
    /// changed under the planned assignment (voided attempts back in the queue, new runs), so
    /// the assignment is planned again on the new state; after a full batch, the next one.
    async fn round(&mut self) -> Result<(), AppError> {
        let seed: u64 = rand::rng().random();
        tracing::trace!(seed, "dispatch round");
        let (mut plan, refused) = {
            let now = self.now_ms();
            let state = self.app.state().read();
            // Once a round: what the hub keeps stays bounded by the state's workers.
            self.app.hub().forget_absent(|id| state.scheduler.worker(id).is_some());
            let liveness = self.liveness(&state.scheduler, now);
            let refused = self
                .app
                .guard()
                .new_work_refused(state.scheduler.live_tasks(), state.scheduler.stored_bytes());
            let plan = decide::decide(&state.scheduler, &liveness, now, seed, &mut self.firings);
            (plan, refused)
        };
        self.defer_firings(&mut plan, refused);
        let replan = plan.has_maintenance();
        let mut batch = None;
        for command in plan.commands {
            match command {
                Command::AssignTasks { .. } => batch = Some(command),
                Command::ExpireWorker { .. } => self.commit_expiry(command).await?,
                Command::FireSchedule { .. } => self.commit_firing(command).await?,
                _ => {
                    self.app.write(command).await?;
                }
            }
        }
        let mut next_seed = seed;
        let mut assignments = decide::Assignments {
            command: batch,
            unplaced: plan.unplaced,
        };
        if replan {
            next_seed = splitmix64(next_seed);
            assignments = self.plan_assignments(next_seed);
        }
        while self.commit_assignments(assignments).await? == limits::MAX_ASSIGNMENTS_PER_ENTRY {
            next_seed = splitmix64(next_seed);
            assignments = self.plan_assignments(next_seed);
        }
        Ok(())
    }

    /// Firings create tasks: while new work is refused they are dropped from the plan, not
    /// committed, so each schedule's cursor stays where it was and the occurrences are
    /// planned again every round; once the cap or alarm clears, they fire or are skipped by
    /// the schedule's own misfire policy (catch-up or missed), as after any leader outage.
    fn defer_firings(&mut self, plan: &mut decide::Plan, refused: Option<String>) {
        if refused.is_some() {
            plan.commands
                .retain(|command| !matches!(command, Command::FireSchedule { .. }));
        }
        match (&self.firings_deferred, &refused) {
            (None, Some(why)) => tracing::warn!("schedule firings deferred: {why}"),
            (Some(_), None) => tracing::info!("schedule firings resume: new work is accepted again"),
            _ => {}
        }
        self.firings_deferred = refused;
    }

    /// The hub's view of the state's workers as of `now_ms`. A worker registered before this
    /// node led and never heard from since starts its lease now.
    fn liveness(&self, scheduler: &SchedulerState, now_ms: u64) -> Liveness {
        let hub = self.app.hub();
        let workers = scheduler
            .workers()
            .map(|w| {
                let silence_ms = hub
                    .silence(&w.id)
                    .map(|s| u64::try_from(s.as_millis()).unwrap_or(u64::MAX));
                if silence_ms.is_none() {
                    hub.heard_from(&w.id);
                }
                let liveness = WorkerLiveness {
                    connected: hub.is_connected(&w.id),
                    last_heard_ms: now_ms.saturating_sub(silence_ms.unwrap_or(0)),
                };
                (w.id.clone(), liveness)
            })
            .collect();
        Liveness { workers }
    }

    /// The next batch of assignments on the state as it is now.
    fn plan_assignments(&self, seed: u64) -> decide::Assignments {
        let now = self.now_ms();
        let state = self.app.state().read();
        let liveness = self.liveness(&state.scheduler, now);
        decide::plan_assignments(&state.scheduler, &liveness, &BTreeSet::new(), now, seed)
    }

    async fn commit_expiry(&self, command: Command) -> Result<(), AppError> {
        let Command::ExpireWorker { worker_id, session, .. } = &command else {
            return Err(AppError::Internal(format!("{command} is not an expiry")));
        };
        let (worker_id, session) = (worker_id.clone(), session.clone());
        let written = self.app.write(command).await;
        // Forgotten whatever the write answered: if the expiry did not commit, the next
        // round counts the worker as heard from now (a lease of grace) and tries again.
        self.app.hub().forget(&worker_id, &session);
        if let CommandResponse::Expired(voided) = written? {
            tracing::warn!(worker = %worker_id, ?voided, "worker lease expired; its attempts go back to the queue");
        }
        Ok(())
    }

    async fn commit_firing(&self, command: Command) -> Result<(), AppError> {
        let name = match &command {
            Command::FireSchedule { name, .. } => name.clone(),
            _ => return Err(AppError::Internal(format!("{command} is not a firing"))),
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
        Ok(())
    }

    /// Commits one batch of assignments, then tells the workers. Returns how many were
    /// committed.
    async fn commit_assignments(&self, assignments: decide::Assignments) -> Result<usize, AppError> {
        self.app.hub().set_pending_reasons(assignments.unplaced);
        let Some(command) = assignments.command else {
            return Ok(0);
        };
        let spans = self.assign_spans(&command);
        let CommandResponse::Assigned(outcomes) = self.app.write(command).await? else {
            return Err(AppError::Internal("assign answered with another response".into()));
        };
        let mut assigned = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome {
                Ok(outcome) => assigned.push(outcome),
                Err(refused) => tracing::debug!("assignment refused by apply: {refused}"),
            }
        }
        let accepted = assigned.len();
        self.app.push_assigned(assigned, spans);
        Ok(accepted)
    }

    /// An "assign" span per traced task of an `AssignTasks` command, open until its
    /// assignment is committed; none unless this node exports traces.
    fn assign_spans(&self, command: &Command) -> BTreeMap<TaskId, tracing::Span> {
        let Command::AssignTasks { assignments, .. } = command else {
            return BTreeMap::new();
        };
        if !trace::exporting() {
            return BTreeMap::new();
        }
        let state = self.app.state().read();
        assignments
            .iter()
            .filter_map(|(task_id, _)| {
                let parent = state.scheduler.get(*task_id)?.spec.trace_parent.as_deref()?;
                Some((*task_id, task_span!("assign", Some(parent), *task_id)))
            })
            .collect()
    }

    /// The leader's time, never behind the state's.
    fn now_ms(&self) -> u64 {
        now_ms().max(self.app.state().read().scheduler.clock_ms())
    }
}
