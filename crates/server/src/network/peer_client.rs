//! [`PeerClient`]: openraft's RPCs to one peer.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::RaftNetworkV2;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::ReplicationClosed;
use openraft::error::StreamingError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use crate::network::CLUSTER_HEADER;
use crate::network::FaultInjector;
use crate::network::MAX_APPEND_BYTES;
use crate::network::MAX_RAFT_MESSAGE_BYTES;
use crate::network::SNAPSHOT_CHUNK_BYTES;
use crate::raft_types::NodeId;
use crate::raft_types::Snapshot;
use crate::raft_types::SnapshotData;
use crate::raft_types::TypeConfig;
use crate::raft_types::Vote;
use raftsched_api::raft::RaftMessage;
use raftsched_api::raft::SnapshotChunk;
use raftsched_api::raft::raft_service_client::RaftServiceClient;
use raftsched_core::state::wire::decode_versioned;
use raftsched_core::state::wire::encode_versioned;

/// Added to an append's deadline per MiB it carries: time to send, write and fsync it.
const APPEND_DEADLINE_PER_MIB: Duration = Duration::from_millis(100);
/// No append (a heartbeat included) is given up on sooner. openraft proposes the heartbeat
/// interval (50 ms by default) as every append's deadline; with both cores saturated a
/// healthy follower's answer took longer, both followers' appends timed out together, and
/// after the leader lease (the election timeout's maximum, 300 ms by default) without an
/// acknowledgement the leader declared "no quorum", closed every worker stream and answered
/// in-flight writes "outcome unknown" although nothing had failed (issue 14: twice in six
/// runs). An answer that comes late is still an acknowledgement; giving up early only
/// throws it away and sends the append again onto the busy machine. Below the default
/// lease, so a follower that answers within the floor keeps the leader's quorum.
pub(crate) const MIN_APPEND_DEADLINE: Duration = Duration::from_millis(250);

/// The deadline of an append carrying `sent_bytes` whose proposed deadline is `hard_ttl`.
fn append_deadline(hard_ttl: Duration, sent_bytes: usize) -> Duration {
    let per_mib = APPEND_DEADLINE_PER_MIB.saturating_mul(u32::try_from(sent_bytes / (1024 * 1024)).unwrap_or(u32::MAX));
    hard_ttl.max(MIN_APPEND_DEADLINE).saturating_add(per_mib)
}

/// Keeps the longest prefix of `entries` (at least one) whose encoding fits `max_bytes`.
/// Returns the kept bytes and whether any entry was dropped.
fn keep_within_bytes<T: Serialize>(entries: &mut Vec<T>, max_bytes: usize) -> (usize, bool) {
    let mut total = 0;
    let mut keep = entries.len();
    for (index, entry) in entries.iter().enumerate() {
        let size = postcard::experimental::serialized_size(entry).unwrap_or(0);
        if index > 0 && total + size > max_bytes {
            keep = index;
            break;
        }
        total += size;
    }
    let held_back = keep < entries.len();
    entries.truncate(keep);
    (total, held_back)
}

/// Why a call failed, before it is cast into the error type openraft wants for that RPC.
enum CallError {
    /// Peer down, connection refused or reset, deadline passed: back off and retry later.
    Unreachable(String),
    /// The peer answered with an error.
    Remote(String),
}

pub struct PeerClient {
    target: NodeId,
    /// None when the peer's address could not be parsed; every call then fails fast.
    client: Result<RaftServiceClient<Channel>, String>,
    cluster_id: Arc<str>,
    faults: FaultInjector,
}

impl PeerClient {
    pub(super) fn new(
        target: NodeId,
        channel: Result<Channel, String>,
        cluster_id: Arc<str>,
        faults: FaultInjector,
    ) -> PeerClient {
        let client = channel.map(|channel| {
            RaftServiceClient::new(channel)
                .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
        });
        PeerClient {
            target,
            client,
            cluster_id,
            faults,
        }
    }

