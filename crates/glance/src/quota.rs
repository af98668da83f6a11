//! Per-project image quotas: how many images (`quota_images`) and how many MB of image
//! data (`quota_image_size_mb`). Usage is what the database holds plus what uploads in
//! progress have reserved; creates are serialised so two cannot both take the last slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use apis::Error;
use cloudcommon::db::Db;

use crate::GlanceConfig;
use crate::models::images;

#[derive(Default)]
pub struct Quotas {
    /// Uploads in progress: image id -> (project, bytes allowed so far).
    reserved: Arc<Mutex<HashMap<String, (String, u64)>>>,
    /// Held by creates from the count check to the insert.
    pub create_lock: tokio::sync::Mutex<()>,
}

/// An upload's claim on its project's size quota; dropped, it is released.
pub struct Reservation {
    image_id: String,
    reserved: Arc<Mutex<HashMap<String, (String, u64)>>>,
    /// How many bytes the upload may store.
    pub allowance: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.reserved.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.image_id);
    }
}

pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1u64 << 20) as f64)
}

impl Quotas {
    /// Refuses a new image when the project already has `quota_images`.
    pub async fn check_count(&self, db: &Db, cfg: &GlanceConfig, project_id: &str) -> Result<(), Error> {
        let (count, _) = images::project_usage(db, project_id, "").await?;
        if count >= cfg.quota_images {
            return Err(Error::InsufficientResource(format!(
                "image quota exceeded: the project has {count} images and may have {} (quota_images)",
                cfg.quota_images
            )));
        }
        Ok(())
    }

    /// Reserves the project's remaining image space for an upload to `image_id`; `needed`
    /// (the Content-Length, when known) must fit in it.
    pub async fn reserve(
        &self,
        db: &Db,
        cfg: &GlanceConfig,
        project_id: &str,
        image_id: &str,
        needed: Option<u64>,
    ) -> Result<Reservation, Error> {
        let limit = cfg.quota_image_size_mb.saturating_mul(1 << 20);
        let (_, used) = images::project_usage(db, project_id, image_id).await?;
        let mut map = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        let others: u64 =
            map.iter().filter(|(id, (p, _))| *id != image_id && p == project_id).map(|(_, (_, b))| *b).sum();
        let left = limit.saturating_sub(used).saturating_sub(others);
        if let Some(n) = needed
            && n > left
        {
            return Err(Error::InsufficientResource(format!(
                "image size quota exceeded: the image is {} and the project has {} left of its {} (quota_image_size_mb)",
                mb(n),
                mb(left),
                mb(limit)
            )));
        }
        let allowance = needed.unwrap_or(left);
        map.insert(image_id.to_string(), (project_id.to_string(), allowance));
        Ok(Reservation { image_id: image_id.to_string(), reserved: self.reserved.clone(), allowance })
    }
}
