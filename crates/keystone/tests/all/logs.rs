//! The ops-log (`GET /v3/events`) and the logger's action records that keystone's writes
//! and logins leave.

use anyhow::{Context, Result};

use crate::common::*;

#[tokio::test]
async fn writes_leave_events_and_action_records() -> Result<()> {
    let (tc, admin) = start().await?;
    let id = create_project(&tc, &admin, "audited").await?;
    put(&tc, "/projects/audited", &admin, Some(json!({"project": {"description": "watched"}}))).await?;

    // The local ops-log is written before the answer.
    let ev = get(&tc, &format!("/events?obj_type=project&filter=obj_id.equals({id})"), &admin).await?;
    let actions: Vec<&str> =
        ev["events"].as_array().into_iter().flatten().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["update", "create"], "{ev}");
    let create = &ev["events"][1];
    assert_eq!((create["user"].as_str(), create["name"].as_str()), (Some("sysadmin"), Some("audited")));
    assert_eq!(create["success"], true);
    assert!(create["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    let by_user = get(&tc, "/events?user=sysadmin&action=create&obj_type=project", &admin).await?;
    assert_eq!(by_user["total"], 1, "{by_user}");
    let r = tc.ks(Method::POST, "/events", &admin, Some(json!({"event": {"name": "forged"}}))).await?;
    assert_error(&r, 403, "ForbiddenError");
    let ev_id = create["id"].as_str().context("event id")?;
    assert_error(&tc.ks(Method::DELETE, &format!("/events/{ev_id}"), &admin, None).await?, 403, "ForbiddenError");

    // The logger gets a record of each, a little later.
    let rec =
        wait_action(&tc, &admin, "obj_type=project", |a| a["obj_id"] == id.as_str() && a["action"] == "create").await?;
    assert_eq!(
        (rec["service"].as_str(), rec["user"].as_str(), rec["obj_name"].as_str()),
        (Some("keystone"), Some("sysadmin"), Some("audited"))
    );
    assert_eq!(rec["success"], true);
    assert_eq!(rec["tenant"], "system");
    let upd = wait_action(&tc, &admin, &format!("obj_id={id}"), |a| a["action"] == "update").await?;
    assert!(upd["notes"].as_str().is_some_and(|n| n.contains("watched")), "{upd}");

    // Records are append-only.
    let rec_id = rec["id"].as_str().context("record id")?;
    let url = format!("{}/actions/{rec_id}", tc.url("logger"));
    let r = tc.call(Method::PUT, &url, Some(&admin), Some(json!({"action": {"notes": "rewritten"}}))).await?;
    assert_error(&r, 403, "ForbiddenError");
    assert_error(&tc.call(Method::DELETE, &url, Some(&admin), None).await?, 403, "ForbiddenError");
    let r = tc.call(Method::GET, &url, Some(&admin), None).await?;
    assert_eq!((r.status, r.body["action"]["notes"].as_str()), (StatusCode::OK, Some("")), "{}", r.body);
    tc.stop().await
}

#[tokio::test]
async fn logins_are_recorded_and_time_filters_work() -> Result<()> {
    let (tc, admin) = start().await?;
    let lara = create_user(&tc, &admin, "lara", "lara-pw1", None).await?;
    tc.login("lara", "lara-pw1", None).await?;
    assert_error(&issue(&tc, password_auth("lara", "wrong-pw", None)).await?, 401, "InvalidCredentialError");

    let q = format!("obj_type=user&obj_id={lara}&action=login");
    let ok_rec = wait_action(&tc, &admin, &q, |a| a["success"] == true).await?;
    let failed = wait_action(&tc, &admin, &q, |a| a["success"] == false).await?;
    assert_eq!((ok_rec["user"].as_str(), failed["obj_name"].as_str()), (Some("lara"), Some("lara")));
    assert!(failed["notes"].as_str().is_some_and(|n| n.contains("wrong password")), "{failed}");
    assert_eq!(failed["severity"], "ERROR");

    let only_failed = actions(&tc, &admin, &format!("{q}&success=false")).await?;
    assert_eq!(only_failed.len(), 1);
    assert_eq!(actions(&tc, &admin, &format!("{q}&success=true")).await?.len(), 1);

    let t = ok_rec["ops_time"].as_str().context("ops_time")?.to_string();
    let day = t.get(..10).context("date")?;
    let at = |v: &str| v.replace(':', "%3A");
    let exact = actions(&tc, &admin, &format!("{q}&since={}&until={}", at(&t), at(&t))).await?;
    assert!(exact.iter().any(|a| a["id"] == ok_rec["id"]), "{exact:?}");
    assert!(exact.iter().all(|a| a["ops_time"] == t.as_str()), "{exact:?}");
    assert_eq!(actions(&tc, &admin, &format!("{q}&since={day}")).await?.len(), 2);
    assert!(actions(&tc, &admin, &format!("{q}&until=2000-01-01")).await?.is_empty());
    assert!(actions(&tc, &admin, &format!("{q}&since=2999-01-01T00%3A00%3A00Z")).await?.is_empty());
    let r = tc.call(Method::GET, &format!("{}/actions?since=yesterday", tc.url("logger")), Some(&admin), None).await?;
    assert_error(&r, 400, "InputParameterError");
    // `user` matches the actor's name or id.
    assert_eq!(actions(&tc, &admin, &format!("{q}&user=lara")).await?.len(), 2);
    assert_eq!(actions(&tc, &admin, &format!("{q}&user={lara}")).await?.len(), 2);
    assert!(actions(&tc, &admin, &format!("{q}&user=sysadmin")).await?.is_empty());

    // A password never reaches the logs, whichever way it is set.
    put(&tc, "/users/lara", &admin, Some(json!({"user": {"password": "secret-pw2", "displayname": "Lara"}}))).await?;
    let t = tc.login("lara", "secret-pw2", None).await?;
    let body = json!({"user": {"password": "secret-pw3", "original_password": "secret-pw2"}});
    post(&tc, &format!("/users/{lara}/password"), &t, body).await?;
    let upd = wait_action(&tc, &admin, &format!("obj_id={lara}&action=update"), |_| true).await?;
    assert!(upd["notes"].as_str().is_some_and(|n| n.contains("Lara")), "{upd}");
    wait_action(&tc, &admin, &format!("obj_id={lara}&action=password"), |_| true).await?;
    let all = actions(&tc, &admin, &format!("obj_id={lara}")).await?;
    let events = get(&tc, &format!("/events?obj_id={lara}"), &admin).await?;
    for text in [serde_json::to_string(&all)?, events.to_string()] {
        assert!(!text.contains("secret-pw") && !text.contains("lara-pw1"), "a password in the logs: {text}");
    }
    tc.stop().await
}
