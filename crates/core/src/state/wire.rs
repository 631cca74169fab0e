//! The versioned wire format of everything one raftsched writes and another reads: log
//! entries and metadata in the data dir, and every Raft RPC between nodes.
//!
//! A value is a fixed header followed by the postcard encoding of the value:
//!
//! ```text
//! [ WIRE_MAGIC: 10 bytes ][ format version: u16, little-endian ][ postcard body ]
//! ```
//!
//! Every magic byte has its top bit set. A raftsched from before this header read bare
//! postcard, and every message and record it reads starts with a varint, a bool or an
//! option/enum tag; ten bytes with the top bit set are a varint longer than any u64, so such
//! a binary refuses our bytes instead of reading a term or an index out of the header. For
//! the same reason no bare postcard value of those types can start with the magic, which is
//! how [`decode_versioned_or_bare`] tells a value written before the header (format v0) from
//! one with it, without any ambiguity.
//!
//! Architecture invariant: pure functions over bytes (serde and postcard only); no input,
//! however short, long or random, makes them panic.

use serde::Serialize;
use serde::de::DeserializeOwned;

#[cfg(test)]
mod tests;

/// The format this binary writes: 5. Bump it whenever the postcard layout of anything
/// encoded here changes (a field or an enum variant added, removed or reordered in
/// [`crate::state::Command`], openraft's entry and RPC types, or a type they contain).
///
/// v2 (issue 11, retention): `QueuePolicy` gained `retention_ms` and `Command` the
/// `PurgeTasks` variant (at the end, so v1 variants keep their indexes). v1 bodies are still
/// read: the only layout that differs is `QueuePolicy`'s, whose deserializer asks
/// [`decoding_version`].
///
/// v3 (issue 12): `AttemptReport` gained `worker_id` and `session` at its end (a report
/// binds to its attempt's worker), and a member of the membership (raftsched-store's
/// `MemberNode`) gained `peer_addr` after `addr` (a separate peer port). v0-v2 bodies are
/// still read: both deserializers ask [`decoding_version`]; a v0-v2 report is unbound
/// (applied as before) and a v0-v2 member has `peer_addr = addr`, where those nodes served
/// Raft.
///
/// v4 (issue 13, tracing): `TaskSpec` gained `trace_parent` at its end (the W3C trace
/// context the worker hands to the task). v0-v3 bodies are still read: its deserializer
/// asks [`decoding_version`], and a v0-v3 spec has no trace context.
///
/// v5 (issue 14, one commit from submit to start): `Command` gained `SubmitAndAssign` at its
/// end, so every v1-v4 variant keeps its index and v1-v4 bodies read as before. A v4 binary
/// refuses a v5 entry by its header, naming the version, rather than failing on the variant.
pub const WIRE_FORMAT_VERSION: u16 = 5;

/// The oldest enveloped format this binary reads: 1 (the first one). A binary that reads
/// format N and N-1 keeps a rolling upgrade possible (see ARCHITECTURE.md, Compatibility).
pub const OLDEST_READABLE_WIRE_VERSION: u16 = 1;
const _: () = assert!(OLDEST_READABLE_WIRE_VERSION >= 1 && OLDEST_READABLE_WIRE_VERSION <= WIRE_FORMAT_VERSION);

/// The format number given to bare postcard written before the header existed: 0. Only
/// the data dir still reads it ([`decode_versioned_or_bare`]); peers must send a header.
pub const BARE_FORMAT_VERSION: u16 = 0;

/// "raftschedw" with the top bit of every byte set: 10 bytes (why: see the module doc).
pub const WIRE_MAGIC: [u8; 10] = [
    b'r' | 0x80,
    b'a' | 0x80,
    b'f' | 0x80,
    b't' | 0x80,
    b's' | 0x80,
    b'c' | 0x80,
    b'h' | 0x80,
    b'e' | 0x80,
    b'd' | 0x80,
    b'w' | 0x80,
];

/// The header's length: 12 bytes, the magic and a two-byte version. The cost of the
/// version on every stored log entry (a typical entry is a few hundred bytes).
pub const WIRE_HEADER_BYTES: usize = WIRE_MAGIC.len() + 2;
/// A postcard u64 varint is at most 10 bytes; a magic that long with every continuation bit
/// set can never be the start of a bare value (see the module doc).
const _: () = assert!(WIRE_MAGIC.len() >= 10);

/// Why bytes could not be read as a value. Each message names what was being read, the
/// format found, the formats this binary reads, and what the operator can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error(
        "{what} is in wire format v{found}, but this raftsched reads formats v{OLDEST_READABLE_WIRE_VERSION} to \
         v{WIRE_FORMAT_VERSION}: it was written by a newer raftsched; upgrade this node to a release that reads \
         format v{found}"
    )]
    TooNew { what: String, found: u16 },
    #[error(
        "{what} is in wire format v{found}, older than the oldest this raftsched reads \
         (v{OLDEST_READABLE_WIRE_VERSION}, up to v{WIRE_FORMAT_VERSION}); upgrade the node that wrote it to a \
         release that writes format v{OLDEST_READABLE_WIRE_VERSION} or later first"
    )]
    TooOld { what: String, found: u16 },
    #[error(
        "{what} has no wire format header (format v{BARE_FORMAT_VERSION}, written by a raftsched from before \
         versioned messages); this raftsched reads formats v{OLDEST_READABLE_WIRE_VERSION} to \
         v{WIRE_FORMAT_VERSION}: upgrade the sending node to this release"
    )]
    Unversioned { what: String },
    #[error(
        "{what}: {len} bytes, shorter than the {WIRE_HEADER_BYTES}-byte wire format header; the bytes were cut short"
    )]
    Truncated { what: String, len: usize },
    #[error("{what}: not a readable wire format v{version} value: {detail}")]
    Malformed { what: String, version: u16, detail: String },
}

