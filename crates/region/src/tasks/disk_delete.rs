//! `DiskDeleteTask`: removes a disk from its host, then its row.
//!
//! ```text
//!  on_init  deallocating; allocated on a host? POST <host>/disks/<storage>/delete/<disk>
//!           (purge, never allocated, or its storage or host gone: straight to remove)
//!  remove   the row (soft delete)
//!  failure  dealloc_failed, reason in the disk's events
//! ```

use apis::Error;
use apis::compute::DiskDeleteRequest;
use async_trait::async_trait;
use cloudcommon::resource::{row_str, store};
use cloudcommon::tasks::{Next, Task, TaskRun};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{call_agent, log_fail, to_value};
use crate::disks::{self, disk_spec};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Params {
    pub disk_id: String,
    /// Forget the disk here without asking its host (the host is gone).
    #[serde(default)]
    pub purge: bool,
}

pub struct DiskDeleteTask;

const REMOVE: &str = "remove";

#[async_trait]
impl Task for DiskDeleteTask {
    const NAME: &'static str = "DiskDeleteTask";
    type Params = Params;

    async fn stage(&self, t: &mut TaskRun<Params>, stage: &str, _data: &Value) -> Result<Next, Error> {
        let ctx = t.ctx();
        let id = t.params.disk_id.clone();
        let Some(disk) = store::get_by_id(ctx.db(), &disk_spec(), &id).await? else {
            return Ok(Next::Complete(json!({"disk_id": id})));
        };
        if stage == REMOVE {
            store::soft_delete(ctx.db(), &disk_spec(), &disk).await?;
            return Ok(Next::Complete(json!({"disk_id": id})));
        }
        disks::set_disk_status(&ctx, &id, disks::DISK_DEALLOCATING, None).await?;
        if t.params.purge || row_str(&disk, "access_path").is_empty() {
            return Ok(Next::Stage(REMOVE));
        }
        let (storage, host) = match super::disk_create::storage_and_host(&ctx, &disk).await {
            Ok(x) => x,
            Err(Error::NotFound(_)) => return Ok(Next::Stage(REMOVE)),
            Err(e) => return Err(e),
        };
        let path = format!("/disks/{}/delete/{id}", row_str(&storage, "id"));
        call_agent(t, &host, (reqwest::Method::POST, &path), &to_value(&DiskDeleteRequest {}), REMOVE).await?;
        Ok(Next::Wait(REMOVE))
    }

    async fn on_failure(&self, t: &TaskRun<Params>, _stage: &str, reason: &str) {
        let ctx = t.ctx();
        log_fail(
            disks::DISK_DEALLOC_FAILED,
            &t.params.disk_id,
            disks::set_disk_status(&ctx, &t.params.disk_id, disks::DISK_DEALLOC_FAILED, Some(reason)).await,
        );
    }
}
