//! The image service (glance, catalog type `image`, `/v1`). `image-upload` and
//! `image-download` stream files and are written by hand in `crate::transfer`.

use crate::spec::{Action, Arg, Kind, ResourceSpec};

pub const IMAGE: ResourceSpec = ResourceSpec::new("image", "image", "images")
    .version("v1")
    .columns(&["id", "name", "disk_format", "size", "status", "is_public", "protected", "min_disk", "checksum"])
    .list_filters(&[
        Arg::opt("disk-format", "Only in this format (qcow2, raw, iso, ...)"),
        Arg::opt("status", "Only in this status (queued, active, killed, save_fail, ...)"),
        Arg::opt("pending-delete", "true: only the recycle bin; all: with it"),
    ])
    .create_args(&[
        Arg::pos("name", "Name of the image (created queued: upload its data with PUT or image-upload)"),
        Arg::opt("format", "Disk format").field("disk_format"),
        Arg::opt("min-disk", "Minimum disk size in MB").kind(Kind::Int),
        Arg::opt("min-ram", "Minimum memory in MB").kind(Kind::Int),
        Arg::opt("os-arch", "CPU architecture, e.g. x86_64"),
        Arg::opt("property", "Image property key=value; repeatable").kind(Kind::KeyValues).field("properties"),
        Arg::opt("description", "Description"),
    ])
    .update_args(&[
        Arg::opt("name", "New name"),
        Arg::opt("description", "Description"),
        Arg::opt("min-disk", "Minimum disk size in MB").kind(Kind::Int),
        Arg::opt("min-ram", "Minimum memory in MB").kind(Kind::Int),
        Arg::opt("os-arch", "CPU architecture"),
        Arg::opt("property", "Image property key=value (empty value removes it); repeatable")
            .kind(Kind::KeyValues)
            .field("properties"),
        Arg::opt("protected", "Refuse deletion").kind(Kind::FlagPair("unprotected")),
    ])
    .actions(&[
        Action::perform("probe", "probe", "Probe an image again: format, virtual size, checksums, conversions"),
        Action::perform("cancel-delete", "cancel-delete", "Restore an image from the recycle bin"),
        Action::perform("public", "public", "Share an image with every project")
            .args(&[Arg::opt("scope", "system (default) or domain")]),
        Action::perform("private", "private", "Stop sharing an image"),
    ]);

pub const RESOURCES: &[ResourceSpec] = &[IMAGE];
