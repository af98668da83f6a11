//! Tokens: issue, validate, revoke; the `/v3/auth/*` routes and the version documents.
//!
//! A token is 32 random bytes, hex-encoded, handed to the client once. keystone stores only
//! its SHA-256 (`tokens_tbl`). A validated token's credential and its serialized validation
//! body are cached in memory until it expires; revocation drops the cache entry, marks the
//! row and publishes the hash on `GET /v3/auth/tokens/invalid` so services drop it too.
//!
//! ```text
//! POST /v3/auth/tokens --password/token--> issue --> tokens_tbl + cache --> X-Subject-Token
//! GET  /v3/auth/tokens  (X-Subject-Token) --> cache hit: cached body | miss: row -> body
//! DELETE /v3/auth/tokens --> valid=false, revoked_at=now, cache entry dropped
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use apis::Error;
use apis::identity::DEFAULT_DOMAIN_ID;
use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use cloudcommon::auth::{Scope, TokenVerifier, UserCred, token_hash};
use cloudcommon::db::{Db, fmt_time, now, parse_time};
use cloudcommon::policy::PolicySet;
use cloudcommon::resource::dispatch::{authorize, json_body, query_pairs};
use cloudcommon::resource::{Ctx, Row, row_bool, row_str, store};
use cloudcommon::service::{ServiceState, client_ip};
use rand::RngCore;
use sea_orm::sea_query::ExprTrait;
use serde_json::{Value, json};

use crate::assignments::{self, Target};
use crate::models::{catalog, domains, policies, projects, roles, users};
use crate::{Keystone, passwords};

/// What a token is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    Unscoped,
    Project(String),
    Domain(String),
    System,
}

/// A validated token: the caller's credential and the validation body, ready to send.
pub struct Validated {
    pub cred: Arc<UserCred>,
    pub body: Bytes,
    pub policies_body: Bytes,
    pub expires: chrono::DateTime<chrono::Utc>,
}

pub struct TokenStore {
    db: Db,
    cache: RwLock<HashMap<String, Arc<Validated>>>,
    /// Bumped whenever identity data that tokens depend on changes (cache dropped, tokens
    /// revoked): a token prepared before a bump is rebuilt before it is stored.
    generation: AtomicU64,
}

const CACHE_MAX: usize = 100_000;

impl TokenStore {
    pub fn new(db: Db) -> TokenStore {
        TokenStore { db, cache: RwLock::new(HashMap::new()), generation: AtomicU64::new(0) }
    }

    fn cached(&self, hash: &str) -> Option<Arc<Validated>> {
        let c = self.cache.read().unwrap_or_else(|e| e.into_inner());
        c.get(hash).filter(|v| v.expires > chrono::Utc::now()).cloned()
    }

    fn remember(&self, hash: String, v: Arc<Validated>) {
        let mut c = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if c.len() >= CACHE_MAX {
            let now = chrono::Utc::now();
            c.retain(|_, v| v.expires > now);
            if c.len() >= CACHE_MAX {
                c.clear();
            }
        }
        c.insert(hash, v);
    }

