//! Unit tests of the state internals; behaviour is tested from data files in crates/core/tests/testdata/state/.

use std::collections::BTreeMap;

use super::snapshot::SNAPSHOT_FORMAT_VERSION;
use super::snapshot::SnapshotImage;
use super::*;
use crate::state::Resources;

fn spec(name: &str) -> TaskSpec {
    TaskSpec::builder(name)
        .queue("q")
        .max_attempts(1)
        .attempt_timeout_ms(1000)
        .retry_backoff_ms(1000)
        .build()
}

fn submit(state: &mut SchedulerState, name: &str) -> Result<SubmitOutcome, StateError> {
    let CommandResponse::Submitted(mut outcomes) = state.apply(Command::SubmitTasks {
        now_ms: 1,
        specs: vec![spec(name)],
    }) else {
        panic!("submit answered with another response");
    };
    outcomes.pop().expect("one outcome per spec")
}

/// Registers worker `w` in session `s`, one slot.
fn register_w(state: &mut SchedulerState) {
    state.apply(Command::RegisterWorker {
        now_ms: 1,
        registration: WorkerRegistration {
            id: "w".to_string(),
            session: "s".to_string(),
            slots: 1,
            labels: BTreeMap::new(),
            resources: Resources::default(),
            lease_ms: 1000,
        },
    });
}

fn encode(image: &SnapshotImage) -> Vec<u8> {
    postcard::to_allocvec(image).expect("in-memory encoding")
}

fn task(id: TaskId, name: &str) -> Task {
    Task {
        id,
        spec: spec(name),
        status: TaskStatus::Pending,
        created_at_ms: 1,
        updated_at_ms: 1,
        reason: None,
        attempts: Vec::new(),
        ready_at_ms: 1,
        links: TaskLinks::default().into(),
    }
}

/// The state is a function of its tasks alone: emptying a status leaves no trace, so a
/// state equals the state restored from its snapshot.
#[test]
fn emptied_status_leaves_no_index_entry() {
    let mut state = SchedulerState::new();
    let task_id = submit(&mut state, "a").unwrap().task_id;
    state.apply(Command::CancelTask {
        now_ms: 2,
        task_id,
        reason: String::new(),
    });
    assert!(!state.by_status.contains_key(&TaskStatus::Pending));
    state.check_invariants().unwrap();
    let restored = SchedulerState::from_snapshot_bytes(&state.to_snapshot_bytes()).unwrap();
    assert_eq!(restored, state);
}

#[test]
fn exhausted_id_space_is_refused_not_wrapped() {
    let mut state = SchedulerState::new();
    state.next_task_id = u64::MAX;
    // A refused command changes nothing but the clock.
    let mut before = state.clone();
    before.advance_clock(1);
    let err = submit(&mut state, "a").unwrap_err();
    assert!(matches!(err, StateError::InvalidArgument { ref field, .. } if field == "tasks"));
    assert_eq!(state, before);
}

#[test]
fn exhausted_token_space_is_refused_not_wrapped() {
    let mut state = SchedulerState::new();
    let task_id = submit(&mut state, "a").unwrap().task_id;
    register_w(&mut state);
    state.next_token = u64::MAX;
    let before = state.clone();
    let response = state.apply(Command::AssignTasks {
        now_ms: 1,
        seed: 0,
        assignments: vec![(task_id, "w".to_string())],
    });
    let CommandResponse::Assigned(outcomes) = response else {
        panic!("assign answered with another response");
    };
    assert!(matches!(&outcomes[..], [Err(StateError::InvalidArgument { field, .. })] if field == "token"));
    assert_eq!(state, before);
    state.check_invariants().unwrap();
}

