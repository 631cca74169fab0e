//! [`ClusterClient`]: a client of the whole cluster that finds and follows the leader.
//!
//! It tries the node it last succeeded with, follows the `raftsched-leader` hint of a
//! follower's UNAVAILABLE answer, and otherwise moves on to the next node with a bounded,
//! jittered backoff — until the call's overall deadline. Submissions get a client request id
//! when they have none, so a retry after a lost answer cannot create a second task.
//!
//! Architecture invariant: this module is the client's gRPC edge. Its calls take tonic's
//! generated clients, but what fails comes back as a [`ClientError`] with our own
//! [`ErrorCode`]; `status.rs` is the one place that reads a `tonic::Status`.

mod code;
mod error;
mod snapshot;
mod status;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tonic::Status;
use tonic::transport::Channel;

use crate::TlsSettings;
pub use code::ErrorCode;
pub use error::ClientError;
use raftsched_api::ANSWERED_HEADER;
use raftsched_api::MAX_API_MESSAGE_BYTES;
use raftsched_api::peer_endpoint;
use raftsched_api::v1 as api;
use raftsched_api::v1::scheduler_client::SchedulerClient;
use raftsched_api::v1::workers_client::WorkersClient;
pub use snapshot::SavedSnapshot;
pub use snapshot::sha256_hex;
use status::is_retryable;
use status::leader_hint;
use status::rejected;

/// The three addresses `scripts/cluster.sh` uses by default.
pub const DEFAULT_CLUSTER: &str = "127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053";

/// Deadline of one RPC to one node. Generous: a frozen node is noticed by the HTTP/2
/// pings below and a cut-off leader refuses writes, so this only bounds a slow live node.
const PER_CALL_DEADLINE: Duration = Duration::from_secs(5);
/// How long a call may keep retrying across nodes (an election takes well under a second).
const DEFAULT_OVERALL_DEADLINE: Duration = Duration::from_secs(15);
/// HTTP/2 pings on every client connection: a node that stops answering them (paused,
/// frozen, cut off) fails the calls waiting on it within half a second, which then go to the
/// next node, instead of each waiting out its deadline.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_millis(200);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_millis(300);
/// How long a node that did not answer is tried after the others (it is forgiven at once
/// when it answers a call).
const SILENT_FOR: Duration = Duration::from_secs(2);
/// Deadline of a call to such a node, when a leader hint points at it: followers name the
/// old leader until the new one contacts them, so the hint may be stale; or the node may be
/// a restarted leader, which answers at once.
const SILENT_PROBE_DEADLINE: Duration = Duration::from_millis(200);
/// Between tries of unavailable nodes. The cap is short because the common cause is an
/// election, over within a few hundred ms: a longer wait would be paid after it ends.
/// Jitter (half to full) keeps many clients from retrying in lockstep.
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(160);

#[derive(Clone)]
pub struct ClusterClient {
    endpoints: Arc<[String]>,
    /// Index into `endpoints` (or a leader address learnt from a hint) of the node to try
    /// first; shared by clones so one learns for all.
    preferred: Arc<Mutex<String>>,
    /// One lazily connected channel per address, reused by every call and clone.
    channels: Arc<Mutex<BTreeMap<String, Channel>>>,
    /// Nodes that lately did not answer at all (deadline, broken connection), and when:
    /// retries go to the others first, so a paused node is not waited on twice.
    silent: Arc<Mutex<BTreeMap<String, Instant>>>,
    overall_deadline: Duration,
    /// Give up at once when every node refused the connection in a row (nothing listens:
    /// the cluster is down or the addresses are wrong) instead of retrying to the overall
    /// deadline. Off for clients that set their own deadline to wait out outages (workers).
    fail_fast_when_refused: bool,
    /// Deadline of one RPC to one node (shorter for a node that lately did not answer).
    per_call_deadline: Duration,
    /// The credentials every call is made with; None: plaintext (`--insecure` nodes).
    tls: Option<TlsSettings>,
    /// The namespace the helpers below act in when a spec or request names none (empty:
    /// the server's default namespace).
    namespace: String,
}

impl ClusterClient {
    /// `addresses` is a comma-separated list of `host:port`.
    pub fn new(addresses: &str) -> Result<ClusterClient, ClientError> {
        let endpoints: Vec<String> = addresses
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        let first = endpoints.first().cloned().ok_or(ClientError::NoEndpoints)?;
        for address in &endpoints {
            check_port(address).map_err(ClientError::BadAddress)?;
            peer_endpoint(address).map_err(ClientError::BadAddress)?;
        }
        Ok(ClusterClient {
            endpoints: endpoints.into(),
            preferred: Arc::new(Mutex::new(first)),
            channels: Arc::default(),
            silent: Arc::default(),
            overall_deadline: DEFAULT_OVERALL_DEADLINE,
            fail_fast_when_refused: true,
            per_call_deadline: PER_CALL_DEADLINE,
            tls: None,
            namespace: String::new(),
        })
    }

