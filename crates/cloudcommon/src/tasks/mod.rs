//! The persisted task engine (Cloudpods' taskman): multi-step work that survives restarts.
//!
//! A task is a row of `tasks_tbl` naming an object (`obj_type`, `obj_id`), a task type
//! (`name`, e.g. `GuestStartTask`), typed JSON `params`, the credential it acts for and the
//! `stage` it is at. A service writes each task type as one file implementing [`Task`]: named
//! stages, each returning what comes [`Next`], and one failure twin, [`Task::on_failure`],
//! which puts the object in its `*_fail` status. The [`TaskManager`] runs stages, persists
//! every transition, takes callbacks (`POST /tasks/<id>`) and restarts what a restart
//! interrupted.
//!
//! ```text
//!   start() stores the row        resume_all() after a restart: init and running tasks
//!          |                                  |
//!          v                                  v
//!        init ---- a driver claims it ----> running ---- Next::Stage(t) ---> running (at t)
//!                                           |    ^
//!                            Next::Wait(t)  |    |  callback: t runs with its body
//!                                           v    |
//!                                          waiting
//!
//!   running --- Next::Complete(v) -----------------------------------> complete
//!   running --- Err, Next::Fail, restart in a non-resumable stage ---> failed
//!   waiting --- error callback, wait deadline passed ----------------> failed
//!                                   (on_failure runs before a task is marked failed)
//! ```
//!
//! Invariants:
//! - A task never stays `init` or `running` after a restart: [`TaskManager::resume_all`]
//!   re-runs the current stage when [`Task::resumable`] allows it (stages are idempotent),
//!   and otherwise fails the task through `on_failure`. `waiting` tasks keep waiting, up to
//!   their deadline (an hour unless set), after which the reaper fails them.
//! - At most one stage of a task runs at a time in a process (a per-task lock), and every
//!   status change is a compare-and-set on `(status, stage)` in the database.
//! - A callback is applied at most once per wait: it moves `waiting` at stage `s` to
//!   `running` at `s`, so a second delivery, a callback for a finished or unknown task, or
//!   one naming another stage (`__stage__`) is ignored with a log line and a 200.
//! - The input of a stage entered by a callback (its body) is stored with the transition, so
//!   a restart re-runs that stage with the same input.
//! - Children asked for by a stage ([`TaskRun::start_child`]) are inserted in the same
//!   transaction as that stage's outcome and start after it commits; when the last child of
//!   a wait finishes, the parent's wait receives its result (an error body if one failed).
//! - `on_failure` runs before the task is marked `failed`; completion and failure each
//!   write one ops-log event (action = task name) on the task's object.
//!
//! Who owns what: the task type owns its object's status and its params; the engine owns the
//! task row (status, stage, history, progress, reason); agents own nothing here and only
//! report through callbacks, carrying `X-Task-Id` / `X-Task-Notify-Url` from
//! [`TaskRun::agent_headers`].

mod driver;
mod engine;
mod runner;
mod store;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use apis::Error;
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use engine::{CallbackOutcome, TaskManager};
pub use store::{MIGRATION, ON_INIT, spec};

use crate::auth::UserCred;
use crate::db::Db;
use crate::resource::{Ctx, ResourceSpec, Row, row_str};
use crate::service::ServiceState;

/// One task type. Implement it once per task, in a file of its own.
///
/// Stages must be idempotent: after a restart, or a re-delivered callback racing a restart,
/// a stage may run again with the same params and input.
#[async_trait]
pub trait Task: Send + Sync + 'static {
    /// The registered name, stored in `tasks_tbl.name`, e.g. `GuestStartTask`.
    const NAME: &'static str;
    /// The task's params: given at start, readable and changeable by every stage.
    type Params: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Runs one stage. `data` is the params (as JSON) for the first stage, [`ON_INIT`]; the
    /// callback body for a stage entered after [`Next::Wait`]; `null` after [`Next::Stage`].
    /// Changes to `t.params` are saved with the outcome. An `Err` fails the task.
    async fn stage(&self, t: &mut TaskRun<Self::Params>, stage: &str, data: &Value) -> Result<Next, Error>;

    /// Called once when the task fails: a stage returned an error or [`Next::Fail`], a
    /// callback reported an error, a wait timed out, or a restart found the task in a stage
    /// it may not re-run. Put the object in its `*_fail` status here.
    async fn on_failure(&self, t: &TaskRun<Self::Params>, stage: &str, reason: &str);

    /// Whether `stage` may run again after a restart interrupted it.
    fn resumable(&self, _stage: &str) -> bool {
        true
    }
}

