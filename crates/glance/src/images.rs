//! The rules of images: the `Resource` hooks (create, update, delete checks, views,
//! actions) and the image operations that are not uploads (delete, cancel-delete, probe,
//! public/private).
//!
//! Deleting, by status:
//! ```text
//!  active --DELETE--> pending_delete --cancel-delete--> active
//!     |                    |
//!     |                    +--after pending_delete_expire_seconds, or DELETE
//!     |                    |  ?override_pending_delete=true (admins)--> deleting -> (gone)
//!     +--DELETE ?override_pending_delete=true (admins) ----------------------^
//!  queued, killed, save_fail, delete_fail --DELETE--> deleting -> (gone)   (nothing to keep)
//!  saving, probing, converting, deleting: refused until the work ends
//! ```
//! A `protected` image (the default, as in Cloudpods) refuses every delete.

use apis::Error;
use apis::image::*;
use async_trait::async_trait;
use cloudcommon::auth::Scope;
use cloudcommon::db::{fmt_time, now, parse_time};
use cloudcommon::resource::dispatch::{authorize, view};
use cloudcommon::resource::{Ctx, ListQuery, Owner, Resource, ResourceSpec, Row, row_bool, row_str};
use cloudcommon::tasks::{TaskManager, TaskObject};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use serde_json::{Value, json};

use crate::glance;
use crate::models::images::{self, patch};
use crate::models::{properties, subformats};
use crate::tasks::delete::{DeleteParams, ImageDeleteTask};
use crate::tasks::pipeline::{ImagePipelineTask, PipelineParams};

pub struct Images {
    spec: ResourceSpec,
}

impl Images {
    pub fn new() -> Images {
        Images { spec: images::spec() }
    }
}

impl Default for Images {
    fn default() -> Self {
        Images::new()
    }
}

/// Statuses in which work is under way on an image's files.
const BUSY: &[&str] = &[STATUS_SAVING, STATUS_SAVED, STATUS_PROBING, STATUS_CONVERTING, STATUS_DELETING];

/// Checks a sharing scope against what the caller may do; returns the scope to store.
fn check_share(r: &Images, ctx: &Ctx, scope: &str) -> Result<&'static str, Error> {
    let (stored, needed) = match scope {
        "" | "system" => ("system", Scope::System),
        "domain" => ("domain", Scope::Domain),
        other => return Err(Error::invalid("public_scope", format!("{other:?} is not system or domain"))),
    };
    let granted = authorize(r, &ctx.cred, "perform", Some("public"))?;
    if granted < needed {
        return Err(Error::Forbidden(format!(
            "{} may not share images with the whole {stored}: that needs {stored} rights",
            ctx.cred.user
        )));
    }
    Ok(stored)
}

fn check_format(f: &str) -> Result<String, Error> {
    let f = f.to_ascii_lowercase();
    if DISK_FORMATS.contains(&f.as_str()) {
        Ok(f)
    } else {
        Err(Error::invalid("disk_format", format!("{f:?} is not one of {}", DISK_FORMATS.join(", "))))
    }
}

fn check_non_negative(input: &Row, field: &str) -> Result<(), Error> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => {
            let n = v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
            match n {
                Some(n) if n >= 0 => Ok(()),
                _ => Err(Error::invalid(field, "must be a non-negative integer")),
            }
        }
    }
}

