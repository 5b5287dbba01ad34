//! Bearer-token authentication: an admin token for everything, a read-only token for `GET`;
//! both kept in files beside the daemon's state (created on first start, reused after).

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::{Extension, Json};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::error::ApiError;

/// File holding the admin token inside the token directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// File holding the read-only token inside the token directory.
pub const READ_ONLY_TOKEN_FILE: &str = "readonly.token";

/// The two bearer tokens the API accepts.
#[derive(Clone)]
pub struct Tokens {
    /// Allowed every request.
    pub admin: String,
    /// Allowed `GET` and `HEAD` only.
    pub read_only: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { admin: <redacted>, read_only: <redacted> }")
    }
}

impl Tokens {
    /// Read `admin.token` and `readonly.token` from `dir`, creating either that is missing
    /// (32 random bytes, hex; mode 0600; `dir` created 0700 if needed).
    pub fn load_or_create(dir: &Path) -> io::Result<Tokens> {
        Tokens::load_or_create_seeded(dir, None)
    }

    /// As [`Tokens::load_or_create`], but a missing `admin.token` is written with
    /// `admin_seed` (an operator's provisioned token, e.g. a systemd credential on the
    /// appliance's first boot) instead of a random one; an existing file wins.
    pub fn load_or_create_seeded(dir: &Path, admin_seed: Option<&str>) -> io::Result<Tokens> {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let admin_path = dir.join(ADMIN_TOKEN_FILE);
        let tokens = Tokens {
            admin: load_or_create_one(&admin_path, admin_seed)?,
            read_only: load_or_create_one(&dir.join(READ_ONLY_TOKEN_FILE), None)?,
        };
        if tokens.admin == tokens.read_only {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} and {} hold the same token: the read-only token would be an admin token",
                    admin_path.display(),
                    dir.join(READ_ONLY_TOKEN_FILE).display()
                ),
            ));
        }
        tracing::info!(path = %admin_path.display(), "management API admin token");
        Ok(tokens)
    }

    /// What `token` may do, compared in constant time.
    fn access(&self, token: &str) -> Option<Access> {
        let admin = eq(token, &self.admin);
        let read_only = eq(token, &self.read_only);
        if admin {
            Some(Access::Admin)
        } else if read_only {
            Some(Access::ReadOnly)
        } else {
            None
        }
    }
}

fn eq(a: &str, b: &str) -> bool {
    // ct_eq on slices of different lengths is false (the length is not secret).
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A token is at least 16 printable ASCII characters.
fn token_ok(token: &str) -> bool {
    token.len() >= 16 && token.bytes().all(|b| b.is_ascii_graphic())
}

fn load_or_create_one(path: &Path, seed: Option<&str>) -> io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_string();
            if !token_ok(&token) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: a token must be at least 16 printable characters; delete the file to get a new one",
                        path.display()
                    ),
                ));
            }
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777),
                    "token file is readable by other users; chmod 600 it");
            }
            Ok(token)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let token = match seed.map(str::trim) {
                Some(seed) if token_ok(seed) => seed.to_string(),
                Some(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the token provisioned for {} must be at least 16 printable characters",
                            path.display()
                        ),
                    ))
                }
                None => {
                    let mut bytes = [0u8; 32];
                    rand::rng().fill_bytes(&mut bytes);
                    bytes.iter().map(|b| format!("{b:02x}")).collect()
                }
            };
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            file.write_all(format!("{token}\n").as_bytes())?;
            file.sync_all()?;
            Ok(token)
        }
        Err(e) => Err(e),
    }
}

/// What a token may do; the middleware hands it to the handlers as a request extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Admin,
    ReadOnly,
}

/// What the token presented may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Every request.
    Admin,
    /// `GET` and `HEAD` only; anything else is refused with 403.
    ReadOnly,
}

/// Who the caller is, for a client that shows only what it may do.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub role: Role,
    /// Whether the token may make changes (POST, PUT, PATCH, DELETE).
    pub can_change: bool,
}

