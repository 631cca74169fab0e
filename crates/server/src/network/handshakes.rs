//! [`Handshakes`]: the TLS handshakes of a node's ports, taking turns on the CPU.
//!
//! A handshake is CPU work in bursts (the key exchange and signature when the ClientHello
//! arrives, the check of the client's certificate chain when its Finished does) with waits
//! for the peer in between. Spawned one task per connection, as tonic does, 1,000 clients
//! connecting at once put 1,000 runnable handshake tasks in front of Raft on the node's
//! threads: every Raft message then waits its turn behind them, and on this 2-core machine
//! the leader's appends and their answers came later than its 300 ms lease in the first
//! 1000-client run of a fresh cluster (BENCHMARKS.md, issue 14). Here a handshake must hold
//! one of [`HANDSHAKES_ON_CPU`] turns while it runs and gives it back at its next wait, so at
//! most that many are ever runnable; one waiting for its peer holds nothing, so a client
//! that stalls mid-handshake slows no one else.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::task::Poll;
use std::task::ready;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::PollSemaphore;

/// Handshakes running on the node's threads at any one time: 1. A server-side TLS 1.3
/// handshake with P-256 certificates costs well under a millisecond of CPU, so one at a time
/// still admits over a thousand connections a second, and a Raft message waits for at most
/// one handshake step, not for a thousand of them.
pub const HANDSHAKES_ON_CPU: usize = 1;

/// A TLS client must finish its handshake within 5 s of connecting, waiting for a turn
/// included: a silent client does not keep a connection slot.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The turns every port of one node shares, so the bound holds node-wide.
pub(super) fn new_turns() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(HANDSHAKES_ON_CPU))
}

/// A port's TLS acceptor whose handshakes take turns (see the module doc).
#[derive(Clone)]
pub struct Handshakes {
    acceptor: TlsAcceptor,
    turns: Arc<Semaphore>,
}

impl Handshakes {
    pub(super) fn new(config: Arc<ServerConfig>, turns: Arc<Semaphore>) -> Handshakes {
        Handshakes {
            acceptor: TlsAcceptor::from(config),
            turns,
        }
    }

    /// The TLS handshake on `io`, within [`TLS_HANDSHAKE_TIMEOUT`].
    pub async fn accept<IO>(&self, io: IO) -> io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let handshake = TakeTurns {
            handshake: Box::pin(self.acceptor.accept(io)),
            turns: PollSemaphore::new(Arc::clone(&self.turns)),
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
            Ok(done) => done,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("TLS handshake not finished within {TLS_HANDSHAKE_TIMEOUT:?} of connecting"),
            )),
        }
    }
}

/// `handshake`, polled only while it holds a turn; the turn is given back as soon as the
/// poll returns, whether the handshake is done or waits for its peer.
struct TakeTurns<F> {
    handshake: Pin<Box<F>>,
    turns: PollSemaphore,
}

impl<F: Future> Future for TakeTurns<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        // The semaphore is never closed: `None` cannot happen, and would only mean "no bound".
        let _turn = ready!(this.turns.poll_acquire(cx));
        this.handshake.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering;

    use super::*;

    /// A future that is runnable `steps` times, counting how many of its kind run at once.
    struct Steps {
        left: usize,
        running: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl Future for Steps {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_micros(200));
            self.running.fetch_sub(1, Ordering::SeqCst);
            if self.left == 0 {
                return Poll::Ready(());
            }
            self.left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn at_most_one_handshake_step_runs_at_a_time_and_all_finish() {
        let turns = new_turns();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..64 {
            tasks.spawn(TakeTurns {
                handshake: Box::pin(Steps {
                    left: 3,
                    running: running.clone(),
                    most: most.clone(),
                }),
                turns: PollSemaphore::new(Arc::clone(&turns)),
            });
        }
        let finished = tokio::time::timeout(Duration::from_secs(30), tasks.join_all()).await;
        assert_eq!(finished.expect("64 x 4 steps of 0.2 ms take well under 30 s").len(), 64);
        assert_eq!(most.load(Ordering::SeqCst), HANDSHAKES_ON_CPU);
        assert_eq!(turns.available_permits(), HANDSHAKES_ON_CPU, "every turn is given back");
    }
}
