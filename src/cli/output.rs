//! Human tables and JSON for what the CLI prints.

use raftsched_api::v1 as api;
use serde_json::Value;

pub use raftsched_client::output::print_table;

/// How the CLI prints results (`-o`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Yaml,
}

static FORMAT: std::sync::OnceLock<Format> = std::sync::OnceLock::new();

/// Set once, before a command prints anything.
pub fn set_format(format: Format) {
    let _ = FORMAT.set(format);
}

pub fn format() -> Format {
    FORMAT.get().copied().unwrap_or(Format::Json)
}

/// Prints a machine-readable result in the chosen format: JSON pretty-printed, YAML, or
/// JSON Lines, where a list (an object whose one array field holds the items, such as
/// `{"tasks": [...], "nextPageToken": ""}`) is a line per item, as Temporal's `-o jsonl`.
pub fn print_json(value: &Value) {
    print!("{}", render(value, format()));
}

/// `value` as `format` writes it, ending in a newline.
pub fn render(value: &Value, format: Format) -> String {
    match format {
        Format::Table | Format::Json => {
            format!("{}\n", serde_json::to_string_pretty(value).unwrap_or_default())
        }
        Format::Yaml => serde_yaml_ng::to_string(value).unwrap_or_default(),
        Format::Jsonl => {
            let items = value.as_object().and_then(|object| {
                let mut arrays = object.values().filter_map(Value::as_array);
                let items = arrays.next()?;
                arrays.next().is_none().then_some(items)
            });
            match items {
                Some(items) => items.iter().map(|item| format!("{item}\n")).collect(),
                None => format!("{value}\n"),
            }
        }
    }
}

/// `2026-11-27T16:48:09.123Z`, or `-` for 0.
pub fn format_time_ms(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

pub fn state_name(state: i32) -> &'static str {
    match api::TaskState::try_from(state) {
        Ok(api::TaskState::Pending) => "pending",
        Ok(api::TaskState::Running) => "running",
        Ok(api::TaskState::Succeeded) => "succeeded",
        Ok(api::TaskState::Failed) => "failed",
        Ok(api::TaskState::Cancelled) => "cancelled",
        Ok(api::TaskState::Waiting) => "waiting",
        Ok(api::TaskState::Skipped) => "skipped",
        _ => "unknown",
    }
}

fn payload_summary(spec: &api::TaskSpec) -> String {
    match &spec.payload {
        Some(api::task_spec::Payload::Command(command)) => command.command_line.clone(),
        Some(api::task_spec::Payload::Opaque(opaque)) => format!("<{} bytes of {}>", opaque.data.len(), opaque.kind),
        None => String::new(),
    }
}

/// `message` in the proto3 JSON mapping of the API (pbjson): lowerCamelCase names, 64-bit
/// integers as strings, enums by name, every field present. The JSON the CLI prints is
/// always a message of the API, so it reads like the console's `/api/v1` answers.
pub fn json_of<T: serde::Serialize>(message: &T) -> Value {
    // pbjson's impls write no map with non-string keys, the one thing serde_json refuses.
    serde_json::to_value(message).unwrap_or(Value::Null)
}

pub fn outcome_name(outcome: i32) -> &'static str {
    match api::AttemptOutcome::try_from(outcome) {
        Ok(api::AttemptOutcome::Running) => "running",
        Ok(api::AttemptOutcome::Succeeded) => "succeeded",
        Ok(api::AttemptOutcome::Failed) => "failed",
        Ok(api::AttemptOutcome::TimedOut) => "timed-out",
        Ok(api::AttemptOutcome::LeaseExpired) => "lease-expired",
        Ok(api::AttemptOutcome::Cancelled) => "cancelled",
        Ok(api::AttemptOutcome::HandedBack) => "handed-back",
        Ok(api::AttemptOutcome::WorkerRestarted) => "worker-restarted",
        _ => "unknown",
    }
}

pub fn task_row(task: &api::Task) -> Vec<String> {
    let spec = task.spec.clone().unwrap_or_default();
    vec![
        task.id.to_string(),
        state_name(task.state).to_string(),
        spec.queue,
        spec.priority.to_string(),
        spec.name,
        format_time_ms(task.created_at_ms),
    ]
}

pub const TASK_HEADER: [&str; 6] = ["ID", "STATE", "QUEUE", "PRIO", "NAME", "CREATED"];

