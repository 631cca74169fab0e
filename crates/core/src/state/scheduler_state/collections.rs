//! The collection types of [`super::SchedulerState`], named once so that every field and
//! every new index uses the same ones.
//!
//! Code over these types uses only what ordered maps and sets have in common (`get`,
//! `insert`, `remove`, `range`, `iter`, `len`, `is_empty`, `contains_key`/`contains`) and
//! does not read the return value of `insert`, so that the types can be swapped for others
//! with the same ordered semantics without touching the code that uses them.

pub(super) type Map<K, V> = std::collections::BTreeMap<K, V>;
pub(super) type Set<T> = std::collections::BTreeSet<T>;
