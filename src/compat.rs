//! Exact fragments of well-known client catalog queries that DataFusion cannot plan as sent,
//! replaced by equivalents it can. Each entry names the client that sends it; the rewrite only
//! fires on the verbatim text, so user queries are never touched.

/// (client, fragment as sent, replacement).
const REWRITES: &[(&str, &str, &str)] = &[
    (
        // psql \d+: lalo tables have no storage options.
        "psql \\d+",
        "pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ')",
        "''",
    ),
    (
        // DBeaver/pgJDBC array type probe: pg_type.typinput holds the function name here.
        "pgjdbc/DBeaver",
        "typinput='pg_catalog.array_in'::regproc",
        "typinput='array_in'",
    ),
    (
        // pgcli function listing: argument type arrays are not modelled; report none.
        "pgcli",
        "COALESCE(proallargtypes::regtype[], proargtypes::regtype[])::text[]",
        "CAST(NULL AS TEXT[])",
    ),
];

/// Apply the known rewrites; returns the text unchanged when none match.
pub fn rewrite(sql: &str) -> std::borrow::Cow<'_, str> {
    let mut out = std::borrow::Cow::Borrowed(sql);
    for (_, needle, replacement) in REWRITES {
        if out.contains(needle) {
            out = std::borrow::Cow::Owned(out.replace(needle, replacement));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn rewrites_only_verbatim_fragments() {
        assert_eq!(super::rewrite("select 1"), "select 1");
        assert!(super::rewrite("SELECT typinput='pg_catalog.array_in'::regproc as is_array").contains("typinput='array_in'"));
    }
}
