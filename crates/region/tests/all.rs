//! The region's integration tests: a real in-process aio (keystone, logger, glance, region).
//! Run on SQLite, or on MariaDB with `TEST_DATABASE_URL`.

#[path = "all/common.rs"]
mod common;

#[path = "all/access.rs"]
mod access;
#[path = "all/hosts.rs"]
mod hosts;
#[path = "all/ipalloc.rs"]
mod ipalloc;
#[path = "all/networks.rs"]
mod networks;
#[path = "all/servers.rs"]
mod servers;
