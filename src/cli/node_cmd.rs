//! `raftsched node`: run one cluster member.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use raftsched_server::node::NodeConfig;
use raftsched_server::node::RunningNode;
use raftsched_server::node::parse_members;
use raftsched_server::quota::size::parse_bytes;

use crate::cli::TlsArgs;

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// TOML file with the node's settings. Each flag's RAFTSCHED_NODE_* variable overrides
    /// it, and the flag overrides both.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Check the settings (the --config file, the variables and the flags, laid over each
    /// other in that order), print them as TOML and exit without starting the node.
    #[arg(long)]
    check_config: bool,
    /// This member's stable id (1, 2, 3, ...).
    #[arg(long)]
    id: Option<u64>,
    /// Address to bind, e.g. 127.0.0.1:50051.
    #[arg(long)]
    listen: Option<String>,
    /// Address clients use to reach this node (default: --listen).
    #[arg(long)]
    advertise: Option<String>,
    /// Address the peer (Raft) port binds [default: --listen's port + 100, e.g.
    /// 127.0.0.1:50151]. Raft is served there only, never on the client port.
    #[arg(long)]
    peer_listen: Option<String>,
    /// Address peers dial for Raft (default: --peer-listen).
    #[arg(long)]
    peer_advertise: Option<String>,
    /// Address the HTTP port binds, e.g. 127.0.0.1:8081: /healthz, /readyz and /metrics
    /// (Prometheus; over TLS it needs a reader-of-every-namespace credential such as
    /// `prometheus`, or an admin or node one) [default: none].
    #[arg(long)]
    http_listen: Option<String>,
    /// Where the log, snapshots and identity file live.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Shared by all members; a node refuses data and peers of another cluster.
    #[arg(long)]
    cluster_id: Option<String>,
    /// Founding members, ID=HOST:PORT[/PEER_PORT],... (peer port default: port + 100). The
    /// lowest id initialises the cluster on first start.
    #[arg(long)]
    initial_members: Option<String>,
    /// Leader heartbeat interval (50ms; a bare number is milliseconds).
    #[arg(long, value_parser = super::duration::millis)]
    heartbeat_ms: Option<u64>,
    /// Shortest election timeout (150ms).
    #[arg(long, value_parser = super::duration::millis)]
    election_min_ms: Option<u64>,
    /// Longest election timeout, also the leader's lease (300ms).
    #[arg(long, value_parser = super::duration::millis)]
    election_max_ms: Option<u64>,
    /// Snapshot (and purge the log behind it) after at least this many entries, once the log
    /// since the last snapshot is also half its size.
    #[arg(long)]
    snapshot_after: Option<u64>,
    /// Dial these peers at other addresses, ID=HOST:PORT,... (e.g. through proxies).
    #[arg(long)]
    peer_dial_overrides: Option<String>,
    /// Refuse new work (RESOURCE_EXHAUSTED) while the cluster holds this many unfinished
    /// tasks, 1 to 100,000,000 [default: 1000000]. The leader's figure counts.
    #[arg(long)]
    max_live_tasks: Option<u64>,
    /// Refuse new work in a namespace while it holds this many unfinished tasks, 1 to
    /// 100,000,000 [default: 1000000]: one tenant cannot take the whole cluster's cap.
    #[arg(long)]
    max_live_tasks_per_namespace: Option<u64>,
    /// Refuse new work while the tasks' estimated size would pass this, e.g. 512MiB; at most
    /// 2GiB, the largest snapshot a follower can be sent [default: 2GiB].
    #[arg(long, value_parser = parse_bytes)]
    max_state_bytes: Option<u64>,
    /// Raise an alarm (and the cluster refuses new work) while this node's resident memory is
    /// above this, e.g. 6GiB [default: 6GiB].
    #[arg(long, value_parser = parse_bytes)]
    memory_high_water: Option<u64>,
    /// Raise an alarm (and the cluster refuses new work) while this node's data dir holds
    /// more than this, e.g. 16GiB [default: 16GiB].
    #[arg(long, value_parser = parse_bytes)]
    data_dir_high_water: Option<u64>,
}

