//! Failover under injected faults, in one process over real gRPC: a leader cut off in the
//! minority, one-way partitions, slow links, graceful hand-over, a rolling restart, and
//! replacing a member.

use raftsched_testkit as common;

use std::time::Duration;

use common::TestCluster;
use common::command_spec;
use common::shell;
use common::start_worker;
use common::test_tuning;
use common::wait_for_finish;
use common::wait_for_workers;
use common::wait_until;
use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;
use raftsched_client::worker::WorkerOptions;
use raftsched_server::network::LinkFault;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The leader as seen by the nodes other than `excluded`, once they agree on one.
async fn leader_among_others(cluster: &TestCluster, excluded: u64) -> u64 {
    wait_until("the other nodes to elect a leader", || async {
        let leaders: Vec<Option<u64>> = cluster
            .running()
            .filter(|n| n.node_id() != excluded)
            .map(|n| n.app().metrics().current_leader)
            .collect();
        let leader = leaders.first().copied().flatten()?;
        let agreed = leaders.iter().all(|l| *l == Some(leader)) && leader != excluded;
        (agreed && cluster.node(leader).raft().is_leader()).then_some(leader)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_in_the_minority_is_replaced_and_rejoins() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    client.submit_task(command_spec("before", "")).await.unwrap();
    let old = cluster.wait_for_leader().await;

    cluster.isolate(old);
    let cut_at = Instant::now();
    let new = leader_among_others(&cluster, old).await;
    assert_ne!(new, old);
    // The majority side takes writes; clients find it on their own.
    let during = cluster
        .client_of(new)
        .submit_task(command_spec("during", ""))
        .await
        .unwrap();
    eprintln!(
        "leader cut off: a write committed on the new leader after {:?}",
        cut_at.elapsed()
    );

    cluster.heal();
    let leader = cluster.wait_for_leader().await;
    cluster.wait_for_replication().await;
    cluster.wait_for_identical_replicas().await;
    let task = cluster
        .client_of(old)
        .get_task(during.task.unwrap().id, api::Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(task.spec.unwrap().name, "during");
    assert!(cluster.node(leader).raft().is_leader());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_in_the_minority_lets_go_of_its_workers_and_clients() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let (stop, handle) = start_worker(&cluster, WorkerOptions::new("w", 4));
    wait_for_workers(&cluster, 1).await;
    let old = cluster.wait_for_leader().await;

    // The worker and the clients still reach the old leader; only its peers do not.
    cluster.isolate(old);
    let new = leader_among_others(&cluster, old).await;
    // Once a leader lease passes without a majority, the old leader refuses writes at once
    // (UNAVAILABLE, so clients move on) instead of holding them until they time out.
    let refusal = wait_until("the cut-off leader to refuse writes", || async {
        let (direct, address) = (cluster.client_of(old), cluster.addr(old));
        let attempt = direct.call_node(&address, |mut c| async move {
            let request = api::SubmitTaskRequest {
                spec: Some(command_spec("refused", "")),
            };
            c.submit_task(request).await
        });
        match attempt.await {
            Err(e) if e.code() == Some(raftsched_client::ErrorCode::Unavailable) => Some(e.to_string()),
            _ => None,
        }
    })
    .await;
    assert!(refusal.contains("majority"), "{refusal}");
    // The worker leaves the old leader and the new one dispatches to it — while the old
    // leader is still cut off.
    run_one_shell_task(&cluster.client_of(new), &cluster, "during").await;
    assert!(cluster.node(new).raft().is_leader());
    heal_and_stop(cluster, stop, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_send_is_deposed_and_dispatch_goes_on() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let (stop, handle) = start_worker(&cluster, WorkerOptions::new("w", 4));
    wait_for_workers(&cluster, 1).await;
    let old = cluster.wait_for_leader().await;
    // One way: the leader's own RPCs (heartbeats, appends) hang; it still receives.
    for other in cluster.ids().into_iter().filter(|id| *id != old) {
        cluster.fault_link(old, other, Some(LinkFault::Hang));
    }
    let new = leader_among_others(&cluster, old).await;
    assert_ne!(new, old);
    wait_until("the old leader to step down", || async {
        (!cluster.node(old).raft().is_leader()).then_some(())
    })
    .await;
    run_one_shell_task(&cluster.client(), &cluster, "after").await;
    heal_and_stop(cluster, stop, handle).await;
}

/// Submits `echo ok` through `client` and waits until it succeeded.
async fn run_one_shell_task(client: &ClusterClient, cluster: &TestCluster, name: &str) {
    let task = client.submit_task(shell(name, "echo ok")).await.unwrap().task.unwrap();
    let done = wait_for_finish(cluster, task.id).await;
    assert_eq!(done.state, api::TaskState::Succeeded as i32);
}

/// Heals every link, checks the replicas converge, and stops the worker and the cluster.
async fn heal_and_stop(cluster: TestCluster, worker: CancellationToken, handle: JoinHandle<()>) {
    cluster.heal();
    cluster.wait_for_replication().await;
    cluster.wait_for_identical_replicas().await;
    worker.cancel();
    handle.await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_links_slow_the_cluster_down_but_lose_nothing() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    for from in cluster.ids() {
        for to in cluster.ids().into_iter().filter(|to| *to != from) {
            cluster.fault_link(from, to, Some(LinkFault::Delay(Duration::from_millis(30))));
        }
    }
    let client = cluster.client();
    for i in 0..20 {
        client.submit_task(command_spec(&format!("t{i}"), "")).await.unwrap();
    }
    cluster.heal();
    cluster.wait_for_replication().await;
    cluster.wait_for_identical_replicas().await;
    let all = client.list_tasks(api::ListTasksRequest::default()).await.unwrap();
    assert_eq!(all.tasks.len(), 20);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_on_request_and_a_stopping_leader_hands_it_over() {
    let mut cluster = TestCluster::start(3, test_tuning()).await;
    let leader = cluster.wait_for_leader().await;
    let target = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let moved_to = cluster.node(leader).app().transfer_leader(Some(target)).await.unwrap();
    assert_eq!(moved_to, target);
    assert_eq!(cluster.wait_for_leader().await, target);

    // A leader asked to stop hands over first: the others have a leader at once.
    let started = Instant::now();
    cluster.stop_node(target).await;
    let next = leader_among_others(&cluster, target).await;
    assert_ne!(next, target);
    eprintln!("graceful stop: new leader {next} after {:?}", started.elapsed());
    cluster.restart_node(target).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_drops_no_request() {
    let mut cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    let writer = tokio::spawn({
        let client = client.clone();
        async move {
            let mut acknowledged = Vec::new();
            for i in 0..150 {
                let response = client
                    .submit_task(command_spec(&format!("r{i}"), &format!("req-{i}")))
                    .await;
                let task = response.unwrap_or_else(|e| panic!("submission {i} failed: {e}"));
                acknowledged.push(task.task.unwrap().id);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acknowledged
        }
    });
    for id in cluster.ids() {
        cluster.stop_node(id).await;
        cluster.restart_node(id).await;
        cluster.wait_for_leader().await;
    }
    let acknowledged = writer.await.unwrap();
    assert_eq!(acknowledged.len(), 150);
    cluster.wait_for_replication().await;
    let all = client
        .list_tasks(api::ListTasksRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<u64> = all.tasks.iter().map(|t| t.id).collect();
    for id in acknowledged {
        assert!(ids.contains(&id), "acknowledged task {id} lost");
    }
    assert_eq!(ids.len(), 150, "no duplicates from retries");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_data_is_gone_is_replaced() {
    let mut cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    for i in 0..10 {
        client.submit_task(command_spec(&format!("t{i}"), "")).await.unwrap();
    }
    let leader = cluster.wait_for_leader().await;
    let lost = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    cluster.stop_node(lost).await;
    std::fs::remove_dir_all(cluster.data_dir(lost)).unwrap();
    cluster.forget_node(lost);
    cluster.node(leader).app().remove_node(lost).await.unwrap();

    let member = cluster.start_new_node(4).await;
    cluster
        .node(leader)
        .app()
        .add_node(4, member.addr, Some(member.peer_addr))
        .await
        .unwrap();
    let voters: Vec<u64> = cluster
        .node(leader)
        .app()
        .metrics()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    assert_eq!(voters.len(), 3);
    assert!(voters.contains(&4) && !voters.contains(&lost), "{voters:?}");
    cluster.wait_for_replication().await;
    cluster.wait_for_identical_replicas().await;
    assert_eq!(cluster.stale_ids_on(4).await.len(), 10);
    cluster.shutdown().await;
}
