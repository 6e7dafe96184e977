//! Personal data: columns classified from their names, comments and sampled values
//! (classify.rs, detect.rs), and under `[governance] pii = "mask"` a default mask on each
//! confidently classified column for every caller no explicit mask rule names — applied by the
//! same rewrite as the masks in rules.toml, so predicates see masked values too.

pub mod classify;
pub mod detect;
pub mod report;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::LaloError;

/// Classifications at or above this confidence get a default mask under `pii = "mask"`; the
/// rest are reported (`lalo pii scan`, `lalo.lalo_governance.pii_columns`) for a DBA to decide.
pub const MASK_THRESHOLD: f64 = 0.8;

/// What `[governance] pii` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PiiMode {
    /// No classification.
    #[default]
    Off,
    /// Classify and report (admin table, audit, `lalo pii scan`); mask nothing by default.
    Report,
    /// Classify, and mask confident classifications for callers without an explicit rule.
    Mask,
}

impl PiiMode {
    pub fn parse(s: &str) -> Result<PiiMode, LaloError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "" => Ok(PiiMode::Off),
            "report" => Ok(PiiMode::Report),
            "mask" => Ok(PiiMode::Mask),
            other => Err(LaloError::Config(format!("[governance] pii = \"{other}\": use off, report or mask"))),
        }
    }
}

/// Kinds of personal data lalo recognizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Email,
    Phone,
    NationalId,
    PaymentCard,
    Iban,
    IpAddress,
    DateOfBirth,
    PersonName,
}

impl PiiKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::NationalId => "national_id",
            PiiKind::PaymentCard => "payment_card",
            PiiKind::Iban => "iban",
            PiiKind::IpAddress => "ip_address",
            PiiKind::DateOfBirth => "date_of_birth",
            PiiKind::PersonName => "person_name",
        }
    }

    /// The mask a DBA would start from for this kind on a column of type `ty` (a kind of
    /// rules.toml's `[[mask]]`): the last four of numbers people recognize their own by, the year
    /// of a birth date, nothing of the rest.
    pub fn default_mask(self, ty: &datafusion::arrow::datatypes::DataType) -> &'static str {
        use datafusion::arrow::datatypes::DataType as T;
        let text = matches!(ty, T::Utf8 | T::LargeUtf8 | T::Utf8View);
        let dated = matches!(ty, T::Date32 | T::Date64 | T::Timestamp(_, _));
        match self {
            PiiKind::Phone | PiiKind::NationalId | PiiKind::PaymentCard | PiiKind::Iban if text => "last4",
            PiiKind::DateOfBirth if dated => "year",
            _ if text => "redact",
            _ => "null",
        }
    }
}

/// One classified column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// `db.schema.table`, lower case.
    pub table: String,
    /// Lower case.
    pub column: String,
    pub kind: PiiKind,
    /// 0..1: how sure the evidence makes lalo.
    pub confidence: f64,
    /// What the classification rests on, for a person to check.
    pub evidence: String,
    /// The suggested `[[mask]]` kind.
    pub mask: String,
}

impl Classification {
    /// Whether `pii = "mask"` masks this column by default.
    pub fn masks(&self) -> bool {
        self.confidence >= MASK_THRESHOLD
    }
}

/// The classifications in force and the default masks they give.
#[derive(Debug, Default)]
pub struct PiiState {
    pub mode: PiiMode,
    pub columns: Vec<Classification>,
    /// table → column → mask kind, for `pii = "mask"`.
    pub masks: BTreeMap<String, BTreeMap<String, String>>,
}

impl PiiState {
    pub fn new(mode: PiiMode, columns: Vec<Classification>) -> PiiState {
        let mut masks: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        if mode == PiiMode::Mask {
            for c in columns.iter().filter(|c| c.masks()) {
                masks.entry(c.table.clone()).or_default().insert(c.column.clone(), c.mask.clone());
            }
        }
        PiiState { mode, columns, masks }
    }

    /// The classification of one column, if any.
    pub fn column(&self, table: &str, column: &str) -> Option<&Classification> {
        self.columns.iter().find(|c| c.table.eq_ignore_ascii_case(table) && c.column.eq_ignore_ascii_case(column))
    }

    /// What changed from `old` to this state, one line each (for the audit record).
    pub fn changes_from(&self, old: &PiiState) -> Vec<String> {
        let key = |c: &Classification| format!("{}.{}", c.table, c.column);
        let line = |c: &Classification| format!("{} {:.2} mask {}", c.kind.as_str(), c.confidence, c.mask);
        let mut out = Vec::new();
        for c in &self.columns {
            match old.column(&c.table, &c.column) {
                None => out.push(format!("{}: classified {}", key(c), line(c))),
                Some(o) if o.kind != c.kind || (o.confidence - c.confidence).abs() >= 0.05 || o.mask != c.mask => {
                    out.push(format!("{}: {} -> {}", key(c), line(o), line(c)))
                }
                Some(_) => {}
            }
        }
        for o in &old.columns {
            if self.column(&o.table, &o.column).is_none() {
                out.push(format!("{}: no longer classified (was {})", key(o), line(o)));
            }
        }
        out
    }
}
