//! Running a [`Plan`]: log in, resolve names to ids, send the calls, print the answers.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use mcclient::{ApiRequest, AuthParams, Client, ListResult, Session, encode_segment};
use serde_json::Value;

use crate::cli::GlobalOpts;
use crate::output::{Format, render_list, render_object};
use crate::plan::{Call, Lookup, Part, Plan, Show, UsageError};

/// The login parameters from the global options.
pub fn auth_params(g: &GlobalOpts) -> Result<AuthParams, UsageError> {
    let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let params = match given(&g.os_auth_token) {
        Some(token) => AuthParams::token(token),
        None => {
            let user = given(&g.os_username)
                .ok_or_else(|| UsageError("missing --os-username (or OS_USERNAME), or --os-auth-token".into()))?;
            let password =
                given(&g.os_password).ok_or_else(|| UsageError("missing --os-password (or OS_PASSWORD)".into()))?;
            AuthParams::password(user, &g.os_domain_name, password)
        }
    };
    let params = match given(&g.os_project_name) {
        Some(project) => params.with_project(project, &g.os_project_domain),
        None => params,
    };
    Ok(params.with_source("cli"))
}

/// Logs in as the global options say.
pub async fn login(g: &GlobalOpts, params: &AuthParams) -> anyhow::Result<Session> {
    let auth_url = g
        .os_auth_url
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| UsageError("missing --os-auth-url (or OS_AUTH_URL)".into()))?;
    let client = Client::new(auth_url, Duration::from_secs(g.timeout), g.debug);
    let session = client.authenticate(params).await?;
    let session = session.with_interface(g.os_endpoint_type.as_str());
    Ok(match g.os_region_name.as_deref().filter(|r| !r.is_empty()) {
        Some(region) => session.with_region(region),
        None => session,
    })
}

/// Resolves names to ids, caching the answers of one run.
struct Resolver<'s> {
    session: &'s Session,
    cache: HashMap<(&'static str, &'static str, String), String>,
}

/// The id in a `GET /<plural>/<name>` answer (`{"<keyword>":{"id":..}}` or `{"id":..}`).
fn id_in(answer: &Value) -> Option<String> {
    if let Some(id) = answer.get("id").and_then(Value::as_str) {
        return Some(id.to_string());
    }
    let obj = answer.as_object()?;
    obj.values().find_map(|v| v.get("id").and_then(Value::as_str)).map(str::to_string)
}

impl Resolver<'_> {
    async fn id(&mut self, call: &Call, l: &Lookup) -> anyhow::Result<String> {
        let key = (call.service, l.plural, l.name.clone());
        if let Some(id) = self.cache.get(&key) {
            return Ok(id.clone());
        }
        let req = ApiRequest::new(mcclient::Method::Get, &[l.plural, &l.name]);
        let answer = self.session.request(call.service, call.version, &req).await?;
        let id = id_in(&answer).with_context(|| format!("no id in the answer for {} {}", l.plural, l.name))?;
        self.cache.insert(key, id.clone());
        Ok(id)
    }

    async fn part(&mut self, call: &Call, p: &Part) -> anyhow::Result<String> {
        match p {
            Part::Lit(s) => Ok(s.clone()),
            Part::Lookup(l) => self.id(call, l).await,
        }
    }

    /// The call with every lookup replaced by its id.
    async fn request(&mut self, call: &Call) -> anyhow::Result<ApiRequest> {
        let mut path = Vec::with_capacity(call.path.len());
        for p in &call.path {
            path.push(encode_segment(&self.part(call, p).await?));
        }
        let mut query = Vec::with_capacity(call.query.len());
        for (k, v) in &call.query {
            query.push((k.clone(), self.part(call, v).await?));
        }
        let mut body = call.body.clone();
        for (ptr, l) in &call.body_lookups {
            let id = self.id(call, l).await?;
            if let Some(slot) = body.as_mut().and_then(|b| b.pointer_mut(ptr)) {
                *slot = Value::String(id);
            }
        }
        Ok(ApiRequest { method: call.method, path: path.join("/"), query, body })
    }
}

/// Sends every call of the plan and prints each answer. A plan of several calls (a
/// `delete` of several ids) goes on past a failure, printing it, and fails at the end.
pub async fn run(session: &Session, plan: &Plan, format: Format) -> anyhow::Result<()> {
    let mut resolver = Resolver { session, cache: HashMap::new() };
    let mut failed = 0;
    for call in &plan.calls {
        let result = async {
            let req = resolver.request(call).await?;
            let answer = session.request(call.service, call.version, &req).await?;
            render(&plan.show, &answer, format)
        }
        .await;
        match result {
            Ok(text) => print!("{text}"),
            Err(e) if plan.calls.len() > 1 => {
                eprintln!("Error: {e:#}");
                failed += 1;
            }
            Err(e) => return Err(e),
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} calls failed", plan.calls.len());
    }
    Ok(())
}

/// The text printed for one answer.
pub fn render(show: &Show, answer: &Value, format: Format) -> anyhow::Result<String> {
    Ok(match show {
        Show::List { key, columns } => render_list(&ListResult::parse(key, answer)?, columns, format),
        Show::Object { unwrap } => {
            let mut v = answer;
            if let Some(path) = unwrap {
                let inner = path.split('.').try_fold(answer, |cur, k| cur.get(k));
                if let Some(inner) = inner.filter(|i| i.is_object()) {
                    v = inner;
                }
            }
            render_object(v, format)
        }
    })
}
