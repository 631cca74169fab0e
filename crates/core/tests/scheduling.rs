//! The scheduling strategies as pure functions, on crafted inputs.

use std::collections::BTreeMap;

use raftsched_core::scheduling::Placement;
use raftsched_core::scheduling::QueueInput;
use raftsched_core::scheduling::QueuePolicy;
use raftsched_core::scheduling::Resources;
use raftsched_core::scheduling::placement::TaskNeeds;
use raftsched_core::scheduling::placement::WorkerView;
use raftsched_core::scheduling::placement::no_fit_reason;
use raftsched_core::scheduling::placement::place;
use raftsched_core::scheduling::plan;
use raftsched_core::scheduling::retry_delay_ms;
use raftsched_core::state::namespace::DEFAULT_NAMESPACE;
use raftsched_core::state::namespace::NAMESPACE_LABEL;

fn worker(id: &str, slots: u32, running: u32) -> WorkerView {
    WorkerView {
        id: id.into(),
        labels: BTreeMap::new(),
        slots,
        running,
        free: Resources::default(),
        total: Resources::default(),
    }
}

fn sized(id: &str, cpu_millis: u32, memory_mb: u32) -> WorkerView {
    let size = Resources { cpu_millis, memory_mb };
    WorkerView {
        free: size,
        total: size,
        ..worker(id, 100, 0)
    }
}

const NO_LABELS: &BTreeMap<String, String> = &BTreeMap::new();

fn needs(key: &str) -> TaskNeeds<'_> {
    TaskNeeds {
        namespace: DEFAULT_NAMESPACE,
        constraints: NO_LABELS,
        resources: Resources::default(),
        affinity_key: key,
    }
}

fn pick(placement: Placement, needs: &TaskNeeds<'_>, workers: &[WorkerView]) -> Option<String> {
    let mut cursor = 0;
    let mut draw = || 0;
    place(placement, needs, workers, &mut cursor, &mut draw).map(|i| workers[i].id.clone())
}

#[test]
fn round_robin_takes_each_worker_in_turn_and_skips_full_ones() {
    let workers = [worker("a", 1, 0), worker("b", 1, 1), worker("c", 1, 0)];
    let mut cursor = 0;
    let mut draw = || 0;
    let picks: Vec<usize> = (0..4)
        .map(|_| place(Placement::RoundRobin, &needs("k"), &workers, &mut cursor, &mut draw).unwrap())
        .collect();
    assert_eq!(picks, [0, 2, 0, 2], "b is full and never picked");
}

#[test]
fn random_uses_the_leaders_draw() {
    let workers = [worker("a", 1, 0), worker("b", 1, 0), worker("c", 1, 0)];
    for (drawn, expected) in [(0, 0), (1, 1), (5, 2)] {
        let mut cursor = 0;
        let mut draw = || drawn;
        assert_eq!(
            place(Placement::Random, &needs("k"), &workers, &mut cursor, &mut draw),
            Some(expected)
        );
    }
}

#[test]
fn least_loaded_compares_load_relative_to_slots() {
    // a: 2/4 = 50 %, b: 1/1 = full, c: 2/8 = 25 %.
    let workers = [worker("a", 4, 2), worker("b", 1, 1), worker("c", 8, 2)];
    assert_eq!(
        pick(Placement::LeastLoaded, &needs("k"), &workers).as_deref(),
        Some("c")
    );
    // Equal loads: the first by id.
    let tied = [worker("a", 2, 1), worker("b", 4, 2)];
    assert_eq!(pick(Placement::LeastLoaded, &needs("k"), &tied).as_deref(), Some("a"));
}

#[test]
fn consistent_hash_is_stable_when_other_workers_join_or_leave() {
    let all: Vec<WorkerView> = ["w1", "w2", "w3", "w4", "w5"]
        .iter()
        .map(|id| worker(id, 10, 0))
        .collect();
    let keys: Vec<String> = (0..200).map(|i| format!("customer-{i}")).collect();
    let owner_in = |workers: &[WorkerView], key: &str| pick(Placement::ConsistentHash, &needs(key), workers).unwrap();
    let before: Vec<String> = keys.iter().map(|k| owner_in(&all, k)).collect();
    // Every worker owns some keys.
    for w in &all {
        assert!(before.contains(&w.id), "{} owns no key", w.id);
    }
    // w3 leaves: only its keys move.
    let without_w3: Vec<WorkerView> = all.iter().filter(|w| w.id != "w3").cloned().collect();
    for (key, owner) in keys.iter().zip(&before) {
        let after = owner_in(&without_w3, key);
        if owner != "w3" {
            assert_eq!(&after, owner, "key {key} moved although its worker stayed");
        }
    }
    // A new worker joins: keys move only to it.
    let mut with_w6 = all.clone();
    with_w6.push(worker("w6", 10, 0));
    for (key, owner) in keys.iter().zip(&before) {
        let after = owner_in(&with_w6, key);
        assert!(
            &after == owner || after == "w6",
            "key {key} moved from {owner} to {after}"
        );
    }
}

