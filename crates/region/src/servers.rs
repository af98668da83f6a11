//! Servers (Cloudpods' guests): create input, actions and the status a host reports.
//!
//! ```text
//!  POST /servers ──> row (init) ──> GuestCreateTask: schedule ─ allocate (host, IPs, disks)
//!     ─ disks (image cache, create) ─ deploy ─> ready | running
//!        \-> sched_fail | net_fail | disk_fail | deploy_fail   (reason in the server's events)
//!  start:   ready|start_fail|stop_fail  -> start_start -> starting -> running    (start_fail)
//!  stop:    running|stop_fail           -> start_stop  -> stopping -> ready      (stop_fail)
//!  restart: running|ready|*_fail        -> stopping -> starting -> running
//!  change-config (ready): change_flavor -> ready                      (change_flavor_fail)
//!  attachdisk / detachdisk: attach_disk / detach_disk -> previous     (attach_disk_fail, ...)
//!  DELETE:  start_delete -> (stop) -> recycle bin (pending_deleted, cancel-delete)
//!           or deleting -> disks, undeploy, IPs freed -> gone         (delete_fail)
//!  host offline -> unknown; host back -> syncstatus
//!  GET /servers/<id>/vnc (running, host online) -> agent GET /servers/<id>/vnc -> {host, port}
//! ```
//! Invariants: an action is accepted only in a stable status (never while a task owns the
//! server); every task ends in a stable status; a host's report (`POST /servers/<id>/status`)
//! is applied only when its `generation` is newer than the last one applied.

use std::collections::HashMap;

use apis::Error;
use apis::compute::GuestStatus;
use async_trait::async_trait;
use cloudcommon::db::now;
use cloudcommon::resource::dispatch::view;
use cloudcommon::resource::{Col, Ctx, Owner, OwnerScope, Resource, ResourceSpec, Row, row_bool, row_str, store};
use cloudcommon::tasks::{TaskManager, TaskObject};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use apis::compute::size_mb;

use crate::common::{add_names, col_in, eq, int_field, lookup, reference};
use crate::disks::{disk_spec, guestdisk_spec, guestnetwork_spec};
use crate::geo::resource_struct;
use crate::tasks;

pub const INIT: &str = "init";
pub const SCHEDULE: &str = "schedule";
pub const SCHED_FAIL: &str = "sched_fail";
pub const NETWORK: &str = "network";
pub const NET_FAIL: &str = "net_fail";
pub const DISK: &str = "disk";
pub const DISK_FAIL: &str = "disk_fail";
pub const DEPLOYING: &str = "deploying";
pub const DEPLOY_FAIL: &str = "deploy_fail";
pub const READY: &str = "ready";
pub const START_START: &str = "start_start";
pub const STARTING: &str = "starting";
pub const START_FAIL: &str = "start_fail";
pub const RUNNING: &str = "running";
pub const START_STOP: &str = "start_stop";
pub const STOPPING: &str = "stopping";
pub const STOP_FAIL: &str = "stop_fail";
pub const CHANGE_FLAVOR: &str = "change_flavor";
pub const CHANGE_FLAVOR_FAIL: &str = "change_flavor_fail";
pub const ATTACH_DISK: &str = "attach_disk";
pub const ATTACH_DISK_FAIL: &str = "attach_disk_fail";
pub const DETACH_DISK: &str = "detach_disk";
pub const DETACH_DISK_FAIL: &str = "detach_disk_fail";
pub const SYNC_STATUS: &str = "sync_status";
pub const START_DELETE: &str = "start_delete";
pub const DELETING: &str = "deleting";
pub const DELETE_FAIL: &str = "delete_fail";
pub const UNKNOWN: &str = "unknown";

/// Statuses in which no task owns the server, so an action may start one.
pub fn is_stable(status: &str) -> bool {
    matches!(status, READY | RUNNING | UNKNOWN) || status.ends_with("_fail")
}

/// Statuses of servers still being created (the scheduler's `creating` count).
pub const CREATING: &[&str] = &[INIT, SCHEDULE, NETWORK, DISK, DEPLOYING];

pub fn server_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "server", "servers", "guests_tbl")
        .owner(OwnerScope::Project)
        .status(INIT)
        .col(Col::int("vcpu_count").create().not_null(1.into()))
        .col(Col::int("vmem_size").create().not_null(0.into()))
        .col(Col::str("hypervisor", 16).create().not_null("kvm".into()))
        .col(Col::str("boot_order", 8).create().not_null("cdn".into()))
        .col(Col::str("os_type", 16).create())
        .col(Col::str("host_id", 128).index())
        .col(Col::str("keypair_id", 128).create())
        .col(Col::str("secgrp_id", 128).create())
        .col(Col::text("user_data").create().hidden())
        .col(Col::bool("auto_start").create().not_null(false.into()))
        .col(Col::bool("disable_delete").rw().not_null(false.into()))
        .col(Col::str("shutdown_behavior", 16).create().not_null("stop".into()))
        .col(Col::str("power_states", 8).not_null("off".into()))
        .col(Col::bool("pending_deleted").not_null(false.into()).index())
        .col(Col::time("pending_deleted_at"))
        .col(Col::time("last_start_at"))
        .col(Col::int("generation").not_null(0.into()))
        .col(Col::str("login_account", 64))
        .col(Col::str("os_name", 64))
        .col(Col::int("progress").not_null(0.into()))
        .col(Col::json("create_spec").hidden())
        // What a server still being created will use, until its disks and NICs exist.
        .col(Col::int("pending_storage").not_null(0.into()).hidden())
        .col(Col::int("pending_ports").not_null(0.into()).hidden())
}

