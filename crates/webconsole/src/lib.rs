//! webconsole: browser consoles of servers (Cloudpods' `pkg/webconsole`, VNC only).
//!
//! ```text
//!  POST /webconsole/server/<id>   (X-Auth-Token: the caller's)
//!    -> region GET /servers/<id>/vnc with the CALLER's token (the region's RBAC decides:
//!       404/403/409 pass through) -> {host, port}
//!    -> a one-time access token (32 random bytes, hex), valid `token_ttl_seconds`, -> host:port
//!    <- {"access_token", "protocol": "vnc", "url", "connect_params", ...}
//!  GET /websockify/?access_token=<t>   (public: the token is the credential)
//!    -> the token is consumed (unknown, used or expired: 401) -> 101, subprotocol `binary`
//!    -> TCP to host:port; bytes pumped both ways as binary frames until either side closes
//! ```
//! Invariants: a token opens at most one stream; tokens live only in this process's memory
//! ([`sessions::Sessions`]), so a restart forgets every pending one.

pub mod handlers;
pub mod sessions;
pub mod websockify;

use std::sync::Arc;
use std::time::Duration;

use apis::Error;
use cloudcommon::actionlog::ActionLog;
use cloudcommon::auth::TokenVerifier;
use cloudcommon::client::ServiceSession;
use cloudcommon::config::CommonOptions;
use cloudcommon::db::Db;
use cloudcommon::service::{ServiceBuilder, ServiceState};
use serde::{Deserialize, Serialize};

pub const DEFAULT_PORT: u16 = 30899;
/// Catalog service type of the webconsole.
pub const SERVICE_TYPE: &str = "webconsole";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WebconsoleConfig {
    #[serde(flatten)]
    pub common: CommonOptions,
    /// The URL browsers reach this service at (the `url` of a session); default
    /// `http://127.0.0.1:<port>`.
    pub public_url: String,
    /// How long an access token may wait for its stream.
    pub token_ttl_seconds: u64,
}

impl Default for WebconsoleConfig {
    fn default() -> Self {
        WebconsoleConfig {
            common: CommonOptions { port: DEFAULT_PORT, ..CommonOptions::default() },
            public_url: String::new(),
            token_ttl_seconds: 60,
        }
    }
}

/// The webconsole's state beside the framework's.
pub struct Webconsole {
    pub public_url: String,
    pub sessions: sessions::Sessions,
    /// The service session: only to find the region in the catalog.
    pub session: Option<Arc<ServiceSession>>,
    pub http: reqwest::Client,
}

impl Webconsole {
    /// The region's base URL, from the catalog.
    pub async fn region_url(&self) -> Result<String, Error> {
        let s =
            self.session.as_ref().ok_or_else(|| Error::Unavailable("the webconsole has no service session".into()))?;
        let s = s.session().await?;
        let url = s.service_url("compute_v2").map_err(cloudcommon::client::to_api_error)?;
        Ok(url.trim_end_matches('/').to_string())
    }
}

pub fn webconsole(svc: &ServiceState) -> Result<Arc<Webconsole>, Error> {
    svc.ext::<Webconsole>()
}

pub use cloudcommon::service::Built;

/// Builds the webconsole's app; the region is found through `session`'s catalog.
pub async fn build(
    cfg: WebconsoleConfig,
    verifier: Arc<dyn TokenVerifier>,
    actionlog: ActionLog,
    session: Option<Arc<ServiceSession>>,
) -> Result<Built, Error> {
    let db = Db::connect(&cfg.common.database_url("webconsole")).await?;
    cloudcommon::db::migrate(&db, "webconsole", &cloudcommon::service::base_migrations()).await?;
    let state = ServiceBuilder::new("webconsole", db, verifier, actionlog).build();
    let public_url = cfg.common.own_url(&cfg.public_url);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let w = Arc::new(Webconsole {
        public_url,
        sessions: sessions::Sessions::new(Duration::from_secs(cfg.token_ttl_seconds.max(1))),
        session,
        http,
    });
    let ext: Arc<dyn std::any::Any + Send + Sync> = w;
    let _ = state.extension.set(ext);
    let app = cloudcommon::service::app(state.clone(), "", handlers::routes(), websockify::routes());
    Ok(Built { state, app })
}
