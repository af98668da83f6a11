//! Hosts: registration by the host agent, heartbeat and liveness, NICs on wires.
//!
//! Host liveness:
//! ```text
//!  POST /hosts (agent registers)  ──> host_status online, last_ping_at = now
//!  POST /hosts/<id>/ping (every ping_region_interval) ──> last_ping_at = now; offline -> online
//!  liveness reconciler (every host_offline_seconds / 3, at most 30 s):
//!      online and last_ping_at older than host_offline_seconds ──> offline (an event),
//!      its servers -> unknown
//!  a ping from an offline host ──> online; a syncstatus task for each of its unknown servers
//!  POST /hosts/<id>/agent-started (a new agent process, once registered) ──> the tasks
//!      waiting on the host fail ("the agent of host X restarted")
//! ```
//! `host_status` is the agent's liveness; `status` (running, ...) its lifecycle; `enabled`
//! and `is_maintenance` are an operator's say. Only an online, enabled host out of
//! maintenance takes new servers (the scheduler's first filter).

use std::sync::{Arc, Weak};
use std::time::Duration;

use apis::Error;
use async_trait::async_trait;
use cloudcommon::db::{fmt_time, now};
use cloudcommon::resource::dispatch::view;
use cloudcommon::resource::{Col, Ctx, NameScope, Owner, OwnerScope, Resource, ResourceSpec, Row, row_str, store};
use cloudcommon::service::ServiceState;
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use serde_json::{Value, json};

use crate::common::{add_names, eq, float_field, int_field, one_of, require_system, resolve_ref};
use crate::geo::{DEFAULT_ZONE, resource_struct};
use crate::ipam;

pub const HOST_TYPES: &[&str] = &["hypervisor", "kvm", "baremetal", "container", "esxi"];
pub const HOST_ONLINE: &str = "online";
pub const HOST_OFFLINE: &str = "offline";

pub fn host_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "host", "hosts", "hosts_tbl")
        .owner(OwnerScope::System)
        .status("running")
        .enabled()
        .col(Col::str("zone_id", 128).create().index())
        .col(Col::str("access_ip", 16).rw().index())
        .col(Col::str("access_mac", 32).rw().index())
        .col(Col::str("manager_uri", 256).rw())
        .col(Col::str("host_type", 16).create().not_null("hypervisor".into()))
        .col(Col::int("cpu_count").rw().not_null(0.into()))
        .col(Col::int("node_count").rw().not_null(1.into()))
        .col(Col::str("cpu_desc", 128).rw())
        .col(Col::int("cpu_mhz").rw())
        .col(Col::int("cpu_reserved").rw().not_null(0.into()))
        .col(Col::json("cpu_cmtbound").rw())
        .col(Col::str("cpu_architecture", 16).rw())
        .col(Col::int("mem_size").rw().not_null(0.into()))
        .col(Col::int("mem_reserved").rw().not_null(0.into()))
        .col(Col::json("mem_cmtbound").rw())
        .col(Col::int("storage_size").rw())
        .col(Col::json("sys_info").rw())
        .col(Col::str("version", 64).rw())
        .col(Col::str("host_status", 16).not_null(HOST_OFFLINE.into()).index())
        .col(Col::time("last_ping_at"))
        .col(Col::bool("is_maintenance").not_null(false.into()))
        .col(Col::str("resource_type", 16).rw().not_null("shared".into()))
        .col(Col::int("memory_used_mb"))
        .col(Col::json("cpu_usage_percent"))
}

/// `netinterfaces`: a host NIC bound to a wire (`add-netif`).
pub fn netif_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "netinterface", "netinterfaces", "netinterfaces_tbl")
        .owner(OwnerScope::System)
        .name_scope(NameScope::None)
        .col(Col::str("mac", 32).index())
        .col(Col::str("baremetal_id", 128).index())
        .col(Col::str("wire_id", 128).index())
        .col(Col::int("vlan_id").not_null(1.into()))
        .col(Col::int("rate"))
        .col(Col::str("nic_type", 16))
        .col(Col::int("index").not_null(0.into()))
        .col(Col::bool("link_up").not_null(true.into()))
        .col(Col::int("mtu"))
        .col(Col::str("bridge", 64))
        .col(Col::str("interface", 64))
        .col(Col::str("ip_addr", 16))
}