/// The role of the token this request carries.
#[utoipa::path(get, path = "/api/v1/session", tag = "system",
    responses(
        (status = 200, description = "The token's role", body = SessionView),
        (status = 401, description = "No or a wrong token", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn session(Extension(access): Extension<Access>) -> Json<SessionView> {
    let role = match access {
        Access::Admin => Role::Admin,
        Access::ReadOnly => Role::ReadOnly,
    };
    Json(SessionView {
        role,
        can_change: role == Role::Admin,
    })
}

/// Middleware: 401 without a valid token, 403 for the read-only token on a change.
pub async fn require_token(
    State(tokens): State<Arc<Tokens>>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let unauthorized = |message: &str| {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).with_field("Authorization")
    };
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("send Authorization: Bearer <token>"))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .ok_or_else(|| unauthorized("the Authorization header must be Bearer <token>"))?;
    let access = tokens
        .access(token)
        .ok_or_else(|| unauthorized("the bearer token is not valid"))?;
    let reads_only = matches!(*req.method(), Method::GET | Method::HEAD);
    if access == Access::ReadOnly && !reads_only {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the read-only token may only read; use the admin token to make changes",
        ));
    }
    req.extensions_mut().insert(access);
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("state/tokens");
        let first = Tokens::load_or_create(&sub).unwrap();
        assert_eq!(first.admin.len(), 64);
        assert!(first.admin.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(first.admin, first.read_only);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(mode(&sub.join(ADMIN_TOKEN_FILE)), 0o600);
        assert_eq!(mode(&sub.join(READ_ONLY_TOKEN_FILE)), 0o600);
        let again = Tokens::load_or_create(&sub).unwrap();
        assert_eq!(
            (again.admin.as_str(), again.read_only.as_str()),
            (first.admin.as_str(), first.read_only.as_str())
        );
        assert_eq!(first.access(&first.admin), Some(Access::Admin));
        assert_eq!(first.access(&first.read_only), Some(Access::ReadOnly));
        assert_eq!(first.access(&first.admin[..63]), None);
        assert_eq!(first.access(""), None);
        assert!(!format!("{first:?}").contains(&first.admin));
    }

    #[test]
    fn a_provisioned_admin_token_is_used_once_then_the_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let seed = "provisioned-admin-token-0123456789";
        let first = Tokens::load_or_create_seeded(dir.path(), Some(&format!("{seed}\n"))).unwrap();
        assert_eq!(first.admin, seed);
        assert_eq!(first.access(seed), Some(Access::Admin));
        let text = std::fs::read_to_string(dir.path().join(ADMIN_TOKEN_FILE)).unwrap();
        assert_eq!(text, format!("{seed}\n"));
        // A later start with another credential keeps the file's token.
        let again =
            Tokens::load_or_create_seeded(dir.path(), Some("another-token-abcdefghijkl")).unwrap();
        assert_eq!(again.admin, seed);
        // A short or unprintable provisioned token is refused, and no file is written.
        let other = tempfile::tempdir().unwrap();
        for bad in ["short", "sixteen chars w/ space"] {
            let e = Tokens::load_or_create_seeded(other.path(), Some(bad)).unwrap_err();
            assert!(e.to_string().contains("at least 16 printable"), "{e}");
            assert!(!other.path().join(ADMIN_TOKEN_FILE).exists());
        }
    }

    #[test]
    fn bad_token_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ADMIN_TOKEN_FILE), "short\n").unwrap();
        let e = Tokens::load_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains("at least 16"), "{e}");
        let same = "0123456789abcdef0123";
        std::fs::write(dir.path().join(ADMIN_TOKEN_FILE), same).unwrap();
        std::fs::write(dir.path().join(READ_ONLY_TOKEN_FILE), same).unwrap();
        let e = Tokens::load_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains("same token"), "{e}");
    }
}
