//! A bounded chaos run for CI: the chaos tool's library (`raftsched_chaos`, behind the
//! `raftsched-chaos` binary) against the real `raftsched` binary (three real nodes with every peer link
//! through a proxy, workers, concurrent clients, seeded faults, then the history checker)
//! with a few fixed seeds that together fire every fault kind, a run of leader crash-restarts
//! only (the fault that once made replicas diverge), and one fresh seed printed on stderr.
//! Sequential, 25-40 s per run in a debug build.
//!
//! A failing seed replays with `scripts/chaos.sh --seed S --duration-s D` (see CHAOS.md); the
//! failing run's directory (history, logs, data dirs) is kept and named in the output.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raftsched_chaos::ChaosConfig;
use raftsched_chaos::schedule::FaultKind;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_raftsched");

/// Seeds whose first four faults are, together, all ten kinds (the schedule is a pure
/// function of the seed: `raftsched_chaos::schedule::plan`).
const FIXED_SEEDS: [u64; 3] = [2, 58, 61];
const FIXED_DURATION_S: u64 = 20;
const CRASH_RESTART_SEED: u64 = 23;
const CRASH_RESTART_DURATION_S: u64 = 30;
const FRESH_DURATION_S: u64 = 15;

/// Runs one chaos run and returns its JSON summary; panics with the whole summary when the
/// run found a violation or could not run.
fn chaos(seed: u64, duration_s: u64, kinds: &[FaultKind]) -> Value {
    let dir = tempfile::Builder::new()
        .prefix(&format!("raftsched-chaos-{seed}-"))
        .tempdir()
        .expect("temp dir")
        .keep();
    let mut config = ChaosConfig::new(seed, PathBuf::from(BIN), dir.clone());
    config.duration = Duration::from_secs(duration_s);
    config.kinds = kinds.to_vec();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let outcome = runtime.block_on(raftsched_chaos::run(config, Arc::new(|_: &str| {})));
    let summary = match outcome {
        Ok(summary) => summary,
        Err(e) => panic!(
            "chaos seed {seed} ({duration_s} s) could not run: {e} (files in {})",
            dir.display()
        ),
    };
    let stdout = summary.to_json();
    let stderr = format!("files in {}", dir.display());
    let summary: Option<Value> = serde_json::from_str(&stdout).ok();
    let table = summary
        .as_ref()
        .map(|s| serde_json::to_string_pretty(s).unwrap_or_default())
        .unwrap_or_else(|| stdout.to_string());
    let summary =
        summary.unwrap_or_else(|| panic!("chaos seed {seed}: no JSON summary on stdout:\n{stdout}\n{stderr}"));
    assert_eq!(summary["passed"], Value::Bool(true), "seed {seed}: {table}");
    assert_eq!(
        summary["violations"].as_array().map(Vec::len),
        Some(0),
        "seed {seed}: {table}"
    );
    for count in [
        "lost",
        "unexpected",
        "duplicated",
        "stale_accepted",
        "stuck",
        "failed_but_present",
    ] {
        assert_eq!(
            summary["check"][count].as_array().map(Vec::len),
            Some(0),
            "seed {seed}: {count} is not empty: {table}"
        );
    }
    assert_eq!(
        summary["replicas"]["identical"],
        Value::Bool(true),
        "seed {seed}: {table}"
    );
    assert_eq!(summary["writes_after_heal"], Value::Bool(true), "seed {seed}: {table}");
    assert!(
        summary["check"]["acknowledged"].as_u64().unwrap_or(0) > 0,
        "seed {seed}: nothing was acknowledged: {table}"
    );
    eprintln!(
        "chaos seed {seed}: passed; faults {}; acknowledged {}, redelivered {}; failover dispatch {}",
        summary["faults"],
        summary["check"]["acknowledged"],
        summary["check"]["redelivered"],
        summary["failover_dispatch"]
    );
    summary
}

#[test]
fn chaos_runs_find_no_violation_and_fire_every_fault_kind() {
    let mut fired: BTreeMap<String, u64> = BTreeMap::new();
    for seed in FIXED_SEEDS {
        let summary = chaos(seed, FIXED_DURATION_S, &[]);
        for (kind, count) in summary["faults"].as_object().expect("faults by kind") {
            *fired.entry(kind.clone()).or_default() += count.as_u64().unwrap_or(0);
        }
    }
    let kinds = [
        "kill-leader",
        "crash-restart-leader",
        "kill-follower",
        "pause-leader",
        "isolate-leader",
        "one-way-leader",
        "restart-node",
        "kill-worker",
        "slow-links",
        "reset-links",
    ];
    for kind in kinds {
        assert!(
            fired.get(kind).copied().unwrap_or(0) > 0,
            "fault kind {kind} never fired over seeds {FIXED_SEEDS:?}: {fired:?}"
        );
    }

    // A leader SIGKILLed while the disk is slow and restarted at once may resume leading in
    // its old term having lost entries its followers hold: replicas then diverge.
    chaos(
        CRASH_RESTART_SEED,
        CRASH_RESTART_DURATION_S,
        &[FaultKind::CrashRestartLeader],
    );

    // One fresh seed per CI run, so that runs over time cover more schedules.
    let seed: u64 = rand::random::<u32>().into();
    eprintln!("chaos: fresh seed {seed} (replay: scripts/chaos.sh --seed {seed} --duration-s {FRESH_DURATION_S})");
    chaos(seed, FRESH_DURATION_S, &[]);
}
