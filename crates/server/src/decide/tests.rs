//! Data-driven tests of [`decide`]: every file under `tests/testdata/decide/` is a script of
//! directives, each followed by the text it prints. `REWRITE=1 cargo test --lib decide`
//! regenerates the expected text. The state is built by applying real commands; the leader's
//! liveness view and the time are plain arguments, so no cluster and no clock is involved.
//!
//! Directives (`at=<ms>` is the leader time of the command, 0 when left out):
//!
//! - `worker id=<w> [count=<n>] [session=<s>] [slots=<n>] [lease=<ms>] [cpu=<m>] [mem=<MiB>]
//!   [label.<k>=<v>] [connected=false]`: registers the worker (with `count`, the workers
//!   `<w>001`..), heard from at `at` and connected unless told otherwise.
//! - `heard id=<w> at=<ms>`, `disconnect id=<w>`, `connect id=<w> at=<ms>`: the leader's
//!   view of one worker; `forget id=<w>`: the leader has no view of it (registered before
//!   this leader saw it, or forgotten after an expiry).
//! - `elect at=<ms>`: a new leader: every worker is disconnected and counts as heard from at
//!   the election (its grace); the firing cache starts empty.
//! - `drain id=<w> at=<ms>`.
//! - `submit at=<ms> [count=<n>] [name=<n>] [queue=<q>] [priority=<p>] [timeout=<ms>]
//!   [delay=<ms>] [cpu=<m>] [mem=<MiB>] [constraint.<k>=<v>]`: prints the ids created.
//! - `place at=<ms> [seed=<n>] [apply=true]` with the arguments of `submit`: the leader's
//!   pick of worker per spec at submission (`place_submissions`, `-` for none); with
//!   `apply`, the `SubmitAndAssign` applied, one line per spec.
//! - `assign at=<ms>` with input lines `<task> <worker>`: starts attempts directly.
//! - `schedule at=<ms> name=<n> (every=<ms> | cron tz=<zone>) [misfire=skip|fire-once|
//!   catch-up] [window=<ms>] [start=<ms>] [end=<ms>]`: with `cron`, the expression is the
//!   input.
//! - `update at=<ms> name=<n>` with the arguments of `schedule`: a new definition.
//! - `pause name=<n> at=<ms>`, `resume name=<n> at=<ms>`;
//!   `queue-policy queue=<q> [weight=<n>] [placement=<p>]`.
//! - `decide now=<ms> seed=<n> [apply=true] [summary=true]`: the plan, one command per line
//!   then the unplaced tasks; with `summary`, the number of commands of each kind. With
//!   `apply`, each command is applied in order and its response printed under it.
//! - `tasks`: every task with its status and running attempt.

use std::fmt::Write;

use datadriven::TestCase;

use super::*;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::MisfirePolicy;
use raftsched_core::state::OccurrenceAction;
use raftsched_core::state::OverlapPolicy;
use raftsched_core::state::Resources;
use raftsched_core::state::ScheduleSpec;
use raftsched_core::state::TaskSpec;
use raftsched_core::state::WorkerRegistration;

struct World {
    state: SchedulerState,
    liveness: Liveness,
    cache: FiringCache,
}

#[test]
fn decide_cases() {
    // Run from the package root, where cargo runs tests.
    datadriven::walk("tests/testdata/decide", |file| {
        let mut world = World {
            state: SchedulerState::new(),
            liveness: Liveness::default(),
            cache: FiringCache::default(),
        };
        let filename = file.filename.clone();
        file.run(|case| -> String {
            let mut out = world.run(case);
            if let Err(violation) = world.state.check_invariants() {
                panic!("{filename}: `{}` broke a state invariant: {violation}", case.directive);
            }
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out
        });
    });
}

fn arg<'a>(case: &'a TestCase, key: &str) -> Option<&'a str> {
    case.args.get(key).and_then(|v| v.first()).map(String::as_str)
}

