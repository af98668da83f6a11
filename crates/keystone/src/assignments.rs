//! Role assignments: who holds which role on which project, domain or the system, and the
//! OpenStack grant routes and `role_assignments` listing.
//!
//! An assignment is `(type, actor, target, role)`; a user's effective roles on a target are
//! its own plus those of the groups it belongs to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use apis::Error;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Extension, Router};
use cloudcommon::auth::UserCred;
use cloudcommon::db::{Db, now};
use cloudcommon::resource::dispatch::{authorize, fetch_authorized, query_pairs};
use cloudcommon::resource::{Ctx, Row, row_str};
use cloudcommon::service::{RequestId, ServiceState};
use serde_json::{Value, json};

pub const SYSTEM_TARGET: &str = "system";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Actor {
    User,
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Project,
    Domain,
    System,
}

pub fn type_name(actor: Actor, target: Target) -> &'static str {
    match (actor, target) {
        (Actor::User, Target::Project) => "UserProject",
        (Actor::Group, Target::Project) => "GroupProject",
        (Actor::User, Target::Domain) => "UserDomain",
        (Actor::Group, Target::Domain) => "GroupDomain",
        (Actor::User, Target::System) => "UserSystem",
        (Actor::Group, Target::System) => "GroupSystem",
    }
}

fn parse_type(t: &str) -> Option<(Actor, Target)> {
    Some(match t {
        "UserProject" => (Actor::User, Target::Project),
        "GroupProject" => (Actor::Group, Target::Project),
        "UserDomain" => (Actor::User, Target::Domain),
        "GroupDomain" => (Actor::Group, Target::Domain),
        "UserSystem" => (Actor::User, Target::System),
        "GroupSystem" => (Actor::Group, Target::System),
        _ => return None,
    })
}

/// One stored assignment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Assignment {
    pub actor: Actor,
    pub target: Target,
    pub actor_id: String,
    pub target_id: String,
    pub role_id: String,
    /// For effective listings: the group the user holds the role through.
    pub via_group: Option<String>,
}

pub async fn grant(
    db: &Db,
    actor: Actor,
    target: Target,
    actor_id: &str,
    target_id: &str,
    role_id: &str,
) -> Result<(), Error> {
    if exists(db, actor, target, actor_id, target_id, role_id).await? {
        return Ok(());
    }
    db.raw_exec(
        "INSERT INTO assignments_tbl (type, actor_id, target_id, role_id, created_at) VALUES (?, ?, ?, ?, ?)",
        vec![type_name(actor, target).into(), actor_id.into(), target_id.into(), role_id.into(), now().into()],
    )
    .await
    .map(|_| ())
}

pub async fn revoke(
    db: &Db,
    actor: Actor,
    target: Target,
    actor_id: &str,
    target_id: &str,
    role_id: &str,
) -> Result<bool, Error> {
    let n = db
        .raw_exec(
            "DELETE FROM assignments_tbl WHERE type = ? AND actor_id = ? AND target_id = ? AND role_id = ?",
            vec![type_name(actor, target).into(), actor_id.into(), target_id.into(), role_id.into()],
        )
        .await?;
    Ok(n > 0)
}

