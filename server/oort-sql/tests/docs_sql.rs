//! The SQL reference cannot drift from the parser: every ```` ```sql ```` block
//! of `docs/sql.md` must parse, and every ```` ```sql-error ```` block must not.
//!
//! A `sql` block holds one or more statements, each ending with a line that
//! ends in `;` (or with the block). A statement whose first keyword is
//! `CREATE` goes to [`parse_stream_ddl`]; any other to [`parse_rule_sql`].
//! A `sql-error` block is one statement; its `-- error: TEXT` lines (comments
//! to the parser) name text the error must contain. Failures point at the
//! line and column in `docs/sql.md`.

use std::fs;
use std::path::Path;

use oort_sql::{SqlError, parse_rule_sql, parse_stream_ddl};

const DOC: &str = "docs/sql.md";

/// A fenced block: its tag, the line of its first line of text (1-based) and its text.
struct Block {
    tag: String,
    line: usize,
    text: String,
}

fn read_doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(DOC);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The fenced blocks of a Markdown text, each with its tag (the first word of
/// its info string, empty for none).
fn blocks(doc: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut open: Option<Block> = None;
    for (index, line) in doc.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => {
                let tag = info.split_whitespace().next().unwrap_or_default().to_owned();
                open = Some(Block { tag, line: index + 2, text: String::new() });
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => found.extend(open.take()),
            (Some(block), _) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    if let Some(block) = open {
        panic!("{DOC}:{}: a ``` block is never closed", block.line - 1);
    }
    found
}

/// The statements of a `sql` block, each with the number of block lines
/// before it; a statement ends with a line that ends in `;`.
fn statements(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let (mut start, mut current) = (0, String::new());
    for (index, line) in text.lines().enumerate() {
        current.push_str(line);
        current.push('\n');
        if line.trim_end().ends_with(';') {
            out.push((start, std::mem::take(&mut current)));
            start = index + 1;
        }
    }
    out.push((start, current));
    out.retain(|(_, sql)| first_keyword(sql).is_some());
    out
}

/// The first word of `sql` after whitespace and comments, uppercase; `None`
/// when there is nothing else.
fn first_keyword(sql: &str) -> Option<String> {
    let mut rest = sql.trim_start();
    loop {
        if let Some(comment) = rest.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, after)| after).trim_start();
        } else if let Some(comment) = rest.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, after)| after).trim_start();
        } else {
            break;
        }
    }
    let word: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!rest.is_empty()).then(|| word.to_uppercase())
}

/// Parses one statement with the parser its first keyword calls for.
fn parse(sql: &str) -> Result<(), SqlError> {
    match first_keyword(sql).as_deref() {
        Some("CREATE") => parse_stream_ddl(sql).map(drop),
        _ => parse_rule_sql(sql).map(drop),
    }
}

/// Where an error is in the doc, for a statement starting at doc line `line`.
fn locate(line: usize, error: &SqlError) -> String {
    match error.position() {
        Some(p) => format!("{DOC}:{}:{}", line as u64 + p.line - 1, p.column),
        None => format!("{DOC}:{line}"),
    }
}

fn tagged<'a>(blocks: &'a [Block], tag: &'a str) -> impl Iterator<Item = &'a Block> {
    blocks.iter().filter(move |b| b.tag == tag)
}

#[test]
fn every_sql_block_parses() {
    let blocks = blocks(&read_doc());
    let mut checked = 0;
    let mut failures = Vec::new();
    for block in tagged(&blocks, "sql") {
        for (offset, sql) in statements(&block.text) {
            checked += 1;
            if let Err(e) = parse(&sql) {
                failures.push(format!("{}: {e}\n{}", locate(block.line + offset, &e), sql.trim_end()));
            }
        }
    }
    assert!(checked >= 20, "only {checked} statements found in the ```sql blocks of {DOC}");
    assert!(failures.is_empty(), "{} statement(s) of {DOC} do not parse:\n\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn every_sql_error_block_fails_as_it_says() {
    let blocks = blocks(&read_doc());
    let mut checked = 0;
    let mut failures = Vec::new();
    for block in tagged(&blocks, "sql-error") {
        checked += 1;
        let expected: Vec<&str> =
            block.text.lines().filter_map(|l| l.trim().strip_prefix("-- error:")).map(str::trim).collect();
        match parse(&block.text) {
            Ok(()) => failures.push(format!("{DOC}:{}: parses, but the block is tagged sql-error", block.line)),
            Err(e) => {
                let message = e.to_string();
                for text in expected.iter().filter(|t| !message.contains(*t)) {
                    failures.push(format!(
                        "{}: the error is `{message}`, which does not contain `{text}`",
                        locate(block.line, &e)
                    ));
                }
            }
        }
    }
    assert!(checked >= 3, "only {checked} ```sql-error blocks found in {DOC}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn extraction() {
    let doc =
        "text\n```sql\nSELECT a FROM s;\n\n-- c\nSELECT b\nFROM s\n```\n```text\n```sql\n```\n```sql-error\nx\n```\n";
    let blocks = blocks(doc);
    assert_eq!(
        blocks.iter().map(|b| (b.tag.as_str(), b.line)).collect::<Vec<_>>(),
        [("sql", 3), ("text", 10), ("sql-error", 13)]
    );
    let statements = statements(&blocks[0].text);
    assert_eq!(statements.iter().map(|(offset, _)| *offset).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(first_keyword(&statements[1].1).as_deref(), Some("SELECT"));
    assert_eq!(first_keyword("/* a */ create stream"), Some("CREATE".into()));
    assert_eq!(first_keyword("-- only a comment\n"), None);
}
