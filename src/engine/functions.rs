//! PostgreSQL functions clients call that DataFusion lacks: version(), current_setting(),
//! set_config(), obj_description(), col_description(), current_user and friends.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Int32Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;
use parking_lot::RwLock;

use super::pg_descriptions::{lookup, DescriptionMap};
use crate::settings::Settings;

/// The version string drivers parse (SQLAlchemy, JDBC, Npgsql read the "PostgreSQL 16.x" prefix).
pub fn version_string() -> String {
    format!(
        "PostgreSQL 16.6 (lalo {}) on x86_64-pc-linux-gnu, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION")
    )
}

/// The server_version parameter reported at startup and by SHOW.
pub const SERVER_VERSION: &str = "16.6";

type Body = dyn Fn(&[ColumnarValue], usize) -> Result<ColumnarValue> + Send + Sync;

/// A scalar function defined by a closure; lalo's functions are small and text-valued.
struct ClosureUdf {
    name: String,
    signature: Signature,
    ret: DataType,
    body: Arc<Body>,
}

impl std::fmt::Debug for ClosureUdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)
    }
}

impl PartialEq for ClosureUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.body, &other.body)
    }
}
impl Eq for ClosureUdf {}
impl std::hash::Hash for ClosureUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for ClosureUdf {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.ret.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        (self.body)(&args.args, args.number_rows)
    }
}

fn udf(name: &str, signature: Signature, ret: DataType, body: Arc<Body>) -> ScalarUDF {
    ScalarUDF::new_from_impl(ClosureUdf { name: name.to_string(), signature, ret, body })
}

fn text(v: Option<String>) -> ColumnarValue {
    ColumnarValue::Scalar(ScalarValue::Utf8(v))
}

/// Apply `f` row by row to text arguments, producing a text column.
fn map_text(args: &[ColumnarValue], rows: usize, mut f: impl FnMut(&[Option<String>]) -> Option<String>) -> Result<ColumnarValue> {
    let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let arrays: Vec<ArrayRef> = args
        .iter()
        .map(|a| a.to_array(if all_scalar { 1 } else { rows }))
        .collect::<Result<_>>()?;
    let n = if all_scalar { 1 } else { rows };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let vals: Vec<Option<String>> = arrays.iter().map(|a| cell_text(a, i)).collect();
        out.push(f(&vals));
    }
    let arr = StringArray::from(out);
    if all_scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&arr, 0)?))
    } else {
        Ok(ColumnarValue::Array(Arc::new(arr)))
    }
}

fn cell_text(a: &ArrayRef, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::Int32 => Some(a.as_primitive::<Int32Type>().value(i).to_string()),
        DataType::Int64 => Some(a.as_primitive::<Int64Type>().value(i).to_string()),
        DataType::Boolean => Some(a.as_boolean().value(i).to_string()),
        _ => ScalarValue::try_from_array(a, i).ok().map(|v| match v {
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => s,
            other => other.to_string(),
        }),
    }
}

/// PostgreSQL's pg_size_pretty: bytes, kB, MB, GB, TB with integer rounding.
fn size_pretty(bytes: f64) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes;
    let mut i = 0;
    while v.abs() >= 10.0 * 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{} {}", v.round() as i64, units[i])
}

/// Functions that are the same for every session.
pub fn register_static(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(super::pg_date_trunc::PgDateTrunc::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(super::pg_date_part::PgDatePart::date_part()));
    ctx.register_udf(ScalarUDF::new_from_impl(super::pg_date_part::PgDatePart::extract()));
    ctx.register_udf(ScalarUDF::new_from_impl(super::pg_trunc::PgTrunc::default()));
    // PostgreSQL's `variance` is `var_samp` (computed as PostgreSQL does by engine/pg_numeric).
    ctx.register_udaf(datafusion::functions_aggregate::variance::var_samp_udaf().as_ref().clone().with_aliases(["variance"]));
    // Over the session's own generate_series (the catalog's wrapper widens int4 arguments).
    if let Ok(series) = ctx.table_function("generate_series") {
        ctx.register_udtf("generate_series", Arc::new(super::pg_series::PgSeries::new(series.function().clone())));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(super::pg_age::PgAge::new()));
    for f in super::pg_int4::Int4Result::all() {
        ctx.register_udf(ScalarUDF::new_from_impl(f));
    }
    for keep in [super::mask_fn::Keep::Last4, super::mask_fn::Keep::First4] {
        ctx.register_udf(ScalarUDF::new_from_impl(super::mask_fn::MaskFn::new(keep)));
    }
    ctx.register_udf(udf(
        "version",
        Signature::exact(vec![], Volatility::Stable),
        DataType::Utf8,
        Arc::new(|_, _| Ok(text(Some(version_string())))),
    ));
    // Session-level advisory locks do not exist in lalo; releasing them all succeeds (asyncpg's pool reset).
    ctx.register_udf(udf(
        "pg_advisory_unlock_all",
        Signature::exact(vec![], Volatility::Volatile),
        DataType::Utf8,
        Arc::new(|_, _| Ok(text(Some(String::new())))),
    ));
    // Type lookups by name (SQLAlchemy's psycopg dialect probes for hstore): lalo has no extension types.
    ctx.register_udf(udf(
        "to_regtype",
        Signature::any(1, Volatility::Stable),
        DataType::Int32,
        Arc::new(|_, _| Ok(ColumnarValue::Scalar(ScalarValue::Int32(None)))),
    ));
    // Nothing is updatable through lalo, which is read-only (Npgsql's column schema probe).
    ctx.register_udf(udf(
        "pg_column_is_updatable",
        Signature::any(3, Volatility::Stable),
        DataType::Boolean,
        Arc::new(|_, _| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(false))))),
    ));
    // lalo's tables have no serial columns; every collation is visible.
    ctx.register_udf(udf(
        "pg_get_serial_sequence",
        Signature::any(2, Volatility::Stable),
        DataType::Utf8,
        Arc::new(|_, _| Ok(text(None))),
    ));
    // Collations, types and functions all live in pg_catalog, which is always on the search
    // path; every function lalo lists may be called (governance judges what it reads).
    for (name, args) in [("pg_collation_is_visible", 1), ("pg_type_is_visible", 1), ("pg_function_is_visible", 1), ("has_function_privilege", 2)] {
        ctx.register_udf(udf(
            name,
            Signature::one_of(vec![TypeSignature::Any(args), TypeSignature::Any(args + 1)], Volatility::Stable),
            DataType::Boolean,
            Arc::new(|_, _| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
        ));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(super::pg_expandarray::ExpandArray::default()));
    for build in [super::pg_json::Build::Object, super::pg_json::Build::Array] {
        ctx.register_udf(ScalarUDF::new_from_impl(super::pg_json::JsonBuild::new(build)));
    }
    // Sizes on disk are not meaningful for lalo's tables; clients only display them.
    for name in ["pg_table_size", "pg_indexes_size"] {
        ctx.register_udf(udf(
            name,
            Signature::any(1, Volatility::Stable),
            DataType::Int64,
            Arc::new(|_, _| Ok(ColumnarValue::Scalar(ScalarValue::Int64(Some(0))))),
        ));
    }
    ctx.register_udf(udf(
        "pg_size_pretty",
        Signature::any(1, Volatility::Immutable),
        DataType::Utf8,
        Arc::new(|args, rows| map_text(args, rows, |v| v[0].as_deref().and_then(|s| s.parse::<f64>().ok()).map(size_pretty))),
    ));
    ctx.register_udf(udf(
        "shobj_description",
        Signature::any(2, Volatility::Stable),
        DataType::Utf8,
        Arc::new(|_, _| Ok(text(None))),
    ));
}

