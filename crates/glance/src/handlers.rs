//! glance's HTTP layer: `/v1/images` and `/v1/images/<id>`, where bytes stream in and out.
//! Everything else (`/images/<id>/<action>`, `/tasks`, `/events`) is the generic dispatcher.
//!
//! | request | meaning |
//! |---|---|
//! | `POST /images`, JSON `{"image": {...}}` | create a `queued` image |
//! | `POST /images`, `application/octet-stream` + `X-Image-Meta-*` | create and upload in one go |
//! | `POST /images`, `x-glance-api-copy-from: <url>` | create; glance downloads the URL |
//! | `PUT /images/<id>`, `application/octet-stream` | upload the data of a `queued` image |
//! | `PUT /images/<id>`, JSON | update fields and `properties` |
//! | `GET /images/<id>` | the image as JSON |
//! | `GET /images/<id>?format=qcow2` (or `?download=true`, or `Accept: application/octet-stream`) | the bytes, with `X-Image-Meta-*` headers; `Range: bytes=a-b` gives a 206 |
//! | `HEAD /images/<id>[?format=]` | the `X-Image-Meta-*` headers only |
//! | `DELETE /images/<id>[?override_pending_delete=true]` | recycle bin, or at once (admins) |
//!
//! Handlers parse, authorise and call one function of [`crate::images`] or [`crate::upload`].

use std::sync::Arc;

use apis::Error;
use apis::image::*;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use cloudcommon::auth::{Scope, UserCred};
use cloudcommon::resource::dispatch::{
    authorize, create_one, fetch_authorized, json_body, list_response, list_rows, object_response, query_pairs,
    unwrap_keyword, update_row, view,
};
use cloudcommon::resource::{Ctx, ListQuery, Owner, Resource, Row, row_str, store};
use cloudcommon::service::{RequestId, ServiceState};
use cloudcommon::tasks::{TaskManager, TaskObject};
use futures::StreamExt;
use serde_json::Value;

use crate::images::{self as app, Images};
use crate::models::{images, subformats};
use crate::tasks::copy_from::{CopyFromParams, ImageCopyFromUrlTask};
use crate::{Glance, glance, upload};

/// The largest JSON body accepted.
const JSON_LIMIT: usize = 1 << 20;

pub fn routes() -> Router<Arc<ServiceState>> {
    Router::new()
        .route("/images", get(list).post(create))
        .route("/images/{id}", get(get_one).head(head).put(update).patch(update).delete(delete).post(class_action))
}

fn ctx(state: &Arc<ServiceState>, cred: Arc<UserCred>, headers: &HeaderMap, rid: &RequestId) -> Ctx {
    Ctx::of_request(state, cred, headers, rid)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty())
}

/// `X-Image-Meta-*` of a request as create/update input.
fn header_meta(h: &HeaderMap) -> Row {
    meta_from_headers(h.iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))))
}

fn is_octet_stream(h: &HeaderMap) -> bool {
    header(h, "content-type").is_some_and(|c| c.starts_with("application/octet-stream"))
}

fn content_length(h: &HeaderMap) -> Result<Option<u64>, Error> {
    match header(h, "content-length") {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| Error::BadRequest("bad Content-Length".into())),
    }
}

/// Whether the request carries data: a non-zero length or a chunked body.
fn has_data(h: &HeaderMap) -> Result<bool, Error> {
    Ok(match content_length(h)? {
        Some(n) => n > 0,
        None => header(h, "transfer-encoding").is_some_and(|t| t.contains("chunked")),
    })
}

async fn json_input(body: Body, keyword: &str) -> Result<Row, Error> {
    let bytes = axum::body::to_bytes(body, JSON_LIMIT)
        .await
        .map_err(|e| Error::BadRequest(format!("cannot read the request body (JSON up to 1 MiB): {e}")))?;
    unwrap_keyword(json_body(&bytes)?, keyword)
}

/// Fills `input` with header metadata it does not have yet.
fn merge(input: &mut Row, meta: Row) {
    for (k, v) in meta {
        input.entry(k).or_insert(v);
    }
}

