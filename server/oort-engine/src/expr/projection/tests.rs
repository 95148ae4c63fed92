//! Tests of the parent module.

use std::collections::BTreeMap;

use oort_sql::{Field, FieldType, Position};

use super::*;
use crate::expr::compile::SourceSchema;
use crate::expr::test_util::*;
use crate::expr::{JoinedRow, compile_with_aliases};
use crate::row::Row;

fn project(sql: &str, sources: &[SourceSchema]) -> Result<Projection, SqlError> {
    let registry = registry();
    let ctx = CompileContext { sources, registry: &registry, rule_id: "r", analytics: None };
    compile_projection(&select_items(sql), &ctx)
}

fn schemaless(sql: &str) -> Projection {
    project(sql, &[SourceSchema::schemaless("demo")]).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn names(p: &Projection) -> Vec<&str> {
    p.columns
        .iter()
        .map(|c| match c {
            ProjectionColumn::Wildcard { qualifier: None, .. } => "*",
            ProjectionColumn::Wildcard { qualifier: Some(q), .. } => q,
            ProjectionColumn::ChangedCols(_) => "changed_cols",
            ProjectionColumn::Expr { name, .. } => name,
        })
        .collect()
}

fn out(entries: &[(&str, Value)]) -> Map {
    entries.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect()
}

#[test]
fn naming_follows_ekuiper() {
    let p = schemaless(
        "SELECT temp, demo.hum, temp AS t, upper(name), UPPER(name) AS u, temp + 1, \"x\", loc->lat, loc.lat, \
         tags[0], meta(topic), window_start(), self, mysum(temp), (temp) FROM demo",
    );
    assert_eq!(
        names(&p),
        [
            "temp",
            "hum",
            "t",
            "upper",
            "u",
            "kuiper_field_0",
            "kuiper_field_1",
            "kuiper_field_2",
            "kuiper_field_3",
            "kuiper_field_4",
            "meta",
            "window_start",
            "kuiper_field_5",
            "mysum",
            "kuiper_field_6",
        ]
    );
    assert!(p.has_aggregate());
    assert!(!schemaless("SELECT temp FROM demo").has_aggregate());
}

#[test]
fn eval_builds_the_output_map_and_leaves_nulls_out() {
    let p = schemaless(r#"SELECT temp, temp * 2 AS double, missing, upper(name), "k" FROM demo"#);
    let got = p.eval(&sample_row(), &env()).unwrap();
    assert_eq!(
        got,
        out(&[
            ("temp", Value::Int(25)),
            ("double", Value::Int(50)),
            ("upper", Value::from("DEV1")),
            ("kuiper_field_0", Value::from("k"))
        ])
    );
    let e = schemaless("SELECT temp / 0 AS x FROM demo").eval(&sample_row(), &env()).unwrap_err();
    assert_eq!(e, EvalError::DivisionByZero);
}

#[test]
fn later_duplicates_win_and_columns_override_the_wildcard() {
    let row = row_of(&[("a", 1), ("b", 2)]);
    let p = schemaless("SELECT a AS x, b AS x FROM demo");
    assert_eq!(p.eval(&row, &env()).unwrap(), out(&[("x", Value::Int(2))]));
    assert_eq!(p.output_expr("x").unwrap().to_string(), "b");
    let p = schemaless("SELECT b AS x, nope AS x FROM demo");
    assert_eq!(p.eval(&row, &env()).unwrap(), out(&[("x", Value::Int(2))]), "a NULL does not overwrite");
    let p = schemaless("SELECT a * 10 AS a, * FROM demo");
    assert!(p.has_wildcard());
    assert_eq!(p.eval(&row, &env()).unwrap(), out(&[("a", Value::Int(10)), ("b", Value::Int(2))]));
    let p = schemaless("SELECT * FROM demo");
    assert_eq!(p.eval(&row, &env()).unwrap(), row.fields);
}

#[test]
fn select_items_may_use_the_aliases_of_others() {
    let row = row_of(&[("a", 1)]);
    let p = schemaless("SELECT a + 1 AS sum1, sum1 + 1 AS sum2 FROM demo");
    assert_eq!(p.eval(&row, &env()).unwrap(), out(&[("sum1", Value::Int(2)), ("sum2", Value::Int(3))]));
    // An item's own alias is the column inside it, the alias elsewhere (eKuiper's example).
    let p = schemaless("SELECT a + 1 AS a, a + 2 AS sum2 FROM demo");
    assert_eq!(p.eval(&row, &env()).unwrap(), out(&[("a", Value::Int(2)), ("sum2", Value::Int(4))]));
    // Forward references work too.
    let p = schemaless("SELECT s1 * 10 AS s2, a + 1 AS s1 FROM demo");
    assert_eq!(p.eval(&row, &env()).unwrap(), out(&[("s1", Value::Int(2)), ("s2", Value::Int(20))]));
    let e = project("SELECT y + 1 AS x, x + 1 AS y FROM demo", &[SourceSchema::schemaless("demo")]).unwrap_err();
    assert!(e.message().contains("refers to itself"), "{e}");
    // Nested aggregates through an alias are caught.
    let e = project("SELECT mysum(a) AS s, mysum(s) AS t FROM demo", &[SourceSchema::schemaless("demo")]).unwrap_err();
    assert!(e.message().contains("cannot be used inside aggregate function"), "{e}");
    // An alias shadows a declared column of the same name without a schema error.
    let declared = [SourceSchema::new("demo", vec![Field::new("a", FieldType::Bigint)])];
    assert!(project("SELECT a * 2 AS twice, twice + 1 AS more FROM demo", &declared).is_ok());
}

#[test]
fn having_and_order_by_see_output_columns() {
    let sources =
        [SourceSchema::new("demo", vec![Field::new("a", FieldType::Bigint), Field::new("g", FieldType::String)])];
    let registry = registry();
    let ctx = CompileContext { sources: &sources, registry: &registry, rule_id: "r", analytics: None };
    let p = compile_projection(&select_items("SELECT mysum(a) AS total, g, count(*) FROM demo"), &ctx).unwrap();
    let having = first_expr("SELECT total > 3 AND count > 1 FROM demo");
    let having = compile_with_aliases(&having, &ctx, &p).unwrap();
    assert_eq!(having.to_string(), "((mysum(a) > 3) AND (count(*) > 1))");
    let rows = vec![row_of(&[("a", 2)]), row_of(&[("a", 3)])];
    assert_eq!(having.eval_group(&rows, &env()).unwrap(), Value::Bool(true));
    // Without the projection, `total` is an unknown field of the declared stream.
    assert!(crate::expr::compile(&first_expr("SELECT total FROM demo"), &ctx).is_err());
    let e = compile_with_aliases(&first_expr("SELECT mysum(total) FROM demo"), &ctx, &p).unwrap_err();
    assert!(e.message().contains("cannot be used inside"), "{e}");
    assert_eq!(e.position(), Some(Position::new(1, 14)));
}

#[test]
fn eval_group_reads_the_first_row_outside_aggregates() {
    let p = schemaless("SELECT g, mysum(a) AS total, a, count(*) AS n, * FROM demo");
    let mut rows = vec![row_of(&[("a", 1)]), row_of(&[("a", 2)]), row_of(&[("a", 4)])];
    rows[0].fields.insert(Arc::from("g"), Value::from("x"));
    let env = EvalEnv { rule_id: "r", window: Some((0, 10)), prefetch: None, hits: None };
    let got = p.eval_group(&rows, &env).unwrap();
    assert_eq!(
        got,
        out(&[("g", Value::from("x")), ("total", Value::Int(7)), ("a", Value::Int(1)), ("n", Value::Int(3)),])
    );
    let windowed = schemaless("SELECT window_start() AS s, window_end() AS e FROM demo");
    assert_eq!(windowed.eval_group(&rows, &env).unwrap(), out(&[("s", Value::Int(0)), ("e", Value::Int(10))]));
}

#[test]
fn joined_rows_with_qualifiers_and_wildcards() {
    let sources = [
        SourceSchema::schemaless("demo"),
        SourceSchema::new("lookup", vec![Field::new("id", FieldType::Bigint), Field::new("label", FieldType::String)])
            .with_alias("t"),
    ];
    let sql = "SELECT demo.id AS did, t.id AS tid, label, temp, t.*, mysum(temp) AS s FROM demo JOIN lookup AS t ON demo.id = t.id";
    let p = project(sql, &sources).unwrap();
    let mut left = row_of(&[("id", 1), ("temp", 20)]);
    left.meta = Arc::new(BTreeMap::from([("topic".to_owned(), "a".to_owned())]));
    let mut right = Row::new(Map::new(), 0);
    right.fields.insert(Arc::from("id"), Value::Int(9));
    right.fields.insert(Arc::from("label"), Value::from("nine"));
    let joined = JoinedRow { parts: vec![(Arc::from("demo"), left), (Arc::from("t"), right)] };
    let got = p.eval(&joined, &env()).unwrap();
    assert_eq!(
        got,
        out(&[
            ("did", Value::Int(1)),
            ("tid", Value::Int(9)),
            ("label", Value::from("nine")),
            ("temp", Value::Int(20)),
            ("id", Value::Int(9)),
            ("s", Value::Int(20)),
        ])
    );
    let star = project("SELECT * FROM demo JOIN lookup AS t ON demo.id = t.id", &sources).unwrap();
    let merged = star.eval(&joined, &env()).unwrap();
    assert_eq!(merged.get("id"), Some(&Value::Int(1)), "earlier parts win");
    assert_eq!(merged.get("label"), Some(&Value::from("nine")));
    let e = project("SELECT x.* FROM demo JOIN lookup AS t ON demo.id = t.id", &sources).unwrap_err();
    assert!(e.message().starts_with("unknown source `x`"), "{e}");
    assert_eq!(e.position(), Some(Position::new(1, 8)));
    let meta = project("SELECT meta(demo.topic) AS tp FROM demo JOIN lookup AS t ON demo.id = t.id", &sources).unwrap();
    assert_eq!(meta.eval(&joined, &env()).unwrap(), out(&[("tp", Value::from("a"))]));
}

#[test]
fn a_set_returning_item_expands_rows_and_is_refused_elsewhere() {
    let registry = crate::FunctionRegistry::new();
    crate::register_builtins(&registry);
    let sources = [SourceSchema::schemaless("demo")];
    let ctx = CompileContext { sources: &sources, registry: &registry, rule_id: "r", analytics: None };
    let project = |sql: &str| compile_projection(&select_items(sql), &ctx);
    let p = project("SELECT unnest(xs) AS v, a FROM demo").unwrap();
    let list = |items: Vec<Value>| Value::list(items);
    let row = out(&[
        ("a", Value::Int(1)),
        ("v", list(vec![Value::Int(5), Value::Null, Value::map([(Arc::from("a"), Value::Int(2))].into())])),
    ]);
    let rows = p.expand(row).unwrap();
    assert_eq!(
        rows,
        [
            out(&[("a", Value::Int(1)), ("v", Value::Int(5))]),
            out(&[("a", Value::Int(1))]),
            out(&[("a", Value::Int(2))])
        ]
    );
    assert_eq!(p.expand(out(&[("a", Value::Int(1)), ("v", list(vec![]))])).unwrap(), Vec::<Map>::new());
    let e = p.expand(out(&[("a", Value::Int(1))])).unwrap_err();
    assert_eq!(e.to_string(), "the argument for the unnest function should be an array");
    for (sql, message) in [
        ("SELECT unnest(xs), extract(m) FROM demo", "only one set-returning function"),
        ("SELECT upper(unnest(xs)) FROM demo", "unnest returns rows: it can only be a whole SELECT item"),
        ("SELECT unnest(unnest(xs)) FROM demo", "it can only be a whole SELECT item"),
    ] {
        let e = project(sql).unwrap_err();
        assert!(e.message().contains(message), "{sql}: {e}");
        assert!(e.position().is_some(), "{sql}");
    }
}
