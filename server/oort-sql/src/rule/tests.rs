//! Tests of the parent module.

use super::*;
use crate::window::TimeUnit;
use sqlparser::ast::{BinaryOperator, SelectItem};

fn parse(sql: &str) -> RuleQuery {
    parse_rule_sql(sql).unwrap_or_else(|e| panic!("{sql}\n{e}"))
}

fn error(sql: &str) -> SqlError {
    match parse_rule_sql(sql) {
        Ok(rule) => panic!("expected an error for {sql}, got {rule:?}"),
        Err(e) => e,
    }
}

fn at(line: u64, column: u64) -> Option<Position> {
    Some(Position::new(line, column))
}

fn names(rule: &RuleQuery) -> Vec<&str> {
    rule.source_names().collect()
}

#[test]
fn select_star() {
    let rule = parse("SELECT * FROM demo");
    assert_eq!(names(&rule), ["demo"]);
    assert_eq!(rule.window, None);
    assert!(matches!(rule.select.projection[..], [SelectItem::Wildcard(_)]));
    assert_eq!(rule.stream(), Some(&SourceRef { name: "demo".into(), alias: None, position: at(1, 15) }));
}

#[test]
fn projection_and_where() {
    let rule = parse("SELECT temperature AS t, humidity FROM demo WHERE temperature > 30 AND humidity < 80");
    assert_eq!(rule.select.projection.len(), 2);
    assert!(matches!(rule.select.selection, Some(Expr::BinaryOp { op: BinaryOperator::And, .. })));
}

#[test]
fn tumbling_window_with_having() {
    let rule =
        parse("SELECT avg(temperature) AS avg_t, count(*) FROM demo GROUP BY TUMBLINGWINDOW(ss, 10) HAVING avg_t > 20");
    assert_eq!(rule.window, Some(WindowSpec::Tumbling { unit: TimeUnit::Second, length: 10 }));
    assert!(rule.select.having.is_some());
    assert_eq!(rule.dimensions().count(), 0);
}

#[test]
fn hopping_window_with_dimension_and_order_by() {
    let rule = parse(
        "SELECT deviceId, max(temp) FROM demo GROUP BY deviceId, HOPPINGWINDOW(ss, 10, 5) ORDER BY deviceId DESC",
    );
    assert_eq!(rule.window, Some(WindowSpec::Hopping { unit: TimeUnit::Second, length: 10, interval: 5 }));
    let dims: Vec<String> = rule.dimensions().map(|e| e.to_string()).collect();
    assert_eq!(dims, ["deviceId"]);
    assert_eq!(rule.order_by.len(), 1);
    assert_eq!(rule.order_by[0].to_string(), "deviceId DESC");
}

#[test]
fn sliding_session_and_count_windows() {
    assert_eq!(
        parse("SELECT * FROM demo GROUP BY SLIDINGWINDOW(ss, 10)").window,
        Some(WindowSpec::Sliding { unit: TimeUnit::Second, length: 10, delay: None })
    );
    assert_eq!(
        parse("SELECT * FROM demo GROUP BY slidingwindow(MS, 10, 3)").window,
        Some(WindowSpec::Sliding { unit: TimeUnit::Millisecond, length: 10, delay: Some(3) })
    );
    assert_eq!(
        parse("SELECT * FROM demo GROUP BY SESSIONWINDOW(mi, 10, 2)").window,
        Some(WindowSpec::Session { unit: TimeUnit::Minute, length: 10, timeout: 2 })
    );
    assert_eq!(
        parse("SELECT * FROM demo GROUP BY COUNTWINDOW(5, 2)").window,
        Some(WindowSpec::Count { length: 5, interval: Some(2) })
    );
    assert_eq!(
        parse("SELECT * FROM demo GROUP BY COUNTWINDOW(5)").window,
        Some(WindowSpec::Count { length: 5, interval: None })
    );
    assert_eq!(
        parse("SELECT * FROM demo GROUP BY TUMBLINGWINDOW(hh, 1)").window.and_then(|w| w.unit()),
        Some(TimeUnit::Hour)
    );
    assert_eq!(
        parse("SELECT * FROM demo GROUP BY TUMBLINGWINDOW(dd, 1)").window.and_then(|w| w.unit()),
        Some(TimeUnit::Day)
    );
}

#[test]
fn arrow_subscript_and_meta() {
    let rule = parse("SELECT a->b->c AS x, arr[0], meta(topic) FROM demo");
    let SelectItem::ExprWithAlias { expr, alias } = &rule.select.projection[0] else {
        panic!("no alias");
    };
    assert_eq!(alias.value, "x");
    assert!(matches!(expr, Expr::BinaryOp { op: BinaryOperator::Arrow, .. }));
    assert!(matches!(&rule.select.projection[1], SelectItem::UnnamedExpr(Expr::CompoundFieldAccess { .. })));
    assert!(matches!(&rule.select.projection[2], SelectItem::UnnamedExpr(Expr::Function(_))));
}

