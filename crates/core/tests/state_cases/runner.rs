//! The data-driven directives: each runs one command or query and prints the answer.

use crate::DEFAULT_BACKOFF_MS;
use crate::oracle::apply_checked;
use crate::parser::all_fields;
use crate::parser::arg;
use crate::parser::arg_u64;
use crate::parser::directive_fields;
use crate::parser::parse_outcome;
use crate::parser::parse_spec;
use crate::parser::parse_value;
use crate::parser::tokenize;
use crate::schedules::fire;
use crate::schedules::schedule_define;
use crate::schedules::schedule_simple;
use crate::schedules::shards;
use crate::schedules::show_schedule;
use crate::schedules::workflow;
use crate::schedules::workflow_get;
use datadriven::TestCase;
use raftsched_core::scheduling::Placement;
use raftsched_core::scheduling::QueuePolicy;
use raftsched_core::state::AttemptOutcome;
use raftsched_core::state::AttemptReport;
use raftsched_core::state::Command;
use raftsched_core::state::CommandResponse;
use raftsched_core::state::ListFilter;
use raftsched_core::state::ListOrder;
use raftsched_core::state::Payload;
use raftsched_core::state::PurgeUnit;
use raftsched_core::state::Resources;
use raftsched_core::state::SchedulerState;
use raftsched_core::state::StateError;
use raftsched_core::state::TaskId;
use raftsched_core::state::TaskSpec;
use raftsched_core::state::TaskStatus;
use raftsched_core::state::WorkerRegistration;
use std::collections::BTreeMap;

pub(crate) fn run_directive(state: &mut SchedulerState, case: &TestCase) -> String {
    let mut out = match case.directive.as_str() {
        "submit" => submit(state, case),
        "cancel" => cancel(state, case),
        "get" => get(state, case),
        "list" => list(state, case),
        "ready" => ready(state, case),
        "counts" => counts(state),
        "clock" => clock(state),
        "snapshot" => snapshot(state),
        "corrupt-snapshot" => corrupt_snapshot(state, case),
        "register" => register(state, case),
        "drain" => drain(state, case),
        "expire" => expire(state, case),
        "assign" => assign(state, case),
        "submit-assign" => submit_assign(state, case),
        "report" => report(state, case),
        "timeout" => timeout(state, case),
        "queue-policy" => queue_policy(state, case),
        "purge" => purge(state, case),
        "policies" => policies(state),
        "workers" => workers(state),
        "schedule-create" => schedule_define(state, case, true),
        "schedule-update" => schedule_define(state, case, false),
        "schedule-pause" => schedule_simple(state, case, "pause"),
        "schedule-resume" => schedule_simple(state, case, "resume"),
        "schedule-delete" => schedule_simple(state, case, "delete"),
        "fire" => fire(state, case),
        "trigger" => schedule_simple(state, case, "trigger"),
        "schedule" => show_schedule(state, case),
        "workflow" => workflow(state, case),
        "workflow-get" => workflow_get(state, case),
        "shards" => shards(state, case),
        other => panic!("unknown directive {other:?}"),
    };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

pub(crate) fn submit(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let specs: Vec<TaskSpec> = if case.args.contains_key("empty") {
        Vec::new()
    } else if case.input.trim().is_empty() {
        vec![parse_spec(directive_fields(case))]
    } else {
        case.input
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| parse_spec(tokenize(line)))
            .collect()
    };
    let CommandResponse::Submitted(outcomes) = apply_checked(state, Command::SubmitTasks { now_ms, specs }) else {
        panic!("submit answered with another response");
    };
    if outcomes.is_empty() {
        return "no outcomes".to_string();
    }
    outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok(o) if o.created => format!("task {} created\n", o.task_id),
            Ok(o) => format!("task {} existing\n", o.task_id),
            Err(e) => format!("{}\n", fmt_err(e)),
        })
        .collect()
}

