//! The task engine against a real SQLite database: stages, callbacks, failures, restarts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apis::task::TaskStatus;
use async_trait::async_trait;
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::store::{self, NewTask, TaskRow};
use super::*;
use crate::actionlog::ActionLog;
use crate::auth::{TokenVerifier, UserCred};
use crate::db::{Db, migrate, new_id};
use crate::policy::{Policy, PolicySet};
use crate::resource::dispatch::list_rows;
use crate::resource::{ListQuery, Resource};
use crate::service::ServiceBuilder;

struct NoTokens;

#[async_trait]
impl TokenVerifier for NoTokens {
    async fn verify(&self, _token: &str) -> Result<Arc<UserCred>, Error> {
        Err(Error::Unauthorized("no tokens in tests".into()))
    }
}

/// A resource whose objects the test tasks work on (only its keyword matters).
struct Servers(ResourceSpec);

impl Resource for Servers {
    fn spec(&self) -> &ResourceSpec {
        &self.0
    }
}

/// What the test tasks did, shared across "restarts".
#[derive(Default)]
struct Probe {
    /// Object id -> status, as a task sets it.
    status: Mutex<HashMap<String, String>>,
    /// (task id, stage) per stage run.
    runs: Mutex<Vec<(String, String)>>,
    /// (task id, stage, reason) per on_failure call.
    failures: Mutex<Vec<(String, String, String)>>,
    headers: Mutex<Vec<(String, String)>>,
    inline: Mutex<Vec<CallbackOutcome>>,
    /// Makes the next stage named by `hang_at` hang forever (a crash in the middle of it).
    hang: AtomicBool,
}

impl Probe {
    fn set_status(&self, obj: &str, status: &str) {
        self.status.lock().unwrap().insert(obj.into(), status.into());
    }
    fn status(&self, obj: &str) -> String {
        self.status.lock().unwrap().get(obj).cloned().unwrap_or_default()
    }
    fn runs(&self, task: &str) -> Vec<String> {
        self.runs.lock().unwrap().iter().filter(|(t, _)| t == task).map(|(_, s)| s.clone()).collect()
    }
    fn failures(&self, task: &str) -> Vec<(String, String)> {
        self.failures
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, ..)| t == task)
            .map(|(_, s, r)| (s.clone(), r.clone()))
            .collect()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StartParams {
    #[serde(default)]
    fail_at: Option<String>,
    #[serde(default)]
    hang_at: Option<String>,
    #[serde(default)]
    power: Option<String>,
    /// The "agent" calls back before `on_init` has even returned.
    #[serde(default)]
    inline_power: Option<String>,
}

/// A server start: `on_init` asks the "agent" and waits, `on_started` records what the agent
/// said, `on_commit` sets the final status. `on_commit` may not run twice after a restart.
struct StartTask(Arc<Probe>);

#[async_trait]
impl Task for StartTask {
    const NAME: &'static str = "TestStartTask";
    type Params = StartParams;

