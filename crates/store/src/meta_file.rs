//! [`MetaFile`]: the vote, the committed log id and the purge point, in `meta`, a file of two
//! fixed slots that is overwritten in place and never grows.
//!
//! Why not sled: these three values are rewritten all the time (the committed id once a
//! second, the purge point on every snapshot) and are the only values sled still wrote.
//! Each flush of those few bytes took sled 0.34 a fresh stretch of its own log, and in the
//! 30-minute soak at 1,000 tasks/s its file swung between ~40 KB and ~4 MB as segments
//! filled and were cleaned: half the data dir's 4 MiB level
//! (bench/results/2026-12-02-1838-soak.csv). etcd keeps the same values in its WAL for the
//! same reason; here they are small enough for a file of their own.
//!
//! A slot is `seq u64 | len u32 | crc32 u32 | payload`, zero-padded to [`SLOT_BYTES`]; the
//! crc covers seq, len and the payload, an encoded [`Meta`] with the whole of it. Every
//! write goes to the slot that does *not* hold the last fsynced record, so a write torn by a
//! crash (or one not yet fsynced and lost) leaves that record whole. Open takes the readable
//! slot with the higher sequence number. A record that was not fsynced may still be read
//! back: it carries the vote and purge point of the fsynced one or later ones (records hold
//! the whole state, and only the committed id is ever written without an fsync), so nothing
//! acknowledged goes backwards.
//!
//! Synchronous and not shared; [`crate::LogStore`] wraps it in a mutex and calls it on the
//! blocking pool.

use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::Deserialize;
use serde::Serialize;

use crate::codec::decode;
use crate::codec::encode;
use crate::raft_types::LogId;
use crate::raft_types::Vote;
use crate::snapshot_file::FILE_MODE;

pub(crate) const META_FILE: &str = "meta";
/// Where a new meta file is written before it is renamed into place, so a file named
/// `meta` is always whole.
const META_TMP_FILE: &str = "meta.tmp";
/// One disk sector. The two slots are what make a torn write harmless; that a sector-sized
/// write is atomic on most devices is only a bonus.
const SLOT_BYTES: usize = 512;
const SLOT_COUNT: usize = 2;
/// seq, len, crc.
const SLOT_HEADER_BYTES: usize = 16;
/// A [`Meta`] with every number at u64::MAX encodes to well under 100 bytes (a test pins it).
const SLOT_PAYLOAD_BYTES: usize = SLOT_BYTES - SLOT_HEADER_BYTES;
const _: () = assert!(SLOT_PAYLOAD_BYTES >= 256);

/// What the file holds; every write replaces the whole of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub vote: Option<Vote>,
    pub committed: Option<LogId>,
    pub last_purged: Option<LogId>,
}

pub(crate) struct MetaFile {
    file: File,
    meta: Meta,
    /// The sequence number of the last record written.
    seq: u64,
    /// The slot holding the last fsynced record, which no write may overwrite.
    durable_slot: usize,
}

