//! Multi-process chaos runs against the real binaries, with a history checker.
//!
//! [`run`] starts three `raftsched node` processes and a few `raftsched worker` processes,
//! routes every directed peer link (node A dialling node B) through a [`proxy::LinkProxy`] of
//! its own, drives concurrent client loops that submit small shell tasks, and injects faults
//! from a seeded [`schedule`]: SIGKILL of the leader or a follower, SIGSTOP of the leader,
//! the leader cut off in the minority, a one-way partition, a node restart, a worker
//! SIGKILL, slow links and reset connections. Then it heals everything, stops the clients,
//! drains, and [`check`]s the history against the final state; the [`summary::Summary`]
//! says what happened and whether anything was violated.
//!
//! Clients and workers talk to the nodes directly; only node-to-node traffic goes through
//! the proxies. Every process is started in its own process group and killed when the run
//! ends, however it ends (see [`procs`]).
//!
//! Architecture invariant: a tool outside the product. It may build `raftsched_api`
//! requests, but it calls the cluster through `raftsched_client::ClusterClient` and reads
//! refusals as `ClientError` codes; it never sees `tonic::Status`.

pub mod check;
pub mod disk;
pub mod history;
pub mod load;
pub mod procs;
pub mod proxy;
pub mod schedule;
pub mod summary;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::net::SocketAddrV4;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::check::TaskRecord;
use crate::history::Event;
use crate::history::History;
use crate::load::LoadSettings;
use crate::procs::ProcessSpec;
use crate::procs::Processes;
use crate::proxy::LinkMode;
use crate::proxy::LinkProxy;
use crate::schedule::FaultKind;
use crate::schedule::PlannedFault;
use crate::schedule::ScheduleTiming;
use crate::summary::ReplicaReport;
use crate::summary::Summary;
use crate::summary::Timings;
use raftsched_api::v1 as api;
use raftsched_client::ClientError;
use raftsched_client::ClusterClient;

/// Nodes in a chaos cluster.
const NODES: u64 = 3;
/// How long one status question to one node may take (a stopped node never answers).
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// After a fault that takes the leader away: how often, and how long, to look for the next.
const ELECTION_POLL: Duration = Duration::from_millis(50);
const ELECTION_WATCH: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
/// Start-up of the cluster and of the workers (a debug build on a busy machine is slow).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node or worker may take to exit after SIGTERM before it is killed.
const NODE_STOP_GRACE: Duration = Duration::from_secs(15);
const WORKER_STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a worker told to stop may finish its attempts.
const WORKER_DRAIN_MS: u64 = 2000;
/// How long the client loops may take to finish their last submissions.
const CLIENT_STOP_TIMEOUT: Duration = Duration::from_secs(90);
/// The request id of the write that checks the cluster serves writes after healing.
const PROBE_REQUEST_ID: &str = "probe-after-heal";

/// Progress lines for a human (the command prints them on stderr).
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The run could not get going (the cluster never came up, ...): nothing was checked.
    #[error("{0}")]
    Setup(String),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ChaosError {
    let context = context.into();
    move |source| ChaosError::Io { context, source }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub seed: u64,
    /// How long faults are injected (start-up and drain come on top).
    pub duration: Duration,
    pub workers: u32,
    pub worker_slots: u32,
    pub worker_lease_ms: u64,
    pub clients: u32,
    /// Submissions per second over all clients.
    pub rate: u32,
    /// The `raftsched` binary to run.
    pub bin: PathBuf,
    /// Where data dirs, logs, the history and the summary go. Must be empty or absent.
    pub dir: PathBuf,
    /// Keep `dir` even when the run passes.
    pub keep: bool,
    /// Fault kinds to schedule; empty means all.
    pub kinds: Vec<FaultKind>,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// The nodes take a snapshot after this many entries and keep this many behind it: small,
    /// so that snapshots, log purges and snapshot installs on a lagging follower happen
    /// during the run.
    pub snapshot_after_entries: u64,
    pub entries_kept_after_snapshot: u64,
    /// The drain gives up when no task finished for this long (or after ten times this).
    pub drain_timeout: Duration,
    /// How long after each heal the nodes must agree on a leader.
    pub recovery_timeout: Duration,
    /// How long one submission may retry inside the client before it counts as unknown.
    pub call_deadline: Duration,
    /// RUST_LOG of the nodes and workers.
    pub log_filter: String,
}

impl ChaosConfig {
    /// The defaults, for `seed`, running `bin` in `dir`.
    pub fn new(seed: u64, bin: PathBuf, dir: PathBuf) -> ChaosConfig {
        ChaosConfig {
            seed,
            duration: Duration::from_secs(60),
            workers: 3,
            worker_slots: 4,
            worker_lease_ms: 1500,
            clients: 8,
            rate: 40,
            bin,
            dir,
            keep: false,
            kinds: Vec::new(),
            heartbeat_ms: 50,
            election_min_ms: 150,
            election_max_ms: 300,
            snapshot_after_entries: 250,
            entries_kept_after_snapshot: 50,
            drain_timeout: Duration::from_secs(60),
            recovery_timeout: Duration::from_secs(20),
            call_deadline: Duration::from_secs(10),
            log_filter: "raftsched=info,openraft=warn".to_string(),
        }
    }

    fn settings_json(&self) -> serde_json::Value {
        serde_json::json!({
            "seed": self.seed,
            "duration_s": self.duration.as_secs(),
            "workers": self.workers,
            "worker_slots": self.worker_slots,
            "worker_lease_ms": self.worker_lease_ms,
            "clients": self.clients,
            "rate": self.rate,
            "bin": self.bin.display().to_string(),
            "kinds": self.enabled_kinds(),
            "heartbeat_ms": self.heartbeat_ms,
            "election_min_ms": self.election_min_ms,
            "election_max_ms": self.election_max_ms,
            "snapshot_after_entries": self.snapshot_after_entries,
            "entries_kept_after_snapshot": self.entries_kept_after_snapshot,
        })
    }

