//! [`SchedulerService`]: the client API of proto/raftsched.proto.

use tonic::Request;
use tonic::Response;
use tonic::Status;
use tracing::Instrument;

use crate::app::App;
use crate::app::Consistency;
use crate::app::MemberView;
use crate::grpc::api;
use crate::grpc::api::scheduler_server::Scheduler;
use crate::grpc::authz::Access;
use crate::grpc::authz::Rpc;
use crate::grpc::authz::check;
use crate::grpc::backup_stream::SaveSnapshotStream;
use crate::grpc::backup_stream::backup_stream;
use crate::grpc::budget::ByteBudget;
use crate::grpc::budget::keep_within_budget;
use crate::grpc::budget::page_within_budget;
use crate::grpc::convert::list_request_from_proto;
use crate::grpc::convert::namespace_from_proto;
use crate::grpc::convert::policy_from_proto;
use crate::grpc::convert::policy_to_proto;
use crate::grpc::convert::qualified_from_proto;
use crate::grpc::convert::schedule_spec_from_proto;
use crate::grpc::convert::schedule_to_proto;
use crate::grpc::convert::shard_report;
use crate::grpc::convert::spec_from_proto;
use crate::grpc::convert::specs_from_proto;
use crate::grpc::convert::task_cursor_to_token;
use crate::grpc::convert::task_to_proto;
use crate::grpc::convert::workflow_from_proto;
use crate::grpc::convert::workflow_to_proto;
use crate::grpc::identity::Namespaces;
use crate::grpc::peer_status::PeerChannels;
use crate::grpc::peer_status::peer_status;
use crate::grpc::redact::answer;
use crate::grpc::status::app_error_to_status;
use crate::grpc::status::invalid;
use crate::grpc::trace_context::request_trace_parent;
use crate::grpc::trace_context::submit_span;
use crate::grpc::trace_context::submit_span_of_one;
use raftsched_core::state::StateError;
use raftsched_core::state::TaskSpec;
use raftsched_core::state::namespace;

const DEFAULT_PAGE_SIZE: usize = 100;

pub struct SchedulerService {
    app: App,
    /// Channels to the peers for ClusterStatus.
    peer_channels: PeerChannels,
}

impl SchedulerService {
    pub fn new(app: App) -> SchedulerService {
        SchedulerService {
            app,
            peer_channels: Default::default(),
        }
    }

    /// Calls peers (ClusterStatus) with the node's certificate; plaintext without one.
    pub fn with_peer_tls(mut self, tls: Option<std::sync::Arc<crate::network::NodeTls>>) -> SchedulerService {
        self.peer_channels = PeerChannels::new(tls);
        self
    }

    /// Every member's own view, asked in parallel; unreachable ones say so.
    async fn cluster_members(&self) -> Vec<api::MemberStatus> {
        let own = self.app.member_view();
        let lookups = self.app.members().into_iter().map(|(node_id, address)| {
            let own = own.clone();
            async move {
                if node_id == own.node_id {
                    member_to_proto(own)
                } else {
                    let channel = self.peer_channels.get(&address);
                    peer_status(node_id, address, channel).await
                }
            }
        });
        futures::future::join_all(lookups).await
    }

    /// A workflow response with the view's page of tasks (starting at position `from`),
    /// kept within the byte budget once pending reasons are in, and the token of the next.
    fn workflow_response(&self, view: &crate::app::WorkflowView, from: usize, created: bool) -> api::WorkflowResponse {
        let mut workflow = workflow_to_proto(view, |t| self.task_to_proto(t));
        let mut next = view.next_task;
        // Positions count every task of the workflow, and `view.tasks` skips none: each
        // task a workflow names exists (a state invariant).
        if keep_within_budget(&mut workflow.tasks) < view.tasks.len() {
            next = Some(from + workflow.tasks.len());
        }
        api::WorkflowResponse {
            workflow: Some(workflow),
            created,
            next_page_token: next.map(|position| position.to_string()).unwrap_or_default(),
        }
    }

    /// A task with the leader's reason for a pending one (followers know none).
    fn task_to_proto(&self, task: &raftsched_core::state::Task) -> api::Task {
        let reason = (task.status == raftsched_core::state::TaskStatus::Pending)
            .then(|| self.app.hub().pending_reason(task.id))
            .flatten();
        task_to_proto(task, reason)
    }
}

