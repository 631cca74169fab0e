//! The web console: its page and assets (embedded in the binary, open to anyone: they hold
//! no data), and the JSON it reads.
//!
//! - `GET /`, `/assets/app.js`, `/assets/app.css`: the page, vanilla JS that polls every 2 s.
//! - `GET /api/v1/overview`: this node's own view: its Raft role and indexes, every queue's
//!   counts by state, ready tasks and backlog age, the registered workers. O(queues +
//!   workers), capped at [`MAX_REPORTED_QUEUES`](super::MAX_REPORTED_QUEUES) queues and [`MAX_OVERVIEW_WORKERS`] workers.
//! - `POST /api/v1/<Call>`: a read call of the client API in its proto3 JSON mapping
//!   (`grpc::gateway`), checked like the gRPC call; at most [`MAX_API_BODY_BYTES`] of JSON.
//!
//! Who may read: on a `--insecure` node anyone. Over TLS a client certificate of the cluster
//! CA (the overview, like `/metrics`, needs a reader of every namespace, an admin or a
//! node), or `Authorization: Bearer <token>` with the node's console token (the
//! credentials dir's `console.token`): a reader of every namespace. Browsers rarely hold
//! client certificates, hence the token; `scripts/cluster.sh start` prints the URL with it.

use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::Path;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use openraft::ServerState;
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::HttpState;
use super::routes::Caller;
use super::scrape;
use crate::app::now_ms;
use crate::app::role_name;
use crate::grpc::gateway::GatewayCaller;
use crate::grpc::gateway::GatewayError;
use raftsched_core::state::TaskStatus;

/// A console API request's body: 64 KiB. The largest read request (a task listing's
/// filters) is a few hundred bytes.
pub const MAX_API_BODY_BYTES: usize = 64 * 1024;
/// Workers in one overview: the first 500 by id. The page shows how many more there are;
/// `raftsched worker list` pages through them all.
pub const MAX_OVERVIEW_WORKERS: usize = 500;

const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");

/// The page loads nothing but its own assets and talks only to its own origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What a refusal tells the operator to do.
const HOW: &str = "sign in with the node's console token: `scripts/cluster.sh start` prints the dashboard URL with \
     it, and it is the file console.token in the credentials dir (`raftsched certs init` writes it); or use a \
     client certificate of the cluster CA for a reader of every namespace";

pub(super) fn routes() -> Router<HttpState> {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route("/assets/app.css", get(|| asset("text/css; charset=utf-8", APP_CSS)))
        .route("/api/v1/overview", get(overview))
        .route("/api/v1/{call}", post(call))
        .layer(DefaultBodyLimit::max(MAX_API_BODY_BYTES))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A JSON error body `{"code": "...", "message": "..."}`, as grpc-gateway answers.
fn error(http_status: StatusCode, code: &str, message: String) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        code: &'a str,
        message: String,
    }
    let text = serde_json::to_string(&Body { code, message }).unwrap_or_default();
    (http_status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn json_text(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// Who a console request acts as, or why it may not (a 401: [`unauthenticated`]).
fn signed_in(state: &HttpState, caller: &Caller, headers: &HeaderMap) -> Result<GatewayCaller, String> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        return match &state.console_token {
            None => Err("this node has no console token (no console.token in its credentials dir)".to_string()),
            Some(token) if bool::from(token.as_bytes().ct_eq(presented.trim().as_bytes())) => {
                Ok(GatewayCaller::ConsoleToken)
            }
            Some(_) => Err("the console token does not match this node's".to_string()),
        };
    }
    match caller {
        Caller::Insecure => Ok(GatewayCaller::Plaintext),
        Caller::Credential { chain, .. } => Ok(GatewayCaller::Certificate(Arc::clone(chain))),
        Caller::Anonymous => Err("no console token and no client certificate".to_string()),
        Caller::Unreadable(why) => Err(why.clone()),
    }
}

fn unauthenticated(why: &str) -> Response {
    error(StatusCode::UNAUTHORIZED, "Unauthenticated", format!("{why}; {HOW}"))
}

