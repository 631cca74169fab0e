//! What the fuzzer sends: one generated request per RPC of both public services, and
//! sequences (scenarios) that chain them through ids the cluster handed out.

use proptest::prelude::*;
use proptest::sample::select;
use raftsched_core::scheduling::MAX_QUEUE_WEIGHT;
use raftsched_core::state::limits as l;

use super::values::MapGen;
use super::values::Text;
use super::values::Tokens;
use super::values::choice;
use super::values::enum_value;
use super::values::i32s;
use super::values::maps;
use super::values::text;
use super::values::tokens;
use super::values::u32s;
use super::values::u64s;

/// Which node gets the request: the leader, or a follower (resolved when sent).
#[derive(Clone, Copy, Debug)]
pub enum Target {
    Leader,
    Follower(usize),
}

/// A number the cluster handed out (task id, workflow id, ...), or a literal one.
#[derive(Clone, Debug)]
pub enum Id {
    /// The n-th newest one seen; a literal 1 when none was seen yet.
    Known(usize),
    Lit(u64),
}

/// A worker identity: one that registered (its real id and session), a real id with
/// another session, or made up.
#[derive(Clone, Debug)]
pub enum WorkerRef {
    Known(usize),
    KnownIdOtherSession(usize, Text),
    Lit(Text, Text),
}

/// An attempt to report on: one the harness was assigned (real task id and token), a real
/// task with a made-up token, or both made up.
#[derive(Clone, Debug)]
pub enum AttemptRef {
    Known(usize),
    KnownTaskOtherToken(usize, u64),
    Lit(u64, u64),
}

/// A schedule name: one used before, or a generated one.
#[derive(Clone, Debug)]
pub enum Name {
    Known(usize),
    Gen(Text),
}

#[derive(Clone, Debug)]
pub enum PayloadGen {
    None,
    Command { line: Text, env: MapGen },
    Opaque { kind: Text, data_len: usize },
}

#[derive(Clone, Debug)]
pub struct SpecGen {
    pub name: Text,
    pub queue: Text,
    pub priority: i32,
    pub payload: PayloadGen,
    pub labels: MapGen,
    pub max_attempts: u32,
    pub attempt_timeout_ms: u64,
    pub client_request_id: Text,
    pub constraints: MapGen,
    pub resources: Option<(u32, u32)>,
    pub affinity_key: Text,
    pub retry_backoff_ms: u64,
    pub run_at_ms: u64,
    pub delay_ms: u64,
}

#[derive(Clone, Debug)]
pub enum RecurrenceGen {
    None,
    Cron(Text, Text),
    Every(u64),
}

#[derive(Clone, Debug)]
pub struct ScheduleGen {
    pub recurrence: RecurrenceGen,
    pub template: Option<SpecGen>,
    pub start_ms: u64,
    pub end_ms: u64,
    pub misfire: Text,
    pub catch_up_window_ms: u64,
    pub overlap: Text,
}

/// The edges of a workflow of `n` tasks (keys `t0`, `t1`, ...), or a broken shape.
#[derive(Clone, Debug)]
pub enum Shape {
    Empty,
    /// t(i) after t(i-1): the depth of the chain is n.
    Chain(usize),
    /// Every task after t0.
    Fan(usize),
    /// Every task after every earlier one: n(n-1)/2 edges.
    Dense(usize),
    Cycle(usize),
    SelfLoop,
    DuplicateKeys,
    UnknownParent,
    /// One task with a generated key and a generated parent key.
    OddKeys(Text, Text),
}

#[derive(Clone, Debug)]
pub struct WorkflowGen {
    pub name: Text,
    pub request_id: Text,
    pub shape: Shape,
    pub spec: SpecGen,
}

#[derive(Clone, Debug)]
pub struct RegisterGen {
    pub worker_id: Text,
    pub session_id: Text,
    pub slots: u32,
    pub labels: MapGen,
    pub resources: Option<(u32, u32)>,
    pub lease_ms: u64,
}

