//! Functions lalo answers itself never run on an upstream.
//!
//! datafusion-federation hands a whole subtree to an upstream, function calls included, by
//! name. For DataFusion's own functions that is what PostgreSQL would compute too. But lalo
//! also answers functions from its own state: the session's settings (`current_setting`,
//! `set_config`), who the caller is (`current_user`), its catalog (`pg_get_userbyid`,
//! `has_table_privilege`, `obj_description`, ...). Run upstream, those would answer about the
//! upstream server and lalo's service account (its port, data directory, role), and
//! `set_config` would change a pooled connection that other sessions use next.
//!
//! So in a statement that reads an upstream table, every call to a function that is not known
//! to compute the same thing upstream is evaluated here first, when its arguments are constants
//! and it has no side effects (the literal is what goes upstream); otherwise the statement is
//! refused with 0A000. Known to push down: DataFusion's own built-in implementations (checked by
//! implementation type, not by name, so a lalo override of a built-in name stays local) and the few
//! lalo functions written to unparse into PostgreSQL (masks, `age`, `date_trunc`, value sets).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::array::RecordBatchOptions;
use datafusion::arrow::datatypes::Schema;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DataFusionError, ScalarValue};
use datafusion::execution::SessionStateDefaults;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{ColumnarValue, Expr, LogicalPlan, ScalarUDF, Volatility};
use datafusion::prelude::SessionContext;

use crate::engine::mask_fn::MaskFn;
use super::member_set::RowFilterIn;
use crate::engine::pg_age::PgAge;
use crate::engine::pg_date_trunc::PgDateTrunc;
use crate::error::LaloError;

/// DataFusion's built-in scalar functions by name and alias.
fn builtins() -> &'static HashMap<String, Arc<ScalarUDF>> {
    static B: OnceLock<HashMap<String, Arc<ScalarUDF>>> = OnceLock::new();
    B.get_or_init(|| {
        let mut m = HashMap::new();
        for f in SessionStateDefaults::default_scalar_functions() {
            for a in f.aliases() {
                m.insert(a.clone(), f.clone());
            }
            m.insert(f.name().to_string(), f);
        }
        m
    })
}

/// Computes upstream what it computes here.
fn pushable(f: &ScalarUDF) -> bool {
    let f_inner = f.inner();
    f_inner.is::<MaskFn>()
        || f_inner.is::<RowFilterIn>()
        || f_inner.is::<PgAge>()
        || f_inner.is::<PgDateTrunc>()
        || f_inner.is::<crate::engine::pg_date_part::PgDatePart>()
        || f_inner.is::<crate::engine::pg_int4::Int4Result>()
        || f_inner.is::<crate::engine::pg_trunc::PgTrunc>()
        || f_inner.is::<crate::engine::pg_text::PgText>()
        || f_inner.is::<crate::engine::pg_text::PgRint>()
        || builtins().get(f.name()).is_some_and(|b| same_impl(b, f))
}

/// The same implementation type: DataFusion rebuilds some built-ins with the session's settings
/// (a time zone, say), so the instances differ while the function is the same.
fn same_impl(a: &ScalarUDF, b: &ScalarUDF) -> bool {
    use std::any::Any;
    (a.inner().as_ref() as &dyn Any).type_id() == (b.inner().as_ref() as &dyn Any).type_id()
}

/// True when the plan scans a table of an upstream database, subqueries included.
pub fn reads_upstream(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|n| {
        if let LogicalPlan::TableScan(s) = n {
            if is_upstream(s) {
                found = true;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn is_upstream(scan: &datafusion::logical_expr::TableScan) -> bool {
    datafusion_federation::get_table_source(&scan.source).ok().flatten().is_some()
}

/// In a statement that reads an upstream, fold every lalo-answered function call into its value,
/// or refuse the statement when that cannot be done.
pub fn pin(ctx: &SessionContext, plan: LogicalPlan) -> Result<LogicalPlan, LaloError> {
    if !reads_upstream(&plan) {
        return Ok(plan);
    }
    let out = plan.transform_up_with_subqueries(|node| {
        let names = NamePreserver::new(&node);
        node.map_expressions(|e| {
            let saved = names.save(&e);
            let t = e.transform_up(|x| fold(ctx, x))?;
            Ok(if t.transformed { Transformed::yes(saved.restore(t.data)) } else { t })
        })
    });
    match out {
        Ok(t) => Ok(t.data),
        Err(e) => Err(LaloError::from_datafusion(e)),
    }
}

fn fold(ctx: &SessionContext, e: Expr) -> datafusion::common::Result<Transformed<Expr>> {
    let Expr::ScalarFunction(f) = &e else { return Ok(Transformed::no(e)) };
    if pushable(&f.func) {
        return Ok(Transformed::no(e));
    }
    let name = f.name().to_string();
    let constant = f.args.iter().all(|a| matches!(a, Expr::Literal(..)));
    if !constant || f.func.signature().volatility == Volatility::Volatile {
        return Err(refuse(&name));
    }
    let value = evaluate(ctx, &e)?;
    Ok(Transformed::yes(Expr::Literal(value, None)))
}

fn refuse(name: &str) -> DataFusionError {
    DataFusionError::External(Box::new(LaloError::NotSupported(format!(
        "{name}() answers from lalo's own session and catalog and cannot run in a statement that reads an \
         upstream table; call it in a statement of its own (for settings, use SET and SHOW)"
    ))))
}

/// The value of a constant call, computed by lalo.
fn evaluate(ctx: &SessionContext, e: &Expr) -> datafusion::common::Result<ScalarValue> {
    let phys = ctx.create_physical_expr(e.clone(), &DFSchema::empty())?;
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    match phys.evaluate(&batch)? {
        ColumnarValue::Scalar(s) => Ok(s),
        ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_push_down_overrides_do_not() {
        let upper = builtins().get("upper").expect("upper").clone();
        assert!(pushable(&upper));
        // A function of the same name but another implementation is lalo's own.
        let other = datafusion::logical_expr::create_udf(
            "upper",
            vec![datafusion::arrow::datatypes::DataType::Utf8],
            datafusion::arrow::datatypes::DataType::Utf8,
            Volatility::Stable,
            Arc::new(|a: &[ColumnarValue]| Ok(a[0].clone())),
        );
        assert!(!pushable(&other));
    }
}
