//! Encoding of everything stored in sled: postcard behind the versioned wire header
//! ([`raftsched_core::state::wire`]). Values written before the header (format v0, bare postcard)
//! are still read.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

use raftsched_core::state::wire;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    wire::encode_versioned(value)
}

/// The length [`encode`] would give, without encoding.
pub fn encoded_len<T: Serialize>(value: &T) -> usize {
    wire::encoded_len_versioned(value)
}

/// Reads a value in any format this binary reads. The error is InvalidData wrapping the
/// [`wire::WireError`], which names `what` and the version found.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> io::Result<T> {
    wire::decode_versioned_or_bare(bytes, what).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The wire error inside an error from [`decode`], if that is what it is.
pub fn wire_error(error: &io::Error) -> Option<&wire::WireError> {
    error.get_ref()?.downcast_ref::<wire::WireError>()
}

pub fn sled_err(e: sled::Error) -> io::Error {
    io::Error::other(format!("sled: {e}"))
}
