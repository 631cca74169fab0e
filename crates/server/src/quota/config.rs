//! [`QuotaConfig`]: the node's caps on new work and its high-water marks.
//!
//! Unlike the core's limits these are configuration, not constants: they are checked only by
//! the leader before it proposes (apply never looks at them), so two nodes with different
//! caps cannot diverge; a new leader simply enforces its own.

use serde::Deserialize;
use serde::Serialize;

use super::size::format_bytes;
use super::size::format_count;

/// Defaults. Live tasks: 1,000,000, about 1 GiB of state at the ~1 KiB a typical task costs
/// (`stored_bytes.rs`), and 1000 dispatch rounds' worth of backlog.
pub const DEFAULT_MAX_LIVE_TASKS: u64 = 1_000_000;
/// State bytes: 2 GiB, etcd's default backend quota, and the Raft transport's snapshot cap
/// (`network`): a bigger state could no longer be sent to a follower that fell behind.
pub const DEFAULT_MAX_STATE_BYTES: u64 = 2 << 30;
/// Memory: 6 GiB. A node at the state cap holds the state (2 GiB), a snapshot being encoded
/// (up to its size again), and message buffers (16 × 8 MiB Raft + 256 MiB client ≈ 384 MiB):
/// about 4.5 GiB, so 6 GiB means something grows that the caps do not bound.
pub const DEFAULT_MEMORY_HIGH_WATER_BYTES: u64 = 6 << 30;
/// Data dir: 16 GiB. The last snapshot (≤ 2 GiB) and the log since (half a snapshot before
/// the next is due) are ~3 GiB; sled's segments run 2-3× the live bytes before they are
/// reclaimed, so ~9 GiB is normal at the caps, 16 GiB is not.
pub const DEFAULT_DATA_DIR_HIGH_WATER_BYTES: u64 = 16 << 30;

/// Largest live-task cap: 100 million tasks are ~100 GiB of memory at ~1 KiB each, beyond
/// any machine this runs on; a bigger figure is a typo.
pub const MAX_LIVE_TASKS_CAP: u64 = 100_000_000;
/// Largest state-bytes cap: the snapshot cap (see [`DEFAULT_MAX_STATE_BYTES`]).
pub const MAX_STATE_BYTES_CAP: u64 = 2 << 30;
/// Largest high-water mark: 1 PiB; a bigger one is a typo (or a unit missed).
pub const MAX_HIGH_WATER_BYTES: u64 = 1 << 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// New work is refused while the cluster holds this many live (pending, running or
    /// waiting) tasks, counting the ones a request would add.
    pub max_live_tasks: u64,
    /// New work in a namespace is refused while that namespace holds this many live tasks,
    /// counting the ones a request would add: one tenant cannot take the whole cluster's
    /// cap. At most `max_live_tasks` in effect (the cluster's cap also holds).
    pub max_live_tasks_per_namespace: u64,
    /// New work is refused while the tasks' estimated bytes (`SchedulerState::stored_bytes`)
    /// would pass this.
    pub max_state_bytes: u64,
    /// This node raises an alarm while its resident memory is above this.
    pub memory_high_water_bytes: u64,
    /// This node raises an alarm while its data dir holds more than this.
    pub data_dir_high_water_bytes: u64,
}

impl Default for QuotaConfig {
    fn default() -> QuotaConfig {
        QuotaConfig {
            max_live_tasks: DEFAULT_MAX_LIVE_TASKS,
            max_live_tasks_per_namespace: DEFAULT_MAX_LIVE_TASKS,
            max_state_bytes: DEFAULT_MAX_STATE_BYTES,
            memory_high_water_bytes: DEFAULT_MEMORY_HIGH_WATER_BYTES,
            data_dir_high_water_bytes: DEFAULT_DATA_DIR_HIGH_WATER_BYTES,
        }
    }
}

