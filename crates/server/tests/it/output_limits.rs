//! A result is never dropped for its size: tasks that print far more than the 4 KiB tail
//! (text, random bytes, on stdout or stderr), nothing at all, or a 10 KiB handler error all
//! end as their exit says, with tails and errors cut to the limits. A report over the limits
//! from an older worker is stored cut, not refused.

use raftsched_testkit as common;

use std::time::Duration;

use common::TestCluster;
use common::shell;
use common::test_tuning;
use common::wait_for_finish;
use common::wait_for_workers;
use raftsched_api::v1 as api;
use raftsched_api::v1::workers_client::WorkersClient;
use raftsched_client::worker::HandlerError;
use raftsched_client::worker::TaskContext;
use raftsched_client::worker::Worker;
use raftsched_client::worker::WorkerOptions;
use raftsched_core::state::limits::MAX_ERROR_BYTES;
use raftsched_core::state::limits::MAX_OUTPUT_TAIL_BYTES;
use raftsched_core::state::limits::TRUNCATION_MARKER;
use raftsched_core::state::limits::truncate_error;
use raftsched_core::state::limits::truncate_tail;
use rand::Rng;
use rand::SeedableRng;
use tokio_util::sync::CancellationToken;

/// 100 KB, as in the issue: 24 times the tail.
const BIG_BYTES: usize = 100_000;
/// A handler error of 10 KiB: 10 times the error limit.
const BIG_ERROR_BYTES: usize = 10 * 1024;

/// What a task must end as.
struct Expect {
    state: api::TaskState,
    exit_code: Option<i32>,
}

const SUCCEEDS: Expect = Expect {
    state: api::TaskState::Succeeded,
    exit_code: Some(0),
};

fn state_of(task: &api::Task) -> api::TaskState {
    api::TaskState::try_from(task.state).expect("a known task state")
}

/// One attempt only, so a failure is final at once and a success is not a lucky retry.
fn once(mut spec: api::TaskSpec) -> api::TaskSpec {
    spec.max_attempts = 1;
    spec
}

fn opaque(name: &str, kind: &str) -> api::TaskSpec {
    once(common::spec::builder(name).opaque(kind, Vec::new()).build())
}

/// Checks the single attempt ended as expected and its text is within the limits; returns it.
fn check_attempt(task: &api::Task, expect: &Expect) -> api::Attempt {
    assert_eq!(state_of(task), expect.state, "task {:?}: {task:?}", task.spec);
    assert_eq!(task.attempts.len(), 1, "one attempt, no retry: {:?}", task.attempts);
    let attempt = task.attempts[0].clone();
    assert_eq!(attempt.has_exit_code.then_some(attempt.exit_code), expect.exit_code);
    assert!(
        attempt.stdout_tail.len() <= MAX_OUTPUT_TAIL_BYTES,
        "{}",
        attempt.stdout_tail.len()
    );
    assert!(
        attempt.stderr_tail.len() <= MAX_OUTPUT_TAIL_BYTES,
        "{}",
        attempt.stderr_tail.len()
    );
    assert!(attempt.error.len() <= MAX_ERROR_BYTES, "{}", attempt.error.len());
    attempt
}

/// A full tail of ASCII output: exactly the limit, the marker, then the output's last bytes.
fn check_full_ascii_tail(tail: &str, ends_with: &str) {
    assert_eq!(tail.len(), MAX_OUTPUT_TAIL_BYTES);
    assert!(tail.starts_with(TRUNCATION_MARKER), "{:?}", &tail[..20]);
    assert!(tail.ends_with(ends_with), "{:?}", &tail[tail.len() - 20..]);
}

/// The tail of `seq 1 100000`: after the first (partial) line, consecutive numbers up to
/// 100000, i.e. the last ~4 KiB of the output.
fn check_seq_tail(tail: &str) {
    check_full_ascii_tail(tail, "99999\n100000\n");
    let numbers: Vec<u64> = tail[TRUNCATION_MARKER.len()..]
        .split_terminator('\n')
        .skip(1)
        .map(|line| line.parse().expect("a number per line"))
        .collect();
    let first = numbers[0];
    assert_eq!(numbers, (first..=100_000).collect::<Vec<_>>());
    // 6 bytes per line here ("99999\n"): about 4093 / 6 ≈ 680 lines.
    assert!(numbers.len() > 600, "{} lines", numbers.len());
}

