//! [`SnapshotFile`]: the last snapshot, in a file of its own beside the sled db.
//!
//! Why not in sled: a snapshot is one value of tens to hundreds of MB. Written into sled it
//! went through sled's log-structured segments and the one flush every log append waits
//! for: in the 30-minute soak at 1,000 tasks/s, each snapshot (~25 MB, every ~50 s) grew
//! the db file in steps of tens of MB that sled reclaimed only later (data dir 50–83 MiB),
//! and stalled log flushes behind its fsync (submit→start p99 0.9–2 s in that interval).
//! A plain file is written once, fsynced once, and replaced by a rename.
//!
//! The data is compressed with zstd at level 1: the image is mostly small integers, ids and
//! repeated strings, and level 1 made the soak's 19.7 MB snapshot 3.4 MB (17%) in 0.19 s
//! on one core (lz4 kept 38%). The file is a sixth of the data dir instead of 40%, and while
//! a new one is written beside the old the dir grows by that much, not by a whole image.
//!
//! Layout of `snapshot` (little-endian):
//! - 8 magic bytes ([`MAGIC`]);
//! - `u32` length of the meta, `u32` CRC-32 of the meta, `u64` length of the data;
//! - the meta ([`SnapshotMeta`] in the versioned wire format);
//! - the data as one zstd frame: the checksummed envelope ([`crate::snapshot_envelope`]),
//!   which verifies itself when the state is restored from it.
//!
//! Writes go to `snapshot.tmp` (mode 0600), fsynced, renamed over `snapshot`, then the
//! directory is fsynced: a crash leaves the old snapshot or the new one, never a mix, and
//! at worst a stale temp file that the next open removes.

use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::io::Read;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::path::PathBuf;

use crate::codec::decode;
use crate::codec::encode;
use crate::raft_types::SnapshotData;
use crate::raft_types::SnapshotMeta;

/// The file's name in the data dir.
pub const SNAPSHOT_FILE: &str = "snapshot";
/// Where a snapshot is written before it is renamed into place.
pub const SNAPSHOT_TMP_FILE: &str = "snapshot.tmp";
/// Marks a snapshot file; the first byte has its top bit set, like the envelope's.
const MAGIC: [u8; 8] = [0xd2, b'r', b's', b's', b'n', b'a', b'p', b'f'];
/// Magic, meta length, meta checksum, data length.
const HEADER_BYTES: usize = MAGIC.len() + 4 + 4 + 8;
/// zstd's fastest standard level: see the module's comment for the figures.
const ZSTD_LEVEL: i32 = 1;
/// A meta is a log id and a membership of a few nodes: hundreds of bytes. A length past
/// this is a damaged header, not a meta to allocate for.
const META_MAX_BYTES: usize = 1024 * 1024;
/// Files in a data dir are readable by the node's user only: a snapshot holds every task's
/// environment.
pub const FILE_MODE: u32 = 0o600;

/// The snapshot file of one data dir.
#[derive(Clone, Debug)]
pub struct SnapshotFile {
    dir: PathBuf,
}

impl SnapshotFile {
    /// The snapshot file in `dir`; removes a temp file a crash left behind.
    pub fn open(dir: &Path) -> io::Result<SnapshotFile> {
        match std::fs::remove_file(dir.join(SNAPSHOT_TMP_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(SnapshotFile { dir: dir.to_path_buf() })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }

    pub fn exists(&self) -> io::Result<bool> {
        self.path().try_exists()
    }

    /// Replaces the stored snapshot, durably: it is on disk, and so is its name, when this
    /// returns. Blocking: call it off the async workers.
    pub fn write(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let tmp_path = self.dir.join(SNAPSHOT_TMP_FILE);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp_path)?;
        let file = encode_into(file, meta, data)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp_path, self.path())?;
        File::open(&self.dir)?.sync_all()
    }

