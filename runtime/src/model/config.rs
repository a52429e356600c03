//! The typed model configuration, read from `<arch>.*` metadata keys and checked against the
//! tensors actually present, so a file that lies about its sizes is refused at open time.

use std::fmt;

use crate::error::{Error, Result};
use crate::gguf::GgufFile;

/// An architecture Voyager can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama and its plain descendants (SmolLM2, Mistral 7B, TinyLlama...).
    Llama,
    /// Gemma 3: interleaved sliding-window and global layers, q/k norms, GELU, post-norms.
    Gemma3,
}

impl Architecture {
    pub const ALL: [Architecture; 2] = [Architecture::Llama, Architecture::Gemma3];

    /// The `general.architecture` string.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Gemma3 => "gemma3",
        }
    }

    pub fn from_gguf_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.gguf_name() == name)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|a| a.gguf_name()).collect();
                Error::UnsupportedModel(format!(
                    "architecture `{name}` is not supported (supported: {})",
                    known.join(", ")
                ))
            })
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.gguf_name())
    }
}

/// Which dimensions RoPE rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Adjacent pairs (2i, 2i+1): llama.cpp's `LLAMA_ROPE_TYPE_NORM`.
    Normal,
    /// Halves (i, i + d/2): llama.cpp's `LLAMA_ROPE_TYPE_NEOX`.
    Neox,
}

impl fmt::Display for RopeLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RopeLayout::Normal => "normal",
            RopeLayout::Neox => "neox",
        })
    }
}

/// Everything the forward pass needs to know about a model's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: Architecture,
    pub name: Option<String>,
    pub n_layers: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Hidden width of the feed-forward block.
    pub n_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    /// Width of one key (and query) head.
    pub head_dim: usize,
    /// Width of one value head.
    pub head_dim_v: usize,
    pub vocab_size: usize,
    /// Context the model was trained for.
    pub context_length: usize,
    pub rms_eps: f32,
    /// Number of dimensions of each head that RoPE rotates.
    pub rope_dim: usize,
    /// The model's RoPE base (`<arch>.rope.freq_base`; an architecture may use another on
    /// some layers, see `crate::arch::layer_specs`).
    pub rope_freq_base: f32,
    /// Linear RoPE scaling factor (1 when absent).
    pub rope_scale: f32,
    /// Native sliding window of the sliding layers, if the architecture has one.
    pub sliding_window: Option<usize>,
    /// True when the output projection reuses the token embedding.
    pub tied_embeddings: bool,
}

/// Upper bounds that keep a hostile header from steering allocations later on.
const MAX_LAYERS: usize = 4096;
const MAX_WIDTH: usize = 1 << 20;

impl ModelConfig {
    /// Reads and checks the configuration of `file`.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let md = file.metadata();
        let arch = Architecture::from_gguf_name(file.architecture()?)?;
        let key = |k: &str| format!("{}.{k}", arch.gguf_name());
        let usize_key = |k: &str| -> Result<usize> { Ok(md.u32(&key(k))? as usize) };

