//! The webconsole's integration tests: a real in-process aio and a simulated host whose
//! guests' VNC is a fake RFB server.

#[path = "all/console.rs"]
mod console;