/// The owner of a new image: the caller's project, or the one asked for if allowed.
fn owner_of(cred: &UserCred, scope: Scope, input: &Row) -> Result<Owner, Error> {
    let mut owner = Owner { domain_id: cred.project_domain_id.clone(), project_id: cred.project_id.clone() };
    let asked = |k: &str| input.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(p) = asked("project_id").or_else(|| asked("tenant_id")) {
        if p != owner.project_id && scope < Scope::Domain {
            return Err(Error::Forbidden(format!("{} may not create images in project {p}", cred.user)));
        }
        owner.project_id = p;
    }
    if let Some(d) = asked("domain_id") {
        if d != owner.domain_id && scope < Scope::System {
            return Err(Error::Forbidden(format!("{} may not create images in domain {d}", cred.user)));
        }
        owner.domain_id = d;
    }
    Ok(owner)
}

type Common = (State<Arc<ServiceState>>, Extension<Arc<UserCred>>, Extension<RequestId>);

async fn list(
    (State(state), Extension(cred), Extension(rid)): Common,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    let ctx = ctx(&state, cred, &headers, &rid);
    let q = ListQuery::parse(&query_pairs(raw.as_deref())?)?;
    let (rows, total) = list_rows(&ctx, &Images::new(), &q, None).await?;
    Ok(list_response("images", rows, total, &q))
}

async fn create(
    (State(state), Extension(cred), Extension(rid)): Common,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let ctx = ctx(&state, cred, &headers, &rid);
    let (g, r) = (glance(&state)?, Images::new());
    let scope = authorize(&r, &ctx.cred, "create", None)?;
    let copy_from = header(&headers, COPY_FROM_HEADER).map(str::to_string);
    let raw = is_octet_stream(&headers) || copy_from.is_some();
    let mut input = if raw {
        header_meta(&headers)
    } else {
        let mut input = json_input(body, "image").await?;
        if input.remove("count").is_some_and(|c| c.as_u64().is_some_and(|n| n > 1)) {
            return Err(Error::invalid("count", "images are created one at a time"));
        }
        merge(&mut input, header_meta(&headers));
        let row = created(&ctx, &r, &g, scope, &input).await?;
        return respond(&ctx, &r, row).await;
    };
    if let Some(url) = &copy_from {
        upload::check_url(url)?;
    }
    if input.get("size").is_none()
        && let Some(n) = content_length(&headers)?.filter(|n| *n > 0)
    {
        input.insert("size".into(), (n as i64).into());
    }
    let row = created(&ctx, &r, &g, scope, &input).await?;
    let row = if let Some(url) = copy_from {
        start_copy(&ctx, &row, &url).await?
    } else if has_data(&headers)? {
        match receive(&ctx, &g, row.clone(), &headers, body).await {
            Ok(row) => row,
            Err(e @ Error::InsufficientResource(_)) if row_str(&row, "status") == STATUS_QUEUED => {
                // Refused before a byte was read: leave nothing half-made.
                store::soft_delete(ctx.db(), &images::spec(), &row).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        }
    } else {
        row
    };
    respond(&ctx, &r, row).await
}

/// Creates the row, counting it against the project's quota under the create lock.
async fn created(ctx: &Ctx, r: &Images, g: &Glance, scope: Scope, input: &Row) -> Result<Row, Error> {
    let owner = owner_of(&ctx.cred, scope, input)?;
    let _guard = g.quota.create_lock.lock().await;
    create_one(ctx, r, input, &owner).await
}

/// The image as `{"image": {...}}`.
async fn respond(ctx: &Ctx, r: &Images, row: Row) -> Result<Response, Error> {
    Ok(object_response("image", view(ctx, r, row).await?))
}

/// Reserves quota, marks the image saving and stores the body in a task of its own, so a
/// client that goes away cannot interrupt the clean-up.
async fn receive(ctx: &Ctx, g: &Arc<Glance>, row: Row, headers: &HeaderMap, body: Body) -> Result<Row, Error> {
    let total = content_length(headers)?;
    let (id, project) = (row_str(&row, "id").to_string(), row_str(&row, "tenant_id").to_string());
    let reservation = match g.quota.reserve(ctx.db(), &g.cfg, &project, &id, total).await {
        Ok(r) => r,
        Err(e) => {
            drain(body).await;
            return Err(e);
        }
    };
    upload::mark_saving(ctx, &row).await?;
    let stream = body.into_data_stream().map(|r| r.map_err(std::io::Error::other)).boxed();
    let job = tokio::spawn(upload::save(ctx.clone(), g.clone(), row, stream, total, reservation));
    job.await.map_err(|e| Error::Internal(format!("the upload task failed: {e}")))?
}

/// Reads and discards a refused upload's body (up to 64 MiB, for 10 s), so that the client,
/// still sending, reads the error instead of a broken connection.
async fn drain(body: Body) {
    const LIMIT: usize = 64 << 20;
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > LIMIT {
                break;
            }
        }
    })
    .await;
}

