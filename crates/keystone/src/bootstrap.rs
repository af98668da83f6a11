//! First-start (and every-start) bootstrap: what an installation always has.
//!
//! Idempotent: each item is created when missing and left alone when present, except the
//! catalog endpoints and service accounts, which are brought in line with the running
//! configuration (ports can change between starts).

use apis::Error;
use apis::identity::{ADMIN_ROLE, DEFAULT_DOMAIN_ID, DEFAULT_DOMAIN_NAME, SYSTEM_PROJECT};
use cloudcommon::db::{Db, new_id, now};
use cloudcommon::resource::{ResourceSpec, Row, row_str, store};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use serde_json::{Value, json};

use crate::assignments::{self, Actor, Target};
use crate::models::{catalog, domains, policies, projects, roles, users};
use crate::{Keystone, passwords};

pub const SYSTEM_PROJECT_ID: &str = "system";
/// The bootstrap administrator, as in Cloudpods.
pub const ADMIN_USER: &str = "sysadmin";

/// Roles every installation has: OpenStack's three and Cloudpods' predefined ones.
pub const PREDEFINED_ROLES: [(&str, &str); 15] = [
    ("admin", "System administrator (in project system) or project administrator"),
    ("member", "Project member: manages the project's resources"),
    ("reader", "Project reader: reads the project's resources"),
    ("domainadmin", "Domain administrator"),
    ("domain_editor", "Domain editor"),
    ("domain_viewer", "Domain viewer"),
    ("project_owner", "Project owner"),
    ("project_editor", "Project editor"),
    ("project_viewer", "Project viewer"),
    ("fa", "System finance administrator"),
    ("domainfa", "Domain finance administrator"),
    ("projectfa", "Project finance administrator"),
    ("sys_secadmin", "Three-admin mode: security administrator"),
    ("sys_opsadmin", "Three-admin mode: operations administrator"),
    ("sys_adtadmin", "Three-admin mode: audit administrator"),
];

fn read_only() -> Value {
    json!({"*": {"*": {"list": "allow", "get": "allow"}}})
}

/// Everything but identity, which editors only read. The explicit deny matters: without
/// it an identity write would fall back to the top-level `"*": "allow"`.
fn editor() -> Value {
    json!({"*": "allow", "identity": {"*": {"list": "allow", "get": "allow", "*": "deny"}}})
}

/// Predefined policies: (name, scope, blob).
fn predefined_policies() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("sysadmin", "system", json!({"*": "allow"})),
        ("sys-viewer", "system", read_only()),
        ("sys-secadmin", "system", json!({"identity": "allow", "log": {"*": {"list": "allow", "get": "allow"}}})),
        ("domainadmin", "domain", json!({"*": "allow"})),
        ("domain-editor", "domain", editor()),
        ("domain-viewer", "domain", read_only()),
        ("projectadmin", "project", json!({"*": "allow"})),
        ("project-editor", "project", editor()),
        ("project-viewer", "project", read_only()),
    ]
}

/// Role -> policy bindings: (role, policy, only in the system project).
const BINDINGS: [(&str, &str, bool); 12] = [
    ("admin", "sysadmin", true),
    ("admin", "projectadmin", false),
    ("member", "project-editor", false),
    ("reader", "project-viewer", false),
    ("domainadmin", "domainadmin", false),
    ("domain_editor", "domain-editor", false),
    ("domain_viewer", "domain-viewer", false),
    ("project_owner", "projectadmin", false),
    ("project_editor", "project-editor", false),
    ("project_viewer", "project-viewer", false),
    ("sys_opsadmin", "sysadmin", true),
    ("sys_secadmin", "sys-secadmin", true),
];

/// One catalog entry to register: the service type and name, and its URLs.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub service_type: String,
    pub name: String,
    pub public_url: String,
    pub internal_url: String,
}

/// What the bootstrap needs from whoever starts keystone.
#[derive(Debug, Clone, Default)]
pub struct BootstrapInput {
    /// Password of `sysadmin`, set only when the user is created.
    pub admin_password: String,
    pub region: String,
    pub catalog: Vec<CatalogEntry>,
    /// Service accounts (name, password), admin in project system; passwords kept in line.
    pub service_accounts: Vec<(String, String)>,
}

