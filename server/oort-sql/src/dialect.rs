//! [`EkuiperDialect`]: the sqlparser dialect for eKuiper SQL, plus the
//! tokenizing helpers shared by the DDL and rule parsers.
//!
//! eKuiper differs from ANSI SQL in a few lexical and expression rules:
//!
//! * Backticks quote identifiers; double quotes delimit **string literals**.
//!   The dialect only treats `` ` `` as a delimited-identifier start, so
//!   sqlparser tokenizes `"hot"` as [`Token::DoubleQuotedString`] and the
//!   parser yields `Value::DoubleQuotedString`. Later stages must treat
//!   `Value::DoubleQuotedString` exactly like `Value::SingleQuotedString`.
//! * String literals accept backslash escapes (`"a\"b"`, `"\n"`), as eKuiper's
//!   Go-style strings do. An unknown escape keeps the escaped character.
//! * `a->b` reads field `b` of the struct `a`. sqlparser parses `->` as
//!   [`BinaryOperator::Arrow`], but at PostgreSQL's precedence, which binds
//!   looser than `+` and `*` and takes a whole expression on the right. The
//!   dialect instead gives `->` the precedence of a postfix accessor and
//!   accepts exactly one field name after it, so
//!   `a->b[0]->c + 1` parses as `((((a->b)[0])->c) + 1)`.
//! * `[i]` / `[i:j]` subscripts may follow any expression, including the
//!   result of `->`; they become [`Expr::CompoundFieldAccess`].
//! * Clause keywords (`FROM`, `WHERE`, `GROUP`, `ORDER`, `LIMIT`, `JOIN`, ...)
//!   are reserved in eKuiper and cannot start an expression unquoted.
//!   sqlparser would otherwise read `WHERE a > GROUP BY ...` as a comparison
//!   with a column named `GROUP` and report the error one token late.
//! * eKuiper has no special-syntax expressions such as `CAST(x AS t)`,
//!   `TRIM(BOTH ...)`, `INTERVAL '1' DAY` or the niladic `CURRENT_USER`.
//!   Words that sqlparser would parse that way (`PLAIN_WORDS`) are read as
//!   ordinary function calls when `(` follows (`cast(a, "bigint")`,
//!   `ceil(a)`, `trim(a)` all become [`Expr::Function`]) and as ordinary
//!   identifiers otherwise (a field named `user` or `interval`).

use sqlparser::ast::{AccessExpr, BinaryOperator, Expr, Ident, InTarget, ObjectName};
use sqlparser::dialect::{Dialect, Precedence};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::error::{Position, SqlError};

/// Keywords that cannot begin an expression: eKuiper's clause keywords.
/// (`CASE`, `NOT`, `TRUE`, `FALSE` do begin expressions; `REPLACE` and
/// friends are also function names.)
const RESERVED_IN_EXPRESSIONS: &[Keyword] = &[
    Keyword::SELECT,
    Keyword::FROM,
    Keyword::WHERE,
    Keyword::GROUP,
    Keyword::HAVING,
    Keyword::ORDER,
    Keyword::BY,
    Keyword::LIMIT,
    Keyword::AS,
    Keyword::AND,
    Keyword::OR,
    Keyword::ON,
    Keyword::JOIN,
    Keyword::INNER,
    Keyword::LEFT,
    Keyword::RIGHT,
    Keyword::FULL,
    Keyword::CROSS,
    Keyword::WHEN,
    Keyword::THEN,
    Keyword::ELSE,
    Keyword::END,
    Keyword::ASC,
    Keyword::DESC,
    Keyword::BETWEEN,
    Keyword::LIKE,
    Keyword::IN,
];

