//! Conversations and app settings on disk, in the user's data directory.
//!
//! Each conversation is one JSON file, `conversations/<id>.json`, rewritten whenever it
//! changes; the app's own settings (budget, cache, the model last used) are `settings.json`.
//! Every write goes through [`voyager_runtime::files::AtomicFile`] (a temporary file beside
//! the target, fsynced, renamed, the directory fsynced), so a crash at any moment leaves the
//! previous file or the new one, never a torn one. Temporaries a crash left behind are ignored
//! when loading and removed.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

/// A conversation file larger than this is refused rather than read into memory.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Sampling and prompt settings of one conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub system_prompt: String,
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
    pub min_p: f32,
    pub seed: u64,
    pub max_tokens: u32,
}

impl Default for Settings {
    fn default() -> Self {
        let d = voyager_runtime::engine::sampling::SamplingParams::default();
        Self {
            system_prompt: String::new(),
            temperature: d.temperature,
            top_k: d.top_k as u32,
            top_p: d.top_p,
            min_p: d.min_p,
            seed: voyager_runtime::engine::sampling::DEFAULT_SEED,
            max_tokens: 512,
        }
    }
}

/// How an answer ended, and how fast it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerInfo {
    /// "end", "limit", "stopped" or "stop sequence".
    pub stop: String,
    pub tokens: usize,
    pub tokens_per_second: f64,
}

/// One message as the app keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<AnswerInfo>,
}

impl Message {
    pub fn user(text: &str) -> Self {
        Self {
            role: "user".into(),
            content: text.into(),
            answer: None,
        }
    }
}

/// A conversation: its title, settings and messages (the system prompt lives in settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    pub title: String,
    /// Seconds since the epoch.
    pub created: u64,
    pub updated: u64,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub messages: Vec<Message>,
}

impl Conversation {
    /// A new, empty conversation with `settings`, and an id no other conversation has.
    pub fn new(settings: Settings) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            id: format!("{:x}-{:x}-{n:x}", now.as_secs(), now.subsec_nanos()),
            title: "New chat".into(),
            created: now.as_secs(),
            updated: now.as_secs(),
            settings,
            messages: Vec::new(),
        }
    }

    /// The messages the engine sees: the system prompt (when set) and then the conversation.
    pub fn chat_messages(&self) -> Vec<voyager_runtime::tokenizer::ChatMessage> {
        use voyager_runtime::tokenizer::ChatMessage;
        let system = self.settings.system_prompt.trim();
        (!system.is_empty())
            .then(|| ChatMessage::new("system", system))
            .into_iter()
            .chain(
                self.messages
                    .iter()
                    .map(|m| ChatMessage::new(&m.role, &m.content)),
            )
            .collect()
    }

    /// Names an untitled conversation after its first message.
    pub fn title_from_first_message(&mut self) {
        if self.title != "New chat" {
            return;
        }
        if let Some(first) = self.messages.iter().find(|m| m.role == "user") {
            let line = first.content.lines().next().unwrap_or("").trim();
            let mut title: String = line.chars().take(40).collect();
            if line.chars().count() > 40 {
                title.push('…');
            }
            if !title.is_empty() {
                self.title = title;
            }
        }
    }

    pub fn touch(&mut self) {
        self.updated = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(self.updated);
    }
}

/// The app's own settings, kept between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    /// The memory budget in MiB (weights + cache + scratch + everything the process holds).
    pub budget_mib: u64,
    /// The KV cache's types: one for K and V (`q4`) or a pair (`tq4/tq3`).
    pub cache_type: String,
    /// Which older tokens a full cache keeps: `window` or `importance`.
    pub kv_policy: String,
    /// The model file last loaded, opened again at start.
    pub model_path: Option<PathBuf>,
    /// The conversation shown last.
    pub current: Option<String>,
    /// Settings a new conversation starts with.
    pub defaults: Settings,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            budget_mib: 1024,
            cache_type: {
                let o = voyager_runtime::engine::EngineOptions::default();
                voyager_runtime::kv::KvType::pair_name(o.cache_type_k, o.cache_type_v)
            },
            kv_policy: voyager_runtime::engine::EngineOptions::default()
                .kv_policy
                .name()
                .to_owned(),
            model_path: None,
            current: None,
            defaults: Settings::default(),
        }
    }
}

