use super::*;

/// A segment's size, to size test entries against.
const SEG: usize = SEGMENT_BYTES as usize;

fn payload(index: u64, len: usize) -> Vec<u8> {
    (0..len).map(|n| (index as usize + n) as u8).collect()
}

fn entries(range: std::ops::Range<u64>, len: usize) -> Vec<(u64, Vec<u8>)> {
    range.map(|i| (i, payload(i, len))).collect()
}

fn read_all(segments: &Segments) -> Vec<(u64, Vec<u8>)> {
    segments
        .locate(0, u64::MAX)
        .into_iter()
        .map(|location| (location.index, location.read().expect("reads back")))
        .collect()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn appended_entries_read_back_after_a_reopen_across_rolled_segments() {
    let dir = tempfile::tempdir().unwrap();
    let written = entries(1..21, SEG / 8);
    {
        let mut segments = Segments::open(dir.path()).unwrap();
        for batch in written.chunks(3) {
            segments.append(batch).unwrap();
        }
        segments.sync().unwrap();
        assert_eq!(segments.bounds(), Some((1, 20)));
    }
    let segments = Segments::open(dir.path()).unwrap();
    assert_eq!(segments.cut_at_open, 0);
    assert_eq!(read_all(&segments), written);
    // 20 eighths of a segment, eight to a segment: three files.
    assert_eq!(files(dir.path()).len(), 3, "{:?}", files(dir.path()));
    assert_eq!(segments.locate(5, 8).len(), 3);
}

#[test]
fn out_of_order_appends_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut segments = Segments::open(dir.path()).unwrap();
    segments.append(&entries(5..8, 10)).unwrap();
    assert!(segments.append(&entries(9..10, 10)).is_err());
    assert!(segments.append(&entries(7..8, 10)).is_err());
    segments.append(&entries(8..9, 10)).unwrap();
    assert_eq!(segments.bounds(), Some((5, 8)));
}

#[test]
fn an_entry_over_the_record_limit_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut segments = Segments::open(dir.path()).unwrap();
    segments.append(&entries(1..2, 10)).unwrap();
    let at_limit = vec![(2, vec![0_u8; MAX_RECORD_BYTES])];
    let over = vec![(2, vec![0_u8; MAX_RECORD_BYTES + 1])];
    let error = segments.append(&over).unwrap_err();
    assert!(error.to_string().contains("over the 256 MiB"), "{error}");
    assert_eq!(segments.bounds(), Some((1, 1)), "nothing written");
    segments.append(&at_limit).unwrap();
    segments.sync().unwrap();
    drop(segments);
    let reopened = Segments::open(dir.path()).unwrap();
    assert_eq!(reopened.bounds(), Some((1, 2)), "an entry at the limit reads back");
    assert_eq!(reopened.cut_at_open, 0);
}

#[test]
fn a_torn_tail_of_the_last_segment_is_cut_off_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut segments = Segments::open(dir.path()).unwrap();
        segments.append(&entries(1..4, 100)).unwrap();
        segments.sync().unwrap();
    }
    let path = dir.path().join(segment_name(1));
    let whole = std::fs::metadata(&path).unwrap().len();
    // Half of a fourth record: a header and part of its payload.
    let mut record = Vec::new();
    encode_record(4, &payload(4, 100), &mut record);
    let file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut &file, &record[..60]).unwrap();
    drop(file);
    let mut segments = Segments::open(dir.path()).unwrap();
    assert_eq!(segments.cut_at_open, 60);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
    assert_eq!(read_all(&segments), entries(1..4, 100));
    segments.append(&entries(4..5, 100)).unwrap();
    assert_eq!(read_all(&Segments::open(dir.path()).unwrap()), entries(1..5, 100));
}

#[test]
fn damage_anywhere_but_the_last_tail_refuses_the_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut segments = Segments::open(dir.path()).unwrap();
        segments.append(&entries(1..10, SEG / 4)).unwrap();
        segments.sync().unwrap();
    }
    let first = dir.path().join(segment_name(1));
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[HEADER_BYTES + 7] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    let error = Segments::open(dir.path()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    assert!(error.to_string().contains("not the last"), "{error}");

    let stray = tempfile::tempdir().unwrap();
    std::fs::write(stray.path().join("notes.txt"), b"x").unwrap();
    assert!(
        Segments::open(stray.path())
            .unwrap_err()
            .to_string()
            .contains("not a log segment")
    );
}

#[test]
fn a_gap_between_segments_refuses_the_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut segments = Segments::open(dir.path()).unwrap();
        segments.append(&entries(1..6, SEG * 5 / 8)).unwrap();
        segments.sync().unwrap();
    }
    let names = files(dir.path());
    assert!(names.len() >= 3, "{names:?}");
    std::fs::remove_file(dir.path().join(&names[1])).unwrap();
    let error = Segments::open(dir.path()).unwrap_err();
    assert!(error.to_string().contains("ends before entry"), "{error}");
}

#[test]
fn truncation_removes_the_suffix_durably_and_appends_go_on_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut segments = Segments::open(dir.path()).unwrap();
    segments.append(&entries(1..9, SEG * 3 / 8)).unwrap();
    // Into the middle of the second segment, deleting the third.
    segments.truncate_from(5).unwrap();
    assert_eq!(segments.bounds(), Some((1, 4)));
    let reopened = Segments::open(dir.path()).unwrap();
    assert_eq!(read_all(&reopened), entries(1..5, SEG * 3 / 8));
    drop(reopened);
    segments.append(&entries(5..7, 10)).unwrap();
    segments.sync().unwrap();
    let mut expected = entries(1..5, SEG * 3 / 8);
    expected.extend(entries(5..7, 10));
    assert_eq!(read_all(&Segments::open(dir.path()).unwrap()), expected);
    // Everything.
    segments.truncate_from(0).unwrap();
    assert_eq!(segments.bounds(), None);
    assert!(files(dir.path()).is_empty());
    segments.append(&entries(3..4, 10)).unwrap();
    assert_eq!(segments.bounds(), Some((3, 3)));
}

#[test]
fn a_purge_deletes_whole_segments_and_hides_the_purged_part_of_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut segments = Segments::open(dir.path()).unwrap();
    segments.append(&entries(1..13, SEG * 3 / 8)).unwrap();
    let before = files(dir.path()).len();
    let freed = segments.purge_through(7).unwrap();
    assert!(freed > 0);
    assert!(files(dir.path()).len() < before);
    assert_eq!(segments.bounds(), Some((8, 12)));
    assert_eq!(read_all(&segments), entries(8..13, SEG * 3 / 8));
    // Past the last entry: every file goes, and the log starts again where Raft says.
    segments.purge_through(20).unwrap();
    assert!(files(dir.path()).is_empty());
    assert_eq!(segments.bounds(), None);
    assert!(segments.append(&entries(5..6, 10)).is_err(), "below the purge point");
    segments.append(&entries(21..23, 10)).unwrap();
    assert_eq!(segments.bounds(), Some((21, 22)));
}
