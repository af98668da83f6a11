//! Per-project compute quotas: what a project may have (servers, vCPUs, memory, storage,
//! NICs, secgroups). A project with no row has the configured defaults.
//!
//! Usage counts what exists: servers (with their vCPUs and memory), disks, NICs, and what
//! servers still being created will need (`pending_storage`, `pending_ports` on their rows,
//! zeroed when their disks and NICs exist). A create is checked before its row is written and
//! again after, counting only the servers created before it ([`recheck_server`]), so of two
//! concurrent creates that together pass a limit the later one is refused.

use apis::Error;
use async_trait::async_trait;
use cloudcommon::auth::Scope;
use cloudcommon::resource::dispatch::authorize;
use cloudcommon::resource::{Col, Ctx, Owner, OwnerScope, Resource, ResourceSpec, Row, row_str, store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const FIELDS: &[&str] = &["count", "cpu", "memory", "storage", "port", "secgroup"];

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Quota {
    /// Servers.
    pub count: i64,
    /// vCPUs.
    pub cpu: i64,
    /// Memory, MB.
    pub memory: i64,
    /// Disk, MB.
    pub storage: i64,
    /// Addresses (NICs).
    pub port: i64,
    pub secgroup: i64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota { count: 50, cpu: 200, memory: 409_600, storage: 10_240_000, port: 200, secgroup: 50 }
    }
}

pub fn quota_spec() -> ResourceSpec {
    let mut s = ResourceSpec::new("compute", "quota", "quotas", "quotas_tbl").owner(OwnerScope::Project);
    for f in FIELDS {
        s = s.col(Col::int(f).rw());
    }
    s
}

crate::geo::resource_struct!(Quotas, quota_spec);

#[async_trait]
impl Resource for Quotas {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_create(&self, _ctx: &Ctx, _i: &mut Row, _raw: &Row, _o: &Owner) -> Result<(), Error> {
        Err(Error::BadRequest("set quotas with POST /quotas/<project>".into()))
    }
}

/// The quota of `project_id`: its row, else the defaults.
pub async fn effective(ctx: &Ctx, project_id: &str) -> Result<Quota, Error> {
    let r = crate::region(&ctx.svc)?;
    let mut q = r.cfg.default_quota;
    if let Some(row) = store::get_by_id(ctx.db(), &quota_spec(), project_id).await? {
        let get = |k: &str, d: i64| row.get(k).and_then(Value::as_i64).unwrap_or(d);
        q = Quota {
            count: get("count", q.count),
            cpu: get("cpu", q.cpu),
            memory: get("memory", q.memory),
            storage: get("storage", q.storage),
            port: get("port", q.port),
            secgroup: get("secgroup", q.secgroup),
        };
    }
    Ok(q)
}

impl Quota {
    /// Nothing: a delta to build on.
    pub fn zero() -> Quota {
        Quota { count: 0, cpu: 0, memory: 0, storage: 0, port: 0, secgroup: 0 }
    }
}

async fn sum(ctx: &Ctx, sql: &str, args: Vec<sea_orm::Value>) -> Result<Vec<i64>, Error> {
    let rows = ctx.db().raw_query(sql, args).await?;
    let Some(r) = rows.first() else { return Ok(vec![]) };
    let mut out = vec![];
    for i in 0..8 {
        match crate::common::int_at(r, i) {
            Some(v) => out.push(v),
            None if i == 0 => return Ok(vec![]),
            None => break,
        }
    }
    Ok(out)
}

/// What a project uses now; with `upto` (a server row), only servers created before it
/// (and it) count.
async fn used(ctx: &Ctx, project_id: &str, upto: Option<&Row>) -> Result<Quota, Error> {
    let mut guest_sql = "SELECT COUNT(id), COALESCE(SUM(vcpu_count), 0), COALESCE(SUM(vmem_size), 0), \
         COALESCE(SUM(pending_storage), 0), COALESCE(SUM(pending_ports), 0) \
         FROM guests_tbl WHERE tenant_id = ? AND deleted = ?"
        .to_string();
    let mut args: Vec<sea_orm::Value> = vec![project_id.into(), false.into()];
    if let Some(row) = upto {
        guest_sql.push_str(" AND (created_at < ? OR (created_at = ? AND id <= ?))");
        let at = row_str(row, "created_at").to_string();
        args.extend([at.clone().into(), at.into(), row_str(row, "id").into()]);
    }
    let g = sum(ctx, &guest_sql, args).await?;
    let d = sum(
        ctx,
        "SELECT CAST(COALESCE(SUM(disk_size), 0) AS SIGNED) FROM disks_tbl WHERE tenant_id = ? AND deleted = ?",
        vec![project_id.into(), false.into()],
    )
    .await?;
    let n = sum(
        ctx,
        "SELECT COUNT(id) FROM guestnetworks_tbl WHERE tenant_id = ? AND deleted = ?",
        vec![project_id.into(), false.into()],
    )
    .await?;
    let at = |v: &Vec<i64>, i: usize| v.get(i).copied().unwrap_or(0);
    Ok(Quota {
        count: at(&g, 0),
        cpu: at(&g, 1),
        memory: at(&g, 2),
        storage: at(&d, 0) + at(&g, 3),
        port: at(&n, 0) + at(&g, 4),
        secgroup: crate::common::count_where(ctx, "secgroups_tbl", "tenant_id", project_id).await?,
    })
}