pub(crate) fn cancel(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let task_id = arg_u64(case, "task").expect("cancel needs task=<id>");
    let mut reason = arg(case, "reason").unwrap_or_else(|| "no reason".to_string());
    for (key, value) in tokenize(&case.input) {
        assert_eq!(key, "reason", "cancel input takes only reason=<value>");
        reason = value;
    }
    let command = Command::CancelTask {
        now_ms,
        task_id,
        reason,
    };
    match apply_checked(state, command) {
        CommandResponse::Cancelled(Ok(outcome)) => match outcome.stopped {
            Some((worker_id, token)) => format!("cancelled {}, stop {worker_id} token={token}", outcome.task_id),
            None => format!("cancelled {}", outcome.task_id),
        },
        CommandResponse::Cancelled(Err(e)) => fmt_err(&e),
        other => panic!("cancel answered {other:?}"),
    }
}

pub(crate) fn get(state: &SchedulerState, case: &TestCase) -> String {
    let task_id = arg_u64(case, "task").expect("get needs task=<id>");
    let Some(task) = state.get(task_id) else {
        if state.was_purged(task_id) {
            return "not found (purged)".to_string();
        }
        return "not found".to_string();
    };
    let spec = &task.spec;
    let mut out = format!(
        "task {} {:?} queue={} priority={} status={} created={} updated={}\n",
        task.id, spec.name, spec.queue, spec.priority, task.status, task.created_at_ms, task.updated_at_ms
    );
    out += &format!("  attempts={} timeout={}", spec.max_attempts, spec.attempt_timeout_ms);
    if let Some(request_id) = &spec.client_request_id {
        out += &format!(" request={request_id:?}");
    }
    if let Some(reason) = &task.reason {
        out += &format!(" reason={reason:?}");
    }
    if task.status == TaskStatus::Pending {
        out += &format!(" ready_at={}", task.ready_at_ms);
    }
    out.push('\n');
    match &spec.payload {
        Payload::Command { command_line, env } => {
            out += &format!("  cmd={command_line:?}");
            for (key, value) in env {
                out += &format!(" env.{key}={value:?}");
            }
        }
        Payload::Opaque { kind, data } => out += &format!("  kind={kind} data={} bytes", data.len()),
    }
    for (key, value) in &spec.labels {
        out += &format!(" label.{key}={value:?}");
    }
    let mut dispatch = String::new();
    for (key, value) in &spec.constraints {
        dispatch += &format!(" constraint.{key}={value:?}");
    }
    if spec.resources != Resources::default() {
        dispatch += &format!(" cpu={} mem={}", spec.resources.cpu_millis, spec.resources.memory_mb);
    }
    if let Some(key) = &spec.affinity_key {
        dispatch += &format!(" affinity={key:?}");
    }
    if spec.retry_backoff_ms != DEFAULT_BACKOFF_MS {
        dispatch += &format!(" backoff={}", spec.retry_backoff_ms);
    }
    if spec.delay_ms != 0 {
        dispatch += &format!(" delay={}", spec.delay_ms);
    }
    if spec.not_before_ms != 0 {
        dispatch += &format!(" not_before={}", spec.not_before_ms);
    }
    if !dispatch.is_empty() {
        out += &format!("\n  dispatch:{dispatch}");
    }
    let links = &task.links;
    if links.origin.is_some() || !links.parents.is_empty() || !links.children.is_empty() || !links.shards.is_empty() {
        out += "\n  links:";
        if let Some(origin) = &links.origin {
            out += &format!(" origin={}", origin.key());
        }
        if !links.parents.is_empty() {
            out += &format!(" parents={}", fmt_ids(&links.parents));
        }
        if !links.children.is_empty() {
            out += &format!(" children={}", fmt_ids(&links.children));
        }
        if !links.shards.is_empty() {
            out += &format!(" shards={}", fmt_ids(&links.shards));
        }
    }
    for a in &task.attempts {
        out += &format!(
            "\n  attempt {} token={} worker={} started={}",
            a.number, a.token, a.worker_id, a.started_at_ms
        );
        if let Some(ended) = a.ended_at_ms {
            out += &format!(" ended={ended}");
        }
        out += &format!(" outcome={}", a.outcome.as_str());
        if let Some(code) = a.exit_code {
            out += &format!(" exit={code}");
        }
        if let Some(error) = &a.error {
            out += &format!(" error={error:?}");
        }
        if !a.stdout_tail.is_empty() {
            out += &format!(" stdout={:?}", a.stdout_tail);
        }
        if !a.stderr_tail.is_empty() {
            out += &format!(" stderr={:?}", a.stderr_tail);
        }
    }
    out
}

