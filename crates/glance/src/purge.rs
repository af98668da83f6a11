//! Background work of glance: recovery at start, and the recycle-bin reaper.
//!
//! - At start, before tasks resume: partial files (`*.part`, `*.scratch`) are removed and
//!   uploads that were `saving` become `killed` (their bytes died with the connection).
//!   Pipelines, copy-froms and deletes are tasks: the task engine resumes or fails them.
//! - Every `pending_delete_check_seconds`, images pending delete for longer than
//!   `pending_delete_expire_seconds` are deleted for good (`ImageDeleteTask`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use apis::Error;
use apis::image::{STATUS_KILLED, STATUS_SAVING};
use cloudcommon::auth::UserCred;
use cloudcommon::db::fmt_time;
use cloudcommon::resource::{Ctx, row_str};
use cloudcommon::service::ServiceState;

use crate::Glance;
use crate::images::{set_status, start_delete};
use crate::models::images;

/// A context for glance's own background work.
pub fn internal_ctx(svc: &Arc<ServiceState>) -> Ctx {
    let cred = UserCred { user_id: "glance".into(), user: "glance".into(), ..Default::default() };
    Ctx::internal(svc.clone(), Arc::new(cred))
}

/// Cleans up what a stopped process left: partial files and uploads in flight.
pub async fn recover(svc: &Arc<ServiceState>, g: &Glance) -> Result<(), Error> {
    let removed = g.store.remove_partials().await.map_err(|e| Error::Unavailable(format!("image store: {e}")))?;
    let ctx = internal_ctx(svc);
    let stuck = images::in_status(&svc.db, &[STATUS_SAVING]).await?;
    for row in &stuck {
        let id = row_str(row, "id");
        let _ = g.store.delete(id).await;
        set_status(&ctx, id, STATUS_KILLED, "glance restarted during the upload").await?;
    }
    if removed > 0 || !stuck.is_empty() {
        tracing::info!(partial_files = removed, killed_uploads = stuck.len(), "glance recovered from a restart");
    }
    Ok(())
}

/// Deletes for good the images whose recycle-bin delay has run out; how many it started.
pub async fn purge_expired(svc: &Arc<ServiceState>, g: &Glance) -> Result<usize, Error> {
    let expire = chrono::Duration::seconds(i64::try_from(g.cfg.pending_delete_expire_seconds).unwrap_or(i64::MAX / 2));
    let before = fmt_time(chrono::Utc::now() - expire);
    let rows = images::expired_pending(&svc.db, &before).await?;
    let ctx = internal_ctx(svc);
    let mut started = 0;
    for row in &rows {
        match start_delete(&ctx, row).await {
            Ok(()) => started += 1,
            Err(e) => tracing::warn!(image = row_str(row, "id"), error = %e, "cannot purge image"),
        }
    }
    Ok(started)
}

/// Starts the reaper; it stops when the service goes away.
pub fn spawn(svc: &Arc<ServiceState>, g: &Arc<Glance>) {
    let (svc, g): (Weak<ServiceState>, Weak<Glance>) = (Arc::downgrade(svc), Arc::downgrade(g));
    tokio::spawn(async move {
        loop {
            let every = match g.upgrade() {
                Some(g) => Duration::from_secs(g.cfg.pending_delete_check_seconds.max(1)),
                None => return,
            };
            tokio::time::sleep(every).await;
            let (Some(svc), Some(g)) = (svc.upgrade(), g.upgrade()) else { return };
            if let Err(e) = purge_expired(&svc, &g).await {
                tracing::warn!(error = %e, "recycle bin check failed");
            }
        }
    });
}