#[derive(Clone, Debug)]
pub struct ReportGen {
    pub outcome: i32,
    pub exit_code: i32,
    pub has_exit_code: bool,
    pub error: Text,
    pub non_retryable: bool,
    pub stdout_tail: Text,
    pub stderr_tail: Text,
}

/// One request of one RPC. Field names follow proto/raftsched.proto.
#[derive(Clone, Debug)]
pub enum Rpc {
    SubmitTask(Option<SpecGen>),
    /// The specs, the last one repeated to make `count` in all.
    SubmitTasks(Vec<SpecGen>, usize),
    GetTask(Id, i32),
    ListTasks {
        state: i32,
        queue: Text,
        page_size: u32,
        page_token: Text,
        consistency: i32,
        since_ms: u64,
        oldest_first: bool,
        name_contains: Text,
        request_id: Text,
    },
    CancelTask(Id, Text),
    ClusterStatus,
    NodeStatus,
    /// Queue, weight, placement, retention (ms; 0 is the default).
    SetQueuePolicy(Option<(Text, u32, Text, u64)>),
    ListQueues(Text),
    TransferLeader(u64),
    AddNode(u64, Text),
    /// AddNode of a member under its own address.
    AddSelf(u64),
    RemoveNode(u64),
    CreateSchedule(Name, Option<ScheduleGen>),
    UpdateSchedule(Name, Option<ScheduleGen>),
    GetSchedule(Name, i32),
    ListSchedules {
        page_size: u32,
        page_token: Text,
        consistency: i32,
    },
    PauseSchedule(Name),
    ResumeSchedule(Name),
    DeleteSchedule(Name),
    TriggerSchedule(Name),
    SubmitWorkflow(WorkflowGen),
    GetWorkflow(Id, i32, Text),
    SubmitBroadcast(Option<SpecGen>, u32),
    RegisterWorker(RegisterGen),
    /// Opens the stream, keeps what it is assigned for a moment, and hangs up.
    Attach(WorkerRef, Tokens),
    Heartbeat(WorkerRef, Tokens),
    ReportResult(AttemptRef, ReportGen),
    /// Reports every attempt the last Attach was given (newest first, at most 64).
    ReportAll(ReportGen),
    DrainWorker(WorkerRef),
    ListWorkers(Text),
}

#[derive(Clone, Debug)]
pub struct Op {
    pub target: Target,
    pub rpc: Rpc,
}

fn target() -> BoxedStrategy<Target> {
    prop_oneof![Just(Target::Leader), (0usize..2).prop_map(Target::Follower)].boxed()
}

fn id() -> BoxedStrategy<Id> {
    prop_oneof![2 => (0usize..4).prop_map(Id::Known), 1 => u64s(1, &[]).prop_map(Id::Lit)].boxed()
}

fn resources() -> BoxedStrategy<Option<(u32, u32)>> {
    prop_oneof![
        Just(None),
        (u32s(100, &[l::MAX_CPU_MILLIS]), u32s(64, &[l::MAX_MEMORY_MB])).prop_map(Some),
    ]
    .boxed()
}

fn payload() -> BoxedStrategy<PayloadGen> {
    let payload = l::MAX_PAYLOAD_BYTES;
    prop_oneof![
        6 => (text("true", payload), maps(l::MAX_ENV_VARS, l::MAX_ENV_KEY_BYTES, 16))
            .prop_map(|(line, env)| PayloadGen::Command { line, env }),
        1 => Just(PayloadGen::None),
        2 => (text("blob", l::MAX_KIND_BYTES), select(vec![0, 1, payload - 5, payload - 4, payload, payload + 1]))
            .prop_map(|(kind, data_len)| PayloadGen::Opaque { kind, data_len }),
    ]
    .boxed()
}

