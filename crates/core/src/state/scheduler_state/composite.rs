//! Schedules, workflows and broadcast/sharded runs: the commands that create tasks on a
//! calendar, after other tasks, or one per worker, and how a finished task moves the tasks
//! that wait for it.

use super::SchedulerState;
use super::finish;
use crate::state::CancelOutcome;
use crate::state::FireOutcome;
use crate::state::StateError;
use crate::state::StoppedAttempt;
use crate::state::SubmitOutcome;
use crate::state::WorkflowOutcome;
use crate::state::limits;
use crate::state::schedule::Occurrence;
use crate::state::schedule::OccurrenceAction;
use crate::state::schedule::OverlapPolicy;
use crate::state::schedule::Recurrence;
use crate::state::schedule::RunOutcome;
use crate::state::schedule::Schedule;
use crate::state::schedule::ScheduleRun;
use crate::state::schedule::ScheduleSpec;
use crate::state::schedule::Workflow;
use crate::state::schedule::WorkflowSpec;
use crate::state::task::TaskId;
use crate::state::task::TaskLinks;
use crate::state::task::TaskOrigin;
use crate::state::task::TaskSpec;
use crate::state::task::TaskStatus;

impl SchedulerState {
    pub(super) fn create_schedule(
        &mut self,
        now_ms: u64,
        name: String,
        spec: ScheduleSpec,
    ) -> Result<bool, StateError> {
        limits::validate_schedule(&name, &spec)?;
        if let Some(existing) = self.schedules.get(&name) {
            if existing.spec == spec {
                return Ok(false);
            }
            return Err(StateError::ScheduleExists(name));
        }
        if self.schedules.len() >= limits::MAX_SCHEDULES {
            return Err(StateError::InvalidArgument {
                field: "schedule".into(),
                problem: format!("the cluster already has {} schedules", limits::MAX_SCHEDULES),
            });
        }
        let schedule = Schedule {
            name: name.clone(),
            anchor_ms: anchor_of(&spec, now_ms),
            spec,
            paused: false,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            revision: 1,
            cursor_ms: now_ms,
            last_task: None,
            manual_runs: 0,
            fired_count: 0,
            skipped_count: 0,
            runs: Vec::new(),
        };
        self.schedules.insert(name, schedule);
        Ok(true)
    }

    pub(super) fn update_schedule(&mut self, now_ms: u64, name: &str, spec: ScheduleSpec) -> Result<(), StateError> {
        limits::validate_schedule(name, &spec)?;
        let schedule = self.schedule_mut(name)?;
        if schedule.spec == spec {
            return Ok(());
        }
        schedule.anchor_ms = anchor_of(&spec, now_ms);
        schedule.spec = spec;
        // The new definition counts from now: what the old one would have fired is not
        // fired under the new one.
        schedule.cursor_ms = schedule.cursor_ms.max(now_ms);
        schedule.revision += 1;
        schedule.updated_at_ms = now_ms;
        Ok(())
    }

    pub(super) fn pause_schedule(&mut self, now_ms: u64, name: &str, paused: bool) -> Result<(), StateError> {
        let schedule = self.schedule_mut(name)?;
        if schedule.paused == paused {
            return Ok(());
        }
        schedule.paused = paused;
        if !paused {
            // Occurrences while paused were not wanted; resuming counts from now.
            schedule.cursor_ms = schedule.cursor_ms.max(now_ms);
        }
        schedule.revision += 1;
        schedule.updated_at_ms = now_ms;
        Ok(())
    }

