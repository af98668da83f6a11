//! The scheduler's HTTP routes: parse and resolve the input, call [`crate::pending::Scheduler`].
//!
//! Input (`{"scheduler": {...}}`, Cloudpods' `ScheduleInput` subset):
//! `vcpu_count`, `vmem_size` (MB, or a size like `"2g"`), `disks: [{"size", "backend"}]`
//! (MB or `"10g"`), `nets: [{"network"}]` (name or id), `hypervisor`,
//! `schedtags: [{"id", "strategy": require|exclude|prefer|avoid}]`, `project_id` (default: the
//! caller's project), `count` (default 1), `session_id` (generated when absent).

use std::sync::Arc;

use apis::Error;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::post;
use axum::{Extension, Json, Router};
use cloudcommon::auth::UserCred;
use cloudcommon::resource::Row;
use cloudcommon::resource::dispatch::{json_body, unwrap_keyword};
use cloudcommon::service::ServiceState;
use serde_json::{Value, json};

use crate::core::{DiskRequest, NetRequest, SchedtagRule, ScheduleInput};
use crate::loader::NetworkInfo;

pub fn routes() -> Router<Arc<ServiceState>> {
    Router::new()
        .route("/scheduler", post(schedule))
        .route("/scheduler/forecast", post(forecast))
        .route("/scheduler/clean-cache", post(clean_all))
        .route("/scheduler/clean-cache/{host}", post(clean_host))
}

/// Most instances one request may ask for.
pub const MAX_COUNT: u32 = 1000;

pub use apis::compute::size_mb;

/// Storage backends a `backend:size` disk string may name.
const BACKENDS: &[&str] = &["local", "rbd", "nfs", "gpfs", "lvm", "slvm", "clvm"];

/// A disk: `{"size", "backend"}`, or climc's string `10g`, `local:10g` or `<image>:10g`.
fn disk(d: &Value) -> Result<DiskRequest, Error> {
    if let Some(s) = d.as_str() {
        let parts: Vec<&str> = s.split(':').collect();
        let size = parts.last().copied().unwrap_or_default();
        let backend = parts.iter().rev().skip(1).find(|p| BACKENDS.contains(p)).copied().unwrap_or_default();
        return Ok(DiskRequest { size_mb: size_mb("disks", &Value::from(size))?, backend: backend.into() });
    }
    let size = d.get("size").ok_or_else(|| Error::missing("disks.size"))?;
    let backend = d.get("backend").or_else(|| d.get("storage_type")).and_then(Value::as_str).unwrap_or("");
    Ok(DiskRequest { size_mb: size_mb("disks.size", size)?, backend: backend.to_string() })
}

fn int(body: &Row, k: &str, default: i64, max: i64) -> Result<i64, Error> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|n| (0..=max).contains(n))
            .ok_or_else(|| Error::invalid(k, format!("must be a number from 0 to {max}"))),
    }
}

/// Parses the request into the core's input, resolving networks to their wires.
pub fn parse_input(body: &Row, networks: &[NetworkInfo], cred: &UserCred) -> Result<(ScheduleInput, String), Error> {
    let mut input = ScheduleInput {
        cpu: int(body, "vcpu_count", 1, 1 << 16)?,
        mem_mb: match body.get("vmem_size") {
            None | Some(Value::Null) => 0,
            Some(v) => size_mb("vmem_size", v)?,
        },
        hypervisor: body.get("hypervisor").and_then(Value::as_str).unwrap_or_default().to_string(),
        project_id: body.get("project_id").and_then(Value::as_str).unwrap_or(&cred.project_id).to_string(),
        count: int(body, "count", 1, MAX_COUNT as i64)?.max(1) as u32,
        ..ScheduleInput::default()
    };
    if let Some(Value::Array(disks)) = body.get("disks") {
        for d in disks {
            input.disks.push(disk(d)?);
        }
    }
    let nets = body.get("nets").or_else(|| body.get("networks"));
    if let Some(Value::Array(nets)) = nets {
        for n in nets {
            let key = n.get("network").and_then(Value::as_str).or_else(|| n.as_str()).unwrap_or_default();
            let found = networks
                .iter()
                .find(|x| x.id == key)
                .or_else(|| networks.iter().find(|x| x.name == key))
                .ok_or_else(|| Error::NotFound(format!("network {key:?} not found")))?;
            input.networks.push(NetRequest {
                network: found.name.clone(),
                network_id: found.id.clone(),
                wire_id: found.wire_id.clone(),
            });
        }
    }
    if let Some(tags) = body.get("schedtags") {
        input.schedtags = serde_json::from_value::<Vec<SchedtagRule>>(tags.clone())
            .map_err(|e| Error::invalid("schedtags", e.to_string()))?;
    }
    let session = match body.get("session_id").and_then(Value::as_str) {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    Ok((input, session))
}

fn require_admin(cred: &UserCred) -> Result<(), Error> {
    if cred.roles.iter().any(|r| r == "admin") {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("{} may not schedule: admin only", cred.user)))
    }
}

fn input_of(svc: &crate::SchedulerService, body: &Bytes, cred: &UserCred) -> Result<(ScheduleInput, String), Error> {
    let body = unwrap_keyword(json_body(body)?, "scheduler")?;
    let nets = svc.networks.lock().unwrap_or_else(|e| e.into_inner()).clone();
    parse_input(&body, &nets, cred)
}