resource_struct!(Servers, server_spec);

/// One disk of a create request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskConf {
    pub index: u32,
    pub image_id: Option<String>,
    /// MB.
    pub size: i64,
    /// Storage type wanted (`local`), or empty.
    pub backend: String,
    pub driver: String,
    pub format: String,
}

/// One NIC of a create request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetConf {
    pub network_id: String,
    pub address: Option<String>,
    pub driver: String,
}

/// A create request, checked and resolved (stored with the server, read by its tasks).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateSpec {
    pub disks: Vec<DiskConf>,
    pub nets: Vec<NetConf>,
    pub prefer_host_id: Option<String>,
    pub schedtags: Value,
}

impl CreateSpec {
    pub fn of(row: &Row) -> CreateSpec {
        row.get("create_spec").cloned().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
    }
}

async fn parse_disks(ctx: &Ctx, raw: &Row) -> Result<Vec<DiskConf>, Error> {
    let Some(Value::Array(items)) = raw.get("disks") else {
        return Err(Error::invalid("disks", "give at least one disk: [{\"image_id\", \"size\"}] or \"<image>:10g\""));
    };
    if items.is_empty() || items.len() > 16 {
        return Err(Error::invalid("disks", "give 1 to 16 disks"));
    }
    let mut out = vec![];
    for (i, d) in items.iter().enumerate() {
        let field = format!("disks.{i}");
        let mut conf =
            DiskConf { index: i as u32, driver: "virtio".into(), format: "qcow2".into(), ..Default::default() };
        let mut image: Option<String> = None;
        let mut size: Option<Value> = None;
        match d {
            Value::String(s) => {
                // `10g`, `local:10g`, `<image>`, `<image>:10g`, `<image>:local:10g`
                let parts: Vec<&str> = s.split(':').filter(|p| !p.is_empty()).collect();
                for (j, p) in parts.iter().enumerate() {
                    if crate::storages::STORAGE_TYPES.contains(p) {
                        conf.backend = p.to_string();
                    } else if j == parts.len() - 1 && size_mb(&field, &Value::from(*p)).is_ok() {
                        size = Some(Value::from(*p));
                    } else if image.is_none() {
                        image = Some(p.to_string());
                    } else {
                        return Err(Error::invalid(&field, format!("cannot read {s:?} as [image:][backend:]size")));
                    }
                }
            }
            Value::Object(m) => {
                image = reference(m, &["image_id", "image"]);
                size = m.get("size").cloned().filter(|v| !v.is_null());
                if let Some(b) = m.get("backend").or_else(|| m.get("storage_type")).and_then(Value::as_str) {
                    if !crate::storages::STORAGE_TYPES.contains(&b) {
                        return Err(Error::invalid(&field, format!("backend {b:?} is not a storage type")));
                    }
                    conf.backend = b.into();
                }
                if let Some(dr) = m.get("driver").and_then(Value::as_str) {
                    if !crate::disks::DISK_DRIVERS.contains(&dr) {
                        return Err(Error::invalid(&field, format!("driver {dr:?} is not virtio, scsi, ide or sata")));
                    }
                    conf.driver = dr.into();
                }
                if let Some(f) = m.get("format").and_then(Value::as_str) {
                    if !crate::disks::DISK_FORMATS.contains(&f) {
                        return Err(Error::invalid(&field, format!("format {f:?} is not qcow2 or raw")));
                    }
                    conf.format = f.into();
                }
            }
            _ => return Err(Error::invalid(&field, "must be an object or a string like <image>:10g")),
        }
        let size = size.map(|v| size_mb(&format!("{field}.size"), &v)).transpose()?;
        if let Some(key) = image {
            if i > 0 {
                return Err(Error::invalid(&field, "only the first disk (the system disk) takes an image"));
            }
            let img = crate::disks::cached_image(ctx, &key).await?;
            let min = Ord::max(row_i64(&img, "min_disk"), (row_i64(&img, "size") + (1 << 20) - 1) >> 20);
            let size = size.unwrap_or(Ord::max(min, 1));
            if size < min {
                return Err(Error::invalid(
                    &field,
                    format!("{size} MB is smaller than image {}'s {min} MB", row_str(&img, "name")),
                ));
            }
            conf.image_id = Some(row_str(&img, "id").to_string());
            conf.size = size;
        } else {
            conf.size = size.ok_or_else(|| Error::invalid(&field, "a disk without an image needs a size"))?;
        }
        if !(1..=16 << 20).contains(&conf.size) {
            return Err(Error::invalid(&field, "size must be from 1 MB to 16 TB"));
        }
        out.push(conf);
    }
    Ok(out)
}

