use oort_sql::{TimeUnit, WindowSpec};

use super::{TimeMode, WindowBatch, WindowOperator};
use crate::row::Row;
use crate::value::{Map, Value};

const S: i64 = 1_000;
const MIN: i64 = 60 * S;

fn tumbling(unit: TimeUnit, length: u64) -> WindowSpec {
    WindowSpec::Tumbling { unit, length }
}

fn hopping(length: u64, interval: u64) -> WindowSpec {
    WindowSpec::Hopping { unit: TimeUnit::Second, length, interval }
}

fn sliding(length: u64, delay: Option<u64>) -> WindowSpec {
    WindowSpec::Sliding { unit: TimeUnit::Second, length, delay }
}

fn session(unit: TimeUnit, length: u64, timeout: u64) -> WindowSpec {
    WindowSpec::Session { unit, length, timeout }
}

fn count(length: u64, interval: Option<u64>) -> WindowSpec {
    WindowSpec::Count { length, interval }
}

fn processing(spec: WindowSpec) -> WindowOperator {
    WindowOperator::new(&spec, TimeMode::Processing)
}

fn event(spec: WindowSpec, late_tolerance_ms: i64) -> WindowOperator {
    WindowOperator::new(&spec, TimeMode::Event { late_tolerance_ms })
}

fn row(id: i64, timestamp: i64) -> Row {
    let mut fields = Map::new();
    fields.insert("id".into(), Value::Int(id));
    Row::new(fields, timestamp)
}

fn ids(batch: &WindowBatch) -> Vec<i64> {
    batch.rows.iter().map(|r| r.get("id").and_then(Value::as_i64).expect("id")).collect()
}

/// A step of a test script.
#[derive(Clone, Copy)]
enum Step {
    /// Row `id` at time `at`: processing time (`now`; the row's own timestamp
    /// is a decoy), or the row's timestamp in event time (`now` is a decoy).
    Ev(i64, i64),
    /// `on_tick(at)`.
    Tick(i64),
}
use Step::{Ev, Tick};

/// An emitted window: (time of the call that emitted it, start, end, ids).
type Emitted = (i64, i64, i64, Vec<i64>);

fn run(op: &mut WindowOperator, steps: &[Step]) -> Vec<Emitted> {
    let mut emitted = Vec::new();
    for &step in steps {
        let (at, batches) = match step {
            Ev(id, at) => match op.mode {
                TimeMode::Processing => (at, op.on_event(row(id, -1), at)),
                TimeMode::Event { .. } => (at, op.on_event(row(id, at), -1)),
            },
            Tick(at) => (at, op.on_tick(at)),
        };
        emitted.extend(batches.iter().map(|b| (at, b.start, b.end, ids(b))));
    }
    emitted
}

// ---------------------------------------------------------------- tumbling

#[test]
fn tumbling_windows_align_to_natural_time() {
    let mut op = processing(tumbling(TimeUnit::Second, 10));
    let steps =
        [Ev(1, 12 * S), Ev(2, 15 * S), Tick(20 * S - 1), Tick(20 * S), Ev(3, 21 * S), Tick(30 * S - 1), Tick(30 * S)];
    assert_eq!(run(&mut op, &steps), vec![(20 * S, 10 * S, 20 * S, vec![1, 2]), (30 * S, 20 * S, 30 * S, vec![3])]);
    assert_eq!(op.buffered(), 0);
    assert_eq!(op.next_deadline(), None);
}

#[test]
fn tumbling_deadlines() {
    let mut op = processing(tumbling(TimeUnit::Second, 10));
    assert_eq!(op.next_deadline(), None);
    op.on_event(row(1, 0), 12 * S);
    assert_eq!(op.next_deadline(), Some(20 * S));
    op.on_event(row(2, 0), 15 * S);
    assert_eq!(op.next_deadline(), Some(20 * S));
    assert_eq!(op.buffered(), 2);
    assert!(op.on_tick(19 * S).is_empty());
    assert_eq!(op.on_tick(20 * S).len(), 1);
    assert_eq!(op.next_deadline(), None);
    op.on_event(row(3, 0), 47 * S);
    assert_eq!(op.next_deadline(), Some(50 * S));
}

#[test]
fn tumbling_row_at_a_boundary_opens_the_next_window() {
    let mut op = processing(tumbling(TimeUnit::Second, 10));
    let steps = [Ev(1, 19_999), Ev(2, 20 * S), Tick(20 * S), Tick(30 * S)];
    assert_eq!(run(&mut op, &steps), vec![(20 * S, 10 * S, 20 * S, vec![1]), (30 * S, 20 * S, 30 * S, vec![2])]);
}

#[test]
fn tumbling_window_closed_by_a_later_event_when_the_tick_is_late() {
    let mut op = processing(tumbling(TimeUnit::Second, 10));
    let steps = [Ev(1, 12 * S), Ev(2, 25 * S), Tick(31 * S)];
    assert_eq!(run(&mut op, &steps), vec![(25 * S, 10 * S, 20 * S, vec![1]), (31 * S, 20 * S, 30 * S, vec![2])]);
}

