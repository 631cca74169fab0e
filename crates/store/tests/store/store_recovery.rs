//! The data dir across restarts: a node refuses a dir that is not its own, and everything
//! openraft was told is durable (vote, log, snapshot) comes back after the store is closed
//! and opened again. Writes go through the openraft storage traits, as openraft makes them.

use std::collections::BTreeSet;
use std::path::Path;

use openraft::EntryPayload;
use openraft::Membership;
use openraft::RaftTypeConfig;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogReader;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftLogStorageExt;
use openraft::storage::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderIdExt;
use raftsched_core::state::Command;
use raftsched_core::state::SchedulerState;
use raftsched_core::state::TaskSpec;
use raftsched_core::state::wire::WIRE_FORMAT_VERSION;
use raftsched_core::state::wire::WIRE_MAGIC;
use raftsched_core::state::wire::wire_header;
use raftsched_store::Store;
use raftsched_store::StoreError;
use raftsched_store::raft_types::Entry;
use raftsched_store::raft_types::LogId;
use raftsched_store::raft_types::SnapshotMeta;
use raftsched_store::raft_types::StoredMembership;
use raftsched_store::raft_types::TypeConfig;
use raftsched_store::raft_types::Vote;
use raftsched_store::snapshot_file::SNAPSHOT_FILE;
use raftsched_store::snapshot_file::SnapshotFile;

const CLUSTER: &str = "test-cluster";

fn open(dir: &Path) -> Store {
    Store::open(dir, CLUSTER, 1).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

fn open_err(dir: &Path, cluster: &str, node: u64) -> StoreError {
    match Store::open(dir, cluster, node) {
        Ok(_) => panic!("{} opened as cluster {cluster:?} node {node}", dir.display()),
        Err(e) => e,
    }
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(<TypeConfig as RaftTypeConfig>::LeaderId::new_committed(term, 1), index)
}

fn blank(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Blank,
    }
}

fn membership(term: u64, index: u64, voters: &[u64]) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Membership(membership_of(voters)),
    }
}

fn membership_of(voters: &[u64]) -> Membership<u64, raftsched_store::raft_types::MemberNode> {
    Membership::new_with_defaults(vec![voters.iter().copied().collect::<BTreeSet<_>>()], [])
}

/// An entry whose postcard layout is v0's still (a cancel: no spec, policy or report in it),
/// so today's encoding of it is what a release from before the header wrote.
fn unchanged_since_v0(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Command::CancelTask {
            now_ms: index,
            task_id: 1,
            reason: "old".to_string(),
        }),
    }
}

fn submit(term: u64, index: u64, name: &str) -> Entry {
    let spec = TaskSpec::builder(name)
        .queue("q")
        .max_attempts(1)
        .attempt_timeout_ms(1000)
        .request_id(format!("req-{name}"))
        .retry_backoff_ms(1000)
        .build();
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Command::SubmitTasks {
            now_ms: index,
            specs: vec![spec],
        }),
    }
}

async fn apply(store: &mut Store, entries: Vec<Entry>) {
    let items = entries.into_iter().map(|entry| Ok((entry, None)));
    store
        .state_machine
        .apply(futures::stream::iter(items))
        .await
        .expect("apply");
}

async fn log_ids(store: &mut Store) -> Vec<LogId> {
    let entries = store.log_store.try_get_log_entries(..).await.expect("read log");
    entries.into_iter().map(|entry| entry.log_id).collect()
}

fn scheduler(store: &Store) -> SchedulerState {
    store.state_machine.shared().read().scheduler.clone()
}

// --- (a) data-dir identity -------------------------------------------------------------

