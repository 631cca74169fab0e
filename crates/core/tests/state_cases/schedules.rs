//! Directives for schedules, workflows and broadcasts.

use crate::oracle::apply_checked;
use crate::parser::arg;
use crate::parser::arg_u64;
use crate::parser::directive_fields;
use crate::parser::parse_spec;
use crate::parser::tokenize;
use crate::runner::fmt_err;
use crate::runner::fmt_ids;
use datadriven::TestCase;
use raftsched_core::state::Command;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::MisfirePolicy;
use raftsched_core::state::Occurrence;
use raftsched_core::state::OccurrenceAction;
use raftsched_core::state::OverlapPolicy;
use raftsched_core::state::Recurrence;
use raftsched_core::state::RunOutcome;
use raftsched_core::state::ScheduleSpec;
use raftsched_core::state::SchedulerState;
use raftsched_core::state::TaskId;
use raftsched_core::state::WorkflowSpec;
use raftsched_core::state::WorkflowTaskSpec;
use std::collections::BTreeMap;

// --- Schedules, workflows, broadcasts ----------------------------------------------------------

/// `schedule-create|schedule-update at=<ms> name=<s> (every=<ms> | cron=<expr> [tz=<zone>])
/// [misfire=skip|fire-once|catch-up window=<ms>] [overlap=allow|forbid|replace] [start=<ms>]
/// [end=<ms>]`, the template's spec fields on an input line.
pub(crate) fn schedule_define(state: &mut SchedulerState, case: &TestCase, create: bool) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    // An input line `schedule=<name>` gives a name the directive line cannot spell.
    let input: Vec<(String, String)> = case.input.lines().flat_map(tokenize).collect();
    let name = input
        .iter()
        .find(|(k, _)| k == "schedule")
        .map(|(_, v)| v.clone())
        .or_else(|| arg(case, "name"))
        .expect("needs name=<schedule>");
    let recurrence = match (arg(case, "every"), arg(case, "cron")) {
        (Some(every), _) => Recurrence::Every {
            interval_ms: every.parse().expect("every=<ms>"),
        },
        (None, Some(expression)) => Recurrence::Cron {
            expression,
            time_zone: arg(case, "tz").unwrap_or_else(|| "UTC".into()),
        },
        (None, None) => panic!("needs every=<ms> or cron=<expr>"),
    };
    let misfire = match arg(case, "misfire").as_deref() {
        None | Some("fire-once") => MisfirePolicy::FireOnce,
        Some("skip") => MisfirePolicy::Skip,
        Some("catch-up") => MisfirePolicy::CatchUp {
            window_ms: arg_u64(case, "window").expect("catch-up needs window=<ms>"),
        },
        Some(other) => panic!("unknown misfire {other:?}"),
    };
    let overlap = arg(case, "overlap").map_or(OverlapPolicy::Allow, |o| {
        OverlapPolicy::parse(&o).unwrap_or_else(|| panic!("unknown overlap {o:?}"))
    });
    let template = parse_spec(input.into_iter().filter(|(k, _)| k != "schedule").collect());
    let spec = ScheduleSpec {
        recurrence,
        template,
        start_ms: arg_u64(case, "start").unwrap_or(0),
        end_ms: arg_u64(case, "end").unwrap_or(0),
        misfire,
        overlap,
    };
    let command = if create {
        Command::CreateSchedule { now_ms, name, spec }
    } else {
        Command::UpdateSchedule { now_ms, name, spec }
    };
    match apply_checked(state, command) {
        CommandResponse::ScheduleCreated(Ok(true)) => "created".into(),
        CommandResponse::ScheduleCreated(Ok(false)) => "exists with the same spec".into(),
        CommandResponse::ScheduleCreated(Err(e)) | CommandResponse::ScheduleChanged(Err(e)) => fmt_err(&e),
        CommandResponse::ScheduleChanged(Ok(())) => "ok".into(),
        other => panic!("schedule answered {other:?}"),
    }
}

