//! Read-only views of [`SchedulerState`] for the API and the dispatcher.

use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::Arc;

use super::ListFilter;
use super::ListOrder;
use super::MAX_LIST_SCANNED;
use super::SchedulerState;
use super::collections::Set;
use super::fnv1a_64;
use crate::state::QueuePolicy;
use crate::state::schedule::Schedule;
use crate::state::schedule::Workflow;
use crate::state::schedule::WorkflowId;
use crate::state::task::Resources;
use crate::state::task::Task;
use crate::state::task::TaskId;
use crate::state::task::TaskStatus;
use crate::state::worker::Worker;

impl SchedulerState {
    pub fn get(&self, task_id: TaskId) -> Option<&Task> {
        self.tasks.get(&task_id).map(Arc::as_ref)
    }

    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    pub fn count_by_status(&self, status: TaskStatus) -> usize {
        self.by_status.get(&status).map_or(0, Set::len)
    }

    /// The latest leader time any applied command carried.
    /// The id the next accepted task gets; every id below it was given to a task (ids are
    /// dense), which may since have been purged.
    pub fn next_task_id(&self) -> TaskId {
        self.next_task_id
    }

    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Up to `limit` tasks matching `filter` in its order, continuing past `cursor` (the
    /// last id of the previous page, 0 for the first page), and the cursor of the next page
    /// (None when this page is the last).
    pub fn list(&self, filter: &ListFilter, cursor: TaskId, limit: usize) -> (Vec<Task>, Option<TaskId>) {
        self.list_within(filter, cursor, limit, |_| true)
    }

    /// [`Self::list`], where `fits` is asked about each task before it joins the page and a
    /// task it refuses ends the page early (the caller's byte budget). The first task is
    /// taken whatever `fits` says, so that paging always advances. A page also ends after
    /// [`MAX_LIST_SCANNED`] candidates, with the last one examined as its cursor.
    pub fn list_within(
        &self,
        filter: &ListFilter,
        cursor: TaskId,
        limit: usize,
        mut fits: impl FnMut(&Task) -> bool,
    ) -> (Vec<Task>, Option<TaskId>) {
        let newest_first = filter.order == ListOrder::NewestFirst;
        let candidates = self
            .list_candidates(filter, cursor)
            .map(|id| &*self.tasks[&id])
            // Creation times grow with ids (check_invariants holds apply to it), so newest
            // first ends at the first task older than `since`.
            .take_while(|task| !newest_first || task.created_at_ms >= filter.since_ms);
        let mut page: Vec<Task> = Vec::new();
        let mut examined = None;
        for (scanned, task) in candidates.enumerate() {
            if scanned == MAX_LIST_SCANNED {
                // Every candidate up to the last examined is settled; go on after it.
                return (page, examined);
            }
            examined = Some(task.id);
            if !filter.matches(task) {
                continue;
            }
            if page.len() >= limit || (!fits(task) && !page.is_empty()) {
                let next = page.last().map(|task| task.id);
                return (page, next);
            }
            page.push(task.clone());
        }
        (page, None)
    }

    /// The ids a listing walks, past `cursor` in its order: from the smallest of the status,
    /// queue and namespace indexes it filters by (the other filters are checked per task),
    /// or every task when it filters by none.
    pub(super) fn list_candidates(&self, filter: &ListFilter, cursor: TaskId) -> Box<dyn Iterator<Item = TaskId> + '_> {
        let newest_first = filter.order == ListOrder::NewestFirst;
        let bounds = match (newest_first, cursor) {
            (true, 0) => (Bound::Unbounded, Bound::Unbounded),
            (true, _) => (Bound::Unbounded, Bound::Excluded(cursor)),
            (false, _) => (Bound::Excluded(cursor), Bound::Unbounded),
        };
        if let Some(request_id) = &filter.request_id {
            // A bucket of the request id index holds the tasks whose ids hash alike: a few.
            let hash = fnv1a_64(request_id.as_bytes());
            let bucket = self.by_request_id.range((hash, TaskId::MIN)..=(hash, TaskId::MAX));
            let mut ids: Vec<TaskId> = bucket
                .map(|&(_, id)| id)
                .filter(|id| (bounds.0, bounds.1).contains(id))
                .collect();
            if newest_first {
                ids.reverse();
            }
            return Box::new(ids.into_iter());
        }
        let filters: Vec<Option<&Set<TaskId>>> = [
            filter.status.map(|s| self.by_status.get(&s)),
            filter.queue.as_ref().map(|q| self.by_queue.get(q)),
            filter.namespace.as_ref().map(|n| self.by_namespace.get(n)),
        ]
        .into_iter()
        .flatten()
        .collect();
        if filters.is_empty() {
            let ids = self.tasks.range(bounds).map(|(id, _)| *id);
            return if newest_first {
                Box::new(ids.rev())
            } else {
                Box::new(ids)
            };
        }
        // A filter whose index has no entry matches nothing.
        let smallest = filters.into_iter().try_fold(None::<&Set<TaskId>>, |best, set| {
            let set = set?;
            Some(Some(match best {
                Some(best) if best.len() <= set.len() => best,
                _ => set,
            }))
        });
        let Some(Some(set)) = smallest else {
            return Box::new(std::iter::empty());
        };
        let ids = set.range(bounds).copied();
        if newest_first {
            Box::new(ids.rev())
        } else {
            Box::new(ids)
        }
    }