async fn schedule(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    require_admin(&cred)?;
    let svc = crate::scheduler(&state)?;
    let (input, session) = input_of(&svc, &body, &cred)?;
    let out = svc.scheduler.schedule(&session, &input);
    if !out.complete(input.count) {
        let reasons = out.reasons(&input, svc.scheduler.hosts().len());
        return Err(Error::InsufficientResource(format!(
            "no host can take {} of {} instances: {}",
            input.count.max(1) - out.candidates.len() as u32,
            input.count.max(1),
            reasons.join("; ")
        )));
    }
    let candidates: Vec<Value> = out
        .candidates
        .iter()
        .map(|c| {
            json!({"host_id": c.host_id, "host": c.host, "name": c.host, "session_id": session,
                "storage_ids": c.storage_ids, "network_ids": c.network_ids,
                "disks": c.storage_ids.iter().enumerate().map(|(i, s)| json!({"index": i, "storage_ids": [s]})).collect::<Vec<_>>(),
                "nets": c.network_ids.iter().enumerate().map(|(i, n)| json!({"index": i, "network_ids": [n]})).collect::<Vec<_>>()})
        })
        .collect();
    Ok(Json(json!({"candidates": candidates, "session_id": session})))
}

async fn forecast(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let svc = crate::scheduler(&state)?;
    let (input, _) = match input_of(&svc, &body, &cred) {
        Ok(x) => x,
        Err(e @ (Error::NotFound(_) | Error::InvalidInput { .. } | Error::BadRequest(_))) => {
            return Ok(Json(json!({"can_create": false, "allow_count": 0, "req_count": 0,
                "filtered_candidates": [], "not_allow_reasons": [e.to_string()]})));
        }
        Err(e) => return Err(e),
    };
    let out = svc.scheduler.forecast(&input);
    let want = input.count.max(1);
    let can = out.allow_count >= want;
    let reasons = if can { vec![] } else { out.reasons(&input, svc.scheduler.hosts().len()) };
    let filtered: Vec<Value> = out
        .passed
        .iter()
        .map(|s| json!({"host_id": s.host_id, "host": s.host, "capacity": s.capacity, "score": s.score}))
        .collect();
    Ok(Json(json!({"can_create": can, "allow_count": out.allow_count, "req_count": want,
        "filtered_candidates": filtered, "not_allow_reasons": reasons,
        "filters": out.failures})))
}

#[derive(serde::Deserialize, Default)]
struct CleanQuery {
    session: Option<String>,
}

async fn clean(state: &ServiceState, cred: &UserCred, host: Option<&str>, q: CleanQuery) -> Result<Json<Value>, Error> {
    require_admin(cred)?;
    let svc = crate::scheduler(state)?;
    // Reload first, release second: once the region has committed the servers, the reloaded
    // host counts them before their reservation goes, so no schedule in between sees neither.
    let refreshed = match host {
        Some(h) => svc.refresh_host(h).await,
        None => svc.refresh().await,
    };
    let released = svc.scheduler.clean(q.session.as_deref().filter(|s| !s.is_empty()), host);
    refreshed?;
    Ok(Json(json!({"released": released, "hosts": svc.scheduler.hosts().len()})))
}

async fn clean_all(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Query(q): Query<CleanQuery>,
) -> Result<Json<Value>, Error> {
    clean(&state, &cred, None, q).await
}

async fn clean_host(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    Path(host): Path<String>,
    Query(q): Query<CleanQuery>,
) -> Result<Json<Value>, Error> {
    clean(&state, &cred, Some(&host), q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_disks() {
        assert_eq!(size_mb("m", &json!(2048)).ok(), Some(2048));
        assert_eq!(size_mb("m", &json!("2g")).ok(), Some(2048));
        assert_eq!(size_mb("m", &json!("512M")).ok(), Some(512));
        assert_eq!(size_mb("m", &json!("1tb")).ok(), Some(1 << 20));
        assert!(size_mb("m", &json!("lots")).is_err() && size_mb("m", &json!(-1)).is_err());
        assert_eq!(disk(&json!("local:10g")).ok(), Some(DiskRequest { size_mb: 10240, backend: "local".into() }));
        assert_eq!(disk(&json!("cirros:5g")).ok(), Some(DiskRequest { size_mb: 5120, backend: String::new() }));
        assert_eq!(
            disk(&json!({"size": 100, "backend": "rbd"})).ok(),
            Some(DiskRequest { size_mb: 100, backend: "rbd".into() })
        );
    }

    #[test]
    fn input_resolves_networks_and_defaults() {
        let nets = vec![NetworkInfo { id: "n1".into(), name: "net1".into(), wire_id: "w1".into() }];
        let cred = UserCred { project_id: "p0".into(), ..UserCred::default() };
        let body = json!({"vmem_size": "1g", "nets": ["net1", {"network": "n1"}], "schedtags": [{"id": "ssd", "strategy": "avoid"}]});
        let Value::Object(body) = body else { unreachable!() };
        let (input, session) = parse_input(&body, &nets, &cred).expect("valid");
        assert_eq!((input.cpu, input.mem_mb, input.count, input.project_id.as_str()), (1, 1024, 1, "p0"));
        assert_eq!(input.networks.iter().map(|n| n.wire_id.as_str()).collect::<Vec<_>>(), ["w1", "w1"]);
        assert_eq!(input.schedtags[0].strategy, crate::core::Strategy::Avoid);
        assert!(!session.is_empty());
        let Value::Object(bad) = json!({"nets": ["nope"]}) else { unreachable!() };
        assert!(parse_input(&bad, &nets, &cred).unwrap_err().to_string().contains("nope"));
        let Value::Object(bad) = json!({"count": 5000}) else { unreachable!() };
        assert!(parse_input(&bad, &nets, &cred).is_err());
    }
}