    /// Drops every cached validation, so that the next one sees current roles.
    pub fn forget_cached(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Issues a token for `user_id` with `scope`. Returns the token and its validation.
    pub async fn issue(
        &self,
        ks: &Keystone,
        user_id: &str,
        scope: TokenScope,
        methods: &[&str],
        source: &str,
        ip: &str,
    ) -> Result<(String, Arc<Validated>), Error> {
        let prepared = self.prepare(ks, user_id, scope, methods).await?;
        self.store(ks, prepared, source, ip).await
    }

    /// Builds a token for `user_id` with `scope` (its id, row and validation) without storing
    /// it: it is not valid until [`TokenStore::store`]. Lets a password login build the token
    /// while bcrypt runs.
    pub async fn prepare(
        &self,
        ks: &Keystone,
        user_id: &str,
        scope: TokenScope,
        methods: &[&str],
    ) -> Result<PreparedToken, Error> {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let hash = token_hash(&token);
        let issued = chrono::Utc::now();
        let expires = issued + chrono::Duration::seconds(ks.cfg.token_expiration_seconds);
        let (project, domain, system) = match &scope {
            TokenScope::Project(p) => (Some(p.clone()), None, false),
            TokenScope::Domain(d) => (None, Some(d.clone()), false),
            TokenScope::System => (None, None, true),
            TokenScope::Unscoped => (None, None, false),
        };
        let row = TokenRow {
            hash,
            user_id: user_id.to_string(),
            project_id: project,
            domain_id: domain,
            system,
            methods: methods.join(","),
            audit_id: {
                let mut a = [0u8; 8];
                rand::rng().fill_bytes(&mut a);
                hex::encode(a)
            },
            issued_at: fmt_time(issued),
            expires_at: fmt_time(expires),
        };
        let generation = self.generation.load(Ordering::SeqCst);
        let validated = Arc::new(build(ks, &row).await?);
        Ok(PreparedToken { token, row, validated, generation })
    }

    /// Stores a prepared token and caches its validation: from now on it is valid. When
    /// roles, users or tokens changed since it was prepared, its validation is built again.
    pub async fn store(
        &self,
        ks: &Keystone,
        prepared: PreparedToken,
        source: &str,
        ip: &str,
    ) -> Result<(String, Arc<Validated>), Error> {
        let PreparedToken { token, row, mut validated, generation } = prepared;
        if self.generation.load(Ordering::SeqCst) != generation {
            validated = Arc::new(build(ks, &row).await?);
        }
        self.db
            .raw_exec(
                "INSERT INTO tokens_tbl (token_hash, user_id, project_id, domain_id, system_scoped, methods, audit_id, \
                 issued_at, expires_at, valid, source, ip) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                vec![
                    row.hash.clone().into(),
                    row.user_id.into(),
                    row.project_id.into(),
                    row.domain_id.into(),
                    row.system.into(),
                    row.methods.into(),
                    row.audit_id.into(),
                    row.issued_at.into(),
                    row.expires_at.into(),
                    true.into(),
                    source.into(),
                    ip.into(),
                ],
            )
            .await?;
        self.remember(row.hash, validated.clone());
        Ok((token, validated))
    }

    /// Validates a token: from memory when possible, else from its row.
    pub async fn validate(&self, ks: &Keystone, token: &str) -> Result<Arc<Validated>, Error> {
        let hash = token_hash(token);
        if let Some(v) = self.cached(&hash) {
            return Ok(v);
        }
        let invalid = || Error::NotFound("the token is invalid, expired or revoked".into());
        let rows = self
            .db
            .raw_query(
                "SELECT user_id, project_id, domain_id, system_scoped, methods, audit_id, issued_at, expires_at, valid \
                 FROM tokens_tbl WHERE token_hash = ?",
                vec![hash.clone().into()],
            )
            .await?;
        let r = rows.first().ok_or_else(invalid)?;
        let get = |i: usize| r.try_get_by_index::<Option<String>>(i).ok().flatten();
        let valid = r.try_get_by_index::<bool>(8).unwrap_or(false);
        let row = TokenRow {
            hash: hash.clone(),
            user_id: get(0).unwrap_or_default(),
            project_id: get(1),
            domain_id: get(2),
            system: r.try_get_by_index::<bool>(3).unwrap_or(false),
            methods: get(4).unwrap_or_default(),
            audit_id: get(5).unwrap_or_default(),
            issued_at: get(6).unwrap_or_default(),
            expires_at: get(7).unwrap_or_default(),
        };
        if !valid || parse_time(&row.expires_at).is_none_or(|e| e <= chrono::Utc::now()) {
            return Err(invalid());
        }
        let v = Arc::new(build(ks, &row).await.map_err(|_| invalid())?);
        self.remember(hash, v.clone());
        Ok(v)
    }

