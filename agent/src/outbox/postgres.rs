//! The PostgreSQL sink: a site's PostgreSQL as the central store where the alerts of many
//! hosts land, one row per alert, the same delivery twice still one row. The table, the
//! schema version and the queries a SOC runs on them are documented in
//! `docs/sinks/postgres.md`, whose DDL is [`schema::create_sql`]'s verbatim; the schema and its
//! versions are in [`schema`].
//!
//! # Keys (`[[sinks]] type = "postgres"`)
//!
//! `url` (a `postgresql://` URL; a password in it is refused, it goes in `password_file`, and
//! so is `sslmode`, which is the `tls` key's), `password_file`, `table` (default
//! `daemoneye_alerts`, an identifier of `[a-z_][a-z0-9_]{0,62}`), `tls` (`prefer`, the
//! default: TLS when the server offers it; `require`; `disable`), `timeout` (default 10s), and
//! the TLS keys `ca_file`, `client_cert`, `client_key` ([`tls`]). Building reads the password
//! and the TLS files and never connects.
//!
//! # Why tokio-postgres under a runtime of the sink's own
//!
//! The blocking `postgres` crate puts no deadline on the start-up exchange or on a statement:
//! a server (or anything listening on its port) that accepts and never answers would hold the
//! sink's thread for ever. The sink drives the same client, `tokio-postgres`, on a
//! current-thread runtime of its own (as the `postgres` crate does inside) and bounds every
//! step with `timeout`: connecting, the start-up and authentication, the schema check, each
//! statement. The server is told the same bound (`statement_timeout`, `lock_timeout`) so that
//! it stops working for a client that has given up.
//!
//! # Connecting
//!
//! On the first delivery, and again after any failure that is not one row's, the sink
//! connects, sets its timeouts, makes sure of the table (under `pg_advisory_xact_lock`, so
//! that agents starting together create it once; see `schema::ensure_schema`) and prepares the
//! insert. The connection then stays open between batches; when a batch finds it closed
//! meanwhile (the server restarted), the sink connects again and sends the batch at once.
//!
//! # Delivering
//!
//! Each payload must be an alert ([`format::parse_alert`]); one that is not stops the batch
//! there and is rejected after the rows before it are written. The rows go in one `INSERT ...
//! SELECT ... FROM unnest($1::text[], ...) ON CONFLICT (id, detected_at) DO NOTHING`: one
//! statement, hence one transaction, for the whole batch, with seven parameters whatever its
//! size (no 65535-parameter limit), every value sent as text and cast by the server. The
//! unique key makes a batch sent twice (a lost acknowledgement, a restart) one row per alert.
//!
//! # Errors
//!
//! - No connection, a reset, a timeout, a TLS failure, a server shutting down or short of
//!   resources (SQLSTATE classes 08, 53, 57, 58, 40, 55 and anything unknown):
//!   [`SinkError::Retry`], the connection dropped and made again next time.
//! - A row the server refuses (classes 22, data exception, and 23, a constraint a DBA added):
//!   the batch is sent again row by row, so that the rows before the bad one are acknowledged
//!   and only it is [`SinkError::Reject`]ed.
//! - Authentication failed (28000, 28P01), no such database (3D000), insufficient privilege
//!   (42501), a table that is not ours (a missing column, no unique key, other 42 errors), a
//!   feature the server lacks (0A): [`SinkError::GiveUp`].

use std::future::Future;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use daemoneye_lib::config::{HumanDuration, SinkConfig};
use daemoneye_lib::text;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Socket, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::build::{self, BuildError};
use super::{BatchError, Delivery, Sink, SinkError, format, tls};
use schema::{ensure_schema, insert_sql};

/// The table alerts go to when `table` is not set.
pub const DEFAULT_TABLE: &str = "daemoneye_alerts";

/// The table that records each alerts table's schema version.
pub const SCHEMA_TABLE: &str = "daemoneye_schema";

/// The schema version of the alerts table this agent writes (docs/sinks/postgres.md).
pub const SCHEMA_VERSION: i32 = 1;

/// The most alerts in one statement: bounds the message and the transaction.
pub const MAX_BATCH: usize = 1000;