/// The leader's pre-check refuses only a report it can judge from its applied state (a
/// running token under another holder); a token it does not know is left to apply, which
/// may run after entries the leader has not applied yet.
#[test]
fn the_leaders_binding_check_leaves_staleness_to_apply() {
    let mut state = SchedulerState::new();
    let task_id = submit(&mut state, "a").unwrap().task_id;
    register_w(&mut state);
    let CommandResponse::Assigned(outcomes) = state.apply(Command::AssignTasks {
        now_ms: 2,
        seed: 0,
        assignments: vec![(task_id, "w".to_string())],
    }) else {
        panic!("assign answered with another response");
    };
    let token = outcomes[0].as_ref().unwrap().token;
    let report = |task_id: TaskId, token: u64, worker_id: &str, session: &str| AttemptReport {
        task_id,
        token,
        outcome: AttemptOutcome::Succeeded,
        exit_code: None,
        error: None,
        retryable: true,
        stdout_tail: String::new(),
        stderr_tail: String::new(),
        worker_id: worker_id.to_string(),
        session: session.to_string(),
    };
    for (passes, why) in [
        (report(task_id, token, "w", "s"), "the holder"),
        (report(task_id, token, "", ""), "unbound (a v0-v2 entry)"),
        (report(task_id, token + 1, "x", "s"), "a token not known yet"),
        (report(task_id + 1, token, "x", "s"), "a task not known yet"),
    ] {
        assert_eq!(state.check_report_holder(&passes), Ok(()), "{why}");
    }
    assert!(matches!(
        state.check_report(&report(task_id, token + 1, "w", "s")),
        Err(StateError::StaleToken { .. })
    ));
    let holder_error = |worker_id: &str, same_worker: bool| StateError::NotAttemptHolder {
        task_id,
        token,
        holder: "w".to_string(),
        reporter: worker_id.to_string(),
        same_worker,
    };
    let other_worker = report(task_id, token, "x", "s");
    assert_eq!(state.check_report_holder(&other_worker), Err(holder_error("x", false)));
    let other_session = report(task_id, token, "w", "t");
    assert_eq!(state.check_report(&other_session), Err(holder_error("w", true)));
    // Half-bound (a worker id without a session) is bound, and wrong.
    assert_eq!(
        state.check_report_holder(&report(task_id, token, "w", "")),
        Err(holder_error("w", true))
    );
}

#[test]
fn snapshot_with_a_duplicate_task_id_is_refused() {
    let image = SnapshotImage {
        format_version: SNAPSHOT_FORMAT_VERSION,
        next_token: 1,
        clock_ms: 1,
        workers: Vec::new(),
        queue_policies: Vec::new(),
        next_task_id: 2,
        tasks: vec![task(1, "a"), task(1, "b")],
        next_workflow_id: 1,
        schedules: Vec::new(),
        workflows: Vec::new(),
    };
    let err = SchedulerState::from_snapshot_bytes(&encode(&image)).unwrap_err();
    assert!(err.to_string().contains("task 1 appears twice"), "{err}");
}

#[test]
fn snapshot_with_task_id_zero_is_refused() {
    let image = SnapshotImage {
        format_version: SNAPSHOT_FORMAT_VERSION,
        next_token: 1,
        clock_ms: 1,
        workers: Vec::new(),
        queue_policies: Vec::new(),
        next_task_id: 2,
        tasks: vec![task(0, "a"), task(1, "b")],
        next_workflow_id: 1,
        schedules: Vec::new(),
        workflows: Vec::new(),
    };
    let err = SchedulerState::from_snapshot_bytes(&encode(&image)).unwrap_err();
    assert!(err.to_string().contains("id 0"), "{err}");
}

