//! The declared keys of lalo's tables, as pg_catalog reports them: TPC-H's primary and foreign
//! keys (the benchmark's schema declares them; the Parquet files cannot), and the keys an
//! upstream declares, read at discovery into its docs.

use super::docs::{Docs, ForeignKeyDoc};

/// One table's primary key (empty: none) and foreign keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableKeys {
    pub primary_key: Vec<String>,
    pub foreign_keys: Vec<ForeignKeyDoc>,
}

/// (table, primary key, [(columns, referenced table, referenced columns)]) of TPC-H.
type TpchKeys = (&'static str, &'static [&'static str], &'static [(&'static [&'static str], &'static str, &'static [&'static str])]);

const TPCH: &[TpchKeys] = &[
    ("region", &["r_regionkey"], &[]),
    ("nation", &["n_nationkey"], &[(&["n_regionkey"], "region", &["r_regionkey"])]),
    ("supplier", &["s_suppkey"], &[(&["s_nationkey"], "nation", &["n_nationkey"])]),
    ("customer", &["c_custkey"], &[(&["c_nationkey"], "nation", &["n_nationkey"])]),
    ("part", &["p_partkey"], &[]),
    (
        "partsupp",
        &["ps_partkey", "ps_suppkey"],
        &[(&["ps_partkey"], "part", &["p_partkey"]), (&["ps_suppkey"], "supplier", &["s_suppkey"])],
    ),
    ("orders", &["o_orderkey"], &[(&["o_custkey"], "customer", &["c_custkey"])]),
    (
        "lineitem",
        &["l_orderkey", "l_linenumber"],
        &[
            (&["l_orderkey"], "orders", &["o_orderkey"]),
            (&["l_partkey", "l_suppkey"], "partsupp", &["ps_partkey", "ps_suppkey"]),
        ],
    ),
];

/// The keys of `db.schema.table`: what its docs declare (an upstream's), else TPC-H's for the
/// demo tables in `lalo.tpch`.
pub fn declared(docs: &Docs, db: &str, schema: &str, table: &str) -> TableKeys {
    if let Some(doc) = docs.table(db, schema, table) {
        if !doc.primary_key.is_empty() || !doc.foreign_keys.is_empty() {
            return TableKeys { primary_key: doc.primary_key.clone(), foreign_keys: doc.foreign_keys.clone() };
        }
    }
    if db != super::EMBEDDED_DB || schema != "tpch" {
        return TableKeys::default();
    }
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    TPCH.iter()
        .find(|(t, _, _)| *t == table)
        .map(|(_, pk, fks)| TableKeys {
            primary_key: strings(pk),
            foreign_keys: fks
                .iter()
                .map(|(cols, rt, rcols)| ForeignKeyDoc {
                    columns: strings(cols),
                    ref_schema: schema.to_string(),
                    ref_table: rt.to_string(),
                    ref_columns: strings(rcols),
                })
                .collect(),
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpch_keys_name_real_columns() {
        let docs = Docs::embedded();
        for (t, _, _) in TPCH {
            let keys = declared(&docs, "lalo", "tpch", t);
            let has = |table: &str, c: &str| super::super::tpch::schema(table).field_with_name(c).is_ok();
            assert!(keys.primary_key.iter().all(|c| has(t, c)), "{t}");
            for fk in &keys.foreign_keys {
                assert!(fk.columns.iter().all(|c| has(t, c)), "{t}");
                assert!(fk.ref_columns.iter().all(|c| has(&fk.ref_table, c)), "{t}");
            }
        }
        assert!(declared(&docs, "lalo", "public", "nation").primary_key.is_empty());
    }
}
