//! `raftsched task ...`: submit, get, list and cancel tasks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::Context;
use anyhow::bail;
use clap::Args;
use clap::Subcommand;
use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;

use crate::cli::output;
use crate::cli::parse_pair;

#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Submit a task: a command line after `--`, or opaque data with --kind.
    Submit(Box<SubmitArgs>),
    /// Show one task.
    Get {
        id: u64,
        /// Read this node's state without confirming with a quorum (fast, maybe behind).
        #[arg(long)]
        stale: bool,
    },
    /// List tasks, newest first.
    List(ListArgs),
    /// Follow a task live: a line per change of state or attempt, until it finishes (exit
    /// non-zero unless it succeeded). With --json, one JSON object per line (JSON Lines).
    Watch { id: u64 },
    /// Cancel a task that has not finished.
    Cancel {
        id: u64,
        #[arg(long, default_value = "cancelled from the CLI")]
        reason: String,
    },
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// pending, running, succeeded, failed, cancelled, waiting or skipped.
    #[arg(long)]
    state: Option<String>,
    #[arg(long)]
    queue: Option<String>,
    /// Only tasks whose name contains this text (case-sensitive).
    #[arg(long)]
    name: Option<String>,
    /// Only the task submitted with this client request id.
    #[arg(long)]
    request_id: Option<String>,
    /// Only tasks created since then: a time ago (`90s`, `10m`, `2h`, `7d`) or an RFC 3339
    /// time (`2026-01-02T03:04:05Z`).
    #[arg(long, value_parser = parse_since_now)]
    since: Option<u64>,
    /// In creation order, oldest first, instead of newest first.
    #[arg(long)]
    oldest_first: bool,
    /// At most this many tasks.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[arg(long)]
    stale: bool,
}

#[derive(Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub task: TaskArgs,
    /// Fan out: one shard per registered worker matching the --constraint labels (all
    /// workers without any), each pinned to its worker.
    #[arg(long, conflicts_with = "shards")]
    broadcast: bool,
    /// Split into N shards placed like any task. Each shard gets RAFTSCHED_SHARD_INDEX and
    /// RAFTSCHED_SHARD_TOTAL; the parent finishes when all shards did.
    #[arg(long)]
    shards: Option<u32>,
    /// Wait until the task finishes, print its outcome, and exit non-zero unless it succeeded.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up waiting after this long (the task goes on).
    #[arg(long, default_value = "10m", value_parser = super::duration::millis)]
    wait_timeout_ms: u64,
}

/// What a task runs and how: shared by `task submit`, `schedule create` and `schedule update`.
#[derive(Args, Debug)]
pub struct TaskArgs {
    /// Task name (default: the command line, or the kind; for a schedule, its name).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, default_value = "default")]
    queue: String,
    /// Higher runs first.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    priority: i32,
    /// KEY=VALUE, repeatable.
    #[arg(long = "label", value_parser = parse_pair)]
    labels: Vec<(String, String)>,
    /// Environment for the command, KEY=VALUE, repeatable.
    #[arg(long = "env", value_parser = parse_pair)]
    env: Vec<(String, String)>,
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// Per-attempt timeout: 100ms to 7d (500ms, 30s, 1h; a bare number is milliseconds).
    #[arg(long, default_value = "1h", value_parser = super::duration::millis)]
    timeout_ms: u64,
    /// Idempotency key: resubmitting with the same id returns the same task (default: random).
    #[arg(long)]
    request_id: Option<String>,
    /// Handler kind for an opaque payload (instead of a command line).
    #[arg(long, conflicts_with = "command")]
    kind: Option<String>,
    /// Opaque payload as text (with --kind).
    #[arg(long, requires = "kind", conflicts_with = "data_file")]
    data: Option<String>,
    /// Opaque payload from a file (with --kind).
    #[arg(long, requires = "kind")]
    data_file: Option<PathBuf>,
    /// Worker label the task requires, KEY=VALUE, repeatable.
    #[arg(long = "constraint", value_parser = parse_pair)]
    constraints: Vec<(String, String)>,
    /// CPU one attempt claims on its worker, in thousandths of a core.
    #[arg(long, default_value_t = 0)]
    cpu_millis: u32,
    /// Memory one attempt claims on its worker, in MiB.
    #[arg(long, default_value_t = 0)]
    memory_mb: u32,
    /// Key for consistent-hash placement (default: the name).
    #[arg(long)]
    affinity_key: Option<String>,
    /// First retry delay (200ms, 5s; a bare number is milliseconds); doubles per failed
    /// attempt, capped at 100x.
    #[arg(long, default_value = "1s", value_parser = super::duration::millis)]
    retry_backoff_ms: u64,
    /// Run no earlier than this long after the cluster accepts it (30s, 2h, 1d).
    #[arg(long, default_value = "0s", conflicts_with = "run_at_ms", value_parser = super::duration::millis)]
    delay_ms: u64,
    /// Run no earlier than this time (milliseconds since the Unix epoch).
    #[arg(long, default_value_t = 0)]
    run_at_ms: u64,
    /// The W3C trace context the task joins (00-<trace id>-<parent id>-<flags>); by
    /// default TRACEPARENT's, as a traced script or a task's own command has it. The worker
    /// hands the task its run's context as TRACEPARENT.
    #[arg(long, env = "TRACEPARENT")]
    trace_parent: Option<String>,
    /// The command line to run, after `--`.
    #[arg(last = true)]
    command: Vec<String>,
}

