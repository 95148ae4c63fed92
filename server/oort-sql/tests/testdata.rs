//! Data-driven tests: every `testdata/sql/{ddl,rule}/*.sql` file states its
//! expected outcome on its first line (see `testdata/sql/README.md`).

use std::fs;
use std::path::{Path, PathBuf};

use oort_sql::{Position, SqlError, parse_rule_sql, parse_stream_ddl};

enum Expect {
    Ok,
    Error { position: Position, text: String },
}

fn testdata_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sql").join(kind)
}

fn parse_header(path: &Path, sql: &str) -> Expect {
    let header = sql.lines().next().unwrap_or_default();
    let Some(expect) = header.strip_prefix("-- expect: ") else {
        panic!("{}: first line must be `-- expect: ...`", path.display());
    };
    if expect.trim() == "ok" {
        return Expect::Ok;
    }
    let rest = expect.strip_prefix("error ").unwrap_or_else(|| panic!("{}: bad header {header:?}", path.display()));
    let (position, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let (line, column) = position
        .split_once(':')
        .and_then(|(l, c)| Some((l.parse().ok()?, c.parse().ok()?)))
        .unwrap_or_else(|| panic!("{}: bad position in {header:?}", path.display()));
    Expect::Error { position: Position::new(line, column), text: text.to_owned() }
}

fn run(kind: &str, check: impl Fn(&str) -> Result<(), SqlError>) {
    let mut files: Vec<PathBuf> = fs::read_dir(testdata_dir(kind))
        .unwrap_or_else(|e| panic!("reading testdata/sql/{kind}: {e}"))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no testdata/sql/{kind}/*.sql files");

    for path in files {
        let sql = fs::read_to_string(&path).expect("read test file");
        let name = path.display();
        match (parse_header(&path, &sql), check(&sql)) {
            (Expect::Ok, Ok(())) => {}
            (Expect::Ok, Err(e)) => panic!("{name}: expected success, got: {e}"),
            (Expect::Error { .. }, Ok(())) => panic!("{name}: expected an error, but it parsed"),
            (Expect::Error { position, text }, Err(e)) => {
                assert_eq!(e.position(), Some(position), "{name}: {e}");
                assert!(e.message().contains(&text), "{name}: {e:?} does not mention {text:?}");
            }
        }
    }
}

#[test]
fn ddl_testdata() {
    run("ddl", |sql| parse_stream_ddl(sql).map(drop));
}

#[test]
fn rule_testdata() {
    run("rule", |sql| parse_rule_sql(sql).map(drop));
}