#[async_trait]
impl Resource for Images {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, raw: &Row, owner: &Owner) -> Result<(), Error> {
        let g = glance(&ctx.svc)?;
        if let Some(f) = input.get("disk_format").and_then(Value::as_str).filter(|f| !f.is_empty()) {
            let f = check_format(f)?;
            input.insert("disk_format".into(), f.into());
        }
        for f in ["min_disk", "min_ram", "size"] {
            check_non_negative(input, f)?;
        }
        let public = match input.get("is_public") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => cloudcommon::resource::query::parse_bool(s)
                .ok_or_else(|| Error::invalid("is_public", "must be true or false"))?,
            _ => false,
        };
        let scope = if public { check_share(self, ctx, row_str(input, "public_scope"))? } else { "none" };
        input.insert("is_public".into(), public.into());
        input.insert("public_scope".into(), scope.into());
        if let Some(p) = raw.get("properties") {
            let props = properties::validate(p)?;
            if let (false, Some(arch)) = (input.contains_key("os_arch"), props.get("os_arch").and_then(Value::as_str)) {
                input.insert("os_arch".into(), arch.into());
            }
        }
        input.insert("status".into(), STATUS_QUEUED.into());
        input.insert("progress".into(), 0.into());
        g.quota.check_count(ctx.db(), &g.cfg, &owner.project_id).await
    }

    async fn post_create(&self, ctx: &Ctx, row: &Row, raw: &Row) -> Result<(), Error> {
        let id = row_str(row, "id");
        if let Some(p) = raw.get("properties") {
            properties::set(ctx.db(), id, &properties::validate(p)?).await?;
        }
        if let Some(Value::Object(tags)) = raw.get("metadata") {
            cloudcommon::resource::metadata::set(ctx.db(), "image", id, tags).await?;
        }
        Ok(())
    }

    async fn validate_update(&self, _ctx: &Ctx, _row: &Row, patch: &mut Row, raw: &Row) -> Result<(), Error> {
        for f in ["min_disk", "min_ram"] {
            check_non_negative(patch, f)?;
        }
        if let Some(p) = raw.get("properties") {
            let props = properties::validate(p)?;
            if let (false, Some(arch)) = (patch.contains_key("os_arch"), props.get("os_arch").and_then(Value::as_str)) {
                patch.insert("os_arch".into(), arch.into());
            }
        }
        Ok(())
    }

    async fn post_update(&self, ctx: &Ctx, row: &Row, raw: &Row) -> Result<(), Error> {
        if let Some(p) = raw.get("properties") {
            properties::set(ctx.db(), row_str(row, "id"), &properties::validate(p)?).await?;
        }
        Ok(())
    }

    async fn validate_delete(&self, _ctx: &Ctx, row: &Row) -> Result<(), Error> {
        let name = row_str(row, "name");
        if row_bool(row, "protected") {
            return Err(Error::Forbidden(format!(
                "image {name} is protected; unprotect it first (protected=false, climc image-update {name} --unprotected)"
            )));
        }
        let status = row_str(row, "status");
        if BUSY.contains(&status) {
            return Err(Error::InvalidStatus(format!("image {name} is {status}; delete it when that is over")));
        }
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        delete(ctx, self, row, false).await
    }

    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], details: bool) -> Result<(), Error> {
        let ids: Vec<String> = rows.iter().map(|r| row_str(r, "id").to_string()).collect();
        let mut props = properties::of_images(ctx.db(), &ids).await?;
        let mut subs = if details { subformats::of_images(ctx.db(), &ids).await? } else { vec![] };
        let expire = glance(&ctx.svc)?.cfg.pending_delete_expire_seconds;
        for row in rows.iter_mut() {
            let id = row_str(row, "id").to_string();
            row.insert("properties".into(), Value::Object(props.remove(&id).unwrap_or_default()));
            row.insert("disable_delete".into(), row_bool(row, "protected").into());
            if details {
                let mine: Vec<Value> = subs.iter().filter(|(i, _)| *i == id).map(|(_, s)| s.to_json()).collect();
                subs.retain(|(i, _)| *i != id);
                row.insert("subformats".into(), Value::Array(mine));
            }
            if row_bool(row, "pending_deleted")
                && let Some(t) = parse_time(row_str(row, "pending_deleted_at"))
            {
                let at = t + chrono::Duration::seconds(i64::try_from(expire).unwrap_or(i64::MAX / 2));
                row.insert("auto_delete_at".into(), fmt_time(at).into());
            }
        }
        Ok(())
    }

    /// `pending_delete`: absent or `false` hides the recycle bin, `true` shows only it, `all` both.
    async fn list_filter(&self, _ctx: &Ctx, q: &ListQuery) -> Result<Option<Condition>, Error> {
        let col = Expr::col((Alias::new(images::TABLE), Alias::new("pending_deleted")));
        Ok(match q.pending_delete.as_deref() {
            None | Some("false") | Some("0") => Some(Condition::all().add(col.eq(false))),
            Some("true") | Some("1") | Some("") => Some(Condition::all().add(col.eq(true))),
            Some("all") => None,
            Some(other) => {
                return Err(Error::invalid("pending_delete", format!("{other:?} is not true, false or all")));
            }
        })
    }

    async fn perform(&self, ctx: &Ctx, row: &Row, action: &str, body: &Row) -> Result<Value, Error> {
        let id = row_str(row, "id").to_string();
        let name = row_str(row, "name");
        match action {
            "cancel-delete" => {
                if !row_bool(row, "pending_deleted") {
                    return Err(Error::InvalidStatus(format!("image {name} is not pending delete")));
                }
                let p = patch([
                    ("pending_deleted", false.into()),
                    ("pending_deleted_at", Value::Null),
                    ("status", STATUS_ACTIVE.into()),
                ]);
                if !images::update_if_status(ctx.db(), &id, &[STATUS_PENDING_DELETE], &p).await? {
                    return Err(Error::InvalidStatus(format!("image {name} is already being deleted")));
                }
            }
            "probe" => probe(ctx, row).await?,
            "public" => {
                let scope = check_share(self, ctx, body.get("scope").and_then(Value::as_str).unwrap_or(""))?;
                let p = patch([("is_public", true.into()), ("public_scope", scope.into())]);
                cloudcommon::resource::store::update(ctx.db(), &self.spec, &id, &p).await?;
            }
            "private" => {
                let p = patch([("is_public", false.into()), ("public_scope", "none".into())]);
                cloudcommon::resource::store::update(ctx.db(), &self.spec, &id, &p).await?;
            }
            other => return Err(Error::NotFound(format!("image has no action {other}"))),
        }
        let row = images::get(ctx.db(), &id).await?;
        Ok(json!({"image": view(ctx, self, row).await?}))
    }
}

