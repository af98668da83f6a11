//! `ImageCopyFromUrlTask`: glance downloads an image itself (`x-glance-api-copy-from`).
//!
//! ```text
//!  on_init: GET <url> -> the upload path (quota, store, hashes) -> saved -> ImagePipelineTask
//!  failure (unreachable URL, error answer, broken transfer, restart): killed, no file left
//! ```
//! The image is `saving` before the task starts. A restart cannot resume a half-read HTTP
//! body, so the stage is not resumable: the task fails and the image is `killed`.

use apis::Error;
use apis::image::STATUS_KILLED;
use async_trait::async_trait;
use cloudcommon::resource::row_str;
use cloudcommon::tasks::{Next, Task, TaskRun};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::glance;
use crate::images::set_status;
use crate::models::images;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopyFromParams {
    pub image_id: String,
    pub url: String,
}

pub struct ImageCopyFromUrlTask;

#[async_trait]
impl Task for ImageCopyFromUrlTask {
    const NAME: &'static str = "ImageCopyFromUrlTask";
    type Params = CopyFromParams;

    async fn stage(&self, t: &mut TaskRun<CopyFromParams>, _stage: &str, _data: &Value) -> Result<Next, Error> {
        let g = glance(t.svc())?;
        let row = images::get(t.db(), &t.params.image_id).await?;
        match crate::upload::copy_from(t.ctx(), g, row, &t.params.url).await {
            Ok(row) => Ok(Next::Complete(json!({"size": row.get("size"), "checksum": row.get("checksum")}))),
            Err(e) => Ok(Next::Fail(e.to_string())),
        }
    }

    async fn on_failure(&self, t: &TaskRun<CopyFromParams>, _stage: &str, reason: &str) {
        let id = &t.params.image_id;
        if let Ok(g) = glance(t.svc()) {
            let _ = g.store.delete(id).await;
        }
        match images::get(t.db(), id).await {
            Ok(row) if row_str(&row, "status") == STATUS_KILLED => {}
            Ok(_) => {
                if let Err(e) = set_status(&t.ctx(), id, STATUS_KILLED, reason).await {
                    tracing::error!(image = %id, error = %e, "cannot mark the image killed");
                }
            }
            Err(_) => {}
        }
    }

    fn resumable(&self, _stage: &str) -> bool {
        false
    }
}
