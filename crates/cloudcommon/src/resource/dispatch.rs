//! The generic dispatcher: Cloudpods' REST shape for every resource.
//!
//! | route | meaning |
//! |---|---|
//! | `GET /<plural>` | list, `{"<plural>":[..],"total","limit","offset"}` |
//! | `POST /<plural>` | create, `{"<keyword>":{..},"count":N}` |
//! | `GET/HEAD /<plural>/<id>` | get, `{"<keyword>":{..}}` |
//! | `PUT/PATCH /<plural>/<id>` | update |
//! | `DELETE /<plural>/<id>` | delete |
//! | `POST /<plural>/<action>` | class action |
//! | `GET /<plural>/<id>/<spec>` | get-spec, `metadata`, or a context list `/<ctx>/<id>/<plural>` |
//! | `POST /<plural>/<id>/<action>` | perform; `metadata` sets tags |
//!
//! Each handler authorises first (policy -> granted scope), then calls the resource's hooks.

use std::sync::Arc;

use apis::Error;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use sea_orm::sea_query::Condition;
use serde_json::{Map, Value, json};

use super::query::{ListQuery, conditions};
use super::spec::OwnerScope;
use super::{Ctx, Owner, Resource, Row, metadata, row_str, store};
use crate::auth::{Scope, UserCred};
use crate::policy::Request as PolicyRequest;
use crate::service::{RequestId, ServiceState};

pub fn routes() -> Router<Arc<ServiceState>> {
    Router::new()
        .route("/{plural}", get(list).post(create))
        .route("/{plural}/{id}", get(get_one).head(get_one).put(update).patch(update).delete(delete).post(class_action))
        .route("/{plural}/{id}/{spec}", get(get_spec).post(perform))
}

/// Parses a query string into pairs, keeping repeated keys.
pub fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, Error> {
    serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| Error::BadRequest(format!("bad query string: {e}")))
}

/// Parses a JSON body into an object; an empty body is an empty object.
pub fn json_body(body: &Bytes) -> Result<Row, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Row::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::BadRequest("request body must be a JSON object".into())),
        Err(e) => Err(Error::BadRequest(format!("malformed JSON body: {e}"))),
    }
}

/// The object inside `{"<keyword>": {...}}`, or the whole body when not wrapped.
pub fn unwrap_keyword(mut body: Row, keyword: &str) -> Result<Row, Error> {
    match body.remove(keyword) {
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(Error::invalid(keyword, "must be an object")),
        None => Ok(body),
    }
}

fn ctx(state: &Arc<ServiceState>, cred: Arc<UserCred>, headers: &HeaderMap, rid: &RequestId) -> Ctx {
    Ctx::of_request(state, cred, headers, rid)
}

/// The highest scope in which the caller may do `action` on `r`, or Forbidden.
pub fn authorize(r: &dyn Resource, cred: &UserCred, action: &str, extra: Option<&str>) -> Result<Scope, Error> {
    let spec = r.spec();
    let req = PolicyRequest { service: spec.service, resource: spec.plural, action, extra };
    cred.policies.allowed_scope(&req).ok_or_else(|| {
        Error::Forbidden(format!(
            "{} may not {action}{} {}",
            cred.user,
            extra.map(|e| format!(" {e} on")).unwrap_or_default(),
            spec.plural
        ))
    })
}

