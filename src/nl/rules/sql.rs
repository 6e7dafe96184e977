//! SQL assembly: a small query shape (select list, filters, grouping, order, limit) rendered as one
//! PostgreSQL SELECT with `schema.table AS table` names and joins along the join graph.

use super::index::Index;

/// The drafted query before rendering.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The table the question is about; joins start here.
    pub root: usize,
    /// Every table the expressions use.
    pub tables: Vec<usize>,
    pub select: Vec<String>,
    pub filters: Vec<String>,
    pub group_by: Vec<String>,
    pub having: Vec<String>,
    pub order_by: Vec<String>,
    pub limit: Option<u64>,
    pub distinct: bool,
}

impl Query {
    pub fn use_table(&mut self, t: usize) {
        if !self.tables.contains(&t) {
            self.tables.push(t);
        }
    }

    /// Render against `ix`; `None` when the tables cannot be joined.
    pub fn render(&self, ix: &Index) -> Option<(String, Vec<String>)> {
        let steps = ix.graph.connect(self.root, &self.tables, ix.tables.len())?;
        let root = &ix.tables[self.root];
        let mut sql = String::from("SELECT ");
        if self.distinct {
            sql.push_str("DISTINCT ");
        }
        sql.push_str(&self.select.join(", "));
        sql.push_str(&format!(" FROM {} AS {}", qualified(&root.qualified), ident(&root.name)));
        let mut used = vec![root.qualified.clone()];
        for s in &steps {
            let t = &ix.tables[s.table];
            let (a, b) = (&ix.tables[s.on.a], &ix.tables[s.on.b]);
            sql.push_str(&format!(
                " JOIN {} AS {} ON {} = {}",
                qualified(&t.qualified),
                ident(&t.name),
                column(&a.name, &a.columns[s.on.ac].name),
                column(&b.name, &b.columns[s.on.bc].name)
            ));
            used.push(t.qualified.clone());
        }
        if !self.filters.is_empty() {
            sql.push_str(&format!(" WHERE {}", self.filters.join(" AND ")));
        }
        if !self.group_by.is_empty() {
            sql.push_str(&format!(" GROUP BY {}", self.group_by.join(", ")));
        }
        if !self.having.is_empty() {
            sql.push_str(&format!(" HAVING {}", self.having.join(" AND ")));
        }
        if !self.order_by.is_empty() {
            sql.push_str(&format!(" ORDER BY {}", self.order_by.join(", ")));
        }
        if let Some(n) = self.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        Some((sql, used))
    }
}

/// `alias.column`, quoted where needed.
pub fn column(table: &str, column: &str) -> String {
    format!("{}.{}", ident(table), ident(column))
}

fn qualified(name: &str) -> String {
    name.split('.').map(ident).collect::<Vec<_>>().join(".")
}

/// An identifier, double-quoted unless it is plain lower-case and not a keyword.
pub fn ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !RESERVED.contains(&name) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

const RESERVED: &[&str] = &[
    "all", "and", "any", "array", "as", "asc", "case", "cast", "check", "column", "constraint", "create", "default", "desc",
    "distinct", "do", "else", "end", "except", "false", "for", "foreign", "from", "grant", "group", "having", "in", "into",
    "limit", "not", "null", "offset", "on", "or", "order", "primary", "references", "select", "table", "then", "to", "true",
    "union", "unique", "user", "using", "when", "where", "with", "window", "both", "leading", "trailing", "only", "analyse",
    "analyze", "current_date", "current_time", "current_user", "session_user", "some", "symmetric", "collate", "deferrable",
    "initially", "lateral", "localtime", "localtimestamp", "placing", "returning", "variadic", "fetch",
];

/// A SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A LIKE pattern literal matching `text` anywhere, with LIKE's wildcards escaped.
pub fn contains_pattern(text: &str) -> String {
    literal(&format!("%{}%", text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")))
}

/// A number as SQL.
pub fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}
