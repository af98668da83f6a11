//! `ImageDeleteTask`: removes an image's files, its sub-formats and properties, then the
//! image itself (a soft delete, which frees its name).
//!
//! ```text
//!  on_init (image deleting): delete <id>, <id>.<format>... from the store, sub-format rows
//!  remove_row: properties, then the image row (soft delete) -> gone
//!  failure: delete_fail with the reason (delete again to retry)
//! ```
//! Every step tolerates having been done before, so the stage is safe to run again.

use apis::Error;
use apis::image::STATUS_DELETE_FAIL;
use async_trait::async_trait;
use cloudcommon::resource::store;
use cloudcommon::tasks::{Next, Task, TaskRun};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::glance;
use crate::images::set_status;
use crate::models::{images, properties, subformats};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteParams {
    pub image_id: String,
}

pub struct ImageDeleteTask;

const REMOVE_ROW: &str = "remove_row";

#[async_trait]
impl Task for ImageDeleteTask {
    const NAME: &'static str = "ImageDeleteTask";
    type Params = DeleteParams;

    async fn stage(&self, t: &mut TaskRun<DeleteParams>, stage: &str, _data: &Value) -> Result<Next, Error> {
        let g = glance(t.svc())?;
        let id = t.params.image_id.clone();
        let Some(row) = store::get_by_id(t.db(), &images::spec(), &id).await? else {
            return Ok(Next::Complete(json!({"image_id": id})));
        };
        if stage == REMOVE_ROW {
            properties::remove_all(t.db(), &id).await?;
            store::soft_delete(t.db(), &images::spec(), &row).await?;
            return Ok(Next::Complete(json!({"image_id": id})));
        }
        let mut keys = vec![id.clone()];
        for s in subformats::of_image(t.db(), &id).await? {
            keys.push(format!("{id}.{}", s.format));
        }
        for key in &keys {
            g.store.delete(key).await.map_err(|e| Error::Unavailable(format!("cannot remove {key}: {e}")))?;
        }
        subformats::remove_all(t.db(), &id).await?;
        Ok(Next::Stage(REMOVE_ROW))
    }

    async fn on_failure(&self, t: &TaskRun<DeleteParams>, _stage: &str, reason: &str) {
        if let Err(e) = set_status(&t.ctx(), &t.params.image_id, STATUS_DELETE_FAIL, reason).await {
            tracing::error!(image = %t.params.image_id, error = %e, "cannot mark the image delete_fail");
        }
    }
}
