//! [`LogStore`]: the Raft log, vote and commit point in sled.

use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::OptionalSend;
use openraft::storage::IOFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogReader;
use openraft::storage::RaftLogStorage;

use crate::codec::decode;
use crate::codec::encode;
use crate::codec::index_key;
use crate::codec::sled_err;
use crate::flush::Flusher;
use crate::growth::LogGrowth;
use crate::raft_types::Entry;
use crate::raft_types::LogId;
use crate::raft_types::TypeConfig;
use crate::raft_types::Vote;

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const LAST_PURGED_KEY: &[u8] = b"last_purged";

/// The Raft log on sled. Cloning is cheap and every clone sees the same trees, so the
/// log reader handed to replication tasks is a clone.
#[derive(Clone)]
pub struct LogStore {
    flusher: Arc<Flusher>,
    /// Entries keyed by big-endian index.
    log: sled::Tree,
    /// Vote, committed log id and last purged log id.
    meta: sled::Tree,
    /// Counts the bytes appended, for the snapshot trigger.
    growth: Arc<LogGrowth>,
}

impl LogStore {
    pub(super) fn flusher_weak(&self) -> std::sync::Weak<Flusher> {
        Arc::downgrade(&self.flusher)
    }

    /// Opens the trees and decodes what recovery will need, so a corrupt store is found
    /// at start-up rather than in the middle of an election.
    pub(super) fn open(db: &sled::Db, flusher: Arc<Flusher>, growth: Arc<LogGrowth>) -> io::Result<LogStore> {
        let store = LogStore {
            flusher,
            growth,
            log: db.open_tree("log").map_err(sled_err)?,
            meta: db.open_tree("meta").map_err(sled_err)?,
        };
        store.read_meta::<Vote>(VOTE_KEY)?;
        store.read_meta::<LogId>(COMMITTED_KEY)?;
        // A crash between recording a purge and removing its entries leaves entries at or
        // below the purge point; finish that purge, so the log is exactly what
        // get_log_state describes.
        if let Some(last_purged) = store.read_meta::<LogId>(LAST_PURGED_KEY)? {
            store.remove_range(..=index_key(last_purged.index))?;
        }
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
        self.flusher.flush().await
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
        // An entry at or below the purge point (a purge past the last entry, or one whose
        // removal was interrupted) is not the end of the log: the purge point is.
        let last_log_id = match (self.last_entry_log_id()?, last_purged_log_id) {
            (Some(entry), Some(purged)) if entry.index <= purged.index => Some(purged),
            (Some(entry), _) => Some(entry),
            (None, purged) => purged,
        };
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
        let mut appended_bytes = 0;
        for entry in entries {
            let encoded = encode(&entry);
            appended_bytes += encoded.len();
            batch.insert(&index_key(entry.log_id.index), encoded);
        }
        self.growth.add_appended(appended_bytes);
        self.log.apply_batch(batch).map_err(sled_err)?;
        // A crash after the entries are written but before they are flushed.
        fail::fail_point!("append-before-flush", |_| Err(io::Error::other(
            "failpoint append-before-flush"
        )));
        // Report durability only once the entries are on disk, but do not make the next
        // append wait for this fsync: appends pipeline, and one fsync covers every write
        // made before it, so concurrent flushes coalesce.
        let flusher = Arc::clone(&self.flusher);
        tokio::spawn(async move {
            let flushed = flusher.flush().await;
            // Release the database before reporting, so that once every callback has run no
            // task holds it open (sled locks the data dir until the last handle is gone).
            drop(flusher);
            callback.io_completed(flushed);
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let first_removed = match last_log_id {
            None => 0,
            Some(log_id) => match log_id.index.checked_add(1) {
                Some(index) => index,
                None => return Ok(()),
            },
        };
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

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;
    use openraft::storage::RaftLogStorageExt;
    use openraft::vote::RaftLeaderIdExt;

    use super::*;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(
            <TypeConfig as openraft::RaftTypeConfig>::LeaderId::new_committed(term, 1),
            index,
        )
    }

    fn open(db: &sled::Db) -> LogStore {
        LogStore::open(db, Arc::new(Flusher::new(db.clone())), Arc::default()).unwrap()
    }

    /// A crash between recording a purge and removing its entries: the purge point is the
    /// end of the log, not the stale entries below it, and reopening finishes the purge.
    #[tokio::test]
    async fn an_interrupted_purge_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let mut store = open(&db);
        let entries = (1..=3).map(|index| Entry {
            log_id: log_id(1, index),
            payload: EntryPayload::Blank,
        });
        store.blocking_append(entries).await.unwrap();
        // What purge(log_id(2, 5)) writes first, without the removal that follows it.
        store.write_meta(LAST_PURGED_KEY, &log_id(2, 5)).unwrap();

        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(2, 5)));
        assert_eq!(state.last_log_id, Some(log_id(2, 5)));

        let mut reopened = open(&db);
        assert!(reopened.try_get_log_entries(..).await.unwrap().is_empty());
        let state = reopened.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(2, 5)));
    }

    #[tokio::test]
    async fn truncate_after_the_largest_index_removes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let mut store = open(&db);
        store
            .blocking_append([Entry {
                log_id: log_id(1, 1),
                payload: EntryPayload::Blank,
            }])
            .await
            .unwrap();
        store.truncate_after(Some(log_id(1, u64::MAX))).await.unwrap();
        assert_eq!(store.try_get_log_entries(..).await.unwrap().len(), 1);
    }
}
