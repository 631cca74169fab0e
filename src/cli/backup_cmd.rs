//! `raftsched cluster snapshot save|status` and `raftsched cluster restore`: backups of the
//! whole state, and new data dirs seeded from one (the store's `backup` module says what
//! the file is and what a seeded dir holds).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use clap::Subcommand;
use raftsched_client::ClusterClient;
use raftsched_client::sha256_hex;
use raftsched_server::node::member_nodes;
use raftsched_server::node::parse_members;
use raftsched_server::quota::size::format_bytes;
use raftsched_store::Backup;
use raftsched_store::BackupSummary;
use serde_json::json;

use crate::cli::output;

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Save a consistent snapshot of the whole state, from the leader, to FILE (written
    /// whole or not at all, mode 0600: it holds every task's environment). Every write
    /// acknowledged before the save began is in it. Needs an admin credential of every
    /// namespace.
    Save { file: PathBuf },
    /// What a snapshot file holds (checked as a restore would check it): its last log
    /// entry, tasks, members, size and SHA-256.
    Status { file: PathBuf },
}

/// Seed a new data dir from a snapshot file, for one member of a new cluster; run it once
/// per member, then start the nodes on those dirs (`scripts/cluster.sh restore FILE` does
/// all three). FILE may also be a node's own DATA_DIR/snapshot.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The snapshot file (`raftsched cluster snapshot save`).
    file: PathBuf,
    /// This member's node id (as `raftsched node --id`).
    #[arg(long)]
    id: u64,
    /// The new data dir: absent or empty.
    #[arg(long)]
    data_dir: PathBuf,
    /// Every member of the new cluster, ID=HOST:PORT[/PEER_PORT],... as `raftsched node
    /// --initial-members` takes them; the same list for every member.
    #[arg(long)]
    initial_members: String,
    /// The new cluster's id (as `raftsched node --cluster-id`); a new one keeps nodes of
    /// the old cluster, if any still run, from ever talking to the new one.
    #[arg(long, default_value = "raftsched")]
    cluster_id: String,
}

/// A save streams the whole state: a large one takes longer than one ordinary call.
const SAVE_CALL_DEADLINE: Duration = Duration::from_secs(300);

/// `client` is called by `save` only.
pub async fn run(
    command: SnapshotCommand,
    client: impl FnOnce() -> anyhow::Result<ClusterClient>,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        SnapshotCommand::Save { file } => save(&file, client()?, json).await,
        SnapshotCommand::Status { file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let backup = Backup::from_file_bytes(&file, &bytes)?;
            let sha256 = sha256_hex(&bytes);
            print_summary(&file, &backup.summary(), bytes.len() as u64, &sha256, json);
            Ok(())
        }
    }
}

async fn save(file: &Path, client: ClusterClient, json: bool) -> anyhow::Result<()> {
    let client = client.with_per_call_deadline(SAVE_CALL_DEADLINE);
    let saved = client.save_snapshot().await?;
    // The client checked the length and SHA-256; this checks that the file restores.
    let backup = Backup::from_file_bytes(file, &saved.file_bytes)?;
    write_whole(file, &saved.file_bytes)?;
    let summary = backup.summary();
    if !json {
        println!(
            "Snapshot saved to {} by node {} (the leader)",
            file.display(),
            saved.summary.node_id
        );
    }
    print_summary(file, &summary, saved.summary.size_bytes, &saved.summary.sha256, json);
    Ok(())
}

/// Writes `bytes` to `file` through `file.part`, fsynced and renamed into place: a crash or
/// a full disk leaves the previous file, never half of a new one.
fn write_whole(file: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut part = file.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let write = || -> std::io::Result<()> {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&part)?;
        out.write_all(bytes)?;
        out.sync_all()?;
        std::fs::rename(&part, file)?;
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&part);
        anyhow::anyhow!("writing {}: {e}", file.display())
    })
}

fn print_summary(file: &Path, summary: &BackupSummary, size_bytes: u64, sha256: &str, json: bool) {
    let members: Vec<String> = summary
        .members
        .iter()
        .map(|(id, node)| format!("{id}={}", node.to_spec()))
        .collect();
    if json {
        output::print_json(&json!({
            "file": file.display().to_string(),
            "lastLogIndex": summary.last_log_index.to_string(),
            "lastLogTerm": summary.last_log_term.to_string(),
            "tasks": summary.tasks.to_string(),
            "members": members,
            "sizeBytes": size_bytes.to_string(),
            "imageBytes": summary.image_bytes.to_string(),
            "sha256": sha256,
        }));
        return;
    }
    println!(
        "{}: {} tasks, up to log index {} (term {})",
        file.display(),
        summary.tasks,
        summary.last_log_index,
        summary.last_log_term
    );
    println!("members of the cluster it was taken of: {}", members.join(","));
    println!(
        "size {} ({} uncompressed), sha256 {sha256}",
        format_bytes(size_bytes),
        format_bytes(summary.image_bytes)
    );
}

pub async fn restore(args: RestoreArgs, json: bool) -> anyhow::Result<()> {
    let members = parse_members(&args.initial_members)
        .and_then(|members| member_nodes(&members))
        .context("--initial-members")?;
    let backup = Backup::read(&args.file)?;
    backup.seed(&args.data_dir, &args.cluster_id, args.id, &members).await?;
    let summary = backup.summary();
    if json {
        output::print_json(&json!({
            "dataDir": args.data_dir.display().to_string(),
            "nodeId": args.id.to_string(),
            "clusterId": args.cluster_id,
            "lastLogIndex": summary.last_log_index.to_string(),
            "tasks": summary.tasks.to_string(),
        }));
        return Ok(());
    }
    println!(
        "{} is seeded for node {} of cluster {:?}: {} tasks, up to log index {} (term {})",
        args.data_dir.display(),
        args.id,
        args.cluster_id,
        summary.tasks,
        summary.last_log_index,
        summary.last_log_term
    );
    println!(
        "Seed every member's dir the same way, then start each node on its dir: raftsched node --id {} \
         --data-dir {} --cluster-id {} --listen ... (the membership is in the snapshot; no --initial-members needed)",
        args.id,
        args.data_dir.display(),
        args.cluster_id
    );
    Ok(())
}
