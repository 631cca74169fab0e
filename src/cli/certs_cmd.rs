//! `raftsched certs ...`: create the cluster's CA and credentials (the certificate identity
//! contract: OU = role, CN = name), or one more credential signed by that CA.

use std::path::PathBuf;

use clap::Subcommand;
use raftsched_certs::Role;
use raftsched_certs::issue;
use raftsched_certs::issue::Credential;
use raftsched_certs::issue::InitOptions;

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Create a new cluster CA in DIR and the credentials of the cluster: node-<id> for each
    /// of --nodes, one per --workers, admin (role admin), client (submitter), reader,
    /// prometheus (a reader of every namespace, to scrape /metrics), and console.token (the
    /// secret that signs a browser in to the nodes' web console). Keys and the token are
    /// written 0600 and DIR 0700; existing files are never replaced without --force.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Node ids to issue node certificates for.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        nodes: Vec<u64>,
        /// Worker ids to issue worker certificates for.
        #[arg(long, value_delimiter = ',', default_value = "worker1,worker2")]
        workers: Vec<String>,
        /// More names or IPs the node certificates hold (beside localhost, 127.0.0.1, ::1):
        /// the addresses clients and peers dial. Repeatable.
        #[arg(long = "san")]
        sans: Vec<String>,
        /// Replace existing files (a new CA: every old credential stops working).
        #[arg(long)]
        force: bool,
    },
    /// Issue one more credential signed by the CA in DIR (DIR/ca.crt and DIR/ca.key), e.g. a
    /// new node (`--role node --name node-4`) or a replacement for a leaked or expiring one
    /// (with --force).
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// node, admin, submitter, reader or worker.
        #[arg(long)]
        role: String,
        /// node-<id> for a node, the worker id for a worker, any name for the others.
        #[arg(long)]
        name: String,
        /// More names or IPs a node certificate holds. Repeatable.
        #[arg(long = "san")]
        sans: Vec<String>,
        /// The namespaces the credential may act in, comma-separated (a-z, 0-9 and '-'; `*`
        /// for every one), at most 16. Left out: the default namespace. An admin acts in all.
        #[arg(long, value_delimiter = ',')]
        namespaces: Vec<String>,
        /// Replace NAME.crt and NAME.key if they exist.
        #[arg(long)]
        force: bool,
    },
    /// Write a new console token to DIR/console.token (64 random hex digits, 0600): the
    /// secret a browser signs in to the web console with, as a reader of every namespace.
    /// Nodes read it when they start: restart them after replacing it.
    ConsoleToken {
        #[arg(long)]
        dir: PathBuf,
        /// Replace an existing token (browsers signed in with the old one must sign in again).
        #[arg(long)]
        force: bool,
    },
}

/// The server refuses a credential whose namespaces break these rules; say so before one
/// is issued.
fn check_namespaces(namespaces: &[String]) -> anyhow::Result<()> {
    use raftsched_core::state::namespace;
    if namespaces.len() > namespace::MAX_NAMESPACES_PER_CREDENTIAL {
        anyhow::bail!(
            "--namespaces names {}; a credential names at most {} (or * for every namespace)",
            namespaces.len(),
            namespace::MAX_NAMESPACES_PER_CREDENTIAL
        );
    }
    for name in namespaces.iter().filter(|n| n.as_str() != "*") {
        namespace::validate_namespace(name).map_err(|e| anyhow::anyhow!("--namespaces: {e}"))?;
    }
    Ok(())
}

pub fn run(command: CertsCommand) -> anyhow::Result<()> {
    let (dir, written) = match command {
        CertsCommand::Init {
            dir,
            nodes,
            workers,
            sans,
            force,
        } => {
            let options = InitOptions { nodes, workers, sans };
            let written = issue::init(&dir, &options, force)?;
            (dir, written)
        }
        CertsCommand::Issue {
            dir,
            role,
            name,
            sans,
            namespaces,
            force,
        } => {
            check_namespaces(&namespaces)?;
            let credential = Credential::new(Role::parse(&role)?, name).in_namespaces(namespaces);
            let written = issue::issue(&dir, &credential, &sans, force)?;
            (dir, written)
        }
        CertsCommand::ConsoleToken { dir, force } => {
            let written = issue::write_console_token(&dir, force)?;
            (dir, vec![written])
        }
    };
    for path in &written {
        println!("wrote {}", path.display());
    }
    eprintln!(
        "use them with: export {}={}",
        raftsched_certs::TLS_DIR_ENV,
        std::path::absolute(&dir).unwrap_or(dir).display()
    );
    Ok(())
}
