//! Per-project compute quotas: what a project may have (servers, vCPUs, memory, storage,
//! NICs, secgroups). A project with no row has the configured defaults. Enforcement comes
//! with servers (next session): `usage` already counts what exists.

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

/// What a project uses now.
async fn usage(ctx: &Ctx, project_id: &str) -> Result<Value, Error> {
    let sg = crate::common::count_where(ctx, "secgroups_tbl", "tenant_id", project_id).await?;
    Ok(json!({"count": 0, "cpu": 0, "memory": 0, "storage": 0, "port": 0, "secgroup": sg}))
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
