//! A backup taken of applied entries, written, read back and seeded into new data dirs; and
//! every damaged or unusable input refused with what to do.

use futures::stream;
use openraft::EntryPayload;
use openraft::storage::RaftLogReader;

use super::*;
use crate::raft_types::Entry;
use crate::raft_types::test_log_id as log_id;
use raftsched_core::state::Command;
use raftsched_core::state::TaskSpec;

fn members(ids: &[NodeId]) -> BTreeMap<NodeId, MemberNode> {
    ids.iter()
        .map(|&id| {
            let port = 7000 + id;
            (
                id,
                MemberNode::new(format!("127.0.0.1:{port}"), format!("127.0.0.1:{}", port + 100)),
            )
        })
        .collect()
}

/// A data dir of node 1 that applied `tasks` submissions in term 3, and its shared state.
async fn applied_store(dir: &Path, tasks: u64) -> SharedState {
    let Store { mut state_machine, .. } = Store::open(dir, "old", 1).unwrap();
    let entries = (1..=tasks).map(|index| {
        let spec = TaskSpec::builder(format!("t{index}")).queue("q").build();
        let entry = Entry {
            log_id: log_id(3, index),
            payload: EntryPayload::Normal(Command::SubmitTasks {
                now_ms: index,
                specs: vec![spec],
            }),
        };
        Ok((entry, None))
    });
    state_machine.apply(stream::iter(entries)).await.unwrap();
    state_machine.shared()
}

#[tokio::test]
async fn a_backup_seeds_data_dirs_that_open_at_its_state_with_the_new_members() {
    let old = tempfile::tempdir().unwrap();
    let shared = applied_store(old.path(), 25).await;
    let digest = shared.read().scheduler.digest();
    let backup = Backup::capture(&shared).expect("entries were applied");
    let bytes = backup.to_file_bytes().unwrap();
    let read = Backup::from_file_bytes(Path::new("b"), &bytes).unwrap();
    let summary = read.summary();
    assert_eq!(
        (summary.last_log_index, summary.last_log_term, summary.tasks),
        (25, 3, 25)
    );

    let new = tempfile::tempdir().unwrap();
    let new_members = members(&[1, 2, 3]);
    for id in 1..=3 {
        let dir = new.path().join(format!("n{id}"));
        read.seed(&dir, "restored", id, &new_members).await.unwrap();
        let Store {
            mut log_store,
            mut state_machine,
            ..
        } = Store::open(&dir, "restored", id).unwrap();
        let (applied, membership) = state_machine.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(3, 25)));
        let nodes: BTreeMap<NodeId, MemberNode> = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        assert_eq!(nodes, new_members);
        assert_eq!(state_machine.shared().read().scheduler.digest(), digest);
        let log_state = log_store.get_log_state().await.unwrap();
        assert_eq!(log_state.last_purged_log_id, Some(log_id(3, 25)));
        assert_eq!(log_state.last_log_id, Some(log_id(3, 25)));
        let vote = log_store.read_vote().await.unwrap().expect("a vote");
        assert_eq!(vote, Vote::new(4, id), "one term past the backup's last entry");
        assert!(state_machine.get_current_snapshot().await.unwrap().is_some());
    }
}

#[tokio::test]
async fn a_nodes_own_snapshot_file_reads_as_a_backup() {
    let old = tempfile::tempdir().unwrap();
    let shared = applied_store(old.path(), 3).await;
    let backup = Backup::capture(&shared).unwrap();
    let file = snapshot_file::SnapshotFile::open(old.path()).unwrap();
    file.write(&backup.meta, &backup.data).unwrap();
    let read = Backup::read(&file.path()).unwrap();
    assert_eq!(read.summary(), backup.summary());
}

#[tokio::test]
async fn damaged_empty_or_missing_backups_are_refused_before_any_dir_is_written() {
    let old = tempfile::tempdir().unwrap();
    let shared = applied_store(old.path(), 5).await;
    let good = Backup::capture(&shared).unwrap().to_file_bytes().unwrap();
    let path = Path::new("backup.snap");
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    for (case, bytes) in [
        ("cut short", good[..good.len() / 2].to_vec()),
        ("a flipped byte", flipped),
        ("not a snapshot", b"hello".to_vec()),
        ("empty", Vec::new()),
    ] {
        let err = Backup::from_file_bytes(path, &bytes).unwrap_err().to_string();
        assert!(
            err.contains("backup.snap is not a usable backup") && err.contains("snapshot save"),
            "{case}: {err}"
        );
    }

    let empty_dir = tempfile::tempdir().unwrap();
    let Store { state_machine, .. } = Store::open(empty_dir.path(), "c", 1).unwrap();
    assert!(Backup::capture(&state_machine.shared()).is_none());

    let err = Backup::read(Path::new("/nonexistent/backup.snap"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/backup.snap"), "{err}");
}

#[tokio::test]
async fn seeding_refuses_a_used_dir_and_a_member_list_without_this_node() {
    let old = tempfile::tempdir().unwrap();
    let backup = Backup::capture(&applied_store(old.path(), 2).await).unwrap();
    let err = backup
        .seed(old.path(), "c", 1, &members(&[1, 2, 3]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not empty") && err.contains("--data-dir"), "{err}");
    assert!(old.path().join("IDENTITY").exists(), "the used dir was left alone");

    let new = tempfile::tempdir().unwrap();
    let dir = new.path().join("n4");
    let err = backup
        .seed(&dir, "c", 4, &members(&[1, 2, 3]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--initial-members") && err.contains("node 4 is not listed"),
        "{err}"
    );
    let err = backup
        .seed(&dir, "c", 1, &members(&[0, 1]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("start at 1"), "{err}");
    assert!(!dir.exists(), "nothing was written");
}
