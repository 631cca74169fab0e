//! [`Flusher`]: makes every write made so far durable, one fsync at a time, with concurrent
//! requests sharing one fsync. One flushes sled (the vote, the purge point), one the log's
//! last segment file.
//!
//! sled 0.34's `flush_async` hangs when several calls are in flight at once (sled issues
//! #1241, #1308, #1357, fixed only on its unreleased main branch): the futures are never
//! woken. Appends, votes and snapshots all flush concurrently here, so this module runs the
//! synchronous `Db::flush` on tokio's blocking pool instead, never more than one at a time.

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use crate::codec::sled_err;

pub struct Flusher {
    /// The fsync: run on the blocking pool, one at a time.
    sync: Arc<dyn Fn() -> io::Result<()> + Send + Sync>,
    /// Flush requests issued so far; a request's ticket is its number.
    requested: AtomicU64,
    /// The highest ticket whose writes a completed fsync covers. Held across the fsync, so
    /// that only one runs at a time and waiters queue in order.
    completed: tokio::sync::Mutex<u64>,
}

impl Flusher {
    /// Flushes sled's `db`.
    pub fn new(db: sled::Db) -> Flusher {
        Flusher::with(move || db.flush().map(|_| ()).map_err(sled_err))
    }

    /// Runs `sync`, which must make every write made before it started durable.
    pub fn with(sync: impl Fn() -> io::Result<()> + Send + Sync + 'static) -> Flusher {
        Flusher {
            sync: Arc::new(sync),
            requested: AtomicU64::new(0),
            completed: tokio::sync::Mutex::new(0),
        }
    }

    /// Returns once every write made before this call is on disk.
    ///
    /// A caller's writes precede its ticket, and an fsync that starts after a ticket was
    /// issued covers them; so whoever runs an fsync may mark as done every ticket issued
    /// before it started, and the callers queued behind it return without another fsync.
    pub async fn flush(&self) -> io::Result<()> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut completed = self.completed.lock().await;
        if *completed >= ticket {
            return Ok(());
        }
        let covered = self.requested.load(Ordering::SeqCst);
        let sync = Arc::clone(&self.sync);
        tokio::task::spawn_blocking(move || sync())
            .await
            .map_err(|e| io::Error::other(format!("flush task failed: {e}")))??;
        *completed = covered;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many flushes at once all return (sled's `flush_async` would leave some pending
    /// forever), and they share fsyncs rather than queueing one each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_flushes_all_return() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let flusher = Arc::new(Flusher::new(db.clone()));
        let tasks: Vec<_> = (0..200u32)
            .map(|i| {
                let flusher = Arc::clone(&flusher);
                let db = db.clone();
                tokio::spawn(async move {
                    db.insert(i.to_be_bytes(), vec![1]).unwrap();
                    flusher.flush().await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(
            *flusher.completed.lock().await,
            flusher.requested.load(Ordering::SeqCst)
        );
    }
}
