//! One `/metrics` scrape: the gauges that mirror the node's state and Raft, set from what
//! they mirror now, then everything the node's recorder holds, rendered.
//!
//! The cost of a scrape is O(queues + workers + members), never O(tasks): counts per queue
//! and state are kept by the state itself (`SchedulerState::queue_status_counts`), and the
//! oldest ready task of a queue is the first of its ready index.

use std::collections::BTreeSet;
use std::sync::PoisonError;

use metrics::Label;
use metrics::Unit;
use openraft::ServerState;

use super::HttpState;
use crate::app::now_ms;
use crate::observe::NodeMetrics;
use crate::quota::Health;
use raftsched_core::state::SchedulerState;
use raftsched_core::state::TaskStatus;

/// Queues reported per scrape, by name: 200. Each costs one series per state (7) plus two,
/// so at most 1,800 series; queues past the first 200 are counted in
/// `raftsched_metrics_queues_omitted` instead. A cluster with more queues than that wants a
/// query of its own, not a scrape every 15 s.
pub const MAX_REPORTED_QUEUES: usize = 200;

/// Gauges of the node's Raft: (name, help).
const RAFT_GAUGES: [(&str, &str); 8] = [
    ("raftsched_has_leader", "1 when this node knows a leader, 0 otherwise."),
    ("raftsched_is_leader", "1 when this node is the leader, 0 otherwise."),
    ("raftsched_ready", "1 when /readyz answers 200."),
    ("raftsched_raft_term", "The node's current Raft term."),
    (
        "raftsched_raft_last_log_index",
        "The index of the last entry in the node's log.",
    ),
    (
        "raftsched_raft_commit_index",
        "The highest index the node knows to be committed.",
    ),
    (
        "raftsched_raft_applied_index",
        "The index of the last entry the node applied.",
    ),
    (
        "raftsched_raft_snapshot_index",
        "The last index the node's latest snapshot covers (0: none yet).",
    ),
];

/// What a scrape reads, taken under the state's read lock and released before the
/// recorder is touched.
struct Figures {
    raft: [f64; RAFT_GAUGES.len()],
    /// On a leader: each follower's entries not yet replicated to it.
    follower_lag: Vec<(u64, u64)>,
    queues: Vec<QueueFigures>,
    queues_omitted: usize,
    workers: usize,
    free_slots: u64,
    live_tasks: u64,
    state_bytes: u64,
    /// This node's latest high-water sample and alarms (`quota::Guard`).
    health: Health,
}

pub(super) struct QueueFigures {
    pub(super) name: String,
    pub(super) by_state: [u64; TaskStatus::ALL.len()],
    pub(super) ready: usize,
    /// How long the next task dispatch would start has been ready, in seconds.
    pub(super) backlog_age_seconds: f64,
}

/// What the last scrape reported per queue and per peer: a series no longer there is set to
/// 0 once, then leaves the output after `observe::GAUGE_IDLE_TIMEOUT`.
#[derive(Debug, Default)]
pub(super) struct Reported {
    queues: BTreeSet<String>,
    peers: BTreeSet<u64>,
}

/// A yes/no gauge's value.
fn flag(yes: bool) -> f64 {
    if yes { 1.0 } else { 0.0 }
}

/// Sets the mirrored gauges and renders every metric of the node. One scrape at a time,
/// reading and setting under the lock, so a slower scrape never sets older figures over a
/// newer one's.
pub(super) fn render(state: &HttpState) -> String {
    let mut reported = state.scrape_lock.lock().unwrap_or_else(PoisonError::into_inner);
    Figures::read(state).set(&state.metrics, &mut reported);
    state.metrics.render()
}

