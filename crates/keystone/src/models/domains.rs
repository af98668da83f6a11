//! Domains: the top of the identity tree. `default` always exists.

use std::sync::Arc;

use apis::Error;
use apis::identity::DEFAULT_DOMAIN_ID;
use async_trait::async_trait;
use cloudcommon::resource::{Ctx, Resource, ResourceSpec, Row, row_bool, row_str};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};

use super::SERVICE;
use crate::Keystone;

pub fn spec() -> ResourceSpec {
    ResourceSpec::new(SERVICE, "domain", "domains", "domains_tbl").enabled()
}

pub struct Domains {
    spec: ResourceSpec,
    ks: Arc<Keystone>,
}

impl Domains {
    pub fn new(ks: Arc<Keystone>) -> Self {
        Domains { spec: spec(), ks }
    }
}

#[async_trait]
impl Resource for Domains {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn post_update(&self, _ctx: &Ctx, row: &Row, _raw: &Row) -> Result<(), Error> {
        if !row_bool(row, "enabled") {
            self.ks.tokens.revoke_scope(row_str(row, "id")).await?;
            for u in
                cloudcommon::resource::store::select(&self.ks.db, &super::users::spec(), in_domain(row_str(row, "id")))
                    .await?
            {
                self.ks.tokens.revoke_user(row_str(&u, "id")).await?;
            }
        }
        Ok(())
    }

    async fn validate_delete(&self, _ctx: &Ctx, row: &Row) -> Result<(), Error> {
        let id = row_str(row, "id");
        if id == DEFAULT_DOMAIN_ID {
            return Err(Error::Forbidden("the default domain cannot be deleted".into()));
        }
        if row_bool(row, "enabled") {
            return Err(Error::InvalidStatus(format!("disable domain {} before deleting it", row_str(row, "name"))));
        }
        for (spec, what) in
            [(super::projects::spec(), "projects"), (super::users::spec(), "users"), (super::groups::spec(), "groups")]
        {
            if !cloudcommon::resource::store::select(&self.ks.db, &spec, in_domain(id)).await?.is_empty() {
                return Err(Error::InvalidStatus(format!("domain {} still has {what}", row_str(row, "name"))));
            }
        }
        Ok(())
    }

    fn visible_outside_scope(&self, cred: &cloudcommon::auth::UserCred, row: &Row, action: &str) -> bool {
        action == "get" && (row_str(row, "id") == cred.project_domain_id || row_str(row, "id") == cred.domain_id)
    }
}

pub fn in_domain(id: &str) -> Condition {
    Condition::all().add(Expr::col(Alias::new("domain_id")).eq(id))
}