    fn request<T>(&self, message: T, deadline: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(deadline);
        if let Ok(value) = self.cluster_id.parse() {
            request.metadata_mut().insert(CLUSTER_HEADER, value);
        }
        request
    }

    /// Sends one unary RPC with `payload` encoded, bounded by `deadline`, and decodes the reply.
    async fn unary<Req, Resp, F, Fut>(&mut self, payload: &Req, deadline: Duration, send: F) -> Result<Resp, CallError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        F: FnOnce(RaftServiceClient<Channel>, tonic::Request<RaftMessage>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftMessage>, tonic::Status>>,
    {
        self.faults
            .enact(self.target, deadline)
            .await
            .map_err(CallError::Unreachable)?;
        let client = self.client.clone().map_err(CallError::Unreachable)?;
        let data = encode_versioned(payload);
        let request = self.request(RaftMessage { data }, deadline);
        let reply = tokio::time::timeout(deadline, send(client, request))
            .await
            .map_err(|_| CallError::Unreachable(format!("no answer from node {} within {deadline:?}", self.target)))?
            .map_err(status_to_call_error)?;
        decode_reply(&reply.into_inner().data, self.target)
    }
}

/// A peer's answer, in a wire format this node reads.
fn decode_reply<T: DeserializeOwned>(bytes: &[u8], target: NodeId) -> Result<T, CallError> {
    decode_versioned(bytes, "Raft reply").map_err(|e| CallError::Remote(format!("node {target}: {e}")))
}

fn status_to_call_error(status: tonic::Status) -> CallError {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown => {
            CallError::Unreachable(status.to_string())
        }
        _ => CallError::Remote(status.to_string()),
    }
}

fn to_rpc_error(error: CallError) -> RPCError<TypeConfig> {
    match error {
        CallError::Unreachable(message) => RPCError::Unreachable(Unreachable::from_string(message)),
        CallError::Remote(message) => RPCError::Network(NetworkError::from_string(message)),
    }
}

fn to_streaming_error(error: CallError) -> StreamingError<TypeConfig> {
    match error {
        CallError::Unreachable(message) => StreamingError::Unreachable(Unreachable::from_string(message)),
        CallError::Remote(message) => StreamingError::Network(NetworkError::from_string(message)),
    }
}