impl Figures {
    fn read(state: &HttpState) -> Figures {
        let raft = state.app.metrics();
        let applied = raft.last_applied.as_ref().map_or(0, |id| id.index);
        let committed = raft
            .cluster_committed
            .as_ref()
            .or(raft.local_committed.as_ref())
            .map_or(applied, |id| id.index);
        let last_log = raft.last_log_index.unwrap_or(0);
        let follower_lag = raft
            .replication
            .iter()
            .flatten()
            .filter(|(id, _)| **id != raft.id)
            .map(|(id, matched)| (*id, last_log.saturating_sub(matched.as_ref().map_or(0, |m| m.index))))
            .collect();
        let raft_figures = [
            flag(raft.current_leader.is_some()),
            flag(raft.state == ServerState::Leader),
            flag(state.is_ready()),
            raft.current_term as f64,
            last_log as f64,
            committed as f64,
            applied as f64,
            raft.snapshot.as_ref().map_or(0, |id| id.index) as f64,
        ];
        let applied_state = state.app.state().read();
        let scheduler = &applied_state.scheduler;
        let (queues, queues_omitted) = queue_figures(scheduler, now_ms());
        let workers = scheduler.workers().count();
        let free_slots = scheduler
            .workers()
            .map(|w| u64::from(w.slots).saturating_sub(scheduler.running_count(&w.id) as u64))
            .sum();
        Figures {
            raft: raft_figures,
            follower_lag,
            queues,
            queues_omitted,
            workers,
            free_slots,
            live_tasks: scheduler.live_tasks(),
            state_bytes: scheduler.stored_bytes(),
            health: state.app.guard().health(),
        }
    }

    fn set(self, metrics: &NodeMetrics, reported: &mut Reported) {
        for ((name, help), value) in RAFT_GAUGES.into_iter().zip(self.raft) {
            metrics.describe_gauge(name, None, help);
            metrics.set_gauge(name, Vec::new(), value);
        }
        metrics.describe_gauge(
            "raftsched_raft_follower_lag_entries",
            None,
            "On the leader: entries of its log a follower has not acknowledged.",
        );
        // A node that stopped leading, or a peer removed, reports 0 for it once.
        let peers: BTreeSet<u64> = self.follower_lag.iter().map(|(peer, _)| *peer).collect();
        let gone = reported.peers.difference(&peers).map(|peer| (*peer, 0));
        for (peer, lag) in self.follower_lag.iter().copied().chain(gone) {
            let labels = vec![Label::new("peer", peer.to_string())];
            metrics.set_gauge("raftsched_raft_follower_lag_entries", labels, lag as f64);
        }
        reported.peers = peers;
        set_queue_gauges(metrics, &self.queues, self.queues_omitted > 0, &mut reported.queues);
        let node_gauges = [
            (
                "raftsched_metrics_queues_omitted",
                None,
                "Queues past the first 200 by name, not reported per queue.",
                self.queues_omitted as f64,
            ),
            ("raftsched_workers", None, "Registered workers.", self.workers as f64),
            (
                "raftsched_worker_free_slots",
                None,
                "Slots of registered workers not running a task.",
                self.free_slots as f64,
            ),
            (
                "raftsched_live_tasks",
                None,
                "Tasks not finished (pending, waiting, running): what the live-tasks cap counts.",
                self.live_tasks as f64,
            ),
            (
                "raftsched_state_bytes",
                Some(Unit::Bytes),
                "Estimated bytes of the tasks held: what the state-bytes cap counts.",
                self.state_bytes as f64,
            ),
            (
                "raftsched_proposals_pending",
                None,
                "Writes waiting for their log entry or its commit on this node.",
                metrics.proposals_pending() as f64,
            ),
            (
                "raftsched_snapshot_image_bytes",
                Some(Unit::Bytes),
                "Size of the last snapshot this node built or installed, before compression (0: none since it started).",
                metrics.last_snapshot_bytes() as f64,
            ),
        ];
        for (name, unit, help, value) in node_gauges {
            metrics.describe_gauge(name, unit, help);
            metrics.set_gauge(name, Vec::new(), value);
        }
        self.set_health(metrics);
    }

