//! `/auth/session`: a browser trades a pasted token for an `HttpOnly` cookie, so
//! page scripts never hold it and `EventSource` (which cannot send headers) sends it
//! by itself.
//!
//! * `POST` with `Authorization: Bearer <token>` sets the `sse_token` cookie
//!   (`HttpOnly`, `SameSite=Strict`, `Secure` when the request came over HTTPS,
//!   expiring with the token); with authorization off it opens nothing, answers
//!   `auth: false` and clears the cookie;
//! * `DELETE` clears it;
//! * `GET` says whether authorization is on and whose token the request carries.
//!
//! These routes are open: they are how a client learns it needs a token.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde_json::json;
use time::OffsetDateTime;

use super::{Authorization, COOKIE, Identity, bearer, token_of, unauthorized};
use crate::error::ApiError;

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Authorization: FromRef<S>,
{
    Router::new().route("/auth/session", get(show).post(open).delete(close))
}

/// `{"auth": bool, "sub": ..., "exp": ...}`: `sub` and `exp` are null when
/// authorization is off or the request carries no valid token.
fn answer(auth: bool, identity: Option<&Identity>) -> Json<serde_json::Value> {
    Json(json!({
        "auth": auth,
        "sub": identity.map(|i| &i.sub),
        "exp": identity.map(|i| i.expires_at),
        "publish": identity.is_some_and(|i| i.publish),
    }))
}

async fn show(State(Authorization(verifier)): State<Authorization>, request: Request) -> Response {
    let Some(verifier) = &verifier else {
        return answer(false, None).into_response();
    };
    let identity =
        token_of(request.headers(), request.uri()).and_then(|token| verifier.verify(&token).ok());
    answer(true, identity.as_ref()).into_response()
}

async fn open(
    State(Authorization(verifier)): State<Authorization>,
    request: Request,
) -> Result<Response, ApiError> {
    let Some(verifier) = &verifier else {
        // Nothing to open: every stream is readable without a token. The answer says
        // so (`auth: false`) and clears a cookie left by a server that checked tokens.
        return cleared(false, &request);
    };
    let token = bearer(request.headers()).ok_or_else(|| {
        unauthorized("Send the token as `Authorization: Bearer <token>` to open a session")
    })?;
    let identity = verifier.verify(&token)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let max_age = identity.expires_at.saturating_sub(now);
    // Expires for old browsers that ignore Max-Age; left out past what a date holds.
    let expires = i64::try_from(identity.expires_at)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok());
    let mut cookie = session_cookie(token, &request);
    cookie.set_max_age(time::Duration::seconds(
        i64::try_from(max_age).unwrap_or(i64::MAX),
    ));
    cookie.set_expires(expires);
    set_cookie(answer(true, Some(&identity)).into_response(), &cookie)
}

async fn close(
    State(Authorization(verifier)): State<Authorization>,
    request: Request,
) -> Result<Response, ApiError> {
    cleared(verifier.is_some(), &request)
}

/// The session answer with no identity, clearing the cookie.
fn cleared(auth: bool, request: &Request) -> Result<Response, ApiError> {
    let mut cookie = session_cookie(String::new(), request);
    cookie.set_max_age(time::Duration::ZERO);
    cookie.set_expires(OffsetDateTime::UNIX_EPOCH);
    set_cookie(answer(auth, None).into_response(), &cookie)
}

/// The session cookie holding `value`, with the attributes every answer gives it:
/// `HttpOnly`, `SameSite=Strict`, the whole site, and `Secure` when the request
/// came over HTTPS.
fn session_cookie(value: String, request: &Request) -> Cookie<'static> {
    let mut cookie = Cookie::new(COOKIE, value);
    cookie.set_path("/");
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_secure(over_https(request.headers(), request.uri().scheme_str()));
    cookie
}

/// Whether the request came over HTTPS: directly (a TLS terminator in front that
/// rewrites the URI) or through a proxy that says so.
fn over_https(headers: &HeaderMap, scheme: Option<&str>) -> bool {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    forwarded_https || scheme == Some("https")
}

fn set_cookie(mut response: Response, cookie: &Cookie<'_>) -> Result<Response, ApiError> {
    let value = HeaderValue::from_str(&cookie.to_string()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "The token contains characters a cookie cannot carry",
        )
    })?;
    response.headers_mut().insert(header::SET_COOKIE, value);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_only_over_https() {
        let mut headers = HeaderMap::new();
        assert!(!over_https(&headers, None));
        assert!(over_https(&headers, Some("https")));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(over_https(&headers, None));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        assert!(!over_https(&headers, None));
    }
}