fn num(case: &TestCase, key: &str, default: u64) -> u64 {
    arg(case, key).map_or(default, |v| {
        v.parse().unwrap_or_else(|_| panic!("{key}={v} is not a number"))
    })
}

/// The `<prefix><k>=<v>` arguments, as a map from k to v.
fn prefixed(case: &TestCase, prefix: &str) -> BTreeMap<String, String> {
    case.args
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.first()?.clone())))
        .collect()
}

impl World {
    fn run(&mut self, case: &TestCase) -> String {
        let at = num(case, "at", 0);
        match case.directive.as_str() {
            "worker" => self.register(case, at),
            "forget" | "heard" | "connect" | "disconnect" | "elect" => self.view(case, at),
            "drain" => {
                let id = arg(case, "id").expect("id=<worker>").to_string();
                let session = self.state.worker(&id).map(|w| w.session.clone()).unwrap_or_default();
                let command = Command::DrainWorker {
                    now_ms: at,
                    worker_id: id,
                    session,
                };
                response(&self.state.apply(command))
            }
            "submit" => self.submit(case, at),
            "place" => self.place(case, at),
            "assign" => {
                let assignments = case
                    .input
                    .lines()
                    .map(|line| {
                        let (task, worker) = line.split_once(' ').expect("<task> <worker>");
                        (task.parse().expect("a task id"), worker.to_string())
                    })
                    .collect();
                let command = Command::AssignTasks {
                    now_ms: at,
                    seed: 0,
                    assignments,
                };
                response(&self.state.apply(command))
            }
            "schedule" => {
                let (name, spec) = schedule_spec(case);
                response(&self.state.apply(Command::CreateSchedule { now_ms: at, name, spec }))
            }
            "update" => {
                let (name, spec) = schedule_spec(case);
                response(&self.state.apply(Command::UpdateSchedule { now_ms: at, name, spec }))
            }
            "pause" | "resume" => {
                let name = arg(case, "name").expect("name=<schedule>").to_string();
                let command = Command::PauseSchedule {
                    now_ms: at,
                    name,
                    paused: case.directive == "pause",
                };
                response(&self.state.apply(command))
            }
            "queue-policy" => {
                let placement = arg(case, "placement").unwrap_or("least-loaded");
                let policy = raftsched_core::scheduling::QueuePolicy {
                    weight: num(case, "weight", 1) as u32,
                    placement: raftsched_core::scheduling::Placement::parse(placement).expect("a placement"),
                    retention_ms: arg(case, "retention").map(|r| r.parse().expect("retention=<ms>")),
                };
                let queue = arg(case, "queue").unwrap_or(limits::DEFAULT_QUEUE).to_string();
                let command = Command::SetQueuePolicy {
                    now_ms: at,
                    queue,
                    policy,
                };
                response(&self.state.apply(command))
            }
            "decide" => self.decide(case),
            "tasks" => self.tasks(),
            "cancel" => {
                // Finishes tasks from..=to (cancelled), so that they become purgeable.
                let mut cancelled = 0;
                for task_id in num(case, "from", 1)..=num(case, "to", 1) {
                    let reason = String::new();
                    let command = Command::CancelTask {
                        now_ms: at,
                        task_id,
                        reason,
                    };
                    if let CommandResponse::Cancelled(Ok(_)) = self.state.apply(command) {
                        cancelled += 1;
                    }
                }
                format!("cancelled {cancelled}")
            }
            other => panic!("unknown directive {other:?}"),
        }
    }

    /// The directives that change only the leader's view of its workers.
    fn view(&mut self, case: &TestCase, at: u64) -> String {
        if case.directive == "elect" {
            let grace = WorkerLiveness {
                connected: false,
                last_heard_ms: at,
            };
            self.liveness.workers = self.state.workers().map(|w| (w.id.clone(), grace)).collect();
            self.cache = FiringCache::default();
            return format!("leading with {} workers in grace", self.liveness.workers.len());
        }
        let id = arg(case, "id").expect("id=<worker>");
        if case.directive == "forget" {
            self.liveness.workers.remove(id);
            return "ok".into();
        }
        let entry = self.liveness.workers.entry(id.to_string()).or_default();
        match case.directive.as_str() {
            "heard" => entry.last_heard_ms = at,
            "connect" => {
                *entry = WorkerLiveness {
                    connected: true,
                    last_heard_ms: at,
                }
            }
            _ => entry.connected = false,
        }
        "ok".into()
    }