async fn parse_nets(ctx: &Ctx, raw: &Row) -> Result<Vec<NetConf>, Error> {
    let items = match raw.get("nets").or_else(|| raw.get("networks")) {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(Error::invalid("nets", "must be a list of {\"network\": <name or id>}")),
    };
    if items.len() > 8 {
        return Err(Error::invalid("nets", "at most 8 NICs"));
    }
    let mut out = vec![];
    for (i, n) in items.iter().enumerate() {
        let field = format!("nets.{i}");
        let (key, address) = match n {
            Value::String(s) => (s.clone(), None),
            Value::Object(m) => (
                reference(m, &["network", "network_id"]).ok_or_else(|| Error::missing(format!("{field}.network")))?,
                m.get("address").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string),
            ),
            _ => return Err(Error::invalid(&field, "must be a network name or {\"network\": ...}")),
        };
        let net = lookup(ctx, "networks", &key).await?;
        if let Some(a) = &address {
            let ip = crate::ipam::parse_ip(&format!("{field}.address"), a)?;
            let range = crate::ipalloc::network_range(&net)?;
            if !range.contains(ip) {
                return Err(Error::invalid(
                    format!("{field}.address"),
                    format!("{a} is outside network {}", row_str(&net, "name")),
                ));
            }
        }
        out.push(NetConf { network_id: row_str(&net, "id").into(), address, driver: "virtio".into() });
    }
    Ok(out)
}

fn row_i64(row: &Row, k: &str) -> i64 {
    row.get(k).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))).unwrap_or(0)
}

/// Passwords a guest takes: 6 to 64 printable ASCII characters.
fn check_password(p: &str) -> Result<(), Error> {
    if !(6..=64).contains(&p.len()) || !p.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::invalid("password", "must be 6 to 64 printable ASCII characters without spaces"));
    }
    Ok(())
}

