//! [`RaftGrpcService`]: receives Raft RPCs from peers and hands them to the local Raft.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::Context;
use std::task::Poll;

use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::Semaphore;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::Streaming;
use tonic::body::Body;
use tonic::codegen::BoxFuture;
use tonic::codegen::Service;
use tonic::codegen::http;
use tonic::server::NamedService;

use crate::grpc::admission::ConnectionShare;
use crate::grpc::admission::MAX_RAFT_CALLS_PER_CONNECTION;
use crate::grpc::identity::identity_of;
use crate::grpc::raft_proto::RaftMessage;
use crate::grpc::raft_proto::SnapshotChunk;
use crate::grpc::raft_proto::raft_service_server::RaftService;
use crate::grpc::raft_proto::raft_service_server::RaftServiceServer;
use crate::network::CLUSTER_HEADER;
use crate::network::MAX_RAFT_MESSAGE_BYTES;
use crate::network::MAX_RAFT_RPCS_IN_FLIGHT;
use crate::network::MAX_SNAPSHOT_BYTES;
use crate::network::MAX_SNAPSHOT_CHUNK_BYTES;
use crate::network::MAX_SNAPSHOTS_IN_FLIGHT;
use crate::network::SNAPSHOT_PREALLOCATE_BYTES;
use crate::raft_types::Raft;
use crate::raft_types::Snapshot;
use crate::raft_types::SnapshotMeta;
use crate::raft_types::TypeConfig;
use crate::raft_types::Vote;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::raft::AppendEntriesRequest as AppendEntries;
use openraft::raft::TransferLeaderRequest as TransferLeader;
use openraft::raft::VoteRequest as VoteMessage;
use openraft::vote::RaftLeaderId;
use raftsched_core::state::wire::decode_versioned;
use raftsched_core::state::wire::encode_versioned;
use raftsched_store::RemovedPeers;
use raftsched_store::snapshot_envelope;

const MIB: usize = 1024 * 1024;

pub struct RaftGrpcService {
    raft: Raft,
    /// Nodes this node saw leave the membership: refused ([`Self::check_member`]).
    removed: RemovedPeers,
    /// Permits for InstallSnapshot streams ([`MAX_SNAPSHOTS_IN_FLIGHT`]).
    snapshots: Arc<Semaphore>,
}

impl RaftGrpcService {
    /// The Raft service as the node serves it: behind [`RaftGate`] (cluster header and
    /// admission checked before any byte of the body is read) and with the per-message cap.
    pub fn server(raft: Raft, removed: RemovedPeers, cluster_id: &str) -> RaftGate<RaftServiceServer<RaftGrpcService>> {
        let service = RaftGrpcService {
            raft,
            removed,
            snapshots: Arc::new(Semaphore::new(MAX_SNAPSHOTS_IN_FLIGHT)),
        };
        let server = RaftServiceServer::new(service)
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES);
        RaftGate {
            inner: server,
            cluster_id: cluster_id.into(),
            in_flight: Arc::new(Semaphore::new(MAX_RAFT_RPCS_IN_FLIGHT)),
        }
    }

    fn decode<T: DeserializeOwned>(&self, request: Request<RaftMessage>, what: &str) -> Result<T, Status> {
        decode_message(&request.into_inner().data, what)
    }

    /// The sender's node id (from its certificate) and its message, whose vote passes
    /// [`Self::check_vote`].
    fn decode_from_sender<T: DeserializeOwned>(
        &self,
        request: Request<RaftMessage>,
        what: &str,
        standing: Standing,
        vote_of: impl FnOnce(&T) -> &Vote,
    ) -> Result<T, Status> {
        let sender = sender_node(&request)?;
        let message = self.decode(request, what)?;
        self.check_vote(sender, vote_of(&message), what, standing)?;
        Ok(message)
    }

    /// Every peer message's vote: its sender's own ([`check_sender`]) and a member's
    /// ([`Self::check_member`]).
    fn check_vote(&self, sender: Option<u64>, vote: &Vote, what: &str, standing: Standing) -> Result<(), Status> {
        check_sender(sender, vote, what)?;
        self.check_member(*vote.leader_id().node_id(), what, standing)
    }

    /// Refuses a message in the name of a node this node saw leave the membership, and a
    /// request for votes from a node that is no voter of the membership this node knows (when
    /// it knows one: a node not yet initialised takes the first leader that calls). Checked
    /// on the vote's node, so plaintext clusters refuse a removed node too. Appends and
    /// snapshots from a leader this node does not know are taken: a follower that missed the
    /// membership change that added the leader must still catch up from it.
    fn check_member(&self, node: u64, what: &str, standing: Standing) -> Result<(), Status> {
        if self.removed.contains(node) {
            return Err(Status::permission_denied(format!(
                "{what} from node {node}, which was removed from this cluster's membership: a removed node is no \
                 peer; to bring it back, add it again (`raftsched cluster add-node`) with an empty data dir"
            )));
        }
        if standing == Standing::Candidate {
            let membership = self.raft.metrics().borrow_watched().membership_config.clone();
            let voters: Vec<u64> = membership.membership().voter_ids().collect();
            if !voters.is_empty() && !voters.contains(&node) {
                return Err(Status::permission_denied(format!(
                    "{what} from node {node}, which is no voter of this node's membership (voters {voters:?}): only \
                     a voter stands for election; add it with `raftsched cluster add-node` first"
                )));
            }
        }
        Ok(())
    }
}

