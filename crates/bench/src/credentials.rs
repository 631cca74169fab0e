//! How the tool reaches a cluster: mutual TLS with the credentials of `RAFTSCHED_TLS_DIR`
//! (`admin` for its calls, each no-op worker its own, issued on first use from the CA there),
//! or plaintext with `--insecure` for a cluster started so. Set once by `main`.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Context;
use raftsched_client::ClusterClient;
use raftsched_client::TlsSettings;

/// The TLS flags of `raftsched-bench`, named as the CLI's.
#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// The credentials dir (`raftsched certs init --dir D`; scripts/cluster.sh's is
    /// `$RAFTSCHED_DATA/certs`). Required unless --insecure.
    #[arg(long, global = true, env = "RAFTSCHED_TLS_DIR")]
    tls_dir: Option<PathBuf>,
    /// The credential the tool's own calls use. No-op workers use their ids.
    #[arg(long, global = true, env = "RAFTSCHED_TLS_IDENTITY", default_value = "admin")]
    tls_identity: String,
    /// Plaintext, for a cluster started with --insecure.
    #[arg(long, global = true, env = "RAFTSCHED_INSECURE", value_parser = clap::builder::FalseyValueParser::new())]
    insecure: bool,
}

/// The flags, set once by `main`; read when a client is made.
static ARGS: OnceLock<TlsArgs> = OnceLock::new();

/// Records the flags. They are checked only when a client is made, so the modes that talk
/// to no raftsched node (`report`, `etcd`) need no credentials.
pub fn init(args: TlsArgs) {
    let _ = ARGS.set(args);
}

/// The credentials dir, None for plaintext (--insecure), or what to set.
fn tls_dir() -> anyhow::Result<Option<&'static PathBuf>> {
    let args = ARGS.get().expect("credentials::init runs first");
    match (&args.tls_dir, args.insecure) {
        (_, true) => Ok(None),
        (Some(dir), false) => Ok(Some(dir)),
        (None, false) => anyhow::bail!(
            "no TLS credentials: set RAFTSCHED_TLS_DIR=D (or --tls-dir D) to the dir `raftsched certs init --dir D` \
             made (scripts/cluster.sh: $RAFTSCHED_DATA/certs), or pass --insecure for a cluster started with \
             --insecure"
        ),
    }
}

/// The `system` of this run's results: `raftsched`, or `raftsched-plaintext` with --insecure.
pub fn system() -> &'static str {
    match ARGS.get() {
        Some(args) if args.insecure => crate::tls_cost::PLAINTEXT_SYSTEM,
        _ => "raftsched",
    }
}

/// A client of `addresses` with the tool's own credential.
pub fn client(addresses: &str) -> anyhow::Result<ClusterClient> {
    let identity = ARGS.get().map_or("admin", |args| args.tls_identity.as_str());
    with_credential(ClusterClient::new(addresses)?, identity)
}

/// A client of `addresses` acting as worker `worker_id`: its own credential, issued from
/// the CA in the credentials dir if it has none yet (as an operator issues one per worker).
pub fn worker_client(addresses: &str, worker_id: &str) -> anyhow::Result<ClusterClient> {
    if let Some(dir) = tls_dir()? {
        let credential = raftsched_certs::issue::Credential::new(raftsched_certs::Role::Worker, worker_id);
        raftsched_certs::issue::issue_if_missing(dir, &credential)
            .with_context(|| format!("issuing a worker credential for {worker_id} in {}", dir.display()))?;
    }
    with_credential(ClusterClient::new(addresses)?, worker_id)
}

fn with_credential(client: ClusterClient, identity: &str) -> anyhow::Result<ClusterClient> {
    let Some(dir) = tls_dir()? else {
        return Ok(client);
    };
    let settings = TlsSettings::from_dir(dir, identity)
        .with_context(|| format!("reading credential {identity} from {}", dir.display()))?;
    Ok(client.with_tls(settings))
}
