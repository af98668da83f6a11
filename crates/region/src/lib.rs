//! region: the compute control plane, the source of truth for compute resources.
//!
//! ```text
//!  cloudregions ─┬─ zones ─┬─ wires (L2, in a vpc) ── networks (IP ranges: IPAM, reservedips)
//!                │         ├─ hosts ── netinterfaces (host NIC -> wire), hoststorages
//!                │         └─ storages (local) ── storagecaches
//!                └─ vpcs (`default`: the classic VPC)
//!  schedtags (tags on hosts), keypairs (per user), secgroups + secgrouprules, quotas
//! ```
//! Layers: the generic dispatcher and [`handlers`] (HTTP) -> the resource hooks in each
//! module (the rules) -> their SQL ([`ipalloc`] for addresses). Pure rules live apart:
//! [`ipam`] (address choice), [`hosts`] documents host liveness.
//!
//! Compute on top: [`servers`] (guests) and [`disks`] (+ guestdisks, guestnetworks,
//! cachedimages), driven by [`tasks`] that call host agents through [`remote`] with the
//! guest description of [`desc`], placed by the scheduler service.

pub mod bootstrap;
pub mod common;
pub mod desc;
pub mod disks;
pub mod geo;
pub mod handlers;
pub mod hosts;
pub mod ipalloc;
pub mod ipam;
pub mod keypairs;
pub mod networks;
pub mod quotas;
pub mod remote;
pub mod schema;
pub mod secgroups;
pub mod servers;
pub mod storages;
pub mod tasks;

use std::sync::Arc;

use apis::Error;
use axum::Router;
use cloudcommon::actionlog::ActionLog;
use cloudcommon::auth::TokenVerifier;
use cloudcommon::config::CommonOptions;
use cloudcommon::db::Db;
use cloudcommon::service::{ServiceBuilder, ServiceState};
use serde::{Deserialize, Serialize};

pub const DEFAULT_PORT: u16 = 30888;
/// Catalog service type of the region (Cloudpods' `compute_v2`).
pub const SERVICE_TYPE: &str = "compute_v2";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RegionConfig {
    #[serde(flatten)]
    pub common: CommonOptions,
    /// A host whose last ping is older than this is marked offline.
    pub host_offline_seconds: u64,
    /// Prefix of generated MACs (Cloudpods' `global_mac_prefix`).
    pub mac_prefix: String,
    /// How long a freed address is held back before it is handed out again, unless a
    /// network sets its own `alloc_timout_seconds`.
    pub ip_hold_back_seconds: u64,
    /// Scan direction when neither the network nor the request says (`stepdown`).
    pub default_ip_allocation_direction: String,
    pub default_cpu_cmtbound: f64,
    pub default_mem_cmtbound: f64,
    pub default_storage_cmtbound: f64,
    /// Create the default network `default` on wire `bcast0` (aio).
    pub bootstrap_default_network: bool,
    /// Per-project quotas given to projects that have none set.
    pub default_quota: quotas::Quota,
    /// The region's own URL, for task callbacks; default `http://127.0.0.1:<port>`.
    pub public_url: String,
    /// Deleted servers go to the recycle bin first (`cancel-delete` restores them).
    pub enable_pending_delete: bool,
    /// How long a server stays in the recycle bin before it is deleted for good.
    pub pending_delete_expire_seconds: u64,
}

impl Default for RegionConfig {
    fn default() -> Self {
        RegionConfig {
            common: CommonOptions { port: DEFAULT_PORT, ..CommonOptions::default() },
            host_offline_seconds: 60,
            mac_prefix: "00:22:".into(),
            ip_hold_back_seconds: 300,
            default_ip_allocation_direction: ipam::POLICY_STEPDOWN.into(),
            default_cpu_cmtbound: 8.0,
            default_mem_cmtbound: 1.2,
            default_storage_cmtbound: 1.0,
            bootstrap_default_network: true,
            default_quota: quotas::Quota::default(),
            public_url: String::new(),
            enable_pending_delete: true,
            pending_delete_expire_seconds: 259_200,
        }
    }
}

