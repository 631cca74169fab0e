//! [`SchedulerState::check_invariants`]: what must hold between the primary data and the
//! indexes. Used by tests, by snapshot restore, and per touched task in debug builds.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::collections::BTreeSet;

use super::SchedulerState;
use super::collections::Set;
use super::fnv1a_64;
use crate::state::AttemptOutcome;
use crate::state::task::Task;
use crate::state::task::TaskId;
use crate::state::task::TaskStatus;

impl SchedulerState {
    /// Checks every invariant. O(n).
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_counters()?;
        for task_id in self.tasks.keys() {
            self.check_task(*task_id)?;
        }
        let mut tokens = BTreeSet::new();
        for task in self.tasks.values() {
            for attempt in &task.attempts {
                if !tokens.insert(attempt.token) {
                    return Err(format!("token {} is used twice (task {})", attempt.token, task.id));
                }
            }
        }
        let indexed_by_status: usize = self.by_status.values().map(Set::len).sum();
        if indexed_by_status != self.tasks.len() {
            return Err(format!(
                "{indexed_by_status} tasks indexed by status, {} tasks exist",
                self.tasks.len()
            ));
        }
        let waiting = self.ready.values().map(Set::len).sum::<usize>() + self.delayed.len();
        if waiting != self.count_by_status(TaskStatus::Pending) {
            return Err(format!(
                "{waiting} tasks ready or delayed, {} pending",
                self.count_by_status(TaskStatus::Pending)
            ));
        }
        let running: usize = self.running_by_worker.values().map(|load| load.tasks.len()).sum();
        if running != self.count_by_status(TaskStatus::Running) {
            return Err(format!(
                "{running} tasks run on workers, {} are running",
                self.count_by_status(TaskStatus::Running)
            ));
        }
        self.check_queue_index()?;
        self.check_queue_status_counts()?;
        if self.ready.values().any(Set::is_empty)
            || self.by_status.values().any(Set::is_empty)
            || self.by_queue.values().any(Set::is_empty)
            || self.by_namespace.values().any(Set::is_empty)
            || self.running_by_worker.values().any(|load| load.tasks.is_empty())
        {
            return Err("an empty set is left in an index".into());
        }
        self.check_resources_in_use()?;
        self.check_request_ids()?;
        self.check_purge_index()?;
        self.check_digests()?;
        self.check_stored_bytes()?;
        for (name, schedule) in &self.schedules {
            if name != &schedule.name || schedule.runs.len() > crate::state::limits::MAX_SCHEDULE_RUNS {
                return Err(format!("schedule {name:?} is stored badly or keeps too many runs"));
            }
        }
        for (id, workflow) in &self.workflows {
            if *id != workflow.id || *id >= self.next_workflow_id {
                return Err(format!("workflow stored under {id} has id {}", workflow.id));
            }
            if let Some(key) = self.workflow_request_key(workflow)
                && self.workflow_by_request_id.get(&key) != Some(id)
            {
                return Err(format!("workflow {id}'s request id is not indexed to it"));
            }
            if let Some((key, task_id)) = workflow.tasks.iter().find(|(_, t)| !self.tasks.contains_key(t)) {
                return Err(format!(
                    "workflow {id} names task {task_id} ({key}), which does not exist"
                ));
            }
        }
        if self.workflow_by_request_id.len() != self.workflows.values().filter(|w| w.request_id.is_some()).count() {
            return Err("the workflow request id index does not match the workflows".into());
        }
        for (worker_id, worker) in &self.workers {
            if worker_id != &worker.id {
                return Err(format!("worker stored under {worker_id:?} has id {:?}", worker.id));
            }
        }
        Ok(())
    }

    /// Each worker's resources in use, summed anew from the running tasks, equal the sums
    /// the index keeps.
    fn check_resources_in_use(&self) -> Result<(), String> {
        let mut sums: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for task in self.tasks.values() {
            if let Some(attempt) = task.running_attempt() {
                let sum = sums.entry(attempt.worker_id.as_str()).or_default();
                sum.0 += u64::from(task.spec.resources.cpu_millis);
                sum.1 += u64::from(task.spec.resources.memory_mb);
            }
        }
        let kept: BTreeMap<&str, (u64, u64)> = self
            .running_by_worker
            .iter()
            .map(|(worker_id, load)| (worker_id.as_str(), (load.cpu_millis, load.memory_mb)))
            .collect();
        if kept != sums {
            return Err(format!(
                "resources in use per worker are {kept:?}, the running tasks claim {sums:?}"
            ));
        }
        Ok(())
    }

    /// The request id index holds exactly one entry per task that carries an id, and no two
    /// tasks carry the same id. In one sorted pass: a lookup per task would jump around
    /// the index and the tasks at random, which made restoring a million tasks seconds
    /// slower.
    fn check_request_ids(&self) -> Result<(), String> {
        let mut expected: Vec<(u64, TaskId)> = self
            .tasks
            .values()
            .filter_map(|task| {
                let request_id = task.spec.client_request_id.as_deref()?;
                Some((fnv1a_64(request_id.as_bytes()), task.id))
            })
            .collect();
        expected.sort_unstable();
        if !self.by_request_id.iter().eq(expected.iter()) {
            return Err("the request id index does not match the tasks' request ids".into());
        }
        // Equal ids hash equally, so only tasks in a run of one hash can share an id.
        for run in expected.chunk_by(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
            // (namespace, id, task): the same id in two namespaces is two keys.
            let mut ids: Vec<(&str, &str, TaskId)> = run
                .iter()
                .map(|(_, task_id)| {
                    let spec = &self.tasks[task_id].spec;
                    let request_id = spec.client_request_id.as_deref();
                    (spec.namespace(), request_id.unwrap_or_default(), *task_id)
                })
                .collect();
            ids.sort_unstable();
            if let Some(pair) = ids
                .windows(2)
                .find(|pair| pair[0].0 == pair[1].0 && pair[0].1 == pair[1].1)
            {
                return Err(format!(
                    "request id {:?} is used by tasks {} and {}",
                    pair[0].1, pair[0].2, pair[1].2
                ));
            }
        }
        Ok(())
    }

    fn check_counters(&self) -> Result<(), String> {
        if self.next_task_id == 0 {
            return Err("next_task_id is 0; ids start at 1".into());
        }
        if self.next_token == 0 {
            return Err("next_token is 0; tokens start at 1".into());
        }
        if self.tasks.contains_key(&0) {
            return Err("a task has id 0; ids start at 1".into());
        }
        if let Some(&(last_id, _)) = self.tasks.get_max()
            && last_id >= self.next_task_id
        {
            return Err(format!(
                "task {last_id} is not below next_task_id {}",
                self.next_task_id
            ));
        }
        Ok(())
    }

    /// The (queue, status) counts are those of the tasks.
    fn check_queue_status_counts(&self) -> Result<(), String> {
        let mut counted: BTreeMap<(&str, TaskStatus), u64> = BTreeMap::new();
        for task in self.tasks.values() {
            *counted.entry((task.spec.queue.as_str(), task.status)).or_insert(0) += 1;
        }
        let kept = self
            .by_queue_status
            .iter()
            .map(|((queue, status), count)| ((queue.as_str(), *status), *count));
        if !counted.into_iter().eq(kept) {
            return Err("the task counts per queue and status do not match the tasks".into());
        }
        Ok(())
    }

    /// Every task sits in the queue index once, under its own queue (`check_task` checks the
    /// "under its own queue" half), and creation times never go down as ids go up: a
    /// newest-first listing with a `since` stops at the first older task, which is only
    /// right if no later task is older (apply stamps tasks with its clock, which never goes
    /// back, and gives ids in order).
    fn check_queue_index(&self) -> Result<(), String> {
        let indexed_by_queue: usize = self.by_queue.values().map(Set::len).sum();
        if indexed_by_queue != self.tasks.len() {
            return Err(format!(
                "{indexed_by_queue} tasks indexed by queue, {} tasks exist",
                self.tasks.len()
            ));
        }
        let indexed_by_namespace: usize = self.by_namespace.values().map(Set::len).sum();
        if indexed_by_namespace != self.tasks.len() {
            return Err(format!(
                "{indexed_by_namespace} tasks indexed by namespace, {} tasks exist",
                self.tasks.len()
            ));
        }
        let mut live: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
        for task in self.tasks.values().filter(|task| task.status.is_live()) {
            *live.entry(task.spec.namespace()).or_insert(0) += 1;
        }
        if !live
            .iter()
            .map(|(n, c)| (*n, *c))
            .eq(self.live_by_namespace.iter().map(|(n, c)| (n.as_str(), *c)))
        {
            return Err("the live tasks per namespace do not match the tasks".into());
        }
        let mut previous: Option<&Task> = None;
        for task in self.tasks.values() {
            if let Some(before) = previous
                && before.created_at_ms > task.created_at_ms
            {
                return Err(format!(
                    "task {} was created at {} ms, before task {} at {} ms",
                    task.id, task.created_at_ms, before.id, before.created_at_ms
                ));
            }
            previous = Some(task);
        }
        Ok(())
    }

    /// The invariants of one task: its indexes, its attempts, its worker.
    pub(super) fn check_task(&self, task_id: TaskId) -> Result<(), String> {
        let task = self.tasks.get(&task_id).ok_or(format!("task {task_id} missing"))?;
        if task.id != task_id {
            return Err(format!("task stored under {task_id} has id {}", task.id));
        }
        for status in TaskStatus::ALL {
            let indexed = self.by_status.get(&status).is_some_and(|ids| ids.contains(&task_id));
            if indexed != (status == task.status) {
                return Err(format!(
                    "task {task_id} is {} but indexed as {status}: {indexed}",
                    task.status
                ));
            }
        }
        if !self
            .by_queue
            .get(&task.spec.queue)
            .is_some_and(|ids| ids.contains(&task_id))
            || !self
                .by_namespace
                .get(task.spec.namespace())
                .is_some_and(|ids| ids.contains(&task_id))
        {
            return Err(format!(
                "task {task_id} is not indexed under its queue {:?}",
                task.spec.queue
            ));
        }
        let pending = task.status == TaskStatus::Pending;
        let ready = self
            .ready
            .get(&task.spec.queue)
            .is_some_and(|keys| keys.contains(&(Reverse(task.spec.priority), task_id)));
        let delayed = self.delayed.contains(&(task.ready_at_ms, task_id));
        let due = task.ready_at_ms <= self.clock_ms;
        if ready != (pending && due) || delayed != (pending && !due) {
            return Err(format!(
                "task {task_id} is {} with ready={ready} delayed={delayed}",
                task.status
            ));
        }
        self.check_attempts(task_id)?;
        self.check_links(task_id)?;
        Ok(())
    }

    /// Workflow edges and shards: both directions recorded, and each status consistent with
    /// the tasks it waits for.
    fn check_links(&self, task_id: TaskId) -> Result<(), String> {
        let task = &self.tasks[&task_id];
        let links = &task.links;
        for id in links.parents.iter().chain(&links.children).chain(&links.shards) {
            if !self.tasks.contains_key(id) || *id == task_id {
                return Err(format!("task {task_id} links to task {id}, which is itself or missing"));
            }
        }
        if let Some(crate::state::TaskOrigin::Shard { parent, index, .. }) = &links.origin
            && self
                .tasks
                .get(parent)
                .is_none_or(|p| p.links.shards.get(*index as usize) != Some(&task_id))
        {
            return Err(format!("shard {task_id} is not listed by its parent {parent}"));
        }
        for shard in &links.shards {
            let points_back = matches!(
                &self.tasks[shard].links.origin,
                Some(crate::state::TaskOrigin::Shard { parent, .. }) if *parent == task_id
            );
            if !points_back {
                return Err(format!("task {task_id} lists shard {shard}, which is not its shard"));
            }
        }
        for parent in &links.parents {
            if !self.tasks[parent].links.children.contains(&task_id) {
                return Err(format!(
                    "task {task_id} waits for {parent}, which does not list it as a child"
                ));
            }
        }
        for child in &links.children {
            if !self.tasks[child].links.parents.contains(&task_id) {
                return Err(format!(
                    "task {task_id} lists child {child}, which does not wait for it"
                ));
            }
        }
        let parents_succeeded = links
            .parents
            .iter()
            .all(|p| self.tasks[p].status == TaskStatus::Succeeded);
        let shards_finished = links.shards.iter().all(|s| self.tasks[s].status.is_terminal());
        match task.status {
            TaskStatus::Waiting => {
                if !task.attempts.is_empty() {
                    return Err(format!("waiting task {task_id} has attempts"));
                }
                let waits_for_parents = !links.parents.is_empty()
                    && !parents_succeeded
                    && links.parents.iter().all(|p| {
                        let s = self.tasks[p].status;
                        s == TaskStatus::Succeeded || !s.is_terminal()
                    });
                let waits_for_shards = !links.shards.is_empty() && !shards_finished;
                if !(waits_for_parents || waits_for_shards) {
                    return Err(format!("task {task_id} is waiting for nothing"));
                }
            }
            TaskStatus::Pending | TaskStatus::Running | TaskStatus::Succeeded if !parents_succeeded => {
                return Err(format!(
                    "task {task_id} is {} before its parents succeeded",
                    task.status
                ));
            }
            TaskStatus::Succeeded
                if links
                    .shards
                    .iter()
                    .any(|s| self.tasks[s].status != TaskStatus::Succeeded) =>
            {
                return Err(format!("task {task_id} succeeded before all its shards did"));
            }
            _ => {}
        }
        Ok(())
    }

    fn check_attempts(&self, task_id: TaskId) -> Result<(), String> {
        let task = &self.tasks[&task_id];
        let running_attempt = task.running_attempt();
        if (task.status == TaskStatus::Running) != running_attempt.is_some() {
            return Err(format!(
                "task {task_id} is {} but has running attempt {running_attempt:?}",
                task.status
            ));
        }
        let mut previous_token = 0;
        for (i, attempt) in task.attempts.iter().enumerate() {
            if attempt.number as usize != i + 1 || attempt.token <= previous_token || attempt.token >= self.next_token {
                return Err(format!(
                    "task {task_id}: attempt {i} has number {} token {}",
                    attempt.number, attempt.token
                ));
            }
            let last = i + 1 == task.attempts.len();
            let runs = attempt.outcome == AttemptOutcome::Running;
            if runs && !(last && task.status == TaskStatus::Running) {
                return Err(format!(
                    "task {task_id} is {}: attempt {} still runs",
                    task.status, attempt.number
                ));
            }
            if runs != attempt.ended_at_ms.is_none() {
                return Err(format!(
                    "task {task_id}: attempt {} is {} with end time {:?}",
                    attempt.number,
                    attempt.outcome.as_str(),
                    attempt.ended_at_ms
                ));
            }
            previous_token = attempt.token;
        }
        // Handed-back attempts aside, a task never uses more attempts than it may, and a
        // pending task has one left.
        let used = task.attempts_used();
        let budget = task.spec.max_attempts;
        if used > budget || (task.status == TaskStatus::Pending && used >= budget) {
            return Err(format!(
                "task {task_id} is {} having used {used} of {budget} attempts",
                task.status
            ));
        }
        if let Some(attempt) = running_attempt {
            if !self.workers.contains_key(&attempt.worker_id) {
                return Err(format!("task {task_id} runs on unknown worker {:?}", attempt.worker_id));
            }
            let indexed = self
                .running_by_worker
                .get(&attempt.worker_id)
                .is_some_and(|load| load.tasks.contains(&task_id));
            if !indexed {
                return Err(format!(
                    "task {task_id} is not indexed under worker {:?}",
                    attempt.worker_id
                ));
            }
        }
        Ok(())
    }

    /// A task's request id finds it. (`check_invariants` checks the whole index at once.)
    /// A lookup finds the lowest id among tasks sharing a request id, so this also refuses
    /// a request id used twice.
    fn check_request_id_of(&self, task_id: TaskId) -> Result<(), String> {
        if let Some(request_id) = &self.tasks[&task_id].spec.client_request_id
            && self.task_by_request_id(self.tasks[&task_id].spec.namespace(), request_id) != Some(task_id)
        {
            return Err(format!(
                "task {task_id}'s request id {request_id:?} is not indexed to it"
            ));
        }
        Ok(())
    }

    pub(super) fn debug_check_task(&self, task_id: TaskId) {
        if cfg!(debug_assertions)
            && let Err(violation) = self
                .check_task(task_id)
                .and_then(|()| self.check_request_id_of(task_id))
                .and_then(|()| self.check_unit_indexed(task_id))
        {
            panic!("state invariant violated: {violation}");
        }
    }

    /// A task whose unit is finished finds the unit in the purge index, under its home queue
    /// and finish time. O(tasks of the unit).
    fn check_unit_indexed(&self, task_id: TaskId) -> Result<(), String> {
        let Some(task) = self.tasks.get(&task_id) else {
            return Ok(());
        };
        let unit = Self::purge_unit_of(task);
        if let Some(finished) = self.finished_unit(unit)
            && !self
                .purgeable
                .get(&finished.queue)
                .is_some_and(|set| set.contains(&(finished.finished_at_ms, unit)))
        {
            return Err(format!("finished {unit} of task {task_id} is not in the purge index"));
        }
        Ok(())
    }
}
