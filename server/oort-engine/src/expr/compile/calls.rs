//! Function calls: lookup, aggregates and their nesting, arguments, `meta()`.

use oort_sql::sqlparser::ast::WindowType;
use oort_sql::when_condition;

use super::*;
use crate::analytic::{AnalyticCall, AnalyticKind, check_call};

impl Compiler<'_> {
    pub(super) fn call(&mut self, function: &SqlFunction) -> Result<Expr, SqlError> {
        let ident = match function.name.0.as_slice() {
            [ObjectNamePart::Identifier(ident)] => ident,
            _ => return Err(unsupported("a qualified function name", position(&function.name))),
        };
        let at = ident_position(ident);
        let name = ident.value.to_ascii_lowercase();
        if function.uses_odbc_syntax {
            return Err(unsupported("the ODBC call syntax", at));
        }
        if !matches!(function.parameters, FunctionArguments::None) {
            return Err(unsupported("a parametric function call", at));
        }
        if name == crate::expr::row_number::NAME {
            return Err(SqlError::semantic(
                "row_number numbers the rows of a result: it can only be a whole SELECT item, as in SELECT row_number() AS n, a FROM s",
                at,
            ));
        }
        if name == crate::expr::changed_cols::NAME {
            return Err(SqlError::semantic(
                "changed_cols returns columns: it can only be a whole SELECT item, as in SELECT changed_cols(\"c_\", true, a, b) FROM s",
                at,
            ));
        }
        let analytic = AnalyticKind::from_name(&name);
        if function.over.is_some() && analytic.is_none() {
            return Err(SqlError::semantic(
                format!("OVER (in the call of {name}) is only for the analytic functions: {}", AnalyticKind::names()),
                at,
            ));
        }
        if function.filter.is_some() {
            return Err(unsupported(format!("FILTER (in the call of {name})"), at));
        }
        if !function.within_group.is_empty() {
            return Err(unsupported(format!("WITHIN GROUP (in the call of {name})"), at));
        }
        if function.null_treatment.is_some() {
            return Err(unsupported(format!("IGNORE/RESPECT NULLS (in the call of {name})"), at));
        }
        let args: Vec<&FunctionArg> = match &function.args {
            FunctionArguments::None => Vec::new(),
            FunctionArguments::Subquery(query) => return Err(unsupported("a subquery", position(query.as_ref()))),
            FunctionArguments::List(list) => {
                if list.duplicate_treatment == Some(DuplicateTreatment::Distinct) {
                    return Err(unsupported(format!("DISTINCT (in the call of {name})"), at));
                }
                if !list.clauses.is_empty() {
                    return Err(unsupported(format!("clauses inside the arguments of {name}"), at));
                }
                list.args.iter().collect()
            }
        };

        // What the evaluator computes from the row, the window or the rule, not a function.
        let no_arguments = || match args.len() {
            0 => Ok(()),
            n => Err(SqlError::semantic(format!("function {name} takes 0 argument(s), got {n}"), at)),
        };
        match name.as_str() {
            // eKuiper's mqtt(key) is meta(key) for a rule triggered by MQTT messages.
            "meta" | "mqtt" => return self.meta(&args, at),
            "window_start" => return no_arguments().map(|()| Expr::WindowStart),
            "window_end" => return no_arguments().map(|()| Expr::WindowEnd),
            // eKuiper's window_trigger() is the window's trigger time; Oort's windows end at it.
            "event_time" | "window_trigger" => return no_arguments().map(|()| Expr::EventTime),
            "last_hit_count" => return no_arguments().map(|()| Expr::LastHit { time: false, aggregate: false }),
            "last_hit_time" => return no_arguments().map(|()| Expr::LastHit { time: true, aggregate: false }),
            "last_agg_hit_count" => return no_arguments().map(|()| Expr::LastHit { time: false, aggregate: true }),
            "last_agg_hit_time" => return no_arguments().map(|()| Expr::LastHit { time: true, aggregate: true }),
            // A rule is planned each time it starts.
            "rule_start" => return no_arguments().map(|()| Expr::Literal(Value::Int(crate::metrics::now_ms()))),
            _ => {}
        }

        let Some(found) = self.ctx.registry.get(&name) else {
            return Err(SqlError::semantic(format!("unknown function `{}`", ident.value), at));
        };
        if let Some(kind) = analytic {
            return self.analytic(kind, found.as_ref(), function, &args, at);
        }
        let aggregate = found.meta().kind == FunctionKind::Aggregate;
        if aggregate && let Some(outer) = &self.aggregate {
            return Err(nested_aggregate(&name, outer, at));
        }
        let outer = if aggregate { self.aggregate.replace(Arc::from(name.as_str())) } else { None };
        let compiled: Result<Vec<Expr>, SqlError> =
            args.iter().map(|arg| self.argument(arg, &name, aggregate, at)).collect();
        if aggregate {
            self.aggregate = outer;
        }
        let compiled = compiled?;

        found.validate(&arg_infos(&compiled)).map_err(|message| SqlError::semantic(message, at))?;
        let mut compiled = compiled;
        if aggregate && found.wants_rows() {
            compiled.push(Expr::SelfRow);
        }
        Ok(Expr::Call(Box::new(Call::new(found, compiled, at))))
    }

    /// An analytic call (`lag(a) OVER (PARTITION BY b WHEN c)`): compiled
    /// into the rule's [`AnalyticCalls`], read here by its slot.
    fn analytic(
        &mut self,
        kind: AnalyticKind,
        found: &dyn crate::function::Function,
        function: &SqlFunction,
        args: &[&FunctionArg],
        at: Option<Position>,
    ) -> Result<Expr, SqlError> {
        let name = kind.name();
        let Some(calls) = self.ctx.analytics else {
            return Err(SqlError::semantic(format!("analytic function {name} is not allowed here"), at));
        };
        let (partition, when) = match &function.over {
            None => (&[][..], None),
            Some(WindowType::WindowSpec(spec)) => {
                let when = when_condition(&spec.order_by);
                if spec.window_name.is_some()
                    || spec.window_frame.is_some()
                    || (when.is_none() && !spec.order_by.is_empty())
                {
                    return Err(unsupported(
                        format!("OVER with anything but PARTITION BY and WHEN (in the call of {name})"),
                        at,
                    ));
                }
                (spec.partition_by.as_slice(), when)
            }
            Some(WindowType::NamedWindow(window)) => {
                return Err(unsupported("a named window", ident_position(window).or(at)));
            }
        };
        let args = args.iter().map(|arg| self.argument(arg, name, false, at)).collect::<Result<Vec<_>, _>>()?;
        let partition = partition.iter().map(|e| self.expr(e)).collect::<Result<Vec<_>, _>>()?;
        let when = when.map(|e| self.expr(e)).transpose()?;
        // Evaluated on each event before any window: nothing to aggregate yet.
        if let Some((inner, position)) = args.iter().chain(&partition).chain(&when).find_map(|e| e.first_aggregate()) {
            return Err(SqlError::semantic(
                format!(
                    "aggregate function `{inner}` cannot be used inside analytic function `{name}`, which is evaluated on each event before the window"
                ),
                position,
            ));
        }
        found.validate(&arg_infos(&args)).map_err(|message| SqlError::semantic(message, at))?;
        check_call(kind, &args).map_err(|message| SqlError::semantic(message, at))?;
        Ok(calls.add(AnalyticCall { kind, args, partition, when }))
    }

    pub(super) fn argument(
        &mut self,
        arg: &FunctionArg,
        function: &str,
        aggregate: bool,
        at: Option<Position>,
    ) -> Result<Expr, SqlError> {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => self.expr(expr),
            FunctionArg::Unnamed(FunctionArgExpr::Wildcard) if aggregate && function == "count" => Ok(Expr::CountStar),
            FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => Ok(Expr::Wildcard { qualifier: None }),
            FunctionArg::Unnamed(FunctionArgExpr::QualifiedWildcard(name)) => {
                Ok(Expr::Wildcard { qualifier: Some(self.qualifier(name)?) })
            }
            FunctionArg::Unnamed(FunctionArgExpr::WildcardWithOptions(_)) => {
                Err(unsupported("`*` with options", position(arg).or(at)))
            }
            FunctionArg::Named { .. } | FunctionArg::ExprNamed { .. } => {
                Err(unsupported("a named argument", position(arg).or(at)))
            }
        }
    }

    /// `meta(key)`, `meta(src.key)`, `meta(*)`.
    pub(super) fn meta(&self, args: &[&FunctionArg], at: Option<Position>) -> Result<Expr, SqlError> {
        let usage = || SqlError::semantic("meta() takes one metadata key, as in meta(topic), or *", at);
        let [FunctionArg::Unnamed(arg)] = args else {
            return Err(usage());
        };
        match arg {
            FunctionArgExpr::Wildcard => Ok(Expr::MetaAll),
            FunctionArgExpr::Expr(SqlExpr::Identifier(key)) => {
                Ok(Expr::Meta { qualifier: None, key: Arc::from(key.value.as_str()) })
            }
            FunctionArgExpr::Expr(SqlExpr::CompoundIdentifier(idents)) if idents.len() == 2 => {
                let index = self.find_source(&idents[0].value).ok_or_else(|| {
                    SqlError::semantic(
                        format!("unknown source `{}`; the rule reads {}", idents[0].value, self.source_names()),
                        ident_position(&idents[0]),
                    )
                })?;
                Ok(Expr::Meta {
                    qualifier: Some(Arc::from(self.ctx.sources[index].reference_name())),
                    key: Arc::from(idents[1].value.as_str()),
                })
            }
            _ => Err(usage()),
        }
    }
}

/// What a function's validation sees of its arguments: the literals.
pub(crate) fn arg_infos(args: &[Expr]) -> Vec<ArgInfo<'_>> {
    args.iter().map(|e| ArgInfo { literal: if let Expr::Literal(v) = e { Some(v) } else { None } }).collect()
}