/// Keywords sqlparser gives special expression syntax that eKuiper does not
/// have: in eKuiper they are plain function names or field names.
const PLAIN_WORDS: &[Keyword] = &[
    Keyword::ALL,
    Keyword::ARRAY,
    Keyword::CAST,
    Keyword::CEIL,
    Keyword::CONVERT,
    Keyword::CURRENT_CATALOG,
    Keyword::CURRENT_DATE,
    Keyword::CURRENT_TIME,
    Keyword::CURRENT_TIMESTAMP,
    Keyword::CURRENT_USER,
    Keyword::EXISTS,
    Keyword::EXTRACT,
    Keyword::FLOOR,
    Keyword::INTERVAL,
    Keyword::LOCALTIME,
    Keyword::LOCALTIMESTAMP,
    Keyword::MAP,
    Keyword::OVERLAY,
    Keyword::POSITION,
    Keyword::SAFE_CAST,
    Keyword::SESSION_USER,
    Keyword::STRUCT,
    Keyword::SUBSTR,
    Keyword::SUBSTRING,
    Keyword::TRIM,
    Keyword::TRY_CAST,
    Keyword::TRY_CONVERT,
    Keyword::USER,
];

/// The eKuiper SQL dialect for sqlparser.
///
/// Use it with [`sqlparser::parser::Parser`] directly if you need an
/// expression parser (for example in the later planner); the crate's
/// [`parse_stream_ddl`](crate::parse_stream_ddl) and
/// [`parse_rule_sql`](crate::parse_rule_sql) use it internally.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EkuiperDialect;

impl Dialect for EkuiperDialect {
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`'
    }

    fn identifier_quote_style(&self, _identifier: &str) -> Option<char> {
        Some('`')
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_'
    }

    fn supports_string_literal_backslash_escape(&self) -> bool {
        true
    }

    /// `SELECT * EXCEPT(a, b)`, as eKuiper.
    fn supports_select_wildcard_except(&self) -> bool {
        true
    }

    /// `SELECT * REPLACE(a * 2 AS a)`, as eKuiper.
    fn supports_select_wildcard_replace(&self) -> bool {
        true
    }

    /// `GROUP BY COUNTWINDOW(3) FILTER (WHERE a > 1)`: eKuiper's window filter.
    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let next = parser.peek_token_ref();
        let Token::Word(word) = &next.token else {
            return None;
        };
        if word.quote_style.is_some() {
            return None;
        }
        if RESERVED_IN_EXPRESSIONS.contains(&word.keyword) {
            return Some(parser.expected_ref("an expression", next));
        }
        if !PLAIN_WORDS.contains(&word.keyword) {
            return None;
        }
        let ident = Ident { value: word.value.clone(), quote_style: None, span: next.span };
        parser.next_token();
        if parser.peek_token_ref().token == Token::LParen {
            Some(parser.parse_function(ObjectName::from(vec![ident])))
        } else {
            Some(Ok(Expr::Identifier(ident)))
        }
    }

    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        match parser.peek_token_ref().token {
            Token::Arrow => Some(Ok(self.prec_value(Precedence::DoubleColon))),
            _ => None,
        }
    }

    fn parse_infix(&self, parser: &mut Parser, expr: &Expr, _precedence: u8) -> Option<Result<Expr, ParserError>> {
        match parser.peek_token_ref().token {
            Token::Arrow => Some(parse_arrow(parser, expr)),
            Token::LBracket => Some(parse_subscripts(parser, expr)),
            Token::Word(_) => {
                let negated = unparenthesized_in(parser)?;
                Some(self.parse_in_array(parser, expr, negated))
            }
            _ => None,
        }
    }
}

impl EkuiperDialect {
    /// Parses `[NOT] IN array` after `left` (eKuiper's membership in an
    /// array value), as [`InTarget::Unnest`]: `IN (...)` stays a list.
    fn parse_in_array(&self, parser: &mut Parser, left: &Expr, negated: bool) -> Result<Expr, ParserError> {
        if negated {
            parser.next_token(); // `NOT`
        }
        parser.next_token(); // `IN`
        let array = parser.parse_subexpr(self.prec_value(Precedence::Between))?;
        Ok(Expr::In { expr: Box::new(left.clone()), target: InTarget::Unnest(Box::new(array)), negated, global: false })
    }
}