/// The tail of arbitrary bytes: cut, marked, and nearly full (lossy conversion and a split
/// character cost at most a few bytes at the front).
fn check_binary_tail(tail: &str) {
    assert!(tail.starts_with(TRUNCATION_MARKER), "{:?}", &tail[..20]);
    assert!(tail.len() > MAX_OUTPUT_TAIL_BYTES - 8, "{}", tail.len());
}

/// Seeded so a failure replays: `OUTPUT_LIMITS_SEED=<n>` repeats a run.
fn random_bytes(len: usize) -> Vec<u8> {
    let seed = std::env::var("OUTPUT_LIMITS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("random output seed: {seed} (replay with OUTPUT_LIMITS_SEED={seed})");
    let mut bytes = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut bytes[..]);
    bytes
}

async fn failing_handler(_task: TaskContext) -> Result<String, HandlerError> {
    let message = format!("handler failed: {}", "e".repeat(BIG_ERROR_BYTES));
    Err(HandlerError {
        message,
        retryable: false,
    })
}

async fn chatty_handler(_task: TaskContext) -> Result<String, HandlerError> {
    Ok("0123456789".repeat(BIG_BYTES / 10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_and_empty_outputs_and_errors_end_as_their_exit_says() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let random_file = dir.path().join("random.bin");
    std::fs::write(&random_file, random_bytes(BIG_BYTES)).expect("write random bytes");
    let client = cluster
        .worker_client("w")
        .with_overall_deadline(Duration::from_secs(3600));
    let worker = Worker::new(client, WorkerOptions::new("w", 8))
        .handle("fail-10k", failing_handler)
        .handle("print-100k", chatty_handler);
    let stop = CancellationToken::new();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move { worker.run(stop).await.expect("worker runs") }
    });
    wait_for_workers(&cluster, 1).await;

    let specs = vec![
        // ~590 KB of text, the command.
        once(shell("seq", "seq 1 100000")),
        // Exactly 100 KB: 10,000 lines of 10 bytes.
        once(shell("text-100k", "yes 123456789 | head -c 100000")),
        once(shell("random-seeded", &format!("cat '{}'", random_file.display()))),
        once(shell("random-urandom", "head -c 100000 /dev/urandom")),
        once(shell("nothing", "true")),
        once(shell(
            "stderr-100k",
            "echo out; yes err-line- | head -c 100000 >&2; exit 3",
        )),
        opaque("handler-error-10k", "fail-10k"),
        opaque("handler-output-100k", "print-100k"),
    ];
    let submitted = cluster.client().submit_tasks(specs).await.expect("submit");
    assert!(
        submitted.results.iter().all(|r| r.error.is_empty()),
        "{:?}",
        submitted.results
    );
    let ids: Vec<u64> = submitted.results.iter().map(|r| r.task_id).collect();
    assert_eq!(ids.len(), 8);
    let mut done = Vec::new();
    for id in &ids {
        done.push(wait_for_finish(&cluster, *id).await);
    }

    check_seq_tail(&check_attempt(&done[0], &SUCCEEDS).stdout_tail);
    check_full_ascii_tail(&check_attempt(&done[1], &SUCCEEDS).stdout_tail, "123456789\n");
    check_binary_tail(&check_attempt(&done[2], &SUCCEEDS).stdout_tail);
    check_binary_tail(&check_attempt(&done[3], &SUCCEEDS).stdout_tail);
    let nothing = check_attempt(&done[4], &SUCCEEDS);
    assert_eq!((nothing.stdout_tail.as_str(), nothing.stderr_tail.as_str()), ("", ""));

    let failed_exit = Expect {
        state: api::TaskState::Failed,
        exit_code: Some(3),
    };
    let stderr_big = check_attempt(&done[5], &failed_exit);
    assert_eq!(stderr_big.stdout_tail, "out\n");
    check_full_ascii_tail(&stderr_big.stderr_tail, "err-line-\n");

    let failed = Expect {
        state: api::TaskState::Failed,
        exit_code: None,
    };
    let handler_error = check_attempt(&done[6], &failed).error;
    assert_eq!(handler_error.len(), MAX_ERROR_BYTES);
    assert!(
        handler_error.starts_with("handler failed: eee"),
        "{:?}",
        &handler_error[..30]
    );
    assert!(handler_error.ends_with(TRUNCATION_MARKER));
    let handler_output = check_attempt(
        &done[7],
        &Expect {
            exit_code: None,
            ..SUCCEEDS
        },
    );
    check_full_ascii_tail(&handler_output.stdout_tail, "0123456789");

    stop.cancel();
    running.await.expect("worker task");
    cluster.shutdown().await;
}

