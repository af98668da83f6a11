//! `image_subformats`: the forms an image is served in (`?format=qcow2`): the uploaded
//! file under its own format, plus one converted file per target format. Each moves
//! `saving -> active` or `save_fail`. Datastore only.

use apis::Error;
use cloudcommon::db::{Db, Migration, db_err, now};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use serde::Serialize;
use serde_json::Value;

const TABLE: &str = "image_subformats";

pub const MIGRATION: Migration = Migration {
    version: 12,
    name: "image_subformats",
    up: |_db| {
        vec![
            "CREATE TABLE IF NOT EXISTS image_subformats (image_id VARCHAR(128) NOT NULL, format VARCHAR(20) NOT NULL, \
             size BIGINT NOT NULL DEFAULT 0, location TEXT, checksum VARCHAR(32), fast_hash VARCHAR(64), \
             status VARCHAR(36) NOT NULL, created_at VARCHAR(32) NOT NULL, updated_at VARCHAR(32) NOT NULL, \
             PRIMARY KEY (image_id, format))"
                .to_string(),
        ]
    },
};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Subformat {
    pub format: String,
    pub size: i64,
    pub location: String,
    pub checksum: String,
    pub fast_hash: String,
    pub status: String,
}

impl Subformat {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The sub-formats of several images, by image id, ordered by format.
pub async fn of_images(db: &Db, ids: &[String]) -> Result<Vec<(String, Subformat)>, Error> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let q = Query::select()
        .from(Alias::new(TABLE))
        .columns(["image_id", "format", "size", "location", "checksum", "fast_hash", "status"].map(Alias::new))
        .and_where(Expr::col(Alias::new("image_id")).is_in(ids.iter().cloned()))
        .order_by(Alias::new("format"), sea_orm::sea_query::Order::Asc)
        .to_owned();
    let mut out = vec![];
    for r in db.query_all(&q).await? {
        let s = |c: &str| r.try_get::<Option<String>>("", c).map(Option::unwrap_or_default).map_err(db_err);
        let id = s("image_id")?;
        out.push((
            id,
            Subformat {
                format: s("format")?,
                size: r.try_get::<Option<i64>>("", "size").map_err(db_err)?.unwrap_or(0),
                location: s("location")?,
                checksum: s("checksum")?,
                fast_hash: s("fast_hash")?,
                status: s("status")?,
            },
        ));
    }
    Ok(out)
}

pub async fn of_image(db: &Db, id: &str) -> Result<Vec<Subformat>, Error> {
    Ok(of_images(db, &[id.to_string()]).await?.into_iter().map(|(_, s)| s).collect())
}

pub async fn get(db: &Db, id: &str, format: &str) -> Result<Option<Subformat>, Error> {
    Ok(of_image(db, id).await?.into_iter().find(|s| s.format == format))
}

/// Inserts or replaces the row of `(image_id, s.format)`.
pub async fn upsert(db: &Db, image_id: &str, s: &Subformat) -> Result<(), Error> {
    let txn = db.begin().await?;
    let del = Query::delete()
        .from_table(Alias::new(TABLE))
        .and_where(Expr::col(Alias::new("image_id")).eq(image_id))
        .and_where(Expr::col(Alias::new("format")).eq(s.format.as_str()))
        .to_owned();
    txn.execute(&del).await?;
    let t = now();
    let ins = Query::insert()
        .into_table(Alias::new(TABLE))
        .columns(
            ["image_id", "format", "size", "location", "checksum", "fast_hash", "status", "created_at", "updated_at"]
                .map(Alias::new),
        )
        .values_panic([
            image_id.into(),
            s.format.as_str().into(),
            s.size.into(),
            s.location.as_str().into(),
            s.checksum.as_str().into(),
            s.fast_hash.as_str().into(),
            s.status.as_str().into(),
            t.clone().into(),
            t.into(),
        ])
        .to_owned();
    txn.execute(&ins).await?;
    txn.commit().await
}

/// Marks every sub-format of an image still `saving` as `save_fail`.
pub async fn fail_saving(db: &Db, image_id: &str) -> Result<(), Error> {
    let q = Query::update()
        .table(Alias::new(TABLE))
        .value(Alias::new("status"), apis::image::STATUS_SAVE_FAIL)
        .value(Alias::new("updated_at"), now())
        .and_where(Expr::col(Alias::new("image_id")).eq(image_id))
        .and_where(Expr::col(Alias::new("status")).eq(apis::image::STATUS_SAVING))
        .to_owned();
    db.execute(&q).await?;
    Ok(())
}

pub async fn remove_all(db: &Db, image_id: &str) -> Result<(), Error> {
    let del = Query::delete()
        .from_table(Alias::new(TABLE))
        .and_where(Expr::col(Alias::new("image_id")).eq(image_id))
        .to_owned();
    db.execute(&del).await?;
    Ok(())
}
