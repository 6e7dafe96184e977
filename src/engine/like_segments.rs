//! `LIKE` and `ILIKE` with a constant pattern of literal runs between `%` wildcards (`'%special%
//! requests%'`, `ILIKE '%smith%'`, `'50\%%'`), matched by searching for each run in turn. Arrow
//! matches such patterns with a regular expression once they have more than one run, an escape,
//! or (for `ILIKE`) a `%` at both ends, and a regular expression costs several times a substring
//! search on short strings. Patterns with `_`, or that arrow matches without a regular expression
//! already, stay as they are. `ILIKE` is searched ignoring ASCII case only when the pattern and
//! every string of the batch are ASCII; otherwise the batch goes to arrow (Unicode case folding),
//! so the answers are arrow's in every case.

use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayAccessor, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, FieldRef, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{internal_err, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::expressions::{LikeExpr, Literal};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

/// Puts [`SegmentLike`] in place of the `LIKE`s it can match, in projections and filters.
#[derive(Debug, Default)]
pub struct LikeSegments;

impl PhysicalOptimizerRule for LikeSegments {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        super::overflow::rewrite_exprs(plan, &|e, _| {
            e.transform_up(|e| {
                let Some(like) = (e.as_ref() as &dyn Any).downcast_ref::<LikeExpr>() else { return Ok(Transformed::no(e)) };
                Ok(match SegmentLike::try_new(like) {
                    Some(s) => Transformed::yes(Arc::new(s) as Arc<dyn PhysicalExpr>),
                    None => Transformed::no(e),
                })
            })
        })
    }

    fn name(&self) -> &str {
        "lalo_like_segments"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A pattern as runs of literal text: `%` between them, and at the start or end unless anchored.
#[derive(Debug, Clone, PartialEq)]
struct Pattern {
    runs: Vec<String>,
    anchored_start: bool,
    anchored_end: bool,
}

impl Pattern {
    /// The runs of `p` with backslash escapes resolved; `None` for a `_` wildcard or a trailing
    /// backslash (left to arrow, which decides what they mean).
    fn parse(p: &str) -> Option<Pattern> {
        let mut runs = vec![String::new()];
        let mut chars = p.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => runs.push(String::new()),
                '_' => return None,
                '\\' => runs.last_mut()?.push(chars.next()?),
                c => runs.last_mut()?.push(c),
            }
        }
        let anchored_start = !p.starts_with('%');
        // A pattern ending in `\%` ends with a literal `%`: anchored.
        let anchored_end = runs.last().is_some_and(|r| !r.is_empty()) || runs.len() == 1;
        runs.retain(|r| !r.is_empty());
        Some(Pattern { runs, anchored_start, anchored_end })
    }

    /// Whether `s` matches.
    fn matches(&self, s: &str, ci: bool) -> bool {
        let h = s.as_bytes();
        let n = self.runs.len();
        if n == 0 {
            // '' matches only the empty string, '%' anything.
            return !(self.anchored_start && self.anchored_end) || h.is_empty();
        }
        let mut pos = 0;
        for (i, text) in self.runs.iter().enumerate() {
            let run = text.as_bytes();
            let (first, last) = (i == 0 && self.anchored_start, i == n - 1 && self.anchored_end);
            if first && last {
                return eq(h, run, ci);
            }
            if first {
                if h.len() < run.len() || !eq(&h[..run.len()], run, ci) {
                    return false;
                }
                pos = run.len();
            } else if last {
                // The last run ends the string, after everything matched before it.
                return h.len() >= pos + run.len() && eq(&h[h.len() - run.len()..], run, ci);
            } else {
                // The leftmost match of each run leaves the most room for the runs after it.
                // (`pos` ends a whole match of whole characters: `get` never fails.)
                let at = if ci { find_ascii_ci(&h[pos..], run) } else { s.get(pos..).and_then(|rest| rest.find(text.as_str())) };
                match at {
                    Some(at) => pos += at + run.len(),
                    None => return false,
                }
            }
        }
        true
    }
}

