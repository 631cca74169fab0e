//! Dispatch through a real three-node cluster and real workers: every step committed before
//! a worker hears of it, fencing tokens, leases, retries, timeouts, cancellation, placement
//! and a leader change while tasks run.

use raftsched_testkit as common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestCluster;
use common::command_spec;
use common::next_assignment;
use common::shell;
use common::start_worker;
use common::test_tuning;
use common::wait_for_finish;
use common::wait_for_workers;
use common::wait_until;
use raftsched_api::v1 as api;
use raftsched_api::v1::workers_client::WorkersClient;
use raftsched_client::ClientError;
use raftsched_client::ClusterClient;
use raftsched_client::ErrorCode;
use raftsched_client::worker::HandlerError;
use raftsched_client::worker::TaskContext;
use raftsched_client::worker::WorkerOptions;

fn state_of(task: &api::Task) -> api::TaskState {
    api::TaskState::try_from(task.state).unwrap()
}

/// One attempt handed back, not counted against `max_attempts`, then a success on b.
fn assert_handed_back_then_done_by_b(done: &api::Task) {
    assert_eq!(state_of(done), api::TaskState::Succeeded, "{done:?}");
    assert_eq!(
        outcomes(done),
        [api::AttemptOutcome::HandedBack, api::AttemptOutcome::Succeeded]
    );
    assert_eq!(done.attempts[1].worker_id, "b");
}

async fn wait_for_running(cluster: &TestCluster, task_id: u64) {
    wait_until("the task to run", || async {
        let task = cluster
            .client()
            .get_task(task_id, api::Consistency::Linearizable)
            .await
            .ok()?;
        (state_of(&task) == api::TaskState::Running).then_some(())
    })
    .await;
}

fn outcomes(task: &api::Task) -> Vec<api::AttemptOutcome> {
    task.attempts
        .iter()
        .map(|a| api::AttemptOutcome::try_from(a.outcome).unwrap())
        .collect()
}

/// A hand-driven worker speaking the protocol directly, to test fencing and leases.
struct FakeWorker {
    client: ClusterClient,
    id: String,
    session: String,
}

impl FakeWorker {
    async fn register(cluster: &TestCluster, id: &str, lease_ms: u64) -> FakeWorker {
        let worker = FakeWorker {
            client: cluster.worker_client(id),
            id: id.into(),
            session: format!("{id}-session"),
        };
        let request = api::RegisterWorkerRequest {
            worker_id: worker.id.clone(),
            session_id: worker.session.clone(),
            slots: 1,
            lease_ms,
            ..Default::default()
        };
        worker
            .client
            .call_channel(|c| {
                let request = request.clone();
                async move { WorkersClient::new(c).register_worker(request).await }
            })
            .await
            .expect("register");
        worker
    }

    async fn attach(&self) -> tonic::Streaming<api::WorkerInstruction> {
        let request = api::AttachRequest {
            worker_id: self.id.clone(),
            session_id: self.session.clone(),
            running_tokens: vec![],
        };
        self.client
            .call_channel(|c| {
                let request = request.clone();
                async move { WorkersClient::new(c).attach(request).await }
            })
            .await
            .expect("attach")
    }

    /// Attaches, submits one task and takes its assignment: the task, the token, and the
    /// stream (kept open by the caller, as a live worker would).
    async fn take_one_task(&self, cluster: &TestCluster) -> (api::Task, u64, tonic::Streaming<api::WorkerInstruction>) {
        let mut stream = self.attach().await;
        let task = cluster
            .client()
            .submit_task(command_spec("t", ""))
            .await
            .unwrap()
            .task
            .unwrap();
        let assignment = next_assignment(&mut stream).await;
        assert_eq!(assignment.task.unwrap().id, task.id);
        (task, assignment.token, stream)
    }

    async fn report(&self, task_id: u64, token: u64, outcome: api::AttemptOutcome) -> Result<(), ClientError> {
        let request = api::ReportResultRequest {
            task_id,
            token,
            outcome: outcome as i32,
            worker_id: self.id.clone(),
            session_id: self.session.clone(),
            ..Default::default()
        };
        self.client
            .call_channel(|c| {
                let request = request.clone();
                async move { WorkersClient::new(c).report_result(request).await }
            })
            .await
            .map(|_| ())
    }
}

