//! Conversions between protobuf messages and domain types. Defaults for zero-valued proto
//! fields are filled in here, so the domain never sees an "unset" value.

use tonic::Status;

use crate::app::ScheduleView;
use crate::app::WorkflowView;
use crate::grpc::api;
use crate::grpc::status::invalid;
use crate::grpc::status::rejected;
use raftsched_core::scheduling::Placement;
use raftsched_core::scheduling::QueuePolicy;
use raftsched_core::state::Attempt;
use raftsched_core::state::AttemptOutcome;
use raftsched_core::state::AttemptReport;
use raftsched_core::state::ListFilter;
use raftsched_core::state::ListOrder;
use raftsched_core::state::MisfirePolicy;
use raftsched_core::state::OverlapPolicy;
use raftsched_core::state::Payload;
use raftsched_core::state::Recurrence;
use raftsched_core::state::Resources;
use raftsched_core::state::RunOutcome;
use raftsched_core::state::ScheduleSpec;
use raftsched_core::state::Task;
use raftsched_core::state::TaskId;
use raftsched_core::state::TaskOrigin;
use raftsched_core::state::TaskSpec;
use raftsched_core::state::TaskStatus;
use raftsched_core::state::WorkerRegistration;
use raftsched_core::state::WorkflowSpec;
use raftsched_core::state::WorkflowStatus;
use raftsched_core::state::WorkflowTaskSpec;
use raftsched_core::state::limits;
use raftsched_core::state::namespace;

/// The number of entries of a repeated field or map, checked before anything is built from
/// it (the message itself is bounded by the 4 MiB message limit, the domain copy is not).
fn check_count(field: &str, count: usize, max: usize) -> Result<(), Status> {
    limits::validate_count(field, count, max).map_err(rejected)
}

/// The namespace a request names (empty: the default), checked.
pub fn namespace_from_proto(namespace: &str) -> Result<String, Status> {
    namespace::named_or_default(namespace)
        .map(str::to_string)
        .map_err(rejected)
}

/// The stored name of a queue or schedule a request names bare in `namespace`.
pub fn qualified_from_proto(field: &'static str, namespace: &str, bare: &str) -> Result<String, Status> {
    namespace::qualify_bare(field, namespace, bare).map_err(rejected)
}

pub fn spec_from_proto(spec: api::TaskSpec) -> Result<TaskSpec, Status> {
    check_count("labels", spec.labels.len(), limits::MAX_LABELS)?;
    check_count("constraints", spec.constraints.len(), limits::MAX_LABELS)?;
    if let Some(api::task_spec::Payload::Command(command)) = &spec.payload {
        check_count("env", command.env.len(), limits::MAX_ENV_VARS)?;
    }
    let payload = match spec.payload {
        Some(api::task_spec::Payload::Command(command)) => Payload::Command {
            command_line: command.command_line,
            env: command.env.into_iter().collect(),
        },
        Some(api::task_spec::Payload::Opaque(opaque)) => Payload::Opaque {
            kind: opaque.kind,
            data: opaque.data,
        },
        None => return Err(invalid("invalid payload: set either command or opaque")),
    };
    let queue = non_empty(spec.queue).unwrap_or_else(|| limits::DEFAULT_QUEUE.to_string());
    Ok(TaskSpec {
        name: spec.name,
        queue: qualified_from_proto("queue", &spec.namespace, &queue)?,
        priority: spec.priority,
        payload,
        labels: spec.labels.into_iter().collect(),
        max_attempts: if spec.max_attempts == 0 {
            limits::DEFAULT_MAX_ATTEMPTS
        } else {
            spec.max_attempts
        },
        attempt_timeout_ms: if spec.attempt_timeout_ms == 0 {
            limits::DEFAULT_ATTEMPT_TIMEOUT_MS
        } else {
            spec.attempt_timeout_ms
        },
        client_request_id: non_empty(spec.client_request_id),
        constraints: spec.constraints.into_iter().collect(),
        resources: resources_from_proto(spec.resources),
        affinity_key: non_empty(spec.affinity_key),
        retry_backoff_ms: if spec.retry_backoff_ms == 0 {
            limits::DEFAULT_RETRY_BACKOFF_MS
        } else {
            spec.retry_backoff_ms
        },
        not_before_ms: spec.run_at_ms,
        delay_ms: spec.delay_ms,
        trace_parent: non_empty(spec.trace_parent),
    })
}

