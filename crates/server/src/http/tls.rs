//! The HTTP port's TLS: the node's own certificate, and a client certificate from the
//! cluster CA *asked for but not required*. Probes (`/healthz`, `/readyz`) and a browser
//! without a credential can connect; what needs a credential checks the one presented
//! (`routes.rs`), so a connection without one reads health and nothing else.

use std::sync::Arc;

use rustls::ServerConfig;

use crate::network::ClientCerts;
use crate::network::TlsSetupError;
use raftsched_certs::Pems;

/// Why the HTTP port's TLS could not be set up from the node's credentials.
#[derive(Debug, thiserror::Error)]
#[error("the HTTP port's TLS from the node's credentials: {0}")]
pub struct HttpTlsError(#[from] TlsSetupError);

/// A rustls config for the HTTP port from the node's PEMs; ALPN offers HTTP/2 and 1.1.
pub fn server_config(pems: &Pems) -> Result<Arc<ServerConfig>, HttpTlsError> {
    Ok(crate::network::server_config(
        pems,
        ClientCerts::Asked,
        &[b"h2", b"http/1.1"],
    )?)
}
