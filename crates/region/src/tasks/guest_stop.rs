//! `GuestStopTask`: `stopping`, `POST <host>/servers/<id>/stop {timeout, is_force}`, then
//! `ready`; on failure (the guest did not power off in time) `stop_fail`.

use apis::Error;
use apis::compute::ServerStopRequest;
use async_trait::async_trait;
use cloudcommon::tasks::{Next, Task, TaskRun};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{call_agent, fail_server, to_value};
use crate::servers;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Params {
    pub server_id: String,
    #[serde(default)]
    pub is_force: bool,
    /// Seconds the guest has to power off.
    #[serde(default)]
    pub timeout: u64,
}

pub struct GuestStopTask;

pub const STOPPED: &str = "stopped";

/// Sends the stop call; the caller waits for [`STOPPED`].
pub async fn request_stop<P>(t: &TaskRun<P>, server_id: &str, timeout: u64, is_force: bool) -> Result<(), Error> {
    let ctx = t.ctx();
    let row = servers::server(&ctx, server_id).await?;
    servers::set_status(&ctx, server_id, servers::STOPPING, None).await?;
    let host = servers::host_of(&ctx, &row).await?;
    let req = ServerStopRequest { timeout, is_force };
    call_agent(t, &host, (reqwest::Method::POST, &format!("/servers/{server_id}/stop")), &to_value(&req), STOPPED).await
}

/// Applies the host's answer to a stop.
pub async fn apply_stopped<P>(t: &TaskRun<P>, server_id: &str, data: &Value) -> Result<(), Error> {
    let ctx = t.ctx();
    super::note_report(&ctx, server_id, data).await?;
    servers::set_status(&ctx, server_id, servers::READY, None).await
}

#[async_trait]
impl Task for GuestStopTask {
    const NAME: &'static str = "GuestStopTask";
    type Params = Params;

    async fn stage(&self, t: &mut TaskRun<Params>, stage: &str, data: &Value) -> Result<Next, Error> {
        let id = t.params.server_id.clone();
        if stage == STOPPED {
            apply_stopped(t, &id, data).await?;
            return Ok(Next::Complete(json!({"server_id": id, "status": servers::READY})));
        }
        request_stop(t, &id, t.params.timeout, t.params.is_force).await?;
        Ok(Next::Wait(STOPPED))
    }

    async fn on_failure(&self, t: &TaskRun<Params>, _stage: &str, reason: &str) {
        let id = &t.params.server_id;
        fail_server(&t.ctx(), id, servers::STOP_FAIL, reason).await;
    }
}
