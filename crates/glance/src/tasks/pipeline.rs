//! `ImagePipelineTask`: what happens to an image once its bytes are saved.
//!
//! ```text
//!  on_init  (probing)    qemu-img info: real format (ISO by its volume descriptor), virtual
//!                        size -> min_disk; refuse a backing file; qemu-img check (qcow2,
//!                        vmdk, ...) finds corruption and truncation
//!  convert  (converting) the image's own format is a sub-format as is; every target format
//!                        (`target_image_formats`, default qcow2) is made with
//!                        `qemu-img convert -p` into a scratch file, hashed, moved in
//!  active                status active, progress 100
//!  failure               save_fail with the reason (also an event); scratch files removed
//! ```
//! Every stage may run again (restart, re-delivery): a conversion whose sub-format is
//! already active with its file in place is skipped, and scratch files are made afresh.

use std::path::Path;
use std::time::Duration;

use apis::Error;
use apis::image::*;
use async_trait::async_trait;
use cloudcommon::resource::{Row, row_str, store};
use cloudcommon::tasks::{Next, ON_INIT, Task, TaskRun};
use md5::Digest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::images::set_status;
use crate::models::images::{self, patch};
use crate::models::subformats::{self, Subformat};
use crate::qemu_img::{QemuImgError, is_iso};
use crate::{Glance, glance};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineParams {
    pub image_id: String,
}

pub struct ImagePipelineTask;

const CONVERT: &str = "convert";
const ACTIVE: &str = "active";

#[async_trait]
impl Task for ImagePipelineTask {
    const NAME: &'static str = "ImagePipelineTask";
    type Params = PipelineParams;

    async fn stage(&self, t: &mut TaskRun<PipelineParams>, stage: &str, _data: &Value) -> Result<Next, Error> {
        let g = glance(t.svc())?;
        let id = t.params.image_id.clone();
        match stage {
            ON_INIT => probe(t, &g, &id).await,
            CONVERT => convert(t, &g, &id).await,
            ACTIVE => {
                let p = patch([("status", STATUS_ACTIVE.into()), ("progress", 100.into()), ("reason", "".into())]);
                store::update(t.db(), &images::spec(), &id, &p).await?;
                let row = images::get(t.db(), &id).await?;
                Ok(Next::Complete(json!({"disk_format": row.get("disk_format"), "min_disk": row.get("min_disk")})))
            }
            other => Err(Error::Internal(format!("{} has no stage {other}", Self::NAME))),
        }
    }

    async fn on_failure(&self, t: &TaskRun<PipelineParams>, _stage: &str, reason: &str) {
        let id = &t.params.image_id;
        if let Ok(g) = glance(t.svc()) {
            for f in &g.cfg.target_image_formats {
                let _ = tokio::fs::remove_file(g.store.scratch_path(&format!("{id}.{f}"))).await;
            }
        }
        let _ = subformats::fail_saving(t.db(), id).await;
        if let Err(e) = set_status(&t.ctx(), id, STATUS_SAVE_FAIL, reason).await {
            tracing::error!(image = %id, error = %e, "cannot mark the image save_fail");
        }
    }
}

fn local(g: &Glance, key: &str) -> Result<std::path::PathBuf, Error> {
    g.store.local_path(key).ok_or_else(|| Error::NotImplemented("the image store has no local files to probe".into()))
}

async fn probe(t: &mut TaskRun<PipelineParams>, g: &Glance, id: &str) -> Result<Next, Error> {
    let p = patch([("status", STATUS_PROBING.into()), ("progress", 0.into())]);
    store::update(t.db(), &images::spec(), id, &p).await?;
    let row = images::get(t.db(), id).await?;
    let path = local(g, id)?;
    if !path.exists() {
        return Ok(Next::Fail(format!("the data of image {} is missing from the store", row_str(&row, "name"))));
    }
    let info = match g.qemu_img.info(&path).await {
        Ok(i) => i,
        Err(QemuImgError::Invalid(m)) => return Ok(Next::Fail(format!("not a usable disk image: {m}"))),
        Err(e) => return Err(Error::Unavailable(e.to_string())),
    };
    let mut format = match info.format.as_str() {
        "vpc" => "vhd".to_string(),
        f => f.to_string(),
    };
    if format == FORMAT_RAW && is_iso(&path).await.map_err(|e| Error::Internal(format!("reading the image: {e}")))? {
        format = FORMAT_ISO.into();
    }
    if !DISK_FORMATS.contains(&format.as_str()) {
        return Ok(Next::Fail(format!("qemu-img reports format {format}, which glance does not accept")));
    }
    if let Some(b) = &info.backing_file {
        return Ok(Next::Fail(format!("the image has a backing file ({b}); upload a self-contained image")));
    }
    match g.qemu_img.check(&path, &format).await {
        Ok(()) => {}
        Err(QemuImgError::Invalid(m)) => return Ok(Next::Fail(m)),
        Err(e) => return Err(Error::Unavailable(e.to_string())),
    }
    let vsize_mb = info.virtual_size.div_ceil(1 << 20) as i64;
    let min_disk = row.get("min_disk").and_then(Value::as_i64).unwrap_or(0).max(vsize_mb);
    let declared = row_str(&row, "disk_format").to_string();
    let p = patch([("disk_format", format.clone().into()), ("min_disk", min_disk.into())]);
    store::update(t.db(), &images::spec(), id, &p).await?;
    if !declared.is_empty() && declared != format {
        let notes = json!({"declared": declared, "detected": format});
        t.svc().actionlog.record(&t.ctx(), &images::spec(), &row, "probe", true, notes).await;
    }
    Ok(Next::Stage(CONVERT))
}

