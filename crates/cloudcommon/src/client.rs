//! A service's own keystone session, and the action sink that posts to the logger.
//!
//! Each service logs in with its service account (admin in project `system`) the first time
//! it needs to, renews the token before it expires, and uses it to validate callers' tokens
//! and to call other services found in the catalog.

use std::sync::Arc;
use std::time::Duration;

use apis::Error;
use apis::logger::ActionRecord;
use async_trait::async_trait;
use mcclient::{AuthParams, Client, ResourceManager, Session};
use tokio::sync::Mutex;

use crate::actionlog::ActionSink;
use crate::auth::ServiceToken;

pub struct ServiceSession {
    client: Client,
    params: AuthParams,
    session: Mutex<Option<Session>>,
}

impl ServiceSession {
    pub fn new(auth_url: &str, user: &str, password: &str, project: &str, domain: &str) -> Arc<ServiceSession> {
        let client = Client::new(auth_url, Duration::from_secs(30), false);
        let params = AuthParams::password(user, domain, password).with_project(project, domain).with_source("srv");
        Arc::new(ServiceSession { client, params, session: Mutex::new(None) })
    }

    /// The logged-in session, logging in on first use.
    pub async fn session(&self) -> Result<Session, Error> {
        let mut guard = self.session.lock().await;
        if let Some(s) = guard.as_ref() {
            return Ok(s.clone());
        }
        let s = self.client.authenticate(&self.params).await.map_err(to_api_error)?;
        *guard = Some(s.clone());
        Ok(s)
    }
}

/// Converts an SDK error into the API error a service returns.
pub fn to_api_error(e: mcclient::Error) -> Error {
    match e {
        mcclient::Error::Http { status, class, details } => Error::from_body(status, &class, details),
        other => Error::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl ServiceToken for ServiceSession {
    async fn token(&self) -> Result<String, Error> {
        let s = self.session().await?;
        let t = s.fresh_token().await.map_err(to_api_error)?;
        Ok(t.id().to_string())
    }
}

const ACTIONS: ResourceManager = ResourceManager::new(apis::identity::SERVICE_TYPE_LOG, "action", "actions");

/// Posts action records to the logger service found in the catalog.
pub struct HttpActionSink(pub Arc<ServiceSession>);

#[async_trait]
impl ActionSink for HttpActionSink {
    async fn deliver(&self, records: Vec<ActionRecord>) -> Result<(), Error> {
        let session = self.0.session().await?;
        for r in records {
            let body = serde_json::to_value(&r).map_err(|e| Error::Internal(e.to_string()))?;
            ACTIONS.create(&session, body).await.map_err(to_api_error)?;
        }
        Ok(())
    }
}
