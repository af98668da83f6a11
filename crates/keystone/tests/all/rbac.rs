//! RBAC: what project members, readers and the administrator may see and do.

use anyhow::{Context, Result};

use crate::common::*;

/// A 403, or a 404 when the caller may not even know the object exists.
#[track_caller]
fn assert_refused(r: &Resp) {
    assert!(matches!(r.status.as_u16(), 403 | 404), "not refused: {} {}", r.status, r.body);
    assert_error_body(r);
}

#[tokio::test]
async fn members_see_and_change_only_their_own() -> Result<()> {
    let (tc, admin) = start().await?;
    create_project(&tc, &admin, "demo").await?;
    create_project(&tc, &admin, "demo2").await?;
    let alice_id = create_user(&tc, &admin, "alice", "alice-pw1", Some(("demo", "member"))).await?;
    let bob_id = create_user(&tc, &admin, "bob", "bob-pw1", Some(("demo2", "member"))).await?;
    let alice = tc.login("alice", "alice-pw1", Some("demo")).await?;

    assert_eq!(names(&get(&tc, "/projects", &alice).await?, "projects"), ["demo"]);
    get(&tc, "/projects/demo", &alice).await?;
    assert_error(&tc.ks(Method::GET, "/projects/demo2", &alice, None).await?, 404, "ResourceNotFoundError");
    assert_eq!(names(&get(&tc, "/users", &alice).await?, "users"), ["alice"]);
    assert_eq!(get(&tc, "/users/alice", &alice).await?["user"]["id"], alice_id.as_str());
    for path in ["/users/bob".to_string(), format!("/users/{bob_id}")] {
        assert_error(&tc.ks(Method::GET, &path, &alice, None).await?, 404, "ResourceNotFoundError");
    }
    let r = tc.ks(Method::GET, "/projects?scope=system", &alice, None).await?;
    assert_error(&r, 403, "ForbiddenError");
    let r = tc.ks(Method::GET, "/projects?scope=domain", &alice, None).await?;
    assert_error(&r, 403, "ForbiddenError");

    // No identity writes: users, projects, roles, grants, groups.
    for (path, body) in [
        ("/users", json!({"user": {"name": "mallory", "password": "mallory-pw"}})),
        ("/projects", json!({"project": {"name": "mine"}})),
        ("/roles", json!({"role": {"name": "superuser"}})),
        ("/groups", json!({"group": {"name": "gang"}})),
        ("/domains", json!({"domain": {"name": "realm"}})),
        ("/policies", json!({"policy": {"name": "all", "scope": "project", "blob": {"*": "allow"}}})),
    ] {
        assert_error(&tc.ks(Method::POST, path, &alice, Some(body)).await?, 403, "ForbiddenError");
    }
    // What alice can see she is refused with a 403; what she cannot, with a 404.
    let refused = [
        (Method::PUT, "/projects/demo/users/alice/roles/admin", None, 403),
        (Method::PUT, "/projects/demo2/users/alice/roles/member", None, 404),
        (Method::PUT, "/projects/demo", Some(json!({"project": {"name": "hers"}})), 403),
        (Method::DELETE, "/projects/demo", None, 403),
        (Method::POST, "/projects/demo/metadata", Some(json!({"k": "v"})), 403),
        (Method::PUT, "/users/alice", Some(json!({"user": {"is_system_account": true}})), 403),
        (Method::POST, "/users/alice/join", Some(json!({"projects": ["demo2"], "roles": ["admin"]})), 403),
        (Method::POST, "/users/alice/unlock", None, 403),
        (Method::DELETE, "/users/alice", None, 403),
        (Method::POST, "/users/bob/password", Some(json!({"user": {"password": "taken-over"}})), 404),
    ];
    for (method, path, body, status) in refused {
        let r = tc.ks(method.clone(), path, &alice, body).await?;
        assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", r.body);
        assert_refused(&r);
    }
    let roles = get(&tc, "/projects/demo/users/alice/roles", &alice).await?;
    assert_eq!(names(&roles, "roles"), ["member"]);

    // role_assignments shows alice only her own.
    let ra = get(&tc, "/role_assignments", &alice).await?;
    let list = ra["role_assignments"].as_array().context("no list")?;
    assert_eq!(list.len(), 1, "{ra}");
    assert_eq!(
        (list[0]["user"]["name"].as_str(), list[0]["scope"]["project"]["name"].as_str()),
        (Some("alice"), Some("demo"))
    );
    let ra = get(&tc, "/role_assignments?scope.project.id=demo", &alice).await?;
    assert_eq!(ra["role_assignments"].as_array().map(Vec::len), Some(1), "{ra}");

    // alice changes her own password with the original one; her tokens are revoked.
    let path = format!("/users/{alice_id}/password");
    let r = tc
        .ks(Method::POST, &path, &alice, Some(json!({"user": {"password": "alice-pw2", "original_password": "wrong"}})))
        .await?;
    assert_error(&r, 401, "InvalidCredentialError");
    let r = tc.ks(Method::POST, &path, &alice, Some(json!({"user": {"password": "alice-pw2"}}))).await?;
    assert_error(&r, 400, "InputParameterError");
    post(&tc, &path, &alice, json!({"user": {"password": "alice-pw2", "original_password": "alice-pw1"}})).await?;
    assert_error(&tc.ks(Method::GET, "/projects", &alice, None).await?, 401, "UnauthorizedError");
    assert!(tc.login("alice", "alice-pw1", Some("demo")).await.is_err());
    tc.login("alice", "alice-pw2", Some("demo")).await?;

    // The administrator sees everything, and narrows with scope=.
    let all = names(&get(&tc, "/projects", &admin).await?, "projects");
    for p in ["demo", "demo2", "system"] {
        assert!(all.contains(&p.to_string()), "{p} not in {all:?}");
    }
    assert_eq!(names(&get(&tc, "/projects?scope=project", &admin).await?, "projects"), ["system"]);
    let users = names(&get(&tc, "/users", &admin).await?, "users");
    for u in ["alice", "bob", "sysadmin"] {
        assert!(users.contains(&u.to_string()), "{u} not in {users:?}");
    }
    let ra = get(&tc, "/role_assignments", &admin).await?;
    let who: Vec<&str> =
        ra["role_assignments"].as_array().into_iter().flatten().filter_map(|a| a["user"]["name"].as_str()).collect();
    assert!(who.contains(&"alice") && who.contains(&"bob") && who.contains(&"sysadmin"), "{who:?}");
    tc.stop().await
}

