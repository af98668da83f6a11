//! `/api/v1/auth/*`: login, logout, the current user, project switch.
//!
//! ```text
//!  login {username, password, domain?, project?}
//!    project given  -> password auth scoped to it
//!    no project     -> unscoped password auth -> GET /v3/auth/projects -> pick `system` if the
//!                      user has it, else the first -> token auth re-scoped to it; the unscoped
//!                      token is revoked
//!    -> Set-Cookie cloudpods_session (sealed token) + cloudpods_csrf; body = GET user's
//!  switch {project}  -> token auth re-scoped to the project (id or name) -> new cookies
//!  logout            -> DELETE /v3/auth/tokens (revoke) -> cookies cleared
//! ```

use std::sync::Arc;

use apis::Error;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use cloudcommon::client::to_api_error;
use mcclient::{AuthParams, Token};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Gateway;
use crate::session::{self, Caller, SessionData};

#[derive(Debug, Deserialize)]
pub struct LoginInput {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub project: String,
}

#[derive(Debug, Deserialize)]
pub struct SwitchInput {
    #[serde(default)]
    pub project: String,
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("body is not valid JSON: {e}")))
}

fn source(p: AuthParams) -> AuthParams {
    p.with_source("web")
}

/// Login takes JSON only: a page on another site can post a form (`text/plain`,
/// `application/x-www-form-urlencoded`) without asking, but not `application/json`, so it
/// cannot log a victim's browser into the attacker's account.
fn require_json(headers: &HeaderMap) -> Result<(), Error> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ct.trim_start().to_ascii_lowercase().starts_with("application/json") {
        Ok(())
    } else {
        Err(Error::BadRequest("the body must be JSON (Content-Type: application/json)".into()))
    }
}

