//! `GuestChangeConfigTask`: new vCPU and memory for a stopped server.
//!
//! ```text
//!  on_init  change_flavor: the new sizes on the row, POST <host>/servers/<id>/sync {desc}
//!  synced   ready
//!  failure  the old sizes back, change_flavor_fail
//! ```

use apis::Error;
use async_trait::async_trait;
use cloudcommon::resource::Row;
use cloudcommon::tasks::{Next, Task, TaskRun};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{SYNCED, fail_server, log_fail, request_sync, synced};
use crate::servers;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Params {
    pub server_id: String,
    pub vcpu_count: i64,
    pub vmem_size: i64,
    pub old_vcpu_count: i64,
    pub old_vmem_size: i64,
}

pub struct GuestChangeConfigTask;

fn sizes(cpu: i64, mem: i64) -> Row {
    let mut p = Row::new();
    p.insert("vcpu_count".into(), cpu.into());
    p.insert("vmem_size".into(), mem.into());
    p
}

#[async_trait]
impl Task for GuestChangeConfigTask {
    const NAME: &'static str = "GuestChangeConfigTask";
    type Params = Params;

    async fn stage(&self, t: &mut TaskRun<Params>, stage: &str, data: &Value) -> Result<Next, Error> {
        let ctx = t.ctx();
        let id = t.params.server_id.clone();
        if stage == SYNCED {
            synced(&ctx, &id, data, servers::READY).await?;
            return Ok(Next::Complete(json!({"server_id": id, "vcpu_count": t.params.vcpu_count,
                "vmem_size": t.params.vmem_size})));
        }
        servers::set_fields(&ctx, &id, sizes(t.params.vcpu_count, t.params.vmem_size)).await?;
        request_sync(t, &id, |_| {}).await?;
        Ok(Next::Wait(SYNCED))
    }

    async fn on_failure(&self, t: &TaskRun<Params>, _stage: &str, reason: &str) {
        let ctx = t.ctx();
        let id = &t.params.server_id;
        let old = sizes(t.params.old_vcpu_count, t.params.old_vmem_size);
        log_fail("the old sizes", id, servers::set_fields(&ctx, id, old).await);
        fail_server(&ctx, id, servers::CHANGE_FLAVOR_FAIL, reason).await;
    }
}
