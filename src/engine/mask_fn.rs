//! The `last4` and `first4` masks as single functions, `mask_last4(text)` and `mask_first4(text)`:
//! every character but the last (first) four becomes `*`, NULL stays NULL.
//!
//! Written as SQL (`concat(repeat('*', greatest(character_length(c) - 4, 0)), right(c, 4))`) a
//! mask is a dozen expression nodes that the planner hashes and compares on every statement
//! (equivalence properties, projection pushdown); one function node keeps a masked column about
//! as cheap to plan as an unmasked one. Over upstream tables the functions unparse to that same
//! PostgreSQL expression (see `engine::dialect`), so masks still push down.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, LargeStringBuilder, StringBuilder, StringViewBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility};

/// Which end of the value stays readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keep {
    Last4,
    First4,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MaskFn {
    keep: Keep,
    signature: Signature,
}

impl MaskFn {
    pub fn new(keep: Keep) -> Self {
        let sigs = [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View]
            .into_iter()
            .map(|t| TypeSignature::Exact(vec![t]))
            .collect();
        MaskFn { keep, signature: Signature::one_of(sigs, Volatility::Immutable) }
    }

    pub fn sql_name(keep: Keep) -> &'static str {
        match keep {
            Keep::Last4 => "mask_last4",
            Keep::First4 => "mask_first4",
        }
    }

    /// The same mask as a PostgreSQL expression over `col` (SQL text), for push-down.
    pub fn postgres_sql(name: &str, col: &str) -> Option<String> {
        let stars = format!("repeat('*', greatest(char_length({col}) - 4, 0))");
        match name {
            "mask_last4" => Some(format!("({stars} || right({col}, 4))")),
            "mask_first4" => Some(format!("(left({col}, 4) || {stars})")),
            _ => None,
        }
    }
}

/// One masked value.
fn mask(keep: Keep, s: &str) -> String {
    let n = s.chars().count();
    let hidden = n.saturating_sub(4);
    let mut out = String::with_capacity(s.len());
    match keep {
        Keep::Last4 => {
            out.extend(std::iter::repeat_n('*', hidden));
            out.extend(s.chars().skip(hidden));
        }
        Keep::First4 => {
            out.extend(s.chars().take(4));
            out.extend(std::iter::repeat_n('*', hidden));
        }
    }
    out
}

impl ScalarUDFImpl for MaskFn {
    fn name(&self) -> &str {
        Self::sql_name(self.keep)
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Utf8))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else { return exec_err!("{} takes one argument", self.name()) };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let array = arg.to_array(1)?;
        let keep = self.keep;
        let out: ArrayRef = match array.data_type() {
            DataType::Utf8 => {
                let mut b = StringBuilder::with_capacity(array.len(), 16 * array.len());
                array.as_string::<i32>().iter().for_each(|v| b.append_option(v.map(|s| mask(keep, s))));
                Arc::new(b.finish())
            }
            DataType::LargeUtf8 => {
                let mut b = LargeStringBuilder::with_capacity(array.len(), 16 * array.len());
                array.as_string::<i64>().iter().for_each(|v| b.append_option(v.map(|s| mask(keep, s))));
                Arc::new(b.finish())
            }
            DataType::Utf8View => {
                let mut b = StringViewBuilder::with_capacity(array.len());
                array.as_string_view().iter().for_each(|v| b.append_option(v.map(|s| mask(keep, s))));
                Arc::new(b.finish())
            }
            other => return exec_err!("{} does not apply to {other}", self.name()),
        };
        if scalar {
            Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_four_characters() {
        assert_eq!(mask(Keep::Last4, "25-989-741-2988"), "***********2988");
        assert_eq!(mask(Keep::First4, "25-989-741-2988"), "25-9***********");
        assert_eq!(mask(Keep::Last4, "abc"), "abc");
        assert_eq!(mask(Keep::Last4, "ñandú-1234"), "******1234");
    }
}