    fn register(&mut self, case: &TestCase, at: u64) -> String {
        let id = arg(case, "id").expect("id=<worker>");
        let ids: Vec<String> = match arg(case, "count") {
            None => vec![id.to_string()],
            Some(_) => (1..=num(case, "count", 1)).map(|i| format!("{id}{i:03}")).collect(),
        };
        let mut out = String::new();
        for id in ids {
            let registration = WorkerRegistration {
                id: id.clone(),
                session: arg(case, "session").unwrap_or("s1").to_string(),
                slots: num(case, "slots", 1) as u32,
                labels: prefixed(case, "label."),
                resources: resources(case),
                lease_ms: num(case, "lease", limits::DEFAULT_LEASE_MS),
            };
            let command = Command::RegisterWorker {
                now_ms: at,
                registration,
            };
            match self.state.apply(command) {
                CommandResponse::Registered(Ok(_)) => {}
                other => writeln!(out, "{id}: {}", response(&other)).unwrap(),
            }
            let connected = arg(case, "connected") != Some("false");
            let liveness = WorkerLiveness {
                connected,
                last_heard_ms: at,
            };
            self.liveness.workers.insert(id, liveness);
        }
        if out.is_empty() { "ok".into() } else { out }
    }

    /// The leader's picks for a submission of the `submit` arguments, then (with
    /// `apply=true`) the `SubmitAndAssign` of them applied.
    fn place(&mut self, case: &TestCase, at: u64) -> String {
        let specs = submitted_specs(case);
        let workers = place_submissions(&self.state, &self.liveness, &specs, at, num(case, "seed", 0));
        let mut out: String = workers
            .iter()
            .map(|w| w.as_deref().unwrap_or("-"))
            .collect::<Vec<_>>()
            .join(" ");
        out.insert_str(0, "picks: ");
        if arg(case, "apply") == Some("true") {
            let command = Command::SubmitAndAssign {
                now_ms: at,
                seed: num(case, "seed", 0),
                specs,
                workers,
            };
            let CommandResponse::SubmittedAndAssigned(outcomes) = self.state.apply(command) else {
                panic!("submit-and-assign answered another response")
            };
            for (submitted, assigned) in outcomes {
                let line = match (submitted, assigned) {
                    (Err(e), _) => e.to_string(),
                    (Ok(o), None) => format!("task {} pending", o.task_id),
                    (Ok(o), Some(Ok(a))) => format!("task {} -> {} token={}", o.task_id, a.worker_id, a.token),
                    (Ok(o), Some(Err(e))) => format!("task {} pending: {e}", o.task_id),
                };
                write!(out, "\n{line}").unwrap();
            }
        }
        out
    }

    fn submit(&mut self, case: &TestCase, at: u64) -> String {
        let specs = submitted_specs(case);
        let CommandResponse::Submitted(outcomes) = self.state.apply(Command::SubmitTasks { now_ms: at, specs }) else {
            panic!("submit answered another response")
        };
        let ids: Vec<TaskId> = outcomes.iter().flatten().map(|o| o.task_id).collect();
        let errors: Vec<String> = outcomes
            .iter()
            .filter_map(|o| o.as_ref().err())
            .map(|e| e.to_string())
            .collect();
        match (ids.first(), ids.last()) {
            _ if !errors.is_empty() => errors.join("\n"),
            (Some(first), Some(last)) if first != last => format!("tasks {first}..={last}"),
            (Some(first), _) => format!("task {first}"),
            _ => "nothing".into(),
        }
    }

