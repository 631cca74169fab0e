//! Runs openraft's storage conformance suite against the sled store: every contract of
//! `RaftLogStorage` and `RaftStateMachine` that openraft relies on (vote, append, truncate,
//! purge, log state, applied state, snapshot meta, snapshot transfer).

use openraft::StorageError;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use openraft::type_config::TypeConfigExt;
use raftsched_store::LogStore;
use raftsched_store::StateMachineStore;
use raftsched_store::Store;
use raftsched_store::raft_types::TypeConfig;
use tempfile::TempDir;

/// Opens a fresh store in a new temp dir for every test of the suite. The temp dir is the
/// guard: it is removed when the suite drops it, after the store handles.
struct SledStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for SledStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let store = Store::open(dir.path(), "test-cluster", 1)
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        Ok((dir, store.log_store, store.state_machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_store_passes_openraft_suite() {
    if let Err(e) = Suite::test_all(SledStoreBuilder).await {
        panic!("storage suite failed: {e}");
    }
}