async fn start_copy(ctx: &Ctx, row: &Row, url: &str) -> Result<Row, Error> {
    upload::mark_saving(ctx, row).await?;
    let id = row_str(row, "id").to_string();
    let params = CopyFromParams { image_id: id.clone(), url: url.to_string() };
    TaskManager::of(&ctx.svc)?
        .start::<ImageCopyFromUrlTask>(ctx, TaskObject::of(&images::spec(), row), &params)
        .await?;
    images::get(ctx.db(), &id).await
}

async fn update(
    (State(state), Extension(cred), Extension(rid)): Common,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, Error> {
    let ctx = ctx(&state, cred, &headers, &rid);
    let (g, r) = (glance(&state)?, Images::new());
    let row = fetch_authorized(&ctx, &r, &id, "update", None).await?;
    let copy_from = header(&headers, COPY_FROM_HEADER).map(str::to_string);
    let data = is_octet_stream(&headers) && has_data(&headers)?;
    if !data && copy_from.is_none() {
        let mut input = json_input(body, "image").await?;
        merge(&mut input, header_meta(&headers));
        let row = update_row(&ctx, &r, row, &input).await?;
        return respond(&ctx, &r, row).await;
    }
    let meta = header_meta(&headers);
    let mut row = if meta.is_empty() { row } else { update_row(&ctx, &r, row, &meta).await? };
    if let Some(f) = meta.get("disk_format").and_then(Value::as_str)
        && row_str(&row, "status") == STATUS_QUEUED
    {
        let f = f.to_ascii_lowercase();
        if !DISK_FORMATS.contains(&f.as_str()) {
            return Err(Error::invalid("disk_format", format!("{f:?} is not one of {}", DISK_FORMATS.join(", "))));
        }
        store::update(ctx.db(), r.spec(), row_str(&row, "id"), &images::patch([("disk_format", f.into())])).await?;
        row = images::get(ctx.db(), row_str(&row, "id")).await?;
    }
    let row = match copy_from {
        Some(url) => {
            upload::check_url(&url)?;
            start_copy(&ctx, &row, &url).await?
        }
        None => receive(&ctx, &g, row, &headers, body).await?,
    };
    respond(&ctx, &r, row).await
}

/// The query of a download: the format asked for, and whether bytes (not JSON) are wanted.
fn download_query(raw: Option<&str>, headers: &HeaderMap) -> Result<(Option<String>, bool), Error> {
    let pairs = query_pairs(raw)?;
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let format = get("format").or_else(|| get("disk_format"));
    let download = get("download").is_some_and(|v| cloudcommon::resource::query::parse_bool(&v) == Some(true))
        || header(headers, "accept").is_some_and(|a| a.starts_with("application/octet-stream"));
    Ok((format.clone(), format.is_some() || download))
}

/// What a download serves: the store key and the headers describing it.
async fn served(ctx: &Ctx, r: &Images, g: &Glance, row: Row, format: Option<&str>) -> Result<(String, Row), Error> {
    let id = row_str(&row, "id").to_string();
    let name = row_str(&row, "name").to_string();
    let own_format = row_str(&row, "disk_format").to_string();
    let mut meta = view(ctx, r, row).await?;
    meta.remove("subformats");
    let key = match format {
        None => id.clone(),
        Some(f) => {
            let s = subformats::get(ctx.db(), &id, f)
                .await?
                .ok_or_else(|| Error::NotFound(format!("image {name} has no format {f}")))?;
            meta.insert("disk_format".into(), f.into());
            meta.insert("status".into(), s.status.clone().into());
            meta.insert("size".into(), s.size.into());
            meta.insert("checksum".into(), s.checksum.clone().into());
            meta.insert("fast_hash".into(), s.fast_hash.clone().into());
            if f == own_format { id.clone() } else { format!("{id}.{f}") }
        }
    };
    let _ = g;
    Ok((key, meta))
}

fn meta_headers(meta: &Row) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in meta_to_headers(meta) {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
            h.insert(name, value);
        }
    }
    h
}

