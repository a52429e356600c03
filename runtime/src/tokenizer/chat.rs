//! Chat templates: the model's Jinja `tokenizer.chat_template` rendered with minijinja (with
//! Python-compatible string methods such as `.strip()`), or a built-in format when the model
//! has none.

use serde::Serialize;

use super::Tokenizer;
use crate::error::{Error, Result};
use crate::gguf::Metadata;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Gemma's turn format (as in Gemma 3's own template, minus the leading `{{ bos_token }}`,
/// which [`Tokenizer::encode`] adds): a system message is folded into the first user turn and
/// the assistant role is called `model`.
const GEMMA: &str = "\
{%- if messages and messages[0]['role'] == 'system' -%}
{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
{%- set loop_messages = messages[1:] -%}
{%- else -%}
{%- set first_user_prefix = '' -%}
{%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}
{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}
{{- message['content'] | trim }}{{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}";

/// ChatML, the format most instruction-tuned models without a template of their own expect.
const CHATML: &str = "\
{%- for message in messages -%}
{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}";

/// Which template is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateSource {
    /// `tokenizer.chat_template` from the GGUF.
    Model,
    /// The built-in Gemma turn format (gemma-family model without a template).
    BuiltinGemma,
    /// The built-in ChatML format (any other model without a template).
    BuiltinChatMl,
}

/// A chat template ready to render conversations into prompt text.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    origin: TemplateSource,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// From `tokenizer.chat_template`, or a sensible built-in when the model has none: the Gemma
    /// turn format for gemma-family architectures, ChatML otherwise ([`ChatTemplate::is_builtin`]
    /// says which was used). The template is compiled once here so syntax errors surface early.
    pub fn from_metadata(md: &Metadata, tok: &Tokenizer) -> Result<Self> {
        let token = |id: Option<u32>| {
            id.and_then(|i| tok.token_text(i))
                .unwrap_or_default()
                .to_string()
        };
        let (source, origin) = match md.opt_str("tokenizer.chat_template")? {
            Some(t) if !t.trim().is_empty() => (t.to_string(), TemplateSource::Model),
            _ => {
                let arch = md.opt_str("general.architecture")?.unwrap_or_default();
                if arch.starts_with("gemma") {
                    (GEMMA.to_string(), TemplateSource::BuiltinGemma)
                } else {
                    (CHATML.to_string(), TemplateSource::BuiltinChatMl)
                }
            }
        };
        let t = Self {
            source,
            origin,
            bos_token: token(tok.bos()),
            eos_token: token(tok.eos()),
        };
        t.env().template_from_str(&t.source).map_err(|e| {
            Error::UnsupportedModel(format!("cannot compile the model's chat template: {e:#}"))
        })?;
        Ok(t)
    }

    /// A template from Jinja source (tests, user overrides).
    pub fn from_source(source: &str, tok: &Tokenizer) -> Result<Self> {
        let token = |id: Option<u32>| {
            id.and_then(|i| tok.token_text(i))
                .unwrap_or_default()
                .to_string()
        };
        let t = Self {
            source: source.to_string(),
            origin: TemplateSource::Model,
            bos_token: token(tok.bos()),
            eos_token: token(tok.eos()),
        };
        t.env().template_from_str(&t.source).map_err(|e| {
            Error::InvalidArgument(format!("cannot compile the chat template: {e:#}"))
        })?;
        Ok(t)
    }

    /// Whether a built-in template is used because the model has none.
    pub fn is_builtin(&self) -> bool {
        self.origin != TemplateSource::Model
    }

    pub fn origin(&self) -> TemplateSource {
        self.origin
    }

    /// The Jinja source in use.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn env(&self) -> minijinja::Environment<'static> {
        let mut env = minijinja::Environment::new();
        // As Hugging Face and llama.cpp render chat templates.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env
    }

    /// Renders `messages` into prompt text; with `add_generation_prompt` the text ends with the
    /// header of the assistant's turn.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let env = self.env();
        let tmpl = env
            .template_from_str(&self.source)
            .map_err(|e| Error::InvalidArgument(format!("chat template: {e:#}")))?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| Error::InvalidArgument(format!("chat template: {e:#}")))
    }

    /// Renders and tokenizes a conversation: `encode(render(..), add_special = true)`. A
    /// template that writes `bos_token` itself would otherwise give two BOS tokens when the
    /// model also asks for one (llama.cpp only warns about it); one of them is dropped.
    pub fn encode(
        &self,
        tok: &Tokenizer,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>> {
        let text = self.render(messages, add_generation_prompt)?;
        let mut ids = tok.encode(&text, true)?;
        if tok.add_bos() && ids.len() >= 2 && tok.bos().is_some_and(|b| ids[0] == b && ids[1] == b)
        {
            ids.remove(0);
        }
        Ok(ids)
    }
}
