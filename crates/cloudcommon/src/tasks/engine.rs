//! The task manager: registration, configuration, starting tasks, callbacks, resuming after
//! a restart, reaping expired waits, and `/tasks` as a resource. How stages run is in
//! `driver.rs`; see the module docs of [`crate::tasks`] for the states.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use apis::Error;
use apis::task::TaskStatus;
use async_trait::async_trait;
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use serde_json::{Value, json};

use super::runner::{Adapter, Locks, Runner};
use super::store::{self, NewTask};
use super::{Task, TaskObject};
use crate::resource::dispatch::authorize;
use crate::resource::{Ctx, Owner, Resource, ResourceSpec, Row, store as rstore};
use crate::service::ServiceState;

/// How long a task waits for a callback unless its stage says otherwise.
const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(3600);

/// What became of a callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// The task was waiting; its next stage is running.
    Applied,
    /// The task is busy running a stage; the callback is applied when the stage ends, if the
    /// task then waits.
    Queued,
    /// Nothing to do (unknown task, not waiting, another wait); why.
    Ignored(String),
}

impl CallbackOutcome {
    fn to_json(&self) -> Value {
        match self {
            CallbackOutcome::Applied => json!({"result": "ok"}),
            CallbackOutcome::Queued => json!({"result": "queued"}),
            CallbackOutcome::Ignored(why) => json!({"result": "ignored", "reason": why}),
        }
    }
}

/// Knobs for tests of task types (the generic "run each stage twice" and "fail at each stage").
#[derive(Default)]
pub(super) struct TestHooks {
    pub(super) run_twice: bool,
    pub(super) fail_at: HashSet<(String, String)>,
}

/// The task engine of one service. Register it with [`crate::service::ServiceBuilder::tasks`]
/// (which also serves it as the `tasks` resource) and call [`TaskManager::resume_all`] once
/// the service state is built, before serving.
pub struct TaskManager {
    pub(super) me: Weak<TaskManager>,
    pub(super) spec: ResourceSpec,
    pub(super) types: RwLock<HashMap<&'static str, Arc<dyn Runner>>>,
    pub(super) base_url: RwLock<String>,
    pub(super) wait_timeout: RwLock<Duration>,
    pub(super) locks: Arc<Locks>,
    /// Tasks with a driver scheduled in this process.
    pub(super) active: Arc<Mutex<HashSet<String>>>,
    pub(super) reaper_started: AtomicBool,
    pub(super) hooks: RwLock<TestHooks>,
}

impl TaskManager {
    /// The task manager of `service` (`region`, `glance`, ...).
    pub fn new(service: &'static str) -> Arc<TaskManager> {
        Arc::new_cyclic(|me| TaskManager {
            me: me.clone(),
            spec: store::spec(crate::opslog::policy_service(service)),
            types: RwLock::default(),
            base_url: RwLock::default(),
            wait_timeout: RwLock::new(DEFAULT_WAIT_TIMEOUT),
            locks: Arc::default(),
            active: Arc::default(),
            reaper_started: AtomicBool::new(false),
            hooks: RwLock::default(),
        })
    }

    /// The manager of a service, or an error if the service runs no tasks.
    pub fn of(svc: &ServiceState) -> Result<&Arc<TaskManager>, Error> {
        svc.tasks.as_ref().ok_or_else(|| Error::Internal(format!("service {} runs no tasks", svc.name)))
    }

    pub(super) fn arc(&self) -> Arc<TaskManager> {
        self.me.upgrade().expect("a TaskManager is only used through its Arc")
    }

    /// Registers a task type. A task type must be registered before tasks of it start, and at
    /// every service start before [`TaskManager::resume_all`].
    pub fn register<T: Task>(&self, task: T) {
        self.types.write().unwrap_or_else(|e| e.into_inner()).insert(T::NAME, Arc::new(Adapter(task)));
    }