    fn enabled_kinds(&self) -> Vec<FaultKind> {
        if self.kinds.is_empty() {
            FaultKind::ALL.to_vec()
        } else {
            let set: BTreeSet<FaultKind> = self.kinds.iter().copied().collect();
            set.into_iter().collect()
        }
    }
}

/// Runs one chaos run and checks it. `Err` only when the run could not be carried out;
/// violations are in the summary.
pub async fn run(config: ChaosConfig, progress: Progress) -> Result<Summary, ChaosError> {
    let started = Instant::now();
    let created_dir = prepare_dir(&config.dir)?;
    let history =
        Arc::new(History::create(&config.dir.join("history.jsonl")).map_err(io_error("creating the history"))?);
    history.record(Event::Start {
        settings: config.settings_json(),
    });
    let processes = Processes::new();
    let _kill_guard = processes.kill_guard();
    let mut cluster = Cluster::start(&config, processes.clone(), history.clone(), progress.clone()).await?;

    // Load and faults.
    let load = LoadSettings {
        clients: config.clients,
        rate: config.rate,
        seed: config.seed,
        addresses: cluster.addresses(),
        call_deadline: config.call_deadline,
        tls: cluster.tls.clone(),
    };
    let stop_clients = CancellationToken::new();
    let mut clients = load::spawn_clients(&load, history.clone(), stop_clients.clone())
        .map_err(|e| ChaosError::Setup(format!("starting the clients: {e}")))?;
    progress(&format!(
        "{} clients submitting ~{} tasks/s; faults for {} s",
        config.clients,
        config.rate,
        config.duration.as_secs()
    ));
    let faults = cluster.run_faults().await;

    // Heal, stop the load, check that writes work, drain.
    cluster.heal_all().await;
    progress("healed; stopping the clients");
    stop_clients.cancel();
    let stopped = tokio::time::timeout(CLIENT_STOP_TIMEOUT, async {
        while clients.join_next().await.is_some() {}
    })
    .await;
    let mut notes = Vec::new();
    if stopped.is_err() {
        clients.abort_all();
        notes.push(format!(
            "client loops still busy after {CLIENT_STOP_TIMEOUT:?}; aborted"
        ));
    }
    let recovered = cluster.wait_healthy(config.recovery_timeout).await;
    let mut recovery_failures = faults.recovery_failures;
    if let Err(status) = &recovered {
        recovery_failures.push(format!("after the final heal: {status}"));
    }
    let (probe_acked, mut probe_detail) = cluster.probe_write().await;
    progress("draining");
    let drain_started = Instant::now();
    let (tasks, drained) = cluster.drain(config.drain_timeout).await;
    let drain_ms = drain_started.elapsed().as_millis() as u64;
    progress("comparing replicas");
    let mut replicas = cluster.compare_replicas(Duration::from_secs(30)).await;
    if !replicas.identical {
        replicas.per_node = cluster.check_each_replica(&history.records()).await;
    }
    // The state to check: read again after the replicas met, in case the drain's last read
    // failed.
    let tasks = match cluster.list_all_tasks().await {
        Ok(tasks) => tasks,
        Err(e) => {
            notes.push(format!("final task list failed ({e}); checking the drain's last read"));
            tasks
        }
    };
    let crashes = {
        let mut crashes = faults.crashes;
        crashes.extend(
            cluster
                .processes
                .exited_unexpectedly()
                .into_iter()
                .map(|(name, status)| format!("{name}: {status} (found at the end)")),
        );
        crashes
    };
    notes.extend(cluster.stop_all().await);

    // Check.
    let records = history.records();
    let report = check::check(&records, &tasks, &[]);
    let probe_task = tasks.iter().find(|t| t.request_id == PROBE_REQUEST_ID);
    let writes_after_heal = probe_acked && probe_task.is_some_and(|t| t.state == "succeeded");
    if probe_acked && !writes_after_heal {
        let state = probe_task.map_or("missing", |t| t.state.as_str());
        probe_detail = format!("{probe_detail}; but the probe task is {state}");
    }
    let samples = check::failover_samples(&records, &tasks);
    let enabled = config.enabled_kinds();
    let mut fired: BTreeMap<FaultKind, u64> = enabled.iter().map(|k| (*k, 0)).collect();
    for kind in &faults.fired {
        *fired.entry(*kind).or_default() += 1;
    }
    let scheduled: BTreeSet<FaultKind> = faults.scheduled.iter().copied().collect();
    // What happened around faults that is worth reading (a leader lost with no fault
    // active, a node slow to stop) without being a violation.
    notes.extend(records.iter().filter_map(|r| match &r.event {
        Event::Note { text } if text.starts_with("fault ") => Some(text.clone()),
        _ => None,
    }));
    if let Some(e) = history.write_error() {
        notes.push(format!("writing the history failed: {e}"));
    }
    let mut summary = Summary {
        seed: config.seed,
        duration_s: config.duration.as_secs(),
        ran_s: started.elapsed().as_secs_f64(),
        dir: config.dir.display().to_string(),
        kept: true,
        workers: config.workers,
        clients: config.clients,
        timings: Timings {
            heartbeat_ms: config.heartbeat_ms,
            election_min_ms: config.election_min_ms,
            election_max_ms: config.election_max_ms,
            worker_lease_ms: config.worker_lease_ms,
            snapshot_after_entries: config.snapshot_after_entries,
            entries_kept_after_snapshot: config.entries_kept_after_snapshot,
        },
        faults: fired,
        faults_not_scheduled: enabled.into_iter().filter(|k| !scheduled.contains(k)).collect(),
        faults_skipped: faults.skipped,
        check: report,
        replicas,
        writes_after_heal,
        writes_after_heal_detail: probe_detail,
        recovery_failures,
        crashes,
        drained,
        drain_ms,
        failover_election: check::percentiles(samples.iter().filter_map(|s| s.election_ms)),
        failover_dispatch: check::percentiles(samples.iter().filter_map(|s| s.dispatch_ms)),
        failover_submit: check::percentiles(samples.iter().filter_map(|s| s.submit_ms)),
        failover_samples: samples,
        notes,
        violations: Vec::new(),
        passed: false,
    };
    summary.judge();
    write_outputs(&config.dir, &tasks, &summary)?;
    drop(cluster);
    if summary.passed && !config.keep {
        remove_outputs(&config.dir, created_dir);
        summary.kept = false;
    }
    Ok(summary)
}

