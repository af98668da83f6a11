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

/// An agent's answer to a task (`POST <notify url>`): `result`'s body, or the error body
/// for `Err(reason)`, with the agent's token and `X-Task-Id`. Retried with backoff (0.2 s,
/// doubling: about 6 s in all) so that a service restarting meanwhile still gets it.
pub async fn post_task_callback(
    http: &reqwest::Client,
    token: &dyn ServiceToken,
    task_id: &str,
    url: &str,
    result: Result<serde_json::Value, String>,
) {
    let body = match result {
        Ok(v) => v,
        Err(reason) => {
            tracing::warn!(task_id, "call failed: {reason}");
            serde_json::to_value(apis::task::TaskCallback::error(reason)).unwrap_or_default()
        }
    };
    for attempt in 0..5 {
        let token = token.token().await.unwrap_or_default();
        let r = http
            .post(url)
            .header("X-Auth-Token", token)
            .header(apis::task::TASK_ID_HEADER, task_id)
            .json(&body)
            .send()
            .await;
        match r {
            Ok(resp) if resp.status().is_success() => return,
            Ok(resp) => tracing::warn!(task_id, attempt, "callback answered {}", resp.status()),
            Err(e) => tracing::warn!(task_id, attempt, "callback failed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
    }
}
