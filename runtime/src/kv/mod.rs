//! The KV cache's shape in memory, independent of the GPU: element types, the sinks + sliding
//! window policy, and how many bytes each layer's cache takes.
//!
//! Every layer keeps three regions for K and for V (see [`LayerLayout`]):
//! - **sinks**: the first `sinks` positions of the sequence, never evicted, stored in f16;
//! - **recent**: a copy of the newest `recent` positions in f16 (only when the type is
//!   quantized), so the tokens attention leans on most are read at full precision; each slot
//!   is tagged with the position it holds;
//! - **ring**: every position after the sinks, in the cache type, in a ring of
//!   `window + batch - 1` slots: a query at position `p` reads positions
//!   `max(sinks, p - window + 1) ..= p`, and a batch of `batch` queries must not overwrite
//!   what its first query still reads.
//!
//! Quantized formats work on blocks of [`BLOCK`] values of one head; each block is one `u32`
//! of metadata (two f16: scale `d`, offset `m`) and the packed values (see [`quant`]). The
//! codebook formats (`tq4`, `tq3`) work on groups of [`TQ_GROUP`] values with an 8-bit scale
//! each; a slot keeps every head's codes, then the scale bytes of all its groups, four to a
//! word, so a scale costs 8 bits rather than a word.

pub mod evict;
pub mod quant;

use crate::{Error, Result};

/// Values per quantization block (a head's width must be a multiple of it).
pub const BLOCK: u32 = 32;

/// Values per group of the codebook formats (one scale byte each).
pub const TQ_GROUP: u32 = 64;

/// How K or V elements are stored in the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvType {
    /// IEEE half precision, two to a `u32`.
    F16,
    /// 8-bit symmetric: `x = d * q`, q in -127..=127, one f16 scale per 32 values.
    Q8,
    /// 4-bit asymmetric: `x = d * q + m`, q in 0..=15, f16 scale and offset per 32 values.
    Q4,
    /// 4-bit codes into a 16-level codebook for normal data (Lloyd–Max), one 8-bit log scale
    /// per 64 values: 4.125 bits per value. Meant for rotated (Hadamard) heads.
    Tq4,
    /// 3-bit codes into an 8-level normal codebook, one 8-bit log scale per 64 values:
    /// 3.125 bits per value.
    Tq3,
}

impl KvType {
    /// Every type, in the order the CLI lists them.
    pub const ALL: [KvType; 5] = [
        KvType::F16,
        KvType::Q8,
        KvType::Q4,
        KvType::Tq4,
        KvType::Tq3,
    ];

    /// Parses `f16`, `q8`, `q4`, `tq4` or `tq3` (also `q8_0`, `q4_0`, as llama.cpp spells
    /// them).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Ok(Self::F16),
            "q8" | "q8_0" => Ok(Self::Q8),
            "q4" | "q4_0" | "q4_1" => Ok(Self::Q4),
            "tq4" => Ok(Self::Tq4),
            "tq3" => Ok(Self::Tq3),
            _ => Err(Error::InvalidArgument(format!(
                "cache type `{s}` (choose f16, q8, q4, tq4 or tq3)"
            ))),
        }
    }

    /// Parses a K/V pair: `K/V` (`tq4/tq3`), or one type for both (`q4`).
    pub fn parse_pair(s: &str) -> Result<(Self, Self)> {
        match s.split_once('/') {
            Some((k, v)) => Ok((Self::parse(k.trim())?, Self::parse(v.trim())?)),
            None => {
                let t = Self::parse(s.trim())?;
                Ok((t, t))
            }
        }
    }

    /// The name of a K/V pair as [`KvType::parse_pair`] reads it: `q4`, or `tq4/tq3`.
    pub fn pair_name(k: Self, v: Self) -> String {
        if k == v {
            k.name().to_owned()
        } else {
            format!("{k}/{v}")
        }
    }

    /// The name used on the command line and in shader names.
    pub fn name(self) -> &'static str {
        match self {
            Self::F16 => "f16",
            Self::Q8 => "q8",
            Self::Q4 => "q4",
            Self::Tq4 => "tq4",
            Self::Tq3 => "tq3",
        }
    }

    pub fn is_quantized(self) -> bool {
        self != Self::F16
    }

    /// Bits of a codebook format's codes (`None` for the block formats).
    pub fn codebook_bits(self) -> Option<u32> {
        match self {
            Self::Tq4 => Some(4),
            Self::Tq3 => Some(3),
            _ => None,
        }
    }

    /// Values a head's width must be a multiple of.
    pub fn granule(self) -> u32 {
        if self.codebook_bits().is_some() {
            TQ_GROUP
        } else {
            BLOCK
        }
    }

    /// `u32` words of one block of [`BLOCK`] values of a block format (metadata included); for
    /// a codebook format, the code words of [`BLOCK`] values (scales are kept per slot).
    pub fn words_per_block(self) -> u32 {
        match self {
            Self::F16 => BLOCK / 2,
            Self::Q8 => 1 + BLOCK / 4,
            Self::Q4 => 1 + BLOCK / 8,
            Self::Tq4 => BLOCK / 8,
            Self::Tq3 => 3 * BLOCK / 32,
        }
    }

    /// `u32` words of one head of `head_dim` values in a slot (for a codebook format, its
    /// codes: the scales follow all the slot's heads).
    pub fn words_per_head(self, head_dim: u32) -> u32 {
        head_dim / BLOCK * self.words_per_block()
    }

    /// `u32` words of one position of `n_kv_heads` heads of `head_dim` values: the heads, and
    /// for a codebook format the scale bytes of their groups, four to a word.
    pub fn words_per_slot(self, n_kv_heads: u32, head_dim: u32) -> u32 {
        let heads = n_kv_heads * self.words_per_head(head_dim);
        match self.codebook_bits() {
            Some(_) => heads + (n_kv_heads * head_dim / TQ_GROUP).div_ceil(4),
            None => heads,
        }
    }
}

