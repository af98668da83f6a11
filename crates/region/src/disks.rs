//! Disks, the joints of a server (guestdisks, guestnetworks) and the region's view of glance
//! images (cachedimages, storagecachedimages).
//!
//! ```text
//!  disk: init -> start_alloc (image_caching while its image is cached) -> allocating -> ready
//!          \-> alloc_failed (reason in its events)
//!        ready -> deallocating -> (gone)     \-> dealloc_failed
//!  guestdisks (guest_id, disk_id, index, driver): index 0 is the system disk
//!  guestnetworks (guest_id, network_id, ip_addr, mac_addr, ifname): each owns one
//!     ipallocations row (owner_type guestnetwork), freed (and held back) when the NIC goes
//! ```

use apis::Error;
use async_trait::async_trait;
use cloudcommon::db::{new_id, now};
use cloudcommon::resource::dispatch::view;
use cloudcommon::resource::{Col, Ctx, NameScope, Owner, OwnerScope, Resource, ResourceSpec, Row, row_str, store};
use cloudcommon::tasks::{TaskManager, TaskObject};
use sea_orm::sea_query::Condition;
use serde_json::{Value, json};

use crate::common::{add_names, eq, int_field, one_of};
use crate::geo::resource_struct;

pub const DISK_INIT: &str = "init";
pub const DISK_START_ALLOC: &str = "start_alloc";
pub const DISK_IMAGE_CACHING: &str = "image_caching";
pub const DISK_ALLOCATING: &str = "allocating";
pub const DISK_READY: &str = "ready";
pub const DISK_ALLOC_FAILED: &str = "alloc_failed";
pub const DISK_DEALLOCATING: &str = "deallocating";
pub const DISK_DEALLOC_FAILED: &str = "dealloc_failed";
pub const DISK_FORMATS: &[&str] = &["qcow2", "raw"];
pub const DISK_DRIVERS: &[&str] = &["virtio", "scsi", "ide", "sata"];

pub fn disk_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "disk", "disks", "disks_tbl")
        .owner(OwnerScope::Project)
        .status(DISK_INIT)
        .col(Col::str("storage_id", 128).create().index())
        .col(Col::str("disk_format", 16).create().not_null("qcow2".into()))
        .col(Col::int("disk_size").create().not_null(0.into()))
        .col(Col::str("access_path", 256))
        .col(Col::str("template_id", 128).create().index())
        .col(Col::str("disk_type", 16).create().not_null("data".into()))
        .col(Col::str("fs_format", 16).create())
        .col(Col::bool("auto_delete").rw().not_null(false.into()))
}

pub fn guestdisk_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "guestdisk", "guestdisks", "guestdisks_tbl")
        .owner(OwnerScope::Project)
        .name_scope(NameScope::None)
        .col(Col::str("guest_id", 128).index())
        .col(Col::str("disk_id", 128).index())
        .col(Col::int("index").not_null(0.into()))
        .col(Col::str("driver", 16).not_null("virtio".into()))
        .col(Col::str("cache_mode", 16).not_null("none".into()))
        .col(Col::int("boot_index").not_null((-1).into()))
}

pub fn guestnetwork_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "guestnetwork", "guestnetworks", "guestnetworks_tbl")
        .owner(OwnerScope::Project)
        .name_scope(NameScope::None)
        .col(Col::str("guest_id", 128).index())
        .col(Col::str("network_id", 128).index())
        .col(Col::str("ip_addr", 16).index())
        .col(Col::str("mac_addr", 32).index())
        .col(Col::str("ifname", 32))
        .col(Col::int("index").not_null(0.into()))
        .col(Col::str("driver", 16).not_null("virtio".into()))
        .col(Col::bool("is_default").not_null(false.into()))
}

/// The region's copy of a glance image's metadata (id = the glance image id).
pub fn cachedimage_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "cachedimage", "cachedimages", "cachedimages_tbl")
        .owner(OwnerScope::System)
        .name_scope(NameScope::None)
        .status("active")
        .col(Col::int("size").not_null(0.into()))
        .col(Col::int("min_disk").not_null(0.into()))
        .col(Col::str("disk_format", 16))
        .col(Col::json("info"))
        .col(Col::time("last_sync"))
}

