//! `ImagePipelineTask` as every task is tested: each stage run twice still ends `active`;
//! a failure at each stage ends `save_fail` with the reason and no scratch file.

use anyhow::{Context, Result};
use cloudcommon::tasks::TaskManager;

use crate::common::*;

#[tokio::test]
async fn pipeline_stages_run_twice_and_fail_cleanly() -> Result<()> {
    let (tc, admin) = start(&[]).await?;
    let state = tc.state("glance").context("glance state")?;
    let tm = TaskManager::of(&state).map_err(|e| anyhow::anyhow!("{e}"))?.clone();
    let dir = Scratch::new("pipeline");
    let raw = std::fs::read(make_raw(&dir, "disk.raw", 2)?)?;

    tm.run_each_stage_twice(true);
    let id = upload_ok(&tc, &admin, "twice", "raw", raw.clone()).await?;
    let img = wait_status(&tc, &admin, &id, &["active", "save_fail"]).await?;
    assert_eq!(img["status"], "active", "{img}");
    assert_eq!(img["subformats"].as_array().map(Vec::len), Some(2), "{img}");
    tm.run_each_stage_twice(false);

    for stage in ["on_init", "convert", "active"] {
        tm.clear_injected_failures();
        tm.inject_failure("ImagePipelineTask", stage);
        let id = upload_ok(&tc, &admin, &format!("fail-{stage}"), "raw", raw.clone()).await?;
        let img = wait_status(&tc, &admin, &id, &["save_fail", "active"]).await?;
        assert_eq!(img["status"], "save_fail", "{stage}: {img}");
        assert!(img["reason"].as_str().is_some_and(|r| r.contains(stage)), "{stage}: {img}");
        let subs = img["subformats"].as_array().cloned().unwrap_or_default();
        assert!(subs.iter().all(|s| s["status"] != "saving"), "{stage}: {img}");
        assert!(!store_files(&tc).iter().any(|f| f.ends_with(".scratch") || f.ends_with(".part")), "{stage}");
        // The stored bytes are still there: probing again makes it active.
        tm.clear_injected_failures();
        let r = ok(&tc, Method::POST, &format!("/images/{id}/probe"), &admin, None).await?;
        assert!(
            ["saved", "probing", "converting", "active"].contains(&r["image"]["status"].as_str().unwrap_or("")),
            "{r}"
        );
        wait_status(&tc, &admin, &id, &["active"]).await?;
    }
    let tasks = ok(&tc, Method::GET, "/tasks?name=ImagePipelineTask&status=failed", &admin, None).await?;
    assert_eq!(tasks["total"], 3, "{tasks}");

    // ImageDeleteTask: twice is harmless; a failure leaves delete_fail, and deleting again works.
    let gone = |id: String| {
        let (tc, admin) = (&tc, &admin);
        async move {
            wait_for(CEILING, || async {
                call(tc, Method::GET, &format!("/images/{id}"), admin, None)
                    .await
                    .is_ok_and(|r| r.status == StatusCode::NOT_FOUND)
            })
            .await
        }
    };
    let q = |name: &'static str| json!({"image": {"name": name, "protected": false}});
    tm.run_each_stage_twice(true);
    let id = ok(&tc, Method::POST, "/images", &admin, Some(q("del-twice"))).await?["image"]["id"]
        .as_str()
        .context("id")?
        .to_string();
    ok(&tc, Method::DELETE, &format!("/images/{id}"), &admin, None).await?;
    gone(id).await?;
    tm.run_each_stage_twice(false);
    tm.inject_failure("ImageDeleteTask", "on_init");
    let id = ok(&tc, Method::POST, "/images", &admin, Some(q("del-fail"))).await?["image"]["id"]
        .as_str()
        .context("id")?
        .to_string();
    ok(&tc, Method::DELETE, &format!("/images/{id}"), &admin, None).await?;
    let img = wait_status(&tc, &admin, &id, &["delete_fail"]).await?;
    assert!(img["reason"].as_str().is_some_and(|r| r.contains("on_init")), "{img}");
    tm.clear_injected_failures();
    ok(&tc, Method::DELETE, &format!("/images/{id}"), &admin, None).await?;
    gone(id).await?;
    tc.stop().await
}
