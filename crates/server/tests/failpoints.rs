//! Crash points in the storage path: a node whose storage fails at a failpoint stops (its
//! Raft goes fatal), is restarted on the same data dir, and nothing acknowledged is lost;
//! every replica ends with the same state.
//!
//! Failpoints are process-global, so these tests run one at a time (a lock) and each fires
//! its failpoint once, on whichever node reaches it first. Run with
//! `cargo test -p raftsched-server --features failpoints --test failpoints`. A binary of its own, not
//! a module of `it`: a failpoint fires in whichever node of the process reaches it first, so
//! the clusters of other tests running in the same process would hit it too.

#![cfg(feature = "failpoints")]

use raftsched_testkit as common;

use common::TestCluster;
use common::command_spec;
use common::test_tuning;
use common::wait_until;
use raftsched_server::node::RaftTuning;

/// Serialises the tests of this binary: failpoints are global to the process.
static FAILPOINTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Submits `count` tasks concurrently (so the leader batches entries) and returns the ids
/// acknowledged.
async fn submit_concurrently(cluster: &TestCluster, prefix: &str, count: usize) -> Vec<u64> {
    let submissions = (0..count).map(|i| {
        let client = cluster.client();
        let spec = command_spec(&format!("{prefix}{i}"), &format!("{prefix}-req-{i}"));
        async move { client.submit_task(spec).await }
    });
    futures::future::join_all(submissions)
        .await
        .into_iter()
        .filter_map(|r| r.ok().and_then(|response| response.task).map(|task| task.id))
        .collect()
}

/// Waits until a node's Raft has stopped on a storage error, and returns it.
async fn crashed_node(cluster: &TestCluster) -> u64 {
    wait_until("a node to hit the failpoint", || async {
        cluster
            .running()
            .find(|node| node.app().metrics().running_state.is_err())
            .map(|node| node.node_id())
    })
    .await
}

/// Restarts `crashed`, then checks every acknowledged task is on every node and the replicas
/// are identical.
async fn recover_and_check(mut cluster: TestCluster, crashed: u64, acknowledged: &[u64]) {
    cluster.stop_node(crashed).await;
    cluster.restart_node(crashed).await;
    cluster.wait_for_leader().await;
    // One more write proves the cluster serves again and pushes the commit point forward.
    cluster.client().submit_task(command_spec("after", "")).await.unwrap();
    cluster.wait_for_replication().await;
    cluster.wait_for_identical_replicas().await;
    for id in cluster.ids() {
        let ids = cluster.stale_ids_on(id).await;
        for task_id in acknowledged {
            assert!(ids.contains(task_id), "node {id} lost acknowledged task {task_id}");
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_append_and_flush_loses_nothing_acknowledged() {
    let _serial = FAILPOINTS.lock().await;
    let cluster = TestCluster::start(3, test_tuning()).await;
    let mut acknowledged = submit_concurrently(&cluster, "a", 20).await;
    fail::cfg("append-before-flush", "1*return").unwrap();
    acknowledged.extend(submit_concurrently(&cluster, "b", 20).await);
    let crashed = crashed_node(&cluster).await;
    fail::remove("append-before-flush");
    recover_and_check(cluster, crashed, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_middle_of_applying_a_batch_loses_nothing_acknowledged() {
    let _serial = FAILPOINTS.lock().await;
    let cluster = TestCluster::start(3, test_tuning()).await;
    let mut acknowledged = submit_concurrently(&cluster, "a", 20).await;
    fail::cfg("apply-mid-batch", "1*return").unwrap();
    // Enough concurrent writes that some node applies several entries in one batch.
    let mut round = 0;
    let crashed = loop {
        acknowledged.extend(submit_concurrently(&cluster, &format!("r{round}-"), 50).await);
        if let Some(node) = cluster.running().find(|n| n.app().metrics().running_state.is_err()) {
            break node.node_id();
        }
        round += 1;
        assert!(round < 40, "no node ever applied a batch of two or more entries");
    };
    fail::remove("apply-mid-batch");
    recover_and_check(cluster, crashed, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_installing_a_snapshot_recovers_from_it() {
    let _serial = FAILPOINTS.lock().await;
    let tuning = RaftTuning {
        snapshot_after_entries: 10,
        entries_kept_after_snapshot: 0,
        ..test_tuning()
    };
    let mut cluster = TestCluster::start(3, tuning).await;
    let leader = cluster.wait_for_leader().await;
    let lagging = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    cluster.stop_node(lagging).await;
    let mut acknowledged = Vec::new();
    for i in 0..40 {
        let task = cluster
            .client()
            .submit_task(command_spec(&format!("t{i}"), ""))
            .await
            .unwrap();
        acknowledged.push(task.task.unwrap().id);
    }
    wait_until("the leader to purge behind a snapshot", || async {
        let leader = cluster.wait_for_leader().await;
        cluster
            .node(leader)
            .app()
            .metrics()
            .purged
            .filter(|p| p.index >= 20)
            .map(|_| ())
    })
    .await;
    fail::cfg("install-snapshot-before-load", "1*return").unwrap();
    cluster.restart_node(lagging).await;
    let crashed = crashed_node(&cluster).await;
    assert_eq!(crashed, lagging, "only the lagging node installs a snapshot");
    fail::remove("install-snapshot-before-load");
    recover_and_check(cluster, crashed, &acknowledged).await;
}