#[test]
fn empty_windows_emit_nothing_by_default() {
    let mut op = processing(tumbling(TimeUnit::Second, 10));
    let steps = [Tick(5 * S), Ev(1, 12 * S), Tick(20 * S), Tick(30 * S), Tick(40 * S), Ev(2, 45 * S), Tick(50 * S)];
    assert_eq!(run(&mut op, &steps), vec![(20 * S, 10 * S, 20 * S, vec![1]), (50 * S, 40 * S, 50 * S, vec![2])]);
}

#[test]
fn empty_windows_emitted_on_request() {
    let mut op = processing(tumbling(TimeUnit::Second, 10)).with_emit_empty(true);
    assert_eq!(op.next_deadline(), None);
    assert!(op.on_tick(5 * S).is_empty());
    assert_eq!(op.next_deadline(), Some(10 * S));
    let steps = [Tick(10 * S), Ev(1, 12 * S), Tick(30 * S)];
    assert_eq!(
        run(&mut op, &steps),
        vec![(10 * S, 0, 10 * S, vec![]), (30 * S, 10 * S, 20 * S, vec![1]), (30 * S, 20 * S, 30 * S, vec![])]
    );
    assert_eq!(op.next_deadline(), Some(40 * S));
}

#[test]
fn tumbling_minutes_and_milliseconds() {
    let mut op = processing(tumbling(TimeUnit::Minute, 5));
    let steps = [Ev(1, 4 * MIN + 59 * S), Ev(2, 5 * MIN), Tick(10 * MIN)];
    assert_eq!(run(&mut op, &steps), vec![(5 * MIN, 0, 5 * MIN, vec![1]), (10 * MIN, 5 * MIN, 10 * MIN, vec![2])]);

    let mut op = processing(tumbling(TimeUnit::Millisecond, 100));
    let steps = [Ev(1, 1_234), Ev(2, 1_299), Ev(3, 1_300), Tick(1_400)];
    assert_eq!(run(&mut op, &steps), vec![(1_300, 1_200, 1_300, vec![1, 2]), (1_400, 1_300, 1_400, vec![3])]);
}

#[test]
fn day_windows_align_to_local_midnight_with_an_offset() {
    const DAY: i64 = 86_400_000;
    const HOUR: i64 = 3_600_000;
    let day = 19_723 * DAY; // 2024-01-01T00:00:00Z
    let mut utc = processing(tumbling(TimeUnit::Day, 1));
    utc.on_event(row(1, 0), day + 10 * HOUR);
    assert_eq!(utc.next_deadline(), Some(day + DAY));

    // UTC+8: 10:00Z is 18:00 local; the local day ends at 16:00Z.
    let mut local = processing(tumbling(TimeUnit::Day, 1)).with_utc_offset(8 * HOUR);
    local.on_event(row(1, 0), day + 10 * HOUR);
    assert_eq!(local.next_deadline(), Some(day + 16 * HOUR));
    let batches = local.on_tick(day + 16 * HOUR);
    assert_eq!((batches[0].start, batches[0].end), (day - 8 * HOUR, day + 16 * HOUR));
}

#[test]
fn processing_time_uses_now_not_the_row_timestamp() {
    let mut op = processing(tumbling(TimeUnit::Second, 10));
    op.on_event(row(1, 999_999_999), 12 * S);
    let batches = op.on_tick(20 * S);
    assert_eq!((batches[0].start, batches[0].end), (10 * S, 20 * S));
    // The row is handed back untouched.
    assert_eq!(batches[0].rows[0].timestamp, 999_999_999);
}

#[test]
fn processing_time_never_goes_back() {
    let mut op = processing(tumbling(TimeUnit::Second, 10));
    let steps = [Ev(1, 15 * S), Ev(2, 5 * S), Tick(3 * S), Tick(20 * S)];
    assert_eq!(run(&mut op, &steps), vec![(20 * S, 10 * S, 20 * S, vec![1, 2])]);
    assert_eq!(op.watermark(), Some(20 * S));
}

// ---------------------------------------------------------------- hopping

#[test]
fn hopping_row_belongs_to_every_window_containing_it() {
    let mut op = processing(hopping(10, 5));
    let steps = [Ev(1, 3 * S), Ev(2, 7 * S)];
    assert_eq!(run(&mut op, &steps), vec![(7 * S, -5 * S, 5 * S, vec![1])]);
    assert_eq!(op.next_deadline(), Some(10 * S));
    assert_eq!(op.buffered(), 2);
    assert_eq!(run(&mut op, &[Tick(10 * S)]), vec![(10 * S, 0, 10 * S, vec![1, 2])]);
    assert_eq!(op.buffered(), 1, "the row at 3 s is in no later window");
    let steps = [Ev(3, 12 * S), Tick(15 * S)];
    assert_eq!(run(&mut op, &steps), vec![(15 * S, 5 * S, 15 * S, vec![2, 3])]);
    assert_eq!(op.buffered(), 1, "the row at 7 s is in no later window");
    assert_eq!(op.next_deadline(), Some(20 * S));
    assert_eq!(run(&mut op, &[Tick(20 * S), Tick(25 * S)]), vec![(20 * S, 10 * S, 20 * S, vec![3])]);
    assert_eq!(op.buffered(), 0);
    assert_eq!(op.next_deadline(), None);
}