/// An image cached in a storagecache (on a host).
pub fn storagecachedimage_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "storagecachedimage", "storagecachedimages", "storagecachedimages_tbl")
        .owner(OwnerScope::System)
        .name_scope(NameScope::None)
        .status("init")
        .col(Col::str("storagecache_id", 128).index())
        .col(Col::str("cachedimage_id", 128).index())
        .col(Col::str("path", 256))
        .col(Col::time("last_download"))
}

resource_struct!(Disks, disk_spec);
resource_struct!(Cachedimages, cachedimage_spec);
resource_struct!(StoragecachedImages, storagecachedimage_spec);

/// A row of `spec` with the base columns filled, owned like `owner_row` (a server).
pub fn owned_row(id: &str, name: &str, owner_row: &Row) -> Row {
    let mut r = Row::new();
    r.insert("id".into(), id.into());
    r.insert("name".into(), name.into());
    r.insert("created_at".into(), now().into());
    r.insert("updated_at".into(), now().into());
    r.insert("domain_id".into(), owner_row.get("domain_id").cloned().unwrap_or_default());
    r.insert("tenant_id".into(), owner_row.get("tenant_id").cloned().unwrap_or_default());
    r
}

pub async fn set_disk_status(ctx: &Ctx, id: &str, status: &str, reason: Option<&str>) -> Result<(), Error> {
    let spec = disk_spec();
    let mut p = Row::new();
    p.insert("status".into(), status.into());
    store::update(ctx.db(), &spec, id, &p).await?;
    if let Some(reason) = reason
        && let Some(row) = store::get_by_id(ctx.db(), &spec, id).await?
    {
        ctx.svc.actionlog.record(ctx, &spec, &row, status, false, json!({"reason": reason})).await;
    }
    Ok(())
}

/// The server a disk is attached to, if any.
pub async fn attached_to(ctx: &Ctx, disk_id: &str) -> Result<Option<Row>, Error> {
    Ok(store::select(ctx.db(), &guestdisk_spec(), eq("guestdisks_tbl", "disk_id", disk_id)).await?.into_iter().next())
}

