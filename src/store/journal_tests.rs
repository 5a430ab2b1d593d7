use std::path::Path;

use super::super::Store;
use super::*;

/// A decoded record, owned: tree, key, value (`None` for a removal).
type Owned = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

fn records(bytes: &[u8]) -> Vec<Owned> {
    let (records, _) = decode(bytes);
    records
        .into_iter()
        .map(|r| (r.tree.to_vec(), r.key.to_vec(), r.value.map(<[u8]>::to_vec)))
        .collect()
}

fn three() -> Vec<u8> {
    let mut buf = Vec::new();
    encode(&mut buf, b"msgs", b"k1", Some(b"v1"));
    encode(&mut buf, b"outbox", b"k2", None);
    encode(&mut buf, b"msgs", b"", Some(b""));
    buf
}

#[test]
fn records_read_back_as_written() {
    let got = records(&three());
    assert_eq!(
        got,
        vec![
            (b"msgs".to_vec(), b"k1".to_vec(), Some(b"v1".to_vec())),
            (b"outbox".to_vec(), b"k2".to_vec(), None),
            (b"msgs".to_vec(), vec![], Some(vec![])),
        ]
    );
    assert_eq!(decode(&three()).1, None, "no damage reported");
}

/// A file cut anywhere (a write cut short by a crash) reads back as the
/// whole records before the cut, and says so.
#[test]
fn a_file_cut_anywhere_gives_the_whole_records_before_the_cut() {
    let full = three();
    let mut ends = Vec::new();
    let mut buf = Vec::new();
    for (tree, key, value) in records(&full) {
        encode(&mut buf, &tree, &key, value.as_deref());
        ends.push(buf.len());
    }
    for cut in 0..full.len() {
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        let (got, damage) = decode(&full[..cut]);
        assert_eq!(got.len(), whole, "cut at {cut}");
        assert_eq!(
            damage.is_some(),
            !ends.contains(&cut) && cut > 0,
            "cut at {cut}"
        );
    }
}

/// A flipped byte stops the reading at its record; a length past the
/// limit is not allocated or read.
#[test]
fn damage_stops_the_reading_at_its_record() {
    let full = three();
    for at in 0..full.len() {
        let mut bad = full.clone();
        bad[at] ^= 0x40;
        let (got, damage) = decode(&bad);
        assert!(got.len() < 3, "flip at {at} read every record");
        assert!(damage.is_some(), "flip at {at} not reported");
    }
    let mut huge = (MAX_RECORD as u32 + 1).to_le_bytes().to_vec();
    huge.extend_from_slice(&[0; 12]);
    let (got, damage) = decode(&huge);
    assert!(got.is_empty());
    assert!(
        damage.as_deref().is_some_and(|d| d.contains("limit")),
        "{damage:?}"
    );
}

/// Copies the database files in `from` to `to` (sled's files, and the
/// journal unless `journal` is false): what is on disk now, as a `kill -9`
/// would leave it.
pub(in crate::store) fn copy_dir(from: &Path, to: &Path, journal: bool) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target, journal);
        } else if journal || e.file_name() != FILE {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The locator seq a copy of `dir`'s files holds, with or without the
/// journal (sled's files alone).
fn seq_in_copy(dir: &Path, with_journal: bool) -> u64 {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path(), with_journal);
    let s = Store::open_with(copy.path(), 1 << 20, None).unwrap();
    s.locator_seq().unwrap()
}

/// [`Store::flush`] makes a write durable through the journal alone, with
/// one `fdatasync`: a copy of the files taken right after it has the
/// write, and the same copy without the journal file does not (sled's
/// files never got it: its flusher is off and nothing checkpointed).
#[test]
fn a_flushed_write_is_in_the_journal_not_in_sleds_files() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_with(dir.path(), 1 << 20, None).unwrap();
    s.set_locator_seq(7).unwrap();
    let before = s.sync_count();
    s.flush().unwrap();
    assert_eq!(s.sync_count(), before + 1, "one fdatasync");
    assert_eq!(seq_in_copy(dir.path(), true), 7, "not durable");
    assert_eq!(seq_in_copy(dir.path(), false), 0, "sled flushed after all");
    // An open applies it into sled's files and empties the journal.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path(), true);
    drop(Store::open_with(copy.path(), 1 << 20, None).unwrap());
    assert_eq!(std::fs::metadata(copy.path().join(FILE)).unwrap().len(), 0);
    std::fs::remove_file(copy.path().join(FILE)).unwrap();
    let reopened = Store::open_with(copy.path(), 1 << 20, None).unwrap();
    assert_eq!(reopened.locator_seq().unwrap(), 7);
}