resource_struct!(Hosts, host_spec);
resource_struct!(NetInterfaces, netif_spec);

fn check_host_fields(r: &crate::Region, input: &mut Row, create: bool) -> Result<(), Error> {
    if let Some(t) = one_of(input, "host_type", HOST_TYPES)?
        && t == "kvm"
    {
        input.insert("host_type".into(), "hypervisor".into());
    }
    if let Some(ip) = input.get("access_ip").and_then(Value::as_str).map(str::to_string) {
        input.insert("access_ip".into(), ipam::ip_str(ipam::parse_ip("access_ip", &ip)?).into());
    } else if create {
        return Err(Error::missing("access_ip"));
    }
    if let Some(mac) = input.get("access_mac").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string) {
        input.insert("access_mac".into(), ipam::check_mac("access_mac", &mac)?.into());
    }
    match input.get("manager_uri").and_then(Value::as_str) {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {}
        Some(u) => return Err(Error::invalid("manager_uri", format!("{u:?} is not an http(s) URL"))),
        None if create => return Err(Error::missing("manager_uri")),
        None => {}
    }
    int_field(input, "cpu_count", 0, 1 << 20)?;
    int_field(input, "node_count", 1, 1024)?;
    int_field(input, "mem_size", 0, 1 << 40)?;
    int_field(input, "cpu_reserved", 0, 1 << 20)?;
    int_field(input, "mem_reserved", 0, 1 << 40)?;
    for (f, d) in [("cpu_cmtbound", r.cfg.default_cpu_cmtbound), ("mem_cmtbound", r.cfg.default_mem_cmtbound)] {
        match float_field(input, f)? {
            Some(v) => input.insert(f.into(), json!(v)),
            None if create => input.insert(f.into(), json!(d)),
            None => None,
        };
    }
    Ok(())
}