/// Every field drawn on its own: almost never a valid spec.
fn spec_any() -> BoxedStrategy<SpecGen> {
    let names = (
        text("fz", l::MAX_NAME_BYTES),
        text("q", l::MAX_QUEUE_BYTES),
        i32s(),
        payload(),
        maps(l::MAX_LABELS, l::MAX_LABEL_KEY_BYTES, l::MAX_LABEL_VALUE_BYTES),
        u32s(0, &[l::MAX_ATTEMPTS]),
        u64s(0, &[l::MIN_ATTEMPT_TIMEOUT_MS, l::MAX_ATTEMPT_TIMEOUT_MS]),
    );
    let rest = (
        prop_oneof![3 => Just(Text::Lit("")), 1 => text("rid", l::MAX_REQUEST_ID_BYTES)],
        maps(l::MAX_LABELS, l::MAX_LABEL_KEY_BYTES, l::MAX_LABEL_VALUE_BYTES),
        resources(),
        prop_oneof![3 => Just(Text::Lit("")), 1 => text("aff", l::MAX_AFFINITY_KEY_BYTES)],
        u64s(0, &[l::MIN_RETRY_BACKOFF_MS, l::MAX_RETRY_BACKOFF_MS]),
        u64s(0, &[1_700_000_000_000]),
        u64s(0, &[l::MAX_DELAY_MS]),
    );
    (names, rest)
        .prop_map(
            |((name, queue, priority, payload, labels, max_attempts, attempt_timeout_ms), rest)| {
                let (client_request_id, constraints, resources, affinity_key, retry_backoff_ms, run_at_ms, delay_ms) =
                    rest;
                SpecGen {
                    name,
                    queue,
                    priority,
                    payload,
                    labels,
                    max_attempts,
                    attempt_timeout_ms,
                    client_request_id,
                    constraints,
                    resources,
                    affinity_key,
                    retry_backoff_ms,
                    run_at_ms,
                    delay_ms,
                }
            },
        )
        .boxed()
}

/// A spec that passes every check: a command task in queue `q`.
fn valid_spec() -> SpecGen {
    SpecGen {
        name: Text::Lit("fz"),
        queue: Text::Lit("q"),
        priority: 0,
        payload: PayloadGen::Command {
            line: Text::Lit("true"),
            env: MapGen::Empty,
        },
        labels: MapGen::Empty,
        max_attempts: 0,
        attempt_timeout_ms: 0,
        client_request_id: Text::Lit(""),
        constraints: MapGen::Empty,
        resources: None,
        affinity_key: Text::Lit(""),
        retry_backoff_ms: 0,
        run_at_ms: 0,
        delay_ms: 0,
    }
}

/// Takes field `field` (in declaration order) of `from` into `into`.
fn take_spec_field(into: &mut SpecGen, from: &SpecGen, field: usize) {
    match field {
        0 => into.name = from.name.clone(),
        1 => into.queue = from.queue.clone(),
        2 => into.priority = from.priority,
        3 => into.payload = from.payload.clone(),
        4 => into.labels = from.labels.clone(),
        5 => into.max_attempts = from.max_attempts,
        6 => into.attempt_timeout_ms = from.attempt_timeout_ms,
        7 => into.client_request_id = from.client_request_id.clone(),
        8 => into.constraints = from.constraints.clone(),
        9 => into.resources = from.resources,
        10 => into.affinity_key = from.affinity_key.clone(),
        11 => into.retry_backoff_ms = from.retry_backoff_ms,
        12 => into.run_at_ms = from.run_at_ms,
        _ => into.delay_ms = from.delay_ms,
    }
}

/// How much of a generated message is extreme: nothing, one or two fields, or every field.
/// A spec with every field drawn on its own is almost never valid and would never reach
/// apply; shrinking moves toward `Valid`, so a minimal case shows the one field that
/// matters.
#[derive(Clone, Copy, Debug)]
pub enum Mix {
    Valid,
    One(usize),
    Two(usize, usize),
    All,
}

pub fn mix(fields: usize) -> BoxedStrategy<Mix> {
    prop_oneof![
        2 => Just(Mix::Valid),
        4 => (0..fields).prop_map(Mix::One),
        2 => (0..fields, 0..fields).prop_map(|(a, b)| Mix::Two(a, b)),
        1 => Just(Mix::All),
    ]
    .boxed()
}