pub(crate) fn list(state: &SchedulerState, case: &TestCase) -> String {
    let filter = ListFilter {
        namespace: arg(case, "namespace"),
        status: arg(case, "state").map(|s| TaskStatus::parse(&s).unwrap_or_else(|| panic!("unknown state {s:?}"))),
        queue: arg(case, "queue"),
        since_ms: arg_u64(case, "since").unwrap_or(0),
        // The cases were written oldest first, before newest first became the default;
        // `order=newest` asks for the default.
        order: match arg(case, "order").as_deref() {
            None | Some("oldest") => ListOrder::OldestFirst,
            Some("newest") => ListOrder::NewestFirst,
            Some(other) => panic!("unknown order {other:?}: use oldest or newest"),
        },
        name_contains: arg(case, "name"),
        request_id: arg(case, "request_id"),
    };
    let after = arg_u64(case, "after").unwrap_or(0);
    let limit = arg_u64(case, "limit").unwrap_or(100) as usize;
    let (tasks, next) = state.list(&filter, after, limit);
    let mut out: String = tasks
        .iter()
        .map(|t| {
            format!(
                "{} {} queue={} priority={} {:?}\n",
                t.id, t.status, t.spec.queue, t.spec.priority, t.spec.name
            )
        })
        .collect();
    match next {
        Some(id) => out += &format!("next={id}"),
        None => out += "next=none",
    }
    out
}

pub(crate) fn ready(state: &SchedulerState, case: &TestCase) -> String {
    let queues = case.args.get("queue").expect("ready needs queue=<q> or queue=(a,b)");
    queues
        .iter()
        .map(|queue| {
            let ids: Vec<String> = state.ready_in_queue(queue).map(|id| id.to_string()).collect();
            format!("{queue}: [{}]\n", ids.join(" "))
        })
        .collect()
}

pub(crate) fn counts(state: &SchedulerState) -> String {
    let mut out = format!("total={}", state.task_count());
    for status in TaskStatus::ALL {
        let count = state.count_by_status(status);
        // Waiting and skipped (workflows, broadcasts) only when there are any.
        if count > 0 || !matches!(status, TaskStatus::Waiting | TaskStatus::Skipped) {
            out += &format!(" {status}={count}");
        }
    }
    out
}

pub(crate) fn clock(state: &SchedulerState) -> String {
    match state.next_ready_at_ms() {
        Some(at) => format!("clock={} next_ready={at}", state.clock_ms()),
        None => format!("clock={} next_ready=none", state.clock_ms()),
    }
}

pub(crate) fn snapshot(state: &mut SchedulerState) -> String {
    let bytes = state.to_snapshot_bytes();
    let restored = match SchedulerState::from_snapshot_bytes(&bytes) {
        Ok(restored) => restored,
        Err(e) => panic!("a snapshot of a valid state does not decode: {e}"),
    };
    assert_eq!(&restored, state, "the restored state differs from the original");
    assert_eq!(
        restored.to_snapshot_bytes(),
        bytes,
        "the restored state encodes differently"
    );
    *state = restored;
    match state.workers().count() {
        0 => format!("ok tasks={}", state.task_count()),
        workers => format!("ok tasks={} workers={workers}", state.task_count()),
    }
}

