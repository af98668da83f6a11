//! The region's migrations. Released migrations are never edited; changes are new versions.

use cloudcommon::db::Migration;

pub fn migrations() -> Vec<Migration> {
    vec![
        cloudcommon::resource::metadata::MIGRATION,
        cloudcommon::opslog::MIGRATION,
        cloudcommon::tasks::MIGRATION,
        Migration { version: 10, name: "cloudregions", up: |db| crate::geo::cloudregion_spec().create_table_sql(db) },
        Migration { version: 11, name: "zones", up: |db| crate::geo::zone_spec().create_table_sql(db) },
        Migration { version: 12, name: "vpcs", up: |db| crate::geo::vpc_spec().create_table_sql(db) },
        Migration { version: 13, name: "wires", up: |db| crate::geo::wire_spec().create_table_sql(db) },
        Migration { version: 14, name: "networks", up: |db| crate::networks::network_spec().create_table_sql(db) },
        Migration {
            version: 15,
            name: "reservedips",
            up: |db| crate::networks::reservedip_spec().create_table_sql(db),
        },
        Migration { version: 16, name: "ipallocations", up: crate::ipalloc::migration_sql },
        Migration { version: 17, name: "hosts", up: |db| crate::hosts::host_spec().create_table_sql(db) },
        Migration { version: 18, name: "netinterfaces", up: |db| crate::hosts::netif_spec().create_table_sql(db) },
        Migration { version: 19, name: "storages", up: |db| crate::storages::storage_spec().create_table_sql(db) },
        Migration {
            version: 20,
            name: "hoststorages",
            up: |db| crate::storages::hoststorage_spec().create_table_sql(db),
        },
        Migration {
            version: 21,
            name: "storagecaches",
            up: |db| crate::storages::storagecache_spec().create_table_sql(db),
        },
        Migration { version: 22, name: "schedtags", up: |db| crate::storages::schedtag_spec().create_table_sql(db) },
        Migration { version: 23, name: "schedtag_hosts", up: crate::storages::schedtag_hosts_sql },
        Migration { version: 24, name: "keypairs", up: |db| crate::keypairs::keypair_spec().create_table_sql(db) },
        Migration { version: 25, name: "secgroups", up: |db| crate::secgroups::secgroup_spec().create_table_sql(db) },
        Migration { version: 26, name: "secgrouprules", up: |db| crate::secgroups::rule_spec().create_table_sql(db) },
        Migration { version: 27, name: "quotas", up: |db| crate::quotas::quota_spec().create_table_sql(db) },
        Migration { version: 28, name: "guests", up: |db| crate::servers::server_spec().create_table_sql(db) },
        Migration { version: 29, name: "disks", up: |db| crate::disks::disk_spec().create_table_sql(db) },
        Migration { version: 30, name: "guestdisks", up: |db| crate::disks::guestdisk_spec().create_table_sql(db) },
        Migration {
            version: 31,
            name: "guestnetworks",
            up: |db| crate::disks::guestnetwork_spec().create_table_sql(db),
        },
        Migration { version: 32, name: "cachedimages", up: |db| crate::disks::cachedimage_spec().create_table_sql(db) },
        Migration {
            version: 33,
            name: "storagecachedimages",
            up: |db| crate::disks::storagecachedimage_spec().create_table_sql(db),
        },
        // Server lists are newest first, without the recycle bin: read that page (and the
        // count) from an index rather than sorting the table.
        Migration {
            version: 34,
            name: "guests_list_order",
            up: |_| {
                vec![
                    "CREATE INDEX ix_guests_tbl_list ON guests_tbl (deleted, pending_deleted, created_at DESC, id)"
                        .into(),
                ]
            },
        },
    ]
}
