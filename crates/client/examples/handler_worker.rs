//! A worker that runs Rust handlers for opaque task kinds, next to shell commands.
//!
//! With a cluster running (`scripts/cluster.sh start`):
//!
//! ```sh
//! cargo run --example handler_worker
//! raftsched task submit --kind word-count --data "the quick brown fox" --wait
//! ```
//!
//! The handler's return value becomes the attempt's output; an error marked not retryable
//! fails the task at once, any other error is retried with backoff.

use raftsched_client::ClusterClient;
use raftsched_client::DEFAULT_CLUSTER;
use raftsched_client::worker::HandlerError;
use raftsched_client::worker::TaskContext;
use raftsched_client::worker::Worker;
use raftsched_client::worker::WorkerOptions;
use tokio_util::sync::CancellationToken;

async fn word_count(task: TaskContext) -> Result<String, HandlerError> {
    let text = String::from_utf8(task.data).map_err(|e| HandlerError {
        message: format!("payload is not UTF-8: {e}"),
        retryable: false,
    })?;
    Ok(format!("{} words", text.split_whitespace().count()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let cluster = std::env::var("RAFTSCHED_CLUSTER").unwrap_or_else(|_| DEFAULT_CLUSTER.to_string());
    let client = ClusterClient::new(&cluster)?.with_overall_deadline(std::time::Duration::from_secs(3600));
    let worker = Worker::new(client, WorkerOptions::new("example-handler-worker", 4)).handle("word-count", word_count);

    let shutdown = CancellationToken::new();
    let on_ctrl_c = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_ctrl_c.cancel();
    });
    worker.run(shutdown).await?;
    Ok(())
}
