//! The drafter on schemas named by other habits than the corpora it is measured on: camelCase
//! behind a prefix every table shares, column names led by an abbreviation of their table,
//! clipped words whose meaning is in comments, a schema other than `public`, run-together ids.

use datafusion::arrow::datatypes::DataType;

use super::index::Index;
use super::Drafted;
use crate::nl::context::{ColumnInfo, SchemaContext, TableInfo};

fn col(name: &str, t: DataType, desc: Option<&str>) -> ColumnInfo {
    let mut c = ColumnInfo::new(name, t);
    c.description = desc.map(str::to_string);
    c
}

fn table(name: &str, columns: Vec<ColumnInfo>) -> TableInfo {
    TableInfo { catalog: "shop".into(), schema: "sales".into(), name: name.into(), description: None, columns }
}

/// A small shop as some teams name it: `tbl` + CamelCase tables, `xxCamel` columns.
fn shop() -> SchemaContext {
    use DataType::*;
    SchemaContext {
        tables: vec![
            table(
                "tblCustomer",
                vec![
                    col("custId", Int64, None),
                    col("custFullName", Utf8, Some("the customer's full name")),
                    col("custCtry", Utf8, Some("country the customer lives in")),
                ],
            ),
            table(
                "tblPurchaseOrder",
                vec![
                    col("poId", Int64, None),
                    col("poCustId", Int64, Some("the customer who placed the order")),
                    col("poTotAmt", Float64, Some("total amount of the order")),
                    col("poOrdDt", Date32, Some("date the order was placed")),
                ],
            ),
            table(
                "tblWarehouse",
                vec![col("whId", Int64, None), col("whLoca", Utf8, Some("location (city) of the warehouse"))],
            ),
        ],
        foreign_keys: vec![],
    }
}

#[test]
fn names_split_at_humps_and_shared_prefixes_drop() {
    let ix = Index::new(&shop());
    let words: Vec<&Vec<String>> = ix.tables.iter().map(|t| &t.words).collect();
    assert_eq!(words[0], &vec!["customer".to_string()]);
    assert_eq!(words[1], &vec!["purchase".to_string(), "order".to_string()]);
    let loca = &ix.tables[2].columns[1];
    assert!(loca.words.contains(&"location".to_string()), "a clipped word read from its comment: {:?}", loca.words);
    // The order's customer id joins the customer's id although no name is the same.
    assert!(
        ix.graph.edges.iter().any(|e| (e.a, e.b) == (1, 0) || (e.a, e.b) == (0, 1)),
        "inferred key between orders and customers: {:?}",
        ix.graph.edges
    );
}

#[test]
fn questions_in_plain_words_reach_abbreviated_names() {
    let d = super::Drafter::new(&shop());
    for (q, want) in [
        ("How many customers are there?", vec!["COUNT", "sales.\"tblCustomer\""]),
        // "customer country": the customer's country, a column whose name clips the word.
        ("Sum of the total amount for each customer country", vec!["SUM(\"tblPurchaseOrder\".\"poTotAmt\")", "GROUP BY \"tblCustomer\".\"custCtry\""]),
        ("How many purchase orders did each customer place?", vec!["COUNT", "\"poCustId\" = \"tblCustomer\".\"custId\""]),
        // `whLoca` is read from its comment.
        ("Show the warehouse locations", vec!["\"whLoca\""]),
    ] {
        match d.draft(q) {
            Drafted::Sql { sql, .. } => {
                for w in want {
                    assert!(sql.contains(w), "{q}: {sql} lacks {w}");
                }
            }
            Drafted::Declined { reason } => panic!("{q}: declined: {reason}"),
        }
    }
}



