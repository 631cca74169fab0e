//! Command-line interface: argument parsing and dispatch to the subcommands.
//!
//! Architecture invariant: the CLI calls the cluster through `raftsched_client`; it builds
//! `raftsched_api` requests and prints the answers, but never sees `tonic::Status`.

mod backup_cmd;
mod certs_cmd;
mod cluster_cmd;
mod duration;
mod node_cmd;
pub(crate) mod output;
mod queue_cmd;
mod schedule_cmd;
mod task_cmd;
mod telemetry;
mod worker_cmd;
mod workflow_cmd;

use clap::Parser;
use clap::Subcommand;
use raftsched_client::ClusterClient;
use raftsched_client::DEFAULT_CLUSTER;
use raftsched_client::TlsSettings;
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
    /// Print JSON instead of a table (the same as `-o json`).
    #[arg(long, global = true)]
    json: bool,
    /// What results (and errors) are printed as: table (for people), json (the API's
    /// message, pretty-printed), jsonl (one compact JSON object a line; a list a line per
    /// item) or yaml.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = output::Format::Table)]
    output: output::Format,
    /// The namespace to act in (a-z, 0-9 and '-'): its tasks, queues, schedules,
    /// workflows and workers. Left out: "default". A credential acts only in the namespaces
    /// its certificate names.
    #[arg(long, global = true, env = "RAFTSCHED_NAMESPACE", default_value = "")]
    namespace: String,
    /// How log lines on stderr are written: text, or json (one object a line: timestamp,
    /// level, target, message and fields, for Loki, Elasticsearch or `jq`).
    #[arg(long, global = true, env = "RAFTSCHED_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// For `node` and `worker`: export the spans of each task's path (submit, propose,
    /// commit, apply, assign, push, run, report) to this OpenTelemetry collector over
    /// OTLP/gRPC, such as http://127.0.0.1:4317. Off when left out.
    #[arg(long, global = true, env = "RAFTSCHED_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(subcommand)]
    command: Command,
}

use telemetry::LogFormat;

/// The log filter without `RUST_LOG`. openraft logs its whole state at INFO on every change
/// of role (2 KB a line): its warnings and errors are what an operator needs from it.
fn default_log_filter(long_running: bool) -> &'static str {
    if long_running { "info,openraft=warn" } else { "warn" }
}

/// Where every command finds its TLS credentials (the certificate identity contract).
#[derive(clap::Args, Debug)]
pub struct TlsArgs {
    /// The credentials dir (`raftsched certs init --dir D`; `eval "$(scripts/cluster.sh env)"`
    /// sets it for the local cluster). Required unless --insecure.
    #[arg(long, global = true, env = "RAFTSCHED_TLS_DIR")]
    pub tls_dir: Option<std::path::PathBuf>,
    /// The credential (file stem) used from --tls-dir [default: node-<id> for `node`, the
    /// worker id for `worker`, admin for the rest].
    #[arg(long, global = true, env = "RAFTSCHED_TLS_IDENTITY")]
    pub tls_identity: Option<String>,
    /// The name the nodes' certificates are checked for [default: localhost].
    #[arg(long, global = true, env = "RAFTSCHED_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// Plaintext, no certificates: for nodes started with --insecure (a node started so
    /// lets anyone who reaches it make any call, and logs a warning). RAFTSCHED_INSECURE=1
    /// (or true, yes, on) sets it; 0, false, no, off or empty leave it off.
    #[arg(long, global = true, env = "RAFTSCHED_INSECURE", value_parser = clap::builder::FalseyValueParser::new())]
    pub insecure: bool,
}

