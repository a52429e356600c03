//! The app's state and what its buttons do: conversations, the model, answers in flight.
//! Drawing lives in [`crate::ui`]; the engine runs on [`crate::worker`]'s thread.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use voyager_runtime::budget::Plan;
use voyager_runtime::engine::sampling::SamplingParams;
use voyager_runtime::engine::ContextUsage;
use voyager_runtime::engine::{CancelToken, GenerateOptions, StopReason};
use voyager_runtime::kv::{KvPolicy, KvType};
use voyager_runtime::tokenizer::ChatMessage;
use voyager_runtime::{Engine, EngineOptions};

use crate::download::{Download, DownloadEvent};
use crate::store::{AnswerInfo, AppSettings, Conversation, Message, Settings, Store};
use crate::worker::{Action, Command, Event, Worker};

/// How the app starts.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Conversations and settings (default: `voyager/chat` in the user's data directory).
    pub data_dir: PathBuf,
    /// Where catalog models are downloaded (the CLI's models directory).
    pub models_dir: PathBuf,
    /// Engine options under the budget and cache type the user picks (tests pin the driver
    /// figure here so plans are the same on every run).
    pub engine: EngineOptions,
    /// Open this model at start instead of the one last used.
    pub model: Option<PathBuf>,
    /// Settings a conversation starts with when the data directory has none yet.
    pub defaults: Option<Settings>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            data_dir: Store::default_dir(),
            models_dir: voyager_models::models_dir(),
            engine: EngineOptions::default(),
            model: None,
            defaults: None,
        }
    }
}

/// An answer being generated.
pub struct Generating {
    pub conversation: String,
    pub cancel: CancelToken,
    pub text: String,
    pub pieces: usize,
    pub started: Instant,
    pub first_piece: Option<Instant>,
    /// What it does, and what to put back if it fails.
    action: Action,
    undo: Vec<Message>,
}

impl Generating {
    /// Pieces (about one per token) per second since the first one.
    pub fn tokens_per_second(&self) -> Option<f64> {
        let first = self.first_piece?;
        let secs = first.elapsed().as_secs_f64();
        (self.pieces > 1 && secs > 0.0).then(|| (self.pieces - 1) as f64 / secs)
    }
}

/// The model loaded or being loaded.
pub enum ModelState {
    None,
    Loading {
        path: PathBuf,
        done: u64,
        total: u64,
    },
    Ready {
        path: PathBuf,
        engine: Arc<Engine>,
    },
}

pub struct ChatApp {
    pub(crate) store: Store,
    pub(crate) settings: AppSettings,
    pub(crate) models_dir: PathBuf,
    base_options: EngineOptions,
    worker: Worker,
    pub(crate) wake: Arc<dyn Fn() + Send + Sync>,
    pub(crate) conversations: Vec<Conversation>,
    pub(crate) current: Option<String>,
    pub(crate) model: ModelState,
    pub(crate) show_models: bool,
    pub(crate) model_path_input: String,
    /// Plans by model path, budget, cache type and policy (the picker shows one per model each frame).
    plans: HashMap<String, Result<Plan, String>>,
    pub(crate) download: Option<Download>,
    pub(crate) generating: Option<Generating>,
    pub(crate) input: String,
    pub(crate) editing: Option<(usize, String)>,
    pub(crate) renaming: Option<String>,
    /// "Delete chat" was pressed once; the next press of "Yes, delete it" deletes.
    pub(crate) confirm_delete: bool,
    pub(crate) notices: Vec<String>,
    pub(crate) context: HashMap<String, ContextUsage>,
    pub(crate) markdown: egui_commonmark::CommonMarkCache,
    memory: Option<(
        Instant,
        Option<voyager_runtime::process_memory::ProcessMemory>,
    )>,
    dirty: Option<Instant>,
}

