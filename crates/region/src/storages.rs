//! Storages (local disks of a host), hoststorages (host <-> storage), storagecaches (where
//! images are cached) and schedtags (tags the scheduler filters hosts by).

use apis::Error;
use async_trait::async_trait;
use cloudcommon::db::{new_id, now};
use cloudcommon::resource::dispatch::view;
use cloudcommon::resource::{Col, Ctx, NameScope, Owner, OwnerScope, Resource, ResourceSpec, Row, row_str, store};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use serde_json::{Value, json};

use crate::common::{
    add_names, eq, float_field, int_field, lookup, one_of, refuse_if_used, require_system, resolve_ref,
};
use crate::geo::resource_struct;

pub const STORAGE_TYPES: &[&str] = &["local", "rbd", "nfs", "gpfs", "lvm", "clvm", "slvm", "nvme"];
pub const MEDIUM_TYPES: &[&str] = &["ssd", "rotate", "hybrid"];
pub const STRATEGIES: &[&str] = &["require", "exclude", "prefer", "avoid"];
/// Where a local storage caches images by default.
pub const DEFAULT_CACHE_PATH: &str = "/opt/cloud/workspace/disks/image_cache";

pub fn storage_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "storage", "storages", "storages_tbl")
        .owner(OwnerScope::System)
        .status("online")
        .enabled()
        .col(Col::str("zone_id", 128).create().index())
        .col(Col::int("capacity").rw().not_null(0.into()))
        .col(Col::int("actual_capacity_used").not_null(0.into()))
        .col(Col::int("reserved").rw().not_null(0.into()))
        .col(Col::json("cmtbound").rw())
        .col(Col::str("storage_type", 32).create().not_null("local".into()).index())
        .col(Col::str("medium_type", 32).rw().not_null("ssd".into()))
        .col(Col::json("storage_conf").rw())
        .col(Col::str("storagecache_id", 128).create().index())
        .col(Col::str("master_host", 128))
}

pub fn hoststorage_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "hoststorage", "hoststorages", "hoststorages_tbl")
        .owner(OwnerScope::System)
        .name_scope(NameScope::None)
        .col(Col::str("host_id", 128).create().index())
        .col(Col::str("storage_id", 128).create().index())
        .col(Col::str("mount_point", 256).rw())
        .col(Col::bool("is_root_partition").create().not_null(false.into()))
        .col(Col::int("real_capacity").rw())
}

pub fn storagecache_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "storagecache", "storagecaches", "storagecaches_tbl")
        .owner(OwnerScope::System)
        .name_scope(NameScope::None)
        .col(Col::str("path", 256).rw())
        .col(Col::str("master_host", 128).create())
}

/// `schedtags` (Cloudpods' `aggregates_tbl`); members in `schedtag_hosts`.
pub fn schedtag_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "schedtag", "schedtags", "aggregates_tbl")
        .owner(OwnerScope::System)
        .col(Col::str("default_strategy", 16).rw().not_null("".into()))
        .col(Col::str("resource_type", 32).create().not_null("hosts".into()))
}

pub fn schedtag_hosts_sql(_db: &cloudcommon::db::Db) -> Vec<String> {
    vec![
        "CREATE TABLE schedtag_hosts (schedtag_id VARCHAR(128) NOT NULL, host_id VARCHAR(128) NOT NULL, \
         created_at VARCHAR(32) NOT NULL, PRIMARY KEY (schedtag_id, host_id))"
            .into(),
        "CREATE INDEX ix_schedtag_hosts_host ON schedtag_hosts (host_id)".into(),
    ]
}

resource_struct!(Storages, storage_spec);
resource_struct!(HostStorages, hoststorage_spec);
resource_struct!(Storagecaches, storagecache_spec);
resource_struct!(Schedtags, schedtag_spec);

fn check_storage(input: &mut Row, create: bool) -> Result<(), Error> {
    one_of(input, "storage_type", STORAGE_TYPES)?;
    one_of(input, "medium_type", MEDIUM_TYPES)?;
    int_field(input, "capacity", 0, 1 << 50)?;
    int_field(input, "reserved", 0, 1 << 50)?;
    match float_field(input, "cmtbound")? {
        Some(v) => {
            input.insert("cmtbound".into(), json!(v));
        }
        None if create => {
            input.insert("cmtbound".into(), json!(1.0));
        }
        None => {}
    }
    Ok(())
}