pub fn resources_from_proto(resources: Option<api::Resources>) -> Resources {
    let resources = resources.unwrap_or_default();
    Resources {
        cpu_millis: resources.cpu_millis,
        memory_mb: resources.memory_mb,
    }
}

pub fn resources_to_proto(resources: &Resources) -> api::Resources {
    api::Resources {
        cpu_millis: resources.cpu_millis,
        memory_mb: resources.memory_mb,
    }
}

fn non_empty(text: String) -> Option<String> {
    if text.is_empty() { None } else { Some(text) }
}

pub fn spec_to_proto(spec: &TaskSpec) -> api::TaskSpec {
    let payload = match &spec.payload {
        Payload::Command { command_line, env } => api::task_spec::Payload::Command(api::CommandPayload {
            command_line: command_line.clone(),
            env: env.clone().into_iter().collect(),
        }),
        Payload::Opaque { kind, data } => api::task_spec::Payload::Opaque(api::OpaquePayload {
            kind: kind.clone(),
            data: data.clone(),
        }),
    };
    let (namespace, queue) = namespace::split(&spec.queue);
    api::TaskSpec {
        namespace: namespace.to_string(),
        name: spec.name.clone(),
        queue: queue.to_string(),
        priority: spec.priority,
        payload: Some(payload),
        labels: spec.labels.clone().into_iter().collect(),
        max_attempts: spec.max_attempts,
        attempt_timeout_ms: spec.attempt_timeout_ms,
        client_request_id: spec.client_request_id.clone().unwrap_or_default(),
        constraints: spec.constraints.clone().into_iter().collect(),
        resources: Some(resources_to_proto(&spec.resources)),
        affinity_key: spec.affinity_key.clone().unwrap_or_default(),
        retry_backoff_ms: spec.retry_backoff_ms,
        run_at_ms: spec.not_before_ms,
        delay_ms: spec.delay_ms,
        trace_parent: spec.trace_parent.clone().unwrap_or_default(),
    }
}

/// A task for the API; `pending_reason` is what the leader's dispatcher knows (not state).
pub fn task_to_proto(task: &Task, pending_reason: Option<String>) -> api::Task {
    api::Task {
        id: task.id,
        spec: Some(spec_to_proto(&task.spec)),
        state: status_to_proto(task.status) as i32,
        created_at_ms: task.created_at_ms,
        updated_at_ms: task.updated_at_ms,
        reason: task.reason.clone().unwrap_or_default(),
        attempts: task.attempts.iter().map(attempt_to_proto).collect(),
        ready_at_ms: task.ready_at_ms,
        pending_reason: pending_reason.unwrap_or_default(),
        origin: task.links.origin.as_ref().map(TaskOrigin::key).unwrap_or_default(),
        parent_task_id: match &task.links.origin {
            Some(TaskOrigin::Shard { parent, .. }) => *parent,
            _ => 0,
        },
        shard_index: match &task.links.origin {
            Some(TaskOrigin::Shard { index, .. }) => *index,
            _ => 0,
        },
        shard_total: match &task.links.origin {
            Some(TaskOrigin::Shard { total, .. }) => *total,
            _ => 0,
        },
        depends_on: task.links.parents.clone(),
        dependents: task.links.children.clone(),
        workflow_id: match &task.links.origin {
            Some(TaskOrigin::Workflow { workflow_id, .. }) => *workflow_id,
            _ => 0,
        },
        shards: Vec::new(),
    }
}