#[test]
fn a_dir_of_another_cluster_or_node_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));

    for (cluster, node) in [("other-cluster", 1), (CLUSTER, 2), ("other-cluster", 2)] {
        let err = open_err(dir.path(), cluster, node);
        let StoreError::IdentityMismatch {
            found_cluster,
            found_node,
            ..
        } = &err
        else {
            panic!("expected IdentityMismatch, got {err:?}");
        };
        assert_eq!((found_cluster.as_str(), *found_node), (CLUSTER, 1));
        let message = err.to_string();
        for needle in [
            "belongs to cluster \"test-cluster\" node 1",
            &format!("this node is cluster {cluster:?} node {node}"),
            "use the right --data-dir",
        ] {
            assert!(message.contains(needle), "{message:?} does not say {needle:?}");
        }
    }

    // The refusals changed nothing: the rightful owner still opens it.
    drop(open(dir.path()));
}

#[test]
fn a_non_empty_dir_without_identity_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not raftsched").unwrap();
    std::fs::create_dir(dir.path().join("photos")).unwrap();

    let err = open_err(dir.path(), CLUSTER, 1);
    assert!(matches!(err, StoreError::ForeignDir { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("no IDENTITY file"), "{message}");
    assert!(
        message.contains("point --data-dir at an empty or raftsched directory"),
        "{message}"
    );

    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["notes.txt", "photos"], "the foreign dir was modified");
}

#[test]
fn a_garbage_identity_file_is_corrupt() {
    let garbage: [&[u8]; 5] = [
        b"hello\n",
        b"",
        b"raftsched-data-dir v2 cluster=test-cluster node=one\n",
        b"raftsched-data-dir v4 cluster=test-cluster node=1\n",
        b"\xff\xfe\x00binary",
    ];
    for content in garbage {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("IDENTITY"), content).unwrap();
        let err = open_err(dir.path(), CLUSTER, 1);
        assert!(matches!(err, StoreError::Corrupt { .. }), "{content:?}: {err:?}");
        let message = err.to_string();
        assert!(message.contains("IDENTITY"), "{message}");
        assert!(message.contains("restore it from a replica or remove it"), "{message}");
    }
}

#[test]
fn a_new_or_empty_dir_is_claimed() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("does/not/exist/yet");
    drop(open(&dir));
    let identity = std::fs::read_to_string(dir.join("IDENTITY")).unwrap();
    assert_eq!(identity, "raftsched-data-dir v3 cluster=test-cluster node=1\n");

    // A crash before the identity was renamed into place leaves only the temp file; the dir
    // is still ours to claim.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("IDENTITY.tmp"), "raftsched-data-dir v1 cluster=test-").unwrap();
    drop(open(dir.path()));
    assert!(!dir.path().join("IDENTITY.tmp").exists());
    drop(open(dir.path()));
}

#[test]
fn a_dir_in_use_is_refused_without_advice_to_delete_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let err = open_err(dir.path(), CLUSTER, 1);
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("in use by another process"), "{message}");
    assert!(!message.contains("remove"), "{message}");
    drop(first);
    drop(open(dir.path()));
}

// --- (b) recovery after close ----------------------------------------------------------

#[tokio::test]
async fn reopen_recovers_vote_log_and_committed() {
    let dir = tempfile::tempdir().unwrap();
    let vote = Vote::new_committed(7, 1);
    {
        let mut store = open(dir.path());
        assert_eq!(store.log_store.read_vote().await.unwrap(), None);
        store.log_store.save_vote(&Vote::new(3, 2)).await.unwrap();
        store.log_store.save_vote(&vote).await.unwrap();
        let entries = vec![
            blank(1, 1),
            membership(1, 2, &[1, 2, 3]),
            submit(1, 3, "a"),
            submit(1, 4, "b"),
            submit(1, 5, "c"),
            blank(1, 6),
        ];
        store.log_store.blocking_append(entries).await.unwrap();
        // Entries 5 and 6 were never committed; a new leader replaces them.
        store.log_store.truncate_after(Some(log_id(1, 4))).await.unwrap();
        store
            .log_store
            .blocking_append([blank(2, 5), submit(2, 6, "d"), submit(2, 7, "e")])
            .await
            .unwrap();
        store.log_store.purge(log_id(1, 2)).await.unwrap();
        store.log_store.save_committed(Some(log_id(2, 6))).await.unwrap();
    }

    let mut store = open(dir.path());
    assert_eq!(store.log_store.read_vote().await.unwrap(), Some(vote));
    let state = store.log_store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)));
    assert_eq!(state.last_log_id, Some(log_id(2, 7)));
    assert_eq!(
        log_ids(&mut store).await,
        [log_id(1, 3), log_id(1, 4), log_id(2, 5), log_id(2, 6), log_id(2, 7)]
    );
    let entries = store.log_store.try_get_log_entries(6..7).await.unwrap();
    assert!(
        matches!(&entries[..], [Entry { payload: EntryPayload::Normal(Command::SubmitTasks { specs, .. }), .. }] if specs[0].name == "d"),
        "{entries:?}"
    );
    assert_eq!(store.log_store.read_committed().await.unwrap(), Some(log_id(2, 6)));

    // Nothing was snapshotted, so the state machine starts from scratch; openraft re-applies
    // the committed entries after the snapshot.
    assert_eq!(
        store.state_machine.applied_state().await.unwrap(),
        (None, StoredMembership::default())
    );
}