/// `schedule-pause|schedule-resume|schedule-delete|trigger at=<ms> name=<s>`.
pub(crate) fn schedule_simple(state: &mut SchedulerState, case: &TestCase, what: &str) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let name = arg(case, "name").expect("needs name=<schedule>");
    let command = match what {
        "pause" => Command::PauseSchedule {
            now_ms,
            name,
            paused: true,
        },
        "resume" => Command::PauseSchedule {
            now_ms,
            name,
            paused: false,
        },
        "delete" => Command::DeleteSchedule { now_ms, name },
        _ => Command::TriggerSchedule { now_ms, name },
    };
    fmt_schedule_response(apply_checked(state, command))
}

pub(crate) fn fmt_schedule_response(response: CommandResponse) -> String {
    match response {
        CommandResponse::ScheduleChanged(Ok(())) => "ok".into(),
        CommandResponse::ScheduleChanged(Err(e)) | CommandResponse::ScheduleFired(Err(e)) => fmt_err(&e),
        CommandResponse::ScheduleFired(Ok(outcome)) => {
            let mut out: String = outcome
                .results
                .iter()
                .map(|r| match r {
                    Ok(run) => format!("{}\n", fmt_run(run)),
                    Err(e) => format!("{}\n", fmt_err(e)),
                })
                .collect();
            for stop in &outcome.stopped {
                out += &format!("stop {} token={} (task {})\n", stop.worker_id, stop.token, stop.task_id);
            }
            out
        }
        other => panic!("schedule answered {other:?}"),
    }
}

pub(crate) fn fmt_run(run: &RunOutcome) -> String {
    match run {
        RunOutcome::Fired {
            task_id,
            replaced: None,
        } => format!("fired task {task_id}"),
        RunOutcome::Fired {
            task_id,
            replaced: Some(old),
        } => format!("fired task {task_id}, replaced task {old}"),
        RunOutcome::Triggered { task_id } => format!("triggered task {task_id}"),
        RunOutcome::Skipped {
            first_ms,
            count,
            reason,
        } => format!("skipped {count} from {first_ms}: {reason}"),
    }
}

/// `fire at=<ms> name=<s> [revision=<n>]` with input lines `fire at=<ms>` or
/// `skip at=<ms> first=<ms> count=<n> reason=<text>`: the leader's decisions, one log entry.
/// The revision defaults to the schedule's current one.
pub(crate) fn fire(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let name = arg(case, "name").expect("fire needs name=<schedule>");
    let revision = arg_u64(case, "revision").unwrap_or_else(|| state.schedule(&name).map_or(0, |s| s.revision));
    let occurrences = case
        .input
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (word, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
            let fields: BTreeMap<String, String> = tokenize(rest).into_iter().collect();
            let number = |key: &str| -> u64 {
                fields
                    .get(key)
                    .unwrap_or_else(|| panic!("{line:?} needs {key}="))
                    .parse()
                    .expect("a number")
            };
            let action = match word {
                "fire" => OccurrenceAction::Fire,
                "skip" => OccurrenceAction::Skip {
                    first_ms: number("first"),
                    count: number("count"),
                    reason: fields.get("reason").cloned().unwrap_or_else(|| "misfired".into()),
                },
                other => panic!("unknown occurrence action {other:?}"),
            };
            Occurrence {
                scheduled_ms: number("at"),
                action,
            }
        })
        .collect();
    let command = Command::FireSchedule {
        now_ms,
        name,
        revision,
        occurrences,
    };
    fmt_schedule_response(apply_checked(state, command))
}

/// `schedule name=<s>`: the schedule's replicated record and its runs.
pub(crate) fn show_schedule(state: &SchedulerState, case: &TestCase) -> String {
    let name = arg(case, "name").expect("schedule needs name=<s>");
    let Some(s) = state.schedule(&name) else {
        return "not found".into();
    };
    let mut out = format!(
        "schedule {} revision={} paused={} cursor={} anchor={} last_task={} fired={} skipped={} manual={}",
        s.name,
        s.revision,
        s.paused,
        s.cursor_ms,
        s.anchor_ms,
        s.last_task.map_or("none".to_string(), |t| t.to_string()),
        s.fired_count,
        s.skipped_count,
        s.manual_runs
    );
    for run in &s.runs {
        out += &format!(
            "\n  run scheduled={} decided={} {}",
            run.scheduled_ms,
            run.decided_at_ms,
            fmt_run(&run.outcome)
        );
    }
    out
}

