//! Tests of the pinned move: answers equal with and without it, and where each join lands.

use super::*;
use datafusion::arrow::array::{Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;

/// A table held in memory with its statistics, as `memory_cache.rs` registers it.
async fn held(ctx: &SessionContext, name: &str, batch: RecordBatch) -> Result<()> {
    let schema = batch.schema();
    let parts = vec![vec![batch]];
    let table = Arc::new(MemTable::try_new(schema.clone(), parts.clone())?);
    let columns = crate::engine::table_stats::compute(ctx, table.clone()).await.map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    let stats = crate::engine::table_stats::whole(&parts, &schema, columns);
    ctx.register_table(name, Arc::new(crate::engine::memory_scan::CachedTable::new(table, stats)))?;
    Ok(())
}

/// Lines with an order each, orders with a region code, regions (and a table of codes
/// where each code appears twice).
async fn context(with_rule: bool) -> Result<SessionContext> {
    let mut rules = datafusion::optimizer::Optimizer::new().rules;
    if with_rule {
        rules.push(Arc::new(PinnedFirst));
    }
    // A failing rule is an error here, not a plan quietly left as it was.
    let mut cfg = datafusion::prelude::SessionConfig::new();
    cfg.options_mut().optimizer.skip_failed_rules = false;
    let ctx = SessionContext::new_with_state(SessionStateBuilder::new().with_default_features().with_config(cfg).with_optimizer_rules(rules).build());
    let int = |v: Vec<i32>| Arc::new(Int32Array::from(v));
    let n = 2000;
    let lines = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("l_order", DataType::Int32, false), Field::new("l_qty", DataType::Int32, false)])),
        vec![int((0..n).map(|i| i % 500).collect()), int((0..n).collect())],
    )?;
    let orders = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("o_key", DataType::Int32, false), Field::new("o_region", DataType::Int32, false)])),
        vec![int((0..500).collect()), int((0..500).map(|i| i % 5).collect())],
    )?;
    let region = |name: &str, keys: Vec<i32>| -> Result<RecordBatch> {
        let names: Vec<String> = keys.iter().map(|k| format!("{name}{k}")).collect();
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("r_key", DataType::Int32, false), Field::new("r_name", DataType::Utf8, false)])),
            vec![int(keys), Arc::new(StringArray::from(names))],
        )?)
    };
    // Shops with a zone each, zones with a belt each, belts with a name: lines are sold by a
    // shop of the order's zone (Q05's customers and suppliers of one nation).
    let shops = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("s_key", DataType::Int32, false), Field::new("s_zone", DataType::Int32, false)])),
        vec![int((0..50).collect()), int((0..50).map(|i| i % 5).collect())],
    )?;
    let zones = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("z_key", DataType::Int32, false), Field::new("z_belt", DataType::Int32, false)])),
        vec![int((0..5).collect()), int((0..5).map(|i| i % 2).collect())],
    )?;
    let belts = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("b_key", DataType::Int32, false), Field::new("b_name", DataType::Utf8, false)])),
        vec![int(vec![0, 1]), Arc::new(StringArray::from(vec!["even", "odd"]))],
    )?;
    held(&ctx, "shops", shops).await?;
    held(&ctx, "zones", zones).await?;
    held(&ctx, "belts", belts).await?;
    held(&ctx, "lines", lines).await?;
    held(&ctx, "orders", orders).await?;
    held(&ctx, "region", region("r", (0..5).collect())?).await?;
    held(&ctx, "twice", region("t", (0..5).chain(0..5).collect())?).await?;
    Ok(ctx)
}

async fn run(with_rule: bool, sql: &str) -> Result<(String, String)> {
    let df = context(with_rule).await?.sql(sql).await?;
    let plan = df.clone().into_optimized_plan()?.display_indent().to_string();
    Ok((pretty_format_batches(&df.collect().await?)?.to_string(), plan))
}

/// The depth of the first line naming `what` in an indented plan.
fn depth(plan: &str, what: &str) -> Option<usize> {
    plan.lines().find(|l| l.contains(what)).map(|l| l.len() - l.trim_start().len())
}

#[tokio::test]
async fn a_pinned_region_joins_the_orders_before_their_lines() -> Result<()> {
    let sql = "select r_name, count(*), sum(l_qty) from lines, orders, region \
               where l_order = o_key and o_region = r_key and r_name = 'r3' group by r_name";
    let (want, before) = run(false, sql).await?;
    let (got, after) = run(true, sql).await?;
    assert_eq!(got, want, "{after}");
    assert!(want.contains("r3") && want.contains("400"), "{want}");
    let (lines_join, region_join) = ("lines.l_order = orders.o_key", "orders.o_region = region.r_key");
    assert!(depth(&before, region_join) < depth(&before, lines_join), "{before}");
    assert!(depth(&after, region_join) > depth(&after, lines_join), "the region joins the orders first:\n{after}");
    // The orders with their region, small and pinned as a pair, do not go under the filter
    // of the lines' scan: that would lift the filter off the scan.
    let sql = sql.replace("r_name = 'r3'", "r_name = 'r3' and l_qty > 100");
    let (want, _) = run(false, &sql).await?;
    let (got, after) = run(true, &sql).await?;
    assert_eq!(got, want, "{after}");
    let filter = after.lines().position(|l| l.contains("Filter: lines.l_qty > Int32(100)")).unwrap_or(usize::MAX);
    assert!(after.lines().nth(filter + 1).is_some_and(|l| l.contains("TableScan: lines")), "{after}");
    Ok(())
}

