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