#[async_trait]
impl Resource for Servers {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, raw: &Row, owner: &Owner) -> Result<(), Error> {
        let vcpu = int_field(raw, "vcpu_count", 1, 256)?.unwrap_or(1);
        let mem = match raw.get("vmem_size") {
            Some(v) if !v.is_null() => size_mb("vmem_size", v)?,
            _ => return Err(Error::missing("vmem_size")),
        };
        if !(16..=4 << 20).contains(&mem) {
            return Err(Error::invalid("vmem_size", "must be from 16 MB to 4 TB"));
        }
        input.insert("vcpu_count".into(), vcpu.into());
        input.insert("vmem_size".into(), mem.into());
        match raw.get("hypervisor").and_then(Value::as_str) {
            None | Some("kvm") | Some("") => input.insert("hypervisor".into(), "kvm".into()),
            Some(h) => return Err(Error::invalid("hypervisor", format!("{h:?}: only kvm is supported"))),
        };
        let name = row_str(input, "name");
        if !crate::desc::valid_hostname(name) {
            // Names become hostnames: letters, digits, '-', at most 60.
            return Err(Error::invalid(
                "name",
                format!("{name:?}: use letters, digits and '-' (a hostname), at most 60 characters"),
            ));
        }
        if let Some(p) = raw.get("password").and_then(Value::as_str) {
            check_password(p)?;
        }
        if let Some(u) = raw.get("user_data").and_then(Value::as_str)
            && u.len() > 64 * 1024
        {
            return Err(Error::invalid("user_data", "at most 64 KiB"));
        }
        let disks = parse_disks(ctx, raw).await?;
        let nets = parse_nets(ctx, raw).await?;
        if let Some(k) = reference(raw, &["keypair", "keypair_id"]) {
            let kp = lookup(ctx, "keypairs", &k).await?;
            input.insert("keypair_id".into(), row_str(&kp, "id").into());
        }
        let sg = reference(raw, &["secgroup", "secgrp_id"]).unwrap_or(crate::secgroups::DEFAULT_SECGROUP.into());
        let sg = lookup(ctx, "secgroups", &sg).await?;
        input.insert("secgrp_id".into(), row_str(&sg, "id").into());
        let prefer_host_id = match reference(raw, &["prefer_host", "prefer_host_id"]) {
            Some(h) => {
                let host = crate::common::lookup_internal(ctx, &crate::hosts::host_spec(), &h).await?;
                Some(row_str(&host, "id").to_string())
            }
            None => None,
        };
        let storage: i64 = disks.iter().map(|d| d.size).sum();
        let ports = nets.len() as i64;
        crate::quotas::check(
            ctx,
            &owner.project_id,
            crate::quotas::Quota { count: 1, cpu: vcpu, memory: mem, storage, port: ports, secgroup: 0 },
        )
        .await?;
        let spec =
            CreateSpec { disks, nets, prefer_host_id, schedtags: raw.get("schedtags").cloned().unwrap_or(Value::Null) };
        input.insert("create_spec".into(), serde_json::to_value(&spec).map_err(|e| Error::Internal(e.to_string()))?);
        input.insert("pending_storage".into(), storage.into());
        input.insert("pending_ports".into(), ports.into());
        input.insert("status".into(), INIT.into());
        Ok(())
    }

    async fn post_create(&self, ctx: &Ctx, row: &Row, raw: &Row) -> Result<(), Error> {
        // Quota again, counting only servers created before this one: of two concurrent
        // creates that together pass the limit, the later one is refused.
        if let Err(e) = crate::quotas::recheck_server(ctx, row).await {
            store::soft_delete(ctx.db(), &self.spec, row).await?;
            return Err(e);
        }
        let params = tasks::guest_create::Params {
            server_id: row_str(row, "id").into(),
            password: raw.get("password").and_then(Value::as_str).map(str::to_string),
            ..Default::default()
        };
        let tm = TaskManager::of(&ctx.svc)?;
        tm.start::<tasks::guest_create::GuestCreateTask>(ctx, TaskObject::of(&self.spec, row), &params).await?;
        Ok(())
    }

    async fn validate_update(&self, _ctx: &Ctx, _row: &Row, patch: &mut Row, _raw: &Row) -> Result<(), Error> {
        if let Some(n) = patch.get("name").and_then(Value::as_str)
            && !crate::desc::valid_hostname(n)
        {
            return Err(Error::invalid("name", format!("{n:?}: use letters, digits and '-'")));
        }
        Ok(())
    }

    async fn validate_delete(&self, _ctx: &Ctx, row: &Row) -> Result<(), Error> {
        check_deletable(row)
    }

    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        start_delete(ctx, row, DeleteOptions::default()).await
    }

    /// `DELETE /servers/<id>[?override_pending_delete=true][&purge=true]`: the recycle bin,
    /// for good, or only forgotten here (its host is gone; system rights).
    async fn delete_with_query(&self, ctx: &Ctx, row: &Row, query: &[(String, String)]) -> Result<(), Error> {
        let flag =
            |k: &str| query.iter().any(|(q, v)| q == k && cloudcommon::resource::query::parse_bool(v) == Some(true));
        let opts = DeleteOptions { override_pending_delete: flag("override_pending_delete"), purge: flag("purge") };
        if opts.purge {
            crate::common::require_system(ctx, self, "delete")?;
        }
        start_delete(ctx, row, opts).await
    }

    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        add_details(ctx, rows).await
    }

    async fn list_filter(
        &self,
        _ctx: &Ctx,
        q: &cloudcommon::resource::query::ListQuery,
    ) -> Result<Option<Condition>, Error> {
        let mut c = Condition::all();
        let mut any = false;
        for (k, v) in &q.extra {
            if k == "host" || k == "host_id" {
                c = c.add(eq("guests_tbl", "host_id", v));
                any = true;
            }
        }
        // As Cloudpods: the recycle bin is hidden unless asked for (`pending_delete=true|all`).
        match q.pending_delete.as_deref() {
            Some("all") => {}
            Some(v) => {
                let v = cloudcommon::resource::query::parse_bool(v)
                    .ok_or_else(|| Error::invalid("pending_delete", "must be true, false or all"))?;
                c = c.add(eq_bool("pending_deleted", v));
                any = true;
            }
            None => {
                c = c.add(eq_bool("pending_deleted", false));
                any = true;
            }
        }
        Ok(any.then_some(c))
    }

    async fn context_filter(&self, _ctx: &Ctx, plural: &str, id: &str) -> Result<Option<Condition>, Error> {
        Ok(match plural {
            "hosts" => Some(eq(self.spec.table, "host_id", id)),
            _ => None,
        })
    }

    /// `GET /servers/<id>/vnc`: where the running server's screen is, asked of its host agent.
    async fn get_spec(&self, ctx: &Ctx, row: &Row, spec: &str) -> Result<Value, Error> {
        match spec {
            "vnc" => vnc(ctx, row).await,
            _ => Err(Error::NotFound(format!("server has no spec {spec}"))),
        }
    }

    async fn perform(&self, ctx: &Ctx, row: &Row, action: &str, body: &Row) -> Result<Value, Error> {
        let id = row_str(row, "id").to_string();
        match action {
            "start" => {
                start_task::<tasks::guest_start::GuestStartTask>(
                    ctx,
                    row,
                    &[READY, START_FAIL, STOP_FAIL],
                    START_START,
                    tasks::guest_start::Params { server_id: id.clone() },
                )
                .await?
            }
            "stop" => {
                let params = tasks::guest_stop::Params {
                    server_id: id.clone(),
                    is_force: body.get("is_force").and_then(Value::as_bool).unwrap_or(false),
                    timeout: int_field(body, "timeout", 0, 3600)?.unwrap_or(30) as u64,
                };
                start_task::<tasks::guest_stop::GuestStopTask>(
                    ctx,
                    row,
                    &[RUNNING, STOP_FAIL, UNKNOWN],
                    START_STOP,
                    params,
                )
                .await?
            }
            "restart" => {
                let params = tasks::guest_restart::Params {
                    server_id: id.clone(),
                    is_force: body.get("is_force").and_then(Value::as_bool).unwrap_or(false),
                };
                start_task::<tasks::guest_restart::GuestRestartTask>(
                    ctx,
                    row,
                    &[RUNNING, READY, START_FAIL, STOP_FAIL],
                    STOPPING,
                    params,
                )
                .await?
            }
            "syncstatus" => {
                if row_str(row, "host_id").is_empty() {
                    return Err(Error::InvalidStatus(format!("server {} is on no host", row_str(row, "name"))));
                }
                let params = tasks::guest_syncstatus::Params { server_id: id.clone() };
                let all: Vec<&str> = vec![];
                start_task::<tasks::guest_syncstatus::GuestSyncstatusTask>(ctx, row, &all, SYNC_STATUS, params).await?
            }
            "change-config" => change_config(ctx, row, body).await?,
            "attachdisk" | "attach-disk" => attach_disk(ctx, row, body).await?,
            "detachdisk" | "detach-disk" => detach_disk(ctx, row, body).await?,
            "cancel-delete" => {
                if !row_bool(row, "pending_deleted") {
                    return Err(Error::InvalidStatus(format!(
                        "server {} is not in the recycle bin",
                        row_str(row, "name")
                    )));
                }
                let mut p = Row::new();
                p.insert("pending_deleted".into(), false.into());
                p.insert("pending_deleted_at".into(), Value::Null);
                store::update(ctx.db(), &self.spec, &id, &p).await?;
            }
            "status" => {
                // Host agents report here (system rights); owners use syncstatus.
                crate::common::require_system(ctx, self, "perform")?;
                let report: apis::compute::ServerStatusReport = serde_json::from_value(Value::Object(body.clone()))
                    .map_err(|e| Error::invalid("status", e.to_string()))?;
                let applied = apply_report(ctx, &id, report.status, report.generation).await?;
                return Ok(json!({"applied": applied}));
            }
            _ => return Err(Error::NotFound(format!("server has no action {action}"))),
        }
        let row = server(ctx, &id).await?;
        Ok(json!({"server": view(ctx, self, row).await?}))
    }
}

