//! `voyager serve`: an OpenAI-compatible HTTP server over one engine.
//!
//! - `POST /v1/chat/completions` and `POST /v1/completions`, whole or streamed as server-sent
//!   events ending with `data: [DONE]`;
//! - `GET /v1/models`, `GET /v1/models/{id}`, `GET /health` (slots, queue, memory);
//! - `--parallel N` sessions planned inside the memory budget, a bounded queue beyond them,
//!   prompt reuse by prefix, cancellation when a client goes away;
//! - every error in OpenAI's JSON shape, with a 4xx for anything the client got wrong.
//!
//! The engine and its sessions do the work; this crate is routing, request checking and
//! response shapes.

mod error;
mod handlers;
mod openai;
mod request;
mod slots;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use voyager_runtime::Engine;

pub use error::ApiError;
pub use request::Limits;

/// How the server behaves, beyond the engine's own options.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Requests must carry `Authorization: Bearer KEY` (all routes but `/health`).
    pub api_key: Option<String>,
    /// Requests that may wait for a session when all are busy; more get a 503.
    pub queue: usize,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    pub limits: Limits,
    /// Names the model answers to in `model` (the first is the one `/v1/models` lists
    /// first and responses carry).
    pub names: Vec<String>,
    /// The memory budget the engine was loaded with, reported by `/health`.
    pub mem_budget: Option<u64>,
}

/// What every request handler shares.
pub struct AppState {
    engine: Arc<Engine>,
    slots: Arc<slots::Slots>,
    options: ServerOptions,
    created: u64,
    next_id: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
}

impl AppState {
    /// Opens every session the engine was planned for (`EngineOptions::max_sessions`).
    pub fn new(engine: Arc<Engine>, options: ServerOptions) -> voyager_runtime::Result<Arc<Self>> {
        if options.names.is_empty() {
            return Err(voyager_runtime::Error::InvalidArgument(
                "the server needs at least one name for its model".into(),
            ));
        }
        let parallel = engine.memory_plan().sessions.max(1);
        let sessions = (0..parallel)
            .map(|_| engine.session())
            .collect::<voyager_runtime::Result<Vec<_>>>()?;
        Ok(Arc::new(Self {
            engine,
            slots: slots::Slots::new(sessions, options.queue),
            options,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            next_id: AtomicU64::new(1),
            completed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }))
    }

    /// The name to answer with: the request's, when it is one of ours (absent: the first).
    fn check_model(&self, asked: Option<&str>) -> Result<String, ApiError> {
        match asked {
            None | Some("") => Ok(self.options.names[0].clone()),
            Some(name) if self.options.names.iter().any(|n| n == name) => Ok(name.to_owned()),
            Some(name) => Err(ApiError::model_not_found(name, &self.options.names)),
        }
    }

    fn model_entry(&self, name: &str) -> serde_json::Value {
        let config = &self.engine.model().config;
        serde_json::json!({
            "id": name,
            "object": "model",
            "created": self.created,
            "owned_by": "voyager",
            "meta": {
                "architecture": config.arch.to_string(),
                "name": config.name,
                "vocab_size": config.vocab_size,
                "context_size": self.engine.context_size(),
                "parallel": self.slots.parallel(),
            },
        })
    }
}

/// The routes, with the key check and the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(handlers::chat))
        .route("/v1/completions", post(handlers::completions))
        .route("/v1/models", get(handlers::models))
        .route("/v1/models/{*id}", get(handlers::model))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            require_key,
        ));
    Router::new()
        .route("/health", get(handlers::health))
        .merge(api)
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.options.max_body))
        .with_state(state)
}

async fn require_key(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &st.options.api_key {
        let given = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same_key(g.trim().as_bytes(), key.as_bytes())) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

/// Compares keys in time that does not depend on where they differ.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves on `listener` until Ctrl-C (or SIGTERM); requests in flight finish first.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    log::info!("shutting down: finishing the requests in flight");
}

/// Binds `addr` (port 0: any free port) and returns the listener and the address it got.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
