//! List parameters (paging, ordering, search, the filter language, details), batch
//! create, metadata and OpenStack tags.

use anyhow::{Context, Result};

use crate::common::*;

async fn project_names(tc: &TestCloud, token: &str, query: &str) -> Result<Vec<String>> {
    Ok(names(&get(tc, &format!("/projects?{query}"), token).await?, "projects"))
}

#[tokio::test]
async fn batch_create_makes_numbered_objects() -> Result<()> {
    let (tc, admin) = start().await?;
    let b =
        post(&tc, "/projects", &admin, json!({"project": {"name": "batch", "description": "b"}, "count": 3})).await?;
    let items = b["projects"].as_array().context("no batch answer")?;
    let got: Vec<(u64, &str)> =
        items.iter().map(|i| (i["status"].as_u64().unwrap_or(0), i["body"]["name"].as_str().unwrap_or(""))).collect();
    assert_eq!(got, [(200, "batch-1"), (200, "batch-2"), (200, "batch-3")]);
    assert!(items.iter().all(|i| i["body"]["description"] == "b"));
    // A second batch with the same names fails item by item.
    let b = post(&tc, "/projects", &admin, json!({"project": {"name": "batch"}, "count": 2})).await?;
    for item in b["projects"].as_array().context("no batch answer")? {
        assert_eq!((item["status"].as_u64(), item["body"]["class"].as_str()), (Some(409), Some("DuplicateNameError")));
    }
    for count in [json!(0), json!(101), json!("3"), json!(-1)] {
        let r =
            tc.ks(Method::POST, "/projects", &admin, Some(json!({"project": {"name": "c"}, "count": count}))).await?;
        assert_error(&r, 400, "InputParameterError");
    }
    let r = tc.ks(Method::POST, "/projects", &admin, Some(json!({"project": {}, "count": 2}))).await?;
    assert_error(&r, 400, "InputParameterError");
    assert_eq!(project_names(&tc, &admin, "filter=name.startswith(batch)").await?.len(), 3);
    tc.stop().await
}

#[tokio::test]
async fn paging_ordering_search_and_details() -> Result<()> {
    let (tc, admin) = start().await?;
    post(&tc, "/projects", &admin, json!({"project": {"name": "page"}, "count": 5})).await?;
    let base = "filter=name.startswith(page)&order_by=name&order=asc";
    let all = get(&tc, &format!("/projects?{base}"), &admin).await?;
    assert_eq!(names(&all, "projects"), ["page-1", "page-2", "page-3", "page-4", "page-5"]);
    let page = get(&tc, &format!("/projects?{base}&limit=2&offset=2"), &admin).await?;
    assert_eq!(names(&page, "projects"), ["page-3", "page-4"]);
    assert_eq!((page["total"].as_u64(), page["limit"].as_u64(), page["offset"].as_u64()), (Some(5), Some(2), Some(2)));
    let last = get(&tc, &format!("/projects?{base}&limit=2&offset=4"), &admin).await?;
    assert_eq!(names(&last, "projects"), ["page-5"]);
    let past = get(&tc, &format!("/projects?{base}&offset=10"), &admin).await?;
    assert_eq!((names(&past, "projects").len(), past["total"].as_u64()), (0, Some(5)));
    let desc = project_names(&tc, &admin, "filter=name.startswith(page)&order_by=name&order=desc&limit=1").await?;
    assert_eq!(desc, ["page-5"]);

    post(&tc, "/projects", &admin, json!({"project": {"name": "findme", "description": "a needle here"}})).await?;
    assert_eq!(project_names(&tc, &admin, "search=needle").await?, ["findme"]);
    assert_eq!(project_names(&tc, &admin, "search=indm").await?, ["findme"]);
    assert!(project_names(&tc, &admin, "search=haystack").await?.is_empty());

    let with = get(&tc, "/projects?filter=name.equals(findme)&details=true", &admin).await?;
    assert_eq!(with["projects"][0]["domain"], "Default", "{with}");
    let without = get(&tc, "/projects?filter=name.equals(findme)&details=false", &admin).await?;
    assert!(without["projects"][0].get("domain").is_none(), "{without}");
    assert_eq!(without["projects"][0]["domain_id"], "default");
    tc.stop().await
}

