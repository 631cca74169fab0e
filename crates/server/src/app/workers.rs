//! The worker side of [`App`]: registration, the assignment stream, heartbeats, results,
//! draining and queue policies. Everything here runs on the leader only.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ServerState;
use rand::Rng;
use tokio::sync::mpsc;

use super::App;
use super::AppError;
use super::now_ms;
use crate::hub::Instruction;
use raftsched_core::scheduling::QueuePolicy;
use raftsched_core::state::AttemptOutcome;
use raftsched_core::state::AttemptReport;
use raftsched_core::state::Command;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::StateError;
use raftsched_core::state::TaskStatus;
use raftsched_core::state::Worker;
use raftsched_core::state::WorkerRegistration;
use raftsched_core::state::limits;

/// A worker's assignment stream holds this many instructions beyond its slots.
const STREAM_HEADROOM: usize = 64;
/// An attempt the worker does not list is sent again only once it is this old, so a push
/// still in flight is not sent twice.
const RESEND_AFTER_MS: u64 = 2000;

/// A worker as `worker list` shows it.
#[derive(Debug, Clone)]
pub struct WorkerSummary {
    pub worker: Worker,
    pub running: usize,
    pub connected: bool,
    /// Since the leader last heard from it.
    pub silence: Option<Duration>,
}

impl App {
    /// Fails with NotLeader (and the leader's address) unless this node leads, and with
    /// NoQuorum if it leads but a majority has not answered it for a leader lease: it may be
    /// cut off while the others elect a new leader, so workers must look elsewhere.
    pub(crate) fn leader_only(&self) -> Result<(), AppError> {
        let metrics = self.metrics();
        if metrics.state == ServerState::Leader {
            return self.check_quorum_contact(&metrics);
        }
        let leader_addr = metrics.current_leader.and_then(|id| {
            let membership = metrics.membership_config.membership();
            membership.get_node(&id).map(|node| node.addr.clone())
        });
        Err(AppError::NotLeader {
            leader_id: metrics.current_leader,
            leader_addr,
        })
    }

    /// Registers a worker, or re-attaches it after a leader change. Returns its lease.
    pub async fn register_worker(&self, registration: WorkerRegistration) -> Result<u64, AppError> {
        limits::validate_registration(&registration)?;
        let worker_id = registration.id.clone();
        let lease_ms = registration.lease_ms;
        let command = Command::RegisterWorker {
            now_ms: now_ms(),
            registration,
        };
        tracing::debug!(worker = %worker_id, "register");
        let CommandResponse::Registered(result) = self.write(command).await? else {
            return Err(AppError::Internal("register answered with another response".into()));
        };
        let voided = result?;
        if !voided.is_empty() {
            tracing::info!(worker = %worker_id, ?voided, "worker restarted; its attempts were voided");
        }
        self.hub.heard_from(&worker_id);
        self.hub.wake_dispatcher();
        Ok(lease_ms)
    }

    /// Opens the worker's assignment stream. Attempts the state says it runs but it does not
    /// list (a push lost in a failover) are sent again first.
    pub fn attach(
        &self,
        worker_id: &str,
        session: &str,
        running_tokens: &[u64],
    ) -> Result<mpsc::Receiver<Instruction>, AppError> {
        limits::validate_running_tokens(running_tokens.len())?;
        limits::validate_worker_ref(worker_id, session)?;
        self.leader_only()?;
        tracing::debug!(worker = worker_id, "attach");
        let slots = self.check_session(worker_id, session)?;
        let receiver = self.hub.connect(worker_id, session, slots as usize + STREAM_HEADROOM);
        for instruction in self.unknown_to_worker(worker_id, running_tokens, 0) {
            self.hub.send(worker_id, instruction);
        }
        Ok(receiver)
    }

