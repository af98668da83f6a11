//! Tasks: the persisted multi-step operations of every service, and their callbacks.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Header naming the task an agent call belongs to.
pub const TASK_ID_HEADER: &str = "X-Task-Id";
/// Header with the URL the agent posts its result to (`POST /tasks/<id>`).
pub const TASK_NOTIFY_URL_HEADER: &str = "X-Task-Notify-Url";

/// Where a task is in its life: `init -> running -> (waiting -> running)* -> complete | failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Stored, no stage has run yet.
    Init,
    /// A stage is running.
    Running,
    /// Waiting for a callback (`POST /tasks/<id>`) before the next stage.
    Waiting,
    Complete,
    Failed,
}

impl TaskStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskStatus::Init => "init",
            TaskStatus::Running => "running",
            TaskStatus::Waiting => "waiting",
            TaskStatus::Complete => "complete",
            TaskStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        Some(match s {
            "init" => TaskStatus::Init,
            "running" => TaskStatus::Running,
            "waiting" => TaskStatus::Waiting,
            "complete" => TaskStatus::Complete,
            "failed" => TaskStatus::Failed,
            _ => return None,
        })
    }

    pub fn is_finished(&self) -> bool {
        matches!(self, TaskStatus::Complete | TaskStatus::Failed)
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run of one stage, as kept in a task's `history`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StageRecord {
    pub stage: String,
    pub started: String,
    pub finished: String,
    /// `ok` (went on to another stage), `wait`, `complete`, `failed`, or `interrupted` (the
    /// service stopped while the stage ran).
    pub result: String,
}

/// The body of a task callback. `status` is `"error"` on failure, anything else (or absent)
/// means the step succeeded; other fields are the step's result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskCallback {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(flatten)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl TaskCallback {
    /// A failure report.
    pub fn error(reason: impl Into<String>) -> TaskCallback {
        TaskCallback { status: Some("error".into()), reason: Some(reason.into()), data: Default::default() }
    }

    pub fn is_error(&self) -> bool {
        self.status.as_deref() == Some("error")
            || self.data.get("__status__").and_then(Value::as_str).is_some_and(|s| !s.eq_ignore_ascii_case("ok"))
    }
}

/// The failure a callback body reports, if it reports one: `{"status":"error","reason":..}`,
/// or Cloudpods' `{"__status__":"error","__reason__":..}` (any `__status__` but `OK` fails).
/// A `status` other than `error` is data (a status sync reports `{"status":"running"}`).
pub fn callback_error(body: &Value) -> Option<String> {
    let obj = body.as_object()?;
    let plain = obj.get("status").and_then(Value::as_str) == Some("error");
    let cloudpods = obj.get("__status__").and_then(Value::as_str).is_some_and(|s| !s.eq_ignore_ascii_case("ok"));
    if !plain && !cloudpods {
        return None;
    }
    let reason = match obj.get("reason").or_else(|| obj.get("__reason__")) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Null) | None => "the agent reported an error without a reason".to_string(),
        Some(other) => other.to_string(),
    };
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_bodies() {
        assert_eq!(callback_error(&json!({"status": "error", "reason": "no disk"})).as_deref(), Some("no disk"));
        assert_eq!(callback_error(&json!({"__status__": "error", "__reason__": "boom"})).as_deref(), Some("boom"));
        assert!(callback_error(&json!({"__status__": "OK", "x": 1})).is_none());
        assert!(callback_error(&json!({"status": "running"})).is_none());
        assert!(callback_error(&json!(null)).is_none());
        let cb = TaskCallback::error("bad");
        assert!(cb.is_error());
        assert_eq!(callback_error(&serde_json::to_value(&cb).unwrap()).as_deref(), Some("bad"));
        assert_eq!(TaskStatus::parse("waiting"), Some(TaskStatus::Waiting));
        assert_eq!(serde_json::to_value(TaskStatus::Failed).unwrap(), json!("failed"));
    }
}
