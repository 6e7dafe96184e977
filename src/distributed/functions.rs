//! Which function a distributed plan names, said so that the executor runs the very same one.
//!
//! DataFusion's protobuf form names a function and the receiving side looks the name up in its
//! registry. That is right only when the registry holds the same function: lalo's optimizer
//! puts functions into plans that no registry names (PostgreSQL's NUMERIC division, display
//! scales, the row-filter barrier, a row filter's evaluated value set) or that reuse a built-in
//! name for another function (`avg` over NUMERIC computed as PostgreSQL does). Looked up by name,
//! such a plan would fail on the executor or, worse, answer differently. So each function is
//! sent one of three ways:
//! - by name, when the registry holds a function equal to it;
//! - by its place in the list of lalo's unregistered functions (the same list on both sides:
//!   it is built by the same binary);
//! - `row_filter_in` with its values (Arrow IPC).
//!
//! Any other function does not cross: the plan stays on the local engine.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::{not_impl_err, DataFusionError, Result};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};

use crate::engine::pg_numeric::aggregate::PgStat;
use crate::engine::pg_numeric::carry::PgScaled;
use crate::engine::pg_numeric::scalar::{Op, PgNumericFn, PgNumericText};
use crate::governance::member_set::RowFilterIn;

const LISTED: u8 = b'i';
const VALUE_SET: u8 = b'r';

/// The receiving side's registry and lalo's unregistered functions.
#[derive(Debug)]
pub struct Functions {
    scalar: HashMap<String, Arc<ScalarUDF>>,
    aggregate: HashMap<String, Arc<AggregateUDF>>,
    window: HashMap<String, Arc<WindowUDF>>,
    listed_scalar: Vec<Arc<ScalarUDF>>,
    listed_aggregate: Vec<Arc<AggregateUDF>>,
}

impl Functions {
    /// The functions of `state` (lalo's function context), and the list.
    pub fn of(state: &SessionState) -> Functions {
        let scalar = state.scalar_functions().clone();
        let aggregate = state.aggregate_functions().clone();
        let window = state.window_functions().clone();
        let mut listed_scalar: Vec<Arc<ScalarUDF>> = Vec::new();
        for op in [Op::Div, Op::Sqrt, Op::Exp, Op::Ln, Op::Log, Op::Pow] {
            for scale_only in [false, true] {
                listed_scalar.push(Arc::new(ScalarUDF::new_from_impl(PgNumericFn::new(op, scale_only))));
            }
        }
        for scale_only in [false, true] {
            listed_scalar.push(Arc::new(ScalarUDF::new_from_impl(crate::engine::pg_numeric::avg_sums::AvgOfSums::new(scale_only))));
        }
        listed_scalar.push(Arc::new(ScalarUDF::new_from_impl(PgNumericText::shown())));
        listed_scalar.push(Arc::new(ScalarUDF::new_from_impl(PgNumericText::cast())));
        listed_scalar.push(Arc::new(ScalarUDF::new_from_impl(PgScaled::new())));
        listed_scalar.push(Arc::new(ScalarUDF::new_from_impl(crate::engine::subquery_null::Nullable::default())));
        listed_scalar.push(Arc::new(ScalarUDF::new_from_impl(crate::engine::pg_text::PgText::default())));
        listed_scalar.push(Arc::new(ScalarUDF::new_from_impl(crate::engine::pg_text::PgRint::default())));
        listed_scalar.extend(crate::governance::plan_functions());
        // PostgreSQL's avg, variances and standard deviations (and their display scales), under
        // each name a statement may call them by, with that name's aliases.
        let mut listed_aggregate = Vec::new();
        for name in ["avg", "mean", "var_samp", "var", "variance", "var_sample", "var_pop", "var_population", "stddev_samp", "stddev", "stddev_pop"] {
            let Some(stat) = PgStat::of(name) else { continue };
            let aliases = aggregate.get(name).map(|f| f.aliases().to_vec()).unwrap_or_default();
            for scale_only in [false, true] {
                listed_aggregate.push(Arc::new(AggregateUDF::new_from_impl(PgStat::new(name, &aliases, stat, scale_only))));
            }
        }
        Functions { scalar, aggregate, window, listed_scalar, listed_aggregate }
    }

    pub fn encode_udf(&self, f: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if self.scalar.get(f.name()).is_some_and(|r| r.as_ref() == f) {
            return Ok(());
        }
        if let Some(i) = self.listed_scalar.iter().position(|l| l.as_ref() == f) {
            buf.push(LISTED);
            buf.extend((i as u32).to_le_bytes());
            return Ok(());
        }
        if let Some(set) = f.inner().downcast_ref::<RowFilterIn>() {
            let (values, negated) = set.parts();
            buf.push(VALUE_SET);
            buf.push(negated as u8);
            buf.extend(ipc(values)?);
            return Ok(());
        }
        not_impl_err!("function {} does not run on the cluster", f.name())
    }

    pub fn decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        match buf {
            [] => self.scalar.get(name).cloned().ok_or_else(|| unknown(name)),
            [LISTED, rest @ ..] => listed(&self.listed_scalar, rest, name),
            [VALUE_SET, negated, rest @ ..] => Ok(Arc::new(RowFilterIn::udf(from_ipc(rest)?, *negated != 0)?)),
            _ => Err(unknown(name)),
        }
    }

    pub fn encode_udaf(&self, f: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        if self.aggregate.get(f.name()).is_some_and(|r| r.as_ref() == f) {
            return Ok(());
        }
        if let Some(i) = self.listed_aggregate.iter().position(|l| l.as_ref() == f) {
            buf.push(LISTED);
            buf.extend((i as u32).to_le_bytes());
            return Ok(());
        }
        not_impl_err!("aggregate {} does not run on the cluster", f.name())
    }

    pub fn decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        match buf {
            [] => self.aggregate.get(name).cloned().ok_or_else(|| unknown(name)),
            [LISTED, rest @ ..] => listed(&self.listed_aggregate, rest, name),
            _ => Err(unknown(name)),
        }
    }

    pub fn encode_udwf(&self, f: &WindowUDF, _buf: &mut Vec<u8>) -> Result<()> {
        if self.window.get(f.name()).is_some_and(|r| r.as_ref() == f) {
            return Ok(());
        }
        not_impl_err!("window function {} does not run on the cluster", f.name())
    }

    pub fn decode_udwf(&self, name: &str, _buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.window.get(name).cloned().ok_or_else(|| unknown(name))
    }
}

fn unknown(name: &str) -> DataFusionError {
    DataFusionError::Plan(format!("function {name} is not known to this lalo"))
}

fn listed<T>(list: &[Arc<T>], index: &[u8], name: &str) -> Result<Arc<T>> {
    let i = <[u8; 4]>::try_from(index).map(u32::from_le_bytes).map_err(|_| unknown(name))?;
    list.get(i as usize).cloned().ok_or_else(|| unknown(name))
}

/// One column of values as an Arrow IPC stream.
fn ipc(values: &ArrayRef) -> Result<Vec<u8>> {
    let schema = Arc::new(Schema::new(vec![Field::new("v", values.data_type().clone(), true)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![values.clone()])?;
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, &schema)?;
    w.write(&batch)?;
    w.finish()?;
    drop(w);
    Ok(out)
}

fn from_ipc(bytes: &[u8]) -> Result<ArrayRef> {
    let mut reader = StreamReader::try_new(bytes, None)?;
    match reader.next() {
        Some(batch) => Ok(batch?.column(0).clone()),
        None => Err(DataFusionError::Plan("a value set without values".into())),
    }
}
