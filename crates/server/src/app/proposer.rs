//! [`Proposer`]: the leader's group commit. Writes that arrive while earlier ones are being
//! committed are proposed together, as one [`Command::Batch`] log entry.
//!
//! Why: a log entry costs the same append, fsync, replication message and apply bookkeeping
//! on every node whatever it carries, and that per-entry cost (not the disk) is what limits
//! throughput on a small machine. Grouping needs no timer: at most [`MAX_ENTRIES_IN_FLIGHT`]
//! entries are in flight, and whatever queued meanwhile goes into the next one, so a lone
//! client pays nothing and a busy leader packs many writes into each entry.

use std::sync::Arc;
use std::time::Instant;

use openraft::error::ClientWriteError;
use openraft::error::RaftError;
use raftsched_client::trace;
use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::AppError;
use crate::observe::NodeMetrics;
use crate::raft_types::Raft;
use crate::raft_types::TypeConfig;
use raftsched_core::state::Command;
use raftsched_core::state::CommandResponse;
use raftsched_store::encoded_len;

/// Writes waiting for an entry; callers wait for room beyond this (backpressure).
const QUEUE_CAPACITY: usize = 4096;
/// Entries proposed and not yet applied. Few: the fewer in flight, the more each one carries.
const MAX_ENTRIES_IN_FLIGHT: usize = 2;
/// Commands in one entry.
const MAX_COMMANDS_PER_ENTRY: usize = 1024;
/// Encoded bytes of the commands grouped into one entry; a single larger command (a client
/// batch near the message size limit) still gets an entry of its own.
const MAX_GROUPED_BYTES: usize = 1024 * 1024;

/// One write waiting for its entry.
struct Proposal {
    command: Command,
    encoded_bytes: usize,
    /// The "propose" span of a traced submission (else `Span::none()`): its entry's
    /// "commit" span is opened under it.
    span: tracing::Span,
    reply: oneshot::Sender<Result<CommandResponse, AppError>>,
}

/// Hands writes to the group-commit task. Cheap to clone; clones share the task.
#[derive(Clone)]
pub(crate) struct Proposer {
    queue: mpsc::Sender<Proposal>,
    metrics: NodeMetrics,
}

impl Proposer {
    /// Starts the group-commit task; it stops when `shutdown` is cancelled, and writes still
    /// queued or in flight then fail with [`AppError::Stopped`].
    pub(crate) fn spawn(raft: Raft, metrics: NodeMetrics, shutdown: CancellationToken) -> Proposer {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(raft, receiver, metrics.clone(), shutdown));
        Proposer { queue, metrics }
    }

    /// Proposes `command` and waits until it is applied (or fails).
    pub(crate) async fn propose(&self, command: Command) -> Result<CommandResponse, AppError> {
        let pending = Pending::new(&self.metrics);
        // Under the caller's "submit" span; only submissions are traced this way (an
        // assignment or a report has its own span around its write).
        let span = if trace::exporting() && !command.trace_parents().is_empty() {
            tracing::info_span!(target: trace::TARGET, "propose")
        } else {
            tracing::Span::none()
        };
        let result = self.queue_and_wait(command, span.clone()).instrument(span).await;
        pending.done(result.is_ok());
        result
    }

    async fn queue_and_wait(&self, command: Command, span: tracing::Span) -> Result<CommandResponse, AppError> {
        let (reply, answer) = oneshot::channel();
        let proposal = Proposal {
            encoded_bytes: encoded_len(&command),
            command,
            span,
            reply,
        };
        if self.queue.send(proposal).await.is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// One proposal counted as pending until it is answered; a caller that gives up first (its
/// client cancelled, the request timed out) drops it, and it counts as failed.
struct Pending<'a> {
    metrics: &'a NodeMetrics,
    answered: bool,
}

impl<'a> Pending<'a> {
    fn new(metrics: &'a NodeMetrics) -> Pending<'a> {
        metrics.proposal_queued();
        Pending {
            metrics,
            answered: false,
        }
    }

    fn done(mut self, committed: bool) {
        self.answered = true;
        self.metrics.proposal_done(1, committed);
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.metrics.proposal_done(1, false);
        }
    }
}

