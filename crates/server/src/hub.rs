//! [`WorkerHub`]: the leader's live view of its workers — open assignment streams, when each
//! was last heard from, and why pending tasks wait. None of it is replicated: a new leader
//! starts it afresh and gives every worker a full lease to re-attach.
//!
//! Architecture invariant: the hub depends on no other module of the server (it holds
//! domain [`Instruction`]s, never protobuf messages), so `app`, `dispatch` and `grpc` can all
//! share it without a cycle. It is not replicated and decides nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::mpsc;
use tokio::time::Instant;

use raftsched_core::state::Task;
use raftsched_core::state::TaskId;

/// Pending-task reasons kept for display; beyond this the oldest planning results are dropped.
const MAX_PENDING_REASONS: usize = 10_000;

/// What the leader tells a worker on its stream, once the change is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `trace_parent`: the context the worker's run joins (the push's span, else the task's).
    Assign {
        task: Box<Task>,
        token: u64,
        attempt: u32,
        trace_parent: Option<String>,
    },
    Cancel {
        task_id: TaskId,
        token: u64,
    },
}

struct Connection {
    session: String,
    sender: mpsc::Sender<Instruction>,
}

#[derive(Default)]
struct HubInner {
    connections: BTreeMap<String, Connection>,
    /// When the leader last heard from each worker (register, attach, heartbeat, report).
    last_heard: BTreeMap<String, Instant>,
    pending_reasons: BTreeMap<TaskId, String>,
}

/// Shared by the dispatcher, the worker gRPC service and the API. Cheap to clone. The lock is
/// held only for short, synchronous map updates.
#[derive(Clone, Default)]
pub struct WorkerHub {
    inner: Arc<Mutex<HubInner>>,
    /// Wakes the dispatcher: new tasks, freed slots, new workers.
    wake: Arc<Notify>,
}

impl WorkerHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubInner> {
        self.inner.lock().expect("worker hub lock poisoned")
    }

    /// Asks the dispatcher for a planning round soon.
    pub fn wake_dispatcher(&self) {
        self.wake.notify_one();
    }

    pub(super) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Opens a worker's stream, replacing any older one, and returns its receiving end.
    pub fn connect(&self, worker_id: &str, session: &str, capacity: usize) -> mpsc::Receiver<Instruction> {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let mut inner = self.lock();
        inner.connections.insert(
            worker_id.to_string(),
            Connection {
                session: session.to_string(),
                sender,
            },
        );
        inner.last_heard.insert(worker_id.to_string(), Instant::now());
        drop(inner);
        self.wake_dispatcher();
        receiver
    }

    /// Sends an instruction if the worker's stream is open and has room. When it does not,
    /// the worker learns of it on re-attach or heartbeat, from the committed state.
    pub fn send(&self, worker_id: &str, instruction: Instruction) -> bool {
        let inner = self.lock();
        match inner.connections.get(worker_id) {
            Some(connection) => connection.sender.try_send(instruction).is_ok(),
            None => false,
        }
    }

    pub fn is_connected(&self, worker_id: &str) -> bool {
        self.lock()
            .connections
            .get(worker_id)
            .is_some_and(|c| !c.sender.is_closed())
    }

    /// Whether any worker's stream is open here: without one, nothing can be placed.
    pub fn any_connected(&self) -> bool {
        self.lock().connections.values().any(|c| !c.sender.is_closed())
    }

    /// The workers whose streams are open here, in id order; one lock, O(connections).
    pub fn connected(&self) -> Vec<String> {
        let inner = self.lock();
        inner
            .connections
            .iter()
            .filter(|(_, c)| !c.sender.is_closed())
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn heard_from(&self, worker_id: &str) {
        self.lock().last_heard.insert(worker_id.to_string(), Instant::now());
    }

    /// How long ago the leader heard from a worker; None if never since it became leader.
    pub fn silence(&self, worker_id: &str) -> Option<Duration> {
        self.lock().last_heard.get(worker_id).map(Instant::elapsed)
    }

    /// On taking leadership: every known worker counts as heard from now, so it has a full
    /// lease to re-attach before anything of it expires.
    pub(super) fn grant_grace(&self, worker_ids: impl Iterator<Item = String>) {
        let now = Instant::now();
        let mut inner = self.lock();
        for id in worker_ids {
            inner.last_heard.insert(id, now);
        }
    }

    /// On losing leadership: close every stream, so workers go and find the new leader.
    pub(super) fn disconnect_all(&self) {
        let mut inner = self.lock();
        inner.connections.clear();
        inner.last_heard.clear();
        inner.pending_reasons.clear();
    }

    pub(super) fn forget(&self, worker_id: &str, session: &str) {
        let mut inner = self.lock();
        if inner.connections.get(worker_id).is_some_and(|c| c.session == session) {
            inner.connections.remove(worker_id);
        }
        inner.last_heard.remove(worker_id);
    }

    /// Drops what the hub keeps of workers the state no longer has and whose stream is not
    /// open: an expiry whose commit failed on this leader skipped [`Self::forget`], and
    /// without this the entry would stay until leadership moved. An open stream is kept (a
    /// worker registering right now is in the state a moment later). So the hub holds at
    /// most the state's workers (≤ 10,000, each gone within its lease of ≤ 300 s of
    /// silence) plus streams still open. O(entries · log workers), once a dispatch round.
    pub(super) fn forget_absent(&self, present: impl Fn(&str) -> bool) {
        let mut inner = self.lock();
        let HubInner {
            connections,
            last_heard,
            ..
        } = &mut *inner;
        connections.retain(|id, c| present(id) || !c.sender.is_closed());
        last_heard.retain(|id, _| present(id) || connections.contains_key(id));
    }

    /// How many workers the hub keeps anything of (tests).
    pub fn tracked_workers(&self) -> usize {
        let inner = self.lock();
        let mut ids: Vec<&String> = inner.connections.keys().chain(inner.last_heard.keys()).collect();
        ids.sort();
        ids.dedup();
        ids.len()
    }

    pub(super) fn set_pending_reasons(&self, reasons: BTreeMap<TaskId, String>) {
        let mut reasons = reasons;
        while reasons.len() > MAX_PENDING_REASONS {
            reasons.pop_last();
        }
        self.lock().pending_reasons = reasons;
    }

    /// Why a pending task waits, as of the last planning round on this leader.
    pub fn pending_reason(&self, task_id: TaskId) -> Option<String> {
        self.lock().pending_reasons.get(&task_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerHub;

    #[tokio::test]
    async fn workers_the_state_no_longer_has_are_forgotten_unless_their_stream_is_open() {
        let hub = WorkerHub::default();
        hub.heard_from("gone");
        hub.heard_from("kept");
        let closed = hub.connect("closed", "s1", 1);
        drop(closed);
        let open = hub.connect("open", "s1", 1);
        assert_eq!(hub.tracked_workers(), 4);
        hub.forget_absent(|id| id == "kept");
        assert_eq!(hub.tracked_workers(), 2, "only `kept` (in the state) and `open` stay");
        assert!(hub.silence("kept").is_some() && hub.silence("open").is_some());
        assert!(hub.silence("gone").is_none() && hub.silence("closed").is_none());
        drop(open);
        hub.forget_absent(|_| false);
        assert_eq!(hub.tracked_workers(), 0);
    }
}