pub async fn login(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    login_inner(&gw, &headers, &body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn login_inner(gw: &Gateway, headers: &HeaderMap, body: &Bytes) -> Result<Response, Error> {
    require_json(headers)?;
    let input: LoginInput = parse(body)?;
    if input.username.trim().is_empty() {
        return Err(Error::missing("username"));
    }
    if input.password.is_empty() {
        return Err(Error::missing("password"));
    }
    let domain = if input.domain.is_empty() { apis::identity::DEFAULT_DOMAIN_NAME } else { input.domain.as_str() };
    let params = source(AuthParams::password(input.username.trim(), domain, &input.password));
    let token = if input.project.is_empty() {
        let unscoped = gw.keystone.issue_token(&params).await.map_err(to_api_error)?;
        let projects = my_projects(gw, unscoped.id()).await?;
        let pick = projects
            .iter()
            .find(|p| p["name"] == apis::identity::SYSTEM_PROJECT)
            .or_else(|| projects.first())
            .and_then(|p| p["id"].as_str())
            .map(str::to_string);
        let Some(project_id) = pick else {
            let _ = gw.keystone.revoke_token(unscoped.id(), unscoped.id()).await;
            return Err(Error::Forbidden(format!("{} is not a member of any project", input.username.trim())));
        };
        let scoped = rescope(gw, unscoped.id(), &project_id).await?;
        let _ = gw.keystone.revoke_token(unscoped.id(), unscoped.id()).await;
        scoped
    } else {
        gw.keystone.issue_token(&params.with_project(&input.project, domain)).await.map_err(to_api_error)?
    };
    start_session(gw, token).await
}

async fn rescope(gw: &Gateway, token: &str, project_id: &str) -> Result<Token, Error> {
    gw.keystone.issue_token(&source(AuthParams::token(token).with_project_id(project_id))).await.map_err(to_api_error)
}

/// Sets the session cookies for `token` and answers with the user's profile.
async fn start_session(gw: &Gateway, token: Token) -> Result<Response, Error> {
    if let Some(c) = token.body().get("catalog") {
        gw.catalog.seed(c);
    }
    let expires = token.expires_at().map(|t| t.timestamp()).unwrap_or_else(|| session::now_unix() + 3600);
    let data = SessionData::new(token.id().to_string(), expires, token.user_name().unwrap_or_default().to_string());
    let sealed = gw.sessions.seal(&data)?;
    let mut profile = profile(gw, token.id(), token.body()).await?;
    profile["csrf_token"] = json!(data.csrf);
    let mut resp = axum::Json(profile).into_response();
    for c in session::set_cookies(&sealed, &data, gw.cfg.cookie_secure) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

/// The projects the token's user has a role in (`GET /v3/auth/projects`).
async fn my_projects(gw: &Gateway, token: &str) -> Result<Vec<Value>, Error> {
    let url = format!("{}/auth/projects", gw.catalog.auth_url());
    let resp = gw.http.get(&url).header("X-Auth-Token", token).send().await.map_err(|e| {
        Error::Unavailable(format!("the identity service is unreachable: {}", crate::catalog::root_cause(&e)))
    })?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status >= 400 {
        return Err(crate::proxy::error_from(status, &body, "identity"));
    }
    Ok(body["projects"].as_array().cloned().unwrap_or_default())
}

fn brief(v: &Value) -> Value {
    json!({"id": v["id"], "name": v["name"], "domain_id": v["domain_id"].as_str().or(v["domain"]["id"].as_str())})
}

/// The dashboard's view of a token: who, where, which projects, which roles and scopes.
async fn profile(gw: &Gateway, token: &str, body: &Value) -> Result<Value, Error> {
    let projects: Vec<Value> = my_projects(gw, token).await?.iter().map(brief).collect();
    let policies = &body["policies"];
    let has = |scope: &str| policies[scope].as_array().is_some_and(|a| !a.is_empty());
    Ok(json!({
        "id": body["user"]["id"],
        "name": body["user"]["name"],
        "domain": {"id": body["user"]["domain"]["id"], "name": body["user"]["domain"]["name"]},
        "project": {
            "id": body["project"]["id"],
            "name": body["project"]["name"],
            "domain_id": body["project"]["domain"]["id"],
        },
        "projects": projects,
        "roles": body["roles"].as_array().into_iter().flatten().filter_map(|r| r["name"].as_str()).collect::<Vec<_>>(),
        "policies": policies,
        "is_system_admin": has("system"),
        "is_domain_admin": has("domain"),
        "expires_at": body["expires_at"],
    }))
}

pub async fn user(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    user_inner(&gw, &headers).await.unwrap_or_else(IntoResponse::into_response)
}

async fn user_inner(gw: &Gateway, headers: &HeaderMap) -> Result<Response, Error> {
    let caller = session::authenticate(&gw.sessions, headers, &Method::GET)?;
    let t = caller.token();
    let body = gw.keystone.verify_token(t, t).await.map_err(to_api_error)?;
    let mut p = profile(gw, t, &body).await?;
    if let Caller::Session(s) = &caller {
        p["csrf_token"] = json!(s.csrf);
    }
    Ok(axum::Json(p).into_response())
}

pub async fn switch(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    switch_inner(&gw, &headers, &body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn switch_inner(gw: &Gateway, headers: &HeaderMap, body: &Bytes) -> Result<Response, Error> {
    let caller = session::authenticate(&gw.sessions, headers, &Method::POST)?;
    let input: SwitchInput = parse(body)?;
    if input.project.is_empty() {
        return Err(Error::missing("project"));
    }
    let projects = my_projects(gw, caller.token()).await?;
    let project = projects
        .iter()
        .find(|p| p["id"] == input.project.as_str())
        .or_else(|| projects.iter().find(|p| p["name"] == input.project.as_str()))
        .and_then(|p| p["id"].as_str())
        .ok_or_else(|| Error::NotFound(format!("project {} not found among yours", input.project)))?;
    let token = rescope(gw, caller.token(), project).await?;
    match caller {
        Caller::Session(old) => {
            let resp = start_session(gw, token).await?;
            let _ = gw.keystone.revoke_token(&old.token, &old.token).await;
            Ok(resp)
        }
        Caller::Bearer(_) => {
            let mut resp = axum::Json(profile(gw, token.id(), token.body()).await?).into_response();
            if let Ok(v) = header::HeaderValue::from_str(token.id()) {
                resp.headers_mut().insert("x-subject-token", v);
            }
            Ok(resp)
        }
    }
}

pub async fn logout(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let caller = match session::authenticate(&gw.sessions, &headers, &Method::POST) {
        Ok(c) => Some(c),
        // Nothing to revoke: the session is already gone; just drop the cookies.
        Err(e) if e.status_code() == 401 => None,
        Err(e) => return e.into_response(),
    };
    if let Some(c) = &caller {
        let t = c.token();
        if let Err(e) = gw.keystone.revoke_token(t, t).await {
            let e = to_api_error(e);
            if !matches!(e.status_code(), 401 | 404) {
                return e.into_response();
            }
        }
    }
    let mut resp = axum::Json(json!({})).into_response();
    for c in session::clear_cookies() {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}
