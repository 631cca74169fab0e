//! Limits on everything a client can put into the replicated state, and the check that
//! enforces them.
//!
//! Architecture invariant: these are constants, not configuration. Apply re-checks every
//! spec, so two nodes with different limits would diverge on the same log.

use crate::scheduling::MAX_QUEUE_WEIGHT;
use crate::scheduling::QueuePolicy;
use crate::state::AttemptReport;
use crate::state::StateError;
use crate::state::schedule::MisfirePolicy;
use crate::state::schedule::Recurrence;
use crate::state::schedule::ScheduleSpec;
use crate::state::schedule::WorkflowSpec;
use crate::state::task::AttemptOutcome;
use crate::state::task::Payload;
use crate::state::task::Resources;
use crate::state::task::TaskSpec;
use crate::state::worker::WorkerRegistration;

pub const MAX_NAME_BYTES: usize = 256;
pub const MAX_QUEUE_BYTES: usize = 64;
pub const MAX_LABELS: usize = 32;
pub const MAX_LABEL_KEY_BYTES: usize = 63;
pub const MAX_LABEL_VALUE_BYTES: usize = 255;
pub const MAX_ENV_VARS: usize = 64;
pub const MAX_ENV_KEY_BYTES: usize = 128;
/// Command line + environment, or opaque data + kind: what a worker receives.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
pub const MAX_KIND_BYTES: usize = 128;
pub const MAX_ATTEMPTS: u32 = 100;
pub const MIN_ATTEMPT_TIMEOUT_MS: u64 = 100;
pub const MAX_ATTEMPT_TIMEOUT_MS: u64 = 7 * 24 * 3600 * 1000;
pub const MAX_REQUEST_ID_BYTES: usize = 128;
pub const MAX_REASON_BYTES: usize = 1024;
/// Tasks in one submission (one log entry).
pub const MAX_BATCH_TASKS: usize = 1000;
pub const MAX_DELAY_MS: u64 = 366 * 24 * 3600 * 1000;
pub const MAX_AFFINITY_KEY_BYTES: usize = 256;
pub const MIN_RETRY_BACKOFF_MS: u64 = 10;
pub const MAX_RETRY_BACKOFF_MS: u64 = 3600 * 1000;
/// 1000 cores, 16 TiB: far above any machine, low enough that sums cannot overflow.
pub const MAX_CPU_MILLIS: u32 = 1_000_000;
pub const MAX_MEMORY_MB: u32 = 16 * 1024 * 1024;
pub const MAX_WORKER_ID_BYTES: usize = 128;
pub const MAX_WORKER_SLOTS: u32 = 10_000;
pub const MIN_LEASE_MS: u64 = 500;
pub const MAX_LEASE_MS: u64 = 300_000;
pub const MAX_WORKERS: usize = 10_000;
pub const MAX_QUEUE_POLICIES: usize = 10_000;
/// Bytes of stdout and of stderr kept for an attempt.
pub const MAX_OUTPUT_TAIL_BYTES: usize = 4096;
pub const MAX_ERROR_BYTES: usize = 1024;
/// Assignments in one log entry.
pub const MAX_ASSIGNMENTS_PER_ENTRY: usize = 1000;
/// Batches a log entry may hold inside one another when decoded: 2, a batch in a batch
/// (the proposer never nests them; apply answers a nested one with Empty). serde decodes
/// nesting by recursion, 2 bytes a level, so a peer's 8 MiB append could nest 4 million
/// levels and overflow the stack, aborting the node; deeper nesting is refused instead.
pub const MAX_BATCH_NESTING: u32 = 2;