impl TaskArgs {
    pub fn into_spec(self) -> anyhow::Result<api::TaskSpec> {
        let (payload, default_name) = match (&self.kind, self.command.is_empty()) {
            (Some(kind), _) => {
                let data = match (&self.data, &self.data_file) {
                    (_, Some(path)) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
                    (Some(text), None) => text.clone().into_bytes(),
                    (None, None) => Vec::new(),
                };
                let opaque = api::OpaquePayload {
                    kind: kind.clone(),
                    data,
                };
                (api::task_spec::Payload::Opaque(opaque), kind.clone())
            }
            (None, false) => {
                // One argument is a command line as typed; several are an argv, quoted so the
                // worker's `sh -c` sees the same words.
                let command_line = match self.command.as_slice() {
                    [line] => line.clone(),
                    argv => shlex::try_join(argv.iter().map(String::as_str))
                        .context("a command argument contains a NUL byte")?,
                };
                let env: HashMap<String, String> = self.env.iter().cloned().collect();
                let name = command_line.chars().take(64).collect();
                (
                    api::task_spec::Payload::Command(api::CommandPayload { command_line, env }),
                    name,
                )
            }
            (None, true) => bail!("nothing to run: give a command after `--`, or --kind with --data"),
        };
        Ok(api::TaskSpec {
            namespace: String::new(),
            name: self.name.unwrap_or(default_name),
            queue: self.queue,
            priority: self.priority,
            payload: Some(payload),
            labels: self.labels.into_iter().collect(),
            max_attempts: self.max_attempts,
            attempt_timeout_ms: self.timeout_ms,
            client_request_id: self.request_id.unwrap_or_default(),
            constraints: self.constraints.into_iter().collect(),
            resources: Some(api::Resources {
                cpu_millis: self.cpu_millis,
                memory_mb: self.memory_mb,
            }),
            affinity_key: self.affinity_key.unwrap_or_default(),
            retry_backoff_ms: self.retry_backoff_ms,
            run_at_ms: self.run_at_ms,
            delay_ms: self.delay_ms,
            trace_parent: self.trace_parent.unwrap_or_default(),
        })
    }
}

pub fn consistency(stale: bool) -> api::Consistency {
    if stale {
        api::Consistency::Stale
    } else {
        api::Consistency::Linearizable
    }
}

pub async fn run(command: TaskCommand, client: &ClusterClient, json: bool) -> anyhow::Result<()> {
    match command {
        TaskCommand::Submit(args) => submit(*args, client, json).await,
        TaskCommand::Get { id, stale } => {
            let task = client.get_task(id, consistency(stale)).await?;
            if json {
                output::print_json(&output::json_of(&task));
            } else {
                output::print_task_details(&task);
            }
            Ok(())
        }
        TaskCommand::List(args) => list(client, args, json).await,
        TaskCommand::Watch { id } => watch(client, id, json).await,
        TaskCommand::Cancel { id, reason } => {
            let task = client.cancel_task(id, &reason).await?;
            if json {
                let answer = api::CancelTaskResponse { task: Some(task) };
                output::print_json(&output::json_of(&answer));
            } else {
                println!("task {} {}", task.id, output::state_name(task.state));
            }
            Ok(())
        }
    }
}

/// How often `task watch` looks: a change shows within this, and a watcher costs its node
/// four linearizable reads a second at most.
const WATCH_POLL: Duration = Duration::from_millis(250);

/// What `task watch` prints a line for when it changes: the state, and the latest attempt's
/// number, worker and outcome.
fn watched(task: &api::Task) -> (i32, Option<(u32, String, i32)>) {
    let attempt = task.attempts.last().map(|a| (a.number, a.worker_id.clone(), a.outcome));
    (task.state, attempt)
}

