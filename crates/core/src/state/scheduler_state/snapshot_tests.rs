//! What a snapshot costs: a clone of the state shares its tasks (so encoding a clone holds
//! nothing back), and the image grows by the same bytes per task whatever the state's size.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::state::Resources;

const NOW_MS: u64 = 1_000;

/// Similar tasks: same shape, fixed-width name and request id.
fn submit_batch(state: &mut SchedulerState, first: u64, count: u64) {
    let specs = (first..first + count)
        .map(|n| {
            TaskSpec::builder(format!("task-{n:08}"))
                .queue("q")
                .opaque("noop", vec![b'x'; 64])
                .request_id(format!("{n:032x}"))
                .build()
        })
        .collect();
    let response = state.apply(Command::SubmitTasks { now_ms: NOW_MS, specs });
    assert!(matches!(response, CommandResponse::Submitted(_)));
}

fn state_with(tasks: u64) -> SchedulerState {
    let mut state = SchedulerState::new();
    for first in (0..tasks).step_by(1000) {
        submit_batch(&mut state, first, 1000.min(tasks - first));
    }
    state
}

fn register(state: &mut SchedulerState, id: &str) {
    state.apply(Command::RegisterWorker {
        now_ms: NOW_MS,
        registration: WorkerRegistration {
            id: id.into(),
            session: "s".into(),
            slots: 4,
            labels: BTreeMap::new(),
            resources: Resources::default(),
            lease_ms: 10_000,
        },
    });
}

#[test]
fn a_clone_shares_every_task_until_the_original_changes_one() {
    let mut state = state_with(100);
    register(&mut state, "w1");
    let clone = state.clone();
    let before = clone.to_snapshot_bytes();
    assert!(state.tasks.iter().all(|(id, task)| Arc::ptr_eq(task, &clone.tasks[id])));

    let response = state.apply(Command::AssignTasks {
        now_ms: NOW_MS + 1,
        seed: 0,
        assignments: vec![(7, "w1".into())],
    });
    assert!(
        matches!(&response, CommandResponse::Assigned(a) if a[0].is_ok()),
        "{response:?}"
    );
    state.check_invariants().unwrap();
    clone.check_invariants().unwrap();
    // The clone is the state as it was: same bytes, task 7 still pending there.
    assert_eq!(clone.to_snapshot_bytes(), before);
    assert_eq!(clone.get(7).unwrap().status, TaskStatus::Pending);
    assert_eq!(state.get(7).unwrap().status, TaskStatus::Running);
    // Only the changed task was copied.
    let copied: Vec<TaskId> = state
        .tasks
        .iter()
        .filter(|(id, task)| !Arc::ptr_eq(task, &clone.tasks[*id]))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(copied, [7]);
    assert_ne!(state.digest(), clone.digest());
    assert_eq!(clone.digest(), clone.digest_from_scratch());
}

#[test]
fn snapshot_bytes_per_task_stay_flat_as_the_state_grows() {
    let per_task = |tasks: u64| state_with(tasks).to_snapshot_bytes().len() as f64 / tasks as f64;
    let small = per_task(1_000);
    let large = per_task(100_000);
    // Only the varint of the task id grows (2 → 3 bytes); everything else is per task.
    let ratio = large / small;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "{small:.1} B/task at 1k tasks, {large:.1} B/task at 100k: ratio {ratio:.3}"
    );
}

/// A snapshot of the previous release (format 3: queue policies without a retention) still
/// loads, so data dirs and followers carry over an upgrade; its queues get the default
/// retention.
#[test]
fn a_format_3_snapshot_loads_with_default_retention() {
    use crate::state::Placement;
    use crate::state::QueuePolicy;
    use crate::state::schedule::Schedule;
    use crate::state::schedule::Workflow;
    use crate::state::worker::Worker;

    /// Format 3's image, field for field: the policy was (weight, placement).
    #[derive(serde::Serialize)]
    struct ImageV3<'a> {
        format_version: u32,
        next_task_id: TaskId,
        next_token: u64,
        clock_ms: u64,
        workers: &'a [Worker],
        queue_policies: Vec<(&'a str, (u32, Placement))>,
        tasks: &'a [Task],
        next_workflow_id: WorkflowId,
        schedules: &'a [Schedule],
        workflows: &'a [Workflow],
    }

    // No tasks: format 3's tasks are in wire format 1's layout, which today's types no
    // longer write (`format_4_snapshot_bytes_still_load` covers an older task layout).
    let mut state = state_with(0);
    register(&mut state, "w1");
    let policy = QueuePolicy {
        weight: 7,
        placement: Placement::BinPack,
        retention_ms: None,
    };
    state.apply(Command::SetQueuePolicy {
        now_ms: NOW_MS,
        queue: "q".to_string(),
        policy,
    });
    let image: snapshot::SnapshotImage = postcard::from_bytes(&state.to_snapshot_bytes()).unwrap();
    let v3 = postcard::to_allocvec(&ImageV3 {
        format_version: 3,
        next_task_id: image.next_task_id,
        next_token: image.next_token,
        clock_ms: image.clock_ms,
        workers: &image.workers,
        queue_policies: image
            .queue_policies
            .iter()
            .map(|(queue, p)| (queue.as_str(), (p.weight, p.placement)))
            .collect(),
        tasks: &image.tasks,
        next_workflow_id: image.next_workflow_id,
        schedules: &image.schedules,
        workflows: &image.workflows,
    })
    .unwrap();
    let restored = SchedulerState::from_snapshot_bytes(&v3).expect("format 3 loads");
    assert_eq!(restored, state);
    assert_eq!(restored.retention_ms("q"), crate::state::limits::DEFAULT_RETENTION_MS);

    let mut v2 = v3.clone();
    v2[0] = 2;
    let error = SchedulerState::from_snapshot_bytes(&v2).unwrap_err().to_string();
    assert!(
        error.contains("format version 2 is not supported (this build reads 3 to 5)"),
        "{error}"
    );
}