#[test]
fn hopping_windows_end_at_multiples_of_the_interval() {
    // Length 10 s, one every 4 s: a row at 9 s is in [2, 12) and [6, 16).
    let mut op = processing(hopping(10, 4));
    let steps = [Ev(1, 9 * S), Tick(12 * S), Tick(16 * S), Tick(20 * S)];
    assert_eq!(run(&mut op, &steps), vec![(12 * S, 2 * S, 12 * S, vec![1]), (16 * S, 6 * S, 16 * S, vec![1])]);
}

#[test]
fn hopping_with_an_interval_longer_than_the_length_skips_gaps() {
    // Windows [5, 10), [15, 20), ...
    let mut op = processing(hopping(5, 10));
    op.on_event(row(1, 0), 2 * S);
    assert_eq!(op.buffered(), 0, "a row between windows belongs to none");
    assert_eq!(op.next_deadline(), None);
    let steps = [Ev(2, 7 * S), Tick(10 * S), Ev(3, 12 * S), Tick(20 * S)];
    assert_eq!(run(&mut op, &steps), vec![(10 * S, 5 * S, 10 * S, vec![2])]);
}

#[test]
fn hopping_emits_empty_windows_on_request() {
    let mut op = processing(hopping(10, 5)).with_emit_empty(true);
    let steps = [Ev(1, 3 * S), Tick(15 * S), Tick(20 * S)];
    assert_eq!(
        run(&mut op, &steps),
        vec![
            (15 * S, -5 * S, 5 * S, vec![1]),
            (15 * S, 0, 10 * S, vec![1]),
            (15 * S, 5 * S, 15 * S, vec![]),
            (20 * S, 10 * S, 20 * S, vec![]),
        ]
    );
}

// ---------------------------------------------------------------- sliding

#[test]
fn sliding_window_on_each_event_left_open_right_closed() {
    let mut op = processing(sliding(10, None));
    let steps = [Ev(1, S), Ev(2, 2 * S), Ev(3, 5 * S), Ev(4, 12 * S), Ev(5, 30 * S)];
    assert_eq!(
        run(&mut op, &steps),
        vec![
            (S, -9 * S, S, vec![1]),
            (2 * S, -8 * S, 2 * S, vec![1, 2]),
            (5 * S, -5 * S, 5 * S, vec![1, 2, 3]),
            // (2 s, 12 s]: the row at exactly 2 s is out.
            (12 * S, 2 * S, 12 * S, vec![3, 4]),
            (30 * S, 20 * S, 30 * S, vec![5]),
        ]
    );
    assert_eq!(op.buffered(), 1);
    assert_eq!(op.next_deadline(), None);
    assert!(op.on_tick(100 * S).is_empty());
    assert_eq!(op.buffered(), 0, "no future window needs the last row");
}

#[test]
fn sliding_window_with_delay() {
    let mut op = processing(sliding(10, Some(5)));
    assert!(op.on_event(row(1, 0), 10 * S).is_empty());
    assert_eq!(op.next_deadline(), Some(15 * S));
    assert!(op.on_event(row(2, 0), 13 * S).is_empty());
    assert_eq!(op.next_deadline(), Some(15 * S));
    let steps = [Ev(3, 15 * S), Tick(17 * S), Tick(18 * S), Tick(20 * S)];
    assert_eq!(
        run(&mut op, &steps),
        vec![
            // (0, 15]: the row arriving exactly at the end is in.
            (15 * S, 0, 15 * S, vec![1, 2, 3]),
            (18 * S, 3 * S, 18 * S, vec![1, 2, 3]),
            (20 * S, 5 * S, 20 * S, vec![1, 2, 3]),
        ]
    );
    assert_eq!(op.next_deadline(), None);
    assert_eq!(op.buffered(), 2, "rows after 10 s may still be in the window of a next row");
    op.on_tick(30 * S);
    assert_eq!(op.buffered(), 0);
}

#[test]
fn sliding_delay_window_includes_rows_after_the_trigger() {
    let mut op = processing(sliding(2, Some(3)));
    let steps = [Ev(1, 10 * S), Ev(2, 11 * S), Ev(3, 13 * S), Ev(4, 14 * S), Tick(20 * S)];
    assert_eq!(
        run(&mut op, &steps),
        vec![
            (13 * S, 8 * S, 13 * S, vec![1, 2, 3]),
            (14 * S, 9 * S, 14 * S, vec![1, 2, 3, 4]),
            (20 * S, 11 * S, 16 * S, vec![3, 4]),
            (20 * S, 12 * S, 17 * S, vec![3, 4]),
        ]
    );
}

