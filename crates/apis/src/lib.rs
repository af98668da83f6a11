//! Wire types shared by every cloudpods-rs service and client.
//!
//! Rows stored by a service are not API views: services convert their rows into the
//! views defined here. Errors on the wire are Cloudpods' `{"code","class","details"}`.

pub mod compute;
pub mod error;
pub mod identity;
pub mod image;
pub mod logger;
pub mod task;

pub use error::{Error, Result};
