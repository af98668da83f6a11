//! `GuestSyncstatusTask`: asks the host what state the guest is in (`GET
//! <host>/servers/<id>/status`) and applies it. A host that is offline, or that does not
//! know the guest, makes it `unknown`.

use apis::Error;
use apis::compute::{GuestStatus, ServerStatusReport};
use async_trait::async_trait;
use cloudcommon::resource::row_str;
use cloudcommon::tasks::{Next, Task, TaskRun};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{SYNCED, call_agent, log_fail, parse};
use crate::servers;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Params {
    pub server_id: String,
}

pub struct GuestSyncstatusTask;

#[async_trait]
impl Task for GuestSyncstatusTask {
    const NAME: &'static str = "GuestSyncstatusTask";
    type Params = Params;

    async fn stage(&self, t: &mut TaskRun<Params>, stage: &str, data: &Value) -> Result<Next, Error> {
        let ctx = t.ctx();
        let id = t.params.server_id.clone();
        if stage == SYNCED {
            let rep: ServerStatusReport = parse(data, "status")?;
            let status = match rep.status {
                GuestStatus::Running => servers::RUNNING,
                GuestStatus::Ready => servers::READY,
                _ => servers::UNKNOWN,
            };
            servers::note_generation(&ctx, &id, rep.generation).await?;
            servers::set_status(&ctx, &id, status, None).await?;
            return Ok(Next::Complete(json!({"server_id": id, "status": status})));
        }
        let row = servers::server(&ctx, &id).await?;
        let host = servers::host_of(&ctx, &row).await?;
        if row_str(&host, "host_status") != crate::hosts::HOST_ONLINE {
            servers::set_status(&ctx, &id, servers::UNKNOWN, None).await?;
            return Ok(Next::Complete(json!({"server_id": id, "status": servers::UNKNOWN})));
        }
        servers::set_status(&ctx, &id, servers::SYNC_STATUS, None).await?;
        call_agent(t, &host, (reqwest::Method::GET, &format!("/servers/{id}/status")), &Value::Null, SYNCED).await?;
        Ok(Next::Wait(SYNCED))
    }

    async fn on_failure(&self, t: &TaskRun<Params>, _stage: &str, reason: &str) {
        let id = &t.params.server_id;
        log_fail(servers::UNKNOWN, id, servers::set_status(&t.ctx(), id, servers::UNKNOWN, Some(reason)).await);
    }
}
