//! Identity resources through the generic dispatcher and keystone's own routes: create,
//! list, show, update, delete of every kind, memberships and grants, the catalog.

use anyhow::{Context, Result};

use crate::common::*;

#[tokio::test]
async fn projects_crud_lookup_and_soft_delete() -> Result<()> {
    let (tc, admin) = start().await?;
    let b = post(&tc, "/projects", &admin, json!({"project": {"name": "p1", "description": "first"}})).await?;
    let id = id_of(&b, "project")?;
    let p = &b["project"];
    assert_eq!((p["domain_id"].as_str(), p["domain"].as_str()), (Some("default"), Some("Default")), "{p}");
    assert_eq!((p["enabled"].as_bool(), p["description"].as_str()), (Some(true), Some("first")));
    assert!(p.get("deleted").is_none() && p.get("deleted_at").is_none(), "{p}");

    for key in [id.as_str(), "p1"] {
        let v = get(&tc, &format!("/projects/{key}"), &admin).await?;
        assert_eq!(v["project"]["id"], id.as_str());
    }
    assert_eq!(tc.ks(Method::HEAD, "/projects/p1", &admin, None).await?.status, StatusCode::OK);

    let v = put(&tc, "/projects/p1", &admin, Some(json!({"project": {"description": "changed"}}))).await?;
    assert_eq!(v["project"]["description"], "changed");
    assert_eq!(v["project"]["update_version"], 1);
    let v =
        ok(&tc, Method::PATCH, &format!("/projects/{id}"), &admin, Some(json!({"project": {"name": "p1b"}}))).await?;
    assert_eq!(v["project"]["name"], "p1b");
    // Columns the API does not accept are ignored, not written.
    let v = put(
        &tc,
        "/projects/p1b",
        &admin,
        Some(json!({"project": {"id": "x", "created_at": "2000-01-01T00:00:00.000000Z", "deleted": true}})),
    )
    .await?;
    assert_eq!(
        (v["project"]["id"].as_str(), v["project"]["created_at"].as_str()),
        (Some(id.as_str()), p["created_at"].as_str())
    );

    let list = get(&tc, "/projects", &admin).await?;
    let listed = names(&list, "projects");
    assert!(listed.contains(&"p1b".to_string()) && listed.contains(&"system".to_string()), "{listed:?}");
    assert_eq!(list["total"].as_u64(), Some(listed.len() as u64));

    let v = ok(&tc, Method::DELETE, "/projects/p1b", &admin, None).await?;
    assert_eq!(v["project"]["id"], id.as_str());
    assert_error(&tc.ks(Method::GET, &format!("/projects/{id}"), &admin, None).await?, 404, "ResourceNotFoundError");
    assert_error(&tc.ks(Method::DELETE, &format!("/projects/{id}"), &admin, None).await?, 404, "ResourceNotFoundError");
    assert!(!names(&get(&tc, "/projects", &admin).await?, "projects").contains(&"p1b".to_string()));
    // The name of a deleted project can be used again.
    let again = create_project(&tc, &admin, "p1b").await?;
    assert_ne!(again, id);

    assert_error(&tc.ks(Method::DELETE, "/projects/system", &admin, None).await?, 403, "ForbiddenError");
    let r = tc.ks(Method::PUT, "/projects/system", &admin, Some(json!({"project": {"enabled": false}}))).await?;
    assert_error(&r, 403, "ForbiddenError");
    tc.stop().await
}

