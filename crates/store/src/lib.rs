//! Durable storage on sled: the Raft log ([`LogStore`]) and the state machine with its
//! snapshots ([`StateMachineStore`]).
//!
//! Architecture invariant: this is the only module that touches sled. Swapping the storage
//! engine means rewriting this module and nothing else.
//!
//! Layout of a data dir:
//! - `IDENTITY`: `raftsched-data-dir v3 cluster=<id> node=<id>`, written once (through
//!   `IDENTITY.tmp` and a rename); a node refuses a data dir of another cluster or node, and
//!   a non-empty dir without this file. Older layouts are read and upgraded, then the
//!   identity is rewritten as `v3`, so a release from before the upgrade refuses the dir
//!   instead of starting on an empty log or vote: `v1` had the log in sled, `v2` the vote,
//!   committed id and purge point.
//! - `log/`: the Raft log's entries in segment files ([`segments`]: append-only, checksummed
//!   records, each file dropped whole once purged).
//! - `meta`: the vote, the committed id and the purge point, in two checksummed slots
//!   overwritten in turn ([`meta_file`]); 1 KiB, whatever happens.
//! - `db/`: one sled database with the trees `meta` (the format stamp) and `removed_peers`
//!   ([`removed_peers`]), every value in the versioned wire format
//!   ([`raftsched_core::state::wire`]); written only when a peer is removed. The stamp
//!   ([`format`]) says which wire formats the db may hold; a node refuses a db stamped newer
//!   than it reads. Releases before the segment files, the meta file and the snapshot file
//!   kept the log, the vote and the snapshot here (trees `log`, `meta` and `snapshot`); open
//!   moves each out.
//! - `snapshot`: the last snapshot, its meta and its image (which carries its own format
//!   version) in a checksummed envelope ([`snapshot_envelope`]); [`snapshot_file`] says why
//!   it is a file of its own and how it is replaced atomically.
//!
//! A backup ([`backup`]) is a snapshot file taken on demand from the leader's applied state;
//! restore seeds new data dirs with one.

pub mod backup;
mod codec;
mod events;
mod flush;
mod format;
mod growth;
mod log_store;
pub mod member_node;
mod meta_file;
pub mod raft_types;
pub mod removed_peers;
mod segments;
pub mod snapshot_envelope;
pub mod snapshot_file;
mod state_machine;

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Weak;
use std::time::Duration;
use std::time::Instant;

pub use backup::Backup;
pub use backup::BackupError;
pub use backup::BackupSummary;
pub use codec::encoded_len;
pub use events::StoreEvent;
pub use events::StoreEvents;
pub use growth::LogGrowth;
pub use log_store::LogStore;
pub use removed_peers::RemovedPeers;
pub use state_machine::SharedState;
pub use state_machine::StateMachineStore;

use crate::raft_types::NodeId;
use raftsched_core::state::wire::BARE_FORMAT_VERSION;
use raftsched_core::state::wire::WIRE_FORMAT_VERSION;

