//! Tests of the parent module.

use std::sync::Arc;

use super::*;
use crate::connector::{ConnectorError, Sink, SinkConfig, SinkFactory, Source, SourceConfig, SourceFactory};

struct Nothing;

impl SourceFactory for Nothing {
    fn build(&self, _: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        Err(ConnectorError::Config("unused".into()))
    }
}

impl SinkFactory for Nothing {
    fn build(&self, _: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        Err(ConnectorError::Config("unused".into()))
    }
}

#[test]
fn a_plan_lists_the_functions_and_connectors_it_uses() {
    let functions = FunctionRegistry::new();
    crate::register_builtins(&functions);
    let connectors = ConnectorRegistry::new();
    connectors.register_source("memory", Arc::new(Nothing));
    connectors.register_sink("log", Arc::new(Nothing));
    connectors.register_sink("Mine", Arc::new(Nothing));
    let stream = oort_sql::parse_stream_ddl(r#"CREATE STREAM s () WITH (TYPE="memory", DATASOURCE="s")"#).unwrap();
    let lookup = move |name: &str| (name == "s").then(|| stream.clone());
    let def = RuleDefinition {
        id: "r".into(),
        sql: "SELECT abs(a) AS x, upper(lower(b)) FROM s WHERE abs(c) > 1 GROUP BY TUMBLINGWINDOW(ss, 1) HAVING count(*) > 0"
            .into(),
        actions: vec![
            ActionDefinition { sink_type: "log".into(), props: Default::default() },
            ActionDefinition { sink_type: "MINE".into(), props: Default::default() },
        ],
        options: RuleOptions::default(),
    };
    let plan = plan(&def, &lookup, &functions, &connectors).unwrap();
    let names: Vec<String> = plan.functions().into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["abs", "count", "lower", "upper"]);
    assert_eq!(plan.connector_types(), (vec!["memory".to_owned()], vec!["log".to_owned(), "mine".to_owned()]));
}

#[test]
fn a_checkpoint_is_of_one_version_of_the_rule_and_its_stream() {
    let functions = FunctionRegistry::new();
    crate::register_builtins(&functions);
    let connectors = ConnectorRegistry::new();
    connectors.register_source("memory", Arc::new(Nothing));
    connectors.register_sink("log", Arc::new(Nothing));
    let fingerprint = |ddl: &str, sql: &str| {
        let stream = oort_sql::parse_stream_ddl(ddl).unwrap();
        let lookup = move |name: &str| (name == "s").then(|| stream.clone());
        let def = RuleDefinition {
            id: "r".into(),
            sql: sql.into(),
            actions: vec![ActionDefinition { sink_type: "log".into(), props: Default::default() }],
            options: RuleOptions::default(),
        };
        crate::checkpoint::fingerprint(&plan(&def, &lookup, &functions, &connectors).unwrap())
    };
    let ddl = r#"CREATE STREAM s (a BIGINT) WITH (TYPE="memory", DATASOURCE="s")"#;
    let sql = "SELECT count(*) FROM s GROUP BY TUMBLINGWINDOW(ss, 1)";
    let base = fingerprint(ddl, sql);
    assert_eq!(fingerprint(ddl, sql), base, "stable");
    assert_ne!(fingerprint(&ddl.replace("BIGINT", "FLOAT"), sql), base, "a field's type changed");
    assert_ne!(fingerprint(&ddl.replace("DATASOURCE=\"s\"", "DATASOURCE=\"t\""), sql), base);
    assert_ne!(fingerprint(ddl, &sql.replace("ss, 1", "ss, 2")), base);
}

