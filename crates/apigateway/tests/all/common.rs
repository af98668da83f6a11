//! A cookie-keeping client of the gateway, like a browser.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
pub use reqwest::{Method, StatusCode};
pub use serde_json::{Value, json};
pub use test_harness::{Resp, TestCloud, assert_error, assert_error_body};

/// A fresh cloud and the sysadmin's token.
pub async fn start() -> Result<(TestCloud, String)> {
    let tc = TestCloud::start().await?;
    let admin = tc.admin_token().await?;
    Ok((tc, admin))
}

/// A client that keeps the gateway's cookies and sends the CSRF header on writes.
pub struct Browser {
    pub base: String,
    http: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(tc: &TestCloud) -> Browser {
        Browser {
            base: tc.url("apigateway"),
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client"),
            cookies: BTreeMap::new(),
        }
    }

    pub fn csrf(&self) -> Option<String> {
        self.cookies.get("cloudpods_csrf").cloned()
    }

    /// A request with the session cookie, and the CSRF header from the csrf cookie on writes.
    pub async fn send(&mut self, method: Method, path: &str, body: Option<Value>) -> Result<Resp> {
        let csrf = if method == Method::GET { None } else { self.csrf() };
        self.send_with(method, path, body, csrf.as_deref()).await
    }

    /// A request with the session cookie and exactly this CSRF header (or none).
    pub async fn send_with(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: Option<&str>,
    ) -> Result<Resp> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.finish(req, csrf).await
    }

    pub async fn finish(&mut self, mut req: reqwest::RequestBuilder, csrf: Option<&str>) -> Result<Resp> {
        if !self.cookies.is_empty() {
            let c: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("Cookie", c.join("; "));
        }
        if let Some(t) = csrf {
            req = req.header("X-CSRF-Token", t);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        for sc in headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let first = sc.split(';').next().unwrap_or_default();
            if let Some((k, v)) = first.split_once('=') {
                if v.is_empty() || sc.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Resp { status, headers, body })
    }

    pub fn builder(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    pub async fn login(&mut self, user: &str, password: &str, project: Option<&str>) -> Result<Resp> {
        let mut body = json!({"username": user, "password": password});
        if let Some(p) = project {
            body["project"] = json!(p);
        }
        self.send_with(Method::POST, "/api/v1/auth/login", Some(body), None).await
    }

    /// Logs in and fails the test unless it worked.
    pub async fn must_login(&mut self, user: &str, password: &str) -> Result<Value> {
        let r = self.login(user, password, None).await?;
        anyhow::ensure!(r.status == StatusCode::OK, "login {user}: {} {}", r.status, r.body);
        Ok(r.body)
    }

    pub async fn ok(&mut self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let r = self.send(method.clone(), path, body).await?;
        anyhow::ensure!(r.status.is_success(), "{method} {path}: {} {}", r.status, r.body);
        Ok(r.body)
    }
}

/// A gateway request with a bearer token (API clients).
pub async fn bearer(tc: &TestCloud, method: Method, path: &str, token: &str, body: Option<Value>) -> Result<Resp> {
    tc.call(method, &format!("{}{path}", tc.url("apigateway")), Some(token), body).await
}

pub fn names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        list["data"].as_array().into_iter().flatten().filter_map(|r| r["name"].as_str().map(str::to_string)).collect();
    v.sort();
    v
}