#[async_trait]
impl Resource for Disks {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    /// `POST /disks {"disk": {"name", "size": MB or "10g", "storage" | "storage_id", "format"}}`:
    /// a data disk on a storage; a `DiskCreateTask` allocates it on the storage's host.
    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, raw: &Row, owner: &Owner) -> Result<(), Error> {
        let size = match raw.get("size").or_else(|| raw.get("disk_size")) {
            Some(v) => crate::servers::size_mb("size", v)?,
            None => return Err(Error::missing("size")),
        };
        if !(1..=16 << 20).contains(&size) {
            return Err(Error::invalid("size", "must be from 1 MB to 16 TB"));
        }
        input.insert("disk_size".into(), size.into());
        input.insert("disk_type".into(), "data".into());
        match raw.get("format").or_else(|| raw.get("disk_format")).and_then(Value::as_str) {
            Some(f) if DISK_FORMATS.contains(&f) => input.insert("disk_format".into(), f.into()),
            Some(f) => return Err(Error::invalid("format", format!("{f:?} is not qcow2 or raw"))),
            None => input.insert("disk_format".into(), "qcow2".into()),
        };
        input.remove("template_id");
        let storage = match crate::common::reference(raw, &["storage", "storage_id"]) {
            Some(key) => crate::common::lookup_internal(ctx, &crate::storages::storage_spec(), &key).await?,
            None => crate::servers::roomiest_storage(ctx, size).await?,
        };
        if !storage.get("enabled").and_then(Value::as_bool).unwrap_or(false) {
            return Err(Error::InvalidStatus(format!("storage {} is disabled", row_str(&storage, "name"))));
        }
        input.insert("storage_id".into(), row_str(&storage, "id").into());
        crate::quotas::check(
            ctx,
            &owner.project_id,
            crate::quotas::Quota { storage: size, ..crate::quotas::Quota::zero() },
        )
        .await?;
        Ok(())
    }

    async fn post_create(&self, ctx: &Ctx, row: &Row, _raw: &Row) -> Result<(), Error> {
        let tm = TaskManager::of(&ctx.svc)?;
        let params = crate::tasks::disk_create::Params { disk_id: row_str(row, "id").into() };
        tm.start::<crate::tasks::disk_create::DiskCreateTask>(ctx, TaskObject::of(&self.spec, row), &params).await?;
        Ok(())
    }

    async fn validate_delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        if let Some(gd) = attached_to(ctx, row_str(row, "id")).await? {
            return Err(Error::InvalidStatus(format!(
                "disk {} is attached to server {}: detach it first",
                row_str(row, "name"),
                row_str(&gd, "guest_id")
            )));
        }
        let st = row_str(row, "status");
        if [DISK_START_ALLOC, DISK_ALLOCATING, DISK_IMAGE_CACHING, DISK_DEALLOCATING].contains(&st) {
            return Err(Error::InvalidStatus(format!("disk {} is {st}", row_str(row, "name"))));
        }
        Ok(())
    }

    async fn delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        let tm = TaskManager::of(&ctx.svc)?;
        let params = crate::tasks::disk_delete::Params { disk_id: row_str(row, "id").into(), purge: false };
        tm.start::<crate::tasks::disk_delete::DiskDeleteTask>(ctx, TaskObject::of(&self.spec, row), &params).await?;
        Ok(())
    }

    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        add_names(ctx, rows, &crate::storages::storage_spec(), "storage").await?;
        let ids: Vec<String> = rows.iter().map(|r| row_str(r, "id").to_string()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let cond = Condition::all().add(crate::common::col_in("guestdisks_tbl", "disk_id", ids));
        let links = store::select(ctx.db(), &guestdisk_spec(), cond).await?;
        let guests: std::collections::HashMap<String, String> =
            links.iter().map(|l| (row_str(l, "disk_id").to_string(), row_str(l, "guest_id").to_string())).collect();
        let names =
            crate::common::names(ctx, &crate::servers::server_spec(), guests.values().cloned().collect()).await?;
        for r in rows {
            let g = guests.get(row_str(r, "id")).cloned().unwrap_or_default();
            r.insert("guest".into(), names.get(&g).cloned().unwrap_or_default().into());
            r.insert("guest_id".into(), g.into());
        }
        Ok(())
    }

    async fn context_filter(&self, ctx: &Ctx, plural: &str, id: &str) -> Result<Option<Condition>, Error> {
        Ok(match plural {
            "storages" => Some(eq(self.spec.table, "storage_id", id)),
            "servers" => {
                let links = store::select(ctx.db(), &guestdisk_spec(), eq("guestdisks_tbl", "guest_id", id)).await?;
                let ids: Vec<String> = links.iter().map(|l| row_str(l, "disk_id").to_string()).collect();
                Some(Condition::all().add(crate::common::col_in("disks_tbl", "id", ids)))
            }
            _ => None,
        })
    }

    async fn perform(&self, ctx: &Ctx, row: &Row, action: &str, _body: &Row) -> Result<Value, Error> {
        match action {
            "syncstatus" => {
                // A disk is ready once allocated; a failed allocation can be retried by deleting it.
                let st = if row_str(row, "access_path").is_empty() { DISK_ALLOC_FAILED } else { DISK_READY };
                set_disk_status(ctx, row_str(row, "id"), st, None).await?;
            }
            _ => return Err(Error::NotFound(format!("disk has no action {action}"))),
        }
        let row = store::get_by_id(ctx.db(), &self.spec, row_str(row, "id"))
            .await?
            .ok_or_else(|| Error::not_found("disk", row_str(row, "id")))?;
        Ok(json!({"disk": view(ctx, self, row).await?}))
    }
}

/// Where a view's added name comes from: (the spec, the key without `_id`).
type NameSource = (fn() -> ResourceSpec, &'static str);

/// A server's joint rows (guestdisks, guestnetworks): listed, never written directly.
pub struct Joint {
    spec: ResourceSpec,
    /// The other side: `GET /<plural>/<id>/<joint plural>` filters on `col`.
    other: (&'static str, &'static str),
    /// A name to add to views: (the spec it comes from, the key without `_id`).
    named: Option<NameSource>,
}

pub fn guestdisks() -> Joint {
    Joint { spec: guestdisk_spec(), other: ("disks", "disk_id"), named: None }
}

pub fn guestnetworks() -> Joint {
    Joint {
        spec: guestnetwork_spec(),
        other: ("networks", "network_id"),
        named: Some((crate::networks::network_spec, "network")),
    }
}

fn joint_readonly() -> Error {
    Error::BadRequest("change a server's disks and NICs through the server's actions".into())
}

#[async_trait]
impl Resource for Joint {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_create(&self, _c: &Ctx, _i: &mut Row, _r: &Row, _o: &Owner) -> Result<(), Error> {
        Err(joint_readonly())
    }
    async fn validate_update(&self, _c: &Ctx, _r: &Row, _p: &mut Row, _raw: &Row) -> Result<(), Error> {
        Err(joint_readonly())
    }
    async fn validate_delete(&self, _c: &Ctx, _r: &Row) -> Result<(), Error> {
        Err(joint_readonly())
    }
    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        match self.named {
            Some((spec, key)) => add_names(ctx, rows, &spec(), key).await,
            None => Ok(()),
        }
    }
    async fn context_filter(&self, _ctx: &Ctx, plural: &str, id: &str) -> Result<Option<Condition>, Error> {
        Ok(match plural {
            "servers" => Some(eq(self.spec.table, "guest_id", id)),
            p if p == self.other.0 => Some(eq(self.spec.table, self.other.1, id)),
            _ => None,
        })
    }
}