#[test]
fn bin_pack_fills_the_fullest_fitting_worker_and_spread_the_emptiest() {
    let workers = [
        sized("big", 8000, 16384),
        sized("small", 1000, 2048),
        sized("tiny", 100, 128),
    ];
    let half_core = TaskNeeds {
        resources: Resources {
            cpu_millis: 500,
            memory_mb: 512,
        },
        ..needs("k")
    };
    assert_eq!(pick(Placement::BinPack, &half_core, &workers).as_deref(), Some("small"));
    assert_eq!(pick(Placement::Spread, &half_core, &workers).as_deref(), Some("big"));
}

#[test]
fn a_task_goes_only_to_a_worker_of_its_namespace() {
    let mut team_a = worker("a-box", 8, 0);
    team_a.labels.insert(NAMESPACE_LABEL.into(), "team-a".into());
    let plain = worker("plain", 1, 0);
    let of_a = TaskNeeds {
        namespace: "team-a",
        ..needs("k")
    };
    // The default namespace's task skips the emptier team-a worker; team-a's skips plain.
    assert_eq!(
        pick(Placement::LeastLoaded, &needs("k"), &[team_a.clone(), plain.clone()]).as_deref(),
        Some("plain")
    );
    assert_eq!(
        pick(Placement::LeastLoaded, &of_a, &[team_a.clone(), plain.clone()]).as_deref(),
        Some("a-box")
    );
    assert_eq!(pick(Placement::RoundRobin, &of_a, std::slice::from_ref(&plain)), None);
    assert_eq!(
        no_fit_reason(&of_a, std::slice::from_ref(&plain)),
        "no worker of namespace team-a is connected"
    );
    assert_eq!(
        no_fit_reason(&needs("k"), std::slice::from_ref(&team_a)),
        "no worker of namespace default is connected"
    );
}

#[test]
fn label_constraints_must_match_and_unplaceable_tasks_say_why() {
    let mut gpu = worker("gpu-box", 1, 0);
    gpu.labels.insert("gpu".into(), "true".into());
    let plain = worker("plain", 4, 0);
    let constraints = BTreeMap::from([("gpu".to_string(), "true".to_string())]);
    let wants_gpu = TaskNeeds {
        constraints: &constraints,
        ..needs("k")
    };
    assert_eq!(
        pick(Placement::LeastLoaded, &wants_gpu, &[gpu.clone(), plain.clone()]).as_deref(),
        Some("gpu-box")
    );
    assert_eq!(
        pick(Placement::LeastLoaded, &wants_gpu, std::slice::from_ref(&plain)),
        None
    );
    assert_eq!(
        no_fit_reason(&wants_gpu, std::slice::from_ref(&plain)),
        "no worker with label gpu=true"
    );
    gpu.running = 1;
    assert_eq!(
        no_fit_reason(&wants_gpu, &[gpu, plain]),
        "all matching workers are busy"
    );
    assert_eq!(no_fit_reason(&wants_gpu, &[]), "no worker is connected");
    let huge = TaskNeeds {
        resources: Resources {
            cpu_millis: 64_000,
            memory_mb: 1,
        },
        ..needs("k")
    };
    assert!(no_fit_reason(&huge, &[sized("small", 1000, 1024)]).starts_with("no worker is large enough"));
}

fn queue(name: &str, weight: u32, running: u32, ready: std::ops::Range<u64>) -> QueueInput<'_> {
    QueueInput {
        name,
        policy: QueuePolicy {
            weight,
            placement: Placement::LeastLoaded,
            retention_ms: None,
        },
        running,
        ready: ready.collect(),
    }
}