/// One task, field by field.
pub fn print_task_details(task: &api::Task) {
    let spec = task.spec.clone().unwrap_or_default();
    let labels: Vec<String> = spec.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let rows = [
        ("id", task.id.to_string()),
        ("state", state_name(task.state).to_string()),
        ("name", spec.name.clone()),
        ("queue", spec.queue.clone()),
        ("priority", spec.priority.to_string()),
        ("payload", payload_summary(&spec)),
        ("labels", labels.join(",")),
        ("max attempts", spec.max_attempts.to_string()),
        ("attempt timeout", format!("{} ms", spec.attempt_timeout_ms)),
        ("request id", spec.client_request_id.clone()),
        ("created", format_time_ms(task.created_at_ms)),
        ("updated", format_time_ms(task.updated_at_ms)),
        ("ready at", format_time_ms(task.ready_at_ms)),
        ("reason", task.reason.clone()),
        ("waiting because", task.pending_reason.clone()),
        ("origin", task.origin.clone()),
        (
            "shard",
            if task.shard_total > 0 {
                format!(
                    "{} of {} (parent task {})",
                    task.shard_index, task.shard_total, task.parent_task_id
                )
            } else {
                String::new()
            },
        ),
        (
            "workflow",
            if task.workflow_id > 0 {
                task.workflow_id.to_string()
            } else {
                String::new()
            },
        ),
        ("runs after", join_ids(&task.depends_on)),
        ("then runs", join_ids(&task.dependents)),
    ];
    for (field, value) in rows {
        if !value.is_empty() {
            println!("{field:<16} {value}");
        }
    }
    if !task.shards.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = task
            .shards
            .iter()
            .map(|s| {
                vec![
                    s.index.to_string(),
                    s.task_id.to_string(),
                    state_name(s.state).to_string(),
                    s.worker_id.clone(),
                    if s.has_exit_code {
                        s.exit_code.to_string()
                    } else {
                        "-".into()
                    },
                    s.reason.clone(),
                ]
            })
            .collect();
        print_table(&["SHARD", "TASK", "STATE", "WORKER", "EXIT", "REASON"], &rows);
    }
    if task.attempts.is_empty() {
        return;
    }
    println!();
    let attempt_rows: Vec<Vec<String>> = task
        .attempts
        .iter()
        .map(|a| {
            vec![
                a.number.to_string(),
                a.worker_id.clone(),
                a.token.to_string(),
                outcome_name(a.outcome).to_string(),
                format_time_ms(a.started_at_ms),
                format_time_ms(a.ended_at_ms),
                if a.has_exit_code {
                    a.exit_code.to_string()
                } else {
                    "-".into()
                },
                a.error.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "ATTEMPT", "WORKER", "TOKEN", "OUTCOME", "STARTED", "ENDED", "EXIT", "ERROR",
        ],
        &attempt_rows,
    );
    if let Some(last) = task.attempts.last() {
        for (name, tail) in [("stdout", &last.stdout_tail), ("stderr", &last.stderr_tail)] {
            if !tail.is_empty() {
                println!("\n--- {name} (last attempt) ---\n{}", tail.trim_end());
            }
        }
    }
}

fn join_ids(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_format_renders_a_list_and_a_message() {
        let list = json!({"tasks": [{"id": "1"}, {"id": "2"}], "nextPageToken": ""});
        assert_eq!(
            render(&list, Format::Jsonl),
            "{\"id\":\"1\"}\n{\"id\":\"2\"}\n",
            "a line per item"
        );
        let one = json!({"task": {"id": "3"}, "created": true});
        assert_eq!(
            render(&one, Format::Jsonl),
            "{\"created\":true,\"task\":{\"id\":\"3\"}}\n"
        );
        let two_lists = json!({"a": [1], "b": [2]});
        assert_eq!(
            render(&two_lists, Format::Jsonl).lines().count(),
            1,
            "not a list: one line"
        );
        let yaml: Value = serde_yaml_ng::from_str(&render(&list, Format::Yaml)).unwrap();
        assert_eq!(yaml, list, "YAML reads back as the same value");
        let pretty: Value = serde_json::from_str(&render(&one, Format::Json)).unwrap();
        assert_eq!(pretty, one);
        assert_eq!(
            render(&json!({"tasks": []}), Format::Jsonl),
            "",
            "an empty list prints nothing"
        );
    }
}
