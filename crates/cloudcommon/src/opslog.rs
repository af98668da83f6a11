//! The per-service operation log (`GET /events`): one row per change a service made.
//!
//! Events are written by the framework (see [`crate::actionlog`]) and are read-only through
//! the API. Each event carries the owner of the object it is about, so a project member
//! sees the events of its project's objects only.

use apis::Error;
use async_trait::async_trait;

use crate::db::Migration;
use crate::resource::{Col, Ctx, Owner, OwnerScope, Resource, ResourceSpec, Row};

pub fn spec(service: &'static str) -> ResourceSpec {
    ResourceSpec::new(service, "event", "events", "opslog_tbl")
        .owner(OwnerScope::Project)
        .name_scope(crate::resource::NameScope::None)
        .col(Col::str("obj_type", 64).index())
        .col(Col::str("obj_id", 128).index())
        .col(Col::str("action", 64))
        .col(Col::text("notes"))
        .col(Col::str("user_id", 128))
        .col(Col::str("user", 128))
        .col(Col::str("actor_tenant_id", 128))
        .col(Col::str("actor_tenant", 128))
        .col(Col::bool("success"))
        .col(Col::str("request_id", 64))
        .col(Col::str("ops_time", 32).index())
        .order("ops_time", true)
}

/// The ops-log table's migration, shared by every service.
pub const MIGRATION: Migration = Migration { version: 2, name: "opslog", up: |db| spec("any").create_table_sql(db) };

/// `GET /events`.
pub struct Events {
    spec: ResourceSpec,
}

impl Events {
    pub fn new(service: &'static str) -> Events {
        Events { spec: spec(policy_service(service)) }
    }
}

/// The policy service name of a service (keystone's resources are `identity`'s).
pub fn policy_service(service: &'static str) -> &'static str {
    match service {
        "keystone" => "identity",
        "logger" => "log",
        "region" => "compute",
        "glance" => "image",
        other => other,
    }
}

#[async_trait]
impl Resource for Events {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, _ctx: &Ctx, _input: &mut Row, _raw: &Row, _owner: &Owner) -> Result<(), Error> {
        Err(Error::Forbidden("events are written by the service itself".into()))
    }

    async fn validate_update(&self, _ctx: &Ctx, _row: &Row, _patch: &mut Row, _raw: &Row) -> Result<(), Error> {
        Err(Error::Forbidden("events are read-only".into()))
    }

    async fn validate_delete(&self, _ctx: &Ctx, _row: &Row) -> Result<(), Error> {
        Err(Error::Forbidden("events are read-only".into()))
    }
}
