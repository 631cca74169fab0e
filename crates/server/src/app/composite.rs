//! Schedules, workflows and broadcast runs in [`App`]: validate (the cron expression and
//! time zone too, which apply never evaluates), stamp the time, propose, read.

use super::App;
use super::AppError;
use super::Consistency;
use super::MAX_PAGE_SIZE;
use super::now_ms;
use crate::hub::Instruction;
use crate::quota::Cost;
use crate::recurrence;
use raftsched_core::state::Command;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::RunOutcome;
use raftsched_core::state::Schedule;
use raftsched_core::state::ScheduleSpec;
use raftsched_core::state::StateError;
use raftsched_core::state::StoppedAttempt;
use raftsched_core::state::Task;
use raftsched_core::state::TaskStatus;
use raftsched_core::state::Workflow;
use raftsched_core::state::WorkflowId;
use raftsched_core::state::WorkflowSpec;
use raftsched_core::state::WorkflowStatus;
use raftsched_core::state::estimated_spec_bytes;
use raftsched_core::state::limits;
use raftsched_core::state::namespace;

/// Next fire times `schedule get` shows.
const UPCOMING_SHOWN: usize = 5;

/// A schedule as the API shows it.
#[derive(Debug, Clone)]
pub struct ScheduleView {
    pub schedule: Schedule,
    /// Computed by this node from its clock.
    pub next_fire_ms: Vec<u64>,
    /// The state now of each run's task, in the order of `schedule.runs` (None: no task).
    pub run_task_status: Vec<Option<TaskStatus>>,
}

/// A workflow as the API shows it: its record and status, and a page of its tasks.
#[derive(Debug, Clone)]
pub struct WorkflowView {
    pub workflow: Workflow,
    /// Its tasks' namespace.
    pub namespace: String,
    pub status: WorkflowStatus,
    /// The tasks from `workflow.tasks[start..]` that fit the caller's byte budget.
    pub tasks: Vec<(String, Task)>,
    /// Where the next page of tasks starts in `workflow.tasks`; None when `tasks` holds the
    /// rest.
    pub next_task: Option<usize>,
}

impl App {
    pub async fn create_schedule(&self, name: String, spec: ScheduleSpec) -> Result<(ScheduleView, bool), AppError> {
        check_schedule(&name, &spec)?;
        let command = Command::CreateSchedule {
            now_ms: now_ms(),
            name: name.clone(),
            spec,
        };
        let CommandResponse::ScheduleCreated(result) = self.write(command).await? else {
            return Err(AppError::Internal(
                "create schedule answered with another response".into(),
            ));
        };
        let created = result?;
        self.hub.wake_dispatcher();
        Ok((self.read_schedule(&name)?, created))
    }

    pub async fn update_schedule(&self, name: String, spec: ScheduleSpec) -> Result<ScheduleView, AppError> {
        // Before the lookup: a not-found answer echoes the name.
        check_schedule(&name, &spec)?;
        let command = Command::UpdateSchedule {
            now_ms: now_ms(),
            name: name.clone(),
            spec,
        };
        self.change_schedule(command).await?;
        self.read_schedule(&name)
    }

    pub async fn pause_schedule(&self, name: String, paused: bool) -> Result<ScheduleView, AppError> {
        limits::validate_schedule_name(&name)?;
        let command = Command::PauseSchedule {
            now_ms: now_ms(),
            name: name.clone(),
            paused,
        };
        self.change_schedule(command).await?;
        self.read_schedule(&name)
    }

    pub async fn delete_schedule(&self, name: String) -> Result<(), AppError> {
        limits::validate_schedule_name(&name)?;
        self.change_schedule(Command::DeleteSchedule { now_ms: now_ms(), name })
            .await
    }

    async fn change_schedule(&self, command: Command) -> Result<(), AppError> {
        let CommandResponse::ScheduleChanged(result) = self.write(command).await? else {
            return Err(AppError::Internal(
                "schedule change answered with another response".into(),
            ));
        };
        result?;
        self.hub.wake_dispatcher();
        Ok(())
    }

    /// A manual run now; returns its task.
    pub async fn trigger_schedule(&self, name: String) -> Result<Task, AppError> {
        limits::validate_schedule_name(&name)?;
        let template_bytes = self
            .state
            .read()
            .scheduler
            .schedule(&name)
            .map_or(0, |schedule| estimated_spec_bytes(&schedule.spec.template));
        let cost = Cost {
            tasks: 1,
            bytes: template_bytes,
        };
        let _reservation = self.admit_in(&[(namespace::namespace_of(&name), 1)], cost)?;
        let command = Command::TriggerSchedule { now_ms: now_ms(), name };
        let CommandResponse::ScheduleFired(result) = self.write(command).await? else {
            return Err(AppError::Internal("trigger answered with another response".into()));
        };
        let outcome = result?;
        self.hub.wake_dispatcher();
        match outcome.results.into_iter().next() {
            Some(Ok(RunOutcome::Triggered { task_id })) => self.read_task(task_id),
            Some(Err(e)) => Err(e.into()),
            other => Err(AppError::Internal(format!("trigger recorded {other:?}"))),
        }
    }

