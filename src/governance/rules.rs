//! `policies/rules.toml`: row filters, column masks and limits, and how they read for one user.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::LaloError;

const DEMO_RULES: &str = include_str!("../../policies/rules.toml");

/// The parsed rules file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    pub row_filter: Vec<RowFilter>,
    pub mask: Vec<Mask>,
    pub limit: Vec<Limit>,
    pub functions: FunctionRules,
}

/// `[functions]`: which SQL functions statements may call. With a non-empty `allow`, only those
/// (plus the operators SQL needs) run; `deny` always wins. Names are lower case.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionRules {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl FunctionRules {
    /// Whether a statement may call `name`.
    pub fn allows(&self, name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        if self.deny.iter().any(|d| d.eq_ignore_ascii_case(&n)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|a| a.eq_ignore_ascii_case(&n))
    }

    /// Whether a statement may call the function known by all of `names` (a name and its
    /// aliases: `variance` is `var_samp`): none of them denied, and one allowed when there is
    /// an allowlist.
    pub fn allows_any(&self, names: &[String]) -> bool {
        let denied = names.iter().any(|n| self.deny.iter().any(|d| d.eq_ignore_ascii_case(n)));
        !denied && (self.allow.is_empty() || names.iter().any(|n| self.allow.iter().any(|a| a.eq_ignore_ascii_case(n))))
    }
}

/// Rows of `table` that `subject` may see: a SQL predicate over the table's columns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowFilter {
    pub table: String,
    pub subject: String,
    pub filter: String,
}

/// How `subject` sees one column of `table`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mask {
    pub table: String,
    pub column: String,
    pub subject: String,
    pub kind: String,
}

/// The mask kind that masks nothing (an explicit exemption from a default mask).
pub const CLEAR: &str = "clear";

/// Limits for a user or role.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Limit {
    pub subject: String,
    pub max_rows: Option<u64>,
    pub statement_timeout_ms: Option<u64>,
    pub max_concurrent: Option<u32>,
    pub rate_per_minute: Option<u32>,
    /// Statements estimated (before they run) to read more rows than this are refused (54000).
    pub max_scan_rows: Option<u64>,
    /// Statements estimated to read more bytes than this are refused (54000).
    pub max_scan_bytes: Option<u64>,
}

/// The caller as rules see them: name, roles (including the name) and attributes.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    pub name: String,
    pub roles: Vec<String>,
    pub attributes: BTreeMap<String, String>,
}

impl Subject {
    fn matches(&self, subject: &str) -> bool {
        subject == "*" || self.roles.iter().any(|r| r == subject)
    }
}

/// The effective limits for one caller (the smallest of all that apply).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EffectiveLimits {
    pub max_rows: Option<u64>,
    pub statement_timeout_ms: Option<u64>,
    pub max_concurrent: Option<u32>,
    pub rate_per_minute: Option<u32>,
    pub max_scan_rows: Option<u64>,
    pub max_scan_bytes: Option<u64>,
}

