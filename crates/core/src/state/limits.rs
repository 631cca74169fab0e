//! Limits on everything a client can put into the replicated state, and the check that
//! enforces them.
//!
//! Architecture invariant: these are constants, not configuration. Apply re-checks every
//! spec, so two nodes with different limits would diverge on the same log.

use crate::state::AttemptReport;
use crate::state::MAX_QUEUE_WEIGHT;
use crate::state::QueuePolicy;
use crate::state::StateError;
use crate::state::namespace::DEFAULT_NAMESPACE;
use crate::state::namespace::NAMESPACE_LABEL;
use crate::state::namespace::namespace_of;
use crate::state::namespace::validate_namespace;
use crate::state::namespace::validate_qualified;
use crate::state::schedule::MisfirePolicy;
use crate::state::schedule::Recurrence;
use crate::state::schedule::ScheduleSpec;
use crate::state::schedule::WorkflowSpec;
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
/// A W3C `traceparent` of version 00: `00-` 32 hex digits `-` 16 hex digits `-` 2 hex digits.
pub const TRACE_PARENT_BYTES: usize = 55;
const _: () = assert!(TRACE_PARENT_BYTES == 2 + 1 + 32 + 1 + 16 + 1 + 2);
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
/// Attempt tokens a worker may list in one Attach or Heartbeat (10,000): it runs at most
/// one attempt per slot, and has at most [`MAX_WORKER_SLOTS`] slots, so a longer list is a
/// broken worker; refusing it keeps the leader from building sets of millions of tokens
/// out of one 4 MiB request.
pub const MAX_RUNNING_TOKENS: usize = MAX_WORKER_SLOTS as usize;
pub const MIN_LEASE_MS: u64 = 500;
pub const MAX_LEASE_MS: u64 = 300_000;
pub const MAX_WORKERS: usize = 10_000;
pub const MAX_QUEUE_POLICIES: usize = 10_000;
/// Bytes of stdout and of stderr kept for an attempt (4 KiB each), counted after UTF-8
/// conversion and including [`TRUNCATION_MARKER`]: longer tails are cut, never refused.
pub const MAX_OUTPUT_TAIL_BYTES: usize = 4096;
/// Bytes of an attempt's error message (1 KiB), marker included: longer ones are cut.
pub const MAX_ERROR_BYTES: usize = 1024;
/// Marks where text was cut: at the front of a tail (earlier output dropped), at the end of
/// an error message (the rest dropped). One character, 3 bytes in UTF-8.
pub const TRUNCATION_MARKER: &str = "\u{2026}";
/// Bytes of a client's text that an error message quotes (see [`shown`]).
pub const MAX_SHOWN_BYTES: usize = 64;
// A cut text must have room for the marker and at least some of the text.
const _: () = assert!(TRUNCATION_MARKER.len() == 3);
const _: () = assert!(TRUNCATION_MARKER.len() < MAX_OUTPUT_TAIL_BYTES && TRUNCATION_MARKER.len() < MAX_ERROR_BYTES);
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
/// A member's address (`host:port`) in an AddNode request, 512 bytes: the longest DNS name
/// (253 bytes) with a scheme and a port fits twice over. The address is stored in the
/// membership, replicated, and shown by every status call, so it may not be megabytes.
pub const MAX_NODE_ADDRESS_BYTES: usize = 512;
/// The constraint that pins a task to one worker: `raftsched/worker=<worker id>`. Every
/// worker matches it under its own id, whatever labels it declares.
pub const PIN_LABEL: &str = "raftsched/worker";

pub const DEFAULT_QUEUE: &str = "default";
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
pub const DEFAULT_ATTEMPT_TIMEOUT_MS: u64 = 3600 * 1000;
pub const DEFAULT_RETRY_BACKOFF_MS: u64 = 1000;
pub const DEFAULT_LEASE_MS: u64 = 5000;

