//! A simulated host agent: speaks the host agent contract of [`apis::compute`] over HTTP
//! without QEMU, so the region's tasks can be tested, and the control plane tried
//! (`cloudpods aio --simulated-hosts N`), on any machine.
//!
//! ```text
//!  SimHost::start ──> login (sysadmin, project system) ──> POST <region>/hosts ──> ping loop
//!  region call ──> 200 {"result":"ok"} ──> (delay) ──> POST <X-Task-Notify-Url> with result
//!                                                     or {"status":"error","reason":..}
//! ```
//! Guests and disks live in memory. Each guest has a `generation` raised on every state
//! change and carried in its status reports. [`SimHost::set_fault`] makes every later call
//! of one kind fail in its callback; [`SimHost::set_delay`] delays every callback.
//! `GET /servers/<id>/vnc` (answered at once, as the real agent does) points at a small VNC
//! server on 127.0.0.1 ([`vnc`]): a real RFB server showing a fixed picture, or, for a client
//! that does not send an RFB version after the banner `RFB 003.008\n`, an echo of its bytes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use apis::compute::{
    AgentAck, AgentCall, DiskCreateCallback, DiskCreateRequest, DiskDeleteCallback, GuestJsonDesc, GuestStatus,
    ImageCacheCallback, ImageCacheRequest, ServerDeleteCallback, ServerDeployCallback, ServerDeployRequest,
    ServerStatusReport,
};
use apis::task::{TASK_ID_HEADER, TASK_NOTIFY_URL_HEADER};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cloudcommon::auth::ServiceToken;
use cloudcommon::client::{ServiceSession, post_task_callback};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub mod vnc;
pub use vnc::RFB_BANNER;

/// Where a simulated host registers: keystone (to log in as `sysadmin`) and the region.
#[derive(Debug, Clone)]
pub struct SimTarget {
    pub auth_url: String,
    pub admin_password: String,
    pub region_url: String,
}

/// What a simulated host offers.
#[derive(Debug, Clone)]
pub struct SimHostSpec {
    pub name: String,
    pub cpus: u32,
    pub mem_mb: u64,
    pub storage_gb: u64,
    /// Heartbeat period.
    pub ping_interval: Duration,
    /// Wires (names or ids) the host has a NIC on (`add-netif` at registration).
    pub wires: Vec<String>,
}

impl Default for SimHostSpec {
    fn default() -> Self {
        SimHostSpec {
            name: "simhost".into(),
            cpus: 8,
            mem_mb: 16384,
            storage_gb: 100,
            ping_interval: Duration::from_secs(1),
            wires: vec![],
        }
    }
}

impl SimHostSpec {
    pub fn new(name: &str, cpus: u32, mem_mb: u64, storage_gb: u64) -> SimHostSpec {
        SimHostSpec { name: name.into(), cpus, mem_mb, storage_gb, ..Default::default() }
    }

    /// The same host with a NIC on each of these wires.
    pub fn on_wires(mut self, wires: &[&str]) -> SimHostSpec {
        self.wires = wires.iter().map(|w| w.to_string()).collect();
        self
    }
}

/// A guest as the simulated host holds it.
#[derive(Debug, Clone)]
pub struct SimGuest {
    pub desc: GuestJsonDesc,
    pub status: GuestStatus,
    pub generation: u64,
}

/// A disk as the simulated host holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDisk {
    pub path: String,
    pub size_mb: u64,
    pub format: String,
}

#[derive(Default)]
struct Inner {
    guests: HashMap<String, SimGuest>,
    disks: HashMap<(String, String), SimDisk>,
    images: HashSet<String>,
    faults: BTreeMap<AgentCall, String>,
    delay: Duration,
    calls: Vec<AgentCall>,
}

