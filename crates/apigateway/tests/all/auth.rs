//! Login, the user's profile, project switch, logout; bad passwords, bad cookies, CSRF.

use anyhow::{Context, Result};
use apigateway::session::{Codec, SessionData, now_unix};

use crate::common::*;

#[tokio::test]
async fn login_user_switch_logout() -> Result<()> {
    let (tc, admin) = start().await?;
    tc.member(&admin, "alice", "proj-a").await?;
    let r = tc.ks(Method::POST, "/projects", &admin, Some(json!({"project": {"name": "proj-b"}}))).await?;
    assert!(r.status.is_success(), "{}", r.body);
    let pb = r.body["project"]["id"].as_str().context("id")?.to_string();
    let alice =
        tc.ks(Method::GET, "/users/alice", &admin, None).await?.body["user"]["id"].as_str().context("uid")?.to_string();
    let member = tc.ks(Method::GET, "/roles/member", &admin, None).await?.body["role"]["id"]
        .as_str()
        .context("rid")?
        .to_string();
    let r = tc.ks(Method::PUT, &format!("/projects/{pb}/users/{alice}/roles/{member}"), &admin, None).await?;
    assert!(r.status.is_success(), "{}", r.body);

    let mut b = Browser::new(&tc);
    let r = b.login("alice", "alice-Pw-1234", None).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let cookies: Vec<String> =
        r.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
    let session = cookies.iter().find(|c| c.starts_with("cloudpods_session=")).context("session cookie")?;
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict") && session.contains("Path=/"));
    let csrf = cookies.iter().find(|c| c.starts_with("cloudpods_csrf=")).context("csrf cookie")?;
    assert!(!csrf.contains("HttpOnly"), "the dashboard must read the csrf cookie");
    assert_eq!(r.body["name"], "alice");
    assert_eq!(r.body["csrf_token"].as_str(), b.csrf().as_deref());
    let mut projects: Vec<&str> =
        r.body["projects"].as_array().context("projects")?.iter().filter_map(|p| p["name"].as_str()).collect();
    projects.sort();
    assert_eq!(projects, ["proj-a", "proj-b"]);
    assert_eq!(r.body["roles"], json!(["member"]));
    assert_eq!(r.body["is_system_admin"], false);

    let me = b.ok(Method::GET, "/api/v1/auth/user", None).await?;
    assert_eq!(me["name"], "alice");
    let first = me["project"]["name"].as_str().context("project")?.to_string();
    let other = if first == "proj-a" { "proj-b" } else { "proj-a" };

    // Switch: a new token scoped to the other project; the old session ends.
    let old = b.cookies.clone();
    let sw = b.ok(Method::POST, "/api/v1/auth/switch", Some(json!({"project": other}))).await?;
    assert_eq!(sw["project"]["name"], other);
    assert_eq!(b.ok(Method::GET, "/api/v1/auth/user", None).await?["project"]["name"], other);
    assert_ne!(old.get("cloudpods_session"), b.cookies.get("cloudpods_session"));
    let mut stale = Browser::new(&tc);
    stale.cookies = old;
    assert_error(&stale.send(Method::GET, "/api/v1/auth/user", None).await?, 401, "UnauthorizedError");
    let r = b.send(Method::POST, "/api/v1/auth/switch", Some(json!({"project": "system"}))).await?;
    assert_error(&r, 404, "ResourceNotFoundError");

    // Logout revokes the token: the same cookie no longer works anywhere.
    let saved = b.cookies.clone();
    let r = b.send(Method::POST, "/api/v1/auth/logout", None).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(b.cookies.is_empty(), "cookies cleared: {:?}", b.cookies);
    let mut replay = Browser::new(&tc);
    replay.cookies = saved;
    assert_error(&replay.send(Method::GET, "/api/v1/auth/user", None).await?, 401, "UnauthorizedError");
    let r = replay.send(Method::GET, "/api/v2/networks", None).await?;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_error_body(&r);
    tc.stop().await
}

#[tokio::test]
async fn bad_passwords_cookies_and_csrf() -> Result<()> {
    let (tc, admin) = start().await?;
    let mut b = Browser::new(&tc);

    // Wrong password: 401 with a Cloudpods body, no cookie.
    let r = b.login("sysadmin", "wrong-password", None).await?;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_error_body(&r);
    assert!(b.cookies.is_empty());
    let r = b.send_with(Method::POST, "/api/v1/auth/login", Some(json!({"username": "sysadmin"})), None).await?;
    assert_error(&r, 400, "InputParameterError");
    let form = b
        .builder(Method::POST, "/api/v1/auth/login")
        .header("Content-Type", "text/plain")
        .body(json!({"username": "sysadmin", "password": tc.admin_password}).to_string());
    let r = b.finish(form, None).await?;
    assert_error(&r, 400, "BadRequestError");
    assert!(b.cookies.is_empty(), "a cross-site form cannot log in");
    let r = b.login("nobody", "whatever", None).await?;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);

    // Not logged in, a garbage cookie, an expired one.
    assert_error(&b.send(Method::GET, "/api/v2/networks", None).await?, 401, "UnauthorizedError");
    b.cookies.insert("cloudpods_session".into(), "garbage".into());
    let r = b.send(Method::GET, "/api/v2/networks", None).await?;
    assert_error(&r, 401, "UnauthorizedError");
    assert!(r.body["details"].as_str().unwrap_or_default().contains("log in again"), "{}", r.body);
    let key = std::fs::read_to_string(tc.dir.join("apigateway-session.key"))?;
    let key: [u8; 32] = hex_decode(key.trim()).try_into().map_err(|_| anyhow::anyhow!("key length"))?;
    let expired = SessionData::new(admin.clone(), now_unix() - 5, "sysadmin".into());
    b.cookies.insert("cloudpods_session".into(), Codec::new(&key).seal(&expired)?);
    let r = b.send(Method::GET, "/api/v2/networks", None).await?;
    assert_error(&r, 401, "UnauthorizedError");
    assert!(r.body["details"].as_str().unwrap_or_default().contains("expired"), "{}", r.body);

    // CSRF: a cookie-authenticated write needs the session's X-CSRF-Token.
    b.cookies.clear();
    b.must_login("sysadmin", &tc.admin_password).await?;
    let net = json!({"network": {"name": "n-csrf", "wire": "bcast0", "guest_ip_start": "10.9.0.2",
        "guest_ip_end": "10.9.0.9", "guest_ip_mask": 24, "guest_gateway": "10.9.0.1"}});
    let r = b.send_with(Method::POST, "/api/v2/networks", Some(net.clone()), None).await?;
    assert_error(&r, 403, "ForbiddenError");
    let r = b.send_with(Method::POST, "/api/v2/networks", Some(net.clone()), Some("0123456789abcdef")).await?;
    assert_error(&r, 403, "ForbiddenError");
    // A forged csrf cookie matching the forged header does not help: the value is sealed in the session.
    b.cookies.insert("cloudpods_csrf".into(), "0123456789abcdef".into());
    let r = b.send(Method::POST, "/api/v2/networks", Some(net.clone())).await?;
    assert_error(&r, 403, "ForbiddenError");
    assert_error(&b.send(Method::GET, "/api/v2/networks/n-csrf", None).await?, 404, "ResourceNotFoundError");
    let r = b.send_with(Method::POST, "/api/v1/auth/logout", None, None).await?;
    assert_error(&r, 403, "ForbiddenError");

    // API clients with a bearer token need no CSRF header.
    let r = bearer(&tc, Method::POST, "/api/v2/networks", &admin, Some(net)).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["name"], "n-csrf");
    tc.stop().await
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).filter_map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}