/// Loads `id` (or name) and checks the caller may do `action` on it.
pub async fn fetch_authorized(
    ctx: &Ctx,
    r: &dyn Resource,
    id: &str,
    action: &str,
    extra: Option<&str>,
) -> Result<Row, Error> {
    let spec = r.spec();
    let granted = authorize(r, &ctx.cred, action, extra);
    let visible = match &granted {
        Ok(s) => r.scope_filter(&ctx.cred, *s),
        Err(_) => Condition::all(),
    };
    let row = store::get_by_id_or_name(ctx.db(), spec, id, visible).await?;
    let ok = match granted {
        Ok(scope) => {
            store::row_in_scope(spec, &ctx.cred, scope, &row)
                || (matches!(action, "get" | "list")
                    && (store::row_shared(spec, &ctx.cred, &row) || spec.owner == OwnerScope::System))
        }
        Err(_) => false,
    };
    if ok || r.visible_outside_scope(&ctx.cred, &row, action) {
        Ok(row)
    } else if authorize(r, &ctx.cred, "get", None)
        .is_ok_and(|s| store::row_in_scope(spec, &ctx.cred, s, &row) || store::row_shared(spec, &ctx.cred, &row))
        || r.visible_outside_scope(&ctx.cred, &row, "get")
    {
        // The caller may see the row (its own, or shared with it), so a 404 would only confuse.
        Err(Error::Forbidden(format!("{} may not {action} {} {}", ctx.cred.user, spec.keyword, row_str(&row, "name"))))
    } else {
        Err(Error::not_found(spec.keyword, id))
    }
}

/// Lists rows of `r` as the caller may see them, with views ready to send.
pub async fn list_rows(
    ctx: &Ctx,
    r: &dyn Resource,
    q: &ListQuery,
    extra_cond: Option<Condition>,
) -> Result<(Vec<Row>, u64), Error> {
    let spec = r.spec();
    let granted = authorize(r, &ctx.cred, "list", None)?;
    let scope = match q.scope {
        Some(asked) if asked > granted => {
            return Err(Error::Forbidden(format!(
                "{} may not list {} in scope {}",
                ctx.cred.user,
                spec.plural,
                asked.as_str()
            )));
        }
        Some(asked) => asked,
        None => r.default_list_scope(granted),
    };
    let mut cond = Condition::all().add(r.scope_filter(&ctx.cred, scope)).add(conditions(spec, q)?);
    if let Some(c) = r.list_filter(ctx, q).await? {
        cond = cond.add(c);
    }
    if let Some(c) = extra_cond {
        cond = cond.add(c);
    }
    let mut order = vec![];
    for c in &q.order_by {
        if spec.column(c).is_none_or(|c| c.hidden) {
            return Err(Error::invalid("order_by", format!("unknown column {c}")));
        }
        order.push((c.clone(), q.desc.unwrap_or(true)));
    }
    if order.is_empty() {
        order.push((spec.default_order.0.to_string(), q.desc.unwrap_or(spec.default_order.1)));
    }
    let (mut rows, total) = store::list(ctx.db(), spec, cond, &order, q.limit, q.offset).await?;
    r.extra_details(ctx, &mut rows, q.details).await?;
    Ok((rows.into_iter().map(|row| store::to_view(spec, row)).collect(), total))
}

async fn list(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    Path(plural): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    let r = state.resource(&plural)?;
    let ctx = ctx(&state, cred, &headers, &rid);
    let q = ListQuery::parse(&query_pairs(raw.as_deref())?)?;
    let (rows, total) = list_rows(&ctx, r.as_ref(), &q, None).await?;
    Ok(list_response(r.spec().plural, rows, total, &q))
}

pub fn list_response(plural: &str, rows: Vec<Row>, total: u64, q: &ListQuery) -> Response {
    let mut m = Map::new();
    m.insert(plural.to_string(), Value::Array(rows.into_iter().map(Value::Object).collect()));
    m.insert("total".into(), total.into());
    m.insert("limit".into(), q.limit.into());
    m.insert("offset".into(), q.offset.into());
    Json(Value::Object(m)).into_response()
}

pub fn object_response(keyword: &str, row: Row) -> Response {
    Json(json!({ keyword: Value::Object(row) })).into_response()
}

/// Reads one row as a view with details.
pub async fn view(ctx: &Ctx, r: &dyn Resource, row: Row) -> Result<Row, Error> {
    let mut rows = [row];
    r.extra_details(ctx, &mut rows, true).await?;
    let [row] = rows;
    Ok(store::to_view(r.spec(), row))
}

async fn get_one(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    method: Method,
    Path((plural, id)): Path<(String, String)>,
) -> Result<Response, Error> {
    let r = state.resource(&plural)?;
    let ctx = ctx(&state, cred, &headers, &rid);
    let row = fetch_authorized(&ctx, r.as_ref(), &id, "get", None).await?;
    if method == Method::HEAD {
        return Ok(axum::http::StatusCode::OK.into_response());
    }
    let row = view(&ctx, r.as_ref(), row).await?;
    Ok(object_response(r.spec().keyword, row))
}