/// What the bootstrap found or made.
#[derive(Debug, Clone)]
pub struct BootstrapOutcome {
    /// Whether this start created the installation.
    pub first_start: bool,
}

async fn find(db: &Db, spec: &ResourceSpec, name: &str, domain: Option<&str>) -> Result<Option<Row>, Error> {
    let mut cond = Condition::all().add(Expr::col(Alias::new("name")).eq(name));
    if let Some(d) = domain {
        cond = cond.add(Expr::col(Alias::new("domain_id")).eq(d));
    }
    Ok(store::select(db, spec, cond).await?.into_iter().next())
}

/// Inserts a row with the base columns filled; returns its id.
async fn insert(db: &Db, spec: &ResourceSpec, id: Option<&str>, mut row: Row) -> Result<String, Error> {
    let id = id.map(str::to_string).unwrap_or_else(new_id);
    let t = now();
    row.insert("id".into(), id.clone().into());
    row.insert("created_at".into(), t.clone().into());
    row.insert("updated_at".into(), t.into());
    for c in &spec.cols {
        if let (false, Some(d)) = (row.contains_key(c.name), &c.default) {
            row.insert(c.name.to_string(), d.clone());
        }
    }
    let txn = db.begin().await?;
    store::insert(&txn, spec, &row).await?;
    txn.commit().await?;
    Ok(id)
}

fn obj(v: Value) -> Row {
    v.as_object().cloned().unwrap_or_default()
}

async fn ensure(
    db: &Db,
    spec: &ResourceSpec,
    id: Option<&str>,
    name: &str,
    domain: Option<&str>,
    fields: Value,
) -> Result<String, Error> {
    if let Some(id) = id
        && store::get_by_id(db, spec, id).await?.is_some()
    {
        return Ok(id.to_string());
    }
    if let Some(r) = find(db, spec, name, domain).await? {
        return Ok(row_str(&r, "id").to_string());
    }
    let mut row = obj(fields);
    row.insert("name".into(), name.into());
    if let Some(d) = domain {
        row.insert("domain_id".into(), d.into());
    }
    insert(db, spec, id, row).await
}

/// Makes sure a user exists in the default domain with `password` and the admin role on
/// project system. Returns its id.
async fn ensure_admin_user(
    ks: &Keystone,
    name: &str,
    password: &str,
    reset_password: bool,
    system_account: bool,
) -> Result<String, Error> {
    let db = &ks.db;
    let existing = find(db, &users::spec(), name, Some(DEFAULT_DOMAIN_ID)).await?;
    let uid = match existing {
        Some(u) => {
            let uid = row_str(&u, "id").to_string();
            let matches = match passwords::current(db, &uid).await? {
                Some(h) => passwords::verify(password, &h).await,
                None => false,
            };
            if reset_password && !matches {
                passwords::set(db, &uid, password, ks.cfg.bcrypt_cost).await?;
            }
            uid
        }
        None => {
            let row = obj(json!({"name": name, "domain_id": DEFAULT_DOMAIN_ID, "is_system_account": system_account}));
            let uid = insert(db, &users::spec(), None, row).await?;
            passwords::set(db, &uid, password, ks.cfg.bcrypt_cost).await?;
            uid
        }
    };
    let admin = find(db, &roles::spec(), ADMIN_ROLE, Some(DEFAULT_DOMAIN_ID))
        .await?
        .ok_or_else(|| Error::Internal("admin role missing".into()))?;
    let rid = row_str(&admin, "id");
    assignments::grant(db, Actor::User, Target::Project, &uid, SYSTEM_PROJECT_ID, rid).await?;
    assignments::grant(db, Actor::User, Target::System, &uid, assignments::SYSTEM_TARGET, rid).await?;
    Ok(uid)
}

