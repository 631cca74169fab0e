//! raftsched's wire API: the types and gRPC stubs generated from the top-level `proto/`, the
//! headers and message limits both ends agree on, and the endpoint settings every client of
//! a node uses.
//!
//! Architecture invariant: this crate is the only place protobuf types are defined; it holds
//! no logic beyond what both ends of a connection must agree on. Converting between these
//! types and the domain types of `raftsched-core` is the server's `grpc` module's job (and the
//! client's), never this crate's.
//!
//! Deliberately absent: conversions, validation, retries (see `raftsched-client`).

use std::time::Duration;

use raftsched_certs::Pems;
use tonic::transport::Certificate;
pub use tonic::transport::ClientTlsConfig;
use tonic::transport::Endpoint;
use tonic::transport::Identity;

/// Generated code of proto/raftsched.proto: the client API (tasks, queues, schedules,
/// workflows, workers, cluster).
pub mod v1 {
    tonic::include_proto!("raftsched.v1");
    include!(concat!(env!("OUT_DIR"), "/raftsched.v1.serde.rs"));
}

/// Generated code of proto/raft.proto: node-to-node Raft traffic.
pub mod raft {
    tonic::include_proto!("raftsched.raft.v1");
}

/// Every proto of the workspace (client API and Raft), for tools that decode both.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("raftsched_descriptor");

/// The client API's proto only, for the client port's gRPC server reflection (grpcurl can
/// list and call the API): the Raft service is not on that port, nor in its reflection.
pub const CLIENT_API_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("raftsched_v1_descriptor");

/// Largest client request or response: big enough for a batch of 1000 small tasks or one
/// task with the largest payload, small enough that no client can make a node buffer much.
pub const MAX_API_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Response header naming the leader's address on an UNAVAILABLE answer from a follower.
pub const LEADER_HEADER: &str = "raftsched-leader";

/// Response header on every status the node itself produced: the client tells "the node
/// answered UNAVAILABLE" (a live follower, an election) from "the node did not answer"
/// (transport failure, deadline), and avoids the latter for a while.
pub const ANSWERED_HEADER: &str = "raftsched-answered";

/// The header that carries the cluster id on every Raft RPC.
pub const CLUSTER_HEADER: &str = "raftsched-cluster";

/// How long a TCP connect to a node may take before it counts as unreachable: 500 ms.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// A plaintext [`endpoint`] (`--insecure`, and addresses checked before any TLS is known).
pub fn peer_endpoint(addr: &str) -> Result<Endpoint, String> {
    endpoint(addr, None)
}

/// The TLS settings of a client of a node: trust only the cluster CA, present `pems`'
/// certificate (every port requires one), and check the server's certificate for
/// `server_name` (`localhost`, a SAN of every node certificate, unless
/// `RAFTSCHED_TLS_SERVER_NAME` says otherwise).
pub fn client_tls_config(pems: &Pems, server_name: &str) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pems.ca_cert))
        .identity(Identity::from_pem(&pems.cert, &pems.key))
        .domain_name(server_name)
}

/// An endpoint tuned for a low-latency link to a node: no Nagle delay, and HTTP/2 keep-alive
/// so a dead connection is noticed within about a second even when idle; over TLS when
/// `tls` is given.
pub fn endpoint(addr: &str, tls: Option<&ClientTlsConfig>) -> Result<Endpoint, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let shown = || raftsched_core::state::limits::shown(addr);
    let mut endpoint =
        Endpoint::from_shared(format!("{scheme}://{addr}")).map_err(|e| format!("bad address {}: {e}", shown()))?;
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls.clone())
            .map_err(|e| format!("TLS settings for {}: {e}", shown()))?;
    }
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_millis(500))
        .keep_alive_timeout(Duration::from_millis(1000))
        .keep_alive_while_idle(true))
}
