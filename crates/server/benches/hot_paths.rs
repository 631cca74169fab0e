//! Micro-benchmarks of the hot paths: the pure state machine and the planner, no I/O.
//!
//! `cargo bench --bench hot_paths` (short: 10 samples, about 2 s each). Before the criterion
//! groups it prints what a pending task costs in memory (RSS growth while a million are
//! added) and in a snapshot. Method and results: BENCHMARKS.md.
//!
//! - apply: a batch of 1000 `SubmitTasks` specs; an `AssignTasks` of 1000; 1000
//!   `ReportResult`s — into a state that already holds 100,000 tasks;
//! - plan: one dispatch round's decisions (the dispatcher's own `decide`) with 1,000,000
//!   pending tasks;
//! - snapshot: clone (what the snapshot builder does under the read lock), encode, and decode
//!   (with index rebuild and full invariant check) of 1,000,000 tasks; and a batch of 1000
//!   submissions applied right after a clone (the first writes after it copy tree nodes).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;
use std::time::Instant;

use criterion::BatchSize;
use criterion::Criterion;
use criterion::SamplingMode;
use criterion::criterion_group;
use raftsched_core::scheduling;
use raftsched_core::scheduling::QueueInput;
use raftsched_core::scheduling::placement::TaskNeeds;
use raftsched_core::scheduling::placement::WorkerView;
use raftsched_core::state::AttemptOutcome;
use raftsched_core::state::AttemptReport;
use raftsched_core::state::Command;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::Resources;
use raftsched_core::state::SchedulerState;
use raftsched_core::state::TaskId;
use raftsched_core::state::TaskSpec;
use raftsched_core::state::WorkerRegistration;
use raftsched_core::state::limits;
use raftsched_server::decide::FiringCache;
use raftsched_server::decide::Liveness;
use raftsched_server::decide::SCAN_PER_QUEUE;
use raftsched_server::decide::WorkerLiveness;
use raftsched_server::decide::decide;

const BATCH: usize = 1000;
const MILLION: usize = 1_000_000;
const NOW_MS: u64 = 1_800_000_000_000;

/// A 32-hex request id that looks random, like `ClusterClient`'s (random u128s): ids in
/// submission order would flatter any index ordered by the id, which then only ever
/// grows at one end.
fn request_id(n: u64) -> String {
    // splitmix64: a bijection, so the ids are distinct.
    let mix = |x: u64| {
        let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    format!("{:016x}{:016x}", mix(n), mix(!n))
}

/// A task like the load generator's: 64 bytes of opaque payload and a 32-hex request id
/// (what `ClusterClient` gives every submission).
fn spec(n: u64) -> TaskSpec {
    TaskSpec::builder("bench")
        .opaque("bench.noop", vec![b'x'; 64])
        .request_id(request_id(n))
        .build()
}

/// A submission of `BATCH` specs numbered from `first`.
fn submit_batch(first: u64) -> Command {
    Command::SubmitTasks {
        now_ms: NOW_MS,
        specs: (first..first + BATCH as u64).map(spec).collect(),
    }
}

/// A state holding `tasks` pending tasks, added `BATCH` at a time like batch submissions.
fn state_with(tasks: usize) -> SchedulerState {
    let mut state = SchedulerState::new();
    for b in 0..tasks.div_ceil(BATCH) {
        let response = state.apply(submit_batch((b * BATCH) as u64));
        assert!(matches!(response, CommandResponse::Submitted(_)));
    }
    state
}

fn register(state: &mut SchedulerState, id: &str, slots: u32) {
    state.apply(Command::RegisterWorker {
        now_ms: NOW_MS,
        registration: WorkerRegistration {
            id: id.into(),
            session: "s1".into(),
            slots,
            labels: BTreeMap::new(),
            resources: Resources::default(),
            lease_ms: limits::DEFAULT_LEASE_MS,
        },
    });
}

/// The million-task state, built once and shared by the plan and snapshot groups.
fn million() -> &'static SchedulerState {
    static STATE: OnceLock<SchedulerState> = OnceLock::new();
    STATE.get_or_init(|| {
        let mut state = state_with(MILLION);
        for w in 0..4 {
            register(&mut state, &format!("worker{w}"), 256);
        }
        state
    })
}

/// Resident memory of this process in bytes (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Prints the memory and snapshot size of a pending task.
fn memory_report() {
    let before = rss_bytes();
    let started = Instant::now();
    let state = million();
    let built = started.elapsed();
    let after = rss_bytes();
    let started = Instant::now();
    let snapshot = state.to_snapshot_bytes();
    let encoded = started.elapsed();
    println!(
        "memory: {} pending tasks (64-byte payload, 32-byte request id) built in {:.2} s; RSS grew {:.0} MiB = {:.0} bytes per task",
        MILLION,
        built.as_secs_f64(),
        (after.saturating_sub(before)) as f64 / 1048576.0,
        after.saturating_sub(before) as f64 / MILLION as f64
    );
    println!(
        "snapshot: {:.0} MiB = {:.0} bytes per task, encoded in {:.2} s",
        snapshot.len() as f64 / 1048576.0,
        snapshot.len() as f64 / MILLION as f64,
        encoded.as_secs_f64()
    );
}

