//! `raftsched workflow ...`: a DAG of tasks submitted in one log entry, and its state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use anyhow::bail;
use clap::Subcommand;
use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;
use serde::Deserialize;
use tokio::time::Instant;

use crate::cli::output;
use crate::cli::task_cmd::consistency;

#[derive(Subcommand, Debug)]
pub enum WorkflowCommand {
    /// Submit a workflow from a JSON or TOML file (see `WorkflowFile`):
    /// `name = "build"` and `[[tasks]]` with `key`, `command` and `after = ["parent", ...]`.
    Submit {
        #[arg(long)]
        file: PathBuf,
        /// Idempotency key: resubmitting with the same id returns the same workflow.
        #[arg(long)]
        request_id: Option<String>,
        /// Wait until every task finished; exit non-zero unless the workflow succeeded.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value = "10m", value_parser = super::duration::millis)]
        wait_timeout_ms: u64,
    },
    /// A workflow's overall state and each task's.
    Get {
        id: u64,
        #[arg(long)]
        stale: bool,
    },
}

/// A workflow file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowFile {
    name: String,
    tasks: Vec<WorkflowFileTask>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowFileTask {
    key: String,
    /// A shell command line; or `kind` (+ `data`) for a handler.
    command: Option<String>,
    kind: Option<String>,
    data: Option<String>,
    #[serde(default)]
    after: Vec<String>,
    name: Option<String>,
    queue: Option<String>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    constraints: BTreeMap<String, String>,
    #[serde(default)]
    max_attempts: u32,
    #[serde(default)]
    timeout_ms: u64,
    #[serde(default)]
    retry_backoff_ms: u64,
    #[serde(default)]
    delay_ms: u64,
}

impl WorkflowFileTask {
    fn into_proto(self) -> anyhow::Result<api::WorkflowTaskSpec> {
        let payload = match (self.command, self.kind) {
            (Some(command_line), None) => api::task_spec::Payload::Command(api::CommandPayload {
                command_line,
                env: self.env.into_iter().collect(),
            }),
            (None, Some(kind)) => api::task_spec::Payload::Opaque(api::OpaquePayload {
                kind,
                data: self.data.unwrap_or_default().into_bytes(),
            }),
            _ => bail!("workflow task {:?}: give exactly one of `command` and `kind`", self.key),
        };
        let spec = api::TaskSpec {
            name: self.name.unwrap_or_else(|| self.key.clone()),
            queue: self.queue.unwrap_or_default(),
            priority: self.priority,
            payload: Some(payload),
            labels: self.labels.into_iter().collect(),
            max_attempts: self.max_attempts,
            attempt_timeout_ms: self.timeout_ms,
            constraints: self.constraints.into_iter().collect(),
            retry_backoff_ms: self.retry_backoff_ms,
            delay_ms: self.delay_ms,
            ..api::TaskSpec::default()
        };
        Ok(api::WorkflowTaskSpec {
            key: self.key,
            spec: Some(spec),
            after: self.after,
        })
    }
}

fn read_file(path: &PathBuf) -> anyhow::Result<WorkflowFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_toml = path.extension().is_some_and(|e| e == "toml");
    if is_toml {
        toml::from_str(&text).with_context(|| format!("parsing {} as TOML", path.display()))
    } else {
        serde_json::from_str(&text).with_context(|| format!("parsing {} as JSON", path.display()))
    }
}

