//! Sends generated cases to a live cluster over raw tonic clients and judges the answers.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use raftsched_api::ANSWERED_HEADER;
use raftsched_api::v1 as api;
use raftsched_api::v1::scheduler_client::SchedulerClient;
use raftsched_api::v1::workers_client::WorkersClient;
use raftsched_store::raft_types::NodeId;
use tokio::time::Instant;
use tonic::Code;
use tonic::Status;
use tonic::transport::Channel;

use super::common::TestCluster;
use super::ops::Op;
use super::ops::Target;

/// No single call may take longer: the slowest honest one (a write while an election runs,
/// a ClusterStatus that waits 1 s per silent peer) answers in a few seconds even on a
/// loaded 2-core machine; the server's own cap is 60 s.
pub const CALL_DEADLINE: Duration = Duration::from_secs(20);
/// How long to wait for all three nodes to report their digest at one applied index: the
/// dispatcher and schedules keep committing, but replication takes milliseconds.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(30);
/// Kept per kind of id; older ones are forgotten (a case refers to recent ones).
const POOL: usize = 64;

/// Ids the cluster handed out, for requests that refer to real things.
#[derive(Default)]
pub struct Pools {
    pub tasks: Vec<u64>,
    /// (task id, token) of attempts the harness saw assigned or running.
    pub attempts: Vec<(u64, u64)>,
    /// What the last Attach was given.
    pub last_assigned: Vec<(u64, u64)>,
    /// The worker id and session the last Attach named: reports go out as it, so reports of
    /// its own attempts are recorded and others' are refused (PERMISSION_DENIED).
    pub last_attacher: Option<(String, String)>,
    pub workers: Vec<(String, String)>,
    pub schedules: Vec<String>,
    pub workflows: Vec<u64>,
}

/// The `n`-th newest item of a pool.
pub fn pick<T: Clone>(pool: &[T], n: usize) -> Option<T> {
    (!pool.is_empty()).then(|| pool[pool.len() - 1 - n % pool.len()].clone())
}

pub fn remember<T: PartialEq>(pool: &mut Vec<T>, value: T) {
    pool.retain(|v| *v != value);
    pool.push(value);
    if pool.len() > POOL {
        pool.remove(0);
    }
}

pub struct Harness<'a> {
    pub cluster: &'a TestCluster,
    channels: BTreeMap<NodeId, Channel>,
    pub pools: Pools,
    /// Answers per RPC and code, for the run's summary.
    pub tally: BTreeMap<(&'static str, String), u64>,
    /// Schedules created by the current case, deleted when it ends.
    pub created_schedules: Vec<String>,
    /// Set once a node stopped answering or replicas diverged: later cases (and shrinking)
    /// cannot tell anything more.
    pub broken: Option<String>,
}

/// A call bounded by [`CALL_DEADLINE`]; running out of it is DEADLINE_EXCEEDED from the
/// harness, which [`judge`] refuses like any other non-answer.
pub async fn bounded<T>(call: impl Future<Output = Result<tonic::Response<T>, Status>>) -> Result<T, Status> {
    match tokio::time::timeout(CALL_DEADLINE, call).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "harness: no answer within {CALL_DEADLINE:?}"
        ))),
    }
}

/// Whether an error answer is acceptable: the node itself answered, with a code that says
/// what was wrong. UNKNOWN and INTERNAL never are; a status the client made up from a
/// transport failure (it carries a source error), a deadline or a cancel means the node did
/// not answer; UNAVAILABLE must come from the node (its `raftsched-answered` header).
pub fn judge(status: &Status) -> Result<(), String> {
    let transport = std::error::Error::source(status).is_some();
    let answered = status.metadata().get(ANSWERED_HEADER).is_some();
    let bad = match status.code() {
        Code::Unknown | Code::Internal | Code::DataLoss | Code::Unimplemented => true,
        Code::DeadlineExceeded | Code::Cancelled => true,
        Code::Unavailable => !answered,
        _ => transport,
    };
    if bad || transport {
        Err(format!(
            "{:?} (transport error: {transport}): {}",
            status.code(),
            status.message()
        ))
    } else {
        Ok(())
    }
}