#[test]
fn snapshot_with_a_shared_request_id_is_refused() {
    let mut first = task(1, "a");
    let mut second = task(2, "b");
    first.spec.client_request_id = Some("r".to_string());
    second.spec.client_request_id = Some("r".to_string());
    let image = SnapshotImage {
        format_version: SNAPSHOT_FORMAT_VERSION,
        next_token: 1,
        clock_ms: 1,
        workers: Vec::new(),
        queue_policies: Vec::new(),
        next_task_id: 3,
        tasks: vec![first, second],
        next_workflow_id: 1,
        schedules: Vec::new(),
        workflows: Vec::new(),
    };
    let err = SchedulerState::from_snapshot_bytes(&encode(&image)).unwrap_err();
    assert!(
        err.to_string().contains(r#"request id "r" is used by tasks 1 and 2"#),
        "{err}"
    );
}

#[test]
fn list_after_the_largest_id_is_empty() {
    let mut state = SchedulerState::new();
    submit(&mut state, "a").unwrap();
    let oldest_first = ListFilter {
        order: ListOrder::OldestFirst,
        ..ListFilter::default()
    };
    assert_eq!(state.list(&oldest_first, u64::MAX, 10), (Vec::new(), None));
}

fn attempt(number: u32, token: u64, outcome: AttemptOutcome) -> Attempt {
    Attempt {
        number,
        token,
        worker_id: "w".to_string(),
        started_at_ms: 1,
        ended_at_ms: (outcome != AttemptOutcome::Running).then_some(1),
        outcome,
        exit_code: None,
        error: None,
        stdout_tail: String::new(),
        stderr_tail: String::new(),
    }
}

fn image_of(tasks: Vec<Task>) -> SnapshotImage {
    SnapshotImage {
        format_version: SNAPSHOT_FORMAT_VERSION,
        next_task_id: tasks.len() as TaskId + 1,
        next_token: 10,
        clock_ms: 1,
        workers: Vec::new(),
        queue_policies: Vec::new(),
        tasks,
        next_workflow_id: 1,
        schedules: Vec::new(),
        workflows: Vec::new(),
    }
}

#[test]
fn snapshot_with_a_token_used_twice_is_refused() {
    let mut first = task(1, "a");
    let mut second = task(2, "b");
    first.spec.max_attempts = 3;
    second.spec.max_attempts = 3;
    first.attempts = vec![attempt(1, 1, AttemptOutcome::Failed)];
    second.attempts = vec![attempt(1, 1, AttemptOutcome::Failed)];
    let err = SchedulerState::from_snapshot_bytes(&encode(&image_of(vec![first, second]))).unwrap_err();
    assert!(err.to_string().contains("token 1 is used twice"), "{err}");
}

#[test]
fn snapshot_with_a_running_attempt_on_a_pending_task_is_refused() {
    let mut pending = task(1, "a");
    pending.spec.max_attempts = 3;
    pending.attempts = vec![attempt(1, 1, AttemptOutcome::Running)];
    let err = SchedulerState::from_snapshot_bytes(&encode(&image_of(vec![pending]))).unwrap_err();
    assert!(err.to_string().contains("attempt 1 still runs"), "{err}");
}

#[test]
fn snapshot_with_a_pending_task_out_of_attempts_is_refused() {
    let mut pending = task(1, "a");
    pending.attempts = vec![attempt(1, 1, AttemptOutcome::Failed)];
    let err = SchedulerState::from_snapshot_bytes(&encode(&image_of(vec![pending]))).unwrap_err();
    assert!(err.to_string().contains("used 1 of 1 attempts"), "{err}");
}

/// The request id index holds hashes: a task whose hash matches but whose id differs (a
/// collision) is passed over, and an entry that matches no id the task carries is refused.
#[test]
fn request_id_lookup_compares_the_ids_behind_a_hash() {
    let mut first = task(1, "a");
    let mut second = task(2, "b");
    first.spec.client_request_id = Some("ra".to_string());
    second.spec.client_request_id = Some("rb".to_string());
    let mut state = SchedulerState::from_snapshot_bytes(&encode(&image_of(vec![first, second]))).unwrap();
    assert_eq!(state.task_by_request_id("default", "ra"), Some(1));
    assert_eq!(state.task_by_request_id("default", "rb"), Some(2));
    assert_eq!(state.task_by_request_id("default", "rc"), None);
    // As if "ra" hashed like "rb": task 1 now comes first under rb's hash.
    state.by_request_id.insert((fnv1a_64(b"rb"), 1));
    assert_eq!(state.task_by_request_id("default", "rb"), Some(2));
    assert_eq!(state.task_by_request_id("default", "ra"), Some(1));
    let err = state.check_invariants().unwrap_err();
    assert!(err.contains("the request id index does not match"), "{err}");
}

/// The running sums stay exact where the reported value saturates: past u32::MAX and back.
#[test]
fn worker_load_sums_past_u32_and_back() {
    let huge = Resources {
        cpu_millis: u32::MAX,
        memory_mb: 1,
    };
    let mut load = WorkerLoad::default();
    load.add(1, &huge);
    load.add(2, &huge);
    load.add(2, &huge);
    assert_eq!(
        load.in_use(),
        Resources {
            cpu_millis: u32::MAX,
            memory_mb: 2
        }
    );
    load.remove(1, &huge);
    load.remove(1, &huge);
    assert_eq!(load.in_use(), huge);
    load.remove(2, &huge);
    assert_eq!(load, WorkerLoad::default());
}

/// The state the pinned snapshot tests encode: a worker, a request id, workflow links,
/// shards, running and finished attempts, and a queue policy with a retention (format 4).
fn pinned_state() -> SchedulerState {
    let mut state = SchedulerState::new();
    state.apply(Command::SetQueuePolicy {
        now_ms: 5,
        queue: "q".to_string(),
        policy: crate::state::QueuePolicy {
            weight: 3,
            placement: crate::state::Placement::Spread,
            retention_ms: Some(60_000),
        },
    });
    state.apply(Command::RegisterWorker {
        now_ms: 10,
        registration: WorkerRegistration {
            id: "w1".to_string(),
            session: "s1".to_string(),
            slots: 4,
            labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
            resources: Resources {
                cpu_millis: 1000,
                memory_mb: 1024,
            },
            lease_ms: 5000,
        },
    });
    let mut first = spec("first");
    first.client_request_id = Some("r1".to_string());
    first.resources.cpu_millis = 250;
    first.max_attempts = 2;
    let mut second = spec("second");
    second.labels.insert("team".to_string(), "x".to_string());
    state.apply(Command::SubmitTasks {
        now_ms: 20,
        specs: vec![first, second],
    });
    let workflow_task = |key: &str, after: &[&str]| crate::state::WorkflowTaskSpec {
        key: key.to_string(),
        spec: spec(key),
        after: after.iter().map(|k| k.to_string()).collect(),
    };
    state.apply(Command::SubmitWorkflow {
        now_ms: 30,
        workflow: crate::state::WorkflowSpec {
            name: "wf".to_string(),
            request_id: Some("wf1".to_string()),
            tasks: vec![workflow_task("a", &[]), workflow_task("b", &["a"])],
        },
    });
    state.apply(Command::SubmitShards {
        now_ms: 40,
        spec: spec("broadcast"),
        pins: vec![Some("w1".to_string()), None],
    });
    let CommandResponse::Assigned(assigned) = state.apply(Command::AssignTasks {
        now_ms: 50,
        seed: 1,
        assignments: vec![(1, "w1".to_string()), (2, "w1".to_string())],
    }) else {
        panic!("assign answered with another response");
    };
    let token = assigned[1].as_ref().expect("task 2 is assignable").token;
    state.apply(Command::ReportResult {
        now_ms: 60,
        report: AttemptReport {
            task_id: 2,
            token,
            outcome: AttemptOutcome::Succeeded,
            exit_code: Some(0),
            error: None,
            retryable: false,
            stdout_tail: "out".to_string(),
            stderr_tail: String::new(),
            worker_id: String::new(),
            session: String::new(),
        },
        jitter: 0,
    });
    state.check_invariants().unwrap();
    assert_eq!(state.running_count("w1"), 1);
    state
}

const FORMAT_4_SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/snapshot/format4.hex");

/// The exact bytes the previous release encoded for [`pinned_state`] (format 4, task specs
/// without a trace context) still load, to that state.
#[test]
fn format_4_snapshot_bytes_still_load() {
    let hex = std::fs::read_to_string(FORMAT_4_SNAPSHOT).unwrap_or_else(|e| panic!("{FORMAT_4_SNAPSHOT}: {e}"));
    let hex = hex.trim();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(bytes[0], 4, "the file holds a format 4 image");
    let restored = SchedulerState::from_snapshot_bytes(&bytes).expect("format 4 loads");
    assert_eq!(restored, pinned_state());
    restored.check_invariants().unwrap();
    // The digest hashes each element's encoding, so it moved with the format (it was
    // 13_616_690_114_095_539_056 in format 4): nodes of two releases report different
    // digests of the same state until every node runs the new one.
    assert_eq!(restored.digest(), 3_640_232_143_983_833_439, "the state digest changed");
}

/// Snapshots are stored and shipped to other nodes: their bytes must not change unless
/// SNAPSHOT_FORMAT_VERSION does. [`pinned_state`] and a task with a trace context (format
/// 5). Length and digest were taken before the task map, request id index and links
/// changed their in-memory layout, which must not show in the bytes. A change here needs a
/// version bump.
#[test]
fn snapshot_bytes_of_format_5_are_pinned() {
    let mut state = pinned_state();
    let mut traced = spec("traced");
    traced.trace_parent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string());
    state.apply(Command::SubmitTasks {
        now_ms: 70,
        specs: vec![traced],
    });
    let bytes = state.to_snapshot_bytes();
    assert_eq!(
        (bytes.len(), super::fnv1a_64(&bytes)),
        (528, 6_705_210_311_656_820_793),
        "the snapshot encoding changed; bump SNAPSHOT_FORMAT_VERSION"
    );
    // The digest, too, must not change between builds: nodes of two versions compare it
    // during a rolling upgrade.
    assert_eq!(state.digest(), state.digest_from_scratch());
    assert_eq!(state.digest(), 6_155_857_639_665_606_294, "the state digest changed");
}

