//! The servers' protocols: how a subscriber's GET looks, how its events are framed,
//! and how a message is published, for sse-server (and Nchan, which speaks the same
//! /v2 API), Centrifugo (unidirectional SSE, server API) and Mercure.
//!
//! Every message carries the same payload, `seq=N t=NANOS`: as the whole body
//! (sse-server, Nchan), as the `data` field of a form (Mercure), or as the string
//! `m` of the publication's JSON data (Centrifugo, `{"m":"seq=N t=NANOS"}`).

use std::collections::HashMap;

use anyhow::{Result, bail};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// sse-server's /v2 (and /v3 for kafka): GET /v2/sse?username=U, POST
    /// /v2/message?username=U and /v2/broadcast, resume by Last-Event-ID.
    #[default]
    SseServer,
    /// The same /v2 API served by Nchan (bench/peers/nchan.conf).
    Nchan,
    /// Nchan with each subscriber on the broadcast channel alone
    /// (GET /v2/sse/all): its best configuration for fan-out, and only for fan-out.
    NchanAll,
    /// Centrifugo: GET /connection/uni_sse?cf_connect={"subs":{"user-U":{},"all":{}}},
    /// POST /api/publish (X-API-Key), resume by offset and epoch per channel.
    Centrifugo,
    /// Mercure: GET /.well-known/mercure?topic=user/U&topic=all, POST a form to
    /// /.well-known/mercure (Authorization: Bearer JWT), resume by Last-Event-ID.
    Mercure,
}

/// The channel (topic) every subscriber listens to besides its own.
pub const BROADCAST: &str = "all";

/// Where one message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// User number `u` (named `PREFIX{u}`).
    User(u64),
    Broadcast,
}

/// Where a connection resumes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResumePoint {
    /// The `id:` of the last event received (sse-server, Nchan, Mercure).
    LastEventId(String),
    /// Centrifugo: per channel, the epoch and the offset of the last publication.
    Positions(HashMap<String, ChannelPos>),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelPos {
    pub epoch: String,
    pub offset: u64,
}

impl Protocol {
    /// Events are `data: <json>` pushes (Centrifugo) rather than the plain payload.
    pub fn json_frames(&self) -> bool {
        matches!(self, Protocol::Centrifugo)
    }

    /// Speaks sse-server's /v2 API (and has its /metrics, for sse-server itself).
    pub fn is_v2(&self) -> bool {
        matches!(
            self,
            Protocol::SseServer | Protocol::Nchan | Protocol::NchanAll
        )
    }

    /// The channel or topic of user `name`.
    pub fn user_channel(&self, name: &str) -> String {
        match self {
            Protocol::Centrifugo => format!("user-{name}"),
            Protocol::Mercure => format!("user/{name}"),
            _ => name.to_string(),
        }
    }

    /// The GET request (request line and headers, up to the empty line) of a
    /// subscriber of user `name`; `v2_path` is `/v2/sse` or `/v3/sse` (sse-server
    /// and Nchan only).
    pub fn subscribe_request(
        &self,
        v2_path: &str,
        name: &str,
        host: &str,
        resume: Option<&ResumePoint>,
    ) -> String {
        let (target, last_event_id) = match self {
            Protocol::NchanAll => (format!("{v2_path}/all"), true),
            Protocol::SseServer | Protocol::Nchan => {
                (format!("{v2_path}?username={}", urlencode(name)), true)
            }
            Protocol::Mercure => (
                format!(
                    "/.well-known/mercure?topic={}&topic={}",
                    urlencode(&self.user_channel(name)),
                    urlencode(BROADCAST)
                ),
                true,
            ),
            Protocol::Centrifugo => {
                let mut subs = serde_json::Map::new();
                for ch in [self.user_channel(name), BROADCAST.to_string()] {
                    let sub = match resume {
                        Some(ResumePoint::Positions(map)) => match map.get(&ch) {
                            Some(p) => serde_json::json!({
                                "recover": true,
                                "offset": p.offset,
                                "epoch": p.epoch,
                            }),
                            None => serde_json::json!({}),
                        },
                        _ => serde_json::json!({}),
                    };
                    subs.insert(ch, sub);
                }
                let connect = serde_json::json!({ "subs": subs }).to_string();
                (
                    format!("/connection/uni_sse?cf_connect={}", urlencode(&connect)),
                    false,
                )
            }
        };
        let mut req =
            format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n");
        if let (true, Some(ResumePoint::LastEventId(id))) = (last_event_id, resume) {
            req.push_str("Last-Event-ID: ");
            req.push_str(id);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        req
    }

    /// The POST publishing `payload` to `dest`: (path, content type, body).
    /// `v2_prefix` is `/v2` (sse-server and Nchan only).
    pub fn publish_request(
        &self,
        v2_prefix: &str,
        user_prefix: &str,
        dest: Dest,
        payload: &str,
    ) -> (String, &'static str, String) {
        let name = |u: u64| format!("{user_prefix}{u}");
        match self {
            Protocol::SseServer | Protocol::Nchan | Protocol::NchanAll => {
                let path = match dest {
                    Dest::Broadcast => format!("{v2_prefix}/broadcast"),
                    Dest::User(u) => {
                        format!("{v2_prefix}/message?username={}", urlencode(&name(u)))
                    }
                };
                (path, "text/plain; charset=utf-8", payload.to_string())
            }
            Protocol::Centrifugo => {
                let channel = match dest {
                    Dest::Broadcast => BROADCAST.to_string(),
                    Dest::User(u) => self.user_channel(&name(u)),
                };
                let body = serde_json::json!({ "channel": channel, "data": { "m": payload } });
                (
                    "/api/publish".to_string(),
                    "application/json",
                    body.to_string(),
                )
            }
            Protocol::Mercure => {
                let topic = match dest {
                    Dest::Broadcast => BROADCAST.to_string(),
                    Dest::User(u) => self.user_channel(&name(u)),
                };
                (
                    "/.well-known/mercure".to_string(),
                    "application/x-www-form-urlencoded",
                    format!("topic={}&data={}", urlencode(&topic), urlencode(payload)),
                )
            }
        }
    }

    /// Whether a 2xx publish reply still reports a failure (Centrifugo answers API
    /// errors with 200 and `{"error":{...}}`).
    pub fn reply_is_error(&self, body: &[u8]) -> bool {
        match self {
            Protocol::Centrifugo => body.windows(7).any(|w| w == b"\"error\""),
            _ => false,
        }
    }
}

/// Checks `--publish-header` values: `Name: value`, one line each; returns them as
/// header lines ending in CRLF.
pub fn header_lines(headers: &[String]) -> Result<String> {
    let mut out = String::new();
    for h in headers {
        let Some((name, value)) = h.split_once(':') else {
            bail!("--publish-header {h:?}: expected \"Name: value\"");
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            || h.contains(['\r', '\n'])
        {
            bail!("--publish-header {h:?}: expected \"Name: value\" on one line");
        }
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value.trim());
        out.push_str("\r\n");
    }
    Ok(out)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---- Centrifugo pushes (JSON protocol, unidirectional transports) ----------------
// `{}` (ping), `{"connect":{"client":..,"subs":{"ch":{"recoverable":true,"epoch":"..",
// "offset":N,"publications":[..],"recovered":true,"was_recovering":true,"id":K}}}}`,
// `{"channel":"ch","pub":{"data":{..},"offset":N}}` (or `"id":K` instead of the
// channel when the server numbers channels), `{"disconnect":{..}}`.

#[derive(Deserialize, Debug)]
pub struct CfPush {
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default, rename = "pub")]
    pub publication: Option<CfPub>,
    #[serde(default)]
    pub connect: Option<CfConnect>,
    #[serde(default)]
    pub disconnect: Option<serde_json::Value>,
}