    async fn revoke_where(&self, cond: &str, values: Vec<sea_orm::Value>) -> Result<(), Error> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let rows = self
            .db
            .raw_query(&format!("SELECT token_hash FROM tokens_tbl WHERE valid = ? AND {cond}"), {
                let mut v: Vec<sea_orm::Value> = vec![true.into()];
                v.extend(values.clone());
                v
            })
            .await?;
        let mut v: Vec<sea_orm::Value> = vec![false.into(), now().into(), true.into()];
        v.extend(values);
        self.db
            .raw_exec(&format!("UPDATE tokens_tbl SET valid = ?, revoked_at = ? WHERE valid = ? AND {cond}"), v)
            .await?;
        let mut c = self.cache.write().unwrap_or_else(|e| e.into_inner());
        for r in rows {
            if let Ok(h) = r.try_get_by_index::<String>(0) {
                c.remove(&h);
            }
        }
        Ok(())
    }

    pub async fn revoke_hash(&self, hash: &str) -> Result<(), Error> {
        self.revoke_where("token_hash = ?", vec![hash.into()]).await
    }

    /// Revokes every token of a user (disabled, deleted, password changed, role removed).
    pub async fn revoke_user(&self, user_id: &str) -> Result<(), Error> {
        self.revoke_where("user_id = ?", vec![user_id.into()]).await
    }

    /// Revokes every token scoped to a project or a domain.
    pub async fn revoke_scope(&self, id: &str) -> Result<(), Error> {
        self.revoke_where("(project_id = ? OR domain_id = ?)", vec![id.into(), id.into()]).await
    }

    /// Hashes of tokens revoked since `since`.
    pub async fn revoked_since(&self, since: &str) -> Result<Vec<String>, Error> {
        let rows = self
            .db
            .raw_query(
                "SELECT token_hash FROM tokens_tbl WHERE revoked_at >= ? AND expires_at > ?",
                vec![since.into(), now().into()],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| r.try_get_by_index::<String>(0).ok()).collect())
    }
}

/// The keystone of a request context.
pub fn keystone_of(ctx: &Ctx) -> Result<Arc<Keystone>, Error> {
    ctx.svc.ext::<Keystone>()
}

/// The token store of a request context (keystone's hooks only).
pub fn store_of(ctx: &Ctx) -> Arc<Keystone> {
    keystone_of(ctx).expect("keystone sets its extension at build")
}

impl Keystone {
    pub async fn revoke_user(&self, user_id: &str) -> Result<(), Error> {
        self.tokens.revoke_user(user_id).await
    }
    pub fn forget_cached(&self) {
        self.tokens.forget_cached()
    }
}

/// A token built by [`TokenStore::prepare`], not yet stored.
pub struct PreparedToken {
    token: String,
    row: TokenRow,
    validated: Arc<Validated>,
    generation: u64,
}

struct TokenRow {
    hash: String,
    user_id: String,
    project_id: Option<String>,
    domain_id: Option<String>,
    system: bool,
    methods: String,
    audit_id: String,
    issued_at: String,
    expires_at: String,
}

fn named(row: &Row) -> Value {
    json!({"id": row_str(row, "id"), "name": row_str(row, "name")})
}

async fn get_row(db: &Db, spec: &cloudcommon::resource::ResourceSpec, id: &str) -> Result<Row, Error> {
    store::get_by_id(db, spec, id).await?.ok_or_else(|| Error::not_found(spec.keyword, id))
}

