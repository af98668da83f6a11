//! The service catalog: regions, services (with their config blob) and endpoints, and the
//! catalog document tokens carry.

use std::sync::Arc;

use apis::Error;
use async_trait::async_trait;
use cloudcommon::db::Db;
use cloudcommon::resource::{Col, Ctx, NameScope, Owner, Resource, ResourceSpec, Row, row_bool, row_str, store};
use sea_orm::sea_query::Condition;
use serde_json::{Map, Value, json};

use super::SERVICE;
use crate::Keystone;

pub fn region_spec() -> ResourceSpec {
    ResourceSpec::new(SERVICE, "region", "regions", "regions_tbl").col(Col::str("parent_region_id", 128).rw())
}

pub fn service_spec() -> ResourceSpec {
    ResourceSpec::new(SERVICE, "service", "services", "services_tbl")
        .enabled()
        .col(Col::str("type", 64).rw().index())
        .col(Col::json("config").hidden())
}

pub fn endpoint_spec() -> ResourceSpec {
    ResourceSpec::new(SERVICE, "endpoint", "endpoints", "endpoints_tbl")
        .name_scope(NameScope::None)
        .enabled()
        .col(Col::str("service_id", 128).create().index())
        .col(Col::str("region_id", 128).rw())
        .col(Col::str("interface", 16).rw())
        .col(Col::str("url", 512).rw())
}

/// Builds the v3 catalog from enabled services and endpoints.
pub async fn build(db: &Db) -> Result<Value, Error> {
    let services = store::select(db, &service_spec(), Condition::all()).await?;
    let endpoints = store::select(db, &endpoint_spec(), Condition::all()).await?;
    let mut out = vec![];
    for s in services.iter().filter(|s| row_bool(s, "enabled")) {
        let sid = row_str(s, "id");
        let eps: Vec<Value> = endpoints
            .iter()
            .filter(|e| row_str(e, "service_id") == sid && row_bool(e, "enabled"))
            .map(|e| {
                json!({
                    "id": row_str(e, "id"),
                    "interface": row_str(e, "interface"),
                    "region": row_str(e, "region_id"),
                    "region_id": row_str(e, "region_id"),
                    "url": row_str(e, "url"),
                    "name": row_str(s, "name"),
                })
            })
            .collect();
        out.push(json!({"id": sid, "name": row_str(s, "name"), "type": row_str(s, "type"), "endpoints": eps}));
    }
    Ok(Value::Array(out))
}

pub struct Regions {
    spec: ResourceSpec,
    ks: Arc<Keystone>,
}

impl Regions {
    pub fn new(ks: Arc<Keystone>) -> Self {
        Regions { spec: region_spec(), ks }
    }
}

#[async_trait]
impl Resource for Regions {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    /// OpenStack regions are named by their id: `{"id": "RegionTwo"}`.
    async fn validate_create(&self, _ctx: &Ctx, input: &mut Row, raw: &Row, _owner: &Owner) -> Result<(), Error> {
        let id = raw.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        let name = row_str(input, "name").to_string();
        match (id.is_empty(), name.is_empty()) {
            (true, true) => return Err(Error::missing("id")),
            (true, false) => {
                input.insert("id".into(), name.into());
            }
            (false, true) => {
                input.insert("id".into(), id.clone().into());
                input.insert("name".into(), id.into());
            }
            _ => {
                input.insert("id".into(), id.into());
            }
        }
        if store::get_by_id(&self.ks.db, &self.spec, row_str(input, "id")).await?.is_some() {
            return Err(Error::Duplicate(format!("region {} already exists", row_str(input, "id"))));
        }
        Ok(())
    }

    async fn validate_delete(&self, _ctx: &Ctx, row: &Row) -> Result<(), Error> {
        let eps = store::select(&self.ks.db, &endpoint_spec(), Condition::all()).await?;
        if eps.iter().any(|e| row_str(e, "region_id") == row_str(row, "id")) {
            return Err(Error::InvalidStatus(format!("region {} still has endpoints", row_str(row, "id"))));
        }
        Ok(())
    }
}

pub struct Services {
    spec: ResourceSpec,
    ks: Arc<Keystone>,
}

impl Services {
    pub fn new(ks: Arc<Keystone>) -> Self {
        Services { spec: service_spec(), ks }
    }
}

