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
