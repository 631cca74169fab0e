//! Retention: finished purge units (a plain task, a sharded parent with its shards, a
//! workflow with its tasks) are indexed by their home queue and finish time, and removed
//! whole by [`Command::PurgeTasks`](crate::state::Command::PurgeTasks) once the queue's
//! retention has passed.
//!
//! The index is keyed by finish time, not expiry time, so changing a queue's retention
//! takes effect at once: every unit of one queue shares the retention, so the order by
//! finish time is the order of expiry, whatever the retention is now.

use super::Map;
use super::SchedulerState;
use super::Set;
use super::remove_from;
use crate::state::PurgeOutcome;
use crate::state::PurgeUnit;
use crate::state::StateError;
use crate::state::limits;
use crate::state::task::Task;
use crate::state::task::TaskId;
use crate::state::task::TaskOrigin;

/// A finished unit: when its last task finished, and the queue whose retention it follows.
pub(super) struct FinishedUnit {
    pub(super) finished_at_ms: u64,
    pub(super) queue: String,
}

impl SchedulerState {
    /// The unit a task is purged with.
    pub(super) fn purge_unit_of(task: &Task) -> PurgeUnit {
        match &task.links.origin {
            Some(TaskOrigin::Shard { parent, .. }) => PurgeUnit::Task(*parent),
            Some(TaskOrigin::Workflow { workflow_id, .. }) => PurgeUnit::Workflow(*workflow_id),
            _ => PurgeUnit::Task(task.id),
        }
    }

    /// Every task of a unit, its home task first; `None` when the unit does not exist (or
    /// names a shard or a workflow's task, which are never units of their own).
    pub(super) fn unit_tasks(&self, unit: PurgeUnit) -> Option<Vec<TaskId>> {
        match unit {
            PurgeUnit::Task(id) => {
                let task = self.tasks.get(&id)?;
                if Self::purge_unit_of(task) != unit {
                    return None;
                }
                Some(std::iter::once(id).chain(task.links.shards.iter().copied()).collect())
            }
            PurgeUnit::Workflow(id) => {
                let workflow = self.workflows.get(&id)?;
                let tasks: Vec<TaskId> = workflow.tasks.iter().map(|(_, task_id)| *task_id).collect();
                (!tasks.is_empty()).then_some(tasks)
            }
        }
    }

    /// When the unit finished and which queue it follows: `None` while any of its tasks is
    /// unfinished. A workflow follows the queue of its first task (its tasks may use many
    /// queues; one home queue keeps the index one entry per unit). O(tasks of the unit).
    pub(super) fn finished_unit(&self, unit: PurgeUnit) -> Option<FinishedUnit> {
        let tasks = self.unit_tasks(unit)?;
        let mut finished_at_ms = 0;
        for task_id in &tasks {
            let task = self.tasks.get(task_id)?;
            if !task.status.is_terminal() {
                return None;
            }
            finished_at_ms = finished_at_ms.max(task.updated_at_ms);
        }
        let queue = self.tasks[&tasks[0]].spec.queue.clone();
        Some(FinishedUnit { finished_at_ms, queue })
    }

    /// Indexes a task's unit if the task finishing just now finished the whole unit.
    pub(super) fn index_unit_of(&mut self, task_id: TaskId) {
        let unit = Self::purge_unit_of(&self.tasks[&task_id]);
        self.index_unit(unit);
    }

    /// Puts a unit in the purge index if all of it is finished.
    pub(super) fn index_unit(&mut self, unit: PurgeUnit) {
        if let Some(finished) = self.finished_unit(unit) {
            let mut set = self.purgeable.remove(&finished.queue).unwrap_or_default();
            set.insert((finished.finished_at_ms, unit));
            self.purgeable.insert(finished.queue, set);
        }
    }

    /// The retention in force for a queue.
    pub fn retention_ms(&self, queue: &str) -> u64 {
        self.queue_policy(queue).effective_retention_ms()
    }

    /// Finished units whose retention has passed by `now_ms`, oldest first per queue, at
    /// most `max_units` of them and stopping once they hold `max_tasks` tasks (a unit is
    /// never split, so the last may go past it). O(queues with finished units + expired ·
    /// log n): each queue's walk stops at its first unexpired unit.
    pub fn expired_units(&self, now_ms: u64, max_units: usize, max_tasks: usize) -> Vec<PurgeUnit> {
        let mut units = Vec::new();
        let mut tasks = 0usize;
        for (queue, set) in self.purgeable.iter() {
            let retention_ms = self.retention_ms(queue);
            for &(finished_at_ms, unit) in set.iter() {
                if units.len() >= max_units || tasks >= max_tasks {
                    return units;
                }
                if finished_at_ms.saturating_add(retention_ms) > now_ms {
                    break;
                }
                tasks += self.unit_tasks(unit).map_or(1, |t| t.len());
                units.push(unit);
            }
        }
        units
    }

