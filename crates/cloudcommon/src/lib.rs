//! The cloudpods-rs service framework.
//!
//! Every service is built from the same parts: [`config`] (TOML + env + flags), [`db`]
//! (sea-orm over SQLite or MariaDB, versioned migrations), [`resource`] (a spec plus hooks,
//! served by the generic dispatcher with Cloudpods' REST shape), [`auth`] and [`policy`]
//! (tokens verified against keystone, RBAC scopes), [`tasks`] (persisted multi-step work),
//! [`opslog`] and [`actionlog`] (what happened, locally and in the logger) and [`service`]
//! (the HTTP app, request ids, metrics, graceful shutdown).

pub mod actionlog;
pub mod auth;
pub mod client;
pub mod config;
pub mod db;
pub mod metrics;
pub mod opslog;
pub mod policy;
pub mod resource;
pub mod service;
pub mod tasks;

pub use apis::{Error, Result};
