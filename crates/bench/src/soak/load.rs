//! The soak's open-loop load: one submission every 1/rate s, as `rate` sends them, but
//! streamed into the [`Tracker`] instead of kept, so hours of load hold only what is in flight.

use std::sync::Arc;
use std::time::Duration;

use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::tracker::Tracker;
use crate::clock;

/// Sends for `duration` from `start`; a send held back by `max_in_flight` or by the
/// generator still counts from its intended time (no coordinated omission).
pub async fn offer(
    clients: Arc<Vec<ClusterClient>>,
    template: api::TaskSpec,
    rate: u64,
    start: Instant,
    duration: Duration,
    max_in_flight: usize,
    tracker: Arc<Tracker>,
) {
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    let total = (rate as f64 * duration.as_secs_f64()).floor() as u64;
    let mut set = JoinSet::new();
    for i in 0..total {
        let intended = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(intended).await;
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let client = clients[i as usize % clients.len()].clone();
        let spec = template.clone();
        let intended_us = clock().at_us(intended);
        let tracker = tracker.clone();
        set.spawn(async move {
            let outcome = client.submit_task(spec).await;
            drop(permit);
            match outcome {
                Ok(response) => {
                    let task_id = response.task.map_or(0, |t| t.id);
                    tracker.acked(task_id, intended_us, clock().now_us());
                }
                Err(e) => tracker.failed(e.to_string()),
            }
        });
        while set.try_join_next().is_some() {}
    }
    while set.join_next().await.is_some() {}
}
