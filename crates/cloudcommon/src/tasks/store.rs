//! The datastore of the task engine: `tasks_tbl` and its SQL, nothing else.
//!
//! Every change of a task's status goes through [`cas`], a compare-and-set on
//! `(id, status, stage)`: whoever changes a row must have seen it in the state it changes it
//! from, so two writers (a callback and the reaper, two deliveries of one callback, two
//! processes) can never both move a task on.

use apis::Error;
use apis::task::{StageRecord, TaskStatus};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use serde_json::{Value, json};

use super::TaskObject;
use crate::auth::UserCred;
use crate::db::{Db, Migration, Txn, now};
use crate::resource::{Col, NameScope, OwnerScope, ResourceSpec, Row, row_str, store};

/// The first stage of every task.
pub const ON_INIT: &str = "on_init";

pub fn spec(service: &'static str) -> ResourceSpec {
    ResourceSpec::new(service, "task", "tasks", "tasks_tbl")
        .owner(OwnerScope::Project)
        .name_scope(NameScope::None)
        .status(TaskStatus::Init.as_str())
        .col(Col::str("obj_type", 64).index())
        .col(Col::str("obj_id", 128).index())
        .col(Col::str("obj_name", 128).search())
        .col(Col::str("stage", 64))
        .col(Col::json("params"))
        .col(Col::json("result"))
        .col(Col::str("parent_task_id", 128).index())
        .col(Col::json("user_cred"))
        .col(Col::json("history"))
        .col(Col::int("progress").not_null(0.into()))
        .col(Col::text("reason"))
        .col(Col::time("wait_deadline").index())
        .col(Col::time("finished_at"))
        // The input of the current stage (a callback body): may hold what agents report.
        .col(Col::json("stage_data").hidden())
        // The wait of the parent this task reports to, `<stage>#<n>`; see [`wait_key`].
        .col(Col::str("parent_wait", 128).hidden())
}

/// The tasks table's migration, shared by every service that runs tasks.
pub const MIGRATION: Migration = Migration { version: 3, name: "tasks", up: |db| spec("any").create_table_sql(db) };

/// One task as stored.
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub id: String,
    pub name: String,
    /// The object the task works on; its owner is the task's owner.
    pub obj: TaskObject,
    pub status: TaskStatus,
    pub stage: String,
    pub params: Value,
    pub stage_data: Value,
    pub result: Value,
    pub parent_task_id: Option<String>,
    pub parent_wait: String,
    pub cred: UserCred,
    pub history: Vec<StageRecord>,
    pub reason: String,
    pub created_at: String,
    pub updated_at: String,
}

impl TaskRow {
    fn from_row(row: &Row) -> TaskRow {
        let s = |k: &str| row_str(row, k).to_string();
        TaskRow {
            id: s("id"),
            name: s("name"),
            obj: TaskObject {
                obj_type: s("obj_type"),
                id: s("obj_id"),
                name: s("obj_name"),
                domain_id: s("domain_id"),
                tenant_id: s("tenant_id"),
            },
            // An unknown status is treated as failed: nothing will try to run it.
            status: TaskStatus::parse(row_str(row, "status")).unwrap_or(TaskStatus::Failed),
            stage: s("stage"),
            params: row.get("params").cloned().unwrap_or(Value::Null),
            stage_data: row.get("stage_data").cloned().unwrap_or(Value::Null),
            result: row.get("result").cloned().unwrap_or(Value::Null),
            parent_task_id: Some(s("parent_task_id")).filter(|p| !p.is_empty()),
            parent_wait: s("parent_wait"),
            cred: row.get("user_cred").cloned().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default(),
            history: row.get("history").cloned().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default(),
            reason: s("reason"),
            created_at: s("created_at"),
            updated_at: s("updated_at"),
        }
    }

    /// The key of the wait this task is in: its stage and the length of its history when it
    /// began waiting. Children started by the stage that declared the wait carry it.
    pub fn wait_key(&self) -> String {
        wait_key(&self.stage, self.history.len())
    }
}

pub fn wait_key(stage: &str, history_len: usize) -> String {
    format!("{stage}#{history_len}")
}

/// What a new task row needs.
pub struct NewTask<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub obj: &'a TaskObject,
    pub cred: &'a UserCred,
    pub params: &'a Value,
    pub parent_task_id: Option<&'a str>,
    pub parent_wait: &'a str,
}

/// The credential a task acts for, as stored: identity and roles, never a token, its hash
/// (the key it is revoked by) or the policies (re-read from keystone by whoever needs them).
pub fn stored_cred(cred: &UserCred) -> UserCred {
    UserCred { token_hash: String::new(), policies: Default::default(), ..cred.clone() }
}

