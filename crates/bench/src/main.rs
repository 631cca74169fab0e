//! `raftsched-bench`: the load generator behind `scripts/bench.sh` (method and results in
//! BENCHMARKS.md).
//!
//! Every mode drives a running cluster over its public gRPC API — real connections, real
//! fsync, real replication; nothing here can turn either off — and prints a table, or JSON
//! with `--json`. `--save FILE` also appends each result as one JSON line, which
//! `bench report` turns into the summary (targets, raftsched/etcd ratios).
//!
//! Architecture invariant: a tool outside the product. Calls to raftsched go through
//! `raftsched_client::ClusterClient` (it builds `raftsched_api` requests), except a status
//! probe that must use a fresh connection (`node_status_fresh`); the etcd client below is
//! the only raw gRPC, to etcd.
//!
//! - `submit`: closed loop, C clients (each its own `ClusterClient`, so its own connection)
//!   submitting back to back, one task per call or `--batch N` per `SubmitTasks` call.
//!   The tasks are delayed by an hour and constrained to a label no worker has, so this
//!   measures the durable write path alone.
//! - `etcd`: the same closed loop doing etcd `Put`s of the same payload size.
//! - `e2e`: N no-op tasks, submit → start (the worker's handler runs) and submit → complete.
//! - `rate`: open loop at a fixed offered rate; latencies from the *intended* send time, so a
//!   stall is charged to every request that should have been sent during it.
//! - `failover`: SIGKILL the leader under load, repeatedly; time to the first submission
//!   committed by the new leader and to the first task it dispatches.
//! - `fill` / `restart`: load many pending tasks; crash a node and time it back to serving.
//! - `soak`: a steady offered rate for a long time with a short queue retention, sampled
//!   every interval (RSS, data dir, disk bytes per task, p50/p99, elections); writes the
//!   series and a PNG plot, and a verdict on the bounded-state targets (src/soak/).
//! - `report`: summary of saved results against the targets of the benchmark issue.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::Duration;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use anyhow::Context;
use anyhow::bail;
use clap::Args;
use clap::Subcommand;
use raftsched_api::peer_endpoint;
use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;
use raftsched_client::worker::HandlerError;
use raftsched_client::worker::TaskContext;
use raftsched_client::worker::Worker;
use raftsched_client::worker::WorkerOptions;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use raftsched_client::output;

mod credentials;
mod plot;
mod soak;
mod tls_cost;

use soak::verdict::median;

// --- Bounds ------------------------------------------------------------------------------------

const MAX_CLIENTS: usize = 1000;
const MAX_DURATION_MS: u64 = 600_000;
const MAX_BATCH: usize = 1000;
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
const MAX_REPEAT: usize = 20;
const MAX_E2E_TASKS: usize = 1_000_000;
const MAX_FILL_TASKS: usize = 2_000_000;
const MAX_RATE: u64 = 100_000;
const MAX_IN_FLIGHT: usize = 10_000;
const MAX_TRIALS: usize = 100;
const MAX_BENCH_WORKERS: usize = 64;
const MAX_WORKER_SLOTS: u32 = 10_000;
/// How long any one client call may keep retrying across nodes.
const CALL_DEADLINE: Duration = Duration::from_secs(10);
/// After a failed call a closed-loop client pauses this long, so a down cluster is not spun on.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Error messages kept per result.
const SAMPLE_ERRORS: usize = 5;

/// The opaque task kind the in-process no-op workers handle.
const NOOP_KIND: &str = "bench.noop";
/// Label of the in-process no-op workers; their tasks require it.
const NOOP_LABEL: &str = "bench-noop";
/// A label no worker has: tasks of the write-path benchmarks never run.
const NEVER_LABEL: &str = "bench-never";
/// Write-path benchmark tasks become ready only after this long (an hour).
const PARKED_DELAY_MS: u64 = 3_600_000;

// --- Arguments ---------------------------------------------------------------------------------

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Durable submission throughput: C clients submitting back to back (closed loop).
    Submit(SubmitArgs),
    /// etcd puts of the same payload with the same client counts (for comparison).
    Etcd(EtcdArgs),
    /// End to end with no-op workers: submit N tasks, measure submit→start and submit→complete.
    E2e(E2eArgs),
    /// Latency at a fixed offered rate (open loop, measured from the intended send time).
    Rate(RateArgs),
    /// SIGKILL the leader under load, repeatedly: time to the first commit and first dispatch.
    Failover(FailoverArgs),
    /// Fill the cluster with N pending tasks (batch submits); memory and disk per task.
    Fill(FillArgs),
    /// SIGKILL a node and restart it: time until it answers and has caught up.
    Restart(RestartArgs),
    /// A steady offered rate for a long time (default 30 min): memory, disk and latency
    /// sampled every 10 s, a plot, and whether they stay flat after the retention period.
    Soak(soak::SoakArgs),
    /// Summarise results saved with --save: targets, raftsched/etcd ratios, resources.
    Report(ReportArgs),
}

