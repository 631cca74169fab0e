//! [`Segments`]: the Raft log's entries in append-only segment files, `log/<first index>.seg`,
//! each dropped whole once a purge passes its last entry.
//!
//! Why not sled: sled 0.34 reclaims the space of removed keys late, so a log that is appended
//! and purged at the same rate grew a data dir from 37 to 86 MiB in 30 minutes of the soak at
//! 1,000 tasks/s (bench/results/2026-12-02-0843-soak.csv), and writes each entry more than
//! once. Here an entry is written once, and a purge is an unlink.
//!
//! A record is `index u64 | len u32 | crc32 u32 | payload` (little endian; the crc covers the
//! index, the length and the payload), the payload an encoded entry. Entries are contiguous:
//! a segment's records run from the index its name gives, and the next segment starts where
//! it ends. A segment is rolled over once it holds [`SEGMENT_BYTES`]; its file is fsynced
//! before the next one is created, and a created file's directory entry is fsynced before
//! anything is written to it, so [`Segments::sync`] (one `fdatasync` of the last segment)
//! makes every appended record durable.
//!
//! At open every record is checked. A torn tail of the last segment (a crash in the middle
//! of an append that was never acknowledged) is cut off; anything else unreadable or out
//! of sequence is corruption and refuses the open.
//!
//! The struct is synchronous and not shared; [`crate::LogStore`] wraps it in a mutex.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use crate::snapshot_file::FILE_MODE;

/// A segment is closed once it holds this much (one entry bigger than that makes a segment
/// of its own size). A purge frees whole segments, so up to one segment of purged entries
/// stays on disk: 256 KiB keeps that within ±4% of the soak's ~6.5 MiB data dir beside a
/// log of ≥ 512 KiB between snapshots (1 MiB segments swung it by ±15% alone), at the cost
/// of a file creation and two fsyncs per 256 KiB of log (~2 a second at 1,000 tasks/s).
pub const SEGMENT_BYTES: u64 = 256 * 1024;
/// A record's header: index, length, crc.
const HEADER_BYTES: usize = 16;
/// No single entry is bigger than this (the largest command is a batch of 1,000 tasks of at
/// most 64 KiB each, plus their specs); a length above it is a corrupt header, not an
/// allocation to make.
pub const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;
const EXTENSION: &str = "seg";

/// Where one entry is.
#[derive(Debug, Clone, Copy)]
struct Slot {
    offset: u64,
    len: u32,
}

/// One segment file and the entries in it, in index order from `first`.
#[derive(Debug)]
struct Segment {
    first: u64,
    file: Arc<File>,
    path: PathBuf,
    slots: Vec<Slot>,
    /// Bytes of whole records: where the next one goes.
    end: u64,
}

impl Segment {
    /// The index after the last entry.
    fn next_index(&self) -> u64 {
        self.first + self.slots.len() as u64
    }
}

/// What [`Segments::read`] needs to read one entry outside the lock.
#[derive(Debug, Clone)]
pub struct Location {
    file: Arc<File>,
    slot: Slot,
    index: u64,
}

impl Location {
    /// The entry's payload, its crc checked again (the file may have been damaged since
    /// open, and a bad entry must never reach Raft as a good one).
    pub fn read(&self) -> io::Result<Vec<u8>> {
        let mut record = vec![0_u8; HEADER_BYTES + self.slot.len as usize];
        self.file.read_exact_at(&mut record, self.slot.offset)?;
        match parse_record(&record) {
            Some((index, payload)) if index == self.index && payload.len() == record.len() - HEADER_BYTES => {
                Ok(payload.to_vec())
            }
            _ => Err(invalid(format!(
                "log entry {} does not read back as written",
                self.index
            ))),
        }
    }
}

/// The segment files of one log.
#[derive(Debug)]
pub struct Segments {
    dir: PathBuf,
    /// By first index.
    segments: BTreeMap<u64, Segment>,
    /// Entries below this index are purged: still in the first segment until all of its
    /// entries are, but no longer part of the log.
    floor: u64,
    /// Bytes a torn tail cut off at open (for the log line).
    pub cut_at_open: u64,
}

fn invalid(detail: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail)
}

fn encode_record(index: u64, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("entries are far below 4 GiB");
    let mut crc = crc32fast::Hasher::new();
    crc.update(&index.to_le_bytes());
    crc.update(&len.to_le_bytes());
    crc.update(payload);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// A whole, intact record at the start of `bytes`: its index and payload.
fn parse_record(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let header = bytes.get(..HEADER_BYTES)?;
    let index = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
    if len as usize > MAX_RECORD_BYTES {
        return None;
    }
    let payload = bytes.get(HEADER_BYTES..HEADER_BYTES + len as usize)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..12]);
    hasher.update(payload);
    (hasher.finalize() == crc).then_some((index, payload))
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.{EXTENSION}")
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn open_file(path: &Path, create: bool) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(FILE_MODE)
        .open(path)
}

