//! Keypairs: a user's SSH public keys. Without a `public_key` the region generates a pair
//! (ed25519, through the [`KeyGen`] seam), returns the private key once in the create
//! answer and keeps only the public key and its fingerprint.

use std::collections::HashMap;
use std::sync::Mutex;

use apis::Error;
use async_trait::async_trait;
use base64::Engine;
use cloudcommon::auth::{Scope, UserCred};
use cloudcommon::resource::{Col, Ctx, Owner, OwnerScope, Resource, ResourceSpec, Row, row_str, store};
use md5::Digest;
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use serde_json::Value;

pub fn keypair_spec() -> ResourceSpec {
    ResourceSpec::new("compute", "keypair", "keypairs", "keypairs_tbl")
        .owner(OwnerScope::Project)
        .col(Col::str("owner_id", 128).index())
        .col(Col::str("scheme", 16))
        .col(Col::str("fingerprint", 64).index())
        .col(Col::text("public_key").create())
}

/// Makes key pairs: `(private key in OpenSSH PEM, public key line)`.
pub trait KeyGen: Send + Sync {
    fn generate(&self, comment: &str) -> Result<(String, String), Error>;
}

/// `ssh-keygen -t ed25519` in a private temporary directory.
pub struct SshKeygen;

impl KeyGen for SshKeygen {
    fn generate(&self, comment: &str) -> Result<(String, String), Error> {
        let dir = std::env::temp_dir().join(format!("region-keygen-{}", cloudcommon::db::new_id()));
        std::fs::create_dir(&dir).map_err(|e| Error::Internal(format!("cannot make a key directory: {e}")))?;
        let key = dir.join("key");
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(&key)
            .output();
        let result = match out {
            Ok(o) if o.status.success() => {
                let private = std::fs::read_to_string(&key);
                let public = std::fs::read_to_string(key.with_extension("pub"));
                match (private, public) {
                    (Ok(p), Ok(q)) => Ok((p, q.trim().to_string())),
                    _ => Err(Error::Internal("ssh-keygen wrote no key".into())),
                }
            }
            Ok(o) => Err(Error::Internal(format!("ssh-keygen failed: {}", String::from_utf8_lossy(&o.stderr).trim()))),
            Err(e) => Err(Error::Unavailable(format!("cannot run ssh-keygen: {e}"))),
        };
        let _ = std::fs::remove_dir_all(&dir);
        result
    }
}

/// Parses an OpenSSH public key line; returns (scheme, MD5 fingerprint `aa:bb:...`).
pub fn parse_public_key(line: &str) -> Result<(String, String), Error> {
    let bad = |why: &str| Error::invalid("public_key", why.to_string());
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(b64)) = (parts.next(), parts.next()) else {
        return Err(bad("is not an OpenSSH public key (\"<type> <base64> [comment]\")"));
    };
    let scheme = match kind {
        "ssh-rsa" => "RSA",
        "ssh-dss" => "DSA",
        "ssh-ed25519" => "ED25519",
        k if k.starts_with("ecdsa-sha2-") => "ECDSA",
        _ => return Err(bad("has an unknown key type")),
    };
    let blob = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| bad("is not valid base64"))?;
    // The blob starts with the key type as an SSH string.
    let len = blob.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).unwrap_or(usize::MAX);
    if blob.get(4..4usize.saturating_add(len)) != Some(kind.as_bytes()) {
        return Err(bad("does not match its key type"));
    }
    let digest = md5::Md5::digest(&blob);
    let fp = digest.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    Ok((scheme.into(), fp))
}

pub struct Keypairs {
    spec: ResourceSpec,
    /// Private keys made by a create, handed to that request's answer only: request id -> key.
    fresh: Mutex<HashMap<String, String>>,
}

impl Keypairs {
    pub fn new() -> Self {
        Keypairs { spec: keypair_spec(), fresh: Mutex::new(HashMap::new()) }
    }
}

impl Default for Keypairs {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Resource for Keypairs {
    fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    async fn validate_create(&self, ctx: &Ctx, input: &mut Row, _raw: &Row, _o: &Owner) -> Result<(), Error> {
        let given = row_str(input, "public_key").trim().to_string();
        let public = if given.is_empty() {
            let r = crate::region(&ctx.svc)?;
            let name = row_str(input, "name").to_string();
            let (private, public) = r.keygen.generate(&name)?;
            self.fresh.lock().unwrap_or_else(|e| e.into_inner()).insert(ctx.request_id.clone(), private);
            public
        } else {
            given
        };
        let (scheme, fp) = parse_public_key(&public)?;
        input.insert("public_key".into(), public.into());
        input.insert("scheme".into(), scheme.into());
        input.insert("fingerprint".into(), fp.into());
        input.insert("owner_id".into(), ctx.cred.user_id.clone().into());
        Ok(())
    }

    async fn extra_details(&self, ctx: &Ctx, rows: &mut [Row], _d: bool) -> Result<(), Error> {
        if let [row] = rows
            && let Some(key) = self.fresh.lock().unwrap_or_else(|e| e.into_inner()).remove(&ctx.request_id)
        {
            row.insert("private_key".into(), Value::String(key));
        }
        Ok(())
    }

    /// A user sees its own keypairs; administrators see those of their scope.
    fn scope_filter(&self, cred: &UserCred, scope: Scope) -> Condition {
        if scope >= Scope::Domain {
            return store::scope_condition(&self.spec, cred, scope);
        }
        Condition::all().add(Expr::col((Alias::new("keypairs_tbl"), Alias::new("owner_id"))).eq(cred.user_id.clone()))
    }
}
