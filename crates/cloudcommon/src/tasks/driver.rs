//! Driving a task: running its stages under its lock, saving each outcome, the failure path,
//! callbacks and the hand-over from children to their parent.

use std::sync::Arc;
use std::time::Duration;

use apis::Error;
use apis::task::{StageRecord, TaskStatus, callback_error};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::engine::CallbackOutcome;
use super::runner::{ActiveMark, Runner, TaskGuard};
use super::store::{self, NewTask, ON_INIT, TaskRow, patch};
use super::{ChildTask, NewChild, Next, RunCore, TaskManager, TaskObject};
use crate::db::{Db, fmt_time, now};
use crate::resource::{Ctx, Row};
use crate::service::ServiceState;

/// What a stage that did not fail leads to.
enum Outcome {
    Stage(&'static str),
    Wait(&'static str, Duration),
    Complete(Value),
}

/// Which wait a callback is for.
pub(super) enum Wait {
    /// The wait with this key ([`TaskRow::wait_key`]).
    Key(String),
    /// The wait declared by the stage running when the callback came: the history then had
    /// this many entries.
    After(usize),
}

impl TaskManager {
    /// Schedules a driver for task `id` unless one is scheduled already; whether it did.
    pub(super) fn schedule(&self, svc: &Arc<ServiceState>, id: &str, guard: Option<TaskGuard>, resumed: bool) -> bool {
        if !self.active.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string()) {
            // The scheduled driver reloads the row once it holds the lock (released here).
            return false;
        }
        let mark = ActiveMark { id: id.to_string(), active: self.active.clone() };
        let (me, svc, id) = (self.arc(), svc.clone(), id.to_string());
        let fut: BoxFuture<'static, ()> = Box::pin(async move {
            let guard = match guard {
                Some(g) => g,
                None => me.locks.lock(&id).await,
            };
            me.drive(&svc, &id, resumed).await;
            // The mark goes first: whoever takes the lock next may schedule a driver.
            drop(mark);
            drop(guard);
        });
        tokio::spawn(fut);
        true
    }

    /// Runs task `id` (its lock held) while it is `init` or `running`.
    async fn drive(&self, svc: &Arc<ServiceState>, id: &str, resumed: bool) {
        let mut resumed = resumed;
        while self.step(svc, id, resumed).await {
            resumed = false;
        }
    }

    /// Runs the current stage of task `id` and saves its outcome; whether to run the next.
    async fn step(&self, svc: &Arc<ServiceState>, id: &str, resumed: bool) -> bool {
        let row = match store::load(&svc.db, &self.spec, id).await {
            Ok(Some(r)) if matches!(r.status, TaskStatus::Init | TaskStatus::Running) => r,
            Ok(_) => return false,
            Err(e) => {
                tracing::error!(task = id, error = %e, "cannot load task; it resumes at the next start");
                return false;
            }
        };
        let Some(runner) = self.runner(&row.name) else {
            self.fail_unregistered(svc, &row).await;
            return false;
        };
        let mut history = row.history.clone();
        let mut error = callback_error(&row.stage_data);
        if resumed && error.is_none() {
            if row.status == TaskStatus::Running {
                history.push(record(&row.stage, &row.updated_at, "interrupted"));
            }
            if !runner.resumable(&row.stage) {
                error = Some(format!("the service restarted during stage {}, which cannot run again", row.stage));
            }
        }
        if row.status == TaskStatus::Init || history.len() != row.history.len() {
            let p = patch([("status", TaskStatus::Running.as_str().into()), ("history", to_json(&history))]);
            match store::cas_now(&svc.db, &self.spec, id, row.status, &row.stage, &p).await {
                Ok(true) => {}
                Ok(false) => return false,
                Err(e) => {
                    tracing::error!(task = id, error = %e, "cannot claim task; it resumes at the next start");
                    return false;
                }
            }
        }
        let started = now();
        if let Some(reason) = error {
            self.fail(svc, runner.as_ref(), &row, history, &row.params, &started, &reason).await;
            return false;
        }
        let data = if row.stage == ON_INIT && Value::is_null(&row.stage_data) { &row.params } else { &row.stage_data };
        let (run_twice, inject) = {
            let h = self.hooks.read().unwrap_or_else(|e| e.into_inner());
            (h.run_twice, h.fail_at.contains(&(row.name.clone(), row.stage.clone())))
        };
        let mut out = runner.run(self.core(svc, &row), &row.params, &row.stage, data).await;
        if run_twice && out.next.is_ok() {
            out = runner.run(self.core(svc, &row), &row.params, &row.stage, data).await;
        }
        if inject && out.next.is_ok() {
            out.next = Err(Error::Internal(format!("injected failure at stage {}", row.stage)));
        }
        let outcome = match out.next {
            Ok(Next::Stage(s)) => Ok(Outcome::Stage(s)),
            Ok(Next::Wait(s)) => Ok(Outcome::Wait(s, self.wait_timeout())),
            Ok(Next::WaitFor(s, d)) => Ok(Outcome::Wait(s, d)),
            Ok(Next::Complete(v)) => Ok(Outcome::Complete(v)),
            Ok(Next::Fail(reason)) => Err(reason),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(o) => self.save_outcome(svc, row, history, started, o, out.params, out.children).await,
            Err(reason) => {
                self.fail(svc, runner.as_ref(), &row, history, &out.params, &started, &reason).await;
                false
            }
        }
    }

    /// Saves what a stage asked for next (not a failure), then starts the children it asked
    /// for and, when the task is done, logs it and tells its parent; whether to run on.
    #[allow(clippy::too_many_arguments)]
    async fn save_outcome(
        &self,
        svc: &Arc<ServiceState>,
        row: TaskRow,
        mut history: Vec<StageRecord>,
        started: String,
        outcome: Outcome,
        params: Value,
        children: Vec<NewChild>,
    ) -> bool {
        let (result, status, stage) = match &outcome {
            Outcome::Stage(s) => ("ok", TaskStatus::Running, *s),
            Outcome::Wait(s, _) => ("wait", TaskStatus::Waiting, *s),
            Outcome::Complete(_) => ("complete", TaskStatus::Complete, row.stage.as_str()),
        };
        history.push(StageRecord { stage: row.stage.clone(), started, finished: now(), result: result.into() });
        let mut p = patch([
            ("status", status.as_str().into()),
            ("stage", stage.into()),
            ("params", params),
            ("history", to_json(&history)),
            ("stage_data", Value::Null),
            ("wait_deadline", Value::Null),
        ]);
        let mut wait = String::new();
        match &outcome {
            Outcome::Wait(_, timeout) => {
                // Capped at a century: far enough, and still a fixed-width time.
                let timeout = (*timeout).min(Duration::from_secs(100 * 365 * 86400));
                let deadline = chrono::Utc::now() + chrono::Duration::from_std(timeout).unwrap_or_default();
                p.insert("wait_deadline".into(), fmt_time(deadline).into());
                wait = store::wait_key(stage, history.len());
            }
            Outcome::Complete(v) => {
                p.insert("result".into(), v.clone());
                p.insert("progress".into(), 100.into());
                p.insert("finished_at".into(), now().into());
            }
            Outcome::Stage(_) => {}
        }
        match self.persist(svc, &row, &p, &children, &wait).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                tracing::error!(task = %row.id, error = %e, "cannot save stage outcome; it resumes at the next start");
                return false;
            }
        }
        for child in &children {
            self.schedule(svc, &child.id, None, false);
        }
        match outcome {
            Outcome::Stage(_) => true,
            Outcome::Complete(v) => {
                tracing::info!(task = %row.id, name = %row.name, "task complete");
                let done = TaskRow { status: TaskStatus::Complete, result: v, ..row };
                self.finished(svc, &done, Value::Null).await;
                false
            }
            Outcome::Wait(..) => false,
        }
    }

    fn core(&self, svc: &Arc<ServiceState>, row: &TaskRow) -> RunCore {
        RunCore {
            mgr: self.arc(),
            svc: svc.clone(),
            id: row.id.clone(),
            name: row.name.clone(),
            stage: row.stage.clone(),
            obj: row.obj.clone(),
            cred: Arc::new(row.cred.clone()),
            parent_task_id: row.parent_task_id.clone(),
            children: vec![],
        }
    }

    /// Saves a stage's outcome and inserts the children it asked for, in one transaction;
    /// false if the task changed meanwhile (then nothing is saved).
    async fn persist(
        &self,
        svc: &ServiceState,
        row: &TaskRow,
        p: &Row,
        children: &[NewChild],
        wait: &str,
    ) -> Result<bool, Error> {
        let txn = svc.db.begin().await?;
        if !store::cas(&txn, &self.spec, &row.id, TaskStatus::Running, &row.stage, p).await? {
            tracing::warn!(task = %row.id, stage = %row.stage, "task changed while its stage ran; outcome dropped");
            return Ok(false);
        }
        for c in children {
            let new = NewTask {
                id: &c.id,
                name: c.name,
                obj: &c.obj,
                cred: &row.cred,
                params: &c.params,
                parent_task_id: Some(&row.id),
                parent_wait: wait,
            };
            // A child of an ownerless object belongs where its parent does.
            let obj;
            let new = if c.obj.domain_id.is_empty() && c.obj.tenant_id.is_empty() {
                obj = c.obj.clone().owned_by(&row.obj.domain_id, &row.obj.tenant_id);
                NewTask { obj: &obj, ..new }
            } else {
                new
            };
            store::insert(&txn, &self.spec, &new).await?;
        }
        txn.commit().await?;
        Ok(true)
    }

    /// The failure path: `on_failure`, then the row, the ops log and the parent.
    #[allow(clippy::too_many_arguments)]
    async fn fail(
        &self,
        svc: &Arc<ServiceState>,
        runner: &dyn Runner,
        row: &TaskRow,
        mut history: Vec<StageRecord>,
        params: &Value,
        started: &str,
        reason: &str,
    ) {
        tracing::warn!(task = %row.id, name = %row.name, stage = %row.stage, reason, "task failed");
        runner.on_failure(self.core(svc, row), params, &row.stage, reason).await;
        history.push(record(&row.stage, started, "failed"));
        let p = patch([
            ("status", TaskStatus::Failed.as_str().into()),
            ("params", params.clone()),
            ("history", to_json(&history)),
            ("reason", reason.into()),
            ("stage_data", Value::Null),
            ("wait_deadline", Value::Null),
            ("finished_at", now().into()),
        ]);
        match store::cas_now(&svc.db, &self.spec, &row.id, TaskStatus::Running, &row.stage, &p).await {
            Ok(true) => {
                let done = TaskRow { status: TaskStatus::Failed, reason: reason.into(), ..row.clone() };
                self.finished(svc, &done, reason.into()).await;
            }
            Ok(false) => tracing::warn!(task = %row.id, "task changed while failing"),
            Err(e) => {
                tracing::error!(task = %row.id, error = %e, "cannot mark task failed; it resumes at the next start")
            }
        }
    }

    /// A task whose type this service does not know (any more): failed without `on_failure`.
    async fn fail_unregistered(&self, svc: &Arc<ServiceState>, row: &TaskRow) {
        let reason = format!("task type {} is not registered in this service", row.name);
        tracing::error!(task = %row.id, %reason, "task cannot run");
        let mut history = row.history.clone();
        history.push(record(&row.stage, &now(), "failed"));
        let p = patch([
            ("status", TaskStatus::Failed.as_str().into()),
            ("history", to_json(&history)),
            ("reason", reason.clone().into()),
            ("finished_at", now().into()),
        ]);
        if let Ok(true) = store::cas_now(&svc.db, &self.spec, &row.id, row.status, &row.stage, &p).await {
            let done = TaskRow { status: TaskStatus::Failed, reason: reason.clone(), ..row.clone() };
            self.finished(svc, &done, reason.into()).await;
        }
    }

    /// After a task finished: its ops-log event, then its parent.
    async fn finished(&self, svc: &Arc<ServiceState>, row: &TaskRow, notes: Value) {
        let ctx = Ctx {
            svc: svc.clone(),
            cred: Arc::new(row.cred.clone()),
            request_id: row.id.clone(),
            client_ip: String::new(),
        };
        let success = row.status == TaskStatus::Complete;
        let owner = svc.resources.values().find(|r| r.spec().keyword == row.obj.obj_type).cloned();
        match owner {
            Some(r) => svc.actionlog.record(&ctx, r.spec(), &row.obj.as_row(), &row.name, success, notes).await,
            None => {
                // Not a resource of this service: the event is about the task itself.
                let mut task = TaskObject::new("task", &row.id, &row.name).as_row();
                task.insert("domain_id".into(), row.obj.domain_id.clone().into());
                task.insert("tenant_id".into(), row.obj.tenant_id.clone().into());
                svc.actionlog.record(&ctx, &self.spec, &task, &row.name, success, notes).await
            }
        }
        self.notify_parent(svc, row).await;
    }

    /// Hands a finished child's outcome to its parent, once the parent's wait has no
    /// unfinished child left.
    pub(super) async fn notify_parent(&self, svc: &Arc<ServiceState>, child: &TaskRow) {
        let Some(pid) = child.parent_task_id.as_deref() else { return };
        if child.parent_wait.is_empty() {
            tracing::debug!(task = %child.id, parent = pid, "parent did not wait for this child");
            return;
        }
        let kids = match store::children(&svc.db, &self.spec, pid, Some(&child.parent_wait)).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(task = %child.id, error = %e, "cannot read siblings; the parent is told at the next start");
                return;
            }
        };
        if kids.iter().any(|k| !k.status.is_finished()) {
            return;
        }
        let body = match kids.iter().find(|k| k.status == TaskStatus::Failed) {
            Some(f) => json!({
                "status": "error",
                "reason": format!("{} failed: {}", f.name, f.reason),
                "__task_name__": f.name,
                "__task_id__": f.id,
            }),
            None => {
                match kids.iter().max_by(|a, b| a.updated_at.cmp(&b.updated_at)).map_or(&child.result, |k| &k.result) {
                    Value::Object(m) => Value::Object(m.clone()),
                    Value::Null => json!({}),
                    other => json!({ "result": other }),
                }
            }
        };
        match self.deliver(svc, pid, body, Some(child.parent_wait.clone())).await {
            Ok(CallbackOutcome::Ignored(why)) => tracing::info!(task = %child.id, parent = pid, why, "parent not told"),
            Ok(_) => {}
            Err(e) => tracing::warn!(task = %child.id, parent = pid, error = %e, "cannot tell parent"),
        }
    }

    /// Applies `body` to the wait of task `id` (to the wait `wait` only, if given).
    pub(super) async fn deliver(
        &self,
        svc: &Arc<ServiceState>,
        id: &str,
        body: Value,
        wait: Option<String>,
    ) -> Result<CallbackOutcome, Error> {
        let wait = wait.map(Wait::Key);
        if let Some(guard) = self.locks.try_lock(id) {
            return self.apply(svc, guard, id, body, wait).await;
        }
        // Busy: a stage is running (or another callback is being applied). A callback that
        // arrives while a stage runs answers the agent call that stage made, so it is
        // applied to the wait that stage declares, and to no later one.
        let Some(row) = store::load(&svc.db, &self.spec, id).await? else {
            return Ok(CallbackOutcome::Ignored(format!("no task {id}")));
        };
        let wait = match (wait, row.status) {
            (Some(w), _) => w,
            (None, TaskStatus::Waiting) => Wait::Key(row.wait_key()),
            (None, TaskStatus::Init | TaskStatus::Running) => Wait::After(row.history.len()),
            (None, status) => return Ok(CallbackOutcome::Ignored(format!("task {id} is {status}, not waiting"))),
        };
        if row.status == TaskStatus::Waiting
            && let Some(why) = mismatch(&row, Some(&wait), &body)
        {
            tracing::info!(task = id, why, "callback ignored");
            return Ok(CallbackOutcome::Ignored(why));
        }
        let (me, svc, id) = (self.arc(), svc.clone(), id.to_string());
        let fut: BoxFuture<'static, ()> = Box::pin(async move {
            let guard = me.locks.lock(&id).await;
            if let Err(e) = me.apply(&svc, guard, &id, body, Some(wait)).await {
                tracing::warn!(task = %id, error = %e, "cannot apply queued callback");
            }
        });
        tokio::spawn(fut);
        Ok(CallbackOutcome::Queued)
    }

    async fn apply(
        &self,
        svc: &Arc<ServiceState>,
        guard: TaskGuard,
        id: &str,
        body: Value,
        wait: Option<Wait>,
    ) -> Result<CallbackOutcome, Error> {
        let ignore = |why: String| {
            tracing::info!(task = id, why, "callback ignored");
            Ok(CallbackOutcome::Ignored(why))
        };
        let Some(row) = store::load(&svc.db, &self.spec, id).await? else {
            return ignore(format!("no task {id}"));
        };
        if let Some(why) = mismatch(&row, wait.as_ref(), &body) {
            return ignore(why);
        }
        let p = patch([
            ("status", TaskStatus::Running.as_str().into()),
            ("stage_data", body),
            ("wait_deadline", Value::Null),
        ]);
        if !store::cas_now(&svc.db, &self.spec, id, TaskStatus::Waiting, &row.stage, &p).await? {
            return ignore(format!("task {id} changed meanwhile"));
        }
        self.schedule(svc, id, Some(guard), false);
        Ok(CallbackOutcome::Applied)
    }

    /// Writes one column of a running task, as long as it is still at `core`'s stage.
    pub(super) async fn update_running(&self, core: &RunCore, col: &str, v: Value) -> Result<(), Error> {
        let mut p = Row::new();
        p.insert(col.into(), v);
        if store::cas_now(&core.svc.db, &self.spec, &core.id, TaskStatus::Running, &core.stage, &p).await? {
            Ok(())
        } else {
            Err(Error::Conflict(format!("task {} is no longer running stage {}", core.id, core.stage)))
        }
    }

    pub(super) async fn children_of(&self, db: &Db, id: &str) -> Result<Vec<ChildTask>, Error> {
        let kids = store::children(db, &self.spec, id, None).await?;
        Ok(kids
            .into_iter()
            .map(|k| ChildTask { id: k.id, name: k.name, status: k.status, result: k.result, reason: k.reason })
            .collect())
    }
}

/// Why a callback does not belong to the wait task `row` is in, if it does not.
fn mismatch(row: &TaskRow, wait: Option<&Wait>, body: &Value) -> Option<String> {
    let id = &row.id;
    if row.status != TaskStatus::Waiting {
        return Some(format!("task {id} is {}, not waiting", row.status));
    }
    let same_wait = match wait {
        None => true,
        Some(Wait::Key(k)) => *k == row.wait_key(),
        Some(Wait::After(n)) => row.history.len() == n + 1,
    };
    if !same_wait {
        return Some(format!("task {id} now waits for another callback"));
    }
    match body.get("__stage__").and_then(Value::as_str) {
        Some(s) if s != row.stage => Some(format!("callback for stage {s}, but task {id} waits for {}", row.stage)),
        _ => None,
    }
}

fn record(stage: &str, started: &str, result: &str) -> StageRecord {
    StageRecord { stage: stage.into(), started: started.into(), finished: now(), result: result.into() }
}

fn to_json(history: &[StageRecord]) -> Value {
    serde_json::to_value(history).unwrap_or(Value::Null)
}