/// One shard of a broadcast or sharded parent, for the parent's report.
pub fn shard_report(index: usize, shard: &Task) -> api::ShardReport {
    let last = shard.attempts.last();
    api::ShardReport {
        index: index as u32,
        task_id: shard.id,
        state: status_to_proto(shard.status) as i32,
        worker_id: last.map(|a| a.worker_id.clone()).unwrap_or_default(),
        exit_code: last.and_then(|a| a.exit_code).unwrap_or(0),
        has_exit_code: last.is_some_and(|a| a.exit_code.is_some()),
        reason: shard.reason.clone().unwrap_or_default(),
    }
}

/// A schedule's definition in the namespace its request names: a template naming no
/// namespace is in the schedule's (one naming another is refused by the state's checks).
pub fn schedule_spec_from_proto(spec: api::ScheduleSpec, namespace: &str) -> Result<ScheduleSpec, Status> {
    let recurrence = match spec.recurrence {
        Some(api::schedule_spec::Recurrence::Cron(cron)) => Recurrence::Cron {
            expression: cron.expression,
            time_zone: non_empty(cron.time_zone).unwrap_or_else(|| "UTC".to_string()),
        },
        Some(api::schedule_spec::Recurrence::EveryMs(interval_ms)) => Recurrence::Every { interval_ms },
        None => return Err(invalid("invalid recurrence: set either cron or every_ms")),
    };
    let mut template = spec
        .template
        .ok_or_else(|| invalid("invalid template: a schedule needs the task it runs"))?;
    if template.namespace.is_empty() {
        template.namespace = namespace.to_string();
    }
    let misfire = match spec.misfire.as_str() {
        "" | "fire-once" => MisfirePolicy::FireOnce,
        "skip" => MisfirePolicy::Skip,
        "catch-up" => MisfirePolicy::CatchUp {
            window_ms: if spec.catch_up_window_ms == 0 {
                DEFAULT_CATCH_UP_WINDOW_MS
            } else {
                spec.catch_up_window_ms
            },
        },
        other => {
            return Err(invalid(format!(
                "invalid misfire policy {}: use skip, fire-once or catch-up",
                limits::shown(other)
            )));
        }
    };
    let overlap = match spec.overlap.as_str() {
        "" => OverlapPolicy::Allow,
        other => OverlapPolicy::parse(other).ok_or_else(|| {
            invalid(format!(
                "invalid overlap policy {}: use allow, forbid or replace",
                limits::shown(other)
            ))
        })?,
    };
    Ok(ScheduleSpec {
        recurrence,
        template: spec_from_proto(template)?,
        start_ms: spec.start_ms,
        end_ms: spec.end_ms,
        misfire,
        overlap,
    })
}

/// Catch-up without a window: one hour.
pub const DEFAULT_CATCH_UP_WINDOW_MS: u64 = 3600 * 1000;

pub fn schedule_spec_to_proto(spec: &ScheduleSpec) -> api::ScheduleSpec {
    let recurrence = match &spec.recurrence {
        Recurrence::Cron { expression, time_zone } => api::schedule_spec::Recurrence::Cron(api::CronRecurrence {
            expression: expression.clone(),
            time_zone: time_zone.clone(),
        }),
        Recurrence::Every { interval_ms } => api::schedule_spec::Recurrence::EveryMs(*interval_ms),
    };
    let (misfire, catch_up_window_ms) = match spec.misfire {
        MisfirePolicy::Skip => ("skip", 0),
        MisfirePolicy::FireOnce => ("fire-once", 0),
        MisfirePolicy::CatchUp { window_ms } => ("catch-up", window_ms),
    };
    api::ScheduleSpec {
        recurrence: Some(recurrence),
        template: Some(spec_to_proto(&spec.template)),
        start_ms: spec.start_ms,
        end_ms: spec.end_ms,
        misfire: misfire.to_string(),
        catch_up_window_ms,
        overlap: spec.overlap.as_str().to_string(),
    }
}

