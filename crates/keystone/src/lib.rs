//! keystone: identity, catalog and RBAC, compatible with the OpenStack Identity v3 API
//! (python-openstackclient and keystoneauth1 work unchanged) plus Cloudpods' extensions.
//!
//! - tokens ([`tokens`]): opaque random ids handed to clients; only their SHA-256 is stored.
//!   Validation is served from memory for the token's life; revocation marks the row and
//!   publishes the hash on `GET /v3/auth/tokens/invalid` for other services.
//! - identity resources ([`models`]): domains, projects, users, groups, roles, policies,
//!   role-policy bindings, regions, services, endpoints, credentials, on the generic
//!   dispatcher; grants and `role_assignments` ([`assignments`]) are OpenStack routes.
//! - [`bootstrap`]: the first start creates the default domain, the `system` project, the
//!   predefined roles and policies, the admin user and the catalog.

pub mod assignments;
pub mod bootstrap;
pub mod migrations;
pub mod models;
pub mod passwords;
pub mod tokens;

use std::sync::Arc;

use apis::Error;
use axum::Router;
use cloudcommon::actionlog::ActionLog;
use cloudcommon::config::CommonOptions;
use cloudcommon::db::Db;
use cloudcommon::service::{ServiceBuilder, ServiceState};
use serde::{Deserialize, Serialize};

pub const DEFAULT_PORT: u16 = 30500;

/// keystone's configuration (TOML keys; see `cloudcommon::config`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KeystoneConfig {
    #[serde(flatten)]
    pub common: CommonOptions,
    /// Token lifetime.
    pub token_expiration_seconds: i64,
    /// bcrypt cost of stored passwords.
    pub bcrypt_cost: u32,
    pub password_minimal_length: usize,
    /// Failed logins before an account is locked.
    pub password_error_lock_count: i64,
    /// How long a locked account stays locked.
    pub lockout_seconds: i64,
    /// The URL this keystone is reached at (for the catalog), e.g. `http://10.0.0.1:30500`.
    pub public_url: String,
}

impl Default for KeystoneConfig {
    fn default() -> Self {
        KeystoneConfig {
            common: CommonOptions { port: DEFAULT_PORT, ..CommonOptions::default() },
            token_expiration_seconds: 86400,
            bcrypt_cost: 10,
            password_minimal_length: 6,
            password_error_lock_count: 5,
            lockout_seconds: 900,
            public_url: String::new(),
        }
    }
}

/// keystone's shared state: the config, the database and the token store.
pub struct Keystone {
    pub cfg: KeystoneConfig,
    pub db: Db,
    pub tokens: tokens::TokenStore,
}

/// A built keystone: its HTTP app and shared state.
pub struct Built {
    pub keystone: Arc<Keystone>,
    pub state: Arc<ServiceState>,
    pub app: Router,
}

/// Connects the database, migrates, and builds keystone's app. Does not bootstrap.
pub async fn build(cfg: KeystoneConfig, actionlog: Option<ActionLog>) -> Result<Built, Error> {
    let db = Db::connect(&cfg.common.database_url("keystone")).await?;
    cloudcommon::db::migrate(&db, "keystone", &migrations::all()).await?;
    let ks = Arc::new(Keystone { tokens: tokens::TokenStore::new(db.clone()), cfg, db: db.clone() });
    let verifier = Arc::new(tokens::LocalVerifier(ks.clone()));
    let actionlog = actionlog.unwrap_or_else(|| ActionLog::local("keystone"));
    let tm = cloudcommon::tasks::TaskManager::new(models::SERVICE);
    if !ks.cfg.public_url.is_empty() {
        tm.set_base_url(&format!("{}/v3", ks.cfg.public_url.trim_end_matches('/')));
    }
    let mut b = ServiceBuilder::new("keystone", db, verifier, actionlog).tasks(tm.clone());
    for r in models::resources(&ks) {
        b = b.resource(r);
    }
    let state = b.build();
    let ext: Arc<dyn std::any::Any + Send + Sync> = ks.clone();
    let _ = state.extension.set(ext);
    tm.resume_all(&state).await?;
    let protected = tokens::protected_routes().merge(assignments::routes());
    let public = tokens::public_routes();
    let app = cloudcommon::service::app(state.clone(), "/v3", protected, public);
    Ok(Built { keystone: ks, state, app })
}
