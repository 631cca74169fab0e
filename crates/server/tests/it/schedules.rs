//! Schedules, workflows and broadcasts through a real three-node cluster and real workers:
//! every occurrence fired exactly once across a leader stop and a majority outage, each
//! misfire and overlap policy, DAG ordering and failure propagation, and a broadcast over
//! three workers.

use raftsched_testkit as common;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use common::TestCluster;
use common::shell;
use common::start_worker;
use common::test_tuning;
use common::wait_for_finish;
use common::wait_for_workers;
use common::wait_until;
use raftsched_api::v1 as api;
use raftsched_client::ClientError;
use raftsched_client::ClusterClient;
use raftsched_client::ErrorCode as Code;
use raftsched_client::worker::WorkerOptions;

/// A whole test, bounded: a hang fails the test instead of stalling the suite.
async fn bounded(test: impl std::future::Future<Output = ()>) {
    let limit = std::time::Duration::from_secs(180);
    tokio::time::timeout(limit, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"));
}

fn state_of(task: &api::Task) -> api::TaskState {
    api::TaskState::try_from(task.state).unwrap()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn every_second(command: &str, misfire: &str, window_ms: u64, overlap: &str) -> api::ScheduleSpec {
    api::ScheduleSpec {
        recurrence: Some(api::schedule_spec::Recurrence::EveryMs(1000)),
        template: Some(shell("tick", command)),
        misfire: misfire.into(),
        catch_up_window_ms: window_ms,
        overlap: overlap.into(),
        ..api::ScheduleSpec::default()
    }
}

async fn create(client: &ClusterClient, name: &str, spec: api::ScheduleSpec) -> api::Schedule {
    let response = client
        .call(|mut c| {
            let request = api::CreateScheduleRequest {
                namespace: String::new(),
                name: name.into(),
                spec: Some(spec.clone()),
            };
            async move { c.create_schedule(request).await }
        })
        .await
        .expect("create schedule");
    assert!(response.created);
    response.schedule.unwrap()
}

async fn pause(client: &ClusterClient, name: &str) {
    client
        .call(|mut c| {
            let request = api::PauseScheduleRequest {
                namespace: String::new(),
                name: name.into(),
            };
            async move { c.pause_schedule(request).await }
        })
        .await
        .expect("pause schedule");
}

async fn schedule(client: &ClusterClient, name: &str) -> api::Schedule {
    client
        .get_schedule(name, api::Consistency::Linearizable)
        .await
        .expect("get schedule")
}

/// Waits until the schedule has decided (fired or skipped) at least `runs` occurrences.
async fn wait_for_runs(client: &ClusterClient, name: &str, runs: u64) -> api::Schedule {
    wait_until(&format!("schedule {name} to reach {runs} runs"), || async {
        let s = client.get_schedule(name, api::Consistency::Linearizable).await.ok()?;
        (s.fired_count + s.skipped_count >= runs).then_some(s)
    })
    .await
}

/// Every task in the cluster, oldest first.
async fn all_tasks(client: &ClusterClient) -> Vec<api::Task> {
    let mut tasks = Vec::new();
    let mut page_token = String::new();
    loop {
        let response = client
            .list_tasks(api::ListTasksRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                ..api::ListTasksRequest::default()
            })
            .await
            .expect("list tasks");
        tasks.extend(response.tasks);
        if response.next_page_token.is_empty() {
            return tasks;
        }
        page_token = response.next_page_token;
    }
}

/// Checks the exactly-once property of a schedule's history: every occurrence's key names
/// at most one task; the recorded runs cover one contiguous sequence of occurrences (1 s
/// apart) with no gap and no occurrence twice, each either fired (one task) or skipped.
/// Returns the occurrences that fired, by scheduled time, with their task.
async fn check_exactly_once(client: &ClusterClient, name: &str) -> BTreeMap<u64, u64> {
    let prefix = format!("schedule/{name}/");
    let mut by_key: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for task in all_tasks(client).await {
        if let Some(at) = task.origin.strip_prefix(&prefix).and_then(|t| t.parse::<u64>().ok()) {
            by_key.entry(at).or_default().push(task.id);
        }
    }
    for (at, ids) in &by_key {
        assert_eq!(ids.len(), 1, "occurrence {at} of {name} created tasks {ids:?}");
    }
    let schedule = schedule(client, name).await;
    assert!(
        schedule.runs.len() < 100,
        "the history was truncated; keep the test shorter"
    );
    let mut covered: Vec<u64> = Vec::new();
    let mut fired = BTreeMap::new();
    for run in &schedule.runs {
        match run.outcome.as_str() {
            "fired" => {
                assert_eq!(by_key.get(&run.scheduled_ms), Some(&vec![run.task_id]), "{run:?}");
                fired.insert(run.scheduled_ms, run.task_id);
                covered.push(run.scheduled_ms);
            }
            "skipped" => {
                assert!(
                    !by_key.contains_key(&run.scheduled_ms),
                    "a skipped occurrence has a task: {run:?}"
                );
                for i in 0..run.skipped_count {
                    covered.push(run.first_skipped_ms + i * 1000);
                }
                assert_eq!(covered.last(), Some(&run.scheduled_ms), "{run:?}");
            }
            other => panic!("unexpected run {other}: {run:?}"),
        }
    }
    assert_eq!(
        by_key.keys().copied().collect::<BTreeSet<_>>(),
        fired.keys().copied().collect::<BTreeSet<_>>(),
        "tasks and fired runs disagree"
    );
    for pair in covered.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1000,
            "occurrences of {name} missing or repeated: {covered:?}"
        );
    }
    fired
}

