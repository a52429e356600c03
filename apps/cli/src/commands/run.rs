//! `voyager run -m MODEL [sampling] [--json] PROMPT`

use std::io::Write;

use anyhow::Result;
use serde_json::json;
use voyager_runtime::engine::{GenerateOptions, Prompt};

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
    /// The prompt, as raw text (tokenized as `voyager tokenize` does).
    prompt: String,
}

pub fn run(args: Args) -> Result<()> {
    let options = GenerateOptions {
        sampling: args.sampling.params()?,
        max_tokens: args.n_predict,
        stop_at_eog: !args.ignore_eos,
        cancel: Some(crate::interrupt::token()),
    };
    let engine = crate::load::engine(&args.model, false)?;
    let mut session = engine.session()?;
    let mut stdout = std::io::stdout().lock();
    let stream = !args.json;
    let mut write_err = None;
    let gen = session.generate(Prompt::Text(&args.prompt), &options, &mut |piece| {
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