pub fn schedule_to_proto(view: &ScheduleView) -> api::Schedule {
    let schedule = &view.schedule;
    let runs = schedule
        .runs
        .iter()
        .zip(view.run_task_status.iter().chain(std::iter::repeat(&None)))
        .map(|(run, task_status)| {
            let mut out = api::ScheduleRun {
                scheduled_ms: run.scheduled_ms,
                decided_at_ms: run.decided_at_ms,
                task_state: task_status.map_or(api::TaskState::Unspecified, status_to_proto) as i32,
                ..api::ScheduleRun::default()
            };
            match &run.outcome {
                RunOutcome::Fired { task_id, replaced } => {
                    out.outcome = "fired".into();
                    out.task_id = *task_id;
                    out.replaced_task_id = replaced.unwrap_or(0);
                }
                RunOutcome::Triggered { task_id } => {
                    out.outcome = "triggered".into();
                    out.task_id = *task_id;
                }
                RunOutcome::Skipped {
                    first_ms,
                    count,
                    reason,
                } => {
                    out.outcome = "skipped".into();
                    out.first_skipped_ms = *first_ms;
                    out.skipped_count = *count;
                    out.reason = reason.clone();
                }
            }
            out
        })
        .collect();
    let (namespace, name) = namespace::split(&schedule.name);
    api::Schedule {
        namespace: namespace.to_string(),
        name: name.to_string(),
        spec: Some(schedule_spec_to_proto(&schedule.spec)),
        paused: schedule.paused,
        created_at_ms: schedule.created_at_ms,
        updated_at_ms: schedule.updated_at_ms,
        revision: schedule.revision,
        cursor_ms: schedule.cursor_ms,
        next_fire_ms: view.next_fire_ms.clone(),
        runs,
        fired_count: schedule.fired_count,
        skipped_count: schedule.skipped_count,
    }
}

/// The specs of a SubmitTasks request, counted before any is converted.
pub fn specs_from_proto(specs: Vec<api::TaskSpec>) -> Result<Vec<TaskSpec>, Status> {
    limits::validate_batch_len(specs.len()).map_err(rejected)?;
    specs.into_iter().map(spec_from_proto).collect()
}

