//! [`NodeTls`]: a node's one certificate (`node-<id>` from the cluster CA) as server
//! identity on both ports, with client certificates required and checked against the CA,
//! and as client identity when it dials peers.

use raftsched_api::ClientTlsConfig;
use raftsched_certs::Pems;
use tonic::transport::Certificate;
use tonic::transport::Identity;
use tonic::transport::ServerTlsConfig;

/// The TLS handshake must finish within 5 s of the first byte, like the HTTP/2 preface on
/// a plaintext port (`grpc::transport::HANDSHAKE_TIMEOUT`): a silent client does not keep
/// a connection slot.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A node's TLS settings, built once at start from its credentials.
#[derive(Clone)]
pub struct NodeTls {
    server: ServerTlsConfig,
    client: ClientTlsConfig,
    /// The PEMs themselves, for the HTTP port's rustls config (`crate::http`).
    pems: Pems,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeTls")
    }
}

impl NodeTls {
    /// From the node's PEMs; peers are checked for `server_name` (a SAN of every node
    /// certificate: `localhost` by default).
    pub fn from_pems(pems: &Pems, server_name: &str) -> NodeTls {
        let server = ServerTlsConfig::new()
            .identity(Identity::from_pem(&pems.cert, &pems.key))
            // Required: a connection without a certificate from this CA fails the handshake.
            .client_ca_root(Certificate::from_pem(&pems.ca_cert))
            .timeout(TLS_HANDSHAKE_TIMEOUT);
        NodeTls {
            server,
            client: raftsched_api::client_tls_config(pems, server_name),
            pems: pems.clone(),
        }
    }

    pub fn server_config(&self) -> ServerTlsConfig {
        self.server.clone()
    }

    pub fn client_config(&self) -> &ClientTlsConfig {
        &self.client
    }

    pub fn pems(&self) -> &Pems {
        &self.pems
    }
}

/// An endpoint to `addr` over `tls`, or plaintext without it (`--insecure`).
pub fn endpoint(addr: &str, tls: Option<&NodeTls>) -> Result<tonic::transport::Endpoint, String> {
    raftsched_api::endpoint(addr, tls.map(NodeTls::client_config))
}
