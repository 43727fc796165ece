//! The built-in web UI: static assets compiled into the binary (no build step, nothing
//! fetched from elsewhere), served at `/`, plus the status summary it shows.
//!
//! Assets are referenced with `?v=<hash of their content>` so they can be cached for a
//! year; the page itself is revalidated with its ETag on every load.

use crate::app::{json, AppState};
use crate::config::BackendKind;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::{Arc, OnceLock};

const JS: &str = "text/javascript; charset=utf-8";
/// (name, content type, content).
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("../ui/app.js")),
    ("view.js", JS, include_str!("../ui/view.js")),
    ("chart.js", JS, include_str!("../ui/chart.js")),
    ("logql.js", JS, include_str!("../ui/logql.js")),
    ("complete.js", JS, include_str!("../ui/complete.js")),
    ("status.js", JS, include_str!("../ui/status.js")),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../ui/style.css"),
    ),
];
const INDEX: &str = include_str!("../ui/index.html");

fn etag(content: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(content.as_bytes()))
}

/// The page with every asset URL versioned by its content, and the ETags of the page and
/// of each asset (in [`ASSETS`] order), computed once.
struct Tagged {
    page: String,
    page_tag: String,
    asset_tags: Vec<String>,
}

fn tagged() -> &'static Tagged {
    static TAGGED: OnceLock<Tagged> = OnceLock::new();
    TAGGED.get_or_init(|| {
        let asset_tags: Vec<String> = ASSETS.iter().map(|(_, _, c)| etag(c)).collect();
        let mut page = INDEX.to_string();
        for ((name, _, _), tag) in ASSETS.iter().zip(&asset_tags) {
            page = page.replace(&format!("/ui/{name}\""), &format!("/ui/{name}?v={tag}\""));
        }
        Tagged {
            page_tag: etag(&page),
            page,
            asset_tags,
        }
    })
}

/// Routes of the UI (compressed by the caller's layer).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(page))
        .route("/ui/{file}", get(asset))
        .route("/silt/api/v1/status", get(status))
}

fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_matches('"') == tag)
}

async fn page(headers: HeaderMap) -> Response {
    let Tagged {
        page,
        page_tag: tag,
        ..
    } = tagged();
    if not_modified(&headers, tag) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (header::CACHE_CONTROL, "no-cache".to_string()),
            (header::ETAG, format!("\"{tag}\"")),
        ],
        page.as_str(),
    )
        .into_response()
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|(n, _, _)| *n == file) else {
        return (StatusCode::NOT_FOUND, "no such asset\n").into_response();
    };
    let (_, ctype, content) = ASSETS[i];
    let tag = &tagged().asset_tags[i];
    if not_modified(&headers, tag) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            // URLs carry the content hash, so a cached copy is never stale.
            (
                header::CACHE_CONTROL,
                "public, max-age=31536000, immutable".to_string(),
            ),
            (header::ETAG, format!("\"{tag}\"")),
        ],
        content,
    )
        .into_response()
}

/// What the status view shows besides `/metrics`: settings that matter to an operator,
/// picked one by one so no secret can leak.
async fn status(State(state): State<Arc<AppState>>) -> Response {
    let cfg = &state.cfg;
    let st = &cfg.storage;
    let backend = match st.object_store.backend {
        BackendKind::Local => serde_json::json!({"type": "local"}),
        BackendKind::S3 => serde_json::json!({
            "type": "s3",
            "bucket": st.object_store.s3.bucket,
            "endpoint": st.object_store.s3.endpoint,
            "region": st.object_store.s3.region,
            "prefix": st.object_store.s3.prefix,
        }),
    };
    let body = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "auth_enabled": cfg.auth_enabled,
        "object_store": {
            "backend": backend,
            "failing": state.store.object_store_failing(),
        },
        "wal_full": state.store.wal_full(),
        "storage": {
            "data_dir": st.data_dir,
            "wal_fsync": st.wal_fsync,
            "flush_max_bytes": st.flush_max_bytes,
            "flush_max_age_seconds": st.flush_max_age.as_secs(),
            "max_head_memory": st.max_head_memory,
            "zstd_level": st.zstd_level,
            "content_index": st.content_index,
        },
        "retention": {
            "enabled": cfg.compactor.retention_enabled,
            "period_seconds": cfg.limits.retention_period.as_secs(),
        },
        "compaction": {
            "enabled": cfg.compactor.compaction_enabled,
            "interval_seconds": cfg.compactor.compaction_interval.as_secs(),
        },
        "ruler": {
            "api": cfg.ruler.enable_api,
            "alertmanagers": cfg.ruler.alertmanager_urls().len(),
        },
    });
    json(body.to_string())
}
