//! The region (compute control plane, catalog type `compute_v2`, no prefix).

use mcclient::Method;

use crate::spec::{Action, Arg, Kind, READ_ONLY, ResourceSpec, Std};

const fn compute(keyword: &'static str, plural: &'static str) -> ResourceSpec {
    ResourceSpec::new("compute_v2", keyword, plural)
}

const DESCRIPTION: Arg = Arg::opt("description", "Description");
const NEW_NAME: Arg = Arg::opt("name", "New name");

pub const CLOUDREGION: ResourceSpec =
    compute("cloudregion", "cloudregions").columns(&["id", "name", "status", "enabled", "provider"]).ops(READ_ONLY);

pub const ZONE: ResourceSpec =
    compute("zone", "zones").columns(&["id", "name", "status", "cloudregion", "location"]).ops(READ_ONLY);

pub const VPC: ResourceSpec =
    compute("vpc", "vpcs").columns(&["id", "name", "status", "is_default", "cidr_block", "cloudregion"]).ops(READ_ONLY);

pub const WIRE: ResourceSpec = compute("wire", "wires")
    .columns(&["id", "name", "zone", "vpc", "bandwidth", "mtu", "status"])
    .list_filters(&[Arg::opt("zone", "Only in this zone (id)").field("zone_id")])
    .create_args(&[
        Arg::pos("name", "Name of the wire"),
        Arg::opt("zone", "Zone (name or id)").required(),
        Arg::opt("vpc", "VPC (name or id); default: the classic vpc `default`"),
        Arg::opt("bw", "Bandwidth in Mbps").kind(Kind::Int).field("bandwidth"),
        Arg::opt("mtu", "MTU").kind(Kind::Int),
        DESCRIPTION,
    ])
    .update_args(&[
        NEW_NAME,
        Arg::opt("bw", "Bandwidth in Mbps").kind(Kind::Int).field("bandwidth"),
        Arg::opt("mtu", "MTU").kind(Kind::Int),
        DESCRIPTION,
    ]);

pub const NETWORK: ResourceSpec = compute("network", "networks")
    .columns(&[
        "id",
        "name",
        "guest_ip_start",
        "guest_ip_end",
        "guest_ip_mask",
        "guest_gateway",
        "wire",
        "ports",
        "ports_used",
        "server_type",
        "is_public",
        "status",
    ])
    .list_filters(&[Arg::opt("wire", "Only on this wire (id)").field("wire_id")])
    .create_args(&[
        Arg::opt("wire", "Wire (name or id)").required(),
        Arg::pos("name", "Name of the network"),
        Arg::pos("start", "First address of the range").field("guest_ip_start"),
        Arg::pos("end", "Last address of the range").field("guest_ip_end"),
        Arg::pos("mask", "Prefix length, e.g. 24").field("guest_ip_mask"),
        Arg::opt("gateway", "Gateway").field("guest_gateway"),
        Arg::opt("dns", "DNS servers, comma separated").field("guest_dns"),
        Arg::opt("domain", "DNS domain").field("guest_domain"),
        Arg::opt("vlan-id", "VLAN").kind(Kind::Int),
        Arg::opt("server-type", "guest (default), baremetal, container, pxe, ipmi, eip, hostlocal"),
        Arg::opt("alloc-policy", "none, stepdown, stepup or random"),
        Arg::opt("public", "Share with every project").kind(Kind::Flag).field("is_public"),
        DESCRIPTION,
    ])
    .update_args(&[
        NEW_NAME,
        Arg::opt("start", "First address of the range").field("guest_ip_start"),
        Arg::opt("end", "Last address of the range").field("guest_ip_end"),
        Arg::opt("mask", "Prefix length").field("guest_ip_mask"),
        Arg::opt("gateway", "Gateway").field("guest_gateway"),
        Arg::opt("dns", "DNS servers, comma separated").field("guest_dns"),
        Arg::opt("alloc-policy", "none, stepdown, stepup or random"),
        DESCRIPTION,
    ])
    .actions(&[
        Action::perform("reserve-ip", "reserve-ip", "Reserve addresses of a network").args(&[
            Arg::opt("ip", "Address; repeatable").kind(Kind::List).field("ips").required(),
            Arg::opt("notes", "Why"),
        ]),
        Action::perform("release-reserved-ip", "release-reserved-ip", "Release a reserved address")
            .args(&[Arg::opt("ip", "Address").required()]),
    ]);

pub const RESERVEDIP: ResourceSpec = compute("reservedip", "reservedips")
    .columns(&["id", "network", "ip_addr", "notes", "created_at"])
    .ops(&[Std::List, Std::Show, Std::Delete])
    .list_filters(&[Arg::opt("network", "Only in this network (id)").field("network_id")]);

