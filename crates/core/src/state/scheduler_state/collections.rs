//! The collection types of [`super::SchedulerState`], named once so that every field and
//! every new index uses the same ones.
//!
//! Persistent (imbl's B+trees, copy-on-write nodes behind reference counts): cloning the
//! state copies a handful of root pointers, not its million entries, so a snapshot encodes a
//! clone while apply goes on changing the original. A change after a clone copies only the
//! nodes on the path it touches (a leaf holds at most 16 entries), once per clone.
//!
//! Code over these types uses only what ordered maps and sets have in common (`get`,
//! `insert`, `remove`, `range`, `iter`, `len`, `is_empty`, `contains_key`/`contains`) and
//! does not read the return value of `insert` (imbl's set `insert` returns the replaced
//! element, std's a bool), so that the types can be swapped for others with the same
//! ordered semantics without touching the code that uses them.

pub(super) type Map<K, V> = imbl::OrdMap<K, V>;
pub(super) type Set<T> = imbl::OrdSet<T>;

/// Adds `item` to the set under `key`, making the set if there is none.
pub(super) fn add_to<K: Ord + Clone, T: Ord + Clone>(map: &mut Map<K, Set<T>>, key: K, item: T) {
    match map.get_mut(&key) {
        Some(set) => {
            set.insert(item);
        }
        None => {
            map.insert(key, Set::unit(item));
        }
    }
}

/// Removes `item` from the set under `key`, and the set itself once empty.
pub(super) fn remove_from<K: Ord + Clone, T: Ord + Clone>(map: &mut Map<K, Set<T>>, key: &K, item: &T) {
    if let Some(set) = map.get_mut(key) {
        set.remove(item);
        if set.is_empty() {
            map.remove(key);
        }
    }
}
