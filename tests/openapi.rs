//! `docs/openapi.json` against the real server: it is what `/openapi.json` serves,
//! it names exactly the routes the router has, and what the server answers (status,
//! content type, required headers, required JSON keys) is what it documents.
//! `scripts/contract_test.sh` adds schemathesis's generated requests on top.

mod common;

use std::collections::BTreeSet;

use common::{TestServer, embedded};
use reqwest::Method;
use serde_json::{Value, json};
use sse_server::config::Config;

const DOCUMENT: &str = include_str!("../docs/openapi.json");

/// Every method and path the router serves (`router` in src/lib.rs and the
/// `routes()` of v1, v2, v3, v4/routes, auth/session and health), written out by
/// hand: a route added there and not here, or not in the document, fails below.
/// axum's implicit `HEAD` of each `GET` and the dashboard fallback (`/`) are not
/// API routes.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/sse"),
    ("GET", "/v2/sse"),
    ("POST", "/v2/message"),
    ("POST", "/v2/broadcast"),
    ("GET", "/v2/presence"),
    ("GET", "/v3/sse"),
    ("POST", "/v3/message"),
    ("POST", "/v3/broadcast"),
    ("GET", "/v3/presence"),
    ("POST", "/v4/new/report"),
    ("GET", "/v4/reports"),
    ("PUT", "/v4/report"),
    ("GET", "/v4/sse"),
    ("GET", "/v4/presence"),
    ("GET", "/auth/session"),
    ("POST", "/auth/session"),
    ("DELETE", "/auth/session"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON")
}

/// `(METHOD, path)` of every operation the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            HTTP_METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

/// Follows `$ref`s within the document.
fn resolve<'a>(doc: &'a Value, mut node: &'a Value) -> &'a Value {
    while let Some(pointer) = node.get("$ref").and_then(Value::as_str) {
        node = doc
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {pointer}"));
    }
    node
}

