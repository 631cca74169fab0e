//! [`Worker`]: registers with the cluster, holds the assignment stream from the leader,
//! runs each attempt (a shell command, or a handler registered for an opaque kind),
//! heartbeats, and reports every result with its fencing token. Follows the leader across
//! failovers on its own; drains cleanly on shutdown.
//!
//! Architecture invariant: the runtime speaks the Workers API of `raftsched_api` through
//! [`ClusterClient`] and sees failures as [`ClientError`]s; it never reads a
//! `tonic::Status` (that is `cluster/status.rs`).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::ClientError;
use crate::ClusterClient;
use crate::ErrorCode;
use crate::new_request_id;
use crate::task_span;
use crate::trace;
use crate::worker::execution::ExecutionOptions;
use crate::worker::executor;
use crate::worker::executor::CommandRun;
use crate::worker::executor::ExecOutcome;
use raftsched_api::v1 as api;
use raftsched_api::v1::workers_client::WorkersClient;
use raftsched_core::state::limits::MAX_ERROR_BYTES;
use raftsched_core::state::limits::MAX_OUTPUT_TAIL_BYTES;
use raftsched_core::state::limits::truncate_error;
use raftsched_core::state::limits::truncate_tail;

/// How long a worker keeps trying to deliver one result before leaving the attempt to the
/// leader's lease expiry.
const REPORT_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between attempts to reach the cluster when it is unreachable.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);
/// Bounds of the deadline of one call to one node (register, attach, report).
const CALL_DEADLINE_MIN: Duration = Duration::from_millis(500);
const CALL_DEADLINE_MAX: Duration = Duration::from_secs(5);
/// A heartbeat gets at least this long before the worker gives up on its leader.
const HEARTBEAT_DEADLINE_MIN: Duration = Duration::from_millis(200);
/// Pause after the leader refused a result for a reason other than a void attempt (too busy,
/// an older leader's stricter check): doubles from 200 ms up to 5 s, so the 60 s report
/// deadline still allows more than a dozen tries and a leader change in between.
const REFUSED_BACKOFF_MIN: Duration = Duration::from_millis(200);
const REFUSED_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// After an INVALID_ARGUMENT, a leader with stricter limits than ours: the report is sent
/// again with its tails cut to 1 KiB and its error to 256 bytes. The outcome is what
/// matters; a shorter tail is better than a result dropped.
const SHRUNK_TAIL_BYTES: usize = 1024;
const SHRUNK_ERROR_BYTES: usize = 256;
const _: () = assert!(REFUSED_BACKOFF_MIN.as_millis() <= REFUSED_BACKOFF_MAX.as_millis());
const _: () = assert!(REFUSED_BACKOFF_MAX.as_secs() * 10 < REPORT_DEADLINE.as_secs());
const _: () = assert!(SHRUNK_TAIL_BYTES < MAX_OUTPUT_TAIL_BYTES && SHRUNK_ERROR_BYTES < MAX_ERROR_BYTES);

/// A worker's settings.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub worker_id: String,
    /// The namespace whose tasks this worker takes (empty: the default).
    pub namespace: String,
    pub slots: u32,
    pub labels: BTreeMap<String, String>,
    pub resources: api::Resources,
    /// Without a heartbeat for this long, the leader voids this worker's attempts.
    pub lease_ms: u64,
    /// Bytes of stdout and of stderr kept per attempt and reported (marker included); at
    /// most [`MAX_OUTPUT_TAIL_BYTES`], which a larger value is cut to.
    pub output_tail_bytes: usize,
    /// On shutdown, how long running attempts may take to finish before they are killed and
    /// handed back.
    pub drain_timeout: Duration,
    /// What command tasks inherit from this process's environment (`--pass-env`) and their
    /// kill grace (`--kill-grace`).
    pub execution: ExecutionOptions,
}

impl WorkerOptions {
    pub fn new(worker_id: impl Into<String>, slots: u32) -> WorkerOptions {
        WorkerOptions {
            worker_id: worker_id.into(),
            namespace: String::new(),
            slots,
            labels: BTreeMap::new(),
            resources: api::Resources::default(),
            lease_ms: 5000,
            output_tail_bytes: MAX_OUTPUT_TAIL_BYTES,
            drain_timeout: Duration::from_secs(30),
            execution: ExecutionOptions::default(),
        }
    }
}

