//! The HTTP port's pages and who may read them.
//!
//! - `/healthz`: 200 while the process serves (a liveness probe); open to anyone.
//! - `/readyz`: 200 while the node is ready (`observe::readiness`), else 503 with the
//!   reason; open to anyone, as Kubernetes probes carry no credential.
//! - `/metrics`: Prometheus text. Over TLS it needs a client certificate of the cluster CA
//!   that is a node, an admin, or a reader of every namespace: its figures cover every
//!   namespace's queues.
//! - `/`, `/assets/*` and `/api/v1/*`: the web console (`console`).

use std::sync::Arc;
use std::sync::Mutex;

use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use rustls_pki_types::CertificateDer;
use tokio::sync::watch;

use super::console;
use super::scrape;
use crate::app::App;
use crate::grpc::Identity;
use crate::grpc::Namespaces;
use crate::grpc::Role;
use crate::grpc::gateway::Gateway;
use crate::grpc::identity_from_der;
use crate::network::NodeTls;
use crate::observe::NodeMetrics;
use crate::observe::watch::Readiness;

/// The Prometheus text format's content type (exposition format 0.0.4).
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the pages read: the app (state, hub, guard, Raft metrics), the node's metrics and
/// its readiness. Cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    pub(super) app: App,
    pub(super) metrics: NodeMetrics,
    readiness: watch::Receiver<Readiness>,
    /// Scrapes set the state gauges and render in one step, one at a time, so two
    /// concurrent scrapes cannot render each other's half-set gauges. Holds what the last
    /// scrape reported.
    pub(super) scrape_lock: Arc<Mutex<scrape::Reported>>,
    /// The console's calls into the client API.
    pub(super) gateway: Arc<Gateway>,
    /// The console token a browser signs in with (TLS only); None: client certificates only.
    pub(super) console_token: Option<Arc<str>>,
}

impl HttpState {
    /// `tls`: the node's credentials, which the console's calls forward with to the leader.
    pub fn new(
        app: App,
        metrics: NodeMetrics,
        readiness: watch::Receiver<Readiness>,
        tls: Option<Arc<NodeTls>>,
        console_token: Option<String>,
    ) -> HttpState {
        HttpState {
            gateway: Arc::new(Gateway::new(app.clone(), tls)),
            app,
            metrics,
            readiness,
            scrape_lock: Arc::default(),
            console_token: console_token.map(Arc::from),
        }
    }

    pub(super) fn is_ready(&self) -> bool {
        self.readiness.borrow().is_ok()
    }

    /// Why the node is not ready; empty while it is.
    pub(super) fn not_ready(&self) -> String {
        match &*self.readiness.borrow() {
            Ok(()) => String::new(),
            Err(why) => why.to_string(),
        }
    }
}

/// Who sent a request, as its connection's TLS said.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// The port is plaintext (`--insecure`): nobody is checked.
    Insecure,
    /// TLS without a client certificate.
    Anonymous,
    /// A certificate of the cluster CA naming `identity`; the verified chain, leaf first,
    /// for the console's calls into the client API.
    Credential {
        identity: Identity,
        chain: Arc<Vec<CertificateDer<'static>>>,
    },
    /// A certificate of the cluster CA whose subject names no identity; why.
    Unreadable(String),
}

impl Caller {
    /// The caller of a TLS connection whose client sent `chain` (verified against the
    /// cluster CA by the handshake), or none.
    pub(super) fn of_certificate(chain: Option<&[CertificateDer<'_>]>) -> Caller {
        let Some(chain) = chain.filter(|chain| !chain.is_empty()) else {
            return Caller::Anonymous;
        };
        match identity_from_der(&chain[0]) {
            Ok(identity) => Caller::Credential {
                identity,
                chain: Arc::new(chain.iter().map(|der| der.clone().into_owned()).collect()),
            },
            Err(e) => Caller::Unreadable(e.to_string()),
        }
    }

    /// Whether the caller may read what covers every namespace (`/metrics`, the console's
    /// overview); the refusal ends with `how`, what credential to use.
    pub(super) fn may_read_all(&self, how: &str) -> Result<(), (StatusCode, String)> {
        let identity = match self {
            Caller::Insecure => return Ok(()),
            Caller::Anonymous => return Err((StatusCode::UNAUTHORIZED, format!("no client certificate. {how}"))),
            Caller::Unreadable(why) => return Err((StatusCode::UNAUTHORIZED, format!("{why}. {how}"))),
            Caller::Credential { identity, .. } => identity,
        };
        match identity.role {
            Role::Node | Role::Admin => Ok(()),
            Role::Reader if identity.namespaces == Namespaces::All => Ok(()),
            Role::Reader => Err((
                StatusCode::FORBIDDEN,
                format!(
                    "the reader credential {:?} acts in {}, and this covers every namespace. {how}",
                    identity.name, identity.namespaces
                ),
            )),
            Role::Submitter | Role::Worker => Err((
                StatusCode::FORBIDDEN,
                format!(
                    "a {} credential ({:?}) may not read what covers every namespace. {how}",
                    identity.role.as_str(),
                    identity.name
                ),
            )),
        }
    }
}

/// What every refusal of `/metrics` tells the operator to do.
const HOW: &str = "/metrics needs a client certificate of the cluster CA for a reader of every namespace (or \
     an admin): `raftsched certs init` creates one named prometheus, e.g. `curl --cacert DIR/ca.crt --cert \
     DIR/prometheus.crt --key DIR/prometheus.key https://HOST:PORT/metrics`; for an older credentials dir issue \
     it with `raftsched certs issue --dir DIR --role reader --name prometheus --namespaces '*'`\n";

pub(super) fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(console::routes())
        .fallback(not_found)
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> Response {
    match &*state.readiness.borrow() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")).into_response(),
    }
}

async fn metrics(State(state): State<HttpState>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(refusal) = caller.may_read_all(HOW) {
        return refusal.into_response();
    }
    let body = scrape::render(&state);
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], body).into_response()
}

async fn not_found(uri: Uri) -> (StatusCode, String) {
    let path: String = uri.path().chars().take(128).collect();
    (
        StatusCode::NOT_FOUND,
        format!(
            "no page {path:?} on this port; it serves the dashboard at /, /healthz, /readyz, /metrics and /api/v1/\n"
        ),
    )
}
