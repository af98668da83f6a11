//! The server side of the `cloudpods` binary: how services are started together.

pub mod aio;
pub mod simhost;
