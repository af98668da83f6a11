//! The host agent contract over HTTP ([`apis::compute`]), behind the framework's auth layer.
//!
//! Every call is checked synchronously (token, task headers, body), answered
//! `{"result":"ok"}`, then done in the background; its result (or
//! `{"status":"error","reason":..}`) is posted once to `X-Task-Notify-Url`.
//! Server calls go to the guest's owner task ([`crate::guest`]); disk and image calls to
//! [`crate::storage`].

use std::sync::Arc;

use apis::Error;
use apis::compute::{
    AgentAck, DiskCreateCallback, DiskCreateRequest, DiskDeleteCallback, GuestJsonDesc, ImageCacheCallback,
    ImageCacheRequest, ServerDeployRequest, ServerRestartRequest, ServerStartRequest, ServerStopRequest,
    ServerSyncRequest,
};
use apis::task::{TASK_ID_HEADER, TASK_NOTIFY_URL_HEADER};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cloudcommon::auth::UserCred;
use cloudcommon::service::ServiceState;
use serde_json::Value;

use crate::agent::Agent;
use crate::guest::Op;

type St = State<Arc<ServiceState>>;

pub fn routes() -> Router<Arc<ServiceState>> {
    Router::new()
        .route("/servers/{id}/{action}", post(server_call).get(server_get))
        .route("/disks/image_cache", post(image_cache))
        .route("/disks/{storage}/{action}/{disk}", post(disk_call))
        .route("/host/status", get(host_status))
        .route_layer(axum::middleware::from_fn(require_system_admin))
}

/// Only the control plane drives an agent: an admin of project `system` (the region's and
/// other services' accounts, sysadmin). Any other valid token gets 403.
pub fn is_system_admin(cred: &UserCred) -> bool {
    cred.project == apis::identity::SYSTEM_PROJECT && cred.has_role(apis::identity::ADMIN_ROLE)
}

async fn require_system_admin(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match req.extensions().get::<Arc<UserCred>>() {
        Some(c) if is_system_admin(c) => next.run(req).await,
        Some(c) => Error::Forbidden(format!("user {} may not drive a host agent", c.user)).into_response(),
        None => Error::Unauthorized("missing X-Auth-Token".into()).into_response(),
    }
}

fn agent(state: &ServiceState) -> Result<Arc<Agent>, Error> {
    state.ext::<Agent>()
}

