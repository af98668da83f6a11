//! Helpers of the region's integration tests.

use std::time::Duration;

use anyhow::{Result, bail};
pub use reqwest::{Method, StatusCode};
pub use serde_json::{Value, json};
pub use test_harness::{Resp, TestCloud, wait_for};

pub const CEILING: Duration = Duration::from_secs(30);

/// A fresh cloud with these region settings (`host_offline_seconds=1`, ...) and the admin token.
pub async fn start(region_sets: &[&str]) -> Result<(TestCloud, String)> {
    TestCloud::start_service_with("region", region_sets).await
}

/// `method <region><path>` with a JSON body.
pub async fn call(tc: &TestCloud, method: Method, path: &str, token: &str, body: Option<Value>) -> Result<Resp> {
    tc.call(method, &format!("{}{path}", tc.region_url()), Some(token), body).await
}

/// A call that must answer 2xx; the body.
pub async fn ok(tc: &TestCloud, method: Method, path: &str, token: &str, body: Option<Value>) -> Result<Value> {
    let r = call(tc, method.clone(), path, token, body).await?;
    if !r.status.is_success() {
        bail!("{method} {path}: {} {}", r.status, r.body);
    }
    Ok(r.body)
}

/// A call that must fail with `status` and mention `needle` in its details; the details.
pub async fn fails(
    tc: &TestCloud,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
    status: u16,
    needle: &str,
) -> Result<String> {
    let r = call(tc, method.clone(), path, token, Some(body)).await?;
    let details = r.body["details"].as_str().unwrap_or_default().to_string();
    if r.status.as_u16() != status || !details.contains(needle) {
        bail!("{method} {path}: wanted {status} mentioning {needle:?}, got {} {}", r.status, r.body);
    }
    Ok(details)
}

/// Names in a list answer.
pub fn names(list: &Value, plural: &str) -> Vec<String> {
    list[plural]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Creates wire `name` in zone0; its id.
pub async fn wire(tc: &TestCloud, admin: &str, name: &str) -> Result<String> {
    let w = ok(
        tc,
        Method::POST,
        "/wires",
        admin,
        Some(json!({"wire": {"name": name, "zone": "zone0", "bandwidth": 10000}})),
    )
    .await?;
    Ok(w["wire"]["id"].as_str().unwrap_or_default().to_string())
}

/// Creates a network; the answer.
pub async fn network(
    tc: &TestCloud,
    token: &str,
    wire: &str,
    name: &str,
    (start, end, mask, gw): (&str, &str, i64, &str),
) -> Result<Resp> {
    let body = json!({"network": {"name": name, "wire": wire, "guest_ip_start": start, "guest_ip_end": end,
        "guest_ip_mask": mask, "guest_gateway": gw}});
    call(tc, Method::POST, "/networks", token, Some(body)).await
}
