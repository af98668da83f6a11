//! Registration with the region, like any host agent: `POST /hosts` with the host's local
//! storage (or `PUT /hosts/<id>` when a host of this name exists), `add-netif` for each
//! configured `wire=bridge`, `POST /hosts/<id>/agent-started` (the region fails the tasks
//! still waiting on an earlier agent process), then `POST /hosts/<id>/ping` every
//! `ping_interval_seconds` with memory and storage usage. The chosen accelerator is in `sys_info` (and so in `host-show`).
//! Once registered, guests' unsolicited status changes are pushed to `POST /servers/<id>/status`.

use std::sync::Arc;
use std::time::Duration;

use cloudcommon::client::ServiceSession;
use serde_json::{Value, json};

use crate::agent::Agent;

/// The ids the region gave this host.
#[derive(Debug, Clone)]
pub struct Registered {
    pub host_id: String,
    pub storage_id: String,
    pub region_url: String,
}

/// A stable MAC for the host's registration (`access_mac`), derived from its name.
fn host_mac(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let b = h.to_be_bytes();
    format!("02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4])
}

/// The registration body.
pub fn registration(agent: &Agent, manager_uri: &str) -> Value {
    let cfg = &agent.cfg;
    let name = cfg.host_name();
    let (capacity, _) = agent.storage.usage_mb();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<u64>().ok()))
        .map(|kb| kb / 1024)
        .unwrap_or(0);
    json!({"host": {
        "name": name, "host_type": "kvm", "access_ip": cfg.access_ip, "access_mac": host_mac(&name),
        "manager_uri": manager_uri, "cpu_count": cpus, "node_count": 1, "mem_size": mem_mb,
        "version": env!("CARGO_PKG_VERSION"),
        "sys_info": {"accelerator": agent.accel.as_str(), "netns": cfg.netns,
                     "qemu": cfg.qemu_binary, "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim()},
        "storages": [{"name": format!("{name}-local"), "mount_point": cfg.disks_dir().display().to_string(),
                      "cache_path": cfg.image_cache_dir().display().to_string(),
                      "capacity": capacity, "storage_type": "local", "medium_type": "ssd"}]}})
}

async fn send(
    http: &reqwest::Client,
    m: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut r = http.request(m.clone(), url).header("X-Auth-Token", token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.map_err(|e| format!("{m} {url}: {e}"))?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{m} {url}: {status} {v}"));
    }
    Ok(v)
}

/// Registers (or re-registers) the host and starts the heartbeat.
pub async fn register(
    agent: Arc<Agent>,
    session: Arc<ServiceSession>,
    manager_uri: &str,
) -> Result<Registered, String> {
    let s = session.session().await.map_err(|e| format!("login: {e}"))?;
    let region = if agent.cfg.region_url.is_empty() {
        s.service_url("compute_v2").map_err(|e| format!("no region in the catalog: {e}"))?
    } else {
        agent.cfg.region_url.clone()
    };
    let region = region.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(|e| e.to_string())?;
    use cloudcommon::auth::ServiceToken;
    let token = session.token().await.map_err(|e| e.to_string())?;
    let body = registration(&agent, manager_uri);
    let name = body["host"]["name"].as_str().unwrap_or_default().to_string();
    let host_id = match send(&http, reqwest::Method::GET, &format!("{region}/hosts/{name}"), &token, None).await {
        Ok(v) if v["host"]["id"].is_string() => {
            let id = v["host"]["id"].as_str().unwrap_or_default().to_string();
            let mut upd = body["host"].clone();
            if let Some(o) = upd.as_object_mut() {
                for k in ["storages", "name", "host_type"] {
                    o.remove(k);
                }
            }
            send(&http, reqwest::Method::PUT, &format!("{region}/hosts/{id}"), &token, Some(json!({"host": upd})))
                .await?;
            id
        }
        _ => {
            let v = send(&http, reqwest::Method::POST, &format!("{region}/hosts"), &token, Some(body)).await?;
            v["host"]["id"].as_str().ok_or("registration answer has no host id")?.to_string()
        }
    };
    let st = send(&http, reqwest::Method::GET, &format!("{region}/hosts/{host_id}/storages"), &token, None).await?;
    let storage_id = st["storages"][0]["id"].as_str().unwrap_or_default().to_string();
    for w in &agent.cfg.wires {
        let Some((wire, bridge)) = w.split_once('=') else { continue };
        let mac = host_mac(&format!("{name}/{bridge}"));
        let b = json!({"host": {"mac": mac, "wire": wire, "bridge": bridge, "interface": bridge}});
        send(&http, reqwest::Method::POST, &format!("{region}/hosts/{host_id}/add-netif"), &token, Some(b)).await?;
    }
    // Before this agent serves anything: what the region still waits for from an earlier
    // agent process on this host will never come.
    let started = format!("{region}/hosts/{host_id}/agent-started");
    send(&http, reqwest::Method::POST, &started, &token, Some(json!({"host": {}}))).await?;
    tracing::info!(host_id, storage_id, accelerator = %agent.accel, "registered with the region");
    let _ = agent.region_url.set(region.clone());
    agent.push_all();
    let every = Duration::from_secs(agent.cfg.ping_interval_seconds.max(1));
    let ping_url = format!("{region}/hosts/{host_id}/ping");
    let weak = Arc::downgrade(&agent);
    let sid = storage_id.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(agent) = weak.upgrade() else { return };
            let Ok(token) = session.token().await else { continue };
            let (cap, used) = agent.storage.usage_mb();
            let body = json!({"memory_used_mb": agent.memory_used_mb(),
                "storage_stats": [{"storage_id": sid, "capacity_mb": cap, "actual_capacity_used_mb": used}]});
            if let Err(e) = send(&http, reqwest::Method::POST, &ping_url, &token, Some(body)).await {
                tracing::warn!("ping failed: {e}");
            }
        }
    });
    Ok(Registered { host_id, storage_id, region_url: region })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_stable_and_local() {
        let m = host_mac("h1");
        assert_eq!(m, host_mac("h1"));
        assert!(m.starts_with("02:") && m.len() == 17, "{m}");
        assert_ne!(m, host_mac("h2"));
    }
}