#[async_trait]
impl Resource for Cachedimages {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_create(&self, _c: &Ctx, _i: &mut Row, _r: &Row, _o: &Owner) -> Result<(), Error> {
        Err(Error::BadRequest("cached images come from glance when a server or disk uses them".into()))
    }
}

#[async_trait]
impl Resource for StoragecachedImages {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_create(&self, _c: &Ctx, _i: &mut Row, _r: &Row, _o: &Owner) -> Result<(), Error> {
        Err(Error::BadRequest("use PUT /storagecaches/<id>/cachedimages/<image_id>".into()))
    }
    async fn context_filter(&self, _ctx: &Ctx, plural: &str, id: &str) -> Result<Option<Condition>, Error> {
        Ok(match plural {
            "storagecaches" => Some(eq(self.spec.table, "storagecache_id", id)),
            "cachedimages" => Some(eq(self.spec.table, "cachedimage_id", id)),
            _ => None,
        })
    }
}

/// Removes the link of disk `disk_id` to server `server_id` (none is fine).
pub async fn unlink(ctx: &Ctx, server_id: &str, disk_id: &str) -> Result<(), Error> {
    ctx.db()
        .raw_exec(
            "DELETE FROM guestdisks_tbl WHERE guest_id = ? AND disk_id = ?",
            vec![server_id.into(), disk_id.into()],
        )
        .await
        .map(drop)
}

/// The region's copy of glance image `key` (id or name), refreshed from glance: it must be
/// active and visible to the caller. Returns the cachedimage row.
pub async fn cached_image(ctx: &Ctx, key: &str) -> Result<Row, Error> {
    let r = crate::region(&ctx.svc)?;
    let not_found = || Error::NotFound(format!("image {key} not found"));
    let img = match r.remote.image(key).await {
        Ok(img) => img,
        Err(Error::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e),
    };
    // The region reads glance with its own service account, which sees every image: what the
    // caller may boot is what glance would show the caller, and the rest does not exist.
    if !image_visible(&ctx.cred, &img) {
        return Err(not_found());
    }
    let id = img.get("id").and_then(Value::as_str).unwrap_or(key).to_string();
    let status = img.get("status").and_then(Value::as_str).unwrap_or_default();
    if status != "active" {
        return Err(Error::InvalidStatus(format!("image {key} is {status}, not active")));
    }
    let size = img.get("size").and_then(Value::as_i64).unwrap_or(0);
    let min_disk = img.get("min_disk").and_then(Value::as_i64).unwrap_or(0);
    let spec = cachedimage_spec();
    let mut row = Row::new();
    row.insert("name".into(), img.get("name").cloned().unwrap_or(id.clone().into()));
    row.insert("size".into(), size.into());
    row.insert("min_disk".into(), min_disk.into());
    row.insert("disk_format".into(), img.get("disk_format").cloned().unwrap_or_default());
    row.insert("info".into(), img.clone());
    row.insert("last_sync".into(), now().into());
    row.insert("status".into(), "active".into());
    if store::get_by_id(ctx.db(), &spec, &id).await?.is_some() {
        store::update(ctx.db(), &spec, &id, &row).await?;
    } else {
        row.insert("id".into(), id.clone().into());
        row.insert("created_at".into(), now().into());
        row.insert("updated_at".into(), now().into());
        let txn = ctx.db().begin().await?;
        match store::insert(&txn, &spec, &row).await {
            Ok(()) => txn.commit().await?,
            Err(Error::Duplicate(_)) => {} // a concurrent create cached it first
            Err(e) => return Err(e),
        }
    }
    store::get_by_id(ctx.db(), &spec, &id).await?.ok_or_else(|| Error::not_found("cachedimage", &id))
}