/// Whether `IN` or `NOT IN` comes next, not followed by `(`; with `NOT`.
fn unparenthesized_in(parser: &Parser) -> Option<bool> {
    let keyword = |i: usize, keyword: Keyword| matches!(&parser.peek_nth_token_ref(i).token, Token::Word(w) if w.keyword == keyword && w.quote_style.is_none());
    let (negated, after) = if keyword(0, Keyword::IN) {
        (false, 1)
    } else if keyword(0, Keyword::NOT) && keyword(1, Keyword::IN) {
        (true, 2)
    } else {
        return None;
    };
    (parser.peek_nth_token_ref(after).token != Token::LParen).then_some(negated)
}

/// Parses `-> name` after `left`.
fn parse_arrow(parser: &mut Parser, left: &Expr) -> Result<Expr, ParserError> {
    parser.next_token(); // `->`
    let next = parser.next_token();
    match next.token {
        Token::Word(word) => Ok(Expr::BinaryOp {
            left: Box::new(left.clone()),
            op: BinaryOperator::Arrow,
            right: Box::new(Expr::Identifier(Ident {
                value: word.value,
                quote_style: word.quote_style,
                span: next.span,
            })),
        }),
        _ => parser.expected("a field name after `->`", next),
    }
}

/// Parses one or more `[...]` subscripts after `root`.
fn parse_subscripts(parser: &mut Parser, root: &Expr) -> Result<Expr, ParserError> {
    let (root, mut access_chain): (Box<Expr>, Vec<AccessExpr>) = match root {
        Expr::CompoundFieldAccess { root, access_chain } => (root.clone(), access_chain.clone()),
        other => (Box::new(other.clone()), Vec::new()),
    };
    parser.parse_multi_dim_subscript(&mut access_chain)?;
    Ok(Expr::CompoundFieldAccess { root, access_chain })
}

/// Tokenizes `sql` with [`EkuiperDialect`], keeping every token's location.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>, SqlError> {
    Tokenizer::new(&EkuiperDialect, sql).tokenize_with_location().map_err(SqlError::from_tokenizer_error)
}

