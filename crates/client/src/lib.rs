//! The raftsched client: [`ClusterClient`] finds the leader, retries what is safe to retry
//! and gives every call a deadline; [`worker`] runs the tasks the leader assigns.
//!
//! Architecture invariant: no openraft, no sled. This crate speaks only the wire API of
//! `raftsched-api`, and only `cluster/` sees `tonic::Status`: what callers get back is a
//! [`ClientError`] with our own [`ErrorCode`], free of tonic.

mod cluster;
pub mod output;
mod tls;
pub mod trace;
pub mod worker;

pub use cluster::ClientError;
pub use cluster::ClusterClient;
pub use cluster::DEFAULT_CLUSTER;
pub use cluster::ErrorCode;
pub use cluster::SavedSnapshot;
pub use cluster::new_request_id;
pub use cluster::sha256_hex;
pub use tls::TlsError;
pub use tls::TlsSettings;

/// Resolves on SIGINT or SIGTERM: how a long-running client (a worker, a load run) stops.
pub async fn wait_for_stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::SignalKind;
    use tokio::signal::unix::signal;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
