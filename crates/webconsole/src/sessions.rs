//! One-time access tokens: issued by `POST /webconsole/server/<id>`, consumed by the first
//! `GET /websockify/?access_token=` that presents them.
//!
//! ```text
//!  issue ──> pending (token -> target, deadline) ──take──> removed, target returned
//!                 └── deadline passed ──> take: Expired (and removed); purged on issue
//! ```
//! A token is 32 random bytes, hex. Only this map knows them; a taken token is gone, so a
//! second use is `Unknown`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

/// Where a console stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub server_id: String,
    pub host: String,
    pub port: u16,
    pub protocol: String,
}

/// Why a token does not open a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeError {
    /// Never issued, or already used.
    Unknown,
    Expired,
}

struct Pending {
    target: Target,
    deadline: Instant,
}

pub struct Sessions {
    ttl: Duration,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions { ttl, pending: Mutex::new(HashMap::new()) }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new token for `target`, valid for the ttl.
    pub fn issue(&self, target: Target) -> String {
        let mut b = [0u8; 32];
        rand::rng().fill_bytes(&mut b);
        let token = hex::encode(b);
        let now = Instant::now();
        let mut g = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        g.retain(|_, p| p.deadline > now);
        g.insert(token.clone(), Pending { target, deadline: now + self.ttl });
        token
    }

    /// Consumes `token`: its target, once.
    pub fn take(&self, token: &str) -> Result<Target, TakeError> {
        let p = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(token).ok_or(TakeError::Unknown)?;
        if p.deadline <= Instant::now() {
            return Err(TakeError::Expired);
        }
        Ok(p.target)
    }

    /// Tokens issued and neither used nor expired.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).values().filter(|p| p.deadline > now).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target { server_id: "s".into(), host: "127.0.0.1".into(), port: 5901, protocol: "vnc".into() }
    }

    #[test]
    fn a_token_opens_once() {
        let s = Sessions::new(Duration::from_secs(60));
        let t = s.issue(target());
        assert_eq!(t.len(), 64);
        assert!(t.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(s.len(), 1);
        assert_eq!(s.take(&t), Ok(target()));
        assert_eq!(s.take(&t), Err(TakeError::Unknown));
        assert_eq!(s.take("nope"), Err(TakeError::Unknown));
        assert!(s.is_empty());
    }

    #[test]
    fn tokens_differ_and_expire() {
        let s = Sessions::new(Duration::ZERO);
        let a = s.issue(target());
        let b = s.issue(target());
        assert_ne!(a, b);
        assert_eq!(s.take(&b), Err(TakeError::Expired));
        assert_eq!(s.take(&b), Err(TakeError::Unknown));
    }
}
