//! [`TlsSettings`]: how a client proves who it is to a node and checks the node — the
//! cluster CA, the client's own certificate and key, and the name the node's certificate
//! must hold. The client's own type: no tonic type in the client API.

use std::path::Path;
use std::sync::Arc;

use raftsched_api::ClientTlsConfig;
use raftsched_certs::Pems;
use raftsched_certs::TLS_DIR_ENV;
use raftsched_certs::TLS_IDENTITY_ENV;
use raftsched_certs::TLS_SERVER_NAME_ENV;
use raftsched_certs::layout::DEFAULT_SERVER_NAME;

/// Credentials that could not be read: which file and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// A client's TLS credentials (see the certificate identity contract).
#[derive(Clone)]
pub struct TlsSettings {
    config: Arc<ClientTlsConfig>,
    identity: String,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// `dir/ca.crt` and `dir/<identity>.crt|.key`, checking nodes for `localhost`.
    pub fn from_dir(dir: &Path, identity: &str) -> Result<TlsSettings, TlsError> {
        TlsSettings::from_dir_for(dir, identity, DEFAULT_SERVER_NAME)
    }

    /// Like [`Self::from_dir`], checking nodes' certificates for `server_name`.
    pub fn from_dir_for(dir: &Path, identity: &str, server_name: &str) -> Result<TlsSettings, TlsError> {
        let pems = Pems::from_dir(dir, identity).map_err(|e| TlsError(e.to_string()))?;
        Ok(TlsSettings {
            config: Arc::new(raftsched_api::client_tls_config(&pems, server_name)),
            identity: identity.to_string(),
        })
    }

    /// From the environment: `RAFTSCHED_TLS_DIR` (None when unset), the identity
    /// `RAFTSCHED_TLS_IDENTITY` or `default_identity`, the server name
    /// `RAFTSCHED_TLS_SERVER_NAME` or `localhost`.
    pub fn from_env(default_identity: &str) -> Result<Option<TlsSettings>, TlsError> {
        let Some(dir) = std::env::var_os(TLS_DIR_ENV).filter(|d| !d.is_empty()) else {
            return Ok(None);
        };
        let identity = std::env::var(TLS_IDENTITY_ENV).unwrap_or_else(|_| default_identity.to_string());
        let server_name = std::env::var(TLS_SERVER_NAME_ENV).unwrap_or_else(|_| DEFAULT_SERVER_NAME.to_string());
        TlsSettings::from_dir_for(Path::new(&dir), &identity, &server_name).map(Some)
    }

    /// The credential's file stem.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub(crate) fn client_config(&self) -> &ClientTlsConfig {
        &self.config
    }
}
