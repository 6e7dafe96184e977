//! The statement the upstream runs: the client's text with each relation reference replaced by
//! the governed text for it, and nothing else changed, then checked again by parsing the result.
//!
//! Replacing text rather than printing a rewritten tree keeps every other byte of the client's
//! statement (its literals, casts, spacing, comments) exactly as PostgreSQL would have read
//! them. The check after the splice is what makes it safe: the result is parsed again with the
//! same grammar, and every relation it reads must lie inside text lalo put there. A reference
//! the analysis missed, or a CTE of the client's that would capture a name inside the governed
//! text, fails the statement instead of reaching the upstream.
//!
//! Statements that differ only in their constants have one *shape* (PostgreSQL's scanner's
//! tokens, constants replaced by their kind): they parse to the same tree but for the constants'
//! values, so the replacements made for one apply to every other, by token position, without
//! parsing again.

use pg_query::protobuf::{ScanToken, Token};

use super::analyze::analyze_relations;

/// Quote an identifier for PostgreSQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A statement's scanner tokens and its shape key.
pub struct Shape {
    pub key: String,
    pub tokens: Vec<ScanToken>,
}

/// The shape of `text`: its text with every constant replaced by its token kind.
pub fn shape(text: &str) -> Result<Shape, String> {
    let tokens = pg_query::scan(text).map_err(|e| e.to_string())?.tokens;
    // `U&"…" UESCAPE '!'`: that string constant decides what an identifier says, so two texts
    // differing only in it are different statements. Such texts take no shape (nor the lane).
    if tokens.iter().any(|t| t.token == Token::Uescape as i32) {
        return Err("UESCAPE".into());
    }
    let mut key = String::with_capacity(text.len());
    let mut at = 0;
    for t in &tokens {
        let constant = [Token::Iconst, Token::Fconst, Token::Sconst, Token::Usconst, Token::Bconst, Token::Xconst]
            .iter()
            .any(|k| *k as i32 == t.token);
        if constant {
            let (s, e) = (t.start as usize, t.end as usize);
            key.push_str(text.get(at..s).ok_or("token inside a character")?);
            key.push_str(&format!("\u{0}{}\u{0}", t.token));
            at = e;
        }
    }
    key.push_str(text.get(at..).ok_or("token inside a character")?);
    Ok(Shape { key, tokens })
}

/// The index of the token that starts at byte `location`.
pub fn token_at(tokens: &[ScanToken], location: usize) -> Option<usize> {
    tokens.iter().position(|t| t.start as usize == location)
}

/// The byte range of the (possibly qualified) name whose first token is `tokens[i]`.
fn name_span(tokens: &[ScanToken], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    // `a . b . c`: a name, then a dot and a name, again.
    while j + 2 < tokens.len() && tokens[j + 1].token == Token::Ascii46 as i32 {
        j += 2;
    }
    Some((tokens.get(i)?.start as usize, tokens.get(j)?.end as usize))
}

/// `text` (scanned as `tokens`) with the name starting at each replacement's token replaced by
/// its text; returns the result and where the replacements lie in it.
pub fn splice(text: &str, tokens: &[ScanToken], replacements: &[(usize, String)]) -> Result<(String, Vec<(usize, usize)>), String> {
    let mut spans = Vec::with_capacity(replacements.len());
    for (i, with) in replacements {
        let (start, end) = name_span(tokens, *i).ok_or_else(|| format!("no relation name at token {i}"))?;
        spans.push((start, end, with));
    }
    spans.sort_by_key(|s| s.0);
    if spans.windows(2).any(|w| w[0].1 > w[1].0) {
        return Err("overlapping relation references".into());
    }
    let mut out = String::with_capacity(text.len() + spans.iter().map(|s| s.2.len()).sum::<usize>());
    let mut governed = Vec::with_capacity(spans.len());
    let mut at = 0;
    for (start, end, with) in &spans {
        out.push_str(text.get(at..*start).ok_or("relation position inside a character")?);
        governed.push((out.len(), out.len() + with.len()));
        out.push_str(with);
        at = *end;
    }
    out.push_str(text.get(at..).ok_or("relation position inside a character")?);
    Ok((out, governed))
}