fn apply_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    group.sample_size(10).measurement_time(Duration::from_secs(2));
    group.throughput(criterion::Throughput::Elements(BATCH as u64));

    // Submit: each batch has new request ids, into a state that keeps growing from 100,000.
    let mut state = state_with(100_000);
    let mut next = 10_000_000u64;
    group.bench_function("submit_batch_1000", |b| {
        b.iter_batched(
            || {
                next += BATCH as u64;
                submit_batch(next)
            },
            |command| black_box(state.apply(command)),
            BatchSize::LargeInput,
        )
    });

    // Assign 1000 ready tasks in one entry, then report each (1000 entries).
    let mut state = state_with(100_000);
    register(&mut state, "worker0", limits::MAX_WORKER_SLOTS);
    let mut seed = 0;
    let mut assign = |state: &mut SchedulerState| -> (Duration, Vec<(TaskId, u64)>) {
        seed += 1;
        let ids: Vec<TaskId> = state.ready_in_queue("default").take(BATCH).collect();
        let command = Command::AssignTasks {
            now_ms: NOW_MS,
            seed,
            assignments: ids.iter().map(|&id| (id, "worker0".to_string())).collect(),
        };
        let started = Instant::now();
        let response = state.apply(command);
        let took = started.elapsed();
        let CommandResponse::Assigned(outcomes) = response else {
            panic!("assign answered {response:?}")
        };
        let tokens = outcomes
            .into_iter()
            .filter_map(Result::ok)
            .map(|o| (o.task_id, o.token))
            .collect();
        (took, tokens)
    };
    let report = |task_id: TaskId, token: u64| Command::ReportResult {
        now_ms: NOW_MS,
        report: AttemptReport {
            task_id,
            token,
            outcome: AttemptOutcome::Succeeded,
            exit_code: Some(0),
            error: None,
            retryable: true,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            worker_id: String::new(),
            session: String::new(),
        },
        jitter: 0,
    };
    let mut refill = 20_000_000u64;
    group.bench_function("assign_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                state.apply(submit_batch(refill));
                refill += BATCH as u64;
                let (took, tokens) = assign(&mut state);
                total += took;
                for (task_id, token) in tokens {
                    state.apply(report(task_id, token));
                }
            }
            total
        })
    });
    group.bench_function("report_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                state.apply(submit_batch(refill));
                refill += BATCH as u64;
                let (_, tokens) = assign(&mut state);
                let started = Instant::now();
                for (task_id, token) in tokens {
                    black_box(state.apply(report(task_id, token)));
                }
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

/// The leader's view of the million-task state's workers: all connected, just heard from.
fn all_connected(scheduler: &SchedulerState) -> Liveness {
    let workers = scheduler
        .workers()
        .map(|w| {
            let liveness = WorkerLiveness {
                connected: true,
                last_heard_ms: NOW_MS,
            };
            (w.id.clone(), liveness)
        })
        .collect();
    Liveness { workers }
}

fn plan_benches(c: &mut Criterion) {
    let state = million();
    let mut group = c.benchmark_group("plan");
    group.sample_size(10).measurement_time(Duration::from_secs(2));
    let mut seed = 0;
    let liveness = all_connected(state);
    let mut cache = FiringCache::default();
    // The dispatcher's own decision function. 4 workers x 256 free slots: a round assigns
    // 1000 (the per-entry maximum).
    group.bench_function("round_1m_pending_1000_assignments", |b| {
        b.iter(|| {
            seed += 1;
            let plan = decide(state, &liveness, NOW_MS, seed, &mut cache);
            let Some(Command::AssignTasks { assignments, .. }) = plan.commands.last() else {
                panic!("the round assigned nothing: {:?}", plan.unplaced.first_key_value())
            };
            assert_eq!(assignments.len(), limits::MAX_ASSIGNMENTS_PER_ENTRY);
            black_box(plan)
        })
    });
    // The worst case for the planner: every candidate is looked at and none fits.
    let ready: Vec<TaskId> = state.ready_in_queue("default").take(SCAN_PER_QUEUE).collect();
    group.bench_function("round_1m_pending_no_fit", |b| {
        b.iter(|| {
            let queues = vec![QueueInput {
                name: "default",
                policy: state.queue_policy("default"),
                running: 0,
                ready: ready.clone(),
            }];
            let workers = vec![WorkerView {
                id: "gpu".into(),
                labels: [("gpu".to_string(), "true".to_string())].into_iter().collect(),
                slots: 10,
                running: 0,
                free: Resources::default(),
                total: Resources::default(),
            }];
            let wants_cpu = |task_id: TaskId| {
                let spec = &state.get(task_id).expect("exists").spec;
                TaskNeeds {
                    namespace: spec.namespace(),
                    constraints: &spec.constraints,
                    resources: Resources {
                        cpu_millis: 1000,
                        memory_mb: 0,
                    },
                    affinity_key: spec.affinity(),
                }
            };
            black_box(scheduling::plan(queues, workers, &wants_cpu, 1000, 1))
        })
    });
    group.finish();
}

fn snapshot_benches(c: &mut Criterion) {
    let state = million();
    let bytes = state.to_snapshot_bytes();
    let mut group = c.benchmark_group("snapshot_1m_tasks");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat);
    group.bench_function("clone", |b| b.iter(|| black_box(state.clone())));
    group.bench_function("encode", |b| b.iter(|| black_box(state.to_snapshot_bytes())));
    // Apply while a snapshot holds a clone: each batch starts from a fresh clone held
    // alongside, so every write pays the copy-on-write of the nodes it touches.
    let mut next = MILLION as u64;
    group.bench_function("submit_batch_1000_after_clone", |b| {
        b.iter_batched(
            || {
                next += BATCH as u64;
                let live = state.clone();
                let held = live.clone();
                (live, held, submit_batch(next))
            },
            |(mut live, held, batch)| {
                black_box(live.apply(batch));
                (live, held)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("decode_and_rebuild", |b| {
        b.iter(|| black_box(SchedulerState::from_snapshot_bytes(&bytes).expect("decodes")))
    });
    group.finish();
}

criterion_group!(benches, apply_benches, plan_benches, snapshot_benches);

fn main() {
    // `cargo test --benches` runs this binary with --bench absent: skip the slow setup then.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    if benchmarking {
        memory_report();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
