//! The PostgreSQL sink's schema: the DDL of the alerts table and of the version table (the
//! text `docs/sinks/postgres.md` shows), the batch insert, and the check each connection makes
//! before it writes ([`ensure_schema`]).
//!
//! # Versions
//!
//! `daemoneye_schema` holds one row per alerts table (`component` is the table's name) with
//! the schema version it was created or migrated to; this agent writes version
//! [`SCHEMA_VERSION`]. A later version only adds (columns that are nullable or have a
//! default, indexes), in a step run by the first agent of that version to connect, under the
//! same lock, so that agents of the older version keep writing into the migrated table. A
//! change that cannot be made by adding goes to a table of a new name instead.

use std::time::Duration;

use tokio_postgres::Client;

use super::{COLUMNS, Failed, SCHEMA_LOCK, SCHEMA_TABLE, SCHEMA_VERSION, within};

/// `"name"`: `name` is a checked identifier ([`super::valid_table`]), quoted all the same.
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The DDL that creates an alerts table named `table` (documented verbatim).
pub fn create_sql(table: &str) -> String {
    let t = quote_ident(table);
    format!(
        "CREATE TABLE {t} (
    id          text        NOT NULL,
    detected_at timestamptz NOT NULL,
    host        text        NOT NULL,
    site        text,
    rule_id     text        NOT NULL,
    severity    text        NOT NULL,
    alert       jsonb       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, detected_at)
);
CREATE INDEX ON {t} (detected_at);
CREATE INDEX ON {t} (host, detected_at);
COMMENT ON TABLE {t} IS 'DaemonEye alerts, schema version {SCHEMA_VERSION} (see {SCHEMA_TABLE})';"
    )
}

/// The DDL of the schema version table.
pub fn create_schema_table_sql() -> String {
    format!(
        "CREATE TABLE {SCHEMA_TABLE} (
    component  text        PRIMARY KEY,
    version    integer     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);"
    )
}

/// The batch insert into `table`.
pub fn insert_sql(table: &str) -> String {
    format!(
        "INSERT INTO {} (id, detected_at, host, site, rule_id, severity, alert) \
         SELECT id, detected_at::timestamptz, host, site, rule_id, severity, alert::jsonb \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) \
         AS r(id, detected_at, host, site, rule_id, severity, alert) \
         ON CONFLICT (id, detected_at) DO NOTHING",
        quote_ident(table)
    )
}

/// Makes sure `table` exists at a schema version this agent can write, in one transaction
/// under [`SCHEMA_LOCK`]: agents starting together wait for each other rather than race.
///
/// - The version table missing: created ([`create_schema_table_sql`]).
/// - The alerts table missing: created ([`create_sql`]), its version row written
///   (`component` is the table's name).
/// - The table present with a version row: written as it is. A later version only adds
///   columns with defaults and indexes (the policy in the documentation), so an older agent
///   still writes its columns into it.
/// - The table present without a version row (made by hand from the documentation): adopted
///   when it has every column the sink writes, its row then written; otherwise
///   [`Failed::Schema`], which gives up.
///
/// Tables are looked for with `to_regclass` before `CREATE`: an agent whose role may insert
/// but not create (the DBA ran the DDL) never needs `CREATE` on the schema.
pub(super) async fn ensure_schema(
    client: &mut Client,
    table: &str,
    limit: Duration,
) -> Result<(), Failed> {
    const DOING: &str = "cannot check the schema";
    let tx = within(limit, DOING, client.transaction()).await?;
    within(
        limit,
        DOING,
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]),
    )
    .await?;
    let exists = |name: String| {
        let tx = &tx;
        async move {
            let row = within(
                limit,
                DOING,
                tx.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name]),
            )
            .await?;
            Ok::<bool, Failed>(row.get(0))
        }
    };
    if !exists(SCHEMA_TABLE.to_owned()).await? {
        within(limit, DOING, tx.batch_execute(&create_schema_table_sql())).await?;
    }
    let version_row = within(
        limit,
        DOING,
        tx.query_opt(
            &format!("SELECT version FROM {SCHEMA_TABLE} WHERE component = $1"),
            &[&table],
        ),
    )
    .await?;
    let version: Option<i32> = version_row.map(|row| row.get(0));
    let write_version = match (exists(quote_ident(table)).await?, version) {
        (false, _) => {
            within(limit, DOING, tx.batch_execute(&create_sql(table))).await?;
            true
        }
        (true, Some(version)) if version >= 1 => false,
        (true, Some(version)) => {
            return Err(Failed::Schema(format!(
                "table {table} has schema version {version}, which no agent writes"
            )));
        }
        (true, None) => {
            let rows = within(
                limit,
                DOING,
                tx.query(
                    "SELECT attname::text FROM pg_attribute \
                     WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
                    &[&quote_ident(table)],
                ),
            )
            .await?;
            let present: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
            let missing: Vec<&str> = COLUMNS
                .into_iter()
                .filter(|column| !present.iter().any(|have| have == column))
                .collect();
            if !missing.is_empty() {
                return Err(Failed::Schema(format!(
                    "table {table} exists without the column(s) {} and no {SCHEMA_TABLE} row: not a DaemonEye alerts table",
                    missing.join(", ")
                )));
            }
            true
        }
    };
    if write_version {
        within(
            limit,
            DOING,
            tx.execute(
                &format!(
                    "INSERT INTO {SCHEMA_TABLE} (component, version) VALUES ($1, $2) \
                     ON CONFLICT (component) DO UPDATE SET version = excluded.version, updated_at = now()"
                ),
                &[&table, &SCHEMA_VERSION],
            ),
        )
        .await?;
    }
    within(limit, DOING, tx.commit()).await
}