#[tokio::test]
async fn users_crud_and_password_change_revokes_tokens() -> Result<()> {
    let (tc, admin) = start().await?;
    create_project(&tc, &admin, "demo").await?;
    let b = post(
        &tc,
        "/users",
        &admin,
        json!({"user": {"name": "dave", "password": "dave-pw1", "email": "dave@example.com",
            "project": "demo", "role": "member"}}),
    )
    .await?;
    let dave = id_of(&b, "user")?;
    let u = &b["user"];
    assert_eq!(
        (u["email"].as_str(), u["domain"].as_str(), u["enabled"].as_bool()),
        (Some("dave@example.com"), Some("Default"), Some(true))
    );
    for secret in ["password", "failed_auth_count", "locked_until"] {
        assert!(u.get(secret).is_none(), "{secret} shown: {u}");
    }
    let members = get(&tc, "/projects/demo/users", &admin).await?;
    assert_eq!(names(&members, "users"), ["dave"]);
    let mine = get(&tc, &format!("/users/{dave}/projects"), &admin).await?;
    assert_eq!(names(&mine, "projects"), ["demo"]);

    let t1 = tc.login("dave", "dave-pw1", Some("demo")).await?;
    assert_eq!(get(&tc, "/users/dave", &t1).await?["user"]["id"], dave.as_str());

    put(&tc, "/users/dave", &admin, Some(json!({"user": {"password": "dave-pw2", "displayname": "Dave"}}))).await?;
    assert_error(&tc.ks(Method::GET, "/users/dave", &t1, None).await?, 401, "UnauthorizedError");
    assert_error(&issue(&tc, password_auth("dave", "dave-pw1", None)).await?, 401, "InvalidCredentialError");
    let t2 = tc.login("dave", "dave-pw2", Some("demo")).await?;
    assert_eq!(get(&tc, "/users/dave", &t2).await?["user"]["displayname"], "Dave");

    // Disabling a user revokes its tokens and refuses logins; enabling lets it back in.
    let v = ok(&tc, Method::POST, "/users/dave/disable", &admin, None).await?;
    assert_eq!(v["user"]["enabled"], false);
    assert_error(&tc.ks(Method::GET, "/users/dave", &t2, None).await?, 401, "UnauthorizedError");
    assert_error(&issue(&tc, password_auth("dave", "dave-pw2", None)).await?, 401, "UnauthorizedError");
    ok(&tc, Method::POST, "/users/dave/enable", &admin, None).await?;
    tc.login("dave", "dave-pw2", Some("demo")).await?;

    let r = tc.ks(Method::POST, "/users", &admin, Some(json!({"user": {"name": "eve", "password": "short"}}))).await?;
    assert_error(&r, 400, "InputParameterError");
    assert_error(&tc.ks(Method::DELETE, "/users/sysadmin", &admin, None).await?, 403, "ForbiddenError");
    let r = tc.ks(Method::PUT, "/users/sysadmin", &admin, Some(json!({"user": {"enabled": false}}))).await?;
    assert_error(&r, 403, "ForbiddenError");

    ok(&tc, Method::DELETE, "/users/dave", &admin, None).await?;
    assert_error(&tc.ks(Method::GET, &format!("/users/{dave}"), &admin, None).await?, 404, "ResourceNotFoundError");
    assert_error(&issue(&tc, password_auth("dave", "dave-pw2", None)).await?, 401, "InvalidCredentialError");
    assert!(names(&get(&tc, "/projects/demo/users", &admin).await?, "users").is_empty());
    tc.stop().await
}