const IDENTITY_FILE: &str = "IDENTITY";
/// The log's segment files ([`segments`]).
const LOG_DIR: &str = "log";
/// Where the identity is written before it is renamed into place, so a crash can never leave
/// a half-written `IDENTITY`.
const IDENTITY_TMP_FILE: &str = "IDENTITY.tmp";
const IDENTITY_PREFIX: &str = "raftsched-data-dir v3";
/// The identity of a data dir whose vote is in sled (releases before the meta file).
const IDENTITY_PREFIX_V2: &str = "raftsched-data-dir v2";
/// The identity of a data dir whose log is in sled (releases before segment files).
const IDENTITY_PREFIX_V1: &str = "raftsched-data-dir v1";

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
    #[error(
        "{path} is in use by another process (its database is locked); stop the other raftsched \
         node using it, or point --data-dir elsewhere"
    )]
    InUse { path: PathBuf },
    #[error(
        "{path} was written by a newer raftsched (data format v{found}; this binary reads formats \
         v{BARE_FORMAT_VERSION} to v{WIRE_FORMAT_VERSION}); run a release that reads format v{found} on it, or \
         remove the dir and re-add this node as a new member"
    )]
    NewerFormat { path: PathBuf, found: u16 },
    #[error("{path}: {detail}; run a release that reads that format on this data dir")]
    UnreadableFormat { path: PathBuf, detail: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Both halves of a node's storage, opened from one data dir.
pub struct Store {
    pub log_store: LogStore,
    pub state_machine: StateMachineStore,
    /// Log written since the last snapshot, and that snapshot's size.
    pub growth: Arc<LogGrowth>,
    /// Fsync and snapshot timings, for the node's metrics.
    pub events: Arc<StoreEvents>,
}

impl Store {
    /// Opens (or creates) the data dir of `node_id` in `cluster_id`, after checking that the
    /// dir is ours and that what it holds can be read.
    pub fn open(data_dir: &Path, cluster_id: &str, node_id: NodeId) -> Result<Store, StoreError> {
        let identity = check_identity(data_dir, cluster_id, node_id)?;
        let db_path = data_dir.join("db");
        if identity != Identity::New && !db_path.exists() {
            // Opening an empty log here would forget this node's vote, and it could vote twice
            // in one term.
            return Err(corrupt(
                &db_path,
                "the database is missing (log and vote lost); remove the whole data dir and re-add this node \
                 as a new member"
                    .into(),
            ));
        }
        let meta_path = data_dir.join(meta_file::META_FILE);
        if identity == Identity::Current && !meta_path.exists() {
            // The same: a v3 dir keeps its vote there, and a new file would hold none.
            return Err(corrupt(
                &meta_path,
                "the meta file is missing (vote and purge point lost); remove the whole data dir and re-add \
                 this node as a new member"
                    .into(),
            ));
        }
        let db = open_db(&db_path)?;
        make_private(&db_path)?;
        check_format(&db, data_dir, &db_path)?;
        let flusher = Arc::new(flush::Flusher::new(db.clone()));
        let growth = Arc::new(LogGrowth::default());
        let events = Arc::new(StoreEvents::default());
        let log_dir = data_dir.join(LOG_DIR);
        let log_store = LogStore::open(
            &db,
            &log_dir,
            data_dir,
            flusher,
            Arc::clone(&growth),
            Arc::clone(&events),
        )
        .map_err(|e| unreadable(data_dir, &log_dir, e))?;
        make_private(&log_dir)?;
        if identity == Identity::Older {
            // The log is in segment files and the vote in the meta file now: mark the dir
            // v3, so a release from before either refuses it.
            write_identity(data_dir, cluster_id, node_id).map_err(|source| StoreError::Io {
                path: data_dir.join(IDENTITY_FILE),
                source,
            })?;
        }
        let state_machine = StateMachineStore::open(&db, data_dir, Arc::clone(&growth), Arc::clone(&events))
            .map_err(|e| unreadable(data_dir, &db_path, e))?;
        Ok(Store {
            log_store,
            state_machine,
            growth,
            events,
        })
    }

    /// Tells when every handle on this store has been dropped and the data dir can be
    /// opened again.
    pub fn closed_signal(&self) -> StoreClosed {
        StoreClosed(self.log_store.flusher_weak())
    }
}

/// Watches a store's handles: every sled handle lives next to the shared flusher, so once
/// the flusher is gone, so is the database lock.
pub struct StoreClosed(Weak<flush::Flusher>);

impl StoreClosed {
    pub fn is_closed(&self) -> bool {
        self.0.strong_count() == 0
    }
}

/// sled's page cache.
const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// How long open waits for a lock that the previous holder is releasing: sled's background
/// I/O threads let go of the lock file a moment after the last handle is dropped, so an
/// in-process restart, or a process restarted right after it exited, may find it still held.
const LOCK_RELEASE_WAIT: Duration = Duration::from_secs(2);

fn open_db(db_path: &Path) -> Result<sled::Db, StoreError> {
    let started = Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(db_path)
            // Durability comes from explicit flushes before openraft is told a write is
            // done; the periodic background flush is only a backstop.
            .flush_every_ms(Some(1000))
            // sled's page cache defaults to 1 GiB; the log is read back only by replication of
            // recent entries and the snapshot only on start-up and catch-up.
            .cache_capacity(SLED_CACHE_BYTES)
            .open()
            .map_err(|e| open_error(db_path, e));
        match opened {
            Err(StoreError::InUse { .. }) if started.elapsed() < LOCK_RELEASE_WAIT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Why sled could not open the database: another process holding it and an I/O failure
/// are not corruption, and removing the dir would be the wrong advice for them.
fn open_error(db_path: &Path, e: sled::Error) -> StoreError {
    match e {
        // sled reports a failed `flock` as a plain I/O error; the text is all that tells it apart.
        sled::Error::Io(e) if e.to_string().contains("could not acquire lock") => StoreError::InUse {
            path: db_path.to_path_buf(),
        },
        sled::Error::Io(source) => StoreError::Io {
            path: db_path.to_path_buf(),
            source,
        },
        e => corrupt(db_path, format!("sled cannot open it: {e}")),
    }
}

/// Refuses a db stamped with a format newer than this binary reads, before reading any
/// value of it; stamps a new or pre-versioning db with the current format.
fn check_format(db: &sled::Db, data_dir: &Path, db_path: &Path) -> Result<(), StoreError> {
    match format::check_and_stamp(db) {
        Ok(_) => Ok(()),
        Err(format::FormatRefused::TooNew(found)) => Err(StoreError::NewerFormat {
            path: data_dir.to_path_buf(),
            found,
        }),
        Err(format::FormatRefused::Unreadable(stamp)) => {
            Err(corrupt(db_path, format!("unreadable data format stamp {stamp:?}")))
        }
        Err(format::FormatRefused::Sled(source)) => Err(StoreError::Io {
            path: db_path.to_path_buf(),
            source,
        }),
    }
}

/// A value that could not be read at open: of a format this binary does not read (the
/// stamp said otherwise, so only a hand-made or mixed-up dir), or corrupt.
fn unreadable(data_dir: &Path, db_path: &Path, e: std::io::Error) -> StoreError {
    match codec::wire_error(&e) {
        Some(wire) if wire.is_version_mismatch() => StoreError::UnreadableFormat {
            path: data_dir.to_path_buf(),
            detail: wire.to_string(),
        },
        _ => corrupt(db_path, e.to_string()),
    }
}

fn corrupt(path: &Path, detail: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail,
    }
}

/// What [`check_identity`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Identity {
    /// An empty dir, now claimed with a `v3` identity.
    New,
    /// A `v3` dir.
    Current,
    /// A `v1` or `v2` dir, to upgrade (the crate root says what each held where).
    Older,
}

/// Checks (or, in an empty dir, writes) the identity file.
fn check_identity(data_dir: &Path, cluster_id: &str, node_id: NodeId) -> Result<Identity, StoreError> {
    let io_err = |source| StoreError::Io {
        path: data_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(io_err)?;
    make_private(data_dir)?;
    let identity_path = data_dir.join(IDENTITY_FILE);
    match std::fs::read_to_string(&identity_path) {
        Ok(found) => {
            let Some((found_cluster, found_node)) = parse_identity(&found) else {
                return Err(corrupt(
                    &identity_path,
                    format!("unreadable {IDENTITY_FILE} file: {found:?}"),
                ));
            };
            if found_cluster == cluster_id && found_node == node_id {
                return Ok(if found.starts_with(IDENTITY_PREFIX) {
                    Identity::Current
                } else {
                    Identity::Older
                });
            }
            Err(StoreError::IdentityMismatch {
                path: data_dir.to_path_buf(),
                found_cluster,
                found_node,
                cluster: cluster_id.to_string(),
                node: node_id,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err(corrupt(&identity_path, format!("{IDENTITY_FILE} is not text: {e}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A leftover temp file is ours: a crash before its rename into place.
            let mut entries = std::fs::read_dir(data_dir).map_err(io_err)?;
            let foreign = entries.try_fold(false, |foreign, entry| {
                Ok::<_, std::io::Error>(foreign || entry?.file_name() != IDENTITY_TMP_FILE)
            });
            if foreign.map_err(io_err)? {
                return Err(StoreError::ForeignDir {
                    path: data_dir.to_path_buf(),
                });
            }
            write_identity(data_dir, cluster_id, node_id).map_err(io_err)?;
            Ok(Identity::New)
        }
        Err(e) => Err(io_err(e)),
    }
}

/// `raftsched-data-dir v3 cluster=<id> node=<id>` (or `v2`, `v1`) → (cluster, node).
fn parse_identity(text: &str) -> Option<(String, NodeId)> {
    let text = text.strip_suffix('\n')?;
    let rest = text
        .strip_prefix(IDENTITY_PREFIX)
        .or_else(|| text.strip_prefix(IDENTITY_PREFIX_V2))
        .or_else(|| text.strip_prefix(IDENTITY_PREFIX_V1))?
        .strip_prefix(" cluster=")?;
    let (cluster, node) = rest.rsplit_once(" node=")?;
    if cluster.is_empty() || cluster.contains(char::is_whitespace) {
        return None;
    }
    Some((cluster.to_string(), node.parse().ok()?))
}

/// Directories in a data dir are the node's user's only (0700), whatever the umask made
/// them: the log and the snapshot hold every task's environment, and a closed directory
/// keeps other users from every file in it, including those sled creates later.
const DIR_MODE: u32 = 0o700;

fn make_private(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE)).map_err(|source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn write_identity(data_dir: &Path, cluster_id: &str, node_id: NodeId) -> std::io::Result<()> {
    let identity = format!("{IDENTITY_PREFIX} cluster={cluster_id} node={node_id}\n");
    write_durably(data_dir, identity.as_bytes())
}

/// Writes `IDENTITY` atomically and durably: a temp file, fsynced, renamed into place, and
/// the directory fsynced so the rename itself survives a crash.
fn write_durably(data_dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp_path = data_dir.join(IDENTITY_TMP_FILE);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(snapshot_file::FILE_MODE)
        .open(&tmp_path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp_path, data_dir.join(IDENTITY_FILE))?;
    std::fs::File::open(data_dir)?.sync_all()
}
