//! Stream–table joins: each joined table is kept in memory by a loader task
//! that reads the table's source, and every event of the stream is matched
//! against the table's current rows.

use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;

use super::matches;
use crate::connector::{ConnectorError, ConnectorRegistry, SourceConfig, SourceOutput};
use crate::decode::Decoder;
use crate::expr::{EvalEnv, EvalError, JoinedRow, Tuple as _};
use crate::metrics::{OperatorMetrics, now_ms};
use crate::plan::{JoinKind, RulePlan};
use crate::row::Row;

/// The current rows of one table.
#[derive(Default)]
pub struct TableRows {
    rows: RwLock<Vec<Row>>,
}

impl TableRows {
    /// Adds a row: replaces the row with the same KEY value if the table has a
    /// KEY, and drops the oldest rows beyond RETAIN_SIZE.
    fn upsert(&self, row: Row, key: Option<&str>, retain: Option<usize>) {
        let mut rows = self.rows.write().unwrap_or_else(|p| p.into_inner());
        let existing = key.and_then(|k| {
            let value = row.field(None, k)?;
            rows.iter().position(|r| r.field(None, k) == Some(value))
        });
        match existing {
            Some(i) => rows[i] = row,
            None => rows.push(row),
        }
        if let Some(retain) = retain.filter(|r| *r > 0 && rows.len() > *r) {
            let excess = rows.len() - retain;
            rows.drain(..excess);
        }
    }

    /// Removes the row whose KEY value is `row`'s.
    fn remove(&self, row: &Row, key: &str) {
        let Some(value) = row.field(None, key) else { return };
        self.rows.write().unwrap_or_else(|p| p.into_inner()).retain(|r| r.field(None, key) != Some(value));
    }

    /// How many rows the table holds.
    pub fn len(&self) -> usize {
        self.rows.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the table holds no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The loader tasks of a rule's joined tables.
pub struct Loaders {
    /// Each table's rows or store, in join order.
    pub tables: super::Tables,
    /// The tasks, owned by the rule.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts a loader task per joined table, counting in the counters
/// `table_counters` gives for the table's index.
pub fn start_loaders(
    plan: &RulePlan,
    connectors: &ConnectorRegistry,
    cancel: &CancellationToken,
    table_counters: impl Fn(usize) -> Arc<OperatorMetrics>,
) -> Result<Loaders, ConnectorError> {
    let mut tables = Vec::new();
    let mut tasks = Vec::new();
    for (index, join) in plan.tables.iter().enumerate() {
        if join.lookup.is_some() {
            // Queried at join time, not loaded.
            tables.push(Arc::default());
            continue;
        }
        let def = &join.source;
        let source = connectors.source_for(def)?.build(&SourceConfig::for_stream(def, &plan.rule_id))?;
        let rows = Arc::new(TableRows::default());
        let counters = table_counters(index);
        // A table's rows are its state: its loader waits rather than drops.
        let (tx, mut rx) = SourceOutput::channel(plan.options.buffer_length);
        let decoder = Decoder::for_stream(def, connectors.schemas())?;
        let key = def.key().map(str::to_owned);
        let retain = def.options.get("RETAIN_SIZE").and_then(|r| r.parse::<usize>().ok());
        let (loader_rows, loader_counters, loader_cancel) = (Arc::clone(&rows), Arc::clone(&counters), cancel.clone());
        tasks.push(tokio::spawn(async move {
            let run = source.run(tx, loader_cancel.clone());
            tokio::pin!(run);
            let mut source_done = false;
            loop {
                tokio::select! {
                    () = loader_cancel.cancelled() => return,
                    result = &mut run, if !source_done => {
                        source_done = true;
                        // A table source that ends (a file read once) keeps its rows.
                        if let Err(e) = result {
                            loader_counters.record_exception(e.to_string());
                        }
                    }
                    event = rx.recv() => {
                        let Some(event) = event else { return };
                        let now = now_ms();
                        loader_counters.record_in(1, now);
                        let timestamp = event.timestamp.unwrap_or(now);
                        let meta = Arc::clone(&event.meta);
                        let delete = meta.get(crate::ROWKIND_META).is_some_and(|kind| kind == "delete");
                        match decoder.decode(event) {
                            Ok(fields) => {
                                let row = Row { fields, timestamp, meta, joined: None, analytic: Vec::new() };
                                match (delete, key.as_deref()) {
                                    (true, Some(key)) => loader_rows.remove(&row, key),
                                    _ => loader_rows.upsert(row, key.as_deref(), retain),
                                }
                                loader_counters.record_out(1);
                            }
                            Err(e) => loader_counters.record_exception(e),
                        }
                    }
                }
            }
        }));
        tables.push(rows);
    }
    let lookups = super::lookups::start_lookups(plan, connectors)?;
    Ok(Loaders { tables: super::Tables { loaded: tables, lookups }, tasks })
}

/// Joins one event with the tables: one row per match (INNER), or the event
/// with NULL table columns when nothing matches (LEFT). A lookup table's
/// rows are those `found` for the event ([`super::look_up`]).
pub fn join_event(
    row: Row,
    plan: &RulePlan,
    tables: &[Arc<TableRows>],
    found: &[Option<super::Found>],
    env: &EvalEnv<'_>,
) -> Result<Vec<Row>, EvalError> {
    let (timestamp, meta) = (row.timestamp, Arc::clone(&row.meta));
    let mut partial = vec![vec![(Arc::<str>::from(plan.stream_reference.as_str()), row)]];
    for (index, (join, table)) in plan.tables.iter().zip(tables).enumerate() {
        let reference: Arc<str> = Arc::from(join.reference.as_str());
        let loaded;
        let rows: &[Row] = match found.get(index).and_then(Option::as_ref) {
            Some(found) => found,
            None => {
                loaded = table.rows.read().unwrap_or_else(|p| p.into_inner());
                &loaded
            }
        };
        let mut next = Vec::new();
        for parts in partial {
            let before = next.len();
            for table_row in rows.iter() {
                let mut candidate = JoinedRow { parts: parts.clone() };
                candidate.parts.push((Arc::clone(&reference), table_row.clone()));
                if matches(join, &candidate, env)? {
                    next.push(candidate.parts);
                }
            }
            if next.len() == before && join.kind == JoinKind::Left {
                let mut parts = parts;
                parts.push((Arc::clone(&reference), Row::new(Default::default(), timestamp)));
                next.push(parts);
            }
        }
        partial = next;
    }
    Ok(partial
        .into_iter()
        .map(|parts| Row {
            fields: Default::default(),
            timestamp,
            meta: Arc::clone(&meta),
            joined: Some(Arc::new(JoinedRow { parts })),
            analytic: Vec::new(),
        })
        .collect())
}