impl TlsArgs {
    /// A client of `cluster` with these credentials (identity `default_identity` unless
    /// --tls-identity), or plaintext with --insecure; without either, an error saying what
    /// to set.
    pub fn client(&self, cluster: &str, default_identity: &str) -> anyhow::Result<ClusterClient> {
        let client = ClusterClient::new(cluster)?;
        if self.insecure {
            return Ok(client);
        }
        let Some(dir) = &self.tls_dir else {
            anyhow::bail!(
                "no TLS credentials: set RAFTSCHED_TLS_DIR=D (or --tls-dir D) to the dir `raftsched certs init --dir D` \
                 made (for scripts/cluster.sh: eval \"$(scripts/cluster.sh env)\"), or pass --insecure for a cluster \
                 started with --insecure"
            );
        };
        let identity = self.tls_identity.as_deref().unwrap_or(default_identity);
        if raftsched_certs::layout::validate_name(identity).is_err() {
            anyhow::bail!(
                "credential {identity:?} cannot be read from --tls-dir: a credential is named by a file stem of 1 to \
                 {} characters of A-Z a-z 0-9 . _ -, not starting with . or -. A worker's credential is named by its \
                 id, so on a TLS cluster a worker id must be such a name too (--id); other commands take \
                 --tls-identity",
                raftsched_certs::layout::MAX_NAME_BYTES
            );
        }
        let server_name = self
            .tls_server_name
            .as_deref()
            .unwrap_or(raftsched_certs::layout::DEFAULT_SERVER_NAME);
        Ok(client.with_tls(TlsSettings::from_dir_for(dir, identity, server_name)?))
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a cluster node (until SIGINT or SIGTERM).
    // Boxed: with the quota flags the args are 312 B, every other command under 100 B.
    Node(Box<node_cmd::NodeArgs>),
    /// Submit, inspect and cancel tasks.
    #[command(subcommand)]
    Task(task_cmd::TaskCommand),
    /// Inspect the cluster.
    #[command(subcommand)]
    Cluster(cluster_cmd::ClusterCommand),
    /// Run a worker (`raftsched worker --slots 4 --label gpu=true`), or `worker list`.
    Worker(worker_cmd::WorkerArgs),
    /// Queue weights and placement strategies.
    #[command(subcommand)]
    Queue(queue_cmd::QueueCommand),
    /// Recurring schedules: cron (with seconds and a time zone) or a fixed interval.
    #[command(subcommand)]
    Schedule(schedule_cmd::ScheduleCommand),
    /// Workflows: tasks with parent -> child edges.
    #[command(subcommand)]
    Workflow(workflow_cmd::WorkflowCommand),
    /// Create the cluster's CA and credentials (`certs init`), or one more (`certs issue`).
    #[command(subcommand)]
    Certs(certs_cmd::CertsCommand),
    /// Print a shell completion script: `raftsched completions bash > /etc/bash_completion.d/raftsched`,
    /// or `source <(raftsched completions zsh)` (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Write the man pages, one per command (raftsched.1, raftsched-task-submit.1, ...), into
    /// DIR: `raftsched man /usr/local/share/man/man1`, then `man raftsched-task-submit`.
    Man { dir: std::path::PathBuf },
}

impl Cli {
    /// Parses the command line; `--version` also names the commit and the formats this
    /// binary writes, which decide what it can run beside (ARCHITECTURE.md, Compatibility).
    pub fn parse_with_long_version() -> Cli {
        use clap::CommandFactory;
        use clap::FromArgMatches;
        let long_version = format!(
            "{} (commit {}; log and snapshot wire format v{}, reads v{} and later)",
            env!("CARGO_PKG_VERSION"),
            env!("RAFTSCHED_GIT_COMMIT"),
            raftsched_core::state::wire::WIRE_FORMAT_VERSION,
            raftsched_core::state::wire::OLDEST_READABLE_WIRE_VERSION,
        );
        // Leaked once per process: clap keeps version texts as &'static str.
        let command = with_env_for_every_flag(Cli::command(), ENV_PREFIX);
        let matches = command.long_version(&*long_version.leak()).get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// How results and errors are printed: `-o`, or json with `--json`.
    pub fn format(&self) -> output::Format {
        match self.output {
            output::Format::Table if self.json => output::Format::Json,
            format => format,
        }
    }

    /// Whether output (errors included) is for machines (`--json`, `-o json|jsonl|yaml`).
    pub fn json(&self) -> bool {
        self.format() != output::Format::Table
    }

    /// Commands that print a result and exit (as opposed to nodes, workers and load runs).
    pub fn is_short_lived(&self) -> bool {
        match &self.command {
            Command::Node(_) => false,
            Command::Worker(args) => !args.is_run(),
            _ => true,
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    output::set_format(cli.format());
    let cli = Cli {
        json: cli.json(),
        ..cli
    };
    let long_running = match &cli.command {
        Command::Node(_) => true,
        Command::Worker(args) => args.is_run(),
        _ => false,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_log_filter(long_running)));
    let service = match &cli.command {
        Command::Node(_) => "raftsched-node",
        _ => "raftsched-worker",
    };
    // Only a node and a running worker have spans to export.
    let otlp_endpoint = cli.otlp_endpoint.as_deref().filter(|_| long_running);
    let telemetry = telemetry::init(cli.log_format, filter, otlp_endpoint, service)?;
    let result = run_command(cli).await;
    telemetry.shutdown().await;
    result
}

async fn run_command(cli: Cli) -> anyhow::Result<()> {
    let admin = raftsched_certs::layout::DEFAULT_CLIENT_IDENTITY;
    let client = || {
        cli.tls
            .client(&cli.cluster, admin)
            .map(|c| c.with_namespace(&cli.namespace))
    };
    match cli.command {
        Command::Node(args) => node_cmd::run(*args, &cli.tls).await,
        Command::Task(command) => task_cmd::run(command, &client()?, cli.json).await,
        Command::Cluster(command) => cluster_cmd::run(command, client, cli.json).await,
        Command::Worker(args) => {
            let identity = args.default_tls_identity().unwrap_or_else(|| admin.to_string());
            // A worker keeps retrying through elections and outages on its own.
            let client = cli
                .tls
                .client(&cli.cluster, &identity)?
                .with_namespace(&cli.namespace)
                .with_overall_deadline(std::time::Duration::from_secs(3600));
            worker_cmd::run(args, &client, cli.json).await
        }
        Command::Queue(command) => queue_cmd::run(command, &client()?, cli.json).await,
        Command::Schedule(command) => schedule_cmd::run(command, &client()?, cli.json).await,
        Command::Workflow(command) => workflow_cmd::run(command, &client()?, cli.json).await,
        Command::Certs(command) => certs_cmd::run(command),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "raftsched", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => write_man_pages(&dir),
    }
}

use raftsched_client::worker::execution::TASK_VARIABLES;

/// Every flag's environment variable starts with this.
const ENV_PREFIX: &str = "RAFTSCHED";

/// Gives every flag that has no environment variable of its own one named after its command
/// path and its long name: `--json` is RAFTSCHED_JSON, `node --data-dir`
/// RAFTSCHED_NODE_DATA_DIR, `task submit --queue` RAFTSCHED_TASK_SUBMIT_QUEUE. Precedence is
/// flag > variable > config file (`node --config`) > default: clap reads a variable only
/// for a flag not given, and the node lays flags and variables alike over its file.
/// A switch's variable is set by 1, true, yes or on. Positional arguments, --help and
/// --version get none, nor does a flag whose name would be one of the variables a worker
/// sets for its tasks (`TASK_VARIABLES`): `worker --id` would be RAFTSCHED_WORKER_ID, which
/// every task sees, and a task that starts a worker would take its own worker's id.
pub(crate) fn with_env_for_every_flag(command: clap::Command, prefix: &str) -> clap::Command {
    let prefix = prefix.to_string();
    let command = command.mut_args(|arg| {
        let Some(long) = arg.get_long().filter(|long| !matches!(*long, "help" | "version")) else {
            return arg;
        };
        if arg.get_env().is_some() || arg.is_positional() {
            return arg;
        }
        let name = format!("{prefix}_{}", long.replace('-', "_").to_ascii_uppercase());
        if TASK_VARIABLES.contains(&name.as_str()) {
            return arg;
        }
        // Leaked once per flag and process: clap keeps env names as &'static str.
        let arg = arg.env(&*name.leak());
        // A switch reads 1, true, yes or on as set; 0, false, no, off or empty as not.
        match arg.get_action() {
            clap::ArgAction::SetTrue => arg.value_parser(clap::builder::FalseyValueParser::new()),
            _ => arg,
        }
    });
    command.mut_subcommands(move |sub| {
        let sub_prefix = format!("{prefix}_{}", sub.get_name().replace('-', "_").to_ascii_uppercase());
        with_env_for_every_flag(sub, &sub_prefix)
    })
}

/// The man pages of every command into `dir` (created if missing), each flag with its
/// variable.
fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let command = with_env_for_every_flag(<Cli as clap::CommandFactory>::command(), ENV_PREFIX);
    clap_mangen::generate_to(command, dir).with_context(|| format!("writing the man pages to {}", dir.display()))?;
    let pages = std::fs::read_dir(dir)?
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "1")))
        .count();
    println!("wrote {pages} man pages to {}", dir.display());
    Ok(())
}

