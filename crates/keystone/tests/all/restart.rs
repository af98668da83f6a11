//! What keystone persists: objects, passwords and tokens survive a restart of every service.

use anyhow::Result;

use crate::common::*;

#[tokio::test]
async fn data_and_tokens_survive_a_restart() -> Result<()> {
    let (mut tc, admin) = start().await?;
    let kept = create_project(&tc, &admin, "kept").await?;
    post(&tc, "/projects/kept/metadata", &admin, json!({"tier": "gold"})).await?;
    create_user(&tc, &admin, "keeper", "keeper-pw", Some(("kept", "member"))).await?;
    let keeper = tc.login("keeper", "keeper-pw", Some("kept")).await?;
    let revoked = tc.login("keeper", "keeper-pw", None).await?;
    let r = send(
        tc.http
            .delete(format!("{}/auth/tokens", tc.auth_url))
            .header("X-Auth-Token", &admin)
            .header("X-Subject-Token", &revoked),
    )
    .await?;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let old_auth_url = tc.auth_url.clone();

    tc.restart().await?;
    assert_ne!(tc.auth_url, old_auth_url, "a restart listens on new ports");

    // Tokens issued before the restart still work, on keystone and on the logger.
    let v = get(&tc, "/projects/kept", &admin).await?;
    assert_eq!(v["project"]["id"], kept.as_str());
    assert_eq!(get(&tc, "/projects/kept/metadata", &admin).await?["metadata"]["tier"], "gold");
    let r = validate(&tc, &keeper, &keeper).await?;
    assert_eq!((r.status, r.body["token"]["project"]["name"].as_str()), (StatusCode::OK, Some("kept")));
    actions(&tc, &keeper, "limit=1").await?;
    actions(&tc, &admin, "limit=1").await?;
    assert_error(&tc.ks(Method::GET, "/projects", &revoked, None).await?, 401, "UnauthorizedError");

    // Passwords too, and the catalog follows the new ports.
    tc.admin_token().await?;
    let t = issue(&tc, password_auth("keeper", "keeper-pw", Some(project_scope("kept")))).await?;
    assert_eq!(t.status, StatusCode::CREATED);
    let urls: Vec<&str> = t.body["token"]["catalog"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["type"] == "identity")
        .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
        .filter_map(|e| e["url"].as_str())
        .collect();
    assert!(!urls.is_empty() && urls.iter().all(|u| *u == tc.auth_url), "{urls:?}");
    // Nothing was created twice by the second bootstrap.
    let roles = get(&tc, "/roles?filter=name.equals(admin)", &admin).await?;
    assert_eq!(roles["total"], 1);
    let eps = get(&tc, "/endpoints", &admin).await?;
    // keystone, logger, glance, region (compute_v2) and its `compute` alias, scheduler, webconsole,
    // each public, internal and admin.
    assert_eq!(eps["total"], 21, "{eps}");
    tc.stop().await
}