pub fn workflow_from_proto(request: api::SubmitWorkflowRequest) -> Result<WorkflowSpec, Status> {
    check_count("workflow tasks", request.tasks.len(), limits::MAX_WORKFLOW_TASKS)?;
    let edges = request
        .tasks
        .iter()
        .fold(0usize, |sum, t| sum.saturating_add(t.after.len()));
    check_count("workflow edges (after)", edges, limits::MAX_WORKFLOW_EDGES)?;
    let workflow_namespace = namespace_from_proto(&request.namespace)?;
    let tasks = request
        .tasks
        .into_iter()
        .map(|task| {
            let mut spec = task.spec.ok_or_else(|| {
                invalid(format!(
                    "invalid workflow: task {} has no spec",
                    limits::shown(&task.key)
                ))
            })?;
            // Each task is in the workflow's namespace: one naming another would put work
            // where the caller's namespace check did not look.
            if spec.namespace.is_empty() {
                spec.namespace = workflow_namespace.clone();
            } else if namespace_from_proto(&spec.namespace)? != workflow_namespace {
                return Err(invalid(format!(
                    "invalid workflow: task {} names namespace {}, the workflow {}; leave the task's namespace \
                     empty",
                    limits::shown(&task.key),
                    limits::shown(&spec.namespace),
                    limits::shown(&workflow_namespace)
                )));
            }
            Ok(WorkflowTaskSpec {
                spec: spec_from_proto(spec)
                    .map_err(|e| invalid(format!("workflow task {}: {}", limits::shown(&task.key), e.message())))?,
                key: task.key,
                after: task.after,
            })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    Ok(WorkflowSpec {
        name: request.name,
        request_id: non_empty(request.request_id),
        tasks,
    })
}

pub fn workflow_to_proto(view: &WorkflowView, task_to_proto: impl Fn(&Task) -> api::Task) -> api::Workflow {
    let state = match view.status {
        WorkflowStatus::Pending => api::WorkflowState::Pending,
        WorkflowStatus::Running => api::WorkflowState::Running,
        WorkflowStatus::Succeeded => api::WorkflowState::Succeeded,
        WorkflowStatus::Failed => api::WorkflowState::Failed,
    };
    api::Workflow {
        id: view.workflow.id,
        namespace: view.namespace.clone(),
        name: view.workflow.name.clone(),
        state: state as i32,
        created_at_ms: view.workflow.created_at_ms,
        task_count: view.workflow.tasks.len() as u32,
        tasks: view
            .tasks
            .iter()
            .map(|(key, task)| api::WorkflowTask {
                key: key.clone(),
                task: Some(task_to_proto(task)),
            })
            .collect(),
    }
}

fn attempt_to_proto(attempt: &Attempt) -> api::Attempt {
    api::Attempt {
        number: attempt.number,
        token: attempt.token,
        worker_id: attempt.worker_id.clone(),
        started_at_ms: attempt.started_at_ms,
        ended_at_ms: attempt.ended_at_ms.unwrap_or(0),
        outcome: outcome_to_proto(attempt.outcome) as i32,
        exit_code: attempt.exit_code.unwrap_or(0),
        has_exit_code: attempt.exit_code.is_some(),
        error: attempt.error.clone().unwrap_or_default(),
        stdout_tail: attempt.stdout_tail.clone(),
        stderr_tail: attempt.stderr_tail.clone(),
    }
}

pub fn outcome_to_proto(outcome: AttemptOutcome) -> api::AttemptOutcome {
    match outcome {
        AttemptOutcome::Running => api::AttemptOutcome::Running,
        AttemptOutcome::Succeeded => api::AttemptOutcome::Succeeded,
        AttemptOutcome::Failed => api::AttemptOutcome::Failed,
        AttemptOutcome::TimedOut => api::AttemptOutcome::TimedOut,
        AttemptOutcome::LeaseExpired => api::AttemptOutcome::LeaseExpired,
        AttemptOutcome::Cancelled => api::AttemptOutcome::Cancelled,
        AttemptOutcome::HandedBack => api::AttemptOutcome::HandedBack,
        AttemptOutcome::WorkerRestarted => api::AttemptOutcome::WorkerRestarted,
    }
}

/// The outcomes a worker may report.
pub fn reported_outcome_from_proto(outcome: i32) -> Result<AttemptOutcome, Status> {
    match api::AttemptOutcome::try_from(outcome) {
        Ok(api::AttemptOutcome::Succeeded) => Ok(AttemptOutcome::Succeeded),
        Ok(api::AttemptOutcome::Failed) => Ok(AttemptOutcome::Failed),
        Ok(api::AttemptOutcome::TimedOut) => Ok(AttemptOutcome::TimedOut),
        Ok(api::AttemptOutcome::Cancelled) => Ok(AttemptOutcome::Cancelled),
        Ok(api::AttemptOutcome::HandedBack) => Ok(AttemptOutcome::HandedBack),
        _ => Err(invalid(format!(
            "invalid outcome {outcome}: report succeeded, failed, timed-out, cancelled or handed-back"
        ))),
    }
}

pub fn report_from_proto(report: api::ReportResultRequest) -> Result<AttemptReport, Status> {
    let outcome = reported_outcome_from_proto(report.outcome)?;
    Ok(AttemptReport {
        task_id: report.task_id,
        token: report.token,
        outcome,
        exit_code: report.has_exit_code.then_some(report.exit_code),
        error: non_empty(report.error),
        retryable: !report.non_retryable,
        stdout_tail: report.stdout_tail,
        stderr_tail: report.stderr_tail,
        worker_id: report.worker_id,
        session: report.session_id,
    })
}

/// A registration; the worker's namespace becomes its [`namespace::NAMESPACE_LABEL`] (none
/// for the default), which it may not set itself.
pub fn registration_from_proto(request: api::RegisterWorkerRequest) -> Result<WorkerRegistration, Status> {
    check_count("labels", request.labels.len(), limits::MAX_LABELS)?;
    if request.labels.contains_key(namespace::NAMESPACE_LABEL) {
        return Err(invalid(format!(
            "invalid labels: {} is set from the worker's namespace; use --namespace",
            namespace::NAMESPACE_LABEL
        )));
    }
    let worker_namespace = namespace_from_proto(&request.namespace)?;
    let mut labels: std::collections::BTreeMap<String, String> = request.labels.into_iter().collect();
    if worker_namespace != namespace::DEFAULT_NAMESPACE {
        labels.insert(namespace::NAMESPACE_LABEL.to_string(), worker_namespace);
    }
    Ok(WorkerRegistration {
        id: request.worker_id,
        session: request.session_id,
        slots: request.slots,
        labels,
        resources: resources_from_proto(request.resources),
        lease_ms: if request.lease_ms == 0 {
            limits::DEFAULT_LEASE_MS
        } else {
            request.lease_ms
        },
    })
}

pub fn policy_to_proto(queue: &str, policy: &QueuePolicy) -> api::QueuePolicy {
    let (namespace, queue) = namespace::split(queue);
    api::QueuePolicy {
        namespace: namespace.to_string(),
        queue: queue.to_string(),
        weight: policy.weight,
        placement: policy.placement.as_str().to_string(),
        retention_ms: policy.retention_ms.unwrap_or(0),
    }
}

pub fn policy_from_proto(policy: api::QueuePolicy) -> Result<(String, QueuePolicy), Status> {
    let placement = if policy.placement.is_empty() {
        Placement::default()
    } else {
        Placement::parse(&policy.placement).ok_or_else(|| {
            let known: Vec<&str> = Placement::ALL.iter().map(|p| p.as_str()).collect();
            invalid(format!(
                "invalid placement {}: use one of {}",
                limits::shown(&policy.placement),
                known.join(", ")
            ))
        })?
    };
    // The proto gives weight no default (1..1000): 0 is passed on, and refused by the
    // policy's validation, instead of being silently stored as 1.
    let weight = policy.weight;
    // 0 is the cluster default; any other value is checked against the limits by the
    // policy's validation (leader and apply), which names the limits in human units.
    let retention_ms = (policy.retention_ms != 0).then_some(policy.retention_ms);
    Ok((
        qualified_from_proto("queue", &policy.namespace, &policy.queue)?,
        QueuePolicy {
            weight,
            placement,
            retention_ms,
        },
    ))
}

pub fn status_to_proto(status: TaskStatus) -> api::TaskState {
    match status {
        TaskStatus::Pending => api::TaskState::Pending,
        TaskStatus::Running => api::TaskState::Running,
        TaskStatus::Succeeded => api::TaskState::Succeeded,
        TaskStatus::Failed => api::TaskState::Failed,
        TaskStatus::Cancelled => api::TaskState::Cancelled,
        TaskStatus::Waiting => api::TaskState::Waiting,
        TaskStatus::Skipped => api::TaskState::Skipped,
    }
}

/// None for "unspecified" (no filter).
pub fn status_from_proto(state: i32) -> Result<Option<TaskStatus>, Status> {
    match api::TaskState::try_from(state) {
        Ok(api::TaskState::Unspecified) => Ok(None),
        Ok(api::TaskState::Pending) => Ok(Some(TaskStatus::Pending)),
        Ok(api::TaskState::Running) => Ok(Some(TaskStatus::Running)),
        Ok(api::TaskState::Succeeded) => Ok(Some(TaskStatus::Succeeded)),
        Ok(api::TaskState::Failed) => Ok(Some(TaskStatus::Failed)),
        Ok(api::TaskState::Cancelled) => Ok(Some(TaskStatus::Cancelled)),
        Ok(api::TaskState::Waiting) => Ok(Some(TaskStatus::Waiting)),
        Ok(api::TaskState::Skipped) => Ok(Some(TaskStatus::Skipped)),
        Err(_) => Err(invalid(format!("invalid state filter: unknown value {state}"))),
    }
}

/// The filter and order of a task listing, and the cursor its page token carries (0 for
/// the first page).
pub fn list_request_from_proto(request: api::ListTasksRequest) -> Result<(ListFilter, TaskId), Status> {
    let order = if request.oldest_first {
        ListOrder::OldestFirst
    } else {
        ListOrder::NewestFirst
    };
    let list_namespace = namespace_from_proto(&request.namespace)?;
    let queue = match non_empty(request.queue) {
        Some(queue) => Some(qualified_from_proto("queue", &list_namespace, &queue)?),
        None => None,
    };
    let filter = ListFilter {
        namespace: Some(list_namespace),
        status: status_from_proto(request.state)?,
        queue,
        since_ms: request.since_ms,
        order,
        name_contains: non_empty(request.name_contains),
        request_id: non_empty(request.client_request_id),
    };
    limits::validate_list_filter(&filter).map_err(rejected)?;
    let cursor = task_cursor_from_token(&request.page_token, order)?;
    Ok((filter, cursor))
}

/// The letter a task page token starts with: the order it continues, so that a token from
/// one order is refused by a listing in the other (the cursor means "below" in one and
/// "above" in the other, and a swapped token would silently skip or repeat tasks).
fn order_mark(order: ListOrder) -> char {
    match order {
        ListOrder::NewestFirst => 'n',
        ListOrder::OldestFirst => 'o',
    }
}

/// The page token that continues a task listing in `order` past `cursor`.
pub fn task_cursor_to_token(cursor: TaskId, order: ListOrder) -> String {
    format!("{}{cursor}", order_mark(order))
}

/// The cursor in a task page token (0 for the empty token of a first page).
pub fn task_cursor_from_token(token: &str, order: ListOrder) -> Result<TaskId, Status> {
    if token.is_empty() {
        return Ok(0);
    }
    let mark = order_mark(order);
    let other = order_mark(match order {
        ListOrder::NewestFirst => ListOrder::OldestFirst,
        ListOrder::OldestFirst => ListOrder::NewestFirst,
    });
    let cursor = |digits: &str| digits.parse::<TaskId>().ok().filter(|id| *id > 0);
    match token.strip_prefix(mark).and_then(cursor) {
        Some(id) => Ok(id),
        None if token.strip_prefix(other).and_then(cursor).is_some() => Err(invalid(format!(
            "invalid page_token: it continues a listing in the other order; pass the same \
             oldest_first ({}) as for its first page",
            order == ListOrder::NewestFirst
        ))),
        None => Err(invalid(format!(
            "invalid page_token {}: pass the next_page_token of the previous response",
            limits::shown(token)
        ))),
    }
}

#[cfg(test)]
mod list_token_tests {
    use super::*;

    #[test]
    fn a_token_round_trips_in_its_own_order() {
        for order in [ListOrder::NewestFirst, ListOrder::OldestFirst] {
            for id in [1, 42, TaskId::MAX] {
                assert_eq!(
                    task_cursor_from_token(&task_cursor_to_token(id, order), order).unwrap(),
                    id
                );
            }
            assert_eq!(task_cursor_from_token("", order).unwrap(), 0);
        }
    }

    #[test]
    fn a_token_from_the_other_order_or_malformed_is_invalid_argument() {
        let newest = task_cursor_to_token(7, ListOrder::NewestFirst);
        let err = task_cursor_from_token(&newest, ListOrder::OldestFirst).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("other order"), "{}", err.message());
        for bad in ["7", "n", "n0", "nx", "o-1", "not-a-token", "n18446744073709551616"] {
            let err = task_cursor_from_token(bad, ListOrder::NewestFirst).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad}");
        }
    }
}
