//! Quotas and the high-water alarm through a real three-node cluster: the live-tasks and
//! state-bytes caps refuse new work with RESOURCE_EXHAUSTED naming the cap (a sharded submit
//! counted with its copies) and accept it again once under; a data-dir alarm on one node
//! stops new work cluster-wide while cancels and reads go on, and clears. A namespace's cap
//! refuses work in that namespace only.

use raftsched_testkit as common;

use common::TestCluster;
use common::test_tuning;
use common::wait_until;
use raftsched_api::v1 as api;
use raftsched_client::ClientError;
use raftsched_client::ClusterClient;
use raftsched_client::ErrorCode as Code;
use raftsched_server::quota::QuotaConfig;

/// A whole test, bounded: a hang fails the test instead of stalling the suite.
async fn bounded(test: impl std::future::Future<Output = ()>) {
    let limit = std::time::Duration::from_secs(180);
    tokio::time::timeout(limit, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"));
}

/// A task that stays pending (no worker runs in these tests), with `payload_bytes` of
/// command line.
fn spec(name: &str, payload_bytes: usize) -> api::TaskSpec {
    common::spec::builder(name).command("x".repeat(payload_bytes)).build()
}

async fn submit(client: &ClusterClient, spec: api::TaskSpec) -> Result<u64, ClientError> {
    let response = client.submit_task(spec).await?;
    Ok(response.task.expect("a task").id)
}

/// Asserts a RESOURCE_EXHAUSTED refusal whose message contains every one of `names`.
fn assert_refused<T: std::fmt::Debug>(outcome: Result<T, ClientError>, names: &[&str]) {
    let error = outcome.expect_err("refused by a cap");
    assert_eq!(error.code(), Some(Code::ResourceExhausted), "{error}");
    let message = error.to_string();
    for name in names {
        assert!(message.contains(name), "the refusal names {name:?}: {message}");
    }
}

async fn submit_sharded(client: &ClusterClient, spec: api::TaskSpec, shards: u32) -> Result<u64, ClientError> {
    let response = client.submit_broadcast(spec, shards).await?;
    Ok(response.task.expect("a parent").id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_live_tasks_cap_refuses_and_recovers() {
    bounded(async {
        let quotas = QuotaConfig {
            max_live_tasks: 3,
            ..QuotaConfig::default()
        };
        let cluster = TestCluster::start_with_quotas(3, test_tuning(), |_| quotas.clone()).await;
        let client = cluster.client();
        let first = submit(&client, spec("a", 1)).await.expect("1 of 3");
        submit(&client, spec("b", 1)).await.expect("2 of 3");
        // A sharded run of one shard is two tasks (the parent and its shard): 4 > 3.
        assert_refused(
            submit_sharded(&client, spec("sharded", 1), 1).await,
            &["live-tasks cap", "--max-live-tasks", "holds 2", "adds 2", "cap of 3"],
        );
        let mut third = spec("c", 1);
        third.client_request_id = "third".into();
        let third_id = submit(&client, third.clone())
            .await
            .expect("3 of 3: at the cap, not past it");
        assert_refused(
            submit(&client, spec("d", 1)).await,
            &["--max-live-tasks", "holds 3", "cap of 3"],
        );
        // The retry of a committed submission creates nothing: the cap lets it through.
        assert_eq!(submit(&client, third).await.expect("a retry at the cap"), third_id);
        // Reads and cancels are never refused; a finished task no longer counts.
        client
            .get_task(first, api::Consistency::Linearizable)
            .await
            .expect("a read");
        client
            .cancel_task(first, "make room")
            .await
            .expect("a cancel at the cap");
        submit(&client, spec("d", 1)).await.expect("room again after a cancel");
        assert_refused(submit(&client, spec("e", 1)).await, &["--max-live-tasks"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_namespace_cap_refuses_that_namespace_only_and_recovers() {
    bounded(async {
        let quotas = QuotaConfig {
            max_live_tasks_per_namespace: 2,
            ..QuotaConfig::default()
        };
        let cluster = TestCluster::start_with_quotas(3, test_tuning(), |_| quotas.clone()).await;
        let team_a = cluster.client().with_namespace("team-a");
        let first = submit(&team_a, spec("a1", 1)).await.expect("1 of 2 in team-a");
        submit(&team_a, spec("a2", 1)).await.expect("2 of 2 in team-a");
        assert_refused(
            submit(&team_a, spec("a3", 1)).await,
            &[
                "namespace team-a holds 2",
                "cap of 2 per namespace",
                "--max-live-tasks-per-namespace",
            ],
        );
        // A workflow or a sharded run in team-a counts there too.
        assert_refused(
            submit_sharded(&team_a, spec("sharded", 1), 1).await,
            &["namespace team-a"],
        );
        // Another namespace has its own count.
        let default = cluster.client();
        submit(&default, spec("d1", 1))
            .await
            .expect("the default namespace is under its cap");
        submit(&default, spec("d2", 1)).await.expect("2 of 2 in default");
        team_a
            .cancel_task(first, "make room")
            .await
            .expect("a cancel at the cap");
        submit(&team_a, spec("a3", 1)).await.expect("room again in team-a");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_state_bytes_cap_refuses_what_would_pass_it() {
    bounded(async {
        // Tasks of 8 KiB of payload cost ~8.7 KiB each: three fit under 30 KiB, a fourth
        // does not, and a sharded run costs its spec twice (parent and shard).
        let quotas = QuotaConfig {
            max_state_bytes: 30 << 10,
            ..QuotaConfig::default()
        };
        let cluster = TestCluster::start_with_quotas(3, test_tuning(), |_| quotas.clone()).await;
        let client = cluster.client();
        submit(&client, spec("a", 8 << 10)).await.expect("1st");
        submit(&client, spec("b", 8 << 10)).await.expect("2nd");
        assert_refused(
            submit_sharded(&client, spec("sharded", 8 << 10), 1).await,
            &["state-bytes cap", "--max-state-bytes", "cap of 30.0 KiB", "--retention"],
        );
        let third = submit(&client, spec("c", 8 << 10)).await.expect("3rd fits");
        assert_refused(submit(&client, spec("d", 8 << 10)).await, &["--max-state-bytes"]);
        // What still fits is accepted: the cap refuses by size, not all work.
        submit(&client, spec("small", 1))
            .await
            .expect("a small task still fits");
        // A cancel is never refused (the task's bytes stay until the retention purge
        // removes it; a cancel itself adds only its reason).
        client.cancel_task(third, "r").await.expect("a cancel at the cap");
    })
    .await;
}

/// The member's alarms as cluster status shows them.
async fn alarms_of(client: &ClusterClient, node_id: u64) -> Option<Vec<String>> {
    let status = client.cluster_status().await.ok()?;
    let member = status.members.into_iter().find(|m| m.node_id == node_id)?;
    Some(member.alarms)
}

/// Waits until a submit is refused with RESOURCE_EXHAUSTED (the leader learns of an alarm
/// within a poll; until then a submit may still pass) and returns the refusal's text.
async fn wait_for_refusal(client: &ClusterClient) -> String {
    wait_until("the leader to refuse new work", || async {
        match submit(client, spec("during", 1)).await {
            Err(error) if error.code() == Some(Code::ResourceExhausted) => Some(error.to_string()),
            _ => None,
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_data_dir_alarm_on_one_node_stops_new_work_until_it_clears() {
    bounded(async {
        // Node 3's data dir (a fresh sled dir: well under 64 MiB) gets a high-water mark of
        // 64 MiB; a sparse 128 MiB file (its apparent size counts, no disk is used) passes it.
        const MARK: u64 = 64 << 20;
        let cluster = TestCluster::start_with_quotas(3, test_tuning(), |id| QuotaConfig {
            data_dir_high_water_bytes: if id == 3 {
                MARK
            } else {
                QuotaConfig::default().data_dir_high_water_bytes
            },
            ..QuotaConfig::default()
        })
        .await;
        let client = cluster.client();
        let before = submit(&client, spec("before", 1)).await.expect("no alarm yet");
        let filler = cluster.data_dir(3).join("filler");
        std::fs::File::create(&filler)
            .and_then(|file| file.set_len(2 * MARK))
            .expect("a sparse file");
        let alarms = wait_until("node 3's alarm in cluster status", || async {
            alarms_of(&client, 3).await.filter(|alarms| !alarms.is_empty())
        })
        .await;
        assert!(
            alarms[0].contains("data-dir") && alarms[0].contains("64.0 MiB"),
            "{alarms:?}"
        );
        let status = client.cluster_status().await.expect("status");
        let node3 = status.members.iter().find(|m| m.node_id == 3).expect("node 3");
        assert!(node3.data_dir_bytes > MARK, "the figure is reported: {node3:?}");
        let refusal = wait_for_refusal(&client).await;
        assert!(refusal.contains("node 3") && refusal.contains("data-dir"), "{refusal}");
        client
            .get_task(before, api::Consistency::Linearizable)
            .await
            .expect("a read under the alarm");
        client
            .cancel_task(before, "under alarm")
            .await
            .expect("a cancel under the alarm");
        std::fs::remove_file(&filler).expect("remove the filler");
        wait_until("node 3's alarm to clear", || async {
            alarms_of(&client, 3).await.filter(|alarms| alarms.is_empty())
        })
        .await;
        wait_until("the leader to accept new work again", || async {
            submit(&client, spec("after", 1)).await.ok()
        })
        .await;
    })
    .await;
}

/// The memory mark, end to end: node 3's mark (1 MiB) is below any process's resident set,
/// so its alarm is raised at its first sample, named in cluster status with the figure, and
/// the leader refuses new work naming node 3 while reads and cancels go on. (Clearing is the
/// same path as the data dir's, tested above: a sample under the mark.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_memory_alarm_on_one_node_refuses_new_work_naming_it() {
    bounded(async {
        const MARK: u64 = 1 << 20;
        let cluster = TestCluster::start_with_quotas(3, test_tuning(), |id| QuotaConfig {
            memory_high_water_bytes: if id == 3 {
                MARK
            } else {
                QuotaConfig::default().memory_high_water_bytes
            },
            ..QuotaConfig::default()
        })
        .await;
        let client = cluster.client();
        let alarms = wait_until("node 3's memory alarm in cluster status", || async {
            alarms_of(&client, 3).await.filter(|alarms| !alarms.is_empty())
        })
        .await;
        assert!(
            alarms[0].contains("memory") && alarms[0].contains("1.0 MiB"),
            "{alarms:?}"
        );
        let status = client.cluster_status().await.expect("status");
        let node3 = status.members.iter().find(|m| m.node_id == 3).expect("node 3");
        assert!(node3.rss_bytes > MARK, "the figure is reported: {node3:?}");
        for other in status.members.iter().filter(|m| m.node_id != 3) {
            assert!(other.alarms.is_empty(), "only node 3 passed its mark: {other:?}");
        }
        let refusal = wait_for_refusal(&client).await;
        assert!(refusal.contains("node 3") && refusal.contains("memory"), "{refusal}");
        client.cluster_status().await.expect("a read under the alarm");
    })
    .await;
}

fn wall_ms() -> u64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.expect("a clock after 1970").as_millis() as u64
}

/// Schedule firings create tasks, so at the live-tasks cap they wait: the schedule's cursor
/// stays put and no task is created while occurrences pass; once room is made, firing
/// resumes, and the occurrences missed meanwhile go by the schedule's misfire policy
/// (`skip`: counted skipped, not fired late).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schedule_firings_wait_at_the_live_tasks_cap_and_resume_after() {
    bounded(async {
        let quotas = QuotaConfig {
            max_live_tasks: 2,
            ..QuotaConfig::default()
        };
        let cluster = TestCluster::start_with_quotas(3, test_tuning(), |_| quotas.clone()).await;
        let client = cluster.client();
        let spec = api::ScheduleSpec {
            recurrence: Some(api::schedule_spec::Recurrence::EveryMs(1000)),
            template: Some(spec("tick", 1)),
            misfire: "skip".into(),
            overlap: "allow".into(),
            ..api::ScheduleSpec::default()
        };
        client
            .call(|mut c| {
                let request = api::CreateScheduleRequest {
                    namespace: String::new(),
                    name: "tick".into(),
                    spec: Some(spec.clone()),
                };
                async move { c.create_schedule(request).await }
            })
            .await
            .expect("create the schedule");
        let get = || async { client.get_schedule("tick", api::Consistency::Linearizable).await.ok() };
        let at_cap = wait_until("two firings fill the cap", || async {
            get().await.filter(|s| s.fired_count == 2)
        })
        .await;
        // Three more occurrences pass while the cap holds: none fires, the cursor stays.
        let passed_by = at_cap.cursor_ms + 4_000;
        wait_until("three more occurrences to pass", || async {
            (wall_ms() > passed_by).then_some(())
        })
        .await;
        let waiting = get().await.expect("the schedule");
        assert_eq!(
            (waiting.fired_count, waiting.cursor_ms),
            (2, at_cap.cursor_ms),
            "{waiting:?}"
        );
        let listed = client
            .list_tasks(api::ListTasksRequest::default())
            .await
            .expect("list tasks");
        assert_eq!(listed.tasks.len(), 2, "no task was created at the cap");

        for task in &listed.tasks {
            client
                .cancel_task(task.id, "make room")
                .await
                .expect("a cancel at the cap");
        }
        let resumed = wait_until("firing to resume once there is room", || async {
            get().await.filter(|s| s.fired_count > 2)
        })
        .await;
        assert!(
            resumed.skipped_count >= 3,
            "the missed occurrences are skipped: {resumed:?}"
        );
        assert!(resumed.cursor_ms >= passed_by, "{resumed:?}");
    })
    .await;
}