pub const HOST: ResourceSpec = compute("host", "hosts")
    .columns(&[
        "id",
        "name",
        "access_ip",
        "host_type",
        "host_status",
        "status",
        "enabled",
        "is_maintenance",
        "cpu_count",
        "mem_size",
        "zone",
        "last_ping_at",
    ])
    .ops(&[Std::List, Std::Show, Std::Update, Std::Delete, Std::Metadata])
    .list_filters(&[
        Arg::opt("zone", "Only in this zone (id)").field("zone_id"),
        Arg::opt("host-status", "online or offline"),
    ])
    .update_args(&[
        NEW_NAME,
        Arg::opt("cpu-cmtbound", "CPU overcommit bound").field("cpu_cmtbound"),
        Arg::opt("mem-cmtbound", "Memory overcommit bound").field("mem_cmtbound"),
        DESCRIPTION,
    ])
    .actions(&[
        Action::perform("enable", "enable", "Let a host take new servers"),
        Action::perform("disable", "disable", "Stop a host taking new servers"),
        Action::perform("maintenance", "maintenance", "Put a host in maintenance"),
        Action::perform("unmaintenance", "unmaintenance", "Take a host out of maintenance"),
        Action::perform("add-netif", "add-netif", "Bind a host NIC to a wire").args(&[
            Arg::opt("mac", "MAC of the NIC").required(),
            Arg::opt("wire", "Wire (name or id)").required(),
            Arg::opt("bridge", "Bridge on the host"),
            Arg::opt("interface", "Interface name"),
        ]),
        Action::perform("remove-netif", "remove-netif", "Unbind a host NIC").args(&[Arg::opt("mac", "MAC").required()]),
    ]);

pub const STORAGE: ResourceSpec = compute("storage", "storages")
    .columns(&[
        "id",
        "name",
        "storage_type",
        "medium_type",
        "capacity",
        "actual_capacity_used",
        "cmtbound",
        "status",
        "zone",
    ])
    .ops(READ_ONLY);

pub const KEYPAIR: ResourceSpec = compute("keypair", "keypairs")
    .columns(&["id", "name", "scheme", "fingerprint", "created_at"])
    .ops(&[Std::List, Std::Show, Std::Create, Std::Delete])
    .create_args(&[
        Arg::pos("name", "Name of the keypair"),
        Arg::opt("public-key", "OpenSSH public key; without it a key pair is generated and the private key shown once"),
        DESCRIPTION,
    ]);

pub const SECGROUP: ResourceSpec = compute("secgroup", "secgroups")
    .columns(&["id", "name", "rules", "out_rules", "is_public", "status"])
    .ops(&[Std::List, Std::Show, Std::Create, Std::Update, Std::Delete])
    .create_args(&[Arg::pos("name", "Name of the security group"), DESCRIPTION])
    .update_args(&[NEW_NAME, DESCRIPTION]);

pub const SECGROUPRULE: ResourceSpec = compute("secgrouprule", "secgrouprules")
    .prefix("secgroup-rule")
    .columns(&["id", "secgroup_id", "direction", "action", "protocol", "ports", "cidr", "priority"])
    .ops(&[Std::List, Std::Show, Std::Create, Std::Delete])
    .list_filters(&[Arg::opt("secgroup", "Only of this security group (id)").field("secgroup_id")])
    .create_args(&[
        Arg::pos("secgroup", "Security group (name or id)"),
        Arg::opt("direction", "in (default) or out"),
        Arg::opt("protocol", "any (default), tcp, udp or icmp"),
        Arg::opt("ports", "22, 80-90 or 22,80"),
        Arg::opt("cidr", "Remote network, e.g. 10.0.0.0/8"),
        Arg::opt("action", "allow (default) or deny"),
        Arg::opt("priority", "1 to 100").kind(Kind::Int),
        DESCRIPTION,
    ]);

pub const SCHEDTAG: ResourceSpec = compute("schedtag", "schedtags")
    .columns(&["id", "name", "default_strategy", "resource_type", "host_count"])
    .create_args(&[
        Arg::pos("name", "Name of the tag"),
        Arg::opt("default-strategy", "require, exclude, prefer or avoid"),
        DESCRIPTION,
    ])
    .update_args(&[NEW_NAME, Arg::opt("default-strategy", "require, exclude, prefer or avoid"), DESCRIPTION])
    .actions(&[Action::perform("set-hosts", "set-hosts", "Make a tag's hosts exactly these").args(&[Arg::opt(
        "host",
        "Host (name or id); repeatable",
    )
    .kind(Kind::List)
    .required()])]);

