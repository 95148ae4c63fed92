//! The Prometheus endpoint (`GET /metrics`, off unless `metrics_listen` is
//! set): rules by state and, per running rule and operator, the counters of
//! `GetRuleStatus` (with the results TailRule readers missed), in the OpenMetrics text format; per portable plugin, the
//! restarts of its process; the latency of external function calls; per
//! named connection, its state and its clients.
//!
//! Each scrape reads a snapshot of the catalog and the engine into a fresh
//! registry: the figures live in the engine's operators, so there is nothing
//! to keep up to date between scrapes. Call latencies are the exception: they
//! are observed as calls end ([`ExternalCalls`]) and registered as they are.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oort_engine::RuleState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use std::sync::Arc;

use oort_connectors::connections::Connections;
use oort_plugin_host::PortableHost;

use crate::auth::{Authenticator, Right};
use crate::rules::RuleController;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperatorLabels {
    rule: String,
    operator: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: String,
    function: String,
    outcome: &'static str,
}

type Counters<L> = Family<L, Counter>;
type Gauges<L> = Family<L, Gauge>;
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latencies of external function calls, by service, function and outcome.
#[derive(Clone)]
pub struct ExternalCalls(Histograms<CallLabels>);

impl Default for ExternalCalls {
    fn default() -> Self {
        // 100 µs to ~13 s, doubling: a loopback call to a call that hit its deadline.
        Self(Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_1, 2.0, 18))))
    }
}

impl oort_external::CallObserver for ExternalCalls {
    fn observe(&self, service: &str, function: &str, elapsed: std::time::Duration, ok: bool) {
        let labels = CallLabels {
            service: service.to_owned(),
            function: function.to_owned(),
            outcome: if ok { "ok" } else { "error" },
        };
        self.0.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionStateLabels {
    connection: String,
    state: &'static str,
}

/// What a scrape reads.
#[derive(Clone)]
struct Sources {
    rules: RuleController,
    portable: Arc<PortableHost>,
    external_calls: ExternalCalls,
    connections: Arc<Connections>,
    guard: Option<Arc<Authenticator>>,
}

/// The router of the metrics endpoint. With `guard`, a scrape needs a token with the `read` right (401 otherwise).
pub fn router(
    rules: RuleController,
    portable: Arc<PortableHost>,
    external_calls: ExternalCalls,
    connections: Arc<Connections>,
    guard: Option<Arc<Authenticator>>,
) -> axum::Router {
    axum::Router::new().route("/metrics", axum::routing::get(scrape)).with_state(Sources {
        rules,
        portable,
        external_calls,
        connections,
        guard,
    })
}

async fn scrape(State(sources): State<Sources>, headers: HeaderMap) -> Response {
    if let Some(guard) = &sources.guard {
        match guard.authenticate(&headers, None) {
            Ok(caller) if caller.role.allows(Right::Read) => {}
            Ok(caller) => {
                return (StatusCode::FORBIDDEN, format!("{} lacks the right `read`", caller.name)).into_response();
            }
            Err(error) => return (StatusCode::UNAUTHORIZED, error.to_string()).into_response(),
        }
    }
    match render(&sources).await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "metrics scrape failed");
            (StatusCode::INTERNAL_SERVER_ERROR, error).into_response()
        }
    }
}

