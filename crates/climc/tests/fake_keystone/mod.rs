//! The climc binary against an in-process fake keystone + logger: login, name-to-id
//! lookups, output and exit codes. Real-server tests live beside this module.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

struct Fake {
    base: String,
    /// `METHOD path?query body` of every request but logins.
    seen: Mutex<Vec<String>>,
}

fn not_found(what: &str) -> Response {
    let body = json!({"code": 404, "class": "ResourceNotFoundError", "details": format!("{what} not found")});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

async fn handle(State(f): State<Arc<Fake>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    if path == "/v3/auth/tokens" && method == Method::POST {
        let req: Value = serde_json::from_slice(&body).unwrap_or_default();
        if req.pointer("/auth/identity/password/user/password") != Some(&json!("pw")) {
            let body = json!({"code": 401, "class": "InvalidCredentialError", "details": "wrong user or password"});
            return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        }
        let token = json!({"token": {
        "expires_at": "2099-01-01T00:00:00.000000Z",
        "user": {"id": "u0", "name": "sysadmin", "domain": {"id": "default", "name": "Default"}},
        "project": {"id": "p0", "name": "system", "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": "r0", "name": "admin"}],
        "catalog": [
            {"id": "s1", "name": "keystone", "type": "identity", "endpoints": [
                {"id": "e1", "interface": "internal", "region_id": "RegionOne", "url": format!("{}/v3", f.base)}]},
            {"id": "s2", "name": "logger", "type": "log", "endpoints": [
                {"id": "e2", "interface": "internal", "region_id": "RegionOne", "url": format!("{}/log", f.base)}]}
        ]}});
        return (StatusCode::CREATED, [("X-Subject-Token", "tok-1")], axum::Json(token)).into_response();
    }
    if headers.get("x-auth-token").and_then(|v| v.to_str().ok()) != Some("tok-1") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let line = format!("{method} {uri} {}", String::from_utf8_lossy(&body));
    f.seen.lock().map(|mut s| s.push(line.trim_end().to_string())).unwrap_or_default();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["v3", "users"]) => axum::Json(json!({"users": [
            {"id": "u1", "name": "alice", "domain": "Default", "enabled": true},
            {"id": "u2", "name": "bob", "domain": "Default", "enabled": false}], "total": 2}))
        .into_response(),
        ("GET", ["v3", plural @ ("users" | "projects" | "roles"), name]) => {
            let keyword = plural.trim_end_matches('s');
            if *name == "ghost" {
                return not_found(&format!("{keyword} {name}"));
            }
            axum::Json(json!({ keyword: {"id": format!("{keyword}-{name}"), "name": name}})).into_response()
        }
        ("PUT" | "DELETE", ["v3", "projects", _, "users", _, "roles", _]) => StatusCode::NO_CONTENT.into_response(),
        ("DELETE", ["v3", "users", "ghost"]) => not_found("user ghost"),
        ("DELETE", ["v3", "users", id]) => axum::Json(json!({"user": {"id": id}})).into_response(),
        ("GET", ["log", "actions"]) => axum::Json(json!({"actions": [
            {"id": 1, "obj_type": "user", "obj_name": "alice", "action": "create", "success": true}],
            "total": 1}))
        .into_response(),
        _ => not_found(&path),
    }
}

async fn start() -> Arc<Fake> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
    let fake = Arc::new(Fake { base: format!("http://{addr}"), seen: Mutex::new(Vec::new()) });
    let app = Router::new().fallback(handle).with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn climc(f: &Fake, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_climc"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OS_") || k.starts_with("CLIMC_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .env("OS_AUTH_URL", format!("{}/v3", f.base))
        .env("OS_USERNAME", "sysadmin")
        .env("OS_PASSWORD", "pw")
        .env("OS_PROJECT_NAME", "system")
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("run climc: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn seen(f: &Fake) -> Vec<String> {
    f.seen.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default()
}

#[tokio::test]
async fn list_show_and_errors() {
    let f = start().await;
    let r = climc(&f, &["user-list"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("| u1 | alice | Default | true    |"), "{}", r.stdout);
    assert!(r.stdout.ends_with("total: 2\n"), "{}", r.stdout);

    let r = climc(&f, &["user-list", "--debug", "--limit", "5"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("DEBUG GET {}/v3/users?limit=5 -> 200 OK (", f.base)), "{}", r.stderr);
    assert!(r.stderr.contains("DEBUG POST"), "{}", r.stderr);
    assert!(!r.stderr.contains("\"pw\"") && !r.stderr.contains("tok-1"), "secrets in debug output: {}", r.stderr);

    let r = climc(&f, &["user-list", "--output-format", "json"]).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_default();
    assert_eq!(v["data"][1]["name"], "bob");

    let r = climc(&f, &["user-show", "ghost"]).await;
    assert_eq!((r.code, r.stderr.as_str()), (1, "Error: ResourceNotFoundError (404): user ghost not found\n"));

    let r = climc(&f, &["user-list", "--os-password", "wrong"]).await;
    assert_eq!((r.code, r.stderr.as_str()), (1, "Error: InvalidCredentialError (401): wrong user or password\n"));

    let r = climc(&f, &["user-list", "--no-such-flag"]).await;
    assert_eq!(r.code, 2);
    let r = climc(&f, &["service-config-edit", "x", "--set", "novalue"]).await;
    assert_eq!((r.code, r.stderr.as_str()), (2, "Error: \"novalue\" is not key=value\n"));
}

#[tokio::test]
async fn names_are_resolved_before_grants() {
    let f = start().await;
    let r = climc(&f, &["project-add-user", "demo", "alice", "member"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert_eq!(
        seen(&f),
        [
            "GET /v3/projects/demo",
            "GET /v3/users/alice",
            "GET /v3/roles/member",
            "PUT /v3/projects/project-demo/users/user-alice/roles/role-member",
        ]
    );
    let r = climc(&f, &["project-add-user", "demo", "ghost", "member"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr, "Error: ResourceNotFoundError (404): user ghost not found\n");
}

#[tokio::test]
async fn delete_goes_on_after_a_failure_and_logger_is_found_in_the_catalog() {
    let f = start().await;
    let r = climc(&f, &["user-delete", "u1", "ghost", "a/b"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("Error: ResourceNotFoundError (404): user ghost not found\n"), "{}", r.stderr);
    assert!(r.stdout.contains("| id    | u1    |"), "{}", r.stdout);
    assert!(r.stderr.ends_with("Error: 1 of 3 calls failed\n"), "{}", r.stderr);
    assert_eq!(seen(&f), ["DELETE /v3/users/u1", "DELETE /v3/users/ghost", "DELETE /v3/users/a%2Fb"]);

    let r = climc(&f, &["action-list", "--obj-type", "user", "--output-format", "yaml"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("obj_name: alice"), "{}", r.stdout);
    assert_eq!(seen(&f), ["GET /log/actions?obj_type=user"]);
}
