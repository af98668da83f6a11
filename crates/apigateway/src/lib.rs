//! apigateway: the browser-facing entry point of cloudpods-rs (port 30300).
//!
//! ```text
//!  browser ── cookie session (+ X-CSRF-Token on writes) ──┐
//!  API client ── X-Auth-Token / Authorization: Bearer ────┤
//!                                                          v
//!   /api/v1/auth/{login,logout,user,switch}  -> keystone (password / token auth, revoke)
//!   /api/v2/<res>[/<id>[/<action|spec>...]] -> the service owning <res>, found in the
//!                                              keystone catalog (resources.rs), called with
//!                                              the caller's own token; lists re-wrapped as
//!                                              {"data","total","limit","offset"}, single
//!                                              objects unwrapped, batch actions fanned out
//!   /api/s/<service-type>/<path>             -> that service, untouched (raw proxy)
//!   /api/ws/<service-type>/<path>            -> a WebSocket to that service (webconsole)
//!   /                                        -> the built dashboard (web_dir), SPA fallback
//! ```
//!
//! Invariants:
//! - The gateway holds no user state: a session is an encrypted, authenticated cookie
//!   (XChaCha20-Poly1305) carrying the keystone token, its expiry and the session's CSRF value.
//!   Revoking the token in keystone ends the session everywhere.
//! - The gateway never authorises: every forwarded call carries the caller's token and the
//!   owning service decides. It never widens what a caller can see.
//! - Request and response bodies that are not JSON (image uploads and downloads) are streamed,
//!   never buffered whole.
//! - A service that is down answers 503 `ServiceUnavailableError` within the connect timeout.

pub mod auth;
pub mod catalog;
pub mod proxy;
pub mod resources;
pub mod session;
pub mod web;
pub mod ws;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use apis::Error;
use axum::Router;
use axum::routing::{any, get, post};
use cloudcommon::config::CommonOptions;
use serde::{Deserialize, Serialize};

pub const DEFAULT_PORT: u16 = 30300;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ApigatewayConfig {
    #[serde(flatten)]
    pub common: CommonOptions,
    /// Directory of the built dashboard (`web/dist`). Empty or missing: `/` answers a page
    /// saying how to build it; the API works either way.
    pub web_dir: String,
    /// The session cookie key: 64 hex characters. Empty: a key generated once and kept in
    /// `<data_dir>/apigateway-session.key` (0600).
    pub session_key: String,
    /// Mark cookies `Secure` (serve the gateway behind HTTPS).
    pub cookie_secure: bool,
    /// Seconds to wait for a service to accept a connection.
    pub connect_timeout_seconds: u64,
    /// Seconds a service may stay silent while answering before the call fails.
    pub read_timeout_seconds: u64,
}

impl Default for ApigatewayConfig {
    fn default() -> Self {
        ApigatewayConfig {
            common: CommonOptions { port: DEFAULT_PORT, ..CommonOptions::default() },
            web_dir: String::new(),
            session_key: String::new(),
            cookie_secure: false,
            connect_timeout_seconds: 3,
            read_timeout_seconds: 120,
        }
    }
}

/// Everything the gateway's handlers share.
pub struct Gateway {
    pub cfg: ApigatewayConfig,
    /// keystone's token endpoints.
    pub keystone: mcclient::Client,
    /// Calls to the services, streaming.
    pub http: reqwest::Client,
    pub sessions: session::Codec,
    pub catalog: catalog::Catalog,
    pub web: web::Assets,
}

impl Gateway {
    pub fn new(cfg: ApigatewayConfig) -> Result<Arc<Gateway>, Error> {
        let key = session::load_or_create_key(&cfg.session_key, &cfg.common.data_dir)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_seconds.max(1)))
            .read_timeout(Duration::from_secs(cfg.read_timeout_seconds.max(1)))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::Internal(format!("http client: {e}")))?;
        let keystone = mcclient::Client::new(&cfg.common.auth_url, Duration::from_secs(30), false);
        let catalog = catalog::Catalog::new(&cfg.common.auth_url, &cfg.common.region, http.clone());
        let web = web::Assets::new(PathBuf::from(&cfg.web_dir));
        Ok(Arc::new(Gateway { sessions: session::Codec::new(&key), keystone, http, catalog, web, cfg }))
    }
}

/// The gateway's state and HTTP app.
pub struct Built {
    pub gateway: Arc<Gateway>,
    pub app: Router,
}

pub fn build(cfg: ApigatewayConfig) -> Result<Built, Error> {
    let gateway = Gateway::new(cfg)?;
    if gateway.web.is_built() {
        tracing::info!(dir = %gateway.web.dir().display(), "serving the dashboard");
    } else {
        tracing::warn!(dir = %gateway.web.dir().display(), "no built dashboard (run `make web`); serving the API only");
    }
    Ok(Built { app: router(gateway.clone()), gateway })
}

pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/user", get(auth::user))
        .route("/api/v1/auth/switch", post(auth::switch))
        .route("/api/v2/{*path}", any(proxy::forward))
        .route("/api/s/{service}/{*path}", any(proxy::raw))
        .route("/api/ws/{service}/{*path}", get(ws::proxy))
        .route("/api/{*rest}", any(proxy::no_route))
        .route("/version", get(|| async { env!("CARGO_PKG_VERSION") }))
        .fallback(web::serve)
        .layer(axum::middleware::from_fn(log_layer))
        .with_state(gw)
}

/// One log line per API call (debug; a warning for 5xx), with the request id passed on.
async fn log_layer(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let rid = req.headers().get("x-request-id").cloned();
    let mut resp = next.run(req).await;
    let status = resp.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if status >= 500 {
        tracing::warn!(service = "apigateway", %method, %path, status, elapsed_ms = ms, "request failed");
    } else if path.starts_with("/api/") {
        tracing::debug!(service = "apigateway", %method, %path, status, elapsed_ms = ms, "request");
    }
    if let Some(r) = rid {
        resp.headers_mut().insert("x-request-id", r);
    }
    resp
}