pub(crate) fn corrupt_snapshot(state: &SchedulerState, case: &TestCase) -> String {
    let mut bytes = state.to_snapshot_bytes();
    if let Some(n) = arg_u64(case, "truncate") {
        bytes.truncate(bytes.len().saturating_sub(n as usize));
    }
    if let Some(index) = arg_u64(case, "byte") {
        let value = arg_u64(case, "value").expect("byte=<i> needs value=<v>");
        bytes[index as usize] = u8::try_from(value).expect("value is a byte");
    }
    if let Some(n) = arg_u64(case, "append") {
        bytes.extend(std::iter::repeat_n(0u8, n as usize));
    }
    if let Some(n) = arg_u64(case, "garbage") {
        bytes = std::iter::repeat_n(0xffu8, n as usize).collect();
    }
    match SchedulerState::from_snapshot_bytes(&bytes) {
        Ok(_) => panic!("a corrupted snapshot decoded: {:?}", case.args),
        Err(e) => format!("error: {e}"),
    }
}

pub(crate) fn register(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let mut registration = WorkerRegistration {
        id: String::new(),
        session: "s1".to_string(),
        slots: 1,
        labels: BTreeMap::new(),
        resources: Resources::default(),
        lease_ms: 5000,
    };
    for (key, value) in all_fields(case) {
        let number = || -> u64 {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{key}={value:?} is not a number"))
        };
        match key.as_str() {
            "worker" => registration.id = value.clone(),
            "session" => registration.session = value.clone(),
            "slots" => registration.slots = number() as u32,
            "lease" => registration.lease_ms = number(),
            "cpu" => registration.resources.cpu_millis = number() as u32,
            "mem" => registration.resources.memory_mb = number() as u32,
            "labels" => {
                for i in 0..number() {
                    registration.labels.insert(format!("k{i}"), "v".to_string());
                }
            }
            _ => match key.strip_prefix("label.") {
                Some(label) => {
                    registration.labels.insert(parse_value(label), value.clone());
                }
                None => panic!("unknown register field {key:?}"),
            },
        }
    }
    let id = registration.id.clone();
    match apply_checked(state, Command::RegisterWorker { now_ms, registration }) {
        CommandResponse::Registered(Ok(voided)) if voided.is_empty() => format!("registered {id}"),
        CommandResponse::Registered(Ok(voided)) => format!("registered {id}, voided {}", fmt_ids(&voided)),
        CommandResponse::Registered(Err(e)) => fmt_err(&e),
        other => panic!("register answered {other:?}"),
    }
}

pub(crate) fn drain(state: &mut SchedulerState, case: &TestCase) -> String {
    let command = Command::DrainWorker {
        now_ms: arg_u64(case, "at").unwrap_or(0),
        worker_id: arg(case, "worker").expect("drain needs worker=<id>"),
        session: arg(case, "session").unwrap_or_else(|| "s1".to_string()),
    };
    let worker_id = arg(case, "worker").unwrap_or_default();
    match apply_checked(state, command) {
        CommandResponse::Drained(Ok(())) => format!("drained {worker_id}"),
        CommandResponse::Drained(Err(e)) => fmt_err(&e),
        other => panic!("drain answered {other:?}"),
    }
}

pub(crate) fn expire(state: &mut SchedulerState, case: &TestCase) -> String {
    let worker_id = arg(case, "worker").expect("expire needs worker=<id>");
    let command = Command::ExpireWorker {
        now_ms: arg_u64(case, "at").unwrap_or(0),
        worker_id: worker_id.clone(),
        session: arg(case, "session").unwrap_or_else(|| "s1".to_string()),
    };
    let known = state.worker(&worker_id).is_some();
    let CommandResponse::Expired(voided) = apply_checked(state, command) else {
        panic!("expire answered with another response");
    };
    let fate = match (known, state.worker(&worker_id).is_some()) {
        (false, _) => "not registered",
        (true, true) => "kept (another session)",
        (true, false) => "removed",
    };
    format!("voided {}, worker {worker_id} {fate}", fmt_ids(&voided))
}