/// A workflow task as measured against the byte budget (without the pending reason, which
/// is filled in later).
fn workflow_task_proto(key: &str, task: &raftsched_core::state::Task) -> api::WorkflowTask {
    api::WorkflowTask {
        key: key.to_string(),
        task: Some(task_to_proto(task, None)),
    }
}

/// Where a GetWorkflow page starts: the position of its first task in the workflow.
fn workflow_page_start(page_token: &str) -> Result<usize, Status> {
    if page_token.is_empty() {
        return Ok(0);
    }
    page_token
        .parse()
        .ok()
        .filter(|from: &usize| *from < raftsched_core::state::limits::MAX_WORKFLOW_TASKS)
        .ok_or_else(|| {
            invalid(format!(
                "invalid page_token: {} is not a task position below {}; pass the \
                 next_page_token of the previous WorkflowResponse",
                raftsched_core::state::limits::shown(page_token),
                raftsched_core::state::limits::MAX_WORKFLOW_TASKS
            ))
        })
}

/// NOT_FOUND for a task the caller may not see, worded like one that does not exist: a
/// credential of another namespace learns nothing of it, not even that it exists.
fn unseen_task(task_id: u64) -> Status {
    app_error_to_status(StateError::TaskNotFound(task_id).into())
}

/// The stored name of the schedule a request names, after the caller's namespace check.
fn schedule_name(access: &Access, rpc: Rpc<'_>, namespace: &str, name: &str) -> Result<String, Status> {
    let stored = qualified_from_proto("schedule name", namespace, name)?;
    access.require_namespace(rpc.name(), namespace::namespace_of(&stored))?;
    Ok(stored)
}

fn schedule_response(view: &crate::app::ScheduleView) -> api::ScheduleResponse {
    api::ScheduleResponse {
        schedule: Some(schedule_to_proto(view)),
        created: false,
    }
}

fn consistency_from_proto(value: i32) -> Result<Consistency, Status> {
    match api::Consistency::try_from(value) {
        Ok(api::Consistency::Linearizable) => Ok(Consistency::Linearizable),
        Ok(api::Consistency::Stale) => Ok(Consistency::Stale),
        Err(_) => Err(invalid(format!("invalid consistency: unknown value {value}"))),
    }
}

fn member_to_proto(view: MemberView) -> api::MemberStatus {
    api::MemberStatus {
        node_id: view.node_id,
        address: view.address,
        role: view.role,
        term: view.term,
        leader_id: view.leader_id.unwrap_or(0),
        last_log_index: view.last_log_index,
        last_applied_index: view.last_applied_index,
        error: String::new(),
        state_digest: view.state_digest,
        digest_applied_index: view.digest_applied_index,
        rss_bytes: view.rss_bytes,
        data_dir_bytes: view.data_dir_bytes,
        alarms: view.alarms,
        quorum_losses: view.quorum_losses,
    }
}

#[tonic::async_trait]
impl Scheduler for SchedulerService {
    type SaveSnapshotStream = SaveSnapshotStream;

    async fn submit_task(
        &self,
        request: Request<api::SubmitTaskRequest>,
    ) -> Result<Response<api::SubmitTaskResponse>, Status> {
        let access = check(&request, Rpc::SubmitTask)?;
        let traced = request_trace_parent(&request);
        let spec = request
            .into_inner()
            .spec
            .ok_or_else(|| invalid("invalid spec: missing"))?;
        let mut spec = spec_from_proto(spec)?;
        access.require_namespace("SubmitTask", spec.namespace())?;
        let span = submit_span_of_one(traced, &mut spec)?;
        let mut outcomes = self
            .app
            .submit(vec![spec])
            .instrument(span.clone())
            .await
            .map_err(app_error_to_status)?;
        let outcome = outcomes
            .pop()
            .ok_or_else(|| Status::internal("submit returned no outcome"))?;
        let (task, created) = outcome.map_err(|e| app_error_to_status(e.into()))?;
        span.record("task_id", task.id);
        Ok(answer(
            access,
            api::SubmitTaskResponse {
                task: Some(self.task_to_proto(&task)),
                created,
            },
        ))
    }

