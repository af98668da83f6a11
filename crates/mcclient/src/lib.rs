//! Client SDK for cloudpods-rs services.
//!
//! ```no_run
//! # async fn demo() -> mcclient::Result<()> {
//! use std::time::Duration;
//! use mcclient::{AuthParams, Client, ListParams, modules::identity::USERS};
//!
//! let client = Client::new("http://127.0.0.1:30500/v3", Duration::from_secs(30), false);
//! let params = AuthParams::password("sysadmin", "Default", "sysadmin").with_project("system", "Default");
//! let session = client.authenticate(&params).await?;
//! let users = USERS.list(&session, &ListParams { limit: Some(10), ..Default::default() }).await?;
//! println!("{} users", users.total);
//! # Ok(()) }
//! ```
//!
//! - [`Client`]: HTTP, keystone's token endpoints, debug printing.
//! - [`Session`]: a token with its catalog; finds service endpoints and renews itself.
//! - [`ResourceManager`]: list/get/create/update/delete/perform on one resource kind.
//! - [`Error`]: what can go wrong, readable as is.

mod auth;
mod client;
mod error;
pub mod image;
mod manager;
pub mod modules;
mod session;
mod token;

pub use auth::{AuthMethod, AuthParams, Scope};
pub use client::Client;
pub use error::{Error, Result};
pub use manager::{
    ApiRequest, BatchItem, ListParams, ListResult, Method, ResourceManager, encode_segment, path_of, unwrap_keyword,
};
pub use session::{RENEW_MARGIN, Session};
pub use token::{Interface, Token};