/// Whether `cred` may see glance image `img` (its JSON view): by its rights on glance's
/// images (system: all; domain: its domain's), as the owner's project, or by sharing.
fn image_visible(cred: &cloudcommon::auth::UserCred, img: &Value) -> bool {
    use cloudcommon::auth::Scope;
    let field = |k: &str| img.get(k).and_then(Value::as_str).unwrap_or_default();
    let req = cloudcommon::policy::Request { service: "image", resource: "images", action: "get", extra: None };
    let shared = img.get("is_public").and_then(Value::as_bool).unwrap_or(false)
        && match field("public_scope") {
            "system" => true,
            "domain" => field("domain_id") == cred.project_domain_id,
            _ => false,
        };
    match cred.policies.allowed_scope(&req) {
        Some(Scope::System) => true,
        Some(Scope::Domain) => field("domain_id") == cred.project_domain_id || shared,
        Some(_) => field("tenant_id") == cred.project_id || shared,
        None => false,
    }
}

/// `PUT /storagecaches/<sc>/cachedimages/<img>`: a host reports an image cached (or not).
pub async fn put_storagecachedimage(ctx: &Ctx, sc_id: &str, image_id: &str, body: &Row) -> Result<Value, Error> {
    crate::common::require_system(ctx, &StoragecachedImages::new(), "update")?;
    if store::get_by_id(ctx.db(), &crate::storages::storagecache_spec(), sc_id).await?.is_none() {
        return Err(Error::not_found("storagecache", sc_id));
    }
    let mut patch = Row::new();
    one_of(&mut body.clone(), "status", &["init", "caching", "active", "cache_fail", "deleting", "unknown"])?;
    for k in ["status", "path"] {
        if let Some(v) = body.get(k) {
            patch.insert(k.into(), v.clone());
        }
    }
    upsert_cached(ctx, sc_id, image_id, &patch).await
}

/// Creates or updates the storagecachedimage row of (`sc_id`, `image_id`).
pub async fn upsert_cached(ctx: &Ctx, sc_id: &str, image_id: &str, patch: &Row) -> Result<Value, Error> {
    let spec = storagecachedimage_spec();
    let cond =
        Condition::all().add(eq(spec.table, "storagecache_id", sc_id)).add(eq(spec.table, "cachedimage_id", image_id));
    let mut patch = patch.clone();
    if patch.get("status").and_then(Value::as_str) == Some("active") {
        patch.insert("last_download".into(), now().into());
    }
    let id = match store::select(ctx.db(), &spec, cond).await?.first() {
        Some(existing) => {
            let id = row_str(existing, "id").to_string();
            store::update(ctx.db(), &spec, &id, &patch).await?;
            id
        }
        None => {
            let id = new_id();
            let mut row = patch.clone();
            for (k, v) in [
                ("id", id.clone()),
                ("name", format!("{sc_id}-{image_id}")),
                ("storagecache_id", sc_id.into()),
                ("cachedimage_id", image_id.into()),
                ("created_at", now()),
                ("updated_at", now()),
            ] {
                row.insert(k.into(), v.into());
            }
            row.entry("status").or_insert("init".into());
            let txn = ctx.db().begin().await?;
            store::insert(&txn, &spec, &row).await?;
            txn.commit().await?;
            id
        }
    };
    let row =
        store::get_by_id(ctx.db(), &spec, &id).await?.ok_or_else(|| Error::not_found("storagecachedimage", &id))?;
    Ok(json!({"storagecachedimage": store::to_view(&spec, row)}))
}

/// Whether image `image_id` is active in storagecache `sc_id`.
pub async fn is_cached(ctx: &Ctx, sc_id: &str, image_id: &str) -> Result<bool, Error> {
    let spec = storagecachedimage_spec();
    let cond = Condition::all()
        .add(eq(spec.table, "storagecache_id", sc_id))
        .add(eq(spec.table, "cachedimage_id", image_id))
        .add(eq(spec.table, "status", "active"));
    Ok(!store::select(ctx.db(), &spec, cond).await?.is_empty())
}

/// A disk's index-checked driver field, for attach.
pub fn driver_of(body: &Row) -> Result<String, Error> {
    let mut b = body.clone();
    Ok(one_of(&mut b, "driver", DISK_DRIVERS)?.unwrap_or_else(|| "virtio".into()))
}

/// An index field (0-63).
pub fn index_of(body: &Row) -> Result<Option<i64>, Error> {
    int_field(body, "index", 0, 63)
}
