//! Limits of the node's one gRPC port: how many connections, streams and calls it holds,
//! how much a peer may have in flight, and how dead or silent peers are dropped.
//!
//! Memory a node can be made to hold for requests it has not finished reading, at most:
//! - bytes received but not yet read by a handler: the HTTP/2 connection window, 1 MiB per
//!   connection (its streams' 1 MiB windows share it): 11,024 x 1 MiB = 10.8 GiB with every
//!   connection slot taken and stuffed, 256 MiB for 256 connections;
//! - bytes of messages being read and decoded: the receive budgets of `grpc::admission`,
//!   128 MiB for Raft and 256 MiB for the client API node-wide, 32 MiB per connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;

use futures::Stream;
use futures::StreamExt;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
use tokio::io::ReadBuf;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tonic::transport::server::Connected;
use tonic::transport::server::TcpIncoming;

use crate::grpc::admission::ConnectionShare;
use raftsched_core::state::limits::MAX_WORKERS;

/// Concurrent connections a node accepts: 11,024. Every worker holds one connection to the
/// leader (at most `MAX_WORKERS` = 10,000), and 1024 more are for peers, CLIs and clients.
/// Over the cap a new connection is closed at once, before any byte is read.
pub const MAX_CONNECTIONS: usize = MAX_WORKERS + 1024;
const _: () = assert!(MAX_CONNECTIONS > MAX_WORKERS + 16);

/// Concurrent HTTP/2 streams per connection: 256. A worker uses one for its Attach stream
/// and a few for heartbeats and reports; a client multiplexes at most a few hundred calls,
/// and a client over the cap waits for a stream (tonic queues), it does not fail.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

// No cap on calls in progress per connection apart from the stream cap: tonic's
// `concurrency_limit_per_connection` queues calls over its cap with their bodies unread,
// and once their buffered bytes fill the connection window the calls it admitted cannot
// receive the rest of theirs: a 1000-stream test stalled 64 calls for the full 60 s
// server timeout. The per-connection byte budget (`grpc::admission`) bounds memory
// instead, and refuses at once rather than queueing.

/// HTTP/2 flow-control window of one stream: 1 MiB (hyper's default, made explicit): what a
/// stream can have sent that its handler has not read yet.
pub const STREAM_WINDOW_BYTES: u32 = 1024 * 1024;

/// HTTP/2 flow-control window of one connection: 1 MiB. All its streams share it, so a
/// connection has at most 1 MiB received and not yet read, whatever its number of streams.
/// On a LAN (round trip under 1 ms) it still allows more than 1 GB/s per connection.
pub const CONNECTION_WINDOW_BYTES: u32 = 1024 * 1024;
const _: () = assert!(STREAM_WINDOW_BYTES <= CONNECTION_WINDOW_BYTES);

/// The server pings every connection this often: 10 s...
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// ...and closes one whose ping is not answered within 10 s: a dead peer (host down,
/// cable out, process frozen) is dropped within about 20 s and frees its slot and streams.
/// Our own clients ping every 200 ms; hyper has no policy against frequent client pings
/// (no GOAWAY "too many pings"), so they are answered, not punished.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP keepalive on accepted sockets: first probe after 30 s idle, so the kernel also
/// reaps connections whose peer vanished without a FIN.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// A connection must send the 24-byte HTTP/2 preface within 5 s of being accepted, or it
/// is closed: a client that connects and says nothing does not hold a slot for ever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The client connection preface of HTTP/2 ("PRI * HTTP/2.0...") is 24 bytes.
const PREFACE_BYTES: usize = 24;

/// Request headers per call: 16 KiB (hyper's default, made explicit). Ours send under
/// 1 KiB; the client API has no large metadata.
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// Streams a client may open and reset before the server accepts them: 20 (hyper's
/// default, the "rapid reset" guard). Over it, the connection is closed.
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// The connection limits a node applies: the constants above, except in tests of the caps.
#[derive(Debug, Clone, Copy)]
pub struct PortLimits {
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

impl Default for PortLimits {
    fn default() -> PortLimits {
        PortLimits {
            max_connections: MAX_CONNECTIONS,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            keepalive_interval: KEEPALIVE_INTERVAL,
            keepalive_timeout: KEEPALIVE_TIMEOUT,
        }
    }
}

/// Accepted connections, each holding one of `max_connections` slots for as long as it is
/// open; a connection over the cap is dropped (closed) as soon as it is accepted.
pub(super) fn limit_connections(
    incoming: TcpIncoming,
    limits: PortLimits,
) -> impl Stream<Item = io::Result<LimitedConnection>> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    incoming.filter_map(move |accepted| {
        let slots = Arc::clone(&slots);
        async move {
            let stream = match accepted {
                Ok(stream) => stream,
                Err(e) => return Some(Err(e)),
            };
            match slots.try_acquire_owned() {
                Ok(permit) => Some(Ok(LimitedConnection::new(stream, permit, limits.handshake_timeout))),
                Err(_) => {
                    tracing::debug!(
                        peer = ?stream.peer_addr().ok(),
                        "refusing a connection: {} already open",
                        limits.max_connections
                    );
                    None
                }
            }
        }
    })
}

/// A TCP connection that holds a connection slot until it is dropped, and fails its reads
/// when the HTTP/2 preface has not arrived within the handshake timeout.
pub struct LimitedConnection {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    /// This connection's share of the receive budgets, handed to each of its requests.
    share: ConnectionShare,
    /// Bytes read so far, counted only until the preface is complete.
    read_so_far: usize,
    handshake_timeout: Duration,
    /// Armed until the preface arrived.
    handshake_deadline: Option<Pin<Box<Sleep>>>,
}

impl LimitedConnection {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, handshake_timeout: Duration) -> LimitedConnection {
        let share = ConnectionShare::new(stream.connect_info());
        LimitedConnection {
            stream,
            _slot: slot,
            share,
            read_so_far: 0,
            handshake_timeout,
            handshake_deadline: Some(Box::pin(tokio::time::sleep(handshake_timeout))),
        }
    }
}

impl Connected for LimitedConnection {
    type ConnectInfo = ConnectionShare;

    fn connect_info(&self) -> ConnectionShare {
        self.share.clone()
    }
}

impl AsyncRead for LimitedConnection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        let Some(deadline) = this.handshake_deadline.as_mut() else {
            return polled;
        };
        this.read_so_far += buf.filled().len() - before;
        if this.read_so_far >= PREFACE_BYTES {
            this.handshake_deadline = None;
            return polled;
        }
        if polled.is_pending() && deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no HTTP/2 preface within {:?} of connecting", this.handshake_timeout),
            )));
        }
        polled
    }
}

impl AsyncWrite for LimitedConnection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
