//! Password storage and checking: bcrypt hashes, history, and lockout after repeated failures.

use apis::Error;
use cloudcommon::db::{Db, new_id, now};

/// Hashes `password` with bcrypt at `cost`, off the async runtime (it is deliberately slow).
pub async fn hash(password: &str, cost: u32) -> Result<String, Error> {
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || bcrypt::hash(pw, cost))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::Internal(format!("cannot hash password: {e}")))
}

pub async fn verify(password: &str, hash: &str) -> bool {
    let (pw, h) = (password.to_string(), hash.to_string());
    tokio::task::spawn_blocking(move || bcrypt::verify(pw, &h).unwrap_or(false)).await.unwrap_or(false)
}

/// Checks a new password against the policy.
pub fn validate(password: &str, min_len: usize) -> Result<(), Error> {
    if password.chars().count() < min_len {
        return Err(Error::invalid("password", format!("must be at least {min_len} characters")));
    }
    if password.len() > 72 {
        return Err(Error::invalid("password", "must be at most 72 bytes"));
    }
    Ok(())
}

/// Stores a new password for `user_id`; older ones stay as history.
pub async fn set(db: &Db, user_id: &str, password: &str, cost: u32) -> Result<(), Error> {
    let h = hash(password, cost).await?;
    db.raw_exec(
        "INSERT INTO passwords_tbl (id, user_id, password_hash, created_at) VALUES (?, ?, ?, ?)",
        vec![new_id().into(), user_id.into(), h.into(), now().into()],
    )
    .await
    .map(|_| ())
}

/// The current password hash of `user_id`, if it has one.
pub async fn current(db: &Db, user_id: &str) -> Result<Option<String>, Error> {
    let rows = db
        .raw_query(
            "SELECT password_hash FROM passwords_tbl WHERE user_id = ? ORDER BY created_at DESC LIMIT 1",
            vec![user_id.into()],
        )
        .await?;
    Ok(rows.first().and_then(|r| r.try_get_by_index::<String>(0).ok()))
}

pub async fn remove_all(db: &Db, user_id: &str) -> Result<(), Error> {
    db.raw_exec("DELETE FROM passwords_tbl WHERE user_id = ?", vec![user_id.into()]).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_policy() {
        let h = hash("s3cret-pass", 4).await.unwrap();
        assert!(h.starts_with("$2"));
        assert!(verify("s3cret-pass", &h).await);
        assert!(!verify("wrong", &h).await);
        assert!(validate("abc", 6).is_err());
        assert!(validate("abcdef", 6).is_ok());
    }
}
