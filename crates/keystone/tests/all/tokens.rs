//! Tokens: issue in every scope, re-scope, validate, revoke (on keystone and on the logger),
//! failed logins and lockout, the `/v3/auth/*` helpers and the version documents.

use anyhow::{Context, Result};

use crate::common::*;

fn role_names(token: &Value) -> Vec<&str> {
    token["token"]["roles"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default()
}

fn catalog_types(token: &Value) -> Vec<&str> {
    token["token"]["catalog"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["type"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn password_login_in_every_scope() -> Result<()> {
    let (tc, admin) = start().await?;
    let pw = tc.admin_password.clone();

    let r = issue(&tc, password_auth("sysadmin", &pw, Some(project_scope("system")))).await?;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.header("x-subject-token").is_some_and(|t| t.len() >= 32));
    let t = &r.body["token"];
    assert_eq!(t["project"]["name"], "system");
    assert_eq!(t["project"]["domain"]["id"], "default");
    assert_eq!(t["user"]["name"], "sysadmin");
    assert_eq!(t["methods"], json!(["password"]));
    assert!(t["expires_at"].as_str().is_some_and(|e| e > t["issued_at"].as_str().unwrap_or_default()));
    assert!(role_names(&r.body).contains(&"admin"), "{}", r.body);
    let types = catalog_types(&r.body);
    assert!(types.contains(&"identity") && types.contains(&"log"), "{types:?}");

    // A domain-scoped token needs a role on the domain.
    let r = issue(&tc, password_auth("sysadmin", &pw, Some(json!({"domain": {"name": "Default"}})))).await?;
    assert_error(&r, 401, "UnauthorizedError");
    let r = tc.ks(Method::PUT, "/domains/default/users/sysadmin/roles/admin", &admin, None).await?;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = issue(&tc, password_auth("sysadmin", &pw, Some(json!({"domain": {"id": "default"}})))).await?;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["token"]["domain"]["name"], "Default");
    assert!(r.body["token"].get("project").is_none(), "{}", r.body);
    assert_eq!(role_names(&r.body), ["admin"]);
    assert!(!catalog_types(&r.body).is_empty());

    let r = issue(&tc, password_auth("sysadmin", &pw, Some(json!({"system": {"all": true}})))).await?;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["token"]["system"], json!({"all": true}));
    assert_eq!(role_names(&r.body), ["admin"]);
    assert!(!catalog_types(&r.body).is_empty());

    let r = issue(&tc, password_auth("sysadmin", &pw, None)).await?;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let t = &r.body["token"];
    assert!(t.get("catalog").is_none() && t.get("roles").is_none() && t.get("project").is_none(), "{t}");

    // A scope on something that does not exist.
    let r = issue(&tc, password_auth("sysadmin", &pw, Some(project_scope("nosuch")))).await?;
    assert_error(&r, 401, "UnauthorizedError");
    tc.stop().await
}

#[tokio::test]
async fn rescope_validate_and_revoke() -> Result<()> {
    let (tc, admin) = start().await?;
    create_project(&tc, &admin, "demo").await?;
    create_project(&tc, &admin, "demo2").await?;
    create_user(&tc, &admin, "alice", "alice-pw", Some(("demo", "member"))).await?;
    create_user(&tc, &admin, "bob", "bob-pw1", Some(("demo2", "member"))).await?;

    // An unscoped token becomes a project token through the token method.
    let unscoped = tc.login("alice", "alice-pw", None).await?;
    let r = issue(
        &tc,
        json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}}, "scope": project_scope("demo")}}),
    )
    .await?;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["token"]["methods"], json!(["token"]));
    assert_eq!(r.body["token"]["project"]["name"], "demo");
    assert_eq!(role_names(&r.body), ["member"]);
    let alice = r.header("x-subject-token").context("no token")?;
    // Re-scoping to a project alice has no role on fails.
    let r = issue(
        &tc,
        json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}}, "scope": project_scope("demo2")}}),
    )
    .await?;
    assert_error(&r, 401, "UnauthorizedError");
    let bob = tc.login("bob", "bob-pw1", Some("demo2")).await?;

    // Validation: oneself, an administrator anyone, a member nobody else.
    let r = validate(&tc, &alice, &alice).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["token"]["user"]["name"], "alice");
    assert_eq!(r.header("x-subject-token").as_deref(), Some(alice.as_str()));
    let r = validate(&tc, &admin, &alice).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["token"]["project"]["name"], "demo");
    let r = validate(&tc, &alice, &bob).await?;
    assert_error(&r, 403, "ForbiddenError");
    let r = validate(&tc, &admin, "not-a-token").await?;
    assert_error(&r, 404, "ResourceNotFoundError");
    let r = send(
        tc.http
            .head(format!("{}/auth/tokens", tc.auth_url))
            .header("X-Auth-Token", &admin)
            .header("X-Subject-Token", &bob),
    )
    .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, Value::Null);

    // The logger knows alice's token (and caches it) before it is revoked.
    assert!(actions(&tc, &alice, "limit=1").await.is_ok());
    let r = send(
        tc.http
            .delete(format!("{}/auth/tokens", tc.auth_url))
            .header("X-Auth-Token", &alice)
            .header("X-Subject-Token", &alice),
    )
    .await?;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = validate(&tc, &alice, &alice).await?;
    assert_error(&r, 401, "UnauthorizedError");
    let r = tc.ks(Method::GET, "/projects", &alice, None).await?;
    assert_error(&r, 401, "UnauthorizedError");
    let r = validate(&tc, &admin, &alice).await?;
    assert_error(&r, 404, "ResourceNotFoundError");
    let logger = format!("{}/actions?limit=1", tc.url("logger"));
    let (tc_ref, logger, alice_ref) = (&tc, &logger, &alice);
    wait_for(CEILING, move || async move {
        tc_ref
            .call(Method::GET, logger, Some(alice_ref), None)
            .await
            .is_ok_and(|r| r.status == StatusCode::UNAUTHORIZED)
    })
    .await
    .context("the logger still accepts a revoked token")?;
    // bob's token, revoked by an administrator, stops working too; alice may not revoke it.
    let r = send(
        tc.http
            .delete(format!("{}/auth/tokens", tc.auth_url))
            .header("X-Auth-Token", &admin)
            .header("X-Subject-Token", &bob),
    )
    .await?;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(tc.ks(Method::GET, "/projects", &bob, None).await?.status, StatusCode::UNAUTHORIZED);
    tc.stop().await
}

