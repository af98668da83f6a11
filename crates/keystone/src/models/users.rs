//! Users: credentials (bcrypt passwords), enable/disable, lockout, group membership, and
//! Cloudpods' `join`/`leave` actions. Disabling, deleting or changing the password of a
//! user revokes its tokens.

use std::sync::Arc;

use apis::Error;
use async_trait::async_trait;
use cloudcommon::auth::{Scope, UserCred};
use cloudcommon::resource::{Col, Ctx, Owner, OwnerScope, Resource, ResourceSpec, Row, row_bool, row_str, store};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use serde_json::{Value, json};

use super::SERVICE;
use crate::assignments::{self, Actor, Target};
use crate::{Keystone, passwords};

pub fn spec() -> ResourceSpec {
    ResourceSpec::new(SERVICE, "user", "users", "users_tbl")
        .owner(OwnerScope::Domain)
        .enabled()
        .col(Col::str("displayname", 128).rw().search())
        .col(Col::str("email", 128).rw().search())
        .col(Col::str("mobile", 36).rw().search())
        .col(Col::bool("is_system_account").rw().not_null(false.into()))
        .col(Col::bool("allow_web_console").rw().not_null(true.into()))
        .col(Col::bool("enable_mfa").rw().not_null(false.into()))
        .col(Col::str("lang", 8).rw())
        .col(Col::str("expired_at", 32).rw())
        .col(Col::str("default_project_id", 128).rw())
        .col(Col::int("failed_auth_count").hidden().not_null(0.into()))
        .col(Col::str("locked_until", 32).hidden())
}

pub struct Users {
    spec: ResourceSpec,
    ks: Arc<Keystone>,
}

impl Users {
    pub fn new(ks: Arc<Keystone>) -> Self {
        Users { spec: spec(), ks }
    }

    async fn resolve(&self, ctx: &Ctx, plural: &str, key: &str) -> Result<Row, Error> {
        let r = ctx.svc.resource(plural)?;
        cloudcommon::resource::dispatch::fetch_authorized(ctx, r.as_ref(), key, "get", None).await
    }

    /// `join`: `{"projects": [..], "roles": [..]}` grants every role on every project.
    async fn join(&self, ctx: &Ctx, user: &Row, body: &Row) -> Result<(), Error> {
        let list = |k: &str| -> Result<Vec<String>, Error> {
            match body.get(k) {
                Some(Value::Array(a)) => Ok(a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()),
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                _ => Err(Error::missing(k)),
            }
        };
        let (projects, roles) = (list("projects")?, list("roles")?);
        let mut pairs = vec![];
        for p in &projects {
            let project = self.resolve(ctx, "projects", p).await?;
            let pr = ctx.svc.resource("projects")?;
            cloudcommon::resource::dispatch::fetch_authorized(
                ctx,
                pr.as_ref(),
                row_str(&project, "id"),
                "update",
                None,
            )
            .await?;
            for r in &roles {
                let role = self.resolve(ctx, "roles", r).await?;
                pairs.push((row_str(&project, "id").to_string(), row_str(&role, "id").to_string()));
            }
        }
        for (p, r) in pairs {
            assignments::grant(ctx.db(), Actor::User, Target::Project, row_str(user, "id"), &p, &r).await?;
        }
        self.ks.forget_cached();
        Ok(())
    }

    async fn leave(&self, ctx: &Ctx, user: &Row, body: &Row) -> Result<(), Error> {
        let projects: Vec<String> = match body.get("projects") {
            Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => return Err(Error::missing("projects")),
        };
        let uid = row_str(user, "id");
        for p in projects {
            let project = self.resolve(ctx, "projects", &p).await?;
            let pid = row_str(&project, "id");
            for role in assignments::effective_roles(ctx.db(), uid, Target::Project, pid).await? {
                assignments::revoke(ctx.db(), Actor::User, Target::Project, uid, pid, &role).await?;
            }
        }
        self.ks.revoke_user(uid).await
    }

    /// OpenStack's self-service password change: `{"password", "original_password"}`.
    async fn change_password(&self, ctx: &Ctx, user: &Row, body: &Row) -> Result<(), Error> {
        let new = body.get("password").and_then(Value::as_str).ok_or_else(|| Error::missing("password"))?;
        let uid = row_str(user, "id");
        if ctx.cred.user_id == uid {
            let old = body
                .get("original_password")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::missing("original_password"))?;
            let ok = match passwords::current(ctx.db(), uid).await? {
                Some(h) => passwords::verify(old, &h).await,
                None => false,
            };
            if !ok {
                return Err(Error::InvalidCredential("the original password is wrong".into()));
            }
        }
        passwords::validate(new, self.ks.cfg.password_minimal_length)?;
        passwords::set(ctx.db(), uid, new, self.ks.cfg.bcrypt_cost).await?;
        self.ks.revoke_user(uid).await
    }
}

