//! [`WorkersService`]: the worker protocol of proto/raftsched.proto.

use std::pin::Pin;

use futures::Stream;
use futures::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::app::App;
use crate::grpc::api;
use crate::grpc::api::workers_server::Workers;
use crate::grpc::authz::Rpc;
use crate::grpc::authz::check;
use crate::grpc::convert::namespace_from_proto;
use crate::grpc::convert::registration_from_proto;
use crate::grpc::convert::report_from_proto;
use crate::grpc::convert::resources_to_proto;
use crate::grpc::convert::status_to_proto;
use crate::grpc::convert::task_to_proto;
use crate::grpc::status::app_error_to_status;
use crate::grpc::trace_context::request_trace_parent;
use crate::hub::Instruction;
use raftsched_client::task_span;
use tracing::Instrument;

/// How often a worker heartbeats, as a fraction of its lease: several beats may be lost
/// before the lease runs out.
const HEARTBEATS_PER_LEASE: u64 = 5;
/// Heartbeats are at least this frequent whatever the lease: they are how a worker notices
/// that its leader went silent (a beat is cheap: no log entry).
const MAX_HEARTBEAT_INTERVAL_MS: u64 = 250;

pub struct WorkersService {
    app: App,
}

impl WorkersService {
    pub fn new(app: App) -> WorkersService {
        WorkersService { app }
    }
}

fn instruction_to_proto(instruction: Instruction) -> api::WorkerInstruction {
    let instruction = match instruction {
        Instruction::Assign {
            task,
            token,
            attempt,
            trace_parent,
        } => api::worker_instruction::Instruction::Assign(api::Assignment {
            task: Some(task_to_proto(&task, None)),
            token,
            attempt,
            trace_parent: trace_parent.unwrap_or_default(),
        }),
        Instruction::Cancel { task_id, token } => {
            api::worker_instruction::Instruction::Cancel(api::CancelAttempt { task_id, token })
        }
    };
    api::WorkerInstruction {
        instruction: Some(instruction),
    }
}

type InstructionStream = Pin<Box<dyn Stream<Item = Result<api::WorkerInstruction, Status>> + Send>>;

#[tonic::async_trait]
impl Workers for WorkersService {
    async fn register_worker(
        &self,
        request: Request<api::RegisterWorkerRequest>,
    ) -> Result<Response<api::RegisterWorkerResponse>, Status> {
        let access = check(
            &request,
            Rpc::RegisterWorker {
                worker_id: &request.get_ref().worker_id,
            },
        )?;
        let namespace = namespace_from_proto(&request.get_ref().namespace)?;
        access.require_namespace("RegisterWorker", &namespace)?;
        let registration = registration_from_proto(request.into_inner())?;
        let lease_ms = self
            .app
            .register_worker(registration)
            .await
            .map_err(app_error_to_status)?;
        Ok(Response::new(api::RegisterWorkerResponse {
            lease_ms,
            heartbeat_interval_ms: (lease_ms / HEARTBEATS_PER_LEASE).clamp(50, MAX_HEARTBEAT_INTERVAL_MS),
        }))
    }

    type AttachStream = InstructionStream;

    async fn attach(&self, request: Request<api::AttachRequest>) -> Result<Response<Self::AttachStream>, Status> {
        check(
            &request,
            Rpc::Attach {
                worker_id: &request.get_ref().worker_id,
            },
        )?;
        let request = request.into_inner();
        let receiver = self
            .app
            .attach(&request.worker_id, &request.session_id, &request.running_tokens)
            .map_err(app_error_to_status)?;
        let stream = ReceiverStream::new(receiver).map(|instruction| Ok(instruction_to_proto(instruction)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn heartbeat(
        &self,
        request: Request<api::HeartbeatRequest>,
    ) -> Result<Response<api::HeartbeatResponse>, Status> {
        check(
            &request,
            Rpc::Heartbeat {
                worker_id: &request.get_ref().worker_id,
            },
        )?;
        let request = request.into_inner();
        let void_tokens = self
            .app
            .heartbeat(&request.worker_id, &request.session_id, &request.running_tokens)
            .map_err(app_error_to_status)?;
        Ok(Response::new(api::HeartbeatResponse { void_tokens }))
    }

    async fn report_result(
        &self,
        request: Request<api::ReportResultRequest>,
    ) -> Result<Response<api::ReportResultResponse>, Status> {
        check(
            &request,
            Rpc::ReportResult {
                worker_id: &request.get_ref().worker_id,
            },
        )?;
        let traced = request_trace_parent(&request);
        let report = report_from_proto(request.into_inner())?;
        let span = task_span!("report", traced.as_deref(), report.task_id);
        let status = self
            .app
            .report(report)
            .instrument(span)
            .await
            .map_err(app_error_to_status)?;
        Ok(Response::new(api::ReportResultResponse {
            state: status_to_proto(status) as i32,
        }))
    }

    async fn drain_worker(
        &self,
        request: Request<api::DrainWorkerRequest>,
    ) -> Result<Response<api::DrainWorkerResponse>, Status> {
        check(
            &request,
            Rpc::DrainWorker {
                worker_id: &request.get_ref().worker_id,
            },
        )?;
        let request = request.into_inner();
        self.app
            .drain_worker(
                &request.worker_id,
                &request.session_id,
                request.holding.as_ref().map(|h| h.running_tokens.as_slice()),
            )
            .await
            .map_err(app_error_to_status)?;
        Ok(Response::new(api::DrainWorkerResponse {}))
    }

    async fn list_workers(
        &self,
        request: Request<api::ListWorkersRequest>,
    ) -> Result<Response<api::ListWorkersResponse>, Status> {
        let access = check(&request, Rpc::ListWorkers)?;
        self.app.leader_only().map_err(app_error_to_status)?;
        let request = request.into_inner();
        let in_namespace = namespace_from_proto(&request.namespace)?;
        access.require_namespace("ListWorkers", &in_namespace)?;
        let after = request.page_token;
        let statuses = self
            .app
            .workers()
            .into_iter()
            .filter(|summary| summary.worker.id > after && summary.worker.namespace() == in_namespace)
            .map(|summary| api::WorkerStatus {
                namespace: summary.worker.namespace().to_string(),
                worker_id: summary.worker.id.clone(),
                slots: summary.worker.slots,
                running: summary.running as u32,
                labels: summary.worker.labels.clone().into_iter().collect(),
                resources: Some(resources_to_proto(&summary.worker.resources)),
                draining: summary.worker.draining,
                connected: summary.connected,
                last_heartbeat_age_ms: summary.silence.map_or(0, |s| s.as_millis() as u64),
                registered_at_ms: summary.worker.registered_at_ms,
            });
        let (workers, more) = crate::grpc::budget::page_within_budget(statuses);
        let next_page_token = match (more, workers.last()) {
            (true, Some(last)) => last.worker_id.clone(),
            _ => String::new(),
        };
        Ok(Response::new(api::ListWorkersResponse {
            workers,
            next_page_token,
        }))
    }
}
