//! The region's tasks, one per file. Each moves its object through Cloudpods' statuses and,
//! on failure, puts it in the matching `*_fail` status with the reason in its events.
//!
//! | task | object | stages |
//! |---|---|---|
//! | [`guest_create::GuestCreateTask`] | server | schedule, allocate networks, allocate disks (children: [`disk_create::DiskCreateTask`]), deploy |
//! | [`guest_start::GuestStartTask`] | server | start |
//! | [`guest_stop::GuestStopTask`] | server | stop |
//! | [`guest_restart::GuestRestartTask`] | server | stop, start |
//! | [`guest_delete::GuestDeleteTask`] | server | stop, recycle bin or undeploy, disks (children: [`disk_delete::DiskDeleteTask`]), free IPs |
//! | [`guest_syncstatus::GuestSyncstatusTask`] | server | ask the host |
//! | [`guest_change_config::GuestChangeConfigTask`] | server | new cpu/memory, sync |
//! | [`guest_attach_disk::GuestAttachDiskTask`] / [`guest_detach_disk::GuestDetachDiskTask`] | server | joint row, sync |
//! | [`disk_create::DiskCreateTask`] | disk | image cache, create |
//! | [`disk_delete::DiskDeleteTask`] | disk | delete on the host, row |
//!
//! Every stage is idempotent (it checks what is already done), so a restart may re-run it.

pub mod disk_create;
pub mod disk_delete;
pub mod guest_attach_disk;
pub mod guest_change_config;
pub mod guest_create;
pub mod guest_delete;
pub mod guest_detach_disk;
pub mod guest_restart;
pub mod guest_start;
pub mod guest_stop;
pub mod guest_syncstatus;

use apis::Error;
use cloudcommon::resource::{Row, row_str};
use cloudcommon::tasks::{TaskManager, TaskRun};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub fn register(tm: &TaskManager) {
    tm.register(guest_create::GuestCreateTask);
    tm.register(guest_start::GuestStartTask);
    tm.register(guest_stop::GuestStopTask);
    tm.register(guest_restart::GuestRestartTask);
    tm.register(guest_delete::GuestDeleteTask);
    tm.register(guest_syncstatus::GuestSyncstatusTask);
    tm.register(guest_change_config::GuestChangeConfigTask);
    tm.register(guest_attach_disk::GuestAttachDiskTask);
    tm.register(guest_detach_disk::GuestDetachDiskTask);
    tm.register(disk_create::DiskCreateTask);
    tm.register(disk_delete::DiskDeleteTask);
}

/// Calls the host agent of `host` for task `t`; the agent's result comes as `t`'s callback,
/// to a notify URL naming the stage `awaits` (the stage the caller then waits for), so that a
/// stray answer to another call (a stage that ran twice) is ignored rather than taken for it.
pub async fn call_agent<P>(
    t: &TaskRun<P>,
    host: &Row,
    (method, path): (reqwest::Method, &str),
    body: &Value,
    awaits: &str,
) -> Result<(), Error> {
    if row_str(host, "host_status") != crate::hosts::HOST_ONLINE {
        return Err(Error::InvalidStatus(format!("host {} is offline", row_str(host, "name"))));
    }
    let r = crate::region(t.svc())?;
    let [(id_h, id), (url_h, url)] = t.agent_headers();
    let headers = [(id_h, id), (url_h, format!("{url}?__stage__={awaits}"))];
    r.remote.agent(host, method, path, &headers, Some(body)).await
}

/// The stage that waits for the answer to [`request_sync`].
pub const SYNCED: &str = "synced";

/// Pushes the server's description, as `edit` leaves it, to its host (`POST
/// /servers/<id>/sync`: the host applies it, hotplugging when the guest runs); the caller
/// then waits for [`SYNCED`].
pub async fn request_sync<P>(
    t: &TaskRun<P>,
    server_id: &str,
    edit: impl FnOnce(&mut apis::compute::GuestJsonDesc),
) -> Result<(), Error> {
    let ctx = t.ctx();
    let row = crate::servers::server(&ctx, server_id).await?;
    let host = crate::servers::host_of(&ctx, &row).await?;
    let mut desc = crate::desc::build(&ctx, &row, None).await?;
    edit(&mut desc);
    let req = apis::compute::ServerSyncRequest { desc };
    let path = format!("/servers/{server_id}/sync");
    call_agent(t, &host, (reqwest::Method::POST, &path), &to_value(&req), SYNCED).await
}

/// Notes the generation of a host's status report, when the callback body is one.
pub async fn note_report(ctx: &cloudcommon::resource::Ctx, server_id: &str, data: &Value) -> Result<(), Error> {
    if let Ok(rep) = serde_json::from_value::<apis::compute::ServerStatusReport>(data.clone()) {
        crate::servers::note_generation(ctx, server_id, rep.generation).await?;
    }
    Ok(())
}

/// A sync the host answered: its report's generation noted, the server back in `status`.
pub async fn synced(
    ctx: &cloudcommon::resource::Ctx,
    server_id: &str,
    data: &Value,
    status: &str,
) -> Result<(), Error> {
    note_report(ctx, server_id, data).await?;
    crate::servers::set_status(ctx, server_id, status, None).await
}

/// A server's task failed: its `*_fail` status with the reason (an event). A failure path
/// cannot fail in turn: what cannot be recorded is logged.
pub async fn fail_server(ctx: &cloudcommon::resource::Ctx, server_id: &str, status: &str, reason: &str) {
    log_fail(status, server_id, crate::servers::set_status(ctx, server_id, status, Some(reason)).await);
}

/// A callback body as the contract type `T`.
pub fn parse<T: DeserializeOwned>(data: &Value, what: &str) -> Result<T, Error> {
    serde_json::from_value(data.clone()).map_err(|e| Error::Internal(format!("the host's {what} answer: {e}")))
}

pub fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Logs a failure to record a `*_fail` status (the task is failing anyway).
pub fn log_fail(what: &str, id: &str, r: Result<(), Error>) {
    if let Err(e) = r {
        tracing::error!(object = id, error = %e, "cannot record {what}");
    }
}