impl std::fmt::Display for KvType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which positions past the sinks a full cache keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KvPolicy {
    /// The newest `window` (StreamingLLM): a position leaves when it is `window` old.
    #[default]
    Window,
    /// The newest [`KvConfig::protected`] positions, and of the older ones those the recent
    /// queries attended to most (H2O / SnapKV): attention scores are summed per slot on the
    /// GPU as sessions run ([`evict`]). The same bytes as `Window` hold a few fewer slots.
    Importance,
}

impl KvPolicy {
    pub const ALL: [KvPolicy; 2] = [KvPolicy::Window, KvPolicy::Importance];

    /// Parses `window` or `importance`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "window" | "sliding" => Ok(Self::Window),
            "importance" | "h2o" => Ok(Self::Importance),
            _ => Err(Error::InvalidArgument(format!(
                "cache policy `{s}` (choose window or importance)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Window => "window",
            Self::Importance => "importance",
        }
    }
}

impl std::fmt::Display for KvPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a session's KV cache is stored and bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvConfig {
    pub k_type: KvType,
    pub v_type: KvType,
    /// First positions kept forever (attention sinks).
    pub sinks: u32,
    /// Newest positions each query sees (its own included), beyond the sinks.
    pub window: u32,
    /// Newest positions also kept in f16 when a type is quantized.
    pub recent: u32,
    /// Rotate K, V (and q, and the output back) with a Hadamard transform per head before
    /// quantizing, which spreads outlier channels over the whole head.
    pub rotate: bool,
    /// Quantize keys minus their per-channel mean (measured over the first batch a session
    /// writes); attention adds `q . mean` back, so scores are unchanged but the 4-bit blocks
    /// only spend their range on what varies from token to token.
    pub center_keys: bool,
    /// Which positions a full cache keeps.
    pub policy: KvPolicy,
}

impl KvConfig {
    /// Sinks StreamingLLM found enough.
    pub const DEFAULT_SINKS: u32 = 4;
    /// Newest tokens kept in f16 beside a quantized ring.
    pub const DEFAULT_RECENT: u32 = 256;

    /// The default cache (tq4 keys, tq3 values, rotated, keys centered, 4 sinks, the newest
    /// 256 also in f16) over `window`; see [`KvConfig::fitted`] for heads the codebook types
    /// cannot hold.
    pub fn quantized(window: u32) -> Self {
        Self {
            k_type: KvType::Tq4,
            v_type: KvType::Tq3,
            sinks: Self::DEFAULT_SINKS,
            window,
            recent: Self::DEFAULT_RECENT,
            rotate: true,
            center_keys: true,
            policy: KvPolicy::Window,
        }
    }

    /// A plain f16 cache over `window` (with the default sinks).
    pub fn f16(window: u32) -> Self {
        Self {
            k_type: KvType::F16,
            v_type: KvType::F16,
            rotate: false,
            recent: 0,
            center_keys: false,
            ..Self::quantized(window)
        }
    }