async fn usage(ctx: &Ctx, project_id: &str) -> Result<Value, Error> {
    serde_json::to_value(used(ctx, project_id, None).await?).map_err(|e| Error::Internal(e.to_string()))
}

fn over(q: &Quota, u: &Quota, want: &Quota) -> Option<String> {
    let fields = [
        ("count", "servers", q.count, u.count, want.count),
        ("cpu", "vCPUs", q.cpu, u.cpu, want.cpu),
        ("memory", "MB of memory", q.memory, u.memory, want.memory),
        ("storage", "MB of disk", q.storage, u.storage, want.storage),
        ("port", "NICs", q.port, u.port, want.port),
    ];
    fields.iter().find(|(_, _, limit, used, want)| *want > 0 && used + want > *limit).map(
        |(f, what, limit, used, want)| {
            format!("quota {f} exceeded: the project uses {used} of {limit} {what} and asks for {want} more")
        },
    )
}

/// Refuses a request for `want` more that would take `project_id` past its quota.
pub async fn check(ctx: &Ctx, project_id: &str, want: Quota) -> Result<(), Error> {
    let q = effective(ctx, project_id).await?;
    let u = used(ctx, project_id, None).await?;
    match over(&q, &u, &want) {
        Some(msg) => Err(Error::InsufficientResource(msg)),
        None => Ok(()),
    }
}

/// After a server's row is written: the project within quota counting the servers created
/// up to and including this one.
pub async fn recheck_server(ctx: &Ctx, row: &Row) -> Result<(), Error> {
    let project = row_str(row, "tenant_id");
    let q = effective(ctx, project).await?;
    let u = used(ctx, project, Some(row)).await?;
    let limits = [("count", q.count, u.count), ("cpu", q.cpu, u.cpu), ("memory", q.memory, u.memory)];
    let storage = [("storage", q.storage, u.storage), ("port", q.port, u.port)];
    match limits.iter().chain(storage.iter()).find(|(_, limit, used)| used > limit) {
        Some((f, limit, used)) => Err(Error::InsufficientResource(format!(
            "quota {f} exceeded: {used} of {limit} counting creates made at the same time"
        ))),
        None => Ok(()),
    }
}

/// `GET /quotas/<project>`: the caller's own project, or any with domain or system rights.
pub async fn get(ctx: &Ctx, project_id: &str) -> Result<Value, Error> {
    let scope = authorize(&Quotas::new(), &ctx.cred, "get", None)?;
    if project_id != ctx.cred.project_id && scope < Scope::Domain {
        return Err(Error::Forbidden(format!("{} may not read the quotas of another project", ctx.cred.user)));
    }
    let q = effective(ctx, project_id).await?;
    let mut v = serde_json::to_value(q).map_err(|e| Error::Internal(e.to_string()))?;
    v["project_id"] = project_id.into();
    v["usage"] = usage(ctx, project_id).await?;
    Ok(json!({"quota": v}))
}

/// `POST /quotas/<project>`: set some limits (system rights only).
pub async fn set(ctx: &Ctx, project_id: &str, body: &Row) -> Result<Value, Error> {
    let quotas = Quotas::new();
    if authorize(&quotas, &ctx.cred, "update", None)? < Scope::System {
        return Err(Error::Forbidden(format!("{} may not set quotas: that needs system rights", ctx.cred.user)));
    }
    let mut patch = Row::new();
    for f in FIELDS {
        if let Some(n) = crate::common::int_field(body, f, 0, i64::MAX)? {
            patch.insert(f.to_string(), n.into());
        }
    }
    let spec = quota_spec();
    if store::get_by_id(ctx.db(), &spec, project_id).await?.is_some() {
        store::update(ctx.db(), &spec, project_id, &patch).await?;
    } else {
        let cur =
            serde_json::to_value(effective(ctx, project_id).await?).map_err(|e| Error::Internal(e.to_string()))?;
        let mut row = Row::new();
        for f in FIELDS {
            row.insert(f.to_string(), patch.get(*f).cloned().unwrap_or(cur[*f].clone()));
        }
        for (k, v) in [
            ("id", project_id.to_string()),
            ("name", project_id.to_string()),
            ("tenant_id", project_id.to_string()),
            ("created_at", cloudcommon::db::now()),
            ("updated_at", cloudcommon::db::now()),
        ] {
            row.insert(k.into(), v.into());
        }
        row.insert("domain_id".into(), row_str(body, "domain_id").into());
        let txn = ctx.db().begin().await?;
        store::insert(&txn, &spec, &row).await?;
        txn.commit().await?;
    }
    get(ctx, project_id).await
}
