//! The registry of every WGSL shader in `shaders/`, by name.
//!
//! Each shader is compiled into the library with `include_str!`, so the binary carries its
//! own kernels. `tests/shaders.rs` validates every entry with naga for SPIR-V, MSL and HLSL,
//! and fails when a `.wgsl` file in `shaders/` is missing from [`SHADERS`].
//!
//! The kernels that read weights are templates ([`TEMPLATES`]: `matmul.wgsl`, `embedding.wgsl`)
//! assembled per weight type by [`crate::gpu::preprocess`] with a format snippet from
//! `shaders/quant/` ([`QUANT_SNIPPETS`]); the KV cache kernels (`kv_write.wgsl`,
//! `attention.wgsl`, `attention_rowwise.wgsl`) include the cache layout and readers from
//! `shaders/kv/` ([`KV_SNIPPETS`]). [`variants`] lists every assembled shader, and the naga
//! test validates each of them.

/// `shaders/add.wgsl`: elementwise f32 add (the residual connection).
pub const ADD: &str = include_str!("../../../shaders/add.wgsl");

/// Every shader, as (name, WGSL source); the name is the file stem in `shaders/`.
pub const SHADERS: &[(&str, &str)] = &[
    ("add", ADD),
    ("rms_norm", RMS_NORM),
    ("rope", ROPE),
    ("ffn_act", FFN_ACT),
    ("scale", SCALE),
    ("hadamard", HADAMARD),
    ("copy", COPY),
    ("fma", FMA),
];

/// `shaders/rms_norm.wgsl`: RMS normalization of rows, optional weight.
pub const RMS_NORM: &str = include_str!("../../../shaders/rms_norm.wgsl");
/// `shaders/rope.wgsl`: rotary position embedding in place (normal and neox layouts).
pub const ROPE: &str = include_str!("../../../shaders/rope.wgsl");
/// `shaders/ffn_act.wgsl`: gated activation `act(gate) * up`, silu or gelu (tanh).
pub const FFN_ACT: &str = include_str!("../../../shaders/ffn_act.wgsl");
/// `shaders/scale.wgsl`: in-place `x *= s`.
pub const SCALE: &str = include_str!("../../../shaders/scale.wgsl");
/// `shaders/hadamard.wgsl`: in-place Walsh-Hadamard rotation of heads.
pub const HADAMARD: &str = include_str!("../../../shaders/hadamard.wgsl");
/// `shaders/copy.wgsl`: 16-byte element copy (the bandwidth measurement).
pub const COPY: &str = include_str!("../../../shaders/copy.wgsl");
/// `shaders/fma.wgsl`: chains of f32 multiply-adds (the arithmetic-rate measurement).
pub const FMA: &str = include_str!("../../../shaders/fma.wgsl");
/// `shaders/kv_write.wgsl`: writes a batch's K and V into the cache, quantizing (template).
pub const KV_WRITE_TEMPLATE: &str = include_str!("../../../shaders/kv_write.wgsl");
/// `shaders/attention.wgsl`: GQA attention over sinks + window, prefill and split decode
/// (template).
pub const ATTENTION_TEMPLATE: &str = include_str!("../../../shaders/attention.wgsl");
/// `shaders/attention_rowwise.wgsl`: row-per-thread prefill attention (template).
pub const ATTENTION_ROWWISE_TEMPLATE: &str =
    include_str!("../../../shaders/attention_rowwise.wgsl");
/// `shaders/kv_score.wgsl`: the importance policy's per-slot attention scores (template).
pub const KV_SCORE_TEMPLATE: &str = include_str!("../../../shaders/kv_score.wgsl");

/// The source of the shader called `name`, if it is registered (a replacement from
/// [`replace_for_testing`] first).
pub fn source(name: &str) -> Option<&'static str> {
    replacement(name).or_else(|| SHADERS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s))
}

/// [`source`] for the kernels, which only ask for registered names.
pub(crate) fn get(name: &str) -> Result<&'static str> {
    source(name).ok_or_else(|| crate::Error::Gpu(format!("no shader called `{name}`")))
}

/// Shaders replaced in this process, by name or include path.
static REPLACED: std::sync::Mutex<Vec<(String, &'static str)>> = std::sync::Mutex::new(Vec::new());

fn replacement(name: &str) -> Option<&'static str> {
    let replaced = REPLACED.lock().unwrap_or_else(|e| e.into_inner());
    replaced
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, s)| *s)
}

/// Replaces the shader `name` (a file stem such as `"add"`, or a snippet's include path such
/// as `"quant/q4_1.wgsl"`) for every kernel built afterwards in this process. For tests that
/// need a kernel computing wrong results (the self-check's), never for real use; the source is
/// leaked, which is fine for a test process.
#[doc(hidden)]
pub fn replace_for_testing(name: &str, source: &str) {
    let leaked: &'static str = Box::leak(source.to_owned().into_boxed_str());
    REPLACED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((name.to_owned(), leaked));
}

