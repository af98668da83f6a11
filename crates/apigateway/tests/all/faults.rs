//! A service down behind the gateway: a quick 503 with a clear body, never a hang.

use std::time::{Duration, Instant};

use anyhow::Result;
use apigateway::{ApigatewayConfig, Gateway, router};
use cloudcommon::config::CommonOptions;

use crate::common::*;

async fn serve(cfg: ApigatewayConfig) -> Result<(String, std::sync::Arc<Gateway>, tokio::task::JoinHandle<()>)> {
    let gw = Gateway::new(cfg)?;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", l.local_addr()?);
    let app = router(gw.clone());
    let h = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok((url, gw, h))
}

fn cfg(auth_url: &str, dir: &std::path::Path) -> ApigatewayConfig {
    ApigatewayConfig {
        common: CommonOptions { auth_url: auth_url.into(), data_dir: dir.into(), ..CommonOptions::default() },
        ..Default::default()
    }
}

#[tokio::test]
async fn a_service_down_is_a_503() -> Result<()> {
    let (tc, admin) = start().await?;
    // A closed port: nothing listens on port 9 (discard) here.
    let dead = "http://127.0.0.1:9";
    let (url, gw, h) = serve(cfg(&tc.auth_url, &tc.dir.join("gw2"))).await?;
    gw.catalog.seed(
        &json!([{"type": "compute_v2", "endpoints": [{"interface": "internal", "region_id": "region0", "url": dead}]}]),
    );
    let started = Instant::now();
    let r = tc.call(Method::GET, &format!("{url}/api/v2/servers"), Some(&admin), None).await?;
    assert_error(&r, 503, "ServiceUnavailableError");
    assert!(r.body["details"].as_str().unwrap_or_default().contains("compute_v2"), "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(10));
    h.abort();

    // keystone down: login answers 503 too.
    let (url, _gw, h) = serve(cfg(&format!("{dead}/v3"), &tc.dir.join("gw3"))).await?;
    let body = json!({"username": "sysadmin", "password": tc.admin_password});
    let r = tc.call(Method::POST, &format!("{url}/api/v1/auth/login"), None, Some(body)).await?;
    assert_error(&r, 503, "ServiceUnavailableError");

    // No dashboard built: / still answers, with how to build it.
    let resp = tc.http.get(format!("{url}/")).send().await?;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await?.contains("make web"));
    h.abort();
    tc.stop().await
}
