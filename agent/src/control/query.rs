//! `daemoneye-cli query`: one read-only SQL query over the newest scan (and whatever else it
//! reads), in a sandbox of its own: the rules' sandbox belongs to the pipeline, and a long
//! query must not hold up the next scan, nor a scan the query.

use std::sync::Arc;

use daemoneye_lib::detection::precheck::{self, CheckedSql};
use daemoneye_lib::detection::sandbox::{self, Cell, QueryError, QueryResult, Sandbox};
use daemoneye_lib::ipc::proto::{self, ErrorCode, agent_response};
use daemoneye_lib::storage::Store;
use daemoneye_lib::text;

use super::{AgentState, blocking, error};
use crate::tables::Tables;

/// Checks and runs `query`.
pub async fn answer(state: &AgentState, query: proto::QueryRequest) -> agent_response::Kind {
    let checked = match precheck::check(&query.sql) {
        Ok(checked) => checked,
        Err(refusal) => return error(ErrorCode::BadRequest, format!("query refused: {refusal}")),
    };
    // A slot bounds how many sandboxes and result sets exist at once; the semaphore is never
    // closed.
    let Ok(_slot) = state.queries.acquire().await else {
        return error(ErrorCode::Internal, "the agent is stopping");
    };
    let store = Arc::clone(&state.store);
    let limits = state.query_limits;
    blocking(move || match run(&store, &checked, limits) {
        Ok(result) => agent_response::Kind::Query(proto::QueryResult {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|row| proto::Row {
                    cells: row.into_iter().map(cell_to_proto).collect(),
                })
                .collect(),
            truncated: result.truncated,
            elapsed_us: u64::try_from(result.elapsed.as_micros()).unwrap_or(u64::MAX),
        }),
        // Refused, denied, stopped or failed: all are about the query, not the agent.
        Err(err) => error(ErrorCode::BadRequest, format!("query {err}")),
    })
    .await
}

/// Runs `sql` over the store in a new sandbox.
pub fn run(
    store: &Store,
    sql: &CheckedSql,
    limits: sandbox::Limits,
) -> Result<QueryResult, QueryError> {
    let read =
        |err: &dyn std::fmt::Display| QueryError::Failed(format!("reading the store: {err}"));
    let records = match store.latest_scan().map_err(|err| read(&err))? {
        Some(scan) => store.snapshot(scan.scan_id).map_err(|err| read(&err))?,
        None => Vec::new(),
    };
    // Outside a rule, process_events means every retained event, not one scan's.
    let tables = Tables::load(store, sql.tables(), None)
        .map_err(|err| QueryError::Failed(text::error_chain(err.as_ref())))?;
    let mut sandbox = Sandbox::new(limits).map_err(|err| QueryError::Failed(err.to_string()))?;
    sandbox
        .load(&tables.dataset(&records))
        .map_err(|err| QueryError::Failed(err.to_string()))?;
    sandbox.run(sql)
}

/// A result cell on the wire.
pub fn cell_to_proto(cell: Cell) -> proto::Cell {
    use proto::cell::Value;
    let value = match cell {
        Cell::Null => Value::Null(true),
        Cell::Integer(value) => Value::Integer(value),
        Cell::Real(value) => Value::Real(value),
        Cell::Text(value) => Value::Text(value),
        Cell::Blob(value) => Value::Blob(value),
    };
    proto::Cell { value: Some(value) }
}
