//! Roles. The predefined ones are public to every domain; role-policy bindings decide what
//! a role allows (see `policies.rs`).

use std::sync::Arc;

use apis::Error;
use async_trait::async_trait;
use cloudcommon::resource::{Ctx, OwnerScope, Resource, ResourceSpec, Row, row_str, store};
use serde_json::{Value, json};

use super::SERVICE;
use crate::{Keystone, assignments};

pub fn spec() -> ResourceSpec {
    ResourceSpec::new(SERVICE, "role", "roles", "roles_tbl").owner(OwnerScope::Domain).sharable()
}

pub struct Roles {
    spec: ResourceSpec,
    ks: Arc<Keystone>,
}

impl Roles {
    pub fn new(ks: Arc<Keystone>) -> Self {
        Roles { spec: spec(), ks }
    }
}

#[async_trait]
impl Resource for Roles {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_delete(&self, _ctx: &Ctx, row: &Row) -> Result<(), Error> {
        if crate::bootstrap::PREDEFINED_ROLES.iter().any(|(n, _)| *n == row_str(row, "name")) {
            return Err(Error::Forbidden(format!("role {} is predefined and cannot be deleted", row_str(row, "name"))));
        }
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        let id = row_str(row, "id");
        assignments::remove_all_of(ctx.db(), id).await?;
        super::policies::unbind_all(ctx.db(), id).await?;
        self.ks.forget_cached();
        store::soft_delete(ctx.db(), &self.spec, row).await
    }

    /// `add-policy`, `remove-policy`: `{"policy_id", "project_id"?}`.
    async fn perform(&self, ctx: &Ctx, row: &Row, action: &str, body: &Row) -> Result<Value, Error> {
        let policy_key = body
            .get("policy_id")
            .or_else(|| body.get("policy"))
            .and_then(Value::as_str)
            .ok_or_else(|| Error::missing("policy_id"))?;
        let policies_r = ctx.svc.resource("policies")?;
        let policy =
            cloudcommon::resource::dispatch::fetch_authorized(ctx, policies_r.as_ref(), policy_key, "get", None)
                .await?;
        let project = match body.get("project_id").or_else(|| body.get("project")).and_then(Value::as_str) {
            Some(p) if !p.is_empty() => {
                let pr = ctx.svc.resource("projects")?;
                let project =
                    cloudcommon::resource::dispatch::fetch_authorized(ctx, pr.as_ref(), p, "get", None).await?;
                Some(row_str(&project, "id").to_string())
            }
            _ => None,
        };
        let (rid, pid) = (row_str(row, "id"), row_str(&policy, "id"));
        match action {
            "add-policy" => super::policies::bind(ctx.db(), rid, pid, project.as_deref()).await?,
            "remove-policy" => super::policies::unbind(ctx.db(), rid, pid, project.as_deref()).await?,
            other => return Err(Error::NotFound(format!("role has no action {other}"))),
        }
        self.ks.forget_cached();
        Ok(json!({"role": store::to_view(&self.spec, row.clone())}))
    }

    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], details: bool) -> Result<(), Error> {
        for row in rows.iter_mut() {
            row.insert("domain_id".into(), row.get("domain_id").cloned().unwrap_or(Value::Null));
            row.entry("options").or_insert(json!({}));
        }
        super::add_domain_names(ctx, rows, details).await
    }
}
