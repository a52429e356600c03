//! One file per architecture: the forward pass laid out as a list of bound kernel invocations,
//! read top to bottom like the model's definition.

mod gemma3;
mod llama;

use crate::engine::{Engine, Op, Scratch};
use crate::gpu::kernels::kv_cache::KvLayerCache;
use crate::model::Architecture;
use crate::Result;

/// The embedding and every layer of `engine`'s model, bound to a session's buffers; the
/// residual stream ends in `scratch.x`.
pub(crate) fn build<'e>(
    engine: &'e Engine,
    scratch: &Scratch,
    kv: &[KvLayerCache],
) -> Result<Vec<Op<'e>>> {
    match engine.model().config.arch {
        Architecture::Llama => llama::build(engine, scratch, kv),
        Architecture::Gemma3 => gemma3::build(engine, scratch, kv),
    }
}