    /// Calls every node over TLS with `tls` (every node port requires a client
    /// certificate unless it runs `--insecure`).
    pub fn with_tls(mut self, tls: TlsSettings) -> ClusterClient {
        self.tls = Some(tls);
        // Channels made so far are plaintext: this client's (and its clones') start anew.
        self.channels = Arc::default();
        self
    }

    /// Acts in `namespace`: every spec and request the helpers send that names no namespace
    /// is given this one.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> ClusterClient {
        self.namespace = namespace.into();
        self
    }

    /// The namespace set by [`Self::with_namespace`] (empty: the default).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `field` if set, else this client's namespace.
    fn namespace_or_own(&self, field: &mut String) {
        if field.is_empty() {
            field.clone_from(&self.namespace);
        }
    }

    /// Retries for up to `deadline`, through a whole cluster being down: a client that sets
    /// its own deadline does not give up early when every node refuses the connection.
    pub fn with_overall_deadline(mut self, deadline: Duration) -> ClusterClient {
        self.overall_deadline = deadline;
        self.fail_fast_when_refused = false;
        self
    }

    /// Shorter per-RPC deadlines find a new leader sooner when the old one goes silent; they
    /// suit calls that need no more than one commit (a worker's heartbeat and registration).
    pub fn with_per_call_deadline(mut self, deadline: Duration) -> ClusterClient {
        self.per_call_deadline = deadline;
        self
    }

    /// Sends a request to one specific node, without following leaders or retrying.
    pub async fn call_node<T, F, Fut>(&self, address: &str, call: F) -> Result<T, ClientError>
    where
        F: FnOnce(SchedulerClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call_node_channel(address, |channel| call(scheduler_client(channel)))
            .await
    }

    /// Like [`Self::call_node`], for any service of the node; within the per-call deadline.
    pub async fn call_node_channel<T, F, Fut>(&self, address: &str, call: F) -> Result<T, ClientError>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let channel = self.channel_for(address).map_err(ClientError::BadAddress)?;
        match tokio::time::timeout(self.per_call_deadline, call(channel)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(rejected(status)),
            Err(_) => Err(ClientError::Unavailable {
                deadline: self.per_call_deadline,
                last_error: format!("{address} did not answer"),
            }),
        }
    }

    /// Runs `call` on the Scheduler service of the leader; see [`Self::call_channel`].
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(SchedulerClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call_channel(|channel| call(scheduler_client(channel))).await
    }

    /// Like [`Self::call`], on the Workers service of the leader.
    pub async fn call_workers<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(WorkersClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call_channel(|channel| call(WorkersClient::new(channel))).await
    }

    /// Runs `call` against the leader, following hints and retrying unavailable nodes until
    /// the overall deadline. `call` builds a fresh request each time (requests are consumed).
    pub async fn call_channel<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        Ok(self.call_channel_with_node(call).await?.1)
    }

    /// Like [`Self::call_channel`], and says which node answered (a session that must stay
    /// with one node, such as a worker's assignment stream, needs to know).
    pub async fn call_channel_with_node<T, F, Fut>(&self, call: F) -> Result<(String, T), ClientError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let started = Instant::now();
        let mut backoff = BACKOFF_MIN;
        let mut target = self.preferred.lock().expect("client lock poisoned").clone();
        // Nodes that refused the connection since the last that did not.
        let mut refused: BTreeSet<String> = BTreeSet::new();
        loop {
            // A node that did not answer lately gets only a short try: it may be back (a
            // restarted leader), or still frozen, and then the call must move on quickly.
            let deadline = match self.is_silent(&target) {
                true => self.per_call_deadline.min(SILENT_PROBE_DEADLINE),
                false => self.per_call_deadline,
            };
            let outcome = match self.channel_for(&target) {
                Ok(client) => match tokio::time::timeout(deadline, call(client)).await {
                    Ok(result) => result,
                    Err(_) => Err(Status::deadline_exceeded(format!("{target} did not answer"))),
                },
                Err(e) => Err(Status::unavailable(e)),
            };
            let status = match outcome {
                Ok(response) => {
                    self.silent.lock().expect("client lock poisoned").remove(&target);
                    *self.preferred.lock().expect("client lock poisoned") = target.clone();
                    return Ok((target, response.into_inner()));
                }
                Err(status) if !is_retryable(&status) => return Err(rejected(status)),
                Err(status) => status,
            };
            let answered = status.metadata().get(ANSWERED_HEADER).is_some();
            tracing::debug!(%target, answered, code = ?status.code(), "call failed: {}", status.message());
            if !answered {
                self.mark_silent(&target);
            }
            self.forget_preferred(&target);
            if connection_refused(&status) {
                refused.insert(target.clone());
                if self.fail_fast_when_refused && self.endpoints.iter().all(|e| refused.contains(e)) {
                    return Err(ClientError::Refused {
                        addresses: self.endpoints.join(", "),
                    });
                }
            } else {
                refused.clear();
            }
            if started.elapsed() + backoff >= self.overall_deadline {
                return Err(ClientError::Unavailable {
                    deadline: self.overall_deadline,
                    last_error: format!("{target}: {}", status.message()),
                });
            }
            match leader_hint(&status).filter(|hint| *hint != target) {
                // A fresh hint is worth following at once.
                Some(leader) => target = leader,
                None => {
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    target = self.next_endpoint(&target);
                }
            }
        }
    }

    fn channel_for(&self, address: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().expect("client lock poisoned");
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let channel = raftsched_api::endpoint(address, self.tls.as_ref().map(TlsSettings::client_config))?
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }

    /// A node that failed a call is not tried first by the next call (of any clone): a
    /// paused or cut-off leader would otherwise hold every call for a full deadline.
    pub(crate) fn forget_preferred(&self, failed: &str) {
        let mut preferred = self.preferred.lock().expect("client lock poisoned");
        if *preferred == failed {
            *preferred = self.next_endpoint(failed);
        }
    }

    /// Tells the client that `node` stopped answering (a worker's heartbeat or stream
    /// failed): calls try the other nodes first for a while. A leader hint naming it is
    /// still followed.
    pub fn avoid(&self, node: &str) {
        self.mark_silent(node);
        self.forget_preferred(node);
    }

    fn mark_silent(&self, node: &str) {
        let mut silent = self.silent.lock().expect("client lock poisoned");
        silent.retain(|_, since| since.elapsed() < SILENT_FOR);
        silent.insert(node.to_string(), Instant::now());
    }

    fn is_silent(&self, node: &str) -> bool {
        self.silent_since(node).is_some()
    }

    /// When `node` last failed to answer, if lately.
    fn silent_since(&self, node: &str) -> Option<Instant> {
        let silent = self.silent.lock().expect("client lock poisoned");
        silent.get(node).copied().filter(|since| since.elapsed() < SILENT_FOR)
    }

    /// The endpoint after `current` that answered lately; if every other one is silent, the
    /// one silent longest (it may have come back).
    fn next_endpoint(&self, current: &str) -> String {
        let position = self.endpoints.iter().position(|e| e == current);
        let start = position.map_or(0, |i| i + 1);
        let count = self.endpoints.len();
        let others: Vec<&String> = (0..count)
            .map(|k| &self.endpoints[(start + k) % count])
            .filter(|e| *e != current || count == 1)
            .collect();
        let answering = others.iter().find(|e| !self.is_silent(e));
        let longest_silent = || others.iter().min_by_key(|e| self.silent_since(e));
        answering
            .or_else(longest_silent)
            .map(|e| (*e).clone())
            .unwrap_or_else(|| self.endpoints[0].clone())
    }

    /// Submits one task; fills in a client request id when the spec has none.
    pub async fn submit_task(&self, mut spec: api::TaskSpec) -> Result<api::SubmitTaskResponse, ClientError> {
        self.namespace_or_own(&mut spec.namespace);
        if spec.client_request_id.is_empty() {
            spec.client_request_id = new_request_id();
        }
        self.call(|mut client| {
            let request = api::SubmitTaskRequest {
                spec: Some(spec.clone()),
            };
            async move { client.submit_task(request).await }
        })
        .await
    }

    /// Submits many tasks in one log entry; fills in request ids like [`Self::submit_task`].
    pub async fn submit_tasks(&self, mut specs: Vec<api::TaskSpec>) -> Result<api::SubmitTasksResponse, ClientError> {
        for spec in &mut specs {
            self.namespace_or_own(&mut spec.namespace);
            if spec.client_request_id.is_empty() {
                spec.client_request_id = new_request_id();
            }
        }
        self.call(|mut client| {
            let request = api::SubmitTasksRequest { specs: specs.clone() };
            async move { client.submit_tasks(request).await }
        })
        .await
    }

    /// A broadcast (`shards` = 0) or sharded run; fills in a request id like
    /// [`Self::submit_task`]. Returns the parent task.
    pub async fn submit_broadcast(
        &self,
        mut spec: api::TaskSpec,
        shards: u32,
    ) -> Result<api::SubmitTaskResponse, ClientError> {
        self.namespace_or_own(&mut spec.namespace);
        if spec.client_request_id.is_empty() {
            spec.client_request_id = new_request_id();
        }
        self.call(|mut client| {
            let request = api::SubmitBroadcastRequest {
                spec: Some(spec.clone()),
                shards,
            };
            async move { client.submit_broadcast(request).await }
        })
        .await
    }

    /// Submits a workflow; fills in a request id when it has none, so a retry cannot create
    /// a second one.
    pub async fn submit_workflow(
        &self,
        mut request: api::SubmitWorkflowRequest,
    ) -> Result<api::WorkflowResponse, ClientError> {
        self.namespace_or_own(&mut request.namespace);
        if request.request_id.is_empty() {
            request.request_id = new_request_id();
        }
        self.call(|mut client| {
            let request = request.clone();
            async move { client.submit_workflow(request).await }
        })
        .await
    }

    /// A workflow with all its tasks: a response carries about 3 MiB of them, so this
    /// follows `next_page_token` and appends each page (each read at its own time).
    pub async fn get_workflow(
        &self,
        workflow_id: u64,
        consistency: api::Consistency,
    ) -> Result<api::Workflow, ClientError> {
        let mut page_token = String::new();
        let mut workflow: Option<api::Workflow> = None;
        loop {
            let request = api::GetWorkflowRequest {
                workflow_id,
                consistency: consistency as i32,
                page_token: page_token.clone(),
            };
            let response = self
                .call(|mut client| {
                    let request = request.clone();
                    async move { client.get_workflow(request).await }
                })
                .await?;
            let page = response
                .workflow
                .ok_or_else(|| ClientError::empty_response("workflow"))?;
            match workflow.as_mut() {
                None => workflow = Some(page),
                Some(workflow) => workflow.tasks.extend(page.tasks),
            }
            if response.next_page_token.is_empty() || response.next_page_token == page_token {
                break;
            }
            page_token = response.next_page_token;
        }
        Ok(workflow.expect("the loop runs at least once"))
    }

    pub async fn get_schedule(&self, name: &str, consistency: api::Consistency) -> Result<api::Schedule, ClientError> {
        let response = self
            .call(|mut client| {
                let request = api::GetScheduleRequest {
                    name: name.to_string(),
                    consistency: consistency as i32,
                    namespace: self.namespace.clone(),
                };
                async move { client.get_schedule(request).await }
            })
            .await?;
        response.schedule.ok_or_else(|| ClientError::empty_response("schedule"))
    }

    pub async fn get_task(&self, task_id: u64, consistency: api::Consistency) -> Result<api::Task, ClientError> {
        let response = self
            .call(|mut client| async move {
                client
                    .get_task(api::GetTaskRequest {
                        task_id,
                        consistency: consistency as i32,
                    })
                    .await
            })
            .await?;
        response.task.ok_or_else(|| ClientError::empty_response("task"))
    }

    pub async fn list_tasks(&self, mut request: api::ListTasksRequest) -> Result<api::ListTasksResponse, ClientError> {
        self.namespace_or_own(&mut request.namespace);
        self.call(|mut client| {
            let request = request.clone();
            async move { client.list_tasks(request).await }
        })
        .await
    }

    pub async fn cancel_task(&self, task_id: u64, reason: &str) -> Result<api::Task, ClientError> {
        let response = self
            .call(|mut client| {
                let request = api::CancelTaskRequest {
                    task_id,
                    reason: reason.to_string(),
                };
                async move { client.cancel_task(request).await }
            })
            .await?;
        response.task.ok_or_else(|| ClientError::empty_response("task"))
    }

    /// Sets a queue's whole policy (weight, placement, retention: 0 = the cluster default);
    /// answers the policy as stored.
    pub async fn set_queue_policy(&self, mut policy: api::QueuePolicy) -> Result<api::QueuePolicy, ClientError> {
        self.namespace_or_own(&mut policy.namespace);
        let response = self
            .call(|mut client| {
                let request = api::SetQueuePolicyRequest {
                    policy: Some(policy.clone()),
                };
                async move { client.set_queue_policy(request).await }
            })
            .await?;
        response.policy.ok_or_else(|| ClientError::empty_response("policy"))
    }

    /// Asks any reachable node for every member's view.
    pub async fn cluster_status(&self) -> Result<api::ClusterStatusResponse, ClientError> {
        self.call(|mut client| async move { client.cluster_status(api::ClusterStatusRequest {}).await })
            .await
    }
}