/// Applies `mix` with `take(into, from, field)`, starting from `valid`.
fn mixed<T: Clone>(valid: T, random: T, mix: Mix, take: fn(&mut T, &T, usize), fields: usize) -> T {
    let mut out = valid;
    let chosen: Vec<usize> = match mix {
        Mix::Valid => vec![],
        Mix::One(a) => vec![a],
        Mix::Two(a, b) => vec![a, b],
        Mix::All => (0..fields).collect(),
    };
    for field in chosen {
        take(&mut out, &random, field);
    }
    out
}

/// A task spec: valid, or with some fields at extremes.
pub fn spec() -> BoxedStrategy<SpecGen> {
    (spec_any(), mix(14))
        .prop_map(|(random, m)| mixed(valid_spec(), random, m, take_spec_field, 14))
        .boxed()
}

const CRONS: &[&str] = &[
    "0 0 * * * *",
    "* * * * * *",
    "0 0 0 29 2 *",
    "0 0 0 31 4 *",
    "60 * * * * *",
    "* * * * * * * *",
    "@yearly",
    "*/0 * * * * *",
    "1-0 * * * * *",
    "",
];
const ZONES: &[&str] = &[
    "",
    "UTC",
    "Europe/Paris",
    "Mars/Olympus",
    "../../etc/passwd",
    "Etc/GMT+14",
];
const MISFIRES: &[&str] = &["", "skip", "fire-once", "catch-up", "Skip", "catchup"];
const OVERLAPS: &[&str] = &["", "allow", "forbid", "replace", "ALLOW"];

fn schedule_any() -> BoxedStrategy<ScheduleGen> {
    let recurrence = prop_oneof![
        3 => u64s(60_000, &[l::MIN_INTERVAL_MS, l::MAX_INTERVAL_MS]).prop_map(RecurrenceGen::Every),
        2 => (choice(CRONS, l::MAX_CRON_BYTES), choice(ZONES, l::MAX_TIME_ZONE_BYTES))
            .prop_map(|(e, z)| RecurrenceGen::Cron(e, z)),
        1 => Just(RecurrenceGen::None),
    ];
    let template = prop_oneof![4 => spec().prop_map(Some), 1 => Just(None)];
    (
        recurrence,
        template,
        u64s(0, &[]),
        u64s(0, &[]),
        choice(MISFIRES, 16),
        u64s(0, &[l::MAX_CATCH_UP_WINDOW_MS]),
        choice(OVERLAPS, 16),
    )
        .prop_map(
            |(recurrence, template, start_ms, end_ms, misfire, catch_up_window_ms, overlap)| ScheduleGen {
                recurrence,
                template,
                start_ms,
                end_ms,
                misfire,
                catch_up_window_ms,
                overlap,
            },
        )
        .boxed()
}

fn name() -> BoxedStrategy<Name> {
    prop_oneof![
        2 => (0usize..4).prop_map(Name::Known),
        2 => text("fz-sched", l::MAX_SCHEDULE_NAME_BYTES).prop_map(Name::Gen),
    ]
    .boxed()
}

fn shape() -> BoxedStrategy<Shape> {
    let sizes = || {
        select(vec![
            1,
            2,
            60,
            l::MAX_WORKFLOW_TASKS - 1,
            l::MAX_WORKFLOW_TASKS,
            l::MAX_WORKFLOW_TASKS + 1,
        ])
    };
    // 141 tasks have 9870 edges, 142 have 10011: either side of MAX_WORKFLOW_EDGES (10,000).
    prop_oneof![
        4 => sizes().prop_map(Shape::Chain),
        2 => sizes().prop_map(Shape::Fan),
        1 => select(vec![141, 142]).prop_map(Shape::Dense),
        1 => select(vec![2, 3, 1000]).prop_map(Shape::Cycle),
        1 => Just(Shape::Empty),
        1 => Just(Shape::SelfLoop),
        1 => Just(Shape::DuplicateKeys),
        1 => Just(Shape::UnknownParent),
        1 => (text("k", l::MAX_WORKFLOW_KEY_BYTES), text("k", l::MAX_WORKFLOW_KEY_BYTES))
            .prop_map(|(a, b)| Shape::OddKeys(a, b)),
    ]
    .boxed()
}