    pub(super) fn delete_schedule(&mut self, name: &str) -> Result<(), StateError> {
        self.schedules
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| StateError::ScheduleNotFound(name.to_string()))
    }

    fn schedule_mut(&mut self, name: &str) -> Result<&mut Schedule, StateError> {
        self.schedules
            .get_mut(name)
            .ok_or_else(|| StateError::ScheduleNotFound(name.to_string()))
    }

    /// Records the leader's decisions for due occurrences. Each occurrence at or before the
    /// cursor is refused (its key is spent); each accepted one moves the cursor to it.
    pub(super) fn fire_schedule(
        &mut self,
        now_ms: u64,
        name: &str,
        revision: u64,
        occurrences: Vec<Occurrence>,
    ) -> Result<FireOutcome, StateError> {
        let not_fireable = |why: String| StateError::ScheduleNotFireable {
            schedule: name.to_string(),
            why,
        };
        let schedule = self
            .schedules
            .get(name)
            .ok_or_else(|| StateError::ScheduleNotFound(name.to_string()))?;
        if schedule.paused {
            return Err(not_fireable("it is paused".into()));
        }
        if schedule.revision != revision {
            return Err(not_fireable(format!(
                "it changed (revision {} now, the firing was planned on {revision})",
                schedule.revision
            )));
        }
        if occurrences.is_empty() || occurrences.len() > limits::MAX_OCCURRENCES_PER_FIRING {
            return Err(StateError::InvalidArgument {
                field: "occurrences".into(),
                problem: format!(
                    "{} in one firing, must be from 1 to {}",
                    occurrences.len(),
                    limits::MAX_OCCURRENCES_PER_FIRING
                ),
            });
        }
        let mut outcome = FireOutcome {
            results: Vec::with_capacity(occurrences.len()),
            stopped: Vec::new(),
        };
        // A firing is planned as one unbroken run of occurrences from the cursor. After a
        // refused one, applying a later one would move the cursor over occurrences nobody
        // decided: a deposed leader's firing, planned from the same cursor and committed
        // first, once made a new leader's skip refused and its fire applied, so two
        // occurrences were neither fired nor skipped. The rest is planned again.
        let mut refused_at = None;
        for occurrence in occurrences {
            let at = occurrence.scheduled_ms;
            let result = match refused_at {
                Some(first) => Err(not_fireable(format!(
                    "its occurrence at {first} was refused, so the later ones are planned again from the cursor"
                ))),
                None => self.decide_occurrence(now_ms, name, occurrence, &mut outcome.stopped),
            };
            if result.is_err() && refused_at.is_none() {
                refused_at = Some(at);
            }
            outcome.results.push(result);
        }
        Ok(outcome)
    }

    fn decide_occurrence(
        &mut self,
        now_ms: u64,
        name: &str,
        occurrence: Occurrence,
        stopped: &mut Vec<StoppedAttempt>,
    ) -> Result<RunOutcome, StateError> {
        let schedule = &self.schedules[name];
        let at = occurrence.scheduled_ms;
        if at <= schedule.cursor_ms {
            return Err(StateError::AlreadyFired {
                schedule: name.to_string(),
                scheduled_ms: at,
                cursor_ms: schedule.cursor_ms,
            });
        }
        let bad = |problem: String| StateError::InvalidArgument {
            field: "occurrence".into(),
            problem,
        };
        if at > now_ms {
            return Err(bad(format!("{at} is in the future (now {now_ms})")));
        }
        let spec = &schedule.spec;
        if at < spec.start_ms || (spec.end_ms != 0 && at > spec.end_ms) {
            return Err(bad(format!(
                "{at} is outside the schedule's bounds {}..{}",
                spec.start_ms, spec.end_ms
            )));
        }
        let run = match occurrence.action {
            OccurrenceAction::Skip {
                first_ms,
                count,
                reason,
            } => {
                limits::validate_reason(&reason)?;
                if first_ms > at || first_ms <= schedule.cursor_ms || count == 0 {
                    return Err(bad(format!(
                        "skip of {count} from {first_ms} to {at} does not follow the cursor {}",
                        schedule.cursor_ms
                    )));
                }
                RunOutcome::Skipped {
                    first_ms,
                    count,
                    reason,
                }
            }
            OccurrenceAction::Fire => {
                let previous = schedule
                    .last_task
                    .and_then(|id| self.tasks.get(&id))
                    .filter(|t| !t.status.is_terminal())
                    .map(|t| (t.id, t.status));
                let overlap = spec.overlap;
                let template = spec.template.clone();
                match (previous, overlap) {
                    (Some((task_id, status)), OverlapPolicy::Forbid) => RunOutcome::Skipped {
                        first_ms: at,
                        count: 1,
                        reason: format!("overlap: the previous run (task {task_id}) is still {status}"),
                    },
                    (previous, _) => {
                        let mut replaced = None;
                        if let (Some((task_id, _)), OverlapPolicy::Replace) = (previous, overlap) {
                            let reason = format!("replaced by the run of schedule {name} scheduled at {at}");
                            if let Ok(CancelOutcome { stopped: stop, .. }) = self.cancel(now_ms, task_id, reason) {
                                stopped.extend(stop.map(|(worker_id, token)| StoppedAttempt {
                                    task_id,
                                    worker_id,
                                    token,
                                }));
                            }
                            replaced = Some(task_id);
                        }
                        let origin = TaskOrigin::Schedule {
                            schedule: name.to_string(),
                            scheduled_ms: at,
                        };
                        match self.create_task_from(now_ms, template, origin) {
                            Ok(task_id) => RunOutcome::Fired { task_id, replaced },
                            Err(e) => RunOutcome::Skipped {
                                first_ms: at,
                                count: 1,
                                reason: format!("the task could not be created: {e}"),
                            },
                        }
                    }
                }
            }
        };
        self.record_run(name, at, now_ms, run.clone());
        let schedule = self.schedules.get_mut(name).expect("checked above");
        schedule.cursor_ms = at;
        Ok(run)
    }

    /// A manual run: fires now whatever the overlap policy, paused or not.
    pub(super) fn trigger_schedule(&mut self, now_ms: u64, name: &str) -> Result<FireOutcome, StateError> {
        let schedule = self.schedule_mut(name)?;
        schedule.manual_runs += 1;
        let origin = TaskOrigin::Trigger {
            schedule: name.to_string(),
            number: schedule.manual_runs,
        };
        let template = schedule.spec.template.clone();
        let result = match self.create_task_from(now_ms, template, origin) {
            Ok(task_id) => {
                let run = RunOutcome::Triggered { task_id };
                self.record_run(name, now_ms, now_ms, run.clone());
                Ok(run)
            }
            Err(e) => {
                self.schedule_mut(name)?.manual_runs -= 1;
                Err(e)
            }
        };
        Ok(FireOutcome {
            results: vec![result],
            stopped: Vec::new(),
        })
    }

    fn create_task_from(&mut self, now_ms: u64, template: TaskSpec, origin: TaskOrigin) -> Result<TaskId, StateError> {
        let links = TaskLinks {
            origin: Some(origin),
            ..TaskLinks::default()
        };
        self.create_task(now_ms, template, links, TaskStatus::Pending)
    }

    fn record_run(&mut self, name: &str, scheduled_ms: u64, now_ms: u64, outcome: RunOutcome) {
        let schedule = self
            .schedules
            .get_mut(name)
            .expect("recording a run of a known schedule");
        match &outcome {
            RunOutcome::Fired { task_id, .. } | RunOutcome::Triggered { task_id } => {
                schedule.last_task = Some(*task_id);
                schedule.fired_count += 1;
            }
            RunOutcome::Skipped { count, .. } => schedule.skipped_count += count,
        }
        schedule.runs.push(ScheduleRun {
            scheduled_ms,
            decided_at_ms: now_ms,
            outcome,
        });
        if schedule.runs.len() > limits::MAX_SCHEDULE_RUNS {
            let excess = schedule.runs.len() - limits::MAX_SCHEDULE_RUNS;
            schedule.runs.drain(..excess);
        }
    }

    pub(super) fn submit_workflow(
        &mut self,
        now_ms: u64,
        workflow: WorkflowSpec,
    ) -> Result<WorkflowOutcome, StateError> {
        limits::validate_workflow(&workflow)?;
        let namespace = workflow.tasks[0].spec.namespace().to_string();
        if let Some(request_id) = &workflow.request_id
            && let Some(&workflow_id) = self
                .workflow_by_request_id
                .get(&(namespace.clone(), request_id.clone()))
        {
            return Ok(WorkflowOutcome {
                workflow_id,
                created: false,
            });
        }
        let first_id = self.next_task_id;
        let count = workflow.tasks.len() as u64;
        if first_id.checked_add(count).is_none() {
            return Err(StateError::InvalidArgument {
                field: "tasks".into(),
                problem: "the task id space is exhausted".into(),
            });
        }
        let workflow_id = self.next_workflow_id;
        self.next_workflow_id += 1;
        let id_of = |key: &str| -> TaskId {
            let position = workflow
                .tasks
                .iter()
                .position(|t| t.key == key)
                .expect("validated edge");
            first_id + position as u64
        };
        let mut children: Vec<Vec<TaskId>> = vec![Vec::new(); workflow.tasks.len()];
        for (i, task) in workflow.tasks.iter().enumerate() {
            for parent in &task.after {
                let p = (id_of(parent) - first_id) as usize;
                children[p].push(first_id + i as u64);
            }
        }
        let mut record = Workflow {
            id: workflow_id,
            name: workflow.name.clone(),
            request_id: workflow.request_id.clone(),
            created_at_ms: now_ms,
            tasks: Vec::with_capacity(workflow.tasks.len()),
        };
        let parents: Vec<Vec<TaskId>> = workflow
            .tasks
            .iter()
            .map(|t| t.after.iter().map(|p| id_of(p)).collect())
            .collect();
        for ((task, parents), children) in workflow.tasks.into_iter().zip(parents).zip(children) {
            let status = if parents.is_empty() {
                TaskStatus::Pending
            } else {
                TaskStatus::Waiting
            };
            let links = TaskLinks {
                origin: Some(TaskOrigin::Workflow {
                    workflow_id,
                    key: task.key.clone(),
                }),
                parents,
                children,
                shards: Vec::new(),
            };
            let task_id = self.create_task(now_ms, task.spec, links, status)?;
            record.tasks.push((task.key, task_id));
        }
        for (_, task_id) in &record.tasks {
            self.debug_check_task(*task_id);
        }
        if let Some(request_id) = &record.request_id {
            self.workflow_by_request_id
                .insert((namespace, request_id.clone()), workflow_id);
        }
        self.digest_workflow_in(&record);
        self.workflows.insert(workflow_id, std::sync::Arc::new(record));
        Ok(WorkflowOutcome {
            workflow_id,
            created: true,
        })
    }

    pub(super) fn submit_shards(
        &mut self,
        now_ms: u64,
        spec: TaskSpec,
        pins: Vec<Option<String>>,
    ) -> Result<SubmitOutcome, StateError> {
        limits::validate_spec(&spec)?;
        limits::validate_shard_count(pins.len())?;
        if let Some(request_id) = &spec.client_request_id
            && let Some(task_id) = self.task_by_request_id(spec.namespace(), request_id)
        {
            if !self.tasks[&task_id].spec.same_submission(&spec) {
                return Err(StateError::RequestIdConflict {
                    request_id: request_id.clone(),
                    task_id,
                });
            }
            return Ok(SubmitOutcome {
                task_id,
                created: false,
            });
        }
        let mut shard_specs = Vec::with_capacity(pins.len());
        for pin in &pins {
            let mut shard = spec.clone();
            shard.client_request_id = None;
            if let Some(worker_id) = pin {
                let worker = self
                    .workers
                    .get(worker_id)
                    .ok_or_else(|| StateError::WorkerNotFound(worker_id.clone()))?;
                if worker.namespace() != spec.namespace() {
                    return Err(StateError::InvalidArgument {
                        field: "shards".into(),
                        problem: format!(
                            "worker {} is in namespace {}, the task in {}: a task runs only on its namespace's workers",
                            limits::shown(worker_id),
                            limits::shown(worker.namespace()),
                            limits::shown(spec.namespace())
                        ),
                    });
                }
                shard
                    .constraints
                    .insert(limits::PIN_LABEL.to_string(), worker_id.clone());
            }
            limits::validate_spec(&shard)?;
            shard_specs.push(shard);
        }
        let parent = self.next_task_id;
        let total = pins.len() as u32;
        if parent.checked_add(u64::from(total) + 1).is_none() {
            return Err(StateError::InvalidArgument {
                field: "tasks".into(),
                problem: "the task id space is exhausted".into(),
            });
        }
        let links = TaskLinks {
            shards: (1..=u64::from(total)).map(|i| parent + i).collect(),
            ..TaskLinks::default()
        };
        self.create_task(now_ms, spec, links, TaskStatus::Waiting)?;
        for (index, shard) in shard_specs.into_iter().enumerate() {
            let links = TaskLinks {
                origin: Some(TaskOrigin::Shard {
                    parent,
                    index: index as u32,
                    total,
                }),
                ..TaskLinks::default()
            };
            self.create_task(now_ms, shard, links, TaskStatus::Pending)?;
        }
        self.debug_check_task(parent);
        Ok(SubmitOutcome {
            task_id: parent,
            created: true,
        })
    }

    /// Tasks just finished: release or skip their workflow children, and finish a shard
    /// parent when its last shard finished. A skipped child finishes in turn, so this walks
    /// down a workflow: with an explicit stack, not recursion, because a chain may be 1000
    /// tasks deep (`MAX_WORKFLOW_TASKS`) and a stack overflow would abort every replica at
    /// the same log index, and again on every replay. The walk is depth-first in child order,
    /// exactly the order the former recursion took, so a skip reason names the same parent.
    pub(super) fn on_finished(&mut self, task_id: TaskId) {
        let mut stack = vec![self.finished_frame(task_id)];
        while let Some(frame) = stack.last_mut() {
            let Some(&child) = frame.children.get(frame.next) else {
                let done = stack.pop().expect("looked at above");
                if let Some(parent) = self.finish_shard_parent(done.origin) {
                    stack.push(self.finished_frame(parent));
                }
                continue;
            };
            frame.next += 1;
            let (parent_id, parent_status) = (frame.task_id, frame.status);
            if self.release_or_skip(child, parent_id, parent_status) {
                stack.push(self.finished_frame(child));
            }
        }
    }

    fn finished_frame(&self, task_id: TaskId) -> FinishedFrame {
        let task = &self.tasks[&task_id];
        FinishedFrame {
            task_id,
            status: task.status,
            children: task.links.children.clone(),
            next: 0,
            origin: task.links.origin.clone(),
        }
    }

    /// Moves a waiting child of a finished task: to pending once all its parents succeeded,
    /// to skipped when this one did not. Returns whether the child is now finished.
    fn release_or_skip(&mut self, child: TaskId, parent: TaskId, parent_status: TaskStatus) -> bool {
        let now_ms = self.clock_ms;
        if self.tasks[&child].status != TaskStatus::Waiting {
            return false;
        }
        if parent_status != TaskStatus::Succeeded {
            let reason = format!("skipped: parent task {parent} {parent_status}");
            return self.change_task(child, |t| finish(t, TaskStatus::Skipped, now_ms, Some(reason)));
        }
        let all_succeeded = self.tasks[&child]
            .links
            .parents
            .iter()
            .all(|p| self.tasks[p].status == TaskStatus::Succeeded);
        if all_succeeded {
            self.change_task(child, |t| {
                t.status = TaskStatus::Pending;
                t.ready_at_ms = t.ready_at_ms.max(now_ms);
                t.updated_at_ms = now_ms;
            });
        }
        false
    }

    /// Finishes a waiting shard parent once all its shards are finished. Returns the parent
    /// when it finished just now.
    fn finish_shard_parent(&mut self, origin: Option<TaskOrigin>) -> Option<TaskId> {
        let now_ms = self.clock_ms;
        let Some(TaskOrigin::Shard { parent, .. }) = origin else {
            return None;
        };
        if self.tasks.get(&parent).is_none_or(|p| p.status != TaskStatus::Waiting) {
            return None;
        }
        let shards = self.tasks[&parent].links.shards.clone();
        if !shards.iter().all(|s| self.tasks[s].status.is_terminal()) {
            return None;
        }
        let not_succeeded: Vec<String> = shards
            .iter()
            .enumerate()
            .filter(|(_, s)| self.tasks[*s].status != TaskStatus::Succeeded)
            .map(|(i, s)| format!("shard {i} (task {s}) {}", self.tasks[s].status))
            .collect();
        let total = shards.len();
        let finished = self.change_task(parent, |t| {
            if not_succeeded.is_empty() {
                finish(t, TaskStatus::Succeeded, now_ms, None);
            } else {
                let mut reason = format!("{} of {total} shards did not succeed: ", not_succeeded.len());
                reason += &not_succeeded.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
                finish(t, TaskStatus::Failed, now_ms, Some(reason));
            }
        });
        finished.then_some(parent)
    }
}

/// One finished task whose children `on_finished` is walking: `next` is the first child
/// not yet looked at.
struct FinishedFrame {
    task_id: TaskId,
    status: TaskStatus,
    children: Vec<TaskId>,
    next: usize,
    origin: Option<TaskOrigin>,
}

/// Where a fixed interval counts from: the start bound, or now.
fn anchor_of(spec: &ScheduleSpec, now_ms: u64) -> u64 {
    match (&spec.recurrence, spec.start_ms) {
        (Recurrence::Every { .. }, start) if start > 0 => start,
        _ => now_ms,
    }
}
