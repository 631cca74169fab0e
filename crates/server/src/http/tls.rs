//! The HTTP port's TLS: the node's own certificate, and a client certificate from the
//! cluster CA *asked for but not required*. Probes (`/healthz`, `/readyz`) and a browser
//! without a credential can connect; what needs a credential checks the one presented
//! (`routes.rs`), so a connection without one reads health and nothing else.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use raftsched_certs::Pems;

/// Why the HTTP port's TLS could not be set up from the node's credentials.
#[derive(Debug, thiserror::Error)]
#[error("the HTTP port's TLS from the node's credentials: {0}")]
pub struct HttpTlsError(String);

/// A rustls config for the HTTP port from the node's PEMs; ALPN offers HTTP/2 and 1.1.
pub fn server_config(pems: &Pems) -> Result<Arc<ServerConfig>, HttpTlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let bad = |what: &str| {
        let what = what.to_string();
        move |e: rustls_pki_types::pem::Error| HttpTlsError(format!("{what}: {e}"))
    };
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(pems.ca_cert.as_bytes()) {
        roots
            .add(ca.map_err(bad("ca.crt"))?)
            .map_err(|e| HttpTlsError(format!("ca.crt: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| HttpTlsError(format!("client verifier: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(pems.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad("the node certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(pems.key.as_bytes()).map_err(bad("the node key"))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpTlsError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| HttpTlsError(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