#[tokio::test]
async fn reopen_recovers_the_built_snapshot_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let (built_meta, built_data, state_before) = {
        let mut store = open(dir.path());
        let entries = vec![
            membership(1, 1, &[1, 2, 3]),
            submit(1, 2, "a"),
            submit(1, 3, "b"),
            blank(2, 4),
        ];
        store.log_store.blocking_append(entries.clone()).await.unwrap();
        apply(&mut store, entries).await;
        let mut builder = store.state_machine.get_snapshot_builder().await;
        let snapshot = builder.build_snapshot().await.unwrap();
        // Applied after the snapshot: only the log holds this one.
        store.log_store.blocking_append([submit(2, 5, "c")]).await.unwrap();
        apply(&mut store, vec![submit(2, 5, "c")]).await;
        store.log_store.purge(log_id(2, 4)).await.unwrap();
        let state = scheduler(&store);
        assert_eq!(state.task_count(), 3);
        (snapshot.meta, snapshot.snapshot, state)
    };
    assert_eq!(built_meta.last_log_id, Some(log_id(2, 4)));
    assert_eq!(
        built_meta.last_membership,
        StoredMembership::new(Some(log_id(1, 1)), membership_of(&[1, 2, 3]))
    );

    let mut store = open(dir.path());
    let current = store
        .state_machine
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(current.meta, built_meta);
    assert_eq!(current.snapshot, built_data);
    // The state machine restarts at the snapshot; the log holds what came after it.
    assert_eq!(
        store.state_machine.applied_state().await.unwrap(),
        (Some(log_id(2, 4)), built_meta.last_membership.clone())
    );
    let restored = scheduler(&store);
    assert_eq!(restored.task_count(), 2);
    let image = raftsched_store::snapshot_envelope::open(&built_data).expect("an intact sealed snapshot");
    assert_eq!(restored, SchedulerState::from_snapshot_bytes(image).unwrap());
    assert_eq!(log_ids(&mut store).await, [log_id(2, 5)]);

    // Re-applying the log after the snapshot, as openraft does on start-up, gives back the
    // state from before the restart.
    let tail = store.log_store.try_get_log_entries(5..).await.unwrap();
    apply(&mut store, tail).await;
    assert_eq!(scheduler(&store), state_before);
}

#[tokio::test]
async fn reopen_recovers_an_installed_snapshot() {
    // Build a snapshot on a "leader" store and install it on a "follower" store.
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let snapshot = {
        let mut leader = open(leader_dir.path());
        apply(
            &mut leader,
            vec![membership(1, 1, &[1, 2]), submit(1, 2, "a"), submit(3, 9, "b")],
        )
        .await;
        leader
            .state_machine
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap()
    };
    {
        let mut follower = open(follower_dir.path());
        apply(&mut follower, vec![blank(1, 1)]).await;
        follower
            .state_machine
            .install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
            .await
            .unwrap();
        // openraft purges the log up to the snapshot after installing it.
        follower.log_store.purge(log_id(3, 9)).await.unwrap();
    }

    let mut follower = open(follower_dir.path());
    let current = follower
        .state_machine
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(current.meta, snapshot.meta);
    assert_eq!(current.snapshot, snapshot.snapshot);
    assert_eq!(
        follower.state_machine.applied_state().await.unwrap(),
        (Some(log_id(3, 9)), snapshot.meta.last_membership.clone())
    );
    assert_eq!(scheduler(&follower).task_count(), 2);
    let log_state = follower.log_store.get_log_state().await.unwrap();
    assert_eq!(log_state.last_purged_log_id, Some(log_id(3, 9)));
    assert_eq!(log_state.last_log_id, Some(log_id(3, 9)));
}

