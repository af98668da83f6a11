//! scheduler: picks hosts and storages for new servers (Cloudpods' `pkg/scheduler`).
//!
//! | request | meaning |
//! |---|---|
//! | `POST /scheduler` `{"scheduler": {...}}` | place `count` instances and reserve them under `session_id`; 400 InsufficientResource with the per-filter explanation otherwise |
//! | `POST /scheduler/forecast` | the same input; `can_create`, `allow_count`, `filtered_candidates`, `not_allow_reasons`; always 200 |
//! | `POST /scheduler/clean-cache[/<host_id>][?session=<sid>]` | release reservations (a session's, a host's, or all) and refresh from the region |
//!
//! Layers: [`handlers`] (HTTP, input resolution) -> [`pending::Scheduler`] (the lock, the
//! reservation table) -> [`core`] (pure filters, scores, selection). Host data comes from the
//! region over HTTP ([`loader`]), refreshed every `refresh_seconds` and on clean-cache.

pub mod core;
pub mod handlers;
pub mod loader;
pub mod pending;

use std::sync::{Arc, Weak};
use std::time::Duration;

use apis::Error;
use axum::Router;
use cloudcommon::actionlog::ActionLog;
use cloudcommon::auth::TokenVerifier;
use cloudcommon::client::ServiceSession;
use cloudcommon::config::CommonOptions;
use cloudcommon::db::Db;
use cloudcommon::service::{ServiceBuilder, ServiceState};
use serde::{Deserialize, Serialize};

pub const DEFAULT_PORT: u16 = 30887;
/// Catalog service type of the scheduler.
pub const SERVICE_TYPE: &str = "scheduler";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    #[serde(flatten)]
    pub common: CommonOptions,
    /// How often the host cache is reloaded from the region.
    pub refresh_seconds: u64,
    /// A reservation nobody released is dropped after this long (Cloudpods: 30 minutes).
    pub pending_ttl_seconds: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            common: CommonOptions { port: DEFAULT_PORT, ..CommonOptions::default() },
            refresh_seconds: 10,
            pending_ttl_seconds: 1800,
        }
    }
}

/// The scheduler's state beside the framework's.
pub struct SchedulerService {
    pub cfg: SchedulerConfig,
    pub scheduler: pending::Scheduler,
    pub networks: std::sync::Mutex<Vec<loader::NetworkInfo>>,
    /// The region session; `None` in tests that feed hosts directly.
    pub session: Option<Arc<ServiceSession>>,
    refresh_lock: tokio::sync::Mutex<()>,
}

impl SchedulerService {
    pub fn new(cfg: SchedulerConfig, session: Option<Arc<ServiceSession>>) -> Self {
        let ttl = Duration::from_secs(cfg.pending_ttl_seconds.max(1));
        SchedulerService {
            cfg,
            scheduler: pending::Scheduler::new(ttl),
            networks: std::sync::Mutex::new(vec![]),
            session,
            refresh_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Reloads one host from the region (after the region placed servers on it): cheaper than
    /// [`SchedulerService::refresh`] at thousands of hosts.
    pub async fn refresh_host(&self, host_id: &str) -> Result<(), Error> {
        let Some(session) = &self.session else { return Ok(()) };
        let _g = self.refresh_lock.lock().await;
        let sessions = self.scheduler.pending_sessions(Some(host_id));
        let committed = loader::committed(session, &sessions).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot ask the region which reservations it committed");
            vec![]
        });
        let host = loader::load_host(session, host_id).await?;
        self.scheduler.set_host_committed(host_id, host, &committed);
        Ok(())
    }

    /// Reloads hosts and networks from the region.
    pub async fn refresh(&self) -> Result<(), Error> {
        let Some(session) = &self.session else { return Ok(()) };
        let _g = self.refresh_lock.lock().await;
        // Which reserved servers the region has placed, asked before the hosts are read.
        let sessions = self.scheduler.pending_sessions(None);
        let committed = loader::committed(session, &sessions).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot ask the region which reservations it committed");
            vec![]
        });
        let snap = loader::load(session).await?;
        self.scheduler.set_hosts_committed(snap.hosts, &committed);
        *self.networks.lock().unwrap_or_else(|e| e.into_inner()) = snap.networks;
        Ok(())
    }
}

pub fn scheduler(svc: &ServiceState) -> Result<Arc<SchedulerService>, Error> {
    svc.ext::<SchedulerService>()
}

pub use cloudcommon::service::Built;

/// Builds the scheduler's app; host data comes from the region through `session`'s catalog.
pub async fn build(
    cfg: SchedulerConfig,
    verifier: Arc<dyn TokenVerifier>,
    actionlog: ActionLog,
    session: Option<Arc<ServiceSession>>,
) -> Result<Built, Error> {
    let db = Db::connect(&cfg.common.database_url("scheduler")).await?;
    cloudcommon::db::migrate(&db, "scheduler", &cloudcommon::service::base_migrations()).await?;
    let state = ServiceBuilder::new("scheduler", db, verifier, actionlog).build();
    let every = Duration::from_secs(cfg.refresh_seconds.max(1));
    let s = Arc::new(SchedulerService::new(cfg, session));
    let ext: Arc<dyn std::any::Any + Send + Sync> = s.clone();
    let _ = state.extension.set(ext);
    spawn_refresh(Arc::downgrade(&s), every);
    let app = cloudcommon::service::app(state.clone(), "", handlers::routes(), Router::new());
    Ok(Built { state, app })
}

/// Reloads the host cache now and then every `every`; stops when the service goes away.
fn spawn_refresh(s: Weak<SchedulerService>, every: Duration) {
    tokio::spawn(async move {
        loop {
            let Some(svc) = s.upgrade() else { return };
            if let Err(e) = svc.refresh().await {
                tracing::warn!(error = %e, "cannot refresh hosts from the region");
            }
            drop(svc);
            tokio::time::sleep(every).await;
        }
    });
}
