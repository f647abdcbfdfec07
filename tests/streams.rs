//! /v1 and /v2 against the real server: tabs, users, broadcast, framing, resume,
//! headers and every error answer.

mod common;

use common::{SseClient, TestServer, embedded, unique};
use serde_json::Value;

async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

#[tokio::test]
async fn two_tabs_of_a_user_get_a_message_and_another_user_does_not() {
    let server = TestServer::start(embedded()).await;
    let user = unique("demo");
    let stream = |name: &str| server.url(&format!("/v2/sse?username={name}"));
    let mut tab1 = SseClient::connect(&stream(&user)).await;
    let mut tab2 = SseClient::connect(&stream(&user)).await;
    let someone_else = unique("someone-else");
    let mut other = SseClient::connect(&stream(&someone_else)).await;

    let reply = server
        .post(&format!("/v2/message?username={user}"), "Howdy")
        .await;
    assert_eq!(reply.status(), 202);
    let body = json(reply).await;
    assert_eq!(body["delivered"], 2);

    for tab in [&mut tab1, &mut tab2] {
        let event = tab.next().await;
        assert_eq!(event.data, "Howdy");
        assert_eq!(event.id, body["id"].as_str().expect("id is a string"));
    }
    let marker = server
        .post(&format!("/v2/message?username={someone_else}"), "marker")
        .await;
    assert_eq!(marker.status(), 202);
    other.expect_marker("marker").await;
    server.stop().await;
}

#[tokio::test]
async fn streams_have_the_sse_headers_and_a_retry_hint() {
    let server = TestServer::start(embedded()).await;
    let client = SseClient::connect(&server.url("/v2/sse?username=h")).await;
    assert_eq!(client.status, 200);
    assert_eq!(client.headers["content-type"], "text/event-stream");
    assert_eq!(client.headers["cache-control"], "no-cache");
    assert_eq!(client.headers["x-accel-buffering"], "no");
    let raw = reqwest::get(server.url("/v1/sse?username=h"))
        .await
        .expect("v1");
    let mut body = raw.bytes_stream();
    use futures_util::StreamExt;
    let first = body.next().await.expect("a first chunk").expect("bytes");
    assert_eq!(&first[..], b"retry: 2000\n\n");
    server.stop().await;
}

#[tokio::test]
async fn broadcast_reaches_every_user() {
    let server = TestServer::start(embedded()).await;
    let mut a = SseClient::connect(&server.url("/v2/sse?username=a")).await;
    let mut b = SseClient::connect(&server.url("/v2/sse?username=b")).await;
    let reply = server.post("/v2/broadcast", "to everyone").await;
    assert_eq!(reply.status(), 202);
    assert_eq!(json(reply).await["delivered"], 2);
    assert_eq!(a.next().await.data, "to everyone");
    assert_eq!(b.next().await.data, "to everyone");
    server.stop().await;
}

#[tokio::test]
async fn multi_line_and_crlf_bodies_arrive_as_sent_with_lf() {
    let server = TestServer::start(embedded()).await;
    let mut client = SseClient::connect(&server.url("/v2/sse?username=m")).await;
    server
        .post("/v2/message?username=m", "one\ntwo\nthree")
        .await;
    server.post("/v2/message?username=m", "a\r\nb\rc").await;
    assert_eq!(client.next().await.data, "one\ntwo\nthree");
    assert_eq!(client.next().await.data, "a\nb\nc");
    server.stop().await;
}

#[tokio::test]
async fn resume_with_last_event_id_replays_missed_events_once_in_order() {
    let server = TestServer::start(embedded()).await;
    let stream = server.url("/v2/sse?username=r");
    let mut first = SseClient::connect(&stream).await;
    server.post("/v2/message?username=r", "1").await;
    let seen = first.next().await;
    assert_eq!(seen.data, "1");
    drop(first);
    // Missed while away (the user's history is kept after the last tab closed).
    for text in ["2", "3", "4"] {
        server.post("/v2/message?username=r", text).await;
    }

    let mut again = SseClient::connect_with(&stream, Some(&seen.id)).await;
    for expected in ["2", "3", "4"] {
        assert_eq!(again.next().await.data, expected);
    }
    server.post("/v2/message?username=r", "5").await;
    assert_eq!(
        again.next().await.data,
        "5",
        "then live events, nothing twice"
    );

    // The query parameter works like the header.
    let url = format!("{stream}&lastEventId={}", seen.id);
    let mut by_query = SseClient::connect(&url).await;
    assert_eq!(by_query.next().await.data, "2");
    server.stop().await;
}

