//! What a node tells its operators about itself: [`NodeMetrics`] (counters and histograms in
//! Prometheus form), the [`readiness`] rule behind `/readyz` and `grpc.health.v1`, and the
//! [`watch`] loop that keeps both current from the node's Raft metrics.
//!
//! Architecture invariant: observing never changes what a node does. Nothing here proposes,
//! applies or refuses; `app`, `dispatch` and `grpc` only record into it, and `http` and
//! `grpc` only read it.

mod metrics;
mod readiness;
pub mod watch;

pub use self::metrics::GAUGE_IDLE_TIMEOUT;
pub use self::metrics::MAX_METHOD_NAME_BYTES;
pub use self::metrics::NodeMetrics;
pub use readiness::MAX_READY_LAG_ENTRIES;
pub use readiness::NotReady;
pub use readiness::RaftView;
pub use readiness::readiness;
