//! Random and hostile input through SQL parsing → planning and through event
//! decoding, on threads with the stack the server gives them: whatever comes
//! in, the answer is a result or an error, never a panic or a stack overflow.
//! Bounded: a fixed number of cases, run in CI with the other tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use oort_engine::decode::Decoder;
use oort_engine::{
    ActionDefinition, ConnectorError, ConnectorRegistry, FunctionRegistry, Payload, RuleDefinition, RuleOptions, Sink,
    SinkConfig, SinkFactory, Source, SourceConfig, SourceEvent, SourceFactory,
};
use proptest::prelude::*;

/// Runs `f` on a thread with the server's stack size; a panic fails the test
/// and an overflow aborts it.
fn on_a_server_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(oort_engine::THREAD_STACK_BYTES).spawn(f).unwrap().join().expect("no panic")
}

/// A source and a sink type that build nothing: planning only looks them up.
struct Stub;

impl SourceFactory for Stub {
    fn build(&self, _: &SourceConfig) -> Result<Box<dyn Source>, ConnectorError> {
        Err(ConnectorError::Config("stub".into()))
    }
}

impl SinkFactory for Stub {
    fn build(&self, _: &SinkConfig) -> Result<Box<dyn Sink>, ConnectorError> {
        Err(ConnectorError::Config("stub".into()))
    }
}

/// Parses and plans `sql` over the schemaless stream `s`.
fn plan(sql: String) -> Result<(), String> {
    on_a_server_thread(move || {
        let functions = FunctionRegistry::new();
        oort_engine::register_builtins(&functions);
        let connectors = ConnectorRegistry::new();
        connectors.register_source("stub", Arc::new(Stub));
        connectors.register_sink("stub", Arc::new(Stub));
        let stream = oort_sql::parse_stream_ddl(r#"CREATE STREAM s () WITH (TYPE="stub", DATASOURCE="s")"#).unwrap();
        let lookup = move |name: &str| (name == "s").then(|| stream.clone());
        let def = RuleDefinition {
            id: "r".into(),
            sql,
            actions: vec![ActionDefinition { sink_type: "stub".into(), props: Default::default() }],
            options: RuleOptions::default(),
        };
        oort_engine::plan::plan(&def, &lookup, &functions, &connectors).map(drop).map_err(|e| e.to_string())
    })
}

fn decode(ddl: &str, bytes: Vec<u8>) -> Result<(), String> {
    let decoder = Decoder::new(&oort_sql::parse_stream_ddl(ddl).unwrap());
    let event = SourceEvent::new(Payload::Bytes(bytes), Arc::new(BTreeMap::new()));
    on_a_server_thread(move || decoder.decode(event).map(drop))
}

const PIECES: [&str; 28] = [
    "a",
    "b",
    "1",
    "2.5",
    "'s'",
    "+",
    "-",
    "*",
    "/",
    " AND ",
    " OR ",
    " || ",
    "->",
    "(",
    ")",
    "abs(",
    "upper(",
    ",",
    "[0]",
    " CASE WHEN ",
    " THEN ",
    " ELSE ",
    " END ",
    " NOT ",
    "=",
    ">",
    " IN (",
    "meta(",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_expression_parses_and_plans_or_is_refused(pieces in proptest::collection::vec(0..PIECES.len(), 0..3_000)) {
        let expr: String = pieces.into_iter().map(|i| PIECES[i]).collect();
        let _ = plan(format!("SELECT {expr} AS x FROM s"));
    }

    #[test]
    fn any_bytes_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..4_096), schemaless in any::<bool>()) {
        let ddl = if schemaless {
            r#"CREATE STREAM s () WITH (DATASOURCE="s")"#
        } else {
            r#"CREATE STREAM s (a BIGINT, b STRING, c FLOAT, d BOOLEAN) WITH (DATASOURCE="s")"#
        };
        let _ = decode(ddl, bytes);
    }
}

/// The crashers reported in issue 20, kept as a corpus.
#[test]
fn the_reported_crashers_are_refused() {
    for op in ["+", " AND ", " OR ", " || ", "->"] {
        for terms in [1_600, 10_000] {
            let sql = format!("SELECT {} AS x FROM s", vec!["a"; terms].join(op));
            assert!(plan(sql).is_err(), "{op} × {terms}");
        }
    }
    let nested = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    assert!(decode(r#"CREATE STREAM s () WITH (DATASOURCE="s")"#, nested.clone()).is_err());
    assert!(decode(r#"CREATE STREAM s (a BIGINT) WITH (DATASOURCE="s")"#, nested).is_err());
    // Just under the limit, a long expression plans.
    plan(format!("SELECT {} AS x FROM s", vec!["a"; 250].join("+"))).expect("250 terms plan");
}