/// The position just after the last significant token: where "unexpected end
/// of input" errors point. Falls back to the start of the text.
pub(crate) fn end_of_input(tokens: &[TokenWithSpan]) -> Option<Position> {
    tokens
        .iter()
        .rev()
        .find(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .and_then(|t| Position::from_location(t.span.end))
        .or(Some(Position::new(1, 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::{Subscript, Value};

    fn expr(sql: &str) -> Expr {
        let tokens = tokenize(sql).expect("tokenize");
        Parser::new(&EkuiperDialect).with_tokens_with_locations(tokens).parse_expr().expect("parse")
    }

    fn ident(e: &Expr) -> &str {
        match e {
            Expr::Identifier(i) => &i.value,
            other => panic!("expected identifier, got {other:?}"),
        }
    }

    #[test]
    fn double_quotes_are_string_literals_and_backticks_identifiers() {
        let tokens = tokenize(r#"`my field` = "hot""#).expect("tokenize");
        let significant: Vec<_> =
            tokens.iter().filter(|t| !matches!(t.token, Token::Whitespace(_))).map(|t| t.token.clone()).collect();
        assert_eq!(
            significant,
            vec![Token::make_word("my field", Some('`')), Token::Eq, Token::DoubleQuotedString("hot".into()),]
        );
    }

    #[test]
    fn backslash_escapes_in_strings() {
        match expr(r#""a\"b""#) {
            Expr::Value(v) => assert_eq!(v.value, Value::DoubleQuotedString("a\"b".into())),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn arrow_chains_left_to_right() {
        let Expr::BinaryOp { left, op, right } = expr("a->b->c") else {
            panic!("not a binary op");
        };
        assert_eq!(op, BinaryOperator::Arrow);
        assert_eq!(ident(&right), "c");
        let Expr::BinaryOp { left, right, .. } = *left else {
            panic!("not nested");
        };
        assert_eq!(ident(&left), "a");
        assert_eq!(ident(&right), "b");
    }

    #[test]
    fn arrow_binds_tighter_than_arithmetic() {
        let Expr::BinaryOp { left, op, .. } = expr("a->b + 1") else {
            panic!("not a binary op");
        };
        assert_eq!(op, BinaryOperator::Plus);
        assert!(matches!(*left, Expr::BinaryOp { op: BinaryOperator::Arrow, .. }));
        let Expr::BinaryOp { right, op, .. } = expr("2 * a->b") else {
            panic!("not a binary op");
        };
        assert_eq!(op, BinaryOperator::Multiply);
        assert!(matches!(*right, Expr::BinaryOp { op: BinaryOperator::Arrow, .. }));
    }

    #[test]
    fn subscript_applies_to_arrow_result() {
        // (a->b)[0]->c
        let Expr::BinaryOp { left, op, right } = expr("a->b[0]->c") else {
            panic!("not a binary op");
        };
        assert_eq!(op, BinaryOperator::Arrow);
        assert_eq!(ident(&right), "c");
        let Expr::CompoundFieldAccess { root, access_chain } = *left else {
            panic!("not a subscript: {left:?}");
        };
        assert!(matches!(*root, Expr::BinaryOp { op: BinaryOperator::Arrow, .. }));
        assert!(matches!(access_chain.as_slice(), [AccessExpr::Subscript(Subscript::Index { .. })]));
    }

    #[test]
    fn plain_subscript_and_slice() {
        assert!(matches!(expr("arr[0]"), Expr::CompoundFieldAccess { .. }));
        let Expr::CompoundFieldAccess { access_chain, .. } = expr("arr[1:3]") else {
            panic!("not a subscript");
        };
        assert!(matches!(access_chain.as_slice(), [AccessExpr::Subscript(Subscript::Slice { .. })]));
    }

    #[test]
    fn clause_keywords_do_not_start_expressions() {
        let tokens = tokenize("a >\nGROUP BY x").expect("tokenize");
        let error =
            Parser::new(&EkuiperDialect).with_tokens_with_locations(tokens).parse_expr().expect_err("must fail");
        let error = SqlError::from_parser_error(error, None);
        assert_eq!(error.message(), "expected an expression, found GROUP");
        assert_eq!(error.position(), Some(Position::new(2, 1)));
        // Quoted, they are ordinary identifiers.
        assert!(matches!(expr("`group` + 1"), Expr::BinaryOp { .. }));
    }

    #[test]
    fn special_syntax_words_are_plain_calls_and_identifiers() {
        for sql in [r#"cast(a, "bigint")"#, "ceil(a)", "floor(a)", "trim(a)", "substring(a, 1, 2)", "position(a, b)"] {
            assert!(matches!(expr(sql), Expr::Function(_)), "{sql}");
        }
        for sql in ["user", "interval", "current_timestamp", "position"] {
            assert_eq!(ident(&expr(sql)), sql);
        }
        assert!(matches!(expr("user.name"), Expr::CompoundIdentifier(_)));
        assert!(matches!(expr("user->name"), Expr::BinaryOp { op: BinaryOperator::Arrow, .. }));
    }

    #[test]
    fn arrow_requires_a_field_name() {
        let tokens = tokenize("a -> 1").expect("tokenize");
        let error =
            Parser::new(&EkuiperDialect).with_tokens_with_locations(tokens).parse_expr().expect_err("must fail");
        let error = SqlError::from_parser_error(error, None);
        assert!(error.message().contains("field name after `->`"), "{error}");
        assert_eq!(error.position(), Some(Position::new(1, 6)));
    }
}