/// Builds a token's credential and validation body from the current identity data.
async fn build(ks: &Keystone, t: &TokenRow) -> Result<Validated, Error> {
    let db = &ks.db;
    let user = get_row(db, &users::spec(), &t.user_id).await?;
    if !row_bool(&user, "enabled") {
        return Err(Error::Unauthorized(format!("user {} is disabled", row_str(&user, "name"))));
    }
    let user_domain = get_row(db, &domains::spec(), row_str(&user, "domain_id")).await?;
    let mut body = json!({
        "methods": t.methods.split(',').filter(|m| !m.is_empty()).collect::<Vec<_>>(),
        "user": {
            "id": t.user_id,
            "name": row_str(&user, "name"),
            "domain": named(&user_domain),
            "password_expires_at": null,
        },
        "audit_ids": [t.audit_id],
        "issued_at": t.issued_at,
        "expires_at": t.expires_at,
        "is_domain": false,
    });
    let (target, target_id) = match (&t.project_id, &t.domain_id, t.system) {
        (Some(p), _, _) => {
            let project = get_row(db, &projects::spec(), p).await?;
            if !row_bool(&project, "enabled") {
                return Err(Error::Unauthorized(format!("project {} is disabled", row_str(&project, "name"))));
            }
            let pd = get_row(db, &domains::spec(), row_str(&project, "domain_id")).await?;
            let mut pv = named(&project);
            pv["domain"] = named(&pd);
            body["project"] = pv;
            (Some(Target::Project), p.clone())
        }
        (None, Some(d), _) => {
            let domain = get_row(db, &domains::spec(), d).await?;
            body["domain"] = named(&domain);
            (Some(Target::Domain), d.clone())
        }
        (None, None, true) => {
            body["system"] = json!({"all": true});
            (Some(Target::System), assignments::SYSTEM_TARGET.to_string())
        }
        _ => (None, String::new()),
    };
    let mut policy_set = PolicySet::default();
    let mut names = json!({"system": [], "domain": [], "project": []});
    if let Some(target) = target {
        let role_ids = assignments::effective_roles(db, &t.user_id, target, &target_id).await?;
        if role_ids.is_empty() {
            return Err(Error::Unauthorized(format!("user {} has no role there", row_str(&user, "name"))));
        }
        let mut role_views = vec![];
        for id in &role_ids {
            if let Some(r) = store::get_by_id(db, &roles::spec(), id).await? {
                role_views.push(named(&r));
            }
        }
        body["roles"] = Value::Array(role_views);
        body["catalog"] = catalog::build(db).await?;
        let project_for_binding = match target {
            Target::Project => Some(target_id.as_str()),
            Target::System => Some(crate::bootstrap::SYSTEM_PROJECT_ID),
            Target::Domain => None,
        };
        for (scope, policy) in policies::effective(db, &role_ids, project_for_binding).await? {
            let list = match scope.as_str() {
                "system" => &mut policy_set.system,
                "domain" => &mut policy_set.domain,
                _ => &mut policy_set.project,
            };
            if let Some(a) = names[scope.as_str()].as_array_mut() {
                a.push(policy.name.clone().into());
            }
            list.push(policy);
        }
        body["policies"] = names;
    }
    let expires = parse_time(&t.expires_at).ok_or_else(|| Error::Internal("bad token expiry".into()))?;
    let body = json!({ "token": body });
    let cred = UserCred::from_token_body(&body, policy_set.clone(), t.hash.clone())?;
    let policies_body =
        serde_json::to_vec(&json!({"policies": policy_set})).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Validated {
        cred: Arc::new(cred),
        body: Bytes::from(serde_json::to_vec(&body).map_err(|e| Error::Internal(e.to_string()))?),
        policies_body: Bytes::from(policies_body),
        expires,
    })
}

/// Verifies tokens for keystone's own routes, without HTTP.
pub struct LocalVerifier(pub Arc<Keystone>);

#[async_trait]
impl TokenVerifier for LocalVerifier {
    async fn verify(&self, token: &str) -> Result<Arc<UserCred>, Error> {
        match self.0.tokens.validate(&self.0, token).await {
            Ok(v) => Ok(v.cred.clone()),
            Err(Error::NotFound(m)) => Err(Error::Unauthorized(m)),
            Err(e) => Err(e),
        }
    }
}

pub fn public_routes() -> Router<Arc<ServiceState>> {
    Router::new()
        .route("/v3/auth/tokens", axum::routing::post(issue_handler))
        .route("/v3", get(version_v3))
        .route("/v3/", get(version_v3))
        .route("/", get(versions))
}

