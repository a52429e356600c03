//! The routes: chat and text completions (whole or streamed as server-sent events), the model
//! list and health. Generation runs on a blocking thread over a lent session; a request whose
//! client goes away cancels it (within a token) and the session goes back to the pool.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::Stream;
use voyager_runtime::engine::{CancelToken, GenerateOptions, Generation, Prompt};

use crate::error::ApiError;
use crate::openai::{Endpoint, Envelope, Tokens};
use crate::request::{ApiJson, Body, Job, PromptInput};
use crate::AppState;

type Shared = State<Arc<AppState>>;

pub async fn chat(State(st): Shared, ApiJson(body): ApiJson<Body>) -> Result<Response, ApiError> {
    let model = st.check_model(body.model.as_deref())?;
    let job = body.chat_job(&st.options.limits)?;
    let messages = body.chat_messages()?;
    // Templating and tokenizing a large body is CPU work: off the async workers.
    let engine = Arc::clone(&st.engine);
    let ids = tokio::task::spawn_blocking(move || engine.chat_tokens(&messages))
        .await
        .map_err(|e| ApiError::worker(&e))?
        .map_err(|e| ApiError::engine(&e))?;
    respond(st, Endpoint::Chat, model, ids, job).await
}

pub async fn completions(
    State(st): Shared,
    ApiJson(body): ApiJson<Body>,
) -> Result<Response, ApiError> {
    let model = st.check_model(body.model.as_deref())?;
    let job = body.completion_job(&st.options.limits)?;
    let text = match body.prompt {
        None => return Err(ApiError::invalid(Some("prompt"), "`prompt` is required")),
        Some(PromptInput::Text(text)) => Ok(text),
        Some(PromptInput::Texts(mut texts)) if texts.len() == 1 => Ok(texts.remove(0)),
        Some(PromptInput::Texts(texts)) => {
            return Err(ApiError::invalid(
                Some("prompt"),
                format!(
                    "`prompt` has {} texts; send one prompt per request",
                    texts.len()
                ),
            ))
        }
        Some(PromptInput::Tokens(ids)) => Err(ids),
    };
    let ids = match text {
        Ok(text) => {
            // Tokenizing a large body is CPU work: off the async workers.
            let engine = Arc::clone(&st.engine);
            tokio::task::spawn_blocking(move || engine.model().tokenizer.encode(&text, true))
                .await
                .map_err(|e| ApiError::worker(&e))?
                .map_err(|e| ApiError::engine(&e))?
        }
        Err(ids) => {
            // The ids the model has rows for (a tokenizer may list more).
            let vocab = st.engine.model().config.vocab_size as i64;
            ids.iter()
                .map(|&id| {
                    u32::try_from(id)
                        .ok()
                        .filter(|_| id < vocab)
                        .ok_or_else(|| {
                            ApiError::invalid(
                                Some("prompt"),
                                format!("token id {id} is outside the vocabulary of {vocab}"),
                            )
                        })
                })
                .collect::<Result<Vec<u32>, _>>()?
        }
    };
    if ids.is_empty() {
        return Err(ApiError::invalid(Some("prompt"), "`prompt` is empty"));
    }
    respond(st, Endpoint::Completion, model, ids, job).await
}

/// Cancels a generation when the request that wanted it is dropped (its client went away).
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

