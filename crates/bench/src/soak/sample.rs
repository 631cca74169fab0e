//! One row of the soak series: what the cluster and the load looked like over one interval.

use serde::Deserialize;
use serde::Serialize;

/// One node at the end of an interval.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct NodeSample {
    /// node1, node2, ... (the pid file's name).
    pub name: String,
    pub rss_mib: f64,
    pub data_mib: f64,
    /// Disk bytes the process wrote during the interval (/proc/<pid>/io write_bytes delta;
    /// a restarted process counts from zero).
    pub write_bytes: u64,
    /// write_bytes ÷ tasks completed in the interval; None when none completed.
    pub write_bytes_per_task: Option<f64>,
}

/// One interval of the soak.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Sample {
    /// End of the interval, seconds since the load started.
    pub t_s: f64,
    /// Submissions acknowledged / refused in the interval.
    pub submitted: u64,
    pub submit_errors: u64,
    /// Tasks of the soak queue that finished in the interval (acknowledged so far minus the
    /// queue's pending + running, as the leader counts them).
    pub completed: u64,
    /// Pending + running tasks over every queue of the cluster (None when the listing failed).
    pub live_tasks: Option<u64>,
    /// submit→start of the tasks whose handler started in the interval, from the intended
    /// send time (ms); None when none started.
    pub start_p50_ms: Option<f64>,
    pub start_p99_ms: Option<f64>,
    /// Submit acknowledgement latency of the interval's sends, from the intended send time.
    pub ack_p99_ms: Option<f64>,
    /// Highest Raft term any member reports (None when the status call failed).
    pub term: Option<u64>,
    /// Term increments and changes of the leader's id since the previous sample.
    pub elections: u64,
    pub leader_changes: u64,
    /// The members' leader quorum losses since the previous sample (0 without a fault).
    pub quorum_losses: u64,
    pub nodes: Vec<NodeSample>,
    /// Sum of the nodes' write_bytes ÷ completed.
    pub write_bytes_per_task: Option<f64>,
}