    /// This configuration for heads of `shape`: a codebook type (tq4, tq3) on heads that are
    /// not whole groups of [`TQ_GROUP`] values becomes q4, so the default cache works on every
    /// model (the engine logs the change).
    pub fn fitted(self, shape: HeadShape) -> Self {
        let fit = |t: KvType, width: u32| {
            if width % t.granule() == 0 {
                t
            } else {
                KvType::Q4
            }
        };
        Self {
            k_type: fit(self.k_type, shape.head_dim),
            v_type: fit(self.v_type, shape.head_dim_v),
            ..self
        }
    }

    /// Whether any part of the cache is quantized (and so rotated when `rotate`).
    pub fn rotates(&self) -> bool {
        self.rotate && (self.k_type.is_quantized() || self.v_type.is_quantized())
    }

    /// Positions a query can see: sinks plus window.
    pub fn span(&self) -> u64 {
        u64::from(self.sinks) + u64::from(self.window)
    }
}

/// The head shape of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadShape {
    pub n_kv_heads: u32,
    pub head_dim: u32,
    pub head_dim_v: u32,
}

impl HeadShape {
    /// Refuses shapes the cache cannot store: head widths must be multiples of [`BLOCK`], and
    /// of [`TQ_GROUP`] for a side in a codebook format.
    pub fn check_types(&self, k: KvType, v: KvType) -> Result<()> {
        self.check()?;
        for (side, ty, width) in [("K", k, self.head_dim), ("V", v, self.head_dim_v)] {
            if width % ty.granule() != 0 {
                return Err(Error::InvalidArgument(format!(
                    "cache type {ty} for {side} needs heads of a multiple of {} values, and this \
                     model's are {width} (choose q4 or q8)",
                    ty.granule()
                )));
            }
        }
        Ok(())
    }

    /// Refuses shapes the cache cannot store: head widths must be multiples of [`BLOCK`].
    pub fn check(&self) -> Result<()> {
        if self.n_kv_heads == 0
            || self.head_dim == 0
            || self.head_dim_v == 0
            || self.head_dim % BLOCK != 0
            || self.head_dim_v % BLOCK != 0
        {
            return Err(Error::UnsupportedModel(format!(
                "kv cache: heads of {} x {}/{} values (widths must be nonzero multiples of {BLOCK})",
                self.n_kv_heads, self.head_dim, self.head_dim_v
            )));
        }
        Ok(())
    }
}

/// One region of a K or V buffer: `slots` positions, `words` u32 per position (all heads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First word of the region in the buffer.
    pub offset: u32,
    pub slots: u32,
    /// Words per slot (all kv heads).
    pub words: u32,
}

impl Region {
    fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.slots) * u64::from(self.words)
    }
}

/// Where one of K or V keeps its positions (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SideLayout {
    pub ty: KvType,
    pub head_dim: u32,
    pub sinks: Region,
    pub recent: Region,
    /// One word per recent slot: 1 + the position it holds (0: empty). A recent copy is only
    /// read when its tag matches, so a session rolled back (a chat turn edited) never reads a
    /// copy of a position that was written after the rollback point.
    pub tags: Region,
    pub ring: Region,
    /// The per-channel mean subtracted before quantizing (f32 per head and channel; one
    /// slot, or none when the side is not centered).
    pub mean: Region,
}

impl SideLayout {
    fn new(
        ty: KvType,
        n_kv_heads: u32,
        head_dim: u32,
        l: &LayerPolicy,
        centered: bool,
    ) -> Result<Self> {
        let f16_words = n_kv_heads * KvType::F16.words_per_head(head_dim);
        let ring_words = ty.words_per_slot(n_kv_heads, head_dim);
        let recent_slots = if ty.is_quantized() { l.recent } else { 0 };
        let sinks = Region {
            offset: 0,
            slots: l.sinks,
            words: f16_words,
        };
        let recent = Region {
            offset: u32::try_from(sinks.end()).map_err(|_| too_big())?,
            slots: recent_slots,
            words: f16_words,
        };
        let tags = Region {
            offset: u32::try_from(recent.end()).map_err(|_| too_big())?,
            slots: recent_slots,
            words: 1,
        };
        let ring = Region {
            offset: u32::try_from(tags.end()).map_err(|_| too_big())?,
            slots: l.ring_slots,
            words: ring_words,
        };
        let mean = Region {
            offset: u32::try_from(ring.end()).map_err(|_| too_big())?,
            slots: u32::from(centered && ty.is_quantized()),
            words: n_kv_heads * head_dim,
        };
        let layout = Self {
            ty,
            head_dim,
            sinks,
            recent,
            tags,
            ring,
            mean,
        };
        // Word indices in the shaders are u32.
        u32::try_from(layout.words()).map_err(|_| too_big())?;
        Ok(layout)
    }

