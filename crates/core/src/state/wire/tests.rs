//! The wire format pinned down: golden bytes of one example of every [`Command`] variant
//! (tests/testdata/wire/commands.golden), and refusals of other versions and bad bytes.
//!
//! When a layout change is intended, bump [`WIRE_FORMAT_VERSION`] and rewrite the golden
//! file with `RAFTSCHED_BLESS_WIRE=1 cargo test --lib state::wire`, then review its diff.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde::de::Visitor;

use super::*;
use crate::scheduling::Placement;
use crate::scheduling::QueuePolicy;
use crate::state::AttemptOutcome;
use crate::state::AttemptReport;
use crate::state::Command;
use crate::state::MisfirePolicy;
use crate::state::Occurrence;
use crate::state::OccurrenceAction;
use crate::state::OverlapPolicy;
use crate::state::Payload;
use crate::state::Recurrence;
use crate::state::Resources;
use crate::state::ScheduleSpec;
use crate::state::TaskSpec;
use crate::state::WorkerRegistration;
use crate::state::WorkflowSpec;
use crate::state::WorkflowTaskSpec;

const GOLDEN_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/wire/commands.golden");
const BLESS_VAR: &str = "RAFTSCHED_BLESS_WIRE";

fn spec(name: &str) -> TaskSpec {
    TaskSpec {
        name: name.to_string(),
        queue: "q".to_string(),
        priority: -2,
        payload: Payload::Command {
            command_line: "echo hi".to_string(),
            env: BTreeMap::from([("K".to_string(), "v".to_string())]),
        },
        labels: BTreeMap::from([("team".to_string(), "a".to_string())]),
        max_attempts: 3,
        attempt_timeout_ms: 60_000,
        client_request_id: Some("req-1".to_string()),
        constraints: BTreeMap::from([("zone".to_string(), "z1".to_string())]),
        resources: Resources {
            cpu_millis: 500,
            memory_mb: 256,
        },
        affinity_key: None,
        retry_backoff_ms: 1_000,
        not_before_ms: 0,
        delay_ms: 5,
        trace_parent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string()),
    }
}

fn schedule_spec() -> ScheduleSpec {
    ScheduleSpec {
        recurrence: Recurrence::Cron {
            expression: "0 * * * * *".to_string(),
            time_zone: "Europe/Paris".to_string(),
        },
        template: TaskSpec {
            payload: Payload::Opaque {
                kind: "k".to_string(),
                data: vec![0, 1, 255],
            },
            ..spec("tick")
        },
        start_ms: 1,
        end_ms: u64::MAX,
        misfire: MisfirePolicy::CatchUp { window_ms: 30_000 },
        overlap: OverlapPolicy::Forbid,
    }
}

fn registration() -> WorkerRegistration {
    WorkerRegistration {
        id: "w1".to_string(),
        session: "s1".to_string(),
        slots: 4,
        labels: BTreeMap::from([("zone".to_string(), "z1".to_string())]),
        resources: Resources {
            cpu_millis: 4_000,
            memory_mb: 8_192,
        },
        lease_ms: 10_000,
    }
}

fn report() -> AttemptReport {
    AttemptReport {
        task_id: 1,
        token: 9,
        outcome: AttemptOutcome::Failed,
        exit_code: Some(-1),
        error: Some("exit 255".to_string()),
        retryable: true,
        stdout_tail: "out".to_string(),
        stderr_tail: String::new(),
        worker_id: "w1".to_string(),
        session: "s1".to_string(),
    }
}

fn occurrences() -> Vec<Occurrence> {
    vec![
        Occurrence {
            scheduled_ms: 100,
            action: OccurrenceAction::Fire,
        },
        Occurrence {
            scheduled_ms: 200,
            action: OccurrenceAction::Skip {
                first_ms: 150,
                count: 2,
                reason: "misfire".to_string(),
            },
        },
    ]
}

const NOW_MS: u64 = 1_700_000_000_000;