#[derive(Deserialize, Debug)]
pub struct CfConnect {
    #[serde(default)]
    pub subs: HashMap<String, CfSubResult>,
}

#[derive(Deserialize, Debug, Default)]
pub struct CfSubResult {
    #[serde(default)]
    pub epoch: String,
    #[serde(default)]
    pub offset: u64,
    #[serde(default)]
    pub publications: Vec<CfPub>,
    #[serde(default)]
    pub recovered: bool,
    #[serde(default)]
    pub was_recovering: bool,
    #[serde(default)]
    pub id: Option<i64>,
}

#[derive(Deserialize, Debug)]
pub struct CfPub {
    #[serde(default)]
    pub data: Option<CfData>,
    #[serde(default)]
    pub offset: u64,
    #[serde(default)]
    pub epoch: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
}

#[derive(Deserialize, Debug)]
pub struct CfData {
    #[serde(default)]
    pub m: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centrifugo_connect_request() {
        let mut pos = HashMap::new();
        pos.insert(
            "user-u1".to_string(),
            ChannelPos {
                epoch: "ab".into(),
                offset: 7,
            },
        );
        let req = Protocol::Centrifugo.subscribe_request(
            "/v2/sse",
            "u1",
            "h",
            Some(&ResumePoint::Positions(pos)),
        );
        let line = req.lines().next().unwrap();
        let q = line
            .strip_prefix("GET /connection/uni_sse?cf_connect=")
            .unwrap()
            .strip_suffix(" HTTP/1.1")
            .unwrap();
        let decoded = percent_decode(q);
        let v: serde_json::Value = serde_json::from_str(&decoded).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"subs": {"user-u1": {"recover": true, "offset": 7, "epoch": "ab"}, "all": {}}})
        );
        assert!(!req.contains("Last-Event-ID"));
    }

    #[test]
    fn mercure_requests() {
        let req = Protocol::Mercure.subscribe_request(
            "/v2/sse",
            "u1",
            "h",
            Some(&ResumePoint::LastEventId("urn:uuid:1".into())),
        );
        assert!(req.starts_with("GET /.well-known/mercure?topic=user%2Fu1&topic=all HTTP/1.1\r\n"));
        assert!(req.contains("\r\nLast-Event-ID: urn:uuid:1\r\n"));
        let (path, ct, body) =
            Protocol::Mercure.publish_request("/v2", "p-", Dest::User(3), "seq=1 t=2");
        assert_eq!(path, "/.well-known/mercure");
        assert_eq!(ct, "application/x-www-form-urlencoded");
        assert_eq!(body, "topic=user%2Fp-3&data=seq%3D1%20t%3D2");
    }

    #[test]
    fn header_lines_checked() {
        assert_eq!(
            header_lines(&["X-API-Key:  k ".into()]).unwrap(),
            "X-API-Key: k\r\n"
        );
        assert!(header_lines(&["nocolon".into()]).is_err());
        assert!(header_lines(&["A: b\r\nC: d".into()]).is_err());
    }

    fn percent_decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }
}