    /// Words of the whole buffer.
    pub fn words(&self) -> u64 {
        self.mean.end()
    }

    /// Whether values are stored minus a per-channel mean.
    pub fn centered(&self) -> bool {
        self.mean.slots > 0
    }

    pub fn bytes(&self) -> u64 {
        self.words() * 4
    }

    /// Bytes of the regions kept in f16 whatever the type: sinks, recent copies and tags.
    pub fn f16_bytes(&self) -> u64 {
        [self.sinks, self.recent, self.tags]
            .iter()
            .map(|r| u64::from(r.slots) * u64::from(r.words) * 4)
            .sum()
    }
}

fn too_big() -> Error {
    Error::InvalidArgument("kv cache: one layer's cache would exceed 16 GiB".into())
}

/// The bounds of one layer: its sinks, window and ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerPolicy {
    pub sinks: u32,
    pub window: u32,
    pub recent: u32,
    /// Ring slots: `window + batch - 1`.
    pub ring_slots: u32,
    /// Ring slots are assigned by the importance policy ([`evict`]) through the layer's
    /// [`SlotTable`] rather than by position.
    pub importance: bool,
}

/// Where an importance layer keeps its slot table, after V: per ring slot two words, `1 +
/// position` (0: free) and the first position whose query no longer sees it (`u32::MAX`: every
/// later one does); then per token of a batch the ring slot it is written to; then per ring slot
/// the attention it has received (f32). The host plans the first two parts before each step and
/// uploads what changed ([`evict::Slots`]); `kv_write` zeroes the score of a slot it fills and
/// `kv_score` adds to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotTable {
    /// First word, in the layer's buffer (K then V then this).
    pub offset: u32,
    pub ring_slots: u32,
    pub max_batch: u32,
}

impl SlotTable {
    pub fn words(&self) -> u64 {
        3 * u64::from(self.ring_slots) + u64::from(self.max_batch)
    }
    /// The two words of slot `s`.
    pub fn pair_off(&self, s: u32) -> u32 {
        self.offset + 2 * s
    }
    pub fn wmap_off(&self) -> u32 {
        self.offset + 2 * self.ring_slots
    }
    pub fn score_off(&self) -> u32 {
        self.wmap_off() + self.max_batch
    }
}

/// One layer's K and V buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerLayout {
    pub policy: LayerPolicy,
    pub shape: HeadShape,
    pub k: SideLayout,
    pub v: SideLayout,
    /// The importance policy's table (`None` under the window policy).
    pub table: Option<SlotTable>,
}

impl LayerLayout {
    /// The layout of a layer under `config`, for batches of up to `batch` tokens. A layer with
    /// its own sliding window (`native_window`, Gemma's local layers) keeps that window and no
    /// sinks; the others take the configured sinks and window.
    pub fn new(
        config: &KvConfig,
        shape: HeadShape,
        native_window: Option<u32>,
        batch: u32,
    ) -> Result<Self> {
        shape.check_types(config.k_type, config.v_type)?;
        if config.window == 0 {
            return Err(Error::InvalidArgument("a window of 0 tokens".into()));
        }
        if batch == 0 {
            return Err(Error::InvalidArgument("a batch of 0 tokens".into()));
        }
        let (sinks, window) = match native_window {
            Some(w) => (0, w.min(config.window.saturating_add(config.sinks)).max(1)),
            None => (config.sinks, config.window),
        };
        let ring_slots = window.checked_add(batch - 1).ok_or_else(too_big)?;
        let policy = LayerPolicy {
            sinks,
            window,
            recent: config.recent,
            ring_slots,
            importance: native_window.is_none() && config.policy == KvPolicy::Importance,
        };
        let k = SideLayout::new(
            config.k_type,
            shape.n_kv_heads,
            shape.head_dim,
            &policy,
            config.center_keys,
        )?;
        let v = SideLayout::new(
            config.v_type,
            shape.n_kv_heads,
            shape.head_dim_v,
            &policy,
            false,
        )?;
        let table = if policy.importance {
            let table = SlotTable {
                offset: u32::try_from(k.words() + v.words()).map_err(|_| too_big())?,
                ring_slots,
                max_batch: batch,
            };
            u32::try_from(u64::from(table.offset) + table.words()).map_err(|_| too_big())?;
            Some(table)
        } else {
            None
        };
        Ok(Self {
            policy,
            shape,
            k,
            v,
            table,
        })
    }

