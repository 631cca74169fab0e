//! The client side of node-to-node Raft traffic over gRPC.
//!
//! [`NetworkFactory`] keeps one lazily connected channel per peer (HTTP/2 multiplexes every
//! RPC to that peer over it); [`PeerClient`] sends openraft's RPCs on it, each with the
//! deadline openraft gives. The node's TLS lives here too: [`NodeTls`] (its certificate, as
//! server and as client) and [`Handshakes`] (every port's handshakes, taking turns).
//!
//! Architecture invariant: this is the client side of Raft RPCs, gRPC by nature, so with
//! `grpc` it is the one place of the server that sees protobuf types (`raftsched_api::raft`)
//! and `tonic::Status`. It depends on no other module but `raft_types`: the server side
//! (`grpc`) reads its limits from here, never the reverse.

mod fault;
mod handshakes;
mod peer_client;
mod tls;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;

pub use fault::FaultInjector;
pub use fault::LinkFault;
pub use handshakes::HANDSHAKES_ON_CPU;
pub use handshakes::Handshakes;
pub use handshakes::TLS_HANDSHAKE_TIMEOUT;
use openraft::RaftNetworkFactory;
pub(crate) use peer_client::MIN_APPEND_DEADLINE;
pub use peer_client::PeerClient;
pub use tls::ClientCerts;
pub use tls::NodeTls;
pub use tls::TlsSetupError;
pub use tls::endpoint;
pub use tls::server_config;
use tonic::transport::Channel;

use crate::raft_types::MemberNode;
use crate::raft_types::NodeId;
use crate::raft_types::TypeConfig;

pub use raftsched_api::CLUSTER_HEADER;
pub use raftsched_api::peer_endpoint;

/// Encoded entries in one append RPC: 4 MiB. An append carries at least one entry whatever
/// its size, and one entry is at most one client request (4 MiB) or a grouped write (1 MiB).
pub const MAX_APPEND_BYTES: usize = 4 * 1024 * 1024;

/// Largest unary Raft message a node sends or accepts: 8 MiB. Honest appends are at most
/// [`MAX_APPEND_BYTES`] of entries, or one entry of at most one 4 MiB client request; the
/// other 4 MiB cover the request's framing and postcard's encoding, which is no larger than
/// protobuf's for the same fields plus a few bytes per task. Anything larger is not from a
/// peer running this code, and refusing it keeps what one stream can make a node buffer to
/// 8 MiB (it was 256 MiB).
pub const MAX_RAFT_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
const _: () = assert!(MAX_RAFT_MESSAGE_BYTES >= MAX_APPEND_BYTES + raftsched_api::MAX_API_MESSAGE_BYTES);

/// Snapshot data travels in chunks of 1 MiB, each one gRPC message.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Largest chunk a receiver accepts: 2 MiB, twice what honest senders send, so a future
/// change of the chunk size on one node does not break a mixed cluster at once.
pub const MAX_SNAPSHOT_CHUNK_BYTES: usize = 2 * SNAPSHOT_CHUNK_BYTES;
const _: () = assert!(MAX_SNAPSHOT_CHUNK_BYTES <= MAX_RAFT_MESSAGE_BYTES);

/// Largest snapshot a node accepts: 2 GiB, far above a million tasks (a 360k-task state
/// encodes to about 150 MiB). The receiver buffers the whole snapshot, so this is also what
/// one InstallSnapshot stream can make a node hold.
pub const MAX_SNAPSHOT_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// A receiver reserves memory for the declared snapshot size up front only up to 64 MiB,
/// then grows with what really arrives: a peer declaring 2 GiB and sending nothing costs
/// 64 MiB at most, not 2 GiB.
pub const SNAPSHOT_PREALLOCATE_BYTES: usize = 64 * 1024 * 1024;

/// Raft RPCs a node serves at once, across all connections: 16. An honest follower of a
/// five-node cluster serves about 3 at a time (the leader's append, its heartbeat, a
/// snapshot) plus a vote or pre-vote from each of 4 candidates during an election; over the
/// cap a call is refused at once (UNAVAILABLE: openraft backs off and retries).
/// Bounds what Raft traffic makes a node buffer: 16 x 8 MiB = 128 MiB of unary messages.
pub const MAX_RAFT_RPCS_IN_FLIGHT: usize = 16;

/// InstallSnapshot streams a node receives at once: 1. Each may buffer up to
/// [`MAX_SNAPSHOT_BYTES`]; only the leader sends snapshots, one per follower at a time.
pub const MAX_SNAPSHOTS_IN_FLIGHT: usize = 1;
const _: () = assert!(MAX_SNAPSHOTS_IN_FLIGHT < MAX_RAFT_RPCS_IN_FLIGHT);

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
    /// The node's certificate to dial peers with; None with `--insecure`.
    tls: Option<Arc<NodeTls>>,
}

impl NetworkFactory {
    pub fn new(
        cluster_id: &str,
        faults: FaultInjector,
        dial_overrides: BTreeMap<NodeId, String>,
        tls: Option<Arc<NodeTls>>,
    ) -> NetworkFactory {
        NetworkFactory {
            cluster_id: cluster_id.into(),
            channels: Arc::default(),
            faults,
            dial_overrides: Arc::new(dial_overrides),
            tls,
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
        let channel = endpoint(addr, self.tls.as_deref())?.connect_lazy();
        channels.insert(target, (addr.to_string(), channel.clone()));
        Ok(channel)
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    /// Raft goes to the member's peer port, never its client port.
    async fn new_client(&mut self, target: NodeId, node: &MemberNode) -> PeerClient {
        PeerClient::new(
            target,
            self.channel(target, &node.peer_addr),
            self.cluster_id.clone(),
            self.faults.clone(),
        )
    }
}
