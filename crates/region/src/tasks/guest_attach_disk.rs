//! `GuestAttachDiskTask`: a ready disk joins a server (hotplugged when it runs).
//!
//! ```text
//!  on_init  attach_disk: guestdisks row at the next index, POST <host>/servers/<id>/sync {desc}
//!  synced   back to the status before (ready or running)
//!  failure  the guestdisks row goes, attach_disk_fail
//! ```

use apis::Error;
use async_trait::async_trait;
use cloudcommon::db::new_id;
use cloudcommon::resource::{row_str, store};
use cloudcommon::tasks::{Next, Task, TaskRun};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{SYNCED, fail_server, log_fail, request_sync, synced};
use crate::common::eq;
use crate::disks::{guestdisk_spec, owned_row};
use crate::servers;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Params {
    pub server_id: String,
    pub disk_id: String,
    pub driver: String,
    /// The server's status before, restored on success.
    pub prev_status: String,
}

pub struct GuestAttachDiskTask;

#[async_trait]
impl Task for GuestAttachDiskTask {
    const NAME: &'static str = "GuestAttachDiskTask";
    type Params = Params;

    async fn stage(&self, t: &mut TaskRun<Params>, stage: &str, data: &Value) -> Result<Next, Error> {
        let ctx = t.ctx();
        let id = t.params.server_id.clone();
        if stage == SYNCED {
            synced(&ctx, &id, data, &t.params.prev_status).await?;
            return Ok(Next::Complete(json!({"server_id": id, "disk_id": t.params.disk_id})));
        }
        let row = servers::server(&ctx, &id).await?;
        let links = store::select(ctx.db(), &guestdisk_spec(), eq("guestdisks_tbl", "guest_id", &id)).await?;
        if !links.iter().any(|l| row_str(l, "disk_id") == t.params.disk_id) {
            let index = links.iter().filter_map(|l| l.get("index").and_then(Value::as_i64)).max().map_or(0, |m| m + 1);
            let mut gd = owned_row(&new_id(), &format!("{}-{index}", row_str(&row, "name")), &row);
            gd.insert("guest_id".into(), id.clone().into());
            gd.insert("disk_id".into(), t.params.disk_id.clone().into());
            gd.insert("index".into(), index.into());
            gd.insert("driver".into(), t.params.driver.clone().into());
            let txn = ctx.db().begin().await?;
            store::insert(&txn, &guestdisk_spec(), &gd).await?;
            txn.commit().await?;
        }
        request_sync(t, &id, |_| {}).await?;
        Ok(Next::Wait(SYNCED))
    }

    async fn on_failure(&self, t: &TaskRun<Params>, _stage: &str, reason: &str) {
        let ctx = t.ctx();
        let id = &t.params.server_id;
        log_fail("the detached disk", id, crate::disks::unlink(&ctx, id, &t.params.disk_id).await);
        fail_server(&ctx, id, servers::ATTACH_DISK_FAIL, reason).await;
    }
}
