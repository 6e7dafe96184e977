//! VARCHAR as PostgreSQL describes it. Arrow has one string type for `text` and `varchar`, so
//! lalo marks string fields declared VARCHAR with `pg.type = varchar` metadata and describes
//! them as `varchar` (OID 1043) on the wire, as PostgreSQL does for a varchar column or a
//! `CAST(x AS VARCHAR)`; JDBC's `getColumnTypeName` and ORMs read that name.
//!
//! Two sources of the mark: a table provider whose schema carries it (a declared column flows
//! through projections with its field metadata), and casts. DataFusion keeps a cast's target
//! field (with the metadata [`VarcharTypePlanner`] puts there) inside the `Cast` expression
//! but derives the output field from the cast's input, so [`tag_casts`] copies the mark onto
//! the result columns after planning.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::metadata::FieldMetadata;
use datafusion::common::Result;
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection};
use datafusion::sql::sqlparser::ast::DataType as SqlType;
use pgwire::api::results::FieldInfo;
use pgwire::api::Type;

use super::PG_TYPE_KEY;

const VARCHAR: &str = "varchar";

/// The metadata marking a string field as PostgreSQL varchar.
pub fn varchar_metadata() -> HashMap<String, String> {
    HashMap::from([(PG_TYPE_KEY.to_string(), VARCHAR.to_string())])
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

/// Plans `VARCHAR`, `VARCHAR(n)` and `CHARACTER VARYING[(n)]` as a string field marked
/// varchar; every other type goes to the planner it wraps (datafusion-pg-catalog's, which
/// knows the oid aliases).
#[derive(Debug)]
pub struct VarcharTypePlanner {
    inner: Option<Arc<dyn TypePlanner>>,
    /// The session maps SQL string types to Utf8View (`map_string_types_to_utf8view`).
    view: bool,
}

impl VarcharTypePlanner {
    pub fn new(inner: Option<Arc<dyn TypePlanner>>, view: bool) -> Self {
        VarcharTypePlanner { inner, view }
    }
}

impl TypePlanner for VarcharTypePlanner {
    fn plan_type_field(&self, sql_type: &SqlType) -> Result<Option<FieldRef>> {
        match sql_type {
            SqlType::Varchar(_) | SqlType::CharacterVarying(_) | SqlType::CharVarying(_) => {
                let t = if self.view { DataType::Utf8View } else { DataType::Utf8 };
                Ok(Some(Arc::new(Field::new("", t, true).with_metadata(varchar_metadata()))))
            }
            _ => match &self.inner {
                Some(inner) => inner.plan_type_field(sql_type),
                None => Ok(None),
            },
        }
    }
}

/// The varchar mark of a result expression that is (an alias of) a cast to VARCHAR.
fn cast_mark(e: &Expr) -> Option<FieldMetadata> {
    match e {
        Expr::Alias(a) => cast_mark(&a.expr),
        Expr::Cast(c) => marked(&c.field),
        Expr::TryCast(c) => marked(&c.field),
        _ => None,
    }
}

fn marked(f: &Field) -> Option<FieldMetadata> {
    (is_string(f.data_type()) && f.metadata().get(PG_TYPE_KEY).is_some_and(|v| v == VARCHAR))
        .then(|| FieldMetadata::from(varchar_metadata()))
}

/// Mark the result columns of `plan` that are casts to VARCHAR. Looks through the nodes that
/// pass their input's columns on unchanged (ORDER BY, LIMIT, DISTINCT) to the projection.
pub fn tag_casts(plan: LogicalPlan) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Projection(p) if p.expr.iter().any(|e| cast_mark(e).is_some()) => {
            let mut exprs = Vec::with_capacity(p.expr.len());
            for e in p.expr {
                exprs.push(match cast_mark(&e) {
                    Some(md) => match e {
                        Expr::Alias(mut a) => {
                            a.metadata = Some(md);
                            Expr::Alias(a)
                        }
                        other => {
                            let name = other.schema_name().to_string();
                            other.alias_with_metadata(name, Some(md))
                        }
                    },
                    None => e,
                });
            }
            Ok(LogicalPlan::Projection(Projection::try_new(exprs, p.input)?))
        }
        LogicalPlan::Sort(_) | LogicalPlan::Limit(_) | LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(_)) => {
            let inputs: Vec<LogicalPlan> = plan.inputs().into_iter().cloned().collect();
            let [input] = <[LogicalPlan; 1]>::try_from(inputs).map_err(|_| {
                datafusion::error::DataFusionError::Internal("expected one input".into())
            })?;
            let tagged = tag_casts(input)?;
            plan.with_new_exprs(plan.expressions(), vec![tagged])
        }
        other => Ok(other),
    }
}

/// The row description of one column: `varchar` when its field is marked so.
pub fn describe(info: FieldInfo, field: &Field) -> FieldInfo {
    if marked(field).is_none() || *info.datatype() != Type::TEXT {
        return info;
    }
    FieldInfo::new(info.name().to_string(), info.table_id(), info.column_id(), Type::VARCHAR, info.format())
        .with_format_options(info.format_options().clone())
        .with_type_size(info.type_size())
        .with_type_modifier(info.type_modifier())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn plan(sql: &str) -> LogicalPlan {
        use datafusion::execution::session_state::SessionStateBuilder;
        let ctx = SessionContext::new();
        let state = SessionStateBuilder::new_from_existing(ctx.state())
            .with_type_planner(Arc::new(VarcharTypePlanner::new(None, true)))
            .build();
        tag_casts(state.create_logical_plan(sql).await.unwrap()).unwrap()
    }

    fn marks(plan: &LogicalPlan) -> Vec<bool> {
        plan.schema().fields().iter().map(|f| marked(f).is_some()).collect()
    }

    #[tokio::test]
    async fn casts_to_varchar_are_marked() {
        let p = plan("SELECT CAST('v' AS VARCHAR) AS vc, CAST('t' AS TEXT) AS t, 'x'::varchar(3), 1 ORDER BY 1 LIMIT 1").await;
        assert_eq!(marks(&p), vec![true, false, true, false]);
        assert_eq!(p.schema().field(0).name(), "vc");
    }
}
