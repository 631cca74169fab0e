//! [`NodeTls`]: a node's one certificate (`node-<id>` from the cluster CA) as server
//! identity on both ports, with client certificates required and checked against the CA,
//! and as client identity when it dials peers; [`server_config`] builds a port's rustls
//! config from it.

use std::sync::Arc;

use raftsched_api::ClientTlsConfig;
use raftsched_certs::Pems;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::Semaphore;

use super::handshakes;
use super::handshakes::Handshakes;

/// A node's TLS settings, built once at start from its credentials.
#[derive(Clone)]
pub struct NodeTls {
    client: ClientTlsConfig,
    /// The PEMs themselves, for each port's rustls config.
    pems: Pems,
    /// The handshake turns all the node's ports share (`handshakes`).
    turns: Arc<Semaphore>,
}

/// Whether a port requires a client certificate from the cluster CA (the gRPC ports) or
/// only asks for one (the HTTP port: probes and browsers connect without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCerts {
    Required,
    Asked,
}

/// Why a port's TLS could not be set up from the node's credentials.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsSetupError(String);

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeTls")
    }
}

impl NodeTls {
    /// From the node's PEMs; peers are checked for `server_name` (a SAN of every node
    /// certificate: `localhost` by default).
    pub fn from_pems(pems: &Pems, server_name: &str) -> NodeTls {
        NodeTls {
            client: raftsched_api::client_tls_config(pems, server_name),
            pems: pems.clone(),
            turns: handshakes::new_turns(),
        }
    }

    /// The handshakes of a port serving `config`, taking turns with the node's other ports.
    pub fn handshakes(&self, config: Arc<ServerConfig>) -> Handshakes {
        Handshakes::new(config, Arc::clone(&self.turns))
    }

    pub fn client_config(&self) -> &ClientTlsConfig {
        &self.client
    }

    pub fn pems(&self) -> &Pems {
        &self.pems
    }
}

/// A rustls config for a port from the node's PEMs: its certificate, client certificates
/// from the cluster CA as `client_certs` says, and `alpn` offered in that order.
pub fn server_config(
    pems: &Pems,
    client_certs: ClientCerts,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let bad = |what: &str| {
        let what = what.to_string();
        move |e: rustls_pki_types::pem::Error| TlsSetupError(format!("{what}: {e}"))
    };
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(pems.ca_cert.as_bytes()) {
        roots
            .add(ca.map_err(bad("ca.crt"))?)
            .map_err(|e| TlsSetupError(format!("ca.crt: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    // Required: a connection without a certificate from this CA fails the handshake.
    let verifier = match client_certs {
        ClientCerts::Required => verifier,
        ClientCerts::Asked => verifier.allow_unauthenticated(),
    };
    let verifier = verifier
        .build()
        .map_err(|e| TlsSetupError(format!("client verifier: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(pems.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad("the node certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(pems.key.as_bytes()).map_err(bad("the node key"))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsSetupError(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(Arc::new(config))
}

/// An endpoint to `addr` over `tls`, or plaintext without it (`--insecure`).
pub fn endpoint(addr: &str, tls: Option<&NodeTls>) -> Result<tonic::transport::Endpoint, String> {
    raftsched_api::endpoint(addr, tls.map(NodeTls::client_config))
}
