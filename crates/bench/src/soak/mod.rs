//! `soak`: a steady offered rate of no-op tasks for a long time, sampled every interval —
//! memory and data dir of every node, disk bytes written per task, submit→start p50/p99,
//! elections and leader quorum losses, live tasks — written to bench/results/<date>-soak.{json,csv,png}, with a
//! verdict on the bounded-state targets (flat resources, no upward p99 trend).

mod chart;
mod load;
pub mod sample;
mod sampler;
pub mod series;
mod tracker;
pub mod verdict;

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use anyhow::bail;
use clap::Args;
use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;
use tokio::time::Instant;
use tokio::time::MissedTickBehavior;

use crate::CommonArgs;
use crate::NoopWorkers;
use crate::Record;
use crate::check_range;
use crate::cluster_addresses;
use crate::new_client;
use crate::plot;
use crate::run_id;
use crate::runnable_spec;
use sample::Sample;
use sampler::Sampler;
use tracker::Tracker;

/// A week: the longest soak accepted (a typo like `30d` for `30m` is refused past it).
const MAX_SOAK: Duration = Duration::from_secs(7 * 24 * 3600);
/// Sampling faster than this costs the machine more than it tells (each sample walks every
/// data dir and asks the cluster twice).
const MIN_SAMPLE_EVERY: Duration = Duration::from_secs(1);