fn min_opt<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Rules {
    /// Load `dir/rules.toml` (the demo rules when the directory does not exist).
    pub fn load(dir: &Path, demo: bool) -> Result<Rules, LaloError> {
        let path = dir.join("rules.toml");
        let text = super::access::policy_file(dir, "rules.toml", demo.then_some(DEMO_RULES))?;
        Self::parse(&text).map_err(|e| LaloError::Config(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Rules, String> {
        let rules: Rules = toml::from_str(text).map_err(|e| e.to_string())?;
        for m in rules.mask.iter().filter(|m| m.kind != CLEAR) {
            mask_sql(&m.kind, "x", &arrow_text()).map_err(|e| format!("mask on {}.{}: {e}", m.table, m.column))?;
        }
        Ok(rules)
    }

    /// Row filter predicates (attributes substituted) that apply to `subject` on `table`.
    pub fn filters_for(&self, subject: &Subject, table: &str) -> Result<Vec<String>, LaloError> {
        self.row_filter
            .iter()
            .filter(|f| f.table.eq_ignore_ascii_case(table) && subject.matches(&f.subject))
            .map(|f| substitute(&f.filter, subject))
            .collect()
    }

    /// Mask kind per column that applies to `subject` on `table`.
    pub fn masks_for(&self, subject: &Subject, table: &str) -> BTreeMap<String, String> {
        self.masks_with(subject, table, None)
    }

    /// Mask kind per column that applies to `subject` on `table`, with `defaults` (column →
    /// kind: classified personal data) for the columns no rule for this subject names. A rule
    /// of kind `clear` names a column and masks nothing: how a DBA exempts a role from a default.
    pub fn masks_with(
        &self,
        subject: &Subject,
        table: &str,
        defaults: Option<&BTreeMap<String, String>>,
    ) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = self
            .mask
            .iter()
            .filter(|m| m.table.eq_ignore_ascii_case(table) && subject.matches(&m.subject))
            .map(|m| (m.column.to_ascii_lowercase(), m.kind.clone()))
            .collect();
        for (col, kind) in defaults.into_iter().flatten() {
            out.entry(col.clone()).or_insert_with(|| kind.clone());
        }
        out.retain(|_, k| k != CLEAR);
        out
    }

    /// Limits that apply to `subject`.
    pub fn limits_for(&self, subject: &Subject) -> EffectiveLimits {
        let mut out = EffectiveLimits::default();
        for l in self.limit.iter().filter(|l| subject.matches(&l.subject)) {
            out.max_rows = min_opt(out.max_rows, l.max_rows);
            out.statement_timeout_ms = min_opt(out.statement_timeout_ms, l.statement_timeout_ms);
            out.max_concurrent = min_opt(out.max_concurrent, l.max_concurrent);
            out.rate_per_minute = min_opt(out.rate_per_minute, l.rate_per_minute);
            out.max_scan_rows = min_opt(out.max_scan_rows, l.max_scan_rows);
            out.max_scan_bytes = min_opt(out.max_scan_bytes, l.max_scan_bytes);
        }
        out
    }
}

fn arrow_text() -> datafusion::arrow::datatypes::DataType {
    datafusion::arrow::datatypes::DataType::Utf8
}

/// Replace `${user.name}` and `${user.<attr>}` with quoted SQL literals. Unknown attributes are errors,
/// so a filter never silently turns into "everything".
pub fn substitute(filter: &str, subject: &Subject) -> Result<String, LaloError> {
    let mut out = String::with_capacity(filter.len());
    let mut rest = filter;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| LaloError::Config(format!("unterminated ${{ in row filter: {filter}")))?;
        let key = after[..end].trim();
        let value = match key.strip_prefix("user.") {
            Some("name") => subject.name.clone(),
            Some(attr) => subject.attributes.get(attr).cloned().ok_or_else(|| LaloError::PermissionDenied {
                object: format!("row filter attribute user.{attr}"),
                hint: Some(format!("user \"{}\" has no attribute \"{attr}\"", subject.name)),
            })?,
            None => return Err(LaloError::Config(format!("unknown placeholder ${{{key}}} in row filter"))),
        };
        out.push_str(&quote_literal(&value));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A SQL string literal with quotes doubled: the value can never end the literal.
pub fn quote_literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// The SQL expression that masks column `col` (already quoted) of type `ty` for `kind`.
pub fn mask_sql(kind: &str, col: &str, ty: &datafusion::arrow::datatypes::DataType) -> Result<String, String> {
    use datafusion::arrow::datatypes::DataType as T;
    let is_text = matches!(ty, T::Utf8 | T::LargeUtf8 | T::Utf8View);
    let null = format!("CAST(NULL AS {})", sql_type(ty));
    Ok(match kind {
        "redact" if is_text => format!("CASE WHEN {col} IS NULL THEN NULL ELSE '***' END"),
        "redact" | "null" => null,
        // One function node each (engine/mask_fn.rs), cheaper to plan than the SQL spelled out.
        "last4" if is_text => format!("mask_last4({col})"),
        "first4" if is_text => format!("mask_first4({col})"),
        "last4" | "first4" => null,
        "hash" => format!("encode(sha256(CAST({col} AS VARCHAR)), 'hex')"),
        "year" if matches!(ty, T::Date32 | T::Date64 | T::Timestamp(_, _)) => {
            format!("CAST(date_trunc('year', {col}) AS {})", sql_type(ty))
        }
        "year" => return Err("year masks apply to date and timestamp columns".into()),
        k if k.starts_with("expr:") => {
            let e = k.trim_start_matches("expr:").trim();
            if e.is_empty() {
                return Err("expr: mask needs an expression".into());
            }
            format!("({e})")
        }
        other => return Err(format!("unknown mask kind '{other}' (redact, last4, first4, hash, null, year, expr:...)")),
    })
}

fn sql_type(ty: &datafusion::arrow::datatypes::DataType) -> String {
    use datafusion::arrow::datatypes::DataType as T;
    match ty {
        T::Int16 => "SMALLINT".into(),
        T::Int32 => "INT".into(),
        T::Int64 => "BIGINT".into(),
        T::Float32 => "REAL".into(),
        T::Float64 => "DOUBLE".into(),
        T::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        T::Boolean => "BOOLEAN".into(),
        T::Date32 | T::Date64 => "DATE".into(),
        T::Timestamp(_, None) => "TIMESTAMP".into(),
        T::Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
        T::Binary | T::LargeBinary => "BYTEA".into(),
        _ => "VARCHAR".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_become_quoted_literals() {
        let s = Subject {
            name: "o'brien".into(),
            roles: vec!["o'brien".into()],
            attributes: [("nation".to_string(), "7' OR '1'='1".to_string())].into(),
        };
        let f = substitute("n = ${user.nation} AND u = ${user.name}", &s).unwrap();
        assert_eq!(f, "n = '7'' OR ''1''=''1' AND u = 'o''brien'");
        assert!(substitute("x = ${user.missing}", &s).is_err());
    }

    #[test]
    fn demo_rules_parse() {
        let r = Rules::parse(DEMO_RULES).unwrap();
        let s = Subject { name: "analyst".into(), roles: vec!["analyst".into(), "analysts".into()], ..Default::default() };
        assert_eq!(r.masks_for(&s, "lalo.tpch.customer")["c_phone"], "last4");
        assert!(Rules::parse("[[mask]]\ntable='a'\ncolumn='b'\nsubject='c'\nkind='bogus'").is_err());
    }
}
