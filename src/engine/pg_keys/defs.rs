//! `pg_get_constraintdef(oid [, pretty])` and `pg_get_indexdef(oid [, column, pretty])` for
//! the keys lalo's pg_constraint and pg_index list (the library has an empty-string version
//! of the first and none of the second); SQLAlchemy reads foreign keys from the first, psql's
//! `\d` and SQLAlchemy's index reflection call the second.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;
use parking_lot::RwLock;

/// The definitions of one session's keys, refreshed whenever its pg_constraint or pg_index is
/// scanned (which a query naming their OIDs has done before it calls the functions).
pub type Defs = Arc<RwLock<DefMaps>>;

/// Constraint OID → definition; index OID → (definition, key column names).
#[derive(Debug, Default)]
pub struct DefMaps {
    pub constraints: HashMap<i32, String>,
    pub indexes: HashMap<i32, (String, Vec<String>)>,
}

#[derive(Debug)]
struct ConstraintDef {
    signature: Signature,
    defs: Defs,
    /// `pg_get_indexdef` (else `pg_get_constraintdef`).
    index: bool,
}

impl PartialEq for ConstraintDef {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index && Arc::ptr_eq(&self.defs, &other.defs)
    }
}
impl Eq for ConstraintDef {}
impl std::hash::Hash for ConstraintDef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}

impl ScalarUDFImpl for ConstraintDef {
    fn name(&self) -> &str {
        if self.index { "pg_get_indexdef" } else { "pg_get_constraintdef" }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let oids = args.args[0].to_array(if scalar { 1 } else { args.number_rows })?;
        let oids = datafusion::arrow::compute::cast(&oids, &DataType::Int64)?;
        let oids = oids.as_primitive::<Int64Type>();
        // pg_get_indexdef's column number: 0 (or none) for the whole definition.
        let column = match args.args.get(1).filter(|_| self.index) {
            Some(c) => {
                let c = datafusion::arrow::compute::cast(&c.to_array(oids.len())?, &DataType::Int64)?;
                Some(c.as_primitive::<Int64Type>().clone())
            }
            None => None,
        };
        let defs = self.defs.read();
        let out: StringArray = (0..oids.len())
            .map(|i| {
                if oids.is_null(i) {
                    return None;
                }
                let oid = i32::try_from(oids.value(i)).ok()?;
                if !self.index {
                    return defs.constraints.get(&oid).cloned();
                }
                let (def, columns) = defs.indexes.get(&oid)?;
                match column.as_ref().map(|c| if c.is_null(i) { 0 } else { c.value(i) }) {
                    None | Some(0) => Some(def.clone()),
                    Some(n) => usize::try_from(n - 1).ok().and_then(|n| columns.get(n).cloned()),
                }
            })
            .collect();
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Register the session's `pg_get_constraintdef` and `pg_get_indexdef` over `defs`.
pub fn register(ctx: &SessionContext, defs: Defs) {
    for index in [false, true] {
        let mut arities = vec![TypeSignature::Any(1), TypeSignature::Any(2)];
        if index {
            arities.push(TypeSignature::Any(3));
        }
        let signature = Signature::one_of(arities, Volatility::Stable);
        ctx.register_udf(ScalarUDF::new_from_impl(ConstraintDef { signature, defs: defs.clone(), index }));
    }
}