pub async fn insert(txn: &Txn<'_>, spec: &ResourceSpec, t: &NewTask<'_>) -> Result<(), Error> {
    let (domain_id, tenant_id) = if t.obj.domain_id.is_empty() && t.obj.tenant_id.is_empty() {
        (t.cred.project_domain_id.as_str(), t.cred.project_id.as_str())
    } else {
        (t.obj.domain_id.as_str(), t.obj.tenant_id.as_str())
    };
    let time = now();
    let cred = serde_json::to_value(stored_cred(t.cred)).map_err(|e| Error::Internal(e.to_string()))?;
    let row = patch([
        ("id", t.id.into()),
        ("name", t.name.into()),
        ("description", "".into()),
        ("created_at", time.clone().into()),
        ("updated_at", time.into()),
        ("update_version", 0.into()),
        ("deleted", false.into()),
        ("domain_id", domain_id.into()),
        ("tenant_id", tenant_id.into()),
        ("status", TaskStatus::Init.as_str().into()),
        ("obj_type", t.obj.obj_type.clone().into()),
        ("obj_id", t.obj.id.clone().into()),
        ("obj_name", t.obj.name.clone().into()),
        ("stage", ON_INIT.into()),
        ("params", t.params.clone()),
        ("parent_task_id", t.parent_task_id.unwrap_or_default().into()),
        ("parent_wait", t.parent_wait.into()),
        ("user_cred", cred),
        ("history", json!([])),
        ("progress", 0.into()),
        ("reason", "".into()),
    ]);
    store::insert(txn, spec, &row).await
}

pub async fn load(db: &Db, spec: &ResourceSpec, id: &str) -> Result<Option<TaskRow>, Error> {
    Ok(store::get_by_id(db, spec, id).await?.as_ref().map(TaskRow::from_row))
}

fn status_in(statuses: &[TaskStatus]) -> Expr {
    Expr::col(Alias::new("status")).is_in(statuses.iter().map(|s| s.as_str()))
}

/// Tasks that are not finished: what a restart must look at.
pub async fn unfinished(db: &Db, spec: &ResourceSpec) -> Result<Vec<TaskRow>, Error> {
    let cond = sea_orm::sea_query::Condition::all().add(status_in(&[
        TaskStatus::Init,
        TaskStatus::Running,
        TaskStatus::Waiting,
    ]));
    Ok(store::select(db, spec, cond).await?.iter().map(TaskRow::from_row).collect())
}

/// The children of `parent_id` (those that report to its wait `wait`, if given), oldest first.
pub async fn children(
    db: &Db,
    spec: &ResourceSpec,
    parent_id: &str,
    wait: Option<&str>,
) -> Result<Vec<TaskRow>, Error> {
    let mut cond = sea_orm::sea_query::Condition::all().add(Expr::col(Alias::new("parent_task_id")).eq(parent_id));
    if let Some(w) = wait {
        cond = cond.add(Expr::col(Alias::new("parent_wait")).eq(w));
    }
    let mut rows: Vec<TaskRow> = store::select(db, spec, cond).await?.iter().map(TaskRow::from_row).collect();
    rows.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    Ok(rows)
}

/// Waiting tasks whose wait deadline has passed.
pub async fn expired(db: &Db, spec: &ResourceSpec) -> Result<Vec<TaskRow>, Error> {
    let cond = sea_orm::sea_query::Condition::all()
        .add(status_in(&[TaskStatus::Waiting]))
        .add(Expr::col(Alias::new("wait_deadline")).lt(now()));
    Ok(store::select(db, spec, cond).await?.iter().map(TaskRow::from_row).collect())
}

/// Applies `patch` to task `id` if it is still `(status, stage)`; whether it was.
pub async fn cas(
    txn: &Txn<'_>,
    spec: &ResourceSpec,
    id: &str,
    status: TaskStatus,
    stage: &str,
    patch: &Row,
) -> Result<bool, Error> {
    let mut q = Query::update();
    q.table(Alias::new(spec.table));
    for (k, v) in patch {
        q.value(Alias::new(k.clone()), store::sql_value(spec, k, v)?);
    }
    q.value(Alias::new("updated_at"), now());
    q.value(Alias::new("update_version"), Expr::col(Alias::new("update_version")).add(1));
    q.and_where(Expr::col(Alias::new("id")).eq(id))
        .and_where(Expr::col(Alias::new("status")).eq(status.as_str()))
        .and_where(Expr::col(Alias::new("stage")).eq(stage));
    Ok(txn.execute(&q).await? == 1)
}

/// [`cas`] in a transaction of its own.
pub async fn cas_now(
    db: &Db,
    spec: &ResourceSpec,
    id: &str,
    status: TaskStatus,
    stage: &str,
    patch: &Row,
) -> Result<bool, Error> {
    let txn = db.begin().await?;
    let done = cas(&txn, spec, id, status, stage, patch).await?;
    txn.commit().await?;
    Ok(done)
}

/// A patch from `(column, value)` pairs.
pub fn patch<const N: usize>(pairs: [(&str, Value); N]) -> Row {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