/// A schedule firing every second keeps firing each occurrence exactly once while its leader
/// is stopped and comes back: no key twice, no occurrence missing (catch-up covers the
/// hand-over), and every run's task succeeds with the key in its environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_second_across_a_leader_stop_fires_each_occurrence_once() {
    bounded(every_second_across_a_leader_stop_fires_each_occurrence_once_body()).await;
}

async fn every_second_across_a_leader_stop_fires_each_occurrence_once_body() {
    let mut cluster = TestCluster::start(3, test_tuning()).await;
    let (stop_worker, worker) = start_worker(&cluster, WorkerOptions::new("w1", 8));
    wait_for_workers(&cluster, 1).await;
    let client = cluster.client();
    create(
        &client,
        "tick",
        every_second("echo $RAFTSCHED_ORIGIN", "catch-up", 30_000, "allow"),
    )
    .await;

    wait_for_runs(&client, "tick", 3).await;
    let leader = cluster.wait_for_leader().await;
    cluster.stop_node(leader).await;
    let new_leader = cluster.wait_for_leader().await;
    assert_ne!(new_leader, leader);
    let at_stop = schedule(&client, "tick").await;
    let decided = at_stop.fired_count + at_stop.skipped_count;
    wait_for_runs(&client, "tick", decided + 3).await;
    cluster.restart_node(leader).await;
    cluster.wait_for_replication().await;
    wait_for_runs(&client, "tick", decided + 6).await;
    pause(&client, "tick").await;

    let fired = check_exactly_once(&client, "tick").await;
    let schedule = schedule(&client, "tick").await;
    assert_eq!(schedule.skipped_count, 0, "catch-up skipped: {:?}", schedule.runs);
    assert!(fired.len() >= 9, "only {} occurrences fired", fired.len());
    for (at, task_id) in &fired {
        let task = wait_for_finish(&cluster, *task_id).await;
        assert_eq!(state_of(&task), api::TaskState::Succeeded, "{task:?}");
        let stdout = &task.attempts.last().unwrap().stdout_tail;
        assert_eq!(stdout.trim(), format!("schedule/tick/{at}"));
    }
    cluster.wait_for_identical_replicas().await;
    stop_worker.cancel();
    worker.await.unwrap();
    cluster.shutdown().await;
}

/// No leader for a few seconds (a majority stopped): the occurrences of that time are
/// misfired. skip records them all as skipped; fire-once fires the latest of each missed run
/// and skips the rest; catch-up (window wider than the outage) fires every one. Nothing is
/// fired twice and nothing goes unrecorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn misfire_policies_after_an_outage() {
    bounded(misfire_policies_after_an_outage_body()).await;
}

