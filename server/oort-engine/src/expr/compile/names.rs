//! Name resolution: columns of the rule's sources, SELECT aliases, `a.b`
//! and `a->b`, and the static types of declared fields.

use super::*;

impl<'a> Compiler<'a> {
    pub(super) fn identifier(&mut self, ident: &Ident) -> Result<Expr, SqlError> {
        if ident.quote_style.is_none() && ident.value.eq_ignore_ascii_case("self") {
            return Ok(Expr::SelfRow);
        }
        if let Some(expr) = self.alias(ident)? {
            return Ok(expr);
        }
        self.column(None, ident)
    }

    /// Resolves `ident` as an alias, if it is one here.
    pub(super) fn alias(&mut self, ident: &Ident) -> Result<Option<Expr>, SqlError> {
        let name = ident.value.as_str();
        let target = match &mut self.aliases {
            Aliases::None => return Ok(None),
            Aliases::Output(_) | Aliases::Where(_) => {
                let found = match self.aliases {
                    // WHERE comes before any aggregate: an aggregate's alias names the column.
                    Aliases::Where(projection) => projection.alias_expr(name).filter(|e| !e.contains_aggregate()),
                    Aliases::Output(projection) => projection.output_expr(name),
                    _ => None,
                };
                let Some(expr) = found else {
                    return Ok(None);
                };
                if let Some(outer) = &self.aggregate
                    && let Some((inner, _)) = expr.first_aggregate()
                {
                    return Err(nested_aggregate(inner, outer, ident_position(ident)));
                }
                return Ok(Some(expr.clone()));
            }
            Aliases::Select { items, stack } => {
                let Some(index) = items.iter().rposition(|item| matches!(item, Some((alias, _)) if *alias == name))
                else {
                    return Ok(None);
                };
                if stack.last() == Some(&index) {
                    // An item's own alias names the source column inside it.
                    return Ok(None);
                }
                if stack.contains(&index) {
                    return Err(SqlError::semantic(
                        format!("alias `{name}` refers to itself through other SELECT items"),
                        ident_position(ident),
                    ));
                }
                stack.push(index);
                items[index].map(|(_, expr)| expr)
            }
        };
        let result = target.map(|expr| self.expr(expr)).transpose();
        if let Aliases::Select { stack, .. } = &mut self.aliases {
            stack.pop();
        }
        result
    }

    /// The index of the source that `name` refers to: its alias or name.
    pub(super) fn find_source(&self, name: &str) -> Option<usize> {
        let sources = self.ctx.sources;
        sources
            .iter()
            .position(|s| s.reference_name() == name)
            .or_else(|| sources.iter().position(|s| s.name == name))
            .or_else(|| sources.iter().position(|s| s.reference_name().eq_ignore_ascii_case(name)))
    }

    pub(super) fn source_names(&self) -> String {
        list_names(self.ctx.sources.iter().map(SourceSchema::reference_name))
    }

    pub(crate) fn qualifier(&self, name: &ObjectName) -> Result<Arc<str>, SqlError> {
        let unknown = || {
            SqlError::semantic(
                format!("unknown source `{name}`; the rule reads {}", self.source_names()),
                position(name),
            )
        };
        match name.0.as_slice() {
            [ObjectNamePart::Identifier(ident)] => {
                let index = self.find_source(&ident.value).ok_or_else(unknown)?;
                Ok(Arc::from(self.ctx.sources[index].reference_name()))
            }
            _ => Err(unknown()),
        }
    }