/// The advisory lock every agent takes around the schema check (the bytes of "DaemonEy").
pub const SCHEMA_LOCK: i64 = 0x4461_656d_6f6e_4579;

/// The columns the sink writes, in the insert's order.
pub const COLUMNS: [&str; 7] = [
    "id",
    "detected_at",
    "host",
    "site",
    "rule_id",
    "severity",
    "alert",
];

/// The longest password file read.
const MAX_PASSWORD_BYTES: u64 = 4096;

/// When to use TLS (`tls`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS when the server offers it (then the certificate must verify), plain otherwise.
    #[default]
    Prefer,
    /// TLS or no connection.
    Require,
    /// Never TLS.
    Disable,
}

/// The sink's keys.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresOptions {
    url: String,
    password_file: Option<PathBuf>,
    table: Option<String>,
    #[serde(default)]
    tls: TlsMode,
    timeout: Option<HumanDuration>,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

/// Alerts into a PostgreSQL table (see the module documentation).
pub struct PostgresSink {
    name: String,
    config: tokio_postgres::Config,
    /// `host:port/database`, for reasons.
    server: String,
    /// The TLS connector, unless `tls = "disable"`.
    tls: Option<MakeRustlsConnect>,
    table: String,
    timeout: Duration,
    runtime: tokio::runtime::Runtime,
    open: Option<Open>,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("name", &self.name)
            .field("server", &self.server)
            .field("table", &self.table)
            .field("connected", &self.open.is_some())
            .finish_non_exhaustive()
    }
}

/// A connection, ready to insert.
struct Open {
    client: Client,
    insert: Statement,
}

