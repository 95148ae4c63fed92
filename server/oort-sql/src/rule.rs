//! Rule SQL: one eKuiper `SELECT` → [`RuleQuery`].
//!
//! The statement is parsed by sqlparser with
//! [`EkuiperDialect`](crate::EkuiperDialect); the sqlparser AST is kept for
//! the planner, alongside typed summaries of the parts every consumer needs:
//! the sources ([`SourceRef`]) and the window ([`WindowSpec`]).
//!
//! Remember when walking the AST that `"text"` is a string literal in eKuiper:
//! it arrives as `Value::DoubleQuotedString` and means the same as
//! `Value::SingleQuotedString`.

use std::collections::HashSet;

use sqlparser::ast::{
    Expr, GroupByExpr, JoinConstraint, JoinOperator, LimitClause, ObjectNamePart, OrderByExpr, OrderByKind, Query,
    Select, SelectFlavor, SetExpr, Spanned, Statement, TableFactor, Value, WindowType,
};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::cursor::{describe, is_keyword};
use crate::dialect::{EkuiperDialect, end_of_input, tokenize};
use crate::error::{Position, SqlError};
use crate::limits;
use crate::window::WindowSpec;

/// A stream or table read by a rule: the `FROM` stream or a `JOIN`ed table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceRef {
    /// The stream or table name, without quotes.
    pub name: String,
    /// The alias given with `AS` (or without it), if any.
    pub alias: Option<String>,
    /// Where the name appears in the rule SQL.
    pub position: Option<Position>,
}

impl SourceRef {
    /// The name the rest of the query uses for this source: the alias if
    /// there is one, else the name.
    pub fn reference_name(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

/// A parsed and validated rule query.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleQuery {
    /// The `SELECT` body as sqlparser parsed it: projection, `FROM` with its
    /// joins, `WHERE`, `GROUP BY` (window call included), `HAVING`.
    pub select: Select,
    /// `ORDER BY` items, in order; empty when absent.
    pub order_by: Vec<OrderByExpr>,
    /// `LIMIT n`, if present.
    pub limit: Option<u64>,
    /// The `FROM` stream first, then each `JOIN`ed source in order.
    pub sources: Vec<SourceRef>,
    /// The window declared in `GROUP BY`, if any.
    pub window: Option<WindowSpec>,
    /// `FILTER (WHERE condition)` after the window: the events that enter it.
    pub window_filter: Option<Expr>,
    /// `OVER (WHEN condition)` after a sliding window: the events that trigger one.
    pub window_trigger: Option<Expr>,
    /// A state window's condition, or its `begin` and `emit` conditions.
    pub window_conditions: Vec<Expr>,
    /// A state window's `OVER (PARTITION BY …)`.
    pub window_partition: Vec<Expr>,
    /// The aliases of the SELECT items marked `INVISIBLE` (`SELECT a + 1 AS b
    /// INVISIBLE, b * 2 AS c`): computed, usable by name, not output.
    pub invisible: Vec<String>,
}

impl RuleQuery {
    /// The names of all sources, `FROM` stream first.
    pub fn source_names(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().map(|s| s.name.as_str())
    }

    /// The `FROM` stream.
    pub fn stream(&self) -> Option<&SourceRef> {
        self.sources.first()
    }