pub(crate) fn assign(state: &mut SchedulerState, case: &TestCase) -> String {
    let assignments: Vec<(TaskId, String)> = case
        .input
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: BTreeMap<String, String> = tokenize(line).into_iter().collect();
            let task_id = fields["task"].parse().expect("task=<id> is a number");
            (task_id, fields["worker"].clone())
        })
        .collect();
    let command = Command::AssignTasks {
        now_ms: arg_u64(case, "at").unwrap_or(0),
        seed: arg_u64(case, "seed").unwrap_or(0),
        assignments,
    };
    let CommandResponse::Assigned(outcomes) = apply_checked(state, command) else {
        panic!("assign answered with another response");
    };
    if outcomes.is_empty() {
        return "no outcomes".to_string();
    }
    outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok(o) => format!(
                "task {} -> {} attempt={} token={}\n",
                o.task_id, o.worker_id, o.attempt, o.token
            ),
            Err(e) => format!("{}\n", fmt_err(e)),
        })
        .collect()
}

pub(crate) fn submit_assign(state: &mut SchedulerState, case: &TestCase) -> String {
    let (workers, specs): (Vec<Option<String>>, Vec<TaskSpec>) = case
        .input
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (worker, fields): (Vec<_>, Vec<_>) = tokenize(line).into_iter().partition(|(k, _)| k == "worker");
            let worker = worker.into_iter().next().map(|(_, w)| w).filter(|w| w != "-");
            (worker, parse_spec(fields))
        })
        .unzip();
    let command = Command::SubmitAndAssign {
        now_ms: arg_u64(case, "at").unwrap_or(0),
        seed: arg_u64(case, "seed").unwrap_or(0),
        specs,
        workers,
    };
    let CommandResponse::SubmittedAndAssigned(outcomes) = apply_checked(state, command) else {
        panic!("submit-assign answered with another response");
    };
    outcomes
        .iter()
        .map(|(submitted, assigned)| match (submitted, assigned) {
            (Err(e), _) => format!("{}\n", fmt_err(e)),
            (Ok(o), _) if !o.created => format!("task {} existing\n", o.task_id),
            (Ok(o), None) => format!("task {} created\n", o.task_id),
            (Ok(o), Some(Ok(a))) => format!(
                "task {} created -> {} attempt={} token={}\n",
                o.task_id, a.worker_id, a.attempt, a.token
            ),
            (Ok(o), Some(Err(e))) => format!("task {} created unassigned: {}\n", o.task_id, fmt_err(e)),
        })
        .collect()
}

pub(crate) fn report(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let mut report = AttemptReport {
        task_id: 0,
        token: 0,
        outcome: AttemptOutcome::Succeeded,
        exit_code: None,
        error: None,
        retryable: true,
        stdout_tail: String::new(),
        stderr_tail: String::new(),
        worker_id: String::new(),
        session: String::new(),
    };
    let mut jitter = 0;
    for (key, value) in all_fields(case) {
        let number = || -> u64 {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{key}={value:?} is not a number"))
        };
        match key.as_str() {
            "at" => {}
            "task" => report.task_id = number(),
            "token" => report.token = number(),
            "jitter" => jitter = number(),
            "outcome" => report.outcome = parse_outcome(&value),
            "exit" => report.exit_code = Some(value.parse().expect("exit=<n> is a number")),
            "error" => report.error = Some(value.clone()),
            "retryable" => report.retryable = value.parse().expect("retryable=true|false"),
            "stdout" => report.stdout_tail = value.clone(),
            "stderr" => report.stderr_tail = value.clone(),
            // Unset, the report is unbound (as in a v0-v2 entry): apply checks only its token.
            "worker" => report.worker_id = value.clone(),
            "session" => report.session = value.clone(),
            _ => panic!("unknown report field {key:?}"),
        }
    }
    let task_id = report.task_id;
    let response = apply_checked(state, Command::ReportResult { now_ms, report, jitter });
    fmt_reported(state, task_id, response)
}

