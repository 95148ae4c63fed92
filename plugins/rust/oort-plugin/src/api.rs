//! What a plugin author implements: [`Function`], [`Source`] and [`Sink`], in
//! the style of eKuiper's plugin API, and the [`Plugin`] that lists them for
//! [`export_plugin!`](crate::export_plugin).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::value::{Event, Row, Value};

/// What a call sees besides its arguments.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Id of the rule that calls the function or runs the source/sink.
    pub rule_id: &'a str,
}

/// A SQL function (eKuiper's `api.Function`).
pub trait Function: Send + Sync + 'static {
    /// Checks a call when a rule is created. `args` has one entry per argument:
    /// the literal's value, or `None` for an expression known only at run time.
    fn validate(&self, args: &[Option<Value>]) -> Result<(), String> {
        let _ = args;
        Ok(())
    }

    /// Computes one call. An aggregate receives, for each argument, a
    /// `Value::List` of that argument over every row of the group.
    fn exec(&self, ctx: &Context<'_>, args: &[Value]) -> Result<Value, String>;

    /// Whether the function aggregates over a group or window.
    fn is_aggregate(&self) -> bool {
        false
    }

    /// One line for `ListFunctions`.
    fn description(&self) -> &str {
        ""
    }
}

/// A source of events (eKuiper's `api.Source`). The host calls `configure`,
/// `open`, then `read` in a loop on a thread of its own, then `close`.
pub trait Source: Send + 'static {
    /// Takes the stream's DATASOURCE and options (keys upper-case, as in the DDL).
    fn configure(&mut self, datasource: &str, props: &BTreeMap<String, Value>) -> Result<(), String>;

    /// Connects or starts producing.
    fn open(&mut self, ctx: &Context<'_>) -> Result<(), String> {
        let _ = ctx;
        Ok(())
    }

    /// Waits at most `timeout` and returns the events ready (maybe none), or
    /// `None` once the source has ended. Returning often lets the host stop the
    /// source and switch to a new plugin version promptly.
    fn read(&mut self, timeout: Duration) -> Result<Option<Vec<Event>>, String>;

    /// Disconnects.
    fn close(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// A sink of results (eKuiper's `api.Sink`).
pub trait Sink: Send + 'static {
    /// Takes the action's properties.
    fn configure(&mut self, props: &BTreeMap<String, Value>) -> Result<(), String>;

    /// Connects.
    fn open(&mut self, ctx: &Context<'_>) -> Result<(), String> {
        let _ = ctx;
        Ok(())
    }

    /// Delivers one result of the rule (one row, or a window's rows).
    fn collect(&mut self, rows: &[Row]) -> Result<(), String>;

    /// Disconnects, flushing what is buffered.
    fn close(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// Builds a fresh source or sink instance (one per rule).
pub type Constructor<T> = Box<dyn Fn() -> Box<T> + Send + Sync>;

/// A symbol of the plugin.
pub(crate) enum Symbol {
    Function(Box<dyn Function>),
    Source(Constructor<dyn Source>),
    Sink(Constructor<dyn Sink>),
}

/// Everything a plugin provides, in the order the host indexes it.
pub struct Plugin {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) symbols: Vec<(String, Symbol)>,
}

impl Plugin {
    /// A plugin; `version` is usually `env!("CARGO_PKG_VERSION")`.
    pub fn new(name: &str, version: &str) -> Self {
        Self { name: name.to_owned(), version: version.to_owned(), symbols: Vec::new() }
    }

    /// Adds a function, called `name` in SQL.
    pub fn function(mut self, name: &str, function: impl Function) -> Self {
        self.symbols.push((name.to_ascii_lowercase(), Symbol::Function(Box::new(function))));
        self
    }

    /// Adds a source type, `TYPE="name"` in a stream; `new` builds one instance per rule.
    pub fn source<S: Source>(mut self, name: &str, new: impl Fn() -> S + Send + Sync + 'static) -> Self {
        let ctor: Constructor<dyn Source> = Box::new(move || Box::new(new()));
        self.symbols.push((name.to_ascii_lowercase(), Symbol::Source(ctor)));
        self
    }

    /// Adds a sink type, `{"type": "name"}` in a rule's actions.
    pub fn sink<S: Sink>(mut self, name: &str, new: impl Fn() -> S + Send + Sync + 'static) -> Self {
        let ctor: Constructor<dyn Sink> = Box::new(move || Box::new(new()));
        self.symbols.push((name.to_ascii_lowercase(), Symbol::Sink(ctor)));
        self
    }
}
