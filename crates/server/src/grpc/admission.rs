//! Byte budgets on what a node receives: every gRPC message counts against its connection's
//! share from the moment its 5-byte length prefix arrives until the next message of its
//! stream starts or, for the last one (a unary call's only one), until the call is answered.
//! Counting at the prefix, before the body is read, means a refused message was never
//! buffered: tonic reads it into memory only after this layer let the prefix through.
//!
//! Memory a node holds for request messages being received, at most:
//! Raft 16 x 8 MiB = 128 MiB (`network::MAX_RAFT_RPCS_IN_FLIGHT`), client API
//! [`NODE_RECEIVE_BYTES`] = 256 MiB, plus the HTTP/2 connection window (1 MiB) of every
//! open connection for bytes received and not yet read. One connection can hold at most
//! [`CONNECTION_RECEIVE_BYTES`] = 32 MiB of the first two.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::Context;
use std::task::Poll;

use http_body::Frame;
use http_body::SizeHint;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::Semaphore;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::BoxFuture;
use tonic::codegen::Bytes;
use tonic::codegen::Service;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;
use tonic::transport::server::TlsConnectInfo;

use crate::grpc::MAX_API_MESSAGE_BYTES;
use crate::grpc::identity::IdentityCache;
use crate::network::MAX_RAFT_MESSAGE_BYTES;
use crate::network::MAX_RAFT_RPCS_IN_FLIGHT;
use crate::network::MAX_SNAPSHOT_CHUNK_BYTES;

const MIB: usize = 1024 * 1024;
/// A gRPC message on the wire: a compression flag byte and a 4-byte big-endian length.
const PREFIX_BYTES: usize = 5;

/// Bytes of messages one connection may have in flight: 32 MiB. An honest peer sends two
/// appends (8 MiB each, the replication and a heartbeat) and a snapshot chunk at once;
/// a client sends a few maximal (4 MiB) calls at once and many small ones. Over it a call
/// is answered UNAVAILABLE (retry later) when its message arrives.
pub const CONNECTION_RECEIVE_BYTES: usize = 32 * MIB;
const _: () = assert!(CONNECTION_RECEIVE_BYTES >= 2 * MAX_RAFT_MESSAGE_BYTES + 2 * MAX_SNAPSHOT_CHUNK_BYTES);
const _: () = assert!(CONNECTION_RECEIVE_BYTES >= 4 * MAX_API_MESSAGE_BYTES);

/// Bytes of client API messages the whole node may have in flight: 256 MiB, eight
/// connections at their share. Raft traffic is bounded apart (by its call cap), so a flood
/// of client calls cannot starve replication.
pub const NODE_RECEIVE_BYTES: usize = 256 * MIB;
const _: () = assert!(NODE_RECEIVE_BYTES >= 8 * CONNECTION_RECEIVE_BYTES);

/// Raft calls one connection may have in progress: 4 (an honest leader has its
/// replication, a heartbeat, and a vote or transfer in flight to one follower), so one
/// connection cannot take all [`MAX_RAFT_RPCS_IN_FLIGHT`] (16) node-wide slots; four peers
/// at their share fit.
pub const MAX_RAFT_CALLS_PER_CONNECTION: usize = 4;
const _: () = assert!(4 * MAX_RAFT_CALLS_PER_CONNECTION <= MAX_RAFT_RPCS_IN_FLIGHT);

/// One connection's share of the node's receive budgets; the node's connection type
/// hands it to every request of the connection (tonic's connect info).
#[derive(Debug, Clone)]
pub struct ConnectionShare {
    tcp: TcpConnectInfo,
    bytes: Arc<Semaphore>,
    pub(super) raft_calls: Arc<Semaphore>,
    /// Who the connection's client certificate names, read on its first call.
    identity: IdentityCache,
}

impl ConnectionShare {
    pub fn new(tcp: TcpConnectInfo) -> ConnectionShare {
        ConnectionShare {
            tcp,
            bytes: Arc::new(Semaphore::new(CONNECTION_RECEIVE_BYTES)),
            raft_calls: Arc::new(Semaphore::new(MAX_RAFT_CALLS_PER_CONNECTION)),
            identity: IdentityCache::default(),
        }
    }
}

/// How a request's connection came in, as the node's listener saw it: put on every request
/// by [`Budgeted`], read by `identity::identity_of`. A request without it did not come
/// through the node's listener and is refused by the role check (fail closed): a TLS port
/// whose connect info went unrecognised must not read as plaintext, which allows all.
#[derive(Debug, Clone)]
pub(crate) enum Transport {
    /// A `--insecure` node's plaintext port: no identity.
    Plaintext,
    /// TLS with the certificate chain the client presented (verified against the cluster CA
    /// by the handshake), leaf first, None if it presented none; and the identity its leaf
    /// names once read (one cache per connection).
    Tls(
        Option<Arc<Vec<tonic::transport::CertificateDer<'static>>>>,
        IdentityCache,
    ),
    /// The HTTP port's console, signed in with the node's console token (`grpc::gateway`):
    /// a reader of every namespace. Never put on a request of the gRPC ports.
    Console,
}

