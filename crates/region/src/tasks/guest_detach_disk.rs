//! `GuestDetachDiskTask`: a data disk leaves a server (hot-unplugged when it runs).
//!
//! ```text
//!  on_init  detach_disk: POST <host>/servers/<id>/sync with a desc without the disk
//!  synced   the guestdisks row goes; back to the status before; unless keep_disk, the
//!           disk is deleted (a DiskDeleteTask of its own)
//!  failure  detach_disk_fail (the disk stays attached)
//! ```

use apis::Error;
use async_trait::async_trait;
use cloudcommon::resource::store;
use cloudcommon::tasks::{Next, Task, TaskManager, TaskObject, TaskRun};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{SYNCED, fail_server, request_sync, synced};
use crate::servers;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Params {
    pub server_id: String,
    pub disk_id: String,
    pub keep_disk: bool,
    pub prev_status: String,
}

pub struct GuestDetachDiskTask;

#[async_trait]
impl Task for GuestDetachDiskTask {
    const NAME: &'static str = "GuestDetachDiskTask";
    type Params = Params;

    async fn stage(&self, t: &mut TaskRun<Params>, stage: &str, data: &Value) -> Result<Next, Error> {
        let ctx = t.ctx();
        let id = t.params.server_id.clone();
        if stage == SYNCED {
            crate::disks::unlink(&ctx, &id, &t.params.disk_id).await?;
            synced(&ctx, &id, data, &t.params.prev_status).await?;
            if !t.params.keep_disk
                && let Some(disk) = store::get_by_id(ctx.db(), &crate::disks::disk_spec(), &t.params.disk_id).await?
            {
                let p = super::disk_delete::Params { disk_id: t.params.disk_id.clone(), purge: false };
                TaskManager::of(t.svc())?
                    .start::<super::disk_delete::DiskDeleteTask>(
                        &ctx,
                        TaskObject::of(&crate::disks::disk_spec(), &disk),
                        &p,
                    )
                    .await?;
            }
            return Ok(Next::Complete(json!({"server_id": id, "disk_id": t.params.disk_id})));
        }
        let disk_id = t.params.disk_id.clone();
        request_sync(t, &id, |desc| desc.disks.retain(|d| d.disk_id != disk_id)).await?;
        Ok(Next::Wait(SYNCED))
    }

    async fn on_failure(&self, t: &TaskRun<Params>, _stage: &str, reason: &str) {
        fail_server(&t.ctx(), &t.params.server_id, servers::DETACH_DISK_FAIL, reason).await;
    }
}
