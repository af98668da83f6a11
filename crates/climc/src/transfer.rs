//! Commands that stream files, outside the request table: `image-upload` and
//! `image-download`. Both show a progress bar on a terminal and end with one line giving
//! the size, the time and the throughput (on stderr, so stdout stays the answer).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::{Arg, ArgAction, ArgMatches, Command};
use mcclient::Session;
use mcclient::image::{self, Progress};

use crate::output::{Format, render_object};

pub const UPLOAD: &str = "image-upload";
pub const DOWNLOAD: &str = "image-download";

/// The clap definitions of the streaming commands.
pub fn commands() -> Vec<Command> {
    let opt = |name: &'static str, help: &'static str| Arg::new(name).long(name).help(help);
    vec![
        Command::new(UPLOAD)
            .about("Upload a disk image file (streamed, with a progress bar)")
            .arg(Arg::new("file").required(true).value_name("FILE").help("The image file"))
            .arg(Arg::new("name").required(true).value_name("NAME").help("Name of the new image"))
            .arg(opt("format", "Disk format (qcow2, raw, iso, vmdk, ...); glance checks it"))
            .arg(opt("min-disk", "Minimum disk size in MB (default: the virtual size)"))
            .arg(opt("min-ram", "Minimum memory in MB"))
            .arg(opt("os-type", "Linux or Windows"))
            .arg(opt("os-distribution", "e.g. Debian"))
            .arg(opt("os-version", "e.g. 12"))
            .arg(opt("os-arch", "e.g. x86_64"))
            .arg(opt("description", "Description"))
            .arg(opt("property", "Property key=value; repeatable").value_name("KEY=VALUE").action(ArgAction::Append))
            .arg(Arg::new("public").long("public").action(ArgAction::SetTrue).help("Share with every project")),
        Command::new(DOWNLOAD)
            .about("Download an image to a file (streamed, MD5 checked)")
            .arg(Arg::new("id").required(true).value_name("IMAGE").help("Name or id"))
            .arg(opt("output", "Where to write it").short('o').required(true).value_name("FILE"))
            .arg(opt("format", "The sub-format to fetch, e.g. qcow2 (default: as uploaded)")),
    ]
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
}

/// A progress bar on stderr when it is a terminal, redrawn at most 10 times a second.
fn bar(verb: &'static str) -> (Progress, Instant) {
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let last = Mutex::new(Instant::now() - Duration::from_secs(1));
    let p: Progress = Box::new(move |done, total| {
        if !tty {
            return;
        }
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < Duration::from_millis(100) && total != Some(done) {
            return;
        }
        *last = Instant::now();
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
        let line = match total.filter(|t| *t > 0) {
            Some(t) => {
                let pct = (done as f64 / t as f64 * 100.0).min(100.0);
                let filled = (pct / 5.0) as usize;
                format!(
                    "\r{verb} [{}{}] {pct:5.1}%  {} / {}  {}/s ",
                    "#".repeat(filled),
                    ".".repeat(20 - filled.min(20)),
                    mib(done),
                    mib(t),
                    mib(rate as u64)
                )
            }
            None => format!("\r{verb} {}  {}/s ", mib(done), mib(rate as u64)),
        };
        let mut e = std::io::stderr();
        let _ = e.write_all(line.as_bytes());
        let _ = e.flush();
    });
    (p, started)
}

fn done_line(verb: &str, bytes: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    eprintln!("{verb} {} in {secs:.2} s ({}/s)", mib(bytes), mib((bytes as f64 / secs) as u64));
}

fn get(m: &ArgMatches, name: &str) -> Option<String> {
    m.get_one::<String>(name).cloned()
}

/// Runs a streaming command; `None` when `name` is not one.
pub async fn run(name: &str, m: &ArgMatches, session: &Session, format: Format) -> Option<anyhow::Result<()>> {
    Some(match name {
        UPLOAD => upload(m, session, format).await,
        DOWNLOAD => download(m, session).await,
        _ => return None,
    })
}

/// The `X-Image-Meta-*` fields and properties of `image-upload`.
/// `(name, value)` pairs.
pub type Pairs = Vec<(String, String)>;

pub fn upload_meta(m: &ArgMatches) -> anyhow::Result<(Pairs, Pairs)> {
    let mut meta = vec![("Name".to_string(), get(m, "name").unwrap_or_default())];
    for (arg, field) in
        [("format", "Disk_format"), ("min-disk", "Min_disk"), ("min-ram", "Min_ram"), ("description", "Description")]
    {
        if let Some(v) = get(m, arg) {
            meta.push((field.to_string(), v));
        }
    }
    if m.get_flag("public") {
        meta.push(("Is_public".into(), "true".into()));
    }
    let mut props = vec![];
    for (arg, key) in [
        ("os-type", "os_type"),
        ("os-distribution", "os_distribution"),
        ("os-version", "os_version"),
        ("os-arch", "os_arch"),
    ] {
        if let Some(v) = get(m, arg) {
            props.push((key.to_string(), v));
        }
    }
    for kv in m.get_many::<String>("property").into_iter().flatten() {
        let (k, v) = kv.split_once('=').ok_or_else(|| crate::plan::UsageError(format!("{kv:?} is not key=value")))?;
        props.push((k.to_string(), v.to_string()));
    }
    Ok((meta, props))
}

async fn upload(m: &ArgMatches, session: &Session, format: Format) -> anyhow::Result<()> {
    let file = PathBuf::from(get(m, "file").unwrap_or_default());
    let (meta, props) = upload_meta(m)?;
    let size = std::fs::metadata(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?.len();
    let (progress, started) = bar("uploading");
    let img = image::upload(session, &file, &meta, &props, progress).await?;
    done_line("uploaded", size, started);
    print!("{}", render_object(&img, format));
    Ok(())
}

async fn download(m: &ArgMatches, session: &Session) -> anyhow::Result<()> {
    let id = get(m, "id").unwrap_or_default();
    let out = PathBuf::from(get(m, "output").unwrap_or_default());
    let (progress, started) = bar("downloading");
    let got = image::download(session, &id, get(m, "format").as_deref(), &out, progress).await?;
    done_line("downloaded", got.size, started);
    eprintln!("{}  {} (md5 checked)", got.checksum, out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_accepts_the_streaming_commands() {
        let root = Command::new("climc").subcommands(commands());
        root.clone().debug_assert();
        let m = root
            .try_get_matches_from([
                "climc",
                UPLOAD,
                "disk.qcow2",
                "myimage",
                "--format",
                "qcow2",
                "--os-type",
                "Linux",
                "--property",
                "uefi_support=true",
                "--public",
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        let (_, sub) = m.subcommand().unwrap_or_else(|| panic!("no subcommand"));
        let (meta, props) = upload_meta(sub).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            meta,
            [("Name", "myimage"), ("Disk_format", "qcow2"), ("Is_public", "true")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(
            props,
            [("os_type", "Linux"), ("uefi_support", "true")].map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }
}
