//! The data dir's format stamp: which wire format versions its values may be in.
//!
//! The `meta` tree holds, under [`FORMAT_KEY`], the header of the newest wire format
//! anything in the db is written in (the 12-byte wire header, no body). At open:
//! - an empty db is stamped with [`WIRE_FORMAT_VERSION`];
//! - a non-empty db without a stamp was written before versioned values (format v0: bare
//!   postcard of today's layout), which this binary still reads value by value; it is
//!   stamped with the current version, since every write from now on carries a header;
//! - a stamp newer than [`WIRE_FORMAT_VERSION`] is refused before anything is read.
//!
//! The stamp is written and flushed before any other write, so a value in a newer format
//! never sits in a db whose stamp says older.

use crate::codec::sled_err;
use raftsched_core::state::wire::WIRE_FORMAT_VERSION;
use raftsched_core::state::wire::split_header;
use raftsched_core::state::wire::wire_header;

/// Where the stamp lives in the `meta` tree.
pub(super) const FORMAT_KEY: &[u8] = b"format_version";

/// The trees a data dir holds; a db with none of them non-empty is new.
const TREES: [&str; 3] = ["log", "meta", "snapshot"];

/// What the stamp check found wrong.
#[derive(Debug)]
pub(super) enum FormatRefused {
    /// Written by a newer raftsched, in this format.
    TooNew(u16),
    /// The stamp is not a wire header.
    Unreadable(Vec<u8>),
    Sled(std::io::Error),
}

/// Checks the stamp and brings it up to [`WIRE_FORMAT_VERSION`]. Returns the format the
/// db was in when opened (0 for a db from before versioned values).
pub(super) fn check_and_stamp(db: &sled::Db) -> Result<u16, FormatRefused> {
    let meta = db.open_tree("meta").map_err(|e| FormatRefused::Sled(sled_err(e)))?;
    let found = match meta.get(FORMAT_KEY).map_err(|e| FormatRefused::Sled(sled_err(e)))? {
        Some(stamp) => match split_header(&stamp) {
            Some((version, [])) => Some(version),
            _ => return Err(FormatRefused::Unreadable(stamp.to_vec())),
        },
        None => None,
    };
    let opened_as = match found {
        Some(version) if version > WIRE_FORMAT_VERSION => return Err(FormatRefused::TooNew(version)),
        Some(version) => version,
        None if is_empty(db).map_err(FormatRefused::Sled)? => WIRE_FORMAT_VERSION,
        None => raftsched_core::state::wire::BARE_FORMAT_VERSION,
    };
    if found != Some(WIRE_FORMAT_VERSION) {
        meta.insert(FORMAT_KEY, &wire_header(WIRE_FORMAT_VERSION))
            .map_err(|e| FormatRefused::Sled(sled_err(e)))?;
        db.flush().map_err(|e| FormatRefused::Sled(sled_err(e)))?;
    }
    Ok(opened_as)
}

fn is_empty(db: &sled::Db) -> std::io::Result<bool> {
    for name in TREES {
        if !db.open_tree(name).map_err(sled_err)?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, sled::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        (dir, db)
    }

    fn stamp(db: &sled::Db) -> Option<u16> {
        let stamp = db.open_tree("meta").unwrap().get(FORMAT_KEY).unwrap()?;
        split_header(&stamp).map(|(version, _)| version)
    }

    #[test]
    fn a_new_db_is_stamped_with_the_current_format() {
        let (_dir, db) = db();
        assert_eq!(check_and_stamp(&db).unwrap(), WIRE_FORMAT_VERSION);
        assert_eq!(stamp(&db), Some(WIRE_FORMAT_VERSION));
        assert_eq!(check_and_stamp(&db).unwrap(), WIRE_FORMAT_VERSION);
    }

    #[test]
    fn a_non_empty_db_without_a_stamp_is_format_0_and_gets_stamped() {
        let (_dir, db) = db();
        db.open_tree("log")
            .unwrap()
            .insert(1_u64.to_be_bytes(), b"bare".to_vec())
            .unwrap();
        assert_eq!(check_and_stamp(&db).unwrap(), 0);
        assert_eq!(stamp(&db), Some(WIRE_FORMAT_VERSION));
    }

    #[test]
    fn a_newer_or_unreadable_stamp_is_refused_and_left_alone() {
        let (_dir, db) = db();
        let meta = db.open_tree("meta").unwrap();
        meta.insert(FORMAT_KEY, &wire_header(99)).unwrap();
        assert!(matches!(check_and_stamp(&db), Err(FormatRefused::TooNew(99))));
        assert_eq!(stamp(&db), Some(99));
        meta.insert(FORMAT_KEY, b"v1".to_vec()).unwrap();
        assert!(matches!(check_and_stamp(&db), Err(FormatRefused::Unreadable(bytes)) if bytes == b"v1"));
    }
}
