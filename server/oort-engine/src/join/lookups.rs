//! Lookup tables queried at join time (eKuiper's lookup tables): for each
//! event, the table's store is asked for the rows whose key columns equal the
//! values the event gives them ([`LookupKeys`]). A batch's distinct keys are
//! asked for together, a few at a time, and, with `CACHE="true"` on the
//! table, answers are kept for `CACHE_TTL` seconds (600 by default), empty
//! answers too unless `CACHE_MISSING_KEY="false"`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::connector::{ConnectorError, ConnectorRegistry, Lookup, SourceConfig};
use crate::expr::EvalEnv;
use crate::json::value_to_json;
use crate::plan::{LookupKeys, RulePlan};
use crate::row::Row;
use crate::value::Value;

/// Queries to a store in flight at once, per table and batch.
const CONCURRENT_QUERIES: usize = 16;
/// The most keys a table's cache keeps; beyond, it starts anew.
const CACHE_CAPACITY: usize = 100_000;

/// The rows one lookup gave, shared by the events with the same key.
pub type Found = Arc<Vec<Row>>;

/// One lookup table of a rule: its store, its keys and its cache.
pub struct LookupTable {
    store: Arc<dyn Lookup>,
    keys: LookupKeys,
    cache: Option<Mutex<Cache>>,
}

struct Cache {
    entries: HashMap<String, (Found, Instant)>,
    ttl: Duration,
    missing: bool,
}

/// The lookup tables of a rule, by table index (`None` for a table that is loaded).
pub fn start_lookups(
    plan: &RulePlan,
    connectors: &ConnectorRegistry,
) -> Result<Vec<Option<LookupTable>>, ConnectorError> {
    plan.tables
        .iter()
        .map(|join| {
            let Some(keys) = &join.lookup else { return Ok(None) };
            let def = &join.source;
            let store = connectors.source_for(def)?.lookup(&SourceConfig::for_stream(def, &plan.rule_id))?.ok_or_else(
                || {
                    ConnectorError::Config(format!(
                        "table {}: its source cannot be queried as a lookup table",
                        def.name
                    ))
                },
            )?;
            let option = |key: &str| def.options.get(key).map(|v| v.trim().to_ascii_lowercase());
            let cache = option("CACHE").is_some_and(|v| v == "true").then(|| {
                let ttl = option("CACHE_TTL").and_then(|v| v.parse::<u64>().ok()).unwrap_or(600);
                let missing = option("CACHE_MISSING_KEY").is_none_or(|v| v != "false");
                Mutex::new(Cache { entries: HashMap::new(), ttl: Duration::from_secs(ttl), missing })
            });
            Ok(Some(LookupTable { store, keys: keys.clone(), cache }))
        })
        .collect()
}

/// For each row, what each lookup table gives it (`None` for the tables that
/// are loaded), or why a lookup failed.
pub async fn look_up(
    tables: &[Option<LookupTable>],
    rows: &[Row],
    env: &EvalEnv<'_>,
) -> Vec<Result<Vec<Option<Found>>, String>> {
    let mut out: Vec<Result<Vec<Option<Found>>, String>> = rows.iter().map(|_| Ok(vec![None; tables.len()])).collect();
    for (index, table) in tables.iter().enumerate() {
        let Some(table) = table else { continue };
        let keys: Vec<Result<(String, Vec<Value>), String>> = rows.iter().map(|row| table.key_of(row, env)).collect();
        let answers = table.fetch(&keys).await;
        for (slot, key) in out.iter_mut().zip(&keys) {
            let Ok(found) = slot else { continue };
            match key.as_ref().map(|(id, _)| answers.get(id)) {
                Ok(Some(Ok(rows))) => found[index] = Some(Arc::clone(rows)),
                Ok(Some(Err(why))) => *slot = Err(why.clone()),
                Ok(None) => *slot = Err("lookup: no answer".into()),
                Err(why) => *slot = Err(why.clone()),
            }
        }
    }
    out
}

impl LookupTable {
    /// The values `row` gives the key columns, and their text as an id.
    fn key_of(&self, row: &Row, env: &EvalEnv<'_>) -> Result<(String, Vec<Value>), String> {
        let values = self.keys.values.iter().map(|e| e.eval(row, env)).collect::<Result<Vec<_>, _>>();
        let values = values.map_err(|e| e.to_string())?;
        let id = serde_json::Value::Array(values.iter().map(value_to_json).collect()).to_string();
        Ok((id, values))
    }

    /// The rows of each distinct key: from the cache, else from the store.
    async fn fetch(&self, keys: &[Result<(String, Vec<Value>), String>]) -> HashMap<String, Result<Found, String>> {
        let mut answers = HashMap::new();
        let mut asked = Vec::new();
        {
            let mut cache = self.cache.as_ref().map(|c| c.lock().unwrap_or_else(|p| p.into_inner()));
            for (id, values) in keys.iter().flatten() {
                if answers.contains_key(id) {
                    continue;
                }
                // A NULL key matches no row, as `NULL = x` is never true.
                if values.iter().any(|v| matches!(v, Value::Null)) {
                    answers.insert(id.clone(), Ok(Arc::new(Vec::new())));
                    continue;
                }
                let cached = cache.as_mut().and_then(|c| {
                    let (rows, at) = c.entries.get(id)?;
                    (at.elapsed() < c.ttl).then(|| Arc::clone(rows))
                });
                match cached {
                    Some(rows) => {
                        answers.insert(id.clone(), Ok(rows));
                    }
                    None => {
                        answers.insert(id.clone(), Err(String::new()));
                        asked.push((id.clone(), values.clone()));
                    }
                }
            }
        }
        let fields = &self.keys.fields;
        let fetched: Vec<(String, Result<Vec<crate::value::Map>, ConnectorError>)> = futures::stream::iter(asked)
            .map(|(id, values)| async move { (id, self.store.lookup(fields, &values).await) })
            .buffer_unordered(CONCURRENT_QUERIES)
            .collect()
            .await;
        let mut cache = self.cache.as_ref().map(|c| c.lock().unwrap_or_else(|p| p.into_inner()));
        for (id, result) in fetched {
            let answer = result.map(|maps| -> Found {
                let now = crate::metrics::now_ms();
                Arc::new(maps.into_iter().map(|fields| Row::new(fields, now)).collect())
            });
            if let (Some(cache), Ok(rows)) = (cache.as_mut(), &answer)
                && (cache.missing || !rows.is_empty())
            {
                if cache.entries.len() >= CACHE_CAPACITY {
                    cache.entries.clear();
                }
                cache.entries.insert(id.clone(), (Arc::clone(rows), Instant::now()));
            }
            answers.insert(id, answer.map_err(|e| format!("lookup: {e}")));
        }
        answers
    }
}