#[test]
fn streams_join_within_a_window_after_it_and_before_where() {
    let functions = FunctionRegistry::new();
    crate::register_builtins(&functions);
    let connectors = ConnectorRegistry::new();
    connectors.register_source("memory", Arc::new(Nothing));
    connectors.register_sink("log", Arc::new(Nothing));
    let defs: Vec<StreamDef> = [
        r#"CREATE STREAM s1 (id BIGINT) WITH (TYPE="memory", DATASOURCE="a")"#,
        r#"CREATE STREAM s2 (id BIGINT) WITH (TYPE="memory", DATASOURCE="b")"#,
        r#"CREATE TABLE t (id BIGINT) WITH (TYPE="memory", DATASOURCE="c")"#,
    ]
    .into_iter()
    .map(|ddl| oort_sql::parse_stream_ddl(ddl).unwrap())
    .collect();
    let lookup = move |name: &str| defs.iter().find(|d| d.name == name).cloned();
    let planned = |sql: &str, qos: u32| {
        let options = RuleOptions { qos: crate::delivery::Guarantee::from_qos(qos), ..RuleOptions::default() };
        let actions = vec![ActionDefinition { sink_type: "log".into(), props: Default::default() }];
        plan(&RuleDefinition { id: "r".into(), sql: sql.into(), actions, options }, &lookup, &functions, &connectors)
    };
    let sql = "SELECT * FROM s1 LEFT JOIN s2 AS b ON s1.id = b.id WHERE b.id > 1 GROUP BY TUMBLINGWINDOW(ss, 1)";
    let explained = planned(sql, 0).unwrap().explain();
    let names: Vec<&str> = explained.lines().map(|l| l.trim().split(':').next().unwrap_or_default()).collect();
    assert_eq!(
        names,
        [
            "source_s1_0",
            "source_s2_0",
            "op_decoder_0",
            "op_window_0",
            "op_join_0",
            "op_filter_0",
            "op_project_0",
            "sink_log_0"
        ]
    );
    assert!(explained.contains("op_join_0: LEFT JOIN stream s2 AS b ON s1.id = b.id"), "{explained}");

    let refused = |sql: &str, qos: u32| planned(sql, qos).unwrap_err().to_string();
    assert!(refused("SELECT * FROM s1 JOIN s2 ON s1.id = s2.id", 0).contains("two streams join within a window"));
    let both = "SELECT * FROM s1 JOIN s2 ON s1.id = s2.id JOIN t ON t.id = s1.id GROUP BY TUMBLINGWINDOW(ss, 1)";
    assert!(refused(both, 0).contains("joins both streams and tables"));
    assert!(refused(sql, 1).contains("qos 1 or 2 for a rule that joins streams"));
    // Tables still refuse what would emit their rows without events.
    assert!(refused("SELECT * FROM s1 RIGHT JOIN t ON s1.id = t.id", 0).contains("RIGHT and FULL"));
}

