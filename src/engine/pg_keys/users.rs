//! `pg_catalog.pg_user`: PostgreSQL's view of the roles that can log in, over `pg_roles`
//! (Npgsql's GetSchema("Databases") and psqlODBC's SQLTablePrivileges join it for owners'
//! names). The password is never shown, as in PostgreSQL.

use std::sync::Arc;

use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::{provider_as_source, ViewTable};
use datafusion::error::Result;
use datafusion::logical_expr::{col, lit, LogicalPlanBuilder};

pub async fn view(catalog: &dyn SchemaProvider) -> Result<Option<Arc<dyn TableProvider>>> {
    let Some(roles) = catalog.table("pg_roles").await? else { return Ok(None) };
    let plan = LogicalPlanBuilder::scan("pg_roles", provider_as_source(roles), None)?
        .filter(col("rolcanlogin").is_true())?
        .project(vec![
            col("rolname").alias("usename"),
            col("oid").alias("usesysid"),
            col("rolcreatedb").alias("usecreatedb"),
            col("rolsuper").alias("usesuper"),
            col("rolreplication").alias("userepl"),
            col("rolbypassrls").alias("usebypassrls"),
            lit("********").alias("passwd"),
            col("rolvaliduntil").alias("valuntil"),
            col("rolconfig").alias("useconfig"),
        ])?
        .build()?;
    Ok(Some(Arc::new(ViewTable::new(plan, None))))
}