impl ChatApp {
    /// The app over `options.data_dir`, with every saved conversation; it loads the model
    /// given (or last used) on its engine thread.
    pub fn new(ctx: &egui::Context, options: AppOptions) -> Self {
        let mut notices = Vec::new();
        let store = match Store::open(&options.data_dir) {
            Ok(s) => s,
            Err(e) => {
                // Nothing can be kept: say so, and keep the conversations in a temporary place.
                notices.push(format!(
                    "{e:#}; conversations are kept in a temporary directory"
                ));
                let dir = std::env::temp_dir().join("voyager-chat");
                Store::open(&dir).unwrap_or_else(|_| panic!("cannot use {}", dir.display()))
            }
        };
        let (mut settings, problem) = store.load_settings();
        notices.extend(problem);
        if let Some(d) = &options.defaults {
            if !store.dir().join("settings.json").exists() {
                settings.defaults = d.clone();
            }
        }
        let (conversations, problems) = store.load_conversations();
        notices.extend(
            problems
                .into_iter()
                .map(|p| format!("a conversation could not be read and was left as it is: {p}")),
        );
        let repaint = ctx.clone();
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || repaint.request_repaint());
        let w = wake.clone();
        let worker = Worker::start(move || w());
        let current = settings
            .current
            .clone()
            .filter(|id| conversations.iter().any(|c| &c.id == id))
            .or_else(|| conversations.first().map(|c| c.id.clone()));
        let mut app = Self {
            store,
            models_dir: options.models_dir,
            base_options: options.engine,
            worker,
            wake,
            conversations,
            current,
            model: ModelState::None,
            show_models: false,
            model_path_input: String::new(),
            plans: HashMap::new(),
            download: None,
            generating: None,
            input: String::new(),
            editing: None,
            renaming: None,
            confirm_delete: false,
            notices,
            context: HashMap::new(),
            markdown: Default::default(),
            memory: None,
            dirty: None,
            settings,
        };
        if let Some(path) = options.model.or(app.settings.model_path.clone()) {
            app.model_path_input = path.display().to_string();
            if path.exists() {
                app.load_model(path);
            }
        }
        if matches!(app.model, ModelState::None) {
            app.show_models = true;
        }
        if app.conversations.is_empty() {
            app.new_conversation();
        }
        app
    }

    // ---------------------------------------------------------------- conversations

    pub fn current(&self) -> Option<&Conversation> {
        let id = self.current.as_ref()?;
        self.conversations.iter().find(|c| &c.id == id)
    }

    pub(crate) fn current_mut(&mut self) -> Option<&mut Conversation> {
        let id = self.current.clone()?;
        self.conversations.iter_mut().find(|c| c.id == id)
    }

    fn conversation_mut(&mut self, id: &str) -> Option<&mut Conversation> {
        self.conversations.iter_mut().find(|c| c.id == id)
    }

    pub fn conversations(&self) -> &[Conversation] {
        &self.conversations
    }

    pub fn new_conversation(&mut self) {
        let c = Conversation::new(self.settings.defaults.clone());
        self.current = Some(c.id.clone());
        self.save(&c);
        self.conversations.insert(0, c);
        self.editing = None;
        self.save_settings();
    }

    pub(crate) fn select(&mut self, id: &str) {
        if self.current.as_deref() != Some(id) {
            self.current = Some(id.to_string());
            self.editing = None;
            self.renaming = None;
            self.confirm_delete = false;
            self.save_settings();
        }
    }

    pub(crate) fn rename_current(&mut self, title: &str) {
        let title = title.trim();
        if title.is_empty() {
            return;
        }
        if let Some(c) = self.current_mut() {
            c.title = title.to_string();
            c.touch();
            let c = c.clone();
            self.save(&c);
        }
    }

    pub(crate) fn delete_current(&mut self) {
        let Some(id) = self.current.clone() else {
            return;
        };
        if self.is_generating(&id) {
            self.notices
                .push("stop the answer before deleting its conversation".into());
            return;
        }
        if let Err(e) = self.store.delete_conversation(&id) {
            self.notices.push(format!("{e:#}"));
            return;
        }
        self.worker.send(Command::Forget {
            conversation: id.clone(),
        });
        self.conversations.retain(|c| c.id != id);
        self.context.remove(&id);
        self.current = self.conversations.first().map(|c| c.id.clone());
        if self.current.is_none() {
            self.new_conversation();
        }
        self.save_settings();
    }

    /// The current conversation's settings changed: saved once they stop changing.
    pub(crate) fn settings_changed(&mut self) {
        self.dirty = Some(Instant::now());
    }

    pub(crate) fn has_unsaved_settings(&self) -> bool {
        self.dirty.is_some()
    }

    fn save(&mut self, c: &Conversation) {
        if let Err(e) = self.store.save_conversation(c) {
            self.notices.push(format!("{e:#}"));
        }
    }

    fn save_id(&mut self, id: &str) {
        if let Some(c) = self.conversations.iter().find(|c| c.id == id).cloned() {
            self.save(&c);
        }
    }

    pub(crate) fn save_settings(&mut self) {
        self.settings.current = self.current.clone();
        if let Err(e) = self.store.save_settings(&self.settings) {
            self.notices.push(format!("{e:#}"));
        }
    }

    // ---------------------------------------------------------------- the model

    pub(crate) fn engine(&self) -> Option<&Arc<Engine>> {
        match &self.model {
            ModelState::Ready { engine, .. } => Some(engine),
            _ => None,
        }
    }

    /// Engine options under the budget and cache type chosen.
    pub(crate) fn engine_options(&self) -> Result<EngineOptions, String> {
        let (k, v) = KvType::parse_pair(&self.settings.cache_type).map_err(|e| e.to_string())?;
        let policy = KvPolicy::parse(&self.settings.kv_policy).map_err(|e| e.to_string())?;
        Ok(EngineOptions {
            mem_budget: Some(self.settings.budget_mib << 20),
            cache_type_k: k,
            cache_type_v: v,
            kv_policy: policy,
            max_sessions: 1,
            ..self.base_options.clone()
        })
    }

    /// The plan of the model at `path` under the chosen options, computed again only when
    /// one of them changes (it reads the file's header, not its weights).
    pub(crate) fn plan_for(&mut self, path: &Path) -> &Result<Plan, String> {
        let key = format!(
            "{}|{}|{}|{}",
            path.display(),
            self.settings.budget_mib,
            self.settings.cache_type,
            self.settings.kv_policy
        );
        if !self.plans.contains_key(&key) {
            if self.plans.len() >= 64 {
                self.plans.clear();
            }
            let plan = self
                .engine_options()
                .and_then(|o| Engine::plan(path, &o).map_err(|e| in_app_words(&e.to_string())));
            self.plans.insert(key.clone(), plan);
        }
        &self.plans[&key]
    }

    pub fn load_model(&mut self, path: PathBuf) {
        if self.generating.is_some() {
            self.notices
                .push("stop the answer before loading another model".into());
            return;
        }
        let options = match self.engine_options() {
            Ok(o) => o,
            Err(e) => {
                self.notices.push(e);
                return;
            }
        };
        self.context.clear();
        self.model = ModelState::Loading {
            path: path.clone(),
            done: 0,
            total: 0,
        };
        self.worker.send(Command::Load { path, options });
    }

    pub(crate) fn start_download(&mut self, name: &str) {
        let Some(entry) = voyager_models::catalog().get(name).cloned() else {
            return;
        };
        let wake = self.wake.clone();
        self.download = Some(Download::start(entry, &self.models_dir, move || wake()));
    }

    // ---------------------------------------------------------------- answers

    /// The loaded model's cache configuration (for tests and diagnostics).
    pub fn loaded_kv_config(&self) -> Option<voyager_runtime::kv::KvConfig> {
        self.engine().map(|e| *e.kv_config())
    }

    /// Whether a model is loaded and ready to answer.
    pub fn model_ready(&self) -> bool {
        self.engine().is_some()
    }

    /// Pieces of the answer streamed so far, while one is being generated.
    pub fn streamed_pieces(&self) -> Option<usize> {
        self.generating.as_ref().map(|g| g.pieces)
    }

    /// The messages shown at the top of the window (errors and what to do).
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    pub fn is_generating(&self, conversation: &str) -> bool {
        self.generating
            .as_ref()
            .is_some_and(|g| g.conversation == conversation)
    }

    /// Sends the input box's text in the current conversation.
    pub(crate) fn send_input(&mut self) {
        let text = self.input.trim_end().to_string();
        if text.trim().is_empty() || self.generating.is_some() || self.engine().is_none() {
            return;
        }
        let Some(c) = self.current_mut() else { return };
        let before = c.chat_messages();
        c.messages.push(Message::user(&text));
        c.title_from_first_message();
        c.touch();
        let id = c.id.clone();
        self.input.clear();
        // The user's words are on disk before the answer starts.
        self.save_id(&id);
        self.start_answer(id, before, Action::Send(text), Vec::new());
    }

    pub(crate) fn regenerate(&mut self) {
        if self.generating.is_some() || self.engine().is_none() {
            return;
        }
        let Some(c) = self.current_mut() else { return };
        let before = c.chat_messages();
        let undo = match c.messages.last() {
            Some(m) if m.role == "assistant" => vec![c.messages.pop().expect("last")],
            Some(_) => Vec::new(),
            None => return,
        };
        let id = c.id.clone();
        self.start_answer(id, before, Action::Regenerate, undo);
    }

    /// Replaces user message `index` of the current conversation with `text`, drops what
    /// followed and answers it.
    pub(crate) fn resend_edit(&mut self, index: usize, text: String) {
        if self.generating.is_some() || self.engine().is_none() || text.trim().is_empty() {
            return;
        }
        let Some(c) = self.current_mut() else { return };
        if c.messages.get(index).is_none_or(|m| m.role != "user") {
            return;
        }
        let before = c.chat_messages();
        let offset = before.len() - c.messages.len();
        let undo = c.messages.split_off(index);
        c.messages.push(Message::user(&text));
        c.touch();
        let id = c.id.clone();
        self.editing = None;
        self.save_id(&id);
        let action = Action::Edit {
            index: index + offset,
            text,
        };
        self.start_answer(id, before, action, undo);
    }

    fn start_answer(
        &mut self,
        id: String,
        before: Vec<ChatMessage>,
        action: Action,
        undo: Vec<Message>,
    ) {
        let Some(c) = self.conversations.iter().find(|c| c.id == id) else {
            return;
        };
        let s = &c.settings;
        let sampling = SamplingParams {
            temperature: s.temperature,
            top_k: s.top_k as usize,
            top_p: s.top_p,
            min_p: s.min_p,
            seed: s.seed,
            ..SamplingParams::default()
        };
        if let Err(e) = sampling.validate() {
            self.notices.push(format!("settings: {e}"));
            self.restore(&id, &action, undo);
            return;
        }
        let cancel = CancelToken::new();
        let options = GenerateOptions {
            sampling,
            max_tokens: s.max_tokens.max(1) as usize,
            cancel: Some(cancel.clone()),
            ..GenerateOptions::default()
        };
        self.generating = Some(Generating {
            conversation: id.clone(),
            cancel,
            text: String::new(),
            pieces: 0,
            started: Instant::now(),
            first_piece: None,
            action: action.clone(),
            undo,
        });
        self.worker.send(Command::Answer {
            conversation: id,
            messages: before,
            action,
            options,
        });
    }

    /// Stops the answer being generated (within one token).
    pub fn stop(&mut self) {
        if let Some(g) = &self.generating {
            g.cancel.cancel();
        }
    }

    /// Puts a conversation back as it was before an answer that failed.
    fn restore(&mut self, id: &str, action: &Action, undo: Vec<Message>) {
        let Some(c) = self.conversation_mut(id) else {
            return;
        };
        match action {
            Action::Send(text) => {
                if c.messages.last().is_some_and(|m| m.role == "user") {
                    c.messages.pop();
                }
                if self.input.is_empty() {
                    self.input = text.clone();
                }
            }
            Action::Regenerate => c.messages.extend(undo),
            Action::Edit { .. } => {
                c.messages.pop();
                c.messages.extend(undo);
            }
        }
        self.save_id(id);
    }

    // ---------------------------------------------------------------- each frame

    /// Takes in what the engine thread and the download sent.
    pub(crate) fn poll(&mut self) {
        while let Ok(event) = self.worker.events.try_recv() {
            self.handle(event);
        }
        if let Some(d) = &mut self.download {
            if let Some(end) = d.poll() {
                let name = d.model.clone();
                self.download = None;
                match end {
                    DownloadEvent::Finished(path) => {
                        self.model_path_input = path.display().to_string();
                        log::info!("{name} downloaded to {}", path.display());
                    }
                    DownloadEvent::Failed(e) => {
                        self.notices.push(format!("downloading {name} failed: {e}"))
                    }
                    DownloadEvent::Cancelled => {}
                    _ => {}
                }
            }
        }
        if let Some(t) = self.dirty {
            if t.elapsed() > Duration::from_millis(400) {
                self.dirty = None;
                if let Some(id) = self.current.clone() {
                    self.save_id(&id);
                }
                self.save_settings();
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::LoadProgress { done, total } => {
                if let ModelState::Loading {
                    done: d, total: t, ..
                } = &mut self.model
                {
                    (*d, *t) = (done, total);
                }
            }
            Event::Loaded(engine) => {
                let path = match &self.model {
                    ModelState::Loading { path, .. } => path.clone(),
                    _ => PathBuf::new(),
                };
                self.settings.model_path = Some(path.clone());
                self.save_settings();
                self.model = ModelState::Ready { path, engine };
                self.show_models = false;
            }
            Event::LoadFailed(e) => {
                self.model = ModelState::None;
                self.show_models = true;
                self.notices
                    .push(format!("the model could not be loaded: {e}"));
            }
            Event::Text { conversation, text } => {
                if let Some(g) = &mut self.generating {
                    if g.conversation == conversation {
                        g.text.push_str(&text);
                        g.pieces += 1;
                        g.first_piece.get_or_insert_with(Instant::now);
                    }
                }
            }
            Event::Answered {
                conversation,
                reply,
                context,
            } => {
                self.generating = None;
                self.context.insert(conversation.clone(), context);
                if let Some(c) = self.conversation_mut(&conversation) {
                    c.messages.push(Message {
                        role: "assistant".into(),
                        content: reply.text,
                        answer: Some(AnswerInfo {
                            stop: stop_name(reply.stop).into(),
                            tokens: reply.stats.generated_tokens,
                            tokens_per_second: reply.stats.decode_tokens_per_second,
                        }),
                    });
                    c.title_from_first_message();
                    c.touch();
                }
                self.save_id(&conversation);
            }
            Event::AnswerFailed {
                conversation,
                error,
            } => {
                if let Some(g) = self.generating.take() {
                    self.restore(&conversation, &g.action, g.undo);
                }
                self.notices.push(format!("the answer failed: {error}"));
            }
        }
    }

    /// The process's memory, read at most once a second.
    pub(crate) fn process_memory(
        &mut self,
    ) -> Option<voyager_runtime::process_memory::ProcessMemory> {
        match self.memory {
            Some((t, m)) if t.elapsed() < Duration::from_secs(1) => m,
            _ => {
                let m = voyager_runtime::process_memory::now();
                self.memory = Some((Instant::now(), m));
                m
            }
        }
    }
}

pub fn stop_name(stop: StopReason) -> &'static str {
    match stop {
        StopReason::EndOfGeneration => "end",
        StopReason::TokenLimit => "limit",
        StopReason::Cancelled => "stopped",
        StopReason::StopSequence => "stop sequence",
    }
}

/// The runtime's messages name the CLI's flags; the app names its own controls.
fn in_app_words(message: &str) -> String {
    message
        .replace("raise --mem-budget to", "raise the budget to")
        .replace("use --mem-budget", "use a budget of")
        .replace("lower --window", "a smaller window")
}
