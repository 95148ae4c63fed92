//! The checkpoints of a running rule whose `qos` asks for at least once
//! ([`crate::checkpoint`]): what the rule starts from ([`Checkpointing`]),
//! the rule task taking one between two batches ([`Trigger`]), and a task of
//! its own ([`Checkpointer`]) saving it once every sink has delivered the
//! results emitted before it, then letting the source forget the events it
//! covers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::pipeline::{Output, State};
use super::sink::Ack;
use crate::analytic::AnalyticState;
use crate::checkpoint::{self, Checkpoint, CheckpointStore};
use crate::connector::{SourceConfig, SourcePositions};
use crate::delivery::{Guarantee, Replay};
use crate::metrics::now_ms;
use crate::plan::RulePlan;
use crate::window::{WindowOperator, WindowSnapshot};

/// A checkpoint saved, as `GetRuleStatus` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCheckpoint {
    /// Counts up in one run of the rule.
    pub id: u64,
    /// When the rule took it (Unix ms).
    pub taken_ms: i64,
    /// The size of its file.
    pub bytes: u64,
    /// From taking it to having it saved: the sinks' delivery of what came
    /// before it, then the write.
    pub duration_ms: u64,
    /// The source position it covers.
    pub position: Option<u64>,
}

/// The checkpoints of a rule in this run, as `GetRuleStatus` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointStatus {
    /// Whether the rule takes checkpoints.
    pub enabled: bool,
    /// The last one saved in this run.
    pub last: Option<SavedCheckpoint>,
    /// The checkpoint this run started from (its `duration_ms` is how long
    /// restoring took).
    pub restored: Option<SavedCheckpoint>,
    /// Why the rule's last checkpoint was not restored, or the last one not saved.
    pub last_error: Option<String>,
    /// Checkpoints that could not be saved.
    pub failures: u64,
    /// Events the source replayed since the rule started, what its
    /// checkpoint did not cover (a journal's; a broker's redelivery and a
    /// file read again are not counted).
    pub replayed: u64,
}

/// Where a rule keeps its checkpoints and what it restarts from.
pub(super) struct Checkpointing {
    pub(super) store: Arc<CheckpointStore>,
    pub(super) positions: Arc<dyn SourcePositions>,
    pub(super) restored: Option<Checkpoint>,
    /// Where the rule's state starts in its source.
    pub(super) position: Option<u64>,
    /// The rule restarts from its source ([`RulePlan::replays_from_source`]):
    /// a checkpoint only lets the source go of what the windows no longer
    /// hold, nothing is saved or restored here.
    pub(super) from_source: bool,
}

impl Checkpointing {
    /// For a rule whose qos asks for at least once, on a server that keeps
    /// checkpoints: its last checkpoint (if it is of this plan) and its source's
    /// hold on positions from there, which also sets where the source resumes.
    /// `None` when the rule takes no checkpoints, with why in `replay`.
    pub(super) fn prepare(
        plan: &RulePlan,
        store: Option<&Arc<CheckpointStore>>,
        source_factory: &dyn crate::SourceFactory,
        source_config: &mut SourceConfig,
        status: &mut CheckpointStatus,
    ) -> Result<(Option<Checkpointing>, Replay), crate::ConnectorError> {
        let Some(store) = store.filter(|_| plan.options.qos >= Guarantee::AtLeastOnce) else {
            return Ok((None, Replay::NoCheckpoints));
        };
        let from_source = plan.replays_from_source();
        if from_source {
            source_config.marks_partition_starts = true;
            let Some(positions) = source_factory.positions(source_config)? else {
                return Ok((None, Replay::SourceCannot(plan.stream.source_type().to_owned())));
            };
            status.enabled = true;
            let position = positions.position();
            let checkpointing =
                Checkpointing { store: Arc::clone(store), positions, restored: None, position, from_source };
            return Ok((Some(checkpointing), Replay::Yes));
        }
        let started = std::time::Instant::now();
        let restored = match store.load(&plan.rule_id) {
            Ok(Some(saved)) if saved.fingerprint == checkpoint::fingerprint(plan) => Some(saved),
            Ok(Some(_)) => {
                status.last_error = Some("the last checkpoint is of another version of the rule: not restored".into());
                None
            }
            Ok(None) => None,
            Err(e) => {
                status.last_error = Some(format!("the last checkpoint was not restored: {e}"));
                None
            }
        };
        source_config.resume_after = restored.as_ref().and_then(|c| c.position);
        source_config.resume_state = restored.as_ref().and_then(|c| c.source_state.clone());
        let Some(positions) = source_factory.positions(source_config)? else {
            source_config.resume_after = None;
            source_config.resume_state = None;
            return Ok((None, Replay::SourceCannot(plan.stream.source_type().to_owned())));
        };
        status.enabled = true;
        status.restored = restored.as_ref().map(|c| SavedCheckpoint {
            id: c.id,
            taken_ms: c.taken_ms,
            bytes: c.window.as_ref().map_or(0, |w| w.len() as u64),
            duration_ms: started.elapsed().as_millis() as u64,
            position: c.position,
        });
        if restored.is_none() {
            // A rule starting afresh records where its source's hold starts, before
            // it reads anything: killed before its first checkpoint, it replays from there.
            let first = Checkpoint {
                id: 0,
                fingerprint: checkpoint::fingerprint(plan),
                taken_ms: crate::metrics::now_ms(),
                position: positions.position(),
                window: None,
                sinks: Vec::new(),
                results: 0,
                source_state: None,
                analytic: None,
            };
            if let Err(e) = store.save(&plan.rule_id, &first) {
                status.last_error = Some(format!("the rule's first checkpoint could not be saved: {e}"));
            }
        }
        let position = restored.as_ref().map_or_else(|| positions.position(), |c| c.position);
        let replay =
            if positions.exact() { Replay::Yes } else { Replay::Redelivers(plan.stream.source_type().to_owned()) };
        Ok((Some(Checkpointing { store: Arc::clone(store), positions, restored, position, from_source }), replay))
    }
}

