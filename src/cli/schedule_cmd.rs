//! `raftsched schedule ...`: recurring schedules (cron with seconds and a time zone, or a
//! fixed interval) with misfire and overlap policies.

use anyhow::Context;
use anyhow::bail;
use clap::Args;
use clap::Subcommand;
use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;

use crate::cli::output;
use crate::cli::task_cmd::TaskArgs;
use crate::cli::task_cmd::consistency;

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Create a schedule: `schedule create NAME --cron '0 */5 * * * *' --tz Europe/Paris -- CMD`.
    Create(Box<ScheduleArgs>),
    /// Replace a schedule's definition (same flags as create); occurrences count from now.
    Update(Box<ScheduleArgs>),
    /// Every schedule with its next fire time.
    List {
        #[arg(long)]
        stale: bool,
    },
    /// One schedule: definition, next fire times, recent runs and their outcome.
    Get {
        name: String,
        #[arg(long)]
        stale: bool,
    },
    /// Stop firing until resumed (occurrences while paused do not run).
    Pause { name: String },
    /// Fire again, from now on.
    Resume { name: String },
    /// Remove a schedule; the tasks it created stay.
    Delete { name: String },
    /// Run the schedule's task now, whatever its overlap policy.
    Trigger { name: String },
}

#[derive(Args, Debug)]
pub struct ScheduleArgs {
    /// The schedule's name, its id (letters, digits, `_`, `-`, `.`).
    schedule: String,
    /// Cron expression with seconds: 'sec min hour day-of-month month day-of-week'.
    #[arg(long, conflicts_with = "every_ms", required_unless_present = "every_ms")]
    cron: Option<String>,
    /// IANA time zone the cron expression is read in.
    #[arg(long, default_value = "UTC", requires = "cron")]
    tz: String,
    /// A fixed interval instead of a cron expression, at least 1s (10s, 5m, 1h; a bare
    /// number is milliseconds).
    #[arg(long, value_parser = super::duration::millis)]
    every_ms: Option<u64>,
    /// For occurrences no leader could fire in time (cluster down, election):
    /// skip, fire-once (run the latest missed one now) or catch-up[:WINDOW_MS].
    #[arg(long, default_value = "fire-once")]
    misfire: String,
    /// While the previous run has not finished: allow, forbid (skip, recorded) or replace
    /// (cancel it, then start).
    #[arg(long, default_value = "allow")]
    overlap: String,
    /// No occurrence before this time (ms since the Unix epoch).
    #[arg(long, default_value_t = 0)]
    start_ms: u64,
    /// No occurrence after this time (ms since the Unix epoch).
    #[arg(long, default_value_t = 0)]
    end_ms: u64,
    #[command(flatten)]
    task: TaskArgs,
}

impl ScheduleArgs {
    fn into_request(self) -> anyhow::Result<(String, api::ScheduleSpec)> {
        let recurrence = match (self.cron, self.every_ms) {
            (Some(expression), _) => api::schedule_spec::Recurrence::Cron(api::CronRecurrence {
                expression,
                time_zone: self.tz,
            }),
            (None, Some(every_ms)) => api::schedule_spec::Recurrence::EveryMs(every_ms),
            (None, None) => bail!("give --cron EXPR or --every-ms MS"),
        };
        let (misfire, catch_up_window_ms) = match self.misfire.split_once(':') {
            Some(("catch-up", window)) => (
                "catch-up".to_string(),
                window
                    .parse()
                    .with_context(|| format!("catch-up window {window:?} is not a number of milliseconds"))?,
            ),
            _ => (self.misfire, 0),
        };
        let mut task = self.task;
        task.name.get_or_insert_with(|| self.schedule.clone());
        let mut template = task.into_spec()?;
        // Each run is a trace of its own, not part of the shell's that created the schedule.
        template.trace_parent.clear();
        let spec = api::ScheduleSpec {
            recurrence: Some(recurrence),
            template: Some(template),
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            misfire,
            catch_up_window_ms,
            overlap: self.overlap,
        };
        Ok((self.schedule, spec))
    }
}