#[test]
fn join_with_alias() {
    let rule = parse("SELECT demo.id, t.name FROM demo INNER JOIN lookup AS t ON demo.id = t.id");
    assert_eq!(names(&rule), ["demo", "lookup"]);
    assert_eq!(rule.sources[1], SourceRef { name: "lookup".into(), alias: Some("t".into()), position: at(1, 45) });
    assert_eq!(rule.sources[1].reference_name(), "t");
}

#[test]
fn other_join_kinds() {
    for join in ["LEFT JOIN", "RIGHT JOIN", "FULL JOIN", "JOIN", "LEFT OUTER JOIN"] {
        let rule = parse(&format!("SELECT * FROM demo {join} t1 ON demo.id = t1.id GROUP BY TUMBLINGWINDOW(ss, 1)"));
        assert_eq!(names(&rule), ["demo", "t1"], "{join}");
    }
    let rule = parse("SELECT * FROM demo CROSS JOIN t1");
    assert_eq!(names(&rule), ["demo", "t1"]);
}

#[test]
fn case_like_in_between_with_double_quoted_strings() {
    let rule = parse(
        r#"SELECT CASE WHEN temperature > 30 THEN "hot" ELSE "cold" END AS level FROM demo WHERE name LIKE "a%" AND id IN (1,2,3) AND t BETWEEN 1 AND 5"#,
    );
    let SelectItem::ExprWithAlias { expr, .. } = &rule.select.projection[0] else {
        panic!("no alias");
    };
    let Expr::Case { conditions, else_result, .. } = expr else {
        panic!("not a CASE: {expr:?}");
    };
    let Expr::Value(hot) = &conditions[0].result else {
        panic!("not a value");
    };
    assert_eq!(hot.value, Value::DoubleQuotedString("hot".into()));
    assert!(matches!(
        else_result.as_deref(),
        Some(Expr::Value(v)) if v.value == Value::DoubleQuotedString("cold".into())
    ));
    let where_clause = rule.select.selection.as_ref().map(ToString::to_string);
    assert_eq!(where_clause.as_deref(), Some(r#"name LIKE "a%" AND id IN (1, 2, 3) AND t BETWEEN 1 AND 5"#));
}

#[test]
fn in_an_array_without_parentheses() {
    let rule = parse("SELECT * FROM demo WHERE id IN ids AND x NOT IN a->b OR y IN (1)");
    let where_clause = rule.select.selection.as_ref().map(ToString::to_string);
    assert_eq!(where_clause.as_deref(), Some("id IN UNNEST(ids) AND x NOT IN UNNEST(a -> b) OR y IN (1)"));
}

#[test]
fn a_field_named_all() {
    let rule = parse("SELECT all, all + 1 AS next FROM demo WHERE all > 1");
    let projection: Vec<String> = rule.select.projection.iter().map(ToString::to_string).collect();
    assert_eq!(projection, ["all", "all + 1 AS next"]);
    assert_eq!(rule.select.selection.as_ref().map(ToString::to_string).as_deref(), Some("all > 1"));
}

#[test]
fn function_of_self() {
    let rule = parse("SELECT getFeature(self) FROM demo");
    assert_eq!(rule.select.projection[0].to_string(), "getFeature(self)");
}

#[test]
fn window_start_and_end() {
    let rule = parse("SELECT window_start(), window_end(), count(*) FROM demo GROUP BY TUMBLINGWINDOW(ss, 5)");
    assert_eq!(rule.select.projection.len(), 3);
    assert_eq!(rule.window, Some(WindowSpec::Tumbling { unit: TimeUnit::Second, length: 5 }));
}

#[test]
fn limit_semicolon_comments_and_backticks() {
    let rule = parse("-- a rule\nSELECT `my field` FROM `my stream` /* c */ WHERE `my field` > 1 LIMIT 10;");
    assert_eq!(rule.limit, Some(10));
    assert_eq!(names(&rule), ["my stream"]);
    assert_eq!(rule.stream().and_then(|s| s.position), at(2, 24));
}

#[test]
fn must_be_select() {
    for sql in [
        "INSERT INTO demo VALUES (1)",
        "UPDATE demo SET a = 1",
        "DELETE FROM demo",
        "CREATE STREAM demo () WITH (DATASOURCE=\"d\")",
        "WITH x AS (SELECT 1) SELECT * FROM x",
    ] {
        let e = error(sql);
        assert!(matches!(e, SqlError::Semantic { .. }), "{sql}: {e}");
        assert_eq!(e.message(), "a rule must be a single SELECT statement", "{sql}");
        assert_eq!(e.position(), at(1, 1), "{sql}");
    }
    let e = error("\n  DROP STREAM demo");
    assert_eq!(e.position(), at(2, 3));
}

#[test]
fn exactly_one_statement() {
    let e = error("SELECT * FROM demo; SELECT * FROM other");
    assert!(e.message().contains("single SELECT statement"), "{e}");
    assert_eq!(e.position(), at(1, 21));
    // A trailing semicolon is fine.
    parse("SELECT * FROM demo;");

    let e = error("");
    assert!(matches!(e, SqlError::Syntax { .. }));
    assert!(e.message().contains("expected a SELECT statement"), "{e}");
    assert_eq!(e.position(), at(1, 1));
}

#[test]
fn set_operations_are_rejected() {
    let e = error("SELECT a FROM demo UNION SELECT a FROM other");
    assert!(e.message().contains("UNION is not supported"), "{e}");
    assert_eq!(e.position(), at(1, 1));
}

#[test]
fn from_exactly_one_stream() {
    let e = error("SELECT 1");
    assert!(e.message().contains("FROM exactly one stream"), "{e}");
    assert_eq!(e.position(), at(1, 1));

    let e = error("SELECT * FROM demo, other");
    assert!(e.message().contains("using JOIN"), "{e}");
    assert_eq!(e.position(), at(1, 21));

    // sqlparser's span for a derived table starts at its SELECT.
    let e = error("SELECT * FROM (SELECT * FROM demo) AS d");
    assert!(e.message().contains("subquery"), "{e}");
    assert_eq!(e.position(), at(1, 16));

    let e = error("SELECT * FROM db.demo");
    assert!(e.message().contains("qualified source name `db.demo`"), "{e}");
}

#[test]
fn joins_are_checked() {
    let e = error("SELECT * FROM demo JOIN t");
    assert!(e.message().contains("needs an ON condition"), "{e}");
    assert_eq!(e.position(), at(1, 25));

    let e = error("SELECT * FROM demo JOIN t USING (id)");
    assert!(e.message().contains("USING and NATURAL joins"), "{e}");

    let e = error("SELECT * FROM demo JOIN demo ON demo.a = demo.b");
    assert!(e.message().contains("`demo` is used for two sources"), "{e}");
    assert_eq!(e.position(), at(1, 25));
}

#[test]
fn at_most_one_window() {
    let e = error("SELECT * FROM demo GROUP BY TUMBLINGWINDOW(ss, 10), COUNTWINDOW(5)");
    assert!(e.message().contains("at most one window"), "{e}");
    assert_eq!(e.position(), at(1, 53));
}

#[test]
fn window_arguments_are_checked() {
    let cases: [(&str, &str, Option<Position>); 10] = [
        (
            "SELECT * FROM demo GROUP BY TUMBLINGWINDOW(sec, 10)",
            "must be a time unit (one of ms, ss, mi, hh, dd), got `sec`",
            at(1, 44),
        ),
        ("SELECT * FROM demo GROUP BY TUMBLINGWINDOW(\"ss\", 10)", "must be a time unit", at(1, 44)),
        (
            "SELECT * FROM demo GROUP BY TUMBLINGWINDOW(ss, 0)",
            "length of TUMBLINGWINDOW must be a positive integer, got `0`",
            at(1, 48),
        ),
        (
            "SELECT * FROM demo GROUP BY TUMBLINGWINDOW(ss, -5)",
            "must be a positive integer, got `-5`",
            // sqlparser's span for a unary minus starts at its operand.
            at(1, 49),
        ),
        ("SELECT * FROM demo GROUP BY TUMBLINGWINDOW(ss, 1.5)", "must be a positive integer, got `1.5`", at(1, 48)),
        (
            "SELECT * FROM demo GROUP BY TUMBLINGWINDOW(ss)",
            "TUMBLINGWINDOW takes (unit, length), got 1 argument",
            at(1, 29),
        ),
        (
            "SELECT * FROM demo GROUP BY HOPPINGWINDOW(ss, 10)",
            "HOPPINGWINDOW takes (unit, length, interval), got 2 arguments",
            at(1, 29),
        ),
        (
            "SELECT * FROM demo GROUP BY SESSIONWINDOW(ss, 10, x)",
            "timeout of SESSIONWINDOW must be a positive integer",
            at(1, 51),
        ),
        (
            "SELECT * FROM demo GROUP BY COUNTWINDOW(5, 10)",
            "COUNTWINDOW interval (10) must not be greater than its length (5)",
            at(1, 44),
        ),
        (
            "SELECT * FROM demo GROUP BY STATEWINDOW(a, b, c)",
            "STATEWINDOW takes (condition) or (begin, emit)",
            at(1, 29),
        ),
    ];
    for (sql, message, position) in cases {
        let e = error(sql);
        assert!(matches!(e, SqlError::Semantic { .. }), "{sql}: {e}");
        assert!(e.message().contains(message), "{sql}: {e}");
        assert_eq!(e.position(), position, "{sql}: {e}");
    }
}

#[test]
fn unsupported_clauses() {
    let cases = [
        ("SELECT DISTINCT a FROM demo", "SELECT DISTINCT"),
        ("SELECT a FROM demo LIMIT 5 OFFSET 2", "OFFSET"),
        ("SELECT a FROM demo LIMIT x", "LIMIT must be a non-negative integer"),
    ];
    for (sql, message) in cases {
        let e = error(sql);
        assert!(e.message().contains(message), "{sql}: {e}");
        assert!(e.position().is_some(), "{sql}: {e}");
    }
}

#[test]
fn syntax_errors_carry_positions() {
    let e = error("SELECT temperature FROM demo WHERE");
    assert!(matches!(e, SqlError::Syntax { .. }));
    assert_eq!(e.message(), "expected an expression, found end of input");
    assert_eq!(e.position(), at(1, 35));

    let e = error("SELECT a, FROM demo");
    assert!(matches!(e, SqlError::Syntax { .. }));
    assert_eq!(e.message(), "expected an expression, found FROM");
    assert_eq!(e.position(), at(1, 11));

    let e = error("SELECT * FROM demo WHERE a > 1 foo bar");
    assert_eq!(e.message(), "expected end of statement, found foo");
    assert_eq!(e.position(), at(1, 32));

    let e = error("SELECT * FROM demo WHERE name = \"abc");
    assert!(e.message().contains("unterminated"), "{e}");
    assert_eq!(e.position(), at(1, 33));
}

#[test]
fn multi_line_error_position() {
    let sql = "SELECT temperature,\n       humidity\nFROM demo\nWHERE temperature >\nGROUP BY TUMBLINGWINDOW(ss, 10)";
    let e = error(sql);
    assert!(matches!(e, SqlError::Syntax { .. }));
    assert_eq!(e.position(), at(5, 1));
    assert!(e.to_string().starts_with("syntax error at line 5, column 1: expected an expression, found GROUP"), "{e}");

    let sql = "SELECT count(*)\nFROM demo\nGROUP BY\n  HOPPINGWINDOW(ss, 10, 0)";
    let e = error(sql);
    assert!(e.message().contains("interval of HOPPINGWINDOW"), "{e}");
    assert_eq!(e.position(), at(4, 25));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    // Refused by the parser's recursion limit, or before parsing when longer.
    for depth in [100, 5_000] {
        let sql = format!("SELECT {}1{} FROM demo", "(".repeat(depth), ")".repeat(depth));
        let e = error(&sql);
        assert!(e.message().contains("nested too deeply") || e.message().contains("operators and brackets"), "{e}");
    }
}

#[test]
fn invisible_aliases_are_taken_out() {
    let q = parse("SELECT a + 1 AS b INVISIBLE, b * 2 AS c, d AS invisible FROM s");
    assert_eq!(q.invisible, ["b"]);
    assert_eq!(q.select.projection.len(), 3);
    assert_eq!(q.select.projection[2].to_string(), "d AS invisible", "a column may be named invisible");
    let q = parse("SELECT x AS `y` INVISIBLE FROM s");
    assert_eq!(q.invisible, ["y"]);
}

#[test]
fn a_window_takes_a_filter_and_a_sliding_window_a_trigger() {
    let q = parse("SELECT * FROM s GROUP BY SlidingWindow(ss, 5) FILTER (WHERE a > 1) OVER (WHEN b = 2), c");
    assert_eq!(q.window_filter.as_ref().unwrap().to_string(), "a > 1");
    assert_eq!(q.window_trigger.as_ref().unwrap().to_string(), "b = 2");
    assert_eq!(q.dimensions().count(), 1);
    let q = parse("SELECT * FROM s GROUP BY COUNTWINDOW(3, 1) FILTER(where revenue > 100)");
    assert!(q.window_filter.is_some() && q.window_trigger.is_none());
    let e = error("SELECT * FROM s GROUP BY TUMBLINGWINDOW(ss, 5) OVER (WHEN b = 2)");
    assert!(e.message().contains("sliding windows only, not TUMBLINGWINDOW"), "{e}");
    let e = error("SELECT * FROM s GROUP BY SLIDINGWINDOW(ss, 5) OVER (PARTITION BY b)");
    assert!(e.message().contains("a window's OVER takes a WHEN condition"), "{e}");
}