/// Runs the bootstrap. Safe on every start.
pub async fn run(ks: &Keystone, input: &BootstrapInput) -> Result<BootstrapOutcome, Error> {
    let db = &ks.db;
    let first_start = db.raw_query("SELECT id FROM bootstrap_tbl", vec![]).await?.is_empty();
    ensure(
        db,
        &domains::spec(),
        Some(DEFAULT_DOMAIN_ID),
        DEFAULT_DOMAIN_NAME,
        None,
        json!({"description": "The default domain"}),
    )
    .await?;
    ensure(
        db,
        &projects::spec(),
        Some(SYSTEM_PROJECT_ID),
        SYSTEM_PROJECT,
        Some(DEFAULT_DOMAIN_ID),
        json!({"description": "System administrators and service accounts"}),
    )
    .await?;
    for (name, desc) in PREDEFINED_ROLES {
        ensure(
            db,
            &roles::spec(),
            None,
            name,
            Some(DEFAULT_DOMAIN_ID),
            json!({"description": desc, "is_public": true, "public_scope": "system"}),
        )
        .await?;
    }
    for (name, scope, blob) in predefined_policies() {
        let fields = json!({"type": name, "scope": scope, "blob": blob, "is_system": true, "is_public": true, "public_scope": "system"});
        let id = ensure(db, &policies::spec(), None, name, Some(DEFAULT_DOMAIN_ID), fields).await?;
        // Predefined policies follow the release: an upgrade brings their new definition.
        if let Some(row) = store::get_by_id(db, &policies::spec(), &id).await?
            && row.get("blob") != Some(&blob)
        {
            let mut patch = Row::new();
            patch.insert("blob".into(), blob);
            store::update(db, &policies::spec(), &id, &patch).await?;
        }
    }
    for (role, policy, system_only) in BINDINGS {
        let r = find(db, &roles::spec(), role, Some(DEFAULT_DOMAIN_ID)).await?;
        let p = find(db, &policies::spec(), policy, Some(DEFAULT_DOMAIN_ID)).await?;
        if let (Some(r), Some(p)) = (r, p) {
            let project = system_only.then_some(SYSTEM_PROJECT_ID);
            policies::bind(db, row_str(&r, "id"), row_str(&p, "id"), project).await?;
        }
    }
    ensure(db, &catalog::region_spec(), Some(&input.region), &input.region, None, json!({})).await?;
    for e in &input.catalog {
        ensure_catalog_entry(db, &input.region, e).await?;
    }
    if first_start {
        if input.admin_password.is_empty() {
            return Err(Error::invalid("admin_password", "is required on first start"));
        }
        ensure_admin_user(ks, ADMIN_USER, &input.admin_password, false, false).await?;
    }
    for (name, password) in &input.service_accounts {
        ensure_admin_user(ks, name, password, true, true).await?;
    }
    if first_start {
        db.raw_exec("INSERT INTO bootstrap_tbl (id, done_at) VALUES (?, ?)", vec![1.into(), now().into()]).await?;
        tracing::info!("keystone bootstrapped: default domain, project system, roles, policies, {ADMIN_USER}");
    }
    ks.forget_cached();
    Ok(BootstrapOutcome { first_start })
}

async fn ensure_catalog_entry(db: &Db, region: &str, e: &CatalogEntry) -> Result<(), Error> {
    let sid = ensure(db, &catalog::service_spec(), None, &e.name, None, json!({"type": e.service_type})).await?;
    let eps = store::select(
        db,
        &catalog::endpoint_spec(),
        Condition::all().add(Expr::col(Alias::new("service_id")).eq(sid.as_str())),
    )
    .await?;
    for (interface, url) in [("public", &e.public_url), ("internal", &e.internal_url), ("admin", &e.internal_url)] {
        let existing = eps.iter().find(|x| row_str(x, "interface") == interface && row_str(x, "region_id") == region);
        match existing {
            Some(x) if row_str(x, "url") == url.as_str() => {}
            Some(x) => {
                let mut patch = Row::new();
                patch.insert("url".into(), url.clone().into());
                store::update(db, &catalog::endpoint_spec(), row_str(x, "id"), &patch).await?;
            }
            None => {
                let row = obj(json!({
                    "name": format!("{}-{interface}", e.name),
                    "service_id": sid,
                    "region_id": region,
                    "interface": interface,
                    "url": url,
                }));
                insert(db, &catalog::endpoint_spec(), None, row).await?;
            }
        }
    }
    Ok(())
}