// ---------------------------------------------------------------- session

#[test]
fn session_closes_after_timeout() {
    let mut op = processing(session(TimeUnit::Second, 60, 5));
    let steps = [Ev(1, S), Ev(2, 3 * S), Ev(3, 7 * S)];
    assert!(run(&mut op, &steps).is_empty());
    assert_eq!(op.next_deadline(), Some(12 * S));
    let steps = [Tick(11 * S), Ev(4, 20 * S), Tick(25 * S)];
    assert_eq!(run(&mut op, &steps), vec![(20 * S, S, 12 * S, vec![1, 2, 3]), (25 * S, 20 * S, 25 * S, vec![4])]);
    assert_eq!(op.next_deadline(), None);
    assert_eq!(op.buffered(), 0);
}

#[test]
fn session_row_exactly_at_the_timeout_continues_the_session() {
    // eKuiper ends a session only on a gap longer than the timeout.
    let mut op = processing(session(TimeUnit::Second, 60, 5));
    let steps = [Ev(1, S), Ev(2, 6 * S), Tick(11 * S)];
    assert_eq!(run(&mut op, &steps), vec![(11 * S, S, 11 * S, vec![1, 2])]);
}

#[test]
fn session_is_cut_at_multiples_of_its_maximum_length() {
    // Max 10 s, timeout 5 s; a row every 2 s from 3 s to 29 s.
    let mut op = processing(session(TimeUnit::Second, 10, 5));
    let mut steps = Vec::new();
    for (id, second) in (3..30).step_by(2).enumerate() {
        if second == 21 {
            steps.push(Tick(20 * S));
        }
        steps.push(Ev(id as i64 + 1, second * S));
    }
    let emitted = run(&mut op, &steps);
    // Started at 3 s, the session has lasted 10 s at the check at 20 s (not at 10 s).
    assert_eq!(emitted, vec![(20 * S, 3 * S, 20 * S, (1..=9).collect())]);
    assert_eq!(op.next_deadline(), Some(30 * S));
    assert_eq!(run(&mut op, &[Tick(30 * S)]), vec![(30 * S, 20 * S, 30 * S, (10..=14).collect())]);
    // The session goes on without rows until its timeout: nothing to emit.
    assert_eq!(op.next_deadline(), None);
    assert!(op.on_tick(40 * S).is_empty());
    // A new session starts with the next row.
    let steps = [Ev(15, 41 * S), Tick(46 * S)];
    assert_eq!(run(&mut op, &steps), vec![(46 * S, 41 * S, 46 * S, vec![15])]);
}

#[test]
fn session_continued_after_a_cut_is_cut_one_length_later() {
    let mut op = processing(session(TimeUnit::Second, 10, 30));
    let steps = [Ev(1, 10 * S), Ev(2, 25 * S), Ev(3, 38 * S), Tick(40 * S), Tick(68 * S)];
    assert_eq!(
        run(&mut op, &steps),
        vec![(25 * S, 10 * S, 20 * S, vec![1]), (38 * S, 20 * S, 30 * S, vec![2]), (40 * S, 30 * S, 40 * S, vec![3]),]
    );
    // The timeout runs from the last row (38 s) and the session holds no row.
    assert_eq!(op.next_deadline(), None);
    assert!(op.on_tick(1_000 * S).is_empty());
}

#[test]
fn session_window_arguments_follow_ekuiper() {
    // SESSIONWINDOW(mi, 2, 1): at most 2 minutes, closes after 1 idle minute.
    let mut op = processing(session(TimeUnit::Minute, 2, 1));
    let steps: Vec<Step> = (0..10).map(|i| Ev(i + 1, 10 * S + i * 30 * S)).collect(); // 0:10 .. 4:40
    let mut emitted = run(&mut op, &steps);
    emitted.extend(run(&mut op, &[Tick(10 * MIN)]));
    assert_eq!(
        emitted,
        vec![
            // Rows at 0:10 .. 3:40; the session reached 2 minutes by the check at 4:00.
            (4 * MIN + 10 * S, 10 * S, 4 * MIN, (1..=8).collect()),
            // Rows at 4:10 and 4:40, closed one minute after the last.
            (10 * MIN, 4 * MIN, 5 * MIN + 40 * S, vec![9, 10]),
        ]
    );
}

// ---------------------------------------------------------------- count

#[test]
fn count_window_tumbles_every_length_events() {
    let mut op = processing(count(3, None));
    let steps: Vec<Step> = (1..=7).map(|i| Ev(i, i * S)).collect();
    assert_eq!(run(&mut op, &steps), vec![(3 * S, S, 3 * S, vec![1, 2, 3]), (6 * S, 4 * S, 6 * S, vec![4, 5, 6])]);
    assert_eq!(op.buffered(), 1);
    assert!(op.on_tick(1_000 * S).is_empty());
    assert_eq!(op.next_deadline(), None);
}

