//! Data-driven tests of the pure scheduler state machine, in the style of raft-rs: every file
//! under `tests/testdata/state/` is a script of directives, each followed by the text the
//! state answers. `REWRITE=1 cargo test --test state_cases` regenerates the expected text.
//!
//! Every file starts from a fresh [`SchedulerState`]; after every directive the runner checks
//! the state's invariants and panics if one is broken.
//!
//! Directives:
//!
//! - `submit at=<ms>` with one spec per input line (one log entry, a batch), or with the spec
//!   as directive arguments when there is no input: `submit at=1000 name=a queue=q`;
//!   `submit at=<ms> empty` submits a batch of no specs.
//!   Prints one line per spec: `task <id> created`, `task <id> existing` or the error.
//! - `cancel at=<ms> task=<id> [reason=<word>]`; an input line `reason=<value>` gives any
//!   reason the directive line cannot spell. Prints `cancelled <id>` or the error.
//! - `get task=<id>`: the task, or `not found`.
//! - `list [state=<status>] [queue=<q>] [after=<id>] [limit=<n>]`: one line per task, then
//!   `next=<id>` or `next=none`.
//! - `ready queue=<q>` or `ready queue=(a,b)`: the pending ids of each queue, dispatch order.
//! - `counts`: the number of tasks in total and per status.
//! - `snapshot`: encodes the state, decodes it, checks both are equal and that the copy
//!   encodes to the same bytes, and carries on with the copy (so later directives run on
//!   indexes rebuilt by restore); prints `ok tasks=<n>`.
//! - `corrupt-snapshot [truncate=<n>] [byte=<i> value=<v>] [append=<n>] [garbage=<n>]`:
//!   damages the encoded state and prints the decode error (it must not decode).
//!
//! Spec fields (`key=value`, separated by spaces): `name`, `queue`, `priority`, `request`,
//! `attempts`, `timeout`, `cmd` (command line), `env.<KEY>`, `label.<key>`, `kind` and
//! `data` (an opaque payload instead of a command), and the generators `labels=<n>` and
//! `envs=<n>` (that many distinct entries). A value may be double-quoted with the escapes
//! `\n`, `\t`, `\r`, `\0`, `\u{7f}`, `\"`, `\\`, or written `(<text>*<n>)` for `<text>` repeated n times;
//! the part of an `env.`/`label.` key after the dot may use the same forms.

use std::collections::BTreeMap;

use datadriven::TestCase;
use raftsched::state::Command;
use raftsched::state::CommandResponse;
use raftsched::state::ListFilter;
use raftsched::state::Payload;
use raftsched::state::SchedulerState;
use raftsched::state::StateError;
use raftsched::state::TaskSpec;
use raftsched::state::TaskStatus;

#[test]
fn state_cases() {
    datadriven::walk("tests/testdata/state", |file| {
        let mut state = SchedulerState::new();
        let filename = file.filename.clone();
        file.run(|case| -> String {
            let output = run_directive(&mut state, case);
            if let Err(violation) = state.check_invariants() {
                panic!(
                    "{filename}: `{}` (input {:?}) broke a state invariant: {violation}",
                    case.directive, case.input
                );
            }
            output
        });
    });
}