/// How long a finished task is kept before the leader purges it, unless its queue says
/// otherwise: 7 days, long enough to look into last week's failures. At a steady 1,000
/// tasks/s that is still 605 million finished tasks, so busy queues set a shorter one
/// (`queue set Q --retention 1h`).
pub const DEFAULT_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;
/// 1 s: below that a task could be purged before the client that waited for it read its
/// result (a `task get` poll runs at 100–500 ms), and the dedup window (= the retention)
/// would be shorter than a client's retry deadline.
pub const MIN_RETENTION_MS: u64 = 1000;
/// 10 years (3,650 days): "keep for ever" in practice, while `finished_at + retention`
/// stays far below `u64::MAX` for any real clock (epoch ms are ~2^41, 10 years ~2^38).
pub const MAX_RETENTION_MS: u64 = 3650 * 24 * 3600 * 1000;
/// Purge units (a plain task, a sharded parent with its shards, a workflow with its tasks)
/// in one `PurgeTasks` entry: 1000, like assignments. The leader also stops adding units
/// once the entry would remove 1000 tasks (a unit is never split), so one entry removes at
/// most 1000 + one unit (≤ 1001 tasks) more.
pub const MAX_PURGES_PER_ENTRY: usize = 1000;

const _: () = assert!(MIN_RETENTION_MS <= DEFAULT_RETENTION_MS && DEFAULT_RETENTION_MS <= MAX_RETENTION_MS);
const _: () = assert!(MAX_RETENTION_MS < u64::MAX / 4);

// A worker runs at most one attempt per slot.
const _: () = assert!(MAX_RUNNING_TOKENS >= MAX_WORKER_SLOTS as usize);
// The longest DNS name (253 bytes) with a scheme and a port fits.
const _: () = assert!(MAX_NODE_ADDRESS_BYTES >= 253 + "https://".len() + ":65535".len());
// run_at_ms is bounded like delay_ms, one year ahead, and both must stay far from u64::MAX
// so `now + bound` cannot overflow for any real clock.
const _: () = assert!(MAX_DELAY_MS < u64::MAX / 2);

/// Checks a spec against every limit. The error names the field and the limit.
pub fn validate_spec(spec: &TaskSpec) -> Result<(), StateError> {
    check_text("name", &spec.name, MAX_NAME_BYTES)?;
    validate_queue_name(&spec.queue)?;
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
            format!("{}, must be from 1 to {MAX_ATTEMPTS}", spec.max_attempts),
        );
    }
    if !(MIN_ATTEMPT_TIMEOUT_MS..=MAX_ATTEMPT_TIMEOUT_MS).contains(&spec.attempt_timeout_ms) {
        return invalid(
            "attempt_timeout_ms",
            format!(
                "{}, must be {}",
                human_ms(spec.attempt_timeout_ms),
                ms_range(MIN_ATTEMPT_TIMEOUT_MS, MAX_ATTEMPT_TIMEOUT_MS)
            ),
        );
    }
    if let Some(request_id) = &spec.client_request_id {
        check_text("client_request_id", request_id, MAX_REQUEST_ID_BYTES)?;
    }
    if let Some(trace_parent) = &spec.trace_parent {
        check_trace_parent(trace_parent)?;
    }
    if spec.delay_ms > MAX_DELAY_MS {
        return invalid(
            "delay_ms",
            format!("{}, at most {MAX_DELAY_MS} (one year)", spec.delay_ms),
        );
    }
    if spec.delay_ms != 0 && spec.not_before_ms != 0 {
        return invalid(
            "run_at_ms",
            format!(
                "run_at_ms {} and delay_ms {} are both set; set at most one of them",
                spec.not_before_ms, spec.delay_ms
            ),
        );
    }
    check_labels("constraints", &spec.constraints)?;
    if spec.constraints.contains_key(NAMESPACE_LABEL) {
        return invalid(
            "constraints",
            format!("{NAMESPACE_LABEL} is reserved: a task runs on the workers of its own namespace"),
        );
    }
    check_resources(&spec.resources)?;
    if let Some(key) = &spec.affinity_key {
        check_text("affinity_key", key, MAX_AFFINITY_KEY_BYTES)?;
    }
    if !(MIN_RETRY_BACKOFF_MS..=MAX_RETRY_BACKOFF_MS).contains(&spec.retry_backoff_ms) {
        return invalid(
            "retry_backoff_ms",
            format!(
                "{}, must be {}",
                human_ms(spec.retry_backoff_ms),
                ms_range(MIN_RETRY_BACKOFF_MS, MAX_RETRY_BACKOFF_MS)
            ),
        );
    }
    Ok(())
}