/// Checks the `storages` list of a host registration before anything is written.
pub fn check_registration(v: &Value) -> Result<(), Error> {
    let Value::Array(items) = v else { return Err(Error::invalid("storages", "must be a list")) };
    for s in items {
        let Value::Object(m) = s else { return Err(Error::invalid("storages", "each item must be an object")) };
        let mut m = m.clone();
        check_storage(&mut m, true).map_err(|e| Error::invalid("storages", e.to_string()))?;
        if row_str(&m, "mount_point").is_empty() {
            return Err(Error::invalid("storages", "each storage needs a mount_point"));
        }
    }
    Ok(())
}

/// Creates a host's local storages from its registration: storagecache, storage, hoststorage.
pub async fn register(ctx: &Ctx, host: &Row, v: &Value) -> Result<(), Error> {
    let Value::Array(items) = v else { return Ok(()) };
    let host_id = row_str(host, "id");
    let host_name = row_str(host, "name");
    for (i, s) in items.iter().enumerate() {
        let Value::Object(m) = s else { continue };
        let mut m = m.clone();
        check_storage(&mut m, true)?;
        let mount = row_str(&m, "mount_point").to_string();
        let name = m.get("name").and_then(Value::as_str).map(str::to_string).unwrap_or(format!("{host_name}-local{i}"));
        let cache_id = new_id();
        let storage_id = new_id();
        let txn = ctx.db().begin().await?;
        let mut cache = base_row(&cache_id, &format!("{name}-cache"));
        cache.insert("path".into(), m.get("cache_path").cloned().unwrap_or(DEFAULT_CACHE_PATH.into()));
        cache.insert("master_host".into(), host_id.into());
        store::insert(&txn, &storagecache_spec(), &cache).await?;
        let mut st = base_row(&storage_id, &name);
        for k in ["capacity", "reserved", "cmtbound", "storage_type", "medium_type", "storage_conf"] {
            if let Some(v) = m.get(k) {
                st.insert(k.into(), v.clone());
            }
        }
        for (k, d) in [("storage_type", "local"), ("medium_type", "ssd"), ("status", "online")] {
            st.entry(k).or_insert(d.into());
        }
        st.insert("capacity".into(), m.get("capacity").cloned().unwrap_or(0.into()));
        st.insert("cmtbound".into(), m.get("cmtbound").cloned().unwrap_or(json!(1.0)));
        st.insert("zone_id".into(), host.get("zone_id").cloned().unwrap_or_default());
        st.insert("storagecache_id".into(), cache_id.clone().into());
        st.insert("master_host".into(), host_id.into());
        st.insert("enabled".into(), true.into());
        store::insert(&txn, &storage_spec(), &st).await?;
        let mut hs = base_row(&new_id(), &format!("{host_name}-{name}"));
        hs.insert("host_id".into(), host_id.into());
        hs.insert("storage_id".into(), storage_id.into());
        hs.insert("mount_point".into(), mount.into());
        store::insert(&txn, &hoststorage_spec(), &hs).await?;
        txn.commit().await?;
    }
    Ok(())
}

fn base_row(id: &str, name: &str) -> Row {
    let mut r = Row::new();
    r.insert("id".into(), id.into());
    r.insert("name".into(), name.into());
    r.insert("created_at".into(), now().into());
    r.insert("updated_at".into(), now().into());
    r
}

/// Applies a ping's `storage_stats` (`storage_id`, `actual_capacity_used_mb`, `capacity_mb`).
pub async fn apply_stats(ctx: &Ctx, stats: &[Value]) -> Result<(), Error> {
    for s in stats {
        let Value::Object(m) = s else { continue };
        let id = row_str(m, "storage_id");
        if id.is_empty() {
            continue;
        }
        let mut p = Row::new();
        if let Some(u) = int_field(m, "actual_capacity_used_mb", 0, 1 << 50)? {
            p.insert("actual_capacity_used".into(), u.into());
        }
        if let Some(c) = int_field(m, "capacity_mb", 0, 1 << 50)? {
            p.insert("capacity".into(), c.into());
        }
        if !p.is_empty() && store::get_by_id(ctx.db(), &storage_spec(), id).await?.is_some() {
            store::update(ctx.db(), &storage_spec(), id, &p).await?;
        }
    }
    Ok(())
}

