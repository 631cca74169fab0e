//! The client load of a chaos run: concurrent loops that each submit small shell tasks with
//! their own request ids, retry an unknown outcome with the same request id, and record
//! every step in the history.
//!
//! Architecture invariant: calls go through `ClusterClient`; a refusal is classified by its
//! `ErrorCode` (definite or unknown), never by a `tonic::Status`.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::check::output_marker_command;
use crate::history::Event;
use crate::history::History;
use raftsched_api::v1 as api;
use raftsched_client::ClientError;
use raftsched_client::ClusterClient;
use raftsched_client::ErrorCode;

/// How often a loop retries an unknown submission after it was told to stop (the cluster is
/// healed by then, so one of these should get an answer).
const TRIES_AFTER_STOP: u32 = 3;
/// Pause between retries of an unknown submission (the client backs off inside each try too).
const RETRY_PAUSE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct LoadSettings {
    pub clients: u32,
    /// Submissions per second over all clients, roughly.
    pub rate: u32,
    pub seed: u64,
    /// The nodes, `host:port,...`.
    pub addresses: String,
    /// How long one submission may keep retrying inside the client before it counts as
    /// unknown.
    pub call_deadline: Duration,
    /// The credentials the clients call with (the cluster runs TLS).
    pub tls: raftsched_client::TlsSettings,
}

/// Starts one task per client loop; they stop (after finishing their current submission)
/// when `stop` is cancelled. Dropping the set aborts them.
pub fn spawn_clients(
    settings: &LoadSettings,
    history: Arc<History>,
    stop: CancellationToken,
) -> Result<JoinSet<()>, ClientError> {
    let mut set = JoinSet::new();
    for index in 1..=settings.clients {
        let client = ClusterClient::new(&settings.addresses)?
            .with_tls(settings.tls.clone())
            .with_overall_deadline(settings.call_deadline);
        let settings = settings.clone();
        let history = history.clone();
        let stop = stop.clone();
        set.spawn(client_loop(index, client, settings, history, stop));
    }
    Ok(set)
}

async fn client_loop(
    index: u32,
    client: ClusterClient,
    settings: LoadSettings,
    history: Arc<History>,
    stop: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(settings.seed ^ (u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let mean_gap_ms = 1000.0 * f64::from(settings.clients) / f64::from(settings.rate.max(1));
    let mut op = 0u64;
    while !stop.is_cancelled() {
        op += 1;
        let request_id = format!("c{index}-{op}");
        let (spec, command) = task_spec(&mut rng, &request_id);
        let started = Instant::now();
        history.record(Event::Invoke {
            client: index,
            op,
            request_id: request_id.clone(),
            command,
        });
        submit_until_answered(&client, spec, index, op, &history, &stop).await;
        let gap = Duration::from_millis((mean_gap_ms * rng.random_range(0.5..1.5)) as u64);
        let wait = gap.saturating_sub(started.elapsed());
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Submits until the cluster answers ok or a definite refusal, retrying an unknown outcome
/// with the same request id; after `stop`, gives up following a few more tries (the
/// operation then stays unknown).
async fn submit_until_answered(
    client: &ClusterClient,
    spec: api::TaskSpec,
    index: u32,
    op: u64,
    history: &History,
    stop: &CancellationToken,
) {
    let request_id = spec.client_request_id.clone();
    let started = Instant::now();
    let mut attempt = 0;
    let mut tries_after_stop = 0;
    loop {
        attempt += 1;
        match client.submit_task(spec.clone()).await {
            Ok(response) => {
                history.record(Event::Ok {
                    client: index,
                    op,
                    request_id,
                    task_id: response.task.map_or(0, |t| t.id),
                    created: response.created,
                    latency_ms: started.elapsed().as_millis() as u64,
                });
                return;
            }
            Err(ClientError::Rejected { code, message, .. }) if is_definite(code) => {
                history.record(Event::Fail {
                    client: index,
                    op,
                    request_id,
                    code: format!("{code:?}"),
                    error: message,
                });
                return;
            }
            Err(e) => {
                history.record(Event::Unknown {
                    client: index,
                    op,
                    request_id: request_id.clone(),
                    attempt,
                    error: e.to_string(),
                });
                if stop.is_cancelled() {
                    tries_after_stop += 1;
                    if tries_after_stop >= TRIES_AFTER_STOP {
                        return;
                    }
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// Refusals that say the submission did not and will not happen. Anything else (internal
/// errors, aborts, deadlines) may have happened.
fn is_definite(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidArgument
            | ErrorCode::FailedPrecondition
            | ErrorCode::NotFound
            | ErrorCode::AlreadyExists
            | ErrorCode::PermissionDenied
            | ErrorCode::OutOfRange
            | ErrorCode::Unimplemented
            | ErrorCode::Unauthenticated
    )
}

/// A task that only prints the chaos marker.
pub fn plain_spec(request_id: &str) -> api::TaskSpec {
    api::TaskSpec {
        name: request_id.to_string(),
        payload: Some(api::task_spec::Payload::Command(api::CommandPayload {
            command_line: output_marker_command().to_string(),
            env: Default::default(),
        })),
        max_attempts: 5,
        attempt_timeout_ms: 10_000,
        client_request_id: request_id.to_string(),
        retry_backoff_ms: 100,
        ..api::TaskSpec::default()
    }
}

/// A small shell task. Every one prints the chaos marker (its token and worker) first, so
/// the checker can tell which attempt produced a recorded result. The mix: mostly instant,
/// some short sleeps, a few long enough to span a fault, a few that fail (and are retried
/// once), a few that become ready only later.
pub fn task_spec(rng: &mut StdRng, request_id: &str) -> (api::TaskSpec, String) {
    let marker = output_marker_command();
    let roll = rng.random_range(0..100);
    let mut max_attempts = 5;
    let mut delay_ms = 0;
    let command = match roll {
        0..55 => marker.to_string(),
        55..80 => format!("{marker}; sleep 0.0{}", rng.random_range(1..=9)),
        80..90 => format!("{marker}; sleep {}", rng.random_range(2..=15) as f64 / 10.0),
        90..95 => {
            max_attempts = 2;
            format!("{marker}; exit 3")
        }
        _ => {
            delay_ms = rng.random_range(100..=2000);
            marker.to_string()
        }
    };
    let spec = api::TaskSpec {
        name: request_id.to_string(),
        payload: Some(api::task_spec::Payload::Command(api::CommandPayload {
            command_line: command.clone(),
            env: Default::default(),
        })),
        max_attempts,
        attempt_timeout_ms: 10_000,
        client_request_id: request_id.to_string(),
        retry_backoff_ms: 100,
        delay_ms,
        ..api::TaskSpec::default()
    };
    (spec, command)
}