pub const MAX_SCHEDULES: usize = 10_000;
pub const MAX_SCHEDULE_NAME_BYTES: usize = 128;
pub const MAX_CRON_BYTES: usize = 256;
pub const MAX_TIME_ZONE_BYTES: usize = 64;
pub const MIN_INTERVAL_MS: u64 = 1000;
pub const MAX_INTERVAL_MS: u64 = 366 * 24 * 3600 * 1000;
pub const MAX_CATCH_UP_WINDOW_MS: u64 = 7 * 24 * 3600 * 1000;
/// Runs (fired, triggered, skipped) kept per schedule; older ones are dropped.
pub const MAX_SCHEDULE_RUNS: usize = 100;
/// Occurrence decisions in one firing entry.
pub const MAX_OCCURRENCES_PER_FIRING: usize = 1000;
pub const MAX_WORKFLOW_TASKS: usize = 1000;
pub const MAX_WORKFLOW_EDGES: usize = 10_000;
pub const MAX_WORKFLOW_KEY_BYTES: usize = 128;
/// Shards of one broadcast or sharded run.
pub const MAX_SHARDS: usize = 1000;
/// The constraint that pins a task to one worker: `raftsched/worker=<worker id>`. Every
/// worker matches it under its own id, whatever labels it declares.
pub const PIN_LABEL: &str = "raftsched/worker";

pub const DEFAULT_QUEUE: &str = "default";
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
pub const DEFAULT_ATTEMPT_TIMEOUT_MS: u64 = 3600 * 1000;
pub const DEFAULT_RETRY_BACKOFF_MS: u64 = 1000;
pub const DEFAULT_LEASE_MS: u64 = 5000;

/// Checks a spec against every limit. The error names the field and the limit.
pub fn validate_spec(spec: &TaskSpec) -> Result<(), StateError> {
    check_text("name", &spec.name, MAX_NAME_BYTES)?;
    check_identifier("queue", &spec.queue, MAX_QUEUE_BYTES)?;
    validate_payload(&spec.payload)?;
    if spec.labels.len() > MAX_LABELS {
        return invalid("labels", format!("{} labels, at most {MAX_LABELS}", spec.labels.len()));
    }
    for (key, value) in &spec.labels {
        check_identifier("label key", key, MAX_LABEL_KEY_BYTES)?;
        if value.len() > MAX_LABEL_VALUE_BYTES {
            return invalid(
                "label value",
                format!("{key}: longer than {MAX_LABEL_VALUE_BYTES} bytes"),
            );
        }
    }
    if !(1..=MAX_ATTEMPTS).contains(&spec.max_attempts) {
        return invalid(
            "max_attempts",
            format!("{}, must be 1..={MAX_ATTEMPTS}", spec.max_attempts),
        );
    }
    if !(MIN_ATTEMPT_TIMEOUT_MS..=MAX_ATTEMPT_TIMEOUT_MS).contains(&spec.attempt_timeout_ms) {
        return invalid(
            "attempt_timeout_ms",
            format!(
                "{}, must be {MIN_ATTEMPT_TIMEOUT_MS}..={MAX_ATTEMPT_TIMEOUT_MS}",
                spec.attempt_timeout_ms
            ),
        );
    }
    if let Some(request_id) = &spec.client_request_id {
        check_text("client_request_id", request_id, MAX_REQUEST_ID_BYTES)?;
    }
    if spec.delay_ms > MAX_DELAY_MS {
        return invalid(
            "delay_ms",
            format!("{}, at most {MAX_DELAY_MS} (one year)", spec.delay_ms),
        );
    }
    check_labels("constraints", &spec.constraints)?;
    check_resources(&spec.resources)?;
    if let Some(key) = &spec.affinity_key {
        check_text("affinity_key", key, MAX_AFFINITY_KEY_BYTES)?;
    }
    if !(MIN_RETRY_BACKOFF_MS..=MAX_RETRY_BACKOFF_MS).contains(&spec.retry_backoff_ms) {
        return invalid(
            "retry_backoff_ms",
            format!(
                "{}, must be {MIN_RETRY_BACKOFF_MS}..={MAX_RETRY_BACKOFF_MS}",
                spec.retry_backoff_ms
            ),
        );
    }
    Ok(())
}

