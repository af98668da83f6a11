//! Policies (`service -> resource -> action -> allow|deny` trees with a scope) and the
//! role-policy bindings that decide which policies a token holds.
//!
//! A binding `(role, policy, project?)` applies to a token that holds `role`, when the
//! binding names no project or names the token's project. System-scoped tokens count as
//! scoped to the `system` project.

use std::sync::Arc;

use apis::Error;
use async_trait::async_trait;
use cloudcommon::db::{Db, new_id, now};
use cloudcommon::policy::Policy;
use cloudcommon::resource::{Col, Ctx, NameScope, Owner, OwnerScope, Resource, ResourceSpec, Row, row_str, store};
use serde_json::Value;

use super::SERVICE;
use crate::Keystone;

pub fn spec() -> ResourceSpec {
    ResourceSpec::new(SERVICE, "policy", "policies", "policies_tbl")
        .owner(OwnerScope::Domain)
        .enabled()
        .sharable()
        .col(Col::str("type", 128).rw())
        .col(Col::json("blob").rw())
        .col(Col::str("scope", 16).rw().not_null("project".into()))
        .col(Col::bool("is_system").create().not_null(false.into()))
}

pub fn rolepolicy_spec() -> ResourceSpec {
    ResourceSpec::new(SERVICE, "rolepolicy", "rolepolicies", "rolepolicies_tbl")
        .name_scope(NameScope::None)
        .col(Col::str("role_id", 128).create().index())
        .col(Col::str("policy_id", 128).create().index())
        .col(Col::str("project_id", 128).create())
        .col(Col::str("ips", 512).rw())
        .col(Col::str("valid_since", 32).rw())
        .col(Col::str("valid_until", 32).rw())
}

fn check_blob(v: &Value) -> Result<(), Error> {
    fn walk(v: &Value, depth: usize) -> Result<(), Error> {
        match v {
            Value::String(s) if matches!(s.as_str(), "allow" | "deny") => Ok(()),
            Value::Object(m) if depth < 6 => m.values().try_for_each(|c| walk(c, depth + 1)),
            _ => Err(Error::invalid("blob", "must be a tree of service -> resource -> action -> allow|deny")),
        }
    }
    let root = v.get("policy").unwrap_or(v);
    match root {
        Value::Object(_) => walk(root, 0),
        _ => Err(Error::invalid("blob", "must be a JSON object")),
    }
}

pub struct Policies {
    spec: ResourceSpec,
    ks: Arc<Keystone>,
}

impl Policies {
    pub fn new(ks: Arc<Keystone>) -> Self {
        Policies { spec: spec(), ks }
    }
}

#[async_trait]
impl Resource for Policies {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, _ctx: &Ctx, input: &mut Row, _raw: &Row, _owner: &Owner) -> Result<(), Error> {
        // OpenStack names a policy by `type`; Cloudpods by `name`. Accept either.
        let name = row_str(input, "name").to_string();
        let ty = row_str(input, "type").to_string();
        match (name.is_empty(), ty.is_empty()) {
            (true, false) => {
                input.insert("name".into(), ty.into());
            }
            (false, true) => {
                input.insert("type".into(), name.into());
            }
            _ => {}
        }
        if let Some(Value::String(s)) = input.get("blob") {
            let parsed: Value = serde_json::from_str(s).map_err(|_| Error::invalid("blob", "must be JSON"))?;
            input.insert("blob".into(), parsed);
        }
        check_blob(input.get("blob").ok_or_else(|| Error::missing("blob"))?)?;
        match row_str(input, "scope") {
            "" | "system" | "domain" | "project" => Ok(()),
            other => Err(Error::invalid("scope", format!("{other:?} is not system, domain or project"))),
        }
    }

    async fn validate_update(&self, _ctx: &Ctx, _row: &Row, patch: &mut Row, _raw: &Row) -> Result<(), Error> {
        if let Some(Value::String(s)) = patch.get("blob") {
            let parsed: Value = serde_json::from_str(s).map_err(|_| Error::invalid("blob", "must be JSON"))?;
            patch.insert("blob".into(), parsed);
        }
        if let Some(b) = patch.get("blob") {
            check_blob(b)?;
        }
        Ok(())
    }

    async fn post_update(&self, _ctx: &Ctx, _row: &Row, _raw: &Row) -> Result<(), Error> {
        self.ks.forget_cached();
        Ok(())
    }

    async fn validate_delete(&self, _ctx: &Ctx, row: &Row) -> Result<(), Error> {
        if row.get("is_system") == Some(&Value::Bool(true)) {
            return Err(Error::Forbidden(format!(
                "policy {} is predefined and cannot be deleted",
                row_str(row, "name")
            )));
        }
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        unbind_all(ctx.db(), row_str(row, "id")).await?;
        self.ks.forget_cached();
        store::soft_delete(ctx.db(), &self.spec, row).await
    }

    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], details: bool) -> Result<(), Error> {
        super::add_domain_names(ctx, rows, details).await
    }
}

pub struct RolePolicies {
    spec: ResourceSpec,
    ks: Arc<Keystone>,
}

impl RolePolicies {
    pub fn new(ks: Arc<Keystone>) -> Self {
        RolePolicies { spec: rolepolicy_spec(), ks }
    }
}