pub async fn run(command: ScheduleCommand, client: &ClusterClient, json: bool) -> anyhow::Result<()> {
    match command {
        ScheduleCommand::Create(args) => {
            let (name, spec) = args.into_request()?;
            let response = client
                .call(|mut c| {
                    let request = api::CreateScheduleRequest {
                        namespace: client.namespace().to_string(),
                        name: name.clone(),
                        spec: Some(spec.clone()),
                    };
                    async move { c.create_schedule(request).await }
                })
                .await?;
            if json {
                output::print_json(&output::json_of(&response));
            } else {
                let schedule = response.schedule.context("the cluster answered without a schedule")?;
                let verb = if response.created { "created" } else { "already exists:" };
                println!("schedule {} {verb} next at {}", schedule.name, next_fire(&schedule));
            }
        }
        ScheduleCommand::Update(args) => {
            let (name, spec) = args.into_request()?;
            let response = client
                .call(|mut c| {
                    let request = api::UpdateScheduleRequest {
                        namespace: client.namespace().to_string(),
                        name: name.clone(),
                        spec: Some(spec.clone()),
                    };
                    async move { c.update_schedule(request).await }
                })
                .await?;
            print_changed(response, "updated", json)?;
        }
        ScheduleCommand::List { stale } => {
            let mut schedules = Vec::new();
            let mut page_token = String::new();
            loop {
                let request = api::ListSchedulesRequest {
                    namespace: client.namespace().to_string(),
                    page_size: 1000,
                    page_token: page_token.clone(),
                    consistency: consistency(stale) as i32,
                };
                let response = client
                    .call(|mut c| {
                        let request = request.clone();
                        async move { c.list_schedules(request).await }
                    })
                    .await?;
                schedules.extend(response.schedules);
                if response.next_page_token.is_empty() {
                    break;
                }
                page_token = response.next_page_token;
            }
            if json {
                let listed = api::ListSchedulesResponse {
                    schedules,
                    next_page_token: String::new(),
                };
                output::print_json(&output::json_of(&listed));
            } else {
                let rows: Vec<Vec<String>> = schedules
                    .iter()
                    .map(|s| {
                        let spec = s.spec.clone().unwrap_or_default();
                        vec![
                            s.name.clone(),
                            recurrence_text(&spec),
                            if s.paused { "paused".into() } else { "active".into() },
                            next_fire(s),
                            s.fired_count.to_string(),
                            s.skipped_count.to_string(),
                        ]
                    })
                    .collect();
                output::print_table(&["SCHEDULE", "WHEN", "STATE", "NEXT", "FIRED", "SKIPPED"], &rows);
            }
        }
        ScheduleCommand::Get { name, stale } => {
            let schedule = client.get_schedule(&name, consistency(stale)).await?;
            if json {
                output::print_json(&output::json_of(&schedule));
            } else {
                print_schedule(&schedule);
            }
        }
        ScheduleCommand::Pause { name } => {
            let response = client
                .call(|mut c| {
                    let request = api::PauseScheduleRequest {
                        namespace: client.namespace().to_string(),
                        name: name.clone(),
                    };
                    async move { c.pause_schedule(request).await }
                })
                .await?;
            print_changed(response, "paused", json)?;
        }
        ScheduleCommand::Resume { name } => {
            let response = client
                .call(|mut c| {
                    let request = api::ResumeScheduleRequest {
                        namespace: client.namespace().to_string(),
                        name: name.clone(),
                    };
                    async move { c.resume_schedule(request).await }
                })
                .await?;
            print_changed(response, "resumed", json)?;
        }
        ScheduleCommand::Delete { name } => {
            let request = api::DeleteScheduleRequest {
                namespace: client.namespace().to_string(),
                name: name.clone(),
            };
            client
                .call(|mut c| {
                    let request = request.clone();
                    async move { c.delete_schedule(request).await }
                })
                .await?;
            if json {
                // The answer is empty: what was deleted, as the request named it.
                output::print_json(&output::json_of(&request));
            } else {
                println!("schedule {name} deleted");
            }
        }
        ScheduleCommand::Trigger { name } => {
            let response = client
                .call(|mut c| {
                    let request = api::TriggerScheduleRequest {
                        namespace: client.namespace().to_string(),
                        name: name.clone(),
                    };
                    async move { c.trigger_schedule(request).await }
                })
                .await?;
            if json {
                output::print_json(&output::json_of(&response));
            } else {
                let task = response.task.context("the cluster answered without a task")?;
                println!("schedule {name} triggered: task {}", task.id);
            }
        }
    }
    Ok(())
}