    async fn submit_tasks(
        &self,
        request: Request<api::SubmitTasksRequest>,
    ) -> Result<Response<api::SubmitTasksResponse>, Status> {
        let access = check(&request, Rpc::SubmitTasks)?;
        let traced = request_trace_parent(&request);
        let mut specs: Vec<TaskSpec> = specs_from_proto(request.into_inner().specs)?;
        for spec in &specs {
            access.require_namespace("SubmitTasks", spec.namespace())?;
        }
        let span = submit_span(traced.as_deref(), &mut specs);
        let outcomes = self
            .app
            .submit(specs)
            .instrument(span)
            .await
            .map_err(app_error_to_status)?;
        let results = outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Ok((task, created)) => api::SubmitResult {
                    task_id: task.id,
                    created,
                    error: String::new(),
                },
                Err(rejected) => api::SubmitResult {
                    error: rejected.to_string(),
                    ..api::SubmitResult::default()
                },
            })
            .collect();
        Ok(Response::new(api::SubmitTasksResponse { results }))
    }

    async fn get_task(&self, request: Request<api::GetTaskRequest>) -> Result<Response<api::GetTaskResponse>, Status> {
        let access = check(&request, Rpc::GetTask)?;
        let request = request.into_inner();
        let consistency = consistency_from_proto(request.consistency)?;
        let task = self
            .app
            .get(request.task_id, consistency)
            .await
            .map_err(app_error_to_status)?;
        if !access.sees(task.spec.namespace()) {
            return Err(unseen_task(task.id));
        }
        let mut proto = self.task_to_proto(&task);
        proto.shards = self
            .app
            .shards_of(&task)
            .iter()
            .enumerate()
            .map(|(index, shard)| shard_report(index, shard))
            .collect();
        Ok(answer(access, api::GetTaskResponse { task: Some(proto) }))
    }

    async fn list_tasks(
        &self,
        request: Request<api::ListTasksRequest>,
    ) -> Result<Response<api::ListTasksResponse>, Status> {
        let access = check(&request, Rpc::ListTasks)?;
        let request = request.into_inner();
        let page_size = match request.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n as usize,
        };
        let consistency = consistency_from_proto(request.consistency)?;
        let (filter, cursor) = list_request_from_proto(request)?;
        if let Some(namespace) = &filter.namespace {
            access.require_namespace("ListTasks", namespace)?;
        }
        let mut budget = ByteBudget::new();
        let (tasks, mut next) = self
            .app
            .list(&filter, cursor, page_size, consistency, |t| {
                budget.admit(&task_to_proto(t, None))
            })
            .await
            .map_err(app_error_to_status)?;
        let mut protos: Vec<api::Task> = tasks.iter().map(|t| self.task_to_proto(t)).collect();
        // Pending reasons are filled in after measuring; should they tip the page over, it
        // ends earlier.
        if keep_within_budget(&mut protos) < tasks.len() {
            next = protos.last().map(|t| t.id);
        }
        Ok(answer(
            access,
            api::ListTasksResponse {
                tasks: protos,
                next_page_token: next
                    .map(|id| task_cursor_to_token(id, filter.order))
                    .unwrap_or_default(),
            },
        ))
    }

    async fn cancel_task(
        &self,
        request: Request<api::CancelTaskRequest>,
    ) -> Result<Response<api::CancelTaskResponse>, Status> {
        let access = check(&request, Rpc::CancelTask)?;
        let request = request.into_inner();
        // A task this node does not hold yet is the app's to answer (not found, or not the
        // leader); one it holds must be in the caller's namespaces.
        if let Some(namespace) = self.app.task_namespace(request.task_id)
            && !access.sees(&namespace)
        {
            return Err(unseen_task(request.task_id));
        }
        let reason = if request.reason.is_empty() {
            "cancelled by request".to_string()
        } else {
            request.reason
        };
        let task = self
            .app
            .cancel(request.task_id, reason)
            .await
            .map_err(app_error_to_status)?;
        Ok(answer(
            access,
            api::CancelTaskResponse {
                task: Some(self.task_to_proto(&task)),
            },
        ))
    }

    async fn cluster_status(
        &self,
        request: Request<api::ClusterStatusRequest>,
    ) -> Result<Response<api::ClusterStatusResponse>, Status> {
        check(&request, Rpc::ClusterStatus)?;
        let members = self.cluster_members().await;
        Ok(Response::new(api::ClusterStatusResponse { members }))
    }

    async fn set_queue_policy(
        &self,
        request: Request<api::SetQueuePolicyRequest>,
    ) -> Result<Response<api::SetQueuePolicyResponse>, Status> {
        let access = check(&request, Rpc::SetQueuePolicy)?;
        let policy = request
            .into_inner()
            .policy
            .ok_or_else(|| invalid("invalid policy: missing"))?;
        let (queue, policy) = policy_from_proto(policy)?;
        access.require_namespace("SetQueuePolicy", namespace::namespace_of(&queue))?;
        self.app
            .set_queue_policy(queue.clone(), policy)
            .await
            .map_err(app_error_to_status)?;
        Ok(Response::new(api::SetQueuePolicyResponse {
            policy: Some(policy_to_proto(&queue, &policy)),
        }))
    }

    async fn list_queues(
        &self,
        request: Request<api::ListQueuesRequest>,
    ) -> Result<Response<api::ListQueuesResponse>, Status> {
        let access = check(&request, Rpc::ListQueues)?;
        let request = request.into_inner();
        let in_namespace = namespace_from_proto(&request.namespace)?;
        access.require_namespace("ListQueues", &in_namespace)?;
        // The token is the last queue's bare name; queues compare by their stored names.
        let after = qualified_from_proto("page_token", &in_namespace, &request.page_token)?;
        self.app
            .ensure_consistency(Consistency::Linearizable)
            .await
            .map_err(app_error_to_status)?;
        let statuses = self
            .app
            .queues()
            .into_iter()
            .filter(|(queue, ..)| namespace::namespace_of(queue) == in_namespace && *queue > after)
            .map(|(queue, policy, pending, running)| api::QueueStatus {
                policy: Some(policy_to_proto(&queue, &policy)),
                pending,
                running,
            });
        let (queues, more) = page_within_budget(statuses);
        let next_page_token = match (more, queues.last()) {
            (true, Some(last)) => last.policy.as_ref().map(|p| p.queue.clone()).unwrap_or_default(),
            _ => String::new(),
        };
        Ok(Response::new(api::ListQueuesResponse {
            queues,
            next_page_token,
        }))
    }

    async fn transfer_leader(
        &self,
        request: Request<api::TransferLeaderRequest>,
    ) -> Result<Response<api::TransferLeaderResponse>, Status> {
        check(&request, Rpc::TransferLeader)?;
        let to = match request.into_inner().node_id {
            0 => None,
            id => Some(id),
        };
        let leader_id = self.app.transfer_leader(to).await.map_err(app_error_to_status)?;
        Ok(Response::new(api::TransferLeaderResponse { leader_id }))
    }

    async fn add_node(&self, request: Request<api::AddNodeRequest>) -> Result<Response<api::AddNodeResponse>, Status> {
        check(&request, Rpc::AddNode)?;
        let request = request.into_inner();
        self.app
            .add_node(
                request.node_id,
                request.address,
                Some(request.peer_address).filter(|peer| !peer.is_empty()),
            )
            .await
            .map_err(app_error_to_status)?;
        let members = self.cluster_members().await;
        Ok(Response::new(api::AddNodeResponse { members }))
    }

    async fn remove_node(
        &self,
        request: Request<api::RemoveNodeRequest>,
    ) -> Result<Response<api::RemoveNodeResponse>, Status> {
        check(&request, Rpc::RemoveNode)?;
        self.app
            .remove_node(request.into_inner().node_id)
            .await
            .map_err(app_error_to_status)?;
        let members = self.cluster_members().await;
        Ok(Response::new(api::RemoveNodeResponse { members }))
    }

    async fn save_snapshot(
        &self,
        request: Request<api::SaveSnapshotRequest>,
    ) -> Result<Response<SaveSnapshotStream>, Status> {
        let access = check(&request, Rpc::SaveSnapshot)?;
        if access.namespaces != Namespaces::All {
            return Err(Status::permission_denied(format!(
                "{} acts in {}, and a snapshot holds every namespace: use an admin credential of every namespace \
                 (`raftsched certs issue --role admin --name N`, without --namespaces)",
                access.caller, access.namespaces
            )));
        }
        let saved = self.app.backup().await.map_err(app_error_to_status)?;
        Ok(Response::new(backup_stream(saved)))
    }

    async fn create_schedule(
        &self,
        request: Request<api::CreateScheduleRequest>,
    ) -> Result<Response<api::ScheduleResponse>, Status> {
        let access = check(&request, Rpc::CreateSchedule)?;
        let request = request.into_inner();
        let name = schedule_name(&access, Rpc::CreateSchedule, &request.namespace, &request.name)?;
        let spec = request.spec.ok_or_else(|| invalid("invalid spec: missing"))?;
        let spec = schedule_spec_from_proto(spec, &request.namespace)?;
        let (view, created) = self
            .app
            .create_schedule(name, spec)
            .await
            .map_err(app_error_to_status)?;
        Ok(answer(
            access,
            api::ScheduleResponse {
                schedule: Some(schedule_to_proto(&view)),
                created,
            },
        ))
    }

    async fn update_schedule(
        &self,
        request: Request<api::UpdateScheduleRequest>,
    ) -> Result<Response<api::ScheduleResponse>, Status> {
        let access = check(&request, Rpc::UpdateSchedule)?;
        let request = request.into_inner();
        let name = schedule_name(&access, Rpc::UpdateSchedule, &request.namespace, &request.name)?;
        let spec = request.spec.ok_or_else(|| invalid("invalid spec: missing"))?;
        let spec = schedule_spec_from_proto(spec, &request.namespace)?;
        let view = self
            .app
            .update_schedule(name, spec)
            .await
            .map_err(app_error_to_status)?;
        Ok(answer(access, schedule_response(&view)))
    }

    async fn get_schedule(
        &self,
        request: Request<api::GetScheduleRequest>,
    ) -> Result<Response<api::ScheduleResponse>, Status> {
        let access = check(&request, Rpc::GetSchedule)?;
        let request = request.into_inner();
        let consistency = consistency_from_proto(request.consistency)?;
        let name = schedule_name(&access, Rpc::GetSchedule, &request.namespace, &request.name)?;
        let view = self
            .app
            .get_schedule(&name, consistency)
            .await
            .map_err(app_error_to_status)?;
        Ok(answer(access, schedule_response(&view)))
    }

    async fn list_schedules(
        &self,
        request: Request<api::ListSchedulesRequest>,
    ) -> Result<Response<api::ListSchedulesResponse>, Status> {
        let access = check(&request, Rpc::ListSchedules)?;
        let request = request.into_inner();
        let consistency = consistency_from_proto(request.consistency)?;
        let page_size = match request.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n as usize,
        };
        let in_namespace = namespace_from_proto(&request.namespace)?;
        access.require_namespace("ListSchedules", &in_namespace)?;
        let mut budget = ByteBudget::new();
        let (views, next) = self
            .app
            .list_schedules(&in_namespace, &request.page_token, page_size, consistency, |view| {
                budget.admit(&schedule_to_proto(view))
            })
            .await
            .map_err(app_error_to_status)?;
        Ok(answer(
            access,
            api::ListSchedulesResponse {
                schedules: views.iter().map(schedule_to_proto).collect(),
                next_page_token: next.unwrap_or_default(),
            },
        ))
    }

    async fn pause_schedule(
        &self,
        request: Request<api::PauseScheduleRequest>,
    ) -> Result<Response<api::ScheduleResponse>, Status> {
        let access = check(&request, Rpc::PauseSchedule)?;
        let request = request.into_inner();
        let name = schedule_name(&access, Rpc::PauseSchedule, &request.namespace, &request.name)?;
        let view = self.app.pause_schedule(name, true).await.map_err(app_error_to_status)?;
        Ok(answer(access, schedule_response(&view)))
    }

    async fn resume_schedule(
        &self,
        request: Request<api::ResumeScheduleRequest>,
    ) -> Result<Response<api::ScheduleResponse>, Status> {
        let access = check(&request, Rpc::ResumeSchedule)?;
        let request = request.into_inner();
        let name = schedule_name(&access, Rpc::ResumeSchedule, &request.namespace, &request.name)?;
        let view = self
            .app
            .pause_schedule(name, false)
            .await
            .map_err(app_error_to_status)?;
        Ok(answer(access, schedule_response(&view)))
    }

    async fn delete_schedule(
        &self,
        request: Request<api::DeleteScheduleRequest>,
    ) -> Result<Response<api::DeleteScheduleResponse>, Status> {
        let access = check(&request, Rpc::DeleteSchedule)?;
        let request = request.into_inner();
        let name = schedule_name(&access, Rpc::DeleteSchedule, &request.namespace, &request.name)?;
        self.app.delete_schedule(name).await.map_err(app_error_to_status)?;
        Ok(Response::new(api::DeleteScheduleResponse {}))
    }

    async fn trigger_schedule(
        &self,
        request: Request<api::TriggerScheduleRequest>,
    ) -> Result<Response<api::TriggerScheduleResponse>, Status> {
        let access = check(&request, Rpc::TriggerSchedule)?;
        let request = request.into_inner();
        let name = schedule_name(&access, Rpc::TriggerSchedule, &request.namespace, &request.name)?;
        let task = self.app.trigger_schedule(name).await.map_err(app_error_to_status)?;
        Ok(answer(
            access,
            api::TriggerScheduleResponse {
                task: Some(self.task_to_proto(&task)),
            },
        ))
    }

    async fn submit_workflow(
        &self,
        request: Request<api::SubmitWorkflowRequest>,
    ) -> Result<Response<api::WorkflowResponse>, Status> {
        let access = check(&request, Rpc::SubmitWorkflow)?;
        let traced = request_trace_parent(&request);
        let request = request.into_inner();
        access.require_namespace("SubmitWorkflow", &namespace_from_proto(&request.namespace)?)?;
        let mut workflow = workflow_from_proto(request)?;
        let span = submit_span(traced.as_deref(), workflow.tasks.iter_mut().map(|t| &mut t.spec));
        let mut budget = ByteBudget::new();
        let (view, created) = self
            .app
            .submit_workflow(workflow, |key, task| budget.admit(&workflow_task_proto(key, task)))
            .instrument(span)
            .await
            .map_err(app_error_to_status)?;
        Ok(answer(access, self.workflow_response(&view, 0, created)))
    }

    async fn get_workflow(
        &self,
        request: Request<api::GetWorkflowRequest>,
    ) -> Result<Response<api::WorkflowResponse>, Status> {
        let access = check(&request, Rpc::GetWorkflow)?;
        let request = request.into_inner();
        let consistency = consistency_from_proto(request.consistency)?;
        let from = workflow_page_start(&request.page_token)?;
        let mut budget = ByteBudget::new();
        let view = self
            .app
            .get_workflow(request.workflow_id, from, consistency, |key, task| {
                budget.admit(&workflow_task_proto(key, task))
            })
            .await
            .map_err(app_error_to_status)?;
        if !access.sees(&view.namespace) {
            return Err(app_error_to_status(
                StateError::WorkflowNotFound(request.workflow_id).into(),
            ));
        }
        Ok(answer(access, self.workflow_response(&view, from, false)))
    }

    async fn submit_broadcast(
        &self,
        request: Request<api::SubmitBroadcastRequest>,
    ) -> Result<Response<api::SubmitTaskResponse>, Status> {
        let access = check(&request, Rpc::SubmitBroadcast)?;
        let traced = request_trace_parent(&request);
        let request = request.into_inner();
        let mut spec = spec_from_proto(request.spec.ok_or_else(|| invalid("invalid spec: missing"))?)?;
        access.require_namespace("SubmitBroadcast", spec.namespace())?;
        let span = submit_span_of_one(traced, &mut spec)?;
        let (task, created) = self
            .app
            .submit_broadcast(spec, request.shards)
            .instrument(span.clone())
            .await
            .map_err(app_error_to_status)?;
        span.record("task_id", task.id);
        let mut proto = self.task_to_proto(&task);
        proto.shards = self
            .app
            .shards_of(&task)
            .iter()
            .enumerate()
            .map(|(index, shard)| shard_report(index, shard))
            .collect();
        Ok(answer(
            access,
            api::SubmitTaskResponse {
                task: Some(proto),
                created,
            },
        ))
    }

    async fn node_status(
        &self,
        request: Request<api::NodeStatusRequest>,
    ) -> Result<Response<api::NodeStatusResponse>, Status> {
        check(&request, Rpc::NodeStatus)?;
        Ok(Response::new(api::NodeStatusResponse {
            status: Some(member_to_proto(self.app.member_view())),
        }))
    }
}