impl WireError {
    /// True when the bytes are well formed but of a format this binary does not read:
    /// a version problem the operator fixes by upgrading, not corruption.
    pub fn is_version_mismatch(&self) -> bool {
        matches!(
            self,
            WireError::TooNew { .. } | WireError::TooOld { .. } | WireError::Unversioned { .. }
        )
    }
}

/// The header of a value in format `version`.
pub fn wire_header(version: u16) -> [u8; WIRE_HEADER_BYTES] {
    let mut header = [0; WIRE_HEADER_BYTES];
    header[..WIRE_MAGIC.len()].copy_from_slice(&WIRE_MAGIC);
    header[WIRE_MAGIC.len()..].copy_from_slice(&version.to_le_bytes());
    header
}

/// `value` in the current format: the header, then its postcard encoding.
pub fn encode_versioned<T: Serialize>(value: &T) -> Vec<u8> {
    // One pass, growing the buffer: sizing first would walk a 4 MiB append twice.
    let mut bytes = wire_header(WIRE_FORMAT_VERSION).to_vec();
    postcard::to_io(value, &mut bytes).expect("serialising plain data into memory cannot fail");
    bytes
}

/// The length [`encode_versioned`] gives, without encoding.
pub fn encoded_len_versioned<T: Serialize>(value: &T) -> usize {
    WIRE_HEADER_BYTES + postcard::experimental::serialized_size(value).expect("sizing plain data cannot fail")
}

/// The format version in `bytes`' header, and the body after it. `None` when the bytes do
/// not start with the magic (too short for it, or bare postcard).
pub fn split_header(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let (magic, rest) = bytes.split_at_checked(WIRE_MAGIC.len())?;
    if magic != WIRE_MAGIC {
        return None;
    }
    let (version, body) = rest.split_first_chunk::<2>()?;
    Some((u16::from_le_bytes(*version), body))
}

/// Reads a value written by [`encode_versioned`] of a format this binary reads. `what`
/// names the value in the error ("Raft AppendEntries request", "log entry").
pub fn decode_versioned<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, WireError> {
    if let Some((version, body)) = split_header(bytes) {
        return decode_body(version, body, what);
    }
    // Empty, or a beginning of the header cut short: a bare value never starts with even
    // part of the magic followed by nothing (its varint would be unterminated).
    let common = bytes.len().min(WIRE_MAGIC.len());
    if bytes.len() < WIRE_HEADER_BYTES && bytes[..common] == WIRE_MAGIC[..common] {
        return Err(WireError::Truncated {
            what: what.to_string(),
            len: bytes.len(),
        });
    }
    Err(WireError::Unversioned { what: what.to_string() })
}

/// Like [`decode_versioned`], and also reads bare postcard as format v0: what a data dir
/// written before the header holds. Only the store uses it; the network requires a header.
pub fn decode_versioned_or_bare<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, WireError> {
    match decode_versioned(bytes, what) {
        Err(WireError::Unversioned { .. }) => decode_postcard(BARE_FORMAT_VERSION, bytes, what),
        other => other,
    }
}

fn decode_body<T: DeserializeOwned>(version: u16, body: &[u8], what: &str) -> Result<T, WireError> {
    if version > WIRE_FORMAT_VERSION {
        return Err(WireError::TooNew {
            what: what.to_string(),
            found: version,
        });
    }
    if version < OLDEST_READABLE_WIRE_VERSION {
        return Err(WireError::TooOld {
            what: what.to_string(),
            found: version,
        });
    }
    // The versions differ only in `QueuePolicy` (v0/v1 against v2 on), and in
    // `AttemptReport` and raftsched-store's `MemberNode` (v0-v2 against v3), which read the
    // version being decoded.
    decode_postcard(version, body, what)
}

std::thread_local! {
    /// The wire format of the body this thread is decoding, if any (decoding is synchronous,
    /// so a per-thread value is exact). `None` outside wire decoding: snapshots and
    /// in-memory values use the current layout.
    static DECODING_VERSION: std::cell::Cell<Option<u16>> = const { std::cell::Cell::new(None) };
}

/// The wire format version of the body being decoded on this thread, for the types whose
/// layout changed between versions.
pub fn decoding_version() -> Option<u16> {
    DECODING_VERSION.with(std::cell::Cell::get)
}

/// Runs `decode` as if decoding a body of wire format `version`: for a container with a
/// version of its own (the snapshot image) whose older layout is an older wire format's.
pub(crate) fn with_decoding_version<T>(version: u16, decode: impl FnOnce() -> T) -> T {
    DECODING_VERSION.with(|current| current.set(Some(version)));
    let decoded = decode();
    DECODING_VERSION.with(|current| current.set(None));
    decoded
}

/// The whole of `body` as one `T`: trailing bytes are refused, not ignored, so a value
/// followed by garbage is not taken for a good one.
fn decode_postcard<T: DeserializeOwned>(version: u16, body: &[u8], what: &str) -> Result<T, WireError> {
    let malformed = |detail: String| WireError::Malformed {
        what: what.to_string(),
        version,
        detail,
    };
    DECODING_VERSION.with(|current| current.set(Some(version)));
    let taken = postcard::take_from_bytes(body);
    DECODING_VERSION.with(|current| current.set(None));
    let (value, rest) = taken.map_err(|e| malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(malformed(format!("{} bytes after the end of the value", rest.len())));
    }
    Ok(value)
}
