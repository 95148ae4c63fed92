use oort_engine::{Map, Payload, SourcePositions, Value};

use super::*;

fn event(n: i64) -> SourceEvent {
    SourceEvent::map(Map::from([(Arc::from("n"), Value::Int(n))]))
}

fn n(event: &SourceEvent) -> i64 {
    match &event.payload {
        Payload::Map(map) => map["n"].as_i64().unwrap(),
        Payload::Bytes(_) => panic!("a map was journaled"),
    }
}

fn ns(events: &[SourceEvent]) -> Vec<i64> {
    events.iter().map(n).collect()
}

/// Every event after `after`, segment after segment.
fn replay(journal: &Journal, mut after: u64) -> Vec<(u64, i64)> {
    let mut all = Vec::new();
    loop {
        let events = journal.read_after(after).unwrap();
        let Some(last) = events.last() else { return all };
        after = last.position.unwrap();
        all.extend(events.iter().map(|e| (e.position.unwrap(), n(e))));
    }
}

#[tokio::test]
async fn what_is_appended_and_synced_is_replayed_after_a_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let journals = Arc::new(Journals::new(dir.path(), 1 << 20).with_segment_bytes(50));
    assert!(journals.active("s").is_none(), "no rule holds it yet");
    let hold = journals.hold("s", "r1", None).unwrap();
    let journal = journals.active("s").expect("held");
    let mut positions = Vec::new();
    for batch in [1..=4, 5..=7, 8..=10] {
        let appended = journal.append(batch.map(event).collect()).unwrap();
        positions.extend(appended.iter().map(|e| e.position.unwrap()));
    }
    assert_eq!(positions, (1..=10).collect::<Vec<_>>());
    hold.persist(10).await.unwrap();
    assert!(fs::read_dir(dir.path().join(hex("s"))).unwrap().count() > 1, "small segments roll");
    drop(hold);
    assert!(journals.active("s").is_none(), "let go by its last rule");

    let journals = Arc::new(Journals::new(dir.path(), 1 << 20).with_segment_bytes(50));
    let hold = journals.hold("s", "r1", Some(4)).unwrap();
    let replayed = replay(hold.journal(), 4);
    assert_eq!(replayed, (5..=10).map(|p| (p, p as i64)).collect::<Vec<_>>());
    let more = hold.journal().append(vec![event(11)]).unwrap();
    assert_eq!(more[0].position, Some(11), "positions go on after a reopen");
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_and_its_positions_taken_again() {
    let dir = tempfile::tempdir().unwrap();
    let journals = Arc::new(Journals::new(dir.path(), 1 << 20));
    let hold = journals.hold("s", "r", None).unwrap();
    hold.journal().append((1..=3).map(event).collect()).unwrap();
    hold.persist(3).await.unwrap();
    drop(hold);
    let segment = segment_path(&dir.path().join(hex("s")), 1);
    let mut bytes = fs::read(&segment).unwrap();
    bytes.truncate(bytes.len() - 3);
    fs::write(&segment, &bytes).unwrap();

    let journals = Arc::new(Journals::new(dir.path(), 1 << 20));
    let hold = journals.hold("s", "r", Some(0)).unwrap();
    assert_eq!(replay(hold.journal(), 0), vec![(1, 1), (2, 2)], "the torn third event is gone");
    let appended = hold.journal().append(vec![event(30)]).unwrap();
    assert_eq!(appended[0].position, Some(3));
    assert_eq!(replay(hold.journal(), 2), vec![(3, 30)]);
}

#[tokio::test]
async fn segments_behind_every_hold_are_deleted_and_a_full_journal_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let journals = Arc::new(Journals::new(dir.path(), 2_000).with_segment_bytes(300));
    let slow = journals.hold("s", "slow", None).unwrap();
    let fast = journals.hold("s", "fast", None).unwrap();
    let journal = Arc::clone(slow.journal());
    let mut appended = 0;
    let error = loop {
        match journal.append(vec![event(appended)]) {
            Ok(_) => appended += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(error, JournalError::Full { .. }), "{error}");
    assert!(error.to_string().contains("has not saved a checkpoint"), "{error}");
    let segments = || fs::read_dir(dir.path().join(hex("s"))).unwrap().count();
    let before = segments();
    fast.release(appended as u64);
    assert_eq!(segments(), before, "the slow rule still needs them");
    slow.release(appended as u64 / 2);
    assert!(segments() < before, "what both are past is deleted");
    journal.append(vec![event(-1)]).expect("room again");
    assert_eq!(ns(&journal.read_after(appended as u64).unwrap()), vec![-1]);
}

#[test]
fn a_hold_ahead_of_a_lost_journal_keeps_positions_unique() {
    let dir = tempfile::tempdir().unwrap();
    let journals = Arc::new(Journals::new(dir.path(), 1 << 20));
    let hold = journals.hold("s", "r", Some(41)).unwrap();
    let appended = hold.journal().append(vec![event(1)]).unwrap();
    assert_eq!(appended[0].position, Some(42));
}

#[tokio::test]
async fn the_journal_of_a_deleted_stream_is_forgotten_unless_held() {
    let dir = tempfile::tempdir().unwrap();
    let journals = Arc::new(Journals::new(dir.path(), 1 << 20));
    let hold = journals.hold("s", "r", None).unwrap();
    hold.journal().append(vec![event(1)]).unwrap();
    assert!(!journals.forget("s").unwrap(), "a held journal stays");
    drop(hold);
    assert!(journals.forget("s").unwrap());
    assert!(!dir.path().join(hex("s")).exists());
    assert!(!journals.forget("s").unwrap(), "nothing left to forget");
}