pub(crate) fn timeout(state: &mut SchedulerState, case: &TestCase) -> String {
    let task_id = arg_u64(case, "task").expect("timeout needs task=<id>");
    let command = Command::TimeOutAttempt {
        now_ms: arg_u64(case, "at").unwrap_or(0),
        task_id,
        token: arg_u64(case, "token").expect("timeout needs token=<t>"),
        jitter: arg_u64(case, "jitter").unwrap_or(0),
    };
    let response = apply_checked(state, command);
    fmt_reported(state, task_id, response)
}

pub(crate) fn fmt_reported(state: &SchedulerState, task_id: TaskId, response: CommandResponse) -> String {
    match response {
        CommandResponse::Reported(Ok(status)) => {
            let task = state.get(task_id).expect("a reported task exists");
            match status {
                TaskStatus::Pending => format!("status=pending ready_at={}", task.ready_at_ms),
                TaskStatus::Failed => format!("status=failed reason={:?}", task.reason.as_deref().unwrap_or_default()),
                other => format!("status={other}"),
            }
        }
        CommandResponse::Reported(Err(e)) => fmt_err(&e),
        other => panic!("report answered {other:?}"),
    }
}

pub(crate) fn queue_policy(state: &mut SchedulerState, case: &TestCase) -> String {
    let mut policy = QueuePolicy::default();
    let mut queue = None;
    for (key, value) in all_fields(case) {
        match key.as_str() {
            "queue" => queue = Some(value),
            "weight" => policy.weight = value.parse().expect("weight=<n> is a number"),
            "retention" => {
                policy.retention_ms = match value.as_str() {
                    "default" => None,
                    ms => Some(ms.parse().expect("retention=<ms>|default")),
                }
            }
            "placement" => {
                policy.placement = Placement::parse(&value).unwrap_or_else(|| panic!("unknown placement {value:?}"))
            }
            _ => panic!("unknown queue-policy field {key:?}"),
        }
    }
    let command = Command::SetQueuePolicy {
        now_ms: arg_u64(case, "at").unwrap_or(0),
        queue: queue.expect("queue-policy needs queue=<q>"),
        policy,
    };
    match apply_checked(state, command) {
        CommandResponse::QueuePolicySet(Ok(())) => "ok".to_string(),
        CommandResponse::QueuePolicySet(Err(e)) => fmt_err(&e),
        other => panic!("queue-policy answered {other:?}"),
    }
}

pub(crate) fn policies(state: &SchedulerState) -> String {
    let lines: Vec<String> = state
        .queue_policies()
        .map(|(queue, p)| {
            let retention = p.retention_ms.map_or("default".to_string(), |ms| ms.to_string());
            format!(
                "{queue} weight={} placement={} retention={retention}",
                p.weight,
                p.placement.as_str()
            )
        })
        .collect();
    if lines.is_empty() {
        return "no policies".to_string();
    }
    lines.join("\n")
}

pub(crate) fn workers(state: &SchedulerState) -> String {
    let lines: Vec<String> = state
        .workers()
        .map(|w| {
            let running: Vec<TaskId> = state.running_on(&w.id).map(|t| t.id).collect();
            let mut line = format!(
                "{} session={} slots={} running={} lease={} registered={}",
                w.id,
                w.session,
                w.slots,
                fmt_ids(&running),
                w.lease_ms,
                w.registered_at_ms
            );
            if w.draining {
                line += " draining";
            }
            for (key, value) in &w.labels {
                line += &format!(" label.{key}={value:?}");
            }
            if w.resources != Resources::default() {
                let free = state.free_resources(&w.id);
                line += &format!(
                    " cpu={} mem={} free: cpu={} mem={}",
                    w.resources.cpu_millis, w.resources.memory_mb, free.cpu_millis, free.memory_mb
                );
            }
            line
        })
        .collect();
    if lines.is_empty() {
        return "no workers".to_string();
    }
    lines.join("\n")
}