use crate::gguf::GgmlType;
use crate::Result;

/// The tilings the matmul template is assembled with (the kernel dispatches by them).
pub mod matmul_tiles {
    /// Rows per workgroup (both tilings); baked into the shader as `ROWS`.
    pub const ROWS: u32 = 4;
    /// Tokens per workgroup for prefill (`n_tokens > 1`) with the cooperative strategy: its
    /// partial sums (ROWS x TILE x 64 floats) live in workgroup memory, 8 KiB at 8 tokens,
    /// well inside the 16 KiB every WebGPU device has.
    pub const PREFILL_TILE: u32 = 8;
    /// Tokens per workgroup for prefill with the row-per-thread strategy (CPU adapters): each
    /// dequantized weight group then serves 16 tokens; measured on lavapipe, 16 beat 8 by
    /// 15-20% and 32 by 8% in prefill tokens/s (docs/BENCHMARKS.md).
    pub const ROWWISE_PREFILL_TILE: u32 = 16;
    /// Tokens per workgroup for decode (`n_tokens == 1`).
    pub const DECODE_TILE: u32 = 1;
}

/// `shaders/matmul.wgsl`: template of the weight x activations kernel (see [`matmul_source`]).
pub const MATMUL_TEMPLATE: &str = include_str!("../../../shaders/matmul.wgsl");

/// `shaders/embedding.wgsl`: template of the token-embedding gather (see [`embedding_source`]).
pub const EMBEDDING_TEMPLATE: &str = include_str!("../../../shaders/embedding.wgsl");

/// Templates in `shaders/`, as (file stem, source): not valid WGSL until assembled.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("matmul", MATMUL_TEMPLATE),
    ("embedding", EMBEDDING_TEMPLATE),
    ("kv_write", KV_WRITE_TEMPLATE),
    ("attention", ATTENTION_TEMPLATE),
    ("attention_rowwise", ATTENTION_ROWWISE_TEMPLATE),
    ("kv_score", KV_SCORE_TEMPLATE),
];

/// Snippets in `shaders/kv/` that the cache kernels include: the cache layout and its reads.
pub const KV_SNIPPETS: &[(&str, &str)] = &[
    (
        "kv/attention_io.wgsl",
        include_str!("../../../shaders/kv/attention_io.wgsl"),
    ),
    (
        "kv/layout.wgsl",
        include_str!("../../../shaders/kv/layout.wgsl"),
    ),
    (
        "kv/read.wgsl",
        include_str!("../../../shaders/kv/read.wgsl"),
    ),
    (
        "kv/codebook.wgsl",
        include_str!("../../../shaders/kv/codebook.wgsl"),
    ),
];

/// Snippets in `shaders/matmul/`: the cooperative matmul's two ways of adding partial sums
/// (`{{REDUCE}}` = `tree` or `subgroup`).
pub const MATMUL_SNIPPETS: &[(&str, &str)] = &[
    (
        "matmul/reduce_tree.wgsl",
        include_str!("../../../shaders/matmul/reduce_tree.wgsl"),
    ),
    (
        "matmul/reduce_subgroup.wgsl",
        include_str!("../../../shaders/matmul/reduce_subgroup.wgsl"),
    ),
];

/// A KV-cache kernel template with its `shaders/kv/` snippets included.
pub fn kv_source(template: &str) -> Result<String> {
    super::preprocess::assemble(template, &[], &snippet)
}

/// `(include path, source)` of the snippet `shaders/quant/<file>`.
macro_rules! quant {
    ($file:literal) => {
        (
            concat!("quant/", $file),
            include_str!(concat!("../../../shaders/quant/", $file)),
        )
    };
}

/// Snippets in `shaders/quant/` that templates include, as (include path, source).
pub const QUANT_SNIPPETS: &[(&str, &str)] = &[
    quant!("common.wgsl"),
    quant!("kscale.wgsl"),
    quant!("f32.wgsl"),
    quant!("f16.wgsl"),
    quant!("bf16.wgsl"),
    quant!("q4_0.wgsl"),
    quant!("q4_1.wgsl"),
    quant!("q5_0.wgsl"),
    quant!("q5_1.wgsl"),
    quant!("q8_0.wgsl"),
    quant!("q4_k.wgsl"),
    quant!("q5_k.wgsl"),
    quant!("q6_k.wgsl"),
];