pub fn protected_routes() -> Router<Arc<ServiceState>> {
    Router::new()
        .route("/auth/tokens", get(validate_handler).head(validate_handler).delete(revoke_handler))
        .route("/auth/tokens/invalid", get(invalid_handler))
        .route("/auth/catalog", get(catalog_handler))
        .route("/auth/projects", get(auth_projects))
        .route("/auth/domains", get(auth_domains))
        .route("/auth/system", get(auth_system))
        .route("/auth/policies", get(auth_policies))
}

fn base_url(headers: &HeaderMap, ks: &Keystone) -> String {
    if !ks.cfg.public_url.is_empty() {
        return ks.cfg.public_url.trim_end_matches('/').to_string();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn version_doc(base: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
    })
}

async fn version_v3(State(state): State<Arc<ServiceState>>, headers: HeaderMap) -> Result<Response, Error> {
    let ks = state.ext::<Keystone>()?;
    Ok(Json(json!({"version": version_doc(&base_url(&headers, &ks))})).into_response())
}

async fn versions(State(state): State<Arc<ServiceState>>, headers: HeaderMap) -> Result<Response, Error> {
    let ks = state.ext::<Keystone>()?;
    let body = json!({"versions": {"values": [version_doc(&base_url(&headers, &ks))]}});
    Ok((StatusCode::MULTIPLE_CHOICES, Json(body)).into_response())
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

/// Resolves `{"id"}` or `{"name", "domain": {"id"|"name"}}` against a domain-owned resource.
async fn find_in_domain(db: &Db, spec: &cloudcommon::resource::ResourceSpec, v: &Value) -> Result<Option<Row>, Error> {
    if let Some(id) = str_at(v, &["id"]) {
        return store::get_by_id(db, spec, id).await;
    }
    let Some(name) = str_at(v, &["name"]) else {
        return Err(Error::BadRequest(format!("{} needs an id or a name", spec.keyword)));
    };
    let domain_id = match (str_at(v, &["domain", "id"]), str_at(v, &["domain", "name"])) {
        (Some(id), _) => id.to_string(),
        (None, Some(dn)) => match find_domain(db, dn).await? {
            Some(d) => row_str(&d, "id").to_string(),
            None => return Ok(None),
        },
        (None, None) => DEFAULT_DOMAIN_ID.to_string(),
    };
    let cond = sea_orm::sea_query::Condition::all()
        .add(sea_orm::sea_query::Expr::col(sea_orm::sea_query::Alias::new("name")).eq(name))
        .add(sea_orm::sea_query::Expr::col(sea_orm::sea_query::Alias::new("domain_id")).eq(domain_id));
    Ok(store::select(db, spec, cond).await?.into_iter().next())
}

async fn find_domain(db: &Db, key: &str) -> Result<Option<Row>, Error> {
    match store::get_by_id_or_name(db, &domains::spec(), key, sea_orm::sea_query::Condition::all()).await {
        Ok(r) => Ok(Some(r)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `POST /v3/auth/tokens`: password or token authentication, with an optional scope.
///
/// For a password, bcrypt (tens of milliseconds) runs in the background while the scope is
/// resolved and the token built, so a login costs little more than bcrypt. Neither result,
/// nor any error of theirs, is used before the password is known to be right: a wrong
/// password answers exactly as if nothing else had been looked at.
async fn issue_handler(
    State(state): State<Arc<ServiceState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let ks = state.ext::<Keystone>()?;
    let body = Value::Object(json_body(&body)?);
    let auth = body.get("auth").ok_or_else(|| Error::missing("auth"))?;
    let identity = auth.get("identity").ok_or_else(|| Error::missing("auth.identity"))?;
    let methods: Vec<&str> = identity
        .get("methods")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::missing("auth.identity.methods"))?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let source = str_at(auth, &["context", "source"]).unwrap_or("api").to_string();
    let ip = str_at(auth, &["context", "ip"]).map(str::to_string).unwrap_or_else(|| client_ip(&headers));
    // The scope, then the token. The outer error (a bad scope) is returned as is; the inner
    // one (the token cannot be built: disabled, no role) is a failed login.
    let prepare = |user_id: String, method: &'static str| {
        let ks = ks.clone();
        async move {
            let scope = requested_scope(&ks.db, auth).await?;
            Ok::<_, Error>(ks.tokens.prepare(&ks, &user_id, scope, &[method]).await)
        }
    };
    let (user, prepared) = if methods.contains(&"password") {
        let pw = identity.get("password").ok_or_else(|| Error::missing("auth.identity.password"))?;
        let check = password_begin(&ks, &state, pw, &ip).await?;
        let prepared = prepare(row_str(&check.user, "id").to_string(), "password").await;
        (password_finish(&ks, &state, check, &ip).await?, prepared)
    } else if methods.contains(&"token") {
        let id = str_at(identity, &["token", "id"]).ok_or_else(|| Error::missing("auth.identity.token.id"))?;
        let v = ks
            .tokens
            .validate(&ks, id)
            .await
            .map_err(|_| Error::Unauthorized("the token is invalid, expired or revoked".into()))?;
        let user = get_row(&ks.db, &users::spec(), &v.cred.user_id).await?;
        let prepared = prepare(row_str(&user, "id").to_string(), "token").await;
        (user, prepared)
    } else {
        return Err(Error::invalid("auth.identity.methods", "supported methods are password and token"));
    };
    let stored = match prepared? {
        Ok(p) => ks.tokens.store(&ks, p, &source, &ip).await,
        Err(e) => Err(e),
    };
    let (token, v) = match stored {
        Ok(t) => t,
        Err(Error::Unauthorized(m)) => {
            log_login(&state, &user, false, &m, &ip).await;
            return Err(Error::Unauthorized(m));
        }
        Err(e) => return Err(e),
    };
    // The token is stored: the caller need not wait for the login record too.
    tokio::spawn({
        let (state, ip) = (state.clone(), ip.clone());
        async move { log_login(&state, &user, true, "", &ip).await }
    });
    let mut resp = Response::new(Body::from(v.body.clone()));
    *resp.status_mut() = StatusCode::CREATED;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert("x-subject-token", HeaderValue::from_str(&token).map_err(|e| Error::Internal(e.to_string()))?);
    Ok(resp)
}

/// The scope `auth.scope` asks for: a project, a domain, the system, or none.
async fn requested_scope(db: &Db, auth: &Value) -> Result<TokenScope, Error> {
    Ok(match auth.get("scope") {
        None | Some(Value::Null) => TokenScope::Unscoped,
        Some(s) if s.is_string() && s.as_str() == Some("unscoped") => TokenScope::Unscoped,
        Some(s) => {
            if let Some(p) = s.get("project") {
                let project = find_in_domain(db, &projects::spec(), p)
                    .await?
                    .ok_or_else(|| Error::Unauthorized("no such project".into()))?;
                TokenScope::Project(row_str(&project, "id").to_string())
            } else if let Some(d) = s.get("domain") {
                let key = str_at(d, &["id"])
                    .or_else(|| str_at(d, &["name"]))
                    .ok_or_else(|| Error::missing("scope.domain.id"))?;
                let domain = find_domain(db, key).await?.ok_or_else(|| Error::Unauthorized("no such domain".into()))?;
                TokenScope::Domain(row_str(&domain, "id").to_string())
            } else if s.get("system").is_some() {
                TokenScope::System
            } else {
                return Err(Error::invalid("auth.scope", "must name a project, a domain or the system"));
            }
        }
    })
}

async fn log_login(state: &Arc<ServiceState>, user: &Row, success: bool, reason: &str, ip: &str) {
    let cred = UserCred {
        user_id: row_str(user, "id").into(),
        user: row_str(user, "name").into(),
        domain_id: row_str(user, "domain_id").into(),
        ..Default::default()
    };
    let mut ctx = Ctx::internal(state.clone(), Arc::new(cred));
    ctx.client_ip = ip.to_string();
    let notes = if reason.is_empty() { Value::Null } else { Value::String(reason.to_string()) };
    state.actionlog.record(&ctx, &users::spec(), user, "login", success, notes).await;
}

/// A password login under way: its user, and bcrypt running in the background (`None` when
/// the user has no password).
struct PasswordCheck {
    user: Row,
    verified: Option<tokio::task::JoinHandle<bool>>,
}

/// Starts a password login: finds the user, refuses a locked account, and starts checking
/// the password. [`password_finish`] gives the outcome.
async fn password_begin(
    ks: &Keystone,
    state: &Arc<ServiceState>,
    pw: &Value,
    ip: &str,
) -> Result<PasswordCheck, Error> {
    let invalid = || Error::InvalidCredential("invalid user or password".into());
    let u = pw.get("user").ok_or_else(|| Error::missing("auth.identity.password.user"))?;
    let password = str_at(u, &["password"]).ok_or_else(|| Error::missing("auth.identity.password.user.password"))?;
    let Some(user) = find_in_domain(&ks.db, &users::spec(), u).await? else {
        return Err(invalid());
    };
    if let Some(until) = user.get("locked_until").and_then(Value::as_str).and_then(parse_time)
        && until > chrono::Utc::now()
    {
        log_login(state, &user, false, "account locked", ip).await;
        return Err(Error::Unauthorized(format!(
            "user {} is locked after too many failed logins; try again later",
            row_str(&user, "name")
        )));
    }
    let verified = passwords::current(&ks.db, row_str(&user, "id")).await?.map(|hash| {
        let password = password.to_string();
        tokio::spawn(async move { passwords::verify(&password, &hash).await })
    });
    Ok(PasswordCheck { user, verified })
}

/// Ends a password login: a wrong password counts a failure (locking the account after too
/// many), a disabled user is refused, a success clears the failure count.
async fn password_finish(
    ks: &Keystone,
    state: &Arc<ServiceState>,
    check: PasswordCheck,
    ip: &str,
) -> Result<Row, Error> {
    let PasswordCheck { user, verified } = check;
    let user_id = row_str(&user, "id").to_string();
    let ok = match verified {
        Some(v) => v.await.unwrap_or(false),
        None => false,
    };
    if !ok {
        let fails = user.get("failed_auth_count").and_then(Value::as_i64).unwrap_or(0) + 1;
        let mut patch = Row::new();
        patch.insert("failed_auth_count".into(), fails.into());
        if fails >= ks.cfg.password_error_lock_count {
            let until = chrono::Utc::now() + chrono::Duration::seconds(ks.cfg.lockout_seconds);
            patch.insert("locked_until".into(), fmt_time(until).into());
            patch.insert("failed_auth_count".into(), 0.into());
        }
        store::update(&ks.db, &users::spec(), &user_id, &patch).await?;
        log_login(state, &user, false, "wrong password", ip).await;
        return Err(Error::InvalidCredential("invalid user or password".into()));
    }
    if !row_bool(&user, "enabled") {
        log_login(state, &user, false, "user disabled", ip).await;
        return Err(Error::Unauthorized(format!("user {} is disabled", row_str(&user, "name"))));
    }
    if user.get("failed_auth_count").and_then(Value::as_i64).unwrap_or(0) > 0
        || !user.get("locked_until").is_none_or(Value::is_null)
    {
        let mut patch = Row::new();
        patch.insert("failed_auth_count".into(), 0.into());
        patch.insert("locked_until".into(), Value::Null);
        store::update(&ks.db, &users::spec(), &user_id, &patch).await?;
    }
    Ok(user)
}

fn subject(headers: &HeaderMap) -> Result<&str, Error> {
    headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::missing("X-Subject-Token"))
}

/// Whether `cred` may look at or revoke tokens other than its own.
fn may_manage_tokens(state: &ServiceState, cred: &UserCred) -> bool {
    state
        .resource("users")
        .ok()
        .and_then(|r| authorize(r.as_ref(), cred, "update", None).ok())
        .is_some_and(|s| s == Scope::System)
}

/// `GET|HEAD /v3/auth/tokens`: validate `X-Subject-Token`.
async fn validate_handler(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let ks = state.ext::<Keystone>()?;
    let token = subject(&headers)?;
    let v = ks.tokens.validate(&ks, token).await?;
    if v.cred.user_id != cred.user_id && !may_manage_tokens(&state, &cred) {
        return Err(Error::Forbidden(format!("{} may not validate other users' tokens", cred.user)));
    }
    let sub = HeaderValue::from_str(token).map_err(|e| Error::Internal(e.to_string()))?;
    let mut resp =
        if method == Method::HEAD { Response::new(Body::empty()) } else { Response::new(Body::from(v.body.clone())) };
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert("x-subject-token", sub);
    Ok(resp)
}

/// `DELETE /v3/auth/tokens`: revoke `X-Subject-Token`.
async fn revoke_handler(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let ks = state.ext::<Keystone>()?;
    let token = subject(&headers)?;
    let v = ks.tokens.validate(&ks, token).await?;
    if v.cred.user_id != cred.user_id && !may_manage_tokens(&state, &cred) {
        return Err(Error::Forbidden(format!("{} may not revoke other users' tokens", cred.user)));
    }
    ks.tokens.revoke_hash(&token_hash(token)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v3/auth/tokens/invalid?since=`: hashes of revoked, unexpired tokens, for services.
async fn invalid_handler(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    if !may_manage_tokens(&state, &cred) {
        return Err(Error::Forbidden("only services and administrators may list revoked tokens".into()));
    }
    let ks = state.ext::<Keystone>()?;
    let pairs = query_pairs(raw.as_deref())?;
    let since = pairs.iter().find(|(k, _)| k == "since").map(|(_, v)| v.clone()).unwrap_or_default();
    Ok(Json(json!({"tokens": ks.tokens.revoked_since(&since).await?})).into_response())
}

async fn catalog_handler(State(state): State<Arc<ServiceState>>) -> Result<Response, Error> {
    Ok(Json(json!({"catalog": catalog::build(&state.db).await?})).into_response())
}

async fn auth_projects(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
) -> Result<Response, Error> {
    let ids = assignments::user_project_ids(&state.db, &cred.user_id).await?;
    let mut out = vec![];
    for id in ids {
        if let Some(p) = store::get_by_id(&state.db, &projects::spec(), &id).await? {
            out.push(Value::Object(projects::openstack_view(p)));
        }
    }
    Ok(Json(json!({"projects": out, "links": {"self": null, "next": null, "previous": null}})).into_response())
}

async fn auth_domains(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
) -> Result<Response, Error> {
    let f = assignments::Filter { user: Some(cred.user_id.clone()), effective: true, ..Default::default() };
    let mut out = vec![];
    let mut seen = std::collections::BTreeSet::new();
    for a in assignments::effective(&state.db, &f).await? {
        if a.target == Target::Domain
            && seen.insert(a.target_id.clone())
            && let Some(d) = store::get_by_id(&state.db, &domains::spec(), &a.target_id).await?
        {
            out.push(Value::Object(store::to_view(&domains::spec(), d)));
        }
    }
    Ok(Json(json!({"domains": out, "links": {"self": null, "next": null, "previous": null}})).into_response())
}

async fn auth_system(
    State(state): State<Arc<ServiceState>>,
    Extension(cred): Extension<Arc<UserCred>>,
) -> Result<Response, Error> {
    let roles =
        assignments::effective_roles(&state.db, &cred.user_id, Target::System, assignments::SYSTEM_TARGET).await?;
    let system = if roles.is_empty() { json!([]) } else { json!([{"all": true}]) };
    Ok(Json(json!({"system": system, "links": {"self": null, "next": null, "previous": null}})).into_response())
}

/// `GET /v3/auth/policies`: the policies the caller's token holds, by scope, with bodies.
async fn auth_policies(State(state): State<Arc<ServiceState>>, headers: HeaderMap) -> Result<Response, Error> {
    let ks = state.ext::<Keystone>()?;
    let token = cloudcommon::service::request_token(&headers)
        .ok_or_else(|| Error::Unauthorized("missing X-Auth-Token".into()))?;
    let v = ks.tokens.validate(&ks, token).await?;
    let mut resp = Response::new(Body::from(v.policies_body.clone()));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}