/// Links read, compare, print and encode as the `TaskLinks` they hold; empty ones are not
/// boxed.
#[test]
fn links_behave_as_task_links() {
    use crate::state::Links;
    let empty = Links::from(TaskLinks::default());
    assert_eq!(empty, Links::default());
    assert_eq!(*empty, TaskLinks::default());
    assert_eq!(format!("{empty:?}"), format!("{:?}", TaskLinks::default()));
    let linked = TaskLinks {
        parents: vec![1],
        ..TaskLinks::default()
    };
    let some = Links::from(linked.clone());
    assert_ne!(some, empty);
    assert_eq!(*some, linked);
    for (links, plain) in [(&empty, TaskLinks::default()), (&some, linked)] {
        let bytes = postcard::to_allocvec(links).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&plain).unwrap());
        assert_eq!(&postcard::from_bytes::<Links>(&bytes).unwrap(), links);
    }
}

/// A retried submission is the same submission whatever trace it is part of: the retry
/// answers the first task (its trace context the first one's); any other difference is a
/// conflict.
#[test]
fn a_retry_with_another_trace_context_is_the_same_submission() {
    let mut state = SchedulerState::new();
    let traced = |span: &str| {
        let mut spec = spec("t");
        spec.client_request_id = Some("r1".to_string());
        spec.trace_parent = Some(format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{span}-01"));
        spec
    };
    let submit = |state: &mut SchedulerState, spec: TaskSpec| match state.apply(Command::SubmitTasks {
        now_ms: 10,
        specs: vec![spec],
    }) {
        CommandResponse::Submitted(mut outcomes) => outcomes.remove(0),
        other => panic!("submit answered {other:?}"),
    };
    let first = submit(&mut state, traced("00f067aa0ba902b7")).unwrap();
    assert!(first.created);
    let retry = submit(&mut state, traced("1111111111111111")).unwrap();
    assert_eq!((retry.task_id, retry.created), (first.task_id, false));
    let mut untraced = traced("00f067aa0ba902b7");
    untraced.trace_parent = None;
    assert_eq!(submit(&mut state, untraced).unwrap().task_id, first.task_id);
    let mut other = traced("00f067aa0ba902b7");
    other.priority = 9;
    assert!(matches!(
        submit(&mut state, other),
        Err(StateError::RequestIdConflict { .. })
    ));
    let task = state.get(first.task_id).unwrap();
    assert_eq!(
        task.spec.trace_parent.as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    state.check_invariants().unwrap();
}
