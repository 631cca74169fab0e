//! [`ClusterClient::save_snapshot`]: a backup file from the leader, checked on arrival.

use sha2::Digest;
use sha2::Sha256;
use tonic::Status;

use crate::cluster::ClientError;
use crate::cluster::ClusterClient;
use raftsched_api::v1 as api;

/// What is preallocated for a backup before its bytes arrive: the summary's size, up to this
/// (a damaged summary must not make the client reserve gigabytes).
const PREALLOCATE_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// A backup file as the leader sent it: its summary, and bytes whose length and SHA-256
/// match it.
#[derive(Debug, Clone)]
pub struct SavedSnapshot {
    pub summary: api::SnapshotSummary,
    pub file_bytes: Vec<u8>,
}

impl ClusterClient {
    /// Receives a consistent snapshot of the whole state from the leader (following it like
    /// any call), within the per-call deadline. A file that arrives shorter, longer or with
    /// another SHA-256 than its summary says is DATA_LOSS; nothing is returned of it.
    pub async fn save_snapshot(&self) -> Result<SavedSnapshot, ClientError> {
        self.call(|mut client| async move {
            let mut stream = client.save_snapshot(api::SaveSnapshotRequest {}).await?.into_inner();
            let summary = stream
                .message()
                .await?
                .and_then(|first| first.summary)
                .ok_or_else(|| Status::internal("the snapshot stream did not start with its summary"))?;
            let mut file_bytes = Vec::with_capacity(summary.size_bytes.min(PREALLOCATE_MAX_BYTES) as usize);
            while let Some(message) = stream.message().await? {
                if (file_bytes.len() + message.chunk.len()) as u64 > summary.size_bytes {
                    return Err(Status::data_loss(format!(
                        "the snapshot stream sent more than the {} bytes its summary declares; retry the save",
                        summary.size_bytes
                    )));
                }
                file_bytes.extend_from_slice(&message.chunk);
            }
            check_received(&summary, &file_bytes)?;
            Ok(tonic::Response::new(SavedSnapshot { summary, file_bytes }))
        })
        .await
    }
}

/// The SHA-256 of a backup file as the summary and the CLI write it: lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// DATA_LOSS unless `bytes` are the file `summary` describes.
fn check_received(summary: &api::SnapshotSummary, bytes: &[u8]) -> Result<(), Status> {
    if bytes.len() as u64 != summary.size_bytes {
        return Err(Status::data_loss(format!(
            "the snapshot stream ended after {} of {} bytes; retry the save",
            bytes.len(),
            summary.size_bytes
        )));
    }
    let found = sha256_hex(bytes);
    if found != summary.sha256 {
        return Err(Status::data_loss(format!(
            "the snapshot received has SHA-256 {found}, the leader sent {}; retry the save",
            summary.sha256
        )));
    }
    Ok(())
}
