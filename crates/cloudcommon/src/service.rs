//! A running service: its state, its HTTP app, and how it is served.
//!
//! ```text
//!  request -> request id + trace span + metrics -> auth (X-Auth-Token -> UserCred)
//!          -> generic dispatcher (/<plural>...) or the service's own routes
//! ```
//! Public routes (`/version`, `/metrics`, and whatever the service marks public, such as
//! keystone's token issue) skip authentication.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use apis::Error;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::actionlog::ActionLog;
use crate::auth::{TokenVerifier, UserCred};
use crate::db::Db;
use crate::metrics::Metrics;
use crate::resource::Resource;

/// Everything a service's handlers share.
pub struct ServiceState {
    /// The service name, e.g. `keystone`, `logger`.
    pub name: &'static str,
    pub db: Db,
    pub verifier: Arc<dyn TokenVerifier>,
    pub resources: HashMap<&'static str, Arc<dyn Resource>>,
    pub actionlog: ActionLog,
    pub metrics: Metrics,
    pub started: Instant,
    pub tasks: Option<Arc<crate::tasks::TaskManager>>,
    /// The service's own state, for hooks that need more than the framework's parts.
    pub extension: std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
}

impl ServiceState {
    /// The service's own state set with `extension.set(..)`, downcast to `T`.
    pub fn ext<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, Error> {
        self.extension
            .get()
            .cloned()
            .and_then(|e| e.downcast::<T>().ok())
            .ok_or_else(|| Error::Internal(format!("{} has no extension of that type", self.name)))
    }

    pub fn resource(&self, plural: &str) -> Result<Arc<dyn Resource>, Error> {
        self.resources.get(plural).cloned().ok_or_else(|| Error::NotFound(format!("no such resource {plural}")))
    }
}

/// Assembles the state of a service from its parts.
pub struct ServiceBuilder {
    name: &'static str,
    db: Db,
    verifier: Arc<dyn TokenVerifier>,
    resources: Vec<Arc<dyn Resource>>,
    actionlog: ActionLog,
    tasks: Option<Arc<crate::tasks::TaskManager>>,
}

impl ServiceBuilder {
    pub fn new(name: &'static str, db: Db, verifier: Arc<dyn TokenVerifier>, actionlog: ActionLog) -> Self {
        ServiceBuilder { name, db, verifier, resources: vec![], actionlog, tasks: None }
    }

    pub fn resource(mut self, r: Arc<dyn Resource>) -> Self {
        self.resources.push(r);
        self
    }

    pub fn tasks(mut self, tm: Arc<crate::tasks::TaskManager>) -> Self {
        self.resources.push(tm.clone());
        self.tasks = Some(tm);
        self
    }

    pub fn build(self) -> Arc<ServiceState> {
        let events: Arc<dyn Resource> = Arc::new(crate::opslog::Events::new(self.name));
        let mut resources: HashMap<&'static str, Arc<dyn Resource>> = HashMap::new();
        for r in self.resources.into_iter().chain([events]) {
            resources.insert(r.spec().plural, r);
        }
        Arc::new(ServiceState {
            name: self.name,
            db: self.db,
            verifier: self.verifier,
            resources,
            actionlog: self.actionlog,
            metrics: Metrics::default(),
            started: Instant::now(),
            tasks: self.tasks,
            extension: std::sync::OnceLock::new(),
        })
    }
}

/// Builds the HTTP app of a service: `prefix`ed generic resource routes plus the service's
/// own `protected` (authenticated) and `public` routes, with request ids, tracing, metrics.
pub fn app(
    state: Arc<ServiceState>,
    prefix: &str,
    protected: Router<Arc<ServiceState>>,
    public: Router<Arc<ServiceState>>,
) -> Router {
    let generic = crate::resource::dispatch::routes();
    let authed = protected.merge(generic).layer(middleware::from_fn_with_state(state.clone(), auth_layer));
    let api = if prefix.is_empty() || prefix == "/" { authed } else { Router::new().nest(prefix, authed) };
    Router::new()
        .merge(api)
        .merge(public)
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), request_layer))
        .with_state(state)
}

async fn version() -> impl IntoResponse {
    env!("CARGO_PKG_VERSION")
}

async fn metrics(State(state): State<Arc<ServiceState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(state.name))
}

/// The client address a proxy reported in `X-Forwarded-For`, or empty.
pub fn client_ip(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Extracts the caller's token from `X-Auth-Token` or `Authorization: Bearer`.
pub fn request_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(t) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) {
        return Some(t.trim());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

async fn auth_layer(State(state): State<Arc<ServiceState>>, mut req: Request, next: Next) -> Response {
    let Some(token) = request_token(req.headers()).filter(|t| !t.is_empty()) else {
        return Error::Unauthorized("missing X-Auth-Token".into()).into_response();
    };
    match state.verifier.verify(token).await {
        Ok(cred) => {
            req.extensions_mut().insert(cred);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// A short request id: a per-process random base plus a counter (no syscall per request).
fn next_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static BASE: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| rand::random::<u64>() & 0xffff_ffff_0000_0000);
    format!("{:012x}", (base | NEXT.fetch_add(1, Ordering::Relaxed)) & 0xffff_ffff_ffff)
}

/// A built service: its state (for tests that reach inside) and its HTTP app.
pub struct Built {
    pub state: Arc<ServiceState>,
    pub app: Router,
}

/// The migrations of a service that keeps only metadata and events of its own (scheduler,
/// webconsole).
pub fn base_migrations() -> Vec<crate::db::Migration> {
    vec![crate::resource::metadata::MIGRATION, crate::opslog::MIGRATION]
}

/// The id of the current request, as an extension.
#[derive(Clone)]
pub struct RequestId(pub String);

async fn request_layer(State(state): State<Arc<ServiceState>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let rid = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && !v.is_empty())
        .map(str::to_string)
        .unwrap_or_else(next_request_id);
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "other".into());
    let method = req.method().clone();
    req.extensions_mut().insert(RequestId(rid.clone()));
    let span =
        tracing::info_span!("request", service = state.name, request_id = %rid, %method, path = %req.uri().path());
    let mut resp = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    state.metrics.observe(method.as_str(), &route, status, elapsed);
    if status >= 500 {
        tracing::warn!(parent: &span, status, elapsed_ms = elapsed.as_secs_f64() * 1e3, "request failed");
    } else {
        tracing::debug!(parent: &span, status, elapsed_ms = elapsed.as_secs_f64() * 1e3, "request");
    }
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Helper for handlers: the caller's credential.
pub type Cred = axum::Extension<Arc<UserCred>>;

/// Binds `addr` and serves `app` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    name: &str,
    addr: SocketAddr,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = bind(addr).await?;
    serve_listener(name, listener, app, shutdown).await
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|e| Error::Unavailable(format!("cannot listen on {addr}: {e}")))
}

pub async fn serve_listener(
    name: &str,
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
    tracing::info!(service = name, %addr, "listening");
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Internal(format!("{name}: {e}")))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