impl QuotaConfig {
    /// Each figure between 1 and its maximum; the message names the flag, the limit in human
    /// units and what to do.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_live_tasks == 0 || self.max_live_tasks > MAX_LIVE_TASKS_CAP {
            return Err(format!(
                "--max-live-tasks (quotas.max_live_tasks) is {}: give 1 to {} (default {}); a cap of 0 would refuse all work",
                format_count(self.max_live_tasks),
                format_count(MAX_LIVE_TASKS_CAP),
                format_count(DEFAULT_MAX_LIVE_TASKS)
            ));
        }
        if self.max_live_tasks_per_namespace == 0 || self.max_live_tasks_per_namespace > MAX_LIVE_TASKS_CAP {
            return Err(format!(
                "--max-live-tasks-per-namespace (quotas.max_live_tasks_per_namespace) is {}: give 1 to {} (default {}); \
                 a cap of 0 would refuse all work",
                format_count(self.max_live_tasks_per_namespace),
                format_count(MAX_LIVE_TASKS_CAP),
                format_count(DEFAULT_MAX_LIVE_TASKS)
            ));
        }
        check_bytes(
            "--max-state-bytes (quotas.max_state_bytes)",
            self.max_state_bytes,
            MAX_STATE_BYTES_CAP,
            DEFAULT_MAX_STATE_BYTES,
            "it is also the largest snapshot a follower can be sent",
        )?;
        check_bytes(
            "--memory-high-water (quotas.memory_high_water_bytes)",
            self.memory_high_water_bytes,
            MAX_HIGH_WATER_BYTES,
            DEFAULT_MEMORY_HIGH_WATER_BYTES,
            "a larger figure is a typo or a missing unit",
        )?;
        check_bytes(
            "--data-dir-high-water (quotas.data_dir_high_water_bytes)",
            self.data_dir_high_water_bytes,
            MAX_HIGH_WATER_BYTES,
            DEFAULT_DATA_DIR_HIGH_WATER_BYTES,
            "a larger figure is a typo or a missing unit",
        )
    }
}

fn check_bytes(flag: &str, value: u64, max: u64, default: u64, why_max: &str) -> Result<(), String> {
    if value == 0 {
        return Err(format!(
            "{flag} is 0: give a size from 1 B to {} (default {}), e.g. 2GiB; 0 would refuse all work",
            format_bytes(max),
            format_bytes(default)
        ));
    }
    if value > max {
        return Err(format!(
            "{flag} is {}, above the most allowed, {} ({why_max}); give a smaller size (default {})",
            format_bytes(value),
            format_bytes(max),
            format_bytes(default)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        QuotaConfig::default().validate().expect("defaults validate");
    }

    /// 0, 1, the limit and one past it, and the type's max, for each figure.
    #[test]
    fn each_figure_is_checked_at_its_edges() {
        type Field = fn(&mut QuotaConfig) -> &mut u64;
        let fields: [(Field, u64, &str); 5] = [
            (|c| &mut c.max_live_tasks, MAX_LIVE_TASKS_CAP, "--max-live-tasks"),
            (
                |c| &mut c.max_live_tasks_per_namespace,
                MAX_LIVE_TASKS_CAP,
                "--max-live-tasks-per-namespace",
            ),
            (|c| &mut c.max_state_bytes, MAX_STATE_BYTES_CAP, "--max-state-bytes"),
            (
                |c| &mut c.memory_high_water_bytes,
                MAX_HIGH_WATER_BYTES,
                "--memory-high-water",
            ),
            (
                |c| &mut c.data_dir_high_water_bytes,
                MAX_HIGH_WATER_BYTES,
                "--data-dir-high-water",
            ),
        ];
        for (field, max, flag) in fields {
            for (value, ok) in [(0, false), (1, true), (max, true), (max + 1, false), (u64::MAX, false)] {
                let mut config = QuotaConfig::default();
                *field(&mut config) = value;
                match config.validate() {
                    Ok(()) => assert!(ok, "{flag} = {value} was accepted"),
                    Err(message) => {
                        assert!(!ok, "{flag} = {value} was refused: {message}");
                        assert!(message.contains(flag), "{message}");
                        assert!(message.contains("give"), "says what to do: {message}");
                    }
                }
            }
        }
    }
}