/// `KEY=VALUE` for repeatable flags.
pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?}: expected KEY=VALUE"))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use anyhow::Context;
    raftsched_client::wait_for_stop_signal()
        .await
        .context("waiting for SIGINT or SIGTERM")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flag: its command path ("" for a global one, which every subcommand repeats), its
    /// long name and its variable.
    type Flag = (String, String, Option<String>);

    fn flags(command: &clap::Command, path: &str, out: &mut Vec<Flag>) {
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long() {
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                let path = if arg.is_global_set() { "" } else { path };
                out.push((path.to_string(), long.to_string(), env));
            }
        }
        for sub in command.get_subcommands() {
            flags(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_flag_has_one_raftsched_variable_of_its_own() {
        let mut command = with_env_for_every_flag(<Cli as clap::CommandFactory>::command(), ENV_PREFIX);
        command.build();
        let mut all = Vec::new();
        flags(&command, "raftsched", &mut all);
        assert!(all.len() > 100, "{} flags found", all.len());
        let mut owner: std::collections::BTreeMap<String, (String, String)> = Default::default();
        for (path, long, env) in all {
            if matches!(long.as_str(), "help" | "version") || (path == "raftsched worker" && long == "id") {
                assert_eq!(env, None, "{path} --{long}");
                continue;
            }
            // OpenTelemetry's own variable, as a traced script or a task has it (a schedule
            // drops it: each run is a trace of its own).
            if long == "trace-parent" {
                assert_eq!(env.as_deref(), Some("TRACEPARENT"), "{path} --{long}");
                continue;
            }
            let env = env.unwrap_or_else(|| panic!("{path} --{long} has no environment variable"));
            assert!(env.starts_with("RAFTSCHED_"), "{path} --{long}: {env}");
            assert!(
                !TASK_VARIABLES.contains(&env.as_str()),
                "{path} --{long}: {env} is a task's variable"
            );
            let claimed = owner.entry(env.clone()).or_insert((path.clone(), long.clone()));
            assert!(
                *claimed == (path.clone(), long.clone()),
                "{env} names both {} --{} and {path} --{long}",
                claimed.0,
                claimed.1
            );
        }
        for (env, flag) in [
            ("RAFTSCHED_JSON", "json"),
            ("RAFTSCHED_NODE_DATA_DIR", "data-dir"),
            ("RAFTSCHED_TASK_SUBMIT_QUEUE", "queue"),
            ("RAFTSCHED_WORKER_SLOTS", "slots"),
            ("RAFTSCHED_WORKER_KILL_GRACE", "kill-grace"),
        ] {
            assert_eq!(owner.get(env).map(|o| o.1.as_str()), Some(flag), "{env}");
        }
    }
}