/// The VNC endpoint of a running server on an online host: `{"id", "host", "port", "protocol"}`.
async fn vnc(ctx: &Ctx, row: &Row) -> Result<Value, Error> {
    let name = row_str(row, "name");
    let status = row_str(row, "status");
    if status != RUNNING && status != UNKNOWN {
        return Err(Error::InvalidStatus(format!("server {name} is {status}: its console needs it running")));
    }
    let host = host_of(ctx, row).await?;
    if row_str(&host, "host_status") != crate::hosts::HOST_ONLINE {
        return Err(Error::Unavailable(format!("host {} of server {name} is offline", row_str(&host, "name"))));
    }
    if status != RUNNING {
        return Err(Error::InvalidStatus(format!("server {name} is {status}: its console needs it running")));
    }
    let id = row_str(row, "id");
    let region = crate::region(&ctx.svc)?;
    let v = region.remote.agent_get(&host, &format!("/servers/{id}/vnc")).await?;
    let port = v.get("port").and_then(Value::as_u64).filter(|p| (1..=65535).contains(p));
    let addr = v.get("host").and_then(Value::as_str).filter(|h| !h.is_empty());
    let (Some(port), Some(addr)) = (port, addr) else {
        return Err(Error::Unavailable(format!(
            "host {} gave no VNC address for server {name}",
            row_str(&host, "name")
        )));
    };
    Ok(json!({"id": id, "host": addr, "port": port, "protocol": "vnc"}))
}

fn eq_bool(col: &str, v: bool) -> Condition {
    Condition::all().add(Expr::col((Alias::new("guests_tbl"), Alias::new(col.to_string()))).eq(v))
}

/// The server row `id` (deleted or not found: 404).
pub async fn server(ctx: &Ctx, id: &str) -> Result<Row, Error> {
    store::get_by_id(ctx.db(), &server_spec(), id).await?.ok_or_else(|| Error::not_found("server", id))
}

/// Sets a server's status; with a reason, records why (an event and an action record).
pub async fn set_status(ctx: &Ctx, id: &str, status: &str, reason: Option<&str>) -> Result<(), Error> {
    let mut p = Row::new();
    p.insert("status".into(), status.into());
    // Power follows what is known for sure; a transitional or failed status keeps the last.
    let power = match status {
        RUNNING => Some("on"),
        READY => Some("off"),
        UNKNOWN => Some("unknown"),
        _ => None,
    };
    if let Some(power) = power {
        p.insert("power_states".into(), power.into());
    }
    set_fields(ctx, id, p).await?;
    if let Some(reason) = reason
        && let Some(row) = store::get_by_id(ctx.db(), &server_spec(), id).await?
    {
        ctx.svc.actionlog.record(ctx, &server_spec(), &row, status, false, json!({"reason": reason})).await;
    }
    Ok(())
}

pub async fn set_fields(ctx: &Ctx, id: &str, patch: Row) -> Result<(), Error> {
    store::update(ctx.db(), &server_spec(), id, &patch).await
}

/// The host row a server is on.
pub async fn host_of(ctx: &Ctx, row: &Row) -> Result<Row, Error> {
    let host_id = row_str(row, "host_id");
    if host_id.is_empty() {
        return Err(Error::InvalidStatus(format!("server {} is on no host", row_str(row, "name"))));
    }
    store::get_by_id(ctx.db(), &crate::hosts::host_spec(), host_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("host {host_id} of server {} is gone", row_str(row, "name"))))
}

