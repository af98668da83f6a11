//! apigateway against a real aio (test-harness): sessions, CSRF, forwarding, isolation, uploads.

#[path = "all/common.rs"]
mod common;

#[path = "all/auth.rs"]
mod auth;

#[path = "all/forward.rs"]
mod forward;

#[path = "all/faults.rs"]
mod faults;

#[path = "all/websocket.rs"]
mod websocket;