#[tokio::test]
async fn the_filter_language() -> Result<()> {
    let (tc, admin) = start().await?;
    for (name, desc) in [("fa", Some("alpha")), ("fb", Some("beta")), ("fc", None), ("fz_z", Some("50%"))] {
        let mut p = json!({"name": name});
        if let Some(d) = desc {
            p["description"] = d.into();
        }
        post(&tc, "/projects", &admin, json!({ "project": p })).await?;
    }
    put(&tc, "/projects/fb", &admin, Some(json!({"project": {"enabled": false}}))).await?;
    let f = "filter=name.startswith(f)&order_by=name&order=asc";
    let cases: &[(&str, &[&str])] = &[
        ("filter=name.equals(fa)", &["fa"]),
        ("filter=name.notequals(fa)", &["fb", "fc", "fz_z"]),
        ("filter=name.in(fa,fc)", &["fa", "fc"]),
        ("filter=name.notin(fa,fc)", &["fb", "fz_z"]),
        ("filter=description.contains(lph)", &["fa"]),
        // `%` and `_` are plain characters outside `like`.
        ("filter=description.contains(0%25)", &["fz_z"]),
        ("filter=name.contains(_)", &["fz_z"]),
        ("filter=name.startswith(f_)", &[]),
        ("filter=name.endswith(_z)", &["fz_z"]),
        ("filter=name.like(f_)", &["fa", "fb", "fc"]),
        ("filter=name.ge(fb)", &["fb", "fc", "fz_z"]),
        ("filter=name.gt(fb)", &["fc", "fz_z"]),
        ("filter=name.le(fb)", &["fa", "fb"]),
        ("filter=name.lt(fb)", &["fa"]),
        ("filter=description.isnull()", &["fc"]),
        ("filter=description.isnotnull()", &["fa", "fb", "fz_z"]),
        ("filter=enabled.equals(false)", &["fb"]),
        ("filter=description.in(alpha,beta)&filter=enabled.equals(true)", &["fa"]),
        ("filter_any=name.equals(fa)&filter_any=name.equals(fc)", &["fa", "fc"]),
        ("enabled=false", &["fb"]),
        ("name=fa,fb", &["fa", "fb"]),
    ];
    for (query, want) in cases {
        let got = project_names(&tc, &admin, &format!("{f}&{query}")).await?;
        assert_eq!(got, *want, "{query}");
    }
    for bad in [
        "filter=nosuch.equals(x)",
        "filter=name.sideways(x)",
        "filter=name",
        "filter=name.equals(x",
        "filter=enabled.equals(maybe)",
        "order_by=nosuch",
        "order=sideways",
        "details=perhaps",
        "scope=galaxy",
    ] {
        let r = tc.ks(Method::GET, &format!("/projects?{bad}"), &admin, None).await?;
        assert_error(&r, 400, "InputParameterError");
    }
    // Hidden columns cannot be filtered or sorted on.
    for bad in ["filter=failed_auth_count.equals(0)", "order_by=locked_until"] {
        assert_error(&tc.ks(Method::GET, &format!("/users?{bad}"), &admin, None).await?, 400, "InputParameterError");
    }
    tc.stop().await
}

#[tokio::test]
async fn metadata_and_openstack_tags() -> Result<()> {
    let (tc, admin) = start().await?;
    let b = post(&tc, "/projects", &admin, json!({"project": {"name": "tagged", "tags": ["blue", "green"]}})).await?;
    let id = id_of(&b, "project")?;
    assert_eq!(b["project"]["tags"], json!(["blue", "green"]));
    create_project(&tc, &admin, "plain").await?;
    assert_eq!(get(&tc, "/projects/plain", &admin).await?["project"]["tags"], json!([]));

    assert_eq!(project_names(&tc, &admin, "tags=blue").await?, ["tagged"]);
    assert_eq!(project_names(&tc, &admin, "tags=blue,green").await?, ["tagged"]);
    assert!(project_names(&tc, &admin, "tags=blue,red").await?.is_empty());

    let v = put(&tc, "/projects/tagged", &admin, Some(json!({"project": {"tags": ["red"]}}))).await?;
    assert_eq!(v["project"]["tags"], json!(["red"]));
    assert!(project_names(&tc, &admin, "tags=blue").await?.is_empty());
    assert_eq!(project_names(&tc, &admin, "tags=red").await?, ["tagged"]);

    let v = post(&tc, &format!("/projects/{id}/metadata"), &admin, json!({"owner": "ops", "tier": "gold"})).await?;
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["metadata"], json!({"owner": "ops", "tier": "gold", "user:red": "red"}));
    post(&tc, "/projects/tagged/metadata", &admin, json!({"tier": ""})).await?;
    let v = get(&tc, "/projects/tagged/metadata", &admin).await?;
    assert_eq!(v["metadata"], json!({"owner": "ops", "user:red": "red"}));

    post(&tc, "/users/sysadmin/metadata", &admin, json!({"team": "infra"})).await?;
    assert_eq!(get(&tc, "/users/sysadmin/metadata", &admin).await?["metadata"], json!({"team": "infra"}));

    for tags in [json!("blue"), json!([""]), json!(["a,b"]), json!([1])] {
        let r =
            tc.ks(Method::POST, "/projects", &admin, Some(json!({"project": {"name": "bad", "tags": tags}}))).await?;
        assert_error(&r, 400, "InputParameterError");
    }
    let long_key = "k".repeat(256);
    let r = tc.ks(Method::POST, "/projects/tagged/metadata", &admin, Some(json!({ long_key: "v" }))).await?;
    assert_error(&r, 400, "InputParameterError");
    assert!(project_names(&tc, &admin, "filter=name.equals(bad)").await?.is_empty());
    tc.stop().await
}
