//! [`NodeMetrics`]: one node's counters and histograms, through the `metrics` facade into a
//! Prometheus recorder of its own.
//!
//! Why not the global recorder: tests run three nodes in one process, and each must report
//! its own figures. Why the handles are registered once, here: a metric then costs an
//! atomic add where it is recorded, with no registry lookup on the hot path.
//!
//! Names follow etcd and Temporal: base units in the name (`_seconds`, `_bytes`), `_total`
//! on counters, labels of bounded cardinality only (method, code, queue; never a task id).
//! Gauges that mirror the state are set at scrape time (`http/scrape.rs`).

use raftsched_store::StoreEvent;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use metrics::Counter;
use metrics::Histogram;
use metrics::Key;
use metrics::KeyName;
use metrics::Label;
use metrics::Metadata;
use metrics::Recorder;
use metrics::SharedString;
use metrics::Unit;
use metrics_exporter_prometheus::Matcher;
use metrics_exporter_prometheus::PrometheusBuilder;
use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::PrometheusRecorder;
use metrics_util::MetricKindMask;

/// Latency buckets in seconds, 0.5 ms to 60 s: real-time dispatch is judged in
/// milliseconds, a task's whole run in seconds or minutes.
const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A gauge not set for this long leaves the output: the per-queue gauges are set at each
/// scrape, so a queue that no longer has tasks stops being reported a few scrapes later
/// instead of staying at its last value for ever (and its series costs nothing after).
pub const GAUGE_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The methods the gRPC request counters name; anything else (a path no service has) is
/// counted as `unknown`, so a client sending made-up paths cannot grow the series.
pub const MAX_METHOD_NAME_BYTES: usize = 64;

const METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// One node's metrics. Cheap to clone; clones share the recorder.
#[derive(Clone)]
pub struct NodeMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    proposals_committed: Counter,
    proposals_failed: Counter,
    /// Set into `raftsched_proposals_pending` at scrape time: a gauge handle left unset for
    /// `GAUGE_IDLE_TIMEOUT` leaves the recorder, and one idle node has no proposals.
    proposals_pending: AtomicU64,
    commit_seconds: Histogram,
    dispatch_round_seconds: Histogram,
    submit_to_start_seconds: Histogram,
    submit_to_finish_seconds: Histogram,
    started_at_submit: Counter,
    leader_changes: Counter,
    quorum_losses: Counter,
    /// What `quorum_losses` counted, for NodeStatus (a counter handle cannot be read).
    quorum_losses_seen: AtomicU64,
    log_fsync_seconds: Histogram,
    snapshot_build_seconds: Histogram,
    snapshot_install_seconds: Histogram,
    /// Set into `raftsched_snapshot_image_bytes` at scrape time, like `proposals_pending`.
    last_snapshot_bytes: AtomicU64,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeMetrics")
    }
}

impl Default for NodeMetrics {
    fn default() -> NodeMetrics {
        NodeMetrics::new()
    }
}

