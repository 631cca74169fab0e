//! Encoding of everything stored in sled: postcard, a compact and stable serde format.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("serialising plain data into memory cannot fail")
}

/// The length [`encode`] would give, without encoding.
pub fn encoded_len<T: Serialize>(value: &T) -> usize {
    postcard::experimental::serialized_size(value).expect("sizing plain data cannot fail")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}")))
}

pub fn sled_err(e: sled::Error) -> io::Error {
    io::Error::other(format!("sled: {e}"))
}

/// Log keys sort as big-endian integers, so sled's key order is log order.
pub fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}
