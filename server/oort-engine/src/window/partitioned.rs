//! Windows of their own for each partition of the source, for a rule split
//! over its source's partitions that restarts from its source
//! ([`crate::RulePlan::replays_from_source`]).
//!
//! Every key's events are in one partition, so windows per partition give
//! each key the rows one set of windows would. What it changes is time: in
//! event time each partition has its own watermark, so a partition read
//! again from its oldest open window (after another server died) is not late
//! behind the partitions this server was already reading, and its windows
//! close as they did on the server that died. A partition whose events stop
//! here (the group gave it to another server) keeps its windows open until
//! the source says it is no longer assigned ([`Partitions::retain`]); they are
//! then dropped, never emitted with part of their rows (in event time; in
//! processing time its windows close on the clock).
//!
//! The source marks the first event it reads of a partition since it was
//! assigned it ([`crate::PARTITION_START_META`]): it reads on from the
//! partition's committed position (the oldest open window's, when this
//! server last committed), so the runtime drops the windows held of that
//! partition first ([`WindowOperator::restart_partition`]).
//!
//! An event that left no row (WHERE dropped it) does not move its
//! partition's watermark: which partition it came from is not known there.

use std::collections::BTreeMap;

use super::{WindowBatch, WindowOperator};
use crate::row::Row;

/// The windows of each partition, by the partition's name in the rows' metadata.
#[derive(Debug, Clone)]
pub(super) struct Partitions {
    /// The metadata key naming a row's partition.
    meta_key: String,
    /// A fresh operator, copied for each new partition.
    template: WindowOperator,
    parts: BTreeMap<String, WindowOperator>,
    /// What the parts of partitions dropped (no longer assigned) had counted.
    dropped_counts: (u64, u64),
}

impl Partitions {
    pub(super) fn new(meta_key: &str, template: WindowOperator) -> Self {
        Self { meta_key: meta_key.to_owned(), template, parts: BTreeMap::new(), dropped_counts: (0, 0) }
    }

    pub(super) fn on_event(&mut self, row: Row, now: i64) -> Vec<WindowBatch> {
        let partition = row.meta.get(&self.meta_key).cloned().unwrap_or_default();
        let part = self.parts.entry(partition).or_insert_with(|| self.template.clone());
        part.on_event_from(0, row, now)
    }

    pub(super) fn rows(&self) -> impl Iterator<Item = &Row> {
        self.parts.values().flat_map(WindowOperator::held_rows)
    }

    /// Every part's windows, gathered: those that closed, oldest first.
    fn each(&mut self, mut f: impl FnMut(&mut WindowOperator) -> Vec<WindowBatch>) -> Vec<WindowBatch> {
        let mut out: Vec<WindowBatch> = self.parts.values_mut().flat_map(&mut f).collect();
        out.sort_by_key(|b| (b.end, b.start));
        out
    }

    pub(super) fn on_tick(&mut self, now: i64) -> Vec<WindowBatch> {
        self.each(|part| part.on_tick(now))
    }

    pub(super) fn finish(&mut self) -> Vec<WindowBatch> {
        self.each(WindowOperator::finish)
    }

    pub(super) fn next_deadline(&self) -> Option<i64> {
        self.parts.values().filter_map(WindowOperator::next_deadline).min()
    }

    /// The slowest partition's watermark.
    pub(super) fn watermark(&self) -> Option<i64> {
        self.parts.values().filter_map(WindowOperator::watermark).min()
    }

    /// Forgets the partitions `keep` says no longer come here, with their rows.
    pub(super) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self.parts.keys().filter(|p| !keep(p)).cloned().collect();
        for partition in gone {
            if let Some(part) = self.parts.remove(&partition) {
                self.dropped_counts.0 += part.late_dropped();
                self.dropped_counts.1 += part.evicted();
            }
        }
    }

    pub(super) fn sum(&self, f: impl Fn(&WindowOperator) -> usize) -> usize {
        self.parts.values().map(f).sum()
    }

    pub(super) fn late_dropped(&self) -> u64 {
        self.dropped_counts.0 + self.parts.values().map(WindowOperator::late_dropped).sum::<u64>()
    }

    pub(super) fn evicted(&self) -> u64 {
        self.dropped_counts.1 + self.parts.values().map(WindowOperator::evicted).sum::<u64>()
    }
}
