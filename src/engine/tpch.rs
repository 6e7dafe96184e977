//! The embedded demo schema `tpch`: TPC-H data generated with `tpchgen`, stored once as Parquet.

use std::fmt::Display;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{CsvReadOptions, SessionContext};
use tpchgen::csv::*;
use tpchgen::generators::*;

use crate::error::LaloError;

/// The eight TPC-H tables, in dependency order.
pub const TABLES: [&str; 8] =
    ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"];

fn money() -> DataType {
    DataType::Decimal128(15, 2)
}

fn fields(cols: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        cols.iter().map(|(n, t)| Field::new(*n, t.clone(), false)).collect::<Vec<_>>(),
    ))
}

/// The Arrow schema lalo serves for each TPC-H table (keys BIGINT, money NUMERIC(15,2), dates DATE).
pub fn schema(table: &str) -> SchemaRef {
    use DataType::*;
    match table {
        "region" => fields(&[("r_regionkey", Int64), ("r_name", Utf8), ("r_comment", Utf8)]),
        "nation" => fields(&[
            ("n_nationkey", Int64),
            ("n_name", Utf8),
            ("n_regionkey", Int64),
            ("n_comment", Utf8),
        ]),
        "supplier" => fields(&[
            ("s_suppkey", Int64),
            ("s_name", Utf8),
            ("s_address", Utf8),
            ("s_nationkey", Int64),
            ("s_phone", Utf8),
            ("s_acctbal", money()),
            ("s_comment", Utf8),
        ]),
        "customer" => fields(&[
            ("c_custkey", Int64),
            ("c_name", Utf8),
            ("c_address", Utf8),
            ("c_nationkey", Int64),
            ("c_phone", Utf8),
            ("c_acctbal", money()),
            ("c_mktsegment", Utf8),
            ("c_comment", Utf8),
        ]),
        "part" => fields(&[
            ("p_partkey", Int64),
            ("p_name", Utf8),
            ("p_mfgr", Utf8),
            ("p_brand", Utf8),
            ("p_type", Utf8),
            ("p_size", Int32),
            ("p_container", Utf8),
            ("p_retailprice", money()),
            ("p_comment", Utf8),
        ]),
        "partsupp" => fields(&[
            ("ps_partkey", Int64),
            ("ps_suppkey", Int64),
            ("ps_availqty", Int32),
            ("ps_supplycost", money()),
            ("ps_comment", Utf8),
        ]),
        "orders" => fields(&[
            ("o_orderkey", Int64),
            ("o_custkey", Int64),
            ("o_orderstatus", Utf8),
            ("o_totalprice", money()),
            ("o_orderdate", Date32),
            ("o_orderpriority", Utf8),
            ("o_clerk", Utf8),
            ("o_shippriority", Int32),
            ("o_comment", Utf8),
        ]),
        _ => fields(&[
            ("l_orderkey", Int64),
            ("l_partkey", Int64),
            ("l_suppkey", Int64),
            ("l_linenumber", Int32),
            ("l_quantity", money()),
            ("l_extendedprice", money()),
            ("l_discount", money()),
            ("l_tax", money()),
            ("l_returnflag", Utf8),
            ("l_linestatus", Utf8),
            ("l_shipdate", Date32),
            ("l_commitdate", Date32),
            ("l_receiptdate", Date32),
            ("l_shipinstruct", Utf8),
            ("l_shipmode", Utf8),
            ("l_comment", Utf8),
        ]),
    }
}

/// Directory holding `<table>.parquet` for one scale factor.
pub fn dir_for(data_dir: &Path, scale: f64) -> PathBuf {
    data_dir.join(format!("tpch-sf{scale}"))
}

/// Make sure every table exists as Parquet under `dir_for(data_dir, scale)`, generating what is missing.
pub async fn ensure_generated(data_dir: &Path, scale: f64) -> Result<PathBuf, LaloError> {
    let dir = dir_for(data_dir, scale);
    std::fs::create_dir_all(&dir)
        .map_err(|e| LaloError::Config(format!("cannot create {}: {e}", dir.display())))?;
    for table in TABLES {
        let target = dir.join(format!("{table}.parquet"));
        if target.exists() {
            continue;
        }
        tracing::info!(table, scale, "generating TPC-H table");
        // Generate into a private temp name and rename, so concurrent starts never see half a file.
        let tag = format!("{}-{}", std::process::id(), rand::random::<u32>());
        let csv = dir.join(format!(".{table}.{tag}.csv"));
        let tmp_parquet = dir.join(format!(".{table}.{tag}.parquet"));
        let csv_clone = csv.clone();
        let table_owned = table.to_string();
        tokio::task::spawn_blocking(move || write_csv(&table_owned, scale, &csv_clone))
            .await
            .map_err(|e| LaloError::Internal(e.to_string()))?
            .map_err(|e| LaloError::Config(format!("generating {table}: {e}")))?;
        let ctx = SessionContext::new();
        let sch = schema(table);
        let df = ctx
            .read_csv(
                csv.to_string_lossy().as_ref(),
                CsvReadOptions::new().schema(&sch).has_header(true).file_extension(".csv"),
            )
            .await?;
        df.write_parquet(
            tmp_parquet.to_string_lossy().as_ref(),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await?;
        let _ = std::fs::remove_file(&csv);
        std::fs::rename(&tmp_parquet, &target)
            .map_err(|e| LaloError::Config(format!("cannot write {}: {e}", target.display())))?;
    }
    Ok(dir)
}

fn write_rows<T: Display>(
    path: &Path,
    header: &str,
    rows: impl Iterator<Item = T>,
) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "{header}")?;
    for r in rows {
        writeln!(out, "{r}")?;
    }
    out.flush()
}

fn write_csv(table: &str, sf: f64, path: &Path) -> std::io::Result<()> {
    match table {
        "region" => write_rows(path, RegionCsv::header(), RegionGenerator::new(sf, 1, 1).iter().map(RegionCsv::new)),
        "nation" => write_rows(path, NationCsv::header(), NationGenerator::new(sf, 1, 1).iter().map(NationCsv::new)),
        "supplier" => write_rows(path, SupplierCsv::header(), SupplierGenerator::new(sf, 1, 1).iter().map(SupplierCsv::new)),
        "customer" => write_rows(path, CustomerCsv::header(), CustomerGenerator::new(sf, 1, 1).iter().map(CustomerCsv::new)),
        "part" => write_rows(path, PartCsv::header(), PartGenerator::new(sf, 1, 1).iter().map(PartCsv::new)),
        "partsupp" => write_rows(path, PartSuppCsv::header(), PartSuppGenerator::new(sf, 1, 1).iter().map(PartSuppCsv::new)),
        "orders" => write_rows(path, OrderCsv::header(), OrderGenerator::new(sf, 1, 1).iter().map(OrderCsv::new)),
        _ => write_rows(path, LineItemCsv::header(), LineItemGenerator::new(sf, 1, 1).iter().map(LineItemCsv::new)),
    }
}