impl<'a> Harness<'a> {
    pub fn new(cluster: &'a TestCluster) -> Harness<'a> {
        let channels = cluster
            .ids()
            .into_iter()
            .map(|id| (id, cluster.channel(&cluster.addr(id))))
            .collect();
        Harness {
            cluster,
            channels,
            pools: Pools::default(),
            tally: BTreeMap::new(),
            created_schedules: Vec::new(),
            broken: None,
        }
    }

    /// Raw clients without any size limit of their own: the server's limits answer.
    pub fn scheduler(&self, node: NodeId) -> SchedulerClient<Channel> {
        SchedulerClient::new(self.channels[&node].clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    pub fn workers(&self, node: NodeId) -> WorkersClient<Channel> {
        WorkersClient::new(self.channels[&node].clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    pub async fn node_of(&self, target: Target) -> NodeId {
        let leader = self.cluster.wait_for_leader().await;
        match target {
            Target::Leader => leader,
            Target::Follower(n) => {
                let followers: Vec<NodeId> = self.cluster.ids().into_iter().filter(|id| *id != leader).collect();
                followers[n % followers.len()]
            }
        }
    }

    /// Counts the answer and judges it: `Ok(Some)` on success, `Ok(None)` on an acceptable
    /// refusal, `Err` naming the RPC, the node and the code otherwise.
    pub fn check<T>(
        &mut self,
        rpc: &'static str,
        node: NodeId,
        result: Result<T, Status>,
    ) -> Result<Option<T>, String> {
        let code = match &result {
            Ok(_) => "OK".to_string(),
            Err(status) => format!("{:?}", status.code()),
        };
        *self.tally.entry((rpc, code)).or_default() += 1;
        match result {
            Ok(value) => Ok(Some(value)),
            Err(status) => judge(&status)
                .map(|()| None)
                .map_err(|e| format!("{rpc} to node {node}: {e}")),
        }
    }

    /// Runs one case, then checks the cluster.
    pub async fn run_case(&mut self, case: &[Op]) -> Result<(), String> {
        for op in case {
            let node = self.node_of(op.target).await;
            self.send(node, &op.rpc).await?;
        }
        self.cleanup().await?;
        self.check_cluster().await
    }

    /// Deletes the schedules the case created, so the next cases do not inherit a stream of
    /// firings (a 1 s schedule adds a task per second for the rest of the run).
    async fn cleanup(&mut self) -> Result<(), String> {
        for name in std::mem::take(&mut self.created_schedules) {
            let leader = self.node_of(Target::Leader).await;
            let result = bounded(self.scheduler(leader).delete_schedule(api::DeleteScheduleRequest {
                namespace: String::new(),
                name,
            }))
            .await;
            self.check("DeleteSchedule (cleanup)", leader, result)?;
        }
        Ok(())
    }

    /// Every node answers NodeStatus; once all three report their digest at the same
    /// applied index, the digests are equal.
    pub async fn check_cluster(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let mut views = Vec::new();
            for id in self.cluster.ids() {
                let result = bounded(self.scheduler(id).node_status(api::NodeStatusRequest {})).await;
                match result {
                    Ok(response) => views.push((id, response.status.unwrap_or_default())),
                    Err(status) => {
                        let failure = format!("node {id} does not answer NodeStatus: {status:?}");
                        self.broken = Some(failure.clone());
                        return Err(failure);
                    }
                }
            }
            let index = views[0].1.digest_applied_index;
            if views.iter().all(|(_, v)| v.digest_applied_index == index) {
                if views.iter().all(|(_, v)| v.state_digest == views[0].1.state_digest) {
                    return Ok(());
                }
                let digests: Vec<String> = views
                    .iter()
                    .map(|(id, v)| format!("node {id}: {:#x}", v.state_digest))
                    .collect();
                let failure = format!("state digests differ at applied index {index}: {}", digests.join(", "));
                self.broken = Some(failure.clone());
                return Err(failure);
            }
            if started.elapsed() > CONVERGE_DEADLINE {
                let indexes: Vec<String> = views
                    .iter()
                    .map(|(id, v)| format!("node {id}: {}", v.digest_applied_index))
                    .collect();
                return Err(format!(
                    "no common applied index within {CONVERGE_DEADLINE:?}: {}",
                    indexes.join(", ")
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