/// Checks `value` has the keys `schema` requires (through `$ref`, `allOf` and
/// array `items`), and `const`/`enum` values where the schema gives them.
fn check_required(doc: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(doc, schema);
    for part in schema["allOf"].as_array().into_iter().flatten() {
        check_required(doc, part, value, at);
    }
    if let Some(required) = schema["required"].as_array() {
        let object = value
            .as_object()
            .unwrap_or_else(|| panic!("{at}: expected a JSON object, got {value}"));
        for key in required {
            let key = key.as_str().expect("required key");
            assert!(object.contains_key(key), "{at}: `{key}` missing in {value}");
        }
        for (key, property) in schema["properties"].as_object().into_iter().flatten() {
            if let Some(inner) = object.get(key) {
                check_required(doc, property, inner, &format!("{at}.{key}"));
            }
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, item) in values.iter().enumerate() {
            check_required(doc, items, item, &format!("{at}[{i}]"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        assert!(
            allowed.contains(value),
            "{at}: {value} is not one of {allowed:?}"
        );
    }
    if let Some(constant) = schema.get("const") {
        assert_eq!(value, constant, "{at}");
    }
}

/// One request, and the status this test expects for it.
struct Case {
    method: Method,
    /// The documented path the request is for.
    path: &'static str,
    query: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    status: u16,
}

fn case(method: Method, path: &'static str, query: &str, status: u16) -> Case {
    Case {
        method,
        path,
        query: query.to_owned(),
        headers: Vec::new(),
        body: None,
        status,
    }
}

impl Case {
    fn body(mut self, body: impl Into<Vec<u8>>) -> Case {
        self.body = Some(body.into());
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Case {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// Sends `case` and checks the answer against the document; returns the JSON body
/// (null for other content types).
async fn send(server: &TestServer, doc: &Value, case: Case) -> Value {
    let label = format!("{} {}{}", case.method, case.path, case.query);
    let mut request = reqwest::Client::new().request(
        case.method.clone(),
        server.url(&format!("{}{}", case.path, case.query)),
    );
    for (name, value) in &case.headers {
        request = request.header(*name, value);
    }
    if let Some(body) = case.body {
        request = request.body(body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let operation = &doc["paths"][case.path][case.method.as_str().to_lowercase()];
    assert!(operation.is_object(), "{label}: not documented");
    let documented = operation["responses"]
        .get(status.to_string())
        .map(|r| resolve(doc, r))
        .unwrap_or_else(|| panic!("{label}: answered {status}, which is not documented"));
    assert_eq!(status, case.status, "{label}: unexpected status");
    for (name, header) in documented["headers"].as_object().into_iter().flatten() {
        if header["required"] == true {
            assert!(
                response.headers().contains_key(name.as_str()),
                "{label}: {status} lacks the documented header {name}"
            );
        }
    }
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let media = documented["content"]
        .get(&content_type)
        .unwrap_or_else(|| panic!("{label}: {status} is {content_type:?}, not documented"));
    if content_type == "text/event-stream" {
        // The stream never ends: its headers are what can be checked here.
        return Value::Null;
    }
    let bytes = response.bytes().await.expect("body");
    if content_type != "application/json" {
        return Value::Null;
    }
    let body: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{label}: {status} body is not JSON ({e})"));
    check_required(doc, &media["schema"], &body, &label);
    if status >= 400 {
        assert!(body["error"].is_string(), "{label}: {body}");
    }
    body
}

#[tokio::test]
async fn the_served_document_is_the_file() {
    let server = TestServer::start(embedded()).await;
    let response = reqwest::get(server.url("/openapi.json"))
        .await
        .expect("GET /openapi.json");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.expect("body"), DOCUMENT);
    assert_eq!(document()["openapi"], "3.1.0");
    server.stop().await;
}

#[tokio::test]
async fn the_document_names_exactly_the_routes_the_server_has() {
    let doc = document();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let documented = documented(&doc);
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
    assert!(extra.is_empty(), "documented but not served: {extra:?}");

    let server = TestServer::start(embedded()).await;
    let client = reqwest::Client::new();
    for (method, path) in &documented {
        // No parameters: every route answers at once (400 for a missing user, not a
        // stream), and is found.
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let status = client
            .request(method.clone(), server.url(path))
            .send()
            .await
            .expect("request")
            .status()
            .as_u16();
        assert!(
            status != 404 && status != 405,
            "{method} {path} is documented but answers {status}"
        );
    }
    for path in doc["paths"].as_object().expect("paths").keys() {
        // A method the document does not give a path is 405, with the JSON error.
        let response = client
            .request(Method::PATCH, server.url(path))
            .send()
            .await
            .expect("PATCH");
        assert_eq!(response.status(), 405, "PATCH {path}");
        assert!(response.headers().contains_key("allow"), "PATCH {path}");
        let body: Value = response.json().await.expect("JSON error");
        assert!(body["error"].is_string(), "PATCH {path}: {body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn every_answer_is_documented() {
    let doc = document();
    let server = TestServer::start(embedded()).await;
    let user = uuid::Uuid::new_v4();
    let other = uuid::Uuid::new_v4();
    let mine = format!("?user_id={user}");
    let long = "a".repeat(129);
    use Method as M;

    let cases = vec![
        case(M::GET, "/v1/sse", "?username=demo", 200),
        case(M::GET, "/v1/sse", "", 400),
        case(M::GET, "/v1/sse", "?username=a%0Ab", 400),
        case(M::GET, "/v2/sse", "?username=demo", 200).header("Last-Event-ID", "not-ours"),
        case(M::GET, "/v2/sse", "?username=demo&lastEventId=1-2", 200),
        case(M::GET, "/v2/sse", &format!("?username={long}"), 400),
        case(M::POST, "/v2/message", "?username=demo", 202).body("Howdy"),
        case(M::POST, "/v2/message", "?username=demo", 400).body(" \n "),
        case(M::POST, "/v2/message", "?username=demo", 400).body(vec![0xff, 0xfe]),
        case(M::POST, "/v2/message", "", 400).body("nobody"),
        case(M::POST, "/v2/message", "?username=demo", 413).body(vec![b'a'; 65 * 1024]),
        case(M::POST, "/v2/broadcast", "", 202).body("to all"),
        case(M::POST, "/v2/broadcast", "", 400).body(""),
        case(M::GET, "/v3/sse", "?username=demo", 200),
        case(M::GET, "/v3/sse", "?username=", 400),
        case(M::POST, "/v3/message", "?username=demo", 202).body("via the bus"),
        case(M::POST, "/v3/message", "?username=*", 400).body("x"),
        case(M::POST, "/v3/message", "?username=a:b", 400).body("x"),
        case(M::POST, "/v3/broadcast", "", 202).body("to all"),
        case(M::POST, "/v3/broadcast", "", 400).body("\t"),
        case(M::POST, "/v4/new/report", "?user_id=nope", 400),
        case(M::POST, "/v4/new/report", "", 400),
        case(M::GET, "/v4/reports", "?user_id=6f1c2a9e", 400),
        case(M::GET, "/v4/sse", &mine, 200),
        case(M::GET, "/v4/sse", "?user_id=x", 400),
        case(M::GET, "/v2/presence", "?username=demo", 200),
        case(M::GET, "/v2/presence", "", 400),
        case(M::GET, "/v3/presence", "?username=demo", 200),
        case(M::GET, "/v4/presence", &mine, 200),
        case(M::GET, "/v4/presence", "?user_id=x", 400),
        case(M::GET, "/auth/session", "", 200),
        case(M::POST, "/auth/session", "", 200).header("Authorization", "Bearer x.y.z"),
        case(M::DELETE, "/auth/session", "", 200),
        case(M::GET, "/healthz", "", 200),
        case(M::GET, "/readyz", "", 200),
        case(M::GET, "/metrics", "", 200),
        case(M::GET, "/openapi.json", "", 200),
    ];
    for one in cases {
        send(&server, &doc, one).await;
    }

    // /v4 in order: a report, the list, then changes to it.
    let report = send(&server, &doc, case(M::POST, "/v4/new/report", &mine, 201)).await;
    let id = report["reportId"].as_str().expect("reportId").to_owned();
    let list = send(&server, &doc, case(M::GET, "/v4/reports", &mine, 200)).await;
    assert_eq!(list[0]["reportId"], id.as_str());
    let change = |status: &str| json!({ "id": id, "status": status }).to_string();
    let put =
        |query: &str, body: String, status| case(M::PUT, "/v4/report", query, status).body(body);
    let accepted = send(&server, &doc, put(&mine, change("queued"), 202)).await;
    assert_eq!(accepted["from"], "pending");
    // pending→completed and queued→completed are both invalid, whether or not the
    // writer has applied `queued` yet.
    let conflict = send(&server, &doc, put(&mine, change("completed"), 409)).await;
    assert!(conflict["allowed"].is_array(), "{conflict}");
    send(&server, &doc, put(&mine, change("bogus"), 400)).await;
    send(&server, &doc, put(&mine, "not json".to_owned(), 400)).await;
    let bad_id = json!({ "id": "x", "status": "queued" }).to_string();
    send(&server, &doc, put(&mine, bad_id, 400)).await;
    let unknown = json!({ "id": uuid::Uuid::new_v4(), "status": "queued" }).to_string();
    send(&server, &doc, put(&mine, unknown, 404)).await;
    let theirs = format!("?user_id={other}");
    send(&server, &doc, put(&theirs, change("canceled"), 403)).await;
    send(&server, &doc, put(&mine, "{}".repeat(40 * 1024), 413)).await;
    server.stop().await;
}

#[tokio::test]
async fn a_stream_over_the_limit_is_the_documented_429() {
    let doc = document();
    let server = TestServer::start(Config {
        max_streams_per_user: 1,
        ..embedded()
    })
    .await;
    // The first stream stays open (held by its response) while the second is refused.
    let first = reqwest::get(server.url("/v2/sse?username=busy"))
        .await
        .expect("first stream");
    assert_eq!(first.status(), 200);
    for path in ["/v1/sse", "/v2/sse", "/v3/sse"] {
        let refused = send(
            &server,
            &doc,
            case(Method::GET, path, "?username=busy", 429),
        )
        .await;
        assert_eq!(refused["limit"], "max-streams-per-user");
    }
    drop(first);
    server.stop().await;
}