/// Options every measuring mode has.
#[derive(Args, Debug, Clone)]
struct CommonArgs {
    /// Directory with node*.pid, worker*.pid or etcd*.pid files (what scripts/cluster.sh
    /// and scripts/bench.sh write): CPU seconds, memory, disk writes and data size of each
    /// process are reported for the run.
    #[arg(long)]
    pid_dir: Option<PathBuf>,
    /// Also append each result as one JSON line to this file (for `bench report`).
    #[arg(long)]
    save: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct SubmitArgs {
    /// Client counts, one run each (comma-separated, 1..=1000).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    clients: Vec<usize>,
    /// Measured time of one run.
    #[arg(long, default_value_t = 5000)]
    duration_ms: u64,
    /// Unmeasured time before each run (connections, leader discovery).
    #[arg(long, default_value_t = 1000)]
    warmup_ms: u64,
    /// Tasks per call: 1 uses SubmitTask, more uses SubmitTasks (one log entry per call).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Bytes of opaque payload per task.
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    /// Runs per client count; the table shows the median and the range.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct EtcdArgs {
    /// etcd client endpoints (host:port, comma-separated); the leader is found and used.
    #[arg(long, default_value = "127.0.0.1:2379")]
    endpoints: String,
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    clients: Vec<usize>,
    #[arg(long, default_value_t = 5000)]
    duration_ms: u64,
    #[arg(long, default_value_t = 1000)]
    warmup_ms: u64,
    /// Bytes of value per put.
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    #[command(flatten)]
    common: CommonArgs,
}

/// Who runs the tasks of `e2e`, `rate` and `failover`.
#[derive(Args, Debug, Clone)]
struct WorkerSetup {
    /// Submit `true` shell commands for the cluster's own workers instead of no-op tasks for
    /// workers inside this process. Start times then come from the leader's assignment stamp
    /// (ms), not from the worker.
    #[arg(long)]
    command: bool,
    /// No-op workers run inside this process (ignored with --command).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Slots of each no-op worker.
    #[arg(long, default_value_t = 256)]
    worker_slots: u32,
}

#[derive(Args, Debug)]
struct E2eArgs {
    /// Tasks to submit and wait for.
    #[arg(long, default_value_t = 10_000)]
    tasks: usize,
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Tasks per submit call.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[command(flatten)]
    workers: WorkerSetup,
    /// Give up waiting for completion after this long.
    #[arg(long, default_value_t = 120_000)]
    timeout_ms: u64,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct RateArgs {
    /// Offered submissions per second (one task each).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, default_value_t = 5000)]
    duration_ms: u64,
    /// Sends in the first part of the run are not measured.
    #[arg(long, default_value_t = 500)]
    warmup_ms: u64,
    /// Client connections the sends are spread over.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Bound on submissions in flight; a send past it waits (and its wait is measured).
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    #[command(flatten)]
    workers: WorkerSetup,
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct FailoverArgs {
    #[arg(long, default_value_t = 5)]
    trials: usize,
    /// Offered no-op submissions per second during each trial.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Load before the kill.
    #[arg(long, default_value_t = 1000)]
    before_kill_ms: u64,
    /// Load after the kill.
    #[arg(long, default_value_t = 3000)]
    after_kill_ms: u64,
    /// Script whose `restart N` brings a killed node back (scripts/cluster.sh; it reads
    /// RAFTSCHED_DATA, RAFTSCHED_PORT_BASE and RAFTSCHED_BIN from the environment).
    #[arg(long, default_value = "scripts/cluster.sh")]
    cluster_script: PathBuf,
    #[arg(long, default_value_t = 1)]
    workers: usize,
    #[arg(long, default_value_t = 64)]
    worker_slots: u32,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct FillArgs {
    /// Pending tasks to add.
    #[arg(long, default_value_t = 1_000_000)]
    tasks: usize,
    #[arg(long, default_value_t = 4)]
    clients: usize,
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct RestartArgs {
    /// Which node: `follower` (the lowest-numbered one), `leader`, or a node id.
    #[arg(long, default_value = "follower")]
    node: String,
    #[arg(long, default_value = "scripts/cluster.sh")]
    cluster_script: PathBuf,
    /// Give up after this long.
    #[arg(long, default_value_t = 120_000)]
    timeout_ms: u64,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// JSON-lines file written with --save.
    #[arg(long)]
    input: PathBuf,
    /// Write the whole report (machine, results, targets, ratios) as JSON here.
    #[arg(long)]
    out_json: Option<PathBuf>,
    /// Free text lines added to the report (the machine's disk, the mode, ...).
    #[arg(long)]
    note: Vec<String>,
}

// --- Results -----------------------------------------------------------------------------------

/// One benchmark result: one configuration, possibly several runs of it.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
struct Record {
    /// submit, submit-batch, etcd-put, e2e, e2e-command, rate, rate-command, failover, fill, restart.
    bench: String,
    /// raftsched or etcd.
    system: String,
    clients: usize,
    batch: usize,
    payload_bytes: usize,
    runs: usize,
    /// Measured seconds of one run.
    window_s: f64,
    /// Operations (tasks, puts, trials) over all runs.
    ops: u64,
    calls: u64,
    errors: u64,
    /// Median over runs.
    ops_per_s: f64,
    ops_per_s_min: f64,
    ops_per_s_max: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offered_per_s: Option<f64>,
    /// Distributions by name (ack, submit_to_start, ...): per-run percentiles, median over runs.
    #[serde(default)]
    latencies: BTreeMap<String, Dist>,
    /// Mode-specific numbers (tasks in the state, bytes per task, ...).
    #[serde(default)]
    extra: BTreeMap<String, f64>,
    #[serde(default)]
    resources: Vec<ProcUsage>,
    #[serde(default)]
    notes: Vec<String>,
    #[serde(default)]
    sample_errors: Vec<String>,
    #[serde(default)]
    per_run: Vec<RunBrief>,
}

/// A latency distribution in milliseconds.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default)]
struct Dist {
    count: u64,
    mean_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
struct RunBrief {
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// What one process used during a run.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
struct ProcUsage {
    name: String,
    cpu_s: f64,
    write_bytes: u64,
    rss_mib: f64,
    peak_rss_mib: f64,
    /// Size of its data dir (nodeN/, etcdN/) after the run.
    data_bytes: u64,
}

impl Dist {
    /// Nearest-rank percentiles of samples in microseconds.
    fn of_micros(samples: &mut [u64]) -> Option<Dist> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let n = samples.len();
        let at = |q: f64| {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            samples[rank - 1] as f64 / 1000.0
        };
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Some(Dist {
            count: n as u64,
            mean_ms: sum as f64 / n as f64 / 1000.0,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: samples[n - 1] as f64 / 1000.0,
        })
    }

    /// Median of each percentile over runs; the max of the maxima; the total count.
    fn combine(runs: &[Dist]) -> Dist {
        let med = |f: fn(&Dist) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        Dist {
            count: runs.iter().map(|d| d.count).sum(),
            mean_ms: med(|d| d.mean_ms),
            p50_ms: med(|d| d.p50_ms),
            p99_ms: med(|d| d.p99_ms),
            p999_ms: med(|d| d.p999_ms),
            max_ms: runs.iter().map(|d| d.max_ms).fold(0.0, f64::max),
        }
    }
}

// --- Clock -------------------------------------------------------------------------------------

/// Microseconds since the Unix epoch on a monotonic base: comparable with the leader's
/// millisecond stamps (same machine, same wall clock) without jumping during a run.
struct Clock {
    wall0_us: u64,
    instant0: std::time::Instant,
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(|| Clock {
        wall0_us: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64),
        instant0: std::time::Instant::now(),
    })
}

impl Clock {
    fn now_us(&self) -> u64 {
        self.wall0_us + self.instant0.elapsed().as_micros() as u64
    }

    fn at_us(&self, instant: Instant) -> u64 {
        let instant = instant.into_std();
        match instant.checked_duration_since(self.instant0) {
            Some(d) => self.wall0_us + d.as_micros() as u64,
            None => self.wall0_us - self.instant0.duration_since(instant).as_micros() as u64,
        }
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

// --- Entry point -------------------------------------------------------------------------------

/// Runs one mode. A client of `cluster` (and so its credentials) only for the modes that
/// talk to raftsched: `etcd` and `report` need none.
pub async fn run(args: BenchArgs, cluster: &str, json: bool) -> anyhow::Result<()> {
    clock();
    let client = || new_client(cluster);
    let (records, common) = match args.mode {
        Mode::Submit(a) => (bench_submit(&a, &client()?).await?, a.common),
        Mode::Etcd(a) => (bench_etcd(&a).await?, a.common),
        Mode::E2e(a) => (bench_e2e(&a, &client()?).await?, a.common),
        Mode::Rate(a) => (bench_rate(&a, &client()?).await?, a.common),
        Mode::Failover(a) => (bench_failover(&a, &client()?).await?, a.common),
        Mode::Fill(a) => (bench_fill(&a, &client()?).await?, a.common),
        Mode::Restart(a) => (bench_restart(&a, &client()?).await?, a.common),
        Mode::Soak(a) => (soak::bench_soak(&a, &client()?).await?, a.common),
        Mode::Report(a) => return report(&a, json),
    };
    if let Some(path) = &common.save {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        for record in &records {
            writeln!(file, "{}", serde_json::to_string(record)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if json {
        output::print_json(&serde_json::to_value(&records)?);
    } else {
        print_records(&records);
    }
    Ok(())
}

/// The `--cluster` addresses, so each load client can get its own `ClusterClient` (and so its
/// own connections); set once by `main`.
static CLUSTER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn cluster_addresses() -> String {
    CLUSTER
        .get()
        .cloned()
        .unwrap_or_else(|| raftsched_client::DEFAULT_CLUSTER.to_string())
}

/// Load generators and the benchmark report, against a running raftsched cluster.
#[derive(clap::Parser, Debug)]
#[command(name = "raftsched-bench", version)]
struct Cli {
    /// Cluster nodes to talk to (any of them; the leader is found on its own).
    #[arg(long, global = true, env = "RAFTSCHED_CLUSTER", default_value = raftsched_client::DEFAULT_CLUSTER)]
    cluster: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    tls: credentials::TlsArgs,
    #[command(flatten)]
    bench: BenchArgs,
}

fn main() -> std::process::ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    CLUSTER.set(cli.cluster.clone()).expect("set once, first thing");
    let outcome = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            credentials::init(cli.tls);
            runtime.block_on(run(cli.bench, &cli.cluster, cli.json))
        });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn new_client(addresses: &str) -> anyhow::Result<ClusterClient> {
    Ok(credentials::client(addresses)?.with_overall_deadline(CALL_DEADLINE))
}

fn check_range<T: PartialOrd + std::fmt::Display>(what: &str, value: T, min: T, max: T) -> anyhow::Result<()> {
    if value < min || value > max {
        bail!("{what} must be between {min} and {max}, got {value}");
    }
    Ok(())
}

fn run_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

fn payload(bytes: usize) -> Vec<u8> {
    (0..bytes).map(|i| b'a' + (i % 26) as u8).collect()
}

/// A task of the write-path benchmarks: opaque, delayed an hour, and for a label no worker
/// has, so it is durable and pending and never runs.
fn parked_spec(queue: &str, payload_bytes: usize) -> api::TaskSpec {
    api::TaskSpec {
        name: "bench".into(),
        queue: queue.into(),
        payload: Some(api::task_spec::Payload::Opaque(api::OpaquePayload {
            kind: NOOP_KIND.into(),
            data: payload(payload_bytes),
        })),
        constraints: [(NEVER_LABEL.to_string(), "1".to_string())].into_iter().collect(),
        delay_ms: PARKED_DELAY_MS,
        ..Default::default()
    }
}

/// A task that runs: a no-op for the in-process workers, or `true` for any shell worker.
fn runnable_spec(queue: &str, command: bool) -> api::TaskSpec {
    let (payload, constraints) = if command {
        let payload = api::task_spec::Payload::Command(api::CommandPayload {
            command_line: "true".into(),
            env: Default::default(),
        });
        (payload, Default::default())
    } else {
        let payload = api::task_spec::Payload::Opaque(api::OpaquePayload {
            kind: NOOP_KIND.into(),
            data: Vec::new(),
        });
        (
            payload,
            [(NOOP_LABEL.to_string(), "1".to_string())].into_iter().collect(),
        )
    };
    api::TaskSpec {
        name: "bench".into(),
        queue: queue.into(),
        payload: Some(payload),
        constraints,
        max_attempts: 1,
        ..Default::default()
    }
}

// --- Closed loop -------------------------------------------------------------------------------

/// One client of a closed loop.
enum Driver {
    Submit {
        client: ClusterClient,
        template: Box<api::TaskSpec>,
        batch: usize,
    },
    Etcd {
        channel: Channel,
        prefix: String,
        value: Vec<u8>,
        seq: u64,
    },
}

impl Driver {
    /// One call; the operations it completed.
    async fn call(&mut self) -> Result<u64, String> {
        match self {
            Driver::Submit {
                client,
                template,
                batch,
            } => {
                if *batch == 1 {
                    client
                        .submit_task((**template).clone())
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(1)
                } else {
                    let specs = vec![(**template).clone(); *batch];
                    let response = client.submit_tasks(specs).await.map_err(|e| e.to_string())?;
                    if let Some(refused) = response.results.iter().find(|r| !r.error.is_empty()) {
                        return Err(refused.error.clone());
                    }
                    Ok(response.results.len() as u64)
                }
            }
            Driver::Etcd {
                channel,
                prefix,
                value,
                seq,
            } => {
                *seq += 1;
                let request = etcd::PutRequest {
                    key: format!("{prefix}/{seq:012}").into_bytes(),
                    value: value.clone(),
                };
                etcd::put(channel.clone(), request).await.map_err(|e| e.to_string())?;
                Ok(1)
            }
        }
    }
}

#[derive(Default)]
struct LoopStats {
    lat_us: Vec<u64>,
    ops: u64,
    calls: u64,
    errors: u64,
    sample_errors: Vec<String>,
}

impl LoopStats {
    fn merge(&mut self, other: LoopStats) {
        self.lat_us.extend(other.lat_us);
        self.ops += other.ops;
        self.calls += other.calls;
        self.errors += other.errors;
        for e in other.sample_errors {
            if self.sample_errors.len() < SAMPLE_ERRORS {
                self.sample_errors.push(e);
            }
        }
    }

    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.sample_errors.len() < SAMPLE_ERRORS {
            self.sample_errors.push(message);
        }
    }
}

/// Runs every driver back to back for warmup + duration; counts what completes inside the
/// measured window.
async fn closed_loop(drivers: Vec<Driver>, warmup: Duration, duration: Duration) -> LoopStats {
    let measure_from = Instant::now() + warmup;
    let end = measure_from + duration;
    let mut set = JoinSet::new();
    for mut driver in drivers {
        set.spawn(async move {
            let mut stats = LoopStats::default();
            while Instant::now() < end {
                let sent = Instant::now();
                let result = driver.call().await;
                let done = Instant::now();
                let measured = done >= measure_from && done <= end;
                match result {
                    Ok(ops) if measured => {
                        stats.calls += 1;
                        stats.ops += ops;
                        stats.lat_us.push(micros(done - sent));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // A failure after the window still counts: a stalled cluster
                        // must not look like an idle one.
                        if done >= measure_from {
                            stats.calls += 1;
                            stats.error(e);
                        }
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
            }
            stats
        });
    }
    let mut total = LoopStats::default();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(stats) => total.merge(stats),
            Err(e) => total.error(format!("client task failed: {e}")),
        }
    }
    total
}

/// One measured run of a closed loop, with what the processes used.
struct RunOutcome {
    window_s: f64,
    stats: LoopStats,
    usage: Vec<ProcUsage>,
    /// Leader elections and quorum losses during the run (raftsched only).
    elections: Option<RaftCounters>,
}

/// What a run must not change without a fault: the highest Raft term any member reports
/// (elections are its increments) and the members' quorum losses, summed.
#[derive(Debug, Clone, Copy, Default)]
struct RaftCounters {
    term: u64,
    quorum_losses: u64,
}

impl RaftCounters {
    fn since(self, before: RaftCounters) -> RaftCounters {
        RaftCounters {
            term: self.term.saturating_sub(before.term),
            quorum_losses: self.quorum_losses.saturating_sub(before.quorum_losses),
        }
    }
}

async fn raft_term(client: &ClusterClient) -> Option<RaftCounters> {
    let status = client.cluster_status().await.ok()?;
    Some(RaftCounters {
        term: status.members.iter().map(|m| m.term).max()?,
        quorum_losses: status.members.iter().map(|m| m.quorum_losses).sum(),
    })
}

/// Adds a run's elections and quorum losses to `record` (`leader_elections`,
/// `leader_quorum_losses`).
fn add_elections(record: &mut Record, during: RaftCounters) {
    *record.extra.entry("leader_elections".into()).or_default() += during.term as f64;
    *record.extra.entry("leader_quorum_losses".into()).or_default() += during.quorum_losses as f64;
}

fn note_elections(record: &mut Record, before: Option<RaftCounters>, after: Option<RaftCounters>) {
    if let (Some(before), Some(after)) = (before, after) {
        add_elections(record, after.since(before));
    }
}

/// Runs `make_drivers` `repeat` times and summarises.
async fn repeated_closed_loop<F>(
    repeat: usize,
    warmup: Duration,
    duration: Duration,
    pid_dir: Option<&Path>,
    terms: Option<&ClusterClient>,
    mut make_drivers: F,
) -> anyhow::Result<Vec<RunOutcome>>
where
    F: FnMut() -> anyhow::Result<Vec<Driver>>,
{
    let mut runs = Vec::new();
    for _ in 0..repeat {
        let drivers = make_drivers()?;
        let term_before = match terms {
            Some(client) => raft_term(client).await,
            None => None,
        };
        let before = ProcSnapshot::take(pid_dir);
        let stats = closed_loop(drivers, warmup, duration).await;
        let usage = ProcSnapshot::take(pid_dir).usage_since(&before);
        let term_after = match terms {
            Some(client) => raft_term(client).await,
            None => None,
        };
        runs.push(RunOutcome {
            window_s: duration.as_secs_f64(),
            stats,
            usage,
            elections: term_before.zip(term_after).map(|(b, a)| a.since(b)),
        });
    }
    Ok(runs)
}

fn summarize(mut record: Record, runs: Vec<RunOutcome>) -> Record {
    let mut dists = Vec::new();
    let mut rates = Vec::new();
    let mut usage: Vec<ProcUsage> = Vec::new();
    for mut run in runs {
        let rate = run.stats.ops as f64 / run.window_s;
        rates.push(rate);
        let dist = Dist::of_micros(&mut run.stats.lat_us).unwrap_or_default();
        record.per_run.push(RunBrief {
            ops_per_s: rate,
            p50_ms: dist.p50_ms,
            p99_ms: dist.p99_ms,
        });
        dists.push(dist);
        record.window_s = run.window_s;
        record.ops += run.stats.ops;
        record.calls += run.stats.calls;
        record.errors += run.stats.errors;
        record.runs += 1;
        for e in run.stats.sample_errors {
            if record.sample_errors.len() < SAMPLE_ERRORS {
                record.sample_errors.push(e);
            }
        }
        merge_usage(&mut usage, run.usage);
        if let Some(elections) = run.elections {
            add_elections(&mut record, elections);
        }
    }
    record.ops_per_s = median(&rates);
    record.ops_per_s_min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    record.ops_per_s_max = rates.iter().copied().fold(0.0, f64::max);
    if !dists.is_empty() {
        record.latencies.insert("ack".into(), Dist::combine(&dists));
    }
    add_usage(&mut record, usage);
    record
}

/// Sums CPU and writes over runs; keeps the last memory and size readings.
fn merge_usage(total: &mut Vec<ProcUsage>, run: Vec<ProcUsage>) {
    for u in run {
        match total.iter_mut().find(|t| t.name == u.name) {
            Some(t) => {
                t.cpu_s += u.cpu_s;
                t.write_bytes += u.write_bytes;
                t.rss_mib = u.rss_mib;
                t.peak_rss_mib = t.peak_rss_mib.max(u.peak_rss_mib);
                t.data_bytes = u.data_bytes;
            }
            None => total.push(u),
        }
    }
}

/// Stores per-process usage and the per-operation figures derived from it.
fn add_usage(record: &mut Record, usage: Vec<ProcUsage>) {
    if usage.is_empty() {
        return;
    }
    let servers: Vec<&ProcUsage> = usage
        .iter()
        .filter(|u| u.name.starts_with("node") || u.name.starts_with("etcd"))
        .collect();
    if record.ops > 0 && !servers.is_empty() {
        let ops = record.ops as f64;
        let cpu: f64 = servers.iter().map(|u| u.cpu_s).sum();
        let written: u64 = servers.iter().map(|u| u.write_bytes).sum();
        record.extra.insert("server_cpu_us_per_op".into(), cpu * 1e6 / ops);
        // What the servers could do with every core to themselves at this CPU cost per
        // operation: a yardstick when other programs shared the machine (an estimate: the
        // cost per operation itself changes with load).
        if cpu > 0.0 {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            record
                .extra
                .insert("cpu_bound_ceiling_ops_per_s".into(), cores * ops / cpu);
        }
        record
            .extra
            .insert("disk_write_bytes_per_op".into(), written as f64 / ops);
    }
    let busy: f64 = usage.iter().filter(|u| u.name != "idle").map(|u| u.cpu_s).sum();
    if busy > 0.0 {
        for (process, figure) in [("loadgen", "loadgen_cpu_share"), ("other", "other_cpu_share")] {
            if let Some(u) = usage.iter().find(|u| u.name == process) {
                record.extra.insert(figure.into(), u.cpu_s / busy);
            }
        }
    }
    if let Some(idle) = usage.iter().find(|u| u.name == "idle") {
        record
            .extra
            .insert("machine_idle_share".into(), idle.cpu_s / (idle.cpu_s + busy).max(1e-9));
    }
    record.resources = usage;
}

// --- submit / etcd -----------------------------------------------------------------------------

async fn bench_submit(args: &SubmitArgs, client: &ClusterClient) -> anyhow::Result<Vec<Record>> {
    check_range("--duration-ms", args.duration_ms, 100, MAX_DURATION_MS)?;
    check_range("--warmup-ms", args.warmup_ms, 0, MAX_DURATION_MS)?;
    check_range("--batch", args.batch, 1, MAX_BATCH)?;
    check_range("--payload-bytes", args.payload_bytes, 0, MAX_PAYLOAD_BYTES)?;
    check_range("--repeat", args.repeat, 1, MAX_REPEAT)?;
    let addresses = cluster_addresses();
    let mut records = Vec::new();
    for &clients in &args.clients {
        check_range("--clients", clients, 1, MAX_CLIENTS)?;
        let template = parked_spec("bench-submit", args.payload_bytes);
        let runs = repeated_closed_loop(
            args.repeat,
            Duration::from_millis(args.warmup_ms),
            Duration::from_millis(args.duration_ms),
            args.common.pid_dir.as_deref(),
            Some(client),
            || {
                (0..clients)
                    .map(|_| {
                        Ok(Driver::Submit {
                            client: new_client(&addresses)?,
                            template: Box::new(template.clone()),
                            batch: args.batch,
                        })
                    })
                    .collect()
            },
        )
        .await?;
        let record = Record {
            bench: if args.batch == 1 { "submit" } else { "submit-batch" }.into(),
            system: credentials::system().into(),
            clients,
            batch: args.batch,
            payload_bytes: args.payload_bytes,
            notes: vec![
                "closed loop; each client its own connection; acked = committed (fsync on a majority) and applied"
                    .into(),
                "tasks are parked (delayed 1 h, for a label no worker has): the write path alone".into(),
            ],
            ..Record::default()
        };
        let record = summarize(record, runs);
        print_progress(&record);
        records.push(record);
    }
    Ok(records)
}

async fn bench_etcd(args: &EtcdArgs) -> anyhow::Result<Vec<Record>> {
    check_range("--duration-ms", args.duration_ms, 100, MAX_DURATION_MS)?;
    check_range("--warmup-ms", args.warmup_ms, 0, MAX_DURATION_MS)?;
    check_range("--payload-bytes", args.payload_bytes, 0, MAX_PAYLOAD_BYTES)?;
    check_range("--repeat", args.repeat, 1, MAX_REPEAT)?;
    let leader = etcd::find_leader(&args.endpoints).await?;
    let run = run_id();
    let value = payload(args.payload_bytes);
    let mut records = Vec::new();
    for &clients in &args.clients {
        check_range("--clients", clients, 1, MAX_CLIENTS)?;
        let mut client_no = 0;
        let runs = repeated_closed_loop(
            args.repeat,
            Duration::from_millis(args.warmup_ms),
            Duration::from_millis(args.duration_ms),
            args.common.pid_dir.as_deref(),
            None,
            || {
                (0..clients)
                    .map(|_| {
                        client_no += 1;
                        Ok(Driver::Etcd {
                            channel: peer_endpoint(&leader).map_err(anyhow::Error::msg)?.connect_lazy(),
                            prefix: format!("bench/{run}/{client_no}"),
                            value: value.clone(),
                            seq: 0,
                        })
                    })
                    .collect()
            },
        )
        .await?;
        let record = Record {
            bench: "etcd-put".into(),
            system: "etcd".into(),
            clients,
            batch: 1,
            payload_bytes: args.payload_bytes,
            notes: vec![format!(
                "closed loop; each client its own connection to the leader {leader}; default etcd durability (WAL fsync)"
            )],
            ..Record::default()
        };
        let record = summarize(record, runs);
        print_progress(&record);
        records.push(record);
    }
    Ok(records)
}

/// A line on stderr after each configuration, so a long suite shows it is alive.
fn print_progress(record: &Record) {
    let ack = record.latencies.get("ack").copied().unwrap_or_default();
    eprintln!(
        "  {} {} clients={} batch={}: {:.0} ops/s, p50 {} ms, p99 {} ms, errors {}",
        record.system,
        record.bench,
        record.clients,
        record.batch,
        record.ops_per_s,
        fmt_ms(ack.p50_ms),
        fmt_ms(ack.p99_ms),
        record.errors
    );
}

// --- No-op workers -----------------------------------------------------------------------------

/// Workers inside this process whose handler records when each task starts.
/// Told of each no-op handler start: (task id, µs on the [`Clock`]).
type StartObserver = Arc<dyn Fn(u64, u64) + Send + Sync>;

struct NoopWorkers {
    ids: Vec<String>,
    shutdown: CancellationToken,
    joins: JoinSet<()>,
    /// Task id → when its first attempt's handler started (µs, [`Clock`]).
    starts: Arc<Mutex<HashMap<u64, u64>>>,
}

impl NoopWorkers {
    async fn start(addresses: &str, count: usize, slots: u32, client: &ClusterClient) -> anyhow::Result<NoopWorkers> {
        let starts: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
        let recorded = starts.clone();
        let observer: StartObserver = Arc::new(move |task_id, now| {
            recorded
                .lock()
                .expect("bench lock poisoned")
                .entry(task_id)
                .or_insert(now);
        });
        let mut workers = NoopWorkers::start_observed(addresses, count, slots, client, observer).await?;
        workers.starts = starts;
        Ok(workers)
    }

    /// Like [`Self::start`], telling `observer` of each handler start (task id, µs) instead of
    /// keeping them all (the soak runs for hours).
    async fn start_observed(
        addresses: &str,
        count: usize,
        slots: u32,
        client: &ClusterClient,
        observer: StartObserver,
    ) -> anyhow::Result<NoopWorkers> {
        check_range("--workers", count, 1, MAX_BENCH_WORKERS)?;
        check_range("--worker-slots", slots, 1, MAX_WORKER_SLOTS)?;
        let starts: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
        let shutdown = CancellationToken::new();
        let mut joins = JoinSet::new();
        let mut ids = Vec::new();
        for i in 1..=count {
            // Stable ids: a later run re-registers them (new session) instead of adding more.
            let id = format!("bench-noop-{i}");
            let observer = observer.clone();
            let handler = move |task: TaskContext| {
                let observer = observer.clone();
                async move {
                    observer(task.task_id, clock().now_us());
                    Ok::<String, HandlerError>(String::new())
                }
            };
            let options = WorkerOptions {
                labels: [(NOOP_LABEL.to_string(), "1".to_string())].into_iter().collect(),
                drain_timeout: Duration::from_secs(5),
                ..WorkerOptions::new(id.clone(), slots)
            };
            let cluster = credentials::worker_client(addresses, &id)?.with_overall_deadline(Duration::from_secs(3600));
            let worker = Worker::new(cluster, options).handle(NOOP_KIND, handler);
            let stop = shutdown.clone();
            joins.spawn(async move {
                if let Err(e) = worker.run(stop).await {
                    eprintln!("bench worker stopped: {e}");
                }
            });
            ids.push(id);
        }
        let workers = NoopWorkers {
            ids,
            shutdown,
            joins,
            starts,
        };
        workers.wait_connected(client).await?;
        Ok(workers)
    }

    async fn wait_connected(&self, client: &ClusterClient) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let listed = client
                .call_workers(
                    |mut workers| async move { workers.list_workers(api::ListWorkersRequest::default()).await },
                )
                .await;
            if let Ok(listed) = listed {
                let ready = self.ids.iter().all(|id| {
                    listed
                        .workers
                        .iter()
                        .any(|w| &w.worker_id == id && w.connected && !w.draining)
                });
                if ready {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!("the in-process no-op workers did not connect within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn started(&self) -> HashMap<u64, u64> {
        self.starts.lock().expect("bench lock poisoned").clone()
    }

    fn started_count(&self) -> usize {
        self.starts.lock().expect("bench lock poisoned").len()
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        let all = async { while self.joins.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(15), all).await.is_err() {
            self.joins.abort_all();
        }
    }
}

// --- e2e / rate --------------------------------------------------------------------------------

/// One acknowledged submission.
#[derive(Debug, Clone, Copy)]
struct Sent {
    task_id: u64,
    /// When it was (meant to be) sent, µs.
    send_us: u64,
}

/// Waits until every task of `queue` has finished (no pending, none running) and, with
/// in-process workers, until each of `expected` tasks has started.
async fn wait_drained(
    client: &ClusterClient,
    queue: &str,
    workers: Option<&NoopWorkers>,
    expected: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let started_all = workers.is_none_or(|w| w.started_count() >= expected);
        if started_all {
            let queues = client
                .call(|mut c| async move { c.list_queues(api::ListQueuesRequest::default()).await })
                .await?;
            let busy = queues
                .queues
                .iter()
                .any(|q| q.policy.as_ref().is_some_and(|p| p.queue == queue) && (q.pending > 0 || q.running > 0));
            if !busy {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!("tasks of queue {queue} still unfinished after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(if started_all { 20 } else { 50 })).await;
    }
}

/// Every task with an id in [first, last], from `queue`.
async fn fetch_tasks(client: &ClusterClient, queue: &str, first: u64, last: u64) -> anyhow::Result<Vec<api::Task>> {
    let mut tasks = Vec::new();
    // Oldest first from `first`: a page token is the order's letter and the last id seen.
    let mut token = if first > 1 {
        format!("o{}", first - 1)
    } else {
        String::new()
    };
    loop {
        let request = api::ListTasksRequest {
            namespace: String::new(),
            state: api::TaskState::Unspecified as i32,
            queue: queue.to_string(),
            page_size: 1000,
            page_token: token.clone(),
            consistency: api::Consistency::Linearizable as i32,
            since_ms: 0,
            oldest_first: true,
            ..api::ListTasksRequest::default()
        };
        let page = client.list_tasks(request).await?;
        let past_end = page.tasks.last().is_none_or(|t| t.id >= last);
        tasks.extend(page.tasks.into_iter().filter(|t| t.id <= last));
        if past_end || page.next_page_token.is_empty() {
            return Ok(tasks);
        }
        token = page.next_page_token;
    }
}

/// Latencies and throughput of a set of submitted tasks that ran.
struct Completion {
    to_start_us: Vec<u64>,
    to_complete_us: Vec<u64>,
    succeeded: u64,
    not_succeeded: u64,
    /// From the first send to the last completion, µs.
    span_us: u64,
}

fn completion(sent: &[Sent], tasks: &[api::Task], starts: Option<&HashMap<u64, u64>>) -> Completion {
    let by_id: HashMap<u64, &api::Task> = tasks.iter().map(|t| (t.id, t)).collect();
    let mut result = Completion {
        to_start_us: Vec::new(),
        to_complete_us: Vec::new(),
        succeeded: 0,
        not_succeeded: 0,
        span_us: 0,
    };
    let first_send = sent.iter().map(|s| s.send_us).min().unwrap_or(0);
    let mut last_end = first_send;
    for s in sent {
        let Some(task) = by_id.get(&s.task_id) else {
            result.not_succeeded += 1;
            continue;
        };
        if task.state != api::TaskState::Succeeded as i32 {
            result.not_succeeded += 1;
            continue;
        }
        result.succeeded += 1;
        let started_us = match starts {
            Some(starts) => starts.get(&s.task_id).copied(),
            None => task.attempts.first().map(|a| a.started_at_ms * 1000),
        };
        if let Some(started) = started_us {
            result.to_start_us.push(started.saturating_sub(s.send_us));
        }
        if let Some(ended_ms) = task.attempts.last().map(|a| a.ended_at_ms) {
            let ended = ended_ms * 1000;
            result.to_complete_us.push(ended.saturating_sub(s.send_us));
            last_end = last_end.max(ended);
        }
    }
    result.span_us = last_end.saturating_sub(first_send);
    result
}

fn dispatch_notes(command: bool) -> Vec<String> {
    let mut notes = vec![
        "submit_to_complete ends at the leader's stamp of the result report (ms resolution), \
         one commit before a client could read it"
            .to_string(),
    ];
    if command {
        notes.push(
            "command tasks (`true` via sh -c) on the cluster's workers; submit_to_start ends at the \
             leader's stamp of the assignment (ms resolution), before it is committed and pushed"
                .into(),
        );
    } else {
        notes.push(
            "no-op tasks on workers inside the load generator; submit_to_start ends when the worker's \
             handler runs (after the assignment is committed and pushed)"
                .into(),
        );
    }
    notes
}

async fn bench_e2e(args: &E2eArgs, client: &ClusterClient) -> anyhow::Result<Vec<Record>> {
    check_range("--tasks", args.tasks, 1, MAX_E2E_TASKS)?;
    check_range("--clients", args.clients, 1, MAX_CLIENTS)?;
    check_range("--batch", args.batch, 1, MAX_BATCH)?;
    check_range("--timeout-ms", args.timeout_ms, 1000, MAX_DURATION_MS)?;
    let addresses = cluster_addresses();
    let queue = format!("bench-e2e-{}", run_id());
    let workers = match args.workers.command {
        true => None,
        false => Some(NoopWorkers::start(&addresses, args.workers.workers, args.workers.worker_slots, client).await?),
    };
    let term_before = raft_term(client).await;
    let before = ProcSnapshot::take(args.common.pid_dir.as_deref());
    let mut set = JoinSet::new();
    for c in 0..args.clients {
        let share = args.tasks / args.clients + usize::from(c < args.tasks % args.clients);
        let submitter = new_client(&addresses)?;
        let template = runnable_spec(&queue, args.workers.command);
        let batch = args.batch;
        set.spawn(async move {
            let mut sent = Vec::with_capacity(share);
            let mut stats = LoopStats::default();
            let mut left = share;
            while left > 0 {
                let n = left.min(batch);
                left -= n;
                let send_us = clock().now_us();
                let started = Instant::now();
                let ids: Result<Vec<u64>, String> = if n == 1 {
                    submitter
                        .submit_task(template.clone())
                        .await
                        .map(|r| vec![r.task.map_or(0, |t| t.id)])
                        .map_err(|e| e.to_string())
                } else {
                    submitter
                        .submit_tasks(vec![template.clone(); n])
                        .await
                        .map(|r| r.results.iter().map(|r| r.task_id).collect())
                        .map_err(|e| e.to_string())
                };
                stats.calls += 1;
                match ids {
                    Ok(ids) => {
                        stats.lat_us.push(micros(started.elapsed()));
                        stats.ops += ids.len() as u64;
                        sent.extend(ids.into_iter().map(|task_id| Sent { task_id, send_us }));
                    }
                    Err(e) => stats.error(e),
                }
            }
            (sent, stats)
        });
    }
    let mut sent = Vec::new();
    let mut submit = LoopStats::default();
    while let Some(joined) = set.join_next().await {
        let (s, stats) = joined.context("a submitting client failed")?;
        sent.extend(s);
        submit.merge(stats);
    }
    let waited = wait_drained(
        client,
        &queue,
        workers.as_ref(),
        sent.len(),
        Duration::from_millis(args.timeout_ms),
    )
    .await;
    let usage = ProcSnapshot::take(args.common.pid_dir.as_deref()).usage_since(&before);
    let term_after = raft_term(client).await;
    let starts = workers.as_ref().map(NoopWorkers::started);
    if let Some(workers) = workers {
        workers.stop().await;
    }
    let mut record = Record {
        bench: if args.workers.command { "e2e-command" } else { "e2e" }.into(),
        system: credentials::system().into(),
        clients: args.clients,
        batch: args.batch,
        runs: 1,
        calls: submit.calls,
        notes: dispatch_notes(args.workers.command),
        sample_errors: submit.sample_errors.clone(),
        ..Record::default()
    };
    if let Err(e) = waited {
        record.sample_errors.push(e.to_string());
    }
    record_completion(&mut record, client, &queue, &sent, starts.as_ref(), submit).await?;
    record.extra.insert("workers".into(), args.workers.workers as f64);
    record
        .extra
        .insert("worker_slots".into(), f64::from(args.workers.worker_slots));
    note_elections(&mut record, term_before, term_after);
    add_usage(&mut record, usage);
    print_progress(&record);
    Ok(vec![record])
}

/// Fetches the tasks and fills in throughput, latencies and errors.
async fn record_completion(
    record: &mut Record,
    client: &ClusterClient,
    queue: &str,
    sent: &[Sent],
    starts: Option<&HashMap<u64, u64>>,
    mut submit: LoopStats,
) -> anyhow::Result<()> {
    let (first, last) = match (
        sent.iter().map(|s| s.task_id).min(),
        sent.iter().map(|s| s.task_id).max(),
    ) {
        (Some(first), Some(last)) => (first, last),
        _ => bail!("no submission was acknowledged: {:?}", submit.sample_errors),
    };
    let tasks = fetch_tasks(client, queue, first, last).await?;
    let mut done = completion(sent, &tasks, starts);
    record.ops = done.succeeded;
    record.errors = submit.errors + done.not_succeeded;
    record.window_s = done.span_us as f64 / 1e6;
    let rate = if done.span_us > 0 {
        done.succeeded as f64 * 1e6 / done.span_us as f64
    } else {
        0.0
    };
    record.ops_per_s = rate;
    record.ops_per_s_min = rate;
    record.ops_per_s_max = rate;
    for (name, samples) in [
        ("ack", &mut submit.lat_us),
        ("submit_to_start", &mut done.to_start_us),
        ("submit_to_complete", &mut done.to_complete_us),
    ] {
        if let Some(dist) = Dist::of_micros(samples) {
            record.latencies.insert(name.into(), dist);
        }
    }
    Ok(())
}

/// The result of one open-loop send.
struct OpenSend {
    intended_us: u64,
    /// When the send actually started (the generator may lag), µs.
    actual_us: u64,
    ack_us: u64,
    /// Task id and the leader's creation stamp (ms).
    outcome: Result<(u64, u64), String>,
}

/// Sends one submission per 1/rate seconds for `duration`, spread over `clients`, at most
/// `max_in_flight` at once. A send is never skipped: if the bound or the generator holds it
/// back, its latency still counts from when it should have gone out.
async fn open_loop(
    clients: Arc<Vec<ClusterClient>>,
    template: api::TaskSpec,
    rate: u64,
    duration: Duration,
    max_in_flight: usize,
) -> Vec<OpenSend> {
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    let start = Instant::now();
    let total = (rate as f64 * duration.as_secs_f64()).floor() as u64;
    let mut set = JoinSet::new();
    let mut results = Vec::with_capacity(total as usize);
    for i in 0..total {
        let intended = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(intended).await;
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let client = clients[i as usize % clients.len()].clone();
        let spec = template.clone();
        let intended_us = clock().at_us(intended);
        set.spawn(async move {
            let actual_us = clock().now_us();
            let outcome = client
                .submit_task(spec)
                .await
                .map(|r| r.task.map_or((0, 0), |t| (t.id, t.created_at_ms)))
                .map_err(|e| e.to_string());
            drop(permit);
            OpenSend {
                intended_us,
                actual_us,
                ack_us: clock().now_us(),
                outcome,
            }
        });
        while let Some(joined) = set.try_join_next() {
            if let Ok(send) = joined {
                results.push(send);
            }
        }
    }
    while let Some(joined) = set.join_next().await {
        if let Ok(send) = joined {
            results.push(send);
        }
    }
    results
}

async fn bench_rate(args: &RateArgs, client: &ClusterClient) -> anyhow::Result<Vec<Record>> {
    check_range("--rate", args.rate, 1, MAX_RATE)?;
    check_range("--duration-ms", args.duration_ms, 100, MAX_DURATION_MS)?;
    check_range("--warmup-ms", args.warmup_ms, 0, args.duration_ms / 2)?;
    check_range("--clients", args.clients, 1, MAX_CLIENTS)?;
    check_range("--max-in-flight", args.max_in_flight, 1, MAX_IN_FLIGHT)?;
    check_range("--timeout-ms", args.timeout_ms, 1000, MAX_DURATION_MS)?;
    let addresses = cluster_addresses();
    let queue = format!("bench-rate-{}", run_id());
    let workers = match args.workers.command {
        true => None,
        false => Some(NoopWorkers::start(&addresses, args.workers.workers, args.workers.worker_slots, client).await?),
    };
    let clients = Arc::new(
        (0..args.clients)
            .map(|_| new_client(&addresses))
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    let term_before = raft_term(client).await;
    let before = ProcSnapshot::take(args.common.pid_dir.as_deref());
    let sends = open_loop(
        clients,
        runnable_spec(&queue, args.workers.command),
        args.rate,
        Duration::from_millis(args.duration_ms),
        args.max_in_flight,
    )
    .await;
    let measured_from = sends.iter().map(|s| s.intended_us).min().unwrap_or(0) + args.warmup_ms * 1000;
    let mut stats = LoopStats::default();
    let mut sent = Vec::new();
    let mut lag_us = Vec::new();
    for s in &sends {
        match &s.outcome {
            Ok((task_id, _)) => {
                if s.intended_us >= measured_from {
                    stats.lat_us.push(s.ack_us.saturating_sub(s.intended_us));
                    lag_us.push(s.actual_us.saturating_sub(s.intended_us));
                    sent.push(Sent {
                        task_id: *task_id,
                        send_us: s.intended_us,
                    });
                }
            }
            Err(e) => stats.error(e.clone()),
        }
        stats.calls += 1;
    }
    let all_acked = sends.iter().filter(|s| s.outcome.is_ok()).count();
    let waited = wait_drained(
        client,
        &queue,
        workers.as_ref(),
        all_acked,
        Duration::from_millis(args.timeout_ms),
    )
    .await;
    let usage = ProcSnapshot::take(args.common.pid_dir.as_deref()).usage_since(&before);
    let term_after = raft_term(client).await;
    let starts = workers.as_ref().map(NoopWorkers::started);
    if let Some(workers) = workers {
        workers.stop().await;
    }
    let mut record = Record {
        bench: if args.workers.command { "rate-command" } else { "rate" }.into(),
        system: credentials::system().into(),
        clients: args.clients,
        batch: 1,
        runs: 1,
        offered_per_s: Some(args.rate as f64),
        notes: dispatch_notes(args.workers.command),
        ..Record::default()
    };
    record.notes.push(
        "open loop: every latency counts from the intended send time (no coordinated omission); \
         send_lag is how late the generator itself was"
            .into(),
    );
    if let Err(e) = waited {
        record.sample_errors.push(e.to_string());
    }
    let calls = stats.calls;
    record_completion(&mut record, client, &queue, &sent, starts.as_ref(), stats).await?;
    record.calls = calls;
    let window_s = (args.duration_ms - args.warmup_ms) as f64 / 1000.0;
    record.extra.insert("acked_per_s".into(), sent.len() as f64 / window_s);
    if let Some(dist) = Dist::of_micros(&mut lag_us) {
        record.latencies.insert("send_lag".into(), dist);
    }
    note_elections(&mut record, term_before, term_after);
    add_usage(&mut record, usage);
    print_progress(&record);
    Ok(vec![record])
}

// --- failover ----------------------------------------------------------------------------------

/// The cluster's members as one node sees them, once all agree on a leader and have applied
/// about the same log.
async fn wait_healthy(client: &ClusterClient, timeout: Duration) -> anyhow::Result<Vec<api::MemberStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match client.cluster_status().await {
            Ok(status) => {
                let members = status.members;
                let leader = members.iter().find(|m| m.role == "leader").map(|m| m.node_id);
                let agreed = leader.is_some_and(|l| {
                    members
                        .iter()
                        .all(|m| m.leader_id == l && m.error.is_empty() && (m.role == "leader" || m.role == "follower"))
                });
                let applied: Vec<u64> = members.iter().map(|m| m.last_applied_index).collect();
                let spread = applied.iter().max().unwrap_or(&0) - applied.iter().min().unwrap_or(&0);
                if agreed && spread <= 64 && members.len() >= 3 {
                    return Ok(members);
                }
                format!("{members:?}")
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            bail!("the cluster did not become healthy within {timeout:?}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pid of node `id` from `pid_dir/node<id>.pid`, checked against its command line.
fn node_pid(pid_dir: &Path, id: u64) -> anyhow::Result<i32> {
    let file = pid_dir.join(format!("node{id}.pid"));
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{} holds no pid", file.display()))?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    if !args.iter().any(|a| *a == b"node") {
        bail!("process {pid} from {} is not a raftsched node", file.display());
    }
    Ok(pid)
}

fn sigkill(pid: i32) -> anyhow::Result<()> {
    // SAFETY: kill(2) with a pid checked to be a raftsched node; no memory is involved.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    if rc != 0 {
        bail!("kill -9 {pid}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

async fn run_script(script: &Path, args: &[&str]) -> anyhow::Result<()> {
    let result = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(script)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .with_context(|| format!("{} {} did not finish within 120 s", script.display(), args.join(" ")))?
    .with_context(|| format!("running {}", script.display()))?;
    if !result.status.success() {
        bail!(
            "{} {} failed: {}",
            script.display(),
            args.join(" "),
            String::from_utf8_lossy(&result.stderr).trim()
        );
    }
    Ok(())
}

async fn bench_failover(args: &FailoverArgs, client: &ClusterClient) -> anyhow::Result<Vec<Record>> {
    check_range("--trials", args.trials, 1, MAX_TRIALS)?;
    check_range("--rate", args.rate, 1, MAX_RATE)?;
    check_range("--clients", args.clients, 1, MAX_CLIENTS)?;
    check_range("--before-kill-ms", args.before_kill_ms, 100, MAX_DURATION_MS)?;
    check_range("--after-kill-ms", args.after_kill_ms, 500, MAX_DURATION_MS)?;
    let Some(pid_dir) = args.common.pid_dir.as_deref() else {
        bail!("failover needs --pid-dir (the cluster's RAFTSCHED_DATA) to find the leader's process");
    };
    let addresses = cluster_addresses();
    let workers = NoopWorkers::start(&addresses, args.workers, args.worker_slots, client).await?;
    let mut to_commit_us = Vec::new();
    let mut to_dispatch_us = Vec::new();
    let mut record = Record {
        bench: "failover".into(),
        system: credentials::system().into(),
        clients: args.clients,
        batch: 1,
        offered_per_s: Some(args.rate as f64),
        notes: vec![
            "per trial: SIGKILL of the leader process under open-loop load of no-op tasks".into(),
            "kill_to_first_commit: until the first submission created by the new leader is acknowledged".into(),
            "kill_to_first_dispatch: until a no-op worker starts the first task created after the kill".into(),
            "the killed node is restarted and the cluster is healthy again before the next trial".into(),
        ],
        ..Record::default()
    };
    let before = ProcSnapshot::take(Some(pid_dir));
    for trial in 1..=args.trials {
        // Trials done so far are kept when the cluster does not recover.
        let members = match wait_healthy(client, Duration::from_secs(120)).await {
            Ok(members) => members,
            Err(e) => {
                record.errors += 1;
                record.sample_errors.push(format!("before trial {trial}: {e}"));
                break;
            }
        };
        let leader = members
            .iter()
            .find(|m| m.role == "leader")
            .map(|m| m.node_id)
            .context("no leader")?;
        let pid = node_pid(pid_dir, leader)?;
        let clients = Arc::new(
            (0..args.clients)
                .map(|_| new_client(&addresses))
                .collect::<anyhow::Result<Vec<_>>>()?,
        );
        let queue = format!("bench-failover-{}", run_id());
        let load = tokio::spawn(open_loop(
            clients,
            runnable_spec(&queue, false),
            args.rate,
            Duration::from_millis(args.before_kill_ms + args.after_kill_ms),
            MAX_IN_FLIGHT,
        ));
        tokio::time::sleep(Duration::from_millis(args.before_kill_ms)).await;
        let kill_us = clock().now_us();
        sigkill(pid)?;
        let sends = load.await.context("the load generator failed")?;
        // Let the last dispatches land before looking at the workers' records.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let starts = workers.started();
        let kill_ms = kill_us / 1000;
        let mut first_commit: Option<u64> = None;
        let mut first_dispatch: Option<u64> = None;
        let mut errors = 0;
        for send in &sends {
            match &send.outcome {
                Ok((task_id, created_ms)) if *created_ms > kill_ms => {
                    let commit = send.ack_us.saturating_sub(kill_us);
                    first_commit = Some(first_commit.map_or(commit, |c| c.min(commit)));
                    if let Some(started) = starts.get(task_id) {
                        let dispatch = started.saturating_sub(kill_us);
                        first_dispatch = Some(first_dispatch.map_or(dispatch, |d| d.min(dispatch)));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    errors += 1;
                    if record.sample_errors.len() < SAMPLE_ERRORS {
                        record.sample_errors.push(e.clone());
                    }
                }
            }
        }
        record.calls += sends.len() as u64;
        record.errors += errors;
        match (first_commit, first_dispatch) {
            (Some(commit), Some(dispatch)) => {
                record.ops += 1;
                to_commit_us.push(commit);
                to_dispatch_us.push(dispatch);
                eprintln!(
                    "  failover trial {trial}: leader node {leader} killed; first commit after {} ms, first dispatch after {} ms",
                    fmt_ms(commit as f64 / 1000.0),
                    fmt_ms(dispatch as f64 / 1000.0)
                );
            }
            _ => {
                record.errors += 1;
                record.sample_errors.push(format!(
                    "trial {trial}: no commit or dispatch by a new leader within {} ms of the kill",
                    args.after_kill_ms
                ));
                eprintln!("  failover trial {trial}: no new-leader commit/dispatch seen");
            }
        }
        if let Err(e) = run_script(&args.cluster_script, &["restart", &leader.to_string()]).await {
            record.errors += 1;
            record
                .sample_errors
                .push(format!("restarting node {leader} after trial {trial}: {e}"));
            break;
        }
    }
    if let Err(e) = wait_healthy(client, Duration::from_secs(120)).await {
        record.sample_errors.push(format!("after the trials: {e}"));
    }
    workers.stop().await;
    record.runs = to_commit_us.len();
    // Successful trials, not a rate: the latencies are what this bench is about.
    record.ops_per_s = to_commit_us.len() as f64;
    record.ops_per_s_min = record.ops_per_s;
    record.ops_per_s_max = record.ops_per_s;
    if let Some(dist) = Dist::of_micros(&mut to_commit_us) {
        record.latencies.insert("kill_to_first_commit".into(), dist);
    }
    if let Some(dist) = Dist::of_micros(&mut to_dispatch_us) {
        record.latencies.insert("kill_to_first_dispatch".into(), dist);
    }
    let usage = ProcSnapshot::take(Some(pid_dir)).usage_since(&before);
    record.resources = usage;
    Ok(vec![record])
}

// --- fill / restart ----------------------------------------------------------------------------

async fn bench_fill(args: &FillArgs, client: &ClusterClient) -> anyhow::Result<Vec<Record>> {
    check_range("--tasks", args.tasks, 1, MAX_FILL_TASKS)?;
    check_range("--clients", args.clients, 1, MAX_CLIENTS)?;
    check_range("--batch", args.batch, 1, MAX_BATCH)?;
    check_range("--payload-bytes", args.payload_bytes, 0, MAX_PAYLOAD_BYTES)?;
    let addresses = cluster_addresses();
    let template = parked_spec("bench-fill", args.payload_bytes);
    let term_before = raft_term(client).await;
    let before = ProcSnapshot::take(args.common.pid_dir.as_deref());
    let started = Instant::now();
    let mut set = JoinSet::new();
    for c in 0..args.clients {
        let share = args.tasks / args.clients + usize::from(c < args.tasks % args.clients);
        let mut driver_client = new_client(&addresses)?;
        let template = template.clone();
        let batch = args.batch;
        set.spawn(async move {
            let mut stats = LoopStats::default();
            let mut max_id = 0;
            let mut left = share;
            while left > 0 {
                let n = left.min(batch);
                let sent = Instant::now();
                let result = driver_client.submit_tasks(vec![template.clone(); n]).await;
                stats.calls += 1;
                match result {
                    Ok(response) => {
                        left -= n;
                        stats.ops += n as u64;
                        stats.lat_us.push(micros(sent.elapsed()));
                        max_id = response.results.iter().map(|r| r.task_id).fold(max_id, u64::max);
                    }
                    Err(e) => {
                        stats.error(e.to_string());
                        if stats.errors > 100 {
                            break;
                        }
                        tokio::time::sleep(ERROR_PAUSE).await;
                        driver_client = driver_client.clone();
                    }
                }
            }
            (stats, max_id)
        });
    }
    let mut stats = LoopStats::default();
    let mut max_id = 0;
    while let Some(joined) = set.join_next().await {
        let (s, m) = joined.context("a filling client failed")?;
        stats.merge(s);
        max_id = max_id.max(m);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The followers' memory means something only once they have applied everything.
    let caught_up = wait_healthy(client, Duration::from_secs(180)).await;
    let catch_up_s = started.elapsed().as_secs_f64() - elapsed;
    let after = ProcSnapshot::take(args.common.pid_dir.as_deref());
    let term_after = raft_term(client).await;
    let usage = after.usage_since(&before);
    let mut record = Record {
        bench: "fill".into(),
        system: credentials::system().into(),
        clients: args.clients,
        batch: args.batch,
        payload_bytes: args.payload_bytes,
        runs: 1,
        window_s: elapsed,
        ops: stats.ops,
        calls: stats.calls,
        errors: stats.errors,
        ops_per_s: stats.ops as f64 / elapsed,
        notes: vec![
            "parked tasks (delayed 1 h, unplaceable) added with batch submits; rss_growth_per_task compares \
             each node's RSS before and after"
                .into(),
        ],
        sample_errors: stats.sample_errors.clone(),
        ..Record::default()
    };
    record.ops_per_s_min = record.ops_per_s;
    record.ops_per_s_max = record.ops_per_s;
    if let Some(dist) = Dist::of_micros(&mut stats.lat_us) {
        record.latencies.insert("ack".into(), dist);
    }
    record.extra.insert("tasks_in_state".into(), max_id as f64);
    match caught_up {
        Ok(_) => {
            record.extra.insert("followers_caught_up_after_s".into(), catch_up_s);
        }
        Err(e) => record.sample_errors.push(format!("after the fill: {e}")),
    }
    let nodes: Vec<(&ProcSample, Option<&ProcSample>)> = after
        .procs
        .iter()
        .filter(|p| p.name.starts_with("node"))
        .map(|p| (p, before.procs.iter().find(|b| b.name == p.name && b.pid == p.pid)))
        .collect();
    if stats.ops > 0 && !nodes.is_empty() {
        let growth: Vec<f64> = nodes
            .iter()
            .filter_map(|(a, b)| b.map(|b| (a.rss_kib as f64 - b.rss_kib as f64) * 1024.0 / stats.ops as f64))
            .collect();
        if !growth.is_empty() {
            record.extra.insert("rss_growth_per_task_bytes".into(), median(&growth));
        }
        let rss: Vec<f64> = nodes
            .iter()
            .map(|(a, _)| a.rss_kib as f64 * 1024.0 / max_id.max(1) as f64)
            .collect();
        record.extra.insert("rss_per_task_in_state_bytes".into(), median(&rss));
        let data: Vec<f64> = nodes
            .iter()
            .map(|(a, _)| a.data_bytes as f64 / max_id.max(1) as f64)
            .collect();
        record.extra.insert("data_dir_bytes_per_task".into(), median(&data));
    }
    note_elections(&mut record, term_before, term_after);
    add_usage(&mut record, usage);
    print_progress(&record);
    Ok(vec![record])
}

/// NodeStatus of `address` over a new connection (a new client has its own), or None.
async fn node_status_fresh(address: &str) -> Option<api::MemberStatus> {
    let client = credentials::client(address)
        .ok()?
        .with_per_call_deadline(Duration::from_secs(2));
    let call = client.call_node_channel(address, |channel| async move {
        api::scheduler_client::SchedulerClient::new(channel)
            .node_status(api::NodeStatusRequest {})
            .await
    });
    tokio::time::timeout(Duration::from_millis(2500), call)
        .await
        .ok()?
        .ok()?
        .status
}

async fn bench_restart(args: &RestartArgs, client: &ClusterClient) -> anyhow::Result<Vec<Record>> {
    check_range("--timeout-ms", args.timeout_ms, 1000, MAX_DURATION_MS)?;
    let Some(pid_dir) = args.common.pid_dir.as_deref() else {
        bail!("restart needs --pid-dir (the cluster's RAFTSCHED_DATA) to find the node's process");
    };
    // A marker task: its id tells how many tasks the state holds.
    let marker = client.submit_task(parked_spec("bench-restart", 0)).await?;
    let tasks_in_state = marker.task.map_or(0, |t| t.id);
    let members = wait_healthy(client, Duration::from_secs(180)).await?;
    let leader = members.iter().find(|m| m.role == "leader").context("no leader")?;
    let target = match args.node.as_str() {
        "leader" => leader.clone(),
        "follower" => members
            .iter()
            .filter(|m| m.role == "follower")
            .min_by_key(|m| m.node_id)
            .cloned()
            .context("no follower")?,
        id => {
            let id: u64 = id.parse().context("--node must be leader, follower or a node id")?;
            members
                .iter()
                .find(|m| m.node_id == id)
                .cloned()
                .context("no such node")?
        }
    };
    let applied = leader.last_applied_index;
    let pid = node_pid(pid_dir, target.node_id)?;
    let before = ProcSnapshot::take(Some(pid_dir));
    sigkill(pid)?;
    let killed = Instant::now();
    let script = args.cluster_script.clone();
    let node = target.node_id.to_string();
    let restart = tokio::spawn(async move { run_script(&script, &["restart", &node]).await });
    let deadline = killed + Duration::from_millis(args.timeout_ms);
    let mut answered: Option<Duration> = None;
    let caught_up = loop {
        if let Some(status) = node_status_fresh(&target.address).await {
            answered.get_or_insert_with(|| killed.elapsed());
            if status.last_applied_index >= applied {
                break killed.elapsed();
            }
        }
        if Instant::now() >= deadline {
            bail!("node {} not back within {} ms", target.node_id, args.timeout_ms);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    restart.await.context("the restart script task failed")??;
    let after = ProcSnapshot::take(Some(pid_dir));
    let node_name = format!("node{}", target.node_id);
    let mut record = Record {
        bench: "restart".into(),
        system: credentials::system().into(),
        runs: 1,
        ops: 1,
        notes: vec![
            format!(
                "SIGKILL of node {} ({}), then scripts/cluster.sh restart; times from the kill (they include the \
                 script starting the process)",
                target.node_id, target.role
            ),
            "restart_to_caught_up: the node answers NodeStatus with last_applied_index >= the leader's applied \
             index at the kill"
                .into(),
        ],
        ..Record::default()
    };
    let one = |d: Duration| Dist {
        count: 1,
        mean_ms: d.as_secs_f64() * 1000.0,
        p50_ms: d.as_secs_f64() * 1000.0,
        p99_ms: d.as_secs_f64() * 1000.0,
        p999_ms: d.as_secs_f64() * 1000.0,
        max_ms: d.as_secs_f64() * 1000.0,
    };
    if let Some(answered) = answered {
        record.latencies.insert("restart_to_answer".into(), one(answered));
    }
    record.latencies.insert("restart_to_caught_up".into(), one(caught_up));
    record.extra.insert("tasks_in_state".into(), tasks_in_state as f64);
    record.extra.insert("applied_index".into(), applied as f64);
    if let Some(p) = after.procs.iter().find(|p| p.name == node_name) {
        record
            .extra
            .insert("rss_after_restart_mib".into(), p.rss_kib as f64 / 1024.0);
        if tasks_in_state > 0 {
            record.extra.insert(
                "rss_per_task_after_restart_bytes".into(),
                p.rss_kib as f64 * 1024.0 / tasks_in_state as f64,
            );
        }
        record.extra.insert("data_dir_bytes".into(), p.data_bytes as f64);
    }
    record.resources = after.usage_since(&before);
    eprintln!(
        "  restart of node {} with {} tasks: answers after {} ms, caught up after {} ms",
        target.node_id,
        tasks_in_state,
        answered.map_or("-".into(), |a| fmt_ms(a.as_secs_f64() * 1000.0)),
        fmt_ms(caught_up.as_secs_f64() * 1000.0)
    );
    Ok(vec![record])
}

// --- Process accounting ------------------------------------------------------------------------

/// One process's counters at one moment.
#[derive(Debug, Clone)]
struct ProcSample {
    name: String,
    pid: i32,
    cpu_ticks: u64,
    write_bytes: u64,
    rss_kib: u64,
    hwm_kib: u64,
    data_bytes: u64,
}

/// The counters of the cluster's processes (from pid files) and of this process.
struct ProcSnapshot {
    procs: Vec<ProcSample>,
    /// The whole machine's (busy, idle) ticks from /proc/stat.
    machine_ticks: Option<(u64, u64)>,
}

impl ProcSnapshot {
    fn take(pid_dir: Option<&Path>) -> ProcSnapshot {
        let mut procs = Vec::new();
        if let Some(dir) = pid_dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for file in files {
                let Some(name) = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".pid"))
                else {
                    continue;
                };
                if !(name.starts_with("node") || name.starts_with("etcd") || name.starts_with("worker")) {
                    continue;
                }
                let Some(pid) = std::fs::read_to_string(&file)
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok())
                else {
                    continue;
                };
                if let Some(mut sample) = ProcSample::read(name, &pid.to_string()) {
                    sample.pid = pid;
                    sample.data_bytes = dir_size(&dir.join(name));
                    procs.push(sample);
                }
            }
        }
        if let Some(mut own) = ProcSample::read("loadgen", "self") {
            own.pid = std::process::id() as i32;
            procs.push(own);
        }
        ProcSnapshot {
            procs,
            machine_ticks: machine_ticks(),
        }
    }

    /// What each process used since `before` (a process that restarted counts from zero).
    fn usage_since(&self, before: &ProcSnapshot) -> Vec<ProcUsage> {
        // SAFETY: sysconf has no memory effects.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let mut usage: Vec<ProcUsage> = self
            .procs
            .iter()
            .map(|a| {
                let b = before.procs.iter().find(|b| b.name == a.name && b.pid == a.pid);
                ProcUsage {
                    name: a.name.clone(),
                    cpu_s: a.cpu_ticks.saturating_sub(b.map_or(0, |b| b.cpu_ticks)) as f64 / ticks,
                    write_bytes: a.write_bytes.saturating_sub(b.map_or(0, |b| b.write_bytes)),
                    rss_mib: a.rss_kib as f64 / 1024.0,
                    peak_rss_mib: a.hwm_kib as f64 / 1024.0,
                    data_bytes: a.data_bytes,
                }
            })
            .collect();
        // What else ran on the machine meanwhile (other processes, the kernel), and how
        // much CPU stayed idle: the evidence of whether a run was CPU-bound or disturbed.
        if let (Some((busy1, idle1)), Some((busy0, idle0))) = (self.machine_ticks, before.machine_ticks) {
            let ours: f64 = usage.iter().map(|u| u.cpu_s).sum();
            let busy = busy1.saturating_sub(busy0) as f64 / ticks;
            usage.push(ProcUsage {
                name: "other".into(),
                cpu_s: (busy - ours).max(0.0),
                ..ProcUsage::default()
            });
            usage.push(ProcUsage {
                name: "idle".into(),
                cpu_s: idle1.saturating_sub(idle0) as f64 / ticks,
                ..ProcUsage::default()
            });
        }
        usage
    }
}

/// (busy, idle) ticks of all CPUs together, from the first line of /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy = f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)? + f.get(7).unwrap_or(&0);
    let idle = f.get(3)? + f.get(4)?;
    Some((busy, idle))
}

impl ProcSample {
    fn read(name: &str, pid: &str) -> Option<ProcSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields after the command: state is field 3, utime 14 and stime 15.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
        let write_bytes = io
            .lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Some(ProcSample {
            name: name.to_string(),
            pid: 0,
            cpu_ticks: utime + stime,
            write_bytes,
            rss_kib: kib("VmRSS:"),
            hwm_kib: kib("VmHWM:"),
            data_bytes: 0,
        })
    }
}

/// Bytes of every file under `dir` (0 if it does not exist).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    let mut visited = 0;
    while let Some(path) = stack.pop() {
        visited += 1;
        if visited > 100_000 {
            break;
        }
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

// --- Tables ------------------------------------------------------------------------------------

fn fmt_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

fn fmt_rate(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

/// How a comparison table shows one field of its rows.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Text,
    Count,
    Rate,
    Ratio,
    Ms,
}

/// Prints `rows` (JSON objects, as the report's JSON has them) as a table of `columns`
/// (header, field, how shown) after a blank line; nothing when there are none. The etcd
/// ratios and the TLS cost are both such a table.
fn print_comparison(rows: &[serde_json::Value], columns: &[(&str, &str, Cell)]) {
    if rows.is_empty() {
        return;
    }
    println!();
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|(_, field, cell)| {
                    let value = &row[*field];
                    let number = value.as_f64().unwrap_or(0.0);
                    match cell {
                        Cell::Text => value.as_str().unwrap_or("").to_string(),
                        Cell::Count => value.to_string(),
                        Cell::Rate => fmt_rate(number),
                        Cell::Ratio => format!("{number:.2}x"),
                        Cell::Ms => fmt_ms(number),
                    }
                })
                .collect()
        })
        .collect();
    let headers: Vec<&str> = columns.iter().map(|(header, _, _)| *header).collect();
    output::print_table(&headers, &table);
}

fn print_records(records: &[Record]) {
    let header = [
        "BENCH", "SYSTEM", "CLIENTS", "BATCH", "RUNS", "OPS/S", "RANGE", "OPS", "ERRORS", "METRIC", "P50 ms", "P99 ms",
        "P99.9 ms", "MAX ms",
    ];
    let mut rows = Vec::new();
    for r in records {
        let range = if r.runs > 1 {
            format!("{}-{}", fmt_rate(r.ops_per_s_min), fmt_rate(r.ops_per_s_max))
        } else {
            "-".into()
        };
        let head = vec![
            r.bench.clone(),
            r.system.clone(),
            r.clients.to_string(),
            r.batch.to_string(),
            r.runs.to_string(),
            fmt_rate(r.ops_per_s),
            range,
            r.ops.to_string(),
            r.errors.to_string(),
        ];
        if r.latencies.is_empty() {
            let mut row = head.clone();
            row.extend(["-", "-", "-", "-", "-"].map(String::from));
            rows.push(row);
        }
        for (name, d) in &r.latencies {
            let mut row = head.clone();
            row.extend([
                name.clone(),
                fmt_ms(d.p50_ms),
                fmt_ms(d.p99_ms),
                fmt_ms(d.p999_ms),
                fmt_ms(d.max_ms),
            ]);
            rows.push(row);
        }
    }
    output::print_table(&header, &rows);
    let extras: Vec<Vec<String>> = records
        .iter()
        .flat_map(|r| {
            r.extra.iter().map(move |(k, v)| {
                vec![
                    r.bench.clone(),
                    r.system.clone(),
                    r.clients.to_string(),
                    k.clone(),
                    format!("{v:.3}"),
                ]
            })
        })
        .collect();
    if !extras.is_empty() {
        println!();
        output::print_table(&["BENCH", "SYSTEM", "CLIENTS", "FIGURE", "VALUE"], &extras);
    }
    for r in records {
        for e in &r.sample_errors {
            println!("error sample ({} {} clients={}): {e}", r.system, r.bench, r.clients);
        }
    }
}

// --- report ------------------------------------------------------------------------------------

/// One target of the benchmark issue, as measured.
#[derive(Serialize, Debug)]
struct TargetResult {
    target: String,
    measured: String,
    /// None when the suite did not measure it.
    met: Option<bool>,
    detail: String,
}

/// The latest result of `bench` (with `clients`); plaintext results are only compared with
/// TLS ones ([`tls_cost`]), never taken for the targets or the etcd ratios.
fn find<'a>(records: &'a [Record], bench: &str, clients: Option<usize>) -> Option<&'a Record> {
    records
        .iter()
        .rev()
        .find(|r| r.bench == bench && clients.is_none_or(|c| r.clients == c) && r.system != tls_cost::PLAINTEXT_SYSTEM)
}

fn latency(record: Option<&Record>, name: &str) -> Option<Dist> {
    record.and_then(|r| r.latencies.get(name).copied())
}

fn targets(records: &[Record]) -> Vec<TargetResult> {
    let mut out = Vec::new();
    let submit100 = find(records, "submit", Some(100));
    let etcd100 = find(records, "etcd-put", Some(100));
    let target = |t: &str, measured: String, met: Option<bool>, detail: String| TargetResult {
        target: t.into(),
        measured,
        met,
        detail,
    };
    out.push(match submit100 {
        Some(r) => target(
            ">= 20,000 durable submissions/s, 100 clients",
            format!("{:.0}/s", r.ops_per_s),
            Some(r.ops_per_s >= 20_000.0),
            format!("{:.2}x of target", r.ops_per_s / 20_000.0),
        ),
        None => target(
            ">= 20,000 durable submissions/s, 100 clients",
            "-".into(),
            None,
            "not run".into(),
        ),
    });
    out.push(match (submit100, etcd100) {
        (Some(s), Some(e)) if e.ops_per_s > 0.0 => {
            let ratio = s.ops_per_s / e.ops_per_s;
            target(
                ">= 3x etcd's put rate, 100 clients",
                format!("{ratio:.2}x ({:.0} vs {:.0}/s)", s.ops_per_s, e.ops_per_s),
                Some(ratio >= 3.0),
                format!("{:.2}x of target", ratio / 3.0),
            )
        }
        _ => target(
            ">= 3x etcd's put rate, 100 clients",
            "-".into(),
            None,
            "etcd not run".into(),
        ),
    });
    let s1 = latency(find(records, "submit", Some(1)), "ack");
    let e1 = latency(find(records, "etcd-put", Some(1)), "ack");
    out.push(match (s1, e1) {
        (Some(s), Some(e)) => target(
            "1 client: p50 <= etcd's put p50",
            format!("{} ms vs {} ms", fmt_ms(s.p50_ms), fmt_ms(e.p50_ms)),
            Some(s.p50_ms <= e.p50_ms),
            format!("{:.2}x etcd's", s.p50_ms / e.p50_ms.max(1e-9)),
        ),
        _ => target(
            "1 client: p50 <= etcd's put p50",
            "-".into(),
            None,
            "etcd not run".into(),
        ),
    });
    let e2e = records
        .iter()
        .filter(|r| r.bench == "e2e")
        .max_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s));
    out.push(match e2e {
        Some(r) => target(
            ">= 10,000 tasks/s end to end (no-op workers)",
            format!("{:.0}/s", r.ops_per_s),
            Some(r.ops_per_s >= 10_000.0),
            format!(
                "{:.2}x of target (best e2e run: {} clients, batch {})",
                r.ops_per_s / 10_000.0,
                r.clients,
                r.batch
            ),
        ),
        None => target(">= 10,000 tasks/s end to end", "-".into(), None, "not run".into()),
    });
    let rate = records
        .iter()
        .rev()
        .find(|r| r.bench == "rate" && r.offered_per_s.is_some_and(|o| (o - 1000.0).abs() < 1.0));
    out.push(match latency(rate, "submit_to_start") {
        Some(d) => target(
            "submit->start p99 <= 10 ms at 1,000/s offered",
            format!("p99 {} ms (p50 {} ms)", fmt_ms(d.p99_ms), fmt_ms(d.p50_ms)),
            Some(d.p99_ms <= 10.0),
            format!("{:.2}x of the bound", d.p99_ms / 10.0),
        ),
        None => target(
            "submit->start p99 <= 10 ms at 1,000/s",
            "-".into(),
            None,
            "not run".into(),
        ),
    });
    let failover = find(records, "failover", None);
    out.push(match latency(failover, "kill_to_first_dispatch") {
        Some(d) => target(
            "failover p99 <= 1 s",
            format!(
                "dispatch p99 {} ms (commit p99 {} ms), {} trials",
                fmt_ms(d.p99_ms),
                fmt_ms(latency(failover, "kill_to_first_commit").map_or(0.0, |c| c.p99_ms)),
                d.count
            ),
            Some(d.p99_ms <= 1000.0),
            format!("{:.2}x of the bound; with few trials p99 is the max", d.p99_ms / 1000.0),
        ),
        None => target("failover p99 <= 1 s", "-".into(), None, "not run".into()),
    });
    let fill = find(records, "fill", None);
    let per_task = fill.and_then(|r| r.extra.get("rss_growth_per_task_bytes").copied());
    out.push(match per_task {
        Some(bytes) => target(
            "<= 1 KiB memory per pending task",
            format!("{bytes:.0} B/task (node RSS growth during fill)"),
            Some(bytes <= 1024.0),
            format!("{:.2}x of the bound", bytes / 1024.0),
        ),
        None => target("<= 1 KiB memory per pending task", "-".into(), None, "not run".into()),
    });
    let restart = find(records, "restart", None);
    out.push(match latency(restart, "restart_to_caught_up") {
        Some(d) => {
            let tasks = restart
                .and_then(|r| r.extra.get("tasks_in_state").copied())
                .unwrap_or(0.0);
            let full = tasks >= 1_000_000.0;
            target(
                "1M-task node serving within 10 s of restart",
                format!("{:.2} s with {tasks:.0} tasks", d.p50_ms / 1000.0),
                Some(d.p50_ms <= 10_000.0 && full),
                if full {
                    format!("{:.2}x of the bound", d.p50_ms / 10_000.0)
                } else {
                    "fewer than 1M tasks in the state: not a test of the target".into()
                },
            )
        }
        None => target(
            "1M-task node serving within 10 s of restart",
            "-".into(),
            None,
            "not run".into(),
        ),
    });
    out
}

/// raftsched submit vs etcd put at each client count both ran.
fn ratios(records: &[Record]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for e in records.iter().filter(|r| r.bench == "etcd-put") {
        for bench in ["submit", "submit-batch"] {
            let Some(s) = find(records, bench, Some(e.clients)) else {
                continue;
            };
            let (sp, ep) = (
                latency(Some(s), "ack").unwrap_or_default(),
                latency(Some(e), "ack").unwrap_or_default(),
            );
            out.push(serde_json::json!({
                "bench": bench,
                "clients": e.clients,
                "batch": s.batch,
                "raftsched_ops_per_s": s.ops_per_s,
                "etcd_ops_per_s": e.ops_per_s,
                "throughput_ratio": s.ops_per_s / e.ops_per_s.max(1e-9),
                "raftsched_p50_ms": sp.p50_ms,
                "etcd_p50_ms": ep.p50_ms,
                "p50_ratio": sp.p50_ms / ep.p50_ms.max(1e-9),
                "raftsched_p99_ms": sp.p99_ms,
                "etcd_p99_ms": ep.p99_ms,
            }));
        }
    }
    out
}

fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    serde_json::json!({
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_model": model,
        "memory_gib": mem_kib as f64 / 1024.0 / 1024.0,
        "kernel": kernel.trim(),
    })
}

fn report(args: &ReportArgs, json: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not a bench result", args.input.display(), n + 1))?;
        records.push(record);
    }
    let targets = targets(&records);
    let ratios = ratios(&records);
    let tls_cost = tls_cost::rows(&records);
    let whole = serde_json::json!({
        "machine": machine(),
        "notes": args.note,
        "targets": targets,
        "etcd_ratios": ratios,
        "tls_cost": tls_cost,
        "results": records,
    });
    if let Some(path) = &args.out_json {
        std::fs::write(path, serde_json::to_string_pretty(&whole)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        output::print_json(&whole);
        return Ok(());
    }
    let m = machine();
    println!(
        "machine: {} cpus ({}), {:.1} GiB memory, kernel {}",
        m["cpus"],
        m["cpu_model"].as_str().unwrap_or(""),
        m["memory_gib"].as_f64().unwrap_or(0.0),
        m["kernel"].as_str().unwrap_or("")
    );
    for note in &args.note {
        println!("{note}");
    }
    println!();
    print_records(&records);
    tls_cost::print(&tls_cost);
    print_comparison(
        &ratios,
        &[
            ("RAFTSCHED", "bench", Cell::Text),
            ("CLIENTS", "clients", Cell::Count),
            ("RAFTSCHED OPS/S", "raftsched_ops_per_s", Cell::Rate),
            ("ETCD PUTS/S", "etcd_ops_per_s", Cell::Rate),
            ("RATIO", "throughput_ratio", Cell::Ratio),
            ("RAFTSCHED P50", "raftsched_p50_ms", Cell::Ms),
            ("ETCD P50", "etcd_p50_ms", Cell::Ms),
            ("P50 RATIO", "p50_ratio", Cell::Ratio),
        ],
    );
    println!();
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|t| {
            vec![
                t.target.clone(),
                t.measured.clone(),
                match t.met {
                    Some(true) => "met".into(),
                    Some(false) => "NOT met".into(),
                    None => "-".into(),
                },
                t.detail.clone(),
            ]
        })
        .collect();
    output::print_table(&["TARGET", "MEASURED", "RESULT", "DETAIL"], &rows);
    let usage: Vec<Vec<String>> = records
        .iter()
        .flat_map(|r| {
            r.resources.iter().map(move |u| {
                vec![
                    format!("{} {} c={}", r.system, r.bench, r.clients),
                    u.name.clone(),
                    format!("{:.2}", u.cpu_s),
                    format!("{:.1}", u.write_bytes as f64 / 1048576.0),
                    format!("{:.0}", u.rss_mib),
                    format!("{:.0}", u.peak_rss_mib),
                    format!("{:.1}", u.data_bytes as f64 / 1048576.0),
                ]
            })
        })
        .collect();
    if !usage.is_empty() {
        println!();
        output::print_table(
            &[
                "RUN",
                "PROCESS",
                "CPU s",
                "WRITTEN MiB",
                "RSS MiB",
                "PEAK RSS MiB",
                "DATA MiB",
            ],
            &usage,
        );
    }
    Ok(())
}

// --- etcd client -------------------------------------------------------------------------------

/// The few etcd v3 messages the comparison needs, declared by hand (field numbers from
/// etcd's rpc.proto), sent with the same tonic stack the raftsched client uses.
mod etcd {
    use anyhow::Context;
    use anyhow::bail;
    use raftsched_api::peer_endpoint;
    use tonic::codegen::http::uri::PathAndQuery;
    use tonic::transport::Channel;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResponseHeader {
        #[prost(uint64, tag = "1")]
        pub cluster_id: u64,
        #[prost(uint64, tag = "2")]
        pub member_id: u64,
        #[prost(int64, tag = "3")]
        pub revision: i64,
        #[prost(uint64, tag = "4")]
        pub raft_term: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusRequest {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(string, tag = "2")]
        pub version: String,
        #[prost(uint64, tag = "4")]
        pub leader: u64,
    }

    async fn unary<Req, Resp>(channel: Channel, path: &'static str, request: Req) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("etcd not ready: {e}")))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        grpc.unary(tonic::Request::new(request), PathAndQuery::from_static(path), codec)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn put(channel: Channel, request: PutRequest) -> Result<PutResponse, tonic::Status> {
        unary(channel, "/etcdserverpb.KV/Put", request).await
    }

    /// The endpoint of the member that leads.
    pub async fn find_leader(endpoints: &str) -> anyhow::Result<String> {
        let mut last = String::from("no endpoint given");
        for endpoint in endpoints.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let channel = peer_endpoint(endpoint).map_err(anyhow::Error::msg)?.connect_lazy();
            match unary::<_, StatusResponse>(channel, "/etcdserverpb.Maintenance/Status", StatusRequest {}).await {
                Ok(status) => {
                    let me = status.header.context("etcd status without header")?.member_id;
                    if me == status.leader && me != 0 {
                        return Ok(endpoint.to_string());
                    }
                    last = format!("{endpoint} (etcd {}) is not the leader", status.version);
                }
                Err(e) => last = format!("{endpoint}: {}", e.message()),
            }
        }
        bail!("no etcd leader among {endpoints}: {last}")
    }
}