fn run_directive(state: &mut SchedulerState, case: &TestCase) -> String {
    let mut out = match case.directive.as_str() {
        "submit" => submit(state, case),
        "cancel" => cancel(state, case),
        "get" => get(state, case),
        "list" => list(state, case),
        "ready" => ready(state, case),
        "counts" => counts(state),
        "snapshot" => snapshot(state),
        "corrupt-snapshot" => corrupt_snapshot(state, case),
        other => panic!("unknown directive {other:?}"),
    };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Applies `command` and checks the response against what it must have done to the state:
/// refused work changes nothing, and exactly the created tasks are added.
fn apply_checked(state: &mut SchedulerState, command: Command) -> CommandResponse {
    let before = state.clone();
    let response = state.apply(command);
    match &response {
        CommandResponse::Submitted(outcomes) => {
            let created = outcomes.iter().filter(|o| matches!(o, Ok(o) if o.created)).count();
            assert_eq!(
                state.task_count(),
                before.task_count() + created,
                "submit created a different number of tasks than it reported"
            );
            if created == 0 {
                assert_eq!(*state, before, "a submit that created nothing changed the state");
            }
        }
        CommandResponse::Cancelled(Err(_)) => {
            assert_eq!(*state, before, "a refused cancel changed the state");
        }
        CommandResponse::Cancelled(Ok(_)) | CommandResponse::Empty => {}
    }
    response
}

fn submit(state: &mut SchedulerState, case: &TestCase) -> String {
    let now_ms = arg_u64(case, "at").unwrap_or(0);
    let specs: Vec<TaskSpec> = if case.args.contains_key("empty") {
        Vec::new()
    } else if case.input.trim().is_empty() {
        let fields = case
            .args
            .iter()
            .filter(|(key, _)| key.as_str() != "at")
            .map(|(key, values)| (key.clone(), values.join(",")))
            .collect::<BTreeMap<_, _>>();
        vec![parse_spec(fields.into_iter().collect())]
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

fn cancel(state: &mut SchedulerState, case: &TestCase) -> String {
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
        CommandResponse::Cancelled(Ok(id)) => format!("cancelled {id}"),
        CommandResponse::Cancelled(Err(e)) => fmt_err(&e),
        other => panic!("cancel answered {other:?}"),
    }
}

fn get(state: &SchedulerState, case: &TestCase) -> String {
    let task_id = arg_u64(case, "task").expect("get needs task=<id>");
    let Some(task) = state.get(task_id) else {
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
    out
}

fn list(state: &SchedulerState, case: &TestCase) -> String {
    let filter = ListFilter {
        status: arg(case, "state").map(|s| TaskStatus::parse(&s).unwrap_or_else(|| panic!("unknown state {s:?}"))),
        queue: arg(case, "queue"),
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

fn ready(state: &SchedulerState, case: &TestCase) -> String {
    let queues = case.args.get("queue").expect("ready needs queue=<q> or queue=(a,b)");
    queues
        .iter()
        .map(|queue| {
            let ids: Vec<String> = state.ready_in_queue(queue).map(|id| id.to_string()).collect();
            format!("{queue}: [{}]\n", ids.join(" "))
        })
        .collect()
}

fn counts(state: &SchedulerState) -> String {
    let mut out = format!("total={}", state.task_count());
    for status in TaskStatus::ALL {
        out += &format!(" {status}={}", state.count_by_status(status));
    }
    out
}

fn snapshot(state: &mut SchedulerState) -> String {
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
    format!("ok tasks={}", state.task_count())
}

fn corrupt_snapshot(state: &SchedulerState, case: &TestCase) -> String {
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

/// One line per error variant, naming the field for invalid arguments.
fn fmt_err(e: &StateError) -> String {
    match e {
        StateError::InvalidArgument { field, problem } => format!("InvalidArgument {field}: {problem}"),
        StateError::TaskNotFound(id) => format!("TaskNotFound {id}"),
        StateError::AlreadyFinished { task_id, status } => format!("AlreadyFinished task={task_id} status={status}"),
        StateError::RequestIdConflict { request_id, task_id } => {
            format!("RequestIdConflict request={request_id:?} task={task_id}")
        }
    }
}

fn arg(case: &TestCase, key: &str) -> Option<String> {
    case.args.get(key).map(|values| values.join(","))
}

fn arg_u64(case: &TestCase, key: &str) -> Option<u64> {
    arg(case, key).map(|v| v.parse().unwrap_or_else(|_| panic!("{key}={v:?} is not a number")))
}

/// Builds a spec from `key=value` fields; fields not given take a valid default.
fn parse_spec(fields: Vec<(String, String)>) -> TaskSpec {
    let mut spec = TaskSpec {
        name: "task".to_string(),
        queue: "default".to_string(),
        priority: 0,
        payload: Payload::Command {
            command_line: "true".to_string(),
            env: BTreeMap::new(),
        },
        labels: BTreeMap::new(),
        max_attempts: 3,
        attempt_timeout_ms: 60_000,
        client_request_id: None,
    };
    let mut command_line = "true".to_string();
    let mut env = BTreeMap::new();
    let mut opaque: Option<(String, Vec<u8>)> = None;
    for (key, value) in fields {
        let number = || -> i64 {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{key}={value:?} is not a number"))
        };
        match key.as_str() {
            "name" => spec.name = value.clone(),
            "queue" => spec.queue = value.clone(),
            "priority" => spec.priority = number() as i32,
            "request" => spec.client_request_id = Some(value.clone()),
            "attempts" => spec.max_attempts = number() as u32,
            "timeout" => spec.attempt_timeout_ms = number() as u64,
            "cmd" => command_line = value.clone(),
            "kind" => opaque.get_or_insert_with(Default::default).0 = value.clone(),
            "data" => opaque.get_or_insert_with(Default::default).1 = value.clone().into_bytes(),
            "labels" => {
                for i in 0..number() {
                    spec.labels.insert(format!("k{i}"), "v".to_string());
                }
            }
            "envs" => {
                for i in 0..number() {
                    env.insert(format!("E{i}"), "v".to_string());
                }
            }
            _ => {
                if let Some(label) = key.strip_prefix("label.") {
                    spec.labels.insert(parse_value(label), value.clone());
                } else if let Some(name) = key.strip_prefix("env.") {
                    env.insert(parse_value(name), value.clone());
                } else {
                    panic!("unknown spec field {key:?}");
                }
            }
        }
    }
    spec.payload = match opaque {
        Some((kind, data)) => Payload::Opaque { kind, data },
        None => Payload::Command { command_line, env },
    };
    spec
}

/// Splits a spec line into `key=value` pairs. A token is quoted as a whole value
/// (`name="a b"`), or is a bare word up to the next space; see [`parse_value`].
fn tokenize(line: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut chars = line.trim().chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ').is_some() {}
        if chars.peek().is_none() {
            return fields;
        }
        let mut token = String::new();
        let mut in_quotes = false;
        while let Some(c) = chars.next() {
            match c {
                ' ' if !in_quotes => break,
                '"' => {
                    in_quotes = !in_quotes;
                    token.push(c);
                }
                '\\' if in_quotes => {
                    token.push(c);
                    token.extend(chars.next());
                }
                _ => token.push(c),
            }
        }
        assert!(!in_quotes, "unterminated quote in {line:?}");
        // The key ends at the first `=` that is not inside a generator or quotes.
        let split = split_key(&token).unwrap_or_else(|| panic!("expected key=value, got {token:?}"));
        let (key, value) = token.split_at(split);
        fields.push((key.to_string(), parse_value(&value[1..])));
    }
}

fn split_key(token: &str) -> Option<usize> {
    let mut depth = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in token.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '(' if !in_quotes => depth += 1,
            ')' if !in_quotes => depth -= 1,
            '=' if depth == 0 && !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// `"quoted with escapes"`, `(text*n)` for text repeated n times, or the text itself.
fn parse_value(raw: &str) -> String {
    if let Some(quoted) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let mut out = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            out.push(match chars.next() {
                Some('n') => '\n',
                Some('t') => '\t',
                Some('r') => '\r',
                Some('0') => '\0',
                Some('u') => {
                    let hex: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                    let code = u32::from_str_radix(&hex, 16).unwrap_or_else(|_| panic!("bad \\u{{}} in {raw:?}"));
                    char::from_u32(code).unwrap_or_else(|| panic!("bad \\u{{}} in {raw:?}"))
                }
                Some(other) => other,
                None => panic!("dangling escape in {raw:?}"),
            });
        }
        return out;
    }
    if let Some(generator) = raw.strip_prefix('(').and_then(|r| r.strip_suffix(')'))
        && let Some((text, count)) = generator.rsplit_once('*')
    {
        let count: usize = count.parse().unwrap_or_else(|_| panic!("bad repeat count in {raw:?}"));
        return text.repeat(count);
    }
    raw.to_string()
}

/// xorshift64*: a tiny deterministic generator, so a failing run can be replayed by seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // xorshift must not start at 0; mix the seed so small seeds differ from the start.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A spec drawn from small pools, so request ids repeat (idempotent retries and conflicts),
/// queues and priorities collide (ready order ties), and some specs are invalid. A spec
/// with a request id is usually the one spec that id stands for (a retry), sometimes
/// another (a conflict).
fn random_spec(rng: &mut Rng) -> TaskSpec {
    let request = (rng.below(2) == 0).then(|| rng.below(12));
    let mut fields_rng = match request {
        Some(request) if rng.below(4) != 0 => Rng::new(1000 + request),
        _ => Rng::new(rng.next()),
    };
    let r = &mut fields_rng;
    let mut fields = vec![
        (
            "name".to_string(),
            r.pick(&["a", "b", "c", "d", "e", "f", "g", ""]).to_string(),
        ),
        (
            "queue".to_string(),
            r.pick(&["q1", "q2", "q3", "q1", "q2", "q3", "bad queue"]).to_string(),
        ),
        ("priority".to_string(), (r.below(5) as i64 - 2).to_string()),
        (
            "attempts".to_string(),
            r.pick(&["1", "3", "3", "3", "100", "0"]).to_string(),
        ),
    ];
    if let Some(request) = request {
        fields.push(("request".to_string(), format!("r{request}")));
    }
    if r.below(4) == 0 {
        fields.push(("kind".to_string(), "blob".to_string()));
        fields.push(("data".to_string(), "x".repeat(r.below(64) as usize)));
    }
    if r.below(4) == 0 {
        fields.push((format!("label.l{}", r.below(3)), "v".to_string()));
    }
    parse_spec(fields)
}

fn random_command(rng: &mut Rng, now_ms: u64, max_id: u64) -> Command {
    if rng.below(3) == 0 {
        Command::CancelTask {
            now_ms,
            task_id: rng.below(max_id + 3),
            reason: rng.pick(&["stop", "", "operator request"]).to_string(),
        }
    } else {
        let count = 1 + rng.below(4) as usize;
        Command::SubmitTasks {
            now_ms,
            specs: (0..count).map(|_| random_spec(rng)).collect(),
        }
    }
}

/// The same command sequence applied to two fresh states gives the same responses and the
/// same snapshot bytes at every step; a third state, restored from a snapshot halfway,
/// continues identically. Seeds are fixed; `STATE_SEED=<n>` replays one.
#[test]
fn same_log_same_state() {
    let seeds: Vec<u64> = match std::env::var("STATE_SEED") {
        Ok(seed) => vec![seed.parse().expect("STATE_SEED is a number")],
        Err(_) => (1..=20).collect(),
    };
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for seed in &seeds {
        let seed = *seed;
        eprintln!("same_log_same_state: seed {seed} (replay with STATE_SEED={seed})");
        let mut rng = Rng::new(seed);
        let mut left = SchedulerState::new();
        let mut right = SchedulerState::new();
        let mut restored: Option<SchedulerState> = None;
        let steps = 300;
        for step in 0..steps {
            let command = random_command(&mut rng, 1000 + step * 10, left.task_count() as u64);
            let left_response = apply_checked(&mut left, command.clone());
            let right_response = apply_checked(&mut right, command.clone());
            assert_eq!(
                left_response, right_response,
                "seed {seed} step {step}: responses differ"
            );
            for kind in response_kinds(&left_response) {
                *seen.entry(kind).or_default() += 1;
            }
            if let Some(restored) = restored.as_mut() {
                let response = apply_checked(restored, command);
                assert_eq!(
                    response, left_response,
                    "seed {seed} step {step}: restored state answered differently"
                );
                assert_eq!(*restored, left, "seed {seed} step {step}: restored state diverged");
            }
            for (which, state) in [("left", &left), ("right", &right)] {
                if let Err(violation) = state.check_invariants() {
                    panic!("seed {seed} step {step}: {which} state broke an invariant: {violation}");
                }
            }
            let bytes = left.to_snapshot_bytes();
            assert_eq!(
                bytes,
                right.to_snapshot_bytes(),
                "seed {seed} step {step}: snapshots differ"
            );
            if step == steps / 2 {
                restored = Some(SchedulerState::from_snapshot_bytes(&bytes).expect("a valid snapshot decodes"));
            }
        }
        assert!(left.task_count() > 0, "seed {seed}: the sequence created no task");
    }
    eprintln!("same_log_same_state: outcomes {seen:?}");
    if seeds.len() > 1 {
        for kind in [
            "created",
            "existing",
            "InvalidArgument",
            "RequestIdConflict",
            "cancelled",
            "TaskNotFound",
            "AlreadyFinished",
        ] {
            assert!(seen.contains_key(kind), "the random commands never produced {kind}");
        }
    }
}

fn response_kinds(response: &CommandResponse) -> Vec<&'static str> {
    let kind = |result: Result<&'static str, &StateError>| match result {
        Ok(kind) => kind,
        Err(StateError::InvalidArgument { .. }) => "InvalidArgument",
        Err(StateError::TaskNotFound(_)) => "TaskNotFound",
        Err(StateError::AlreadyFinished { .. }) => "AlreadyFinished",
        Err(StateError::RequestIdConflict { .. }) => "RequestIdConflict",
    };
    match response {
        CommandResponse::Submitted(outcomes) => outcomes
            .iter()
            .map(|o| kind(o.as_ref().map(|o| if o.created { "created" } else { "existing" })))
            .collect(),
        CommandResponse::Cancelled(result) => vec![kind(result.as_ref().map(|_| "cancelled"))],
        CommandResponse::Empty => vec![],
    }
}

/// Every truncation and every single-byte change of a snapshot either decodes to a state
/// that keeps its invariants or is refused with an error; decoding never panics.
#[test]
fn damaged_snapshots_never_panic() {
    let mut rng = Rng::new(7);
    let mut state = SchedulerState::new();
    for step in 0..40 {
        let command = random_command(&mut rng, step * 10, state.task_count() as u64);
        state.apply(command);
    }
    let bytes = state.to_snapshot_bytes();
    let check = |damaged: &[u8]| {
        if let Ok(decoded) = SchedulerState::from_snapshot_bytes(damaged)
            && let Err(violation) = decoded.check_invariants()
        {
            panic!("a damaged snapshot decoded to a broken state: {violation}");
        }
    };
    for len in 0..bytes.len() {
        check(&bytes[..len]);
    }
    for index in 0..bytes.len() {
        for value in [0u8, 1, 0x7f, 0x80, 0xff, bytes[index].wrapping_add(1)] {
            let mut damaged = bytes.clone();
            damaged[index] = value;
            check(&damaged);
        }
    }
}