#[derive(Args, Debug)]
pub struct SoakArgs {
    /// Offered submissions per second (one no-op task each).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// How long the load runs (30s, 10m, 2h).
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Retention of the soak's queue: finished tasks are purged this long after they finish.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    retention: Duration,
    /// Time after the first retention period before the verdict's window starts (the
    /// first purges catch up, the next snapshot replaces the one with the unpurged state).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// One sample per this interval.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    sample_every: Duration,
    /// Client connections the sends are spread over.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Bound on submissions in flight; a send past it waits (and its wait is measured).
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    /// No-op workers inside this process.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Slots of each no-op worker.
    #[arg(long, default_value_t = 256)]
    worker_slots: u32,
    /// Data dirs of node1, node2, ... (comma-separated) when they are not <pid-dir>/nodeN
    /// (the layout of scripts/cluster.sh).
    #[arg(long, value_delimiter = ',')]
    data_dir: Vec<PathBuf>,
    /// Where <date>-soak.{json,csv,png} go.
    #[arg(long, default_value = "bench/results")]
    out_dir: PathBuf,
    /// TrueType font for the plot's text.
    #[arg(long, default_value = plot::DEFAULT_FONT)]
    font: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Sets the retention of `queue` (weight 1, default placement: the soak's queue is its own).
async fn set_queue_retention(client: &ClusterClient, queue: &str, retention: Duration) -> anyhow::Result<()> {
    let retention_ms = u64::try_from(retention.as_millis()).context("--retention is too long")?;
    let policy = api::QueuePolicy {
        namespace: String::new(),
        queue: queue.to_string(),
        weight: 1,
        placement: String::new(),
        retention_ms,
    };
    client
        .set_queue_policy(policy)
        .await
        .with_context(|| format!("setting the retention of queue {queue}"))?;
    Ok(())
}

fn check(args: &SoakArgs) -> anyhow::Result<PathBuf> {
    check_range("--rate", args.rate, 1, crate::MAX_RATE)?;
    let secs = |d: Duration| d.as_secs_f64();
    if args.duration < Duration::from_secs(10) || args.duration > MAX_SOAK {
        bail!(
            "--duration must be between 10s and 7days, got {}",
            humantime::format_duration(args.duration)
        );
    }
    if args.retention.is_zero() || args.retention > MAX_SOAK {
        bail!(
            "--retention must be between 1ms and 7days, got {}",
            humantime::format_duration(args.retention)
        );
    }
    if args.sample_every < MIN_SAMPLE_EVERY || secs(args.sample_every) > secs(args.duration) / 3.0 {
        bail!(
            "--sample-every must be at least 1s and at most a third of --duration ({}), got {}",
            humantime::format_duration(args.duration / 3),
            humantime::format_duration(args.sample_every)
        );
    }
    check_range("--clients", args.clients, 1, crate::MAX_CLIENTS)?;
    check_range("--max-in-flight", args.max_in_flight, 1, crate::MAX_IN_FLIGHT)?;
    let Some(pid_dir) = args.common.pid_dir.clone() else {
        bail!(
            "soak samples the nodes' processes: pass --pid-dir with the node*.pid files (scripts/cluster.sh's data dir)"
        );
    };
    // Before the load, not after it: a missing font must not cost a 30-minute run its plot.
    plot::check_font(&args.font)?;
    Ok(pid_dir)
}

/// Runs the load and samples until it ends.
async fn run_load(
    args: &SoakArgs,
    client: &ClusterClient,
    pid_dir: PathBuf,
    queue: &str,
) -> anyhow::Result<(Vec<Sample>, Arc<Tracker>)> {
    let addresses = cluster_addresses();
    let tracker = Arc::new(Tracker::default());
    let observer = tracker.clone();
    let workers = NoopWorkers::start_observed(
        &addresses,
        args.workers,
        args.worker_slots,
        client,
        Arc::new(move |task_id, start_us| observer.started(task_id, start_us)),
    )
    .await?;
    let clients = Arc::new(
        (0..args.clients)
            .map(|_| new_client(&addresses))
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    let mut sampler = Sampler::new(client, pid_dir, args.data_dir.clone(), queue.to_string()).await;
    let start = Instant::now();
    let mut load = tokio::spawn(load::offer(
        clients,
        runnable_spec(queue, false),
        args.rate,
        start,
        args.duration,
        args.max_in_flight,
        tracker.clone(),
    ));
    let mut ticks = tokio::time::interval_at(start + args.sample_every, args.sample_every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut samples = Vec::new();
    let mut last_sample = start;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            joined = &mut load => {
                joined.context("the soak's load task failed")?;
                break;
            }
        }
        let sample = sampler.take(client, &tracker, start.elapsed().as_secs_f64()).await;
        last_sample = Instant::now();
        print_progress(&sample);
        samples.push(sample);
    }
    // The tail interval, unless it is too short to say anything: a few seconds of the
    // last acknowledgements over few completions would show as a spike in bytes per task.
    if last_sample.elapsed() >= args.sample_every / 2 {
        let sample = sampler.take(client, &tracker, start.elapsed().as_secs_f64()).await;
        print_progress(&sample);
        samples.push(sample);
    }
    workers.stop().await;
    Ok((samples, tracker))
}

fn print_progress(s: &Sample) {
    let rss: Vec<String> = s.nodes.iter().map(|n| format!("{:.0}", n.rss_mib)).collect();
    let data: Vec<String> = s.nodes.iter().map(|n| format!("{:.0}", n.data_mib)).collect();
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    eprintln!(
        "soak t={:>6.0}s sent {:>6} done {:>6} err {} live {:>8} p50 {} p99 {} ms  RSS {} MiB  data {} MiB  B/task {}  term {}",
        s.t_s,
        s.submitted,
        s.completed,
        s.submit_errors,
        s.live_tasks.map_or("-".to_string(), |n| n.to_string()),
        ms(s.start_p50_ms),
        ms(s.start_p99_ms),
        rss.join("/"),
        data.join("/"),
        s.write_bytes_per_task.map_or("-".to_string(), |b| format!("{b:.0}")),
        s.term.map_or("-".to_string(), |t| t.to_string()),
    );
}

/// bench/results/2026-12-02-0319-soak: the date as scripts/bench.sh names its results (UTC).
fn result_stem(out_dir: &Path) -> PathBuf {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    // 2026-12-02T03:19:16Z → 2026-12-02-0319
    let stamp = format!("{}-{}{}", &now[..10], &now[11..13], &now[14..16]);
    out_dir.join(format!("{stamp}-soak"))
}

pub async fn bench_soak(args: &SoakArgs, client: &ClusterClient) -> anyhow::Result<Vec<Record>> {
    let pid_dir = check(args)?;
    let queue = format!("bench-soak-{}", run_id());
    set_queue_retention(client, &queue, args.retention).await?;
    let (samples, tracker) = run_load(args, client, pid_dir, &queue).await?;
    let steady_from_s = (args.retention + args.warmup).as_secs_f64();
    let verdict = verdict::judge(&samples, steady_from_s);
    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("creating {}", args.out_dir.display()))?;
    let stem = result_stem(&args.out_dir);
    let with = |ext: &str| stem.with_extension(ext);
    let document = serde_json::json!({
        "bench": "soak",
        "queue": queue,
        "rate_per_s": args.rate,
        "duration_s": args.duration.as_secs_f64(),
        "retention_s": args.retention.as_secs_f64(),
        "warmup_s": args.warmup.as_secs_f64(),
        "sample_every_s": args.sample_every.as_secs_f64(),
        "retention_supported": true,
        "verdict": verdict,
        "samples": samples,
        "sample_errors": tracker.sample_errors(),
        // Acknowledged tasks whose start was never seen, and starts without an ack past the bound.
        "unmatched_starts": tracker.unmatched(),
    });
    series::write_files(&with("json"), &with("csv"), &document, &samples)?;
    let title = format!(
        "raftsched soak: {}/s offered for {}, retention {}",
        args.rate,
        humantime::format_duration(args.duration),
        humantime::format_duration(args.retention)
    );
    let spec = plot::PlotSpec {
        title: &title,
        marks: vec![
            (args.retention.as_secs_f64() / 60.0, "end of first retention"),
            (steady_from_s / 60.0, "verdict window starts"),
        ],
        font: &args.font,
    };
    let plotted = plot::draw(&with("png"), &chart::panels(&samples), &spec);
    let lines = verdict.lines();
    println!("soak results: {}.{{json,csv,png}}", stem.display());
    for line in &lines {
        println!("{line}");
    }
    if let Err(e) = &plotted {
        eprintln!("soak: no plot: {e:#}");
    }
    Ok(vec![record(args, &samples, &verdict, lines)])
}

/// The summary for --save / `report`.
fn record(args: &SoakArgs, samples: &[Sample], verdict: &verdict::Verdict, notes: Vec<String>) -> Record {
    let submitted: u64 = samples.iter().map(|s| s.submitted).sum();
    let completed: u64 = samples.iter().map(|s| s.completed).sum();
    let window_s = args.duration.as_secs_f64();
    let mut record = Record {
        bench: "soak".into(),
        system: crate::credentials::system().into(),
        clients: args.clients,
        batch: 1,
        runs: 1,
        window_s,
        ops: completed,
        calls: submitted + samples.iter().map(|s| s.submit_errors).sum::<u64>(),
        errors: samples.iter().map(|s| s.submit_errors).sum(),
        ops_per_s: completed as f64 / window_s,
        ops_per_s_min: completed as f64 / window_s,
        ops_per_s_max: completed as f64 / window_s,
        offered_per_s: Some(args.rate as f64),
        notes,
        ..Record::default()
    };
    let pass = |o: verdict::Outcome| if o == verdict::Outcome::Pass { 1.0 } else { 0.0 };
    for f in &verdict.flat {
        let key = format!("{}_{}", f.node, f.metric);
        record.extra.insert(format!("{key}_level"), f.flatness.level);
        record.extra.insert(
            format!("{key}_max_abs_dev"),
            f.flatness.min_dev.abs().max(f.flatness.max_dev),
        );
        record.extra.insert(format!("{key}_pass"), pass(f.flatness.outcome));
    }
    record.extra.insert("start_p99_level_ms".into(), verdict.p99.level_ms);
    record.extra.insert("start_p99_rise_ms".into(), verdict.p99.rise_ms);
    record
        .extra
        .insert("start_p99_trend_pass".into(), pass(verdict.p99.outcome));
    record.extra.insert(
        "leader_elections".into(),
        samples.iter().map(|s| s.elections).sum::<u64>() as f64,
    );
    record.extra.insert(
        "leader_quorum_losses".into(),
        samples.iter().map(|s| s.quorum_losses).sum::<u64>() as f64,
    );
    record
}