#[test]
fn count_window_with_interval_emits_the_last_length_events() {
    // The eKuiper documentation's example: COUNTWINDOW(5, 2).
    let mut op = processing(count(5, Some(2)));
    let steps: Vec<Step> = (1..=9).map(|i| Ev(i, i * S)).collect();
    assert_eq!(
        run(&mut op, &steps),
        vec![(6 * S, 2 * S, 6 * S, vec![2, 3, 4, 5, 6]), (8 * S, 4 * S, 8 * S, vec![4, 5, 6, 7, 8])]
    );
    assert_eq!(op.buffered(), 4);
}

#[test]
fn count_window_triggered_by_every_event() {
    let mut op = processing(count(3, Some(1)));
    let steps: Vec<Step> = (1..=5).map(|i| Ev(i, i * S)).collect();
    assert_eq!(
        run(&mut op, &steps).into_iter().map(|(_, _, _, ids)| ids).collect::<Vec<_>>(),
        vec![vec![1, 2, 3], vec![2, 3, 4], vec![3, 4, 5]]
    );
}

// ---------------------------------------------------------------- event time

#[test]
fn event_time_reorders_within_tolerance_and_drops_late_rows() {
    let mut op = event(tumbling(TimeUnit::Second, 10), 5 * S);
    let steps = [Ev(1, 12 * S), Ev(2, 18 * S), Ev(3, 14 * S), Ev(4, 23 * S)];
    assert!(run(&mut op, &steps).is_empty());
    assert_eq!(op.watermark(), Some(18 * S));
    // The watermark passes 20 s: the window holds its rows by timestamp.
    assert_eq!(run(&mut op, &[Ev(5, 26 * S)]), vec![(26 * S, 10 * S, 20 * S, vec![1, 3, 2])]);
    assert_eq!(op.watermark(), Some(21 * S));
    // Behind the watermark: dropped and counted.
    assert!(run(&mut op, &[Ev(6, 9 * S), Ev(7, 19 * S)]).is_empty());
    assert_eq!(op.late_dropped(), 2);
    // At the watermark: still on time.
    let steps = [Ev(8, 21 * S), Ev(9, 40 * S)];
    assert_eq!(run(&mut op, &steps), vec![(40 * S, 20 * S, 30 * S, vec![8, 4, 5])]);
    assert_eq!(op.late_dropped(), 2);
    assert_eq!(op.buffered(), 1);
}

#[test]
fn event_time_ignores_ticks() {
    let mut op = event(tumbling(TimeUnit::Second, 10), 0);
    assert_eq!(op.watermark(), None);
    op.on_event(row(1, 12 * S), 0);
    assert!(op.on_tick(1_000 * S).is_empty());
    assert_eq!(op.next_deadline(), None);
    assert_eq!(op.buffered(), 1);
    let batches = op.on_event(row(2, 20 * S), 0);
    assert_eq!(batches.len(), 1);
    assert_eq!(ids(&batches[0]), vec![1]);
}

#[test]
fn event_time_without_tolerance_drops_any_row_behind_the_latest() {
    let mut op = event(tumbling(TimeUnit::Second, 10), 0);
    let steps = [Ev(1, 12 * S), Ev(2, 15 * S), Ev(3, 13 * S), Ev(4, 15 * S), Ev(5, 20 * S)];
    assert_eq!(run(&mut op, &steps), vec![(20 * S, 10 * S, 20 * S, vec![1, 2, 4])]);
    assert_eq!(op.late_dropped(), 1);
}

#[test]
fn event_time_negative_tolerance_counts_as_zero() {
    let mut op = event(tumbling(TimeUnit::Second, 10), -5 * S);
    let steps = [Ev(1, 12 * S), Ev(2, 20 * S)];
    assert_eq!(run(&mut op, &steps), vec![(20 * S, 10 * S, 20 * S, vec![1])]);
}

#[test]
fn event_time_hopping() {
    let mut op = event(hopping(10, 5), 5 * S);
    let steps = [Ev(1, 7 * S), Ev(2, 3 * S), Ev(3, 12 * S), Ev(4, 30 * S)];
    assert_eq!(
        run(&mut op, &steps),
        vec![
            (12 * S, -5 * S, 5 * S, vec![2]),
            (30 * S, 0, 10 * S, vec![2, 1]),
            (30 * S, 5 * S, 15 * S, vec![1, 3]),
            (30 * S, 10 * S, 20 * S, vec![3]),
        ]
    );
}