/// A write is in the journal's file once settled (what the worker does
/// before it reports a group of jobs), flushed or not; a checkpoint puts
/// everything into sled's files and empties the journal.
#[test]
fn settled_writes_are_in_the_journal_and_a_checkpoint_moves_them_to_sled() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_with(dir.path(), 1 << 20, None).unwrap();
    s.set_locator_seq(1).unwrap();
    assert_eq!(seq_in_copy(dir.path(), true), 0, "written before settling");
    s.settle().unwrap();
    assert_eq!(
        seq_in_copy(dir.path(), true),
        1,
        "not in the journal's file"
    );
    assert_eq!(seq_in_copy(dir.path(), false), 0, "sled flushed after all");
    s.set_locator_seq(2).unwrap();
    s.checkpoint().unwrap();
    assert_eq!(std::fs::metadata(dir.path().join(FILE)).unwrap().len(), 0);
    assert_eq!(seq_in_copy(dir.path(), false), 2, "not in sled's files");
    s.set_locator_seq(3).unwrap();
    s.settle().unwrap();
    assert_eq!(seq_in_copy(dir.path(), true), 3);
    assert_eq!(seq_in_copy(dir.path(), false), 2);
}

/// A flush with nothing new since the last one waits for nothing, but a
/// write-out (`fsync`, uncounted) never stands in for the next flush's
/// `fdatasync`: the tests that watch an acknowledgement need to see it.
#[test]
fn a_flush_skips_only_what_a_flush_synced() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_with(dir.path(), 1 << 20, None).unwrap();
    let start = s.sync_count();
    s.set_locator_seq(1).unwrap();
    s.flush().unwrap();
    s.flush().unwrap();
    assert_eq!(
        s.sync_count(),
        start + 1,
        "the second flush had nothing new"
    );
    s.set_locator_seq(2).unwrap();
    s.write_out().unwrap();
    assert_eq!(s.sync_count(), start + 1, "a write-out is not counted");
    s.flush().unwrap();
    assert_eq!(
        s.sync_count(),
        start + 2,
        "the flush after a write-out synced"
    );
}

/// A store in a new directory (sled's flusher off) and its tree `t`.
fn store_with_tree() -> (tempfile::TempDir, Store, super::super::tree::Tree) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_with(dir.path(), 1 << 20, None).unwrap();
    let t = s.tree("t").unwrap();
    (dir, s, t)
}

/// A failed write (here, one past the record limit, refused before it is
/// made) leaves neither sled nor the journal holding it, and the next
/// flush is a checkpoint, which empties a file that might end torn.
#[test]
fn a_failed_write_is_not_made_and_the_next_flush_checkpoints() {
    let (dir, s, t) = store_with_tree();
    t.insert(b"small", b"1").unwrap();
    assert!(t.insert(b"big", vec![0; MAX_RECORD]).is_err());
    assert_eq!(t.get(b"big").unwrap(), None);
    s.settle().unwrap();
    assert!(std::fs::metadata(dir.path().join(FILE)).unwrap().len() > 0);
    s.flush().unwrap();
    assert_eq!(
        std::fs::metadata(dir.path().join(FILE)).unwrap().len(),
        0,
        "no checkpoint"
    );
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path(), true);
    let c = Store::open_with(copy.path(), 1 << 20, None).unwrap();
    assert_eq!(
        c.tree("t").unwrap().get(b"small").unwrap().as_deref(),
        Some(&b"1"[..])
    );
}

