//! Function calls: lookup, aggregates and their nesting, arguments, `meta()`.

use super::*;

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
        if function.over.is_some() {
            return Err(unsupported(format!("OVER (in the call of {name})"), at));
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
            "event_time" => return no_arguments().map(|()| Expr::EventTime),
            // A rule is planned each time it starts.
            "rule_start" => return no_arguments().map(|()| Expr::Literal(Value::Int(crate::metrics::now_ms()))),
            _ => {}
        }

        let Some(found) = self.ctx.registry.get(&name) else {
            return Err(SqlError::semantic(format!("unknown function `{}`", ident.value), at));
        };
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

        let infos: Vec<ArgInfo<'_>> = compiled
            .iter()
            .map(|e| ArgInfo { literal: if let Expr::Literal(v) = e { Some(v) } else { None } })
            .collect();
        found.validate(&infos).map_err(|message| SqlError::semantic(message, at))?;
        let mut compiled = compiled;
        if aggregate && found.wants_rows() {
            compiled.push(Expr::SelfRow);
        }
        Ok(Expr::Call(Box::new(Call::new(found, compiled, at))))
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