    /// The `GROUP BY` expressions other than the window call.
    pub fn dimensions(&self) -> impl Iterator<Item = &Expr> {
        let exprs: &[Expr] = match &self.select.group_by {
            GroupByExpr::Expressions(exprs, _) => exprs,
            GroupByExpr::All(_) => &[],
        };
        exprs.iter().filter(|e| !is_window_call(e))
    }
}

/// Parses one eKuiper rule: a single `SELECT` statement.
///
/// Checks that it is exactly one `SELECT` (a trailing `;` is allowed), reads
/// `FROM` exactly one stream (plus any `JOIN`ed tables, each with an `ON`
/// condition, except `CROSS JOIN`), has at most one window in `GROUP BY`
/// with valid arguments, and uses no SQL features eKuiper lacks (`WITH`,
/// `UNION`, subqueries in `FROM`, `DISTINCT`, `OFFSET`, ...).
///
/// ```
/// use oort_sql::{parse_rule_sql, TimeUnit, WindowSpec};
///
/// let rule = parse_rule_sql(
///     "SELECT avg(temperature) AS t FROM demo GROUP BY TUMBLINGWINDOW(ss, 10)",
/// )?;
/// assert_eq!(rule.source_names().collect::<Vec<_>>(), ["demo"]);
/// assert_eq!(
///     rule.window,
///     Some(WindowSpec::Tumbling { unit: TimeUnit::Second, length: 10 })
/// );
/// # Ok::<(), oort_sql::SqlError>(())
/// ```
pub fn parse_rule_sql(sql: &str) -> Result<RuleQuery, SqlError> {
    let mut tokens = tokenize(sql)?;
    let end = end_of_input(&tokens);
    check_starts_with_select(&tokens, end)?;
    select_all_is_a_field(&mut tokens);
    let invisible = take_invisible(&mut tokens);
    crate::over::when_as_order_by(&mut tokens);
    limits::check_tokens(&tokens)?;

    let mut parser = Parser::new(&EkuiperDialect).with_tokens_with_locations(tokens);
    let statement = parser.parse_statement().map_err(|e| SqlError::from_parser_error(e, end))?;
    limits::check_depth(&statement)?;
    while parser.consume_token(&Token::SemiColon) {}
    let next = parser.peek_token();
    if next.token != Token::EOF {
        let position = Position::from_location(next.span.start);
        return Err(if is_keyword(&next.token, "SELECT") {
            SqlError::semantic("a rule must be a single SELECT statement, but a second statement follows", position)
        } else {
            SqlError::syntax(format!("expected end of statement, found {}", describe(&next.token)), position)
        });
    }

    let Statement::Query(query) = statement else {
        return Err(not_a_select(Position::from_location(statement.span().start)));
    };
    let mut query = from_query(*query)?;
    query.invisible = invisible;
    Ok(query)
}

/// eKuiper's `expr AS alias INVISIBLE`: takes the `INVISIBLE` words that follow
/// an alias out of the tokens, and returns those aliases.
fn take_invisible(tokens: &mut Vec<TokenWithSpan>) -> Vec<String> {
    let significant = |tokens: &[TokenWithSpan], before: usize| {
        (0..before).rev().find(|&j| !matches!(tokens[j].token, Token::Whitespace(_)))
    };
    let mut aliases = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let is_invisible = matches!(&tokens[i].token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("INVISIBLE"));
        if is_invisible
            && let Some(alias) = significant(tokens, i)
            && let Some(as_) = significant(tokens, alias)
            && is_keyword(&tokens[as_].token, "AS")
            && let Token::Word(name) = &tokens[alias].token
        {
            aliases.push(name.value.clone());
            tokens.remove(i);
            continue;
        }
        i += 1;
    }
    aliases
}

/// eKuiper has no `SELECT ALL`: `SELECT all, b FROM s` selects a field named
/// `all`, which sqlparser would read as the `ALL` quantifier.
fn select_all_is_a_field(tokens: &mut [TokenWithSpan]) {
    let mut words = tokens.iter_mut().filter(|t| !matches!(t.token, Token::Whitespace(_)));
    let (Some(_select), Some(next)) = (words.next(), words.next()) else { return };
    if let Token::Word(word) = &mut next.token
        && word.keyword == Keyword::ALL
        && word.quote_style.is_none()
    {
        word.keyword = Keyword::NoKeyword;
    }
}