/// `(why it waits)` after `separator`, for a task that says why it is not running; else
/// nothing.
fn pending_note(task: &api::Task, separator: &str) -> String {
    if task.pending_reason.is_empty() {
        String::new()
    } else {
        format!("{separator}({})", task.pending_reason)
    }
}

/// Listens for Ctrl-C from now on: created before anything says "Ctrl-C stops...", so a
/// Ctrl-C right after is ours to handle instead of killing the process.
fn listen_for_ctrl_c() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).context("listening for Ctrl-C")
}

fn is_finished(state: i32) -> bool {
    matches!(
        api::TaskState::try_from(state),
        Ok(api::TaskState::Succeeded | api::TaskState::Failed | api::TaskState::Cancelled | api::TaskState::Skipped)
    )
}

async fn watch(client: &ClusterClient, task_id: u64, json: bool) -> anyhow::Result<()> {
    let mut interrupt = listen_for_ctrl_c()?;
    let mut last = None;
    loop {
        let task = client.get_task(task_id, api::Consistency::Linearizable).await?;
        let now = watched(&task);
        if last.as_ref() != Some(&now) {
            print_watched(&task, json);
            last = Some(now);
        }
        if is_finished(task.state) {
            if task.state != api::TaskState::Succeeded as i32 {
                bail!("task {task_id} {}", output::state_name(task.state));
            }
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(WATCH_POLL) => {}
            _ = interrupt.recv() => bail!("stopped watching; task {task_id} goes on"),
        }
    }
}