#[async_trait]
impl Resource for Services {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, _ctx: &Ctx, input: &mut Row, _raw: &Row, _owner: &Owner) -> Result<(), Error> {
        if row_str(input, "type").is_empty() {
            return Err(Error::missing("type"));
        }
        if row_str(input, "name").is_empty() {
            let t = row_str(input, "type").to_string();
            input.insert("name".into(), t.into());
        }
        Ok(())
    }

    async fn post_update(&self, _ctx: &Ctx, _row: &Row, _raw: &Row) -> Result<(), Error> {
        self.ks.forget_cached();
        Ok(())
    }

    async fn validate_delete(&self, _ctx: &Ctx, row: &Row) -> Result<(), Error> {
        if row_str(row, "type") == apis::identity::SERVICE_TYPE_IDENTITY {
            return Err(Error::Forbidden("the identity service cannot be deleted".into()));
        }
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        let eps = store::select(ctx.db(), &endpoint_spec(), Condition::all()).await?;
        for e in eps.iter().filter(|e| row_str(e, "service_id") == row_str(row, "id")) {
            store::soft_delete(ctx.db(), &endpoint_spec(), e).await?;
        }
        self.ks.forget_cached();
        store::soft_delete(ctx.db(), &self.spec, row).await
    }

    /// `GET /services/<id>/config`: `{"config": {"default": {...}}}`.
    async fn get_spec(&self, _ctx: &Ctx, row: &Row, spec: &str) -> Result<Value, Error> {
        match spec {
            "config" => Ok(
                json!({"config": {"default": row.get("config").cloned().filter(|v| v.is_object()).unwrap_or(json!({}))}}),
            ),
            other => Err(Error::NotFound(format!("service has no spec {other}"))),
        }
    }

    /// `POST /services/<id>/config` `{"config": {"default": {k: v}}}` merges keys; a null value removes one.
    async fn perform(&self, ctx: &Ctx, row: &Row, action: &str, body: &Row) -> Result<Value, Error> {
        if action != "config" {
            return Err(Error::NotFound(format!("service has no action {action}")));
        }
        let new = body
            .get("config")
            .and_then(|c| c.get("default").or(Some(c)))
            .and_then(Value::as_object)
            .ok_or_else(|| Error::invalid("config", "must be {\"default\": {...}}"))?;
        let mut cur: Map<String, Value> = row.get("config").and_then(Value::as_object).cloned().unwrap_or_default();
        for (k, v) in new {
            if v.is_null() {
                cur.remove(k);
            } else {
                cur.insert(k.clone(), v.clone());
            }
        }
        let mut patch = Row::new();
        patch.insert("config".into(), Value::Object(cur.clone()));
        store::update(ctx.db(), &self.spec, row_str(row, "id"), &patch).await?;
        Ok(json!({"config": {"default": cur}}))
    }
}

pub struct Endpoints {
    spec: ResourceSpec,
    ks: Arc<Keystone>,
}

impl Endpoints {
    pub fn new(ks: Arc<Keystone>) -> Self {
        Endpoints { spec: endpoint_spec(), ks }
    }
}

fn check_interface(i: &str) -> Result<(), Error> {
    match i {
        "public" | "internal" | "admin" | "console" => Ok(()),
        other => Err(Error::invalid("interface", format!("{other:?} is not public, internal, admin or console"))),
    }
}

fn check_url(u: &str) -> Result<(), Error> {
    if u.starts_with("http://") || u.starts_with("https://") {
        Ok(())
    } else {
        Err(Error::invalid("url", "must be an http(s) URL"))
    }
}

#[async_trait]
impl Resource for Endpoints {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, raw: &Row, _owner: &Owner) -> Result<(), Error> {
        let region =
            raw.get("region_id").or_else(|| raw.get("region")).and_then(Value::as_str).unwrap_or_default().to_string();
        if region.is_empty() {
            return Err(Error::missing("region_id"));
        }
        if store::get_by_id(ctx.db(), &region_spec(), &region).await?.is_none() {
            return Err(Error::not_found("region", &region));
        }
        input.insert("region_id".into(), region.into());
        let sid = row_str(input, "service_id").to_string();
        let services = ctx.svc.resource("services")?;
        let service =
            cloudcommon::resource::dispatch::fetch_authorized(ctx, services.as_ref(), &sid, "get", None).await?;
        input.insert("service_id".into(), row_str(&service, "id").into());
        check_interface(row_str(input, "interface"))?;
        check_url(row_str(input, "url"))?;
        if row_str(input, "name").is_empty() {
            let name = format!("{}-{}", row_str(&service, "name"), row_str(input, "interface"));
            input.insert("name".into(), name.into());
        }
        Ok(())
    }

    async fn post_create(&self, _ctx: &Ctx, _row: &Row, _raw: &Row) -> Result<(), Error> {
        self.ks.forget_cached();
        Ok(())
    }

    async fn validate_update(&self, _ctx: &Ctx, _row: &Row, patch: &mut Row, _raw: &Row) -> Result<(), Error> {
        if let Some(i) = patch.get("interface").and_then(Value::as_str) {
            check_interface(i)?;
        }
        if let Some(u) = patch.get("url").and_then(Value::as_str) {
            check_url(u)?;
        }
        Ok(())
    }

    async fn post_update(&self, _ctx: &Ctx, _row: &Row, _raw: &Row) -> Result<(), Error> {
        self.ks.forget_cached();
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        self.ks.forget_cached();
        store::soft_delete(ctx.db(), &self.spec, row).await
    }

    async fn extra_details(&self, _ctx: &Ctx, rows: &mut [Row], _details: bool) -> Result<(), Error> {
        for row in rows.iter_mut() {
            let r = row.get("region_id").cloned().unwrap_or(Value::Null);
            row.insert("region".into(), r);
        }
        Ok(())
    }
}