/// A schedule name is its id: an identifier without `/`, so firing keys
/// (`schedule/<name>/<scheduled_ms>`) stay unambiguous.
pub fn validate_schedule_name(name: &str) -> Result<(), StateError> {
    check_identifier("schedule name", name, MAX_SCHEDULE_NAME_BYTES)?;
    if name.contains('/') {
        return invalid("schedule name", format!("{name:?} may not contain '/'"));
    }
    Ok(())
}

/// The limits of a schedule. The leader also checks that the cron expression parses and the
/// time zone exists; apply does not evaluate either.
pub fn validate_schedule_spec(spec: &ScheduleSpec) -> Result<(), StateError> {
    match &spec.recurrence {
        Recurrence::Cron { expression, time_zone } => {
            check_text("cron", expression, MAX_CRON_BYTES)?;
            check_identifier("time zone", time_zone, MAX_TIME_ZONE_BYTES)?;
        }
        Recurrence::Every { interval_ms } => {
            if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(interval_ms) {
                return invalid(
                    "interval_ms",
                    format!("{interval_ms}, must be {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS}"),
                );
            }
        }
    }
    if let MisfirePolicy::CatchUp { window_ms } = spec.misfire
        && !(1..=MAX_CATCH_UP_WINDOW_MS).contains(&window_ms)
    {
        return invalid(
            "misfire",
            format!("catch-up window {window_ms} ms, must be 1..={MAX_CATCH_UP_WINDOW_MS}"),
        );
    }
    if spec.end_ms != 0 && spec.end_ms < spec.start_ms {
        return invalid(
            "end_ms",
            format!("{} is before start_ms {}", spec.end_ms, spec.start_ms),
        );
    }
    validate_spec(&spec.template)?;
    if spec.template.client_request_id.is_some() {
        return invalid(
            "template",
            "a schedule's task template takes no request id; each run is keyed by its occurrence".into(),
        );
    }
    if spec.template.not_before_ms != 0 {
        return invalid(
            "template",
            "a schedule's task template takes no run-at time; use the schedule's start bound".into(),
        );
    }
    Ok(())
}

