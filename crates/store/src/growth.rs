//! [`LogGrowth`]: how much log has been written since the last snapshot, against the size of
//! that snapshot — what decides when the next snapshot is worth taking.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

/// Counters shared by the log store (writer of `appended_bytes`), the snapshot slot (writer
/// of `snapshot_bytes`) and the node's snapshot trigger (reader). Relaxed atomics: the
/// figures steer a heuristic and need no ordering with anything else.
#[derive(Debug, Default)]
pub struct LogGrowth {
    /// Encoded bytes of every entry appended since this process opened the store.
    appended_bytes: AtomicU64,
    /// Size of the last snapshot saved or loaded (its image: what the next encode reserves).
    snapshot_bytes: AtomicU64,
    /// Size of its file on disk (compressed): what the log is weighed against.
    snapshot_file_bytes: AtomicU64,
}

impl LogGrowth {
    pub fn appended_bytes(&self) -> u64 {
        self.appended_bytes.load(Ordering::Relaxed)
    }

    pub fn snapshot_bytes(&self) -> u64 {
        self.snapshot_bytes.load(Ordering::Relaxed)
    }

    pub fn snapshot_file_bytes(&self) -> u64 {
        self.snapshot_file_bytes.load(Ordering::Relaxed)
    }

    pub(super) fn add_appended(&self, bytes: usize) {
        self.appended_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(super) fn set_snapshot(&self, bytes: usize, file_bytes: u64) {
        self.snapshot_bytes.store(bytes as u64, Ordering::Relaxed);
        self.snapshot_file_bytes.store(file_bytes, Ordering::Relaxed);
    }
}
