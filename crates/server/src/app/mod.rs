//! [`App`]: what a node offers its clients, in domain terms. The gRPC layer calls it.
//!
//! Writes become [`Command`]s stamped with this node's clock and go through the Raft log;
//! the node must be the leader. Reads come from the applied state, linearizable (confirmed
//! with a quorum first) or stale (local, immediate).
//!
//! Architecture invariant: domain types only — no protobuf type, no `tonic::Status`; it
//! uses `hub`, `network`, `quota`, `raft_types` and `recurrence`, never `dispatch`, `grpc` or `node`.

mod assign;
mod backup;
mod composite;
mod membership;
mod proposer;
mod workers;

pub use backup::SavedBackup;
pub use composite::ScheduleView;
pub use composite::WorkflowView;
pub use workers::WorkerSummary;

use std::time::Duration;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use openraft::RaftMetrics;
use openraft::ReadPolicy;
use openraft::ServerState;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::error::ForwardToLeader;
use openraft::error::LinearizableReadError;
use openraft::error::RaftError;

use proposer::Proposer;
use tokio_util::sync::CancellationToken;

use crate::hub::Instruction;
use crate::hub::WorkerHub;
use crate::observe::NodeMetrics;
use crate::quota::Cost;
use crate::quota::Guard;
use crate::quota::Reservation;
use crate::raft_types::NodeId;
use crate::raft_types::Raft;
use crate::raft_types::TypeConfig;
use raftsched_core::state::Command;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::ListFilter;
use raftsched_core::state::StateError;
use raftsched_core::state::Task;
use raftsched_core::state::TaskId;
use raftsched_core::state::TaskSpec;
use raftsched_core::state::estimated_spec_bytes;
use raftsched_core::state::limits;
use raftsched_store::SharedState;

/// How often a write waiting for its commit checks that this leader still hears from a
/// majority.
const QUORUM_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Largest page a listing returns.
pub const MAX_PAGE_SIZE: usize = 1000;

/// How a read is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    Linearizable,
    Stale,
}

/// Why a call failed. The gRPC layer maps each variant to one status code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Rejected(#[from] StateError),
    #[error("{}", not_leader_message(.leader_id, .leader_addr))]
    NotLeader {
        leader_id: Option<NodeId>,
        leader_addr: Option<String>,
    },
    /// The write may or may not have been committed; retrying with the same client request id
    /// is safe.
    #[error(
        "leadership changed while the write was in flight; its outcome is unknown: retry it with the same client request id"
    )]
    OutcomeUnknown,
    #[error("no quorum: {0}; the cluster needs a majority of its members up")]
    NoQuorum(String),
    #[error("this node is shutting down or its Raft stopped: {0}")]
    Stopped(String),
    #[error("membership change refused: {0}")]
    Membership(String),
    /// RemoveNode of a node that is not in the membership.
    #[error("node {node_id} is not a member; the members are {}: pass one of their ids", list_ids(.members))]
    NodeNotFound { node_id: NodeId, members: Vec<NodeId> },
    /// New work refused by a cap or a high-water alarm (the message names which, the figure,
    /// the limit and what to do).
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("unexpected response from the state machine: {0}")]
    Internal(String),
}

fn list_ids(ids: &[NodeId]) -> String {
    let ids: Vec<String> = ids.iter().map(NodeId::to_string).collect();
    ids.join(", ")
}

fn not_leader_message(leader_id: &Option<NodeId>, leader_addr: &Option<String>) -> String {
    match (leader_id, leader_addr) {
        (Some(id), Some(addr)) => format!("this node is not the leader; the leader is node {id} at {addr}"),
        _ => "this node is not the leader and no leader is known yet (election in progress?); retry shortly".into(),
    }
}

impl From<&ForwardToLeader<TypeConfig>> for AppError {
    fn from(forward: &ForwardToLeader<TypeConfig>) -> AppError {
        AppError::NotLeader {
            leader_id: forward.leader_id,
            leader_addr: forward.leader_node.as_ref().map(|node| node.addr.clone()),
        }
    }
}