    /// The service's public base URL (with its prefix), for `X-Task-Notify-Url`.
    pub fn set_base_url(&self, url: &str) {
        *self.base_url.write().unwrap_or_else(|e| e.into_inner()) = url.trim_end_matches('/').to_string();
    }

    /// How long [`crate::tasks::Next::Wait`] waits for a callback before the task fails (default 1 h).
    pub fn set_wait_timeout(&self, d: Duration) {
        *self.wait_timeout.write().unwrap_or_else(|e| e.into_inner()) = d;
    }

    /// For tests of task types: run every stage twice and keep the second outcome, as a
    /// re-delivery or a restart would. Stages that are not idempotent show up.
    pub fn run_each_stage_twice(&self, on: bool) {
        self.hooks.write().unwrap_or_else(|e| e.into_inner()).run_twice = on;
    }

    /// For tests of task types: after `stage` of task type `task` runs, fail it as if the
    /// stage had returned an error.
    pub fn inject_failure(&self, task: &str, stage: &str) {
        self.hooks.write().unwrap_or_else(|e| e.into_inner()).fail_at.insert((task.into(), stage.into()));
    }

    pub fn clear_injected_failures(&self) {
        self.hooks.write().unwrap_or_else(|e| e.into_inner()).fail_at.clear();
    }

    pub(super) fn notify_url(&self, id: &str) -> String {
        let base = self.base_url.read().unwrap_or_else(|e| e.into_inner()).clone();
        if base.is_empty() {
            tracing::warn!(task = id, "task manager has no base URL; agents cannot call back");
        }
        format!("{base}/tasks/{id}")
    }