fn in_subquery(table: &str, col: &str, sql: &str, id: &str) -> Condition {
    Condition::all().add(Expr::col((Alias::new(table.to_string()), Alias::new(col.to_string()))).in_subquery({
        let mut q = sea_orm::sea_query::Query::select();
        let (sub_table, sub_col, key_col) = match sql {
            "hs_storage" => ("hoststorages_tbl", "storage_id", "host_id"),
            "hs_host" => ("hoststorages_tbl", "host_id", "storage_id"),
            _ => ("schedtag_hosts", "host_id", "schedtag_id"),
        };
        q.column(Alias::new(sub_col)).from(Alias::new(sub_table)).and_where(Expr::col(Alias::new(key_col)).eq(id));
        if sub_table == "hoststorages_tbl" {
            q.and_where(Expr::col(Alias::new("deleted")).eq(false));
        }
        q
    }))
}

pub async fn hosts_in_schedtag(_ctx: &Ctx, schedtag_id: &str) -> Result<Condition, Error> {
    Ok(in_subquery("hosts_tbl", "id", "tags", schedtag_id))
}

pub async fn hosts_of_storage(_ctx: &Ctx, storage_id: &str) -> Result<Condition, Error> {
    Ok(in_subquery("hosts_tbl", "id", "hs_host", storage_id))
}

/// Adds `schedtags: [{id, name, default}]` to host rows.
pub async fn add_schedtags(ctx: &Ctx, rows: &mut [Row]) -> Result<(), Error> {
    let ids: Vec<String> = rows.iter().map(|r| row_str(r, "id").to_string()).collect();
    if ids.is_empty() {
        return Ok(());
    }
    let marks = vec!["?"; ids.len()].join(",");
    let sql = format!(
        "SELECT sh.host_id, a.id, a.name, a.default_strategy FROM schedtag_hosts sh JOIN aggregates_tbl a \
         ON a.id = sh.schedtag_id WHERE a.deleted = ? AND sh.host_id IN ({marks})"
    );
    let mut vals: Vec<sea_orm::Value> = vec![false.into()];
    vals.extend(ids.iter().map(|s| s.clone().into()));
    let found = ctx.db().raw_query(&sql, vals).await?;
    for r in rows.iter_mut() {
        r.insert("schedtags".into(), Value::Array(vec![]));
    }
    for f in found {
        let g = |i| f.try_get_by_index::<String>(i).unwrap_or_default();
        if let Some(Value::Array(a)) =
            rows.iter_mut().find(|r| row_str(r, "id") == g(0)).and_then(|r| r.get_mut("schedtags"))
        {
            a.push(json!({"id": g(1), "name": g(2), "default": g(3)}));
        }
    }
    Ok(())
}

#[async_trait]
impl Resource for Storages {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, raw: &Row, _o: &Owner) -> Result<(), Error> {
        require_system(ctx, self, "create")?;
        if resolve_ref(ctx, input, raw, ["zone", "zone_id"], "zones").await?.is_none() {
            return Err(Error::missing("zone"));
        }
        check_storage(input, true)
    }
    async fn validate_update(&self, _ctx: &Ctx, _row: &Row, patch: &mut Row, _raw: &Row) -> Result<(), Error> {
        check_storage(patch, false)
    }
    async fn validate_delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        refuse_if_used(ctx, row, "storage", "hoststorages_tbl", "storage_id", "hosts").await
    }
    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        add_names(ctx, rows, &crate::geo::zone_spec(), "zone").await?;
        add_names(ctx, rows, &storagecache_spec(), "storagecache").await?;
        // What disks take on each storage (the scheduler reads `used_capacity`).
        let ids: Vec<String> = rows.iter().map(|r| row_str(r, "id").to_string()).collect();
        let used = crate::servers::storage_used(ctx, ids).await?;
        for r in rows {
            r.insert("used_capacity".into(), used.get(row_str(r, "id")).copied().unwrap_or(0).into());
        }
        Ok(())
    }
    async fn context_filter(&self, _ctx: &Ctx, plural: &str, id: &str) -> Result<Option<Condition>, Error> {
        Ok(match plural {
            "hosts" => Some(in_subquery(self.spec.table, "id", "hs_storage", id)),
            "zones" => Some(eq(self.spec.table, "zone_id", id)),
            _ => None,
        })
    }
}