    pub async fn get_schedule(&self, name: &str, consistency: Consistency) -> Result<ScheduleView, AppError> {
        limits::validate_schedule_name(name)?;
        self.ensure_consistency(consistency).await?;
        self.read_schedule(name)
    }

    /// Up to `page_size` schedules named after `after`, without their runs. `fits` is the
    /// caller's byte budget: a view it refuses ends the page early (the first is always
    /// taken, so that paging advances).
    pub async fn list_schedules(
        &self,
        in_namespace: &str,
        after: &str,
        page_size: usize,
        consistency: Consistency,
        mut fits: impl FnMut(&ScheduleView) -> bool,
    ) -> Result<(Vec<ScheduleView>, Option<String>), AppError> {
        self.ensure_consistency(consistency).await?;
        let page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        let state = self.state.read();
        let matching = state
            .scheduler
            .schedules()
            .filter(|s| s.name.as_str() > after && namespace::namespace_of(&s.name) == in_namespace);
        let mut page: Vec<ScheduleView> = Vec::new();
        let mut more = false;
        for schedule in matching {
            let mut schedule = schedule.clone();
            schedule.runs.clear();
            let view = ScheduleView {
                next_fire_ms: upcoming(&schedule, 1),
                schedule,
                run_task_status: Vec::new(),
            };
            if page.len() >= page_size || (!fits(&view) && !page.is_empty()) {
                more = true;
                break;
            }
            page.push(view);
        }
        let next = if more {
            page.last().map(|last| last.schedule.name.clone())
        } else {
            None
        };
        Ok((page, next))
    }

    fn read_schedule(&self, name: &str) -> Result<ScheduleView, AppError> {
        let state = self.state.read();
        let schedule = state
            .scheduler
            .schedule(name)
            .cloned()
            .ok_or_else(|| StateError::ScheduleNotFound(name.to_string()))?;
        let run_task_status = schedule
            .runs
            .iter()
            .map(|run| match run.outcome {
                RunOutcome::Fired { task_id, .. } | RunOutcome::Triggered { task_id } => {
                    state.scheduler.get(task_id).map(|t| t.status)
                }
                RunOutcome::Skipped { .. } => None,
            })
            .collect();
        Ok(ScheduleView {
            next_fire_ms: upcoming(&schedule, UPCOMING_SHOWN),
            schedule,
            run_task_status,
        })
    }

    /// Submits a workflow; the view holds the tasks that fit `fits` (see [`App::get_workflow`]).
    pub async fn submit_workflow(
        &self,
        workflow: WorkflowSpec,
        fits: impl FnMut(&str, &Task) -> bool,
    ) -> Result<(WorkflowView, bool), AppError> {
        limits::validate_workflow(&workflow)?;
        // One time for the check and the command: apply checks run_at_ms against it again.
        let now_ms = now_ms();
        for task in &workflow.tasks {
            limits::validate_run_at(&task.spec, now_ms).map_err(|e| in_workflow_task(&task.key, e))?;
        }
        let cost = Cost {
            tasks: workflow.tasks.len() as u64,
            bytes: workflow.tasks.iter().map(|task| estimated_spec_bytes(&task.spec)).sum(),
        };
        let namespace = workflow.tasks[0].spec.namespace().to_string();
        let _reservation = self.admit_in(&[(&namespace, cost.tasks)], cost)?;
        let command = Command::SubmitWorkflow { now_ms, workflow };
        let CommandResponse::WorkflowSubmitted(result) = self.write(command).await? else {
            return Err(AppError::Internal("workflow answered with another response".into()));
        };
        let outcome = result?;
        self.hub.wake_dispatcher();
        Ok((self.read_workflow(outcome.workflow_id, 0, fits)?, outcome.created))
    }

    /// A workflow with its tasks from position `from` on, as many as `fits` (the caller's
    /// byte budget, asked about each task in turn) admits; the first is always taken, so
    /// that paging advances. A workflow holds up to 1000 tasks of up to 64 KiB payload each:
    /// 64 MiB, far more than one response carries.
    pub async fn get_workflow(
        &self,
        workflow_id: WorkflowId,
        from: usize,
        consistency: Consistency,
        fits: impl FnMut(&str, &Task) -> bool,
    ) -> Result<WorkflowView, AppError> {
        self.ensure_consistency(consistency).await?;
        self.read_workflow(workflow_id, from, fits)
    }