/// One fixed example of every variant, with a name for the golden file. A variant missing
/// here fails [`every_command_variant_has_one_example`].
fn examples() -> Vec<(&'static str, Command)> {
    let mut all = task_and_worker_examples();
    all.extend(schedule_examples());
    all.extend(composite_examples());
    all
}

fn task_and_worker_examples() -> Vec<(&'static str, Command)> {
    let now_ms = NOW_MS;
    let (worker_id, session) = ("w1".to_string(), "s1".to_string());
    vec![
        (
            "SubmitTasks",
            Command::SubmitTasks {
                now_ms,
                specs: vec![spec("a"), spec("b")],
            },
        ),
        (
            "CancelTask",
            Command::CancelTask {
                now_ms,
                task_id: 7,
                reason: "no longer needed".to_string(),
            },
        ),
        (
            "RegisterWorker",
            Command::RegisterWorker {
                now_ms,
                registration: registration(),
            },
        ),
        (
            "DrainWorker",
            Command::DrainWorker {
                now_ms,
                worker_id: worker_id.clone(),
                session: session.clone(),
            },
        ),
        (
            "ExpireWorker",
            Command::ExpireWorker {
                now_ms,
                worker_id: worker_id.clone(),
                session,
            },
        ),
        (
            "AssignTasks",
            Command::AssignTasks {
                now_ms,
                seed: 0xDEAD_BEEF,
                assignments: vec![(1, worker_id.clone()), (2, worker_id)],
            },
        ),
        (
            "ReportResult",
            Command::ReportResult {
                now_ms,
                report: report(),
                jitter: 12_345,
            },
        ),
        (
            "TimeOutAttempt",
            Command::TimeOutAttempt {
                now_ms,
                task_id: 3,
                token: 4,
                jitter: 5,
            },
        ),
    ]
}

fn schedule_examples() -> Vec<(&'static str, Command)> {
    let now_ms = NOW_MS;
    vec![
        (
            "SetQueuePolicy",
            Command::SetQueuePolicy {
                now_ms,
                queue: "q".to_string(),
                policy: QueuePolicy {
                    weight: 10,
                    placement: Placement::ConsistentHash,
                    retention_ms: Some(600_000),
                },
            },
        ),
        (
            "CreateSchedule",
            Command::CreateSchedule {
                now_ms,
                name: "hourly".to_string(),
                spec: schedule_spec(),
            },
        ),
        (
            "UpdateSchedule",
            Command::UpdateSchedule {
                now_ms,
                name: "hourly".to_string(),
                spec: ScheduleSpec {
                    recurrence: Recurrence::Every { interval_ms: 60_000 },
                    misfire: MisfirePolicy::FireOnce,
                    overlap: OverlapPolicy::Replace,
                    ..schedule_spec()
                },
            },
        ),
        (
            "PauseSchedule",
            Command::PauseSchedule {
                now_ms,
                name: "hourly".to_string(),
                paused: true,
            },
        ),
        (
            "DeleteSchedule",
            Command::DeleteSchedule {
                now_ms,
                name: "hourly".to_string(),
            },
        ),
        (
            "FireSchedule",
            Command::FireSchedule {
                now_ms,
                name: "hourly".to_string(),
                revision: 2,
                occurrences: occurrences(),
            },
        ),
        (
            "TriggerSchedule",
            Command::TriggerSchedule {
                now_ms,
                name: "hourly".to_string(),
            },
        ),
    ]
}

