//! `voyager perplexity -m MODEL -f FILE [-c CTX] [--chunks N] [--json] [--dump-logprobs OUT]`

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use voyager_runtime::engine::perplexity::{evaluate, windows};

use crate::args::ModelArgs;

/// Window size when `-c` is not given (llama.cpp's default for perplexity).
const DEFAULT_WINDOW: usize = 512;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The text to score.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Score only the first N windows.
    #[arg(long)]
    chunks: Option<usize>,
    /// Print one JSON object {"ppl", "mean_nll", "n_scored", "windows"}.
    #[arg(long)]
    json: bool,
    /// Write each window's {"top1": [...], "target_logprob": [...]} to this JSON file.
    #[arg(long = "dump-logprobs")]
    dump_logprobs: Option<PathBuf>,
}

pub fn run(mut args: Args) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let ctx = *args.model.ctx_size.get_or_insert(DEFAULT_WINDOW);
    let engine = crate::load::engine(&args.model)?;
    let mut all = windows(&engine.model().tokenizer, &text, ctx)?;
    if let Some(n) = args.chunks {
        all.truncate(n.max(1));
    }
    let bar = ProgressBar::new(all.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("scoring [{bar:30}] {pos}/{len} windows ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut session = engine.session()?;
    let report = evaluate(&mut session, &all, &mut |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();

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
        });
        crate::outln!("{v}");
    } else {
        crate::outln!(
            "perplexity {:.4} (mean NLL {:.5}) over {} positions in {} windows of {ctx} tokens",
            report.ppl,
            report.mean_nll,
            report.n_scored,
            report.windows.len()
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