fn eq(a: &[u8], b: &[u8], ci: bool) -> bool {
    if ci {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// Where `needle` (not empty) first occurs in `h`, ignoring ASCII case.
fn find_ascii_ci(h: &[u8], needle: &[u8]) -> Option<usize> {
    let last_start = h.len().checked_sub(needle.len())?;
    let (lo, up) = (needle[0].to_ascii_lowercase(), needle[0].to_ascii_uppercase());
    let mut from = 0;
    while from <= last_start {
        let at = from + h[from..=last_start].iter().position(|&b| b == lo || b == up)?;
        if h[at..at + needle.len()].eq_ignore_ascii_case(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Whether arrow matches `p` without a regular expression (its own fast forms).
fn arrow_has_fast_form(p: &str, ci: bool) -> bool {
    let wild = |s: &str| s.contains(['%', '_', '\\']);
    if ci {
        !wild(p)
            || (p.ends_with('%') && !p.ends_with("\\%") && !wild(&p[..p.len() - 1]))
            || (p.starts_with('%') && !wild(&p[1..]))
    } else {
        !wild(p)
            || (p.ends_with('%') && !wild(&p[..p.len() - 1]))
            || (p.starts_with('%') && !wild(&p[1..]))
            || (p.len() >= 2 && p.starts_with('%') && p.ends_with('%') && !wild(&p[1..p.len() - 1]))
    }
}

/// The longest run an `ILIKE` searches for itself.
const MAX_CI_RUN: usize = 64;

/// A `LIKE` over a constant pattern of literal runs and `%`.
#[derive(Debug)]
pub struct SegmentLike {
    /// The expression it replaces: its type, display and equality are this one's.
    like: Arc<LikeExpr>,
    pattern: Arc<Pattern>,
}

impl SegmentLike {
    fn try_new(like: &LikeExpr) -> Option<SegmentLike> {
        let lit = (like.pattern().as_ref() as &dyn Any).downcast_ref::<Literal>()?;
        let p = match lit.value() {
            ScalarValue::Utf8(Some(p)) | ScalarValue::LargeUtf8(Some(p)) | ScalarValue::Utf8View(Some(p)) => p,
            _ => return None,
        };
        let ci = like.case_insensitive();
        if (ci && !p.is_ascii()) || arrow_has_fast_form(p, ci) {
            return None;
        }
        let pattern = Pattern::parse(p)?;
        // The case-blind search compares a run wherever its first letter occurs: its cost grows
        // with the run's length, so long runs stay with arrow's regex (linear in the string).
        if ci && pattern.runs.iter().any(|r| r.len() > MAX_CI_RUN) {
            return None;
        }
        let like = Arc::new(LikeExpr::new(like.negated(), ci, like.expr().clone(), like.pattern().clone()));
        Some(SegmentLike { like, pattern: Arc::new(pattern) })
    }

    /// The expression's answer for a string that is not NULL.
    fn test(&self, h: &str) -> bool {
        self.pattern.matches(h, self.like.case_insensitive()) != self.like.negated()
    }

    fn over<'a, A: ArrayAccessor<Item = &'a str> + Copy>(&self, a: A) -> Option<BooleanArray> {
        if self.like.case_insensitive() && (0..a.len()).any(|i| a.is_valid(i) && !a.value(i).is_ascii()) {
            return None;
        }
        Some(BooleanArray::from_unary(a, |h| self.test(h)))
    }
}

impl PhysicalExpr for SegmentLike {
    fn return_field(&self, input_schema: &Schema) -> Result<FieldRef> {
        self.like.return_field(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let v = self.like.expr().evaluate(batch)?;
        let done = match &v {
            ColumnarValue::Scalar(s) => match s.try_as_str() {
                Some(None) => Some(ColumnarValue::Scalar(ScalarValue::Boolean(None))),
                Some(Some(h)) if !self.like.case_insensitive() || h.is_ascii() => {
                    Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(self.test(h)))))
                }
                _ => None,
            },
            ColumnarValue::Array(a) => match a.data_type() {
                DataType::Utf8 => self.over(a.as_string::<i32>()),
                DataType::LargeUtf8 => self.over(a.as_string::<i64>()),
                DataType::Utf8View => self.over(a.as_string_view()),
                _ => None,
            }
            .map(|b| ColumnarValue::Array(Arc::new(b))),
        };
        match done {
            Some(d) => Ok(d),
            // Types and strings this form does not take: arrow's LIKE.
            None => self.like.evaluate(batch),
        }
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![self.like.expr(), self.like.pattern()]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn PhysicalExpr>>) -> Result<Arc<dyn PhysicalExpr>> {
        let [expr, pattern]: [Arc<dyn PhysicalExpr>; 2] = match children.try_into() {
            Ok(c) => c,
            Err(_) => return internal_err!("LIKE takes two operands"),
        };
        let like = LikeExpr::new(self.like.negated(), self.like.case_insensitive(), expr, pattern);
        Ok(match SegmentLike::try_new(&like) {
            Some(s) => Arc::new(s),
            None => Arc::new(like),
        })
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.like.fmt_sql(f)
    }
}

impl fmt::Display for SegmentLike {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.like.fmt(f)
    }
}

impl PartialEq for SegmentLike {
    fn eq(&self, other: &Self) -> bool {
        self.like.as_ref() == other.like.as_ref()
    }
}

impl Eq for SegmentLike {}

impl Hash for SegmentLike {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.like.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, StringArray, StringViewArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::{col, lit};

    fn batch(values: &[Option<&str>], view: bool) -> RecordBatch {
        let (ty, a): (DataType, ArrayRef) = if view {
            (DataType::Utf8View, Arc::new(StringViewArray::from(values.to_vec())))
        } else {
            (DataType::Utf8, Arc::new(StringArray::from(values.to_vec())))
        };
        let schema = Arc::new(Schema::new(vec![Field::new("s", ty, true)]));
        RecordBatch::try_new(schema, vec![a]).expect("batch")
    }

    const HAYSTACKS: &[Option<&str>] = &[
        Some(""),
        Some("special requests"),
        Some("pending special deposits; requests"),
        Some("requests special"),
        Some("SPECIAL Requests"),
        Some("specialrequests"),
        Some("50% off"),
        Some("50 off%"),
        Some("a\\b"),
        Some("abcabc"),
        Some("abc"),
        Some("ab"),
        Some("x%y_z"),
        None,
    ];

    /// Every pattern answers exactly as arrow's LIKE, for both string layouts, both cases and
    /// both polarities; the ones arrow has no regex-free form for are the ones replaced.
    #[test]
    fn answers_as_arrow_does() {
        let patterns = [
            "%special%requests%", "special%requests", "%special%requests", "special%", "%", "%%", "",
            "50\\%%", "%\\%", "%\\%%", "a\\\\b", "%a\\\\%", "abc%abc", "abc%bc", "%abc%abc%abc%", "ab%c%",
            "%b%c", "a%c", "%x\\%y\\_z%", "%SPECIAL%", "%special%REQUESTS%",
        ];
        let mut replaced = 0;
        for view in [false, true] {
            let b = batch(HAYSTACKS, view);
            for p in patterns {
                for (negated, ci) in [(false, false), (true, false), (false, true), (true, true)] {
                    let pat = if view { lit(ScalarValue::Utf8View(Some(p.into()))) } else { lit(p) };
                    let like = LikeExpr::new(negated, ci, col("s", &b.schema()).expect("col"), pat);
                    let want = like.evaluate(&b).expect("arrow").into_array(b.num_rows()).expect("array");
                    let Some(ours) = SegmentLike::try_new(&like) else { continue };
                    replaced += 1;
                    let got = ours.evaluate(&b).expect("ours").into_array(b.num_rows()).expect("array");
                    assert_eq!(got.as_boolean(), want.as_boolean(), "{p:?} negated={negated} ilike={ci} view={view}");
                }
            }
        }
        assert!(replaced > 40, "only {replaced} patterns took the searched form");
    }

    /// ILIKE over a batch holding a non-ASCII string is arrow's (Unicode case folding: the
    /// Kelvin sign matches `k`), and `_` patterns are never replaced.
    #[test]
    fn leaves_unicode_case_and_underscores_to_arrow() {
        let b = batch(&[Some("\u{212A}elvin degrees"), Some("kelvin"), None], false);
        let like = LikeExpr::new(false, true, col("s", &b.schema()).expect("col"), lit("%k%degrees%"));
        let want = like.evaluate(&b).expect("arrow").into_array(3).expect("array");
        let ours = SegmentLike::try_new(&like).expect("replaced");
        let got = ours.evaluate(&b).expect("ours").into_array(3).expect("array");
        assert_eq!(got.as_boolean(), want.as_boolean());
        let under = LikeExpr::new(false, false, col("s", &b.schema()).expect("col"), lit("%k_l%in%"));
        assert!(SegmentLike::try_new(&under).is_none());
    }

    /// Planned through a session with the rule, a projection's and a filter's LIKEs take this
    /// form, and the rows come back as arrow's LIKE gives them.
    #[tokio::test]
    async fn the_rule_replaces_likes_in_plans() {
        use datafusion::execution::SessionStateBuilder;
        use datafusion::physical_plan::{collect, filter::FilterExec, projection::ProjectionExec};
        use datafusion::prelude::SessionContext;
        let state = SessionStateBuilder::new().with_default_features().with_physical_optimizer_rule(Arc::new(LikeSegments)).build();
        let ctx = SessionContext::new_with_state(state);
        let sql = "select s like 'a%b%c' as m from (values ('abc'), ('axbxc'), ('acb'), (null)) t(s) where s not like '%x%y%'";
        let plan = ctx.sql(sql).await.expect("sql").create_physical_plan().await.expect("plan");
        let mut found = (false, false);
        plan.apply(|n| {
            if let Some(p) = n.downcast_ref::<ProjectionExec>() {
                found.0 |= p.expr().iter().any(|e| e.expr.downcast_ref::<SegmentLike>().is_some());
            }
            if let Some(f) = n.downcast_ref::<FilterExec>() {
                found.1 |= f.predicate().downcast_ref::<SegmentLike>().is_some();
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })
        .expect("walk");
        assert_eq!(found, (true, true), "{}", datafusion::physical_plan::displayable(plan.as_ref()).indent(true));
        let rows = collect(plan, ctx.task_ctx()).await.expect("rows");
        let got: Vec<Option<bool>> = rows.iter().flat_map(|b| b.column(0).as_boolean().iter().collect::<Vec<_>>()).collect();
        assert_eq!(got, vec![Some(true), Some(true), Some(false)]);
    }
}
