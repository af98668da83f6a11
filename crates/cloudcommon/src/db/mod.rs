//! The database: one connection pool per service, SQLite by default, MariaDB/MySQL by URL.
//!
//! Every query is built with sea-query so that the same code runs on both backends.
//! SQLite allows one writer at a time; write transactions take an in-process lock there so
//! that concurrent writers queue instead of failing with `SQLITE_BUSY`.
//!
//! Times are stored as fixed-width RFC 3339 strings (`2026-11-24T22:00:00.000000Z`), which
//! sort correctly as text on every backend.

mod migrate;

pub use migrate::{Migration, migrate};

use std::sync::Arc;
use std::time::Duration;

use apis::Error;
use sea_orm::sea_query::{MysqlQueryBuilder, QueryStatementWriter, SchemaStatementBuilder, SqliteQueryBuilder};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, QueryResult, Statement,
    TransactionTrait,
};
use tokio::sync::{Mutex, MutexGuard};

/// A service's database handle. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    conn: DatabaseConnection,
    write_lock: Arc<Mutex<()>>,
    url_redacted: String,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("url", &self.url_redacted).finish()
    }
}

/// Hides the password of a database URL so that it can be logged.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Db {
    /// Connects to `url`: `sqlite:///path/file.db` (created when missing) or
    /// `mysql://user:pass@host:port/db`.
    pub async fn connect(url: &str) -> Result<Db, Error> {
        let mut url = url.to_string();
        let sqlite = url.starts_with("sqlite:");
        if sqlite && !url.contains('?') && !url.contains(":memory:") {
            url.push_str("?mode=rwc");
        }
        if url.starts_with("mysql:") {
            ensure_mysql_database(&url).await?;
        }
        let mut opts = ConnectOptions::new(url.clone());
        opts.sqlx_logging(false).connect_timeout(Duration::from_secs(10)).acquire_timeout(Duration::from_secs(30));
        if sqlite {
            // WAL and synchronous=NORMAL on every pooled connection: commits need no fsync
            // of their own (the WAL is synced at checkpoints), which keeps writes sub-ms.
            opts.max_connections(8).min_connections(1).map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
            });
        } else {
            opts.max_connections(16).min_connections(1);
        }
        let conn = sea_orm::Database::connect(opts)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot connect to database {}: {e}", redact_url(&url))))?;
        Ok(Db { conn, write_lock: Arc::new(Mutex::new(())), url_redacted: redact_url(&url) })
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    pub fn is_sqlite(&self) -> bool {
        self.backend() == DbBackend::Sqlite
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Renders a sea-query statement for this backend.
    pub fn build<S: QueryStatementWriter>(&self, stmt: &S) -> Statement {
        let (sql, values) = match self.backend() {
            DbBackend::Sqlite => stmt.build(SqliteQueryBuilder),
            _ => stmt.build(MysqlQueryBuilder),
        };
        Statement::from_sql_and_values(self.backend(), sql, values)
    }

    pub fn build_schema<S: SchemaStatementBuilder>(&self, stmt: &S) -> String {
        match self.backend() {
            DbBackend::Sqlite => stmt.to_string(SqliteQueryBuilder),
            _ => stmt.to_string(MysqlQueryBuilder),
        }
    }

    pub async fn query_all<S: QueryStatementWriter>(&self, stmt: &S) -> Result<Vec<QueryResult>, Error> {
        self.conn.query_all_raw(self.build(stmt)).await.map_err(db_err)
    }

    pub async fn query_one<S: QueryStatementWriter>(&self, stmt: &S) -> Result<Option<QueryResult>, Error> {
        self.conn.query_one_raw(self.build(stmt)).await.map_err(db_err)
    }

    /// Executes one write statement, returning the number of rows it touched.
    pub async fn execute<S: QueryStatementWriter>(&self, stmt: &S) -> Result<u64, Error> {
        let _guard = self.write_guard().await;
        let r = self.conn.execute_raw(self.build(stmt)).await.map_err(db_err)?;
        Ok(r.rows_affected())
    }

    /// Runs a hand-written query with `?` placeholders (the same on SQLite and MariaDB).
    pub async fn raw_query(&self, sql: &str, values: Vec<sea_orm::Value>) -> Result<Vec<QueryResult>, Error> {
        self.conn.query_all_raw(Statement::from_sql_and_values(self.backend(), sql, values)).await.map_err(db_err)
    }

    /// Executes a hand-written write with `?` placeholders.
    pub async fn raw_exec(&self, sql: &str, values: Vec<sea_orm::Value>) -> Result<u64, Error> {
        let _guard = self.write_guard().await;
        let r =
            self.conn.execute_raw(Statement::from_sql_and_values(self.backend(), sql, values)).await.map_err(db_err)?;
        Ok(r.rows_affected())
    }

    /// Executes a statement with no parameters (DDL and the like).
    pub async fn conn_exec(&self, sql: &str) -> Result<u64, Error> {
        let _guard = self.write_guard().await;
        Ok(self.conn.execute_unprepared(sql).await.map_err(db_err)?.rows_affected())
    }

    /// Starts a write transaction. On SQLite the returned guard serialises writers.
    pub async fn begin(&self) -> Result<Txn<'_>, Error> {
        let guard = self.write_guard().await;
        let txn = self.conn.begin().await.map_err(db_err)?;
        Ok(Txn { db: self, txn, _guard: guard })
    }

    async fn write_guard(&self) -> Option<MutexGuard<'_, ()>> {
        if self.is_sqlite() { Some(self.write_lock.lock().await) } else { None }
    }
}

