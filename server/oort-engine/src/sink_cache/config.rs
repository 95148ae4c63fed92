//! The sink cache's properties, eKuiper's, read from an action's properties.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map as JsonMap, Value as JsonValue};

use crate::connector::{ConnectorError, ConnectorOption, OptionKind};

/// The action properties of the sink cache, which every sink takes.
pub const SINK_CACHE_OPTIONS: &[ConnectorOption] = &[
    ConnectorOption {
        key: "enableCache",
        kind: OptionKind::Bool,
        default: "false",
        description: "Keep the results the sink fails to deliver and send them again, instead of holding the rule \
                      back until it delivers.",
    },
    ConnectorOption {
        key: "memoryCacheThreshold",
        kind: OptionKind::Count,
        default: "1024",
        description: "Results kept in memory (the oldest); past it, on disk. Rounded up to a whole bufferPageSize.",
    },
    ConnectorOption {
        key: "maxDiskCache",
        kind: OptionKind::Count,
        default: "1024000",
        description: "Results kept on disk; past it, the oldest page is dropped and counted.",
    },
    ConnectorOption {
        key: "bufferPageSize",
        kind: OptionKind::Count,
        default: "256",
        description: "Results written to disk together, in one file.",
    },
    ConnectorOption {
        key: "resendInterval",
        kind: OptionKind::Millis,
        default: "0",
        description: "Milliseconds between two results sent from the cache once the sink delivers again \
                      (also \"100ms\", \"1s\").",
    },
    ConnectorOption {
        key: "cleanCacheAtStop",
        kind: OptionKind::Bool,
        default: "false",
        description: "Drop what the cache holds when the rule stops; otherwise it is kept on disk and sent when the \
                      rule starts again.",
    },
    ConnectorOption {
        key: "resendAlterQueue",
        kind: OptionKind::Bool,
        default: "false",
        description: "Send new results at once while cached ones are sent again beside them (order changes); \
                      otherwise new results wait behind the cache.",
    },
    ConnectorOption {
        key: "resendPriority",
        kind: OptionKind::OneOf(&["-1", "0", "1"]),
        default: "0",
        description: "With resendAlterQueue: -1 new results first, 0 in turn, 1 cached results first.",
    },
    ConnectorOption {
        key: "resendIndicatorField",
        kind: OptionKind::Text,
        default: "",
        description: "With resendAlterQueue: a field set to true in every row sent from the cache.",
    },
];

/// The most results `memoryCacheThreshold` and `bufferPageSize` may ask for
/// (the disk's share is bounded in bytes by the server's `max_sink_cache_bytes`).
pub const MAX_COUNT: usize = 1 << 20;

/// Which goes first when cached and new results both wait (with the
/// alternate queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResendPriority {
    /// New results first: the cache is sent when none waits.
    NewFirst,
    /// In turn.
    Equal,
    /// The cache first, while the sink delivers.
    CacheFirst,
}

/// How many results the cache keeps where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    /// In memory (the oldest), a whole number of pages.
    pub memory: usize,
    /// On disk.
    pub disk: usize,
    /// In one page, the unit written to and read from disk.
    pub page: usize,
}

/// A sink's cache, as its action's properties configure it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkCacheConfig {
    /// Its sizes.
    pub sizes: CacheSizes,
    /// Between two results sent from the cache.
    pub resend_interval: Duration,
    /// Drop the cache when the rule stops.
    pub clean_at_stop: bool,
    /// New results do not wait behind the cache.
    pub alter_queue: bool,
    /// Which goes first, with the alternate queue.
    pub priority: ResendPriority,
    /// Set to true in every row sent from the cache, with the alternate queue.
    pub indicator_field: Option<Arc<str>>,
}

