//! The policies the state stores and applies: a queue's weight and placement strategy, and
//! the retry backoff of a failed attempt. The planner (`crate::scheduling`) reads them; they
//! live here so that the state depends on nothing above it.

use serde::Deserialize;
use serde::Serialize;

/// A queue's scheduling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePolicy {
    /// Share of running slots relative to other queues with work (1..=1000).
    pub weight: u32,
    pub placement: Placement,
}

impl Default for QueuePolicy {
    fn default() -> QueuePolicy {
        QueuePolicy {
            weight: 1,
            placement: Placement::LeastLoaded,
        }
    }
}

pub const MAX_QUEUE_WEIGHT: u32 = 1000;

/// How a queue's tasks are spread over the workers that can take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Placement {
    /// Each worker in turn, in worker-id order, continuing from the last pick.
    RoundRobin,
    /// A uniformly random fitting worker, drawn from the leader's seeded generator (the seed
    /// is written into the assignment entry).
    Random,
    /// The worker with the fewest running tasks relative to its slots; ties by worker id.
    #[default]
    LeastLoaded,
    /// Rendezvous hashing of the task's affinity key (its name when it has none): the same
    /// key goes to the same worker while that worker is up, and only keys of a worker that
    /// leaves move.
    ConsistentHash,
    /// The fitting worker with the least free resources left: fills workers up, keeps others
    /// empty.
    BinPack,
    /// The fitting worker with the most free resources left: spreads load.
    Spread,
}

impl Placement {
    pub const ALL: [Placement; 6] = [
        Placement::RoundRobin,
        Placement::Random,
        Placement::LeastLoaded,
        Placement::ConsistentHash,
        Placement::BinPack,
        Placement::Spread,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Placement::RoundRobin => "round-robin",
            Placement::Random => "random",
            Placement::LeastLoaded => "least-loaded",
            Placement::ConsistentHash => "consistent-hash",
            Placement::BinPack => "bin-pack",
            Placement::Spread => "spread",
        }
    }

    pub fn parse(text: &str) -> Option<Placement> {
        Placement::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

/// Retry backoff: `initial_ms` doubled per failed attempt, capped at 100 × initial, with
/// "equal jitter" (half fixed, half drawn from `draw`) so retries of many tasks spread out.
pub fn retry_delay_ms(failed_attempts: u32, initial_ms: u64, draw: u64) -> u64 {
    let cap_ms = initial_ms.saturating_mul(100);
    let doublings = failed_attempts.saturating_sub(1).min(32);
    let base_ms = initial_ms.saturating_mul(1u64 << doublings).min(cap_ms);
    let half_ms = base_ms / 2;
    half_ms + draw % (base_ms - half_ms + 1)
}