    /// Whether `task_id` was given to a task that has since been purged. Task ids are dense
    /// (apply gives `next_task_id` only to a task it creates, and never reuses one), so an
    /// id below `next_task_id` that is not in the map was purged: no tombstone is kept.
    pub fn was_purged(&self, task_id: TaskId) -> bool {
        task_id >= 1 && task_id < self.next_task_id && !self.tasks.contains_key(&task_id)
    }

    /// Whether a workflow id was given out and is gone. Workflow ids are burned only by a
    /// workflow whose creation failed after validation (its id is then never seen by a
    /// client), so an absent id below `next_workflow_id` was, in practice, purged.
    pub fn workflow_was_purged(&self, workflow_id: u64) -> bool {
        workflow_id >= 1 && workflow_id < self.next_workflow_id && !self.workflows.contains_key(&workflow_id)
    }

    /// Applies a purge: each unit that is finished and past its queue's retention at the
    /// state's clock is removed whole; the others are skipped, never an error.
    pub(super) fn purge(&mut self, now_ms: u64, units: Vec<PurgeUnit>) -> Result<PurgeOutcome, StateError> {
        limits::validate_count("units", units.len(), limits::MAX_PURGES_PER_ENTRY)?;
        let mut outcome = PurgeOutcome {
            purged: Vec::new(),
            tasks_removed: 0,
        };
        for unit in units {
            let Some(finished) = self.finished_unit(unit) else {
                continue;
            };
            if finished
                .finished_at_ms
                .saturating_add(self.retention_ms(&finished.queue))
                > now_ms
            {
                continue;
            }
            let tasks = self.unit_tasks(unit).expect("a finished unit exists");
            remove_from(&mut self.purgeable, &finished.queue, &(finished.finished_at_ms, unit));
            outcome.tasks_removed += tasks.len() as u64;
            for task_id in tasks {
                self.remove_task(task_id);
            }
            if let PurgeUnit::Workflow(id) = unit {
                self.remove_workflow(id, crate::state::namespace::namespace_of(&finished.queue));
            }
            outcome.purged.push(unit);
        }
        Ok(outcome)
    }

    /// Removes a workflow whose tasks (all in `namespace`) are already gone.
    fn remove_workflow(&mut self, workflow_id: u64, namespace: &str) {
        let Some(workflow) = self.workflows.remove(&workflow_id) else {
            return;
        };
        if let Some(request_id) = &workflow.request_id {
            let key = (namespace.to_string(), request_id.clone());
            if self.workflow_by_request_id.get(&key) == Some(&workflow_id) {
                self.workflow_by_request_id.remove(&key);
            }
        }
        self.digest_workflow_out(&workflow);
    }

    /// Rebuilds the purge index from the tasks and workflows (snapshot restore). O(n).
    pub(super) fn rebuild_purge_index(&mut self) {
        self.purgeable = self.computed_purge_index();
    }

    /// The purge index as the primary data says it must be.
    fn computed_purge_index(&self) -> Map<String, Set<(u64, PurgeUnit)>> {
        let roots = self
            .tasks
            .values()
            .filter(|task| Self::purge_unit_of(task) == PurgeUnit::Task(task.id))
            .map(|task| PurgeUnit::Task(task.id));
        let workflows = self.workflows.keys().map(|id| PurgeUnit::Workflow(*id));
        let mut index: Map<String, Set<(u64, PurgeUnit)>> = Map::new();
        for unit in roots.chain(workflows) {
            if let Some(finished) = self.finished_unit(unit) {
                let mut set = index.remove(&finished.queue).unwrap_or_default();
                set.insert((finished.finished_at_ms, unit));
                index.insert(finished.queue, set);
            }
        }
        index
    }

    /// The purge index holds exactly the finished units, each under its home queue and
    /// finish time (both ways: nothing missing, nothing extra), and no empty set.
    pub(super) fn check_purge_index(&self) -> Result<(), String> {
        let computed = self.computed_purge_index();
        if computed != self.purgeable {
            return Err(format!(
                "the purge index {:?} differs from the finished units {computed:?}",
                self.purgeable
            ));
        }
        if self.purgeable.values().any(|set| set.is_empty()) {
            return Err("an empty set is left in the purge index".into());
        }
        Ok(())
    }
}
