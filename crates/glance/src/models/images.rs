//! The `images` table: its spec and the SQL the image rules need beyond the generic store.

use apis::Error;
use apis::image::STATUS_QUEUED;
use cloudcommon::db::{Db, Migration, db_err, now};
use cloudcommon::resource::{Col, OwnerScope, ResourceSpec, Row, store};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use serde_json::Value;

pub const TABLE: &str = "images";

/// `images` (keyword `image`): project-owned and sharable, as Cloudpods' SharableVirtual.
pub fn spec() -> ResourceSpec {
    ResourceSpec::new("image", "image", "images", TABLE)
        .owner(OwnerScope::Project)
        .status(STATUS_QUEUED)
        .sharable()
        // The declared size at create (a quota check); the stored size once saved.
        .col(Col::int("size").create())
        .col(Col::str("disk_format", 20).create().index())
        .col(Col::str("checksum", 32))
        .col(Col::str("fast_hash", 64))
        .col(Col::text("location"))
        .col(Col::int("min_disk").rw().not_null(0.into()))
        .col(Col::int("min_ram").rw().not_null(0.into()))
        .col(Col::bool("protected").rw().not_null(true.into()))
        .col(Col::str("os_arch", 16).rw())
        .col(Col::int("progress").not_null(0.into()))
        // Why the image is in a failed status (`killed`, `save_fail`, `delete_fail`).
        .col(Col::text("reason"))
        .col(Col::bool("pending_deleted").not_null(false.into()).index())
        .col(Col::time("pending_deleted_at"))
}

pub const MIGRATION: Migration = Migration { version: 10, name: "images", up: |db| spec().create_table_sql(db) };

pub async fn get(db: &Db, id: &str) -> Result<Row, Error> {
    store::get_by_id(db, &spec(), id).await?.ok_or_else(|| Error::not_found("image", id))
}

/// Applies `patch` to image `id` only if its status is one of `from`; whether it did.
pub async fn update_if_status(db: &Db, id: &str, from: &[&str], patch: &Row) -> Result<bool, Error> {
    let spec = spec();
    let mut q = Query::update();
    q.table(Alias::new(TABLE));
    for (k, v) in patch {
        q.value(Alias::new(k.clone()), store::sql_value(&spec, k, v)?);
    }
    q.value(Alias::new("updated_at"), now());
    q.value(Alias::new("update_version"), Expr::col(Alias::new("update_version")).add(1));
    q.and_where(Expr::col(Alias::new("id")).eq(id));
    q.and_where(Expr::col(Alias::new("status")).is_in(from.iter().map(|s| s.to_string())));
    q.and_where(Expr::col(Alias::new("deleted")).eq(false));
    Ok(db.execute(&q).await? > 0)
}

/// Undeleted images in one of `statuses`.
pub async fn in_status(db: &Db, statuses: &[&str]) -> Result<Vec<Row>, Error> {
    let cond = sea_orm::sea_query::Condition::all()
        .add(Expr::col((Alias::new(TABLE), Alias::new("status"))).is_in(statuses.iter().map(|s| s.to_string())));
    store::select(db, &spec(), cond).await
}

/// Pending-deleted images whose delay ran out before `before`.
pub async fn expired_pending(db: &Db, before: &str) -> Result<Vec<Row>, Error> {
    let col = |c: &str| Expr::col((Alias::new(TABLE), Alias::new(c.to_string())));
    let cond = sea_orm::sea_query::Condition::all()
        .add(col("pending_deleted").eq(true))
        .add(col("status").eq(apis::image::STATUS_PENDING_DELETE))
        .add(col("pending_deleted_at").lt(before));
    store::select(db, &spec(), cond).await
}

/// `(image count, total size)` of a project's undeleted images, not counting `except`.
pub async fn project_usage(db: &Db, project_id: &str, except: &str) -> Result<(u64, u64), Error> {
    let q = Query::select()
        .from(Alias::new(TABLE))
        .columns([Alias::new("id"), Alias::new("size")])
        .and_where(Expr::col(Alias::new("tenant_id")).eq(project_id))
        .and_where(Expr::col(Alias::new("deleted")).eq(false))
        .to_owned();
    let (mut count, mut size) = (0u64, 0u64);
    for r in db.query_all(&q).await? {
        let id: String = r.try_get("", "id").map_err(db_err)?;
        if id == except {
            continue;
        }
        count += 1;
        let n: i64 = r.try_get::<Option<i64>>("", "size").map_err(db_err)?.unwrap_or(0);
        size += u64::try_from(n).unwrap_or(0);
    }
    Ok((count, size))
}

/// A patch of `(column, value)` pairs.
pub fn patch<const N: usize>(pairs: [(&str, Value); N]) -> Row {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
