//! [`serve`]: the node's client port — the client API (Scheduler and Workers), server
//! reflection and `grpc.health.v1`; [`serve_peer`]: its peer port — the Raft service only. Both behind the
//! port's limits (`transport.rs`) and the receive budgets (`admission.rs`).
//!
//! Architecture invariant: the node starts this server but never names what it carries;
//! routes, layers, message limits and tonic's server types stay inside `grpc`.

use std::pin::Pin;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic::transport::server::TcpIncoming;

use crate::app::App;
use crate::grpc::CLIENT_API_DESCRIPTOR_SET;
use crate::grpc::MAX_API_MESSAGE_BYTES;
use crate::grpc::RaftGrpcService;
use crate::grpc::SchedulerService;
use crate::grpc::WorkersService;
use crate::grpc::admission;
use crate::grpc::admission::Budgeted;
use crate::grpc::api::scheduler_server::SchedulerServer;
use crate::grpc::api::workers_server::WorkersServer;
use crate::grpc::health;
use crate::grpc::tls_incoming::tls_incoming;
use crate::grpc::transport;
use crate::grpc::transport::PortLimits;
use crate::grpc::with_wire_errors;
use crate::network::ClientCerts;
use crate::network::Handshakes;
use crate::network::NodeTls;
use crate::network::TlsSetupError;
use crate::observe::watch::Readiness;
use crate::raft_types::Raft;
use raftsched_store::RemovedPeers;
use std::sync::Arc;

/// The server-side cap on any one RPC, whatever deadline the caller set.
const SERVER_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the gRPC server could not be built or stopped with an error. Keeps tonic's error type
/// out of the node, which only reports it.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("the gRPC ports' TLS from the node's credentials: {0}")]
    Tls(#[from] TlsSetupError),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// A server future, whichever connections (plaintext or TLS) it serves.
type Served = Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;

/// Builds the client port's server future on `listener`: the Scheduler and Workers
/// services and reflection (of those two only), until `shutdown` is cancelled. The Raft
/// service is never here: a client of the API cannot act as a peer (see [`serve_peer`]).
pub fn serve(
    listener: TcpListener,
    app: App,
    readiness: watch::Receiver<Readiness>,
    tls: Option<Arc<NodeTls>>,
    port_limits: PortLimits,
    shutdown: CancellationToken,
) -> Result<impl Future<Output = Result<(), ServeError>> + use<>, ServeError> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(CLIENT_API_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let api_budget = admission::node_receive_budget();
    let reflection = Budgeted::with_node_budget(reflection, &api_budget);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let health_service = Budgeted::with_node_budget(health_service, &api_budget);
    let metrics = app.node_metrics().clone();
    let workers_service = WorkersServer::new(WorkersService::new(app.clone()))
        .max_decoding_message_size(MAX_API_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_API_MESSAGE_BYTES);
    let workers_service = Budgeted::with_node_budget(workers_service, &api_budget);
    let scheduler_service = SchedulerServer::new(SchedulerService::new(app).with_peer_tls(tls.clone()))
        .max_decoding_message_size(MAX_API_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_API_MESSAGE_BYTES);
    let scheduler_service = Budgeted::with_node_budget(scheduler_service, &api_budget);
    let handshakes = grpc_handshakes(tls.as_deref())?;
    let router = server_builder(port_limits)
        .add_service(with_wire_errors(scheduler_service, metrics.clone()))
        .add_service(with_wire_errors(workers_service, metrics))
        .add_service(health_service)
        .add_service(reflection);
    let server = serve_on(
        router,
        listener,
        port_limits,
        handshakes,
        shutdown.clone().cancelled_owned(),
    );
    let health = health::follow(health_reporter, readiness, shutdown);
    Ok(async move {
        // The follower lives exactly as long as the server, whichever way the server ends.
        let health = tokio::spawn(health);
        let served = server.await;
        health.abort();
        Ok(served?)
    })
}

/// Builds the peer port's server future on `listener`: the Raft service for this cluster's
/// `raft` and nothing else (no reflection), until `shutdown` is cancelled.
pub fn serve_peer(
    listener: TcpListener,
    raft: Raft,
    removed: RemovedPeers,
    cluster_id: &str,
    tls: Option<Arc<NodeTls>>,
    port_limits: PortLimits,
    shutdown: CancellationToken,
) -> Result<impl Future<Output = Result<(), ServeError>> + use<>, ServeError> {
    let raft_service = Budgeted::per_connection(RaftGrpcService::server(raft, removed, cluster_id));
    let handshakes = grpc_handshakes(tls.as_deref())?;
    let router = server_builder(port_limits).add_service(raft_service);
    let server = serve_on(router, listener, port_limits, handshakes, shutdown.cancelled_owned());
    Ok(async move { Ok(server.await?) })
}

/// The handshakes of a gRPC port: the node's certificate, a client certificate from the
/// cluster CA required, HTTP/2 only; None with `--insecure`.
fn grpc_handshakes(tls: Option<&NodeTls>) -> Result<Option<Handshakes>, ServeError> {
    let Some(tls) = tls else { return Ok(None) };
    let config = crate::network::server_config(tls.pems(), ClientCerts::Required, &[b"h2"])?;
    Ok(Some(tls.handshakes(config)))
}

/// `router` on the port's connections until `shutdown`, over TLS when `handshakes` is given.
fn serve_on(
    router: Router,
    listener: TcpListener,
    port_limits: PortLimits,
    handshakes: Option<Handshakes>,
    shutdown: WaitForCancellationFutureOwned,
) -> Served {
    let incoming = limited_incoming(listener, port_limits);
    match handshakes {
        Some(handshakes) => Box::pin(router.serve_with_incoming_shutdown(tls_incoming(incoming, handshakes), shutdown)),
        None => Box::pin(router.serve_with_incoming_shutdown(incoming, shutdown)),
    }
}

/// The port's accepted connections: no Nagle, TCP keepalive, and the connection cap and
/// handshake timeout of [`transport`].
fn limited_incoming(
    listener: TcpListener,
    port_limits: PortLimits,
) -> impl futures::Stream<Item = std::io::Result<transport::LimitedConnection>> {
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(transport::TCP_KEEPALIVE));
    transport::limit_connections(incoming, port_limits)
}

/// The HTTP/2 limits both ports apply (TLS is done before tonic sees a connection:
/// `tls_incoming`).
fn server_builder(port_limits: PortLimits) -> Server {
    Server::builder()
        .timeout(SERVER_REQUEST_TIMEOUT)
        .max_concurrent_streams(transport::MAX_CONCURRENT_STREAMS)
        .initial_stream_window_size(transport::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(transport::CONNECTION_WINDOW_BYTES)
        .http2_keepalive_interval(Some(port_limits.keepalive_interval))
        .http2_keepalive_timeout(Some(port_limits.keepalive_timeout))
        .http2_max_header_list_size(transport::MAX_HEADER_LIST_BYTES)
        .http2_max_pending_accept_reset_streams(Some(transport::MAX_PENDING_ACCEPT_RESET_STREAMS))
}