/// How soon a checkpoint that came due while the previous one was still
/// being saved is tried again (at most the rule's interval).
const RETRY_WHILE_SAVING: Duration = Duration::from_millis(100);

/// A checkpoint on its way to be saved, its window state still to encode.
pub(super) struct Taken {
    checkpoint: Checkpoint,
    window: Option<WindowSnapshot>,
    at: Instant,
}

/// The rule task's side: when to take a checkpoint, and taking it.
pub(super) struct Trigger {
    interval: Duration,
    next_due: tokio::time::Instant,
    next_id: u64,
    fingerprint: u32,
    /// The position of the last event the state includes.
    position: Option<u64>,
    /// Whether the state changed since the last checkpoint.
    dirty: bool,
    taken: mpsc::Sender<Taken>,
    /// For a rule that restarts from its source, the source to tell what
    /// its windows hold at each checkpoint.
    from_source: Option<Arc<dyn SourcePositions>>,
}

impl Trigger {
    /// A trigger every `interval`, for state from `position` on, feeding
    /// `taken`. The first checkpoint is taken at once, before any event: it
    /// records the sinks' marks (a file's length) the rule starts from.
    pub(super) fn new(interval: Duration, fingerprint: u32, position: Option<u64>, taken: mpsc::Sender<Taken>) -> Self {
        let next_due = tokio::time::Instant::now();
        Self { interval, next_due, next_id: 1, fingerprint, position, dirty: true, taken, from_source: None }
    }

    /// For a rule that restarts from its source: each checkpoint tells
    /// `positions` what the windows hold, instead of saving them.
    pub(super) fn holding_back_at(mut self, positions: Arc<dyn SourcePositions>) -> Self {
        self.from_source = Some(positions);
        self
    }

    /// The state changed: with events up to `position` (the greatest of a
    /// batch; `None` for a timer that closed windows).
    pub(super) fn saw(&mut self, position: Option<u64>) {
        self.dirty = true;
        if let Some(p) = position {
            self.position = Some(self.position.map_or(p, |q| q.max(p)));
        }
    }

    /// When the next checkpoint is due, if there is anything new to save.
    pub(super) fn deadline(&self) -> Option<tokio::time::Instant> {
        self.dirty.then_some(self.next_due)
    }