/// The task headers of a call; a call without them cannot be answered.
fn task_headers(h: &HeaderMap) -> Result<(String, String), Error> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).filter(|s| !s.is_empty()).map(str::to_string);
    match (get(TASK_ID_HEADER), get(TASK_NOTIFY_URL_HEADER)) {
        (Some(id), Some(url)) if url.starts_with("http://") || url.starts_with("https://") => Ok((id, url)),
        _ => Err(Error::BadRequest(format!("missing {TASK_ID_HEADER} or {TASK_NOTIFY_URL_HEADER}"))),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, Error> {
    serde_json::from_value(body.clone()).map_err(|e| Error::BadRequest(format!("bad body: {e}")))
}

/// Acks now; runs `work` in the background and posts its result to the notify URL.
fn accept<F>(agent: Arc<Agent>, (task_id, notify): (String, String), work: F) -> Response
where
    F: std::future::Future<Output = Result<Value, String>> + Send + 'static,
{
    tokio::spawn(async move {
        let r = work.await;
        agent.notify(&task_id, &notify, r).await;
    });
    Json(AgentAck::ok()).into_response()
}

fn check_id(id: &str) -> Result<(), Error> {
    crate::storage::check_id("server", id).map_err(|e| Error::BadRequest(e.to_string()))
}

async fn server_get(
    State(state): St,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    check_id(&id)?;
    if action == "vnc" {
        // Not a task: answered at once (for the webconsole).
        let a = agent(&state)?;
        if !a.has_guest(&id) {
            return Err(Error::NotFound(format!("server {id} not found on host")));
        }
        return a.call(&id, Op::Vnc, None).await.map(|v| Json(v).into_response()).map_err(Error::InvalidStatus);
    }
    if action != "status" {
        return Err(Error::NotFound(format!("no GET /servers/<id>/{action}")));
    }
    let th = task_headers(&headers)?;
    let a = agent(&state)?;
    let a2 = a.clone();
    Ok(accept(a, th, async move {
        if a2.has_guest(&id) {
            a2.call(&id, Op::Status, None).await
        } else {
            let (status, generation) = a2.status_of(&id);
            serde_json::to_value(apis::compute::ServerStatusReport { status, generation }).map_err(|e| e.to_string())
        }
    }))
}

async fn server_call(
    State(state): St,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Result<Response, Error> {
    let body = body.map(|b| b.0).unwrap_or(Value::Null);
    check_id(&id)?;
    let th = task_headers(&headers)?;
    let a = agent(&state)?;
    let known = a.has_guest(&id);
    let (op, create): (Op, Option<GuestJsonDesc>) = match action.as_str() {
        "create" | "deploy" => {
            let req: ServerDeployRequest = parse(&body)?;
            let d = req.desc.clone();
            (Op::Deploy(Box::new(req)), Some(d))
        }
        "start" => (Op::Start(Box::new(parse::<ServerStartRequest>(&body)?.desc)), None),
        "stop" => {
            let r: ServerStopRequest = if body.is_null() { ServerStopRequest::default() } else { parse(&body)? };
            (Op::Stop { timeout: r.timeout, force: r.is_force }, None)
        }
        "restart" => {
            let r: ServerRestartRequest = parse(&body)?;
            (Op::Restart { desc: Box::new(r.desc), force: r.is_force }, None)
        }
        "sync" => (Op::Sync(Box::new(parse::<ServerSyncRequest>(&body)?.desc)), None),
        "delete" => {
            if !known {
                // Deleting what is already gone succeeds (the region may retry).
                let a2 = a.clone();
                return Ok(accept(a, th, async move {
                    a2.leases.remove_guest(&id);
                    serde_json::to_value(apis::compute::ServerDeleteCallback { server_id: id })
                        .map_err(|e| e.to_string())
                }));
            }
            (Op::Delete, None)
        }
        other => return Err(Error::NotFound(format!("unknown server action {other}"))),
    };
    if !known && create.is_none() {
        return Err(Error::NotFound(format!("server {id} not found on host")));
    }
    let a2 = a.clone();
    Ok(accept(a, th, async move { a2.call(&id, op, create.as_ref()).await }))
}

async fn disk_call(
    State(state): St,
    Path((storage, action, disk)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Result<Response, Error> {
    let body = body.map(|b| b.0).unwrap_or(Value::Null);
    crate::storage::check_id("disk", &disk).map_err(|e| Error::BadRequest(e.to_string()))?;
    let th = task_headers(&headers)?;
    let a = agent(&state)?;
    let a2 = a.clone();
    let _ = storage;
    match action.as_str() {
        "create" => {
            let req: DiskCreateRequest = parse(&body)?;
            Ok(accept(a, th, async move {
                let d = req.disk;
                let path = a2
                    .storage
                    .create_disk(&disk, d.size, &d.format, d.image_id.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                let format = if d.format.is_empty() { "qcow2".to_string() } else { d.format };
                serde_json::to_value(DiskCreateCallback {
                    disk_id: disk,
                    path: path.display().to_string(),
                    size: d.size,
                    format,
                })
                .map_err(|e| e.to_string())
            }))
        }
        "delete" => Ok(accept(a, th, async move {
            if let Some(g) = a2.disk_user(&disk) {
                return Err(format!("disk {disk} is in use by running server {g}: detach it first"));
            }
            a2.storage.delete_disk(&disk).await.map_err(|e| e.to_string())?;
            serde_json::to_value(DiskDeleteCallback { disk_id: disk }).map_err(|e| e.to_string())
        })),
        other => Err(Error::NotFound(format!("unknown disk action {other}"))),
    }
}

async fn image_cache(State(state): St, headers: HeaderMap, Json(body): Json<Value>) -> Result<Response, Error> {
    let th = task_headers(&headers)?;
    let req: ImageCacheRequest = parse(&body)?;
    crate::storage::check_id("image", &req.disk.image_id).map_err(|e| Error::BadRequest(e.to_string()))?;
    let a = agent(&state)?;
    let a2 = a.clone();
    Ok(accept(a, th, async move {
        let token = a2.token.token().await.ok();
        let (path, size) = a2
            .storage
            .cache_image(&req.disk.image_id, req.disk.src_url.as_deref(), token.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        serde_json::to_value(ImageCacheCallback { image_id: req.disk.image_id, path: path.display().to_string(), size })
            .map_err(|e| e.to_string())
    }))
}

/// What the agent is (not part of the contract; for operators and tests).
async fn host_status(State(state): St) -> Result<Json<Value>, Error> {
    let a = agent(&state)?;
    Ok(Json(serde_json::json!({
        "accelerator": a.accel.as_str(),
        "netns": a.net.netns,
        "memory_used_mb": a.memory_used_mb(),
        "leases": a.leases.len(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_system_admins_drive_the_agent() {
        let mut c = UserCred { project: "system".into(), roles: vec!["admin".into()], ..Default::default() };
        assert!(is_system_admin(&c));
        c.project = "demo".into();
        assert!(!is_system_admin(&c), "an admin of another project");
        c.project = "system".into();
        c.roles = vec!["member".into()];
        assert!(!is_system_admin(&c));
    }
}
