//! `raftsched cluster ...`: the cluster's members and their views.

use std::time::Duration;

use clap::Subcommand;
use raftsched_api::v1 as api;
use raftsched_client::ClusterClient;
use raftsched_server::raft_types::MemberNode;

use crate::cli::backup_cmd;
use crate::cli::backup_cmd::RestoreArgs;
use crate::cli::backup_cmd::SnapshotCommand;
use crate::cli::output;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Every member: role, term, leader, log and applied index.
    Status,
    /// Hand leadership to node N (default: the most up-to-date follower), e.g. before
    /// restarting the leader.
    TransferLeader {
        node_id: Option<u64>,
    },
    /// Add a member: it joins as a learner, catches up, then becomes a voter. Start it first
    /// with `raftsched node --id ID --listen ADDR --data-dir EMPTY_DIR` (no --initial-members).
    /// ADDRESS is its client port, HOST:PORT, optionally with /PEER_PORT or /PEER_HOST:PORT
    /// (default: the client port + 100, as `raftsched node` picks).
    AddNode {
        node_id: u64,
        address: String,
    },
    /// Remove a member (for example a dead machine) from the cluster.
    RemoveNode {
        node_id: u64,
    },
    /// Backups: `save FILE` from the leader, `status FILE` to check one.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    Restore(RestoreArgs),
}

/// Per-call deadline of membership changes: a hand-over waits for the target to take over,
/// and adding a node waits for it to catch up as a learner (a large state takes a while).
const MEMBERSHIP_CALL_DEADLINE: Duration = Duration::from_secs(300);

/// `client` is called only by the commands that talk to the cluster (`restore` and
/// `snapshot status` work on files alone).
pub async fn run(
    command: ClusterCommand,
    client: impl FnOnce() -> anyhow::Result<ClusterClient>,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        ClusterCommand::TransferLeader { node_id } => {
            let response = client()?
                .with_per_call_deadline(MEMBERSHIP_CALL_DEADLINE)
                .call(|mut c| async move {
                    let request = api::TransferLeaderRequest {
                        node_id: node_id.unwrap_or(0),
                    };
                    c.transfer_leader(request).await
                })
                .await?;
            println!("node {} is the leader", response.leader_id);
            Ok(())
        }
        ClusterCommand::AddNode { node_id, address } => {
            let member = MemberNode::parse(&address)?;
            let response = client()?
                .with_per_call_deadline(MEMBERSHIP_CALL_DEADLINE)
                .call(|mut c| {
                    let request = api::AddNodeRequest {
                        node_id,
                        address: member.addr.clone(),
                        peer_address: member.peer_addr.clone(),
                    };
                    async move { c.add_node(request).await }
                })
                .await?;
            print_members(&response.members, json);
            Ok(())
        }
        ClusterCommand::RemoveNode { node_id } => {
            let response = client()?
                .with_per_call_deadline(MEMBERSHIP_CALL_DEADLINE)
                .call(|mut c| async move { c.remove_node(api::RemoveNodeRequest { node_id }).await })
                .await?;
            print_members(&response.members, json);
            Ok(())
        }
        ClusterCommand::Status => {
            let status = client()?.cluster_status().await?;
            if status.members.is_empty() {
                anyhow::bail!(
                    "the node answering knows no members yet: it has not joined a cluster \
                     (only the lowest founding id initialises one; is that node up?)"
                );
            }
            print_members(&status.members, json);
            Ok(())
        }
        ClusterCommand::Snapshot { command } => backup_cmd::run(command, client, json).await,
        ClusterCommand::Restore(args) => backup_cmd::restore(args, json).await,
    }
}

fn print_members(members: &[api::MemberStatus], json: bool) {
    if json {
        let status = api::ClusterStatusResponse {
            members: members.to_vec(),
        };
        output::print_json(&output::json_of(&status));
    } else {
        let rows: Vec<Vec<String>> = members
            .iter()
            .map(|m| {
                vec![
                    m.node_id.to_string(),
                    m.address.clone(),
                    m.role.clone(),
                    m.term.to_string(),
                    if m.leader_id == 0 {
                        "-".into()
                    } else {
                        m.leader_id.to_string()
                    },
                    m.last_log_index.to_string(),
                    m.last_applied_index.to_string(),
                    shown_size(m.rss_bytes),
                    shown_size(m.data_dir_bytes),
                    alarm_names(&m.alarms),
                    m.error.clone(),
                ]
            })
            .collect();
        output::print_table(
            &[
                "NODE", "ADDRESS", "ROLE", "TERM", "LEADER", "LAST LOG", "APPLIED", "RSS", "DATA DIR", "ALARMS",
                "ERROR",
            ],
            &rows,
        );
        // The table names each alarm; its figures and mark follow in full.
        for member in members {
            for alarm in &member.alarms {
                println!("ALARM node {}: {alarm}", member.node_id);
            }
        }
    }
}

/// A figure in binary units, `-` when the node has not reported one (unreachable, or an
/// older node without the field).
fn shown_size(bytes: u64) -> String {
    if bytes == 0 {
        "-".into()
    } else {
        raftsched_server::quota::size::format_bytes(bytes)
    }
}

/// The alarms' names (`memory`, `data-dir`), `-` for none.
fn alarm_names(alarms: &[String]) -> String {
    if alarms.is_empty() {
        return "-".into();
    }
    let names: Vec<&str> = alarms
        .iter()
        .map(|alarm| alarm.split_whitespace().next().unwrap_or("alarm"))
        .collect();
    names.join(",")
}
