//! glance's tasks, one per file: the pipeline after an upload, the download of a
//! copy-from URL, and the removal of an image's files.

pub mod copy_from;
pub mod delete;
pub mod pipeline;

use cloudcommon::tasks::TaskManager;

pub fn register(tm: &TaskManager) {
    tm.register(pipeline::ImagePipelineTask);
    tm.register(copy_from::ImageCopyFromUrlTask);
    tm.register(delete::ImageDeleteTask);
}
