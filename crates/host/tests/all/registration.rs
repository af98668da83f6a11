//! The agent against a real in-process cloud (keystone, region, glance from test-harness):
//! registration shows the accelerator in `host-show`, the local storage is created, callers'
//! tokens are checked by keystone, and an image is cached from glance with the service token
//! and glance's checksum. Guest networking stays in a namespace this test creates.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cloudcommon::auth::RemoteVerifier;
use cloudcommon::client::ServiceSession;
use md5::{Digest, Md5};
use reqwest::Method;
use serde_json::json;
use test_harness::TestCloud;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_with_the_region_and_caches_from_glance() -> Result<()> {
    require_root()?;
    let tc = TestCloud::start().await?;
    let admin = tc.admin_token().await?;
    let pid = std::process::id();
    let env = Cleanup::fresh("cphreg", "reg")?;
    let (netns, dir) = (env.netns.clone(), env.dir.clone());

    let session = ServiceSession::new(&tc.auth_url, "sysadmin", &tc.admin_password, "system", "Default");
    let verifier = RemoteVerifier::new(&tc.auth_url, session.clone());
    let mut cfg = test_config(&dir, &netns);
    cfg.hostname = format!("host-reg-{pid}");
    cfg.region_url = tc.region_url();
    cfg.ping_interval_seconds = 1;
    let (built, url) = start_agent_with(cfg, verifier, session.clone()).await?;
    let reg = host::region::register(built.agent.clone(), session.clone(), &url).await.map_err(anyhow::Error::msg)?;

    // host-show: the accelerator the agent chose, its manager URI, its local storage.
    let h = tc.call(Method::GET, &format!("{}/hosts/{}", tc.region_url(), reg.host_id), Some(&admin), None).await?;
    let want = host::accel::detect(host::accel::AccelSetting::Auto).as_str();
    assert_eq!(h.body["host"]["sys_info"]["accelerator"], want, "{}", h.body);
    assert_eq!(h.body["host"]["manager_uri"], url.as_str());
    assert_eq!(h.body["host"]["host_status"], "online");
    let st =
        tc.call(Method::GET, &format!("{}/storages/{}", tc.region_url(), reg.storage_id), Some(&admin), None).await?;
    assert_eq!(st.body["storage"]["storage_type"], "local", "{}", st.body);
    // Registering again (an agent restart) finds the same host.
    let again = host::region::register(built.agent.clone(), session.clone(), &url).await.map_err(anyhow::Error::msg)?;
    assert_eq!(again.host_id, reg.host_id);

    // Callers are authenticated by keystone, and only system admins drive an agent.
    let r = tc
        .http
        .post(format!("{url}/disks/image_cache"))
        .header("X-Auth-Token", "bogus")
        .json(&json!({}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 401);
    let member = tc.member(&admin, "hostuser", "hostproj").await?;
    let r = tc.http.get(format!("{url}/host/status")).header("X-Auth-Token", &member).send().await?;
    assert_eq!(r.status().as_u16(), 403);
    let r = tc.http.get(format!("{url}/host/status")).header("X-Auth-Token", &admin).send().await?;
    let st: serde_json::Value = r.json().await?;
    assert_eq!(st["accelerator"], want, "{st}");
    // Bad calls are refused synchronously (no callback will come).
    let bad = |path: &str, headers: bool, body: serde_json::Value| {
        let mut r = tc.http.post(format!("{url}{path}")).header("X-Auth-Token", &admin);
        if headers {
            r = r.header("X-Task-Id", "t1").header("X-Task-Notify-Url", "http://127.0.0.1:9/tasks/t1");
        }
        r.json(&body).send()
    };
    assert_eq!(bad("/servers/g1/start", false, json!({})).await?.status().as_u16(), 400, "no task headers");
    assert_eq!(bad("/servers/g1/create", true, json!({"desc": 1})).await?.status().as_u16(), 400, "bad desc");
    assert_eq!(bad("/servers/..%2Fx/create", true, json!({})).await?.status().as_u16(), 400, "bad id");
    assert_eq!(bad("/servers/g1/fly", true, json!({})).await?.status().as_u16(), 404);
    assert_eq!(bad("/servers/unknown/stop", true, json!({})).await?.status().as_u16(), 404);
    assert_eq!(bad("/disks/s1/create/d1", true, json!({"disk": "x"})).await?.status().as_u16(), 400);

    // An image cached from glance: the agent's service token, glance's MD5.
    let data = std::fs::read(prerequisites()?)?;
    let image_id = tc.upload_image(&admin, "hostimg", "qcow2", data.clone()).await?;
    let (fake, cbs) = fake_services(vec![]).await?;
    let c = Client { http: reqwest::Client::new(), agent: url.clone(), fake, cbs, n: 0.into(), token: admin.clone() };
    let src = format!("{}/images/{image_id}?download=true", tc.glance_url());
    let cb = c
        .call(
            Method::POST,
            "/disks/image_cache",
            Some(json!({"disk": {"image_id": image_id, "storagecache_id": "sc", "src_url": src}})),
            Duration::from_secs(60),
        )
        .await?;
    let cached = std::fs::read(cb["path"].as_str().context("path")?)?;
    assert_eq!(hex::encode(Md5::digest(&cached)), hex::encode(Md5::digest(&data)));

    // The heartbeat keeps the host online and reports storage.
    test_harness::wait_for(Duration::from_secs(10), || async {
        let s =
            tc.call(Method::GET, &format!("{}/storages/{}", tc.region_url(), reg.storage_id), Some(&admin), None).await;
        s.is_ok_and(|s| s.body["storage"]["actual_capacity_used"].as_u64().unwrap_or(0) > 0)
    })
    .await?;
    built.agent.shutdown().await;
    drop(built);
    let _ = Arc::strong_count(&session);
    tc.stop().await
}