fn composite_examples() -> Vec<(&'static str, Command)> {
    let now_ms = NOW_MS;
    vec![
        (
            "SubmitWorkflow",
            Command::SubmitWorkflow {
                now_ms,
                workflow: WorkflowSpec {
                    name: "etl".to_string(),
                    request_id: Some("wf-1".to_string()),
                    tasks: vec![
                        WorkflowTaskSpec {
                            key: "extract".to_string(),
                            spec: spec("e"),
                            after: vec![],
                        },
                        WorkflowTaskSpec {
                            key: "load".to_string(),
                            spec: spec("l"),
                            after: vec!["extract".to_string()],
                        },
                    ],
                },
            },
        ),
        (
            "SubmitShards",
            Command::SubmitShards {
                now_ms,
                spec: spec("shard"),
                pins: vec![Some("w1".to_string()), None],
            },
        ),
        (
            "Batch",
            Command::Batch {
                commands: vec![
                    Command::TriggerSchedule {
                        now_ms,
                        name: "hourly".to_string(),
                    },
                    Command::CancelTask {
                        now_ms,
                        task_id: 8,
                        reason: String::new(),
                    },
                ],
            },
        ),
        (
            "PurgeTasks",
            Command::PurgeTasks {
                now_ms,
                units: vec![crate::state::PurgeUnit::Task(7), crate::state::PurgeUnit::Workflow(2)],
            },
        ),
        (
            "SubmitAndAssign",
            Command::SubmitAndAssign {
                now_ms,
                seed: 42,
                specs: vec![spec("a"), spec("b")],
                workers: vec![Some("w1".to_string()), None],
            },
        ),
    ]
}

/// The error that carries the variant names out of [`EnumProbe`].
#[derive(Debug)]
struct Probed(Option<&'static [&'static str]>);

impl std::fmt::Display for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "probed {:?}", self.0)
    }
}

impl std::error::Error for Probed {}

impl serde::de::Error for Probed {
    fn custom<T: std::fmt::Display>(_: T) -> Probed {
        Probed(None)
    }
}

/// A deserializer that only asks the type for its enum variants, as serde's derive lists
/// them: the compiler's own list, so a new variant cannot be forgotten here.
struct EnumProbe;

