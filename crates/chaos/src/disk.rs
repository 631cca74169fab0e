//! [`DiskStress`]: a noisy neighbour on the disk of the data dirs — a thread that writes
//! and fsyncs a scratch file in a loop, so every other fsync on that disk gets slow. No root
//! needed. A slow fsync widens the window in which a leader has sent entries to its
//! followers but not yet made them durable itself, which is what a crash then exposes.

use std::fs::File;
use std::fs::OpenOptions;
use std::io::Seek;
use std::io::SeekFrom;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

/// Bytes written between two fsyncs.
const CHUNK_BYTES: usize = 64 * 1024 * 1024;
/// The scratch file wraps around at this size.
const FILE_BYTES: u64 = 128 * 1024 * 1024;

/// Stops (and removes its scratch file) when dropped.
pub struct DiskStress {
    stop: Arc<AtomicBool>,
    fsyncs: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl DiskStress {
    /// Starts writing `dir/disk-stress.tmp`.
    pub fn start(dir: &Path) -> std::io::Result<DiskStress> {
        let path = dir.join("disk-stress.tmp");
        let file = OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let fsyncs = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = stop.clone();
            let fsyncs = fsyncs.clone();
            std::thread::Builder::new()
                .name("chaos-disk-stress".into())
                .spawn(move || write_until_stopped(file, &stop, &fsyncs))?
        };
        Ok(DiskStress {
            stop,
            fsyncs,
            thread: Some(thread),
            path,
        })
    }

    /// Fsyncs done so far.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }
}

fn write_until_stopped(mut file: File, stop: &AtomicBool, fsyncs: &AtomicU64) {
    let chunk = vec![0x5au8; CHUNK_BYTES];
    let mut offset = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if offset >= FILE_BYTES {
            offset = 0;
            if file.seek(SeekFrom::Start(0)).is_err() {
                return;
            }
        }
        if file.write_all(&chunk).is_err() || file.sync_data().is_err() {
            return;
        }
        offset += CHUNK_BYTES as u64;
        fsyncs.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for DiskStress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
