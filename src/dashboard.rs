//! The built dashboard (`frontend/dist`, `--static-dir`), served at `/` as the
//! router's fallback: any route the API does not have.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::error::ApiError;

/// Where the built dashboard is.
#[derive(Clone)]
pub struct StaticDir(pub PathBuf);

/// The built dashboard at `/`. Browsers asking for an unknown page get
/// `index.html` (the app routes on the client); other clients get a JSON 404.
pub async fn dashboard(State(StaticDir(dir)): State<StaticDir>, request: Request) -> Response {
    let path = request.uri().path();
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let is_asset = path
        .rsplit('/')
        .next()
        .is_some_and(|name| name.contains('.'));
    if request.method() != Method::GET || !(path == "/" || wants_html || is_asset) {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "No such route. See the README for the routes this server has",
        )
        .into_response();
    }
    let index = dir.join("index.html");
    if !index.exists() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "The dashboard is not built ({} is missing). Run scripts/run.sh, or `npm ci && npm run build` in frontend/",
                index.display()
            ),
        )
        .into_response();
    }
    match ServeDir::new(dir)
        .fallback(ServeFile::new(index))
        .oneshot(request)
        .await
    {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}
