//! How lalo's plans cross to Ballista's scheduler and executors: Ballista's own codec (its
//! shuffle operators) plus what DataFusion's protobuf form would silently lose.
//!
//! DataFusion's protobuf form of `a + b` has no room for "fail on overflow", so integer
//! arithmetic that lalo checks (engine/overflow.rs: 22003, as in PostgreSQL) would come back
//! from the wire wrapping silently — a different answer with no error. Before a plan leaves
//! lalo, every checked `+`, `-`, `*` is wrapped in [`CheckedOp`], which the protobuf form does
//! not know and hands to this codec; decoded, it is a [`CheckedOp`] again, so it also survives
//! the scheduler re-encoding each stage for its executors.
//!
//! Functions travel as distributed/functions.rs says: by name when the receiving side's registry
//! holds the same function (lalo's own scheduler and executors have lalo's), else by a form that
//! names exactly the one the plan holds.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use ballista_core::serde::BallistaPhysicalExtensionCodec;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{FieldRef, Schema};
use datafusion::common::{internal_err, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{AggregateUDF, ColumnarValue, Operator, ScalarUDF, WindowUDF};
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;

use super::functions::Functions;

/// Ballista's codec, lalo's checked arithmetic and lalo's functions.
#[derive(Debug)]
pub struct LaloCodec {
    ballista: BallistaPhysicalExtensionCodec,
    functions: Functions,
}

impl LaloCodec {
    /// The codec for plans decoded with the functions of `state` (lalo's function context).
    pub fn new(state: &SessionState) -> LaloCodec {
        LaloCodec { ballista: BallistaPhysicalExtensionCodec::default(), functions: Functions::of(state) }
    }
}

impl PhysicalExtensionCodec for LaloCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[Arc<dyn ExecutionPlan>], ctx: &TaskContext) -> Result<Arc<dyn ExecutionPlan>> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: Arc<dyn ExecutionPlan>, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.functions.encode_udf(node, buf)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.functions.decode_udf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.functions.encode_udaf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.functions.decode_udaf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.functions.encode_udwf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.functions.decode_udwf(name, buf)
    }

    fn try_decode_expr(&self, buf: &[u8], inputs: &[Arc<dyn PhysicalExpr>]) -> Result<Arc<dyn PhysicalExpr>> {
        let op = match buf {
            [b'+'] => Operator::Plus,
            [b'-'] => Operator::Minus,
            [b'*'] => Operator::Multiply,
            _ => return internal_err!("unknown lalo expression in a distributed plan"),
        };
        let [l, r] = inputs else { return internal_err!("checked arithmetic takes two operands") };
        Ok(CheckedOp::new(l.clone(), op, r.clone()))
    }

    fn try_encode_expr(&self, node: &Arc<dyn PhysicalExpr>, buf: &mut Vec<u8>) -> Result<()> {
        let Some(c) = node.downcast_ref::<CheckedOp>() else {
            return internal_err!("{node} cannot run on the cluster");
        };
        buf.push(match c.op() {
            Operator::Plus => b'+',
            Operator::Minus => b'-',
            _ => b'*',
        });
        Ok(())
    }
}

/// Checked `+`, `-` or `*` in a form DataFusion's protobuf hands to [`LaloCodec`].
#[derive(Debug)]
pub struct CheckedOp {
    inner: Arc<dyn PhysicalExpr>,
    children: [Arc<dyn PhysicalExpr>; 2],
    op: Operator,
}

impl CheckedOp {
    fn new(l: Arc<dyn PhysicalExpr>, op: Operator, r: Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
        let inner = Arc::new(BinaryExpr::new(l.clone(), op, r.clone()).with_fail_on_overflow(true));
        Arc::new(CheckedOp { inner, children: [l, r], op })
    }

    fn op(&self) -> Operator {
        self.op
    }
}

/// `plan` with its checked arithmetic in the form that survives the wire (the projections and
/// filters engine/overflow.rs checked, checked again in that form).
pub fn for_the_wire(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let plan = crate::engine::dense_and::undo(plan)?;
    crate::engine::overflow::check_arithmetic(plan, &|l, op, r, _| CheckedOp::new(l, op, r))
}

impl PartialEq for CheckedOp {
    fn eq(&self, other: &Self) -> bool {
        self.inner.as_ref() == other.inner.as_ref()
    }
}

impl Eq for CheckedOp {}

impl Hash for CheckedOp {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

impl fmt::Display for CheckedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl PhysicalExpr for CheckedOp {
    fn return_field(&self, input_schema: &Schema) -> Result<FieldRef> {
        self.inner.return_field(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        self.inner.evaluate(batch)
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.children.iter().collect()
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn PhysicalExpr>>) -> Result<Arc<dyn PhysicalExpr>> {
        let [l, r]: [Arc<dyn PhysicalExpr>; 2] = match children.try_into() {
            Ok(c) => c,
            Err(_) => return internal_err!("checked arithmetic takes two operands"),
        };
        Ok(CheckedOp::new(l, self.op, r))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_sql(f)
    }
}
