//! The policies the state stores and applies: a queue's weight and placement strategy, and
//! the retry backoff of a failed attempt. The planner (`crate::scheduling`) reads them; they
//! live here so that the state depends on nothing above it.

use serde::Deserialize;
use serde::Serialize;

use crate::state::limits::DEFAULT_RETENTION_MS;

/// A queue's scheduling policy.
///
/// Deserialised by hand: a log entry of wire format v1 carries the policy without
/// `retention_ms`, as did bare v0 values (see [`crate::state::wire::decoding_version`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueuePolicy {
    /// Share of running slots relative to other queues with work (1..=1000).
    pub weight: u32,
    pub placement: Placement,
    /// How long a finished task of this queue is kept before the leader purges it; `None`
    /// is the cluster default ([`DEFAULT_RETENTION_MS`]).
    pub retention_ms: Option<u64>,
}

impl QueuePolicy {
    /// The retention in force for this queue.
    pub fn effective_retention_ms(&self) -> u64 {
        self.retention_ms.unwrap_or(DEFAULT_RETENTION_MS)
    }
}

impl Default for QueuePolicy {
    fn default() -> QueuePolicy {
        QueuePolicy {
            weight: 1,
            placement: Placement::LeastLoaded,
            retention_ms: None,
        }
    }
}

/// The layout of wire format v1, before retention existed.
#[derive(Deserialize)]
struct QueuePolicyV1 {
    weight: u32,
    placement: Placement,
}

/// The current layout, field for field as [`QueuePolicy`] serialises.
#[derive(Deserialize)]
struct QueuePolicyV2 {
    weight: u32,
    placement: Placement,
    retention_ms: Option<u64>,
}

impl<'de> Deserialize<'de> for QueuePolicy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<QueuePolicy, D::Error> {
        if matches!(crate::state::wire::decoding_version(), Some(0 | 1)) {
            let v1 = QueuePolicyV1::deserialize(deserializer)?;
            return Ok(QueuePolicy {
                weight: v1.weight,
                placement: v1.placement,
                retention_ms: None,
            });
        }
        let v2 = QueuePolicyV2::deserialize(deserializer)?;
        Ok(QueuePolicy {
            weight: v2.weight,
            placement: v2.placement,
            retention_ms: v2.retention_ms,
        })
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
