//! The one error type handlers return, and the layer that gives every error
//! response (including axum's own 404/405/413 and extractor rejections) the
//! JSON body `{"error": "..."}` that docs/openapi.json documents (its `Error` schema).

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::bus::BusError;

/// An HTTP error with a sentence that says what is wrong and how to fix it,
/// optional extra JSON fields (e.g. the allowed transitions of a 409) and headers
/// (e.g. `Retry-After` of a 429).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub extra: Option<Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            extra: None,
            headers: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// A 503 for a record the bus did not acknowledge: the body's `written`
    /// (`"no"` or `"maybe"`) tells the client whether a plain retry is safe.
    /// `what` names the record ("message", "change"), `effect` what landing means
    /// ("delivered", "applied").
    pub fn not_acknowledged(e: &BusError, what: &str, effect: &str) -> ApiError {
        let advice = match e {
            BusError::NotWritten(_) => {
                format!("The {what} was not written and will not be {effect}: retrying is safe")
            }
            BusError::MaybeWritten(_) => format!(
                "The {what} may have been written and may still be {effect}: a retry may repeat it"
            ),
        };
        ApiError::unavailable(format!(
            "Kafka did not acknowledge the {what} ({e}). {advice}"
        ))
        .with_extra(json!({ "written": e.written() }))
    }

    pub fn with_extra(mut self, extra: Value) -> ApiError {
        self.extra = Some(extra);
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let (Some(Value::Object(extra)), Value::Object(map)) = (self.extra, &mut body) {
            map.extend(extra);
        }
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

/// Rewrites error responses that are not JSON yet (axum's rejections, 404, 405,
/// 413) into `{"error": "..."}`, keeping their status and their text when it says
/// something useful.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match status {
        StatusCode::NOT_FOUND => {
            "No such route. See the README for the routes this server has.".to_owned()
        }
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "This route does not accept {method}. The Allow header lists the methods it does"
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            "The request body is larger than 64 KiB. Send a smaller body.".to_owned()
        }
        _ if !text.is_empty() => text,
        _ => status
            .canonical_reason()
            .unwrap_or("Request failed")
            .to_owned(),
    };
    let mut rewritten = ApiError::new(status, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name, value.clone());
        }
    }
    rewritten
}