/// The region's own state beside the framework's, reachable from hooks with [`region`].
pub struct Region {
    pub cfg: RegionConfig,
    /// The validated MAC prefix, without a trailing colon.
    pub mac_prefix: String,
    pub alloc: ipalloc::Allocator,
    pub keygen: Arc<dyn keypairs::KeyGen>,
    /// Host agents, the scheduler and glance.
    pub remote: remote::Remote,
}

pub fn region(svc: &ServiceState) -> Result<Arc<Region>, Error> {
    svc.ext::<Region>()
}

pub use cloudcommon::service::Built;

/// Connects, migrates, bootstraps the default geography and builds the region's app.
/// `session` is the region's own keystone session, for calls to the scheduler, glance and host
/// agents (without it, servers cannot be created).
pub async fn build(
    cfg: RegionConfig,
    verifier: Arc<dyn TokenVerifier>,
    actionlog: ActionLog,
    session: Option<Arc<cloudcommon::client::ServiceSession>>,
) -> Result<Built, Error> {
    let mac_prefix = ipam::check_mac_prefix(&cfg.mac_prefix)?;
    if !ipam::POLICIES[1..].contains(&cfg.default_ip_allocation_direction.as_str()) {
        return Err(Error::invalid("default_ip_allocation_direction", "must be stepdown, stepup or random"));
    }
    let db = Db::connect(&cfg.common.database_url("region")).await?;
    cloudcommon::db::migrate(&db, "region", &schema::migrations()).await?;
    let tm = cloudcommon::tasks::TaskManager::new("compute");
    let public_url = cfg.common.own_url(&cfg.public_url);
    tm.set_base_url(&public_url);
    tasks::register(&tm);
    let mut b = ServiceBuilder::new("region", db, verifier, actionlog);
    for r in resources() {
        b = b.resource(r);
    }
    let state = b.tasks(tm.clone()).build();
    let r = Arc::new(Region {
        mac_prefix,
        alloc: ipalloc::Allocator::default(),
        keygen: Arc::new(keypairs::SshKeygen),
        remote: remote::Remote::new(session),
        cfg,
    });
    let ext: Arc<dyn std::any::Any + Send + Sync> = r.clone();
    let _ = state.extension.set(ext);
    bootstrap::run(&state, &r).await?;
    tm.resume_all(&state).await?;
    hosts::spawn_liveness(&state, &r);
    let app = cloudcommon::service::app(state.clone(), "", handlers::routes(), Router::new());
    Ok(Built { state, app })
}

/// Every resource the region serves through the generic dispatcher.
fn resources() -> Vec<Arc<dyn cloudcommon::resource::Resource>> {
    vec![
        Arc::new(geo::Cloudregions::new()),
        Arc::new(geo::Zones::new()),
        Arc::new(geo::Vpcs::new()),
        Arc::new(geo::Wires::new()),
        Arc::new(networks::Networks::new()),
        Arc::new(networks::ReservedIps::new()),
        Arc::new(hosts::Hosts::new()),
        Arc::new(hosts::NetInterfaces::new()),
        Arc::new(storages::Storages::new()),
        Arc::new(storages::HostStorages::new()),
        Arc::new(storages::Storagecaches::new()),
        Arc::new(storages::Schedtags::new()),
        Arc::new(keypairs::Keypairs::new()),
        Arc::new(secgroups::Secgroups::new()),
        Arc::new(secgroups::SecgroupRules::new()),
        Arc::new(quotas::Quotas::new()),
        Arc::new(servers::Servers::new()),
        Arc::new(disks::Disks::new()),
        Arc::new(disks::guestdisks()),
        Arc::new(disks::guestnetworks()),
        Arc::new(disks::Cachedimages::new()),
        Arc::new(disks::StoragecachedImages::new()),
    ]
}