#[tokio::test]
async fn a_snapshot_that_does_not_decode_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path());
        apply(&mut store, vec![membership(1, 1, &[1]), submit(1, 2, "a")]).await;
        let snapshot = store
            .state_machine
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();

        // By install: refused, and nothing changes.
        let mut newer: SnapshotMeta = snapshot.meta.clone();
        newer.last_log_id = Some(log_id(1, 3));
        let err = store
            .state_machine
            .install_snapshot(&newer, vec![0xff; 8])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("snapshot is not readable"), "{err}");
        let current = store.state_machine.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snapshot.meta);
        assert_eq!(scheduler(&store).task_count(), 1);
    }

    // On disk: damage the stored snapshot behind the store's back; open reports it.
    // (The file's own framing and compression are checked by its unit tests; this damages
    // the data inside an intact frame.)
    rewrite_stored_snapshot(dir.path(), |data| data.truncate(data.len() - 1));
    let err = open_err(dir.path(), CLUSTER, 1);
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    // The envelope's length names the cut before the image is decoded.
    assert!(err.to_string().contains("snapshot length mismatch"), "{err}");
}

/// Many appends in flight at once: every callback fires, each after its entries are
/// durable. sled's own `flush_async` never wakes some of its callers when several run at
/// once (and can block the runtime's threads while at it), so the store must not use it.
/// The work runs on a thread of its own, so a hang fails this test instead of freezing it.
#[test]
fn concurrent_appends_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let count = 300;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let result = runtime.block_on(async {
            let mut store = open(&path);
            let mut pending = Vec::new();
            for index in 1..=count {
                let (tx, rx) = TypeConfig::oneshot();
                store.log_store.append([blank(1, index)], IOFlushed::signal(tx)).await?;
                pending.push(rx);
            }
            for result in futures::future::join_all(pending).await {
                result.map_err(std::io::Error::other)??;
            }
            Ok::<_, std::io::Error>(())
        });
        done_tx.send(result).ok();
    });
    match done_rx.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(result) => result.expect("append failed"),
        Err(_) => panic!("append callbacks did not all fire within 120 s: a flush hung"),
    }

    let mut store = open(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(log_ids(&mut store)).len(), count as usize);
}

// --- (e) wire format of the data dir ---------------------------------------------------

/// Makes a closed data dir look as a release before the meta file left it: no `meta` file,
/// its `vote` in sled, the identity `v2`.
fn as_before_the_meta_file(dir: &Path, vote: Option<Vote>) {
    if let Some(vote) = vote {
        poke(dir, "meta", b"vote", Some(postcard::to_allocvec(&vote).unwrap()));
    }
    std::fs::remove_file(dir.join("meta")).unwrap();
    std::fs::write(
        dir.join("IDENTITY"),
        "raftsched-data-dir v2 cluster=test-cluster node=1\n",
    )
    .unwrap();
}

