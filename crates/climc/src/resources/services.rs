//! Resources shared by every service (`tasks`, `events`) and the logger's action log.

use crate::spec::{Arg, Kind, READ_ONLY, ResourceSpec, Std};

pub const ACTION: ResourceSpec = ResourceSpec::new("log", "action", "actions")
    .columns(&["id", "ops_time", "obj_type", "obj_name", "action", "user", "tenant", "service", "success", "notes"])
    .ops(READ_ONLY)
    .list_filters(&[
        Arg::opt("since", "Only actions at or after this time (RFC 3339)"),
        Arg::opt("until", "Only actions before this time (RFC 3339)"),
        Arg::opt("obj-type", "Only on objects of this type, e.g. server"),
        Arg::opt("obj-id", "Only on this object"),
        Arg::opt("user", "Only by this user"),
        Arg::opt("service", "Only in this service"),
        Arg::opt("success", "Only successful (true) or failed (false) actions"),
    ]);

const TASK_COLUMNS: &[&str] = &["id", "obj_name", "obj_id", "task=name", "stage", "status", "progress", "created_at"];
const EVENT_COLUMNS: &[&str] =
    &["id", "ops_time", "obj_type", "obj_name=name", "action", "user", "tenant=actor_tenant", "notes"];

const EVENT_FILTERS: &[Arg] = &[
    Arg::opt("since", "Only events at or after this time (RFC 3339)"),
    Arg::opt("until", "Only events before this time (RFC 3339)"),
    Arg::opt("obj-type", "Only on objects of this type; repeatable").kind(Kind::List),
    Arg::opt("obj-id", "Only on these objects; repeatable").kind(Kind::List),
    Arg::opt("action", "Only these actions; repeatable").kind(Kind::List),
];

/// `<prefix>-task-list` and `<prefix>-task-show` of one service.
const fn tasks(service: &'static str, version: Option<&'static str>, prefix: &'static str) -> ResourceSpec {
    let spec = ResourceSpec::new(service, "task", "tasks").prefix(prefix).columns(TASK_COLUMNS).ops(READ_ONLY);
    match version {
        Some(v) => spec.version(v),
        None => spec,
    }
}

/// `<prefix>-event-list` of one service.
const fn events(service: &'static str, version: Option<&'static str>, prefix: &'static str) -> ResourceSpec {
    let spec = ResourceSpec::new(service, "event", "events")
        .prefix(prefix)
        .columns(EVENT_COLUMNS)
        .ops(&[Std::List])
        .list_filters(EVENT_FILTERS);
    match version {
        Some(v) => spec.version(v),
        None => spec,
    }
}

pub const RESOURCES: &[ResourceSpec] = &[
    ACTION,
    tasks("identity", Some("v3"), "identity-task"),
    events("identity", Some("v3"), "identity-event"),
    tasks("log", None, "log-task"),
    events("log", None, "log-event"),
    tasks("compute_v2", None, "region-task"),
    events("compute_v2", None, "region-event"),
    tasks("image", Some("v1"), "image-task"),
    events("image", Some("v1"), "image-event"),
];