#[test]
fn event_time_sliding_with_delay() {
    let mut op = event(sliding(10, Some(2)), 0);
    let steps = [Ev(1, 10 * S), Ev(2, 11 * S), Ev(3, 13 * S)];
    assert_eq!(run(&mut op, &steps), vec![(13 * S, 0, 12 * S, vec![1, 2]), (13 * S, S, 13 * S, vec![1, 2, 3])]);
}

#[test]
fn event_time_sliding_out_of_order() {
    let mut op = event(sliding(5, None), 3 * S);
    let steps = [Ev(1, 10 * S), Ev(2, 12 * S), Ev(3, 11 * S), Ev(4, 20 * S)];
    assert_eq!(
        run(&mut op, &steps),
        vec![
            (20 * S, 5 * S, 10 * S, vec![1]),
            (20 * S, 6 * S, 11 * S, vec![1, 3]),
            (20 * S, 7 * S, 12 * S, vec![1, 3, 2]),
        ]
    );
}

#[test]
fn event_time_session() {
    let mut op = event(session(TimeUnit::Second, 60, 5), 3 * S);
    let steps = [Ev(1, S), Ev(2, 4 * S), Ev(3, 3 * S), Ev(4, 20 * S), Ev(5, 30 * S)];
    assert_eq!(run(&mut op, &steps), vec![(20 * S, S, 9 * S, vec![1, 3, 2]), (30 * S, 20 * S, 25 * S, vec![4])]);
}

#[test]
fn event_time_count_window_counts_in_timestamp_order() {
    let mut op = event(count(3, None), 10 * S);
    let steps = [Ev(1, 5 * S), Ev(2, 3 * S), Ev(3, 4 * S), Ev(4, 20 * S)];
    assert_eq!(run(&mut op, &steps), vec![(20 * S, 3 * S, 5 * S, vec![2, 3, 1])]);
    assert_eq!(op.buffered(), 1);
}

// ---------------------------------------------------------------- deadlines and memory

#[test]
fn next_deadline_after_one_event() {
    let cases = [
        (tumbling(TimeUnit::Second, 10), Some(20 * S)),
        (hopping(10, 5), Some(15 * S)),
        (sliding(10, None), None),
        (sliding(10, Some(3)), Some(15 * S)),
        (session(TimeUnit::Second, 60, 5), Some(17 * S)),
        // Started at 12 s, the session reaches its 10 s maximum by the check at 30 s.
        (session(TimeUnit::Second, 10, 30), Some(30 * S)),
        (count(3, None), None),
    ];
    for (spec, deadline) in cases {
        let mut op = processing(spec);
        op.on_event(row(1, 0), 12 * S);
        assert_eq!(op.next_deadline(), deadline, "{spec}");
        let mut op = event(spec, 0);
        op.on_event(row(1, 12 * S), 12 * S);
        assert_eq!(op.next_deadline(), None, "{spec} in event time");
    }
}

#[test]
fn memory_is_bounded_by_what_pending_windows_need() {
    // A row every 100 ms for 1000 s.
    let specs = [
        (tumbling(TimeUnit::Second, 10), 100),
        (hopping(10, 5), 100),
        (sliding(10, None), 100),
        (sliding(10, Some(5)), 150),
        (session(TimeUnit::Second, 10, 5), 200),
        (count(5, Some(2)), 7),
    ];
    for (spec, bound) in specs {
        let mut op = processing(spec);
        let mut rows_out = 0;
        let mut max_buffered = 0;
        for i in 0..10_000 {
            let now = i * 100;
            if op.next_deadline().is_some_and(|d| d <= now) {
                rows_out += op.on_tick(now).iter().map(|b| b.rows.len()).sum::<usize>();
            }
            rows_out += op.on_event(row(i, 0), now).iter().map(|b| b.rows.len()).sum::<usize>();
            max_buffered = max_buffered.max(op.buffered());
        }
        assert!(max_buffered <= bound, "{spec}: {max_buffered} rows buffered");
        assert!(rows_out >= 9_800, "{spec}: {rows_out} rows out");
    }

    let mut op = event(tumbling(TimeUnit::Second, 10), S);
    let mut max_buffered = 0;
    for i in 0..10_000 {
        op.on_event(row(i, i * 100), 0);
        max_buffered = max_buffered.max(op.buffered());
    }
    assert!(max_buffered <= 111, "event time: {max_buffered} rows buffered");
}

#[test]
fn time_near_the_limits_does_not_overflow_or_hang() {
    let mut op = processing(tumbling(TimeUnit::Day, u64::MAX));
    op.on_event(row(1, 0), 0);
    assert!(op.on_tick(i64::MAX).len() <= 1);
    let mut op = processing(session(TimeUnit::Millisecond, 1, 1_000_000_000));
    op.on_event(row(1, 0), 0);
    assert_eq!(op.on_tick(i64::MAX).len(), 1);
    assert!(op.on_tick(i64::MAX).is_empty());
    let mut op = processing(hopping(10, 5));
    op.on_event(row(1, 0), i64::MIN);
    assert_eq!(op.on_tick(i64::MAX).len(), 2);
}

