//! One generated request, sent as generated to one node; what it returns feeds the pools.

use std::time::Duration;

use raftsched_api::v1 as api;
use raftsched_core::state::limits::MAX_WORKFLOW_TASKS;
use raftsched_store::raft_types::NodeId;
use tokio::time::Instant;

use super::build;
use super::exec::Harness;
use super::exec::bounded;
use super::exec::pick;
use super::exec::remember;
use super::ops::AttemptRef;
use super::ops::Id;
use super::ops::Name;
use super::ops::Rpc;
use super::ops::WorkerRef;
use super::values::Tokens;
use super::values::copies_within_budget;

/// How long an Attach stream is held to collect assignments before hanging up: the
/// dispatcher plans every 100 ms and on a new worker at once.
const ATTACH_LISTEN: Duration = Duration::from_millis(300);
/// At most this many reports per ReportAll (each is a log entry).
const MAX_REPORTS: usize = 64;

type Sent = Result<(), String>;

impl Harness<'_> {
    pub async fn send(&mut self, node: NodeId, rpc: &Rpc) -> Sent {
        match rpc {
            Rpc::SubmitTask(_)
            | Rpc::SubmitTasks(..)
            | Rpc::GetTask(..)
            | Rpc::ListTasks { .. }
            | Rpc::CancelTask(..)
            | Rpc::SubmitBroadcast(..) => self.send_task(node, rpc).await,
            Rpc::ClusterStatus
            | Rpc::NodeStatus
            | Rpc::SetQueuePolicy(_)
            | Rpc::ListQueues(_)
            | Rpc::TransferLeader(_)
            | Rpc::AddNode(..)
            | Rpc::AddSelf(_)
            | Rpc::RemoveNode(_) => self.send_cluster(node, rpc).await,
            Rpc::CreateSchedule(..)
            | Rpc::UpdateSchedule(..)
            | Rpc::GetSchedule(..)
            | Rpc::ListSchedules { .. }
            | Rpc::PauseSchedule(_)
            | Rpc::ResumeSchedule(_)
            | Rpc::DeleteSchedule(_)
            | Rpc::TriggerSchedule(_) => self.send_schedule(node, rpc).await,
            Rpc::SubmitWorkflow(_) | Rpc::GetWorkflow(..) => self.send_workflow(node, rpc).await,
            _ => self.send_worker(node, rpc).await,
        }
    }

    fn task_id(&self, id: &Id) -> u64 {
        match id {
            Id::Known(n) => pick(&self.pools.tasks, *n).unwrap_or(1),
            Id::Lit(value) => *value,
        }
    }

    fn schedule_name(&self, name: &Name) -> String {
        match name {
            Name::Known(n) => pick(&self.pools.schedules, *n).unwrap_or_else(|| "fz-sched".into()),
            Name::Gen(text) => text.build(),
        }
    }

    fn worker(&self, worker: &WorkerRef) -> (String, String) {
        let known =
            |n: usize| pick(&self.pools.workers, n).unwrap_or_else(|| ("fz-worker".into(), "fz-session".into()));
        match worker {
            WorkerRef::Known(n) => known(*n),
            WorkerRef::KnownIdOtherSession(n, session) => (known(*n).0, session.build()),
            WorkerRef::Lit(id, session) => (id.build(), session.build()),
        }
    }

    /// Who reports: the last worker that attached (it holds what it was given), or a
    /// made-up one before any did.
    fn reporter(&self) -> (String, String) {
        self.pools
            .last_attacher
            .clone()
            .unwrap_or_else(|| ("fz-worker".into(), "fz-session".into()))
    }

    fn attempt(&self, attempt: &AttemptRef) -> (u64, u64) {
        match attempt {
            AttemptRef::Known(n) => pick(&self.pools.attempts, *n).unwrap_or((1, 1)),
            AttemptRef::KnownTaskOtherToken(n, token) => (pick(&self.pools.attempts, *n).map_or(1, |a| a.0), *token),
            AttemptRef::Lit(task, token) => (*task, *token),
        }
    }

    fn tokens(&self, tokens: &Tokens) -> Vec<u64> {
        match tokens {
            Tokens::None => vec![],
            Tokens::Known(n) => self.pools.attempts.iter().rev().take(*n).map(|a| a.1).collect(),
            Tokens::Lits(values) => values.clone(),
            Tokens::Many(n) => (0..*n as u64).map(|i| u64::MAX - i).collect(),
        }
    }

    /// Remembers a task's id and the tokens of its running attempts.
    fn learn_task(&mut self, task: Option<&api::Task>) {
        let Some(task) = task else { return };
        remember(&mut self.pools.tasks, task.id);
        for attempt in &task.attempts {
            if attempt.outcome == api::AttemptOutcome::Running as i32 {
                remember(&mut self.pools.attempts, (task.id, attempt.token));
            }
        }
    }

    async fn send_task(&mut self, node: NodeId, rpc: &Rpc) -> Sent {
        let mut client = self.scheduler(node);
        match rpc {
            Rpc::SubmitTask(spec) => {
                let request = api::SubmitTaskRequest {
                    spec: spec.as_ref().map(build::spec),
                };
                let result = bounded(client.submit_task(request)).await;
                if let Some(response) = self.check("SubmitTask", node, result)? {
                    self.learn_task(response.task.as_ref());
                }
            }
            Rpc::SubmitTasks(specs, count) => return self.submit_tasks(node, specs, *count).await,
            Rpc::GetTask(id, consistency) => {
                let request = api::GetTaskRequest {
                    task_id: self.task_id(id),
                    consistency: *consistency,
                };
                let result = bounded(client.get_task(request)).await;
                if let Some(response) = self.check("GetTask", node, result)? {
                    self.learn_task(response.task.as_ref());
                }
            }
            Rpc::ListTasks {
                state,
                queue,
                page_size,
                page_token,
                consistency,
                since_ms,
                oldest_first,
                name_contains,
                request_id,
            } => {
                let request = api::ListTasksRequest {
                    namespace: String::new(),
                    state: *state,
                    queue: queue.build(),
                    page_size: *page_size,
                    page_token: page_token.build(),
                    consistency: *consistency,
                    since_ms: *since_ms,
                    oldest_first: *oldest_first,
                    name_contains: name_contains.build(),
                    client_request_id: request_id.build(),
                };
                let result = bounded(client.list_tasks(request)).await;
                for task in self.check("ListTasks", node, result)?.map_or(vec![], |r| r.tasks) {
                    self.learn_task(Some(&task));
                }
            }
            Rpc::CancelTask(id, reason) => {
                let request = api::CancelTaskRequest {
                    task_id: self.task_id(id),
                    reason: reason.build(),
                };
                let result = bounded(client.cancel_task(request)).await;
                self.check("CancelTask", node, result)?;
            }
            Rpc::SubmitBroadcast(spec, shards) => {
                let request = api::SubmitBroadcastRequest {
                    spec: spec.as_ref().map(build::spec),
                    shards: *shards,
                };
                let result = bounded(client.submit_broadcast(request)).await;
                if let Some(response) = self.check("SubmitBroadcast", node, result)? {
                    self.learn_task(response.task.as_ref());
                }
            }
            _ => unreachable!("not a task RPC: {rpc:?}"),
        }
        Ok(())
    }

    /// The specs, the last one repeated up to `count` (within [`copies_within_budget`]).
    async fn submit_tasks(&mut self, node: NodeId, specs: &[super::ops::SpecGen], count: usize) -> Sent {
        let mut client = self.scheduler(node);
        let mut specs: Vec<api::TaskSpec> = specs.iter().map(build::spec).collect();
        if let Some(last) = specs.last().cloned() {
            let count = copies_within_budget(count, prost::Message::encoded_len(&last));
            specs.resize(specs.len().max(count), last);
        }
        let result = bounded(client.submit_tasks(api::SubmitTasksRequest { specs })).await;
        for r in self.check("SubmitTasks", node, result)?.map_or(vec![], |r| r.results) {
            if r.task_id != 0 {
                remember(&mut self.pools.tasks, r.task_id);
            }
        }
        Ok(())
    }

    async fn send_cluster(&mut self, node: NodeId, rpc: &Rpc) -> Sent {
        let mut client = self.scheduler(node);
        match rpc {
            Rpc::ClusterStatus => {
                let result = bounded(client.cluster_status(api::ClusterStatusRequest {})).await;
                self.check("ClusterStatus", node, result)?;
            }
            Rpc::NodeStatus => {
                let result = bounded(client.node_status(api::NodeStatusRequest {})).await;
                self.check("NodeStatus", node, result)?;
            }
            Rpc::SetQueuePolicy(policy) => {
                let policy = policy
                    .as_ref()
                    .map(|(queue, weight, placement, retention_ms)| api::QueuePolicy {
                        namespace: String::new(),
                        queue: queue.build(),
                        weight: *weight,
                        placement: placement.build(),
                        retention_ms: *retention_ms,
                    });
                let result = bounded(client.set_queue_policy(api::SetQueuePolicyRequest { policy })).await;
                self.check("SetQueuePolicy", node, result)?;
            }
            Rpc::ListQueues(page_token) => {
                let request = api::ListQueuesRequest {
                    namespace: String::new(),
                    page_token: page_token.build(),
                };
                let result = bounded(client.list_queues(request)).await;
                self.check("ListQueues", node, result)?;
            }
            Rpc::TransferLeader(node_id) => {
                let request = api::TransferLeaderRequest { node_id: *node_id };
                let result = bounded(client.transfer_leader(request)).await;
                self.check("TransferLeader", node, result)?;
            }
            Rpc::AddNode(node_id, address) => {
                let request = api::AddNodeRequest {
                    node_id: *node_id,
                    address: address.build(),
                    peer_address: String::new(),
                };
                let result = bounded(client.add_node(request)).await;
                self.check("AddNode", node, result)?;
            }
            Rpc::AddSelf(node_id) => {
                let request = api::AddNodeRequest {
                    node_id: *node_id,
                    address: self.cluster.addr(*node_id),
                    peer_address: self.cluster.peer_addr(*node_id),
                };
                let result = bounded(client.add_node(request)).await;
                self.check("AddNode (a member)", node, result)?;
            }
            Rpc::RemoveNode(node_id) => {
                let request = api::RemoveNodeRequest { node_id: *node_id };
                let result = bounded(client.remove_node(request)).await;
                self.check("RemoveNode", node, result)?;
            }
            _ => unreachable!("not a cluster RPC: {rpc:?}"),
        }
        Ok(())
    }

    async fn send_schedule(&mut self, node: NodeId, rpc: &Rpc) -> Sent {
        let mut client = self.scheduler(node);
        match rpc {
            Rpc::CreateSchedule(name, spec) => {
                let name = self.schedule_name(name);
                let request = api::CreateScheduleRequest {
                    namespace: String::new(),
                    name: name.clone(),
                    spec: spec.as_ref().map(build::schedule),
                };
                let result = bounded(client.create_schedule(request)).await;
                if let Some(response) = self.check("CreateSchedule", node, result)? {
                    remember(&mut self.pools.schedules, name.clone());
                    if response.created {
                        self.created_schedules.push(name);
                    }
                }
            }
            Rpc::UpdateSchedule(name, spec) => {
                let request = api::UpdateScheduleRequest {
                    namespace: String::new(),
                    name: self.schedule_name(name),
                    spec: spec.as_ref().map(build::schedule),
                };
                let result = bounded(client.update_schedule(request)).await;
                self.check("UpdateSchedule", node, result)?;
            }
            Rpc::GetSchedule(name, consistency) => {
                let request = api::GetScheduleRequest {
                    namespace: String::new(),
                    name: self.schedule_name(name),
                    consistency: *consistency,
                };
                let result = bounded(client.get_schedule(request)).await;
                self.check("GetSchedule", node, result)?;
            }
            Rpc::ListSchedules {
                page_size,
                page_token,
                consistency,
            } => {
                let request = api::ListSchedulesRequest {
                    namespace: String::new(),
                    page_size: *page_size,
                    page_token: page_token.build(),
                    consistency: *consistency,
                };
                let result = bounded(client.list_schedules(request)).await;
                self.check("ListSchedules", node, result)?;
            }
            _ => return self.send_schedule_action(node, rpc).await,
        }
        Ok(())
    }

    /// Pause, resume, delete and trigger: a name and nothing else.
    async fn send_schedule_action(&mut self, node: NodeId, rpc: &Rpc) -> Sent {
        let mut client = self.scheduler(node);
        match rpc {
            Rpc::PauseSchedule(name) => {
                let name = self.schedule_name(name);
                let result = bounded(client.pause_schedule(api::PauseScheduleRequest {
                    namespace: String::new(),
                    name,
                }))
                .await;
                self.check("PauseSchedule", node, result)?;
            }
            Rpc::ResumeSchedule(name) => {
                let name = self.schedule_name(name);
                let result = bounded(client.resume_schedule(api::ResumeScheduleRequest {
                    namespace: String::new(),
                    name,
                }))
                .await;
                self.check("ResumeSchedule", node, result)?;
            }
            Rpc::DeleteSchedule(name) => {
                let name = self.schedule_name(name);
                let result = bounded(client.delete_schedule(api::DeleteScheduleRequest {
                    namespace: String::new(),
                    name,
                }))
                .await;
                self.check("DeleteSchedule", node, result)?;
            }
            Rpc::TriggerSchedule(name) => {
                let name = self.schedule_name(name);
                let result = bounded(client.trigger_schedule(api::TriggerScheduleRequest {
                    namespace: String::new(),
                    name,
                }))
                .await;
                if let Some(response) = self.check("TriggerSchedule", node, result)? {
                    self.learn_task(response.task.as_ref());
                }
            }
            _ => unreachable!("not a schedule RPC: {rpc:?}"),
        }
        Ok(())
    }

    async fn send_workflow(&mut self, node: NodeId, rpc: &Rpc) -> Sent {
        let mut client = self.scheduler(node);
        let (rpc_name, result) = match rpc {
            Rpc::SubmitWorkflow(workflow) => {
                let request = build::workflow(workflow);
                // Counted apart in the summary: the deepest chain is what recursion breaks on.
                let name = if request.tasks.len() == MAX_WORKFLOW_TASKS {
                    "SubmitWorkflow (1000 tasks)"
                } else {
                    "SubmitWorkflow"
                };
                (name, bounded(client.submit_workflow(request)).await)
            }
            Rpc::GetWorkflow(id, consistency, page_token) => {
                let workflow_id = match id {
                    Id::Known(n) => pick(&self.pools.workflows, *n).unwrap_or(1),
                    Id::Lit(value) => *value,
                };
                let request = api::GetWorkflowRequest {
                    workflow_id,
                    consistency: *consistency,
                    page_token: page_token.build(),
                };
                ("GetWorkflow", bounded(client.get_workflow(request)).await)
            }
            _ => unreachable!("not a workflow RPC: {rpc:?}"),
        };
        if let Some(workflow) = self.check(rpc_name, node, result)?.and_then(|r| r.workflow) {
            remember(&mut self.pools.workflows, workflow.id);
            for task in &workflow.tasks {
                self.learn_task(task.task.as_ref());
            }
        }
        Ok(())
    }

    async fn send_worker(&mut self, node: NodeId, rpc: &Rpc) -> Sent {
        let mut client = self.workers(node);
        match rpc {
            Rpc::RegisterWorker(registration) => {
                let request = build::register(registration);
                let identity = (request.worker_id.clone(), request.session_id.clone());
                let result = bounded(client.register_worker(request)).await;
                if self.check("RegisterWorker", node, result)?.is_some() {
                    remember(&mut self.pools.workers, identity);
                }
            }
            Rpc::Attach(worker, tokens) => return self.attach(node, worker, tokens).await,
            Rpc::Heartbeat(worker, tokens) => {
                let (worker_id, session_id) = self.worker(worker);
                let request = api::HeartbeatRequest {
                    worker_id,
                    session_id,
                    running_tokens: self.tokens(tokens),
                };
                let result = bounded(client.heartbeat(request)).await;
                self.check("Heartbeat", node, result)?;
            }
            Rpc::ReportResult(attempt, report) => {
                let (task_id, token) = self.attempt(attempt);
                let request = build::report(report, task_id, token, self.reporter());
                let result = bounded(client.report_result(request)).await;
                self.check("ReportResult", node, result)?;
            }
            Rpc::ReportAll(report) => {
                let mut assigned = self.pools.last_assigned.clone();
                assigned.sort_unstable_by(|a, b| b.cmp(a));
                for (task_id, token) in assigned.into_iter().take(MAX_REPORTS) {
                    let request = build::report(report, task_id, token, self.reporter());
                    let result = bounded(client.report_result(request)).await;
                    self.check("ReportResult (assigned)", node, result)?;
                }
            }
            Rpc::DrainWorker(worker) => {
                let (worker_id, session_id) = self.worker(worker);
                let request = api::DrainWorkerRequest {
                    worker_id,
                    session_id,
                    holding: None,
                };
                let result = bounded(client.drain_worker(request)).await;
                self.check("DrainWorker", node, result)?;
            }
            Rpc::ListWorkers(page_token) => {
                let request = api::ListWorkersRequest {
                    namespace: String::new(),
                    page_token: page_token.build(),
                };
                let result = bounded(client.list_workers(request)).await;
                self.check("ListWorkers", node, result)?;
            }
            _ => unreachable!("not a worker RPC: {rpc:?}"),
        }
        Ok(())
    }

    /// Opens an Attach stream, keeps the assignments it brings for [`ATTACH_LISTEN`], and
    /// hangs up (the attempts then run out their lease, as with a crashed worker).
    async fn attach(&mut self, node: NodeId, worker: &WorkerRef, tokens: &Tokens) -> Sent {
        let (worker_id, session_id) = self.worker(worker);
        self.pools.last_attacher = Some((worker_id.clone(), session_id.clone()));
        let request = api::AttachRequest {
            worker_id,
            session_id,
            running_tokens: self.tokens(tokens),
        };
        let result = bounded(self.workers(node).attach(request)).await;
        let Some(mut stream) = self.check("Attach", node, result)? else {
            return Ok(());
        };
        let until = Instant::now() + ATTACH_LISTEN;
        let mut assigned = Vec::new();
        while let Ok(message) = tokio::time::timeout_at(until, stream.message()).await {
            let instruction = match self.check("Attach (stream)", node, message)? {
                Some(Some(instruction)) => instruction,
                _ => break,
            };
            if let Some(api::worker_instruction::Instruction::Assign(assignment)) = instruction.instruction {
                let task_id = assignment.task.map_or(0, |t| t.id);
                assigned.push((task_id, assignment.token));
                remember(&mut self.pools.attempts, (task_id, assignment.token));
            }
        }
        let count = assigned.len() as u64;
        *self
            .tally
            .entry(("Attach (assignments received)", "n".into()))
            .or_default() += count;
        self.pools.last_assigned = assigned;
        Ok(())
    }
}
