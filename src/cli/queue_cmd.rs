//! `raftsched queue ...`: fair-share weights, placement strategies and retention per queue.

use clap::Subcommand;
use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;
use raftsched_core::state::limits;
use raftsched_core::state::limits::human_ms;

use crate::cli::output;

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Set a queue's weight, placement strategy and retention of finished tasks. What is
    /// left out keeps the value the queue has (for a new queue: weight 1, least-loaded,
    /// the default retention).
    Set {
        queue: String,
        /// Share of running slots relative to other busy queues, 1 to 1000.
        #[arg(long)]
        weight: Option<u32>,
        /// round-robin, random, least-loaded, consistent-hash, bin-pack or spread.
        #[arg(long)]
        placement: Option<String>,
        /// How long finished tasks are kept before they are purged, like 30s, 10m, 7d
        /// (1s to 3650d; `default` for the cluster default, 7d). Left out: the queue keeps
        /// the retention it has.
        #[arg(long, value_parser = parse_retention)]
        retention: Option<Retention>,
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
            retention,
        } => {
            // The API sets a whole policy: what was not passed comes from the current one.
            let current = current_policy(client, &queue).await?;
            let retention_ms = match retention {
                Some(Retention::Default) => 0,
                Some(Retention::Ms(ms)) => ms,
                None => current.as_ref().map_or(0, |p| p.retention_ms),
            };
            let policy = api::QueuePolicy {
                namespace: client.namespace().to_string(),
                weight: weight.or(current.as_ref().map(|p| p.weight)).unwrap_or(1),
                placement: placement
                    .or(current.map(|p| p.placement))
                    .unwrap_or_else(|| "least-loaded".to_string()),
                queue,
                retention_ms,
            };
            let policy = client.set_queue_policy(policy).await?;
            if json {
                let answer = api::SetQueuePolicyResponse { policy: Some(policy) };
                output::print_json(&output::json_of(&answer));
                return Ok(());
            }
            println!(
                "queue {}: weight {}, placement {}, retention {}",
                policy.queue,
                policy.weight,
                policy.placement,
                shown_retention(policy.retention_ms)
            );
            Ok(())
        }
        QueueCommand::List => {
            let response = list_all(client).await?;
            if json {
                output::print_json(&output::json_of(&response));
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
                        shown_retention(p.retention_ms),
                        q.pending.to_string(),
                        q.running.to_string(),
                    ]
                })
                .collect();
            output::print_table(
                &["QUEUE", "WEIGHT", "PLACEMENT", "RETENTION", "READY", "RUNNING"],
                &rows,
            );
            Ok(())
        }
    }
}

/// Every queue, page by page (a page holds about 3 MiB of them).
async fn list_all(client: &ClusterClient) -> anyhow::Result<api::ListQueuesResponse> {
    let mut all = api::ListQueuesResponse::default();
    loop {
        let request = api::ListQueuesRequest {
            namespace: client.namespace().to_string(),
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

/// A `--retention` value: a duration, or the cluster default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    Default,
    Ms(u64),
}

/// Parses `--retention`: a human duration (humantime: `30s`, `10m`, `7d`, `1h 30m`) within
/// the limits apply enforces, or `default`. Checked here too so a typo fails before any
/// call, with the flag and the limits in the same units.
fn parse_retention(text: &str) -> Result<Retention, String> {
    if text == "default" {
        return Ok(Retention::Default);
    }
    let limits_text = format!(
        "--retention must be between {} and {} (like 30s, 10m or 7d), or `default` ({})",
        human_ms(limits::MIN_RETENTION_MS),
        human_ms(limits::MAX_RETENTION_MS),
        human_ms(limits::DEFAULT_RETENTION_MS)
    );
    let shown = limits::shown(text);
    let duration =
        humantime::parse_duration(text).map_err(|e| format!("{shown} is not a duration ({e}): {limits_text}"))?;
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if !duration.subsec_nanos().is_multiple_of(1_000_000)
        || !(limits::MIN_RETENTION_MS..=limits::MAX_RETENTION_MS).contains(&ms)
    {
        return Err(format!("{shown} is out of range: {limits_text}"));
    }
    Ok(Retention::Ms(ms))
}

/// The policy a queue has now, if it was ever set, so a `queue set` changes only what it
/// was given.
async fn current_policy(client: &ClusterClient, queue: &str) -> anyhow::Result<Option<api::QueuePolicy>> {
    let all = list_all(client).await?;
    Ok(all
        .queues
        .into_iter()
        .filter_map(|q| q.policy)
        .find(|p| p.queue == queue))
}

fn effective_retention_ms(retention_ms: u64) -> u64 {
    if retention_ms == 0 {
        limits::DEFAULT_RETENTION_MS
    } else {
        retention_ms
    }
}

/// A retention in human units, `(default)` marked.
fn shown_retention(retention_ms: u64) -> String {
    let text = human_ms(effective_retention_ms(retention_ms));
    if retention_ms == 0 {
        format!("{text} (default)")
    } else {
        text
    }
}

#[cfg(test)]
mod retention_tests {
    use super::Retention;
    use super::parse_retention;

    #[test]
    fn retention_takes_human_durations_within_the_limits() {
        assert_eq!(parse_retention("30s"), Ok(Retention::Ms(30_000)));
        assert_eq!(parse_retention("10m"), Ok(Retention::Ms(600_000)));
        assert_eq!(parse_retention("7d"), Ok(Retention::Ms(7 * 86_400_000)));
        assert_eq!(parse_retention("1s"), Ok(Retention::Ms(1000)));
        assert_eq!(parse_retention("3650d"), Ok(Retention::Ms(3650 * 86_400_000)));
        assert_eq!(parse_retention("1.5s"), Ok(Retention::Ms(1500)));
        assert_eq!(parse_retention("default"), Ok(Retention::Default));
        for bad in [
            "0s", "1ms", "1 ms", "999ms", "3651d", "11years", "abc", "", "-1s", "1500us",
        ] {
            let error = parse_retention(bad).unwrap_err();
            assert!(
                error.contains("--retention must be between 1s and 3650d"),
                "{bad:?}: {error}"
            );
        }
    }
}
