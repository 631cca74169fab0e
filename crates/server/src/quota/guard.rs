//! [`Guard`]: the leader's admission of new work against the caps and the cluster's alarms,
//! and this node's high-water alarms.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;

use super::QuotaConfig;
use super::size::format_bytes;
use super::size::format_count;
use crate::raft_types::NodeId;

/// An alarm clears once its figure is back under 95% of the mark, so a figure hovering at
/// the mark (a data dir between two sled segment reclaims) does not flap the alarm each sample.
const CLEAR_BELOW_PERCENT: u64 = 95;

/// What a request would add to the state: tasks created and their estimated bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub tasks: u64,
    pub bytes: u64,
}

/// This node's latest sample and which of its alarms are up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Resident memory, 0 where it cannot be read (not Linux).
    pub rss_bytes: u64,
    pub data_dir_bytes: u64,
    memory_alarm: bool,
    data_dir_alarm: bool,
}

impl Health {
    /// Whether resident memory is past `--memory-high-water`.
    pub fn memory_alarm(&self) -> bool {
        self.memory_alarm
    }

    /// Whether the data dir is past `--data-dir-high-water`.
    pub fn data_dir_alarm(&self) -> bool {
        self.data_dir_alarm
    }
}

/// Shared by the app (admission), the dispatcher (deferring firings), the sampler and the
/// alarm poll. Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: NodeId,
    config: QuotaConfig,
    /// Admitted requests not yet applied: counted with the state, so concurrent requests
    /// cannot each pass a cap the sum of them crosses.
    reserved: Mutex<Cost>,
    health: Mutex<Health>,
    /// Each peer's alarms as of the last poll (`grpc::alarm_poll`); a peer that did not
    /// answer has no entry.
    peer_alarms: Mutex<BTreeMap<NodeId, Vec<String>>>,
}