/// The metrics now, as OpenMetrics text.
async fn render(sources: &Sources) -> Result<String, String> {
    let Sources { rules, portable, external_calls, connections, .. } = sources;
    let stored = {
        let catalog = rules.catalog().clone();
        tokio::task::spawn_blocking(move || catalog.direct().list_rules().map(|r| r.len()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
    let statuses = rules.engine().statuses().await;

    let mut registry = Registry::with_prefix("oort");
    let by_state = Gauges::<StateLabels>::default();
    registry.register("rules", "Rules in the catalog, by state", by_state.clone());
    let restarts = Counters::<RuleLabels>::default();
    registry.register("rule_restarts", "Times a rule's source was restarted", restarts.clone());
    let non_finite = Counter::<u64>::default();
    registry.register("json_non_finite", "NaN and infinite FLOAT values written to JSON as null", non_finite.clone());
    non_finite.inc_by(oort_engine::json::non_finite_encoded());
    let tail_missed = Counters::<RuleLabels>::default();
    registry.register("rule_tail_missed", "Results TailRule readers missed by falling behind", tail_missed.clone());
    let shortfall = Gauges::<RuleLabels>::default();
    registry.register(
        "rule_delivery_shortfall",
        "1 for a rule that gets a weaker delivery guarantee than its qos asks for (docs/delivery.md)",
        shortfall.clone(),
    );
    let checkpoint_time = Gauges::<RuleLabels>::default();
    registry.register(
        "rule_checkpoint_last_time_ms",
        "When the rule's last checkpoint was taken (Unix ms), for rules with qos >= 1",
        checkpoint_time.clone(),
    );
    let checkpoint_bytes = Gauges::<RuleLabels>::default();
    registry.register("rule_checkpoint_last_bytes", "Size of the rule's last checkpoint", checkpoint_bytes.clone());
    let checkpoint_duration = Gauges::<RuleLabels>::default();
    registry.register(
        "rule_checkpoint_last_duration_ms",
        "From taking the rule's last checkpoint to having it saved",
        checkpoint_duration.clone(),
    );
    let checkpoint_failures = Counters::<RuleLabels>::default();
    registry.register("rule_checkpoint_failures", "Checkpoints that could not be saved", checkpoint_failures.clone());
    let records_in = Counters::<OperatorLabels>::default();
    registry.register("operator_records_in", "Records an operator received", records_in.clone());
    let records_out = Counters::<OperatorLabels>::default();
    registry.register("operator_records_out", "Records an operator emitted", records_out.clone());
    let exceptions = Counters::<OperatorLabels>::default();
    registry.register("operator_exceptions", "Errors an operator counted", exceptions.clone());
    let dropped = Counters::<OperatorLabels>::default();
    registry.register(
        "operator_records_dropped",
        "Records dropped because the rule's input buffer was full",
        dropped.clone(),
    );
    let latency = Gauges::<OperatorLabels>::default();
    registry.register("operator_process_latency_us", "Latency of the last batch, per record, in µs", latency.clone());
    let buffer = Gauges::<OperatorLabels>::default();
    registry.register("operator_buffer_length", "Records waiting in an operator's buffer", buffer.clone());
    registry.register_with_unit(
        "external_call_duration",
        "Latency of external function calls, deadline included",
        prometheus_client::registry::Unit::Seconds,
        external_calls.0.clone(),
    );

    let plugin_restarts = Counters::<PluginLabels>::default();
    registry.register(
        "plugin_restarts",
        "Times a portable plugin's process was restarted after a crash, kill, failed health check or call timeout",
        plugin_restarts.clone(),
    );
    for info in portable.list() {
        let restarts = portable.status(&info.name).map_or(0, |s| s.restarts);
        plugin_restarts.get_or_create(&PluginLabels { plugin: info.name }).inc_by(u64::from(restarts));
    }

    let connection_state = Gauges::<ConnectionStateLabels>::default();
    registry.register(
        "connection_state",
        "A named connection's state (1 for the state it is in): idle, connecting, connected or disconnected",
        connection_state.clone(),
    );
    let connection_clients = Gauges::<ConnectionLabels>::default();
    registry.register("connection_clients", "Clients open with a named connection", connection_clients.clone());
    for def in connections.list() {
        let status = connections.status(&def.name);
        for state in ["idle", "connecting", "connected", "disconnected"] {
            let labels = ConnectionStateLabels { connection: def.name.clone(), state };
            connection_state.get_or_create(&labels).set(i64::from(status.state.as_str() == state));
        }
        connection_clients.get_or_create(&ConnectionLabels { connection: def.name.clone() }).set(status.clients.into());
    }

    let (mut running, mut failed) = (0i64, 0i64);
    for (rule, status) in &statuses {
        match status.state {
            RuleState::Running => running += 1,
            RuleState::Failed => failed += 1,
            RuleState::Stopped | RuleState::Finished => {}
        }
        restarts.get_or_create(&RuleLabels { rule: rule.clone() }).inc_by(u64::from(status.restart_count));
        tail_missed.get_or_create(&RuleLabels { rule: rule.clone() }).inc_by(status.tail_missed);
        shortfall.get_or_create(&RuleLabels { rule: rule.clone() }).set(i64::from(status.delivery.shortfall.is_some()));
        if status.checkpoints.enabled {
            let labels = RuleLabels { rule: rule.clone() };
            checkpoint_failures.get_or_create(&labels).inc_by(status.checkpoints.failures);
            if let Some(last) = &status.checkpoints.last {
                checkpoint_time.get_or_create(&labels).set(last.taken_ms);
                checkpoint_bytes.get_or_create(&labels).set(i64::try_from(last.bytes).unwrap_or(i64::MAX));
                checkpoint_duration.get_or_create(&labels).set(i64::try_from(last.duration_ms).unwrap_or(i64::MAX));
            }
        }
        for op in &status.operators {
            let labels = OperatorLabels { rule: rule.clone(), operator: op.name.clone() };
            records_in.get_or_create(&labels).inc_by(op.records_in_total);
            records_out.get_or_create(&labels).inc_by(op.records_out_total);
            exceptions.get_or_create(&labels).inc_by(op.exceptions_total);
            dropped.get_or_create(&labels).inc_by(op.records_dropped_total);
            latency.get_or_create(&labels).set(op.process_latency_us);
            buffer.get_or_create(&labels).set(i64::try_from(op.buffer_length).unwrap_or(i64::MAX));
        }
    }
    let stopped = (stored as i64 - running - failed).max(0);
    for (state, count) in [("running", running), ("stopped", stopped), ("failed", failed)] {
        by_state.get_or_create(&StateLabels { state }).set(count);
    }

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(|e| e.to_string())?;
    Ok(text)
}