fn workflow() -> BoxedStrategy<WorkflowGen> {
    (
        text("fz-wf", l::MAX_NAME_BYTES),
        prop_oneof![3 => Just(Text::Lit("")), 1 => text("wf-rid", l::MAX_REQUEST_ID_BYTES)],
        shape(),
        spec(),
    )
        .prop_map(|(name, request_id, shape, spec)| WorkflowGen {
            name,
            request_id,
            shape,
            spec,
        })
        .boxed()
}

fn register_any() -> BoxedStrategy<RegisterGen> {
    (
        text("fz-worker", l::MAX_WORKER_ID_BYTES),
        text("fz-session", l::MAX_REQUEST_ID_BYTES),
        u32s(4, &[l::MAX_WORKER_SLOTS]),
        maps(l::MAX_LABELS, l::MAX_LABEL_KEY_BYTES, l::MAX_LABEL_VALUE_BYTES),
        resources(),
        u64s(0, &[l::MIN_LEASE_MS, l::MAX_LEASE_MS]),
    )
        .prop_map(
            |(worker_id, session_id, slots, labels, resources, lease_ms)| RegisterGen {
                worker_id,
                session_id,
                slots,
                labels,
                resources,
                lease_ms,
            },
        )
        .boxed()
}

fn worker_ref() -> BoxedStrategy<WorkerRef> {
    prop_oneof![
        3 => (0usize..4).prop_map(WorkerRef::Known),
        1 => ((0usize..4), text("other", l::MAX_REQUEST_ID_BYTES)).prop_map(|(i, s)| WorkerRef::KnownIdOtherSession(i, s)),
        1 => (text("fz-worker", l::MAX_WORKER_ID_BYTES), text("s", l::MAX_REQUEST_ID_BYTES))
            .prop_map(|(w, s)| WorkerRef::Lit(w, s)),
    ]
    .boxed()
}

fn attempt_ref() -> BoxedStrategy<AttemptRef> {
    prop_oneof![
        3 => (0usize..8).prop_map(AttemptRef::Known),
        1 => ((0usize..8), u64s(1, &[])).prop_map(|(i, t)| AttemptRef::KnownTaskOtherToken(i, t)),
        1 => (u64s(1, &[]), u64s(1, &[])).prop_map(|(t, k)| AttemptRef::Lit(t, k)),
    ]
    .boxed()
}

fn report_any() -> BoxedStrategy<ReportGen> {
    (
        enum_value(8),
        i32s(),
        any::<bool>(),
        text("boom", l::MAX_ERROR_BYTES),
        any::<bool>(),
        text("out", l::MAX_OUTPUT_TAIL_BYTES),
        text("err", l::MAX_OUTPUT_TAIL_BYTES),
    )
        .prop_map(
            |(outcome, exit_code, has_exit_code, error, non_retryable, stdout_tail, stderr_tail)| ReportGen {
                outcome,
                exit_code,
                has_exit_code,
                error,
                non_retryable,
                stdout_tail,
                stderr_tail,
            },
        )
        .boxed()
}

fn schedule() -> BoxedStrategy<ScheduleGen> {
    let valid = || ScheduleGen {
        recurrence: RecurrenceGen::Every(60_000),
        template: Some(valid_spec()),
        start_ms: 0,
        end_ms: 0,
        misfire: Text::Lit(""),
        catch_up_window_ms: 0,
        overlap: Text::Lit(""),
    };
    let take = |into: &mut ScheduleGen, from: &ScheduleGen, field: usize| match field {
        0 => into.recurrence = from.recurrence.clone(),
        1 => into.template = from.template.clone(),
        2 => into.start_ms = from.start_ms,
        3 => into.end_ms = from.end_ms,
        4 => into.misfire = from.misfire.clone(),
        5 => into.catch_up_window_ms = from.catch_up_window_ms,
        _ => into.overlap = from.overlap.clone(),
    };
    (schedule_any(), mix(7))
        .prop_map(move |(random, m)| mixed(valid(), random, m, take, 7))
        .boxed()
}

