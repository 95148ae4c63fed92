//! eKuiper's window function `row_number() [OVER ([PARTITION BY e, …] [ORDER
//! BY e [DESC] [NULLS FIRST | LAST], …])]`: a whole SELECT item that numbers the rows (or groups)
//! of a window's result from 1, before the rule's ORDER BY. With `PARTITION
//! BY`, the result is regrouped by partition (partitions in the order of
//! their keys) and numbered within each; with `ORDER BY`, sorted first. Per
//! event, it is 1.

use std::sync::Arc;

use oort_sql::SqlError;
use oort_sql::sqlparser::ast::{Function as SqlFunction, FunctionArguments, OrderByExpr, WindowType};

use super::compile::{Compiler, position, unsupported};
use super::ops::SortOrder;
use super::tree::Expr;
use crate::value::Value;

/// The function's name in SQL.
pub(crate) const NAME: &str = "row_number";

/// A `row_number()` SELECT item, compiled.
#[derive(Debug, Clone)]
pub struct RowNumber {
    /// Its output column.
    pub column: Arc<str>,
    /// `PARTITION BY`.
    pub partition: Vec<Expr>,
    /// `ORDER BY`, each with its direction: NULLs first when ascending, last
    /// when descending, unless `NULLS FIRST` or `NULLS LAST` says otherwise.
    pub order: Vec<(Expr, SortOrder)>,
}

/// Compiles `row_number() OVER (...)`, SELECT item `index` named `column`.
pub(super) fn compile(
    compiler: &mut Compiler<'_>,
    index: usize,
    function: &SqlFunction,
    column: Arc<str>,
) -> Result<RowNumber, SqlError> {
    let at = position(function);
    if !matches!(&function.args, FunctionArguments::List(list) if list.args.is_empty())
        && !matches!(function.args, FunctionArguments::None)
    {
        return Err(SqlError::semantic("function row_number takes 0 argument(s)", at));
    }
    let (partition, order): (&[_], &[OrderByExpr]) = match &function.over {
        None => (&[], &[]),
        Some(WindowType::WindowSpec(spec)) if spec.window_name.is_none() && spec.window_frame.is_none() => {
            (&spec.partition_by, &spec.order_by)
        }
        Some(_) => return Err(unsupported("OVER with anything but PARTITION BY and ORDER BY (in row_number)", at)),
    };
    let partition = partition.iter().map(|e| compiler.select_item(index, e)).collect::<Result<_, _>>()?;
    let order = order
        .iter()
        .map(|o| Ok((compiler.select_item(index, &o.expr)?, SortOrder::of(&o.options, |ascending| ascending))))
        .collect::<Result<_, SqlError>>()?;
    Ok(RowNumber { column, partition, order })
}

impl RowNumber {
    /// The expressions it evaluates per row or group: the partition's, then the order's.
    pub fn keys(&self) -> impl Iterator<Item = &Expr> {
        self.partition.iter().chain(self.order.iter().map(|(e, _)| e))
    }

    /// The order of a window's units and each one's number, from their
    /// [`keys`](Self::keys): `(index of the unit, its number)`, in the new order.
    pub fn number(&self, keys: &[Vec<Value>]) -> Vec<(usize, i64)> {
        let split = self.partition.len();
        let mut order: Vec<usize> = (0..keys.len()).collect();
        // Stable: rows equal in every key keep the window's order.
        order.sort_by(|&a, &b| {
            let (ka, kb) = (&keys[a], &keys[b]);
            let partition = ka[..split].iter().zip(&kb[..split]).map(|(x, y)| super::ops::order(x, y));
            let within =
                ka[split..].iter().zip(&kb[split..]).zip(&self.order).map(|((x, y), (_, order))| order.compare(x, y));
            partition.chain(within).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut numbered = Vec::with_capacity(order.len());
        let mut number = 0;
        for (i, &unit) in order.iter().enumerate() {
            let new_partition = i == 0 || keys[unit][..split] != keys[order[i - 1]][..split];
            number = if new_partition { 1 } else { number + 1 };
            numbered.push((unit, number));
        }
        numbered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The units' order when numbered by one ORDER BY key in `order`.
    fn numbered(keys: &[Option<i64>], order: &str) -> Vec<Option<i64>> {
        let sql = format!("SELECT a FROM s ORDER BY a {order}");
        let query = oort_sql::parse_rule_sql(&sql).unwrap();
        let order = SortOrder::of(&query.order_by[0].options, |ascending| ascending);
        let numbering =
            RowNumber { column: "n".into(), partition: vec![], order: vec![(Expr::Literal(Value::Null), order)] };
        let keys: Vec<Vec<Value>> = keys.iter().map(|k| vec![k.map_or(Value::Null, Value::Int)]).collect();
        numbering.number(&keys).into_iter().map(|(unit, _)| keys[unit][0].as_i64()).collect()
    }

    #[test]
    fn nulls_come_first_ascending_and_last_descending_unless_the_order_says_where() {
        let keys = [Some(2), None, Some(1)];
        assert_eq!(numbered(&keys, ""), [None, Some(1), Some(2)]);
        assert_eq!(numbered(&keys, "DESC"), [Some(2), Some(1), None]);
        assert_eq!(numbered(&keys, "NULLS LAST"), [Some(1), Some(2), None]);
        assert_eq!(numbered(&keys, "DESC NULLS FIRST"), [None, Some(2), Some(1)]);
    }
}
