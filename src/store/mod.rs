//! Durable storage on sled: the Raft log ([`LogStore`]) and the state machine with its
//! snapshots ([`StateMachineStore`]).
//!
//! Architecture invariant: this is the only module that touches sled. Swapping the storage
//! engine means rewriting this module and nothing else.
//!
//! Layout of a data dir:
//! - `IDENTITY`: `raftsched-data-dir v1 cluster=<id> node=<id>`, written once; a node refuses
//!   a data dir of another cluster or node, and a non-empty dir without this file.
//! - `db/`: one sled database with the trees `log` (index → entry), `meta` (vote, committed,
//!   last purged) and `snapshot` (meta and data of the last snapshot).

mod codec;
mod log_store;
mod state_machine;

use std::path::Path;
use std::path::PathBuf;

pub use log_store::LogStore;
pub use state_machine::SharedState;
pub use state_machine::StateMachineStore;

use crate::raft_types::NodeId;

const IDENTITY_FILE: &str = "IDENTITY";
const IDENTITY_PREFIX: &str = "raftsched-data-dir v1";

/// Why a data dir cannot be opened. Every variant tells the operator what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{path} is not empty and is not a raftsched data dir (no {IDENTITY_FILE} file); \
         point --data-dir at an empty or raftsched directory"
    )]
    ForeignDir { path: PathBuf },
    #[error(
        "{path} belongs to cluster {found_cluster:?} node {found_node}, but this node is cluster \
         {cluster:?} node {node}; use the right --data-dir, or an empty one to join as a new node"
    )]
    IdentityMismatch {
        path: PathBuf,
        found_cluster: String,
        found_node: NodeId,
        cluster: String,
        node: NodeId,
    },
    #[error("{path}: data dir is corrupt: {detail}; restore it from a replica or remove it and re-add the node")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Both halves of a node's storage, opened from one data dir.
pub struct Store {
    pub log_store: LogStore,
    pub state_machine: StateMachineStore,
}

impl Store {
    /// Opens (or creates) the data dir of `node_id` in `cluster_id`, after checking that the
    /// dir is ours and that what it holds can be read.
    pub fn open(data_dir: &Path, cluster_id: &str, node_id: NodeId) -> Result<Store, StoreError> {
        check_identity(data_dir, cluster_id, node_id)?;
        let db_path = data_dir.join("db");
        let db = sled::Config::new()
            .path(&db_path)
            // Durability comes from explicit flushes before openraft is told a write is done;
            // the periodic background flush is only a backstop.
            .flush_every_ms(Some(1000))
            .open()
            .map_err(|e| corrupt(&db_path, format!("sled cannot open it: {e}")))?;
        let log_store = LogStore::open(&db).map_err(|e| corrupt(&db_path, e.to_string()))?;
        let state_machine = StateMachineStore::open(&db).map_err(|e| corrupt(&db_path, e.to_string()))?;
        Ok(Store {
            log_store,
            state_machine,
        })
    }
}

fn corrupt(path: &Path, detail: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail,
    }
}

fn check_identity(data_dir: &Path, cluster_id: &str, node_id: NodeId) -> Result<(), StoreError> {
    let io_err = |source| StoreError::Io {
        path: data_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(io_err)?;
    let identity_path = data_dir.join(IDENTITY_FILE);
    let expected = format!("{IDENTITY_PREFIX} cluster={cluster_id} node={node_id}\n");
    match std::fs::read_to_string(&identity_path) {
        Ok(found) if found == expected => Ok(()),
        Ok(found) => Err(mismatch(data_dir, &found, cluster_id, node_id)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let is_empty = std::fs::read_dir(data_dir).map_err(io_err)?.next().is_none();
            if !is_empty {
                return Err(StoreError::ForeignDir {
                    path: data_dir.to_path_buf(),
                });
            }
            write_durably(&identity_path, expected.as_bytes()).map_err(io_err)
        }
        Err(e) => Err(io_err(e)),
    }
}

fn mismatch(data_dir: &Path, found: &str, cluster_id: &str, node_id: NodeId) -> StoreError {
    let parsed = found
        .strip_prefix(IDENTITY_PREFIX)
        .and_then(|rest| rest.trim().split_once(' '))
        .and_then(|(cluster, node)| {
            let cluster = cluster.strip_prefix("cluster=")?;
            let node = node.strip_prefix("node=")?.parse().ok()?;
            Some((cluster.to_string(), node))
        });
    match parsed {
        Some((found_cluster, found_node)) => StoreError::IdentityMismatch {
            path: data_dir.to_path_buf(),
            found_cluster,
            found_node,
            cluster: cluster_id.to_string(),
            node: node_id,
        },
        None => corrupt(data_dir, format!("unreadable {IDENTITY_FILE} file: {found:?}")),
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
