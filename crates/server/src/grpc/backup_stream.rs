//! The answer to `SaveSnapshot`: a summary, then the backup file in chunks.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::Status;

use crate::app::SavedBackup;
use crate::grpc::api;

/// The largest chunk of a backup in one message: well under the 4 MiB a tonic client
/// decodes by default, and large enough that a 100 MB file is a hundred messages.
pub(crate) const CHUNK_BYTES: usize = 1024 * 1024;

pub(crate) type SaveSnapshotStream = Pin<Box<dyn Stream<Item = Result<api::SaveSnapshotResponse, Status>> + Send>>;

/// The summary first, then every chunk in order. The stream owns the saved file, and with
/// it the node's save slot, until the last chunk is sent or the client goes away.
pub(crate) fn backup_stream(saved: SavedBackup) -> SaveSnapshotStream {
    let summary = api::SnapshotSummary {
        last_log_index: saved.summary.last_log_index,
        last_log_term: saved.summary.last_log_term,
        tasks: saved.summary.tasks,
        size_bytes: saved.file_bytes.len() as u64,
        sha256: saved.sha256_hex.clone(),
        node_id: saved.node_id,
    };
    let first = api::SaveSnapshotResponse {
        summary: Some(summary),
        chunk: Vec::new(),
    };
    let chunks = saved.file_bytes.len().div_ceil(CHUNK_BYTES);
    let saved = Arc::new(saved);
    let rest = (0..chunks).map(move |at| {
        let bytes = &saved.file_bytes;
        let end = ((at + 1) * CHUNK_BYTES).min(bytes.len());
        Ok(api::SaveSnapshotResponse {
            summary: None,
            chunk: bytes[at * CHUNK_BYTES..end].to_vec(),
        })
    });
    Box::pin(futures::stream::iter(std::iter::once(Ok(first)).chain(rest)))
}