pub async fn exists(
    db: &Db,
    actor: Actor,
    target: Target,
    actor_id: &str,
    target_id: &str,
    role_id: &str,
) -> Result<bool, Error> {
    let rows = db
        .raw_query(
            "SELECT 1 FROM assignments_tbl WHERE type = ? AND actor_id = ? AND target_id = ? AND role_id = ?",
            vec![type_name(actor, target).into(), actor_id.into(), target_id.into(), role_id.into()],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// Removes every assignment naming `id` as actor, target or role.
pub async fn remove_all_of(db: &Db, id: &str) -> Result<(), Error> {
    db.raw_exec(
        "DELETE FROM assignments_tbl WHERE actor_id = ? OR target_id = ? OR role_id = ?",
        vec![id.into(), id.into(), id.into()],
    )
    .await?;
    Ok(())
}

pub async fn user_groups(db: &Db, user_id: &str) -> Result<Vec<String>, Error> {
    let rows = db.raw_query("SELECT group_id FROM usergroup_tbl WHERE user_id = ?", vec![user_id.into()]).await?;
    Ok(rows.iter().filter_map(|r| r.try_get_by_index::<String>(0).ok()).collect())
}

pub async fn group_users(db: &Db, group_id: &str) -> Result<Vec<String>, Error> {
    let rows = db.raw_query("SELECT user_id FROM usergroup_tbl WHERE group_id = ?", vec![group_id.into()]).await?;
    Ok(rows.iter().filter_map(|r| r.try_get_by_index::<String>(0).ok()).collect())
}

pub async fn add_user_to_group(db: &Db, user_id: &str, group_id: &str) -> Result<(), Error> {
    if user_groups(db, user_id).await?.iter().any(|g| g == group_id) {
        return Ok(());
    }
    db.raw_exec(
        "INSERT INTO usergroup_tbl (user_id, group_id, created_at) VALUES (?, ?, ?)",
        vec![user_id.into(), group_id.into(), now().into()],
    )
    .await
    .map(|_| ())
}

pub async fn remove_user_from_group(db: &Db, user_id: &str, group_id: &str) -> Result<bool, Error> {
    let n = db
        .raw_exec("DELETE FROM usergroup_tbl WHERE user_id = ? AND group_id = ?", vec![user_id.into(), group_id.into()])
        .await?;
    Ok(n > 0)
}

pub async fn remove_memberships(db: &Db, id: &str) -> Result<(), Error> {
    db.raw_exec("DELETE FROM usergroup_tbl WHERE user_id = ? OR group_id = ?", vec![id.into(), id.into()]).await?;
    Ok(())
}

/// Every stored assignment (the table is small: one row per grant).
async fn all(db: &Db) -> Result<Vec<Assignment>, Error> {
    let rows = db.raw_query("SELECT type, actor_id, target_id, role_id FROM assignments_tbl", vec![]).await?;
    let mut out = vec![];
    for r in rows {
        let t: String = r.try_get_by_index(0).map_err(cloudcommon::db::db_err)?;
        let Some((actor, target)) = parse_type(&t) else { continue };
        out.push(Assignment {
            actor,
            target,
            actor_id: r.try_get_by_index(1).map_err(cloudcommon::db::db_err)?,
            target_id: r.try_get_by_index(2).map_err(cloudcommon::db::db_err)?,
            role_id: r.try_get_by_index(3).map_err(cloudcommon::db::db_err)?,
            via_group: None,
        });
    }
    Ok(out)
}

/// The role ids `user_id` holds on `target_id` (directly or through groups).
pub async fn effective_roles(db: &Db, user_id: &str, target: Target, target_id: &str) -> Result<Vec<String>, Error> {
    let groups = user_groups(db, user_id).await?;
    let mut actors: Vec<Value> = vec![user_id.into()];
    actors.extend(groups.iter().map(|g| Value::from(g.as_str())));
    let (ut, gt) = (type_name(Actor::User, target), type_name(Actor::Group, target));
    let mut sql = String::from(
        "SELECT DISTINCT role_id FROM assignments_tbl WHERE target_id = ? AND ((type = ? AND actor_id = ?)",
    );
    let mut values: Vec<sea_orm::Value> = vec![target_id.into(), ut.into(), user_id.into()];
    if !groups.is_empty() {
        sql.push_str(&format!(" OR (type = ? AND actor_id IN ({}))", vec!["?"; groups.len()].join(",")));
        values.push(gt.into());
        values.extend(groups.iter().map(|g| sea_orm::Value::from(g.as_str())));
    }
    sql.push(')');
    let rows = db.raw_query(&sql, values).await?;
    Ok(rows.iter().filter_map(|r| r.try_get_by_index::<String>(0).ok()).collect())
}

/// The ids of projects `user_id` has any role on.
pub async fn user_project_ids(db: &Db, user_id: &str) -> Result<BTreeSet<String>, Error> {
    let list =
        effective(db, &Filter { user: Some(user_id.to_string()), effective: true, ..Default::default() }).await?;
    Ok(list.into_iter().filter(|a| a.target == Target::Project).map(|a| a.target_id).collect())
}

/// Filters of `GET /v3/role_assignments`.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub user: Option<String>,
    pub group: Option<String>,
    pub project: Option<String>,
    pub domain: Option<String>,
    pub system: bool,
    pub role: Option<String>,
    pub effective: bool,
}

/// Assignments matching `f`; with `effective`, group assignments are expanded to users.
pub async fn effective(db: &Db, f: &Filter) -> Result<Vec<Assignment>, Error> {
    let mut list = all(db).await?;
    if f.effective {
        let mut expanded = vec![];
        for a in &list {
            if a.actor == Actor::Group {
                for u in group_users(db, &a.actor_id).await? {
                    expanded.push(Assignment {
                        actor: Actor::User,
                        actor_id: u,
                        via_group: Some(a.actor_id.clone()),
                        ..a.clone()
                    });
                }
            }
        }
        if f.effective {
            list.retain(|a| a.actor == Actor::User);
        }
        list.extend(expanded);
    }
    list.retain(|a| {
        f.user.as_ref().is_none_or(|u| a.actor == Actor::User && &a.actor_id == u)
            && f.group.as_ref().is_none_or(|g| a.actor == Actor::Group && &a.actor_id == g)
            && f.project.as_ref().is_none_or(|p| a.target == Target::Project && &a.target_id == p)
            && f.domain.as_ref().is_none_or(|d| a.target == Target::Domain && &a.target_id == d)
            && (!f.system || a.target == Target::System)
            && f.role.as_ref().is_none_or(|r| &a.role_id == r)
    });
    list.sort();
    list.dedup();
    Ok(list)
}

pub fn routes() -> Router<Arc<ServiceState>> {
    let grant_route = get(grant_handler).head(grant_handler).put(grant_handler).delete(grant_handler);
    Router::new()
        .route("/role_assignments", get(list_assignments))
        .route("/{target_kind}/{target}/{actor_kind}/{actor}/roles/{role}", grant_route.clone())
        .route(
            "/system/{actor_kind}/{actor}/roles/{role}",
            get(system_grant).head(system_grant).put(system_grant).delete(system_grant),
        )
        .route("/{target_kind}/{target}/{actor_kind}/{actor}/roles", get(list_grants))
        .route("/groups/{group}/users/{user}", put(membership).head(membership).get(membership).delete(membership))
}

fn ctx(state: &Arc<ServiceState>, cred: Arc<UserCred>, rid: &RequestId) -> Ctx {
    Ctx { svc: state.clone(), cred, request_id: rid.0.clone(), client_ip: String::new() }
}

async fn lookup(ctx: &Ctx, plural: &str, id: &str, action: &str) -> Result<Row, Error> {
    let r = ctx.svc.resource(plural)?;
    fetch_authorized(ctx, r.as_ref(), id, action, None).await
}

fn kinds(target_kind: &str, actor_kind: &str) -> Result<(Target, Actor), Error> {
    let target = match target_kind {
        "projects" => Target::Project,
        "domains" => Target::Domain,
        _ => return Err(Error::NotFound(format!("no such resource {target_kind}"))),
    };
    let actor = match actor_kind {
        "users" => Actor::User,
        "groups" => Actor::Group,
        _ => return Err(Error::NotFound(format!("no such resource {actor_kind}"))),
    };
    Ok((target, actor))
}

fn actor_plural(a: Actor) -> &'static str {
    match a {
        Actor::User => "users",
        Actor::Group => "groups",
    }
}

