//! [`Worker`]: a worker process as the replicated state knows it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use crate::state::task::Resources;

/// A registered worker. What it runs is an index over the tasks, not stored here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worker {
    pub id: String,
    /// Chosen by the worker process at start. A registration with another session means the
    /// process restarted, and whatever the old session held is void.
    pub session: String,
    pub slots: u32,
    pub labels: BTreeMap<String, String>,
    pub resources: Resources,
    /// The leader voids the worker's attempts after this long without a heartbeat.
    pub lease_ms: u64,
    pub registered_at_ms: u64,
    /// A draining worker gets no new assignments.
    pub draining: bool,
}

impl Worker {
    /// The namespace whose tasks this worker takes: its [`NAMESPACE_LABEL`](crate::state::namespace::NAMESPACE_LABEL), else the default.
    pub fn namespace(&self) -> &str {
        crate::state::namespace::of_worker_labels(&self.labels)
    }
}

/// What a worker declares when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRegistration {
    pub id: String,
    pub session: String,
    pub slots: u32,
    pub labels: BTreeMap<String, String>,
    pub resources: Resources,
    pub lease_ms: u64,
}