/// The snippet at include path `path` (e.g. `"quant/q4_k.wgsl"`).
pub fn snippet(path: &str) -> Option<&'static str> {
    if let Some(s) = replacement(path) {
        return Some(s);
    }
    QUANT_SNIPPETS
        .iter()
        .chain(KV_SNIPPETS)
        .chain(MATMUL_SNIPPETS)
        .find(|(p, _)| *p == path)
        .map(|(_, s)| *s)
}

/// The snippet name of a weight type the GPU kernels read ([`GgmlType::gpu_snippet`]), or an
/// error naming the type.
fn quant_name(ty: GgmlType) -> Result<&'static str> {
    ty.gpu_snippet().ok_or_else(|| unsupported(ty))
}

fn unsupported(ty: GgmlType) -> crate::Error {
    crate::Error::UnsupportedModel(format!("no GPU kernel reads weights of type {ty}"))
}

/// The matmul kernel for weights of type `ty`, with `tile` tokens and `rows` rows per
/// workgroup, its cooperative entry point adding partial sums by `reduction`.
pub fn matmul_source(ty: GgmlType, tile: u32, rows: u32, reduction: Reduction) -> Result<String> {
    let quant = quant_name(ty)?;
    let (tile, rows) = (tile.to_string(), rows.to_string());
    super::preprocess::assemble(
        MATMUL_TEMPLATE,
        &[
            ("QUANT", quant),
            ("TILE", &tile),
            ("ROWS", &rows),
            ("REDUCE", reduction.snippet()),
        ],
        &snippet,
    )
}

/// How the cooperative matmul adds its 64 threads' partial sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Through workgroup memory, a barrier per tree level: every device.
    Tree,
    /// Through subgroup shuffles, then workgroup memory with one barrier: devices with
    /// subgroups of at most 64 lanes.
    Subgroup,
}

impl Reduction {
    fn snippet(self) -> &'static str {
        match self {
            Reduction::Tree => "tree",
            Reduction::Subgroup => "subgroup",
        }
    }

    /// Subgroups where the device has them in sizes that divide the 64-thread workgroup,
    /// unless `VOYAGER_SUBGROUPS=0` (to measure without them).
    pub fn for_device(ctx: &crate::gpu::GpuContext) -> Self {
        let (min, max) = ctx.subgroup_sizes();
        let usable = ctx.has_subgroups() && min >= 1 && max <= 64;
        if usable && std::env::var("VOYAGER_SUBGROUPS").as_deref() != Ok("0") {
            Reduction::Subgroup
        } else {
            Reduction::Tree
        }
    }
}

/// The embedding kernel for weights of type `ty`.
pub fn embedding_source(ty: GgmlType) -> Result<String> {
    let quant = quant_name(ty)?;
    super::preprocess::assemble(EMBEDDING_TEMPLATE, &[("QUANT", quant)], &snippet)
}

/// Every assembled shader the runtime can build, as (name, WGSL source): `matmul_<type>`
/// (prefill tile; `_sg`: subgroup reduction), `matvec_r<rows>_<type>` (decode, each rows
/// choice) and `embedding_<type>` for each of
/// type that [`GgmlType::runs_on_gpu`], and the three KV cache kernels.
pub fn variants() -> Result<Vec<(String, String)>> {
    use matmul_tiles::{DECODE_TILE, PREFILL_TILE, ROWS, ROWWISE_PREFILL_TILE};
    let mut out = Vec::new();
    for ty in GgmlType::all().filter(|t| t.runs_on_gpu()) {
        let name = quant_name(ty)?;
        for (reduction, suffix) in [(Reduction::Tree, ""), (Reduction::Subgroup, "_sg")] {
            out.push((
                format!("matmul{suffix}_{name}"),
                matmul_source(ty, PREFILL_TILE, ROWS, reduction)?,
            ));
            // The decode mat-vec with every rows-per-workgroup choice.
            for rows in crate::gpu::kernels::matmul::DECODE_ROWS_CHOICES {
                out.push((
                    format!("matvec_r{rows}{suffix}_{name}"),
                    matmul_source(ty, DECODE_TILE, rows, reduction)?,
                ));
            }
        }
        out.push((
            format!("matmul_t{ROWWISE_PREFILL_TILE}_{name}"),
            matmul_source(ty, ROWWISE_PREFILL_TILE, ROWS, Reduction::Tree)?,
        ));
        out.push((format!("embedding_{name}"), embedding_source(ty)?));
    }
    for (name, template) in [
        ("kv_write", KV_WRITE_TEMPLATE),
        ("attention", ATTENTION_TEMPLATE),
        ("attention_rowwise", ATTENTION_ROWWISE_TEMPLATE),
        ("kv_score", KV_SCORE_TEMPLATE),
    ] {
        out.push((name.to_string(), kv_source(template)?));
    }
    Ok(out)
}