async fn misfire_policies_after_an_outage_body() {
    let mut cluster = TestCluster::start(3, test_tuning()).await;
    let (stop_worker, worker) = start_worker(&cluster, WorkerOptions::new("w1", 8));
    wait_for_workers(&cluster, 1).await;
    let client = cluster.client();
    create(&client, "skip", every_second("true", "skip", 0, "allow")).await;
    create(&client, "once", every_second("true", "fire-once", 0, "allow")).await;
    create(&client, "catch", every_second("true", "catch-up", 60_000, "allow")).await;
    for name in ["skip", "once", "catch"] {
        wait_for_runs(&client, name, 2).await;
    }

    // Stop two of three nodes: no quorum, no firing.
    let leader = cluster.wait_for_leader().await;
    let other = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    cluster.stop_node(leader).await;
    cluster.stop_node(other).await;
    let outage_until = now_ms() + 4000;
    wait_until("four seconds of outage", || async {
        (now_ms() >= outage_until).then_some(())
    })
    .await;
    cluster.restart_node(leader).await;
    cluster.restart_node(other).await;
    cluster.wait_for_leader().await;
    let restored_at = now_ms();
    for name in ["skip", "once", "catch"] {
        wait_until(&format!("{name} to fire after the outage"), || async {
            let s = client.get_schedule(name, api::Consistency::Linearizable).await.ok()?;
            (s.cursor_ms >= restored_at + 1000).then_some(())
        })
        .await;
        pause(&client, name).await;
    }

    let late = |run: &api::ScheduleRun| run.decided_at_ms > run.scheduled_ms + 1000;
    let misfired = |run: &api::ScheduleRun| run.outcome == "skipped" && run.reason.starts_with("misfired");

    check_exactly_once(&client, "skip").await;
    let skip = schedule(&client, "skip").await;
    let skipped: u64 = skip.runs.iter().filter(|r| misfired(r)).map(|r| r.skipped_count).sum();
    assert!(skipped >= 2, "skip recorded {skipped} misfires: {:?}", skip.runs);
    assert!(
        !skip.runs.iter().any(|r| r.outcome == "fired" && late(r)),
        "{:?}",
        skip.runs
    );

    check_exactly_once(&client, "once").await;
    let once = schedule(&client, "once").await;
    let positions: Vec<usize> = (0..once.runs.len()).filter(|i| misfired(&once.runs[*i])).collect();
    assert!(!positions.is_empty(), "fire-once recorded no misfire: {:?}", once.runs);
    for i in positions {
        let next = once
            .runs
            .get(i + 1)
            .expect("a fire-once skip is followed by the fired latest one");
        assert!(next.outcome == "fired" && late(next), "{:?}", once.runs);
    }

    check_exactly_once(&client, "catch").await;
    let catch = schedule(&client, "catch").await;
    assert_eq!(catch.skipped_count, 0, "{:?}", catch.runs);
    let caught_up = catch.runs.iter().filter(|r| r.outcome == "fired" && late(r)).count();
    assert!(
        caught_up >= 2,
        "catch-up fired {caught_up} late occurrences: {:?}",
        catch.runs
    );

    stop_worker.cancel();
    worker.await.unwrap();
    cluster.shutdown().await;
}

/// Runs of 2.5 s every second overlap. allow runs them side by side; forbid skips an
/// occurrence while the previous run goes on (recorded, with the reason); replace cancels the
/// previous run — its worker is told and kills it — and starts the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlap_policies() {
    bounded(overlap_policies_body()).await;
}