#[async_trait]
impl Resource for Hosts {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, raw: &Row, _o: &Owner) -> Result<(), Error> {
        require_system(ctx, self, "create")?;
        let r = crate::region(&ctx.svc)?;
        if resolve_ref(ctx, input, raw, ["zone", "zone_id"], "zones").await?.is_none() {
            let z = crate::common::lookup(ctx, "zones", DEFAULT_ZONE).await?;
            input.insert("zone_id".into(), row_str(&z, "id").into());
        }
        check_host_fields(&r, input, true)?;
        if let Some(s) = raw.get("storages") {
            crate::storages::check_registration(s)?;
        }
        input.insert("host_status".into(), HOST_ONLINE.into());
        input.insert("last_ping_at".into(), now().into());
        Ok(())
    }

    async fn post_create(&self, ctx: &Ctx, row: &Row, raw: &Row) -> Result<(), Error> {
        if let Some(s) = raw.get("storages") {
            crate::storages::register(ctx, row, s).await?;
        }
        Ok(())
    }

    async fn validate_update(&self, ctx: &Ctx, _row: &Row, patch: &mut Row, _raw: &Row) -> Result<(), Error> {
        let r = crate::region(&ctx.svc)?;
        check_host_fields(&r, patch, false)
    }

    async fn validate_delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        let _ = ctx;
        if row.get("enabled") == Some(&Value::Bool(true)) {
            return Err(Error::InvalidStatus(format!(
                "host {} is online and enabled: disable it first",
                row_str(row, "name")
            )));
        }
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        let id = row_str(row, "id");
        ctx.db().raw_exec("DELETE FROM netinterfaces_tbl WHERE baremetal_id = ?", vec![id.into()]).await?;
        ctx.db().raw_exec("DELETE FROM schedtag_hosts WHERE host_id = ?", vec![id.into()]).await?;
        ctx.db()
            .raw_exec(
                "UPDATE hoststorages_tbl SET deleted = ?, deleted_at = ? WHERE host_id = ?",
                vec![true.into(), now().into(), id.into()],
            )
            .await?;
        store::soft_delete(ctx.db(), &self.spec, row).await
    }

    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        add_names(ctx, rows, &crate::geo::zone_spec(), "zone").await?;
        crate::storages::add_schedtags(ctx, rows).await?;
        add_commits(ctx, rows).await
    }

    async fn context_filter(&self, ctx: &Ctx, plural: &str, id: &str) -> Result<Option<Condition>, Error> {
        Ok(match plural {
            "zones" => Some(eq(self.spec.table, "zone_id", id)),
            "schedtags" => Some(crate::storages::hosts_in_schedtag(ctx, id).await?),
            "storages" => Some(crate::storages::hosts_of_storage(ctx, id).await?),
            _ => None,
        })
    }

    async fn perform(&self, ctx: &Ctx, row: &Row, action: &str, body: &Row) -> Result<Value, Error> {
        require_system(ctx, self, "perform")?;
        let id = row_str(row, "id").to_string();
        match action {
            "maintenance" | "unmaintenance" => {
                let mut p = Row::new();
                p.insert("is_maintenance".into(), (action == "maintenance").into());
                store::update(ctx.db(), &self.spec, &id, &p).await?;
            }
            "add-netif" => add_netif(ctx, row, body).await?,
            // A new agent process serves this host; it says so once registered, before it
            // serves any request, so every task waiting on this host was acked by an earlier
            // process and will get no answer: they end in their `*_fail` status now rather than
            // at their deadline (an agent restarted faster than the host goes offline).
            "agent-started" => {
                let reason = format!("the agent of host {} restarted", row_str(row, "name"));
                let n = fail_waiting_tasks(&ctx.svc, row, &reason).await;
                ctx.svc.actionlog.record(ctx, &self.spec, row, "agent-started", true, json!({"failed_tasks": n})).await;
            }
            "remove-netif" => {
                let mac = ipam::check_mac("mac", row_str(body, "mac"))?;
                let n = ctx
                    .db()
                    .raw_exec(
                        "DELETE FROM netinterfaces_tbl WHERE baremetal_id = ? AND mac = ?",
                        vec![id.clone().into(), mac.clone().into()],
                    )
                    .await?;
                if n == 0 {
                    return Err(Error::NotFound(format!("host {} has no interface {mac}", row_str(row, "name"))));
                }
            }
            _ => return Err(Error::NotFound(format!("host has no action {action}"))),
        }
        let row = store::get_by_id(ctx.db(), &self.spec, &id).await?.ok_or_else(|| Error::not_found("host", &id))?;
        Ok(json!({"host": view(ctx, self, row).await?}))
    }
}

/// Binds a host NIC (`mac`) to a wire, with its bridge and interface names.
async fn add_netif(ctx: &Ctx, host: &Row, body: &Row) -> Result<(), Error> {
    let mac = ipam::check_mac("mac", row_str(body, "mac"))?;
    let mut input = body.clone();
    let wire = resolve_ref(ctx, &mut input, body, ["wire", "wire_id"], "wires")
        .await?
        .ok_or_else(|| Error::missing("wire"))?;
    int_field(body, "vlan_id", 1, 4095)?;
    int_field(body, "mtu", 576, 9216)?;
    if let Some(ip) = body.get("ip_addr").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        ipam::parse_ip("ip_addr", ip)?;
    }
    let existing = store::select(ctx.db(), &netif_spec(), eq("netinterfaces_tbl", "mac", &mac)).await?;
    if let Some(e) = existing.first()
        && row_str(e, "baremetal_id") != row_str(host, "id")
    {
        return Err(Error::Conflict(format!("interface {mac} belongs to another host")));
    }
    let mut row = Row::new();
    let s = |k: &str| body.get(k).cloned().unwrap_or(Value::Null);
    row.insert("name".into(), body.get("interface").cloned().filter(|v| v.is_string()).unwrap_or(mac.clone().into()));
    row.insert("mac".into(), mac.clone().into());
    row.insert("baremetal_id".into(), row_str(host, "id").into());
    row.insert("wire_id".into(), row_str(&wire, "id").into());
    for k in ["bridge", "interface", "nic_type", "ip_addr"] {
        row.insert(k.into(), s(k));
    }
    for (k, d) in [("vlan_id", 1), ("index", 0)] {
        row.insert(k.into(), body.get(k).cloned().filter(|v| !v.is_null()).unwrap_or(d.into()));
    }
    for k in ["rate", "mtu"] {
        row.insert(k.into(), s(k));
    }
    row.insert("updated_at".into(), now().into());
    let spec = netif_spec();
    if let Some(e) = existing.first() {
        store::update(ctx.db(), &spec, row_str(e, "id"), &row).await
    } else {
        row.insert("id".into(), cloudcommon::db::new_id().into());
        row.insert("created_at".into(), now().into());
        let txn = ctx.db().begin().await?;
        store::insert(&txn, &spec, &row).await?;
        txn.commit().await
    }
}