#[test]
fn weighted_fair_share_keeps_a_busy_queue_from_starving_another() {
    // 10 free slots; "bulk" has 1000 ready tasks, "interactive" 5; equal weights.
    let workers = vec![worker("w1", 5, 0), worker("w2", 5, 0)];
    let queues = vec![queue("bulk", 1, 0, 1..1001), queue("interactive", 1, 0, 2001..2006)];
    let result = plan(queues, workers, &|_| needs("k"), 100, 7);
    let interactive = result.assignments.iter().filter(|(id, _)| *id > 2000).count();
    assert_eq!(result.assignments.len(), 10);
    assert_eq!(interactive, 5, "interactive gets its share: {:?}", result.assignments);

    // Weights 3:1 split 8 slots 6:2 when both have plenty of work.
    let workers = vec![worker("w1", 8, 0)];
    let queues = vec![queue("heavy", 3, 0, 1..100), queue("light", 1, 0, 1001..1100)];
    let result = plan(queues, workers, &|_| needs("k"), 100, 7);
    let light = result.assignments.iter().filter(|(id, _)| *id > 1000).count();
    assert_eq!((result.assignments.len() - light, light), (6, 2));

    // Running tasks count: a queue already holding slots yields the next ones.
    let workers = vec![worker("w1", 10, 6)];
    let queues = vec![queue("a", 1, 6, 1..100), queue("b", 1, 0, 1001..1100)];
    let result = plan(queues, workers, &|_| needs("k"), 100, 7);
    assert!(
        result.assignments.iter().all(|(id, _)| *id > 1000),
        "{:?}",
        result.assignments
    );
}

#[test]
fn plan_skips_a_task_that_fits_nowhere_without_blocking_the_rest() {
    let workers = vec![worker("w1", 2, 0)];
    let gpu = BTreeMap::from([("gpu".to_string(), "true".to_string())]);
    let needs_of = |id: u64| TaskNeeds {
        namespace: DEFAULT_NAMESPACE,
        constraints: if id == 1 { &gpu } else { NO_LABELS },
        resources: Resources::default(),
        affinity_key: "k",
    };
    let result = plan(vec![queue("q", 1, 0, 1..4)], workers, &needs_of, 10, 1);
    assert_eq!(result.assignments, [(2, "w1".to_string()), (3, "w1".to_string())]);
    assert_eq!(result.unplaced[&1], "no worker with label gpu=true");
}

#[test]
fn plan_respects_the_assignment_bound_and_free_slots() {
    let workers = vec![worker("w1", 3, 0), worker("w2", 3, 3)];
    let result = plan(vec![queue("q", 1, 0, 1..100)], workers.clone(), &|_| needs("k"), 100, 1);
    assert_eq!(result.assignments.len(), 3);
    let result = plan(vec![queue("q", 1, 0, 1..100)], workers, &|_| needs("k"), 2, 1);
    assert_eq!(result.assignments.len(), 2);
}

#[test]
fn plan_is_a_function_of_its_inputs_and_seed() {
    let workers: Vec<WorkerView> = (0..5).map(|i| worker(&format!("w{i}"), 4, 0)).collect();
    let mk = || {
        vec![QueueInput {
            name: "q",
            policy: QueuePolicy {
                weight: 1,
                placement: Placement::Random,
                retention_ms: None,
            },
            running: 0,
            ready: (1..50).collect(),
        }]
    };
    let first = plan(mk(), workers.clone(), &|_| needs("k"), 20, 42);
    let again = plan(mk(), workers.clone(), &|_| needs("k"), 20, 42);
    let other = plan(mk(), workers, &|_| needs("k"), 20, 43);
    assert_eq!(first, again);
    assert_ne!(first.assignments, other.assignments);
}

#[test]
fn backoff_doubles_with_equal_jitter_and_a_cap() {
    // Without jitter drawn (draw = 0) the delay is half the base.
    assert_eq!(retry_delay_ms(1, 1000, 0), 500);
    assert_eq!(retry_delay_ms(2, 1000, 0), 1000);
    assert_eq!(retry_delay_ms(3, 1000, 0), 2000);
    // The largest draw gives the full base.
    assert_eq!(retry_delay_ms(1, 1000, 500), 1000);
    assert_eq!(retry_delay_ms(3, 1000, 2000), 4000);
    // Capped at 100 x initial, whatever the attempt count.
    assert_eq!(retry_delay_ms(30, 1000, 50_000), 100_000);
    assert_eq!(retry_delay_ms(u32::MAX, 1000, 0), 50_000);
    for attempt in 1..40 {
        for draw in [0, 1, 12345, u64::MAX] {
            let delay = retry_delay_ms(attempt, 1000, draw);
            assert!((500..=100_000).contains(&delay), "attempt {attempt}: {delay}");
        }
    }
}