async fn convert(t: &mut TaskRun<PipelineParams>, g: &Glance, id: &str) -> Result<Next, Error> {
    let p = patch([("status", STATUS_CONVERTING.into()), ("progress", 0.into())]);
    store::update(t.db(), &images::spec(), id, &p).await?;
    let row = images::get(t.db(), id).await?;
    let format = row_str(&row, "disk_format").to_string();
    let own = Subformat {
        format: format.clone(),
        size: row.get("size").and_then(Value::as_i64).unwrap_or(0),
        location: g.store.location(id),
        checksum: row_str(&row, "checksum").into(),
        fast_hash: row_str(&row, "fast_hash").into(),
        status: STATUS_ACTIVE.into(),
    };
    subformats::upsert(t.db(), id, &own).await?;
    let targets: Vec<String> = if format == FORMAT_ISO {
        vec![]
    } else {
        g.cfg.target_image_formats.iter().filter(|f| **f != format).cloned().collect()
    };
    for (i, target) in targets.iter().enumerate() {
        let key = format!("{id}.{target}");
        if let Some(s) = subformats::get(t.db(), id, target).await?
            && s.status == STATUS_ACTIVE
            && g.store.size(&key).await.ok().flatten() == Some(s.size as u64)
        {
            continue;
        }
        let done = (i as f64, targets.len() as f64);
        if let Some(reason) = convert_one(t, g, &row, &format, target, done).await? {
            return Ok(Next::Fail(reason));
        }
    }
    Ok(Next::Stage(ACTIVE))
}

/// Makes sub-format `target` of image `row`; `Some(reason)` when qemu-img cannot.
async fn convert_one(
    t: &mut TaskRun<PipelineParams>,
    g: &Glance,
    row: &Row,
    format: &str,
    target: &str,
    (index, count): (f64, f64),
) -> Result<Option<String>, Error> {
    let id = row_str(row, "id");
    let key = format!("{id}.{target}");
    let saving = Subformat { format: target.into(), status: STATUS_SAVING.into(), ..Default::default() };
    subformats::upsert(t.db(), id, &saving).await?;
    let src = local(g, id)?;
    let scratch = g.store.scratch_path(&key);
    let _ = tokio::fs::remove_file(&scratch).await;
    let (ptx, prx) = tokio::sync::watch::channel(0.0f64);
    let conv = g.qemu_img.convert(
        &src,
        format,
        &scratch,
        target,
        Box::new(move |p| {
            let _ = ptx.send(p);
        }),
    );
    tokio::pin!(conv);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let result = loop {
        tokio::select! {
            r = &mut conv => break r,
            _ = tick.tick() => {
                let pct = ((index + *prx.borrow() / 100.0) / count * 100.0).clamp(0.0, 99.0);
                let _ = store::update(t.db(), &images::spec(), id, &patch([("progress", (pct as i64).into())])).await;
                let _ = t.set_progress(pct as u8).await;
            }
        }
    };
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&scratch).await;
        return match e {
            QemuImgError::Invalid(m) | QemuImgError::Failed(m) => Ok(Some(format!("cannot convert to {target}: {m}"))),
        };
    }
    let (checksum, fast_hash) =
        hash_file(&scratch).await.map_err(|e| Error::Internal(format!("hashing {key}: {e}")))?;
    let size = g.store.put_file(&key, &scratch).await.map_err(|e| Error::Unavailable(format!("storing {key}: {e}")))?;
    let s = Subformat {
        format: target.into(),
        size: size as i64,
        location: g.store.location(&key),
        checksum,
        fast_hash,
        status: STATUS_ACTIVE.into(),
    };
    subformats::upsert(t.db(), id, &s).await?;
    Ok(None)
}

/// MD5 and xxh3-128 of a file, hex, read in 1 MiB chunks off the async threads.
pub async fn hash_file(path: &Path) -> std::io::Result<(String, String)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(path)?;
        let mut md5 = md5::Md5::new();
        let mut xxh = xxhash_rust::xxh3::Xxh3::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            md5.update(&buf[..n]);
            xxh.update(&buf[..n]);
        }
        Ok((hex::encode(md5.finalize()), format!("{:032x}", xxh.digest128())))
    })
    .await
    .map_err(std::io::Error::other)?
}