pub fn register() -> BoxedStrategy<RegisterGen> {
    let valid = || RegisterGen {
        worker_id: Text::Lit("fz-worker"),
        session_id: Text::Lit("fz-session"),
        slots: 4,
        labels: MapGen::Empty,
        resources: None,
        lease_ms: 0,
    };
    let take = |into: &mut RegisterGen, from: &RegisterGen, field: usize| match field {
        0 => into.worker_id = from.worker_id.clone(),
        1 => into.session_id = from.session_id.clone(),
        2 => into.slots = from.slots,
        3 => into.labels = from.labels.clone(),
        4 => into.resources = from.resources,
        _ => into.lease_ms = from.lease_ms,
    };
    (register_any(), mix(6))
        .prop_map(move |(random, m)| mixed(valid(), random, m, take, 6))
        .boxed()
}

pub fn report() -> BoxedStrategy<ReportGen> {
    let valid = || ReportGen {
        outcome: raftsched_api::v1::AttemptOutcome::Succeeded as i32,
        exit_code: 0,
        has_exit_code: true,
        error: Text::Lit(""),
        non_retryable: false,
        stdout_tail: Text::Lit("out"),
        stderr_tail: Text::Lit(""),
    };
    let take = |into: &mut ReportGen, from: &ReportGen, field: usize| match field {
        0 => into.outcome = from.outcome,
        1 => into.exit_code = from.exit_code,
        2 => into.has_exit_code = from.has_exit_code,
        3 => into.error = from.error.clone(),
        4 => into.non_retryable = from.non_retryable,
        5 => into.stdout_tail = from.stdout_tail.clone(),
        _ => into.stderr_tail = from.stderr_tail.clone(),
    };
    (report_any(), mix(7))
        .prop_map(move |(random, m)| mixed(valid(), random, m, take, 7))
        .boxed()
}

/// Node ids: "pick one" (0), the members, a non-member, the largest.
fn node_id() -> BoxedStrategy<u64> {
    select(vec![0, 1, 2, 3, 4, 99, u64::MAX]).boxed()
}

/// Malformed `host:port` addresses: an add must be refused at once. A well-formed address of
/// an unreachable host is left out: AddNode would rightly wait for a learner that never
/// catches up, and leave it in the membership for every later case (membership changes that
/// succeed are failover.rs's). "http://" is in: it is no host:port, though a URI parser may
/// take it for one.
const BAD_ADDRESSES: &[&str] = &[
    "",
    " ",
    "not an address",
    "http://",
    "127.0.0.1:99999",
    "[::1",
    "a b:1",
    "\n:1",
    "é:1",
];

fn task_rpc() -> BoxedStrategy<Rpc> {
    let list_tasks = (
        enum_value(8),
        text("q", l::MAX_QUEUE_BYTES),
        u32s(0, &[1000]),
        text("", 32),
        enum_value(2),
        u64s(0, &[]),
        any::<bool>(),
        text("t", l::MAX_NAME_BYTES),
        text("r", l::MAX_REQUEST_ID_BYTES),
    )
        .prop_map(
            |(state, queue, page_size, page_token, consistency, since_ms, oldest_first, name_contains, request_id)| {
                Rpc::ListTasks {
                    state,
                    queue,
                    page_size,
                    page_token,
                    consistency,
                    since_ms,
                    oldest_first,
                    name_contains,
                    request_id,
                }
            },
        );
    let batch_sizes = select(vec![1, 2, l::MAX_BATCH_TASKS, l::MAX_BATCH_TASKS + 1]);
    prop_oneof![
        4 => prop_oneof![4 => spec().prop_map(Some), 1 => Just(None)].prop_map(Rpc::SubmitTask),
        1 => (proptest::collection::vec(spec(), 0..3), batch_sizes).prop_map(|(s, n)| Rpc::SubmitTasks(s, n)),
        2 => (id(), enum_value(2)).prop_map(|(i, c)| Rpc::GetTask(i, c)),
        2 => list_tasks,
        2 => (id(), text("why", l::MAX_REASON_BYTES)).prop_map(|(i, r)| Rpc::CancelTask(i, r)),
        1 => (prop_oneof![4 => spec().prop_map(Some), 1 => Just(None)], u32s(2, &[l::MAX_SHARDS as u32]))
            .prop_map(|(s, n)| Rpc::SubmitBroadcast(s, n)),
    ]
    .boxed()
}