#[test]
fn order_by_keeps_nulls_first_and_last_and_explain_shows_them() {
    let functions = FunctionRegistry::new();
    crate::register_builtins(&functions);
    let connectors = ConnectorRegistry::new();
    connectors.register_source("memory", Arc::new(Nothing));
    connectors.register_sink("log", Arc::new(Nothing));
    let stream = oort_sql::parse_stream_ddl(r#"CREATE STREAM s () WITH (TYPE="memory", DATASOURCE="s")"#).unwrap();
    let lookup = move |name: &str| (name == "s").then(|| stream.clone());
    let def = RuleDefinition {
        id: "r".into(),
        sql: "SELECT a, b, c, d FROM s GROUP BY COUNTWINDOW(3) \
              ORDER BY a NULLS FIRST, b DESC NULLS FIRST, c NULLS LAST, d DESC"
            .into(),
        actions: vec![ActionDefinition { sink_type: "log".into(), props: Default::default() }],
        options: RuleOptions::default(),
    };
    let plan = plan(&def, &lookup, &functions, &connectors).unwrap();
    let orders: Vec<(bool, bool)> = plan.order_by.iter().map(|(_, o)| (o.ascending, o.nulls_first)).collect();
    assert_eq!(orders, [(true, true), (false, true), (true, false), (false, false)]);
    let explained = plan.explain();
    assert!(explained.contains("op_order_0: ORDER BY a NULLS FIRST, b DESC NULLS FIRST, c, d DESC"), "{explained}");
}

/// A source whose broker splits its streams as the stream's `PARTITION_KEY` says.
struct Partitioned;

impl SourceFactory for Partitioned {
    fn build(&self, _: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        Err(ConnectorError::Config("unused".into()))
    }

    fn partitioning(&self, config: &SourceConfig) -> Option<crate::Partitioning> {
        Some(match config.options.get("PARTITION_KEY") {
            Some(key) => crate::Partitioning::ByKey(key.clone()),
            None => crate::Partitioning::ByMessage,
        })
    }
}

#[test]
fn a_rule_is_split_when_each_server_can_compute_its_results_from_its_partitions() {
    let functions = FunctionRegistry::new();
    crate::register_builtins(&functions);
    let connectors = ConnectorRegistry::new();
    connectors.register_source("memory", Arc::new(Nothing));
    connectors.register_source("kafka", Arc::new(Partitioned));
    connectors.register_sink("log", Arc::new(Nothing));
    let streams = [
        r#"CREATE STREAM keyed () WITH (TYPE="kafka", DATASOURCE="t", PARTITION_KEY="device")"#,
        r#"CREATE STREAM spread () WITH (TYPE="kafka", DATASOURCE="t")"#,
        r#"CREATE STREAM local () WITH (TYPE="memory", DATASOURCE="t")"#,
    ]
    .map(|ddl| oort_sql::parse_stream_ddl(ddl).unwrap());
    let lookup = move |name: &str| streams.iter().find(|s| s.name == name).cloned();
    let planned = |sql: &str, qos| {
        let def = RuleDefinition {
            id: "r".into(),
            sql: sql.into(),
            actions: vec![ActionDefinition { sink_type: "log".into(), props: Default::default() }],
            options: RuleOptions { qos, ..RuleOptions::default() },
        };
        plan(&def, &lookup, &functions, &connectors).unwrap().distribution
    };
    let distribution = |sql: &str| planned(sql, crate::Guarantee::AtMostOnce);
    let split = |key: Option<&str>| Distribution::Split { key: key.map(str::to_owned) };
    let single = |sql: &str, why: &str| match distribution(sql) {
        Distribution::Single(reason) => assert!(reason.contains(why), "{sql}: {reason}"),
        other => panic!("{sql}: {other:?}"),
    };

    assert_eq!(distribution("SELECT * FROM spread WHERE a > 1"), split(None));
    assert_eq!(distribution("SELECT * FROM keyed"), split(Some("device")));
    let keyed = "SELECT device, avg(t) FROM keyed GROUP BY device, TUMBLINGWINDOW(ss, 10)";
    assert_eq!(distribution(keyed), split(Some("device")));
    assert_eq!(
        distribution(&keyed.replace("TUMBLINGWINDOW(ss, 10)", "HOPPINGWINDOW(ss, 10, 5)")),
        split(Some("device"))
    );
    let state = "SELECT count(*) FROM keyed GROUP BY STATEWINDOW(a > 1, a < 1) OVER (PARTITION BY device)";
    assert_eq!(distribution(state), split(Some("device")));
    let lagged = "SELECT lag(t) OVER (PARTITION BY device) AS before FROM keyed";
    assert_eq!(distribution(lagged), split(Some("device")));

    single("SELECT * FROM local", "not read through a partitioned consumer group");
    single(&keyed.replace("keyed", "spread"), "declare its PARTITION_KEY");
    single(&keyed.replace("device,", "site,"), "GROUP BY does not have the stream's partition key device");
    single("SELECT count(*) FROM keyed GROUP BY TUMBLINGWINDOW(ss, 10)", "partition key device");
    single(&keyed.replace("TUMBLINGWINDOW(ss, 10)", "SLIDINGWINDOW(ss, 10)"), "SLIDINGWINDOW spans");
    single(&keyed.replace("TUMBLINGWINDOW(ss, 10)", "COUNTWINDOW(5)"), "COUNTWINDOW spans");
    single(&format!("{keyed} LIMIT 3"), "LIMIT");
    single(&state.replace("device", "site"), "STATEWINDOW is not partitioned by");
    single("SELECT lag(t) AS before FROM keyed", "add PARTITION BY device");
    single("SELECT changed_cols(\"c_\", true, t) FROM keyed", "changed_cols");
    // At qos 1 a split rule's windows come back from reading its partitions again.
    let at_least_once = |sql: &str| planned(sql, crate::Guarantee::AtLeastOnce);
    assert_eq!(at_least_once(keyed), split(Some("device")));
    assert_eq!(at_least_once(state), split(Some("device")));
    assert_eq!(at_least_once("SELECT * FROM keyed"), split(Some("device")));
    let why = |d: Distribution| match d {
        Distribution::Single(why) => why,
        other => panic!("{other:?}"),
    };
    assert!(
        why(at_least_once(&keyed.replace("TUMBLINGWINDOW(ss, 10)", "HOPPINGWINDOW(ss, 10, 5)"))).contains("HOPPING")
    );
    assert!(why(at_least_once(lagged)).contains("analytic"));
    assert!(why(planned(keyed, crate::Guarantee::ExactlyOnce)).contains("qos 2"));
}