/// Functions bound to one session: its database, user, settings and description map.
pub fn register_session(
    ctx: &SessionContext,
    db: &str,
    user: &str,
    settings: Arc<RwLock<Settings>>,
    descriptions: DescriptionMap,
) {
    for name in ["current_user", "session_user", "user", "current_role"] {
        let u = user.to_string();
        ctx.register_udf(udf(
            name,
            Signature::exact(vec![], Volatility::Stable),
            DataType::Utf8,
            Arc::new(move |_, _| Ok(text(Some(u.clone())))),
        ));
    }
    let d = db.to_string();
    ctx.register_udf(udf(
        "current_database",
        Signature::exact(vec![], Volatility::Stable),
        DataType::Utf8,
        Arc::new(move |_, _| Ok(text(Some(d.clone())))),
    ));
    let s = settings.clone();
    ctx.register_udf(udf(
        "current_setting",
        Signature::one_of(
            vec![TypeSignature::Exact(vec![DataType::Utf8]), TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean])],
            Volatility::Stable,
        ),
        DataType::Utf8,
        Arc::new(move |args, rows| {
            let s = s.clone();
            let missing_ok = args.len() > 1;
            let res = map_text(args, rows, |v| {
                v[0].as_deref().and_then(|name| s.read().get(name))
            })?;
            if !missing_ok {
                if let ColumnarValue::Scalar(ScalarValue::Utf8(None)) = &res {
                    if let ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))) = &args[0] {
                        // 42704, as PostgreSQL answers for a setting it does not know.
                        return Err(datafusion::error::DataFusionError::External(Box::new(
                            crate::error::LaloError::UnknownSetting(name.clone()),
                        )));
                    }
                }
            }
            Ok(res)
        }),
    ));
    let s = settings;
    ctx.register_udf(udf(
        "set_config",
        Signature::exact(vec![DataType::Utf8, DataType::Utf8, DataType::Boolean], Volatility::Volatile),
        DataType::Utf8,
        Arc::new(move |args, rows| {
            let mut err = None;
            let out = map_text(args, rows, |v| {
                let (Some(name), Some(value)) = (v[0].as_deref(), v[1].as_deref()) else { return None };
                match s.write().set(name, value) {
                    Ok(()) => Some(value.to_string()),
                    Err(e) => {
                        err = Some(e);
                        None
                    }
                }
            })?;
            match err {
                Some(e) => Err(e.into()),
                None => Ok(out),
            }
        }),
    ));
    let m = descriptions.clone();
    ctx.register_udf(udf(
        "obj_description",
        Signature::one_of(
            vec![TypeSignature::Any(1), TypeSignature::Any(2)],
            Volatility::Stable,
        ),
        DataType::Utf8,
        Arc::new(move |args, rows| {
            map_text(&args[..1], rows, |v| v[0].as_deref().and_then(|o| o.parse().ok()).and_then(|o| lookup(&m, o, 0)))
        }),
    ));
    let m = descriptions;
    ctx.register_udf(udf(
        "col_description",
        Signature::any(2, Volatility::Stable),
        DataType::Utf8,
        Arc::new(move |args, rows| {
            map_text(args, rows, |v| {
                let oid = v[0].as_deref()?.parse().ok()?;
                let sub = v[1].as_deref()?.parse().ok()?;
                lookup(&m, oid, sub)
            })
        }),
    ));
}