/// A service whose request messages count against their connection's share and, for the
/// client API, the node-wide budget.
#[derive(Clone)]
pub struct Budgeted<S> {
    inner: S,
    node: Option<Arc<Semaphore>>,
}

impl<S> Budgeted<S> {
    /// Counted against the connection's share only (Raft: bounded node-wide by its gate).
    pub fn per_connection(inner: S) -> Budgeted<S> {
        Budgeted { inner, node: None }
    }

    /// Counted against the connection's share and `node`, shared by the client services.
    pub fn with_node_budget(inner: S, node: &Arc<Semaphore>) -> Budgeted<S> {
        Budgeted {
            inner,
            node: Some(Arc::clone(node)),
        }
    }
}

/// The node-wide budget for client API messages.
pub fn node_receive_budget() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(NODE_RECEIVE_BYTES))
}

impl<S: NamedService> NamedService for Budgeted<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Budgeted<S>
where
    S: Service<http::Request<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = Infallible;
    type Future = BoxFuture<S::Response, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // Under TLS tonic puts the listener's connect info on the request both bare and
        // wrapped with the client's certificates, so the wrapped one is looked for first:
        // looking for the bare one first read every TLS call as plaintext (allow all).
        let extensions = request.extensions();
        let (share, transport) = if let Some(tls) = extensions.get::<TlsConnectInfo<ConnectionShare>>() {
            let share = tls.get_ref().clone();
            let identity = share.identity.clone();
            (share, Transport::Tls(tls.peer_certs(), identity))
        } else if let Some(share) = extensions.get::<ConnectionShare>() {
            (share.clone(), Transport::Plaintext)
        } else {
            // Not from the node's listener (an in-memory transport): nothing to count, and
            // no Transport, so the role check refuses it.
            return Box::pin(self.inner.call(request));
        };
        let extensions = request.extensions_mut();
        extensions.insert(share.tcp.clone());
        extensions.insert(transport);
        // The reservation of the latest message lives as long as the body or the call,
        // whichever is longer: a unary call's body is dropped once decoded, but the decoded
        // message stays in memory until the call is answered.
        let held = Arc::new(Mutex::new(Vec::new()));
        let body_held = Arc::clone(&held);
        let node = self.node.clone();
        let request = request.map(|body| {
            Body::new(BudgetedBody {
                inner: body,
                connection: share.bytes,
                node,
                prefix: [0; PREFIX_BYTES],
                prefix_len: 0,
                remaining: 0,
                held: body_held,
            })
        });
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await;
            drop(held);
            response
        })
    }
}

/// A request body that reserves each message's length from the budgets when its prefix
/// arrives, and fails the call at once when a budget has no room for it.
struct BudgetedBody {
    inner: Body,
    connection: Arc<Semaphore>,
    node: Option<Arc<Semaphore>>,
    /// The prefix of the next message, as far as it arrived.
    prefix: [u8; PREFIX_BYTES],
    prefix_len: usize,
    /// Bytes of the current message still to arrive.
    remaining: usize,
    /// The latest message's reservations, shared with the call (see `Budgeted::call`).
    held: Arc<Mutex<Vec<OwnedSemaphorePermit>>>,
}

impl BudgetedBody {
    /// Walks the message framing through one chunk of the body.
    fn count(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let n = (PREFIX_BYTES - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
            self.prefix_len += n;
            data = &data[n..];
            if self.prefix_len == PREFIX_BYTES {
                self.prefix_len = 0;
                let length = u32::from_be_bytes([self.prefix[1], self.prefix[2], self.prefix[3], self.prefix[4]]);
                // The previous message is complete and with the handler by now (a stream's
                // handler asks for the next message after taking the previous one).
                let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                held.clear();
                *held = self.reserve(length as usize + PREFIX_BYTES)?;
                drop(held);
                self.remaining = length as usize;
            }
        }
        Ok(())
    }

    fn reserve(&self, bytes: usize) -> Result<Vec<OwnedSemaphorePermit>, Status> {
        if bytes > CONNECTION_RECEIVE_BYTES {
            return Err(Status::resource_exhausted(format!(
                "message length: {bytes} bytes, the limit is {} MiB per connection in flight; send smaller messages",
                CONNECTION_RECEIVE_BYTES / MIB
            )));
        }
        let permits = bytes as u32; // at most 32 MiB, checked above
        let busy = |whose: &str, limit: usize| {
            Status::unavailable(format!(
                "{whose} already receives {} MiB of messages; retry after a backoff (this message: {bytes} bytes)",
                limit / MIB
            ))
        };
        let mut held = Vec::with_capacity(2);
        let connection = Arc::clone(&self.connection)
            .try_acquire_many_owned(permits)
            .map_err(|_| busy("this connection", CONNECTION_RECEIVE_BYTES))?;
        held.push(connection);
        if let Some(node) = &self.node {
            let node = Arc::clone(node)
                .try_acquire_many_owned(permits)
                .map_err(|_| busy("this node", NODE_RECEIVE_BYTES))?;
            held.push(node);
        }
        Ok(held)
    }
}

impl http_body::Body for BudgetedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
            && let Err(status) = this.count(data)
        {
            return Poll::Ready(Some(Err(status)));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
