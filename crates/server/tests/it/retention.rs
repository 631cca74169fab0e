//! Retention in a three-node cluster: finished tasks of a queue with a 1 s retention are
//! purged by the leader on every replica, a purged id answers NOT_FOUND saying it expired,
//! its request id creates a new task, and purging goes on under a new leader after the old
//! one stops with expired tasks left to purge.

use raftsched_testkit as common;

use common::TestCluster;
use common::test_tuning;
use common::wait_until;
use raftsched_api::v1 as api;
use raftsched_client::ClientError;
use raftsched_client::ClusterClient;
use raftsched_client::ErrorCode;

const QUEUE: &str = "short";

async fn set_retention(client: &ClusterClient, retention_ms: u64) {
    let policy = api::QueuePolicy {
        namespace: String::new(),
        queue: QUEUE.to_string(),
        weight: 1,
        placement: String::new(),
        retention_ms,
    };
    client
        .set_queue_policy(policy)
        .await
        .expect("a valid retention is accepted");
}

/// Submits `count` tasks to the short queue (request ids `<prefix>-<i>`) and cancels them
/// all, so they are finished; returns their ids.
async fn submit_and_finish(client: &ClusterClient, prefix: &str, count: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    for i in 0..count {
        let spec = common::spec::builder("r")
            .queue(QUEUE)
            .request_id(&format!("{prefix}-{i}"))
            .build();
        let submitted = client.submit_task(spec).await.expect("submit");
        let id = submitted.task.expect("a task").id;
        if let Err(error) = client.cancel_task(id, "done").await {
            // A cancel that committed but lost its answer (a slow machine, a leader change) is
            // retried by the client, and the retry finds the task finished, or already purged
            // (the retention is 1 s). Either way it was cancelled: check that, not the retry.
            let finished = match client.get_task(id, api::Consistency::Linearizable).await {
                Ok(task) => task.state == api::TaskState::Cancelled as i32,
                Err(ClientError::Rejected { code, message, .. }) => {
                    code == ErrorCode::NotFound && message.contains("expired after its queue's retention")
                }
                Err(_) => false,
            };
            assert!(finished, "task {id} was neither cancelled nor purged: {error}");
        }
        ids.push(id);
    }
    ids
}

/// Waits until none of `ids` is left on any running node.
async fn wait_purged_everywhere(cluster: &TestCluster, ids: &[u64]) {
    wait_until("the finished tasks purged on every replica", || async {
        cluster
            .running()
            .all(|node| {
                let state = node.app().state().read();
                ids.iter().all(|id| state.scheduler.get(*id).is_none())
            })
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_are_purged_on_every_replica_across_a_failover() {
    let mut cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    set_retention(&client, 1000).await;

    let first = submit_and_finish(&client, "a", 20).await;
    wait_purged_everywhere(&cluster, &first).await;
    let Err(ClientError::Rejected { code, message, .. }) =
        client.get_task(first[0], api::Consistency::Linearizable).await
    else {
        panic!("a purged task must be refused");
    };
    assert_eq!(code, ErrorCode::NotFound);
    assert!(
        message.contains(&format!("task {} expired after its queue's retention", first[0])),
        "{message}"
    );
    // An id never given out is plainly not found.
    let Err(ClientError::Rejected { code, message, .. }) =
        client.get_task(1_000_000, api::Consistency::Linearizable).await
    else {
        panic!("an unknown task must be refused");
    };
    assert_eq!(code, ErrorCode::NotFound);
    assert!(!message.contains("expired"), "{message}");

    // The dedup window was the retention: the request id creates a new task now.
    let again = client
        .submit_task(common::spec::builder("r").queue(QUEUE).request_id("a-0").build())
        .await
        .expect("submit");
    assert!(again.created, "a purged task's request id creates a new task");
    assert!(again.task.expect("a task").id > *first.last().unwrap());

    // Finished tasks the old leader leaves behind are purged by the next one.
    let second = submit_and_finish(&client, "b", 20).await;
    cluster.wait_for_replication().await;
    let old_leader = cluster.wait_for_leader().await;
    cluster.stop_node(old_leader).await;
    let new_leader = cluster.wait_for_leader().await;
    assert_ne!(new_leader, old_leader);
    wait_purged_everywhere(&cluster, &second).await;
    cluster.wait_for_identical_replicas().await;
    let digests: Vec<u64> = cluster
        .running()
        .map(|n| n.app().state().read().scheduler.digest())
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "digests differ: {digests:?}");
    cluster.shutdown().await;
}