    pub(super) fn wait_timeout(&self) -> Duration {
        *self.wait_timeout.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn runner(&self, name: &str) -> Option<Arc<dyn Runner>> {
        self.types.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    pub(super) fn check_registered(&self, name: &str) -> Result<(), Error> {
        match self.runner(name) {
            Some(_) => Ok(()),
            None => Err(Error::Internal(format!("task {name} is not registered"))),
        }
    }

    /// Starts a task of type `T` on `obj` for the caller of `ctx`: the row is stored first,
    /// then the stages run in the background. Returns the task id.
    pub async fn start<T: Task>(&self, ctx: &Ctx, obj: TaskObject, params: &T::Params) -> Result<String, Error> {
        self.check_registered(T::NAME)?;
        let params =
            serde_json::to_value(params).map_err(|e| Error::Internal(format!("params of {}: {e}", T::NAME)))?;
        let id = crate::db::new_id();
        let new = NewTask {
            id: &id,
            name: T::NAME,
            obj: &obj,
            cred: &ctx.cred,
            params: &params,
            parent_task_id: None,
            parent_wait: "",
        };
        let txn = ctx.db().begin().await?;
        store::insert(&txn, &self.spec, &new).await?;
        txn.commit().await?;
        tracing::info!(task = %id, name = T::NAME, obj_type = %obj.obj_type, obj_id = %obj.id, "task started");
        self.schedule(&ctx.svc, &id, None, false);
        Ok(id)
    }

    /// Applies a callback (`POST /tasks/<id>`): if the task waits, its next stage runs with
    /// `body`, or its failure path if `body` reports an error. Anything else is ignored.
    pub async fn callback(
        &self,
        svc: &Arc<ServiceState>,
        task_id: &str,
        body: Value,
    ) -> Result<CallbackOutcome, Error> {
        self.deliver(svc, task_id, body, None).await
    }

    /// At service start: re-runs (or fails, if not resumable) every task left `init` or
    /// `running`, hands finished children to their waiting parents, and starts the reaper of
    /// expired waits. Returns how many tasks it scheduled.
    pub async fn resume_all(&self, svc: &Arc<ServiceState>) -> Result<usize, Error> {
        let rows = store::unfinished(&svc.db, &self.spec).await?;
        let mut scheduled = 0;
        for row in &rows {
            match row.status {
                TaskStatus::Init | TaskStatus::Running => {
                    if self.schedule(svc, &row.id, None, true) {
                        scheduled += 1;
                    }
                }
                TaskStatus::Waiting => {
                    let kids = store::children(&svc.db, &self.spec, &row.id, Some(&row.wait_key())).await?;
                    if let Some(last) = kids.last().filter(|_| kids.iter().all(|k| k.status.is_finished())) {
                        self.notify_parent(svc, last).await;
                    }
                }
                TaskStatus::Complete | TaskStatus::Failed => {}
            }
        }
        tracing::info!(unfinished = rows.len(), scheduled, "tasks resumed");
        self.spawn_reaper(svc);
        Ok(scheduled)
    }

    /// Fails every waiting task whose deadline has passed; how many it tried.
    pub async fn reap_expired(&self, svc: &Arc<ServiceState>) -> Result<usize, Error> {
        let rows = store::expired(&svc.db, &self.spec).await?;
        for row in &rows {
            let reason = format!("timed out waiting for a callback to stage {}", row.stage);
            let body = json!({"status": "error", "reason": reason});
            if let Err(e) = self.deliver(svc, &row.id, body, Some(row.wait_key())).await {
                tracing::warn!(task = %row.id, error = %e, "cannot fail an expired task");
            }
        }
        Ok(rows.len())
    }

    fn spawn_reaper(&self, svc: &Arc<ServiceState>) {
        if self.reaper_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let (me, svc) = (self.me.clone(), Arc::downgrade(svc));
        tokio::spawn(async move {
            loop {
                let tick = match me.upgrade() {
                    Some(m) => (m.wait_timeout() / 4).clamp(Duration::from_millis(50), Duration::from_secs(30)),
                    None => return,
                };
                tokio::time::sleep(tick).await;
                let (Some(m), Some(svc)) = (me.upgrade(), svc.upgrade()) else { return };
                if let Err(e) = m.reap_expired(&svc).await {
                    tracing::warn!(error = %e, "cannot reap expired tasks");
                }
            }
        });
    }
}

#[async_trait]
impl Resource for TaskManager {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, _ctx: &Ctx, _input: &mut Row, _raw: &Row, _owner: &Owner) -> Result<(), Error> {
        Err(Error::Forbidden("tasks are started by the service itself".into()))
    }

    async fn validate_update(&self, _ctx: &Ctx, _row: &Row, _patch: &mut Row, _raw: &Row) -> Result<(), Error> {
        Err(Error::Forbidden("tasks are changed by the service itself".into()))
    }

    async fn validate_delete(&self, _ctx: &Ctx, _row: &Row) -> Result<(), Error> {
        Err(Error::Forbidden("tasks cannot be deleted".into()))
    }

    /// `POST /tasks/<task id>`: a callback. A task the caller may not see is as unknown.
    async fn perform_class(&self, ctx: &Ctx, action: &str, body: &Row) -> Result<Value, Error> {
        let scope = authorize(self, &ctx.cred, "perform", Some(action))?;
        let visible = match rstore::get_by_id(ctx.db(), &self.spec, action).await? {
            Some(row) => rstore::row_in_scope(&self.spec, &ctx.cred, scope, &row),
            None => false,
        };
        let outcome = if visible {
            self.callback(&ctx.svc, action, Value::Object(body.clone())).await?
        } else {
            tracing::info!(task = action, user = %ctx.cred.user, "callback for an unknown task ignored");
            CallbackOutcome::Ignored(format!("no task {action}"))
        };
        Ok(outcome.to_json())
    }

    /// `GET /<plural>/<id>/tasks`: the tasks of one object.
    async fn context_filter(&self, ctx: &Ctx, ctx_plural: &str, ctx_id: &str) -> Result<Option<Condition>, Error> {
        let keyword = ctx.svc.resource(ctx_plural)?.spec().keyword;
        Ok(Some(
            Condition::all()
                .add(Expr::col((Alias::new(self.spec.table), Alias::new("obj_type"))).eq(keyword))
                .add(Expr::col((Alias::new(self.spec.table), Alias::new("obj_id"))).eq(ctx_id)),
        ))
    }
}