/// Creates `dir`, or accepts it empty. True when it was created here.
fn prepare_dir(dir: &Path) -> Result<bool, ChaosError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ChaosError::Setup(format!(
                    "{} is not empty: give a new or empty directory",
                    dir.display()
                )));
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
            Ok(true)
        }
        Err(e) => Err(ChaosError::Io {
            context: format!("reading {}", dir.display()),
            source: e,
        }),
    }
}

fn write_outputs(dir: &Path, tasks: &[TaskRecord], summary: &Summary) -> Result<(), ChaosError> {
    let mut lines = String::new();
    for task in tasks {
        lines.push_str(&serde_json::to_string(task).expect("a task record serializes"));
        lines.push('\n');
    }
    std::fs::write(dir.join("tasks.jsonl"), lines).map_err(io_error("writing tasks.jsonl"))?;
    std::fs::write(dir.join("summary.json"), summary.to_json()).map_err(io_error("writing summary.json"))?;
    std::fs::write(dir.join("summary.txt"), summary.to_table()).map_err(io_error("writing summary.txt"))?;
    Ok(())
}

fn remove_outputs(dir: &Path, created_dir: bool) {
    if created_dir {
        let _ = std::fs::remove_dir_all(dir);
    } else if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// What the fault phase did.
#[derive(Default)]
struct FaultPhase {
    /// Kinds the schedule reached (fired or skipped).
    scheduled: Vec<FaultKind>,
    fired: Vec<FaultKind>,
    skipped: Vec<String>,
    recovery_failures: Vec<String>,
    crashes: Vec<String>,
}

/// The running processes and proxies of one run.
struct Cluster<'a> {
    config: &'a ChaosConfig,
    /// Each node's client port.
    addrs: BTreeMap<u64, SocketAddr>,
    /// Each node's peer (Raft) port, which the proxies forward to.
    peer_addrs: BTreeMap<u64, SocketAddr>,
    /// The credentials dir (`raftsched certs init`, once per run) every process uses.
    certs_dir: std::path::PathBuf,
    /// The tool's own credential (`admin`).
    tls: raftsched_client::TlsSettings,
    /// (from, to) → the proxy node `from` dials to reach node `to`'s peer port.
    proxies: BTreeMap<(u64, u64), LinkProxy>,
    processes: Processes,
    history: Arc<History>,
    progress: Progress,
    /// For questions to one node at a time.
    direct: ClusterClient,
    /// Nodes stopped with SIGSTOP now.
    paused: BTreeSet<u64>,
    /// The leader and its term when the current fault fired.
    leader_before: Option<(u64, u64)>,
    /// Watches for the leader after the current fault; stopped before the next one.
    election_watch: Option<AbortOnDrop>,
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Lets the task run up to `limit` more, then aborts it.
    async fn finish_within(mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, &mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `raftsched certs init` once into the run's dir: the nodes, the workers and the
/// tool's `admin` credential, as a user would.
fn make_credentials(config: &ChaosConfig) -> Result<std::path::PathBuf, ChaosError> {
    let dir = config.dir.join("certs");
    // At least one worker credential: `--workers` takes no empty list.
    let workers: Vec<String> = (1..=config.workers.max(1)).map(worker_name).collect();
    let output = std::process::Command::new(&config.bin)
        .args([
            "certs",
            "init",
            "--nodes",
            "1,2,3",
            "--workers",
            &workers.join(","),
            "--force",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .map_err(io_error(format!("running {} certs init", config.bin.display())))?;
    if !output.status.success() {
        return Err(ChaosError::Setup(format!(
            "`raftsched certs init` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(dir)
}

fn node_name(id: u64) -> String {
    format!("node{id}")
}

fn worker_name(index: u32) -> String {
    format!("worker{index}")
}

impl<'a> Cluster<'a> {
    async fn start(
        config: &'a ChaosConfig,
        processes: Processes,
        history: Arc<History>,
        progress: Progress,
    ) -> Result<Cluster<'a>, ChaosError> {
        let on_ports = |base: u16| -> BTreeMap<u64, SocketAddr> {
            (1..=NODES)
                .map(|id| {
                    let port = base + (id - 1) as u16;
                    (id, SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)))
                })
                .collect()
        };
        let addrs = on_ports(crate::procs::free_port_base().map_err(ChaosError::Setup)?);
        let peer_addrs = on_ports(crate::procs::free_port_base().map_err(ChaosError::Setup)?);
        let mut proxies = BTreeMap::new();
        for from in 1..=NODES {
            for to in 1..=NODES {
                if from != to {
                    let proxy = LinkProxy::start(peer_addrs[&to])
                        .await
                        .map_err(io_error("starting a link proxy"))?;
                    proxies.insert((from, to), proxy);
                }
            }
        }
        let certs_dir = make_credentials(config)?;
        let tls = raftsched_client::TlsSettings::from_dir(&certs_dir, "admin")
            .map_err(|e| ChaosError::Setup(format!("credentials: {e}")))?;
        let addresses: Vec<String> = addrs.values().map(ToString::to_string).collect();
        let direct = ClusterClient::new(&addresses.join(","))
            .map_err(|e| ChaosError::Setup(format!("client: {e}")))?
            .with_tls(tls.clone())
            .with_overall_deadline(Duration::from_secs(5));
        let cluster = Cluster {
            config,
            addrs,
            peer_addrs,
            certs_dir,
            tls,
            proxies,
            processes,
            history,
            progress,
            direct,
            paused: BTreeSet::new(),
            leader_before: None,
            election_watch: None,
        };
        let links: Vec<String> = cluster
            .proxies
            .iter()
            .map(|((from, to), proxy)| format!("{from}->{to} via {}", proxy.local_addr()))
            .collect();
        cluster.note(format!(
            "nodes {}; peer links {}",
            cluster.addresses(),
            links.join(", ")
        ));
        for id in 1..=NODES {
            let path = config.dir.join(format!("{}.toml", node_name(id)));
            std::fs::write(&path, cluster.node_toml(id)).map_err(io_error(format!("writing {}", path.display())))?;
            cluster
                .processes
                .add(&node_name(id), cluster.node_spec(id))
                .map_err(io_error(format!("starting node {id} ({})", config.bin.display())))?;
        }
        (cluster.progress)(&format!(
            "started 3 nodes on {} (data and logs in {})",
            cluster.addresses(),
            config.dir.display()
        ));
        let (leader, term, waited) = cluster
            .wait_healthy(STARTUP_TIMEOUT)
            .await
            .map_err(|status| ChaosError::Setup(format!("the cluster did not elect a leader: {status}")))?;
        cluster.history.record(Event::Recovered {
            after_ms: waited.as_millis() as u64,
            leader,
            term,
        });
        for index in 1..=config.workers {
            cluster
                .processes
                .add(&worker_name(index), cluster.worker_spec(index))
                .map_err(io_error(format!("starting worker {index}")))?;
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let connected = cluster.connected_workers().await;
            if connected >= config.workers as usize {
                break;
            }
            if Instant::now() >= deadline {
                return Err(ChaosError::Setup(format!(
                    "only {connected} of {} workers connected within {STARTUP_TIMEOUT:?}",
                    config.workers
                )));
            }
            tokio::time::sleep(POLL).await;
        }
        (cluster.progress)(&format!(
            "leader is node {leader}; {} workers connected",
            config.workers
        ));
        Ok(cluster)
    }

    fn addresses(&self) -> String {
        let addresses: Vec<String> = self.addrs.values().map(ToString::to_string).collect();
        addresses.join(",")
    }

    fn note(&self, text: String) {
        self.history.record(Event::Note { text });
    }

    fn node_spec(&self, id: u64) -> ProcessSpec {
        let config = self.config;
        let members: Vec<String> = self
            .addrs
            .iter()
            .map(|(n, a)| format!("{n}={a}/{}", self.peer_addrs[n]))
            .collect();
        let overrides: Vec<String> = self
            .proxies
            .iter()
            .filter(|((from, _), _)| *from == id)
            .map(|((_, to), proxy)| format!("{to}={}", proxy.local_addr()))
            .collect();
        let args = vec![
            "node".to_string(),
            "--config".into(),
            config.dir.join(format!("{}.toml", node_name(id))).display().to_string(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            self.addrs[&id].to_string(),
            "--peer-listen".into(),
            self.peer_addrs[&id].to_string(),
            "--tls-dir".into(),
            self.certs_dir.display().to_string(),
            "--data-dir".into(),
            config.dir.join(node_name(id)).display().to_string(),
            "--cluster-id".into(),
            format!("chaos-{}", config.seed),
            "--initial-members".into(),
            members.join(","),
            "--peer-dial-overrides".into(),
            overrides.join(","),
            "--heartbeat-ms".into(),
            config.heartbeat_ms.to_string(),
            "--election-min-ms".into(),
            config.election_min_ms.to_string(),
            "--election-max-ms".into(),
            config.election_max_ms.to_string(),
        ];
        ProcessSpec {
            program: config.bin.clone(),
            args,
            log: config.dir.join(format!("{}.log", node_name(id))),
            env: vec![("RUST_LOG".into(), config.log_filter.clone())],
        }
    }

    /// The node's config file: what has no flag (snapshot policy), and what a flag needs
    /// anyway (the rest is given as flags, which override the file, so `ps` shows it).
    fn node_toml(&self, id: u64) -> String {
        let config = self.config;
        let quote = |text: String| serde_json::to_string(&text).expect("a string serializes");
        format!(
            "node_id = {id}\nlisten_addr = {}\ndata_dir = {}\n\n[raft]\nsnapshot_after_entries = {}\nsnapshot_min_log_bytes = 0\nentries_kept_after_snapshot = {}\n",
            quote(self.addrs[&id].to_string()),
            quote(config.dir.join(node_name(id)).display().to_string()),
            config.snapshot_after_entries.max(1),
            config.entries_kept_after_snapshot,
        )
    }

    fn worker_spec(&self, index: u32) -> ProcessSpec {
        let config = self.config;
        let args = vec![
            "worker".to_string(),
            "--cluster".into(),
            self.addresses(),
            "--id".into(),
            worker_name(index),
            "--tls-dir".into(),
            self.certs_dir.display().to_string(),
            "--slots".into(),
            config.worker_slots.to_string(),
            "--lease-ms".into(),
            config.worker_lease_ms.to_string(),
            "--drain-timeout-ms".into(),
            WORKER_DRAIN_MS.to_string(),
        ];
        ProcessSpec {
            program: config.bin.clone(),
            args,
            log: config.dir.join(format!("{}.log", worker_name(index))),
            env: vec![("RUST_LOG".into(), config.log_filter.clone())],
        }
    }

    /// One node's own view, asked directly.
    async fn node_status(&self, id: u64) -> Result<api::MemberStatus, String> {
        let addr = self.addrs[&id].to_string();
        let call = self.direct.call_node(&addr, |mut client| async move {
            client.node_status(api::NodeStatusRequest {}).await
        });
        match tokio::time::timeout(STATUS_TIMEOUT, call).await {
            Ok(Ok(response)) => response.status.ok_or_else(|| "empty status".to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {STATUS_TIMEOUT:?}")),
        }
    }

    async fn statuses(&self) -> BTreeMap<u64, Result<api::MemberStatus, String>> {
        let asks = self
            .addrs
            .keys()
            .map(|&id| async move { (id, self.node_status(id).await) });
        futures::future::join_all(asks).await.into_iter().collect()
    }

    /// Waits until every node answers and all agree on one leader that says it leads, twice
    /// in a row (one round of answers is gathered over a while, so one alone may be stale).
    async fn wait_healthy(&self, timeout: Duration) -> Result<(u64, u64, Duration), String> {
        let started = Instant::now();
        let mut previous = None;
        loop {
            let statuses = self.statuses().await;
            match healthy(&statuses) {
                Ok(agreed) if previous == Some(agreed) => return Ok((agreed.0, agreed.1, started.elapsed())),
                Ok(agreed) => previous = Some(agreed),
                Err(status) if started.elapsed() >= timeout => {
                    return Err(format!("after {:?}: {status}", started.elapsed()));
                }
                Err(_) => previous = None,
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn connected_workers(&self) -> usize {
        let client = self.direct.clone().with_overall_deadline(Duration::from_secs(2));
        let listed = client
            .call_workers(|mut workers| async move { workers.list_workers(api::ListWorkersRequest::default()).await })
            .await;
        listed.map_or(0, |r| r.workers.iter().filter(|w| w.connected).count())
    }

    fn set_links(&self, links: &[(u64, u64)], mode: LinkMode) {
        for link in links {
            self.proxies[link].set_mode(mode);
        }
    }

    /// Records a fault; after one that takes the leader away, starts watching for the next
    /// leader.
    fn record_fault(&mut self, seq: u32, kind: FaultKind, target: &str, detail: String, leader: u64) {
        (self.progress)(&format!("fault {seq}: {kind} {target} ({detail})"));
        let record = self.history.record(Event::Fault {
            seq,
            kind,
            target: target.to_string(),
            detail,
            leader,
        });
        let takes_leader = kind.targets_leader() || (kind == FaultKind::RestartNode && target == node_name(leader));
        if takes_leader && let Some((_, term)) = self.leader_before {
            self.election_watch = Some(AbortOnDrop(self.watch_election(seq, term, record.t_ms)));
        }
    }

    /// Polls every node (each on its own, so a stopped one does not hold the others up) until
    /// one says it leads in a term newer than `old_term`; records when.
    fn watch_election(&self, seq: u32, old_term: u64, fault_at_ms: u64) -> tokio::task::JoinHandle<()> {
        let history = self.history.clone();
        let asks: Vec<_> = self
            .addrs
            .values()
            .map(|addr| {
                let direct = self.direct.clone();
                let addr = addr.to_string();
                async move {
                    let deadline = Instant::now() + ELECTION_WATCH;
                    while Instant::now() < deadline {
                        let call = direct.call_node(&addr, |mut client| async move {
                            client.node_status(api::NodeStatusRequest {}).await
                        });
                        if let Ok(Ok(response)) = tokio::time::timeout(STATUS_TIMEOUT, call).await
                            && let Some(status) = response.status
                            && status.role == "leader"
                            && status.term > old_term
                        {
                            return Some((status.node_id, status.term, history::wall_ms()));
                        }
                        tokio::time::sleep(ELECTION_POLL).await;
                    }
                    None
                }
            })
            .collect();
        tokio::spawn(async move {
            use futures::StreamExt;
            let mut asks: futures::stream::FuturesUnordered<_> = asks.into_iter().collect();
            while let Some(found) = asks.next().await {
                if let Some((leader, term, at_ms)) = found {
                    history.record(Event::Elected {
                        seq,
                        leader,
                        term,
                        after_ms: at_ms.saturating_sub(fault_at_ms),
                    });
                    return;
                }
            }
        })
    }

    fn record_heal(&self, seq: u32, kind: FaultKind, target: &str, detail: String) {
        self.history.record(Event::Heal {
            seq,
            kind,
            target: target.to_string(),
            detail,
        });
    }

    /// Faults from the schedule until the run's duration is up, each followed by a heal and
    /// a wait for the cluster to agree on a leader again.
    async fn run_faults(&mut self) -> FaultPhase {
        let config = self.config;
        let timing = ScheduleTiming {
            election_max: Duration::from_millis(config.election_max_ms),
        };
        // Far more than any run reaches; the run stops at its deadline.
        let plan = schedule::plan(config.seed, &config.kinds, 100_000, timing);
        let deadline = Instant::now() + config.duration;
        let mut phase = FaultPhase::default();
        for (index, fault) in plan.iter().enumerate() {
            let seq = index as u32 + 1;
            if Instant::now() + fault.pause_before >= deadline {
                tokio::time::sleep_until(deadline).await;
                break;
            }
            tokio::time::sleep(fault.pause_before).await;
            self.election_watch = None;
            self.restart_crashed(&mut phase.crashes);
            phase.scheduled.push(fault.kind);
            match self.inject(seq, fault).await {
                Ok(()) => phase.fired.push(fault.kind),
                Err(why) => {
                    (self.progress)(&format!("fault {seq}: {} skipped: {why}", fault.kind));
                    self.history.record(Event::Skip {
                        seq,
                        kind: fault.kind,
                        why: why.clone(),
                    });
                    phase.skipped.push(format!("fault {seq} ({}): {why}", fault.kind));
                }
            }
            self.restart_crashed(&mut phase.crashes);
            let recovered = self.wait_healthy(config.recovery_timeout).await;
            // Once the nodes agree, the election (if any) is over: give the watcher a moment
            // to record it, then stop it (its status calls are not free for the nodes).
            if let Some(watch) = self.election_watch.take() {
                watch.finish_within(Duration::from_millis(300)).await;
            }
            match recovered {
                Ok((leader, term, waited)) => {
                    self.history.record(Event::Recovered {
                        after_ms: waited.as_millis() as u64,
                        leader,
                        term,
                    });
                }
                Err(status) => {
                    (self.progress)(&format!("fault {seq}: the cluster did not recover: {status}"));
                    self.history.record(Event::NotRecovered {
                        waited_ms: config.recovery_timeout.as_millis() as u64,
                        status: status.clone(),
                    });
                    phase
                        .recovery_failures
                        .push(format!("after fault {seq} ({}): {status}", fault.kind));
                }
            }
        }
        // An election after this is not the failover of the last fault.
        self.election_watch = None;
        phase
    }

    /// Injects one fault, holds it, and heals it. Err: could not be injected, and why.
    async fn inject(&mut self, seq: u32, fault: &PlannedFault) -> Result<(), String> {
        let mut statuses = self.statuses().await;
        if leader_of(&statuses).is_none() {
            // The cluster lost its leader since it last recovered, with no fault active (a
            // spontaneous election: CPU starvation, a slow disk...). Wait for it rather than
            // skip the fault; only a cluster that cannot elect a leader skips it.
            let lost = describe_statuses(&statuses);
            let (leader, term, waited) = self
                .wait_healthy(self.config.recovery_timeout)
                .await
                .map_err(|status| format!("no leader ({lost}), and none elected: {status}"))?;
            self.note(format!(
                "fault {seq}: no leader when due ({lost}); node {leader} led term {term} after {} ms",
                waited.as_millis()
            ));
            statuses = self.statuses().await;
        }
        let (leader, term) =
            leader_of(&statuses).ok_or_else(|| format!("no leader: {}", describe_statuses(&statuses)))?;
        self.leader_before = Some((leader, term));
        let nodes: Vec<u64> = self.addrs.keys().copied().collect();
        let followers: Vec<u64> = nodes.iter().copied().filter(|&n| n != leader).collect();
        let pick = |n: usize| (fault.pick % n as u64) as usize;
        let kind = fault.kind;
        match kind {
            FaultKind::CrashRestartLeader => {
                let name = node_name(leader);
                let stress = disk::DiskStress::start(&self.config.dir).map_err(|e| format!("disk stress: {e}"))?;
                tokio::time::sleep(fault.hold).await;
                let exit = self.processes.kill(&name).await;
                let status = exit.map_or("did not exit".to_string(), |e| e.status);
                self.record_fault(
                    seq,
                    kind,
                    &name,
                    format!(
                        "SIGKILL after {} ms of disk stress ({} fsyncs): {status}; started again at once",
                        fault.hold.as_millis(),
                        stress.fsyncs()
                    ),
                    leader,
                );
                let started = self.processes.start(&name);
                // Joining the writer waits for its last fsync: not on a runtime thread.
                let _ = tokio::task::spawn_blocking(move || drop(stress)).await;
                started.map_err(|e| format!("restarting {name}: {e}"))?;
                self.record_heal(seq, kind, &name, "disk stress stopped".into());
            }
            FaultKind::KillLeader | FaultKind::KillFollower => {
                let target = if kind == FaultKind::KillLeader {
                    leader
                } else {
                    followers[pick(followers.len())]
                };
                let name = node_name(target);
                let exit = self.processes.kill(&name).await;
                let status = exit.map_or("did not exit".to_string(), |e| e.status);
                self.record_fault(seq, kind, &name, format!("SIGKILL: {status}"), leader);
                tokio::time::sleep(fault.hold).await;
                self.processes
                    .start(&name)
                    .map_err(|e| format!("restarting {name}: {e}"))?;
                self.record_heal(seq, kind, &name, "started again on its data dir".into());
            }
            FaultKind::PauseLeader => {
                let name = node_name(leader);
                if !self.processes.signal(&name, libc::SIGSTOP) {
                    return Err(format!("{name} is not running"));
                }
                self.paused.insert(leader);
                self.record_fault(
                    seq,
                    kind,
                    &name,
                    format!("SIGSTOP for {} ms", fault.hold.as_millis()),
                    leader,
                );
                tokio::time::sleep(fault.hold).await;
                self.processes.signal(&name, libc::SIGCONT);
                self.paused.remove(&leader);
                self.record_heal(seq, kind, &name, "SIGCONT".into());
            }
            FaultKind::IsolateLeader | FaultKind::OneWayLeader => {
                let mut links: Vec<(u64, u64)> = followers.iter().map(|&f| (leader, f)).collect();
                if kind == FaultKind::IsolateLeader {
                    links.extend(followers.iter().map(|&f| (f, leader)));
                }
                self.set_links(&links, LinkMode::Blackhole);
                let described: Vec<String> = links.iter().map(|(a, b)| format!("{a}->{b}")).collect();
                let name = node_name(leader);
                self.record_fault(
                    seq,
                    kind,
                    &name,
                    format!("blackhole {} for {} ms", described.join(" "), fault.hold.as_millis()),
                    leader,
                );
                tokio::time::sleep(fault.hold).await;
                self.set_links(&links, LinkMode::Pass);
                self.record_heal(seq, kind, &name, "links pass again".into());
            }
            FaultKind::RestartNode => {
                let target = nodes[pick(nodes.len())];
                let name = node_name(target);
                let role = if target == leader { "the leader" } else { "a follower" };
                self.record_fault(seq, kind, &name, format!("SIGTERM ({role})"), leader);
                let exit = self.processes.terminate(&name, NODE_STOP_GRACE).await;
                let detail = match &exit {
                    Some(exit) if exit.forced => format!("did not exit within {NODE_STOP_GRACE:?}: killed"),
                    Some(exit) => format!("exited: {}", exit.status),
                    None => "was not running".to_string(),
                };
                if exit.as_ref().is_some_and(|e| e.forced) {
                    self.note(format!("fault {seq}: {name} {detail}"));
                }
                tokio::time::sleep(fault.hold).await;
                self.processes
                    .start(&name)
                    .map_err(|e| format!("restarting {name}: {e}"))?;
                self.record_heal(seq, kind, &name, format!("{detail}; started again"));
            }
            FaultKind::KillWorker => {
                let index = pick(self.config.workers.max(1) as usize) as u32 + 1;
                let name = worker_name(index);
                let exit = self.processes.kill(&name).await;
                let status = exit.map_or("did not exit".to_string(), |e| e.status);
                self.record_fault(seq, kind, &name, format!("SIGKILL: {status}"), leader);
                tokio::time::sleep(fault.hold).await;
                self.processes
                    .start(&name)
                    .map_err(|e| format!("restarting {name}: {e}"))?;
                self.record_heal(seq, kind, &name, "a new process (new session)".into());
            }
            FaultKind::SlowLinks => {
                let delay = Duration::from_millis(5 + fault.pick % 56);
                let links: Vec<(u64, u64)> = self.proxies.keys().copied().collect();
                self.set_links(&links, LinkMode::Delay(delay));
                self.record_fault(
                    seq,
                    kind,
                    "all links",
                    format!("+{} ms each way for {} ms", delay.as_millis(), fault.hold.as_millis()),
                    leader,
                );
                tokio::time::sleep(fault.hold).await;
                self.set_links(&links, LinkMode::Pass);
                self.record_heal(seq, kind, "all links", "no delay".into());
            }
            FaultKind::ResetLinks => {
                let open: usize = self.proxies.values().map(LinkProxy::open_connections).sum();
                for proxy in self.proxies.values() {
                    proxy.reset();
                }
                self.record_fault(seq, kind, "all links", format!("reset {open} open connections"), leader);
                tokio::time::sleep(fault.hold).await;
                self.record_heal(seq, kind, "all links", "nothing to undo".into());
            }
        }
        Ok(())
    }

    /// Records processes that exited on their own, and starts them again.
    fn restart_crashed(&self, crashes: &mut Vec<String>) {
        for (name, status) in self.processes.exited_unexpectedly() {
            (self.progress)(&format!("{name} exited on its own ({status}); starting it again"));
            self.history.record(Event::Crash {
                process: name.clone(),
                status: status.clone(),
            });
            crashes.push(format!("{name}: {status}"));
            if self.processes.start(&name).is_ok() {
                self.history.record(Event::Restarted { process: name });
            }
        }
    }

    /// Every link passes, every node runs (none stopped), every process is up.
    async fn heal_all(&mut self) {
        let links: Vec<(u64, u64)> = self.proxies.keys().copied().collect();
        self.set_links(&links, LinkMode::Pass);
        for id in std::mem::take(&mut self.paused) {
            self.processes.signal(&node_name(id), libc::SIGCONT);
        }
        for name in self.processes.stopped() {
            if self.processes.start(&name).is_ok() {
                self.note(format!("{name} started at the final heal"));
            }
        }
        self.note("healed everything".into());
    }

    /// Submits one more task after healing: the cluster must take writes again.
    async fn probe_write(&self) -> (bool, String) {
        let client = self.direct.clone().with_overall_deadline(Duration::from_secs(30));
        let spec = load::plain_spec(PROBE_REQUEST_ID);
        self.history.record(Event::Invoke {
            client: 0,
            op: 0,
            request_id: PROBE_REQUEST_ID.to_string(),
            command: check::output_marker_command().to_string(),
        });
        let started = Instant::now();
        match client.submit_task(spec).await {
            Ok(response) => {
                let task_id = response.task.map_or(0, |t| t.id);
                let latency_ms = started.elapsed().as_millis() as u64;
                self.history.record(Event::Ok {
                    client: 0,
                    op: 0,
                    request_id: PROBE_REQUEST_ID.to_string(),
                    task_id,
                    created: response.created,
                    latency_ms,
                });
                (true, format!("probe task {task_id} accepted in {latency_ms} ms"))
            }
            Err(e) => {
                self.history.record(Event::Unknown {
                    client: 0,
                    op: 0,
                    request_id: PROBE_REQUEST_ID.to_string(),
                    attempt: 1,
                    error: e.to_string(),
                });
                (false, format!("probe write failed: {e}"))
            }
        }
    }

    /// Every task, read linearizably, page by page.
    async fn list_all_tasks(&self) -> Result<Vec<TaskRecord>, ClientError> {
        let client = self.direct.clone().with_overall_deadline(Duration::from_secs(20));
        let mut tasks = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = client
                .list_tasks(api::ListTasksRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                    consistency: api::Consistency::Linearizable as i32,
                    oldest_first: true,
                    ..api::ListTasksRequest::default()
                })
                .await?;
            tasks.extend(page.tasks.iter().map(TaskRecord::from_api));
            if page.next_page_token.is_empty() {
                return Ok(tasks);
            }
            page_token = page.next_page_token;
        }
    }

    /// Every task as one node has applied them (a stale read of that node alone).
    async fn list_tasks_on(&self, id: u64) -> Result<Vec<TaskRecord>, ClientError> {
        let addr = self.addrs[&id].to_string();
        let mut tasks = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = api::ListTasksRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                consistency: api::Consistency::Stale as i32,
                oldest_first: true,
                ..api::ListTasksRequest::default()
            };
            let page = self
                .direct
                .call_node(&addr, |mut client| async move { client.list_tasks(request).await })
                .await?;
            tasks.extend(page.tasks.iter().map(TaskRecord::from_api));
            if page.next_page_token.is_empty() {
                return Ok(tasks);
            }
            page_token = page.next_page_token;
        }
    }

    /// The checker run against each replica's own state: when replicas differ, this says
    /// what a client would see if that node led.
    async fn check_each_replica(&self, records: &[history::Record]) -> Vec<String> {
        let mut lines = Vec::new();
        for &id in self.addrs.keys() {
            match self.list_tasks_on(id).await {
                Ok(tasks) => {
                    // For a diff between replicas: `diff tasks-node1.jsonl tasks-node2.jsonl`.
                    let path = self.config.dir.join(format!("tasks-{}.jsonl", node_name(id)));
                    let jsonl: String = tasks
                        .iter()
                        .map(|t| serde_json::to_string(t).expect("a task record serializes") + "\n")
                        .collect();
                    if let Err(e) = std::fs::write(&path, jsonl) {
                        self.note(format!("writing {}: {e}", path.display()));
                    }
                    let report = check::check(records, &tasks, &[]);
                    let mut line = format!(
                        "node {id}: {} tasks; lost {}, unexpected {}, duplicated {}, stale accepted {}, stuck {}",
                        tasks.len(),
                        report.lost.len(),
                        report.unexpected.len(),
                        report.duplicated.len(),
                        report.stale_accepted.len(),
                        report.stuck.len()
                    );
                    let first = [
                        &report.lost,
                        &report.duplicated,
                        &report.unexpected,
                        &report.stale_accepted,
                    ]
                    .into_iter()
                    .flatten()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>();
                    if !first.is_empty() {
                        line.push_str(&format!(" (e.g. {})", first.join("; ")));
                    }
                    lines.push(line);
                }
                Err(e) => lines.push(format!("node {id}: could not list its tasks: {e}")),
            }
        }
        lines
    }

    /// Waits until every task is terminal, as long as tasks keep finishing: it gives up after
    /// `stall` without any task finishing, or after ten times that in all. Returns the last
    /// read, and whether it drained.
    async fn drain(&self, stall: Duration) -> (Vec<TaskRecord>, bool) {
        let started = Instant::now();
        let mut last_progress = Instant::now();
        let mut finished = 0;
        let mut last = Vec::new();
        loop {
            match self.list_all_tasks().await {
                Ok(tasks) => {
                    let terminal = tasks.iter().filter(|t| t.is_terminal()).count();
                    let done = terminal == tasks.len();
                    if terminal > finished {
                        finished = terminal;
                        last_progress = Instant::now();
                    }
                    last = tasks;
                    if done {
                        return (last, true);
                    }
                }
                Err(e) => self.note(format!("drain: listing tasks failed: {e}")),
            }
            if last_progress.elapsed() >= stall || started.elapsed() >= stall * 10 {
                let left = last.iter().filter(|t| !t.is_terminal()).count();
                (self.progress)(&format!(
                    "drain: {left} tasks still not terminal after {:?} ({:?} without progress)",
                    started.elapsed(),
                    last_progress.elapsed()
                ));
                return (last, false);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Polls every node until all report their state digest at the same applied index.
    async fn compare_replicas(&self, timeout: Duration) -> ReplicaReport {
        let started = Instant::now();
        loop {
            let statuses = self.statuses().await;
            let views: Vec<(u64, u64, u64)> = statuses
                .iter()
                .filter_map(|(id, s)| s.as_ref().ok().map(|s| (*id, s.digest_applied_index, s.state_digest)))
                .collect();
            let detail = || {
                statuses
                    .iter()
                    .map(|(id, s)| match s {
                        Ok(s) => format!(
                            "node {id}: digest {:016x} at index {}",
                            s.state_digest, s.digest_applied_index
                        ),
                        Err(e) => format!("node {id}: {e}"),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            if views.len() == statuses.len() {
                let indexes: BTreeSet<u64> = views.iter().map(|v| v.1).collect();
                if indexes.len() == 1 {
                    let digests: BTreeSet<u64> = views.iter().map(|v| v.2).collect();
                    let index = views[0].1;
                    if digests.len() == 1 {
                        return ReplicaReport {
                            identical: true,
                            applied_index: index,
                            digest: format!("{:016x}", views[0].2),
                            ..ReplicaReport::default()
                        };
                    }
                    let detail = format!("different states at the same applied index {index}: {}", detail());
                    self.note(format!("replicas diverged: {detail}"));
                    return ReplicaReport {
                        identical: false,
                        applied_index: index,
                        detail,
                        ..ReplicaReport::default()
                    };
                }
            }
            if started.elapsed() >= timeout {
                return ReplicaReport {
                    identical: false,
                    detail: format!("never at the same applied index within {timeout:?}: {}", detail()),
                    ..ReplicaReport::default()
                };
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops the workers, then the nodes, each with SIGTERM first. Returns notes on anything
    /// that had to be killed.
    async fn stop_all(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        for id in std::mem::take(&mut self.paused) {
            self.processes.signal(&node_name(id), libc::SIGCONT);
        }
        for index in 1..=self.config.workers {
            let name = worker_name(index);
            if let Some(exit) = self.processes.terminate(&name, WORKER_STOP_GRACE).await
                && exit.forced
            {
                notes.push(format!("{name} did not stop within {WORKER_STOP_GRACE:?} of SIGTERM"));
            }
        }
        for id in 1..=NODES {
            let name = node_name(id);
            if let Some(exit) = self.processes.terminate(&name, NODE_STOP_GRACE).await
                && exit.forced
            {
                notes.push(format!("{name} did not stop within {NODE_STOP_GRACE:?} of SIGTERM"));
            }
        }
        notes
    }
}

/// The node that says it leads, with the highest term.
fn leader_of(statuses: &BTreeMap<u64, Result<api::MemberStatus, String>>) -> Option<(u64, u64)> {
    statuses
        .iter()
        .filter_map(|(id, s)| s.as_ref().ok().map(|s| (*id, s)))
        .filter(|(_, s)| s.role == "leader")
        .max_by_key(|(_, s)| s.term)
        .map(|(id, s)| (id, s.term))
}

/// Ok when every node answers, one leads, and all name it as their leader.
fn healthy(statuses: &BTreeMap<u64, Result<api::MemberStatus, String>>) -> Result<(u64, u64), String> {
    let all_answer = statuses.values().all(Result::is_ok);
    let leader = leader_of(statuses);
    match leader {
        Some((leader, term))
            if all_answer
                && statuses
                    .values()
                    .flatten()
                    .all(|s| s.leader_id == leader && s.term == term) =>
        {
            Ok((leader, term))
        }
        _ => Err(describe_statuses(statuses)),
    }
}

fn describe_statuses(statuses: &BTreeMap<u64, Result<api::MemberStatus, String>>) -> String {
    statuses
        .iter()
        .map(|(id, s)| match s {
            Ok(s) => format!("node {id}: {} term {} leader {}", s.role, s.term, s.leader_id),
            Err(e) => format!("node {id}: {e}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