async fn register_and_take_one(client: &raftsched_client::ClusterClient) -> api::Assignment {
    let register = api::RegisterWorkerRequest {
        worker_id: "old-worker".into(),
        session_id: "old-session".into(),
        slots: 1,
        lease_ms: 60_000,
        ..Default::default()
    };
    client
        .call_channel(|c| {
            let request = register.clone();
            async move { WorkersClient::new(c).register_worker(request).await }
        })
        .await
        .expect("register");
    let attach = api::AttachRequest {
        worker_id: "old-worker".into(),
        session_id: "old-session".into(),
        running_tokens: vec![],
    };
    let mut stream = client
        .call_channel(|c| {
            let request = attach.clone();
            async move { WorkersClient::new(c).attach(request).await }
        })
        .await
        .expect("attach");
    common::next_assignment(&mut stream).await
}

/// An older worker sends its tail plus a marker, or lossy text grown past the limit: the
/// leader cuts it (as apply would) and records the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_report_from_an_older_worker_is_stored_cut() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let task = cluster
        .client()
        .submit_task(once(shell("old", "true")))
        .await
        .expect("submit")
        .task
        .expect("task");
    // The worker protocol with the worker's own credential, as an older worker has.
    let client = cluster.worker_client("old-worker");
    let assignment = register_and_take_one(&client).await;
    assert_eq!(assignment.task.as_ref().map(|t| t.id), Some(task.id));

    let ten_kib = 10 * 1024;
    let stdout: String = (0..2500).map(|n| format!("{n}\n")).collect();
    assert!(stdout.len() > ten_kib);
    let stderr = "é".repeat(ten_kib / 2); // 2-byte characters: the cut may fall inside one
    let error = format!("boom: {}", "é".repeat(ten_kib / 2));
    let report = api::ReportResultRequest {
        task_id: task.id,
        token: assignment.token,
        outcome: api::AttemptOutcome::Failed as i32,
        exit_code: 1,
        has_exit_code: true,
        error: error.clone(),
        non_retryable: true,
        stdout_tail: stdout.clone(),
        stderr_tail: stderr.clone(),
        worker_id: "old-worker".into(),
        session_id: "old-session".into(),
    };
    let response = client
        .call_channel(|c| {
            let request = report.clone();
            async move { WorkersClient::new(c).report_result(request).await }
        })
        .await
        .expect("an over-long report is accepted");
    assert_eq!(response.state, api::TaskState::Failed as i32);

    let stored = wait_for_finish(&cluster, task.id).await;
    let attempt = check_attempt(
        &stored,
        &Expect {
            state: api::TaskState::Failed,
            exit_code: Some(1),
        },
    );
    assert_eq!(attempt.stdout_tail, truncate_tail(&stdout, MAX_OUTPUT_TAIL_BYTES));
    assert!(attempt.stdout_tail.ends_with("2498\n2499\n"));
    assert_eq!(attempt.stderr_tail, truncate_tail(&stderr, MAX_OUTPUT_TAIL_BYTES));
    assert_eq!(attempt.error, truncate_error(&error, MAX_ERROR_BYTES));
    assert!(attempt.error.starts_with("boom: é") && attempt.error.ends_with(TRUNCATION_MARKER));
    // Every replica applied the same cut.
    cluster.wait_for_identical_replicas().await;
    cluster.shutdown().await;
}