/// What a Raft message's vote claims: candidacy (Vote, PreVote) or leadership (the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Candidate,
    Leader,
}

/// The node a peer call comes from, by its certificate's `node-<id>`; `None` on a plaintext
/// (`--insecure`) node. Any other role is refused: the peer port is Raft between the
/// cluster's nodes, and a worker's or a person's credential from the same CA is no peer.
fn sender_node<T>(request: &Request<T>) -> Result<Option<u64>, Status> {
    let Some(identity) = identity_of(request)? else {
        return Ok(None);
    };
    identity.node_id().map(Some).ok_or_else(|| {
        Status::permission_denied(format!(
            "role {} may not call the peer port: it carries Raft between the cluster's nodes only; a node uses \
             its node-<id> credential (`raftsched certs issue --role node --name node-<id>`)",
            identity.role
        ))
    })
}

/// Refuses a Raft message whose vote names another node than its sender: a node appends and
/// installs snapshots only as the leader its vote names, asks for votes only for itself, and
/// hands over only its own leadership. Without this, any node credential could depose the
/// leader (a Vote with a higher term in another's name) or overwrite a follower's log.
fn check_sender(sender: Option<u64>, vote: &Vote, what: &str) -> Result<(), Status> {
    let Some(sender) = sender else {
        return Ok(());
    };
    let claimed = *vote.leader_id().node_id();
    if claimed == sender {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "{what} from node {sender} carries the vote of node {claimed}; a node sends Raft messages only in its \
         own name"
    )))
}

/// Reads a peer's message in a wire format this node reads. A format it does not read is
/// FAILED_PRECONDITION naming both versions (the cluster runs mixed releases: upgrade),
/// anything else unreadable INVALID_ARGUMENT.
fn decode_message<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Status> {
    decode_versioned(bytes, what).map_err(|e| {
        if e.is_version_mismatch() {
            Status::failed_precondition(format!("the receiving node cannot read this message: {e}"))
        } else {
            Status::invalid_argument(format!("undecodable Raft message: {e}"))
        }
    })
}

/// In front of the generated Raft server: refuses a call from another cluster, or one over
/// [`MAX_RAFT_RPCS_IN_FLIGHT`] or [`MAX_RAFT_CALLS_PER_CONNECTION`], from its headers alone. The generated server reads and
/// decodes the body only when it is called, so a refused call costs no buffering (what an
/// interceptor would give too; this also holds the admission permit until the call ends).
#[derive(Clone)]
pub struct RaftGate<S> {
    inner: S,
    cluster_id: Arc<str>,
    in_flight: Arc<Semaphore>,
}

impl<S: NamedService> NamedService for RaftGate<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for RaftGate<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<http::Response<Body>, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if let Err(status) = check_cluster(request.headers(), &self.cluster_id) {
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
        let permits = match admit(&request, &self.in_flight) {
            Ok(permits) => permits,
            Err(status) => return Box::pin(std::future::ready(Ok(status.into_http()))),
        };
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await;
            drop(permits);
            response
        })
    }
}

/// A slot among the node's Raft calls and among its connection's, or UNAVAILABLE (the
/// peer backs off and retries).
fn admit(request: &http::Request<Body>, in_flight: &Arc<Semaphore>) -> Result<Vec<OwnedSemaphorePermit>, Status> {
    let mut permits = Vec::with_capacity(2);
    if let Some(share) = request.extensions().get::<ConnectionShare>() {
        let permit = Arc::clone(&share.raft_calls).try_acquire_owned().map_err(|_| {
            Status::unavailable(format!(
                "this connection already has {MAX_RAFT_CALLS_PER_CONNECTION} Raft calls in progress; retry after a \
                 backoff"
            ))
        })?;
        permits.push(permit);
    }
    let permit = Arc::clone(in_flight).try_acquire_owned().map_err(|_| {
        Status::unavailable(format!(
            "this node already serves {MAX_RAFT_RPCS_IN_FLIGHT} Raft calls; retry after a backoff"
        ))
    })?;
    permits.push(permit);
    Ok(permits)
}