#[test]
fn past_the_byte_budget_the_oldest_rows_are_dropped_and_counted() {
    let one = super::row_bytes(&row(0, 0));
    // Room for ten rows: a tumbling minute of 100 rows keeps its last ten.
    let mut w = processing(tumbling(TimeUnit::Minute, 1)).with_max_bytes(10 * one);
    for i in 0..100 {
        assert!(w.on_event(row(i, 0), i).is_empty());
        assert!(w.held_bytes() <= 10 * one);
    }
    assert_eq!(w.evicted(), 90);
    let closed = w.on_tick(MIN);
    assert_eq!(closed.iter().map(ids).collect::<Vec<_>>(), vec![(90..100).collect::<Vec<_>>()]);
    assert_eq!(w.held_bytes(), 0, "nothing is held once the window closed");

    // In event time, rows the watermark has not reached count too.
    let mut w = event(tumbling(TimeUnit::Second, 10), 60 * S).with_max_bytes(5 * one);
    for i in 0..20 {
        w.on_event(row(i, i * S), 0);
    }
    assert_eq!((w.evicted(), w.buffered()), (15, 5));
    // Without a budget, nothing is dropped.
    let mut w = processing(count(1_000, None));
    for i in 0..1_000 {
        w.on_event(row(i, 0), i);
    }
    assert_eq!(w.evicted(), 0);
}

// ---------------------------------------------------------------- checkpoints

/// Every window kind, in both time modes, cut in two by a save and a restore
/// into a fresh operator at every step: it emits what it would have without.
#[test]
fn a_restored_operator_goes_on_as_if_never_stopped() {
    let specs = [
        tumbling(TimeUnit::Second, 10),
        hopping(10, 5),
        sliding(10, None),
        sliding(10, Some(3)),
        session(TimeUnit::Second, 30, 5),
        count(3, Some(2)),
    ];
    let steps = [
        Ev(1, 12 * S),
        Ev(2, 14 * S),
        Tick(16 * S),
        Ev(3, 18 * S),
        Ev(4, 25 * S),
        Tick(31 * S),
        Ev(5, 33 * S),
        Ev(6, 47 * S),
        Tick(60 * S),
        Ev(7, 61 * S),
        Tick(90 * S),
    ];
    for spec in specs {
        for mode in [TimeMode::Processing, TimeMode::Event { late_tolerance_ms: 2 * S }] {
            let fresh = || WindowOperator::new(&spec, mode);
            let whole = run(&mut fresh(), &steps);
            for cut in 0..=steps.len() {
                let mut before = fresh();
                let mut emitted = run(&mut before, &steps[..cut]);
                let mut after = fresh();
                after.restore(&before.save().unwrap()).unwrap();
                assert_eq!((after.buffered(), after.watermark()), (before.buffered(), before.watermark()));
                emitted.extend(run(&mut after, &steps[cut..]));
                assert_eq!(emitted, whole, "{spec:?} {mode:?} cut at step {cut}");
            }
        }
    }
}

#[test]
fn the_state_of_another_window_kind_is_refused() {
    let mut tumbling_op = processing(tumbling(TimeUnit::Second, 10));
    tumbling_op.on_event(row(1, 0), 12 * S);
    let saved = tumbling_op.save().unwrap();
    let error = processing(count(3, None)).restore(&saved).unwrap_err();
    assert!(error.contains("another window kind"), "{error}");
    assert!(processing(count(3, None)).restore(b"\xff\xff").is_err());
}

/// A state window whose conditions read the row's `id`: it begins at ids
/// divisible by `begin` and (with `emit`) closes at those divisible by it;
/// partitioned by `id % partitions`.
fn state(begin: i64, emit: Option<i64>, partitions: i64) -> WindowOperator {
    let conditions = super::WindowConditions(std::sync::Arc::new(move |row: &Row| {
        let id = row.get("id").and_then(Value::as_i64).unwrap_or_default();
        super::Verdict {
            partition: if partitions > 1 { vec![(id % partitions) as u8] } else { Vec::new() },
            first: id % begin == 0,
            second: emit.is_some_and(|e| id % e == 0),
        }
    }));
    processing(WindowSpec::State { begin_and_emit: emit.is_some() }).with_conditions(conditions)
}

#[test]
fn a_state_window_with_one_condition_closes_where_the_next_begins() {
    let mut w = state(3, None, 1);
    let mut out = Vec::new();
    for id in 1..=10 {
        out.extend(w.on_event(row(id, 0), id));
    }
    let got: Vec<Vec<i64>> = out.iter().map(ids).collect();
    assert_eq!(got, [vec![3, 4, 5], vec![6, 7, 8]], "1 and 2 come before any beginning; 9 and 10 wait");
    assert_eq!((out[0].start, out[0].end), (3, 6), "from its first row to the row that closed it");
    assert_eq!(w.buffered(), 2);
    assert!(w.on_tick(1_000_000).is_empty(), "no time closes it");
}

