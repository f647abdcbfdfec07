//! Who a request is for: the `username` (/v1–/v3) or `user_id` (/v4) query
//! parameter, checked, and reconciled with the caller's token.
//!
//! With authorization off the parameter is required. With it on, the parameter may
//! be left out (it defaults to the token's `sub`), and one that names another user
//! is refused with 403 (see [`Caller::user`]).

use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::limits;

/// `?username=NAME` on /v1../v3.
#[derive(Debug, Deserialize)]
pub struct UserQuery {
    username: Option<String>,
}

impl UserQuery {
    /// The username the request is for (1–128 bytes of printable text).
    pub fn username(&self, caller: &Caller) -> Result<String, ApiError> {
        caller
            .user(self.requested()?, |sub| {
                limits::username(sub).map(str::to_owned).map_err(|_| {
                    ApiError::new(
                        StatusCode::FORBIDDEN,
                        "This token's `sub` is not a valid username (1 to 128 bytes of printable text)",
                    )
                })
            })?
            .ok_or_else(|| {
                ApiError::bad_request(
                    "The query parameter `username` is missing or empty. Add ?username=NAME",
                )
            })
    }

    /// The user a message is for: anyone the parameter names (posting needs the
    /// `publish` scope, which allows every recipient), else the token's own user.
    pub fn recipient(&self, caller: &Caller) -> Result<String, ApiError> {
        match self.requested()? {
            Some(name) => Ok(name),
            None => self.username(caller),
        }
    }

    /// The parameter, checked; `None` when it is absent or blank.
    fn requested(&self) -> Result<Option<String>, ApiError> {
        self.username
            .as_deref()
            .filter(|raw| !raw.trim().is_empty())
            .map(|raw| limits::username(raw).map(str::to_owned))
            .transpose()
    }
}

/// `?user_id=UUID` on /v4.
#[derive(Debug, Deserialize)]
pub struct UserIdQuery {
    user_id: Option<String>,
}

impl UserIdQuery {
    /// The user id the request is for.
    pub fn user_id(&self, caller: &Caller) -> Result<Uuid, ApiError> {
        let raw = self.user_id.as_deref().unwrap_or("").trim();
        let requested = (!raw.is_empty())
            .then(|| {
                raw.parse::<Uuid>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "`user_id` must be a UUID such as 6f1c2a9e-6a4b-4c2f-9d3e-2b1a0c9d8e7f, not `{raw}`"
                    ))
                })
            })
            .transpose()?;
        caller
            .user(requested, |sub| {
                sub.trim().parse::<Uuid>().map_err(|_| {
                    ApiError::new(
                        StatusCode::FORBIDDEN,
                        format!("This token's `sub` ({sub}) is not a user id; /v4 needs a token whose `sub` is the user's UUID"),
                    )
                })
            })?
            .ok_or_else(|| {
                ApiError::bad_request(
                    "The query parameter `user_id` is missing. Add ?user_id=<UUID>",
                )
            })
    }
}
