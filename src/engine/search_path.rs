//! `current_schemas(include_implicit)` and `current_schema()` as PostgreSQL answers them: the
//! session's `search_path`, `"$user"` read as the user's name, without schemas the database
//! does not have; with the implicit schemas, `pg_catalog` first unless the path names it.
//! (datafusion-pg-catalog answers a fixed `{public, information_schema, pg_catalog}`.)

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, ListArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::catalog::CatalogProviderList;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;
use parking_lot::RwLock;

use crate::settings::Settings;

/// The schemas of `search_path` that database `db` has, in order.
fn effective(path: &str, user: &str, catalogs: &dyn CatalogProviderList, db: &str) -> Vec<String> {
    let have = catalogs.catalog(db).map(|c| c.schema_names()).unwrap_or_default();
    path.split(',')
        .map(|p| {
            let p = p.trim();
            match p.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
                Some("$user") => user.to_string(),
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => p.to_ascii_lowercase(),
            }
        })
        .filter(|s| !s.is_empty() && have.iter().any(|h| h == s))
        .fold(Vec::new(), |mut v, s| {
            if !v.contains(&s) {
                v.push(s);
            }
            v
        })
}

#[derive(Debug)]
struct SearchPath {
    name: &'static str,
    signature: Signature,
    user: String,
    db: String,
    settings: Arc<RwLock<Settings>>,
    catalogs: Arc<dyn CatalogProviderList>,
}

impl PartialEq for SearchPath {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.user == other.user && self.db == other.db && Arc::ptr_eq(&self.settings, &other.settings)
    }
}
impl Eq for SearchPath {}
impl std::hash::Hash for SearchPath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.db.hash(state);
    }
}

impl ScalarUDFImpl for SearchPath {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.name {
            "current_schemas" => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let path = self.settings.read().get("search_path").unwrap_or_default();
        let mut schemas = effective(&path, &self.user, self.catalogs.as_ref(), &self.db);
        if self.name == "current_schema" {
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(schemas.into_iter().next())));
        }
        let implicit = match args.args.first() {
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(b))) => b.unwrap_or(false),
            _ => false,
        };
        if implicit && !schemas.iter().any(|s| s == "pg_catalog") {
            schemas.insert(0, "pg_catalog".to_string());
        }
        let values: ArrayRef = Arc::new(StringArray::from(schemas));
        let list = ListArray::new(
            Arc::new(Field::new("item", DataType::Utf8, true)),
            datafusion::arrow::buffer::OffsetBuffer::from_lengths([values.len()]),
            values,
            None,
        );
        Ok(ColumnarValue::Scalar(ScalarValue::List(Arc::new(list))))
    }
}

/// Register both functions for one session; `catalogs` has every schema of every database (a
/// schema exists whether or not the caller may read a table in it, as in PostgreSQL).
pub fn register(ctx: &SessionContext, catalogs: Arc<dyn CatalogProviderList>, db: &str, user: &str, settings: Arc<RwLock<Settings>>) {
    for (name, signature) in [
        ("current_schemas", Signature::exact(vec![DataType::Boolean], Volatility::Stable)),
        ("current_schema", Signature::exact(vec![], Volatility::Stable)),
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(SearchPath {
            name,
            signature,
            user: user.to_string(),
            db: db.to_string(),
            settings: settings.clone(),
            catalogs: catalogs.clone(),
        }));
    }
}