#[async_trait]
impl Resource for Users {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, _ctx: &Ctx, _input: &mut Row, raw: &Row, owner: &Owner) -> Result<(), Error> {
        if let Some(p) = raw.get("password") {
            let p = p.as_str().ok_or_else(|| Error::invalid("password", "must be a string"))?;
            passwords::validate(p, self.ks.cfg.password_minimal_length)?;
        }
        if store::get_by_id(&self.ks.db, &super::domains::spec(), &owner.domain_id).await?.is_none() {
            return Err(Error::not_found("domain", &owner.domain_id));
        }
        Ok(())
    }

    async fn post_create(&self, ctx: &Ctx, row: &Row, raw: &Row) -> Result<(), Error> {
        let uid = row_str(row, "id");
        if let Some(p) = raw.get("password").and_then(Value::as_str) {
            passwords::set(ctx.db(), uid, p, self.ks.cfg.bcrypt_cost).await?;
        }
        // OpenStack: `default_project_id` only names a project; Cloudpods' `project` + `role` grant.
        if let (Some(p), Some(r)) =
            (raw.get("project").and_then(Value::as_str), raw.get("role").and_then(Value::as_str))
        {
            let body: Row = json!({"projects": [p], "roles": [r]}).as_object().cloned().unwrap_or_default();
            self.join(ctx, row, &body).await?;
        }
        Ok(())
    }

    async fn validate_update(&self, ctx: &Ctx, row: &Row, patch: &mut Row, raw: &Row) -> Result<(), Error> {
        if let Some(p) = raw.get("password") {
            let p = p.as_str().ok_or_else(|| Error::invalid("password", "must be a string"))?;
            passwords::validate(p, self.ks.cfg.password_minimal_length)?;
        }
        if row_str(row, "id") == ctx.cred.user_id && patch.get("enabled") == Some(&Value::Bool(false)) {
            return Err(Error::Forbidden("you cannot disable yourself".into()));
        }
        Ok(())
    }

    async fn post_update(&self, ctx: &Ctx, row: &Row, raw: &Row) -> Result<(), Error> {
        let uid = row_str(row, "id");
        if let Some(p) = raw.get("password").and_then(Value::as_str) {
            passwords::set(ctx.db(), uid, p, self.ks.cfg.bcrypt_cost).await?;
            // A password reset by an administrator also unlocks the account.
            let mut unlock = Row::new();
            unlock.insert("failed_auth_count".into(), 0.into());
            unlock.insert("locked_until".into(), Value::Null);
            store::update(ctx.db(), &self.spec, uid, &unlock).await?;
            self.ks.revoke_user(uid).await?;
        }
        if !row_bool(row, "enabled") {
            self.ks.revoke_user(uid).await?;
        }
        Ok(())
    }

    async fn validate_delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        if row_str(row, "id") == ctx.cred.user_id {
            return Err(Error::Forbidden("you cannot delete yourself".into()));
        }
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        let uid = row_str(row, "id");
        self.ks.revoke_user(uid).await?;
        assignments::remove_all_of(ctx.db(), uid).await?;
        assignments::remove_memberships(ctx.db(), uid).await?;
        passwords::remove_all(ctx.db(), uid).await?;
        store::soft_delete(ctx.db(), &self.spec, row).await
    }

    async fn perform(&self, ctx: &Ctx, row: &Row, action: &str, body: &Row) -> Result<Value, Error> {
        // Only a password change is open to the user itself; the rest needs rights over users.
        if action != "password" {
            let scope = cloudcommon::resource::dispatch::authorize(self, &ctx.cred, "perform", Some(action))?;
            if !store::row_in_scope(&self.spec, &ctx.cred, scope, row) {
                return Err(Error::Forbidden(format!(
                    "{} may not {action} user {}",
                    ctx.cred.user,
                    row_str(row, "name")
                )));
            }
        }
        match action {
            "join" => self.join(ctx, row, body).await?,
            "leave" => self.leave(ctx, row, body).await?,
            "password" => self.change_password(ctx, row, body).await?,
            "unlock" => {
                let mut unlock = Row::new();
                unlock.insert("failed_auth_count".into(), 0.into());
                unlock.insert("locked_until".into(), Value::Null);
                store::update(ctx.db(), &self.spec, row_str(row, "id"), &unlock).await?;
            }
            other => return Err(Error::NotFound(format!("user has no action {other}"))),
        }
        let row = store::get_by_id(ctx.db(), &self.spec, row_str(row, "id")).await?.unwrap_or_default();
        Ok(json!({"user": store::to_view(&self.spec, row)}))
    }

    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], details: bool) -> Result<(), Error> {
        for row in rows.iter_mut() {
            row.insert("password_expires_at".into(), Value::Null);
            row.entry("options").or_insert(json!({}));
            let locked = row
                .get("locked_until")
                .and_then(Value::as_str)
                .and_then(cloudcommon::db::parse_time)
                .is_some_and(|t| t > chrono::Utc::now());
            row.insert("is_locked".into(), locked.into());
        }
        super::add_domain_names(ctx, rows, details).await
    }

    async fn context_filter(&self, ctx: &Ctx, ctx_plural: &str, ctx_id: &str) -> Result<Option<Condition>, Error> {
        let ids: Vec<String> = match ctx_plural {
            "groups" => assignments::group_users(ctx.db(), ctx_id).await?,
            "projects" => assignments::effective(
                ctx.db(),
                &assignments::Filter { project: Some(ctx_id.into()), effective: true, ..Default::default() },
            )
            .await?
            .into_iter()
            .map(|a| a.actor_id)
            .collect(),
            _ => return Ok(None),
        };
        Ok(Some(Condition::all().add(Expr::col((Alias::new("users_tbl"), Alias::new("id"))).is_in(ids))))
    }

    fn scope_filter(&self, cred: &UserCred, scope: Scope) -> Condition {
        let own = cloudcommon::resource::store::scope_condition(&self.spec, cred, scope);
        if scope >= Scope::Domain {
            return own;
        }
        Condition::any().add(own).add(Expr::col((Alias::new("users_tbl"), Alias::new("id"))).eq(cred.user_id.clone()))
    }

    fn visible_outside_scope(&self, cred: &UserCred, row: &Row, action: &str) -> bool {
        // Users may read themselves and change their own password.
        row_str(row, "id") == cred.user_id && matches!(action, "get" | "perform")
    }
}
