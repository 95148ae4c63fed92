//! One module per `oort.v1` service. Handlers validate, call the catalog (and,
//! later, the engine), and return `ApiError`s that [`crate::status`] maps.

pub mod connections;
pub mod connectors;
pub mod events;
pub mod external;
pub mod functions;
pub mod plugins;
pub mod rules;
pub mod schemas;
pub mod state;
pub mod streams;

use std::sync::Arc;
use std::time::SystemTime;

use oort_store::{Catalog, StoreError};

use crate::error::{ApiError, ApiResult};

/// Shared handle to the catalog. Catalog calls do blocking I/O (a flush per
/// write), so they run on tokio's blocking pool, never on a reactor thread.
#[derive(Clone)]
pub struct CatalogHandle(Arc<dyn Catalog>);

impl CatalogHandle {
    /// Wraps a catalog.
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self(catalog)
    }

    /// The catalog itself, for quick reads that need no blocking pool.
    pub fn direct(&self) -> &dyn Catalog {
        self.0.as_ref()
    }

    /// Runs `f` against the catalog on the blocking pool.
    pub async fn call<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Catalog) -> Result<T, StoreError> + Send + 'static,
    {
        let catalog = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || f(catalog.as_ref()))
            .await
            .map_err(|e| ApiError::Internal(format!("catalog task failed: {e}")))?
            .map_err(ApiError::from)
    }
}

/// The current time as a protobuf timestamp.
pub(crate) fn now() -> prost_types::Timestamp {
    SystemTime::now().into()
}

/// Takes a required message field out of a request.
pub(crate) fn required<T>(field: Option<T>, name: &str) -> ApiResult<T> {
    field.ok_or_else(|| ApiError::InvalidArgument(format!("`{name}` is required")))
}

/// What refers to a catalog entity by name (a connection, a schema): the
/// streams that name it, the rules whose actions name it, and the rules that
/// read those streams.
pub(crate) struct Users {
    /// Streams that name it.
    pub streams: Vec<String>,
    /// Rules with an action that names it.
    pub actions: Vec<String>,
    /// Rules that read one of `streams`.
    pub readers: Vec<String>,
}

impl Users {
    /// The users in `catalog`, by what a stream and a rule's action say.
    pub(crate) fn find(
        catalog: &dyn Catalog,
        stream_uses: impl Fn(&oort_proto::v1::Stream) -> bool,
        action_uses: impl Fn(&prost_types::Struct) -> bool,
    ) -> Result<Self, StoreError> {
        let streams: Vec<String> =
            catalog.list_streams()?.into_iter().filter(|s| stream_uses(s)).map(|s| s.name).collect();
        let actions = catalog
            .list_rules()?
            .into_iter()
            .filter(|r| r.actions.iter().any(|a| a.props.as_ref().is_some_and(&action_uses)))
            .map(|r| r.id)
            .collect();
        let mut readers = Vec::new();
        for stream in &streams {
            readers.extend(catalog.rules_reading(stream)?);
        }
        Ok(Self { streams, actions, readers })
    }

    /// Whether a stream or an action names it (the readers follow from the streams).
    pub(crate) fn any(&self) -> bool {
        !(self.streams.is_empty() && self.actions.is_empty())
    }

    /// The rules among them that run now.
    pub(crate) async fn running(self, rules: &crate::rules::RuleController) -> Vec<String> {
        let mut all = [self.actions, self.readers].concat();
        all.sort();
        all.dedup();
        let mut running = Vec::new();
        for rule in all {
            if rules.status(&rule).await.is_some() {
                running.push(rule);
            }
        }
        running
    }
}

/// The text of an action's property `key`, if it is text.
pub(crate) fn action_text<'a>(props: &'a prost_types::Struct, key: &str) -> Option<&'a str> {
    match props.fields.get(key).and_then(|v| v.kind.as_ref()) {
        Some(prost_types::value::Kind::StringValue(s)) => Some(s),
        _ => None,
    }
}
