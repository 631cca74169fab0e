//! [`LinkProxy`]: a TCP proxy for one directed peer link, whose behaviour can be changed
//! while connections are open.
//!
//! gRPC keeps one long-lived HTTP/2 connection per peer, so a fault that only applied to new
//! connections would never be seen. Every mode here applies at once to the connections
//! already open as well as to new ones:
//!
//! - [`LinkMode::Pass`]: forward bytes both ways.
//! - [`LinkMode::Blackhole`]: forward nothing in either direction, but keep every connection
//!   open (bytes already read wait in the proxy; the kernel buffers fill and senders stall),
//!   and accept new connections without connecting them onward. This is what a network
//!   partition looks like to TCP: silence, until a keep-alive or deadline gives up. Back in
//!   `Pass`, whatever was held flows on, as TCP retransmission would deliver it.
//! - [`LinkMode::Delay`]: forward every chunk this long after it was read (latency, not a
//!   bandwidth limit: chunks read back to back are written back to back).
//!
//! [`LinkProxy::reset`] closes every open connection at once (with a TCP RST), so both ends
//! see their connection die and must reconnect.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWrite;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long the proxy waits to connect onward before giving the connection up (the target
/// node is down: the client sees its connection closed, as with a refused connect).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bytes read per chunk.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight per direction of a delayed connection.
const CHUNKS_IN_FLIGHT: usize = 256;

/// What a link does with traffic now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    Pass,
    Blackhole,
    Delay(Duration),
}

impl LinkMode {
    fn delay(self) -> Duration {
        match self {
            LinkMode::Delay(delay) => delay,
            _ => Duration::ZERO,
        }
    }
}