    /// Bytes of the layer's buffer: K, V and the importance policy's slot table.
    pub fn bytes(&self) -> u64 {
        self.k.bytes() + self.v.bytes() + self.table.map_or(0, |t| 4 * t.words())
    }

    /// Bytes of the layer's sinks and recent f16 copies (K and V).
    pub fn f16_bytes(&self) -> u64 {
        self.k.f16_bytes() + self.v.f16_bytes()
    }

    /// First position a query at `p` sees in its window (sinks aside).
    pub fn window_lo(&self, p: u32) -> u32 {
        let lo = (p + 1).saturating_sub(self.policy.window);
        lo.max(self.policy.sinks.min(p + 1))
    }

    /// Sink positions a query at `p` sees: `0..sink_count(p)`.
    pub fn sink_count(&self, p: u32) -> u32 {
        self.policy.sinks.min(self.window_lo(p))
    }

    /// Keys a query at `p` sees: its sinks, then `window_lo(p)..=p`.
    pub fn keys(&self, p: u32) -> impl Iterator<Item = u32> {
        (0..self.sink_count(p)).chain(self.window_lo(p)..=p)
    }

    /// How many key indices a query at `p` walks: the keys it sees, or under the importance
    /// policy its sinks and every ring slot.
    pub fn span_at(&self, p: u32) -> u32 {
        if self.policy.importance {
            return self.policy.sinks.min(p + 1) + self.policy.ring_slots;
        }
        self.sink_count(p) + (p + 1 - self.window_lo(p))
    }

    /// The most key indices any query walks: sinks and window, or under the importance
    /// policy sinks and every ring slot (those a query does not see are skipped).
    pub fn max_span(&self) -> u32 {
        if self.policy.importance {
            self.policy.sinks + self.policy.ring_slots
        } else {
            self.policy.sinks + self.policy.window
        }
    }

    /// Most tokens one step may write: the batch the ring was sized for.
    pub fn max_batch(&self) -> u32 {
        self.policy.ring_slots - self.policy.window + 1
    }

    /// The position RoPE gives a query at `p` when it attends to the sinks: its position
    /// counted inside the cache (sinks, then the window), so a sink is never farther than
    /// `sinks + window - 1` positions away however long the sequence runs.
    pub fn sink_query_pos(&self, p: u32) -> u32 {
        p.min((self.policy.sinks + self.policy.window).saturating_sub(1))
    }
}

/// Ring bytes one token costs across all layers for a cache of `ty` K and V: what the
/// `kv_bytes_per_token` of `voyager info` reports.
pub fn bytes_per_token(ty_k: KvType, ty_v: KvType, shapes: &[HeadShape]) -> u64 {
    shapes
        .iter()
        .map(|s| {
            u64::from(
                ty_k.words_per_slot(s.n_kv_heads, s.head_dim)
                    + ty_v.words_per_slot(s.n_kv_heads, s.head_dim_v),
            ) * 4
        })
        .sum()
}