pub const SERVER: ResourceSpec = compute("server", "servers")
    .columns(&["id", "name", "status", "vcpu_count", "vmem_size", "disk", "ips", "host", "power_states", "created_at"])
    .ops(&[Std::List, Std::Show, Std::Create, Std::Update, Std::Metadata])
    .list_filters(&[
        Arg::opt("host", "Only on this host (id)"),
        Arg::opt("pending-delete", "true: the recycle bin; all: both"),
    ])
    .create_args(&[
        Arg::pos("name", "Name (also the hostname)"),
        Arg::opt("ncpu", "vCPUs").kind(Kind::Int).field("vcpu_count"),
        Arg::opt("mem-spec", "Memory, e.g. 512m or 2g").field("vmem_size").required(),
        Arg::opt("disk", "Disk: <image>:10g for the system disk, 20g for data; repeatable")
            .kind(Kind::List)
            .field("disks")
            .required(),
        Arg::opt("net", "Network (name or id); repeatable").kind(Kind::List).field("nets"),
        Arg::opt("password", "Login password to set"),
        Arg::opt("keypair", "Keypair (name or id) whose public key the guest gets"),
        Arg::opt("secgroup", "Security group (name or id); default: default"),
        Arg::opt("user-data", "Cloud-init user data"),
        Arg::opt("auto-start", "Start once created").kind(Kind::Flag),
        Arg::opt("count", "Create this many (<name>-1, <name>-2, ...)").kind(Kind::Int),
        DESCRIPTION,
    ])
    .update_args(&[NEW_NAME, DESCRIPTION])
    .actions(&[
        Action::perform("start", "start", "Start servers").batch(),
        Action::perform("stop", "stop", "Stop servers").batch().args(&[
            Arg::opt("force", "Power off at once").kind(Kind::Flag).field("is_force"),
            Arg::opt("shutdown-timeout", "Seconds the guest has to shut down").kind(Kind::Int).field("timeout"),
        ]),
        Action::perform("restart", "restart", "Restart servers").batch().args(&[Arg::opt(
            "force",
            "Power off at once",
        )
        .kind(Kind::Flag)
        .field("is_force")]),
        Action::perform("syncstatus", "syncstatus", "Ask the hosts for the servers' real state").batch(),
        Action::perform("change-config", "change-config", "Change the vCPUs and memory of a stopped server").args(&[
            Arg::opt("ncpu", "vCPUs").kind(Kind::Int).field("vcpu_count"),
            Arg::opt("mem-spec", "Memory, e.g. 4g").field("vmem_size"),
        ]),
        Action::perform("attach-disk", "attachdisk", "Attach a ready disk (hotplug when running)").args(&[
            Arg::opt("disk", "Disk (name or id)").field("disk_id").required(),
            Arg::opt("driver", "virtio (default), scsi, ide or sata"),
        ]),
        Action::perform("detach-disk", "detachdisk", "Detach a data disk").args(&[
            Arg::opt("disk", "Disk (name or id)").field("disk_id").required(),
            Arg::opt("delete-disk", "Delete the disk too").kind(Kind::Const("false")).field("keep_disk"),
        ]),
        Action::perform("cancel-delete", "cancel-delete", "Take servers back out of the recycle bin").batch(),
        Action::custom(
            "delete",
            Method::Delete,
            "servers/{server}",
            "Delete servers (into the recycle bin by default)",
        )
        .batch()
        .args(&[
            Arg::pos("server", "Servers (names or ids)").lookup("servers"),
            Arg::opt("override-pending-delete", "Delete for good now").kind(Kind::Flag),
            Arg::opt("purge", "Only forget it here: its host is gone (admin)").kind(Kind::Flag),
        ]),
    ]);

pub const DISK: ResourceSpec = compute("disk", "disks")
    .columns(&["id", "name", "status", "disk_size", "disk_format", "disk_type", "storage", "guest", "template_id"])
    .ops(&[Std::List, Std::Show, Std::Create, Std::Update, Std::Delete, Std::Metadata])
    .create_args(&[
        Arg::pos("name", "Name of the disk"),
        Arg::pos("size", "Size, e.g. 10g"),
        Arg::opt("storage", "Storage (name or id); default: the one with most room"),
        Arg::opt("format", "qcow2 (default) or raw"),
        DESCRIPTION,
    ])
    .update_args(&[NEW_NAME, DESCRIPTION]);

pub const CACHEDIMAGE: ResourceSpec = compute("cachedimage", "cachedimages")
    .columns(&["id", "name", "size", "disk_format", "status", "last_sync"])
    .ops(READ_ONLY);

/// The webconsole (catalog type `webconsole`): `server-vnc <server>` opens a console session
/// and prints its websockify URL (for noVNC), valid once and for a minute.
pub const WEBCONSOLE: ResourceSpec =
    ResourceSpec::new("webconsole", "webconsole", "webconsole").prefix("server").ops(&[]).actions(&[Action::custom(
        "vnc",
        Method::Post,
        "webconsole/server/{server}",
        "Open a VNC console session of a running server: a one-time websockify URL",
    )
    .raw_body()
    .args(&[Arg::pos("server", "Server (name or id)")])]);

pub const RESOURCES: &[ResourceSpec] = &[
    CLOUDREGION,
    ZONE,
    VPC,
    WIRE,
    NETWORK,
    RESERVEDIP,
    HOST,
    STORAGE,
    KEYPAIR,
    SECGROUP,
    SECGROUPRULE,
    SCHEDTAG,
    SERVER,
    DISK,
    CACHEDIMAGE,
    WEBCONSOLE,
];