    /// Takes a checkpoint if one is due and the previous one is saved: the
    /// window's state is snapshotted here, between two batches (its rows
    /// shared, not copied; they are encoded on another thread), and a marker
    /// goes down every sink's queue after the results emitted so far.
    pub(super) async fn take_if_due(&mut self, state: &mut State, output: &Output) {
        if !self.dirty || tokio::time::Instant::now() < self.next_due {
            return;
        }
        // The previous checkpoint still waits for its sinks: try again a little
        // later (not at once: the rule's timer would spin).
        let Ok(permit) = self.taken.try_reserve() else {
            self.next_due = tokio::time::Instant::now() + self.interval.min(RETRY_WHILE_SAVING);
            return;
        };
        let at = Instant::now();
        let (window, analytic) = match &self.from_source {
            Some(positions) => {
                // Nothing is saved: the source keeps what the windows hold, for a restart to read again.
                if let Some(window) = state.window.as_mut() {
                    window.retain_partitions(|partition| positions.still_reads(partition));
                }
                let held = state.window.iter().flat_map(WindowOperator::held_rows);
                if let Some(position) = self.position {
                    positions.hold_back(position, &mut held.map(|row| row.meta.as_ref()));
                }
                (None, None)
            }
            None => {
                let window = state.window.as_ref().map(WindowOperator::snapshot);
                // Small (a value or a few per partition): encoded here, at once.
                match state.analytic.as_ref().map(AnalyticState::save).transpose() {
                    Ok(analytic) => (window, analytic),
                    Err(e) => {
                        tracing::error!(error = %e, "a checkpoint could not be taken");
                        self.next_due = tokio::time::Instant::now() + self.interval;
                        return;
                    }
                }
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        let checkpoint = Checkpoint {
            id,
            fingerprint: self.fingerprint,
            taken_ms: now_ms(),
            position: self.position,
            window: None,
            sinks: Vec::new(),
            results: output.next_sequence,
            source_state: None,
            analytic,
        };
        permit.send(Taken { checkpoint, window, at });
        output.barrier(id).await;
        self.dirty = false;
        self.next_due = tokio::time::Instant::now() + self.interval;
    }
}

/// The task that saves a rule's checkpoints.
pub(super) struct Checkpointer {
    pub(super) rule_id: String,
    pub(super) store: Arc<CheckpointStore>,
    pub(super) positions: Arc<dyn SourcePositions>,
    pub(super) sinks: usize,
    pub(super) status: Arc<Mutex<CheckpointStatus>>,
    /// Nothing is saved: the source is only let go of what the windows no longer hold.
    pub(super) from_source: bool,
}

impl Checkpointer {
    /// Saves each checkpoint taken once every sink acknowledged its marker
    /// (an ack carries the checkpoint's id), until the rule stops.
    pub(super) async fn run(
        self,
        mut taken: mpsc::Receiver<Taken>,
        mut acks: mpsc::UnboundedReceiver<Ack>,
        cancel: CancellationToken,
    ) {
        loop {
            let next = tokio::select! {
                () = cancel.cancelled() => return,
                next = taken.recv() => next,
            };
            let Some(Taken { mut checkpoint, window, at }) = next else { return };
            checkpoint.sinks = vec![None; self.sinks];
            let mut waiting = self.sinks;
            while waiting > 0 {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    ack = acks.recv() => match ack {
                        Some(ack) if ack.id == checkpoint.id => {
                            if let Some(mark) = checkpoint.sinks.get_mut(ack.sink) {
                                *mark = ack.mark;
                            }
                            waiting -= 1;
                        }
                        Some(_) => {}
                        None => return,
                    },
                }
            }
            let (id, taken_ms, position) = (checkpoint.id, checkpoint.taken_ms, checkpoint.position);
            let saved = self.save(checkpoint, window).await;
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            match saved {
                Ok(bytes) => {
                    let duration_ms = at.elapsed().as_millis() as u64;
                    status.last = Some(SavedCheckpoint { id, taken_ms, bytes: bytes as u64, duration_ms, position });
                }
                Err(e) => {
                    tracing::error!(rule = %self.rule_id, error = %e, "a checkpoint could not be saved");
                    status.failures += 1;
                    status.last_error = Some(e);
                }
            }
        }
    }

    /// Makes the source's events up to the checkpoint durable, encodes the
    /// window's state and saves it all (on a blocking thread), then lets the
    /// source forget the events.
    async fn save(&self, mut checkpoint: Checkpoint, window: Option<WindowSnapshot>) -> Result<usize, String> {
        let position = checkpoint.position;
        if self.from_source {
            if let Some(position) = position {
                self.positions.release(position);
            }
            return Ok(0);
        }
        if let Some(position) = position {
            self.positions.persist(position).await.map_err(|e| e.to_string())?;
            checkpoint.source_state = self.positions.resume_state(position);
        }
        let (store, rule_id) = (Arc::clone(&self.store), self.rule_id.clone());
        let bytes = tokio::task::spawn_blocking(move || {
            checkpoint.window = window.as_ref().map(WindowSnapshot::encode).transpose()?;
            store.save(&rule_id, &checkpoint).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        if let Some(position) = position {
            self.positions.release(position);
        }
        Ok(bytes)
    }
}