#[tokio::test]
async fn wrong_passwords_lock_the_account() -> Result<()> {
    let (tc, admin) = start().await?;
    let carol = create_user(&tc, &admin, "carol", "carol-pw", None).await?;

    let r = issue(&tc, password_auth("carol", "wrong-pw", None)).await?;
    assert_error(&r, 401, "InvalidCredentialError");
    // An unknown user gets the same answer as a wrong password.
    let r = issue(&tc, password_auth("nobody", "wrong-pw", None)).await?;
    assert_error(&r, 401, "InvalidCredentialError");
    assert!(tc.login("carol", "carol-pw", None).await.is_ok(), "a success resets the count");

    for _ in 0..5 {
        let r = issue(&tc, password_auth("carol", "wrong-pw", None)).await?;
        assert_error(&r, 401, "InvalidCredentialError");
    }
    let r = issue(&tc, password_auth("carol", "carol-pw", None)).await?;
    assert_error(&r, 401, "UnauthorizedError");
    assert!(r.body["details"].as_str().unwrap_or_default().contains("locked"), "{}", r.body);
    let view = get(&tc, &format!("/users/{carol}"), &admin).await?;
    assert_eq!(view["user"]["is_locked"], true, "{view}");

    let r = tc.ks(Method::POST, &format!("/users/{carol}/unlock"), &admin, None).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["user"]["name"], "carol");
    assert!(r.body["user"].get("locked_until").is_none(), "hidden state is shown: {}", r.body);
    tc.login("carol", "carol-pw", None).await?;

    // Locked again; an administrator's password reset also unlocks.
    for _ in 0..5 {
        issue(&tc, password_auth("carol", "wrong-pw", None)).await?;
    }
    assert_error(&issue(&tc, password_auth("carol", "carol-pw", None)).await?, 401, "UnauthorizedError");
    put(&tc, &format!("/users/{carol}"), &admin, Some(json!({"user": {"password": "carol-pw2"}}))).await?;
    tc.login("carol", "carol-pw2", None).await?;
    let view = get(&tc, "/users/carol", &admin).await?;
    assert_eq!(view["user"]["is_locked"], false, "{view}");
    tc.stop().await
}

