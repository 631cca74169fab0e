//! The store crate's integration tests, one binary (one link) with a module per area:
//! openraft's conformance suite and what a data dir keeps across restarts.

mod storage_suite;
mod store_recovery;
