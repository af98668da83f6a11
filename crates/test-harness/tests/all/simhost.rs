//! The simulated host agent: registration, heartbeat, the contract's calls and callbacks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use apis::compute::{
    AgentCall, DeployAction, DiskCreateInfo, DiskCreateRequest, GuestJsonDesc, ServerDeployRequest, ServerStartRequest,
};
use apis::task::{TASK_ID_HEADER, TASK_NOTIFY_URL_HEADER};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use reqwest::Method;
use serde_json::{Value, json};
use test_harness::simhost::{SimHost, SimHostSpec};
use test_harness::{TestCloud, wait_for};

/// A callback as the capturing endpoint saw it: path task id, `X-Task-Id`, token present, body.
#[derive(Debug, Clone)]
struct Captured {
    path_id: String,
    header_id: String,
    has_token: bool,
    body: Value,
}

type Log = Arc<Mutex<Vec<Captured>>>;

/// An axum endpoint standing in for the region's `POST /tasks/<id>`; returns its base URL.
async fn capture() -> Result<(String, Log)> {
    let log: Log = Arc::default();
    async fn task(
        State(log): State<Log>,
        Path(id): Path<String>,
        h: HeaderMap,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        let header_id = h.get(TASK_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let has_token = h.get("X-Auth-Token").is_some_and(|v| !v.is_empty());
        log.lock().unwrap().push(Captured { path_id: id, header_id, has_token, body });
        Json(json!({"result": "ok"}))
    }
    let app = axum::Router::new().route("/tasks/{id}", post(task)).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, log))
}

