//! What a real worker's command tasks inherit and how they are stopped, through a cluster:
//! the environment is an allowlist (never the worker's secrets), a timed-out or cancelled
//! task gets SIGTERM then SIGKILL after the kill grace, and the attempt's error says which.
//! The worker's environment is given to it explicitly, so no test changes this process's.

use raftsched_testkit as common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Duration;

use common::TestCluster;
use common::shell;
use common::start_worker;
use common::test_tuning;
use common::wait_for_finish;
use raftsched_api::v1 as api;
use raftsched_client::worker::ExecutionOptions;
use raftsched_client::worker::WorkerOptions;

use crate::dispatch::pid_from;
use crate::dispatch::wait_until_gone;

/// The grace of these tests' worker: long enough for a trap to run, short enough that waiting
/// it out for a task ignoring SIGTERM keeps the test quick.
const GRACE: Duration = Duration::from_millis(500);

/// A worker whose own environment holds secrets next to the allowlisted variables.
fn worker_with_secrets() -> WorkerOptions {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    let parent: Vec<(OsString, OsString)> = [
        ("HOME", "/home/worker"),
        ("PASSED", "passed to tasks"),
        ("WORKER_SECRET", "s3cret"),
        ("RAFTSCHED_TLS_DIR", "/etc/raftsched/worker-tls"),
    ]
    .into_iter()
    .map(|(name, value)| (name.into(), value.into()))
    .chain([("PATH".into(), path)])
    .collect();
    WorkerOptions {
        execution: ExecutionOptions::new(parent, &["PASSED".into()], GRACE).expect("valid options"),
        ..WorkerOptions::new("hygienic", 4)
    }
}

fn with_env(mut spec: api::TaskSpec, env: &[(&str, &str)]) -> api::TaskSpec {
    if let Some(api::task_spec::Payload::Command(command)) = spec.payload.as_mut() {
        command.env = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    }
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_sees_its_env_and_the_allowlist_but_not_the_workers_secrets() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let (stop, handle) = start_worker(&cluster, worker_with_secrets());
    let spec = with_env(shell("env", "env"), &[("FOO", "from the task")]);
    let task = cluster.client().submit_task(spec).await.unwrap().task.unwrap();
    let done = wait_for_finish(&cluster, task.id).await;
    let attempt = done.attempts.last().expect("an attempt");
    assert_eq!(attempt.outcome, api::AttemptOutcome::Succeeded as i32, "{attempt:?}");
    let seen: BTreeMap<&str, &str> = attempt
        .stdout_tail
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    let task_id = task.id.to_string();
    for (name, value) in [
        ("FOO", "from the task"),
        ("HOME", "/home/worker"),
        ("PASSED", "passed to tasks"),
        ("RAFTSCHED_TASK_ID", task_id.as_str()),
        ("RAFTSCHED_WORKER_ID", "hygienic"),
    ] {
        assert_eq!(seen.get(name), Some(&value), "{name} in {}", attempt.stdout_tail);
    }
    assert!(seen.contains_key("PATH"), "{}", attempt.stdout_tail);
    for absent in ["WORKER_SECRET", "RAFTSCHED_TLS_DIR"] {
        assert!(!seen.contains_key(absent), "{absent} leaked: {}", attempt.stdout_tail);
    }
    stop.cancel();
    handle.await.unwrap();
    cluster.shutdown().await;
}

/// Runs `trap` then a 30 s sleep as task `name` with a 2 s timeout and one attempt, and
/// returns its timed-out attempt and the shell's pid.
async fn time_out(cluster: &TestCluster, dir: &std::path::Path, name: &str, trap: &str) -> (api::Attempt, i32) {
    let ready = dir.join(format!("{name}.pid"));
    let mut spec = shell(name, &format!("{trap}; echo $$ > {}; sleep 30", ready.display()));
    spec.attempt_timeout_ms = 2000;
    spec.max_attempts = 1;
    let task = cluster.client().submit_task(spec).await.unwrap().task.unwrap();
    let shell_pid = pid_from(&ready).await;
    let done = wait_for_finish(cluster, task.id).await;
    let attempt = done.attempts.last().expect("an attempt").clone();
    assert_eq!(attempt.outcome, api::AttemptOutcome::TimedOut as i32, "{attempt:?}");
    (attempt, shell_pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_and_cancelled_tasks_get_sigterm_then_sigkill() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let (stop, handle) = start_worker(&cluster, worker_with_secrets());
    let dir = tempfile::tempdir().unwrap();

    // Traps SIGTERM, prints and exits: it ends on SIGTERM, and its last words are kept.
    let (attempt, shell_pid) = time_out(&cluster, dir.path(), "trapping", "trap 'echo cleaned up; exit 0' TERM").await;
    // The trap may not be set yet when the timeout fires; either way SIGTERM ends the shell.
    assert!(attempt.error.contains("SIGTERM ended it"), "{}", attempt.error);
    wait_until_gone(shell_pid).await;

    // Ignores SIGTERM: SIGKILLed after the grace.
    let (attempt, shell_pid) = time_out(&cluster, dir.path(), "stubborn", "trap '' TERM").await;
    assert!(
        attempt
            .error
            .contains("it ignored SIGTERM for the 500ms grace; SIGKILL ended it"),
        "{}",
        attempt.error
    );
    wait_until_gone(shell_pid).await;

    // Cancelled with a forked child that ignores SIGTERM: nothing of it is left.
    let child_pid_file = dir.path().join("child.pid");
    let forking = shell(
        "forking",
        &format!(
            "sh -c 'trap \"\" TERM; echo $$ > \"$0\"; exec sleep 1000' {} & wait",
            child_pid_file.display()
        ),
    );
    let task = cluster.client().submit_task(forking).await.unwrap().task.unwrap();
    let child_pid = pid_from(&child_pid_file).await;
    cluster.client().cancel_task(task.id, "test").await.unwrap();
    wait_until_gone(child_pid).await;
    let done = wait_for_finish(&cluster, task.id).await;
    assert_eq!(done.state, api::TaskState::Cancelled as i32);

    stop.cancel();
    handle.await.unwrap();
    cluster.shutdown().await;
}
