//! Resources: a spec plus hooks, served by one generic dispatcher.
//!
//! A service declares each resource as a [`ResourceSpec`] (names, owner scope, columns) and
//! an implementation of [`Resource`] whose hooks default to "nothing special". The
//! dispatcher ([`dispatch`]) gives every resource Cloudpods' REST shape, list parameters,
//! RBAC scoping, id-or-name lookup, batch create, soft delete, metadata, ops-log events and
//! action logs. See `docs/adding-a-resource.md`.

pub mod dispatch;
pub mod metadata;
pub mod query;
pub mod spec;
pub mod store;

use std::sync::Arc;

use apis::Error;
use async_trait::async_trait;
use sea_orm::sea_query::Condition;
use serde_json::{Map, Value};

pub use query::ListQuery;
pub use spec::{Col, ColType, NameScope, OwnerScope, ResourceSpec};

use crate::auth::{Scope, UserCred};
use crate::service::ServiceState;

/// A row, as JSON keyed by column name.
pub type Row = Map<String, Value>;

/// The context of one API request.
#[derive(Clone)]
pub struct Ctx {
    pub svc: Arc<ServiceState>,
    pub cred: Arc<UserCred>,
    pub request_id: String,
    pub client_ip: String,
}

impl Ctx {
    pub fn db(&self) -> &crate::db::Db {
        &self.svc.db
    }

    /// The context of an HTTP request: who calls, which request, from where.
    pub fn of_request(
        svc: &Arc<ServiceState>,
        cred: Arc<UserCred>,
        headers: &axum::http::HeaderMap,
        rid: &crate::service::RequestId,
    ) -> Ctx {
        Ctx { svc: svc.clone(), cred, request_id: rid.0.clone(), client_ip: crate::service::client_ip(headers) }
    }

    /// A context acting as the service itself (background work, bootstrap).
    pub fn internal(svc: Arc<ServiceState>, cred: Arc<UserCred>) -> Ctx {
        Ctx { svc, cred, request_id: crate::db::new_id(), client_ip: String::new() }
    }
}

/// The owner a new row gets.
#[derive(Debug, Clone, Default)]
pub struct Owner {
    pub domain_id: String,
    pub project_id: String,
}

/// Hooks of one resource. Every hook has a default, so a plain resource is just a spec.
#[async_trait]
pub trait Resource: Send + Sync + 'static {
    fn spec(&self) -> &ResourceSpec;

    /// Checks and completes create input. `input` holds only the columns the spec accepts at
    /// create, plus whatever the hook adds; it becomes the new row.
    async fn validate_create(&self, _ctx: &Ctx, _input: &mut Row, _raw: &Row, _owner: &Owner) -> Result<(), Error> {
        Ok(())
    }

    /// Runs after the row is committed (start a task, write related rows).
    async fn post_create(&self, _ctx: &Ctx, _row: &Row, _raw: &Row) -> Result<(), Error> {
        Ok(())
    }

    /// Checks and completes an update patch.
    async fn validate_update(&self, _ctx: &Ctx, _row: &Row, _patch: &mut Row, _raw: &Row) -> Result<(), Error> {
        Ok(())
    }

    async fn post_update(&self, _ctx: &Ctx, _row: &Row, _raw: &Row) -> Result<(), Error> {
        Ok(())
    }

    /// Refuses a delete that would leave things inconsistent.
    async fn validate_delete(&self, _ctx: &Ctx, _row: &Row) -> Result<(), Error> {
        Ok(())
    }

    /// Deletes the row; by default a soft delete. Resources with tasks start one here.
    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        store::soft_delete(ctx.db(), self.spec(), row).await
    }

    /// `DELETE /<plural>/<id>?<query>`: resources whose delete takes options
    /// (`override_pending_delete`, `purge`) read them here; by default [`Resource::delete`].
    async fn delete_with_query(&self, ctx: &Ctx, row: &Row, _query: &[(String, String)]) -> Result<(), Error> {
        self.delete(ctx, row).await
    }

    /// Adds computed fields to views (`details=true`): names of owners, counts, tags.
    async fn extra_details(&self, _ctx: &Ctx, _rows: &mut [Row], _details: bool) -> Result<(), Error> {
        Ok(())
    }

    /// Extra list conditions from resource-specific query parameters.
    async fn list_filter(&self, _ctx: &Ctx, _q: &ListQuery) -> Result<Option<Condition>, Error> {
        Ok(None)
    }

    /// Condition for `GET /<ctx_plural>/<ctx_id>/<plural>`; `None` means no such context.
    async fn context_filter(&self, _ctx: &Ctx, _ctx_plural: &str, _ctx_id: &str) -> Result<Option<Condition>, Error> {
        Ok(None)
    }

    /// `POST /<plural>/<id>/<action>`.
    async fn perform(&self, _ctx: &Ctx, _row: &Row, action: &str, _body: &Row) -> Result<Value, Error> {
        Err(Error::NotFound(format!("{} has no action {action}", self.spec().keyword)))
    }

    /// `POST /<plural>/<action>`.
    async fn perform_class(&self, _ctx: &Ctx, action: &str, _body: &Row) -> Result<Value, Error> {
        Err(Error::NotFound(format!("{} has no class action {action}", self.spec().plural)))
    }

    /// `GET /<plural>/<id>/<spec>`.
    async fn get_spec(&self, _ctx: &Ctx, _row: &Row, spec: &str) -> Result<Value, Error> {
        Err(Error::NotFound(format!("{} has no spec {spec}", self.spec().keyword)))
    }

    /// The rows a caller sees in `scope`; by default those it owns there and those shared with it.
    fn scope_filter(&self, cred: &UserCred, scope: Scope) -> Condition {
        store::scope_condition(self.spec(), cred, scope)
    }

    /// Whether the caller may see a row outside its granted scope (e.g. a user reading itself).
    fn visible_outside_scope(&self, _cred: &UserCred, _row: &Row, _action: &str) -> bool {
        false
    }

    /// Whether writes to this resource are recorded (ops-log event and logger action). The
    /// logger's own records say no: recording a record would only record it twice.
    fn record_writes(&self) -> bool {
        true
    }

    /// The scope a list defaults to when `scope=` is absent; by default the widest granted.
    fn default_list_scope(&self, granted: Scope) -> Scope {
        granted
    }
}

/// Reads a string field of a row.
pub fn row_str<'a>(row: &'a Row, key: &str) -> &'a str {
    row.get(key).and_then(Value::as_str).unwrap_or_default()
}

pub fn row_bool(row: &Row, key: &str) -> bool {
    row.get(key).and_then(Value::as_bool).unwrap_or(false)
}
