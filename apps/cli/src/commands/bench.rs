//! `voyager bench -m MODEL [-p 512] [-n 128] [-r 3] [--sessions N] [--json]`
//!
//! With `--sessions N`, N sessions of one engine run the benchmark at the same time, each on
//! its own thread, inside one memory plan: the figures are per session and in all.

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

/// One session's medians: (prefill, decode) tokens per second.
fn bench_session(
    engine: &std::sync::Arc<voyager_runtime::Engine>,
    prompt: &[u32],
    args: &Args,
) -> Result<(f64, f64)> {
    let mut session = engine.session()?;
    // Warm-up: pipelines compile on first dispatch on some drivers.
    session.feed(&prompt[..prompt.len().min(engine.batch_size())])?;
    session.reset();
    session.feed(&prompt[..1])?;
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    for _ in 0..args.repetitions {
        session.reset();
        let start = Instant::now();
        let mut logits = session.feed(prompt)?;
        pp.push(prompt.len() as f64 / start.elapsed().as_secs_f64());
        if args.n_gen > 0 {
            let start = Instant::now();
            for _ in 0..args.n_gen {
                let next = argmax(&logits);
                logits = session.feed(&[next])?;
            }
            tg.push(args.n_gen as f64 / start.elapsed().as_secs_f64());
        }
    }
    let tg = if tg.is_empty() { 0.0 } else { median(tg) };
    Ok((median(pp), tg))
}

pub fn run(args: Args) -> Result<()> {
    if args.n_prompt == 0 || args.repetitions == 0 {
        bail!("-p and -r must be at least 1");
    }
    let engine = crate::load::engine(&args.model, false)?;
    let vocab = engine.model().config.vocab_size as u32;
    // A fixed, varied prompt: ids spread over the vocabulary, no special meaning needed. A
    // prompt longer than the span streams through the window.
    let prompt: Vec<u32> = (0..args.n_prompt as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) % vocab)
        .collect();
    let n = args.model.sessions as usize;
    let results: Vec<(f64, f64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| scope.spawn(|| bench_session(&engine, &prompt, &args)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a benchmark thread failed")))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let pp = results.iter().map(|r| r.0).sum::<f64>() / n as f64;
    let tg = results.iter().map(|r| r.1).sum::<f64>() / n as f64;
    let gpu = engine.gpu();
    if args.json {
        let v = json!({
            "model": args.model.model,
            "adapter": gpu.adapter_name(),
            "backend": gpu.backend(),
            "n_prompt": args.n_prompt,
            "n_gen": args.n_gen,
            "repetitions": args.repetitions,
            "sessions": n,
            "prefill_tokens_per_second": pp,
            "decode_tokens_per_second": tg,
            "decode_tokens_per_second_all_sessions": tg * n as f64,
            "batch": engine.batch_size(),
            "memory_plan": engine.memory_plan().total(),
        });
        crate::outln!("{v}");
    } else {
        crate::outln!("adapter  {} ({})", gpu.adapter_name(), gpu.backend());
        let each = if n > 1 {
            format!(" per session, {n} sessions at once")
        } else {
            String::new()
        };
        crate::outln!(
            "prefill  {pp:.1} tokens/s{each} ({} tokens, batch {})",
            args.n_prompt,
            engine.batch_size()
        );
        crate::outln!("decode   {tg:.1} tokens/s{each} ({} tokens)", args.n_gen);
        if n > 1 {
            crate::outln!("decode   {:.1} tokens/s in all", tg * n as f64);
        }
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