    /// Renews the worker's lease. Returns the tokens it runs that are void (stop them), and
    /// sends again any attempt it should run but does not list.
    pub fn heartbeat(&self, worker_id: &str, session: &str, running_tokens: &[u64]) -> Result<Vec<u64>, AppError> {
        limits::validate_running_tokens(running_tokens.len())?;
        limits::validate_worker_ref(worker_id, session)?;
        self.leader_only()?;
        self.check_session(worker_id, session)?;
        self.hub.heard_from(worker_id);
        let valid: BTreeSet<u64> = {
            let state = self.state.read();
            state
                .scheduler
                .running_on(worker_id)
                .filter_map(|task| task.running_attempt().map(|a| a.token))
                .collect()
        };
        for instruction in self.unknown_to_worker(worker_id, running_tokens, RESEND_AFTER_MS) {
            self.hub.send(worker_id, instruction);
        }
        Ok(running_tokens.iter().copied().filter(|t| !valid.contains(t)).collect())
    }

    /// Assignments the state gives `worker_id` that it did not list, started at least
    /// `min_age_ms` ago.
    fn unknown_to_worker(&self, worker_id: &str, running_tokens: &[u64], min_age_ms: u64) -> Vec<Instruction> {
        let listed: BTreeSet<u64> = running_tokens.iter().copied().collect();
        let now = now_ms();
        let state = self.state.read();
        state
            .scheduler
            .running_on(worker_id)
            .filter_map(|task| {
                let attempt = task.running_attempt()?;
                let old_enough = attempt.started_at_ms.saturating_add(min_age_ms) <= now;
                (!listed.contains(&attempt.token) && old_enough).then(|| Instruction::Assign {
                    trace_parent: task.spec.trace_parent.clone(),
                    task: Box::new(task.clone()),
                    token: attempt.token,
                    attempt: attempt.number,
                })
            })
            .collect()
    }

    /// The worker's slots, if it is registered under this session.
    fn check_session(&self, worker_id: &str, session: &str) -> Result<u32, AppError> {
        let state = self.state.read();
        let worker = state
            .scheduler
            .worker(worker_id)
            .ok_or_else(|| StateError::WorkerNotFound(worker_id.to_string()))?;
        if worker.session != session {
            return Err(StateError::WorkerSessionMismatch {
                worker_id: worker_id.to_string(),
            }
            .into());
        }
        Ok(worker.slots)
    }

    /// Records an attempt's result. A stale token is refused (the attempt is void). Text over
    /// the limits (an older worker's) is cut here, so the log never carries it.
    pub async fn report(&self, mut report: AttemptReport) -> Result<TaskStatus, AppError> {
        limits::validate_report(&mut report)?;
        // A client report must name its worker: only v0-v2 log entries are unbound.
        limits::validate_worker_ref(&report.worker_id, &report.session)?;
        // Refused here, a report from another worker leaves no log entry (an entry apply
        // refuses still moves the state's clock); apply checks it again.
        self.state.read().scheduler.check_report_holder(&report)?;
        let task_id = report.task_id;
        let command = Command::ReportResult {
            now_ms: now_ms(),
            report,
            jitter: rand::rng().random(),
        };
        let CommandResponse::Reported(result) = self.write(command).await? else {
            return Err(AppError::Internal("report answered with another response".into()));
        };
        self.hub.wake_dispatcher();
        let status = result?;
        if status.is_terminal()
            && let Some(task) = self.state.read().scheduler.get(task_id)
        {
            let took_ms = task.updated_at_ms.saturating_sub(task.created_at_ms);
            self.node_metrics.task_finished(took_ms);
        }
        Ok(status)
    }