    fn decide(&mut self, case: &TestCase) -> String {
        let now_ms = num(case, "now", 0);
        let seed = num(case, "seed", 0);
        let plan = decide(&self.state, &self.liveness, now_ms, seed, &mut self.cache);
        // The cache only saves work: a cold one gives the same plan.
        let cold = decide(&self.state, &self.liveness, now_ms, seed, &mut FiringCache::default());
        assert_eq!(plan, cold, "the plan depends on the firing cache");
        let mut out = String::new();
        if arg(case, "summary") == Some("true") {
            let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
            for command in &plan.commands {
                let kind = describe(command).split(' ').next().unwrap_or_default().to_string();
                *kinds.entry(kind).or_default() += 1;
            }
            for (kind, n) in kinds {
                writeln!(out, "{kind}: {n}").unwrap();
            }
        } else {
            for command in &plan.commands {
                writeln!(out, "{}", describe(command)).unwrap();
            }
        }
        for (task_id, reason) in &plan.unplaced {
            writeln!(out, "unplaced {task_id}: {reason}").unwrap();
        }
        if arg(case, "apply") == Some("true") {
            let summary = arg(case, "summary") == Some("true");
            let applied = plan.commands.len();
            for command in plan.commands {
                let answer = response(&self.state.apply(command));
                if !summary {
                    writeln!(out, "applied: {answer}").unwrap();
                }
            }
            if summary {
                writeln!(out, "applied {applied} commands").unwrap();
            }
        }
        if out.is_empty() { "nothing to do".into() } else { out }
    }

    fn tasks(&self) -> String {
        let mut out = String::new();
        for id in 1..self.state.next_task_id() {
            let Some(task) = self.state.get(id) else {
                writeln!(out, "task {id} purged").unwrap();
                continue;
            };
            write!(
                out,
                "task {id} {} attempts={}",
                task.status.as_str(),
                task.attempts.len()
            )
            .unwrap();
            if let Some(attempt) = task.running_attempt() {
                write!(out, " on={} token={}", attempt.worker_id, attempt.token).unwrap();
            }
            writeln!(out).unwrap();
        }
        out
    }
}

/// The name and definition a `schedule` or `update` directive spells.
fn schedule_spec(case: &TestCase) -> (String, ScheduleSpec) {
    let recurrence = match arg(case, "every") {
        Some(_) => Recurrence::Every {
            interval_ms: num(case, "every", 1000),
        },
        None => Recurrence::Cron {
            expression: case.input.trim().to_string(),
            time_zone: arg(case, "tz").unwrap_or("UTC").to_string(),
        },
    };
    let misfire = match arg(case, "misfire").unwrap_or("fire-once") {
        "skip" => MisfirePolicy::Skip,
        "fire-once" => MisfirePolicy::FireOnce,
        "catch-up" => MisfirePolicy::CatchUp {
            window_ms: num(case, "window", 0),
        },
        other => panic!("unknown misfire policy {other:?}"),
    };
    let name = arg(case, "name").expect("name=<schedule>").to_string();
    let spec = ScheduleSpec {
        recurrence,
        template: template(&name),
        start_ms: num(case, "start", 0),
        end_ms: num(case, "end", 0),
        misfire,
        overlap: OverlapPolicy::Allow,
    };
    (name, spec)
}

/// A schedule's task template: a no-op command with the default limits.
fn template(name: &str) -> TaskSpec {
    TaskSpec::builder(name).build()
}

fn resources(case: &TestCase) -> Resources {
    Resources {
        cpu_millis: num(case, "cpu", 0) as u32,
        memory_mb: num(case, "mem", 0) as u32,
    }
}