    /// The stored snapshot, if there is one. The meta is verified by its checksum here; the
    /// data by its envelope when the state is restored from it.
    pub fn read(&self) -> io::Result<Option<(SnapshotMeta, SnapshotData)>> {
        match File::open(self.path()) {
            Ok(file) => decode_from(file).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Writes a snapshot in this file's layout to `out`, and gives `out` back (to be synced).
/// A backup file is the same bytes ([`crate::backup`]).
pub(crate) fn encode_into<W: Write>(mut out: W, meta: &SnapshotMeta, data: &[u8]) -> io::Result<W> {
    let meta_bytes = encode(meta);
    let meta_len = u32::try_from(meta_bytes.len())
        .ok()
        .filter(|&len| len as usize <= META_MAX_BYTES)
        .ok_or_else(|| io::Error::other(format!("snapshot meta of {} bytes", meta_bytes.len())))?;
    out.write_all(&MAGIC)?;
    out.write_all(&meta_len.to_le_bytes())?;
    out.write_all(&crc32fast::hash(&meta_bytes).to_le_bytes())?;
    out.write_all(&(data.len() as u64).to_le_bytes())?;
    out.write_all(&meta_bytes)?;
    let mut encoder = zstd::Encoder::new(out, ZSTD_LEVEL)?;
    encoder.write_all(data)?;
    encoder.finish()
}

/// Reads a snapshot in this file's layout. The meta is verified by its checksum here; the
/// data by its envelope when the state is restored from it.
pub(crate) fn decode_from<R: Read>(mut input: R) -> io::Result<(SnapshotMeta, SnapshotData)> {
    let mut header = [0_u8; HEADER_BYTES];
    input
        .read_exact(&mut header)
        .map_err(|e| damaged(format!("header: {e}")))?;
    if header[..MAGIC.len()] != MAGIC {
        return Err(damaged("it does not start with the snapshot file's magic bytes".into()));
    }
    let meta_len = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes")) as usize;
    let meta_crc = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
    if meta_len > META_MAX_BYTES {
        return Err(damaged(format!(
            "meta length {meta_len} bytes (at most {META_MAX_BYTES})"
        )));
    }
    let mut meta_bytes = vec![0_u8; meta_len];
    input
        .read_exact(&mut meta_bytes)
        .map_err(|e| damaged(format!("meta cut short: {e}")))?;
    let found = crc32fast::hash(&meta_bytes);
    if found != meta_crc {
        return Err(damaged(format!(
            "meta checksum mismatch: expected crc32 {meta_crc:#010x}, found {found:#010x}"
        )));
    }
    let meta = decode::<SnapshotMeta>(&meta_bytes, "snapshot meta")?;
    let data_len = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
    // At most what the header says, plus one byte to tell a longer frame: a damaged length
    // can neither make this allocate past the file's own data nor hide a cut.
    let mut data = Vec::with_capacity(usize::try_from(data_len).unwrap_or(0).min(1 << 30));
    zstd::Decoder::new(input)?
        .take(data_len.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| damaged(format!("data does not decompress: {e}")))?;
    if data.len() as u64 != data_len {
        return Err(damaged(format!(
            "data is {} bytes, the header says {data_len}",
            data.len()
        )));
    }
    Ok((meta, data))
}

fn damaged(detail: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the snapshot file is damaged ({detail})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft_types::StoredMembership;

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: None,
            last_membership: StoredMembership::default(),
        }
    }

    #[test]
    fn what_is_written_is_read_back_and_the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::open(dir.path()).unwrap();
        assert!(file.read().unwrap().is_none());
        file.write(&meta(), b"data").unwrap();
        let (read_meta, data) = file.read().unwrap().unwrap();
        assert_eq!((read_meta, data.as_slice()), (meta(), &b"data"[..]));
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, FILE_MODE, "mode {mode:o}");
        assert!(!dir.path().join(SNAPSHOT_TMP_FILE).exists());
    }

    #[test]
    fn a_damaged_header_or_meta_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::open(dir.path()).unwrap();
        file.write(&meta(), b"data").unwrap();
        let good = std::fs::read(file.path()).unwrap();
        let patched = |at: std::ops::Range<usize>, bytes: &[u8]| {
            let mut bad = good.clone();
            bad[at].copy_from_slice(bytes);
            bad
        };
        let cases: [(&str, Vec<u8>); 6] = [
            ("magic", [&[0_u8][..], &good[1..]].concat()),
            ("header", good[..5].to_vec()),
            ("meta checksum mismatch", {
                let mut bad = good.clone();
                bad[HEADER_BYTES] ^= 0x01;
                bad
            }),
            ("meta length", patched(8..12, &u32::MAX.to_le_bytes())),
            ("does not decompress", good[..good.len() - 3].to_vec()),
            ("the header says 3", patched(16..24, &3_u64.to_le_bytes())),
        ];
        for (needle, bytes) in cases {
            std::fs::write(file.path(), bytes).unwrap();
            let err = file.read().unwrap_err().to_string();
            assert!(
                err.contains("snapshot file is damaged") && err.contains(needle),
                "{needle}: {err}"
            );
        }
    }

    #[test]
    fn a_temp_file_left_by_a_crash_is_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SNAPSHOT_TMP_FILE), b"half").unwrap();
        let file = SnapshotFile::open(dir.path()).unwrap();
        assert!(!dir.path().join(SNAPSHOT_TMP_FILE).exists());
        assert!(file.read().unwrap().is_none());
    }
}