/// Calls the agent like a region task stage would; returns the synchronous answer.
async fn agent_call(
    tc: &TestCloud,
    token: &str,
    method: Method,
    url: &str,
    task: &str,
    notify: &str,
    body: Option<Value>,
) -> Result<Value> {
    let mut req = tc.http.request(method, url).header("X-Auth-Token", token).header(TASK_ID_HEADER, task);
    req = req.header(TASK_NOTIFY_URL_HEADER, format!("{notify}/tasks/{task}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    if !resp.status().is_success() {
        bail!("{url}: {}", resp.status());
    }
    Ok(resp.json().await?)
}

/// Waits for the callback of `task`.
async fn callback_of(log: &Log, task: &str) -> Result<Captured> {
    wait_for(Duration::from_secs(10), || async { log.lock().unwrap().iter().any(|c| c.path_id == task) }).await?;
    log.lock().unwrap().iter().find(|c| c.path_id == task).cloned().context("callback")
}

fn desc(id: &str, storage: &str) -> GuestJsonDesc {
    let mut d = GuestJsonDesc {
        id: id.into(),
        name: "vm1".into(),
        uuid: id.into(),
        vcpu_count: 2,
        vmem_size: 1024,
        password: Some("secret".into()),
        ..Default::default()
    };
    d.disks.push(apis::compute::GuestDiskDesc {
        disk_id: "d1".into(),
        size: 1024,
        format: "qcow2".into(),
        driver: "virtio".into(),
        storage_id: storage.into(),
        ..Default::default()
    });
    d
}

#[tokio::test]
async fn sim_hosts_register_and_answer_the_contract() -> Result<()> {
    let tc = TestCloud::start().await?;
    let admin = tc.admin_token().await?;
    let h1 = SimHost::start(&tc.sim_target(), SimHostSpec::new("sim1", 16, 32768, 200)).await?;
    let h2 = SimHost::start(&tc.sim_target(), SimHostSpec::new("sim2", 8, 16384, 100)).await?;

    // Both hosts are online with their capacity and one local storage each.
    let hosts = tc.call(Method::GET, &format!("{}/hosts", tc.region_url()), Some(&admin), None).await?.body;
    for (h, cpus, mem, gb) in [(&h1, 16, 32768, 200), (&h2, 8, 16384, 100)] {
        let row = hosts["hosts"]
            .as_array()
            .context("hosts")?
            .iter()
            .find(|r| r["id"] == h.host_id)
            .with_context(|| format!("{} not listed: {hosts}", h.spec.name))?;
        assert_eq!(
            (row["name"].as_str(), row["host_status"].as_str(), row["cpu_count"].as_i64(), row["mem_size"].as_i64()),
            (Some(h.spec.name.as_str()), Some("online"), Some(cpus), Some(mem))
        );
        assert_eq!(row["manager_uri"], h.url.as_str());
        let st = tc
            .call(Method::GET, &format!("{}/hosts/{}/storages", tc.region_url(), h.host_id), Some(&admin), None)
            .await?
            .body;
        assert_eq!(st["total"], 1, "{st}");
        assert_eq!(
            (st["storages"][0]["id"].as_str(), st["storages"][0]["capacity"].as_i64()),
            (Some(h.storage_id.as_str()), Some(gb * 1024))
        );
    }

    let (notify, log) = capture().await?;
    // Disk create: ack at once, then the callback with the task id and the disk.
    let body = serde_json::to_value(DiskCreateRequest {
        disk: DiskCreateInfo { size: 1024, format: "qcow2".into(), image_id: None },
    })?;
    let url = format!("{}/disks/{}/create/d1", h1.url, h1.storage_id);
    let ack = agent_call(&tc, &admin, Method::POST, &url, "task-disk", &notify, Some(body)).await?;
    assert_eq!(ack, json!({"result": "ok"}));
    let cb = callback_of(&log, "task-disk").await?;
    assert_eq!((cb.header_id.as_str(), cb.has_token), ("task-disk", true));
    assert_eq!(
        cb.body,
        json!({"disk_id": "d1", "path": "/opt/cloud/workspace/disks/d1", "size": 1024, "format": "qcow2"})
    );
    assert!(h1.disks().contains_key(&(h1.storage_id.clone(), "d1".to_string())));

    // Server create (left ready) then start: running, generation raised.
    let create = ServerDeployRequest {
        desc: desc("g1", &h1.storage_id),
        action: DeployAction::Create,
        reset_password: true,
        on_finish: "shutdown".into(),
    };
    let url = format!("{}/servers/g1/create", h1.url);
    agent_call(&tc, &admin, Method::POST, &url, "task-create", &notify, Some(serde_json::to_value(&create)?)).await?;
    let cb = callback_of(&log, "task-create").await?;
    assert_eq!((cb.body["status"].as_str(), cb.body["generation"].as_u64()), (Some("ready"), Some(1)));
    let start = ServerStartRequest { desc: desc("g1", &h1.storage_id) };
    let url = format!("{}/servers/g1/start", h1.url);
    agent_call(&tc, &admin, Method::POST, &url, "task-start", &notify, Some(serde_json::to_value(&start)?)).await?;
    let cb = callback_of(&log, "task-start").await?;
    assert_eq!(cb.header_id, "task-start");
    assert_eq!(cb.body, json!({"status": "running", "generation": 2}));
    let url = format!("{}/servers/g1/status", h1.url);
    agent_call(&tc, &admin, Method::GET, &url, "task-status", &notify, None).await?;
    assert_eq!(callback_of(&log, "task-status").await?.body, json!({"status": "running", "generation": 2}));

    // Failure injection: the call is accepted, its callback reports the error.
    h2.set_fault(AgentCall::DiskCreate, Some("no space left on device"));
    h2.set_delay(Duration::from_millis(50));
    let body = json!({"disk": {"size": 10, "format": "raw"}});
    let url = format!("{}/disks/{}/create/d2", h2.url, h2.storage_id);
    agent_call(&tc, &admin, Method::POST, &url, "task-fail", &notify, Some(body)).await?;
    let cb = callback_of(&log, "task-fail").await?;
    assert_eq!(cb.body, json!({"status": "error", "reason": "no space left on device"}));
    assert_eq!(apis::task::callback_error(&cb.body).as_deref(), Some("no space left on device"));
    assert!(h2.disks().is_empty());
    assert_eq!(h2.calls(), [AgentCall::DiskCreate]);

    // A call without the task headers is refused synchronously.
    let r = tc
        .http
        .post(format!("{}/servers/g1/stop", h1.url))
        .header("X-Auth-Token", &admin)
        .json(&json!({}))
        .send()
        .await?;
    assert_eq!(r.status(), 400);

    h1.stop().await;
    h2.stop().await;
    tc.stop().await
}

/// `GET /hosts/<id>`'s host (Null on any failure).
async fn show(tc: &TestCloud, admin: &str, url: &str) -> Value {
    tc.call(Method::GET, url, Some(admin), None).await.map(|r| r.body["host"].clone()).unwrap_or(Value::Null)
}

#[tokio::test]
async fn stopped_sim_host_goes_offline() -> Result<()> {
    let tc = TestCloud::start_with(&["region.host_offline_seconds=1"]).await?;
    let admin = tc.admin_token().await?;
    let spec = SimHostSpec { ping_interval: Duration::from_millis(200), ..SimHostSpec::new("sim-off", 4, 8192, 50) };
    let h = SimHost::start(&tc.sim_target(), spec).await?;
    let url = format!("{}/hosts/{}", tc.region_url(), h.host_id);
    // Pings arrive: last_ping_at moves on while the host stays online.
    let first = show(&tc, &admin, &url).await["last_ping_at"].clone();
    wait_for(Duration::from_secs(10), || async {
        let h = show(&tc, &admin, &url).await;
        h["last_ping_at"] != first && h["host_status"] == "online"
    })
    .await?;
    let host_id = h.host_id.clone();
    h.stop().await;
    wait_for(Duration::from_secs(20), || async { show(&tc, &admin, &url).await["host_status"] == "offline" })
        .await
        .with_context(|| format!("host {host_id} never went offline"))?;
    tc.stop().await
}