/// One planned command on one line.
fn describe(command: &Command) -> String {
    match command {
        Command::ExpireWorker { worker_id, session, .. } => format!("expire {worker_id} session={session}"),
        Command::TimeOutAttempt {
            task_id, token, jitter, ..
        } => format!("timeout task={task_id} token={token} jitter={jitter:016x}"),
        Command::FireSchedule {
            name,
            revision,
            occurrences,
            ..
        } => {
            let decisions: Vec<String> = occurrences
                .iter()
                .map(|o| match &o.action {
                    OccurrenceAction::Fire => format!("fire {}", o.scheduled_ms),
                    OccurrenceAction::Skip {
                        first_ms,
                        count,
                        reason,
                    } => {
                        format!("skip {count} from {first_ms} to {} ({reason})", o.scheduled_ms)
                    }
                })
                .collect();
            format!("fire {name} revision={revision}: {}", decisions.join(", "))
        }
        Command::AssignTasks { assignments, .. } if assignments.len() > 12 => {
            let mut per_worker: BTreeMap<&str, usize> = BTreeMap::new();
            for (_, worker) in assignments {
                *per_worker.entry(worker).or_default() += 1;
            }
            let counts: Vec<String> = per_worker.iter().map(|(w, n)| format!("{w}={n}")).collect();
            format!("assign n={}: {}", assignments.len(), counts.join(" "))
        }
        Command::AssignTasks { assignments, .. } => {
            let pairs: Vec<String> = assignments.iter().map(|(t, w)| format!("{t}->{w}")).collect();
            format!("assign n={}: {}", assignments.len(), pairs.join(" "))
        }
        Command::PurgeTasks { units, .. } if units.len() > 12 => format!(
            "purge n={}: {} .. {}",
            units.len(),
            units.first().expect("more than 12"),
            units.last().expect("more than 12")
        ),
        Command::PurgeTasks { units, .. } => {
            let units: Vec<String> = units.iter().map(ToString::to_string).collect();
            format!("purge n={}: {}", units.len(), units.join(", "))
        }
        other => format!("{other}"),
    }
}

/// A command's response on one line.
fn response(response: &CommandResponse) -> String {
    match response {
        CommandResponse::Expired(voided) => format!("expired, voided {voided:?}"),
        CommandResponse::Assigned(outcomes) => {
            let refused: Vec<String> = outcomes
                .iter()
                .filter_map(|o| o.as_ref().err())
                .map(|e| e.to_string())
                .collect();
            let accepted = outcomes.len() - refused.len();
            if refused.is_empty() {
                format!("assigned {accepted}")
            } else {
                format!("assigned {accepted}, refused: {}", refused.join("; "))
            }
        }
        CommandResponse::Reported(Ok(status)) => format!("task {}", status.as_str()),
        CommandResponse::ScheduleFired(Ok(outcome)) => format!("{:?}", outcome.results),
        CommandResponse::Drained(Ok(()))
        | CommandResponse::ScheduleChanged(Ok(()))
        | CommandResponse::QueuePolicySet(Ok(())) => "ok".into(),
        CommandResponse::ScheduleCreated(Ok(created)) => format!("created={created}"),
        CommandResponse::Purged(Ok(outcome)) => {
            format!("purged {} units, {} tasks", outcome.purged.len(), outcome.tasks_removed)
        }
        other => format!("{other:?}"),
    }
}

/// The specs of a `submit` or `place` directive: `count` of the same one.
fn submitted_specs(case: &TestCase) -> Vec<TaskSpec> {
    let name = arg(case, "name").unwrap_or("t");
    let mut spec = TaskSpec::builder(name)
        .queue(arg(case, "queue").unwrap_or(limits::DEFAULT_QUEUE))
        .priority(arg(case, "priority").map_or(0, |p| p.parse().expect("a priority")))
        .max_attempts(num(case, "attempts", limits::DEFAULT_MAX_ATTEMPTS.into()) as u32)
        .attempt_timeout_ms(num(case, "timeout", limits::DEFAULT_ATTEMPT_TIMEOUT_MS))
        .delay_ms(num(case, "delay", 0))
        .build();
    spec.constraints = prefixed(case, "constraint.");
    spec.resources = resources(case);
    vec![spec; num(case, "count", 1) as usize]
}