    async fn stage(&self, t: &mut TaskRun<StartParams>, stage: &str, data: &Value) -> Result<Next, Error> {
        self.0.runs.lock().unwrap().push((t.id().into(), stage.into()));
        if t.params.fail_at.as_deref() == Some(stage) {
            return Err(Error::Internal(format!("{stage} broke")));
        }
        if t.params.hang_at.as_deref() == Some(stage) && self.0.hang.swap(false, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let obj = t.object().id.clone();
        match stage {
            ON_INIT => {
                self.0.set_status(&obj, "starting");
                *self.0.headers.lock().unwrap() =
                    t.agent_headers().iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
                if let Some(power) = &t.params.inline_power {
                    let out = TaskManager::of(t.svc())?.callback(t.svc(), t.id(), json!({ "power": power })).await?;
                    self.0.inline.lock().unwrap().push(out);
                }
                Ok(Next::Wait("on_started"))
            }
            "on_started" => {
                t.params.power = data.get("power").and_then(Value::as_str).map(str::to_string);
                t.save().await?;
                t.set_progress(50).await?;
                Ok(Next::Stage("on_commit"))
            }
            "on_commit" => {
                self.0.set_status(&obj, "running");
                Ok(Next::Complete(json!({ "power": t.params.power })))
            }
            other => Err(Error::Internal(format!("no stage {other}"))),
        }
    }

    async fn on_failure(&self, t: &TaskRun<StartParams>, stage: &str, reason: &str) {
        self.0.failures.lock().unwrap().push((t.id().into(), stage.into(), reason.into()));
        self.0.set_status(&t.object().id, "start_fail");
    }

    fn resumable(&self, stage: &str) -> bool {
        stage != "on_commit"
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct EchoParams {
    value: i64,
    fail: bool,
}

/// A one-stage task: completes with its params, or fails.
struct EchoTask;

#[async_trait]
impl Task for EchoTask {
    const NAME: &'static str = "TestEchoTask";
    type Params = EchoParams;

    async fn stage(&self, t: &mut TaskRun<EchoParams>, _stage: &str, _data: &Value) -> Result<Next, Error> {
        if t.params.fail {
            return Ok(Next::Fail(format!("echo {} refused", t.params.value)));
        }
        Ok(Next::Complete(json!({ "value": t.params.value })))
    }

    async fn on_failure(&self, _t: &TaskRun<EchoParams>, _stage: &str, _reason: &str) {}
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct BatchParams {
    count: i64,
    fail_one: bool,
}

/// A parent: starts `count` echo children and completes when they all have.
struct BatchTask(Arc<Probe>);

#[async_trait]
impl Task for BatchTask {
    const NAME: &'static str = "TestBatchTask";
    type Params = BatchParams;

    async fn stage(&self, t: &mut TaskRun<BatchParams>, stage: &str, data: &Value) -> Result<Next, Error> {
        match stage {
            ON_INIT => {
                for i in 0..t.params.count {
                    let obj = TaskObject::new("server", &format!("{}-{i}", t.object().id), "child");
                    let params = EchoParams { value: i, fail: t.params.fail_one && i == 1 };
                    t.start_child::<EchoTask>(obj, &params)?;
                }
                Ok(Next::Wait("on_children_done"))
            }
            "on_children_done" => {
                let kids = t.children().await?;
                let done = kids.iter().filter(|k| k.status == TaskStatus::Complete).count();
                Ok(Next::Complete(json!({ "done": done, "last": data })))
            }
            other => Err(Error::Internal(format!("no stage {other}"))),
        }
    }

    async fn on_failure(&self, t: &TaskRun<BatchParams>, stage: &str, reason: &str) {
        self.0.failures.lock().unwrap().push((t.id().into(), stage.into(), reason.into()));
    }
}

/// A database file that lives as long as the test.
struct TempDb {
    dir: PathBuf,
    url: String,
}

impl TempDb {
    fn new() -> TempDb {
        let dir = std::env::temp_dir().join(format!("cloudcommon-tasks-{}", new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/tasks.db", dir.display());
        TempDb { dir, url }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One "process" of a service running tasks.
struct Env {
    svc: Arc<ServiceState>,
    tm: Arc<TaskManager>,
    probe: Arc<Probe>,
}

const BASE_URL: &str = "http://region.test:8889";

async fn start_service(db: &TempDb, probe: &Arc<Probe>, wait_timeout: Option<Duration>) -> Env {
    let conn = Db::connect(&db.url).await.unwrap();
    migrate(&conn, "test", &[crate::opslog::MIGRATION, MIGRATION]).await.unwrap();
    let tm = TaskManager::new("test");
    tm.register(StartTask(probe.clone()));
    tm.register(EchoTask);
    tm.register(BatchTask(probe.clone()));
    tm.set_base_url(&format!("{BASE_URL}/"));
    if let Some(d) = wait_timeout {
        tm.set_wait_timeout(d);
    }
    let servers = Arc::new(Servers(ResourceSpec::new("test", "server", "servers", "servers_tbl")));
    let svc = ServiceBuilder::new("test", conn, Arc::new(NoTokens), ActionLog::local("test"))
        .resource(servers)
        .tasks(tm.clone())
        .build();
    tm.resume_all(&svc).await.unwrap();
    Env { svc, tm, probe: probe.clone() }
}

fn user(name: &str, project: &str) -> Arc<UserCred> {
    let member = Policy { name: "member".into(), blob: json!({"*": "allow"}) };
    Arc::new(UserCred {
        user_id: format!("{name}-id"),
        user: name.into(),
        domain_id: "default".into(),
        project_id: project.into(),
        project: format!("{project}-name"),
        project_domain_id: "default".into(),
        roles: vec!["member".into()],
        policies: PolicySet { project: vec![member], ..Default::default() },
        token_hash: "not-to-be-stored".into(),
        ..Default::default()
    })
}

impl Env {
    fn ctx(&self) -> Ctx {
        Ctx::internal(self.svc.clone(), user("alice", "p1"))
    }

    async fn start(&self, obj: &str, params: StartParams) -> String {
        let obj = TaskObject::new("server", obj, &format!("vm-{obj}")).owned_by("default", "p1");
        self.tm.start::<StartTask>(&self.ctx(), obj, &params).await.unwrap()
    }

    async fn task(&self, id: &str) -> TaskRow {
        store::load(&self.svc.db, self.tm.spec(), id).await.unwrap().unwrap()
    }

    /// Polls task `id` until `pred` holds, for at most 5 s.
    async fn wait_task(&self, id: &str, what: &str, pred: impl Fn(&TaskRow) -> bool) -> TaskRow {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let row = self.task(id).await;
            if pred(&row) {
                return row;
            }
            assert!(Instant::now() < deadline, "task {id} never became {what}: {row:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_status(&self, id: &str, status: TaskStatus) -> TaskRow {
        self.wait_task(id, status.as_str(), |r| r.status == status).await
    }

    /// `POST /tasks/<id>` as alice.
    async fn post_callback(&self, id: &str, body: Value) -> Value {
        let Value::Object(body) = body else { panic!("callback bodies are objects") };
        self.tm.perform_class(&self.ctx(), id, &body).await.unwrap()
    }

    /// The ops-log events of object `obj_id`, once there are `n` (they are written just
    /// after the task row is final).
    async fn events(&self, obj_id: &str, n: usize) -> Vec<Row> {
        let spec = crate::opslog::spec("test");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let cond = Condition::all().add(Expr::col(Alias::new("obj_id")).eq(obj_id));
            let events = crate::resource::store::select(&self.svc.db, &spec, cond).await.unwrap();
            if events.len() >= n {
                assert_eq!(events.len(), n, "{events:?}");
                return events;
            }
            assert!(Instant::now() < deadline, "object {obj_id} has {} events, not {n}", events.len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Polls `cond` until it holds, for at most 5 s.
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A callback was taken: applied, or queued because the driver that saved the wait had not
/// yet let go of the task.
fn accepted(out: &Value) {
    assert!(out == &json!({"result": "ok"}) || out == &json!({"result": "queued"}), "{out}");
}

fn stages(row: &TaskRow) -> Vec<(String, String)> {
    row.history.iter().map(|h| (h.stage.clone(), h.result.clone())).collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

const DONE: &[(&str, &str)] = &[("on_init", "wait"), ("on_started", "ok"), ("on_commit", "complete")];

/// Runs the start task on `obj` through its callback; the finished row.
async fn run_start(env: &Env, obj: &str) -> TaskRow {
    let id = env.start(obj, StartParams::default()).await;
    env.wait_status(&id, TaskStatus::Waiting).await;
    accepted(&env.post_callback(&id, json!({"power": "on"})).await);
    env.wait_status(&id, TaskStatus::Complete).await
}

#[tokio::test]
async fn three_stages_with_a_wait_complete_after_a_callback() {
    let db = TempDb::new();
    let env = start_service(&db, &Arc::default(), None).await;
    let id = env.start("s1", StartParams::default()).await;

    let row = env.wait_status(&id, TaskStatus::Waiting).await;
    assert_eq!(row.stage, "on_started");
    assert_eq!(stages(&row), pairs(&[("on_init", "wait")]));
    assert_eq!(env.probe.status("s1"), "starting");
    let headers = env.probe.headers.lock().unwrap().clone();
    assert_eq!(headers, pairs(&[("X-Task-Id", &id), ("X-Task-Notify-Url", &format!("{BASE_URL}/tasks/{id}"))]));
    assert_eq!((row.cred.user.as_str(), row.cred.token_hash.as_str()), ("alice", ""));
    assert_eq!((row.obj.tenant_id.as_str(), row.name.as_str()), ("p1", "TestStartTask"));

    accepted(&env.post_callback(&id, json!({"power": "on"})).await);
    let row = env.wait_status(&id, TaskStatus::Complete).await;
    assert_eq!(stages(&row), pairs(DONE));
    assert_eq!(row.result, json!({"power": "on"}));
    assert_eq!(row.params["power"], json!("on"));
    assert_eq!(env.probe.status("s1"), "running");
    assert_eq!(env.probe.runs(&id), ["on_init", "on_started", "on_commit"]);
    let raw = crate::resource::store::get_by_id(&env.svc.db, env.tm.spec(), &id).await.unwrap().unwrap();
    assert_eq!(raw["progress"], json!(100));
    assert_eq!(raw["wait_deadline"], Value::Null);

    let events = env.events("s1", 1).await;
    assert_eq!(events[0]["action"], json!("TestStartTask"));
    assert_eq!(events[0]["obj_type"], json!("server"));
    assert_eq!(events[0]["success"], json!(true));
    assert_eq!(events[0]["request_id"], json!(id));

    // GET /tasks is scoped: alice's project sees the task, without its hidden columns;
    // bob's project sees nothing.
    let q = ListQuery::parse(&[]).unwrap();
    let (rows, total) = list_rows(&env.ctx(), env.tm.as_ref(), &q, None).await.unwrap();
    assert_eq!(total, 1);
    assert_eq!(rows[0]["status"], json!("complete"));
    assert!(!rows[0].contains_key("stage_data"));
    assert_eq!(rows[0]["user_cred"]["token_hash"], json!(""));
    let bob = Ctx::internal(env.svc.clone(), user("bob", "p2"));
    assert_eq!(list_rows(&bob, env.tm.as_ref(), &q, None).await.unwrap().1, 0);
    // GET /servers/s1/tasks
    let cond = env.tm.context_filter(&env.ctx(), "servers", "s1").await.unwrap();
    assert_eq!(list_rows(&env.ctx(), env.tm.as_ref(), &q, cond).await.unwrap().1, 1);
    let cond = env.tm.context_filter(&env.ctx(), "servers", "s2").await.unwrap();
    assert_eq!(list_rows(&env.ctx(), env.tm.as_ref(), &q, cond).await.unwrap().1, 0);
}

#[tokio::test]
async fn each_stage_run_twice_ends_the_same() {
    let db = TempDb::new();
    let env = start_service(&db, &Arc::default(), None).await;
    let once = run_start(&env, "s1").await;

    env.tm.run_each_stage_twice(true);
    let twice = run_start(&env, "s2").await;
    assert_eq!(env.probe.runs(&twice.id), ["on_init", "on_init", "on_started", "on_started", "on_commit", "on_commit"]);
    assert_eq!((stages(&twice), &twice.result, &twice.params), (stages(&once), &once.result, &once.params));
    assert_eq!(env.probe.status("s2"), env.probe.status("s1"));
    env.events("s2", 1).await;
    env.tm.run_each_stage_twice(false);

    // A callback delivered twice, and a resume while waiting, change nothing.
    let id = env.start("s3", StartParams::default()).await;
    env.wait_status(&id, TaskStatus::Waiting).await;
    assert_eq!(env.tm.resume_all(&env.svc).await.unwrap(), 0);
    assert_eq!(env.tm.resume_all(&env.svc).await.unwrap(), 0);
    assert_eq!(env.task(&id).await.status, TaskStatus::Waiting);
    let first = env.tm.callback(&env.svc, &id, json!({"power": "on"})).await.unwrap();
    let second = env.tm.callback(&env.svc, &id, json!({"power": "off"})).await.unwrap();
    assert!(matches!(first, CallbackOutcome::Applied | CallbackOutcome::Queued), "{first:?}");
    assert!(matches!(second, CallbackOutcome::Ignored(_) | CallbackOutcome::Queued), "{second:?}");
    let row = env.wait_status(&id, TaskStatus::Complete).await;
    assert_eq!(row.result, json!({"power": "on"}));
    assert_eq!(env.probe.runs(&id), ["on_init", "on_started", "on_commit"]);
}

#[tokio::test]
async fn a_failing_stage_fails_the_task_once() {
    let db = TempDb::new();
    let env = start_service(&db, &Arc::default(), None).await;

    let id = env.start("s1", StartParams { fail_at: Some("on_started".into()), ..Default::default() }).await;
    env.wait_status(&id, TaskStatus::Waiting).await;
    env.post_callback(&id, json!({"power": "on"})).await;
    let row = env.wait_status(&id, TaskStatus::Failed).await;
    assert_eq!(row.reason, "on_started broke");
    assert_eq!(env.probe.failures(&id), pairs(&[("on_started", "on_started broke")]));
    assert_eq!(env.probe.status("s1"), "start_fail");
    assert_eq!(stages(&row), pairs(&[("on_init", "wait"), ("on_started", "failed")]));
    let events = env.events("s1", 1).await;
    assert_eq!((&events[0]["success"], &events[0]["notes"]), (&json!(false), &json!("on_started broke")));

    // Fail at each stage in turn: the object always ends in start_fail, on_failure runs once.
    for (i, stage) in ["on_init", "on_started", "on_commit"].into_iter().enumerate() {
        env.tm.inject_failure("TestStartTask", stage);
        let obj = format!("f{i}");
        let id = env.start(&obj, StartParams::default()).await;
        if stage != "on_init" {
            env.wait_status(&id, TaskStatus::Waiting).await;
            env.post_callback(&id, json!({"power": "on"})).await;
        }
        let row = env.wait_status(&id, TaskStatus::Failed).await;
        assert_eq!(row.stage, stage);
        assert!(row.reason.contains("injected failure"), "{}", row.reason);
        assert_eq!(env.probe.failures(&id).len(), 1, "at {stage}");
        assert_eq!(env.probe.status(&obj), "start_fail", "at {stage}");
        env.tm.clear_injected_failures();
    }
}

#[tokio::test]
async fn a_restart_resumes_or_fails_cleanly() {
    let db = TempDb::new();
    let probe: Arc<Probe> = Arc::default();

    // Waiting across a restart: the callback reaches the new process.
    let env = start_service(&db, &probe, None).await;
    let waiting = env.start("s1", StartParams::default()).await;
    env.wait_status(&waiting, TaskStatus::Waiting).await;

    // Interrupted in a resumable stage: it runs again.
    probe.hang.store(true, Ordering::SeqCst);
    let resumable = env.start("s2", StartParams { hang_at: Some("on_init".into()), ..Default::default() }).await;
    env.wait_task(&resumable, "running on_init", |r| r.status == TaskStatus::Running).await;
    wait_until("on_init to hang", || !probe.runs(&resumable).is_empty()).await;
    drop(env);

    let env = start_service(&db, &probe, None).await;
    let row = env.wait_status(&resumable, TaskStatus::Waiting).await;
    assert_eq!(stages(&row), pairs(&[("on_init", "interrupted"), ("on_init", "wait")]));
    assert_eq!(env.tm.callback(&env.svc, &waiting, json!({"power": "on"})).await.unwrap(), CallbackOutcome::Applied);
    let row = env.wait_status(&waiting, TaskStatus::Complete).await;
    assert_eq!(stages(&row), pairs(DONE));
    assert_eq!(probe.status("s1"), "running");

    // Interrupted in a stage that may not run again: failed through on_failure.
    probe.hang.store(true, Ordering::SeqCst);
    let stuck = env.start("s3", StartParams { hang_at: Some("on_commit".into()), ..Default::default() }).await;
    env.wait_status(&stuck, TaskStatus::Waiting).await;
    env.post_callback(&stuck, json!({"power": "on"})).await;
    env.wait_task(&stuck, "running on_commit", |r| r.stage == "on_commit").await;
    wait_until("on_commit to hang", || probe.runs(&stuck).len() == 3).await;
    drop(env);

    let env = start_service(&db, &probe, None).await;
    let row = env.wait_status(&stuck, TaskStatus::Failed).await;
    assert!(row.reason.contains("restarted during stage on_commit"), "{}", row.reason);
    assert_eq!(probe.failures(&stuck).len(), 1);
    assert_eq!(probe.status("s3"), "start_fail");
    let results: Vec<String> = row.history.iter().map(|h| h.result.clone()).collect();
    assert_eq!(results, ["wait", "ok", "interrupted", "failed"]);

    // A task whose type is gone fails without running anything.
    let obj = TaskObject::new("server", "s4", "vm-s4");
    let txn = env.svc.db.begin().await.unwrap();
    let new = NewTask {
        id: "gone-1",
        name: "GoneTask",
        obj: &obj,
        cred: &user("alice", "p1"),
        params: &json!({}),
        parent_task_id: None,
        parent_wait: "",
    };
    store::insert(&txn, env.tm.spec(), &new).await.unwrap();
    txn.commit().await.unwrap();
    env.tm.resume_all(&env.svc).await.unwrap();
    let row = env.wait_status("gone-1", TaskStatus::Failed).await;
    assert!(row.reason.contains("not registered"), "{}", row.reason);
}

#[tokio::test]
async fn a_callback_during_its_stage_is_applied_to_the_wait_that_stage_declares() {
    let db = TempDb::new();
    let env = start_service(&db, &Arc::default(), None).await;
    let id = env.start("s1", StartParams { inline_power: Some("fast".into()), ..Default::default() }).await;
    wait_until("the inline callback", || !env.probe.inline.lock().unwrap().is_empty()).await;
    assert_eq!(*env.probe.inline.lock().unwrap(), [CallbackOutcome::Queued]);
    let row = env.wait_status(&id, TaskStatus::Complete).await;
    assert_eq!(row.result, json!({"power": "fast"}));
    assert_eq!(stages(&row), pairs(DONE));
}

#[tokio::test]
async fn stale_and_unknown_callbacks_are_ignored() {
    let db = TempDb::new();
    let env = start_service(&db, &Arc::default(), None).await;
    let done = run_start(&env, "s1").await;

    let out = env.post_callback(&done.id, json!({"power": "off"})).await;
    assert_eq!(out["result"], json!("ignored"), "{out}");
    assert_eq!(env.post_callback("no-such-task", json!({})).await["result"], json!("ignored"));
    let row = env.task(&done.id).await;
    assert_eq!((row.status, row.result), (TaskStatus::Complete, json!({"power": "on"})));
    assert_eq!(env.probe.runs(&done.id).len(), 3);

    // A callback naming another stage, or from a project that cannot see the task.
    let id = env.start("s2", StartParams::default()).await;
    env.wait_status(&id, TaskStatus::Waiting).await;
    let out = env.post_callback(&id, json!({"__stage__": "on_stopped"})).await;
    assert_eq!(out["result"], json!("ignored"));
    let bob = Ctx::internal(env.svc.clone(), user("bob", "p2"));
    let out = env.tm.perform_class(&bob, &id, &Row::new()).await.unwrap();
    assert_eq!(out["result"], json!("ignored"));
    assert_eq!(env.task(&id).await.status, TaskStatus::Waiting);
}

#[tokio::test]
async fn an_error_callback_runs_the_failure_path() {
    let db = TempDb::new();
    let env = start_service(&db, &Arc::default(), None).await;
    for (obj, body, reason) in [
        ("s1", json!({"status": "error", "reason": "host said no"}), "host said no"),
        ("s2", json!({"__status__": "error", "__reason__": "qemu died"}), "qemu died"),
    ] {
        let id = env.start(obj, StartParams::default()).await;
        env.wait_status(&id, TaskStatus::Waiting).await;
        accepted(&env.post_callback(&id, body).await);
        let row = env.wait_status(&id, TaskStatus::Failed).await;
        assert_eq!(row.reason, reason);
        assert_eq!(env.probe.failures(&id), pairs(&[("on_started", reason)]));
        assert_eq!(env.probe.status(obj), "start_fail");
        assert_eq!(env.probe.runs(&id), ["on_init"]);
    }
}

#[tokio::test]
async fn a_wait_times_out() {
    let db = TempDb::new();
    let env = start_service(&db, &Arc::default(), Some(Duration::from_millis(100))).await;
    let id = env.start("s1", StartParams::default()).await;
    let row = env.wait_status(&id, TaskStatus::Failed).await;
    assert!(row.reason.contains("timed out"), "{}", row.reason);
    assert_eq!(env.probe.failures(&id).len(), 1);
    assert_eq!(env.probe.status("s1"), "start_fail");
}

#[tokio::test]
async fn children_report_to_their_parent() {
    let db = TempDb::new();
    let env = start_service(&db, &Arc::default(), None).await;
    let obj = TaskObject::new("server", "b1", "batch").owned_by("default", "p1");
    let ok =
        env.tm.start::<BatchTask>(&env.ctx(), obj.clone(), &BatchParams { count: 3, fail_one: false }).await.unwrap();
    let row = env.wait_status(&ok, TaskStatus::Complete).await;
    assert_eq!(row.result["done"], json!(3));
    assert!(Value::is_number(&row.result["last"]["value"]), "{}", row.result);

    let bad = env.tm.start::<BatchTask>(&env.ctx(), obj, &BatchParams { count: 3, fail_one: true }).await.unwrap();
    let row = env.wait_status(&bad, TaskStatus::Failed).await;
    assert_eq!(row.reason, "TestEchoTask failed: echo 1 refused");
    assert_eq!(env.probe.failures(&bad), pairs(&[("on_children_done", "TestEchoTask failed: echo 1 refused")]));
    let kids = store::children(&env.svc.db, env.tm.spec(), &bad, None).await.unwrap();
    assert_eq!(kids.len(), 3);
    assert!(kids.iter().all(|k| k.obj.tenant_id == "p1" && k.parent_task_id.as_deref() == Some(bad.as_str())));
}