#[tokio::test]
async fn auth_helpers_catalog_projects_system_policies() -> Result<()> {
    let (tc, admin) = start().await?;
    create_project(&tc, &admin, "demo").await?;
    create_project(&tc, &admin, "other").await?;
    create_user(&tc, &admin, "alice", "alice-pw", Some(("demo", "member"))).await?;
    let alice = tc.login("alice", "alice-pw", Some("demo")).await?;

    let cat = get(&tc, "/auth/catalog", &alice).await?;
    let identity = cat["catalog"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["type"] == "identity"))
        .context("no identity service")?;
    let urls: Vec<&str> =
        identity["endpoints"].as_array().into_iter().flatten().filter_map(|e| e["url"].as_str()).collect();
    assert!(urls.contains(&tc.auth_url.as_str()), "{urls:?}");

    let projects = get(&tc, "/auth/projects", &alice).await?;
    assert_eq!(names(&projects, "projects"), ["demo"]);
    let projects = get(&tc, "/auth/projects", &admin).await?;
    assert_eq!(names(&projects, "projects"), ["system"]);

    assert_eq!(get(&tc, "/auth/system", &alice).await?["system"], json!([]));
    assert_eq!(get(&tc, "/auth/system", &admin).await?["system"], json!([{"all": true}]));

    let p = get(&tc, "/auth/policies", &alice).await?;
    let project_policies: Vec<&str> =
        p["policies"]["project"].as_array().into_iter().flatten().filter_map(|x| x["name"].as_str()).collect();
    assert_eq!(project_policies, ["project-editor"]);
    assert_eq!(p["policies"]["system"], json!([]));
    let p = get(&tc, "/auth/policies", &admin).await?;
    assert!(p["policies"]["system"].as_array().is_some_and(|a| a.iter().any(|x| x["name"] == "sysadmin")), "{p}");
    // The policies also ride in the token's validation body, by name.
    let v = validate(&tc, &alice, &alice).await?;
    assert_eq!(v.body["token"]["policies"]["project"], json!(["project-editor"]));
    tc.stop().await
}

#[tokio::test]
async fn version_documents_and_missing_tokens() -> Result<()> {
    let (tc, _admin) = start().await?;
    let r = tc.call(Method::GET, &tc.auth_url, None, None).await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"]["id"], "v3.14");
    assert_eq!(r.body["version"]["status"], "stable");
    let base = tc.url("keystone");
    let r = tc.call(Method::GET, &format!("{base}/"), None, None).await?;
    assert_eq!(r.status, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(r.body["versions"]["values"][0]["id"], "v3.14");

    let r = tc.call(Method::GET, &format!("{}/users", tc.auth_url), None, None).await?;
    assert_error(&r, 401, "UnauthorizedError");
    let r = tc.call(Method::GET, &format!("{}/users", tc.auth_url), Some("bogus"), None).await?;
    assert_error(&r, 401, "UnauthorizedError");
    let r = tc.call(Method::GET, &format!("{}/actions", tc.url("logger")), None, None).await?;
    assert_error(&r, 401, "UnauthorizedError");
    let r = tc.call(Method::GET, &format!("{}/actions", tc.url("logger")), Some("bogus"), None).await?;
    assert_error(&r, 401, "UnauthorizedError");
    tc.stop().await
}
