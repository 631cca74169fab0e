//! `raftsched cluster ...`: the cluster's members and their views.

use clap::Subcommand;
use raftsched::client::ClusterClient;
use serde_json::json;

use crate::cli::output;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Every member: role, term, leader, log and applied index.
    Status,
}

pub async fn run(command: ClusterCommand, client: &ClusterClient, json: bool) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status => {
            let status = client.cluster_status().await?;
            if status.members.is_empty() {
                anyhow::bail!(
                    "the node answering knows no members yet: it has not joined a cluster \
                     (only the lowest founding id initialises one; is that node up?)"
                );
            }
            if json {
                let members: Vec<_> = status
                    .members
                    .iter()
                    .map(|m| {
                        json!({
                            "node_id": m.node_id,
                            "address": m.address,
                            "role": m.role,
                            "term": m.term,
                            "leader_id": m.leader_id,
                            "last_log_index": m.last_log_index,
                            "last_applied_index": m.last_applied_index,
                            "error": m.error,
                        })
                    })
                    .collect();
                output::print_json(&json!({ "members": members }));
            } else {
                let rows: Vec<Vec<String>> = status
                    .members
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
                            m.error.clone(),
                        ]
                    })
                    .collect();
                output::print_table(
                    &[
                        "NODE", "ADDRESS", "ROLE", "TERM", "LEADER", "LAST LOG", "APPLIED", "ERROR",
                    ],
                    &rows,
                );
            }
            Ok(())
        }
    }
}