#[test]
fn a_state_window_with_begin_and_emit_keeps_both_ends_per_partition() {
    let mut w = state(4, Some(5), 1);
    let out: Vec<Vec<i64>> = (1..=12).flat_map(|id| w.on_event(row(id, 0), id)).map(|b| ids(&b)).collect();
    assert_eq!(out, [vec![4, 5], vec![8, 9, 10]], "emit is checked from the row after the beginning one");
    // Two partitions (odd, even ids), each with its own window.
    let mut w = state(1, Some(3), 2);
    let out: Vec<Vec<i64>> = (1..=10).flat_map(|id| w.on_event(row(id, 0), id)).map(|b| ids(&b)).collect();
    assert_eq!(out, [vec![1, 3], vec![2, 4, 6], vec![5, 7, 9]]);
    assert_eq!(w.buffered(), 2, "8 and 10 wait");
    let saved = w.save().unwrap();
    let mut restored = state(1, Some(3), 2);
    restored.restore(&saved).unwrap();
    assert_eq!(restored.buffered(), w.buffered());
}

#[test]
fn a_state_window_evicts_its_oldest_row_past_the_budget() {
    let mut w = state(1, None, 2).with_max_bytes(1);
    w.on_event(row(1, 0), 1);
    w.on_event(row(2, 0), 2);
    assert_eq!((w.buffered(), w.evicted()), (0, 2));
}

#[test]
fn with_several_streams_the_watermark_follows_the_slowest() {
    let mut op = event(tumbling(TimeUnit::Second, 10), 0).with_streams(2);
    // Stream 0 runs ahead: without an event of stream 1, nothing closes.
    assert!(op.on_event_from(0, row(1, 1_000), 0).is_empty());
    assert!(op.on_event_from(0, row(2, 25_000), 0).is_empty());
    assert_eq!(op.watermark(), None);
    // Stream 1 reaches 12 s: the first window closes, not the second.
    let closed = op.on_event_from(1, row(3, 12_000), 0);
    assert_eq!(closed.iter().map(ids).collect::<Vec<_>>(), [vec![1]]);
    assert_eq!(op.watermark(), Some(12_000));
    // A row of stream 1 behind its own watermark is late; one of stream 0
    // behind the greatest time seen but ahead of the watermark is not.
    assert!(op.on_event_from(1, row(4, 11_000), 0).is_empty());
    assert_eq!(op.late_dropped(), 1);
    assert!(op.on_event_from(0, row(5, 15_000), 0).is_empty());
    // Stream 1 passes stream 0: the watermark is stream 0's greatest time.
    let closed = op.on_event_from(1, row(6, 30_000), 0);
    assert_eq!(closed.iter().map(ids).collect::<Vec<_>>(), [vec![3, 5]]);
    assert_eq!(op.watermark(), Some(25_000));
}

/// Row `id` at `at` of the source's partition `partition`.
fn in_partition(partition: &str, id: i64, at: i64) -> Row {
    let mut r = row(id, at);
    r.meta = std::sync::Arc::new([("partition".to_owned(), partition.to_owned())].into());
    r
}

#[test]
fn windows_per_partition_keep_their_own_watermark_and_restart_afresh() {
    let mut op = event(tumbling(TimeUnit::Second, 1), 0).with_partitions("partition");
    assert!(op.is_partitioned());
    let on = |op: &mut WindowOperator, partition: &str, id: i64, at: i64| {
        op.on_event(in_partition(partition, id, at), -1).iter().map(|b| (b.start, ids(b))).collect::<Vec<_>>()
    };
    assert!(on(&mut op, "0", 1, 100).is_empty());
    assert!(on(&mut op, "0", 2, 500).is_empty());
    assert!(on(&mut op, "1", 3, 100).is_empty());
    // Partition 0's watermark passes its window; partition 1's does not.
    assert_eq!(on(&mut op, "0", 4, 1500), [(0, vec![1, 2])]);
    // One watermark for all would have made this late behind 1500.
    assert!(on(&mut op, "1", 5, 200).is_empty());
    assert_eq!((op.late_dropped(), op.buffered(), op.held_rows().count()), (0, 3, 3));
    assert_eq!(op.watermark(), Some(200), "the slowest partition's");

    // Partition 1 is read again from its committed position: its rows are not counted twice.
    op.restart_partition("1");
    assert_eq!(op.buffered(), 1);
    assert!(on(&mut op, "1", 3, 100).is_empty());
    assert!(on(&mut op, "1", 5, 200).is_empty());
    assert_eq!(on(&mut op, "1", 6, 1200), [(0, vec![3, 5])]);
    // A partition no longer read here is forgotten, its open windows never emitted.
    op.retain_partitions(|p| p == "1");
    assert_eq!(op.held_rows().count(), 1);
    assert!(op.finish().iter().all(|b| ids(b) == [6]));
}
