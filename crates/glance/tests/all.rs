//! glance's integration tests: a real in-process aio (keystone, logger, glance), the real
//! qemu-img, small images made by the tests. Run on SQLite, or on MariaDB with
//! `TEST_DATABASE_URL`.

#[path = "all/common.rs"]
mod common;

#[path = "all/access.rs"]
mod access;
#[path = "all/failures.rs"]
mod failures;
#[path = "all/pipeline.rs"]
mod pipeline;
#[path = "all/upload.rs"]
mod upload;