async fn call(
    State(state): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let as_who = match signed_in(&state, &caller, &headers) {
        Ok(who) => who,
        Err(why) => return unauthenticated(&why),
    };
    match state.gateway.call(&method, &body, as_who).await {
        Ok(text) => json_text(text),
        Err(GatewayError {
            http_status,
            code,
            message,
        }) => error(
            StatusCode::from_u16(http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &code,
            message,
        ),
    }
}

/// The overview's JSON, in the API's style: camelCase names.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Overview {
    node_id: u64,
    role: &'static str,
    term: u64,
    /// 0 when no leader is known.
    leader_id: u64,
    last_log_index: u64,
    applied_index: u64,
    /// Why `/readyz` answers 503; empty while ready.
    not_ready: String,
    now_ms: u64,
    queues: Vec<QueueView>,
    queues_omitted: usize,
    workers: Vec<WorkerView>,
    workers_omitted: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueueView {
    /// As stored: `namespace/queue`, or the bare queue of the default namespace.
    name: String,
    /// The queue's namespace and its name within it: what a task search asks for.
    namespace: String,
    queue: String,
    /// Tasks held by state name (`pending`, `running`, ...).
    tasks: std::collections::BTreeMap<&'static str, u64>,
    ready: usize,
    backlog_age_ms: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkerView {
    worker_id: String,
    namespace: String,
    slots: u32,
    running: usize,
    draining: bool,
    /// Only the leader holds workers' streams: on a follower these are absent.
    connected: Option<bool>,
    last_heartbeat_age_ms: Option<u64>,
}

async fn overview(
    State(state): State<HttpState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let as_who = match signed_in(&state, &caller, &headers) {
        Ok(who) => who,
        Err(why) => return unauthenticated(&why),
    };
    if let GatewayCaller::Certificate(_) = as_who
        && let Err((status, why)) = caller.may_read_all(HOW)
    {
        return error(status, "PermissionDenied", why.trim_end().to_string());
    }
    match serde_json::to_string(&read_overview(&state)) {
        Ok(text) => json_text(text),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "Internal", e.to_string()),
    }
}

fn read_overview(state: &HttpState) -> Overview {
    let raft = state.app.metrics();
    let is_leader = raft.state == ServerState::Leader;
    let now_ms = now_ms();
    let (queues, queues_omitted) = {
        let applied = state.app.state().read();
        scrape::queue_figures(&applied.scheduler, now_ms)
    };
    let queues = queues
        .into_iter()
        .map(|queue| {
            let (namespace, name) = raftsched_core::state::namespace::split(&queue.name);
            QueueView {
                tasks: TaskStatus::ALL.iter().map(|s| s.as_str()).zip(queue.by_state).collect(),
                ready: queue.ready,
                backlog_age_ms: (queue.backlog_age_seconds * 1000.0) as u64,
                namespace: namespace.to_string(),
                queue: name.to_string(),
                name: queue.name,
            }
        })
        .collect();
    let (workers, workers_omitted) = state.app.workers_limited(MAX_OVERVIEW_WORKERS);
    let workers = workers
        .into_iter()
        .map(|summary| WorkerView {
            namespace: summary.worker.namespace().to_string(),
            slots: summary.worker.slots,
            running: summary.running,
            draining: summary.worker.draining,
            connected: is_leader.then_some(summary.connected),
            last_heartbeat_age_ms: summary.silence.filter(|_| is_leader).map(|s| s.as_millis() as u64),
            worker_id: summary.worker.id,
        })
        .collect();
    Overview {
        node_id: raft.id,
        role: role_name(raft.state),
        term: raft.current_term,
        leader_id: raft.current_leader.unwrap_or(0),
        last_log_index: raft.last_log_index.unwrap_or(0),
        applied_index: raft.last_applied.as_ref().map_or(0, |id| id.index),
        not_ready: state.not_ready(),
        now_ms,
        queues,
        queues_omitted,
        workers,
        workers_omitted,
    }
}