/// [`bytes_per_token`] with the same type for K and V, for every type the heads of `shapes`
/// can be stored in.
pub fn bytes_per_token_by_type(shapes: &[HeadShape]) -> Vec<(KvType, u64)> {
    KvType::ALL
        .into_iter()
        .filter(|&t| shapes.iter().all(|s| s.check_types(t, t).is_ok()))
        .map(|t| (t, bytes_per_token(t, t, shapes)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: HeadShape = HeadShape {
        n_kv_heads: 3,
        head_dim: 64,
        head_dim_v: 64,
    };

    #[test]
    fn smollm2_bytes_per_token_match_the_guide() {
        let shapes = [SHAPE; 30];
        assert_eq!(bytes_per_token(KvType::F16, KvType::F16, &shapes), 23_040);
        assert_eq!(bytes_per_token(KvType::Q8, KvType::Q8, &shapes), 12_960);
        assert_eq!(bytes_per_token(KvType::Q4, KvType::Q4, &shapes), 7_200);
        // 3 heads of 64: 24 + 1 words of tq4 and 18 + 1 of tq3 per layer.
        assert_eq!(bytes_per_token(KvType::Tq4, KvType::Tq3, &shapes), 5_280);
        let gemma = [HeadShape {
            n_kv_heads: 1,
            head_dim: 256,
            head_dim_v: 256,
        }; 18];
        assert_eq!(bytes_per_token(KvType::Tq4, KvType::Tq3, &gemma), 4_176);
    }

    #[test]
    fn codebook_types_need_heads_of_whole_groups() {
        let narrow = HeadShape {
            head_dim: 96,
            head_dim_v: 96,
            ..SHAPE
        };
        let cfg = KvConfig {
            k_type: KvType::Tq4,
            v_type: KvType::Tq3,
            ..KvConfig::quantized(64)
        };
        let err = LayerLayout::new(&cfg, narrow, None, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("multiple of 64"), "{err}");
        let q4 = KvConfig {
            k_type: KvType::Q4,
            v_type: KvType::Q4,
            ..cfg
        };
        assert!(LayerLayout::new(&q4, narrow, None, 1).is_ok());
        let l = LayerLayout::new(&cfg, SHAPE, None, 1).unwrap();
        assert_eq!((l.k.ring.words, l.v.ring.words), (25, 19));
        // The default falls back to q4 on such heads, and keeps the codebook types otherwise.
        let fitted = KvConfig::quantized(64).fitted(narrow);
        assert_eq!((fitted.k_type, fitted.v_type), (KvType::Q4, KvType::Q4));
        assert_eq!(
            KvConfig::quantized(64).fitted(SHAPE),
            KvConfig::quantized(64)
        );
    }

    #[test]
    fn regions_follow_each_other() {
        let cfg = KvConfig::quantized(100);
        let l = LayerLayout::new(&cfg, SHAPE, None, 8).unwrap();
        assert_eq!(l.k.sinks.offset, 0);
        assert_eq!(l.k.recent.offset, 4 * 96);
        assert_eq!(l.k.tags.offset, (4 + 256) * 96);
        assert_eq!(l.k.ring.offset, (4 + 256) * 96 + 256);
        assert_eq!(l.k.ring.slots, 107);
        // tq4: 3 heads of 8 code words, then one word of 3 scale bytes.
        assert_eq!(l.k.ring.words, 3 * 8 + 1);
        let f = LayerLayout::new(&KvConfig::f16(100), SHAPE, None, 8).unwrap();
        assert_eq!(f.k.recent.slots, 0);
    }

    #[test]
    fn native_windows_keep_their_size_and_take_no_sinks() {
        let cfg = KvConfig::quantized(4096);
        let l = LayerLayout::new(&cfg, SHAPE, Some(512), 32).unwrap();
        assert_eq!((l.policy.sinks, l.policy.window), (0, 512));
        let small = KvConfig::quantized(100);
        let l = LayerLayout::new(&small, SHAPE, Some(512), 32).unwrap();
        assert_eq!(l.policy.window, 104);
    }

    #[test]
    fn window_and_sink_positions() {
        let cfg = KvConfig {
            window: 10,
            ..KvConfig::f16(10)
        };
        let l = LayerLayout::new(&cfg, SHAPE, None, 1).unwrap();
        assert_eq!(l.window_lo(0), 1);
        // Before the sinks fill, every key is a sink.
        assert_eq!(l.window_lo(2), 3);
        assert_eq!(l.keys(2).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(
            l.keys(20).collect::<Vec<_>>(),
            [0, 1, 2, 3, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
        );
        assert_eq!(l.span_at(20), 14);
        assert_eq!(l.window_lo(13), 4);
        assert_eq!(l.window_lo(20), 11);
        assert_eq!(l.sink_query_pos(5), 5);
        assert_eq!(l.sink_query_pos(13), 13);
        assert_eq!(l.sink_query_pos(1000), 13);
    }

    #[test]
    fn odd_heads_and_bad_types_are_refused() {
        let bad = HeadShape {
            head_dim: 48,
            ..SHAPE
        };
        assert!(LayerLayout::new(&KvConfig::f16(8), bad, None, 1).is_err());
        assert!(KvType::parse("q3").is_err());
        assert_eq!(KvType::parse("TQ3").unwrap(), KvType::Tq3);
        let pair = KvType::parse_pair("tq4/tq3").unwrap();
        assert_eq!(pair, (KvType::Tq4, KvType::Tq3));
        assert_eq!(KvType::pair_name(pair.0, pair.1), "tq4/tq3");
        assert_eq!(KvType::parse_pair("q8").unwrap(), (KvType::Q8, KvType::Q8));
        assert!(KvType::parse_pair("q4/q3").is_err());
        assert_eq!(KvType::parse("Q4_0").unwrap(), KvType::Q4);
    }
}