/// A heartbeat: `last_ping_at` now, online again if it was offline, usage figures kept.
pub async fn ping(ctx: &Ctx, host: &Row, body: &Row) -> Result<Value, Error> {
    let mut p = Row::new();
    p.insert("last_ping_at".into(), now().into());
    p.insert("host_status".into(), HOST_ONLINE.into());
    if let Some(m) = int_field(body, "memory_used_mb", 0, 1 << 40)? {
        p.insert("memory_used_mb".into(), m.into());
    }
    if let Some(c) = body.get("cpu_usage_percent").and_then(Value::as_f64) {
        p.insert("cpu_usage_percent".into(), json!(c));
    }
    store::update(ctx.db(), &host_spec(), row_str(host, "id"), &p).await?;
    if let Some(Value::Array(stats)) = body.get("storage_stats") {
        crate::storages::apply_stats(ctx, stats).await?;
    }
    if row_str(host, "host_status") != HOST_ONLINE {
        tracing::info!(host = row_str(host, "name"), "host is back online");
        ctx.svc.actionlog.record(ctx, &host_spec(), host, "online", true, Value::Null).await;
        resync_unknown(ctx, row_str(host, "id")).await;
    }
    Ok(json!({"name": row_str(host, "name"), "host_status": HOST_ONLINE}))
}

/// Marks online hosts whose last ping is older than `host_offline_seconds` offline;
/// returns their names.
pub async fn detect_offline(svc: &Arc<ServiceState>, r: &crate::Region) -> Result<Vec<String>, Error> {
    let cutoff = fmt_time(chrono::Utc::now() - chrono::Duration::seconds(r.cfg.host_offline_seconds as i64));
    let spec = host_spec();
    let stale = store::select(
        &svc.db,
        &spec,
        Condition::all()
            .add(eq("hosts_tbl", "host_status", HOST_ONLINE))
            .add(Expr::col((Alias::new("hosts_tbl"), Alias::new("last_ping_at"))).lt(cutoff.clone())),
    )
    .await?;
    let mut names = vec![];
    for h in stale {
        let n = svc
            .db
            .raw_exec(
                "UPDATE hosts_tbl SET host_status = ?, updated_at = ? WHERE id = ? AND host_status = ? AND last_ping_at < ?",
                vec![HOST_OFFLINE.into(), now().into(), row_str(&h, "id").into(), HOST_ONLINE.into(), cutoff.clone().into()],
            )
            .await?;
        if n > 0 {
            tracing::warn!(host = row_str(&h, "name"), "no ping for {} s: host offline", r.cfg.host_offline_seconds);
            let ctx = Ctx::internal(
                svc.clone(),
                Arc::new(cloudcommon::auth::UserCred { user: "region".into(), ..Default::default() }),
            );
            svc.actionlog.record(&ctx, &spec, &h, "offline", true, json!({"reason": "no ping"})).await;
            // Nobody knows what its guests are doing now.
            svc.db
                .raw_exec(
                    "UPDATE guests_tbl SET status = ?, power_states = ?, updated_at = ? \
                     WHERE host_id = ? AND deleted = ? AND status IN (?, ?, ?)",
                    vec![
                        crate::servers::UNKNOWN.into(),
                        "unknown".into(),
                        now().into(),
                        row_str(&h, "id").into(),
                        false.into(),
                        crate::servers::RUNNING.into(),
                        crate::servers::READY.into(),
                        crate::servers::SYNC_STATUS.into(),
                    ],
                )
                .await?;
            fail_waiting_tasks(svc, &h, &format!("host {} went offline", row_str(&h, "name"))).await;
            names.push(row_str(&h, "name").to_string());
        }
    }
    Ok(names)
}

