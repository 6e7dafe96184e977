//! Which functions and operators a statement may call upstream in the PostgreSQL lane.
//!
//! The line is PostgreSQL's own volatility marking: an *immutable* function computes from its
//! arguments alone, so it can neither read a table nor a setting nor change anything. The list
//! in `immutable_functions.txt` holds every `pg_catalog` function name all of whose overloads
//! are immutable, none taking or returning `internal`, `cstring`, a handler or a `reg*` type
//! (whose input looks names up in the catalog), without the `pg_`/`txid_` administrative
//! families. It was read off PostgreSQL 15's `pg_proc`:
//!
//! ```sql
//! WITH f AS (SELECT proname, bool_and(provolatile = 'i') imm, bool_or(prokind = 'p') proc,
//!   bool_or(EXISTS (SELECT 1 FROM unnest(proargtypes::oid[] || prorettype) t
//!     WHERE t IN ('internal'::regtype, 'cstring'::regtype, 'trigger'::regtype, …)
//!        OR format_type(t, NULL) LIKE 'reg%')) bad
//!   FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace GROUP BY proname)
//! SELECT proname FROM f WHERE imm AND NOT bad AND NOT proc
//!   AND proname !~ '^(pg_|txid_|table_am|xmlvalidate|binary_upgrade)' ORDER BY 1;
//! ```
//!
//! Stable and volatile functions can read the database or the server (`query_to_xml`,
//! `current_setting`, `has_table_privilege`, `pg_read_file`) or change the session
//! (`set_config`, `setseed`, advisory locks); only the reviewed ones below, which compute from
//! their arguments, the clock or the session's time zone, are added. A name not on either list
//! keeps the statement off this lane (the engine then plans it under its own rules).

use std::collections::HashSet;
use std::sync::OnceLock;

/// Stable or volatile functions reviewed to read nothing but their arguments, the clock, the
/// time zone or the text search configuration.
const REVIEWED: &[&str] = &[
    // Clock and randomness.
    "now", "statement_timestamp", "transaction_timestamp", "clock_timestamp", "timeofday", "random", "random_normal",
    "gen_random_uuid",
    // Dates and times under the session's time zone.
    "age", "date_trunc", "date_part", "extract", "date_bin", "date_add", "date_subtract", "to_char", "to_timestamp",
    "to_date", "to_number", "timestamptz", "timestamp", "date", "time", "timetz", "timezone", "make_timestamptz",
    "overlaps", "isfinite", "generate_series", "justify_interval",
    // Values to text and JSON (output functions of any type).
    "concat", "concat_ws", "format", "textanycat", "anytextcat", "array_to_string", "to_json", "to_jsonb",
    "row_to_json", "array_to_json", "json_build_object", "json_build_array", "jsonb_build_object",
    "jsonb_build_array", "json_object_agg", "jsonb_object_agg", "json_agg", "jsonb_agg", "json_agg_strict",
    "jsonb_agg_strict", "json_object_agg_strict", "jsonb_object_agg_strict", "json_object_agg_unique",
    "jsonb_object_agg_unique", "json_populate_record", "json_populate_recordset", "jsonb_populate_record",
    "jsonb_populate_recordset", "json_to_record", "json_to_recordset", "jsonb_to_record", "jsonb_to_recordset",
    "jsonb_path_exists_tz", "jsonb_path_match_tz", "jsonb_path_query_tz", "jsonb_path_query_array_tz",
    "jsonb_path_query_first_tz", "length", "convert_from", "convert_to", "string_agg", "xmlagg",
    // Text search under the default configuration.
    "to_tsvector", "to_tsquery", "plainto_tsquery", "phraseto_tsquery", "websearch_to_tsquery", "ts_headline",
    // Descriptions of values, not of the catalog.
    "pg_typeof", "pg_column_size", "format_type", "enum_first", "enum_last", "enum_range", "num_nulls",
    "num_nonnulls", "getdatabaseencoding", "pg_size_pretty", "pg_size_bytes",
];

fn immutable() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| include_str!("immutable_functions.txt").lines().map(str::trim).filter(|l| !l.is_empty()).collect())
}

/// Immutable, yet they describe the server's roles or open relations by OID.
const EXCLUDED: &[&str] = &["acldefault", "aclexplode", "aclinsert", "aclremove", "aclcontains", "makeaclitem", "satisfies_hash_partition"];

/// May a function of this (unqualified, folded) name run upstream?
pub fn allowed(name: &str) -> bool {
    !EXCLUDED.contains(&name) && (immutable().contains(name) || REVIEWED.contains(&name))
}

/// PostgreSQL's built-in operator names (`pg_operator.oprname` in `pg_catalog`).
const OPERATORS: &[&str] = &[
    "!!", "!~", "!~*", "!~~", "!~~*", "#", "##", "#-", "#>", "#>>", "%", "&", "&&", "&<", "&<|", "&>", "*", "*<",
    "*<=", "*<>", "*=", "*>", "*>=", "+", "-", "->", "->>", "-|-", "/", "<", "<->", "<<", "<<=", "<<|", "<=", "<>",
    "<@", "<^", "=", ">", ">=", ">>", ">>=", ">^", "?", "?#", "?&", "?-", "?-|", "?|", "?||", "@", "@-@", "@>",
    "@?", "@@", "@@@", "^", "^@", "|", "|&>", "|/", "|>>", "||", "||/", "~", "~*", "~<=~", "~<~", "~=", "~>=~",
    "~>~", "~~", "~~*", "!=",
];

/// Is `op` one of PostgreSQL's built-in operator names?
pub fn operator(op: &str) -> bool {
    OPERATORS.contains(&op)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_nothing_but_arguments() {
        for f in ["upper", "sum", "count", "round", "jsonb_extract_path", "now", "to_char", "generate_series"] {
            assert!(super::allowed(f), "{f}");
        }
        for f in [
            "query_to_xml", "current_setting", "set_config", "has_table_privilege", "pg_read_file", "setseed",
            "pg_advisory_lock", "nextval", "ts_rewrite", "ts_stat", "to_regclass", "pg_partition_root", "dblink",
            "lo_import", "pg_sleep", "version", "current_database", "obj_description", "pg_get_viewdef",
            "table_to_xml", "cursor_to_xml", "database_to_xml", "inet_server_addr", "pg_backend_pid", "acldefault",
            "makeaclitem", "satisfies_hash_partition",
        ] {
            assert!(!super::allowed(f), "{f}");
        }
    }
}