/// Starts task `T` on a server in one of `allowed` statuses (empty: any stable one), after
/// setting `status`; the compare-and-set on the status keeps two actions from racing.
async fn start_task<T: cloudcommon::tasks::Task>(
    ctx: &Ctx,
    row: &Row,
    allowed: &[&str],
    status: &str,
    params: T::Params,
) -> Result<(), Error> {
    let cur = row_str(row, "status");
    let name = row_str(row, "name");
    if row_bool(row, "pending_deleted") {
        return Err(Error::InvalidStatus(format!("server {name} is in the recycle bin: cancel-delete first")));
    }
    let ok = if allowed.is_empty() { is_stable(cur) } else { allowed.contains(&cur) };
    if !ok {
        let want = if allowed.is_empty() { "a stable status".to_string() } else { allowed.join(", ") };
        return Err(Error::InvalidStatus(format!("server {name} is {cur}; this needs {want}")));
    }
    if !row_str(row, "host_id").is_empty() {
        let host = host_of(ctx, row).await?;
        if row_str(&host, "host_status") != crate::hosts::HOST_ONLINE {
            return Err(Error::InvalidStatus(format!("host {} of server {name} is offline", row_str(&host, "name"))));
        }
    } else {
        return Err(Error::InvalidStatus(format!("server {name} is on no host")));
    }
    claim(ctx, row, cur, status).await?;
    let started = match TaskManager::of(&ctx.svc) {
        Ok(tm) => tm.start::<T>(ctx, TaskObject::of(&server_spec(), row), &params).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if started.is_err() {
        // No task will move it on: give the status back.
        let _ = set_status(ctx, row_str(row, "id"), cur, None).await;
    }
    started
}

/// Moves the server from `from` to `to` unless someone else changed it first.
async fn claim(ctx: &Ctx, row: &Row, from: &str, to: &str) -> Result<(), Error> {
    let n = ctx
        .db()
        .raw_exec(
            "UPDATE guests_tbl SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
            vec![to.into(), now().into(), row_str(row, "id").into(), from.into()],
        )
        .await?;
    if n == 0 {
        return Err(Error::InvalidStatus(format!("server {} changed meanwhile; try again", row_str(row, "name"))));
    }
    Ok(())
}

/// A host's report of a guest's state, applied if newer than the last one applied.
pub async fn apply_report(ctx: &Ctx, id: &str, status: GuestStatus, generation: u64) -> Result<bool, Error> {
    let row = server(ctx, id).await?;
    let crashed = status == GuestStatus::Crashed;
    let status = match status {
        GuestStatus::Running => RUNNING,
        // A crashed guest is off: ready, so it can be started again, with the crash recorded.
        GuestStatus::Ready | GuestStatus::Crashed => READY,
        GuestStatus::Unknown => UNKNOWN,
        _ => return Ok(false),
    };
    // Only stable servers take unsolicited reports; a task applies its own results.
    let cur = row_str(&row, "status");
    if !is_stable(cur) && cur != SYNC_STATUS {
        return Ok(false);
    }
    let n = ctx
        .db()
        .raw_exec(
            "UPDATE guests_tbl SET status = ?, power_states = ?, generation = ?, updated_at = ? \
             WHERE id = ? AND generation < ?",
            vec![
                status.into(),
                (if status == RUNNING { "on" } else { "off" }).into(),
                (generation as i64).into(),
                now().into(),
                id.into(),
                (generation as i64).into(),
            ],
        )
        .await?;
    if n > 0 && crashed {
        let note = json!({"reason": "the guest crashed (its QEMU process ended without a shutdown)"});
        ctx.svc.actionlog.record(ctx, &server_spec(), &row, "crash", false, note).await;
    }
    Ok(n > 0)
}

/// Records the generation of a report a task applied (never moving it backwards).
pub async fn note_generation(ctx: &Ctx, id: &str, generation: u64) -> Result<(), Error> {
    ctx.db()
        .raw_exec(
            "UPDATE guests_tbl SET generation = ? WHERE id = ? AND generation < ?",
            vec![(generation as i64).into(), id.into(), (generation as i64).into()],
        )
        .await?;
    Ok(())
}

fn check_deletable(row: &Row) -> Result<(), Error> {
    let name = row_str(row, "name");
    if row_bool(row, "disable_delete") {
        return Err(Error::Forbidden(format!(
            "server {name} has delete protection (disable_delete): turn it off first"
        )));
    }
    let st = row_str(row, "status");
    if !is_stable(st) && st != INIT {
        return Err(Error::InvalidStatus(format!("server {name} is {st}: wait for it to finish")));
    }
    Ok(())
}

/// `DELETE /servers/<id>` query options.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct DeleteOptions {
    /// Delete for good now, even with the recycle bin on.
    pub override_pending_delete: bool,
    /// Only forget the server here (its host is gone): no calls to the host.
    pub purge: bool,
}