async fn overlap_policies_body() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let (stop_worker, worker) = start_worker(&cluster, WorkerOptions::new("w1", 16));
    wait_for_workers(&cluster, 1).await;
    let client = cluster.client();
    for (name, overlap) in [("allow", "allow"), ("forbid", "forbid"), ("replace", "replace")] {
        create(&client, name, every_second("sleep 2.5", "fire-once", 0, overlap)).await;
    }
    for name in ["allow", "forbid", "replace"] {
        wait_for_runs(&client, name, 5).await;
        pause(&client, name).await;
    }

    check_exactly_once(&client, "allow").await;
    let allow = schedule(&client, "allow").await;
    assert_eq!(allow.skipped_count, 0, "{:?}", allow.runs);

    check_exactly_once(&client, "forbid").await;
    let forbid = schedule(&client, "forbid").await;
    let overlaps = forbid
        .runs
        .iter()
        .filter(|r| r.outcome == "skipped" && r.reason.starts_with("overlap: the previous run"))
        .count();
    assert!(
        overlaps >= 2,
        "forbid skipped {overlaps} overlapping runs: {:?}",
        forbid.runs
    );

    let fired = check_exactly_once(&client, "replace").await;
    let replace = schedule(&client, "replace").await;
    let replaced: Vec<u64> = replace
        .runs
        .iter()
        .map(|r| r.replaced_task_id)
        .filter(|id| *id != 0)
        .collect();
    assert!(replaced.len() >= 2, "{:?}", replace.runs);
    for task_id in replaced {
        let task = wait_for_finish(&cluster, task_id).await;
        assert_eq!(state_of(&task), api::TaskState::Cancelled, "{task:?}");
        assert!(
            task.reason.starts_with("replaced by the run of schedule replace"),
            "{task:?}"
        );
        if let Some(attempt) = task.attempts.last() {
            // The worker stopped it well before its 2.5 s were up.
            assert_eq!(attempt.outcome, api::AttemptOutcome::Cancelled as i32, "{task:?}");
        }
    }
    // The last run is not replaced by anything: it finishes.
    let (_, last) = fired.last_key_value().unwrap();
    assert_eq!(
        state_of(&wait_for_finish(&cluster, *last).await),
        api::TaskState::Succeeded
    );

    stop_worker.cancel();
    worker.await.unwrap();
    cluster.shutdown().await;
}

/// A manual trigger runs at once, keyed by its number; bad definitions are refused with
/// INVALID_ARGUMENT, a name taken by another definition with ALREADY_EXISTS.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trigger_and_bad_definitions() {
    bounded(trigger_and_bad_definitions_body()).await;
}

async fn trigger_and_bad_definitions_body() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    let mut spec = every_second("true", "", 0, "");
    spec.recurrence = Some(api::schedule_spec::Recurrence::Cron(api::CronRecurrence {
        expression: "0 0 3 * * *".into(),
        time_zone: "Europe/Paris".into(),
    }));
    let created = create(&client, "nightly", spec.clone()).await;
    assert_eq!(created.next_fire_ms.len(), 5);
    assert!(created.next_fire_ms.windows(2).all(|w| w[1] > w[0]));
    let triggered = client
        .call(|mut c| async move {
            c.trigger_schedule(api::TriggerScheduleRequest {
                namespace: String::new(),
                name: "nightly".into(),
            })
            .await
        })
        .await
        .unwrap()
        .task
        .unwrap();
    assert_eq!(triggered.origin, "schedule/nightly/manual/1");
    let nightly = schedule(&client, "nightly").await;
    assert_eq!(nightly.runs.len(), 1);
    assert_eq!(nightly.runs[0].outcome, "triggered");

    let code = |result: Result<api::ScheduleResponse, ClientError>| result.unwrap_err().code();
    let create_with = |name: &str, spec: api::ScheduleSpec| {
        let client = client.clone();
        let name = name.to_string();
        async move {
            client
                .call(|mut c| {
                    let request = api::CreateScheduleRequest {
                        namespace: String::new(),
                        name: name.clone(),
                        spec: Some(spec.clone()),
                    };
                    async move { c.create_schedule(request).await }
                })
                .await
        }
    };
    let mut other = spec.clone();
    other.overlap = "forbid".into();
    assert_eq!(code(create_with("nightly", other).await), Some(Code::AlreadyExists));
    let mut bad_cron = spec.clone();
    bad_cron.recurrence = Some(api::schedule_spec::Recurrence::Cron(api::CronRecurrence {
        expression: "0 0 25 * * *".into(),
        time_zone: "UTC".into(),
    }));
    assert_eq!(
        code(create_with("bad-cron", bad_cron).await),
        Some(Code::InvalidArgument)
    );
    let mut bad_zone = spec.clone();
    bad_zone.recurrence = Some(api::schedule_spec::Recurrence::Cron(api::CronRecurrence {
        expression: "0 0 3 * * *".into(),
        time_zone: "Europe/Atlantis".into(),
    }));
    let error = create_with("bad-zone", bad_zone).await.unwrap_err();
    assert_eq!(error.code(), Some(Code::InvalidArgument));
    assert!(error.to_string().contains("unknown time zone"), "{error}");
    let mut bad_misfire = spec;
    bad_misfire.misfire = "sometimes".into();
    assert_eq!(
        code(create_with("bad-misfire", bad_misfire).await),
        Some(Code::InvalidArgument)
    );
    cluster.shutdown().await;
}