/// Rejects anything that does not start with `SELECT` before sqlparser gets
/// a chance to parse (and mis-describe) another kind of statement.
fn check_starts_with_select(tokens: &[TokenWithSpan], end: Option<Position>) -> Result<(), SqlError> {
    match tokens.iter().find(|t| !matches!(t.token, Token::Whitespace(_))) {
        None => Err(SqlError::syntax("expected a SELECT statement, found end of input", end)),
        Some(t) if is_keyword(&t.token, "SELECT") => Ok(()),
        Some(t) => Err(not_a_select(Position::from_location(t.span.start))),
    }
}

fn not_a_select(position: Option<Position>) -> SqlError {
    SqlError::semantic("a rule must be a single SELECT statement", position)
}

fn unsupported(what: &str, position: Option<Position>) -> SqlError {
    SqlError::semantic(format!("{what} is not supported in rules"), position)
}

fn position_of(node: &impl Spanned) -> Option<Position> {
    Position::from_location(node.span().start)
}

/// Validates the query and extracts the typed summaries.
fn from_query(query: Query) -> Result<RuleQuery, SqlError> {
    let Query { with, body, order_by, limit_clause, fetch, locks, for_clause, settings, format_clause, pipe_operators } =
        query;
    let select = match *body {
        SetExpr::Select(select) => *select,
        SetExpr::SetOperation { op, left, .. } => {
            return Err(unsupported(&format!("{op}"), position_of(&*left)));
        }
        other => return Err(not_a_select(position_of(&other))),
    };
    let select_position = Position::from_location(select.select_token.0.span.start);

    if let Some(with) = with {
        return Err(unsupported("WITH", position_of(&with)));
    }
    if let Some(fetch) = fetch {
        return Err(unsupported("FETCH", position_of(&fetch)));
    }
    if !locks.is_empty() {
        return Err(unsupported("FOR UPDATE/SHARE", select_position));
    }
    if for_clause.is_some() {
        return Err(unsupported("FOR XML/JSON", select_position));
    }
    if settings.is_some() {
        return Err(unsupported("SETTINGS", select_position));
    }
    if format_clause.is_some() {
        return Err(unsupported("FORMAT", select_position));
    }
    if !pipe_operators.is_empty() {
        return Err(unsupported("the pipe operator", select_position));
    }

    let order_by = match order_by {
        None => Vec::new(),
        Some(order_by) => {
            if order_by.interpolate.is_some() {
                return Err(unsupported("INTERPOLATE", position_of(&order_by)));
            }
            match order_by.kind {
                OrderByKind::Expressions(exprs) => exprs,
                OrderByKind::All(_) => {
                    return Err(unsupported("ORDER BY ALL", select_position));
                }
            }
        }
    };
    let limit = limit_clause.map(parse_limit).transpose()?;

    check_select_clauses(&select, select_position)?;
    let sources = sources(&select, select_position)?;
    let Window { spec: window, filter: window_filter, trigger: window_trigger, conditions, partition } =
        window(&select)?;
    Ok(RuleQuery {
        select,
        order_by,
        limit,
        sources,
        window,
        window_filter,
        window_trigger,
        window_conditions: conditions,
        window_partition: partition,
        invisible: Vec::new(),
    })
}

/// `LIMIT n` with a non-negative integer literal; no `OFFSET`.
fn parse_limit(clause: LimitClause) -> Result<u64, SqlError> {
    let position = position_of(&clause);
    match clause {
        LimitClause::LimitOffset { limit, offset, limit_by } => {
            if let Some(offset) = offset {
                return Err(unsupported("OFFSET", position_of(&offset)));
            }
            if let Some(first) = limit_by.first() {
                return Err(unsupported("LIMIT BY", position_of(first)));
            }
            match limit {
                Some(Expr::Value(ref v)) => match &v.value {
                    Value::Number(n, _) => n.parse::<u64>().ok(),
                    _ => None,
                },
                _ => None,
            }
            .ok_or_else(|| {
                let got = limit.map(|e| e.to_string()).unwrap_or_else(|| "ALL".into());
                SqlError::semantic(format!("LIMIT must be a non-negative integer, got `{got}`"), position)
            })
        }
        LimitClause::OffsetCommaLimit { offset, .. } => Err(unsupported("OFFSET", position_of(&offset))),
    }
}