/// Refuses traffic from a node of another cluster: a sanity check against a node pointed at
/// the wrong cluster, not a gate (the peer's certificate is). Neither side's id is in the
/// error, so a caller learns nothing it did not send.
fn check_cluster(headers: &http::HeaderMap, cluster_id: &str) -> Result<(), Status> {
    let theirs = headers.get(CLUSTER_HEADER).and_then(|v| v.to_str().ok());
    if theirs != Some(cluster_id) {
        return Err(Status::failed_precondition(format!(
            "the peer's cluster id (header {CLUSTER_HEADER}) is not this node's; check --cluster-id on both"
        )));
    }
    Ok(())
}

fn reply<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Result<Response<RaftMessage>, Status> {
    let value = result.map_err(|e| Status::unavailable(format!("raft: {e}")))?;
    Ok(Response::new(RaftMessage {
        data: encode_versioned(&value),
    }))
}

#[tonic::async_trait]
impl RaftService for RaftGrpcService {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let append = self.decode_from_sender(
            request,
            "Raft AppendEntries request",
            Standing::Leader,
            |r: &AppendEntries<TypeConfig>| &r.vote,
        )?;
        reply(self.raft.append_entries(append).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let vote = self.decode_from_sender(
            request,
            "Raft Vote request",
            Standing::Candidate,
            |r: &VoteMessage<TypeConfig>| &r.vote,
        )?;
        reply(self.raft.vote(vote).await)
    }

