//! Command-line interface: argument parsing and dispatch to the subcommands.

mod cluster_cmd;
mod node_cmd;
mod output;
mod task_cmd;

use clap::Parser;
use clap::Subcommand;
use raftsched::client::ClusterClient;
use raftsched::client::DEFAULT_CLUSTER;
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "raftsched",
    version,
    about = "A highly available task scheduler replicated with Raft"
)]
pub struct Cli {
    /// Cluster nodes to talk to (any of them; the leader is found on its own).
    #[arg(long, global = true, env = "RAFTSCHED_CLUSTER", default_value = DEFAULT_CLUSTER)]
    cluster: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a cluster node (until SIGINT or SIGTERM).
    Node(node_cmd::NodeArgs),
    /// Submit, inspect and cancel tasks.
    #[command(subcommand)]
    Task(task_cmd::TaskCommand),
    /// Inspect the cluster.
    #[command(subcommand)]
    Cluster(cluster_cmd::ClusterCommand),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let default_level = if matches!(cli.command, Command::Node(_)) {
        "info"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Node(args) => node_cmd::run(args).await,
        Command::Task(command) => task_cmd::run(command, &ClusterClient::new(&cli.cluster)?, cli.json).await,
        Command::Cluster(command) => cluster_cmd::run(command, &ClusterClient::new(&cli.cluster)?, cli.json).await,
    }
}
