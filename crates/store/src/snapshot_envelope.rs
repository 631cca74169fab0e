//! The checksummed envelope around a snapshot image: what is stored in sled and what
//! openraft streams to a follower.
//!
//! Layout (22 bytes, then the image exactly as `SchedulerState::to_snapshot_bytes` gives it):
//! - 8 magic bytes, the first with its top bit set: a bare image (the previous stored
//!   format) starts with the postcard varint of its version (3: `0x03`), never with them;
//! - `u16` little-endian envelope version ([`ENVELOPE_VERSION`]);
//! - `u64` little-endian length of the image;
//! - `u32` little-endian CRC-32 (IEEE) of the image.
//!
//! CRC-32 rather than a 64-bit hash: it is a code made for detecting corruption (every burst
//! of up to 32 flipped bits, every odd number of flipped bits), crc32fast computes it with
//! the CPU's carry-less multiply at several GB/s (a 168 MB image of a million tasks in tens
//! of ms, where byte-at-a-time FNV takes ~10x longer), and sled already brings the crate in.
//! The length is checked on its own, so a truncated transfer is named as such.
//!
//! Snapshots written before the envelope (bare images) are still read, unverified: a data
//! dir carries over, and its next snapshot is written with a checksum.

use std::io;

/// Marks an enveloped snapshot.
const MAGIC: [u8; 8] = [0xd2, b'r', b's', b'n', b'a', b'p', b'c', b'k'];
/// The version of the envelope layout; bumped if the header changes.
pub const ENVELOPE_VERSION: u16 = 1;
/// Magic, version, length, checksum.
pub const HEADER_BYTES: usize = MAGIC.len() + 2 + 8 + 4;

/// Why snapshot bytes were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error(
        "snapshot checksum mismatch: expected crc32 {expected:#010x}, found {found:#010x} over {len} bytes; \
         the snapshot is corrupt and was refused before install (a follower keeps its state and gets it sent again)"
    )]
    ChecksumMismatch { expected: u32, found: u32, len: usize },
    #[error(
        "snapshot length mismatch: the header declares {expected} bytes of image, found {found}; \
         the snapshot is truncated or padded and was refused before install"
    )]
    LengthMismatch { expected: u64, found: usize },
    #[error(
        "snapshot envelope version {found} is not supported (this build reads {ENVELOPE_VERSION}): \
         run the raftsched release that wrote it, or let this node catch up from a leader that reads it"
    )]
    UnsupportedVersion { found: u16 },
    #[error("snapshot envelope header cut short: {found} of {HEADER_BYTES} bytes")]
    ShortHeader { found: usize },
}