impl SinkCacheConfig {
    /// The cache an action asks for; `None` without `enableCache: true`. A
    /// property of the wrong type is refused, and so is `resendDestination`,
    /// which Oort does not support.
    pub fn from_props(props: &JsonMap<String, JsonValue>) -> Result<Option<Self>, ConnectorError> {
        let get = |key: &str| props.get(key).filter(|v| !v.is_null());
        if !get("enableCache").map(|v| boolean("enableCache", v)).transpose()?.unwrap_or(false) {
            return Ok(None);
        }
        if get("resendDestination").is_some_and(|v| v.as_str() != Some("")) {
            return Err(ConnectorError::Config(
                "the sink property `resendDestination` is not supported yet: results sent from the cache go to the \
                 sink's own destination"
                    .into(),
            ));
        }
        // Results in memory are bounded by count only: a rule may not ask for more than this.
        let count = |key: &str, default: usize| {
            let n = get(key).map_or(Ok(default), |v| count(key, v))?;
            if n > MAX_COUNT && key != "maxDiskCache" {
                return Err(ConnectorError::Config(format!(
                    "the sink property `{key}` is at most {MAX_COUNT}, got {n}"
                )));
            }
            Ok(n)
        };
        let page = count("bufferPageSize", 256)?;
        if page == 0 {
            return Err(ConnectorError::Config("the sink property `bufferPageSize` must be at least 1".into()));
        }
        let sizes = CacheSizes {
            // As eKuiper: at least one page, and a whole number of pages.
            memory: count("memoryCacheThreshold", 1024)?.max(page).div_ceil(page) * page,
            disk: count("maxDiskCache", 1_024_000)?,
            page,
        };
        let flag = |key: &str| get(key).map_or(Ok(false), |v| boolean(key, v));
        let priority = match get("resendPriority").map(|v| (v.as_i64(), v)) {
            None | Some((Some(0), _)) => ResendPriority::Equal,
            Some((Some(-1), _)) => ResendPriority::NewFirst,
            Some((Some(1), _)) => ResendPriority::CacheFirst,
            Some((_, v)) => return Err(invalid("resendPriority", "-1, 0 or 1", v)),
        };
        let indicator_field = match get("resendIndicatorField") {
            None => None,
            Some(JsonValue::String(field)) if field.is_empty() => None,
            Some(JsonValue::String(field)) => Some(Arc::from(field.as_str())),
            Some(v) => return Err(invalid("resendIndicatorField", "a field name", v)),
        };
        Ok(Some(Self {
            sizes,
            resend_interval: get("resendInterval").map_or(Ok(Duration::ZERO), |v| millis("resendInterval", v))?,
            clean_at_stop: flag("cleanCacheAtStop")?,
            alter_queue: flag("resendAlterQueue")?,
            priority,
            indicator_field,
        }))
    }
}

fn invalid(key: &str, expected: &str, value: &JsonValue) -> ConnectorError {
    ConnectorError::Config(format!("the sink property `{key}` must be {expected}, not {value}"))
}

fn boolean(key: &str, value: &JsonValue) -> Result<bool, ConnectorError> {
    match value {
        JsonValue::Bool(b) => Ok(*b),
        JsonValue::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        JsonValue::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(invalid(key, "true or false", value)),
    }
}

pub(crate) fn count(key: &str, value: &JsonValue) -> Result<usize, ConnectorError> {
    value.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| invalid(key, "a non-negative integer", value))
}

/// Milliseconds, or a duration as eKuiper writes it (`"100ms"`, `"1s"`).
pub(crate) fn millis(key: &str, value: &JsonValue) -> Result<Duration, ConnectorError> {
    let expected = "milliseconds or a duration such as \"100ms\"";
    match value {
        JsonValue::Number(n) => n.as_u64().map(Duration::from_millis).ok_or_else(|| invalid(key, expected, value)),
        JsonValue::String(text) => crate::functions::datetime::parse_duration(text)
            .ok()
            .and_then(|d| d.to_std().ok())
            .ok_or_else(|| invalid(key, expected, value)),
        _ => Err(invalid(key, expected, value)),
    }
}
