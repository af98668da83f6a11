//! Projects: own resources, hold role assignments; OpenStack tags kept as metadata.

use std::sync::Arc;

use apis::Error;
use apis::identity::SYSTEM_PROJECT;
use async_trait::async_trait;
use cloudcommon::auth::{Scope, UserCred};
use cloudcommon::resource::{Ctx, ListQuery, Owner, OwnerScope, Resource, ResourceSpec, Row, metadata, row_str, store};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use serde_json::{Value, json};

use super::SERVICE;
use crate::{Keystone, assignments};

pub fn spec() -> ResourceSpec {
    ResourceSpec::new(SERVICE, "project", "projects", "projects_tbl").owner(OwnerScope::Domain).enabled()
}

const TAG_PREFIX: &str = "user:";

pub struct Projects {
    spec: ResourceSpec,
    ks: Arc<Keystone>,
}

impl Projects {
    pub fn new(ks: Arc<Keystone>) -> Self {
        Projects { spec: spec(), ks }
    }
}

/// The OpenStack fields of a project view.
pub fn openstack_view(mut row: Row) -> Row {
    let domain = row_str(&row, "domain_id").to_string();
    row.insert("is_domain".into(), false.into());
    row.insert("parent_id".into(), domain.into());
    row.entry("tags").or_insert(json!([]));
    row.entry("options").or_insert(json!({}));
    store::to_view(&spec(), row)
}

fn tags_of(raw: &Row) -> Result<Option<Vec<String>>, Error> {
    match raw.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| t.as_str().filter(|s| !s.is_empty() && s.len() <= 255 && !s.contains(',')).map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| Error::invalid("tags", "must be a list of non-empty strings without commas")),
        Some(_) => Err(Error::invalid("tags", "must be a list of strings")),
    }
}

#[async_trait]
impl Resource for Projects {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, _ctx: &Ctx, _input: &mut Row, raw: &Row, owner: &Owner) -> Result<(), Error> {
        tags_of(raw)?;
        if store::get_by_id(&self.ks.db, &super::domains::spec(), &owner.domain_id).await?.is_none() {
            return Err(Error::not_found("domain", &owner.domain_id));
        }
        Ok(())
    }

    async fn post_create(&self, _ctx: &Ctx, row: &Row, raw: &Row) -> Result<(), Error> {
        if let Some(tags) = tags_of(raw)? {
            metadata::replace_prefixed(&self.ks.db, "project", row_str(row, "id"), TAG_PREFIX, &tags).await?;
        }
        Ok(())
    }

    async fn validate_update(&self, _ctx: &Ctx, row: &Row, patch: &mut Row, raw: &Row) -> Result<(), Error> {
        tags_of(raw)?;
        if row_str(row, "name") == SYSTEM_PROJECT && patch.get("enabled") == Some(&Value::Bool(false)) {
            return Err(Error::Forbidden("the system project cannot be disabled".into()));
        }
        Ok(())
    }

    async fn post_update(&self, _ctx: &Ctx, row: &Row, raw: &Row) -> Result<(), Error> {
        if let Some(tags) = tags_of(raw)? {
            metadata::replace_prefixed(&self.ks.db, "project", row_str(row, "id"), TAG_PREFIX, &tags).await?;
        }
        if row.get("enabled") == Some(&Value::Bool(false)) {
            self.ks.tokens.revoke_scope(row_str(row, "id")).await?;
        }
        Ok(())
    }

    async fn validate_delete(&self, _ctx: &Ctx, row: &Row) -> Result<(), Error> {
        if row_str(row, "id") == crate::bootstrap::SYSTEM_PROJECT_ID {
            return Err(Error::Forbidden("the system project cannot be deleted".into()));
        }
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        let id = row_str(row, "id");
        self.ks.tokens.revoke_scope(id).await?;
        assignments::remove_all_of(ctx.db(), id).await?;
        store::soft_delete(ctx.db(), &self.spec, row).await
    }

    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], details: bool) -> Result<(), Error> {
        for row in rows.iter_mut() {
            let tags: Vec<Value> = metadata::get(ctx.db(), "project", row_str(row, "id"))
                .await?
                .into_iter()
                .filter_map(|(k, v)| k.strip_prefix(TAG_PREFIX).map(|_| Value::String(v)))
                .collect();
            row.insert("tags".into(), Value::Array(tags));
            *row = openstack_view(std::mem::take(row));
        }
        super::add_domain_names(ctx, rows, details).await
    }

    async fn list_filter(&self, _ctx: &Ctx, q: &ListQuery) -> Result<Option<Condition>, Error> {
        let Some(tags) = q.get("tags") else { return Ok(None) };
        let mut cond = Condition::all();
        for t in tags.split(',').filter(|t| !t.is_empty()) {
            let sub = sea_orm::sea_query::Query::select()
                .column(Alias::new("obj_id"))
                .from(Alias::new("metadata_tbl"))
                .and_where(Expr::col(Alias::new("obj_type")).eq("project"))
                .and_where(Expr::col(Alias::new("meta_key")).eq(format!("{TAG_PREFIX}{t}")))
                .to_owned();
            cond = cond.add(Expr::col((Alias::new("projects_tbl"), Alias::new("id"))).in_subquery(sub));
        }
        Ok(Some(cond))
    }

    async fn context_filter(&self, ctx: &Ctx, ctx_plural: &str, ctx_id: &str) -> Result<Option<Condition>, Error> {
        let ids: Vec<String> = match ctx_plural {
            "users" => assignments::user_project_ids(ctx.db(), ctx_id).await?.into_iter().collect(),
            "groups" => assignments::effective(
                ctx.db(),
                &assignments::Filter { group: Some(ctx_id.into()), ..Default::default() },
            )
            .await?
            .into_iter()
            .filter(|a| a.target == assignments::Target::Project)
            .map(|a| a.target_id)
            .collect(),
            _ => return Ok(None),
        };
        Ok(Some(Condition::all().add(Expr::col((Alias::new("projects_tbl"), Alias::new("id"))).is_in(ids))))
    }

    fn scope_filter(&self, cred: &UserCred, scope: Scope) -> Condition {
        let own = cloudcommon::resource::store::scope_condition(&self.spec, cred, scope);
        if scope >= Scope::Domain {
            return own;
        }
        Condition::any()
            .add(own)
            .add(Expr::col((Alias::new("projects_tbl"), Alias::new("id"))).eq(cred.project_id.clone()))
    }

    fn visible_outside_scope(&self, cred: &UserCred, row: &Row, action: &str) -> bool {
        matches!(action, "get" | "list") && row_str(row, "id") == cred.project_id
    }
}