impl NodeMetrics {
    pub fn new() -> NodeMetrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS_SECONDS)
            .expect("the bucket list is not empty")
            .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE_TIMEOUT))
            .build_recorder();
        let handle = recorder.handle();
        let counter = |name: &'static str, help: &'static str| {
            recorder.describe_counter(KeyName::from_const_str(name), None, SharedString::const_str(help));
            recorder.register_counter(&Key::from_static_name(name), &METADATA)
        };
        let histogram = |name: &'static str, help: &'static str| {
            recorder.describe_histogram(
                KeyName::from_const_str(name),
                Some(Unit::Seconds),
                SharedString::const_str(help),
            );
            recorder.register_histogram(&Key::from_static_name(name), &METADATA)
        };
        let inner = Inner {
            proposals_committed: counter(
                "raftsched_proposals_committed_total",
                "Writes this node proposed as leader that committed and applied.",
            ),
            proposals_failed: counter(
                "raftsched_proposals_failed_total",
                "Writes this node proposed that failed (leadership lost, outcome unknown, stopped).",
            ),
            proposals_pending: AtomicU64::new(0),
            commit_seconds: histogram(
                "raftsched_raft_commit_duration_seconds",
                "From proposing a log entry to its apply on the leader (append, fsync, replication to a majority).",
            ),
            dispatch_round_seconds: histogram(
                "raftsched_dispatch_round_duration_seconds",
                "One round of the leader's dispatch loop: decide, commit, push to workers.",
            ),
            submit_to_start_seconds: histogram(
                "raftsched_task_submit_to_start_seconds",
                "From a task's acceptance to the commit of its first attempt's assignment.",
            ),
            submit_to_finish_seconds: histogram(
                "raftsched_task_submit_to_finish_seconds",
                "From a task's acceptance to the commit of the report that finished it.",
            ),
            started_at_submit: counter(
                "raftsched_tasks_started_at_submit_total",
                "Tasks whose first attempt was assigned in their submission's own log entry (one commit from submit to start).",
            ),
            leader_changes: counter(
                "raftsched_leader_changes_seen_total",
                "Times this node learned of a new leader (the first one included).",
            ),
            quorum_losses: counter(
                "raftsched_leader_quorum_losses_total",
                "Times this node, leading, went longer than its lease without a majority's acknowledgement.",
            ),
            quorum_losses_seen: AtomicU64::new(0),
            log_fsync_seconds: histogram(
                "raftsched_disk_log_fsync_duration_seconds",
                "One fsync of the log (making every append before it durable): what a commit waits for on each node.",
            ),
            snapshot_build_seconds: histogram(
                "raftsched_snapshot_build_duration_seconds",
                "Encoding and saving one snapshot of the state (it runs beside apply, off the async workers).",
            ),
            snapshot_install_seconds: histogram(
                "raftsched_snapshot_install_duration_seconds",
                "Saving and loading one snapshot received from the leader.",
            ),
            last_snapshot_bytes: AtomicU64::new(0),
            recorder,
            handle,
        };
        inner.recorder.describe_counter(
            KeyName::from_const_str("raftsched_grpc_requests_total"),
            None,
            SharedString::const_str("Client API calls this node answered, by method and status code."),
        );
        inner.recorder.describe_histogram(
            KeyName::from_const_str("raftsched_grpc_request_duration_seconds"),
            Some(Unit::Seconds),
            SharedString::const_str("From a client API call's arrival to its answer's headers, by method."),
        );
        NodeMetrics { inner: Arc::new(inner) }
    }

    /// A proposal is queued: pending until [`Self::proposal_done`].
    pub fn proposal_queued(&self) {
        self.inner.proposals_pending.fetch_add(1, Ordering::Relaxed);
    }

    /// Proposals queued and not yet answered.
    pub fn proposals_pending(&self) -> u64 {
        self.inner.proposals_pending.load(Ordering::Relaxed)
    }

    /// `count` proposals were answered, committed or not.
    pub fn proposal_done(&self, count: usize, committed: bool) {
        // Saturating: a miscount must not wrap to 2^64 on the dashboard.
        let _ = self
            .inner
            .proposals_pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(count as u64))
            });
        let counter = if committed {
            &self.inner.proposals_committed
        } else {
            &self.inner.proposals_failed
        };
        counter.increment(count as u64);
    }

    pub fn entry_committed(&self, took: Duration) {
        self.inner.commit_seconds.record(took.as_secs_f64());
    }

    pub fn dispatch_round(&self, took: Duration) {
        self.inner.dispatch_round_seconds.record(took.as_secs_f64());
    }

    /// A task's first attempt was committed `waited_ms` after the task was accepted.
    pub fn task_started(&self, waited_ms: u64) {
        self.inner.submit_to_start_seconds.record(waited_ms as f64 / 1000.0);
    }

    /// Tasks started in their submission's own entry (`Command::SubmitAndAssign`).
    pub fn tasks_started_at_submit(&self, count: u64) {
        self.inner.started_at_submit.increment(count);
    }

    /// A task finished `took_ms` after it was accepted.
    pub fn task_finished(&self, took_ms: u64) {
        self.inner.submit_to_finish_seconds.record(took_ms as f64 / 1000.0);
    }

    /// What the store reports: fsyncs of the log, snapshots built and installed.
    pub fn store_event(&self, event: StoreEvent) {
        let (histogram, took, image_bytes) = match event {
            StoreEvent::LogFsync { took } => (&self.inner.log_fsync_seconds, took, None),
            StoreEvent::SnapshotBuilt { took, image_bytes } => {
                (&self.inner.snapshot_build_seconds, took, Some(image_bytes))
            }
            StoreEvent::SnapshotInstalled { took, image_bytes } => {
                (&self.inner.snapshot_install_seconds, took, Some(image_bytes))
            }
        };
        histogram.record(took.as_secs_f64());
        if let Some(bytes) = image_bytes {
            self.inner.last_snapshot_bytes.store(bytes, Ordering::Relaxed);
        }
    }

    pub fn last_snapshot_bytes(&self) -> u64 {
        self.inner.last_snapshot_bytes.load(Ordering::Relaxed)
    }

    pub fn leader_changed(&self) {
        self.inner.leader_changes.increment(1);
    }

    /// This node leads but no majority acknowledged it within its lease (a partition, or
    /// followers too slow to answer): it stops dispatching until one does.
    pub fn quorum_lost(&self) {
        self.inner.quorum_losses.increment(1);
        self.inner.quorum_losses_seen.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times [`Self::quorum_lost`] was counted since the node started.
    pub fn quorum_losses(&self) -> u64 {
        self.inner.quorum_losses_seen.load(Ordering::Relaxed)
    }

    /// One gRPC call answered with `code`, after `took`. `method` is the last part of the
    /// request path; only names of up to [`MAX_METHOD_NAME_BYTES`] of ASCII letters are kept,
    /// and a call the server did not know (`Unimplemented`) counts as method `unknown`.
    /// Codes are named as grpc-go's Prometheus middleware names them (`OK`, `NotFound`).
    pub fn grpc_request(&self, method: &str, code: String, took: Duration) {
        let known = code != "Unimplemented"
            && !method.is_empty()
            && method.len() <= MAX_METHOD_NAME_BYTES
            && method.bytes().all(|b| b.is_ascii_alphabetic());
        let method = if known {
            method.to_string()
        } else {
            "unknown".to_string()
        };
        let labels = vec![Label::new("method", method.clone()), Label::new("code", code)];
        self.inner
            .recorder
            .register_counter(&Key::from_parts("raftsched_grpc_requests_total", labels), &METADATA)
            .increment(1);
        self.inner
            .recorder
            .register_histogram(
                &Key::from_parts(
                    "raftsched_grpc_request_duration_seconds",
                    vec![Label::new("method", method)],
                ),
                &METADATA,
            )
            .record(took.as_secs_f64());
    }

    /// Sets a gauge (labels of bounded cardinality only). Used at scrape time.
    pub fn set_gauge(&self, name: &'static str, labels: Vec<Label>, value: f64) {
        self.inner
            .recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
            .set(value);
    }

    /// Describes a gauge once, for its HELP line.
    pub fn describe_gauge(&self, name: &'static str, unit: Option<Unit>, help: &'static str) {
        self.inner
            .recorder
            .describe_gauge(KeyName::from_const_str(name), unit, SharedString::const_str(help));
    }

    /// Folds recorded histogram samples into their buckets. Run every few seconds: samples
    /// wait in memory until then, so without it a node nobody scrapes would grow.
    pub fn upkeep(&self) {
        self.inner.handle.run_upkeep();
    }

    /// Everything recorded, in Prometheus text format.
    pub fn render(&self) -> String {
        self.inner.handle.render()
    }
}
