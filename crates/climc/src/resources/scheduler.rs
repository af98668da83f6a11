//! The scheduler (catalog type `scheduler`, no prefix): `scheduler-forecast` asks whether a
//! server of this shape fits, and if not, why (per filter).

use crate::spec::{Action, Arg, Kind, ResourceSpec};

pub const SCHEDULER: ResourceSpec =
    ResourceSpec::new("scheduler", "scheduler", "scheduler").ops(&[]).actions(&[Action::perform_class(
        "forecast",
        "forecast",
        "Whether servers of this shape fit, and why not",
    )
    .args(&[
        Arg::opt("ncpu", "vCPUs per server").kind(Kind::Int).field("vcpu_count"),
        Arg::opt("mem-spec", "Memory per server, e.g. 2g or 512m").field("vmem_size"),
        Arg::opt("disk", "A disk: size (10g), or backend:size (local:10g); repeatable").kind(Kind::List).field("disks"),
        Arg::opt("net", "A network (name or id); repeatable").kind(Kind::List).field("nets"),
        Arg::opt("hypervisor", "kvm (default: any)"),
        Arg::opt("count", "How many servers").kind(Kind::Int),
        Arg::opt("project", "For this project (id); default: yours").field("project_id"),
    ])]);

pub const RESOURCES: &[ResourceSpec] = &[SCHEDULER];