impl From<EnvelopeError> for io::Error {
    fn from(error: EnvelopeError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

/// The image behind a 22-byte header that names its length and checksum. One copy of the
/// image (into the new buffer).
pub fn seal(image: &[u8]) -> Vec<u8> {
    seal_with(image.len(), |mut sealed| {
        sealed.extend_from_slice(image);
        sealed
    })
}

/// Seals the image that `encode` appends to the buffer it is given, in place: the header is
/// reserved first and filled in after, so a snapshot of tens of MB is never copied.
/// `capacity_bytes` is the expected image size (the last snapshot's): capacity reserved
/// but not written costs address space, not memory, while a buffer that grows by doubling
/// copies the image and can hold twice its size.
pub fn seal_with(capacity_bytes: usize, encode: impl FnOnce(Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(HEADER_BYTES + capacity_bytes);
    buffer.extend_from_slice(&[0; HEADER_BYTES]);
    let mut sealed = encode(buffer);
    let image = &sealed[HEADER_BYTES..];
    let (len, crc) = (image.len() as u64, crc32fast::hash(image));
    let header = &mut sealed[..HEADER_BYTES];
    header[..8].copy_from_slice(&MAGIC);
    header[8..10].copy_from_slice(&ENVELOPE_VERSION.to_le_bytes());
    header[10..18].copy_from_slice(&len.to_le_bytes());
    header[18..22].copy_from_slice(&crc.to_le_bytes());
    sealed
}

/// The image inside `bytes`, once its length and checksum are verified. Bytes without the
/// magic are a bare image of the previous stored format and are returned as they are (the
/// image's own decoding and invariant check still guard them).
pub fn open(bytes: &[u8]) -> Result<&[u8], EnvelopeError> {
    if !bytes.starts_with(&MAGIC) {
        return Ok(bytes);
    }
    let header = bytes
        .get(..HEADER_BYTES)
        .ok_or(EnvelopeError::ShortHeader { found: bytes.len() })?;
    let version = u16::from_le_bytes(header[8..10].try_into().expect("2 bytes"));
    if version != ENVELOPE_VERSION {
        return Err(EnvelopeError::UnsupportedVersion { found: version });
    }
    let expected_len = u64::from_le_bytes(header[10..18].try_into().expect("8 bytes"));
    let expected = u32::from_le_bytes(header[18..22].try_into().expect("4 bytes"));
    let image = &bytes[HEADER_BYTES..];
    if expected_len != image.len() as u64 {
        return Err(EnvelopeError::LengthMismatch {
            expected: expected_len,
            found: image.len(),
        });
    }
    let found = crc32fast::hash(image);
    if found != expected {
        return Err(EnvelopeError::ChecksumMismatch {
            expected,
            found,
            len: image.len(),
        });
    }
    Ok(image)
}

/// Whether `bytes` carry the envelope (and so a checksum).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_in_place_gives_the_same_bytes_whatever_the_capacity() {
        let image = b"an image of some bytes".to_vec();
        for capacity_bytes in [0, 1, image.len() - 1, image.len(), 10 * image.len()] {
            let sealed = seal_with(capacity_bytes, |mut buffer| {
                buffer.extend_from_slice(&image);
                buffer
            });
            assert_eq!(sealed, seal(&image), "capacity {capacity_bytes}");
        }
    }

    #[test]
    fn a_sealed_image_opens_to_itself() {
        for image in [&b""[..], b"\x03", b"some image bytes"] {
            let sealed = seal(image);
            assert_eq!(sealed.len(), HEADER_BYTES + image.len());
            assert!(is_sealed(&sealed));
            assert_eq!(open(&sealed), Ok(image));
        }
    }

    #[test]
    fn every_flipped_bit_of_a_sealed_image_is_refused() {
        let image: Vec<u8> = (0..200_u32).map(|i| (i * 7) as u8).collect();
        let sealed = seal(&image);
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut damaged = sealed.clone();
                damaged[byte] ^= 1 << bit;
                // A flip in the magic makes it a bare image, which the image decoder refuses.
                if byte < MAGIC.len() {
                    assert!(!is_sealed(&damaged));
                    continue;
                }
                assert!(
                    open(&damaged).is_err(),
                    "flip of bit {bit} of byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn truncation_and_short_headers_are_named() {
        let sealed = seal(b"0123456789");
        assert_eq!(
            open(&sealed[..sealed.len() - 1]),
            Err(EnvelopeError::LengthMismatch { expected: 10, found: 9 })
        );
        assert_eq!(open(&sealed[..12]), Err(EnvelopeError::ShortHeader { found: 12 }));
        let mut padded = sealed.clone();
        padded.push(0);
        assert!(matches!(open(&padded), Err(EnvelopeError::LengthMismatch { .. })));
        let mut newer = sealed;
        newer[8] = 9;
        assert_eq!(open(&newer), Err(EnvelopeError::UnsupportedVersion { found: 9 }));
    }

    #[test]
    fn a_checksum_mismatch_names_both_checksums() {
        let mut sealed = seal(b"0123456789");
        let middle = HEADER_BYTES + 5;
        sealed[middle] ^= 0x40;
        let error = open(&sealed).unwrap_err();
        let expected = crc32fast::hash(b"0123456789");
        let message = error.to_string();
        assert!(
            message.contains(&format!("expected crc32 {expected:#010x}")),
            "{message}"
        );
        assert!(message.contains("found 0x"), "{message}");
        assert!(message.contains("over 10 bytes"), "{message}");
    }

    #[test]
    fn a_bare_image_passes_through() {
        assert!(!is_sealed(b"\x03rest"));
        assert_eq!(open(b"\x03rest"), Ok(&b"\x03rest"[..]));
        assert_eq!(open(b""), Ok(&b""[..]));
    }
}
