//! eKuiper's `OVER (… WHEN condition)`: the condition under which an analytic
//! function (`lag`, `latest`, `acc_sum`, …) takes an event into its state.
//! sqlparser knows no `WHEN` in a window specification, so before parsing
//! the tokens `WHEN condition` at the top of an `OVER (…)` become
//! `ORDER BY __oort_when(condition)`, which it does parse; the planner reads
//! the condition back with [`when_condition`]. The new tokens carry the
//! position of `WHEN` (the marker's `)` that of OVER's `)`), so errors
//! inside the condition keep theirs.

use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart, OrderByExpr};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};

/// The function name that carries a `WHEN` condition through sqlparser.
pub const WHEN_MARKER: &str = "__oort_when";

fn is(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.keyword == keyword && w.quote_style.is_none())
}

/// Rewrites every `OVER ( … WHEN cond )` into `OVER ( … ORDER BY __oort_when(cond) )`.
pub(crate) fn when_as_order_by(tokens: &mut Vec<TokenWithSpan>) {
    let mut i = 0;
    while i < tokens.len() {
        if is(&tokens[i].token, Keyword::OVER)
            && let Some(open) = next_significant(tokens, i + 1).filter(|&j| tokens[j].token == Token::LParen)
            && let Some((when, close)) = top_level_when(tokens, open)
        {
            let span = tokens[when].span;
            let at = |token: Token| TokenWithSpan { token, span };
            let space = || at(Token::Whitespace(Whitespace::Space));
            // The marker's `)` stands where the condition ends, at OVER's own `)`.
            tokens.insert(close, TokenWithSpan { token: Token::RParen, span: tokens[close].span });
            tokens.splice(
                when..=when,
                [
                    at(Token::make_keyword("ORDER")),
                    space(),
                    at(Token::make_keyword("BY")),
                    space(),
                    at(Token::make_word(WHEN_MARKER, None)),
                    at(Token::LParen),
                ],
            );
            i = open;
        }
        i += 1;
    }
}

fn next_significant(tokens: &[TokenWithSpan], from: usize) -> Option<usize> {
    (from..tokens.len()).find(|&j| !matches!(tokens[j].token, Token::Whitespace(_)))
}

/// In the parentheses opened at `open`: the `WHEN` at their top level (not
/// inside nested parentheses or a `CASE`), and the closing parenthesis.
fn top_level_when(tokens: &[TokenWithSpan], open: usize) -> Option<(usize, usize)> {
    let (mut depth, mut cases, mut when) = (0usize, 0usize, None);
    for (j, t) in tokens.iter().enumerate().skip(open) {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return when.map(|w| (w, j));
                }
            }
            token if depth == 1 && is(token, Keyword::CASE) => cases += 1,
            token if depth == 1 && cases > 0 && is(token, Keyword::END) => cases -= 1,
            token if depth == 1 && cases == 0 && is(token, Keyword::WHEN) && when.is_none() => when = Some(j),
            _ => {}
        }
    }
    None
}

/// The condition of `WHEN`, when `order_by` is the one item the rewrite made.
pub fn when_condition(order_by: &[OrderByExpr]) -> Option<&Expr> {
    let [item] = order_by else { return None };
    let Expr::Function(function) = &item.expr else { return None };
    let [ObjectNamePart::Identifier(name)] = function.name.0.as_slice() else { return None };
    if name.value != WHEN_MARKER {
        return None;
    }
    match &function.args {
        FunctionArguments::List(list) => match list.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(condition))] => Some(condition),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::ast::{SelectItem, WindowType};

    use crate::parse_rule_sql;

    use super::*;

    fn over(sql: &str) -> sqlparser::ast::WindowSpec {
        let query = parse_rule_sql(sql).unwrap();
        let (SelectItem::ExprWithAlias { expr: Expr::Function(f), .. } | SelectItem::UnnamedExpr(Expr::Function(f))) =
            &query.select.projection[0]
        else {
            panic!("not a call: {:?}", query.select.projection[0]);
        };
        match f.over.clone() {
            Some(WindowType::WindowSpec(spec)) => spec,
            other => panic!("no OVER: {other:?}"),
        }
    }

    #[test]
    fn when_becomes_a_marked_order_by() {
        let spec = over("SELECT lag(a) OVER (WHEN b > 1) FROM s");
        assert!(spec.partition_by.is_empty());
        assert_eq!(when_condition(&spec.order_by).unwrap().to_string(), "b > 1");

        let spec = over("SELECT lag(a) OVER (PARTITION BY c, d WHEN CASE WHEN e THEN true END) AS x FROM s");
        assert_eq!(spec.partition_by.len(), 2);
        assert_eq!(when_condition(&spec.order_by).unwrap().to_string(), "CASE WHEN e THEN true END");

        let spec = over("SELECT lag(a) OVER (PARTITION BY CASE WHEN e THEN 1 END) FROM s");
        assert!(spec.order_by.is_empty(), "a CASE's WHEN is not OVER's");

        let spec = over("SELECT lag(a) OVER (WHEN had_changed(true, (b))) FROM s");
        assert_eq!(when_condition(&spec.order_by).unwrap().to_string(), "had_changed(true, (b))");
    }

    #[test]
    fn errors_inside_the_condition_keep_their_position() {
        let e = parse_rule_sql("SELECT lag(a) OVER (WHEN b >) FROM s").unwrap_err();
        assert_eq!(e.position(), Some(crate::Position::new(1, 29)), "{e}");
    }
}