/// Fails the tasks waiting on an agent that went offline or restarted (its servers' and
/// disks'): no answer will come, so they end in their `*_fail` status now rather than at their
/// deadline, with `reason`. Returns how many it failed.
async fn fail_waiting_tasks(svc: &Arc<ServiceState>, host: &Row, reason: &str) -> usize {
    let host_id = row_str(host, "id");
    let sql = "SELECT id FROM tasks_tbl WHERE status = ? AND (obj_id IN \
               (SELECT id FROM guests_tbl WHERE host_id = ? AND deleted = ?) OR obj_id IN \
               (SELECT d.id FROM disks_tbl d JOIN hoststorages_tbl hs ON hs.storage_id = d.storage_id \
                WHERE hs.host_id = ? AND hs.deleted = ? AND d.deleted = ?))";
    let args = vec!["waiting".into(), host_id.into(), false.into(), host_id.into(), false.into(), false.into()];
    let rows = match svc.db.raw_query(sql, args).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the tasks waiting on a host");
            return 0;
        }
    };
    let Ok(tm) = cloudcommon::tasks::TaskManager::of(svc) else { return 0 };
    let mut n = 0;
    for r in rows {
        let Ok(id) = r.try_get_by_index::<String>(0) else { continue };
        let body = serde_json::to_value(apis::task::TaskCallback::error(reason.to_string())).unwrap_or_default();
        match tm.callback(svc, &id, body).await {
            Ok(_) => n += 1,
            Err(e) => tracing::warn!(task = %id, error = %e, "cannot fail a task of a host: {reason}"),
        }
    }
    n
}

/// Asks a host that came back about each of its servers marked unknown.
async fn resync_unknown(ctx: &Ctx, host_id: &str) {
    let spec = crate::servers::server_spec();
    let cond =
        Condition::all().add(eq(spec.table, "host_id", host_id)).add(eq(spec.table, "status", crate::servers::UNKNOWN));
    let rows = match store::select(ctx.db(), &spec, cond).await {
        Ok(r) => r,
        Err(e) => return tracing::warn!(error = %e, "cannot list the servers of a host back online"),
    };
    let Ok(tm) = cloudcommon::tasks::TaskManager::of(&ctx.svc) else { return };
    for row in rows {
        let params = crate::tasks::guest_syncstatus::Params { server_id: row_str(&row, "id").into() };
        let obj = cloudcommon::tasks::TaskObject::of(&spec, &row);
        if let Err(e) = tm.start::<crate::tasks::guest_syncstatus::GuestSyncstatusTask>(ctx, obj, &params).await {
            tracing::warn!(server = row_str(&row, "name"), error = %e, "cannot resync a server");
        }
    }
}

/// Deletes for good the servers that stayed in the recycle bin past the expiry.
pub async fn reap_recycle_bin(svc: &Arc<ServiceState>, r: &crate::Region) -> Result<usize, Error> {
    let cutoff = fmt_time(chrono::Utc::now() - chrono::Duration::seconds(r.cfg.pending_delete_expire_seconds as i64));
    let spec = crate::servers::server_spec();
    let cond = Condition::all()
        .add(Expr::col((Alias::new(spec.table), Alias::new("pending_deleted"))).eq(true))
        .add(Expr::col((Alias::new(spec.table), Alias::new("pending_deleted_at"))).lt(cutoff));
    let rows = store::select(&svc.db, &spec, cond).await?;
    let ctx = Ctx::internal(
        svc.clone(),
        Arc::new(cloudcommon::auth::UserCred { user: "region".into(), ..Default::default() }),
    );
    let mut n = 0;
    for row in rows {
        let opts = crate::servers::DeleteOptions { override_pending_delete: true, purge: false };
        match crate::servers::start_delete(&ctx, &row, opts).await {
            Ok(()) => n += 1,
            Err(e) => tracing::warn!(server = row_str(&row, "name"), error = %e, "recycle bin: cannot delete yet"),
        }
    }
    Ok(n)
}

