//! The node's HTTP port (`--http-listen`): `/healthz`, `/readyz` and `/metrics` for probes
//! and Prometheus ([`routes`]), and the web console ([`console`]), over TLS with the node's
//! certificate unless `--insecure`.
//!
//! The port is bounded like the gRPC ports: at most [`MAX_HTTP_CONNECTIONS`] connections
//! (one over is closed at once), a TLS handshake within [`TLS_HANDSHAKE_TIMEOUT`], request
//! headers within [`HEADER_READ_TIMEOUT`], and no connection older than
//! [`MAX_CONNECTION_AGE`]. Only the console's API reads a request body, of at most
//! [`MAX_API_BODY_BYTES`].
//!
//! Architecture invariant: this module only reads. It never proposes, and every page costs
//! O(queues + workers) at most, never O(tasks): a scrape or a dashboard poll every second
//! must not slow dispatch. (The console's task listing is a paged client API call, bounded
//! as on the gRPC port.)

mod console;
mod routes;
mod scrape;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub use console::MAX_API_BODY_BYTES;
pub use console::MAX_OVERVIEW_WORKERS;
pub use routes::HttpState;
pub use scrape::MAX_REPORTED_QUEUES;
pub use tls::HttpTlsError;

use crate::network::Handshakes;
use crate::network::NodeTls;
use routes::Caller;

/// Concurrent connections: 256. Probes and scrapers use one each, a browser six; an
/// operator's port is not a public web server.
pub const MAX_HTTP_CONNECTIONS: usize = 256;
/// A TLS client must finish its handshake within 5 s of connecting (as on the gRPC ports).
pub use crate::network::TLS_HANDSHAKE_TIMEOUT;
/// An HTTP/1 client must send a request's headers within 10 s: a connection that says
/// nothing does not hold a slot for ever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed (gracefully, after its request in progress) 5 minutes after it
/// was accepted, so idle keep-alive connections cannot hold every slot either.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);
/// How long a request in progress has to finish once the connection is closing.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// HTTP/2 streams per connection: nothing here needs many.
const MAX_HTTP2_STREAMS: u32 = 32;
/// After a failed accept (out of file descriptors), wait before the next: a tight loop
/// would spin a core while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The HTTP port's TLS from the node's credentials, built before the node starts anything
/// so that bad credentials stop it at once.
#[derive(Clone)]
pub struct HttpTls(Handshakes);

impl HttpTls {
    pub fn from_node(tls: &NodeTls) -> Result<HttpTls, HttpTlsError> {
        Ok(HttpTls(tls.handshakes(tls::server_config(tls.pems())?)))
    }
}

/// Serves `state` on `listener` until `shutdown` is cancelled; TLS when `tls` is given.
pub fn serve(
    listener: TcpListener,
    state: HttpState,
    tls: Option<HttpTls>,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + use<> {
    let router = routes::router(state);
    accept_loop(listener, router, tls.map(|tls| tls.0), shutdown)
}

async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    acceptor: Option<Handshakes>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("HTTP port: accept failed: {e}");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%remote, "HTTP port: {MAX_HTTP_CONNECTIONS} connections open; closing a new one");
            continue;
        };
        let connection = Connection {
            router: router.clone(),
            acceptor: acceptor.clone(),
            shutdown: shutdown.clone(),
            remote,
            _slot: slot,
        };
        connections.spawn(connection.run(stream));
    }
    // Requests in progress get the grace period; then whatever is left is dropped.
    let drained = tokio::time::timeout(CLOSE_GRACE * 2, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        connections.abort_all();
    }
}

/// One accepted connection and the slot it holds until it closes.
struct Connection {
    router: axum::Router,
    acceptor: Option<Handshakes>,
    shutdown: CancellationToken,
    remote: SocketAddr,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        match self.acceptor.clone() {
            None => self.serve(TokioIo::new(stream), Caller::Insecure).await,
            Some(acceptor) => {
                let stream = match acceptor.accept(stream).await {
                    Ok(stream) => stream,
                    Err(e) => return tracing::debug!(remote = %self.remote, "HTTP port: TLS handshake: {e}"),
                };
                let caller = Caller::of_certificate(stream.get_ref().1.peer_certificates());
                self.serve(TokioIo::new(stream), caller).await;
            }
        }
    }

    async fn serve<I>(self, io: TokioIo<I>, caller: Caller)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let router = self.router;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(caller.clone());
            router.clone().oneshot(request)
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_HTTP2_STREAMS);
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let closing = tokio::select! {
            _ = connection.as_mut() => return,
            _ = self.shutdown.cancelled() => "the node is stopping",
            _ = tokio::time::sleep(MAX_CONNECTION_AGE) => "the connection reached its maximum age",
        };
        tracing::trace!(remote = %self.remote, "HTTP port: closing a connection: {closing}");
        connection.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(CLOSE_GRACE, connection).await;
    }
}
