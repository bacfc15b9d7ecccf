//! A lookup table read from PostgreSQL by a query, again every refresh.
//!
//! The query runs over the simple-query protocol, which returns every cell
//! as text: cells are then typed as CSV cells are, so any column type
//! (numeric, uuid, timestamptz, enum...) works without a mapping. The
//! connection lives on the reload thread, with its own single-threaded
//! runtime; it is made again after a failure.

use std::time::Duration;

use eddy_core::Sym;
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::table::Table;
use super::{log_load, PostgresTable};
use crate::reload::Origin;

/// How long connecting and one run of the query may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The [`Origin`] of a PostgreSQL lookup table.
pub struct PgTable {
    url: String,
    query: String,
    column: String,
    runtime: Runtime,
    client: Option<Client>,
}

impl PgTable {
    /// Reads `table`'s query, keyed by `column`.
    pub fn new(table: &PostgresTable, column: String) -> Result<PgTable, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        Ok(PgTable {
            url: table.url.clone(),
            query: table.query.clone(),
            column,
            runtime,
            client: None,
        })
    }

    fn query(&mut self) -> Result<Table, String> {
        let rt = &self.runtime;
        if self.client.is_none() {
            let (client, connection) = rt
                .block_on(async {
                    tokio::time::timeout(TIMEOUT, tokio_postgres::connect(&self.url, NoTls)).await
                })
                .map_err(|_| "connecting timed out".to_string())?
                .map_err(|e| format!("cannot connect: {e}"))?;
            rt.spawn(connection);
            self.client = Some(client);
        }
        let Some(client) = &self.client else {
            unreachable!("connected above")
        };
        let messages = rt
            .block_on(async {
                tokio::time::timeout(TIMEOUT, client.simple_query(&self.query)).await
            })
            .map_err(|_| "the query timed out".to_string())?
            .map_err(|e| format!("the query failed: {e}"))?;
        let mut names: Vec<Sym> = Vec::new();
        let mut rows = Vec::new();
        for message in &messages {
            if let SimpleQueryMessage::Row(row) = message {
                if names.is_empty() {
                    names = row
                        .columns()
                        .iter()
                        .map(|c| Sym::intern(c.name()))
                        .collect();
                }
                rows.push((0..row.len()).map(|i| row.get(i)).collect::<Vec<_>>());
            }
        }
        if !names.is_empty() && !names.contains(&Sym::intern(&self.column)) {
            return Err(format!(
                "the query gives no column `{}` to key the rows by",
                self.column
            ));
        }
        Ok(Table::from_text_rows(
            &self.column,
            &names,
            rows.into_iter(),
        ))
    }
}

impl Origin for PgTable {
    type Data = Table;

    fn changed(&mut self) -> bool {
        true
    }

    fn load(&mut self) -> Result<Table, String> {
        let table = self.query().inspect_err(|_| self.client = None)?;
        log_load(&self.describe(), &table);
        Ok(table)
    }

    fn describe(&self) -> String {
        format!("PostgreSQL query `{}`", self.query)
    }
}