fn scheduler_client(channel: Channel) -> SchedulerClient<Channel> {
    SchedulerClient::new(channel)
        .max_decoding_message_size(MAX_API_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_API_MESSAGE_BYTES)
}

/// Between half and all of `backoff`, so many clients do not retry in lockstep.
fn jittered(backoff: Duration) -> Duration {
    let millis = backoff.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
}

/// Whether the call failed because nothing listens at the address (ECONNREFUSED), found in
/// the status's chain of causes.
fn connection_refused(status: &Status) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Refuses an address without a port at once: `127.0.0.1` would otherwise be dialled on
/// port 80 and retried for the whole deadline (15 s) before the mistake showed.
fn check_port(address: &str) -> Result<(), String> {
    let shown: String = address.chars().take(64).collect();
    let port = match address.rsplit_once(':') {
        // An IPv6 address without a port ends in its own last group, inside brackets.
        Some((host, port)) if !host.is_empty() && !port.contains(']') => port,
        _ => {
            return Err(format!(
                "{shown:?} has no port: write HOST:PORT, e.g. 127.0.0.1:50051 (--cluster or RAFTSCHED_CLUSTER)"
            ));
        }
    };
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err(format!(
            "{shown:?}: the port must be a number from 1 to 65535 (--cluster or RAFTSCHED_CLUSTER)"
        )),
    }
}