#[tokio::test]
async fn readers_read_and_nothing_more() -> Result<()> {
    let (tc, admin) = start().await?;
    create_project(&tc, &admin, "demo").await?;
    create_user(&tc, &admin, "rita", "rita-pw1", Some(("demo", "reader"))).await?;
    create_user(&tc, &admin, "alice", "alice-pw", Some(("demo", "member"))).await?;
    let rita = tc.login("rita", "rita-pw1", Some("demo")).await?;

    assert_eq!(names(&get(&tc, "/projects", &rita).await?, "projects"), ["demo"]);
    get(&tc, "/users/rita", &rita).await?;
    let r = tc.ks(Method::PUT, "/projects/demo", &rita, Some(json!({"project": {"description": "x"}}))).await?;
    assert_error(&r, 403, "ForbiddenError");
    let r = tc.ks(Method::PUT, "/users/rita", &rita, Some(json!({"user": {"displayname": "R"}}))).await?;
    assert_error(&r, 403, "ForbiddenError");
    let r = tc.ks(Method::POST, "/projects/demo/metadata", &rita, Some(json!({"k": "v"}))).await?;
    assert_error(&r, 403, "ForbiddenError");
    assert_error(
        &tc.ks(Method::POST, "/projects", &rita, Some(json!({"project": {"name": "x"}}))).await?,
        403,
        "ForbiddenError",
    );
    // Validating or revoking someone else's token needs rights over users.
    let alice = tc.login("alice", "alice-pw", Some("demo")).await?;
    assert_error(&validate(&tc, &rita, &alice).await?, 403, "ForbiddenError");
    let r = send(
        tc.http
            .delete(format!("{}/auth/tokens", tc.auth_url))
            .header("X-Auth-Token", &rita)
            .header("X-Subject-Token", &alice),
    )
    .await?;
    assert_error(&r, 403, "ForbiddenError");
    let r = tc.ks(Method::GET, "/auth/tokens/invalid", &rita, None).await?;
    assert_error(&r, 403, "ForbiddenError");
    // Her own password she may change.
    let path = "/users/rita/password";
    post(&tc, path, &rita, json!({"user": {"password": "rita-pw2", "original_password": "rita-pw1"}})).await?;
    tc.login("rita", "rita-pw2", Some("demo")).await?;
    tc.stop().await
}

/// A project owner (project-scoped `*: allow`) administers its project, not its domain or the
/// system: it cannot create users, projects, roles, services or regions.
#[tokio::test]
async fn project_scoped_rights_never_create_domain_or_system_rows() -> Result<()> {
    let (tc, admin) = start().await?;
    create_project(&tc, &admin, "demo").await?;
    create_user(&tc, &admin, "owner", "owner-pw1", Some(("demo", "project_owner"))).await?;
    let owner = tc.login("owner", "owner-pw1", Some("demo")).await?;
    for (path, body) in [
        ("/users", json!({"user": {"name": "mallory", "password": "mallory-pw1"}})),
        ("/projects", json!({"project": {"name": "mine"}})),
        ("/roles", json!({"role": {"name": "superrole"}})),
        ("/services", json!({"service": {"name": "evil", "type": "evil"}})),
        ("/regions", json!({"region": {"id": "RegionEvil"}})),
    ] {
        let r = tc.ks(Method::POST, path, &owner, Some(body)).await?;
        assert_error(&r, 403, "ForbiddenError");
    }
    tc.stop().await
}
