//! `GuestStartTask`: `starting`, `POST <host>/servers/<id>/start {desc}`, then `running`
//! with `last_start_at`; on failure `start_fail`.

use apis::Error;
use apis::compute::{GuestStatus, ServerStartRequest, ServerStatusReport};
use async_trait::async_trait;
use cloudcommon::db::now;
use cloudcommon::resource::Row;
use cloudcommon::tasks::{Next, Task, TaskRun};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{call_agent, fail_server, parse, to_value};
use crate::servers;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Params {
    pub server_id: String,
}

pub struct GuestStartTask;

pub const STARTED: &str = "started";

/// Sends the start call for the server; the caller waits for [`STARTED`].
pub async fn request_start<P>(t: &TaskRun<P>, server_id: &str) -> Result<(), Error> {
    let ctx = t.ctx();
    let row = servers::server(&ctx, server_id).await?;
    servers::set_status(&ctx, server_id, servers::STARTING, None).await?;
    let host = servers::host_of(&ctx, &row).await?;
    let req = ServerStartRequest { desc: crate::desc::build(&ctx, &row, None).await? };
    call_agent(t, &host, (reqwest::Method::POST, &format!("/servers/{server_id}/start")), &to_value(&req), STARTED)
        .await
}

/// Applies the host's answer to a start: running (or what the host says it is).
pub async fn apply_started<P>(t: &TaskRun<P>, server_id: &str, data: &Value) -> Result<&'static str, Error> {
    let ctx = t.ctx();
    let rep: ServerStatusReport = parse(data, "start")?;
    let status = if rep.status == GuestStatus::Running { servers::RUNNING } else { servers::READY };
    let mut p = Row::new();
    p.insert("last_start_at".into(), now().into());
    servers::set_fields(&ctx, server_id, p).await?;
    servers::note_generation(&ctx, server_id, rep.generation).await?;
    servers::set_status(&ctx, server_id, status, None).await?;
    Ok(status)
}

#[async_trait]
impl Task for GuestStartTask {
    const NAME: &'static str = "GuestStartTask";
    type Params = Params;

    async fn stage(&self, t: &mut TaskRun<Params>, stage: &str, data: &Value) -> Result<Next, Error> {
        let id = t.params.server_id.clone();
        if stage == STARTED {
            let status = apply_started(t, &id, data).await?;
            return Ok(Next::Complete(json!({"server_id": id, "status": status})));
        }
        request_start(t, &id).await?;
        Ok(Next::Wait(STARTED))
    }

    async fn on_failure(&self, t: &TaskRun<Params>, _stage: &str, reason: &str) {
        let id = &t.params.server_id;
        fail_server(&t.ctx(), id, servers::START_FAIL, reason).await;
    }
}
