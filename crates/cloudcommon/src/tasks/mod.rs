//! The persisted task engine (taskman). Being written.

use std::sync::Arc;

use async_trait::async_trait;

use crate::resource::{Resource, ResourceSpec};

pub struct TaskManager {
    spec: ResourceSpec,
}

impl TaskManager {
    pub fn new(service: &'static str) -> Arc<TaskManager> {
        Arc::new(TaskManager { spec: ResourceSpec::new(service, "task", "tasks", "tasks_tbl") })
    }
}

#[async_trait]
impl Resource for TaskManager {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
}
