//! Authorization against the real server: every 401 and 403 of docs/openapi.json with the
//! token in the header, the cookie and the query; a secret (HS256) and public keys
//! (RS256, ES256, EdDSA) generated in the test, with tokens minted by an outside
//! client (Python's PyJWT); the `sse-server token` command; the session cookie; and
//! a stream that ends when its token expires.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{SseClient, TestServer, embedded, test_python, unique};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use sse_server::config::Config;

const SECRET: &str = "a test secret that is long enough for HS256";

fn with_secret(secret: &str) -> Config {
    Config {
        auth_secret: Some(secret.parse().expect("secret")),
        ..embedded()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Claims for `sub` expiring `expires_in` seconds from now (negative: already expired).
fn claims(sub: &str, expires_in: i64, scope: Option<&str>) -> Value {
    let mut claims = json!({ "sub": sub, "exp": now() + expires_in });
    if let Some(scope) = scope {
        claims["scope"] = json!(scope);
    }
    claims
}

fn hs(algorithm: Algorithm, secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("encode")
}

fn hs256(claims: &Value) -> String {
    hs(Algorithm::HS256, SECRET.as_bytes(), claims)
}

/// An unsigned token (`alg: none`), as an attacker would send it.
fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// A token minted by PyJWT: `key` is the HMAC secret or a PEM private key file.
fn pyjwt(claims: &Value, key: &str, algorithm: &str) -> String {
    let script = "import json, sys, jwt\n\
        claims, key, alg = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]\n\
        key = open(key[1:]).read() if key.startswith('@') else key\n\
        print(jwt.encode(claims, key, algorithm=alg))";
    let python = test_python();
    let out = Command::new(&python)
        .args(["-c", script, &claims.to_string(), key, algorithm])
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e} (run scripts/test.sh, or set SSE_TEST_PYTHON)"));
    assert!(
        out.status.success(),
        "PyJWT failed (is PyJWT installed for {python}?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// Where a request carries its token.
#[derive(Clone, Copy, Debug)]
enum Source {
    Header,
    Cookie,
    Query,
}

const SOURCES: [Source; 3] = [Source::Header, Source::Cookie, Source::Query];

/// Sends `method path` with `token` in `source` and returns the status and, for
/// errors, checks the JSON body (and `WWW-Authenticate` on a 401).
async fn status(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    source: Source,
) -> u16 {
    let mut url = server.url(path);
    let mut request = reqwest::Client::new().request(method.clone(), &url);
    if let Some(token) = token {
        match source {
            Source::Header => request = request.bearer_auth(token),
            Source::Cookie => request = request.header("cookie", format!("sse_token={token}")),
            Source::Query => {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&format!("access_token={token}"));
                request = reqwest::Client::new().request(method, &url);
            }
        }
    }
    if path.contains("message") || path.contains("broadcast") {
        request = request.body("hello");
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    if status == 401 {
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .expect("ascii");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    if status >= 400 {
        let body: Value = response.json().await.expect("a JSON error");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    status
}

async fn get(server: &TestServer, path: &str, token: Option<&str>, source: Source) -> u16 {
    status(server, reqwest::Method::GET, path, token, source).await
}

async fn post(server: &TestServer, path: &str, token: Option<&str>, source: Source) -> u16 {
    status(server, reqwest::Method::POST, path, token, source).await
}

#[tokio::test]
async fn every_401_and_403_with_a_secret_in_header_cookie_and_query() {
    let server = TestServer::start(with_secret(SECRET)).await;
    let alice = hs256(&claims("alice", 600, None));
    let publisher = hs256(&claims("alice", 600, Some("read publish")));
    let owner = uuid::Uuid::new_v4();
    let owner_token = hs256(&claims(&owner.to_string(), 600, None));
    let other = uuid::Uuid::new_v4();
    let rejected = [
        ("alg none", unsigned(&claims("alice", 600, None))),
        (
            "wrong key",
            hs(
                Algorithm::HS256,
                b"another secret",
                &claims("alice", 600, None),
            ),
        ),
        ("expired", hs256(&claims("alice", -30, None))),
        ("no exp", hs256(&json!({ "sub": "alice" }))),
        ("no sub", hs256(&json!({ "exp": now() + 600 }))),
        (
            "HS512",
            hs(
                Algorithm::HS512,
                SECRET.as_bytes(),
                &claims("alice", 600, None),
            ),
        ),
        ("garbage", "not.a.token".to_owned()),
    ];
    let mine = format!("/v4/reports?user_id={owner}");
    let theirs = format!("/v4/reports?user_id={other}");
    let their_stream = format!("/v4/sse?user_id={other}");
    let their_new_report = format!("/v4/new/report?user_id={other}");
    // With a valid token, in every source: (method, path, token, the status it gets).
    let cases: [(Method, &str, &str, u16); 24] = [
        // The token's own user, named or left out.
        (Method::GET, "/v1/sse?username=alice", &alice, 200),
        (Method::GET, "/v2/sse?username=alice", &alice, 200),
        (Method::GET, "/v2/sse", &alice, 200),
        (Method::GET, "/v3/sse", &alice, 200),
        // Another user's stream.
        (Method::GET, "/v1/sse?username=bob", &alice, 403),
        (Method::GET, "/v2/sse?username=bob", &alice, 403),
        (Method::GET, "/v3/sse?username=bob", &alice, 403),
        // Posting needs the publish scope, which allows any recipient.
        (Method::POST, "/v2/message?username=bob", &alice, 403),
        (Method::POST, "/v2/message?username=bob", &publisher, 202),
        (Method::POST, "/v2/message", &alice, 403),
        (Method::POST, "/v2/message", &publisher, 202),
        (Method::POST, "/v2/broadcast", &alice, 403),
        (Method::POST, "/v2/broadcast", &publisher, 202),
        (Method::POST, "/v3/message?username=bob", &alice, 403),
        (Method::POST, "/v3/message?username=bob", &publisher, 202),
        (Method::POST, "/v3/broadcast", &alice, 403),
        (Method::POST, "/v3/broadcast", &publisher, 202),
        // /v4: owners only, on every route.
        (Method::GET, &mine, &owner_token, 200),
        (Method::GET, "/v4/reports", &owner_token, 200),
        (Method::GET, &theirs, &owner_token, 403),
        (Method::GET, &their_stream, &owner_token, 403),
        (Method::GET, "/v4/sse", &owner_token, 200),
        (Method::POST, &their_new_report, &owner_token, 403),
        (Method::GET, "/v4/reports", &alice, 403), // sub is not a UUID
    ];
    for source in SOURCES {
        let context = format!("{source:?}");
        assert_eq!(
            get(&server, "/v2/sse?username=alice", None, source).await,
            401,
            "{context}: no token"
        );
        for (why, token) in &rejected {
            for path in [
                "/v1/sse?username=alice",
                "/v2/sse?username=alice",
                "/v3/sse",
                "/v4/reports",
            ] {
                assert_eq!(
                    get(&server, path, Some(token), source).await,
                    401,
                    "{context}: {why} on {path}"
                );
            }
        }
        for (method, path, token, expected) in &cases {
            assert_eq!(
                status(&server, method.clone(), path, Some(*token), source).await,
                *expected,
                "{context}: {method} {path}"
            );
        }
    }
    // Health, metrics and the session route are open.
    for path in ["/healthz", "/readyz", "/metrics", "/auth/session"] {
        assert_eq!(
            get(&server, path, None, Source::Header).await,
            200,
            "{path}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_token_is_for_its_own_user_and_a_publisher_reaches_anyone() {
    let server = TestServer::start(with_secret(SECRET)).await;
    let user = unique("reader");
    let reader = hs256(&claims(&user, 600, None));
    let mut stream =
        SseClient::connect(&server.url(&format!("/v2/sse?access_token={reader}"))).await;
    assert_eq!(stream.status, 200);
    let publisher = hs256(&claims("newsroom", 600, Some("publish")));
    let reply = reqwest::Client::new()
        .post(server.url(&format!("/v2/message?username={user}")))
        .bearer_auth(&publisher)
        .body("for the reader")
        .send()
        .await
        .expect("post");
    assert_eq!(reply.status(), 202);
    assert_eq!(stream.next().await.data, "for the reader");
    server.stop().await;
}

#[tokio::test]
async fn an_hs256_token_from_pyjwt_is_accepted() {
    let server = TestServer::start(with_secret(SECRET)).await;
    let token = pyjwt(&claims("alice", 600, Some("publish")), SECRET, "HS256");
    for source in SOURCES {
        assert_eq!(
            get(&server, "/v2/sse", Some(&token), source).await,
            200,
            "{source:?}"
        );
        assert_eq!(
            post(&server, "/v2/broadcast", Some(&token), source).await,
            202,
            "{source:?}"
        );
    }
    server.stop().await;
}

/// A fresh key pair of `kind` (`rsa`, `ec` P-256 or `ed` 25519) in `dir`, made by
/// Python's `cryptography` (PyJWT's own backend): (private PEM, public PEM) paths.
fn key_pair(dir: &Path, name: &str, kind: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let script = "import sys\n\
        from cryptography.hazmat.primitives import serialization as s\n\
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa\n\
        kind, private, public = sys.argv[1:4]\n\
        key = {'rsa': lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),\n\
               'ec': lambda: ec.generate_private_key(ec.SECP256R1()),\n\
               'ed': ed25519.Ed25519PrivateKey.generate}[kind]()\n\
        open(private, 'wb').write(key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))\n\
        open(public, 'wb').write(key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))";
    let python = test_python();
    let out = Command::new(&python)
        .args(["-c", script, kind])
        .args([&private, &public])
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    assert!(
        out.status.success(),
        "key generation failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (private, public)
}

#[tokio::test]
async fn public_keys_accept_their_own_algorithm_only() {
    let dir = std::env::temp_dir().join(unique("sse-auth-keys"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (kind, algorithm) in [("rsa", "RS256"), ("ec", "ES256"), ("ed", "EdDSA")] {
        let (private, public) = key_pair(&dir, kind, kind);
        let (stranger, _) = key_pair(&dir, &format!("{kind}-stranger"), kind);
        let server = TestServer::start(Config {
            auth_public_key: Some(public.clone()),
            ..embedded()
        })
        .await;
        let at = |key: &Path| format!("@{}", key.display());
        let valid = pyjwt(&claims("alice", 600, None), &at(&private), algorithm);
        let pem = std::fs::read(&public).expect("public key");
        let rejected = [
            (
                "another key",
                pyjwt(&claims("alice", 600, None), &at(&stranger), algorithm),
            ),
            (
                "expired",
                pyjwt(&claims("alice", -30, None), &at(&private), algorithm),
            ),
            ("alg none", unsigned(&claims("alice", 600, None))),
            // The classic confusion: the public key used as an HMAC secret.
            (
                "HS256 with the public key",
                hs(Algorithm::HS256, &pem, &claims("alice", 600, None)),
            ),
            (
                "the server's secret scheme",
                hs256(&claims("alice", 600, None)),
            ),
        ];
        for source in SOURCES {
            assert_eq!(
                get(&server, "/v2/sse?username=alice", Some(&valid), source).await,
                200,
                "{algorithm} {source:?}"
            );
            assert_eq!(
                get(&server, "/v2/sse?username=bob", Some(&valid), source).await,
                403,
                "{algorithm} {source:?}"
            );
            assert_eq!(
                post(&server, "/v2/broadcast", Some(&valid), source).await,
                403,
                "{algorithm} {source:?}"
            );
            for (why, token) in &rejected {
                assert_eq!(
                    get(&server, "/v2/sse", Some(token), source).await,
                    401,
                    "{algorithm} {source:?}: {why}"
                );
            }
        }
        if algorithm == "RS256" {
            let pss = pyjwt(&claims("alice", 600, None), &at(&private), "PS256");
            assert_eq!(
                get(&server, "/v2/sse", Some(&pss), Source::Header).await,
                401,
                "PS256 with the RSA key"
            );
        }
        server.stop().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn cli() -> Command {
    common::isolated(common::SERVER)
}

#[tokio::test]
async fn the_token_command_mints_tokens_the_server_accepts() {
    let server = TestServer::start(with_secret(SECRET)).await;
    let out = cli()
        .args(["token", "alice", "--publish", "--ttl", "10m"])
        .env("SSE_AUTH_SECRET", SECRET)
        .output()
        .expect("sse-server token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert_eq!(
        get(&server, "/v2/sse", Some(&token), Source::Header).await,
        200
    );
    assert_eq!(
        post(
            &server,
            "/v2/message?username=bob",
            Some(&token),
            Source::Header
        )
        .await,
        202
    );
    let plain = cli()
        .args(["token", "alice"])
        .env("SSE_AUTH_SECRET", SECRET)
        .output()
        .expect("sse-server token");
    let plain = String::from_utf8(plain.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert_eq!(
        post(&server, "/v2/broadcast", Some(&plain), Source::Header).await,
        403
    );
    let unsigned = cli()
        .args(["token", "alice"])
        .env_remove("SSE_AUTH_SECRET")
        .output()
        .expect("sse-server token");
    assert!(!unsigned.status.success(), "no secret, no token");
    assert!(String::from_utf8_lossy(&unsigned.stderr).contains("SSE_AUTH_SECRET"));
    server.stop().await;
}

/// What the binary prints when refusing a short secret: the rule, its reason and how
/// to make a good one, never the secret itself.
fn assert_refuses_short_secret(out: &std::process::Output, short: &str) {
    assert!(
        !out.status.success(),
        "a {}-byte secret is refused",
        short.len()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needed in [
        "31 bytes",
        "at least 32 bytes",
        "RFC 7518 §3.2",
        "openssl rand -hex 32",
    ] {
        assert!(stderr.contains(needed), "{needed} in {stderr}");
    }
    assert!(
        !stderr.contains(short),
        "the secret is not echoed: {stderr}"
    );
}

#[tokio::test]
async fn a_secret_shorter_than_32_bytes_is_refused_at_start_up_and_by_token() {
    let short = &SECRET[..31];
    let serve = tokio::process::Command::from(cli())
        .args(["--bind", "127.0.0.1:0"])
        .env("SSE_AUTH_SECRET", short)
        .kill_on_drop(true)
        .output();
    let serve = tokio::time::timeout(common::PATIENCE, serve)
        .await
        .expect("the server refuses to start rather than serving")
        .expect("sse-server");
    assert_refuses_short_secret(&serve, short);
    let flag = cli()
        .args(["--auth-secret", short, "token", "alice"])
        .env_remove("SSE_AUTH_SECRET")
        .output()
        .expect("sse-server token");
    assert_refuses_short_secret(&flag, short);
    assert!(flag.stdout.is_empty(), "no token minted");
    let env = cli()
        .args(["token", "alice"])
        .env("SSE_AUTH_SECRET", short)
        .output()
        .expect("sse-server token");
    assert_refuses_short_secret(&env, short);
    assert!(env.stdout.is_empty(), "no token minted");
    // 32 bytes are enough.
    let ok = cli()
        .args(["token", "alice"])
        .env("SSE_AUTH_SECRET", &SECRET[..32])
        .output()
        .expect("sse-server token");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout)
            .trim()
            .split('.')
            .count(),
        3
    );
}

#[tokio::test]
async fn nbf_is_checked_when_the_token_has_one() {
    let server = TestServer::start(with_secret(SECRET)).await;
    let with_nbf = |nbf: Option<i64>| {
        let mut claims = claims("alice", 600, None);
        if let Some(nbf) = nbf {
            claims["nbf"] = json!(nbf);
        }
        hs256(&claims)
    };
    let early = reqwest::Client::new()
        .get(server.url("/v2/sse"))
        .bearer_auth(with_nbf(Some(now() + 300)))
        .send()
        .await
        .expect("request");
    assert_eq!(early.status(), 401);
    assert!(
        early.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Bearer")
    );
    let body: Value = early.json().await.expect("a JSON error");
    let error = body["error"].as_str().expect("error");
    assert!(
        error.contains("not valid yet") && error.contains("`nbf`"),
        "{error}"
    );
    for source in SOURCES {
        assert_eq!(
            get(
                &server,
                "/v2/sse",
                Some(&with_nbf(Some(now() + 300))),
                source
            )
            .await,
            401,
            "{source:?}: nbf in the future"
        );
        assert_eq!(
            get(
                &server,
                "/v2/sse",
                Some(&with_nbf(Some(now() - 300))),
                source
            )
            .await,
            200,
            "{source:?}: nbf in the past"
        );
        assert_eq!(
            get(&server, "/v2/sse", Some(&with_nbf(None)), source).await,
            200,
            "{source:?}: no nbf"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_stream_ends_when_its_token_expires() {
    let server = TestServer::start(with_secret(SECRET)).await;
    let user = unique("short");
    let token = hs256(&claims(&user, 2, None));
    let url = server.url(&format!("/v2/sse?access_token={token}"));
    let mut stream = SseClient::connect(&url).await;
    assert_eq!(stream.status, 200);
    let publisher = hs256(&claims("newsroom", 600, Some("publish")));
    reqwest::Client::new()
        .post(server.url(&format!("/v2/message?username={user}")))
        .bearer_auth(&publisher)
        .body("before expiry")
        .send()
        .await
        .expect("post");
    assert_eq!(stream.next().await.data, "before expiry");
    stream.expect_end().await;
    // The same token cannot open it again.
    assert_eq!(
        get(&server, "/v2/sse", Some(&token), Source::Query).await,
        401
    );
    server.stop().await;
}

#[tokio::test]
async fn a_session_cookie_is_set_read_and_cleared() {
    let server = TestServer::start(with_secret(SECRET)).await;
    let client = reqwest::Client::new();
    let session = server.url("/auth/session");
    let token = hs256(&claims("alice", 600, None));

    let refused = client.post(&session).send().await.expect("post");
    assert_eq!(refused.status(), 401);
    let refused = client
        .post(&session)
        .bearer_auth(hs256(&claims("alice", -30, None)))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 401);

    let opened = client
        .post(&session)
        .bearer_auth(&token)
        .send()
        .await
        .expect("post");
    assert_eq!(opened.status(), 200);
    let cookie = opened.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        cookie.starts_with(&format!("sse_token={token};")),
        "{cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Expires="] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let max_age: i64 = cookie
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .expect("Max-Age")
        .parse()
        .expect("seconds");
    assert!(
        (590..=600).contains(&max_age),
        "expires with the token: {max_age}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let body: Value = opened.json().await.expect("JSON");
    assert_eq!(
        (body["auth"].clone(), body["sub"].clone()),
        (json!(true), json!("alice"))
    );

    let over_https = client
        .post(&session)
        .bearer_auth(&token)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("post");
    assert!(
        over_https.headers()["set-cookie"]
            .to_str()
            .expect("ascii")
            .contains("; Secure")
    );

    let who = |cookie: Option<String>| {
        let mut request = client.get(&session);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        async move {
            request
                .send()
                .await
                .expect("get")
                .json::<Value>()
                .await
                .expect("JSON")
        }
    };
    assert_eq!(
        who(Some(format!("sse_token={token}"))).await,
        json!({"auth": true, "sub": "alice", "exp": body["exp"], "publish": false})
    );
    assert_eq!(who(None).await["sub"], Value::Null);
    assert_eq!(
        who(Some("sse_token=expired.or.bad".to_owned())).await["sub"],
        Value::Null
    );

    let closed = client.delete(&session).send().await.expect("delete");
    assert_eq!(closed.status(), 200);
    let cleared = closed.headers()["set-cookie"].to_str().expect("ascii");
    assert!(
        cleared.starts_with("sse_token=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    server.stop().await;
}

#[tokio::test]
async fn with_authorization_off_every_stream_is_open_and_there_is_no_session() {
    let server = TestServer::start(embedded()).await;
    let client = reqwest::Client::new();
    let session: Value = client
        .get(server.url("/auth/session"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("JSON");
    assert_eq!(session["auth"], false);
    assert_eq!(
        get(&server, "/v2/sse?username=anyone", None, Source::Header).await,
        200
    );
    assert_eq!(
        post(&server, "/v2/broadcast", None, Source::Header).await,
        202
    );
    let open = client
        .post(server.url("/auth/session"))
        .bearer_auth("whatever")
        .send()
        .await
        .expect("post");
    assert_eq!(open.status(), 200);
    let cleared = open.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        cleared.starts_with("sse_token=;") && cleared.contains("Max-Age=0"),
        "a POST with authorization off sets no token: {cleared}"
    );
    let body: Value = open.json().await.expect("JSON");
    assert_eq!(body["auth"], false);
    assert_eq!(body["sub"], Value::Null);
    server.stop().await;
}
