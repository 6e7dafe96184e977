//! Held-out databases under other naming habits (`lalo eval --holdout-restyle`).
//!
//! A drafter tuned on a corpus learns its names. To score it on databases it has never seen,
//! each held-out database is also loaded as a renamed copy: tables get a prefix they all share
//! and CamelCase (`domain_author` → `dwDomainAuthor`), columns camelCase behind an abbreviation
//! of their table with long words cut to four letters (`citation_num` → `pubCitaNum`), all in
//! a schema other than `public`. Comments stay on the renamed columns, so meaning the names
//! lose is still in the catalog, as in many real databases. Questions go to the copy; their
//! gold SQL runs on the original, and the rows are compared as usual.

use crate::error::LaloError;

/// The schema restyled tables live in.
pub const SCHEMA: &str = "app";
/// The prefix every restyled table name shares.
const TABLE_PREFIX: &str = "dw";

fn words(ident: &str) -> Vec<String> {
    ident.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

fn capitalized(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A word of a several-word column name as it is abbreviated: eight letters or more cut to four.
fn short(w: &str) -> String {
    if w.chars().count() > 7 {
        w.chars().take(4).collect()
    } else {
        w.to_string()
    }
}

/// `domain_author` → `dwDomainAuthor`.
pub fn table_name(table: &str) -> String {
    let mut out = TABLE_PREFIX.to_string();
    for w in words(table) {
        out.push_str(&capitalized(&w));
    }
    out
}

/// The abbreviation a table's columns start with: the first three letters of a one-word name,
/// the initials of a longer one (`publication` → `pub`, `domain_author` → `da`).
fn table_abbreviation(table: &str) -> String {
    let w = words(table);
    match w.as_slice() {
        [one] => one.chars().take(3).collect(),
        many => many.iter().filter_map(|x| x.chars().next()).collect(),
    }
}

/// `citation_num` of `publication` → `pubCitaNum`.
pub fn column_name(table: &str, column: &str) -> String {
    spelled(table, column, true)
}

fn spelled(table: &str, column: &str, clip: bool) -> String {
    let mut out = table_abbreviation(table);
    // A one-word name is kept whole (`authorid`): its parts are not known here.
    let clip = clip && words(column).len() > 1;
    for w in words(column) {
        out.push_str(&capitalized(&if clip { short(&w) } else { w }));
    }
    out
}

/// Rename everything in `public` of the database at `url` as described above and move it to
/// [`SCHEMA`].
pub async fn restyle(url: &str) -> Result<(), LaloError> {
    let pg = crate::pgcluster::client(url).await?;
    let rows = pg
        .query(
            "SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c \
             JOIN information_schema.tables t USING (table_schema, table_name) \
             WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' ORDER BY 1, c.ordinal_position",
            &[],
        )
        .await
        .map_err(|e| LaloError::Internal(format!("restyle: {e}")))?;
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut sql = format!("ALTER SCHEMA public RENAME TO {}; CREATE SCHEMA public;\n", q(SCHEMA));
    let mut last = None::<String>;
    let mut used = std::collections::HashSet::new();
    for r in &rows {
        let (table, column): (String, String) = (r.get(0), r.get(1));
        if last.as_deref() != Some(&table) {
            sql.push_str(&format!("ALTER TABLE {}.{} RENAME TO {};\n", q(SCHEMA), q(&table), q(&table_name(&table))));
            last = Some(table.clone());
            used.clear();
        }
        // Clipped words may make two names one (`authorname`, `authorid`): then spelled out,
        // then numbered.
        let mut renamed = column_name(&table, &column);
        if used.contains(&renamed) {
            renamed = spelled(&table, &column, false);
        }
        let base = renamed.clone();
        let mut n = 2;
        while used.contains(&renamed) {
            renamed = format!("{base}{n}");
            n += 1;
        }
        used.insert(renamed.clone());
        if renamed != column {
            sql.push_str(&format!("ALTER TABLE {}.{} RENAME COLUMN {} TO {};\n", q(SCHEMA), q(&table_name(&table)), q(&column), q(&renamed)));
        }
    }
    pg.batch_execute(&sql).await.map_err(|e| {
        let why = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
        LaloError::Internal(format!("restyle: {why}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_other_habits() {
        assert_eq!(table_name("domain_author"), "dwDomainAuthor");
        assert_eq!(table_name("author"), "dwAuthor");
        assert_eq!(column_name("publication", "citation_num"), "pubCitaNum");
        assert_eq!(column_name("domain_author", "aid"), "daAid");
        assert_eq!(column_name("author", "name"), "autName");
    }
}
