//! Tests of the parent module.

use super::*;

fn parse(sql: &str) -> StreamDef {
    parse_stream_ddl(sql).unwrap_or_else(|e| panic!("{sql}\n{e}"))
}

fn error(sql: &str) -> SqlError {
    match parse_stream_ddl(sql) {
        Ok(def) => panic!("expected an error for {sql}, got {def:?}"),
        Err(e) => e,
    }
}

fn at(line: u64, column: u64) -> Option<Position> {
    Some(Position::new(line, column))
}

#[test]
fn basic_stream() {
    let def = parse(
        r#"CREATE STREAM demo (temperature FLOAT, humidity BIGINT) WITH (DATASOURCE="demo", FORMAT="json", TYPE="mqtt")"#,
    );
    assert_eq!(def.name, "demo");
    assert_eq!(def.kind, StreamKind::Stream);
    assert_eq!(
        def.fields,
        vec![Field::new("temperature", FieldType::Float), Field::new("humidity", FieldType::Bigint),]
    );
    assert_eq!(def.datasource(), Some("demo"));
    assert_eq!(def.format(), "json");
    assert_eq!(def.source_type(), "mqtt");
    assert!(!def.is_schemaless());
    assert!(!def.shared());
}

#[test]
fn schemaless_stream_with_defaults() {
    let def = parse(r#"CREATE STREAM demo () WITH (DATASOURCE="demo", FORMAT="JSON")"#);
    assert!(def.is_schemaless());
    assert_eq!(def.format(), "JSON");
    assert_eq!(def.source_type(), "mqtt");
    assert_eq!(def.timestamp_field(), None);

    let def = parse(r#"CREATE STREAM demo () WITH (DATASOURCE="demo")"#);
    assert_eq!(def.format(), "json");
}

#[test]
fn all_types_and_options() {
    let def = parse(
        r#"create stream s1 (id BIGINT, name STRING, ok BOOLEAN, ts DATETIME, raw BYTEA, tags ARRAY(STRING), loc STRUCT(lat FLOAT, lng FLOAT)) WITH (TYPE="memory", DATASOURCE="topic/a", TIMESTAMP="ts", SHARED="true", CONF_KEY="default", KEY="id")"#,
    );
    assert_eq!(def.name, "s1");
    let types: Vec<String> = def.fields.iter().map(|f| f.field_type.to_string()).collect();
    assert_eq!(
        types,
        ["BIGINT", "STRING", "BOOLEAN", "DATETIME", "BYTEA", "ARRAY(STRING)", "STRUCT(lat FLOAT, lng FLOAT)"]
    );
    assert_eq!(def.source_type(), "memory");
    assert_eq!(def.datasource(), Some("topic/a"));
    assert_eq!(def.timestamp_field(), Some("ts"));
    assert!(def.shared());
    assert_eq!(def.conf_key(), Some("default"));
    assert_eq!(def.key(), Some("id"));
    assert_eq!(def.option("type"), Some("memory"));
}

#[test]
fn lookup_table() {
    let def = parse(
        r#"CREATE TABLE lookup (id BIGINT, name STRING) WITH (DATASOURCE="lookup.json", TYPE="file", FORMAT="json", KIND="lookup")"#,
    );
    assert_eq!(def.kind, StreamKind::Table);
    assert!(def.is_lookup_table());
    assert_eq!(def.source_type(), "file");
}

#[test]
fn backtick_names_lowercase_keys_single_quotes_and_semicolon() {
    let def = parse(
        "CREATE STREAM `my stream` (`first name` STRING, `select` BIGINT) with (datasource='a/b', Format=\"json\");",
    );
    assert_eq!(def.name, "my stream");
    assert_eq!(def.fields[0].name, "first name");
    assert_eq!(def.fields[1].name, "select");
    assert_eq!(def.options.keys().collect::<Vec<_>>(), ["DATASOURCE", "FORMAT"]);
    assert_eq!(def.datasource(), Some("a/b"));
}

#[test]
fn nested_types() {
    let def = parse(
        r#"CREATE STREAM s (a ARRAY(STRUCT(x BIGINT, y ARRAY(ARRAY(FLOAT)))), b STRUCT(c STRUCT(d BOOLEAN))) WITH (DATASOURCE="s")"#,
    );
    assert_eq!(def.fields[0].field_type.to_string(), "ARRAY(STRUCT(x BIGINT, y ARRAY(ARRAY(FLOAT))))");
    assert_eq!(def.fields[1].field_type.to_string(), "STRUCT(c STRUCT(d BOOLEAN))");
}

#[test]
fn display_round_trips() {
    let sqls = [
        r#"create stream s1 (id BIGINT, tags ARRAY(STRING), loc STRUCT(lat FLOAT, `my lng` FLOAT)) WITH (TYPE="memory", DATASOURCE="topic/a", TIMESTAMP="id", SHARED="true")"#,
        r#"CREATE TABLE `odd``name` (id BIGINT) WITH (DATASOURCE="quote\"and\\backslash", KIND="lookup", TYPE="file")"#,
        r#"CREATE STREAM demo () WITH (DATASOURCE="demo")"#,
    ];
    for sql in sqls {
        let def = parse(sql);
        let rendered = def.to_string();
        assert_eq!(parse(&rendered), def, "{rendered}");
    }
    assert_eq!(
        parse(r#"create stream demo (a bigint) with (datasource="d", format="json")"#).to_string(),
        r#"CREATE STREAM demo (a BIGINT) WITH (DATASOURCE="d", FORMAT="json")"#
    );
}

#[test]
fn duplicate_field() {
    let e = error(r#"CREATE STREAM demo (a BIGINT, b FLOAT, A STRING) WITH (DATASOURCE="d")"#);
    assert!(matches!(e, SqlError::Semantic { .. }));
    assert!(e.message().contains("duplicate field name `A`"), "{e}");
    assert_eq!(e.position(), at(1, 40));
}

#[test]
fn duplicate_field_inside_struct() {
    let e = error(r#"CREATE STREAM demo (s STRUCT(x FLOAT, x FLOAT)) WITH (DATASOURCE="d")"#);
    assert!(e.message().contains("duplicate field name `x`"), "{e}");
    assert_eq!(e.position(), at(1, 39));
}

#[test]
fn unknown_type_lists_valid_types() {
    let e = error(r#"CREATE STREAM demo (a INT) WITH (DATASOURCE="d")"#);
    assert!(e.message().contains("unknown type `INT`"), "{e}");
    assert!(e.message().contains("did you mean BIGINT?"), "{e}");
    for valid in ["BIGINT", "FLOAT", "STRING", "DATETIME", "BOOLEAN", "BYTEA", "ARRAY", "STRUCT"] {
        assert!(e.message().contains(valid), "{e}");
    }
    assert_eq!(e.position(), at(1, 23));
    assert_eq!(
        e.to_string(),
        format!(
            "invalid statement at line 1, column 23: unknown type `INT` (did you mean BIGINT?); valid types are {}",
            FieldType::VALID_NAMES
        )
    );
}

#[test]
fn unknown_type_inside_array() {
    let e = error(r#"CREATE STREAM demo (a ARRAY(foo)) WITH (DATASOURCE="d")"#);
    assert!(e.message().contains("unknown type `foo`"), "{e}");
    assert_eq!(e.position(), at(1, 29));
}

#[test]
fn a_connectors_options_are_kept_with_the_position_of_their_keys() {
    let sql = "CREATE STREAM demo () WITH (DATASOURCE=\"d\",\n  interval=\"100\")";
    let (def, positions) = parse_stream_ddl_with_positions(sql).unwrap();
    assert_eq!(def.option("INTERVAL"), Some("100"), "keys are upper-cased");
    assert_eq!(positions.of("Interval"), at(2, 3));
    assert_eq!(positions.of("DATASOURCE"), at(1, 29));
    assert_eq!(positions.of("FILE_BASE"), at(1, 23), "a key not written: WITH");
}

#[test]
fn duplicate_option() {
    let e = error(r#"CREATE STREAM demo () WITH (DATASOURCE="d", datasource="e")"#);
    assert!(e.message().contains("DATASOURCE is given more than once"), "{e}");
    assert_eq!(e.position(), at(1, 45));
}

#[test]
fn timestamp_must_name_a_field() {
    let e = error(r#"CREATE STREAM demo (a BIGINT) WITH (DATASOURCE="d", TIMESTAMP="ts")"#);
    assert!(e.message().contains("TIMESTAMP names `ts`"), "{e}");
    assert_eq!(e.position(), at(1, 63));
    // Schemaless streams cannot be checked, so any field is accepted.
    parse(r#"CREATE STREAM demo () WITH (DATASOURCE="d", TIMESTAMP="ts")"#);
}

#[test]
fn datasource_is_required() {
    let e = error("CREATE STREAM demo (a BIGINT)");
    assert!(e.message().contains("missing required option DATASOURCE"), "{e}");
    assert!(e.message().contains("every stream"), "{e}");
    assert_eq!(e.position(), at(1, 30));

    let e = error(r#"CREATE TABLE t (a BIGINT) WITH (TYPE="file")"#);
    assert!(e.message().contains("every table"), "{e}");
    assert_eq!(e.position(), at(1, 27));

    let e = error(r#"CREATE STREAM demo () WITH (DATASOURCE="")"#);
    assert!(e.message().contains("non-empty"), "{e}");
    assert_eq!(e.position(), at(1, 40));
}

#[test]
fn option_values_are_checked() {
    let e = error(r#"CREATE STREAM demo () WITH (DATASOURCE="d", SHARED="yes")"#);
    assert!(e.message().contains("SHARED must be \"true\" or \"false\""), "{e}");
    assert_eq!(e.position(), at(1, 52));

    let e = error(r#"CREATE TABLE t () WITH (DATASOURCE="d", RETAIN_SIZE="-1")"#);
    assert!(e.message().contains("RETAIN_SIZE must be a non-negative integer"), "{e}");

    let e = error(r#"CREATE STREAM demo () WITH (DATASOURCE="d", KIND="lookup")"#);
    assert!(e.message().contains("KIND only applies to tables"), "{e}");

    let e = error(r#"CREATE TABLE t () WITH (DATASOURCE="d", KIND="hash")"#);
    assert!(e.message().contains("\"scan\" or \"lookup\""), "{e}");

    let e = error(r#"CREATE STREAM demo () WITH (DATASOURCE=demo)"#);
    assert!(matches!(e, SqlError::Syntax { .. }));
    assert!(e.message().contains("quoted string value for DATASOURCE"), "{e}");
    assert_eq!(e.position(), at(1, 40));
}

#[test]
fn binary_format_rules() {
    parse(r#"CREATE STREAM b (raw BYTEA) WITH (DATASOURCE="d", FORMAT="binary")"#);
    parse(r#"CREATE STREAM b () WITH (DATASOURCE="d", FORMAT="BINARY")"#);
    let e = error(r#"CREATE STREAM b (a BIGINT) WITH (DATASOURCE="d", FORMAT="binary")"#);
    assert!(e.message().contains("exactly one BYTEA field"), "{e}");
    let e = error(r#"CREATE TABLE b () WITH (DATASOURCE="d", FORMAT="binary")"#);
    assert!(e.message().contains("not supported for tables"), "{e}");
}

#[test]
fn memory_lookup_table_needs_key() {
    let e = error(r#"CREATE TABLE t (id BIGINT) WITH (DATASOURCE="d", TYPE="memory", KIND="lookup")"#);
    assert!(e.message().contains("needs the KEY option"), "{e}");
    parse(r#"CREATE TABLE t (id BIGINT) WITH (DATASOURCE="d", TYPE="memory", KIND="lookup", KEY="id")"#);
}

#[test]
fn trailing_garbage() {
    let e = error(r#"CREATE STREAM demo () WITH (DATASOURCE="d"); SELECT 1"#);
    assert!(matches!(e, SqlError::Syntax { .. }));
    assert!(e.message().contains("found SELECT"), "{e}");
    assert_eq!(e.position(), at(1, 46));

    let e = error(r#"CREATE STREAM demo () WITH (DATASOURCE="d") extra"#);
    assert!(e.message().contains("expected `;` or end of input, found extra"), "{e}");
}

#[test]
fn syntax_errors_with_positions() {
    let e = error("CREATE VIEW v");
    assert_eq!(e.message(), "expected STREAM or TABLE, found VIEW");
    assert_eq!(e.position(), at(1, 8));

    let e = error("SELECT * FROM demo");
    assert_eq!(e.message(), "expected CREATE, found SELECT");
    assert_eq!(e.position(), at(1, 1));

    let e = error("CREATE STREAM demo (a BIGINT b FLOAT)");
    assert!(e.message().contains("found b"), "{e}");
    assert_eq!(e.position(), at(1, 30));

    let e = error("CREATE STREAM demo (a ARRAY(BIGINT) WITH (DATASOURCE=\"x\")");
    assert!(e.message().contains("`,` or `)` in the field list"), "{e}");
    assert_eq!(e.position(), at(1, 37));

    let e = error("");
    assert_eq!(e.message(), "expected CREATE, found end of input");
    assert_eq!(e.position(), at(1, 1));

    let e = error("CREATE STREAM demo (a STRUCT()) WITH (DATASOURCE=\"x\")");
    assert!(e.message().contains("STRUCT must declare at least one field"), "{e}");
    assert_eq!(e.position(), at(1, 30));
}

#[test]
fn multi_line_error_position() {
    let sql = "CREATE STREAM demo (\n  temperature FLOAT,\n  humidity DOUBLE\n) WITH (DATASOURCE=\"demo\")";
    let e = error(sql);
    assert!(e.message().contains("unknown type `DOUBLE`"), "{e}");
    assert_eq!(e.position(), at(3, 12));

    let sql = "CREATE STREAM demo (a BIGINT)\nWITH (\n  DATASOURCE=\"demo\",\n  SHARED=\"yes\"\n)";
    let e = error(sql);
    assert!(e.message().contains("option SHARED must be"), "{e}");
    assert_eq!(e.position(), at(4, 10));
}

#[test]
fn unterminated_string_is_a_tokenizer_error() {
    let e = error("CREATE STREAM demo () WITH (DATASOURCE=\"demo)");
    assert!(matches!(e, SqlError::Syntax { .. }));
    assert!(e.message().contains("unterminated"), "{e}");
    assert_eq!(e.position(), at(1, 40));
}

#[test]
fn deep_nesting_is_rejected_not_overflowed() {
    let depth = 10_000;
    let sql =
        format!("CREATE STREAM s (a {}BIGINT{}) WITH (DATASOURCE=\"d\")", "ARRAY(".repeat(depth), ")".repeat(depth));
    let e = error(&sql);
    assert!(e.message().contains("nested more than"), "{e}");
}