    async fn pre_vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let vote = self.decode_from_sender(
            request,
            "Raft PreVote request",
            Standing::Candidate,
            |r: &VoteMessage<TypeConfig>| &r.vote,
        )?;
        reply(self.raft.pre_vote(vote).await)
    }

    async fn transfer_leader(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let transfer = self.decode_from_sender(
            request,
            "Raft TransferLeader request",
            Standing::Leader,
            |r: &TransferLeader<TypeConfig>| r.from_leader(),
        )?;
        reply(self.raft.handle_transfer_leader(transfer).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftMessage>, Status> {
        let sender = sender_node(&request)?;
        let Ok(_permit) = Arc::clone(&self.snapshots).try_acquire_owned() else {
            return Err(Status::unavailable(format!(
                "this node already receives {MAX_SNAPSHOTS_IN_FLIGHT} snapshot(s); retry after a backoff"
            )));
        };
        let mut chunks = request.into_inner();
        let first = chunks
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        let (vote, meta, total_bytes): (Vote, SnapshotMeta, u64) =
            decode_message(&first.header, "InstallSnapshot header")?;
        self.check_vote(sender, &vote, "Raft InstallSnapshot request", Standing::Leader)?;
        let total = checked_total(total_bytes)?;
        // Reserve for the declared size only up to a cap: a declaration is not data.
        let mut data = Vec::with_capacity(total.min(SNAPSHOT_PREALLOCATE_BYTES));
        append_chunk(&mut data, first.data, total)?;
        while let Some(chunk) = chunks.next().await {
            append_chunk(&mut data, chunk?.data, total)?;
        }
        if data.len() != total {
            // A cut-short transfer must never reach the state machine: refuse it, the leader
            // sends the snapshot again.
            return Err(Status::data_loss(format!(
                "snapshot stream ended after {} of {total} bytes",
                data.len()
            )));
        }
        verify_checksum(&data)?;
        let snapshot = Snapshot { meta, snapshot: data };
        reply(self.raft.install_full_snapshot(vote, snapshot).await)
    }
}

/// Refuses a snapshot whose checksum or length does not match its envelope before openraft
/// sees it: the state machine would refuse it too, but as a storage error, which stops this
/// node's Raft. Answered here, the follower keeps its state and the leader sends it again.
/// A snapshot without the envelope (from a node of the previous release) passes unverified;
/// its image's own decoding and invariant check still guard the install.
fn verify_checksum(data: &[u8]) -> Result<(), Status> {
    snapshot_envelope::open(data)
        .map(|_| ())
        .map_err(|e| Status::data_loss(format!("{e}")))
}

/// The declared snapshot size, refused before anything is buffered when over the limit.
fn checked_total(total_bytes: u64) -> Result<usize, Status> {
    if total_bytes > MAX_SNAPSHOT_BYTES {
        return Err(Status::invalid_argument(format!(
            "snapshot header total_bytes: {total_bytes} bytes declared, the limit is {} GiB ({MAX_SNAPSHOT_BYTES} \
             bytes); compact the state (fewer tasks) or raise the limit on every node",
            MAX_SNAPSHOT_BYTES >> 30
        )));
    }
    usize::try_from(total_bytes).map_err(|_| Status::invalid_argument("snapshot header total_bytes: too large"))
}

/// Appends one chunk, refusing one larger than honest senders send or one that would take
/// the snapshot past its declared size: nothing beyond the declaration is ever buffered.
fn append_chunk(data: &mut Vec<u8>, chunk: Vec<u8>, total: usize) -> Result<(), Status> {
    if chunk.len() > MAX_SNAPSHOT_CHUNK_BYTES {
        return Err(Status::invalid_argument(format!(
            "snapshot chunk data: {} bytes, the limit is {} MiB ({MAX_SNAPSHOT_CHUNK_BYTES} bytes); send chunks of \
             at most {} MiB",
            chunk.len(),
            MAX_SNAPSHOT_CHUNK_BYTES / MIB,
            MAX_SNAPSHOT_CHUNK_BYTES / MIB
        )));
    }
    if chunk.len() > total - data.len() {
        return Err(Status::invalid_argument(format!(
            "snapshot chunk data: {} more bytes after {} would pass the declared total_bytes {total}; the sender \
             must declare the size it sends",
            chunk.len(),
            data.len()
        )));
    }
    data.extend_from_slice(&chunk);
    Ok(())
}

#[cfg(test)]
mod tests {
    use openraft::raft::VoteRequest;

    use super::*;
    use crate::raft_types::TypeConfig;
    use raftsched_core::state::wire::WIRE_FORMAT_VERSION;
    use raftsched_core::state::wire::wire_header;

    fn vote_request() -> VoteRequest<TypeConfig> {
        VoteRequest::new(Vote::new(3, 2), None)
    }

    fn in_format(version: u16, body: &impl Serialize) -> Vec<u8> {
        let mut bytes = wire_header(version).to_vec();
        bytes.extend(postcard::to_allocvec(body).unwrap());
        bytes
    }

    #[test]
    fn a_corrupt_snapshot_is_data_loss_naming_both_checksums() {
        let sealed = snapshot_envelope::seal(b"an image of some length");
        assert!(verify_checksum(&sealed).is_ok());
        let mut flipped = sealed.clone();
        let middle = snapshot_envelope::HEADER_BYTES + 10;
        flipped[middle] ^= 1;
        let status = verify_checksum(&flipped).unwrap_err();
        assert_eq!(status.code(), tonic::Code::DataLoss, "{status:?}");
        assert!(
            status.message().contains("checksum mismatch: expected crc32 0x"),
            "{status:?}"
        );
        assert!(status.message().contains(", found 0x"), "{status:?}");
        let truncated = verify_checksum(&sealed[..sealed.len() - 3]).unwrap_err();
        assert_eq!(truncated.code(), tonic::Code::DataLoss, "{truncated:?}");
        assert!(truncated.message().contains("length mismatch"), "{truncated:?}");
    }

    #[test]
    fn a_message_in_a_newer_format_is_failed_precondition_naming_both_versions() {
        let bytes = in_format(99, &vote_request());
        let status = decode_message::<VoteRequest<TypeConfig>>(&bytes, "Raft Vote request").unwrap_err();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
        for needle in [
            "the receiving node cannot read this message",
            "Raft Vote request is in wire format v99",
            &format!("reads formats v1 to v{WIRE_FORMAT_VERSION}"),
            "upgrade this node to a release that reads format v99",
        ] {
            assert!(
                status.message().contains(needle),
                "{:?} lacks {needle:?}",
                status.message()
            );
        }

        let snapshot_header = (Vote::new(3, 2), SnapshotMeta::default(), 10_u64);
        let status =
            decode_message::<(Vote, SnapshotMeta, u64)>(&in_format(99, &snapshot_header), "InstallSnapshot header")
                .unwrap_err();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
        assert!(
            status
                .message()
                .contains("InstallSnapshot header is in wire format v99"),
            "{status:?}"
        );
    }

    /// A peer running a raftsched from before versioned messages sends bare postcard.
    #[test]
    fn a_message_without_a_header_is_failed_precondition() {
        let bare = postcard::to_allocvec(&vote_request()).unwrap();
        let status = decode_message::<VoteRequest<TypeConfig>>(&bare, "Raft Vote request").unwrap_err();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
        assert!(
            status.message().contains("no wire format header (format v0"),
            "{status:?}"
        );
    }

    #[test]
    fn a_truncated_or_garbled_message_is_invalid_argument() {
        let good = in_format(WIRE_FORMAT_VERSION, &vote_request());
        let decoded = decode_message::<VoteRequest<TypeConfig>>(&good, "Raft Vote request").unwrap();
        assert_eq!(decoded.vote, vote_request().vote);
        for cut in [0, 5, 12, good.len() - 1] {
            let status = decode_message::<VoteRequest<TypeConfig>>(&good[..cut], "Raft Vote request").unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "cut at {cut}: {status:?}");
        }
        let mut garbled = wire_header(WIRE_FORMAT_VERSION).to_vec();
        garbled.extend([0xff; 16]);
        let status = decode_message::<VoteRequest<TypeConfig>>(&garbled, "Raft Vote request").unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
}