/// Splits a snapshot into the chunks of one InstallSnapshot stream.
fn snapshot_chunks(vote: &Vote, snapshot: &Snapshot) -> Vec<SnapshotChunk> {
    // The total length travels in the header, so the receiver can tell a complete snapshot
    // from a stream cut short.
    let total_bytes = snapshot.snapshot.len() as u64;
    // The header's format version covers the whole stream; the data carries its own
    // snapshot format version too (checked when it is restored).
    let header = encode_versioned(&(vote, &snapshot.meta, total_bytes));
    let mut chunks = vec![SnapshotChunk {
        header,
        data: Vec::new(),
    }];
    chunks.extend(
        snapshot
            .snapshot
            .chunks(SNAPSHOT_CHUNK_BYTES)
            .map(|data| SnapshotChunk {
                header: Vec::new(),
                data: data.to_vec(),
            }),
    );
    chunks
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    /// Sends at most [`MAX_APPEND_BYTES`] of the entries, with a deadline that grows with
    /// them, and reports a partial success when it held some back: openraft then sends the
    /// rest. openraft proposes the heartbeat interval (50 ms) as the deadline of every append,
    /// which a follower catching up on megabytes of entries can never meet: it would time
    /// out, retry the same append, and never catch up.
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let (sent_bytes, held_back) = keep_within_bytes(&mut rpc.entries, MAX_APPEND_BYTES);
        let last_sent = rpc.entries.last().map(|entry| entry.log_id);
        let deadline = append_deadline(option.hard_ttl(), sent_bytes);
        let reply = self
            .unary(&rpc, deadline, |mut c, r| async move { c.append_entries(r).await })
            .await
            .map_err(to_rpc_error)?;
        Ok(match reply {
            AppendEntriesResponse::Success if held_back => AppendEntriesResponse::PartialSuccess(last_sent),
            other => other,
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(&rpc, option.hard_ttl(), |mut c, r| async move { c.vote(r).await })
            .await
            .map_err(to_rpc_error)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(&rpc, option.hard_ttl(), |mut c, r| async move { c.pre_vote(r).await })
            .await
            .map_err(to_rpc_error)
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(
            &req,
            option.hard_ttl(),
            |mut c, r| async move { c.transfer_leader(r).await },
        )
        .await
        .map_err(to_rpc_error)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self
            .client
            .clone()
            .map_err(|e| to_streaming_error(CallError::Unreachable(e)))?;
        let deadline = option.hard_ttl();
        let request = self.request(tokio_stream::iter(snapshot_chunks(&vote, &snapshot)), deadline);
        let send = tokio::time::timeout(deadline, client.install_snapshot(request));
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            reply = send => reply,
        };
        let reply = reply
            .map_err(|_| {
                CallError::Unreachable(format!("snapshot to node {} not done within {deadline:?}", self.target))
            })
            .and_then(|r| r.map_err(status_to_call_error))
            .map_err(to_streaming_error)?;
        decode_reply(&reply.into_inner().data, self.target).map_err(to_streaming_error)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::MIN_APPEND_DEADLINE;
    use super::append_deadline;
    use super::keep_within_bytes;

    #[test]
    fn an_append_has_at_least_the_floor_and_more_per_mib() {
        let ms = Duration::from_millis;
        assert_eq!(append_deadline(ms(50), 0), MIN_APPEND_DEADLINE);
        assert_eq!(append_deadline(ms(0), 1024 * 1024 - 1), MIN_APPEND_DEADLINE);
        assert_eq!(append_deadline(ms(50), 4 * 1024 * 1024), MIN_APPEND_DEADLINE + ms(400));
        // A configured heartbeat above the floor keeps its own deadline.
        assert_eq!(append_deadline(ms(1000), 0), ms(1000));
        assert_eq!(append_deadline(Duration::MAX, usize::MAX), Duration::MAX);
    }

    #[test]
    fn an_append_keeps_a_prefix_within_the_byte_bound_and_at_least_one_entry() {
        let size = postcard::experimental::serialized_size(&vec![0_u8; 100]).unwrap();
        let mut entries = vec![vec![0_u8; 100]; 10];
        assert_eq!(keep_within_bytes(&mut entries, 3 * size), (3 * size, true));
        assert_eq!(entries.len(), 3);
        let mut entries = vec![vec![0_u8; 100]; 2];
        assert_eq!(keep_within_bytes(&mut entries, 10), (size, true));
        assert_eq!(entries.len(), 1);
        let mut entries = vec![vec![0_u8; 100]; 2];
        assert_eq!(keep_within_bytes(&mut entries, 1000), (2 * size, false));
        let mut entries: Vec<Vec<u8>> = Vec::new();
        assert_eq!(keep_within_bytes(&mut entries, 10), (0, false));
    }
}

#[cfg(test)]
mod wire_tests {
    use super::CallError;
    use super::decode_reply;
    use raftsched_core::state::wire::wire_header;

    /// A reply in a format this node does not read is a remote error naming the peer and
    /// the version, not a panic and not "unreachable".
    #[test]
    fn a_reply_in_a_newer_format_is_a_remote_error_naming_the_peer() {
        let mut bytes = wire_header(99).to_vec();
        bytes.extend(postcard::to_allocvec(&true).unwrap());
        match decode_reply::<bool>(&bytes, 3) {
            Err(CallError::Remote(message)) => {
                assert!(
                    message.starts_with("node 3: Raft reply is in wire format v99"),
                    "{message}"
                );
            }
            Err(CallError::Unreachable(message)) => panic!("unreachable: {message}"),
            Ok(value) => panic!("decoded {value}"),
        }
        assert!(matches!(decode_reply::<bool>(&[], 3), Err(CallError::Remote(_))));
    }
}
