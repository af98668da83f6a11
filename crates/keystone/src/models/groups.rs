//! Groups of users; roles granted to a group apply to its members.

use std::sync::Arc;

use apis::Error;
use async_trait::async_trait;
use cloudcommon::resource::{Ctx, OwnerScope, Resource, ResourceSpec, Row, row_str, store};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use serde_json::{Value, json};

use super::SERVICE;
use crate::{Keystone, assignments};

pub fn spec() -> ResourceSpec {
    ResourceSpec::new(SERVICE, "group", "groups", "groups_tbl").owner(OwnerScope::Domain)
}

pub struct Groups {
    spec: ResourceSpec,
    ks: Arc<Keystone>,
}

impl Groups {
    pub fn new(ks: Arc<Keystone>) -> Self {
        Groups { spec: spec(), ks }
    }

    fn user_ids(body: &Row) -> Result<Vec<String>, Error> {
        match body.get("users") {
            Some(Value::Array(a)) => Ok(a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            _ => Err(Error::missing("users")),
        }
    }
}

#[async_trait]
impl Resource for Groups {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        let gid = row_str(row, "id");
        for u in assignments::group_users(ctx.db(), gid).await? {
            self.ks.revoke_user(&u).await?;
        }
        assignments::remove_all_of(ctx.db(), gid).await?;
        assignments::remove_memberships(ctx.db(), gid).await?;
        store::soft_delete(ctx.db(), &self.spec, row).await
    }

    async fn perform(&self, ctx: &Ctx, row: &Row, action: &str, body: &Row) -> Result<Value, Error> {
        let gid = row_str(row, "id");
        let users_r = ctx.svc.resource("users")?;
        for key in Self::user_ids(body)? {
            let user =
                cloudcommon::resource::dispatch::fetch_authorized(ctx, users_r.as_ref(), &key, "get", None).await?;
            let uid = row_str(&user, "id");
            match action {
                "add-users" => assignments::add_user_to_group(ctx.db(), uid, gid).await?,
                "remove-users" => {
                    assignments::remove_user_from_group(ctx.db(), uid, gid).await?;
                    self.ks.revoke_user(uid).await?;
                }
                other => return Err(Error::NotFound(format!("group has no action {other}"))),
            }
        }
        self.ks.forget_cached();
        Ok(json!({"group": store::to_view(&self.spec, row.clone())}))
    }

    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], details: bool) -> Result<(), Error> {
        super::add_domain_names(ctx, rows, details).await
    }

    async fn context_filter(&self, ctx: &Ctx, ctx_plural: &str, ctx_id: &str) -> Result<Option<Condition>, Error> {
        if ctx_plural != "users" {
            return Ok(None);
        }
        let ids = assignments::user_groups(ctx.db(), ctx_id).await?;
        Ok(Some(Condition::all().add(Expr::col((Alias::new("groups_tbl"), Alias::new("id"))).is_in(ids))))
    }
}
