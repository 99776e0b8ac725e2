//! The operations listener (`[http] listen`): `/metrics` (Prometheus), `/healthz`,
//! `/readyz`, `/api/blocks`, `/api/feeds`, and `/`, a small self-refreshing page for
//! analysts with no external assets. Read-only: nothing here changes the policy.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::handler::Handler;
use crate::metrics::Gauges;
use crate::reload::Live;

#[derive(Clone)]
struct AppState {
    handler: Arc<Handler>,
    live: Arc<Live>,
}

/// Binds the listener and serves until `stopped` fires.
pub async fn serve(
    addr: SocketAddr,
    handler: Arc<Handler>,
    live: Arc<Live>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/api/blocks", get(blocks))
        .route("/api/feeds", get(feeds))
        .with_state(AppState { handler, live });
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.changed().await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "http listener stopped");
        }
    });
    Ok((bound, task))
}

async fn metrics(State(s): State<AppState>) -> Response {
    let policy = s.live.policy.load();
    let gauges = Gauges {
        cache_entries: s.handler.cache().len(),
        log_dropped: s.handler.log().dropped(),
        feeds: policy
            .feeds
            .iter()
            .map(|f| (f.name.clone(), f.indicators))
            .collect(),
    };
    let body = s.handler.metrics().render(&gauges);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Ready: a policy is loaded (always, once serving) and the upstreams answer.
async fn ready(State(s): State<AppState>) -> Response {
    if s.handler.metrics().upstream_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "upstreams failing\n").into_response()
    }
}

#[derive(Deserialize)]
struct BlocksQuery {
    /// Unix seconds: only events after this.
    since: Option<f64>,
    limit: Option<usize>,
}

async fn blocks(State(s): State<AppState>, Query(q): Query<BlocksQuery>) -> Response {
    let lines = s
        .handler
        .metrics()
        .recent_blocks(q.since, q.limit.unwrap_or(100).min(1000));
    let body = format!("[{}]", lines.join(","));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(Serialize)]
struct FeedView {
    name: String,
    source: String,
    format: &'static str,
    indicators: usize,
    skipped: usize,
    data_age_seconds: Option<u64>,
    missing: Option<String>,
}

async fn feeds(State(s): State<AppState>) -> Response {
    let policy = s.live.policy.load();
    let now = std::time::SystemTime::now();
    let views: Vec<FeedView> = policy
        .feeds
        .iter()
        .map(|f| FeedView {
            name: f.name.clone(),
            source: f.source.clone(),
            format: f.format.as_str(),
            indicators: f.indicators,
            skipped: f.skipped.values().sum(),
            data_age_seconds: f
                .data_time
                .and_then(|t| now.duration_since(t).ok())
                .map(|d| d.as_secs()),
            missing: f.missing.clone(),
        })
        .collect();
    axum::Json(views).into_response()
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>iocsink</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em} h2{font-size:1.05em;margin-top:1.5em}
table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f4f4f4} .muted{color:#777}
</style></head><body>
<h1>iocsink <span class="muted" id="updated"></span></h1>
<h2>Recent blocks</h2>
<table id="blocks"><thead><tr><th>Time</th><th>Client</th><th>Name</th><th>Indicator</th><th>Family</th><th>Feed</th><th>Action</th></tr></thead><tbody></tbody></table>
<h2>Top blocked clients</h2>
<table id="clients"><thead><tr><th>Client</th><th>Blocks</th></tr></thead><tbody></tbody></table>
<h2>Feeds</h2>
<table id="feeds"><thead><tr><th>Feed</th><th>Source</th><th>Format</th><th>Indicators</th><th>Skipped</th><th>Data age</th></tr></thead><tbody></tbody></table>
<script>
function cell(t){const td=document.createElement('td');td.textContent=t==null?'':String(t);return td}
function fill(id,rows){const tb=document.querySelector('#'+id+' tbody');tb.replaceChildren(...rows.map(r=>{const tr=document.createElement('tr');r.forEach(v=>tr.appendChild(cell(v)));return tr}))}
async function refresh(){
  const blocks=await (await fetch('/api/blocks?limit=200')).json();
  fill('blocks',blocks.slice().reverse().map(b=>[b.TimeGenerated,b.ClientIP,b.Name,b.Indicator,b.MalwareFamily,b.Feed,b.Action]));
  const counts={};blocks.forEach(b=>counts[b.ClientIP]=(counts[b.ClientIP]||0)+1);
  fill('clients',Object.entries(counts).sort((a,b)=>b[1]-a[1]).slice(0,10));
  const feeds=await (await fetch('/api/feeds')).json();
  fill('feeds',feeds.map(f=>[f.name,f.source,f.format,f.indicators,f.skipped,f.data_age_seconds==null?(f.missing||''):f.data_age_seconds+' s']));
  document.getElementById('updated').textContent='updated '+new Date().toLocaleTimeString();
}
refresh();setInterval(refresh,5000);
</script></body></html>
"#;