/// Cost admitted and not yet applied; released when dropped (after the write returned, when
/// the state counts it itself, or failed).
pub struct Reservation {
    guard: Guard,
    cost: Cost,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = lock(&self.guard.inner.reserved);
        reserved.tasks -= self.cost.tasks;
        reserved.bytes -= self.cost.bytes;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Guard {
    pub fn new(node_id: NodeId, config: QuotaConfig) -> Guard {
        Guard {
            inner: Arc::new(Inner {
                node_id,
                config,
                reserved: Mutex::default(),
                health: Mutex::default(),
                peer_alarms: Mutex::default(),
            }),
        }
    }

    pub fn config(&self) -> &QuotaConfig {
        &self.inner.config
    }

    pub fn health(&self) -> Health {
        lock(&self.inner.health).clone()
    }

    /// This node's active alarms, as people read them (what NodeStatus reports).
    pub fn own_alarms(&self) -> Vec<String> {
        let health = lock(&self.inner.health);
        let config = &self.inner.config;
        let mut alarms = Vec::new();
        if health.memory_alarm {
            alarms.push(alarm_text(
                "memory",
                health.rss_bytes,
                config.memory_high_water_bytes,
                "--memory-high-water",
            ));
        }
        if health.data_dir_alarm {
            alarms.push(alarm_text(
                "data-dir",
                health.data_dir_bytes,
                config.data_dir_high_water_bytes,
                "--data-dir-high-water",
            ));
        }
        alarms
    }

    /// Takes a sample: raises an alarm whose figure passed its mark, clears one back under
    /// 95% of it. `None`: the figure could not be read this time; its alarm stays as it was.
    pub fn record_sample(&self, rss_bytes: Option<u64>, data_dir_bytes: Option<u64>) {
        let config = &self.inner.config;
        let mut health = lock(&self.inner.health);
        if let Some(rss) = rss_bytes {
            health.rss_bytes = rss;
            let alarm = next_alarm(health.memory_alarm, rss, config.memory_high_water_bytes);
            log_change(
                self.inner.node_id,
                "memory",
                health.memory_alarm,
                alarm,
                rss,
                config.memory_high_water_bytes,
            );
            health.memory_alarm = alarm;
        }
        if let Some(bytes) = data_dir_bytes {
            health.data_dir_bytes = bytes;
            let mark = config.data_dir_high_water_bytes;
            let alarm = next_alarm(health.data_dir_alarm, bytes, mark);
            log_change(
                self.inner.node_id,
                "data-dir",
                health.data_dir_alarm,
                alarm,
                bytes,
                mark,
            );
            health.data_dir_alarm = alarm;
        }
    }

    /// Replaces what is known of the peers' alarms (one poll's answers).
    pub fn set_peer_alarms(&self, alarms: BTreeMap<NodeId, Vec<String>>) {
        *lock(&self.inner.peer_alarms) = alarms;
    }

    /// Why the cluster takes no new work because of an alarm, if any member has one.
    pub fn alarm_refusal(&self) -> Option<String> {
        let own = self.own_alarms();
        let (node_id, alarm) = match own.into_iter().next() {
            Some(alarm) => (self.inner.node_id, alarm),
            None => {
                let peers = lock(&self.inner.peer_alarms);
                let (id, alarms) = peers.iter().find(|(_, alarms)| !alarms.is_empty())?;
                (*id, alarms[0].clone())
            }
        };
        Some(format!(
            "node {node_id} has a high-water alarm ({alarm}): the cluster accepts no new work until it clears \
             (reads, cancels, results and purges go on); free memory or disk on that node, lower the queues' \
             retention (queue set Q --retention), cancel work, or raise that node's mark"
        ))
    }

    /// Admits a request that adds `cost` to a state holding `live_tasks` and `state_bytes`,
    /// or says which cap (or alarm) refuses it. The reservation counts the cost against
    /// later requests until it is dropped.
    /// Whether `adding` more live tasks fit `namespace`'s cap, which holds `live_tasks` now.
    /// Not reserved like the cluster's cap: requests in flight together may pass it by what
    /// they add (at most a batch each), which the cluster's reserved cap still bounds.
    pub fn check_namespace(&self, namespace: &str, live_tasks: u64, adding: u64) -> Result<(), String> {
        let cap = self.inner.config.max_live_tasks_per_namespace;
        if adding == 0 || live_tasks.saturating_add(adding) <= cap {
            return Ok(());
        }
        Err(format!(
            "namespace live-tasks cap reached: namespace {namespace} holds {} unfinished tasks and this request adds {}, \
             over the cap of {} per namespace (--max-live-tasks-per-namespace); wait for tasks to finish, cancel \
             work, or raise --max-live-tasks-per-namespace",
            format_count(live_tasks),
            format_count(adding),
            format_count(cap)
        ))
    }

    pub fn admit(&self, live_tasks: u64, state_bytes: u64, cost: Cost) -> Result<Reservation, String> {
        // A request that adds nothing (every spec a retry of a committed one) is never
        // refused: it creates no work, even past a cap overshot after a leader change.
        if cost == Cost::default() {
            return Ok(Reservation {
                guard: self.clone(),
                cost,
            });
        }
        if let Some(refusal) = self.alarm_refusal() {
            return Err(refusal);
        }
        let mut reserved = lock(&self.inner.reserved);
        let live = live_tasks.saturating_add(reserved.tasks);
        let bytes = state_bytes.saturating_add(reserved.bytes);
        self.check_caps(live, bytes, cost)?;
        reserved.tasks += cost.tasks;
        reserved.bytes += cost.bytes;
        Ok(Reservation {
            guard: self.clone(),
            cost,
        })
    }

    /// Why new work of any size is refused now (an alarm, or a cap already reached): the
    /// dispatcher does not fire schedules meanwhile.
    pub fn new_work_refused(&self, live_tasks: u64, state_bytes: u64) -> Option<String> {
        let reserved = *lock(&self.inner.reserved);
        self.alarm_refusal().or_else(|| {
            let live = live_tasks.saturating_add(reserved.tasks);
            let bytes = state_bytes.saturating_add(reserved.bytes);
            self.check_caps(live, bytes, Cost { tasks: 1, bytes: 1 }).err()
        })
    }

    fn check_caps(&self, live: u64, bytes: u64, cost: Cost) -> Result<(), String> {
        let config = &self.inner.config;
        if live.saturating_add(cost.tasks) > config.max_live_tasks {
            return Err(format!(
                "live-tasks cap reached: the cluster holds {} unfinished tasks and this request adds {}, over the \
                 cap of {} (--max-live-tasks); wait for tasks to finish, cancel work, or raise --max-live-tasks",
                format_count(live),
                format_count(cost.tasks),
                format_count(config.max_live_tasks)
            ));
        }
        if bytes.saturating_add(cost.bytes) > config.max_state_bytes {
            return Err(format!(
                "state-bytes cap reached: the cluster's tasks hold {} and this request adds {}, over the cap of {} \
                 (--max-state-bytes); lower the queue's retention (queue set Q --retention), cancel work, or raise \
                 --max-state-bytes",
                format_bytes(bytes),
                format_bytes(cost.bytes),
                format_bytes(config.max_state_bytes)
            ));
        }
        Ok(())
    }
}

fn next_alarm(active: bool, figure: u64, mark: u64) -> bool {
    if active {
        // u128: mark × 95 overflows u64 for marks above ~194 PiB (the type's max is allowed
        // by nothing but tests, and must not panic).
        u128::from(figure) * 100 >= u128::from(mark) * u128::from(CLEAR_BELOW_PERCENT)
    } else {
        figure > mark
    }
}

fn alarm_text(what: &str, figure: u64, mark: u64, flag: &str) -> String {
    format!(
        "{what} at {}, past its high-water mark {} ({flag}; clears under {}% of it)",
        format_bytes(figure),
        format_bytes(mark),
        CLEAR_BELOW_PERCENT
    )
}

fn log_change(node_id: NodeId, what: &str, was: bool, now: bool, figure: u64, mark: u64) {
    match (was, now) {
        (false, true) => tracing::warn!(
            node_id,
            "{what} alarm raised: {} over the high-water mark {}; the cluster refuses new work until it clears",
            format_bytes(figure),
            format_bytes(mark)
        ),
        (true, false) => tracing::info!(
            node_id,
            "{what} alarm cleared: {} is back under {CLEAR_BELOW_PERCENT}% of the high-water mark {}",
            format_bytes(figure),
            format_bytes(mark)
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Cost = Cost { tasks: 1, bytes: 1 };

    fn guard(max_live_tasks: u64, max_state_bytes: u64) -> Guard {
        Guard::new(
            1,
            QuotaConfig {
                max_live_tasks,
                max_live_tasks_per_namespace: 3,
                max_state_bytes,
                memory_high_water_bytes: 1000,
                data_dir_high_water_bytes: 1000,
            },
        )
    }

    #[test]
    fn a_namespace_cap_admits_up_to_its_limit_and_names_the_namespace() {
        let guard = guard(100, 1 << 20);
        assert_eq!(guard.check_namespace("team-a", 0, 3), Ok(()));
        assert_eq!(guard.check_namespace("team-a", 2, 1), Ok(()));
        assert_eq!(
            guard.check_namespace("team-a", 3, 0),
            Ok(()),
            "nothing added: never refused"
        );
        let refusal = guard.check_namespace("team-a", 3, 1).unwrap_err();
        assert!(
            refusal.contains("namespace team-a holds 3") && refusal.contains("--max-live-tasks-per-namespace"),
            "{refusal}"
        );
        assert!(
            guard.check_namespace("team-a", u64::MAX, u64::MAX).is_err(),
            "no overflow"
        );
    }

    #[test]
    fn a_cap_admits_up_to_its_limit_and_counts_what_is_in_flight() {
        let guard = guard(3, u64::MAX);
        let one = Cost { tasks: 1, bytes: 0 };
        let held = guard
            .admit(1, 0, Cost { tasks: 2, bytes: 0 })
            .expect("1 + 2 = 3: at the cap");
        let refused = guard.admit(1, 0, one).err().expect("the reservation counts");
        assert!(refused.contains("holds 3") && refused.contains("cap of 3"), "{refused}");
        assert!(guard.new_work_refused(1, 0).is_some());
        drop(held);
        assert!(guard.admit(1, 0, one).is_ok(), "released with its reservation");
        assert!(guard.new_work_refused(2, 0).is_none());
        assert!(guard.admit(u64::MAX, 0, one).is_err(), "saturates instead of wrapping");
        assert!(
            guard.admit(u64::MAX, u64::MAX, Cost::default()).is_ok(),
            "nothing added: never refused"
        );
    }

    #[test]
    fn the_bytes_cap_names_its_figures_in_human_units() {
        let guard = guard(u64::MAX, 2 << 20);
        let refused = guard
            .admit(0, 2 << 20, Cost { tasks: 1, bytes: 1 })
            .err()
            .expect("over");
        assert!(
            refused.contains("2.0 MiB") && refused.contains("--max-state-bytes"),
            "{refused}"
        );
        assert!(
            guard.admit(0, (2 << 20) - 1, Cost { tasks: 1, bytes: 1 }).is_ok(),
            "exactly at the cap"
        );
    }

    /// Raised past the mark, kept down to 95% of it, cleared under; an unreadable figure
    /// changes nothing.
    #[test]
    fn an_alarm_has_hysteresis() {
        let guard = guard(u64::MAX, u64::MAX);
        guard.record_sample(Some(1000), Some(1000));
        assert!(guard.own_alarms().is_empty(), "at the mark is not past it");
        guard.record_sample(None, Some(1001));
        assert_eq!(guard.own_alarms().len(), 1);
        assert!(guard.own_alarms()[0].starts_with("data-dir"));
        assert!(guard.admit(0, 0, ONE).is_err(), "new work stops under an alarm");
        guard.record_sample(None, None);
        guard.record_sample(None, Some(950));
        assert_eq!(guard.own_alarms().len(), 1, "95% of the mark: still up");
        guard.record_sample(None, Some(949));
        assert!(guard.own_alarms().is_empty(), "cleared under 95%");
        guard.record_sample(Some(u64::MAX), Some(u64::MAX));
        assert_eq!(guard.own_alarms().len(), 2, "both, at the type's max, without overflow");
    }

    #[test]
    fn a_peer_alarm_refuses_new_work_naming_the_peer() {
        let guard = guard(u64::MAX, u64::MAX);
        guard.set_peer_alarms([(2, Vec::new()), (3, vec!["memory at 9 GiB".to_string()])].into());
        let refused = guard.admit(0, 0, ONE).err().expect("refused");
        assert!(
            refused.contains("node 3") && refused.contains("memory at 9 GiB"),
            "{refused}"
        );
        guard.set_peer_alarms(Default::default());
        assert!(guard.admit(0, 0, ONE).is_ok());
    }
}
