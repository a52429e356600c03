//! `voyager perplexity -m MODEL -f FILE [-c CTX] [--stream] [--chunks N] [--json]
//! [--dump-logprobs OUT]`
//!
//! By default the text is cut into independent windows of `-c` tokens (512 when not given,
//! llama.cpp's default), each scored from an empty cache. With `--stream` the whole file is one
//! sequence, scored through the bounded cache (attention sinks + sliding window): what a long
//! conversation sees once it outgrows the window.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use voyager_runtime::budget::format_size;
use voyager_runtime::engine::perplexity::{evaluate, windows};

use crate::args::ModelArgs;

/// Window size when neither `-c` nor `--window` is given and the text is not streamed
/// (llama.cpp's default for perplexity).
const DEFAULT_WINDOW: usize = 512;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The text to score.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Score the whole file as one stream through the sliding-window cache instead of
    /// independent windows of -c tokens.
    #[arg(long, conflicts_with = "chunks")]
    stream: bool,
    /// Score only the first N windows.
    #[arg(long)]
    chunks: Option<usize>,
    /// Print one JSON object {"ppl", "mean_nll", "n_scored", "windows", "stream", "window",
    /// "sinks", "cache_type_k", "cache_type_v", "kv_policy", "peak_device_bytes"}.
    #[arg(long)]
    json: bool,
    /// Write each window's {"top1": [...], "target_logprob": [...]} to this JSON file.
    #[arg(long = "dump-logprobs")]
    dump_logprobs: Option<PathBuf>,
}

pub fn run(mut args: Args) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    if !args.stream && args.model.window.is_none() {
        args.model.ctx_size.get_or_insert(DEFAULT_WINDOW);
    }
    let engine = crate::load::engine(&args.model, true)?;
    let tok = &engine.model().tokenizer;
    // A stream is one window of every token; otherwise windows as wide as the cache's span.
    let span = if args.stream {
        usize::MAX
    } else {
        engine.context_size()
    };
    let mut all = windows(tok, &text, span)?;
    if let Some(n) = args.chunks {
        all.truncate(n.max(1));
    }
    let bar = if args.stream {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} scoring {msg} as one stream ({elapsed})")
                .expect("valid template"),
        );
        bar.set_message(format!("{} tokens", all[0].len()));
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        let bar = ProgressBar::new(all.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("scoring [{bar:30}] {pos}/{len} windows ({eta} left)")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar
    };
    let mut session = engine.session()?;
    let report = evaluate(&mut session, &all, &mut |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let kv = *engine.kv_config();
    let peak = engine.gpu().memory_stats().peak_bytes;

    if let Some(path) = &args.dump_logprobs {
        let dump: Vec<_> = report
            .windows
            .iter()
            .map(|w| {
                json!({
                    "top1": w.iter().map(|s| s.top1).collect::<Vec<_>>(),
                    "target_logprob": w.iter().map(|s| s.logprob).collect::<Vec<_>>(),
                })
            })
            .collect();
        write_atomically(path, serde_json::to_string(&dump)?.as_bytes())?;
    }
    if args.json {
        let v = json!({
            "ppl": report.ppl,
            "mean_nll": report.mean_nll,
            "n_scored": report.n_scored,
            "windows": report.windows.len(),
            "stream": args.stream,
            "window": kv.window,
            "sinks": kv.sinks,
            "cache_type_k": kv.k_type.name(),
            "cache_type_v": kv.v_type.name(),
            "kv_policy": kv.policy.name(),
            "peak_device_bytes": peak,
        });
        crate::outln!("{v}");
    } else {
        let how = if args.stream {
            "streamed as one sequence".to_string()
        } else {
            format!("in {} windows of {span} tokens", report.windows.len())
        };
        crate::outln!(
            "perplexity {:.4} (mean NLL {:.5}) over {} positions {how}; cache: window {} + {} \
             sinks, K {} V {}; device peak {}",
            report.ppl,
            report.mean_nll,
            report.n_scored,
            kv.window,
            kv.sinks,
            kv.k_type,
            kv.v_type,
            format_size(peak)
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so a crash never
/// leaves a half-written file under the final name.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
