//! Perplexity over a text: the text is tokenized without special tokens and cut into
//! consecutive windows of `ctx` ids; a window starts with BOS when the model adds BOS (BOS
//! counts in `ctx`). Each window is evaluated from an empty cache and every position after
//! the first is scored: position `i` predicts id `i + 1`. `ppl = exp(mean NLL)` over all scored
//! positions of all windows. A shorter last window (at least two ids) is scored too.

use crate::engine::{Session, TokenScore};
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// Cuts `text` into evaluation windows of at most `ctx` ids.
pub fn windows(tok: &Tokenizer, text: &str, ctx: usize) -> Result<Vec<Vec<u32>>> {
    let bos = if tok.add_bos() { tok.bos() } else { None };
    let body = ctx.saturating_sub(usize::from(bos.is_some()));
    if body < 1 {
        return Err(Error::InvalidArgument(format!(
            "a window of {ctx} tokens leaves no room to score"
        )));
    }
    let ids = tok.encode_with(text, false, false)?;
    let windows: Vec<Vec<u32>> = ids
        .chunks(body)
        .map(|chunk| {
            bos.into_iter()
                .chain(chunk.iter().copied())
                .collect::<Vec<u32>>()
        })
        .filter(|w| w.len() >= 2)
        .collect();
    if windows.is_empty() {
        return Err(Error::InvalidArgument(
            "the text is too short to score (it needs at least two tokens)".into(),
        ));
    }
    Ok(windows)
}

/// The result of [`evaluate`].
#[derive(Debug, Clone)]
pub struct PerplexityReport {
    pub ppl: f64,
    pub mean_nll: f64,
    pub n_scored: usize,
    /// The scores of every window, position by position.
    pub windows: Vec<Vec<TokenScore>>,
}

/// Scores each window from an empty cache; `on_window(done, total)` reports progress.
pub fn evaluate(
    session: &mut Session,
    windows: &[Vec<u32>],
    on_window: &mut dyn FnMut(usize, usize),
) -> Result<PerplexityReport> {
    let mut scored = Vec::with_capacity(windows.len());
    let (mut nll, mut n) = (0f64, 0usize);
    for (i, w) in windows.iter().enumerate() {
        let scores = session.score(w)?;
        nll -= scores.iter().map(|s| f64::from(s.logprob)).sum::<f64>();
        n += scores.len();
        scored.push(scores);
        on_window(i + 1, windows.len());
    }
    let mean_nll = nll / n.max(1) as f64;
    Ok(PerplexityReport {
        ppl: mean_nll.exp(),
        mean_nll,
        n_scored: n,
        windows: scored,
    })
}