/// What a handler is given for one attempt of an opaque task.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub task_id: u64,
    pub attempt: u32,
    pub token: u64,
    pub name: String,
    pub kind: String,
    pub data: Vec<u8>,
    pub labels: BTreeMap<String, String>,
    /// The W3C trace context of this run (a command gets it as `TRACEPARENT`), when the
    /// task is traced.
    pub trace_parent: Option<String>,
    /// Cancelled when the task is cancelled, the attempt is void, or the worker hands it back.
    pub cancel: CancellationToken,
}

/// Why a handler failed.
#[derive(Debug, Clone)]
pub struct HandlerError {
    pub message: String,
    /// False for failures a retry cannot fix (bad input, say).
    pub retryable: bool,
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<String, HandlerError>> + Send>>;

/// Runs attempts of one opaque task kind. Returns the output to record, or why it failed.
pub trait TaskHandler: Send + Sync + 'static {
    fn handle(&self, task: TaskContext) -> HandlerFuture;
}

impl<F, Fut> TaskHandler for F
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, HandlerError>> + Send + 'static,
{
    fn handle(&self, task: TaskContext) -> HandlerFuture {
        Box::pin(self(task))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("invalid worker options: {0}")]
    Invalid(String),
    #[error("the cluster refused this worker: {0}")]
    Refused(String),
    /// Worth retrying: no leader reachable, or the leader changed mid-way.
    #[error("lost contact with the cluster: {0}")]
    Lost(String),
}

/// Why a running attempt was stopped, so its report says the right thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Cancelled,
    HandedBack,
}

struct RunningAttempt {
    cancel: CancellationToken,
    stop_reason: Arc<Mutex<Option<StopReason>>>,
}

/// A worker. Build it, register handlers for opaque kinds, then [`Worker::run`].
pub struct Worker {
    options: WorkerOptions,
    cluster: ClusterClient,
    handlers: BTreeMap<String, Arc<dyn TaskHandler>>,
}

/// State shared by the worker's tasks.
struct Shared {
    options: WorkerOptions,
    cluster: ClusterClient,
    handlers: BTreeMap<String, Arc<dyn TaskHandler>>,
    /// Chosen at start: tells the leader a restarted worker from one that re-attaches.
    session_id: String,
    /// Attempts running now, by token. Guarded for short, synchronous use.
    running: Mutex<BTreeMap<u64, RunningAttempt>>,
    /// Bounds concurrent attempts to the slots, whatever the leader sends.
    slots: Semaphore,
}

impl Worker {
    pub fn new(cluster: ClusterClient, options: WorkerOptions) -> Worker {
        // A call to a silent node must give up well within the lease, so the worker reaches
        // the next leader before its attempts' leases run out.
        let per_call_deadline = Duration::from_millis(options.lease_ms / 2).clamp(CALL_DEADLINE_MIN, CALL_DEADLINE_MAX);
        Worker {
            options,
            cluster: cluster.with_per_call_deadline(per_call_deadline),
            handlers: BTreeMap::new(),
        }
    }

    /// Runs `handler` for tasks with an opaque payload of `kind`.
    pub fn handle(mut self, kind: impl Into<String>, handler: impl TaskHandler) -> Worker {
        self.handlers.insert(kind.into(), Arc::new(handler));
        self
    }

    /// Works until `shutdown` is cancelled, then drains: stops taking work, lets running
    /// attempts finish within the drain timeout, hands back the rest, and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        if self.options.slots == 0 || self.options.worker_id.is_empty() {
            return Err(WorkerError::Invalid(
                "a worker needs an id and at least one slot".into(),
            ));
        }
        let shared = Arc::new(Shared {
            slots: Semaphore::new(self.options.slots as usize),
            options: self.options,
            cluster: self.cluster,
            handlers: self.handlers,
            session_id: new_request_id(),
            running: Mutex::new(BTreeMap::new()),
        });
        let mut attempts = JoinSet::new();
        while !shutdown.is_cancelled() {
            // A session that ended cleanly (leader gone or deposed) is followed at once: the
            // sooner the worker re-attaches, the sooner the new leader can dispatch to it.
            let pause = match shared.clone().serve_one_session(&shutdown, &mut attempts).await {
                Ok(()) => Duration::ZERO,
                Err(WorkerError::Refused(message)) => return Err(WorkerError::Refused(message)),
                Err(e) => {
                    tracing::warn!("worker session ended: {e}");
                    RECONNECT_BACKOFF
                }
            };
            while attempts.try_join_next().is_some() {}
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        shared.drain(attempts).await;
        Ok(())
    }
}