impl NodeArgs {
    /// The config file (if any) with every given flag (and the global TLS flags) laid over it.
    fn into_config(self, tls: &TlsArgs) -> anyhow::Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => NodeConfig::from_toml_file(path)?,
            None => NodeConfig::new(
                self.id.context("--id is required (or node_id in --config)")?,
                self.listen
                    .clone()
                    .context("--listen is required (or listen_addr in --config)")?,
                self.data_dir
                    .clone()
                    .context("--data-dir is required (or data_dir in --config)")?,
            ),
        };
        if let Some(id) = self.id {
            config.node_id = id;
        }
        if let Some(listen) = self.listen {
            config.listen_addr = listen;
        }
        if let Some(advertise) = self.advertise {
            config.advertise_addr = Some(advertise);
        }
        if let Some(peer_listen) = self.peer_listen {
            config.peer_listen_addr = Some(peer_listen);
        }
        if let Some(peer_advertise) = self.peer_advertise {
            config.peer_advertise_addr = Some(peer_advertise);
        }
        if let Some(http_listen) = self.http_listen {
            config.http_listen_addr = Some(http_listen);
        }
        if let Some(tls_dir) = &tls.tls_dir {
            config.tls_dir = Some(tls_dir.clone());
        }
        if let Some(identity) = &tls.tls_identity {
            config.tls_identity = Some(identity.clone());
        }
        if let Some(server_name) = &tls.tls_server_name {
            config.tls_server_name = Some(server_name.clone());
        }
        config.insecure |= tls.insecure;
        if let Some(data_dir) = self.data_dir {
            config.data_dir = data_dir;
        }
        if let Some(cluster_id) = self.cluster_id {
            config.cluster_id = cluster_id;
        }
        if let Some(members) = &self.initial_members {
            config.initial_members = parse_members(members)?;
        }
        if let Some(overrides) = &self.peer_dial_overrides {
            config.peer_dial_overrides = parse_members(overrides)?;
        }
        let raft = &mut config.raft;
        let overrides = [
            (self.heartbeat_ms, &mut raft.heartbeat_interval_ms),
            (self.election_min_ms, &mut raft.election_timeout_min_ms),
            (self.election_max_ms, &mut raft.election_timeout_max_ms),
            (self.snapshot_after, &mut raft.snapshot_after_entries),
        ];
        for (flag, field) in overrides {
            if let Some(value) = flag {
                *field = value;
            }
        }
        let quotas = &mut config.quotas;
        let overrides = [
            (self.max_live_tasks, &mut quotas.max_live_tasks),
            (
                self.max_live_tasks_per_namespace,
                &mut quotas.max_live_tasks_per_namespace,
            ),
            (self.max_state_bytes, &mut quotas.max_state_bytes),
            (self.memory_high_water, &mut quotas.memory_high_water_bytes),
            (self.data_dir_high_water, &mut quotas.data_dir_high_water_bytes),
        ];
        for (flag, field) in overrides {
            if let Some(value) = flag {
                *field = value;
            }
        }
        config.validate()?;
        Ok(config)
    }
}

pub async fn run(args: NodeArgs, tls: &TlsArgs) -> anyhow::Result<()> {
    // Everything a node creates is its user's only: the log, the snapshot and sled's own
    // files hold every task's environment. The store closes its directories (0700) too;
    // the mask covers the files sled creates later inside them.
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe { libc::umask(0o077) };
    let check_only = args.check_config;
    let config = args.into_config(tls)?;
    if check_only {
        print!(
            "{}",
            toml::to_string(&config).context("rendering the settings as TOML")?
        );
        return Ok(());
    }
    let node = RunningNode::start(config).await?;
    let raft = node.raft().clone();
    tokio::select! {
        stopped = crate::cli::wait_for_stop_signal() => stopped?,
        fatal = raft_stopped(&raft) => {
            // A node whose Raft core stopped cannot recover in place: exit, so a supervisor
            // restarts it on its data dir.
            node.shutdown().await;
            anyhow::bail!("raft stopped: {fatal}; restart this node");
        }
    }
    tracing::info!("stop signal received, shutting down");
    node.shutdown().await;
    Ok(())
}

/// Resolves with the error once this node's Raft core has stopped on a fatal error.
async fn raft_stopped(raft: &raftsched_server::raft_types::Raft) -> String {
    use openraft::async_runtime::watch::WatchReceiver;
    let mut metrics = raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow_watched().running_state {
            return fatal.to_string();
        }
        if metrics.changed().await.is_err() {
            return "raft metrics closed".to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        tls: TlsArgs,
    }

    fn config(flags: &[&str]) -> anyhow::Result<NodeConfig> {
        let base = ["raftsched", "--id", "1", "--listen", "127.0.0.1:1", "--data-dir", "d"];
        let cli = Cli::try_parse_from(base.iter().chain(flags))?;
        cli.node.into_config(&cli.tls)
    }

    #[test]
    fn quota_flags_take_human_sizes_and_are_validated() {
        let quotas = config(&[
            "--max-live-tasks",
            "5",
            "--max-state-bytes",
            "1GiB",
            "--data-dir-high-water",
            "1",
        ])
        .expect("valid")
        .quotas;
        assert_eq!((quotas.max_live_tasks, quotas.max_state_bytes), (5, 1 << 30));
        assert_eq!(quotas.data_dir_high_water_bytes, 1);
        config(&["--max-state-bytes", "2GiB", "--memory-high-water", "1PiB"]).expect("1 PiB is the limit");
        config(&["--memory-high-water", "2PiB"]).expect_err("past the 1 PiB limit");
        for (flags, expected) in [
            (["--max-live-tasks", "0"], "--max-live-tasks"),
            (["--max-live-tasks", "100000001"], "--max-live-tasks"),
            (["--max-state-bytes", "0"], "--max-state-bytes"),
            (["--max-state-bytes", "2049MiB"], "--max-state-bytes"),
            (["--memory-high-water", "18446744073709551615"], "--memory-high-water"),
            (["--data-dir-high-water", "2 parsecs"], "is not a size"),
        ] {
            let error = format!("{:#}", config(&flags).expect_err(expected));
            assert!(error.contains(expected), "{flags:?}: {error}");
        }
    }
}