/// The owner a create by `cred` in `scope` gives, from `project_id`/`tenant_id`/`domain_id` input.
fn resolve_owner(cred: &UserCred, scope: Scope, input: &Row, owner_scope: OwnerScope) -> Result<Owner, Error> {
    let asked = |k: &str| input.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let mut owner = Owner { domain_id: cred.project_domain_id.clone(), project_id: cred.project_id.clone() };
    if owner_scope == OwnerScope::System {
        return Ok(owner);
    }
    if let Some(d) = asked("domain_id") {
        if d != owner.domain_id && scope < Scope::System {
            return Err(Error::Forbidden(format!("{} may not create in domain {d}", cred.user)));
        }
        owner.domain_id = d;
    }
    if owner_scope == OwnerScope::Project
        && let Some(p) = asked("project_id").or_else(|| asked("tenant_id"))
    {
        if p != owner.project_id && scope < Scope::Domain {
            return Err(Error::Forbidden(format!("{} may not create in project {p}", cred.user)));
        }
        owner.project_id = p;
    }
    Ok(owner)
}

/// Records a successful write on `row`, unless the resource opts out.
async fn record(ctx: &Ctx, r: &dyn Resource, row: &Row, action: &str, notes: Value) {
    if r.record_writes() {
        ctx.svc.actionlog.record(ctx, r.spec(), row, action, true, notes).await;
    }
}

/// Creates one row: validation, name check, insert, post-create hook, logs.
pub async fn create_one(ctx: &Ctx, r: &dyn Resource, raw: &Row, owner: &Owner) -> Result<Row, Error> {
    let spec = r.spec();
    let mut input = Row::new();
    for (k, v) in raw {
        if spec.column(k).is_some_and(|c| c.create) {
            input.insert(k.clone(), v.clone());
        }
    }
    // The owner columns come from the resolved owner; a hook may still override them.
    match spec.owner {
        OwnerScope::System => {}
        OwnerScope::Domain => {
            input.insert("domain_id".into(), owner.domain_id.clone().into());
        }
        OwnerScope::Project => {
            input.insert("domain_id".into(), owner.domain_id.clone().into());
            input.insert("tenant_id".into(), owner.project_id.clone().into());
        }
    }
    r.validate_create(ctx, &mut input, raw, owner).await?;
    let name = row_str(&input, "name").to_string();
    if name.is_empty() {
        return Err(Error::missing("name"));
    }
    let id = match input.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => crate::db::new_id(),
    };
    let now = crate::db::now();
    input.insert("id".into(), id.clone().into());
    input.insert("created_at".into(), now.clone().into());
    input.insert("updated_at".into(), now.into());
    for c in &spec.cols {
        if let (false, Some(d)) = (input.contains_key(c.name), &c.default) {
            input.insert(c.name.to_string(), d.clone());
        }
    }
    {
        let txn = ctx.db().begin().await?;
        if let Some(q) = store::name_query(spec, &name, owner, None)
            && txn.query_one(&q).await?.is_some()
        {
            return Err(Error::Duplicate(format!("{} {name} already exists", spec.keyword)));
        }
        store::insert(&txn, spec, &input).await?;
        txn.commit().await?;
    }
    let row = store::get_by_id(ctx.db(), spec, &id).await?.ok_or_else(|| Error::not_found(spec.keyword, &id))?;
    r.post_create(ctx, &row, raw).await?;
    record(ctx, r, &row, "create", Value::Null).await;
    Ok(row)
}