    fn set_health(&self, metrics: &NodeMetrics) {
        let sampled = [
            (
                "raftsched_node_rss_bytes",
                "Resident memory of this node (0 where it cannot be read).",
                self.health.rss_bytes,
            ),
            (
                "raftsched_data_dir_bytes",
                "Bytes in this node's data dir, as the high-water sampler last measured.",
                self.health.data_dir_bytes,
            ),
        ];
        for (name, help, value) in sampled {
            metrics.describe_gauge(name, Some(Unit::Bytes), help);
            metrics.set_gauge(name, Vec::new(), value as f64);
        }
        metrics.describe_gauge(
            "raftsched_alarm",
            None,
            "1 while this node's high-water alarm of that kind is up (the cluster then refuses new work).",
        );
        for (kind, up) in [
            ("memory", self.health.memory_alarm()),
            ("data_dir", self.health.data_dir_alarm()),
        ] {
            metrics.set_gauge("raftsched_alarm", vec![Label::new("kind", kind)], flag(up));
        }
    }
}

/// The first [`MAX_REPORTED_QUEUES`] queues by name that hold tasks, and how many more do.
pub(super) fn queue_figures(scheduler: &SchedulerState, now_ms: u64) -> (Vec<QueueFigures>, usize) {
    let mut queues: Vec<QueueFigures> = Vec::new();
    let mut omitted = 0;
    let mut last_omitted = None;
    for (queue, status, count) in scheduler.queue_status_counts() {
        if queues.last().is_none_or(|last| last.name != queue) {
            if queues.len() == MAX_REPORTED_QUEUES {
                if last_omitted != Some(queue) {
                    omitted += 1;
                    last_omitted = Some(queue);
                }
                continue;
            }
            let backlog_age_ms = scheduler.next_ready(queue).map_or(0, |task| {
                now_ms.saturating_sub(task.ready_at_ms.max(task.created_at_ms))
            });
            queues.push(QueueFigures {
                name: queue.to_string(),
                by_state: [0; TaskStatus::ALL.len()],
                ready: scheduler.ready_count(queue),
                backlog_age_seconds: backlog_age_ms as f64 / 1000.0,
            });
        }
        let last = queues.last_mut().expect("pushed above");
        let slot = TaskStatus::ALL
            .iter()
            .position(|s| *s == status)
            .expect("every status is in ALL");
        last.by_state[slot] = count;
    }
    (queues, omitted)
}

/// Sets every state of every reported queue (0 included, so a count that fell to none
/// does not keep its last value), and zeroes the queues reported last time that hold no
/// task now; their series then leave the output after `observe::GAUGE_IDLE_TIMEOUT`. With
/// queues `omitted` past the cap, one missing now may only have been pushed out by name: it
/// is not zeroed, and its series leave after the same timeout.
fn set_queue_gauges(metrics: &NodeMetrics, queues: &[QueueFigures], omitted: bool, reported: &mut BTreeSet<String>) {
    metrics.describe_gauge("raftsched_tasks", None, "Tasks held, by queue and state.");
    metrics.describe_gauge(
        "raftsched_queue_ready_tasks",
        None,
        "Pending tasks whose time has come, by queue.",
    );
    metrics.describe_gauge(
        "raftsched_queue_backlog_age_seconds",
        Some(Unit::Seconds),
        "How long the task a queue dispatches next has been ready (0: none ready).",
    );
    let now: BTreeSet<String> = queues.iter().map(|q| q.name.clone()).collect();
    let gone: Vec<QueueFigures> = reported
        .difference(&now)
        .filter(|_| !omitted)
        .map(|name| QueueFigures {
            name: name.clone(),
            by_state: [0; TaskStatus::ALL.len()],
            ready: 0,
            backlog_age_seconds: 0.0,
        })
        .collect();
    for queue in queues.iter().chain(&gone) {
        let queue_label = || Label::new("queue", queue.name.clone());
        for (status, count) in TaskStatus::ALL.into_iter().zip(queue.by_state) {
            let labels = vec![queue_label(), Label::new("state", status.as_str())];
            metrics.set_gauge("raftsched_tasks", labels, count as f64);
        }
        metrics.set_gauge("raftsched_queue_ready_tasks", vec![queue_label()], queue.ready as f64);
        metrics.set_gauge(
            "raftsched_queue_backlog_age_seconds",
            vec![queue_label()],
            queue.backlog_age_seconds,
        );
    }
    *reported = now;
}
