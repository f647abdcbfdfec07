//! Limits against the real server: usernames that are not 1–128 bytes of printable
//! text get 400 on every route that takes one, and streams over `--max-streams` or
//! `--max-streams-per-user` get 429 with `Retry-After` until a slot comes free.

mod common;

use common::{TestServer, embedded, eventually};
use serde_json::Value;
use sse_server::config::Config;

/// Status, `Retry-After` and JSON body of one request.
async fn send(request: reqwest::RequestBuilder) -> (u16, Option<String>, Option<Value>) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = if status >= 400 {
        Some(response.json().await.expect("a JSON error"))
    } else {
        None
    };
    (status, retry_after, body)
}

#[tokio::test]
async fn usernames_must_be_1_to_128_bytes_of_printable_text() {
    let server = TestServer::start(embedded()).await;
    let client = reqwest::Client::new();
    let too_long = "a".repeat(129);
    let bad = [
        "a%0D%0Ab",
        "a%0Ab",
        "bob%0A",
        "%0D",
        "a%07b",
        "a%00b",
        too_long.as_str(),
    ];
    for name in bad {
        for path in ["/v1/sse", "/v2/sse", "/v3/sse"] {
            let (status, _, body) =
                send(client.get(server.url(&format!("{path}?username={name}")))).await;
            assert_eq!(status, 400, "{path}?username={name}");
            assert!(body.expect("body")["error"].is_string());
        }
        for path in ["/v2/message", "/v3/message"] {
            let (status, _, _) = send(
                client
                    .post(server.url(&format!("{path}?username={name}")))
                    .body("hi"),
            )
            .await;
            assert_eq!(status, 400, "{path}?username={name}");
        }
    }
    let longest = "é".repeat(64);
    let (status, _, _) = send(client.get(server.url(&format!("/v2/sse?username={longest}")))).await;
    assert_eq!(status, 200, "128 bytes is allowed");
    let (status, _, _) = send(
        client
            .post(server.url(&format!("/v2/message?username={longest}")))
            .body("hi"),
    )
    .await;
    assert_eq!(status, 202);
    server.stop().await;
}

#[tokio::test]
async fn streams_over_the_limits_get_429_with_retry_after_until_one_closes() {
    let server = TestServer::start(Config {
        max_streams: Some(4),
        max_streams_per_user: 2,
        // Frequent keep-alives: the server learns at once that a client has gone.
        keep_alive: Some(std::time::Duration::from_millis(50)),
        ..embedded()
    })
    .await;
    let client = reqwest::Client::new();
    let open = |path: &str| client.get(server.url(path)).send();
    let alice1 = open("/v2/sse?username=alice").await.expect("alice 1");
    let alice2 = open("/v1/sse?username=alice").await.expect("alice 2");
    assert_eq!(
        (alice1.status().as_u16(), alice2.status().as_u16()),
        (200, 200)
    );

    let (status, retry_after, body) = send(client.get(server.url("/v3/sse?username=alice"))).await;
    assert_eq!(status, 429, "a third stream of one user");
    assert!(retry_after.expect("Retry-After").parse::<u64>().is_ok());
    let body = body.expect("body");
    assert_eq!(body["limit"], "max-streams-per-user");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("--max-streams-per-user")
    );

    let user = uuid::Uuid::new_v4();
    let bob = open("/v2/sse?username=bob").await.expect("bob");
    let owner = open(&format!("/v4/sse?user_id={user}")).await.expect("v4");
    assert_eq!((bob.status().as_u16(), owner.status().as_u16()), (200, 200));
    let (status, retry_after, body) = send(client.get(server.url("/v2/sse?username=carol"))).await;
    assert_eq!(status, 429, "over the total");
    assert!(retry_after.is_some());
    assert_eq!(body.expect("body")["limit"], "max-streams");

    drop(alice1);
    eventually("a closed stream to free its slot", || async {
        client
            .get(server.url("/v2/sse?username=carol"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    drop((alice2, bob, owner));
    server.stop().await;
}
