//! `information_schema._pg_expandarray(anyarray)`: PostgreSQL's set-returning function of the
//! records `(x, n)`, each element with its subscript; pgjdbc's getPrimaryKeys, getIndexInfo and
//! getBestRowIdentifier number key columns with it. Here it returns the list of those records
//! for a row; in a select list compat/srf_select.rs unnests it, so it yields one row per
//! element as in PostgreSQL, and `(… ).x` / `(… ).n` read the record's fields.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, ListArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ExpandArray {
    signature: Signature,
}

impl Default for ExpandArray {
    fn default() -> ExpandArray {
        ExpandArray { signature: Signature::any(1, Volatility::Immutable) }
    }
}

fn record(element: &DataType) -> Fields {
    Fields::from(vec![Field::new("x", element.clone(), true), Field::new("n", DataType::Int32, false)])
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        "_pg_expandarray"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [DataType::List(f)] => Ok(DataType::List(Arc::new(Field::new("item", DataType::Struct(record(f.data_type())), true)))),
            other => exec_err!("_pg_expandarray takes an array, not {other:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else { return exec_err!("_pg_expandarray takes one argument") };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let a: ArrayRef = arg.to_array(if scalar { 1 } else { args.number_rows })?;
        let Some(lists) = a.as_list_opt::<i32>() else { return exec_err!("_pg_expandarray takes an array") };
        // The records share the input's offsets and elements; n counts from 1 within each list.
        let offsets = lists.offsets();
        let mut n = Vec::with_capacity(lists.values().len());
        for w in offsets.windows(2) {
            n.extend(1..=(w[1] - w[0]));
        }
        let values = lists.values().slice(offsets[0] as usize, n.len());
        let element = values.data_type().clone();
        let records = StructArray::try_new(record(&element), vec![values, Arc::new(Int32Array::from(n))], None)?;
        let item = Arc::new(Field::new("item", DataType::Struct(record(&element)), true));
        let rebased: Vec<i32> = offsets.iter().map(|o| o - offsets[0]).collect();
        let out = ListArray::try_new(
            item,
            datafusion::arrow::buffer::OffsetBuffer::new(rebased.into()),
            Arc::new(records),
            lists.nulls().cloned(),
        )?;
        let out: ArrayRef = Arc::new(out);
        if scalar {
            Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}