/// The data directory and what is in it.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir` (created when missing).
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir.join("conversations"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// `voyager/chat` in the user's data directory.
    pub fn default_dir() -> PathBuf {
        dirs::data_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("voyager")
            .join("chat")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn conversation_path(&self, id: &str) -> PathBuf {
        self.dir.join("conversations").join(format!("{id}.json"))
    }

    /// Every conversation, newest first, and a line for each file that could not be read
    /// (which stays on disk, untouched, for the user to look at).
    pub fn load_conversations(&self) -> (Vec<Conversation>, Vec<String>) {
        let dir = self.dir.join("conversations");
        let mut found = Vec::new();
        let mut problems = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => return (found, vec![format!("cannot list {}: {e}", dir.display())]),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".voyager-") && name.ends_with(".tmp") {
                // A save a crash interrupted: the file it was replacing is intact.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            match read_conversation(&path) {
                Ok(c) => found.push(c),
                Err(e) => problems.push(format!("{name}: {e:#}")),
            }
        }
        found.sort_by(|a, b| b.updated.cmp(&a.updated).then(b.id.cmp(&a.id)));
        (found, problems)
    }

    /// Writes `c` atomically.
    pub fn save_conversation(&self, c: &Conversation) -> Result<()> {
        check_id(&c.id)?;
        let bytes = serde_json::to_vec_pretty(c)?;
        voyager_runtime::files::write_atomic(&self.conversation_path(&c.id), &bytes)
            .with_context(|| format!("cannot save the conversation “{}”", c.title))
    }

    pub fn delete_conversation(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let path = self.conversation_path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot delete {}", path.display())),
        }
    }

    /// The app's settings; defaults when there are none yet, and the reason when the file
    /// could not be read.
    pub fn load_settings(&self) -> (AppSettings, Option<String>) {
        let path = self.dir.join("settings.json");
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (AppSettings::default(), None),
            Err(e) => (AppSettings::default(), Some(format!("settings.json: {e}"))),
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(s) => (s, None),
                Err(e) => (AppSettings::default(), Some(format!("settings.json: {e}"))),
            },
        }
    }

    pub fn save_settings(&self, s: &AppSettings) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(s)?;
        voyager_runtime::files::write_atomic(&self.dir.join("settings.json"), &bytes)
            .context("cannot save the app's settings")
    }
}

fn read_conversation(path: &Path) -> Result<Conversation> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_FILE_BYTES {
        anyhow::bail!("{size} bytes, more than a conversation file may hold");
    }
    let c: Conversation = serde_json::from_slice(&std::fs::read(path)?)?;
    check_id(&c.id)?;
    if path.file_stem().and_then(|s| s.to_str()) != Some(c.id.as_str()) {
        anyhow::bail!("its id `{}` does not match its file name", c.id);
    }
    for m in &c.messages {
        if !matches!(m.role.as_str(), "user" | "assistant") {
            anyhow::bail!("a message has the role `{}`", m.role);
        }
    }
    Ok(c)
}

/// Ids become file names: only letters, digits and dashes.
fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        anyhow::bail!("`{id}` is not a conversation id");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_round_trip_newest_first_and_bad_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut a = Conversation::new(Settings::default());
        a.messages.push(Message::user("hello"));
        a.title_from_first_message();
        a.updated = 10;
        let mut b = Conversation::new(Settings {
            temperature: 0.0,
            ..Settings::default()
        });
        b.updated = 20;
        store.save_conversation(&a).unwrap();
        store.save_conversation(&b).unwrap();
        let conv = dir.path().join("conversations");
        std::fs::write(conv.join("broken.json"), b"{\"id\": ").unwrap();
        std::fs::write(conv.join(".voyager-x.tmp"), b"half").unwrap();
        let (found, problems) = store.load_conversations();
        assert_eq!(found, vec![b.clone(), a.clone()]);
        assert_eq!(found[1].title, "hello");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("broken.json: "), "{problems:?}");
        assert!(!conv.join(".voyager-x.tmp").exists());
        store.delete_conversation(&a.id).unwrap();
        assert_eq!(store.load_conversations().0, vec![b]);
        assert!(store.delete_conversation("../settings").is_err());
    }

    #[test]
    fn settings_default_when_missing_or_broken() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load_settings(), (AppSettings::default(), None));
        let s = AppSettings {
            budget_mib: 300,
            ..AppSettings::default()
        };
        store.save_settings(&s).unwrap();
        assert_eq!(store.load_settings().0, s);
        std::fs::write(dir.path().join("settings.json"), b"[").unwrap();
        let (loaded, problem) = store.load_settings();
        assert_eq!(loaded, AppSettings::default());
        assert!(problem.is_some());
    }
}