/// Whether `name` may be a table name: `[a-z_][a-z0-9_]{0,62}`.
pub fn valid_table(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && name.len() <= 63
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// The query keys of a `postgresql://` URL, lowercased.
fn url_keys(url: &str) -> Vec<String> {
    url.split_once('?')
        .map(|(_, query)| {
            query
                .split('&')
                .map(|pair| {
                    pair.split('=')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the password file: a regular file (a link to one is fine: secrets are mounted so) of
/// at most 4 KiB, its one line without the line end.
fn read_password(path: &Path) -> Result<String, String> {
    let shown = text::quoted(&path.to_string_lossy()).to_string();
    let meta = std::fs::metadata(path).map_err(|err| format!("password_file {shown}: {err}"))?;
    if !meta.is_file() {
        return Err(format!("password_file {shown}: not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(MAX_PASSWORD_BYTES + 1)
                .read_to_end(&mut bytes)
                .map(drop)
        })
        .map_err(|err| format!("password_file {shown}: {err}"))?;
    if bytes.len() as u64 > MAX_PASSWORD_BYTES {
        return Err(format!(
            "password_file {shown}: longer than {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| format!("password_file {shown}: not UTF-8 text"))?;
    let password = text.strip_suffix('\n').map_or(text.as_str(), |line| {
        line.strip_suffix('\r').unwrap_or(line)
    });
    if password.is_empty() || password.contains(['\n', '\r', '\0']) {
        return Err(format!(
            "password_file {shown}: must hold one non-empty line"
        ));
    }
    Ok(password.to_owned())
}

impl PostgresSink {
    /// The sink a `[[sinks]] type = "postgres"` table describes.
    pub fn from_config(sink: &SinkConfig) -> Result<Self, BuildError> {
        let options: PostgresOptions = build::options(sink)?;
        let fail = |reason: String| BuildError::new(sink, reason);
        if !(options.url.starts_with("postgresql://") || options.url.starts_with("postgres://")) {
            return Err(fail("url: must be a postgresql:// URL".to_owned()));
        }
        for key in url_keys(&options.url) {
            if matches!(
                key.as_str(),
                "password" | "sslmode" | "sslnegotiation" | "connect_timeout"
            ) {
                return Err(fail(format!(
                    "url: {key} is not taken from the URL (password_file, tls and timeout are the sink's keys)"
                )));
            }
        }
        let mut config: tokio_postgres::Config = options
            .url
            .parse()
            .map_err(|err| fail(format!("url: {err}")))?;
        if config.get_password().is_some() {
            return Err(fail(
                "url: holds a password; put it in password_file instead".to_owned(),
            ));
        }
        if config.get_user().is_none() {
            return Err(fail("url: names no user".to_owned()));
        }
        if let Some(path) = &options.password_file {
            config.password(read_password(path).map_err(fail)?);
        }
        let table = options.table.unwrap_or_else(|| DEFAULT_TABLE.to_owned());
        if !valid_table(&table) || table == SCHEMA_TABLE {
            return Err(fail(format!(
                "table: {} is not a name of [a-z_][a-z0-9_]{{0,62}} (nor {SCHEMA_TABLE})",
                text::quoted(&table)
            )));
        }
        let timeout = options
            .timeout
            .unwrap_or(HumanDuration::new(Duration::from_secs(10)));
        if let Some(why) = timeout.outside(Duration::from_millis(100), Duration::from_secs(600)) {
            return Err(fail(format!("timeout: {why}")));
        }
        let timeout = timeout.get();
        let tls = match options.tls {
            TlsMode::Disable => {
                if options.ca_file.is_some() || options.client_cert.is_some() {
                    return Err(fail(
                        "ca_file, client_cert and client_key need tls = \"prefer\" or \"require\""
                            .to_owned(),
                    ));
                }
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                None
            }
            mode => {
                config.ssl_mode(if mode == TlsMode::Require {
                    tokio_postgres::config::SslMode::Require
                } else {
                    tokio_postgres::config::SslMode::Prefer
                });
                let material = tls::TlsFiles {
                    ca_file: options.ca_file,
                    client_cert: options.client_cert,
                    client_key: options.client_key,
                }
                .load()
                .map_err(&fail)?;
                let client_config = material.client_config().map_err(&fail)?;
                Some(MakeRustlsConnect::new((*client_config).clone()))
            }
        };
        config
            .connect_timeout(timeout)
            .tcp_user_timeout(timeout)
            .keepalives(true)
            .application_name(format!("daemoneye-agent/{}", sink.name));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| fail(format!("cannot start its runtime: {err}")))?;
        let server = describe(&config);
        Ok(Self {
            name: sink.name.clone(),
            config,
            server,
            tls,
            table,
            timeout,
            runtime,
            open: None,
        })
    }

    /// The table written.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Connects, sets the session up, makes sure of the schema and prepares the insert.
    fn connect(&mut self) -> Result<(), Failed> {
        let limit = self.timeout;
        let config = self.config.clone();
        let table = self.table.clone();
        let tls = self.tls.clone();
        let open = self.runtime.block_on(async move {
            let mut client = match tls {
                Some(tls) => within(limit, "cannot connect", open_client(&config, tls)).await?,
                None => {
                    within(
                        limit,
                        "cannot connect",
                        open_client(&config, tokio_postgres::NoTls),
                    )
                    .await?
                }
            };
            let ms = limit.as_millis();
            within(
                limit,
                "cannot set the session up",
                client.batch_execute(&format!(
                    "SET statement_timeout = {ms}; SET lock_timeout = {ms}"
                )),
            )
            .await?;
            ensure_schema(&mut client, &table, limit).await?;
            let insert = within(
                limit,
                "cannot prepare the insert",
                client.prepare(&insert_sql(&table)),
            )
            .await?;
            Ok::<_, Failed>(Open { client, insert })
        })?;
        self.open = Some(open);
        Ok(())
    }

    /// Inserts `rows` in one statement, connecting first when needed. Drops the connection
    /// after any failure but a row's.
    ///
    /// A connection kept from an earlier batch may have been closed meanwhile (the server
    /// restarted, an idle session ended): when the statement finds it closed, the sink
    /// connects again and sends it once more at once, rather than waiting out a retry. The
    /// statement may have been applied before the connection went; the unique key makes the
    /// second sending harmless.
    fn insert(&mut self, rows: &[Row]) -> Result<(), Failed> {
        let reused = self.open.is_some();
        match self.insert_once(rows) {
            Err(failed) if reused && failed.is_stale_connection() => self.insert_once(rows),
            result => result,
        }
    }

    fn insert_once(&mut self, rows: &[Row]) -> Result<(), Failed> {
        if self.open.is_none() {
            self.connect()?;
        }
        let Some(open) = &self.open else {
            return Err(Failed::Closed);
        };
        let column = |pick: fn(&Row) -> &str| rows.iter().map(pick).collect::<Vec<&str>>();
        let ids = column(|row| &row.id);
        let detected = column(|row| &row.detected_at);
        let hosts = column(|row| &row.host);
        let sites: Vec<Option<&str>> = rows.iter().map(|row| row.site.as_deref()).collect();
        let rules = column(|row| &row.rule_id);
        let severities = column(|row| row.severity);
        let alerts = column(|row| &row.alert);
        let result = self.runtime.block_on(within(
            self.timeout,
            "cannot insert",
            open.client.execute(
                &open.insert,
                &[
                    &ids,
                    &detected,
                    &hosts,
                    &sites,
                    &rules,
                    &severities,
                    &alerts,
                ],
            ),
        ));
        match result {
            Ok(_) => Ok(()),
            Err(failed) => {
                if failed.class() != Class::Row {
                    self.open = None;
                }
                Err(failed)
            }
        }
    }

    /// The rows one by one after the batch hit a row's error: the bad row is rejected, the
    /// rows before it acknowledged.
    fn one_by_one(&mut self, rows: &[Row]) -> Result<(), BatchError> {
        for (index, row) in rows.iter().enumerate() {
            if let Err(failed) = self.insert(std::slice::from_ref(row)) {
                return Err(BatchError {
                    acknowledged: index,
                    error: failed.into_sink_error(&self.server),
                });
            }
        }
        Ok(())
    }
}

/// `host:port/database` of `config`, for messages.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.to_string_lossy().into_owned(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or_default();
    text::escape(&format!("{host}:{port}/{database}")).into_owned()
}

/// Connects with `tls` and spawns the connection's task on the current runtime.
async fn open_client<T>(
    config: &tokio_postgres::Config,
    tls: T,
) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = config.connect(tls).await?;
    // The task ends when the connection does; the client's next call then fails with
    // "connection closed", which is a retry.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// One alert as the insert's text values.
#[derive(Debug)]
struct Row {
    id: String,
    detected_at: String,
    host: String,
    site: Option<String>,
    rule_id: String,
    severity: &'static str,
    alert: String,
}

impl Row {
    /// The row of `delivery`, or [`SinkError::Reject`] when its payload is not an alert.
    fn of(delivery: &Delivery<'_>) -> Result<Self, SinkError> {
        let alert = format::parse_alert(delivery.payload)?;
        let json = std::str::from_utf8(delivery.payload)
            .map_err(|_| SinkError::reject("payload is not an alert: not UTF-8"))?;
        Ok(Self {
            id: delivery.alert_id.as_str().to_owned(),
            detected_at: alert.detected_at,
            host: alert.host,
            site: alert.site,
            rule_id: alert.rule_id,
            severity: alert.severity.as_str(),
            alert: json.to_owned(),
        })
    }
}

/// How a failure is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Transient: retry, after connecting again.
    Retry,
    /// One row refused: find it and reject it.
    Row,
    /// The configuration cannot work.
    GiveUp,
}

/// The class of a SQLSTATE (see the module documentation).
pub fn class_of(sqlstate: &str) -> Class {
    match sqlstate {
        "28000" | "28P01" | "3D000" | "42501" => Class::GiveUp,
        // The table dropped under a running agent: connecting again creates it; an object
        // created by someone else meanwhile: the next attempt finds it.
        "42P01" | "42P07" | "42710" => Class::Retry,
        _ if sqlstate.starts_with("22") || sqlstate.starts_with("23") => Class::Row,
        _ if sqlstate.starts_with("42")
            || sqlstate.starts_with("0A")
            || sqlstate.starts_with("3F") =>
        {
            Class::GiveUp
        }
        _ => Class::Retry,
    }
}

/// What went wrong while talking to the server.
#[derive(Debug)]
enum Failed {
    /// The client's or the server's error while `doing`.
    Pg {
        doing: &'static str,
        err: tokio_postgres::Error,
    },
    /// No answer within the timeout while `doing`.
    TimedOut {
        doing: &'static str,
        limit: Duration,
    },
    /// The table is not one the sink can write.
    Schema(String),
    /// No connection (cannot happen after a successful connect).
    Closed,
}

impl Failed {
    fn class(&self) -> Class {
        match self {
            Self::Pg { err, .. } => err
                .code()
                .map_or(Class::Retry, |code| class_of(code.code())),
            Self::TimedOut { .. } | Self::Closed => Class::Retry,
            Self::Schema(_) => Class::GiveUp,
        }
    }

    /// Whether the connection was found closed or closing: by the server going away (an
    /// I/O error, "connection closed", or its notice that it is shutting down).
    fn is_stale_connection(&self) -> bool {
        use std::error::Error as _;
        match self {
            Self::Pg { err, .. } => {
                err.is_closed()
                    || err
                        .code()
                        .is_some_and(|code| code.code().starts_with("57P0"))
                    || err
                        .source()
                        .is_some_and(|source| source.is::<std::io::Error>())
            }
            _ => false,
        }
    }

    fn into_sink_error(self, server: &str) -> SinkError {
        let class = self.class();
        let reason = match self {
            Self::Pg { doing, err } => format!("postgresql {server}: {doing}: {}", explain(&err)),
            Self::TimedOut { doing, limit } => format!(
                "postgresql {server}: {doing}: no answer within {}",
                humantime_ms(limit)
            ),
            Self::Schema(why) => format!("postgresql {server}: {why}"),
            Self::Closed => format!("postgresql {server}: not connected"),
        };
        match class {
            Class::Retry => SinkError::retry(reason),
            Class::Row => SinkError::reject(reason),
            Class::GiveUp => SinkError::give_up(reason),
        }
    }
}

fn humantime_ms(limit: Duration) -> String {
    format!("{} ms", limit.as_millis())
}

/// The error and its causes on one line, the server's words escaped: `TLS handshake failed:
/// invalid peer certificate: UnknownIssuer`, `ERROR 28P01: password authentication failed`.
fn explain(err: &tokio_postgres::Error) -> String {
    use std::error::Error as _;
    let mut line = match err.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => {
            let mut line = err.to_string();
            if line == "error performing TLS handshake" {
                "TLS handshake failed".clone_into(&mut line);
            }
            let mut source = err.source();
            while let Some(cause) = source {
                line.push_str(": ");
                line.push_str(&cause.to_string());
                source = cause.source();
            }
            line
        }
    };
    if let Some(detail) = err.as_db_error().and_then(|db| db.detail()) {
        line.push_str(" (");
        line.push_str(detail);
        line.push(')');
    }
    text::escape(&line).into_owned()
}

/// `fut` within `limit`, its error tagged with what was being done.
async fn within<T>(
    limit: Duration,
    doing: &'static str,
    fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Failed> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(Failed::Pg { doing, err }),
        Err(_) => Err(Failed::TimedOut { doing, limit }),
    }
}

impl Sink for PostgresSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Delivery<'_>]) -> Result<(), BatchError> {
        let mut rows = Vec::with_capacity(batch.len());
        let mut rejected = None;
        for (index, delivery) in batch.iter().enumerate() {
            match Row::of(delivery) {
                Ok(row) => rows.push(row),
                Err(error) => {
                    rejected = Some(BatchError {
                        acknowledged: index,
                        error,
                    });
                    break;
                }
            }
        }
        if !rows.is_empty() {
            match self.insert(&rows) {
                Ok(()) => {}
                Err(failed) if failed.class() == Class::Row && rows.len() > 1 => {
                    self.one_by_one(&rows)?;
                }
                Err(failed) => return Err(failed.into_sink_error(&self.server).into()),
            }
        }
        rejected.map_or(Ok(()), Err)
    }

    fn max_batch(&self) -> Option<usize> {
        Some(MAX_BATCH)
    }
}

pub mod schema;

#[cfg(test)]
mod tests;
