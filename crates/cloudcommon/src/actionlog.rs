//! Recording what happened: a local ops-log event, and an action record for the logger.
//!
//! Every write through the dispatcher (and every task outcome) calls [`ActionLog::record`].
//! The event is written to the service's own `opslog_tbl`; the action record is queued and
//! posted to the logger service (`POST /actions`) by a background sender, so a slow or absent
//! logger never slows down or fails an API call. When the queue is full, records are dropped
//! with a warning.

use std::sync::Arc;

use apis::logger::ActionRecord;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::db::{Db, now};
use crate::resource::{Ctx, ResourceSpec, Row, row_str, store};

const QUEUE: usize = 10_000;

/// Delivers action records somewhere (the logger service, usually).
#[async_trait::async_trait]
pub trait ActionSink: Send + Sync + 'static {
    async fn deliver(&self, records: Vec<ActionRecord>) -> Result<(), apis::Error>;
}

#[derive(Clone)]
pub struct ActionLog {
    service: &'static str,
    tx: Option<mpsc::Sender<ActionRecord>>,
}

impl ActionLog {
    /// An action log that only writes local events.
    pub fn local(service: &'static str) -> ActionLog {
        ActionLog { service, tx: None }
    }

    /// An action log that also forwards records to `sink` in the background.
    pub fn with_sink(service: &'static str, sink: Arc<dyn ActionSink>) -> ActionLog {
        let (tx, mut rx) = mpsc::channel::<ActionRecord>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while rx.recv_many(&mut batch, 100).await > 0 {
                let records = std::mem::take(&mut batch);
                let mut delay = std::time::Duration::from_millis(200);
                let mut pending = records;
                for attempt in 0..8 {
                    match sink.deliver(pending.clone()).await {
                        Ok(()) => {
                            pending.clear();
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, attempt, "action log delivery failed; retrying");
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(std::time::Duration::from_secs(5));
                        }
                    }
                }
                if !pending.is_empty() {
                    tracing::warn!(dropped = pending.len(), "logger unreachable; action records dropped");
                }
            }
        });
        ActionLog { service, tx: Some(tx) }
    }

    /// Records `action` on `row`: an event in this service's ops-log, and an action record
    /// for the logger. Failures are logged, never returned: the operation already happened.
    pub async fn record(&self, ctx: &Ctx, spec: &ResourceSpec, row: &Row, action: &str, success: bool, notes: Value) {
        let notes = match notes {
            Value::Null => String::new(),
            Value::String(s) => s,
            other => other.to_string(),
        };
        let cred = &ctx.cred;
        let mut ev = Row::new();
        let put = |ev: &mut Row, k: &str, v: &str| {
            ev.insert(k.into(), Value::String(v.to_string()));
        };
        let time = now();
        put(&mut ev, "id", &crate::db::new_id());
        put(&mut ev, "name", row_str(row, "name"));
        put(&mut ev, "obj_type", spec.keyword);
        put(&mut ev, "obj_id", row_str(row, "id"));
        put(&mut ev, "action", action);
        put(&mut ev, "notes", &notes);
        put(&mut ev, "user_id", &cred.user_id);
        put(&mut ev, "user", &cred.user);
        put(&mut ev, "actor_tenant_id", &cred.project_id);
        put(&mut ev, "actor_tenant", &cred.project);
        put(&mut ev, "domain_id", row_str(row, "domain_id"));
        put(&mut ev, "tenant_id", row_str(row, "tenant_id"));
        put(&mut ev, "request_id", &ctx.request_id);
        put(&mut ev, "ops_time", &time);
        put(&mut ev, "created_at", &time);
        put(&mut ev, "updated_at", &time);
        ev.insert("success".into(), success.into());
        ev.insert("deleted".into(), false.into());
        ev.insert("update_version".into(), 0.into());
        if let Err(e) = write_event(ctx.db(), &ev).await {
            tracing::warn!(error = %e, "cannot write ops-log event");
        }
        let Some(tx) = &self.tx else { return };
        let rec = ActionRecord {
            obj_type: spec.keyword.to_string(),
            obj_id: row_str(row, "id").to_string(),
            obj_name: row_str(row, "name").to_string(),
            action: action.to_string(),
            notes,
            success,
            service: self.service.to_string(),
            user_id: cred.user_id.clone(),
            user: cred.user.clone(),
            tenant_id: cred.project_id.clone(),
            tenant: cred.project.clone(),
            domain_id: cred.project_domain_id.clone(),
            domain: cred.project_domain.clone(),
            owner_tenant_id: row_str(row, "tenant_id").to_string(),
            owner_domain_id: row_str(row, "domain_id").to_string(),
            ip: ctx.client_ip.clone(),
            roles: cred.roles.join(","),
            start_time: time,
            severity: if success { "INFO" } else { "ERROR" }.into(),
            kind: "NORMAL".into(),
        };
        if tx.try_send(rec).is_err() {
            tracing::warn!("action log queue full; record dropped");
        }
    }
}

async fn write_event(db: &Db, ev: &Row) -> Result<(), apis::Error> {
    let spec = crate::opslog::spec("any");
    let txn = db.begin().await?;
    store::insert(&txn, &spec, ev).await?;
    txn.commit().await
}