/// A dir of the release before the meta file: its vote, committed id and purge point move
/// from sled into the file, and the dir is marked v3 so that release refuses it after.
#[tokio::test]
async fn a_dir_from_before_the_meta_file_keeps_its_vote_and_is_marked_v3() {
    let dir = tempfile::tempdir().unwrap();
    let vote = Vote::new_committed(6, 1);
    {
        let mut store = open(dir.path());
        store.log_store.save_vote(&vote).await.unwrap();
    }
    as_before_the_meta_file(dir.path(), Some(vote));
    poke(
        dir.path(),
        "meta",
        b"committed",
        Some(raftsched_core::state::wire::encode_versioned(&log_id(6, 3))),
    );
    {
        let mut store = open(dir.path());
        assert_eq!(store.log_store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(store.log_store.read_committed().await.unwrap(), Some(log_id(6, 3)));
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("IDENTITY")).unwrap(),
        "raftsched-data-dir v3 cluster=test-cluster node=1\n"
    );
    let db = sled::open(dir.path().join("db")).unwrap();
    assert_eq!(
        db.open_tree("meta").unwrap().get("vote").unwrap(),
        None,
        "the vote left sled"
    );
    drop(db);
    let mut store = open(dir.path());
    assert_eq!(store.log_store.read_vote().await.unwrap(), Some(vote));
}

/// A v3 dir without its meta file lost its vote: starting on none could vote twice in a
/// term, so open refuses it and says what to do.
#[test]
fn a_dir_whose_meta_file_is_gone_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    std::fs::remove_file(dir.path().join("meta")).unwrap();
    let err = open_err(dir.path(), CLUSTER, 1);
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("meta file is missing"), "{message}");
    assert!(message.contains("re-add this node as a new member"), "{message}");
}

/// Writes `value` under `key` of `tree` in the db of a closed data dir.
fn poke(dir: &Path, tree: &str, key: &[u8], value: Option<Vec<u8>>) {
    let db = sled::open(dir.join("db")).unwrap();
    let tree = db.open_tree(tree).unwrap();
    match value {
        Some(value) => tree.insert(key, value).unwrap(),
        None => tree.remove(key).unwrap(),
    };
    db.flush().unwrap();
}

#[test]
fn a_dir_stamped_with_a_newer_format_is_refused_naming_the_dir() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    poke(dir.path(), "meta", b"format_version", Some(wire_header(99).to_vec()));

    let err = open_err(dir.path(), CLUSTER, 1);
    assert!(matches!(err, StoreError::NewerFormat { found: 99, .. }), "{err:?}");
    let message = err.to_string();
    for needle in [
        &format!("{} was written by a newer raftsched", dir.path().display()),
        "data format v99",
        &format!("this binary reads formats v0 to v{WIRE_FORMAT_VERSION}"),
        "run a release that reads format v99",
    ] {
        assert!(message.contains(needle), "{message:?} does not say {needle:?}");
    }
    // Refused before anything was written: the stamp still says 99.
    let db = sled::open(dir.path().join("db")).unwrap();
    let stamp = db.open_tree("meta").unwrap().get("format_version").unwrap().unwrap();
    assert_eq!(&stamp[..], &wire_header(99)[..]);
}

