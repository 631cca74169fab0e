//! The client side of node-to-node Raft traffic over gRPC.
//!
//! [`NetworkFactory`] keeps one lazily connected channel per peer (HTTP/2 multiplexes every
//! RPC to that peer over it); [`PeerClient`] sends openraft's RPCs on it, each with the
//! deadline openraft gives.

mod fault;
mod peer_client;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

pub use fault::FaultInjector;
pub use fault::LinkFault;
use openraft::BasicNode;
use openraft::RaftNetworkFactory;
pub use peer_client::PeerClient;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use crate::raft_types::NodeId;
use crate::raft_types::TypeConfig;

/// The header that carries the cluster id on every Raft RPC.
pub const CLUSTER_HEADER: &str = "raftsched-cluster";

/// Largest Raft message a node sends or accepts: a full append-entries batch
/// (`max_payload_entries` entries of at most one 4 MiB client request each).
pub const MAX_RAFT_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// How long a TCP connect to a peer may take before the peer counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct NetworkFactory {
    cluster_id: Arc<str>,
    /// One channel per peer, with the address it was made for. Shared by every client
    /// openraft creates (replication, heartbeats, snapshots), guarded for short, sync use.
    channels: Arc<Mutex<BTreeMap<NodeId, (String, Channel)>>>,
    /// Injected link faults (tests only; empty otherwise).
    faults: FaultInjector,
    /// Addresses to dial instead of the membership's, by node: lets a chaos run route every
    /// peer link through a proxy it controls. Empty normally.
    dial_overrides: Arc<BTreeMap<NodeId, String>>,
}

impl NetworkFactory {
    pub fn new(cluster_id: &str, faults: FaultInjector, dial_overrides: BTreeMap<NodeId, String>) -> NetworkFactory {
        NetworkFactory {
            cluster_id: cluster_id.into(),
            channels: Arc::default(),
            faults,
            dial_overrides: Arc::new(dial_overrides),
        }
    }

    /// The channel to `target` at `addr`, made anew only when the address changed.
    fn channel(&self, target: NodeId, addr: &str) -> Result<Channel, String> {
        let addr = self.dial_overrides.get(&target).map_or(addr, String::as_str);
        let mut channels = self.channels.lock().expect("channel map lock poisoned");
        if let Some((known_addr, channel)) = channels.get(&target)
            && known_addr == addr
        {
            return Ok(channel.clone());
        }
        let channel = peer_endpoint(addr)?.connect_lazy();
        channels.insert(target, (addr.to_string(), channel.clone()));
        Ok(channel)
    }
}

/// An endpoint tuned for a low-latency peer link: no Nagle delay, and HTTP/2 keep-alive so
/// a dead connection is noticed within about a second even when idle.
pub fn peer_endpoint(addr: &str) -> Result<Endpoint, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address {}: {e}", crate::state::limits::shown(addr)))?;
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_millis(500))
        .keep_alive_timeout(Duration::from_millis(1000))
        .keep_alive_while_idle(true))
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient::new(
            target,
            self.channel(target, &node.addr),
            self.cluster_id.clone(),
            self.faults.clone(),
        )
    }
}
