//! Perplexity of the first N tokens of a text under a chosen KV cache, for measuring what
//! each cache option costs (docs/KV_CACHE.md).
//!
//! ```text
//! cargo run --example kv_ppl -- MODEL.gguf TEXT N K_TYPE V_TYPE [key=value ...]
//! ```
//! keys: `recent` (f16 copies of the newest tokens), `rotate` (0/1), `center` (0/1),
//! `sinks`, `window`, `batch`, `from` (the first line of TEXT to read, counted from 1: text
//! held out from tuning). The text is scored as one sequence from position 0 (BOS first when
//! the model adds one), every position after the first.

use std::path::Path;

use voyager_runtime::engine::perplexity::windows;
use voyager_runtime::engine::{Engine, EngineOptions};
use voyager_runtime::kv::KvType;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        return Err(
            "usage: kv_ppl MODEL TEXT N K_TYPE V_TYPE [recent=R rotate=0|1 center=0|1 \
                    sinks=S window=W batch=B from=LINE]"
                .into(),
        );
    }
    let n: usize = args[2].parse()?;
    let mut opts = EngineOptions {
        cache_type_k: KvType::parse(&args[3])?,
        cache_type_v: KvType::parse(&args[4])?,
        window: Some(n as u32),
        ..EngineOptions::default()
    };
    let mut from = 1usize;
    for kv in &args[5..] {
        let (k, v) = kv.split_once('=').ok_or("options are key=value")?;
        match k {
            "recent" => opts.recent_f16 = v.parse()?,
            "rotate" => opts.rotate = v == "1",
            "center" => opts.center_keys = v == "1",
            "sinks" => opts.sinks = v.parse()?,
            "window" => opts.window = Some(v.parse()?),
            "batch" => opts.batch = v.parse()?,
            "from" => from = v.parse()?,
            _ => return Err(format!("unknown option {k}").into()),
        }
    }
    let engine = Engine::load(Path::new(&args[0]), &opts, &mut |_| {})?;
    let text: String = std::fs::read_to_string(&args[1])?
        .split_inclusive('\n')
        .skip(from.saturating_sub(1))
        .collect();
    let ids = windows(&engine.model().tokenizer, &text, n)?.remove(0);
    let start = std::time::Instant::now();
    let scores = engine.session()?.score(&ids)?;
    let nll: f64 = -scores.iter().map(|s| f64::from(s.logprob)).sum::<f64>() / scores.len() as f64;
    println!(
        "{} tokens K {} V {} recent {} rotate {} center {} sinks {} window {}: ppl {:.4} ({:.0?})",
        ids.len(),
        opts.cache_type_k,
        opts.cache_type_v,
        opts.recent_f16,
        opts.rotate,
        opts.center_keys,
        opts.sinks,
        engine.kv_config().window,
        nll.exp(),
        start.elapsed()
    );
    Ok(())
}