impl<'de> serde::Deserializer<'de> for EnumProbe {
    type Error = Probed;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Probed> {
        Err(Probed(None))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Probed> {
        Err(Probed(Some(variants)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

fn variants_of<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(EnumProbe) {
        Err(Probed(Some(variants))) => variants,
        other => panic!("not an enum: {other:?}", other = other.err()),
    }
}

/// The variant a postcard encoding holds: its first varint is the variant's index.
fn variant_name(command: &Command) -> &'static str {
    let bare = postcard::to_allocvec(command).unwrap();
    let (index, _): (u32, _) = postcard::take_from_bytes(&bare).unwrap();
    variants_of::<Command>()[index as usize]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The golden file's text for the current code.
fn golden_text() -> String {
    let mut text = String::from(
        "# Wire format golden bytes (src/state/wire/tests.rs): `name hex`, one line each.\n\
         # A change here is a wire format change: bump WIRE_FORMAT_VERSION, keep reading the old one.\n",
    );
    text.push_str(&format!(
        "header-v{WIRE_FORMAT_VERSION} {}\n",
        hex(&wire_header(WIRE_FORMAT_VERSION))
    ));
    for (name, command) in examples() {
        text.push_str(&format!("{name} {}\n", hex(&encode_versioned(&command))));
    }
    text
}

#[test]
fn every_command_variant_has_one_example() {
    let examples = examples();
    let named: Vec<&str> = examples.iter().map(|(name, _)| *name).collect();
    let held: Vec<&str> = examples.iter().map(|(_, command)| variant_name(command)).collect();
    assert_eq!(named, held, "each example's name is the variant it holds");
    let all: BTreeSet<&str> = variants_of::<Command>().iter().copied().collect();
    let covered: BTreeSet<&str> = held.iter().copied().collect();
    assert_eq!(covered.len(), held.len(), "one example per variant: {held:?}");
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "Command variants without a golden example: {missing:?}; add one to examples()"
    );
}

#[test]
fn every_command_variant_encodes_to_its_golden_bytes() {
    let actual = golden_text();
    if std::env::var_os(BLESS_VAR).is_some() {
        std::fs::write(GOLDEN_PATH, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(GOLDEN_PATH)
        .unwrap_or_else(|e| panic!("{GOLDEN_PATH}: {e}; write it with {BLESS_VAR}=1"));
    let expected: Vec<&str> = expected.lines().collect();
    let actual: Vec<&str> = actual.lines().collect();
    for (want, got) in expected.iter().zip(&actual) {
        assert_eq!(
            want, got,
            "wire bytes changed: bump WIRE_FORMAT_VERSION (and read the old format), then rewrite {GOLDEN_PATH} \
             with {BLESS_VAR}=1"
        );
    }
    assert_eq!(
        expected.len(),
        actual.len(),
        "golden lines: {expected:#?} vs {actual:#?}"
    );
}

#[test]
fn every_example_round_trips_with_and_without_the_header() {
    for (name, command) in examples() {
        let versioned = encode_versioned(&command);
        assert_eq!(versioned.len(), encoded_len_versioned(&command), "{name}");
        assert_eq!(
            decode_versioned::<Command>(&versioned, name),
            Ok(command.clone()),
            "{name}"
        );
        assert_eq!(
            decode_versioned_or_bare::<Command>(&versioned, name),
            Ok(command.clone()),
            "{name}"
        );
        // A data dir from before the header holds bare postcard (format v0), in the v1
        // layout: a queue policy, a report and a task spec of today have fields v0 never
        // had (see `v1_queue_policies_are_read_without_retention` and the golden files).
        if matches!(name, "SetQueuePolicy" | "ReportResult") || !specs_mut(&mut command.clone()).is_empty() {
            continue;
        }
        let bare = postcard::to_allocvec(&command).unwrap();
        assert!(!bare.starts_with(&WIRE_MAGIC), "{name}: bare bytes look enveloped");
        assert_eq!(
            decode_versioned_or_bare::<Command>(&bare, name),
            Ok(command.clone()),
            "{name}"
        );
        assert_eq!(
            decode_versioned::<Command>(&bare, name),
            Err(WireError::Unversioned { what: name.to_string() }),
            "{name}: the network path requires a header"
        );
    }
}

/// A v1 `SetQueuePolicy` (the exact bytes of the v1 golden file) and its bare (v0) body
/// still decode: the policy has no retention, i.e. the cluster default.
#[test]
fn v1_queue_policies_are_read_without_retention() {
    let v1 = "f2e1e6f4f3e3e8e5e4f701000880d095ffbc3101710a03";
    let bytes: Vec<u8> = (0..v1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v1[i..i + 2], 16).unwrap())
        .collect();
    let expected = Command::SetQueuePolicy {
        now_ms: NOW_MS,
        queue: "q".to_string(),
        policy: QueuePolicy {
            weight: 10,
            placement: Placement::ConsistentHash,
            retention_ms: None,
        },
    };
    assert_eq!(decode_versioned::<Command>(&bytes, "v1 entry"), Ok(expected.clone()));
    let bare = &bytes[WIRE_HEADER_BYTES..];
    assert_eq!(
        decode_versioned_or_bare::<Command>(bare, "v0 entry"),
        Ok(expected.clone())
    );
    // Outside wire decoding (a snapshot, a test) the current layout is read.
    assert!(postcard::from_bytes::<Command>(bare).is_err());
    assert_eq!(crate::state::wire::decoding_version(), None);
}

const V2_GOLDEN_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/wire/commands.v2.golden");
const V3_GOLDEN_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/wire/commands.v3.golden");
const V4_GOLDEN_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/wire/commands.v4.golden");

/// The variants each format added, which older golden files lack.
const ADDED_IN_V5: &[&str] = &["SubmitAndAssign"];

/// Every line of the v2 golden file (the exact bytes of the release before v3) still
/// decodes, to today's example except for what v3 and v4 added: a v2 report names no
/// worker or session, so it decodes unbound (applied on its token alone, as it was accepted
/// then), and no v2 spec has a trace context.
#[test]
fn v2_entries_still_decode() {
    let decoded = older_entries_decode(V2_GOLDEN_PATH, 2, |expected| {
        if let Command::ReportResult { report, .. } = expected {
            report.worker_id.clear();
            report.session.clear();
        }
    });
    for got in decoded {
        if let (bytes, Command::ReportResult { report, .. }) = &got {
            assert!(report.is_unbound(), "a v2 report is unbound");
            // The bare (v0) body of the same report reads the same way.
            let bare = &bytes[WIRE_HEADER_BYTES..];
            assert_eq!(
                decode_versioned_or_bare::<Command>(bare, "v0 report"),
                Ok(got.1.clone())
            );
        }
    }
}

/// Every line of the v3 golden file (the exact bytes the previous release wrote) still
/// decodes, to today's example but for what v4 added: a trace context on a task's spec.
#[test]
fn v3_entries_still_decode() {
    older_entries_decode(V3_GOLDEN_PATH, 3, |_| {});
}

/// Every line of the v4 golden file (the exact bytes the previous release wrote) still
/// decodes to today's example: v5 only added a variant at the end, so no index moved.
#[test]
fn v4_entries_still_decode() {
    older_entries_decode(V4_GOLDEN_PATH, 4, |_| {});
}

/// Decodes every line of the golden file of `version` at `path` and compares it with
/// today's example of its variant, untraced and adjusted by `adjust`. Returns the bytes
/// and commands decoded.
fn older_entries_decode(path: &str, version: u16, adjust: impl Fn(&mut Command)) -> Vec<(Vec<u8>, Command)> {
    let golden = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let examples: BTreeMap<&str, Command> = examples().into_iter().collect();
    let mut decoded = Vec::new();
    for line in golden
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("header-"))
    {
        let (name, hex_bytes) = line.split_once(' ').expect("`name hex` lines");
        let bytes: Vec<u8> = (0..hex_bytes.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex_bytes[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(split_header(&bytes).map(|(v, _)| v), Some(version), "{name}");
        let mut expected = examples[name].clone();
        if version < 4 {
            expected = untraced(expected, &adjust);
        } else {
            adjust(&mut expected);
        }
        let got = decode_versioned::<Command>(&bytes, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, expected, "{name}");
        decoded.push((bytes, got));
    }
    let then = examples.keys().filter(|name| !ADDED_IN_V5.contains(name)).count();
    assert_eq!(decoded.len(), then, "{path} has one line per variant of its format");
    // Outside wire decoding the current layout is read.
    assert_eq!(crate::state::wire::decoding_version(), None);
    decoded
}

/// Every task spec `command` carries (a batch's, in order), schedule templates included.
fn specs_mut(command: &mut Command) -> Vec<&mut TaskSpec> {
    match command {
        Command::SubmitTasks { specs, .. } | Command::SubmitAndAssign { specs, .. } => specs.iter_mut().collect(),
        Command::SubmitShards { spec, .. } => vec![spec],
        Command::SubmitWorkflow { workflow, .. } => workflow.tasks.iter_mut().map(|t| &mut t.spec).collect(),
        Command::CreateSchedule { spec, .. } | Command::UpdateSchedule { spec, .. } => vec![&mut spec.template],
        Command::Batch { commands } => commands.iter_mut().flat_map(specs_mut).collect(),
        _ => Vec::new(),
    }
}

/// `command` as written before specs carried a trace context, adjusted by `adjust`.
fn untraced(mut command: Command, adjust: impl Fn(&mut Command)) -> Command {
    for spec in specs_mut(&mut command) {
        spec.trace_parent = None;
    }
    adjust(&mut command);
    command
}

/// `body` behind a header claiming `version`.
fn with_version(version: u16, command: &Command) -> Vec<u8> {
    let mut bytes = wire_header(version).to_vec();
    bytes.extend(postcard::to_allocvec(command).unwrap());
    bytes
}

#[test]
fn a_newer_version_is_refused_with_both_versions_and_what_to_do() {
    let (_, command) = &examples()[0];
    let error = decode_versioned::<Command>(&with_version(99, command), "log entry").unwrap_err();
    assert_eq!(
        error,
        WireError::TooNew {
            what: "log entry".to_string(),
            found: 99
        }
    );
    assert!(error.is_version_mismatch());
    let message = error.to_string();
    for part in [
        "log entry",
        "wire format v99",
        "reads formats v1 to v5",
        "upgrade this node to a release that reads format v99",
    ] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
    // The data dir path refuses it the same way: no fallback to bare decoding.
    let error = decode_versioned_or_bare::<Command>(&with_version(99, command), "log entry").unwrap_err();
    assert!(matches!(error, WireError::TooNew { found: 99, .. }), "{error}");
}

#[test]
fn an_older_enveloped_version_is_refused() {
    let (_, command) = &examples()[0];
    let error = decode_versioned::<Command>(&with_version(0, command), "vote").unwrap_err();
    assert_eq!(
        error,
        WireError::TooOld {
            what: "vote".to_string(),
            found: 0
        }
    );
    assert!(
        error.to_string().contains("v0") && error.to_string().contains("v1"),
        "{error}"
    );
}

#[test]
fn every_truncation_of_every_example_is_an_error() {
    for (name, command) in examples() {
        let versioned = encode_versioned(&command);
        let bare = postcard::to_allocvec(&command).unwrap();
        for cut in 0..versioned.len() {
            let error = decode_versioned::<Command>(&versioned[..cut], name).unwrap_err();
            assert!(!error.is_version_mismatch(), "{name} cut at {cut}: {error}");
            decode_versioned_or_bare::<Command>(&versioned[..cut], name).unwrap_err();
        }
        // Bare bytes are read in the v0 layout, where a v2 queue policy cut before its
        // retention (or a v3 report before its worker) is a whole v0 value.
        if matches!(name, "SetQueuePolicy" | "ReportResult") {
            continue;
        }
        for cut in 0..bare.len() {
            decode_versioned_or_bare::<Command>(&bare[..cut], name).unwrap_err();
        }
    }
    let empty = decode_versioned::<Command>(&[], "Raft vote request").unwrap_err();
    assert_eq!(
        empty,
        WireError::Truncated {
            what: "Raft vote request".to_string(),
            len: 0
        }
    );
    assert!(empty.to_string().contains("12-byte"), "{empty}");
}

#[test]
fn trailing_bytes_and_garbage_are_errors() {
    let (_, command) = &examples()[1];
    let mut bytes = encode_versioned(command);
    bytes.push(0);
    let error = decode_versioned::<Command>(&bytes, "log entry").unwrap_err();
    assert!(
        matches!(
            &error,
            WireError::Malformed {
                version: WIRE_FORMAT_VERSION,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("1 bytes after the end"), "{error}");

    let mut garbage = wire_header(WIRE_FORMAT_VERSION).to_vec();
    garbage.extend([0xFF; 20]);
    let error = decode_versioned::<Command>(&garbage, "log entry").unwrap_err();
    assert!(matches!(error, WireError::Malformed { .. }), "{error}");
}

/// Random bytes, bare and behind a good header: decoding answers, it never panics.
#[test]
fn random_bytes_never_panic() {
    let seed = 0x5EED_F00D_u64;
    println!("seed {seed:#x}");
    let mut state = seed;
    let mut next = move || {
        // xorshift64: deterministic, no dependency.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2_000 {
        let len = (next() % 64) as usize;
        let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = decode_versioned_or_bare::<Command>(&body, "garbage");
        let mut enveloped = wire_header(WIRE_FORMAT_VERSION).to_vec();
        enveloped.extend(&body);
        let _ = decode_versioned::<Command>(&enveloped, "garbage");
    }
}