impl Segments {
    /// Opens (creating) `dir` and checks every record of every segment.
    pub fn open(dir: &Path) -> io::Result<Segments> {
        std::fs::create_dir_all(dir)?;
        let mut firsts = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            let Some(stem) = name.strip_suffix(&format!(".{EXTENSION}")) else {
                return Err(invalid(format!("{}: {name} is not a log segment", dir.display())));
            };
            let first = stem
                .parse::<u64>()
                .map_err(|_| invalid(format!("{}: {name} is not a log segment", dir.display())))?;
            firsts.push(first);
        }
        firsts.sort_unstable();
        let mut segments = Segments {
            dir: dir.to_path_buf(),
            segments: BTreeMap::new(),
            floor: 0,
            cut_at_open: 0,
        };
        let count = firsts.len();
        for (n, first) in firsts.into_iter().enumerate() {
            segments.load(first, n + 1 == count)?;
        }
        Ok(segments)
    }

    /// Reads segment `first`, checking its records; a torn tail is cut off when it is the
    /// last segment, and is corruption otherwise.
    fn load(&mut self, first: u64, last: bool) -> io::Result<()> {
        let path = self.dir.join(segment_name(first));
        let bytes = std::fs::read(&path)?;
        let file = open_file(&path, false)?;
        let mut slots = Vec::new();
        let mut offset = 0_usize;
        while offset < bytes.len() {
            let expected = first + slots.len() as u64;
            match parse_record(&bytes[offset..]) {
                Some((index, payload)) if index == expected => {
                    let len = payload.len() as u32;
                    slots.push(Slot {
                        offset: offset as u64,
                        len,
                    });
                    offset += HEADER_BYTES + len as usize;
                }
                Some((index, _)) => {
                    return Err(invalid(format!(
                        "{}: record {} holds entry {index}, expected {expected}",
                        path.display(),
                        slots.len()
                    )));
                }
                None if last => {
                    // An append cut short by a crash: never acknowledged, so never needed.
                    self.cut_at_open = (bytes.len() - offset) as u64;
                    file.set_len(offset as u64)?;
                    file.sync_all()?;
                    break;
                }
                None => {
                    return Err(invalid(format!(
                        "{}: unreadable record at byte {offset} of a segment that is not the last",
                        path.display()
                    )));
                }
            }
        }
        if let Some((_, previous)) = self.segments.last_key_value()
            && previous.next_index() != first
        {
            return Err(invalid(format!(
                "{}: starts at entry {first}, but the segment before it ends before entry {}",
                path.display(),
                previous.next_index()
            )));
        }
        self.segments.insert(
            first,
            Segment {
                first,
                file: Arc::new(file),
                path,
                slots,
                end: offset as u64,
            },
        );
        Ok(())
    }

    /// The first and last index held (above the purge floor), if any.
    pub fn bounds(&self) -> Option<(u64, u64)> {
        let first = self
            .segments
            .values()
            .find(|s| !s.slots.is_empty())?
            .first
            .max(self.floor);
        let last = self.segments.values().next_back()?.next_index().checked_sub(1)?;
        (last >= first).then_some((first, last))
    }

    /// The index the next append must have, if the log holds any entry.
    fn next_index(&self) -> Option<u64> {
        self.segments.values().next_back().map(Segment::next_index)
    }

    /// Appends `(index, payload)` records; the indexes must follow the last one (any index
    /// when the log is empty). Not durable until [`Self::sync`].
    pub fn append(&mut self, entries: &[(u64, Vec<u8>)]) -> io::Result<()> {
        let Some((first, _)) = entries.first() else {
            return Ok(());
        };
        let start = match self.next_index() {
            Some(next) if !self.segments.values().all(|s| s.slots.is_empty()) => next,
            _ => *first,
        };
        if start < self.floor {
            return Err(io::Error::other(format!(
                "log append at entry {start}, below the purge point {}",
                self.floor
            )));
        }
        for (expected, (index, payload)) in (start..).zip(entries) {
            if *index != expected {
                return Err(io::Error::other(format!(
                    "log append out of order: entry {index} where {expected} was expected"
                )));
            }
            // Open would read a longer record as a torn one: never write what cannot be read.
            if payload.len() > MAX_RECORD_BYTES {
                return Err(io::Error::other(format!(
                    "log entry {index} is {} bytes, over the {} MiB a record may hold",
                    payload.len(),
                    MAX_RECORD_BYTES >> 20
                )));
            }
        }
        let mut rest = entries;
        while !rest.is_empty() {
            let segment = self.writable(rest[0].0)?;
            let mut buffer = Vec::new();
            let mut taken = 0;
            for (index, payload) in rest {
                if taken > 0 && segment.end + buffer.len() as u64 >= SEGMENT_BYTES {
                    break;
                }
                let offset = segment.end + buffer.len() as u64;
                encode_record(*index, payload, &mut buffer);
                segment.slots.push(Slot {
                    offset,
                    len: payload.len() as u32,
                });
                taken += 1;
            }
            segment.file.write_all_at(&buffer, segment.end)?;
            segment.end += buffer.len() as u64;
            rest = &rest[taken..];
        }
        Ok(())
    }

    /// The segment the entry `index` goes into: the last one, or a new one when the last is
    /// full (the full one fsynced first, so [`Self::sync`] need cover only the last) or when
    /// there is none.
    fn writable(&mut self, index: u64) -> io::Result<&mut Segment> {
        let roll = match self.segments.values().next_back() {
            None => true,
            Some(last) => last.end >= SEGMENT_BYTES || last.slots.is_empty() && last.first != index,
        };
        if roll {
            if let Some(last) = self.segments.values().next_back() {
                last.file.sync_data()?;
                if last.slots.is_empty() {
                    let (first, path) = (last.first, last.path.clone());
                    std::fs::remove_file(&path)?;
                    self.segments.remove(&first);
                }
            }
            let path = self.dir.join(segment_name(index));
            let file = open_file(&path, true)?;
            file.set_len(0)?;
            sync_dir(&self.dir)?;
            self.segments.insert(
                index,
                Segment {
                    first: index,
                    file: Arc::new(file),
                    path,
                    slots: Vec::new(),
                    end: 0,
                },
            );
        }
        Ok(self.segments.values_mut().next_back().expect("just ensured"))
    }

    /// The file of the last segment, for an fsync outside the lock; every append before the
    /// call is durable once its `sync_data` returns (earlier segments were synced on roll).
    pub fn last_file(&self) -> Option<Arc<File>> {
        self.segments.values().next_back().map(|s| Arc::clone(&s.file))
    }

    /// Makes every append so far durable.
    pub fn sync(&self) -> io::Result<()> {
        match self.last_file() {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }

    /// Where the entries `from..to` are (only those held, above the purge floor).
    pub fn locate(&self, from: u64, to: u64) -> Vec<Location> {
        let from = from.max(self.floor);
        let mut out = Vec::new();
        let start = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(from, |(first, _)| *first);
        for segment in self.segments.range(start..).map(|(_, s)| s) {
            if segment.first >= to {
                break;
            }
            for index in from.max(segment.first)..to.min(segment.next_index()) {
                out.push(Location {
                    file: Arc::clone(&segment.file),
                    slot: segment.slots[(index - segment.first) as usize],
                    index,
                });
            }
        }
        out
    }

    /// Removes every entry from `index` on, durably. Later segments go first, newest first,
    /// so a crash midway leaves a prefix of the old log that still holds `index - 1`.
    pub fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        let doomed: Vec<u64> = self.segments.range(index..).map(|(first, _)| *first).rev().collect();
        for first in doomed {
            let segment = self.segments.remove(&first).expect("listed");
            std::fs::remove_file(&segment.path)?;
        }
        if let Some(segment) = self.segments.values_mut().next_back()
            && index < segment.next_index()
        {
            let keep = (index - segment.first) as usize;
            let end = segment.slots.get(keep).map_or(segment.end, |slot| slot.offset);
            segment.slots.truncate(keep);
            segment.file.set_len(end)?;
            segment.end = end;
            segment.file.sync_all()?;
        }
        sync_dir(&self.dir)
    }

    /// Purges every entry at or below `index`: deletes each segment whose entries all are
    /// (every segment, when the purge passes the last entry: the next append then starts a
    /// new one at any index), and raises the floor for the one holding `index`. Not
    /// undone by a crash as long as the caller has recorded the purge point first.
    pub fn purge_through(&mut self, index: u64) -> io::Result<u64> {
        self.floor = self.floor.max(index.saturating_add(1));
        let doomed: Vec<u64> = self
            .segments
            .values()
            .filter(|s| s.next_index() <= self.floor)
            .map(|s| s.first)
            .collect();
        let mut freed = 0;
        for first in &doomed {
            let segment = self.segments.remove(first).expect("listed");
            freed += segment.end;
            std::fs::remove_file(&segment.path)?;
        }
        if !doomed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(freed)
    }

    /// Removes every segment (the log is replaced: a migration redone).
    pub fn clear(&mut self) -> io::Result<()> {
        for (_, segment) in std::mem::take(&mut self.segments) {
            std::fs::remove_file(&segment.path)?;
        }
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests;