pub async fn run(command: WorkflowCommand, client: &ClusterClient, json: bool) -> anyhow::Result<()> {
    match command {
        WorkflowCommand::Submit {
            file,
            request_id,
            wait,
            wait_timeout_ms,
        } => {
            let workflow = read_file(&file)?;
            let tasks = workflow
                .tasks
                .into_iter()
                .map(WorkflowFileTask::into_proto)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let request = api::SubmitWorkflowRequest {
                namespace: client.namespace().to_string(),
                name: workflow.name,
                tasks,
                request_id: request_id.unwrap_or_default(),
            };
            let response = client.submit_workflow(request).await?;
            let mut workflow = response.workflow.context("the cluster answered without a workflow")?;
            if !response.next_page_token.is_empty() {
                // Big tasks: the answer held the first ~3 MiB of them; fetch them all.
                workflow = client.get_workflow(workflow.id, api::Consistency::Linearizable).await?;
            }
            if wait {
                return wait_for_workflow(client, workflow.id, Duration::from_millis(wait_timeout_ms), json).await;
            }
            if json {
                let answer = api::WorkflowResponse {
                    workflow: Some(workflow),
                    created: response.created,
                    next_page_token: String::new(),
                };
                output::print_json(&output::json_of(&answer));
            } else if response.created {
                println!("submitted workflow {} ({} tasks)", workflow.id, workflow.task_count);
            } else {
                println!("workflow {} already exists for this request id", workflow.id);
            }
            Ok(())
        }
        WorkflowCommand::Get { id, stale } => {
            let workflow = client.get_workflow(id, consistency(stale)).await?;
            if json {
                output::print_json(&output::json_of(&workflow));
            } else {
                print_workflow(&workflow);
            }
            Ok(())
        }
    }
}

fn workflow_state_name(state: i32) -> &'static str {
    match api::WorkflowState::try_from(state) {
        Ok(api::WorkflowState::Pending) => "pending",
        Ok(api::WorkflowState::Running) => "running",
        Ok(api::WorkflowState::Succeeded) => "succeeded",
        Ok(api::WorkflowState::Failed) => "failed",
        _ => "unknown",
    }
}

async fn wait_for_workflow(client: &ClusterClient, id: u64, timeout: Duration, json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut poll = Duration::from_millis(50);
    let workflow = loop {
        let workflow = client.get_workflow(id, api::Consistency::Linearizable).await?;
        let done = matches!(
            api::WorkflowState::try_from(workflow.state),
            Ok(api::WorkflowState::Succeeded | api::WorkflowState::Failed)
        );
        if done {
            break workflow;
        }
        if started.elapsed() >= timeout {
            bail!(
                "workflow {id} is still {} after {timeout:?}",
                workflow_state_name(workflow.state)
            );
        }
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(Duration::from_millis(500));
    };
    if json {
        output::print_json(&output::json_of(&workflow));
    } else {
        print_workflow(&workflow);
    }
    if workflow.state != api::WorkflowState::Succeeded as i32 {
        bail!("workflow {id} {}", workflow_state_name(workflow.state));
    }
    Ok(())
}

fn print_workflow(workflow: &api::Workflow) {
    println!("{:<16} {}", "workflow", workflow.id);
    println!("{:<16} {}", "name", workflow.name);
    println!("{:<16} {}", "state", workflow_state_name(workflow.state));
    println!("{:<16} {}", "created", output::format_time_ms(workflow.created_at_ms));
    println!();
    let key_of: BTreeMap<u64, &str> = workflow
        .tasks
        .iter()
        .filter_map(|t| Some((t.task.as_ref()?.id, t.key.as_str())))
        .collect();
    let rows: Vec<Vec<String>> = workflow
        .tasks
        .iter()
        .map(|t| {
            let task = t.task.clone().unwrap_or_default();
            let after: Vec<&str> = task
                .depends_on
                .iter()
                .map(|id| key_of.get(id).copied().unwrap_or("?"))
                .collect();
            let exit = task
                .attempts
                .last()
                .filter(|a| a.has_exit_code)
                .map_or("-".to_string(), |a| a.exit_code.to_string());
            vec![
                t.key.clone(),
                task.id.to_string(),
                output::state_name(task.state).to_string(),
                after.join(","),
                exit,
                task.reason.clone(),
            ]
        })
        .collect();
    output::print_table(&["KEY", "TASK", "STATE", "AFTER", "EXIT", "REASON"], &rows);
}
