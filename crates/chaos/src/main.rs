//! `raftsched-chaos`: a seeded fault-injection run of real node and worker processes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use clap::Parser;
use raftsched_chaos as chaos;
use raftsched_chaos::ChaosConfig;
use raftsched_chaos::schedule::FaultKind;

/// Start three nodes (every peer link through a TCP proxy), workers and clients; inject
/// faults from a seed; heal, drain, and check the history. Exits non-zero on any violation,
/// keeping the data dirs, logs and history for replay.
#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// Seed of the fault schedule and the load (default: a fresh one, printed first).
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds of faults (start-up and drain come on top).
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
    /// Worker processes.
    #[arg(long, default_value_t = 3)]
    workers: u32,
    /// Slots per worker.
    #[arg(long, default_value_t = 4)]
    worker_slots: u32,
    /// Worker lease: a worker silent this long loses its attempts.
    #[arg(long, default_value_t = 1500)]
    lease_ms: u64,
    /// Concurrent client loops.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Submissions per second, over all clients.
    #[arg(long, default_value_t = 40)]
    rate: u32,
    /// The raftsched binary to run (default: `raftsched` beside this binary).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Directory for data dirs, logs, history and summary; must be new or empty (default: a
    /// new directory under the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the directory when the run passes too (a failing run always keeps it).
    #[arg(long)]
    keep: bool,
    /// Fault kinds to schedule, comma-separated (default: all). Kinds: kill-leader,
    /// crash-restart-leader, kill-follower, pause-leader, isolate-leader, one-way-leader, restart-node, kill-worker,
    /// slow-links, reset-links.
    #[arg(long, value_delimiter = ',')]
    faults: Vec<FaultKind>,
    /// Raft heartbeat of the nodes.
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
    /// Raft election timeout range of the nodes.
    #[arg(long, default_value_t = 150)]
    election_min_ms: u64,
    #[arg(long, default_value_t = 300)]
    election_max_ms: u64,
    /// Nodes snapshot after this many log entries (small, so snapshots, purges and snapshot
    /// installs happen during the run).
    #[arg(long, default_value_t = 250)]
    snapshot_after: u64,
    /// Entries the nodes keep behind a snapshot (small, so a follower that was down needs a
    /// snapshot to catch up).
    #[arg(long, default_value_t = 50)]
    kept_after_snapshot: u64,
    /// After healing, the drain waits for every task to reach a final state; it gives up when
    /// no task finished for this long (or after ten times this in all).
    #[arg(long, default_value_t = 60)]
    drain_timeout_s: u64,
    /// After each heal, how long the nodes may take to agree on a leader.
    #[arg(long, default_value_t = 20)]
    recovery_timeout_s: u64,
    /// Do not print progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

async fn run(args: ChaosArgs, json: bool) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or_else(rand::random);
    // First thing, so that a run that hangs or crashes can still be replayed.
    eprintln!("chaos: seed {seed}");
    let bin = match args.bin {
        Some(bin) => bin,
        None => default_bin()?,
    };
    let dir = match args.dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!(
            "raftsched-chaos-{seed}-{}-{}",
            std::process::id(),
            raftsched_chaos::history::wall_ms()
        )),
    };
    let mut config = ChaosConfig::new(seed, bin, dir.clone());
    config.duration = Duration::from_secs(args.duration_s);
    config.workers = args.workers;
    config.worker_slots = args.worker_slots;
    config.worker_lease_ms = args.lease_ms;
    config.clients = args.clients.max(1);
    config.rate = args.rate.max(1);
    config.keep = args.keep;
    config.kinds = args.faults;
    config.heartbeat_ms = args.heartbeat_ms;
    config.election_min_ms = args.election_min_ms;
    config.election_max_ms = args.election_max_ms;
    config.snapshot_after_entries = args.snapshot_after.max(1);
    config.entries_kept_after_snapshot = args.kept_after_snapshot;
    config.drain_timeout = Duration::from_secs(args.drain_timeout_s);
    config.recovery_timeout = Duration::from_secs(args.recovery_timeout_s);
    if let Ok(filter) = std::env::var("RAFTSCHED_CHAOS_LOG") {
        config.log_filter = filter;
    }
    let quiet = args.quiet;
    let progress: chaos::Progress = Arc::new(move |line: &str| {
        if !quiet {
            eprintln!("chaos: {line}");
        }
    });

    // On Ctrl-C or SIGTERM the run is dropped: its guard kills every process it started.
    let summary = tokio::select! {
        summary = chaos::run(config, progress) => summary.with_context(|| format!("chaos run with seed {seed} (files in {})", dir.display()))?,
        stop = raftsched_client::wait_for_stop_signal() => {
            stop?;
            anyhow::bail!("interrupted; seed {seed}; history and logs kept in {}", dir.display());
        }
    };
    if json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_table());
    }
    if !summary.passed {
        anyhow::bail!(
            "chaos run with seed {seed} found violations: {}; history, logs and data kept in {}",
            summary.violations.join(", "),
            summary.dir
        );
    }
    Ok(())
}

/// The `raftsched` binary installed or built beside this one (cargo puts both in one
/// target directory).
fn default_bin() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("finding this binary (pass --bin)")?;
    let bin = me.with_file_name("raftsched");
    anyhow::ensure!(
        bin.is_file(),
        "no raftsched binary at {} (build it, or pass --bin)",
        bin.display()
    );
    Ok(bin)
}

/// Seeded fault injection on real raftsched nodes and workers, with a history checker.
#[derive(Parser, Debug)]
#[command(name = "raftsched-chaos", version)]
struct Cli {
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    chaos: ChaosArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let outcome = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli.chaos, cli.json)));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