#[tokio::test]
async fn a_pinned_pair_joins_the_orders_through_a_column_equal_to_its_key() -> Result<()> {
    // As in TPC-H Q05: the zone joins the shops, the shop's zone equals the order's, and the
    // zones' belt is pinned. The zones with their belt join the orders before the lines do.
    let sql = "select b_name, z_key, count(*), sum(l_qty) from orders, lines, shops, zones, belts \
               where l_order = o_key and l_qty % 50 = s_key and o_region = s_zone and s_zone = z_key \
               and z_belt = b_key and b_name = 'odd' group by b_name, z_key order by z_key";
    let (want, _) = run(false, sql).await?;
    let (got, after) = run(true, sql).await?;
    assert_eq!(got, want, "{after}");
    assert!(want.contains("odd") && want.lines().filter(|l| l.contains("odd")).count() == 2, "{want}");
    let (lines_join, zone_join) = ("lines.l_order = orders.o_key", "orders.o_region = zones.z_key");
    assert!(depth(&after, zone_join) > depth(&after, lines_join), "the zones join the orders first:\n{after}");
    // The zones go no further down than an outer join: one below it would drop the orders
    // the outer join must keep.
    let outer = sql.replace("from orders, lines, shops", "from orders left join lines on l_order = o_key, shops")
        .replace("where l_order = o_key and", "where");
    let (want, _) = run(false, &outer).await?;
    let (got, after) = run(true, &outer).await?;
    assert_eq!(got, want, "{after}");
    assert!(depth(&after, zone_join) < depth(&after, "Left Join: orders.o_key = lines.l_order"), "{after}");
    Ok(())
}

#[tokio::test]
async fn a_filter_over_an_outer_join_keeps_its_place() -> Result<()> {
    // The WHERE on o2 makes the LEFT JOIN an inner one, once the filter sits right above it.
    // A pinned pair moved under that filter kept the join an outer one, and the filter, left
    // above two columns named `o_key`, narrowed o instead of o2 (DataFusion routes by name).
    let sql = "select o.o_key, o2.o_key as k2 from orders o left join orders o2 on o.o_region = o2.o_region \
               join zones on z_key = o.o_region join belts on z_belt = b_key \
               where o2.o_key < 30 and o.o_key < 100 and b_name = 'odd' order by 1, 2";
    let (want, _) = run(false, sql).await?;
    let (got, after) = run(true, sql).await?;
    assert_eq!(got, want, "{after}");
    assert_eq!(want.lines().count(), 4 + 40 * 6, "{want}");
    Ok(())
}

#[tokio::test]
async fn two_pinned_copies_of_a_table_keep_their_rows() -> Result<()> {
    // Both copies' columns are named alike; the OR across them stays a condition of its join.
    let sql = "select r1.r_name, r2.r_name, count(*) from lines, orders, region r1, region r2 \
               where l_order = o_key and o_region = r1.r_key and o_key % 5 = r2.r_key \
               and (r1.r_name = 'r1' and r2.r_name = 'r2' or r1.r_name = 'r2' and r2.r_name = 'r1') \
               and r1.r_name in ('r1', 'r2') and r2.r_name in ('r1', 'r2') group by 1, 2 order by 1, 2";
    let (want, _) = run(false, sql).await?;
    let (got, after) = run(true, sql).await?;
    assert_eq!(got, want, "{after}");
    assert_eq!(want.lines().filter(|l| l.contains("| r1") || l.contains("| r2")).count(), 0, "o_region = o_key % 5: no order has two regions\n{want}");
    let sql = sql.replace("o_key % 5 = r2.r_key", "o_region = r2.r_key").replace("r2.r_name = 'r2' or", "r2.r_name = 'r1' or").replace("r2.r_name = 'r1')", "r2.r_name = 'r2')");
    let (want, _) = run(false, &sql).await?;
    let (got, after) = run(true, &sql).await?;
    assert_eq!(got, want, "{after}");
    assert!(want.contains("400"), "{want}");
    Ok(())
}

#[tokio::test]
async fn unpinned_or_repeated_keys_stay_where_written() -> Result<()> {
    for sql in [
        // No constant narrows the region.
        "select count(*) from lines, orders, region where l_order = o_key and o_region = r_key and r_name <> 'r3'",
        // Each code twice: joining it earlier would double the rows flowing through.
        "select count(*) from lines, orders, twice where l_order = o_key and o_region = r_key and r_name = 't3'",
        // A second copy of a table already joined: its columns' names would appear twice below.
        "select * from lines, orders, region r1, region r2 where l_order = o_key and o_region = r1.r_key \
         and o_region = r2.r_key and r2.r_name = 'r3' order by l_qty limit 5",
    ] {
        let (want, before) = run(false, sql).await?;
        let (got, after) = run(true, sql).await?;
        assert_eq!(got, want);
        assert_eq!(after, before, "{sql}");
    }
    Ok(())
}
