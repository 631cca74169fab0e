//! `raftsched queue ...`: fair-share weights and placement strategies per queue.

use clap::Subcommand;
use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;
use serde_json::json;

use crate::cli::output;

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Set a queue's weight and placement strategy.
    Set {
        queue: String,
        /// Share of running slots relative to other busy queues (1..1000).
        #[arg(long, default_value_t = 1)]
        weight: u32,
        /// round-robin, random, least-loaded, consistent-hash, bin-pack or spread.
        #[arg(long, default_value = "least-loaded")]
        placement: String,
    },
    /// Queues with their policy and pending and running counts.
    List,
}

pub async fn run(command: QueueCommand, client: &ClusterClient, json: bool) -> anyhow::Result<()> {
    match command {
        QueueCommand::Set {
            queue,
            weight,
            placement,
        } => {
            let policy = api::QueuePolicy {
                queue,
                weight,
                placement,
            };
            let response = client
                .call(|mut c| {
                    let request = api::SetQueuePolicyRequest {
                        policy: Some(policy.clone()),
                    };
                    async move { c.set_queue_policy(request).await }
                })
                .await?;
            let policy = response.policy.unwrap_or_default();
            println!(
                "queue {}: weight {}, placement {}",
                policy.queue, policy.weight, policy.placement
            );
            Ok(())
        }
        QueueCommand::List => {
            let response = list_all(client).await?;
            if json {
                let queues: Vec<_> = response
                    .queues
                    .iter()
                    .map(|q| {
                        let p = q.policy.clone().unwrap_or_default();
                        json!({"queue": p.queue, "weight": p.weight, "placement": p.placement,
                               "pending": q.pending, "running": q.running})
                    })
                    .collect();
                output::print_json(&json!({ "queues": queues }));
                return Ok(());
            }
            let rows: Vec<Vec<String>> = response
                .queues
                .iter()
                .map(|q| {
                    let p = q.policy.clone().unwrap_or_default();
                    vec![
                        p.queue,
                        p.weight.to_string(),
                        p.placement,
                        q.pending.to_string(),
                        q.running.to_string(),
                    ]
                })
                .collect();
            output::print_table(&["QUEUE", "WEIGHT", "PLACEMENT", "READY", "RUNNING"], &rows);
            Ok(())
        }
    }
}

/// Every queue, page by page (a page holds about 3 MiB of them).
async fn list_all(client: &ClusterClient) -> anyhow::Result<api::ListQueuesResponse> {
    let mut all = api::ListQueuesResponse::default();
    loop {
        let request = api::ListQueuesRequest {
            page_token: all.next_page_token.clone(),
        };
        let page = client
            .call(|mut c| {
                let request = request.clone();
                async move { c.list_queues(request).await }
            })
            .await?;
        all.queues.extend(page.queues);
        if page.next_page_token.is_empty() || page.next_page_token == request.page_token {
            all.next_page_token.clear();
            return Ok(all);
        }
        all.next_page_token = page.next_page_token;
    }
}
