//! The Oort server, as a library so that tests can drive it.
//!
//! - [`config`]: `oort.toml`, environment and flags, merged into one [`Config`].
//! - [`server`]: assembles the gRPC services with health and reflection and
//!   serves them until shutdown; [`run`] is the entry point.
//! - [`auth`]: tokens, client certificates and roles, checked before any service.
//! - [`api`]: one module per `oort.v1` service.
//! - [`http`]: the HTTP endpoints (push, metrics), bounded in connections and time.
//! - [`rules`]: [`rules::RuleController`], the catalog and the engine in step;
//!   [`catalog_watch`] keeps them in step with other servers' changes to a shared catalog.
//! - [`plugins`]: [`plugins::PluginController`], the catalog, both plugin hosts and the rules in step.
//! - [`convert`]: protobuf messages ↔ engine types.
//! - [`redact`]: secrets in rules and services, stored but never returned.
//! - [`error`]: [`ApiError`], what a handler can fail with.
//! - [`status`]: the one place where errors become `tonic::Status`.

pub mod api;
pub mod auth;
pub mod catalog_watch;
pub mod config;
pub mod convert;
pub mod error;
pub mod http;
pub mod metrics;
pub mod partitions;
pub mod plugins;
pub mod redact;
pub mod rule_logs;
pub mod rules;
pub mod schedule;
pub mod server;
pub mod shared_plugins;
pub mod status;

pub use config::Config;
pub use error::ApiError;
pub use server::run;
