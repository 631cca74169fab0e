//! Limits on everything a client can put into the replicated state, and the check that
//! enforces them.
//!
//! Architecture invariant: these are constants, not configuration. Apply re-checks every
//! spec, so two nodes with different limits would diverge on the same log.

use crate::scheduling::MAX_QUEUE_WEIGHT;
use crate::scheduling::QueuePolicy;
use crate::state::AttemptReport;
use crate::state::StateError;
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
