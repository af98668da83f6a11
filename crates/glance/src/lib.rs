//! glance: the image service.
//!
//! ```text
//!  POST /v1/images (raw body + X-Image-Meta-*)   JSON create -> queued, then PUT /v1/images/<id> (bytes)
//!  or x-glance-api-copy-from: <url> (ImageCopyFromUrlTask downloads it)
//!        |
//!        v
//!  queued -> saving --(bytes streamed to the store, MD5 + xxh3 on the side, fsync)--> saved
//!              |  connection lost / quota exceeded / restart:  killed (partial file removed)
//!              v
//!  ImagePipelineTask:  probing (qemu-img info + check, ISO probe; min_disk)
//!                      -> converting (qemu-img convert to each target format: sub-formats)
//!                      -> active                  corrupt / truncated / unsupported: save_fail
//!  DELETE -> pending_delete (recycle bin; cancel-delete) -> ImageDeleteTask after the delay
//!           (?override_pending_delete=true: at once, for admins)
//! ```
//! Layers: [`handlers`] (HTTP: streaming, headers) -> [`images`] and [`upload`] (the rules)
//! -> [`models`] (SQL) and the seams [`store::ImageStore`] and [`qemu_img::QemuImg`].

pub mod handlers;
pub mod images;
pub mod models;
pub mod purge;
pub mod qemu_img;
pub mod quota;
pub mod store;
pub mod tasks;
pub mod upload;

use std::path::PathBuf;
use std::sync::Arc;

use apis::Error;
use axum::Router;
use cloudcommon::actionlog::ActionLog;
use cloudcommon::auth::TokenVerifier;
use cloudcommon::config::CommonOptions;
use cloudcommon::db::Db;
use cloudcommon::service::{ServiceBuilder, ServiceState};
use serde::{Deserialize, Deserializer, Serialize};

pub const DEFAULT_PORT: u16 = 30292;
/// The path prefix of glance's API.
pub const PREFIX: &str = "/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GlanceConfig {
    #[serde(flatten)]
    pub common: CommonOptions,
    /// Where images are kept; default `<data_dir>/images`.
    pub filesystem_store_datadir: Option<PathBuf>,
    /// Formats every image is converted to after upload (a list, or `qcow2,vmdk`).
    #[serde(deserialize_with = "list_or_csv")]
    pub target_image_formats: Vec<String>,
    /// Deleting puts an image in the recycle bin first.
    pub enable_pending_delete: bool,
    /// How long an image stays in the recycle bin.
    pub pending_delete_expire_seconds: u64,
    /// How often the recycle bin is checked.
    pub pending_delete_check_seconds: u64,
    /// Images a project may have.
    pub quota_images: u64,
    /// Total MB of image data a project may have.
    pub quota_image_size_mb: u64,
    /// The qemu-img binary.
    pub qemu_img: String,
    /// glance's own URL with prefix, for task callbacks; default `http://127.0.0.1:<port>/v1`.
    pub public_url: String,
}

impl Default for GlanceConfig {
    fn default() -> Self {
        GlanceConfig {
            common: CommonOptions { port: DEFAULT_PORT, ..CommonOptions::default() },
            filesystem_store_datadir: None,
            target_image_formats: vec!["qcow2".into()],
            enable_pending_delete: true,
            pending_delete_expire_seconds: 259_200,
            pending_delete_check_seconds: 3600,
            quota_images: 50,
            quota_image_size_mb: 1 << 20,
            qemu_img: "qemu-img".into(),
            public_url: String::new(),
        }
    }
}

fn list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum L {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match L::deserialize(d)? {
        L::List(v) => v,
        L::Csv(s) => s.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
    })
}

impl GlanceConfig {
    pub fn store_dir(&self) -> PathBuf {
        self.filesystem_store_datadir.clone().unwrap_or_else(|| self.common.data_dir.join("images"))
    }
}

/// glance's own state beside the framework's, reachable from hooks with [`glance`].
pub struct Glance {
    pub cfg: GlanceConfig,
    pub store: Arc<dyn store::ImageStore>,
    pub qemu_img: Arc<dyn qemu_img::QemuImg>,
    pub quota: quota::Quotas,
}

/// glance's state from a service state.
pub fn glance(svc: &ServiceState) -> Result<Arc<Glance>, Error> {
    svc.ext::<Glance>()
}

pub use cloudcommon::service::Built;

/// Connects, migrates, recovers what a restart interrupted and builds glance's app.
pub async fn build(cfg: GlanceConfig, verifier: Arc<dyn TokenVerifier>, actionlog: ActionLog) -> Result<Built, Error> {
    for f in &cfg.target_image_formats {
        if !apis::image::DISK_FORMATS.contains(&f.as_str()) || f == "iso" {
            return Err(Error::invalid("target_image_formats", format!("{f} is not a disk format glance converts to")));
        }
    }
    let db = Db::connect(&cfg.common.database_url("glance")).await?;
    cloudcommon::db::migrate(&db, "glance", &models::migrations()).await?;
    let store = store::LocalStore::new(cfg.store_dir())
        .map_err(|e| Error::Unavailable(format!("cannot use image store {}: {e}", cfg.store_dir().display())))?;
    let tm = cloudcommon::tasks::TaskManager::new("image");
    tasks::register(&tm);
    let public_url = if cfg.public_url.is_empty() {
        format!("http://127.0.0.1:{}{PREFIX}", cfg.common.port)
    } else {
        cfg.public_url.clone()
    };
    tm.set_base_url(&public_url);
    let state = ServiceBuilder::new("glance", db, verifier, actionlog)
        .resource(Arc::new(images::Images::new()))
        .tasks(tm.clone())
        .build();
    let g = Arc::new(Glance {
        qemu_img: Arc::new(qemu_img::QemuImgCli::new(cfg.qemu_img.clone())),
        store: Arc::new(store),
        quota: quota::Quotas::default(),
        cfg,
    });
    let ext: Arc<dyn std::any::Any + Send + Sync> = g.clone();
    let _ = state.extension.set(ext);
    purge::recover(&state, &g).await?;
    tm.resume_all(&state).await?;
    purge::spawn(&state, &g);
    let app = cloudcommon::service::app(state.clone(), PREFIX, handlers::routes(), Router::new());
    Ok(Built { state, app })
}