fn cluster_rpc() -> BoxedStrategy<Rpc> {
    let policy = (
        text("q", l::MAX_QUEUE_BYTES),
        u32s(1, &[MAX_QUEUE_WEIGHT]),
        choice(
            &[
                "",
                "round-robin",
                "random",
                "least-loaded",
                "consistent-hash",
                "bin-pack",
                "spread",
                "Random",
            ],
            32,
        ),
        u64s(0, &[l::MIN_RETENTION_MS, l::MAX_RETENTION_MS]),
    );
    prop_oneof![
        Just(Rpc::ClusterStatus),
        Just(Rpc::NodeStatus),
        text("", 32).prop_map(Rpc::ListQueues),
        prop_oneof![4 => policy.prop_map(Some), 1 => Just(None)].prop_map(Rpc::SetQueuePolicy),
        node_id().prop_map(Rpc::TransferLeader),
        (node_id(), select(BAD_ADDRESSES).prop_map(Text::Lit)).prop_map(|(i, a)| Rpc::AddNode(i, a)),
        (1u64..=3).prop_map(Rpc::AddSelf),
        select(vec![0, 4, 99, u64::MAX]).prop_map(Rpc::RemoveNode),
    ]
    .boxed()
}

fn schedule_rpc() -> BoxedStrategy<Rpc> {
    let spec = || prop_oneof![4 => schedule().prop_map(Some), 1 => Just(None)];
    let list = (u32s(0, &[1000]), text("", l::MAX_SCHEDULE_NAME_BYTES), enum_value(2)).prop_map(
        |(page_size, page_token, consistency)| Rpc::ListSchedules {
            page_size,
            page_token,
            consistency,
        },
    );
    prop_oneof![
        3 => (name(), spec()).prop_map(|(n, s)| Rpc::CreateSchedule(n, s)),
        2 => (name(), spec()).prop_map(|(n, s)| Rpc::UpdateSchedule(n, s)),
        1 => (name(), enum_value(2)).prop_map(|(n, c)| Rpc::GetSchedule(n, c)),
        1 => list,
        1 => name().prop_map(Rpc::PauseSchedule),
        1 => name().prop_map(Rpc::ResumeSchedule),
        1 => name().prop_map(Rpc::DeleteSchedule),
        1 => name().prop_map(Rpc::TriggerSchedule),
        2 => workflow().prop_map(Rpc::SubmitWorkflow),
        1 => (id(), enum_value(2), text("", 32)).prop_map(|(i, c, t)| Rpc::GetWorkflow(i, c, t)),
    ]
    .boxed()
}

fn worker_rpc() -> BoxedStrategy<Rpc> {
    prop_oneof![
        3 => register().prop_map(Rpc::RegisterWorker),
        2 => (worker_ref(), tokens()).prop_map(|(w, t)| Rpc::Attach(w, t)),
        2 => (worker_ref(), tokens()).prop_map(|(w, t)| Rpc::Heartbeat(w, t)),
        3 => (attempt_ref(), report()).prop_map(|(a, r)| Rpc::ReportResult(a, r)),
        1 => report().prop_map(Rpc::ReportAll),
        1 => worker_ref().prop_map(Rpc::DrainWorker),
        1 => text("", 32).prop_map(Rpc::ListWorkers),
    ]
    .boxed()
}

