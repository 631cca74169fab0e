//! raftsched's credentials (the certificate identity contract): every credential is an
//! X.509 certificate signed by the cluster CA, whose Subject says who it is — OU the role
//! (`node`, `admin`, `submitter`, `reader`, `worker`), CN the name (`node-<id>`, a worker
//! id, or any name for the others).
//!
//! - [`layout`]: the files of a credentials directory, the names they may have, and how a
//!   process finds its own ([`TLS_DIR_ENV`], [`TLS_IDENTITY_ENV`]).
//! - `issue` (feature `issue`): `raftsched certs init` and `certs issue` with rcgen.
//!
//! Deliberately absent: TLS itself (the server and the client crate build their tonic TLS
//! configs from the PEM text read here) and any network access.

#[cfg(feature = "issue")]
pub mod issue;
pub mod layout;

pub use layout::CertsError;
pub use layout::Pems;
pub use layout::Role;
pub use layout::TLS_DIR_ENV;
pub use layout::TLS_IDENTITY_ENV;
pub use layout::TLS_SERVER_NAME_ENV;
