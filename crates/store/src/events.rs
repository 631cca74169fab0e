//! [`StoreEvents`]: timings the store reports to whoever watches it (the node's metrics):
//! each fsync of the log, each snapshot built or installed. The store links no metrics
//! library; the node hands it a sink once it has one, and events before that are dropped.
//! Likewise it exports no traces: a node that does hands it an apply tracer, which opens
//! the "apply" span of each traced submission around its apply.

use std::sync::OnceLock;
use std::time::Duration;

use raftsched_core::state::Command;

/// One thing the store did, and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreEvent {
    /// The log's last segment made durable: one fsync, which covers every append before it
    /// (what a commit waits for on this node).
    LogFsync { took: Duration },
    /// A snapshot encoded and saved: `image_bytes` is its image, before compression.
    SnapshotBuilt { took: Duration, image_bytes: u64 },
    /// A snapshot received from the leader, saved and loaded.
    SnapshotInstalled { took: Duration, image_bytes: u64 },
}

type Sink = Box<dyn Fn(StoreEvent) + Send + Sync>;
type ApplyTracer = Box<dyn Fn(&Command) -> Vec<tracing::Span> + Send + Sync>;

/// Where the store's events go: nowhere until [`StoreEvents::set_sink`].
#[derive(Default)]
pub struct StoreEvents {
    sink: OnceLock<Sink>,
    /// Opens the "apply" spans of a command's traced tasks (see [`StoreEvents::set_apply_tracer`]).
    apply_tracer: OnceLock<ApplyTracer>,
}

impl std::fmt::Debug for StoreEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreEvents")
            .field("has_sink", &self.sink.get().is_some())
            .field("has_apply_tracer", &self.apply_tracer.get().is_some())
            .finish()
    }
}

impl StoreEvents {
    /// Sends every later event to `sink`, which must be quick: it runs on the thread that
    /// did the work (the fsync runs on tokio's blocking pool). Returns false, and changes
    /// nothing, if a sink was set already.
    pub fn set_sink(&self, sink: impl Fn(StoreEvent) + Send + Sync + 'static) -> bool {
        self.sink.set(Box::new(sink)).is_ok()
    }

    /// Has `tracer` open spans for each command about to be applied; they close when it
    /// has been. The store exports no traces itself: the node sets a tracer only when it
    /// does (`--otlp-endpoint`). Returns false, and changes nothing, if one was set already.
    pub fn set_apply_tracer(&self, tracer: impl Fn(&Command) -> Vec<tracing::Span> + Send + Sync + 'static) -> bool {
        self.apply_tracer.set(Box::new(tracer)).is_ok()
    }

    /// The spans to hold while `command` is applied: none without a tracer.
    pub(crate) fn trace_apply(&self, command: &Command) -> Vec<tracing::Span> {
        self.apply_tracer
            .get()
            .map(|tracer| tracer(command))
            .unwrap_or_default()
    }

    pub(crate) fn emit(&self, event: StoreEvent) {
        if let Some(sink) = self.sink.get() {
            sink(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::Mutex;

    #[test]
    fn events_go_to_the_one_sink_set_and_none_before_it() {
        let events = StoreEvents::default();
        events.emit(StoreEvent::LogFsync {
            took: Duration::from_millis(1),
        });
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&seen);
        assert!(events.set_sink(move |e| into.lock().unwrap().push(e)));
        assert!(!events.set_sink(|_| {}), "a second sink is refused");
        let built = StoreEvent::SnapshotBuilt {
            took: Duration::from_millis(5),
            image_bytes: 42,
        };
        events.emit(built);
        assert_eq!(*seen.lock().unwrap(), vec![built]);
    }
}