/// A random request id (128 bits, hex).
pub fn new_request_id() -> String {
    format!("{:032x}", rand::rng().random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port on loopback nothing listens on (bound, then closed).
    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    }

    #[tokio::test]
    async fn every_node_refusing_fails_at_once_unless_the_client_waits_out_outages() {
        let addresses = format!("{},{}", closed_port(), closed_port());
        let started = Instant::now();
        let error = ClusterClient::new(&addresses)
            .unwrap()
            .get_task(1, api::Consistency::Stale)
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::Refused { .. }), "{error}");
        assert!(error.to_string().contains("is the cluster running"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );

        let patient = ClusterClient::new(&addresses)
            .unwrap()
            .with_overall_deadline(Duration::from_millis(300));
        let error = patient.get_task(1, api::Consistency::Stale).await.unwrap_err();
        assert!(matches!(error, ClientError::Unavailable { .. }), "{error}");
    }

    #[test]
    fn an_address_needs_a_port_from_1_to_65535() {
        for good in ["127.0.0.1:50051", "localhost:1", "[::1]:65535", "a:1,b:2"] {
            assert!(ClusterClient::new(good).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("127.0.0.1", "has no port"),
            ("[::1]", "has no port"),
            (":50051", "has no port"),
            ("127.0.0.1:0", "from 1 to 65535"),
            ("127.0.0.1:65536", "from 1 to 65535"),
            ("127.0.0.1:x", "from 1 to 65535"),
            ("127.0.0.1:50051,127.0.0.2", "has no port"),
        ] {
            let error = ClusterClient::new(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"))
                .to_string();
            assert!(error.contains(says), "{bad}: {error}");
            assert!(error.contains("--cluster"), "{bad}: {error}");
        }
    }

    #[tokio::test]
    async fn retries_skip_a_node_that_did_not_answer() {
        let client = ClusterClient::new("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3").unwrap();
        assert_eq!(client.next_endpoint("127.0.0.1:1"), "127.0.0.1:2");
        client.avoid("127.0.0.1:2");
        assert_eq!(client.next_endpoint("127.0.0.1:1"), "127.0.0.1:3");
        assert_eq!(client.next_endpoint("127.0.0.1:3"), "127.0.0.1:1");
        // The preferred node moved past the silent one.
        assert_eq!(*client.preferred.lock().unwrap(), "127.0.0.1:1");
        client.avoid("127.0.0.1:1");
        assert_eq!(*client.preferred.lock().unwrap(), "127.0.0.1:3");
        // Every other node silent: the one silent longest.
        assert_eq!(client.next_endpoint("127.0.0.1:3"), "127.0.0.1:2");
        assert_eq!(
            ClusterClient::new("127.0.0.1:1").unwrap().next_endpoint("127.0.0.1:1"),
            "127.0.0.1:1"
        );
    }
}
