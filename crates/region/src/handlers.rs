//! The region's own routes, beside the generic dispatcher:
//!
//! | request | meaning |
//! |---|---|
//! | `POST /hosts/<id>/ping` | a host agent's heartbeat (no event per ping) |
//! | `GET /quotas/<project>` | a project's quotas and usage |
//! | `POST /quotas/<project>` | set a project's quotas (system rights) |
//! | `PUT /storagecaches/<id>/cachedimages/<image_id>` | a host reports an image cached (`status`, `path`) |

use std::sync::Arc;

use apis::Error;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use cloudcommon::auth::UserCred;
use cloudcommon::resource::Ctx;
use cloudcommon::resource::dispatch::{fetch_authorized, json_body, unwrap_keyword};
use cloudcommon::service::{RequestId, ServiceState};
use serde_json::Value;

pub fn routes() -> Router<Arc<ServiceState>> {
    Router::new()
        .route("/hosts/{id}/ping", post(ping))
        .route("/quotas/{project}", get(get_quota).post(set_quota))
        .route("/storagecaches/{sc}/cachedimages/{image}", put(put_cached))
}

async fn put_cached(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    Path((sc, image)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let body = unwrap_keyword(json_body(&body)?, "cachedimage")?;
    Ok(Json(crate::disks::put_storagecachedimage(&ctx(&state, cred, &rid), &sc, &image, &body).await?))
}

fn ctx(state: &Arc<ServiceState>, cred: Arc<UserCred>, rid: &RequestId) -> Ctx {
    Ctx { svc: state.clone(), cred, request_id: rid.0.clone(), client_ip: String::new() }
}

async fn ping(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let ctx = ctx(&state, cred, &rid);
    let hosts = state.resource("hosts")?;
    let row = fetch_authorized(&ctx, hosts.as_ref(), &id, "perform", Some("ping")).await?;
    let body = unwrap_keyword(json_body(&body)?, "host")?;
    Ok(Json(crate::hosts::ping(&ctx, &row, &body).await?))
}

async fn get_quota(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    Path(project): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(crate::quotas::get(&ctx(&state, cred, &rid), &project).await?))
}

async fn set_quota(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Extension(rid): Extension<RequestId>,
    Path(project): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let body = unwrap_keyword(json_body(&body)?, "quota")?;
    Ok(Json(crate::quotas::set(&ctx(&state, cred, &rid), &project, &body).await?))
}
