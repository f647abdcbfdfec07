//! Authorization: who may read which stream and post to whom.
//!
//! Off unless a key is configured (the embedded demo stays one command away), and
//! then every request is a [`Caller::Anyone`]. With `--auth-secret` (HS256) or
//! `--auth-public-key` (RS256, ES256/ES384 or EdDSA, read from the PEM's key type),
//! every API route needs a JWT signed with that key and algorithm only: the
//! [`identify`] layer verifies it once per request (401 otherwise) and leaves the
//! [`Caller`] in the request, and handlers ask the caller which user the request is
//! for (403 when it is not the token's `sub`) and whether it may publish.
//!
//! Tokens come from, in this order, the `Authorization: Bearer` header, the
//! `access_token` query parameter (EventSource clients that can send neither header
//! nor cookie) and the `sse_token` cookie that `POST /auth/session` sets
//! ([`session`]): an explicit credential wins over the ambient cookie.

pub mod session;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::error::ApiError;

/// The cookie `POST /auth/session` sets.
pub const COOKIE: &str = "sse_token";
/// The scope that allows posting to any user and broadcasting.
const PUBLISH_SCOPE: &str = "publish";

/// What a token says, as issued by `sse-server token` or an identity provider.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<Scope>,
}

/// `scope` is space-separated text by RFC 8693; some providers send a list.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Scope {
    Text(String),
    List(Vec<String>),
}

impl Scope {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Scope::Text(text) => text.split_whitespace().any(|s| s == wanted),
            Scope::List(list) => list.iter().any(|s| s == wanted),
        }
    }
}

/// The holder of a verified token.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The username (/v1–/v3) or user id (/v4).
    pub sub: String,
    /// When the token expires, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// May post to any user and broadcast.
    pub publish: bool,
}

/// Checks tokens against the one configured key.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    algorithm: Algorithm,
}

impl Verifier {
    /// The verifier for tokens signed with `secret` (HS256), else with the private
    /// key of the PEM `public_key` (RS256/ES256/ES384/EdDSA, by the key's kind), and,
    /// with `audience`, carrying that `aud`; `None` (authorization off) with neither.
    pub fn new(
        secret: Option<&Secret>,
        public_key: Option<&Path>,
        audience: Option<&str>,
    ) -> anyhow::Result<Option<Verifier>> {
        let (key, algorithm) = match (secret, public_key) {
            (None, None) => return Ok(None),
            (Some(secret), _) => (
                DecodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            ),
            (None, Some(path)) => self::public_key(path)?,
        };
        let mut validation = Validation::new(algorithm);
        // Expiry is exact, as streams end at `exp`: no leeway, and refused from the
        // second `exp` on (RFC 7519), not only after it as the crate's default.
        validation.leeway = 0;
        validation.reject_tokens_expiring_in_less_than = 1;
        // `nbf`, when a token has one, with the same (zero) leeway: a token is
        // refused until its `nbf` second.
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp", "sub"].map(str::to_owned).into();
        match audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }
        Ok(Some(Verifier {
            key,
            validation,
            algorithm,
        }))
    }

    /// The algorithm every token must be signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The identity a token proves, or a 401 saying what is wrong with it.
    pub fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            unauthorized(format!(
                "The token is not a well-formed JWT, or its header names an algorithm this server refuses (it accepts {:?} only)",
                self.algorithm
            ))
        })?;
        if header.alg != self.algorithm {
            return Err(unauthorized(format!(
                "The token is signed with {:?}; this server accepts {:?} tokens only",
                header.alg, self.algorithm
            )));
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| unauthorized(rejection(e.kind())))?
            .claims;
        Ok(Identity {
            publish: claims
                .scope
                .as_ref()
                .is_some_and(|s| s.contains(PUBLISH_SCOPE)),
            sub: claims.sub,
            expires_at: claims.exp,
        })
    }
}

/// Reads a PEM public key and picks the one algorithm its type allows.
fn public_key(path: &Path) -> anyhow::Result<(DecodingKey, Algorithm)> {
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read --auth-public-key {}", path.display()))?;
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        return Ok((key, Algorithm::RS256));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
        return Ok((key, Algorithm::EdDSA));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        // The key is the curve point: its length names the curve.
        let algorithm = match key.kind() {
            DecodingKeyKind::SecretOrDer(point) if point.len() == 65 => Algorithm::ES256,
            DecodingKeyKind::SecretOrDer(point) if point.len() == 97 => Algorithm::ES384,
            _ => anyhow::bail!(
                "--auth-public-key {}: only P-256 (ES256) and P-384 (ES384) EC keys are supported",
                path.display()
            ),
        };
        return Ok((key, algorithm));
    }
    anyhow::bail!(
        "--auth-public-key {} is not a PEM public key of a supported type (RSA, EC P-256/P-384, Ed25519)",
        path.display()
    )
}

