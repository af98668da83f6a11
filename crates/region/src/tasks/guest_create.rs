//! `GuestCreateTask`: a new server from its row (status `init`) to `ready` or `running`.
//!
//! ```text
//!  on_init            schedule  POST /scheduler (session = the server's id): host + storages
//!                     (a 4xx makes the scheduler reload from the region once, then retry;
//!                     an unreachable scheduler is tried 5 more times, a second apart)
//!  allocate_networks  network   host_id set; one address + MAC per NIC (guestnetworks)
//!  allocate_disks     disk      disk rows on the chosen storages + guestdisks;
//!                               scheduler clean-cache (the reservation is now real usage);
//!                               a DiskCreateTask child per disk not yet ready
//!  disks_ready        deploying POST <host>/servers/<id>/create {desc, on_finish}
//!  deployed           ready | running (the host's report, generation noted)
//!  failure            sched_fail | net_fail | disk_fail | deploy_fail, reason in the events;
//!                     what was allocated stays with the server until it is deleted
//! ```

use apis::Error;
use apis::compute::{DeployAction, GuestStatus, ServerDeployCallback, ServerDeployRequest};
use async_trait::async_trait;
use cloudcommon::db::{new_id, now};
use cloudcommon::resource::{Ctx, Row, row_str, store};
use cloudcommon::tasks::{Next, Task, TaskObject, TaskRun};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{call_agent, parse, to_value};
use crate::disks::{DISK_READY, disk_spec, guestdisk_spec, guestnetwork_spec, owned_row};
use crate::servers::{self, CreateSpec};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Params {
    pub server_id: String,
    /// The login password to set; dropped once the host has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default)]
    pub host_id: Option<String>,
    /// The storage of each disk, from the scheduler.
    #[serde(default)]
    pub storage_ids: Vec<String>,
}

pub struct GuestCreateTask;

const ALLOCATE_NETWORKS: &str = "allocate_networks";
const ALLOCATE_DISKS: &str = "allocate_disks";
const DISKS_READY: &str = "disks_ready";
const DEPLOYED: &str = "deployed";

#[async_trait]
impl Task for GuestCreateTask {
    const NAME: &'static str = "GuestCreateTask";
    type Params = Params;

    async fn stage(&self, t: &mut TaskRun<Params>, stage: &str, data: &Value) -> Result<Next, Error> {
        let ctx = t.ctx();
        let row = servers::server(&ctx, &t.params.server_id).await?;
        match stage {
            ALLOCATE_NETWORKS => allocate_networks(t, &ctx, &row).await,
            ALLOCATE_DISKS => allocate_disks(t, &ctx, &row).await,
            DISKS_READY => deploy(t, &ctx, &row).await,
            DEPLOYED => {
                let cb: ServerDeployCallback = parse(data, "deploy")?;
                t.params.password = None;
                let status = match cb.status {
                    Some(GuestStatus::Running) => servers::RUNNING,
                    _ => servers::READY,
                };
                let mut p = Row::new();
                if let Some(a) = cb.login_account {
                    p.insert("login_account".into(), a.into());
                }
                if let Some(os) = cb.os {
                    p.insert("os_name".into(), os.into());
                }
                if status == servers::RUNNING {
                    p.insert("last_start_at".into(), now().into());
                }
                p.insert("progress".into(), 100.into());
                servers::set_fields(&ctx, &t.params.server_id, p).await?;
                servers::note_generation(&ctx, &t.params.server_id, cb.generation).await?;
                servers::set_status(&ctx, &t.params.server_id, status, None).await?;
                Ok(Next::Complete(json!({"server_id": t.params.server_id, "status": status})))
            }
            _ => schedule(t, &ctx, &row).await,
        }
    }

    async fn on_failure(&self, t: &TaskRun<Params>, stage: &str, reason: &str) {
        let status = match stage {
            ALLOCATE_NETWORKS => servers::NET_FAIL,
            ALLOCATE_DISKS | DISKS_READY => servers::DISK_FAIL,
            DEPLOYED => servers::DEPLOY_FAIL,
            _ => servers::SCHED_FAIL,
        };
        let ctx = t.ctx();
        super::fail_server(&ctx, &t.params.server_id, status, reason).await;
        // Whatever the scheduler still holds for this task is not going to be used.
        if let Ok(r) = crate::region(t.svc()) {
            let host = t.params.host_id.clone().unwrap_or_default();
            if !host.is_empty() {
                r.remote.scheduler_clean(&host, Some(&t.params.server_id)).await;
            }
        }
    }
}

/// The scheduler's input for one server.
fn schedule_input(row: &Row, spec: &CreateSpec, session: &str) -> Value {
    json!({
        "vcpu_count": row.get("vcpu_count"),
        "vmem_size": row.get("vmem_size"),
        "hypervisor": "kvm",
        "project_id": row_str(row, "tenant_id"),
        "count": 1,
        "session_id": session,
        "disks": spec.disks.iter().map(|d| json!({"size": d.size, "backend": d.backend})).collect::<Vec<_>>(),
        "nets": spec.nets.iter().map(|n| json!({"network": n.network_id})).collect::<Vec<_>>(),
        "schedtags": if spec.schedtags.is_null() { json!([]) } else { spec.schedtags.clone() },
    })
}