/// `workflow at=<ms> name=<w> [request=<id>]` with one input line per task:
/// `key=<k> [after=<k>,<k>] <spec fields>`.
pub(crate) fn workflow(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let tasks = case
        .input
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut key = String::new();
            let mut after = Vec::new();
            let mut fields = Vec::new();
            for (k, v) in tokenize(line) {
                match k.as_str() {
                    "key" => key = v,
                    "after" => after = v.split(',').filter(|p| !p.is_empty()).map(String::from).collect(),
                    _ => fields.push((k, v)),
                }
            }
            if !fields.iter().any(|(k, _)| k == "name") {
                fields.push(("name".into(), key.clone()));
            }
            WorkflowTaskSpec {
                key,
                spec: parse_spec(fields),
                after,
            }
        })
        .collect();
    let workflow = WorkflowSpec {
        name: arg(case, "name").unwrap_or_else(|| "wf".into()),
        request_id: arg(case, "request"),
        tasks,
    };
    match apply_checked(state, Command::SubmitWorkflow { now_ms, workflow }) {
        CommandResponse::WorkflowSubmitted(Ok(outcome)) => {
            let ids: Vec<TaskId> = state
                .workflow(outcome.workflow_id)
                .map(|w| w.tasks.iter().map(|(_, id)| *id).collect())
                .unwrap_or_default();
            let verb = if outcome.created { "created" } else { "existing" };
            format!("workflow {} {verb} tasks {}", outcome.workflow_id, fmt_ids(&ids))
        }
        CommandResponse::WorkflowSubmitted(Err(e)) => fmt_err(&e),
        other => panic!("workflow answered {other:?}"),
    }
}

/// `workflow-get id=<n>`: the overall status and each task's.
pub(crate) fn workflow_get(state: &SchedulerState, case: &TestCase) -> String {
    let id = arg_u64(case, "id").expect("workflow-get needs id=<n>");
    let Some(workflow) = state.workflow(id) else {
        if state.workflow_was_purged(id) {
            return "not found (purged)".into();
        }
        return "not found".into();
    };
    let mut out = format!(
        "workflow {} {:?} status={}",
        workflow.id,
        workflow.name,
        state.workflow_status(workflow).as_str()
    );
    for (key, task_id) in &workflow.tasks {
        let task = state.get(*task_id).expect("a workflow task exists");
        out += &format!("\n  {key} task={task_id} status={}", task.status);
        if let Some(reason) = &task.reason {
            out += &format!(" reason={reason:?}");
        }
    }
    out
}

/// `shards at=<ms> (pins=<w>,<w> | count=<n>) <spec fields>`: a broadcast (pinned shards) or
/// sharded run.
pub(crate) fn shards(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let pins: Vec<Option<String>> = match (arg(case, "pins"), arg_u64(case, "count")) {
        (Some(pins), _) => pins.split(',').map(|w| Some(w.to_string())).collect(),
        (None, Some(count)) => vec![None; count as usize],
        (None, None) => panic!("shards needs pins=<w>,<w> or count=<n>"),
    };
    let fields: Vec<(String, String)> = directive_fields(case)
        .into_iter()
        .filter(|(k, _)| k != "pins" && k != "count")
        .chain(case.input.lines().flat_map(tokenize))
        .collect();
    let spec = parse_spec(fields);
    match apply_checked(state, Command::SubmitShards { now_ms, spec, pins }) {
        CommandResponse::ShardsSubmitted(Ok(outcome)) => {
            let shards = state
                .get(outcome.task_id)
                .map(|t| t.links.shards.clone())
                .unwrap_or_default();
            let verb = if outcome.created { "created" } else { "existing" };
            format!("parent {} {verb} shards {}", outcome.task_id, fmt_ids(&shards))
        }
        CommandResponse::ShardsSubmitted(Err(e)) => fmt_err(&e),
        other => panic!("shards answered {other:?}"),
    }
}
