//! What one forward step must move and compute, counted from the model file and the cache
//! layout: the bytes a decode step reads (every weight once, the head included, one embedding
//! row, and the cached keys and values attention visits) and the floating-point operations of
//! a token. `voyager bench` divides these by measured times to report the fraction of the
//! device's copy bandwidth and of its FMA peak that a step reaches.

use crate::engine::Engine;
use crate::Result;

/// Bytes one decode step reads from device memory, at a given depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StepBytes {
    /// Every weight tensor once (the head's matrix too), but only one row of the token
    /// embedding unless the head reads it whole (tied embeddings).
    pub weights: u64,
    /// The stored keys and values the step's attention visits, all layers.
    pub kv: u64,
}

impl StepBytes {
    pub fn total(&self) -> u64 {
        self.weights + self.kv
    }
}

impl Engine {
    /// The bytes a decode step reads once `n_cached` positions have been seen (activations,
    /// a few kilobytes, left out).
    pub fn decode_bytes(&self, n_cached: u64) -> Result<StepBytes> {
        let cfg = &self.model().config;
        let mut weights = 0;
        for t in self.model().file.tensors() {
            weights += if t.name == "token_embd.weight" && !cfg.tied_embeddings {
                t.ggml_type.row_bytes(t.dims[0]).unwrap_or(0)
            } else {
                t.n_bytes
            };
        }
        let layouts = crate::arch::layer_layouts(cfg, self.kv_config(), self.batch_size() as u32)?;
        let kv = layouts
            .iter()
            .map(|l| {
                let p = &l.policy;
                let sinks = n_cached.min(u64::from(p.sinks));
                let ring = n_cached.min(u64::from(p.sinks) + u64::from(p.window)) - sinks;
                let words = |r: fn(&crate::kv::SideLayout) -> crate::kv::Region| {
                    u64::from(r(&l.k).words) + u64::from(r(&l.v).words)
                };
                4 * (sinks * words(|s| s.sinks) + ring * words(|s| s.ring))
            })
            .sum();
        Ok(StepBytes { weights, kv })
    }

    /// Floating-point operations (a multiply-add is two) of one token of a prefill that has
    /// `n_cached` positions before it: every projection, the attention scores and weighted
    /// values over the positions it sees, and the head when `with_head` (prefill computes the
    /// logits of its last token only).
    pub fn token_flops(&self, n_cached: u64, with_head: bool) -> Result<u64> {
        let cfg = &self.model().config;
        let mut flops = 0;
        for t in self.model().file.tensors() {
            if t.dims.len() < 2 || t.name == "token_embd.weight" || t.name == "output.weight" {
                continue;
            }
            flops += 2 * t.n_elements();
        }
        if with_head {
            flops += 2 * cfg.n_embd as u64 * cfg.vocab_size as u64;
        }
        let per_position = 2 * cfg.n_heads as u64 * (cfg.head_dim + cfg.head_dim_v) as u64;
        let layouts = crate::arch::layer_layouts(cfg, self.kv_config(), self.batch_size() as u32)?;
        for l in &layouts {
            let span = u64::from(l.policy.sinks) + u64::from(l.policy.window);
            flops += per_position * (n_cached + 1).min(span);
        }
        Ok(flops)
    }
}
