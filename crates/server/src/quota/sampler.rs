//! The high-water sampler: every [`SAMPLE_INTERVAL`] a node measures its resident memory and
//! its data dir and hands the figures to its [`Guard`], which raises or clears the alarms.

use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Guard;

/// How often a node samples itself. An alarm therefore shows within 2 s of its figure
/// passing the mark, and the walk of the data dir (a few hundred sled files) costs well
/// under 1% of a core at this rate.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// Entries the data dir walk visits at most. sled keeps a handful of files per dir; an
/// operator's stray tree of millions must not make each sample take seconds. A walk cut at
/// the bound reports what it counted (an underestimate, logged once at debug).
const MAX_WALK_ENTRIES: usize = 100_000;
/// Directory depth the walk descends at most (sled's layout is 2 deep).
const MAX_WALK_DEPTH: usize = 8;

/// Samples at once, then every [`SAMPLE_INTERVAL`], until `shutdown`.
pub fn spawn(guard: Guard, data_dir: PathBuf, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let dir = data_dir.clone();
            // The walk is blocking file system work: off the async threads.
            let sample = tokio::task::spawn_blocking(move || (resident_bytes(), dir_bytes(&dir))).await;
            if let Ok((rss, dir_bytes)) = sample {
                guard.record_sample(rss, dir_bytes);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(SAMPLE_INTERVAL) => {}
            }
        }
    })
}

/// This process's resident set (VmRSS of /proc/self/status); None off Linux. In a test
/// process running several nodes, each reports the whole process.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The apparent size of every file under `root` (symlinks not followed), within the walk's
/// bounds. None when `root` itself cannot be read.
pub fn dir_bytes(root: &Path) -> Option<u64> {
    let mut total = 0u64;
    let mut visited = 0usize;
    let mut stack = vec![(std::fs::read_dir(root).ok()?, 0usize)];
    while let Some((mut entries, depth)) = stack.pop() {
        let Some(entry) = entries.next() else { continue };
        stack.push((entries, depth));
        visited += 1;
        if visited > MAX_WALK_ENTRIES {
            tracing::debug!(dir = %root.display(), "data dir walk stopped at {MAX_WALK_ENTRIES} entries");
            break;
        }
        let Ok(entry) = entry else { continue };
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() && depth < MAX_WALK_DEPTH {
            if let Ok(children) = std::fs::read_dir(entry.path()) {
                stack.push((children, depth + 1));
            }
        } else if kind.is_file()
            && let Ok(metadata) = entry.metadata()
        {
            total = total.saturating_add(metadata.len());
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_counts_nested_files_and_a_missing_dir_is_none() {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::write(root.path().join("a"), vec![0u8; 100]).expect("write");
        std::fs::create_dir_all(root.path().join("d/e")).expect("mkdir");
        std::fs::write(root.path().join("d/e/b"), vec![0u8; 23]).expect("write");
        assert_eq!(dir_bytes(root.path()), Some(123));
        assert_eq!(dir_bytes(&root.path().join("missing")), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        if cfg!(target_os = "linux") {
            assert!(resident_bytes().expect("VmRSS on Linux") > 0);
        }
    }
}
