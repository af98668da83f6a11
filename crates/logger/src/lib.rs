//! logger: the audit trail across services.
//!
//! Services post one action record per operation (`POST /actions`); users and auditors list
//! them newest first with filters (`since`, `until`, `obj_type`, `obj_id`, `user`, `service`,
//! `success`). Records are append-only: they cannot be updated or deleted through the API.

use std::sync::Arc;

use apis::Error;
use async_trait::async_trait;
use axum::Router;
use cloudcommon::actionlog::ActionLog;
use cloudcommon::auth::TokenVerifier;
use cloudcommon::config::CommonOptions;
use cloudcommon::db::{Db, Migration, now};
use cloudcommon::resource::{Col, Ctx, ListQuery, NameScope, Owner, OwnerScope, Resource, ResourceSpec, Row, row_str};
use cloudcommon::service::ServiceBuilder;
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const DEFAULT_PORT: u16 = 30999;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LoggerConfig {
    #[serde(flatten)]
    pub common: CommonOptions,
}

impl LoggerConfig {
    pub fn new() -> Self {
        LoggerConfig { common: CommonOptions { port: DEFAULT_PORT, ..CommonOptions::default() } }
    }
}

pub fn spec() -> ResourceSpec {
    ResourceSpec::new("log", "action", "actions", "action_tbl")
        .owner(OwnerScope::Project)
        .name_scope(NameScope::None)
        .col(Col::str("obj_type", 64).create().index())
        .col(Col::str("obj_id", 128).create().index())
        .col(Col::str("obj_name", 128).create().search())
        .col(Col::str("action", 64).create().index())
        .col(Col::text("notes").create())
        .col(Col::bool("success").create().not_null(true.into()))
        .col(Col::str("service", 64).create().index())
        .col(Col::str("user_id", 128).create().index())
        // `?user=` matches the name or the id (see `list_filter`), so not the plain equality.
        .col(Col { filter: false, ..Col::str("user", 128).create().search() })
        .col(Col::str("actor_tenant_id", 128).create())
        .col(Col::str("tenant", 128).create())
        .col(Col::str("actor_domain_id", 128).create())
        .col(Col::str("domain", 128).create())
        .col(Col::str("ip", 64).create())
        .col(Col::str("roles", 256).create())
        .col(Col::str("severity", 16).create())
        .col(Col::str("kind", 16).create())
        .col(Col::str("start_time", 32).create())
        .col(Col::str("ops_time", 32).index())
        .order("ops_time", true)
}

fn migrations() -> Vec<Migration> {
    vec![
        cloudcommon::resource::metadata::MIGRATION,
        cloudcommon::opslog::MIGRATION,
        cloudcommon::tasks::MIGRATION,
        Migration { version: 10, name: "actions", up: |db| spec().create_table_sql(db) },
    ]
}

/// `actions`: append-only records.
pub struct Actions {
    spec: ResourceSpec,
}

#[async_trait]
impl Resource for Actions {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    /// Accepts an `apis::logger::ActionRecord`. The record's owner is the object's owner, so
    /// project members see the actions on their project's objects.
    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, raw: &Row, _owner: &Owner) -> Result<(), Error> {
        // A record names its own actor and owner, so only callers with system-wide rights
        // (services, administrators) may write one; anyone else could forge the audit trail.
        let scope = cloudcommon::resource::dispatch::authorize(self, &ctx.cred, "create", None)?;
        if scope != cloudcommon::auth::Scope::System {
            return Err(Error::Forbidden(format!("{} may not write action records", ctx.cred.user)));
        }
        let rec: apis::logger::ActionRecord = serde_json::from_value(Value::Object(raw.clone()))
            .map_err(|e| Error::BadRequest(format!("not an action record: {e}")))?;
        if rec.action.is_empty() || rec.obj_type.is_empty() {
            return Err(Error::missing("action and obj_type"));
        }
        let name = if rec.obj_name.is_empty() { rec.obj_id.clone() } else { rec.obj_name.clone() };
        input.insert("name".into(), if name.is_empty() { rec.action.clone() } else { name }.into());
        input.insert("actor_tenant_id".into(), rec.tenant_id.clone().into());
        input.insert("actor_domain_id".into(), rec.domain_id.clone().into());
        let owner_tenant =
            if rec.owner_tenant_id.is_empty() { rec.tenant_id.clone() } else { rec.owner_tenant_id.clone() };
        let owner_domain =
            if rec.owner_domain_id.is_empty() { rec.domain_id.clone() } else { rec.owner_domain_id.clone() };
        // The dispatcher sets the owner columns from `Owner`; these override through raw input.
        input.insert("tenant_id".into(), owner_tenant.into());
        input.insert("domain_id".into(), owner_domain.into());
        input.insert("ops_time".into(), now().into());
        if row_str(input, "start_time").is_empty() {
            input.insert("start_time".into(), now().into());
        }
        if row_str(input, "severity").is_empty() {
            input.insert("severity".into(), if rec.success { "INFO" } else { "ERROR" }.into());
        }
        Ok(())
    }

    fn record_writes(&self) -> bool {
        false
    }

    async fn validate_update(&self, _ctx: &Ctx, _row: &Row, _patch: &mut Row, _raw: &Row) -> Result<(), Error> {
        Err(Error::Forbidden("action records are append-only".into()))
    }

    async fn validate_delete(&self, _ctx: &Ctx, _row: &Row) -> Result<(), Error> {
        Err(Error::Forbidden("action records are append-only".into()))
    }

    async fn list_filter(&self, _ctx: &Ctx, q: &ListQuery) -> Result<Option<Condition>, Error> {
        let col = |c: &str| Expr::col((Alias::new("action_tbl"), Alias::new(c.to_string())));
        let mut cond = Condition::all();
        if let Some(s) = q.get("since") {
            cond = cond.add(col("ops_time").gte(normalize_time(s)?));
        }
        if let Some(u) = q.get("until") {
            cond = cond.add(col("ops_time").lte(normalize_time(u)?));
        }
        if let Some(u) = q.get("user").filter(|u| !u.is_empty()) {
            cond = cond.add(Condition::any().add(col("user").eq(u)).add(col("user_id").eq(u)));
        }
        Ok(Some(cond))
    }
}

/// Accepts RFC 3339 times or plain dates and returns the stored form.
fn normalize_time(s: &str) -> Result<String, Error> {
    if let Some(t) = cloudcommon::db::parse_time(s) {
        return Ok(cloudcommon::db::fmt_time(t));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let t = d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or_else(|| Error::invalid("since", "bad date"))?;
        return Ok(cloudcommon::db::fmt_time(t));
    }
    Err(Error::invalid("since/until", format!("{s:?} is not an RFC 3339 time or a YYYY-MM-DD date")))
}

pub use cloudcommon::service::Built;

/// Connects, migrates and builds the logger's app.
pub async fn build(cfg: &LoggerConfig, verifier: Arc<dyn TokenVerifier>) -> Result<Built, Error> {
    let db = Db::connect(&cfg.common.database_url("logger")).await?;
    cloudcommon::db::migrate(&db, "logger", &migrations()).await?;
    let tm = cloudcommon::tasks::TaskManager::new("log");
    let state = ServiceBuilder::new("logger", db, verifier, ActionLog::local("logger"))
        .resource(Arc::new(Actions { spec: spec() }))
        .tasks(tm.clone())
        .build();
    tm.resume_all(&state).await?;
    let app = cloudcommon::service::app(state.clone(), "", Router::new(), Router::new());
    Ok(Built { state, app })
}