async fn respond(
    st: Arc<AppState>,
    endpoint: Endpoint,
    model: String,
    ids: Vec<u32>,
    job: Job,
) -> Result<Response, ApiError> {
    let envelope = Envelope {
        endpoint,
        id: format!(
            "{}-{}",
            endpoint.id_prefix(),
            st.next_id.fetch_add(1, Ordering::Relaxed)
        ),
        created: unix_now(),
        model,
    };
    let cancel = CancelToken::new();
    let on_drop = CancelOnDrop(cancel.clone());
    let mut guard = st.slots.acquire(&ids).await?;
    let options = GenerateOptions {
        cancel: Some(cancel),
        ..job.options.clone()
    };
    let engine = Arc::clone(&st.engine);
    if !job.stream {
        let st2 = Arc::clone(&st);
        let gen = tokio::task::spawn_blocking(move || {
            let slot = guard.slot();
            log::debug!("slot {}: {} prompt tokens", slot.id, ids.len());
            let result =
                slot.session
                    .generate_pieces(Prompt::Sequence(&ids), &options, &mut |_| true);
            st2.count(&result);
            result
        })
        .await
        .map_err(|e| ApiError::worker(&e))?
        .map_err(|e| ApiError::engine(&e))?;
        drop(on_drop);
        return Ok(Json(envelope.response(&engine, &gen, job.logprobs)).into_response());
    }

    let (tx, rx) = mpsc::unbounded_channel::<Result<Event, Infallible>>();
    let send = move |data: String| tx.send(Ok(Event::default().data(data))).is_ok();
    if endpoint == Endpoint::Chat {
        send(envelope.role_chunk().to_string());
    }
    tokio::task::spawn_blocking(move || {
        let slot = guard.slot();
        let mut offset = 0;
        let result = slot
            .session
            .generate_pieces(Prompt::Sequence(&ids), &options, &mut |piece| {
                let tokens = job.logprobs.then_some(Tokens {
                    ids: piece.tokens,
                    logprobs: piece.logprobs,
                    top: piece.top_logprobs,
                });
                if piece.text.is_empty() && tokens.is_none() {
                    return true;
                }
                let chunk = envelope.text_chunk(&engine, piece.text, tokens, offset);
                if job.logprobs && endpoint == Endpoint::Completion {
                    offset += crate::openai::text_chars(&engine, piece.tokens);
                }
                send(chunk.to_string())
            });
        st.count(&result);
        match &result {
            Ok(gen) => {
                send(envelope.finish_chunk(gen).to_string());
                if job.include_usage {
                    send(envelope.usage_chunk(gen).to_string());
                }
            }
            Err(e) => {
                send(ApiError::engine(e).body_json().to_string());
            }
        }
        // The session goes back to the pool before the client hears the stream is over.
        drop(guard);
        send("[DONE]".to_string());
    });
    let stream = GuardedStream {
        inner: UnboundedReceiverStream::new(rx),
        _cancel: on_drop,
    };
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(2)))
        .into_response())
}

/// An event stream that cancels its generation when the client stops reading it.
struct GuardedStream {
    inner: UnboundedReceiverStream<Result<Event, Infallible>>,
    _cancel: CancelOnDrop,
}

impl Stream for GuardedStream {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

pub async fn models(State(st): Shared) -> Json<Value> {
    let data: Vec<Value> = st.options.names.iter().map(|n| st.model_entry(n)).collect();
    Json(json!({ "object": "list", "data": data }))
}

pub async fn model(
    State(st): Shared,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::invalid(Some("model"), e.body_text()))?;
    let name = st.check_model(Some(&id))?;
    Ok(Json(st.model_entry(&name)))
}

pub async fn health(State(st): Shared) -> Json<Value> {
    let plan = st.engine.memory_plan();
    let mem = st.engine.gpu().memory_stats();
    Json(json!({
        "status": "ok",
        "model": st.options.names.first(),
        "slots": {
            "total": st.slots.parallel(),
            "idle": st.slots.idle(),
            "waiting": st.slots.waiting(),
        },
        "requests": {
            "completed": st.completed.load(Ordering::Relaxed),
            "cancelled": st.cancelled.load(Ordering::Relaxed),
            "failed": st.failed.load(Ordering::Relaxed),
        },
        "memory": {
            "budget_bytes": st.options.mem_budget,
            "plan_total_bytes": plan.total(),
            "device_buffers_planned_bytes": plan.device_buffers(),
            "device_buffers_live_bytes": mem.live_bytes,
            "device_buffers_peak_bytes": mem.peak_bytes,
        },
    }))
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AppState {
    /// Counts a finished generation.
    fn count(&self, result: &voyager_runtime::Result<Generation>) {
        let counter = match result {
            Ok(g) if g.stop == voyager_runtime::engine::StopReason::Cancelled => &self.cancelled,
            Ok(_) => &self.completed,
            Err(_) => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