/// `sql` with every unqualified relation name qualified by `schema` (the search path the
/// upstream's connections are pinned to, so the meaning is unchanged).
pub fn qualify(sql: &str, schema: &str) -> Result<String, String> {
    let (relations, ctes) = analyze_relations(sql)?;
    if !ctes.is_empty() {
        return Err("governed text with CTEs".into());
    }
    let tokens = pg_query::scan(sql).map_err(|e| e.to_string())?.tokens;
    let mut replacements = Vec::new();
    for r in relations.iter().filter(|r| r.schema.is_none() && r.catalog.is_none()) {
        let i = token_at(&tokens, r.location).ok_or("relation without a token")?;
        let t = &tokens[i];
        let written = sql.get(t.start as usize..t.end as usize).ok_or("token inside a character")?;
        replacements.push((i, format!("{}.{written}", quote_ident(schema))));
    }
    Ok(splice(sql, &tokens, &replacements)?.0)
}

/// Every relation `sql` reads, and every name a CTE of it captures, lies within `governed`.
pub fn verify(sql: &str, governed: &[(usize, usize)]) -> Result<(), String> {
    let (relations, ctes) = analyze_relations(sql)?;
    let inside = |at: usize| governed.iter().any(|(s, e)| *s <= at && at < *e);
    if let Some(r) = relations.iter().find(|r| !inside(r.location)) {
        return Err(format!("relation {} outside governed text", r.name));
    }
    if let Some(c) = ctes.iter().find(|at| inside(**at)) {
        return Err(format!("a CTE name captures a relation of governed text at {c}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_share_a_shape_and_names_do_not() {
        let a = shape("SELECT x FROM t WHERE id = 42 AND s = 'a'").unwrap();
        let b = shape("SELECT x FROM t WHERE id = 7 AND s = 'long text'").unwrap();
        let c = shape("SELECT x FROM u WHERE id = 7 AND s = 'long text'").unwrap();
        let d = shape("SELECT x FROM t WHERE id = 7.5 AND s = 'a'").unwrap();
        assert!(shape("WITH U&\"!0050ayroll\" UESCAPE '!' AS (SELECT 1) SELECT * FROM \"Payroll\"").is_err());
        assert_eq!(a.key, b.key);
        assert_ne!(a.key, c.key);
        assert_ne!(a.key, d.key);
    }

    #[test]
    fn qualifies_names_of_governed_text() {
        let sql = "SELECT \"staff\".\"id\" FROM \"staff\" WHERE dept IN (SELECT dept FROM depts d) AND x IN (SELECT 1 FROM s.t)";
        assert_eq!(
            qualify(sql, "public").unwrap(),
            "SELECT \"staff\".\"id\" FROM \"public\".\"staff\" WHERE dept IN (SELECT dept FROM \"public\".depts d) AND x IN (SELECT 1 FROM s.t)"
        );
    }

    #[test]
    fn splices_names_and_refuses_what_escapes() {
        let text = "SELECT s.id FROM public . staff s JOIN depts ON true";
        let sh = shape(text).unwrap();
        let i = token_at(&sh.tokens, text.find("public").unwrap()).unwrap();
        let j = token_at(&sh.tokens, text.find("depts").unwrap()).unwrap();
        let reps = vec![(i, "(SELECT id FROM public.staff OFFSET 0)".to_string()), (j, "public.depts AS depts".to_string())];
        let (sql, governed) = splice(text, &sh.tokens, &reps).unwrap();
        assert_eq!(sql, "SELECT s.id FROM (SELECT id FROM public.staff OFFSET 0) s JOIN public.depts AS depts ON true");
        verify(&sql, &governed).unwrap();
        // One reference left as the client wrote it is refused.
        let (sql, governed) = splice(text, &sh.tokens, &reps[..1]).unwrap();
        assert!(verify(&sql, &governed).is_err());
        // A client's CTE that would capture a name inside governed text is refused.
        let text = "WITH depts AS (SELECT 1) SELECT * FROM staff";
        let sh = shape(text).unwrap();
        let i = token_at(&sh.tokens, text.rfind("staff").unwrap()).unwrap();
        let reps = vec![(i, "(SELECT * FROM staff WHERE dept IN (SELECT dept FROM depts)) AS staff".to_string())];
        let (sql, governed) = splice(text, &sh.tokens, &reps).unwrap();
        assert!(verify(&sql, &governed).is_err(), "{sql}");
    }
}