/// One member's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub node_id: NodeId,
    pub address: String,
    pub role: String,
    pub term: u64,
    pub leader_id: Option<NodeId>,
    pub last_log_index: u64,
    pub last_applied_index: u64,
    /// The applied state's digest, and the index it was taken at.
    pub state_digest: u64,
    pub digest_applied_index: u64,
    /// The node's latest high-water sample (0 before the first, or unreadable) and its
    /// active alarms.
    pub rss_bytes: u64,
    pub data_dir_bytes: u64,
    pub alarms: Vec<String>,
    /// Times this node, leading, went past its lease without a majority's acknowledgement.
    pub quorum_losses: u64,
}

/// A node's client-facing operations. Cheap to clone; every clone shares the same Raft and
/// state.
#[derive(Clone)]
pub struct App {
    raft: Raft,
    /// Read side of the state machine; written only by openraft's apply task.
    state: SharedState,
    /// The leader's live view of workers; empty on followers.
    hub: WorkerHub,
    /// Every write goes through it, to share log entries with concurrent writes.
    proposer: Proposer,
    /// The caps and alarms new work is admitted against.
    guard: Guard,
    /// What the node records for its operators; never read to decide anything.
    node_metrics: NodeMetrics,
    /// Taken by a snapshot save ([`backup::MAX_CONCURRENT_BACKUPS`]).
    backup_slots: std::sync::Arc<tokio::sync::Semaphore>,
}

impl App {
    /// Starts the node's group-commit task, which stops with `shutdown`.
    pub fn new(
        raft: Raft,
        state: SharedState,
        hub: WorkerHub,
        guard: Guard,
        node_metrics: NodeMetrics,
        shutdown: CancellationToken,
    ) -> App {
        App {
            proposer: Proposer::spawn(raft.clone(), node_metrics.clone(), shutdown),
            raft,
            state,
            hub,
            guard,
            node_metrics,
            backup_slots: backup::backup_slots(),
        }
    }

    /// The node's counters and histograms (`observe`).
    pub fn node_metrics(&self) -> &NodeMetrics {
        &self.node_metrics
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Admits new work of `cost` against the caps and the cluster's alarms; the reservation
    /// is held until the write returns. Only the leader admits: a follower's write is
    /// refused as not the leader's anyway, and its clients go to the leader, which judges.
    /// [`Self::admit`], after the per-namespace cap of each namespace the work goes to
    /// (`adding`: new live tasks per namespace).
    pub(crate) fn admit_in(&self, adding: &[(&str, u64)], cost: Cost) -> Result<Option<Reservation>, AppError> {
        if self.metrics_state() == ServerState::Leader {
            let state = self.state.read();
            for (namespace, count) in adding {
                let live = state.scheduler.live_tasks_in(namespace);
                self.guard
                    .check_namespace(namespace, live, *count)
                    .map_err(AppError::QuotaExceeded)?;
            }
        }
        self.admit(cost)
    }

    pub(crate) fn admit(&self, cost: Cost) -> Result<Option<Reservation>, AppError> {
        if self.metrics_state() != ServerState::Leader {
            return Ok(None);
        }
        let (live, bytes) = {
            let state = self.state.read();
            (state.scheduler.live_tasks(), state.scheduler.stored_bytes())
        };
        self.guard
            .admit(live, bytes, cost)
            .map(Some)
            .map_err(AppError::QuotaExceeded)
    }

    fn metrics_state(&self) -> ServerState {
        self.raft.metrics().borrow_watched().state
    }

    pub fn hub(&self) -> &WorkerHub {
        &self.hub
    }

    pub fn state(&self) -> &SharedState {
        &self.state
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Validates and submits specs as one log entry. Returns, per spec, the task and whether
    /// it was created (false: an earlier submission with the same request id), or why apply
    /// refused it.
    pub async fn submit(&self, specs: Vec<TaskSpec>) -> Result<Vec<Result<(Task, bool), StateError>>, AppError> {
        limits::validate_batch_len(specs.len())?;
        // One time for the check and the command: apply checks run_at_ms against it again.
        let now_ms = now_ms();
        for spec in &specs {
            limits::validate_spec(spec)?;
            limits::validate_run_at(spec, now_ms)?;
        }
        // A spec whose request id is known creates nothing (the retry of a submission that
        // was committed): it costs nothing, so a retry at the cap gets its task back.
        let (cost, per_namespace) = {
            let state = self.state.read();
            let new: Vec<&TaskSpec> = specs
                .iter()
                .filter(|spec| {
                    spec.client_request_id
                        .as_deref()
                        .is_none_or(|id| !state.scheduler.has_request_id(spec.namespace(), id))
                })
                .collect();
            let mut per_namespace: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
            for spec in &new {
                *per_namespace.entry(spec.namespace()).or_insert(0) += 1;
            }
            let cost = Cost {
                tasks: new.len() as u64,
                bytes: new.iter().map(|spec| estimated_spec_bytes(spec)).sum(),
            };
            (cost, per_namespace.into_iter().collect::<Vec<_>>())
        };
        let _reservation = self.admit_in(&per_namespace, cost)?;
        let command = self.submission(specs, now_ms);
        let spans = App::submission_assign_spans(&command);
        let (outcomes, all_started) = match self.write(command).await? {
            CommandResponse::Submitted(outcomes) => (outcomes, false),
            CommandResponse::SubmittedAndAssigned(placed) => self.started_at_submit(placed, spans),
            _ => return Err(AppError::Internal("submit answered with another response".into())),
        };
        if !all_started {
            self.hub.wake_dispatcher();
        }
        let state = self.state.read();
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Ok(outcome) => {
                    let task = state.scheduler.get(outcome.task_id).cloned();
                    let task = task.ok_or_else(|| AppError::Internal(format!("task {} vanished", outcome.task_id)))?;
                    Ok(Ok((task, outcome.created)))
                }
                Err(rejected) => Ok(Err(rejected)),
            })
            .collect()
    }

