//! A three-node cluster in one process over real gRPC: submission, reads from every node,
//! idempotency, restarts and catch-up by snapshot.

use raftsched_testkit as common;

use common::TestCluster;
use common::command_spec;
use common::test_tuning;
use common::wait_until;
use raftsched_api::v1 as api;
use raftsched_client::ErrorCode;
use raftsched_server::node::RaftTuning;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_through_leader_and_follower_and_read_from_every_node() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();

    let via_leader = cluster
        .client_of(leader)
        .submit_task(command_spec("a", ""))
        .await
        .unwrap();
    assert!(via_leader.created);

    // A follower refuses the write and names the leader...
    let refused = cluster
        .client_of(follower)
        .call_node(&cluster.addr(follower), |mut c| async move {
            c.submit_task(api::SubmitTaskRequest {
                spec: Some(command_spec("b", "")),
            })
            .await
        })
        .await
        .unwrap_err();
    let raftsched_client::ClientError::Rejected { code, leader: hint, .. } = refused else {
        panic!("expected a status, got {refused:?}");
    };
    assert_eq!(code, ErrorCode::Unavailable);
    assert_eq!(hint.expect("leader hint"), cluster.addr(leader));

    // ...and a client that only knows the follower follows the hint on its own.
    let via_follower = cluster
        .client_of(follower)
        .submit_task(command_spec("b", ""))
        .await
        .unwrap();
    assert!(via_follower.created);
    let ids = [via_leader.task.unwrap().id, via_follower.task.unwrap().id];
    assert_eq!(ids, [1, 2]);

    cluster.wait_for_replication().await;
    for id in cluster.ids() {
        assert_eq!(cluster.stale_ids_on(id).await, ids, "node {id}");
        let task = cluster
            .client_of(id)
            .get_task(2, api::Consistency::Linearizable)
            .await
            .unwrap();
        assert_eq!(task.spec.unwrap().name, "b");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmission_with_the_same_request_id_gives_one_task() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    let first = client.submit_task(command_spec("once", "req-1")).await.unwrap();
    let second = client.submit_task(command_spec("once", "req-1")).await.unwrap();
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(first.task.unwrap().id, second.task.unwrap().id);

    let batch = client
        .submit_tasks(vec![command_spec("once", "req-1"), command_spec("other", "req-2")])
        .await
        .unwrap();
    let outcomes: Vec<(u64, bool)> = batch.results.iter().map(|r| (r.task_id, r.created)).collect();
    assert_eq!(outcomes, [(1, false), (2, true)]);

    let listed = client
        .list_tasks(api::ListTasksRequest::default())
        .await
        .unwrap()
        .tasks
        .len();
    assert_eq!(listed, 2);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_one_node_then_all_nodes_loses_nothing() {
    let mut cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    for i in 0..20 {
        client.submit_task(command_spec(&format!("t{i}"), "")).await.unwrap();
    }
    let expected: Vec<u64> = (1..=20).collect();

    let leader = cluster.wait_for_leader().await;
    cluster.stop_node(leader).await;
    cluster.restart_node(leader).await;
    cluster.wait_for_replication().await;
    for id in cluster.ids() {
        assert_eq!(cluster.stale_ids_on(id).await, expected, "node {id} after one restart");
    }

    for id in cluster.ids() {
        cluster.stop_node(id).await;
    }
    for id in cluster.ids() {
        cluster.restart_node(id).await;
    }
    cluster.wait_for_leader().await;
    let listed = cluster
        .client()
        .list_tasks(api::ListTasksRequest {
            oldest_first: true,
            ..api::ListTasksRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), expected);
    cluster.wait_for_replication().await;
    for id in cluster.ids() {
        assert_eq!(
            cluster.stale_ids_on(id).await,
            expected,
            "node {id} after a full restart"
        );
    }
    // The cluster still takes writes, and ids continue where they stopped.
    let next = cluster.client().submit_task(command_spec("after", "")).await.unwrap();
    assert_eq!(next.task.unwrap().id, 21);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_isolated_past_a_purge_catches_up_by_snapshot() {
    let tuning = RaftTuning {
        snapshot_after_entries: 10,
        entries_kept_after_snapshot: 0,
        ..test_tuning()
    };
    let mut cluster = TestCluster::start(3, tuning).await;
    let leader = cluster.wait_for_leader().await;
    let lagging = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    cluster.stop_node(lagging).await;

    let client = cluster.client();
    for i in 0..60 {
        client.submit_task(command_spec(&format!("t{i}"), "")).await.unwrap();
    }
    let leader = cluster.wait_for_leader().await;
    let purged = wait_until("the leader to purge its log behind a snapshot", || async {
        cluster
            .node(leader)
            .app()
            .metrics()
            .purged
            .filter(|p| p.index >= 40)
            .map(|p| p.index)
    })
    .await;

    cluster.restart_node(lagging).await;
    cluster.wait_for_replication().await;
    let snapshot = cluster
        .node(lagging)
        .app()
        .metrics()
        .snapshot
        .expect("lagging node holds a snapshot");
    assert!(
        snapshot.index >= purged,
        "snapshot at {} does not cover the purge at {purged}",
        snapshot.index
    );
    assert_eq!(cluster.stale_ids_on(lagging).await, (1..=60).collect::<Vec<u64>>());
    cluster.shutdown().await;
}
