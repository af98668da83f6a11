//! What the region calls: host agents (the contract of [`apis::compute`]), the scheduler and
//! glance. All with the region's own service token; agent calls also carry the task headers
//! so that the agent's callback reaches the task that made the call.

use std::sync::Arc;
use std::time::Duration;

use apis::Error;
use cloudcommon::auth::ServiceToken;
use cloudcommon::client::{ServiceSession, to_api_error};
use cloudcommon::resource::{Row, row_str};
use mcclient::{ApiRequest, Method};
use serde_json::Value;

pub struct Remote {
    session: Option<Arc<ServiceSession>>,
    http: reqwest::Client,
}

impl Remote {
    pub fn new(session: Option<Arc<ServiceSession>>) -> Remote {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Remote { session, http }
    }

    fn session(&self) -> Result<&Arc<ServiceSession>, Error> {
        self.session.as_ref().ok_or_else(|| Error::Unavailable("the region has no service session".into()))
    }

    /// Calls a host agent: `method <manager_uri><path>` with the task headers. The agent only
    /// acknowledges here; its result comes later as a callback of the task.
    pub async fn agent(
        &self,
        host: &Row,
        method: reqwest::Method,
        path: &str,
        headers: &[(&'static str, String)],
        body: Option<&Value>,
    ) -> Result<(), Error> {
        let base = row_str(host, "manager_uri").trim_end_matches('/');
        let name = row_str(host, "name");
        if base.is_empty() {
            return Err(Error::InvalidStatus(format!("host {name} has no manager_uri")));
        }
        let token = self.session()?.token().await?;
        let mut req = self.http.request(method, format!("{base}{path}")).header("X-Auth-Token", token);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(b) = body.filter(|b| !b.is_null()) {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| Error::Unavailable(format!("host {name} unreachable: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let details = body.get("details").and_then(Value::as_str).map(str::to_string).unwrap_or(body.to_string());
        Err(Error::Unavailable(format!("host {name} refused {path}: {} {details}", status.as_u16())))
    }

    /// `GET <manager_uri><path>` on a host agent, answered at once (no task): the agent's JSON.
    /// Unreachable, or any refusal: `Unavailable`; the agent's 404 stays a 404.
    pub async fn agent_get(&self, host: &Row, path: &str) -> Result<Value, Error> {
        let base = row_str(host, "manager_uri").trim_end_matches('/');
        let name = row_str(host, "name");
        if base.is_empty() {
            return Err(Error::InvalidStatus(format!("host {name} has no manager_uri")));
        }
        let token = self.session()?.token().await?;
        let resp = self
            .http
            .get(format!("{base}{path}"))
            .header("X-Auth-Token", token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("host {name} unreachable: {e}")))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let details = body.get("details").and_then(Value::as_str).map(str::to_string).unwrap_or(body.to_string());
        if status.as_u16() == 404 {
            return Err(Error::NotFound(format!("host {name}: {details}")));
        }
        Err(Error::Unavailable(format!("host {name} refused {path}: {} {details}", status.as_u16())))
    }

    /// `POST /scheduler`: candidates for `count` servers, reserved under `session_id`.
    pub async fn schedule(&self, input: Value) -> Result<Value, Error> {
        let s = self.session()?.session().await?;
        let req = ApiRequest::new(Method::Post, &["scheduler"]).with_body(serde_json::json!({"scheduler": input}));
        s.request(scheduler::SERVICE_TYPE, None, &req).await.map_err(to_api_error)
    }

    /// `POST /scheduler/clean-cache/<host>?session=<sid>`: the region committed what the
    /// session reserved; the scheduler reloads from the region and drops the session's
    /// reservation on that host (`host_id` empty: all of the session's).
    pub async fn scheduler_clean(&self, host_id: &str, session_id: Option<&str>) {
        let r = async {
            let s = self.session()?.session().await?;
            let mut req = if host_id.is_empty() {
                ApiRequest::new(Method::Post, &["scheduler", "clean-cache"])
            } else {
                ApiRequest::new(Method::Post, &["scheduler", "clean-cache", host_id])
            };
            if let Some(sid) = session_id {
                req = req.with_query(vec![("session".into(), sid.into())]);
            }
            s.request(scheduler::SERVICE_TYPE, None, &req).await.map_err(to_api_error)
        }
        .await;
        if let Err(e) = r {
            tracing::warn!(host_id, error = %e, "cannot clean the scheduler's cache");
        }
    }

    /// glance `GET /v1/images/<id>`: the image's metadata.
    pub async fn image(&self, id: &str) -> Result<Value, Error> {
        let s = self.session()?.session().await?;
        let req = ApiRequest::new(Method::Get, &["images", id]);
        let v = s.request("image", Some("v1"), &req).await.map_err(to_api_error)?;
        Ok(v.get("image").cloned().unwrap_or(v))
    }

    /// Where agents download an image from (glance's data URL).
    pub async fn image_url(&self, id: &str) -> Result<String, Error> {
        let s = self.session()?.session().await?;
        let base = s.service_url("image").map_err(to_api_error)?;
        let base = base.trim_end_matches('/');
        let base = if base.ends_with("/v1") { base.to_string() } else { format!("{base}/v1") };
        Ok(format!("{base}/images/{id}?download=true"))
    }
}

/// Scheduler service type, without depending on the scheduler crate.
mod scheduler {
    pub const SERVICE_TYPE: &str = "scheduler";
}