/// `PUT|GET|HEAD|DELETE /v3/{projects|domains}/{id}/{users|groups}/{id}/roles/{role}`.
async fn grant_handler(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    method: Method,
    Path((target_kind, target, actor_kind, actor, role)): Path<(String, String, String, String, String)>,
) -> Result<Response, Error> {
    let (tk, ak) = kinds(&target_kind, &actor_kind)?;
    let ctx = ctx(&state, cred, &rid);
    let write = matches!(method, Method::PUT | Method::DELETE);
    let target_row = lookup(&ctx, &target_kind, &target, if write { "update" } else { "get" }).await?;
    let target_id = row_str(&target_row, "id").to_string();
    apply_grant(&ctx, &method, tk, ak, &actor, &target_id, &role, &target_row).await
}

async fn system_grant(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    method: Method,
    Path((actor_kind, actor, role)): Path<(String, String, String)>,
) -> Result<Response, Error> {
    let (_, ak) = kinds("projects", &actor_kind)?;
    let ctx = ctx(&state, cred, &rid);
    // Changing system grants needs system-wide rights over roles.
    let roles = state.resource("roles")?;
    let scope = authorize(
        roles.as_ref(),
        &ctx.cred,
        if matches!(method, Method::PUT | Method::DELETE) { "update" } else { "get" },
        None,
    )?;
    if scope != cloudcommon::auth::Scope::System {
        return Err(Error::Forbidden("system grants need system scope".into()));
    }
    let mut target_row = Row::new();
    target_row.insert("id".into(), SYSTEM_TARGET.into());
    target_row.insert("name".into(), SYSTEM_TARGET.into());
    apply_grant(&ctx, &method, Target::System, ak, &actor, SYSTEM_TARGET, &role, &target_row).await
}

