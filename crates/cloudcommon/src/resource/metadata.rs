//! Metadata and tags of any object, in one table per service database.
//!
//! `POST /<plural>/<id>/metadata {"k": "v"}` sets keys (an empty value deletes a key);
//! `GET /<plural>/<id>/metadata` returns them. User tags are keys prefixed `user:`.

use std::collections::BTreeMap;

use apis::Error;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use serde_json::Value;

use crate::db::{Db, Migration, Txn, now};

pub const MIGRATION: Migration = Migration {
    version: 1,
    name: "metadata",
    up: |db| {
        let _ = db;
        vec![
            "CREATE TABLE IF NOT EXISTS metadata_tbl (obj_type VARCHAR(64) NOT NULL, obj_id VARCHAR(128) NOT NULL, \
         meta_key VARCHAR(255) NOT NULL, meta_value TEXT, updated_at VARCHAR(32) NOT NULL, \
         PRIMARY KEY (obj_type, obj_id, meta_key))"
                .to_string(),
        ]
    },
};

pub async fn get(db: &Db, obj_type: &str, obj_id: &str) -> Result<BTreeMap<String, String>, Error> {
    let q = Query::select()
        .from(Alias::new("metadata_tbl"))
        .columns([Alias::new("meta_key"), Alias::new("meta_value")])
        .and_where(Expr::col(Alias::new("obj_type")).eq(obj_type))
        .and_where(Expr::col(Alias::new("obj_id")).eq(obj_id))
        .to_owned();
    let mut out = BTreeMap::new();
    for r in db.query_all(&q).await? {
        let k: String = r.try_get("", "meta_key").map_err(crate::db::db_err)?;
        let v: Option<String> = r.try_get("", "meta_value").map_err(crate::db::db_err)?;
        out.insert(k, v.unwrap_or_default());
    }
    Ok(out)
}

/// Removes every key of an object (it is deleted).
pub async fn remove_all(txn: &Txn<'_>, obj_type: &str, obj_id: &str) -> Result<(), Error> {
    let del = Query::delete()
        .from_table(Alias::new("metadata_tbl"))
        .and_where(Expr::col(Alias::new("obj_type")).eq(obj_type))
        .and_where(Expr::col(Alias::new("obj_id")).eq(obj_id))
        .to_owned();
    txn.execute(&del).await?;
    Ok(())
}

/// Sets the given keys; an empty or null value removes the key.
pub async fn set(db: &Db, obj_type: &str, obj_id: &str, tags: &serde_json::Map<String, Value>) -> Result<(), Error> {
    let txn = db.begin().await?;
    for (k, v) in tags {
        if k.is_empty() || k.len() > 255 {
            return Err(Error::invalid("metadata", format!("key {k:?} must be 1 to 255 characters")));
        }
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let del = Query::delete()
            .from_table(Alias::new("metadata_tbl"))
            .and_where(Expr::col(Alias::new("obj_type")).eq(obj_type))
            .and_where(Expr::col(Alias::new("obj_id")).eq(obj_id))
            .and_where(Expr::col(Alias::new("meta_key")).eq(k.as_str()))
            .to_owned();
        txn.execute(&del).await?;
        if value.is_empty() {
            continue;
        }
        let ins = Query::insert()
            .into_table(Alias::new("metadata_tbl"))
            .columns([
                Alias::new("obj_type"),
                Alias::new("obj_id"),
                Alias::new("meta_key"),
                Alias::new("meta_value"),
                Alias::new("updated_at"),
            ])
            .values_panic([obj_type.into(), obj_id.into(), k.as_str().into(), value.into(), now().into()])
            .to_owned();
        txn.execute(&ins).await?;
    }
    txn.commit().await
}

/// Replaces all keys with `prefix` by `values` (used for OpenStack-style tag lists).
pub async fn replace_prefixed(
    db: &Db,
    obj_type: &str,
    obj_id: &str,
    prefix: &str,
    values: &[String],
) -> Result<(), Error> {
    let current = get(db, obj_type, obj_id).await?;
    let mut change = serde_json::Map::new();
    for k in current.keys().filter(|k| k.starts_with(prefix)) {
        change.insert(k.clone(), Value::Null);
    }
    for v in values {
        change.insert(format!("{prefix}{v}"), Value::String(v.clone()));
    }
    set(db, obj_type, obj_id, &change).await
}