#[async_trait]
impl Resource for RolePolicies {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, _raw: &Row, _owner: &Owner) -> Result<(), Error> {
        for (field, plural) in [("role_id", "roles"), ("policy_id", "policies")] {
            let key = row_str(input, field).to_string();
            if key.is_empty() {
                return Err(Error::missing(field));
            }
            let r = ctx.svc.resource(plural)?;
            let row = cloudcommon::resource::dispatch::fetch_authorized(ctx, r.as_ref(), &key, "get", None).await?;
            input.insert(field.into(), row_str(&row, "id").into());
        }
        let name = format!("{}:{}", row_str(input, "role_id"), row_str(input, "policy_id"));
        input.insert("name".into(), name.into());
        Ok(())
    }

    async fn post_create(&self, _ctx: &Ctx, _row: &Row, _raw: &Row) -> Result<(), Error> {
        self.ks.forget_cached();
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        self.ks.forget_cached();
        store::soft_delete(ctx.db(), &self.spec, row).await
    }
}

pub async fn bind(db: &Db, role_id: &str, policy_id: &str, project_id: Option<&str>) -> Result<(), Error> {
    if bound(db, role_id, policy_id, project_id).await? {
        return Ok(());
    }
    let t = now();
    db.raw_exec(
        "INSERT INTO rolepolicies_tbl (id, name, role_id, policy_id, project_id, created_at, updated_at, update_version, deleted) \
         VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
        vec![
            new_id().into(),
            format!("{role_id}:{policy_id}").into(),
            role_id.into(),
            policy_id.into(),
            project_id.map(str::to_string).into(),
            t.clone().into(),
            t.into(),
            false.into(),
        ],
    )
    .await
    .map(|_| ())
}

async fn bound(db: &Db, role_id: &str, policy_id: &str, project_id: Option<&str>) -> Result<bool, Error> {
    let rows = db
        .raw_query(
            "SELECT project_id FROM rolepolicies_tbl WHERE role_id = ? AND policy_id = ? AND deleted = ?",
            vec![role_id.into(), policy_id.into(), false.into()],
        )
        .await?;
    Ok(rows.iter().any(|r| r.try_get_by_index::<Option<String>>(0).ok().flatten().as_deref() == project_id))
}

pub async fn unbind(db: &Db, role_id: &str, policy_id: &str, project_id: Option<&str>) -> Result<(), Error> {
    let (sql, mut values): (&str, Vec<sea_orm::Value>) = match project_id {
        Some(p) => (
            "UPDATE rolepolicies_tbl SET deleted = ?, deleted_at = ? WHERE role_id = ? AND policy_id = ? AND deleted = ? AND project_id = ?",
            vec![p.into()],
        ),
        None => (
            "UPDATE rolepolicies_tbl SET deleted = ?, deleted_at = ? WHERE role_id = ? AND policy_id = ? AND deleted = ? AND project_id IS NULL",
            vec![],
        ),
    };
    let mut all: Vec<sea_orm::Value> = vec![true.into(), now().into(), role_id.into(), policy_id.into(), false.into()];
    all.append(&mut values);
    if db.raw_exec(sql, all).await? == 0 {
        return Err(Error::NotFound("no such role-policy binding".into()));
    }
    Ok(())
}

/// Removes every binding naming `id` as role or policy.
pub async fn unbind_all(db: &Db, id: &str) -> Result<(), Error> {
    db.raw_exec(
        "UPDATE rolepolicies_tbl SET deleted = ?, deleted_at = ? WHERE role_id = ? OR policy_id = ?",
        vec![true.into(), now().into(), id.into(), id.into()],
    )
    .await
    .map(|_| ())
}

/// The enabled policies bound to any of `role_ids` that apply in `project_id`, with their scope.
pub async fn effective(db: &Db, role_ids: &[String], project_id: Option<&str>) -> Result<Vec<(String, Policy)>, Error> {
    if role_ids.is_empty() {
        return Ok(vec![]);
    }
    let marks = vec!["?"; role_ids.len()].join(",");
    let sql = format!(
        "SELECT DISTINCT p.name, p.scope, p.blob, b.project_id, b.valid_since, b.valid_until FROM rolepolicies_tbl b \
         JOIN policies_tbl p ON p.id = b.policy_id \
         WHERE b.deleted = ? AND p.deleted = ? AND p.enabled = ? AND b.role_id IN ({marks}) ORDER BY p.name"
    );
    let mut values: Vec<sea_orm::Value> = vec![false.into(), false.into(), true.into()];
    values.extend(role_ids.iter().map(|r| sea_orm::Value::from(r.as_str())));
    let now = now();
    let mut out: Vec<(String, Policy)> = vec![];
    for r in db.raw_query(&sql, values).await? {
        let opt = |i: usize| r.try_get_by_index::<Option<String>>(i).ok().flatten();
        let bind_project = opt(3);
        if bind_project.as_deref().is_some_and(|p| Some(p) != project_id) {
            continue;
        }
        if opt(4).is_some_and(|s| !s.is_empty() && s > now) || opt(5).is_some_and(|u| !u.is_empty() && u < now) {
            continue;
        }
        let name = opt(0).unwrap_or_default();
        if out.iter().any(|(_, p)| p.name == name) {
            continue;
        }
        let blob = opt(2).and_then(|b| serde_json::from_str(&b).ok()).unwrap_or(Value::Null);
        out.push((opt(1).unwrap_or_else(|| "project".into()), Policy { name, blob }));
    }
    Ok(out)
}