fn workflow_task(key: &str, command: &str, after: &[&str]) -> api::WorkflowTaskSpec {
    let mut spec = shell(key, command);
    spec.max_attempts = 1;
    api::WorkflowTaskSpec {
        key: key.into(),
        spec: Some(spec),
        after: after.iter().map(|a| a.to_string()).collect(),
    }
}

async fn wait_for_workflow(client: &ClusterClient, id: u64) -> api::Workflow {
    wait_until(&format!("workflow {id} to finish"), || async {
        let workflow = client.get_workflow(id, api::Consistency::Linearizable).await.ok()?;
        let done = [api::WorkflowState::Succeeded, api::WorkflowState::Failed]
            .iter()
            .any(|s| *s as i32 == workflow.state);
        done.then_some(workflow)
    })
    .await
}

/// A diamond runs in dependency order: no child starts before each of its parents ended. A
/// failed parent skips its descendants, an independent branch still runs, and the workflow
/// ends failed. A cycle is refused as a whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workflows_run_in_order_and_skip_after_a_failure() {
    bounded(workflows_run_in_order_and_skip_after_a_failure_body()).await;
}

async fn workflows_run_in_order_and_skip_after_a_failure_body() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let (stop_worker, worker) = start_worker(&cluster, WorkerOptions::new("w1", 4));
    wait_for_workers(&cluster, 1).await;
    let client = cluster.client();

    let diamond = api::SubmitWorkflowRequest {
        namespace: String::new(),
        name: "diamond".into(),
        tasks: vec![
            workflow_task("publish", "echo publish", &["build", "test"]),
            workflow_task("build", "sleep 0.2", &["fetch"]),
            workflow_task("test", "sleep 0.1", &["fetch"]),
            workflow_task("fetch", "sleep 0.2", &[]),
        ],
        request_id: String::new(),
    };
    let submitted = client.submit_workflow(diamond).await.unwrap().workflow.unwrap();
    let done = wait_for_workflow(&client, submitted.id).await;
    assert_eq!(done.state, api::WorkflowState::Succeeded as i32);
    let by_key: BTreeMap<String, api::Task> = done
        .tasks
        .iter()
        .map(|t| (t.key.clone(), t.task.clone().unwrap()))
        .collect();
    for (child, parents) in [
        ("build", &["fetch"][..]),
        ("test", &["fetch"]),
        ("publish", &["build", "test"]),
    ] {
        let started = by_key[child].attempts[0].started_at_ms;
        for parent in parents {
            let ended = by_key[*parent].attempts.last().unwrap().ended_at_ms;
            assert!(
                started >= ended,
                "{child} started at {started}, before {parent} ended at {ended}"
            );
        }
    }

    let failing = api::SubmitWorkflowRequest {
        namespace: String::new(),
        name: "failing".into(),
        tasks: vec![
            workflow_task("a", "exit 3", &[]),
            workflow_task("b", "echo b", &["a"]),
            workflow_task("c", "echo c", &["b"]),
            workflow_task("side", "echo side", &[]),
        ],
        request_id: String::new(),
    };
    let submitted = client.submit_workflow(failing).await.unwrap().workflow.unwrap();
    let done = wait_for_workflow(&client, submitted.id).await;
    assert_eq!(done.state, api::WorkflowState::Failed as i32);
    let states: BTreeMap<&str, (api::TaskState, &str)> = done
        .tasks
        .iter()
        .map(|t| {
            let task = t.task.as_ref().unwrap();
            (t.key.as_str(), (state_of(task), task.reason.as_str()))
        })
        .collect();
    assert_eq!(states["a"].0, api::TaskState::Failed);
    assert_eq!(states["side"].0, api::TaskState::Succeeded);
    assert_eq!(states["b"].0, api::TaskState::Skipped);
    assert!(states["b"].1.contains("failed"), "{states:?}");
    assert_eq!(states["c"].0, api::TaskState::Skipped);
    assert!(states["c"].1.contains("skipped"), "{states:?}");
    for key in ["b", "c"] {
        let task = done.tasks.iter().find(|t| t.key == key).unwrap().task.as_ref().unwrap();
        assert!(task.attempts.is_empty(), "{key} ran");
    }

    let cycle = api::SubmitWorkflowRequest {
        namespace: String::new(),
        name: "cycle".into(),
        tasks: vec![workflow_task("x", "true", &["y"]), workflow_task("y", "true", &["x"])],
        request_id: String::new(),
    };
    let error = client.submit_workflow(cycle).await.unwrap_err();
    assert_eq!(error.code(), Some(Code::InvalidArgument));
    assert!(error.to_string().contains("cycle"), "{error}");

    stop_worker.cancel();
    worker.await.unwrap();
    cluster.shutdown().await;
}