    /// A column, of source `source` or unqualified.
    pub(super) fn column(&self, source: Option<usize>, ident: &Ident) -> Result<Expr, SqlError> {
        let name = ident.value.as_str();
        let sources = self.ctx.sources;
        let column = |schema: &SourceSchema, qualified: bool| -> Result<Expr, SqlError> {
            let name: Arc<str> = match &schema.fields {
                None => Arc::from(name),
                Some(fields) => match find_field(fields, name) {
                    Some(field) => Arc::from(field.name.as_str()),
                    None => {
                        return Err(SqlError::semantic(
                            format!(
                                "unknown field `{name}` in `{}`; its fields are {}",
                                schema.reference_name(),
                                list_names(fields.iter().map(|f| f.name.as_str()))
                            ),
                            ident_position(ident),
                        ));
                    }
                },
            };
            Ok(Expr::Column { qualifier: qualified.then(|| Arc::from(schema.reference_name())), name })
        };
        if let Some(index) = source {
            return column(&sources[index], true);
        }
        match sources {
            [] => Ok(Expr::Column { qualifier: None, name: Arc::from(name) }),
            [only] => column(only, false),
            _ => {
                let declaring: Vec<&SourceSchema> = sources.iter().filter(|s| s.field(name).is_some()).collect();
                match declaring.as_slice() {
                    [one] => column(one, true),
                    [] if sources.iter().all(|s| s.fields.is_some()) => Err(SqlError::semantic(
                        format!("unknown field `{name}`: none of {} has it", self.source_names()),
                        ident_position(ident),
                    )),
                    [] => Ok(Expr::Column { qualifier: None, name: Arc::from(name) }),
                    [first, ..] => Err(SqlError::semantic(
                        format!(
                            "field `{name}` is ambiguous: {} all have it; qualify it, as in {}.{name}",
                            list_names(declaring.iter().map(|s| s.reference_name())),
                            first.reference_name()
                        ),
                        ident_position(ident),
                    )),
                }
            }
        }
    }

    /// `src.col[.sub...]`, or `col.sub...` (eKuiper reads `a.b` as `a->b` when `a` is not a source).
    pub(super) fn compound_identifier(&mut self, idents: &[Ident]) -> Result<Expr, SqlError> {
        let (mut base, rest) = match idents {
            [first, second, rest @ ..] if self.find_source(&first.value).is_some() => {
                (self.column(self.find_source(&first.value), second)?, rest)
            }
            [first, rest @ ..] => {
                let base = self.identifier(first).map_err(|e| match e {
                    SqlError::Semantic { message, position } if !rest.is_empty() => {
                        SqlError::semantic(format!("{message} (and no source is named `{}`)", first.value), position)
                    }
                    other => other,
                })?;
                (base, rest)
            }
            [] => return Err(SqlError::semantic("empty name", None)),
        };
        for ident in rest {
            base = self.field_access(base, ident)?;
        }
        Ok(base)
    }

    /// `base->name`, checked against the declared STRUCT when the type of `base` is known.
    pub(super) fn field_access(&self, base: Expr, ident: &Ident) -> Result<Expr, SqlError> {
        let name = match self.static_type(&base) {
            Some(FieldType::Struct(fields)) => match find_field(fields, &ident.value) {
                Some(field) => Arc::from(field.name.as_str()),
                None => {
                    return Err(SqlError::semantic(
                        format!(
                            "`{base}` has no field `{}`; its fields are {}",
                            ident.value,
                            list_names(fields.iter().map(|f| f.name.as_str()))
                        ),
                        ident_position(ident),
                    ));
                }
            },
            _ => Arc::from(ident.value.as_str()),
        };
        Ok(Expr::Field(Box::new(base), name))
    }

    /// The declared type of a column or of a path into one, when the schema says.
    pub(super) fn static_type(&self, expr: &Expr) -> Option<&'a FieldType> {
        let sources: &'a [SourceSchema] = self.ctx.sources;
        match expr {
            Expr::Column { qualifier, name } => {
                let source = match (qualifier, sources) {
                    (Some(q), _) => sources.iter().find(|s| s.reference_name() == &**q)?,
                    (None, [only]) => only,
                    (None, _) => return None,
                };
                Some(&source.field(name)?.field_type)
            }
            Expr::Field(base, name) => match self.static_type(base)? {
                FieldType::Struct(fields) => Some(&find_field(fields, name)?.field_type),
                _ => None,
            },
            Expr::Index(base, _) => match self.static_type(base)? {
                FieldType::Array(element) => Some(element),
                _ => None,
            },
            _ => None,
        }
    }
}
