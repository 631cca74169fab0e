//! [`NodeConfig`]: everything a node needs to start, from flags or a TOML file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde::Serialize;

use crate::raft_types::NodeId;

/// A node's configuration. Every field has a default but `node_id`, `listen_addr` and
/// `data_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Stable identity of this member, at least 1. Never reuse an id for another machine's data.
    pub node_id: NodeId,
    /// Address the gRPC server binds, e.g. `127.0.0.1:50051`.
    pub listen_addr: String,
    /// Address peers and clients use to reach this node; defaults to `listen_addr`.
    #[serde(default)]
    pub advertise_addr: Option<String>,
    pub data_dir: PathBuf,
    /// Name shared by every member; a data dir or peer of another cluster is refused.
    #[serde(default = "default_cluster_id")]
    pub cluster_id: String,
    /// id → address of every founding member. Only the lowest id initialises the cluster,
    /// and only on a brand-new data dir; on restart this is ignored.
    #[serde(default)]
    pub initial_members: BTreeMap<NodeId, String>,
    #[serde(default)]
    pub raft: RaftTuning,
    /// id → address to dial for that peer instead of its membership address (e.g. through a
    /// proxy, as the chaos tool does). Normally empty.
    #[serde(default)]
    pub peer_dial_overrides: BTreeMap<NodeId, String>,
}

/// Raft timing and log compaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftTuning {
    pub heartbeat_interval_ms: u64,
    /// Must stay well above the worst fsync (tens of ms on small disks), or slow disks cause
    /// spurious elections. Failover takes roughly the leader lease (= the max) plus a random
    /// timeout in [min, max].
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Take a snapshot after at least this many log entries since the last one, once the
    /// log written since then is also at least half the last snapshot's size.
    pub snapshot_after_entries: u64,
    /// Entries kept behind a snapshot, so a slightly lagging follower catches up from the
    /// log rather than by a full snapshot.
    pub entries_kept_after_snapshot: u64,
}

impl Default for RaftTuning {
    fn default() -> RaftTuning {
        RaftTuning {
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            snapshot_after_entries: 10_000,
            entries_kept_after_snapshot: 1_000,
        }
    }
}

fn default_cluster_id() -> String {
    "raftsched".to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid node config: {0}")]
    Invalid(String),
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
}

impl NodeConfig {
    pub fn advertise_addr(&self) -> &str {
        self.advertise_addr.as_deref().unwrap_or(&self.listen_addr)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |message: String| Err(ConfigError::Invalid(message));
        if self.node_id == 0 {
            return fail("node_id must be at least 1 (0 means \"no node\" in the API)".into());
        }
        if self.cluster_id.is_empty() || !self.cluster_id.chars().all(|c| c.is_ascii_graphic()) {
            return fail(format!(
                "cluster_id {:?} must be non-empty printable ASCII",
                self.cluster_id
            ));
        }
        if !self.initial_members.is_empty() && !self.initial_members.contains_key(&self.node_id) {
            return fail(format!("initial_members does not list this node ({})", self.node_id));
        }
        if self.initial_members.contains_key(&0) {
            return fail("initial_members: node ids start at 1".into());
        }
        let raft = &self.raft;
        if raft.heartbeat_interval_ms == 0 || raft.heartbeat_interval_ms >= raft.election_timeout_min_ms {
            return fail("raft.heartbeat_interval_ms must be above 0 and below election_timeout_min_ms".into());
        }
        if raft.election_timeout_min_ms >= raft.election_timeout_max_ms {
            return fail("raft.election_timeout_min_ms must be below election_timeout_max_ms".into());
        }
        if raft.snapshot_after_entries == 0 {
            return fail("raft.snapshot_after_entries must be at least 1".into());
        }
        Ok(())
    }

    pub fn from_toml_file(path: &std::path::Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Parses `1=127.0.0.1:50051,2=127.0.0.1:50052`.
pub fn parse_members(text: &str) -> Result<BTreeMap<NodeId, String>, ConfigError> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (id, addr) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| ConfigError::Invalid(format!("member {part:?}: expected ID=HOST:PORT")))?;
            let id = id
                .parse()
                .map_err(|_| ConfigError::Invalid(format!("member {part:?}: {id:?} is not a node id")))?;
            Ok((id, addr.to_string()))
        })
        .collect()
}