    /// Marks the worker draining: it gets no new work. With `holding` (the tokens it runs,
    /// listed after it stopped reading its stream), every attempt assigned to it that it does
    /// not hold is handed back now: its push was still in flight and will never run there.
    /// Without this the attempt would wait for the lease and use up one of its tries.
    pub async fn drain_worker(&self, worker_id: &str, session: &str, holding: Option<&[u64]>) -> Result<(), AppError> {
        limits::validate_worker_ref(worker_id, session)?;
        if let Some(holding) = holding {
            limits::validate_running_tokens(holding.len())?;
        }
        let command = Command::DrainWorker {
            now_ms: now_ms(),
            worker_id: worker_id.to_string(),
            session: session.to_string(),
        };
        let CommandResponse::Drained(result) = self.write(command).await? else {
            return Err(AppError::Internal("drain answered with another response".into()));
        };
        result?;
        // Committed draining, the worker is assigned nothing more (apply refuses it), so the
        // attempts read now are all it will ever be given.
        let Some(holding) = holding else { return Ok(()) };
        for (task_id, token) in self.not_held(worker_id, holding) {
            let report = AttemptReport {
                task_id,
                token,
                outcome: AttemptOutcome::HandedBack,
                exit_code: None,
                error: Some("assigned while the worker was draining; it never ran".into()),
                retryable: true,
                stdout_tail: String::new(),
                stderr_tail: String::new(),
                worker_id: worker_id.to_string(),
                session: session.to_string(),
            };
            // Already finished or voided meanwhile: nothing is left to hand back.
            if let Err(e) = self.report(report).await {
                tracing::info!(worker = worker_id, task = task_id, "not handed back: {e}");
            }
        }
        Ok(())
    }

    /// (task, token) of the attempts the state gives `worker_id` that are not in `holding`.
    fn not_held(&self, worker_id: &str, holding: &[u64]) -> Vec<(u64, u64)> {
        let held: BTreeSet<u64> = holding.iter().copied().collect();
        let state = self.state.read();
        state
            .scheduler
            .running_on(worker_id)
            .filter_map(|task| task.running_attempt().map(|a| (task.id, a.token)))
            .filter(|(_, token)| !held.contains(token))
            .collect()
    }

    pub async fn set_queue_policy(&self, queue: String, policy: QueuePolicy) -> Result<(), AppError> {
        limits::validate_queue_policy(&queue, &policy)?;
        let command = Command::SetQueuePolicy {
            now_ms: now_ms(),
            queue,
            policy,
        };
        let CommandResponse::QueuePolicySet(result) = self.write(command).await? else {
            return Err(AppError::Internal("queue policy answered with another response".into()));
        };
        self.hub.wake_dispatcher();
        Ok(result?)
    }

    /// Every queue with a policy or with tasks pending or running: (queue, policy, pending,
    /// running).
    pub fn queues(&self) -> Vec<(String, QueuePolicy, u64, u64)> {
        let state = self.state.read();
        let scheduler = &state.scheduler;
        let running = scheduler.running_per_queue();
        let mut names: BTreeSet<String> = scheduler.queue_policies().map(|(q, _)| q.to_string()).collect();
        names.extend(scheduler.ready_queues().map(String::from));
        names.extend(running.keys().map(|q| q.to_string()));
        names
            .into_iter()
            .map(|queue| {
                let pending = scheduler.ready_in_queue(&queue).count() as u64;
                let running = u64::from(running.get(queue.as_str()).copied().unwrap_or(0));
                let policy = scheduler.queue_policy(&queue);
                (queue, policy, pending, running)
            })
            .collect()
    }

    pub fn workers(&self) -> Vec<WorkerSummary> {
        self.workers_limited(usize::MAX).0
    }

    /// The first `limit` workers in id order, and how many more there are: a page that
    /// shows 500 clones 500, whatever the number of workers.
    pub fn workers_limited(&self, limit: usize) -> (Vec<WorkerSummary>, usize) {
        let state = self.state.read();
        let total = state.scheduler.workers().count();
        let shown = state
            .scheduler
            .workers()
            .take(limit)
            .map(|worker| WorkerSummary {
                worker: worker.clone(),
                running: state.scheduler.running_count(&worker.id),
                connected: self.hub.is_connected(&worker.id),
                silence: self.hub.silence(&worker.id),
            })
            .collect();
        (shown, total.saturating_sub(limit))
    }
}