fn print_changed(response: api::ScheduleResponse, verb: &str, json: bool) -> anyhow::Result<()> {
    if json {
        output::print_json(&output::json_of(&response));
    } else {
        let schedule = response.schedule.context("the cluster answered without a schedule")?;
        println!("schedule {} {verb}; next at {}", schedule.name, next_fire(&schedule));
    }
    Ok(())
}

fn next_fire(schedule: &api::Schedule) -> String {
    match schedule.next_fire_ms.first() {
        Some(ms) => output::format_time_ms(*ms),
        None if schedule.paused => "- (paused)".into(),
        None => "- (no further occurrence)".into(),
    }
}

fn recurrence_text(spec: &api::ScheduleSpec) -> String {
    match &spec.recurrence {
        Some(api::schedule_spec::Recurrence::Cron(cron)) => format!("cron '{}' {}", cron.expression, cron.time_zone),
        Some(api::schedule_spec::Recurrence::EveryMs(ms)) => format!("every {ms} ms"),
        None => "-".into(),
    }
}

fn misfire_text(spec: &api::ScheduleSpec) -> String {
    if spec.misfire == "catch-up" {
        format!("catch-up:{}", spec.catch_up_window_ms)
    } else {
        spec.misfire.clone()
    }
}

fn print_schedule(schedule: &api::Schedule) {
    let spec = schedule.spec.clone().unwrap_or_default();
    let template = spec.template.clone().unwrap_or_default();
    let command = match &template.payload {
        Some(api::task_spec::Payload::Command(c)) => c.command_line.clone(),
        Some(api::task_spec::Payload::Opaque(o)) => format!("<{} bytes of {}>", o.data.len(), o.kind),
        None => String::new(),
    };
    let rows = [
        ("schedule", schedule.name.clone()),
        (
            "state",
            if schedule.paused {
                "paused".into()
            } else {
                "active".into()
            },
        ),
        ("when", recurrence_text(&spec)),
        ("misfire", misfire_text(&spec)),
        ("overlap", spec.overlap.clone()),
        ("starts", output::format_time_ms(spec.start_ms)),
        ("ends", output::format_time_ms(spec.end_ms)),
        (
            "task",
            format!("{} (queue {}): {command}", template.name, template.queue),
        ),
        ("created", output::format_time_ms(schedule.created_at_ms)),
        ("decided up to", output::format_time_ms(schedule.cursor_ms)),
        (
            "runs",
            format!("{} fired, {} skipped", schedule.fired_count, schedule.skipped_count),
        ),
    ];
    for (field, value) in rows {
        println!("{field:<16} {value}");
    }
    println!("\nNEXT FIRE TIMES");
    if schedule.next_fire_ms.is_empty() {
        println!("-");
    }
    for ms in &schedule.next_fire_ms {
        println!("{}", output::format_time_ms(*ms));
    }
    if schedule.runs.is_empty() {
        return;
    }
    println!();
    let rows: Vec<Vec<String>> = schedule
        .runs
        .iter()
        .map(|run| {
            let (task, state) = if run.task_id == 0 {
                ("-".to_string(), "-".to_string())
            } else {
                (run.task_id.to_string(), output::state_name(run.task_state).to_string())
            };
            let detail = match run.outcome.as_str() {
                "skipped" if run.skipped_count > 1 => format!(
                    "{} occurrences from {}: {}",
                    run.skipped_count,
                    output::format_time_ms(run.first_skipped_ms),
                    run.reason
                ),
                "skipped" => run.reason.clone(),
                _ if run.replaced_task_id != 0 => format!("replaced task {}", run.replaced_task_id),
                _ => String::new(),
            };
            vec![
                output::format_time_ms(run.scheduled_ms),
                run.outcome.clone(),
                task,
                state,
                detail,
            ]
        })
        .collect();
    output::print_table(&["SCHEDULED", "OUTCOME", "TASK", "TASK STATE", "DETAIL"], &rows);
}