    pub async fn cancel(&self, task_id: TaskId, reason: String) -> Result<Task, AppError> {
        limits::validate_reason(&reason)?;
        let command = Command::CancelTask {
            now_ms: now_ms(),
            task_id,
            reason,
        };
        let CommandResponse::Cancelled(result) = self.write(command).await? else {
            return Err(AppError::Internal("cancel answered with another response".into()));
        };
        let outcome = result.map_err(|error| match error {
            // Ids are dense: a cancel (or its retry, after an answer lost in transit) of a
            // task purged since it finished is told so, as a read of it is.
            StateError::TaskNotFound(id) if self.state.read().scheduler.was_purged(id) => StateError::TaskExpired(id),
            other => other,
        })?;
        if let Some((worker_id, token)) = outcome.stopped {
            // Committed: now the worker may hear of it. If the stream is down, its next
            // heartbeat learns the attempt is void.
            self.hub.send(&worker_id, Instruction::Cancel { task_id, token });
            self.hub.wake_dispatcher();
        }
        self.stop_attempts(&outcome.shards_stopped);
        self.read_task(outcome.task_id)
    }

    /// The namespace of a task this node holds, if it holds it: a namespace check before a
    /// write (a task's namespace never changes, so a stale read answers the same).
    pub fn task_namespace(&self, task_id: TaskId) -> Option<String> {
        let state = self.state.read();
        state
            .scheduler
            .get(task_id)
            .map(|task| task.spec.namespace().to_string())
    }

    pub async fn get(&self, task_id: TaskId, consistency: Consistency) -> Result<Task, AppError> {
        self.ensure_consistency(consistency).await?;
        self.read_task(task_id)
    }

    /// A page of tasks matching `filter` in its order, continuing past `after` (0 for the
    /// first page), and where the next page starts. `fits` is the caller's byte budget: asked about each task before it joins the
    /// page, a refusal ends the page early (only what fits is copied out of the state).
    pub async fn list(
        &self,
        filter: &ListFilter,
        after: TaskId,
        page_size: usize,
        consistency: Consistency,
        fits: impl FnMut(&Task) -> bool,
    ) -> Result<(Vec<Task>, Option<TaskId>), AppError> {
        self.ensure_consistency(consistency).await?;
        let page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        Ok(self.state.read().scheduler.list_within(filter, after, page_size, fits))
    }