async fn head(
    (State(state), Extension(cred), Extension(rid)): Common,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    let ctx = ctx(&state, cred, &headers, &rid);
    let (g, r) = (glance(&state)?, Images::new());
    let row = fetch_authorized(&ctx, &r, &id, "get", None).await?;
    let (format, _) = download_query(raw.as_deref(), &headers)?;
    let (_, meta) = served(&ctx, &r, &g, row, format.as_deref()).await?;
    Ok((StatusCode::OK, meta_headers(&meta)).into_response())
}

/// `Range: bytes=a-b` (or `a-`, or `-n`) of an object of `size` bytes.
fn parse_range(h: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, Error> {
    let Some(spec) = header(h, "range").and_then(|r| r.strip_prefix("bytes=")) else { return Ok(None) };
    let bad = || Error::BadRequest(format!("unsatisfiable range {spec:?} for {size} bytes"));
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| bad())?;
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (a, "") => (a.parse().map_err(|_| bad())?, size.saturating_sub(1)),
        (a, b) => (a.parse().map_err(|_| bad())?, b.parse::<u64>().map_err(|_| bad())?.min(size.saturating_sub(1))),
    };
    if start > end || start >= size {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

async fn get_one(
    (State(state), Extension(cred), Extension(rid)): Common,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    let ctx = ctx(&state, cred, &headers, &rid);
    let (g, r) = (glance(&state)?, Images::new());
    let row = fetch_authorized(&ctx, &r, &id, "get", None).await?;
    let (format, download) = download_query(raw.as_deref(), &headers)?;
    if !download {
        return respond(&ctx, &r, row).await;
    }
    let name = row_str(&row, "name").to_string();
    let (key, meta) = served(&ctx, &r, &g, row, format.as_deref()).await?;
    let status = row_str(&meta, "status");
    if status != STATUS_ACTIVE {
        return Err(Error::InvalidStatus(format!("image {name} cannot be downloaded while {status}")));
    }
    let size = g
        .store
        .size(&key)
        .await
        .map_err(|e| Error::Unavailable(format!("image store: {e}")))?
        .ok_or_else(|| Error::Internal(format!("the data of image {name} is missing from the store")))?;
    let mut h = meta_headers(&meta);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let (status, offset, len) = match parse_range(&headers, size)? {
        Some((a, b)) => {
            let v = format!("bytes {a}-{b}/{size}");
            h.insert(header::CONTENT_RANGE, HeaderValue::from_str(&v).map_err(|e| Error::Internal(e.to_string()))?);
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        None => (StatusCode::OK, 0, size),
    };
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let stream =
        g.store.get(&key, offset, Some(len)).await.map_err(|e| Error::Unavailable(format!("image store: {e}")))?;
    Ok((status, h, Body::from_stream(stream)).into_response())
}

async fn delete(
    (State(state), Extension(cred), Extension(rid)): Common,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    let ctx = ctx(&state, cred, &headers, &rid);
    let r = Images::new();
    let row = fetch_authorized(&ctx, &r, &id, "delete", None).await?;
    let pairs = query_pairs(raw.as_deref())?;
    let override_pending = pairs
        .iter()
        .any(|(k, v)| k == "override_pending_delete" && cloudcommon::resource::query::parse_bool(v) == Some(true));
    r.validate_delete(&ctx, &row).await?;
    app::delete(&ctx, &r, &row, override_pending).await?;
    state.actionlog.record(&ctx, r.spec(), &row, "delete", true, Value::Null).await;
    let now = store::get_by_id(ctx.db(), r.spec(), row_str(&row, "id")).await?.unwrap_or(row);
    respond(&ctx, &r, now).await
}

async fn class_action(
    (State(state), Extension(cred), Extension(rid)): Common,
    headers: HeaderMap,
    Path(action): Path<String>,
    body: Body,
) -> Result<Response, Error> {
    let ctx = ctx(&state, cred, &headers, &rid);
    let r = Images::new();
    authorize(&r, &ctx.cred, "perform", Some(&action))?;
    let body = json_input(body, "images").await?;
    let out = r.perform_class(&ctx, &action, &body).await?;
    Ok(Json(out).into_response())
}