/// Writes are applied in their order: a put, a removal and a put again
/// of the same key, across two trees, come back as the last of each.
#[test]
fn the_journal_is_applied_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_with(dir.path(), 1 << 20, None).unwrap();
    let (a, b) = (s.tree("t_a").unwrap(), s.tree("t_b").unwrap());
    a.insert(b"k", b"1").unwrap();
    b.insert(b"k", b"x").unwrap();
    a.remove(b"k").unwrap();
    a.insert(b"k", b"2").unwrap();
    b.remove(b"k").unwrap();
    assert!(
        a.compare_and_swap(b"n", None::<&[u8]>, Some(b"new"))
            .unwrap()
            .is_ok()
    );
    assert!(
        a.compare_and_swap(b"n", None::<&[u8]>, Some(b"lost"))
            .unwrap()
            .is_err()
    );
    s.flush().unwrap();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path(), true);
    let c = Store::open_with(copy.path(), 1 << 20, None).unwrap();
    let (a, b) = (c.tree("t_a").unwrap(), c.tree("t_b").unwrap());
    assert_eq!(a.get(b"k").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(b.get(b"k").unwrap(), None);
    assert_eq!(a.get(b"n").unwrap().as_deref(), Some(&b"new"[..]));
}

/// The latest value of a key written twice, and a key put then removed,
/// stay in front of sled until an ordered read of their tree drains them:
/// point reads see them at once, and the removed key never reaches sled.
#[test]
fn writes_are_held_in_front_of_sled_until_a_scan_drains_them() {
    let (_dir, _s, t) = store_with_tree();
    t.put(b"a", b"1").unwrap();
    t.put(b"a", b"2").unwrap();
    t.put(b"gone", b"x").unwrap();
    assert_eq!(t.remove(b"gone").unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(t.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(t.get(b"gone").unwrap(), None);
    assert_eq!(t.in_sled(b"a"), None, "drained without a scan");
    let keys: Vec<_> = t.iter().unwrap().keys().map(Result::unwrap).collect();
    assert_eq!(keys, [&b"a"[..]]);
    assert_eq!(t.in_sled(b"a").as_deref(), Some(&b"2"[..]));
    assert_eq!(t.in_sled(b"gone"), None);
}

const MAX_ENTRIES_U32: u32 = super::super::overlay::MAX_ENTRIES as u32;

/// The held writes are bounded: past `MAX_ENTRIES` keys everything held
/// is handed to a drain into sled, read from there until it is done.
#[test]
fn held_writes_are_drained_past_their_bound() {
    let (_dir, s, t) = store_with_tree();
    for i in 0..=MAX_ENTRIES_U32 {
        t.put(i.to_be_bytes(), b"v").unwrap();
    }
    let held = s.journal.with(|w| Ok(w.held())).unwrap();
    assert_eq!(held, 1, "only the write after the drain is held");
    assert_eq!(
        t.get(0u32.to_be_bytes()).unwrap().as_deref(),
        Some(&b"v"[..])
    );
    s.journal
        .with(|w| {
            w.drained();
            Ok(())
        })
        .unwrap();
    assert_eq!(t.in_sled(0u32.to_be_bytes()).as_deref(), Some(&b"v"[..]));
    assert_eq!(t.in_sled(MAX_ENTRIES_U32.to_be_bytes()), None, "held");
}

/// What recovery rests on: sled never holds a write whose record the
/// journal's file lacks. A key written twice, the second write drained
/// into sled and sled's files flushed (as its own flusher may do at any
/// time) without a settle: a copy of the files must come back with the
/// second value. Were the drain not to write the records first, the file
/// would hold only the first write's record, and applying it on open would
/// put the older value back over sled's newer one.
#[test]
fn a_drain_writes_the_records_first_so_recovery_never_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_with(dir.path(), 1 << 20, None).unwrap();
    s.set_locator_seq(1).unwrap();
    s.settle().unwrap();
    s.set_locator_seq(2).unwrap();
    assert_eq!(
        seq_in_copy(dir.path(), true),
        1,
        "unsettled write in the file"
    );
    s.meta.iter().unwrap().for_each(drop);
    s.db.flush().unwrap();
    assert_eq!(seq_in_copy(dir.path(), false), 2, "sled's files lack it");
    assert_eq!(seq_in_copy(dir.path(), true), 2, "recovery went back");
}
