//! [`tls_incoming`]: a port's accepted connections after their TLS handshake, done here
//! rather than by tonic so that the handshakes take turns on the CPU
//! (`network::Handshakes`): tonic spawns one unbounded task per handshake.

use std::io;

use futures::Stream;
use futures::StreamExt;
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;

use crate::grpc::transport::LimitedConnection;
use crate::network::Handshakes;

/// The connections of `incoming` whose handshake succeeded, in the order they finish. A
/// failed or timed-out handshake closes its connection and is logged at debug, as tonic
/// does; an accept error is passed on (tonic skips it). Every handshake holds its
/// connection's slot, so at most `MAX_CONNECTIONS` are in progress. Dropping the stream
/// (the server stopping) aborts the handshakes in progress.
pub(super) fn tls_incoming<S>(
    incoming: S,
    handshakes: Handshakes,
) -> impl Stream<Item = io::Result<TlsStream<LimitedConnection>>> + Send + 'static
where
    S: Stream<Item = io::Result<LimitedConnection>> + Send + 'static,
{
    let state = Pending {
        incoming: Box::pin(incoming),
        handshakes,
        in_progress: JoinSet::new(),
        ended: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        let next = state.next().await?;
        Some((next, state))
    })
}

/// The stream's state: the accept stream and the handshakes started from it.
struct Pending<S> {
    incoming: std::pin::Pin<Box<S>>,
    handshakes: Handshakes,
    in_progress: JoinSet<io::Result<TlsStream<LimitedConnection>>>,
    /// The accept stream has ended: only the handshakes in progress are left.
    ended: bool,
}

impl<S: Stream<Item = io::Result<LimitedConnection>>> Pending<S> {
    async fn next(&mut self) -> Option<io::Result<TlsStream<LimitedConnection>>> {
        loop {
            tokio::select! {
                accepted = self.incoming.next(), if !self.ended => match accepted {
                    Some(Ok(connection)) => {
                        let handshakes = self.handshakes.clone();
                        self.in_progress.spawn(async move { handshakes.accept(connection).await });
                    }
                    Some(Err(e)) => return Some(Err(e)),
                    None => self.ended = true,
                },
                Some(done) = self.in_progress.join_next() => match done {
                    Ok(Ok(stream)) => return Some(Ok(stream)),
                    Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                    Err(e) => tracing::debug!("TLS handshake task ended: {e}"),
                },
                else => return None,
            }
        }
    }
}
