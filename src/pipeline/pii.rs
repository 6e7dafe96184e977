//! Classifying personal data across the catalog: every table's columns (embedded and upstream)
//! sampled by lalo itself, classified (governance/pii), put in force and the change recorded in
//! the audit trail; and lalo's governance tables for admins: `lalo.lalo_governance.pii_columns`
//! (what is classified, how surely, the suggested mask) and `lalo.lalo_governance.budgets`
//! (each user's language-model tokens and estimated scans this hour, beside their limits).

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::engine::live_table::LiveTable;
use crate::engine::views::SeeAll;
use crate::error::LaloError;
use crate::governance::audit::{AuditRecord, Wait};
use crate::governance::pii::classify::{classify, ColumnEvidence};
use crate::governance::pii::{Classification, PiiMode};

use super::Lalo;

/// How long sampling one table may take before its columns are classified by name alone.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Fewer non-null sampled values than this and the column is sampled on its own.
const SPARSE: usize = 3;
/// Schemas that hold lalo's own records, never classified.
const OWN_SCHEMAS: &[&str] = &["lalo_audit", crate::engine::GOVERNANCE_SCHEMA];

impl Lalo {
    /// Sample every table and classify its columns.
    pub async fn classify_pii(&self) -> Result<Vec<Classification>, LaloError> {
        let tables = self.tables_seen_by(Arc::new(SeeAll)).await?;
        let limit = self.config.governance.pii_sample_rows.max(1);
        let mut out = Vec::new();
        for t in tables.iter().filter(|t| !OWN_SCHEMAS.contains(&t.schema.as_str())) {
            let full = format!("{}.{}.{}", t.database, t.schema, t.table);
            let (types, samples) = self.sample_table(&t.database, &t.schema, &t.table, None, limit).await;
            for c in &t.columns {
                let ty = types.iter().find(|(n, _)| n == &c.name).map(|(_, t)| t.clone()).unwrap_or(DataType::Utf8);
                let mut values = samples.iter().find(|(n, _)| n == &c.name).map(|(_, v)| v.clone()).unwrap_or_default();
                // A sparse column's values may all lie beyond the table's first rows.
                if values.len() < SPARSE && !types.is_empty() {
                    let (_, more) = self.sample_table(&t.database, &t.schema, &t.table, Some(&c.name), limit).await;
                    values = more.into_iter().next().map(|(_, v)| v).unwrap_or(values);
                }
                let ev = ColumnEvidence { table: &full, column: &c.name, comment: &c.description, data_type: &ty, samples: &values };
                out.extend(classify(&ev));
            }
        }
        Ok(out)
    }

    /// Classify the catalog now and put the result in force (`[governance] pii` not `off`);
    /// what changed goes to the audit trail. Returns the changes.
    pub async fn refresh_pii(&self) -> Result<Vec<String>, LaloError> {
        if self.governance.pii().mode == PiiMode::Off {
            return Ok(vec![]);
        }
        let columns = self.classify_pii().await?;
        let changes = self.governance.set_pii(columns);
        if !changes.is_empty() {
            let pii = self.governance.pii();
            let rec = AuditRecord {
                kind: "pii".into(),
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                user: "lalo".into(),
                entry: "pii".into(),
                input: format!("personal data classification ({} columns)", pii.columns.len()),
                objects: pii.columns.iter().map(|c| format!("{}.{}", c.table, c.column)).collect(),
                decision: if pii.mode == PiiMode::Mask { "masked" } else { "allowed" }.into(),
                rules: changes.clone(),
                rows: pii.columns.len() as u64,
                ..Default::default()
            };
            self.audit.append(rec, Wait::Durable).await?;
            tracing::info!(changes = changes.len(), columns = pii.columns.len(), "personal data classification changed");
        }
        Ok(changes)
    }