        let n_layers = usize_key("block_count")?;
        let n_embd = usize_key("embedding_length")?;
        let n_heads = usize_key("attention.head_count")?;
        let bad = |k: &str, why: String| Error::Metadata { key: key(k), why };
        if n_layers == 0 || n_layers > MAX_LAYERS {
            return Err(bad("block_count", format!("{n_layers} is out of range")));
        }
        if n_embd == 0 || n_embd > MAX_WIDTH {
            return Err(bad("embedding_length", format!("{n_embd} is out of range")));
        }
        if n_heads == 0 || n_heads > n_embd {
            return Err(bad(
                "attention.head_count",
                format!("{n_heads} is out of range"),
            ));
        }
        let n_ff = uniform(
            md.per_layer_u32(&key("feed_forward_length"), n_layers)?,
            &key("feed_forward_length"),
        )?
        .ok_or_else(|| bad("feed_forward_length", "missing".into()))?;
        let n_kv_heads = uniform(
            md.per_layer_u32(&key("attention.head_count_kv"), n_layers)?,
            &key("attention.head_count_kv"),
        )?
        .unwrap_or(n_heads);
        if n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
            return Err(bad(
                "attention.head_count_kv",
                format!("{n_kv_heads} does not divide the {n_heads} query heads"),
            ));
        }
        let head_dim = md
            .opt_u32(&key("attention.key_length"))?
            .map(|v| v as usize)
            .unwrap_or(n_embd / n_heads);
        let head_dim_v = md
            .opt_u32(&key("attention.value_length"))?
            .map(|v| v as usize)
            .unwrap_or(head_dim);
        if head_dim == 0
            || head_dim > MAX_WIDTH
            || head_dim % 2 != 0
            || head_dim_v == 0
            || head_dim_v > MAX_WIDTH
        {
            return Err(bad(
                "attention.key_length",
                format!("head sizes {head_dim}/{head_dim_v} are out of range"),
            ));
        }
        let rope_dim = md
            .opt_u32(&key("rope.dimension_count"))?
            .map(|v| v as usize)
            .unwrap_or(head_dim);
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(bad(
                "rope.dimension_count",
                format!("{rope_dim} is not an even number up to the head size {head_dim}"),
            ));
        }
        let rms_eps = md.f32(&key("attention.layer_norm_rms_epsilon"))?;
        let rope_freq_base = md.opt_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0);
        let rope_scale = match md.opt_str(&key("rope.scaling.type"))? {
            None | Some("none") => 1.0,
            Some("linear") => md.opt_f32(&key("rope.scaling.factor"))?.unwrap_or(1.0),
            Some(other) => {
                return Err(Error::UnsupportedModel(format!(
                    "RoPE scaling `{other}` is not supported (none, linear are)"
                )))
            }
        };
        let context_length = usize_key("context_length")?;

        // Which layers use it, and with what RoPE base, is the architecture file's business
        // (`crate::arch`); Gemma 3 cannot run without it.
        let sliding_window = match arch {
            Architecture::Gemma3 => Some(usize_key("attention.sliding_window")?),
            Architecture::Llama => None,
        };

        let embd = file.tensor("token_embd.weight")?;
        let vocab_size = match embd.dims.as_slice() {
            [w, v] if *w as usize == n_embd => *v as usize,
            dims => {
                return Err(Error::Malformed(format!(
                    "token_embd.weight has shape {dims:?}, expected [{n_embd}, vocab]"
                )))
            }
        };
        if let Some(n) = md.opt_u32(&key("vocab_size"))? {
            if n as usize != vocab_size {
                return Err(bad(
                    "vocab_size",
                    format!("{n} disagrees with token_embd.weight ({vocab_size} rows)"),
                ));
            }
        }
        let tied_embeddings = file.tensor("output.weight").is_err();
        if file.tensor("rope_freqs.weight").is_ok() {
            return Err(Error::UnsupportedModel(
                "RoPE frequency factors (rope_freqs.weight, Llama 3.1 style) are not supported yet"
                    .into(),
            ));
        }

        let cfg = Self {
            arch,
            name: md.opt_str("general.name")?.map(str::to_string),
            n_layers,
            n_embd,
            n_ff,
            n_heads,
            n_kv_heads,
            head_dim,
            head_dim_v,
            vocab_size,
            context_length,
            rms_eps,
            rope_dim,
            rope_freq_base,
            rope_scale,
            sliding_window,
            tied_embeddings,
        };
        cfg.check_attention_shapes(file)?;
        Ok(cfg)
    }

    /// The first layer's q/k/v projections must agree with the head counts.
    fn check_attention_shapes(&self, file: &GgufFile) -> Result<()> {
        let expect = [
            ("attn_q", self.n_heads * self.head_dim),
            ("attn_k", self.n_kv_heads * self.head_dim),
            ("attn_v", self.n_kv_heads * self.head_dim_v),
        ];
        for (name, rows) in expect {
            let t = file.tensor(&format!("blk.0.{name}.weight"))?;
            if t.dims.as_slice() != [self.n_embd as u64, rows as u64] {
                return Err(Error::Malformed(format!(
                    "blk.0.{name}.weight has shape {:?}, expected [{}, {rows}]",
                    t.dims, self.n_embd
                )));
            }
        }
        Ok(())
    }

    /// Bytes the KV cache takes per token over all layers at `bits` bits per element.
    pub fn kv_bytes_per_token(&self, bits: u32) -> u64 {
        let per_layer = self.n_kv_heads * (self.head_dim + self.head_dim_v);
        (per_layer * self.n_layers) as u64 * bits as u64 / 8
    }
}

/// Collapses a per-layer list to one value, refusing models whose layers differ.
fn uniform(v: Option<Vec<u32>>, key: &str) -> Result<Option<usize>> {
    let Some(v) = v else { return Ok(None) };
    match v.first() {
        Some(&first) if v.iter().all(|&x| x == first) => Ok(Some(first as usize)),
        _ => Err(Error::UnsupportedModel(format!(
            "`{key}` differs between layers, which Voyager does not support yet"
        ))),
    }
}
