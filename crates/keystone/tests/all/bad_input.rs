//! Bad input is refused with a 4xx and a Cloudpods error body, never a 500, and leaves
//! nothing behind.

use anyhow::Result;

use crate::common::*;

/// Sends `body` as-is, labelled JSON.
async fn raw(tc: &TestCloud, method: Method, path: &str, token: Option<&str>, body: &'static str) -> Result<Resp> {
    let mut req = tc.http.request(method, format!("{}{path}", tc.auth_url)).header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("X-Auth-Token", t);
    }
    send(req.body(body)).await
}

#[tokio::test]
async fn malformed_bodies_are_400() -> Result<()> {
    let (tc, admin) = start().await?;
    for body in ["{bad", "[1, 2]", "\"project\"", "{\"project\": ", "nul"] {
        let r = raw(&tc, Method::POST, "/projects", Some(&admin), body).await?;
        assert_error(&r, 400, "BadRequestError");
        let r = raw(&tc, Method::PUT, "/projects/system", Some(&admin), body).await?;
        assert_error(&r, 400, "BadRequestError");
        let r = raw(&tc, Method::POST, "/auth/tokens", None, body).await?;
        assert_error(&r, 400, "BadRequestError");
        let r = raw(&tc, Method::POST, "/users/sysadmin/metadata", Some(&admin), body).await?;
        assert_error(&r, 400, "BadRequestError");
    }
    for auth in [
        json!({}),
        json!({"auth": {}}),
        json!({"auth": {"identity": {"methods": ["password"]}}}),
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "sysadmin"}}}}}),
        json!({"auth": {"identity": {"methods": ["totp"]}}}),
        json!({"auth": {"identity": {"methods": ["token"], "token": {}}}}),
        json!({"auth": {"identity": {"methods": "password"}}}),
    ] {
        let r = issue(&tc, auth.clone()).await?;
        assert_error(&r, 400, "InputParameterError");
    }
    let r = issue(&tc, password_auth("sysadmin", &tc.admin_password, Some(json!({"galaxy": {}})))).await?;
    assert_error(&r, 400, "InputParameterError");
    tc.stop().await
}

#[tokio::test]
async fn invalid_fields_are_400_and_leave_nothing_behind() -> Result<()> {
    let (tc, admin) = start().await?;
    let long = "n".repeat(129);
    let cases = [
        json!({"project": {}}),
        json!({"project": {"description": "no name"}}),
        json!({"project": {"name": ""}}),
        json!({"project": "x"}),
        json!({"project": {"name": "x", "enabled": "x"}}),
        json!({"project": {"name": "x", "enabled": [true]}}),
        json!({"project": {"name": "x", "description": {"a": 1}}}),
        json!({"project": {"name": "x", "description": "d".repeat(257)}}),
        json!({"project": {"name": long}}),
    ];
    for body in cases {
        let r = tc.ks(Method::POST, "/projects", &admin, Some(body.clone())).await?;
        assert_error(&r, 400, "InputParameterError");
    }
    let r = tc.ks(Method::POST, "/users", &admin, Some(json!({"user": {"name": "u", "password": 5}}))).await?;
    assert_error(&r, 400, "InputParameterError");
    let r =
        tc.ks(Method::POST, "/users", &admin, Some(json!({"user": {"name": "u", "email": "e".repeat(200)}}))).await?;
    assert_error(&r, 400, "InputParameterError");
    let r =
        tc.ks(Method::POST, "/users", &admin, Some(json!({"user": {"name": "u", "is_system_account": "x"}}))).await?;
    assert_error(&r, 400, "InputParameterError");
    let total = get(&tc, "/projects?filter=name.in(x,u)", &admin).await?["total"].as_u64();
    assert_eq!(total, Some(0));
    assert_eq!(get(&tc, "/users?filter=name.equals(u)", &admin).await?["total"].as_u64(), Some(0));

    // The longest name allowed is fine.
    create_project(&tc, &admin, &"n".repeat(128)).await?;
    create_project(&tc, &admin, "dup").await?;
    create_project(&tc, &admin, "other").await?;
    let r = tc.ks(Method::POST, "/projects", &admin, Some(json!({"project": {"name": "dup"}}))).await?;
    assert_error(&r, 409, "DuplicateNameError");
    let r = tc.ks(Method::PUT, "/projects/other", &admin, Some(json!({"project": {"name": "dup"}}))).await?;
    assert_error(&r, 409, "DuplicateNameError");
    for update in [
        json!({"project": {"name": ""}}),
        json!({"project": {"enabled": "x"}}),
        json!({"project": {"name": long}}),
        json!({"project": {"tags": "x"}}),
    ] {
        let r = tc.ks(Method::PUT, "/projects/other", &admin, Some(update)).await?;
        assert_error(&r, 400, "InputParameterError");
    }
    let v = get(&tc, "/projects/other", &admin).await?;
    assert_eq!((v["project"]["name"].as_str(), v["project"]["enabled"].as_bool()), (Some("other"), Some(true)));
    tc.stop().await
}

#[tokio::test]
async fn unknown_things_are_404_and_bad_parameters_400() -> Result<()> {
    let (tc, admin) = start().await?;
    for (method, path) in [
        (Method::GET, "/projects/nosuch"),
        (Method::PUT, "/projects/nosuch"),
        (Method::DELETE, "/projects/nosuch"),
        (Method::GET, "/projects/nosuch/metadata"),
        (Method::POST, "/users/nosuch/unlock"),
        (Method::GET, "/nosuch"),
        (Method::GET, "/nosuch/x"),
        (Method::PUT, "/projects/system/users/nosuch/roles/member"),
        (Method::PUT, "/projects/system/users/sysadmin/roles/nosuch"),
        (Method::PUT, "/groups/nosuch/users/sysadmin"),
        (Method::GET, "/role_assignments?user.id=nosuch"),
        (Method::POST, "/users/sysadmin/nosuch"),
        (Method::GET, "/services/keystone/nosuch"),
    ] {
        let body =
            (method == Method::PUT && !path.contains("/roles/")).then(|| json!({"project": {"description": "x"}}));
        let r = tc.ks(method.clone(), path, &admin, body).await?;
        assert_error(&r, 404, "ResourceNotFoundError");
    }
    for query in ["limit=abc", "limit=-1", "limit=1.5", "offset=x", "offset=-3"] {
        let r = tc.ks(Method::GET, &format!("/projects?{query}"), &admin, None).await?;
        assert_error(&r, 400, "InputParameterError");
    }
    tc.stop().await
}

#[tokio::test]
async fn callers_cannot_choose_ids_except_region_names() -> Result<()> {
    let (tc, admin) = start().await?;
    let p = post(&tc, "/projects", &admin, json!({"project": {"name": "p1", "id": "chosen-id"}})).await?;
    assert_ne!(p["project"]["id"], "chosen-id", "{p}");
    let r = tc.ks(Method::GET, "/projects/chosen-id", &admin, None).await?;
    assert_error(&r, 404, "ResourceNotFoundError");
    // OpenStack regions are named by their id.
    let r = post(&tc, "/regions", &admin, json!({"region": {"id": "RegionTwo"}})).await?;
    assert_eq!((r["region"]["id"].as_str(), r["region"]["name"].as_str()), (Some("RegionTwo"), Some("RegionTwo")));
    tc.stop().await
}