impl std::fmt::Display for LinkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkMode::Pass => f.write_str("pass"),
            LinkMode::Blackhole => f.write_str("blackhole"),
            LinkMode::Delay(delay) => write!(f, "delay {} ms", delay.as_millis()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct LinkState {
    mode: LinkMode,
    /// Bumped by [`LinkProxy::reset`]; a connection opened under an older epoch closes.
    reset_epoch: u64,
}

/// A proxy listening on an ephemeral loopback port and forwarding to one target. Dropping it
/// closes the listener and every connection.
pub struct LinkProxy {
    local_addr: SocketAddr,
    target: SocketAddr,
    state: watch::Sender<LinkState>,
    stop: CancellationToken,
    accept_task: JoinHandle<()>,
    open_connections: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
}

impl LinkProxy {
    /// Binds `127.0.0.1:0` and starts forwarding to `target`, in [`LinkMode::Pass`].
    pub async fn start(target: SocketAddr) -> std::io::Result<LinkProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let local_addr = listener.local_addr()?;
        let (state, _) = watch::channel(LinkState {
            mode: LinkMode::Pass,
            reset_epoch: 0,
        });
        let stop = CancellationToken::new();
        let open_connections = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let accept_task = tokio::spawn(accept_loop(
            listener,
            target,
            state.clone(),
            stop.clone(),
            open_connections.clone(),
            accepted.clone(),
        ));
        Ok(LinkProxy {
            local_addr,
            target,
            state,
            stop,
            accept_task,
            open_connections,
            accepted,
        })
    }

    /// Where clients of this link connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    pub fn mode(&self) -> LinkMode {
        self.state.borrow().mode
    }

    /// Applies to open connections at once, and to new ones.
    pub fn set_mode(&self, mode: LinkMode) {
        self.state.send_modify(|state| state.mode = mode);
    }

    /// Closes every connection open now (new ones are accepted as usual).
    pub fn reset(&self) {
        self.state.send_modify(|state| state.reset_epoch += 1);
    }

    /// Connections open through the proxy now.
    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// Connections accepted since the start.
    pub fn accepted_connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.accept_task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    state: watch::Sender<LinkState>,
    stop: CancellationToken,
    open_connections: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
) {
    loop {
        let inbound = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match inbound {
            Ok((inbound, _)) => {
                accepted.fetch_add(1, Ordering::Relaxed);
                let receiver = state.subscribe();
                let stop = stop.clone();
                let open = OpenConnection::new(open_connections.clone());
                tokio::spawn(async move {
                    let _open = open;
                    serve_connection(inbound, target, receiver, stop).await;
                });
            }
            // Out of file descriptors or similar: back off a little rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Counts a connection as open while alive.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(counter: Arc<AtomicUsize>) -> OpenConnection {
        counter.fetch_add(1, Ordering::Relaxed);
        OpenConnection(counter)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve_connection(
    mut inbound: TcpStream,
    target: SocketAddr,
    mut state: watch::Receiver<LinkState>,
    stop: CancellationToken,
) {
    let epoch = state.borrow_and_update().reset_epoch;
    let mut reset = state.clone();
    let reset = reset.wait_for(|s| s.reset_epoch != epoch);
    tokio::pin!(reset);
    // A new connection during a blackhole hangs, connected to nothing, until the link heals.
    let connect = async {
        if !wait_passable(&mut state).await {
            return None;
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(outbound)) => Some(outbound),
            _ => None,
        }
    };
    let outbound = tokio::select! {
        _ = stop.cancelled() => None,
        _ = &mut reset => None,
        outbound = connect => outbound,
    };
    let Some(mut outbound) = outbound else {
        return;
    };
    let _ = outbound.set_nodelay(true);
    let _ = inbound.set_nodelay(true);
    let aborted = tokio::select! {
        _ = stop.cancelled() => true,
        _ = &mut reset => true,
        _ = forward(&mut inbound, &mut outbound, state) => false,
    };
    if aborted {
        // An abortive close (RST), so a reset looks like a dead connection to both ends
        // rather than an orderly goodbye.
        let _ = inbound.set_zero_linger();
        let _ = outbound.set_zero_linger();
    }
}

async fn forward(inbound: &mut TcpStream, outbound: &mut TcpStream, state: watch::Receiver<LinkState>) {
    let (inbound_read, inbound_write) = inbound.split();
    let (outbound_read, outbound_write) = outbound.split();
    tokio::join!(
        pump(inbound_read, outbound_write, state.clone()),
        pump(outbound_read, inbound_write, state),
    );
}

/// Waits until the link is not blackholed. False when the proxy is gone.
async fn wait_passable(state: &mut watch::Receiver<LinkState>) -> bool {
    state.wait_for(|s| s.mode != LinkMode::Blackhole).await.is_ok()
}

/// Copies one direction until end of stream or an error, honouring the link's mode for
/// every chunk; then half-closes the destination.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, state: watch::Receiver<LinkState>) {
    let (chunks, mut to_write) = mpsc::channel::<(Instant, Vec<u8>)>(CHUNKS_IN_FLIGHT);
    let mut read_state = state.clone();
    let reader = async move {
        let mut buffer = vec![0u8; CHUNK_BYTES];
        loop {
            if !wait_passable(&mut read_state).await {
                return;
            }
            let read = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            let due = Instant::now() + read_state.borrow().mode.delay();
            if chunks.send((due, buffer[..read].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let mut write_state = state;
    let writer = async move {
        while let Some((due, bytes)) = to_write.recv().await {
            tokio::time::sleep_until(due).await;
            if !wait_passable(&mut write_state).await {
                return;
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut read, mut write) = socket.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, message: &[u8], within: Duration) -> Option<Duration> {
        let started = Instant::now();
        stream.write_all(message).await.ok()?;
        let mut answer = vec![0u8; message.len()];
        match tokio::time::timeout(within, stream.read_exact(&mut answer)).await {
            Ok(Ok(_)) => {
                assert_eq!(answer, message);
                Some(started.elapsed())
            }
            _ => None,
        }
    }

    #[tokio::test]
    async fn modes_apply_to_open_connections() {
        let proxy = LinkProxy::start(echo_server().await).await.unwrap();
        let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
        assert!(round_trip(&mut stream, b"one", Duration::from_secs(5)).await.is_some());

        proxy.set_mode(LinkMode::Blackhole);
        assert!(
            round_trip(&mut stream, b"two", Duration::from_millis(300))
                .await
                .is_none()
        );
        // Still open: once healed, what was held is delivered.
        proxy.set_mode(LinkMode::Pass);
        let mut held = [0u8; 3];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut held))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&held, b"two");

        proxy.set_mode(LinkMode::Delay(Duration::from_millis(100)));
        let took = round_trip(&mut stream, b"three", Duration::from_secs(5)).await.unwrap();
        assert!(took >= Duration::from_millis(200), "two delayed hops took {took:?}");

        proxy.set_mode(LinkMode::Pass);
        assert_eq!(proxy.open_connections(), 1);
        proxy.reset();
        let mut buffer = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .unwrap();
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "reset connection still readable: {read:?}"
        );
        // New connections work after a reset.
        let mut again = TcpStream::connect(proxy.local_addr()).await.unwrap();
        assert!(round_trip(&mut again, b"four", Duration::from_secs(5)).await.is_some());
    }

    #[tokio::test]
    async fn new_connections_during_a_blackhole_wait_for_the_heal() {
        let proxy = LinkProxy::start(echo_server().await).await.unwrap();
        proxy.set_mode(LinkMode::Blackhole);
        let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
        assert!(
            round_trip(&mut stream, b"held", Duration::from_millis(300))
                .await
                .is_none()
        );
        proxy.set_mode(LinkMode::Pass);
        let mut held = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut held))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&held, b"held");
    }
}