/// A schedule name is its id: an identifier without `/`, so firing keys
/// (`schedule/<name>/<scheduled_ms>`) stay unambiguous.
/// In a namespace other than the default, the name is stored qualified (`team-a:nightly`).
pub fn validate_schedule_name(name: &str) -> Result<(), StateError> {
    validate_qualified("schedule name", name, |bare| {
        check_identifier("schedule name", bare, MAX_SCHEDULE_NAME_BYTES)?;
        if bare.contains('/') {
            return invalid("schedule name", format!("{} may not contain '/'", shown(bare)));
        }
        Ok(())
    })
}

/// A schedule's name and definition together: its runs are tasks of its own namespace.
pub fn validate_schedule(name: &str, spec: &ScheduleSpec) -> Result<(), StateError> {
    validate_schedule_name(name)?;
    validate_schedule_spec(spec)?;
    let (namespace, template) = (namespace_of(name), namespace_of(&spec.template.queue));
    if namespace != template {
        return invalid(
            "template",
            format!(
                "the schedule is in namespace {} and its task template's queue in {}: a schedule's runs stay in its namespace",
                shown(namespace),
                shown(template)
            ),
        );
    }
    Ok(())
}

/// A queue name as stored: bare in the default namespace, `<namespace>:<queue>` in another.
pub fn validate_queue_name(queue: &str) -> Result<(), StateError> {
    validate_qualified("queue", queue, |bare| check_identifier("queue", bare, MAX_QUEUE_BYTES))
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
                    format!(
                        "{}, must be {}",
                        human_ms(*interval_ms),
                        ms_range(MIN_INTERVAL_MS, MAX_INTERVAL_MS)
                    ),
                );
            }
        }
    }
    if let MisfirePolicy::CatchUp { window_ms } = spec.misfire
        && !(1..=MAX_CATCH_UP_WINDOW_MS).contains(&window_ms)
    {
        return invalid(
            "misfire",
            format!(
                "catch-up window {}, must be {}",
                human_ms(window_ms),
                ms_range(1, MAX_CATCH_UP_WINDOW_MS)
            ),
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
        return invalid(
            "workflow",
            format!("{count} tasks, must be from 1 to {MAX_WORKFLOW_TASKS}"),
        );
    }
    let edges: usize = workflow.tasks.iter().map(|t| t.after.len()).sum();
    if edges > MAX_WORKFLOW_EDGES {
        return invalid("workflow", format!("{edges} edges, at most {MAX_WORKFLOW_EDGES}"));
    }
    let mut index = std::collections::BTreeMap::new();
    for (i, task) in workflow.tasks.iter().enumerate() {
        check_identifier("workflow task key", &task.key, MAX_WORKFLOW_KEY_BYTES)?;
        if index.insert(task.key.as_str(), i).is_some() {
            return invalid("workflow", format!("task key {} is used twice", shown(&task.key)));
        }
        validate_spec(&task.spec).map_err(|e| match e {
            StateError::InvalidArgument { field, problem } => StateError::InvalidArgument {
                field: format!("task {}: {field}", shown(&task.key)),
                problem,
            },
            other => other,
        })?;
        if task.spec.client_request_id.is_some() {
            return invalid(
                "workflow",
                format!(
                    "task {} has a request id; set one on the workflow instead",
                    shown(&task.key)
                ),
            );
        }
    }
    let namespace = namespace_of(&workflow.tasks[0].spec.queue);
    if let Some(other) = workflow.tasks.iter().find(|t| namespace_of(&t.spec.queue) != namespace) {
        return invalid(
            "workflow",
            format!(
                "task {} is in namespace {}, the first task in {}: a workflow lives in one namespace",
                shown(&other.key),
                shown(namespace_of(&other.spec.queue)),
                shown(namespace)
            ),
        );
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
                        "task {} runs after {}, which is not a task of this workflow",
                        shown(&task.key),
                        shown(parent)
                    ),
                );
            };
            if p == i {
                return invalid("workflow", format!("task {} runs after itself", shown(&task.key)));
            }
            if !seen.insert(p) {
                return invalid(
                    "workflow",
                    format!("task {} names parent {} twice", shown(&task.key), shown(parent)),
                );
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

/// `run_at_ms` against the time the command carries: at most [`MAX_DELAY_MS`] (one year)
/// ahead, like `delay_ms`. The leader checks it with the time it stamps on the command, and
/// apply again with that same time, so both come to the same answer.
pub fn validate_run_at(spec: &TaskSpec, now_ms: u64) -> Result<(), StateError> {
    let latest = now_ms.saturating_add(MAX_DELAY_MS);
    if spec.not_before_ms > latest {
        return invalid(
            "run_at_ms",
            format!(
                "{} is more than {MAX_DELAY_MS} ms (one year) after the leader's time {now_ms}; \
                 pick one at most {latest}, or 0 for now",
                spec.not_before_ms
            ),
        );
    }
    Ok(())
}

/// A task listing's text filters: a name part and a request id no longer than a stored
/// name or request id could be (longer ones would match nothing, and say so).
pub fn validate_list_filter(filter: &crate::state::ListFilter) -> Result<(), StateError> {
    if let Some(text) = &filter.name_contains {
        check_text("name_contains", text, MAX_NAME_BYTES)?;
    }
    if let Some(request_id) = &filter.request_id {
        check_text("client_request_id", request_id, MAX_REQUEST_ID_BYTES)?;
    }
    Ok(())
}

/// The length of a repeated field or map from the wire, checked before anything is built
/// from it.
pub fn validate_count(field: &str, count: usize, max: usize) -> Result<(), StateError> {
    if count > max {
        return invalid(field, format!("{count} entries, at most {max}"));
    }
    Ok(())
}

/// The attempt tokens a worker lists in Attach or Heartbeat.
pub fn validate_running_tokens(count: usize) -> Result<(), StateError> {
    if count > MAX_RUNNING_TOKENS {
        return invalid(
            "running_tokens",
            format!(
                "{count} tokens, at most {MAX_RUNNING_TOKENS} (one per slot); list only the attempts this process runs"
            ),
        );
    }
    Ok(())
}

/// A worker's id and session as a later call names them (Attach, Heartbeat, Drain): checked
/// like the registration did, before the lookup, so a refusal never echoes megabytes of
/// id back in its message.
pub fn validate_worker_ref(worker_id: &str, session: &str) -> Result<(), StateError> {
    check_identifier("worker_id", worker_id, MAX_WORKER_ID_BYTES)?;
    check_text("session_id", session, MAX_REQUEST_ID_BYTES)
}

/// A W3C trace context of version 00 with a trace id and a parent id that are not all
/// zeros (https://www.w3.org/TR/trace-context/#traceparent-header).
pub fn check_trace_parent(trace_parent: &str) -> Result<(), StateError> {
    let fields: Vec<&str> = trace_parent.split('-').collect();
    let hex = |field: &str, len: usize| {
        field.len() == len && field.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |field: &str| field.bytes().any(|b| b != b'0');
    let well_formed = trace_parent.len() == TRACE_PARENT_BYTES
        && fields.len() == 4
        && fields[0] == "00"
        && hex(fields[1], 32)
        && nonzero(fields[1])
        && hex(fields[2], 16)
        && nonzero(fields[2])
        && hex(fields[3], 2);
    if well_formed {
        return Ok(());
    }
    let shown: String = trace_parent.chars().take(TRACE_PARENT_BYTES + 5).collect();
    invalid(
        "trace_parent",
        format!(
            "{shown:?} is not a W3C traceparent: it must be {TRACE_PARENT_BYTES} characters such as \
             00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 (version 00, lowercase hex ids, not all zeros)"
        ),
    )
}

/// A member's address for AddNode.
/// A member's address as peers dial it: `host:port` (the dialer adds `http://`), the host a
/// name, an IPv4 address or a bracketed IPv6 one, the port 1..=65535. A URI parser takes
/// more (`http://` parsed as a host), and a learner at an address nobody can dial would sit
/// in the membership, replicated to and never caught up.
pub fn validate_node_address(address: &str) -> Result<(), StateError> {
    check_text("address", address, MAX_NODE_ADDRESS_BYTES)?;
    let host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    let well_formed = address.rsplit_once(':').is_some_and(|(host, port)| {
        let host_ok = match host.strip_prefix('[') {
            Some(v6) => v6
                .strip_suffix(']')
                .is_some_and(|v6| !v6.is_empty() && v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':')),
            None => !host.is_empty() && host.chars().all(host_char),
        };
        host_ok && port.parse::<u16>().is_ok_and(|port| port != 0)
    });
    if !well_formed {
        return invalid(
            "address",
            format!(
                "{} is not host:port; give the address peers dial, e.g. 10.0.0.4:50051 or [::1]:50051",
                shown(address)
            ),
        );
    }
    Ok(())
}

pub fn validate_shard_count(count: usize) -> Result<(), StateError> {
    if count == 0 || count > MAX_SHARDS {
        return invalid("shards", format!("{count}, must be from 1 to {MAX_SHARDS}"));
    }
    Ok(())
}

pub fn validate_registration(registration: &WorkerRegistration) -> Result<(), StateError> {
    check_identifier("worker_id", &registration.id, MAX_WORKER_ID_BYTES)?;
    check_text("session_id", &registration.session, MAX_REQUEST_ID_BYTES)?;
    if !(1..=MAX_WORKER_SLOTS).contains(&registration.slots) {
        return invalid(
            "slots",
            format!("{}, must be from 1 to {MAX_WORKER_SLOTS}", registration.slots),
        );
    }
    check_labels("labels", &registration.labels)?;
    if let Some(namespace) = registration.labels.get(NAMESPACE_LABEL) {
        validate_namespace(namespace)?;
        if namespace == DEFAULT_NAMESPACE {
            return invalid(
                "labels",
                format!(
                    "{NAMESPACE_LABEL}={DEFAULT_NAMESPACE}: a worker of the default namespace carries no such label"
                ),
            );
        }
    }
    check_resources(&registration.resources)?;
    if !(MIN_LEASE_MS..=MAX_LEASE_MS).contains(&registration.lease_ms) {
        return invalid(
            "lease_ms",
            format!(
                "{}, must be {}",
                human_ms(registration.lease_ms),
                ms_range(MIN_LEASE_MS, MAX_LEASE_MS)
            ),
        );
    }
    Ok(())
}

/// Checks a report and cuts its text to the limits: tails keep their last
/// [`MAX_OUTPUT_TAIL_BYTES`], the error its first [`MAX_ERROR_BYTES`]. A result is never
/// refused for its size (an older worker may send more); the cut is a pure function, so the
/// leader (before proposing) and apply (on every replica) cut alike, and cutting twice
/// changes nothing.
pub fn validate_report(report: &mut AttemptReport) -> Result<(), StateError> {
    if report.outcome.is_recorded_by_apply_only() {
        return invalid("outcome", format!("a worker cannot report {}", report.outcome.as_str()));
    }
    for tail in [&mut report.stdout_tail, &mut report.stderr_tail] {
        if tail.len() > MAX_OUTPUT_TAIL_BYTES {
            *tail = truncate_tail(tail, MAX_OUTPUT_TAIL_BYTES);
        }
    }
    if let Some(error) = &mut report.error
        && error.len() > MAX_ERROR_BYTES
    {
        *error = truncate_error(error, MAX_ERROR_BYTES);
    }
    Ok(())
}

/// The end of `text` in at most `max_bytes` bytes: `text` itself if it fits, else
/// [`TRUNCATION_MARKER`] followed by the longest suffix that fits and starts on a character
/// boundary. Below 3 bytes there is no room for the marker: the suffix alone.
pub fn truncate_tail(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    match max_bytes.checked_sub(TRUNCATION_MARKER.len()) {
        Some(room) => format!("{TRUNCATION_MARKER}{}", suffix_within(text, room)),
        None => suffix_within(text, max_bytes).to_owned(),
    }
}

/// The start of `text` in at most `max_bytes` bytes: `text` itself if it fits, else the
/// longest prefix that fits and ends on a character boundary, followed by
/// [`TRUNCATION_MARKER`]. Below 3 bytes there is no room for the marker: the prefix alone.
pub fn truncate_error(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    match max_bytes.checked_sub(TRUNCATION_MARKER.len()) {
        Some(room) => format!("{}{TRUNCATION_MARKER}", prefix_within(text, room)),
        None => prefix_within(text, max_bytes).to_owned(),
    }
}

/// Client text as an error message quotes it: in full when short, else its start, the
/// marker and its length. Echoing a 4 MiB name whole made a refusal too big for an HTTP/2
/// header (hyper's client takes 16 KiB), so the client saw a protocol error instead of the
/// reason (found by the adversarial fuzzer).
pub fn shown(text: &str) -> String {
    if text.len() <= MAX_SHOWN_BYTES {
        return format!("{text:?}");
    }
    let start = prefix_within(text, MAX_SHOWN_BYTES);
    format!("{start:?}{TRUNCATION_MARKER} ({} bytes)", text.len())
}

fn suffix_within(text: &str, max_bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(max_bytes);
    // A UTF-8 character is at most 4 bytes, so this moves at most 3 times.
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn prefix_within(text: &str, max_bytes: usize) -> &str {
    let mut end = max_bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

pub fn validate_queue_policy(queue: &str, policy: &QueuePolicy) -> Result<(), StateError> {
    validate_queue_name(queue)?;
    if !(1..=MAX_QUEUE_WEIGHT).contains(&policy.weight) {
        return invalid(
            "weight",
            format!("{}, must be from 1 to {MAX_QUEUE_WEIGHT}", policy.weight),
        );
    }
    if let Some(retention_ms) = policy.retention_ms
        && !(MIN_RETENTION_MS..=MAX_RETENTION_MS).contains(&retention_ms)
    {
        return invalid(
            "retention",
            format!(
                "{} must be between {} and {} (e.g. --retention 10m); leave it out for the default {}",
                human_ms(retention_ms),
                human_ms(MIN_RETENTION_MS),
                human_ms(MAX_RETENTION_MS),
                human_ms(DEFAULT_RETENTION_MS)
            ),
        );
    }
    Ok(())
}

/// A duration in the largest unit that divides it exactly (`7d`, `10m`, `1500ms`), the
/// form `--retention` accepts, so an error's limits can be pasted back.
/// "from 100ms to 7d": a range of durations as people write them, for error messages.
pub fn ms_range(min_ms: u64, max_ms: u64) -> String {
    format!("from {} to {}", human_ms(min_ms), human_ms(max_ms))
}

pub fn human_ms(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")];
    if ms == 0 {
        return "0s".to_string();
    }
    for (size, unit) in UNITS {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
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
            format!("{len} tasks in one submission, must be from 1 to {MAX_BATCH_TASKS}"),
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
                "bad variable name {}: use 1 to {MAX_ENV_KEY_BYTES} of [A-Za-z0-9_], not starting with a digit",
                shown(key)
            ),
        );
    }
    Ok(())
}

/// Free text: non-empty, bounded, no control characters.
fn check_text(field: &'static str, text: &str, max_bytes: usize) -> Result<(), StateError> {
    if text.is_empty() || text.len() > max_bytes {
        return invalid(field, format!("must be 1 to {max_bytes} bytes, got {}", text.len()));
    }
    if text.chars().any(char::is_control) {
        return invalid(field, "contains control characters".to_string());
    }
    Ok(())
}

/// Names used as keys: [A-Za-z0-9_.-/] only.
fn check_identifier(field: &'static str, text: &str, max_bytes: usize) -> Result<(), StateError> {
    if text.is_empty() || text.len() > max_bytes {
        return invalid(field, format!("must be 1 to {max_bytes} bytes, got {}", text.len()));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
    if !text.chars().all(allowed) {
        return invalid(field, format!("{} may only use [A-Za-z0-9_.-/]", shown(text)));
    }
    Ok(())
}

fn invalid(field: &str, problem: String) -> Result<(), StateError> {
    Err(StateError::InvalidArgument {
        field: field.to_string(),
        problem,
    })
}

#[cfg(test)]
mod truncation_tests {
    use super::*;
    use crate::state::task::AttemptOutcome;

    const M: &str = TRUNCATION_MARKER;

    #[test]
    fn trace_parents_must_be_w3c_version_00() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(check_trace_parent(good), Ok(()));
        assert_eq!(check_trace_parent(&good.replace("-01", "-00")), Ok(()), "unsampled");
        let long = format!("{good}-");
        let huge = "0".repeat(1 << 20);
        for bad in [
            "",
            &good[..TRACE_PARENT_BYTES - 1],
            &long,
            &huge,
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ] {
            let error = check_trace_parent(bad).unwrap_err().to_string();
            assert!(
                error.contains("trace_parent") && error.contains("W3C traceparent"),
                "{error}"
            );
            assert!(
                error.len() < 400,
                "the message quotes at most a prefix: {} bytes",
                error.len()
            );
        }
    }

    #[test]
    fn node_addresses_must_be_host_and_port() {
        for good in ["127.0.0.1:50051", "node-1.example.com:1", "[::1]:65535", "h:50051"] {
            assert_eq!(validate_node_address(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            " ",
            "http://",
            "http://h:1",
            "127.0.0.1",
            "127.0.0.1:0",
            "127.0.0.1:99999",
            "[::1",
            "[::1]",
            "[]:1",
            "a b:1",
            "é:1",
            ":1",
            "h:-1",
            "h:1/x",
        ] {
            let error = validate_node_address(bad).expect_err(bad);
            assert!(error.to_string().contains("address"), "{bad}: {error}");
        }
    }

    #[test]
    fn shown_quotes_short_text_whole_and_long_text_by_its_start_and_length() {
        assert_eq!(shown(""), "\"\"");
        let at_limit = "a".repeat(MAX_SHOWN_BYTES);
        assert_eq!(shown(&at_limit), format!("{at_limit:?}"));
        let over = "é".repeat(4 * 1024 * 1024);
        let quoted = shown(&over);
        assert!(quoted.len() < 2 * MAX_SHOWN_BYTES, "{quoted}");
        assert!(quoted.ends_with(&format!("{M} ({} bytes)", over.len())), "{quoted}");
    }

    fn report_with(stdout: &str, stderr: &str, error: Option<&str>) -> AttemptReport {
        AttemptReport {
            task_id: 1,
            token: 1,
            outcome: AttemptOutcome::Succeeded,
            exit_code: Some(0),
            error: error.map(String::from),
            retryable: true,
            stdout_tail: stdout.into(),
            stderr_tail: stderr.into(),
            worker_id: String::new(),
            session: String::new(),
        }
    }

    #[test]
    fn tail_fits_or_keeps_last_bytes_after_the_marker() {
        assert_eq!(truncate_tail("", 10), "");
        assert_eq!(truncate_tail("abcdefghij", 10), "abcdefghij");
        assert_eq!(truncate_tail("abcdefghijk", 10), format!("{M}efghijk"));
        let limit = MAX_OUTPUT_TAIL_BYTES;
        let at_limit = "x".repeat(limit);
        assert_eq!(truncate_tail(&at_limit, limit), at_limit);
        let over = format!("y{at_limit}");
        let cut = truncate_tail(&over, limit);
        assert_eq!(cut.len(), limit);
        assert_eq!(cut, format!("{M}{}", &at_limit[..limit - M.len()]));
        let ten_times: String = (0..10 * limit).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let cut = truncate_tail(&ten_times, limit);
        assert_eq!(cut.len(), limit);
        assert!(cut.starts_with(M));
        assert!(ten_times.ends_with(&cut[M.len()..]));
    }

    #[test]
    fn tail_cut_mid_character_starts_on_the_next_one() {
        // "€" is 3 bytes: 10 of them are 30 bytes; 8 bytes of room after the marker cut the
        // third-last one, so only the last two (6 bytes) are kept.
        let euros = "€".repeat(10);
        assert_eq!(truncate_tail(&euros, 11), format!("{M}€€"));
        assert_eq!(truncate_tail(&euros, 12), format!("{M}€€€"));
        let emoji = format!("a{}", "🦀".repeat(5)); // 4-byte characters
        for max in 0..emoji.len() + 2 {
            let cut = truncate_tail(&emoji, max);
            assert!(cut.len() <= max, "{max}: {cut:?}");
            assert!(emoji.ends_with(cut.trim_start_matches(M)));
        }
    }

    #[test]
    fn tail_of_lossily_converted_bytes_fits() {
        // Each invalid byte becomes U+FFFD, 3 bytes: 4096 random-like bytes grow to 12 KiB.
        let bytes: Vec<u8> = (0..MAX_OUTPUT_TAIL_BYTES).map(|i| 0x80 | (i % 64) as u8).collect();
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        assert_eq!(lossy.len(), 3 * MAX_OUTPUT_TAIL_BYTES);
        let cut = truncate_tail(&lossy, MAX_OUTPUT_TAIL_BYTES);
        assert!(cut.len() <= MAX_OUTPUT_TAIL_BYTES);
        assert!(cut.len() > MAX_OUTPUT_TAIL_BYTES - 3);
        assert!(cut.starts_with(M));
        assert!(cut[M.len()..].chars().all(|c| c == '\u{fffd}'));
    }

    #[test]
    fn tiny_limits_have_no_room_for_the_marker() {
        assert_eq!(truncate_tail("hello", 0), "");
        assert_eq!(truncate_tail("hello", 2), "lo");
        assert_eq!(truncate_tail("hello", 3), M);
        assert_eq!(truncate_tail("hello", 4), format!("{M}o"));
        assert_eq!(truncate_error("hello", 0), "");
        assert_eq!(truncate_error("hello", 2), "he");
        assert_eq!(truncate_error("hello", 4), format!("h{M}"));
        assert_eq!(truncate_tail("€", 2), "");
        assert_eq!(truncate_error("€", 2), "");
    }

    #[test]
    fn error_keeps_its_start_with_the_marker_at_the_end() {
        assert_eq!(truncate_error("", 10), "");
        let limit = MAX_ERROR_BYTES;
        let at_limit = "e".repeat(limit);
        assert_eq!(truncate_error(&at_limit, limit), at_limit);
        let over = format!("{at_limit}!");
        let cut = truncate_error(&over, limit);
        assert_eq!(cut, format!("{}{M}", &at_limit[..limit - M.len()]));
        let ten_times = "why ".repeat(10 * limit / 4);
        let cut = truncate_error(&ten_times, limit);
        assert_eq!(cut.len(), limit);
        assert!(ten_times.starts_with(cut.trim_end_matches(M)));
        // Cut mid-character: "€" starts at byte 1, 8 bytes of room end inside the third one.
        assert_eq!(truncate_error(&format!("a{}", "€".repeat(10)), 11), format!("a€€{M}"));
        let lossy = String::from_utf8_lossy(&[0xff; 2000]).into_owned();
        let cut = truncate_error(&lossy, limit);
        assert!(cut.len() <= limit && cut.len() > limit - 3, "{}", cut.len());
    }

    #[test]
    fn report_is_cut_not_refused_and_cutting_twice_changes_nothing() {
        let long = "0123456789".repeat(10_000);
        let mut report = report_with(&long, &long, Some(&long));
        validate_report(&mut report).expect("an over-long report is accepted");
        assert_eq!(report.stdout_tail, truncate_tail(&long, MAX_OUTPUT_TAIL_BYTES));
        assert_eq!(report.stderr_tail.len(), MAX_OUTPUT_TAIL_BYTES);
        assert!(report.stdout_tail.ends_with("56789"));
        let error = report.error.clone().expect("error kept");
        assert_eq!(error.len(), MAX_ERROR_BYTES);
        assert!(error.starts_with("01234") && error.ends_with(M));
        let once = report.clone();
        validate_report(&mut report).expect("still valid");
        assert_eq!(report, once);
        let mut small = report_with("out", "", None);
        validate_report(&mut small).expect("valid");
        assert_eq!(small, report_with("out", "", None));
    }

    #[test]
    fn report_outcome_is_still_checked() {
        let mut report = report_with("", "", None);
        report.outcome = AttemptOutcome::Running;
        assert!(matches!(
            validate_report(&mut report),
            Err(StateError::InvalidArgument { field, .. }) if field == "outcome"
        ));
    }
}
