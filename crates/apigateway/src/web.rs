//! The dashboard's files, served from `web_dir` (the output of `vite build`, `web/dist`).
//!
//! Served from a directory rather than embedded so that a fresh clone builds without Node:
//! when the directory has no `index.html`, `/` answers a short page saying how to build it
//! (`make web`) and the API keeps working. Paths without a file extension that name no file
//! get `index.html` (the dashboard routes in the browser); `/assets/*` are immutable
//! (content-hashed names) and cached for a year.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

use crate::Gateway;

pub struct Assets {
    dir: PathBuf,
}

impl Assets {
    pub fn new(dir: PathBuf) -> Assets {
        Assets { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_built(&self) -> bool {
        !self.dir.as_os_str().is_empty() && self.dir.join("index.html").is_file()
    }

    /// The file for a URL path, refusing anything that would leave the directory.
    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let rel = Path::new(path.trim_start_matches('/'));
        if self.dir.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return None;
        }
        let p = self.dir.join(rel);
        p.is_file().then_some(p)
    }
}

const NOT_BUILT: &str = "<!doctype html><html><head><title>cloudpods</title></head><body>\
<h1>cloudpods-rs apigateway</h1><p>The dashboard has not been built. Run <code>make web</code> \
(or <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>) and start the gateway with \
<code>web_dir</code> pointing at <code>web/dist</code> (<code>make run</code> does both).</p>\
<p>The API is served at <code>/api/v1/auth/*</code> and <code>/api/v2/*</code>.</p></body></html>";

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

pub async fn serve(State(gw): State<Arc<Gateway>>, uri: Uri) -> Response {
    let assets = &gw.web;
    if !assets.is_built() {
        return (StatusCode::OK, Html(NOT_BUILT)).into_response();
    }
    let path = uri.path();
    let file = match assets.resolve(path) {
        Some(f) => f,
        None if path == "/" || Path::new(path).extension().is_none() => assets.dir.join("index.html"),
        None => return (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    let cache = if path.starts_with("/assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    match tokio::fs::read(&file).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, content_type(&file)),
                (header::CACHE_CONTROL, cache),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            Body::from(bytes),
        )
            .into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        let dir = std::env::temp_dir().join(format!("apigw-web-{}", crate::session::random_hex(4)));
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        std::fs::write(dir.join("index.html"), "x").unwrap();
        std::fs::write(dir.join("assets/a.js"), "x").unwrap();
        let a = Assets::new(dir.clone());
        assert!(a.is_built());
        assert!(a.resolve("/assets/a.js").is_some());
        assert!(a.resolve("/../etc/passwd").is_none());
        assert!(a.resolve("/assets/../../x").is_none());
        assert!(Assets::new(PathBuf::new()).resolve("/index.html").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