async fn schedule(t: &mut TaskRun<Params>, ctx: &Ctx, row: &Row) -> Result<Next, Error> {
    if t.params.host_id.is_some() {
        return Ok(Next::Stage(ALLOCATE_NETWORKS));
    }
    servers::set_status(ctx, &t.params.server_id, servers::SCHEDULE, None).await?;
    let r = crate::region(t.svc())?;
    let spec = CreateSpec::of(row);
    // The server's id is the session: the scheduler can tell when the region committed it.
    let input = schedule_input(row, &spec, &t.params.server_id);
    let mut refreshed = false;
    let mut attempt = 0;
    let answer = loop {
        match r.remote.schedule(input.clone()).await {
            Ok(a) => break a,
            // The scheduler's cache may predate a host, network or disk just made: reload, retry once.
            Err(e) if e.status_code() < 500 && !refreshed => {
                refreshed = true;
                r.remote.scheduler_clean("", Some(&t.params.server_id)).await;
            }
            Err(e) if e.status_code() < 500 => return Ok(Next::Fail(e.to_string())),
            // Unreachable (restarting): a few tries, a second apart.
            Err(e) if attempt < 5 => {
                attempt += 1;
                tracing::warn!(server = %t.params.server_id, error = %e, "scheduler unavailable; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Ok(Next::Fail(format!("scheduler: {e}"))),
        }
    };
    let cand = answer.get("candidates").and_then(|c| c.get(0)).cloned().unwrap_or(Value::Null);
    let host_id = cand.get("host_id").and_then(Value::as_str).unwrap_or_default().to_string();
    if host_id.is_empty() {
        return Ok(Next::Fail("the scheduler found no host".into()));
    }
    t.params.storage_ids = cand
        .get("storage_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    if t.params.storage_ids.len() < spec.disks.len() {
        return Ok(Next::Fail("the scheduler gave fewer storages than disks".into()));
    }
    t.params.host_id = Some(host_id);
    t.set_progress(20).await?;
    Ok(Next::Stage(ALLOCATE_NETWORKS))
}

async fn allocate_networks(t: &mut TaskRun<Params>, ctx: &Ctx, row: &Row) -> Result<Next, Error> {
    let host_id = t.params.host_id.clone().unwrap_or_default();
    let mut p = Row::new();
    p.insert("host_id".into(), host_id.into());
    p.insert("status".into(), servers::NETWORK.into());
    servers::set_fields(ctx, &t.params.server_id, p).await?;
    let r = crate::region(t.svc())?;
    let spec = CreateSpec::of(row);
    let mine = store::select(
        ctx.db(),
        &guestnetwork_spec(),
        crate::common::eq("guestnetworks_tbl", "guest_id", &t.params.server_id),
    )
    .await?;
    for (i, n) in spec.nets.iter().enumerate() {
        if mine.iter().any(|g| g.get("index").and_then(Value::as_i64) == Some(i as i64)) {
            continue;
        }
        let net = store::get_by_id(ctx.db(), &crate::networks::network_spec(), &n.network_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("network {} is gone", n.network_id)))?;
        let gn_id = new_id();
        let req = crate::ipam::Request {
            preferred: n.address.as_deref().map(|a| crate::ipam::parse_ip("address", a)).transpose()?,
            ..Default::default()
        };
        let a = r.alloc.allocate(ctx.db(), &r, &net, (crate::ipalloc::OWNER_GUEST, &gn_id), &req, true).await?;
        let mut gn = owned_row(&gn_id, &format!("{}-nic{i}", row_str(row, "name")), row);
        for (k, v) in [
            ("guest_id", t.params.server_id.clone()),
            ("network_id", a.network_id.clone()),
            ("ip_addr", a.ip_addr.clone()),
            ("mac_addr", a.mac_addr.clone().unwrap_or_default()),
            ("ifname", crate::desc::ifname(&t.params.server_id, i as i64)),
            ("driver", n.driver.clone()),
        ] {
            gn.insert(k.into(), v.into());
        }
        gn.insert("index".into(), (i as i64).into());
        gn.insert("is_default".into(), (i == 0).into());
        let txn = ctx.db().begin().await?;
        let res = store::insert(&txn, &guestnetwork_spec(), &gn).await;
        match res {
            Ok(()) => txn.commit().await?,
            Err(e) => {
                drop(txn);
                let _ = r.alloc.release(ctx.db(), &a.network_id, &a.ip_addr, &gn_id, false).await;
                return Err(e);
            }
        }
    }
    servers::set_fields(ctx, &t.params.server_id, one("pending_ports", 0.into())).await?;
    t.set_progress(35).await?;
    Ok(Next::Stage(ALLOCATE_DISKS))
}

fn one(k: &str, v: Value) -> Row {
    let mut p = Row::new();
    p.insert(k.into(), v);
    p
}

async fn allocate_disks(t: &mut TaskRun<Params>, ctx: &Ctx, row: &Row) -> Result<Next, Error> {
    servers::set_status(ctx, &t.params.server_id, servers::DISK, None).await?;
    let spec = CreateSpec::of(row);
    let links = store::select(
        ctx.db(),
        &guestdisk_spec(),
        crate::common::eq("guestdisks_tbl", "guest_id", &t.params.server_id),
    )
    .await?;
    for (i, d) in spec.disks.iter().enumerate() {
        if links.iter().any(|l| l.get("index").and_then(Value::as_i64) == Some(i as i64)) {
            continue;
        }
        let disk_id = new_id();
        let mut disk = owned_row(&disk_id, &format!("{}-disk{i}", row_str(row, "name")), row);
        disk.insert("storage_id".into(), t.params.storage_ids[i].clone().into());
        disk.insert("disk_format".into(), d.format.clone().into());
        disk.insert("disk_size".into(), d.size.into());
        disk.insert("template_id".into(), d.image_id.clone().into());
        disk.insert("disk_type".into(), (if i == 0 { "sys" } else { "data" }).into());
        disk.insert("auto_delete".into(), true.into());
        disk.insert("status".into(), crate::disks::DISK_INIT.into());
        let mut gd = owned_row(&new_id(), &format!("{}-{i}", row_str(row, "name")), row);
        gd.insert("guest_id".into(), t.params.server_id.clone().into());
        gd.insert("disk_id".into(), disk_id.into());
        gd.insert("index".into(), (i as i64).into());
        gd.insert("driver".into(), d.driver.clone().into());
        gd.insert("boot_index".into(), (if i == 0 { 0 } else { -1 }).into());
        let txn = ctx.db().begin().await?;
        store::insert(&txn, &disk_spec(), &disk).await?;
        store::insert(&txn, &guestdisk_spec(), &gd).await?;
        txn.commit().await?;
    }
    servers::set_fields(ctx, &t.params.server_id, one("pending_storage", 0.into())).await?;
    // What the scheduler reserved is now committed usage in the region: it drops the
    // reservation and reloads the host. The create does not wait for that (the rows are
    // committed, so whenever it runs it counts this server once).
    let r = crate::region(t.svc())?;
    if let Some(h) = t.params.host_id.clone() {
        let sid = t.params.server_id.clone();
        tokio::spawn(async move { r.remote.scheduler_clean(&h, Some(&sid)).await });
    }
    let mut waiting = false;
    for d in disks_of(ctx, &t.params.server_id).await? {
        if row_str(&d, "status") == DISK_READY {
            continue;
        }
        let params = super::disk_create::Params { disk_id: row_str(&d, "id").into() };
        t.start_child::<super::disk_create::DiskCreateTask>(TaskObject::of(&disk_spec(), &d), &params)?;
        waiting = true;
    }
    t.set_progress(50).await?;
    Ok(if waiting { Next::Wait(DISKS_READY) } else { Next::Stage(DISKS_READY) })
}

/// A server's disk rows, in index order.
pub async fn disks_of(ctx: &Ctx, server_id: &str) -> Result<Vec<Row>, Error> {
    let mut links =
        store::select(ctx.db(), &guestdisk_spec(), crate::common::eq("guestdisks_tbl", "guest_id", server_id)).await?;
    links.sort_by_key(|l| l.get("index").and_then(Value::as_i64).unwrap_or(0));
    let mut out = vec![];
    for l in links {
        if let Some(d) = store::get_by_id(ctx.db(), &disk_spec(), row_str(&l, "disk_id")).await? {
            out.push(d);
        }
    }
    Ok(out)
}

async fn deploy(t: &mut TaskRun<Params>, ctx: &Ctx, row: &Row) -> Result<Next, Error> {
    for d in disks_of(ctx, &t.params.server_id).await? {
        if row_str(&d, "status") != DISK_READY {
            return Ok(Next::Fail(format!("disk {} is {}", row_str(&d, "name"), row_str(&d, "status"))));
        }
    }
    servers::set_status(ctx, &t.params.server_id, servers::DEPLOYING, None).await?;
    let host = servers::host_of(ctx, row).await?;
    let desc = crate::desc::build(ctx, row, t.params.password.clone()).await?;
    let auto_start = row.get("auto_start").and_then(Value::as_bool).unwrap_or(false);
    let req = ServerDeployRequest {
        desc,
        action: DeployAction::Create,
        reset_password: t.params.password.is_some(),
        on_finish: if auto_start { "none" } else { "shutdown" }.into(),
    };
    let path = format!("/servers/{}/create", t.params.server_id);
    call_agent(t, &host, (reqwest::Method::POST, &path), &to_value(&req), DEPLOYED).await?;
    t.set_progress(80).await?;
    Ok(Next::Wait(DEPLOYED))
}