/// The sentence for a token that failed verification.
fn rejection(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => {
            "The token has expired. Get a new one and retry".to_owned()
        }
        ErrorKind::InvalidSignature => {
            "The token's signature does not match this server's key. Use a token issued for this server".to_owned()
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            format!("The token has no `{claim}` claim. Tokens need `sub` and `exp`")
        }
        ErrorKind::ImmatureSignature => {
            "The token is not valid yet: its `nbf` (not before) is in the future. Use it from then on, or check the issuer's clock".to_owned()
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            format!("The token's `{claim}` claim must be a number of seconds since 1970")
        }
        ErrorKind::InvalidAudience => {
            "The token is not issued for this server (its `aud` does not match)".to_owned()
        }
        ErrorKind::InvalidAlgorithm => {
            "The token is signed with an algorithm this server refuses".to_owned()
        }
        _ => "The token is malformed: its claims must include `sub` (text) and `exp` (seconds since 1970)".to_owned(),
    }
}

/// A 401 that tells the client to authenticate with a bearer token.
pub fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, message).with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"sse-server\""),
    )
}

/// 403 with a sentence.
fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, message)
}

/// The token a request carries: the `Authorization: Bearer` header, else the
/// `access_token` query parameter, else the `sse_token` cookie.
pub fn token_of(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    bearer(headers)
        .or_else(|| {
            let query = uri.query()?;
            form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "access_token")
                .map(|(_, value)| value.into_owned())
        })
        .or_else(|| cookie(headers))
        .filter(|token| !token.is_empty())
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    CookieJar::from_headers(headers)
        .get(COOKIE)
        .map(|cookie| cookie.value().to_owned())
}

/// Who is making a request, as the [`identify`] layer established.
#[derive(Clone, Debug)]
pub enum Caller {
    /// Authorization is off: anyone may do anything.
    Anyone,
    /// The holder of a verified token.
    Token(Identity),
}

/// Who may read and post, as the layer on the API routes and the session routes
/// see it: the token verifier, or `None` when authorization is off.
#[derive(Clone)]
pub struct Authorization(pub Option<Arc<Verifier>>);

/// The layer on every API route: verifies the request's token (401 when missing or
/// invalid) and hands the [`Caller`] to the handler. With authorization off every
/// request passes as [`Caller::Anyone`].
pub async fn identify(
    State(Authorization(verifier)): State<Authorization>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match &verifier {
        None => Caller::Anyone,
        Some(verifier) => {
            let Some(token) = token_of(request.headers(), request.uri()) else {
                return unauthorized(
                    "This server needs a token: send `Authorization: Bearer <token>`, open a session with POST /auth/session, or add ?access_token=<token>",
                )
                .into_response();
            };
            match verifier.verify(&token) {
                Ok(identity) => Caller::Token(identity),
                Err(e) => return e.into_response(),
            }
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "This route is missing the authorization layer; please report this bug",
            )
        })
    }
}

impl Caller {
    /// The user a request is for. Authorization off: the `requested` parameter (when
    /// given). On: the token's own user, from `own_user(sub)`; `requested` may be
    /// left out, and a different one is refused with 403.
    pub fn user<T: PartialEq>(
        &self,
        requested: Option<T>,
        own_user: impl FnOnce(&str) -> Result<T, ApiError>,
    ) -> Result<Option<T>, ApiError> {
        let Caller::Token(identity) = self else {
            return Ok(requested);
        };
        let own = own_user(&identity.sub)?;
        match requested {
            Some(requested) if requested != own => Err(forbidden(format!(
                "This token is for `{}` and cannot act for another user. Leave the user parameter out, or use that user's token",
                identity.sub
            ))),
            _ => Ok(Some(own)),
        }
    }

    /// Whether the caller may post messages and broadcasts (scope `publish`).
    pub fn may_publish(&self) -> Result<(), ApiError> {
        match self {
            Caller::Anyone => Ok(()),
            Caller::Token(identity) if identity.publish => Ok(()),
            Caller::Token(_) => Err(forbidden(
                "Posting messages needs a token with the `publish` scope (sse-server token <sub> --publish)",
            )),
        }
    }