pub(crate) fn fmt_ids(ids: &[TaskId]) -> String {
    let ids: Vec<String> = ids.iter().map(TaskId::to_string).collect();
    format!("[{}]", ids.join(" "))
}

/// One line per error variant, naming the field for invalid arguments.
pub(crate) fn fmt_err(e: &StateError) -> String {
    match e {
        StateError::InvalidArgument { field, problem } => format!("InvalidArgument {field}: {problem}"),
        StateError::TaskNotFound(id) => format!("TaskNotFound {id}"),
        StateError::AlreadyFinished { task_id, status } => format!("AlreadyFinished task={task_id} status={status}"),
        StateError::RequestIdConflict { request_id, task_id } => {
            format!("RequestIdConflict request={request_id:?} task={task_id}")
        }
        StateError::WorkerNotFound(worker_id) => format!("WorkerNotFound {worker_id}"),
        StateError::WorkerSessionMismatch { worker_id } => format!("WorkerSessionMismatch {worker_id}"),
        StateError::StaleToken {
            task_id,
            token,
            current,
        } => format!("StaleToken task={task_id} token={token}: {current}"),
        StateError::NotAttemptHolder { .. } => format!("NotAttemptHolder: {e}"),
        StateError::NotAssignable { task_id, why } => format!("NotAssignable task={task_id}: {why}"),
        StateError::ScheduleNotFound(name) => format!("ScheduleNotFound {name}"),
        StateError::ScheduleExists(name) => format!("ScheduleExists {name}"),
        StateError::AlreadyFired {
            schedule,
            scheduled_ms,
            cursor_ms,
        } => format!("AlreadyFired {schedule} at={scheduled_ms} cursor={cursor_ms}"),
        StateError::ScheduleNotFireable { schedule, why } => format!("ScheduleNotFireable {schedule}: {why}"),
        StateError::WorkflowNotFound(id) => format!("WorkflowNotFound {id}"),
        StateError::TaskExpired(id) => format!("TaskExpired {id}"),
        StateError::WorkflowExpired(id) => format!("WorkflowExpired {id}"),
    }
}

/// `purge at=<ms> [expired] [units=<n>]` with input lines `task=<id>` or `workflow=<id>`:
/// one `PurgeTasks` entry. `expired` asks the state for the expired units at `at` (what the
/// leader proposes), at most `units` of them (default 1000). Prints the units purged and
/// the tasks removed, or the error.
pub(crate) fn purge(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let mut units = Vec::new();
    if case.args.contains_key("expired") {
        let max = arg_u64(case, "units").map_or(raftsched_core::state::limits::MAX_PURGES_PER_ENTRY, |n| n as usize);
        units = state.expired_units(now_ms, max, raftsched_core::state::limits::MAX_PURGES_PER_ENTRY);
    }
    for line in case.input.lines().filter(|line| !line.trim().is_empty()) {
        for (key, value) in tokenize(line) {
            let id: u64 = value.parse().expect("an id is a number");
            units.push(match key.as_str() {
                "task" => PurgeUnit::Task(id),
                "workflow" => PurgeUnit::Workflow(id),
                other => panic!("unknown purge unit {other:?}"),
            });
        }
    }
    if let Some(n) = arg_u64(case, "repeat") {
        units = std::iter::repeat_n(PurgeUnit::Task(1), n as usize).collect();
    }
    match apply_checked(state, Command::PurgeTasks { now_ms, units }) {
        CommandResponse::Purged(Ok(outcome)) => {
            let purged: Vec<String> = outcome.purged.iter().map(ToString::to_string).collect();
            format!("purged [{}] tasks={}", purged.join(", "), outcome.tasks_removed)
        }
        CommandResponse::Purged(Err(e)) => fmt_err(&e),
        other => panic!("purge answered {other:?}"),
    }
}
