//! `voyager bench -m MODEL [-p 512] [-n 128] [-r 3] [--json]`

use std::time::Instant;

use anyhow::{bail, Result};
use serde_json::json;

use crate::args::ModelArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Prompt tokens to prefill.
    #[arg(short = 'p', long = "n-prompt", default_value_t = 512)]
    n_prompt: usize,
    /// Tokens to decode after the prompt.
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    n_gen: usize,
    /// Repetitions; the median is reported.
    #[arg(short = 'r', long = "repetitions", default_value_t = 3)]
    repetitions: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(args: Args) -> Result<()> {
    if args.n_prompt == 0 || args.repetitions == 0 {
        bail!("-p and -r must be at least 1");
    }
    let engine = crate::load::engine(&args.model, false)?;
    // Generation may run past the window (the cache slides); the prompt must fit it.
    if args.n_prompt > engine.context_size() {
        bail!(
            "-p {} exceeds the attention span of {} tokens (raise --window or --mem-budget)",
            args.n_prompt,
            engine.context_size()
        );
    }
    let vocab = engine.model().config.vocab_size as u32;
    // A fixed, varied prompt: ids spread over the vocabulary, no special meaning needed.
    let prompt: Vec<u32> = (0..args.n_prompt as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) % vocab)
        .collect();
    let mut session = engine.session()?;
    // Warm-up: pipelines compile on first dispatch on some drivers.
    session.feed(&prompt[..args.n_prompt.min(engine.batch_size())])?;
    session.reset();
    session.feed(&prompt[..1])?;
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    for _ in 0..args.repetitions {
        session.reset();
        let start = Instant::now();
        let mut logits = session.feed(&prompt)?;
        pp.push(args.n_prompt as f64 / start.elapsed().as_secs_f64());
        if args.n_gen > 0 {
            let start = Instant::now();
            for _ in 0..args.n_gen {
                let next = argmax(&logits);
                logits = session.feed(&[next])?;
            }
            tg.push(args.n_gen as f64 / start.elapsed().as_secs_f64());
        }
    }
    let pp = median(pp);
    let tg = if tg.is_empty() { 0.0 } else { median(tg) };
    let gpu = engine.gpu();
    if args.json {
        let v = json!({
            "model": args.model.model,
            "adapter": gpu.adapter_name(),
            "backend": gpu.backend(),
            "n_prompt": args.n_prompt,
            "n_gen": args.n_gen,
            "repetitions": args.repetitions,
            "prefill_tokens_per_second": pp,
            "decode_tokens_per_second": tg,
            "batch": engine.batch_size(),
        });
        crate::outln!("{v}");
    } else {
        crate::outln!("adapter  {} ({})", gpu.adapter_name(), gpu.backend());
        crate::outln!(
            "prefill  {pp:.1} tokens/s ({} tokens, batch {})",
            args.n_prompt,
            engine.batch_size()
        );
        crate::outln!("decode   {tg:.1} tokens/s ({} tokens)", args.n_gen);
    }
    Ok(())
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}
