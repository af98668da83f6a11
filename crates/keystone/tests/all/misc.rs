//! What every service answers besides its API: `/metrics`, `/version`, request ids.

use anyhow::Result;

use crate::common::*;

#[tokio::test]
async fn metrics_version_and_request_ids() -> Result<()> {
    let (tc, admin) = start().await?;
    get(&tc, "/projects", &admin).await?;
    actions(&tc, &admin, "limit=1").await?;
    for (service, base) in [("keystone", tc.url("keystone")), ("logger", tc.url("logger"))] {
        let resp = tc.http.get(format!("{base}/metrics")).send().await?;
        assert_eq!(resp.status(), StatusCode::OK);
        let text = resp.text().await?;
        assert!(text.contains("# TYPE http_requests_total counter"), "{text}");
        assert!(text.contains(&format!("http_requests_total{{service=\"{service}\"")), "{text}");
        let resp = tc.http.get(format!("{base}/version")).send().await?;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.text().await?, env!("CARGO_PKG_VERSION"));
    }
    let text = tc.http.get(format!("{}/metrics", tc.url("keystone"))).send().await?.text().await?;
    assert!(text.contains("route=\"/v3/{plural}\",status=\"200\""), "{text}");

    let r = send(
        tc.http
            .get(format!("{}/projects", tc.auth_url))
            .header("X-Auth-Token", &admin)
            .header("X-Request-Id", "req-abc-123"),
    )
    .await?;
    assert_eq!(r.header("x-request-id").as_deref(), Some("req-abc-123"));
    let r = send(tc.http.get(format!("{}/projects", tc.auth_url)).header("X-Request-Id", "req-unauth")).await?;
    assert_eq!((r.status, r.header("x-request-id").as_deref()), (StatusCode::UNAUTHORIZED, Some("req-unauth")));
    let r = tc.ks(Method::GET, "/projects", &admin, None).await?;
    assert!(r.header("x-request-id").is_some_and(|id| !id.is_empty()));
    let long = "x".repeat(65);
    let r = send(
        tc.http.get(format!("{}/projects", tc.auth_url)).header("X-Auth-Token", &admin).header("X-Request-Id", &long),
    )
    .await?;
    assert!(r.header("x-request-id").is_some_and(|id| id != long && !id.is_empty()));
    let r = send(
        tc.http
            .get(format!("{}/actions?limit=1", tc.url("logger")))
            .header("X-Auth-Token", &admin)
            .header("X-Request-Id", "req-logger"),
    )
    .await?;
    assert_eq!((r.status, r.header("x-request-id").as_deref()), (StatusCode::OK, Some("req-logger")));
    tc.stop().await
}