/// Creates the database a MySQL/MariaDB URL names, when it does not exist yet.
async fn ensure_mysql_database(url: &str) -> Result<(), Error> {
    let (head, query) = url.split_once('?').map(|(h, q)| (h, Some(q))).unwrap_or((url, None));
    let after = head.find("://").map(|i| i + 3).unwrap_or(0);
    let Some(slash) = head[after..].find('/') else { return Ok(()) };
    let (server, name) = (&head[..after + slash], &head[after + slash + 1..]);
    if name.is_empty() {
        return Ok(());
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(Error::invalid("database_url", format!("database name {name:?} must be letters, digits, - or _")));
    }
    let server_url = match query {
        Some(q) => format!("{server}/?{q}"),
        None => format!("{server}/"),
    };
    let mut opts = ConnectOptions::new(server_url);
    opts.sqlx_logging(false).max_connections(1).connect_timeout(Duration::from_secs(10));
    let conn = sea_orm::Database::connect(opts)
        .await
        .map_err(|e| Error::Unavailable(format!("cannot connect to database server {}: {e}", redact_url(server))))?;
    conn.execute_unprepared(&format!(
        "CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    ))
    .await
    .map_err(db_err)?;
    conn.close().await.map_err(db_err)?;
    Ok(())
}

/// A write transaction; dropped without `commit` it rolls back.
pub struct Txn<'a> {
    db: &'a Db,
    txn: DatabaseTransaction,
    _guard: Option<MutexGuard<'a, ()>>,
}

impl Txn<'_> {
    pub async fn execute<S: QueryStatementWriter>(&self, stmt: &S) -> Result<u64, Error> {
        let r = self.txn.execute_raw(self.db.build(stmt)).await.map_err(db_err)?;
        Ok(r.rows_affected())
    }

    pub async fn query_all<S: QueryStatementWriter>(&self, stmt: &S) -> Result<Vec<QueryResult>, Error> {
        self.txn.query_all_raw(self.db.build(stmt)).await.map_err(db_err)
    }

    pub async fn query_one<S: QueryStatementWriter>(&self, stmt: &S) -> Result<Option<QueryResult>, Error> {
        self.txn.query_one_raw(self.db.build(stmt)).await.map_err(db_err)
    }

    pub async fn commit(self) -> Result<(), Error> {
        self.txn.commit().await.map_err(db_err)
    }
}

/// Maps a database error to the API error: unique violations become `Duplicate`.
pub fn db_err(e: DbErr) -> Error {
    let msg = e.to_string();
    let lower = msg.to_ascii_lowercase();
    if lower.contains("unique constraint") || lower.contains("duplicate entry") {
        Error::Duplicate(format!("duplicate value: {msg}"))
    } else {
        tracing::error!(error = %msg, "database error");
        Error::Internal(format!("database error: {msg}"))
    }
}

/// The current time in the stored form.
pub fn now() -> String {
    fmt_time(chrono::Utc::now())
}

pub fn fmt_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// A new resource id (a UUID, as Cloudpods uses).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password() {
        assert_eq!(redact_url("mysql://u:secret@h:3306/db"), "mysql://u:***@h:3306/db");
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
