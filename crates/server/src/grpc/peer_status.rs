//! Asking a peer for its own status (NodeStatus): what ClusterStatus shows for each member,
//! and how every node learns its peers' high-water alarms (`alarm_poll.rs`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tonic::Request;
use tonic::transport::Channel;

use crate::grpc::api;
use crate::grpc::api::scheduler_client::SchedulerClient;
use crate::network::NodeTls;
use crate::network::endpoint;
use std::sync::Arc;

/// How long a status call waits for a peer's own view.
pub const PEER_STATUS_DEADLINE: Duration = Duration::from_millis(1000);
/// Peer channels kept: more than any membership (3 or 5 members, a few more while one is
/// replaced).
const MAX_CACHED_PEER_CHANNELS: usize = 16;

/// One lazily connected channel per peer address: a fresh connection per call (TCP and
/// HTTP/2 handshakes to every peer) made a client looping on cluster status cost each node
/// far more than the status itself.
#[derive(Default)]
pub struct PeerChannels {
    channels: Mutex<BTreeMap<String, Channel>>,
    /// The node's certificate to call peers' client ports with; None with `--insecure`.
    tls: Option<Arc<NodeTls>>,
}

impl PeerChannels {
    pub fn new(tls: Option<Arc<NodeTls>>) -> PeerChannels {
        PeerChannels {
            channels: Mutex::default(),
            tls,
        }
    }

    /// The cached channel to a peer, created (without connecting) on first use.
    pub fn get(&self, address: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let channel = endpoint(address, self.tls.as_deref())?.connect_lazy();
        // Addresses come from the membership, so the map stays as small as the cluster; a
        // removed member's entry is dropped when the map outgrows it.
        if channels.len() >= MAX_CACHED_PEER_CHANNELS {
            channels.clear();
        }
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }
}

/// Asks one peer for its own view; an unreachable peer is reported (role "unreachable",
/// with why), not an error.
pub async fn peer_status(node_id: u64, address: String, channel: Result<Channel, String>) -> api::MemberStatus {
    let unreachable = |error: String| api::MemberStatus {
        node_id,
        address: address.clone(),
        role: "unreachable".into(),
        error,
        ..api::MemberStatus::default()
    };
    let channel = match channel {
        Ok(channel) => channel,
        Err(e) => return unreachable(e),
    };
    let call = async {
        let mut request = Request::new(api::NodeStatusRequest {});
        request.set_timeout(PEER_STATUS_DEADLINE);
        let response = SchedulerClient::new(channel)
            .node_status(request)
            .await
            .map_err(|e| e.message().to_string())?;
        response.into_inner().status.ok_or_else(|| "empty status".to_string())
    };
    match tokio::time::timeout(PEER_STATUS_DEADLINE, call).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => unreachable(e),
        Err(_) => unreachable(format!("no answer within {PEER_STATUS_DEADLINE:?}")),
    }
}