struct Shared {
    inner: Mutex<Inner>,
    /// The port of the VNC server ([`vnc`]) every running guest's console points at.
    vnc_port: u16,
    session: Arc<ServiceSession>,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running simulated host agent registered with a region.
pub struct SimHost {
    pub spec: SimHostSpec,
    /// The agent's base URL (its `manager_uri`).
    pub url: String,
    /// The region's id of this host.
    pub host_id: String,
    /// The region's id of the host's local storage.
    pub storage_id: String,
    shared: Arc<Shared>,
    server: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
    pinger: Option<JoinHandle<()>>,
    vnc: Option<JoinHandle<()>>,
}

impl SimHost {
    /// Starts the agent on 127.0.0.1 (port 0), registers it with the region and starts pinging.
    pub async fn start(target: &SimTarget, spec: SimHostSpec) -> Result<SimHost> {
        let session = ServiceSession::new(&target.auth_url, "sysadmin", &target.admin_password, "system", "Default");
        let vnc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let vnc_port = vnc_listener.local_addr()?.port();
        let vnc = tokio::spawn(vnc::serve(vnc_listener, format!("{} (simulated)", spec.name)));
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            vnc_port,
            session,
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .route("/servers/{id}/{action}", post(server_call).get(server_get))
            .route("/disks/image_cache", post(image_cache))
            .route("/disks/{storage}/{action}/{disk}", post(disk_call))
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        let token = shared.session.token().await.map_err(|e| anyhow::anyhow!("sim host login: {e}"))?;
        let region = target.region_url.trim_end_matches('/').to_string();
        let reg = json!({"host": {
            "name": spec.name, "host_type": "kvm", "access_ip": "127.0.0.1", "manager_uri": url,
            "cpu_count": spec.cpus, "node_count": 1, "mem_size": spec.mem_mb,
            "storages": [{"name": format!("{}-local", spec.name), "mount_point": "/opt/cloud/workspace/disks",
                          "capacity": spec.storage_gb * 1024, "storage_type": "local", "medium_type": "ssd"}]}});
        let r = shared.http.post(format!("{region}/hosts")).header("X-Auth-Token", &token).json(&reg).send().await?;
        let status = r.status();
        let mut body: Value = r.json().await.unwrap_or(Value::Null);
        if status.as_u16() == 409 {
            // Registered before (an aio restarted on its data dir): take the host over, at
            // this agent's new address.
            let url = format!("{region}/hosts/{}", spec.name);
            let patch = json!({"host": {"manager_uri": url_of_agent(&reg)}});
            let r = shared.http.put(&url).header("X-Auth-Token", &token).json(&patch).send().await?;
            let st = r.status();
            body = r.json().await.unwrap_or(Value::Null);
            if !st.is_success() {
                bail!("re-registering sim host {}: {st} {body}", spec.name);
            }
        } else if !status.is_success() {
            bail!("registering sim host {}: {status} {body}", spec.name);
        }
        let host_id = body["host"]["id"].as_str().context("registration answer has no host id")?.to_string();
        let st: Value = shared
            .http
            .get(format!("{region}/hosts/{host_id}/storages"))
            .header("X-Auth-Token", &token)
            .send()
            .await?
            .json()
            .await?;
        let storage_id = st["storages"][0]["id"].as_str().context("sim host has no storage")?.to_string();
        for (i, wire) in spec.wires.iter().enumerate() {
            let mac = mac_of(&spec.name, i);
            let body =
                json!({"host": {"mac": mac, "wire": wire, "bridge": format!("br{i}"), "interface": format!("eth{i}")}});
            let r = shared
                .http
                .post(format!("{region}/hosts/{host_id}/add-netif"))
                .header("X-Auth-Token", &token)
                .json(&body)
                .send()
                .await?;
            if !r.status().is_success() {
                bail!(
                    "sim host {} add-netif on {wire}: {} {}",
                    spec.name,
                    r.status(),
                    r.text().await.unwrap_or_default()
                );
            }
        }
        let pinger = {
            let shared = shared.clone();
            let ping_url = format!("{region}/hosts/{host_id}/ping");
            let every = spec.ping_interval;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Ok(token) = shared.session.token().await else { continue };
                    let used: u64 = shared.lock().guests.values().map(|g| g.desc.vmem_size).sum();
                    let r = shared
                        .http
                        .post(&ping_url)
                        .header("X-Auth-Token", token)
                        .json(&json!({"memory_used_mb": used}))
                        .send()
                        .await;
                    if let Err(e) = r {
                        tracing::warn!("sim host ping failed: {e}");
                    }
                }
            })
        };
        Ok(SimHost {
            spec,
            url,
            host_id,
            storage_id,
            shared,
            server: Some((tx, server)),
            pinger: Some(pinger),
            vnc: Some(vnc),
        })
    }

    /// Makes every later call of `call` fail in its callback with `reason` (None: succeed again).
    pub fn set_fault(&self, call: AgentCall, reason: Option<&str>) {
        let mut g = self.shared.lock();
        match reason {
            Some(r) => g.faults.insert(call, r.to_string()),
            None => g.faults.remove(&call),
        };
    }

    /// Delays every later callback by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().delay = delay;
    }

    /// The guests the host holds.
    pub fn guests(&self) -> HashMap<String, SimGuest> {
        self.shared.lock().guests.clone()
    }

    /// The disks the host holds, by (storage id, disk id).
    pub fn disks(&self) -> HashMap<(String, String), SimDisk> {
        self.shared.lock().disks.clone()
    }

    /// The calls accepted so far, in order.
    pub fn calls(&self) -> Vec<AgentCall> {
        self.shared.lock().calls.clone()
    }

    /// Stops pinging and serving.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(p) = self.pinger.take() {
            p.abort();
            let _ = p.await;
        }
        if let Some(v) = self.vnc.take() {
            v.abort();
            let _ = v.await;
        }
        if let Some((tx, h)) = self.server.take() {
            let _ = tx.send(());
            let _ = h.await;
        }
    }
}