fn stale(result: Result<(), ClientError>) {
    match result {
        Err(ClientError::Rejected { code, message, .. }) => {
            assert_eq!(code, ErrorCode::FailedPrecondition, "{message}");
            assert!(message.contains("stale"), "{message}");
        }
        other => panic!("expected a stale-token rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_token_is_never_recorded() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let worker = FakeWorker::register(&cluster, "fake", 60_000).await;
    let (task, token, _stream) = worker.take_one_task(&cluster).await;

    stale(worker.report(task.id, token + 1, api::AttemptOutcome::Succeeded).await);
    stale(worker.report(task.id, token - 1, api::AttemptOutcome::Succeeded).await);
    worker
        .report(task.id, token, api::AttemptOutcome::Succeeded)
        .await
        .unwrap();
    // The same report again is stale: the attempt is over.
    stale(worker.report(task.id, token, api::AttemptOutcome::Failed).await);

    let done = wait_for_finish(&cluster, task.id).await;
    assert_eq!(state_of(&done), api::TaskState::Succeeded);
    assert_eq!(outcomes(&done), [api::AttemptOutcome::Succeeded]);
    cluster.shutdown().await;
}

/// The leader's applied index and state digest: a refusal must leave both alone (no log
/// entry, no change).
fn applied_and_digest(cluster: &TestCluster, leader: u64) -> (u64, u64) {
    let state = cluster.node(leader).app().state().read();
    let index = state.last_applied.as_ref().map_or(0, |log_id| log_id.index);
    (index, state.scheduler.digest())
}

fn not_the_holder(result: Result<(), ClientError>, task_id: u64, holder: &str) -> String {
    match result {
        Err(ClientError::Rejected { code, message, .. }) => {
            assert_eq!(code, ErrorCode::PermissionDenied, "{message}");
            for part in [
                format!("task {task_id}'s attempt"),
                format!("held by worker \"{holder}\""),
                "only the worker running an attempt".to_string(),
            ] {
                assert!(message.contains(&part), "{message:?} lacks {part:?}");
            }
            message
        }
        other => panic!("expected PERMISSION_DENIED, got {other:?}"),
    }
}

/// Issue 12: a fencing token is shown in every attempt and given to the task, so it must be
/// no credential. Worker B reporting worker A's running attempt with A's token is refused
/// (PERMISSION_DENIED, no log entry, state unchanged), as is A's id with a session A does
/// not have; the task still runs A's attempt, and A's own report then records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_from_another_worker_or_session_is_refused_and_changes_nothing() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let a = FakeWorker::register(&cluster, "a", 60_000).await;
    let (task, token, _stream) = a.take_one_task(&cluster).await;
    // Registered only now, so the dispatcher had no reason to pick it.
    let b = FakeWorker::register(&cluster, "b", 60_000).await;
    // Worker a's own credential (a restarted worker has it too) with a session a does not
    // have: the credential names the worker, only the session tells which run holds it.
    let a_elsewhere = FakeWorker {
        client: cluster.worker_client("a"),
        id: "a".into(),
        session: "not-a-session".into(),
    };

    let leader = cluster.wait_for_leader().await;
    let before = applied_and_digest(&cluster, leader);
    let message = not_the_holder(
        b.report(task.id, token, api::AttemptOutcome::Succeeded).await,
        task.id,
        "a",
    );
    assert!(message.contains("from worker \"b\""), "{message}");
    // A hand-back is a report too.
    not_the_holder(
        b.report(task.id, token, api::AttemptOutcome::HandedBack).await,
        task.id,
        "a",
    );
    let message = not_the_holder(
        a_elsewhere.report(task.id, token, api::AttemptOutcome::Failed).await,
        task.id,
        "a",
    );
    assert!(message.contains("in another session"), "{message}");
    assert!(
        !message.contains("not-a-session") && !message.contains("a-session"),
        "{message}"
    );
    assert_eq!(
        applied_and_digest(&cluster, leader),
        before,
        "a refused report wrote an entry or changed the state"
    );
    let running = cluster
        .client()
        .get_task(task.id, api::Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(state_of(&running), api::TaskState::Running);
    assert_eq!(running.attempts.len(), 1);
    assert_eq!(
        (running.attempts[0].worker_id.as_str(), running.attempts[0].token),
        ("a", token)
    );

    a.report(task.id, token, api::AttemptOutcome::Succeeded).await.unwrap();
    let done = wait_for_finish(&cluster, task.id).await;
    assert_eq!(state_of(&done), api::TaskState::Succeeded);
    assert_eq!(outcomes(&done), [api::AttemptOutcome::Succeeded]);
    cluster.wait_for_identical_replicas().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_worker_loses_its_lease_and_its_task_completes_elsewhere_once() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let silent = FakeWorker::register(&cluster, "silent", 1000).await;
    let mut stream = silent.attach().await;
    let task = cluster
        .client()
        .submit_task(shell("t", "echo done"))
        .await
        .unwrap()
        .task
        .unwrap();
    let assignment = next_assignment(&mut stream).await;

    // The fake worker never heartbeats: after its lease the task goes back to the queue,
    // and a real worker finishes it.
    let (stop, handle) = start_worker(&cluster, WorkerOptions::new("real", 2));
    let done = wait_for_finish(&cluster, task.id).await;
    assert_eq!(state_of(&done), api::TaskState::Succeeded);
    assert_eq!(
        outcomes(&done),
        [api::AttemptOutcome::LeaseExpired, api::AttemptOutcome::Succeeded]
    );
    assert_eq!(done.attempts[1].worker_id, "real");
    // The silent worker's late result is refused.
    stale(
        silent
            .report(task.id, assignment.token, api::AttemptOutcome::Failed)
            .await,
    );
    stop.cancel();
    handle.await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_over_three_workers_each_complete_once() {
    let _slot = common::heavy_load_slot().await;
    let cluster = TestCluster::start(3, test_tuning()).await;
    let workers: Vec<_> = (1..=3)
        .map(|i| start_worker(&cluster, WorkerOptions::new(format!("w{i}"), 8)))
        .collect();
    wait_for_workers(&cluster, 3).await;
    let client = cluster.client();
    let mut ids = Vec::new();
    for batch in 0..10 {
        let specs: Vec<api::TaskSpec> = (0..100).map(|i| shell(&format!("t{batch}-{i}"), "true")).collect();
        let response = client.submit_tasks(specs).await.unwrap();
        ids.extend(response.results.iter().map(|r| r.task_id));
    }
    assert_eq!(ids.len(), 1000);
    wait_until("all 1000 tasks to succeed", || async {
        let leader = cluster.wait_for_leader().await;
        let state = cluster.node(leader).app().state().read();
        (state
            .scheduler
            .count_by_status(raftsched_core::state::TaskStatus::Succeeded)
            == 1000)
            .then_some(())
    })
    .await;
    let mut per_worker: BTreeMap<String, usize> = BTreeMap::new();
    let mut page_token = String::new();
    let mut seen = 0;
    loop {
        let page = client
            .list_tasks(api::ListTasksRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        for task in &page.tasks {
            seen += 1;
            assert_eq!(state_of(task), api::TaskState::Succeeded, "task {}", task.id);
            assert_eq!(
                outcomes(task),
                [api::AttemptOutcome::Succeeded],
                "task {} ran once",
                task.id
            );
            *per_worker.entry(task.attempts[0].worker_id.clone()).or_default() += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, 1000);
    assert_eq!(per_worker.len(), 3, "every worker took work: {per_worker:?}");
    for (stop, handle) in workers {
        stop.cancel();
        handle.await.unwrap();
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_with_backoff_until_attempts_run_out() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let (stop, handle) = start_worker(&cluster, WorkerOptions::new("w", 2));
    let spec = common::spec::builder("flaky")
        .command("echo trying; exit 7")
        .max_attempts(3)
        .retry_backoff_ms(100)
        .build();
    let task = cluster.client().submit_task(spec).await.unwrap().task.unwrap();
    let done = wait_for_finish(&cluster, task.id).await;
    assert_eq!(state_of(&done), api::TaskState::Failed);
    assert_eq!(outcomes(&done), [api::AttemptOutcome::Failed; 3]);
    assert!(done.reason.contains("after 3 attempts"), "{}", done.reason);
    let last = done.attempts.last().unwrap();
    assert_eq!((last.has_exit_code, last.exit_code), (true, 7));
    assert!(last.stdout_tail.contains("trying"));
    // Equal jitter: the n-th retry waits at least half of 100 ms * 2^(n-1).
    for (n, pair) in done.attempts.windows(2).enumerate() {
        let gap_ms = pair[1].started_at_ms - pair[0].ended_at_ms;
        let min_gap_ms = 100 * (1 << n) / 2;
        assert!(gap_ms >= min_gap_ms, "retry {} came after {gap_ms} ms", n + 1);
    }

    let mut permanent = shell("bad", "exit 1");
    permanent.payload = Some(api::task_spec::Payload::Opaque(api::OpaquePayload {
        kind: "no-such-handler".into(),
        data: vec![],
    }));
    let task = cluster.client().submit_task(permanent).await.unwrap().task.unwrap();
    let done = wait_for_finish(&cluster, task.id).await;
    assert_eq!(state_of(&done), api::TaskState::Failed);
    assert_eq!(done.attempts.len(), 1, "a non-retryable failure is not retried");
    assert!(done.reason.contains("no handler"), "{}", done.reason);
    stop.cancel();
    handle.await.unwrap();
    cluster.shutdown().await;
}

/// Waits until the command's pid file exists and returns the pid it holds.
pub(crate) async fn pid_from(path: &std::path::Path) -> i32 {
    wait_until("the command to write its pid", || async {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    })
    .await
}

pub(crate) async fn wait_until_gone(pid: i32) {
    wait_until(&format!("process {pid} to be killed"), || async {
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| stat.split_whitespace().nth(2) == Some("Z"))
            .unwrap_or(true);
        (!alive || zombie).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_and_a_cancel_kill_the_process_group() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let (stop, handle) = start_worker(&cluster, WorkerOptions::new("w", 2));
    let dir = tempfile::tempdir().unwrap();

    let slow_pid = dir.path().join("slow.pid");
    let mut slow = shell("slow", &format!("sleep 30 & echo $! > {}; wait", slow_pid.display()));
    slow.attempt_timeout_ms = 500;
    slow.max_attempts = 1;
    let task = cluster.client().submit_task(slow).await.unwrap().task.unwrap();
    let sleeper = pid_from(&slow_pid).await;
    let done = wait_for_finish(&cluster, task.id).await;
    assert_eq!(state_of(&done), api::TaskState::Failed);
    assert_eq!(outcomes(&done), [api::AttemptOutcome::TimedOut]);
    wait_until_gone(sleeper).await;

    let cancelled_pid = dir.path().join("cancelled.pid");
    let long = shell(
        "long",
        &format!("sleep 30 & echo $! > {}; wait", cancelled_pid.display()),
    );
    let task = cluster.client().submit_task(long).await.unwrap().task.unwrap();
    let sleeper = pid_from(&cancelled_pid).await;
    cluster.client().cancel_task(task.id, "test").await.unwrap();
    wait_until_gone(sleeper).await;
    let done = wait_for_finish(&cluster, task.id).await;
    assert_eq!(state_of(&done), api::TaskState::Cancelled);
    assert_eq!(outcomes(&done), [api::AttemptOutcome::Cancelled]);
    stop.cancel();
    handle.await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_honours_labels_and_says_why_a_task_waits() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let mut gpu = WorkerOptions::new("gpu-box", 1);
    gpu.labels.insert("gpu".into(), "true".into());
    let workers = [
        start_worker(&cluster, gpu),
        start_worker(&cluster, WorkerOptions::new("plain", 4)),
    ];
    wait_for_workers(&cluster, 2).await;
    let mut wants_gpu = shell("train", "true");
    wants_gpu.constraints.insert("gpu".into(), "true".into());
    let mut wants_tpu = shell("exotic", "true");
    wants_tpu.constraints.insert("tpu".into(), "v5".into());
    let client = cluster.client();
    let gpu_task = client.submit_task(wants_gpu).await.unwrap().task.unwrap();
    let tpu_task = client.submit_task(wants_tpu).await.unwrap().task.unwrap();

    let done = wait_for_finish(&cluster, gpu_task.id).await;
    assert_eq!(done.attempts[0].worker_id, "gpu-box");
    let waiting = wait_until("a reason for the unplaceable task", || async {
        let task = client
            .get_task(tpu_task.id, api::Consistency::Linearizable)
            .await
            .ok()?;
        (!task.pending_reason.is_empty()).then_some(task)
    })
    .await;
    assert_eq!(state_of(&waiting), api::TaskState::Pending);
    assert_eq!(waiting.pending_reason, "no worker with label tpu=v5");
    for (stop, handle) in workers {
        stop.cancel();
        handle.await.unwrap();
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_run_opaque_tasks_of_their_kind() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster
        .worker_client("w")
        .with_overall_deadline(Duration::from_secs(3600));
    let worker = raftsched_client::worker::Worker::new(client, WorkerOptions::new("w", 2)).handle(
        "reverse",
        |task: TaskContext| async move {
            let text = String::from_utf8(task.data).map_err(|e| HandlerError {
                message: e.to_string(),
                retryable: false,
            })?;
            Ok(text.chars().rev().collect::<String>())
        },
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn({
        let stop = stop.clone();
        async move { worker.run(stop).await.unwrap() }
    });
    let spec = common::spec::builder("rev")
        .opaque("reverse", b"raftsched".to_vec())
        .build();
    let task = cluster.client().submit_task(spec).await.unwrap().task.unwrap();
    let done = wait_for_finish(&cluster, task.id).await;
    assert_eq!(state_of(&done), api::TaskState::Succeeded);
    assert_eq!(done.attempts[0].stdout_tail, "dehcstfar");
    stop.cancel();
    handle.await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_tasks_survive_a_leader_change() {
    let mut cluster = TestCluster::start(3, test_tuning()).await;
    let (stop, handle) = start_worker(&cluster, WorkerOptions::new("w", 8));
    wait_for_workers(&cluster, 1).await;
    let client = cluster.client();
    let specs: Vec<api::TaskSpec> = (0..5)
        .map(|i| shell(&format!("t{i}"), "sleep 1; echo survived"))
        .collect();
    let ids: Vec<u64> = client
        .submit_tasks(specs)
        .await
        .unwrap()
        .results
        .iter()
        .map(|r| r.task_id)
        .collect();
    wait_until("all five to run", || async {
        let leader = cluster.wait_for_leader().await;
        let running = cluster
            .node(leader)
            .app()
            .state()
            .read()
            .scheduler
            .count_by_status(raftsched_core::state::TaskStatus::Running);
        (running == 5).then_some(())
    })
    .await;
    let old_leader = cluster.wait_for_leader().await;
    cluster.stop_node(old_leader).await;

    for id in ids {
        let done = wait_for_finish(&cluster, id).await;
        assert_eq!(state_of(&done), api::TaskState::Succeeded, "task {id}");
        assert_eq!(
            outcomes(&done),
            [api::AttemptOutcome::Succeeded],
            "task {id} kept its attempt"
        );
        assert!(done.attempts[0].stdout_tail.contains("survived"));
    }
    // Dispatch goes on under the new leader.
    let after = client.submit_task(shell("after", "true")).await.unwrap().task.unwrap();
    assert_eq!(
        state_of(&wait_for_finish(&cluster, after.id).await),
        api::TaskState::Succeeded
    );
    stop.cancel();
    handle.await.unwrap();
    cluster.restart_node(old_leader).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_worker_hands_back_what_it_cannot_finish() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let mut draining = WorkerOptions::new("a", 1);
    draining.drain_timeout = Duration::from_millis(200);
    let (stop_a, handle_a) = start_worker(&cluster, draining);
    wait_for_workers(&cluster, 1).await;
    let mut spec = shell(
        "t",
        r#"if [ "$RAFTSCHED_WORKER_ID" = a ]; then sleep 30; fi; echo done"#,
    );
    spec.max_attempts = 1;
    let task = cluster.client().submit_task(spec).await.unwrap().task.unwrap();
    wait_for_running(&cluster, task.id).await;
    let (stop_b, handle_b) = start_worker(&cluster, WorkerOptions::new("b", 1));
    stop_a.cancel();
    handle_a.await.unwrap();

    // Handed back, it does not use up its only attempt: b runs it to the end.
    let done = wait_for_finish(&cluster, task.id).await;
    assert_handed_back_then_done_by_b(&done);
    stop_b.cancel();
    handle_b.await.unwrap();
    cluster.shutdown().await;
}

/// A worker that stops while an assignment is still on its way (committed, not yet read from
/// the stream) never runs it. Draining with what it holds, it gets that attempt handed back
/// at once, without using up the task's only try; before, the task waited out the lease
/// and failed (the intermittent failure of the test above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_hands_back_an_assignment_still_in_flight() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let fake = FakeWorker::register(&cluster, "fake", 60_000).await;
    // Attached but never read: the push stays in flight.
    let _stream = fake.attach().await;
    let mut spec = shell("t", "true");
    spec.max_attempts = 1;
    let task = cluster.client().submit_task(spec).await.unwrap().task.unwrap();
    wait_for_running(&cluster, task.id).await;
    let request = api::DrainWorkerRequest {
        worker_id: fake.id.clone(),
        session_id: fake.session.clone(),
        holding: Some(api::Holding { running_tokens: vec![] }),
    };
    fake.client
        .call_channel(|c| {
            let request = request.clone();
            async move { WorkersClient::new(c).drain_worker(request).await }
        })
        .await
        .expect("drain");

    let (stop_b, handle_b) = start_worker(&cluster, WorkerOptions::new("b", 1));
    let done = wait_for_finish(&cluster, task.id).await;
    assert_handed_back_then_done_by_b(&done);
    stop_b.cancel();
    handle_b.await.unwrap();
    cluster.shutdown().await;
}