/// Rejects the `SELECT` clauses that eKuiper does not have. Most are only
/// parsed by other dialects; checking them keeps a future dialect change
/// from silently widening the accepted language.
fn check_select_clauses(select: &Select, at: Option<Position>) -> Result<(), SqlError> {
    let present = [
        (select.distinct.is_some(), "SELECT DISTINCT"),
        (select.top.is_some(), "TOP"),
        (select.into.is_some(), "SELECT INTO"),
        (!select.optimizer_hints.is_empty(), "optimizer hints"),
        (select.select_modifiers.is_some(), "SELECT modifiers"),
        (select.exclude.is_some(), "EXCLUDE"),
        (!select.lateral_views.is_empty(), "LATERAL VIEW"),
        (select.prewhere.is_some(), "PREWHERE"),
        (!select.connect_by.is_empty(), "CONNECT BY"),
        (!select.cluster_by.is_empty(), "CLUSTER BY"),
        (!select.distribute_by.is_empty(), "DISTRIBUTE BY"),
        (!select.sort_by.is_empty(), "SORT BY"),
        (!select.named_window.is_empty(), "a named WINDOW clause"),
        (select.qualify.is_some(), "QUALIFY"),
        (select.value_table_mode.is_some(), "SELECT AS VALUE/STRUCT"),
        (!matches!(select.flavor, SelectFlavor::Standard), "FROM-first SELECT"),
    ];
    match present.iter().find(|(is_present, _)| *is_present) {
        Some((_, what)) => Err(unsupported(what, at)),
        None => Ok(()),
    }
}

/// The `FROM` stream and the `JOIN`ed sources, validated.
fn sources(select: &Select, at: Option<Position>) -> Result<Vec<SourceRef>, SqlError> {
    let from = match select.from.as_slice() {
        [] => {
            return Err(SqlError::semantic("a rule must read FROM exactly one stream", at));
        }
        [from] => from,
        [_, second, ..] => {
            return Err(SqlError::semantic(
                "a rule must read FROM exactly one stream; combine it with tables using JOIN",
                position_of(&second.relation),
            ));
        }
    };

    let mut sources = vec![source_ref(&from.relation)?];
    for join in &from.joins {
        let position = position_of(&join.relation);
        let constraint = match &join.join_operator {
            JoinOperator::Join(c)
            | JoinOperator::Inner(c)
            | JoinOperator::Left(c)
            | JoinOperator::LeftOuter(c)
            | JoinOperator::Right(c)
            | JoinOperator::RightOuter(c)
            | JoinOperator::FullOuter(c) => Some(c),
            JoinOperator::CrossJoin(JoinConstraint::None) => None,
            JoinOperator::CrossJoin(_) => {
                return Err(SqlError::semantic("CROSS JOIN takes no join condition", position));
            }
            _ => {
                return Err(unsupported(
                    "this kind of join (only INNER, LEFT, RIGHT, FULL and CROSS joins are)",
                    position,
                ));
            }
        };
        match constraint {
            None | Some(JoinConstraint::On(_)) => {}
            Some(JoinConstraint::None) => {
                return Err(SqlError::semantic("JOIN needs an ON condition (or use CROSS JOIN)", position));
            }
            Some(_) => {
                return Err(unsupported("USING and NATURAL joins (write JOIN ... ON ...)", position));
            }
        }
        sources.push(source_ref(&join.relation)?);
    }

    let mut seen = HashSet::new();
    for source in &sources {
        if !seen.insert(source.reference_name().to_lowercase()) {
            return Err(SqlError::semantic(
                format!("`{}` is used for two sources; give one of them an alias", source.reference_name()),
                source.position,
            ));
        }
    }
    Ok(sources)
}