impl Shared {
    /// Registers, attaches, and handles instructions until the stream ends or shutdown.
    async fn serve_one_session(
        self: Arc<Self>,
        shutdown: &CancellationToken,
        attempts: &mut JoinSet<()>,
    ) -> Result<(), WorkerError> {
        // Reaching the cluster may take long (it may be down); shutdown must not wait for it.
        let registered = tokio::select! {
            registered = self.register() => registered?,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let running_tokens = self.running_tokens();
        let (worker_id, session_id) = (self.options.worker_id.clone(), self.session_id.clone());
        let attach = self.cluster.call_channel_with_node(move |channel| {
            let request = api::AttachRequest {
                worker_id: worker_id.clone(),
                session_id: session_id.clone(),
                running_tokens: running_tokens.clone(),
            };
            async move { WorkersClient::new(channel).attach(request).await }
        });
        let attach = tokio::select! {
            attach = attach => attach,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let (leader, mut stream) = attach.map_err(|e| WorkerError::Lost(format!("attach: {e}")))?;
        tracing::info!(worker = %self.options.worker_id, %leader, "attached to the leader");
        // Heartbeats go to the node that holds the stream: when it stops answering (paused,
        // cut off, deposed), the session ends and the worker finds the new leader, instead of
        // heartbeating the new leader while its stream waits on the old one.
        let session_over = shutdown.child_token();
        let heartbeat_every = Duration::from_millis(registered.heartbeat_interval_ms.max(50));
        let pinned = Some(leader.clone());
        tokio::spawn(
            self.clone()
                .heartbeat_loop(heartbeat_every, pinned, session_over.clone()),
        );
        let _stop_heartbeats = session_over.clone().drop_guard();
        loop {
            let message = tokio::select! {
                _ = session_over.cancelled() => return Ok(()),
                message = stream.message() => message,
            };
            // The node closed the stream (deposed, cut off) or went silent: look for the
            // leader elsewhere first; a node that still leads is found again through hints.
            match message {
                Ok(Some(instruction)) => {
                    self.clone().follow(instruction, attempts);
                    continue;
                }
                Ok(None) => self.cluster.forget_preferred(&leader),
                Err(status) => {
                    tracing::info!(worker = %self.options.worker_id, %leader, "assignment stream broke: {}", status.message());
                    self.cluster.avoid(&leader);
                }
            }
            tracing::info!(worker = %self.options.worker_id, %leader, "assignment stream ended");
            return Ok(());
        }
    }

    async fn register(&self) -> Result<api::RegisterWorkerResponse, WorkerError> {
        let options = self.options.clone();
        let session_id = self.session_id.clone();
        let result = self
            .cluster
            .call_workers(move |mut c| {
                let request = api::RegisterWorkerRequest {
                    worker_id: options.worker_id.clone(),
                    session_id: session_id.clone(),
                    slots: options.slots,
                    labels: options.labels.clone().into_iter().collect(),
                    resources: Some(options.resources),
                    lease_ms: options.lease_ms,
                    namespace: options.namespace.clone(),
                };
                async move { c.register_worker(request).await }
            })
            .await;
        match result {
            Ok(response) => Ok(response),
            Err(ClientError::Rejected {
                code: ErrorCode::InvalidArgument,
                message,
                ..
            }) => Err(WorkerError::Refused(message)),
            Err(e) => Err(WorkerError::Lost(format!("register: {e}"))),
        }
    }

    fn running_tokens(&self) -> Vec<u64> {
        self.running
            .lock()
            .expect("worker lock poisoned")
            .keys()
            .copied()
            .collect()
    }

    /// Renews the lease every `every`. With a `pinned` node, every beat goes to that node and
    /// the first one it fails to answer within `every` (plus slack) ends the session `stop`;
    /// without, beats follow the leader and failures are only logged.
    async fn heartbeat_loop(self: Arc<Self>, every: Duration, pinned: Option<String>, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = (every * 3 / 2).max(HEARTBEAT_DEADLINE_MIN);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let request = api::HeartbeatRequest {
                worker_id: self.options.worker_id.clone(),
                session_id: self.session_id.clone(),
                running_tokens: self.running_tokens(),
            };
            let reply = match &pinned {
                Some(node) => {
                    let call = self.cluster.call_node_channel(node, move |channel| async move {
                        WorkersClient::new(channel).heartbeat(request).await
                    });
                    match tokio::time::timeout(deadline, call).await {
                        Ok(reply) => reply,
                        Err(_) => Err(ClientError::Unavailable {
                            deadline,
                            last_error: format!("{node} did not answer a heartbeat"),
                        }),
                    }
                }
                None => {
                    self.cluster
                        .call_workers(move |mut c| {
                            let request = request.clone();
                            async move { c.heartbeat(request).await }
                        })
                        .await
                }
            };
            match (reply, &pinned) {
                (Ok(reply), _) => self.stop_attempts(&reply.void_tokens, StopReason::Cancelled),
                (Err(e), Some(node)) => {
                    tracing::info!(worker = %self.options.worker_id, "heartbeat to {node} failed ({e}): looking for the leader");
                    // A node that answered (deposed, session replaced) is alive: only the
                    // next call should start elsewhere. One that did not is avoided a while.
                    match e {
                        ClientError::Rejected { .. } => self.cluster.forget_preferred(node),
                        _ => self.cluster.avoid(node),
                    }
                    stop.cancel();
                    return;
                }
                (Err(e), None) => tracing::debug!("heartbeat failed: {e}"),
            }
        }
    }

    fn stop_attempts(&self, tokens: &[u64], reason: StopReason) {
        let running = self.running.lock().expect("worker lock poisoned");
        for token in tokens {
            if let Some(attempt) = running.get(token) {
                attempt
                    .stop_reason
                    .lock()
                    .expect("worker lock poisoned")
                    .get_or_insert(reason);
                attempt.cancel.cancel();
            }
        }
    }

    fn follow(self: Arc<Self>, instruction: api::WorkerInstruction, attempts: &mut JoinSet<()>) {
        match instruction.instruction {
            Some(api::worker_instruction::Instruction::Assign(assignment)) => {
                let token = assignment.token;
                let attempt = RunningAttempt {
                    cancel: CancellationToken::new(),
                    stop_reason: Arc::default(),
                };
                let (cancel, stop_reason) = (attempt.cancel.clone(), attempt.stop_reason.clone());
                {
                    let mut running = self.running.lock().expect("worker lock poisoned");
                    if running.contains_key(&token) {
                        return; // already running: a re-attach repeats what we hold
                    }
                    running.insert(token, attempt);
                }
                attempts.spawn(async move {
                    self.execute(assignment, cancel, stop_reason).await;
                    self.running.lock().expect("worker lock poisoned").remove(&token);
                });
            }
            Some(api::worker_instruction::Instruction::Cancel(cancel)) => {
                self.stop_attempts(&[cancel.token], StopReason::Cancelled);
            }
            None => {}
        }
    }

    async fn execute(
        &self,
        assignment: api::Assignment,
        cancel: CancellationToken,
        stop_reason: Arc<Mutex<Option<StopReason>>>,
    ) {
        let Ok(_slot) = self.slots.acquire().await else { return };
        let task = assignment.task.clone().unwrap_or_default();
        let spec = task.spec.clone().unwrap_or_default();
        // The push's context, else the task's (an assignment re-sent on attach has none).
        let parent = [&assignment.trace_parent, &spec.trace_parent]
            .into_iter()
            .find(|context| !context.is_empty())
            .map(String::as_str);
        let span = task_span!("run", parent, task.id);
        let trace_parent = trace::traceparent_of(&span, parent);
        let run = async {
            match spec.payload {
                Some(api::task_spec::Payload::Command(command)) => {
                    self.run_command(&task, &assignment, command, trace_parent.as_deref(), cancel)
                        .await
                }
                Some(api::task_spec::Payload::Opaque(opaque)) => {
                    self.run_handler(&task, &assignment, opaque, spec.labels, trace_parent.clone(), cancel)
                        .await
                }
                None => failure("task has no payload", false),
            }
        };
        let mut report = run.instrument(span).await;
        if report.outcome == api::AttemptOutcome::Cancelled as i32
            && *stop_reason.lock().expect("worker lock poisoned") == Some(StopReason::HandedBack)
        {
            report.outcome = api::AttemptOutcome::HandedBack as i32;
        }
        report.task_id = task.id;
        report.token = assignment.token;
        fit_to_limits(&mut report, self.tail_bytes(), MAX_ERROR_BYTES);
        self.report(report, trace_parent.as_deref()).await;
    }

    async fn run_command(
        &self,
        task: &api::Task,
        assignment: &api::Assignment,
        command: api::CommandPayload,
        trace_parent: Option<&str>,
        cancel: CancellationToken,
    ) -> api::ReportResultRequest {
        let spec = task.spec.clone().unwrap_or_default();
        let mut env: BTreeMap<String, String> = command.env.into_iter().collect();
        if let Some(trace_parent) = trace_parent {
            env.insert(trace::TRACEPARENT_VARIABLE.into(), trace_parent.to_string());
        }
        env.insert("RAFTSCHED_TASK_ID".into(), task.id.to_string());
        env.insert("RAFTSCHED_TASK_NAME".into(), spec.name.clone());
        env.insert("RAFTSCHED_ATTEMPT".into(), assignment.attempt.to_string());
        env.insert("RAFTSCHED_TOKEN".into(), assignment.token.to_string());
        env.insert("RAFTSCHED_WORKER_ID".into(), self.options.worker_id.clone());
        if task.shard_total > 0 {
            env.insert("RAFTSCHED_SHARD_INDEX".into(), task.shard_index.to_string());
            env.insert("RAFTSCHED_SHARD_TOTAL".into(), task.shard_total.to_string());
        }
        if !task.origin.is_empty() {
            // For example schedule/nightly/1767225600000: an idempotency key per occurrence.
            env.insert("RAFTSCHED_ORIGIN".into(), task.origin.clone());
        }
        let outcome = executor::run_command(CommandRun {
            command_line: &command.command_line,
            env: &env,
            execution: &self.options.execution,
            timeout: Duration::from_millis(spec.attempt_timeout_ms.max(1)),
            output_tail_bytes: self.tail_bytes(),
            cancel,
        })
        .await;
        report_of(outcome)
    }

    async fn run_handler(
        &self,
        task: &api::Task,
        assignment: &api::Assignment,
        opaque: api::OpaquePayload,
        labels: std::collections::HashMap<String, String>,
        trace_parent: Option<String>,
        cancel: CancellationToken,
    ) -> api::ReportResultRequest {
        let Some(handler) = self.handlers.get(&opaque.kind).cloned() else {
            let message = format!(
                "worker {} has no handler for kind {:?}",
                self.options.worker_id, opaque.kind
            );
            return failure(&message, false);
        };
        let spec = task.spec.clone().unwrap_or_default();
        let timeout = Duration::from_millis(spec.attempt_timeout_ms.max(1));
        let context = TaskContext {
            task_id: task.id,
            attempt: assignment.attempt,
            token: assignment.token,
            name: spec.name,
            kind: opaque.kind,
            data: opaque.data,
            labels: labels.into_iter().collect(),
            trace_parent,
            cancel: cancel.clone(),
        };
        let run = handler.handle(context);
        tokio::select! {
            result = run => match result {
                Ok(output) => api::ReportResultRequest {
                    outcome: api::AttemptOutcome::Succeeded as i32,
                    stdout_tail: truncate_tail(&output, self.tail_bytes()),
                    ..Default::default()
                },
                Err(e) => failure(&e.message, e.retryable),
            },
            _ = cancel.cancelled() => api::ReportResultRequest {
                outcome: api::AttemptOutcome::Cancelled as i32,
                ..Default::default()
            },
            _ = tokio::time::sleep(timeout) => api::ReportResultRequest {
                outcome: api::AttemptOutcome::TimedOut as i32,
                error: format!("handler did not finish within {timeout:?}"),
                ..Default::default()
            },
        }
    }

    /// Bytes each reported tail may take: the option, within what the leader keeps.
    fn tail_bytes(&self) -> usize {
        self.options.output_tail_bytes.min(MAX_OUTPUT_TAIL_BYTES)
    }

    /// Delivers a result to the leader, retrying through failovers and refusals until it is
    /// accepted, found void (stale attempt: nothing more to do), or the report deadline
    /// passes. Any other refusal may be passing (a busy or older leader), so it is retried.
    async fn report(&self, mut report: api::ReportResultRequest, trace_parent: Option<&str>) {
        // The leader records a result only from the attempt's own worker and session.
        report.worker_id = self.options.worker_id.clone();
        report.session_id = self.session_id.clone();
        let started = Instant::now();
        let mut refused_backoff = REFUSED_BACKOFF_MIN;
        loop {
            let request = report.clone();
            let result = self
                .cluster
                .call_workers(move |mut c| {
                    let mut request = tonic::Request::new(request.clone());
                    // The leader's "report" span joins the run's trace.
                    if let Some(value) = trace_parent.and_then(|t| tonic::metadata::MetadataValue::try_from(t).ok()) {
                        request.metadata_mut().insert(trace::TRACEPARENT_HEADER, value);
                    }
                    async move { c.report_result(request).await }
                })
                .await;
            let error = match result {
                Ok(_) => return,
                Err(ClientError::Rejected { code, message, .. }) if is_void_attempt(code, &message) => {
                    tracing::info!(
                        task = report.task_id,
                        token = report.token,
                        "result not recorded: {message}"
                    );
                    return;
                }
                Err(error) => error,
            };
            if started.elapsed() > REPORT_DEADLINE {
                tracing::warn!(
                    task = report.task_id,
                    "giving up reporting, the lease will expire: {error}"
                );
                return;
            }
            let pause = match &error {
                ClientError::Rejected { code, message, .. } => {
                    tracing::warn!(task = report.task_id, token = report.token, code = ?code,
                        "result refused, retrying in {refused_backoff:?}: {message}");
                    if *code == ErrorCode::InvalidArgument {
                        fit_to_limits(&mut report, SHRUNK_TAIL_BYTES, SHRUNK_ERROR_BYTES);
                    }
                    let pause = refused_backoff;
                    refused_backoff = (refused_backoff * 2).min(REFUSED_BACKOFF_MAX);
                    pause
                }
                _ => RECONNECT_BACKOFF,
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// Stops taking work, waits for running attempts up to the drain timeout, then kills and
    /// hands back the rest and waits for their reports.
    async fn drain(self: &Arc<Self>, mut attempts: JoinSet<()>) {
        // Keep the lease alive while attempts finish, or the leader would void them.
        let draining = CancellationToken::new();
        let _stop_heartbeats = draining.clone().drop_guard();
        let heartbeat_every = Duration::from_millis((self.options.lease_ms / 5).max(50));
        tokio::spawn(self.clone().heartbeat_loop(heartbeat_every, None, draining));
        // The session has ended, so nothing more is taken from the stream: what runs now is
        // all this worker will run, and the leader hands back anything else it assigned us.
        let request = api::DrainWorkerRequest {
            worker_id: self.options.worker_id.clone(),
            session_id: self.session_id.clone(),
            holding: Some(api::Holding {
                running_tokens: self.running_tokens(),
            }),
        };
        let drain = self.cluster.call_workers(move |mut c| {
            let request = request.clone();
            async move { c.drain_worker(request).await }
        });
        if let Err(e) = tokio::time::timeout(Duration::from_secs(5), drain).await {
            tracing::warn!("could not tell the leader this worker drains: {e}");
        }
        let finished = tokio::time::timeout(self.options.drain_timeout, async {
            while attempts.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            let tokens = self.running_tokens();
            tracing::info!(count = tokens.len(), "drain timeout: handing back unfinished attempts");
            self.stop_attempts(&tokens, StopReason::HandedBack);
            while attempts.join_next().await.is_some() {}
        }
    }
}

fn failure(message: &str, retryable: bool) -> api::ReportResultRequest {
    api::ReportResultRequest {
        outcome: api::AttemptOutcome::Failed as i32,
        error: message.to_string(),
        non_retryable: !retryable,
        ..Default::default()
    }
}

fn report_of(outcome: ExecOutcome) -> api::ReportResultRequest {
    match outcome {
        ExecOutcome::Exited {
            exit_code,
            stdout_tail,
            stderr_tail,
        } => api::ReportResultRequest {
            outcome: if exit_code == 0 {
                api::AttemptOutcome::Succeeded
            } else {
                api::AttemptOutcome::Failed
            } as i32,
            exit_code,
            has_exit_code: true,
            error: if exit_code == 0 {
                String::new()
            } else {
                format!("exited with code {exit_code}")
            },
            stdout_tail,
            stderr_tail,
            ..Default::default()
        },
        ExecOutcome::Signalled {
            signal,
            stdout_tail,
            stderr_tail,
        } => api::ReportResultRequest {
            outcome: api::AttemptOutcome::Failed as i32,
            error: format!("killed by signal {signal}"),
            stdout_tail,
            stderr_tail,
            ..Default::default()
        },
        ExecOutcome::TimedOut {
            after,
            stop,
            stdout_tail,
            stderr_tail,
        } => api::ReportResultRequest {
            outcome: api::AttemptOutcome::TimedOut as i32,
            error: format!("timed out after {after:?}; its process group was stopped: {stop}"),
            stdout_tail,
            stderr_tail,
            ..Default::default()
        },
        ExecOutcome::Cancelled {
            stop,
            stdout_tail,
            stderr_tail,
        } => api::ReportResultRequest {
            outcome: api::AttemptOutcome::Cancelled as i32,
            error: format!("its process group was stopped: {stop}"),
            stdout_tail,
            stderr_tail,
            ..Default::default()
        },
        ExecOutcome::SpawnFailed(error) => failure(&format!("could not start the command: {error}"), false),
    }
}

/// Cuts a report's tails (keeping their ends) and its error (keeping its start) to the given
/// bytes, markers included. Cutting again to the same or larger limits changes nothing.
fn fit_to_limits(report: &mut api::ReportResultRequest, tail_bytes: usize, error_bytes: usize) {
    report.stdout_tail = truncate_tail(&report.stdout_tail, tail_bytes);
    report.stderr_tail = truncate_tail(&report.stderr_tail, tail_bytes);
    report.error = truncate_error(&report.error, error_bytes);
}

/// The refusals that are final for a result: the attempt is void (cancelled, timed out,
/// reassigned: FAILED_PRECONDITION "stale attempt"), its task does not exist (NOT_FOUND;
/// tasks are never removed, so no retry can find it), or it is not this worker's
/// (PERMISSION_DENIED).
fn is_void_attempt(code: ErrorCode, message: &str) -> bool {
    match code {
        ErrorCode::FailedPrecondition => message.contains("stale attempt"),
        ErrorCode::NotFound => true,
        // Not this worker's attempt (or session): no retry can change who holds it.
        ErrorCode::PermissionDenied => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftsched_core::state::limits::TRUNCATION_MARKER;

    #[test]
    fn only_a_void_attempt_is_final() {
        // The message the leader sends: AppError::Rejected shows the StateError as it is.
        let stale = raftsched_core::state::StateError::StaleToken {
            task_id: 1,
            token: 3,
            current: "the task is cancelled".into(),
        };
        assert!(is_void_attempt(ErrorCode::FailedPrecondition, &stale.to_string()));
        assert!(is_void_attempt(ErrorCode::NotFound, "task 9 not found"));
        assert!(is_void_attempt(
            ErrorCode::PermissionDenied,
            "task 1's attempt (token 3) is held by worker \"a\""
        ));
        for (code, message) in [
            (
                ErrorCode::InvalidArgument,
                "invalid output: a tail is longer than 4096 bytes",
            ),
            (ErrorCode::ResourceExhausted, "too busy"),
            (ErrorCode::Unavailable, "not the leader"),
            (
                ErrorCode::FailedPrecondition,
                "worker \"w\" registered again with another session",
            ),
            (ErrorCode::Internal, "bug"),
        ] {
            assert!(!is_void_attempt(code, message), "{code:?}: {message}");
        }
    }

    #[test]
    fn fitting_cuts_tails_and_error_and_is_idempotent() {
        let mut report = api::ReportResultRequest {
            stdout_tail: "o".repeat(10_000),
            stderr_tail: "short".into(),
            error: "e".repeat(10_000),
            ..Default::default()
        };
        fit_to_limits(&mut report, MAX_OUTPUT_TAIL_BYTES, MAX_ERROR_BYTES);
        assert_eq!(report.stdout_tail.len(), MAX_OUTPUT_TAIL_BYTES);
        assert!(report.stdout_tail.starts_with(TRUNCATION_MARKER));
        assert_eq!(report.stderr_tail, "short");
        assert_eq!(report.error.len(), MAX_ERROR_BYTES);
        assert!(report.error.ends_with(TRUNCATION_MARKER));
        let fitted = report.clone();
        fit_to_limits(&mut report, MAX_OUTPUT_TAIL_BYTES, MAX_ERROR_BYTES);
        assert_eq!(report, fitted);
        fit_to_limits(&mut report, SHRUNK_TAIL_BYTES, SHRUNK_ERROR_BYTES);
        assert_eq!(report.stdout_tail.len(), SHRUNK_TAIL_BYTES);
        assert_eq!(report.error.len(), SHRUNK_ERROR_BYTES);
    }
}
