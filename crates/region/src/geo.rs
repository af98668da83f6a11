//! Geography and L2: cloudregions, zones, vpcs and wires. All are infrastructure: anyone
//! may read them, only callers with system rights change them.

use apis::Error;
use async_trait::async_trait;
use cloudcommon::resource::{Col, Ctx, Owner, OwnerScope, Resource, ResourceSpec, Row, row_str};
use sea_orm::sea_query::Condition;

use crate::common::{add_names, eq, int_field, refuse_if_used, require_system, resolve_ref};

pub const DEFAULT_REGION: &str = "default";
pub const DEFAULT_ZONE: &str = "zone0";
pub const DEFAULT_VPC: &str = "default";
pub const DEFAULT_WIRE: &str = "bcast0";

pub fn cloudregion_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "cloudregion", "cloudregions", "cloudregions_tbl")
        .owner(OwnerScope::System)
        .status("inservice")
        .enabled()
        .col(Col::str("provider", 64).create().not_null("OneCloud".into()))
        .col(Col::str("environment", 64).rw())
        .col(Col::str("city", 64).rw())
        .col(Col::str("country_code", 8).rw())
}

pub fn zone_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "zone", "zones", "zones_tbl")
        .owner(OwnerScope::System)
        .status("enable")
        .col(Col::str("cloudregion_id", 128).create().index())
        .col(Col::str("location", 256).rw().search())
        .col(Col::str("contacts", 256).rw())
        .col(Col::str("name_cn", 256).rw())
}

pub fn vpc_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "vpc", "vpcs", "vpcs_tbl")
        .owner(OwnerScope::System)
        .status("available")
        .enabled()
        .col(Col::str("cloudregion_id", 128).create().index())
        .col(Col::bool("is_default").not_null(false.into()))
        .col(Col::str("cidr_block", 256).rw())
        .col(Col::str("external_access_mode", 32).rw())
}

pub fn wire_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "wire", "wires", "wires_tbl")
        .owner(OwnerScope::System)
        .status("available")
        .col(Col::str("zone_id", 128).create().index())
        .col(Col::str("vpc_id", 128).create().index())
        .col(Col::int("bandwidth").rw().not_null(1000.into()))
        .col(Col::int("mtu").rw().not_null(1500.into()))
        .col(Col::int("schedule_rank").rw().not_null(0.into()))
}

macro_rules! resource_struct {
    ($name:ident, $spec:path) => {
        pub struct $name {
            spec: ResourceSpec,
        }
        impl $name {
            pub fn new() -> Self {
                $name { spec: $spec() }
            }
        }
        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}
pub(crate) use resource_struct;

resource_struct!(Cloudregions, cloudregion_spec);
resource_struct!(Zones, zone_spec);
resource_struct!(Vpcs, vpc_spec);
resource_struct!(Wires, wire_spec);

#[async_trait]
impl Resource for Cloudregions {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_create(&self, ctx: &Ctx, _i: &mut Row, _raw: &Row, _o: &Owner) -> Result<(), Error> {
        require_system(ctx, self, "create")
    }
    async fn validate_delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        refuse_if_used(ctx, row, "cloudregion", "zones_tbl", "cloudregion_id", "zones").await
    }
}

#[async_trait]
impl Resource for Zones {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, raw: &Row, _o: &Owner) -> Result<(), Error> {
        require_system(ctx, self, "create")?;
        if resolve_ref(ctx, input, raw, ["cloudregion", "cloudregion_id"], "cloudregions").await?.is_none() {
            input.insert("cloudregion_id".into(), DEFAULT_REGION.into());
        }
        Ok(())
    }
    async fn validate_delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        refuse_if_used(ctx, row, "zone", "wires_tbl", "zone_id", "wires").await?;
        refuse_if_used(ctx, row, "zone", "hosts_tbl", "zone_id", "hosts").await
    }
    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        add_names(ctx, rows, &cloudregion_spec(), "cloudregion").await
    }
    async fn context_filter(&self, _ctx: &Ctx, plural: &str, id: &str) -> Result<Option<Condition>, Error> {
        Ok((plural == "cloudregions").then(|| eq(self.spec.table, "cloudregion_id", id)))
    }
}

#[async_trait]
impl Resource for Vpcs {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, raw: &Row, _o: &Owner) -> Result<(), Error> {
        require_system(ctx, self, "create")?;
        if let Some(c) = input.get("cidr_block").and_then(|v| v.as_str()).filter(|s| !s.is_empty()) {
            crate::ipam::parse_cidr("cidr_block", c)?;
        }
        if resolve_ref(ctx, input, raw, ["cloudregion", "cloudregion_id"], "cloudregions").await?.is_none() {
            input.insert("cloudregion_id".into(), DEFAULT_REGION.into());
        }
        Ok(())
    }
    async fn validate_delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        if row_str(row, "id") == DEFAULT_VPC {
            return Err(Error::Forbidden("the default vpc cannot be deleted".into()));
        }
        refuse_if_used(ctx, row, "vpc", "wires_tbl", "vpc_id", "wires").await
    }
    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        add_names(ctx, rows, &cloudregion_spec(), "cloudregion").await
    }
}

#[async_trait]
impl Resource for Wires {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }
    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, raw: &Row, _o: &Owner) -> Result<(), Error> {
        require_system(ctx, self, "create")?;
        if resolve_ref(ctx, input, raw, ["zone", "zone_id"], "zones").await?.is_none() {
            return Err(Error::missing("zone"));
        }
        if resolve_ref(ctx, input, raw, ["vpc", "vpc_id"], "vpcs").await?.is_none() {
            input.insert("vpc_id".into(), DEFAULT_VPC.into());
        }
        check_sizes(input)
    }
    async fn validate_update(&self, _ctx: &Ctx, _row: &Row, patch: &mut Row, _raw: &Row) -> Result<(), Error> {
        check_sizes(patch)
    }
    async fn validate_delete(&self, ctx: &Ctx, row: &Row) -> Result<(), Error> {
        refuse_if_used(ctx, row, "wire", "networks_tbl", "wire_id", "networks").await
    }
    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        add_names(ctx, rows, &zone_spec(), "zone").await?;
        add_names(ctx, rows, &vpc_spec(), "vpc").await
    }
    async fn context_filter(&self, _ctx: &Ctx, plural: &str, id: &str) -> Result<Option<Condition>, Error> {
        Ok(match plural {
            "zones" => Some(eq(self.spec.table, "zone_id", id)),
            "vpcs" => Some(eq(self.spec.table, "vpc_id", id)),
            _ => None,
        })
    }
}

fn check_sizes(input: &Row) -> Result<(), Error> {
    int_field(input, "bandwidth", 0, 1_000_000)?;
    int_field(input, "mtu", 576, 9216)?;
    Ok(())
}
