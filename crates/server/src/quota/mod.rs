//! Quotas and high-water alarms: the leader refuses new work (RESOURCE_EXHAUSTED) past a
//! cap on live tasks or state bytes, or while any member has a high-water alarm (memory or
//! data dir), and fires no schedule meanwhile. Reads, cancels, results, drains, purges and
//! queue policy changes are never refused by either.
//!
//! Architecture invariant: configuration checked by the leader before it proposes, never by
//! apply (replicas with other caps cannot diverge). Depends on no other module of the node
//! but `raft_types`: `app`, `dispatch`, `grpc` and `node` use it.

mod config;
mod guard;
pub mod sampler;
pub mod size;

pub use config::DEFAULT_DATA_DIR_HIGH_WATER_BYTES;
pub use config::DEFAULT_MAX_LIVE_TASKS;
pub use config::DEFAULT_MAX_STATE_BYTES;
pub use config::DEFAULT_MEMORY_HIGH_WATER_BYTES;
pub use config::QuotaConfig;
pub use guard::Cost;
pub use guard::Guard;
pub use guard::Health;
pub use guard::Reservation;
