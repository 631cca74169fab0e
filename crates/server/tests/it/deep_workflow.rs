//! A workflow chain as deep as the limits allow (MAX_WORKFLOW_TASKS = 1000) whose root
//! fails: apply skips all 999 descendants in one entry without recursing per level, on a
//! small stack, and every replica ends identical.
//!
//! Debug: `cargo test --all-features -p raftsched-server --test it deep_workflow`; release (different frame sizes
//! and inlining): `cargo test --release --all-features -p raftsched-server --test it deep_workflow`.

use raftsched_testkit as common;

use std::collections::BTreeMap;

use common::TestCluster;
use common::test_tuning;
use common::wait_until;
use raftsched_api::v1 as api;
use raftsched_core::state::AttemptOutcome;
use raftsched_core::state::AttemptReport;
use raftsched_core::state::Command;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::Resources;
use raftsched_core::state::SchedulerState;
use raftsched_core::state::TaskId;
use raftsched_core::state::TaskSpec;
use raftsched_core::state::TaskStatus;
use raftsched_core::state::WorkerRegistration;
use raftsched_core::state::WorkflowSpec;
use raftsched_core::state::WorkflowTaskSpec;

const DEPTH: usize = raftsched_core::state::limits::MAX_WORKFLOW_TASKS;
/// Far below what the former recursion needed for 1000 levels (about 1 MiB in a debug
/// build), and enough for one apply of the iterative walk.
const SMALL_STACK_BYTES: usize = 256 * 1024;

fn spec(name: String) -> TaskSpec {
    TaskSpec::builder(name)
        .queue("default")
        .max_attempts(1)
        .attempt_timeout_ms(60_000)
        .retry_backoff_ms(1000)
        .build()
}

/// Task `t{i}` runs after `t{i-1}`.
fn chain() -> WorkflowSpec {
    WorkflowSpec {
        name: "deep".into(),
        request_id: None,
        tasks: (0..DEPTH)
            .map(|i| WorkflowTaskSpec {
                key: format!("t{i}"),
                spec: spec(format!("t{i}")),
                after: if i == 0 {
                    Vec::new()
                } else {
                    vec![format!("t{}", i - 1)]
                },
            })
            .collect(),
    }
}

/// Submits the chain; returns the ids in chain order.
fn submit_chain(state: &mut SchedulerState, now_ms: u64) -> Vec<TaskId> {
    let response = state.apply(Command::SubmitWorkflow {
        now_ms,
        workflow: chain(),
    });
    let CommandResponse::WorkflowSubmitted(Ok(outcome)) = response else {
        panic!("the chain is refused: {response:?}");
    };
    let workflow = state.workflow(outcome.workflow_id).expect("submitted");
    workflow.tasks.iter().map(|(_, id)| *id).collect()
}

fn assert_root_then_skipped(state: &SchedulerState, ids: &[TaskId], root: TaskStatus) {
    assert_eq!(state.get(ids[0]).unwrap().status, root);
    for (depth, id) in ids.iter().enumerate().skip(1) {
        let task = state.get(*id).unwrap();
        assert_eq!(task.status, TaskStatus::Skipped, "task {id} at depth {depth}");
        // Each skip names its direct parent: the walk goes down the chain in order.
        let reason = format!("skipped: parent task {} ", ids[depth - 1]);
        assert!(
            task.reason.as_deref().unwrap_or("").starts_with(&reason),
            "{:?}",
            task.reason
        );
    }
    state.check_invariants().expect("invariants hold");
}