#[async_trait]
impl Resource for HostStorages {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, raw: &Row, _o: &Owner) -> Result<(), Error> {
        require_system(ctx, self, "create")?;
        let h =
            resolve_ref(ctx, input, raw, ["host", "host_id"], "hosts").await?.ok_or_else(|| Error::missing("host"))?;
        let s = resolve_ref(ctx, input, raw, ["storage", "storage_id"], "storages")
            .await?
            .ok_or_else(|| Error::missing("storage"))?;
        let dup = store::select(
            ctx.db(),
            &self.spec,
            eq(self.spec.table, "host_id", row_str(&h, "id")).add(eq(self.spec.table, "storage_id", row_str(&s, "id"))),
        )
        .await?;
        if !dup.is_empty() {
            return Err(Error::Duplicate(format!(
                "storage {} is already attached to host {}",
                row_str(&s, "name"),
                row_str(&h, "name")
            )));
        }
        input.insert("name".into(), format!("{}-{}", row_str(&h, "name"), row_str(&s, "name")).into());
        Ok(())
    }
    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        add_names(ctx, rows, &crate::hosts::host_spec(), "host").await?;
        add_names(ctx, rows, &storage_spec(), "storage").await
    }
}

#[async_trait]
impl Resource for Storagecaches {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, _raw: &Row, _o: &Owner) -> Result<(), Error> {
        require_system(ctx, self, "create")?;
        input.entry("path").or_insert(DEFAULT_CACHE_PATH.into());
        Ok(())
    }
}

#[async_trait]
impl Resource for Schedtags {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, _raw: &Row, _o: &Owner) -> Result<(), Error> {
        require_system(ctx, self, "create")?;
        one_of(input, "default_strategy", STRATEGIES)?;
        one_of(input, "resource_type", &["hosts"])?;
        Ok(())
    }
    async fn validate_update(&self, _ctx: &Ctx, _row: &Row, patch: &mut Row, _raw: &Row) -> Result<(), Error> {
        one_of(patch, "default_strategy", STRATEGIES)?;
        Ok(())
    }
    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        ctx.db().raw_exec("DELETE FROM schedtag_hosts WHERE schedtag_id = ?", vec![row_str(row, "id").into()]).await?;
        store::soft_delete(ctx.db(), &self.spec, row).await
    }
    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        for r in rows {
            let n = ctx
                .db()
                .raw_query("SELECT COUNT(*) FROM schedtag_hosts WHERE schedtag_id = ?", vec![row_str(r, "id").into()])
                .await?
                .first()
                .and_then(|x| x.try_get_by_index::<i64>(0).ok())
                .unwrap_or(0);
            r.insert("host_count".into(), n.into());
        }
        Ok(())
    }
    /// `set-hosts {"host": [id or name, ...]}`: the tag's hosts become exactly these.
    async fn perform(&self, ctx: &Ctx, row: &Row, action: &str, body: &Row) -> Result<Value, Error> {
        if action != "set-hosts" {
            return Err(Error::NotFound(format!("schedtag has no action {action}")));
        }
        require_system(ctx, self, "perform")?;
        let keys: Vec<String> = match body.get("host").or_else(|| body.get("hosts")) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => vec![],
        };
        let mut ids = vec![];
        for k in keys {
            ids.push(row_str(&lookup(ctx, "hosts", &k).await?, "id").to_string());
        }
        let tag = row_str(row, "id");
        let txn = ctx.db().begin().await?;
        txn.execute_raw_values("DELETE FROM schedtag_hosts WHERE schedtag_id = ?", vec![tag.into()]).await?;
        ids.sort();
        ids.dedup();
        for h in &ids {
            txn.execute_raw_values(
                "INSERT INTO schedtag_hosts (schedtag_id, host_id, created_at) VALUES (?, ?, ?)",
                vec![tag.into(), h.clone().into(), now().into()],
            )
            .await?;
        }
        txn.commit().await?;
        Ok(json!({"schedtag": view(ctx, self, row.clone()).await?}))
    }
}