    fn read_workflow(
        &self,
        workflow_id: WorkflowId,
        from: usize,
        mut fits: impl FnMut(&str, &Task) -> bool,
    ) -> Result<WorkflowView, AppError> {
        let state = self.state.read();
        let workflow = state.scheduler.workflow(workflow_id).ok_or_else(|| {
            if state.scheduler.workflow_was_purged(workflow_id) {
                StateError::WorkflowExpired(workflow_id)
            } else {
                StateError::WorkflowNotFound(workflow_id)
            }
        })?;
        let mut tasks: Vec<(String, Task)> = Vec::new();
        let mut next_task = None;
        for (position, (key, id)) in workflow.tasks.iter().enumerate().skip(from) {
            let Some(task) = state.scheduler.get(*id) else {
                continue;
            };
            if !fits(key, task) && !tasks.is_empty() {
                next_task = Some(position);
                break;
            }
            tasks.push((key.clone(), task.clone()));
        }
        let namespace = state.scheduler.workflow_namespace(workflow).to_string();
        Ok(WorkflowView {
            namespace,
            status: state.scheduler.workflow_status(workflow),
            workflow: workflow.clone(),
            tasks,
            next_task,
        })
    }

    /// A broadcast (`shards` = 0: one shard per registered, non-draining worker whose labels
    /// match the spec's constraints, pinned to it) or a sharded run. Returns the parent.
    pub async fn submit_broadcast(
        &self,
        spec: raftsched_core::state::TaskSpec,
        shards: u32,
    ) -> Result<(Task, bool), AppError> {
        limits::validate_spec(&spec)?;
        let now_ms = now_ms();
        limits::validate_run_at(&spec, now_ms)?;
        let pins: Vec<Option<String>> = if shards == 0 {
            // The leader lists the workers now; only the leader may propose.
            self.leader_only()?;
            let state = self.state.read();
            let pins: Vec<Option<String>> = state
                .scheduler
                .workers()
                .filter(|w| {
                    !w.draining
                        && w.namespace() == spec.namespace()
                        && spec.constraints.iter().all(|(k, v)| w.labels.get(k) == Some(v))
                })
                .map(|w| Some(w.id.clone()))
                .collect();
            if pins.is_empty() {
                let selector: Vec<String> = spec.constraints.iter().map(|(k, v)| format!("{k}={v}")).collect();
                return Err(StateError::InvalidArgument {
                    field: "broadcast".into(),
                    problem: format!(
                        "no registered worker of namespace {} matches the selector [{}]; start one, or change the \
                         constraints",
                        spec.namespace(),
                        selector.join(",")
                    ),
                }
                .into());
            }
            pins
        } else {
            // Checked before the allocation: 4294967295 shards once asked for 100 GB here.
            limits::validate_shard_count(shards as usize)?;
            vec![None; shards as usize]
        };
        limits::validate_shard_count(pins.len())?;
        // The parent and each shard are a copy of the spec (plus 8 B per link each way).
        let copies = pins.len() as u64 + 1;
        let cost = Cost {
            tasks: copies,
            bytes: copies * estimated_spec_bytes(&spec) + 16 * pins.len() as u64,
        };
        let _reservation = self.admit_in(&[(spec.namespace(), copies)], cost)?;
        let command = Command::SubmitShards { now_ms, spec, pins };
        let CommandResponse::ShardsSubmitted(result) = self.write(command).await? else {
            return Err(AppError::Internal("broadcast answered with another response".into()));
        };
        let outcome = result?;
        self.hub.wake_dispatcher();
        Ok((self.read_task(outcome.task_id)?, outcome.created))
    }

    /// The shards of a broadcast or sharded parent, by index.
    pub fn shards_of(&self, task: &Task) -> Vec<Task> {
        let state = self.state.read();
        task.links
            .shards
            .iter()
            .filter_map(|id| state.scheduler.get(*id).cloned())
            .collect()
    }

    /// Tells workers to stop attempts a committed command ended.
    pub(crate) fn stop_attempts(&self, stopped: &[StoppedAttempt]) {
        for stop in stopped {
            let instruction = Instruction::Cancel {
                task_id: stop.task_id,
                token: stop.token,
            };
            self.hub.send(&stop.worker_id, instruction);
        }
        if !stopped.is_empty() {
            self.hub.wake_dispatcher();
        }
    }
}

/// A workflow task's refusal, named after the task like [`limits::validate_workflow`] does.
fn in_workflow_task(key: &str, error: StateError) -> StateError {
    match error {
        StateError::InvalidArgument { field, problem } => StateError::InvalidArgument {
            field: format!("task {key:?}: {field}"),
            problem,
        },
        other => other,
    }
}

/// Limits, plus what only the leader evaluates: the cron expression and time zone.
fn check_schedule(name: &str, spec: &ScheduleSpec) -> Result<(), AppError> {
    limits::validate_schedule(name, spec)?;
    recurrence::compile(&spec.recurrence, 0).map_err(|problem| StateError::InvalidArgument {
        field: "recurrence".into(),
        problem,
    })?;
    Ok(())
}

fn upcoming(schedule: &Schedule, count: usize) -> Vec<u64> {
    if schedule.paused {
        return Vec::new();
    }
    match recurrence::compile(&schedule.spec.recurrence, schedule.anchor_ms) {
        Ok(compiled) => recurrence::upcoming(schedule, &compiled, now_ms(), count),
        Err(_) => Vec::new(),
    }
}