impl Drop for SimHost {
    fn drop(&mut self) {
        if let Some(p) = self.pinger.take() {
            p.abort();
        }
        if let Some(v) = self.vnc.take() {
            v.abort();
        }
        if let Some((tx, _)) = self.server.take() {
            let _ = tx.send(());
        }
    }
}

/// A call refused synchronously (no callback will come), as Cloudpods' error JSON.
struct Reject(StatusCode, String);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let Reject(status, details) = self;
        let class = match status {
            StatusCode::UNAUTHORIZED => "UnauthorizedError",
            StatusCode::NOT_FOUND => "NotFoundError",
            StatusCode::CONFLICT => "InvalidStatusError",
            _ => "InputError",
        };
        (status, Json(json!({"code": status.as_u16(), "class": class, "details": details}))).into_response()
    }
}

fn reject(status: StatusCode, details: impl Into<String>) -> Reject {
    Reject(status, details.into())
}

/// The task headers of a call; a call without them cannot be answered.
fn task_headers(h: &HeaderMap) -> Result<(String, String), Reject> {
    if h.get("X-Auth-Token").is_none() {
        return Err(reject(StatusCode::UNAUTHORIZED, "missing X-Auth-Token"));
    }
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).filter(|s| !s.is_empty()).map(str::to_string);
    match (get(TASK_ID_HEADER), get(TASK_NOTIFY_URL_HEADER)) {
        (Some(id), Some(url)) => Ok((id, url)),
        _ => Err(reject(StatusCode::BAD_REQUEST, format!("missing {TASK_ID_HEADER} or {TASK_NOTIFY_URL_HEADER}"))),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, Reject> {
    serde_json::from_value(body.clone()).map_err(|e| reject(StatusCode::BAD_REQUEST, format!("bad body: {e}")))
}

/// Acks the call now and runs `work` after the delay, posting its result (or the injected
/// fault) to the notify URL.
fn accept<F>(
    shared: &Arc<Shared>,
    call: AgentCall,
    (task_id, notify): (String, String),
    work: F,
) -> Result<Response, Reject>
where
    F: FnOnce(&mut Inner) -> Result<Value, String> + Send + 'static,
{
    let delay = {
        let mut g = shared.lock();
        g.calls.push(call);
        g.delay
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let result = {
            let mut g = shared.lock();
            match g.faults.get(&call).cloned() {
                Some(reason) => Err(reason),
                None => work(&mut g),
            }
        };
        post_task_callback(&shared.http, shared.session.as_ref(), &task_id, &notify, result).await;
    });
    Ok(Json(AgentAck::ok()).into_response())
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

fn set_status(g: &mut Inner, id: &str, status: GuestStatus) -> Result<Value, String> {
    let guest = g.guests.get_mut(id).ok_or_else(|| format!("server {id} not found on host"))?;
    guest.status = status;
    guest.generation += 1;
    to_json(&ServerStatusReport { status, generation: guest.generation })
}

async fn server_get(
    State(shared): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Reject> {
    if action == "vnc" {
        // Not a task: answered at once (for the webconsole).
        if headers.get("X-Auth-Token").is_none() {
            return Err(reject(StatusCode::UNAUTHORIZED, "missing X-Auth-Token"));
        }
        let status = shared.lock().guests.get(&id).map(|g| g.status);
        return match status {
            None => Err(reject(StatusCode::NOT_FOUND, format!("server {id} not found on host"))),
            Some(GuestStatus::Running) => {
                Ok(Json(json!({"host": "127.0.0.1", "port": shared.vnc_port, "protocol": "vnc"})).into_response())
            }
            Some(_) => Err(reject(StatusCode::CONFLICT, format!("server {id} is not running"))),
        };
    }
    if action != "status" {
        return Err(reject(StatusCode::NOT_FOUND, format!("no GET /servers/<id>/{action}")));
    }
    let th = task_headers(&headers)?;
    accept(&shared, AgentCall::ServerStatus, th, move |g| {
        let (status, generation) =
            g.guests.get(&id).map(|s| (s.status, s.generation)).unwrap_or((GuestStatus::Unknown, 0));
        to_json(&ServerStatusReport { status, generation })
    })
}

async fn server_call(
    State(shared): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Result<Response, Reject> {
    let body = body.map(|b| b.0).unwrap_or(Value::Null);
    let Some(call) = AgentCall::parse_server_action(&action).filter(|c| *c != AgentCall::ServerStatus) else {
        return Err(reject(StatusCode::NOT_FOUND, format!("unknown server action {action}")));
    };
    let th = task_headers(&headers)?;
    let desc_of = |body: &Value| -> Result<GuestJsonDesc, Reject> { parse(body.get("desc").unwrap_or(&Value::Null)) };
    match call {
        AgentCall::ServerCreate | AgentCall::ServerDeploy => {
            let req: ServerDeployRequest = parse(&body)?;
            accept(&shared, call, th, move |g| {
                let start = req.on_finish == "none";
                let status = if start { GuestStatus::Running } else { GuestStatus::Ready };
                let guest = g.guests.entry(id).or_insert(SimGuest { desc: req.desc.clone(), status, generation: 0 });
                guest.desc = req.desc;
                guest.status = status;
                guest.generation += 1;
                to_json(&ServerDeployCallback {
                    generation: guest.generation,
                    status: Some(status),
                    os: Some("Linux".into()),
                    login_account: Some("root".into()),
                })
            })
        }
        AgentCall::ServerStart | AgentCall::ServerRestart | AgentCall::ServerSync => {
            let desc = desc_of(&body)?;
            accept(&shared, call, th, move |g| {
                let guest = g.guests.get_mut(&id).ok_or_else(|| format!("server {id} not found on host"))?;
                guest.desc = desc;
                let status = if call == AgentCall::ServerSync { guest.status } else { GuestStatus::Running };
                set_status(g, &id, status)
            })
        }
        AgentCall::ServerStop => accept(&shared, call, th, move |g| set_status(g, &id, GuestStatus::Ready)),
        _ => accept(&shared, call, th, move |g| {
            g.guests.remove(&id);
            to_json(&ServerDeleteCallback { server_id: id })
        }),
    }
}

async fn disk_call(
    State(shared): State<Arc<Shared>>,
    Path((storage, action, disk)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Result<Response, Reject> {
    let body = body.map(|b| b.0).unwrap_or(Value::Null);
    let th = task_headers(&headers)?;
    match action.as_str() {
        "create" => {
            let req: DiskCreateRequest = parse(&body)?;
            accept(&shared, AgentCall::DiskCreate, th, move |g| {
                if let Some(img) = &req.disk.image_id
                    && !g.images.contains(img)
                {
                    return Err(format!("image {img} is not cached on this host"));
                }
                let path = format!("/opt/cloud/workspace/disks/{disk}");
                let d = SimDisk { path: path.clone(), size_mb: req.disk.size, format: req.disk.format.clone() };
                g.disks.insert((storage, disk.clone()), d);
                to_json(&DiskCreateCallback { disk_id: disk, path, size: req.disk.size, format: req.disk.format })
            })
        }
        "delete" => accept(&shared, AgentCall::DiskDelete, th, move |g| {
            g.disks.remove(&(storage, disk.clone()));
            to_json(&DiskDeleteCallback { disk_id: disk })
        }),
        other => Err(reject(StatusCode::NOT_FOUND, format!("unknown disk action {other}"))),
    }
}

async fn image_cache(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, Reject> {
    let th = task_headers(&headers)?;
    let req: ImageCacheRequest = parse(&body)?;
    accept(&shared, AgentCall::ImageCache, th, move |g| {
        let image_id = req.disk.image_id;
        g.images.insert(image_id.clone());
        to_json(&ImageCacheCallback {
            path: format!("/opt/cloud/workspace/disks/image_cache/{image_id}"),
            image_id,
            size: 0,
        })
    })
}

fn url_of_agent(reg: &Value) -> Value {
    reg["host"]["manager_uri"].clone()
}

/// A stable MAC for NIC `i` of the host named `name` (the same after a restart).
fn mac_of(name: &str, i: usize) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let b = h.to_be_bytes();
    format!("00:24:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], i as u8)
}