    /// Queues with pending tasks whose time has come, by name.
    pub fn ready_queues(&self) -> impl Iterator<Item = &str> {
        self.ready.keys().map(String::as_str)
    }

    /// How many tasks of each queue are in each status, by queue then status; statuses with
    /// none are left out. O(queues · statuses).
    pub fn queue_status_counts(&self) -> impl Iterator<Item = (&str, TaskStatus, u64)> {
        self.by_queue_status
            .iter()
            .map(|((queue, status), count)| (queue.as_str(), *status, *count))
    }

    /// How many pending tasks of `queue` are ready. O(log queues).
    pub fn ready_count(&self, queue: &str) -> usize {
        self.ready.get(queue).map_or(0, Set::len)
    }

    /// The task of `queue` dispatch starts next (the highest priority, then the oldest id),
    /// if any is ready.
    pub fn next_ready(&self, queue: &str) -> Option<&Task> {
        let (_, task_id) = self.ready.get(queue)?.get_min()?;
        self.get(*task_id)
    }

    /// Pending task ids of `queue` that are ready, in dispatch order.
    pub fn ready_in_queue(&self, queue: &str) -> impl Iterator<Item = TaskId> + '_ {
        self.ready
            .get(queue)
            .into_iter()
            .flat_map(|keys| keys.iter().map(|(_, id)| *id))
    }

    /// Delayed tasks that are due by `now_ms` (the state makes them ready with the next
    /// command that carries such a time), earliest first.
    pub fn due_delayed(&self, now_ms: u64) -> impl Iterator<Item = TaskId> + '_ {
        self.delayed.range(..=(now_ms, TaskId::MAX)).map(|(_, id)| *id)
    }

    /// The earliest time a delayed task becomes ready.
    pub fn next_ready_at_ms(&self) -> Option<u64> {
        self.delayed.get_min().map(|(at, _)| *at)
    }

    pub fn workers(&self) -> impl Iterator<Item = &Worker> {
        self.workers.values()
    }

    pub fn worker(&self, worker_id: &str) -> Option<&Worker> {
        self.workers.get(worker_id)
    }

    /// Tasks a worker runs now.
    pub fn running_on(&self, worker_id: &str) -> impl Iterator<Item = &Task> {
        self.running_by_worker
            .get(worker_id)
            .into_iter()
            .flat_map(|load| &load.tasks)
            .map(|id| &*self.tasks[id])
    }

    pub fn running_count(&self, worker_id: &str) -> usize {
        self.running_by_worker.get(worker_id).map_or(0, |load| load.tasks.len())
    }

    /// Resources a worker has not yet given to running tasks.
    pub fn free_resources(&self, worker_id: &str) -> Resources {
        let total = self.workers.get(worker_id).map(|w| w.resources).unwrap_or_default();
        total.saturating_sub(&self.resources_in_use(worker_id))
    }

    pub fn queue_policy(&self, queue: &str) -> QueuePolicy {
        self.queue_policies.get(queue).copied().unwrap_or_default()
    }

    pub fn queue_policies(&self) -> impl Iterator<Item = (&str, &QueuePolicy)> {
        self.queue_policies.iter().map(|(q, p)| (q.as_str(), p))
    }

    /// How many tasks run now in each queue that has any.
    pub fn running_per_queue(&self) -> std::collections::BTreeMap<&str, u32> {
        let mut counts = std::collections::BTreeMap::new();
        for task in self.running_tasks() {
            *counts.entry(task.spec.queue.as_str()).or_insert(0) += 1;
        }
        counts
    }

    /// Every running task, for the leader's timeout check.
    pub fn running_tasks(&self) -> impl Iterator<Item = &Task> {
        self.running_by_worker
            .values()
            .flat_map(|load| &load.tasks)
            .map(|id| &*self.tasks[id])
    }

    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.get(name)
    }

    /// Every schedule, by name.
    pub fn schedules(&self) -> impl Iterator<Item = &Schedule> {
        self.schedules.values()
    }

    pub fn workflow(&self, workflow_id: WorkflowId) -> Option<&Workflow> {
        self.workflows.get(&workflow_id).map(Arc::as_ref)
    }

    /// Up to `limit` workflows with ids above `after`, in id order.
    pub fn workflows(&self, after: WorkflowId, limit: usize) -> Vec<&Workflow> {
        self.workflows
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(_, w)| w.as_ref())
            .collect()
    }

    /// A workflow's overall status, from its tasks: succeeded when all did; failed once every
    /// task finished and one did not succeed; running while any task runs or a task
    /// finished; pending before that.
    pub fn workflow_status(&self, workflow: &Workflow) -> WorkflowStatus {
        let statuses: Vec<TaskStatus> = workflow
            .tasks
            .iter()
            .filter_map(|(_, id)| self.tasks.get(id).map(|t| t.status))
            .collect();
        if statuses.iter().all(|s| *s == TaskStatus::Succeeded) {
            WorkflowStatus::Succeeded
        } else if statuses.iter().all(|s| s.is_terminal()) {
            WorkflowStatus::Failed
        } else if statuses.iter().any(|s| *s == TaskStatus::Running || s.is_terminal()) {
            WorkflowStatus::Running
        } else {
            WorkflowStatus::Pending
        }
    }
}

/// A workflow's overall state, derived from its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl WorkflowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Pending => "pending",
            WorkflowStatus::Running => "running",
            WorkflowStatus::Succeeded => "succeeded",
            WorkflowStatus::Failed => "failed",
        }
    }
}
