//! The image service (glance): statuses, formats and the `X-Image-Meta-*` header protocol.
//!
//! Image metadata travels in JSON (`{"image": {...}}`) or, on raw uploads and downloads, in
//! headers: `X-Image-Meta-<field>` for a field (`X-Image-Meta-Disk_format: qcow2`),
//! `X-Image-Meta-Property-<key>` for a property (`X-Image-Meta-Property-Os_type: Linux`).
//! Header names are case-insensitive, so fields and property keys are read lower-cased.

use serde_json::{Map, Value};

/// Catalog service type of glance.
pub const SERVICE_TYPE: &str = "image";

/// Prefix of metadata headers.
pub const META_PREFIX: &str = "x-image-meta-";
/// Prefix of property headers.
pub const PROPERTY_PREFIX: &str = "x-image-meta-property-";
/// Asks glance to download the image itself from this URL.
pub const COPY_FROM_HEADER: &str = "x-glance-api-copy-from";

/// The record exists, no data yet.
pub const STATUS_QUEUED: &str = "queued";
/// Bytes are arriving.
pub const STATUS_SAVING: &str = "saving";
/// Bytes are stored; the pipeline has not started yet.
pub const STATUS_SAVED: &str = "saved";
/// `qemu-img info`/`check` and the ISO probe are running.
pub const STATUS_PROBING: &str = "probing";
/// Sub-formats are being made.
pub const STATUS_CONVERTING: &str = "converting";
/// Usable.
pub const STATUS_ACTIVE: &str = "active";
/// The upload broke (connection lost, quota exceeded mid-stream, restart); nothing stored.
pub const STATUS_KILLED: &str = "killed";
/// The bytes arrived but are not a usable image (corrupt, truncated, unsupported).
pub const STATUS_SAVE_FAIL: &str = "save_fail";
/// In the recycle bin; purged after the pending-delete delay unless `cancel-delete`d.
pub const STATUS_PENDING_DELETE: &str = "pending_delete";
/// Its files are being removed.
pub const STATUS_DELETING: &str = "deleting";
pub const STATUS_DELETE_FAIL: &str = "delete_fail";

pub const FORMAT_RAW: &str = "raw";
pub const FORMAT_QCOW2: &str = "qcow2";
pub const FORMAT_ISO: &str = "iso";

/// Disk formats glance accepts (`disk_format`, `?format=`, conversion targets).
pub const DISK_FORMATS: &[&str] = &["raw", "qcow2", "iso", "vmdk", "vhd", "vhdx", "vdi"];

/// Reads image metadata from request or response headers (name, value; any case): fields
/// into the object, properties under `properties`, and `X-Image-Meta-Metadata` (JSON tags)
/// under `metadata`.
pub fn meta_from_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut props = Map::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if let Some(key) = name.strip_prefix(PROPERTY_PREFIX) {
            if !key.is_empty() {
                props.insert(key.to_string(), Value::String(value.to_string()));
            }
        } else if let Some(key) = name.strip_prefix(META_PREFIX) {
            if key == "metadata" {
                if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(value) {
                    out.insert("metadata".into(), v);
                }
            } else if !key.is_empty() {
                out.insert(key.to_string(), Value::String(value.to_string()));
            }
        }
    }
    if !props.is_empty() {
        out.insert("properties".into(), Value::Object(props));
    }
    out
}

/// The headers of an image view: every scalar field as `X-Image-Meta-<field>`, every
/// property as `X-Image-Meta-Property-<key>`. Empty values and nulls are left out.
pub fn meta_to_headers(view: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = vec![];
    for (k, v) in view {
        let text = match v {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Object(props) if k == "properties" => {
                for (pk, pv) in props {
                    if let Some(s) = pv.as_str().filter(|s| !s.is_empty()) {
                        out.push((format!("{PROPERTY_PREFIX}{pk}"), s.to_string()));
                    }
                }
                continue;
            }
            _ => continue,
        };
        out.push((format!("{META_PREFIX}{k}"), text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let m = meta_from_headers([
            ("X-Image-Meta-Name", "cirros"),
            ("X-Image-Meta-Disk_format", "qcow2"),
            ("X-Image-Meta-Property-Os_type", "Linux"),
            ("X-Image-Meta-Metadata", r#"{"user:env": "prod"}"#),
            ("Content-Type", "application/octet-stream"),
        ]);
        assert_eq!(m["name"], "cirros");
        assert_eq!(m["disk_format"], "qcow2");
        assert_eq!(m["properties"]["os_type"], "Linux");
        assert_eq!(m["metadata"]["user:env"], "prod");
        assert!(!m.contains_key("content-type"));
        let h = meta_to_headers(&m);
        assert!(h.contains(&("x-image-meta-name".into(), "cirros".into())));
        assert!(h.contains(&("x-image-meta-property-os_type".into(), "Linux".into())));
    }
}
