//! logger's integration tests: a real in-process `aio`; records are posted and listed over
//! HTTP with tokens keystone issued.

use anyhow::{Context, Result, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_harness::{Resp, TestCloud};

fn record(obj: &str, owner_project: &str, success: bool) -> Value {
    json!({"action": {
        "obj_type": "server", "obj_id": obj, "obj_name": obj, "action": "start", "success": success,
        "service": "region", "user_id": "u-1", "user": "operator", "tenant_id": "system", "tenant": "system",
        "owner_tenant_id": owner_project, "owner_domain_id": "default", "notes": "by hand",
    }})
}

async fn logger(tc: &TestCloud, method: Method, path: &str, token: &str, body: Option<Value>) -> Result<Resp> {
    tc.call(method, &format!("{}{path}", tc.url("logger")), Some(token), body).await
}

async fn ks_ok(tc: &TestCloud, method: Method, path: &str, token: &str, body: Value) -> Result<Value> {
    let r = tc.ks(method, path, token, Some(body)).await?;
    if !r.status.is_success() {
        bail!("{path}: {} {}", r.status, r.body);
    }
    Ok(r.body)
}

fn obj_ids(list: &Value) -> Vec<&str> {
    list["actions"].as_array().into_iter().flatten().filter_map(|a| a["obj_id"].as_str()).collect()
}

#[tokio::test]
async fn admins_post_records_and_members_see_their_projects_only() -> Result<()> {
    let tc = TestCloud::start().await?;
    let admin = tc.admin_token().await?;
    let mut projects = vec![];
    for name in ["demo", "demo2"] {
        let b = ks_ok(&tc, Method::POST, "/projects", &admin, json!({"project": {"name": name}})).await?;
        projects.push(b["project"]["id"].as_str().context("project id")?.to_string());
    }
    let (demo, demo2) = (&projects[0], &projects[1]);
    let user = json!({"user": {"name": "alice", "password": "alice-pw", "project": "demo", "role": "member"}});
    ks_ok(&tc, Method::POST, "/users", &admin, user).await?;
    let alice = tc.login("alice", "alice-pw", Some("demo")).await?;

    let r = logger(&tc, Method::POST, "/actions", &admin, Some(record("vm-a", demo, true))).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let a = &r.body["action"];
    assert_eq!((a["tenant_id"].as_str(), a["actor_tenant_id"].as_str()), (Some(demo.as_str()), Some("system")));
    assert_eq!(
        (a["name"].as_str(), a["severity"].as_str(), a["user"].as_str()),
        (Some("vm-a"), Some("INFO"), Some("operator"))
    );
    assert!(a["ops_time"].as_str().is_some_and(|t| t.ends_with('Z')), "{a}");
    let r = logger(&tc, Method::POST, "/actions", &admin, Some(record("vm-a", demo, false))).await?;
    assert_eq!(r.body["action"]["severity"], "ERROR");
    let r = logger(&tc, Method::POST, "/actions", &admin, Some(record("vm-b", demo2, true))).await?;
    let hidden = r.body["action"]["id"].as_str().context("record id")?.to_string();

    for bad in [json!({"action": {"obj_type": "server"}}), json!({"action": {"action": "x", "obj_type": ""}})] {
        let r = logger(&tc, Method::POST, "/actions", &admin, Some(bad)).await?;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    }

    let all = logger(&tc, Method::GET, "/actions?obj_type=server", &admin, None).await?;
    assert_eq!(obj_ids(&all.body), ["vm-b", "vm-a", "vm-a"], "newest first: {}", all.body);
    let mine = logger(&tc, Method::GET, "/actions?obj_type=server", &alice, None).await?;
    assert_eq!(obj_ids(&mine.body), ["vm-a", "vm-a"], "{}", mine.body);
    assert_eq!(mine.body["total"], 2);
    let failed = logger(&tc, Method::GET, "/actions?obj_type=server&success=false", &alice, None).await?;
    assert_eq!(failed.body["total"], 1);
    let r = logger(&tc, Method::GET, &format!("/actions/{hidden}"), &alice, None).await?;
    assert_eq!((r.status, r.body["class"].as_str()), (StatusCode::NOT_FOUND, Some("ResourceNotFoundError")));
    let r = logger(&tc, Method::GET, "/actions?scope=system", &alice, None).await?;
    assert_eq!((r.status, r.body["class"].as_str()), (StatusCode::FORBIDDEN, Some("ForbiddenError")));
    // Members read the trail; only services and administrators write it.
    for owner in [demo, demo2] {
        let mut forged = record("vm-x", owner, true);
        forged["action"]["tenant_id"] = demo.as_str().into();
        let r = logger(&tc, Method::POST, "/actions", &alice, Some(forged)).await?;
        assert_eq!((r.status, r.body["class"].as_str()), (StatusCode::FORBIDDEN, Some("ForbiddenError")));
    }
    let after = logger(&tc, Method::GET, "/actions?obj_id=vm-x", &admin, None).await?;
    assert_eq!(after.body["total"], 0);
    tc.stop().await
}
