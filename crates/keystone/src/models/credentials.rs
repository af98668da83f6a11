//! Credentials: typed blobs (aksk, totp, ...) owned by a user in a project. A user sees its
//! own; administrators see those in their scope.

use std::sync::Arc;

use apis::Error;
use async_trait::async_trait;
use cloudcommon::auth::UserCred;
use cloudcommon::resource::{Col, Ctx, NameScope, Owner, OwnerScope, Resource, ResourceSpec, Row, row_str};
use serde_json::Value;

use super::SERVICE;
use crate::Keystone;

pub fn spec() -> ResourceSpec {
    ResourceSpec::new(SERVICE, "credential", "credentials", "credentials_tbl")
        .owner(OwnerScope::Project)
        .name_scope(NameScope::None)
        .col(Col::str("user_id", 128).create().index())
        .col(Col::str("type", 32).create())
        .col(Col::text("blob").rw())
}

const TYPES: [&str; 7] = ["aksk", "totp", "recovery_secret", "oidc", "enc_key", "container_image", "container_secret"];

pub struct Credentials {
    spec: ResourceSpec,
    _ks: Arc<Keystone>,
}

impl Credentials {
    pub fn new(ks: Arc<Keystone>) -> Self {
        Credentials { spec: spec(), _ks: ks }
    }
}

#[async_trait]
impl Resource for Credentials {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, _raw: &Row, _owner: &Owner) -> Result<(), Error> {
        let ty = row_str(input, "type").to_string();
        if !TYPES.contains(&ty.as_str()) && ty != "ec2" && ty != "cert" {
            return Err(Error::invalid("type", format!("{ty:?} is not one of {}", TYPES.join(", "))));
        }
        if let Some(b) = input.get("blob").filter(|b| !b.is_string()) {
            let s = b.to_string();
            input.insert("blob".into(), Value::String(s));
        }
        let uid = match row_str(input, "user_id") {
            "" => ctx.cred.user_id.clone(),
            u => {
                let users = ctx.svc.resource("users")?;
                let user =
                    cloudcommon::resource::dispatch::fetch_authorized(ctx, users.as_ref(), u, "get", None).await?;
                row_str(&user, "id").to_string()
            }
        };
        input.insert("user_id".into(), uid.clone().into());
        if row_str(input, "name").is_empty() {
            input.insert("name".into(), format!("{ty}-{uid}").into());
        }
        Ok(())
    }

    fn visible_outside_scope(&self, cred: &UserCred, row: &Row, _action: &str) -> bool {
        row_str(row, "user_id") == cred.user_id
    }
}
