//! [`LogStore`]: the Raft log, vote and commit point in sled.

use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;

use openraft::OptionalSend;
use openraft::storage::IOFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogReader;
use openraft::storage::RaftLogStorage;

use crate::raft_types::Entry;
use crate::raft_types::LogId;
use crate::raft_types::TypeConfig;
use crate::raft_types::Vote;
use crate::store::codec::decode;
use crate::store::codec::encode;
use crate::store::codec::index_key;
use crate::store::codec::sled_err;

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const LAST_PURGED_KEY: &[u8] = b"last_purged";

/// The Raft log on sled. Cloning is cheap and every clone sees the same trees, so the
/// log reader handed to replication tasks is a clone.
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    /// Entries keyed by big-endian index.
    log: sled::Tree,
    /// Vote, committed log id and last purged log id.
    meta: sled::Tree,
}

impl LogStore {
    /// Opens the trees and decodes what recovery will need, so a corrupt store is found
    /// at start-up rather than in the middle of an election.
    pub(super) fn open(db: &sled::Db) -> io::Result<LogStore> {
        let store = LogStore {
            db: db.clone(),
            log: db.open_tree("log").map_err(sled_err)?,
            meta: db.open_tree("meta").map_err(sled_err)?,
        };
        store.read_meta::<Vote>(VOTE_KEY)?;
        store.read_meta::<LogId>(COMMITTED_KEY)?;
        store.read_meta::<LogId>(LAST_PURGED_KEY)?;
        store.last_entry_log_id()?;
        Ok(store)
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        match self.meta.get(key).map_err(sled_err)? {
            Some(bytes) => decode(&bytes, std::str::from_utf8(key).unwrap_or("meta")).map(Some),
            None => Ok(None),
        }
    }

    fn write_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> io::Result<()> {
        self.meta.insert(key, encode(value)).map_err(sled_err)?;
        Ok(())
    }

    fn last_entry_log_id(&self) -> io::Result<Option<LogId>> {
        match self.log.last().map_err(sled_err)? {
            Some((_, bytes)) => Ok(Some(decode::<Entry>(&bytes, "log entry")?.log_id)),
            None => Ok(None),
        }
    }

    async fn flush(&self) -> io::Result<()> {
        self.db.flush_async().await.map_err(sled_err)?;
        Ok(())
    }

    /// Removes every entry in `range` of keys.
    fn remove_range(&self, range: impl RangeBounds<[u8; 8]>) -> io::Result<()> {
        let mut batch = sled::Batch::default();
        for key in self.log.range(range) {
            let (key, _) = key.map_err(sled_err)?;
            batch.remove(key);
        }
        self.log.apply_batch(batch).map_err(sled_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => Bound::Included(index_key(i)),
            Bound::Excluded(&i) => Bound::Excluded(index_key(i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Bound::Included(index_key(i)),
            Bound::Excluded(&i) => Bound::Excluded(index_key(i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.log
            .range((start, end))
            .map(|item| {
                let (_, bytes) = item.map_err(sled_err)?;
                decode::<Entry>(&bytes, "log entry")
            })
            .collect()
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.read_meta(VOTE_KEY)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> = self.read_meta(LAST_PURGED_KEY)?;
        let last_log_id = self.last_entry_log_id()?.or_else(|| last_purged_log_id.clone());
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        self.write_meta(VOTE_KEY, vote)?;
        self.flush().await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        // Not flushed: a committed id lost in a crash is learnt again from the leader; it only
        // lets a restarted node re-apply its own log without waiting for one.
        match committed {
            Some(log_id) => self.write_meta(COMMITTED_KEY, &log_id),
            None => self.meta.remove(COMMITTED_KEY).map(|_| ()).map_err(sled_err),
        }
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        self.read_meta(COMMITTED_KEY)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            batch.insert(&index_key(entry.log_id.index), encode(&entry));
        }
        self.log.apply_batch(batch).map_err(sled_err)?;
        // Report durability only once the entries are on disk, but do not make the next
        // append wait for this fsync: appends pipeline, and one fsync covers every write
        // made before it, so concurrent flushes coalesce.
        let store = self.clone();
        tokio::spawn(async move {
            callback.io_completed(store.flush().await);
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let first_removed = last_log_id.map_or(0, |log_id| log_id.index + 1);
        self.remove_range(index_key(first_removed)..)?;
        self.flush().await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        // Record the purge point first: a crash between the two steps leaves entries that
        // are merely redundant, never a gap that get_log_state cannot explain.
        self.write_meta(LAST_PURGED_KEY, &log_id)?;
        self.flush().await?;
        self.remove_range(..=index_key(log_id.index))
    }
}