/// Starts deleting a server: recycle bin or for good, per the options and the region's config.
pub async fn start_delete(ctx: &Ctx, row: &Row, opts: DeleteOptions) -> Result<(), Error> {
    check_deletable(row)?;
    let r = crate::region(&ctx.svc)?;
    let name = row_str(row, "name");
    let pending = r.cfg.enable_pending_delete && !opts.override_pending_delete && !opts.purge;
    if row_bool(row, "pending_deleted") && pending {
        return Err(Error::InvalidStatus(format!(
            "server {name} is already in the recycle bin: cancel-delete it, or delete with override_pending_delete=true"
        )));
    }
    if row_str(row, "status") == INIT {
        return Err(Error::InvalidStatus(format!("server {name} is being created: wait for it to finish")));
    }
    let cur = row_str(row, "status");
    claim(ctx, row, cur, START_DELETE).await?;
    let params = tasks::guest_delete::Params {
        server_id: row_str(row, "id").into(),
        pending_delete: pending,
        purge: opts.purge,
        ..Default::default()
    };
    let started = match TaskManager::of(&ctx.svc) {
        Ok(tm) => tm
            .start::<tasks::guest_delete::GuestDeleteTask>(ctx, TaskObject::of(&server_spec(), row), &params)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    if started.is_err() {
        let _ = set_status(ctx, row_str(row, "id"), cur, None).await;
    }
    started
}

/// `change-config {"vcpu_count", "vmem_size"}` of a stopped server, if its host has room.
async fn change_config(ctx: &Ctx, row: &Row, body: &Row) -> Result<(), Error> {
    let name = row_str(row, "name");
    let cpu = int_field(body, "vcpu_count", 1, 256)?;
    let mem = match body.get("vmem_size") {
        Some(v) if !v.is_null() => Some(size_mb("vmem_size", v)?),
        _ => None,
    };
    if let Some(m) = mem
        && !(16..=4 << 20).contains(&m)
    {
        return Err(Error::invalid("vmem_size", "must be from 16 MB to 4 TB"));
    }
    if cpu.is_none() && mem.is_none() {
        return Err(Error::invalid("vcpu_count", "give vcpu_count and/or vmem_size"));
    }
    let st = row_str(row, "status");
    if st == RUNNING {
        return Err(Error::InvalidStatus(format!("server {name} is running: stop it to change its cpu or memory")));
    }
    let (old_cpu, old_mem) = (row_i64(row, "vcpu_count"), row_i64(row, "vmem_size"));
    let (new_cpu, new_mem) = (cpu.unwrap_or(old_cpu), mem.unwrap_or(old_mem));
    let host = host_of(ctx, row).await?;
    let used = host_commit(ctx, row_str(&host, "id")).await?;
    let bound = |k: &str, d: f64| host.get(k).and_then(Value::as_f64).unwrap_or(d);
    let cpu_free = (row_i64(&host, "cpu_count") as f64 * bound("cpu_cmtbound", 8.0)) as i64
        - row_i64(&host, "cpu_reserved")
        - (used.0 - old_cpu);
    let mem_free = (row_i64(&host, "mem_size") as f64 * bound("mem_cmtbound", 1.0)) as i64
        - row_i64(&host, "mem_reserved")
        - (used.1 - old_mem);
    if new_cpu > cpu_free || new_mem > mem_free {
        return Err(Error::InsufficientResource(format!(
            "host {} has room for {cpu_free} vCPU and {mem_free} MB for this server; asked {new_cpu} vCPU, {new_mem} MB",
            row_str(&host, "name")
        )));
    }
    let (dcpu, dmem) = (Ord::max(new_cpu - old_cpu, 0), Ord::max(new_mem - old_mem, 0));
    crate::quotas::check(
        ctx,
        row_str(row, "tenant_id"),
        crate::quotas::Quota { cpu: dcpu, memory: dmem, ..crate::quotas::Quota::zero() },
    )
    .await?;
    let params = tasks::guest_change_config::Params {
        server_id: row_str(row, "id").into(),
        vcpu_count: new_cpu,
        vmem_size: new_mem,
        old_vcpu_count: old_cpu,
        old_vmem_size: old_mem,
    };
    start_task::<tasks::guest_change_config::GuestChangeConfigTask>(
        ctx,
        row,
        &[READY, CHANGE_FLAVOR_FAIL, START_FAIL],
        CHANGE_FLAVOR,
        params,
    )
    .await
}

/// `attachdisk {"disk_id"}`: a ready, unattached disk on a storage of the server's host.
async fn attach_disk(ctx: &Ctx, row: &Row, body: &Row) -> Result<(), Error> {
    let key = reference(body, &["disk_id", "disk"]).ok_or_else(|| Error::missing("disk_id"))?;
    let disk = lookup(ctx, "disks", &key).await?;
    let dname = row_str(&disk, "name");
    if row_str(&disk, "status") != crate::disks::DISK_READY {
        return Err(Error::InvalidStatus(format!("disk {dname} is {}, not ready", row_str(&disk, "status"))));
    }
    if let Some(gd) = crate::disks::attached_to(ctx, row_str(&disk, "id")).await? {
        return Err(Error::InvalidStatus(format!("disk {dname} is already attached to {}", row_str(&gd, "guest_id"))));
    }
    let host_id = row_str(row, "host_id");
    let on_host = ctx
        .db()
        .raw_query(
            "SELECT id FROM hoststorages_tbl WHERE host_id = ? AND storage_id = ? AND deleted = ?",
            vec![host_id.into(), row_str(&disk, "storage_id").into(), false.into()],
        )
        .await?;
    if on_host.is_empty() {
        return Err(Error::InvalidInput {
            field: "disk_id".into(),
            reason: format!("disk {dname} is on a storage the server's host does not have"),
        });
    }
    let driver = crate::disks::driver_of(body)?;
    let params = tasks::guest_attach_disk::Params {
        server_id: row_str(row, "id").into(),
        disk_id: row_str(&disk, "id").into(),
        driver,
        prev_status: row_str(row, "status").into(),
    };
    start_task::<tasks::guest_attach_disk::GuestAttachDiskTask>(ctx, row, &[READY, RUNNING], ATTACH_DISK, params).await
}

/// `detachdisk {"disk_id", "keep_disk"}`: a data disk (not the system disk).
async fn detach_disk(ctx: &Ctx, row: &Row, body: &Row) -> Result<(), Error> {
    let key = reference(body, &["disk_id", "disk"]).ok_or_else(|| Error::missing("disk_id"))?;
    let disk = lookup(ctx, "disks", &key).await?;
    let gd = crate::disks::attached_to(ctx, row_str(&disk, "id")).await?;
    let Some(gd) = gd.filter(|g| row_str(g, "guest_id") == row_str(row, "id")) else {
        return Err(Error::InvalidStatus(format!(
            "disk {} is not attached to server {}",
            row_str(&disk, "name"),
            row_str(row, "name")
        )));
    };
    if row_i64(&gd, "index") == 0 {
        return Err(Error::InvalidInput {
            field: "disk_id".into(),
            reason: "the system disk cannot be detached".into(),
        });
    }
    let params = tasks::guest_detach_disk::Params {
        server_id: row_str(row, "id").into(),
        disk_id: row_str(&disk, "id").into(),
        keep_disk: body
            .get("keep_disk")
            .and_then(|v| v.as_bool().or_else(|| v.as_str().and_then(cloudcommon::resource::query::parse_bool)))
            .unwrap_or(true),
        prev_status: row_str(row, "status").into(),
    };
    start_task::<tasks::guest_detach_disk::GuestDetachDiskTask>(ctx, row, &[READY, RUNNING], DETACH_DISK, params).await
}

/// (vCPU, memory MB) committed on a host by its servers.
pub async fn host_commit(ctx: &Ctx, host_id: &str) -> Result<(i64, i64), Error> {
    let rows = ctx
        .db()
        .raw_query(
            "SELECT CAST(COALESCE(SUM(vcpu_count), 0) AS SIGNED), CAST(COALESCE(SUM(vmem_size), 0) AS SIGNED) \
             FROM guests_tbl WHERE host_id = ? AND deleted = ?",
            vec![host_id.into(), false.into()],
        )
        .await?;
    let get = |i| rows.first().and_then(|r| crate::common::int_at(r, i)).unwrap_or(0);
    Ok((get(0), get(1)))
}

/// The enabled storage with the most room for `size` MB, for a disk created without one.
pub async fn roomiest_storage(ctx: &Ctx, size: i64) -> Result<Row, Error> {
    let storages = store::select(ctx.db(), &crate::storages::storage_spec(), Condition::all()).await?;
    let used = storage_used(ctx, storages.iter().map(|s| row_str(s, "id").to_string()).collect()).await?;
    storages
        .into_iter()
        .filter(|s| s.get("enabled").and_then(Value::as_bool).unwrap_or(false))
        .map(|s| {
            let free =
                row_i64(&s, "capacity") - row_i64(&s, "reserved") - used.get(row_str(&s, "id")).copied().unwrap_or(0);
            (free, s)
        })
        .filter(|(free, _)| *free >= size)
        .max_by_key(|(free, _)| *free)
        .map(|(_, s)| s)
        .ok_or_else(|| Error::InsufficientResource(format!("no enabled storage has {size} MB free")))
}

/// MB allocated to disks on each of these storages.
pub async fn storage_used(ctx: &Ctx, ids: Vec<String>) -> Result<HashMap<String, i64>, Error> {
    crate::common::sum_by(ctx, "disks_tbl", "storage_id", "disk_size", ids).await
}

/// Views: host name, addresses, networks, disk sizes, keypair and secgroup names.
async fn add_details(ctx: &Ctx, rows: &mut [Row]) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = rows.iter().map(|r| row_str(r, "id").to_string()).collect();
    add_names(ctx, rows, &crate::hosts::host_spec(), "host").await?;
    add_names(ctx, rows, &crate::keypairs::keypair_spec(), "keypair").await?;
    add_names(ctx, rows, &crate::secgroups::secgroup_spec(), "secgrp").await?;
    let nics = store::select(
        ctx.db(),
        &guestnetwork_spec(),
        Condition::all().add(col_in("guestnetworks_tbl", "guest_id", ids.clone())),
    )
    .await?;
    let net_names = crate::common::names(
        ctx,
        &crate::networks::network_spec(),
        nics.iter().map(|n| row_str(n, "network_id").to_string()).collect(),
    )
    .await?;
    let links =
        store::select(ctx.db(), &guestdisk_spec(), Condition::all().add(col_in("guestdisks_tbl", "guest_id", ids)))
            .await?;
    let disk_ids: Vec<String> = links.iter().map(|l| row_str(l, "disk_id").to_string()).collect();
    let disks: HashMap<String, i64> = if disk_ids.is_empty() {
        HashMap::new()
    } else {
        store::select(ctx.db(), &disk_spec(), Condition::all().add(col_in("disks_tbl", "id", disk_ids)))
            .await?
            .iter()
            .map(|d| (row_str(d, "id").to_string(), row_i64(d, "disk_size")))
            .collect()
    };
    let mut by_guest_nics: HashMap<&str, Vec<&Row>> = HashMap::new();
    for n in &nics {
        by_guest_nics.entry(row_str(n, "guest_id")).or_default().push(n);
    }
    let mut by_guest_disks: HashMap<&str, (i64, usize)> = HashMap::new();
    for l in &links {
        let e = by_guest_disks.entry(row_str(l, "guest_id")).or_default();
        e.0 += disks.get(row_str(l, "disk_id")).copied().unwrap_or(0);
        e.1 += 1;
    }
    for r in rows.iter_mut() {
        let id = row_str(r, "id").to_string();
        let mut mine = by_guest_nics.get(id.as_str()).cloned().unwrap_or_default();
        mine.sort_by_key(|n| row_i64(n, "index"));
        let ips: Vec<&str> = mine.iter().map(|n| row_str(n, "ip_addr")).collect();
        let macs: Vec<&str> = mine.iter().map(|n| row_str(n, "mac_addr")).collect();
        let nets: Vec<String> =
            mine.iter().map(|n| net_names.get(row_str(n, "network_id")).cloned().unwrap_or_default()).collect();
        r.insert("ips".into(), ips.join(",").into());
        r.insert("macs".into(), macs.join(",").into());
        r.insert("networks".into(), nets.join(",").into());
        let (size, count) = by_guest_disks.get(id.as_str()).copied().unwrap_or_default();
        r.insert("disk".into(), size.into());
        r.insert("disk_count".into(), count.into());
    }
    Ok(())
}
