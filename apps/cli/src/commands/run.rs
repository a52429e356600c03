//! `voyager run -m MODEL [sampling] [--json] [--prompt-cache FILE] PROMPT`

use std::io::Write;

use anyhow::Result;
use serde_json::json;
use voyager_runtime::engine::{GenerateOptions, Prompt};
use voyager_runtime::tokenizer::ChatMessage;

use crate::args::{ModelArgs, SamplingArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Tokens to generate at most.
    #[arg(short = 'n', long = "n-predict", default_value_t = 256)]
    n_predict: usize,
    /// Keep going past end-of-generation tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// Print one JSON object {"prompt_tokens", "tokens", "text"} instead of streaming.
    #[arg(long)]
    json: bool,
    /// Keep the prompt's cache in FILE: the first run saves it after evaluating the prompt; a
    /// later run whose prompt starts with the same tokens restores it instead of evaluating
    /// them again (llama.cpp's flag). A file for another model or cache is refused.
    #[arg(long = "prompt-cache", value_name = "FILE")]
    prompt_cache: Option<std::path::PathBuf>,
    /// Send the prompt as a user message in the model's chat template (as `voyager chat` and
    /// the server's chat completions do) instead of as raw text.
    #[arg(long)]
    chat: bool,
    /// With --chat: a system message before the prompt.
    #[arg(long, value_name = "TEXT", requires = "chat")]
    system: Option<String>,
    /// Stop where this text appears; it is not printed (repeatable).
    #[arg(long, value_name = "TEXT")]
    stop: Vec<String>,
    /// The prompt, as raw text (tokenized as `voyager tokenize` does), or with --chat the
    /// user's message.
    prompt: String,
}

pub fn run(args: Args) -> Result<()> {
    let options = GenerateOptions {
        sampling: args.sampling.params()?,
        max_tokens: args.n_predict,
        stop_at_eog: !args.ignore_eos,
        cancel: Some(crate::interrupt::token()),
        logprobs: false,
        stop: args.stop.clone(),
        ..Default::default()
    };
    let engine = crate::load::engine(&args.model, false)?;
    let ids = if args.chat {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(ChatMessage::new("system", system.as_str()));
        }
        messages.push(ChatMessage::new("user", args.prompt.as_str()));
        engine.chat_tokens(&messages)?
    } else {
        engine.model().tokenizer.encode(&args.prompt, true)?
    };
    let start = std::time::Instant::now();
    let mut session = match &args.prompt_cache {
        Some(path) if path.exists() => engine.restore_session(path)?,
        _ => engine.session()?,
    };
    let restore_time = start.elapsed();
    if let Some(path) = &args.prompt_cache {
        let reused = session
            .history()
            .iter()
            .zip(&ids)
            .take_while(|(a, b)| a == b)
            .count();
        eprintln!(
            "prompt cache {}: reused {reused} of {} prompt tokens (restored in {:.2} s)",
            path.display(),
            ids.len(),
            restore_time.as_secs_f64()
        );
        // Evaluate what the file lacks and save before generating, so the file holds the
        // prompt (generation then evaluates the prompt's last token again, as any reply does).
        if reused < ids.len() || session.history().len() != ids.len() {
            let prefill = GenerateOptions {
                max_tokens: 0,
                ..options.clone()
            };
            let g = session.generate(Prompt::Sequence(&ids), &prefill, &mut |_| true)?;
            let start = std::time::Instant::now();
            session.save(path)?;
            eprintln!(
                "prompt cache {}: evaluated {} tokens in {:.2} s, saved in {:.2} s",
                path.display(),
                g.prefilled,
                g.prefill_time.as_secs_f64(),
                start.elapsed().as_secs_f64()
            );
        }
    }
    let mut stdout = std::io::stdout().lock();
    let stream = !args.json;
    let mut write_err = None;
    let gen = session.generate(Prompt::Sequence(&ids), &options, &mut |piece| {
        if stream && write_err.is_none() {
            if let Err(e) = stdout
                .write_all(piece.as_bytes())
                .and_then(|()| stdout.flush())
            {
                write_err = Some(e);
            }
        }
        true
    })?;
    if let Some(m) = voyager_runtime::process_memory::now() {
        log::debug!(
            "memory at the end: resident {} MiB, peak {} MiB",
            m.resident >> 20,
            m.peak >> 20
        );
    }
    match write_err {
        Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    drop(stdout);
    if args.json {
        let v = json!({
            "prompt_tokens": gen.prompt_tokens,
            "tokens": gen.tokens,
            "text": gen.text,
        });
        crate::outln!("{v}");
    } else {
        crate::outln!("");
    }
    eprintln!(
        "prompt: {} tokens, {:.1} tokens/s | generated: {} tokens, {:.1} tokens/s | stop: {:?}",
        gen.prefilled,
        gen.prefill_tokens_per_second(),
        gen.tokens.len(),
        gen.decode_tokens_per_second(),
        gen.stop
    );
    Ok(())
}