    /// When the caller's token expires, which ends its streams (see
    /// [`crate::sse::Lifetime`]). `None`: never (authorization is off, or the
    /// expiry is past what the clock can represent).
    pub fn expiry(&self) -> Option<tokio::time::Instant> {
        match self {
            Caller::Anyone => None,
            Caller::Token(identity) => {
                let at = UNIX_EPOCH.checked_add(Duration::from_secs(identity.expires_at))?;
                let left = at.duration_since(SystemTime::now()).unwrap_or_default();
                tokio::time::Instant::now().checked_add(left)
            }
        }
    }
}

/// A token for `sub` signed with `secret` (HS256), valid for `ttl`, with the
/// `publish` scope when asked: what `sse-server token` prints.
pub fn mint(secret: &Secret, sub: &str, publish: bool, ttl: Duration) -> anyhow::Result<String> {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .saturating_add(ttl)
        .as_secs();
    let claims = Claims {
        sub: sub.to_owned(),
        exp,
        scope: publish.then(|| Scope::Text(PUBLISH_SCOPE.to_owned())),
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(secret: &str) -> Verifier {
        let secret: Secret = secret.parse().expect("secret");
        Verifier::new(Some(&secret), None, None)
            .expect("config")
            .expect("auth on")
    }

    /// 32 bytes: the shortest secret accepted.
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_minted_token_verifies_with_its_scope() {
        let secret: Secret = SECRET.parse().expect("secret");
        let token = mint(&secret, "alice", true, Duration::from_secs(60)).expect("mint");
        let identity = verifier(SECRET).verify(&token).expect("valid");
        assert_eq!(identity.sub, "alice");
        assert!(identity.publish);
        let plain = mint(&secret, "bob", false, Duration::from_secs(60)).expect("mint");
        assert!(!verifier(SECRET).verify(&plain).expect("valid").publish);
    }

    fn token_with(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode")
    }

    #[test]
    fn nbf_is_checked_when_present() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let verifier = verifier(SECRET);
        let claims = |nbf: Option<u64>| {
            let mut claims = serde_json::json!({ "sub": "alice", "exp": now + 600 });
            if let Some(nbf) = nbf {
                claims["nbf"] = nbf.into();
            }
            claims
        };
        let early = verifier
            .verify(&token_with(claims(Some(now + 120))))
            .expect_err("refused before nbf");
        assert_eq!(early.status, StatusCode::UNAUTHORIZED);
        assert!(early.message.contains("`nbf`"), "{}", early.message);
        assert!(
            verifier
                .verify(&token_with(claims(Some(now - 120))))
                .is_ok()
        );
        assert!(
            verifier.verify(&token_with(claims(Some(now)))).is_ok(),
            "from nbf on"
        );
        assert!(verifier.verify(&token_with(claims(None))).is_ok());
        let text = serde_json::json!({ "sub": "alice", "exp": now + 600, "nbf": "soon" });
        let malformed = verifier.verify(&token_with(text)).expect_err("refused");
        assert!(malformed.message.contains("`nbf`"), "{}", malformed.message);
    }

    #[test]
    fn scope_is_read_as_text_or_list() {
        assert!(Scope::Text("read publish".into()).contains("publish"));
        assert!(!Scope::Text("publisher".into()).contains("publish"));
        assert!(Scope::List(vec!["publish".into()]).contains("publish"));
    }

    #[test]
    fn the_header_wins_over_query_and_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; sse_token=c"));
        let uri: Uri = "/v2/sse?access_token=q".parse().expect("uri");
        assert_eq!(token_of(&headers, &uri).as_deref(), Some("q"));
        assert_eq!(
            token_of(&headers, &"/v2/sse".parse().expect("uri")).as_deref(),
            Some("c")
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer h"));
        assert_eq!(token_of(&headers, &uri).as_deref(), Some("h"));
    }

    #[test]
    fn a_past_expiry_is_now_and_a_far_one_is_never() {
        let caller = |expires_at| {
            Caller::Token(Identity {
                sub: "a".to_owned(),
                expires_at,
                publish: false,
            })
        };
        let expired = caller(0).expiry().expect("an expiry");
        assert!(expired <= tokio::time::Instant::now());
        assert_eq!(caller(u64::MAX).expiry(), None);
        assert_eq!(Caller::Anyone.expiry(), None);
    }

    #[test]
    fn the_secret_stays_out_of_debug_output() {
        let secret: Secret = SECRET.parse().expect("secret");
        assert!(!format!("{secret:?}").contains(SECRET));
    }
}
