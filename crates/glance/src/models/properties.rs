//! `image_properties`: free-form key/value facts about an image (`os_type`,
//! `os_distribution`, `os_version`, `os_arch`, `uefi_support`, ... and any
//! `X-Image-Meta-Property-*`). Datastore only.

use std::collections::BTreeMap;

use apis::Error;
use cloudcommon::db::{Db, Migration, db_err, now};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use serde_json::{Map, Value};

const TABLE: &str = "image_properties";

pub const MIGRATION: Migration = Migration {
    version: 11,
    name: "image_properties",
    up: |_db| {
        vec![
            "CREATE TABLE IF NOT EXISTS image_properties (image_id VARCHAR(128) NOT NULL, name VARCHAR(64) NOT NULL, \
             value TEXT, created_at VARCHAR(32) NOT NULL, updated_at VARCHAR(32) NOT NULL, \
             PRIMARY KEY (image_id, name))"
                .to_string(),
        ]
    },
};

/// Checks a `properties` input: an object of short keys to string (or scalar) values.
pub fn validate(v: &Value) -> Result<Map<String, Value>, Error> {
    let Value::Object(m) = v else {
        return Err(Error::invalid("properties", "must be an object of key: value"));
    };
    let mut out = Map::new();
    for (k, v) in m {
        let key = k.trim().to_ascii_lowercase();
        if key.is_empty() || key.len() > 64 {
            return Err(Error::invalid("properties", format!("key {k:?} must be 1 to 64 characters")));
        }
        let value = match v {
            Value::String(s) => Value::String(s.clone()),
            Value::Null => Value::Null,
            Value::Bool(_) | Value::Number(_) => Value::String(v.to_string()),
            _ => return Err(Error::invalid("properties", format!("{key} must be a string"))),
        };
        out.insert(key, value);
    }
    Ok(out)
}

/// The properties of several images, by image id.
pub async fn of_images(db: &Db, ids: &[String]) -> Result<BTreeMap<String, Map<String, Value>>, Error> {
    let mut out: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let q = Query::select()
        .from(Alias::new(TABLE))
        .columns([Alias::new("image_id"), Alias::new("name"), Alias::new("value")])
        .and_where(Expr::col(Alias::new("image_id")).is_in(ids.iter().cloned()))
        .to_owned();
    for r in db.query_all(&q).await? {
        let id: String = r.try_get("", "image_id").map_err(db_err)?;
        let name: String = r.try_get("", "name").map_err(db_err)?;
        let value: Option<String> = r.try_get("", "value").map_err(db_err)?;
        out.entry(id).or_default().insert(name, Value::String(value.unwrap_or_default()));
    }
    Ok(out)
}

pub async fn of_image(db: &Db, id: &str) -> Result<Map<String, Value>, Error> {
    Ok(of_images(db, &[id.to_string()]).await?.remove(id).unwrap_or_default())
}

/// Sets these properties of an image; an empty or null value removes the key.
pub async fn set(db: &Db, image_id: &str, props: &Map<String, Value>) -> Result<(), Error> {
    let txn = db.begin().await?;
    for (k, v) in props {
        let del = Query::delete()
            .from_table(Alias::new(TABLE))
            .and_where(Expr::col(Alias::new("image_id")).eq(image_id))
            .and_where(Expr::col(Alias::new("name")).eq(k.as_str()))
            .to_owned();
        txn.execute(&del).await?;
        let value = v.as_str().unwrap_or_default();
        if value.is_empty() {
            continue;
        }
        let t = now();
        let ins = Query::insert()
            .into_table(Alias::new(TABLE))
            .columns(["image_id", "name", "value", "created_at", "updated_at"].map(Alias::new))
            .values_panic([image_id.into(), k.as_str().into(), value.into(), t.clone().into(), t.into()])
            .to_owned();
        txn.execute(&ins).await?;
    }
    txn.commit().await
}

pub async fn remove_all(db: &Db, image_id: &str) -> Result<(), Error> {
    let del = Query::delete()
        .from_table(Alias::new(TABLE))
        .and_where(Expr::col(Alias::new("image_id")).eq(image_id))
        .to_owned();
    db.execute(&del).await?;
    Ok(())
}
