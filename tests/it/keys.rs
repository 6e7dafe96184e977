//! Select-list scalar subqueries return their values, and pg_catalog reports the demo tables'
//! primary and foreign keys the way SQLAlchemy's reflection reads them.

use crate::common;

#[tokio::test]
async fn correlated_select_list_subquery_returns_values() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    let sql = "SELECT (SELECT c.c_name FROM tpch.customer c WHERE c.c_custkey = o.o_custkey) \
               FROM tpch.orders o ORDER BY o.o_orderkey LIMIT 5";
    let expected = "SELECT c.c_name FROM tpch.orders o JOIN tpch.customer c ON c.c_custkey = o.o_custkey \
                    ORDER BY o.o_orderkey LIMIT 5";
    let names = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get::<_, Option<String>>(0)).collect::<Vec<_>>();
    let got = names(c.query(sql, &[]).await.unwrap());
    let want = names(c.query(expected, &[]).await.unwrap());
    assert_eq!(want.len(), 5);
    assert!(want.iter().all(Option::is_some));
    assert_eq!(got, want);
    // With a bound parameter, in the extended protocol.
    let one = "SELECT (SELECT c.c_name FROM tpch.customer c WHERE c.c_custkey = $1) AS name";
    let row = c.query_one(one, &[&1i64]).await.unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("Customer#000000001"));
}

#[tokio::test]
async fn primary_and_foreign_keys_reflect() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    // SQLAlchemy's primary-key query shape: the index's key columns numbered by generate_subscripts.
    let pk = "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_catalog.pg_attribute a JOIN \
              (SELECT con.conrelid, unnest(i.indkey) AS attnum, generate_subscripts(i.indkey, 1) AS ord \
               FROM pg_catalog.pg_constraint con JOIN pg_catalog.pg_index i ON con.conindid = i.indexrelid \
               WHERE con.contype = 'p' AND con.conrelid = (SELECT c.oid FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'tpch' AND c.relname = 'lineitem')) k \
              ON a.attrelid = k.conrelid AND a.attnum = k.attnum";
    let msgs = c.simple_query(pk).await.unwrap();
    assert_eq!(common::text_rows(&msgs), vec![vec!["{l_orderkey,l_linenumber}".to_string()]]);
    let fk = "SELECT pg_get_constraintdef(con.oid, true) FROM pg_catalog.pg_constraint con \
              JOIN pg_catalog.pg_class c ON c.oid = con.conrelid WHERE con.contype = 'f' AND c.relname = 'nation'";
    let msgs = c.simple_query(fk).await.unwrap();
    assert_eq!(
        common::text_rows(&msgs),
        vec![vec!["FOREIGN KEY (n_regionkey) REFERENCES tpch.region(r_regionkey)".to_string()]]
    );
    // indkey is an int2vector: described as such, written "1 4" in text.
    let vec_sql = "SELECT i.indkey FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid \
                   WHERE c.relname = 'lineitem'";
    let msgs = c.simple_query(vec_sql).await.unwrap();
    assert_eq!(common::text_rows(&msgs), vec![vec!["1 4".to_string()]]);
    let stmt = c.prepare(vec_sql).await.unwrap();
    assert_eq!(stmt.columns()[0].type_(), &tokio_postgres::types::Type::INT2_VECTOR);
}

/// The information_schema key views BI tools and ORMs read (DBeaver, Metabase, Hibernate) list
/// the same keys as pg_constraint, column by column.
#[tokio::test]
async fn information_schema_lists_primary_and_foreign_keys() {
    let s = common::start().await;
    let c = s.connect("admin").await;
    let rows = |sql: &'static str| {
        let c = &c;
        async move { common::text_rows(&c.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))) }
    };
    let keys = rows(
        "SELECT tc.constraint_name, tc.constraint_type, kcu.column_name, kcu.ordinal_position \
         FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kcu \
           ON kcu.constraint_schema = tc.constraint_schema AND kcu.constraint_name = tc.constraint_name \
         WHERE tc.table_schema = 'tpch' AND tc.table_name = 'lineitem' ORDER BY 1, 4",
    )
    .await;
    let want: Vec<Vec<String>> = [
        ["lineitem_l_orderkey_fkey", "FOREIGN KEY", "l_orderkey", "1"],
        ["lineitem_l_partkey_l_suppkey_fkey", "FOREIGN KEY", "l_partkey", "1"],
        ["lineitem_l_partkey_l_suppkey_fkey", "FOREIGN KEY", "l_suppkey", "2"],
        ["lineitem_pkey", "PRIMARY KEY", "l_orderkey", "1"],
        ["lineitem_pkey", "PRIMARY KEY", "l_linenumber", "2"],
    ]
    .iter()
    .map(|r| r.iter().map(|v| v.to_string()).collect())
    .collect();
    assert_eq!(keys, want);
    // A foreign key's target: the referenced table's primary key and columns.
    let refs = rows(
        "SELECT rc.unique_constraint_name, ccu.table_name, ccu.column_name FROM information_schema.referential_constraints rc \
         JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = rc.constraint_name \
         WHERE rc.constraint_name = 'orders_o_custkey_fkey'",
    )
    .await;
    assert_eq!(refs, vec![vec!["customer_pkey".to_string(), "customer".into(), "c_custkey".into()]]);
    // As many constraints as pg_constraint lists.
    let a = rows("SELECT count(*) FROM information_schema.table_constraints WHERE table_schema = 'tpch'").await;
    let b = rows("SELECT count(*) FROM pg_catalog.pg_constraint con JOIN pg_catalog.pg_namespace n ON n.oid = con.connamespace WHERE n.nspname = 'tpch'").await;
    assert_eq!(a, b);
}