fn print_watched(task: &api::Task, json: bool) {
    use std::io::Write;
    let line = if json {
        match output::format() {
            // A YAML document per change.
            output::Format::Yaml => format!("---\n{}", output::render(&output::json_of(task), output::Format::Yaml))
                .trim_end()
                .to_string(),
            _ => output::json_of(task).to_string(),
        }
    } else {
        let attempt = task.attempts.last().map_or(String::new(), |a| {
            let worker = if a.worker_id.is_empty() {
                "-"
            } else {
                a.worker_id.as_str()
            };
            format!(
                "  attempt {} on {worker}: {}",
                a.number,
                output::outcome_name(a.outcome)
            )
        });
        format!(
            "{}  task {}  {}{attempt}{}",
            output::format_time_ms(task.updated_at_ms),
            task.id,
            output::state_name(task.state),
            pending_note(task, "  ")
        )
    };
    let mut stdout = std::io::stdout().lock();
    // Flushed per line: a watcher piped into another tool sees each change as it happens.
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

async fn submit(args: SubmitArgs, client: &ClusterClient, json: bool) -> anyhow::Result<()> {
    let (wait, wait_timeout) = (args.wait, Duration::from_millis(args.wait_timeout_ms));
    let fan_out = match (args.broadcast, args.shards) {
        (true, _) => Some(0),
        (false, Some(0)) => bail!("--shards must be at least 1"),
        (false, shards) => shards,
    };
    let spec = args.task.into_spec()?;
    let response = match fan_out {
        Some(shards) => client.submit_broadcast(spec, shards).await?,
        None => client.submit_task(spec).await?,
    };
    let task = response.task.clone().context("the cluster answered without a task")?;
    if wait {
        return wait_for_outcome(client, task.id, wait_timeout, json).await;
    }
    if json {
        output::print_json(&output::json_of(&response));
    } else if response.created {
        println!("submitted task {}", task.id);
    } else {
        println!("task {} already exists for this request id", task.id);
    }
    Ok(())
}

/// Polls the task until it finishes; succeeds only if the task did.
pub async fn wait_for_outcome(
    client: &ClusterClient,
    task_id: u64,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<()> {
    let mut interrupt = listen_for_ctrl_c()?;
    // On stderr, so stdout stays the outcome (a table, or one JSON document).
    eprintln!("submitted task {task_id}; waiting for it to finish (Ctrl-C stops the waiting, not the task)");
    let started = Instant::now();
    let mut poll = Duration::from_millis(50);
    let task = loop {
        let task = client.get_task(task_id, api::Consistency::Linearizable).await?;
        if is_finished(task.state) {
            break task;
        }
        if started.elapsed() >= timeout {
            bail!(
                "task {task_id} is still {}{} after {}; it goes on: follow it with `raftsched task get {task_id}`",
                output::state_name(task.state),
                pending_note(&task, " "),
                humantime::format_duration(timeout)
            );
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            _ = interrupt.recv() => bail!(
                "stopped waiting; task {task_id} keeps running: follow it with `raftsched task get {task_id}`, \
                 stop it with `raftsched task cancel {task_id}`"
            ),
        }
        poll = (poll * 2).min(Duration::from_millis(500));
    };
    if json {
        output::print_json(&output::json_of(&task));
    } else {
        output::print_task_details(&task);
    }
    if task.state != api::TaskState::Succeeded as i32 {
        bail!("task {task_id} {}", output::state_name(task.state));
    }
    Ok(())
}

async fn list(client: &ClusterClient, args: ListArgs, json: bool) -> anyhow::Result<()> {
    let ListArgs {
        state,
        queue,
        name,
        request_id,
        since,
        oldest_first,
        limit,
        stale,
    } = args;
    let state = match state.as_deref() {
        None => api::TaskState::Unspecified,
        Some(name) => api::TaskState::from_str_name(&format!("TASK_STATE_{}", name.to_uppercase()))
            .filter(|s| *s != api::TaskState::Unspecified)
            .with_context(|| {
                format!(
                    "unknown state {name:?}: use pending, running, succeeded, failed, cancelled, waiting or skipped"
                )
            })?,
    };
    let mut tasks = Vec::new();
    let mut page_token = String::new();
    while tasks.len() < limit {
        let request = api::ListTasksRequest {
            namespace: client.namespace().to_string(),
            state: state as i32,
            queue: queue.clone().unwrap_or_default(),
            page_size: (limit - tasks.len()).min(1000) as u32,
            page_token: page_token.clone(),
            consistency: consistency(stale) as i32,
            since_ms: since.unwrap_or(0),
            oldest_first,
            name_contains: name.clone().unwrap_or_default(),
            client_request_id: request_id.clone().unwrap_or_default(),
        };
        let response = client.list_tasks(request).await?;
        tasks.extend(response.tasks);
        page_token = response.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    if json {
        let listed = api::ListTasksResponse {
            tasks,
            // Where a listing past --limit would go on; empty when every task was listed.
            next_page_token: page_token,
        };
        output::print_json(&output::json_of(&listed));
    } else {
        let rows: Vec<Vec<String>> = tasks.iter().map(output::task_row).collect();
        output::print_table(&output::TASK_HEADER, &rows);
    }
    Ok(())
}

/// `--since` against this machine's clock.
fn parse_since_now(text: &str) -> Result<u64, String> {
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    parse_since(text, now_ms)
}

/// The time `--since` names, in milliseconds since the Unix epoch: `now_ms` less a duration
/// (a number and one of s, m, h, d), or an RFC 3339 time.
fn parse_since(text: &str, now_ms: u64) -> Result<u64, String> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return u64::try_from(time.timestamp_millis()).map_err(|_| format!("{text:?} is before 1970"));
    }
    let unit_at = text.len().saturating_sub(1);
    let (digits, unit) = text.split_at(unit_at);
    let unit_ms: u64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(since_help(text)),
    };
    let count: u64 = digits.parse().map_err(|_| since_help(text))?;
    Ok(now_ms.saturating_sub(count.saturating_mul(unit_ms)))
}

fn since_help(text: &str) -> String {
    format!("{text:?} is neither a time ago like 90s, 10m, 2h or 7d nor an RFC 3339 time like 2026-01-02T03:04:05Z")
}

#[cfg(test)]
mod since_tests {
    use super::parse_since;

    #[test]
    fn durations_count_back_from_now() {
        let now = 10 * 86_400_000;
        assert_eq!(parse_since("90s", now), Ok(now - 90_000));
        assert_eq!(parse_since("10m", now), Ok(now - 600_000));
        assert_eq!(parse_since("2h", now), Ok(now - 7_200_000));
        assert_eq!(parse_since("7d", now), Ok(now - 7 * 86_400_000));
        assert_eq!(parse_since("0s", now), Ok(now));
        assert_eq!(parse_since("99999d", now), Ok(0), "saturates at the epoch");
    }

    #[test]
    fn rfc3339_times_are_absolute() {
        assert_eq!(parse_since("1970-01-01T00:00:01Z", 5), Ok(1000));
        assert_eq!(parse_since("2026-01-02T03:04:05+01:00", 0), Ok(1_767_319_445_000));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", "m", "10", "10w", "-5m", "1.5h", "yesterday", "1969-12-31T23:59:59Z"] {
            assert!(parse_since(bad, 1000).is_err(), "{bad:?}");
        }
    }
}
