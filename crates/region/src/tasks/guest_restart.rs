//! `GuestRestartTask`: a stop (when running) and a start, as Cloudpods restarts.
//!
//! ```text
//!  on_init  running? stopping, POST stop : go to stopped
//!  stopped  starting, POST start
//!  started  running
//!  failure  stop_fail while stopping, start_fail while starting
//! ```

use apis::Error;
use async_trait::async_trait;
use cloudcommon::tasks::{Next, Task, TaskRun};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::guest_start::{STARTED, apply_started, request_start};
use super::guest_stop::{STOPPED, request_stop};
use crate::servers;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Params {
    pub server_id: String,
    #[serde(default)]
    pub is_force: bool,
}

pub struct GuestRestartTask;

#[async_trait]
impl Task for GuestRestartTask {
    const NAME: &'static str = "GuestRestartTask";
    type Params = Params;

    async fn stage(&self, t: &mut TaskRun<Params>, stage: &str, data: &Value) -> Result<Next, Error> {
        let id = t.params.server_id.clone();
        match stage {
            STOPPED => {
                request_start(t, &id).await?;
                Ok(Next::Wait(STARTED))
            }
            STARTED => {
                let status = apply_started(t, &id, data).await?;
                Ok(Next::Complete(json!({"server_id": id, "status": status})))
            }
            _ => {
                let row = servers::server(&t.ctx(), &id).await?;
                if cloudcommon::resource::row_str(&row, "power_states") != "on" {
                    return Ok(Next::Stage(STOPPED));
                }
                request_stop(t, &id, 30, t.params.is_force).await?;
                Ok(Next::Wait(STOPPED))
            }
        }
    }

    async fn on_failure(&self, t: &TaskRun<Params>, stage: &str, reason: &str) {
        let id = &t.params.server_id;
        let status = if stage == STARTED { servers::START_FAIL } else { servers::STOP_FAIL };
        super::fail_server(&t.ctx(), id, status, reason).await;
    }
}
