//! `raftsched worker`: run a worker, or list the cluster's workers.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use clap::Subcommand;
use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;
use raftsched_client::worker::Worker;
use raftsched_client::worker::WorkerOptions;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::cli::output;
use crate::cli::parse_pair;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WorkerArgs {
    #[command(subcommand)]
    command: Option<WorkerCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum WorkerCommand {
    /// Every registered worker: slots in use, labels, last heartbeat.
    List,
}

/// Run a worker until SIGINT or SIGTERM, then drain.
#[derive(Args, Debug)]
struct RunArgs {
    /// Stable worker id (default: hostname-pid).
    #[arg(long)]
    id: Option<String>,
    /// Attempts run at once.
    #[arg(long, default_value_t = 4)]
    slots: u32,
    /// KEY=VALUE, repeatable; tasks can require labels.
    #[arg(long = "label", value_parser = parse_pair)]
    labels: Vec<(String, String)>,
    /// CPU this worker offers, in thousandths of a core (0: none declared).
    #[arg(long, default_value_t = 0)]
    cpu_millis: u32,
    /// Memory this worker offers, in MiB (0: none declared).
    #[arg(long, default_value_t = 0)]
    memory_mb: u32,
    /// Without a heartbeat for this long, the leader voids this worker's attempts.
    #[arg(long, default_value_t = 5000)]
    lease_ms: u64,
    /// On shutdown, how long running attempts may take before they are handed back.
    #[arg(long, default_value_t = 30_000)]
    drain_timeout_ms: u64,
}

impl WorkerArgs {
    /// True when this runs a worker (rather than listing workers).
    pub fn is_run(&self) -> bool {
        self.command.is_none()
    }
}

pub async fn run(args: WorkerArgs, client: &ClusterClient, json: bool) -> anyhow::Result<()> {
    match args.command {
        Some(WorkerCommand::List) => list(client, json).await,
        None => run_worker(args.run, client).await,
    }
}

async fn run_worker(args: RunArgs, client: &ClusterClient) -> anyhow::Result<()> {
    let id = args.id.unwrap_or_else(default_worker_id);
    let options = WorkerOptions {
        labels: args.labels.into_iter().collect::<BTreeMap<_, _>>(),
        resources: api::Resources {
            cpu_millis: args.cpu_millis,
            memory_mb: args.memory_mb,
        },
        lease_ms: args.lease_ms,
        drain_timeout: Duration::from_millis(args.drain_timeout_ms),
        ..WorkerOptions::new(id.clone(), args.slots)
    };
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::cli::wait_for_stop_signal().await {
            tracing::warn!("{e}");
        }
        tracing::info!("stop signal received: draining");
        on_signal.cancel();
    });
    tracing::info!(worker = %id, "worker starting");
    Worker::new(client.clone(), options).run(shutdown).await?;
    tracing::info!(worker = %id, "worker stopped");
    Ok(())
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "worker".into());
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    format!(
        "{}-{}",
        if host.is_empty() { "worker" } else { &host },
        std::process::id()
    )
}

/// Every worker, page by page (a page holds about 3 MiB of them).
async fn list_all(client: &ClusterClient) -> anyhow::Result<api::ListWorkersResponse> {
    let mut all = api::ListWorkersResponse::default();
    loop {
        let request = api::ListWorkersRequest {
            page_token: all.next_page_token.clone(),
        };
        let page = client
            .call_workers(|mut workers| {
                let request = request.clone();
                async move { workers.list_workers(request).await }
            })
            .await
            .context("listing workers")?;
        all.workers.extend(page.workers);
        if page.next_page_token.is_empty() || page.next_page_token == request.page_token {
            all.next_page_token.clear();
            return Ok(all);
        }
        all.next_page_token = page.next_page_token;
    }
}

async fn list(client: &ClusterClient, json: bool) -> anyhow::Result<()> {
    let response = list_all(client).await?;
    if json {
        let workers: Vec<_> = response
            .workers
            .iter()
            .map(|w| {
                json!({
                    "worker_id": w.worker_id,
                    "slots": w.slots,
                    "running": w.running,
                    "labels": w.labels,
                    "draining": w.draining,
                    "connected": w.connected,
                    "last_heartbeat_age_ms": w.last_heartbeat_age_ms,
                })
            })
            .collect();
        output::print_json(&json!({ "workers": workers }));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = response
        .workers
        .iter()
        .map(|w| {
            let mut labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            vec![
                w.worker_id.clone(),
                format!("{}/{}", w.running, w.slots),
                if w.draining {
                    "draining"
                } else if w.connected {
                    "connected"
                } else {
                    "away"
                }
                .to_string(),
                format!("{} ms ago", w.last_heartbeat_age_ms),
                labels.join(","),
            ]
        })
        .collect();
    output::print_table(&["WORKER", "BUSY", "STATE", "HEARD", "LABELS"], &rows);
    Ok(())
}
