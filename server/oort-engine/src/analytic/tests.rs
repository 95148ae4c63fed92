//! Tests of the parent module: eKuiper's analytic function cases, run through
//! the planner, [`AnalyticState::apply`], WHERE and the projection.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::connector::{ConnectorError, ConnectorRegistry, Source, SourceConfig, SourceFactory};
use crate::expr::EvalEnv;
use crate::function::FunctionRegistry;
use crate::json::{json_to_value, map_to_json};
use crate::plan::{PlanError, RulePlan, plan};
use crate::row::Row;
use crate::rule::RuleDefinition;

struct Nothing;

impl SourceFactory for Nothing {
    fn build(&self, _: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        Err(ConnectorError::Config("unused".into()))
    }
}

fn planned(sql: &str) -> Result<RulePlan, PlanError> {
    let functions = FunctionRegistry::new();
    crate::register_builtins(&functions);
    let connectors = ConnectorRegistry::new();
    connectors.register_source("memory", Arc::new(Nothing));
    let stream = oort_sql::parse_stream_ddl(r#"CREATE STREAM demo () WITH (TYPE="memory", DATASOURCE="s")"#).unwrap();
    let lookup = move |name: &str| (name == "demo").then(|| stream.clone());
    let def = RuleDefinition { id: "r".into(), sql: sql.into(), actions: vec![], options: Default::default() };
    plan(&def, &lookup, &functions, &connectors)
}

/// The rule's output for each event, one event per batch (`None`: dropped by
/// WHERE, `Some(Err)`: the analytic stage failed it).
async fn run_batches(sql: &str, batches: &[Vec<serde_json::Value>]) -> Vec<Option<Result<serde_json::Value, String>>> {
    let plan = planned(sql).unwrap();
    let mut state = AnalyticState::new(plan.analytics.len(), plan.projection.changed_cols());
    let env = EvalEnv { rule_id: "r", window: None, prefetch: None, hits: None };
    let mut out = Vec::new();
    for batch in batches {
        let mut rows: Vec<Row> = batch
            .iter()
            .map(|event| match json_to_value(event) {
                crate::Value::Map(fields) => Row::new((*fields).clone(), 0),
                other => panic!("not an object: {other:?}"),
            })
            .collect();
        let failures = state.apply(&plan.analytics, &mut rows, &env, false).await;
        for (row, failure) in rows.iter().zip(failures) {
            if let Some(e) = failure {
                out.push(Some(Err(e.to_string())));
                continue;
            }
            let pass = plan.filter.as_ref().is_none_or(|f| f.expr.eval(row, &env) == Ok(crate::Value::Bool(true)));
            out.push(pass.then(|| Ok(map_to_json(&plan.projection.eval(row, &env).unwrap()))));
        }
    }
    out
}

async fn run(sql: &str, events: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let all = run_batches(sql, &[events.to_vec()]).await;
    all.into_iter().flatten().map(|r| r.unwrap()).collect()
}

/// eKuiper's `demo` stream of its topology tests.
fn demo() -> Vec<serde_json::Value> {
    vec![
        json!({"color": "red", "size": 3, "ts": 1541152486013_i64}),
        json!({"color": "blue", "size": 6, "ts": 1541152486822_i64}),
        json!({"color": "blue", "size": 2, "ts": 1541152487632_i64}),
        json!({"color": "yellow", "size": 4, "ts": 1541152488442_i64}),
        json!({"color": "red", "size": 1, "ts": 1541152489252_i64}),
    ]
}

#[tokio::test]
async fn lag_reads_events_that_where_dropped_and_partitions() {
    let out = run(
        "SELECT lag(size) as lastSize, lag(had_changed(true,size)), size, lastSize/size as changeRate FROM demo WHERE size > 2",
        &demo(),
    )
    .await;
    assert_eq!(
        out,
        [
            json!({"size": 3}),
            json!({"lastSize": 3, "size": 6, "lag": true, "changeRate": 0}),
            json!({"lastSize": 2, "size": 4, "lag": true, "changeRate": 0}),
        ]
    );
    let out = run(
        "SELECT color, lag(size) over (partition by color) as lastSize, size, lastSize/size as changeRate FROM demo",
        &demo(),
    )
    .await;
    assert_eq!(out[2], json!({"color": "blue", "lastSize": 6, "size": 2, "changeRate": 3}));
    assert_eq!(out[4], json!({"color": "red", "lastSize": 3, "size": 1, "changeRate": 3}));
    assert_eq!(out[3], json!({"color": "yellow", "size": 4}));
}

#[tokio::test]
async fn lag_of_an_alias_holding_a_lag() {
    let out = run("SELECT lag(size,1,0) + 1 as b, lag(b,1,0), size FROM demo", &demo()).await;
    let got: Vec<(i64, i64)> = out.iter().map(|o| (o["b"].as_i64().unwrap(), o["lag"].as_i64().unwrap())).collect();
    assert_eq!(got, [(1, 0), (4, 1), (7, 4), (3, 7), (5, 3)]);
}

#[tokio::test]
async fn lag_with_offset_default_when_and_ignore_null() {
    let events: Vec<_> =
        [json!({"a": 1, "s": 1}), json!({"s": 2}), json!({"a": 3, "s": 2}), json!({"a": 4, "s": 3})].into();
    let out = run("SELECT lag(a, 2, -1) AS x FROM demo", &events).await;
    assert_eq!(out, [json!({"x": -1}), json!({"x": -1}), json!({"x": -1}), json!({"x": 1})], "NULL skipped");
    let out = run("SELECT lag(a, 1, 0, false) AS x FROM demo", &events).await;
    assert_eq!(out, [json!({"x": 0}), json!({"x": 1}), json!({}), json!({"x": 3})], "NULL kept");
    // The third event does not change s: lag does not take its a.
    let out = run("SELECT lag(a) OVER (WHEN had_changed(true, s)) AS x FROM demo", &events).await;
    assert_eq!(out, [json!({}), json!({"x": 1}), json!({"x": 1}), json!({"x": 1})]);
    let out = run("SELECT lag(a, 0) AS x FROM demo", &events).await;
    assert_eq!(out, [json!({}), json!({}), json!({}), json!({})], "eKuiper: offset 0 is always NULL");
}

#[tokio::test]
async fn latest_changed_col_and_had_changed_follow_ekuipers_docs() {
    let events: Vec<_> = [(23, 88), (23, 88), (23, 88), (25, 88), (25, 90), (25, 91), (25, 91), (25, 91)]
        .iter()
        .enumerate()
        .map(|(i, (t, h))| json!({"ts": i + 1, "temperature": t, "humidity": h}))
        .collect();
    let out =
        run("SELECT CHANGED_COL(true, temperature) AS myTemp, CHANGED_COL(true, humidity) AS myHum FROM demo", &events)
            .await;
    let changed: Vec<_> = out.into_iter().filter(|o| o != &json!({})).collect();
    assert_eq!(
        changed,
        [json!({"myTemp": 23, "myHum": 88}), json!({"myTemp": 25}), json!({"myHum": 90}), json!({"myHum": 91})]
    );
    let out = run(
        "SELECT ts FROM demo WHERE HAD_CHANGED(true, temperature) = true AND HAD_CHANGED(true, humidity) = false",
        &events,
    )
    .await;
    assert_eq!(out, [json!({"ts": 4})]);
    let out = run("SELECT ts FROM demo WHERE CHANGED_COL(true, temperature) > 24", &events).await;
    assert_eq!(out, [json!({"ts": 4})]);
    let out =
        run("SELECT latest(a, 0) AS l FROM demo", &[json!({}), json!({"a": 5}), json!({}), json!({"a": 6})]).await;
    assert_eq!(out, [json!({"l": 0}), json!({"l": 5}), json!({"l": 5}), json!({"l": 6})]);
}

#[tokio::test]
async fn accumulators_with_partitions_when_and_begin_reset() {
    let out = run("select acc_sum(size) over (partition by color), color from demo", &demo()).await;
    let sums: Vec<f64> = out.iter().map(|o| o["acc_sum"].as_f64().unwrap()).collect();
    assert_eq!(sums, [3.0, 6.0, 8.0, 4.0, 4.0]);
    for (f, expected) in [
        ("acc_sum", json!([3.0, 3.0, 3.0, 3.0, 4.0])),
        ("acc_min", json!([3.0, 3.0, 3.0, 3.0, 1.0])),
        ("acc_max", json!([3.0, 3.0, 3.0, 3.0, 3.0])),
        ("acc_count", json!([1, 1, 1, 1, 2])),
        ("acc_avg", json!([3.0, 3.0, 3.0, 3.0, 2.0])),
    ] {
        let out = run(&format!(r#"select {f}(size) over (when color = "red") from demo"#), &demo()).await;
        let got: Vec<_> = out.iter().map(|o| o[f].clone()).collect();
        assert_eq!(json!(got), expected, "{f}");
    }
    let events: Vec<_> = [1, 2, 1, 3, -1, 1].iter().map(|a| json!({"a": a})).collect();
    let out = run("SELECT acc_count(a, a > 1, a < 0) AS c FROM demo", &events).await;
    let counts: Vec<i64> = out.iter().map(|o| o["c"].as_i64().unwrap()).collect();
    assert_eq!(counts, [0, 1, 2, 3, 4, 0], "eKuiper's documented example");
}

#[tokio::test]
async fn state_goes_on_across_batches_and_survives_a_save() {
    let sql = "SELECT acc_sum(a) AS s, lag(a) AS l FROM demo";
    let plan = planned(sql).unwrap();
    let env = EvalEnv { rule_id: "r", window: None, prefetch: None, hits: None };
    let mut state = AnalyticState::new(plan.analytics.len(), plan.projection.changed_cols());
    let mut rows = vec![Row::new([(Arc::from("a"), crate::Value::Int(2))].into(), 0)];
    state.apply(&plan.analytics, &mut rows, &env, false).await;
    let mut restored = AnalyticState::restore(&state.save().unwrap(), 2, 0).unwrap();
    assert_eq!(restored, state);
    assert!(AnalyticState::restore(&state.save().unwrap(), 3, 0).is_err(), "another rule's state");
    let mut rows = vec![Row::new([(Arc::from("a"), crate::Value::Int(5))].into(), 0)];
    restored.apply(&plan.analytics, &mut rows, &env, false).await;
    assert_eq!(rows[0].analytic, [crate::Value::Float(7.0), crate::Value::Int(2)]);
}

#[tokio::test]
async fn a_failing_call_drops_its_event_and_the_state_stays_bounded() {
    let out =
        run_batches("SELECT acc_max(a) AS m FROM demo", &[vec![json!({"a": 1}), json!({"a": "x"}), json!({"a": 3})]])
            .await;
    assert_eq!(out[0], Some(Ok(json!({"m": 1.0}))));
    assert!(matches!(&out[1], Some(Err(e)) if e.contains("should be a number")), "{:?}", out[1]);
    assert_eq!(out[2], Some(Ok(json!({"m": 3.0}))));
    let out = run_batches("SELECT lag(a, 5000000) FROM demo", &[vec![json!({"a": 1})]]).await;
    assert!(matches!(&out[0], Some(Err(e)) if e.contains("offset must be between 0 and")), "{:?}", out[0]);
}

#[test]
fn concurrency_is_for_rules_without_state() {
    let with = |sql: &str, concurrency: usize| {
        let functions = FunctionRegistry::new();
        crate::register_builtins(&functions);
        let connectors = ConnectorRegistry::new();
        connectors.register_source("memory", Arc::new(Nothing));
        let stream =
            oort_sql::parse_stream_ddl(r#"CREATE STREAM demo () WITH (TYPE="memory", DATASOURCE="s")"#).unwrap();
        let lookup = move |name: &str| (name == "demo").then(|| stream.clone());
        let options = crate::rule::RuleOptions { concurrency, ..Default::default() };
        let def = RuleDefinition { id: "r".into(), sql: sql.into(), actions: vec![], options };
        plan(&def, &lookup, &functions, &connectors)
    };
    assert!(with("SELECT a * 2 AS b FROM demo WHERE a > 1", 4).is_ok());
    for sql in ["SELECT count(*) FROM demo GROUP BY COUNTWINDOW(2)", "SELECT lag(a) FROM demo"] {
        let e = with(sql, 4).unwrap_err().to_string();
        assert!(e.contains("keeps state from one event to the next"), "{sql}: {e}");
        assert!(with(sql, 1).is_ok(), "{sql}");
    }
}

#[tokio::test]
async fn where_reads_the_aliases_of_the_select_list() {
    let events = [json!({"a": 1}), json!({"a": 2}), json!({"a": 3})];
    let out = run("SELECT a + 1 AS b FROM demo WHERE b > 2", &events).await;
    assert_eq!(out, [json!({"b": 3}), json!({"b": 4})]);
    let out = run("SELECT a * 10 AS a FROM demo WHERE a > 15", &events).await;
    assert_eq!(out, [json!({"a": 20}), json!({"a": 30})], "the alias wins over the column, as in HAVING");
    let plan = planned("SELECT count(*) AS c FROM demo WHERE c > 1 GROUP BY TUMBLINGWINDOW(ss, 1)").unwrap();
    assert_eq!(plan.filter.unwrap().expr.to_string(), "(c > 1)", "an aggregate's alias names the column in WHERE");
}

#[test]
fn creation_refuses_what_ekuiper_refuses() {
    let cases = [
        ("SELECT lag(a, -1) FROM demo", "the offset must not be negative"),
        ("SELECT lag(a, 1.5) FROM demo", "argument 2 must be bigint"),
        ("SELECT lag(a, b) FROM demo", "not the column b"),
        ("SELECT lag(a, 1, 0, 1) FROM demo", "argument 4 must be boolean"),
        ("SELECT changed_col(1, a) FROM demo", "argument 1 must be boolean"),
        ("SELECT had_changed(true) FROM demo", "had_changed takes"),
        ("SELECT acc_sum(a, true) FROM demo", "takes 1 or 3 arguments"),
        ("SELECT upper(a) OVER (PARTITION BY b) FROM demo", "only for the analytic functions"),
        ("SELECT lag(a) OVER (ORDER BY b) FROM demo", "OVER with anything but PARTITION BY and WHEN"),
        ("SELECT lag(count(*)) FROM demo GROUP BY TUMBLINGWINDOW(ss, 1)", "cannot be used inside analytic function"),
        (r#"SELECT changed_cols("p", true, a) AS x FROM demo"#, "it takes no alias"),
        (r#"SELECT a FROM demo WHERE changed_cols("p", true, a)"#, "it can only be a whole SELECT item"),
        (r#"SELECT changed_cols(1, true, a) FROM demo"#, "the prefix must be a string"),
        (r#"SELECT changed_cols("", a, b) FROM demo"#, "must be literals"),
        (r#"SELECT changed_cols("", true) FROM demo"#, "at least 3 arguments"),
        ("SELECT a FROM demo WHERE row_number() > 1", "it can only be a whole SELECT item"),
        ("SELECT row_number() AS a, row_number() AS b FROM demo", "a second row_number()"),
        ("SELECT row_number(1) FROM demo", "takes 0 argument(s)"),
        ("SELECT last_hit_count() FROM demo GROUP BY COUNTWINDOW(2)", "with one, use last_agg_hit_count"),
        ("SELECT a FROM demo WHERE last_agg_hit_time() > 0", "without one, use last_hit_time"),
        ("SELECT lag(last_hit_count()) FROM demo", "not supported in a window's clauses"),
    ];
    for (sql, message) in cases {
        match planned(sql) {
            Ok(_) => panic!("{sql}: accepted"),
            Err(e) => assert!(e.to_string().contains(message), "{sql}: {e}"),
        }
    }
    let plan = planned("SELECT lag(a) OVER (PARTITION BY b WHEN c > 1) AS x FROM demo WHERE acc_count(a) > 2").unwrap();
    assert_eq!(plan.analytics.len(), 2);
    assert!(plan.explain().contains("op_analytic_0: "), "{}", plan.explain());
    assert!(plan.explain().contains("lag(a) OVER (PARTITION BY b WHEN (c > 1))"), "{}", plan.explain());
}