#[tokio::test]
async fn group_roles_reach_their_members() -> Result<()> {
    let (tc, admin) = start().await?;
    create_project(&tc, &admin, "demo").await?;
    let gina = create_user(&tc, &admin, "gina", "gina-pw", None).await?;
    let b = post(&tc, "/groups", &admin, json!({"group": {"name": "ops", "description": "operators"}})).await?;
    let ops = id_of(&b, "group")?;
    assert_eq!(b["group"]["domain"], "Default");
    put(&tc, "/groups/ops", &admin, Some(json!({"group": {"description": "on call"}}))).await?;

    // No role yet: gina cannot get a token for demo.
    assert!(tc.login("gina", "gina-pw", Some("demo")).await.is_err());
    let r = tc.ks(Method::PUT, "/groups/ops/users/gina", &admin, None).await?;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        tc.ks(Method::HEAD, &format!("/groups/{ops}/users/{gina}"), &admin, None).await?.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(names(&get(&tc, "/groups/ops/users", &admin).await?, "users"), ["gina"]);
    assert_eq!(names(&get(&tc, "/users/gina/groups", &admin).await?, "groups"), ["ops"]);

    let r = tc.ks(Method::PUT, "/projects/demo/groups/ops/roles/member", &admin, None).await?;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = tc.ks(Method::GET, "/projects/demo/groups/ops/roles/member", &admin, None).await?;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let roles = get(&tc, "/projects/demo/groups/ops/roles", &admin).await?;
    assert_eq!(names(&roles, "roles"), ["member"]);

    let direct = get(&tc, &format!("/role_assignments?group.id={ops}"), &admin).await?;
    let list = direct["role_assignments"].as_array().context("no list")?;
    assert_eq!(list.len(), 1, "{direct}");
    assert_eq!((list[0]["group"]["name"].as_str(), list[0]["role"]["name"].as_str()), (Some("ops"), Some("member")));
    assert_eq!(list[0]["scope"]["project"]["name"], "demo");

    let eff = get(&tc, &format!("/role_assignments?user.id={gina}&effective"), &admin).await?;
    let list = eff["role_assignments"].as_array().context("no list")?;
    assert_eq!(list.len(), 1, "{eff}");
    assert_eq!(list[0]["user"]["name"], "gina");
    assert_eq!(list[0]["role"]["name"], "member");
    assert_eq!(list[0]["scope"]["project"]["name"], "demo");
    assert_eq!(list[0]["links"]["membership"], format!("/v3/groups/{ops}/users/{gina}").as_str());

    let t = tc.login("gina", "gina-pw", Some("demo")).await?;
    let v = validate(&tc, &t, &t).await?;
    assert_eq!(v.body["token"]["roles"][0]["name"], "member");

    // Leaving the group takes the role away and revokes the tokens it gave.
    let r = tc.ks(Method::DELETE, "/groups/ops/users/gina", &admin, None).await?;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_error(&tc.ks(Method::GET, "/projects", &t, None).await?, 401, "UnauthorizedError");
    assert!(tc.login("gina", "gina-pw", Some("demo")).await.is_err());
    assert_error(&tc.ks(Method::DELETE, "/groups/ops/users/gina", &admin, None).await?, 404, "ResourceNotFoundError");

    ok(&tc, Method::DELETE, "/groups/ops", &admin, None).await?;
    assert!(
        get(&tc, "/role_assignments?project=demo", &admin).await?["role_assignments"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    tc.stop().await
}

#[tokio::test]
async fn roles_and_policies_decide_what_a_token_allows() -> Result<()> {
    let (tc, admin) = start().await?;
    create_project(&tc, &admin, "demo").await?;
    let b = post(&tc, "/roles", &admin, json!({"role": {"name": "auditor", "description": "reads users"}})).await?;
    assert_eq!(b["role"]["domain"], "Default");
    put(&tc, "/roles/auditor", &admin, Some(json!({"role": {"description": "reads all users"}}))).await?;
    let roles = names(&get(&tc, "/roles", &admin).await?, "roles");
    for r in ["admin", "member", "reader", "auditor"] {
        assert!(roles.contains(&r.to_string()), "{r} missing from {roles:?}");
    }
    assert_error(&tc.ks(Method::DELETE, "/roles/member", &admin, None).await?, 403, "ForbiddenError");

    create_user(&tc, &admin, "frank", "frank-pw", Some(("demo", "auditor"))).await?;
    let frank = tc.login("frank", "frank-pw", Some("demo")).await?;
    assert_error(&tc.ks(Method::GET, "/users", &frank, None).await?, 403, "ForbiddenError");

    let b = post(
        &tc,
        "/policies",
        &admin,
        json!({"policy": {"name": "user-lister", "scope": "domain",
            "blob": {"identity": {"users": {"list": "allow", "get": "allow"}}}}}),
    )
    .await?;
    assert_eq!((b["policy"]["type"].as_str(), b["policy"]["scope"].as_str()), (Some("user-lister"), Some("domain")));
    let r = tc
        .ks(
            Method::POST,
            "/policies",
            &admin,
            Some(json!({"policy": {"name": "bad", "scope": "project", "blob": {"identity": "maybe"}}})),
        )
        .await?;
    assert_error(&r, 400, "InputParameterError");
    let r = tc
        .ks(
            Method::POST,
            "/policies",
            &admin,
            Some(json!({"policy": {"name": "bad", "scope": "galaxy", "blob": {"*": "allow"}}})),
        )
        .await?;
    assert_error(&r, 400, "InputParameterError");

    // Binding the policy to the role changes what frank's existing token may do.
    post(&tc, "/roles/auditor/add-policy", &admin, json!({"policy_id": "user-lister"})).await?;
    let users = names(&get(&tc, "/users", &frank).await?, "users");
    assert!(users.contains(&"sysadmin".to_string()) && users.contains(&"frank".to_string()), "{users:?}");
    let p = get(&tc, "/auth/policies", &frank).await?;
    assert_eq!(p["policies"]["domain"][0]["name"], "user-lister", "{p}");
    let r = tc.ks(Method::POST, "/users", &frank, Some(json!({"user": {"name": "mallory"}}))).await?;
    assert_error(&r, 403, "ForbiddenError");

    post(&tc, "/roles/auditor/remove-policy", &admin, json!({"policy_id": "user-lister"})).await?;
    assert_error(&tc.ks(Method::GET, "/users", &frank, None).await?, 403, "ForbiddenError");
    let r =
        tc.ks(Method::POST, "/roles/auditor/remove-policy", &admin, Some(json!({"policy_id": "user-lister"}))).await?;
    assert_error(&r, 404, "ResourceNotFoundError");

    ok(&tc, Method::DELETE, "/policies/user-lister", &admin, None).await?;
    assert_error(&tc.ks(Method::DELETE, "/policies/sysadmin", &admin, None).await?, 403, "ForbiddenError");
    // Deleting the role removes frank's only grant: his token stops working.
    ok(&tc, Method::DELETE, "/roles/auditor", &admin, None).await?;
    assert_error(&tc.ks(Method::GET, "/projects", &frank, None).await?, 401, "UnauthorizedError");
    tc.stop().await
}

#[tokio::test]
async fn domains_are_deleted_only_when_disabled_and_empty() -> Result<()> {
    let (tc, admin) = start().await?;
    let b = post(&tc, "/domains", &admin, json!({"domain": {"name": "d1"}})).await?;
    let d1 = id_of(&b, "domain")?;
    assert_eq!(b["domain"]["enabled"], true);
    assert_error(&tc.ks(Method::DELETE, "/domains/d1", &admin, None).await?, 409, "InvalidStatusError");

    let b = post(&tc, "/projects", &admin, json!({"project": {"name": "dp", "domain_id": d1}})).await?;
    assert_eq!((b["project"]["domain_id"].as_str(), b["project"]["domain"].as_str()), (Some(d1.as_str()), Some("d1")));
    // Names are unique per domain only.
    post(&tc, "/projects", &admin, json!({"project": {"name": "dp"}})).await?;

    let v = put(&tc, "/domains/d1", &admin, Some(json!({"domain": {"enabled": false}}))).await?;
    assert_eq!(v["domain"]["enabled"], false);
    assert_error(&tc.ks(Method::DELETE, "/domains/d1", &admin, None).await?, 409, "InvalidStatusError");
    ok(&tc, Method::DELETE, &format!("/projects/{}", id_of(&b, "project")?), &admin, None).await?;
    ok(&tc, Method::DELETE, "/domains/d1", &admin, None).await?;
    assert_error(&tc.ks(Method::GET, &format!("/domains/{d1}"), &admin, None).await?, 404, "ResourceNotFoundError");

    assert_error(&tc.ks(Method::DELETE, "/domains/default", &admin, None).await?, 403, "ForbiddenError");
    assert_eq!(names(&get(&tc, "/domains", &admin).await?, "domains"), ["Default"]);
    tc.stop().await
}

#[tokio::test]
async fn regions_services_endpoints_and_the_catalog() -> Result<()> {
    let (tc, admin) = start().await?;
    let b = post(&tc, "/regions", &admin, json!({"region": {"id": "region1", "description": "second"}})).await?;
    assert_eq!((b["region"]["id"].as_str(), b["region"]["name"].as_str()), (Some("region1"), Some("region1")));
    assert_error(
        &tc.ks(Method::POST, "/regions", &admin, Some(json!({"region": {"id": "region1"}}))).await?,
        409,
        "DuplicateNameError",
    );

    let b = post(&tc, "/services", &admin, json!({"service": {"type": "compute", "name": "nova"}})).await?;
    let nova = id_of(&b, "service")?;
    let url = "http://10.0.0.1:8774/v2";
    let ep = json!({"endpoint": {"service_id": "nova", "region_id": "region1", "interface": "public", "url": url}});
    let b = post(&tc, "/endpoints", &admin, ep.clone()).await?;
    let ep_id = id_of(&b, "endpoint")?;
    assert_eq!(
        (b["endpoint"]["name"].as_str(), b["endpoint"]["region"].as_str()),
        (Some("nova-public"), Some("region1"))
    );
    assert_eq!(b["endpoint"]["service_id"], nova.as_str());
    for (field, value, status, class) in [
        ("interface", "sideways", 400, "InputParameterError"),
        ("url", "ftp://x", 400, "InputParameterError"),
        ("region_id", "nowhere", 404, "ResourceNotFoundError"),
        ("service_id", "nosuch", 404, "ResourceNotFoundError"),
    ] {
        let mut bad = ep.clone();
        bad["endpoint"][field] = value.into();
        assert_error(&tc.ks(Method::POST, "/endpoints", &admin, Some(bad)).await?, status, class);
    }

    let nova_urls = |token: &Value| -> Vec<String> {
        token["token"]["catalog"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["name"] == "nova")
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["url"].as_str().map(str::to_string))
            .collect()
    };
    let t = issue(&tc, password_auth("sysadmin", &tc.admin_password, Some(project_scope("system")))).await?;
    assert_eq!(nova_urls(&t.body), [url]);
    let cat = get(&tc, "/auth/catalog", &admin).await?;
    assert!(cat["catalog"].as_array().is_some_and(|a| a.iter().any(|s| s["type"] == "compute")), "{cat}");

    put(&tc, &format!("/endpoints/{ep_id}"), &admin, Some(json!({"endpoint": {"enabled": false}}))).await?;
    let t = issue(&tc, password_auth("sysadmin", &tc.admin_password, Some(project_scope("system")))).await?;
    assert!(nova_urls(&t.body).is_empty());
    assert_error(&tc.ks(Method::DELETE, "/regions/region1", &admin, None).await?, 409, "InvalidStatusError");

    // A service's configuration: merged on POST, a null removes a key, never shown in the view.
    assert_eq!(get(&tc, "/services/keystone/config", &admin).await?, json!({"config": {"default": {}}}));
    let v =
        post(&tc, "/services/keystone/config", &admin, json!({"config": {"default": {"foo": "bar", "n": 3}}})).await?;
    assert_eq!(v, json!({"config": {"default": {"foo": "bar", "n": 3}}}));
    post(&tc, "/services/keystone/config", &admin, json!({"config": {"default": {"foo": null}}})).await?;
    assert_eq!(get(&tc, "/services/keystone/config", &admin).await?, json!({"config": {"default": {"n": 3}}}));
    assert!(get(&tc, "/services/keystone", &admin).await?["service"].get("config").is_none());
    let r = tc.ks(Method::POST, "/services/keystone/config", &admin, Some(json!({"config": 5}))).await?;
    assert_error(&r, 400, "InputParameterError");

    assert_error(&tc.ks(Method::DELETE, "/services/keystone", &admin, None).await?, 403, "ForbiddenError");
    ok(&tc, Method::DELETE, "/services/nova", &admin, None).await?;
    assert_eq!(get(&tc, &format!("/endpoints?service_id={nova}"), &admin).await?["total"], 0);
    ok(&tc, Method::DELETE, "/regions/region1", &admin, None).await?;
    tc.stop().await
}

#[tokio::test]
async fn credentials_belong_to_their_user() -> Result<()> {
    let (tc, admin) = start().await?;
    create_project(&tc, &admin, "demo").await?;
    let alice = create_user(&tc, &admin, "alice", "alice-pw", Some(("demo", "member"))).await?;
    let b = post(
        &tc,
        "/credentials",
        &admin,
        json!({"credential": {"type": "aksk", "user_id": "alice", "project_id": "system", "blob": {"access": "ak", "secret": "sk"}}}),
    )
    .await?;
    let id = id_of(&b, "credential")?;
    let c = &b["credential"];
    assert_eq!((c["user_id"].as_str(), c["type"].as_str()), (Some(alice.as_str()), Some("aksk")));
    let blob: Value = serde_json::from_str(c["blob"].as_str().context("blob is text")?)?;
    assert_eq!(blob["access"], "ak");
    assert_eq!(get(&tc, &format!("/credentials?user_id={alice}"), &admin).await?["total"], 1);

    // alice reads her own credential, though it lives in another project.
    let t = tc.login("alice", "alice-pw", Some("demo")).await?;
    assert_eq!(get(&tc, &format!("/credentials/{id}"), &t).await?["credential"]["id"], id.as_str());

    let r = tc
        .ks(Method::POST, "/credentials", &admin, Some(json!({"credential": {"type": "password", "blob": "x"}})))
        .await?;
    assert_error(&r, 400, "InputParameterError");
    ok(&tc, Method::DELETE, &format!("/credentials/{id}"), &admin, None).await?;
    assert_eq!(get(&tc, "/credentials", &admin).await?["total"], 0);
    tc.stop().await
}