    /// Up to `limit` rows of one table (or the non-null values of one of its columns) as text
    /// per column, with the columns' types; read by lalo (no caller's rules), and only ever used
    /// for classification.
    async fn sample_table(
        &self,
        db: &str,
        schema: &str,
        table: &str,
        column: Option<&str>,
        limit: u32,
    ) -> (Vec<(String, DataType)>, Vec<(String, Vec<String>)>) {
        let q = |i: &str| format!("\"{}\"", i.replace('"', "\"\""));
        let sql = match column {
            Some(c) => format!("SELECT {c} FROM {}.{}.{} WHERE {c} IS NOT NULL LIMIT {limit}", q(db), q(schema), q(table), c = q(c)),
            None => format!("SELECT * FROM {}.{}.{} LIMIT {limit}", q(db), q(schema), q(table)),
        };
        let settings = Arc::new(parking_lot::RwLock::new(crate::settings::Settings::default()));
        let Ok(ctx) = self.engine.session_context(db, "lalo", Arc::new(SeeAll), settings) else { return (vec![], vec![]) };
        let read = async { ctx.sql(&sql).await?.collect().await };
        let batches = match tokio::time::timeout(SAMPLE_TIMEOUT, read).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::warn!(table = %format!("{db}.{schema}.{table}"), error = %e, "not sampled for classification");
                return (vec![], vec![]);
            }
            Err(_) => return (vec![], vec![]),
        };
        let Some(first) = batches.first() else { return (vec![], vec![]) };
        let fields = first.schema();
        let types = fields.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        let mut samples: Vec<(String, Vec<String>)> = fields.fields().iter().map(|f| (f.name().clone(), vec![])).collect();
        for b in &batches {
            for (i, (_, values)) in samples.iter_mut().enumerate() {
                let Ok(text) = datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8) else { continue };
                let Some(text) = text.as_any().downcast_ref::<StringArray>() else { continue };
                values.extend((0..text.len()).filter(|r| text.is_valid(*r)).map(|r| text.value(r).to_string()));
            }
        }
        (types, samples)
    }

    /// Serve `lalo.lalo_governance.pii_columns` and `.budgets` (policy decides who reads them).
    pub(super) fn register_governance_tables(self: &Arc<Self>) -> Result<(), LaloError> {
        let text = |n: &str| Field::new(n, DataType::Utf8, false);
        let pii_schema = Arc::new(Schema::new(vec![
            text("table_name"),
            text("column_name"),
            text("kind"),
            Field::new("confidence", DataType::Float64, false),
            text("evidence"),
            text("suggested_mask"),
            Field::new("masked_by_default", DataType::Boolean, false),
        ]));
        let weak = Arc::downgrade(self);
        let schema = pii_schema.clone();
        let rows = Arc::new(move || {
            let pii = weak.upgrade().map(|l| l.governance.pii()).unwrap_or_default();
            let cs = &pii.columns;
            let s = |f: &dyn Fn(&Classification) -> String| Arc::new(StringArray::from_iter_values(cs.iter().map(f))) as ArrayRef;
            let cols: Vec<ArrayRef> = vec![
                s(&|c| c.table.clone()),
                s(&|c| c.column.clone()),
                s(&|c| c.kind.as_str().to_string()),
                Arc::new(Float64Array::from_iter_values(cs.iter().map(|c| c.confidence))),
                s(&|c| c.evidence.clone()),
                s(&|c| c.mask.clone()),
                Arc::new(BooleanArray::from_iter(cs.iter().map(|c| Some(pii.mode == PiiMode::Mask && c.masks())))),
            ];
            Ok(RecordBatch::try_new(schema.clone(), cols)?)
        });
        self.engine.register_live_table("pii_columns", Arc::new(LiveTable::new(pii_schema, rows)))?;

        let count = |n: &str| Field::new(n, DataType::UInt64, true);
        let budget_schema = Arc::new(Schema::new(vec![
            text("user_name"),
            count("llm_tokens_this_hour"),
            count("llm_token_budget_per_hour"),
            count("statements_estimated"),
            count("statements_refused"),
            count("estimated_rows_read"),
            count("estimated_bytes_read"),
            count("max_scan_rows"),
            count("max_scan_bytes"),
            count("max_rows"),
        ]));
        let weak = Arc::downgrade(self);
        let schema = budget_schema.clone();
        let rows = Arc::new(move || {
            let Some(lalo) = weak.upgrade() else { return Ok(RecordBatch::new_empty(schema.clone())) };
            Ok(RecordBatch::try_new(schema.clone(), lalo.budget_columns())?)
        });
        self.engine.register_live_table("budgets", Arc::new(LiveTable::new(budget_schema, rows)))?;
        Ok(())
    }

    /// The budgets table's columns: one row per configured user and per user seen this hour.
    fn budget_columns(&self) -> Vec<ArrayRef> {
        let tokens = self.llm.usage();
        let scans = self.governance.usage.snapshot();
        let mut users: Vec<String> = self.users.names().cloned().collect();
        users.extend(tokens.iter().map(|(u, _)| u.clone()));
        users.extend(scans.iter().map(|(u, _)| u.clone()));
        users.sort();
        users.dedup();
        let budget = self.config.planner.llm_token_budget_per_hour;
        let mut cols: Vec<Vec<Option<u64>>> = vec![Vec::with_capacity(users.len()); 9];
        for u in &users {
            let attrs = self.users.get(u).map(|e| e.attributes.clone()).unwrap_or_default();
            let limits = self.governance.limits_for(&self.governance.subject(u, &attrs));
            let scan = scans.iter().find(|(n, _)| n == u).map(|(_, s)| s);
            let row = [
                Some(tokens.iter().find(|(n, _)| n == u).map_or(0, |(_, t)| *t)),
                (budget > 0).then_some(budget),
                Some(scan.map_or(0, |s| s.statements)),
                Some(scan.map_or(0, |s| s.refused)),
                Some(scan.map_or(0, |s| s.rows)),
                Some(scan.map_or(0, |s| s.bytes)),
                limits.max_scan_rows,
                limits.max_scan_bytes,
                [self.config.governance.max_rows, limits.max_rows.unwrap_or(0)].into_iter().filter(|v| *v > 0).min(),
            ];
            for (c, v) in cols.iter_mut().zip(row) {
                c.push(v);
            }
        }
        let mut out: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(users.iter()))];
        out.extend(cols.into_iter().map(|c| Arc::new(UInt64Array::from(c)) as ArrayRef));
        out
    }
}
