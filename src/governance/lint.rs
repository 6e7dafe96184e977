//! Policy checks for `lalo check`: every rule names a real table and column, every row filter
//! plans, every mask kind fits its column; problems carry the file and line.

use std::sync::Arc;

use crate::config::Config;
use crate::engine::views::SeeAll;
use crate::engine::Engine;

use super::rules::{mask_sql, substitute, Rules, Subject};
use super::Governance;

/// Line (1-based) of the n-th `[[section]]` header in the rules file.
fn line_of(text: &str, section: &str, n: usize) -> usize {
    let header = format!("[[{section}]]");
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == header)
        .nth(n)
        .map(|(i, _)| i + 1)
        .unwrap_or(0)
}

/// Check rules.toml against the catalog.
pub async fn lint(gov: &Governance, engine: &Engine, _cfg: &Config) -> Vec<String> {
    let path = gov.policy_dir().join("rules.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let rules = match Rules::parse(&text) {
        Ok(r) => r,
        Err(e) => return vec![format!("{}: {e}", path.display())],
    };
    let ctx = match engine.session_context(
        crate::engine::EMBEDDED_DB,
        "lalo-check",
        Arc::new(SeeAll),
        Default::default(),
    ) {
        Ok(c) => c,
        Err(e) => return vec![e.to_string()],
    };
    let mut problems = Vec::new();
    let file = path.display().to_string();
    let table_schema = |t: &str| {
        let ctx = ctx.clone();
        let t = t.to_string();
        async move { ctx.table_provider(t.as_str()).await.ok().map(|p| p.schema()) }
    };
    for (i, f) in rules.row_filter.iter().enumerate() {
        let line = line_of(&text, "row_filter", i);
        if table_schema(&f.table).await.is_none() {
            problems.push(format!("{file}:{line}: row_filter: unknown table {}", f.table));
            continue;
        }
        // Plan with placeholder attributes so the expression itself is checked.
        let mut subject = Subject { name: "check".into(), ..Default::default() };
        for key in placeholders(&f.filter) {
            subject.attributes.insert(key, "0".into());
        }
        let Ok(filter) = substitute(&f.filter, &subject) else {
            problems.push(format!("{file}:{line}: row_filter: bad placeholder in {}", f.filter));
            continue;
        };
        let sql = format!("SELECT * FROM {} WHERE {filter}", f.table);
        if let Err(e) = ctx.state().create_logical_plan(&sql).await {
            problems.push(format!("{file}:{line}: row_filter on {}: {}", f.table, crate::error::LaloError::from(e)));
        }
    }
    for (i, m) in rules.mask.iter().enumerate() {
        let line = line_of(&text, "mask", i);
        let Some(schema) = table_schema(&m.table).await else {
            problems.push(format!("{file}:{line}: mask: unknown table {}", m.table));
            continue;
        };
        match schema.field_with_name(&m.column.to_ascii_lowercase()) {
            Err(_) => problems.push(format!("{file}:{line}: mask: table {} has no column {}", m.table, m.column)),
            Ok(field) => {
                if let Err(e) = mask_sql(&m.kind, &format!("\"{}\"", m.column), field.data_type()) {
                    problems.push(format!("{file}:{line}: mask on {}.{}: {e}", m.table, m.column));
                }
            }
        }
    }
    problems
}

fn placeholders(filter: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = filter;
    while let Some(s) = rest.find("${user.") {
        let after = &rest[s + 7..];
        let Some(e) = after.find('}') else { break };
        out.push(after[..e].to_string());
        rest = &after[e..];
    }
    out
}