impl MetaFile {
    /// Opens `dir/meta`. A dir without one gets one holding `initial()` (the values an
    /// older release kept in sled, or none), written durably before this returns.
    pub(crate) fn open(dir: &Path, initial: impl FnOnce() -> io::Result<Meta>) -> io::Result<MetaFile> {
        let path = dir.join(META_FILE);
        match std::fs::remove_file(dir.join(META_TMP_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        if !path.try_exists()? {
            create(dir, &initial()?)?;
        }
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let mut bytes = vec![0_u8; SLOT_BYTES * SLOT_COUNT];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| damaged(format!("{} is shorter than its two slots: {e}", path.display())))?;
        let newest = bytes
            .chunks_exact(SLOT_BYTES)
            .enumerate()
            .filter_map(|(slot, bytes)| read_slot(bytes).map(|(seq, payload)| (seq, slot, payload)))
            .max_by_key(|(seq, _, _)| *seq);
        let Some((seq, slot, payload)) = newest else {
            return Err(damaged(format!(
                "neither slot of {} holds a readable record",
                path.display()
            )));
        };
        Ok(MetaFile {
            file,
            meta: decode(payload, "meta")?,
            seq,
            durable_slot: slot,
        })
    }

    pub(crate) fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Replaces the record with `meta`; durable on return when `sync`.
    pub(crate) fn write(&mut self, meta: Meta, sync: bool) -> io::Result<()> {
        // One write a second would take 585 billion years to get here; only a hand-made
        // file starts near it, and it is refused rather than wrapped below the other slot.
        let seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| damaged(format!("meta record sequence number {} cannot grow", self.seq)))?;
        let slot = 1 - self.durable_slot;
        let record = record(seq, &meta)?;
        self.file.write_all_at(&record, (slot * SLOT_BYTES) as u64)?;
        self.seq = seq;
        self.meta = meta;
        if sync {
            self.file.sync_data()?;
            self.durable_slot = slot;
        }
        Ok(())
    }
}

/// Writes a whole new file: `meta` in slot 0, slot 1 empty.
fn create(dir: &Path, meta: &Meta) -> io::Result<()> {
    let mut bytes = record(1, meta)?;
    bytes.resize(SLOT_BYTES * SLOT_COUNT, 0);
    let tmp_path = dir.join(META_TMP_FILE);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&tmp_path)?;
    file.write_all_at(&bytes, 0)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp_path, dir.join(META_FILE))?;
    File::open(dir)?.sync_all()
}