#[tokio::test]
async fn v1_says_hi_at_once_and_sends_keep_alive_comments() {
    let mut config = embedded();
    config.keep_alive = Some(std::time::Duration::from_millis(100));
    let server = TestServer::start(config).await;
    let response = reqwest::get(server.url("/v1/sse?username=demo"))
        .await
        .expect("v1");
    use futures_util::StreamExt;
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    while !(seen.contains("data: hi!") && seen.contains(": keep-alive-text")) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("hi! and a keep-alive comment")
            .expect("stream open")
            .expect("bytes");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.find("data: hi!") < seen.find(": keep-alive-text"),
        "hi! comes at once"
    );
    assert!(seen.contains("\nid: "), "hi! has an id: {seen}");
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let server = TestServer::start(embedded()).await;
    let client = reqwest::Client::new();
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (client.get(server.url("/v2/sse")), 400),
        (client.get(server.url("/v2/sse?username=")), 400),
        (client.get(server.url("/v1/sse")), 400),
        (client.post(server.url("/v2/message")).body("x"), 400),
        (
            client
                .post(server.url("/v2/message?username=%20"))
                .body("x"),
            400,
        ),
        (
            client.post(server.url("/v2/message?username=u")).body(""),
            400,
        ),
        (
            client
                .post(server.url("/v2/message?username=u"))
                .body(vec![0xff, 0xfe]),
            400,
        ),
        (client.post(server.url("/v2/broadcast")).body(""), 400),
        (
            client
                .post(server.url("/v2/message?username=u"))
                .body(vec![b'a'; 64 * 1024 + 1]),
            413,
        ),
        (client.get(server.url("/v2/message?username=u")), 405),
        (client.delete(server.url("/v2/sse?username=u")), 405),
        (client.get(server.url("/no/such/route")), 404),
    ];
    for (request, expected) in cases {
        let response = request.send().await.expect("response");
        let url = response.url().to_string();
        assert_eq!(response.status().as_u16(), expected, "{url}");
        let body: Value = response.json().await.expect("JSON error body");
        let message = body["error"].as_str().expect("an error sentence");
        assert!(message.len() > 10, "{url}: {message}");
    }
    // Exactly 64 KiB is fine.
    let ok = server
        .post("/v2/message?username=u", vec![b'a'; 64 * 1024])
        .await;
    assert_eq!(ok.status(), 202);
    server.stop().await;
}

#[tokio::test]
async fn health_and_metrics() {
    let server = TestServer::start(embedded()).await;
    let health = reqwest::get(server.url("/healthz")).await.expect("healthz");
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.expect("body"), "ok");
    let _open = SseClient::connect(&server.url("/v2/sse?username=x")).await;
    server.post("/v2/message?username=x", "m").await;
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"sse_open_streams{version="v2"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sse_events_delivered_total{version="v2"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"http_requests_total{route="/v2/message",status="202"} 1"#),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let mut config = embedded();
    config.cors_origins = vec!["http://ui.example".to_owned()];
    let server = TestServer::start(config).await;
    let client = reqwest::Client::new();
    let ask = |origin: &'static str| {
        client
            .request(
                reqwest::Method::OPTIONS,
                server.url("/v2/message?username=c"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = ask("http://ui.example").await.expect("preflight");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://ui.example"
    );
    let other = ask("http://elsewhere.example").await.expect("preflight");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

#[tokio::test]
async fn the_dashboard_is_served_at_the_root_with_a_browser_fallback() {
    let dir = std::env::temp_dir().join(unique("dist"));
    std::fs::create_dir_all(dir.join("assets")).expect("dist dir");
    std::fs::write(dir.join("index.html"), "<html>board</html>").expect("index");
    std::fs::write(dir.join("assets/app.js"), "console.log(1)").expect("asset");
    let mut config = embedded();
    config.static_dir = dir.clone();
    let server = TestServer::start(config).await;
    let client = reqwest::Client::new();
    let get = |path: &str, accept: &'static str| {
        client.get(server.url(path)).header("accept", accept).send()
    };
    let root = get("/", "*/*").await.expect("root");
    assert_eq!(root.status(), 200);
    assert_eq!(root.text().await.expect("body"), "<html>board</html>");
    let asset = get("/assets/app.js", "*/*").await.expect("asset");
    assert_eq!(asset.text().await.expect("body"), "console.log(1)");
    let page = get("/some/page", "text/html").await.expect("page");
    assert_eq!(page.text().await.expect("body"), "<html>board</html>");
    let api = get("/some/page", "application/json").await.expect("api");
    assert_eq!(api.status(), 404);
    assert!(api.text().await.expect("body").contains("\"error\""));
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