    /// This node's own view, from its Raft metrics.
    pub fn member_view(&self) -> MemberView {
        let metrics = self.metrics();
        let node_id = metrics.id;
        let address = metrics
            .membership_config
            .membership()
            .get_node(&node_id)
            .map(|node| node.addr.clone())
            .unwrap_or_default();
        let role = role_name(metrics.state);
        let (state_digest, digest_applied_index) = self.state_digest();
        let health = self.guard.health();
        MemberView {
            rss_bytes: health.rss_bytes,
            data_dir_bytes: health.data_dir_bytes,
            alarms: self.guard.own_alarms(),
            quorum_losses: self.node_metrics.quorum_losses(),
            state_digest,
            digest_applied_index,
            node_id,
            address,
            role: role.to_string(),
            term: metrics.current_term,
            leader_id: metrics.current_leader,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            last_applied_index: metrics.last_applied.map_or(0, |log_id| log_id.index),
        }
    }

    /// Every voter and learner in the current membership, with its address.
    pub fn members(&self) -> Vec<(NodeId, String)> {
        let metrics = self.metrics();
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect()
    }

    /// The applied state's digest and the applied index it belongs to, read together under
    /// the state lock. O(1): apply keeps the digest up to date, so status calls in a loop
    /// cost apply nothing.
    fn state_digest(&self) -> (u64, u64) {
        let applied = self.state.read();
        let index = applied.last_applied.as_ref().map_or(0, |log_id| log_id.index);
        (applied.scheduler.digest(), index)
    }

    /// The latest Raft metrics of this node.
    pub fn metrics(&self) -> RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    fn read_task(&self, task_id: TaskId) -> Result<Task, AppError> {
        let state = self.state.read();
        let task = state.scheduler.get(task_id).cloned();
        task.ok_or_else(|| {
            // Ids are dense: an id below the next one was a task, purged since.
            AppError::Rejected(if state.scheduler.was_purged(task_id) {
                StateError::TaskExpired(task_id)
            } else {
                StateError::TaskNotFound(task_id)
            })
        })
    }

    /// Whether this leader has heard from a majority within its leader lease. A leader cut
    /// off in a minority keeps its role until it hears of a higher term (after the partition
    /// heals), so without this check its clients and workers would wait on it — or on writes
    /// that cannot commit — instead of moving to the new leader.
    pub(crate) fn check_quorum_contact(&self, metrics: &RaftMetrics<TypeConfig>) -> Result<(), AppError> {
        if metrics.state != ServerState::Leader {
            return Ok(());
        }
        let voters = metrics.membership_config.membership().voter_ids().count();
        if voters <= 1 {
            return Ok(());
        }
        let lease = Duration::from_millis(self.raft.config().election_timeout_max);
        // Before the first acknowledgement of its term, a new leader has not lost anything.
        let Some(acked) = metrics.last_quorum_acked.as_ref() else {
            return Ok(());
        };
        let silence = openraft::Instant::elapsed(&**acked);
        if silence <= lease {
            return Ok(());
        }
        Err(AppError::NoQuorum(format!(
            "this node leads but no majority has answered it for {} ms (it may be cut off)",
            silence.as_millis()
        )))
    }

    /// [`Self::check_quorum_contact`] on the current metrics, without copying them (this
    /// runs for every write).
    fn check_own_quorum_contact(&self) -> Result<(), AppError> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        self.check_quorum_contact(&metrics)
    }

    pub(crate) async fn write(&self, command: Command) -> Result<CommandResponse, AppError> {
        self.check_own_quorum_contact()?;
        let proposal = self.proposer.propose(command);
        tokio::pin!(proposal);
        // A leader cut off after proposing cannot commit until the partition heals, maybe
        // never: let the client retry elsewhere (the write may still commit here, so its
        // outcome is unknown).
        loop {
            tokio::select! {
                outcome = &mut proposal => return outcome,
                _ = tokio::time::sleep(QUORUM_CHECK_INTERVAL) => {
                    if self.check_own_quorum_contact().is_err() {
                        return Err(AppError::OutcomeUnknown);
                    }
                }
            }
        }
    }

    pub(crate) async fn ensure_consistency(&self, consistency: Consistency) -> Result<(), AppError> {
        if consistency == Consistency::Stale {
            return Ok(());
        }
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(forward))) => Err(AppError::from(&forward)),
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(e))) => {
                Err(AppError::NoQuorum(e.to_string()))
            }
            Err(RaftError::Fatal(fatal)) => Err(AppError::Stopped(fatal.to_string())),
        }
    }
}

/// The leader's clock, read once per proposed command. Replicas never read it.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A Raft role as the API and the console name it.
pub fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}