/// Any one request of any RPC, to the leader or a follower.
fn op() -> BoxedStrategy<Op> {
    let rpc = prop_oneof![4 => task_rpc(), 2 => cluster_rpc(), 3 => schedule_rpc(), 3 => worker_rpc()];
    (target(), rpc).prop_map(|(target, rpc)| Op { target, rpc }).boxed()
}

fn to_leader(rpcs: Vec<Rpc>) -> Vec<Op> {
    rpcs.into_iter()
        .map(|rpc| Op {
            target: Target::Leader,
            rpc,
        })
        .collect()
}

/// Register, attach (taking assignments), heartbeat, report real and bogus tokens, drain.
fn worker_life() -> BoxedStrategy<Vec<Op>> {
    (register(), tokens(), tokens(), report(), attempt_ref(), report())
        .prop_map(|(reg, attach_tokens, beat_tokens, report_all, attempt, report_one)| {
            let me = WorkerRef::Known(0);
            to_leader(vec![
                Rpc::RegisterWorker(reg),
                Rpc::Attach(me.clone(), attach_tokens),
                Rpc::Heartbeat(me.clone(), beat_tokens),
                Rpc::ReportAll(report_all),
                Rpc::ReportResult(attempt, report_one),
                Rpc::DrainWorker(me),
            ])
        })
        .boxed()
}

fn task_life() -> BoxedStrategy<Vec<Op>> {
    (spec(), text("why", l::MAX_REASON_BYTES))
        .prop_map(|(spec, reason)| {
            to_leader(vec![
                Rpc::SubmitTask(Some(spec)),
                Rpc::GetTask(Id::Known(0), 0),
                Rpc::CancelTask(Id::Known(0), reason.clone()),
                Rpc::CancelTask(Id::Known(0), reason),
            ])
        })
        .boxed()
}

fn schedule_life() -> BoxedStrategy<Vec<Op>> {
    (text("fz-sched", l::MAX_SCHEDULE_NAME_BYTES), schedule(), schedule())
        .prop_map(|(name, first, second)| {
            let known = || Name::Known(0);
            to_leader(vec![
                Rpc::CreateSchedule(Name::Gen(name), Some(first)),
                Rpc::UpdateSchedule(known(), Some(second)),
                Rpc::PauseSchedule(known()),
                Rpc::TriggerSchedule(known()),
                Rpc::ResumeSchedule(known()),
                Rpc::GetSchedule(known(), 0),
                Rpc::DeleteSchedule(known()),
                Rpc::TriggerSchedule(known()),
            ])
        })
        .boxed()
}

/// A workflow whose tasks a fresh worker takes and fails: the failure skips descendants.
/// Half of them are a valid chain of 1000 (the deepest allowed), whose root fails.
fn workflow_life() -> BoxedStrategy<Vec<Op>> {
    (workflow(), any::<bool>(), register(), report())
        .prop_map(|(mut workflow, deepest, mut reg, mut fail)| {
            if deepest {
                workflow.shape = Shape::Chain(l::MAX_WORKFLOW_TASKS);
                workflow.spec = valid_spec();
            }
            reg.slots = 1000;
            fail.outcome = raftsched_api::v1::AttemptOutcome::Failed as i32;
            fail.non_retryable = true;
            to_leader(vec![
                Rpc::SubmitWorkflow(workflow),
                Rpc::GetWorkflow(Id::Known(0), 0, Text::Lit("")),
                Rpc::RegisterWorker(reg),
                Rpc::Attach(WorkerRef::Known(0), Tokens::None),
                Rpc::ReportAll(fail),
                Rpc::GetWorkflow(Id::Known(0), 1, Text::Lit("")),
            ])
        })
        .boxed()
}

/// One case: a few independent requests, or one scenario.
pub fn case() -> BoxedStrategy<Vec<Op>> {
    prop_oneof![
        4 => proptest::collection::vec(op(), 1..6),
        1 => worker_life(),
        1 => task_life(),
        1 => schedule_life(),
        1 => workflow_life(),
    ]
    .boxed()
}
