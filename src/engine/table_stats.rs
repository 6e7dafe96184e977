//! Column statistics of a table held in memory (`memory_cache.rs`), computed once when it is
//! loaded: each column's least and greatest value and its approximate number of distinct values.
//! DataFusion's memory scan reports row and null counts only. Without the rest its planner
//! cannot size a join on a key or a grouping by one, and a join can end up building its hash
//! table from the large side (TPC-H Q18 built the 6 M-row join of three tables and probed it
//! with the 57 orders that qualify). All figures are inexact: they only steer plans, and no rule
//! answers a query from them (an insert into the table leaves them behind, harmlessly).

use std::sync::Arc;

use datafusion::arrow::array::{Array, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};
use datafusion::functions_aggregate::expr_fn::{approx_distinct, max, min};
use datafusion::logical_expr::{cast, ident, Expr};
use datafusion::prelude::SessionContext;

use crate::error::LaloError;

/// Types whose values DataFusion orders (min/max and range estimates).
fn ordered(t: &DataType) -> bool {
    use DataType::*;
    t.is_numeric()
        || matches!(
            t,
            Boolean | Utf8 | LargeUtf8 | Utf8View | Date32 | Date64 | Time32(_) | Time64(_) | Timestamp(_, _) | Binary | LargeBinary
        )
}

/// The expression whose approximate distinct count is the column's: DataFusion's HyperLogLog
/// takes integers, dates, times, strings and bytes; decimals, floats and booleans are counted by
/// their text, which is distinct exactly when the values are.
fn countable(column: Expr, t: &DataType) -> Option<Expr> {
    use DataType::*;
    match t {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Date32 | Date64 | Time32(_) | Time64(_)
        | Timestamp(_, _) | Utf8 | LargeUtf8 | Utf8View | Binary | LargeBinary => Some(column),
        Decimal32(_, _) | Decimal64(_, _) | Decimal128(_, _) | Decimal256(_, _) | Float16 | Float32 | Float64 | Boolean => {
            Some(cast(column, Utf8))
        }
        _ => None,
    }
}

/// The whole table's statistics, as DataFusion's memory scan computes them on every call (row
/// and null counts, a walk over every batch and column) plus each column's bytes and the
/// `columns` from [`compute`]: computed once, as planning asks for them once per operator above
/// the scan (a fifth of the planning time of an eight-table join).
pub fn whole(partitions: &[Vec<RecordBatch>], schema: &Schema, columns: Vec<ColumnStatistics>) -> Statistics {
    let mut stats = datafusion::physical_plan::common::compute_record_batch_statistics(partitions, schema, None);
    for (at, (s, ours)) in stats.column_statistics.iter_mut().zip(columns).enumerate() {
        s.min_value = ours.min_value;
        s.max_value = ours.max_value;
        s.distinct_count = ours.distinct_count;
        let bytes = partitions.iter().flatten().map(|b| b.column(at).get_array_memory_size()).sum();
        s.byte_size = Precision::Exact(bytes);
    }
    stats
}

/// One aggregate query over `table` for every column's min, max and distinct count; a column
/// of another type keeps unknown statistics. In the table's column order.
pub async fn compute(ctx: &SessionContext, table: Arc<dyn TableProvider>) -> Result<Vec<ColumnStatistics>, LaloError> {
    let schema = table.schema();
    let mut exprs = Vec::new();
    // Per column: where its min, max and distinct count are in the result row.
    let mut slots: Vec<(Option<usize>, Option<usize>, Option<usize>)> = Vec::new();
    for field in schema.fields() {
        let column = ident(field.name());
        let t = field.data_type();
        let mut slot = (None, None, None);
        if ordered(t) {
            slot.0 = Some(exprs.len());
            exprs.push(min(column.clone()).alias(format!("s{}", exprs.len())));
            slot.1 = Some(exprs.len());
            exprs.push(max(column.clone()).alias(format!("s{}", exprs.len())));
        }
        if let Some(counted) = countable(column, t) {
            slot.2 = Some(exprs.len());
            exprs.push(approx_distinct(counted).alias(format!("s{}", exprs.len())));
        }
        slots.push(slot);
    }
    let unknown = || schema.fields().iter().map(|_| ColumnStatistics::new_unknown()).collect();
    if exprs.is_empty() {
        return Ok(unknown());
    }
    let batches = ctx.read_table(table)?.aggregate(vec![], exprs)?.collect().await?;
    let Some(row) = batches.iter().find(|b| b.num_rows() > 0) else { return Ok(unknown()) };
    let value = |at: Option<usize>| -> Precision<ScalarValue> {
        at.and_then(|i| ScalarValue::try_from_array(row.column(i), 0).ok())
            .filter(|v| !v.is_null())
            .map_or(Precision::Absent, Precision::Inexact)
    };
    Ok(slots
        .into_iter()
        .map(|(lo, hi, ndv)| {
            let mut s = ColumnStatistics::new_unknown();
            s.min_value = value(lo);
            s.max_value = value(hi);
            s.distinct_count = ndv
                .and_then(|i| row.column(i).as_any().downcast_ref::<UInt64Array>().filter(|a| a.is_valid(0)).map(|a| a.value(0)))
                .filter(|n| *n > 0)
                .map_or(Precision::Absent, |n| Precision::Inexact(n as usize));
            s
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Decimal128Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::catalog::MemTable;

    #[tokio::test]
    async fn min_max_and_distinct_counts_per_column() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("Name", DataType::Utf8, true),
            Field::new("price", DataType::Decimal128(15, 2), true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(1..=1000)),
                Arc::new(StringArray::from_iter((1..=1000).map(|i| (i % 10 != 0).then(|| format!("n{}", i % 7))))),
                Arc::new(Decimal128Array::from_iter(std::iter::repeat_n(None::<i128>, 1000)).with_precision_and_scale(15, 2).unwrap()),
            ],
        )
        .unwrap();
        let table = Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap());
        let stats = compute(&SessionContext::new(), table).await.unwrap();
        assert_eq!(stats[0].min_value, Precision::Inexact(ScalarValue::Int64(Some(1))));
        assert_eq!(stats[0].max_value, Precision::Inexact(ScalarValue::Int64(Some(1000))));
        let keys = *stats[0].distinct_count.get_value().unwrap();
        assert!((950..=1050).contains(&keys), "{keys}");
        // A mixed-case name is read as written; nulls are not a value.
        assert_eq!(stats[1].distinct_count, Precision::Inexact(7));
        assert_eq!(stats[1].min_value, Precision::Inexact(ScalarValue::Utf8(Some("n0".into()))));
        // A column of nulls only has no range and no count.
        assert_eq!(stats[2].min_value, Precision::Absent);
        assert_eq!(stats[2].distinct_count, Precision::Absent);
    }
}
