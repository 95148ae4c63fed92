//! eKuiper's window function `row_number() [OVER ([PARTITION BY e, …] [ORDER
//! BY e [DESC], …])]`: a whole SELECT item that numbers the rows (or groups)
//! of a window's result from 1, before the rule's ORDER BY. With `PARTITION
//! BY`, the result is regrouped by partition (partitions in the order of
//! their keys) and numbered within each; with `ORDER BY`, sorted first. Per
//! event, it is 1.

use std::sync::Arc;

use oort_sql::SqlError;
use oort_sql::sqlparser::ast::{Function as SqlFunction, FunctionArguments, OrderByExpr, OrderBySort, WindowType};

use super::compile::{Compiler, position, unsupported};
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
    /// `ORDER BY`, each ascending or not.
    pub order: Vec<(Expr, bool)>,
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
        .map(|o| {
            let ascending = !matches!(o.options.sort, Some(OrderBySort::Desc));
            Ok((compiler.select_item(index, &o.expr)?, ascending))
        })
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
            let within = ka[split..].iter().zip(&kb[split..]).zip(&self.order).map(|((x, y), (_, asc))| {
                let o = super::ops::order(x, y);
                if *asc { o } else { o.reverse() }
            });
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