/// A value of a format this binary does not read, in a dir whose stamp says otherwise (a
/// hand-made or mixed-up dir): refused at open as a format problem, not as corruption.
#[test]
fn a_vote_in_a_newer_format_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let mut vote = wire_header(99).to_vec();
    vote.extend(postcard::to_allocvec(&Vote::new(1, 1)).unwrap());
    as_before_the_meta_file(dir.path(), None);
    poke(dir.path(), "meta", b"vote", Some(vote));

    let err = open_err(dir.path(), CLUSTER, 1);
    assert!(matches!(err, StoreError::UnreadableFormat { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("vote is in wire format v99"), "{message}");
    assert!(message.contains(&dir.path().display().to_string()), "{message}");
}

/// A data dir written before values carried a format header (format v0: bare postcard, no
/// stamp) is read as it is, stamped with the current format, and appended to in it.
#[tokio::test]
async fn a_dir_from_before_versioned_values_is_read_and_stamped() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let vote = Vote::new_committed(4, 1);
    as_before_the_meta_file(dir.path(), None);
    poke(dir.path(), "meta", b"format_version", None);
    poke(dir.path(), "meta", b"vote", Some(postcard::to_allocvec(&vote).unwrap()));
    for entry in [blank(1, 1), unchanged_since_v0(1, 2)] {
        let key = entry.log_id.index.to_be_bytes();
        poke(dir.path(), "log", &key, Some(postcard::to_allocvec(&entry).unwrap()));
    }
    // As the release with the log in sled left it.
    let identity = dir.path().join("IDENTITY");
    std::fs::write(&identity, "raftsched-data-dir v1 cluster=test-cluster node=1\n").unwrap();
    std::fs::remove_dir_all(dir.path().join("log")).unwrap();

    {
        let mut store = open(dir.path());
        assert_eq!(store.log_store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(log_ids(&mut store).await, [log_id(1, 1), log_id(1, 2)]);
        store.log_store.blocking_append([submit(1, 3, "b")]).await.unwrap();
    }
    let mut store = open(dir.path());
    let entries = store.log_store.try_get_log_entries(..).await.unwrap();
    assert_eq!(entries.len(), 3);
    assert!(
        matches!(&entries[2].payload, EntryPayload::Normal(Command::SubmitTasks { specs, .. }) if specs[0].name == "b"),
        "{entries:?}"
    );
    drop(store);

    let db = sled::open(dir.path().join("db")).unwrap();
    let stamp = db.open_tree("meta").unwrap().get("format_version").unwrap().unwrap();
    assert_eq!(&stamp[..], &wire_header(WIRE_FORMAT_VERSION)[..]);
    // Marked v3, so that a release from before segment files refuses it.
    assert_eq!(
        std::fs::read_to_string(&identity).unwrap(),
        "raftsched-data-dir v3 cluster=test-cluster node=1\n"
    );
    // The entries moved from sled's tree into the log's segment files, the old ones byte
    // for byte (still bare postcard, read as such), the new one with the header.
    assert!(
        !db.tree_names().iter().any(|name| name.as_ref() == b"log"),
        "the legacy tree is dropped"
    );
    let segments: Vec<u8> = std::fs::read_dir(dir.path().join("log"))
        .unwrap()
        .flat_map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    let contains = |needle: &[u8]| segments.windows(needle.len()).any(|w| w == needle);
    let old = postcard::to_allocvec(&unchanged_since_v0(1, 2)).unwrap();
    assert!(contains(&old), "the old entry is left as it was");
    let mut new = wire_header(WIRE_FORMAT_VERSION).to_vec();
    new.extend(postcard::to_allocvec(&submit(1, 3, "b")).unwrap());
    assert!(contains(&new), "new entries carry the header");
    assert!(
        !contains(&[&WIRE_MAGIC[..], &old[..]].concat()),
        "the old entry was not re-encoded"
    );
}

// --- snapshot checksum -----------------------------------------------------------------

/// A snapshot built by a store of three tasks, and the store's dir.
async fn built_snapshot() -> (tempfile::TempDir, openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let entries = vec![
        membership(1, 1, &[1]),
        submit(1, 2, "a"),
        submit(1, 3, "b"),
        submit(1, 4, "c"),
    ];
    store.log_store.blocking_append(entries.clone()).await.unwrap();
    apply(&mut store, entries).await;
    let snapshot = store
        .state_machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    (dir, snapshot)
}

/// The data dir's sled db, opened directly once the closed store's background threads let
/// go of its lock (within 5 s).
/// Changes the data of the snapshot stored in `dir` behind the store's back, keeping the
/// file's frame intact: what a bit flip in memory before the write would leave.
fn rewrite_stored_snapshot(dir: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let file = SnapshotFile::open(dir).unwrap();
    let (meta, mut data) = file.read().unwrap().expect("a stored snapshot");
    change(&mut data);
    file.write(&meta, &data).unwrap();
}

fn raw_db(dir: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::open(dir.join("db")) {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("open the db of {}: {e}", dir.display()),
        }
    }
}

