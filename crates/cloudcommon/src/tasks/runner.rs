//! The seams of the task driver: task types with their params type erased, and the
//! per-task locks that keep one stage of a task running at a time in a process.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use apis::Error;
use async_trait::async_trait;
use futures::FutureExt;
use serde_json::Value;
use tokio::sync::OwnedMutexGuard;

use super::{NewChild, Next, RunCore, Task, TaskRun};

/// A task type with its params type erased.
#[async_trait]
pub(super) trait Runner: Send + Sync {
    fn resumable(&self, stage: &str) -> bool;
    async fn run(&self, core: RunCore, params: &Value, stage: &str, data: &Value) -> StageOutput;
    async fn on_failure(&self, core: RunCore, params: &Value, stage: &str, reason: &str);
}

pub(super) struct StageOutput {
    pub(super) next: Result<Next, Error>,
    /// The params as the stage left them.
    pub(super) params: Value,
    pub(super) children: Vec<NewChild>,
}

pub(super) struct Adapter<T>(pub(super) T);

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[async_trait]
impl<T: Task> Runner for Adapter<T> {
    fn resumable(&self, stage: &str) -> bool {
        self.0.resumable(stage)
    }

    async fn run(&self, core: RunCore, params: &Value, stage: &str, data: &Value) -> StageOutput {
        let p: T::Params = match serde_json::from_value(params.clone()) {
            Ok(p) => p,
            Err(e) => {
                let next = Err(Error::Internal(format!("cannot read the params of {}: {e}", T::NAME)));
                return StageOutput { next, params: params.clone(), children: vec![] };
            }
        };
        let mut run = TaskRun { core, params: p };
        let next = AssertUnwindSafe(self.0.stage(&mut run, stage, data))
            .catch_unwind()
            .await
            .unwrap_or_else(|p| Err(Error::Internal(format!("stage {stage} panicked: {}", panic_text(p.as_ref())))));
        let params = serde_json::to_value(&run.params).unwrap_or_else(|_| params.clone());
        StageOutput { next, params, children: run.core.children }
    }

    async fn on_failure(&self, core: RunCore, params: &Value, stage: &str, reason: &str) {
        let p: T::Params = match serde_json::from_value(params.clone()) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(task = %core.id, name = T::NAME, error = %e, "cannot read params; on_failure skipped");
                return;
            }
        };
        let run = TaskRun { core, params: p };
        if let Err(p) = AssertUnwindSafe(self.0.on_failure(&run, stage, reason)).catch_unwind().await {
            tracing::error!(task = %run.core.id, name = T::NAME, panic = %panic_text(p.as_ref()), "on_failure panicked");
        }
    }
}

/// One async lock per task id, dropped from the map when nobody holds or waits for it.
#[derive(Default)]
pub(super) struct Locks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held task lock.
pub(super) struct TaskGuard {
    guard: Option<OwnedMutexGuard<()>>,
    id: String,
    locks: Arc<Locks>,
}

impl Locks {
    fn entry(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).entry(id.to_string()).or_default().clone()
    }

    pub(super) async fn lock(self: &Arc<Self>, id: &str) -> TaskGuard {
        let guard = self.entry(id).lock_owned().await;
        TaskGuard { guard: Some(guard), id: id.to_string(), locks: self.clone() }
    }

    pub(super) fn try_lock(self: &Arc<Self>, id: &str) -> Option<TaskGuard> {
        let m = self.entry(id);
        match m.try_lock_owned() {
            Ok(guard) => Some(TaskGuard { guard: Some(guard), id: id.to_string(), locks: self.clone() }),
            Err(_) => {
                self.release(id);
                None
            }
        }
    }

    fn release(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(id).is_some_and(|m| Arc::strong_count(m) == 1) {
            map.remove(id);
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.locks.release(&self.id);
    }
}

/// Removes a task from the active set when its driver ends.
pub(super) struct ActiveMark {
    pub(super) id: String,
    pub(super) active: Arc<Mutex<HashSet<String>>>,
}

impl Drop for ActiveMark {
    fn drop(&mut self) {
        self.active.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}
