//! Tasks: the persisted multi-step operations of every service, and their callbacks.

use serde::{Deserialize, Serialize};

/// Header naming the task an agent call belongs to.
pub const TASK_ID_HEADER: &str = "X-Task-Id";
/// Header with the URL the agent posts its result to (`POST /tasks/<id>`).
pub const TASK_NOTIFY_URL_HEADER: &str = "X-Task-Notify-Url";

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
    pub fn is_error(&self) -> bool {
        self.status.as_deref() == Some("error")
    }
}