/// The root fails for good (one attempt, a failed report): all 999 descendants are skipped
/// by that one report's apply.
fn fail_root_on_small_stack() {
    let mut state = SchedulerState::new();
    let ids = submit_chain(&mut state, 1000);
    let registration = WorkerRegistration {
        id: "w".into(),
        session: "s".into(),
        slots: 1,
        labels: BTreeMap::new(),
        resources: Resources::default(),
        lease_ms: 10_000,
    };
    state.apply(Command::RegisterWorker {
        now_ms: 1001,
        registration,
    });
    let response = state.apply(Command::AssignTasks {
        now_ms: 1002,
        seed: 0,
        assignments: vec![(ids[0], "w".into())],
    });
    let CommandResponse::Assigned(assigned) = response else {
        panic!("assign answered {response:?}");
    };
    let token = assigned[0].as_ref().expect("the root is assignable").token;
    let report = AttemptReport {
        task_id: ids[0],
        token,
        outcome: AttemptOutcome::Failed,
        exit_code: Some(3),
        error: None,
        retryable: false,
        stdout_tail: String::new(),
        stderr_tail: String::new(),
        worker_id: "w".into(),
        session: "s".into(),
    };
    let response = state.apply(Command::ReportResult {
        now_ms: 1003,
        report,
        jitter: 0,
    });
    assert!(
        matches!(response, CommandResponse::Reported(Ok(TaskStatus::Failed))),
        "{response:?}"
    );
    assert_root_then_skipped(&state, &ids, TaskStatus::Failed);
}

/// Cancelling the root skips the chain the same way.
fn cancel_root_on_small_stack() {
    let mut state = SchedulerState::new();
    let ids = submit_chain(&mut state, 1000);
    let response = state.apply(Command::CancelTask {
        now_ms: 2000,
        task_id: ids[0],
        reason: "operator".into(),
    });
    assert!(matches!(response, CommandResponse::Cancelled(Ok(_))), "{response:?}");
    assert_root_then_skipped(&state, &ids, TaskStatus::Cancelled);
}

fn on_small_stack(name: &str, body: fn()) {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(SMALL_STACK_BYTES)
        .spawn(body)
        .expect("spawn a thread")
        .join()
        .expect("the apply finished on a small stack");
}

#[test]
fn a_failed_root_skips_a_1000_deep_chain_on_a_small_stack() {
    on_small_stack("fail-root", fail_root_on_small_stack);
}

#[test]
fn a_cancelled_root_skips_a_1000_deep_chain_on_a_small_stack() {
    on_small_stack("cancel-root", cancel_root_on_small_stack);
}

/// Through a real three-node cluster and a real worker: the root exits 3, all descendants
/// are skipped, every replica holds the same state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_chain_whose_root_fails_is_skipped_on_every_replica() {
    let cluster = TestCluster::start(3, test_tuning()).await;
    let client = cluster.client();
    let tasks = (0..DEPTH)
        .map(|i| {
            let command = if i == 0 { "exit 3" } else { "true" };
            let mut spec = common::shell(&format!("t{i}"), command);
            spec.max_attempts = 1;
            api::WorkflowTaskSpec {
                key: format!("t{i}"),
                spec: Some(spec),
                after: if i == 0 {
                    Vec::new()
                } else {
                    vec![format!("t{}", i - 1)]
                },
            }
        })
        .collect();
    let request = api::SubmitWorkflowRequest {
        name: "deep".into(),
        tasks,
        ..Default::default()
    };
    let workflow = client
        .submit_workflow(request)
        .await
        .expect("submitted")
        .workflow
        .unwrap();
    let (stop, worker) = common::start_worker(&cluster, worker_options());
    let leader = cluster.wait_for_leader().await;
    let ids: Vec<TaskId> = {
        let state = cluster.node(leader).app().state().read();
        let record = state.scheduler.workflow(workflow.id).expect("workflow applied");
        record.tasks.iter().map(|(_, id)| *id).collect()
    };
    let last = *ids.last().unwrap();
    wait_until("the last task of the chain to be skipped", || async {
        let state = cluster.node(leader).app().state().read();
        (state.scheduler.get(last)?.status == TaskStatus::Skipped).then_some(())
    })
    .await;
    stop.cancel();
    worker.await.expect("worker stops");
    cluster.wait_for_identical_replicas().await;
    for node in cluster.running() {
        let state = node.app().state().read();
        assert_root_then_skipped(&state.scheduler, &ids, TaskStatus::Failed);
    }
    cluster.shutdown().await;
}

fn worker_options() -> raftsched_client::worker::WorkerOptions {
    raftsched_client::worker::WorkerOptions::new("deep-worker", 1)
}
