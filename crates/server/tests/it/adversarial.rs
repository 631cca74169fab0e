//! The adversarial fuzzer: generated requests for every RPC of raftsched.v1.Scheduler and
//! raftsched.v1.Workers, with extreme values in every field, sent over real gRPC (raw
//! generated clients, nothing validated on the client side) to the leader and to followers
//! of an in-process three-node cluster. After each case every node must answer NodeStatus,
//! no answer may be UNKNOWN, INTERNAL or a broken connection, and the nodes' state digests
//! must agree at a common applied index. The cluster is plaintext (`--insecure`): what is
//! fuzzed is validation and apply, which TLS's role checks would stand in front of.
//!
//! Seeds: a fixed set always runs, plus one fresh seed per run, printed to stderr.
//! `RAFTSCHED_FUZZ_SEED=<seed> cargo test -p raftsched-server --test it adversarial` replays one seed alone
//! (against a fresh cluster, as in the original run; timing can still differ).
//! `RAFTSCHED_FUZZ_CASES=<n>` changes the number of cases per seed. A failing case is shrunk
//! and its minimal input printed.
//!
//! An input that aborts the process (an allocation sized by an unchecked wire value) takes
//! the whole test binary down with the in-process cluster; the case being run is written to
//! the file named on stderr at the start, so the culprit survives the abort.

use raftsched_testkit as common;

mod build;
mod exec;
mod ops;
mod rpc;
mod values;

use std::cell::RefCell;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use common::TestCluster;
use common::test_tuning;
use exec::Harness;
use proptest::test_runner::Config;
use proptest::test_runner::RngAlgorithm;
use proptest::test_runner::TestCaseError;
use proptest::test_runner::TestError;
use proptest::test_runner::TestRng;
use proptest::test_runner::TestRunner;

/// Always run, so a regression on a known input shows on every run.
const FIXED_SEEDS: &[u64] = &[1, 2, 3];
/// Cases per seed: each case is 1 to 8 requests, then a check of all three nodes, about
/// 0.6 s in a debug build on a loaded 2-core machine (1 s at worst seen); four seeds of 50
/// cases, plus a cluster start each, take about two minutes there.
const DEFAULT_CASES: u32 = 50;
/// Shrinking re-runs a failing case with simpler inputs against the same cluster.
const MAX_SHRINK_ITERS: u32 = 200;
const MAX_SHRINK_MS: u32 = 90_000;

/// Writes to the process's stderr directly: the test harness captures `eprintln!` and
/// would lose it if an input aborts the process.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn seeds() -> Vec<u64> {
    match std::env::var("RAFTSCHED_FUZZ_SEED") {
        Ok(seed) => vec![seed.trim().parse().expect("RAFTSCHED_FUZZ_SEED is a u64")],
        Err(_) => {
            let mut seeds = FIXED_SEEDS.to_vec();
            seeds.push(rand::random());
            seeds
        }
    }
}

fn cases() -> u32 {
    std::env::var("RAFTSCHED_FUZZ_CASES")
        .map_or(DEFAULT_CASES, |n| n.parse().expect("RAFTSCHED_FUZZ_CASES is a number"))
}

fn runner(seed: u64) -> TestRunner {
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: MAX_SHRINK_ITERS,
        max_shrink_time: MAX_SHRINK_MS,
        ..Config::default()
    };
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes());
    }
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// Runs one seed's cases against a fresh cluster; returns the failure, shrunk.
fn run_seed(rt: &tokio::runtime::Runtime, seed: u64, last_case: &Path, tally: &mut Tally) -> Result<(), String> {
    // Plaintext, so that generated worker ids reach validation and apply: on TLS every
    // worker call naming an id other than its credential's stops at authz (it/authz.rs).
    let cluster = rt.block_on(TestCluster::start_insecure(3, test_tuning()));
    // Lazily connected channels need the runtime to spawn their connection tasks on.
    let _runtime = rt.enter();
    let harness = RefCell::new(Harness::new(&cluster));
    let mut runner = runner(seed);
    let outcome = runner.run(&ops::case(), |case| {
        let _ = std::fs::write(last_case, format!("seed {seed}\n{case:#?}\n"));
        let mut harness = harness.borrow_mut();
        if let Some(broken) = &harness.broken {
            return Err(TestCaseError::reject(format!(
                "the cluster is already broken: {broken}"
            )));
        }
        rt.block_on(harness.run_case(&case)).map_err(TestCaseError::fail)
    });
    let harness = harness.into_inner();
    for ((rpc, code), n) in harness.tally {
        *tally.entry((rpc, code)).or_default() += n;
    }
    rt.block_on(cluster.shutdown());
    match outcome {
        Ok(()) => Ok(()),
        Err(TestError::Fail(reason, minimal)) => Err(format!(
            "seed {seed}: {reason}\nminimal failing case (replay: RAFTSCHED_FUZZ_SEED={seed}):\n{minimal:#?}"
        )),
        Err(TestError::Abort(reason)) => Err(format!("seed {seed}: aborted: {reason}")),
    }
}

type Tally = std::collections::BTreeMap<(&'static str, String), u64>;

/// A run that never got past validation proves little: the fuzzer must have reached apply
/// through each kind of write, and reported on real assignments.
fn assert_reached_deep_paths(tally: &Tally) {
    let ok = |rpc: &str| tally.get(&(rpc, "OK".to_string())).copied().unwrap_or(0);
    let count = |rpc: &str| {
        tally
            .iter()
            .filter(|((r, _), _)| *r == rpc)
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    for rpc in ["SubmitTask", "RegisterWorker", "CreateSchedule", "Attach"] {
        assert!(ok(rpc) > 0, "no {rpc} succeeded: the generators never reach apply");
    }
    assert!(
        ok("SubmitWorkflow") + ok("SubmitWorkflow (1000 tasks)") > 0,
        "no SubmitWorkflow succeeded: the generators never reach apply"
    );
    assert!(
        count("ReportResult (assigned)") > 0,
        "no report on a real assignment was sent"
    );
}

fn summary(tally: &Tally) -> String {
    let lines: Vec<String> = tally
        .iter()
        .map(|((rpc, code), n)| format!("  {rpc:<32} {code:<20} {n}"))
        .collect();
    lines.join("\n")
}

#[test]
fn generated_requests_never_break_the_cluster() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let seeds = seeds();
    let last_case: PathBuf = std::env::temp_dir().join(format!("raftsched-fuzz-{}-last-case.txt", std::process::id()));
    say(&format!(
        "adversarial: seeds {seeds:?}, {} cases each; the case being run is in {}",
        cases(),
        last_case.display()
    ));
    let mut tally = Tally::new();
    let mut failures = Vec::new();
    for seed in seeds {
        if let Err(failure) = run_seed(&rt, seed, &last_case, &mut tally) {
            say(&failure);
            failures.push(failure);
        }
    }
    say(&format!("adversarial: answers per RPC and code:\n{}", summary(&tally)));
    let _ = std::fs::remove_file(&last_case);
    assert!(
        failures.is_empty(),
        "{} seed(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert_reached_deep_paths(&tally);
}