/// The shape of a workflow: size, keys, edges to known keys, and no cycle. Each task's spec
/// is checked with [`validate_spec`].
pub fn validate_workflow(workflow: &WorkflowSpec) -> Result<(), StateError> {
    check_text("workflow name", &workflow.name, MAX_NAME_BYTES)?;
    if let Some(request_id) = &workflow.request_id {
        check_text("request_id", request_id, MAX_REQUEST_ID_BYTES)?;
    }
    let count = workflow.tasks.len();
    if count == 0 || count > MAX_WORKFLOW_TASKS {
        return invalid("workflow", format!("{count} tasks, must be 1..={MAX_WORKFLOW_TASKS}"));
    }
    let edges: usize = workflow.tasks.iter().map(|t| t.after.len()).sum();
    if edges > MAX_WORKFLOW_EDGES {
        return invalid("workflow", format!("{edges} edges, at most {MAX_WORKFLOW_EDGES}"));
    }
    let mut index = std::collections::BTreeMap::new();
    for (i, task) in workflow.tasks.iter().enumerate() {
        check_identifier("workflow task key", &task.key, MAX_WORKFLOW_KEY_BYTES)?;
        if index.insert(task.key.as_str(), i).is_some() {
            return invalid("workflow", format!("task key {:?} is used twice", task.key));
        }
        validate_spec(&task.spec).map_err(|e| match e {
            StateError::InvalidArgument { field, problem } => StateError::InvalidArgument {
                field: format!("task {:?}: {field}", task.key),
                problem,
            },
            other => other,
        })?;
        if task.spec.client_request_id.is_some() {
            return invalid(
                "workflow",
                format!("task {:?} has a request id; set one on the workflow instead", task.key),
            );
        }
    }
    // Kahn's algorithm: a task is placed once all its parents are; what is left is a cycle.
    let mut waiting_on: Vec<usize> = vec![0; count];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (i, task) in workflow.tasks.iter().enumerate() {
        let mut seen = std::collections::BTreeSet::new();
        for parent in &task.after {
            let Some(&p) = index.get(parent.as_str()) else {
                return invalid(
                    "workflow",
                    format!(
                        "task {:?} runs after {parent:?}, which is not a task of this workflow",
                        task.key
                    ),
                );
            };
            if p == i {
                return invalid("workflow", format!("task {:?} runs after itself", task.key));
            }
            if !seen.insert(p) {
                return invalid("workflow", format!("task {:?} names parent {parent:?} twice", task.key));
            }
            waiting_on[i] += 1;
            children[p].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..count).filter(|i| waiting_on[*i] == 0).collect();
    let mut placed = 0;
    while let Some(i) = ready.pop() {
        placed += 1;
        for &c in &children[i] {
            waiting_on[c] -= 1;
            if waiting_on[c] == 0 {
                ready.push(c);
            }
        }
    }
    if placed < count {
        let cyclic: Vec<&str> = (0..count)
            .filter(|i| waiting_on[*i] > 0)
            .take(10)
            .map(|i| workflow.tasks[i].key.as_str())
            .collect();
        return invalid(
            "workflow",
            format!("the edges form a cycle; tasks on or after it: {}", cyclic.join(", ")),
        );
    }
    Ok(())
}

pub fn validate_shard_count(count: usize) -> Result<(), StateError> {
    if count == 0 || count > MAX_SHARDS {
        return invalid("shards", format!("{count}, must be 1..={MAX_SHARDS}"));
    }
    Ok(())
}

pub fn validate_registration(registration: &WorkerRegistration) -> Result<(), StateError> {
    check_identifier("worker_id", &registration.id, MAX_WORKER_ID_BYTES)?;
    check_text("session_id", &registration.session, MAX_REQUEST_ID_BYTES)?;
    if !(1..=MAX_WORKER_SLOTS).contains(&registration.slots) {
        return invalid(
            "slots",
            format!("{}, must be 1..={MAX_WORKER_SLOTS}", registration.slots),
        );
    }
    check_labels("labels", &registration.labels)?;
    check_resources(&registration.resources)?;
    if !(MIN_LEASE_MS..=MAX_LEASE_MS).contains(&registration.lease_ms) {
        return invalid(
            "lease_ms",
            format!("{}, must be {MIN_LEASE_MS}..={MAX_LEASE_MS}", registration.lease_ms),
        );
    }
    Ok(())
}

pub fn validate_report(report: &AttemptReport) -> Result<(), StateError> {
    if matches!(report.outcome, AttemptOutcome::Running | AttemptOutcome::LeaseExpired) {
        return invalid("outcome", format!("a worker cannot report {}", report.outcome.as_str()));
    }
    if report.error.as_ref().is_some_and(|e| e.len() > MAX_ERROR_BYTES) {
        return invalid("error", format!("longer than {MAX_ERROR_BYTES} bytes"));
    }
    if report.stdout_tail.len() > MAX_OUTPUT_TAIL_BYTES || report.stderr_tail.len() > MAX_OUTPUT_TAIL_BYTES {
        return invalid("output", format!("a tail is longer than {MAX_OUTPUT_TAIL_BYTES} bytes"));
    }
    Ok(())
}

pub fn validate_queue_policy(queue: &str, policy: &QueuePolicy) -> Result<(), StateError> {
    check_identifier("queue", queue, MAX_QUEUE_BYTES)?;
    if !(1..=MAX_QUEUE_WEIGHT).contains(&policy.weight) {
        return invalid("weight", format!("{}, must be 1..={MAX_QUEUE_WEIGHT}", policy.weight));
    }
    Ok(())
}

fn check_labels(field: &'static str, labels: &std::collections::BTreeMap<String, String>) -> Result<(), StateError> {
    if labels.len() > MAX_LABELS {
        return invalid(field, format!("{} entries, at most {MAX_LABELS}", labels.len()));
    }
    for (key, value) in labels {
        check_identifier(field, key, MAX_LABEL_KEY_BYTES)?;
        if value.len() > MAX_LABEL_VALUE_BYTES {
            return invalid(field, format!("{key}: value longer than {MAX_LABEL_VALUE_BYTES} bytes"));
        }
    }
    Ok(())
}

fn check_resources(resources: &Resources) -> Result<(), StateError> {
    if resources.cpu_millis > MAX_CPU_MILLIS || resources.memory_mb > MAX_MEMORY_MB {
        return invalid(
            "resources",
            format!("{resources}, at most cpu={MAX_CPU_MILLIS}m memory={MAX_MEMORY_MB}MiB"),
        );
    }
    Ok(())
}

pub fn validate_reason(reason: &str) -> Result<(), StateError> {
    if reason.len() > MAX_REASON_BYTES {
        return invalid("reason", format!("longer than {MAX_REASON_BYTES} bytes"));
    }
    Ok(())
}

pub fn validate_batch_len(len: usize) -> Result<(), StateError> {
    if len == 0 || len > MAX_BATCH_TASKS {
        return invalid(
            "tasks",
            format!("{len} tasks in one submission, must be 1..={MAX_BATCH_TASKS}"),
        );
    }
    Ok(())
}

fn validate_payload(payload: &Payload) -> Result<(), StateError> {
    let total_bytes = match payload {
        Payload::Command { command_line, env } => {
            if command_line.trim().is_empty() {
                return invalid("command", "empty command line".to_string());
            }
            if env.len() > MAX_ENV_VARS {
                return invalid("env", format!("{} variables, at most {MAX_ENV_VARS}", env.len()));
            }
            for key in env.keys() {
                check_env_key(key)?;
            }
            command_line.len() + env.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
        }
        Payload::Opaque { kind, data } => {
            check_identifier("payload kind", kind, MAX_KIND_BYTES)?;
            kind.len() + data.len()
        }
    };
    if total_bytes > MAX_PAYLOAD_BYTES {
        return invalid("payload", format!("{total_bytes} bytes, at most {MAX_PAYLOAD_BYTES}"));
    }
    Ok(())
}

fn check_env_key(key: &str) -> Result<(), StateError> {
    let well_formed = !key.is_empty()
        && key.len() <= MAX_ENV_KEY_BYTES
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !well_formed {
        return invalid(
            "env",
            format!(
                "bad variable name {key:?}: use 1..={MAX_ENV_KEY_BYTES} of [A-Za-z0-9_], not starting with a digit"
            ),
        );
    }
    Ok(())
}

/// Free text: non-empty, bounded, no control characters.
fn check_text(field: &'static str, text: &str, max_bytes: usize) -> Result<(), StateError> {
    if text.is_empty() || text.len() > max_bytes {
        return invalid(field, format!("must be 1..={max_bytes} bytes, got {}", text.len()));
    }
    if text.chars().any(char::is_control) {
        return invalid(field, "contains control characters".to_string());
    }
    Ok(())
}

/// Names used as keys: [A-Za-z0-9_.-/] only.
fn check_identifier(field: &'static str, text: &str, max_bytes: usize) -> Result<(), StateError> {
    if text.is_empty() || text.len() > max_bytes {
        return invalid(field, format!("must be 1..={max_bytes} bytes, got {}", text.len()));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
    if !text.chars().all(allowed) {
        return invalid(field, format!("{text:?} may only use [A-Za-z0-9_.-/]"));
    }
    Ok(())
}

fn invalid(field: &str, problem: String) -> Result<(), StateError> {
    Err(StateError::InvalidArgument {
        field: field.to_string(),
        problem,
    })
}