/// What a stage asks for next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Run that stage now, with `null` input.
    Stage(&'static str),
    /// Wait for a callback (`POST /tasks/<id>`), then run that stage with its body. The wait
    /// fails after the manager's wait timeout.
    Wait(&'static str),
    /// As `Wait`, with a deadline of its own (a long image download).
    WaitFor(&'static str, Duration),
    /// The task is done; the value is its result (stored, and passed to a waiting parent).
    Complete(Value),
    /// The task failed for this reason.
    Fail(String),
}

/// The object a task works on. Its owner (`domain_id`/`tenant_id`) becomes the task's owner,
/// so that whoever may see the object sees its tasks; an object without an owner (a host)
/// gives its tasks to the caller's project.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskObject {
    /// The object's resource keyword (`server`, `disk`).
    pub obj_type: String,
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub tenant_id: String,
}

impl TaskObject {
    /// The object of a row of resource `spec`.
    pub fn of(spec: &ResourceSpec, row: &Row) -> TaskObject {
        TaskObject {
            obj_type: spec.keyword.to_string(),
            id: row_str(row, "id").to_string(),
            name: row_str(row, "name").to_string(),
            domain_id: row_str(row, "domain_id").to_string(),
            tenant_id: row_str(row, "tenant_id").to_string(),
        }
    }

    pub fn new(obj_type: &str, id: &str, name: &str) -> TaskObject {
        TaskObject { obj_type: obj_type.into(), id: id.into(), name: name.into(), ..Default::default() }
    }

    pub fn owned_by(mut self, domain_id: &str, tenant_id: &str) -> TaskObject {
        self.domain_id = domain_id.into();
        self.tenant_id = tenant_id.into();
        self
    }

    /// The object as a row for ops-log events.
    fn as_row(&self) -> Row {
        let mut row = Row::new();
        for (k, v) in
            [("id", &self.id), ("name", &self.name), ("domain_id", &self.domain_id), ("tenant_id", &self.tenant_id)]
        {
            row.insert(k.into(), Value::String(v.clone()));
        }
        row
    }
}

/// A child task asked for by a stage, inserted when the stage's outcome is saved.
struct NewChild {
    id: String,
    name: &'static str,
    obj: TaskObject,
    params: Value,
}

/// What every stage run knows, whatever the params type.
struct RunCore {
    mgr: Arc<TaskManager>,
    svc: Arc<ServiceState>,
    id: String,
    name: String,
    stage: String,
    obj: TaskObject,
    cred: Arc<UserCred>,
    parent_task_id: Option<String>,
    children: Vec<NewChild>,
}

/// One run of one stage of a task: its identity, object, credential and typed params.
pub struct TaskRun<P> {
    core: RunCore,
    /// The params; changes are saved with the stage's outcome, or at once by [`TaskRun::save`].
    pub params: P,
}

/// A child task's state, as its parent sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildTask {
    pub id: String,
    pub name: String,
    pub status: apis::task::TaskStatus,
    pub result: Value,
    pub reason: String,
}

impl<P> TaskRun<P> {
    pub fn id(&self) -> &str {
        &self.core.id
    }

    /// The task type's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The stage being run.
    pub fn stage(&self) -> &str {
        &self.core.stage
    }

    pub fn object(&self) -> &TaskObject {
        &self.core.obj
    }

    /// Who the task acts for (no token: call other services with the service's own token).
    pub fn cred(&self) -> &Arc<UserCred> {
        &self.core.cred
    }

    pub fn svc(&self) -> &Arc<ServiceState> {
        &self.core.svc
    }

    pub fn db(&self) -> &Db {
        &self.core.svc.db
    }

    pub fn parent_task_id(&self) -> Option<&str> {
        self.core.parent_task_id.as_deref()
    }

    /// A context acting for the task's credential; its request id is the task id, so the
    /// ops-log events a task writes can be found by it.
    pub fn ctx(&self) -> Ctx {
        Ctx {
            svc: self.core.svc.clone(),
            cred: self.core.cred.clone(),
            request_id: self.core.id.clone(),
            client_ip: String::new(),
        }
    }

    /// Where agents report this task's result: `<base_url>/tasks/<id>`.
    pub fn notify_url(&self) -> String {
        self.core.mgr.notify_url(&self.core.id)
    }

    /// The headers to send with an agent call made for this task.
    pub fn agent_headers(&self) -> [(&'static str, String); 2] {
        [(apis::task::TASK_ID_HEADER, self.core.id.clone()), (apis::task::TASK_NOTIFY_URL_HEADER, self.notify_url())]
    }

    /// Records progress, 0-100, while the stage runs.
    pub async fn set_progress(&self, pct: u8) -> Result<(), Error> {
        self.core.mgr.update_running(&self.core, "progress", pct.min(100).into()).await
    }

    /// Asks for a child task, started once this stage's outcome is saved. If the stage then
    /// waits, the wait receives the result of its children when the last one finishes: the
    /// last child's result, or an error body if any failed.
    pub fn start_child<T: Task>(&mut self, obj: TaskObject, params: &T::Params) -> Result<String, Error> {
        self.core.mgr.check_registered(T::NAME)?;
        let params =
            serde_json::to_value(params).map_err(|e| Error::Internal(format!("params of {}: {e}", T::NAME)))?;
        let id = crate::db::new_id();
        self.core.children.push(NewChild { id: id.clone(), name: T::NAME, obj, params });
        Ok(id)
    }

    /// This task's children so far, oldest first.
    pub async fn children(&self) -> Result<Vec<ChildTask>, Error> {
        self.core.mgr.children_of(&self.core.svc.db, &self.core.id).await
    }
}

impl<P: Serialize> TaskRun<P> {
    /// Saves the params now, in the middle of a stage (they are saved with its outcome anyway).
    pub async fn save(&self) -> Result<(), Error> {
        let v = serde_json::to_value(&self.params).map_err(|e| Error::Internal(format!("params: {e}")))?;
        self.core.mgr.update_running(&self.core, "params", v).await
    }
}
