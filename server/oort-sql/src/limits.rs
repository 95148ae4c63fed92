//! Bounds on what a statement may hold, checked before anything walks it
//! recursively: hostile SQL (`a+a+…+a` thousands of terms, 3 KB) must come
//! back `INVALID_ARGUMENT` with a position, not overflow a thread's stack.
//!
//! Two checks: before parsing, the operators and brackets of the token stream
//! are counted, which bounds the depth of any tree the parser can build (so
//! that even dropping it is safe); after parsing, the depth of every
//! expression is measured by a visitor that stops descending at the limit.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Visit, Visitor};
use sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::error::{Position, SqlError};

/// The deepest expression a rule may hold. eKuiper rules seldom pass 20; a sum
/// of 200 fields is still fine.
pub const MAX_EXPRESSION_DEPTH: usize = 256;

/// The most operators and brackets a statement may hold, whatever its shape.
pub const MAX_OPERATORS: usize = 4_096;

/// Refuses a token stream with more operators and brackets than any
/// reasonable rule has, before the parser builds a tree of that depth.
pub fn check_tokens(tokens: &[TokenWithSpan]) -> Result<(), SqlError> {
    let mut count = 0;
    // The dialect parses `a->b->c` one `->` at a time, copying the left side
    // each time: a chain must stay within the depth limit before it is parsed.
    let mut chain = 0;
    for token in tokens {
        match &token.token {
            Token::Arrow => chain += 1,
            Token::Word(_) | Token::Whitespace(_) => {}
            _ => chain = 0,
        }
        if chain > MAX_EXPRESSION_DEPTH {
            return Err(SqlError::semantic(
                format!("a chain of more than {MAX_EXPRESSION_DEPTH} `->` is too deep; simplify it"),
                Position::from_location(token.span.start),
            ));
        }
        let counts = matches!(
            token.token,
            Token::LParen
                | Token::LBracket
                | Token::LBrace
                | Token::Plus
                | Token::Minus
                | Token::Mul
                | Token::Div
                | Token::Mod
                | Token::StringConcat
                | Token::Arrow
                | Token::LongArrow
                | Token::Period
                | Token::Eq
                | Token::Neq
                | Token::Lt
                | Token::Gt
                | Token::LtEq
                | Token::GtEq
                | Token::Ampersand
                | Token::Pipe
                | Token::Caret
        ) || matches!(&token.token, Token::Word(w) if w.value.eq_ignore_ascii_case("and") || w.value.eq_ignore_ascii_case("or") || w.value.eq_ignore_ascii_case("not"));
        if counts {
            count += 1;
            if count > MAX_OPERATORS {
                return Err(SqlError::semantic(
                    format!("the statement has more than {MAX_OPERATORS} operators and brackets; split the rule"),
                    Position::from_location(token.span.start),
                ));
            }
        }
    }
    Ok(())
}

/// Refuses any expression of `node` deeper than [`MAX_EXPRESSION_DEPTH`],
/// naming where the too-deep part starts.
pub fn check_depth<V: Visit>(node: &V) -> Result<(), SqlError> {
    let mut depth = Depth { current: 0 };
    match node.visit(&mut depth) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(position) => Err(SqlError::semantic(
            format!("an expression is nested more than {MAX_EXPRESSION_DEPTH} levels deep; simplify it"),
            position,
        )),
    }
}

struct Depth {
    current: usize,
}

impl Visitor for Depth {
    type Break = Option<Position>;

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Self::Break> {
        self.current += 1;
        if self.current > MAX_EXPRESSION_DEPTH {
            return ControlFlow::Break(leftmost_position(expr));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<Self::Break> {
        self.current -= 1;
        ControlFlow::Continue(())
    }
}

/// Where `expr` starts, found by walking down its leftmost operands in a loop
/// (`Expr::span` recurses over the whole tree, which is what must not happen here).
fn leftmost_position(mut expr: &Expr) -> Option<Position> {
    loop {
        expr = match expr {
            Expr::BinaryOp { left, .. } => left,
            Expr::UnaryOp { expr, .. } | Expr::Nested(expr) | Expr::IsNull(expr) | Expr::IsNotNull(expr) => expr,
            Expr::CompoundFieldAccess { root, .. } => root,
            Expr::Identifier(ident) => return Position::from_location(ident.span.start),
            Expr::CompoundIdentifier(idents) => {
                return idents.first().and_then(|i| Position::from_location(i.span.start));
            }
            Expr::Value(value) => return Position::from_location(value.span.start),
            Expr::Function(function) => {
                return function
                    .name
                    .0
                    .first()
                    .and_then(|part| part.as_ident())
                    .and_then(|i| Position::from_location(i.span.start));
            }
            _ => return None,
        };
    }
}

#[cfg(test)]
mod tests {
    use crate::{Position, parse_rule_sql};

    /// Parses on a thread with tokio's default worker stack (2 MiB), where the
    /// server parses, so that an overflow shows here as it would there.
    fn parse_on_a_small_stack(sql: String) -> Result<(), crate::SqlError> {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || parse_rule_sql(&sql).map(drop))
            .unwrap()
            .join()
            .expect("no stack overflow")
    }

    #[test]
    fn long_chains_of_every_operator_are_refused_with_a_position() {
        for op in ["+", " AND ", " OR ", " || ", "->", "*"] {
            for terms in [1_600, 5_000, 50_000] {
                let sql = format!("SELECT {} FROM s", vec!["a"; terms].join(op));
                let error = parse_on_a_small_stack(sql).expect_err("refused");
                assert!(
                    ["levels deep", "operators and brackets", "too deep"].iter().any(|m| error.message().contains(m)),
                    "{op} × {terms}: {error}"
                );
                assert!(error.position().is_some(), "{op} × {terms}: {error}");
            }
        }
        let nested = format!("SELECT {}a{} FROM s", "(".repeat(3_000), ")".repeat(3_000));
        assert!(parse_on_a_small_stack(nested).is_err());
        let calls = format!("SELECT {}a{} FROM s", "abs(".repeat(1_000), ")".repeat(1_000));
        assert!(parse_on_a_small_stack(calls).is_err());
    }

    #[test]
    fn the_position_is_where_the_deep_part_starts_and_sane_rules_pass() {
        let sql = format!("SELECT x,\n  {} AS deep FROM s", vec!["a"; 300].join("+"));
        let error = parse_rule_sql(&sql).unwrap_err();
        assert_eq!(error.position(), Some(Position::new(2, 3)), "{error}");
        let fine = format!("SELECT {} AS total FROM s WHERE a > 1 AND b < 2", vec!["a"; 200].join("+"));
        parse_rule_sql(&fine).expect("200 terms are fine");
    }
}
