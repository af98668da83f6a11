//! mcclient against an in-process fake keystone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use mcclient::modules::identity::{PROJECTS, ROLES, USERS};
use mcclient::{AuthParams, Client, Error, ListParams};
use serde_json::{Value, json};

struct Fake {
    base: String,
    logins: AtomicUsize,
    /// `expires_at` handed out by the next login.
    expires_at: std::sync::Mutex<String>,
}

type S = State<Arc<Fake>>;

fn token_body(f: &Fake) -> Value {
    let expires_at = f.expires_at.lock().map(|e| e.clone()).unwrap_or_default();
    json!({"token": {
        "expires_at": expires_at,
        "user": {"id": "u-admin", "name": "sysadmin", "domain": {"id": "default", "name": "Default"}},
        "project": {"id": "p-system", "name": "system", "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": "r-admin", "name": "admin"}],
        "catalog": [{"id": "s1", "name": "keystone", "type": "identity", "endpoints": [
            {"id": "e1", "interface": "internal", "region": "RegionOne", "region_id": "RegionOne",
             "url": format!("{}/v3", f.base)}]}]
    }})
}

async fn login(State(f): S, Json(body): Json<Value>) -> Response {
    let pw = body.pointer("/auth/identity/password/user/password").and_then(Value::as_str);
    if pw != Some("secret") || body.pointer("/auth/context/source") != Some(&json!("cli")) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"code": 401, "class": "InvalidCredentialError", "details": "wrong password"})),
        )
            .into_response();
    }
    let n = f.logins.fetch_add(1, Ordering::SeqCst) + 1;
    let mut h = HeaderMap::new();
    h.insert("X-Subject-Token", format!("token-{n}").parse().unwrap_or_else(|_| unreachable!()));
    (StatusCode::CREATED, h, Json(token_body(&f))).into_response()
}

fn authed(h: &HeaderMap) -> bool {
    h.get("x-auth-token").and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("token-"))
}

async fn verify(State(f): S, h: HeaderMap) -> Response {
    match h.get("x-subject-token").and_then(|v| v.to_str().ok()) {
        Some(t) if authed(&h) && t.starts_with("token-") => Json(token_body(&f)).into_response(),
        _ => {
            (StatusCode::NOT_FOUND, Json(json!({"code": 404, "class": "NotFoundError", "details": "token not found"})))
                .into_response()
        }
    }
}

async fn list_users(h: HeaderMap) -> Response {
    if !authed(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({"users": [{"id": "u1", "name": "alice"}], "total": 1, "limit": 20, "offset": 0})).into_response()
}

async fn get_user(Path(id): Path<String>) -> Response {
    if id == "alice" {
        return Json(json!({"user": {"id": "u1", "name": "alice"}})).into_response();
    }
    (
        StatusCode::NOT_FOUND,
        Json(json!({"code": 404, "class": "ResourceNotFoundError", "details": format!("user {id} not found")})),
    )
        .into_response()
}

async fn grant(Path((p, u, r)): Path<(String, String, String)>) -> Json<Value> {
    Json(json!({"granted": [p, u, r]}))
}

async fn start(expires_at: &str) -> Arc<Fake> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
    let fake = Arc::new(Fake {
        base: format!("http://{addr}"),
        logins: AtomicUsize::new(0),
        expires_at: std::sync::Mutex::new(expires_at.to_string()),
    });
    let app = Router::new()
        .route("/v3/auth/tokens", get(verify).post(login))
        .route("/v3/users", get(list_users))
        .route("/v3/users/{id}", get(get_user))
        .route("/v3/projects/{p}/users/{u}/roles/{r}", put(grant))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

fn params() -> AuthParams {
    AuthParams::password("sysadmin", "Default", "secret").with_project("system", "Default")
}

#[tokio::test]
async fn login_list_get_and_errors() {
    let fake = start("2099-01-01T00:00:00.000000Z").await;
    let client = Client::new(format!("{}/v3", fake.base), Duration::from_secs(5), false);
    let s = client.authenticate(&params()).await.unwrap_or_else(|e| panic!("login: {e}"));
    assert_eq!(s.token_id(), "token-1");
    assert_eq!(s.project_name().as_deref(), Some("system"));
    assert_eq!(s.roles(), vec!["admin"]);

    let list = USERS.list(&s, &ListParams::default()).await.unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!((list.total, list.data[0]["name"].as_str()), (1, Some("alice")));

    let alice = USERS.get(&s, "alice", &[]).await.unwrap_or_else(|e| panic!("get: {e}"));
    assert_eq!(alice["id"], "u1");
    assert_eq!(USERS.get_id(&s, "alice").await.ok().as_deref(), Some("u1"));

    let err = USERS.get(&s, "bob", &[]).await.err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("ResourceNotFoundError (404): user bob not found"));

    let granted = ROLES
        .put_in_contexts(&s, "r1", &[(&PROJECTS, "p1"), (&USERS, "u1")], None)
        .await
        .unwrap_or_else(|e| panic!("grant: {e}"));
    assert_eq!(granted, json!({"granted": ["p1", "u1", "r1"]}));

    let token = client.verify_token(&s.token_id(), "token-1").await.unwrap_or_else(|e| panic!("verify: {e}"));
    assert_eq!(token["user"]["name"], "sysadmin");
    let bad = client.verify_token(&s.token_id(), "forged").await;
    assert!(matches!(bad, Err(Error::Http { status: 404, .. })));

    let wrong = client.authenticate(&AuthParams::password("sysadmin", "Default", "nope")).await;
    assert_eq!(wrong.err().map(|e| e.to_string()).as_deref(), Some("InvalidCredentialError (401): wrong password"));
}

#[tokio::test]
async fn renews_token_near_expiry() {
    let soon = chrono::Utc::now() + chrono::Duration::seconds(60);
    let fake = start(&soon.to_rfc3339()).await;
    let client = Client::new(format!("{}/v3", fake.base), Duration::from_secs(5), false);
    let s = client.authenticate(&params()).await.unwrap_or_else(|e| panic!("login: {e}"));
    if let Ok(mut e) = fake.expires_at.lock() {
        *e = "2099-01-01T00:00:00Z".to_string();
    }
    let clone = s.with_region("RegionOne");
    USERS.list(&clone, &ListParams::default()).await.unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(fake.logins.load(Ordering::SeqCst), 2);
    assert_eq!(s.token_id(), "token-2", "clones share the renewed token");
    USERS.list(&s, &ListParams::default()).await.unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(fake.logins.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn transport_error_is_readable() {
    let client = Client::new("http://127.0.0.1:1/v3", Duration::from_secs(2), false);
    let err = client.authenticate(&params()).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("127.0.0.1:1"), "{err}");
}