/// Starts the liveness reconciler; it stops when the service goes away.
pub fn spawn_liveness(svc: &Arc<ServiceState>, r: &Arc<crate::Region>) {
    let (svc, r): (Weak<ServiceState>, Weak<crate::Region>) = (Arc::downgrade(svc), Arc::downgrade(r));
    tokio::spawn(async move {
        loop {
            let every = match r.upgrade() {
                Some(r) => Duration::from_millis((r.cfg.host_offline_seconds * 1000 / 3).clamp(200, 30_000)),
                None => return,
            };
            tokio::time::sleep(every).await;
            let (Some(svc), Some(r)) = (svc.upgrade(), r.upgrade()) else { return };
            if let Err(e) = detect_offline(&svc, &r).await {
                tracing::warn!(error = %e, "host liveness check failed");
            }
            let _ = r.alloc.prune_releases(&svc.db).await;
            if let Err(e) = reap_recycle_bin(&svc, &r).await {
                tracing::warn!(error = %e, "recycle bin check failed");
            }
        }
    });
}

#[async_trait]
impl Resource for NetInterfaces {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_create(&self, _ctx: &Ctx, _i: &mut Row, _raw: &Row, _o: &Owner) -> Result<(), Error> {
        Err(Error::BadRequest("bind interfaces with POST /hosts/<id>/add-netif".into()))
    }
    async fn validate_delete(&self, _ctx: &Ctx, _row: &Row) -> Result<(), Error> {
        Err(Error::BadRequest("unbind interfaces with POST /hosts/<id>/remove-netif".into()))
    }
    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        add_names(ctx, rows, &crate::geo::wire_spec(), "wire").await
    }
    async fn context_filter(&self, _ctx: &Ctx, plural: &str, id: &str) -> Result<Option<Condition>, Error> {
        Ok(match plural {
            "hosts" => Some(eq(self.spec.table, "baremetal_id", id)),
            "wires" => Some(eq(self.spec.table, "wire_id", id)),
            _ => None,
        })
    }
}

/// What the servers on each host commit: `cpu_commit`, `mem_commit` (MB), `guests`,
/// `creating_guest_count` (the scheduler reads these).
async fn add_commits(ctx: &Ctx, rows: &mut [Row]) -> Result<(), Error> {
    let ids: Vec<String> = rows.iter().map(|r| row_str(r, "id").to_string()).collect();
    let mut by_host: std::collections::HashMap<String, [i64; 4]> = std::collections::HashMap::new();
    let creating = crate::servers::CREATING.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!(
            "SELECT host_id, CAST(COALESCE(SUM(vcpu_count), 0) AS SIGNED), CAST(COALESCE(SUM(vmem_size), 0) AS SIGNED), \
             COUNT(id), CAST(COALESCE(SUM(CASE WHEN status IN ({creating}) THEN 1 ELSE 0 END), 0) AS SIGNED) \
             FROM guests_tbl WHERE deleted = ? AND host_id IN ({marks}) GROUP BY host_id"
        );
        let mut args: Vec<sea_orm::Value> = vec![false.into()];
        args.extend(chunk.iter().map(|k| k.clone().into()));
        for r in ctx.db().raw_query(&sql, args).await? {
            let Ok(h) = r.try_get_by_index::<String>(0) else { continue };
            let g = |i| crate::common::int_at(&r, i).unwrap_or(0);
            by_host.insert(h, [g(1), g(2), g(3), g(4)]);
        }
    }
    for r in rows {
        let [cpu, mem, n, creating] = by_host.get(row_str(r, "id")).copied().unwrap_or_default();
        r.insert("cpu_commit".into(), cpu.into());
        r.insert("mem_commit".into(), mem.into());
        r.insert("guests".into(), n.into());
        r.insert("creating_guest_count".into(), creating.into());
    }
    Ok(())
}
