//! [`RaftGrpcService`]: receives Raft RPCs from peers and hands them to the local Raft.

use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::Streaming;

use crate::grpc::raft_proto::RaftMessage;
use crate::grpc::raft_proto::SnapshotChunk;
use crate::grpc::raft_proto::raft_service_server::RaftService;
use crate::network::CLUSTER_HEADER;
use crate::raft_types::Raft;
use crate::raft_types::Snapshot;
use crate::raft_types::SnapshotMeta;
use crate::raft_types::Vote;

/// Largest snapshot a node accepts: far above a million tasks, and a bound on what one
/// peer can make this node buffer.
const MAX_SNAPSHOT_BYTES: usize = 2 * 1024 * 1024 * 1024;

pub struct RaftGrpcService {
    raft: Raft,
    cluster_id: Arc<str>,
}

impl RaftGrpcService {
    pub fn new(raft: Raft, cluster_id: &str) -> RaftGrpcService {
        RaftGrpcService {
            raft,
            cluster_id: cluster_id.into(),
        }
    }

    /// Refuses traffic from a node of another cluster before anything is decoded.
    fn check_cluster<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let theirs = request.metadata().get(CLUSTER_HEADER).and_then(|v| v.to_str().ok());
        if theirs != Some(&*self.cluster_id) {
            return Err(Status::failed_precondition(format!(
                "peer belongs to cluster {theirs:?}, this node to {:?}; check --cluster-id on both",
                self.cluster_id
            )));
        }
        Ok(())
    }

    fn decode<T: DeserializeOwned>(&self, request: Request<RaftMessage>) -> Result<T, Status> {
        self.check_cluster(&request)?;
        postcard::from_bytes(&request.into_inner().data)
            .map_err(|e| Status::invalid_argument(format!("undecodable Raft message: {e}")))
    }
}

fn reply<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Result<Response<RaftMessage>, Status> {
    let value = result.map_err(|e| Status::unavailable(format!("raft: {e}")))?;
    let data = postcard::to_allocvec(&value).map_err(|e| Status::internal(format!("encode: {e}")))?;
    Ok(Response::new(RaftMessage { data }))
}

#[tonic::async_trait]
impl RaftService for RaftGrpcService {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        reply(self.raft.append_entries(self.decode(request)?).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        reply(self.raft.vote(self.decode(request)?).await)
    }

    async fn pre_vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        reply(self.raft.pre_vote(self.decode(request)?).await)
    }

    async fn transfer_leader(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        reply(self.raft.handle_transfer_leader(self.decode(request)?).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.check_cluster(&request)?;
        let mut chunks = request.into_inner();
        let first = chunks
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        let (vote, meta, total_bytes): (Vote, SnapshotMeta, u64) = postcard::from_bytes(&first.header)
            .map_err(|e| Status::invalid_argument(format!("undecodable snapshot header: {e}")))?;
        let mut data = first.data;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if data.len() + chunk.data.len() > MAX_SNAPSHOT_BYTES {
                return Err(Status::resource_exhausted(format!(
                    "snapshot larger than {MAX_SNAPSHOT_BYTES} bytes"
                )));
            }
            data.extend_from_slice(&chunk.data);
        }
        if data.len() as u64 != total_bytes {
            // A cut-short transfer must never reach the state machine: refuse it, the leader
            // sends the snapshot again.
            return Err(Status::data_loss(format!(
                "snapshot stream ended after {} of {total_bytes} bytes",
                data.len()
            )));
        }
        let snapshot = Snapshot { meta, snapshot: data };
        reply(self.raft.install_full_snapshot(vote, snapshot).await)
    }
}