/// The ways a snapshot arrives damaged: one flipped byte in the middle, cut short, empty.
fn damaged(sealed: &[u8]) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let mut flipped = sealed.to_vec();
    flipped[sealed.len() / 2] ^= 0x01;
    vec![
        ("flipped", flipped, "checksum mismatch: expected crc32 0x"),
        ("truncated", sealed[..sealed.len() - 7].to_vec(), "length mismatch"),
        ("empty", Vec::new(), "snapshot is not readable"),
    ]
}

#[tokio::test]
async fn a_corrupt_snapshot_is_refused_before_install_and_the_state_is_unchanged() {
    let (_leader_dir, snapshot) = built_snapshot().await;
    assert!(raftsched_store::snapshot_envelope::is_sealed(&snapshot.snapshot));
    let follower_dir = tempfile::tempdir().unwrap();
    let mut follower = open(follower_dir.path());
    apply(&mut follower, vec![membership(1, 1, &[1, 2]), submit(1, 2, "x")]).await;
    let before = scheduler(&follower);
    let applied_before = follower.state_machine.applied_state().await.unwrap();

    for (how, bytes, says) in damaged(&snapshot.snapshot) {
        let error = follower
            .state_machine
            .install_snapshot(&snapshot.meta, bytes)
            .await
            .expect_err(how);
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{how}: {error}");
        assert!(error.to_string().contains(says), "{how}: {error}");
        assert_eq!(scheduler(&follower), before, "{how}: the state changed");
        assert_eq!(follower.state_machine.applied_state().await.unwrap(), applied_before);
        assert!(
            follower.state_machine.get_current_snapshot().await.unwrap().is_none(),
            "{how}: a refused snapshot was stored"
        );
    }
    // The intact one installs.
    follower
        .state_machine
        .install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
        .await
        .unwrap();
    assert_eq!(scheduler(&follower).task_count(), 3);
}

#[tokio::test]
async fn a_corrupt_stored_snapshot_is_refused_at_open_naming_the_checksums() {
    let (dir, snapshot) = built_snapshot().await;
    rewrite_stored_snapshot(dir.path(), |data| {
        assert_eq!(*data, snapshot.snapshot);
        let middle = data.len() / 2;
        data[middle] ^= 0x80;
    });
    let message = open_err(dir.path(), CLUSTER, 1).to_string();
    for needle in ["snapshot checksum mismatch", "expected crc32 0x", "found 0x"] {
        assert!(message.contains(needle), "{message:?} does not say {needle:?}");
    }
}

/// A snapshot stored by an earlier release, in sled's `snapshot` tree rather than in the
/// file, and as the bare image (no envelope) before that, still loads: open moves it into
/// the file and empties the tree, and the next snapshot is written with a checksum.
#[tokio::test]
async fn a_snapshot_an_earlier_release_kept_in_sled_moves_into_the_file() {
    let (dir, snapshot) = built_snapshot().await;
    let image = raftsched_store::snapshot_envelope::open(&snapshot.snapshot)
        .unwrap()
        .to_vec();
    for (what, data) in [
        ("bare image", image.clone()),
        ("enveloped image", snapshot.snapshot.clone()),
    ] {
        std::fs::remove_file(dir.path().join(SNAPSHOT_FILE)).unwrap();
        {
            let db = raw_db(dir.path());
            let tree = db.open_tree("snapshot").unwrap();
            tree.insert(b"meta", raftsched_core::state::wire::encode_versioned(&snapshot.meta))
                .unwrap();
            tree.insert(b"data", data).unwrap();
            db.flush().unwrap();
        }
        let mut store = open(dir.path());
        assert_eq!(
            scheduler(&store),
            SchedulerState::from_snapshot_bytes(&image).unwrap(),
            "{what}"
        );
        let current = store.state_machine.get_current_snapshot().await.unwrap();
        assert_eq!(
            current.map(|current| current.meta),
            Some(snapshot.meta.clone()),
            "{what}"
        );
        assert!(dir.path().join(SNAPSHOT_FILE).exists(), "{what}: moved into the file");
        drop(store);
        let db = raw_db(dir.path());
        assert!(
            db.open_tree("snapshot").unwrap().is_empty(),
            "{what}: the tree is emptied"
        );
    }
}
