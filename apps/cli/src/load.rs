//! Loading an engine with a progress bar.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use voyager_runtime::engine::{Engine, EngineOptions};

use crate::args::ModelArgs;

/// Resolves `-m`, then loads the model onto the GPU with a progress bar on stderr. `scoring`:
/// the command scores texts (perplexity), so the plan includes every row's logits.
pub fn engine(args: &ModelArgs, scoring: bool) -> Result<Arc<Engine>> {
    // Bad flags are reported before a model is pulled or opened.
    let options = EngineOptions {
        scoring,
        ..args.engine_options()?
    };
    let path = crate::model_arg::resolve(&args.model)?;
    engine_at(&path, &args.model, &options)
}

/// Loads the GGUF at `path` (called `name` in messages) with `options`, with a progress bar.
pub fn engine_at(path: &Path, name: &str, options: &EngineOptions) -> Result<Arc<Engine>> {
    let bar = crate::progress::bytes_bar(&format!("loading {name}"));
    let engine = Engine::load(path, options, &mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    });
    bar.finish_and_clear();
    let engine = engine?;
    let kv = engine.kv_config();
    log::info!(
        "{} on {} ({}), window {} + {} sinks, cache K {} V {}, device memory {}",
        name,
        engine.gpu().adapter_name(),
        engine.gpu().backend(),
        kv.window,
        kv.sinks,
        kv.k_type,
        kv.v_type,
        engine.gpu().memory_stats()
    );
    Ok(engine)
}
