//! Generated values to protobuf messages, exactly as generated: no defaults filled in, no
//! client-side checks.

use raftsched_api::v1 as api;

use super::ops::PayloadGen;
use super::ops::RecurrenceGen;
use super::ops::RegisterGen;
use super::ops::ReportGen;
use super::ops::ScheduleGen;
use super::ops::Shape;
use super::ops::SpecGen;
use super::ops::WorkflowGen;
use super::values::copies_within_budget;

fn resources(r: Option<(u32, u32)>) -> Option<api::Resources> {
    r.map(|(cpu_millis, memory_mb)| api::Resources { cpu_millis, memory_mb })
}

pub fn spec(g: &SpecGen) -> api::TaskSpec {
    let payload = match &g.payload {
        PayloadGen::None => None,
        PayloadGen::Command { line, env } => Some(api::task_spec::Payload::Command(api::CommandPayload {
            command_line: line.build(),
            env: env.build(),
        })),
        PayloadGen::Opaque { kind, data_len } => Some(api::task_spec::Payload::Opaque(api::OpaquePayload {
            kind: kind.build(),
            data: vec![0xA5; *data_len],
        })),
    };
    api::TaskSpec {
        namespace: String::new(),
        name: g.name.build(),
        queue: g.queue.build(),
        priority: g.priority,
        payload,
        labels: g.labels.build(),
        max_attempts: g.max_attempts,
        attempt_timeout_ms: g.attempt_timeout_ms,
        client_request_id: g.client_request_id.build(),
        constraints: g.constraints.build(),
        resources: resources(g.resources),
        affinity_key: g.affinity_key.build(),
        retry_backoff_ms: g.retry_backoff_ms,
        run_at_ms: g.run_at_ms,
        delay_ms: g.delay_ms,
        trace_parent: String::new(),
    }
}

pub fn schedule(g: &ScheduleGen) -> api::ScheduleSpec {
    let recurrence = match &g.recurrence {
        RecurrenceGen::None => None,
        RecurrenceGen::Cron(expression, zone) => Some(api::schedule_spec::Recurrence::Cron(api::CronRecurrence {
            expression: expression.build(),
            time_zone: zone.build(),
        })),
        RecurrenceGen::Every(ms) => Some(api::schedule_spec::Recurrence::EveryMs(*ms)),
    };
    api::ScheduleSpec {
        recurrence,
        template: g.template.as_ref().map(spec),
        start_ms: g.start_ms,
        end_ms: g.end_ms,
        misfire: g.misfire.build(),
        catch_up_window_ms: g.catch_up_window_ms,
        overlap: g.overlap.build(),
    }
}

/// Keys and parent keys of each task of a shape.
fn edges(shape: &Shape) -> Vec<(String, Vec<String>)> {
    let key = |i: usize| format!("t{i}");
    match shape {
        Shape::Empty => vec![],
        Shape::Chain(n) => (0..*n)
            .map(|i| (key(i), if i == 0 { vec![] } else { vec![key(i - 1)] }))
            .collect(),
        Shape::Fan(n) => (0..*n)
            .map(|i| (key(i), if i == 0 { vec![] } else { vec![key(0)] }))
            .collect(),
        Shape::Dense(n) => (0..*n).map(|i| (key(i), (0..i).map(key).collect())).collect(),
        Shape::Cycle(n) => (0..*n).map(|i| (key(i), vec![key((i + n - 1) % n)])).collect(),
        Shape::SelfLoop => vec![(key(0), vec![key(0)])],
        Shape::DuplicateKeys => vec![(key(0), vec![]), (key(0), vec![])],
        Shape::UnknownParent => vec![(key(0), vec!["nope".into()])],
        Shape::OddKeys(k, parent) => vec![(k.build(), vec![parent.build()])],
    }
}

pub fn workflow(g: &WorkflowGen) -> api::SubmitWorkflowRequest {
    let task_spec = spec(&g.spec);
    let edges = edges(&g.shape);
    let count = copies_within_budget(edges.len(), prost::Message::encoded_len(&task_spec));
    api::SubmitWorkflowRequest {
        namespace: String::new(),
        name: g.name.build(),
        tasks: edges
            .into_iter()
            .take(count)
            .map(|(key, after)| api::WorkflowTaskSpec {
                key,
                spec: Some(task_spec.clone()),
                after,
            })
            .collect(),
        request_id: g.request_id.build(),
    }
}

pub fn register(g: &RegisterGen) -> api::RegisterWorkerRequest {
    api::RegisterWorkerRequest {
        namespace: String::new(),
        worker_id: g.worker_id.build(),
        session_id: g.session_id.build(),
        slots: g.slots,
        labels: g.labels.build(),
        resources: resources(g.resources),
        lease_ms: g.lease_ms,
    }
}

pub fn report(g: &ReportGen, task_id: u64, token: u64, worker: (String, String)) -> api::ReportResultRequest {
    api::ReportResultRequest {
        task_id,
        token,
        outcome: g.outcome,
        exit_code: g.exit_code,
        has_exit_code: g.has_exit_code,
        error: g.error.build(),
        non_retryable: g.non_retryable,
        stdout_tail: g.stdout_tail.build(),
        stderr_tail: g.stderr_tail.build(),
        worker_id: worker.0,
        session_id: worker.1,
    }
}
