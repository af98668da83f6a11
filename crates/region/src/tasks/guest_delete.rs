//! `GuestDeleteTask`: a server into the recycle bin, or gone for good with everything it held.
//!
//! ```text
//!  on_init      powered on (and not purge)? stopping, POST <host>/servers/<id>/stop (forced)
//!  stopped      recycle bin: pending_deleted, ready -> done (cancel-delete restores it)
//!               else deleting, POST <host>/servers/<id>/delete (no host, or purge: skip)
//!  undeployed   a DiskDeleteTask child per disk
//!  finish       addresses freed (held back), joint rows and the server row go,
//!               scheduler clean-cache of the host
//!  failure      delete_fail, reason in the events (delete again, or purge if the host is gone)
//! ```

use apis::Error;
use async_trait::async_trait;
use cloudcommon::db::now;
use cloudcommon::resource::{Row, row_str, store};
use cloudcommon::tasks::{Next, Task, TaskObject, TaskRun};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::guest_stop::{STOPPED, request_stop};
use super::{call_agent, log_fail, to_value};
use crate::common::eq;
use crate::disks::{disk_spec, guestdisk_spec, guestnetwork_spec};
use crate::servers;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Params {
    pub server_id: String,
    /// Into the recycle bin rather than gone.
    pub pending_delete: bool,
    /// Forget it here without calling its host.
    pub purge: bool,
    #[serde(default)]
    pub host_id: String,
}

pub struct GuestDeleteTask;

const UNDEPLOYED: &str = "undeployed";
const FINISH: &str = "finish";

#[async_trait]
impl Task for GuestDeleteTask {
    const NAME: &'static str = "GuestDeleteTask";
    type Params = Params;

    async fn stage(&self, t: &mut TaskRun<Params>, stage: &str, _data: &Value) -> Result<Next, Error> {
        let ctx = t.ctx();
        let id = t.params.server_id.clone();
        let Some(row) = store::get_by_id(ctx.db(), &servers::server_spec(), &id).await? else {
            return Ok(Next::Complete(json!({"server_id": id})));
        };
        t.params.host_id = row_str(&row, "host_id").to_string();
        match stage {
            STOPPED => {
                if t.params.pending_delete {
                    let mut p = Row::new();
                    p.insert("pending_deleted".into(), true.into());
                    p.insert("pending_deleted_at".into(), now().into());
                    servers::set_fields(&ctx, &id, p).await?;
                    let st = if row_str(&row, "host_id").is_empty() { servers::SCHED_FAIL } else { servers::READY };
                    servers::set_status(&ctx, &id, st, None).await?;
                    return Ok(Next::Complete(json!({"server_id": id, "pending_deleted": true})));
                }
                servers::set_status(&ctx, &id, servers::DELETING, None).await?;
                if t.params.purge || t.params.host_id.is_empty() {
                    return Ok(Next::Stage(UNDEPLOYED));
                }
                let host = servers::host_of(&ctx, &row).await?;
                let req = apis::compute::ServerDeleteRequest {};
                call_agent(
                    t,
                    &host,
                    (reqwest::Method::POST, &format!("/servers/{id}/delete")),
                    &to_value(&req),
                    UNDEPLOYED,
                )
                .await?;
                Ok(Next::Wait(UNDEPLOYED))
            }
            UNDEPLOYED => {
                let mut waiting = false;
                for d in super::guest_create::disks_of(&ctx, &id).await? {
                    let p = super::disk_delete::Params { disk_id: row_str(&d, "id").into(), purge: t.params.purge };
                    t.start_child::<super::disk_delete::DiskDeleteTask>(TaskObject::of(&disk_spec(), &d), &p)?;
                    waiting = true;
                }
                Ok(if waiting { Next::Wait(FINISH) } else { Next::Stage(FINISH) })
            }
            FINISH => {
                let r = crate::region(t.svc())?;
                let nics =
                    store::select(ctx.db(), &guestnetwork_spec(), eq("guestnetworks_tbl", "guest_id", &id)).await?;
                for n in &nics {
                    r.alloc
                        .release(ctx.db(), row_str(n, "network_id"), row_str(n, "ip_addr"), row_str(n, "id"), true)
                        .await?;
                    store::soft_delete(ctx.db(), &guestnetwork_spec(), n).await?;
                }
                for l in store::select(ctx.db(), &guestdisk_spec(), eq("guestdisks_tbl", "guest_id", &id)).await? {
                    // A disk that outlived its delete (a failed child) keeps its row for a retry.
                    store::soft_delete(ctx.db(), &guestdisk_spec(), &l).await?;
                }
                store::soft_delete(ctx.db(), &servers::server_spec(), &row).await?;
                if !t.params.host_id.is_empty() {
                    r.remote.scheduler_clean(&t.params.host_id, Some(t.id())).await;
                }
                Ok(Next::Complete(json!({"server_id": id, "deleted": true})))
            }
            _ => {
                let on = row_str(&row, "power_states") == "on";
                if on && !t.params.purge && !t.params.host_id.is_empty() {
                    request_stop(t, &id, 30, true).await?;
                    return Ok(Next::Wait(STOPPED));
                }
                Ok(Next::Stage(STOPPED))
            }
        }
    }

    async fn on_failure(&self, t: &TaskRun<Params>, _stage: &str, reason: &str) {
        let id = &t.params.server_id;
        log_fail(servers::DELETE_FAIL, id, servers::set_status(&t.ctx(), id, servers::DELETE_FAIL, Some(reason)).await);
    }
}
