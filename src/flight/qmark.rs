//! Flight SQL clients bind parameters with `?` (ADBC's and JDBC's Flight SQL drivers use the
//! qmark style); lalo's SQL is PostgreSQL's, whose parameters are `$1, $2, ...`. A prepared
//! statement's `?` marks outside literals, quoted names and comments become `$n` in order. A
//! statement that already uses `$n` is left as written.

/// The statement with its `?` parameter marks numbered.
pub fn numbered(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let (mut i, mut n, mut last) = (0usize, 0usize, 0usize);
    if has_dollar_params(sql) {
        return sql.to_string();
    }
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => i = closing(b, i, b[i]),
            b'-' if b.get(i + 1) == Some(&b'-') => i = b[i..].iter().position(|c| *c == b'\n').map_or(b.len(), |p| i + p + 1),
            b'/' if b.get(i + 1) == Some(&b'*') => i = sql[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2),
            b'$' => i = dollar_quoted(sql, i),
            b'?' => {
                n += 1;
                out.push_str(&sql[last..i]);
                out.push_str(&format!("${n}"));
                i += 1;
                last = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[last..]);
    out
}

/// Past the quoted text opened at `i` (a doubled quote stays inside).
fn closing(b: &[u8], i: usize, q: u8) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

/// Past a dollar-quoted string (`$$...$$`, `$tag$...$tag$`) opened at `i`, or one byte on.
fn dollar_quoted(sql: &str, i: usize) -> usize {
    let rest = &sql[i + 1..];
    let tag_len = rest.find('$').filter(|&p| rest[..p].chars().all(|c| c.is_alphanumeric() || c == '_') && !rest[..p].starts_with(|c: char| c.is_ascii_digit()));
    match tag_len {
        Some(p) => {
            let tag = &sql[i..i + p + 2];
            sql[i + tag.len()..].find(tag).map_or(sql.len(), |q| i + tag.len() + q + tag.len())
        }
        None => i + 1,
    }
}

fn has_dollar_params(sql: &str) -> bool {
    let b = sql.as_bytes();
    b.windows(2).any(|w| w[0] == b'$' && w[1].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn marks_outside_literals_become_numbered() {
        assert_eq!(numbered("SELECT * FROM t WHERE a = ? AND b < ?"), "SELECT * FROM t WHERE a = $1 AND b < $2");
        assert_eq!(numbered("SELECT '?', \"a?\", x FROM t -- ?\nWHERE y = ? /* ? */"), "SELECT '?', \"a?\", x FROM t -- ?\nWHERE y = $1 /* ? */");
        assert_eq!(numbered("SELECT $$?$$, ?"), "SELECT $$?$$, $1");
        assert_eq!(numbered("SELECT $1 + 1"), "SELECT $1 + 1");
        assert_eq!(numbered("SELECT 'it''s ?', ?"), "SELECT 'it''s ?', $1");
    }
}
