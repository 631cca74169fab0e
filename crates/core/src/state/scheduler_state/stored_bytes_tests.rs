//! The state-bytes accounting: the estimate, and the kept sum through every path a task
//! enters, changes and leaves by.

use super::*;
use crate::state::WorkerRegistration;

fn spec(name: &str, payload_bytes: usize) -> TaskSpec {
    TaskSpec::builder(name)
        .queue("q")
        .opaque("kind", vec![7u8; payload_bytes])
        .max_attempts(2)
        .attempt_timeout_ms(1000)
        .retry_backoff_ms(1000)
        .build()
}

fn submit(state: &mut SchedulerState, spec: TaskSpec) -> TaskId {
    let CommandResponse::Submitted(mut outcomes) = state.apply(Command::SubmitTasks {
        now_ms: 1,
        specs: vec![spec],
    }) else {
        panic!("submit answered with another response");
    };
    outcomes.pop().expect("one outcome").expect("accepted").task_id
}

#[test]
fn the_estimate_grows_by_exactly_the_payload() {
    let empty = estimated_spec_bytes(&spec("a", 0));
    assert!(empty > 0, "a task with nothing in it still costs its overhead");
    for payload in [1, limits::MAX_PAYLOAD_BYTES - 1, limits::MAX_PAYLOAD_BYTES] {
        assert_eq!(estimated_spec_bytes(&spec("a", payload)), empty + payload as u64);
    }
}

#[test]
fn a_new_task_costs_what_the_precheck_estimated() {
    let mut state = SchedulerState::new();
    assert_eq!(state.stored_bytes(), 0);
    let spec = spec("a", 100);
    let estimate = estimated_spec_bytes(&spec);
    submit(&mut state, spec);
    assert_eq!(state.stored_bytes(), estimate);
    assert_eq!(state.live_tasks(), 1);
}

/// Assign, report with output, cancel, snapshot: the kept sum equals the recomputed one
/// (check_invariants compares them) and the restored state's.
#[test]
fn the_kept_sum_follows_every_change() {
    let mut state = SchedulerState::new();
    let first = submit(&mut state, spec("a", 10));
    let second = submit(&mut state, spec("b", 20));
    state.apply(Command::RegisterWorker {
        now_ms: 2,
        registration: WorkerRegistration {
            id: "w".into(),
            session: "s".into(),
            slots: 4,
            labels: Default::default(),
            resources: Default::default(),
            lease_ms: 5000,
        },
    });
    let before = state.stored_bytes();
    let CommandResponse::Assigned(assigned) = state.apply(Command::AssignTasks {
        now_ms: 3,
        seed: 0,
        assignments: vec![(first, "w".into())],
    }) else {
        panic!("assign answered with another response");
    };
    let token = assigned[0].as_ref().expect("assigned").token;
    assert!(state.stored_bytes() > before, "an attempt costs bytes");
    let after_assign = state.stored_bytes();
    state.apply(Command::ReportResult {
        now_ms: 4,
        report: crate::state::AttemptReport {
            task_id: first,
            token,
            outcome: AttemptOutcome::Succeeded,
            exit_code: Some(0),
            error: None,
            retryable: false,
            stdout_tail: "x".repeat(1000),
            stderr_tail: String::new(),
            worker_id: String::new(),
            session: String::new(),
        },
        jitter: 0,
    });
    assert_eq!(state.stored_bytes(), after_assign + 1000, "the output tail is counted");
    assert_eq!(state.live_tasks(), 1);
    state.apply(Command::CancelTask {
        now_ms: 5,
        task_id: second,
        reason: "r".into(),
    });
    assert_eq!(state.live_tasks(), 0);
    state.check_invariants().expect("the kept sum matches");
    let restored = SchedulerState::from_snapshot_bytes(&state.to_snapshot_bytes()).expect("restores");
    assert_eq!(restored.stored_bytes(), state.stored_bytes());
}

#[test]
fn removing_a_task_takes_its_bytes_and_index_entries_with_it() {
    let mut state = SchedulerState::new();
    let kept = submit(&mut state, spec("a", 10));
    let only_first = state.stored_bytes();
    let mut with_id = spec("b", 30);
    with_id.client_request_id = Some("req".into());
    let removed = submit(&mut state, with_id);
    assert!(state.remove_task(removed).is_some());
    assert!(state.remove_task(removed).is_none(), "a second removal finds nothing");
    assert_eq!(state.stored_bytes(), only_first);
    assert!(state.get(kept).is_some());
    state
        .check_invariants()
        .expect("no index entry of the removed task is left");
    assert_eq!(state.digest(), state.digest_from_scratch());
}
