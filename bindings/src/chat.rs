//! `Chat`: a conversation over one of the engine's sessions (the runtime's `Chat`: the model's
//! template, only new tokens fed, regenerate, cancel from any thread), and the listener that
//! receives the answer as it streams.

use std::sync::{Arc, Mutex, MutexGuard};

use voyager_runtime::engine::CancelToken;

use crate::config::{ContextUsage, Message, Reply, ReplyStats, SamplingConfig};
use crate::error::VoyagerError;
use crate::guard::guarded;

/// Receives an answer's text as it streams, in pieces that never split a UTF-8 character.
/// Returning false stops the answer (as `cancel()` does). If it throws, the answer stops and
/// the call fails with `VoyagerError.Listener`.
#[uniffi::export(with_foreign)]
pub trait TokenListener: Send + Sync {
    fn on_token(&self, piece: String) -> Result<bool, VoyagerError>;
}

/// Calls the app's listener and keeps the first error it throws.
pub(crate) struct ListenerAdapter {
    listener: Arc<dyn TokenListener>,
    error: Option<VoyagerError>,
}

impl ListenerAdapter {
    pub fn new(listener: Arc<dyn TokenListener>) -> Self {
        Self {
            listener,
            error: None,
        }
    }

    pub fn on_token(&mut self, piece: &str) -> bool {
        match self.listener.on_token(piece.to_owned()) {
            Ok(go_on) => go_on,
            Err(e) => {
                self.error = Some(match e {
                    VoyagerError::Listener { .. } => e,
                    other => VoyagerError::Listener {
                        detail: format!("the token listener threw: {other}"),
                    },
                });
                false
            }
        }
    }

    pub fn result(self) -> Result<(), VoyagerError> {
        self.error.map_or(Ok(()), Err)
    }
}

/// A conversation. Its methods may be called from any thread; `cancel()` stops the answer in
/// progress within one token.
#[derive(uniffi::Object)]
pub struct Chat {
    inner: Mutex<voyager_runtime::Chat>,
    cancel: CancelToken,
    sampling: SamplingConfig,
}

impl Chat {
    pub(crate) fn open(
        engine: &Arc<voyager_runtime::Engine>,
        system: Option<&str>,
        sampling: SamplingConfig,
    ) -> Result<Arc<Self>, VoyagerError> {
        // Bad sampling values are refused now, not at the first message.
        sampling.options(sampling.max_tokens)?;
        let chat = voyager_runtime::Chat::new(engine, system)?;
        Ok(Arc::new(Self {
            cancel: chat.cancel_token(),
            inner: Mutex::new(chat),
            sampling,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, voyager_runtime::Chat> {
        // A panic caught mid-answer leaves the conversation as the runtime left it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn answer(
        &self,
        listener: Arc<dyn TokenListener>,
        turn: impl FnOnce(
            &mut voyager_runtime::Chat,
            &voyager_runtime::engine::GenerateOptions,
            &mut dyn FnMut(&str) -> bool,
        ) -> voyager_runtime::Result<voyager_runtime::engine::Reply>,
    ) -> Result<Reply, VoyagerError> {
        guarded(|| {
            let options = self.sampling.options(self.sampling.max_tokens)?;
            let mut adapter = ListenerAdapter::new(listener);
            let reply = turn(&mut self.lock(), &options, &mut |piece| {
                adapter.on_token(piece)
            })?;
            adapter.result()?;
            Ok(reply_of(reply))
        })
    }
}

fn reply_of(r: voyager_runtime::engine::Reply) -> Reply {
    let s = r.stats;
    Reply {
        text: r.text,
        stop_reason: r.stop.into(),
        stats: ReplyStats {
            prompt_tokens: s.prompt_tokens as u32,
            reused_tokens: s.reused_tokens as u32,
            generated_tokens: s.generated_tokens as u32,
            prefill_tokens_per_second: s.prefill_tokens_per_second,
            decode_tokens_per_second: s.decode_tokens_per_second,
            tokens_in_window: s.tokens_in_window as u32,
            tokens_evicted: s.tokens_evicted as u64,
        },
    }
}

#[uniffi::export]
impl Chat {
    /// Sends a user message and streams the answer to `listener`; returns it whole.
    pub fn send(
        &self,
        text: String,
        listener: Arc<dyn TokenListener>,
    ) -> Result<Reply, VoyagerError> {
        self.answer(listener, |chat, options, on_text| {
            chat.send(&text, options, on_text)
        })
    }

    /// [`Chat::send`] as a coroutine (Kotlin `suspend`, Swift `async`, Python `await`). The
    /// answer is computed on a thread of its own; dropping the future cancels it.
    pub async fn send_async(
        self: Arc<Self>,
        text: String,
        listener: Arc<dyn TokenListener>,
    ) -> Result<Reply, VoyagerError> {
        let mut guard = CancelOnDrop {
            token: self.cancel.clone(),
            armed: true,
        };
        let (sender, answer) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("voyager-chat".into())
            .spawn(move || sender.send(self.send(text, listener)));
        if let Err(e) = spawned {
            return Err(VoyagerError::Internal {
                detail: format!("cannot start a thread for the answer: {e}"),
            });
        }
        let reply = answer.await.unwrap_or_else(|_| {
            Err(VoyagerError::Internal {
                detail: "the answer's thread ended without a reply".into(),
            })
        });
        guard.armed = false;
        reply
    }

    /// Answers the last user message again (the last answer is dropped).
    pub fn regenerate(&self, listener: Arc<dyn TokenListener>) -> Result<Reply, VoyagerError> {
        self.answer(listener, |chat, options, on_text| {
            chat.regenerate(options, on_text)
        })
    }

    /// Stops the answer in progress, from any thread, within one token.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The messages so far (the system message first, when there is one).
    pub fn messages(&self) -> Vec<Message> {
        self.lock()
            .messages()
            .iter()
            .map(|m| Message {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect()
    }

    /// Forgets every message but the system one.
    pub fn reset(&self) {
        self.lock().reset();
    }

    /// How much of the attention span the conversation uses.
    pub fn context_usage(&self) -> ContextUsage {
        let u = self.lock().context_usage();
        ContextUsage {
            tokens: u.tokens as u64,
            tokens_in_window: u.in_window as u32,
            tokens_evicted: u.evicted as u64,
            context_size: u.context_size as u32,
        }
    }
}

/// Cancels the answer when the future awaiting it is dropped (the caller's task was
/// cancelled) before the answer arrived.
struct CancelOnDrop {
    token: CancelToken,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.token.cancel();
        }
    }
}