async fn create(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    Path(plural): Path<String>,
    body: Bytes,
) -> Result<Response, Error> {
    let r = state.resource(&plural)?;
    let spec = r.spec();
    let ctx = ctx(&state, cred, &headers, &rid);
    let scope = authorize(r.as_ref(), &ctx.cred, "create", None)?;
    // A row is created at the level that owns it: a project-scoped grant creates project rows,
    // never a domain's users or the system's catalog.
    let needed = match spec.owner {
        OwnerScope::System => Scope::System,
        OwnerScope::Domain => Scope::Domain,
        OwnerScope::Project => Scope::Project,
    };
    if scope < needed {
        return Err(Error::Forbidden(format!(
            "{} may not create {}: that needs {} rights",
            ctx.cred.user,
            spec.plural,
            needed.as_str()
        )));
    }
    let mut body = json_body(&body)?;
    // `count` sits beside the object (`{"server": {..}, "count": 3}`), or inside it (climc).
    if !body.contains_key("count")
        && let Some(Value::Object(o)) = body.get_mut(spec.keyword)
        && let Some(c) = o.remove("count")
    {
        body.insert("count".into(), c);
    }
    let count = match body.remove("count") {
        None => 1,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| Error::invalid("count", "must be an integer from 1 to 100"))?,
    };
    let input = unwrap_keyword(body, spec.keyword)?;
    let owner = resolve_owner(&ctx.cred, scope, &input, spec.owner)?;
    if count == 1 {
        let row = create_one(&ctx, r.as_ref(), &input, &owner).await?;
        let row = view(&ctx, r.as_ref(), row).await?;
        return Ok(object_response(spec.keyword, row));
    }
    let base = row_str(&input, "name").to_string();
    if base.is_empty() {
        return Err(Error::missing("name"));
    }
    let mut results = vec![];
    for i in 1..=count {
        let mut one = input.clone();
        one.insert("name".into(), format!("{base}-{i}").into());
        let item = match create_one(&ctx, r.as_ref(), &one, &owner).await {
            Ok(row) => json!({"status": 200, "body": view(&ctx, r.as_ref(), row).await?}),
            Err(e) => json!({"status": e.status_code(), "body": e.body()}),
        };
        results.push(item);
    }
    Ok(Json(json!({ spec.plural: results })).into_response())
}