#[allow(clippy::too_many_arguments)]
async fn apply_grant(
    ctx: &Ctx,
    method: &Method,
    tk: Target,
    ak: Actor,
    actor: &str,
    target_id: &str,
    role: &str,
    target_row: &Row,
) -> Result<Response, Error> {
    let actor_row = lookup(ctx, actor_plural(ak), actor, "get").await?;
    let role_row = lookup(ctx, "roles", role, "get").await?;
    let (actor_id, role_id) = (row_str(&actor_row, "id"), row_str(&role_row, "id"));
    let db = ctx.db();
    let ks_tokens = crate::tokens::store_of(ctx);
    match *method {
        Method::PUT => {
            grant(db, ak, tk, actor_id, target_id, role_id).await?;
            let note = json!({"actor": row_str(&actor_row, "name"), "role": row_str(&role_row, "name"), "target": row_str(target_row, "name")});
            log_grant(ctx, &actor_row, "grant", note).await;
            ks_tokens.forget_cached();
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Method::DELETE => {
            if !revoke(db, ak, tk, actor_id, target_id, role_id).await? {
                return Err(Error::NotFound(format!(
                    "{} has no role {} there",
                    row_str(&actor_row, "name"),
                    row_str(&role_row, "name")
                )));
            }
            match ak {
                Actor::User => ks_tokens.revoke_user(actor_id).await?,
                Actor::Group => {
                    for u in group_users(db, actor_id).await? {
                        ks_tokens.revoke_user(&u).await?;
                    }
                }
            }
            let note = json!({"actor": row_str(&actor_row, "name"), "role": row_str(&role_row, "name"), "target": row_str(target_row, "name")});
            log_grant(ctx, &actor_row, "revoke", note).await;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => {
            if exists(db, ak, tk, actor_id, target_id, role_id).await? {
                Ok(StatusCode::NO_CONTENT.into_response())
            } else {
                Err(Error::NotFound(format!(
                    "{} has no role {} there",
                    row_str(&actor_row, "name"),
                    row_str(&role_row, "name")
                )))
            }
        }
    }
}

async fn log_grant(ctx: &Ctx, actor_row: &Row, action: &str, notes: Value) {
    let spec = crate::models::users::spec();
    ctx.svc.actionlog.record(ctx, &spec, actor_row, action, true, notes).await;
}

/// `GET /v3/{projects|domains}/{id}/{users|groups}/{id}/roles`.
async fn list_grants(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    Path((target_kind, target, actor_kind, actor)): Path<(String, String, String, String)>,
) -> Result<Response, Error> {
    let (tk, ak) = kinds(&target_kind, &actor_kind)?;
    let ctx = ctx(&state, cred, &rid);
    let target_row = lookup(&ctx, &target_kind, &target, "get").await?;
    let actor_row = lookup(&ctx, actor_plural(ak), &actor, "get").await?;
    let rows = ctx
        .db()
        .raw_query(
            "SELECT role_id FROM assignments_tbl WHERE type = ? AND actor_id = ? AND target_id = ?",
            vec![type_name(ak, tk).into(), row_str(&actor_row, "id").into(), row_str(&target_row, "id").into()],
        )
        .await?;
    let names = role_names(ctx.db()).await?;
    let roles: Vec<Value> = rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<String>(0).ok())
        .map(|id| json!({"id": id, "name": names.get(&id).cloned().unwrap_or_default()}))
        .collect();
    Ok(Json(json!({"roles": roles})).into_response())
}

/// `PUT|HEAD|GET|DELETE /v3/groups/{group}/users/{user}`.
async fn membership(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    method: Method,
    Path((group, user)): Path<(String, String)>,
) -> Result<Response, Error> {
    let ctx = ctx(&state, cred, &rid);
    let write = matches!(method, Method::PUT | Method::DELETE);
    let group_row = lookup(&ctx, "groups", &group, if write { "update" } else { "get" }).await?;
    let user_row = lookup(&ctx, "users", &user, "get").await?;
    let (gid, uid) = (row_str(&group_row, "id"), row_str(&user_row, "id"));
    match method {
        Method::PUT => {
            add_user_to_group(ctx.db(), uid, gid).await?;
            crate::tokens::store_of(&ctx).forget_cached();
            let spec = crate::models::groups::spec();
            ctx.svc
                .actionlog
                .record(&ctx, &spec, &group_row, "add_user", true, json!({"user": row_str(&user_row, "name")}))
                .await;
        }
        Method::DELETE => {
            if !remove_user_from_group(ctx.db(), uid, gid).await? {
                return Err(Error::NotFound(format!("user {user} is not in group {group}")));
            }
            crate::tokens::store_of(&ctx).revoke_user(uid).await?;
            let spec = crate::models::groups::spec();
            ctx.svc
                .actionlog
                .record(&ctx, &spec, &group_row, "remove_user", true, json!({"user": row_str(&user_row, "name")}))
                .await;
        }
        _ => {
            if !user_groups(ctx.db(), uid).await?.iter().any(|g| g == gid) {
                return Err(Error::NotFound(format!("user {user} is not in group {group}")));
            }
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn names_of(db: &Db, table: &str) -> Result<BTreeMap<String, (String, String)>, Error> {
    let domain_col = if table == "domains_tbl" { "id" } else { "domain_id" };
    let sql = format!("SELECT id, name, {domain_col} FROM {table} WHERE deleted = ?");
    let rows = db.raw_query(&sql, vec![false.into()]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let id: String = r.try_get_by_index(0).ok()?;
            let name: String = r.try_get_by_index(1).ok()?;
            let dom: Option<String> = r.try_get_by_index(2).ok()?;
            let dom = if table == "domains_tbl" { String::new() } else { dom.unwrap_or_default() };
            Some((id, (name, dom)))
        })
        .collect())
}

async fn role_names(db: &Db) -> Result<BTreeMap<String, String>, Error> {
    Ok(names_of(db, "roles_tbl").await?.into_iter().map(|(k, (n, _))| (k, n)).collect())
}

/// `GET /v3/role_assignments` with OpenStack's filters (`user.id`, `group.id`,
/// `scope.project.id`, `scope.domain.id`, `scope.system`, `role.id`, `effective`,
/// `include_names`; names are always given). Callers without system rights see only what touches their own domain,
/// or, project-scoped, their own assignments.
async fn list_assignments(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    let ctx = ctx(&state, cred, &rid);
    let pairs = query_pairs(raw.as_deref())?;
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let flag = |k: &str| pairs.iter().any(|(key, v)| key == k && !matches!(v.as_str(), "false" | "False" | "0"));
    let mut f = Filter {
        user: get("user.id").or_else(|| get("user")),
        group: get("group.id").or_else(|| get("group")),
        project: get("scope.project.id").or_else(|| get("project")),
        domain: get("scope.domain.id").or_else(|| get("domain")),
        system: get("scope.system").is_some(),
        role: get("role.id").or_else(|| get("role")),
        effective: flag("effective"),
    };
    // Names are accepted where ids are expected, as climc users write them.
    if let Some(u) = f.user.take() {
        f.user = Some(row_str(&lookup(&ctx, "users", &u, "get").await?, "id").to_string());
    }
    if let Some(g) = f.group.take() {
        f.group = Some(row_str(&lookup(&ctx, "groups", &g, "get").await?, "id").to_string());
    }
    if let Some(p) = f.project.take() {
        f.project = Some(row_str(&lookup(&ctx, "projects", &p, "get").await?, "id").to_string());
    }
    if let Some(d) = f.domain.take() {
        f.domain = Some(row_str(&lookup(&ctx, "domains", &d, "get").await?, "id").to_string());
    }
    if let Some(r) = f.role.take() {
        f.role = Some(row_str(&lookup(&ctx, "roles", &r, "get").await?, "id").to_string());
    }
    let roles_r = state.resource("roles")?;
    let scope = authorize(roles_r.as_ref(), &ctx.cred, "list", None).ok();
    let mut list = effective(ctx.db(), &f).await?;
    let projects = names_of(ctx.db(), "projects_tbl").await?;
    let users = names_of(ctx.db(), "users_tbl").await?;
    let groups = names_of(ctx.db(), "groups_tbl").await?;
    let domains = names_of(ctx.db(), "domains_tbl").await?;
    let roles = names_of(ctx.db(), "roles_tbl").await?;
    let me = ctx.cred.user_id.clone();
    let my_domain = ctx.cred.project_domain_id.clone();
    list.retain(|a| match scope {
        Some(cloudcommon::auth::Scope::System) => true,
        Some(cloudcommon::auth::Scope::Domain) => match a.target {
            Target::Project => projects.get(&a.target_id).is_some_and(|(_, d)| *d == my_domain),
            Target::Domain => a.target_id == my_domain,
            Target::System => false,
        },
        _ => a.actor == Actor::User && a.actor_id == me,
    });
    // Names are always included: OpenStack clients read ids, people read names.
    let names = true;
    let named = |map: &BTreeMap<String, (String, String)>, id: &str| -> Value {
        let mut v = json!({"id": id});
        if names && let Some((n, d)) = map.get(id) {
            v["name"] = n.clone().into();
            if !d.is_empty() {
                let dn = domains.get(d).map(|x| x.0.clone()).unwrap_or_default();
                v["domain"] = json!({"id": d, "name": dn});
            }
        }
        v
    };
    let out: Vec<Value> = list
        .iter()
        .map(|a| {
            let mut v = json!({"role": named(&roles, &a.role_id)});
            match a.actor {
                Actor::User => v["user"] = named(&users, &a.actor_id),
                Actor::Group => v["group"] = named(&groups, &a.actor_id),
            }
            v["scope"] = match a.target {
                Target::Project => json!({"project": named(&projects, &a.target_id)}),
                Target::Domain => json!({"domain": named(&domains, &a.target_id)}),
                Target::System => json!({"system": {"all": true}}),
            };
            if let Some(g) = &a.via_group {
                v["links"] = json!({"membership": format!("/v3/groups/{g}/users/{}", a.actor_id)});
            }
            v
        })
        .collect();
    let total = out.len();
    Ok(Json(json!({"role_assignments": out, "total": total, "links": {"self": null, "next": null, "previous": null}}))
        .into_response())
}
