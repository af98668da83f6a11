//! keystone's integration tests: each test starts a real in-process `aio` (keystone and
//! logger over HTTP, SQLite or MariaDB per `TEST_DATABASE_URL`) and talks HTTP to it.

#[path = "all/common.rs"]
mod common;

#[path = "all/bad_input.rs"]
mod bad_input;
#[path = "all/lists.rs"]
mod lists;
#[path = "all/logs.rs"]
mod logs;
#[path = "all/misc.rs"]
mod misc;
#[path = "all/rbac.rs"]
mod rbac;
#[path = "all/resources.rs"]
mod resources;
#[path = "all/restart.rs"]
mod restart;
#[path = "all/tokens.rs"]
mod tokens;