async fn update(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    Path((plural, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Error> {
    let r = state.resource(&plural)?;
    let spec = r.spec();
    let ctx = ctx(&state, cred, &headers, &rid);
    let row = fetch_authorized(&ctx, r.as_ref(), &id, "update", None).await?;
    let raw = unwrap_keyword(json_body(&body)?, spec.keyword)?;
    let row = update_row(&ctx, r.as_ref(), row, &raw).await?;
    let row = view(&ctx, r.as_ref(), row).await?;
    Ok(object_response(spec.keyword, row))
}

/// Applies an update: only updatable columns, the hook, the name check, the write, the logs.
pub async fn update_row(ctx: &Ctx, r: &dyn Resource, row: Row, raw: &Row) -> Result<Row, Error> {
    let spec = r.spec();
    let mut patch = Row::new();
    for (k, v) in raw {
        match spec.column(k) {
            Some(c) if c.update => {
                patch.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    r.validate_update(ctx, &row, &mut patch, raw).await?;
    let id = row_str(&row, "id").to_string();
    if let Some(name) = patch.get("name").and_then(Value::as_str) {
        if name.is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        let owner =
            Owner { domain_id: row_str(&row, "domain_id").into(), project_id: row_str(&row, "tenant_id").into() };
        if name != row_str(&row, "name") && store::name_taken(ctx.db(), spec, name, &owner, Some(&id)).await? {
            return Err(Error::Duplicate(format!("{} {name} already exists", spec.keyword)));
        }
    }
    if !patch.is_empty() {
        store::update(ctx.db(), spec, &id, &patch).await?;
    }
    let row = store::get_by_id(ctx.db(), spec, &id).await?.ok_or_else(|| Error::not_found(spec.keyword, &id))?;
    r.post_update(ctx, &row, raw).await?;
    let notes = Value::Object(patch.into_iter().filter(|(k, _)| spec.column(k).is_some_and(|c| !c.hidden)).collect());
    record(ctx, r, &row, "update", notes).await;
    Ok(row)
}

async fn delete(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    Path((plural, id)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Error> {
    let r = state.resource(&plural)?;
    let spec = r.spec();
    let ctx = ctx(&state, cred, &headers, &rid);
    let row = fetch_authorized(&ctx, r.as_ref(), &id, "delete", None).await?;
    r.validate_delete(&ctx, &row).await?;
    r.delete_with_query(&ctx, &row, &query).await?;
    record(&ctx, r.as_ref(), &row, "delete", Value::Null).await;
    let row = store::to_view(spec, row);
    Ok(object_response(spec.keyword, row))
}

async fn class_action(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    Path((plural, action)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<Response, Error> {
    let r = state.resource(&plural)?;
    let ctx = ctx(&state, cred, &headers, &rid);
    authorize(r.as_ref(), &ctx.cred, "perform", Some(&action))?;
    let mut body = unwrap_keyword(json_body(&body)?, r.spec().keyword)?;
    // Reserved `__key__` query parameters join the body: a task's notify URL names the stage
    // it waits for (`/tasks/<id>?__stage__=<stage>`), so a late callback of an earlier call
    // cannot complete a later wait.
    for (k, v) in query {
        if k.starts_with("__") && k.ends_with("__") && !body.contains_key(&k) {
            body.insert(k, Value::String(v));
        }
    }
    let out = r.perform_class(&ctx, &action, &body).await?;
    Ok(Json(out).into_response())
}

async fn get_spec(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    Path((plural, id, spec_name)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    let ctx = ctx(&state, cred, &headers, &rid);
    // A context list: /<ctx_plural>/<ctx_id>/<plural>
    if let Some(target) = state.resources.get(spec_name.as_str()).cloned() {
        let ctx_r = state.resource(&plural)?;
        let ctx_row = fetch_authorized(&ctx, ctx_r.as_ref(), &id, "get", None).await?;
        let ctx_id = row_str(&ctx_row, "id").to_string();
        if let Some(cond) = target.context_filter(&ctx, &plural, &ctx_id).await? {
            let q = ListQuery::parse(&query_pairs(raw.as_deref())?)?;
            let (rows, total) = list_rows(&ctx, target.as_ref(), &q, Some(cond)).await?;
            return Ok(list_response(target.spec().plural, rows, total, &q));
        }
    }
    let r = state.resource(&plural)?;
    let row = fetch_authorized(&ctx, r.as_ref(), &id, "get", Some(&spec_name)).await?;
    if spec_name == "metadata" {
        let tags = metadata::get(ctx.db(), r.spec().keyword, row_str(&row, "id")).await?;
        return Ok(Json(json!({"id": row_str(&row, "id"), "metadata": tags})).into_response());
    }
    Ok(Json(r.get_spec(&ctx, &row, &spec_name).await?).into_response())
}

async fn perform(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    Path((plural, id, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, Error> {
    let r = state.resource(&plural)?;
    let spec = r.spec();
    let ctx = ctx(&state, cred, &headers, &rid);
    let row = fetch_authorized(&ctx, r.as_ref(), &id, "perform", Some(&action)).await?;
    let body = json_body(&body)?;
    let obj_id = row_str(&row, "id").to_string();
    let out = match action.as_str() {
        "metadata" | "user-metadata" => {
            let tags = unwrap_keyword(body, "metadata")?;
            metadata::set(ctx.db(), spec.keyword, &obj_id, &tags).await?;
            record(&ctx, r.as_ref(), &row, "set_metadata", Value::Object(tags)).await;
            json!({"id": obj_id, "metadata": metadata::get(ctx.db(), spec.keyword, &obj_id).await?})
        }
        "enable" | "disable" if spec.has_enabled => {
            let mut patch = Row::new();
            patch.insert("enabled".into(), (action == "enable").into());
            let row = update_row(&ctx, r.as_ref(), row, &patch).await?;
            json!({ spec.keyword: view(&ctx, r.as_ref(), row).await? })
        }
        _ => {
            let body = unwrap_keyword(body, spec.keyword)?;
            let out = r.perform(&ctx, &row, &action, &body).await?;
            record(&ctx, r.as_ref(), &row, &action, Value::Null).await;
            out
        }
    };
    Ok(Json(out).into_response())
}
