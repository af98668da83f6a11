//! Versioned migrations. Each service owns a list of migrations, applied in order at start
//! and recorded in `schema_migrations (service, version)`. A migration is a list of SQL
//! statements produced for the connected backend, so one list serves SQLite and MariaDB.

use apis::Error;
use sea_orm::ConnectionTrait;

use super::{Db, db_err, now};

pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    /// Produces the statements for `db`'s backend.
    pub up: fn(&Db) -> Vec<String>,
}

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
    service VARCHAR(64) NOT NULL, version INTEGER NOT NULL, name VARCHAR(128) NOT NULL, \
    applied_at VARCHAR(32) NOT NULL, PRIMARY KEY (service, version))";

/// Applies the migrations of `service` that are not yet recorded. Safe to run from several
/// processes at start: a version applied twice fails on the ledger's primary key.
pub async fn migrate(db: &Db, service: &str, migrations: &[Migration]) -> Result<(), Error> {
    db.conn().execute_unprepared(LEDGER).await.map_err(db_err)?;
    let rows = db
        .conn()
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            db.backend(),
            "SELECT version FROM schema_migrations WHERE service = ?",
            [service.into()],
        ))
        .await
        .map_err(db_err)?;
    let applied: Vec<i64> = rows.iter().filter_map(|r| r.try_get_by_index::<i64>(0).ok()).collect();
    for m in migrations {
        if applied.contains(&(m.version as i64)) {
            continue;
        }
        tracing::info!(service, version = m.version, name = m.name, "applying migration");
        let txn = db.begin().await?;
        for sql in (m.up)(db) {
            txn.execute_raw(&sql).await?;
        }
        txn.execute_raw_values(
            "INSERT INTO schema_migrations (service, version, name, applied_at) VALUES (?, ?, ?, ?)",
            vec![service.into(), (m.version as i64).into(), m.name.into(), now().into()],
        )
        .await?;
        txn.commit().await?;
    }
    Ok(())
}

impl super::Txn<'_> {
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, Error> {
        let r = self.txn.execute_unprepared(sql).await.map_err(db_err)?;
        Ok(r.rows_affected())
    }

    pub async fn execute_raw_values(&self, sql: &str, values: Vec<sea_orm::Value>) -> Result<u64, Error> {
        let stmt = sea_orm::Statement::from_sql_and_values(self.db.backend(), sql, values);
        let r = self.txn.execute_raw(stmt).await.map_err(db_err)?;
        Ok(r.rows_affected())
    }
}