fn stopped() -> AppError {
    AppError::Stopped("the node is shutting down; retry on another node".into())
}

async fn run(raft: Raft, mut queue: mpsc::Receiver<Proposal>, metrics: NodeMetrics, shutdown: CancellationToken) {
    let in_flight = Arc::new(Semaphore::new(MAX_ENTRIES_IN_FLIGHT));
    let mut entries = JoinSet::new();
    // A proposal that did not fit the previous entry opens the next one.
    let mut carried: Option<Proposal> = None;
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = in_flight.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let first = match carried.take() {
            Some(proposal) => proposal,
            None => tokio::select! {
                _ = shutdown.cancelled() => break,
                proposal = queue.recv() => match proposal {
                    Some(proposal) => proposal,
                    None => break,
                },
            },
        };
        let (group, rest) = gather(first, &mut queue);
        carried = rest;
        let raft = raft.clone();
        let metrics = metrics.clone();
        entries.spawn(async move {
            let started = Instant::now();
            if propose_group(&raft, group).await {
                metrics.entry_committed(started.elapsed());
            }
            drop(permit);
        });
        while entries.try_join_next().is_some() {}
    }
    // Dropping the set aborts entries in flight: their callers learn the node stopped (the
    // entry may still commit; a retry with the same request id is safe).
    entries.shutdown().await;
}

/// `first` and whatever else is queued, within the entry's limits; and the proposal that
/// did not fit, if any.
fn gather(first: Proposal, queue: &mut mpsc::Receiver<Proposal>) -> (Vec<Proposal>, Option<Proposal>) {
    let mut bytes = first.encoded_bytes;
    let mut group = vec![first];
    while group.len() < MAX_COMMANDS_PER_ENTRY {
        let Ok(next) = queue.try_recv() else {
            break;
        };
        if bytes + next.encoded_bytes > MAX_GROUPED_BYTES {
            return (group, Some(next));
        }
        bytes += next.encoded_bytes;
        group.push(next);
    }
    (group, None)
}

/// Proposes `group` as one entry and answers each proposal; whether the entry committed.
async fn propose_group(raft: &Raft, mut group: Vec<Proposal>) -> bool {
    // From the entry's proposal to its commit and apply on this node, per traced proposal.
    let _commits: Vec<tracing::Span> = group
        .iter()
        .filter(|proposal| !proposal.span.is_disabled())
        .map(|proposal| tracing::info_span!(target: trace::TARGET, parent: &proposal.span, "commit", commands = group.len()))
        .collect();
    if group.len() == 1 {
        let proposal = group.pop().expect("one proposal");
        let result = write(raft, proposal.command).await;
        let committed = result.is_ok();
        let _ = proposal.reply.send(result);
        return committed;
    }
    let (commands, replies): (Vec<Command>, Vec<_>) = group
        .into_iter()
        .map(|proposal| (proposal.command, proposal.reply))
        .unzip();
    let count = commands.len();
    match write(raft, Command::Batch { commands }).await {
        Ok(CommandResponse::Batch(responses)) if responses.len() == count => {
            for (reply, response) in replies.into_iter().zip(responses) {
                let _ = reply.send(Ok(response));
            }
            true
        }
        Ok(_) => {
            let error = AppError::Internal(format!("a batch of {count} commands got a mismatched response"));
            replies
                .into_iter()
                .for_each(|reply| drop(reply.send(Err(error.clone()))));
            true
        }
        Err(error) => {
            replies
                .into_iter()
                .for_each(|reply| drop(reply.send(Err(error.clone()))));
            false
        }
    }
}

async fn write(raft: &Raft, command: Command) -> Result<CommandResponse, AppError> {
    match raft.client_write(command).await {
        Ok(response) => Ok(response.data),
        Err(error) => Err(write_error(error)),
    }
}

fn write_error(error: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> AppError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => AppError::from(&forward),
        RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => AppError::OutcomeUnknown,
        RaftError::APIError(other) => AppError::Internal(other.to_string()),
        RaftError::Fatal(fatal) => AppError::Stopped(fatal.to_string()),
    }
}
