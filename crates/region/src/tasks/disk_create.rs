//! `DiskCreateTask`: allocates a disk on its storage's host.
//!
//! ```text
//!  on_init       image in the storage's cache? no: image_caching, POST <host>/disks/image_cache
//!  image_cached  storagecachedimage active (path)
//!  create        allocating, POST <host>/disks/<storage>/create/<disk> {size, format, image_id}
//!  created       access_path, size, format from the host; ready
//!  failure       alloc_failed, reason in the disk's events
//! ```

use apis::Error;
use apis::compute::{
    CacheImageInput, DiskCreateCallback, DiskCreateInfo, DiskCreateRequest, ImageCacheCallback, ImageCacheRequest,
};
use async_trait::async_trait;
use cloudcommon::resource::{Ctx, Row, row_str, store};
use cloudcommon::tasks::{Next, Task, TaskRun};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{call_agent, log_fail, parse, to_value};
use crate::disks::{self, disk_spec};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Params {
    pub disk_id: String,
}

pub struct DiskCreateTask;

const IMAGE_CACHED: &str = "image_cached";
const CREATE: &str = "create";
const CREATED: &str = "created";

/// The disk's storage and the (online or not) host that has it.
pub async fn storage_and_host(ctx: &Ctx, disk: &Row) -> Result<(Row, Row), Error> {
    let storage_id = row_str(disk, "storage_id");
    let storage = store::get_by_id(ctx.db(), &crate::storages::storage_spec(), storage_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("storage {storage_id} of disk {} is gone", row_str(disk, "name"))))?;
    let rows = ctx
        .db()
        .raw_query(
            "SELECT host_id FROM hoststorages_tbl WHERE storage_id = ? AND deleted = ?",
            vec![storage_id.into(), false.into()],
        )
        .await?;
    let host_id = rows.first().and_then(|r| r.try_get_by_index::<String>(0).ok()).unwrap_or_default();
    let host = store::get_by_id(ctx.db(), &crate::hosts::host_spec(), &host_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("storage {} is on no host", row_str(&storage, "name"))))?;
    Ok((storage, host))
}

#[async_trait]
impl Task for DiskCreateTask {
    const NAME: &'static str = "DiskCreateTask";
    type Params = Params;

    async fn stage(&self, t: &mut TaskRun<Params>, stage: &str, data: &Value) -> Result<Next, Error> {
        let ctx = t.ctx();
        let id = t.params.disk_id.clone();
        let disk = store::get_by_id(ctx.db(), &disk_spec(), &id).await?.ok_or_else(|| Error::not_found("disk", &id))?;
        if row_str(&disk, "status") == disks::DISK_READY && stage != CREATED {
            return Ok(Next::Complete(json!({"disk_id": id})));
        }
        let (storage, host) = storage_and_host(&ctx, &disk).await?;
        let sc = row_str(&storage, "storagecache_id").to_string();
        let image = row_str(&disk, "template_id").to_string();
        match stage {
            IMAGE_CACHED => {
                let cb: ImageCacheCallback = parse(data, "image cache")?;
                let mut p = Row::new();
                p.insert("status".into(), "active".into());
                p.insert("path".into(), cb.path.into());
                disks::upsert_cached(&ctx, &sc, &image, &p).await?;
                Ok(Next::Stage(CREATE))
            }
            CREATE => {
                disks::set_disk_status(&ctx, &id, disks::DISK_ALLOCATING, None).await?;
                let req = DiskCreateRequest {
                    disk: DiskCreateInfo {
                        size: row_i64(&disk, "disk_size") as u64,
                        format: row_str(&disk, "disk_format").into(),
                        image_id: Some(image).filter(|i| !i.is_empty()),
                    },
                };
                let path = format!("/disks/{}/create/{id}", row_str(&storage, "id"));
                call_agent(t, &host, (reqwest::Method::POST, &path), &to_value(&req), CREATED).await?;
                Ok(Next::Wait(CREATED))
            }
            CREATED => {
                let cb: DiskCreateCallback = parse(data, "disk create")?;
                let mut p = Row::new();
                p.insert("access_path".into(), cb.path.into());
                if cb.size > 0 {
                    p.insert("disk_size".into(), (cb.size as i64).into());
                }
                if !cb.format.is_empty() {
                    p.insert("disk_format".into(), cb.format.into());
                }
                p.insert("status".into(), disks::DISK_READY.into());
                store::update(ctx.db(), &disk_spec(), &id, &p).await?;
                Ok(Next::Complete(json!({"disk_id": id})))
            }
            _ => {
                if image.is_empty() || disks::is_cached(&ctx, &sc, &image).await? {
                    disks::set_disk_status(&ctx, &id, disks::DISK_START_ALLOC, None).await?;
                    return Ok(Next::Stage(CREATE));
                }
                disks::set_disk_status(&ctx, &id, disks::DISK_IMAGE_CACHING, None).await?;
                let r = crate::region(t.svc())?;
                let mut p = Row::new();
                p.insert("status".into(), "caching".into());
                disks::upsert_cached(&ctx, &sc, &image, &p).await?;
                let req = ImageCacheRequest {
                    disk: CacheImageInput {
                        image_id: image.clone(),
                        format: Some("qcow2".into()),
                        storagecache_id: sc.clone(),
                        src_url: Some(r.remote.image_url(&image).await?),
                    },
                };
                call_agent(t, &host, (reqwest::Method::POST, "/disks/image_cache"), &to_value(&req), IMAGE_CACHED)
                    .await?;
                // A first download of a big image takes a while.
                Ok(Next::WaitFor(IMAGE_CACHED, std::time::Duration::from_secs(6 * 3600)))
            }
        }
    }

    async fn on_failure(&self, t: &TaskRun<Params>, stage: &str, reason: &str) {
        let ctx = t.ctx();
        if stage == IMAGE_CACHED
            && let Ok(Some(disk)) = store::get_by_id(ctx.db(), &disk_spec(), &t.params.disk_id).await
            && let Ok((storage, _)) = storage_and_host(&ctx, &disk).await
        {
            let mut p = Row::new();
            p.insert("status".into(), "cache_fail".into());
            let _ = disks::upsert_cached(&ctx, row_str(&storage, "storagecache_id"), row_str(&disk, "template_id"), &p)
                .await;
        }
        log_fail(
            disks::DISK_ALLOC_FAILED,
            &t.params.disk_id,
            disks::set_disk_status(&ctx, &t.params.disk_id, disks::DISK_ALLOC_FAILED, Some(reason)).await,
        );
    }
}

pub fn row_i64(row: &Row, k: &str) -> i64 {
    row.get(k).and_then(Value::as_i64).unwrap_or(0)
}
