//! Helpers shared by keystone's integration tests: requests that must succeed, error
//! checks, and the users and projects most tests need.

use std::time::Duration;

use anyhow::{Context, Result, bail};
pub use reqwest::{Method, StatusCode};
pub use serde_json::{Value, json};
pub use test_harness::{Resp, TestCloud, assert_error, assert_error_body, wait_for};

/// Longest time a test waits for something asynchronous (action records, revocations).
pub const CEILING: Duration = Duration::from_secs(15);

/// A fresh cloud and the sysadmin's token (scoped to project system).
pub async fn start() -> Result<(TestCloud, String)> {
    let tc = TestCloud::start().await?;
    let admin = tc.admin_token().await?;
    Ok((tc, admin))
}

/// `method <keystone>/v3<path>` that must answer 2xx; returns the body.
pub async fn ok(tc: &TestCloud, method: Method, path: &str, token: &str, body: Option<Value>) -> Result<Value> {
    let r = tc.ks(method.clone(), path, token, body).await?;
    if !r.status.is_success() {
        bail!("{method} {path}: {} {}", r.status, r.body);
    }
    Ok(r.body)
}

pub async fn get(tc: &TestCloud, path: &str, token: &str) -> Result<Value> {
    ok(tc, Method::GET, path, token, None).await
}

pub async fn post(tc: &TestCloud, path: &str, token: &str, body: Value) -> Result<Value> {
    ok(tc, Method::POST, path, token, Some(body)).await
}

pub async fn put(tc: &TestCloud, path: &str, token: &str, body: Option<Value>) -> Result<Value> {
    ok(tc, Method::PUT, path, token, body).await
}

/// The id of the object under `keyword` in a create or show answer.
pub fn id_of(body: &Value, keyword: &str) -> Result<String> {
    body[keyword]["id"].as_str().map(str::to_string).with_context(|| format!("no {keyword}.id in {body}"))
}

/// Creates a project; returns its id.
pub async fn create_project(tc: &TestCloud, token: &str, name: &str) -> Result<String> {
    let b = post(tc, "/projects", token, json!({"project": {"name": name}})).await?;
    id_of(&b, "project")
}

/// Creates a user with a password, and with `role` on `project` when given; returns its id.
pub async fn create_user(
    tc: &TestCloud,
    token: &str,
    name: &str,
    password: &str,
    grant: Option<(&str, &str)>,
) -> Result<String> {
    let mut user = json!({"name": name, "password": password});
    if let Some((project, role)) = grant {
        user["project"] = project.into();
        user["role"] = role.into();
    }
    let b = post(tc, "/users", token, json!({ "user": user })).await?;
    id_of(&b, "user")
}

/// The `name`s of the objects in a list answer under `plural`.
pub fn names(body: &Value, plural: &str) -> Vec<String> {
    body[plural]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The auth body of a password login in the default domain, with an optional scope.
pub fn password_auth(user: &str, password: &str, scope: Option<Value>) -> Value {
    let mut auth = json!({"identity": {"methods": ["password"],
        "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": password}}}});
    if let Some(s) = scope {
        auth["scope"] = s;
    }
    json!({ "auth": auth })
}

/// A project scope by name in the default domain.
pub fn project_scope(name: &str) -> Value {
    json!({"project": {"name": name, "domain": {"name": "Default"}}})
}

/// `POST /v3/auth/tokens` without a token.
pub async fn issue(tc: &TestCloud, body: Value) -> Result<Resp> {
    tc.call(Method::POST, &format!("{}/auth/tokens", tc.auth_url), None, Some(body)).await
}

/// `GET /v3/auth/tokens`: `token` validates `subject`.
pub async fn validate(tc: &TestCloud, token: &str, subject: &str) -> Result<Resp> {
    let r = tc.http.get(format!("{}/auth/tokens", tc.auth_url)).header("X-Auth-Token", token);
    send(r.header("X-Subject-Token", subject)).await
}

/// Sends a prepared request and reads the answer like `TestCloud::call` does.
pub async fn send(req: reqwest::RequestBuilder) -> Result<Resp> {
    let resp = req.send().await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Resp { status, headers, body })
}

/// The action records of the logger matching `query`, as `who` sees them.
pub async fn actions(tc: &TestCloud, who: &str, query: &str) -> Result<Vec<Value>> {
    let r = tc.call(Method::GET, &format!("{}/actions?{query}", tc.url("logger")), Some(who), None).await?;
    if r.status != StatusCode::OK {
        bail!("GET /actions?{query}: {} {}", r.status, r.body);
    }
    Ok(r.body["actions"].as_array().cloned().unwrap_or_default())
}

/// Polls the logger until a record matching `query` satisfies `pred`; returns it.
pub async fn wait_action(tc: &TestCloud, who: &str, query: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
    let found = std::sync::Mutex::new(None);
    let (slot, pred) = (&found, &pred);
    wait_for(CEILING, move || async move {
        let hit = actions(tc, who, query).await.ok().and_then(|list| list.into_iter().find(|a| pred(a)));
        let done = hit.is_some();
        if let Ok(mut f) = slot.lock() {
            *f = hit;
        }
        done
    })
    .await
    .with_context(|| format!("no action record matching {query}"))?;
    found.into_inner().ok().flatten().context("lost the record")
}