/// A named stream or table with an optional alias.
fn source_ref(factor: &TableFactor) -> Result<SourceRef, SqlError> {
    let position = position_of(factor);
    let TableFactor::Table { name, alias, args, .. } = factor else {
        return Err(unsupported("reading from a subquery or table function (name a stream or table)", position));
    };
    if args.is_some() {
        return Err(unsupported("table functions", position));
    }
    let name = match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => ident.value.clone(),
        _ => {
            return Err(unsupported(&format!("the qualified source name `{name}`"), position));
        }
    };
    if let Some(alias) = alias {
        if !alias.columns.is_empty() {
            return Err(unsupported("column aliases on a source", position));
        }
    }
    Ok(SourceRef { name, alias: alias.as_ref().map(|a| a.name.value.clone()), position })
}

/// True for a call of a window function.
fn is_window_call(expr: &Expr) -> bool {
    match expr {
        Expr::Function(f) => match f.name.0.as_slice() {
            [ObjectNamePart::Identifier(ident)] => WindowSpec::is_window_function(&ident.value),
            _ => false,
        },
        _ => false,
    }
}

/// The window of `GROUP BY` with its clauses.
#[derive(Default)]
struct Window {
    spec: Option<WindowSpec>,
    filter: Option<Expr>,
    trigger: Option<Expr>,
    conditions: Vec<Expr>,
    partition: Vec<Expr>,
}

/// The arguments of a window call (checked by [`WindowSpec::from_function`]).
fn window_args(function: &sqlparser::ast::Function) -> Vec<Expr> {
    match &function.args {
        sqlparser::ast::FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|arg| match arg {
                sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The window in `GROUP BY`, if any; at most one is allowed.
fn window(select: &Select) -> Result<Window, SqlError> {
    let exprs = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(unsupported("GROUP BY modifiers (ROLLUP, CUBE, ...)", position_of(&select.group_by)));
            }
            exprs
        }
        GroupByExpr::All(_) => {
            return Err(unsupported("GROUP BY ALL", position_of(&select.group_by)));
        }
    };
    let mut window = Window::default();
    for expr in exprs {
        let Expr::Function(function) = expr else {
            continue;
        };
        let Some(spec) = WindowSpec::from_function(function)? else {
            continue;
        };
        if window.spec.is_some() {
            return Err(SqlError::semantic("at most one window is allowed in GROUP BY", position_of(expr)));
        }
        let at = position_of(expr);
        window.filter = function.filter.as_deref().cloned();
        if let WindowSpec::State { .. } = spec {
            window.conditions = window_args(function);
        }
        window.trigger = match &function.over {
            None => None,
            // A state window's partitions.
            Some(WindowType::WindowSpec(over))
                if matches!(spec, WindowSpec::State { .. })
                    && over.order_by.is_empty()
                    && over.window_frame.is_none()
                    && over.window_name.is_none() =>
            {
                window.partition = over.partition_by.clone();
                None
            }
            Some(WindowType::WindowSpec(over))
                if over.partition_by.is_empty() && over.window_frame.is_none() && over.window_name.is_none() =>
            {
                let when = crate::over::when_condition(&over.order_by).ok_or_else(|| {
                    SqlError::semantic("a window's OVER takes a WHEN condition: OVER (WHEN a > 1)", at)
                })?;
                if !matches!(spec, WindowSpec::Sliding { .. }) {
                    return Err(SqlError::semantic(
                        format!("OVER (WHEN ...) triggers sliding windows only, not {}", spec.function_name()),
                        at,
                    ));
                }
                Some(when.clone())
            }
            Some(_) => return Err(SqlError::semantic("a window's OVER takes a WHEN condition: OVER (WHEN a > 1)", at)),
        };
        window.spec = Some(spec);
    }
    Ok(window)
}

#[cfg(test)]
mod tests;