/// Deletes an image: into the recycle bin, or (nothing worth keeping, recycle bin off, or
/// `override_pending` by an admin) at once through an [`ImageDeleteTask`].
pub async fn delete(ctx: &Ctx, r: &Images, row: &Row, override_pending: bool) -> Result<(), Error> {
    let g = glance(&ctx.svc)?;
    let (id, name, status) = (row_str(row, "id"), row_str(row, "name"), row_str(row, "status"));
    if override_pending {
        let scope = authorize(r, &ctx.cred, "delete", None)?;
        if scope < Scope::Domain {
            return Err(Error::Forbidden(format!(
                "{} may not skip the recycle bin: override_pending_delete is for administrators",
                ctx.cred.user
            )));
        }
    }
    let recycle = g.cfg.enable_pending_delete && !override_pending;
    if status == STATUS_PENDING_DELETE && !override_pending {
        return Err(Error::InvalidStatus(format!(
            "image {name} is already pending delete; cancel-delete it, or delete with override_pending_delete=true"
        )));
    }
    if recycle && status == STATUS_ACTIVE {
        let p = patch([
            ("pending_deleted", true.into()),
            ("pending_deleted_at", now().into()),
            ("status", STATUS_PENDING_DELETE.into()),
        ]);
        if !images::update_if_status(ctx.db(), id, &[STATUS_ACTIVE], &p).await? {
            return Err(Error::InvalidStatus(format!("image {name} changed status; try again")));
        }
        return Ok(());
    }
    start_delete(ctx, row).await
}

/// Moves an image to `deleting` and starts its [`ImageDeleteTask`].
pub async fn start_delete(ctx: &Ctx, row: &Row) -> Result<(), Error> {
    let (id, name) = (row_str(row, "id"), row_str(row, "name"));
    let from =
        [STATUS_ACTIVE, STATUS_PENDING_DELETE, STATUS_QUEUED, STATUS_KILLED, STATUS_SAVE_FAIL, STATUS_DELETE_FAIL];
    if !images::update_if_status(ctx.db(), id, &from, &patch([("status", STATUS_DELETING.into())])).await? {
        return Err(Error::InvalidStatus(format!("image {name} cannot be deleted now; try again")));
    }
    let tm = TaskManager::of(&ctx.svc)?;
    tm.start::<ImageDeleteTask>(ctx, TaskObject::of(&images::spec(), row), &DeleteParams { image_id: id.into() })
        .await?;
    Ok(())
}

/// `image-probe`: runs the pipeline again (probe, checksums, conversions) on the stored bytes.
pub async fn probe(ctx: &Ctx, row: &Row) -> Result<(), Error> {
    let g = glance(&ctx.svc)?;
    let (id, name, status) = (row_str(row, "id"), row_str(row, "name"), row_str(row, "status"));
    if g.store.size(id).await.map_err(|e| Error::Internal(format!("image store: {e}")))?.is_none() {
        return Err(Error::InvalidStatus(format!("image {name} has no data to probe (status {status})")));
    }
    let p = patch([("status", STATUS_SAVED.into()), ("reason", "".into())]);
    if !images::update_if_status(ctx.db(), id, &[STATUS_ACTIVE, STATUS_SAVE_FAIL], &p).await? {
        return Err(Error::InvalidStatus(format!(
            "image {name} is {status}; only active or save_fail images are probed"
        )));
    }
    start_pipeline(ctx, row).await
}

/// Starts the pipeline of a `saved` image.
pub async fn start_pipeline(ctx: &Ctx, row: &Row) -> Result<(), Error> {
    let tm = TaskManager::of(&ctx.svc)?;
    let params = PipelineParams { image_id: row_str(row, "id").into() };
    tm.start::<ImagePipelineTask>(ctx, TaskObject::of(&images::spec(), row), &params).await?;
    Ok(())
}

/// Sets an image's status with a reason and records it as an event (failures as failed).
pub async fn set_status(ctx: &Ctx, id: &str, status: &str, reason: &str) -> Result<(), Error> {
    let spec = images::spec();
    let p = patch([("status", status.into()), ("reason", reason.into())]);
    cloudcommon::resource::store::update(ctx.db(), &spec, id, &p).await?;
    let failed = matches!(status, STATUS_KILLED | STATUS_SAVE_FAIL | STATUS_DELETE_FAIL);
    if let Ok(row) = images::get(ctx.db(), id).await {
        let action = if failed { status } else { "set_status" };
        ctx.svc.actionlog.record(ctx, &spec, &row, action, !failed, json!({"status": status, "reason": reason})).await;
    }
    Ok(())
}