/// A broadcast reaches each of the three workers matching the selector once (not the fourth,
/// which does not match), each shard with its index and the total in its environment; the
/// parent reports every shard. A sharded run with one failing shard fails and names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broadcast_over_three_workers() {
    bounded(broadcast_over_three_workers_body()).await;
}

async fn broadcast_over_three_workers_body() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let mut workers = Vec::new();
    for (id, pool) in [("w1", "web"), ("w2", "web"), ("w3", "web"), ("w4", "batch")] {
        let mut options = WorkerOptions::new(id, 2);
        options.labels.insert("pool".into(), pool.into());
        workers.push(start_worker(&cluster, options));
    }
    wait_for_workers(&cluster, 4).await;
    let client = cluster.client();

    let mut spec = shell(
        "everywhere",
        "echo $RAFTSCHED_SHARD_INDEX/$RAFTSCHED_SHARD_TOTAL $RAFTSCHED_WORKER_ID",
    );
    spec.constraints.insert("pool".into(), "web".into());
    let parent = client.submit_broadcast(spec, 0).await.unwrap().task.unwrap();
    assert_eq!(parent.state, api::TaskState::Waiting as i32);
    let done = wait_for_finish(&cluster, parent.id).await;
    assert_eq!(state_of(&done), api::TaskState::Succeeded, "{done:?}");
    assert_eq!(done.shards.len(), 3);
    let mut seen_workers = BTreeSet::new();
    for report in &done.shards {
        assert_eq!(report.state, api::TaskState::Succeeded as i32);
        let shard = client
            .get_task(report.task_id, api::Consistency::Linearizable)
            .await
            .unwrap();
        assert_eq!(shard.parent_task_id, parent.id);
        let attempt = shard.attempts.last().unwrap();
        assert_eq!(attempt.worker_id, report.worker_id);
        assert_eq!(
            attempt.stdout_tail.trim(),
            format!("{}/3 {}", report.index, report.worker_id)
        );
        seen_workers.insert(report.worker_id.clone());
    }
    assert_eq!(seen_workers, BTreeSet::from(["w1".into(), "w2".into(), "w3".into()]));

    let mut spec = shell("split", "test $RAFTSCHED_SHARD_INDEX != 2");
    spec.max_attempts = 1;
    let parent = client.submit_broadcast(spec, 4).await.unwrap().task.unwrap();
    let done = wait_for_finish(&cluster, parent.id).await;
    assert_eq!(state_of(&done), api::TaskState::Failed, "{done:?}");
    assert!(
        done.reason.contains("1 of 4 shards did not succeed: shard 2"),
        "{}",
        done.reason
    );
    let states: Vec<i32> = done.shards.iter().map(|s| s.state).collect();
    let ok = api::TaskState::Succeeded as i32;
    assert_eq!(states, [ok, ok, api::TaskState::Failed as i32, ok]);

    let mut nobody = shell("nobody", "true");
    nobody.constraints.insert("pool".into(), "gpu".into());
    let error = client.submit_broadcast(nobody, 0).await.unwrap_err();
    assert_eq!(error.code(), Some(Code::InvalidArgument));
    assert!(
        error
            .to_string()
            .contains("no registered worker of namespace default matches"),
        "{error}"
    );

    for (stop, handle) in workers {
        stop.cancel();
        handle.await.unwrap();
    }
    cluster.shutdown().await;
}