/// One slot's bytes for `meta` under `seq`.
fn record(seq: u64, meta: &Meta) -> io::Result<Vec<u8>> {
    let payload = encode(meta);
    if payload.len() > SLOT_PAYLOAD_BYTES {
        return Err(io::Error::other(format!(
            "meta record of {} bytes does not fit a {SLOT_PAYLOAD_BYTES}-byte slot",
            payload.len()
        )));
    }
    let mut bytes = Vec::with_capacity(SLOT_BYTES);
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&checksum(seq, &payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    bytes.resize(SLOT_BYTES, 0);
    Ok(bytes)
}

/// The sequence number and payload of a slot, if its checksum holds.
fn read_slot(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let seq = u64::from_le_bytes(bytes[0..8].try_into().ok()?);
    let len = u32::from_le_bytes(bytes[8..12].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes[12..16].try_into().ok()?);
    let payload = bytes.get(SLOT_HEADER_BYTES..SLOT_HEADER_BYTES.checked_add(len)?)?;
    (seq > 0 && checksum(seq, payload) == crc).then_some((seq, payload))
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(&(payload.len() as u32).to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn damaged(detail: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail)
}

#[cfg(test)]
mod tests {
    use openraft::vote::RaftLeaderIdExt;

    use super::*;
    use crate::raft_types::TypeConfig;

    use crate::raft_types::test_log_id as log_id;

    fn meta(term: u64, committed: u64) -> Meta {
        Meta {
            vote: Some(Vote::new_committed(term, 1)),
            committed: Some(log_id(term, committed)),
            last_purged: Some(log_id(term, committed / 2)),
        }
    }

    fn none() -> io::Result<Meta> {
        Ok(Meta::default())
    }

    #[test]
    fn the_largest_record_fits_a_slot() {
        let max = LogId::new(
            <TypeConfig as openraft::RaftTypeConfig>::LeaderId::new_committed(u64::MAX, u64::MAX),
            u64::MAX,
        );
        let largest = Meta {
            vote: Some(Vote::new_committed(u64::MAX, u64::MAX)),
            committed: Some(max),
            last_purged: Some(max),
        };
        assert!(encode(&largest).len() < 100, "{} bytes", encode(&largest).len());
    }

    #[test]
    fn a_new_file_holds_the_initial_values_and_later_writes_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = MetaFile::open(dir.path(), || Ok(meta(3, 10))).unwrap();
        assert_eq!(file.meta(), &meta(3, 10));
        drop(file);
        let mut file = MetaFile::open(dir.path(), || panic!("the file exists")).unwrap();
        for committed in 11..20 {
            file.write(meta(3, committed), committed % 3 == 0).unwrap();
        }
        drop(file);
        let file = MetaFile::open(dir.path(), none).unwrap();
        assert_eq!(file.meta(), &meta(3, 19));
        let size = std::fs::metadata(dir.path().join(META_FILE)).unwrap().len();
        assert_eq!(size, (SLOT_BYTES * SLOT_COUNT) as u64, "the file never grows");
    }

    /// A crash tearing any write, synced or not, leaves the last synced record readable.
    #[test]
    fn a_torn_write_falls_back_to_the_last_synced_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(META_FILE);
        let mut file = MetaFile::open(dir.path(), none).unwrap();
        file.write(meta(5, 1), true).unwrap();
        // Unsynced writes go to the other slot; tear it.
        file.write(meta(5, 2), false).unwrap();
        file.write(meta(5, 3), false).unwrap();
        let unsynced_slot = 1 - file.durable_slot;
        drop(file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[unsynced_slot * SLOT_BYTES + SLOT_HEADER_BYTES] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(MetaFile::open(dir.path(), none).unwrap().meta(), &meta(5, 1));
        // A synced write torn halfway: the record before it is still there.
        let mut file = MetaFile::open(dir.path(), none).unwrap();
        file.write(meta(6, 4), true).unwrap();
        let before = file.durable_slot;
        file.write(meta(7, 5), true).unwrap();
        assert_ne!(
            file.durable_slot, before,
            "a synced write does not overwrite the last one"
        );
        drop(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let torn = (1 - before) * SLOT_BYTES;
        bytes[torn..torn + SLOT_BYTES / 2].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(MetaFile::open(dir.path(), none).unwrap().meta(), &meta(6, 4));
    }

    #[test]
    fn a_file_with_no_readable_slot_or_cut_short_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(META_FILE);
        drop(MetaFile::open(dir.path(), none).unwrap());
        std::fs::write(&path, vec![0xAB; SLOT_BYTES * SLOT_COUNT]).unwrap();
        let err = MetaFile::open(dir.path(), none).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("neither slot"), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        std::fs::write(&path, vec![0; SLOT_BYTES]).unwrap();
        let err = MetaFile::open(dir.path(), none).err().unwrap();
        assert!(err.to_string().contains("shorter than its two slots"), "{err}");
    }

    /// A slot claiming the largest sequence number (only a hand-made file does): read, but
    /// the next write is refused instead of wrapping to a number below the other slot's.
    #[test]
    fn a_record_at_the_largest_sequence_number_is_not_wrapped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(META_FILE);
        drop(MetaFile::open(dir.path(), none).unwrap());
        let mut bytes = record(u64::MAX, &meta(9, 9)).unwrap();
        bytes.resize(SLOT_BYTES * SLOT_COUNT, 0);
        std::fs::write(&path, &bytes).unwrap();
        let mut file = MetaFile::open(dir.path(), none).unwrap();
        assert_eq!(file.meta(), &meta(9, 9));
        let err = file.write(meta(9, 10), true).err().unwrap();
        assert!(err.to_string().contains("cannot grow"), "{err}");
        assert_eq!(MetaFile::open(dir.path(), none).unwrap().meta(), &meta(9, 9));
    }

    #[test]
    fn a_temp_file_left_by_a_crash_is_removed_and_the_initial_values_written() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_TMP_FILE), b"half").unwrap();
        let file = MetaFile::open(dir.path(), || Ok(meta(2, 2))).unwrap();
        assert_eq!(file.meta(), &meta(2, 2));
        assert!(!dir.path().join(META_TMP_FILE).exists());
    }
}
